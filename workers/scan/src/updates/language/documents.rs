//! Parsers of the documents package indexes answer a lookup of one package with: the releases
//! they list. Pure functions over bytes already bounded by the fetcher's size limit.
//!
//! - PyPI simple index, PEP 503 (HTML: one `<a>` per file, `data-yanked` per PEP 592) and PEP
//!   691 (JSON: `files[].filename`, `files[].yanked`): the version is read from each file name
//!   (wheel `name-version-…whl`, sdist `name-version.tar.gz|.zip|…`, egg `name-version-….egg`);
//!   a version is yanked when every file of it is.
//! - npm packument (full or abbreviated): the keys of `versions`; a version with `deprecated`
//!   set is still installable and is kept, as npm keeps it.
//! - RubyGems `api/v1/versions/NAME.json`: `number`, `platform`, and `yanked` where given.
//! - RubyGems compact index `info/NAME`: after the `---` line, one `VERSION[-PLATFORM] deps|reqs`
//!   line per release.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Release;

/// A document an index answered that is not what its kind promises.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, found {found}")]
pub struct DocumentError {
    /// What the document should have been.
    pub expected: &'static str,
    /// What it was (bounded).
    pub found: String,
}

/// At most this many releases are read from one document: more is a hostile or broken index
/// (the largest npm packuments list a few thousand versions).
pub const MAX_RELEASES: usize = 100_000;

/// The first bytes of `bytes`, as text, for an error message.
fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(80)]);
    format!("{:?}", text.trim())
}

fn too_many() -> DocumentError {
    DocumentError {
        expected: "at most 100000 releases",
        found: "more".to_owned(),
    }
}

/// The releases a PyPI simple index page lists for the distribution normalised as
/// `normalized_name`: PEP 691 JSON when `bytes` is a JSON object, else PEP 503 HTML.
pub fn parse_simple_index(
    normalized_name: &str,
    bytes: &[u8],
) -> Result<Vec<Release>, DocumentError> {
    let files = if bytes.trim_ascii_start().starts_with(b"{") {
        simple_json_files(bytes)?
    } else {
        simple_html_files(bytes)?
    };
    // Per version: yanked unless one of its files is not.
    let mut versions: BTreeMap<String, bool> = BTreeMap::new();
    for (filename, yanked) in files {
        if let Some(version) = version_of_file(normalized_name, &filename) {
            let entry = versions.entry(version).or_insert(true);
            *entry &= yanked;
        }
        if versions.len() > MAX_RELEASES {
            return Err(too_many());
        }
    }
    Ok(versions
        .into_iter()
        .map(|(version, yanked)| Release {
            version,
            platform: None,
            yanked,
        })
        .collect())
}

/// `(file name, yanked)` of each file of a PEP 691 JSON page.
fn simple_json_files(bytes: &[u8]) -> Result<Vec<(String, bool)>, DocumentError> {
    #[derive(Deserialize)]
    struct Page {
        files: Vec<File>,
    }
    #[derive(Deserialize)]
    struct File {
        filename: String,
        #[serde(default)]
        yanked: Yanked,
    }
    /// `false`, `true` or a reason (a string means yanked).
    #[derive(Deserialize, Default)]
    #[serde(untagged)]
    enum Yanked {
        #[default]
        No,
        Flag(bool),
        Reason(
            #[allow(dead_code, reason = "read to check its type; any reason means yanked")] String,
        ),
    }
    let page: Page = serde_json::from_slice(bytes).map_err(|e| DocumentError {
        expected: "a PEP 691 JSON page with a `files` list",
        found: e.to_string(),
    })?;
    Ok(page
        .files
        .into_iter()
        .map(|file| {
            let yanked = match file.yanked {
                Yanked::No => false,
                Yanked::Flag(flag) => flag,
                Yanked::Reason(_) => true,
            };
            (file.filename, yanked)
        })
        .collect())
}

/// `(file name, yanked)` of each `<a>` of a PEP 503 HTML page: the anchor's text, yanked when
/// it has a `data-yanked` attribute.
fn simple_html_files(bytes: &[u8]) -> Result<Vec<(String, bool)>, DocumentError> {
    let text = std::str::from_utf8(bytes).map_err(|e| DocumentError {
        expected: "a PEP 503 HTML page in UTF-8",
        found: e.to_string(),
    })?;
    let lower = text.to_ascii_lowercase();
    let mut files = Vec::new();
    let mut rest = 0;
    while let Some(start) = lower[rest..].find("<a") {
        let tag_start = rest + start;
        // `<a` followed by whitespace or `>`, not `<abbr>`.
        let after = lower.as_bytes().get(tag_start + 2).copied();
        if !matches!(after, Some(b' ' | b'\t' | b'\n' | b'\r' | b'>')) {
            rest = tag_start + 2;
            continue;
        }
        let Some(tag_len) = lower[tag_start..].find('>') else {
            break;
        };
        let tag = &lower[tag_start..tag_start + tag_len];
        let content_start = tag_start + tag_len + 1;
        let Some(content_len) = lower[content_start..].find("</a") else {
            break;
        };
        let name = decode_entities(text[content_start..content_start + content_len].trim());
        files.push((name, tag.contains("data-yanked")));
        rest = content_start + content_len;
        if files.len() > MAX_RELEASES * 4 {
            return Err(too_many());
        }
    }
    if files.is_empty() && !lower.contains("<html") && !lower.contains("<!doctype") {
        return Err(DocumentError {
            expected: "a PEP 503 HTML page",
            found: excerpt(bytes),
        });
    }
    Ok(files)
}

/// The few entities a file name may carry in HTML.
fn decode_entities(text: &str) -> String {
    text.replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
}

/// The version in a distribution file's name, for the distribution normalised as
/// `normalized_name`: wheels and eggs are `name-version-…`, sdists `name-version.ext`; a file of
/// another distribution (a page may list several spellings) or of an unknown type gives none.
pub fn version_of_file(normalized_name: &str, filename: &str) -> Option<String> {
    const SDIST_EXTENSIONS: [&str; 6] = [".tar.gz", ".tar.bz2", ".tar.xz", ".zip", ".tgz", ".tar"];
    let (stem, wheel_like) = if let Some(stem) = filename.strip_suffix(".whl") {
        (stem, true)
    } else if let Some(stem) = filename.strip_suffix(".egg") {
        (stem, true)
    } else {
        let extension = SDIST_EXTENSIONS.iter().find(|ext| {
            filename.len() > ext.len() && filename.to_ascii_lowercase().ends_with(*ext)
        })?;
        (&filename[..filename.len() - extension.len()], false)
    };
    let (name, version) = if wheel_like {
        let mut parts = stem.split('-');
        (parts.next()?, parts.next()?)
    } else {
        // The name may hold `-`: the version starts after the last `-` whose prefix normalises
        // to the wanted name.
        let split = stem.match_indices('-').map(|(i, _)| i).find(|&i| {
            starts_like_a_version(&stem[i + 1..])
                && crate::lang::python::normalized_name(&stem[..i]) == normalized_name
        })?;
        (&stem[..split], &stem[split + 1..])
    };
    (crate::lang::python::normalized_name(name) == normalized_name
        && starts_like_a_version(version))
    .then(|| version.to_owned())
}

/// Whether `text` starts as a PEP 440 version may: a digit, or `v` and a digit.
fn starts_like_a_version(text: &str) -> bool {
    let digits = text.strip_prefix(['v', 'V']).unwrap_or(text);
    digits.starts_with(|c: char| c.is_ascii_digit())
}

/// The versions of an npm packument (full or abbreviated, `application/vnd.npm.install-v1+json`).
pub fn parse_packument(bytes: &[u8]) -> Result<Vec<Release>, DocumentError> {
    #[derive(Deserialize)]
    struct Packument {
        versions: BTreeMap<String, serde::de::IgnoredAny>,
    }
    let packument: Packument = serde_json::from_slice(bytes).map_err(|e| DocumentError {
        expected: "an npm packument with a `versions` object",
        found: e.to_string(),
    })?;
    if packument.versions.len() > MAX_RELEASES {
        return Err(too_many());
    }
    Ok(packument
        .versions
        .into_keys()
        .map(|version| Release {
            version,
            platform: None,
            yanked: false,
        })
        .collect())
}

/// The releases of RubyGems' `api/v1/versions/NAME.json`.
pub fn parse_gem_versions(bytes: &[u8]) -> Result<Vec<Release>, DocumentError> {
    #[derive(Deserialize)]
    struct GemVersion {
        number: String,
        #[serde(default)]
        platform: Option<String>,
        #[serde(default)]
        yanked: bool,
    }
    let versions: Vec<GemVersion> = serde_json::from_slice(bytes).map_err(|e| DocumentError {
        expected: "a RubyGems versions list (a JSON array of objects with `number`)",
        found: e.to_string(),
    })?;
    if versions.len() > MAX_RELEASES {
        return Err(too_many());
    }
    Ok(versions
        .into_iter()
        .map(|v| Release {
            version: v.number,
            platform: v.platform.filter(|p| p != "ruby"),
            yanked: v.yanked,
        })
        .collect())
}

/// The releases of a RubyGems compact index `info/NAME` file.
pub fn parse_compact_info(bytes: &[u8]) -> Result<Vec<Release>, DocumentError> {
    let text = std::str::from_utf8(bytes).map_err(|e| DocumentError {
        expected: "a compact index info file in UTF-8",
        found: e.to_string(),
    })?;
    let mut lines = text.lines();
    if lines.next().map(str::trim_end) != Some("---") {
        return Err(DocumentError {
            expected: "a compact index info file starting with `---`",
            found: excerpt(bytes),
        });
    }
    let mut releases = Vec::new();
    for line in lines.filter(|line| !line.trim().is_empty()) {
        let Some(spec) = line.split(' ').next() else {
            continue;
        };
        // `1.2.3` or `1.2.3-x86_64-linux`: gem versions never hold `-` (RubyGems turns a `-`
        // into `.pre.`), so the first `-` starts the platform.
        let (version, platform) = match spec.split_once('-') {
            Some((version, platform)) => (version, Some(platform.to_owned())),
            None => (spec, None),
        };
        releases.push(Release {
            version: version.to_owned(),
            platform: platform.filter(|p| p != "ruby"),
            yanked: false,
        });
        if releases.len() > MAX_RELEASES {
            return Err(too_many());
        }
    }
    Ok(releases)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions(releases: &[Release]) -> Vec<(&str, bool)> {
        releases
            .iter()
            .map(|r| (r.version.as_str(), r.yanked))
            .collect()
    }

    #[test]
    fn pep503_html_lists_versions_of_wheels_and_sdists_with_yanked_ones_marked() {
        let page = br#"<!DOCTYPE html>
<html><body><h1>Links for my-pkg</h1>
<a href="../../packages/my_pkg-1.0.tar.gz#sha256=ab">my_pkg-1.0.tar.gz</a><br/>
<a href="x" data-requires-python="&gt;=3.8">My.Pkg-1.1-py3-none-any.whl</a>
<A HREF="y" data-yanked="broken">my-pkg-2.0.zip</A>
<a href="z" data-yanked="">my_pkg-2.0-py3-none-any.whl</a>
<a href="w">other_pkg-9.0.tar.gz</a>
<abbr>not a link</abbr>
</body></html>"#;
        let releases = parse_simple_index("my-pkg", page).unwrap();
        assert_eq!(
            versions(&releases),
            [("1.0", false), ("1.1", false), ("2.0", true)]
        );
    }

    #[test]
    fn a_version_with_one_unyanked_file_is_not_yanked() {
        let page = br#"<html><a href="a" data-yanked>pkg-3.0.tar.gz</a>
<a href="b">pkg-3.0-py3-none-any.whl</a></html>"#;
        assert_eq!(
            versions(&parse_simple_index("pkg", page).unwrap()),
            [("3.0", false)]
        );
    }

    #[test]
    fn pep691_json_reads_files_and_yanked_flags_or_reasons() {
        let page = br#"{"meta": {"api-version": "1.1"}, "name": "pkg",
            "files": [
              {"filename": "pkg-1.0.tar.gz", "url": "u", "hashes": {}},
              {"filename": "pkg-1.5-py3-none-any.whl", "url": "u", "hashes": {}, "yanked": "bad"},
              {"filename": "pkg-1.4.tar.gz", "url": "u", "hashes": {}, "yanked": false},
              {"filename": "pkg-1.3.tar.gz", "url": "u", "hashes": {}, "yanked": true}
            ]}"#;
        assert_eq!(
            versions(&parse_simple_index("pkg", page).unwrap()),
            [("1.0", false), ("1.3", true), ("1.4", false), ("1.5", true)]
        );
        let error = parse_simple_index("pkg", b"{\"name\": 1}").unwrap_err();
        assert!(error.to_string().contains("PEP 691"), "{error}");
    }

    #[test]
    fn file_names_give_versions_only_for_the_wanted_distribution() {
        assert_eq!(
            version_of_file("zope-interface", "zope.interface-6.0.tar.gz").as_deref(),
            Some("6.0")
        );
        assert_eq!(
            version_of_file("my-long-name", "my-long-name-1.0rc1.tar.gz").as_deref(),
            Some("1.0rc1")
        );
        assert_eq!(
            version_of_file("pkg", "pkg-1.0-py2.7.egg").as_deref(),
            Some("1.0")
        );
        assert_eq!(version_of_file("pkg", "pkg-extra-1.0.tar.gz"), None);
        assert_eq!(version_of_file("pkg", "pkg-1.0.exe"), None);
        assert_eq!(version_of_file("pkg", ".tar.gz"), None);
    }

    #[test]
    fn a_page_that_is_not_html_is_an_error() {
        let error = parse_simple_index("pkg", b"Internal error").unwrap_err();
        assert!(error.to_string().contains("PEP 503"), "{error}");
        assert!(
            parse_simple_index("pkg", b"<html><body></body></html>")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn packuments_list_their_versions_keys() {
        let doc = br#"{"name": "left-pad", "dist-tags": {"latest": "1.3.0"},
            "versions": {"1.0.0": {"dist": {}}, "1.3.0": {"deprecated": "use padStart"},
                         "2.0.0-beta.1": {}}}"#;
        assert_eq!(
            versions(&parse_packument(doc).unwrap()),
            [("1.0.0", false), ("1.3.0", false), ("2.0.0-beta.1", false)]
        );
        assert!(parse_packument(b"{\"error\": \"not found\"}").is_err());
    }

    #[test]
    fn gem_versions_json_keeps_platforms_other_than_ruby() {
        let doc = br#"[{"number": "1.16.0", "platform": "ruby", "prerelease": false},
                       {"number": "1.16.0", "platform": "x86_64-linux"},
                       {"number": "1.17.0.rc1", "platform": "ruby", "prerelease": true}]"#;
        let releases = parse_gem_versions(doc).unwrap();
        let platforms: Vec<_> = releases.iter().map(|r| r.platform.as_deref()).collect();
        assert_eq!(platforms, [None, Some("x86_64-linux"), None]);
        assert_eq!(releases[2].version, "1.17.0.rc1");
    }

    #[test]
    fn compact_index_lines_give_versions_and_platforms() {
        let doc = b"---\n1.0.0 |checksum:ab\n1.1.0 rack:>= 1.0|checksum:cd,ruby:>= 2.0\n1.1.0-java |checksum:ef\n\n";
        let releases = parse_compact_info(doc).unwrap();
        let got: Vec<_> = releases
            .iter()
            .map(|r| (r.version.as_str(), r.platform.as_deref()))
            .collect();
        assert_eq!(
            got,
            [("1.0.0", None), ("1.1.0", None), ("1.1.0", Some("java"))]
        );
        assert!(parse_compact_info(b"<html>not found</html>").is_err());
    }

    #[test]
    fn a_document_listing_too_many_releases_is_refused() {
        let mut doc = String::from("---\n");
        for i in 0..=MAX_RELEASES {
            doc.push_str(&format!("0.{i} |\n"));
        }
        assert_eq!(
            parse_compact_info(doc.as_bytes()).unwrap_err().expected,
            "at most 100000 releases"
        );
    }
}

//! Language packages installed in an image: which files describe them (`wanted`) and what those
//! files say (`read`) — Python distributions, npm packages and Ruby gems.
//!
//! Both functions are pure: the image reader streams each layer, asks [`wanted`] about every
//! regular file's path (relative to the image root, no leading slash), keeps the bytes of those it
//! names, and hands them to [`read`] once the layers are merged.
//!
//! Which files count (the paths are the only evidence while a layer streams):
//! - Python: `<d>.dist-info/METADATA`, `<d>.egg-info/PKG-INFO`, a file named `<d>.egg-info`
//!   (distutils' single-file form) and `<d>.egg/EGG-INFO/PKG-INFO` (an unzipped egg), wherever
//!   they are: site-packages, dist-packages, a source tree installed in develop mode, or a package's
//!   own `_vendor` directory — vendored code is in the image, so it is reported.
//! - npm: `…node_modules/<name>/package.json` and `…node_modules/@<scope>/<name>/package.json`,
//!   at any depth (nested `node_modules`, pnpm's `.pnpm/<id>/node_modules/…`). An application's
//!   own `package.json` is not inside a `node_modules` directory and is not a dependency; the
//!   `package.json` files a package keeps in its subdirectories (`lib/package.json`) are not
//!   packages either. Names starting with `.` (`.bin`, `.cache`) or `_` are not npm package names.
//! - Ruby: `…specifications/<file>.gemspec` and `…specifications/default/<file>.gemspec` (the
//!   stubs RubyGems writes for installed and default gems, in every gem path: `/usr/lib/ruby/gems/*`,
//!   `/var/lib/gems/*`, `/usr/local/bundle`, Debian's `/usr/share/rubygems-integration/*`). The
//!   `<name>.gemspec` a gem ships in its own directory is Ruby code for building it, not a record of
//!   an installation, and is not read.
//!
//! Platforms: a gem built for one platform (a native extension compiled for `x86_64-linux`, a
//! `java` gem) records it as its `platform`; it becomes the package's `arch`, as purls carry it
//! (`?platform=x86_64-linux`). Pure-Ruby gems (platform `ruby`), Python distributions and npm
//! packages have none: their metadata records no platform (a wheel's tags are in its `WHEEL` file).
//!
//! Several declared licences: npm's legacy `licenses` list is a choice according to npm's
//! documentation and becomes `A OR B`; a gem's `licenses` list and Python's licence classifiers say
//! no more than "these", and are listed as written, separated by `, `.

pub mod gem;
pub mod npm;
pub mod python;

use crate::package::{Ecosystem, Package};

/// Which reader handles a file that [`wanted`] picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LangFile {
    /// Python core metadata: `*.dist-info/METADATA`, `*.egg-info/PKG-INFO`, a `*.egg-info` file,
    /// `*.egg/EGG-INFO/PKG-INFO`.
    PythonMetadata,
    /// An npm package's manifest: `…/node_modules/[@scope/]<name>/package.json`.
    NpmPackageJson,
    /// A RubyGems specification stub: `…/specifications/[default/]*.gemspec`.
    Gemspec,
}

impl LangFile {
    /// The ecosystem of the packages this kind of file describes.
    pub fn ecosystem(self) -> Ecosystem {
        match self {
            LangFile::PythonMetadata => Ecosystem::Pypi,
            LangFile::NpmPackageJson => Ecosystem::Npm,
            LangFile::Gemspec => Ecosystem::Gem,
        }
    }
}

/// A language-package file that cannot be read: where it is, what was expected, what was found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{location}: expected {expected}, found {found}")]
pub struct LangError {
    /// The file, as an absolute path inside the image.
    pub location: String,
    /// What the reader expected.
    pub expected: String,
    /// What it found instead (an excerpt, quoted and escaped).
    pub found: String,
}

/// Which reader handles the regular file at `path` (relative to the image root:
/// `usr/lib/python3/dist-packages/requests-2.28.1.dist-info/METADATA`), or `None` for a file no
/// language reader needs. Ask about regular files only: a `*.egg-info` directory would look like
/// distutils' single-file form. A leading `./` or `/` is tolerated. Cheap: it looks at the last
/// four path components only, so it can be asked about every file of every layer.
pub fn wanted(path: &str) -> Option<LangFile> {
    let mut parts = relative(path).rsplit('/');
    let file = parts.next()?;
    let parent = parts.next().unwrap_or("");
    let grandparent = parts.next().unwrap_or("");
    if python::is_metadata(file, parent, grandparent) {
        Some(LangFile::PythonMetadata)
    } else if npm::is_manifest(file, parent, grandparent, parts.next().unwrap_or("")) {
        Some(LangFile::NpmPackageJson)
    } else if gem::is_specification(file, parent, grandparent) {
        Some(LangFile::Gemspec)
    } else {
        None
    }
}

/// Reads the file at `path` (as given to [`wanted`]) with the reader `kind` names. The package's
/// `location` is `/` + `path`; `files` is empty, `source_*` are `None`, and `arch` is `None`
/// except for a gem built for one platform (`x86_64-linux`, `java`). `Ok(None)` means
/// the file is well formed but describes no installed package (an npm manifest without a name or
/// version); malformed content is an error, never a panic.
pub fn read(kind: LangFile, path: &str, bytes: &[u8]) -> Result<Option<Package>, LangError> {
    let location = format!("/{}", relative(path));
    let declared = match kind {
        LangFile::PythonMetadata => python::parse(bytes).map(Some),
        LangFile::NpmPackageJson => npm::parse(bytes),
        LangFile::Gemspec => gem::parse(bytes).map(Some),
    };
    match declared {
        Ok(Some(declared)) => Ok(Some(Package {
            ecosystem: kind.ecosystem(),
            name: declared.name,
            version: declared.version,
            arch: declared.arch,
            source_name: None,
            source_version: None,
            license: declared.license,
            location,
            files: Vec::new(),
        })),
        Ok(None) => Ok(None),
        Err(Mismatch { expected, found }) => Err(LangError {
            location,
            expected,
            found,
        }),
    }
}

/// `path` without a leading `./` or `/`.
fn relative(path: &str) -> &str {
    let mut path = path;
    loop {
        if let Some(rest) = path.strip_prefix("./") {
            path = rest;
        } else if let Some(rest) = path.strip_prefix('/') {
            path = rest;
        } else {
            return path;
        }
    }
}

/// What a reader found in one file, before it becomes a [`Package`].
#[derive(Debug, PartialEq, Eq)]
struct Declared {
    /// The package's name, as written.
    name: String,
    /// Its version, as written.
    version: String,
    /// Its declared licence(s), when any.
    license: Option<String>,
    /// The platform it was built for, when it is specific to one (a gem's `x86_64-linux`).
    arch: Option<String>,
}

#[cfg(test)]
impl Declared {
    /// What the readers' tests expect, for a package that runs on any platform.
    fn new(name: &str, version: &str, license: Option<&str>) -> Declared {
        Declared {
            name: name.to_owned(),
            version: version.to_owned(),
            license: license.map(str::to_owned),
            arch: None,
        }
    }
}

/// What a reader expected and what it found instead; [`read`] adds the location.
#[derive(Debug, PartialEq, Eq)]
struct Mismatch {
    /// What was expected.
    expected: String,
    /// What was found (already an excerpt).
    found: String,
}

impl Mismatch {
    /// A mismatch whose finding is an excerpt of `found`.
    fn new(expected: impl Into<String>, found: &str) -> Mismatch {
        Mismatch {
            expected: expected.into(),
            found: excerpt(found),
        }
    }

    /// A mismatch whose finding is a description (`a number`, `invalid JSON (…)`), not text.
    fn described(expected: impl Into<String>, found: String) -> Mismatch {
        Mismatch {
            expected: expected.into(),
            found,
        }
    }

    /// A mismatch where nothing at all was found.
    fn missing(expected: impl Into<String>) -> Mismatch {
        Mismatch {
            expected: expected.into(),
            found: "none".to_owned(),
        }
    }
}

/// The longest excerpt of found text an error quotes, in characters.
const EXCERPT_CHARS: usize = 60;

/// `text` quoted and escaped for an error message, cut after [`EXCERPT_CHARS`] characters.
fn excerpt(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(EXCERPT_CHARS).collect();
    let more = if chars.next().is_some() { "…" } else { "" };
    format!("\"{}\"{more}", head.escape_debug())
}

/// Checks that `value` can be a package's `what` (name or version): not empty, one line, no
/// control characters, no bytes that were not valid UTF-8 (U+FFFD after lossy decoding).
fn identifier(what: &str, value: &str) -> Result<String, Mismatch> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Mismatch::new(format!("a non-empty {what}"), value));
    }
    if value
        .chars()
        .any(|c| c.is_control() || c == char::REPLACEMENT_CHARACTER)
    {
        return Err(Mismatch::new(
            format!("a {what} of printable UTF-8 characters on one line"),
            value,
        ));
    }
    Ok(value.to_owned())
}

/// `bytes` without a leading UTF-8 byte-order mark.
fn without_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wanted_picks_python_metadata_files() {
        for path in [
            "usr/lib/python3/dist-packages/requests-2.28.1.dist-info/METADATA",
            "usr/local/lib/python3.11/site-packages/pip-23.2.1.dist-info/METADATA",
            "opt/venv/lib/python3.12/site-packages/setuptools/_vendor/packaging-24.2.dist-info/METADATA",
            "usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO",
            "usr/lib/python3/dist-packages/python_apt-2.6.0.egg-info",
            "usr/lib/python2.7/site-packages/foo-1.0-py2.7.egg/EGG-INFO/PKG-INFO",
            "app/src/myapp.egg-info/PKG-INFO",
            "./usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO",
            "/usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO",
        ] {
            assert_eq!(wanted(path), Some(LangFile::PythonMetadata), "{path}");
        }
    }

    #[test]
    fn wanted_leaves_other_python_files() {
        for path in [
            "usr/lib/python3/dist-packages/requests-2.28.1.dist-info/RECORD",
            "usr/lib/python3/dist-packages/requests-2.28.1.dist-info/WHEEL",
            "usr/lib/python3/dist-packages/six-1.16.0.egg-info/SOURCES.txt",
            "srv/app/foo-1.0/PKG-INFO",
            "METADATA",
            ".dist-info/METADATA",
            ".egg-info",
            "usr/lib/python3/dist-packages/x.dist-info/metadata",
            "usr/lib/python3/dist-packages/EGG-INFO/PKG-INFO",
        ] {
            assert_eq!(wanted(path), None, "{path}");
        }
    }

    #[test]
    fn wanted_picks_manifests_of_node_modules_packages_only() {
        for path in [
            "app/node_modules/express/package.json",
            "node_modules/express/package.json",
            "app/node_modules/@babel/code-frame/package.json",
            "app/node_modules/debug/node_modules/ms/package.json",
            "app/node_modules/@a/b/node_modules/@c/d/package.json",
            "usr/lib/node_modules/npm/package.json",
            "usr/lib/node_modules/npm/node_modules/@npmcli/arborist/package.json",
            "app/node_modules/.pnpm/lodash@4.17.21/node_modules/lodash/package.json",
        ] {
            assert_eq!(wanted(path), Some(LangFile::NpmPackageJson), "{path}");
        }
        for path in [
            "app/package.json",
            "package.json",
            "app/node_modules/package.json",
            "app/node_modules/express/lib/package.json",
            "app/node_modules/@babel/package.json",
            "app/node_modules/@babel/code-frame/lib/package.json",
            "app/node_modules/.bin/package.json",
            "app/node_modules/.cache/package.json",
            "app/node_modules/_private/package.json",
            "app/node_modules/not-a-scope/x/package.json",
            "app/node_modules/@/x/package.json",
            "app/node_modules/.package-lock.json",
            "app/node_modules/express/package.json5",
        ] {
            assert_eq!(wanted(path), None, "{path}");
        }
    }

    #[test]
    fn wanted_picks_specification_stubs_only() {
        for path in [
            "usr/lib/ruby/gems/3.1.0/specifications/rake-13.0.6.gemspec",
            "usr/lib/ruby/gems/3.1.0/specifications/default/json-2.6.1.gemspec",
            "usr/share/rubygems-integration/all/specifications/rake-13.0.6.gemspec",
            "usr/local/bundle/specifications/nokogiri-1.15.0-x86_64-linux.gemspec",
            "var/lib/gems/3.1.0/specifications/rack-3.0.8.gemspec",
        ] {
            assert_eq!(wanted(path), Some(LangFile::Gemspec), "{path}");
        }
        for path in [
            "usr/local/bundle/gems/rack-3.0.8/rack.gemspec",
            "usr/local/bundle/specifications/rack-3.0.8.gemspec.bak",
            "usr/local/bundle/specifications/.gemspec",
            "usr/local/bundle/default/x-1.gemspec",
            "usr/local/bundle/specifications/other/x-1.gemspec",
        ] {
            assert_eq!(wanted(path), None, "{path}");
        }
    }

    #[test]
    fn read_fills_the_package_and_its_location() {
        let metadata =
            b"Metadata-Version: 2.1\nName: requests\nVersion: 2.28.1\nLicense: Apache 2.0\n";
        let path = "usr/lib/python3/dist-packages/requests-2.28.1.dist-info/METADATA";
        let package = read(LangFile::PythonMetadata, path, metadata);
        assert_eq!(
            package,
            Ok(Some(Package {
                ecosystem: Ecosystem::Pypi,
                name: "requests".to_owned(),
                version: "2.28.1".to_owned(),
                arch: None,
                source_name: None,
                source_version: None,
                license: Some("Apache 2.0".to_owned()),
                location: format!("/{path}"),
                files: Vec::new(),
            }))
        );
        let tolerated = read(LangFile::PythonMetadata, &format!("./{path}"), metadata);
        assert_eq!(tolerated, package);
    }

    #[test]
    fn read_sets_the_ecosystem_of_each_kind() {
        let npm = read(
            LangFile::NpmPackageJson,
            "node_modules/ms/package.json",
            br#"{"name":"ms","version":"2.1.3","license":"MIT"}"#,
        );
        let gem = read(
            LangFile::Gemspec,
            "usr/lib/ruby/gems/3.1.0/specifications/rake-13.0.6.gemspec",
            b"Gem::Specification.new do |s|\n  s.name = \"rake\".freeze\n  s.version = \"13.0.6\"\nend\n",
        );
        let ecosystem =
            |read: Result<Option<Package>, LangError>| read.ok().flatten().map(|p| p.ecosystem);
        assert_eq!(ecosystem(npm), Some(Ecosystem::Npm));
        assert_eq!(ecosystem(gem), Some(Ecosystem::Gem));
    }

    #[test]
    fn errors_name_the_file_and_what_was_expected_and_found() {
        let error = read(
            LangFile::PythonMetadata,
            "usr/lib/python3/dist-packages/x.dist-info/METADATA",
            b"Name: x\n",
        );
        assert_eq!(
            error.map_err(|e| e.to_string()),
            Err(
                "/usr/lib/python3/dist-packages/x.dist-info/METADATA: expected a `Version:` \
                 header, found none"
                    .to_owned()
            )
        );
        let error = read(
            LangFile::NpmPackageJson,
            "node_modules/x/package.json",
            b"[1, 2]",
        );
        assert_eq!(
            error.map_err(|e| e.to_string()),
            Err("/node_modules/x/package.json: expected a JSON object, found an array".to_owned())
        );
    }

    #[test]
    fn npm_manifest_without_name_or_version_is_no_package() {
        let read = read(
            LangFile::NpmPackageJson,
            "node_modules/x/package.json",
            br#"{"name":"x"}"#,
        );
        assert_eq!(read, Ok(None));
    }

    #[test]
    fn excerpts_are_short_quoted_and_escaped() {
        assert_eq!(excerpt("a\"b\n"), "\"a\\\"b\\n\"");
        let long = "x".repeat(EXCERPT_CHARS + 1);
        assert_eq!(
            excerpt(&long),
            format!("\"{}\"…", "x".repeat(EXCERPT_CHARS))
        );
    }

    #[test]
    fn identifiers_are_printable_single_lines() {
        assert_eq!(identifier("name", " six "), Ok("six".to_owned()));
        assert!(identifier("name", "").is_err());
        assert!(identifier("name", "a\nb").is_err());
        assert!(identifier("version", "1.\u{FFFD}").is_err());
    }

    const KINDS: [LangFile; 3] = [
        LangFile::PythonMetadata,
        LangFile::NpmPackageJson,
        LangFile::Gemspec,
    ];

    /// Header lines of Python metadata, with random values and continuations.
    fn metadata_line() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => "(Name|Version|name|VERSION): ?[ -~\u{e9}\u{FFFD}]{0,10}",
            1 => "(License|License-Expression|Classifier): ?(License :: )?[ -~]{0,12}",
            1 => "[ \t]{1,8}\\|?[ -~]{0,12}",
            1 => "[A-Za-z ]{0,6}:?",
        ]
    }

    /// Lines of a gemspec stub, with random values.
    fn gemspec_line() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "(s|spec)\\.(name|version|licenses?) ?= ?(\"[ -~]{0,8}\"|'[ -~]{0,8}'|%[qQw]?[{(<|\\[][ -~]{0,8}[})>|\\]]|\\[('[ -~]{0,4}'(, )?){0,3}\\]|nil|[A-Z][a-z]*)(\\.freeze)?",
            1 => "# stub: [ -~]{0,12}",
            1 => "(=begin|=end|Gem::Specification.new do \\|s\\||end|#.*)?",
        ]
    }

    /// A one-line `package.json` with random values.
    fn manifest() -> impl Strategy<Value = String> {
        "\\{\"name\": ?(\"[ -~]{0,6}\"|null|1), ?\"version\": ?\"[ -~]{0,5}\"(, ?\"licen[cs]es?\": ?(\"[ -~]{0,6}\"|\\[\\]|\\{\"type\": ?\"[ -~]{0,6}\"\\}))?\\}"
    }

    /// Reads `input` with `kind` and checks that a package read has a usable name and version.
    fn check_identifiers(kind: LangFile, input: &str) -> Result<(), TestCaseError> {
        if let Ok(Some(package)) = read(kind, "x", input.as_bytes()) {
            prop_assert_eq!(identifier("name", &package.name), Ok(package.name.clone()));
            prop_assert_eq!(
                identifier("version", &package.version),
                Ok(package.version.clone())
            );
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            for kind in KINDS {
                let _ = read(kind, "x", &bytes);
            }
        }

        #[test]
        fn random_text_never_panics(text in "[ -~\\t\\r\\n\u{e9}\u{FFFD}]{0,400}") {
            for kind in KINDS {
                let _ = read(kind, "x", text.as_bytes());
            }
        }

        #[test]
        fn random_paths_never_panic(path in "[a-z./@_-]{0,80}") {
            if let Some(kind) = wanted(&path) {
                let _ = read(kind, &path, b"");
            }
        }

        #[test]
        fn every_package_read_has_a_printable_name_and_version(
            metadata in proptest::collection::vec(metadata_line(), 0..10),
            gemspec in proptest::collection::vec(gemspec_line(), 0..10),
            manifest in manifest(),
            crlf in any::<bool>(),
        ) {
            let newline = if crlf { "\r\n" } else { "\n" };
            check_identifiers(LangFile::PythonMetadata, &metadata.join(newline))?;
            check_identifiers(LangFile::Gemspec, &gemspec.join(newline))?;
            check_identifiers(LangFile::NpmPackageJson, &manifest)?;
        }
    }
}

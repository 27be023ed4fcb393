//! The repositories updates are looked up in, as configured (`[[repos]]` in the scan worker's
//! TOML), validated into [`Repo`]s, and the fetcher's settings (`[updates]`).
//!
//! An example, `example.toml` beside this file (parsed with the `config` crate by the tests):
//!
#![doc = concat!("```toml\n", include_str!("example.toml"), "```")]

use std::collections::HashSet;
use std::path::PathBuf;

use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::package::{Ecosystem, OsIdentity};

/// A repository as written in the configuration; [`RepoConfig::validate`] turns it into a
/// [`Repo`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    /// Human name, reported as the `repo` of each update (`debian-bookworm`).
    pub name: String,
    /// The repository format.
    pub kind: RepoKind,
    /// Base URL, `http` or `https`: the archive root (apt: holds `dists/`, or the flat
    /// repository's parent), the directory holding `repodata/` (yum), or the directory holding
    /// `<arch>/APKINDEX.tar.gz` (apk).
    pub url: String,
    /// apt only: the suite (`bookworm`, `stable`), read from `dists/<suite>/`; a value ending
    /// in `/` (`./`, `sub/`) names a flat repository directory under `url` instead.
    #[serde(default)]
    pub suite: Option<String>,
    /// apt only, not for a flat repository: the components (`main`, `contrib`).
    #[serde(default)]
    pub components: Vec<String>,
    /// apt (not flat) and apk: the architectures to read indexes for (`amd64`; `x86_64`).
    #[serde(default)]
    pub architectures: Vec<String>,
    /// Which images the repository applies to.
    pub applies_to: OsMatch,
}

/// The format of a repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RepoKind {
    /// Debian/Ubuntu: `InRelease`/`Release` and `Packages`.
    Apt,
    /// RHEL/Fedora/CentOS family: `repodata/repomd.xml` and its primary metadata.
    Yum,
    /// Alpine: `APKINDEX.tar.gz`.
    Apk,
}

impl RepoKind {
    /// `apt`, `yum` or `apk`.
    pub fn as_str(self) -> &'static str {
        match self {
            RepoKind::Apt => "apt",
            RepoKind::Yum => "yum",
            RepoKind::Apk => "apk",
        }
    }

    /// The packaging system whose packages the repository holds.
    pub fn ecosystem(self) -> Ecosystem {
        match self {
            RepoKind::Apt => Ecosystem::Deb,
            RepoKind::Yum => Ecosystem::Rpm,
            RepoKind::Apk => Ecosystem::Apk,
        }
    }
}

/// Which images a repository applies to, from their OS identity.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OsMatch {
    /// The os-release `ID` (`debian`, `rocky`, `alpine`), compared exactly.
    pub id: String,
    /// A `VERSION_ID` prefix by dot-separated parts: `3.19` matches `3.19` and `3.19.1`, not
    /// `3.190`.
    #[serde(default)]
    pub version_id: Option<String>,
    /// The `VERSION_CODENAME` (`bookworm`), compared exactly.
    #[serde(default)]
    pub codename: Option<String>,
}

impl OsMatch {
    /// Whether an image with OS `os` uses this repository. A condition on a version or codename
    /// the image does not declare does not match.
    pub fn matches(&self, os: &OsIdentity) -> bool {
        let version_matches = match (&self.version_id, &os.version_id) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(prefix), Some(version)) => {
                let mut wanted = prefix.split('.');
                let mut have = version.split('.');
                wanted.all(|part| have.next() == Some(part))
            }
        };
        let codename_matches = match (&self.codename, &os.codename) {
            (None, _) => true,
            (Some(wanted), have) => have.as_ref() == Some(wanted),
        };
        self.id == os.id && version_matches && codename_matches
    }
}

/// A validated repository: what the fetcher reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repo {
    /// The configured name, unique among the repositories.
    pub name: String,
    /// Where and what to fetch.
    pub source: RepoSource,
    /// Which images it applies to.
    pub applies_to: OsMatch,
}

impl Repo {
    /// The packaging system whose packages the repository holds.
    pub fn ecosystem(&self) -> Ecosystem {
        self.source.kind().ecosystem()
    }
}

/// Where a repository's indexes are, per kind. Every URL is `http(s)`, without credentials,
/// query or fragment, and ends with `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepoSource {
    /// An apt repository.
    Apt {
        /// The directory holding `InRelease`/`Release`: `url/dists/<suite>/`, or the flat
        /// directory `url/<suite>`.
        release_dir: Url,
        /// The `Packages` directories to read, relative to `release_dir`: `main/binary-amd64`
        /// per component and architecture, or one empty string for a flat repository.
        package_dirs: Vec<String>,
    },
    /// A yum repository: the directory holding `repodata/`.
    Yum {
        /// Base URL.
        base: Url,
    },
    /// An apk repository.
    Apk {
        /// One `…/<arch>/APKINDEX.tar.gz` per configured architecture.
        indexes: Vec<Url>,
    },
}

impl RepoSource {
    /// The format.
    pub fn kind(&self) -> RepoKind {
        match self {
            RepoSource::Apt { .. } => RepoKind::Apt,
            RepoSource::Yum { .. } => RepoKind::Yum,
            RepoSource::Apk { .. } => RepoKind::Apk,
        }
    }
}

/// A repository or package index configuration that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{section}[{index}] ({name:?}): {field}: expected {expected}, found {found}")]
pub struct ConfigError {
    /// The configuration list: `repos` or `indexes`.
    pub section: &'static str,
    /// Position in the `[[repos]]` list (0-based).
    pub index: usize,
    /// The configured name (possibly empty).
    pub name: String,
    /// The offending setting.
    pub field: &'static str,
    /// What it must be.
    pub expected: String,
    /// What it is.
    pub found: String,
}

impl RepoConfig {
    /// Checks the configuration of the repository at position `index` and resolves its URLs.
    pub fn validate(&self, index: usize) -> Result<Repo, ConfigError> {
        let place = EntryPlace {
            section: "repos",
            index,
            name: &self.name,
        };
        let error = |field, expected: &str, found: String| place.error(field, expected, found);
        place.check_name()?;
        if self.applies_to.id.trim().is_empty() {
            return Err(error(
                "applies_to.id",
                "an os-release ID such as \"debian\"",
                format!("{:?}", self.applies_to.id),
            ));
        }
        let base = place.base_url(&self.url)?;
        let kind = self.kind.as_str();
        let only_for = |field, allowed: &str| {
            error(
                field,
                &format!("no {field} (it applies to {allowed} only)"),
                format!("{field} on a {kind} repository"),
            )
        };
        let source = match self.kind {
            RepoKind::Apt => {
                let suite = self.suite.as_deref().ok_or_else(|| {
                    error(
                        "suite",
                        "a suite (\"bookworm\") or a flat directory (\"./\")",
                        "none".into(),
                    )
                })?;
                if !is_relative_path(suite) {
                    return Err(error(
                        "suite",
                        "a relative path without `..` (\"bookworm\", \"./\")",
                        format!("{suite:?}"),
                    ));
                }
                if suite.ends_with('/') {
                    if !self.components.is_empty() {
                        return Err(error(
                            "components",
                            "no components for a flat repository (suite ending in /)",
                            format!("{:?}", self.components),
                        ));
                    }
                    if !self.architectures.is_empty() {
                        return Err(error(
                            "architectures",
                            "no architectures for a flat repository (suite ending in /): its one Packages file is read",
                            format!("{:?}", self.architectures),
                        ));
                    }
                    RepoSource::Apt {
                        release_dir: join_dir(&base, suite),
                        package_dirs: vec![String::new()],
                    }
                } else {
                    if self.components.is_empty()
                        || !self.components.iter().all(|c| is_relative_path(c))
                    {
                        return Err(error(
                            "components",
                            "at least one component such as \"main\" (relative, without `..`)",
                            format!("{:?}", self.components),
                        ));
                    }
                    let architectures = self.architectures().map_err(|found| {
                        error(
                            "architectures",
                            "at least one architecture such as \"amd64\"",
                            found,
                        )
                    })?;
                    let package_dirs = self
                        .components
                        .iter()
                        .flat_map(|component| {
                            let component = component.trim_end_matches('/');
                            architectures
                                .iter()
                                .map(move |arch| format!("{component}/binary-{arch}"))
                        })
                        .collect();
                    RepoSource::Apt {
                        release_dir: join_dir(&base, &format!("dists/{suite}/")),
                        package_dirs,
                    }
                }
            }
            RepoKind::Yum => {
                if self.suite.is_some() {
                    return Err(only_for("suite", "apt"));
                }
                if !self.components.is_empty() {
                    return Err(only_for("components", "apt"));
                }
                if !self.architectures.is_empty() {
                    return Err(only_for("architectures", "apt and apk"));
                }
                RepoSource::Yum { base }
            }
            RepoKind::Apk => {
                if self.suite.is_some() {
                    return Err(only_for("suite", "apt"));
                }
                if !self.components.is_empty() {
                    return Err(only_for("components", "apt"));
                }
                let architectures = self.architectures().map_err(|found| {
                    error(
                        "architectures",
                        "at least one architecture such as \"x86_64\"",
                        found,
                    )
                })?;
                RepoSource::Apk {
                    indexes: architectures
                        .iter()
                        .map(|arch| join_dir(&base, &format!("{arch}/APKINDEX.tar.gz")))
                        .collect(),
                }
            }
        };
        Ok(Repo {
            name: self.name.clone(),
            source,
            applies_to: self.applies_to.clone(),
        })
    }

    /// The architectures, when there is at least one and each is a plain name.
    fn architectures(&self) -> Result<&[String], String> {
        let plain = |arch: &String| {
            !arch.is_empty()
                && arch
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if self.architectures.is_empty() || !self.architectures.iter().all(plain) {
            return Err(format!("{:?}", self.architectures));
        }
        Ok(&self.architectures)
    }
}

/// Where an entry of a configuration list is: what every error about it names.
pub(crate) struct EntryPlace<'a> {
    /// The list: `repos` or `indexes`.
    pub(crate) section: &'static str,
    /// Position in the list (0-based).
    pub(crate) index: usize,
    /// The entry's configured name.
    pub(crate) name: &'a str,
}

impl EntryPlace<'_> {
    /// The error of `field` at this place.
    pub(crate) fn error(&self, field: &'static str, expected: &str, found: String) -> ConfigError {
        ConfigError {
            section: self.section,
            index: self.index,
            name: self.name.to_owned(),
            field,
            expected: expected.to_owned(),
            found,
        }
    }

    /// The entry's name must not be blank.
    pub(crate) fn check_name(&self) -> Result<(), ConfigError> {
        if self.name.trim().is_empty() {
            return Err(self.error("name", "a non-empty name", format!("{:?}", self.name)));
        }
        Ok(())
    }

    /// The entry's `url` as a base directory URL.
    pub(crate) fn base_url(&self, url: &str) -> Result<Url, ConfigError> {
        parse_base_url(url).map_err(|expected| self.error("url", expected, format!("{url:?}")))
    }
}

/// Validates every repository and checks that their names are unique.
pub fn validate_repos(configs: &[RepoConfig]) -> Result<Vec<Repo>, ConfigError> {
    validate_unique("repos", configs, RepoConfig::validate, |repo| &repo.name)
}

/// Validates each of `configs` (the list `section`) with `validate`, and checks that no two of
/// them share a name (`name_of`).
pub(crate) fn validate_unique<C, T>(
    section: &'static str,
    configs: &[C],
    validate: impl Fn(&C, usize) -> Result<T, ConfigError>,
    name_of: impl Fn(&T) -> &String,
) -> Result<Vec<T>, ConfigError> {
    let mut names = HashSet::new();
    configs
        .iter()
        .enumerate()
        .map(|(index, config)| {
            let validated = validate(config, index)?;
            let name = name_of(&validated);
            if !names.insert(name.clone()) {
                let place = EntryPlace {
                    section,
                    index,
                    name,
                };
                return Err(place.error(
                    "name",
                    &format!("a name no other entry of {section} has"),
                    format!("{name:?} again"),
                ));
            }
            Ok(validated)
        })
        .collect()
}

/// `url` as a base directory URL (ending in `/`), or what it should have been.
fn parse_base_url(url: &str) -> Result<Url, &'static str> {
    let mut parsed = Url::parse(url).map_err(|_| "an absolute http(s) URL")?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("an http:// or https:// URL");
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("a URL with a host");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("a URL without credentials (they would end up in logs and reports)");
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("a URL without query or fragment");
    }
    if !parsed.path().ends_with('/') {
        let path = format!("{}/", parsed.path());
        parsed.set_path(&path);
    }
    Ok(parsed)
}

/// Whether `path` is relative, non-empty and free of `..` parts (so that joining it to a base
/// URL stays under it).
fn is_relative_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains(['?', '#', '\\'])
        && !path.split('/').any(|part| part == "..")
}

/// `base` (a directory URL) joined with a relative path checked by [`is_relative_path`] or
/// built from checked parts.
fn join_dir(base: &Url, relative: &str) -> Url {
    let mut url = base.clone();
    let path = format!("{}{}", base.path(), relative.trim_start_matches("./"));
    url.set_path(&path);
    url
}

/// The fetcher's settings: `[updates]` in the scan worker's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FetchSettings {
    /// Where downloaded index files are kept, named by their checksum.
    pub cache_dir: PathBuf,
    /// Time limit of each HTTP request (connection and whole response), in milliseconds.
    pub timeout_ms: u64,
    /// Largest file downloaded, in bytes.
    pub max_download_bytes: u64,
    /// Largest index once decompressed, in bytes (Debian's main `Packages` is ~50 MB).
    pub max_index_bytes: u64,
    /// Largest answer of a package index (`[[indexes]]`) about one package, in bytes (an
    /// abbreviated npm packument of a popular package is a few MB).
    pub max_document_bytes: u64,
    /// How long a package index's answer about one package is reused, in milliseconds.
    pub index_cache_ttl_ms: u64,
    /// Most package-index lookups one scan makes (one per package and index); packages beyond
    /// are reported as not checked.
    pub max_index_lookups: u64,
}

impl Default for FetchSettings {
    fn default() -> Self {
        FetchSettings {
            cache_dir: PathBuf::from("/var/cache/slipway/scan/repos"),
            timeout_ms: 60_000,
            max_download_bytes: 256 << 20,
            max_index_bytes: 1 << 30,
            max_document_bytes: 32 << 20,
            index_cache_ttl_ms: 3_600_000,
            max_index_lookups: 10_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml_like: &[(&str, &str)]) -> RepoConfig {
        let mut value = serde_json::Map::new();
        value.insert("applies_to".into(), serde_json::json!({"id": "debian"}));
        for (key, json) in toml_like {
            value.insert((*key).into(), serde_json::from_str(json).unwrap());
        }
        serde_json::from_value(serde_json::Value::Object(value)).unwrap()
    }

    fn os(id: &str, version_id: Option<&str>, codename: Option<&str>) -> OsIdentity {
        OsIdentity {
            id: id.into(),
            version_id: version_id.map(Into::into),
            codename: codename.map(Into::into),
            ..OsIdentity::default()
        }
    }

    #[test]
    fn apt_dists_layout_lists_component_and_architecture_dirs() {
        let repo = config(&[
            ("name", r#""deb""#),
            ("kind", r#""apt""#),
            ("url", r#""https://deb.example.org/debian""#),
            ("suite", r#""bookworm""#),
            ("components", r#"["main", "contrib"]"#),
            ("architectures", r#"["amd64", "arm64"]"#),
        ])
        .validate(0)
        .unwrap();
        assert_eq!(repo.ecosystem(), Ecosystem::Deb);
        let RepoSource::Apt {
            release_dir,
            package_dirs,
        } = repo.source
        else {
            panic!("apt");
        };
        assert_eq!(
            release_dir.as_str(),
            "https://deb.example.org/debian/dists/bookworm/"
        );
        assert_eq!(
            package_dirs,
            [
                "main/binary-amd64",
                "main/binary-arm64",
                "contrib/binary-amd64",
                "contrib/binary-arm64"
            ]
        );
    }

    #[test]
    fn apt_flat_layout_reads_one_packages_file() {
        for (url, suite, dir) in [
            (
                "http://127.0.0.1:8080/flat",
                "./",
                "http://127.0.0.1:8080/flat/",
            ),
            (
                "http://127.0.0.1:8080/",
                "sub/",
                "http://127.0.0.1:8080/sub/",
            ),
        ] {
            let repo = config(&[
                ("name", r#""flat""#),
                ("kind", r#""apt""#),
                ("url", &format!("{url:?}")),
                ("suite", &format!("{suite:?}")),
            ])
            .validate(0)
            .unwrap();
            assert_eq!(
                repo.source,
                RepoSource::Apt {
                    release_dir: Url::parse(dir).unwrap(),
                    package_dirs: vec![String::new()],
                }
            );
        }
    }

    #[test]
    fn yum_and_apk_urls() {
        let yum = config(&[
            ("name", r#""el""#),
            ("kind", r#""yum""#),
            ("url", r#""https://mirror.example.org/el/9/os/x86_64""#),
        ])
        .validate(0)
        .unwrap();
        assert_eq!(
            yum.source,
            RepoSource::Yum {
                base: Url::parse("https://mirror.example.org/el/9/os/x86_64/").unwrap()
            }
        );
        let apk = config(&[
            ("name", r#""alpine""#),
            ("kind", r#""apk""#),
            ("url", r#""https://mirror.example.org/alpine/v3.19/main/""#),
            ("architectures", r#"["x86_64", "aarch64"]"#),
        ])
        .validate(0)
        .unwrap();
        let RepoSource::Apk { indexes } = apk.source else {
            panic!("apk");
        };
        assert_eq!(
            indexes.iter().map(Url::as_str).collect::<Vec<_>>(),
            [
                "https://mirror.example.org/alpine/v3.19/main/x86_64/APKINDEX.tar.gz",
                "https://mirror.example.org/alpine/v3.19/main/aarch64/APKINDEX.tar.gz"
            ]
        );
    }

    #[test]
    fn bad_configurations_say_what_is_wrong() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[
                    ("name", r#""x""#),
                    ("kind", r#""yum""#),
                    ("url", r#""ftp://h/""#),
                ],
                "repos[3] (\"x\"): url: expected an http:// or https:// URL, found \"ftp://h/\"",
            ),
            (
                &[
                    ("name", r#""x""#),
                    ("kind", r#""yum""#),
                    ("url", r#""https://u:p@h/""#),
                ],
                "repos[3] (\"x\"): url: expected a URL without credentials (they would end up in \
                 logs and reports), found \"https://u:p@h/\"",
            ),
            (
                &[
                    ("name", r#""x""#),
                    ("kind", r#""yum""#),
                    ("url", r#""h/x""#),
                ],
                "repos[3] (\"x\"): url: expected an absolute http(s) URL, found \"h/x\"",
            ),
            (
                &[
                    ("name", r#""x""#),
                    ("kind", r#""apt""#),
                    ("url", r#""https://h/""#),
                ],
                "repos[3] (\"x\"): suite: expected a suite (\"bookworm\") or a flat directory \
                 (\"./\"), found none",
            ),
            (
                &[
                    ("name", r#""x""#),
                    ("kind", r#""apt""#),
                    ("url", r#""https://h/""#),
                    ("suite", r#""../up""#),
                ],
                "repos[3] (\"x\"): suite: expected a relative path without `..` (\"bookworm\", \
                 \"./\"), found \"../up\"",
            ),
            (
                &[
                    ("name", r#""x""#),
                    ("kind", r#""apt""#),
                    ("url", r#""https://h/""#),
                    ("suite", r#""bookworm""#),
                    ("components", r#"["main"]"#),
                ],
                "repos[3] (\"x\"): architectures: expected at least one architecture such as \
                 \"amd64\", found []",
            ),
            (
                &[
                    ("name", r#""x""#),
                    ("kind", r#""yum""#),
                    ("url", r#""https://h/""#),
                    ("suite", r#""bookworm""#),
                ],
                "repos[3] (\"x\"): suite: expected no suite (it applies to apt only), found \
                 suite on a yum repository",
            ),
            (
                &[
                    ("name", r#""x""#),
                    ("kind", r#""apk""#),
                    ("url", r#""https://h/""#),
                    ("architectures", r#"["../x"]"#),
                ],
                "repos[3] (\"x\"): architectures: expected at least one architecture such as \
                 \"x86_64\", found [\"../x\"]",
            ),
            (
                &[
                    ("name", r#""""#),
                    ("kind", r#""yum""#),
                    ("url", r#""https://h/""#),
                ],
                "repos[3] (\"\"): name: expected a non-empty name, found \"\"",
            ),
        ];
        for (fields, message) in cases {
            let error = config(fields).validate(3).unwrap_err();
            assert_eq!(error.to_string(), *message);
        }
    }

    #[test]
    fn names_are_unique_and_unknown_fields_refused() {
        let one = config(&[
            ("name", r#""x""#),
            ("kind", r#""yum""#),
            ("url", r#""https://h/""#),
        ]);
        let error = validate_repos(&[one.clone(), one]).unwrap_err();
        assert_eq!(error.index, 1);
        assert_eq!(error.field, "name");
        let unknown: Result<RepoConfig, _> = serde_json::from_str(
            r#"{"name":"x","kind":"yum","url":"https://h/","applies_to":{"id":"a"},"mirror":1}"#,
        );
        assert!(unknown.is_err());
        let kind: Result<RepoConfig, _> = serde_json::from_str(
            r#"{"name":"x","kind":"zypper","url":"https://h/","applies_to":{"id":"a"}}"#,
        );
        assert!(kind.is_err());
    }

    #[test]
    fn os_matching() {
        let matcher = |version_id: Option<&str>, codename: Option<&str>| OsMatch {
            id: "alpine".into(),
            version_id: version_id.map(Into::into),
            codename: codename.map(Into::into),
        };
        let alpine = os("alpine", Some("3.19.1"), None);
        assert!(matcher(None, None).matches(&alpine));
        assert!(matcher(Some("3.19"), None).matches(&alpine));
        assert!(matcher(Some("3"), None).matches(&alpine));
        assert!(matcher(Some("3.19.1"), None).matches(&alpine));
        assert!(!matcher(Some("3.1"), None).matches(&alpine));
        assert!(!matcher(Some("3.19.1.2"), None).matches(&alpine));
        assert!(!matcher(None, Some("x")).matches(&alpine));
        assert!(!matcher(None, None).matches(&os("debian", None, None)));
        assert!(!matcher(Some("3"), None).matches(&os("alpine", None, None)));
        let bookworm = OsMatch {
            id: "debian".into(),
            version_id: Some("12".into()),
            codename: Some("bookworm".into()),
        };
        assert!(bookworm.matches(&os("debian", Some("12"), Some("bookworm"))));
        assert!(!bookworm.matches(&os("debian", Some("12"), Some("trixie"))));
    }

    /// The scan worker's configuration as far as updates are concerned.
    #[derive(Deserialize)]
    struct ScanConfig {
        updates: FetchSettings,
        repos: Vec<RepoConfig>,
        indexes: Vec<crate::updates::IndexConfig>,
    }

    #[test]
    fn the_documented_example_is_valid() {
        let parsed: ScanConfig = ::config::Config::builder()
            .add_source(::config::File::from_str(
                include_str!("example.toml"),
                ::config::FileFormat::Toml,
            ))
            .build()
            .and_then(::config::Config::try_deserialize)
            .unwrap();
        assert_eq!(parsed.updates, FetchSettings::default());
        let indexes = crate::updates::validate_indexes(&parsed.indexes).unwrap();
        assert_eq!(
            indexes.iter().map(|i| i.kind).collect::<Vec<_>>(),
            [
                crate::updates::IndexKind::Pypi,
                crate::updates::IndexKind::Npm,
                crate::updates::IndexKind::Rubygems
            ]
        );
        let repos = validate_repos(&parsed.repos).unwrap();
        assert_eq!(
            repos.iter().map(|r| r.source.kind()).collect::<Vec<_>>(),
            [RepoKind::Apt, RepoKind::Apt, RepoKind::Yum, RepoKind::Apk]
        );
        assert!(
            repos[3]
                .applies_to
                .matches(&os("alpine", Some("3.19.1"), None))
        );
    }

    #[test]
    fn fetch_settings_have_defaults() {
        let settings: FetchSettings =
            serde_json::from_str(r#"{"cache_dir": "/tmp/c", "timeout_ms": 5}"#).unwrap();
        assert_eq!(settings.cache_dir, PathBuf::from("/tmp/c"));
        assert_eq!(settings.timeout_ms, 5);
        assert_eq!(
            settings.max_index_bytes,
            FetchSettings::default().max_index_bytes
        );
    }
}

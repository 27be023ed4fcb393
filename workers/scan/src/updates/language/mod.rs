//! Updates of language packages: which installed Python distributions, npm packages and Ruby
//! gems have a newer release on the package indexes configured for their ecosystem
//! (`[[indexes]]` in the scan worker's configuration).
//!
//! Pure core: [`IndexConfig`] validated into [`PackageIndex`]es, the [`documents`] parsers (what
//! an index lists for one package), and [`find_language_updates`], which compares the inventory
//! with what the indexes answered using [`crate::version::compare`]. Shell: [`lookup`] asks the
//! indexes, concurrently and with a response cache, one document per package and index.
//!
//! What counts as newer, as each ecosystem's installer decides by default:
//! - pre-releases (PEP 440 `a`/`b`/`rc`/`.dev`, SemVer `-beta.1`, a gem version with a letter)
//!   only when the installed version is one too (pip, npm and gem skip them otherwise);
//! - PyPI: a version whose every file is yanked (PEP 592) is not offered, as pip skips it;
//! - gems: a release built for a platform only replaces an installed gem of that platform; a
//!   pure-Ruby release replaces any;
//! - an installed version its ecosystem cannot parse is never reported (every version would
//!   look newer than it).

pub mod documents;
pub mod lookup;

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

use reqwest::Url;
use serde::{Deserialize, Serialize};

use super::config::{ConfigError, EntryPlace, validate_unique};
use crate::package::{Ecosystem, Inventory, Package};
use crate::version;

/// The protocol of a package index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IndexKind {
    /// A PyPI simple index (PEP 503 HTML or PEP 691 JSON, negotiated): `url` is the index root
    /// holding `<name>/` (`https://pypi.org/simple/`, a devpi or pypiserver `…/simple/`).
    Pypi,
    /// An npm registry: `url` is its root, holding the packuments (`https://registry.npmjs.org/`).
    Npm,
    /// A RubyGems source's versions API: `url` is the root holding
    /// `api/v1/versions/<name>.json` (`https://rubygems.org/`).
    Rubygems,
    /// A RubyGems source's compact index (what Bundler reads): `url` holds `info/<name>`.
    RubygemsCompact,
}

impl IndexKind {
    /// The name used in the configuration (`pypi`, `npm`, `rubygems`, `rubygems-compact`).
    pub fn as_str(self) -> &'static str {
        match self {
            IndexKind::Pypi => "pypi",
            IndexKind::Npm => "npm",
            IndexKind::Rubygems => "rubygems",
            IndexKind::RubygemsCompact => "rubygems-compact",
        }
    }

    /// The ecosystem whose packages the index offers.
    pub fn ecosystem(self) -> Ecosystem {
        match self {
            IndexKind::Pypi => Ecosystem::Pypi,
            IndexKind::Npm => Ecosystem::Npm,
            IndexKind::Rubygems | IndexKind::RubygemsCompact => Ecosystem::Gem,
        }
    }
}

/// A package index as written in the configuration (`[[indexes]]`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IndexConfig {
    /// Human name, reported as the `index` of each update (`pypi-mirror`).
    pub name: String,
    /// The protocol.
    pub kind: IndexKind,
    /// Base URL, `http` or `https`, without credentials (see [`IndexKind`] for what it holds).
    pub url: String,
}

/// A validated package index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageIndex {
    /// The configured name, unique among the indexes.
    pub name: String,
    /// The protocol.
    pub kind: IndexKind,
    /// The base URL, ending in `/`.
    pub base: Url,
}

impl PackageIndex {
    /// The URL of the document listing the releases of the package named `lookup_name` (as
    /// [`lookup_name`] gives it), or `None` when the name cannot be one of this index's.
    pub fn document_url(&self, lookup_name: &str) -> Option<Url> {
        if !valid_lookup_name(self.kind.ecosystem(), lookup_name) {
            return None;
        }
        let relative = match self.kind {
            IndexKind::Pypi => format!("{lookup_name}/"),
            // A scoped name's `/` is escaped: `@scope%2fname`, as npm's client asks.
            IndexKind::Npm => lookup_name.replace('/', "%2f"),
            IndexKind::Rubygems => format!("api/v1/versions/{lookup_name}.json"),
            IndexKind::RubygemsCompact => format!("info/{lookup_name}"),
        };
        let mut url = self.base.clone();
        url.set_path(&format!("{}{relative}", self.base.path()));
        Some(url)
    }
}

/// The name a package is looked up under in its ecosystem's indexes: PEP 503's normal form for
/// Python, the name as installed for npm and gems.
pub fn lookup_name(package: &Package) -> String {
    match package.ecosystem {
        Ecosystem::Pypi => crate::lang::python::normalized_name(&package.name),
        _ => package.name.clone(),
    }
}

/// Whether `name` is a name the ecosystem allows, so that it can go into a URL path as it is:
/// PEP 503 names are `[a-z0-9-]`; npm names `[A-Za-z0-9._~-]` with an optional `@scope/`
/// (npm's own rules, with the upper case of old packages); gem names `[A-Za-z0-9._-]`. Nothing
/// starting with `.`, at most 214 characters (npm's limit).
fn valid_lookup_name(ecosystem: Ecosystem, name: &str) -> bool {
    let plain = |part: &str, extra: &[u8]| {
        !part.is_empty()
            && !part.starts_with('.')
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b) || extra.contains(&b))
    };
    if name.len() > 214 {
        return false;
    }
    match ecosystem {
        Ecosystem::Pypi => {
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !name.is_empty()
        }
        Ecosystem::Npm => match name.strip_prefix('@') {
            Some(scoped) => scoped
                .split_once('/')
                .is_some_and(|(scope, rest)| plain(scope, b"~") && plain(rest, b"~")),
            None => plain(name, b"~"),
        },
        Ecosystem::Gem => plain(name, b""),
        Ecosystem::Deb | Ecosystem::Rpm | Ecosystem::Apk => false,
    }
}

impl IndexConfig {
    /// Checks the configuration of the index at position `position`.
    pub fn validate(&self, position: usize) -> Result<PackageIndex, ConfigError> {
        let place = EntryPlace {
            section: "indexes",
            index: position,
            name: &self.name,
        };
        place.check_name()?;
        let base = place.base_url(&self.url)?;
        Ok(PackageIndex {
            name: self.name.clone(),
            kind: self.kind,
            base,
        })
    }
}

/// Validates every index and checks that their names are unique.
pub fn validate_indexes(configs: &[IndexConfig]) -> Result<Vec<PackageIndex>, ConfigError> {
    validate_unique("indexes", configs, IndexConfig::validate, |index| {
        &index.name
    })
}

/// One release an index lists for a package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// The version, as the index writes it.
    pub version: String,
    /// The platform a gem release is built for (`x86_64-linux`, `java`); `None` for pure-Ruby
    /// gems and for the other ecosystems.
    pub platform: Option<String>,
    /// Withdrawn from installation (PEP 592; RubyGems' yanked versions).
    pub yanked: bool,
}

/// What one index answered for one package: its releases (none when it does not know the
/// package).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexAnswer {
    /// The index's configured name.
    pub index: String,
    /// The ecosystem of its packages.
    pub ecosystem: Ecosystem,
    /// The package, as [`lookup_name`] names it.
    pub name: String,
    /// The releases listed.
    pub releases: Vec<Release>,
}

/// An installed language package with a newer release on a configured index.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct LanguageUpdate {
    /// `pypi`, `npm` or `gem`.
    pub ecosystem: Ecosystem,
    /// Package name, as installed.
    pub name: String,
    /// The installed version.
    pub installed: String,
    /// The newest version the indexes offer.
    pub available: String,
    /// The name of the index offering it.
    pub index: String,
    /// Where the installed package's metadata is in the image.
    pub location: String,
}

/// Whether `version` is a pre-release of `ecosystem`; `None` when the ecosystem cannot parse
/// it.
fn prerelease(ecosystem: Ecosystem, version: &str) -> Option<bool> {
    version::is_prerelease(ecosystem, version).ok()
}

/// The updates of `inventory`'s language packages among `answers`: for each installed Python,
/// npm or gem package, the highest release offered under its lookup name that it may move to
/// (see the module documentation), reported when strictly newer than the installed version.
/// Where several indexes offer that version, the first in `answers` is named. Sorted, without
/// duplicates.
pub fn find_language_updates(
    inventory: &Inventory,
    answers: &[IndexAnswer],
) -> Vec<LanguageUpdate> {
    let mut offers: HashMap<(Ecosystem, &str), Vec<(&Release, &str)>> = HashMap::new();
    for answer in answers {
        for release in &answer.releases {
            offers
                .entry((answer.ecosystem, answer.name.as_str()))
                .or_default()
                .push((release, answer.index.as_str()));
        }
    }
    let mut updates: Vec<LanguageUpdate> = inventory
        .packages
        .iter()
        .filter(|p| {
            matches!(
                p.ecosystem,
                Ecosystem::Pypi | Ecosystem::Npm | Ecosystem::Gem
            )
        })
        .filter_map(|installed| {
            let ecosystem = installed.ecosystem;
            let installed_pre = prerelease(ecosystem, &installed.version)?;
            let name = lookup_name(installed);
            let candidates = offers.get(&(ecosystem, name.as_str()))?;
            let (best, index) = super::newest(
                ecosystem,
                candidates.iter().filter(|(release, _)| {
                    !release.yanked
                        && platform_fits(installed.arch.as_deref(), release.platform.as_deref())
                        && prerelease(ecosystem, &release.version)
                            .is_some_and(|pre| installed_pre || !pre)
                }),
                |(release, _)| release.version.as_str(),
            )?;
            (version::compare(ecosystem, &best.version, &installed.version) == Ordering::Greater)
                .then(|| LanguageUpdate {
                    ecosystem,
                    name: installed.name.clone(),
                    installed: installed.version.clone(),
                    available: best.version.clone(),
                    index: (*index).to_owned(),
                    location: installed.location.clone(),
                })
        })
        .collect();
    updates.sort();
    updates.dedup();
    updates
}

/// Whether a release built for `release` may replace a gem installed for `installed`: a
/// pure-Ruby release (no platform) replaces any; a platform release only the same platform.
fn platform_fits(installed: Option<&str>, release: Option<&str>) -> bool {
    match release {
        None => true,
        Some(platform) => installed == Some(platform),
    }
}

/// The language-package part of a scan report: which indexes were asked, the updates they
/// offer, the indexes that failed, or why nothing was checked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LanguageUpdatesReport {
    /// Names of the indexes asked about at least one package.
    pub indexes: Vec<String>,
    /// One entry per installed package an index has a newer release of.
    pub updates: Vec<LanguageUpdate>,
    /// Indexes that could not answer (each names the index, how many lookups failed, and the
    /// first failure), and packages left unchecked by the lookup limit.
    pub errors: Vec<String>,
    /// Why no index was asked, when none was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_checked: Option<String>,
}

/// The lookups a scan of `inventory` needs: each configured index of an ecosystem the image has
/// packages of, with the distinct lookup names of those packages (sorted), names that cannot be
/// the ecosystem's left out.
pub fn lookups<'a>(
    inventory: &Inventory,
    indexes: &'a [PackageIndex],
) -> Vec<(&'a PackageIndex, BTreeSet<String>)> {
    indexes
        .iter()
        .map(|index| {
            let ecosystem = index.kind.ecosystem();
            let names = inventory
                .packages
                .iter()
                .filter(|p| p.ecosystem == ecosystem)
                .map(lookup_name)
                .filter(|name| valid_lookup_name(ecosystem, name))
                .collect();
            (index, names)
        })
        .filter(|(_, names): &(_, BTreeSet<String>)| !names.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn installed(ecosystem: Ecosystem, name: &str, version: &str) -> Package {
        Package {
            ecosystem,
            name: name.into(),
            version: version.into(),
            arch: None,
            source_name: None,
            source_version: None,
            license: None,
            location: format!("/site/{name}"),
            files: Vec::new(),
        }
    }

    fn release(version: &str) -> Release {
        Release {
            version: version.into(),
            platform: None,
            yanked: false,
        }
    }

    fn answer(
        index: &str,
        ecosystem: Ecosystem,
        name: &str,
        releases: Vec<Release>,
    ) -> IndexAnswer {
        IndexAnswer {
            index: index.into(),
            ecosystem,
            name: name.into(),
            releases,
        }
    }

    fn inventory(packages: Vec<Package>) -> Inventory {
        Inventory { os: None, packages }
    }

    fn found(updates: &[LanguageUpdate]) -> Vec<(&str, &str, &str, &str)> {
        updates
            .iter()
            .map(|u| {
                (
                    u.name.as_str(),
                    u.installed.as_str(),
                    u.available.as_str(),
                    u.index.as_str(),
                )
            })
            .collect()
    }

    #[test]
    fn the_newest_stable_release_is_offered_by_each_ecosystems_order() {
        let inv = inventory(vec![
            installed(Ecosystem::Pypi, "Requests", "2.31.0"),
            installed(Ecosystem::Npm, "left-pad", "1.2.0"),
            installed(Ecosystem::Gem, "rack", "3.0.8"),
            installed(Ecosystem::Gem, "current", "1.0"),
        ]);
        let answers = [
            answer(
                "pypi",
                Ecosystem::Pypi,
                "requests",
                vec![release("2.9.0"), release("2.32.3"), release("2.33.0rc1")],
            ),
            answer(
                "npm",
                Ecosystem::Npm,
                "left-pad",
                vec![release("1.3.0"), release("1.10.0"), release("2.0.0-beta.1")],
            ),
            answer(
                "gems",
                Ecosystem::Gem,
                "rack",
                vec![release("3.0.10"), release("3.1.0.beta1")],
            ),
            answer("gems", Ecosystem::Gem, "current", vec![release("1.0.0")]),
        ];
        assert_eq!(
            found(&find_language_updates(&inv, &answers)),
            [
                ("Requests", "2.31.0", "2.32.3", "pypi"),
                ("left-pad", "1.2.0", "1.10.0", "npm"),
                ("rack", "3.0.8", "3.0.10", "gems"),
            ]
        );
    }

    #[test]
    fn pre_releases_count_when_a_pre_release_is_installed() {
        let inv = inventory(vec![installed(Ecosystem::Npm, "next", "14.0.0-canary.1")]);
        let answers = [answer(
            "npm",
            Ecosystem::Npm,
            "next",
            vec![release("14.0.0-canary.9"), release("13.9.0")],
        )];
        assert_eq!(
            found(&find_language_updates(&inv, &answers)),
            [("next", "14.0.0-canary.1", "14.0.0-canary.9", "npm")]
        );
    }

    #[test]
    fn yanked_releases_other_platforms_and_other_ecosystems_are_not_offered() {
        let mut native = installed(Ecosystem::Gem, "nokogiri", "1.15.0");
        native.arch = Some("x86_64-linux".into());
        let inv = inventory(vec![
            installed(Ecosystem::Pypi, "pkg", "1.0"),
            native,
            installed(Ecosystem::Gem, "pure", "1.0"),
        ]);
        let mut yanked = release("2.0");
        yanked.yanked = true;
        let java = |v: &str| Release {
            platform: Some("java".into()),
            ..release(v)
        };
        let answers = [
            answer("pypi", Ecosystem::Pypi, "pkg", vec![yanked]),
            answer(
                "gems",
                Ecosystem::Gem,
                "nokogiri",
                vec![java("1.16.0"), release("1.15.5")],
            ),
            answer("gems", Ecosystem::Gem, "pure", vec![java("2.0")]),
            answer("npm", Ecosystem::Npm, "pkg", vec![release("9.0.0")]),
        ];
        assert_eq!(
            found(&find_language_updates(&inv, &answers)),
            [("nokogiri", "1.15.0", "1.15.5", "gems")]
        );
    }

    #[test]
    fn the_first_index_offering_the_newest_version_is_named() {
        let inv = inventory(vec![installed(Ecosystem::Pypi, "pkg", "1.0")]);
        let answers = [
            answer("mirror", Ecosystem::Pypi, "pkg", vec![release("1.1")]),
            answer("main", Ecosystem::Pypi, "pkg", vec![release("1.2")]),
            answer("other", Ecosystem::Pypi, "pkg", vec![release("1.2.0")]),
        ];
        assert_eq!(
            found(&find_language_updates(&inv, &answers)),
            [("pkg", "1.0", "1.2", "main")]
        );
    }

    #[test]
    fn an_unparseable_installed_version_gets_no_update() {
        let inv = inventory(vec![installed(Ecosystem::Pypi, "pkg", "not a version")]);
        let answers = [answer("p", Ecosystem::Pypi, "pkg", vec![release("1.0")])];
        assert!(find_language_updates(&inv, &answers).is_empty());
    }

    fn index(kind: IndexKind, url: &str) -> PackageIndex {
        IndexConfig {
            name: "i".into(),
            kind,
            url: url.into(),
        }
        .validate(0)
        .unwrap()
    }

    #[test]
    fn document_urls_follow_each_protocol() {
        let url = |kind, base, name| index(kind, base).document_url(name).map(|u| u.to_string());
        assert_eq!(
            url(
                IndexKind::Pypi,
                "http://127.0.0.1:1/simple",
                "zope-interface"
            )
            .as_deref(),
            Some("http://127.0.0.1:1/simple/zope-interface/")
        );
        assert_eq!(
            url(
                IndexKind::Npm,
                "https://registry.example/npm/",
                "@types/node"
            )
            .as_deref(),
            Some("https://registry.example/npm/@types%2fnode")
        );
        assert_eq!(
            url(IndexKind::Rubygems, "https://gems.example", "rack").as_deref(),
            Some("https://gems.example/api/v1/versions/rack.json")
        );
        assert_eq!(
            url(IndexKind::RubygemsCompact, "https://gems.example", "rack").as_deref(),
            Some("https://gems.example/info/rack")
        );
    }

    #[test]
    fn names_that_could_leave_the_index_are_not_looked_up() {
        let npm = index(IndexKind::Npm, "http://127.0.0.1:1/");
        for name in [
            "../admin",
            "a/b",
            "@scope/../x",
            ".bin",
            "a?b",
            "",
            &"a".repeat(215),
        ] {
            assert_eq!(npm.document_url(name), None, "{name:?}");
        }
        let pypi = index(IndexKind::Pypi, "http://127.0.0.1:1/");
        assert_eq!(pypi.document_url("Not_Normalized"), None);
        let gems = index(IndexKind::Rubygems, "http://127.0.0.1:1/");
        assert_eq!(gems.document_url("a%2f"), None);
    }

    #[test]
    fn configuration_errors_name_the_index() {
        let bad = IndexConfig {
            name: "mirror".into(),
            kind: IndexKind::Pypi,
            url: "https://user:secret@pypi.example/simple/".into(),
        };
        let error = validate_indexes(&[bad]).unwrap_err().to_string();
        assert!(
            error.starts_with("indexes[0] (\"mirror\"): url:"),
            "{error}"
        );
        assert!(!error.contains("secret@") || error.contains("without credentials"));
        let twice = IndexConfig {
            name: "a".into(),
            kind: IndexKind::Npm,
            url: "http://127.0.0.1:1/".into(),
        };
        let error = validate_indexes(&[twice.clone(), twice]).unwrap_err();
        assert_eq!((error.index, error.field), (1, "name"));
    }

    #[test]
    fn lookups_name_each_index_with_the_images_packages_of_its_ecosystem() {
        let inv = inventory(vec![
            installed(Ecosystem::Pypi, "Foo_Bar", "1"),
            installed(Ecosystem::Pypi, "foo.bar", "1"),
            installed(Ecosystem::Npm, "../evil", "1.0.0"),
            installed(Ecosystem::Deb, "bash", "5"),
        ]);
        let indexes = [
            index(IndexKind::Pypi, "http://127.0.0.1:1/"),
            index(IndexKind::Npm, "http://127.0.0.1:2/"),
            index(IndexKind::Rubygems, "http://127.0.0.1:3/"),
        ];
        let got: Vec<_> = lookups(&inv, &indexes)
            .into_iter()
            .map(|(index, names)| (index.kind, names.into_iter().collect::<Vec<_>>()))
            .collect();
        assert_eq!(got, [(IndexKind::Pypi, vec!["foo-bar".to_owned()])]);
    }
}

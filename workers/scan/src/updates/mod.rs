//! Updates: which installed OS packages have a newer version in the repositories configured for
//! the image's OS, and which language packages (pip, npm, gem) have a newer release on the
//! package indexes configured for their ecosystem ([`language`]).
//!
//! Pure core: [`config`] (the `[[repos]]` configuration, validated into [`Repo`]s, and which OS
//! each applies to), the index parsers [`apt`] (`InRelease`/`Release`, `Packages`), [`yum`]
//! (`repomd.xml`, `primary.xml`) and [`apk`] (`APKINDEX.tar.gz`) with what they share in
//! [`index`] (checksums, decompression with a size limit), and [`find_updates`], which compares
//! an [`Inventory`] with the parsed indexes using [`crate::version::compare`].
//!
//! Shell: [`fetch`] downloads the indexes over HTTP(S), concurrently per repository, keeping the
//! big index files in a [`cache`] named by checksum so that an unchanged repository costs only
//! its small top file (or a conditional GET for apk).
//!
//! Signatures (`InRelease`, `repomd.xml.asc`, `.SIGN.RSA.*`) are **not verified**: configured
//! repositories are trusted, as apt trusts a `[trusted=yes]` source; index files are checked
//! against the checksums their top file names.

pub mod apk;
pub mod apt;
pub mod cache;
pub mod config;
pub mod fetch;
pub mod index;
pub mod language;
pub mod yum;

use std::cmp::Ordering;
use std::collections::HashMap;

use serde::Serialize;

use crate::package::{Ecosystem, Inventory};
use crate::version;

pub use config::{
    ConfigError, FetchSettings, OsMatch, Repo, RepoConfig, RepoKind, RepoSource, validate_repos,
};
pub use fetch::{FetchError, Fetcher, RepoError};
pub use index::{AvailablePackage, ParseError};
pub use language::{
    IndexConfig, IndexKind, LanguageUpdate, LanguageUpdatesReport, PackageIndex, validate_indexes,
};

/// The packages one repository offers, as read from its indexes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoIndex {
    /// The repository's configured name.
    pub repo: String,
    /// The packaging system of its packages.
    pub ecosystem: Ecosystem,
    /// Every package of every index read (several components or architectures for apt, several
    /// architectures for apk), in index order.
    pub packages: Vec<AvailablePackage>,
}

/// An installed package with a newer version available.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Update {
    /// Package name.
    pub name: String,
    /// The installed package's architecture, when recorded.
    pub arch: Option<String>,
    /// The installed version.
    pub installed: String,
    /// The newest version the repositories offer.
    pub available: String,
    /// The name of the repository offering it.
    pub repo: String,
}

/// Architectures whose packages install on any machine.
const ARCH_INDEPENDENT: &[&str] = &["all", "noarch"];

/// Whether a package built for `available` can replace one installed as `installed`: the same
/// architecture, or either side architecture-independent (`all`, `noarch`; a package may move
/// between the two), or either side unknown.
fn arch_compatible(installed: Option<&str>, available: Option<&str>) -> bool {
    match (installed, available) {
        (Some(a), Some(b)) => {
            a == b || ARCH_INDEPENDENT.contains(&a) || ARCH_INDEPENDENT.contains(&b)
        }
        _ => true,
    }
}

/// The candidate whose `version` is the highest by `ecosystem`'s order; of equal versions, the
/// first.
pub(crate) fn newest<C>(
    ecosystem: Ecosystem,
    candidates: impl IntoIterator<Item = C>,
    version: impl Fn(&C) -> &str,
) -> Option<C> {
    candidates
        .into_iter()
        .fold(None, |best: Option<C>, candidate| match best {
            Some(b)
                if version::compare(ecosystem, version(&candidate), version(&b))
                    != Ordering::Greater =>
            {
                Some(b)
            }
            _ => Some(candidate),
        })
}

/// The updates of `inventory`'s OS packages found in `indexes`: for each installed package of
/// an index's ecosystem, the highest version offered under the same name for a compatible
/// architecture, reported when it is strictly newer than the installed one by the ecosystem's
/// own version order. Where several repositories offer that highest version, the first in
/// `indexes` is named. Sorted by name, architecture, installed version; duplicates removed.
pub fn find_updates(inventory: &Inventory, indexes: &[RepoIndex]) -> Vec<Update> {
    let mut offers: HashMap<(Ecosystem, &str), Vec<(&AvailablePackage, &str)>> = HashMap::new();
    for index in indexes {
        for package in &index.packages {
            offers
                .entry((index.ecosystem, package.name.as_str()))
                .or_default()
                .push((package, index.repo.as_str()));
        }
    }
    let mut updates: Vec<Update> = inventory
        .packages
        .iter()
        .filter_map(|installed| {
            let ecosystem = installed.ecosystem;
            let candidates = offers.get(&(ecosystem, installed.name.as_str()))?;
            // The first of equal versions stays: repositories are in configured order.
            let (best, repo) = newest(
                ecosystem,
                candidates.iter().filter(|(offer, _)| {
                    arch_compatible(installed.arch.as_deref(), offer.arch.as_deref())
                }),
                |(offer, _)| offer.version.as_str(),
            )?;
            (version::compare(ecosystem, &best.version, &installed.version) == Ordering::Greater)
                .then(|| Update {
                    name: installed.name.clone(),
                    arch: installed.arch.clone(),
                    installed: installed.version.clone(),
                    available: best.version.clone(),
                    repo: (*repo).to_owned(),
                })
        })
        .collect();
    updates.sort();
    updates.dedup();
    updates
}

/// The updates part of a scan report: which repositories were consulted for the image's OS,
/// the updates they offer, the repositories that failed, or why nothing was checked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UpdatesReport {
    /// Names of the repositories configured for the image's OS and read.
    pub repositories: Vec<String>,
    /// One entry per installed package a repository has a newer version of.
    pub updates: Vec<Update>,
    /// Repositories that could not be read (each names the repository, the URL and the cause).
    pub errors: Vec<String>,
    /// Why no repository was consulted, when none was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_checked: Option<String>,
}

/// Checks `inventory`'s OS packages against those of `repos` that apply to its OS, fetched
/// through `fetcher` (`None` when no repositories are configured at all).
pub async fn check(
    fetcher: Option<&Fetcher>,
    repos: &[Repo],
    inventory: &Inventory,
) -> UpdatesReport {
    let not_checked = |reason: &str| UpdatesReport {
        not_checked: Some(reason.to_owned()),
        ..UpdatesReport::default()
    };
    let (Some(fetcher), false) = (fetcher, repos.is_empty()) else {
        return not_checked("no package repositories are configured");
    };
    let Some(os) = &inventory.os else {
        return not_checked("the image's OS could not be identified");
    };
    if !repos.iter().any(|repo| repo.applies_to.matches(os)) {
        return not_checked(&format!(
            "no configured repository applies to {} {}",
            os.id,
            os.version_id.as_deref().unwrap_or("")
        ));
    }
    let (indexes, errors) = fetcher.fetch_indexes(repos, os).await;
    UpdatesReport {
        repositories: indexes.iter().map(|index| index.repo.clone()).collect(),
        updates: find_updates(inventory, &indexes),
        errors: errors.iter().map(ToString::to_string).collect(),
        not_checked: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::Package;

    fn installed(ecosystem: Ecosystem, name: &str, version: &str, arch: &str) -> Package {
        Package {
            ecosystem,
            name: name.into(),
            version: version.into(),
            arch: Some(arch.into()),
            source_name: None,
            source_version: None,
            license: None,
            location: "/var/lib/dpkg/status".into(),
            files: Vec::new(),
        }
    }

    fn offer(name: &str, version: &str, arch: &str) -> AvailablePackage {
        AvailablePackage {
            name: name.into(),
            version: version.into(),
            arch: Some(arch.into()),
            source_name: None,
        }
    }

    fn index(repo: &str, ecosystem: Ecosystem, packages: Vec<AvailablePackage>) -> RepoIndex {
        RepoIndex {
            repo: repo.into(),
            ecosystem,
            packages,
        }
    }

    fn inventory(packages: Vec<Package>) -> Inventory {
        Inventory { os: None, packages }
    }

    fn update(name: &str, arch: &str, installed: &str, available: &str, repo: &str) -> Update {
        Update {
            name: name.into(),
            arch: Some(arch.into()),
            installed: installed.into(),
            available: available.into(),
            repo: repo.into(),
        }
    }

    #[test]
    fn newer_is_an_update_equal_and_older_are_not() {
        let inv = inventory(vec![
            installed(Ecosystem::Deb, "bash", "5.2.15-2", "amd64"),
            installed(Ecosystem::Deb, "libc6", "2.36-9+deb12u4", "amd64"),
            installed(Ecosystem::Deb, "tzdata", "2024b-0+deb12u1", "all"),
            installed(Ecosystem::Deb, "local-only", "1.0", "amd64"),
        ]);
        let indexes = [index(
            "debian",
            Ecosystem::Deb,
            vec![
                offer("bash", "5.2.15-2+b7", "amd64"),
                offer("libc6", "2.36-9+deb12u4", "amd64"),
                offer("tzdata", "2024a-0+deb12u1", "all"),
            ],
        )];
        assert_eq!(
            find_updates(&inv, &indexes),
            [update("bash", "amd64", "5.2.15-2", "5.2.15-2+b7", "debian")]
        );
    }

    #[test]
    fn epochs_decide_before_versions() {
        let inv = inventory(vec![
            installed(Ecosystem::Rpm, "gamma", "2:1.0-3", "noarch"),
            installed(Ecosystem::Rpm, "delta", "1.0-1", "x86_64"),
            installed(Ecosystem::Deb, "foo", "1:1.0-1", "amd64"),
        ]);
        let indexes = [
            index(
                "el",
                Ecosystem::Rpm,
                vec![
                    // Higher version, lower epoch: older.
                    offer("gamma", "1:9.0-1", "noarch"),
                    // Epoch 1 beats no epoch.
                    offer("delta", "1:0.5-1", "x86_64"),
                ],
            ),
            index("deb", Ecosystem::Deb, vec![offer("foo", "9.9-1", "amd64")]),
        ];
        assert_eq!(
            find_updates(&inv, &indexes),
            [update("delta", "x86_64", "1.0-1", "1:0.5-1", "el")]
        );
    }

    #[test]
    fn the_highest_of_several_repos_is_named_with_its_repo() {
        let inv = inventory(vec![installed(
            Ecosystem::Apk,
            "musl",
            "1.2.4-r1",
            "x86_64",
        )]);
        let indexes = [
            index(
                "main",
                Ecosystem::Apk,
                vec![offer("musl", "1.2.4-r2", "x86_64")],
            ),
            index(
                "edge",
                Ecosystem::Apk,
                vec![offer("musl", "1.2.5-r0", "x86_64")],
            ),
            index(
                "mirror",
                Ecosystem::Apk,
                vec![offer("musl", "1.2.5-r0", "x86_64")],
            ),
        ];
        assert_eq!(
            find_updates(&inv, &indexes),
            [update("musl", "x86_64", "1.2.4-r1", "1.2.5-r0", "edge")]
        );
    }

    #[test]
    fn architectures_and_ecosystems_must_fit() {
        let inv = inventory(vec![
            installed(Ecosystem::Rpm, "glibc", "2.34-1", "x86_64"),
            installed(Ecosystem::Rpm, "glibc", "2.34-1", "i686"),
            installed(Ecosystem::Rpm, "tzdata", "2024a-1", "noarch"),
            installed(Ecosystem::Pypi, "glibc", "1.0", "x86_64"),
        ]);
        let indexes = [index(
            "el",
            Ecosystem::Rpm,
            vec![
                offer("glibc", "2.34-2", "i686"),
                offer("glibc", "2.34-9", "aarch64"),
                offer("tzdata", "2024b-1", "noarch"),
            ],
        )];
        assert_eq!(
            find_updates(&inv, &indexes),
            [
                update("glibc", "i686", "2.34-1", "2.34-2", "el"),
                update("tzdata", "noarch", "2024a-1", "2024b-1", "el"),
            ]
        );
    }

    #[test]
    fn results_are_sorted_and_deduplicated() {
        let mut dup = installed(Ecosystem::Deb, "b", "1", "amd64");
        dup.location = "/var/lib/dpkg/status.d/b".into();
        let inv = inventory(vec![
            installed(Ecosystem::Deb, "c", "1", "amd64"),
            installed(Ecosystem::Deb, "b", "1", "amd64"),
            dup,
            installed(Ecosystem::Deb, "a", "1", "amd64"),
        ]);
        let indexes = [index(
            "d",
            Ecosystem::Deb,
            vec![
                offer("a", "2", "amd64"),
                offer("b", "2", "all"),
                offer("c", "2", "amd64"),
            ],
        )];
        let names: Vec<_> = find_updates(&inv, &indexes)
            .into_iter()
            .map(|u| u.name)
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
    }
}

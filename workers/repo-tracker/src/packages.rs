//! The package-repository watch: the apt, yum and apk repositories of `[tracker] package_repos`
//! looked at through the scan worker's fetchers, and, when one offers something new, the index
//! images whose latest scan report holds a package it now has a newer version of
//! (`packages.updated`; the fold in `state` turns it into rebuilds, parents first).
//!
//! Pure: [`fingerprint`] (what a repository offers, as one digest), [`installed_of_report`] (the
//! OS and OS packages a stored scan report lists), [`affected`] (the images a repository's newer
//! versions concern, each once) and [`affected_since`] (the same, counting only the packages whose
//! versions changed since the previous look). Shell: [`PackageWatch`], whose
//! [`check`](PackageWatch::check) fetches every repository (big index files come from the cache
//! named by checksum while they are unchanged) and, only when a fingerprint moved, reads the
//! `N.reports` stream once, keeping the newest report of each index image.
//!
//! **Only what changed counts.** When the watch still holds the index it saw at the fingerprint
//! the tracker knows (the usual case: this process looked at it last), a change lists only images
//! holding a package whose versions changed in it. Otherwise an image whose rebuild could not
//! upgrade a package (a pinned version, a base image not yet updated), or whose report predates
//! its rebuild, would be rebuilt again at every change of the repository, whatever changed. Without
//! that index (the first change a new leader sees), every package with a newer version counts.
//!
//! A repository that cannot be fetched, or reports that cannot be read, publish nothing: the
//! fingerprint stays where it was, so the next check compares again (never a rebuild storm, never
//! a lost update). The first look at a repository is a baseline: its fingerprint, no images.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use slipway_broker::reports::report_stream_name;
use slipway_broker::streams::ReadFrom;
use slipway_broker::streams::reader::{Filter, Step, StreamError, StreamReader};
use slipway_broker::{BrokerConnection, BrokerError, BrokerSettings};
use slipway_common::ImageRef;
use slipway_common::message::{ImagePackages, PackagesUpdated};
use slipway_scan::package::{Ecosystem, Inventory, OsIdentity, Package};
use slipway_scan::reports::{Document, IMAGE, ReportMeta, ReportReadOptions};
use slipway_scan::updates::{FetchError, Fetcher, Repo, RepoIndex, find_updates};

use crate::config::TrackerSettings;

/// At most this many package names are listed per image in a `packages.updated` (the first, in
/// name order, is the rebuild's cause; the rest only inform).
pub const MAX_PACKAGES_PER_IMAGE: usize = 50;

/// What `repository` offers, as one digest: `sha256:<hex>` over its distinct (name, version,
/// architecture) triples in sorted order, so the order of index files and entries, and a package
/// listed twice (an `all` package in every architecture's index), do not change it.
pub fn fingerprint(index: &RepoIndex) -> String {
    let mut triples: Vec<(&str, &str, Option<&str>)> = index
        .packages
        .iter()
        .map(|p| (p.name.as_str(), p.version.as_str(), p.arch.as_deref()))
        .collect();
    triples.sort_unstable();
    triples.dedup();
    let mut hasher = Sha256::new();
    for (name, version, arch) in triples {
        // Each field length-prefixed (an absent architecture as a length no field can have), so
        // that no two different lists hash the same bytes.
        for field in [Some(name), Some(version), arch] {
            match field {
                Some(text) => {
                    hasher.update((text.len() as u64).to_be_bytes());
                    hasher.update(text.as_bytes());
                }
                None => hasher.update(u64::MAX.to_be_bytes()),
            }
        }
    }
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// The images among `reports` that `repo` applies to (by their OS, [`OsMatch`]) and that hold a
/// package `index` has a strictly newer version of (by the ecosystem's own version order,
/// [`find_updates`]). Each image once, with its updated packages' names sorted, without
/// duplicates, at most [`MAX_PACKAGES_PER_IMAGE`]; images sorted. Images are returned as given
/// (the index's form, `team/app:1`).
///
/// [`OsMatch`]: slipway_scan::updates::OsMatch
pub fn affected(
    repo: &Repo,
    index: &RepoIndex,
    reports: &[(ImageRef, Inventory)],
) -> Vec<ImagePackages> {
    let mut images: BTreeMap<&ImageRef, BTreeSet<String>> = BTreeMap::new();
    for (image, inventory) in reports {
        let Some(os) = &inventory.os else { continue };
        if !repo.applies_to.matches(os) {
            continue;
        }
        let names: BTreeSet<String> = find_updates(inventory, std::slice::from_ref(index))
            .into_iter()
            .map(|update| update.name)
            .collect();
        if !names.is_empty() {
            images.entry(image).or_default().extend(names);
        }
    }
    images
        .into_iter()
        .map(|(image, names)| ImagePackages {
            image: image.clone(),
            packages: names.into_iter().take(MAX_PACKAGES_PER_IMAGE).collect(),
        })
        .collect()
}

/// The names of the packages whose offers (version and architecture pairs) differ between
/// `before` and `after`: new, changed or gone.
pub fn changed_packages(before: &RepoIndex, after: &RepoIndex) -> HashSet<String> {
    fn offers(index: &RepoIndex) -> HashMap<&str, BTreeSet<(&str, Option<&str>)>> {
        let mut offers: HashMap<&str, BTreeSet<(&str, Option<&str>)>> = HashMap::new();
        for package in &index.packages {
            offers
                .entry(package.name.as_str())
                .or_default()
                .insert((package.version.as_str(), package.arch.as_deref()));
        }
        offers
    }
    let (before, after) = (offers(before), offers(after));
    let mut changed: HashSet<String> = HashSet::new();
    for (name, offered) in &after {
        if before.get(name) != Some(offered) {
            changed.insert((*name).to_owned());
        }
    }
    for name in before.keys() {
        if !after.contains_key(name) {
            changed.insert((*name).to_owned());
        }
    }
    changed
}

/// [`affected`], counting only the packages whose versions changed from `before` (the index seen
/// at the previous look) to `index`: an image still holding an older version of a package the
/// change did not touch is not listed again.
pub fn affected_since(
    repo: &Repo,
    before: &RepoIndex,
    index: &RepoIndex,
    reports: &[(ImageRef, Inventory)],
) -> Vec<ImagePackages> {
    let changed = changed_packages(before, index);
    let only_changed = RepoIndex {
        repo: index.repo.clone(),
        ecosystem: index.ecosystem,
        packages: index
            .packages
            .iter()
            .filter(|package| changed.contains(&package.name))
            .cloned()
            .collect(),
    };
    affected(repo, &only_changed, reports)
}

/// The parts of a scan report (`slipway.scan-report/1`, `slipway_scan::report::ScanReport`) the
/// watch reads; everything else in the document is skipped.
#[derive(Deserialize)]
struct ReportView {
    #[serde(default)]
    os: Option<OsView>,
    #[serde(default)]
    packages: Vec<PackageView>,
}

#[derive(Deserialize)]
struct OsView {
    id: String,
    #[serde(default)]
    version_id: Option<String>,
    #[serde(default)]
    id_like: Vec<String>,
    #[serde(default)]
    codename: Option<String>,
}

#[derive(Deserialize)]
struct PackageView {
    ecosystem: String,
    name: String,
    version: String,
    #[serde(default)]
    arch: Option<String>,
    #[serde(default)]
    source_name: Option<String>,
}

/// Ecosystems whose packages come from apt, yum or apk repositories.
const OS_ECOSYSTEMS: [Ecosystem; 3] = [Ecosystem::Deb, Ecosystem::Rpm, Ecosystem::Apk];

/// The OS and the OS packages (deb, rpm, apk: what repositories offer) of a scan report's JSON;
/// language packages are left out. An error when the body is not a report.
pub fn installed_of_report(body: &[u8]) -> Result<Inventory, serde_json::Error> {
    let report: ReportView = serde_json::from_slice(body)?;
    let packages = report
        .packages
        .into_iter()
        .filter_map(|package| {
            let ecosystem = OS_ECOSYSTEMS
                .into_iter()
                .find(|ecosystem| ecosystem.as_str() == package.ecosystem)?;
            Some(Package {
                ecosystem,
                name: package.name,
                version: package.version,
                arch: package.arch,
                source_name: package.source_name,
                source_version: None,
                license: None,
                location: String::new(),
                files: Vec::new(),
            })
        })
        .collect();
    Ok(Inventory {
        os: report.os.map(|os| OsIdentity {
            id: os.id,
            version_id: os.version_id,
            id_like: os.id_like,
            codename: os.codename,
            pretty_name: None,
        }),
        packages,
    })
}

/// How an index image and a report's image are matched: repository path and tag (the report
/// names the registry, the index does not).
type ImageKey = (String, String);

fn key_of(image: &ImageRef) -> Option<ImageKey> {
    Some((image.path().to_owned(), image.tag()?.to_owned()))
}

/// The settings the package watch cannot use.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// A repository's configuration is invalid.
    #[error("{0}")]
    Repos(String),
    /// The fetcher cannot be built from `[tracker.package_fetch]`.
    #[error("tracker.package_fetch: {0}")]
    Fetch(FetchError),
}

/// Why the scan reports could not be read (the check publishes nothing and compares again next
/// time).
#[derive(Debug, thiserror::Error)]
pub enum ReportsError {
    /// No connection to the broker.
    #[error("cannot connect to read the scan reports: {0}")]
    Connect(BrokerError),
    /// The read failed.
    #[error("cannot read the scan reports: {0}")]
    Read(StreamError),
}

/// The repository watch: the validated repositories, their fetcher, where the reports are.
pub struct PackageWatch {
    repos: Vec<Repo>,
    fetcher: Fetcher,
    broker: BrokerSettings,
    reports: ReportReadOptions,
    /// Per repository, the indexes last seen, by fingerprint: the one the tracker knows and the
    /// newest (at most two, so memory stays at two indexes per repository).
    seen: Mutex<HashMap<String, Vec<Seen>>>,
}

/// An index seen, with its fingerprint.
type Seen = (String, Arc<RepoIndex>);

/// What one look at a repository found.
enum Look {
    /// The first look: a baseline.
    First,
    /// A change from the index seen at the known fingerprint.
    Since(Arc<RepoIndex>),
    /// A change from a fingerprint whose index this process has not seen.
    FromUnseen,
}

impl std::fmt::Debug for PackageWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackageWatch")
            .field(
                "repos",
                &self.repos.iter().map(|r| &r.name).collect::<Vec<_>>(),
            )
            .field("reports", &self.reports)
            .finish_non_exhaustive()
    }
}

impl PackageWatch {
    /// The watch of `settings.package_repos`, reading reports through `broker`; `None` when no
    /// repository is configured.
    pub fn from_settings(
        settings: &TrackerSettings,
        broker: &BrokerSettings,
    ) -> Result<Option<PackageWatch>, WatchError> {
        let repos = settings.package_repos().map_err(WatchError::Repos)?;
        if repos.is_empty() {
            return Ok(None);
        }
        let fetcher = Fetcher::new(&settings.package_fetch).map_err(WatchError::Fetch)?;
        Ok(Some(PackageWatch {
            repos,
            fetcher,
            broker: broker.clone(),
            reports: ReportReadOptions {
                from: ReadFrom::Ago(settings.reports_window()),
                ..ReportReadOptions::default()
            },
            seen: Mutex::default(),
        }))
    }

    /// The repositories watched.
    pub fn repos(&self) -> &[Repo] {
        &self.repos
    }

    /// One look at every repository. `known(repository)` is the fingerprint the tracker's view
    /// holds for it; `images()` the index's images (asked only when a fingerprint moved). Gives,
    /// in configuration order, a baseline `packages.updated` (no images) for each repository seen
    /// for the first time, and one with the affected images for each whose fingerprint moved
    /// ([`affected_since`] the index seen at the known fingerprint when this process holds it,
    /// else [`affected`]). A repository that cannot be fetched is logged and left for the next
    /// check; so are the moved ones when the reports cannot be read, or when no index is in
    /// force yet.
    pub async fn check(
        &self,
        known: impl Fn(&str) -> Option<String>,
        images: impl FnOnce() -> Vec<ImageRef>,
    ) -> Vec<PackagesUpdated> {
        let fetched =
            futures_util::future::join_all(self.repos.iter().map(|r| self.fetcher.fetch_index(r)))
                .await;
        let mut looks: Vec<(&Repo, Arc<RepoIndex>, String, Look)> = Vec::new();
        for (repo, result) in self.repos.iter().zip(fetched) {
            let index = match result {
                Ok(index) => index,
                Err(error) => {
                    tracing::warn!(
                        repository = %repo.name,
                        %error,
                        "cannot read the package repository; it is looked at again at the next check"
                    );
                    continue;
                }
            };
            let now = fingerprint(&index);
            let before = known(&repo.name);
            let (index, previous) = self.remember(&repo.name, before.as_deref(), &now, index);
            let look = match (before, previous) {
                (Some(before), _) if before == now => {
                    tracing::debug!(repository = %repo.name, "package repository unchanged");
                    continue;
                }
                (None, _) => Look::First,
                (Some(_), Some(previous)) => Look::Since(previous),
                (Some(_), None) => Look::FromUnseen,
            };
            looks.push((repo, index, now, look));
        }
        let mut reports = None;
        if looks.iter().any(|(.., look)| !matches!(look, Look::First)) {
            let images = images();
            if images.is_empty() {
                tracing::info!(
                    "package repositories changed but no index is in force yet; compared at the next check"
                );
            } else {
                match self.latest_reports(&images).await {
                    Ok(found) => reports = Some(found),
                    Err(error) => tracing::warn!(
                        %error,
                        "package repositories changed but the scan reports cannot be read; compared at the next check"
                    ),
                }
            }
        }
        looks
            .into_iter()
            .filter_map(|(repo, index, fingerprint, look)| {
                let images = match look {
                    Look::First => {
                        tracing::info!(repository = %repo.name, %fingerprint, "first look at the package repository: a baseline");
                        return Some(PackagesUpdated {
                            repository: repo.name.clone(),
                            fingerprint,
                            images: Vec::new(),
                        });
                    }
                    Look::Since(before) => {
                        affected_since(repo, &before, &index, reports.as_deref()?)
                    }
                    Look::FromUnseen => affected(repo, &index, reports.as_deref()?),
                };
                tracing::info!(
                    repository = %repo.name,
                    %fingerprint,
                    images = images.len(),
                    "package repository changed"
                );
                Some(PackagesUpdated {
                    repository: repo.name.clone(),
                    fingerprint,
                    images,
                })
            })
            .collect()
    }

    /// Keep `index` (at fingerprint `now`) as the newest seen of `repository`, with the one seen
    /// at `known` if any; returns it shared, and the one at `known`.
    fn remember(
        &self,
        repository: &str,
        known: Option<&str>,
        now: &str,
        index: RepoIndex,
    ) -> (Arc<RepoIndex>, Option<Arc<RepoIndex>>) {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let list = seen.entry(repository.to_owned()).or_default();
        let at = |list: &[Seen], fingerprint: &str| {
            list.iter()
                .find(|(seen_at, _)| seen_at == fingerprint)
                .map(|(_, index)| Arc::clone(index))
        };
        let previous = known.and_then(|known| at(list, known));
        list.retain(|(seen_at, _)| seen_at == now || Some(seen_at.as_str()) == known);
        let current = at(list, now).unwrap_or_else(|| {
            let index = Arc::new(index);
            list.push((now.to_owned(), Arc::clone(&index)));
            index
        });
        (current, previous)
    }

    /// The OS and OS packages of the newest report of each of `images` in the reports window,
    /// read in one pass over the `N.reports` stream; images without a readable report are left
    /// out (a missing stream leaves out every image).
    pub async fn latest_reports(
        &self,
        images: &[ImageRef],
    ) -> Result<Vec<(ImageRef, Inventory)>, ReportsError> {
        let connection = BrokerConnection::connect(&self.broker, "slipway-repo-tracker-reports")
            .await
            .map_err(ReportsError::Connect)?;
        let stream = report_stream_name(&self.broker.namespace);
        let result = read_latest(&connection, &stream, images, self.reports).await;
        connection.close().await;
        result
    }
}

/// One pass over `stream` from `options.from` to its end, keeping for each of `images` the OS
/// and packages of its newest report.
async fn read_latest(
    connection: &BrokerConnection,
    stream: &str,
    images: &[ImageRef],
    options: ReportReadOptions,
) -> Result<Vec<(ImageRef, Inventory)>, ReportsError> {
    let wanted: HashMap<ImageKey, &ImageRef> = images
        .iter()
        .filter_map(|image| Some((key_of(image)?, image)))
        .collect();
    let keys: Arc<HashSet<ImageKey>> = Arc::new(wanted.keys().cloned().collect());
    // Filter on the headers alone, so that other images' bodies are never decoded; the SBOM and
    // provenance stored beside a report are not reports.
    let filter = Filter::all().matching(move |entry| {
        Document::of_entry(entry) == Some(Document::Report)
            && entry
                .header_text(IMAGE)
                .and_then(|text| ImageRef::parse(&text).ok())
                .and_then(|image| key_of(&image))
                .is_some_and(|key| keys.contains(&key))
    });
    let read = options.to_read_options();
    let mut entries = match StreamReader::new(connection, stream)
        .open(filter, &read)
        .await
    {
        Ok(entries) => entries,
        Err(StreamError::NoStream { .. }) => {
            tracing::info!(
                stream,
                "no scan report stream: no image is known to hold an updated package"
            );
            return Ok(Vec::new());
        }
        Err(error) => return Err(ReportsError::Read(error)),
    };
    let mut latest: HashMap<ImageKey, Option<Inventory>> = HashMap::new();
    let mut read_reports = 0u64;
    while let Some(step) = entries.next().await {
        let entry = match step {
            Ok(Step::Entry(entry)) => entry,
            Ok(Step::CaughtUp) => continue,
            Err(StreamError::NoStream { .. }) => break,
            Err(error) => {
                entries.close().await;
                return Err(ReportsError::Read(error));
            }
        };
        let key = match ReportMeta::of_entry(&entry) {
            Ok(meta) => key_of(&meta.image),
            Err(error) => {
                tracing::debug!(stream, offset = entry.offset, %error, "skipping an unreadable report entry");
                None
            }
        };
        let Some(key) = key else { continue };
        read_reports += 1;
        // The newest report wins, even an unreadable one: an older report may list packages the
        // image no longer holds.
        let installed = installed_of_report(&entry.body)
            .map_err(|error| {
                tracing::warn!(stream, offset = entry.offset, %error, "a scan report is not readable; its image counts as holding nothing");
            })
            .ok();
        latest.insert(key, installed);
    }
    entries.close().await;
    let mut found: Vec<(ImageRef, Inventory)> = latest
        .into_iter()
        .filter_map(|(key, installed)| Some(((*wanted.get(&key)?).clone(), installed?)))
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    tracing::info!(
        reports = read_reports,
        images = found.len(),
        of = images.len(),
        "read the latest scan reports of the index images"
    );
    Ok(found)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use slipway_scan::report::{Analysis, ScanReport, Subject};
    use slipway_scan::source::Access;
    use slipway_scan::updates::{AvailablePackage, RepoConfig, UpdatesReport, validate_repos};

    use super::*;

    fn offer(name: &str, version: &str, arch: &str) -> AvailablePackage {
        AvailablePackage {
            name: name.into(),
            version: version.into(),
            arch: Some(arch.into()),
            source_name: None,
        }
    }

    fn index(packages: Vec<AvailablePackage>) -> RepoIndex {
        RepoIndex {
            repo: "bookworm".into(),
            ecosystem: Ecosystem::Deb,
            packages,
        }
    }

    fn repo(applies_to: &str) -> Repo {
        let config: RepoConfig = serde_json::from_value(serde_json::json!({
            "name": "bookworm",
            "kind": "apt",
            "url": "http://deb.example.org/debian",
            "suite": "bookworm",
            "components": ["main"],
            "architectures": ["amd64"],
            "applies_to": serde_json::from_str::<serde_json::Value>(applies_to).unwrap(),
        }))
        .unwrap();
        validate_repos(&[config]).unwrap().remove(0)
    }

    fn debian(version: &str) -> OsIdentity {
        OsIdentity {
            id: "debian".into(),
            version_id: Some(version.into()),
            codename: Some("bookworm".into()),
            ..OsIdentity::default()
        }
    }

    fn package(ecosystem: Ecosystem, name: &str, version: &str, arch: &str) -> Package {
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

    fn deb(name: &str, version: &str) -> Package {
        package(Ecosystem::Deb, name, version, "amd64")
    }

    fn image(name: &str) -> ImageRef {
        ImageRef::parse(&format!("team/{name}:1")).unwrap()
    }

    fn held(name: &str, os: Option<OsIdentity>, packages: Vec<Package>) -> (ImageRef, Inventory) {
        (image(name), Inventory { os, packages })
    }

    #[test]
    fn the_fingerprint_is_what_is_offered_not_how_it_is_listed() {
        let a = index(vec![
            offer("bash", "5.2-1", "amd64"),
            offer("tzdata", "2024a-1", "all"),
        ]);
        let fp = fingerprint(&a);
        assert!(fp.starts_with("sha256:") && fp.len() == 7 + 64, "{fp}");
        let reordered = index(vec![
            offer("tzdata", "2024a-1", "all"),
            offer("bash", "5.2-1", "amd64"),
            offer("tzdata", "2024a-1", "all"),
        ]);
        assert_eq!(
            fingerprint(&reordered),
            fp,
            "order and repeats do not count"
        );
        let newer = index(vec![
            offer("bash", "5.2-2", "amd64"),
            offer("tzdata", "2024a-1", "all"),
        ]);
        assert_ne!(fingerprint(&newer), fp, "a new version changes it");
        let other_arch = index(vec![
            offer("bash", "5.2-1", "arm64"),
            offer("tzdata", "2024a-1", "all"),
        ]);
        assert_ne!(fingerprint(&other_arch), fp, "so does an architecture");
        let mut no_arch = a.clone();
        no_arch.packages[0].arch = None;
        assert_ne!(fingerprint(&no_arch), fp);
        // Fields cannot run into each other.
        let shifted = index(vec![
            offer("bash5", ".2-1", "amd64"),
            offer("tzdata", "2024a-1", "all"),
        ]);
        assert_ne!(fingerprint(&shifted), fp);
        assert_ne!(fingerprint(&index(vec![])), fp);
    }

    #[test]
    fn only_images_of_the_repositorys_os_holding_an_older_package_are_affected_each_once() {
        let repo = repo(r#"{"id": "debian", "version_id": "12"}"#);
        let index = index(vec![
            offer("openssl", "3.0.15-1", "amd64"),
            offer("zlib1g", "1:1.2.13-2", "amd64"),
            offer("bash", "5.2.15-2", "amd64"),
        ]);
        let reports = vec![
            // Two packages updated, one listed twice (two database locations): once each.
            held(
                "child",
                Some(debian("12")),
                vec![
                    deb("zlib1g", "1:1.2.13-1"),
                    deb("openssl", "3.0.14-1"),
                    deb("openssl", "3.0.14-1"),
                    deb("bash", "5.2.15-2"),
                ],
            ),
            held(
                "base",
                Some(debian("12.7")),
                vec![deb("openssl", "3.0.14-1")],
            ),
            // Up to date.
            held(
                "current",
                Some(debian("12")),
                vec![deb("openssl", "3.0.15-1")],
            ),
            // Newer than the repository.
            held("ahead", Some(debian("12")), vec![deb("openssl", "3.1.0-1")]),
            // Another OS version, no OS, another ecosystem.
            held(
                "eleven",
                Some(debian("11")),
                vec![deb("openssl", "1.1.1-1")],
            ),
            held("no-os", None, vec![deb("openssl", "1.1.1-1")]),
            held(
                "rpm",
                Some(debian("12")),
                vec![package(Ecosystem::Rpm, "openssl", "1.0-1", "amd64")],
            ),
        ];
        let found = affected(&repo, &index, &reports);
        assert_eq!(
            found,
            [
                ImagePackages {
                    image: image("base"),
                    packages: vec!["openssl".into()],
                },
                ImagePackages {
                    image: image("child"),
                    packages: vec!["openssl".into(), "zlib1g".into()],
                },
            ]
        );
    }

    #[test]
    fn a_change_counts_the_packages_whose_offers_changed() {
        let before = index(vec![
            offer("openssl", "3.0.14-1", "amd64"),
            offer("zlib1g", "1:1.2.13-1", "amd64"),
            offer("bash", "5.2.15-2", "amd64"),
            offer("gone", "1", "amd64"),
        ]);
        let after = index(vec![
            offer("bash", "5.2.15-2", "amd64"),
            offer("zlib1g", "1:1.2.13-1", "amd64"),
            offer("zlib1g", "1:1.2.13-1", "amd64"),
            offer("openssl", "3.0.14-1", "amd64"),
            offer("openssl", "3.0.15-1", "amd64"),
            offer("new", "1", "amd64"),
        ]);
        let mut changed: Vec<String> = changed_packages(&before, &after).into_iter().collect();
        changed.sort();
        assert_eq!(changed, ["gone", "new", "openssl"]);
        assert!(changed_packages(&after, &after).is_empty());

        // bash was already newer than what "stale" holds before the change: only the images
        // holding the changed openssl are listed again.
        let repo = repo(r#"{"id": "debian"}"#);
        let reports = vec![
            held(
                "stale",
                Some(debian("12")),
                vec![deb("bash", "5.2.15-1"), deb("zlib1g", "1:1.2.13-1")],
            ),
            held(
                "both",
                Some(debian("12")),
                vec![deb("bash", "5.2.15-1"), deb("openssl", "3.0.14-1")],
            ),
        ];
        assert_eq!(
            affected_since(&repo, &before, &after, &reports),
            [ImagePackages {
                image: image("both"),
                packages: vec!["openssl".into()],
            }]
        );
        assert_eq!(
            affected(&repo, &after, &reports),
            [
                ImagePackages {
                    image: image("both"),
                    packages: vec!["bash".into(), "openssl".into()],
                },
                ImagePackages {
                    image: image("stale"),
                    packages: vec!["bash".into()],
                },
            ],
            "without the previous index, every newer version counts"
        );
    }

    #[test]
    fn the_watch_remembers_the_known_index_and_the_newest() {
        let settings = TrackerSettings {
            package_repos: vec![
                serde_json::from_value(serde_json::json!({
                    "name": "bookworm",
                    "kind": "apt",
                    "url": "http://deb.example.org/debian",
                    "suite": "./",
                    "applies_to": {"id": "debian"},
                }))
                .unwrap(),
            ],
            ..TrackerSettings::default()
        };
        let watch = PackageWatch::from_settings(&settings, &BrokerSettings::default())
            .unwrap()
            .expect("a repository is configured");
        assert!(
            PackageWatch::from_settings(&TrackerSettings::default(), &BrokerSettings::default())
                .unwrap()
                .is_none(),
            "no repository, no watch"
        );
        let one = index(vec![offer("a", "1", "amd64")]);
        let two = index(vec![offer("a", "2", "amd64")]);
        let three = index(vec![offer("a", "3", "amd64")]);
        let (f1, f2, f3) = (fingerprint(&one), fingerprint(&two), fingerprint(&three));
        let (current, previous) = watch.remember("bookworm", None, &f1, one.clone());
        assert_eq!((*current).clone(), one);
        assert!(previous.is_none());
        let (_, previous) = watch.remember("bookworm", Some(&f1), &f2, two.clone());
        assert_eq!(previous.as_deref(), Some(&one));
        // The publish of f2 failed: the tracker still knows f1, and the repository moved on.
        let (_, previous) = watch.remember("bookworm", Some(&f1), &f3, three.clone());
        assert_eq!(previous.as_deref(), Some(&one), "the known index is kept");
        let held: Vec<String> = watch.seen.lock().unwrap()["bookworm"]
            .iter()
            .map(|(at, _)| at.clone())
            .collect();
        assert_eq!(
            held,
            [f1.clone(), f3.clone()],
            "at most the known and the newest"
        );
        let (_, previous) = watch.remember("bookworm", Some(&f2), &f3, three);
        assert!(previous.is_none(), "f2 was let go");
    }

    #[test]
    fn the_package_list_is_bounded() {
        let repo = repo(r#"{"id": "debian"}"#);
        let names: Vec<String> = (0..120).map(|i| format!("lib{i:03}")).collect();
        let index = index(names.iter().map(|n| offer(n, "2", "amd64")).collect());
        let reports = vec![held(
            "big",
            Some(debian("12")),
            names.iter().rev().map(|n| deb(n, "1")).collect(),
        )];
        let found = affected(&repo, &index, &reports);
        let [only] = &found[..] else {
            panic!("{found:?}")
        };
        assert_eq!(only.packages.len(), MAX_PACKAGES_PER_IMAGE);
        assert_eq!(only.packages[0], "lib000", "sorted, the first kept");
        assert_eq!(only.packages[49], "lib049");
    }

    #[test]
    fn a_scan_report_is_read_back_as_its_os_and_os_packages() {
        let inventory = Inventory {
            os: Some(OsIdentity {
                pretty_name: Some("Debian GNU/Linux 12 (bookworm)".into()),
                id_like: vec!["debian-like".into()],
                ..debian("12")
            }),
            packages: vec![
                deb("openssl", "3.0.14-1"),
                package(Ecosystem::Pypi, "requests", "2.31.0", "any"),
                package(Ecosystem::Rpm, "glibc", "2.34-1", "x86_64"),
            ],
        };
        let analysis = Analysis {
            inventory: inventory.clone(),
            integrity: None,
            capabilities: Vec::new(),
            warnings: Vec::new(),
            durations: BTreeMap::new(),
        };
        let report = ScanReport::new(
            Subject {
                image: "127.0.0.1:5000/team/base:1".into(),
                digest: None,
                image_id: None,
                access: Access::Directory,
            },
            "2024-01-01T00:00:00Z".into(),
            &analysis,
            (UpdatesReport::default(), Default::default()),
            slipway_scan::osv::check(&inventory, None),
        );
        let body = serde_json::to_vec(&report).unwrap();
        let read = installed_of_report(&body).unwrap();
        let mut os = inventory.os.clone().unwrap();
        os.pretty_name = None;
        assert_eq!(read.os, Some(os));
        let packages: Vec<(Ecosystem, &str, &str, Option<&str>)> = read
            .packages
            .iter()
            .map(|p| {
                (
                    p.ecosystem,
                    p.name.as_str(),
                    p.version.as_str(),
                    p.arch.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            packages,
            [
                (Ecosystem::Deb, "openssl", "3.0.14-1", Some("amd64")),
                (Ecosystem::Rpm, "glibc", "2.34-1", Some("x86_64")),
            ],
            "language packages are left out"
        );
        assert!(installed_of_report(b"not json").is_err());
        let bare = installed_of_report(br#"{"schema":"slipway.scan-report/1"}"#).unwrap();
        assert_eq!(
            bare,
            Inventory::default(),
            "a report without OS holds nothing"
        );
    }

    #[test]
    fn images_match_by_path_and_tag_whatever_the_registry() {
        let indexed = ImageRef::parse("team/base:1").unwrap();
        let reported = ImageRef::parse("127.0.0.1:5000/team/base:1").unwrap();
        let pinned = ImageRef::parse(&format!(
            "registry.example.org/team/base:1@sha256:{}",
            "ab".repeat(32)
        ))
        .unwrap();
        assert_eq!(key_of(&indexed), key_of(&reported));
        assert_eq!(key_of(&indexed), key_of(&pinned));
        assert_ne!(
            key_of(&indexed),
            key_of(&ImageRef::parse("127.0.0.1:5000/team/base:2").unwrap())
        );
        assert_eq!(key_of(&ImageRef::parse("team/base").unwrap()), None);
    }
}

//! The I/O shell of language-package updates: asks every configured index about every package
//! of its ecosystem in the image ([`Fetcher::releases`], at most [`CONCURRENT_LOOKUPS`] at a
//! time), keeps the answers in a [`ReleaseCache`], and makes the report. One index failing is
//! an error in the report; the others still answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use reqwest::Url;

use super::{IndexAnswer, LanguageUpdatesReport, PackageIndex, Release, find_language_updates};
use crate::package::Inventory;
use crate::updates::{FetchError, Fetcher};

/// How many lookups one scan has in flight at once.
pub const CONCURRENT_LOOKUPS: usize = 16;

/// An index's answer about one package, shared between the cache and the scans using it.
pub type Releases = Arc<Vec<Release>>;

/// At most this many answers are kept; when full, expired ones are dropped, then all.
const MAX_CACHED_ANSWERS: usize = 50_000;

/// Package indexes' answers by document URL, each kept for a time to live: the scan worker
/// checks the same packages image after image.
#[derive(Debug)]
pub struct ReleaseCache {
    ttl: Duration,
    /// Each answer with when it was received.
    answers: Mutex<HashMap<Url, (Instant, Releases)>>,
}

impl ReleaseCache {
    /// An empty cache keeping answers for `ttl` (zero: nothing is kept).
    pub fn new(ttl: Duration) -> ReleaseCache {
        ReleaseCache {
            ttl,
            answers: Mutex::new(HashMap::new()),
        }
    }

    /// The answer for `url`, when one younger than the time to live is kept.
    pub fn get(&self, url: &Url) -> Option<Releases> {
        let answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        answers
            .get(url)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, releases)| Arc::clone(releases))
    }

    /// Keeps `releases` as the answer for `url`, and returns it shared.
    pub fn put(&self, url: Url, releases: Vec<Release>) -> Releases {
        let releases = Arc::new(releases);
        if self.ttl.is_zero() {
            return releases;
        }
        let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        if answers.len() >= MAX_CACHED_ANSWERS {
            answers.retain(|_, (at, _)| at.elapsed() < self.ttl);
            if answers.len() >= MAX_CACHED_ANSWERS {
                answers.clear();
            }
        }
        answers.insert(url, (Instant::now(), Arc::clone(&releases)));
        releases
    }
}

/// Failed lookups of one index: how many, and the first failure.
struct IndexFailures {
    count: usize,
    first: FetchError,
}

/// Checks `inventory`'s Python, npm and gem packages against `indexes`, through `fetcher`
/// (`None` when none are configured), making at most the fetcher's `max_index_lookups`.
pub async fn check(
    fetcher: Option<&Fetcher>,
    indexes: &[PackageIndex],
    inventory: &Inventory,
) -> LanguageUpdatesReport {
    let not_checked = |reason: &str| LanguageUpdatesReport {
        not_checked: Some(reason.to_owned()),
        ..LanguageUpdatesReport::default()
    };
    let (Some(fetcher), false) = (fetcher, indexes.is_empty()) else {
        return not_checked("no package indexes are configured");
    };
    let lookups = super::lookups(inventory, indexes);
    if lookups.is_empty() {
        return not_checked("no configured index serves the image's language packages");
    }
    let max_lookups = usize::try_from(fetcher.max_index_lookups()).unwrap_or(usize::MAX);
    // Owned, so that the lookups' futures borrow nothing but the fetcher (a stream of futures
    // borrowing the caller's data is not `Send` for every lifetime the worker's runner needs).
    let wanted: Vec<(PackageIndex, String)> = lookups
        .iter()
        .flat_map(|(index, names)| names.iter().map(|name| ((*index).clone(), name.clone())))
        .collect();
    let skipped = wanted.len().saturating_sub(max_lookups);
    let results: Vec<(PackageIndex, String, Result<Releases, FetchError>)> =
        futures_util::stream::iter(wanted.into_iter().take(max_lookups))
            .map(|(index, name)| async move {
                let result = fetcher.releases(&index, &name).await;
                (index, name, result)
            })
            .buffered(CONCURRENT_LOOKUPS)
            .collect()
            .await;

    let mut answers = Vec::new();
    let mut failures: HashMap<String, IndexFailures> = HashMap::new();
    for (index, name, result) in results {
        match result {
            Ok(releases) => answers.push(IndexAnswer {
                index: index.name.clone(),
                ecosystem: index.kind.ecosystem(),
                name,
                releases: releases.as_ref().clone(),
            }),
            Err(error) => {
                failures
                    .entry(index.name.clone())
                    .and_modify(|f| f.count += 1)
                    .or_insert(IndexFailures {
                        count: 1,
                        first: error,
                    });
            }
        }
    }
    // Answers in configured index order, so that the first index offering a version is named.
    let position: HashMap<&str, usize> = indexes
        .iter()
        .enumerate()
        .map(|(i, index)| (index.name.as_str(), i))
        .collect();
    answers.sort_by_key(|answer| position.get(answer.index.as_str()).copied());

    let mut errors: Vec<String> = lookups
        .iter()
        .filter_map(|(index, names)| {
            let failed = failures.get(index.name.as_str())?;
            Some(format!(
                "index {:?}: {} of {} lookups failed; first: {}",
                index.name,
                failed.count,
                names.len(),
                failed.first
            ))
        })
        .collect();
    if skipped > 0 {
        errors.push(format!(
            "{skipped} package lookups not made: expected at most {max_lookups} per scan (max_index_lookups)"
        ));
    }
    LanguageUpdatesReport {
        indexes: lookups
            .iter()
            .map(|(index, _)| index.name.clone())
            .collect(),
        updates: find_language_updates(inventory, &answers),
        errors,
        not_checked: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(path: &str) -> Url {
        Url::parse(&format!("http://127.0.0.1:1/{path}")).unwrap()
    }

    fn release(version: &str) -> Release {
        Release {
            version: version.into(),
            platform: None,
            yanked: false,
        }
    }

    #[test]
    fn answers_are_kept_for_their_time_to_live_only() {
        let cache = ReleaseCache::new(Duration::from_secs(3600));
        assert!(cache.get(&url("a")).is_none());
        cache.put(url("a"), vec![release("1.0")]);
        assert_eq!(cache.get(&url("a")).unwrap().as_slice(), [release("1.0")]);
        assert!(cache.get(&url("b")).is_none());

        let off = ReleaseCache::new(Duration::ZERO);
        off.put(url("a"), vec![release("1.0")]);
        assert!(off.get(&url("a")).is_none(), "a zero TTL keeps nothing");
    }

    #[test]
    fn a_full_cache_stays_bounded() {
        let cache = ReleaseCache::new(Duration::from_secs(3600));
        for i in 0..=MAX_CACHED_ANSWERS {
            cache.put(url(&i.to_string()), Vec::new());
        }
        let kept = cache.answers.lock().unwrap().len();
        assert!(kept <= MAX_CACHED_ANSWERS, "{kept}");
        assert!(cache.get(&url(&MAX_CACHED_ANSWERS.to_string())).is_some());
    }
}

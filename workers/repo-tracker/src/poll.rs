//! A poll cycle: ask every tracked branch for its head the way `git ls-remote` does (the ref
//! advertisement only, no objects fetched), at most `concurrent` at once and `per_host` on any one
//! git host, each bounded in time. Results are handed over as they arrive, so a moved head is
//! acted on while the rest of the cycle runs.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use slipway_common::message::CommitSha;
use slipway_source::SourceCache;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::remote::RepoKey;

/// How a cycle is bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollLimits {
    /// Branches asked at once.
    pub concurrent: usize,
    /// Branches asked at once on one git host.
    pub per_host: usize,
    /// The longest one ask may take.
    pub timeout: Duration,
}

/// What one branch answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Polled {
    /// The repository, as the index writes it.
    pub url: String,
    /// The branch.
    pub branch: String,
    /// Its head, or why it could not be had (bounded, credentials redacted).
    pub head: Result<CommitSha, String>,
}

/// The git host a URL is served from (the grouping of the per-host limit).
pub fn host_of(url: &str) -> String {
    let key = RepoKey::of(url).to_string();
    match key.strip_prefix("file:") {
        Some(_) => "file".to_owned(),
        None => key.split('/').next().unwrap_or_default().to_owned(),
    }
}

/// A random delay in `[0, jitter]`.
pub fn jitter(jitter: Duration) -> Duration {
    let millis = u64::try_from(jitter.as_millis()).unwrap_or(u64::MAX);
    if millis == 0 {
        return Duration::ZERO;
    }
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    Duration::from_millis(hasher.finish() % (millis + 1))
}

/// Ask each of `branches` for its head within `limits`, sending each answer to `results` as it
/// arrives; stops early (dropping what is in flight) when `shutdown` is cancelled. Returns how
/// many branches were asked.
pub async fn poll_cycle(
    cache: &SourceCache,
    branches: Vec<(String, String)>,
    limits: PollLimits,
    results: mpsc::Sender<Polled>,
    shutdown: &CancellationToken,
) -> usize {
    let all = Arc::new(Semaphore::new(limits.concurrent.max(1)));
    let mut hosts: HashMap<String, Arc<Semaphore>> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let count = branches.len();
    for (url, branch) in branches {
        let host = Arc::clone(
            hosts
                .entry(host_of(&url))
                .or_insert_with(|| Arc::new(Semaphore::new(limits.per_host.max(1)))),
        );
        let (all, cache, results) = (Arc::clone(&all), cache.clone(), results.clone());
        tasks.spawn(async move {
            // The host's permit first: a task waiting for a busy host holds no global one.
            let Ok(_host) = host.acquire_owned().await else {
                return;
            };
            let Ok(_any) = all.acquire_owned().await else {
                return;
            };
            let head =
                match tokio::time::timeout(limits.timeout, cache.resolve(&url, &branch)).await {
                    Ok(Ok(head)) => Ok(head),
                    Ok(Err(error)) => Err(bounded(&error.to_string())),
                    Err(_) => Err(format!(
                        "no answer within {} ms",
                        limits.timeout.as_millis()
                    )),
                };
            let _ = results.send(Polled { url, branch, head }).await;
        });
    }
    drop(results);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => {
                tasks.abort_all();
                break;
            }
            joined = tasks.join_next() => {
                if joined.is_none() {
                    break;
                }
            }
        }
    }
    count
}

/// `text` cut to 300 characters.
fn bounded(text: &str) -> String {
    text.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_group_every_form_of_a_url() {
        assert_eq!(host_of("https://GitHub.com/a/b.git"), "github.com");
        assert_eq!(host_of("git@github.com:a/b"), "github.com");
        assert_eq!(
            host_of("ssh://git@git.example.org:2222/a/b"),
            "git.example.org"
        );
        assert_eq!(host_of("file:///srv/git/a"), "file");
    }

    #[test]
    fn jitter_stays_within_its_bound() {
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
        for _ in 0..100 {
            assert!(jitter(Duration::from_millis(50)) <= Duration::from_millis(50));
        }
    }
}

//! A poll cycle: ask every tracked branch for its head the way `git ls-remote` does (the ref
//! advertisement only, no objects fetched), at most `concurrent` at once and `per_host` on any one
//! git host, each bounded in time. Results are handed over as they arrive, so a moved head is
//! acted on while the rest of the cycle runs.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use slipway_common::message::CommitSha;
use slipway_source::SourceCache;
use tokio::sync::mpsc;
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
///
/// At most `concurrent` asks exist at any time (tasks are started as others end, not all up
/// front), taken round-robin over the hosts that have a free per-host slot, so a host with many
/// branches neither holds the others back nor costs memory for its queued branches beyond the
/// list itself.
pub async fn poll_cycle(
    cache: &SourceCache,
    branches: Vec<(String, String)>,
    limits: PollLimits,
    results: mpsc::Sender<Polled>,
    shutdown: &CancellationToken,
) -> usize {
    let count = branches.len();
    let mut queue = HostQueues::new(branches, limits);
    let mut tasks = tokio::task::JoinSet::new();
    // The host of each running ask, so that its slot is freed however the task ends.
    let mut host_of_task: HashMap<tokio::task::Id, usize> = HashMap::new();
    loop {
        while tasks.len() < limits.concurrent.max(1)
            && let Some((host, url, branch)) = queue.next()
        {
            let (cache, results) = (cache.clone(), results.clone());
            let task = tasks.spawn(async move {
                let head = match tokio::time::timeout(limits.timeout, cache.resolve(&url, &branch))
                    .await
                {
                    Ok(Ok(head)) => Ok(head),
                    Ok(Err(error)) => Err(bounded(&error.to_string())),
                    Err(_) => Err(format!(
                        "no answer within {} ms",
                        limits.timeout.as_millis()
                    )),
                };
                let _ = results.send(Polled { url, branch, head }).await;
            });
            host_of_task.insert(task.id(), host);
        }
        tokio::select! {
            () = shutdown.cancelled() => {
                tasks.abort_all();
                break;
            }
            joined = tasks.join_next_with_id() => {
                let id = match joined {
                    None => break,
                    Some(Ok((id, ()))) => id,
                    Some(Err(error)) => error.id(),
                };
                if let Some(host) = host_of_task.remove(&id) {
                    queue.done(host);
                }
            }
        }
    }
    count
}

/// The branches not asked yet, queued per host, and how many asks each host has running.
struct HostQueues {
    queued: Vec<std::collections::VecDeque<(String, String)>>,
    running: Vec<usize>,
    per_host: usize,
    /// The host to look at first on the next pick (round-robin).
    turn: usize,
}

impl HostQueues {
    fn new(branches: Vec<(String, String)>, limits: PollLimits) -> Self {
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut queued: Vec<std::collections::VecDeque<(String, String)>> = Vec::new();
        for (url, branch) in branches {
            let host = *index.entry(host_of(&url)).or_insert_with(|| {
                queued.push(std::collections::VecDeque::new());
                queued.len() - 1
            });
            queued[host].push_back((url, branch));
        }
        HostQueues {
            running: vec![0; queued.len()],
            queued,
            per_host: limits.per_host.max(1),
            turn: 0,
        }
    }

    /// The next branch to ask, from the next host (round-robin) with one queued and a free
    /// slot; counts it as running.
    fn next(&mut self) -> Option<(usize, String, String)> {
        let hosts = self.queued.len();
        for step in 0..hosts {
            let host = (self.turn + step) % hosts;
            if self.running[host] < self.per_host
                && let Some((url, branch)) = self.queued[host].pop_front()
            {
                self.running[host] += 1;
                self.turn = (host + 1) % hosts;
                return Some((host, url, branch));
            }
        }
        None
    }

    /// An ask on `host` ended.
    fn done(&mut self, host: usize) {
        self.running[host] = self.running[host].saturating_sub(1);
    }
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

    fn limits(per_host: usize) -> PollLimits {
        PollLimits {
            concurrent: 16,
            per_host,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn hosts_take_turns_and_none_runs_more_than_its_limit() {
        let branches = vec![
            ("https://a.example/1".to_owned(), "main".to_owned()),
            ("https://a.example/2".to_owned(), "main".to_owned()),
            ("https://a.example/3".to_owned(), "main".to_owned()),
            ("https://b.example/1".to_owned(), "main".to_owned()),
        ];
        let mut queue = HostQueues::new(branches, limits(2));
        let picked: Vec<String> = std::iter::from_fn(|| queue.next())
            .map(|(_, url, _)| url)
            .collect();
        // a, b, a; a's third waits for a free slot.
        assert_eq!(
            picked,
            [
                "https://a.example/1",
                "https://b.example/1",
                "https://a.example/2"
            ]
        );
        queue.done(0);
        let (_, url, _) = queue.next().expect("a slot of a is free again");
        assert_eq!(url, "https://a.example/3");
        assert!(queue.next().is_none(), "nothing is left");
    }

    #[test]
    fn jitter_stays_within_its_bound() {
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
        for _ in 0..100 {
            assert!(jitter(Duration::from_millis(50)) <= Duration::from_millis(50));
        }
    }
}

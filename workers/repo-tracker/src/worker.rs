//! The repo-tracker's wiring. Every instance runs three things:
//! - the *follower*: reads the history stream from its start and keeps following it, folding
//!   every event into the shared [`TrackerState`] (so a standby is always ready to take over);
//! - the *webhook endpoint* (when configured): a push to a tracked branch becomes a `git.changed`
//!   event, whichever instance receives it;
//! - a candidacy in the leader election ([`LeaderElection`], single-active-consumer). The one
//!   leader, once its view has caught up with the history, publishes what the state decided (its
//!   outbox), reads index commits, polls every tracked branch, looks at the package repositories
//!   (`packages.updated`, see [`crate::packages`]), and republishes the index in force as a
//!   checkpoint so it never ages out of the history.
//!
//! Nothing is stored but events: a restart or a takeover folds the history again.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use slipway_broker::follower::{Folded, HistoryFold, HistoryView};
use slipway_broker::{BrokerSettings, LeaderElection, LeaderTerm, Outlet};
use slipway_common::envelope::{Cause, MessageId, Timestamp};
use slipway_common::message::{
    CommitSha, GitChanged, IndexApplied, IndexRejected, PackagesUpdated, SeenBy,
};
use slipway_common::{Envelope, ImageRef, JobId, Message};
use slipway_source::{SourceCache, SourceError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{RepoTrackerConfig, TrackerSettings};
use crate::http::{PushSink, WebhookSecrets, serve_webhooks};
use crate::index_load::{LoadError, LoadedIndex, load_index};
use crate::packages::PackageWatch;
use crate::poll::{PollLimits, Polled, jitter, poll_cycle};
use crate::remote::BranchKey;
use crate::state::{Action, TrackerState};
use crate::telemetry;

/// A published decision not yet seen in the history after this long is published again.
const RESEND_AFTER: Duration = Duration::from_secs(60);

/// How long to wait before reading an index commit again after a transient failure.
const INDEX_RETRY: Duration = Duration::from_secs(30);

/// Why the tracker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// `[tracker]` or `[webhook]` is unusable.
    #[error("invalid settings: {0}")]
    Settings(String),
    /// The git cache cannot be used.
    #[error("source cache: {0}")]
    Source(SourceError),
    /// The webhook endpoint cannot start (secrets, address).
    #[error("webhook endpoint: {0}")]
    Webhook(String),
    /// The broker failed for good.
    #[error(transparent)]
    Broker(#[from] slipway_broker::BrokerError),
}

/// The view every part of an instance shares: the tracker's state folded from the history.
pub type Shared = HistoryView<TrackerState>;

impl HistoryFold for TrackerState {
    fn apply(&mut self, event: &Envelope) {
        TrackerState::apply(self, event);
    }
}

/// The follower's report on each history entry, to the tracker's metrics.
fn observe_fold(state: &TrackerState, folded: Folded) {
    let in_progress = state.plan().in_progress();
    match folded {
        Folded::Event => telemetry::folded(1, 0, in_progress),
        Folded::Undecodable => telemetry::folded(0, 1, in_progress),
        Folded::CaughtUp => {
            tracing::info!(
                events = state.applied_events(),
                "caught up with the history"
            );
        }
    }
}

/// The webhook endpoint's view: tracked branches from the shared state, events through the
/// outlet.
struct WebhookTarget {
    shared: Arc<Shared>,
    outlet: Arc<Outlet>,
}

impl PushSink for WebhookTarget {
    fn tracked_url(&self, repository_urls: &[String], branch: &str) -> Option<String> {
        let wanted: Vec<BranchKey> = repository_urls
            .iter()
            .map(|url| BranchKey::of(url, branch))
            .collect();
        self.shared.read(|state| {
            wanted
                .iter()
                .find_map(|key| state.tracked_url(key).map(str::to_owned))
        })
    }

    fn publish(&self, changed: GitChanged) -> impl Future<Output = Result<(), String>> + Send {
        let outlet = Arc::clone(&self.outlet);
        async move {
            let envelope = Envelope::new_job(Cause::GitChange, Message::GitChanged(changed));
            outlet.publish(std::slice::from_ref(&envelope)).await
        }
    }
}

/// Runs the repo-tracker until `shutdown` is cancelled.
pub async fn run(
    config: RepoTrackerConfig,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    telemetry::register_metrics();
    config.tracker.validate().map_err(WorkerError::Settings)?;
    config.webhook.validate().map_err(WorkerError::Settings)?;
    config.broker.validate()?;
    let external = config.tracker.externals().map_err(WorkerError::Settings)?;
    let cache = SourceCache::new(config.source.clone()).map_err(WorkerError::Source)?;
    let packages = PackageWatch::from_settings(&config.tracker, &config.broker)
        .map_err(|e| WorkerError::Settings(e.to_string()))?
        .map(Arc::new);
    let shared = Shared::new(TrackerState::new(config.tracker.tracking()));
    let outlet = Arc::new(Outlet::new(
        &config.broker,
        "slipway-repo-tracker-publisher",
    ));

    let follower = tokio::spawn(Arc::clone(&shared).follow(
        config.broker.clone(),
        "slipway-repo-tracker-follower".to_owned(),
        shutdown.clone(),
        observe_fold,
    ));

    let mut webhook_task = None;
    if !config.webhook.listen.is_empty() {
        let secrets = WebhookSecrets::load(&config.webhook)
            .map_err(|e| WorkerError::Webhook(e.to_string()))?;
        let addr = config
            .webhook
            .listen
            .parse()
            .map_err(|e| WorkerError::Settings(format!("webhook.listen: {e}")))?;
        let server = serve_webhooks(
            addr,
            Arc::new(secrets),
            Arc::new(WebhookTarget {
                shared: Arc::clone(&shared),
                outlet: Arc::clone(&outlet),
            }),
            Duration::from_millis(config.webhook.read_timeout_ms),
            shutdown.clone(),
        )
        .await
        .map_err(|e| WorkerError::Webhook(e.to_string()))?;
        tracing::info!(address = %server.local_addr, "webhook endpoint listening");
        webhook_task = Some(server.task);
    }

    let leader = Leader {
        broker: config.broker.clone(),
        settings: config.tracker.clone(),
        external,
        cache,
        packages,
        shared: Arc::clone(&shared),
        outlet: Arc::clone(&outlet),
    };
    let election = LeaderElection::new(&config.broker, "repo-tracker")
        .with_renew_interval(Duration::from_millis(config.tracker.leader_renew_ms));
    let elected = election
        .run(shutdown.clone(), |term| leader.lead(term))
        .await;
    shutdown.cancel();
    let _ = follower.await;
    if let Some(task) = webhook_task {
        let _ = task.await;
    }
    outlet.close().await;
    elected?;
    Ok(())
}

/// What an index read gave.
struct IndexRead {
    commit: CommitSha,
    result: MessageId,
    outcome: Result<LoadedIndex, LoadError>,
}

/// The leader's means.
struct Leader {
    broker: BrokerSettings,
    settings: TrackerSettings,
    external: Vec<ImageRef>,
    cache: SourceCache,
    /// The package-repository watch, when repositories are configured.
    packages: Option<Arc<PackageWatch>>,
    shared: Arc<Shared>,
    outlet: Arc<Outlet>,
}

/// The fingerprints a leader published in its term, by repository: what the next check compares
/// with until the view has folded them (a check that starts moments after a publish must not
/// publish the same change again).
type Published = Arc<Mutex<HashMap<String, String>>>;

impl Leader {
    /// One term: act until the term ends.
    async fn lead(&self, term: LeaderTerm) {
        telemetry::leadership(true, term.number);
        let token = term.token.clone();
        // Act only on a view that has read the whole history, up to what the previous leader
        // published last: otherwise a decision it published moments before it died, not folded
        // yet, would be published again.
        tokio::select! {
            () = token.cancelled() => {
                telemetry::leadership(false, term.number);
                return;
            }
            () = self.shared.fence(&self.broker, "slipway-repo-tracker-fence") => {}
        }
        let (polled_tx, mut polled_rx) = mpsc::channel::<Polled>(1024);
        let (read_tx, mut read_rx) = mpsc::channel::<IndexRead>(16);
        let mut sent: HashMap<MessageId, Instant> = HashMap::new();
        let mut reading: HashSet<MessageId> = HashSet::new();
        let mut retry_reads_at: HashMap<MessageId, Instant> = HashMap::new();
        let mut polling: Option<tokio::task::JoinHandle<()>> = None;
        // Branches asked for in this term: one that appears in the index is asked at once, not
        // one interval later.
        let mut asked: HashSet<BranchKey> = HashSet::new();
        // The index generation whose branches were all asked for: the branches change only with
        // the index, so the check costs nothing per event.
        let mut asked_generation: Option<u64> = None;
        let interval = Duration::from_millis(self.settings.poll_interval_ms);
        // The first cycle is the one over the branches not asked yet (all of them), at once.
        let mut next_poll = tokio::time::Instant::now() + interval;
        let checkpoint = Duration::from_millis(self.settings.index_checkpoint_ms);
        let mut next_checkpoint = tokio::time::Instant::now() + checkpoint;
        let mut readers = tokio::task::JoinSet::new();
        // The first package check starts right after the first poll cycle, on the fenced view.
        let package_interval = Duration::from_millis(self.settings.package_check_interval_ms);
        let mut next_package_check = tokio::time::Instant::now();
        let mut checking: Option<tokio::task::JoinHandle<()>> = None;
        let published: Published = Arc::default();
        loop {
            if self.shared.is_caught_up() {
                self.act(
                    &mut sent,
                    &mut reading,
                    &mut retry_reads_at,
                    &read_tx,
                    &mut readers,
                )
                .await;
                let generation = self.shared.read(TrackerState::index_generation);
                if asked_generation != Some(generation)
                    && polling.as_ref().is_none_or(|task| task.is_finished())
                {
                    asked_generation = Some(generation);
                    let fresh: Vec<(String, String)> = self
                        .shared
                        .read(TrackerState::tracked_branches)
                        .into_iter()
                        .filter(|(url, branch)| !asked.contains(&BranchKey::of(url, branch)))
                        .collect();
                    if !fresh.is_empty() {
                        asked.extend(fresh.iter().map(|(url, branch)| BranchKey::of(url, branch)));
                        polling =
                            Some(self.start_poll_cycle(fresh, polled_tx.clone(), token.clone()));
                    }
                }
                if let Some(watch) = &self.packages
                    && tokio::time::Instant::now() >= next_package_check
                {
                    if checking.as_ref().is_none_or(|task| task.is_finished()) {
                        checking = Some(
                            self.start_package_check(Arc::clone(watch), Arc::clone(&published)),
                        );
                    } else {
                        tracing::warn!(
                            "the previous package check is still running; this one is skipped"
                        );
                    }
                    next_package_check = tokio::time::Instant::now() + package_interval;
                }
            }
            tokio::select! {
                () = token.cancelled() => break,
                () = self.shared.changed() => {}
                Some(polled) = polled_rx.recv() => self.on_polled(polled).await,
                Some(read) = read_rx.recv() => {
                    reading.remove(&read.result);
                    self.on_index_read(read, &mut sent, &mut retry_reads_at).await;
                }
                () = tokio::time::sleep_until(next_poll) => {
                    if polling.as_ref().is_none_or(|task| task.is_finished()) {
                        let branches = self.shared.read(TrackerState::tracked_branches);
                        asked.extend(branches.iter().map(|(url, branch)| BranchKey::of(url, branch)));
                        polling = Some(self.start_poll_cycle(branches, polled_tx.clone(), token.clone()));
                    } else {
                        tracing::warn!("the previous poll cycle is still running; this one is skipped");
                    }
                    next_poll = tokio::time::Instant::now()
                        + interval
                        + jitter(Duration::from_millis(self.settings.poll_jitter_ms));
                }
                () = tokio::time::sleep_until(next_checkpoint) => {
                    self.checkpoint().await;
                    next_checkpoint = tokio::time::Instant::now() + checkpoint;
                }
                // Only a caught-up view starts a check (above): otherwise this would fire at once,
                // again and again, until it catches up.
                () = tokio::time::sleep_until(next_package_check),
                    if self.packages.is_some() && self.shared.is_caught_up() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        if let Some(task) = polling {
            task.abort();
        }
        if let Some(task) = checking {
            task.abort();
        }
        readers.abort_all();
        telemetry::leadership(false, term.number);
    }

    /// Carry out what the outbox holds and was not carried out yet.
    async fn act(
        &self,
        sent: &mut HashMap<MessageId, Instant>,
        reading: &mut HashSet<MessageId>,
        retry_reads_at: &mut HashMap<MessageId, Instant>,
        read_tx: &mpsc::Sender<IndexRead>,
        readers: &mut tokio::task::JoinSet<()>,
    ) {
        let actions: Vec<Action> = self.shared.read(|state| state.outbox().cloned().collect());
        let pending: HashSet<MessageId> = actions.iter().map(Action::id).collect();
        sent.retain(|id, _| pending.contains(id));
        retry_reads_at.retain(|id, _| pending.contains(id));
        let now = Instant::now();
        let mut batch = Vec::new();
        for action in actions {
            match action {
                Action::Publish(envelope) => {
                    if sent
                        .get(&envelope.id)
                        .is_none_or(|at| now.duration_since(*at) > RESEND_AFTER)
                    {
                        batch.push(*envelope);
                    }
                }
                Action::LoadIndex { commit, result } => {
                    let due = retry_reads_at.get(&result).is_none_or(|at| now >= *at)
                        && sent
                            .get(&result)
                            .is_none_or(|at| now.duration_since(*at) > RESEND_AFTER);
                    if due && reading.insert(result) {
                        let (cache, url, dir, external, tx) = (
                            self.cache.clone(),
                            self.settings.index_url.clone(),
                            self.settings.index_dir.clone(),
                            self.external.clone(),
                            read_tx.clone(),
                        );
                        tracing::info!(commit = %commit, "reading the index");
                        readers.spawn(async move {
                            let outcome = load_index(&cache, &url, &dir, &commit, &external).await;
                            let _ = tx
                                .send(IndexRead {
                                    commit,
                                    result,
                                    outcome,
                                })
                                .await;
                        });
                    }
                }
            }
        }
        if batch.is_empty() {
            return;
        }
        match self.outlet.publish(&batch).await {
            Ok(()) => {
                for envelope in &batch {
                    sent.insert(envelope.id, now);
                    let about = envelope
                        .message
                        .image()
                        .map(|(image, _)| image.to_string())
                        .unwrap_or_default();
                    telemetry::decided(
                        envelope.kind().as_str(),
                        &envelope.job_id.to_string(),
                        &about,
                    );
                }
            }
            Err(error) => {
                tracing::warn!(%error, events = batch.len(), "cannot publish the tracker's decisions; will retry")
            }
        }
    }

    /// A branch answered: a head new to the view is published as `git.changed`.
    async fn on_polled(&self, polled: Polled) {
        let outcome = match polled.head {
            Ok(head) => {
                let branch = BranchKey::of(&polled.url, &polled.branch);
                let known = self.shared.read(|state| state.head(&branch).cloned());
                if known.as_ref() == Some(&head) {
                    Ok(false)
                } else {
                    let envelope = Envelope::new_job(
                        Cause::GitChange,
                        Message::GitChanged(GitChanged {
                            git_url: polled.url.clone(),
                            git_branch: polled.branch.clone(),
                            commit: head,
                            seen_by: SeenBy::Poll,
                            delivery_id: None,
                        }),
                    );
                    match self.outlet.publish(std::slice::from_ref(&envelope)).await {
                        Ok(()) => {
                            telemetry::decided(
                                "git.changed",
                                &envelope.job_id.to_string(),
                                &polled.url,
                            );
                            Ok(true)
                        }
                        Err(error) => Err(format!("cannot publish git.changed: {error}")),
                    }
                }
            }
            Err(error) => Err(error),
        };
        telemetry::polled(&polled.url, &polled.branch, &outcome);
    }

    /// Start a poll cycle over `branches`.
    fn start_poll_cycle(
        &self,
        branches: Vec<(String, String)>,
        results: mpsc::Sender<Polled>,
        token: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let cache = self.cache.clone();
        let limits = PollLimits {
            concurrent: self.settings.max_concurrent_polls,
            per_host: self.settings.max_polls_per_host,
            timeout: Duration::from_millis(self.settings.poll_timeout_ms),
        };
        tokio::spawn(async move {
            let started = Instant::now();
            let count = poll_cycle(&cache, branches, limits, results, &token).await;
            telemetry::poll_cycle_done(count, started.elapsed());
        })
    }

    /// Start one look at the package repositories; what it finds is published as it comes.
    fn start_package_check(
        &self,
        watch: Arc<PackageWatch>,
        published: Published,
    ) -> tokio::task::JoinHandle<()> {
        let shared = Arc::clone(&self.shared);
        let outlet = Arc::clone(&self.outlet);
        tokio::spawn(async move {
            let known = |repository: &str| {
                let mine = published
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .get(repository)
                    .cloned();
                mine.or_else(|| {
                    shared.read(|state| state.fingerprint(repository).map(str::to_owned))
                })
            };
            let updates = watch
                .check(known, || shared.read(TrackerState::images))
                .await;
            for updated in updates {
                publish_packages_updated(&outlet, &published, updated).await;
            }
        })
    }

    /// An index read ended: publish its verdict, or retry a transient failure later.
    async fn on_index_read(
        &self,
        read: IndexRead,
        sent: &mut HashMap<MessageId, Instant>,
        retry_reads_at: &mut HashMap<MessageId, Instant>,
    ) {
        let message = match read.outcome {
            Ok(LoadedIndex::Valid(entries)) => Message::IndexApplied(IndexApplied {
                git_url: self.settings.index_url.clone(),
                git_branch: self.settings.index_branch.clone(),
                commit: read.commit.clone(),
                entries,
            }),
            Ok(LoadedIndex::Invalid(problems)) => {
                for problem in &problems {
                    tracing::warn!(commit = %read.commit, file = %problem.file, line = ?problem.line, problem = %problem.message, "index problem");
                }
                Message::IndexRejected(IndexRejected {
                    git_url: self.settings.index_url.clone(),
                    git_branch: self.settings.index_branch.clone(),
                    commit: read.commit.clone(),
                    problems,
                    in_force: self
                        .shared
                        .read(|state| state.index().map(|index| index.commit.clone())),
                })
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the index; will retry");
                retry_reads_at.insert(read.result, Instant::now() + INDEX_RETRY);
                return;
            }
        };
        let envelope = Envelope {
            id: read.result,
            job_id: JobId::derived(read.result.to_string().as_bytes()),
            cause: Cause::IndexChange,
            created_at: Timestamp::now(),
            message,
        };
        let kind = envelope.kind().as_str();
        match self.outlet.publish(std::slice::from_ref(&envelope)).await {
            Ok(()) => {
                sent.insert(envelope.id, Instant::now());
                telemetry::decided(kind, &envelope.job_id.to_string(), read.commit.as_str());
            }
            Err(error) => {
                tracing::warn!(%error, "cannot publish the index verdict; will retry");
                retry_reads_at.insert(read.result, Instant::now() + INDEX_RETRY);
            }
        }
    }

    /// Publish the index in force again, so that it stays in the history.
    async fn checkpoint(&self) {
        let applied = self.shared.read(|state| {
            state.index().map(|index| IndexApplied {
                git_url: self.settings.index_url.clone(),
                git_branch: self.settings.index_branch.clone(),
                commit: index.commit.clone(),
                entries: index.entries.clone(),
            })
        });
        let Some(applied) = applied else { return };
        let envelope = Envelope::new_job(Cause::IndexChange, Message::IndexApplied(applied));
        if let Err(error) = self.outlet.publish(std::slice::from_ref(&envelope)).await {
            tracing::warn!(%error, "cannot publish the index checkpoint");
        }
    }
}

/// Publish what a package check found, and remember its fingerprint for the rest of the term. A
/// failed publish is logged: the fingerprint stays as it was, so the next check finds the change
/// again.
async fn publish_packages_updated(
    outlet: &Outlet,
    published: &Published,
    updated: PackagesUpdated,
) {
    let about = format!("{} ({} images)", updated.repository, updated.images.len());
    let (repository, fingerprint) = (updated.repository.clone(), updated.fingerprint.clone());
    // No one package is the reason for the event: its cause names the repository.
    let envelope = Envelope::new_job(
        Cause::PackageUpdate(repository.clone()),
        Message::PackagesUpdated(updated),
    );
    match outlet.publish(std::slice::from_ref(&envelope)).await {
        Ok(()) => {
            published
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert(repository, fingerprint);
            telemetry::decided("packages.updated", &envelope.job_id.to_string(), &about);
        }
        Err(error) => {
            tracing::warn!(%error, repository, "cannot publish packages.updated; the next check finds the change again")
        }
    }
}

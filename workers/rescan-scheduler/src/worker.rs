//! The rescan-scheduler's wiring. Every instance runs two things:
//! - the *follower*: reads the history stream from its start and keeps following it, folding
//!   every event into the shared [`SchedulerState`] (so a standby is always ready to take over);
//! - a candidacy in the leader election ([`LeaderElection`], single-active-consumer). The one
//!   leader, once its view has folded the history up to the tail it had when the term began
//!   (so it has seen everything its predecessor published), publishes what is due: rescans,
//!   scheduled rebuilds, summaries. It sleeps until the next due moment, and wakes at every
//!   change of the view.
//!
//! Why nothing is sent twice: a decision leaves the due list only when the view has folded the
//! event that carries it out; until then the leader remembers what it published in this term
//! and publishes it again only after [`RESEND_AFTER`] (when its event was lost). A new leader
//! starts from a view that holds every event its predecessor got confirmed. At most two batches
//! are published and not yet folded at a time, so a backlog goes out at the pace the history
//! takes it back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slipway_broker::follower::{Folded, HistoryFold, HistoryView};
use slipway_broker::{BrokerSettings, LeaderElection, LeaderTerm, Outlet};
use slipway_common::{Envelope, Message, MessageId, Timestamp};
use tokio_util::sync::CancellationToken;

use crate::config::{SchedulerConfig, SchedulerSettings};
use crate::state::{DueToken, SchedulerState};
use crate::telemetry;

/// A published decision not yet seen in the history after this long is published again.
pub const RESEND_AFTER: Duration = Duration::from_secs(60);

/// The longest the leader sleeps without looking again.
const IDLE_WAKE: Duration = Duration::from_secs(60);

/// The shortest: folds arriving together are handled in one pass, not one pass each.
const COALESCE: Duration = Duration::from_millis(5);

/// Why the scheduler could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// `[scheduler]` is unusable.
    #[error("invalid settings: {0}")]
    Settings(String),
    /// The broker failed for good.
    #[error(transparent)]
    Broker(#[from] slipway_broker::BrokerError),
}

/// The view every part of an instance shares.
pub type View = HistoryView<SchedulerState>;

impl HistoryFold for SchedulerState {
    fn apply(&mut self, event: &Envelope) {
        SchedulerState::apply(self, event);
    }
}

/// The follower's report on each history entry.
fn observe_fold(state: &SchedulerState, folded: Folded) {
    telemetry::live_images(state.live_images());
    if folded == Folded::CaughtUp {
        tracing::info!(
            events = state.applied_events(),
            images = state.live_images(),
            scheduled_rebuilds = state.scheduled_rebuilds(),
            "caught up with the history"
        );
    }
}

/// Runs the rescan-scheduler until `shutdown` is cancelled.
pub async fn run(config: SchedulerConfig, shutdown: CancellationToken) -> Result<(), WorkerError> {
    telemetry::register_metrics();
    config.scheduler.validate().map_err(WorkerError::Settings)?;
    config.broker.validate()?;
    let view = View::new(SchedulerState::new(config.scheduler.timing()));
    let outlet = Arc::new(Outlet::new(
        &config.broker,
        "slipway-rescan-scheduler-publisher",
    ));
    let follower = tokio::spawn(Arc::clone(&view).follow(
        config.broker.clone(),
        "slipway-rescan-scheduler-follower".to_owned(),
        shutdown.clone(),
        observe_fold,
    ));
    let leader = Leader {
        broker: config.broker.clone(),
        settings: config.scheduler.clone(),
        view: Arc::clone(&view),
        outlet: Arc::clone(&outlet),
    };
    let election = LeaderElection::new(&config.broker, "rescan-scheduler")
        .with_renew_interval(Duration::from_millis(config.scheduler.leader_renew_ms));
    let elected = election
        .run(shutdown.clone(), |term| leader.lead(term))
        .await;
    shutdown.cancel();
    let _ = follower.await;
    outlet.close().await;
    elected?;
    Ok(())
}

/// The leader's means.
struct Leader {
    broker: BrokerSettings,
    settings: SchedulerSettings,
    view: Arc<View>,
    outlet: Arc<Outlet>,
}

impl Leader {
    /// One term: publish what is due until the term ends.
    async fn lead(&self, term: LeaderTerm) {
        telemetry::leadership(true, term.number);
        let token = term.token.clone();
        tokio::select! {
            () = token.cancelled() => {
                telemetry::leadership(false, term.number);
                return;
            }
            () = self.view.fence(&self.broker, "slipway-rescan-scheduler-fence") => {}
        }
        let mut sent: HashMap<MessageId, (Instant, DueToken)> = HashMap::new();
        let mut lag_measured: Option<Instant> = None;
        loop {
            let now = Timestamp::now().unix_millis();
            let mut again = false;
            if self.view.is_caught_up() {
                // The lag walks everything due: measured once a second, not at every pass.
                if lag_measured.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                    let (count, lag) = self.view.read(|state| state.lag(now));
                    telemetry::lag(count, lag);
                    lag_measured = Some(Instant::now());
                }
                again = self.publish_due(now, &mut sent).await;
            }
            if again {
                tokio::task::yield_now().await;
                continue;
            }
            // Sleep until the next due moment; a change of the view (an event folded) may bring
            // one nearer, so it wakes the loop too, after a short pause that lets a burst of
            // folds (this leader's own decisions coming back) be handled in one pass.
            // What is due now was sent (or cannot be): the next fold, or a second, wakes it.
            let wake = match self.view.read(|state| state.next_due(now)) {
                Some(at) if at <= now => Duration::from_secs(1),
                Some(at) => Duration::from_millis(at - now).clamp(COALESCE, IDLE_WAKE),
                None => IDLE_WAKE,
            };
            tokio::select! {
                () = token.cancelled() => break,
                () = self.view.changed() => {
                    tokio::time::sleep(COALESCE).await;
                }
                () = tokio::time::sleep(wake) => {}
            }
        }
        telemetry::leadership(false, term.number);
    }

    /// Publish a batch of what is due at `now` and was not published recently; whether more is
    /// waiting to be published at once.
    async fn publish_due(
        &self,
        now: u64,
        sent: &mut HashMap<MessageId, (Instant, DueToken)>,
    ) -> bool {
        let batch_size = self.settings.max_batch;
        let clock = Instant::now();
        let due = self.view.read(|state| {
            // Forget what the view has folded, and what was sent too long ago to still trust.
            sent.retain(|_, (at, token)| {
                clock.duration_since(*at) <= RESEND_AFTER && state.is_pending(token)
            });
            // Flow control: at most two batches published and not folded yet. A backlog (a
            // leader taking over after a long gap) goes out as fast as the history takes it
            // back, not all at once into the broker's and this process's buffers.
            if sent.len() >= 2 * batch_size {
                return Vec::new();
            }
            state.due_except(now, batch_size, |id| sent.contains_key(id))
        });
        if due.is_empty() {
            return false;
        }
        let tokens: Vec<(MessageId, DueToken)> = due
            .iter()
            .map(|d| (d.envelope.id, d.token.clone()))
            .collect();
        let batch: Vec<Envelope> = due.into_iter().map(|d| d.envelope).collect();
        match self.outlet.publish(&batch).await {
            Ok(()) => {
                for (id, token) in tokens {
                    sent.insert(id, (clock, token));
                }
                for envelope in &batch {
                    let subject = match &envelope.message {
                        Message::SummaryReady(summary) => summary.notify_email.clone(),
                        message => message
                            .image()
                            .map(|(image, _)| image.to_string())
                            .unwrap_or_default(),
                    };
                    telemetry::decided(
                        envelope.kind().as_str(),
                        &envelope.job_id.to_string(),
                        &subject,
                    );
                }
                batch.len() == batch_size
            }
            Err(error) => {
                tracing::warn!(%error, events = batch.len(), "cannot publish what is due; will retry");
                false
            }
        }
    }
}

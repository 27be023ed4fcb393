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
//! starts from a view that holds every event its predecessor got confirmed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use slipway_broker::follower::{Folded, HistoryFold, HistoryView};
use slipway_broker::{BrokerSettings, LeaderElection, LeaderTerm, Outlet};
use slipway_common::{Envelope, Message, MessageId};
use tokio_util::sync::CancellationToken;

use crate::config::{SchedulerConfig, SchedulerSettings};
use crate::state::SchedulerState;
use crate::telemetry;

/// A published decision not yet seen in the history after this long is published again.
pub const RESEND_AFTER: Duration = Duration::from_secs(60);

/// The longest the leader sleeps without looking again.
const IDLE_WAKE: Duration = Duration::from_secs(60);

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

/// Milliseconds since the Unix epoch, now.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
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
        let mut sent: HashMap<MessageId, Instant> = HashMap::new();
        loop {
            let now = now_ms();
            let mut again = false;
            if self.view.is_caught_up() {
                again = self.publish_due(now, &mut sent).await;
            }
            let wake = if again {
                Duration::ZERO
            } else {
                self.view
                    .read(|state| state.next_due(now))
                    .map_or(IDLE_WAKE, |at| {
                        Duration::from_millis(at.saturating_sub(now))
                    })
                    .min(IDLE_WAKE)
            };
            // Something due but already sent (its event not folded yet): the fold wakes us.
            let wake = if wake.is_zero() && !again {
                IDLE_WAKE.min(Duration::from_secs(1))
            } else {
                wake
            };
            tokio::select! {
                () = token.cancelled() => break,
                () = self.view.changed() => {}
                () = tokio::time::sleep(wake) => {}
            }
        }
        telemetry::leadership(false, term.number);
    }

    /// Publish a batch of what is due at `now` and was not published recently; whether more is
    /// waiting to be published at once.
    async fn publish_due(&self, now: u64, sent: &mut HashMap<MessageId, Instant>) -> bool {
        let batch_size = self.settings.max_batch;
        let (due, (count, lag)) = self
            .view
            .read(|state| (state.due(now, batch_size.saturating_mul(4)), state.lag(now)));
        telemetry::lag(count, lag);
        let due_ids: HashSet<MessageId> = due.iter().map(|d| d.envelope.id).collect();
        let clock = Instant::now();
        sent.retain(|id, at| due_ids.contains(id) && clock.duration_since(*at) <= RESEND_AFTER);
        let batch: Vec<Envelope> = due
            .into_iter()
            .map(|d| d.envelope)
            .filter(|envelope| !sent.contains_key(&envelope.id))
            .take(batch_size)
            .collect();
        if batch.is_empty() {
            return false;
        }
        match self.outlet.publish(&batch).await {
            Ok(()) => {
                for envelope in &batch {
                    sent.insert(envelope.id, clock);
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
                count > batch.len()
            }
            Err(error) => {
                tracing::warn!(%error, events = batch.len(), "cannot publish what is due; will retry");
                false
            }
        }
    }
}

//! A view folded from the history stream, for workers whose state is the history itself (the
//! repo-tracker, the rescan-scheduler): every instance keeps one, so a standby is ready to lead.
//!
//! - [`HistoryFold`]: the pure part, a state that takes one event at a time.
//! - [`HistoryView`]: that state behind a lock, with what the tasks around it wait on: whether the
//!   view has read the whole history ([`HistoryView::is_caught_up`]), the offset folded last, and
//!   a notification on every change ([`HistoryView::changed`]).
//! - [`HistoryView::follow`]: the follower task. It reads the history from its first event and
//!   keeps following it; after a lost connection it reconnects (backing off up to
//!   `max_reconnect_delay_ms`) and resumes after the last event folded, so nothing is folded twice.
//! - [`HistoryView::fence`]: what a new leader waits for before acting. It returns once the view
//!   has folded the history up to the tail the stream had when the fence was asked for. Whatever
//!   the previous leader published before its term ended is then in the view.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use slipway_common::Envelope;
use slipway_common::service::Component;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::history::{HistoryQuery, HistoryReader, HistoryStep, history_stream_name};
use crate::streams::ReadFrom;
use crate::streams::reader::ReadOptions;
use crate::{BrokerConnection, BrokerSettings, Topology};

/// Entries the broker may send the follower ahead of its fold: a start-up reads the whole
/// history, and a larger window keeps that read from waiting on the broker.
const FOLLOW_PREFETCH: u16 = 1000;

/// A state folded from the history, one event at a time. Must be pure: the same events in the
/// same order give the same state on every instance.
pub trait HistoryFold: Send + 'static {
    /// Fold one event.
    fn apply(&mut self, event: &Envelope);
}

/// What the follower did with one entry of the stream, for a worker's metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Folded {
    /// An event was folded.
    Event,
    /// An entry could not be decoded and was skipped (logged).
    Undecodable,
    /// The view has read the whole history (again, after a reconnection).
    CaughtUp,
}

/// A [`HistoryFold`] state shared by the follower, the leader and whatever else reads it.
pub struct HistoryView<S> {
    state: Mutex<S>,
    caught_up: watch::Sender<bool>,
    /// The offset of the last history entry folded (or skipped).
    folded: watch::Sender<Option<u64>>,
    changed: Notify,
}

impl<S: HistoryFold> HistoryView<S> {
    /// A view starting from `state` (usually empty), not caught up.
    pub fn new(state: S) -> Arc<Self> {
        Arc::new(HistoryView {
            state: Mutex::new(state),
            caught_up: watch::Sender::new(false),
            folded: watch::Sender::new(None),
            changed: Notify::new(),
        })
    }

    /// Run `read` on the current state.
    pub fn read<R>(&self, read: impl FnOnce(&S) -> R) -> R {
        let state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        read(&state)
    }

    /// Change the state outside the history's events (pruning what has aged out, by a rule
    /// every instance applies alike), and wake the waiters.
    pub fn update<R>(&self, change: impl FnOnce(&mut S) -> R) -> R {
        let result = change(
            &mut self
                .state
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        self.changed.notify_one();
        result
    }

    /// Fold `event` (what the follower does with each event; tests may call it directly).
    pub fn apply(&self, event: &Envelope) {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .apply(event);
        self.changed.notify_one();
    }

    /// Whether the view has read the whole history, and follows it.
    pub fn is_caught_up(&self) -> bool {
        *self.caught_up.borrow()
    }

    /// Returns once the view has read the whole history (at once when it has).
    pub async fn wait_caught_up(&self) {
        let mut caught_up = self.caught_up.subscribe();
        let _ = caught_up.wait_for(|caught_up| *caught_up).await;
    }

    /// Returns at the next change: an event folded, or the view caught up. One waiter is woken
    /// per change (the leader loop); a change while nobody waits wakes the next waiter at once.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Fold the history into this view from its first event, following it, until `shutdown`.
    /// `observe` is called after each entry with the state as it is then.
    pub async fn follow(
        self: Arc<Self>,
        settings: BrokerSettings,
        connection_name: String,
        shutdown: CancellationToken,
        observe: impl Fn(&S, Folded) + Send + Sync,
    ) {
        let stream = history_stream_name(&settings.namespace);
        let component = Component::register("history");
        let mut from = ReadFrom::First;
        let mut pause = Duration::from_millis(100);
        loop {
            let connection = match BrokerConnection::connect_with_retry(
                &settings,
                &connection_name,
                &shutdown,
                &component,
            )
            .await
            {
                Ok(Some(connection)) => connection,
                Ok(None) => return,
                Err(error) => {
                    tracing::error!(%error, "the history follower cannot connect");
                    return;
                }
            };
            let declared = async {
                let channel = connection.channel().await?;
                Topology::pipeline(&settings).declare(&channel).await
            }
            .await;
            if let Err(error) = declared {
                tracing::warn!(%error, "cannot declare the topology; retrying");
            } else {
                let options = ReadOptions {
                    from,
                    follow: true,
                    deadline: None,
                    prefetch: FOLLOW_PREFETCH,
                    ..ReadOptions::default()
                };
                let reader = HistoryReader::new(&connection, &stream);
                match reader.open(HistoryQuery::all(), &options).await {
                    Ok(mut events) => {
                        loop {
                            let step = tokio::select! {
                                () = shutdown.cancelled() => None,
                                step = events.next() => step,
                            };
                            match step {
                                Some(Ok(HistoryStep::Event(event))) => {
                                    self.apply(&event.envelope);
                                    self.read(|state| observe(state, Folded::Event));
                                    self.folded.send_replace(Some(event.offset));
                                    from = ReadFrom::Offset(event.offset + 1);
                                    pause = Duration::from_millis(100);
                                }
                                Some(Ok(HistoryStep::Undecodable {
                                    offset,
                                    routing_key,
                                    error,
                                })) => {
                                    tracing::warn!(offset, routing_key, %error, "skipping an undecodable history event");
                                    self.read(|state| observe(state, Folded::Undecodable));
                                    self.folded.send_replace(Some(offset));
                                    from = ReadFrom::Offset(offset + 1);
                                }
                                Some(Ok(HistoryStep::CaughtUp)) => {
                                    component.up(format!("following {stream}"));
                                    self.read(|state| observe(state, Folded::CaughtUp));
                                    self.caught_up.send_replace(true);
                                    self.changed.notify_one();
                                }
                                Some(Err(error)) => {
                                    tracing::warn!(%error, "the history read stopped; reconnecting");
                                    break;
                                }
                                None => break,
                            }
                        }
                        events.close().await;
                    }
                    Err(error) => tracing::warn!(%error, "cannot read the history; retrying"),
                }
            }
            self.caught_up.send_replace(false);
            component.down(format!("reconnecting to {stream}"));
            connection.close().await;
            if shutdown.is_cancelled() {
                return;
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(Duration::from_millis(
                settings.max_reconnect_delay_ms.max(100),
            ));
        }
    }

    /// Returns once the view has caught up and folded the history up to its tail as it is now
    /// (asked with a connection named `connection_name`, retried until the broker answers).
    pub async fn fence(&self, settings: &BrokerSettings, connection_name: &str) {
        let mut caught_up = self.caught_up.subscribe();
        let _ = caught_up.wait_for(|caught_up| *caught_up).await;
        let stream = history_stream_name(&settings.namespace);
        let mut pause = Duration::from_millis(100);
        let tail = loop {
            let tail = match BrokerConnection::connect(settings, connection_name).await {
                Ok(connection) => {
                    let tail = HistoryReader::new(&connection, &stream).tail().await;
                    connection.close().await;
                    tail.map_err(|e| e.to_string())
                }
                Err(error) => Err(error.to_string()),
            };
            match tail {
                Ok(tail) => break tail,
                Err(error) => {
                    tracing::warn!(%error, "cannot find the history's tail; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        };
        let Some(tail) = tail else { return };
        let mut folded = self.folded.subscribe();
        let _ = folded
            .wait_for(|folded| folded.is_some_and(|at| at >= tail))
            .await;
        tracing::info!(
            offset = tail,
            "the view has folded the history up to its tail"
        );
    }
}

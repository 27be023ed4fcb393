//! The consumer runner: takes deliveries from a worker's queue, hands each to the worker's
//! [`Handler`], and settles it from the [`Outcome`].
//!
//! Architecture invariant — *ack last*: a delivery is acked only after everything its outcome
//! sends (events, a retry copy, a dead letter) has been confirmed by the broker. Any crash before
//! that leaves the delivery unacked, so the broker redelivers it: at-least-once delivery, and
//! handlers make the effect idempotent.
//!
//! - `Ack(events)`: publish the events (confirmed, mandatory), then ack.
//! - `Retry(reason)`: publish a copy to the delay queue for the next retry (delays from
//!   `retry_delays_ms`, attempt count in `x-slipway-attempt`), then ack; past `max_retries`, dead-letter.
//! - `Reject(reason)`, undecodable messages: publish to `N.dlx` with `x-slipway-reason`, then ack.
//! - A handler panic counts as `Retry`. A failure to settle nacks with requeue, so the queue's
//!   `x-delivery-limit` still stops a message that can never be settled.
//!
//! Every handler call runs inside a `job` span with the job's `job_id`, `kind`, `attempt` and the
//! worker's name, so every line the handler logs (and every task it spawns with the span, see
//! `slipway_common::telemetry::spawn_blocking_in_span`) carries the job id.
//!
//! Concurrency is the prefetch: at most `prefetch` deliveries are unacked, each handled in its own
//! task. On shutdown the runner cancels its consumer, lets in-flight jobs finish for at most
//! `drain_timeout_ms`, abandons the rest (the broker redelivers them) and closes the connection.
//! When the connection is lost, in-flight jobs are abandoned the same way and the runner reconnects,
//! re-declares the topology and consumes again.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use slipway_common::Envelope;
use slipway_common::envelope::Timestamp;
use slipway_common::errors::Chain;
use slipway_common::service::{self, Component};
use slipway_common::telemetry::WorkerLabel;
use slipway_common::telemetry::events::{self, JobFinished, JobOutcome};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::connection::{self, BrokerConnection};
use crate::headers;
use crate::publisher::{Outgoing, PublishError, Publisher};
use crate::streams::{StreamAppend, append_entry};
use crate::topology::Topology;
use crate::{BrokerError, BrokerSettings};

/// One delivery, decoded, as a handler sees it.
#[derive(Clone, Debug)]
pub struct Job {
    /// The message.
    pub envelope: Envelope,
    /// Retries this message went through before this delivery (0 the first time).
    pub attempt: u32,
    /// The broker delivered it before (to a consumer that crashed or lost its connection).
    pub redelivered: bool,
    /// When it was last sent to a delay queue (`x-slipway-retried-at-ms`), if ever.
    pub retried_at: Option<Timestamp>,
}

/// What a handler decided about a job.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Done: publish these events (confirmed) and ack the job.
    Ack(Vec<Envelope>),
    /// Done, with stream entries the events stand on (a scan report before its
    /// `scan.completed`): the runner appends every entry (confirmed), then publishes the events
    /// (confirmed), then acks — so no event announces an entry that is not stored, and no job is
    /// acked before both are. An entry or event the broker refuses retries the job.
    AppendThenAck {
        /// Appended first, in order.
        appends: Vec<StreamAppend>,
        /// Published once every entry is stored.
        events: Vec<Envelope>,
    },
    /// A transient failure: try again after the next delay.
    Retry(String),
    /// A permanent failure: dead-letter the job with this reason.
    Reject(String),
}

/// A worker's logic: one job in, one outcome out. Must be idempotent, since a job can be
/// delivered more than once.
pub trait Handler: Send + Sync + 'static {
    /// Handle one job.
    fn handle(&self, job: Job) -> impl Future<Output = Outcome> + Send;
}

impl<F, Fut> Handler for F
where
    F: Fn(Job) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    fn handle(&self, job: Job) -> impl Future<Output = Outcome> + Send {
        self(job)
    }
}

/// Runs one worker's consumption loop against the broker.
#[derive(Debug)]
pub struct Consumer<H> {
    worker: WorkerLabel,
    settings: BrokerSettings,
    topology: Topology,
    handler: Arc<H>,
    connection_name: String,
}

impl<H: Handler> Consumer<H> {
    /// A consumer of `worker`'s queue in `topology`.
    pub fn new(
        worker: WorkerLabel,
        settings: BrokerSettings,
        topology: Topology,
        handler: H,
    ) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "unknown-host".to_owned());
        Self {
            worker,
            settings,
            topology,
            handler: Arc::new(handler),
            connection_name: format!("slipway-{}@{host}:{}", worker.as_str(), std::process::id()),
        }
    }

    /// Name the connection (the `connection_name` client property in `rabbitmqctl list_connections client_properties`).
    pub fn with_connection_name(mut self, name: impl Into<String>) -> Self {
        self.connection_name = name.into();
        self
    }

    /// Consume until `shutdown` is cancelled, reconnecting whenever the connection is lost.
    /// Returns once in-flight jobs are drained (bounded by `drain_timeout_ms`).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), BrokerError> {
        self.settings.validate()?;
        if !self.topology.has_worker(self.worker.as_str()) {
            return Err(BrokerError::Settings(format!(
                "worker {:?} has no queue in the topology",
                self.worker.as_str()
            )));
        }
        events::worker_started(self.worker);
        let component = Component::register("consumer");
        let mut lost_because: Option<String> = None;
        let mut quick_failures = 0u32;
        loop {
            let Some(connection) = BrokerConnection::connect_with_retry(
                &self.settings,
                &self.connection_name,
                &shutdown,
                &component,
            )
            .await?
            else {
                return Ok(());
            };
            let end = self
                .session(&connection, &shutdown, &mut lost_because, &component)
                .await;
            connection.close().await;
            match end {
                SessionEnd::Shutdown => return Ok(()),
                SessionEnd::Lost(reason) => {
                    tracing::warn!(worker = self.worker.as_str(), %reason, "broker session lost; reconnecting");
                    component.down(format!("reconnecting: {reason}"));
                    quick_failures = 0;
                    lost_because = Some(reason);
                }
                SessionEnd::SetupFailed(error) => {
                    // A session that cannot even start (e.g. a 406 on declaration) is retried
                    // with growing pauses, not in a hot loop.
                    quick_failures += 1;
                    let pause = Duration::from_millis(
                        (100u64 << quick_failures.min(10))
                            .min(self.settings.max_reconnect_delay_ms),
                    );
                    let error = Chain(&error).to_string();
                    let retry_in_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX);
                    tracing::error!(worker = self.worker.as_str(), %error, retry_in_ms, "cannot start consuming");
                    component.down(format!("cannot start consuming: {error}"));
                    lost_because = Some(error);
                    if !connection::pause(pause, &shutdown).await {
                        return Ok(());
                    }
                }
            }
        }
    }

    async fn session(
        &self,
        connection: &BrokerConnection,
        shutdown: &CancellationToken,
        lost_because: &mut Option<String>,
        component: &Component,
    ) -> SessionEnd {
        let queue = self.topology.worker_queue(self.worker.as_str());
        let started = async {
            let channel = connection.channel().await?;
            self.topology.declare(&channel).await?;
            channel
                .basic_qos(self.settings.prefetch, BasicQosOptions::default())
                .await
                .map_err(BrokerError::Channel)?;
            let publisher = Publisher::open(connection, &self.topology).await?;
            let consumer = channel
                .basic_consume(
                    queue.as_str().into(),
                    self.connection_name.as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(BrokerError::Channel)?;
            Ok::<_, BrokerError>((channel, publisher, consumer))
        };
        let (channel, publisher, mut consumer) =
            match tokio::time::timeout(SETUP_TIMEOUT, started).await {
                Ok(Ok(started)) => started,
                Ok(Err(error)) => return SessionEnd::SetupFailed(error),
                Err(_) => {
                    return SessionEnd::SetupFailed(BrokerError::SetupTimeout {
                        queue: queue.to_string(),
                        after: SETUP_TIMEOUT,
                    });
                }
            };
        if let Some(reason) = lost_because.take() {
            events::broker_reconnected(self.worker, &reason);
        }
        tracing::info!(worker = self.worker.as_str(), %queue, prefetch = self.settings.prefetch, "consuming");
        component.up(format!("consuming {queue}"));
        service::watchdog_beat();

        let settler = Arc::new(Settler {
            worker: self.worker,
            settings: self.settings.clone(),
            topology: self.topology.clone(),
            publisher,
        });
        let mut jobs: JoinSet<Result<(), String>> = JoinSet::new();
        let mut liveness = tokio::time::interval(LIVENESS_CHECK);
        let end = loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break SessionEnd::Shutdown,
                // Belt and braces: should lapin ever miss waking the consumer stream when the
                // connection or channel dies, the session still ends and reconnects.
                _ = liveness.tick() => {
                    if !connection.is_connected() || !channel.status().connected() {
                        break SessionEnd::Lost("the connection or channel closed".to_owned());
                    }
                    // systemd's watchdog hears from this loop only: a runner stuck in one of
                    // its arms stops the beats and is restarted.
                    service::watchdog_beat();
                }
                Some(joined) = jobs.join_next(), if !jobs.is_empty() => {
                    if let Ok(Err(reason)) = joined {
                        break SessionEnd::Lost(reason);
                    }
                }
                delivery = consumer.next() => match delivery {
                    Some(Ok(delivery)) => {
                        let settler = Arc::clone(&settler);
                        let handler = Arc::clone(&self.handler);
                        jobs.spawn(async move { settler.process(handler.as_ref(), delivery).await });
                    }
                    Some(Err(error)) => break SessionEnd::Lost(Chain(&error).to_string()),
                    None => break SessionEnd::Lost("the broker cancelled the consumer".to_owned()),
                },
            }
        };
        if matches!(end, SessionEnd::Shutdown) {
            let _ = channel
                .basic_cancel(
                    self.connection_name.as_str().into(),
                    BasicCancelOptions::default(),
                )
                .await;
            let drain = Duration::from_millis(self.settings.drain_timeout_ms);
            let in_flight = jobs.len();
            component.down(format!("stopping: draining {in_flight} in-flight jobs"));
            let drained = tokio::time::timeout(drain, async {
                while jobs.join_next().await.is_some() {
                    service::watchdog_beat();
                }
            })
            .await;
            match drained {
                Ok(()) => tracing::info!(
                    worker = self.worker.as_str(),
                    in_flight,
                    "drained in-flight jobs"
                ),
                Err(_) => tracing::warn!(
                    worker = self.worker.as_str(),
                    abandoned = jobs.len(),
                    drain_ms = u64::try_from(drain.as_millis()).unwrap_or(u64::MAX),
                    "in-flight jobs did not finish in time; the broker will redeliver them"
                ),
            }
        }
        // Dropping the set aborts what is left; their deliveries are requeued by the broker.
        jobs.abort_all();
        if matches!(end, SessionEnd::Shutdown) {
            // Closed here, in order, not by their `Drop`s racing the connection's close (which
            // logged "invalid channel state: Closing" as an ERROR at every clean stop).
            let _ = channel.close(200, "shutdown".into()).await;
            settler.publisher.close().await;
        }
        end
    }
}

/// Longest wait for a session to start (channel, topology, qos, publisher, consume) before the
/// attempt counts as failed and is retried on a new connection.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How often a session checks that its connection and channel are still open.
const LIVENESS_CHECK: Duration = Duration::from_secs(1);

enum SessionEnd {
    Shutdown,
    Lost(String),
    SetupFailed(BrokerError),
}

/// How a delivery is to be settled.
enum Settlement {
    Publish {
        appends: Vec<StreamAppend>,
        events: Vec<Envelope>,
    },
    Retry {
        reason: String,
    },
    DeadLetter {
        reason: String,
        outcome: JobOutcome,
    },
}

/// Why a settlement could not be carried out.
enum SettleError {
    /// Carry out this settlement instead (events could not be published: retry the job).
    Instead(Settlement),
    /// The channel or connection failed.
    Broken(String),
}

/// Everything a job task needs to settle its delivery.
struct Settler {
    worker: WorkerLabel,
    settings: BrokerSettings,
    topology: Topology,
    publisher: Publisher,
}

impl Settler {
    /// Handle and settle one delivery. `Err` means the session is broken.
    async fn process<H: Handler>(&self, handler: &H, delivery: Delivery) -> Result<(), String> {
        let started = Instant::now();
        let _in_flight = events::job_started(self.worker);
        let incoming_headers = delivery.properties.headers().as_ref();
        let attempt = headers::attempt(incoming_headers);
        // A routing key is a short string (at most 255 bytes): a longer header is not one.
        let routing_key = headers::text(incoming_headers, headers::ROUTING_KEY)
            .filter(|key| key.len() <= MAX_ROUTING_KEY_BYTES)
            .unwrap_or_else(|| delivery.routing_key.to_string());

        let (job_id, mut settlement) = match Envelope::decode(&delivery.data) {
            Err(error) => (
                None,
                Settlement::DeadLetter {
                    // The error may quote the message (a 1 MiB `kind`): bounded for the header
                    // and the log line alike.
                    reason: bounded_reason(format!("undecodable: {error}")),
                    outcome: JobOutcome::Undecodable,
                },
            ),
            Ok(envelope) => {
                let job_id = envelope.job_id;
                let span = tracing::info_span!(
                    "job",
                    %job_id,
                    kind = envelope.kind().as_str(),
                    worker = self.worker.as_str(),
                    attempt,
                );
                let job = Job {
                    envelope,
                    attempt,
                    redelivered: delivery.redelivered,
                    retried_at: headers::integer(incoming_headers, headers::RETRIED_AT_MS)
                        .and_then(|ms| u64::try_from(ms).ok())
                        .map(Timestamp::from_unix_millis),
                };
                // The call itself is inside the async block so that a handler that panics before
                // returning its future is caught too.
                let outcome = AssertUnwindSafe(async { handler.handle(job).await })
                    .catch_unwind()
                    .instrument(span)
                    .await
                    .unwrap_or_else(|panic| {
                        Outcome::Retry(format!(
                            "handler panicked: {}",
                            panic_message(panic.as_ref())
                        ))
                    });
                (Some(job_id), self.settlement_for(outcome, attempt))
            }
        };

        let (outcome, reason, broken) = loop {
            let reason = settlement.reason();
            let outcome = settlement.outcome();
            match self
                .settle(&delivery, &routing_key, attempt, settlement)
                .await
            {
                Ok(()) => break (outcome, reason, None),
                Err(SettleError::Instead(next)) => settlement = next,
                Err(SettleError::Broken(why)) => {
                    // Give the delivery back; if the channel is gone the broker requeues it anyway.
                    let _ = delivery
                        .acker
                        .nack(BasicNackOptions {
                            requeue: true,
                            ..BasicNackOptions::default()
                        })
                        .await;
                    break (JobOutcome::Abandoned, Some(why.clone()), Some(why));
                }
            }
        };
        JobFinished {
            worker: self.worker,
            job_id,
            routing_key: &routing_key,
            outcome,
            attempt,
            duration: started.elapsed(),
            reason: reason.as_deref(),
        }
        .emit();
        broken.map_or(Ok(()), Err)
    }

    fn settlement_for(&self, outcome: Outcome, attempt: u32) -> Settlement {
        let outcome = match outcome {
            Outcome::Retry(reason) => Outcome::Retry(bounded_reason(reason)),
            Outcome::Reject(reason) => Outcome::Reject(bounded_reason(reason)),
            other => other,
        };
        match outcome {
            Outcome::Ack(events) => Settlement::Publish {
                appends: Vec::new(),
                events,
            },
            Outcome::AppendThenAck { appends, events } => Settlement::Publish { appends, events },
            Outcome::Retry(reason) if attempt >= self.settings.max_retries => {
                Settlement::DeadLetter {
                    reason: format!("gave up after {attempt} retries: {reason}"),
                    outcome: JobOutcome::DeadLettered,
                }
            }
            Outcome::Retry(reason) => Settlement::Retry { reason },
            Outcome::Reject(reason) => Settlement::DeadLetter {
                reason,
                outcome: JobOutcome::DeadLettered,
            },
        }
    }

    async fn settle(
        &self,
        delivery: &Delivery,
        routing_key: &str,
        attempt: u32,
        settlement: Settlement,
    ) -> Result<(), SettleError> {
        let sent = match settlement {
            Settlement::Publish { appends, events } => {
                let retry_because = |what: String, error: PublishError| {
                    SettleError::Instead(self.settlement_for(
                        Outcome::Retry(format!("{what}: {}", Chain(&error))),
                        attempt,
                    ))
                };
                let mut sent = Ok(());
                for entry in &appends {
                    sent = append_entry(&self.publisher, entry).await;
                    match sent {
                        Err(error) if error.is_refusal() => {
                            let what =
                                format!("its entry of {} could not be appended", entry.stream);
                            return Err(retry_because(what, error));
                        }
                        Err(_) => break,
                        Ok(()) => {}
                    }
                }
                if sent.is_ok() {
                    sent = self.publisher.publish_all(&events).await;
                }
                match sent {
                    Err(error) if error.is_refusal() => {
                        return Err(retry_because(
                            "its events could not be published".to_owned(),
                            error,
                        ));
                    }
                    other => other,
                }
            }
            Settlement::Retry { reason } => {
                let retry = attempt + 1;
                let delay = self.settings.retry_delay(retry);
                let queue = self.topology.retry_queue(
                    self.worker.as_str(),
                    u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                );
                let mut headers = copied_headers(delivery);
                headers::set_integer(&mut headers, headers::ATTEMPT, retry.into());
                headers::set_integer(
                    &mut headers,
                    headers::RETRIED_AT_MS,
                    i64::try_from(Timestamp::now().unix_millis()).unwrap_or(i64::MAX),
                );
                self.mark(&mut headers, routing_key, &reason);
                self.publisher
                    .send_to_queue(
                        &queue,
                        &delivery.data,
                        delivery.properties.clone().with_headers(headers),
                    )
                    .await
            }
            Settlement::DeadLetter { reason, .. } => {
                let mut headers = copied_headers(delivery);
                headers::set_integer(&mut headers, headers::ATTEMPT, attempt.into());
                self.mark(&mut headers, routing_key, &reason);
                self.publisher
                    .send_confirmed(&Outgoing {
                        exchange: &self.topology.dead_letter_exchange(),
                        routing_key,
                        body: &delivery.data,
                        properties: delivery.properties.clone().with_headers(headers),
                    })
                    .await
            }
        };
        sent.map_err(|error| SettleError::Broken(Chain(&error).to_string()))?;
        delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .map(drop)
            .map_err(|error| SettleError::Broken(format!("ack failed: {}", Chain(&error))))
    }

    fn mark(&self, headers: &mut FieldTable, routing_key: &str, reason: &str) {
        headers::set_text(headers, headers::REASON, reason);
        headers::set_text(headers, headers::WORKER, self.worker.as_str());
        headers::set_text(headers, headers::ROUTING_KEY, routing_key);
    }
}

impl Settlement {
    fn outcome(&self) -> JobOutcome {
        match self {
            Settlement::Publish { .. } => JobOutcome::Acked,
            Settlement::Retry { .. } => JobOutcome::Retried,
            Settlement::DeadLetter { outcome, .. } => *outcome,
        }
    }

    fn reason(&self) -> Option<String> {
        match self {
            Settlement::Publish { .. } => None,
            Settlement::Retry { reason } | Settlement::DeadLetter { reason, .. } => {
                Some(reason.clone())
            }
        }
    }
}

/// Longest AMQP routing key (a short string).
const MAX_ROUTING_KEY_BYTES: usize = 255;

/// `reason` cut to what a header holds ([`headers::MAX_TEXT_BYTES`]).
fn bounded_reason(reason: String) -> String {
    match headers::truncate(&reason, headers::MAX_TEXT_BYTES) {
        std::borrow::Cow::Borrowed(_) => reason,
        std::borrow::Cow::Owned(cut) => cut,
    }
}

/// The delivery's headers, bounded ([`headers::bounded`]) so that its retry or dead letter fits
/// in a frame whatever it carried.
fn copied_headers(delivery: &Delivery) -> FieldTable {
    delivery
        .properties
        .headers()
        .as_ref()
        .map(headers::bounded)
        .unwrap_or_default()
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

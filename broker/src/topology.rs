//! The broker topology: which exchanges and queues exist, how they are bound, and their declaration.
//!
//! For a namespace `N` (`slipway` in production):
//! - `N`: durable topic exchange every event is published to, with its kind as routing key;
//! - `N.<worker>`: one durable quorum queue per worker type, bound to the kinds it consumes, with
//!   `x-delivery-limit` and at-least-once dead-lettering to `N.dlx`;
//! - `N.<worker>.retry.<ms>ms`: one delay queue per retry delay (per-message TTL only expires at the
//!   head of a queue, so each delay needs its own queue); on expiry a message goes back to
//!   `N.<worker>` through the default exchange;
//! - `N.dlx` (fanout) and `N.dead`: where poison ends, with headers saying why;
//! - `N.history` (pipeline topologies, [`Topology::with_history`]): a stream bound to `N` with
//!   `#`, so every event published to `N` is recorded (see [`crate::history`]). A few kinds are
//!   *records* ([`Topology::with_records`]): the history alone takes them, on purpose (the
//!   repo-tracker's `git.changed`, `index.applied` and `packages.updated`, which it reads back
//!   from the history).
//!
//! The whole pipeline's queues are declared by every process, so an event is never unroutable just
//! because its consumer has not started yet: it waits in its queue. Declaration is idempotent.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};
use slipway_common::Kind;

use crate::history::{HistoryStreamSettings, history_stream_name};
use crate::reports::{ReportStreamSettings, report_stream_name};
use crate::streams::declare_stream_on;
use crate::{BrokerError, BrokerSettings};

/// One worker type's queue and the kinds routed to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerQueue {
    /// The worker type, e.g. `lint`; the queue is `<namespace>.<worker>`.
    pub worker: &'static str,
    /// Kinds this worker consumes.
    pub consumes: Vec<Kind>,
}

/// All the queues of a deployment, under one namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    namespace: String,
    workers: Vec<WorkerQueue>,
    retry_delays_ms: Vec<u64>,
    delivery_limit: u32,
    /// The history stream's retention, when the topology records events.
    history: Option<HistoryStreamSettings>,
    /// The report stream's retention, when this process appends reports.
    reports: Option<ReportStreamSettings>,
    /// Kinds only the history stream takes, on purpose.
    records: Vec<Kind>,
}

impl Topology {
    /// The production pipeline (GUIDE §2): every kind is consumed by at least one worker or is a
    /// record the history alone keeps, and every event is recorded in the history stream
    /// (`broker.history` retention). The repo-tracker has no queue: it follows the history.
    pub fn pipeline(settings: &BrokerSettings) -> Self {
        use Kind::*;
        Self::new(settings)
            .with_history(&settings.history)
            .with_worker("lint", [BuildRequested])
            .with_worker("build", [LintPassed, ImageRetired])
            .with_worker("scan", [BuildSucceeded, ScanRequested])
            .with_worker(
                "notify",
                [
                    LintFailed,
                    BuildSucceeded,
                    BuildFailed,
                    ScanCompleted,
                    ScanFailed,
                    IndexRejected,
                    ImageRetired,
                    BuildSkipped,
                    ImageRemoved,
                    SummaryReady,
                ],
            )
            .with_records([GitChanged, IndexApplied, PackagesUpdated, MailSent])
    }

    /// An empty topology (exchange, dead letters, no history) in the settings' namespace.
    pub fn new(settings: &BrokerSettings) -> Self {
        Self {
            namespace: settings.namespace.clone(),
            workers: Vec::new(),
            retry_delays_ms: dedup(&settings.retry_delays_ms),
            delivery_limit: settings.delivery_limit,
            history: None,
            reports: None,
            records: Vec::new(),
        }
    }

    /// Record every event published to the exchange in the history stream, kept as `retention`
    /// says.
    pub fn with_history(mut self, retention: &HistoryStreamSettings) -> Self {
        self.history = Some(retention.clone());
        self
    }

    /// Declare the report stream (`N.reports`, kept as `retention`) with the rest, so a worker
    /// whose outcomes append reports finds it after every (re)connection.
    pub fn with_reports(mut self, retention: &ReportStreamSettings) -> Self {
        self.reports = Some(retention.clone());
        self
    }

    /// The report stream, when the topology declares it ([`Topology::with_reports`]).
    pub fn report_stream(&self) -> Option<String> {
        self.reports
            .as_ref()
            .map(|_| report_stream_name(&self.namespace))
    }

    /// The history stream, when the topology records events.
    pub fn history_stream(&self) -> Option<String> {
        self.history
            .as_ref()
            .map(|_| history_stream_name(&self.namespace))
    }

    /// Kinds the history stream alone takes, on purpose: publishing them is not refused for want
    /// of a worker queue (only when the topology records events at all).
    pub fn with_records(mut self, kinds: impl IntoIterator<Item = Kind>) -> Self {
        self.records.extend(kinds);
        self
    }

    /// Whether an event published with `routing_key` reaches somewhere it is meant to: a worker
    /// queue, or the history stream for a record kind.
    pub fn takes(&self, routing_key: &str) -> bool {
        self.routes_to_a_worker(routing_key)
            || (self.history.is_some()
                && self.records.iter().any(|kind| kind.as_str() == routing_key))
    }

    /// Whether some worker queue of this topology is bound to `routing_key`.
    pub fn routes_to_a_worker(&self, routing_key: &str) -> bool {
        self.workers.iter().any(|worker| {
            worker
                .consumes
                .iter()
                .any(|kind| kind.as_str() == routing_key)
        })
    }

    /// Add a worker queue bound to `consumes`.
    pub fn with_worker(
        mut self,
        worker: &'static str,
        consumes: impl IntoIterator<Item = Kind>,
    ) -> Self {
        self.workers.push(WorkerQueue {
            worker,
            consumes: consumes.into_iter().collect(),
        });
        self
    }

    /// The worker queues.
    pub fn workers(&self) -> &[WorkerQueue] {
        &self.workers
    }

    /// Whether `worker` has a queue here.
    pub fn has_worker(&self, worker: &str) -> bool {
        self.workers.iter().any(|w| w.worker == worker)
    }

    /// The topic exchange events are published to.
    pub fn exchange(&self) -> &str {
        &self.namespace
    }

    /// The fanout exchange dead letters are published to.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.namespace)
    }

    /// The queue where dead letters wait for a human.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead", self.namespace)
    }

    /// The queue of `worker`.
    pub fn worker_queue(&self, worker: &str) -> String {
        format!("{}.{worker}", self.namespace)
    }

    /// The delay queue of `worker` for a delay of `delay_ms`.
    pub fn retry_queue(&self, worker: &str, delay_ms: u64) -> String {
        format!("{}.{worker}.retry.{delay_ms}ms", self.namespace)
    }

    /// Every queue name, for teardown and status listings.
    pub fn all_queues(&self) -> Vec<String> {
        let mut queues = vec![self.dead_letter_queue()];
        for worker in &self.workers {
            queues.push(self.worker_queue(worker.worker));
            for &delay in &self.retry_delays_ms {
                queues.push(self.retry_queue(worker.worker, delay));
            }
        }
        queues
    }

    /// Declare everything. Safe to run any number of times, from any number of processes, as
    /// long as they agree on the arguments (a disagreement is a 406 naming the argument).
    pub async fn declare(&self, channel: &Channel) -> Result<(), BrokerError> {
        let durable_exchange = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        let durable_queue = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        let failed = |what: String| move |source| BrokerError::Topology { what, source };

        channel
            .exchange_declare(
                self.exchange().into(),
                ExchangeKind::Topic,
                durable_exchange,
                FieldTable::default(),
            )
            .await
            .map_err(failed(format!("exchange {}", self.exchange())))?;
        if let Some(retention) = &self.history {
            self.declare_history(channel, retention).await?;
        }
        if let Some(retention) = &self.reports {
            let stream = report_stream_name(&self.namespace);
            declare_stream_on(channel, &stream, retention.retention(), "report stream").await?;
        }
        let dlx = self.dead_letter_exchange();
        channel
            .exchange_declare(
                dlx.as_str().into(),
                ExchangeKind::Fanout,
                durable_exchange,
                FieldTable::default(),
            )
            .await
            .map_err(failed(format!("exchange {dlx}")))?;
        let dead = self.dead_letter_queue();
        channel
            .queue_declare(
                dead.as_str().into(),
                durable_queue,
                quorum_arguments().into(),
            )
            .await
            .map_err(failed(format!("queue {dead}")))?;
        channel
            .queue_bind(
                dead.as_str().into(),
                dlx.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(failed(format!("binding {dead} to {dlx}")))?;

        for worker in &self.workers {
            let queue = self.worker_queue(worker.worker);
            let mut arguments = quorum_arguments();
            arguments.push((
                "x-delivery-limit",
                AMQPValue::LongLongInt(self.delivery_limit.into()),
            ));
            arguments.extend(dead_letter_to(&dlx, None));
            channel
                .queue_declare(queue.as_str().into(), durable_queue, arguments.into())
                .await
                .map_err(failed(format!("queue {queue}")))?;
            for kind in &worker.consumes {
                channel
                    .queue_bind(
                        queue.as_str().into(),
                        self.exchange().into(),
                        kind.as_str().into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(failed(format!("binding {queue} to {kind}")))?;
            }
            for &delay in &self.retry_delays_ms {
                let retry = self.retry_queue(worker.worker, delay);
                let mut arguments = quorum_arguments();
                arguments.push((
                    "x-message-ttl",
                    AMQPValue::LongLongInt(i64::try_from(delay).unwrap_or(i64::MAX)),
                ));
                // Back to the worker's own queue through the default exchange.
                arguments.extend(dead_letter_to("", Some(&queue)));
                channel
                    .queue_declare(retry.as_str().into(), durable_queue, arguments.into())
                    .await
                    .map_err(failed(format!("queue {retry}")))?;
            }
        }
        Ok(())
    }

    /// Declare the history stream and bind it to the exchange with `#`: every routing key.
    async fn declare_history(
        &self,
        channel: &Channel,
        retention: &HistoryStreamSettings,
    ) -> Result<(), BrokerError> {
        let stream = history_stream_name(&self.namespace);
        declare_stream_on(channel, &stream, retention.retention(), "history stream").await?;
        let failed = |what: String| move |source| BrokerError::Topology { what, source };
        channel
            .queue_bind(
                stream.as_str().into(),
                self.exchange().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(failed(format!(
                "binding {stream} to {} with #",
                self.exchange()
            )))?;
        Ok(())
    }
}

/// Arguments as an ordered list; converted to a `FieldTable` at declaration.
struct Arguments(Vec<(&'static str, AMQPValue)>);

impl Arguments {
    fn push(&mut self, argument: (&'static str, AMQPValue)) {
        self.0.push(argument);
    }
}

impl Extend<(&'static str, AMQPValue)> for Arguments {
    fn extend<I: IntoIterator<Item = (&'static str, AMQPValue)>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

impl From<Arguments> for FieldTable {
    fn from(arguments: Arguments) -> Self {
        let mut table = FieldTable::default();
        for (key, value) in arguments.0 {
            table.insert(ShortString::from(key), value);
        }
        table
    }
}

fn long_string(text: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(text))
}

fn quorum_arguments() -> Arguments {
    Arguments(vec![("x-queue-type", long_string("quorum"))])
}

/// At-least-once dead-lettering (quorum queues): the message leaves the queue only once the
/// target has confirmed it. Requires `x-overflow = reject-publish`.
fn dead_letter_to(exchange: &str, routing_key: Option<&str>) -> Vec<(&'static str, AMQPValue)> {
    let mut arguments = vec![
        ("x-dead-letter-exchange", long_string(exchange)),
        ("x-dead-letter-strategy", long_string("at-least-once")),
        ("x-overflow", long_string("reject-publish")),
    ];
    if let Some(key) = routing_key {
        arguments.push(("x-dead-letter-routing-key", long_string(key)));
    }
    arguments
}

fn dedup(delays: &[u64]) -> Vec<u64> {
    let mut unique = Vec::with_capacity(delays.len());
    for &delay in delays {
        if !unique.contains(&delay) {
            unique.push(delay);
        }
    }
    unique
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_consumed_by_some_worker_of_the_pipeline_or_is_a_record() {
        let topology = Topology::pipeline(&BrokerSettings::default());
        for kind in Kind::ALL {
            assert!(topology.takes(kind.as_str()), "{kind} would be unroutable");
        }
        assert!(!topology.routes_to_a_worker("git.changed"));
        assert!(topology.takes("git.changed"), "a record");
        let without_history = Topology::new(&BrokerSettings::default())
            .with_records([Kind::GitChanged])
            .with_worker("a", [Kind::BuildRequested]);
        assert!(
            !without_history.takes("git.changed"),
            "a record needs the history to take it"
        );
    }

    #[test]
    fn the_pipeline_records_its_events_and_knows_which_keys_reach_a_worker() {
        let settings = BrokerSettings {
            namespace: "t2".into(),
            ..BrokerSettings::default()
        };
        let pipeline = Topology::pipeline(&settings);
        assert_eq!(pipeline.history_stream().as_deref(), Some("t2.history"));
        assert!(pipeline.routes_to_a_worker("scan.requested"));
        assert!(!pipeline.routes_to_a_worker("no.such.kind"));
        let bare = Topology::new(&settings).with_worker("a", [Kind::BuildRequested]);
        assert_eq!(bare.history_stream(), None);
        assert!(!bare.routes_to_a_worker("scan.requested"));
    }

    #[test]
    fn names_follow_the_namespace() {
        let settings = BrokerSettings {
            namespace: "t1".into(),
            retry_delays_ms: vec![100, 100, 500],
            ..BrokerSettings::default()
        };
        let topology = Topology::new(&settings).with_worker("a", [Kind::BuildRequested]);
        assert_eq!(
            topology.all_queues(),
            ["t1.dead", "t1.a", "t1.a.retry.100ms", "t1.a.retry.500ms"]
        );
        assert_eq!(topology.exchange(), "t1");
        assert_eq!(topology.dead_letter_exchange(), "t1.dlx");
    }
}

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
//! - `N.queues`: a topic exchange where each queue that is published to by name (the retry
//!   queues, the lease queues, the log and report streams) is bound with its own name as routing
//!   key. Slipway never publishes through the default exchange: a user allowed to write there could
//!   put a message in any queue, whereas topic permissions on `N.queues` say exactly which queues a
//!   user may address (`deploy/rabbitmq/definitions.json`).
//!
//! With `broker.topology = "declare"` (the default) the whole pipeline's queues are declared by
//! every process, so an event is never unroutable just because its consumer has not started yet:
//! it waits in its queue. Declaration is idempotent. With `"verify"` an administrator has declared
//! everything (`rabbitmqctl import_definitions`), and each process only checks, with passive
//! declarations that need no permission, that what it uses exists.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};
use slipway_common::Kind;

use crate::history::{HistoryStreamSettings, history_stream_name};
use crate::reports::{ReportStreamSettings, report_stream_name};
use crate::settings::TopologyMode;
use crate::{BrokerError, BrokerSettings};

/// One queue or stream of a topology, as it is declared.
#[derive(Clone, Debug)]
pub struct PlannedQueue {
    /// Its name.
    pub name: String,
    /// What it is, in errors: `queue`, `history stream`, …
    pub what: &'static str,
    /// Its arguments.
    pub arguments: FieldTable,
    /// The exchanges it is bound to, with the binding key.
    pub bindings: Vec<(String, String)>,
}

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
    /// Declare, or only verify.
    mode: TopologyMode,
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
            mode: settings.topology,
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

    /// The topic exchange where every queue published to by name is bound with its own name.
    pub fn queue_exchange(&self) -> String {
        queue_exchange_name(&self.namespace)
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

    /// Declare everything (or, with `broker.topology = "verify"`, check that everything
    /// exists). Safe to run any number of times, from any number of processes, as long as they
    /// agree on the arguments (a disagreement is a 406 naming the argument).
    pub async fn declare(&self, channel: &Channel) -> Result<(), BrokerError> {
        let declarer = Declarer::new(channel, self.mode, &self.namespace);
        declarer
            .exchange(self.exchange(), ExchangeKind::Topic)
            .await?;
        declarer
            .exchange(&self.queue_exchange(), ExchangeKind::Topic)
            .await?;
        declarer
            .exchange(&self.dead_letter_exchange(), ExchangeKind::Fanout)
            .await?;
        for planned in self.planned_queues()? {
            declarer
                .queue(&planned.name, planned.arguments, planned.what)
                .await?;
            for (exchange, key) in &planned.bindings {
                declarer.bind(&planned.name, exchange, key).await?;
            }
        }
        Ok(())
    }

    /// Every queue and stream of this topology with its arguments and bindings, in declaration
    /// order: what [`Topology::declare`] declares and `slipway definitions` writes out.
    pub fn planned_queues(&self) -> Result<Vec<PlannedQueue>, BrokerError> {
        let mut planned = Vec::new();
        let by_name = |name: &str| vec![(self.queue_exchange(), name.to_owned())];
        if let Some(retention) = &self.history {
            retention.retention().validate()?;
            planned.push(PlannedQueue {
                name: history_stream_name(&self.namespace),
                what: "history stream",
                arguments: retention.retention().arguments(),
                // Every routing key: the history records every event.
                bindings: vec![(self.exchange().to_owned(), "#".to_owned())],
            });
        }
        if let Some(retention) = &self.reports {
            retention.retention().validate()?;
            let stream = report_stream_name(&self.namespace);
            planned.push(PlannedQueue {
                bindings: by_name(&stream),
                name: stream,
                what: "report stream",
                arguments: retention.retention().arguments(),
            });
        }
        planned.push(PlannedQueue {
            name: self.dead_letter_queue(),
            what: "queue",
            arguments: quorum_arguments().into(),
            bindings: vec![(self.dead_letter_exchange(), String::new())],
        });
        for worker in &self.workers {
            let queue = self.worker_queue(worker.worker);
            planned.push(PlannedQueue {
                name: queue.clone(),
                what: "queue",
                arguments: self.worker_queue_arguments().into(),
                bindings: worker
                    .consumes
                    .iter()
                    .map(|kind| (self.exchange().to_owned(), kind.as_str().to_owned()))
                    .collect(),
            });
            for &delay in &self.retry_delays_ms {
                let retry = self.retry_queue(worker.worker, delay);
                planned.push(PlannedQueue {
                    bindings: by_name(&retry),
                    name: retry,
                    what: "queue",
                    arguments: retry_queue_arguments(&queue, delay).into(),
                });
            }
        }
        Ok(planned)
    }

    /// The arguments of a worker queue: quorum, the delivery limit, at-least-once dead-lettering
    /// to `N.dlx`.
    fn worker_queue_arguments(&self) -> Arguments {
        let mut arguments = quorum_arguments();
        arguments.push((
            "x-delivery-limit",
            AMQPValue::LongLongInt(self.delivery_limit.into()),
        ));
        arguments.extend(dead_letter_to(&self.dead_letter_exchange(), None));
        arguments
    }
}

/// The topic exchange of `namespace` where each queue published to by name is bound with its own
/// name: `<namespace>.queues` ([`Topology::queue_exchange`]).
pub fn queue_exchange_name(namespace: &str) -> String {
    format!("{namespace}.queues")
}

/// The arguments of the retry queue of `queue` for `delay_ms`: quorum, the delay as TTL, then
/// back to `queue` through the default exchange (the broker dead-letters it; no user publishes
/// there).
fn retry_queue_arguments(queue: &str, delay_ms: u64) -> Arguments {
    let mut arguments = quorum_arguments();
    arguments.push((
        "x-message-ttl",
        AMQPValue::LongLongInt(i64::try_from(delay_ms).unwrap_or(i64::MAX)),
    ));
    arguments.extend(dead_letter_to("", Some(queue)));
    arguments
}

/// Declares exchanges, queues and bindings on one channel, or in [`TopologyMode::Verify`] checks
/// with passive declarations that they exist (bindings cannot be checked that way and are left
/// to the administrator's definitions).
pub(crate) struct Declarer<'a> {
    channel: &'a Channel,
    mode: TopologyMode,
    queue_exchange: String,
}

impl<'a> Declarer<'a> {
    /// A declarer for `namespace` on `channel`.
    pub(crate) fn new(channel: &'a Channel, mode: TopologyMode, namespace: &str) -> Self {
        Self {
            channel,
            mode,
            queue_exchange: queue_exchange_name(namespace),
        }
    }

    fn verifying(&self) -> bool {
        self.mode == TopologyMode::Verify
    }

    /// Declare (or check) the durable exchange `name` of `kind`.
    pub(crate) async fn exchange(&self, name: &str, kind: ExchangeKind) -> Result<(), BrokerError> {
        let options = ExchangeDeclareOptions {
            durable: true,
            passive: self.verifying(),
            ..ExchangeDeclareOptions::default()
        };
        self.channel
            .exchange_declare(name.into(), kind, options, FieldTable::default())
            .await
            .map_err(|source| self.failed(format!("exchange {name}"), source))
    }

    /// Declare (or check) the durable queue `name` with `arguments`; `what` says what it is in
    /// errors (`queue`, `lease queue`, `log stream`).
    pub(crate) async fn queue(
        &self,
        name: &str,
        arguments: FieldTable,
        what: &str,
    ) -> Result<(), BrokerError> {
        let options = QueueDeclareOptions {
            durable: true,
            passive: self.verifying(),
            ..QueueDeclareOptions::default()
        };
        let arguments = if self.verifying() {
            FieldTable::default()
        } else {
            arguments
        };
        self.channel
            .queue_declare(name.into(), options, arguments)
            .await
            .map(drop)
            .map_err(|source| self.failed(format!("{what} {name}"), source))
    }

    /// Bind `queue` to `exchange` with `key` (nothing when verifying).
    pub(crate) async fn bind(
        &self,
        queue: &str,
        exchange: &str,
        key: &str,
    ) -> Result<(), BrokerError> {
        if self.verifying() {
            return Ok(());
        }
        self.channel
            .queue_bind(
                queue.into(),
                exchange.into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|source| BrokerError::Topology {
                what: format!("binding {queue} to {exchange} with {key:?}"),
                source,
            })
    }

    /// Make `queue` reachable by name: bind it to the queue exchange (declared first) with its own
    /// name.
    pub(crate) async fn bind_by_name(&self, queue: &str) -> Result<(), BrokerError> {
        if self.verifying() {
            return Ok(());
        }
        self.exchange(&self.queue_exchange, ExchangeKind::Topic)
            .await?;
        self.bind(queue, &self.queue_exchange, queue).await
    }

    fn failed(&self, what: String, source: lapin::Error) -> BrokerError {
        if self.verifying() && is_not_found(&source) {
            BrokerError::Missing { what }
        } else {
            BrokerError::Topology { what, source }
        }
    }
}

/// Whether the broker answered 404 NOT_FOUND (a passive declaration of something missing).
fn is_not_found(error: &lapin::Error) -> bool {
    matches!(
        error.kind(),
        lapin::ErrorKind::ProtocolError(amqp)
            if matches!(amqp.kind(), lapin::protocol::AMQPErrorKind::Soft(lapin::protocol::AMQPSoftError::NOTFOUND))
    )
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

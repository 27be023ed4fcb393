//! Leader election for a worker that must run in one place at a time (a scheduling loop): GUIDE
//! §2's single-active-consumer on a quorum queue, with a *lease message* as the signal that an
//! instance has become the active consumer.
//!
//! **The queue.** `<namespace>.<name>.leader` is a durable quorum queue declared with
//! `x-single-active-consumer: true` and bound to nothing: leases are published through the default
//! exchange straight to it, so they never reach the `<namespace>` exchange nor the history stream.
//! Every instance consumes it (prefetch 2, manual acks) and, once its consumer is registered,
//! publishes one lease (confirmed). AMQP 0-9-1 has no "you are now active" signal, but the broker
//! delivers a single-active-consumer queue's messages to the active consumer only: a delivery *is*
//! the signal. The first lease an instance receives in a session starts its term
//! ([`LeaderTerm`]); it keeps that delivery unacked, and acks away every further lease it is given.
//!
//! Architecture invariant — *one lease, held by the one leader*. Why it holds:
//! - **There is a lease.** Every instance publishes one when it joins, and counts as joined only
//!   once the broker has confirmed it. A lease leaves the queue only by an ack, and the leader acks
//!   one only while it holds another (a surplus lease) or after a fresher one is confirmed stored
//!   (a renewal). An unacked lease goes back to the queue when its channel or connection closes,
//!   for whatever reason, and the broker then activates the next consumer, which receives it
//!   (marked redelivered) and leads: that is the takeover.
//! - **There is one lease.** Each joining instance adds one, and so does each renewal; the active
//!   consumer takes them (prefetch 2 leaves room for exactly one delivery besides the one it
//!   holds) and acks every one beyond the lease it holds. Only during a renewal are there briefly
//!   two (the fresh one is confirmed before the old one is acked; see `LeaseBook`).
//! - **There is one leader.** Only the active consumer receives deliveries, and the broker keeps
//!   one active consumer per queue. A term ends as soon as the session that started it ends: the
//!   channel or connection fails (lapin reports it, or the 1 s liveness check sees it), the broker
//!   cancels the consumer, the leader code returns on its own (it resigns), or shutdown.
//!
//! **Renewal.** RabbitMQ closes a channel whose delivery stays unacked longer than
//! `consumer_timeout` (30 min by default; checked about once a minute; RabbitMQ 3.10 has no
//! per-queue setting, `x-consumer-timeout` came with 3.12). So every `renew_interval` (60 s by
//! default) the leader publishes a fresh lease, waits for its confirm, and only then acks the one it
//! holds; the fresh one comes back to it, since it is still the active consumer.
//!
//! **Shutdown** cancels the term first, waits for the leader code to return (at most
//! `drain_timeout_ms`; then it is dropped), settles a renewal under way, and closes the channel,
//! which puts the held lease back in the queue for the next instance at once.
//!
//! What this does *not* give: fencing. A leader cut off from the broker keeps its term until it
//! notices (heartbeats, the liveness check), while the broker hands the lease over when *it*
//! notices (its heartbeat timeout, 60 s by default); the two moments differ, so two terms may
//! overlap for up to about a heartbeat timeout, or none may run for a while. What a leader sends
//! must therefore be idempotent (GUIDE invariant 6: one rescan per image per period). Leader code
//! that blocks the runtime thread stalls renewals; it must not hold the thread for longer than
//! `consumer_timeout`. Before upgrading to RabbitMQ 4.0–4.2: those versions give quorum queues a
//! default `delivery-limit` of 20 and count every return, so the lease would be dropped at the
//! twenty-first takeover; the queue then needs a policy lifting that limit.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::CatchUnwind;
use futures_util::{FutureExt, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Acker, BasicProperties, Channel};
use slipway_common::errors::Chain;
use slipway_common::service::{self, Component};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::connection::{self, BrokerConnection};
use crate::publisher::{Outgoing, PublishError, Publisher};
use crate::topology::{Declarer, Topology, queue_exchange_name};
use crate::{BrokerError, BrokerSettings};

/// Unacked deliveries per candidate: the lease it holds, and room for one more (a surplus lease
/// to ack away, or the fresh lease of a renewal).
const PREFETCH: u16 = 2;

/// How often the leader renews its lease unless told otherwise.
pub const DEFAULT_RENEW_INTERVAL: Duration = Duration::from_secs(60);

/// Longest wait for a session to start (channel, queue, qos, consumer, the lease's confirm).
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How often a session checks that its connection and channels are still open.
const LIVENESS_CHECK: Duration = Duration::from_secs(1);

/// A session that lasted at least this long and was then lost is followed by an immediate
/// reconnection; shorter ones count as quick failures and pause first (no hot loop).
const STABLE_SESSION: Duration = Duration::from_secs(10);

/// Longest wait for the broker to acknowledge the channel close that hands the lease over.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest AMQP queue name (a short string).
const MAX_QUEUE_NAME_BYTES: usize = 255;

/// Persistent delivery mode.
const PERSISTENT: u8 = 2;

/// The lease queue of election `name` in `namespace`: `<namespace>.<name>.leader`.
pub fn lease_queue_name(namespace: &str, name: &str) -> String {
    format!("{namespace}.{name}.leader")
}

/// One term of leadership, handed to the leader code.
#[derive(Clone, Debug)]
pub struct LeaderTerm {
    /// Cancelled when the term ends: leadership lost (channel or connection failure) or shutdown.
    /// The leader code must return soon after.
    pub token: CancellationToken,
    /// Terms this process has led in this election, this one included (1 for the first).
    pub number: u64,
}

/// A cheap, cloneable view of an election's state, for gauges (`slipway_leader`) and tests.
#[derive(Clone, Debug, Default)]
pub struct LeaderStatus {
    inner: Arc<StatusCells>,
}

#[derive(Debug, Default)]
struct StatusCells {
    leading: AtomicBool,
    candidate: AtomicBool,
    terms: AtomicU64,
    renewals: AtomicU64,
    discarded: AtomicU64,
}

impl LeaderStatus {
    /// Whether this instance is leading now (a term has started and not ended).
    pub fn is_leader(&self) -> bool {
        self.inner.leading.load(Ordering::SeqCst)
    }

    /// Whether this instance is in the election: consuming the lease queue, its own lease
    /// published and confirmed (as the leader or as a standby).
    pub fn is_candidate(&self) -> bool {
        self.inner.candidate.load(Ordering::SeqCst)
    }

    /// Terms started by this process.
    pub fn terms(&self) -> u64 {
        self.inner.terms.load(Ordering::SeqCst)
    }

    /// Renewals completed by this process (fresh lease confirmed, old one acked).
    pub fn renewals(&self) -> u64 {
        self.inner.renewals.load(Ordering::SeqCst)
    }

    /// Surplus leases this process acked away while leading.
    pub fn discarded(&self) -> u64 {
        self.inner.discarded.load(Ordering::SeqCst)
    }

    fn set_leading(&self, leading: bool) {
        self.inner.leading.store(leading, Ordering::SeqCst);
    }

    fn set_candidate(&self, candidate: bool) {
        self.inner.candidate.store(candidate, Ordering::SeqCst);
    }

    fn count(cell: &AtomicU64) {
        cell.fetch_add(1, Ordering::SeqCst);
    }
}

/// One election among the instances of a worker: runs the leader code in at most one of them at
/// a time (see the module documentation for what "at a time" means under a network partition).
#[derive(Debug)]
pub struct LeaderElection {
    settings: BrokerSettings,
    name: String,
    renew_interval: Duration,
    connection_name: String,
    status: LeaderStatus,
}

impl LeaderElection {
    /// The election `name` (e.g. `rescan-scheduler`) in the settings' namespace; its lease queue
    /// is `<namespace>.<name>.leader`. Settings and name are checked when it runs.
    pub fn new(settings: &BrokerSettings, name: &str) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "unknown-host".to_owned());
        Self {
            settings: settings.clone(),
            name: name.to_owned(),
            renew_interval: DEFAULT_RENEW_INTERVAL,
            connection_name: format!("slipway-leader-{name}@{host}:{}", std::process::id()),
            status: LeaderStatus::default(),
        }
    }

    /// Renew the held lease this often ([`DEFAULT_RENEW_INTERVAL`] otherwise); keep it well below
    /// the broker's `consumer_timeout`.
    pub fn with_renew_interval(mut self, every: Duration) -> Self {
        self.renew_interval = every;
        self
    }

    /// Name the election's connection (the `connection_name` client property RabbitMQ lists).
    pub fn with_connection_name(mut self, name: impl Into<String>) -> Self {
        self.connection_name = name.into();
        self
    }

    /// The lease queue, `<namespace>.<name>.leader`.
    pub fn queue_name(&self) -> String {
        lease_queue_name(&self.settings.namespace, &self.name)
    }

    /// A handle on this election's state that stays valid while [`Self::run`] runs.
    pub fn status(&self) -> LeaderStatus {
        self.status.clone()
    }

    /// Reject an election that cannot work, naming what is wrong.
    pub fn validate(&self) -> Result<(), BrokerError> {
        self.settings.validate()?;
        let queue = self.queue_name();
        let problem = if self.name.is_empty() {
            Some("the election's name must not be empty".to_owned())
        } else if self
            .name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            Some(format!(
                "the election's name must have no spaces or control characters, found {:?}",
                self.name
            ))
        } else if queue.len() > MAX_QUEUE_NAME_BYTES {
            Some(format!(
                "the lease queue's name must be at most {MAX_QUEUE_NAME_BYTES} bytes, found {} ({queue:?})",
                queue.len()
            ))
        } else if self.renew_interval.is_zero() {
            Some("the lease renewal interval must be more than 0".to_owned())
        } else {
            None
        };
        problem.map_or(Ok(()), |problem| Err(BrokerError::Settings(problem)))
    }

    /// Runs until `shutdown`: each time this instance becomes the leader, calls `lead(term)` and
    /// drives the returned future until it completes or the term ends. `term.token` is cancelled
    /// when leadership is lost or on shutdown; `lead` must return soon after (it is dropped after
    /// `drain_timeout_ms`). A `lead` future that returns, or panics, while the term is still on
    /// resigns: the lease goes to the next instance and this one stands again after a pause.
    ///
    /// Lost connections are reconnected with backoff ([`BrokerConnection::connect_with_retry`]);
    /// this returns `Ok` on shutdown and an error only for unusable settings.
    pub async fn run<F, Fut>(
        self,
        shutdown: CancellationToken,
        mut lead: F,
    ) -> Result<(), BrokerError>
    where
        F: FnMut(LeaderTerm) -> Fut,
        Fut: Future<Output = ()> + Send,
    {
        self.validate()?;
        let queue = self.queue_name();
        let component = Component::register("election");
        let mut terms = 0u64;
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
            let started = Instant::now();
            let end =
                Box::pin(self.session(&connection, &shutdown, &mut lead, &mut terms, &component))
                    .await;
            connection.close().await;
            component.down(format!("out of the election: {}", end.reason()));
            match end {
                SessionEnd::Shutdown => return Ok(()),
                SessionEnd::Lost(reason) => {
                    tracing::warn!(%queue, %reason, "lease queue session lost; reconnecting");
                    if started.elapsed() >= STABLE_SESSION {
                        quick_failures = 0;
                        continue;
                    }
                }
                SessionEnd::SetupFailed(error) => {
                    let error = Chain(&error).to_string();
                    tracing::error!(%queue, %error, "cannot join the election");
                }
                SessionEnd::Resigned(reason) => {
                    tracing::warn!(%queue, %reason, "resigned; standing again after a pause");
                }
            }
            // Quick failures, setup failures and resignations pause with growing delays.
            quick_failures = quick_failures.saturating_add(1);
            let pause = Duration::from_millis(
                (100u64 << quick_failures.min(10))
                    .min(self.settings.max_reconnect_delay_ms.max(100)),
            );
            if !connection::pause(pause, &shutdown).await {
                return Ok(());
            }
        }
    }

    /// One connection's worth of candidacy: join, follow the lease, leave.
    async fn session<F, Fut>(
        &self,
        connection: &BrokerConnection,
        shutdown: &CancellationToken,
        lead: &mut F,
        terms: &mut u64,
        component: &Component,
    ) -> SessionEnd
    where
        F: FnMut(LeaderTerm) -> Fut,
        Fut: Future<Output = ()> + Send,
    {
        let queue = self.queue_name();
        let lease = Lease::new(&queue, &self.settings.namespace, &self.connection_name);
        let joined = async {
            let channel = connection.channel().await?;
            declare_lease_queue(&channel, &self.settings, &queue).await?;
            channel
                .basic_qos(PREFETCH, BasicQosOptions::default())
                .await
                .map_err(BrokerError::Channel)?;
            let consumer = channel
                .basic_consume(
                    queue.as_str().into(),
                    self.connection_name.as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(BrokerError::Channel)?;
            // Published once the consumer is registered, so that a lone instance receives it.
            let publisher = Publisher::open(connection, &Topology::new(&self.settings)).await?;
            publisher.send_confirmed(&lease.outgoing()).await?;
            Ok::<_, BrokerError>((channel, publisher, consumer))
        };
        let (channel, publisher, mut consumer) = tokio::select! {
            () = shutdown.cancelled() => return SessionEnd::Shutdown,
            joined = tokio::time::timeout(SETUP_TIMEOUT, joined) => match joined {
                Ok(Ok(joined)) => joined,
                Ok(Err(error)) => return SessionEnd::SetupFailed(error),
                Err(_) => return SessionEnd::SetupFailed(BrokerError::SetupTimeout {
                    queue: queue.clone(),
                    after: SETUP_TIMEOUT,
                }),
            },
        };
        self.status.set_candidate(true);
        tracing::info!(%queue, "joined the election");
        component.up(format!("standing by in the {} election", self.name));
        service::watchdog_beat();

        let mut book = LeaseBook::<Acker>::default();
        let mut term: Option<Term<Fut>> = None;
        let mut confirming: Option<Confirming> = None;
        let mut liveness = tokio::time::interval(LIVENESS_CHECK);
        let mut renew = tokio::time::interval(self.renew_interval);
        renew.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let end = loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break SessionEnd::Shutdown,
                _ = liveness.tick() => {
                    // A broken publishing channel shows at the next renewal's publish.
                    if !connection.is_connected() || !channel.status().connected() {
                        break SessionEnd::Lost("the connection or the lease channel closed".to_owned());
                    }
                    // systemd's watchdog hears from this loop (which drives the leader code too):
                    // a loop stuck in one of its arms stops the beats and is restarted.
                    service::watchdog_beat();
                }
                finished = next_of(term.as_mut().and_then(|term| term.future.as_mut())) => {
                    if let Some(term) = term.as_mut() {
                        term.future = None;
                    }
                    break SessionEnd::Resigned(match finished {
                        Ok(()) => "the leader code returned while still leading".to_owned(),
                        Err(panic) => format!("the leader code panicked: {}", panic_message(panic.as_ref())),
                    });
                }
                confirmed = next_of(confirming.as_mut()) => {
                    confirming = None;
                    let renewed = confirmed.is_ok();
                    let retire = match confirmed {
                        Ok(()) => book.renewal_confirmed(),
                        Err(error) if error.is_refusal() => {
                            tracing::warn!(%queue, error = %Chain(&error), "the broker refused a fresh lease; keeping the held one");
                            book.renewal_refused()
                        }
                        Err(error) => break SessionEnd::Lost(Chain(&error).to_string()),
                    };
                    if let Some(old) = retire
                        && let Err(reason) = ack(&old, "the renewed lease").await
                    {
                        break SessionEnd::Lost(reason);
                    }
                    if renewed {
                        LeaderStatus::count(&self.status.inner.renewals);
                    }
                }
                _ = renew.tick(), if book.is_leading() && confirming.is_none() => {
                    if book.start_renewal() {
                        match publisher.send(&lease.outgoing()).await {
                            Ok(confirm) => confirming = Some(Box::pin(confirm)),
                            Err(error) => break SessionEnd::Lost(Chain(&error).to_string()),
                        }
                    }
                }
                delivery = consumer.next() => match delivery {
                    Some(Ok(delivery)) => {
                        let redelivered = delivery.redelivered;
                        match book.on_delivery(delivery.acker) {
                            OnDelivery::BecomeLeader => {
                                *terms += 1;
                                let started = self.start_term(*terms, shutdown, lead);
                                self.status.inner.terms.store(*terms, Ordering::SeqCst);
                                self.status.set_leading(true);
                                component.up(format!("leading the {} election (term {})", self.name, *terms));
                                tracing::info!(%queue, term = *terms, takeover = redelivered, "became the leader");
                                renew.reset();
                                match started {
                                    Ok(started) => term = Some(started),
                                    Err((token, panic)) => {
                                        term = Some(Term { token, number: *terms, future: None });
                                        break SessionEnd::Resigned(format!("the leader code panicked: {panic}"));
                                    }
                                }
                            }
                            OnDelivery::Hold => {}
                            OnDelivery::Discard(surplus) => {
                                if let Err(reason) = ack(&surplus, "a surplus lease").await {
                                    break SessionEnd::Lost(reason);
                                }
                                LeaderStatus::count(&self.status.inner.discarded);
                            }
                        }
                    }
                    Some(Err(error)) => break SessionEnd::Lost(Chain(&error).to_string()),
                    None => break SessionEnd::Lost("the broker cancelled the consumer".to_owned()),
                },
            }
        };
        self.status.set_candidate(false);
        if let Some(term) = term.take() {
            self.end_term(term, &end).await;
        }
        if matches!(end, SessionEnd::Shutdown | SessionEnd::Resigned(_)) {
            // Leave exactly one lease behind: a fresh lease on its way is either confirmed (then
            // the old one goes) or not (then the old one stays).
            if let Some(confirming) = confirming.take()
                && let Ok(Ok(())) = tokio::time::timeout(CLOSE_TIMEOUT, confirming).await
                && let Some(old) = book.renewal_confirmed()
            {
                let _ = ack(&old, "the renewed lease").await;
            }
            // Closing the channel hands the held lease to the next candidate now.
            match tokio::time::timeout(
                CLOSE_TIMEOUT,
                channel.close(200, "leaving the election".into()),
            )
            .await
            {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::debug!(%queue, %error, "closing the lease channel"),
                Err(_) => {
                    tracing::warn!(%queue, "the broker did not answer the lease channel's close")
                }
            }
            // Closed here, before the connection, not by its `Drop` racing the connection's
            // close (which logged "invalid channel state: Closing" as an ERROR at every stop).
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, publisher.close()).await;
        }
        end
    }

    /// Call the leader code for term `number`; a panic in the call itself ends the term at once.
    fn start_term<F, Fut>(
        &self,
        number: u64,
        shutdown: &CancellationToken,
        lead: &mut F,
    ) -> Result<Term<Fut>, (CancellationToken, String)>
    where
        F: FnMut(LeaderTerm) -> Fut,
        Fut: Future<Output = ()> + Send,
    {
        // A child of `shutdown`: the leader code sees shutdown at once, even before this loop does.
        let token = shutdown.child_token();
        let called = std::panic::catch_unwind(AssertUnwindSafe(|| {
            lead(LeaderTerm {
                token: token.clone(),
                number,
            })
        }));
        match called {
            Ok(future) => Ok(Term {
                token,
                number,
                future: Some(Box::pin(AssertUnwindSafe(future).catch_unwind())),
            }),
            Err(panic) => Err((token, panic_message(panic.as_ref()).to_owned())),
        }
    }

    /// Cancel the term, then wait (bounded) for the leader code to return.
    async fn end_term<Fut: Future<Output = ()> + Send>(&self, term: Term<Fut>, end: &SessionEnd) {
        let queue = self.queue_name();
        term.token.cancel();
        self.status.set_leading(false);
        let reason = end.reason();
        if matches!(end, SessionEnd::Shutdown) {
            tracing::info!(%queue, term = term.number, %reason, "lost leadership");
        } else {
            tracing::warn!(%queue, term = term.number, %reason, "lost leadership");
        }
        if let Some(future) = term.future {
            let drain = Duration::from_millis(self.settings.drain_timeout_ms);
            match tokio::time::timeout(drain, future).await {
                Ok(Ok(())) => {}
                Ok(Err(panic)) => tracing::error!(
                    %queue,
                    term = term.number,
                    panic = panic_message(panic.as_ref()),
                    "the leader code panicked while stopping"
                ),
                Err(_) => tracing::warn!(
                    %queue,
                    term = term.number,
                    drain_ms = u64::try_from(drain.as_millis()).unwrap_or(u64::MAX),
                    "the leader code did not return after its term ended; dropped it"
                ),
            }
        }
    }
}

/// The leader code of one term, as the session drives it.
type Leading<Fut> = Pin<Box<CatchUnwind<AssertUnwindSafe<Fut>>>>;

/// A renewal's fresh lease on its way: resolves when the broker confirms or refuses it.
type Confirming = Pin<Box<dyn Future<Output = Result<(), PublishError>> + Send>>;

/// A term under way.
struct Term<Fut> {
    token: CancellationToken,
    number: u64,
    /// `None` once the leader code has returned.
    future: Option<Leading<Fut>>,
}

/// How a session ended.
#[derive(Debug)]
enum SessionEnd {
    Shutdown,
    Lost(String),
    SetupFailed(BrokerError),
    Resigned(String),
}

impl SessionEnd {
    fn reason(&self) -> String {
        match self {
            SessionEnd::Shutdown => "shutdown".to_owned(),
            SessionEnd::Lost(reason) | SessionEnd::Resigned(reason) => reason.clone(),
            SessionEnd::SetupFailed(error) => Chain(error).to_string(),
        }
    }
}

/// The lease message of one candidate.
struct Lease {
    queue: String,
    /// The namespace's queue exchange, where the lease queue is bound by name.
    exchange: String,
    body: Vec<u8>,
}

impl Lease {
    fn new(queue: &str, namespace: &str, connection_name: &str) -> Self {
        Self {
            queue: queue.to_owned(),
            exchange: queue_exchange_name(namespace),
            body: format!("lease of {queue}, published by {connection_name}").into_bytes(),
        }
    }

    /// To the lease queue through the queue exchange, where it is bound by name (`mandatory`: a
    /// missing queue or binding is an error, not a lost lease).
    fn outgoing(&self) -> Outgoing<'_> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        Outgoing {
            exchange: &self.exchange,
            routing_key: &self.queue,
            body: &self.body,
            properties: BasicProperties::default()
                .with_content_type("text/plain".into())
                .with_delivery_mode(PERSISTENT)
                .with_timestamp(now),
        }
    }
}

/// Declare (or, with `broker.topology = "verify"`, check) the lease queue of election `name`, as
/// its candidates do when they join (for an administrator preparing a namespace whose workers only
/// verify).
pub async fn declare_lease_queue_of(
    connection: &BrokerConnection,
    settings: &BrokerSettings,
    name: &str,
) -> Result<(), BrokerError> {
    let channel = connection.channel().await?;
    declare_lease_queue(
        &channel,
        settings,
        &lease_queue_name(&settings.namespace, name),
    )
    .await?;
    let _ = channel.close(200, "declared".into()).await;
    Ok(())
}

/// Declare (or, with `broker.topology = "verify"`, check) the lease queue: durable, quorum,
/// single active consumer, bound by name to the queue exchange.
async fn declare_lease_queue(
    channel: &Channel,
    settings: &BrokerSettings,
    queue: &str,
) -> Result<(), BrokerError> {
    let declarer = Declarer::new(channel, settings.topology, &settings.namespace);
    declarer
        .queue(queue, lease_queue_arguments(), "lease queue")
        .await?;
    declarer.bind_by_name(queue).await
}

/// The arguments of a lease queue: quorum, single active consumer.
pub(crate) fn lease_queue_arguments() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        ShortString::from("x-queue-type"),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    arguments.insert(
        ShortString::from("x-single-active-consumer"),
        AMQPValue::Boolean(true),
    );
    arguments
}

async fn ack(acker: &Acker, what: &str) -> Result<(), String> {
    acker
        .ack(BasicAckOptions::default())
        .await
        .map(drop)
        .map_err(|error| format!("cannot ack {what}: {}", Chain(&error)))
}

/// What the broker says about a lease queue right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseQueue {
    /// Leases waiting for a consumer (not those held unacked). With no consumer left, this is
    /// every lease there is: 1 when the election is sound.
    pub ready: u32,
    /// Consumers as the broker's declare-ok counts them: on a single-active-consumer quorum queue
    /// RabbitMQ 3.10 counts only the active one, so this is 1 while anyone stands and 0 when
    /// nobody does (`rabbitmqctl list_consumers` lists the waiting ones too).
    pub consumers: u32,
}

/// Look at a lease queue (a passive declare, on a channel of its own: a missing queue closes it).
pub async fn inspect_lease_queue(
    connection: &BrokerConnection,
    queue: &str,
) -> Result<LeaseQueue, BrokerError> {
    let channel = connection.channel().await?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let declared = channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .map_err(BrokerError::Channel)?;
    let _ = channel.close(200, "done".into()).await;
    Ok(LeaseQueue {
        ready: declared.message_count(),
        consumers: declared.consumer_count(),
    })
}

/// Delete a lease queue (test namespaces, a decommissioned election). Its candidates' consumers
/// are cancelled by the broker: they rejoin, declaring it again.
pub async fn delete_lease_queue(
    connection: &BrokerConnection,
    queue: &str,
) -> Result<(), BrokerError> {
    let channel = connection.channel().await?;
    channel
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await
        .map_err(BrokerError::Channel)?;
    let _ = channel.close(200, "done".into()).await;
    Ok(())
}

/// What to do with a lease just delivered.
#[derive(Debug, PartialEq, Eq)]
enum OnDelivery<T> {
    /// The session's first lease: this instance is the active consumer, hence the leader. It is
    /// held.
    BecomeLeader,
    /// Held: the lease that replaces the one a renewal retires.
    Hold,
    /// A lease too many (another instance's joining lease, or a fresh lease after another one
    /// took its place): ack it away.
    Discard(T),
}

/// A renewal's progress.
#[derive(Debug, PartialEq, Eq)]
enum Renewal<T> {
    Idle,
    /// A fresh lease was published and is not confirmed yet; `arrived` is a lease delivered
    /// meanwhile, kept until the confirm says which of the two to retire.
    Pending {
        arrived: Option<T>,
    },
}

/// The leases one session holds, and the decision for each delivery and renewal step: pure, so
/// that the rules that keep exactly one lease are unit-tested. `T` is the handle that acks a
/// delivery (lapin's `Acker`; a number in the tests).
///
/// The rules: the first delivery makes the leader and is held. Later ones are held only when
/// nothing is held (after a renewal retired the old lease before the fresh one came back) or
/// while a renewal is pending (the fresh lease may come back before its confirm does; acking it
/// then would leave no lease once the old one is retired). Everything else is a surplus, acked.
/// A renewal retires the held lease only once the fresh one is confirmed; if the broker refuses
/// the fresh one, a lease that arrived meanwhile replaces the held one, otherwise the held one
/// stays.
#[derive(Debug)]
struct LeaseBook<T> {
    leading: bool,
    held: Option<T>,
    renewal: Renewal<T>,
}

impl<T> Default for LeaseBook<T> {
    fn default() -> Self {
        Self {
            leading: false,
            held: None,
            renewal: Renewal::Idle,
        }
    }
}

impl<T> LeaseBook<T> {
    /// Whether this session has received a lease, hence leads.
    fn is_leading(&self) -> bool {
        self.leading
    }

    fn on_delivery(&mut self, lease: T) -> OnDelivery<T> {
        if !self.leading {
            self.leading = true;
            self.held = Some(lease);
            return OnDelivery::BecomeLeader;
        }
        match &mut self.renewal {
            Renewal::Pending { arrived } if arrived.is_none() => {
                *arrived = Some(lease);
                OnDelivery::Hold
            }
            Renewal::Idle if self.held.is_none() => {
                self.held = Some(lease);
                OnDelivery::Hold
            }
            _ => OnDelivery::Discard(lease),
        }
    }

    /// Start a renewal: `true` when the caller must publish a fresh lease (leading, holding one,
    /// no renewal pending).
    fn start_renewal(&mut self) -> bool {
        let due = self.leading && self.held.is_some() && matches!(self.renewal, Renewal::Idle);
        if due {
            self.renewal = Renewal::Pending { arrived: None };
        }
        due
    }

    /// The fresh lease is stored: the old one to ack, if a renewal was pending.
    fn renewal_confirmed(&mut self) -> Option<T> {
        match std::mem::replace(&mut self.renewal, Renewal::Idle) {
            Renewal::Pending { arrived } => std::mem::replace(&mut self.held, arrived),
            Renewal::Idle => None,
        }
    }

    /// The broker refused the fresh lease: the lease to ack, if one arrived meanwhile (it
    /// replaces the held one).
    fn renewal_refused(&mut self) -> Option<T> {
        match std::mem::replace(&mut self.renewal, Renewal::Idle) {
            Renewal::Pending {
                arrived: Some(arrived),
            } => self.held.replace(arrived),
            Renewal::Pending { arrived: None } | Renewal::Idle => None,
        }
    }

    /// Leases held unacked.
    #[cfg(test)]
    fn held(&self) -> usize {
        usize::from(self.held.is_some())
            + usize::from(matches!(
                self.renewal,
                Renewal::Pending { arrived: Some(_) }
            ))
    }
}

/// Await the future in `slot`, or forever when there is none (a disabled `select!` branch).
async fn next_of<F: Future + Unpin>(slot: Option<&mut F>) -> F::Output {
    match slot {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_lease_makes_the_leader_and_later_ones_are_surplus() {
        let mut book = LeaseBook::default();
        assert!(!book.is_leading());
        assert_eq!(book.on_delivery(1), OnDelivery::BecomeLeader);
        assert!(book.is_leading());
        assert_eq!(book.on_delivery(2), OnDelivery::Discard(2));
        assert_eq!(book.on_delivery(3), OnDelivery::Discard(3));
        assert_eq!(book.held(), 1);
    }

    #[test]
    fn a_standby_never_renews() {
        let mut book = LeaseBook::<u64>::default();
        assert!(!book.start_renewal());
        assert_eq!(book.renewal_confirmed(), None);
    }

    #[test]
    fn renewal_retires_the_old_lease_only_after_the_confirm_when_the_fresh_one_comes_back_after_it()
    {
        let mut book = LeaseBook::default();
        book.on_delivery(1);
        assert!(book.start_renewal());
        assert!(!book.start_renewal(), "one renewal at a time");
        assert_eq!(book.renewal_confirmed(), Some(1));
        // Nothing held until the fresh lease comes back; it is held, not discarded.
        assert_eq!(book.held(), 0);
        assert_eq!(book.on_delivery(2), OnDelivery::Hold);
        assert_eq!(book.held(), 1);
        assert_eq!(book.on_delivery(3), OnDelivery::Discard(3));
    }

    #[test]
    fn a_fresh_lease_that_comes_back_before_its_confirm_is_kept() {
        let mut book = LeaseBook::default();
        book.on_delivery(1);
        assert!(book.start_renewal());
        assert_eq!(book.on_delivery(2), OnDelivery::Hold);
        assert_eq!(book.held(), 2);
        // With two held (the prefetch), anything else is surplus.
        assert_eq!(book.on_delivery(3), OnDelivery::Discard(3));
        assert_eq!(book.renewal_confirmed(), Some(1));
        assert_eq!(book.held(), 1);
        // The next renewal retires lease 2.
        assert!(book.start_renewal());
        assert_eq!(book.renewal_confirmed(), Some(2));
    }

    #[test]
    fn a_refused_renewal_keeps_exactly_one_lease() {
        let mut book = LeaseBook::default();
        book.on_delivery(1);
        assert!(book.start_renewal());
        assert_eq!(book.renewal_refused(), None, "the held lease stays");
        assert_eq!(book.held(), 1);
        // A lease that arrived meanwhile (a joining instance's) replaces the held one.
        assert!(book.start_renewal());
        assert_eq!(book.on_delivery(7), OnDelivery::Hold);
        assert_eq!(book.renewal_refused(), Some(1));
        assert_eq!(book.held(), 1);
        assert_eq!(book.on_delivery(8), OnDelivery::Discard(8));
    }

    #[test]
    fn every_delivery_order_leaves_one_lease_held_after_a_renewal() {
        // The fresh lease (f) and a joining instance's lease (j) may arrive before or after the
        // confirm (c): whatever the order, one lease is held at the end and one of f and j is
        // acked away.
        for order in [
            "fjc", "fcj", "jfc", "jcf", "cfj", "cjf", //
        ] {
            let mut book = LeaseBook::default();
            book.on_delivery("old");
            assert!(book.start_renewal());
            let mut acked = Vec::new();
            for step in order.chars() {
                match step {
                    'c' => acked.extend(book.renewal_confirmed()),
                    'f' | 'j' => {
                        let lease = if step == 'f' { "fresh" } else { "joining" };
                        if let OnDelivery::Discard(lease) = book.on_delivery(lease) {
                            acked.push(lease);
                        }
                    }
                    _ => unreachable!(),
                }
            }
            assert_eq!(book.held(), 1, "{order}: {acked:?}");
            assert_eq!(acked.len(), 2, "{order}: {acked:?}");
            assert!(acked.contains(&"old"), "{order}: {acked:?}");
        }
    }

    #[test]
    fn names_and_intervals_are_checked() {
        let settings = BrokerSettings {
            namespace: "t3".into(),
            ..BrokerSettings::default()
        };
        let election = LeaderElection::new(&settings, "rescan-scheduler");
        assert_eq!(election.queue_name(), "t3.rescan-scheduler.leader");
        assert!(election.validate().is_ok());
        for (election, expected) in [
            (LeaderElection::new(&settings, ""), "must not be empty"),
            (LeaderElection::new(&settings, "a b"), "no spaces"),
            (
                LeaderElection::new(&settings, &"x".repeat(300)),
                "at most 255 bytes",
            ),
            (
                LeaderElection::new(&settings, "ok").with_renew_interval(Duration::ZERO),
                "more than 0",
            ),
        ] {
            let error = election.validate().unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
    }
}

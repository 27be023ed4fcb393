//! Slipway's RabbitMQ layer, the only crate that imports lapin.
//!
//! - [`BrokerSettings`]: the `[broker]` config section;
//! - [`Topology`]: exchanges and queues, declared idempotently;
//! - [`BrokerConnection`]: connect with backoff;
//! - [`Publisher`]: confirmed, mandatory publishing;
//! - [`Consumer`]: the runner that turns a [`Handler`]'s [`Outcome`] into acks, retries and dead
//!   letters, reconnecting when the connection drops and draining on shutdown;
//! - [`inspect`]: queue depths and dead letters, for the CLI and tests.
//! - [`logs`]: build logs on the `<namespace>.logs` stream: [`logs::LogWriter`] and [`logs::LogReader`].
//! - [`reports`]: the `<namespace>.reports` stream's name and retention (what a report entry
//!   holds is `slipway_scan::reports`'s business);
//! - [`history`]: every event, recorded by the `<namespace>.history` stream that the pipeline's
//!   topology binds to the exchange with `#`; [`history::HistoryReader`] reads it back decoded.
//! - [`SideConnection`]: a worker's second connection for writing one of those streams.
//! - [`LeaderElection`]: one instance at a time runs a scheduling loop (single-active-consumer
//!   on a quorum queue, a lease message as the signal; [`leadership`]).
//! - [`follower`]: a state folded from the history stream ([`follower::HistoryView`]), kept up
//!   to date by a follower task, and the fence a new leader waits for before acting on it.
//! - [`Outlet`]: a self-repairing confirmed publisher for a leader's own decisions.
//!
//! Every stream is declared, appended to and read through one module, [`streams`] (retention
//! arguments, confirmed `mandatory` appends, the tail probe), and read through its one public,
//! domain-free reader, [`streams::reader::StreamReader`] (from an offset or a time, filtered by
//! headers and routing key, to the end or following).

mod connection;
mod consumer;
pub mod definitions;
pub mod follower;
pub mod headers;
pub mod history;
pub mod inspect;
pub mod leadership;
pub mod logs;
mod outlet;
mod publisher;
pub mod reports;
mod settings;
mod side;
pub mod streams;
mod topology;

pub use connection::BrokerConnection;
pub use consumer::{Consumer, Handler, Job, Outcome};
pub use leadership::{LeaderElection, LeaderStatus, LeaderTerm};
pub use outlet::Outlet;
pub use publisher::{CONTENT_TYPE, PublishError, Publisher};
pub use settings::{BrokerSettings, DEFAULT_FRAME_MAX, TopologyMode};
pub use side::SideConnection;
pub use topology::{Topology, WorkerQueue};

use std::time::Duration;

/// What can go wrong talking to the broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The `[broker]` settings are unusable.
    #[error("invalid broker settings: {0}")]
    Settings(String),
    /// The broker refused or dropped the connection attempt.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The URL, without password.
        url: String,
        /// lapin's error.
        source: lapin::Error,
    },
    /// The broker refused the login: wrong user or password (`ACCESS_REFUSED`), or a vhost that
    /// does not exist or that the user may not open (`NOT_ALLOWED`).
    #[error("the broker at {url} refused user {user:?}: {reason}")]
    Refused {
        /// The URL, without password.
        url: String,
        /// The user name it was given.
        user: String,
        /// The broker's words.
        reason: String,
    },
    /// The connection attempt hung.
    #[error("cannot connect to {url}: no answer after {after:?}")]
    ConnectTimeout {
        /// The URL, without password.
        url: String,
        /// How long we waited.
        after: Duration,
    },
    /// A channel operation failed.
    #[error("broker channel error: {0}")]
    Channel(lapin::Error),
    /// Declaring part of the topology failed.
    #[error("cannot declare {what}: {source}")]
    Topology {
        /// The exchange, queue or binding.
        what: String,
        /// lapin's error (a 406 names the mismatching argument).
        source: lapin::Error,
    },
    /// With `broker.topology = "verify"`, something this process uses was never declared.
    #[error(
        "{what} does not exist, and broker.topology is \"verify\": an administrator declares the \
         topology (rabbitmqctl import_definitions with the output of `slipway definitions`, see \
         deploy/rabbitmq/README.md), or this process may declare it itself with \
         broker.topology = \"declare\" and a user allowed to"
    )]
    Missing {
        /// The exchange, queue or stream.
        what: String,
    },
    /// A publish failed.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// Starting a consuming session (topology, qos, consumer) did not finish in time.
    #[error("starting to consume from {queue} took longer than {after:?}")]
    SetupTimeout {
        /// The worker's queue.
        queue: String,
        /// How long we waited.
        after: Duration,
    },
}

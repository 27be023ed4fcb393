//! The one startup path of every worker binary: command line (`--config`, `--print-config`),
//! configuration, async runtime, telemetry, termination signals and a bounded shutdown.
//!
//! A worker's `main` names its configuration type and its `run` function, nothing more:
//!
//! ```text
//! fn main() -> ExitCode {
//!     WorkerProcess::new(ABOUT).main(slipway_lint::worker::run)
//! }
//! ```
//!
//! An error that stops the process is printed on stderr as one line, `slipway-lint: error: …`,
//! each of its causes once ([`crate::errors::Chain`]), and the exit status is 1.
//!
//! Architecture invariant — *shutdown is bounded*: after SIGTERM/SIGINT, `run` gets the worker's
//! drain timeout ([`WorkerConfig::drain_timeout`], `broker.drain_timeout_ms`) plus
//! [`SHUTDOWN_GRACE`] to return; past that the process exits with an error and the broker
//! redelivers what was in flight. Blocking tasks still running once `run` has returned get
//! [`BLOCKING_GRACE`].

use std::error::Error as StdError;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::config::{self, ConfigError, ConfigSources};
use crate::telemetry::{self, TelemetryError, TelemetrySettings};

pub use crate::worker::WorkerKind;

impl WorkerKind {
    /// Its default `[telemetry]` section: logs at `info`, metrics on its own port.
    pub fn default_telemetry(self) -> TelemetrySettings {
        TelemetrySettings::with_metrics_port(self.metrics_port())
    }
}

/// What the startup path needs to know about a worker's configuration.
pub trait WorkerConfig: Default + Serialize + DeserializeOwned {
    /// The worker it configures.
    const KIND: WorkerKind;

    /// Its `[telemetry]` section.
    fn telemetry(&self) -> &TelemetrySettings;

    /// How long in-flight jobs may run after the shutdown signal (`broker.drain_timeout_ms`).
    fn drain_timeout(&self) -> Duration;
}

/// Extra time after the drain timeout for `run` to close its connections and return.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Time left to blocking tasks (an idle pooled connection, a lock wait) once `run` has returned:
/// systemd expects a prompt exit after SIGTERM.
pub const BLOCKING_GRACE: Duration = Duration::from_secs(2);

/// Why a worker process stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The configuration cannot be loaded or printed.
    #[error(transparent)]
    Config(#[from] Box<ConfigError>),
    /// The async runtime cannot start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// Logging, metrics or the signal handlers cannot start.
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    /// The worker stopped with an error.
    #[error(transparent)]
    Worker(Box<dyn StdError + Send + Sync>),
    /// The worker did not return in time after the shutdown signal.
    #[error(
        "the worker did not stop within {after:?} of the shutdown signal; its unfinished jobs \
         return to the queue"
    )]
    ShutdownTimeout {
        /// Drain timeout plus [`SHUTDOWN_GRACE`].
        after: Duration,
    },
}

/// A worker binary's process: build it with the text of `--help`, then [`run`](Self::run) it.
#[derive(Debug, Clone)]
pub struct WorkerProcess {
    about: &'static str,
    worker_threads: Option<usize>,
}

impl WorkerProcess {
    /// A process whose `--help` says `about`; a single-threaded runtime unless
    /// [`worker_threads`](Self::worker_threads) says otherwise.
    pub fn new(about: &'static str) -> Self {
        Self {
            about,
            worker_threads: None,
        }
    }

    /// Run on a multi-threaded runtime with this many threads (CPU-bound work between awaits).
    pub fn worker_threads(mut self, threads: usize) -> Self {
        self.worker_threads = Some(threads);
        self
    }

    /// [`run`](Self::run), as a binary's `main`: an error is printed on stderr as one line
    /// naming the binary, each cause once, and the exit status is 1.
    pub fn main<C, F, Fut, E>(self, run: F) -> ExitCode
    where
        C: WorkerConfig,
        F: FnOnce(C, CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: StdError + Send + Sync + 'static,
    {
        match self.run(run) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!(
                    "{}: error: {}",
                    C::KIND.binary(),
                    crate::errors::Chain(&error)
                );
                ExitCode::FAILURE
            }
        }
    }

    /// Parse the command line, load `C`, and either print it (`--print-config`) or start
    /// telemetry and run `run(config, shutdown)` until it returns; after the shutdown signal, for
    /// at most the drain timeout plus [`SHUTDOWN_GRACE`].
    pub fn run<C, F, Fut, E>(self, run: F) -> Result<(), ProcessError>
    where
        C: WorkerConfig,
        F: FnOnce(C, CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: StdError + Send + Sync + 'static,
    {
        let args = self.command::<C>().get_matches();
        let file = args.get_one::<PathBuf>("config").cloned();
        let sources = ConfigSources::for_worker(C::KIND.name()).with_file_if(file.as_deref());
        let loaded = config::load_reporting::<C>(&sources).map_err(Box::new)?;
        if args.get_flag("print-config") {
            print!("{}", config::to_toml(&loaded.config).map_err(Box::new)?);
            return Ok(());
        }
        let runtime = match self.worker_threads {
            Some(threads) => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_all()
                .build(),
            None => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
        }
        .map_err(ProcessError::Runtime)?;
        let result = runtime.block_on(async move {
            let shutdown = telemetry::start_process(loaded.config.telemetry()).await?;
            if !loaded.ignored_env.is_empty() {
                tracing::info!(
                    worker = C::KIND.name(),
                    ignored = ?loaded.ignored_env,
                    "environment variables of other programs or sections were ignored"
                );
            }
            let bound = loaded.config.drain_timeout() + SHUTDOWN_GRACE;
            run_bounded(run(loaded.config, shutdown.clone()), &shutdown, bound).await
        });
        runtime.shutdown_timeout(BLOCKING_GRACE);
        result
    }

    fn command<C: WorkerConfig>(&self) -> clap::Command {
        use clap::{Arg, ArgAction, value_parser};
        let name = C::KIND.name();
        let sections = config::to_toml(&C::default())
            .ok()
            .and_then(|text| text.parse::<toml::Table>().ok())
            .map(|table| {
                table
                    .keys()
                    .map(|key| format!("[{key}]"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        clap::Command::new(C::KIND.binary())
            .version(env!("CARGO_PKG_VERSION"))
            .about(self.about)
            .after_help(format!(
                "Configuration: defaults < /etc/slipway/{name}.toml (or --config) < \
                 SLIPWAY_<SECTION>__<KEY> environment variables (e.g. SLIPWAY_BROKER__URL). \
                 Sections: {sections}. Variables of other sections and single-underscore ones \
                 (the slipway command line's) are ignored; unknown keys of its own sections are \
                 errors. Metrics: 127.0.0.1:{port} by default; telemetry.metrics_addr = \"\" turns \
                 them off.",
                port = C::KIND.metrics_port(),
            ))
            .arg(
                Arg::new("config")
                    .long("config")
                    .value_name("FILE")
                    .value_parser(value_parser!(PathBuf))
                    .help(format!(
                        "Configuration file instead of /etc/slipway/{name}.toml"
                    )),
            )
            .arg(
                Arg::new("print-config")
                    .long("print-config")
                    .action(ArgAction::SetTrue)
                    .help("Print the effective configuration (TOML, secrets redacted) and exit"),
            )
    }
}

/// For each worker's tests: its defaults survive the defaults layer unchanged (so they carry no
/// redacted secret), its printed configuration is TOML that loads back to the same configuration,
/// and `/metrics` defaults to its own port.
///
/// # Panics
/// When one of those does not hold.
#[cfg(any(test, feature = "test-support"))]
pub fn assert_worker_config_defaults<C>()
where
    C: WorkerConfig + PartialEq + std::fmt::Debug,
{
    let mut sources =
        ConfigSources::for_worker(C::KIND.name()).with_env(Vec::<(String, String)>::new());
    sources.file = PathBuf::from("/nonexistent/slipway-defaults.toml");
    let loaded: C = config::load(&sources).expect("the defaults load");
    assert_eq!(loaded, C::default(), "the defaults change when loaded");
    let printed = config::to_toml(&loaded).expect("printable");
    let file = std::env::temp_dir().join(format!(
        "slipway-print-{}-{}.toml",
        C::KIND.name(),
        std::process::id()
    ));
    std::fs::write(&file, &printed).expect("temp file");
    let reloaded: Result<C, _> = config::load(&sources.with_file(&file));
    let _ = std::fs::remove_file(&file);
    assert_eq!(
        reloaded.expect("the printed configuration loads"),
        loaded,
        "{printed}"
    );
    assert_eq!(
        loaded.telemetry().metrics_addr.map(|addr| addr.port()),
        Some(C::KIND.metrics_port())
    );
}

/// Await `worker`; once `shutdown` is cancelled, for at most `bound` more.
async fn run_bounded<E>(
    worker: impl Future<Output = Result<(), E>>,
    shutdown: &CancellationToken,
    bound: Duration,
) -> Result<(), ProcessError>
where
    E: StdError + Send + Sync + 'static,
{
    let mut worker = std::pin::pin!(worker);
    let result = tokio::select! {
        result = &mut worker => result,
        () = shutdown.cancelled() => match tokio::time::timeout(bound, &mut worker).await {
            Ok(result) => result,
            Err(_) => return Err(ProcessError::ShutdownTimeout { after: bound }),
        },
    };
    result.map_err(|error| ProcessError::Worker(Box::new(error)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_worker_has_its_own_metrics_port() {
        let mut ports: Vec<u16> = WorkerKind::ALL.iter().map(|k| k.metrics_port()).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), WorkerKind::ALL.len());
        for kind in WorkerKind::ALL {
            assert_eq!(kind.binary(), format!("slipway-{}", kind.name()));
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("failed")]
    struct Failed;

    #[tokio::test(start_paused = true)]
    async fn a_worker_that_does_not_stop_after_the_signal_is_cut_off_after_the_bound() {
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let stuck = std::future::pending::<Result<(), Failed>>();
        let error = run_bounded(stuck, &shutdown, Duration::from_secs(35))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ProcessError::ShutdownTimeout { after } if after == Duration::from_secs(35)),
            "{error}"
        );

        let draining = async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Err::<(), _>(Failed)
        };
        let error = run_bounded(draining, &shutdown, Duration::from_secs(35))
            .await
            .unwrap_err();
        assert!(matches!(error, ProcessError::Worker(_)), "{error}");
    }

    #[tokio::test]
    async fn a_worker_that_returns_before_the_signal_is_not_bounded() {
        let shutdown = CancellationToken::new();
        run_bounded(async { Ok::<(), Failed>(()) }, &shutdown, Duration::ZERO)
            .await
            .unwrap();
    }
}

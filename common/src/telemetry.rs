//! Logs, metrics and the typed telemetry events that write both at once.
//!
//! Logs go through `tracing` (JSON when stdout is not a terminal). Metrics live in one process-wide
//! prometheus registry, served as text on `/metrics`. Code reports what happened through the
//! events in [`events`]: each writes one structured log line and updates one metric, with label
//! values from small closed sets (never job ids or image names): enums with `as_str`, like
//! [`events::JobOutcome`] and the `worker` label, [`WorkerLabel`] (a worker type, or a stage of a
//! test topology named at compile time), never a runtime string.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::LazyLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub use crate::worker::WorkerLabel;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// The journal's native protocol when systemd gives stdout or stderr to the journal
    /// (`JOURNAL_STREAM`), else JSON unless stdout is a terminal.
    #[default]
    Auto,
    /// systemd's journal (native protocol: priority and fields per line, see
    /// [`crate::journal`]); JSON on stdout when no journal listens.
    Journald,
    /// One JSON object per line (journald, log shippers).
    Json,
    /// Human-readable text.
    Text,
}

/// The `[telemetry]` section every binary's config has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// Log line format.
    pub log_format: LogFormat,
    /// `tracing` filter, e.g. `info` or `slipway_broker=debug,info`; `RUST_LOG` wins when set.
    pub log_filter: String,
    /// Address of the `/metrics` endpoint, `host:port`; the empty string (`metrics_addr = ""`,
    /// `SLIPWAY_TELEMETRY__METRICS_ADDR=`) turns metrics off. Each worker has its own default
    /// port (see [`crate::worker::WorkerKind::metrics_port`]).
    #[serde(with = "metrics_addr")]
    pub metrics_addr: Option<SocketAddr>,
}

impl TelemetrySettings {
    /// Logs at `info`, `/metrics` on `127.0.0.1:<port>`: a worker's default.
    pub fn with_metrics_port(port: u16) -> Self {
        Self {
            metrics_addr: Some(SocketAddr::from(([127, 0, 0, 1], port))),
            ..Self::default()
        }
    }
}

/// Logs at `info`, metrics off: a worker's configuration sets its own port with
/// [`TelemetrySettings::with_metrics_port`].
impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Auto,
            log_filter: "info".to_owned(),
            metrics_addr: None,
        }
    }
}

/// `metrics_addr` as TOML and environment variables can say it: `"host:port"`, or `""` for none
/// (TOML has no null).
mod metrics_addr {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        addr: &Option<SocketAddr>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match addr {
            Some(addr) => serializer.collect_str(addr),
            None => serializer.serialize_str(""),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SocketAddr>, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|error| {
            serde::de::Error::custom(format!(
                "telemetry.metrics_addr: expected host:port such as 127.0.0.1:9464, or \"\" for \
                 no metrics; found {text:?} ({error})"
            ))
        })
    }
}

/// Telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The log filter does not parse.
    #[error("log filter {filter:?} is invalid: {source}")]
    Filter {
        /// The filter as configured.
        filter: String,
        /// The parse error.
        source: tracing_subscriber::filter::ParseError,
    },
    /// The metrics address cannot be bound.
    #[error("cannot serve metrics on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The SIGTERM/SIGINT handlers cannot be installed.
    #[error("cannot listen for termination signals: {0}")]
    Signals(std::io::Error),
}

/// What every worker binary does before its work: install logging, listen for SIGTERM/SIGINT and
/// serve `/metrics` when an address is configured. Returns the shutdown token to hand to the
/// worker. Worker binaries reach it through [`crate::process::WorkerProcess`].
pub async fn start_process(
    settings: &TelemetrySettings,
) -> Result<CancellationToken, TelemetryError> {
    init_logging(settings)?;
    let shutdown = crate::shutdown::on_termination_signals().map_err(TelemetryError::Signals)?;
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            shutdown.cancelled().await;
            crate::service::stopping();
        }
    });
    if let Some(addr) = settings.metrics_addr {
        serve_metrics(addr, shutdown.clone()).await?;
    }
    Ok(shutdown)
}

/// Install the global `tracing` subscriber. A second call (tests) leaves the first one in place.
pub fn init_logging(settings: &TelemetrySettings) -> Result<(), TelemetryError> {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(from_env) if !from_env.is_empty() => from_env,
        _ => settings.log_filter.clone(),
    };
    let env_filter = EnvFilter::try_new(&filter).map_err(|source| TelemetryError::Filter {
        filter: filter.clone(),
        source,
    })?;
    let wants_journal = match settings.log_format {
        LogFormat::Journald => true,
        LogFormat::Auto => crate::journal::stream_is_journal(),
        LogFormat::Json | LogFormat::Text => false,
    };
    let mut journal_missing = None;
    if wants_journal {
        match crate::journal::JournalLayer::new(&program_name()) {
            Ok(layer) => {
                use tracing_subscriber::layer::SubscriberExt as _;
                use tracing_subscriber::util::SubscriberInitExt as _;
                let _already_installed = tracing_subscriber::registry()
                    .with(env_filter)
                    .with(layer)
                    .try_init();
                return Ok(());
            }
            Err(error) => journal_missing = Some(error),
        }
    }
    let json = match settings.log_format {
        LogFormat::Json | LogFormat::Journald => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(env_filter);
    let _already_installed = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        // Colours for a terminal only: a log file or a pipe gets plain text.
        builder
            .with_ansi(std::io::stdout().is_terminal())
            .try_init()
    };
    if let Some(error) = journal_missing {
        tracing::warn!(%error, socket = crate::journal::JOURNAL_SOCKET, "no journal to log to; logging JSON on stdout");
    }
    Ok(())
}

/// `tokio::task::spawn_blocking` that keeps the caller's span (a job's, with its `job_id`) on
/// every line the closure logs; a plain `spawn_blocking` starts with no span. Async tasks keep it
/// with `tokio::spawn(future.instrument(tracing::Span::current()))`.
pub fn spawn_blocking_in_span<F, R>(work: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
}

/// The process-wide metrics registry; worker-specific metrics register here too. It starts with
/// the standard `process_*` series (CPU seconds, resident and virtual memory, open and maximum
/// file descriptors, start time) and `slipway_build_info`.
pub fn registry() -> &'static Registry {
    static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
        let registry = Registry::new();
        let _ = registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        if let Ok(info) = build_info() {
            let _ = registry.register(Box::new(info));
        }
        let _ = registry.register(Box::new(crate::service::connected_gauge()));
        registry
    });
    &REGISTRY
}

/// The commit this binary was built from: `SLIPWAY_COMMIT` at compile time (set by packaging and
/// release builds), else `unknown`.
pub const COMMIT: &str = match option_env!("SLIPWAY_COMMIT") {
    Some(commit) => commit,
    None => "unknown",
};

/// This binary's file name (`slipway-lint`), or `slipway` when it cannot be told.
fn program_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "slipway".to_owned())
}

/// `slipway_build_info{program, version, commit} 1`: which release runs where.
fn build_info() -> prometheus::Result<prometheus::IntGauge> {
    let program = program_name();
    let gauge = prometheus::IntGauge::with_opts(
        Opts::new(
            "slipway_build_info",
            "Always 1; its labels say which program, version and commit this process runs.",
        )
        .const_label("program", program)
        .const_label("version", env!("CARGO_PKG_VERSION"))
        .const_label("commit", COMMIT),
    )?;
    gauge.set(1);
    Ok(gauge)
}

/// Register a collector in [`registry`], returning it.
///
/// # Panics
/// When a metric of the same name is registered twice: a programming error caught by any test
/// that touches the metric.
pub fn register<C: prometheus::core::Collector + Clone + 'static>(collector: C) -> C {
    registry()
        .register(Box::new(collector.clone()))
        .expect("each metric is registered once");
    collector
}

/// `slipway_leader{worker="<worker>"}`, registered: 1 while this instance runs the scheduling
/// loop of its worker type (it holds the lease of `slipway_broker::LeaderElection`), else 0. Each
/// worker type that elects a leader keeps one in a `LazyLock`.
pub fn leader_gauge(worker: &'static str) -> prometheus::IntGauge {
    register(
        prometheus::IntGauge::with_opts(
            Opts::new(
                "slipway_leader",
                "1 while this instance runs the scheduling loop of its worker type, else 0.",
            )
            .const_label("worker", worker),
        )
        .expect("valid metric"),
    )
}

/// The metrics every worker exports (GUIDE §4).
#[derive(Debug)]
pub struct CoreMetrics {
    /// `slipway_jobs_total{worker,outcome}`.
    pub jobs_total: IntCounterVec,
    /// `slipway_job_duration_seconds{worker,outcome}`.
    pub job_duration_seconds: HistogramVec,
    /// `slipway_jobs_in_flight{worker}`.
    pub jobs_in_flight: IntGaugeVec,
    /// `slipway_broker_reconnects_total{worker}`.
    pub broker_reconnects_total: IntCounterVec,
}

/// The core metrics, registered on first use.
pub fn core_metrics() -> &'static CoreMetrics {
    static CORE: LazyLock<CoreMetrics> = LazyLock::new(|| CoreMetrics {
        jobs_total: register(
            IntCounterVec::new(
                Opts::new(
                    "slipway_jobs_total",
                    "Jobs finished, by worker and outcome.",
                ),
                &["worker", "outcome"],
            )
            .expect("valid metric"),
        ),
        job_duration_seconds: register(
            HistogramVec::new(
                HistogramOpts::new(
                    "slipway_job_duration_seconds",
                    "Time from delivery to settlement of a job, by worker and outcome.",
                )
                .buckets(vec![
                    0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0,
                ]),
                &["worker", "outcome"],
            )
            .expect("valid metric"),
        ),
        jobs_in_flight: register(
            IntGaugeVec::new(
                Opts::new("slipway_jobs_in_flight", "Jobs being handled right now."),
                &["worker"],
            )
            .expect("valid metric"),
        ),
        broker_reconnects_total: register(
            IntCounterVec::new(
                Opts::new(
                    "slipway_broker_reconnects_total",
                    "Connections to the broker re-established after a loss.",
                ),
                &["worker"],
            )
            .expect("valid metric"),
        ),
    });
    &CORE
}

/// Render the registry in the prometheus text format.
pub fn render_metrics() -> String {
    let mut buffer = Vec::new();
    // Encoding into a Vec cannot fail for well-formed metric families.
    let _ = TextEncoder::new().encode(&registry().gather(), &mut buffer);
    String::from_utf8(buffer).unwrap_or_default()
}

/// A running `/metrics` endpoint.
#[derive(Debug)]
pub struct MetricsServer {
    /// The bound address (useful when port 0 was configured).
    pub local_addr: SocketAddr,
    /// Ends when the shutdown token is cancelled.
    pub task: tokio::task::JoinHandle<()>,
}

/// Serve `GET /metrics` and `GET /healthz` (200 or 503, see [`crate::service::health`]) on
/// `addr` until `shutdown` is cancelled.
pub async fn serve_metrics(
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> Result<MetricsServer, TelemetryError> {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper::{Response, StatusCode};

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| TelemetryError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| TelemetryError::Bind { addr, source })?;
    core_metrics();
    let task = tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                () = shutdown.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        tracing::warn!(%error, "metrics endpoint: accept failed");
                        continue;
                    }
                },
            };
            let service = hyper::service::service_fn(|request: hyper::Request<_>| async move {
                let response = match request.uri().path() {
                    "/metrics" => Response::builder()
                        .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                        .body(Full::new(Bytes::from(render_metrics()))),
                    "/healthz" => {
                        let health = crate::service::health();
                        let status = if health.healthy {
                            StatusCode::OK
                        } else {
                            StatusCode::SERVICE_UNAVAILABLE
                        };
                        let mut body = serde_json::to_vec(&health).unwrap_or_default();
                        body.push(b'\n');
                        Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(body)))
                    }
                    _ => Response::builder()
                        .status(StatusCode::NOT_FOUND)
                        .body(Full::new(Bytes::from_static(
                            b"only /metrics and /healthz are served here\n",
                        ))),
                };
                Ok::<_, hyper::http::Error>(response.unwrap_or_default())
            });
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    Ok(MetricsServer { local_addr, task })
}

/// Typed telemetry events: one log line and one metric update each.
pub mod events {
    use std::time::Duration;

    use super::core_metrics;
    use crate::envelope::JobId;
    use crate::worker::WorkerLabel;

    /// How a job's delivery was settled. The label values of `slipway_jobs_total{outcome}`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum JobOutcome {
        /// Handled; its events are confirmed and the delivery acked.
        Acked,
        /// Sent to a delay queue to try again later.
        Retried,
        /// Rejected by the handler, or out of retries: now in the dead-letter queue.
        DeadLettered,
        /// Not a valid envelope: now in the dead-letter queue.
        Undecodable,
        /// Left unsettled (connection lost or shutdown): the broker will redeliver it.
        Abandoned,
    }

    impl JobOutcome {
        /// Every outcome.
        pub const ALL: [JobOutcome; 5] = [
            JobOutcome::Acked,
            JobOutcome::Retried,
            JobOutcome::DeadLettered,
            JobOutcome::Undecodable,
            JobOutcome::Abandoned,
        ];

        /// The metric label value.
        pub fn as_str(self) -> &'static str {
            match self {
                JobOutcome::Acked => "acked",
                JobOutcome::Retried => "retried",
                JobOutcome::DeadLettered => "dead_lettered",
                JobOutcome::Undecodable => "undecodable",
                JobOutcome::Abandoned => "abandoned",
            }
        }
    }

    /// A worker starts: export every series of its core metrics at zero, so dashboards and
    /// `rate()` see them before the first job (prometheus omits label sets never touched).
    pub fn worker_started(worker: WorkerLabel) {
        let worker = worker.as_str();
        let metrics = core_metrics();
        for outcome in JobOutcome::ALL {
            metrics
                .jobs_total
                .with_label_values(&[worker, outcome.as_str()]);
            metrics
                .job_duration_seconds
                .with_label_values(&[worker, outcome.as_str()]);
        }
        metrics.jobs_in_flight.with_label_values(&[worker]);
        metrics.broker_reconnects_total.with_label_values(&[worker]);
    }

    /// A job was taken from the queue; dropping the returned guard marks it no longer in flight.
    #[derive(Debug)]
    pub struct InFlight {
        worker: WorkerLabel,
    }

    /// Mark a job of `worker` as started.
    pub fn job_started(worker: WorkerLabel) -> InFlight {
        core_metrics()
            .jobs_in_flight
            .with_label_values(&[worker.as_str()])
            .inc();
        InFlight { worker }
    }

    impl Drop for InFlight {
        fn drop(&mut self) {
            core_metrics()
                .jobs_in_flight
                .with_label_values(&[self.worker.as_str()])
                .dec();
        }
    }

    /// A job was settled.
    #[derive(Debug)]
    pub struct JobFinished<'a> {
        /// The worker type.
        pub worker: WorkerLabel,
        /// The job, when the message could be decoded.
        pub job_id: Option<JobId>,
        /// The routing key it arrived with.
        pub routing_key: &'a str,
        /// How it was settled.
        pub outcome: JobOutcome,
        /// Retries before this delivery.
        pub attempt: u32,
        /// Time from delivery to settlement.
        pub duration: Duration,
        /// Why, for anything but `Acked`.
        pub reason: Option<&'a str>,
    }

    impl JobFinished<'_> {
        /// Log it and count it.
        pub fn emit(&self) {
            let outcome = self.outcome.as_str();
            let worker = self.worker.as_str();
            let job_id = self.job_id.map(|id| id.to_string());
            let job_id = job_id.as_deref().unwrap_or("-");
            let seconds = self.duration.as_secs_f64();
            let reason = self.reason.unwrap_or("");
            match self.outcome {
                JobOutcome::Acked => tracing::info!(
                    worker,
                    job_id,
                    routing_key = self.routing_key,
                    outcome,
                    attempt = self.attempt,
                    seconds,
                    "job done"
                ),
                JobOutcome::Retried | JobOutcome::Abandoned => tracing::warn!(
                    worker,
                    job_id,
                    routing_key = self.routing_key,
                    outcome,
                    attempt = self.attempt,
                    seconds,
                    reason,
                    "job will run again"
                ),
                JobOutcome::DeadLettered | JobOutcome::Undecodable => tracing::error!(
                    worker,
                    job_id,
                    routing_key = self.routing_key,
                    outcome,
                    attempt = self.attempt,
                    seconds,
                    reason,
                    "job dead-lettered"
                ),
            }
            let metrics = core_metrics();
            metrics
                .jobs_total
                .with_label_values(&[worker, outcome])
                .inc();
            metrics
                .job_duration_seconds
                .with_label_values(&[worker, outcome])
                .observe(seconds);
        }
    }

    /// The connection to the broker was lost and re-established.
    pub fn broker_reconnected(worker: WorkerLabel, lost_because: &str) {
        let worker = worker.as_str();
        tracing::warn!(worker, lost_because, "reconnected to the broker");
        core_metrics()
            .broker_reconnects_total
            .with_label_values(&[worker])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::events::{JobFinished, JobOutcome, job_started};
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[derive(Debug, Default, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct WithTelemetry {
        telemetry: TelemetrySettings,
    }

    fn load_with(vars: &[(&str, &str)]) -> Result<WithTelemetry, crate::config::ConfigError> {
        let mut sources =
            crate::config::ConfigSources::for_worker("none").with_env(vars.iter().copied());
        sources.file = std::path::PathBuf::from("/nonexistent/telemetry.toml");
        crate::config::load(&sources)
    }

    #[test]
    fn an_empty_metrics_address_turns_metrics_off() {
        let on = load_with(&[("SLIPWAY_TELEMETRY__METRICS_ADDR", "127.0.0.1:9999")]).unwrap();
        assert_eq!(
            on.telemetry.metrics_addr,
            Some(SocketAddr::from(([127, 0, 0, 1], 9999)))
        );
        let off = load_with(&[("SLIPWAY_TELEMETRY__METRICS_ADDR", "")]).unwrap();
        assert_eq!(off.telemetry.metrics_addr, None);
        let printed = crate::config::to_toml(&off).unwrap();
        assert!(printed.contains("metrics_addr = \"\""), "{printed}");
        let error = load_with(&[("SLIPWAY_TELEMETRY__METRICS_ADDR", "nine")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("metrics_addr"), "{error}");
    }

    #[tokio::test]
    async fn metrics_endpoint_serves_core_metric_names() {
        let shutdown = CancellationToken::new();
        let server = serve_metrics(SocketAddr::from(([127, 0, 0, 1], 0)), shutdown.clone())
            .await
            .unwrap();
        {
            let _in_flight = job_started(WorkerLabel::Stage("telemetry-test"));
            JobFinished {
                worker: WorkerLabel::Stage("telemetry-test"),
                job_id: None,
                routing_key: "build.requested",
                outcome: JobOutcome::Acked,
                attempt: 0,
                duration: std::time::Duration::from_millis(12),
                reason: None,
            }
            .emit();
        }
        events::broker_reconnected(WorkerLabel::Stage("telemetry-test"), "test");
        events::worker_started(WorkerLabel::Worker(crate::worker::WorkerKind::Notify));

        let mut stream = tokio::net::TcpStream::connect(server.local_addr)
            .await
            .unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        for line in [
            r#"slipway_jobs_total{outcome="acked",worker="telemetry-test"} 1"#,
            r#"slipway_job_duration_seconds_count{outcome="acked",worker="telemetry-test"} 1"#,
            r#"slipway_jobs_in_flight{worker="telemetry-test"} 0"#,
            r#"slipway_broker_reconnects_total{worker="telemetry-test"} 1"#,
            r#"slipway_jobs_total{outcome="dead_lettered",worker="notify"} 0"#,
            r#"slipway_broker_reconnects_total{worker="notify"} 0"#,
        ] {
            assert!(response.contains(line), "missing {line} in\n{response}");
        }
        shutdown.cancel();
        server.task.await.unwrap();
    }
}

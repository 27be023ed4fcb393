//! The one shared helper of Slipway's integration tests: it makes sure a real RabbitMQ is running,
//! gives each test its own namespace (exchange and queues), runs test workers, records effects
//! idempotently, and waits on events with deadlines (never fixed sleeps). Its modules make test
//! fixtures: git repositories (`git`), temporary directories (`scratch`), language-package
//! installations (`installs`), package repositories and a file server to serve them (`repos`),
//! signed forge pushes (`webhook`), worker binaries as child processes (`fleet`), a real SMTP
//! server (`smtp`), with the external tools run through `tools`; Docker containers removed when
//! dropped (`container`) and the Debian packages with the image they are tried in (`deb`).

pub mod container;
pub mod deb;
pub mod fleet;
pub mod git;
pub mod installs;
pub mod repos;
pub mod scratch;
pub mod smtp;
pub mod ssh_agent;
pub mod systemd;
pub mod tools;
pub mod vhost;
pub mod webhook;

pub use scratch::TempDir;

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use slipway_broker::history::{HistoryEvent, HistoryQuery, HistoryReader};
use slipway_broker::streams::ReadFrom;
use slipway_broker::streams::reader::ReadOptions;
use slipway_broker::{
    BrokerConnection, BrokerError, BrokerSettings, Consumer, Handler, Publisher, Topology,
};
use slipway_common::message::test_support::{sample_commit, sample_messages};
use slipway_common::message::{BuildRequested, LintPassed};
use slipway_common::{Cause, Envelope, JobId, Message, index::test_support::sample_entry};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The broker the tests use (started by `deploy/dev-env.sh`, or by [`ensure_rabbitmq`]).
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Make sure RabbitMQ answers on 127.0.0.1:5672, starting it if it is installed but stopped.
///
/// # Panics
/// When RabbitMQ is not installed or does not start: run `bash deploy/dev-env.sh` first.
pub fn ensure_rabbitmq() {
    static STARTED: OnceLock<Result<(), String>> = OnceLock::new();
    let started = STARTED.get_or_init(|| {
        if std::net::TcpStream::connect(("127.0.0.1", 5672)).is_ok() {
            return Ok(());
        }
        let status = Command::new("rabbitmq-server")
            .arg("-detached")
            .status()
            .map_err(|e| {
                format!("cannot run rabbitmq-server ({e}); run `bash deploy/dev-env.sh`")
            })?;
        if !status.success() {
            return Err(format!("rabbitmq-server -detached exited with {status}"));
        }
        rabbitmqctl(&["await_startup", "--timeout", "120"]).map(drop)
    });
    if let Err(reason) = started {
        panic!("RabbitMQ is not available: {reason}");
    }
}

/// The Docker daemon's socket the tests use (dockerd started by `deploy/dev-env.sh`).
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// The local registry (Distribution, HTTP, no auth) the tests push to.
pub const REGISTRY: &str = "127.0.0.1:5000";

/// The local base image the tests build from (nothing can be pulled).
pub const BASE_IMAGE: &str = "slipway/debian:bookworm";

/// The socket `deploy/docker26.sh` serves the newer Docker daemon (trixie's 26.1.5) on.
pub const DOCKER26_SOCKET: &str = "/run/slipway-docker26/docker.sock";

/// Points this process at the Docker 26 daemon (`DOCKER_HOST`) and returns `true`; `false`
/// (after printing that the test is skipped) when its socket is absent.
///
/// Call it first thing in the only test of its binary: it sets `DOCKER_HOST` for every thread.
///
/// # Panics
/// When the socket is absent and `SLIPWAY_REQUIRE_DOCKER26=1` (set by `.ci/run`, which starts the
/// daemon).
pub fn use_docker26() -> bool {
    if !std::path::Path::new(DOCKER26_SOCKET).exists() {
        assert!(
            std::env::var("SLIPWAY_REQUIRE_DOCKER26").as_deref() != Ok("1"),
            "{DOCKER26_SOCKET} is absent and SLIPWAY_REQUIRE_DOCKER26=1: run deploy/docker26.sh"
        );
        eprintln!(
            "skipped: {DOCKER26_SOCKET} is absent (deploy/docker26.sh starts a Docker 26 daemon)"
        );
        return false;
    }
    // SAFETY: called by the only test of its binary, before it starts any thread that reads the
    // environment.
    unsafe { std::env::set_var("DOCKER_HOST", format!("unix://{DOCKER26_SOCKET}")) };
    true
}

/// A tar archive of `files` (path, contents), each a regular file with mode 0644 and mtime 0.
pub fn tar_archive(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, contents) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, path, *contents)
            .expect("append to the tar");
    }
    builder.into_inner().expect("finish the tar")
}

/// A name unique to this test process and call: `<what>-<pid>-<n>-<nanos>`.
pub fn unique_name(what: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{what}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Make sure dockerd answers on [`DOCKER_SOCKET`], the registry on [`REGISTRY`] and
/// [`BASE_IMAGE`] exists, running `deploy/dev-env.sh` (idempotent) when any of them is missing.
///
/// # Panics
/// When they are still missing afterwards: run `bash deploy/dev-env.sh` as root and read its log.
pub fn ensure_docker() {
    static STARTED: OnceLock<Result<(), String>> = OnceLock::new();
    let started = STARTED.get_or_init(|| {
        if docker_environment_ready().is_ok() {
            return Ok(());
        }
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/dev-env.sh");
        let output = Command::new("bash")
            .arg(&script)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !output.status.success() {
            return Err(format!(
                "{} exited with {}: {}{}",
                script.display(),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        docker_environment_ready()
    });
    if let Err(reason) = started {
        panic!("Docker is not available: {reason}");
    }
}

/// Whether the daemon, the registry and the base image are there; the error says which is not.
fn docker_environment_ready() -> Result<(), String> {
    let ping = docker_get("/_ping")?;
    if ping != 200 {
        return Err(format!(
            "GET /_ping on {DOCKER_SOCKET}: expected 200, found {ping}"
        ));
    }
    let image = docker_get(&format!("/images/{BASE_IMAGE}/json"))?;
    if image != 200 {
        return Err(format!(
            "expected the base image {BASE_IMAGE}, the daemon answered {image}"
        ));
    }
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], 5000)),
        Duration::from_secs(2),
    )
    .map_err(|e| format!("expected the registry on {REGISTRY}: {e}"))?;
    Ok(())
}

/// The HTTP status of `GET path` on the Docker socket (HTTP/1.0, so the daemon closes when done).
fn docker_get(path: &str) -> Result<u16, String> {
    use std::io::{Read, Write};
    let mut socket = std::os::unix::net::UnixStream::connect(DOCKER_SOCKET)
        .map_err(|e| format!("cannot connect to {DOCKER_SOCKET}: {e}"))?;
    let limit = Some(Duration::from_secs(5));
    socket.set_read_timeout(limit).map_err(|e| e.to_string())?;
    socket.set_write_timeout(limit).map_err(|e| e.to_string())?;
    write!(socket, "GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n")
        .map_err(|e| format!("cannot write to {DOCKER_SOCKET}: {e}"))?;
    let mut head = [0u8; 12];
    socket
        .read_exact(&mut head)
        .map_err(|e| format!("no answer on {DOCKER_SOCKET}: {e}"))?;
    std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            format!(
                "expected an HTTP status line, found {:?}",
                String::from_utf8_lossy(&head)
            )
        })
}

/// Run the docker CLI (classic builder), with `stdin` fed to it when given; its stdout, or a panic
/// naming the command and its stderr.
pub fn docker(args: &[&str], stdin: Option<&str>) -> String {
    try_docker(args, stdin).unwrap_or_else(|failure| panic!("docker {args:?} failed {failure}"))
}

/// Run the docker CLI (classic builder), with `stdin` fed to it when given: its stdout, or, when
/// it exits unsuccessfully, its exit status, stdout and stderr (for tests that expect failures).
/// Panics only when the CLI cannot be run at all.
pub fn try_docker(args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = Command::new("docker")
        .args(args)
        .env("DOCKER_BUILDKIT", "0")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run docker {args:?}: {e}"));
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .expect("write docker's stdin");
    }
    let output = child.wait_with_output().expect("wait for docker");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "with {}: {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Run `rabbitmqctl` with `args`, returning its stdout.
pub fn rabbitmqctl(args: &[&str]) -> Result<String, String> {
    let output = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run rabbitmqctl: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "rabbitmqctl {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Close every broker connection whose client-provided name is `name`; returns how many.
pub fn close_connections_named(name: &str) -> Result<usize, String> {
    // RabbitMQ 3.10 has no user_provided_name column: the name is in the client properties,
    // printed as `{"connection_name","<name>"}`.
    let listing = rabbitmqctl(&[
        "list_connections",
        "-q",
        "--no-table-headers",
        "pid",
        "client_properties",
    ])?;
    let needle = format!("\"{name}\"");
    let mut closed = 0;
    for line in listing.lines() {
        if let Some((pid, properties)) = line.split_once('\t')
            && properties.contains(&needle)
        {
            rabbitmqctl(&["close_connection", pid.trim(), "closed by a Slipway test"])?;
            closed += 1;
        }
    }
    Ok(closed)
}

/// Broker settings for a test: its own namespace, short retry delays, quick reconnects.
pub fn test_settings(test: &str) -> BrokerSettings {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    BrokerSettings {
        url: AMQP_URL.into(),
        namespace: format!("test.{test}.{}.{n}", std::process::id()),
        retry_delays_ms: vec![200, 400, 800],
        max_retries: 3,
        max_reconnect_delay_ms: 1_000,
        drain_timeout_ms: 10_000,
        ..BrokerSettings::default()
    }
}

/// The two-stage chain of the delivery tests: `first` takes `build.requested` and emits
/// `lint.passed`; `second` takes `lint.passed` and records the effect.
pub fn chain_topology(settings: &BrokerSettings) -> Topology {
    Topology::new(settings)
        .with_worker("first", [slipway_common::Kind::BuildRequested])
        .with_worker("second", [slipway_common::Kind::LintPassed])
}

/// A test's own corner of the broker.
pub struct TestBus {
    /// Its settings (unique namespace).
    pub settings: BrokerSettings,
    /// Its queues.
    pub topology: Topology,
    connection: BrokerConnection,
    /// A confirm-mode publisher on the test's own connection.
    pub publisher: Publisher,
}

impl TestBus {
    /// Start RabbitMQ if needed, connect, and declare the topology.
    pub async fn start(settings: BrokerSettings, topology: Topology) -> Self {
        ensure_rabbitmq();
        let connection = BrokerConnection::connect(&settings, "slipway-test-driver")
            .await
            .expect("connect to the test broker");
        let channel = connection.channel().await.expect("channel");
        topology.declare(&channel).await.expect("declare topology");
        let publisher = Publisher::open(&connection, &topology)
            .await
            .expect("publisher");
        Self {
            settings,
            topology,
            connection,
            publisher,
        }
    }

    /// The test's connection, for inspection.
    pub fn connection(&self) -> &BrokerConnection {
        &self.connection
    }

    /// Run `handler` as `worker` in this process until stopped.
    pub fn spawn_worker<H: Handler>(&self, worker: &'static str, handler: H) -> RunningWorker {
        self.spawn_named_worker(
            worker,
            &format!("{}-{worker}", self.settings.namespace),
            handler,
        )
    }

    /// Runs `worker` as an observer: it acks every job without events and sends its envelope
    /// to `events` (several observers may share one sender).
    pub fn spawn_observer(
        &self,
        worker: &'static str,
        events: tokio::sync::mpsc::UnboundedSender<Envelope>,
    ) -> RunningWorker {
        self.spawn_worker(worker, move |job: slipway_broker::Job| {
            let events = events.clone();
            async move {
                let _ = events.send(job.envelope);
                slipway_broker::Outcome::Ack(Vec::new())
            }
        })
    }

    /// Like [`spawn_worker`](Self::spawn_worker), with the connection named `connection_name`.
    pub fn spawn_named_worker<H: Handler>(
        &self,
        worker: &'static str,
        connection_name: &str,
        handler: H,
    ) -> RunningWorker {
        let shutdown = CancellationToken::new();
        let consumer = Consumer::new(
            slipway_common::telemetry::WorkerLabel::Stage(worker),
            self.settings.clone(),
            self.topology.clone(),
            handler,
        )
        .with_connection_name(connection_name);
        let task = tokio::spawn(consumer.run(shutdown.clone()));
        RunningWorker { shutdown, task }
    }

    /// Publish `count` new `build.requested` jobs; returns their job ids.
    pub async fn publish_jobs(&self, count: usize) -> Vec<JobId> {
        let jobs: Vec<Envelope> = (0..count).map(|_| build_requested()).collect();
        for batch in jobs.chunks(100) {
            self.publisher
                .publish_all(batch)
                .await
                .expect("publish jobs");
        }
        jobs.iter().map(|job| job.job_id).collect()
    }

    /// Ready messages per queue.
    pub async fn depths(&self) -> HashMap<String, u32> {
        slipway_broker::inspect::queue_depths(&self.connection, &self.topology)
            .await
            .expect("queue depths")
            .into_iter()
            .collect()
    }

    /// Take everything from the dead-letter queue.
    pub async fn take_dead_letters(&self) -> Vec<slipway_broker::inspect::DeadLetter> {
        slipway_broker::inspect::take_dead_letters(&self.connection, &self.topology, 10_000)
            .await
            .expect("take dead letters")
    }

    /// Take dead letters until there are `count`, or fail after `deadline`.
    pub async fn wait_for_dead_letters(
        &self,
        count: usize,
        deadline: Duration,
    ) -> Vec<slipway_broker::inspect::DeadLetter> {
        let started = Instant::now();
        let mut letters = Vec::new();
        loop {
            letters.extend(self.take_dead_letters().await);
            if letters.len() >= count {
                return letters;
            }
            assert!(
                started.elapsed() < deadline,
                "only {} of {count} dead letters after {deadline:?}",
                letters.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every event of the test's history stream that `query` keeps, from the stream's start to its
    /// end (the topology must record a history: [`Topology::pipeline`]).
    pub async fn history(&self, query: HistoryQuery) -> Vec<HistoryEvent> {
        let stream = self
            .topology
            .history_stream()
            .expect("the test's topology records a history");
        let options = ReadOptions {
            from: ReadFrom::First,
            deadline: Some(Duration::from_secs(60)),
            ..ReadOptions::default()
        };
        HistoryReader::new(&self.connection, &stream)
            .read_to_end(query, &options)
            .await
            .expect("read the history")
    }

    /// The events of the history that `query` keeps, once there are at least `count` of them (an
    /// event a consumer has received may not be in the stream yet: its publisher's confirm waits
    /// for every queue), or a panic after `deadline`.
    pub async fn wait_for_history(
        &self,
        query: HistoryQuery,
        count: usize,
        deadline: Duration,
    ) -> Vec<HistoryEvent> {
        let started = Instant::now();
        loop {
            let events = self.history(query.clone()).await;
            if events.len() >= count {
                return events;
            }
            assert!(
                started.elapsed() < deadline,
                "only {} of {count} history events after {deadline:?}",
                events.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Delete the test's queues, streams and exchanges (on a fresh connection: the test may have
    /// restarted the broker under the old one).
    pub async fn cleanup(self) {
        self.connection.close().await;
        let connection = BrokerConnection::connect(&self.settings, "slipway-test-cleanup")
            .await
            .expect("connect for cleanup");
        slipway_broker::inspect::delete_topology(&connection, &self.topology)
            .await
            .expect("delete test topology");
        connection.close().await;
    }
}

/// A worker running in a task of the test process.
pub struct RunningWorker {
    /// Cancel to shut the worker down.
    pub shutdown: CancellationToken,
    task: JoinHandle<Result<(), BrokerError>>,
}

impl RunningWorker {
    /// Shut down, wait for the drain, and return the runner's result.
    pub async fn stop(self) -> Result<(), BrokerError> {
        self.shutdown.cancel();
        self.task.await.expect("worker task did not panic")
    }
}

/// A fresh `build.requested` job for the sample entry.
pub fn build_requested() -> Envelope {
    Envelope::new_job(
        Cause::User,
        Message::BuildRequested(BuildRequested {
            entry: sample_entry(),
            commit: None,
        }),
    )
}

/// The `lint.passed` event that follows `job`.
pub fn lint_passed_after(job: &Envelope) -> Envelope {
    job.follow_up(Message::LintPassed(LintPassed {
        entry: sample_entry(),
        commit: sample_commit(),
        findings: Vec::new(),
    }))
}

/// The event of `kind` that follows `job`, with the sample payload of that kind.
pub fn follow_up_of_kind(job: &Envelope, kind: slipway_common::Kind) -> Envelope {
    let message = sample_messages()
        .into_iter()
        .find(|message| message.kind() == kind)
        .expect("a sample message of every kind");
    job.follow_up(message)
}

/// Effects keyed by job id, applied at most once each (the idempotency key), with every delivery
/// counted, and a signal to wait on.
#[derive(Debug)]
pub struct EffectLog {
    state: Mutex<EffectState>,
    applied: watch::Sender<usize>,
}

#[derive(Debug, Default)]
struct EffectState {
    deliveries: HashMap<JobId, u32>,
    effects: HashMap<JobId, u32>,
}

impl Default for EffectLog {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            applied: watch::Sender::new(0),
        }
    }
}

impl EffectLog {
    /// Count a delivery of `job`, and apply its effect unless already applied. Returns whether
    /// the effect was applied now.
    pub fn deliver(&self, job: JobId) -> bool {
        let mut state = self.state.lock().expect("effect log lock");
        *state.deliveries.entry(job).or_default() += 1;
        let applied = state.effects.entry(job).or_default();
        if *applied > 0 {
            return false;
        }
        *applied += 1;
        let distinct = state.effects.len();
        drop(state);
        self.applied.send_replace(distinct);
        true
    }

    /// How many times each job's effect was applied.
    pub fn effects(&self) -> HashMap<JobId, u32> {
        self.state.lock().expect("effect log lock").effects.clone()
    }

    /// How many times each job was delivered to the recording handler.
    pub fn deliveries(&self) -> HashMap<JobId, u32> {
        self.state
            .lock()
            .expect("effect log lock")
            .deliveries
            .clone()
    }

    /// Wait until `count` distinct effects have been applied, or fail after `deadline`.
    pub async fn wait_for(&self, count: usize, deadline: Duration) -> Result<(), String> {
        let mut applied = self.applied.subscribe();
        let started = Instant::now();
        tokio::time::timeout(deadline, applied.wait_for(|&n| n >= count))
            .await
            .map(drop)
            .map_err(|_| {
                format!(
                    "only {} of {count} effects after {:?}",
                    *self.applied.borrow(),
                    started.elapsed()
                )
            })
    }
}

/// Wait until `condition` holds, checking every 50 ms, or fail after `deadline` with `what`.
/// For state only observable by asking (queue depths, the broker's connection list).
pub async fn eventually<F, Fut>(what: &str, deadline: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        assert!(
            started.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Current value of the series `series` (name and labels, as printed) in this process's metrics.
pub fn metric_value(series: &str) -> Option<f64> {
    slipway_common::telemetry::render_metrics()
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

/// The last stage of the test chain (`second`, consuming `lint.passed`): records each job's
/// effect in `effects` and acks.
pub fn recording_handler(
    effects: &std::sync::Arc<EffectLog>,
) -> impl Fn(slipway_broker::Job) -> std::future::Ready<slipway_broker::Outcome> + use<> {
    let effects = std::sync::Arc::clone(effects);
    move |job: slipway_broker::Job| {
        assert_eq!(job.envelope.kind(), slipway_common::Kind::LintPassed);
        effects.deliver(job.envelope.job_id);
        std::future::ready(slipway_broker::Outcome::Ack(Vec::new()))
    }
}

/// Log lines written through `tracing`, kept in memory: install
/// [`CapturedLogs::json_subscriber`] and read [`CapturedLogs::lines`].
#[derive(Clone, Default)]
pub struct CapturedLogs(std::sync::Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// A subscriber writing here what a worker writes to stdout in production: one JSON object per
    /// line, the event's fields flattened, the current span's fields under `span`.
    pub fn json_subscriber(&self) -> impl tracing::Subscriber + Send + Sync + use<> {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(move || writer.clone())
            .finish()
    }

    /// Every line written so far.
    pub fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut bytes) = self.0.lock() {
            bytes.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `(image, cause)` of each `build.requested` in `events`.
pub fn requests(events: &[HistoryEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e.envelope.kind() == slipway_common::Kind::BuildRequested)
        .map(|e| {
            (
                e.envelope
                    .message
                    .image()
                    .expect("a build request names its image")
                    .0
                    .to_string(),
                e.envelope.cause.to_string(),
            )
        })
        .collect()
}

/// A TCP port on 127.0.0.1 that nothing listened on a moment ago (bound, then released), for a
/// child process to listen on, or to find closed.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// `GET /metrics` on `127.0.0.1:port` once: the body, or `None` while nothing answers there.
pub fn scrape_metrics(port: u16) -> Option<String> {
    http_get(port, "/metrics").map(|(_, body)| body)
}

/// `GET path` on `127.0.0.1:port`: the status code and the body, if it answers within 5 s.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    Some((status, body.to_owned()))
}

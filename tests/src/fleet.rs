//! Worker binaries run as child processes against the test broker, as a fleet of instances on
//! one node: started with a namespace and settings through `SLIPWAY_*` variables, each with its
//! own `/metrics` port (to ask whether it leads), killed with SIGKILL (`kill -9`) when a test
//! says so or when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::AMQP_URL;

/// One worker process.
pub struct Instance {
    child: Child,
    /// The port of its `/metrics` endpoint on 127.0.0.1.
    pub metrics_port: u16,
}

impl Instance {
    /// Start `binary` on the test broker in `namespace`, with `settings` as extra environment
    /// variables (`SLIPWAY_SECTION__KEY`, value). Its output is discarded.
    pub fn start(binary: impl AsRef<Path>, namespace: &str, settings: &[(&str, String)]) -> Self {
        Self::start_logging(binary, namespace, settings, None)
    }

    /// [`Instance::start`], its JSON log lines (stdout) written to `log` when given.
    pub fn start_logging(
        binary: impl AsRef<Path>,
        namespace: &str,
        settings: &[(&str, String)],
        log: Option<&Path>,
    ) -> Self {
        let metrics_port = crate::free_port();
        let mut command = Command::new(binary.as_ref());
        command
            .env_remove(slipway_common::workspace::REQUIRE_SHARED_VAR)
            .env("SLIPWAY_BROKER__URL", AMQP_URL)
            .env("SLIPWAY_BROKER__NAMESPACE", namespace)
            .env("SLIPWAY_BROKER__MAX_RECONNECT_DELAY_MS", "1000")
            .env(
                "SLIPWAY_TELEMETRY__METRICS_ADDR",
                format!("127.0.0.1:{metrics_port}"),
            )
            .env("SLIPWAY_TELEMETRY__LOG_FORMAT", "json")
            .stdout(match log {
                Some(log) => Stdio::from(std::fs::File::create(log).expect("the log file")),
                None => Stdio::null(),
            })
            .stderr(Stdio::null());
        for (name, value) in settings {
            command.env(name, value);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.as_ref().display()));
        Instance {
            child,
            metrics_port,
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The value of the metric series `series` (`name{labels}` as exported), if it answers.
    pub fn metric(&self, series: &str) -> Option<f64> {
        crate::scrape_metrics(self.metrics_port)?
            .lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
    }

    /// Whether its `slipway_leader{worker="<worker>"}` gauge says it leads now.
    pub fn is_leader(&self, worker: &str) -> bool {
        crate::scrape_metrics(self.metrics_port).is_some_and(|metrics| {
            metrics.contains(&format!("slipway_leader{{worker=\"{worker}\"}} 1"))
        })
    }

    /// `GET path` on its metrics port: the status code and body, if it answers.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        crate::http_get(self.metrics_port, path)
    }

    /// SIGTERM, as systemd stops a unit, and its exit code once it exits (within `deadline`).
    ///
    /// # Panics
    /// When it is still running after `deadline`.
    pub fn terminate(mut self, deadline: std::time::Duration) -> Option<i32> {
        let pid = i32::try_from(self.child.id()).expect("a pid");
        // SAFETY: kill(2) with a pid this test started and has not reaped; no memory is shared.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the instance") {
                return status.code();
            }
            assert!(
                started.elapsed() < deadline,
                "still running {deadline:?} after SIGTERM"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// `kill -9`, and reap it.
    pub fn kill(mut self) {
        self.child.kill().expect("kill -9 the instance");
        self.child.wait().expect("reap the instance");
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The one instance of `fleet` that leads as `worker`, if exactly one does.
pub fn leader(fleet: &[Instance], worker: &str) -> Option<usize> {
    let leading: Vec<usize> = (0..fleet.len())
        .filter(|&i| fleet[i].is_leader(worker))
        .collect();
    (leading.len() == 1).then(|| leading[0])
}

/// What worker `kind` needs besides the broker to start and run on this machine, as `SLIPWAY_*`
/// variables: its own directories under `work`, `file://` git URLs, ShellCheck off, the local
/// registry, the index repository at `index_url` (branch `main`) and an SMTP server on
/// 127.0.0.1:`smtp_port` (plain). Only the sections the worker has.
pub fn worker_settings(
    kind: slipway_common::worker::WorkerKind,
    work: &Path,
    index_url: &str,
    smtp_port: u16,
) -> Vec<(&'static str, String)> {
    use slipway_common::worker::WorkerKind;
    let dir = |name: &str| work.join(kind.name()).join(name).display().to_string();
    let source = [
        ("SLIPWAY_SOURCE__ALLOW_FILE_URLS", "true".to_owned()),
        ("SLIPWAY_SOURCE__CACHE_DIR", dir("cache")),
    ];
    let own = match kind {
        WorkerKind::Lint => vec![("SLIPWAY_LINT__SHELLCHECK", "never".to_owned())],
        WorkerKind::Build => vec![
            (
                "SLIPWAY_REGISTRY__URL",
                format!("http://{}", crate::REGISTRY),
            ),
            ("SLIPWAY_BUILD__WORK_DIR", dir("build")),
        ],
        WorkerKind::RepoTracker => vec![
            ("SLIPWAY_TRACKER__INDEX_URL", index_url.to_owned()),
            ("SLIPWAY_TRACKER__INDEX_BRANCH", "main".to_owned()),
        ],
        WorkerKind::Notify => vec![
            ("SLIPWAY_SMTP__HOST", "127.0.0.1".to_owned()),
            ("SLIPWAY_SMTP__PORT", smtp_port.to_string()),
            ("SLIPWAY_SMTP__SECURITY", "plain".to_owned()),
            ("SLIPWAY_SMTP__FROM", "slipway@localhost".to_owned()),
        ],
        WorkerKind::Scan | WorkerKind::RescanScheduler => Vec::new(),
    };
    let fetches_sources = matches!(
        kind,
        WorkerKind::Lint | WorkerKind::Build | WorkerKind::RepoTracker
    );
    if fetches_sources {
        [source.to_vec(), own].concat()
    } else {
        own
    }
}

/// Delete everything the pipeline has in the settings' namespace: its queues, exchanges, the
/// history, log and report streams and the lease queues.
pub async fn delete_namespace(settings: &slipway_broker::BrokerSettings) -> Result<(), String> {
    let connection = slipway_broker::BrokerConnection::connect(settings, "slipway-test-cleanup")
        .await
        .map_err(|e| e.to_string())?;
    let deleted = slipway_broker::inspect::delete_namespace(&connection, settings).await;
    connection.close().await;
    deleted.map_err(|e| e.to_string())
}

/// Deletes its namespace ([`delete_namespace`]) when dropped, whether the test passed or not;
/// declare it before the workers, so that they are gone first.
pub struct NamespaceGuard(pub slipway_broker::BrokerSettings);

impl Drop for NamespaceGuard {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        if let Err(error) = runtime.block_on(delete_namespace(&self.0)) {
            eprintln!("could not delete namespace {}: {error}", self.0.namespace);
        }
    }
}

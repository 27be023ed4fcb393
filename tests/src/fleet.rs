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
            .stdout(Stdio::null())
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

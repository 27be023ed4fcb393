//! Docker containers for tests: started detached with `docker run -d`, commands run in them with
//! `docker exec`, and removed (`docker rm -f`) when the guard is dropped, on panic too. Each is
//! labelled `slipway.test` (with its name), so that those of a killed test run can be found.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A running container, removed when dropped.
#[derive(Debug)]
pub struct Container {
    name: String,
}

impl Container {
    /// `docker run -d` with `args` (docker's options, then the image and its command), named
    /// `slipway-test-<name>-<pid>-<n>`.
    ///
    /// # Panics
    /// When docker cannot start it (the message has docker's output).
    pub fn run(name: &str, args: &[&str]) -> Container {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "slipway-test-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let label = format!("slipway.test={name}");
        // The guard exists before the container does: a run that fails half-way is removed too.
        let container = Container { name };
        let mut command = Command::new("docker");
        command
            .args(["run", "-d", "--name", &container.name, "--label", &label])
            .args(args);
        let output = command
            .output()
            .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
        assert!(
            output.status.success(),
            "{command:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        container
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `docker exec <container> sh -c <script>`, its whole output.
    ///
    /// # Panics
    /// When docker cannot be run at all.
    pub fn exec(&self, script: &str) -> Output {
        Command::new("docker")
            .args(["exec", &self.name, "sh", "-c", script])
            .output()
            .unwrap_or_else(|e| panic!("cannot run docker exec: {e}"))
    }

    /// [`exec`](Self::exec) with at most `limit` to finish (`timeout(1)` inside the container,
    /// which sends SIGTERM, then SIGKILL 5 s later).
    pub fn exec_within(&self, limit: Duration, script: &str) -> Output {
        let seconds = limit.as_secs().max(1).to_string();
        Command::new("docker")
            .args(["exec", &self.name, "timeout", "-k", "5", &seconds])
            .args(["sh", "-c", script])
            .output()
            .unwrap_or_else(|e| panic!("cannot run docker exec: {e}"))
    }

    /// `script` (`sh -c`), which must succeed: its stdout.
    ///
    /// # Panics
    /// When it fails; the message has its status, stdout and stderr.
    pub fn sh(&self, script: &str) -> String {
        let output = self.exec(script);
        assert!(
            output.status.success(),
            "in {}: `{script}` failed ({}):\n{}{}",
            self.name,
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Whether `script` (`sh -c`) succeeds: for `test -e` and the like.
    pub fn holds(&self, script: &str) -> bool {
        self.exec(script).status.success()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &self.name])
            .output();
    }
}

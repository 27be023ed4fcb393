//! The `slipway-build` binary killed with SIGKILL in the middle of a build: the job is redelivered
//! to a second worker process and completes exactly once, and no container of the killed build is
//! left behind. Real dockerd, registry and RabbitMQ, through the shared helper.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use slipway_broker::Topology;
use slipway_common::message::{CommitSha, LintPassed};
use slipway_common::{Cause, Envelope, Message};
use slipway_tests::git::LocalRepo;
use slipway_tests::{AMQP_URL, TempDir, TestBus, test_settings};
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(300);

/// A worker process, killed on drop.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_worker(namespace: &str, cache: &TempDir, work: &TempDir) -> Worker {
    Worker(
        Command::new(env!("CARGO_BIN_EXE_slipway-build"))
            // A test-run switch (`.ci/run` sets it), not configuration: the worker would refuse
            // it as an unknown `SLIPWAY_*` key.
            .env_remove(slipway_common::workspace::REQUIRE_SHARED_VAR)
            .env("SLIPWAY_BROKER__URL", AMQP_URL)
            .env("SLIPWAY_BROKER__NAMESPACE", namespace)
            .env("SLIPWAY_SOURCE__CACHE_DIR", cache.path())
            .env("SLIPWAY_SOURCE__ALLOW_FILE_URLS", "true")
            .env("SLIPWAY_BUILD__WORK_DIR", work.path())
            .env("SLIPWAY_BUILD__MIN_FREE_BYTES", "0")
            .env("SLIPWAY_BUILD__MIN_FREE_INODES", "0")
            .env("SLIPWAY_TELEMETRY__METRICS_ADDR", "127.0.0.1:0")
            .stdout(Stdio::null())
            .spawn()
            .expect("start slipway-build"),
    )
}

/// Commands of all containers (any state) mentioning `needle`.
fn containers_mentioning(needle: &str) -> Vec<String> {
    let output = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Status}} {{.Command}}",
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_build_loses_nothing_and_leaves_no_container() {
    slipway_tests::ensure_docker();
    let settings = test_settings("build-sigkill");
    let bus = TestBus::start(settings.clone(), Topology::pipeline(&settings)).await;
    let (tx, mut events) = mpsc::unbounded_channel();
    let observer = bus.spawn_observer("notify", tx);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let nonce = format!("slow-step-{}-{nanos}", std::process::id());
    let repo = LocalRepo::new("sigkill");
    let sha = repo.commit(
        &[(
            "Dockerfile",
            &format!("FROM slipway/debian:bookworm\nRUN sleep 4 && echo {nonce} > /done\n"),
        )],
        "slow",
    );
    let entry = repo.entry(&format!("sltest{}-sigkill", std::process::id()));
    let (cache, work) = (TempDir::new("sigkill-git"), TempDir::new("sigkill-work"));
    let mut first = start_worker(&settings.namespace, &cache, &work);
    let job = Envelope::new_job(
        Cause::User,
        Message::LintPassed(LintPassed {
            entry,
            commit: CommitSha::try_from(sha).expect("sha"),
            findings: Vec::new(),
        }),
    );
    bus.publisher.publish(&job).await.expect("publish");

    // Kill the worker while its build step runs.
    wait_until("the slow build step to run", || {
        containers_mentioning(&nonce)
            .iter()
            .any(|c| c.contains(" Up "))
    })
    .await;
    first.0.kill().expect("SIGKILL");
    first.0.wait().expect("reaped");
    drop(first);
    // The daemon cancels the abandoned build and removes its step container.
    wait_until("the killed build's container to go", || {
        containers_mentioning(&nonce).is_empty()
    })
    .await;

    // A successor picks the job up (redelivered) and completes it.
    let second = start_worker(&settings.namespace, &cache, &work);
    let outcome = tokio::time::timeout(DEADLINE, async {
        loop {
            let event = events.recv().await.expect("observer running");
            if event.job_id == job.job_id {
                return event.message;
            }
        }
    })
    .await
    .expect("an outcome before the deadline");
    let Message::BuildSucceeded(built) = outcome else {
        panic!("the redelivered job must succeed: {outcome:?}")
    };
    assert_eq!(built.digest.algorithm(), "sha256");

    // Stop the successor cleanly, then nothing else may arrive for this job.
    Command::new("kill")
        .args(["-TERM", &second.0.id().to_string()])
        .status()
        .expect("kill -TERM");
    let mut second = second;
    wait_until("the successor to exit", || {
        matches!(second.0.try_wait(), Ok(Some(_)))
    })
    .await;
    observer.stop().await.expect("observer stops");
    let mut duplicates = 0;
    while let Ok(event) = events.try_recv() {
        if event.job_id == job.job_id {
            duplicates += 1;
        }
    }
    assert_eq!(duplicates, 0, "the job completed exactly once");
    assert!(
        containers_mentioning(&nonce).is_empty(),
        "no container left behind"
    );
    // build.succeeded also went to the scan queue (nobody consumes it here): exactly one copy,
    // so it was published once.
    let depths = bus.depths().await;
    let depth = |queue: &str| {
        depths
            .get(&format!("{}.{queue}", settings.namespace))
            .copied()
    };
    assert_eq!(depth("build"), Some(0), "{depths:?}");
    assert_eq!(depth("scan"), Some(1), "{depths:?}");
    bus.cleanup().await;
}

//! The build worker test rig shared by the test targets of this crate: a `BuildHandler` on a
//! per-test namespace of the real broker with an observer of its outcomes, a unique image
//! namespace per run, and the registry and daemon lookups the tests assert with.

#![allow(dead_code, reason = "each test target uses its own part of the rig")]

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use slipway_broker::logs::{LogReader, ReadOptions, delete_log_stream, log_stream_name};
use slipway_broker::{Job, Topology};
use slipway_build::worker::{BuildHandler, BuildSettings, BuildWorkerConfig};
use slipway_common::index::Entry;
use slipway_common::message::{CommitSha, LintPassed};
use slipway_common::{Cause, Envelope, JobId, Message};
use slipway_source::SourceSettings;
use slipway_tests::git::LocalRepo;
use slipway_tests::{RunningWorker, TempDir, TestBus, test_settings};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub const DEADLINE: Duration = Duration::from_secs(300);

pub const TWO_STAGE: &str = "FROM slipway/debian:bookworm AS build\nRUN echo built > /artifact\nFROM slipway/debian:bookworm\nCOPY --from=build /artifact /artifact\nCMD [\"cat\", \"/artifact\"]\n";

/// A unique image namespace for this run (the registry outlives test runs).
pub fn app_id(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("sltest{}x{nanos}-{test}", std::process::id())
}

pub struct BuildRig {
    pub bus: TestBus,
    workers: Vec<RunningWorker>,
    events: mpsc::UnboundedReceiver<Envelope>,
    _dirs: (TempDir, TempDir),
}

impl BuildRig {
    pub async fn start(test: &str, adjust: impl FnOnce(&mut BuildSettings)) -> BuildRig {
        slipway_tests::ensure_docker();
        let settings = test_settings(test);
        let bus = TestBus::start(settings.clone(), Topology::pipeline(&settings)).await;
        let cache = TempDir::new(&format!("{test}-git"));
        let work = TempDir::new(&format!("{test}-work"));
        let mut config = BuildWorkerConfig {
            broker: settings.clone(),
            source: SourceSettings {
                cache_dir: cache.path().to_path_buf(),
                allow_file_urls: true,
                ..SourceSettings::default()
            },
            build: BuildSettings {
                work_dir: work.path().to_path_buf(),
                min_free_bytes: 0,
                min_free_inodes: 0,
                smoke_test_timeout_ms: 60_000,
                ..BuildSettings::default()
            },
            ..BuildWorkerConfig::default()
        };
        adjust(&mut config.build);
        let handler = Arc::new(
            BuildHandler::new(&config, CancellationToken::new())
                .await
                .expect("build handler"),
        );
        let build = bus.spawn_worker("build", move |job: Job| {
            let handler = handler.clone();
            async move { handler.handle(&job).await }
        });
        let (tx, events) = mpsc::unbounded_channel();
        let notify = bus.spawn_observer("notify", tx);
        BuildRig {
            bus,
            workers: vec![build, notify],
            events,
            _dirs: (cache, work),
        }
    }

    pub async fn request(&self, entry: &Entry, commit: &str) -> JobId {
        self.request_for(Cause::User, entry, commit).await.job_id
    }

    /// Publishes a build of `entry` at `commit` for `cause`; the envelope (to publish again, as a
    /// redelivery would) is returned.
    pub async fn request_for(&self, cause: Cause, entry: &Entry, commit: &str) -> Envelope {
        let job = Envelope::new_job(
            cause,
            Message::LintPassed(LintPassed {
                entry: entry.clone(),
                commit: CommitSha::try_from(commit.to_string()).expect("a commit SHA"),
                findings: Vec::new(),
            }),
        );
        self.bus.publisher.publish(&job).await.expect("publish");
        job
    }

    pub async fn outcome(&mut self, job: JobId) -> Message {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .expect("a build outcome before the deadline")
                .expect("observer running");
            if event.job_id == job {
                return event.message;
            }
        }
    }

    /// The job's build log, read back from the `<namespace>.logs` stream.
    pub async fn log_of(&self, job: JobId) -> String {
        let stream = log_stream_name(&self.bus.settings.namespace);
        let reader = LogReader::new(self.bus.connection(), &stream);
        let mut chunks = reader.read(job, ReadOptions::default());
        let mut text = String::new();
        while let Some(chunk) = chunks.next().await {
            text.push_str(&chunk.expect("a log chunk").text);
        }
        text
    }

    pub async fn stop(self) {
        for worker in self.workers {
            worker.stop().await.expect("worker stops");
        }
        let stream = log_stream_name(&self.bus.settings.namespace);
        let _ = delete_log_stream(self.bus.connection(), &stream).await;
        self.bus.cleanup().await;
    }
}

pub fn entry(repo: &LocalRepo, test: &str) -> Entry {
    repo.entry(&app_id(test))
}

/// The registry's digest for `repository:tag` (`Docker-Content-Digest`), via curl.
pub fn registry_digest(repository: &str, tag: &str) -> Option<String> {
    let output = Command::new("curl")
        .args([
            "-sfI",
            "-H",
            "Accept: application/vnd.docker.distribution.manifest.v2+json",
            &format!("http://127.0.0.1:5000/v2/{repository}/manifests/{tag}"),
        ])
        .output()
        .expect("curl");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("docker-content-digest")
                .then(|| value.trim().to_string())
        })
}

/// Image push events of the daemon since `since` (unix seconds) for images whose name contains `needle`.
pub fn pushes_since(since: u64, needle: &str) -> usize {
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() + 1)
        .unwrap_or_default();
    let output = Command::new("docker")
        .args([
            "events",
            "--since",
            &since.to_string(),
            "--until",
            &until.to_string(),
            "--filter",
            "type=image",
            "--filter",
            "event=push",
            "--format",
            "{{.Actor.ID}}",
        ])
        .output()
        .expect("docker events");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

pub fn image_exists(reference: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", reference])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The value of the label `name` of a local image (empty when it has none).
pub fn local_label(reference: &str, name: &str) -> String {
    let output = Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            &format!("{{{{index .Config.Labels \"{name}\"}}}}"),
            reference,
        ])
        .output()
        .expect("docker image inspect");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The id of a local image.
pub fn local_image_id(reference: &str) -> Option<String> {
    let output = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", reference])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

pub fn leftover_containers(job: JobId) -> usize {
    let output = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=io.slipway.job-id={job}"),
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&output.stdout).lines().count()
}

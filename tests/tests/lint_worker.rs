//! The lint worker against a real RabbitMQ and real git repositories (file:// URLs): a good
//! Dockerfile gives `lint.passed` with the resolved commit SHA, a bad one `lint.failed` with its
//! findings, a missing repository or unknown ref a `lint.failed` a user understands, and an
//! unreachable server retries and finally dead-letters (never a silent loss). Jobs published by
//! the Python example (`examples/python/publish_build.py`, pika + msgpack) are linted the same,
//! whether it writes ids as 16-byte bins or as strings. The history stream records the requests
//! and the worker's verdicts.

use std::time::Duration;

use slipway_broker::history::HistoryQuery;
use slipway_broker::{Job, Topology};
use slipway_common::index::Entry;
use slipway_common::index::test_support::sample_entry;
use slipway_common::message::{BuildRequested, CommitSha, Level};
use slipway_common::{Cause, Envelope, JobId, Kind, Message};
use slipway_lint::job::{LintJobSettings, ShellcheckMode};
use slipway_lint::worker::LintHandler;
use slipway_source::{SourceCache, SourceSettings};
use slipway_tests::git::LocalRepo;
use slipway_tests::{RunningWorker, TempDir, TestBus, test_settings};
use tokio::sync::mpsc;

use slipway_tests::tools::{python_with, run};

const DEADLINE: Duration = Duration::from_secs(60);

const GOOD: &str = "FROM debian:12.5\nRUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*\nCMD [\"curl\", \"--version\"]\n";
const BAD: &str = "FROM debian:12.5\nMAINTAINER someone@example.com\nRUN cd /tmp && make\n";

/// A bus with the pipeline topology, the lint worker running in-process, and observers on the
/// queues that receive its events (`build` gets lint.passed, `notify` gets lint.failed).
struct LintRig {
    bus: TestBus,
    workers: Vec<RunningWorker>,
    events: mpsc::UnboundedReceiver<Envelope>,
    _cache_dir: TempDir,
}

impl LintRig {
    async fn start(test: &str) -> LintRig {
        let settings = test_settings(test);
        let topology = Topology::pipeline(&settings);
        let bus = TestBus::start(settings, topology).await;
        let cache_dir = TempDir::new(test);
        let cache = SourceCache::new(SourceSettings {
            cache_dir: cache_dir.path().to_path_buf(),
            fetch_timeout_ms: 20_000,
            allow_file_urls: true,
            ..SourceSettings::default()
        })
        .expect("source cache");
        let handler = std::sync::Arc::new(
            LintHandler::new(
                cache,
                LintJobSettings {
                    shellcheck: ShellcheckMode::Never,
                    ..LintJobSettings::default()
                },
            )
            .expect("lint handler"),
        );
        let lint = bus.spawn_worker("lint", move |job: Job| {
            let handler = handler.clone();
            async move { handler.lint(&job).await }
        });
        let (tx, events) = mpsc::unbounded_channel();
        let build = bus.spawn_observer("build", tx.clone());
        let notify = bus.spawn_observer("notify", tx);
        LintRig {
            bus,
            workers: vec![lint, build, notify],
            events,
            _cache_dir: cache_dir,
        }
    }

    async fn request(&self, entry: Entry, commit: Option<CommitSha>) -> JobId {
        let job = Envelope::new_job(
            Cause::User,
            Message::BuildRequested(BuildRequested { entry, commit }),
        );
        self.bus.publisher.publish(&job).await.expect("publish");
        job.job_id
    }

    /// The lint outcome of `job` (other events are kept out of the way).
    async fn outcome(&mut self, job: JobId) -> Message {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .expect("a lint outcome before the deadline")
                .expect("observers running");
            if event.job_id == job {
                return event.message;
            }
        }
    }

    async fn stop(self) {
        for worker in self.workers {
            worker.stop().await.expect("worker stops cleanly");
        }
        self.bus.cleanup().await;
    }
}

fn entry_for(repo: &LocalRepo, branch: &str, path: &str, file: &str) -> Entry {
    Entry {
        git_branch: branch.to_string(),
        git_path: path.to_string(),
        target_file: file.to_string(),
        ..repo.entry("slipway-test")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_dockerfile_passes_with_the_resolved_commit_and_a_bad_one_fails_with_findings() {
    let mut rig = LintRig::start("lint-verdicts").await;
    let repo = LocalRepo::new("verdicts");
    let first = repo.commit(&[("images/web/Dockerfile", GOOD)], "good");
    let second = repo.commit(&[("images/web/Dockerfile", BAD)], "bad");

    // The branch resolves to its tip, which is the bad one.
    let job = rig
        .request(entry_for(&repo, "main", "/images/web", "Dockerfile"), None)
        .await;
    let Message::LintFailed(failed) = rig.outcome(job).await else {
        panic!("the tip of main has MAINTAINER: lint must fail")
    };
    assert_eq!(
        failed.commit.as_ref().map(CommitSha::as_str),
        Some(second.as_str())
    );
    let codes: Vec<(&str, u32, Level)> = failed
        .findings
        .iter()
        .map(|f| (f.code.as_str(), f.line, f.level))
        .collect();
    assert!(codes.contains(&("DL4000", 2, Level::Error)), "{codes:?}");
    assert!(codes.contains(&("DL3003", 3, Level::Warning)), "{codes:?}");
    assert!(
        failed
            .error
            .as_deref()
            .is_some_and(|e| e.contains("DL4000"))
    );

    let failing = job;

    // Pinned to the first commit: the good Dockerfile, and lint.passed carries exactly that SHA.
    let pinned = CommitSha::try_from(first.clone()).expect("a commit SHA");
    let job = rig
        .request(
            entry_for(&repo, "main", "/images/web", "Dockerfile"),
            Some(pinned),
        )
        .await;
    let Message::LintPassed(passed) = rig.outcome(job).await else {
        panic!("the first commit's Dockerfile is clean of errors: lint must pass")
    };
    assert_eq!(passed.commit.as_str(), first);
    assert!(passed.findings.iter().all(|f| f.level != Level::Error));

    // The history recorded every event, the worker's too, with no writer of its own.
    let recorded: Vec<(JobId, Kind)> = rig
        .bus
        .wait_for_history(HistoryQuery::all(), 4, DEADLINE)
        .await
        .iter()
        .map(|event| (event.envelope.job_id, event.envelope.kind()))
        .collect();
    assert_eq!(
        recorded,
        [
            (failing, Kind::BuildRequested),
            (failing, Kind::LintFailed),
            (job, Kind::BuildRequested),
            (job, Kind::LintPassed),
        ]
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_repository_an_unknown_ref_or_a_missing_dockerfile_fail_with_a_readable_error() {
    let mut rig = LintRig::start("lint-missing").await;
    let repo = LocalRepo::new("missing");
    repo.commit(&[("Dockerfile", GOOD)], "good");

    let mut gone = entry_for(&repo, "main", "/", "Dockerfile");
    gone.git_url = format!("{}-does-not-exist", repo.url());
    let job = rig.request(gone, None).await;
    let Message::LintFailed(failed) = rig.outcome(job).await else {
        panic!("lint.failed expected")
    };
    let error = failed.error.expect("an error message");
    assert!(error.contains("not found"), "{error}");
    assert!(failed.commit.is_none());

    let job = rig
        .request(entry_for(&repo, "no-such-branch", "/", "Dockerfile"), None)
        .await;
    let Message::LintFailed(failed) = rig.outcome(job).await else {
        panic!("lint.failed expected")
    };
    let error = failed.error.expect("an error message");
    assert!(error.contains("no-such-branch"), "{error}");

    let job = rig
        .request(entry_for(&repo, "main", "/", "Dockerfile.missing"), None)
        .await;
    let Message::LintFailed(failed) = rig.outcome(job).await else {
        panic!("lint.failed expected")
    };
    let error = failed.error.expect("an error message");
    assert!(error.contains("Dockerfile.missing"), "{error}");
    assert!(
        failed.commit.is_some(),
        "the commit was resolved before the file was missed"
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_retried_then_dead_lettered_not_failed() {
    let rig = LintRig::start("lint-unreachable").await;
    // A port nothing listens on: connection refused is transient.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let mut entry = sample_entry();
    entry.git_url = format!("git://127.0.0.1:{port}/repo.git");
    let job = rig.request(entry, None).await;
    let dead = rig.bus.wait_for_dead_letters(1, DEADLINE).await;
    let envelope = Envelope::decode(&dead[0].body).expect("the job as published");
    assert_eq!(envelope.job_id, job);
    assert_eq!(dead[0].worker.as_deref(), Some("lint"));
    assert!(dead[0].attempt >= 1, "retried before dead-lettering");
    assert!(dead[0].reason.contains("fetching"), "{}", dead[0].reason);
    rig.stop().await;
}

/// Runs `examples/python/publish_build.py` with `args` against the rig's exchange; returns the
/// job id it prints.
async fn publish_with_python(rig: &LintRig, args: Vec<String>) -> JobId {
    let python = python_with(&["pika", "msgpack", "yaml"]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/python/publish_build.py"
    );
    let exchange = rig.bus.topology.exchange().to_owned();
    let url = rig.bus.settings.url.expose().to_owned();
    let printed = tokio::task::spawn_blocking(move || {
        run(
            std::process::Command::new(python)
                .arg(script)
                .args(["--url", &url, "--exchange", &exchange])
                .args(args),
            "python3-venv",
        )
    })
    .await
    .expect("the publisher ran");
    printed
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("expected the job id, found {printed:?}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_published_by_the_python_example_are_linted_with_bin_or_string_ids() {
    let mut rig = LintRig::start("lint-python").await;
    let repo = LocalRepo::new("python");
    let head = repo.commit(&[("images/web/Dockerfile", GOOD)], "good");
    let files = TempDir::new("python-entry");
    let entry_file = files.file(
        "web.yaml",
        &format!(
            "app-id: slipway-test\njob-id: web\ngit-url: {}\ngit-branch: main\n\
             git-path: images/web\ndesired-tag: '1.0'\ndepends-on: [debian:12.5]\n",
            repo.url()
        ),
    );

    // The entry from a YAML file, ids as 16-byte bins (as Slipway writes them); then from
    // arguments, ids as canonical strings (what other languages usually send), which were once
    // dead-lettered with "expected a 16 byte array". One job at a time: `outcome` skips other
    // jobs' events.
    let from_file = vec![
        "--entry".to_owned(),
        entry_file.display().to_string(),
        "--cause".into(),
        "git-change".into(),
    ];
    let from_arguments = vec![
        "--string-ids".to_owned(),
        "app-id=slipway-test".into(),
        "job-id=web".into(),
        format!("git-url={}", repo.url()),
        "git-branch=main".into(),
        "git-path=images/web".into(),
    ];
    for args in [from_file, from_arguments] {
        let job = publish_with_python(&rig, args).await;
        let Message::LintPassed(passed) = rig.outcome(job).await else {
            panic!("the Dockerfile is clean of errors: lint must pass")
        };
        assert_eq!(passed.commit.as_str(), head);
        assert_eq!(passed.entry.git_url, repo.url());
        assert_eq!(passed.entry.git_path, "images/web");
    }
    assert!(
        rig.bus.take_dead_letters().await.is_empty(),
        "nothing published by Python is dead-lettered"
    );
    rig.stop().await;
}

//! Coalescing, end to end, with the real repo-tracker, lint and build workers, the real RabbitMQ,
//! Docker and registry: ten pushes to one branch while its build waits give one image, of the
//! newest commit.
//!
//! Why it holds (ARCHITECTURE.md, *Coalescing*): the tracker asks for the branch head, not a
//! commit (`build.requested` without `commit`), and keeps at most one request per image in
//! flight, with one more after it when the branch moved meanwhile; lint resolves the head when
//! it runs; the build's content key (commit, Dockerfile, parents, build args) makes a second
//! build of the same commit a no-op that pushes nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use slipway_broker::Topology;
use slipway_broker::history::{HistoryEvent, HistoryQuery};
use slipway_build::worker::{BuildSettings, BuildWorkerConfig};
use slipway_common::{Kind, Message};
use slipway_lint::job::ShellcheckMode;
use slipway_lint::worker::LintWorkerConfig;
use slipway_repo_tracker::config::RepoTrackerConfig;
use slipway_source::SourceSettings;
use slipway_tests::git::LocalRepo;
use slipway_tests::{TempDir, TestBus, test_settings};
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(180);

fn source(dir: &TempDir) -> SourceSettings {
    SourceSettings {
        cache_dir: dir.path().to_path_buf(),
        allow_file_urls: true,
        ..SourceSettings::default()
    }
}

/// Runs `worker` until `shutdown`; a worker that stops with an error fails the test.
fn spawn<F, E>(what: &'static str, worker: F) -> tokio::task::JoinHandle<()>
where
    F: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    tokio::spawn(async move {
        if let Err(error) = worker.await {
            panic!("the {what} worker stopped: {error}");
        }
    })
}

fn of_kind(events: &[HistoryEvent], kind: Kind) -> Vec<&HistoryEvent> {
    events
        .iter()
        .filter(|e| e.envelope.kind() == kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_pushes_while_the_build_waits_give_one_image_of_the_newest_commit() {
    slipway_tests::ensure_docker();
    let settings = test_settings("coalescing");
    let bus = TestBus::start(settings.clone(), Topology::pipeline(&settings)).await;
    // The registry outlives test runs: a name of this run's own.
    let app_id = format!(
        "slcoalesce{}x{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default()
    );
    let app = LocalRepo::new("coalescing-app");
    app.commit(
        &[(
            "Dockerfile",
            "FROM slipway/debian:bookworm\nRUN echo 0 > /version\n",
        )],
        "first",
    );
    let index = LocalRepo::new("coalescing-index");
    index.commit(
        &[(
            &format!("index.d/{app_id}.yaml"),
            &format!(
                "Projects:\n  - id: 1\n    app-id: {app_id}\n    job-id: app\n    git-url: {}\n    git-path: /\n    git-branch: main\n    target-file: Dockerfile\n    desired-tag: latest\n    notify-email: owner@example.org\n    depends-on: []\n",
                app.url()
            ),
        )],
        "index",
    );
    let dirs: Vec<TempDir> = (0..4)
        .map(|i| TempDir::new(&format!("coalescing-{i}")))
        .collect();
    let shutdown = CancellationToken::new();

    let mut tracker = RepoTrackerConfig {
        broker: settings.clone(),
        source: source(&dirs[0]),
        ..RepoTrackerConfig::default()
    };
    tracker.telemetry.metrics_addr = None;
    tracker.tracker.index_url = index.url();
    tracker.tracker.index_branch = "main".into();
    tracker.tracker.poll_interval_ms = 200;
    tracker.tracker.poll_jitter_ms = 0;
    let tracker = spawn(
        "repo-tracker",
        slipway_repo_tracker::worker::run(tracker, shutdown.clone()),
    );
    let mut build = BuildWorkerConfig {
        broker: settings.clone(),
        source: source(&dirs[1]),
        build: BuildSettings {
            work_dir: dirs[2].path().to_path_buf(),
            min_free_bytes: 0,
            min_free_inodes: 0,
            ..BuildSettings::default()
        },
        ..BuildWorkerConfig::default()
    };
    build.telemetry.metrics_addr = None;
    let build = spawn("build", slipway_build::worker::run(build, shutdown.clone()));

    // The baseline: the index and the app's branch seen once.
    bus.wait_for_history(HistoryQuery::all().kinds([Kind::GitChanged]), 2, DEADLINE)
        .await;
    // Ten pushes; no lint worker runs yet, so the build waits in its queue.
    let mut newest = String::new();
    for n in 1..=10 {
        newest = app.commit(
            &[(
                "Dockerfile",
                &format!("FROM slipway/debian:bookworm\nRUN echo {n} > /version\n"),
            )],
            &format!("push {n}"),
        );
    }
    let seen_newest = {
        let newest = newest.clone();
        HistoryQuery::all().kinds([Kind::GitChanged]).matching(
            move |e| matches!(&e.message, Message::GitChanged(c) if c.commit.as_str() == newest),
        )
    };
    bus.wait_for_history(seen_newest, 1, DEADLINE).await;

    let mut lint = LintWorkerConfig {
        broker: settings.clone(),
        source: source(&dirs[3]),
        ..LintWorkerConfig::default()
    };
    lint.telemetry.metrics_addr = None;
    lint.lint.shellcheck = ShellcheckMode::Never;
    let lint = spawn("lint", slipway_lint::worker::run(lint, shutdown.clone()));

    // The tracker saw the branch move `moves` times before lint ran: the first move requested a
    // build; any later one asks for one more once that build ends. Each request ends in
    // build.succeeded.
    let app_url = app.url();
    let moves = bus
        .history(HistoryQuery::all().kinds([Kind::GitChanged]))
        .await
        .iter()
        .filter(|e| matches!(&e.envelope.message, Message::GitChanged(c) if c.git_url == app_url))
        .count()
        - 1;
    let expected = if moves >= 2 { 2 } else { 1 };
    eprintln!("10 pushes seen as {moves} head move(s): {expected} build request(s) expected");
    bus.wait_for_history(
        HistoryQuery::all().kinds([Kind::BuildSucceeded]),
        expected,
        DEADLINE,
    )
    .await;
    let all = bus.history(HistoryQuery::all()).await;
    let requested = of_kind(&all, Kind::BuildRequested);
    assert_eq!(
        requested.len(),
        expected,
        "one request, and one more after it when the branch moved again ({moves} moves seen)"
    );
    let built: BTreeSet<(String, String)> = of_kind(&all, Kind::BuildSucceeded)
        .into_iter()
        .map(|e| {
            let Message::BuildSucceeded(b) = &e.envelope.message else {
                unreachable!()
            };
            (b.commit.as_str().to_owned(), b.digest.to_string())
        })
        .collect();
    assert_eq!(built.len(), 1, "one image: {built:?}");
    let (commit, _digest) = built.into_iter().next().unwrap();
    assert_eq!(commit, newest, "the image is of the newest commit");

    shutdown.cancel();
    for task in [tracker, build, lint] {
        task.await.expect("a worker task ends");
    }
    bus.cleanup().await;
}

//! `slipway job` as users run it, against a real RabbitMQ: a finished job's events as a table and
//! as JSON (with `--follow` returning at once), a running job followed until its final event, and
//! a job with no event, an unknown namespace and a malformed id answered with exit status 1.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use serde_json::Value;
use slipway_broker::Topology;
use slipway_common::{Envelope, JobId, Kind};
use slipway_tests::{TestBus, build_requested, follow_up_of_kind, test_settings};

mod common;

use common::{slipway_in, spawn_slipway_in, stderr, stdout};

const DEADLINE: Duration = Duration::from_secs(60);

/// A bus with the pipeline's topology, so its own history stream.
async fn pipeline_bus(test: &str) -> TestBus {
    let settings = test_settings(test);
    let topology = Topology::pipeline(&settings);
    TestBus::start(settings, topology).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slipway_job_prints_every_event_of_a_job_as_a_table_or_as_json() {
    let bus = pipeline_bus("cli-job").await;
    let namespace = bus.settings.namespace.clone();
    let job = build_requested();
    let other = build_requested();
    let events: Vec<Envelope> = [Kind::LintPassed, Kind::BuildSucceeded, Kind::ScanCompleted]
        .into_iter()
        .map(|kind| follow_up_of_kind(&job, kind))
        .collect();
    bus.publisher.publish(&job).await.expect("publish");
    bus.publisher.publish(&other).await.expect("publish");
    bus.publisher.publish_all(&events).await.expect("publish");
    let id = job.job_id.to_string();

    let table = slipway_in(&namespace, &["job", &id]).await;
    assert_eq!(table.status.code(), Some(0), "{}", stderr(&table));
    let text = stdout(&table);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "a header and four events: {text}");
    assert!(lines[0].starts_with("TIME") && lines[0].contains("DETAILS"));
    let kinds = [
        "build.requested",
        "lint.passed",
        "build.succeeded",
        "scan.completed",
    ];
    for (line, kind) in lines[1..].iter().zip(kinds) {
        assert!(line.contains(kind) && line.contains(" user "), "{line}");
    }
    assert!(
        lines[2].contains("1 finding: DL3008 warning line 3"),
        "{text}"
    );
    assert!(
        lines[3].contains(&format!("@sha256:{}", "ab".repeat(32))),
        "{text}"
    );
    assert!(lines[4].contains("integrity 0, os-updates 3"), "{text}");

    let json = slipway_in(&namespace, &["job", &id, "--format", "json"]).await;
    assert_eq!(json.status.code(), Some(0), "{}", stderr(&json));
    let objects: Vec<Value> = stdout(&json)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    assert_eq!(
        objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect::<Vec<_>>(),
        kinds
    );
    assert!(objects.iter().all(|o| o["job_id"] == id.as_str()));
    assert_eq!(
        objects[2]["payload"]["digest"],
        format!("sha256:{}", "ab".repeat(32))
    );
    assert_eq!(objects[3]["payload"]["counts"]["os-updates"], 3);
    assert_eq!(objects[0]["id"], job.id.to_string());

    // The job has ended (scan.completed): following prints it and returns.
    let followed = slipway_in(&namespace, &["job", &id, "--follow"]).await;
    assert_eq!(followed.status.code(), Some(0), "{}", stderr(&followed));
    assert_eq!(stdout(&followed), text);
    bus.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slipway_job_follows_a_running_job_until_its_final_event() {
    let bus = pipeline_bus("cli-job-follow").await;
    let job = build_requested();
    bus.publisher.publish(&job).await.expect("publish");
    let mut child = spawn_slipway_in(
        &bus.settings.namespace,
        &["job", &job.job_id.to_string(), "--follow"],
    );
    let output = child.stdout.take().expect("piped stdout");
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut next_line = async || tokio::time::timeout(DEADLINE, lines.recv()).await;

    let header = next_line().await;
    let first = next_line().await;
    let started = matches!(&first, Ok(Some(line)) if line.contains("build.requested"));
    if !started {
        let _ = child.kill();
        panic!("expected the header and build.requested, got {header:?} then {first:?}");
    }
    // Published while `slipway job --follow` runs: it prints it and returns.
    let failed = follow_up_of_kind(&job, Kind::LintFailed);
    bus.publisher.publish(&failed).await.expect("publish");
    let last = next_line().await;
    // Each of a failed lint's findings follows its row.
    let finding = next_line().await;
    let end = next_line().await;
    if !matches!(&end, Ok(None)) {
        let _ = child.kill();
        panic!("expected the end of the output after {last:?} and {finding:?}, got {end:?}");
    }
    let finding = finding.expect("in time").expect("a line");
    assert_eq!(
        finding,
        "    line 3: DL3008 warning: Pin versions in apt get install  https://github.com/hadolint/hadolint/wiki/DL3008"
    );
    let status = child.wait().expect("slipway exits");
    assert!(status.success(), "{status}");
    let last = last.expect("in time").expect("a line");
    assert!(
        last.contains("lint.failed") && last.contains("1 finding"),
        "{last}"
    );
    bus.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_no_event_a_namespace_without_history_and_a_bad_id_exit_1() {
    let bus = pipeline_bus("cli-job-none").await;
    bus.publisher
        .publish(&build_requested())
        .await
        .expect("publish");
    let namespace = bus.settings.namespace.clone();
    let unknown = JobId::new().to_string();
    for follow in [&[][..], &["--follow"]] {
        let started = Instant::now();
        let none = slipway_in(&namespace, &[&["job", &unknown][..], follow].concat()).await;
        assert_eq!(none.status.code(), Some(1), "{}", stderr(&none));
        assert!(stdout(&none).is_empty());
        assert_eq!(
            stderr(&none).trim(),
            format!("slipway: no event of job {unknown} in the last 7 days of {namespace}.history")
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{follow:?} took {:?}",
            started.elapsed()
        );
    }
    bus.cleanup().await;

    let nowhere = test_settings("cli-job-nowhere").namespace;
    let missing = slipway_in(&nowhere, &["job", &unknown]).await;
    assert_eq!(missing.status.code(), Some(1), "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("does not exist"),
        "{}",
        stderr(&missing)
    );

    let bad = slipway_in(&namespace, &["job", "not-a-job"]).await;
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("\"not-a-job\" is not a job id"),
        "{}",
        stderr(&bad)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slipway_history_lists_the_jobs_of_an_image_by_short_name_full_reference_or_digest() {
    let bus = pipeline_bus("cli-history").await;
    let namespace = bus.settings.namespace.clone();
    // Two jobs of centos/django:latest (one built and scanned, one failed lint), one of another
    // image.
    let built = build_requested();
    let failed = build_requested();
    let mut other = build_requested();
    if let slipway_common::Message::BuildRequested(request) = &mut other.message {
        request.entry.job_id = "other".into();
    }
    let mut events = vec![built.clone(), other.clone(), failed.clone()];
    events.extend(
        [Kind::LintPassed, Kind::BuildSucceeded, Kind::ScanCompleted]
            .into_iter()
            .map(|kind| follow_up_of_kind(&built, kind)),
    );
    events.push(follow_up_of_kind(&failed, Kind::LintFailed));
    bus.publisher.publish_all(&events).await.expect("publish");

    for name in [
        "centos/django:latest",
        "127.0.0.1:5000/centos/django:latest",
        "centos/django",
    ] {
        let table = slipway_in(&namespace, &["history", name]).await;
        assert_eq!(table.status.code(), Some(0), "{name}: {}", stderr(&table));
        let text = stdout(&table);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{name}: a header and two jobs: {text}");
        assert!(lines[0].starts_with("JOB"), "{text}");
        assert!(
            lines[1].contains(&built.job_id.to_string()) && lines[1].contains("scan.completed"),
            "{text}"
        );
        assert!(
            lines[2].contains(&failed.job_id.to_string()) && lines[2].contains("lint.failed"),
            "{text}"
        );
        assert!(!text.contains(&other.job_id.to_string()), "{text}");
    }

    // By digest: only the job that produced (and scanned) it, with those two events.
    let pinned = format!("centos/django@sha256:{}", "ab".repeat(32));
    let json = slipway_in(&namespace, &["history", &pinned, "--format", "json"]).await;
    assert_eq!(json.status.code(), Some(0), "{}", stderr(&json));
    let jobs: Vec<Value> = stdout(&json)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    assert_eq!(jobs.len(), 1, "{}", stdout(&json));
    assert_eq!(jobs[0]["job_id"], built.job_id.to_string());
    assert_eq!(jobs[0]["events"], 2);
    assert_eq!(jobs[0]["ended"], true);
    assert_eq!(jobs[0]["last"]["kind"], "scan.completed");

    let none = slipway_in(&namespace, &["history", "centos/never:1"]).await;
    assert_eq!(none.status.code(), Some(1), "{}", stderr(&none));
    assert!(stderr(&none).contains("no job of 127.0.0.1:5000/centos/never:1"));
    let bad = slipway_in(&namespace, &["history", "Centos/App"]).await;
    assert_eq!(bad.status.code(), Some(1), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("expected an image reference"),
        "{}",
        stderr(&bad)
    );
    bus.cleanup().await;
}

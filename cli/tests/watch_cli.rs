//! `slipway watch` against a real RabbitMQ, piped (plain lines): two finished jobs (one scanned,
//! one failed at lint) print their stages and exit 1; a job still running is followed until its
//! scan, then the command exits 0.

use std::io::{BufRead as _, BufReader};
use std::time::Duration;

use slipway_broker::Topology;
use slipway_broker::history::HistoryQuery;
use slipway_common::message::test_support::sample_messages;
use slipway_common::{Cause, Envelope, Kind};
use slipway_tests::{TestBus, test_settings};

mod common;

use common::{stderr, stdout};

/// The events of one job, of these kinds, in order.
fn job(kinds: &[Kind]) -> Vec<Envelope> {
    let samples = sample_messages();
    let first = Envelope::new_job(
        Cause::User,
        samples
            .iter()
            .find(|m| m.kind() == kinds[0])
            .cloned()
            .unwrap(),
    );
    let mut events = vec![first.clone()];
    for kind in &kinds[1..] {
        let message = samples.iter().find(|m| m.kind() == *kind).cloned().unwrap();
        events.push(first.follow_up(message));
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_each_stage_and_exits_with_the_jobs_outcome() {
    let settings = test_settings("cli-watch");
    let namespace = settings.namespace.clone();
    let bus = TestBus::start(settings.clone(), Topology::pipeline(&settings)).await;
    let good = job(&[
        Kind::BuildRequested,
        Kind::LintPassed,
        Kind::BuildSucceeded,
        Kind::ScanCompleted,
    ]);
    let bad = job(&[Kind::BuildRequested, Kind::LintFailed]);
    for event in good.iter().chain(&bad) {
        bus.publisher.publish(event).await.unwrap();
    }
    bus.wait_for_history(HistoryQuery::all(), 6, Duration::from_secs(30))
        .await;
    let (good_id, bad_id) = (good[0].job_id.to_string(), bad[0].job_id.to_string());
    let output = common::slipway_in(&namespace, &["watch", &good_id, &bad_id]).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stdout(&output);
    let stages = |id: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains(id))
            .map(|l| {
                l.split("  ")
                    .nth(3)
                    .unwrap_or("")
                    .split(':')
                    .next()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(
        stages(&good_id),
        ["requested", "linted", "built", "scanned"],
        "{text}"
    );
    assert_eq!(stages(&bad_id), ["requested", "lint failed"], "{text}");

    // A job still running: followed until it is scanned.
    let running = job(&[
        Kind::BuildRequested,
        Kind::LintPassed,
        Kind::BuildSucceeded,
        Kind::ScanCompleted,
    ]);
    bus.publisher.publish(&running[0]).await.unwrap();
    let mut child =
        common::spawn_slipway_in(&namespace, &["watch", &running[0].job_id.to_string()]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::task::spawn_blocking(move || {
        let line = lines.next();
        (line, lines)
    })
    .await
    .unwrap();
    assert!(first.0.unwrap().unwrap().contains("requested"));
    for event in &running[1..] {
        bus.publisher.publish(event).await.unwrap();
    }
    let pid = child.id();
    let waited = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || child.wait().unwrap()),
    )
    .await;
    let Ok(status) = waited else {
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
        panic!("slipway watch did not exit once its job was scanned");
    };
    assert_eq!(status.unwrap().code(), Some(0));
    bus.cleanup().await;
}

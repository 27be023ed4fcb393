//! Every log line of a job carries its `job_id`: the consumer runner opens a `job` span around the
//! handler, and tasks the handler starts keep it (`spawn_blocking_in_span`, `.instrument`).

use std::time::Duration;

use slipway_broker::{Job, Outcome};
use slipway_common::telemetry::spawn_blocking_in_span;
use slipway_tests::{
    CapturedLogs, TestBus, build_requested, chain_topology, eventually, lint_passed_after,
    test_settings,
};
use tracing::Instrument;

const DEADLINE: Duration = Duration::from_secs(60);

/// Logs from deep inside, from a blocking task and from an async task, then forwards the job.
async fn handler(job: Job) -> Outcome {
    deep_inside().await;
    let _ = spawn_blocking_in_span(|| tracing::info!("span-test: from a blocking task")).await;
    let _ = tokio::spawn(
        async { tracing::info!("span-test: from an async task") }
            .instrument(tracing::Span::current()),
    )
    .await;
    Outcome::Ack(vec![lint_passed_after(&job.envelope)])
}

async fn deep_inside() {
    tokio::task::yield_now().await;
    tracing::warn!("span-test: deep inside the handler");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_a_handler_logs_carries_the_job_id_and_kind() {
    let logs = CapturedLogs::default();
    // The runner's tasks run on any runtime thread: the subscriber must be global (this test
    // binary has no other test).
    tracing::subscriber::set_global_default(logs.json_subscriber()).expect("first subscriber");
    let settings = test_settings("job-span");
    let bus = TestBus::start(settings.clone(), chain_topology(&settings)).await;
    let worker = bus.spawn_worker("first", handler);
    let job = build_requested();
    bus.publisher.publish(&job).await.expect("publish");

    let job_id = job.job_id.to_string();
    eventually("the job to be settled", DEADLINE, || {
        let lines = logs.lines();
        async move { lines.iter().any(|l| l.contains("job done")) }
    })
    .await;
    worker.stop().await.expect("worker stops");
    bus.cleanup().await;

    let lines = logs.lines();
    for message in [
        "span-test: deep inside the handler",
        "span-test: from a blocking task",
        "span-test: from an async task",
    ] {
        let line = lines
            .iter()
            .find(|line| line.contains(message))
            .unwrap_or_else(|| panic!("no line {message:?} in {lines:#?}"));
        let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        assert_eq!(
            value["span"]["job_id"].as_str(),
            Some(job_id.as_str()),
            "{line}"
        );
        assert_eq!(
            value["span"]["kind"].as_str(),
            Some("build.requested"),
            "{line}"
        );
        assert_eq!(value["span"]["worker"].as_str(), Some("first"), "{line}");
    }
}

//! `slipway logs` as users run it, against a real RabbitMQ: a finished job's log (plain and
//! `--follow`), an unknown job, a missing stream, and a malformed job id.

use std::process::Output;

use slipway_broker::logs::{
    LogStreamSettings, LogWriter, LogWriterOptions, declare_log_stream, delete_log_stream,
    log_stream_name,
};
use slipway_broker::{BrokerConnection, Publisher, Topology};
use slipway_common::JobId;
use slipway_tests::{ensure_rabbitmq, test_settings};

mod common;

use common::{stderr, stdout};

/// Runs `slipway logs ARGS` against `namespace`.
async fn slipway_logs(namespace: &str, args: &[&str]) -> Output {
    common::slipway_in(namespace, &[&["logs"], args].concat()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slipway_logs_prints_a_finished_job_and_says_when_there_is_no_log() {
    ensure_rabbitmq();
    let settings = test_settings("cli-logs");
    let namespace = settings.namespace.clone();
    let stream = log_stream_name(&namespace);

    let missing = slipway_logs(&namespace, &[&JobId::new().to_string()]).await;
    assert_eq!(missing.status.code(), Some(1), "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("does not exist"),
        "{}",
        stderr(&missing)
    );

    let connection = BrokerConnection::connect(&settings, "slipway-test-cli-logs")
        .await
        .expect("connect");
    let retention = LogStreamSettings {
        max_age: "1h".into(),
        max_length_bytes: 16 << 20,
        max_segment_size_bytes: 1 << 20,
    };
    declare_log_stream(&connection, &settings, &retention)
        .await
        .expect("declare the stream");
    let result = tokio::spawn({
        let namespace = namespace.clone();
        let stream = stream.clone();
        let publisher = Publisher::open(&connection, &Topology::new(&settings))
            .await
            .expect("publisher");
        async move {
            let job = JobId::new();
            let options = LogWriterOptions {
                chunk_bytes: 32,
                ..LogWriterOptions::default()
            };
            let writer = LogWriter::start(&publisher, &stream, job, 0, options);
            for i in 0..10 {
                writer.write_line(&format!("Step {i}/10 : RUN make"));
            }
            writer.finish("build.succeeded").await.expect("finish");
            let expected: String = (0..10)
                .map(|i| format!("Step {i}/10 : RUN make\n"))
                .chain(["=== slipway: end of run 1: build.succeeded ===\n".to_owned()])
                .collect();

            let plain = slipway_logs(&namespace, &[&job.to_string()]).await;
            assert_eq!(plain.status.code(), Some(0), "{}", stderr(&plain));
            assert_eq!(stdout(&plain), expected);

            let followed = slipway_logs(&namespace, &["--follow", &job.to_string()]).await;
            assert_eq!(followed.status.code(), Some(0), "{}", stderr(&followed));
            assert_eq!(stdout(&followed), expected);

            let other = JobId::new();
            let none = slipway_logs(&namespace, &["--since", "2h", &other.to_string()]).await;
            assert_eq!(none.status.code(), Some(1));
            assert!(stdout(&none).is_empty());
            assert_eq!(
                stderr(&none).trim(),
                format!("slipway: no log for job {other} in the last 2h of {stream}")
            );

            let bad = slipway_logs(&namespace, &["not-a-job"]).await;
            assert_eq!(bad.status.code(), Some(1));
            assert!(stderr(&bad).contains("\"not-a-job\" is not a job id"));
        }
    })
    .await;

    delete_log_stream(&connection, &stream)
        .await
        .expect("delete the test's log stream");
    connection.close().await;
    if let Err(error) = result {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// A `lint.failed` of a new job, as the lint worker publishes it.
fn lint_failed() -> slipway_common::Envelope {
    let message = slipway_common::message::test_support::sample_messages()
        .into_iter()
        .find(|m| m.kind() == slipway_common::Kind::LintFailed)
        .expect("a sample lint.failed");
    slipway_common::Envelope::new_job(slipway_common::Cause::User, message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_ended_at_lint_or_whose_build_failed_exits_1() {
    let settings = test_settings("cli-logs-ends");
    let namespace = settings.namespace.clone();
    let bus = slipway_tests::TestBus::start(settings.clone(), Topology::pipeline(&settings)).await;
    let stream = log_stream_name(&namespace);
    declare_log_stream(
        &BrokerConnection::connect(&settings, "slipway-test-cli-logs-ends")
            .await
            .expect("connect"),
        &settings,
        &LogStreamSettings {
            max_age: "1h".into(),
            max_length_bytes: 16 << 20,
            max_segment_size_bytes: 1 << 20,
        },
    )
    .await
    .expect("declare the log stream");

    // Lint failed: no build log will ever come, with or without --follow.
    let linted = lint_failed();
    bus.publisher.publish(&linted).await.expect("publish");
    bus.wait_for_history(
        slipway_broker::history::HistoryQuery::all().job(linted.job_id),
        1,
        std::time::Duration::from_secs(30),
    )
    .await;
    for args in [
        vec![linted.job_id.to_string()],
        vec!["-f".into(), linted.job_id.to_string()],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            slipway_logs(&namespace, &args),
        )
        .await
        .expect("slipway logs returns at once");
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains("ended before the build stage (lint.failed)"),
            "{}",
            stderr(&output)
        );
    }

    // Following a job that fails at lint while we wait.
    let later = lint_failed();
    let mut child =
        common::spawn_slipway_in(&namespace, &["logs", "-f", &later.job_id.to_string()]);
    bus.publisher.publish(&later).await.expect("publish");
    let status = tokio::task::spawn_blocking(move || child.wait().expect("wait"))
        .await
        .expect("joined");
    assert_eq!(status.code(), Some(1));

    // A failed build: the log is printed, and the exit status says it failed.
    let publisher = Publisher::open(
        &BrokerConnection::connect(&settings, "slipway-test-cli-logs-ends-writer")
            .await
            .expect("connect"),
        &Topology::new(&settings),
    )
    .await
    .expect("publisher");
    let job = JobId::new();
    let writer = LogWriter::start(&publisher, &stream, job, 0, LogWriterOptions::default());
    writer.write_line("Step 1/2 : RUN make");
    writer.finish("failed").await.expect("finish");
    let failed = slipway_logs(&namespace, &[&job.to_string()]).await;
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    assert!(stdout(&failed).contains("Step 1/2 : RUN make"));
    assert!(stderr(&failed).contains("failed"), "{}", stderr(&failed));

    let connection = BrokerConnection::connect(&settings, "slipway-test-cli-logs-ends-cleanup")
        .await
        .expect("connect");
    delete_log_stream(&connection, &stream)
        .await
        .expect("delete");
    connection.close().await;
    bus.cleanup().await;
}

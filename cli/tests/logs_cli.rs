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
    declare_log_stream(&connection, &stream, &retention)
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

//! Scan reports on the report stream against a real RabbitMQ: the latest report per image (by
//! reference and by digest) among several images, an appended-twice report, an unknown image
//! answered at the stream's end without waiting, a missing stream, and a 2 MB report.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slipway_broker::reports::{
    ReportStreamSettings, declare_report_stream, delete_report_stream, report_stream_name,
};
use slipway_broker::streams::ReadFrom;
use slipway_broker::{BrokerConnection, BrokerSettings, Publisher, Topology};
use slipway_common::{Digest, ImageRef, JobId, Timestamp};
use slipway_scan::reports::{
    ReportError, ReportMeta, ReportReadOptions, append_report, latest_report, report_history,
};
use slipway_tests::{ensure_rabbitmq, test_settings};

const DEADLINE: Duration = Duration::from_secs(60);
/// Longer than any read below should take: a read that ends sooner ended at the stream's end,
/// not because the stream went quiet.
const IDLE: Duration = Duration::from_secs(10);

/// A test's own report stream, its connection, and a confirm-mode publisher.
struct ReportBus {
    settings: BrokerSettings,
    stream: String,
    connection: BrokerConnection,
    publisher: Publisher,
}

/// Run `body` with a fresh report stream (declared when `declared`), and delete the stream
/// afterwards even when `body` panics.
async fn with_report_stream<F, Fut>(test: &str, body: F)
where
    F: FnOnce(Arc<ReportBus>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    ensure_rabbitmq();
    let settings = test_settings(test);
    let connection = BrokerConnection::connect(&settings, "slipway-test-reports")
        .await
        .expect("connect to the test broker");
    let stream = report_stream_name(&settings.namespace);
    let retention = ReportStreamSettings {
        max_age: "1h".into(),
        max_length_bytes: 64 << 20,
        max_segment_size_bytes: 8 << 20,
    };
    declare_report_stream(&connection, &settings, &retention)
        .await
        .expect("declare the report stream");
    let publisher = Publisher::open(&connection, &Topology::new(&settings))
        .await
        .expect("publisher");
    let bus = Arc::new(ReportBus {
        settings,
        stream,
        connection,
        publisher,
    });
    let outcome = tokio::spawn(body(bus.clone())).await;

    let cleanup = BrokerConnection::connect(&bus.settings, "slipway-test-reports-cleanup")
        .await
        .expect("connect for cleanup");
    delete_report_stream(&cleanup, &bus.stream)
        .await
        .expect("delete the test's report stream");
    cleanup.close().await;
    bus.connection.close().await;
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

fn options() -> ReportReadOptions {
    ReportReadOptions {
        from: ReadFrom::First,
        idle_timeout: IDLE,
        deadline: Some(DEADLINE),
        ..ReportReadOptions::default()
    }
}

fn digest(n: u8) -> String {
    format!("sha256:{}", format!("{n:02x}").repeat(32))
}

fn meta(image: &str, digest: &str, job_id: JobId) -> ReportMeta {
    ReportMeta {
        image: ImageRef::parse(image).expect("a valid image"),
        digest: Digest::parse(digest).expect("a valid digest"),
        job_id,
        scanned_at: Timestamp::now(),
    }
}

fn selector(reference: &str) -> ImageRef {
    ImageRef::parse(reference).expect("a valid reference")
}

const APP: &str = "127.0.0.1:5000/team/app:1";
const TOOL: &str = "127.0.0.1:5000/team/tool:latest";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latest_report_of_each_image_wins_and_an_unknown_image_is_none_at_the_stream_end() {
    with_report_stream("reports-latest", |bus| async move {
        let (first_scan, tool_scan, rescan) = (JobId::new(), JobId::new(), JobId::new());
        let appended = [
            (meta(APP, &digest(1), first_scan), r#"{"packages":[1,2]}"#),
            (meta(TOOL, &digest(7), tool_scan), r#"{"packages":[]}"#),
            (meta(APP, &digest(2), rescan), r#"{"packages":[1,2,3]}"#),
        ];
        for (meta, body) in &appended {
            append_report(&bus.publisher, &bus.stream, meta, body.as_bytes())
                .await
                .expect("append a report");
        }
        // The rescan is redelivered and appends its report again, with a newer scan time.
        let again = ReportMeta {
            scanned_at: Timestamp::now(),
            ..appended[2].0.clone()
        };
        append_report(&bus.publisher, &bus.stream, &again, br#"{"packages":[1,2,3]}"#)
            .await
            .expect("append the report again");

        let latest = |reference: &str| {
            let bus = bus.clone();
            let image = selector(reference);
            async move {
                latest_report(&bus.connection, &bus.stream, &image, options())
                    .await
                    .expect("look the report up")
            }
        };
        let app = latest(APP).await.expect("a report of app");
        assert_eq!(app.meta, again, "the last append wins");
        assert_eq!(app.body, br#"{"packages":[1,2,3]}"#);
        let tool = latest(TOOL).await.expect("a report of tool");
        assert_eq!(tool.meta, appended[1].0);
        assert_eq!(tool.body, br#"{"packages":[]}"#);
        assert!(tool.offset < app.offset);
        assert!(tool.stored_at <= Timestamp::now());

        // By digest: the older scan of app, found under its repository whatever the tag.
        let older = latest(&format!("127.0.0.1:5000/team/app@{}", digest(1)))
            .await
            .expect("the report of app's first digest");
        assert_eq!(older.meta, appended[0].0);
        assert!(
            latest(&format!("127.0.0.1:5000/team/tool@{}", digest(1)))
                .await
                .is_none(),
            "another repository's digest"
        );

        let started = Instant::now();
        assert!(latest("127.0.0.1:5000/team/app:2").await.is_none());
        let took = started.elapsed();
        assert!(
            took < IDLE,
            "an unknown image waited {took:?}, for silence or the deadline, not for the stream's end"
        );

        let history = report_history(&bus.connection, &bus.stream, &selector(APP), options())
            .await
            .expect("app's history");
        let jobs: Vec<(JobId, &str)> = history
            .iter()
            .map(|entry| (entry.meta.job_id, entry.meta.digest.as_str()))
            .collect();
        assert_eq!(
            jobs,
            [(rescan, digest(2).as_str()), (first_scan, digest(1).as_str())],
            "newest first, the appended-twice report once"
        );
        assert_eq!(history[0].offset, app.offset);
        assert_eq!(history[0].body_bytes, app.body.len());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appending_to_or_reading_a_missing_stream_is_an_error_naming_it() {
    with_report_stream("reports-missing", |bus| async move {
        delete_report_stream(&bus.connection, &bus.stream)
            .await
            .expect("delete the stream");
        let error = append_report(
            &bus.publisher,
            &bus.stream,
            &meta(APP, &digest(1), JobId::new()),
            b"{}",
        )
        .await
        .expect_err("no stream to append to");
        assert!(
            matches!(&error, ReportError::NoStream { stream } if *stream == bus.stream),
            "{error:?}"
        );
        assert!(error.to_string().contains("does not exist"), "{error}");

        let started = Instant::now();
        let error = latest_report(&bus.connection, &bus.stream, &selector(APP), options())
            .await
            .expect_err("no stream to read");
        assert!(matches!(error, ReportError::NoStream { .. }), "{error:?}");
        assert!(started.elapsed() < IDLE);

        // The publisher's channel survives the refusal: declared again, the stream takes reports.
        declare_report_stream(
            &bus.connection,
            &bus.settings,
            &ReportStreamSettings::default(),
        )
        .await
        .expect("declare the stream again");
        append_report(
            &bus.publisher,
            &bus.stream,
            &meta(APP, &digest(1), JobId::new()),
            b"{}",
        )
        .await
        .expect("append once the stream exists");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_stream_has_no_report_and_a_two_megabyte_report_round_trips() {
    with_report_stream("reports-large", |bus| async move {
        let quick = ReportReadOptions {
            idle_timeout: Duration::from_millis(500),
            ..options()
        };
        assert!(
            latest_report(&bus.connection, &bus.stream, &selector(APP), quick)
                .await
                .expect("read an empty stream")
                .is_none()
        );

        let findings: Vec<String> = (0..60_000)
            .map(|i| format!(r#"{{"id":"F-{i:06}","path":"/usr/lib/x"}}"#))
            .collect();
        let body = format!(r#"{{"findings":[{}]}}"#, findings.join(","));
        assert!(body.len() >= 2 << 20, "{} bytes", body.len());
        let meta = meta(APP, &digest(3), JobId::new());
        append_report(&bus.publisher, &bus.stream, &meta, body.as_bytes())
            .await
            .expect("append a large report");
        let stored = latest_report(&bus.connection, &bus.stream, &selector(APP), options())
            .await
            .expect("read it back")
            .expect("the report");
        assert_eq!(stored.meta, meta);
        assert_eq!(stored.body.len(), body.len());
        assert!(stored.body == body.as_bytes(), "the same bytes");
    })
    .await;
}

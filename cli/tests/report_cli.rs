//! `slipway report` as users run it, against a real RabbitMQ: a missing stream, the latest report
//! of an image as a summary and as JSON, by reference and by digest, an image without a report,
//! and a malformed reference.

use std::process::Output;

use slipway_broker::reports::{
    ReportStreamSettings, declare_report_stream, delete_report_stream, report_stream_name,
};
use slipway_broker::streams::append_entry;
use slipway_broker::{BrokerConnection, Publisher, Topology};
use slipway_common::{Digest, ImageRef, JobId, Timestamp};
use slipway_scan::reports::{Document, ReportMeta, append_report};
use slipway_tests::{ensure_rabbitmq, test_settings};

mod common;

use common::{stderr, stdout};

/// Runs `slipway report ARGS` against `namespace`.
async fn slipway_report(namespace: &str, args: &[&str]) -> Output {
    common::slipway_in(namespace, &[&["report"], args].concat()).await
}

const IMAGE: &str = "127.0.0.1:5000/team/app:1";

fn digest(n: u8) -> String {
    format!("sha256:{}", format!("{n:02x}").repeat(32))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slipway_report_prints_the_latest_report_and_says_when_there_is_none() {
    ensure_rabbitmq();
    let settings = test_settings("cli-report");
    let namespace = settings.namespace.clone();
    let stream = report_stream_name(&namespace);

    let missing = slipway_report(&namespace, &[IMAGE]).await;
    assert_eq!(missing.status.code(), Some(1), "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("does not exist"),
        "{}",
        stderr(&missing)
    );

    let connection = BrokerConnection::connect(&settings, "slipway-test-cli-report")
        .await
        .expect("connect");
    let retention = ReportStreamSettings {
        max_age: "1h".into(),
        max_length_bytes: 16 << 20,
        max_segment_size_bytes: 1 << 20,
    };
    declare_report_stream(&connection, &settings, &retention)
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
            let scanned_at = Timestamp::from_unix_millis(1_700_000_000_000);
            let reports = [
                (digest(1), r#"{"findings":[{"id":"old"}]}"#),
                (
                    digest(2),
                    // Keys in sorted order, so that serde_json's own pretty printing is the expected output.
                    r#"{"packages":[{"ecosystem":"deb","name":"a"},{"ecosystem":"deb","name":"b"}],"schema":2,"updates":{"repositories":["local"],"updates":[{"available":"2","installed":"1","name":"a","repo":"local"}]}}"#,
                ),
            ];
            for (digest, body) in &reports {
                let meta = ReportMeta {
                    image: ImageRef::parse(IMAGE).expect("a valid image"),
                    digest: Digest::parse(digest).expect("a valid digest"),
                    job_id: job,
                    scanned_at,
                };
                append_report(&publisher, &stream, &meta, body.as_bytes())
                    .await
                    .expect("append a report");
            }
            // The newest entry is the last scan's SBOM: `slipway report` must skip it.
            let sbom = r#"{"bomFormat":"CycloneDX","specVersion":"1.5"}"#;
            let meta = ReportMeta {
                image: ImageRef::parse(IMAGE).expect("a valid image"),
                digest: Digest::parse(&digest(2)).expect("a valid digest"),
                job_id: job,
                scanned_at,
            };
            append_entry(
                &publisher,
                &meta.document_entry(&stream, Document::Sbom, sbom.as_bytes().to_vec()),
            )
            .await
            .expect("append an SBOM");
            let printed = common::slipway_in(&namespace, &["sbom", "team/app:1"]).await;
            assert_eq!(printed.status.code(), Some(0), "{}", stderr(&printed));
            assert_eq!(
                stdout(&printed),
                "{\n  \"bomFormat\": \"CycloneDX\",\n  \"specVersion\": \"1.5\"\n}\n"
            );
            let none = common::slipway_in(&namespace, &["provenance", IMAGE]).await;
            assert_eq!(none.status.code(), Some(1), "{}", stderr(&none));
            assert!(
                stderr(&none).contains(&format!("no provenance record for {IMAGE}"))
                    && stderr(&none).contains("freshly built image"),
                "{}",
                stderr(&none)
            );

            let table = slipway_report(&namespace, &[IMAGE]).await;
            assert_eq!(table.status.code(), Some(0), "{}", stderr(&table));
            let text = stdout(&table);
            for line in [
                format!("job: {job}"),
                "Packages: 2 (deb 2)".to_owned(),
                "Updates: 1 (repositories: local)".to_owned(),
                "  a 1 -> 2 (local)".to_owned(),
            ] {
                assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
            }

            // The short index name that `slipway submit` prints names the same image.
            let short = slipway_report(&namespace, &["team/app:1"]).await;
            assert_eq!(short.status.code(), Some(0), "{}", stderr(&short));
            assert_eq!(stdout(&short), text, "the short name is the full one");

            let json = slipway_report(&namespace, &["--format", "json", IMAGE]).await;
            assert_eq!(json.status.code(), Some(0), "{}", stderr(&json));
            assert_eq!(
                stdout(&json),
                serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(reports[1].1).unwrap()).unwrap() + "\n"
            );

            let by_digest = format!("127.0.0.1:5000/team/app@{}", digest(1));
            let older = slipway_report(&namespace, &["--format=json", &by_digest]).await;
            assert_eq!(older.status.code(), Some(0), "{}", stderr(&older));
            assert!(stdout(&older).contains("\"old\""), "{}", stdout(&older));
            let short_digest = format!("team/app@{}", digest(1));
            let older = slipway_report(&namespace, &["--format=json", &short_digest]).await;
            assert_eq!(older.status.code(), Some(0), "{}", stderr(&older));
            assert!(stdout(&older).contains("\"old\""), "{}", stdout(&older));

            let other = "127.0.0.1:5000/team/app:2";
            let none = slipway_report(&namespace, &["--days", "7", other]).await;
            assert_eq!(none.status.code(), Some(1));
            assert!(stdout(&none).is_empty());
            assert_eq!(
                stderr(&none).trim(),
                format!("slipway: no report for {other} in the last 7 days of {stream}")
            );

            let bad = slipway_report(&namespace, &["app@latest"]).await;
            assert_eq!(bad.status.code(), Some(1));
            assert!(
                stderr(&bad).contains("expected an image reference")
                    && stderr(&bad).contains("algorithm"),
                "{}",
                stderr(&bad)
            );
        }
    })
    .await;

    delete_report_stream(&connection, &stream)
        .await
        .expect("delete the test's report stream");
    connection.close().await;
    if let Err(error) = result {
        std::panic::resume_unwind(error.into_panic());
    }
}

//! `slipway schedule` and `slipway rescan` as users run them, against a real RabbitMQ: the plan
//! folded from the history (rescans at each image's offset, a scheduled rebuild, summaries) as a
//! table and as JSON, a namespace with no history, and rescans of one image and of all.

use slipway_broker::Topology;
use slipway_broker::history::HistoryQuery;
use slipway_common::index::Entry;
use slipway_common::index::test_support::sample_entry;
use slipway_common::message::test_support::sample_built;
use slipway_common::message::{CommitSha, IndexApplied};
use slipway_common::{Cause, Envelope, Kind, Message};
use slipway_tests::{TestBus, ensure_rabbitmq, test_settings};
use std::time::Duration;

mod common;

use common::{stderr, stdout};

fn entry(job: &str) -> Entry {
    Entry {
        app_id: "team".into(),
        job_id: job.into(),
        desired_tag: "1".into(),
        notify_email: Some("owner@example.org".into()),
        rebuild_schedule: None,
        ..sample_entry()
    }
}

fn built(entry: Entry) -> Envelope {
    Envelope::new_job(Cause::User, Message::BuildSucceeded(sample_built(entry)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_lists_rescans_rebuilds_and_summaries_and_rescan_requests_scans() {
    ensure_rabbitmq();
    let settings = test_settings("cli-schedule");
    let namespace = settings.namespace.clone();

    let empty = common::slipway_in(&namespace, &["schedule"]).await;
    assert_eq!(empty.status.code(), Some(0), "{}", stderr(&empty));
    assert!(
        stderr(&empty).contains("does not exist"),
        "{}",
        stderr(&empty)
    );
    assert!(
        stdout(&empty).contains("0 live image(s)"),
        "{}",
        stdout(&empty)
    );

    let bus = TestBus::start(settings.clone(), Topology::pipeline(&settings)).await;
    let mut nightly = entry("nightly");
    nightly.rebuild_schedule = Some("0 2 * * *".into());
    bus.publisher
        .publish(&Envelope::new_job(
            Cause::IndexChange,
            Message::IndexApplied(IndexApplied {
                git_url: "https://git.example.org/index".into(),
                git_branch: "main".into(),
                commit: CommitSha::try_from("cd".repeat(20)).unwrap(),
                entries: vec![nightly.clone()],
            }),
        ))
        .await
        .unwrap();
    for job in ["a", "b"] {
        bus.publisher.publish(&built(entry(job))).await.unwrap();
    }
    bus.wait_for_history(HistoryQuery::all(), 3, Duration::from_secs(30))
        .await;

    let table = common::slipway_in(&namespace, &["schedule"]).await;
    assert_eq!(table.status.code(), Some(0), "{}", stderr(&table));
    let text = stdout(&table);
    assert!(
        text.contains("2 live image(s), 1 scheduled rebuild(s)"),
        "{text}"
    );
    for line in [
        "rescan   127.0.0.1:5000/team/a:1",
        "rescan   127.0.0.1:5000/team/b:1",
        "rebuild  team/nightly:1",
        "summary  owner@example.org",
    ] {
        assert!(text.contains(line), "{line:?} missing from {text}");
    }
    let rebuild = text.lines().find(|l| l.contains("rebuild  team")).unwrap();
    assert!(rebuild.contains("T02:00:00Z"), "{rebuild}");

    let json = common::slipway_in(
        &namespace,
        &["schedule", "--format", "json", "--limit", "2"],
    )
    .await;
    assert_eq!(json.status.code(), Some(0), "{}", stderr(&json));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&json)).expect("JSON");
    assert_eq!(rows.len(), 2);
    assert!(rows[0]["at_ms"].as_u64() <= rows[1]["at_ms"].as_u64());
    assert!(
        rows.iter()
            .all(|r| r["at"].as_str().unwrap().ends_with('Z'))
    );

    // One image by its short name, then every live image.
    let one = common::slipway_in(&namespace, &["rescan", "team/a:1"]).await;
    assert_eq!(one.status.code(), Some(0), "{}", stderr(&one));
    assert!(
        stdout(&one).contains("requested 1 scan(s)"),
        "{}",
        stdout(&one)
    );
    let all = common::slipway_in(&namespace, &["rescan", "--all"]).await;
    assert_eq!(all.status.code(), Some(0), "{}", stderr(&all));
    assert!(
        stdout(&all).contains("requested 2 scan(s)"),
        "{}",
        stdout(&all)
    );
    let requests = bus
        .wait_for_history(
            HistoryQuery::all().kinds([Kind::ScanRequested]),
            3,
            Duration::from_secs(30),
        )
        .await;
    for request in &requests {
        assert_eq!(request.envelope.cause, Cause::User);
        let Message::ScanRequested(r) = &request.envelope.message else {
            unreachable!()
        };
        assert_eq!(r.notify_email.as_deref(), Some("owner@example.org"));
    }
    let bad = common::slipway_in(&namespace, &["rescan", "Not An Image"]).await;
    assert_eq!(bad.status.code(), Some(1), "{}", stderr(&bad));
    let neither = common::slipway_in(&namespace, &["rescan"]).await;
    assert_eq!(neither.status.code(), Some(2), "{}", stderr(&neither));
    bus.cleanup().await;
}

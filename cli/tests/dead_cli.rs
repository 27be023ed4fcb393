//! `slipway dead list|show|replay|purge` against a real RabbitMQ holding real dead letters (jobs a
//! worker rejected): listed with their reasons, one shown whole, one replayed to its routing key
//! (once), the rest purged only when confirmed; exit codes asserted.

use std::time::Duration;

use slipway_broker::{Job, Outcome, Topology};
use slipway_common::message::test_support::sample_messages;
use slipway_common::{Cause, Envelope, Kind};
use slipway_tests::{TestBus, eventually, test_settings};

mod common;

use common::{stderr, stdout};

fn lint_passed() -> Envelope {
    let message = sample_messages()
        .into_iter()
        .find(|m| m.kind() == Kind::LintPassed)
        .expect("a sample lint.passed");
    Envelope::new_job(Cause::User, message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_shown_replayed_once_and_purged_when_confirmed() {
    let settings = test_settings("cli-dead");
    let namespace = settings.namespace.clone();
    let bus = TestBus::start(settings.clone(), Topology::pipeline(&settings)).await;
    let rejecting = bus.spawn_worker("build", |_job: Job| async {
        Outcome::Reject("the Dockerfile cannot be built here".into())
    });
    let (first, second) = (lint_passed(), lint_passed());
    bus.publisher.publish(&first).await.unwrap();
    bus.publisher.publish(&second).await.unwrap();
    eventually("two dead letters", Duration::from_secs(30), || async {
        bus.depths().await.get(&format!("{namespace}.dead")) == Some(&2)
    })
    .await;
    rejecting.stop().await.unwrap();

    let listed = common::slipway_in(&namespace, &["dead", "list", "--format", "json"]).await;
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    let rows: Vec<serde_json::Value> = stdout(&listed)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(rows.len(), 2);
    let mut ids: Vec<String> = rows
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    let mut expected = vec![first.id.to_string(), second.id.to_string()];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(
        rows.iter()
            .all(|r| r["reason"] == "the Dockerfile cannot be built here"
                && r["routing_key"] == "lint.passed"
                && r["worker"] == "build")
    );
    // Listing took nothing away.
    assert_eq!(
        bus.depths().await.get(&format!("{namespace}.dead")),
        Some(&2)
    );

    let shown = common::slipway_in(&namespace, &["dead", "show", &first.id.to_string()]).await;
    assert_eq!(shown.status.code(), Some(0), "{}", stderr(&shown));
    let json: serde_json::Value = serde_json::from_str(&stdout(&shown)).unwrap();
    assert_eq!(json["event"]["job_id"], first.job_id.to_string());
    assert_eq!(json["event"]["kind"], "lint.passed");
    let unknown = common::slipway_in(&namespace, &["dead", "show", "nope"]).await;
    assert_eq!(unknown.status.code(), Some(1));

    let replayed = common::slipway_in(&namespace, &["dead", "replay", &first.id.to_string()]).await;
    assert_eq!(replayed.status.code(), Some(0), "{}", stderr(&replayed));
    assert!(stdout(&replayed).contains("replayed 1 dead letter(s)"));
    let depths = bus.depths().await;
    assert_eq!(depths.get(&format!("{namespace}.dead")), Some(&1));
    assert_eq!(
        depths.get(&format!("{namespace}.build")),
        Some(&1),
        "back in its queue, once"
    );
    let again = common::slipway_in(&namespace, &["dead", "replay", &first.id.to_string()]).await;
    assert_eq!(
        again.status.code(),
        Some(1),
        "a replayed letter is gone: {}",
        stderr(&again)
    );

    // Not on a terminal: purge refuses without --yes.
    let refused = common::slipway_in(&namespace, &["dead", "purge"]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("--yes"), "{}", stderr(&refused));
    assert_eq!(
        bus.depths().await.get(&format!("{namespace}.dead")),
        Some(&1)
    );
    let purged = common::slipway_in(&namespace, &["dead", "purge", "--yes"]).await;
    assert_eq!(purged.status.code(), Some(0));
    assert!(
        stdout(&purged).contains("purged 1 dead letter(s)"),
        "{}",
        stdout(&purged)
    );
    assert_eq!(
        bus.depths().await.get(&format!("{namespace}.dead")),
        Some(&0)
    );
    bus.cleanup().await;
}

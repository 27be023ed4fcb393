//! `slipway why IMAGE` against a real RabbitMQ: the chain behind an image's latest build (a user
//! rebuilt the parent, the child followed), by short name, as a table and as JSON; an image with
//! no build exits 1.

use std::time::Duration;

use slipway_broker::Topology;
use slipway_broker::history::HistoryQuery;
use slipway_common::index::test_support::sample_entry;
use slipway_common::message::BuildRequested;
use slipway_common::message::test_support::sample_built;
use slipway_common::{Cause, Envelope, Message};
use slipway_tests::{TestBus, test_settings};

mod common;

use common::{stderr, stdout};

fn request(job: &str, cause: Cause) -> Envelope {
    let mut entry = sample_entry();
    entry.app_id = "team".into();
    entry.job_id = job.into();
    entry.desired_tag = "1".into();
    Envelope::new_job(
        cause,
        Message::BuildRequested(BuildRequested {
            entry,
            commit: None,
        }),
    )
}

fn built(request: &Envelope) -> Envelope {
    let Message::BuildRequested(r) = &request.message else {
        unreachable!()
    };
    request.follow_up(Message::BuildSucceeded(sample_built(r.entry.clone())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn why_names_the_first_cause_then_each_rebuild() {
    let settings = test_settings("cli-why");
    let namespace = settings.namespace.clone();
    let bus = TestBus::start(settings.clone(), Topology::pipeline(&settings)).await;
    let parent = request("base", Cause::User);
    let child = request("app", Cause::ParentRebuilt("team/base:1".into()));
    for event in [parent.clone(), built(&parent), child.clone(), built(&child)] {
        bus.publisher.publish(&event).await.unwrap();
    }
    bus.wait_for_history(HistoryQuery::all(), 4, Duration::from_secs(30))
        .await;

    let table = common::slipway_in(&namespace, &["why", "team/app:1"]).await;
    assert_eq!(table.status.code(), Some(0), "{}", stderr(&table));
    let text = stdout(&table);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "127.0.0.1:5000/team/app:1 was built because of:");
    assert!(
        lines[1].contains(&format!("job {}", parent.job_id))
            && lines[1].contains("a user's request"),
        "{text}"
    );
    assert!(
        lines[2].contains("team/base:1 rebuilt: sha256:cdcd"),
        "{text}"
    );
    assert!(
        lines[3].contains(&format!("job {}", child.job_id)),
        "{text}"
    );

    let json = common::slipway_in(&namespace, &["why", "-f", "json", "team/app:1"]).await;
    let links: Vec<serde_json::Value> = serde_json::from_str(&stdout(&json)).expect("JSON");
    assert_eq!(links.len(), 3);

    let none = common::slipway_in(&namespace, &["why", "team/never:1"]).await;
    assert_eq!(none.status.code(), Some(1));
    assert!(stderr(&none).contains("no build of"), "{}", stderr(&none));
    bus.cleanup().await;
}

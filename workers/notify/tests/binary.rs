//! The `slipway-notify` binary against the real RabbitMQ and a real SMTP server: configured by
//! `SLIPWAY_*` alone, it mails an event's owner; killed with `kill -9` once the mail is recorded,
//! a new instance sends nothing twice, and mails what comes next.

use std::time::Duration;

use slipway_broker::Topology;
use slipway_broker::history::HistoryQuery;
use slipway_common::message::test_support::sample_messages;
use slipway_common::{Cause, Envelope, Kind, Message};
use slipway_tests::fleet::Instance;
use slipway_tests::smtp::SmtpSink;
use slipway_tests::{TestBus, test_settings};

const DEADLINE: Duration = Duration::from_secs(60);

fn start(namespace: &str, sink: &SmtpSink) -> Instance {
    Instance::start(
        env!("CARGO_BIN_EXE_slipway-notify"),
        namespace,
        &[
            ("SLIPWAY_SMTP__HOST", "127.0.0.1".to_owned()),
            ("SLIPWAY_SMTP__PORT", sink.port.to_string()),
            ("SLIPWAY_SMTP__SECURITY", "plain".to_owned()),
            ("SLIPWAY_SMTP__FROM", "slipway@example.org".to_owned()),
            ("SLIPWAY_NOTIFY__LEADER_RENEW_MS", "1000".to_owned()),
        ],
    )
}

/// A `build.failed` for the sample entry's owner, of a new job.
fn build_failed() -> Envelope {
    let message = sample_messages()
        .into_iter()
        .find(|m| m.kind() == Kind::BuildFailed)
        .expect("a sample build.failed");
    Envelope::new_job(Cause::GitChange, message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_mails_once_and_a_successor_after_kill_9_sends_nothing_twice() {
    let settings = test_settings("notify-binary");
    let bus = TestBus::start(settings.clone(), Topology::pipeline(&settings)).await;
    let sink = SmtpSink::start();
    let first = start(&settings.namespace, &sink);

    let event = build_failed();
    bus.publisher.publish(&event).await.expect("publish");
    let received = sink.wait_for(1, DEADLINE).await;
    assert_eq!(received[0].rcpt_to, ["owner@example.org"]);
    assert_eq!(
        received[0].header("Message-ID").as_deref(),
        Some(format!("<{}@slipway>", event.id).as_str())
    );
    bus.wait_for_history(HistoryQuery::all().kinds([Kind::MailSent]), 1, DEADLINE)
        .await;
    first.kill();

    // A successor; the same event published again (as a redelivery or a replay would bring
    // it), then a new one.
    let _second = start(&settings.namespace, &sink);
    bus.publisher.publish(&event).await.expect("publish again");
    let next = build_failed();
    bus.publisher.publish(&next).await.expect("publish");
    let received = sink.wait_for(2, DEADLINE).await;
    let records = bus
        .wait_for_history(HistoryQuery::all().kinds([Kind::MailSent]), 2, DEADLINE)
        .await;
    let ids: Vec<String> = received
        .iter()
        .filter_map(|mail| mail.header("Message-ID"))
        .collect();
    assert_eq!(
        ids,
        [
            format!("<{}@slipway>", event.id),
            format!("<{}@slipway>", next.id)
        ],
        "one mail per event"
    );
    assert!(
        records
            .iter()
            .all(|r| matches!(r.envelope.message, Message::MailSent(_)))
    );
    bus.cleanup().await;
}

//! The 16 KiB frame (`broker::settings::DEFAULT_FRAME_MAX`, and `frame_max = 16384` in the
//! development broker's configuration) against a real RabbitMQ: a message whose headers nearly
//! fill a frame is still retried and dead-lettered (the runner's copy of its headers, with its own
//! 4 kB reason and the broker's `x-death`, fits: copied whole, 14 kB + 4 kB would not), and a publisher whose headers do not fit one frame is refused
//! when it publishes, so no worker is ever handed a frame it must refuse.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection, ConnectionProperties};

use slipway_broker::{DEFAULT_FRAME_MAX, Job, Outcome};
use slipway_tests::{TestBus, build_requested, chain_topology, test_settings};

const DEADLINE: Duration = Duration::from_secs(60);

/// About `bytes` of headers, in 1000-byte entries.
fn with_header_of(bytes: usize) -> FieldTable {
    let mut headers = FieldTable::default();
    for i in 0..bytes / 1000 {
        headers.insert(
            format!("x-caller-trace-{i:02}").as_str().into(),
            AMQPValue::LongString(LongString::from("t".repeat(1000))),
        );
    }
    headers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_headers_near_the_frame_is_retried_and_dead_lettered() {
    let settings = test_settings("frames-near");
    let bus = TestBus::start(settings.clone(), chain_topology(&settings)).await;
    // Retry once, then give up: the retry and the dead letter both carry the copied headers.
    let worker = bus.spawn_worker("first", |job: Job| async move {
        if job.attempt == 0 {
            Outcome::Retry("try again".to_owned())
        } else {
            Outcome::Reject("a reason of four kilobytes: ".to_owned() + &"r".repeat(4096))
        }
    });
    let job = build_requested();
    let connection = Connection::connect_uri(
        settings.uri().expect("uri"),
        ConnectionProperties::default(),
    )
    .await
    .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let body = job.encode().expect("encode");
    channel
        .basic_publish(
            bus.topology.exchange().into(),
            "build.requested".into(),
            BasicPublishOptions::default(),
            &body,
            BasicProperties::default().with_headers(with_header_of(14_000)),
        )
        .await
        .expect("publish")
        .await
        .expect("14 kB of headers fit the frame");

    let letters = bus.wait_for_dead_letters(1, DEADLINE).await;
    assert_eq!(letters[0].attempt, 1, "{letters:?}");
    assert!(
        letters[0].reason.starts_with("a reason of four"),
        "{letters:?}"
    );
    worker.stop().await.expect("a clean stop");
    let _ = connection.close(200, "done".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_whose_headers_do_not_fit_a_frame_is_refused_when_it_publishes() {
    slipway_tests::ensure_rabbitmq();
    // Even asking for RabbitMQ's usual 128 KiB, the connection gets the broker's 16 KiB.
    let settings = slipway_broker::BrokerSettings {
        url: format!("{}?frame_max=131072", slipway_tests::AMQP_URL)
            .as_str()
            .into(),
        ..test_settings("frames-over")
    };
    let connection = Connection::connect_uri(
        settings.uri().expect("uri"),
        ConnectionProperties::default(),
    )
    .await
    .expect("connect");
    assert_eq!(connection.configuration().frame_max(), DEFAULT_FRAME_MAX);
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let published = async {
        channel
            .basic_publish(
                "".into(),
                "slipway-frames-nowhere".into(),
                BasicPublishOptions::default(),
                b"x",
                BasicProperties::default().with_headers(with_header_of(20 * 1024)),
            )
            .await?
            .await
    };
    let outcome = tokio::time::timeout(DEADLINE, published)
        .await
        .expect("an answer");
    assert!(
        outcome.is_err(),
        "a 20 KiB header frame must be refused: {outcome:?}"
    );
    assert!(
        !connection.status().connected(),
        "the broker closes the connection (FRAME_ERROR)"
    );
}

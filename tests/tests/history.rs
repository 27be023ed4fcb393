//! The history stream against a real RabbitMQ: every event published to the exchange is recorded
//! in order with no writer of its own; reads start at an offset or a time and filter by job and
//! kind; a follower sees events published after it caught up; an event that only the history
//! would take is still refused as unroutable; another retention is a 406 naming the argument; and
//! a follower whose waits are cut short (a `select!` with a timer, as `slipway watch` does) loses
//! no event.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use slipway_broker::history::{HistoryEvents, HistoryQuery, HistoryReader, HistoryStep};
use slipway_broker::streams::ReadFrom;
use slipway_broker::streams::reader::ReadOptions;
use slipway_broker::{PublishError, Topology};
use slipway_common::{Envelope, Kind};
use slipway_tests::{TestBus, build_requested, eventually, follow_up_of_kind, test_settings};

const DEADLINE: Duration = Duration::from_secs(60);

/// A bus with the pipeline's topology (and so its history stream) in a namespace of its own.
async fn pipeline_bus(test: &str) -> TestBus {
    let settings = test_settings(test);
    let topology = Topology::pipeline(&settings);
    TestBus::start(settings, topology).await
}

/// Three jobs' events, interleaved as a busy pipeline publishes them.
fn interleaved_jobs() -> Vec<Envelope> {
    let jobs: Vec<Envelope> = (0..3).map(|_| build_requested()).collect();
    let mut events = jobs.clone();
    for job in &jobs {
        events.push(follow_up_of_kind(job, Kind::LintPassed));
    }
    events.push(follow_up_of_kind(&jobs[0], Kind::BuildSucceeded));
    events.push(follow_up_of_kind(&jobs[1], Kind::BuildFailed));
    events.push(follow_up_of_kind(&jobs[0], Kind::ScanCompleted));
    events
}

fn options(from: ReadFrom) -> ReadOptions {
    ReadOptions {
        from,
        deadline: Some(DEADLINE),
        ..ReadOptions::default()
    }
}

fn reader(bus: &TestBus) -> HistoryReader<'_> {
    let stream = bus.topology.history_stream().expect("a pipeline topology");
    HistoryReader::new(bus.connection(), &stream)
}

/// The next step of a read, or a panic after [`DEADLINE`].
async fn next_step(events: &mut HistoryEvents) -> HistoryStep {
    tokio::time::timeout(DEADLINE, events.next())
        .await
        .expect("a step before the deadline")
        .expect("the read goes on")
        .expect("a readable step")
}

/// The event of the next step, which must be one.
async fn next_event(events: &mut HistoryEvents) -> Envelope {
    match next_step(events).await {
        HistoryStep::Event(event) => event.envelope,
        other => panic!("expected an event, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_published_to_the_exchange_is_recorded_in_order() {
    let bus = pipeline_bus("history-recorded").await;
    let published = interleaved_jobs();
    bus.publisher
        .publish_all(&published)
        .await
        .expect("publish");
    // One at a time too: the order holds across confirms.
    let last = follow_up_of_kind(&published[2], Kind::LintFailed);
    bus.publisher.publish(&last).await.expect("publish");

    let recorded = bus.history(HistoryQuery::all()).await;
    let envelopes: Vec<&Envelope> = recorded.iter().map(|event| &event.envelope).collect();
    let expected: Vec<&Envelope> = published.iter().chain([&last]).collect();
    assert_eq!(envelopes, expected);
    assert!(
        recorded
            .windows(2)
            .all(|pair| pair[0].offset < pair[1].offset),
        "offsets grow"
    );
    // Recording takes nothing away from the workers: their queues got the events too.
    let (lint, notify) = (
        bus.topology.worker_queue("lint"),
        bus.topology.worker_queue("notify"),
    );
    eventually("the events in the workers' queues", DEADLINE, || async {
        let depths = bus.depths().await;
        depths.get(&lint) == Some(&3) && depths.get(&notify) == Some(&4)
    })
    .await;
    bus.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_start_at_an_offset_or_a_time_and_keep_one_job_or_some_kinds() {
    let bus = pipeline_bus("history-reads").await;
    let earlier = interleaved_jobs();
    bus.publisher.publish_all(&earlier).await.expect("publish");
    // Stream reads start at whole seconds: wait for the clock to pass into the next second (a
    // wait on the clock, not on the broker), so what follows is stored at or after it.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    let boundary = Duration::from_secs(now.as_secs() + 1);
    tokio::time::sleep(boundary.saturating_sub(now)).await;
    let later = interleaved_jobs();
    bus.publisher.publish_all(&later).await.expect("publish");
    let all: Vec<Envelope> = earlier.iter().chain(&later).cloned().collect();
    let history = reader(&bus);
    let read = |query: HistoryQuery, from: ReadFrom| {
        let history = &history;
        async move {
            history
                .read_to_end(query, &options(from))
                .await
                .expect("read the history")
        }
    };

    let everything = read(HistoryQuery::all(), ReadFrom::First).await;
    assert_eq!(everything.len(), all.len());
    let third = everything[2].offset;
    let from_third: Vec<Envelope> = read(HistoryQuery::all(), ReadFrom::Offset(third))
        .await
        .into_iter()
        .map(|event| event.envelope)
        .collect();
    assert_eq!(from_third, all[2..]);

    let since: Vec<Envelope> = read(HistoryQuery::all(), ReadFrom::Since(UNIX_EPOCH + boundary))
        .await
        .into_iter()
        .map(|event| event.envelope)
        .collect();
    assert_eq!(since, later);

    let job = later[1].job_id;
    let of_job: Vec<Envelope> = read(HistoryQuery::all().job(job), ReadFrom::First)
        .await
        .into_iter()
        .map(|event| event.envelope)
        .collect();
    let expected: Vec<Envelope> = all.iter().filter(|e| e.job_id == job).cloned().collect();
    assert_eq!(
        of_job.iter().map(Envelope::kind).collect::<Vec<_>>(),
        [Kind::BuildRequested, Kind::LintPassed, Kind::BuildFailed]
    );
    assert_eq!(of_job, expected);

    let outcomes = HistoryQuery::all().kinds([Kind::BuildSucceeded, Kind::BuildFailed]);
    let kinds: Vec<Kind> = read(outcomes, ReadFrom::First)
        .await
        .iter()
        .map(|event| event.envelope.kind())
        .collect();
    assert_eq!(
        kinds,
        [
            Kind::BuildSucceeded,
            Kind::BuildFailed,
            Kind::BuildSucceeded,
            Kind::BuildFailed
        ]
    );

    let in_the_future = read(
        HistoryQuery::all(),
        ReadFrom::Since(SystemTime::now() + Duration::from_secs(3600)),
    )
    .await;
    assert!(in_the_future.is_empty());
    bus.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_sees_what_is_published_after_it_caught_up() {
    let bus = pipeline_bus("history-follow").await;
    let job = build_requested();
    bus.publisher.publish(&job).await.expect("publish");
    let follow = ReadOptions {
        follow: true,
        ..options(ReadFrom::First)
    };
    let mut events = reader(&bus)
        .open(HistoryQuery::all().job(job.job_id), &follow)
        .await
        .expect("open a following read");
    assert_eq!(next_event(&mut events).await, job);
    assert!(matches!(
        next_step(&mut events).await,
        HistoryStep::CaughtUp
    ));

    // Published after the follower caught up: another job's event, then this job's end.
    let other = build_requested();
    let passed = follow_up_of_kind(&job, Kind::LintPassed);
    let failed = follow_up_of_kind(&job, Kind::BuildFailed);
    for event in [&other, &passed, &failed] {
        bus.publisher.publish(event).await.expect("publish");
    }
    assert_eq!(next_event(&mut events).await, passed);
    assert_eq!(next_event(&mut events).await, failed);
    events.close().await;

    // A following read bounded by a deadline ends with an error that says so.
    let bounded = ReadOptions {
        follow: true,
        deadline: Some(Duration::from_millis(1500)),
        ..options(ReadFrom::Offset(u64::MAX / 2))
    };
    let mut events = reader(&bus)
        .open(HistoryQuery::all(), &bounded)
        .await
        .expect("open");
    assert!(matches!(
        next_step(&mut events).await,
        HistoryStep::CaughtUp
    ));
    let error = tokio::time::timeout(DEADLINE, events.next())
        .await
        .expect("the deadline ends the read")
        .expect("an error, not the end")
        .unwrap_err();
    assert!(
        error.to_string().contains("was still following it"),
        "{error}"
    );
    bus.cleanup().await;
}

/// `slipway watch` and `slipway demo` wait for the next event in a `select!` beside a spinner's
/// timer. Cutting a wait short must lose nothing, even while the reader acks a message it has
/// received (at the tail, each message is acked as it comes): that once dropped events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_cut_short_by_a_timer_lose_no_event() {
    const EVENTS: usize = 300;
    let bus = pipeline_bus("history-cancel").await;
    let follow = ReadOptions {
        follow: true,
        ..options(ReadFrom::First)
    };
    let mut events = reader(&bus)
        .open(HistoryQuery::all(), &follow)
        .await
        .expect("open a following read");
    assert!(matches!(
        next_step(&mut events).await,
        HistoryStep::CaughtUp
    ));
    let published: Vec<Envelope> = (0..EVENTS).map(|_| build_requested()).collect();
    let publisher = bus.publisher.clone();
    let to_publish = published.clone();
    let publishing = tokio::spawn(async move {
        for event in &to_publish {
            publisher.publish(event).await.expect("publish");
        }
    });
    let mut received = Vec::new();
    let mut cut_short = 0;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while received.len() < EVENTS {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {EVENTS} events after {DEADLINE:?}",
            received.len()
        );
        // A timer shorter than a broker round trip: many waits end during an ack.
        match tokio::time::timeout(Duration::from_micros(300), events.next()).await {
            Err(_) => cut_short += 1,
            Ok(step) => match step.expect("the read goes on").expect("a readable step") {
                HistoryStep::Event(event) => received.push(event.envelope),
                other => panic!("expected an event, got {other:?}"),
            },
        }
    }
    publishing.await.expect("published");
    assert!(
        cut_short > 0,
        "no wait was cut short: the test tested nothing"
    );
    assert_eq!(received, published, "every event, once, in order");
    events.close().await;
    bus.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_only_the_history_would_take_is_still_unroutable() {
    let settings = test_settings("history-unroutable");
    // Nobody consumes scan.requested here, but the history stream takes every routing key.
    let topology = Topology::new(&settings)
        .with_worker("first", [Kind::BuildRequested])
        .with_history(&settings.history);
    let bus = TestBus::start(settings, topology).await;
    let job = build_requested();
    let scan = follow_up_of_kind(&job, Kind::ScanRequested);
    for refused in [
        bus.publisher.publish_all(&[job.clone(), scan]).await,
        bus.publisher.publish_raw("no.such.kind", b"x").await,
    ] {
        match refused {
            Err(PublishError::Unroutable {
                reply_code,
                reply_text,
                ..
            }) => {
                assert_eq!(reply_code, 312);
                assert!(reply_text.contains("history stream"), "{reply_text}");
            }
            other => panic!("expected Unroutable, got {other:?}"),
        }
    }
    bus.publisher.publish(&job).await.expect("routable publish");
    let recorded = bus.history(HistoryQuery::all()).await;
    assert_eq!(
        recorded.into_iter().map(|e| e.envelope).collect::<Vec<_>>(),
        [job],
        "a refused batch publishes nothing"
    );
    bus.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declaring_the_history_again_is_harmless_and_another_retention_names_the_argument() {
    let bus = pipeline_bus("history-declare").await;
    let channel = bus.connection().channel().await.expect("channel");
    bus.topology
        .declare(&channel)
        .await
        .expect("same retention");
    let changed = slipway_broker::BrokerSettings {
        history: slipway_broker::history::HistoryStreamSettings {
            max_age: "31D".into(),
            ..bus.settings.history.clone()
        },
        ..bus.settings.clone()
    };
    let channel = bus.connection().channel().await.expect("channel");
    let error = Topology::pipeline(&changed)
        .declare(&channel)
        .await
        .expect_err("another max_age")
        .to_string();
    assert!(
        error.contains("history stream") && error.contains("x-max-age"),
        "{error}"
    );
    bus.cleanup().await;
}

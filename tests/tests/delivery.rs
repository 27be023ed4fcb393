//! Delivery semantics of the broker layer against a real RabbitMQ: exactly-once effect over
//! at-least-once delivery, redelivery after a lost connection, dead-lettering of poison, retry
//! with growing delays, unroutable publishes, and the shutdown drain.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use slipway_broker::{Job, Outcome, PublishError, Topology};
use slipway_common::{Envelope, Kind, Timestamp, envelope::WIRE_VERSION};
use slipway_tests::{
    EffectLog, TestBus, build_requested, chain_topology, close_connections_named, eventually,
    lint_passed_after, metric_value, recording_handler, test_settings,
};
use tokio::sync::{Notify, mpsc};

const DEADLINE: Duration = Duration::from_secs(60);

/// `first`: build.requested → lint.passed.
async fn forward(job: Job) -> Outcome {
    Outcome::Ack(vec![lint_passed_after(&job.envelope)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_jobs_through_two_stages_each_take_effect_exactly_once() {
    let settings = slipway_broker::BrokerSettings {
        prefetch: 20,
        ..test_settings("thousand")
    };
    let bus = TestBus::start(settings.clone(), chain_topology(&settings)).await;
    let effects = Arc::new(EffectLog::default());
    let first = bus.spawn_worker("first", forward);
    let second = bus.spawn_worker("second", recording_handler(&effects));

    let jobs = bus.publish_jobs(1000).await;
    effects.wait_for(1000, DEADLINE).await.unwrap();
    first.stop().await.unwrap();
    second.stop().await.unwrap();

    let published: HashSet<_> = jobs.into_iter().collect();
    let applied = effects.effects();
    assert_eq!(applied.keys().copied().collect::<HashSet<_>>(), published);
    assert!(applied.values().all(|&n| n == 1));
    // No duplicate events either: with no failures, each job reached `second` once.
    let deliveries = effects.deliveries();
    assert!(
        deliveries.values().all(|&n| n == 1),
        "duplicate deliveries: {:?}",
        deliveries.values().filter(|&&n| n > 1).count()
    );
    let depths = bus.depths().await;
    assert!(
        depths.values().all(|&n| n == 0),
        "queues not empty: {depths:?}"
    );
    bus.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_connection_is_killed_mid_job_is_redelivered_and_takes_effect_once() {
    let settings = test_settings("killconn");
    let bus = TestBus::start(settings.clone(), chain_topology(&settings)).await;
    let effects = Arc::new(EffectLog::default());
    let second = bus.spawn_worker("second", recording_handler(&effects));

    // `first` applies its effect, then hangs on the first delivery: the connection is killed
    // before it can ack, so the broker must redeliver the job.
    let first_effects = Arc::new(EffectLog::default());
    let entered = Arc::new(Notify::new());
    let calls = Arc::new(AtomicU32::new(0));
    let handler = {
        let (first_effects, entered, calls) =
            (first_effects.clone(), entered.clone(), calls.clone());
        move |job: Job| {
            let (first_effects, entered, calls) =
                (first_effects.clone(), entered.clone(), calls.clone());
            async move {
                first_effects.deliver(job.envelope.job_id);
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    entered.notify_one();
                    std::future::pending::<()>().await;
                }
                assert!(job.redelivered, "the second delivery is a redelivery");
                Outcome::Ack(vec![lint_passed_after(&job.envelope)])
            }
        }
    };
    let connection_name = format!("{}-first-victim", settings.namespace);
    let first = bus.spawn_named_worker("first", &connection_name, handler);
    let jobs = bus.publish_jobs(1).await;

    tokio::time::timeout(DEADLINE, entered.notified())
        .await
        .expect("job started");
    assert_eq!(close_connections_named(&connection_name).unwrap(), 1);

    effects.wait_for(1, DEADLINE).await.unwrap();
    first.stop().await.unwrap();
    second.stop().await.unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "delivered, then redelivered once"
    );
    assert_eq!(
        first_effects.effects()[&jobs[0]],
        1,
        "first's effect applied once"
    );
    assert_eq!(first_effects.deliveries()[&jobs[0]], 2);
    assert_eq!(
        effects.effects()[&jobs[0]],
        1,
        "downstream effect applied once"
    );
    let reconnects = metric_value(r#"slipway_broker_reconnects_total{worker="first"}"#);
    assert!(
        reconnects >= Some(1.0),
        "reconnect not counted: {reconnects:?}"
    );
    bus.cleanup().await;
}

/// Bytes of an envelope with another version number (and otherwise valid).
fn with_version(envelope: &Envelope, v: u16) -> Vec<u8> {
    let mut bytes = envelope.encode().unwrap();
    // The encoded map starts `{ "v": <v>, ...`: fixmap marker, fixstr "v", then the integer.
    assert_eq!(&bytes[1..3], &[0xa1, b'v']);
    assert_eq!(bytes[3], u8::try_from(WIRE_VERSION).unwrap());
    bytes[3] = u8::try_from(v).unwrap();
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_ends_in_the_dead_letter_queue_with_its_reason_and_the_worker_keeps_going() {
    let settings = test_settings("poison");
    let topology = Topology::new(&settings).with_worker("first", [Kind::BuildRequested]);
    let bus = TestBus::start(settings.clone(), topology).await;

    // The handler rejects jobs marked "reject", always asks to retry those marked "retry",
    // panics on "panic", and records the rest.
    let effects = Arc::new(EffectLog::default());
    let (reject, retry, panic) = (build_requested(), build_requested(), build_requested());
    let (reject_id, retry_id, panic_id) = (reject.job_id, retry.job_id, panic.job_id);
    let handler = {
        let effects = effects.clone();
        move |job: Job| {
            let id = job.envelope.job_id;
            let outcome = if id == reject_id {
                Outcome::Reject("Dockerfile has a parse error on line 3".into())
            } else if id == retry_id {
                Outcome::Retry("registry unreachable".into())
            } else if id == panic_id {
                panic!("handler bug");
            } else {
                effects.deliver(id);
                Outcome::Ack(Vec::new())
            };
            std::future::ready(outcome)
        }
    };
    let worker = bus.spawn_worker("first", handler);

    let publisher = &bus.publisher;
    publisher
        .publish_raw("build.requested", b"\x00garbage, not msgpack")
        .await
        .unwrap();
    publisher
        .publish_raw("build.requested", &with_version(&build_requested(), 9))
        .await
        .unwrap();
    for job in [&reject, &retry, &panic] {
        bus.publisher.publish(job).await.unwrap();
    }
    let healthy = bus.publish_jobs(3).await;
    effects.wait_for(3, DEADLINE).await.unwrap();

    let letters = bus.wait_for_dead_letters(5, DEADLINE).await;
    worker.stop().await.unwrap();

    let reason_of = |pred: &dyn Fn(&[u8]) -> bool| {
        letters
            .iter()
            .find(|l| pred(&l.body))
            .map(|l| {
                (
                    l.reason.clone(),
                    l.worker.clone(),
                    l.attempt,
                    l.routing_key.clone(),
                )
            })
            .unwrap()
    };
    let (reason, worker_name, _, routing_key) = reason_of(&|b| b.starts_with(b"\x00garbage"));
    assert!(
        reason.starts_with("undecodable: not a Slipway envelope"),
        "{reason}"
    );
    assert_eq!(worker_name.as_deref(), Some("first"));
    assert_eq!(routing_key, "build.requested");
    let (reason, ..) = reason_of(&|b| b.len() > 3 && b[3] == 9);
    assert!(
        reason.contains("envelope version 9 is not supported"),
        "{reason}"
    );
    let decoded = |id| move |b: &[u8]| Envelope::decode(b).is_ok_and(|e| e.job_id == id);
    let (reason, ..) = reason_of(&decoded(reject_id));
    assert_eq!(reason, "Dockerfile has a parse error on line 3");
    let (reason, _, attempt, _) = reason_of(&decoded(retry_id));
    assert_eq!(reason, "gave up after 3 retries: registry unreachable");
    assert_eq!(attempt, 3);
    let (reason, _, attempt, _) = reason_of(&decoded(panic_id));
    assert_eq!(
        reason,
        "gave up after 3 retries: handler panicked: handler bug"
    );
    assert_eq!(attempt, 3);
    assert_eq!(letters.len(), 5);
    assert_eq!(
        effects.effects().keys().copied().collect::<HashSet<_>>(),
        healthy.into_iter().collect(),
        "the worker kept consuming"
    );
    bus.cleanup().await;
}

/// A valid `build.requested` whose `kind` string is replaced by `kind` (MessagePack str32).
fn with_kind(envelope: &Envelope, kind: &str) -> Vec<u8> {
    let bytes = envelope.encode().unwrap();
    let mut field = vec![0xa4];
    field.extend_from_slice(b"kind");
    field.push(0xaf); // fixstr of 15 bytes: "build.requested"
    field.extend_from_slice(b"build.requested");
    let at = bytes
        .windows(field.len())
        .position(|w| w == field)
        .expect("the encoded envelope has kind = build.requested");
    let mut out = bytes[..at + 5].to_vec();
    out.push(0xdb);
    out.extend_from_slice(&u32::try_from(kind.len()).unwrap().to_be_bytes());
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(&bytes[at + field.len()..]);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_undecodable_kind_is_dead_lettered_with_a_bounded_reason_and_jobs_in_flight_complete()
 {
    let settings = slipway_broker::BrokerSettings {
        prefetch: 4,
        ..test_settings("hugekind")
    };
    let topology = Topology::new(&settings).with_worker("first", [Kind::BuildRequested]);
    let bus = TestBus::start(settings.clone(), topology).await;

    // Healthy jobs are held in flight (3 of the prefetch of 4) until the test releases them, so
    // the hostile message is settled while they are unacked on the same connection.
    let effects = Arc::new(EffectLog::default());
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let handler = {
        let (effects, release) = (effects.clone(), release.clone());
        move |job: Job| {
            let (effects, release, started_tx) =
                (effects.clone(), release.clone(), started_tx.clone());
            async move {
                let _ = started_tx.send(job.envelope.job_id);
                let _permit = release.acquire().await.expect("not closed");
                effects.deliver(job.envelope.job_id);
                Outcome::Ack(Vec::new())
            }
        }
    };
    let worker = bus.spawn_worker("first", handler);
    let healthy = bus.publish_jobs(3).await;
    let mut starts = Vec::new();
    for _ in 0..3 {
        starts.push(
            tokio::time::timeout(DEADLINE, started.recv())
                .await
                .expect("the healthy jobs start")
                .expect("handler alive"),
        );
    }
    let huge_kind = "k".repeat(1 << 20);
    bus.publisher
        .publish_raw(
            "build.requested",
            &with_kind(&build_requested(), &huge_kind),
        )
        .await
        .unwrap();

    let letters = bus.wait_for_dead_letters(1, DEADLINE).await;
    let letter = &letters[0];
    assert_eq!(
        letter.worker.as_deref(),
        Some("first"),
        "dead-lettered by the worker, not by the broker's delivery limit ({})",
        letter.reason
    );
    assert!(
        letter
            .reason
            .starts_with("undecodable: unknown message kind \"kkkk"),
        "{}",
        &letter.reason[..letter.reason.len().min(200)]
    );
    // Bounded twice: the decode error quotes 64 characters of the kind, and any header value is
    // cut to 4 KiB (`headers.rs` unit tests).
    assert!(
        letter.reason.len() <= 4096
            && letter
                .reason
                .ends_with(&format!("… ({} bytes)\"", huge_kind.len())),
        "a bounded reason: {} bytes",
        letter.reason.len()
    );
    assert_eq!(letter.routing_key, "build.requested");
    assert_eq!(
        letter.body.len(),
        with_kind(&build_requested(), &huge_kind).len()
    );
    release.add_permits(1000);
    effects.wait_for(3, DEADLINE).await.unwrap();
    worker.stop().await.unwrap();
    while let Ok(job) = started.try_recv() {
        starts.push(job);
    }
    for job in &healthy {
        assert_eq!(
            starts.iter().filter(|&started| started == job).count(),
            1,
            "the jobs in flight completed on their first delivery (the connection was not lost)"
        );
    }
    bus.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_delays_grow_and_the_attempt_count_travels_with_the_message() {
    let settings = test_settings("delays");
    let topology = Topology::new(&settings).with_worker("first", [Kind::BuildRequested]);
    let bus = TestBus::start(settings.clone(), topology).await;
    let (seen, mut arrivals) = mpsc::unbounded_channel();
    let worker = bus.spawn_worker("first", move |job: Job| {
        let arrived_at = Timestamp::now();
        let _ = seen.send((job.attempt, job.retried_at, arrived_at));
        std::future::ready(Outcome::Retry("still failing".into()))
    });
    bus.publish_jobs(1).await;

    let mut deliveries = Vec::new();
    for expected_attempt in 0..=3 {
        let delivery = tokio::time::timeout(DEADLINE, arrivals.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(delivery.0, expected_attempt, "attempt count on the message");
        deliveries.push(delivery);
    }
    let letters = bus.wait_for_dead_letters(1, DEADLINE).await;
    worker.stop().await.unwrap();

    assert!(
        deliveries[0].1.is_none(),
        "a first delivery was never retried"
    );
    // Delay of each retry, measured from the message's own x-slipway-retried-at-ms timestamp.
    let delays: Vec<u64> = deliveries[1..]
        .iter()
        .map(|(_, retried_at, arrived_at)| {
            arrived_at.unix_millis()
                - retried_at
                    .expect("retried messages carry the timestamp")
                    .unix_millis()
        })
        .collect();
    for (delay, configured) in delays.iter().zip(&settings.retry_delays_ms) {
        assert!(
            delay >= configured,
            "delay {delay} ms shorter than the configured {configured} ms"
        );
    }
    assert!(
        delays[0] < delays[1] && delays[1] < delays[2],
        "delays do not grow: {delays:?}"
    );
    // And between arrivals, on the worker's clock.
    let gaps: Vec<u64> = deliveries
        .windows(2)
        .map(|w| w[1].2.unix_millis() - w[0].2.unix_millis())
        .collect();
    assert!(
        gaps[0] < gaps[1] && gaps[1] < gaps[2],
        "gaps do not grow: {gaps:?}"
    );
    assert_eq!(letters[0].attempt, 3);
    assert_eq!(letters[0].reason, "gave up after 3 retries: still failing");
    bus.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_events_cannot_be_published_is_retried_then_dead_lettered_never_acked_away() {
    // Nobody consumes lint.passed here, so `first`'s events are unroutable. Acking the job
    // anyway would lose it; the runner must retry it and finally dead-letter it.
    let settings = test_settings("unpublishable");
    let topology = Topology::new(&settings).with_worker("first", [Kind::BuildRequested]);
    let bus = TestBus::start(settings, topology).await;
    let worker = bus.spawn_worker("first", forward);
    let jobs = bus.publish_jobs(1).await;

    let letters = bus.wait_for_dead_letters(1, DEADLINE).await;
    worker.stop().await.unwrap();
    assert_eq!(Envelope::decode(&letters[0].body).unwrap().job_id, jobs[0]);
    assert_eq!(letters[0].attempt, 3);
    let reason = &letters[0].reason;
    assert!(
        reason.starts_with("gave up after 3 retries: its events could not be published")
            && reason.contains("unroutable"),
        "{reason}"
    );
    bus.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unroutable_publish_is_an_error() {
    let settings = test_settings("unroutable");
    // Nobody consumes scan.requested in this topology.
    let topology = Topology::new(&settings).with_worker("first", [Kind::BuildRequested]);
    let bus = TestBus::start(settings, topology).await;
    let scan = build_requested().follow_up(
        slipway_common::message::test_support::sample_messages()
            .into_iter()
            .find(|m| m.kind() == Kind::ScanRequested)
            .unwrap(),
    );
    match bus.publisher.publish(&scan).await {
        Err(PublishError::Unroutable {
            routing_key,
            reply_code,
            ..
        }) => {
            assert_eq!(routing_key, "scan.requested");
            assert_eq!(reply_code, 312);
        }
        other => panic!("expected Unroutable, got {other:?}"),
    }
    bus.publisher
        .publish(&build_requested())
        .await
        .expect("routable publish works");
    bus.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_the_in_flight_job_finish_and_ack_before_returning() {
    let settings = test_settings("drain");
    let bus = TestBus::start(settings.clone(), chain_topology(&settings)).await;
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let handler = {
        let (entered, release) = (entered.clone(), release.clone());
        move |job: Job| {
            let (entered, release) = (entered.clone(), release.clone());
            async move {
                entered.notify_one();
                release.notified().await;
                Outcome::Ack(vec![lint_passed_after(&job.envelope)])
            }
        }
    };
    let first = bus.spawn_worker("first", handler);
    bus.publish_jobs(2).await;
    tokio::time::timeout(DEADLINE, entered.notified())
        .await
        .unwrap();

    first.shutdown.cancel();
    release.notify_one();
    first.stop().await.expect("clean shutdown");
    // prefetch 1: one job was in flight and finished; the other was never taken.
    let (first_queue, second_queue) = (
        bus.topology.worker_queue("first"),
        bus.topology.worker_queue("second"),
    );
    eventually(
        "one event downstream and one job still queued",
        DEADLINE,
        || async {
            let depths = bus.depths().await;
            depths[&second_queue] == 1 && depths[&first_queue] == 1
        },
    )
    .await;
    bus.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declaring_the_topology_twice_is_harmless_and_a_mismatch_names_the_argument() {
    let settings = test_settings("declare");
    let topology = Topology::pipeline(&settings);
    let bus = TestBus::start(settings.clone(), topology.clone()).await;
    let channel = bus.connection().channel().await.unwrap();
    topology
        .declare(&channel)
        .await
        .expect("second declaration");

    let changed = slipway_broker::BrokerSettings {
        delivery_limit: settings.delivery_limit + 1,
        ..settings.clone()
    };
    let channel = bus.connection().channel().await.unwrap();
    let error = Topology::pipeline(&changed)
        .declare(&channel)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("x-delivery-limit"), "{error}");
    bus.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcomes_stream_entries_are_stored_before_its_events_and_a_missing_stream_retries_the_job()
 {
    use slipway_broker::headers::JOB_ID;
    use slipway_broker::reports::ReportStreamSettings;
    use slipway_broker::streams::reader::{Filter, ReadOptions, StreamReader};
    use slipway_broker::streams::{HeaderValue, ReadFrom, StreamAppend};

    let settings = test_settings("append-then-ack");
    let retention = ReportStreamSettings {
        max_age: "1h".into(),
        max_length_bytes: 16 << 20,
        max_segment_size_bytes: 1 << 20,
    };
    let topology = chain_topology(&settings).with_reports(&retention);
    let stream = topology
        .report_stream()
        .expect("the topology declares the report stream");
    let bus = TestBus::start(settings.clone(), topology).await;
    let missing = format!("{}.nowhere", settings.namespace);
    let lost = build_requested();
    let lost_id = lost.job_id;
    // `first` stores one entry per job with its outcome; the lost job's goes to a stream that
    // does not exist.
    let first = bus.spawn_worker("first", {
        let (stream, missing) = (stream.clone(), missing.clone());
        move |job: Job| {
            let id = job.envelope.job_id;
            let entry = StreamAppend {
                stream: if id == lost_id {
                    missing.clone()
                } else {
                    stream.clone()
                },
                body: format!("report of {id}").into_bytes(),
                content_type: "text/plain".into(),
                message_id: id.to_string(),
                headers: vec![(JOB_ID.to_owned(), HeaderValue::Text(id.to_string()))],
            };
            std::future::ready(Outcome::AppendThenAck {
                appends: vec![entry],
                events: vec![lint_passed_after(&job.envelope)],
            })
        }
    });
    let (sender, mut events) = mpsc::unbounded_channel();
    let second = bus.spawn_observer("second", sender);

    bus.publisher.publish(&lost).await.unwrap();
    let jobs = bus.publish_jobs(5).await;
    let reader = StreamReader::new(bus.connection(), &stream);
    let options = ReadOptions {
        from: ReadFrom::First,
        idle_timeout: Duration::from_millis(300),
        ..ReadOptions::default()
    };
    for _ in &jobs {
        let event = tokio::time::timeout(DEADLINE, events.recv())
            .await
            .expect("every stored job's event arrives")
            .expect("the observer runs");
        assert_ne!(event.job_id, lost_id, "the lost job's event was published");
        // The event is out, so its entry was stored before it.
        let stored = reader
            .read_to_end(
                Filter::all().header(JOB_ID, event.job_id.to_string()),
                &options,
            )
            .await
            .expect("read the stream");
        assert_eq!(stored.len(), 1, "one entry for job {}", event.job_id);
        assert_eq!(
            stored[0].body,
            format!("report of {}", event.job_id).into_bytes()
        );
    }

    // The job whose entry could not be stored was retried, never acked, then dead-lettered.
    let letters = bus.wait_for_dead_letters(1, DEADLINE).await;
    first.stop().await.unwrap();
    second.stop().await.unwrap();
    assert_eq!(letters.len(), 1);
    let reason = letters[0].reason.clone();
    assert!(
        reason.contains("could not be appended") && reason.contains(&missing),
        "{reason}"
    );
    assert_eq!(letters[0].attempt, 3, "{letters:?}");
    while let Ok(event) = events.try_recv() {
        assert_ne!(event.job_id, lost_id, "the lost job's event was published");
    }
    bus.cleanup().await;
}

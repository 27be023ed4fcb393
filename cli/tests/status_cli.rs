//! `slipway status` against a real RabbitMQ: per stage, ready messages, a job in flight (held by
//! a worker), consumers, and a dead letter, as a table and as JSON; its exit code.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use slipway_broker::{Job, Outcome, Topology};
use slipway_common::message::test_support::sample_messages;
use slipway_common::{Cause, Envelope, Kind};
use slipway_tests::{TestBus, eventually, test_settings};
use tokio::sync::Notify;

mod common;

use common::{stderr, stdout};

fn of_kind(kind: Kind) -> Envelope {
    let message = sample_messages()
        .into_iter()
        .find(|m| m.kind() == kind)
        .expect("a sample of every kind");
    Envelope::new_job(Cause::User, message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counts_ready_in_flight_consumers_and_dead_letters_per_stage() {
    let settings = test_settings("cli-status");
    let namespace = settings.namespace.clone();
    let bus = TestBus::start(settings.clone(), Topology::pipeline(&settings)).await;

    // Two requests wait for lint (no consumer); the build worker rejects its first job (a dead
    // letter) and holds the second (in flight).
    let release = Arc::new(Notify::new());
    let held = Arc::new(Notify::new());
    let seen = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let worker = bus.spawn_worker("build", {
        let (release, held, seen) = (Arc::clone(&release), Arc::clone(&held), Arc::clone(&seen));
        move |_job: Job| {
            let (release, held, seen) =
                (Arc::clone(&release), Arc::clone(&held), Arc::clone(&seen));
            async move {
                if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    return Outcome::Reject("not buildable".into());
                }
                held.notify_one();
                release.notified().await;
                Outcome::Ack(Vec::new())
            }
        }
    });
    for _ in 0..2 {
        bus.publisher
            .publish(&of_kind(Kind::BuildRequested))
            .await
            .unwrap();
    }
    bus.publisher
        .publish(&of_kind(Kind::LintPassed))
        .await
        .unwrap();
    bus.publisher
        .publish(&of_kind(Kind::LintPassed))
        .await
        .unwrap();
    held.notified().await;

    async fn status_json(namespace: &str) -> serde_json::Value {
        let output = common::slipway_in(namespace, &["status", "--format", "json"]).await;
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        serde_json::from_str(&stdout(&output)).expect("JSON")
    }
    fn stage(json: &serde_json::Value, name: &str) -> serde_json::Value {
        json["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stage"] == name)
            .cloned()
            .unwrap()
    }
    eventually("the counts settle", Duration::from_secs(30), || {
        let namespace = namespace.clone();
        async move {
            let json = status_json(&namespace).await;
            stage(&json, "lint")["ready"] == 2
                && stage(&json, "build")["in_flight"] == 1
                && stage(&json, "build")["consumers"] == 1
                && json["dead_letters"] == 1
        }
    })
    .await;
    let json = status_json(&namespace).await;
    assert_eq!(stage(&json, "scan")["consumers"], 0);
    let stages: Vec<&str> = json["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["lint", "build", "scan", "notify"]);

    let table = common::slipway_in(&namespace, &["status"]).await;
    assert_eq!(table.status.code(), Some(0));
    let text = stdout(&table);
    assert!(
        text.lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            == ["stage", "ready", "in-flight", "retrying", "consumers"],
        "{text}"
    );
    let build_row: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("build"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(build_row, ["build", "0", "1", "0", "1"], "{text}");
    assert!(text.contains("dead letters: 1"), "{text}");
    assert_eq!(
        text.lines().count(),
        6,
        "one row per stage, no retry queue rows: {text}"
    );

    release.notify_one();
    worker.stop().await.unwrap();
    bus.cleanup().await;
}

/// An endpoint that answers forever, a byte a second, or floods: `slipway status` still answers
/// within its 5 s limit (plus the broker's part), without the in-flight counts and saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_endpoint_that_trickles_or_floods_costs_at_most_its_limit() {
    let settings = test_settings("cli-status-bounds");
    let namespace = settings.namespace.clone();
    let bus = TestBus::start(settings.clone(), Topology::pipeline(&settings)).await;
    for (name, byte_every) in [
        ("trickle", Some(Duration::from_millis(900))),
        ("flood", None),
    ] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let port = listener.local_addr().expect("address").port();
        std::thread::spawn(move || {
            let Ok((mut connection, _)) = listener.accept() else {
                return;
            };
            let _ = connection.write_all(b"HTTP/1.1 200 OK\r\n\r\n");
            let chunk = vec![b'#'; 1 << 16];
            loop {
                let sent = match byte_every {
                    Some(pause) => {
                        std::thread::sleep(pause);
                        connection.write_all(b"#")
                    }
                    None => connection.write_all(&chunk),
                };
                if sent.is_err() {
                    return;
                }
            }
        });
        let started = std::time::Instant::now();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_slipway"));
        command
            .arg("status")
            .env("SLIPWAY_BROKER__URL", slipway_tests::AMQP_URL)
            .env("SLIPWAY_BROKER__NAMESPACE", &namespace)
            .env(
                "SLIPWAY_STATUS__BROKER_METRICS_URL",
                format!("http://127.0.0.1:{port}"),
            );
        let output = tokio::task::spawn_blocking(move || command.output().expect("run slipway"))
            .await
            .expect("slipway ran");
        let took = started.elapsed();
        assert!(output.status.success(), "{name}: {}", stderr(&output));
        assert!(took < Duration::from_secs(15), "{name}: took {took:?}");
        assert!(
            stderr(&output).contains("in-flight counts unknown"),
            "{name}: {}",
            stderr(&output)
        );
    }
    bus.cleanup().await;
}

//! The least-privilege deployment of `slipway definitions`, imported into a real RabbitMQ: each
//! role can do its work and the broker refuses (403, the channel closed) what belongs to another
//! role. The definitions' topology is exactly what the workers declare (no 406 when a declaring
//! process meets it), and a worker that only verifies names what an administrator forgot.

use std::time::Duration;

use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, QueueDeclareOptions,
    QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};
use slipway_broker::logs::declare_log_stream;
use slipway_broker::reports::declare_report_stream;
use slipway_broker::{
    BrokerConnection, BrokerError, BrokerSettings, Consumer, LeaderElection, LeaderTerm, Outcome,
    Publisher, Topology, TopologyMode,
};
use slipway_common::Kind;
use slipway_tests::vhost::{LeastPrivilegeVhost, test_logs, test_reports};
use slipway_tests::{build_requested, follow_up_of_kind, test_settings};
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(30);

async fn connect(settings: &BrokerSettings, name: &str) -> BrokerConnection {
    BrokerConnection::connect(settings, name)
        .await
        .unwrap_or_else(|e| panic!("{name} connects: {e}"))
}

/// `result` is the broker's 403 (ACCESS_REFUSED) naming `resource`.
fn assert_refused<T: std::fmt::Debug, E: std::fmt::Display>(
    what: &str,
    result: Result<T, E>,
    resource: &str,
) {
    match result {
        Ok(value) => panic!("{what}: allowed ({value:?}), expected a 403"),
        Err(error) => {
            let text = error.to_string();
            assert!(
                text.contains("ACCESS_REFUSED") && text.contains(resource),
                "{what}: {text}"
            );
        }
    }
}

/// Publish `body` to `exchange` with `key` on `channel` (confirm mode) and wait for the confirm.
async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    key: &str,
) -> Result<(), lapin::Error> {
    channel
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await?;
    let confirm = channel
        .basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default(),
        )
        .await?;
    confirm.await.map(drop)
}

async fn consume(channel: &Channel, queue: &str) -> Result<(), lapin::Error> {
    channel
        .basic_consume(
            queue.into(),
            "least-privilege-test".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_definitions_hold_exactly_the_topology_the_workers_declare() {
    let deployment = LeastPrivilegeVhost::import("same", &test_settings("lp-same"));
    // A process that declares (the administrator, or a worker with broker.topology = declare)
    // meets the imported queues: any argument that differs would be a 406.
    let admin = connect(&deployment.admin, "lp-admin").await;
    let channel = admin.channel().await.expect("channel");
    Topology::pipeline(&deployment.admin)
        .with_reports(&test_reports())
        .declare(&channel)
        .await
        .expect("the imported topology has the declared arguments");
    declare_log_stream(&admin, &deployment.admin, &test_logs())
        .await
        .expect("the log stream has the declared arguments");
    declare_report_stream(&admin, &deployment.admin, &test_reports())
        .await
        .expect("the report stream has the declared arguments");
    // Each elected role joins its election: the lease queue's arguments match, and its lease
    // reaches the lease queue through the queue exchange.
    for role in ["notify", "repo-tracker", "rescan-scheduler"] {
        let settings = deployment.settings_for(role);
        let shutdown = CancellationToken::new();
        let election = LeaderElection::new(&settings, role);
        let status = election.status();
        let task = tokio::spawn(
            election.run(shutdown.clone(), |term: LeaderTerm| async move {
                term.token.cancelled().await;
            }),
        );
        slipway_tests::eventually(&format!("{role} leads as its own user"), DEADLINE, || {
            let leading = status.is_leader();
            async move { leading }
        })
        .await;
        shutdown.cancel();
        task.await
            .expect("the election task")
            .expect("a clean stop");
    }
    // The queue-length policy holds every worker queue, retry queue and the dead letters, and no
    // stream (streams have their own retention).
    let listing = slipway_tests::rabbitmqctl(&[
        "list_queues",
        "-q",
        "--no-table-headers",
        "-p",
        &deployment.vhost,
        "name",
        "policy",
    ])
    .expect("list the queues");
    let policy_of = |queue: &str| {
        listing.lines().find_map(|line| {
            let (name, policy) = line.split_once('\t')?;
            (name == queue).then(|| policy.trim().to_owned())
        })
    };
    for queue in ["slipway.notify", "slipway.dead", "slipway.lint.retry.200ms"] {
        assert_eq!(
            policy_of(queue).as_deref(),
            Some("slipway-queue-length"),
            "{queue}: {listing}"
        );
    }
    for stream in ["slipway.history", "slipway.logs", "slipway.notify.leader"] {
        assert_eq!(
            policy_of(stream).as_deref(),
            Some(""),
            "{stream}: {listing}"
        );
    }
    admin.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lint_user_cannot_publish_build_succeeded_but_publishes_its_own_kinds() {
    let deployment = LeastPrivilegeVhost::import("lint", &test_settings("lp-lint"));
    let lint = connect(&deployment.settings_for("lint"), "lp-lint").await;
    publish_confirmed(
        &lint.channel().await.expect("channel"),
        "slipway",
        "lint.passed",
    )
    .await
    .expect("lint publishes lint.passed");
    assert_refused(
        "lint publishes build.succeeded",
        publish_confirmed(
            &lint.channel().await.expect("channel"),
            "slipway",
            "build.succeeded",
        )
        .await,
        "topic 'build.succeeded'",
    );
    // Nor around the topic permissions: not through the default exchange, not into another
    // worker's retry queue.
    assert_refused(
        "lint publishes to the default exchange",
        publish_confirmed(&lint.channel().await.expect("channel"), "", "slipway.build").await,
        "amq.default",
    );
    assert_refused(
        "lint addresses the build's retry queue",
        publish_confirmed(
            &lint.channel().await.expect("channel"),
            "slipway.queues",
            "slipway.build.retry.200ms",
        )
        .await,
        "slipway.build.retry.200ms",
    );
    lint.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scan_user_cannot_read_the_build_queue_but_reads_its_own() {
    let deployment = LeastPrivilegeVhost::import("scan", &test_settings("lp-scan"));
    let scan = connect(&deployment.settings_for("scan"), "lp-scan").await;
    consume(&scan.channel().await.expect("channel"), "slipway.scan")
        .await
        .expect("scan consumes its queue");
    assert_refused(
        "scan consumes the build queue",
        consume(&scan.channel().await.expect("channel"), "slipway.build").await,
        "queue 'slipway.build'",
    );
    assert_refused(
        "scan takes a dead letter",
        scan.channel()
            .await
            .expect("channel")
            .basic_get("slipway.dead".into(), BasicGetOptions::default())
            .await,
        "queue 'slipway.dead'",
    );
    scan.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_user_submits_and_reads_streams_and_may_do_nothing_else() {
    let deployment = LeastPrivilegeVhost::import("cli", &test_settings("lp-cli"));
    let cli = connect(&deployment.settings_for("cli"), "lp-cli").await;
    let channel = || async { cli.channel().await.expect("channel") };
    for key in ["build.requested", "scan.requested"] {
        publish_confirmed(&channel().await, "slipway", key)
            .await
            .unwrap_or_else(|e| panic!("the CLI publishes {key}: {e}"));
    }
    for stream in ["slipway.history", "slipway.logs", "slipway.reports"] {
        let reader = channel().await;
        reader
            .basic_qos(10, lapin::options::BasicQosOptions::default())
            .await
            .expect("qos");
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-stream-offset".into(),
            lapin::types::AMQPValue::LongString("first".into()),
        );
        reader
            .basic_consume(
                stream.into(),
                "lp-cli-reader".into(),
                BasicConsumeOptions::default(),
                arguments,
            )
            .await
            .unwrap_or_else(|e| panic!("the CLI reads {stream}: {e}"));
    }
    // Status is passive declarations: no permission needed, and they work.
    let status = channel().await;
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    for queue in ["slipway.lint", "slipway.dead", "slipway.notify.leader"] {
        status
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
            .unwrap_or_else(|e| panic!("the CLI looks at {queue}: {e}"));
    }

    assert_refused(
        "the CLI publishes build.succeeded",
        publish_confirmed(&channel().await, "slipway", "build.succeeded").await,
        "topic 'build.succeeded'",
    );
    assert_refused(
        "the CLI addresses a retry queue",
        publish_confirmed(
            &channel().await,
            "slipway.queues",
            "slipway.lint.retry.200ms",
        )
        .await,
        "exchange 'slipway.queues'",
    );
    assert_refused(
        "the CLI consumes the lint queue",
        consume(&channel().await, "slipway.lint").await,
        "queue 'slipway.lint'",
    );
    assert_refused(
        "the CLI takes a dead letter",
        channel()
            .await
            .basic_get("slipway.dead".into(), BasicGetOptions::default())
            .await,
        "queue 'slipway.dead'",
    );
    assert_refused(
        "the CLI purges the dead letters",
        channel()
            .await
            .queue_purge("slipway.dead".into(), QueuePurgeOptions::default())
            .await,
        "queue 'slipway.dead'",
    );
    assert_refused(
        "the CLI deletes a queue",
        channel()
            .await
            .queue_delete("slipway.lint".into(), QueueDeleteOptions::default())
            .await,
        "queue 'slipway.lint'",
    );
    assert_refused(
        "the CLI declares a queue",
        channel()
            .await
            .queue_declare(
                "slipway.mine".into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await,
        "queue 'slipway.mine'",
    );
    cli.close().await;
}

/// The lint role as a real consumer runner: its retry goes through the queue exchange into its
/// own delay queue and back, its dead letter reaches `N.dead`, its result is published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_least_privilege_worker_retries_dead_letters_and_publishes() {
    let deployment = LeastPrivilegeVhost::import("runner", &test_settings("lp-runner"));
    let settings = deployment.settings_for("lint");
    let admin = connect(&deployment.admin, "lp-runner-admin").await;
    let topology = Topology::pipeline(&deployment.admin);
    let publisher = Publisher::open(&admin, &topology).await.expect("publisher");

    let (seen, mut attempts) = tokio::sync::mpsc::unbounded_channel();
    let handler = move |job: slipway_broker::Job| {
        let seen = seen.clone();
        async move {
            let _ = seen.send((job.envelope.job_id, job.attempt));
            match (job.envelope.cause.to_string().as_str(), job.attempt) {
                (_, 0) => Outcome::Retry("the first attempt retries".to_owned()),
                ("schedule", _) => Outcome::Reject("poison".to_owned()),
                _ => Outcome::Ack(vec![follow_up_of_kind(&job.envelope, Kind::LintPassed)]),
            }
        }
    };
    let shutdown = CancellationToken::new();
    let runner = tokio::spawn(
        Consumer::new(
            slipway_common::telemetry::WorkerLabel::Stage("lint"),
            settings,
            Topology::pipeline(&deployment.settings_for("lint")),
            handler,
        )
        .run(shutdown.clone()),
    );

    let good = build_requested();
    let mut poison = build_requested();
    poison.cause = slipway_common::Cause::Schedule;
    publisher
        .publish_all(&[good.clone(), poison.clone()])
        .await
        .expect("publish the jobs");
    let mut seen_attempts = Vec::new();
    while seen_attempts.len() < 4 {
        let next = tokio::time::timeout(DEADLINE, attempts.recv())
            .await
            .expect("the runner handles every attempt")
            .expect("the handler lives");
        seen_attempts.push(next);
    }
    seen_attempts.sort();
    let mut expected = vec![
        (good.job_id, 0),
        (good.job_id, 1),
        (poison.job_id, 0),
        (poison.job_id, 1),
    ];
    expected.sort();
    assert_eq!(
        seen_attempts, expected,
        "each job retried once through its delay queue"
    );

    slipway_tests::eventually(
        "the poison in the dead letters and lint.passed in build",
        DEADLINE,
        || async {
            let depths = slipway_broker::inspect::queue_depths(&admin, &topology)
                .await
                .expect("depths");
            depths
                .iter()
                .any(|(queue, ready)| queue == "slipway.dead" && *ready == 1)
                && depths
                    .iter()
                    .any(|(queue, ready)| queue == "slipway.build" && *ready == 1)
        },
    )
    .await;
    shutdown.cancel();
    runner
        .await
        .expect("the runner task")
        .expect("a clean stop");
    admin.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifying_a_namespace_nobody_declared_names_what_is_missing() {
    slipway_tests::ensure_rabbitmq();
    let settings = BrokerSettings {
        topology: TopologyMode::Verify,
        ..test_settings("lp-missing")
    };
    let connection = connect(&settings, "lp-missing").await;
    let channel = connection.channel().await.expect("channel");
    let error = Topology::pipeline(&settings)
        .declare(&channel)
        .await
        .expect_err("nothing was declared");
    let text = error.to_string();
    assert!(
        matches!(&error, BrokerError::Missing { what } if *what == format!("exchange {}", settings.namespace)),
        "{error:?}"
    );
    assert!(
        text.contains("import_definitions") && text.contains("broker.topology"),
        "{text}"
    );
    connection.close().await;
}

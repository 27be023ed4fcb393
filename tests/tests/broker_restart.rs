//! Invariant 2 across a broker restart: `rabbitmqctl stop_app` / `start_app` in the middle of a
//! run of 500 jobs; the workers reconnect by themselves and every job takes effect exactly once.
//! (Alone in its test binary: it takes the broker away from everything else in the process.)

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use slipway_broker::{BrokerSettings, Job, Outcome};
use slipway_tests::{
    EffectLog, TestBus, chain_topology, lint_passed_after, metric_value, rabbitmqctl,
    recording_handler, test_settings,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_reconnect_after_a_broker_restart_and_all_500_jobs_complete() {
    let settings = BrokerSettings {
        prefetch: 4,
        ..test_settings("restart")
    };
    let bus = TestBus::start(settings.clone(), chain_topology(&settings)).await;
    let jobs = bus.publish_jobs(500).await;

    let effects = Arc::new(EffectLog::default());
    // Slow enough that the restart lands mid-run.
    let first = bus.spawn_worker("first", |job: Job| async move {
        tokio::time::sleep(Duration::from_millis(40)).await;
        Outcome::Ack(vec![lint_passed_after(&job.envelope)])
    });
    let second = bus.spawn_worker("second", recording_handler(&effects));

    effects.wait_for(50, Duration::from_secs(60)).await.unwrap();
    rabbitmqctl(&["stop_app"]).unwrap();
    let done_before_restart = effects.effects().len();
    rabbitmqctl(&["start_app"]).unwrap();
    rabbitmqctl(&["await_startup", "--timeout", "120"]).unwrap();
    assert!(done_before_restart < 500, "the restart happened mid-run");

    if let Err(stalled) = effects.wait_for(500, Duration::from_secs(180)).await {
        // What the broker saw, so a stall in CI can be told apart: a worker not consuming
        // (consumers 0), or deliveries held unacked by a stuck session.
        let queues = rabbitmqctl(&[
            "list_queues",
            "name",
            "messages_ready",
            "messages_unacknowledged",
            "consumers",
        ]);
        let connections = rabbitmqctl(&["list_connections", "name", "state", "channels"]);
        panic!("{stalled}\nqueues: {queues:?}\nconnections: {connections:?}");
    }
    first.stop().await.unwrap();
    second.stop().await.unwrap();

    let applied = effects.effects();
    assert_eq!(
        applied.keys().copied().collect::<HashSet<_>>(),
        jobs.into_iter().collect()
    );
    assert!(
        applied.values().all(|&n| n == 1),
        "an effect was applied twice"
    );
    for worker in ["first", "second"] {
        let reconnects = metric_value(&format!(
            "slipway_broker_reconnects_total{{worker=\"{worker}\"}}"
        ));
        assert!(
            reconnects >= Some(1.0),
            "{worker} did not count its reconnect: {reconnects:?}"
        );
    }
    bus.cleanup().await;
}

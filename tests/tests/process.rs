//! Invariant 2 at the process level: a worker process killed with SIGKILL at any moment loses no
//! job, and SIGTERM lets the in-flight job finish, then the process exits 0.

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use slipway_tests::{
    EffectLog, TestBus, chain_topology, eventually, recording_handler, test_settings,
};
use tokio::process::{Child, Command};

const DEADLINE: Duration = Duration::from_secs(90);

fn chain_stage(namespace: &str, work_ms: u64, prefetch: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_chain-stage"))
        .args(["--namespace", namespace, "--work-ms", &work_ms.to_string()])
        .args(["--prefetch", &prefetch.to_string()])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start chain-stage")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_a_worker_mid_run_loses_no_job_and_duplicates_no_effect() {
    let settings = test_settings("sigkill");
    let bus = TestBus::start(settings.clone(), chain_topology(&settings)).await;
    let effects = Arc::new(EffectLog::default());
    let second = bus.spawn_worker("second", recording_handler(&effects));
    let jobs = bus.publish_jobs(200).await;

    let mut victim = chain_stage(&settings.namespace, 10, 4);
    effects.wait_for(40, DEADLINE).await.unwrap();
    victim.start_kill().expect("SIGKILL");
    victim.wait().await.unwrap();
    assert!(effects.effects().len() < 200, "the kill happened mid-run");

    let mut successor = chain_stage(&settings.namespace, 0, 4);
    effects.wait_for(200, DEADLINE).await.unwrap();
    successor.start_kill().unwrap();
    second.stop().await.unwrap();

    let applied = effects.effects();
    assert_eq!(
        applied.keys().copied().collect::<HashSet<_>>(),
        jobs.into_iter().collect()
    );
    assert!(applied.values().all(|&n| n == 1));
    bus.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_in_flight_job_then_exits_zero() {
    let settings = test_settings("sigterm");
    let bus = TestBus::start(settings.clone(), chain_topology(&settings)).await;
    let effects = Arc::new(EffectLog::default());
    let second = bus.spawn_worker("second", recording_handler(&effects));
    let jobs = bus.publish_jobs(1).await;

    let mut worker = chain_stage(&settings.namespace, 1_500, 1);
    let first_queue = bus.topology.worker_queue("first");
    eventually("the job to be taken", DEADLINE, || async {
        bus.depths().await[&first_queue] == 0
    })
    .await;
    let pid = worker.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(DEADLINE, worker.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit.code(), Some(0), "exit status {exit:?}");

    effects.wait_for(1, DEADLINE).await.unwrap();
    assert_eq!(effects.effects()[&jobs[0]], 1);
    assert_eq!(
        effects.deliveries()[&jobs[0]],
        1,
        "finished, not abandoned and redone"
    );
    second.stop().await.unwrap();
    bus.cleanup().await;
}

//! The layer cache through the real build worker, dockerd 20.10's classic builder (the default
//! for plain Dockerfiles), the registry and RabbitMQ:
//! - on by default, and keyed on the network mode: a `RUN` step first built with the host's
//!   network is built again, without network, for an entry without network (its smoke test sees
//!   the step's own answer), and a second such entry takes it from the cache;
//! - a rebuild for a package update builds every layer afresh although the registry holds an
//!   image of the same inputs, and its redelivery does not build a second time.

mod rig;

use rig::*;
use slipway_common::index::NetworkMode;
use slipway_common::{Cause, Message};
use slipway_tests::git::LocalRepo;

/// The lines of `log` that follow the step line containing `step` (up to the next step).
fn step_lines<'a>(log: &'a str, step: &str) -> Vec<&'a str> {
    log.lines()
        .skip_while(|line| !(line.starts_with("Step ") && line.contains(step)))
        .skip(1)
        .take_while(|line| !line.starts_with("Step "))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_classic_cache_is_on_by_default_and_a_host_network_layer_never_serves_a_build_without_network()
 {
    let mut rig = BuildRig::start("cache-network", |build| {
        build.allow_host_network = true;
    })
    .await;
    // The step records which network it ran with; the marker keeps other runs' layers away.
    let marker = app_id("net");
    let dockerfile = format!(
        "FROM slipway/debian:bookworm\nRUN (bash -c 'echo > /dev/tcp/127.0.0.1/5000' && echo host || echo none) > /{marker}; echo ran-{marker}\n"
    );
    let build = |name: &str, network: NetworkMode, expect: &str| {
        let repo = LocalRepo::new(name);
        let sha = repo.commit(&[("Dockerfile", dockerfile.as_str())], name);
        let mut entry = entry(&repo, name);
        entry.network = network;
        entry.smoke_test = Some(format!("test \"$(cat /{marker})\" = {expect}"));
        (repo, entry, sha)
    };

    // With the host's network first.
    let (_host_repo, host, host_sha) = build("cache-host", NetworkMode::Host, "host");
    let job = rig.request(&host, &host_sha).await;
    let outcome = rig.outcome(job).await;
    let log = rig.log_of(job).await;
    assert!(
        matches!(outcome, Message::BuildSucceeded(_)),
        "{outcome:?}\n{log}"
    );
    assert!(
        log.contains("slipway: layer cache on, keyed on the network mode"),
        "on by default for the classic builder: {log}"
    );
    assert!(
        log.contains("slipway: building with the classic builder"),
        "{log}"
    );

    // The same Dockerfile without network: the step runs again and sees no network.
    let (_none_repo, none, none_sha) = build("cache-none", NetworkMode::None, "none");
    let job = rig.request(&none, &none_sha).await;
    let outcome = rig.outcome(job).await;
    let log = rig.log_of(job).await;
    assert!(
        matches!(outcome, Message::BuildSucceeded(_)),
        "the smoke test sees `none`: the host build's layer was not reused: {outcome:?}\n{log}"
    );
    let run = step_lines(&log, "RUN (bash");
    let ran = format!("ran-{marker}");
    assert!(
        run.iter().any(|line| line.ends_with(&ran)),
        "the step ran: {run:?}\n{log}"
    );

    // Another entry without network, from another repository: the step comes from the cache.
    let (_again_repo, again, again_sha) = build("cache-none-again", NetworkMode::None, "none");
    let job = rig.request(&again, &again_sha).await;
    let outcome = rig.outcome(job).await;
    let log = rig.log_of(job).await;
    assert!(
        matches!(outcome, Message::BuildSucceeded(_)),
        "{outcome:?}\n{log}"
    );
    let run = step_lines(&log, "RUN (bash");
    assert!(
        run.contains(&" ---> Using cache") && !run.iter().any(|line| line.ends_with(&ran)),
        "the step came from the cache: {run:?}\n{log}"
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_update_rebuild_builds_afresh_and_its_redelivery_does_not_build_twice() {
    let mut rig = BuildRig::start("cache-fresh", |_| {}).await;
    let marker = app_id("fresh");
    let repo = LocalRepo::new("cache-fresh");
    let sha = repo.commit(
        &[(
            "Dockerfile",
            &format!(
                "FROM slipway/debian:bookworm\nRUN cat /proc/sys/kernel/random/uuid > /stamp; echo stamped-{marker}\n"
            ),
        )],
        "a step whose layer differs on each run",
    );
    let entry = entry(&repo, "cache-fresh");
    let repository = format!("{}/{}", entry.app_id, entry.job_id);

    let first = rig.request(&entry, &sha).await;
    let Message::BuildSucceeded(built) = rig.outcome(first).await else {
        panic!("the first build: {}", rig.log_of(first).await)
    };

    // The same inputs again for a user: the registry's image stands.
    let again = rig.request(&entry, &sha).await;
    let Message::BuildSucceeded(same) = rig.outcome(again).await else {
        panic!("{}", rig.log_of(again).await)
    };
    assert_eq!(same.digest, built.digest);
    let log = rig.log_of(again).await;
    assert!(log.contains("already holds this build ("), "{log}");

    // A package was updated: the step runs again, and a new image replaces the old one.
    let update = rig
        .request_for(Cause::PackageUpdate("openssl".into()), &entry, &sha)
        .await;
    let outcome = rig.outcome(update.job_id).await;
    let log = rig.log_of(update.job_id).await;
    let Message::BuildSucceeded(fresh) = outcome else {
        panic!("{outcome:?}\n{log}")
    };
    assert!(
        log.contains("slipway: layer cache off: this rebuild is for a package update"),
        "{log}"
    );
    assert!(
        log.contains(&format!("stamped-{marker}")),
        "the step ran again: {log}"
    );
    assert!(!log.contains("Using cache"), "{log}");
    assert_ne!(fresh.digest, built.digest, "a new image");
    assert_eq!(
        registry_digest(&repository, "latest"),
        Some(fresh.digest.to_string())
    );

    // Its redelivery (the worker died after the push): this job's own image stands.
    rig.bus.publisher.publish(&update).await.expect("publish");
    let Message::BuildSucceeded(redelivered) = rig.outcome(update.job_id).await else {
        panic!("{}", rig.log_of(update.job_id).await)
    };
    assert_eq!(redelivered.digest, fresh.digest, "not built a second time");
    rig.stop().await;
}

//! The build sandbox against the real dockerd, registry and RabbitMQ: an entry asking for the host
//! network is refused unless the worker allows it; prebuild scripts and smoke tests hold no
//! capability, cannot gain one, see no Docker socket and (by default) cannot write their root; a
//! symlink in the repository is never followed out of it, neither into the context nor through the
//! prebuild mount; a smoke test past its memory cap fails the build with that reason.

mod rig;

use rig::*;
use slipway_common::Message;
use slipway_common::index::NetworkMode;
use slipway_common::message::BuildStage;
use slipway_tests::TempDir;
use slipway_tests::git::LocalRepo;

/// A `RUN` step that succeeds only with the host's network (the registry on its loopback).
const NEEDS_NETWORK: &str =
    "FROM slipway/debian:bookworm\nRUN bash -c 'echo > /dev/tcp/127.0.0.1/5000'\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_network_is_refused_by_default_with_the_reason_on_the_job() {
    let mut rig = BuildRig::start("sandbox-hostnet", |_| {}).await;
    let repo = LocalRepo::new("hostnet");
    let sha = repo.commit(&[("Dockerfile", NEEDS_NETWORK)], "needs network");
    let mut entry = entry(&repo, "hostnet");
    entry.network = NetworkMode::Host;
    let job = rig.request(&entry, &sha).await;
    let outcome = rig.outcome(job).await;
    let Message::BuildFailed(failed) = outcome else {
        panic!("network: host must be refused by a worker that does not allow it: {outcome:?}")
    };
    assert_eq!(failed.stage, BuildStage::Build);
    assert!(
        failed.error.contains("network: host") && failed.error.contains("allow_host_network"),
        "the reason names the entry's request and the setting: {}",
        failed.error
    );
    let log = rig.log_of(job).await;
    assert!(!log.contains("Step 1/"), "nothing was built: {log}");
    let repository = format!("{}/{}", entry.app_id, entry.job_id);
    assert_eq!(registry_digest(&repository, "latest-slipway-test"), None);
    rig.stop().await;

    // A worker whose operators allow it builds the same entry, with the host's network.
    let mut rig = BuildRig::start("sandbox-hostnet-allowed", |build| {
        build.allow_host_network = true;
    })
    .await;
    let job = rig.request(&entry, &sha).await;
    let outcome = rig.outcome(job).await;
    assert!(
        matches!(outcome, Message::BuildSucceeded(_)),
        "allowed, the step reaches the registry: {outcome:?}"
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prebuild_and_smoke_test_hold_no_capability_see_no_docker_socket_and_follow_no_symlink_out()
{
    let mut rig = BuildRig::start("sandbox-caps", |_| {}).await;
    // A file outside the repository that a followed symlink would leak into the image.
    let outside = TempDir::new("sandbox-outside");
    let marker = format!("host-secret-{}", std::process::id());
    outside.file("secret", &marker);
    let secret = outside.path().join("secret");
    let repo = LocalRepo::new("caps");
    let prebuild = "#!/bin/sh\nout=sandbox.txt\n\
        grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs):' /proc/self/status > $out\n\
        if [ -e /var/run/docker.sock ] || [ -e /run/docker.sock ] || [ -e ./sock ]; then echo socket-visible >> $out; else echo no-socket >> $out; fi\n\
        if touch /root-write 2>/dev/null; then echo root-writable >> $out; else echo root-read-only >> $out; fi\n\
        if touch /tmp/scratch; then echo tmp-writable >> $out; fi\n\
        cat $out\n";
    // Symlinks out of the repository: to a host file, and to the Docker socket.
    std::os::unix::fs::symlink(&secret, repo.path().join("leak")).expect("symlink");
    std::os::unix::fs::symlink("/var/run/docker.sock", repo.path().join("sock")).expect("symlink");
    repo.git(&["add", "--", "leak", "sock"]);
    let sha = repo.commit(
        &[
            ("Dockerfile", "FROM slipway/debian:bookworm\nCOPY . /ctx/\n"),
            ("prepare.sh", prebuild),
        ],
        "sandbox probes",
    );
    let mut entry = entry(&repo, "caps");
    entry.prebuild_script = Some("prepare.sh".into());
    entry.smoke_test = Some(format!(
        "cat /ctx/sandbox.txt; grep -E '^(CapEff|NoNewPrivs):' /proc/self/status; \
         grep -qx 'CapEff:\t0000000000000000' /ctx/sandbox.txt && \
         grep -qx 'CapBnd:\t0000000000000000' /ctx/sandbox.txt && \
         grep -qx 'NoNewPrivs:\t1' /ctx/sandbox.txt && \
         grep -qx no-socket /ctx/sandbox.txt && grep -qx root-read-only /ctx/sandbox.txt && \
         grep -qx tmp-writable /ctx/sandbox.txt && \
         grep -qx 'CapEff:\t0000000000000000' /proc/self/status && \
         grep -qx 'NoNewPrivs:\t1' /proc/self/status && \
         test -L /ctx/leak && test -L /ctx/sock && ! grep -rqs '{marker}' /ctx && \
         ! test -e /var/run/docker.sock && ! touch /smoke-root-write"
    ));
    let job = rig.request(&entry, &sha).await;
    let outcome = rig.outcome(job).await;
    let log = rig.log_of(job).await;
    assert!(
        matches!(outcome, Message::BuildSucceeded(_)),
        "the probes must all hold: {outcome:?}\n{log}"
    );
    assert!(
        log.contains("CapEff:\t0000000000000000"),
        "the prebuild's own view is in the log: {log}"
    );
    rig.stop().await;
}

/// A `perl` that holds a 128 MiB string (about twice that at its peak).
const HUNGRY: &str = "perl -e '$x = \"a\" x (128 * 1024 * 1024); print length($x)'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_past_their_memory_cap_are_killed_and_the_build_fails_naming_the_cap() {
    const CAP: u64 = 64 * 1024 * 1024;
    let mut rig = BuildRig::start("sandbox-memory", |build| {
        build.container_memory_bytes = CAP;
        build.build_memory_bytes = CAP;
    })
    .await;
    let repo = LocalRepo::new("memory");

    // A RUN step past the build's cap.
    let hungry_build = repo.commit(
        &[(
            "Dockerfile",
            &format!("FROM slipway/debian:bookworm\nRUN {HUNGRY}\n"),
        )],
        "hungry build step",
    );
    let entry = entry(&repo, "memory");
    let job = rig.request(&entry, &hungry_build).await;
    let outcome = rig.outcome(job).await;
    let Message::BuildFailed(failed) = outcome else {
        panic!("a RUN step past the cap must fail the build: {outcome:?}")
    };
    assert_eq!(failed.stage, BuildStage::Build);
    assert!(
        failed.error.contains("137")
            && failed.error.contains("memory limit of 64 MiB")
            && failed.error.contains("[build].build_memory_bytes"),
        "{}",
        failed.error
    );

    // A smoke test past the containers' cap: the image is fine, the test is killed.
    let fine = repo.commit(
        &[("Dockerfile", "FROM slipway/debian:bookworm\nRUN true\n")],
        "fine",
    );
    let mut tested = entry.clone();
    tested.job_id = "tested".into();
    tested.smoke_test = Some(format!("echo testing; {HUNGRY}"));
    let job = rig.request(&tested, &fine).await;
    let outcome = rig.outcome(job).await;
    let Message::BuildFailed(failed) = outcome else {
        panic!("a smoke test past the cap must fail the build: {outcome:?}")
    };
    assert_eq!(failed.stage, BuildStage::Test);
    assert!(
        failed
            .error
            .contains("the smoke test was killed for going past its memory limit of 64 MiB")
            && failed.error.contains("[build].container_memory_bytes"),
        "{}",
        failed.error
    );
    assert_eq!(leftover_containers(job), 0);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_of_a_url_is_refused_without_network_as_the_daemon_would_fetch_it_on_the_host() {
    let mut rig = BuildRig::start("sandbox-addurl", |_| {}).await;
    let repo = LocalRepo::new("addurl");
    // dockerd fetches an ADD URL itself, from the host's network, whatever the build's network
    // mode: without the check this reads the registry's catalogue into the image.
    let sha = repo.commit(
        &[(
            "Dockerfile",
            "FROM slipway/debian:bookworm\nADD http://127.0.0.1:5000/v2/_catalog /catalog\n",
        )],
        "add url",
    );
    let entry = entry(&repo, "addurl");
    let job = rig.request(&entry, &sha).await;
    let outcome = rig.outcome(job).await;
    let Message::BuildFailed(failed) = outcome else {
        panic!("ADD of a URL must be refused for a build without network: {outcome:?}")
    };
    assert_eq!(failed.stage, BuildStage::Build);
    assert!(
        failed.error.contains("line 2")
            && failed.error.contains("http://127.0.0.1:5000/v2/_catalog"),
        "the reason names the line and the source: {}",
        failed.error
    );
    let log = rig.log_of(job).await;
    assert!(!log.contains("Step 1/"), "nothing was built: {log}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parents_onbuild_add_of_a_url_is_refused_without_network() {
    let mut rig = BuildRig::start("sandbox-onbuild", |_| {}).await;
    // A parent on this node whose ONBUILD trigger fetches from the host's loopback: the trigger
    // runs in the child's build, by the daemon, whatever the child's network mode.
    let parent = format!("slipway-test/onbuild-{}:1", std::process::id());
    slipway_tests::docker(
        &["build", "--network", "none", "-q", "-t", &parent, "-"],
        Some(
            "FROM slipway/debian:bookworm\nONBUILD ADD http://127.0.0.1:5000/v2/_catalog /catalog\n",
        ),
    );
    let repo = LocalRepo::new("onbuild");
    let sha = repo.commit(
        &[("Dockerfile", &format!("FROM {parent}\nRUN true\n"))],
        "child of an onbuild parent",
    );
    let entry = entry(&repo, "onbuild");
    let job = rig.request(&entry, &sha).await;
    let outcome = rig.outcome(job).await;
    slipway_tests::docker(&["rmi", &parent], None);
    let Message::BuildFailed(failed) = outcome else {
        panic!("the parent's ONBUILD ADD of a URL must be refused: {outcome:?}")
    };
    assert_eq!(failed.stage, BuildStage::Build);
    assert!(
        failed.error.contains(&parent)
            && failed.error.contains("http://127.0.0.1:5000/v2/_catalog"),
        "the reason names the parent and the source: {}",
        failed.error
    );
    rig.stop().await;
}

//! The build worker against the real dockerd, the real registry on 127.0.0.1:5000 and the real
//! RabbitMQ (all started by `deploy/dev-env.sh` through the shared helper): a two-stage build is
//! pushed and its digest is the registry's; a second delivery of the same job builds and pushes
//! nothing; build errors, smoke-test failures and network use without network fail with their stage
//! and log; a low disk retries without building.

mod rig;

use std::process::Command;

use rig::*;
use slipway_build::plan::{LABEL_COMMIT, LABEL_CONTENT_KEY};
use slipway_common::message::BuildStage;
use slipway_common::{Envelope, Message};
use slipway_tests::eventually;
use slipway_tests::git::LocalRepo;
use std::collections::BTreeMap;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_stage_build_is_pushed_with_the_registrys_digest_and_a_second_delivery_builds_nothing()
 {
    // Without the layer cache nothing of a build's steps stays behind (with it, their images
    // are the cache: `layer_cache.rs`).
    let mut rig = BuildRig::start("build-twostage", |build| build.cache = false).await;
    let repo = LocalRepo::new("twostage");
    let sha = repo.commit(&[("Dockerfile", TWO_STAGE)], "two stages");
    let mut entry = entry(&repo, "twostage");
    entry.smoke_test = Some("test \"$(cat /artifact)\" = built".into());
    let since = now_secs();

    let first = rig.request(&entry, &sha).await;
    let Message::BuildSucceeded(built) = rig.outcome(first).await else {
        panic!("the two-stage build must succeed")
    };
    let repository = format!("{}/{}", entry.app_id, entry.job_id);
    let image = built.image.to_string();
    assert_eq!(image, format!("127.0.0.1:5000/{repository}:latest"));
    assert_eq!(
        Some(built.digest.to_string()),
        registry_digest(&repository, "latest"),
        "the digest is the registry's"
    );
    assert_eq!(built.commit.as_str(), sha);
    let base = slipway_common::ImageRef::parse("slipway/debian:bookworm").unwrap();
    assert!(built.parent_digests.contains_key(&base));
    assert!(built.content_key.starts_with("sha256:"));
    let record = built
        .record
        .as_ref()
        .expect("the build's record, for its provenance");
    assert_eq!(
        record.dockerfile_digest,
        slipway_common::Digest::sha256_of(TWO_STAGE.as_bytes()).to_string(),
        "the digest of the Dockerfile built"
    );
    assert_eq!(
        record.builder,
        concat!("slipway-build/", env!("CARGO_PKG_VERSION"))
    );
    assert!(
        record.started_at.unix_millis() / 1000 >= since,
        "started during this test"
    );
    assert_eq!(leftover_containers(first), 0, "no container left behind");
    let log = rig.log_of(first).await;
    assert!(log.contains("slipway: content key"), "{log}");
    assert!(
        log.contains("Step 1/"),
        "the daemon's build output is in the log: {log}"
    );

    // The same job again (a redelivery after a lost ack looks exactly like this).
    let second = rig.request(&entry, &sha).await;
    let Message::BuildSucceeded(again) = rig.outcome(second).await else {
        panic!("the second delivery must succeed too")
    };
    assert_eq!(again.digest, built.digest);
    // The second job started after the first one's clean-up: no image of the first build's steps
    // is left, those of the first stage (no parent of the result) included.
    let steps: Vec<&str> = log
        .lines()
        .filter_map(slipway_build::plan::step_image_id)
        .collect();
    assert!(steps.len() >= 3, "two stages have several steps: {log}");
    let base_id = local_image_id("slipway/debian:bookworm").expect("the base image");
    let left: Vec<_> = steps
        .iter()
        .filter(|id| !base_id.contains(**id) && image_exists(id))
        .collect();
    assert!(
        left.is_empty(),
        "images of the build's steps left behind: {left:?}"
    );
    assert_eq!(again.content_key, built.content_key);
    assert_eq!(
        pushes_since(since, &entry.app_id),
        1,
        "one push for two deliveries"
    );

    // The labels were added in the registry (not by a build step), and this node holds the
    // registry's image under the name (pulled after the first job, before the second started): the
    // very image any other node pulls.
    assert_eq!(local_label(&image, LABEL_CONTENT_KEY), built.content_key);
    assert_eq!(local_label(&image, LABEL_COMMIT), sha);
    assert_eq!(
        local_image_id(&built.image.pinned(Some(&built.digest))),
        local_image_id(&image),
    );
    assert!(
        !log.contains("LABEL io.slipway"),
        "no label step in the build: {log}"
    );

    // A new commit replaces the image locally: the replaced one does not stay behind.
    let old_local = local_image_id(&image).expect("the built image is kept locally");
    let changed = repo.commit(
        &[("Dockerfile", &format!("{TWO_STAGE}LABEL round=3\n"))],
        "changed",
    );
    let third = rig.request(&entry.clone(), &changed).await;
    let outcome = rig.outcome(third).await;
    let Message::BuildSucceeded(rebuilt) = outcome else {
        panic!("the changed commit must build: {outcome:?}")
    };
    let new_local = local_image_id(&image).expect("the new image is tagged locally");
    assert_ne!(new_local, old_local);
    // After the outcome, the worker replaces its local build by the registry's labelled image.
    // Wait for that pull before removing the image, or the pull would bring it back and the child
    // below would not need the registry.
    let registry_image = rebuilt.image.pinned(Some(&rebuilt.digest));
    eventually(
        "the registry's labelled image under the name on this node",
        Duration::from_secs(60),
        || async {
            local_image_id(&registry_image).is_some_and(|id| Some(id) == local_image_id(&image))
        },
    )
    .await;

    // A child of that image, on a node that does not have it: the parent comes from the registry.
    let removed = Command::new("docker")
        .args(["rmi", &image])
        .output()
        .expect("docker rmi");
    assert!(removed.status.success());
    let child_sha = repo.commit(
        &[(
            "child/Dockerfile",
            &format!("FROM {}\nRUN test -f /artifact\n", built.image),
        )],
        "child",
    );
    let mut child = entry.clone();
    child.job_id = "child".into();
    child.git_path = "/child".into();
    child.smoke_test = None;
    let job = rig.request(&child, &child_sha).await;
    let outcome = rig.outcome(job).await;
    let Message::BuildSucceeded(child_built) = outcome else {
        panic!("the child builds on the pulled parent: {outcome:?}")
    };
    assert!(child_built.parent_digests.contains_key(&built.image));
    let child_log = rig.log_of(job).await;
    assert!(
        child_log.contains("pulling the parent image"),
        "the parent came from the registry: {child_log}"
    );
    // Reclaiming the replaced image runs after the third job's outcome, and the child job waited
    // for it before starting.
    assert!(!image_exists(&old_local), "the replaced image was removed");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_errors_smoke_test_failures_and_network_use_fail_with_stage_and_log() {
    let mut rig = BuildRig::start("build-failures", |_| {}).await;
    let repo = LocalRepo::new("failures");

    let broken = repo.commit(
        &[(
            "Dockerfile",
            "FROM slipway/debian:bookworm\nRUN echo first-step-works > /one\nRUN echo about-to-fail && false\n",
        )],
        "broken",
    );
    let entry = entry(&repo, "failures");
    let job = rig.request(&entry, &broken).await;
    let Message::BuildFailed(failed) = rig.outcome(job).await else {
        panic!("build.failed expected")
    };
    assert_eq!(failed.stage, BuildStage::Build);
    assert!(
        failed.log_tail.iter().any(|l| l.contains("about-to-fail")),
        "{:?}",
        failed.log_tail
    );
    assert!(failed.log_tail.len() <= 50);
    assert_eq!(
        leftover_containers(job),
        0,
        "the failed step's container is removed"
    );
    // The first step's image (untagged, left by the failed build) is removed; the base stays.
    let step_images: Vec<&str> = failed
        .log_tail
        .iter()
        .filter_map(|l| l.trim().strip_prefix("---> "))
        .filter(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect();
    assert_eq!(
        step_images.len(),
        3,
        "the base, the layer cache's ARG SLIPWAY_NETWORK and the first step: {:?}",
        failed.log_tail
    );
    assert!(image_exists("slipway/debian:bookworm"));
    assert!(
        !image_exists(step_images[2]),
        "the failed build's step image is removed"
    );

    let offline = repo.commit(
        &[(
            "Dockerfile",
            "FROM slipway/debian:bookworm\nRUN bash -c 'echo > /dev/tcp/127.0.0.1/5000'\n",
        )],
        "needs network",
    );
    let job = rig.request(&entry, &offline).await;
    let Message::BuildFailed(failed) = rig.outcome(job).await else {
        panic!("a RUN step using the network must fail when the network is off")
    };
    assert_eq!(failed.stage, BuildStage::Build);

    // A good image whose smoke test fails: the desired tag is not moved.
    let good = repo.commit(&[("Dockerfile", TWO_STAGE)], "good");
    let mut tested = entry.clone();
    tested.job_id = "tested".into();
    tested.smoke_test = Some("echo smoke-says-no; exit 3".into());
    let job = rig.request(&tested, &good).await;
    let Message::BuildFailed(failed) = rig.outcome(job).await else {
        panic!("build.failed expected")
    };
    assert_eq!(failed.stage, BuildStage::Test);
    assert!(
        failed.log_tail.iter().any(|l| l.contains("smoke-says-no")),
        "{:?}",
        failed.log_tail
    );
    let repository = format!("{}/{}", tested.app_id, tested.job_id);
    assert_eq!(
        registry_digest(&repository, "latest"),
        None,
        "the desired tag was not moved"
    );
    assert!(
        registry_digest(&repository, "latest-slipway-test").is_some(),
        "the test tag holds the candidate"
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_disk_retries_the_job_and_builds_nothing() {
    let rig = BuildRig::start("build-lowdisk", |build| build.min_free_bytes = u64::MAX).await;
    let repo = LocalRepo::new("lowdisk");
    let sha = repo.commit(&[("Dockerfile", TWO_STAGE)], "fine");
    let entry = entry(&repo, "lowdisk");
    let job = rig.request(&entry, &sha).await;
    let dead = rig.bus.wait_for_dead_letters(1, DEADLINE).await;
    let envelope = Envelope::decode(&dead[0].body).expect("the job");
    assert_eq!(envelope.job_id, job);
    assert!(dead[0].attempt >= 1, "retried before giving up");
    assert!(
        dead[0].reason.contains("min_free_bytes"),
        "{}",
        dead[0].reason
    );
    let repository = format!("{}/{}", entry.app_id, entry.job_id);
    assert_eq!(
        registry_digest(&repository, "latest-slipway-test"),
        None,
        "nothing was pushed"
    );
    let images = Command::new("docker")
        .args(["images", "-q", &format!("127.0.0.1:5000/{repository}")])
        .output()
        .expect("docker images");
    assert!(images.stdout.is_empty(), "nothing was built");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prebuild_script_prepares_the_context_without_network_and_its_failure_is_reported() {
    let mut rig = BuildRig::start("build-prebuild", |_| {}).await;
    let repo = LocalRepo::new("prebuild");
    let sha = repo.commit(
        &[
            (
                "app/Dockerfile",
                "FROM slipway/debian:bookworm\nARG FLAVOUR\nCOPY generated.txt /generated.txt\nRUN echo \"$FLAVOUR\" > /flavour\n",
            ),
            (
                "tools/prepare.sh",
                "#!/bin/sh\nset -e\necho \"made by prebuild in $(pwd)\" > ../app/generated.txt\n\
                 if bash -c 'echo > /dev/tcp/127.0.0.1/5000' 2>/dev/null; then echo network > ../app/generated.txt; fi\n",
            ),
        ],
        "prebuild",
    );
    let mut entry = entry(&repo, "prebuild");
    entry.git_path = "/app".into();
    entry.prebuild_script = Some("prepare.sh".into());
    entry.prebuild_context = Some("/tools".into());
    entry.build_args = BTreeMap::from([("FLAVOUR".to_string(), "spicy".to_string())]);
    entry.smoke_test = Some(
        "grep -qx 'made by prebuild in /src/tools' /generated.txt && grep -qx spicy /flavour"
            .into(),
    );
    let job = rig.request(&entry, &sha).await;
    let outcome = rig.outcome(job).await;
    let Message::BuildSucceeded(_) = outcome else {
        panic!(
            "the prebuild output reaches the image, offline, and the build arg applies: {outcome:?}"
        )
    };

    let broken = repo.commit(
        &[("tools/prepare.sh", "#!/bin/sh\necho preparing; exit 7\n")],
        "broken prebuild",
    );
    let job = rig.request(&entry, &broken).await;
    let Message::BuildFailed(failed) = rig.outcome(job).await else {
        panic!("build.failed expected")
    };
    assert_eq!(failed.stage, BuildStage::Prebuild);
    assert!(failed.error.contains('7'), "{}", failed.error);
    assert!(
        failed.log_tail.iter().any(|l| l.contains("preparing")),
        "{:?}",
        failed.log_tail
    );
    assert_eq!(leftover_containers(job), 0);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buildkit_syntax_is_built_with_buildkit_and_syntax_beyond_the_daemon_fails_naming_it() {
    let mut rig = BuildRig::start("build-buildkit", |_| {}).await;
    let repo = LocalRepo::new("buildkit");

    // RUN --mount needs BuildKit; Docker's own `# syntax=` frontend cannot be pulled offline,
    // and the daemon's built-in one parses this file.
    let cached = repo.commit(
        &[(
            "Dockerfile",
            "# syntax=docker/dockerfile:1\nFROM slipway/debian:bookworm\nRUN --mount=type=cache,target=/var/cache/slipway-test echo mounted-cache-ran > /var/cache/slipway-test/x && cat /var/cache/slipway-test/x > /result\n",
        )],
        "cache mount",
    );
    let entry = entry(&repo, "buildkit");
    let job = rig.request(&entry, &cached).await;
    let outcome = rig.outcome(job).await;
    let Message::BuildSucceeded(built) = outcome else {
        panic!(
            "a RUN --mount build must succeed: {outcome:?}\n{}",
            rig.log_of(job).await
        )
    };
    assert_eq!(built.commit.as_str(), cached);
    let log = rig.log_of(job).await;
    assert!(log.contains("slipway: building with BuildKit"), "{log}");
    assert!(log.contains("mounted-cache-ran"), "{log}");

    // A heredoc needs a newer frontend than dockerd 20.10's: refused before the daemon sees it.
    let heredoc = repo.commit(
        &[(
            "Dockerfile",
            "FROM slipway/debian:bookworm\nRUN <<EOF\necho from-a-heredoc\nEOF\n",
        )],
        "heredoc",
    );
    let job = rig.request(&entry, &heredoc).await;
    let Message::BuildFailed(failed) = rig.outcome(job).await else {
        panic!("build.failed expected")
    };
    assert_eq!(failed.stage, BuildStage::Build);
    if rig_daemon_is_docker_20() {
        assert_eq!(
            failed.error,
            "Dockerfile: line 2: a heredoc (RUN <<EOF) needs BuildKit with the Dockerfile frontend 1.4 or newer (Docker Engine 23.0 or newer); this daemon (Docker 20.10.24+dfsg1) has the Dockerfile frontend 1.2"
        );
    }
    rig.stop().await;
}

/// Whether the test daemon is Debian bookworm's dockerd 20.10.24 (the error text names it).
fn rig_daemon_is_docker_20() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "20.10.24+dfsg1")
}

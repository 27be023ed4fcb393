//! Build secrets and SSH agents through the real build worker, dockerd 20.10's BuildKit (with the
//! worker's BuildKit session), the registry and RabbitMQ: a secret named in `[build.secrets]` is
//! mounted by `RUN --mount=type=secret` and is in no log, and the agent of `[build.ssh_agents]`
//! lists its key to `RUN --mount=type=ssh` (read-only); a required secret the worker does not
//! serve fails the job before anything is built; an optional one is left out and the log says so.

mod rig;

use std::collections::BTreeMap;

use rig::*;
use slipway_common::Message;
use slipway_common::message::BuildStage;
use slipway_tests::TempDir;
use slipway_tests::git::LocalRepo;
use slipway_tests::ssh_agent::{AGENT_CLIENT, TestAgent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_secrets_and_agents_are_mounted_and_a_missing_required_one_fails_before_the_build()
 {
    let dir = TempDir::new("build-secrets");
    let value = format!("s3cr3t-{}", app_id("value"));
    let file = dir.path().join("token");
    std::fs::write(&file, &value).expect("write the secret");
    let comment = app_id("key");
    let agent = TestAgent::start(dir.path(), &comment);
    let socket = agent.socket().to_string_lossy().into_owned();
    let mut rig = BuildRig::start("build-secrets", |build| {
        build.secrets = BTreeMap::from([("token".to_owned(), file.to_string_lossy().into_owned())]);
        build.ssh_agents = BTreeMap::from([("default".to_owned(), socket)]);
    })
    .await;
    let repo = LocalRepo::new("secrets");
    let expected = slipway_common::Digest::sha256_of(value.as_bytes()).to_string();
    let expected = expected.trim_start_matches("sha256:");
    let dockerfile = format!(
        "FROM slipway/debian:bookworm\nRUN --mount=type=secret,id=token,required=true test \"$(sha256sum < /run/secrets/token | cut -d' ' -f1)\" = {expected} && echo secret-seen\nRUN --mount=type=secret,id=optional test ! -s /run/secrets/optional && echo optional-absent\nCOPY agent.pl /agent.pl\nRUN --mount=type=ssh,required perl /agent.pl\n"
    );
    let sha = repo.commit(
        &[("Dockerfile", &dockerfile), ("agent.pl", AGENT_CLIENT)],
        "uses secrets and the SSH agent",
    );
    let entry = entry(&repo, "secrets");
    let job = rig.request(&entry, &sha).await;
    let outcome = rig.outcome(job).await;
    let log = rig.log_of(job).await;
    assert!(
        matches!(outcome, Message::BuildSucceeded(_)),
        "{outcome:?}\n{log}"
    );
    assert!(log.contains("slipway: building with BuildKit"), "{log}");
    assert!(
        log.contains("secret-seen"),
        "the step read the secret: {log}"
    );
    assert!(log.contains("optional-absent"), "{log}");
    assert!(
        log.contains("line 3: this worker serves no secret \"optional\""),
        "{log}"
    );
    assert!(!log.contains(&value), "the value is in no log: {log}");
    assert!(
        log.contains(&format!("identities type=12 count=1 comment={comment}")),
        "the step listed the agent's key: {log}"
    );
    assert!(log.contains("remove-all type=5"), "read-only: {log}");

    // A required secret the worker does not serve: refused before the build.
    let missing = repo.commit(
        &[(
            "Dockerfile",
            "FROM slipway/debian:bookworm\nRUN --mount=type=secret,id=npmrc,required cat /run/secrets/npmrc\n",
        )],
        "needs a secret this worker lacks",
    );
    let job = rig.request(&entry, &missing).await;
    let Message::BuildFailed(failed) = rig.outcome(job).await else {
        panic!("a missing required secret must fail the build")
    };
    assert_eq!(failed.stage, BuildStage::Build);
    assert!(
        failed.error.contains(
            "line 2: RUN --mount=type=secret,id=npmrc is required, but this worker serves no secret \"npmrc\" (its [build.secrets]: token)"
        ),
        "{}",
        failed.error
    );
    let log = rig.log_of(job).await;
    assert!(!log.contains("#1 "), "nothing was built: {log}");
    rig.stop().await;
}

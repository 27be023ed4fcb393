//! `RUN --mount=type=ssh` against dockerd 20.10's BuildKit and a real `ssh-agent` (OpenSSH) on
//! this machine: a build step lists the agent's key through the session, its attempt to remove
//! every key is refused (the agent keeps its key), and a required agent the worker does not have
//! fails the build naming it.
//!
//! The step speaks the agent protocol with Perl (in the base image's `perl-base`); `ssh-agent`,
//! `ssh-keygen` and `ssh-add` come from Debian's `openssh-client`.

mod secret_builds;

use secret_builds::*;
use slipway_docker::{BuildSecrets, DockerEngine, SshAgents};
use slipway_tests::ssh_agent::TestAgent;
use slipway_tests::{BASE_IMAGE, TempDir};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_lists_the_workers_agent_keys_read_only_and_an_unknown_agent_fails_the_build() {
    slipway_tests::ensure_docker();
    let engine = DockerEngine::connect().await.expect("connect to dockerd");
    let dir = TempDir::new("ssh-agent");
    let comment = unique("slipway-key");
    let agent = TestAgent::start(dir.path(), &comment);

    let marker = unique("ssh");
    assert_agent_read_only(&engine, &agent, &comment, &marker).await;

    // A required agent this build was not given.
    let unknown =
        format!("FROM {BASE_IMAGE}\nRUN --mount=type=ssh,id=deploy,required true {marker}-2\n");
    let mut spec = buildkit_spec(&unknown, BuildSecrets::new());
    spec.ssh_agents = SshAgents::new().with_socket("default", agent.socket());
    let log = Log::default();
    let error = engine
        .build(&spec, &mut log.sink(), &CancellationToken::new())
        .await
        .expect_err("an unknown required agent");
    assert!(
        error.to_string().contains("deploy"),
        "the error names the agent: {error}\n{}",
        log.text()
    );
}

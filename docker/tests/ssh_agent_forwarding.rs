//! `RUN --mount=type=ssh` against dockerd 20.10's BuildKit and a real `ssh-agent` (OpenSSH) on
//! this machine: a build step lists the agent's key through the session, its attempt to remove
//! every key is refused (the agent keeps its key), and a required agent the worker does not have
//! fails the build naming it.
//!
//! The step speaks the agent protocol with Perl (in the base image's `perl-base`); `ssh-agent`,
//! `ssh-keygen` and `ssh-add` come from Debian's `openssh-client`.

mod secret_builds;

use secret_builds::*;
use slipway_docker::{BuildContext, BuildSecrets, DockerEngine, SshAgents};
use slipway_tests::ssh_agent::{AGENT_CLIENT, TestAgent};
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
    let dockerfile = format!(
        "FROM {BASE_IMAGE}\nCOPY agent.pl /agent.pl\nRUN --mount=type=ssh,required perl /agent.pl && echo {marker}\n"
    );
    let mut spec = buildkit_spec(&dockerfile, BuildSecrets::new());
    spec.context = BuildContext::Tar(slipway_tests::tar_archive(&[
        ("Dockerfile", dockerfile.as_bytes()),
        ("agent.pl", AGENT_CLIENT.as_bytes()),
    ]));
    spec.ssh_agents = SshAgents::new().with_socket("default", agent.socket());
    let log = Log::default();
    let built = engine
        .build(&spec, &mut log.sink(), &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("the build with the agent: {e}\n{}", log.text()));
    let _image = RemoveImage(built.id.clone());
    let lines = log.lines();
    assert!(
        lines.contains(&format!("identities type=12 count=1 comment={comment}")),
        "the step listed the agent's key: {lines:?}"
    );
    assert!(
        lines.contains(&"remove-all type=5".to_owned()),
        "removing keys is refused: {lines:?}"
    );
    let listed = agent.ssh_add(&["-l"]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains(&comment),
        "the agent still holds its key: {listed:?}"
    );

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

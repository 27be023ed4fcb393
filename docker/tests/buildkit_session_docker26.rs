//! A BuildKit session against a newer Docker Engine than Debian bookworm's 20.10: trixie's Docker
//! 26 (API 1.45) in a container on the host daemon (`deploy/docker26.sh`, socket
//! `/run/slipway-docker26/docker.sock`). A `RUN --mount=type=secret,required=true` step gets the
//! worker's secret there too, and a `RUN --mount=type=ssh` step
//! the worker's SSH agent, read-only.
//!
//! This binary holds one test, which points `DOCKER_HOST` (read by `DockerEngine::connect` and by
//! the `docker` commands of the helpers) at that daemon. Without the socket the test says it is
//! skipped, unless `SLIPWAY_REQUIRE_DOCKER26=1` (set by `.ci/run`, which starts the daemon).

mod secret_builds;

use secret_builds::*;
use slipway_docker::DockerEngine;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_and_ssh_agent_builds_succeed_on_docker_26() {
    if !slipway_tests::use_docker26() {
        return;
    }
    let engine = DockerEngine::connect().await.expect("connect to Docker 26");
    assert_eq!(
        engine.socket(),
        std::path::Path::new(slipway_tests::DOCKER26_SOCKET)
    );
    assert_eq!(engine.api_version(), "1.45", "Docker 26's API");
    let version = engine.engine_version().await.expect("the engine's version");
    assert!(version.starts_with("26."), "{version}");

    let secret = SecretFile::new("token");
    let built = build_with_secret(&engine, &secret, &unique("docker26"))
        .await
        .unwrap_or_else(|(e, log)| panic!("the secret build on Docker 26: {e}\n{log}"));
    let _image = RemoveImage(built.id.clone());
    assert_secret_seen_and_untraced(&built, &secret);

    // An SSH agent of this machine, through the same kind of session.
    let dir = slipway_tests::TempDir::new("docker26-agent");
    let comment = unique("docker26-key");
    let agent = slipway_tests::ssh_agent::TestAgent::start(dir.path(), &comment);
    assert_agent_read_only(&engine, &agent, &comment, &unique("docker26-ssh")).await;
}

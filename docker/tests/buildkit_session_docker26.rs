//! A BuildKit session against a newer Docker Engine than Debian bookworm's 20.10: trixie's Docker
//! 26 (API 1.45) in a container on the host daemon (`deploy/docker26.sh`, socket
//! `/run/slipway-docker26/docker.sock`). A `RUN --mount=type=secret,required=true` step gets the
//! worker's secret there too.
//!
//! This binary holds one test, which points `DOCKER_HOST` (read by `DockerEngine::connect` and by
//! the `docker` commands of the helpers) at that daemon. Without the socket the test says it is
//! skipped, unless `SLIPWAY_REQUIRE_DOCKER26=1` (set by `.ci/run`, which starts the daemon).

mod secret_builds;

use secret_builds::*;
use slipway_docker::DockerEngine;

/// The socket `deploy/docker26.sh` serves the newer daemon on.
const SOCKET: &str = "/run/slipway-docker26/docker.sock";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_build_succeeds_on_docker_26() {
    if !std::path::Path::new(SOCKET).exists() {
        assert!(
            std::env::var("SLIPWAY_REQUIRE_DOCKER26").as_deref() != Ok("1"),
            "{SOCKET} is absent and SLIPWAY_REQUIRE_DOCKER26=1: run deploy/docker26.sh"
        );
        eprintln!("skipped: {SOCKET} is absent (deploy/docker26.sh starts a Docker 26 daemon)");
        return;
    }
    // SAFETY: the only test of this binary, set before any thread reads the environment.
    unsafe { std::env::set_var("DOCKER_HOST", format!("unix://{SOCKET}")) };
    let engine = DockerEngine::connect().await.expect("connect to Docker 26");
    assert_eq!(engine.socket(), std::path::Path::new(SOCKET));
    assert_eq!(engine.api_version(), "1.45", "Docker 26's API");
    let version = engine.engine_version().await.expect("the engine's version");
    assert!(version.starts_with("26."), "{version}");

    let secret = SecretFile::new("token");
    let built = build_with_secret(&engine, &secret, &unique("docker26"))
        .await
        .unwrap_or_else(|(e, log)| panic!("the secret build on Docker 26: {e}\n{log}"));
    let _image = RemoveImage(built.id.clone());
    let text = built.log.text();
    assert!(
        built.log.lines().iter().any(|l| l == &built.marker),
        "the step saw the secret: {text}"
    );
    assert!(
        !text.contains(&secret.value),
        "the value is not logged: {text}"
    );
    assert!(image_contains(&built.id, &built.marker), "positive control");
    assert!(
        !image_contains(&built.id, &secret.value),
        "the secret's value is in no layer and no config of the image"
    );
}

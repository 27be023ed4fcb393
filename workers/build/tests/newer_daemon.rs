//! The build worker against a newer Docker Engine than Debian bookworm's 20.10: trixie's Docker 26
//! in a container on the host daemon (`deploy/docker26.sh`, socket
//! `/run/slipway-docker26/docker.sock`). A Dockerfile with a heredoc and `COPY --link` — which
//! dockerd 20.10 refuses (`build_worker.rs`) — is built with BuildKit, pushed and promoted.
//!
//! This binary holds one test, which points `DOCKER_HOST` (read by the worker's Docker client and
//! by the `docker` commands of the rig) at that daemon. Without the socket the test says it is
//! skipped, unless `SLIPWAY_REQUIRE_DOCKER26=1` (set by `.ci/run`, which starts the daemon).

mod rig;

use rig::*;
use slipway_common::Message;
use slipway_tests::git::LocalRepo;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heredocs_and_copy_link_build_on_docker_26() {
    if !slipway_tests::use_docker26() {
        return;
    }
    let mut rig = BuildRig::start("build-docker26", |_| {}).await;
    let repo = LocalRepo::new("docker26");
    let sha = repo.commit(
        &[
            (
                "Dockerfile",
                "FROM slipway/debian:bookworm\nRUN <<EOF\necho from-a-heredoc > /greeting\ncat /greeting\nEOF\nCOPY --link message.txt /message.txt\nCMD [\"cat\", \"/greeting\", \"/message.txt\"]\n",
            ),
            ("message.txt", "copied with --link\n"),
        ],
        "heredoc and COPY --link",
    );
    let mut entry = entry(&repo, "docker26");
    entry.smoke_test =
        Some("grep -q from-a-heredoc /greeting && grep -q 'with --link' /message.txt".into());
    let job = rig.request(&entry, &sha).await;
    let outcome = rig.outcome(job).await;
    let log = rig.log_of(job).await;
    let Message::BuildSucceeded(built) = outcome else {
        panic!("the build must succeed on Docker 26: {outcome:?}\n{log}")
    };
    assert!(log.contains("slipway: building with BuildKit"), "{log}");
    assert!(log.contains("from-a-heredoc"), "the heredoc ran: {log}");
    let repository = format!("{}/{}", entry.app_id, entry.job_id);
    assert_eq!(
        Some(built.digest.to_string()),
        registry_digest(&repository, "latest"),
        "pushed and promoted: the desired tag is the built digest"
    );
    rig.stop().await;
}

//! The `slipway` command line as the least-privilege CLI user of `slipway definitions` (its own
//! vhost, `broker.topology = "verify"`): it submits, shows the status and reads a job from the
//! history; the dead letters need an administrator, and it says so.

use std::process::{Command, Output};

use slipway_broker::BrokerSettings;
use slipway_tests::TempDir;
use slipway_tests::vhost::LeastPrivilegeVhost;

mod common;

use common::{stderr, stdout};

fn slipway(deployment: &LeastPrivilegeVhost, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(args)
        .envs(deployment.env_for("cli"))
        .output()
        .expect("slipway ran")
}

#[test]
fn the_cli_user_submits_reads_status_and_jobs_but_not_the_dead_letters() {
    // The command line runs with the default broker settings: the definitions are made from them
    // (other retry delays would name retry queues that do not exist).
    let deployment = LeastPrivilegeVhost::import("cli-binary", &BrokerSettings::default());
    let index = TempDir::new("lp-index");
    index.file(
        "index.d/team.yaml",
        "Projects:\n  - id: 1\n    app-id: team\n    job-id: web\n    \
         git-url: https://git.example.org/x.git\n    git-branch: main\n",
    );
    let dir = index.path().join("index.d");

    let submitted = slipway(
        &deployment,
        &["submit", "--format", "json", dir.to_str().expect("a path")],
    );
    assert_eq!(submitted.status.code(), Some(0), "{}", stderr(&submitted));
    let line = stdout(&submitted);
    let job: serde_json::Value =
        serde_json::from_str(line.lines().next().expect("one job")).expect("JSON");
    let job_id = job["job_id"].as_str().expect("a job id").to_owned();

    let status = slipway(&deployment, &["status"]);
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    assert!(stdout(&status).contains("lint"), "{}", stdout(&status));

    let read = slipway(&deployment, &["job", &job_id]);
    assert!(
        stdout(&read).contains("build.requested"),
        "the job's first event, read from the history: {}{}",
        stdout(&read),
        stderr(&read)
    );

    let dead = slipway(&deployment, &["dead", "list"]);
    assert_ne!(dead.status.code(), Some(0), "{}", stdout(&dead));
    assert!(
        stderr(&dead).contains("ACCESS_REFUSED"),
        "the refusal is named: {}",
        stderr(&dead)
    );
}

/// `deploy/rabbitmq/definitions.json` is what `slipway definitions` prints with the default
/// settings: the file an administrator imports cannot drift from the code.
#[test]
fn the_shipped_definitions_are_what_the_command_prints() {
    let output = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["definitions"])
        .env_remove("SLIPWAY_BROKER__NAMESPACE")
        .output()
        .expect("slipway ran");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/rabbitmq/definitions.json"),
    )
    .expect("deploy/rabbitmq/definitions.json");
    assert!(
        stdout(&output) == shipped,
        "deploy/rabbitmq/definitions.json is stale: run `cargo run -q --bin slipway -- definitions \\
         > deploy/rabbitmq/definitions.json`"
    );
}

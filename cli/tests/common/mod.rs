//! What the CLI's broker-backed tests share: running `slipway` against a test namespace and
//! reading its output.

use std::process::{Child, Command, Output, Stdio};

use slipway_tests::AMQP_URL;

/// `slipway ARGS` against the broker namespace `namespace`, not started yet.
fn slipway_command(namespace: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway"));
    cmd.args(args)
        .env("SLIPWAY_BROKER__URL", AMQP_URL)
        .env("SLIPWAY_BROKER__NAMESPACE", namespace);
    cmd
}

/// Runs `slipway ARGS` against the broker namespace `namespace` (in a blocking thread: the test's
/// runtime keeps serving its broker connection meanwhile).
#[allow(
    dead_code,
    reason = "used by the tests that run a finished command, not by every file"
)]
pub async fn slipway_in(namespace: &str, args: &[&str]) -> Output {
    let mut cmd = slipway_command(namespace, args);
    tokio::task::spawn_blocking(move || cmd.output().expect("run slipway"))
        .await
        .expect("slipway ran")
}

/// Starts `slipway ARGS` against `namespace` with its standard output piped, for commands that
/// keep running (`--follow`).
#[allow(dead_code, reason = "used by the tests that follow, not by every file")]
pub fn spawn_slipway_in(namespace: &str, args: &[&str]) -> Child {
    slipway_command(namespace, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start slipway")
}

/// Its standard output as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Its standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

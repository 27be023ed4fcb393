//! `slipway-lint`: the lint worker. [`WorkerProcess`] loads its configuration, starts logging and
//! `/metrics`, and runs [`slipway_lint::worker::run`] until SIGTERM/SIGINT.

use std::process::ExitCode;

use slipway_common::process::WorkerProcess;

const ABOUT: &str = "Slipway lint worker: consumes build.requested, lints the Dockerfile at the \
                     requested git ref with hadolint's rules, publishes lint.passed (with the \
                     commit SHA) or lint.failed";

fn main() -> ExitCode {
    WorkerProcess::new(ABOUT).main(slipway_lint::worker::run)
}

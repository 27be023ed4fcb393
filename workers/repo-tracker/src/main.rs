//! `slipway-repo-tracker`: the repo-tracker. [`WorkerProcess`] loads its configuration, starts
//! logging and `/metrics`, and runs [`slipway_repo_tracker::worker::run`] until SIGTERM/SIGINT.

use std::process::ExitCode;

use slipway_common::process::WorkerProcess;

const ABOUT: &str = "Slipway repo-tracker: follows the index repository (index.d/*.yaml) and every \
                     branch its entries build from, by polling and forge webhooks, and publishes \
                     build.requested on a git change, an index change or a parent's rebuild, \
                     parents before children; its state is the history stream";

fn main() -> ExitCode {
    WorkerProcess::new(ABOUT).main(slipway_repo_tracker::worker::run)
}

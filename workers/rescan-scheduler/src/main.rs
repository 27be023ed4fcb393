//! `slipway-rescan-scheduler`: the rescan-scheduler. [`WorkerProcess`] loads its configuration,
//! starts logging and `/metrics`, and runs [`slipway_rescan_scheduler::worker::run`] until
//! SIGTERM/SIGINT.

use std::process::ExitCode;

use slipway_common::process::WorkerProcess;

const ABOUT: &str = "Slipway rescan-scheduler: publishes scan.requested for every live image once \
                     per period (spread evenly by a stable per-image offset), build.requested for \
                     index entries with a rebuild-schedule, and one summary.ready per owner and \
                     period; its state is the history stream, and of any number of instances one \
                     leads";

fn main() -> ExitCode {
    WorkerProcess::new(ABOUT).main(slipway_rescan_scheduler::worker::run)
}

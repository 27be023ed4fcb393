//! `slipway-scan`: the scan worker. [`WorkerProcess`] loads its configuration, starts logging and
//! `/metrics`, and runs [`slipway_scan::worker::run`] until SIGTERM/SIGINT.

use std::process::ExitCode;

use slipway_common::process::WorkerProcess;

const ABOUT: &str = "Slipway scan worker: consumes build.succeeded and scan.requested, reads the \
                     image from this node's Docker daemon (pulling it by digest when needed), takes \
                     its package inventory, checks integrity, capabilities and known \
                     vulnerabilities, appends the full report to the <namespace>.reports stream \
                     and publishes scan.completed or scan.failed";

fn main() -> ExitCode {
    WorkerProcess::new(ABOUT)
        .worker_threads(2)
        .main(slipway_scan::worker::run)
}

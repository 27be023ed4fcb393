//! `slipway-build`: the build worker. [`WorkerProcess`] loads its configuration, starts logging and
//! `/metrics`, and runs [`slipway_build::worker::run`] until SIGTERM/SIGINT (which cancels running
//! builds; their jobs are retried).

use std::process::ExitCode;

use slipway_common::process::WorkerProcess;

const ABOUT: &str = "Slipway build worker: consumes lint.passed, builds the linted commit with the \
                     Docker Engine, pushes a test tag, runs the smoke test, promotes the desired \
                     tag, publishes build.succeeded or build.failed; the full log goes to the \
                     <namespace>.logs stream. An image.retired that asks for it has its tag \
                     deleted from the registry unless another tag names the same manifest \
                     (image.removed)";

fn main() -> ExitCode {
    WorkerProcess::new(ABOUT)
        .worker_threads(2)
        .main(slipway_build::worker::run)
}

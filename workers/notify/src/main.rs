//! `slipway-notify`: the notify worker. [`WorkerProcess`] loads its configuration, starts logging
//! and `/metrics`, and runs [`slipway_notify::worker::run`] until SIGTERM/SIGINT.

use std::process::ExitCode;

use slipway_common::process::WorkerProcess;

const ABOUT: &str = "Slipway notify worker: consumes lint.failed, build.failed, build.succeeded, \
                     scan.completed, scan.failed, index.rejected and summary.ready and mails the \
                     owner over SMTP (text and HTML), by each owner's policy (failures only, muted \
                     images); each mail is sent once: mail.sent in the history records it";

fn main() -> ExitCode {
    WorkerProcess::new(ABOUT).main(slipway_notify::worker::run)
}

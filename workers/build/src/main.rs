//! `slipway-build`: the build worker. Loads its configuration, starts logging and `/metrics`, and
//! runs [`slipway_build::worker::run`] until SIGTERM/SIGINT (which cancels running builds; their
//! jobs are retried).

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use slipway_build::worker::{BuildWorkerConfig, WORKER, run};
use slipway_common::config::{ConfigSources, load};
use slipway_common::telemetry::start_process;

/// Command-line arguments (everything else is configuration).
#[derive(Parser, Debug)]
#[command(
    name = "slipway-build",
    version,
    about = "Slipway build worker: consumes lint.passed, builds the linted commit with the Docker \
             Engine, pushes a test tag, runs the smoke test, promotes the desired tag, publishes \
             build.succeeded or build.failed; the full log goes to the <namespace>.logs stream",
    after_help = "Configuration: defaults < /etc/slipway/build.toml (or --config) < SLIPWAY_* \
                  environment variables (e.g. SLIPWAY_REGISTRY__URL, SLIPWAY_BUILD__MIN_FREE_BYTES). \
                  Sections: [broker], [telemetry], [source], [registry], [logs], [build]."
)]
struct Args {
    /// Configuration file instead of /etc/slipway/build.toml.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the effective configuration and exit.
    #[arg(long)]
    print_config: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(serve(args));
    // Do not wait for straggling blocking tasks (an idle pooled connection, a lock wait) once the
    // worker has drained and returned: systemd expects a prompt exit after SIGTERM.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let sources = ConfigSources::for_worker(WORKER).with_file_if(args.config.as_deref());
    let config: BuildWorkerConfig = load(&sources).context("loading the configuration")?;
    if args.print_config {
        println!("{config:#?}");
        return Ok(());
    }
    let shutdown = start_process(&config.telemetry).await?;
    run(config, shutdown).await?;
    Ok(())
}

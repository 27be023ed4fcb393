//! `slipway-scan`: the scan worker. Loads its configuration, starts logging and `/metrics`, and
//! runs [`slipway_scan::worker::run`] until SIGTERM/SIGINT.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use slipway_common::config::{ConfigSources, load};
use slipway_common::telemetry::start_process;
use slipway_scan::worker::{ScanWorkerConfig, WORKER, run};

/// Command-line arguments (everything else is configuration).
#[derive(Parser, Debug)]
#[command(
    name = "slipway-scan",
    version,
    about = "Slipway scan worker: consumes build.succeeded and scan.requested, reads the image from \
             this node's Docker daemon (pulling it by digest when needed), takes its package \
             inventory, checks integrity, capabilities and known vulnerabilities, appends the full \
             report to the <namespace>.reports stream and publishes scan.completed or scan.failed",
    after_help = "Configuration: defaults < /etc/slipway/scan.toml (or --config) < SLIPWAY_* \
                  environment variables (e.g. SLIPWAY_BROKER__URL, SLIPWAY_SCAN__OSV_DIR, \
                  SLIPWAY_SCAN__INTEGRITY). Sections: [broker], [telemetry], [reports], \
                  [registry], [scan]."
)]
struct Args {
    /// Configuration file instead of /etc/slipway/scan.toml.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the effective configuration and exit.
    #[arg(long)]
    print_config: bool,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sources = ConfigSources::for_worker(WORKER).with_file_if(args.config.as_deref());
    let config: ScanWorkerConfig = load(&sources).context("loading the configuration")?;
    if args.print_config {
        println!("{config:#?}");
        return Ok(());
    }
    let shutdown = start_process(&config.telemetry).await?;
    run(config, shutdown).await?;
    Ok(())
}

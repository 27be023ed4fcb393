//! `slipway-lint`: the lint worker. Loads its configuration, starts logging and `/metrics`, and
//! runs [`slipway_lint::worker::run`] until SIGTERM/SIGINT.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use slipway_common::config::{ConfigSources, load};
use slipway_common::telemetry::start_process;
use slipway_lint::worker::{LintWorkerConfig, WORKER, run};

/// Command-line arguments (everything else is configuration).
#[derive(Parser, Debug)]
#[command(
    name = "slipway-lint",
    version,
    about = "Slipway lint worker: consumes build.requested, lints the Dockerfile at the requested \
             git ref with hadolint's rules, publishes lint.passed (with the commit SHA) or lint.failed",
    after_help = "Configuration: defaults < /etc/slipway/lint.toml (or --config) < SLIPWAY_* \
                  environment variables (e.g. SLIPWAY_BROKER__URL, SLIPWAY_LINT__FAILURE_THRESHOLD, \
                  SLIPWAY_SOURCE__CACHE_DIR). Sections: [broker], [telemetry], [source], [lint]."
)]
struct Args {
    /// Configuration file instead of /etc/slipway/lint.toml.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the effective configuration (TOML) and exit.
    #[arg(long)]
    print_config: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sources = ConfigSources::for_worker(WORKER).with_file_if(args.config.as_deref());
    let config: LintWorkerConfig = load(&sources).context("loading the configuration")?;
    if args.print_config {
        println!("{config:#?}");
        return Ok(());
    }
    let shutdown = start_process(&config.telemetry).await?;
    run(config, shutdown).await?;
    Ok(())
}

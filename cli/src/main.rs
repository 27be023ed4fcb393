//! `slipway`: the command line of the pipeline — check index files, submit build requests for
//! their entries, show what waits in each queue, lint Dockerfiles, follow build logs, show a job's
//! events from the history, scan images and show their latest scan reports, list the
//! rescan-scheduler's plan and request rescans.

mod dead;
mod definitions;
mod demo;
mod history;
mod image_history;
mod index;
mod job;
mod lint;
mod logs;
mod report;
mod report_table;
mod scan;
mod schedule;
mod status;
mod submit;
mod watch;
mod why;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};
use slipway_broker::BrokerSettings;
use slipway_common::ImageRef;
use slipway_common::config::{ConfigSources, load};
use slipway_common::errors::Chain;
use slipway_common::image::registry_host;
use slipway_scan::reports::Document;

/// Command-line arguments.
#[derive(Parser, Debug)]
#[command(
    name = "slipway",
    version,
    about = "Slipway container image pipeline: command line"
)]
struct Cli {
    /// Configuration file (default: /etc/slipway/cli.toml if present; SLIPWAY_* env overrides).
    /// Give it before the subcommand.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the whole pipeline on this machine with a sample index: every worker, an SMTP sink,
    /// the jobs live, then a summary of images, findings, scans and mails.
    Demo(demo::DemoArgs),
    /// Index files.
    Index {
        #[command(subcommand)]
        command: IndexCommand,
    },
    /// Publish a build.requested job for entries of an index file, an index.d directory or JSON
    /// on stdin.
    Submit(submit::SubmitArgs),
    /// The pipeline per stage: ready, in-flight, retrying messages and consumers; then the
    /// dead letters.
    Status(status::StatusArgs),
    /// The dependency tree of an index: which image is built from which (`--format dot` for
    /// Graphviz).
    Graph(index::GraphArgs),
    /// Lint Dockerfiles with hadolint's rules (same codes, levels, options and exit codes).
    Lint(lint::LintArgs),
    /// Print a job's build log (from the `<namespace>.logs` stream), or follow it until it ends.
    Logs(logs::LogsArgs),
    /// Print every event of a job across stages (from the `<namespace>.history` stream), or
    /// follow it until the job ends.
    Job(job::JobArgs),
    /// The jobs of an image (from the `<namespace>.history` stream): when, why, how far each got.
    History(image_history::HistoryArgs),
    /// Packages and file integrity of an image archive (`docker save` output, `-` for stdin) or a
    /// root filesystem directory.
    Scan(scan::ScanArgs),
    /// Print the latest full scan report of an image (from the `<namespace>.reports` stream).
    Report(report::ReportArgs),
    /// Print the CycloneDX SBOM stored with the latest scan of an image (from the
    /// `<namespace>.reports` stream).
    Sbom(report::DocumentArgs),
    /// Print the build provenance of an image (an in-toto statement with an SLSA provenance v1
    /// predicate), stored when its build was scanned (from the `<namespace>.reports` stream).
    Provenance(report::DocumentArgs),
    /// The rescan-scheduler's next rescans, scheduled rebuilds and owner summaries (folded from
    /// the `<namespace>.history` stream).
    Schedule(schedule::ScheduleArgs),
    /// Request a scan of an image now, or of every live image (`--all`).
    Rescan(schedule::RescanArgs),
    /// Jobs moving through the stages, live; exits when the watched jobs have ended.
    Watch(watch::WatchArgs),
    /// Why was this image built? The chain of causes behind its latest build, from the history.
    Why(why::WhyArgs),
    /// The RabbitMQ definitions of a least-privilege deployment, as JSON for `rabbitmqctl
    /// import_definitions`: the vhost, every exchange, queue and binding, a queue-length policy,
    /// and one user per worker type plus one for this command line, each allowed only what it
    /// does.
    Definitions(definitions::DefinitionsArgs),
    /// The dead letters: list them with their reasons, show one, replay or purge them.
    Dead {
        #[command(subcommand)]
        command: dead::DeadCommand,
    },
}

#[derive(Subcommand, Debug)]
enum IndexCommand {
    /// Validate an index (files or `index.d` directories) as a whole; exit 1 with
    /// `file:line: message` lines when it has problems.
    Check(index::CheckArgs),
}

/// The CLI's configuration.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct CliConfig {
    broker: BrokerSettings,
    registry: RegistryAddress,
    /// `[scheduler]`: the rescan-scheduler's settings (its period), for `slipway schedule`.
    scheduler: slipway_rescan_scheduler::config::SchedulerSettings,
    /// `[status]`: where `slipway status` reads in-flight counts.
    status: status::StatusSettings,
    /// `[logs]`: the log stream's retention, for `slipway definitions` (the build worker's).
    logs: slipway_broker::logs::LogStreamSettings,
    /// `[reports]`: the report stream's retention, for `slipway definitions` (the scan
    /// worker's).
    reports: slipway_broker::reports::ReportStreamSettings,
}

/// `[registry]`: Slipway's registry, where a short image name (`team/app:1`) lives.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default)]
struct RegistryAddress {
    /// Base URL of the registry the build worker pushes to (its `[registry].url`).
    url: String,
}

impl Default for RegistryAddress {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:5000".to_owned(),
        }
    }
}

impl RegistryAddress {
    /// `text` as a normalised image reference: a short index name (`team/app:1`) is put in this
    /// registry (`slipway_common::image`'s one normalisation rule); a full reference and
    /// `@sha256:` are taken as they are.
    fn image(&self, text: &str) -> anyhow::Result<ImageRef> {
        Ok(ImageRef::parse(text)?.in_registry(registry_host(&self.url))?)
    }

    /// [`RegistryAddress::image`] of a command's IMAGE argument; `None` (and the error printed)
    /// when it is malformed, which the commands answer with exit status 1.
    fn image_argument(&self, text: &str) -> Option<ImageRef> {
        self.image(text)
            .map_err(|error| eprintln!("slipway: error: {}", Chain(error.as_ref())))
            .ok()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("slipway: error: {}", Chain(error.as_ref()));
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo(args) => {
            let config = config(cli.config.as_deref())?;
            demo::run(&config.broker, &config.registry.url, &args).await
        }
        Command::Index {
            command: IndexCommand::Check(args),
        } => index::check(&args),
        Command::Graph(args) => index::graph(&args),
        Command::Submit(args) => {
            let config = config(cli.config.as_deref())?;
            submit::run(&config.broker, &args).await
        }
        Command::Status(args) => {
            let config = config(cli.config.as_deref())?;
            status::run(&config.broker, &config.status, &args).await
        }
        Command::Lint(args) => Ok(lint::run(&args)),
        Command::Scan(args) => {
            let config = config(cli.config.as_deref())?;
            Ok(scan::run(&args, &config.registry).await)
        }
        Command::Logs(args) => {
            let config = config(cli.config.as_deref())?;
            logs::run(&config.broker, &args).await
        }
        Command::History(args) => {
            let config = config(cli.config.as_deref())?;
            let Some(image) = config.registry.image_argument(&args.image) else {
                return Ok(ExitCode::FAILURE);
            };
            let registry = registry_host(&config.registry.url);
            image_history::run(&config.broker, &image, registry, &args).await
        }
        Command::Job(args) => {
            let config = config(cli.config.as_deref())?;
            job::run(&config.broker, &args).await
        }
        Command::Report(args) => {
            let config = config(cli.config.as_deref())?;
            let Some(image) = config.registry.image_argument(&args.image) else {
                return Ok(ExitCode::FAILURE);
            };
            report::run(&config.broker, &image, &args).await
        }
        Command::Sbom(args) => stored_document(cli.config.as_deref(), Document::Sbom, &args).await,
        Command::Provenance(args) => {
            stored_document(cli.config.as_deref(), Document::Provenance, &args).await
        }
        Command::Watch(args) => {
            let config = config(cli.config.as_deref())?;
            watch::run(&config.broker, &args).await
        }
        Command::Why(args) => {
            let config = config(cli.config.as_deref())?;
            let Some(image) = config.registry.image_argument(&args.image) else {
                return Ok(ExitCode::FAILURE);
            };
            why::run(&config.broker, &image, &args).await
        }
        Command::Definitions(args) => {
            let config = config(cli.config.as_deref())?;
            definitions::run(&config.broker, &config.logs, &config.reports, &args)
        }
        Command::Dead { command } => {
            let config = config(cli.config.as_deref())?;
            dead::run(&config.broker, &command).await
        }
        Command::Schedule(args) => {
            let config = config(cli.config.as_deref())?;
            schedule::schedule(&config.broker, &config.scheduler, &args).await
        }
        Command::Rescan(args) => {
            let config = config(cli.config.as_deref())?;
            let image = match &args.image {
                Some(text) => match config.registry.image_argument(text) {
                    Some(image) => Some(image),
                    None => return Ok(ExitCode::FAILURE),
                },
                None => None,
            };
            schedule::rescan(&config.broker, &config.scheduler, image).await
        }
    }
}

/// `slipway sbom` and `slipway provenance`: the stored `document` of `args.image`.
async fn stored_document(
    config_file: Option<&Path>,
    document: Document,
    args: &report::DocumentArgs,
) -> anyhow::Result<ExitCode> {
    let config = config(config_file)?;
    let Some(image) = config.registry.image_argument(&args.image) else {
        return Ok(ExitCode::FAILURE);
    };
    report::run_document(&config.broker, &image, document, args).await
}

fn config(file: Option<&Path>) -> anyhow::Result<CliConfig> {
    Ok(load(&ConfigSources::for_worker("cli").with_file_if(file))?)
}

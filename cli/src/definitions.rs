//! `slipway definitions`: the RabbitMQ definitions of a least-privilege deployment (vhost,
//! topology, queue-length policy, one user per worker type and one for the command line), for
//! `rabbitmqctl import_definitions`. See `slipway_broker::definitions` and deploy/rabbitmq/.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use slipway_broker::BrokerSettings;
use slipway_broker::definitions::{DefinitionsPlan, definitions, password_hashes_from};
use slipway_broker::logs::LogStreamSettings;
use slipway_broker::reports::ReportStreamSettings;

/// Options of `slipway definitions`.
#[derive(Args, Debug)]
#[command(
    after_help = "Load the output with `rabbitmqctl import_definitions FILE`, then run the \
workers with broker.topology = \"verify\" (deploy/rabbitmq/README.md). The namespace, retry delays, \
delivery limit and the streams' retention come from the configuration ([broker], [logs], \
[reports]): make the definitions with the settings the workers run with.

Exit status: 0 printed; 2 the settings are invalid or a password file cannot be read (the error \
says which)."
)]
pub struct DefinitionsArgs {
    /// The vhost the definitions create and put everything in (the workers' `broker.url` must
    /// name it).
    #[arg(long, default_value = "slipway")]
    pub vhost: String,
    /// Users are named <PREFIX><role>: slipway-lint, slipway-build, slipway-scan,
    /// slipway-repo-tracker, slipway-rescan-scheduler, slipway-notify and slipway-cli.
    #[arg(long, default_value = "slipway-", value_name = "PREFIX")]
    pub user_prefix: String,
    /// A directory holding one password file per role (lint, build, scan, repo-tracker,
    /// rescan-scheduler, notify, cli): the users get salted hashes of them, so the definitions
    /// can be imported again without resetting a password. Without it the users have no
    /// password and cannot log in until `rabbitmqctl change_password`.
    #[arg(long, value_name = "DIR")]
    pub credentials: Option<PathBuf>,
}

/// Print the definitions as JSON on stdout. The namespace, retry delays, delivery limit and
/// history retention come from `broker`; the log and report streams' retention from `logs` and
/// `reports` (the build and scan workers' `[logs]` and `[reports]`).
pub fn run(
    broker: &BrokerSettings,
    logs: &LogStreamSettings,
    reports: &ReportStreamSettings,
    args: &DefinitionsArgs,
) -> anyhow::Result<ExitCode> {
    broker.validate()?;
    let hashes: BTreeMap<&str, String> = match &args.credentials {
        Some(dir) => password_hashes_from(dir)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("read the passwords in {}", dir.display()))?
            .into_iter()
            .collect(),
        None => BTreeMap::new(),
    };
    let plan = DefinitionsPlan {
        broker,
        vhost: &args.vhost,
        user_prefix: &args.user_prefix,
        logs,
        reports,
    };
    let document = definitions(&plan, |role| hashes.get(role).cloned())?;
    println!("{}", serde_json::to_string_pretty(&document)?);
    Ok(ExitCode::SUCCESS)
}

//! `slipway scan TARGET`: the package inventory and integrity of an image of the local Docker
//! daemon (by name, digest or id), of an image archive (`docker save` output, a file or `-` for
//! stdin) or of a root filesystem directory.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use slipway_common::ImageRef;
use slipway_scan::gate::{FailOn, VulnerabilitySeverity, failing, parse_fail_on};
use slipway_scan::osv::Database;
use slipway_scan::pipeline::{self, PipelineOptions, ScanSubject, Source};
use slipway_scan::report::ScanReport;
use slipway_scan::sbom::{SbomSubject, cyclonedx};
use slipway_scan::source::Target;
use slipway_scan::updates::{
    FetchSettings, Fetcher, IndexConfig, PackageIndex, Repo, RepoConfig, validate_indexes,
    validate_repos,
};

/// Output formats of `slipway scan`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ScanFormat {
    /// Human-readable tables.
    Table,
    /// The full report as one JSON document (the shape the scan worker stores).
    Json,
    /// The CycloneDX 1.5 SBOM alone.
    Cyclonedx,
}

/// Arguments of `slipway scan`.
#[derive(Args, Debug)]
#[command(
    after_help = "Exit status: 0 the image was read and its report printed (whatever it found, unless --fail-on or --exit-code says otherwise); N (--exit-code, 1 by default) the report has findings --fail-on names, each named on stderr; 2 it could not be read (no such image, unreadable archive, broken package database).\n\nIn CI, as with Trivy's --exit-code: `slipway scan --fail-on vulnerabilities:high,integrity IMAGE` exits 1 when the image has a vulnerability rated high or critical or a file that differs from its package."
)]
pub struct ScanArgs {
    /// What to scan: an image of the local Docker daemon (`name:tag`, `name@sha256:…`, an id; a
    /// short index name such as `team/app:1` that the daemon lacks is looked up in the
    /// configured `[registry]`, as `127.0.0.1:5000/team/app:1`), an
    /// image archive (`docker save IMAGE > image.tar`; `-` reads one from stdin), or a root
    /// filesystem directory. An existing file or directory of that name wins over an image name.
    pub target: String,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    pub format: ScanFormat,
    /// Skip integrity checking (no file digests are computed: faster).
    #[arg(long)]
    pub no_integrity: bool,
    /// A directory of OSV records (e.g. osv.dev's export, one directory per ecosystem) to match
    /// the packages against, offline. Without it the report says no database is configured.
    #[arg(long, value_name = "DIR", env = "SLIPWAY_OSV_DIR")]
    pub osv_dir: Option<std::path::PathBuf>,
    /// A TOML file with `[[repos]]` (the apt, yum and apk repositories to look for updates in,
    /// as in the scan worker's configuration), `[[indexes]]` (the PyPI, npm and RubyGems
    /// indexes to look for language-package updates in) and optionally `[updates]` (index cache
    /// directory, limits). Without it the report says updates were not checked.
    #[arg(long, value_name = "FILE")]
    pub repos: Option<std::path::PathBuf>,
    /// Exit with --exit-code when the report has any of these findings (comma-separated):
    /// updates, integrity, capabilities, vulnerabilities, vulnerabilities:low|medium|high|critical
    /// (a vulnerability is as severe as the highest rating it carries: its database's, a CVSS
    /// v3 base score, a distribution's). --exit-code alone means `vulnerabilities`.
    #[arg(long, value_name = "LIST", value_parser = fail_on_list)]
    pub fail_on: Option<FailOnList>,
    /// The exit status when --fail-on finds something (1 by default; 2 means the image could not
    /// be read, so it is refused here).
    #[arg(long, value_name = "N", value_parser = exit_code)]
    pub exit_code: Option<u8>,
}

/// `--fail-on`'s list.
#[derive(Clone, Debug)]
pub struct FailOnList(Vec<FailOn>);

fn fail_on_list(text: &str) -> Result<FailOnList, String> {
    parse_fail_on(text).map(FailOnList)
}

fn exit_code(text: &str) -> Result<u8, String> {
    match text.parse::<u8>() {
        Ok(2) => Err("2 means the image could not be read: choose another status".to_owned()),
        Ok(code) if code > 0 => Ok(code),
        _ => Err(format!("expecting a status from 1 to 255, found {text:?}")),
    }
}

/// The `[[repos]]`, `[[indexes]]` and `[updates]` of a `--repos` file.
#[derive(serde::Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct ReposFile {
    updates: FetchSettings,
    repos: Vec<RepoConfig>,
    indexes: Vec<IndexConfig>,
}

/// Where updates are looked for: OS package repositories, package indexes, and the fetcher
/// that reads both.
#[derive(Default)]
struct UpdateSources {
    repos: Vec<Repo>,
    indexes: Vec<PackageIndex>,
    fetcher: Option<Fetcher>,
}

/// The repositories and indexes of `file` (none without one) and a fetcher for them.
fn update_sources(file: Option<&std::path::Path>) -> anyhow::Result<UpdateSources> {
    let Some(file) = file else {
        return Ok(UpdateSources::default());
    };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let parsed: ReposFile = config::Config::builder()
        .add_source(config::File::from_str(&text, config::FileFormat::Toml))
        .build()
        .and_then(config::Config::try_deserialize)
        .with_context(|| format!("{}", file.display()))?;
    let repos = validate_repos(&parsed.repos).with_context(|| format!("{}", file.display()))?;
    let indexes =
        validate_indexes(&parsed.indexes).with_context(|| format!("{}", file.display()))?;
    let fetcher = Fetcher::new(&parsed.updates)?;
    Ok(UpdateSources {
        repos,
        indexes,
        fetcher: Some(fetcher),
    })
}

/// Runs `slipway scan`: exit 0 when the image was read, 2 when it could not be.
pub async fn run(args: &ScanArgs, registry: &crate::RegistryAddress) -> ExitCode {
    let gate = match (&args.fail_on, args.exit_code) {
        (None, None) => None,
        (list, code) => Some((
            list.as_ref().map_or_else(
                || vec![FailOn::Vulnerabilities(VulnerabilitySeverity::Unknown)],
                |list| list.0.clone(),
            ),
            code.unwrap_or(1),
        )),
    };
    if gate.is_some() && matches!(args.format, ScanFormat::Cyclonedx) {
        eprintln!("slipway scan: --fail-on and --exit-code judge a report: not with -f cyclonedx");
        return ExitCode::from(2);
    }
    match scan(args, registry).await {
        Ok(Some(report)) => match gate {
            Some((rules, code)) => {
                let reasons = failing(&report, &rules);
                if reasons.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    eprintln!("slipway scan: failing (--fail-on): {}", reasons.join("; "));
                    ExitCode::from(code)
                }
            }
            None => ExitCode::SUCCESS,
        },
        Ok(None) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!(
                "slipway scan: {}",
                slipway_common::errors::Chain(error.as_ref())
            );
            ExitCode::from(2)
        }
    }
}

/// Scans and prints; the report, unless only the SBOM was asked for.
async fn scan(
    args: &ScanArgs,
    registry: &crate::RegistryAddress,
) -> anyhow::Result<Option<ScanReport>> {
    let integrity = !args.no_integrity && !matches!(args.format, ScanFormat::Cyclonedx);
    let database = match &args.osv_dir {
        Some(dir) => {
            let dir = dir.clone();
            let database = tokio::task::spawn_blocking(move || Database::load(&dir)).await??;
            let summary = database.summary();
            if summary.skipped > 0 {
                eprintln!(
                    "slipway scan: {} of the OSV records in {} were skipped as unreadable (see the JSON report)",
                    summary.skipped,
                    database.path().display()
                );
            }
            Some(database)
        }
        None => None,
    };
    let target = Target::parse(&args.target);
    let engine;
    let (source, image) = match target {
        Target::Image(reference) => {
            engine = slipway_docker::DockerEngine::connect().await.context(
                "connecting to the Docker daemon (to scan a file or directory, give its path)",
            )?;
            // A name the daemon knows but the grammar refuses (an image id) pins no repository.
            let mut image = ImageRef::parse(&reference).ok();
            let mut reference = reference;
            // A short index name the daemon does not hold as such is Slipway's registry image
            // (`team/app:1` is `127.0.0.1:5000/team/app:1`).
            if let Some(short) = image.as_ref().filter(|i| i.domain().is_none())
                && engine.image_id(&reference).await?.is_none()
                && let Ok(full) = registry.image(&short.to_string())
            {
                reference = full.to_string();
                image = Some(full);
            }
            (
                Source::Daemon {
                    engine: &engine,
                    reference,
                },
                image,
            )
        }
        local => (Source::Local(local), None),
    };
    let subject = ScanSubject {
        name: args.target.clone(),
        pinned: image.as_ref().and_then(ImageRef::digest).cloned(),
        image,
    };
    let sbom_only = matches!(args.format, ScanFormat::Cyclonedx);
    // The SBOM needs neither repositories nor the OSV database.
    let sources = if sbom_only {
        UpdateSources::default()
    } else {
        update_sources(args.repos.as_deref())?
    };
    let options = PipelineOptions {
        integrity,
        repos: &sources.repos,
        indexes: &sources.indexes,
        fetcher: sources.fetcher.as_ref(),
        database: if sbom_only { None } else { database.as_ref() },
        limits: slipway_scan::image::ReadLimits::default(),
    };
    let scanned = pipeline::scan(source, &subject, options).await?;
    let mut out = std::io::stdout().lock();
    if sbom_only {
        let sbom_subject = SbomSubject {
            image: args.target.clone(),
            digest: scanned.digest.as_ref().map(ToString::to_string),
            timestamp: scanned.scanned_at.to_rfc3339(),
            tool_name: "slipway".to_owned(),
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        serde_json::to_writer_pretty(
            &mut out,
            &cyclonedx(&scanned.analysis.inventory, &sbom_subject),
        )?;
        writeln!(out)?;
        return Ok(None);
    }
    let report = scanned.report;
    if let ScanFormat::Json = args.format {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        let value = serde_json::to_value(&report)?;
        write!(out, "{}", crate::report_table::render(&value, true))?;
    }
    Ok(Some(report))
}

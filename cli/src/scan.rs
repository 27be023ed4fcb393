//! `slipway scan TARGET`: the package inventory and integrity of an image of the local Docker
//! daemon (by name, digest or id), of an image archive (`docker save` output, a file or `-` for
//! stdin) or of a root filesystem directory.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use slipway_common::envelope::Timestamp;
use slipway_scan::image::DigestSet;
use slipway_scan::integrity::IntegrityReport;
use slipway_scan::osv::Database;
use slipway_scan::package::Inventory;
use slipway_scan::report::{ScanOptions, ScanReport, Subject, analyse};
use slipway_scan::sbom::{SbomSubject, cyclonedx};
use slipway_scan::source::{ReadImage, Target, read_daemon_image, read_local};

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
pub struct ScanArgs {
    /// What to scan: an image of the local Docker daemon (`name:tag`, `name@sha256:…`, an id), an
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
}

/// Runs `slipway scan`: exit 0 when the image was read, 2 when it could not be.
pub async fn run(args: &ScanArgs) -> ExitCode {
    match scan(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("slipway scan: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn scan(args: &ScanArgs) -> anyhow::Result<()> {
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
    // An archive streams once: its digests are computed on the way (a directory's later, lazily).
    let stream_digests = if integrity {
        DigestSet::ALL
    } else {
        DigestSet::NONE
    };
    let target = Target::parse(&args.target);
    let read = match &target {
        Target::Image(reference) => {
            let engine = slipway_docker::DockerEngine::connect().await.context(
                "connecting to the Docker daemon (to scan a file or directory, give its path)",
            )?;
            read_daemon_image(&engine, reference, stream_digests).await?
        }
        local => {
            let local = local.clone();
            tokio::task::spawn_blocking(move || read_local(&local, stream_digests)).await??
        }
    };
    let ReadImage {
        mut fs,
        access,
        image_id,
        repo_digests,
    } = read;
    let analysis =
        tokio::task::spawn_blocking(move || analyse(&mut fs, ScanOptions { integrity })).await??;
    let subject = Subject {
        image: args.target.clone(),
        digest: repo_digests
            .first()
            .and_then(|d| d.split_once('@'))
            .map(|(_, digest)| digest.to_owned()),
        image_id,
        access,
    };
    let mut out = std::io::stdout().lock();
    match args.format {
        ScanFormat::Json => {
            let report = ScanReport::new(
                subject,
                Timestamp::now().to_rfc3339(),
                &analysis,
                database.as_ref(),
            );
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        }
        ScanFormat::Cyclonedx => {
            let sbom_subject = SbomSubject {
                image: args.target.clone(),
                digest: subject.digest,
                timestamp: Timestamp::now().to_rfc3339(),
                tool_name: "slipway".to_owned(),
                tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            };
            serde_json::to_writer_pretty(&mut out, &cyclonedx(&analysis.inventory, &sbom_subject))?;
            writeln!(out)?;
        }
        ScanFormat::Table => {
            print_table(
                &mut out,
                &args.target,
                &analysis.inventory,
                analysis.integrity.as_ref(),
            )?;
            for warning in &analysis.warnings {
                writeln!(out, "warning: {warning}")?;
            }
        }
    }
    Ok(())
}

fn print_table(
    out: &mut impl std::io::Write,
    target: &str,
    found: &Inventory,
    report: Option<&IntegrityReport>,
) -> std::io::Result<()> {
    writeln!(out, "{target}")?;
    match &found.os {
        Some(os) => writeln!(
            out,
            "OS: {}",
            os.pretty_name.clone().unwrap_or_else(|| format!(
                "{} {}",
                os.id,
                os.version_id.as_deref().unwrap_or("")
            ))
        )?,
        None => writeln!(out, "OS: none identified")?,
    }
    writeln!(out, "\nPackages ({}):", found.packages.len())?;
    let width = found
        .packages
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    writeln!(out, "  {:<6} {:<width$} VERSION", "TYPE", "NAME")?;
    for package in &found.packages {
        writeln!(
            out,
            "  {:<6} {:<width$} {}",
            package.ecosystem.as_str(),
            package.name,
            package.version
        )?;
    }
    if let Some(report) = report {
        writeln!(
            out,
            "\nIntegrity: {} files verified, {} differ, {} configuration changes, {} docs missing, {} volatile not verified",
            report.verified,
            report.failures.len(),
            report.config_changes.len(),
            report.docs_missing.len(),
            report.volatile_skipped
        )?;
        for finding in &report.failures {
            writeln!(
                out,
                "  {} ({}): {:?}",
                finding.path, finding.package, finding.problem
            )?;
        }
        for finding in &report.config_changes {
            writeln!(
                out,
                "  config {} ({}): {:?}",
                finding.path, finding.package, finding.problem
            )?;
        }
    }
    Ok(())
}

//! `slipway scan TARGET`: the package inventory and integrity of an image read from an archive
//! (`docker save` output, a file or `-` for stdin) or a root filesystem directory.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use slipway_common::envelope::Timestamp;
use slipway_scan::image::archive::read_archive;
use slipway_scan::image::rootfs::read_rootfs;
use slipway_scan::image::{DigestSet, ImageFs, ReadOptions};
use slipway_scan::integrity::{self, IntegrityReport};
use slipway_scan::inventory::{inventory, wanted};
use slipway_scan::package::Inventory;
use slipway_scan::sbom::{SbomSubject, cyclonedx};

/// Output formats of `slipway scan`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ScanFormat {
    /// Human-readable tables.
    Table,
    /// One JSON document: os, packages (without their file lists), integrity.
    Json,
    /// The CycloneDX 1.5 SBOM alone.
    Cyclonedx,
}

/// Arguments of `slipway scan`.
#[derive(Args, Debug)]
pub struct ScanArgs {
    /// An image archive (`docker save IMAGE > image.tar`; `-` reads one from stdin, as in
    /// `docker save IMAGE | slipway scan -`) or a root filesystem directory.
    pub target: String,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    pub format: ScanFormat,
    /// Skip integrity checking (no file digests are computed: faster).
    #[arg(long)]
    pub no_integrity: bool,
}

/// Runs `slipway scan`: exit 0 when the image was read, 2 when it could not be.
pub fn run(args: &ScanArgs) -> ExitCode {
    match scan(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("slipway scan: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn scan(args: &ScanArgs) -> anyhow::Result<()> {
    let options = ReadOptions {
        keep: &wanted,
        digests: if args.no_integrity || matches!(args.format, ScanFormat::Cyclonedx) {
            DigestSet::NONE
        } else {
            DigestSet::ALL
        },
    };
    let fs = read_target(&args.target, &options)?;
    let found = inventory(&fs)?;
    let integrity_wanted = !args.no_integrity && !matches!(args.format, ScanFormat::Cyclonedx);
    let report = integrity_wanted.then(|| integrity::check(&found.packages, &fs));
    let mut out = std::io::stdout().lock();
    match args.format {
        ScanFormat::Json => {
            let document = serde_json::json!({
                "target": args.target,
                "os": found.os,
                "packages": found.packages.iter().map(|p| serde_json::json!({
                    "ecosystem": p.ecosystem,
                    "name": p.name,
                    "version": p.version,
                    "arch": p.arch,
                    "source-name": p.source_name,
                    "license": p.license,
                    "location": p.location,
                })).collect::<Vec<_>>(),
                "integrity": report,
            });
            serde_json::to_writer_pretty(&mut out, &document)?;
            writeln!(out)?;
        }
        ScanFormat::Cyclonedx => {
            let subject = SbomSubject {
                image: args.target.clone(),
                digest: None,
                timestamp: Timestamp::now().to_rfc3339(),
                tool_name: "slipway".to_owned(),
                tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            };
            serde_json::to_writer_pretty(&mut out, &cyclonedx(&found, &subject))?;
            writeln!(out)?;
        }
        ScanFormat::Table => print_table(&mut out, &args.target, &found, report.as_ref())?,
    }
    Ok(())
}

fn read_target(target: &str, options: &ReadOptions<'_>) -> anyhow::Result<ImageFs> {
    if target == "-" {
        return Ok(read_archive(std::io::stdin().lock(), "stdin", options)?);
    }
    let path = Path::new(target);
    if path.is_dir() {
        return Ok(read_rootfs(path, options)?);
    }
    if path.is_file() {
        let file =
            std::fs::File::open(path).map_err(|e| anyhow::anyhow!("cannot open {target}: {e}"))?;
        return Ok(read_archive(file, target, options)?);
    }
    anyhow::bail!(
        "{target:?} is neither a directory nor an image archive; to scan an image of the local daemon, run `docker save {target} | slipway scan -`"
    )
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

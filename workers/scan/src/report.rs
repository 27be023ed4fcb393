//! One image's scan: the steps run over its filesystem ([`analyse`]: inventory, integrity,
//! capabilities), the updates and the offline vulnerability match,
//! and the full report they make ([`ScanReport`]), which the CLI prints and the worker appends to
//! the reports stream, with its per-scanner counts (the `scan.completed` summary).
//!
//! The report is a document other programs read (`slipway report`, dashboards, the notify
//! worker): its shape is versioned by [`REPORT_SCHEMA`]; fields are only ever added.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::capabilities::{self, Finding as CapabilityFinding};
use crate::image::{ImageError, ImageFs};
use crate::integrity::{self, IntegrityReport};
use crate::inventory::{InventoryError, take_inventory};
use crate::osv::{self, Database, OsvReport};
use crate::package::{Ecosystem, Inventory, OsIdentity, Package};
use crate::source::Access;
use crate::updates::{LanguageUpdatesReport, UpdatesReport};

/// The report format's name and version.
pub const REPORT_SCHEMA: &str = "slipway.scan-report/1";

/// Which optional scanners run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanOptions {
    /// Compare every package-owned file with its package database (hashes the files).
    pub integrity: bool,
}

/// What was scanned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct Subject {
    /// The image reference, archive path or directory as given.
    pub image: String,
    /// The manifest digest, when known.
    pub digest: Option<String>,
    /// The daemon's image id, when read from a daemon.
    pub image_id: Option<String>,
    /// How the files were read.
    pub access: Access,
}

/// The analysis of a filesystem, before anything from outside the image (repositories, the OSV
/// database) is consulted.
#[derive(Debug)]
pub struct Analysis {
    /// The OS and packages.
    pub inventory: Inventory,
    /// Integrity, when asked for.
    pub integrity: Option<IntegrityReport>,
    /// What the image's configuration and `RUN`/`INSTALL`/`UNINSTALL` labels ask of its host.
    pub capabilities: Vec<CapabilityFinding>,
    /// Things the report should say were skipped: malformed package database entries, database
    /// files not read, malformed language-package files, unchecked capabilities.
    pub warnings: Vec<String>,
    /// Time each step took, by scanner name.
    pub durations: BTreeMap<&'static str, Duration>,
}

/// Why an image could not be analysed.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// A package database is unreadable.
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    /// Files could not be hashed.
    #[error("hashing package files: {0}")]
    Hashing(#[from] ImageError),
}

/// Runs the steps that need only the image's files (blocking: call it off the async runtime).
pub fn analyse(fs: &mut ImageFs, options: ScanOptions) -> Result<Analysis, AnalysisError> {
    let mut durations = BTreeMap::new();
    let started = Instant::now();
    let taken = take_inventory(fs)?;
    let found = taken.inventory;
    let mut warnings: Vec<String> = taken.skipped.iter().map(ToString::to_string).collect();
    warnings.extend(
        taken
            .unreadable
            .iter()
            .map(|e| format!("language package skipped: {e}")),
    );
    durations.insert("inventory", started.elapsed());
    let capabilities = match fs.config() {
        Some(config) => capabilities::from_config(config).unwrap_or_else(|e| {
            warnings.push(format!(
                "capabilities not checked: the image configuration is unreadable: {e}"
            ));
            Vec::new()
        }),
        None => {
            warnings.push("capabilities not checked: the source has no image configuration (a root filesystem directory)".to_owned());
            Vec::new()
        }
    };
    let integrity = if options.integrity {
        let started = Instant::now();
        let needed = integrity::digests_needed(&found.packages, fs);
        fs.compute_digests(&needed)?;
        let report = integrity::check(&found.packages, fs);
        durations.insert("integrity", started.elapsed());
        Some(report)
    } else {
        None
    };
    Ok(Analysis {
        inventory: found,
        integrity,
        capabilities,
        warnings,
        durations,
    })
}

/// Matches the packages of `analysis` against the OSV `database` (or reports that none is
/// configured), recording the time it took among the analysis' durations.
pub fn match_vulnerabilities(analysis: &mut Analysis, database: Option<&Database>) -> OsvReport {
    let started = Instant::now();
    let report = osv::check(&analysis.inventory, database);
    analysis
        .durations
        .insert("vulnerabilities", started.elapsed());
    report
}

/// One package as the report lists it (its file list stays out: the SBOM and integrity say what
/// matters about files).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct ReportedPackage {
    /// Packaging system.
    pub ecosystem: Ecosystem,
    /// Name.
    pub name: String,
    /// Version as the database records it.
    pub version: String,
    /// Architecture, when recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Source package, when recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_name: Option<String>,
    /// Licence, when recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Where the record was found.
    pub location: String,
    /// Package URL.
    pub purl: String,
}

impl ReportedPackage {
    fn of(package: &Package, os: Option<&OsIdentity>) -> Self {
        Self {
            ecosystem: package.ecosystem,
            name: package.name.clone(),
            version: package.version.clone(),
            arch: package.arch.clone(),
            source_name: package.source_name.clone(),
            license: package.license.clone(),
            location: package.location.clone(),
            purl: crate::purl::of(package, os),
        }
    }
}

/// The full report of one scan.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct ScanReport {
    /// [`REPORT_SCHEMA`].
    pub schema: &'static str,
    /// What was scanned.
    #[serde(flatten)]
    pub subject: Subject,
    /// When (RFC 3339, UTC).
    pub scanned_at: String,
    /// The scanning tool and its version.
    pub tool: String,
    /// The OS, when identified.
    pub os: Option<OsIdentity>,
    /// Every package found, sorted by ecosystem, name, version, location.
    pub packages: Vec<ReportedPackage>,
    /// Integrity, when it was checked.
    pub integrity: Option<IntegrityReport>,
    /// Host privileges the image asks for.
    pub capabilities: Vec<CapabilityFinding>,
    /// Newer versions of the OS packages in the repositories configured for the image's OS.
    pub updates: UpdatesReport,
    /// Newer releases of the Python, npm and gem packages on the configured package indexes.
    pub language_updates: LanguageUpdatesReport,
    /// Known vulnerabilities from the offline OSV database, or that none is configured.
    pub vulnerabilities: OsvReport,
    /// What was skipped, and why.
    pub warnings: Vec<String>,
    /// Milliseconds each scanner took.
    pub durations_ms: BTreeMap<String, u64>,
}

impl ScanReport {
    /// The report of `analysis` of `subject`, scanned at `scanned_at` (RFC 3339), with the
    /// OS `updates` and `language_updates` found and the `vulnerabilities` matched
    /// ([`match_vulnerabilities`]).
    pub fn new(
        subject: Subject,
        scanned_at: String,
        analysis: &Analysis,
        (updates, language_updates): (UpdatesReport, LanguageUpdatesReport),
        vulnerabilities: OsvReport,
    ) -> Self {
        let durations = &analysis.durations;
        let os = analysis.inventory.os.as_ref();
        Self {
            schema: REPORT_SCHEMA,
            subject,
            scanned_at,
            tool: format!("slipway {}", env!("CARGO_PKG_VERSION")),
            os: analysis.inventory.os.clone(),
            packages: analysis
                .inventory
                .packages
                .iter()
                .map(|p| ReportedPackage::of(p, os))
                .collect(),
            integrity: analysis.integrity.clone(),
            capabilities: analysis.capabilities.clone(),
            updates,
            language_updates,
            vulnerabilities,
            warnings: analysis.warnings.clone(),
            durations_ms: durations
                .iter()
                .map(|(k, d)| {
                    (
                        (*k).to_owned(),
                        u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
                    )
                })
                .collect(),
        }
    }

    /// Results per scanner, the `scan.completed` summary: `packages`, `integrity` (failures),
    /// `config-changes`, `capabilities`, `os-updates`, `language-updates`, `vulnerabilities`.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let mut counts = BTreeMap::new();
        counts.insert("packages".to_owned(), count(self.packages.len()));
        if let Some(integrity) = &self.integrity {
            counts.insert("integrity".to_owned(), count(integrity.failures.len()));
            counts.insert(
                "config-changes".to_owned(),
                count(integrity.config_changes.len()),
            );
        }
        counts.insert("capabilities".to_owned(), count(self.capabilities.len()));
        counts.insert("os-updates".to_owned(), count(self.updates.updates.len()));
        counts.insert(
            "language-updates".to_owned(),
            count(self.language_updates.updates.len()),
        );
        counts.insert(
            "vulnerabilities".to_owned(),
            count(self.vulnerabilities.vulnerabilities.len()),
        );
        counts
    }
}

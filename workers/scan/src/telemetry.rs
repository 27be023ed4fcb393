//! The scan worker's typed telemetry events: each writes one log line and updates metrics with
//! bounded labels (scanner names, ecosystems, outcomes; never job ids or image names).

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts};
use slipway_common::JobId;
use slipway_common::telemetry::register;

use crate::package::Ecosystem;

/// A step of a scan whose time is measured: the `scanner` label of
/// `slipway_scan_duration_seconds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scanner {
    /// Reading the image's filesystem.
    Read,
    /// Package inventory.
    Inventory,
    /// File integrity.
    Integrity,
    /// Updates in the configured repositories.
    Updates,
    /// Known vulnerabilities (OSV).
    Vulnerabilities,
    /// The whole scan.
    Total,
}

impl Scanner {
    /// Every scanner.
    pub const ALL: [Scanner; 6] = [
        Scanner::Read,
        Scanner::Inventory,
        Scanner::Integrity,
        Scanner::Updates,
        Scanner::Vulnerabilities,
        Scanner::Total,
    ];

    /// The label value, also the key of the scan report's `durations_ms`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scanner::Read => "read",
            Scanner::Inventory => "inventory",
            Scanner::Integrity => "integrity",
            Scanner::Updates => "updates",
            Scanner::Vulnerabilities => "vulnerabilities",
            Scanner::Total => "total",
        }
    }

    /// The scanner a report's duration key names, if any.
    pub fn from_name(name: &str) -> Option<Scanner> {
        Scanner::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// How a scan job ended: the `outcome` label of `slipway_scan_scans_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ScanOutcome {
    Completed,
    Failed,
    Retried,
}

impl ScanOutcome {
    const ALL: [ScanOutcome; 3] = [
        ScanOutcome::Completed,
        ScanOutcome::Failed,
        ScanOutcome::Retried,
    ];

    fn as_str(self) -> &'static str {
        match self {
            ScanOutcome::Completed => "completed",
            ScanOutcome::Failed => "failed",
            ScanOutcome::Retried => "retried",
        }
    }
}

/// `slipway_scan_duration_seconds{scanner}`.
static DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new(
                "slipway_scan_duration_seconds",
                "Time of each step of an image scan, by scanner (read, inventory, integrity, updates, vulnerabilities, total).",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0]),
            &["scanner"],
        )
        .expect("valid metric"),
    )
});

/// `slipway_scan_packages_found_total{ecosystem}`.
static PACKAGES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "slipway_scan_packages_found_total",
                "Packages found in scanned images, by ecosystem (deb, rpm, apk, pypi, npm, gem).",
            ),
            &["ecosystem"],
        )
        .expect("valid metric"),
    )
});

/// `slipway_scan_updates_found_total`.
static UPDATES: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "slipway_scan_updates_found_total",
            "Package updates found in the configured repositories for scanned images.",
        )
        .expect("valid metric"),
    )
});

/// `slipway_scan_language_updates_found_total{ecosystem}`.
static LANGUAGE_UPDATES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "slipway_scan_language_updates_found_total",
                "Language-package updates found on the configured package indexes for scanned images, by ecosystem (pypi, npm, gem).",
            ),
            &["ecosystem"],
        )
        .expect("valid metric"),
    )
});

/// `slipway_scan_scans_total{outcome}`.
static SCANS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "slipway_scan_scans_total",
                "Image scans, by outcome (completed, failed, retried).",
            ),
            &["outcome"],
        )
        .expect("valid metric"),
    )
});

/// The ecosystems of language packages, whose updates come from package indexes.
const LANGUAGE_ECOSYSTEMS: [Ecosystem; 3] = [Ecosystem::Pypi, Ecosystem::Npm, Ecosystem::Gem];

/// Registers the scan metrics so that they are exported (at zero) from the start.
pub fn register_metrics() {
    for scanner in Scanner::ALL {
        DURATION.with_label_values(&[scanner.as_str()]);
    }
    for ecosystem in Ecosystem::ALL {
        PACKAGES.with_label_values(&[ecosystem.as_str()]);
    }
    LazyLock::force(&UPDATES);
    for ecosystem in LANGUAGE_ECOSYSTEMS {
        LANGUAGE_UPDATES.with_label_values(&[ecosystem.as_str()]);
    }
    for outcome in ScanOutcome::ALL {
        SCANS.with_label_values(&[outcome.as_str()]);
    }
}

/// A scan completed: its steps' times, the packages it found by ecosystem, the OS updates, the
/// language-package updates by ecosystem.
pub fn scan_completed(
    job_id: JobId,
    image: &str,
    digest: &str,
    durations: &BTreeMap<&'static str, Duration>,
    packages: &BTreeMap<Ecosystem, u64>,
    (updates, language_updates): (u64, &BTreeMap<Ecosystem, u64>),
) {
    // Only known scanners become label values, whatever the analysis timed.
    for (scanner, duration) in durations {
        if let Some(scanner) = Scanner::from_name(scanner) {
            DURATION
                .with_label_values(&[scanner.as_str()])
                .observe(duration.as_secs_f64());
        }
    }
    for (ecosystem, count) in packages {
        PACKAGES
            .with_label_values(&[ecosystem.as_str()])
            .inc_by(*count);
    }
    UPDATES.inc_by(updates);
    for (ecosystem, count) in language_updates {
        if LANGUAGE_ECOSYSTEMS.contains(ecosystem) {
            LANGUAGE_UPDATES
                .with_label_values(&[ecosystem.as_str()])
                .inc_by(*count);
        }
    }
    let language_updates = language_updates.values().sum::<u64>();
    SCANS
        .with_label_values(&[ScanOutcome::Completed.as_str()])
        .inc();
    let total_ms = durations
        .get(Scanner::Total.as_str())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    tracing::info!(job_id = %job_id, image, digest, packages = packages.values().sum::<u64>(), updates, language_updates, duration_ms = total_ms, "scan completed");
}

/// A scan failed for good (`scan.failed` is published).
pub fn scan_failed(job_id: JobId, image: &str, error: &str) {
    SCANS
        .with_label_values(&[ScanOutcome::Failed.as_str()])
        .inc();
    tracing::warn!(job_id = %job_id, image, error, "scan failed");
}

/// A scan will be tried again later.
pub fn scan_retried(job_id: JobId, image: &str, reason: &str) {
    SCANS
        .with_label_values(&[ScanOutcome::Retried.as_str()])
        .inc();
    tracing::warn!(job_id = %job_id, image, reason, "scan retried later");
}

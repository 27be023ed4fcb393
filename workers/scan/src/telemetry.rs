//! The scan worker's typed telemetry events: each writes one log line and updates metrics with
//! bounded labels (scanner names, ecosystems, outcomes; never job ids or image names).

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts};
use slipway_common::JobId;
use slipway_common::telemetry::register;

use crate::package::Ecosystem;

/// Every scanner whose time is measured, as `scanner` label values.
pub const SCANNERS: [&str; 6] = [
    "read",
    "inventory",
    "integrity",
    "updates",
    "vulnerabilities",
    "total",
];

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

/// Registers the scan metrics so that they are exported (at zero) from the start.
pub fn register_metrics() {
    for scanner in SCANNERS {
        DURATION.with_label_values(&[scanner]);
    }
    for ecosystem in Ecosystem::ALL {
        PACKAGES.with_label_values(&[ecosystem.as_str()]);
    }
    LazyLock::force(&UPDATES);
    for outcome in ["completed", "failed", "retried"] {
        SCANS.with_label_values(&[outcome]);
    }
}

/// A scan completed: its steps' times, the packages it found by ecosystem, the updates.
pub fn scan_completed(
    job_id: JobId,
    image: &str,
    digest: &str,
    durations: &BTreeMap<&'static str, Duration>,
    packages: &BTreeMap<Ecosystem, u64>,
    updates: u64,
) {
    for (scanner, duration) in durations {
        if SCANNERS.contains(scanner) {
            DURATION
                .with_label_values(&[scanner])
                .observe(duration.as_secs_f64());
        }
    }
    for (ecosystem, count) in packages {
        PACKAGES
            .with_label_values(&[ecosystem.as_str()])
            .inc_by(*count);
    }
    UPDATES.inc_by(updates);
    SCANS.with_label_values(&["completed"]).inc();
    let total_ms = durations
        .get("total")
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    tracing::info!(job_id = %job_id, image, digest, packages = packages.values().sum::<u64>(), updates, duration_ms = total_ms, "scan completed");
}

/// A scan failed for good (`scan.failed` is published).
pub fn scan_failed(job_id: JobId, image: &str, error: &str) {
    SCANS.with_label_values(&["failed"]).inc();
    tracing::warn!(job_id = %job_id, image, error, "scan failed");
}

/// A scan will be tried again later.
pub fn scan_retried(job_id: JobId, image: &str, reason: &str) {
    SCANS.with_label_values(&["retried"]).inc();
    tracing::warn!(job_id = %job_id, image, reason, "scan retried later");
}

//! The build worker's typed telemetry events: each writes one log line and updates one metric with
//! bounded labels (never job ids or image names as labels).

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts};
use slipway_common::JobId;
use slipway_common::message::{ImageRemoved, Removal};
use slipway_common::telemetry::register;

use slipway_docker::DiskSpace;

/// How a build job ended: the `outcome` label of `slipway_build_duration_seconds` and the
/// `x-slipway-outcome` of its log's end marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildOutcome {
    /// Built, tested and promoted (or already built): `build.succeeded`.
    Succeeded,
    /// A stage failed for good: `build.failed`.
    Failed,
    /// Transient trouble: the job runs again later.
    Retried,
}

impl BuildOutcome {
    /// Every outcome.
    pub const ALL: [BuildOutcome; 3] = [
        BuildOutcome::Succeeded,
        BuildOutcome::Failed,
        BuildOutcome::Retried,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            BuildOutcome::Succeeded => "succeeded",
            BuildOutcome::Failed => "failed",
            BuildOutcome::Retried => "retried",
        }
    }
}

/// `slipway_build_duration_seconds{outcome}`.
static DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new(
                "slipway_build_duration_seconds",
                "Time of one build job, by outcome (succeeded, failed, retried).",
            )
            .buckets(vec![
                1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
            ]),
            &["outcome"],
        )
        .expect("valid metric"),
    )
});

/// `slipway_build_pushed_bytes_total`.
static PUSHED: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "slipway_build_pushed_bytes_total",
            "Bytes of image manifests' layers pushed to the registry (as the daemon reports the pushed image's size).",
        )
        .expect("valid metric"),
    )
});

/// `slipway_build_docker_root_free_bytes`: absent until the first check (never a false 0).
static FREE_BYTES: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "slipway_build_docker_root_free_bytes",
            "Free bytes on the Docker root at the last check (at start, and before each build).",
        )
        .expect("valid metric"),
    )
});

/// `slipway_build_docker_root_free_inodes`: absent until the first check.
static FREE_INODES: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "slipway_build_docker_root_free_inodes",
            "Free inodes on the Docker root at the last check (at start, and before each build).",
        )
        .expect("valid metric"),
    )
});

/// `slipway_build_disk_guard_total`: builds put off because the Docker root was nearly full.
static DISK_GUARD: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "slipway_build_disk_guard_total",
            "Builds put off (retried later) because the Docker root had less free space or \
             inodes than build.min_free_bytes or build.min_free_inodes.",
        )
        .expect("valid metric"),
    )
});

/// `slipway_build_retired_tags_total{outcome}` (deleted, kept, absent, failed).
static RETIRED_TAGS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "slipway_build_retired_tags_total",
                "Retired images' tags handled, by outcome (deleted, kept, absent, failed).",
            ),
            &["outcome"],
        )
        .expect("valid metric"),
    )
});

/// Every retirement outcome, as its label.
const REMOVALS: [Removal; 4] = [
    Removal::Deleted,
    Removal::Kept,
    Removal::Absent,
    Removal::Failed,
];

fn removal_label(outcome: Removal) -> &'static str {
    match outcome {
        Removal::Deleted => "deleted",
        Removal::Kept => "kept",
        Removal::Absent => "absent",
        Removal::Failed => "failed",
    }
}

/// Registers the build metrics so that they are exported (at zero) from the start.
pub fn register_metrics() {
    for outcome in BuildOutcome::ALL {
        DURATION.with_label_values(&[outcome.as_str()]);
    }
    LazyLock::force(&PUSHED);
    LazyLock::force(&DISK_GUARD);
    for outcome in REMOVALS {
        RETIRED_TAGS.with_label_values(&[removal_label(outcome)]);
    }
}

/// A retired image's tag was dealt with.
pub fn retired_tag(job_id: JobId, removed: &ImageRemoved) {
    let outcome = removal_label(removed.outcome);
    RETIRED_TAGS.with_label_values(&[outcome]).inc();
    let image = removed.image.to_string();
    let digest = removed.digest.as_ref().map(ToString::to_string);
    if removed.outcome == Removal::Failed {
        tracing::error!(job_id = %job_id, image, digest, outcome, detail = %removed.detail, "retired image's tag not deleted");
    } else {
        tracing::info!(job_id = %job_id, image, digest, outcome, detail = %removed.detail, "retired image's tag handled");
    }
}

/// A build job ended with `outcome` after `duration`.
pub fn build_finished(job_id: JobId, image: &str, outcome: BuildOutcome, duration: Duration) {
    let outcome = outcome.as_str();
    DURATION
        .with_label_values(&[outcome])
        .observe(duration.as_secs_f64());
    tracing::info!(job_id = %job_id, image, outcome, duration_ms = duration.as_millis() as u64, "build finished");
}

/// An image of `bytes` was pushed.
pub fn bytes_pushed(bytes: u64) {
    PUSHED.inc_by(bytes);
    tracing::debug!(bytes, "image pushed");
}

/// The Docker root's free space was measured.
pub fn disk_free(space: &DiskSpace) {
    FREE_BYTES.set(i64::try_from(space.free_bytes).unwrap_or(i64::MAX));
    FREE_INODES.set(i64::try_from(space.free_inodes).unwrap_or(i64::MAX));
    tracing::debug!(
        free_bytes = space.free_bytes,
        free_inodes = space.free_inodes,
        "docker root space checked"
    );
}

/// A build was put off: the Docker root was nearly full.
pub fn disk_guard_tripped(space: &DiskSpace) {
    DISK_GUARD.inc();
    tracing::warn!(
        free_bytes = space.free_bytes,
        free_inodes = space.free_inodes,
        "the Docker root is nearly full; the build is retried later"
    );
}

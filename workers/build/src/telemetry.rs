//! The build worker's typed telemetry events: each writes one log line and updates one metric with
//! bounded labels (never job ids or image names as labels).

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts};
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

/// What `slipway_build_docker_root_free` measures: its `resource` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DiskResource {
    Bytes,
    Inodes,
}

impl DiskResource {
    const ALL: [DiskResource; 2] = [DiskResource::Bytes, DiskResource::Inodes];

    fn as_str(self) -> &'static str {
        match self {
            DiskResource::Bytes => "bytes",
            DiskResource::Inodes => "inodes",
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

/// `slipway_build_docker_root_free{resource}` (bytes, inodes).
static DISK_FREE: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new(
                "slipway_build_docker_root_free",
                "Free space on the Docker root at the last check, by resource (bytes, inodes).",
            ),
            &["resource"],
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
    for resource in DiskResource::ALL {
        DISK_FREE.with_label_values(&[resource.as_str()]);
    }
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
    DISK_FREE
        .with_label_values(&[DiskResource::Bytes.as_str()])
        .set(i64::try_from(space.free_bytes).unwrap_or(i64::MAX));
    DISK_FREE
        .with_label_values(&[DiskResource::Inodes.as_str()])
        .set(i64::try_from(space.free_inodes).unwrap_or(i64::MAX));
    tracing::debug!(
        free_bytes = space.free_bytes,
        free_inodes = space.free_inodes,
        "docker root space checked"
    );
}

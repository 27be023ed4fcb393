//! The lint worker's typed telemetry events: each writes one log line and updates one metric with
//! bounded labels (rule codes and levels, never job ids or image names).

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};
use slipway_common::JobId;
use slipway_common::telemetry::register;

use crate::rules::Failure;

/// A lint's verdict: the `verdict` label of `slipway_lint_duration_seconds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LintVerdict {
    /// `lint.passed`.
    Passed,
    /// `lint.failed` (findings at or above the threshold, or a source problem).
    Failed,
}

impl LintVerdict {
    /// Every verdict.
    pub const ALL: [LintVerdict; 2] = [LintVerdict::Passed, LintVerdict::Failed];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            LintVerdict::Passed => "passed",
            LintVerdict::Failed => "failed",
        }
    }
}

/// `slipway_lint_findings_total{code,level}`.
static FINDINGS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "slipway_lint_findings_total",
                "Lint findings reported, by rule code and level.",
            ),
            &["code", "level"],
        )
        .expect("valid metric"),
    )
});

/// `slipway_lint_duration_seconds{verdict}`.
static DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new(
                "slipway_lint_duration_seconds",
                "Time to fetch and lint one Dockerfile, by verdict (passed, failed).",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0,
            ]),
            &["verdict"],
        )
        .expect("valid metric"),
    )
});

/// Registers the lint metrics so that they are exported (at zero) from the start.
pub fn register_metrics() {
    LazyLock::force(&FINDINGS);
    for verdict in LintVerdict::ALL {
        DURATION.with_label_values(&[verdict.as_str()]);
    }
}

/// The findings of one lint, counted by code and level.
pub fn findings_reported(job_id: JobId, findings: &[Failure]) {
    for failure in findings {
        FINDINGS
            .with_label_values(&[failure.code.as_str(), failure.severity.as_str()])
            .inc();
    }
    tracing::debug!(job_id = %job_id, findings = findings.len(), "lint findings counted");
}

/// A lint finished with `verdict` after `duration`.
pub fn lint_finished(
    job_id: JobId,
    image: &str,
    commit: &str,
    verdict: LintVerdict,
    duration: Duration,
) {
    let verdict = verdict.as_str();
    DURATION
        .with_label_values(&[verdict])
        .observe(duration.as_secs_f64());
    tracing::info!(
        job_id = %job_id,
        image,
        commit,
        verdict,
        duration_ms = duration.as_millis() as u64,
        "lint finished"
    );
}

//! The repo-tracker's typed telemetry events: each writes one log line and updates one metric with
//! bounded labels (outcomes and kinds, never URLs, branches or image names).

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts};
use slipway_common::telemetry::{leader_gauge, register};

/// `slipway_leader{worker="repo-tracker"}`: 1 while this instance is the leader.
static LEADER: LazyLock<IntGauge> = LazyLock::new(|| leader_gauge("repo-tracker"));

/// `slipway_tracker_polls_total{outcome}`.
static POLLS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "slipway_tracker_polls_total",
                "Branch heads asked for, by outcome (moved, unchanged, error).",
            ),
            &["outcome"],
        )
        .expect("valid metric"),
    )
});

/// `slipway_tracker_poll_cycle_seconds`.
static CYCLE: LazyLock<Histogram> = LazyLock::new(|| {
    register(
        Histogram::with_opts(
            HistogramOpts::new(
                "slipway_tracker_poll_cycle_seconds",
                "Time to ask every tracked branch for its head once.",
            )
            .buckets(vec![
                0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0,
            ]),
        )
        .expect("valid metric"),
    )
});

/// `slipway_tracker_decisions_total{kind}`.
static DECISIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "slipway_tracker_decisions_total",
                "Events the leader published, by kind (build.requested, build.skipped, image.retired, index.applied, index.rejected, git.changed, packages.updated).",
            ),
            &["kind"],
        )
        .expect("valid metric"),
    )
});

/// `slipway_tracker_history_events_total`.
static APPLIED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "slipway_tracker_history_events_total",
                "History events folded into the tracker's view, by whether they decoded (applied, undecodable).",
            ),
            &["outcome"],
        )
        .expect("valid metric"),
    )
});

/// `slipway_tracker_rebuilds_in_progress`.
static IN_PROGRESS: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::with_opts(Opts::new(
            "slipway_tracker_rebuilds_in_progress",
            "Images waiting for their parents or for their requested build, in this instance's view.",
        ))
        .expect("valid metric"),
    )
});

/// Registers the tracker's metrics so that they are exported (at zero) from the start.
pub fn register_metrics() {
    LazyLock::force(&LEADER);
    LazyLock::force(&CYCLE);
    LazyLock::force(&IN_PROGRESS);
    for outcome in ["moved", "unchanged", "error"] {
        POLLS.with_label_values(&[outcome]);
    }
    for outcome in ["applied", "undecodable"] {
        APPLIED.with_label_values(&[outcome]);
    }
    for kind in [
        "build.requested",
        "build.skipped",
        "image.retired",
        "index.applied",
        "index.rejected",
        "git.changed",
        "packages.updated",
    ] {
        DECISIONS.with_label_values(&[kind]);
    }
}

/// This instance became the leader, or stopped being it.
pub fn leadership(leading: bool, term: u64) {
    LEADER.set(i64::from(leading));
    if leading {
        tracing::info!(
            term,
            "leading: polling, reading the index and running cascades"
        );
    } else {
        tracing::info!(term, "no longer leading");
    }
}

/// One branch answered a poll.
pub fn polled(url: &str, branch: &str, outcome: &Result<bool, String>) {
    let label = match outcome {
        Ok(true) => "moved",
        Ok(false) => "unchanged",
        Err(_) => "error",
    };
    POLLS.with_label_values(&[label]).inc();
    match outcome {
        Ok(true) => tracing::info!(url, branch, "branch head moved"),
        Ok(false) => tracing::debug!(url, branch, "branch head unchanged"),
        Err(error) => tracing::warn!(url, branch, %error, "cannot poll the branch"),
    }
}

/// A poll cycle over `branches` ended.
pub fn poll_cycle_done(branches: usize, took: Duration) {
    CYCLE.observe(took.as_secs_f64());
    tracing::info!(
        branches,
        took_ms = took.as_millis() as u64,
        "poll cycle done"
    );
}

/// The leader published a decision.
pub fn decided(kind: &'static str, job_id: &str, about: &str) {
    DECISIONS.with_label_values(&[kind]).inc();
    tracing::info!(kind, job_id, about, "published");
}

/// History events were folded; `in_progress` rebuilds are in this instance's view.
pub fn folded(applied: u64, undecodable: u64, in_progress: usize) {
    if applied > 0 {
        APPLIED.with_label_values(&["applied"]).inc_by(applied);
    }
    if undecodable > 0 {
        APPLIED
            .with_label_values(&["undecodable"])
            .inc_by(undecodable);
    }
    IN_PROGRESS.set(i64::try_from(in_progress).unwrap_or(i64::MAX));
}

//! The rescan-scheduler's typed telemetry events: each writes one log line and updates one
//! metric with bounded labels (kinds, never image names or addresses).

use std::sync::LazyLock;

use prometheus::{IntCounterVec, IntGauge, Opts};
use slipway_common::telemetry::{leader_gauge, register};

/// `slipway_leader{worker="rescan-scheduler"}`: 1 while this instance is the leader.
static LEADER: LazyLock<IntGauge> = LazyLock::new(|| leader_gauge("rescan-scheduler"));

/// `slipway_scheduler_decisions_total{kind}`.
static DECISIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "slipway_scheduler_decisions_total",
                "Events the leader published, by kind (scan.requested, build.requested, summary.ready).",
            ),
            &["kind"],
        )
        .expect("valid metric"),
    )
});

/// `slipway_scheduler_due`: decisions due and not yet published.
static DUE: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "slipway_scheduler_due",
            "Rescans, rebuilds and summaries due and not yet published (seen by the leader; 0 elsewhere).",
        )
        .expect("valid metric"),
    )
});

/// `slipway_scheduler_lag_milliseconds`: how long the oldest due decision has waited.
static LAG: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "slipway_scheduler_lag_milliseconds",
            "How long the oldest decision due and not yet published has waited, in milliseconds (the leader's view; 0 elsewhere).",
        )
        .expect("valid metric"),
    )
});

/// `slipway_scheduler_live_images`: the images the view knows as live.
static LIVE: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "slipway_scheduler_live_images",
            "Images the view knows as live (built, not retired).",
        )
        .expect("valid metric"),
    )
});

/// The kinds the leader publishes.
const KINDS: [&str; 3] = ["scan.requested", "build.requested", "summary.ready"];

/// Registers the metrics so that they are exported (at zero) from the start.
pub fn register_metrics() {
    LazyLock::force(&LEADER);
    for kind in KINDS {
        DECISIONS.with_label_values(&[kind]);
    }
    LazyLock::force(&DUE);
    LazyLock::force(&LAG);
    LazyLock::force(&LIVE);
}

/// This instance's term began (`leading`) or ended.
pub fn leadership(leading: bool, term: u64) {
    LEADER.set(i64::from(leading));
    if leading {
        tracing::info!(term, "leading: rescans, scheduled rebuilds and summaries");
    } else {
        DUE.set(0);
        LAG.set(0);
        tracing::info!(term, "no longer leading");
    }
}

/// The leader published `kind` for `subject` (an image or an owner).
pub fn decided(kind: &'static str, job_id: &str, subject: &str) {
    DECISIONS.with_label_values(&[kind]).inc();
    tracing::info!(kind, job_id, subject, "published");
}

/// What is due now, as the leader sees it.
pub fn lag(due: usize, lag_ms: u64) {
    DUE.set(i64::try_from(due).unwrap_or(i64::MAX));
    LAG.set(i64::try_from(lag_ms).unwrap_or(i64::MAX));
}

/// The view changed its count of live images.
pub fn live_images(count: usize) {
    LIVE.set(i64::try_from(count).unwrap_or(i64::MAX));
}

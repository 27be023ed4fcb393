//! The notify worker's typed telemetry events: each writes one log line and updates one metric
//! with bounded labels (outcomes and reasons, never addresses or image names).

use std::sync::LazyLock;

use prometheus::{IntCounterVec, IntGauge, Opts};
use slipway_common::JobId;
use slipway_common::telemetry::{leader_gauge, register};

use crate::policy::Suppressed;

/// `slipway_notify_mails_total{outcome}`: sent, failed (refused for good), retried, duplicate.
/// `slipway_leader{worker="notify"}`: 1 while this instance sends the digests.
static LEADER: LazyLock<IntGauge> = LazyLock::new(|| leader_gauge("notify"));

static MAILS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "slipway_notify_mails_total",
                "Mails by outcome: sent, retried (SMTP unreachable or 4xx; the event is retried), failed (refused for good), duplicate (sent before: not sent again).",
            ),
            &["outcome"],
        )
        .expect("valid metric"),
    )
});

/// `slipway_notify_suppressed_total{reason}`: events no mail was written for, by policy.
static SUPPRESSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "slipway_notify_suppressed_total",
                "Events no mail was written for, by reason (kind, no-owner, too-old, failures-only, muted).",
            ),
            &["reason"],
        )
        .expect("valid metric"),
    )
});

const OUTCOMES: [&str; 4] = ["sent", "retried", "failed", "duplicate"];

/// Registers the metrics so that they are exported (at zero) from the start.
pub fn register_metrics() {
    LazyLock::force(&LEADER);
    for outcome in OUTCOMES {
        MAILS.with_label_values(&[outcome]);
    }
    for reason in Suppressed::ALL {
        SUPPRESSED.with_label_values(&[reason.as_str()]);
    }
}

/// A mail was sent.
pub fn sent(job_id: JobId, message_id: &str, subject: &str) {
    MAILS.with_label_values(&["sent"]).inc();
    tracing::info!(job_id = %job_id, message_id, subject, "mail sent");
}

/// A mail was sent before: not sent again.
pub fn duplicate(job_id: JobId, message_id: &str) {
    MAILS.with_label_values(&["duplicate"]).inc();
    tracing::info!(job_id = %job_id, message_id, "mail sent before; not sent again");
}

/// Sending failed and will be tried again.
pub fn retried(job_id: JobId, error: &str) {
    MAILS.with_label_values(&["retried"]).inc();
    tracing::warn!(job_id = %job_id, error, "mail not sent; the event will be retried");
}

/// The server refused the mail for good.
pub fn failed(job_id: JobId, message_id: &str, error: &str) {
    MAILS.with_label_values(&["failed"]).inc();
    tracing::error!(job_id = %job_id, message_id, error, "mail refused; not retried");
}

/// An event sent no mail, by policy.
pub fn suppressed(job_id: JobId, kind: &str, reason: Suppressed) {
    SUPPRESSED.with_label_values(&[reason.as_str()]).inc();
    tracing::debug!(job_id = %job_id, kind, reason = reason.as_str(), "no mail");
}

/// This instance's digest-sending term began (`leading`) or ended.
pub fn leadership(leading: bool, term: u64) {
    LEADER.set(i64::from(leading));
    if leading {
        tracing::info!(term, "leading: sending the digests");
    } else {
        tracing::info!(term, "no longer leading");
    }
}

/// Sets `slipway_leader` for one term and clears it when dropped, however the term ends.
pub struct LeadingTerm(u64);

impl LeadingTerm {
    /// Term `term` began.
    pub fn begin(term: u64) -> Self {
        leadership(true, term);
        Self(term)
    }
}

impl Drop for LeadingTerm {
    fn drop(&mut self) {
        leadership(false, self.0);
    }
}

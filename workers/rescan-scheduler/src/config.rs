//! What `slipway-rescan-scheduler` reads from `/etc/slipway/rescan-scheduler.toml` and
//! `SLIPWAY_*`: the broker and telemetry sections every worker has, and `[scheduler]`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use slipway_broker::BrokerSettings;
use slipway_common::process::{WorkerConfig, WorkerKind};
use slipway_common::telemetry::TelemetrySettings;

use crate::state::Timing;

/// The worker type: its metrics are labelled `worker="rescan-scheduler"`.
pub const WORKER: WorkerKind = WorkerKind::RescanScheduler;

/// Everything `slipway-rescan-scheduler` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// `[broker]`: connection, namespace, history retention.
    pub broker: BrokerSettings,
    /// `[telemetry]`: logs and the metrics endpoint.
    pub telemetry: TelemetrySettings,
    /// `[scheduler]`: the period and the limits.
    pub scheduler: SchedulerSettings,
}

/// Built-in defaults; `/metrics` on this worker's own port.
impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            broker: Default::default(),
            telemetry: WORKER.default_telemetry(),
            scheduler: Default::default(),
        }
    }
}

impl WorkerConfig for SchedulerConfig {
    const KIND: WorkerKind = WORKER;

    fn telemetry(&self) -> &TelemetrySettings {
        &self.telemetry
    }

    fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.broker.drain_timeout_ms)
    }
}

/// `[scheduler]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerSettings {
    /// Each live image is rescanned once per period, in milliseconds (default: a week). Must
    /// be shorter than the history's retention (`broker.history.max_age`): the scheduler's own
    /// requests are what keeps an image that is never rebuilt in the history.
    pub period_ms: u64,
    /// A scheduled rebuild not sent within this long after its firing time (no instance was
    /// leading) is skipped, not made up, in milliseconds (default: an hour).
    pub max_rebuild_delay_ms: u64,
    /// Most images listed in one owner's summary.
    pub max_summary_images: usize,
    /// Most events published in one batch.
    pub max_batch: usize,
    /// How often the leader renews its lease, in milliseconds (RabbitMQ's `consumer_timeout`
    /// must be longer).
    pub leader_renew_ms: u64,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        SchedulerSettings {
            period_ms: 7 * 86_400_000,
            max_rebuild_delay_ms: 3_600_000,
            max_summary_images: 1000,
            max_batch: 500,
            leader_renew_ms: 60_000,
        }
    }
}

impl SchedulerSettings {
    /// Checks the settings, saying which one is wrong.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("period_ms", self.period_ms),
            ("max_rebuild_delay_ms", self.max_rebuild_delay_ms),
            ("max_summary_images", self.max_summary_images as u64),
            ("max_batch", self.max_batch as u64),
            ("leader_renew_ms", self.leader_renew_ms),
        ] {
            if value == 0 {
                return Err(format!("scheduler.{name} must be greater than 0"));
            }
        }
        Ok(())
    }

    /// The clock settings of the state.
    pub fn timing(&self) -> Timing {
        Timing {
            period_ms: self.period_ms,
            max_rebuild_delay_ms: self.max_rebuild_delay_ms,
            max_summary_images: self.max_summary_images,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_unchanged_print_as_toml_and_use_the_scheduler_metrics_port() {
        slipway_common::process::assert_worker_config_defaults::<SchedulerConfig>();
    }

    #[test]
    fn a_zero_period_is_refused_by_name() {
        let settings = SchedulerSettings {
            period_ms: 0,
            ..SchedulerSettings::default()
        };
        assert_eq!(
            settings.validate().unwrap_err(),
            "scheduler.period_ms must be greater than 0"
        );
        assert!(SchedulerSettings::default().validate().is_ok());
    }
}

//! What `slipway-repo-tracker` reads from `/etc/slipway/repo-tracker.toml` and `SLIPWAY_*`: the
//! broker, telemetry and git cache sections every worker has, `[tracker]` (the index repository,
//! polling, leadership) and `[webhook]` (the endpoint).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use slipway_broker::BrokerSettings;
use slipway_common::ImageRef;
use slipway_common::process::{WorkerConfig, WorkerKind};
use slipway_common::telemetry::TelemetrySettings;
use slipway_source::SourceSettings;

use crate::http::WebhookSettings;
use crate::state::Tracking;

/// The worker type: its metrics are labelled `worker="repo-tracker"`.
pub const WORKER: WorkerKind = WorkerKind::RepoTracker;

/// Everything `slipway-repo-tracker` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepoTrackerConfig {
    /// `[broker]`: connection, namespace, history retention.
    pub broker: BrokerSettings,
    /// `[telemetry]`: logs and the metrics endpoint.
    pub telemetry: TelemetrySettings,
    /// `[source]`: the git cache the index is read through (polls use `git ls-remote` only).
    pub source: SourceSettings,
    /// `[tracker]`: what to follow and how often.
    pub tracker: TrackerSettings,
    /// `[webhook]`: the push endpoint.
    pub webhook: WebhookSettings,
}

/// Built-in defaults; `/metrics` on this worker's own port.
impl Default for RepoTrackerConfig {
    fn default() -> Self {
        Self {
            broker: Default::default(),
            telemetry: WORKER.default_telemetry(),
            source: Default::default(),
            tracker: Default::default(),
            webhook: Default::default(),
        }
    }
}

impl WorkerConfig for RepoTrackerConfig {
    const KIND: WorkerKind = WORKER;

    fn telemetry(&self) -> &TelemetrySettings {
        &self.telemetry
    }

    fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.broker.drain_timeout_ms)
    }
}

/// `[tracker]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackerSettings {
    /// The index repository: a git URL whose `index.d/*.yaml` files are the container index.
    /// Required.
    pub index_url: String,
    /// The index repository's branch.
    pub index_branch: String,
    /// The index directory inside the repository.
    pub index_dir: String,
    /// Images entries may depend on that the index does not build (base images).
    pub external_images: Vec<String>,
    /// Whether the first index ever applied builds every image (otherwise it is the baseline).
    pub build_first_index: bool,
    /// Time between two polls of every tracked branch, in milliseconds (CentOS polled every 10
    /// minutes).
    pub poll_interval_ms: u64,
    /// Up to this much random delay is added to each cycle, in milliseconds, so that many
    /// trackers and many remotes do not poll in lockstep.
    pub poll_jitter_ms: u64,
    /// Branch heads asked for at once.
    pub max_concurrent_polls: usize,
    /// Of those, at most this many on one git host.
    pub max_polls_per_host: usize,
    /// The longest one `ls-remote` may take, in milliseconds.
    pub poll_timeout_ms: u64,
    /// How often the leader publishes the index in force again, in milliseconds, so that it
    /// stays in the history however long the history is kept (default: a day).
    pub index_checkpoint_ms: u64,
    /// How often the leader renews its lease, in milliseconds (RabbitMQ's `consumer_timeout` must
    /// be longer).
    pub leader_renew_ms: u64,
}

impl Default for TrackerSettings {
    fn default() -> Self {
        Self {
            index_url: String::new(),
            index_branch: "master".into(),
            index_dir: "index.d".into(),
            external_images: Vec::new(),
            build_first_index: false,
            poll_interval_ms: 600_000,
            poll_jitter_ms: 30_000,
            max_concurrent_polls: 16,
            max_polls_per_host: 4,
            poll_timeout_ms: 30_000,
            index_checkpoint_ms: 86_400_000,
            leader_renew_ms: 60_000,
        }
    }
}

impl TrackerSettings {
    /// Checks what serde cannot: a required URL, usable limits, parseable external images.
    pub fn validate(&self) -> Result<(), String> {
        if self.index_url.trim().is_empty() {
            return Err(
                "tracker.index_url is required: the git URL of the index repository".into(),
            );
        }
        slipway_common::index::validate::check_git_url(&self.index_url)
            .map_err(|e| format!("tracker.index_url: {e}"))?;
        slipway_common::index::validate::check_git_ref(&self.index_branch)
            .map_err(|e| format!("tracker.index_branch: {e}"))?;
        if self.index_dir.split('/').any(|part| part == "..") || self.index_dir.starts_with('/') {
            return Err(format!(
                "tracker.index_dir must be a path inside the repository, found {:?}",
                self.index_dir
            ));
        }
        self.externals()?;
        for (name, value) in [
            ("poll_interval_ms", self.poll_interval_ms),
            ("poll_timeout_ms", self.poll_timeout_ms),
            ("index_checkpoint_ms", self.index_checkpoint_ms),
            ("leader_renew_ms", self.leader_renew_ms),
            ("max_concurrent_polls", self.max_concurrent_polls as u64),
            ("max_polls_per_host", self.max_polls_per_host as u64),
        ] {
            if value == 0 {
                return Err(format!("tracker.{name} must be greater than 0"));
            }
        }
        Ok(())
    }

    /// The external images, parsed.
    pub fn externals(&self) -> Result<Vec<ImageRef>, String> {
        self.external_images
            .iter()
            .map(|image| {
                ImageRef::parse(image)
                    .map_err(|e| format!("tracker.external_images: {image:?}: {e}"))
            })
            .collect()
    }

    /// What the tracker's state follows.
    pub fn tracking(&self) -> Tracking {
        Tracking {
            index_url: self.index_url.clone(),
            index_branch: self.index_branch.clone(),
            build_first_index: self.build_first_index,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_unchanged_print_as_toml_and_use_the_repo_tracker_metrics_port() {
        slipway_common::process::assert_worker_config_defaults::<RepoTrackerConfig>();
    }

    #[test]
    fn the_index_url_is_required_and_limits_must_be_usable() {
        let mut settings = TrackerSettings::default();
        assert!(
            settings
                .validate()
                .unwrap_err()
                .contains("index_url is required")
        );
        settings.index_url = "https://git.example.org/team/index".into();
        assert_eq!(settings.validate(), Ok(()));
        settings.max_polls_per_host = 0;
        assert!(
            settings
                .validate()
                .unwrap_err()
                .contains("max_polls_per_host")
        );
        settings.max_polls_per_host = 1;
        settings.external_images = vec!["Not An Image".into()];
        assert!(settings.validate().unwrap_err().contains("external_images"));
        settings.external_images = vec![];
        settings.index_dir = "../elsewhere".into();
        assert!(settings.validate().unwrap_err().contains("index_dir"));
    }
}

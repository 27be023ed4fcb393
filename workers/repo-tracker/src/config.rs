//! What `slipway-repo-tracker` reads from `/etc/slipway/repo-tracker.toml` and `SLIPWAY_*`: the
//! broker, telemetry and git cache sections every worker has, `[tracker]` (the index repository,
//! polling, leadership, the package repositories watched) and `[webhook]` (the endpoint).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use slipway_broker::BrokerSettings;
use slipway_common::ImageRef;
use slipway_common::process::{WorkerConfig, WorkerKind};
use slipway_common::telemetry::TelemetrySettings;
use slipway_scan::updates::{FetchSettings, Repo, RepoConfig, validate_repos};
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
    /// Whether an entry removed from the index also loses its tag in the registry: its
    /// `image.retired` asks the build worker (which holds the registry credentials) to delete the
    /// manifest the tag names, unless another tag names it too. Off by default.
    pub delete_retired_tags: bool,
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
    /// The apt, yum and apk repositories whose updates rebuild the images holding the updated
    /// packages (`[[tracker.package_repos]]`, the scan worker's `[[repos]]` format). None by
    /// default: no package repository is watched.
    pub package_repos: Vec<RepoConfig>,
    /// How they are fetched (`[tracker.package_fetch]`: the cache of index files, time and size
    /// limits), as the scan worker's `[updates]`.
    pub package_fetch: FetchSettings,
    /// Time between two looks at every package repository, in milliseconds (default: an hour).
    pub package_check_interval_ms: u64,
    /// How far back the scan reports of the index images are read, in days: an image whose
    /// latest report is older counts as holding nothing.
    pub reports_window_days: u64,
}

/// Where the repo-tracker keeps downloaded repository index files by default.
pub const DEFAULT_PACKAGE_CACHE_DIR: &str = "/var/cache/slipway/repo-tracker/repos";

impl Default for TrackerSettings {
    fn default() -> Self {
        Self {
            index_url: String::new(),
            index_branch: "master".into(),
            index_dir: "index.d".into(),
            external_images: Vec::new(),
            build_first_index: false,
            delete_retired_tags: false,
            poll_interval_ms: 600_000,
            poll_jitter_ms: 30_000,
            max_concurrent_polls: 16,
            max_polls_per_host: 4,
            poll_timeout_ms: 30_000,
            index_checkpoint_ms: 86_400_000,
            leader_renew_ms: 60_000,
            package_repos: Vec::new(),
            package_fetch: FetchSettings {
                cache_dir: PathBuf::from(DEFAULT_PACKAGE_CACHE_DIR),
                ..FetchSettings::default()
            },
            package_check_interval_ms: 3_600_000,
            reports_window_days: 30,
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
        self.package_repos()?;
        for (name, value) in [
            ("poll_interval_ms", self.poll_interval_ms),
            ("poll_timeout_ms", self.poll_timeout_ms),
            ("index_checkpoint_ms", self.index_checkpoint_ms),
            ("leader_renew_ms", self.leader_renew_ms),
            ("max_concurrent_polls", self.max_concurrent_polls as u64),
            ("max_polls_per_host", self.max_polls_per_host as u64),
            ("package_check_interval_ms", self.package_check_interval_ms),
            ("reports_window_days", self.reports_window_days),
            ("package_fetch.timeout_ms", self.package_fetch.timeout_ms),
            (
                "package_fetch.max_download_bytes",
                self.package_fetch.max_download_bytes,
            ),
            (
                "package_fetch.max_index_bytes",
                self.package_fetch.max_index_bytes,
            ),
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

    /// The package repositories, validated (names unique, URLs usable).
    pub fn package_repos(&self) -> Result<Vec<Repo>, String> {
        validate_repos(&self.package_repos).map_err(|e| format!("tracker.package_{e}"))
    }

    /// How far back scan reports are read.
    pub fn reports_window(&self) -> Duration {
        Duration::from_secs(self.reports_window_days.saturating_mul(86_400))
    }

    /// What the tracker's state follows.
    pub fn tracking(&self) -> Tracking {
        Tracking {
            index_url: self.index_url.clone(),
            index_branch: self.index_branch.clone(),
            build_first_index: self.build_first_index,
            delete_retired_tags: self.delete_retired_tags,
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

    #[test]
    fn package_repositories_are_read_in_the_scan_workers_format_and_validated() {
        let toml = r#"
            [tracker]
            index_url = "https://git.example.org/team/index"
            package_check_interval_ms = 900000

            [tracker.package_fetch]
            cache_dir = "/tmp/slipway-repos"

            [[tracker.package_repos]]
            name = "bookworm"
            kind = "apt"
            url = "https://deb.example.org/debian"
            suite = "bookworm"
            components = ["main"]
            architectures = ["amd64"]
            applies_to = { id = "debian", version_id = "12" }

            [[tracker.package_repos]]
            name = "el9"
            kind = "yum"
            url = "https://el.example.org/9/BaseOS/x86_64/os"
            applies_to = { id = "rocky", version_id = "9" }
        "#;
        let config: RepoTrackerConfig = toml::from_str(toml).unwrap();
        let tracker = &config.tracker;
        assert_eq!(tracker.validate(), Ok(()));
        let repos = tracker.package_repos().unwrap();
        assert_eq!(
            repos.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["bookworm", "el9"]
        );
        assert_eq!(tracker.package_check_interval_ms, 900_000);
        assert_eq!(tracker.reports_window_days, 30);
        assert_eq!(
            tracker.package_fetch.cache_dir,
            PathBuf::from("/tmp/slipway-repos")
        );
        assert_eq!(
            tracker.package_fetch.timeout_ms,
            FetchSettings::default().timeout_ms,
            "the fetch settings not given keep their defaults"
        );

        let mut twice = tracker.clone();
        twice.package_repos[1].name = "bookworm".into();
        let error = twice.validate().unwrap_err();
        assert!(
            error.starts_with("tracker.package_repos[1] (\"bookworm\"): name:"),
            "{error}"
        );
        let mut ftp = tracker.clone();
        ftp.package_repos[0].url = "ftp://deb.example.org/debian".into();
        assert!(ftp.validate().unwrap_err().contains("url"));
        let mut never = tracker.clone();
        never.package_check_interval_ms = 0;
        assert!(
            never
                .validate()
                .unwrap_err()
                .contains("package_check_interval_ms")
        );
    }

    #[test]
    fn the_package_cache_is_the_trackers_own() {
        let settings = TrackerSettings::default();
        assert!(
            settings.package_repos.is_empty(),
            "nothing is watched by default"
        );
        assert_eq!(
            settings.package_fetch.cache_dir,
            PathBuf::from(DEFAULT_PACKAGE_CACHE_DIR)
        );
        assert_ne!(
            settings.package_fetch.cache_dir,
            FetchSettings::default().cache_dir,
            "not the scan worker's cache"
        );
        assert_eq!(settings.reports_window(), Duration::from_secs(30 * 86_400));
    }
}

//! The scan worker's wiring: consume `build.succeeded` and `scan.requested`, make sure the image
//! is on this node's Docker daemon (pulled by digest when it is not), read and analyse it, append
//! the full report to the `<namespace>.reports` stream, and publish `scan.completed` (or
//! `scan.failed`) through the broker's consumer runner. The handler does not order the two
//! itself: its outcome carries the report entry and the event (`Outcome::AppendThenAck`), and the
//! runner appends the report (confirmed), then publishes the event (confirmed), then acks — so an
//! acked job always has its report in the stream and no `scan.completed` names a report that is
//! not stored; a redelivered job appends it again, and readers take the latest.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use slipway_broker::reports::{ReportStreamSettings, report_stream_name};
use slipway_broker::streams::StreamAppend;
use slipway_broker::{BrokerSettings, Consumer, Job, Outcome, Topology};
use slipway_common::process::{WorkerConfig, WorkerKind};
use slipway_common::telemetry::TelemetrySettings;
use slipway_docker::{DockerEngine, DockerError, RegistryCredentials};
use tokio_util::sync::CancellationToken;

use crate::job::ScanJob;
use crate::osv::Database;
use crate::pipeline::{self, PipelineError, PipelineOptions, ScanSubject, Source};
use crate::reports::{Document, ReportMeta};
use crate::sbom::{SbomSubject, cyclonedx};
use crate::source::SourceError;
use crate::updates::{
    FetchSettings, Fetcher, IndexConfig, PackageIndex, Repo, RepoConfig, validate_indexes,
    validate_repos,
};

/// The worker type: its queue is `<namespace>.scan`, its metrics are labelled `worker="scan"`.
pub const WORKER: WorkerKind = WorkerKind::Scan;

/// Everything `slipway-scan` reads from `/etc/slipway/scan.toml` and `SLIPWAY_*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScanWorkerConfig {
    /// `[broker]`: connection, namespace, prefetch (= scans at once), retries.
    pub broker: BrokerSettings,
    /// `[telemetry]`: logs and the metrics endpoint.
    pub telemetry: TelemetrySettings,
    /// `[reports]`: retention of the `<namespace>.reports` stream.
    pub reports: ReportStreamSettings,
    /// `[registry]`: credentials for pulling images to scan.
    pub registry: RegistryLogin,
    /// `[scan]`: which scanners run and with what.
    pub scan: ScanSettings,
    /// `[updates]`: where repository indexes are cached, time and size limits.
    pub updates: FetchSettings,
    /// `[[repos]]`: the apt, yum and apk repositories updates are looked for in, each with the
    /// OS it applies to.
    pub repos: Vec<RepoConfig>,
    /// `[[indexes]]`: the PyPI, npm and RubyGems indexes language-package updates are looked
    /// for in.
    pub indexes: Vec<IndexConfig>,
}

/// Built-in defaults; `/metrics` on this worker's own port.
impl Default for ScanWorkerConfig {
    fn default() -> Self {
        Self {
            broker: Default::default(),
            telemetry: WorkerKind::Scan.default_telemetry(),
            reports: Default::default(),
            registry: Default::default(),
            scan: Default::default(),
            updates: Default::default(),
            repos: Default::default(),
            indexes: Default::default(),
        }
    }
}

impl WorkerConfig for ScanWorkerConfig {
    const KIND: WorkerKind = WORKER;

    fn telemetry(&self) -> &TelemetrySettings {
        &self.telemetry
    }

    fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.broker.drain_timeout_ms)
    }
}

impl ScanWorkerConfig {
    /// What the scan worker declares at every (re)connection: the pipeline, and the report
    /// stream its outcomes append to.
    pub fn topology(&self) -> Topology {
        Topology::pipeline(&self.broker).with_reports(&self.reports)
    }
}

/// The `[registry]` section: who the daemon logs in as to pull (nothing for an open registry).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryLogin {
    /// User name.
    pub username: Option<String>,
    /// File holding the password (else the systemd credential `registry-password`).
    pub password_file: Option<PathBuf>,
}

/// The `[scan]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScanSettings {
    /// Compare every package-owned file with its package database (default on).
    pub integrity: bool,
    /// A directory of OSV records to match packages against, offline; none: the report says so.
    pub osv_dir: Option<PathBuf>,
    /// Remove an image this worker pulled once its scan is done (default on: the disk never
    /// fills with scanned images). Images that were already on the node are never removed.
    pub remove_pulled: bool,
    /// Largest file a scanner keeps in memory (a package database, `md5sums`, a language
    /// manifest), in bytes (default 64 MiB). A larger one fails the scan, naming the file.
    pub max_file_bytes: u64,
    /// Largest total of the files the scanners keep in memory for one image, in bytes (default
    /// 128 MiB): past it the scan fails, naming the file it stopped at.
    pub max_kept_bytes: u64,
    /// Base URL of a registry (`http://127.0.0.1:5000`) whose images get their SBOM attached as
    /// an OCI referrer (an artifact manifest whose `subject` is the scanned manifest, listed
    /// under the `sha256-<hex>` referrers tag), with the `[registry]` credentials. None (the
    /// default): SBOMs are only stored in the report stream.
    pub sbom_referrers_registry: Option<String>,
}

impl Default for ScanSettings {
    fn default() -> Self {
        let limits = crate::image::ReadLimits::default();
        Self {
            integrity: true,
            osv_dir: None,
            remove_pulled: true,
            max_file_bytes: limits.max_file_bytes,
            max_kept_bytes: limits.max_kept_bytes,
            sbom_referrers_registry: None,
        }
    }
}

impl ScanSettings {
    /// The read limits these settings give.
    pub fn limits(&self) -> crate::image::ReadLimits {
        crate::image::ReadLimits {
            max_file_bytes: self.max_file_bytes,
            max_kept_bytes: self.max_kept_bytes,
        }
    }
}

/// Why the worker could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The Docker daemon is unusable.
    #[error("docker: {0}")]
    Docker(#[from] DockerError),
    /// The registry credentials are unusable.
    #[error("registry: {0}")]
    Credentials(#[from] slipway_docker::CredentialsError),
    /// `[scan] sbom_referrers_registry` cannot be used.
    #[error("scan.sbom_referrers_registry: {0}")]
    Referrers(String),
    /// A `[[repos]]` or `[[indexes]]` entry is invalid.
    #[error(transparent)]
    Repos(#[from] crate::updates::ConfigError),
    /// The repository fetcher cannot be set up.
    #[error("updates: {0}")]
    Fetch(#[from] crate::updates::FetchError),
    /// The OSV directory cannot be loaded.
    #[error("scan.osv_dir: {0}")]
    Osv(#[from] crate::osv::OsvError),
    /// The broker failed for good.
    #[error(transparent)]
    Broker(#[from] slipway_broker::BrokerError),
}

/// How one scan went wrong, and whether trying later may help.
enum Failure {
    /// Try again later (daemon or broker unavailable, image vanished mid-read).
    Transient(String),
    /// The image cannot be scanned: `scan.failed` says why.
    Permanent(String),
}

impl From<SourceError> for Failure {
    fn from(error: SourceError) -> Self {
        if error.is_transient() {
            Failure::Transient(error.to_string())
        } else {
            Failure::Permanent(error.to_string())
        }
    }
}

impl From<PipelineError> for Failure {
    fn from(error: PipelineError) -> Self {
        if error.is_transient() {
            Failure::Transient(error.to_string())
        } else {
            Failure::Permanent(error.to_string())
        }
    }
}

impl From<DockerError> for Failure {
    fn from(error: DockerError) -> Self {
        SourceError::from(error).into()
    }
}

/// Handles one scan job.
pub struct ScanHandler {
    docker: DockerEngine,
    credentials: Option<RegistryCredentials>,
    /// Where SBOMs are attached as referrers, when configured.
    referrers: Option<slipway_registry::RegistryClient>,
    /// `<namespace>.reports`, where the runner appends each report.
    report_stream: String,
    settings: ScanSettings,
    database: Option<Arc<Database>>,
    repos: Vec<Repo>,
    indexes: Vec<PackageIndex>,
    fetcher: Option<Fetcher>,
    leases: ImageLeases,
}

impl ScanHandler {
    /// A handler for `config`: connects to the Docker daemon and loads the OSV database.
    pub async fn new(config: &ScanWorkerConfig) -> Result<ScanHandler, WorkerError> {
        let credentials = RegistryCredentials::configured(
            config.registry.username.as_deref(),
            config.registry.password_file.as_deref(),
        )?;
        let referrers = match &config.scan.sbom_referrers_registry {
            Some(url) => Some(
                slipway_registry::RegistryClient::new(
                    &slipway_registry::RegistrySettings {
                        url: url.clone(),
                        ..Default::default()
                    },
                    credentials.clone(),
                )
                .map_err(|e| WorkerError::Referrers(e.to_string()))?,
            ),
            None => None,
        };
        let repos = validate_repos(&config.repos)?;
        let indexes = validate_indexes(&config.indexes)?;
        let fetcher = if repos.is_empty() && indexes.is_empty() {
            None
        } else {
            Some(Fetcher::new(&config.updates)?)
        };
        let database = match &config.scan.osv_dir {
            Some(dir) => {
                let dir = dir.clone();
                let database = tokio::task::spawn_blocking(move || Database::load(&dir))
                    .await
                    .map_err(|e| crate::osv::OsvError {
                        path: PathBuf::new(),
                        found: e.to_string(),
                    })??;
                tracing::info!(path = %database.path().display(), records = database.summary().records, skipped = database.summary().skipped, "OSV database loaded");
                Some(Arc::new(database))
            }
            None => None,
        };
        Ok(ScanHandler {
            docker: DockerEngine::connect().await?,
            referrers,
            credentials,
            report_stream: report_stream_name(&config.broker.namespace),
            settings: config.scan.clone(),
            database,
            repos,
            indexes,
            fetcher,
            leases: ImageLeases::default(),
        })
    }

    /// Scans the job's image and says what to publish (or whether to retry or reject).
    pub async fn scan(&self, job: &Job) -> Outcome {
        let scan_job = match ScanJob::of(&job.envelope.message) {
            Ok(scan_job) => scan_job,
            Err(reason) => return Outcome::Reject(reason),
        };
        let job_id = job.envelope.job_id;
        match self.scan_image(job, &scan_job).await {
            Ok((appends, completed)) => Outcome::AppendThenAck {
                appends,
                events: vec![job.envelope.follow_up(completed)],
            },
            Err(Failure::Transient(reason)) => {
                crate::telemetry::scan_retried(job_id, &scan_job.image.to_string(), &reason);
                Outcome::Retry(reason)
            }
            Err(Failure::Permanent(error)) => {
                crate::telemetry::scan_failed(job_id, &scan_job.image.to_string(), &error);
                Outcome::Ack(vec![job.envelope.follow_up(scan_job.failed(error))])
            }
        }
    }

    /// The stream entries of the scan's documents (report, SBOM, and the provenance of a freshly
    /// built image) and `scan.completed`, or why there are none.
    async fn scan_image(
        &self,
        job: &Job,
        scan_job: &ScanJob,
    ) -> Result<(Vec<StreamAppend>, slipway_common::Message), Failure> {
        let reference = scan_job.local_reference();
        let lease = self.leases.take(&reference);
        let pulled = self.ensure_local(scan_job, &reference).await?;
        if pulled {
            lease.mark_pulled();
        }
        let result = self.scan_local(job, scan_job, &reference).await;
        if let Some(pulled_reference) = lease.release()
            && self.settings.remove_pulled
            && let Err(error) = self.docker.remove_image(&pulled_reference).await
        {
            tracing::warn!(image = %pulled_reference, %error, "cannot remove a scanned image");
        }
        result
    }

    /// Pulls the image unless the daemon has it (a rescan by tag always pulls, to scan what
    /// the tag names now); whether this call pulled it.
    async fn ensure_local(&self, scan_job: &ScanJob, reference: &str) -> Result<bool, Failure> {
        let present = self.docker.image_storage(reference).await?.is_some();
        if present && scan_job.digest.is_some() {
            return Ok(false);
        }
        let image = &scan_job.image;
        let mut log = |line: &str| tracing::debug!(image = %scan_job.image, line, "pull");
        let pulled = match &scan_job.digest {
            Some(digest) => {
                self.docker
                    .pull_by_digest(image, digest, self.credentials.as_ref(), &mut log)
                    .await
            }
            None => {
                self.docker
                    .pull(image, self.credentials.as_ref(), &mut log)
                    .await
            }
        };
        match pulled {
            Ok(()) => Ok(!present),
            // A rescan of an image the registry no longer serves still scans the local copy.
            Err(error) if present && error.is_transient() => {
                tracing::warn!(image = %scan_job.image, %error, "pull failed; scanning the local copy");
                Ok(false)
            }
            Err(error) if error.is_absent_image() => Err(Failure::Permanent(format!(
                "image absent: the registry has no {} ({error})",
                scan_job.image
            ))),
            Err(error) => Err(error.into()),
        }
    }

    async fn scan_local(
        &self,
        job: &Job,
        scan_job: &ScanJob,
        reference: &str,
    ) -> Result<(Vec<StreamAppend>, slipway_common::Message), Failure> {
        let source = Source::Daemon {
            engine: &self.docker,
            reference: reference.to_owned(),
        };
        let subject = ScanSubject {
            name: scan_job.image.to_string(),
            image: Some(scan_job.image.clone()),
            pinned: scan_job.digest.clone(),
        };
        let options = PipelineOptions {
            integrity: self.settings.integrity,
            repos: &self.repos,
            indexes: &self.indexes,
            fetcher: self.fetcher.as_ref(),
            database: self.database.as_deref(),
            limits: self.settings.limits(),
        };
        let scanned = pipeline::scan(source, &subject, options).await?;
        let digest = scanned.digest.clone().ok_or_else(|| {
            Failure::Permanent(format!(
                "{reference} has no digest from the registry (was it pushed?)"
            ))
        })?;
        let body = serde_json::to_vec(&scanned.report)
            .map_err(|e| Failure::Permanent(format!("the report cannot be encoded: {e}")))?;
        let meta = ReportMeta {
            image: scan_job.image.clone(),
            digest: digest.clone(),
            job_id: job.envelope.job_id,
            scanned_at: scanned.scanned_at,
        };
        crate::telemetry::scan_completed(
            job.envelope.job_id,
            &scan_job.image.to_string(),
            digest.as_str(),
            &scanned.analysis.durations,
            &scanned.packages_by_ecosystem(),
            (scanned.updates_found, &scanned.language_updates_found),
        );
        let completed = scan_job.completed(digest.clone(), scanned.report.counts());
        let sbom = cyclonedx(
            &scanned.analysis.inventory,
            &SbomSubject {
                image: scan_job.image.to_string(),
                digest: Some(digest.to_string()),
                timestamp: scanned.scanned_at.to_rfc3339(),
                tool_name: "slipway-scan".to_owned(),
                tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            },
        );
        let sbom = encode(&sbom)?;
        self.attach_sbom(&scan_job.image, &digest, &sbom, &scanned.scanned_at)
            .await?;
        let mut appends = vec![
            meta.entry(&self.report_stream, body),
            meta.document_entry(&self.report_stream, Document::Sbom, sbom),
        ];
        if let slipway_common::Message::BuildSucceeded(built) = &job.envelope.message {
            let statement =
                crate::provenance::statement(built, job.envelope.job_id, job.envelope.created_at);
            appends.push(meta.document_entry(
                &self.report_stream,
                Document::Provenance,
                encode(&statement)?,
            ));
        }
        Ok((appends, completed))
    }
}

impl ScanHandler {
    /// Attaches `sbom` to `image@digest` as an OCI referrer when `[scan] sbom_referrers_registry`
    /// names the image's registry. A registry that is down retries the scan; a refusal is logged
    /// and the scan goes on (the SBOM is in the report stream either way).
    async fn attach_sbom(
        &self,
        image: &slipway_common::ImageRef,
        digest: &slipway_common::Digest,
        sbom: &[u8],
        scanned_at: &slipway_common::Timestamp,
    ) -> Result<(), Failure> {
        let Some(client) = &self.referrers else {
            return Ok(());
        };
        if image.domain() != Some(client.host()) {
            return Ok(());
        }
        let annotations = std::collections::BTreeMap::from([(
            "org.opencontainers.image.created".to_owned(),
            scanned_at.to_rfc3339(),
        )]);
        match client
            .attach_referrer(
                image,
                digest,
                crate::sbom::MEDIA_TYPE,
                sbom.to_vec(),
                &annotations,
            )
            .await
        {
            Ok(artifact) => {
                tracing::info!(image = %image, %digest, %artifact, "SBOM attached as a referrer");
                Ok(())
            }
            Err(error) if error.is_transient() => Err(Failure::Transient(format!(
                "attaching the SBOM to {image}: {error}"
            ))),
            Err(error) => {
                tracing::warn!(image = %image, %digest, %error, "the registry refused the SBOM referrer");
                Ok(())
            }
        }
    }
}

/// A stored document's JSON.
fn encode(document: &serde_json::Value) -> Result<Vec<u8>, Failure> {
    serde_json::to_vec(document)
        .map_err(|e| Failure::Permanent(format!("a document cannot be encoded: {e}")))
}

/// Which images scans of this process are using, so that an image pulled for one scan is removed
/// only when no other scan of it is still reading it (its files are read lazily).
#[derive(Default)]
struct ImageLeases {
    held: Arc<Mutex<HashMap<String, LeaseCount>>>,
}

#[derive(Default)]
struct LeaseCount {
    holders: usize,
    pulled: bool,
}

/// One scan's use of an image.
struct Lease {
    held: Arc<Mutex<HashMap<String, LeaseCount>>>,
    reference: String,
    released: bool,
}

impl ImageLeases {
    fn take(&self, reference: &str) -> Lease {
        if let Ok(mut held) = self.held.lock() {
            held.entry(reference.to_owned()).or_default().holders += 1;
        }
        Lease {
            held: Arc::clone(&self.held),
            reference: reference.to_owned(),
            released: false,
        }
    }
}

impl Lease {
    /// This process pulled the image.
    fn mark_pulled(&self) {
        if let Ok(mut held) = self.held.lock()
            && let Some(count) = held.get_mut(&self.reference)
        {
            count.pulled = true;
        }
    }

    /// Ends this use; the reference to remove when this was the last use of an image this
    /// process pulled.
    fn release(mut self) -> Option<String> {
        self.released = true;
        self.end()
    }

    fn end(&self) -> Option<String> {
        let mut held = self.held.lock().ok()?;
        let count = held.get_mut(&self.reference)?;
        count.holders -= 1;
        if count.holders > 0 {
            return None;
        }
        let pulled = count.pulled;
        held.remove(&self.reference);
        pulled.then(|| self.reference.clone())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.released {
            // A cancelled scan: the image stays for the retry.
            let _ = self.end();
        }
    }
}

/// Runs the scan worker until `shutdown` is cancelled (then drains in-flight scans).
pub async fn run(config: ScanWorkerConfig, shutdown: CancellationToken) -> Result<(), WorkerError> {
    crate::telemetry::register_metrics();
    config.reports.validate()?;
    let handler = Arc::new(ScanHandler::new(&config).await?);
    let topology = config.topology();
    let handle = move |job: Job| {
        let handler = Arc::clone(&handler);
        async move { handler.scan(&job).await }
    };
    Consumer::new(WORKER.into(), config.broker, topology, handle)
        .run(shutdown)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_unchanged_print_as_toml_and_use_the_scan_metrics_port() {
        slipway_common::process::assert_worker_config_defaults::<ScanWorkerConfig>();
    }

    #[test]
    fn an_image_pulled_here_is_removed_after_its_last_scan_only() {
        let leases = ImageLeases::default();
        let first = leases.take("r@sha256:1");
        let second = leases.take("r@sha256:1");
        first.mark_pulled();
        assert_eq!(first.release(), None, "the second scan still reads it");
        assert_eq!(second.release().as_deref(), Some("r@sha256:1"));
        let present = leases.take("r@sha256:2");
        assert_eq!(present.release(), None, "not pulled here: never removed");
        let cancelled = leases.take("r@sha256:3");
        cancelled.mark_pulled();
        drop(cancelled);
        assert!(leases.held.lock().unwrap().is_empty());
    }
}

//! The build worker's wiring: for each `lint.passed`, check the disk, check out the commit, plan,
//! skip when the registry already holds the same build, prebuild, build, push the test tag, smoke
//! test, promote, clean up — streaming the log to the log stream — and publish `build.succeeded` or
//! `build.failed` (decided in [`crate::plan`]). Transient trouble (disk low, daemon or registry
//! unreachable, shutdown) is a `Retry`. An `image.retired` that asks for it has its tag deleted
//! from the registry when no other tag names the same manifest (decided in [`crate::retire`]),
//! answered by `image.removed`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use slipway_broker::logs::{LogStreamSettings, LogWriter, LogWriterOptions};
use slipway_broker::{BrokerSettings, Consumer, Job, Outcome, SideConnection, Topology};
use slipway_common::message::{BuildStage, ImageRemoved, ImageRetired, LintPassed};
use slipway_common::process::{WorkerConfig, WorkerKind};
use slipway_common::telemetry::TelemetrySettings;
use slipway_common::{JobId, Message, Timestamp};
use slipway_source::{SourceCache, SourceError, SourceSettings};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::context::{ContextOptions, context_tar};
use crate::features::{
    Builder, BuilderPreference, DaemonBuilder, SessionMountKind, choose_builder,
    neutralise_syntax_directive, required_features, session_mounts,
};
use crate::layer_cache::{self, LayerCache, Reuse};
use crate::plan::{self, Layout, LogTail, Names, Success};
use crate::registry::{RegistryClient, RegistryCredentials, RegistryError, RegistrySettings};
use crate::telemetry::BuildOutcome;
use slipway_docker::{
    BindMount, BuildContext, BuildSecrets, BuildSpec, BuilderKind, Digest, DockerEngine,
    DockerError, ImageRef, MountAccess, Network, RunCommand, RunSpec, SshAgents,
};

/// The worker type: its queue is `<namespace>.build`, its metrics are labelled `worker="build"`.
pub const WORKER: WorkerKind = WorkerKind::Build;

/// The `[build]` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BuildSettings {
    /// Where checkouts are made (one directory per job, removed after it).
    pub work_dir: PathBuf,
    /// Longest a `docker build` may take, in milliseconds.
    pub build_timeout_ms: u64,
    /// Longest the prebuild script may take, in milliseconds.
    pub prebuild_timeout_ms: u64,
    /// Longest the smoke test may take, in milliseconds.
    pub smoke_test_timeout_ms: u64,
    /// The image prebuild scripts run in.
    pub prebuild_image: String,
    /// Below this many free bytes on the Docker root, jobs are retried later instead of built.
    pub min_free_bytes: u64,
    /// Below this many free inodes on the Docker root, jobs are retried later.
    pub min_free_inodes: u64,
    /// Largest build context sent to the daemon, in bytes.
    pub max_context_bytes: u64,
    /// Lines of log carried by `build.failed`.
    pub log_tail_lines: usize,
    /// Whether an entry may give its build steps the host's network (`network: host`). Off by
    /// default: such steps reach every service on the node's loopback (RabbitMQ, the registry);
    /// an entry asking for it is then refused with that reason.
    pub allow_host_network: bool,
    /// Memory cap of each prebuild and smoke-test container in bytes, swap included.
    pub container_memory_bytes: u64,
    /// Most processes and threads a prebuild or smoke-test container may hold.
    pub container_pids: u32,
    /// CPU of a prebuild or smoke-test container, in thousandths of a core.
    pub container_cpu_millicores: u32,
    /// Memory cap of each build step (`RUN`) in bytes, swap included.
    pub build_memory_bytes: u64,
    /// CPU of each build step, in thousandths of a core.
    pub build_cpu_millicores: u32,
    /// The cgroup build steps are created under (`/slipway-build` with dockerd's cgroupfs driver,
    /// `slipway-build.slice` with its systemd driver), prepared by the operators with a pids limit
    /// (`pids.max`, `TasksMax=`): the build API has no pids limit of its own. Empty: none.
    pub build_cgroup_parent: String,
    /// Whether smoke tests run on a read-only root (with a `tmpfs` `/tmp` and `/run`); prebuild
    /// scripts always do (they write into the checkout).
    pub smoke_test_read_only_root: bool,
    /// Whether builds may reuse the daemon's layer cache where it is safe (default: on); see
    /// [`crate::layer_cache`]. BuildKit keys each `RUN` on its network mode; for the classic
    /// builder, `ARG SLIPWAY_NETWORK=<mode>` is declared after every `FROM`, which puts the mode
    /// into each `RUN`'s cache key. Either way a layer made with the host's network never serves
    /// a `network: none` build. Rebuilds for a package update or the schedule always build
    /// afresh.
    pub cache: bool,
    /// The builder of Dockerfiles that need nothing of BuildKit: `classic` (default: each `RUN`
    /// under the `build_memory_bytes` and `build_cpu_millicores` caps) or `buildkit`
    /// (dockerd 20.10's BuildKit ignores those caps — bound builds with `build_cgroup_parent`
    /// instead). A Dockerfile using BuildKit syntax is built with BuildKit whatever this says,
    /// or fails at once when the daemon cannot.
    pub builder: BuilderPreference,
    /// The secrets `RUN --mount=type=secret,id=ID` may mount (BuildKit builds): each id and
    /// where the worker reads it when the build asks — a file path, or `credential:NAME` for the
    /// systemd credential `NAME` (`LoadCredential=`). Never from the index or the job. Every
    /// build on this worker may mount every one of them: give secrets only to workers (a
    /// namespace) that build trusted repositories. Empty by default.
    pub secrets: BTreeMap<String, String>,
    /// The SSH agents `RUN --mount=type=ssh[,id=ID]` may use (BuildKit builds): each id
    /// (`default` for a mount without `id=`) and the socket of an `ssh-agent` on this machine.
    /// Forwarded read-only: steps may list the agent's keys and sign with them, never add,
    /// remove or lock. Like secrets, every build on this worker may use every agent. Empty by
    /// default.
    pub ssh_agents: BTreeMap<String, String>,
}

impl Default for BuildSettings {
    fn default() -> BuildSettings {
        BuildSettings {
            work_dir: PathBuf::from("/var/lib/slipway/build"),
            build_timeout_ms: 3_600_000,
            prebuild_timeout_ms: 600_000,
            smoke_test_timeout_ms: 300_000,
            prebuild_image: "slipway/debian:bookworm".to_string(),
            min_free_bytes: 5 * 1024 * 1024 * 1024,
            min_free_inodes: 100_000,
            max_context_bytes: 1024 * 1024 * 1024,
            log_tail_lines: 50,
            allow_host_network: false,
            container_memory_bytes: 1024 * 1024 * 1024,
            container_pids: 512,
            container_cpu_millicores: 1000,
            build_memory_bytes: 4 * 1024 * 1024 * 1024,
            build_cpu_millicores: 2000,
            build_cgroup_parent: String::new(),
            smoke_test_read_only_root: true,
            cache: true,
            builder: BuilderPreference::Classic,
            secrets: BTreeMap::new(),
            ssh_agents: BTreeMap::new(),
        }
    }
}

/// Everything `slipway-build` reads from `/etc/slipway/build.toml` and `SLIPWAY_*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BuildWorkerConfig {
    /// `[broker]`.
    pub broker: BrokerSettings,
    /// `[telemetry]`.
    pub telemetry: TelemetrySettings,
    /// `[source]`: the git cache.
    pub source: SourceSettings,
    /// `[registry]`: where images go.
    pub registry: RegistrySettings,
    /// `[logs]`: retention of the `<namespace>.logs` stream that carries build logs.
    pub logs: LogStreamSettings,
    /// `[build]`.
    pub build: BuildSettings,
}

/// Built-in defaults; `/metrics` on this worker's own port.
impl Default for BuildWorkerConfig {
    fn default() -> Self {
        Self {
            broker: Default::default(),
            telemetry: WorkerKind::Build.default_telemetry(),
            source: Default::default(),
            registry: Default::default(),
            logs: Default::default(),
            build: Default::default(),
        }
    }
}

impl WorkerConfig for BuildWorkerConfig {
    const KIND: WorkerKind = WORKER;

    fn telemetry(&self) -> &TelemetrySettings {
        &self.telemetry
    }

    fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.broker.drain_timeout_ms)
    }
}

/// Why the worker could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The git cache cannot be used.
    #[error("source cache: {0}")]
    Source(#[from] SourceError),
    /// The Docker daemon cannot be reached.
    #[error("docker: {0}")]
    Docker(#[from] DockerError),
    /// The registry settings are unusable.
    #[error("registry: {0}")]
    Registry(#[from] RegistryError),
    /// A `[build]` setting is unusable.
    #[error("settings: {0}")]
    Settings(String),
    /// The work directory cannot be created.
    #[error("work directory {}: {source}", path.display())]
    WorkDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The broker failed for good.
    #[error(transparent)]
    Broker(#[from] slipway_broker::BrokerError),
}

/// How a stage ended when it did not succeed.
enum Stop {
    /// The job is done: publish this `build.failed`.
    Failed(BuildStage, String),
    /// Try again later.
    Retry(String),
}

impl From<DockerError> for Stop {
    fn from(error: DockerError) -> Stop {
        Stop::Retry(format!("docker: {error}"))
    }
}

/// Maps a source error to the checkout stage's outcome.
fn checkout_stop(error: SourceError) -> Stop {
    if error.is_transient() {
        Stop::Retry(format!("checkout: {error}"))
    } else {
        Stop::Failed(BuildStage::Checkout, error.to_string())
    }
}

/// Maps a registry error to the push stage's outcome.
fn registry_stop(error: RegistryError) -> Stop {
    if error.is_transient() {
        Stop::Retry(format!("registry: {error}"))
    } else {
        Stop::Failed(BuildStage::Push, error.to_string())
    }
}

/// Maps a Docker error in `stage` to its outcome (transient → retry, otherwise the stage failed).
fn docker_stop(stage: BuildStage, error: DockerError) -> Stop {
    if error.is_transient() {
        Stop::Retry(format!("docker: {error}"))
    } else {
        Stop::Failed(stage, error.to_string())
    }
}

/// Handles `lint.passed` jobs.
pub struct BuildHandler {
    settings: BuildSettings,
    cache: SourceCache,
    docker: DockerEngine,
    /// What the daemon's builders parse (from its engine version, read at start).
    daemon_builder: DaemonBuilder,
    /// `[build.secrets]`, resolved: each secret id and the file it is read from.
    build_secrets: BTreeMap<String, PathBuf>,
    /// `[build.ssh_agents]`, checked: each agent id and its socket.
    ssh_agents: BTreeMap<String, PathBuf>,
    registry: RegistryClient,
    credentials: Option<RegistryCredentials>,
    registry_host: String,
    logs: LogSink,
    /// Disk reclamation still running for finished jobs; the next job waits for it.
    reclaiming: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    shutdown: CancellationToken,
}

/// Where build logs go: a publisher on the worker's log connection, re-opened when it breaks.
/// Logs are best effort: without the stream, a job still runs and keeps its log tail.
struct LogSink {
    side: SideConnection,
}

impl LogSink {
    /// A writer for one job's run, (re)connecting when needed; `None` when the broker refuses.
    async fn writer(&self, job_id: JobId, attempt: u32) -> Option<LogWriter> {
        match self.side.publisher().await {
            Ok(publisher) => {
                let options = LogWriterOptions {
                    finish_timeout: Duration::from_secs(5),
                    ..LogWriterOptions::default()
                };
                Some(LogWriter::start(
                    &publisher,
                    self.side.stream(),
                    job_id,
                    attempt,
                    options,
                ))
            }
            Err(error) => {
                tracing::warn!(%job_id, %error, "build log stream unavailable; keeping the log tail only");
                None
            }
        }
    }
}

/// One job's log (to the log stream and to the tail kept for `build.failed`) and what clean-up
/// needs to know about its images.
struct JobLog {
    writer: Option<LogWriter>,
    tail: LogTail,
    /// Images the build's steps produced, from the log, oldest first.
    step_images: Vec<String>,
    /// Local images to reclaim once the outcome is on its way.
    leftovers: Leftovers,
}

/// Local images a job leaves behind, reclaimed after its outcome is sent (never forced: an image
/// that is still tagged, used by a container or a parent of another image stays).
#[derive(Clone, Debug, Default)]
struct Leftovers {
    /// The image the test tag named before this job's build (an earlier, interrupted attempt).
    earlier_test_image: Option<String>,
    /// The image the desired tag named before the promotion.
    replaced: Option<String>,
    /// The promoted image: its name, and the local image built (without the registry's labels).
    promoted: Option<(ImageRef, String)>,
    /// The images of a successful build's steps, oldest first: those of a multi-stage build's
    /// earlier stages are no parent of the result, so removing it would leave them behind.
    step_images: Vec<String>,
    /// The build used the classic builder's layer cache: its steps' images and the built image
    /// stay, untagged, as the cache of later builds (pruned when the Docker root runs low on
    /// space).
    kept_as_cache: bool,
}

impl JobLog {
    fn line(&mut self, text: &str) {
        self.tail.push(text);
        for line in text.lines() {
            if let Some(id) = plan::step_image_id(line) {
                self.step_images.push(id.to_string());
            }
        }
        if let Some(writer) = &self.writer {
            for line in text.trim_end_matches('\n').split('\n') {
                writer.write_line(line);
            }
        }
    }
}

impl BuildHandler {
    /// Builds a handler from the worker's configuration.
    pub async fn new(
        config: &BuildWorkerConfig,
        shutdown: CancellationToken,
    ) -> Result<BuildHandler, WorkerError> {
        crate::sandbox::check_settings(&config.build).map_err(WorkerError::Settings)?;
        std::fs::create_dir_all(&config.build.work_dir).map_err(|source| WorkerError::WorkDir {
            path: config.build.work_dir.clone(),
            source,
        })?;
        remove_stale_checkouts(&config.build);
        let credentials = crate::registry::credentials(&config.registry)?;
        let registry = RegistryClient::new(&config.registry, credentials.clone())?;
        let credentials_dir = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        let build_secrets =
            crate::secrets::resolve(&config.build.secrets, credentials_dir.as_deref())
                .map_err(WorkerError::Settings)?;
        let ssh_agents = crate::secrets::resolve_agents(&config.build.ssh_agents)
            .map_err(WorkerError::Settings)?;
        let docker = DockerEngine::connect().await?;
        Ok(BuildHandler {
            settings: config.build.clone(),
            build_secrets,
            ssh_agents,
            cache: SourceCache::new(config.source.clone())?,
            daemon_builder: DaemonBuilder::of_engine_version(&docker.engine_version().await?),
            docker,
            registry_host: registry.host().to_string(),
            registry,
            credentials,
            logs: LogSink {
                side: SideConnection::for_logs(&config.broker, "slipway-build-logs", &config.logs),
            },
            reclaiming: Mutex::new(Vec::new()),
            shutdown,
        })
    }

    /// Handles one job of the build queue: a `lint.passed` is built ([`BuildHandler::build`]), an
    /// `image.retired` may have its tag deleted ([`BuildHandler::retire`]).
    pub async fn handle(&self, job: &Job) -> Outcome {
        match &job.envelope.message {
            Message::ImageRetired(retired) => self.retire(job, retired).await,
            _ => self.build(job).await,
        }
    }

    /// Deletes a retired image's tag from the registry when its `image.retired` asks for it and
    /// no other tag names the same manifest, and says what became of it (`image.removed`). An
    /// `image.retired` that does not ask is done at once, with nothing to publish. Registry
    /// trouble that may pass is a `Retry`; a refusal (deletes disabled, no permission) is an
    /// `image.removed` that says so.
    pub async fn retire(&self, job: &Job, retired: &ImageRetired) -> Outcome {
        if !retired.delete_tag {
            return Outcome::Ack(Vec::new());
        }
        let names = match Names::of(&retired.entry, &self.registry_host) {
            Ok(names) => names,
            Err(error) => {
                return Outcome::Reject(format!(
                    "the retired entry names no image of registry {}: {error}",
                    self.registry_host
                ));
            }
        };
        let removed = match self
            .remove_tag(
                &names.image,
                &retired.entry.desired_tag,
                job.envelope.created_at,
            )
            .await
        {
            Ok(removed) => removed,
            Err((_, error)) if error.is_transient() => {
                return Outcome::Retry(format!("registry: {error}"));
            }
            Err((digest, error)) => crate::retire::refused(&names.image, digest, error.to_string()),
        };
        crate::telemetry::retired_tag(job.envelope.job_id, &removed);
        Outcome::Ack(vec![job.envelope.follow_up(Message::ImageRemoved(removed))])
    }

    /// Looks at what the registry holds for `image` (retired at `retired_at`), decides, and
    /// deletes when the decision says so. The error carries the digest when it was known.
    async fn remove_tag(
        &self,
        image: &ImageRef,
        desired_tag: &str,
        retired_at: Timestamp,
    ) -> Result<ImageRemoved, (Option<Digest>, RegistryError)> {
        let Some(found) = self
            .registry
            .image_labels(image)
            .await
            .map_err(|e| (None, e))?
        else {
            return Ok(crate::retire::removed(
                image,
                crate::retire::Decision::Absent,
                false,
            ));
        };
        let digest = found.digest;
        let known = |error| (Some(digest.clone()), error);
        let listed = self.registry.tags(image).await.map_err(known)?;
        let own = crate::retire::own_tags(desired_tag);
        let mut sharing = Vec::new();
        for tag in listed.tags.iter().filter(|tag| !own.contains(tag)) {
            let Ok(other) = image.clone().with_tag(tag) else {
                continue;
            };
            if self
                .registry
                .manifest_digest(&other)
                .await
                .map_err(known)?
                .as_ref()
                == Some(&digest)
            {
                sharing.push(tag.clone());
            }
        }
        let facts = crate::retire::RegistryFacts {
            digest: Some(digest.clone()),
            created: found.created,
            sharing,
            every_tag_checked: listed.complete,
        };
        let decision = crate::retire::decide(retired_at, &facts);
        let deleted = match &decision {
            crate::retire::Decision::Delete(digest) => self
                .registry
                .delete_manifest(image, digest)
                .await
                .map_err(known)?,
            _ => false,
        };
        Ok(crate::retire::removed(image, decision, deleted))
    }

    /// Builds the job's image and says what to publish (or to retry, or to reject).
    pub async fn build(&self, job: &Job) -> Outcome {
        let Message::LintPassed(request) = &job.envelope.message else {
            return Outcome::Reject(format!(
                "the build worker consumes lint.passed, not {}",
                job.envelope.kind().as_str()
            ));
        };
        self.finish_reclaiming().await;
        let started = Instant::now();
        let job_id = job.envelope.job_id;
        let mut log = JobLog {
            writer: self.logs.writer(job_id, job.attempt).await,
            tail: LogTail::new(self.settings.log_tail_lines),
            step_images: Vec::new(),
            leftovers: Leftovers::default(),
        };
        let work = self
            .settings
            .work_dir
            .join(format!("{job_id}-{}", job.attempt));
        let result = self
            .run_stages(
                request,
                job_id,
                Reuse::for_cause(&job.envelope.cause),
                &work,
                &mut log,
                started,
            )
            .await;
        self.clean_up(job_id, request, &work, &mut log, result.is_ok())
            .await;
        let (outcome, verdict) = match result {
            Ok(success) => (
                Outcome::Ack(vec![job.envelope.follow_up(plan::succeeded(
                    &request.entry,
                    &request.commit,
                    success,
                ))]),
                BuildOutcome::Succeeded,
            ),
            Err(Stop::Failed(stage, error)) => {
                log.line(&format!("slipway: {stage:?} failed: {error}"));
                (
                    Outcome::Ack(vec![job.envelope.follow_up(plan::failed(
                        &request.entry,
                        &request.commit,
                        stage,
                        error,
                        &log.tail,
                    ))]),
                    BuildOutcome::Failed,
                )
            }
            Err(Stop::Retry(reason)) => {
                log.line(&format!("slipway: will retry: {reason}"));
                (Outcome::Retry(reason), BuildOutcome::Retried)
            }
        };
        if let Some(writer) = log.writer.take()
            && let Err(error) = writer.finish(verdict.as_str()).await
        {
            tracing::warn!(%job_id, %error, "the end of the build log did not reach the stream");
        }
        crate::telemetry::build_finished(
            job_id,
            &request.entry.image().to_string(),
            verdict,
            started.elapsed(),
        );
        outcome
    }

    async fn run_stages(
        &self,
        request: &LintPassed,
        job_id: JobId,
        reuse: Reuse,
        work: &Path,
        log: &mut JobLog,
        started: Instant,
    ) -> Result<Success, Stop> {
        let entry = &request.entry;
        // The sandbox policy first: an entry this worker does not build is refused before any work.
        let owner = checkout_owner(&self.settings.work_dir);
        let sandbox = crate::sandbox::plan(entry, &self.settings, owner)
            .map_err(|refusal| Stop::Failed(BuildStage::Build, refusal.to_string()))?;
        // Bounded: never start a build on a nearly full disk. The layer caches (BuildKit's, and
        // the untagged images of earlier builds' steps) are the first thing to go when it is.
        let low = |space: &slipway_docker::DiskSpace| {
            space.free_bytes < self.settings.min_free_bytes
                || space.free_inodes < self.settings.min_free_inodes
        };
        let mut space = self.docker.root_dir_space().await?;
        if low(&space) {
            let freed = self
                .docker
                .prune_build_cache(Duration::from_millis(self.settings.build_timeout_ms))
                .await?;
            log.line(&format!(
                "slipway: the Docker root is low on space: the layer caches pruned ({freed} bytes freed)"
            ));
            space = self.docker.root_dir_space().await?;
        }
        crate::telemetry::disk_free(&space);
        if low(&space) {
            crate::telemetry::disk_guard_tripped(&space);
            return Err(Stop::Retry(format!(
                "the Docker root has {} bytes and {} inodes free; at least {} bytes and {} inodes are required (build.min_free_bytes, build.min_free_inodes)",
                space.free_bytes,
                space.free_inodes,
                self.settings.min_free_bytes,
                self.settings.min_free_inodes
            )));
        }

        // Checkout of exactly the commit that was linted.
        log.line(&format!(
            "slipway: checking out {} at {}",
            slipway_common::index::validate::redact_credentials(&entry.git_url),
            request.commit.as_str()
        ));
        let fetched = self
            .cache
            .fetch(&entry.git_url, request.commit.as_str())
            .await
            .map_err(checkout_stop)?;
        // A redelivered job (its worker was killed) finds its old checkout: start afresh.
        if work.exists() {
            tokio::fs::remove_dir_all(work).await.map_err(|e| {
                Stop::Retry(format!(
                    "cannot remove the stale checkout {}: {e}",
                    work.display()
                ))
            })?;
        }
        fetched.export_tree("", work).await.map_err(checkout_stop)?;
        let layout =
            Layout::of(entry).map_err(|e| Stop::Failed(BuildStage::Checkout, e.to_string()))?;
        let dockerfile_path = work.join(&layout.dockerfile);
        let dockerfile = std::fs::read(&dockerfile_path).map_err(|e| {
            Stop::Failed(
                BuildStage::Checkout,
                format!(
                    "cannot read the Dockerfile {} at {}: {e}",
                    layout.dockerfile,
                    request.commit.as_str()
                ),
            )
        })?;
        let dockerfile_digest = Digest::sha256_of(&dockerfile).to_string();
        let text = String::from_utf8_lossy(&dockerfile);

        // The builder: BuildKit when the Dockerfile needs it (or by configuration); a feature
        // beyond the daemon fails here, naming it, rather than in the daemon's parser.
        let choice = choose_builder(
            &required_features(&text),
            &self.daemon_builder,
            self.settings.builder,
        )
        .map_err(|e| Stop::Failed(BuildStage::Build, format!("{}: {e}", layout.dockerfile)))?;
        // Secrets and SSH agents: a required one this worker does not serve fails here, before
        // any work.
        let served = crate::secrets::Served {
            secrets: &self.build_secrets,
            agents: &self.ssh_agents,
        };
        let mounts = session_mounts(&text);
        crate::secrets::check_required(&mounts, served)
            .map_err(|e| Stop::Failed(BuildStage::Build, format!("{}: {e}", layout.dockerfile)))?;
        for mount in mounts.iter().filter(|mount| !served.serves(mount)) {
            let what = match mount.kind {
                SessionMountKind::Secret => "secret",
                SessionMountKind::Ssh => "SSH agent",
            };
            log.line(&format!(
                "slipway: line {}: this worker serves no {what} {:?}: the optional mount is left out",
                mount.line, mount.id
            ));
        }
        log.line(&format!(
            "slipway: building with {}",
            match choice.builder {
                Builder::Classic => "the classic builder",
                Builder::BuildKit => "BuildKit",
            }
        ));
        let mut dockerfile_text = text.to_string();
        if choice.neutralise_syntax {
            // Builds run offline: Docker's own frontend image cannot be pulled, and the
            // daemon's built-in one parses everything this file uses.
            log.line("slipway: the # syntax= directive names Docker's own frontend: the daemon's built-in frontend builds it");
            dockerfile_text = neutralise_syntax_directive(&dockerfile_text);
        }

        // No ADD of a URL in a build without network: the daemon would fetch it on the host's.
        let remote = plan::remote_add_sources(&text)
            .map_err(|e| Stop::Failed(BuildStage::Build, e.to_string()))?;
        crate::sandbox::check_add_sources(sandbox.build_network, &remote)
            .map_err(|refusal| Stop::Failed(BuildStage::Build, refusal.to_string()))?;

        // The content key: commit, Dockerfile, parents, build args.
        let parents = plan::parent_images(&text, &entry.build_args)
            .map_err(|e| Stop::Failed(BuildStage::Build, e.to_string()))?;
        let mut parent_digests = BTreeMap::new();
        let mut inherited_configs = Vec::new();
        for written in parents {
            let parent = ImageRef::parse(&written)
                .map_err(|e| Stop::Failed(BuildStage::Build, format!("base image: {e}")))?;
            let id = match self.docker.image_id(&written).await? {
                Some(id) => id,
                None => self.pull_parent(&parent, log).await?,
            };
            let id = Digest::parse(&id).map_err(|e| {
                Stop::Retry(format!("the daemon's id of the base image {parent}: {e}"))
            })?;
            let inherited = self
                .docker
                .inherited_config(&written)
                .await?
                .unwrap_or_default();
            // Its ONBUILD triggers run in this build: no ADD of a URL without network either.
            if sandbox.build_network == Network::None {
                let remote = plan::remote_trigger_sources(&inherited.onbuild).map_err(|e| {
                    Stop::Failed(
                        BuildStage::Build,
                        format!("the ONBUILD triggers of {written}: {e}"),
                    )
                })?;
                crate::sandbox::check_parent_triggers(sandbox.build_network, &written, &remote)
                    .map_err(|refusal| Stop::Failed(BuildStage::Build, refusal.to_string()))?;
            }
            inherited_configs.push(layer_cache::Parent {
                name: written.clone(),
                onbuild: inherited.onbuild,
                env: inherited.env,
            });
            parent_digests.insert(parent, id);
        }
        let key = plan::content_key(
            &request.commit,
            &dockerfile_digest,
            &parent_digests,
            &entry.build_args,
        );
        let names = Names::of(entry, &self.registry_host)
            .map_err(|e| Stop::Failed(BuildStage::Push, e.to_string()))?;
        log.line(&format!("slipway: content key {key}"));

        // The layer cache: by the job's cause, the builder and what could undo its key.
        let layer_cache = layer_cache::decide(&layer_cache::CacheInputs {
            enabled: self.settings.cache,
            reuse,
            builder: choice.builder,
            dockerfile: &dockerfile_text,
            build_args: &entry.build_args,
            parents: &inherited_configs,
            network: sandbox.build_network.mode(),
        });
        log.line(&format!("slipway: {}", layer_cache.describe()));
        // The classic builder's cache is the images of the steps: they stay (BuildKit keeps its
        // own, apart from the images).
        log.leftovers.kept_as_cache = matches!(layer_cache, LayerCache::ClassicKeyedOnNetwork(_));
        if let LayerCache::ClassicKeyedOnNetwork(keyed) = &layer_cache {
            dockerfile_text.clone_from(keyed);
        }
        if dockerfile_text != text {
            std::fs::write(&dockerfile_path, &dockerfile_text).map_err(|e| {
                Stop::Retry(format!("cannot rewrite {}: {e}", dockerfile_path.display()))
            })?;
        }

        // Idempotency: the registry already has this very build under the desired tag.
        if let Some(existing) = self
            .registry
            .image_labels(&names.image)
            .await
            .map_err(registry_stop)?
            && plan::already_built(&existing.labels, &key, reuse, &job_id.to_string())
        {
            log.line(&format!(
                "slipway: {} already holds this build ({}); nothing to do",
                names.image, existing.digest
            ));
            return Ok(Success {
                image: names.image.clone(),
                digest: existing.digest,
                content_key: key,
                parent_digests,
                duration_ms: started.elapsed().as_millis() as u64,
                record: plan::record(
                    &dockerfile_digest,
                    Timestamp::now(),
                    started.elapsed().as_millis() as u64,
                ),
            });
        }

        let job_label = job_id.to_string();
        let mut labels = plan::labels(entry, &request.commit, &dockerfile_digest, &job_label, &key);
        labels.insert(plan::LABEL_JOB.to_string(), job_label.clone());

        // Prebuild script, in a throwaway container without network.
        if let (Some(script), Some(dir)) = (&entry.prebuild_script, &layout.prebuild_context) {
            log.line(&format!("slipway: prebuild {script} in /{dir}"));
            let spec = RunSpec {
                image: self.settings.prebuild_image.clone(),
                command: RunCommand::Exec(vec![
                    "/bin/sh".into(),
                    format!("./{}", script.trim_start_matches("./")),
                ]),
                network: Network::None,
                timeout: Duration::from_millis(self.settings.prebuild_timeout_ms),
                workdir: Some(format!("/src/{dir}")),
                binds: vec![BindMount {
                    host_dir: work.to_path_buf(),
                    container_dir: "/src".to_string(),
                    access: MountAccess::ReadWrite,
                }],
                labels: BTreeMap::new(),
                // The checkout's owner may have no home in the image.
                env: BTreeMap::from([("HOME".to_string(), "/tmp".to_string())]),
                job_label: job_label.clone(),
                tail_lines: self.settings.log_tail_lines,
                sandbox: sandbox.prebuild.clone(),
            };
            self.run_step(BuildStage::Prebuild, "the prebuild script", &spec, log)
                .await?;
        }

        // The build.
        let tar = context_tar(
            work,
            &layout.context,
            &layout.dockerfile,
            &ContextOptions {
                max_bytes: self.settings.max_context_bytes,
                ..ContextOptions::default()
            },
        )
        .map_err(|e| Stop::Failed(BuildStage::Build, e.to_string()))?;
        log.line(&format!(
            "slipway: sending a build context of {} entries, {} bytes",
            tar.entries, tar.content_bytes
        ));
        // The labels are added in the registry after the push, not by the build: with the classic
        // builder they would cost an extra LABEL step (a container created and committed).
        let spec = BuildSpec {
            context: BuildContext::Tar(tar.tar),
            dockerfile: tar.dockerfile,
            tags: vec![names.test_image.to_string()],
            labels: BTreeMap::new(),
            build_args: entry.build_args.clone(),
            network: sandbox.build_network,
            timeout: Duration::from_millis(self.settings.build_timeout_ms),
            no_cache: layer_cache.no_cache(),
            builder: match choice.builder {
                Builder::Classic => BuilderKind::Classic,
                Builder::BuildKit => BuilderKind::BuildKit,
            },
            limits: sandbox.build_limits,
            cgroup_parent: sandbox.build_cgroup_parent.clone(),
            // No secret mounts yet: BuildKit answers each "not found".
            // Served through the build's BuildKit session; the classic builder has none (and a
            // Dockerfile with a secret mount is always built with BuildKit).
            secrets: match choice.builder {
                Builder::BuildKit => self
                    .build_secrets
                    .iter()
                    .fold(BuildSecrets::new(), |secrets, (id, path)| {
                        secrets.with_file(id, path)
                    }),
                Builder::Classic => BuildSecrets::new(),
            },
            ssh_agents: match choice.builder {
                Builder::BuildKit => self
                    .ssh_agents
                    .iter()
                    .fold(SshAgents::new(), |agents, (id, socket)| {
                        agents.with_socket(id, socket)
                    }),
                Builder::Classic => SshAgents::new(),
            },
        };
        let previous = self.docker.image_id(&names.image.to_string()).await?;
        log.leftovers.earlier_test_image =
            self.docker.image_id(&names.test_image.to_string()).await?;
        let mut sink = |line: &str| log.line(line);
        let built = self.docker.build(&spec, &mut sink, &self.shutdown).await;
        if self.shutdown.is_cancelled() {
            return Err(Stop::Retry(
                "the worker is shutting down; the build was cancelled".into(),
            ));
        }
        let built = built.map_err(|e| match docker_stop(BuildStage::Build, e) {
            Stop::Failed(stage, error) => {
                Stop::Failed(stage, crate::sandbox::explain_build_failure(error))
            }
            retry => retry,
        })?;

        // Push the test tag; the digest comes from the push.
        let mut sink = |line: &str| log.line(line);
        let pushed = self
            .docker
            .push(&names.test_image, self.credentials.as_ref(), &mut sink)
            .await
            .map_err(|e| docker_stop(BuildStage::Push, e))?;
        crate::telemetry::bytes_pushed(pushed.manifest_size);
        let digest = self
            .registry
            .put_labelled(&names.test_image, &pushed.digest, &labels)
            .await
            .map_err(registry_stop)?;
        log.line(&format!(
            "slipway: labelled {} in the registry: {digest}",
            names.test_image
        ));

        // Smoke test, then promotion of that very digest.
        if let Some(test) = &entry.smoke_test {
            log.line(&format!("slipway: smoke test: {test}"));
            let spec = RunSpec {
                image: names.test_image.to_string(),
                command: RunCommand::Shell(test.clone()),
                network: Network::None,
                timeout: Duration::from_millis(self.settings.smoke_test_timeout_ms),
                workdir: None,
                binds: Vec::new(),
                labels: BTreeMap::new(),
                env: BTreeMap::new(),
                job_label: job_label.clone(),
                tail_lines: self.settings.log_tail_lines,
                sandbox: sandbox.smoke_test.clone(),
            };
            self.run_step(BuildStage::Test, "the smoke test", &spec, log)
                .await
                .map_err(|stop| match stop {
                    Stop::Failed(stage, error) => {
                        Stop::Failed(stage, format!("{error}; {} was not moved", names.image))
                    }
                    retry => retry,
                })?;
        }
        self.registry
            .tag(&names.image, &digest)
            .await
            .map_err(registry_stop)?;
        log.line(&format!("slipway: {} is {digest}", names.image));
        // The promoted image keeps the desired name on this node too (children built here use
        // it as their parent) at once; after the outcome is sent, the labelled image is pulled
        // from the registry under that name, so this node holds the same image id as any other.
        let desired = names.image.clone();
        self.docker.tag_image(&built.id, &desired).await?;
        log.leftovers.replaced = previous;
        log.leftovers.promoted = Some((desired, built.id.clone()));
        Ok(Success {
            image: names.image,
            digest,
            content_key: key,
            parent_digests,
            duration_ms: started.elapsed().as_millis() as u64,
            record: plan::record(
                &dockerfile_digest,
                Timestamp::now(),
                started.elapsed().as_millis() as u64,
            ),
        })
    }

    /// Waits for the disk reclamation of earlier jobs (bounded work: a job starts on a clean node).
    pub async fn finish_reclaiming(&self) {
        let pending: Vec<_> = self.reclaiming.lock().await.drain(..).collect();
        for task in pending {
            if let Err(error) = task.await {
                tracing::warn!(%error, "a disk reclamation task failed");
            }
        }
    }

    /// Runs a throwaway container for `stage` (`what` names it in errors), copying its output to
    /// the log; a time-out or a non-zero exit fails the stage.
    async fn run_step(
        &self,
        stage: BuildStage,
        what: &str,
        spec: &RunSpec,
        log: &mut JobLog,
    ) -> Result<(), Stop> {
        let outcome = self
            .docker
            .run_container(spec, &self.shutdown)
            .await
            .map_err(|e| docker_stop(stage, e))?;
        for line in &outcome.output.lines {
            log.line(line);
        }
        match crate::sandbox::step_failure(what, &outcome, &spec.sandbox, spec.timeout) {
            Some(error) => Err(Stop::Failed(stage, error)),
            None => Ok(()),
        }
    }

    /// Brings a parent image that is not on this node from Slipway's own registry (where another
    /// node's build put it); images elsewhere are never pulled.
    async fn pull_parent(&self, parent: &ImageRef, log: &mut JobLog) -> Result<String, Stop> {
        if parent.domain() != Some(self.registry_host.as_str()) {
            return Err(Stop::Failed(
                BuildStage::Build,
                format!(
                    "base image {parent} is not on this node, and only images of {} are pulled",
                    self.registry_host
                ),
            ));
        }
        log.line(&format!("slipway: pulling the parent image {parent}"));
        let mut sink = |line: &str| log.line(line);
        self.docker
            .pull(parent, self.credentials.as_ref(), &mut sink)
            .await
            .map_err(|e| docker_stop(BuildStage::Build, e))?;
        match self.docker.image_id(&parent.to_string()).await? {
            Some(id) => Ok(id),
            None => Err(Stop::Failed(
                BuildStage::Build,
                format!("{parent} was pulled but is not on this node"),
            )),
        }
    }

    /// Removes the job's containers, its local test tag, the dangling images of its build and its
    /// checkout. Failures are logged, not fatal: the next job's clean-up tries again.
    async fn clean_up(
        &self,
        job_id: JobId,
        request: &LintPassed,
        work: &Path,
        log: &mut JobLog,
        succeeded: bool,
    ) {
        let job_label = job_id.to_string();
        if let Err(error) = self.docker.remove_job_containers(&job_label).await {
            tracing::warn!(%job_id, %error, "removing the job's containers failed");
        }
        if let Ok(names) = Names::of(&request.entry, &self.registry_host)
            && let Err(error) = self
                .docker
                .remove_image(&names.test_image.to_string())
                .await
        {
            tracing::debug!(%job_id, %error, "removing the test tag failed (it may not exist)");
        }
        // A build that did not finish leaves its steps' images behind, unlabelled: remove the
        // untagged ones (never forced: an image in use or with children stays; a tagged image such
        // as the base is never touched).
        if succeeded {
            if !log.leftovers.kept_as_cache {
                log.leftovers.step_images = log.step_images.clone();
            }
        } else {
            match self.docker.remove_untagged_images(&log.step_images).await {
                Ok(0) => {}
                Ok(removed) => log.line(&format!(
                    "slipway: removed {removed} image(s) of the unfinished build"
                )),
                Err(error) => {
                    tracing::warn!(%job_id, %error, "removing the unfinished build's images failed")
                }
            }
        }
        // Replacing the promoted image by the registry's labelled one and reclaiming disk from
        // images no longer named can take a while: it runs after the outcome is on its way, and
        // the next job waits for it before it starts.
        let reclaim = tokio::spawn(
            reclaim(
                self.docker.clone(),
                self.credentials.clone(),
                job_id,
                log.leftovers.clone(),
            )
            .instrument(tracing::Span::current()),
        );
        self.reclaiming.lock().await.push(reclaim);
        if work.exists()
            && let Err(error) = tokio::fs::remove_dir_all(work).await
        {
            tracing::warn!(%job_id, %error, path = %work.display(), "removing the checkout failed");
        }
    }
}

/// After a job: pulls the promoted image from the registry (only its labelled configuration is
/// new; the layers are here), then removes the images the job left unnamed.
async fn reclaim(
    docker: DockerEngine,
    credentials: Option<RegistryCredentials>,
    job_id: JobId,
    leftovers: Leftovers,
) {
    let mut unnamed = Vec::new();
    if let Some((promoted, built)) = leftovers.promoted {
        let mut ignore = |_: &str| {};
        match docker
            .pull(&promoted, credentials.as_ref(), &mut ignore)
            .await
        {
            Ok(_) if leftovers.kept_as_cache => {}
            Ok(_) => unnamed.push(built),
            Err(error) => tracing::warn!(
                %job_id, %error, image = %promoted,
                "pulling the labelled image failed; this node keeps the unlabelled build under its name"
            ),
        }
    }
    unnamed.extend(leftovers.replaced);
    unnamed.extend(leftovers.earlier_test_image);
    // Removed last to first: the build's own image before its steps' (a parent with a child
    // stays), the steps newest first.
    let mut steps = leftovers.step_images;
    steps.retain(|step| !unnamed.iter().any(|id| id_matches(id, step)));
    steps.dedup();
    unnamed.splice(0..0, steps);
    match docker.remove_untagged_images(&unnamed).await {
        Ok(0) => {}
        Ok(removed) => tracing::info!(%job_id, removed, "removed images the job left unnamed"),
        Err(error) => {
            tracing::warn!(%job_id, %error, "removing images the job left unnamed failed")
        }
    }
}

/// Whether the image id `id` (full, `sha256:` and all) and the short id `short` (12 hex, from a
/// build log) name the same image.
fn id_matches(id: &str, short: &str) -> bool {
    id.strip_prefix("sha256:").unwrap_or(id).starts_with(short)
}

/// The `uid:gid` owning the work directory (the worker's, which exports the checkouts there): the
/// prebuild script runs as it. Root when it cannot be read (the container still holds no
/// capability).
fn checkout_owner(work_dir: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(work_dir)
        .map(|meta| (meta.uid(), meta.gid()))
        .unwrap_or((0, 0))
}

/// Removes checkouts left by worker processes that were killed: directories in the work directory
/// untouched for longer than a build may last (plus an hour). Younger ones may belong to another
/// worker process on this node.
fn remove_stale_checkouts(settings: &BuildSettings) {
    let horizon = Duration::from_millis(settings.build_timeout_ms) + Duration::from_secs(3600);
    let Ok(entries) = std::fs::read_dir(&settings.work_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age > horizon);
        if stale {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => {
                    tracing::info!(path = %entry.path().display(), "removed a stale checkout")
                }
                Err(error) => {
                    tracing::warn!(path = %entry.path().display(), %error, "cannot remove a stale checkout")
                }
            }
        }
    }
}

/// Runs the build worker until `shutdown` is cancelled.
pub async fn run(
    config: BuildWorkerConfig,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    crate::telemetry::register_metrics();
    let handler = Arc::new(BuildHandler::new(&config, shutdown.clone()).await?);
    // Headroom is known from the start, not only after the first build.
    match handler.docker.root_dir_space().await {
        Ok(space) => crate::telemetry::disk_free(&space),
        Err(error) => tracing::warn!(%error, "cannot measure the Docker root's free space"),
    }
    let topology = Topology::pipeline(&config.broker);
    let handler_for_exit = Arc::clone(&handler);
    let handle = move |job: Job| {
        let handler = Arc::clone(&handler);
        async move { handler.handle(&job).await }
    };
    let result = Consumer::new(WORKER.into(), config.broker, topology, handle)
        .run(shutdown)
        .await;
    handler_for_exit.finish_reclaiming().await;
    result?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn defaults_load_unchanged_print_as_toml_and_use_the_build_metrics_port() {
        slipway_common::process::assert_worker_config_defaults::<super::BuildWorkerConfig>();
    }

    #[test]
    fn build_secrets_load_from_the_file_with_their_ids_as_written() {
        let dir = std::env::temp_dir().join(format!("slipway-build-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("build.toml");
        std::fs::write(
            &file,
            "[build.secrets]\nNPM_TOKEN = \"/etc/slipway/secrets/npm\"\npip-conf = \"credential:pip-conf\"\n",
        )
        .unwrap();
        let loaded: super::BuildWorkerConfig =
            slipway_common::config::load(&slipway_common::config::ConfigSources {
                file: file.clone(),
                file_required: true,
                env_prefix: "SLIPWAY".into(),
                env: Some(Vec::new()),
            })
            .unwrap();
        assert_eq!(
            loaded.build.secrets,
            std::collections::BTreeMap::from([
                (
                    "NPM_TOKEN".to_owned(),
                    "/etc/slipway/secrets/npm".to_owned()
                ),
                ("pip-conf".to_owned(), "credential:pip-conf".to_owned()),
            ])
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

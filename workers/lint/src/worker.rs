//! The lint worker's wiring: consume `build.requested`, fetch the Dockerfile at the requested ref,
//! lint it, publish `lint.passed`/`lint.failed` (decided in [`crate::job`]), through the broker's
//! consumer runner (which acks only after the outgoing event is confirmed).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use slipway_broker::{BrokerSettings, Consumer, Job, Outcome, Topology};
use slipway_common::Message;
use slipway_common::message::CommitSha;
use slipway_common::process::{WorkerConfig, WorkerKind};
use slipway_common::telemetry::TelemetrySettings;
use slipway_source::{SourceCache, SourceError, SourceSettings};
use tokio_util::sync::CancellationToken;

use crate::batch::ScriptCache;
use crate::job::{self, LintJobSettings, ShellcheckMode, SourceDecision};
use crate::shellcheck::ShellcheckProgram;
use crate::telemetry::LintVerdict;

/// The worker type: its queue is `<namespace>.lint`, its metrics are labelled `worker="lint"`.
pub const WORKER: WorkerKind = WorkerKind::Lint;

/// Everything `slipway-lint` reads from `/etc/slipway/lint.toml` and `SLIPWAY_*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LintWorkerConfig {
    /// `[broker]`: connection, namespace, prefetch, retries.
    pub broker: BrokerSettings,
    /// `[telemetry]`: logs and the metrics endpoint.
    pub telemetry: TelemetrySettings,
    /// `[source]`: the git cache.
    pub source: SourceSettings,
    /// `[lint]`: thresholds, ignores, ShellCheck.
    pub lint: LintJobSettings,
}

/// Built-in defaults; `/metrics` on this worker's own port.
impl Default for LintWorkerConfig {
    fn default() -> Self {
        Self {
            broker: Default::default(),
            telemetry: WorkerKind::Lint.default_telemetry(),
            source: Default::default(),
            lint: Default::default(),
        }
    }
}

impl WorkerConfig for LintWorkerConfig {
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
    Source(SourceError),
    /// `shellcheck = "always"` but the program is missing.
    #[error("lint.shellcheck is \"always\" but {0}")]
    Shellcheck(crate::shellcheck::ShellcheckError),
    /// The `[lint]` settings are unusable.
    #[error("invalid lint settings: {0}")]
    Settings(String),
    /// The broker failed for good.
    #[error(transparent)]
    Broker(#[from] slipway_broker::BrokerError),
}

/// Handles one `build.requested` job.
pub struct LintHandler {
    cache: SourceCache,
    settings: LintJobSettings,
    /// ShellCheck, remembering the scripts it has checked: jobs repeat the same `RUN`s.
    shellcheck: Option<Arc<ScriptCache<ShellcheckProgram>>>,
}

impl LintHandler {
    /// A handler over `cache` with the worker's lint settings; finds `shellcheck` as configured.
    pub fn new(cache: SourceCache, settings: LintJobSettings) -> Result<LintHandler, WorkerError> {
        settings.validate().map_err(WorkerError::Settings)?;
        let shellcheck = match settings.shellcheck {
            ShellcheckMode::Never => None,
            ShellcheckMode::Auto => ShellcheckProgram::find("shellcheck").ok(),
            ShellcheckMode::Always => {
                Some(ShellcheckProgram::find("shellcheck").map_err(WorkerError::Shellcheck)?)
            }
        }
        .map(|program| {
            Arc::new(ScriptCache::new(
                program.with_limits(settings.shellcheck_limits()),
            ))
        });
        tracing::info!(shellcheck = shellcheck.is_some(), "lint handler ready");
        Ok(LintHandler {
            cache,
            settings,
            shellcheck,
        })
    }

    /// Lints the job's Dockerfile and says what to publish (or whether to retry or reject).
    pub async fn lint(&self, job: &Job) -> Outcome {
        let Message::BuildRequested(request) = &job.envelope.message else {
            return Outcome::Reject(format!(
                "the lint worker consumes build.requested, not {}",
                job.envelope.kind().as_str()
            ));
        };
        let started = Instant::now();
        let entry = &request.entry;
        let git_ref = request
            .commit
            .as_ref()
            .map_or(entry.git_branch.as_str(), CommitSha::as_str);
        let fetched = match self.cache.fetch(&entry.git_url, git_ref).await {
            Ok(fetched) => fetched,
            Err(error) => return self.source_failed(job, entry, None, &error, started),
        };
        let commit = fetched.sha().clone();
        let path = job::dockerfile_path(entry);
        let dockerfile = match fetched.read_file(&path).await {
            Ok(bytes) => bytes,
            Err(error) => return self.source_failed(job, entry, Some(commit), &error, started),
        };
        let (entry, settings, shellcheck) = (
            entry.clone(),
            self.settings.clone(),
            self.shellcheck.clone(),
        );
        let commit_for_lint = commit.clone();
        let linted = slipway_common::telemetry::spawn_blocking_in_span(move || {
            let checker = shellcheck
                .as_deref()
                .map(|s| s as &dyn crate::lint::ShellChecker);
            job::lint_dockerfile(
                &entry,
                &commit_for_lint,
                &path,
                &dockerfile,
                &settings,
                checker,
            )
        })
        .await;
        let (message, failures) = match linted {
            Ok(result) => result,
            Err(error) => return Outcome::Retry(format!("the lint task failed: {error}")),
        };
        crate::telemetry::findings_reported(job.envelope.job_id, &failures);
        let verdict = if matches!(message, Message::LintPassed(_)) {
            LintVerdict::Passed
        } else {
            LintVerdict::Failed
        };
        crate::telemetry::lint_finished(
            job.envelope.job_id,
            &request.entry.image().to_string(),
            commit.as_str(),
            verdict,
            started.elapsed(),
        );
        Outcome::Ack(vec![job.envelope.follow_up(message)])
    }

    fn source_failed(
        &self,
        job: &Job,
        entry: &slipway_common::index::Entry,
        commit: Option<CommitSha>,
        error: &SourceError,
        started: Instant,
    ) -> Outcome {
        match job::source_failure(entry, commit, error) {
            SourceDecision::Retry(reason) => {
                tracing::warn!(job_id = %job.envelope.job_id, %reason, "source unavailable; retrying later");
                Outcome::Retry(reason)
            }
            SourceDecision::Fail(message) => {
                tracing::warn!(job_id = %job.envelope.job_id, %error, "lint failed: source problem");
                crate::telemetry::lint_finished(
                    job.envelope.job_id,
                    &entry.image().to_string(),
                    "",
                    LintVerdict::Failed,
                    started.elapsed(),
                );
                Outcome::Ack(vec![job.envelope.follow_up(*message)])
            }
        }
    }
}

/// Runs the lint worker until `shutdown` is cancelled (then drains in-flight jobs).
pub async fn run(config: LintWorkerConfig, shutdown: CancellationToken) -> Result<(), WorkerError> {
    crate::telemetry::register_metrics();
    let cache = SourceCache::new(config.source.clone()).map_err(WorkerError::Source)?;
    let handler = Arc::new(LintHandler::new(cache, config.lint.clone())?);
    let topology = Topology::pipeline(&config.broker);
    let handle = move |job: Job| {
        let handler = Arc::clone(&handler);
        async move { handler.lint(&job).await }
    };
    Consumer::new(WORKER.into(), config.broker, topology, handle)
        .run(shutdown)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn defaults_load_unchanged_print_as_toml_and_use_the_lint_metrics_port() {
        slipway_common::process::assert_worker_config_defaults::<super::LintWorkerConfig>();
    }
}

//! The lint worker's decisions, free of I/O: which settings apply to an entry, what a lint of its
//! Dockerfile publishes (`lint.passed` or `lint.failed`), and what a source failure becomes (a
//! `lint.failed` users can act on, or a retry).

use serde::{Deserialize, Serialize};
use slipway_common::Message;
use slipway_common::index::Entry;
use slipway_common::message::{CommitSha, Level, LintFailed, LintFinding, LintPassed};
use slipway_source::SourceError;

use crate::lint::{PARSE_ERROR, SHELLCHECK_FAILED, Settings, ShellChecker, lint_with};
use crate::parser;
use crate::rules::{Failure, Severity};
use crate::shellcheck::ShellcheckLimits;

/// When to run ShellCheck over `RUN` scripts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShellcheckMode {
    /// When the `shellcheck` program is installed.
    #[default]
    Auto,
    /// Always; the worker refuses to start without it.
    Always,
    /// Never: DL rules only.
    Never,
}

/// The lint worker's own settings (`[lint]` in `/etc/slipway/lint.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LintJobSettings {
    /// The least serious level that fails a lint unless the entry sets its own
    /// (`lint.failure-threshold`). Default `error`: warnings are reported but do not stop a build.
    pub failure_threshold: Severity,
    /// Rule codes ignored for every entry (added to the entry's own `lint.ignored`).
    pub ignored: Vec<String>,
    /// Registries `FROM` may use (DL3026); empty allows any.
    pub trusted_registries: Vec<String>,
    /// When to run ShellCheck.
    pub shellcheck: ShellcheckMode,
    /// Largest Dockerfile accepted, in bytes; a bigger one fails the lint.
    pub max_dockerfile_bytes: u64,
    /// Wall-clock time one ShellCheck run (all `RUN`s of a Dockerfile) may take, in
    /// milliseconds; a run over it is killed and fails the lint with the reason. Default 20000.
    pub shellcheck_timeout_ms: u64,
    /// Memory (address space) one ShellCheck run may use, in MiB; a run over it stops and fails
    /// the lint with the reason. Default 512 (the corpus Dockerfiles need at most 21); at least 64.
    pub shellcheck_memory_mib: u64,
}

impl Default for LintJobSettings {
    fn default() -> LintJobSettings {
        LintJobSettings {
            failure_threshold: Severity::Error,
            ignored: Vec::new(),
            trusted_registries: Vec::new(),
            shellcheck: ShellcheckMode::Auto,
            max_dockerfile_bytes: 1024 * 1024,
            shellcheck_timeout_ms: 20_000,
            shellcheck_memory_mib: 512,
        }
    }
}

/// Least memory limit accepted: GHC's runtime needs some to start at all.
const MIN_SHELLCHECK_MEMORY_MIB: u64 = 64;

impl LintJobSettings {
    /// The limits of each ShellCheck run.
    pub fn shellcheck_limits(&self) -> ShellcheckLimits {
        ShellcheckLimits {
            time: std::time::Duration::from_millis(self.shellcheck_timeout_ms),
            memory_bytes: self.shellcheck_memory_mib.saturating_mul(1024 * 1024),
            ..ShellcheckLimits::default()
        }
    }

    /// Settings that would fail every lint are refused at startup, naming the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.shellcheck_timeout_ms == 0 {
            return Err("lint.shellcheck_timeout_ms must be at least 1, found 0".to_owned());
        }
        if self.shellcheck_memory_mib < MIN_SHELLCHECK_MEMORY_MIB {
            return Err(format!(
                "lint.shellcheck_memory_mib must be at least {MIN_SHELLCHECK_MEMORY_MIB} \
                 (ShellCheck cannot start with less), found {}",
                self.shellcheck_memory_mib
            ));
        }
        Ok(())
    }
}

/// The common wire level of a severity (`ignore` never reaches the wire).
fn level(severity: Severity) -> Level {
    match severity {
        Severity::Error => Level::Error,
        Severity::Warning => Level::Warning,
        Severity::Info => Level::Info,
        Severity::Style | Severity::Ignore => Level::Style,
    }
}

/// The severity of a wire level.
fn severity(level: Level) -> Severity {
    match level {
        Level::Error => Severity::Error,
        Level::Warning => Severity::Warning,
        Level::Info => Severity::Info,
        Level::Style => Severity::Style,
    }
}

/// The engine settings and failure threshold for `entry`: the worker's, then the entry's.
pub fn settings_for(entry: &Entry, worker: &LintJobSettings) -> (Settings, Severity) {
    let mut settings = Settings::default();
    settings.ignored.extend(worker.ignored.iter().cloned());
    settings.ignored.extend(entry.lint.ignored.iter().cloned());
    settings.rules.trusted_registries = worker.trusted_registries.clone();
    let threshold = entry
        .lint
        .failure_threshold
        .map(severity)
        .unwrap_or(worker.failure_threshold);
    (settings, threshold)
}

/// A finding as it travels on the wire.
pub fn finding(failure: &Failure) -> LintFinding {
    LintFinding {
        line: failure.line,
        column: failure.column,
        code: failure.code.clone(),
        level: level(failure.severity),
        message: failure.message.clone(),
    }
}

/// The outcome of linting `dockerfile` (bytes of `path` at `commit`) for `entry`: `lint.passed`
/// when no finding reaches the threshold and the file parses, `lint.failed` otherwise. Also
/// returns the findings, for metrics.
pub fn lint_dockerfile(
    entry: &Entry,
    commit: &CommitSha,
    path: &str,
    dockerfile: &[u8],
    worker: &LintJobSettings,
    shellcheck: Option<&dyn ShellChecker>,
) -> (Message, Vec<Failure>) {
    if dockerfile.len() as u64 > worker.max_dockerfile_bytes {
        let error = format!(
            "{path} at {} is {} bytes; the lint worker accepts Dockerfiles up to {} bytes (lint.max_dockerfile_bytes)",
            commit.as_str(),
            dockerfile.len(),
            worker.max_dockerfile_bytes
        );
        return (
            failed(entry, Some(commit.clone()), Vec::new(), Some(error)),
            Vec::new(),
        );
    }
    let (settings, threshold) = settings_for(entry, worker);
    let text = parser::decode(dockerfile);
    let failures = lint_with(&text, &settings, shellcheck);
    let findings: Vec<LintFinding> = failures.iter().map(finding).collect();
    let blocking: Vec<&Failure> = failures
        .iter()
        .filter(|f| {
            f.code == PARSE_ERROR.code
                || f.code == SHELLCHECK_FAILED.code
                || (f.severity <= threshold && f.severity != Severity::Ignore)
        })
        .collect();
    let message = if blocking.is_empty() {
        Message::LintPassed(LintPassed {
            entry: entry.clone(),
            commit: commit.clone(),
            findings,
        })
    } else {
        let first = blocking[0];
        let error = format!(
            "{path}: {} finding(s) at or above {} (first: line {} {} {}: {})",
            blocking.len(),
            threshold.as_str(),
            first.line,
            first.code,
            first.severity.as_str(),
            first.message
        );
        failed(entry, Some(commit.clone()), findings, Some(error))
    };
    (message, failures)
}

fn failed(
    entry: &Entry,
    commit: Option<CommitSha>,
    findings: Vec<LintFinding>,
    error: Option<String>,
) -> Message {
    Message::LintFailed(LintFailed {
        entry: entry.clone(),
        commit,
        findings,
        error,
    })
}

/// What a source failure turns into.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceDecision {
    /// Try the job again later (network trouble, a busy server).
    Retry(String),
    /// Publish this `lint.failed`: the repository, ref or path is wrong and time will not fix it.
    Fail(Box<Message>),
}

/// Decides what a failed fetch or read means for the job.
pub fn source_failure(
    entry: &Entry,
    commit: Option<CommitSha>,
    error: &SourceError,
) -> SourceDecision {
    if error.is_transient() {
        SourceDecision::Retry(format!("fetching {}: {error}", redacted_url(entry)))
    } else {
        SourceDecision::Fail(Box::new(failed(
            entry,
            commit,
            Vec::new(),
            Some(format!("cannot lint {}: {error}", entry.image())),
        )))
    }
}

fn redacted_url(entry: &Entry) -> String {
    slipway_common::index::validate::redact_credentials(&entry.git_url)
}

/// The path of the entry's Dockerfile inside the repository (`git-path` joined with `target-file`).
pub fn dockerfile_path(entry: &Entry) -> String {
    let base = entry.git_path.trim_matches('/');
    let file = entry.target_file.trim_start_matches("./");
    if base.is_empty() || base == "." {
        file.to_string()
    } else {
        format!("{base}/{file}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_common::index::test_support::sample_entry;
    use slipway_common::message::test_support::sample_commit;

    /// The sample entry with the default lint settings (the sample sets its own).
    fn plain_entry() -> Entry {
        Entry {
            lint: Default::default(),
            ..sample_entry()
        }
    }

    fn lint(text: &str, entry: &Entry) -> Message {
        lint_dockerfile(
            entry,
            &sample_commit(),
            "Dockerfile",
            text.as_bytes(),
            &LintJobSettings::default(),
            None,
        )
        .0
    }

    #[test]
    fn warnings_pass_by_default_and_carry_the_commit() {
        let message = lint(
            "FROM debian:12\nRUN apt-get update && apt-get install -y curl\n",
            &plain_entry(),
        );
        let Message::LintPassed(passed) = message else {
            panic!("{message:?}")
        };
        assert_eq!(passed.commit, sample_commit());
        assert!(
            passed
                .findings
                .iter()
                .any(|f| f.code == "DL3008" && f.level == Level::Warning)
        );
    }

    #[test]
    fn errors_fail_with_findings_and_a_summary() {
        let message = lint("FROM debian:12\nMAINTAINER me\n", &sample_entry());
        let Message::LintFailed(failed) = message else {
            panic!("{message:?}")
        };
        assert_eq!(failed.commit, Some(sample_commit()));
        assert_eq!(failed.findings[0].code, "DL4000");
        assert!(failed.error.unwrap().contains("line 2 DL4000 error"));
    }

    #[test]
    fn the_entry_threshold_and_ignores_apply() {
        let mut entry = plain_entry();
        entry.lint.failure_threshold = Some(Level::Warning);
        assert!(matches!(
            lint("FROM debian:12\nRUN apt-get install -y curl\n", &entry),
            Message::LintFailed(_)
        ));
        entry.lint.ignored = vec!["DL3008".into(), "DL3015".into()];
        assert!(matches!(
            lint("FROM debian:12\nRUN apt-get install -y curl\n", &entry),
            Message::LintPassed(_)
        ));
    }

    #[test]
    fn a_parse_error_always_fails() {
        let message = lint("FROM a:1\n{{ x }}\n", &sample_entry());
        let Message::LintFailed(failed) = message else {
            panic!("{message:?}")
        };
        assert_eq!(failed.findings[0].code, "DL1000");
    }

    #[test]
    fn oversized_dockerfiles_fail_with_the_limit_named() {
        let worker = LintJobSettings {
            max_dockerfile_bytes: 10,
            ..LintJobSettings::default()
        };
        let (message, _) = lint_dockerfile(
            &sample_entry(),
            &sample_commit(),
            "Dockerfile",
            b"FROM debian:12\n",
            &worker,
            None,
        );
        let Message::LintFailed(failed) = message else {
            panic!("{message:?}")
        };
        assert!(failed.error.unwrap().contains("up to 10 bytes"));
    }

    #[test]
    fn dockerfile_paths_join_git_path_and_target_file() {
        let mut entry = sample_entry();
        entry.git_path = "/".into();
        entry.target_file = "Dockerfile".into();
        assert_eq!(dockerfile_path(&entry), "Dockerfile");
        entry.git_path = "/images/web/".into();
        entry.target_file = "./Dockerfile.prod".into();
        assert_eq!(dockerfile_path(&entry), "images/web/Dockerfile.prod");
    }
}

//! Running git: no shell, a fixed prompt-free environment, a deadline after which the whole process
//! group is killed, capped output, an optional watcher that kills a fetch whose mirror outgrows its
//! limit, and stderr redacted before anyone sees it.

use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::Instant;
use tokio_util::io::SyncIoBridge;

use slipway_common::index::validate::Redactor;

use crate::error::SourceError;

/// URL schemes a remote may use, as `GIT_ALLOW_PROTOCOL` (scp-like `user@host:path` is git's
/// `ssh`; local paths are `file`): the schemes [`check_git_url`] accepts.
///
/// [`check_git_url`]: slipway_common::index::validate::check_git_url
const ALLOWED_PROTOCOLS: &str = "https:http:git:ssh:file";

/// How much of git's stderr is kept (the rest is read and dropped).
const STDERR_CAP: usize = 64 * 1024;
/// How often a fetch's mirror is measured against its size limit.
const WATCH_INTERVAL: Duration = Duration::from_millis(100);

/// Environment variables that could point git somewhere else, inject configuration or print
/// credentials (trace output), removed from every git process.
const SCRUBBED_ENV: [&str; 20] = [
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_SHALLOW_FILE",
    "GIT_REPLACE_REF_BASE",
    "GIT_NO_REPLACE_OBJECTS",
    "GIT_TRACE",
    "GIT_TRACE_PACKET",
    "GIT_TRACE_CURL",
    "GIT_CURL_VERBOSE",
    "GIT_TRACE2",
    "GIT_TRACE2_EVENT",
    "GIT_TRACE2_PERF",
];

/// Configuration given to every git process with `-c`: never garbage-collect or prune a mirror
/// behind our back (fetched commits are not reachable from any ref), and always keep fetched
/// objects as packs, which appear atomically, so a killed fetch never leaves a commit without its
/// tree.
const FIXED_CONFIG: [&str; 5] = [
    "gc.auto=0",
    "maintenance.auto=false",
    "transfer.unpackLimit=1",
    "fetch.unpackLimit=1",
    "init.defaultBranch=main",
];

/// A git command line being built: `git -c … <args>` in the cache directory, optionally on a
/// mirror.
#[derive(Debug)]
pub(crate) struct GitCommand {
    command: Command,
    /// The subcommand, for error messages.
    pub(crate) operation: &'static str,
}

impl GitCommand {
    /// `git <operation> …` run in `cwd`, on the bare repository `git_dir` when given.
    pub(crate) fn new(
        operation: &'static str,
        cwd: &Path,
        git_dir: Option<&Path>,
        extra_config: &[String],
    ) -> Self {
        let mut command = Command::new("git");
        for name in SCRUBBED_ENV {
            command.env_remove(name);
        }
        command
            .env_remove("LANGUAGE")
            .env("LC_ALL", "C")
            .env("GIT_TERMINAL_PROMPT", "0")
            // Set but empty: git then asks no askpass program at all (not even core.askPass or
            // SSH_ASKPASS), and with prompts disabled fails instead of waiting for a human.
            .env("GIT_ASKPASS", "")
            .env("SSH_ASKPASS", "")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_ALLOW_PROTOCOL", ALLOWED_PROTOCOLS)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own process group, so a timeout kills git's helpers (remote-https, ssh,
            // upload-pack, index-pack) too.
            .process_group(0);
        if let Some(git_dir) = git_dir {
            command.env("GIT_DIR", git_dir);
        }
        for setting in FIXED_CONFIG
            .iter()
            .copied()
            .chain(extra_config.iter().map(String::as_str))
        {
            command.arg("-c").arg(setting);
        }
        command.arg(operation);
        Self { command, operation }
    }

    /// Append arguments.
    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command.args(args);
        self
    }
}

/// Where a process's stdout goes.
pub(crate) enum Sink {
    /// Collected in memory; more than `cap` bytes is a [`SourceError::TooLarge`] about `what`.
    Collect {
        /// Most bytes accepted.
        cap: u64,
        /// What the output is, for the error.
        what: String,
        /// The limit named in the error.
        limit: u64,
    },
    /// Streamed into a blocking consumer (e.g. a tar unpacker) on the blocking thread pool.
    Stream(Box<dyn FnOnce(SyncIoBridge<ChildStdout>) -> Result<(), SourceError> + Send>),
}

/// A mirror directory whose size is watched while a fetch runs.
#[derive(Clone, Debug)]
pub(crate) struct SizeWatch {
    /// The mirror.
    pub(crate) dir: PathBuf,
    /// Largest size allowed.
    pub(crate) limit: u64,
}

/// Who is running git, for errors and redaction.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Call<'a> {
    /// The remote, redacted.
    pub(crate) url: &'a str,
    /// Redacts git's stderr.
    pub(crate) redactor: &'a Redactor,
    /// When the whole operation must have finished.
    pub(crate) deadline: Instant,
    /// The configured time limit, for the error.
    pub(crate) timeout_ms: u64,
}

impl Call<'_> {
    /// The timeout error for `operation`.
    pub(crate) fn timeout(&self, operation: &'static str) -> SourceError {
        SourceError::Timeout {
            operation,
            url: self.url.to_owned(),
            limit_ms: self.timeout_ms,
        }
    }
}

/// A finished git process.
#[derive(Debug)]
pub(crate) struct Output {
    /// Its exit status (never a signal: that is [`SourceError::Killed`]).
    pub(crate) status: ExitStatus,
    /// Its stdout, for [`Sink::Collect`].
    pub(crate) stdout: Vec<u8>,
    /// Its stderr, redacted and capped.
    pub(crate) stderr: String,
}

impl Output {
    /// Whether git exited with 0.
    pub(crate) fn success(&self) -> bool {
        self.status.success()
    }
}

/// A running child in its own process group; dropping it (timeout, cancelled future) kills the
/// whole group before the child itself is reaped, so the group id cannot have been reused.
struct Running {
    child: Child,
    group: Option<i32>,
}

impl Running {
    fn kill_group(&mut self) {
        if let Some(group) = self.group.take() {
            // SAFETY: kill(2) has no memory-safety preconditions. `group` is the process group
            // of our own child (created with process_group(0), so its id is the child's pid, > 1)
            // and the child has not been reaped yet, so the id still names that group.
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill_group();
    }
}

enum Ended {
    Finished {
        status: std::io::Result<ExitStatus>,
        stdout: Result<Vec<u8>, SourceError>,
        stderr: Vec<u8>,
    },
    TimedOut,
    TooLarge(u64),
}

/// Run `git`: feed `stdin`, send stdout to `sink`, keep stderr; all before `call.deadline`, and
/// with `watch` killing it when the mirror outgrows its limit. A non-zero exit is returned as an
/// [`Output`] for the caller to interpret; timeouts, signals, limits and I/O are errors.
pub(crate) async fn run(
    git: GitCommand,
    call: &Call<'_>,
    stdin: Option<Vec<u8>>,
    sink: Sink,
    watch: Option<SizeWatch>,
) -> Result<Output, SourceError> {
    let GitCommand {
        mut command,
        operation,
    } = git;
    if stdin.is_some() {
        command.stdin(Stdio::piped());
    }
    if Instant::now() >= call.deadline {
        return Err(call.timeout(git_operation(operation)));
    }
    let child = command
        .spawn()
        .map_err(|source| SourceError::Spawn { operation, source })?;
    let group = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .filter(|&id| id > 1);
    let mut running = Running { child, group };
    let limit = watch.as_ref().map_or(0, |watch| watch.limit);
    let stdin_pipe = running.child.stdin.take();
    let stdout_pipe = running.child.stdout.take();
    let stderr_pipe = running.child.stderr.take();

    let ended = {
        let child = &mut running.child;
        let work = async move {
            let feed = async move {
                if let (Some(mut pipe), Some(bytes)) = (stdin_pipe, stdin) {
                    // git may exit without reading everything (an error): not our failure.
                    let _ = pipe.write_all(&bytes).await;
                    let _ = pipe.shutdown().await;
                }
            };
            let out = consume_stdout(stdout_pipe, sink, call.url);
            let err = read_stderr(stderr_pipe);
            let ((), stdout, stderr) = tokio::join!(feed, out, err);
            let status = child.wait().await;
            Ended::Finished {
                status,
                stdout,
                stderr,
            }
        };
        let watcher = async move {
            match watch {
                Some(watch) => watch_size(watch).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = tokio::time::timeout_at(call.deadline, work) => {
                result.unwrap_or(Ended::TimedOut)
            }
            found = watcher => Ended::TooLarge(found),
        }
    };

    match ended {
        Ended::TimedOut => {
            running.kill_group();
            let _ = running.child.kill().await;
            Err(call.timeout(git_operation(operation)))
        }
        Ended::TooLarge(found) => {
            running.kill_group();
            let _ = running.child.kill().await;
            Err(SourceError::TooLarge {
                url: call.url.to_owned(),
                what: "the mirror".to_owned(),
                limit_bytes: limit,
                found_bytes: found,
            })
        }
        Ended::Finished {
            status,
            stdout,
            stderr,
        } => {
            // Reaped: the group id may be reused from now on.
            running.group = None;
            let status = status.map_err(|source| SourceError::Spawn { operation, source })?;
            let stderr = call.redactor.redact(&String::from_utf8_lossy(&stderr));
            let stdout = match stdout {
                // Our own verdicts (too large, bad path) win over git's reaction to them (EPIPE).
                Err(error) if !matches!(error, SourceError::Io { .. }) => return Err(error),
                other => other,
            };
            if let Some(signal) = status.signal() {
                return Err(stdout.err().unwrap_or(SourceError::Killed {
                    operation,
                    url: call.url.to_owned(),
                    signal,
                }));
            }
            if !status.success() {
                return Ok(Output {
                    status,
                    stdout: Vec::new(),
                    stderr,
                });
            }
            Ok(Output {
                status,
                stdout: stdout?,
                stderr,
            })
        }
    }
}

/// "git fetch" for "fetch": how timeouts name the process.
fn git_operation(operation: &'static str) -> &'static str {
    match operation {
        "fetch" => "git fetch",
        "ls-remote" => "git ls-remote",
        "cat-file" => "git cat-file",
        "archive" => "git archive",
        "init" => "git init",
        "rev-parse" => "git rev-parse",
        _ => "git",
    }
}

async fn consume_stdout(
    pipe: Option<ChildStdout>,
    sink: Sink,
    url: &str,
) -> Result<Vec<u8>, SourceError> {
    let Some(pipe) = pipe else {
        return Ok(Vec::new());
    };
    match sink {
        Sink::Collect { cap, what, limit } => {
            let mut bytes = Vec::new();
            let read = pipe
                .take(cap.saturating_add(1))
                .read_to_end(&mut bytes)
                .await
                .map_err(|source| SourceError::io("git stdout", source))?;
            let read = u64::try_from(read).unwrap_or(u64::MAX);
            if read > cap {
                // Dropping the pipe here makes git fail with EPIPE instead of blocking.
                return Err(SourceError::TooLarge {
                    url: url.to_owned(),
                    what,
                    limit_bytes: limit,
                    found_bytes: read,
                });
            }
            Ok(bytes)
        }
        Sink::Stream(consume) => {
            let bridge = SyncIoBridge::new(pipe);
            tokio::task::spawn_blocking(move || consume(bridge))
                .await
                .map_err(|join| SourceError::io("git stdout", std::io::Error::other(join)))?
                .map(|()| Vec::new())
        }
    }
}

/// Read all of stderr (so git never blocks on it), keeping the first [`STDERR_CAP`] bytes.
async fn read_stderr<R: AsyncRead + Unpin>(pipe: Option<R>) -> Vec<u8> {
    let Some(mut pipe) = pipe else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = STDERR_CAP.saturating_sub(kept.len()).min(n);
                kept.extend_from_slice(&chunk[..room]);
            }
        }
    }
}

/// Resolves with the size of `watch.dir` once it exceeds `watch.limit`.
async fn watch_size(watch: SizeWatch) -> u64 {
    let mut interval = tokio::time::interval(WATCH_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let dir = watch.dir.clone();
        if let Ok(Ok(size)) = tokio::task::spawn_blocking(move || dir_size(&dir)).await
            && size > watch.limit
        {
            return size;
        }
    }
}

/// Total length of the regular files under `dir` (not following symlinks); files that vanish
/// while it is walked (a fetch renaming its temporary pack) are skipped.
pub(crate) fn dir_size(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0u64;
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        for entry in entries {
            let Ok(entry) = entry else { continue };
            let Ok(metadata) = entry.path().symlink_metadata() else {
                continue;
            };
            if metadata.is_dir() {
                pending.push(entry.path());
            } else if metadata.is_file() {
                total = total.saturating_add(metadata.len());
            }
        }
    }
    Ok(total)
}

//! The ShellCheck adapter: runs the `shellcheck` program over `RUN` scripts the way hadolint runs
//! its built-in ShellCheck (a shebang naming the shell, `export` lines for the variables in scope,
//! SC2187/SC1090/SC1091 excluded), and turns its JSON into failures at the `RUN` line.
//!
//! This is the one part of the linter that does I/O. All scripts of one Dockerfile go to a single
//! `shellcheck` process, as separate files in a private temporary directory.
//!
//! Architecture invariant — *a ShellCheck run is bounded and dies with its parent*: a hostile
//! `RUN` (10,000 nested parentheses in 20 KB) grew ShellCheck to 3.4 GB and more than 30 s.
//! Each run therefore gets [`ShellcheckLimits`]: a wall-clock time limit enforced here (the
//! process group is killed at the deadline) with `RLIMIT_CPU` behind it, an address-space limit
//! (`RLIMIT_AS`; GHC's runtime then stops with "out of memory") and an output limit
//! (`RLIMIT_FSIZE` on the files its output goes to). It runs in its own process group with
//! `PR_SET_PDEATHSIG = SIGKILL`, so a worker killed with `kill -9` takes its ShellCheck with
//! it. A run that fails for any reason is a [`ShellcheckError`], which the engine reports as an
//! error finding (`SC0000`, never ignored) that fails the lint: a Dockerfile that cannot be
//! checked does not pass.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::lint::{ShellChecker, ShellScript};
use crate::rules::{Failure, Severity};

/// Codes hadolint never reports from ShellCheck.
const EXCLUDED: &str = "2187,1090,1091";

/// Exit status of a GHC program whose heap could not grow ("out of memory").
const GHC_OUT_OF_MEMORY: i32 = 251;

/// Most bytes of ShellCheck's stderr kept for an error message.
const STDERR_KEPT: usize = 2048;

/// What one `shellcheck` run may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShellcheckLimits {
    /// Wall-clock time for the whole run (all scripts of one Dockerfile).
    pub time: Duration,
    /// Address space (`RLIMIT_AS`), in bytes.
    pub memory_bytes: u64,
    /// Largest output (its JSON findings), in bytes (`RLIMIT_FSIZE`).
    pub output_bytes: u64,
}

impl ShellcheckLimits {
    /// Default time limit: 20 s. `slipway lint` checks the 416 corpus Dockerfiles with
    /// ShellCheck 0.9 in 23 s (about 55 ms each on a busy 2-core machine), so 20 s leaves a wide
    /// margin for a slow node and still stops a runaway within one job's time.
    pub const DEFAULT_TIME: Duration = Duration::from_secs(20);
    /// Default memory limit: 512 MiB (checking each of the 416 corpus Dockerfiles takes at most
    /// 21 MiB resident; the hostile input of issue 13 reaches the limit in 1 to 7 s).
    pub const DEFAULT_MEMORY_BYTES: u64 = 512 * 1024 * 1024;
    /// Default output limit: 16 MiB of JSON.
    pub const DEFAULT_OUTPUT_BYTES: u64 = 16 * 1024 * 1024;
}

impl Default for ShellcheckLimits {
    fn default() -> Self {
        Self {
            time: Self::DEFAULT_TIME,
            memory_bytes: Self::DEFAULT_MEMORY_BYTES,
            output_bytes: Self::DEFAULT_OUTPUT_BYTES,
        }
    }
}

/// Runs the `shellcheck` executable, within [`ShellcheckLimits`].
#[derive(Debug, Clone)]
pub struct ShellcheckProgram {
    program: PathBuf,
    limits: ShellcheckLimits,
}

/// Why ShellCheck could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ShellcheckError {
    /// The program is not installed (or not on `PATH`).
    #[error("shellcheck is not installed (looked for '{0}' on PATH)")]
    NotFound(String),
    /// It did not finish within its time limit and was killed.
    #[error(
        "shellcheck did not finish within its time limit of {}s and was stopped; simplify the \
         RUN scripts (deeply nested or very long commands) or raise the limit",
        limit.as_secs_f64()
    )]
    TimedOut {
        /// The time limit.
        limit: Duration,
    },
    /// It ran out of its memory limit.
    #[error(
        "shellcheck ran out of its memory limit of {} MiB and was stopped; simplify the RUN \
         scripts (deeply nested or very long commands) or raise the limit",
        limit_bytes / (1024 * 1024)
    )]
    OutOfMemory {
        /// The memory limit, in bytes.
        limit_bytes: u64,
    },
    /// It wrote more output than allowed.
    #[error("shellcheck wrote more than {limit_bytes} bytes of findings and was stopped")]
    OutputTooLarge {
        /// The output limit, in bytes.
        limit_bytes: u64,
    },
    /// It ran but failed, or its output was not what was expected.
    #[error("shellcheck failed: {0}")]
    Failed(String),
}

impl ShellcheckProgram {
    /// Finds `shellcheck` on `PATH` (or at `program` if it contains a `/`), with the default
    /// limits.
    pub fn find(program: &str) -> Result<ShellcheckProgram, ShellcheckError> {
        let candidate = Path::new(program);
        let found = if program.contains('/') {
            candidate.is_file().then(|| candidate.to_path_buf())
        } else {
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path)
                .map(|dir| dir.join(program))
                .find(|p| p.is_file())
        };
        found
            .map(|program| ShellcheckProgram {
                program,
                limits: ShellcheckLimits::default(),
            })
            .ok_or_else(|| ShellcheckError::NotFound(program.to_string()))
    }

    /// The same program with other limits.
    pub fn with_limits(self, limits: ShellcheckLimits) -> ShellcheckProgram {
        ShellcheckProgram { limits, ..self }
    }

    /// Its limits.
    pub fn limits(&self) -> ShellcheckLimits {
        self.limits
    }

    /// Checks several scripts with one `shellcheck` process.
    pub fn check_all(&self, scripts: &[ShellScript]) -> Result<Vec<Failure>, ShellcheckError> {
        Ok(self.check_each(scripts)?.into_iter().flatten().collect())
    }

    /// Checks several scripts with one `shellcheck` process: the findings of each script, in
    /// order, positioned at its line.
    pub fn check_each(
        &self,
        scripts: &[ShellScript],
    ) -> Result<Vec<Vec<Failure>>, ShellcheckError> {
        if scripts.is_empty() {
            return Ok(Vec::new());
        }
        let dir = TempDir::new()
            .map_err(|e| ShellcheckError::Failed(format!("temporary directory: {e}")))?;
        let mut files = Vec::new();
        for (index, script) in scripts.iter().enumerate() {
            let path = dir.0.join(format!("run{index}.sh"));
            std::fs::write(&path, hadolint_script(script))
                .map_err(|e| ShellcheckError::Failed(format!("writing {}: {e}", path.display())))?;
            files.push(path);
        }
        let (stdout_path, stderr_path) = (dir.0.join("stdout.json"), dir.0.join("stderr.txt"));
        let create = |path: &Path| {
            File::create(path)
                .map_err(|e| ShellcheckError::Failed(format!("creating {}: {e}", path.display())))
        };
        let (stdout, stderr) = (create(&stdout_path)?, create(&stderr_path)?);
        let mut command = Command::new(&self.program);
        command
            .args([
                "--format=json1",
                "--severity=style",
                "--exclude",
                EXCLUDED,
                "--",
            ])
            .args(&files)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0);
        confine(&mut command, &self.limits);
        let child = command.spawn().map_err(|e| {
            ShellcheckError::Failed(format!("running {}: {e}", self.program.display()))
        })?;
        let status = wait_within(child, self.limits.time)?;
        let stderr = read_bounded(&stderr_path, STDERR_KEPT as u64);
        classify(status, &stderr, &self.limits)?;
        let output = read_bounded(&stdout_path, self.limits.output_bytes);
        parse_report(&output, &files, scripts)
    }
}

impl ShellChecker for ShellcheckProgram {
    fn check(&self, scripts: &[ShellScript]) -> Result<Vec<Failure>, String> {
        self.check_all(scripts).map_err(|e| e.to_string())
    }
}

/// Failures from ShellCheck's `json1` output, for each script in order, positioned at the `RUN`
/// line of their script.
fn parse_report(
    output: &[u8],
    files: &[PathBuf],
    scripts: &[ShellScript],
) -> Result<Vec<Vec<Failure>>, ShellcheckError> {
    let report: serde_json::Value = serde_json::from_slice(output)
        .map_err(|e| ShellcheckError::Failed(format!("unreadable JSON output: {e}")))?;
    let mut failures = vec![Vec::new(); scripts.len()];
    for comment in report["comments"].as_array().into_iter().flatten() {
        let Some(file) = comment["file"].as_str() else {
            continue;
        };
        let Some(index) = files.iter().position(|f| f.to_str() == Some(file)) else {
            continue;
        };
        let Some(code) = comment["code"].as_u64() else {
            continue;
        };
        let severity = match comment["level"].as_str() {
            Some("warning") => Severity::Warning,
            Some("info") => Severity::Info,
            Some("style") => Severity::Style,
            _ => Severity::Error,
        };
        failures[index].push(Failure {
            code: format!("SC{code}"),
            severity,
            message: comment["message"].as_str().unwrap_or_default().to_string(),
            line: scripts[index].line,
            column: 1,
        });
    }
    Ok(failures)
}

/// What a finished run's status and stderr mean: `Ok` when it checked the scripts (exit 0, or 1
/// for "found something").
fn classify(
    status: ExitStatus,
    stderr: &[u8],
    limits: &ShellcheckLimits,
) -> Result<(), ShellcheckError> {
    let said = String::from_utf8_lossy(stderr);
    let said = said.trim();
    match (status.code(), status.signal()) {
        (Some(0 | 1), _) => Ok(()),
        (Some(GHC_OUT_OF_MEMORY), _) => Err(ShellcheckError::OutOfMemory {
            limit_bytes: limits.memory_bytes,
        }),
        _ if said.contains("out of memory") || said.contains("Heap exhausted") => {
            Err(ShellcheckError::OutOfMemory {
                limit_bytes: limits.memory_bytes,
            })
        }
        (_, Some(libc::SIGXCPU | libc::SIGKILL)) => {
            Err(ShellcheckError::TimedOut { limit: limits.time })
        }
        (_, Some(libc::SIGXFSZ)) => Err(ShellcheckError::OutputTooLarge {
            limit_bytes: limits.output_bytes,
        }),
        (_, Some(signal)) => Err(ShellcheckError::Failed(format!(
            "killed by signal {signal}{}",
            if said.is_empty() {
                String::new()
            } else {
                format!(": {said}")
            }
        ))),
        (Some(code), None) => Err(ShellcheckError::Failed(format!(
            "exit status {code}: {}",
            if said.is_empty() { "no message" } else { said }
        ))),
        (None, None) => Err(ShellcheckError::Failed(format!("ended with {status}"))),
    }
}

/// Sets up `command`'s child to die with this thread and to run within `limits`.
fn confine(command: &mut Command, limits: &ShellcheckLimits) {
    let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(libc::pid_t::MAX);
    // Whole seconds of CPU, rounded up, then one more: the wall-clock limit normally fires first;
    // RLIMIT_CPU is the backstop that needs no parent at all.
    let cpu_seconds = limits.time.as_secs() + 2;
    let (memory, output) = (limits.memory_bytes, limits.output_bytes);
    let (death_signal, unused): (libc::c_ulong, libc::c_ulong) =
        (libc::SIGKILL.unsigned_abs().into(), 0);
    let hook = move || {
        // SAFETY: (every call below) between fork and exec only async-signal-safe functions
        // may run; prctl(2), getppid(2), setrlimit(2) and _exit(2) are system calls that take
        // plain values (or a pointer to a local `rlimit`) and allocate nothing.
        unsafe {
            // SIGKILL when the thread that spawned us dies (the worker killed with -9 included;
            // that thread waits for us, so it does not exit first in normal operation).
            if libc::prctl(libc::PR_SET_PDEATHSIG, death_signal, unused, unused, unused) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died before prctl took effect: nobody would wait for us.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            for (resource, soft, hard) in [
                (libc::RLIMIT_AS, memory, memory),
                (libc::RLIMIT_CPU, cpu_seconds, cpu_seconds + 1),
                (libc::RLIMIT_FSIZE, output, output),
                (libc::RLIMIT_CORE, 0, 0),
            ] {
                let limit = libc::rlimit {
                    rlim_cur: soft,
                    rlim_max: hard,
                };
                if libc::setrlimit(resource, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
        }
        Ok(())
    };
    // SAFETY: the hook only makes async-signal-safe system calls (see above) and touches no
    // memory shared with the parent.
    unsafe {
        command.pre_exec(hook);
    }
}

/// Waits for `child` (the leader of its own process group) for at most `limit`, then kills the
/// group; returns its exit status, or [`ShellcheckError::TimedOut`].
fn wait_within(mut child: Child, limit: Duration) -> Result<ExitStatus, ShellcheckError> {
    let pid = libc::pid_t::try_from(child.id()).unwrap_or(0);
    let exited = match pidfd(pid) {
        Ok(fd) => wait_readable(&fd, Instant::now() + limit),
        Err(error) => {
            kill_group(pid);
            let _ = child.wait();
            return Err(ShellcheckError::Failed(format!(
                "cannot watch shellcheck (pidfd_open needs Linux 5.3 or later): {error}"
            )));
        }
    };
    // Exited or not, the group goes now: nothing of it may outlive the run. The leader is not
    // reaped yet, so its pid still names this group.
    kill_group(pid);
    let status = child
        .wait()
        .map_err(|e| ShellcheckError::Failed(format!("waiting for shellcheck: {e}")))?;
    if exited {
        Ok(status)
    } else {
        Err(ShellcheckError::TimedOut { limit })
    }
}

/// A pidfd of `pid` (readable once it has exited).
fn pidfd(pid: libc::pid_t) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| std::io::Error::other("pidfd out of range"))?;
    // SAFETY: `fd` was just returned by pidfd_open and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether `fd` became readable (the process exited) before `deadline`.
fn wait_readable(fd: &OwnedFd, deadline: Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut poll = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        // SAFETY: `poll` is one valid pollfd that lives across the call.
        let ready = unsafe { libc::poll(&mut poll, 1, millis) };
        if ready > 0 {
            return true;
        }
        if ready < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return false;
        }
    }
}

/// SIGKILL to the process group `group` (our unreaped child's pid).
fn kill_group(group: libc::pid_t) {
    if group > 1 {
        // SAFETY: kill(2) has no memory-safety preconditions; `group` is the process group our
        // child leads (process_group(0)) and the child is not reaped yet.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
    }
}

/// At most `limit` bytes of `path` (empty when it cannot be read).
fn read_bounded(path: &Path, limit: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Ok(file) = File::open(path) {
        let _ = file.take(limit).read_to_end(&mut bytes);
    }
    bytes
}

/// The text hadolint gives ShellCheck: `#!<shell>`, an `export V=1` line per variable, the script.
pub fn hadolint_script(script: &ShellScript) -> String {
    let shell = script.shell.split_whitespace().next().unwrap_or("/bin/sh");
    let mut text = format!("#!{shell}\n");
    for variable in &script.variables {
        text.push_str(&format!("export {variable}=1\n"));
    }
    text.push_str(&script.script);
    text.push('\n');
    text
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "slipway-shellcheck-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    fn signalled(signal: i32) -> ExitStatus {
        ExitStatus::from_raw(signal)
    }

    #[test]
    fn exit_statuses_say_why_shellcheck_failed() {
        let limits = ShellcheckLimits::default();
        assert!(classify(exited(0), b"", &limits).is_ok());
        assert!(classify(exited(1), b"", &limits).is_ok(), "1 = findings");
        let memory = classify(exited(251), b"shellcheck: out of memory\n", &limits).unwrap_err();
        assert!(
            memory.to_string().contains("memory limit of 512 MiB"),
            "{memory}"
        );
        assert!(matches!(
            classify(exited(2), b"shellcheck: Heap exhausted", &limits),
            Err(ShellcheckError::OutOfMemory { .. })
        ));
        let time = classify(signalled(libc::SIGXCPU), b"", &limits).unwrap_err();
        assert!(time.to_string().contains("time limit of 20s"), "{time}");
        assert!(matches!(
            classify(signalled(libc::SIGXFSZ), b"", &limits),
            Err(ShellcheckError::OutputTooLarge { .. })
        ));
        let other = classify(exited(3), b"  openBinaryFile: does not exist\n", &limits);
        assert_eq!(
            other.unwrap_err().to_string(),
            "shellcheck failed: exit status 3: openBinaryFile: does not exist"
        );
    }
}

//! The driver: runs each target's loop in a child process (this same program with `--child`),
//! watches its progress lines, and tells a normal end from a death (signal or failed exit: an
//! abort, stack overflow or allocation beyond the memory limit) and from a hang (no progress for
//! `hang` seconds: the child is killed). A dead or killed child's last input is read from its
//! pending file and saved under the crash directory, and a new child goes on with the next seed
//! until the target's time is up. Peak RSS is the child's own, from `wait4`.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::child::{Report, read_pending, save_crash};
use crate::targets::Target;

/// A target's child is started again at most this many times after dying, per run.
const MAX_RESTARTS: u32 = 50;
/// Saved crashes listed under the table per target (all are saved).
const MAX_LISTED: usize = 5;

/// How a run is done.
#[derive(Clone, Debug)]
pub struct DriverOptions {
    /// Fuzzing time per target.
    pub duration: Duration,
    /// The random seed; a restart after a death uses the next ones.
    pub seed: u64,
    /// The children's address-space limit in MiB (0: none).
    pub memory_mb: u64,
    /// A child with no progress for this long is killed and the input counted as a hang.
    pub hang: Duration,
    /// Crashing inputs go to `<crash_dir>/<target>/`.
    pub crash_dir: PathBuf,
    /// The program to start as the child (this one).
    pub program: PathBuf,
    /// A directory for the children's pending-input and stderr files.
    pub scratch: PathBuf,
}

/// What a target's run found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TargetResult {
    /// The target.
    pub name: String,
    /// Inputs run.
    pub execs: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Panics caught in the children.
    pub panics: u64,
    /// Children that died (signal or failed exit).
    pub aborts: u64,
    /// Children killed for making no progress.
    pub hangs: u64,
    /// The largest peak RSS of its children, in KiB.
    pub peak_rss_kib: u64,
    /// The last child's corpus size.
    pub corpus: u64,
    /// Each saved crash: file and what happened.
    pub crashes: Vec<(String, String)>,
}

impl TargetResult {
    /// Whether the run found anything.
    pub fn found_something(&self) -> bool {
        self.panics + self.aborts + self.hangs > 0
    }
}

/// How a child ended.
enum Ending {
    /// It reported `done` and exited with 0.
    Finished,
    /// It was killed for making no progress.
    Hung,
    /// It died: the description (signal or exit status).
    Died(String),
}

/// Runs `target` for the options' duration, restarting its child after each death.
pub fn run_target(target: &Target, options: &DriverOptions) -> std::io::Result<TargetResult> {
    std::fs::create_dir_all(&options.scratch)?;
    let pending = options
        .scratch
        .join(format!("{}-{}.pending", target.name, std::process::id()));
    let stderr_path =
        options
            .scratch
            .join(format!("{}-{}.stderr", target.name, std::process::id()));
    let crash_dir = options.crash_dir.join(target.name);
    let start = Instant::now();
    let deadline = start + options.duration;
    let mut result = TargetResult {
        name: target.name.to_owned(),
        ..TargetResult::default()
    };
    for restart in 0..=MAX_RESTARTS {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let _ = std::fs::remove_file(&pending);
        let stderr = std::fs::File::create(&stderr_path)?;
        let seed = options.seed.wrapping_add(u64::from(restart));
        let mut child = Command::new(&options.program)
            .arg(target.name)
            .arg("--child")
            .args(["--child-millis", &(deadline - now).as_millis().to_string()])
            .args(["--seed", &seed.to_string()])
            .args(["--memory-mb", &options.memory_mb.to_string()])
            .arg("--crash-dir")
            .arg(&options.crash_dir)
            .arg("--pending")
            .arg(&pending)
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()?;
        let pid = child.id();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("the child's stdout was not captured"))?;
        let (lines, received) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut last, mut done, mut hung) = ((0, 0, 0), false, false);
        loop {
            match received.recv_timeout(options.hang) {
                Ok(line) => match Report::parse(&line) {
                    Some(Report::Progress {
                        execs,
                        panics,
                        corpus,
                    }) => last = (execs, panics, corpus),
                    Some(Report::Panic { file, message }) => result.crashes.push((file, message)),
                    Some(Report::Done) => done = true,
                    None => {}
                },
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    hung = true;
                    // Killing a child that exited meanwhile fails harmlessly; wait4 reaps it.
                    let _ = child.kill();
                    break;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let (status, rss_kib) = wait_with_usage(pid)?;
        let _ = reader.join();
        result.execs += last.0;
        result.panics += last.1;
        result.corpus = last.2;
        result.peak_rss_kib = result.peak_rss_kib.max(rss_kib);
        let ending = if hung {
            Ending::Hung
        } else if done && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            Ending::Finished
        } else {
            Ending::Died(describe(status))
        };
        let (kind, what) = match ending {
            Ending::Finished => break,
            Ending::Hung => {
                result.hangs += 1;
                (
                    "hang",
                    format!("no progress for {} s: killed", options.hang.as_secs_f64()),
                )
            }
            Ending::Died(how) => {
                result.aborts += 1;
                (
                    "abort",
                    format!("{how}; stderr ends with: {}", tail(&stderr_path)),
                )
            }
        };
        let what = format!("{what} (seed {seed}, restart {restart})");
        match read_pending(&pending) {
            Some(input) => {
                let file = save_crash(&crash_dir, kind, &input, &what)?;
                result.crashes.push((file.display().to_string(), what));
            }
            None => result.crashes.push(("(no pending input)".to_owned(), what)),
        }
    }
    result.elapsed = start.elapsed();
    let _ = std::fs::remove_file(&pending);
    let _ = std::fs::remove_file(&stderr_path);
    Ok(result)
}

/// Waits for child `pid`, returning its wait status and its peak RSS in KiB.
fn wait_with_usage(pid: u32) -> std::io::Result<(i32, u64)> {
    let pid = libc::pid_t::try_from(pid).map_err(std::io::Error::other)?;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data, for which all-zero bytes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: wait4 writes only to the two out-parameters, which are valid and live across
        // the call; `pid` is our own unreaped child.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc == pid {
            let rss = u64::try_from(usage.ru_maxrss).unwrap_or(0);
            return Ok((status, rss));
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// A wait status in words.
fn describe(status: i32) -> String {
    if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        let name = match signal {
            libc::SIGABRT => "SIGABRT: abort, stack overflow or allocation failure",
            libc::SIGSEGV => "SIGSEGV",
            libc::SIGBUS => "SIGBUS",
            libc::SIGKILL => "SIGKILL",
            libc::SIGILL => "SIGILL",
            _ => "",
        };
        format!("killed by signal {signal} ({name})")
    } else if libc::WIFEXITED(status) {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    } else {
        format!("ended with wait status {status:#x}")
    }
}

/// What a dead child said last: the line of its stderr (the last 64 KiB) that names the cause
/// (a failed allocation, a stack overflow, a panic, a fatal runtime error), else its last line.
fn tail(path: &Path) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return "(no stderr)".to_owned();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 << 10)));
    let mut bytes = Vec::new();
    let _ = file.take(64 << 10).read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let causes = [
        "memory allocation of",
        "has overflowed its stack",
        "panicked at",
        "fatal runtime error",
    ];
    let line = text
        .lines()
        .find(|line| causes.iter().any(|cause| line.contains(cause)))
        .or_else(|| text.lines().rev().find(|line| !line.trim().is_empty()))
        .unwrap_or("(nothing)");
    line.chars().take(300).collect()
}

/// The results as a table, then the saved crashes.
pub fn table(results: &[TargetResult], memory_mb: u64) -> String {
    let mut out = format!(
        "{:<14} {:>10} {:>9} {:>6} {:>6} {:>5} {:>9} {:>6}\n",
        "target", "execs", "execs/s", "panics", "aborts", "hangs", "peak RSS", "corpus"
    );
    for r in results {
        let rate = r.execs as f64 / r.elapsed.as_secs_f64().max(1e-9);
        out.push_str(&format!(
            "{:<14} {:>10} {:>9.0} {:>6} {:>6} {:>5} {:>5.1} MiB {:>6}\n",
            r.name,
            r.execs,
            rate,
            r.panics,
            r.aborts,
            r.hangs,
            r.peak_rss_kib as f64 / 1024.0,
            r.corpus
        ));
    }
    let limit = if memory_mb == 0 {
        "none".to_owned()
    } else {
        format!("{memory_mb} MiB")
    };
    out.push_str(&format!("address-space limit per child: {limit}\n"));
    for r in results {
        for (file, what) in r.crashes.iter().take(MAX_LISTED) {
            out.push_str(&format!("{}: {file}: {what}\n", r.name));
        }
        if r.crashes.len() > MAX_LISTED {
            out.push_str(&format!(
                "{}: … and {} more crashes saved beside them\n",
                r.name,
                r.crashes.len() - MAX_LISTED
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_described() {
        // Wait statuses as Linux encodes them: signal in the low 7 bits, exit code above.
        assert!(describe(6).starts_with("killed by signal 6 (SIGABRT"));
        assert_eq!(describe(3 << 8), "exited with status 3");
    }

    #[test]
    fn the_table_has_a_row_per_target_and_lists_crashes() {
        let results = [TargetResult {
            name: "rpm-ndb".to_owned(),
            execs: 1000,
            elapsed: Duration::from_secs(2),
            panics: 1,
            peak_rss_kib: 2048,
            corpus: 17,
            crashes: vec![("crashes/rpm-ndb/panic-1.bin".to_owned(), "boom".to_owned())],
            ..TargetResult::default()
        }];
        let table = table(&results, 1024);
        let row = table.lines().nth(1).expect("a row");
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells,
            ["rpm-ndb", "1000", "500", "1", "0", "0", "2.0", "MiB", "17"]
        );
        assert!(table.contains("limit per child: 1024 MiB"), "{table}");
        assert!(
            table.contains("rpm-ndb: crashes/rpm-ndb/panic-1.bin: boom"),
            "{table}"
        );
    }
}

//! The fuzzing loop, run in a child process per target: limits on itself, then inputs mutated
//! from the corpus until the deadline. Before each input runs, it is written to the pending file,
//! so when the process dies (abort, stack overflow, out of memory, killed for hanging) the driver
//! still has the input that did it. Panics are caught here: the input is saved under the crash
//! directory once per place that panics (file, line and column). Progress goes to
//! stdout as lines the driver reads ([`Report`]).

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::mutate::{Rng, fnv1a, mutate};
use crate::seeds::{SeedRoots, load};
use crate::targets::Target;

/// At most this many distinct panics are saved per run of a target.
const MAX_SAVED_PANICS: usize = 20;
/// At most this many corpus entries (seeds and inputs with a new outcome)…
const MAX_CORPUS: usize = 4096;
/// …and at most this many bytes in them, so the corpus stays well under any memory limit.
const MAX_CORPUS_BYTES: usize = 64 << 20;
/// At most this many distinct outcomes are remembered (16 MiB or so): past it an outcome counts as
/// seen. Unbounded, the set reached 2^25 buckets (a 288 MiB allocation) in ten minutes on
/// targets whose errors vary a lot (rpm-sqlite, apt-release), long after the corpus was full.
const MAX_OUTCOMES: usize = 1 << 20;
/// How often the child reports progress (the driver's hang detection counts on it).
const REPORT_EVERY: Duration = Duration::from_millis(250);

/// What the child is asked to do.
#[derive(Clone, Debug)]
pub struct ChildPlan {
    /// How long to fuzz.
    pub duration: Duration,
    /// The random seed.
    pub seed: u64,
    /// Address-space limit in bytes (`RLIMIT_AS`), 0 for none.
    pub memory_limit: u64,
    /// Where crashing inputs go (`<dir>/<target>/`).
    pub crash_dir: PathBuf,
    /// The file each input is written to before it runs.
    pub pending: PathBuf,
}

/// A line of the child's progress protocol on stdout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// Totals so far: executions, caught panics, corpus size.
    Progress {
        /// Inputs run.
        execs: u64,
        /// Panics caught.
        panics: u64,
        /// Corpus entries.
        corpus: u64,
    },
    /// A new distinct panic, saved at `file`.
    Panic {
        /// The saved input.
        file: String,
        /// The panic's message and location.
        message: String,
    },
    /// The run ended normally.
    Done,
}

impl Report {
    /// The line for this report (no newline).
    pub fn to_line(&self) -> String {
        match self {
            Report::Progress {
                execs,
                panics,
                corpus,
            } => format!("progress {execs} {panics} {corpus}"),
            Report::Panic { file, message } => {
                format!("panic {file}\t{}", message.replace(['\n', '\t'], " "))
            }
            Report::Done => "done".to_owned(),
        }
    }

    /// Reads a line of the protocol; `None` for anything else.
    pub fn parse(line: &str) -> Option<Report> {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "progress" => {
                let mut numbers = rest.split(' ').map(str::parse::<u64>);
                let (Some(Ok(execs)), Some(Ok(panics)), Some(Ok(corpus))) =
                    (numbers.next(), numbers.next(), numbers.next())
                else {
                    return None;
                };
                Some(Report::Progress {
                    execs,
                    panics,
                    corpus,
                })
            }
            "panic" => {
                let (file, message) = rest.split_once('\t')?;
                Some(Report::Panic {
                    file: file.to_owned(),
                    message: message.to_owned(),
                })
            }
            "done" => Some(Report::Done),
            _ => None,
        }
    }
}

/// The last panic's location and message, set by the quiet hook.
static LAST_PANIC: Mutex<Option<(String, String)>> = Mutex::new(None);

/// Sets `RLIMIT_AS` (when `bytes` > 0) and turns core dumps off, for this process.
pub fn limit_self(bytes: u64) -> std::io::Result<()> {
    let set = |resource, value: u64| {
        let limit = libc::rlimit {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: setrlimit reads the struct we pass by pointer and nothing else; `limit` lives
        // across the call.
        let rc = unsafe { libc::setrlimit(resource, &limit) };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    // A dying child must not write a core file of up to the memory limit per crash.
    set(libc::RLIMIT_CORE, 0)?;
    if bytes > 0 {
        set(libc::RLIMIT_AS, bytes)?;
    }
    Ok(())
}

/// Runs the fuzzing loop of `target` under `plan`, writing [`Report`] lines to `out`.
pub fn run(
    target: &Target,
    plan: &ChildPlan,
    roots: &SeedRoots,
    out: &mut impl Write,
) -> std::io::Result<()> {
    limit_self(plan.memory_limit)?;
    panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(non-text panic)".to_owned());
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = Some((location, message));
        }
    }));

    let pending = File::create(&plan.pending)?;
    let crash_dir = plan.crash_dir.join(target.name);
    let mut corpus: Vec<Vec<u8>> = load(target, roots).into_iter().map(|s| s.1).collect();
    let mut outcomes: HashSet<u64> = HashSet::new();
    let mut panic_kinds: HashSet<u64> = HashSet::new();
    let mut rng = Rng::new(plan.seed ^ fnv1a(target.name.as_bytes()));
    let (mut execs, mut panics) = (0u64, 0u64);
    let start = Instant::now();
    let mut next_report = start + REPORT_EVERY;
    let mut corpus_bytes: usize = corpus.iter().map(Vec::len).sum();
    // The seeds run first, as they are; then mutations.
    let seed_count = corpus.len();
    let mut next_seed = 0;
    loop {
        let now = Instant::now();
        if now >= next_report {
            report(out, &progress(execs, panics, corpus.len()))?;
            next_report = now + REPORT_EVERY;
        }
        if now.duration_since(start) >= plan.duration {
            break;
        }
        let is_seed = next_seed < seed_count;
        let input = if is_seed {
            next_seed += 1;
            corpus[next_seed - 1].clone()
        } else {
            let base = rng.below(corpus.len());
            mutate(&mut rng, &corpus, base, target.tokens)
        };
        write_pending(&pending, &input)?;
        execs += 1;
        match panic::catch_unwind(AssertUnwindSafe(|| (target.run)(&input))) {
            Ok(signature) => {
                let new =
                    outcomes.len() < MAX_OUTCOMES && outcomes.insert(fnv1a(signature.as_bytes()));
                if new
                    && !is_seed
                    && corpus.len() < MAX_CORPUS
                    && corpus_bytes + input.len() <= MAX_CORPUS_BYTES
                {
                    corpus_bytes += input.len();
                    corpus.push(input);
                }
            }
            Err(_) => {
                panics += 1;
                let (location, message) = LAST_PANIC
                    .lock()
                    .ok()
                    .and_then(|mut last| last.take())
                    .unwrap_or_default();
                let message = format!("{message} at {location}");
                // One saved input per place that panics (messages quote the input).
                if panic_kinds.insert(fnv1a(location.as_bytes()))
                    && panic_kinds.len() <= MAX_SAVED_PANICS
                {
                    let file = save_crash(&crash_dir, "panic", &input, &message)?;
                    report(
                        out,
                        &Report::Panic {
                            file: file.display().to_string(),
                            message,
                        },
                    )?;
                }
            }
        }
    }
    report(out, &progress(execs, panics, corpus.len()))?;
    report(out, &Report::Done)
}

fn progress(execs: u64, panics: u64, corpus: usize) -> Report {
    Report::Progress {
        execs,
        panics,
        corpus: corpus as u64,
    }
}

fn report(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    writeln!(out, "{}", report.to_line())?;
    out.flush()
}

/// Writes `input` as the pending input: its length (8 bytes, little-endian), then its bytes.
fn write_pending(file: &File, input: &[u8]) -> std::io::Result<()> {
    file.write_all_at(&(input.len() as u64).to_le_bytes(), 0)?;
    file.write_all_at(input, 8)
}

/// The pending input a child wrote last, if the file holds a whole one.
pub fn read_pending(path: &Path) -> Option<Vec<u8>> {
    let bytes = std::fs::read(path).ok()?;
    let len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let end = usize::try_from(len).ok()?.checked_add(8)?;
    Some(bytes.get(8..end)?.to_vec())
}

/// Saves a crashing input as `<dir>/<kind>-<hash>.bin`, with what happened in a `.txt` beside
/// it. Returns the input's path.
pub fn save_crash(dir: &Path, kind: &str, input: &[u8], what: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let stem = format!("{kind}-{:016x}", fnv1a(input));
    let path = dir.join(format!("{stem}.bin"));
    std::fs::write(&path, input)?;
    std::fs::write(dir.join(format!("{stem}.txt")), format!("{what}\n"))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lines_read_back() {
        for report in [
            Report::Progress {
                execs: 12,
                panics: 1,
                corpus: 30,
            },
            Report::Panic {
                file: "/tmp/crashes/x/panic-00.bin".to_owned(),
                message: "index out of bounds at src/a.rs:1:2".to_owned(),
            },
            Report::Done,
        ] {
            assert_eq!(Report::parse(&report.to_line()), Some(report));
        }
        assert_eq!(Report::parse("progress 1 x 3"), None);
        assert_eq!(Report::parse("something else"), None);
        // Newlines and tabs in a panic message do not break the line protocol.
        let line = Report::Panic {
            file: "f".to_owned(),
            message: "a\nb\tc".to_owned(),
        }
        .to_line();
        assert_eq!(
            Report::parse(&line),
            Some(Report::Panic {
                file: "f".to_owned(),
                message: "a b c".to_owned()
            })
        );
    }

    #[test]
    fn the_pending_input_is_the_last_one_written_whole() {
        let dir = std::env::temp_dir().join(format!("slipway-fuzz-pending-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("pending");
        let file = File::create(&path).expect("pending");
        write_pending(&file, b"a much longer first input").expect("write");
        write_pending(&file, b"short").expect("write");
        assert_eq!(read_pending(&path).as_deref(), Some(&b"short"[..]));
        std::fs::write(&path, [200, 0, 0, 0, 0, 0, 0, 0, 1, 2]).expect("write");
        assert_eq!(read_pending(&path), None, "a length past the file");
        let saved = save_crash(&dir, "abort", b"input", "signal 6").expect("save");
        assert_eq!(std::fs::read(&saved).expect("saved"), b"input");
        let note = saved.with_extension("txt");
        assert_eq!(std::fs::read_to_string(note).expect("note"), "signal 6\n");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}

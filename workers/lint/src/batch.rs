//! Many Dockerfiles at once, with ShellCheck run as little as possible: every file is parsed and
//! checked by the DL rules on all cores, then each distinct `RUN` script (the text ShellCheck
//! is given: shell, variables, script) is checked once, in a few `shellcheck` processes running
//! side by side, and its findings go to every `RUN` that has it. Starting ShellCheck (a GHC
//! program) costs far more than checking one script, and the same scripts come back across
//! files (`apt-get update && apt-get install …`).
//!
//! A batch that fails (a script over the time or memory limit, a crash) costs its scripts'
//! files nothing but time: each is checked again alone, as before batching, so the failure lands
//! on the file that caused it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::lint::{Analysis, Settings, ShellScript};
use crate::rules::Failure;
use crate::shellcheck::{ShellcheckProgram, hadolint_script};

/// Most scripts given to one `shellcheck` process: small enough that a batch stays far within
/// the time limit and a failed one is cheap to redo file by file.
pub const MAX_BATCH: usize = 200;

/// Lints `sources` with `settings`, ShellCheck's findings included when `shellcheck` is given,
/// using `threads` threads (and as many `shellcheck` processes at once). The findings of each
/// source, in order.
pub fn lint_sources(
    sources: &[String],
    settings: &Settings,
    shellcheck: Option<&ShellcheckProgram>,
    threads: usize,
) -> Vec<Vec<Failure>> {
    let analyses = parallel_map(sources, threads, |source| Analysis::of(source, settings));
    let Some(program) = shellcheck else {
        return analyses
            .into_iter()
            .map(|analysis| analysis.finish(None, settings))
            .collect();
    };

    // Each distinct script once; each file's scripts as indices into that list.
    let mut distinct: Vec<ShellScript> = Vec::new();
    let mut index_of: HashMap<String, usize> = HashMap::new();
    let uses: Vec<Vec<usize>> = analyses
        .iter()
        .map(|analysis| {
            analysis
                .scripts()
                .iter()
                .map(|script| {
                    *index_of.entry(hadolint_script(script)).or_insert_with(|| {
                        distinct.push(script.clone());
                        distinct.len() - 1
                    })
                })
                .collect()
        })
        .collect();

    let batch_count = threads.max(1).max(distinct.len().div_ceil(MAX_BATCH));
    let batch_size = distinct.len().div_ceil(batch_count).max(1);
    let batches: Vec<&[ShellScript]> = distinct.chunks(batch_size).collect();
    let checked = parallel_map(&batches, threads, |batch| program.check_each(batch).ok());
    // The findings of each distinct script, when its batch went through.
    let found: Vec<Option<&Vec<Failure>>> = checked
        .iter()
        .zip(&batches)
        .flat_map(|(result, batch)| match result {
            Some(each) => each.iter().map(Some).collect::<Vec<_>>(),
            None => vec![None; batch.len()],
        })
        .collect();

    let files: Vec<(Analysis, Vec<usize>)> = analyses.into_iter().zip(uses).collect();
    parallel_map_owned(files, threads, |(analysis, used)| {
        let mut failures = Vec::new();
        let mut complete = true;
        for (script, &index) in analysis.scripts().iter().zip(&used) {
            match found[index] {
                Some(findings) => failures.extend(findings.iter().map(|failure| Failure {
                    line: script.line,
                    ..failure.clone()
                })),
                None => complete = false,
            }
        }
        let checked = if complete {
            Ok(failures)
        } else {
            // Its batch failed: this file alone, so the reason is about its own scripts.
            program
                .check_all(analysis.scripts())
                .map_err(|error| error.to_string())
        };
        analysis.finish(Some(checked), settings)
    })
}

/// `f` of each item, in order, on up to `threads` threads taking the next item as they finish.
fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(index) else { break };
                        done.push((index, f(item)));
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    done.sort_by_key(|(index, _)| *index);
    done.into_iter().map(|(_, result)| result).collect()
}

/// [`parallel_map`] over owned items.
fn parallel_map_owned<T: Send, R: Send>(
    items: Vec<T>,
    threads: usize,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let slots: Vec<std::sync::Mutex<Option<T>>> = items
        .into_iter()
        .map(|item| std::sync::Mutex::new(Some(item)))
        .collect();
    parallel_map(&slots, threads, |slot| {
        let item = slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        f(item.expect("each item is taken once"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_map_keeps_the_order_whatever_the_threads() {
        let items: Vec<u32> = (0..1000).collect();
        for threads in [1, 2, 7] {
            let squares = parallel_map(&items, threads, |n| n * n);
            assert_eq!(squares, items.iter().map(|n| n * n).collect::<Vec<_>>());
        }
        let owned = parallel_map_owned(vec![String::from("a"), String::from("b")], 2, |s| s + "!");
        assert_eq!(owned, ["a!", "b!"]);
        assert!(parallel_map(&Vec::<u32>::new(), 4, |n| *n).is_empty());
    }

    #[test]
    fn without_shellcheck_each_source_gets_its_dl_findings() {
        let sources = vec![
            "FROM debian\nRUN cd /x\n".to_owned(),
            "FROBNICATE\n".to_owned(),
            "FROM debian:12.5\n".to_owned(),
        ];
        let settings = Settings::default();
        let found = lint_sources(&sources, &settings, None, 2);
        let codes: Vec<Vec<&str>> = found
            .iter()
            .map(|failures| failures.iter().map(|f| f.code.as_str()).collect())
            .collect();
        assert_eq!(codes, [vec!["DL3006", "DL3003"], vec!["DL1000"], vec![]]);
    }
}

/// Checks scripts one by one within one run: what [`ScriptCache`] asks of ShellCheck.
pub trait CheckEach {
    /// The findings of each script, in order, positioned at its line, or why they could not be
    /// had.
    fn check_each(&self, scripts: &[ShellScript]) -> Result<Vec<Vec<Failure>>, String>;
}

impl CheckEach for ShellcheckProgram {
    fn check_each(&self, scripts: &[ShellScript]) -> Result<Vec<Vec<Failure>>, String> {
        ShellcheckProgram::check_each(self, scripts).map_err(|error| error.to_string())
    }
}

/// A ShellCheck that remembers the findings of the last [`ScriptCache::CAPACITY`] distinct
/// scripts it checked (keyed by the SHA-256 of the text ShellCheck is given), and runs only for
/// the others: the lint worker sees the same `RUN` scripts job after job. Failures to check are
/// not remembered.
pub struct ScriptCache<C> {
    checker: C,
    remembered: std::sync::Mutex<Remembered>,
}

#[derive(Default)]
struct Remembered {
    findings: HashMap<[u8; 32], Vec<Failure>>,
    /// Keys, oldest first: the first to go when full.
    order: std::collections::VecDeque<[u8; 32]>,
}

impl<C: CheckEach> ScriptCache<C> {
    /// Distinct scripts remembered.
    pub const CAPACITY: usize = 4096;

    /// A cache in front of `checker`.
    pub fn new(checker: C) -> Self {
        Self {
            checker,
            remembered: std::sync::Mutex::new(Remembered::default()),
        }
    }

    fn key(script: &ShellScript) -> [u8; 32] {
        use sha2::Digest as _;
        sha2::Sha256::digest(hadolint_script(script).as_bytes()).into()
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, Remembered> {
        self.remembered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<C: CheckEach> crate::lint::ShellChecker for ScriptCache<C> {
    fn check(&self, scripts: &[ShellScript]) -> Result<Vec<Failure>, String> {
        let keys: Vec<[u8; 32]> = scripts.iter().map(Self::key).collect();
        let mut missing: Vec<ShellScript> = Vec::new();
        let mut missing_keys: Vec<[u8; 32]> = Vec::new();
        {
            let remembered = self.remembered();
            for (script, key) in scripts.iter().zip(&keys) {
                if !remembered.findings.contains_key(key) && !missing_keys.contains(key) {
                    missing.push(script.clone());
                    missing_keys.push(*key);
                }
            }
        }
        let checked = if missing.is_empty() {
            Vec::new()
        } else {
            self.checker.check_each(&missing)?
        };
        let mut remembered = self.remembered();
        for (key, findings) in missing_keys.into_iter().zip(checked) {
            if remembered.findings.insert(key, findings).is_none() {
                remembered.order.push_back(key);
            }
        }
        let mut failures = Vec::new();
        for (script, key) in scripts.iter().zip(&keys) {
            if let Some(findings) = remembered.findings.get(key) {
                failures.extend(findings.iter().map(|failure| Failure {
                    line: script.line,
                    ..failure.clone()
                }));
            }
        }
        while remembered.order.len() > Self::CAPACITY {
            if let Some(oldest) = remembered.order.pop_front() {
                remembered.findings.remove(&oldest);
            }
        }
        Ok(failures)
    }
}

#[cfg(test)]
mod cache_tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::lint::ShellChecker;
    use crate::rules::Severity;

    /// One finding per script, naming its text; counts the scripts it was asked about.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl CheckEach for Counting {
        fn check_each(&self, scripts: &[ShellScript]) -> Result<Vec<Vec<Failure>>, String> {
            self.0.fetch_add(scripts.len(), Ordering::SeqCst);
            if scripts.iter().any(|s| s.script == "fail") {
                return Err("could not".into());
            }
            Ok(scripts
                .iter()
                .map(|s| {
                    vec![Failure {
                        code: "SC1".into(),
                        severity: Severity::Info,
                        message: s.script.clone(),
                        line: s.line,
                        column: 1,
                    }]
                })
                .collect())
        }
    }

    fn script(line: u32, text: &str) -> ShellScript {
        ShellScript {
            line,
            shell: "/bin/sh -c".into(),
            variables: Default::default(),
            script: text.into(),
        }
    }

    #[test]
    fn each_distinct_script_is_checked_once_and_its_findings_follow_the_run_line() {
        let cache = ScriptCache::new(Counting::default());
        let first = cache
            .check(&[
                script(2, "apt-get update"),
                script(5, "make"),
                script(7, "make"),
            ])
            .unwrap();
        assert_eq!(cache.checker.0.load(Ordering::SeqCst), 2, "make once");
        assert_eq!(
            first
                .iter()
                .map(|f| (f.line, f.message.as_str()))
                .collect::<Vec<_>>(),
            [(2, "apt-get update"), (5, "make"), (7, "make")]
        );
        let again = cache
            .check(&[script(9, "make"), script(3, "apt-get update")])
            .unwrap();
        assert_eq!(
            cache.checker.0.load(Ordering::SeqCst),
            2,
            "nothing new to check"
        );
        assert_eq!(
            again.iter().map(|f| f.line).collect::<Vec<_>>(),
            [9, 3],
            "remembered findings at this file's lines"
        );
        assert!(cache.check(&[script(1, "fail")]).is_err());
        assert!(
            cache.check(&[script(1, "fail")]).is_err(),
            "a failure is not remembered"
        );
        assert_eq!(cache.checker.0.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn the_cache_keeps_at_most_its_capacity() {
        let cache = ScriptCache::new(Counting::default());
        let many: Vec<ShellScript> = (0..ScriptCache::<Counting>::CAPACITY + 10)
            .map(|n| script(1, &format!("echo {n}")))
            .collect();
        cache.check(&many).unwrap();
        let remembered = cache.remembered();
        assert_eq!(remembered.findings.len(), ScriptCache::<Counting>::CAPACITY);
        assert_eq!(remembered.order.len(), ScriptCache::<Counting>::CAPACITY);
    }
}

//! The driver against targets that misbehave on purpose (the `self-*` targets): each kind of
//! failure is counted in its own column, its input saved where the table says, and the run
//! exits with status 1; a clean run of a real target exits 0. Runs the built `slipway-fuzz`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh crash directory for one test.
fn crash_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("slipway-fuzz-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// One row of the table: (execs, panics, aborts, hangs, peak RSS MiB).
struct Row {
    execs: u64,
    panics: u64,
    aborts: u64,
    hangs: u64,
    rss_mib: f64,
}

/// Runs `slipway-fuzz TARGET --seconds N` with `extra` arguments; returns the exit code, the
/// target's row and the whole stdout.
fn fuzz(target: &str, seconds: u32, dir: &Path, extra: &[&str]) -> (i32, Row, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_slipway-fuzz"))
        .arg(target)
        .args(["--seconds", &seconds.to_string(), "--seed", "5"])
        .arg("--crash-dir")
        .arg(dir)
        .args(extra)
        .output()
        .expect("slipway-fuzz runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let line = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(target))
        .unwrap_or_else(|| panic!("no row for {target} in:\n{stdout}"));
    let cells: Vec<&str> = line.split_whitespace().collect();
    let number = |i: usize| cells[i].parse::<f64>().expect("a number");
    let row = Row {
        execs: number(1) as u64,
        panics: number(3) as u64,
        aborts: number(4) as u64,
        hangs: number(5) as u64,
        rss_mib: number(6),
    };
    (output.status.code().unwrap_or(-1), row, stdout)
}

/// The saved inputs of `kind` (`panic`, `abort`, `hang`) for `target`, sorted.
fn saved(dir: &Path, target: &str, kind: &str) -> Vec<(PathBuf, Vec<u8>, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(target))
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| {
        p.extension().is_some_and(|e| e == "bin")
            && p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(kind))
    });
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("saved input");
            let note = std::fs::read_to_string(p.with_extension("txt")).expect("note");
            (p, bytes, note)
        })
        .collect()
}

#[test]
fn a_panic_is_caught_counted_and_saved_once_and_the_run_fails() {
    let dir = crash_dir("panic");
    let (code, row, stdout) = fuzz("self-panic", 2, &dir, &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        row.panics > 0 && row.aborts == 0 && row.hangs == 0,
        "{stdout}"
    );
    assert!(
        row.execs > row.panics,
        "fuzzing went on after the panics: {stdout}"
    );
    let panics = saved(&dir, "self-panic", "panic");
    assert_eq!(panics.len(), 1, "one distinct panic, saved once: {stdout}");
    let (path, input, note) = &panics[0];
    assert!(input.starts_with(b"P"), "{input:?}");
    assert!(note.contains("self-check panic on purpose at"), "{note}");
    assert!(stdout.contains(&path.display().to_string()), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_abort_kills_only_the_child_and_its_input_is_saved_the_same_for_the_same_seed() {
    let first_abort = |test: &str| {
        let dir = crash_dir(test);
        let (code, row, stdout) = fuzz("self-abort", 1, &dir, &[]);
        assert_eq!(code, 1, "{stdout}");
        assert!(row.aborts > 0 && row.panics == 0, "{stdout}");
        let aborts = saved(&dir, "self-abort", "abort");
        assert!(!aborts.is_empty(), "{stdout}");
        assert!(aborts.iter().all(|(_, input, _)| input.starts_with(b"A")));
        // The first child's (restart 0) input, as the table lists it first.
        let first = stdout
            .lines()
            .find(|l| l.contains("(seed 5, restart 0)"))
            .unwrap_or_else(|| panic!("no first abort in:\n{stdout}"))
            .to_owned();
        assert!(first.contains("killed by signal 6"), "{first}");
        let _ = std::fs::remove_dir_all(&dir);
        // The saved file's name: its input's hash.
        first
            .split_once("/self-abort/")
            .and_then(|(_, rest)| rest.split_once(".bin"))
            .map(|(name, _)| name.to_owned())
            .unwrap_or_else(|| panic!("no file in {first}"))
    };
    assert_eq!(first_abort("first-run"), first_abort("second-run"));
}

#[test]
fn an_allocation_past_the_memory_limit_is_an_abort_and_the_peak_stays_under_it() {
    let dir = crash_dir("oom");
    let (code, row, stdout) = fuzz("self-oom", 1, &dir, &["--memory-mb", "256"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(row.aborts > 0, "{stdout}");
    assert!(row.rss_mib < 256.0, "peak {} MiB: {stdout}", row.rss_mib);
    let aborts = saved(&dir, "self-oom", "abort");
    let (_, input, note) = aborts.first().expect("a saved input");
    assert!(input.starts_with(b"M"), "{input:?}");
    assert!(
        note.contains("memory allocation of 8589934592 bytes failed"),
        "{note}"
    );
    assert!(
        stdout.contains("address-space limit per child: 256 MiB"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_hang_is_killed_and_its_input_saved() {
    let dir = crash_dir("hang");
    let (code, row, stdout) = fuzz("self-hang", 3, &dir, &["--hang-seconds", "1"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(row.hangs > 0 && row.aborts == 0, "{stdout}");
    let hangs = saved(&dir, "self-hang", "hang");
    let (_, input, note) = hangs.first().expect("a saved input");
    assert!(input.starts_with(b"H"), "{input:?}");
    assert!(note.contains("no progress for 1 s: killed"), "{note}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_clean_target_runs_its_seeds_and_mutations_and_exits_0() {
    let dir = crash_dir("clean");
    let (code, row, stdout) = fuzz("rpm-ndb", 2, &dir, &[]);
    assert_eq!(code, 0, "{stdout}");
    assert!(row.execs > 100, "{stdout}");
    assert_eq!((row.panics, row.aborts, row.hangs), (0, 0, 0), "{stdout}");
    assert!(row.rss_mib > 0.0, "{stdout}");
    assert!(!dir.join("rpm-ndb").exists(), "nothing saved");
}

#[test]
fn an_unknown_target_is_refused_with_the_list() {
    let output = Command::new(env!("CARGO_BIN_EXE_slipway-fuzz"))
        .arg("no-such-target")
        .output()
        .expect("slipway-fuzz runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown target \"no-such-target\""),
        "{stderr}"
    );
    assert!(stderr.contains("rpm-ndb"), "{stderr}");
}

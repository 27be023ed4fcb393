//! Time and peak memory of scanning each hostile archive of issue 13 (`hostile/mod.rs`), each
//! scan in a child process of its own (this program run again with `SLIPWAY_SCAN_MEMORY_CHILD`
//! set to the archive), measured with `wait4`: every scan must finish in under 5 s with a peak
//! RSS under 256 MiB, and end as expected (an error for the oversize and malformed archives, a
//! report for the ones with a malformed package entry). The child scans as `slipway scan ARCHIVE`
//! does: `pipeline::scan` of the archive, integrity on, the default limits.
//!
//! A test without the libtest harness (`harness = false`): it prints one line per archive. With
//! `SLIPWAY_HOSTILE_WRITE_TO=DIR` it only writes the archives into `DIR` and exits, to measure
//! another build of the scanner on them (`slipway scan -f json DIR/<name>.tar`).

mod hostile;

use std::os::unix::process::ExitStatusExt as _;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use hostile::Hostile;
use slipway_scan::image::ReadLimits;
use slipway_scan::pipeline::{self, PipelineOptions, ScanSubject, Source};
use slipway_scan::source::Target;

const CHILD: &str = "SLIPWAY_SCAN_MEMORY_CHILD";
const MAX_TIME: Duration = Duration::from_secs(5);
const MAX_RSS_KIB: i64 = 256 * 1024;

fn main() -> ExitCode {
    if let Some(dir) = std::env::var_os("SLIPWAY_HOSTILE_WRITE_TO") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("the directory");
        for hostile in Hostile::ALL {
            println!("{}", hostile.write(&dir).display());
        }
        return ExitCode::SUCCESS;
    }
    match std::env::var_os(CHILD) {
        Some(archive) => child(archive.into()),
        None => parent(),
    }
}

/// Scans `archive`: prints `report <packages> <warnings>` (exit 0) or `error <message>` (exit 2).
fn child(archive: std::path::PathBuf) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let subject = ScanSubject {
        name: archive.display().to_string(),
        image: None,
        pinned: None,
    };
    let options = PipelineOptions {
        integrity: true,
        limits: ReadLimits::default(),
        ..PipelineOptions::default()
    };
    let result = runtime.block_on(pipeline::scan(
        Source::Local(Target::parse(&archive.display().to_string())),
        &subject,
        options,
    ));
    match result {
        Ok(scanned) => {
            println!(
                "report {} {}",
                scanned.report.packages.len(),
                scanned.report.warnings.len()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            println!("error {error}");
            ExitCode::from(2)
        }
    }
}

fn parent() -> ExitCode {
    let dir = std::env::temp_dir().join(format!("slipway-scan-memory-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let me = std::env::current_exe().expect("this program");
    let mut failures = Vec::new();
    for hostile in Hostile::ALL {
        let archive = hostile.write(&dir);
        let archive_bytes = std::fs::metadata(&archive).map_or(0, |m| m.len());
        let started = Instant::now();
        let child = Command::new(&me)
            .env(CHILD, &archive)
            .stdout(Stdio::piped())
            .spawn()
            .expect("run this program as the child");
        let pid = libc::pid_t::try_from(child.id()).expect("a pid");
        let reader = std::thread::spawn(move || {
            let mut child = child;
            let mut out = String::new();
            use std::io::Read as _;
            let _ = child.stdout.take().map(|mut s| s.read_to_string(&mut out));
            out
        });
        let (status, peak_rss_kib) = wait_with_rusage(pid);
        let elapsed = started.elapsed();
        let output = reader.join().expect("the reader thread");
        hostile::remove(&archive);
        let outcome = output.lines().next().unwrap_or("(no output)");
        println!(
            "{:<28} archive {:>9} B  {:>6.2} s  peak RSS {:>6.1} MiB  exit {:?}  {}",
            hostile.name(),
            archive_bytes,
            elapsed.as_secs_f64(),
            peak_rss_kib as f64 / 1024.0,
            status.code(),
            outcome.chars().take(140).collect::<String>()
        );
        let expected = hostile.expected();
        let as_expected = outcome.starts_with(expected)
            && status.code() == Some(if expected.starts_with("report") { 0 } else { 2 });
        if !as_expected {
            failures.push(format!(
                "{}: unexpected outcome {status:?} {outcome}",
                hostile.name()
            ));
        }
        if hostile.timed() && elapsed >= MAX_TIME {
            failures.push(format!("{}: took {elapsed:?}", hostile.name()));
        }
        if peak_rss_kib >= MAX_RSS_KIB {
            failures.push(format!("{}: peak RSS {peak_rss_kib} KiB", hostile.name()));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        for failure in &failures {
            eprintln!("FAILED {failure}");
        }
        ExitCode::FAILURE
    }
}

/// Waits for `pid`, returning its status and peak RSS (KiB).
fn wait_with_rusage(pid: libc::pid_t) -> (std::process::ExitStatus, i64) {
    let mut status = 0;
    // SAFETY: rusage is plain data, all zeros is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals of the right types; `pid` is our own child.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4: {}", std::io::Error::last_os_error());
    (std::process::ExitStatus::from_raw(status), usage.ru_maxrss)
}

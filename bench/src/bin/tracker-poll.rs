//! `tracker-poll`: one repo-tracker poll cycle over N tracked remotes served by a local
//! `git daemon`, against a `git ls-remote` loop over the same remotes in the same run, and the RSS
//! of the tracker's state holding N tracked branches.
//!
//! Setup: one bare repository with a few commits on `main`, and N names for it (`r00000.git`, …:
//! symlinks to it in one directory, which `git daemon` follows), served by
//! `git daemon --base-path=<dir> --export-all` on 127.0.0.1 and a free port. The daemon is killed
//! and the directory removed when the program ends, on error too.
//!
//! Slipway: `slipway_repo_tracker::poll::poll_cycle` over the N (url, `main`) pairs through a
//! `slipway_source::SourceCache`, within `PollLimits` (`--concurrent`, `--per-host`,
//! `--timeout-secs`); every head must be the repository's `main` commit. Reference: what a naive
//! poller does, `git ls-remote <url> main` for each remote one after another (all of them, or
//! `--reference-sample K` of them, extrapolated to N). Then the RSS of this process idle after the
//! cycle, and with a `TrackerState` that applied an `index.applied` of N entries (one per remote)
//! and N `git.changed` events. Any wrong or missing head makes the exit status non-zero.
//!
//! `git daemon` listens with a backlog of 5 connections: above about 16 asks at once some of its
//! connections are reset before they are served (errors here, not a limit of the tracker).
//!
//! `cargo run --release -p slipway-bench --bin tracker-poll -- --remotes 10000`

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use slipway_common::envelope::Cause;
use slipway_common::index::Entry;
use slipway_common::index::test_support::sample_entry;
use slipway_common::message::{CommitSha, GitChanged, IndexApplied, SeenBy};
use slipway_common::{Envelope, Message};
use slipway_repo_tracker::poll::{PollLimits, Polled, poll_cycle};
use slipway_repo_tracker::remote::BranchKey;
use slipway_repo_tracker::state::{TrackerState, Tracking};
use slipway_source::{SourceCache, SourceSettings};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The branch every remote is polled at.
const BRANCH: &str = "main";

/// Arguments.
#[derive(Parser, Debug)]
#[command(
    about = "One repo-tracker poll cycle over N remotes on a local git daemon vs a `git ls-remote` loop, and the tracker state's RSS"
)]
struct Args {
    /// Tracked remotes (names of one bare repository, all served by the local git daemon).
    #[arg(long, default_value_t = 10_000)]
    remotes: usize,
    /// Branches asked at once (`PollLimits::concurrent`; the tracker's default is 16).
    #[arg(long, default_value_t = 16)]
    concurrent: usize,
    /// Branches asked at once on one host (`PollLimits::per_host`; the tracker's default is 4).
    /// Every remote is on 127.0.0.1 here, so this is 16 by default, like `--concurrent`.
    #[arg(long, default_value_t = 16)]
    per_host: usize,
    /// Longest one ask may take, in seconds (`PollLimits::timeout`).
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
    /// Poll cycles to run; the fastest is reported.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Run the `git ls-remote` loop over K remotes spread evenly over all N, and extrapolate its
    /// time to N (default: run it over all N).
    #[arg(long, value_name = "K")]
    reference_sample: Option<usize>,
    /// The longest a cycle may take, in seconds (the budget).
    #[arg(long, default_value_t = 60)]
    budget_secs: u64,
    /// The `git-daemon` program (default: `git-daemon` in `git --exec-path`).
    #[arg(long)]
    git_daemon: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.remotes > 0, "--remotes must be at least 1");
    ensure!(args.rounds > 0, "--rounds must be at least 1");
    let sample = args.reference_sample.unwrap_or(args.remotes);
    ensure!(
        (1..=args.remotes).contains(&sample),
        "--reference-sample must be between 1 and --remotes ({})",
        args.remotes
    );
    let limits = PollLimits {
        concurrent: args.concurrent,
        per_host: args.per_host,
        timeout: Duration::from_secs(args.timeout_secs),
    };

    // The local git server.
    let work = WorkDir::create()?;
    let origin = work.0.join("origin.git");
    let head = make_repository(&origin, &work.0.join("seed"))?;
    let served = work.0.join("served");
    make_names(&served, &origin, args.remotes)?;
    let git_daemon = match args.git_daemon {
        Some(path) => path,
        None => git_exec_path()?.join("git-daemon"),
    };
    let port = free_port()?;
    let _daemon = Daemon::start(&git_daemon, &served, port, &work.0.join("daemon.log"))?;
    let urls: Vec<String> = (0..args.remotes).map(|i| remote_url(port, i)).collect();
    wait_until_served(&urls[0], &head, &work.0.join("daemon.log"))?;
    println!(
        "tracker-poll: {} remotes = symlinks {}/r00000.git… to one bare repository (main at {}), served by {} on 127.0.0.1:{port}",
        args.remotes,
        served.display(),
        &head.as_str()[..12],
        git_daemon.display(),
    );
    println!(
        "slipway: poll_cycle with PollLimits {{ concurrent: {}, per_host: {}, timeout: {} s }}, best of {} round(s); reference: `git ls-remote <url> {BRANCH}` one after another; {} core(s)",
        limits.concurrent,
        limits.per_host,
        args.timeout_secs,
        args.rounds,
        std::thread::available_parallelism().map_or(1, usize::from),
    );

    // Slipway's poll cycle.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let cache = SourceCache::new(SourceSettings {
        cache_dir: work.0.join("cache"),
        fetch_timeout_ms: args.timeout_secs.saturating_mul(1000),
        ..SourceSettings::default()
    })?;
    let mut best: Option<Tally> = None;
    let mut failures = Vec::new();
    for round in 1..=args.rounds {
        let tally = runtime.block_on(slipway_cycle(&cache, &urls, limits, &head));
        eprintln!(
            "round {round}: slipway cycle {:.1} s, {} ok, {} errors, {} wrong heads",
            tally.elapsed.as_secs_f64(),
            tally.ok,
            tally.errors,
            tally.wrong
        );
        failures.extend(tally.failures(&format!("slipway round {round}")));
        if best.as_ref().is_none_or(|b| tally.elapsed < b.elapsed) {
            best = Some(tally);
        }
    }
    let best = best.context("at least one round ran")?;
    let peak = status_bytes("VmHWM")?;
    drop(cache);

    // The reference loop.
    let reference = ls_remote_loop(&urls, sample, &head);
    failures.extend(reference.failures("git ls-remote loop"));
    let reference_total = reference.elapsed.as_secs_f64() * args.remotes as f64 / sample as f64;

    // Idle RSS, then with the tracker's state holding every remote.
    let idle_raw = status_bytes("VmRSS")?;
    trim_heap();
    let idle = status_bytes("VmRSS")?;
    let index_url = format!("git://127.0.0.1:{port}/index.git");
    let state = tracker_state(&urls, &index_url, &head)?;
    trim_heap();
    let with_state = status_bytes("VmRSS")?;
    check_state(&state, &urls, &head)?;
    drop(state);

    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let cycle = best.elapsed.as_secs_f64();
    let reference_note = if sample == args.remotes {
        "(all)".to_owned()
    } else {
        format!("(extrapolated from {sample})")
    };
    let reference_cell = format!("{reference_total:.1} s {reference_note}");
    println!();
    println!(
        "{:<8} {:<15} {:<32} {:<7} {:<12} ok/errors/wrong",
        "remotes",
        "slipway cycle",
        "git ls-remote loop",
        "ratio",
        format!("within {} s", args.budget_secs),
    );
    println!(
        "{:<8} {:<15} {:<32} {:<7} {:<12} {}/{}/{}",
        args.remotes,
        format!("{cycle:.1} s"),
        reference_cell,
        format!("{:.1}x", reference_total / cycle),
        if cycle <= args.budget_secs as f64 {
            "yes"
        } else {
            "NO"
        },
        best.ok,
        best.errors,
        best.wrong
    );
    let per_branch = with_state.saturating_sub(idle) as f64 / args.remotes as f64;
    println!(
        "idle RSS: {:.1} MiB ({:.1} MiB before malloc_trim, peak during the cycles {:.1} MiB); with {} tracked branches in the state: {:.1} MiB (+{:.1} MiB, {:.1} KiB per branch)",
        mib(idle),
        mib(idle_raw),
        mib(peak),
        args.remotes,
        mib(with_state),
        mib(with_state.saturating_sub(idle)),
        per_branch / 1024.0
    );
    if !failures.is_empty() {
        bail!("wrong or missing heads:\n  {}", failures.join("\n  "));
    }
    Ok(())
}

/// A temporary directory, removed on drop.
struct WorkDir(PathBuf);

impl WorkDir {
    fn create() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("slipway-tracker-poll-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `git daemon` child, killed on drop.
struct Daemon(Child);

impl Daemon {
    fn start(program: &Path, base: &Path, port: u16, log: &Path) -> anyhow::Result<Self> {
        let log = std::fs::File::create(log)?;
        let mut command = Command::new(program);
        command
            .arg("--reuseaddr")
            .arg(format!("--base-path={}", base.display()))
            .arg("--export-all")
            .arg("--max-connections=0")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(base)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: the closure runs in the forked child before exec and only calls prctl, which
            // is async-signal-safe and touches no memory of the parent.
            unsafe {
                command.pre_exec(|| {
                    // The daemon gets SIGTERM when this program dies without running the guard
                    // (killed by a signal); the main thread spawns it and outlives it.
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        Ok(Self(child))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `git args…` in `dir`, failing with its stderr; returns its stdout.
fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running git {}", args.join(" ")))?;
    if !output.status.success() {
        bail!(
            "git {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The directory `git` runs its helpers from (where `git-daemon` is).
fn git_exec_path() -> anyhow::Result<PathBuf> {
    let here = std::env::current_dir()?;
    Ok(PathBuf::from(git(&here, &["--exec-path"])?.trim()))
}

/// A bare repository at `bare` with three commits on `main` (made in `seed`); its head.
fn make_repository(bare: &Path, seed: &Path) -> anyhow::Result<CommitSha> {
    std::fs::create_dir_all(seed)?;
    git(seed, &["init", "--quiet", "--initial-branch", BRANCH])?;
    for n in 1..=3 {
        std::fs::write(
            seed.join("Dockerfile"),
            format!("FROM centos:7\nRUN echo {n}\n"),
        )?;
        git(seed, &["add", "Dockerfile"])?;
        git(
            seed,
            &[
                "-c",
                "user.name=bench",
                "-c",
                "user.email=bench@example.org",
                "commit",
                "--quiet",
                "-m",
                &format!("commit {n}"),
            ],
        )?;
    }
    let parent = bare.parent().context("the repository has a parent")?;
    let bare_name = bare.to_str().context("a UTF-8 temp path")?;
    let seed_name = seed.to_str().context("a UTF-8 temp path")?;
    git(
        parent,
        &["clone", "--quiet", "--bare", "--", seed_name, bare_name],
    )?;
    let head = git(bare, &["rev-parse", &format!("refs/heads/{BRANCH}")])?;
    CommitSha::try_from(head.trim().to_owned()).context("the head of the bare repository")
}

/// `dir/r00000.git` … : `count` symlinks to `origin`.
fn make_names(dir: &Path, origin: &Path, count: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let started = Instant::now();
    for i in 0..count {
        std::os::unix::fs::symlink(origin, dir.join(repo_name(i)))
            .with_context(|| format!("linking {}", repo_name(i)))?;
        if (i + 1) % 1000 == 0 || i + 1 == count {
            eprintln!(
                "setup: {} of {count} names linked ({:.1} s)",
                i + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

fn repo_name(i: usize) -> String {
    format!("r{i:05}.git")
}

fn remote_url(port: u16, i: usize) -> String {
    format!("git://127.0.0.1:{port}/{}", repo_name(i))
}

/// A port nobody listens on at the moment.
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// `git ls-remote <url> main`: the head it names.
fn ls_remote(url: &str) -> anyhow::Result<String> {
    let here = std::env::temp_dir();
    let out = git(&here, &["ls-remote", url, BRANCH])?;
    out.lines()
        .find_map(|line| {
            let (sha, name) = line.split_once('\t')?;
            (name == format!("refs/heads/{BRANCH}")).then(|| sha.to_owned())
        })
        .with_context(|| format!("{url} has no {BRANCH}: {out:?}"))
}

/// Waits (up to 10 s) until the daemon answers for `url` with `head`.
fn wait_until_served(url: &str, head: &CommitSha, log: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        match ls_remote(url) {
            Ok(sha) if sha == head.as_str() => {
                eprintln!("setup: `git ls-remote {url} {BRANCH}` = {sha}");
                return Ok(());
            }
            Ok(sha) => bail!("{url} answered {sha}, expected {head}"),
            Err(error) if started.elapsed() > Duration::from_secs(10) => {
                let log = std::fs::read_to_string(log).unwrap_or_default();
                bail!("git daemon does not serve {url}: {error:#}\ndaemon log:\n{log}");
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// What a cycle or loop saw.
#[derive(Debug, Default)]
struct Tally {
    elapsed: Duration,
    ok: usize,
    errors: usize,
    wrong: usize,
    /// The first few errors and wrong heads.
    examples: Vec<String>,
}

impl Tally {
    fn record(&mut self, url: &str, head: Result<&str, &str>, expected: &CommitSha) {
        match head {
            Ok(sha) if sha == expected.as_str() => self.ok += 1,
            Ok(sha) => {
                self.wrong += 1;
                self.example(format!("{url}: head {sha}, expected {expected}"));
            }
            Err(error) => {
                self.errors += 1;
                self.example(format!("{url}: {error}"));
            }
        }
    }

    fn example(&mut self, text: String) {
        if self.examples.len() < 5 {
            eprintln!("  {text}");
            self.examples.push(text);
        }
    }

    fn failures(&self, what: &str) -> Vec<String> {
        if self.errors + self.wrong == 0 {
            return Vec::new();
        }
        let mut lines = vec![format!(
            "{what}: {} errors, {} wrong heads, e.g.:",
            self.errors, self.wrong
        )];
        lines.extend(self.examples.iter().map(|e| format!("  {e}")));
        lines
    }
}

/// One poll cycle over `urls`, the results collected as they arrive.
async fn slipway_cycle(
    cache: &SourceCache,
    urls: &[String],
    limits: PollLimits,
    head: &CommitSha,
) -> Tally {
    let branches: Vec<(String, String)> = urls
        .iter()
        .map(|url| (url.clone(), BRANCH.to_owned()))
        .collect();
    let total = branches.len();
    let (results, mut received) = mpsc::channel::<Polled>(1024);
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let collect = async {
        let mut tally = Tally::default();
        let mut seen = 0;
        while let Some(polled) = received.recv().await {
            let head_text = polled
                .head
                .as_ref()
                .map(CommitSha::as_str)
                .map_err(String::as_str);
            if polled.branch != BRANCH {
                tally.wrong += 1;
                tally.example(format!(
                    "{}: answered for branch {}",
                    polled.url, polled.branch
                ));
            } else {
                tally.record(&polled.url, head_text, head);
            }
            seen += 1;
            if seen % 1000 == 0 || seen == total {
                eprintln!(
                    "slipway: {seen} of {total} heads ({:.1} s)",
                    started.elapsed().as_secs_f64()
                );
            }
        }
        tally
    };
    let (asked, mut tally) = tokio::join!(
        poll_cycle(cache, branches, limits, results, &shutdown),
        collect
    );
    tally.elapsed = started.elapsed();
    let answered = tally.ok + tally.errors + tally.wrong;
    if asked != total || answered != total {
        tally.errors += total.saturating_sub(answered);
        tally.example(format!(
            "poll_cycle asked {asked} of {total} branches and {answered} answered"
        ));
    }
    tally
}

/// `git ls-remote <url> main` over `sample` of `urls` (spread evenly), one after another.
fn ls_remote_loop(urls: &[String], sample: usize, head: &CommitSha) -> Tally {
    let mut tally = Tally::default();
    let started = Instant::now();
    for k in 0..sample {
        let url = &urls[k * urls.len() / sample];
        let answer = ls_remote(url).map_err(|error| format!("{error:#}"));
        tally.record(url, answer.as_deref().map_err(String::as_str), head);
        if (k + 1) % 1000 == 0 || k + 1 == sample {
            let elapsed = started.elapsed().as_secs_f64();
            eprintln!(
                "git ls-remote loop: {} of {sample} ({elapsed:.1} s, {:.0} s to go)",
                k + 1,
                elapsed / (k + 1) as f64 * (sample - k - 1) as f64
            );
        }
    }
    tally.elapsed = started.elapsed();
    tally
}

/// The index entry of remote `i`: the sample entry, named `bench/r<i>`, built from `url`'s
/// `main`; the first depends on `centos/centos:7`, each other one on an earlier entry (a tree of
/// fan-out 10).
fn index_entry(i: usize, url: &str) -> Entry {
    let mut entry = sample_entry();
    entry.id = Some(i as u64);
    entry.app_id = "bench".to_owned();
    entry.job_id = format!("r{i:05}");
    entry.git_url = url.to_owned();
    entry.git_branch = BRANCH.to_owned();
    entry.depends_on = vec![match i {
        0 => "centos/centos:7".to_owned(),
        _ => format!("bench/r{:05}:{}", (i - 1) / 10, entry.desired_tag),
    }];
    entry
}

/// A tracker state that applied an `index.applied` with one entry per remote, then a poll's
/// `git.changed` of each remote (its first head: the baseline).
fn tracker_state(
    urls: &[String],
    index_url: &str,
    head: &CommitSha,
) -> anyhow::Result<TrackerState> {
    let entries: Vec<Entry> = urls
        .iter()
        .enumerate()
        .map(|(i, url)| index_entry(i, url))
        .collect();
    // Entries are validated when decoded: a round trip through the wire form checks every one.
    let decoded: Vec<Entry> = serde_json::from_str(&serde_json::to_string(&entries)?)
        .context("the benchmark's index entries are not valid")?;
    ensure!(
        decoded == entries,
        "the index entries changed in a round trip"
    );
    drop(decoded);
    let mut state = TrackerState::new(Tracking {
        index_url: index_url.to_owned(),
        index_branch: BRANCH.to_owned(),
        build_first_index: false,
        delete_retired_tags: false,
    });
    state.apply(&Envelope::new_job(
        Cause::IndexChange,
        Message::IndexApplied(IndexApplied {
            git_url: index_url.to_owned(),
            git_branch: BRANCH.to_owned(),
            commit: head.clone(),
            entries,
        }),
    ));
    for url in urls {
        state.apply(&Envelope::new_job(
            Cause::GitChange,
            Message::GitChanged(GitChanged {
                git_url: url.clone(),
                git_branch: BRANCH.to_owned(),
                commit: head.clone(),
                seen_by: SeenBy::Poll,
                delivery_id: None,
            }),
        ));
    }
    Ok(state)
}

/// The state tracks every remote at `head` and decided nothing.
fn check_state(state: &TrackerState, urls: &[String], head: &CommitSha) -> anyhow::Result<()> {
    let tracked = state.tracked_branches().len();
    ensure!(
        tracked == urls.len() + 1,
        "the state tracks {tracked} branches, expected {} (the remotes and the index)",
        urls.len() + 1
    );
    for url in urls {
        ensure!(
            state.head(&BranchKey::of(url, BRANCH)) == Some(head),
            "the state has no head {head} for {url}"
        );
    }
    ensure!(
        state.outbox().next().is_none(),
        "the state decided something from baseline heads"
    );
    Ok(())
}

/// A size of this process from /proc/self/status (`VmRSS`: resident now, `VmHWM`: its peak), in
/// bytes.
fn status_bytes(field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .with_context(|| format!("no {field} in /proc/self/status"))?
        .trim()
        .parse()?;
    Ok(kib * 1024)
}

/// Returns freed heap memory to the system, so that RSS measures what is in use.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of glibc's allocator; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

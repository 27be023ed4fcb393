//! `build-e2e`: one build job end to end through `slipway-build` (lint.passed published →
//! build.succeeded received) against `docker build` + `docker push` of the same context by hand, in
//! the same run, alternating, several repetitions; prints both, the ratio, and the worker's peak RSS.
//!
//! Each repetition changes one file of the context for both sides, so neither gets a cached build
//! of the changed layer; the rest of the cache state is the same for both.
//!
//! `--warm`: the rebuild of a child whose parent stage is unchanged, with a warm layer cache — the
//! worker with its defaults (`[build] cache = true`, the classic builder; `--builder buildkit`
//! for BuildKit), by hand `docker build` (the legacy builder, whose cache is on by default; the
//! docker CLI here has no buildx for BuildKit) + `docker push`. The parent stage takes `--base-seconds` when built cold (as a
//! team's 4m42s base does); only the final stage's `COPY` of the changed file is rebuilt. A first,
//! unmeasured round warms both sides and is printed as the cold time.
//!
//! `cargo build --release -p slipway-build && cargo run --release -p slipway-bench --bin build-e2e [-- --warm]`

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use slipway_broker::Topology;
use slipway_common::index::Entry;
use slipway_common::message::{CommitSha, LintPassed};
use slipway_common::{Cause, Envelope, Message};
use slipway_tests::git::LocalRepo;
use slipway_tests::{AMQP_URL, TempDir, TestBus, test_settings};
use tokio::sync::mpsc;

/// Arguments.
#[derive(Parser, Debug)]
#[command(
    about = "Build job end to end through slipway-build vs docker build + docker push by hand"
)]
struct Args {
    /// Repetitions of each side.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Size of the random payload each build writes into a layer, in MiB.
    #[arg(long, default_value_t = 16)]
    payload_mib: u32,
    /// The `slipway-build` binary (default: next to this program).
    #[arg(long)]
    worker: Option<PathBuf>,
    /// Measure warm-cache rebuilds of an unchanged parent's child instead of cold builds.
    #[arg(long)]
    warm: bool,
    /// The worker's `[build] builder` for plain Dockerfiles: `classic` (its default) or
    /// `buildkit`.
    #[arg(long, default_value = "classic")]
    builder: String,
    /// With `--warm`: how long the parent stage takes when built cold, in seconds.
    #[arg(long, default_value_t = 10)]
    base_seconds: u32,
}

/// With `--warm`: an expensive parent stage that no repetition changes, and a child stage that
/// takes the changed file.
/// `BENCH_RUN` (this run's id) makes the parent stage new to every cache when a run starts.
const WARM_DOCKERFILE: &str = "FROM slipway/debian:bookworm AS base\nARG PAYLOAD_MIB\nARG BASE_SECONDS\nARG BENCH_RUN\nRUN echo ${BENCH_RUN} > /run-id && dd if=/dev/urandom of=/payload bs=1M count=${PAYLOAD_MIB} status=none && sleep ${BASE_SECONDS}\nFROM base\nCOPY nonce /nonce\nCMD [\"ls\", \"-l\", \"/payload\"]\n";

const DOCKERFILE: &str = "FROM slipway/debian:bookworm AS build\nCOPY nonce /nonce\nARG PAYLOAD_MIB\nRUN dd if=/dev/urandom of=/payload bs=1M count=${PAYLOAD_MIB} status=none && cat /nonce >> /payload\nFROM slipway/debian:bookworm\nCOPY --from=build /payload /payload\nCMD [\"ls\", \"-l\", \"/payload\"]\n";

/// Kills the worker on drop.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let output = cmd
        .stdout(Stdio::null())
        .output()
        .with_context(|| format!("{cmd:?}"))?;
    if !output.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let worker_bin = match args.worker {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .context("the bench binary has a directory")?
            .join("slipway-build"),
    };
    if !worker_bin.is_file() {
        bail!(
            "{} not found: `cargo build --release -p slipway-build` first",
            worker_bin.display()
        );
    }
    slipway_tests::ensure_docker();
    let settings = test_settings("bench-build");
    let bus = TestBus::start(settings.clone(), Topology::pipeline(&settings)).await;
    let (tx, mut done) = mpsc::unbounded_channel();
    let observer = bus.spawn_observer("notify", tx);
    let cache = TempDir::new("bench-build-git");
    let work = TempDir::new("bench-build-work");
    let worker = Worker(
        Command::new(&worker_bin)
            .env("SLIPWAY_BROKER__URL", AMQP_URL)
            .env("SLIPWAY_BROKER__NAMESPACE", &settings.namespace)
            .env("SLIPWAY_SOURCE__CACHE_DIR", cache.path())
            .env("SLIPWAY_SOURCE__ALLOW_FILE_URLS", "true")
            .env("SLIPWAY_BUILD__WORK_DIR", work.path())
            .env("SLIPWAY_BUILD__MIN_FREE_BYTES", "0")
            .env(
                "SLIPWAY_BUILD__CACHE",
                std::env::var("BENCH_CACHE")
                    .unwrap_or_else(|_| if args.warm { "true" } else { "false" }.into()),
            )
            .env("SLIPWAY_BUILD__BUILDER", &args.builder)
            .env("SLIPWAY_TELEMETRY__METRICS_ADDR", "127.0.0.1:0")
            .env("SLIPWAY_TELEMETRY__LOG_FILTER", "warn")
            .stdout(Stdio::null())
            .spawn()
            .context("starting slipway-build")?,
    );
    let repo = LocalRepo::new("bench-build");
    let run_id = format!("bench{}", std::process::id());
    let manual_ctx = TempDir::new("bench-build-manual");
    let dockerfile = if args.warm {
        WARM_DOCKERFILE
    } else {
        DOCKERFILE
    };
    std::fs::write(manual_ctx.path().join("Dockerfile"), dockerfile)?;
    println!(
        "build-e2e: {} repetitions, {} MiB payload layer, two-stage Dockerfile, network none, registry 127.0.0.1:5000{}",
        args.repeat,
        args.payload_mib,
        if args.warm {
            format!(
                "; warm: layer cache on both sides (slipway's {} builder, by hand the legacy builder), parent stage {} s cold, unchanged",
                args.builder, args.base_seconds
            )
        } else {
            String::new()
        }
    );
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    // With --warm, round 0 warms the caches and is not measured.
    let rounds = if args.warm {
        args.repeat + 1
    } else {
        args.repeat
    };
    for round in 0..rounds {
        // Slipway: lint.passed in → build.succeeded out.
        let sha = repo.commit(
            &[
                ("Dockerfile", dockerfile),
                ("nonce", &format!("slipway {round} {}\n", now_nanos())),
            ],
            "bench round",
        );
        let entry = Entry {
            job_id: "slipway".into(),
            desired_tag: format!("r{round}"),
            build_args: [
                ("PAYLOAD_MIB".to_string(), args.payload_mib.to_string()),
                ("BASE_SECONDS".to_string(), args.base_seconds.to_string()),
                ("BENCH_RUN".to_string(), run_id.clone()),
            ]
            .into(),
            ..repo.entry(&run_id)
        };
        let job = Envelope::new_job(
            Cause::User,
            Message::LintPassed(LintPassed {
                entry,
                commit: CommitSha::try_from(sha)?,
                findings: Vec::new(),
            }),
        );
        let started = Instant::now();
        bus.publisher.publish(&job).await?;
        let elapsed = loop {
            let event = tokio::time::timeout(Duration::from_secs(600), done.recv())
                .await
                .context("no outcome within 10 minutes")?
                .context("observer stopped")?;
            if event.job_id == job.job_id {
                match event.message {
                    Message::BuildSucceeded(_) => break started.elapsed(),
                    other => bail!("the build did not succeed: {other:?}"),
                }
            }
        };
        let ours_round = elapsed;

        // By hand: docker build + docker push of the same Dockerfile with a fresh nonce.
        std::fs::write(
            manual_ctx.path().join("nonce"),
            format!("manual {round} {}\n", now_nanos()),
        )?;
        let image = format!("127.0.0.1:5000/{run_id}/manual:r{round}");
        let started = Instant::now();
        run(Command::new("docker")
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "-q", "--network", "none", "--build-arg"])
            .arg(format!("PAYLOAD_MIB={}", args.payload_mib))
            .arg("--build-arg")
            .arg(format!("BASE_SECONDS={}", args.base_seconds))
            .arg("--build-arg")
            .arg(format!("BENCH_RUN={run_id}"))
            .args(["-t", &image])
            .arg(manual_ctx.path()))?;
        run(Command::new("docker").args(["push", "-q", &image]))?;
        let theirs_round = started.elapsed();
        let label = if args.warm && round == 0 {
            "cold (warm-up)".to_owned()
        } else {
            ours.push(ours_round);
            theirs.push(theirs_round);
            format!("round {}", ours.len())
        };
        println!(
            "{label}: slipway-build {:6.2} s   docker build+push {:6.2} s",
            ours_round.as_secs_f64(),
            theirs_round.as_secs_f64()
        );
        // Warm: the legacy builder's cache is the images themselves; they go at the end.
        if !args.warm {
            let _ = Command::new("docker").args(["rmi", "-f", &image]).output();
        }
    }
    let (ours_med, theirs_med) = (slipway_bench::median(ours), slipway_bench::median(theirs));
    let ratio = ours_med.as_secs_f64() / theirs_med.as_secs_f64();
    println!(
        "median: slipway-build {:.2} s   by hand {:.2} s   ratio {ratio:.3} (target <= 1.05, or within +0.2 s: {:+.2} s)",
        ours_med.as_secs_f64(),
        theirs_med.as_secs_f64(),
        ours_med.as_secs_f64() - theirs_med.as_secs_f64()
    );
    match slipway_bench::peak_rss_kib(worker.0.id()) {
        Some(kib) => println!("slipway-build peak RSS: {:.1} MiB", kib as f64 / 1024.0),
        None => println!("slipway-build peak RSS: unavailable"),
    }
    drop(worker);
    observer.stop().await?;
    bus.cleanup().await;
    let _ = remove_images(&run_id);
    Ok(())
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// Removes the local images of this run.
fn remove_images(run_id: &str) -> anyhow::Result<()> {
    let output = Command::new("docker")
        .args([
            "images",
            "-q",
            "--filter",
            &format!("reference=127.0.0.1:5000/{run_id}/*"),
        ])
        .output()?;
    let ids: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    if !ids.is_empty() {
        let _ = Command::new("docker")
            .arg("rmi")
            .arg("-f")
            .args(&ids)
            .output();
    }
    Ok(())
}

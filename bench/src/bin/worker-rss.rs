//! `worker-rss`: the resident memory of each of the six worker binaries, against the 15 MB target
//! of issue 17, measured on the real broker: once the worker is ready and idle, and again after
//! traffic. The elected workers (repo-tracker, rescan-scheduler, notify) read a history prefilled
//! with `--history` events at start, as they read the 30-day history in production; the lint
//! worker then dead-letters `--traffic` undecodable jobs. Run it on release binaries:
//!
//! ```sh
//! cargo build --release --bins && cargo run --release -p slipway-bench --bin worker-rss
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use slipway_broker::Topology;
use slipway_common::Kind;
use slipway_common::worker::WorkerKind;
use slipway_tests::fleet::Instance;
use slipway_tests::git::LocalRepo;
use slipway_tests::{TempDir, TestBus, build_requested, follow_up_of_kind, test_settings};

/// The target of issue 17, in bytes (MB, not MiB).
const TARGET_BYTES: f64 = 15e6;

/// Arguments.
#[derive(Parser, Debug)]
#[command(about = "Resident memory of each worker binary, idle and after traffic, vs 15 MB")]
struct Args {
    /// Where the worker binaries are (default: target/release of this workspace).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Events in the history before the workers start (read by the elected workers at start).
    #[arg(long, default_value_t = 5_000)]
    history: usize,
    /// Undecodable 4 KiB jobs the lint worker dead-letters after the idle measurement.
    #[arg(long, default_value_t = 3_000)]
    traffic: usize,
    /// Seconds of idling before the first measurement.
    #[arg(long, default_value_t = 15)]
    idle_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin_dir = match args.bin_dir.clone() {
        Some(dir) => dir,
        None => slipway_common::workspace::root_from(&std::env::current_dir()?)
            .context("not inside the workspace: give --bin-dir")?
            .join("target")
            .join("release"),
    };
    for kind in WorkerKind::ALL {
        let binary = bin_dir.join(kind.binary());
        if !binary.exists() {
            bail!(
                "{} is missing: `cargo build --release --bins` first (or --bin-dir)",
                binary.display()
            );
        }
    }
    let settings = test_settings("worker-rss");
    let bus = TestBus::start(settings.clone(), Topology::pipeline(&settings)).await;
    let job = build_requested();
    let events: Vec<_> = (0..args.history)
        .map(|_| follow_up_of_kind(&job, Kind::GitChanged))
        .collect();
    for batch in events.chunks(500) {
        bus.publisher
            .publish_all(batch)
            .await
            .context("prefill the history")?;
    }

    let work = TempDir::new("worker-rss");
    let index = LocalRepo::new("worker-rss-index");
    index.commit(&[("index.d/team.yaml", "Projects: []\n")], "an empty index");
    index.git(&["branch", "-M", "main"]);
    let mut fleet = Vec::new();
    for kind in WorkerKind::ALL {
        let env = slipway_tests::fleet::worker_settings(
            kind,
            work.path(),
            &index.url(),
            slipway_tests::free_port(),
        );
        let instance = Instance::start(bin_dir.join(kind.binary()), &settings.namespace, &env);
        fleet.push((kind, instance));
    }
    let started = Instant::now();
    for (kind, instance) in &fleet {
        while instance.get("/healthz").map(|(code, _)| code) != Some(200) {
            if started.elapsed() > Duration::from_secs(120) {
                bail!("{} not ready after 2 minutes", kind.name());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    println!(
        "worker-rss: {} history events read at start by the elected workers, {} s idle, then {} \
         undecodable 4 KiB jobs through lint; binaries from {}",
        args.history,
        args.idle_secs,
        args.traffic,
        bin_dir.display()
    );
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let idle: Vec<f64> = fleet
        .iter()
        .map(|(_, instance)| rss(instance))
        .collect::<anyhow::Result<_>>()?;

    let body = vec![0xc1_u8; 4096]; // 0xc1 is never valid MessagePack
    for _ in 0..args.traffic {
        bus.publisher
            .publish_raw("build.requested", &body)
            .await
            .context("publish traffic")?;
    }
    let lint_queue = bus.topology.worker_queue("lint");
    let waited = Instant::now();
    while bus
        .depths()
        .await
        .iter()
        .any(|(queue, ready)| queue.starts_with(&lint_queue) && *ready > 0)
    {
        if waited.elapsed() > Duration::from_secs(300) {
            bail!("lint did not drain its queue in 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after: Vec<f64> = fleet
        .iter()
        .map(|(_, instance)| rss(instance))
        .collect::<anyhow::Result<_>>()?;

    println!(
        "{:<17} {:>10} {:>14} {:>8}",
        "worker", "idle MB", "after MB", "target"
    );
    let mut worst: f64 = 0.0;
    for ((kind, _), (idle, after)) in fleet.iter().zip(idle.iter().zip(&after)) {
        worst = worst.max(*idle).max(*after);
        println!(
            "{:<17} {:>10.1} {:>14.1} {:>8.1}",
            kind.name(),
            idle / 1e6,
            after / 1e6,
            TARGET_BYTES / 1e6
        );
    }
    println!(
        "largest: {:.1} MB = {:.2} × the target",
        worst / 1e6,
        worst / TARGET_BYTES
    );
    for (_, instance) in fleet {
        instance.terminate(Duration::from_secs(45));
    }
    bus.cleanup().await;
    Ok(())
}

/// The instance's `process_resident_memory_bytes`.
fn rss(instance: &Instance) -> anyhow::Result<f64> {
    instance
        .metric("process_resident_memory_bytes")
        .context("no process_resident_memory_bytes")
}

//! `tracker-webhook`: the latency from a forge's push webhook to the repo-tracker's
//! `build.requested` reaching the lint queue, at a steady request rate, beside the broker's own
//! floor measured in the same run (one confirmed publish to the same queue, at the same rate).
//!
//! Set-up: a real RabbitMQ; the tracker in this process (`slipway_repo_tracker::worker::run`)
//! with its webhook endpoint on 127.0.0.1 and an index of N entries, each from its own
//! repository (URLs on 127.0.0.1:9, never fetched: webhooks name the heads). Each repository
//! first gets a baseline push (the first head seen of a branch builds nothing); then one signed
//! GitHub push per repository is sent at `--rate` per second, and each one's latency is the time
//! from the start of its HTTP request to the arrival of its `build.requested` at a consumer of the
//! lint queue. Reference: `build.requested` published with a confirm by a plain publisher at the
//! same rate, from the start of the publish to its arrival at the same consumer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Parser;
use slipway_broker::Topology;
use slipway_broker::history::HistoryQuery;
use slipway_common::{Envelope, Kind, Message};
use slipway_repo_tracker::config::RepoTrackerConfig;
use slipway_tests::git::LocalRepo;
use slipway_tests::{TempDir, TestBus, eventually, metric_value, test_settings};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const SECRET: &[u8] = b"bench-secret";

/// Arguments.
#[derive(Parser, Debug)]
#[command(
    about = "Webhook push → build.requested at the lint queue: latency percentiles at a steady rate, beside the broker's publish → consume floor"
)]
struct Args {
    /// Pushes per second.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Seconds of pushes (rate × seconds repositories in the index).
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// The p99 target, in milliseconds (the issue's: 50).
    #[arg(long, default_value_t = 50.0)]
    target_p99_ms: f64,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A signed GitHub push of `head` to `main` of `url`; the HTTP status.
async fn push(addr: SocketAddr, url: &str, head: &str, delivery: &str) -> anyhow::Result<u16> {
    Ok(slipway_tests::webhook::github_push(addr, SECRET, url, head, delivery).await?)
}

fn repo_url(i: usize) -> String {
    format!("http://127.0.0.1:9/bench/r{i}")
}

fn head(i: usize, round: u8) -> String {
    format!("{round:02x}{i:038x}")
}

/// Percentile `p` (0..=100) of sorted `values`, in milliseconds.
fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

struct Summary {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    count: usize,
}

fn summarise(mut latencies: Vec<Duration>) -> Summary {
    latencies.sort();
    Summary {
        p50: percentile(&latencies, 50.0),
        p90: percentile(&latencies, 90.0),
        p99: percentile(&latencies, 99.0),
        max: latencies
            .last()
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
        count: latencies.len(),
    }
}

/// Receives `count` `build.requested` from `events` (keyed by entry job id) and returns each
/// one's latency from its start time in `started`.
async fn collect(
    events: &mut mpsc::UnboundedReceiver<Envelope>,
    started: &Mutex<HashMap<String, Instant>>,
    count: usize,
    deadline: Duration,
) -> anyhow::Result<Vec<Duration>> {
    let until = tokio::time::Instant::now() + deadline;
    let mut latencies = Vec::with_capacity(count);
    while latencies.len() < count {
        let Ok(Some(envelope)) = tokio::time::timeout_at(until, events.recv()).await else {
            bail!(
                "only {} of {count} build requests arrived in time",
                latencies.len()
            );
        };
        let arrived = Instant::now();
        let Message::BuildRequested(request) = &envelope.message else {
            continue;
        };
        if let Some(at) = started.lock().unwrap().remove(&request.entry.job_id) {
            latencies.push(arrived.duration_since(at));
        }
    }
    Ok(latencies)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    slipway_tests::ensure_rabbitmq();
    let n = (args.rate * args.seconds) as usize;
    let mut settings = test_settings("bench-tracker-webhook");
    settings.prefetch = 100;
    let bus = TestBus::start(settings.clone(), Topology::pipeline(&settings)).await;
    let (tx, mut events) = mpsc::unbounded_channel();
    let observer = bus.spawn_observer("lint", tx);

    eprintln!("index of {n} entries, each from its own repository …");
    let index = LocalRepo::new("bench-webhook-index");
    // A thousand entries per file: an index file may hold at most 1 MiB.
    let files: Vec<(String, String)> = (0..n)
        .collect::<Vec<_>>()
        .chunks(1000)
        .enumerate()
        .map(|(k, chunk)| {
            let mut yaml = String::from("Projects:\n");
            for &i in chunk {
                yaml.push_str(&format!(
                    "  - id: {}\n    app-id: bench{k}\n    job-id: r{i}\n    git-url: {}\n    git-path: /\n    git-branch: main\n    target-file: Dockerfile\n    desired-tag: latest\n    notify-email: bench@example.org\n    depends-on: []\n",
                    i + 1,
                    repo_url(i)
                ));
            }
            (format!("index.d/bench{k}.yaml"), yaml)
        })
        .collect();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(path, yaml)| (path.as_str(), yaml.as_str()))
        .collect();
    index.commit(&files, "bench index");

    let cache = TempDir::new("bench-webhook-cache");
    let secrets = TempDir::new("bench-webhook-secret");
    let port = free_port()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let mut config = RepoTrackerConfig {
        broker: settings.clone(),
        ..RepoTrackerConfig::default()
    };
    config.telemetry.metrics_addr = None;
    config.source.cache_dir = cache.path().to_path_buf();
    config.source.allow_file_urls = true;
    config.tracker.index_url = index.url();
    config.tracker.index_branch = "main".into();
    // One poll of everything at the start (the repositories answer nothing), then none.
    config.tracker.poll_interval_ms = 3_600_000;
    config.tracker.poll_timeout_ms = 2_000;
    config.webhook.listen = addr.to_string();
    config.webhook.secret_file = Some(secrets.file("secret", "bench-secret\n"));
    let shutdown = CancellationToken::new();
    let tracker = tokio::spawn(slipway_repo_tracker::worker::run(config, shutdown.clone()));

    let applied = bus
        .wait_for_history(
            HistoryQuery::all().kinds([Kind::IndexApplied]),
            1,
            Duration::from_secs(120),
        )
        .await;
    eprintln!(
        "index applied ({} events so far); baseline pushes …",
        applied.len()
    );
    for i in 0..n {
        let status = push(addr, &repo_url(i), &head(i, 1), &format!("base-{i}")).await?;
        if status != 202 {
            bail!("baseline push {i} answered {status}");
        }
    }
    bus.wait_for_history(
        HistoryQuery::all().kinds([Kind::GitChanged]),
        n,
        Duration::from_secs(120),
    )
    .await;
    // Measure from a quiet start: the first poll cycle over every repository has ended (each
    // answers an error: nothing listens there) and the tracker folded the baselines.
    let polls = || {
        ["moved", "unchanged", "error"]
            .iter()
            .map(|outcome| {
                metric_value(&format!(
                    "slipway_tracker_polls_total{{outcome=\"{outcome}\"}}"
                ))
                .unwrap_or(0.0)
            })
            .sum::<f64>()
    };
    let folded =
        || metric_value("slipway_tracker_history_events_total{outcome=\"applied\"}").unwrap_or(0.0);
    eventually(
        "the first poll cycle and the baselines folded",
        Duration::from_secs(300),
        || std::future::ready(polls() > n as f64 && folded() >= (n + 1) as f64),
    )
    .await;

    eprintln!("{n} pushes at {} per second …", args.rate);
    let started: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let sending = {
        let started = Arc::clone(&started);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut requests = tokio::task::JoinSet::new();
            let began = Instant::now();
            for i in 0..n {
                ticks.tick().await;
                started
                    .lock()
                    .unwrap()
                    .insert(format!("r{i}"), Instant::now());
                requests.spawn(async move {
                    push(addr, &repo_url(i), &head(i, 2), &format!("measured-{i}")).await
                });
            }
            let sent_in = began.elapsed();
            let mut failures = 0;
            while let Some(result) = requests.join_next().await {
                if !matches!(result, Ok(Ok(202))) {
                    failures += 1;
                }
            }
            (sent_in, failures)
        })
    };
    let tracker_latencies = collect(&mut events, &started, n, Duration::from_secs(120)).await?;
    let (sent_in, failures) = sending.await?;
    if failures > 0 {
        bail!("{failures} pushes were not answered 202");
    }
    shutdown.cancel();
    tracker.await??;

    eprintln!(
        "reference: {n} confirmed publishes at {} per second …",
        args.rate
    );
    let reference_started: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let publishing = {
        let started = Arc::clone(&reference_started);
        let publisher =
            Arc::new(slipway_broker::Publisher::open(bus.connection(), &bus.topology).await?);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut publishes = tokio::task::JoinSet::new();
            for i in 0..n {
                ticks.tick().await;
                let mut envelope = slipway_tests::build_requested();
                if let Message::BuildRequested(request) = &mut envelope.message {
                    request.entry.job_id = format!("ref{i}");
                }
                started
                    .lock()
                    .unwrap()
                    .insert(format!("ref{i}"), Instant::now());
                let publisher = Arc::clone(&publisher);
                publishes.spawn(async move { publisher.publish(&envelope).await });
            }
            while let Some(result) = publishes.join_next().await {
                result??;
            }
            anyhow::Ok(())
        })
    };
    let reference = collect(&mut events, &reference_started, n, Duration::from_secs(120)).await?;
    publishing.await??;
    observer.stop().await?;
    bus.cleanup().await;

    let (t, r) = (summarise(tracker_latencies), summarise(reference));
    println!(
        "tracker-webhook: {n} pushes sent in {:.1} s ({:.0}/s asked), each to its own repository",
        sent_in.as_secs_f64(),
        args.rate
    );
    println!("path                                   count    p50 ms   p90 ms   p99 ms   max ms");
    println!(
        "webhook → build.requested (tracker)   {:>6}  {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
        t.count, t.p50, t.p90, t.p99, t.max
    );
    println!(
        "publish → consume (broker floor)      {:>6}  {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
        r.count, r.p50, r.p90, r.p99, r.max
    );
    println!(
        "p99 ratio tracker/floor = {:.1}; p99 {:.1} ms {} the {:.0} ms target",
        t.p99 / r.p99,
        t.p99,
        if t.p99 <= args.target_p99_ms {
            "meets"
        } else {
            "misses"
        },
        args.target_p99_ms
    );
    Ok(())
}

//! `scheduler-scale`: the rescan-scheduler with 100,000 images and several instances. Measures
//! the time from starting the instances to every one of them holding the full schedule (its
//! `slipway_scheduler_live_images` gauge at the image count; target at most 10 s), then reads
//! one whole period of scheduled requests back from the history: every image requested exactly
//! once for the slot that starts in that period (0 duplicates, 0 missed), how late after its
//! slot began, and how evenly spread; and the peak RSS of each instance (target at most 100 MB).
//!
//! Set-up: a real RabbitMQ and its history stream, `build.succeeded` of N images (fifty owners)
//! and a `scan.completed` of each (so the view holds scan counts) published first, then `--instances` processes of `target/release/slipway-rescan-scheduler`
//! with a `--period-ms` short enough to watch a whole period.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use slipway_broker::Topology;
use slipway_broker::history::HistoryQuery;
use slipway_common::index::test_support::sample_entry;
use slipway_common::message::ScanCompleted;
use slipway_common::message::test_support::{sample_built, sample_digest};
use slipway_common::{Cause, Envelope, Kind, Message, Timestamp};
use slipway_rescan_scheduler::state::{key_of, offset};
use slipway_tests::fleet::Instance;
use slipway_tests::{TestBus, test_settings};

/// Arguments.
#[derive(Parser, Debug)]
#[command(
    about = "rescan-scheduler at scale: time to hold the schedule, one period's requests (duplicates, missed, lateness, spread), peak RSS"
)]
struct Args {
    /// Images built before the scheduler starts.
    #[arg(long, default_value_t = 100_000)]
    images: usize,
    /// Scheduler instances.
    #[arg(long, default_value_t = 3)]
    instances: usize,
    /// The rescan period, in milliseconds.
    #[arg(long, default_value_t = 60_000)]
    period_ms: u64,
    /// The scheduler binary (default: target/release/slipway-rescan-scheduler beside this one).
    #[arg(long)]
    scheduler: Option<PathBuf>,
    /// Do not publish a scan.completed per image (the view then holds no scan counts).
    #[arg(long)]
    without_scans: bool,
}

fn built(n: usize) -> Envelope {
    let entry = slipway_common::index::Entry {
        app_id: "scale".into(),
        job_id: format!("img{n}"),
        desired_tag: "1".into(),
        notify_email: Some(format!("owner{}@example.org", n % 50)),
        rebuild_schedule: None,
        ..sample_entry()
    };
    Envelope::new_job(Cause::User, Message::BuildSucceeded(sample_built(entry)))
}

/// The scan of image `n`, with the scan worker's counts.
fn scanned(n: usize) -> Envelope {
    Envelope::new_job(
        Cause::User,
        Message::ScanCompleted(ScanCompleted {
            image: slipway_common::ImageRef::parse(&format!("127.0.0.1:5000/scale/img{n}:1"))
                .expect("a name"),
            digest: sample_digest("cd"),
            counts: [
                ("packages", 96),
                ("os-updates", (n % 7) as u64),
                ("integrity", 0),
                ("capabilities", 1),
                ("vulnerabilities", (n % 3) as u64),
            ]
            .into_iter()
            .map(|(name, count)| (name.to_owned(), count))
            .collect(),
            notify_email: Some(format!("owner{}@example.org", n % 50)),
        }),
    )
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let binary = slipway_bench::sibling_binary(
        args.scheduler.clone(),
        "slipway-rescan-scheduler",
        "cargo build --release -p slipway-rescan-scheduler",
    )?;
    let settings = test_settings("bench-scheduler");
    let bus = TestBus::start(settings.clone(), Topology::pipeline(&settings)).await;

    let started = Instant::now();
    let builds: Vec<Envelope> = (0..args.images).map(built).collect();
    for chunk in builds.chunks(500) {
        bus.publisher.publish_all(chunk).await?;
    }
    drop(builds);
    if !args.without_scans {
        let scans: Vec<Envelope> = (0..args.images).map(scanned).collect();
        for chunk in scans.chunks(500) {
            bus.publisher.publish_all(chunk).await?;
        }
    }
    println!(
        "published {} build.succeeded{} in {:.1} s",
        args.images,
        if args.without_scans {
            ""
        } else {
            " and as many scan.completed"
        },
        started.elapsed().as_secs_f64()
    );

    let period = args.period_ms;
    let settings_env = [
        ("SLIPWAY_SCHEDULER__PERIOD_MS", period.to_string()),
        ("SLIPWAY_SCHEDULER__LEADER_RENEW_MS", "5000".to_owned()),
    ];
    let spawned = Instant::now();
    let fleet: Vec<Instance> = (0..args.instances)
        .map(|_| Instance::start(&binary, &settings.namespace, &settings_env))
        .collect();
    let full = args.images as f64;
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut held: Vec<Option<Duration>> = vec![None; fleet.len()];
    while held.iter().any(Option::is_none) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the schedule was not held within 300 s"
        );
        for (i, instance) in fleet.iter().enumerate() {
            if held[i].is_none() && instance.metric("slipway_scheduler_live_images") == Some(full) {
                held[i] = Some(spawned.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let slowest = held.iter().flatten().max().copied().unwrap_or_default();
    println!(
        "schedule held ({} images) by every instance: {}; slowest {:.2} s (target <= 10 s)",
        args.images,
        held.iter()
            .flatten()
            .map(|d| format!("{:.2} s", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", "),
        slowest.as_secs_f64()
    );

    // The slots that began before the schedule was held are overdue and sent at once; the
    // window starts once the leader has sent that backlog (it has published, and what is due
    // has waited less than a second), and lasts one whole period, in which each image has
    // exactly one slot beginning.
    let backlog = Instant::now();
    loop {
        let caught_up = slipway_tests::fleet::leader(&fleet, "rescan-scheduler").is_some_and(|i| {
            let leader = &fleet[i];
            leader
                .metric("slipway_scheduler_decisions_total{kind=\"scan.requested\"}")
                .is_some_and(|sent| sent > 0.0)
                && leader
                    .metric("slipway_scheduler_lag_milliseconds")
                    .is_some_and(|lag| lag < 1000.0)
        });
        if caught_up {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the backlog was not sent within 300 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "overdue backlog (slots begun before the schedule was held) sent {:.2} s after",
        backlog.elapsed().as_secs_f64()
    );
    let window_start = Timestamp::now().unix_millis();
    let window_end = window_start + period;
    let wait_until = Instant::now() + Duration::from_millis(period + 15_000);
    while Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let peaks: Vec<Option<u64>> = fleet
        .iter()
        .map(|i| slipway_bench::peak_rss_kib(i.pid()))
        .collect();
    let lag_max = fleet
        .iter()
        .filter_map(|i| i.metric("slipway_scheduler_lag_milliseconds"))
        .fold(0.0, f64::max);
    drop(fleet);

    let history = bus
        .history(HistoryQuery::all().kinds([Kind::ScanRequested]))
        .await;
    let mut per_image: HashMap<String, usize> = HashMap::new();
    let mut late: Vec<u64> = Vec::new();
    let tenth = period / 10;
    let mut spread = vec![0usize; 10];
    for event in &history {
        if event.envelope.cause != Cause::Schedule {
            continue;
        }
        let Message::ScanRequested(request) = &event.envelope.message else {
            continue;
        };
        let name = key_of(&request.image).expect("a tag").to_string();
        let at = event.envelope.created_at.unix_millis();
        let o = offset(&name, period);
        let slot_start = (at - o) / period * period + o;
        if (window_start..window_end).contains(&slot_start) {
            *per_image.entry(name).or_default() += 1;
            late.push(at - slot_start);
            spread[((slot_start - window_start) / tenth).min(9) as usize] += 1;
        }
    }
    let missed = args.images - per_image.len();
    let duplicates: usize = per_image.values().map(|n| n - 1).sum();
    late.sort_unstable();
    println!(
        "one period ({period} ms): {} requested, {duplicates} duplicates, {missed} missed (target 0 and 0)",
        per_image.len()
    );
    println!(
        "lateness after the slot began: p50 {} ms, p99 {} ms, max {} ms; leader's last lag gauge {lag_max} ms",
        percentile(&late, 0.5),
        percentile(&late, 0.99),
        late.last().copied().unwrap_or(0)
    );
    let mean = args.images / 10;
    println!(
        "per tenth of the period (mean {mean}): {:?}; max/mean {:.2}",
        spread,
        *spread.iter().max().unwrap_or(&0) as f64 / mean.max(1) as f64
    );
    for (i, peak) in peaks.iter().enumerate() {
        match peak {
            Some(kib) => println!(
                "instance {i}: peak RSS {:.1} MiB (target <= 100 MB)",
                *kib as f64 / 1024.0
            ),
            None => println!("instance {i}: peak RSS unavailable"),
        }
    }
    bus.cleanup().await;
    Ok(())
}

//! `notify-digest`: the notify worker under 10,000 events for 100 owners who each get a digest
//! per minute. Measures the time the worker takes to drain the events from its queue (beside the
//! time to publish them, the broker's pace in the same run), the mails the SMTP server receives
//! for the window (target: one per owner), the time from the window's end to the last digest,
//! and the worker's peak RSS.
//!
//! Set-up: a real RabbitMQ, a real SMTP server on 127.0.0.1 (aiosmtpd, as the tests use), and
//! `target/release/slipway-notify` with `digest_window_ms`; the events are `build.failed` of
//! 100 owners' images, published just after a window began.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use slipway_broker::Topology;
use slipway_common::index::test_support::sample_entry;
use slipway_common::message::{BuildFailed, BuildStage, CommitSha};
use slipway_common::{Cause, Envelope, Message, Timestamp};
use slipway_tests::fleet::Instance;
use slipway_tests::smtp::SmtpSink;
use slipway_tests::{TestBus, test_settings};

/// Arguments.
#[derive(Parser, Debug)]
#[command(
    about = "notify worker: 10,000 events for 100 owners with a digest window: drain time, mails per window, peak RSS"
)]
struct Args {
    /// Events published.
    #[arg(long, default_value_t = 10_000)]
    events: usize,
    /// Owners they are spread over.
    #[arg(long, default_value_t = 100)]
    owners: usize,
    /// The digest window, in milliseconds.
    #[arg(long, default_value_t = 60_000)]
    window_ms: u64,
    /// The notify binary (default: target/release/slipway-notify beside this one).
    #[arg(long)]
    notify: Option<PathBuf>,
}

fn failed(n: usize, owners: usize) -> Envelope {
    let mut entry = sample_entry();
    entry.app_id = "bench".into();
    entry.job_id = format!("img{n}");
    entry.desired_tag = "1".into();
    entry.notify_email = Some(format!("owner{}@example.org", n % owners));
    Envelope::new_job(
        Cause::GitChange,
        Message::BuildFailed(BuildFailed {
            entry,
            commit: CommitSha::try_from("ab".repeat(20)).expect("a commit"),
            stage: BuildStage::Build,
            error: "the build failed at Step 2/3 : RUN make".into(),
            log_tail: vec!["make: *** No rule to make target 'all'.  Stop.".into()],
        }),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let binary = slipway_bench::sibling_binary(
        args.notify.clone(),
        "slipway-notify",
        "cargo build --release -p slipway-notify",
    )?;
    let settings = test_settings("bench-notify");
    let bus = TestBus::start(settings.clone(), Topology::pipeline(&settings)).await;
    let sink = SmtpSink::start();
    let notify = Instance::start(
        &binary,
        &settings.namespace,
        &[
            ("SLIPWAY_SMTP__HOST", "127.0.0.1".to_owned()),
            ("SLIPWAY_SMTP__PORT", sink.port.to_string()),
            ("SLIPWAY_SMTP__SECURITY", "plain".to_owned()),
            ("SLIPWAY_SMTP__FROM", "slipway@example.org".to_owned()),
            (
                "SLIPWAY_NOTIFY__DIGEST_WINDOW_MS",
                args.window_ms.to_string(),
            ),
            ("SLIPWAY_NOTIFY__LEADER_RENEW_MS", "5000".to_owned()),
            ("SLIPWAY_BROKER__PREFETCH", "50".to_owned()),
        ],
    );
    // Start just after a window begins, so that every event falls in it.
    let now = Timestamp::now().unix_millis();
    let window_end = (now / args.window_ms + 1) * args.window_ms;
    tokio::time::sleep(Duration::from_millis(window_end - now + 100)).await;
    let window_end = window_end + args.window_ms;

    let events: Vec<Envelope> = (0..args.events).map(|n| failed(n, args.owners)).collect();
    let started = Instant::now();
    for chunk in events.chunks(500) {
        bus.publisher.publish_all(chunk).await?;
    }
    let published = started.elapsed();
    let queue = format!("{}.notify", settings.namespace);
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let depth = bus.depths().await.get(&queue).copied().unwrap_or(0);
        let handled = notify
            .metric("slipway_notify_suppressed_total{reason=\"digest\"}")
            .unwrap_or(0.0);
        if depth == 0 && handled >= args.events as f64 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the worker did not drain its queue in 600 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained = started.elapsed();
    println!(
        "{} events for {} owners: published in {:.2} s ({:.0}/s); drained by the worker in {:.2} s ({:.0}/s)",
        args.events,
        args.owners,
        published.as_secs_f64(),
        args.events as f64 / published.as_secs_f64(),
        drained.as_secs_f64(),
        args.events as f64 / drained.as_secs_f64()
    );

    // The window ends; the digests go out.
    let deadline = Instant::now()
        + Duration::from_millis(window_end - Timestamp::now().unix_millis().min(window_end))
        + Duration::from_secs(120);
    let mut last_mail_after_end = None;
    loop {
        let count = sink.received().len();
        if count >= args.owners {
            last_mail_after_end = Some(Timestamp::now().unix_millis().saturating_sub(window_end));
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A little longer: anything more than one per owner would be a duplicate.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let received = sink.received();
    let mut per_owner: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut listed = 0usize;
    for mail in &received {
        *per_owner.entry(mail.rcpt_to.join(",")).or_default() += 1;
        listed += mail
            .header("Subject")
            .and_then(|s| {
                s.split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse::<usize>().ok())
            })
            .unwrap_or(0);
    }
    println!(
        "mails for the window: {} (target {} = one per owner); owners with more than one: {}; events the digests list: {listed}",
        received.len(),
        args.owners,
        per_owner.values().filter(|n| **n > 1).count()
    );
    match last_mail_after_end {
        Some(ms) => println!("last digest {ms} ms after the window ended"),
        None => println!("the digests did not all arrive within 120 s of the window's end"),
    }
    match slipway_bench::peak_rss_kib(notify.pid()) {
        Some(kib) => println!("slipway-notify peak RSS: {:.1} MiB", kib as f64 / 1024.0),
        None => println!("slipway-notify peak RSS: unavailable"),
    }
    drop(notify);
    bus.cleanup().await;
    Ok(())
}

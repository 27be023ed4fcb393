//! `broker-throughput`: messages per second through a no-op two-stage chain, Slipway's broker
//! layer against a raw lapin loop of the same shape, measured in the same run on the same broker.
//!
//! Both chains: publish N messages with confirms → stage 1 consumes each, publishes one message to
//! stage 2 with a confirm, then acks → stage 2 consumes and acks. Same quorum queues, same
//! prefetch, one task per delivery in both. Slipway's chain also decodes each envelope and
//! encodes a follow-up event, as a real worker does. The figure is N / (first publish → last ack).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use futures_util::StreamExt;
use futures_util::future::try_join_all;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use slipway_broker::{BrokerSettings, Job, Outcome};
use slipway_tests::{TestBus, build_requested, chain_topology, lint_passed_after};
use tokio::sync::Notify;

/// Arguments.
#[derive(Parser, Debug)]
#[command(about = "Slipway's two-stage chain vs a raw lapin chain: msgs/s and ratio")]
struct Args {
    /// Messages per run.
    #[arg(long, default_value_t = 10_000)]
    messages: usize,
    /// Prefetch (concurrency) of each stage.
    #[arg(long, default_value_t = 50)]
    prefetch: u16,
    /// Alternating runs of each; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// AMQP URL.
    #[arg(long, default_value = slipway_tests::AMQP_URL)]
    url: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    slipway_tests::ensure_rabbitmq();
    println!(
        "broker-throughput: {} messages per run, prefetch {}, {} rounds, two-stage chain with confirms and acks",
        args.messages, args.prefetch, args.rounds
    );
    let (mut raw, mut slipway) = (Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        let r = raw_chain(&args).await.context("raw lapin chain")?;
        let s = slipway_chain(&args).await.context("slipway chain")?;
        println!(
            "round {round}: raw lapin {r:>8.0} msg/s   slipway {s:>8.0} msg/s   ratio {:.2}",
            s / r
        );
        raw.push(r);
        slipway.push(s);
    }
    let (raw, slipway) = (median(raw), median(slipway));
    println!("median:  raw lapin {raw:>8.0} msg/s   slipway {slipway:>8.0} msg/s");
    println!("ratio slipway/raw = {:.2} (target >= 0.70)", slipway / raw);
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The message body both chains carry: a real encoded `build.requested` envelope.
fn sample_body() -> anyhow::Result<Vec<u8>> {
    Ok(build_requested().encode()?)
}

async fn slipway_chain(args: &Args) -> anyhow::Result<f64> {
    let settings = BrokerSettings {
        url: args.url.as_str().into(),
        prefetch: args.prefetch,
        ..slipway_tests::test_settings("bench")
    };
    let bus = TestBus::start(settings.clone(), chain_topology(&settings)).await;
    let done = Arc::new(Notify::new());
    let count = Arc::new(AtomicUsize::new(0));
    let target = args.messages;
    let first = bus.spawn_worker("first", |job: Job| async move {
        Outcome::Ack(vec![lint_passed_after(&job.envelope)])
    });
    let second = {
        let (done, count) = (done.clone(), count.clone());
        bus.spawn_worker("second", move |_job: Job| {
            if count.fetch_add(1, Ordering::SeqCst) + 1 == target {
                done.notify_one();
            }
            std::future::ready(Outcome::Ack(Vec::new()))
        })
    };
    let jobs: Vec<_> = (0..args.messages).map(|_| build_requested()).collect();
    let started = Instant::now();
    for batch in jobs.chunks(100) {
        bus.publisher.publish_all(batch).await?;
    }
    tokio::time::timeout(Duration::from_secs(600), done.notified())
        .await
        .context("slipway chain did not finish in 10 minutes")?;
    let elapsed = started.elapsed();
    first.stop().await?;
    second.stop().await?;
    bus.cleanup().await;
    Ok(args.messages as f64 / elapsed.as_secs_f64())
}

async fn raw_chain(args: &Args) -> anyhow::Result<f64> {
    let connection = Connection::connect(&args.url, ConnectionProperties::default()).await?;
    let prefix = format!(
        "bench.raw.{}.{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    );
    let (queue_a, queue_b) = (format!("{prefix}.a"), format!("{prefix}.b"));
    let setup = connection.create_channel().await?;
    for queue in [&queue_a, &queue_b] {
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(LongString::from("quorum")),
        );
        setup
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                arguments,
            )
            .await?;
    }

    let done = Arc::new(Notify::new());
    let stage_one = spawn_raw_stage(
        &connection,
        &queue_a,
        Some(queue_b.clone()),
        args,
        done.clone(),
    )
    .await?;
    let stage_two = spawn_raw_stage(&connection, &queue_b, None, args, done.clone()).await?;

    let publisher = confirm_channel(&connection).await?;
    let body = sample_body()?;
    let started = Instant::now();
    for batch in (0..args.messages).collect::<Vec<_>>().chunks(100) {
        let mut confirms = Vec::with_capacity(batch.len());
        for _ in batch {
            confirms.push(publish(&publisher, &queue_a, &body).await?);
        }
        for confirmed in try_join_all(confirms).await? {
            anyhow::ensure!(
                confirmed == Confirmation::Ack(None),
                "publish not confirmed"
            );
        }
    }
    tokio::time::timeout(Duration::from_secs(600), done.notified())
        .await
        .context("raw chain did not finish in 10 minutes")?;
    let elapsed = started.elapsed();
    // Close the stages' consumers with their connection, then delete the queues from another:
    // deleting a queue under a consumer that is being dropped makes the broker's cancel and
    // lapin's cross (UNEXPECTED-FRAME: basic.cancel-ok), and aborting the stages first leaves
    // their channels closing, which fails the connection's close.
    connection
        .close(200, "bench done".into())
        .await
        .context("closing the chain's connection")?;
    drop(setup);
    stage_one.abort();
    stage_two.abort();
    let cleanup = Connection::connect(&args.url, ConnectionProperties::default()).await?;
    let channel = cleanup.create_channel().await?;
    for queue in [&queue_a, &queue_b] {
        channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await
            .context("deleting the chain's queues")?;
    }
    cleanup
        .close(200, "bench done".into())
        .await
        .context("closing the cleanup connection")?;
    Ok(args.messages as f64 / elapsed.as_secs_f64())
}

async fn confirm_channel(connection: &Connection) -> anyhow::Result<Channel> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

async fn publish(
    channel: &Channel,
    queue: &str,
    body: &[u8],
) -> anyhow::Result<lapin::PublisherConfirm> {
    Ok(channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            body,
            BasicProperties::default().with_delivery_mode(2),
        )
        .await?)
}

/// A raw stage: one task per delivery; forward (confirmed) then ack, or just ack and count.
async fn spawn_raw_stage(
    connection: &Connection,
    queue: &str,
    forward_to: Option<String>,
    args: &Args,
    done: Arc<Notify>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(args.prefetch, BasicQosOptions::default())
        .await?;
    let publisher = confirm_channel(connection).await?;
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let target = args.messages;
    let count = Arc::new(AtomicUsize::new(0));
    Ok(tokio::spawn(async move {
        while let Some(Ok(delivery)) = consumer.next().await {
            let (publisher, forward_to, done, count) = (
                publisher.clone(),
                forward_to.clone(),
                done.clone(),
                count.clone(),
            );
            tokio::spawn(async move {
                if let Some(next) = &forward_to {
                    let confirmed = match publish(&publisher, next, &delivery.data).await {
                        Ok(confirm) => confirm.await,
                        Err(_) => return,
                    };
                    if !matches!(confirmed, Ok(Confirmation::Ack(None))) {
                        return;
                    }
                }
                if delivery.acker.ack(BasicAckOptions::default()).await.is_ok()
                    && forward_to.is_none()
                    && count.fetch_add(1, Ordering::SeqCst) + 1 == target
                {
                    done.notify_one();
                }
            });
        }
    }))
}

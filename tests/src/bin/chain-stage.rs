//! `chain-stage`: the first stage of the test chain as a real process, so tests can SIGKILL and
//! SIGTERM it. Consumes `build.requested` as worker `first` in a test namespace, works for
//! `--work-ms`, then emits `lint.passed`. Shaped like a Slipway worker binary: settings, telemetry,
//! signals, then the broker's consumer runner.

use std::time::Duration;

use clap::Parser;
use slipway_broker::{BrokerSettings, Consumer, Job, Outcome};
use slipway_common::telemetry::{TelemetrySettings, WorkerLabel, start_process};

/// Arguments.
#[derive(Parser, Debug)]
#[command(about = "First stage of the integration-test chain (build.requested -> lint.passed)")]
struct Args {
    /// Namespace (exchange and queue prefix) of the test.
    #[arg(long)]
    namespace: String,
    /// Simulated work per job, in milliseconds.
    #[arg(long, default_value_t = 0)]
    work_ms: u64,
    /// Jobs handled at once.
    #[arg(long, default_value_t = 1)]
    prefetch: u16,
    /// Serve `/metrics` on this address.
    #[arg(long)]
    metrics_addr: Option<std::net::SocketAddr>,
    /// AMQP URL.
    #[arg(long, default_value = slipway_tests::AMQP_URL)]
    url: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let shutdown = start_process(&TelemetrySettings {
        metrics_addr: args.metrics_addr,
        ..TelemetrySettings::default()
    })
    .await?;
    let settings = BrokerSettings {
        url: args.url.into(),
        namespace: args.namespace,
        prefetch: args.prefetch,
        ..slipway_tests::test_settings("unused")
    };
    let topology = slipway_tests::chain_topology(&settings);
    let work = Duration::from_millis(args.work_ms);
    let handler = move |job: Job| async move {
        tokio::time::sleep(work).await;
        Outcome::Ack(vec![slipway_tests::lint_passed_after(&job.envelope)])
    };
    Consumer::new(WorkerLabel::Stage("first"), settings, topology, handler)
        .run(shutdown)
        .await?;
    Ok(())
}

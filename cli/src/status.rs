//! `slipway status`: the pipeline at a glance — per stage, the messages ready, in flight
//! (delivered, not yet acked) and retrying (waiting in the stage's delay queues), and the
//! consumers; then the dead letters. Ready and consumer counts come from the broker itself
//! (AMQP); in-flight counts from RabbitMQ's Prometheus endpoint (`rabbitmq_prometheus`, its
//! detailed per-queue metrics), which is optional: without it they are shown as unknown.

use std::collections::HashMap;
use std::io::{self, Read as _, Write as _};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use slipway_broker::inspect::queue_counts;
use slipway_broker::{BrokerConnection, BrokerSettings, Topology};

/// Output formats of `slipway status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    /// A table: one row per stage, then the dead letters.
    Table,
    /// One JSON object: `stages` (stage, ready, in_flight, retrying, consumers) and
    /// `dead_letters`.
    Json,
}

/// Arguments of `slipway status`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Per stage (lint, build, scan, notify): messages ready, in flight (delivered to a worker, not \
yet acked), retrying (waiting in the stage's delay queues), and consumers; then the dead \
letters (slipway dead list shows them). In-flight counts come from RabbitMQ's Prometheus \
endpoint ([status] broker_metrics_url, default http://127.0.0.1:15692); when it cannot be \
reached they are shown as ? (null in JSON) and a note says why.

Exit status: 0 the status was printed; 2 the broker cannot be reached.")]
pub struct StatusArgs {
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    format: StatusFormat,
}

/// `[status]` of the CLI configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusSettings {
    /// RabbitMQ's Prometheus endpoint (`rabbitmq_prometheus`), for in-flight counts.
    pub broker_metrics_url: String,
}

impl Default for StatusSettings {
    fn default() -> Self {
        StatusSettings {
            broker_metrics_url: "http://127.0.0.1:15692".to_owned(),
        }
    }
}

/// One stage's counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StageStatus {
    /// The stage (worker type).
    pub stage: String,
    /// Ready in its queue.
    pub ready: u64,
    /// Delivered and not acked; `None` when the metrics endpoint could not say.
    pub in_flight: Option<u64>,
    /// Waiting in its delay queues.
    pub retrying: u64,
    /// Consumers of its queue.
    pub consumers: u64,
}

/// Largest metrics answer read (a broker with thousands of queues answers a few MB).
const MAX_METRICS_BYTES: u64 = 64 << 20;
/// The longest the in-flight counts may take, connection and whole answer.
const METRICS_TIME_LIMIT: Duration = Duration::from_secs(5);

/// The unacked count of each queue, from the detailed Prometheus endpoint at `base`
/// (`http://host:port`).
fn unacked_counts(base: &str) -> Result<HashMap<String, u64>, String> {
    let authority = base
        .strip_prefix("http://")
        .ok_or_else(|| format!("{base:?} is not an http:// URL"))?
        .trim_end_matches('/');
    let address = authority
        .parse::<std::net::SocketAddr>()
        .or_else(|_| {
            std::net::ToSocketAddrs::to_socket_addrs(authority)
                .map_err(|e| e.to_string())?
                .next()
                .ok_or_else(|| format!("{authority} resolves to nothing"))
        })
        .map_err(|e| format!("{authority}: {e}"))?;
    let deadline = Instant::now() + METRICS_TIME_LIMIT;
    let mut stream = TcpStream::connect_timeout(&address, METRICS_TIME_LIMIT)
        .map_err(|e| format!("{base}: {e}"))?;
    stream.set_write_timeout(Some(METRICS_TIME_LIMIT)).ok();
    write!(
        stream,
        "GET /metrics/detailed?family=queue_coarse_metrics HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("{base}: {e}"))?;
    let response = read_within(&mut stream, MAX_METRICS_BYTES, deadline)
        .map_err(|e| format!("{base}: {e}"))?;
    if !response.starts_with("HTTP/1.1 200") && !response.starts_with("HTTP/1.0 200") {
        let status = response.lines().next().unwrap_or("no answer");
        return Err(format!("{base}: {status}"));
    }
    Ok(parse_unacked(&response))
}

/// Everything `stream` sends until it closes, at most `limit` bytes, by `deadline`: a server
/// that trickles its answer cannot hold the command longer than a slow one.
fn read_within(stream: &mut TcpStream, limit: u64, deadline: Instant) -> io::Result<String> {
    let mut response = Vec::new();
    let mut buffer = [0_u8; 16 * 1024];
    loop {
        if response.len() as u64 >= limit {
            return Err(io::Error::other(format!(
                "the answer is over {} MiB",
                limit >> 20
            )));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no complete answer within {} s",
                    METRICS_TIME_LIMIT.as_secs()
                ),
            ));
        }
        stream.set_read_timeout(Some(left))?;
        let wanted = buffer
            .len()
            .min(usize::try_from(limit).unwrap_or(usize::MAX) - response.len());
        match stream.read(&mut buffer[..wanted]) {
            Ok(0) => return Ok(String::from_utf8_lossy(&response).into_owned()),
            Ok(read) => response.extend_from_slice(&buffer[..read]),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no complete answer within {} s",
                        METRICS_TIME_LIMIT.as_secs()
                    ),
                ));
            }
            Err(error) => return Err(error),
        }
    }
}

/// `rabbitmq_detailed_queue_messages_unacked{vhost="…",queue="Q"} N` lines → Q → N.
fn parse_unacked(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("rabbitmq_detailed_queue_messages_unacked{")?;
            let (labels, value) = rest.split_once("} ")?;
            let queue = labels
                .split(',')
                .find_map(|label| label.strip_prefix("queue=\""))?
                .trim_end_matches('"');
            Some((queue.to_owned(), value.trim().parse::<f64>().ok()? as u64))
        })
        .collect()
}

/// Run `slipway status`.
pub async fn run(
    settings: &BrokerSettings,
    status: &StatusSettings,
    args: &StatusArgs,
) -> anyhow::Result<ExitCode> {
    let connection = BrokerConnection::connect(settings, "slipway-cli").await?;
    let topology = Topology::pipeline(settings);
    let counts = queue_counts(&connection, &topology).await;
    connection.close().await;
    let counts = counts?;
    if counts.is_empty() {
        eprintln!(
            "slipway: no Slipway queues in namespace {:?} yet: no worker has started and nothing was ever submitted",
            settings.namespace
        );
    }
    let unacked = match unacked_counts(&status.broker_metrics_url) {
        Ok(unacked) => Some(unacked),
        Err(error) => {
            eprintln!(
                "slipway: note: in-flight counts unknown: {error} (enable the rabbitmq_prometheus plugin, or set [status] broker_metrics_url)"
            );
            None
        }
    };
    let by_queue: HashMap<&str, (u64, u64)> = counts
        .iter()
        .map(|c| {
            (
                c.queue.as_str(),
                (u64::from(c.ready), u64::from(c.consumers)),
            )
        })
        .collect();
    let stages: Vec<StageStatus> = topology
        .workers()
        .iter()
        .map(|worker| {
            let queue = topology.worker_queue(worker.worker);
            let (ready, consumers) = by_queue.get(queue.as_str()).copied().unwrap_or((0, 0));
            let retry_prefix = format!("{queue}.retry.");
            let retrying = by_queue
                .iter()
                .filter(|(name, _)| name.starts_with(&retry_prefix))
                .map(|(_, (ready, _))| ready)
                .sum();
            StageStatus {
                stage: worker.worker.to_owned(),
                ready,
                in_flight: unacked
                    .as_ref()
                    .map(|unacked| unacked.get(&queue).copied().unwrap_or(0)),
                retrying,
                consumers,
            }
        })
        .collect();
    let dead = by_queue
        .get(topology.dead_letter_queue().as_str())
        .map_or(0, |(ready, _)| *ready);
    match args.format {
        StatusFormat::Json => {
            let json = serde_json::json!({ "stages": stages, "dead_letters": dead });
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
        StatusFormat::Table => {
            println!(
                "{:<10} {:>8} {:>10} {:>9} {:>10}",
                "stage", "ready", "in-flight", "retrying", "consumers"
            );
            for stage in &stages {
                println!(
                    "{:<10} {:>8} {:>10} {:>9} {:>10}",
                    stage.stage,
                    stage.ready,
                    stage
                        .in_flight
                        .map_or_else(|| "?".to_owned(), |n| n.to_string()),
                    stage.retrying,
                    stage.consumers
                );
            }
            println!("dead letters: {dead}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unacked_counts_are_read_per_queue() {
        let text = "# TYPE rabbitmq_detailed_queue_messages_unacked gauge\n\
            rabbitmq_detailed_queue_messages_unacked{vhost=\"/\",queue=\"slipway.build\"} 2\n\
            rabbitmq_detailed_queue_messages_ready{vhost=\"/\",queue=\"slipway.build\"} 7\n\
            rabbitmq_detailed_queue_messages_unacked{vhost=\"/\",queue=\"slipway.lint\"} 0\n";
        let counts = parse_unacked(text);
        assert_eq!(counts.get("slipway.build"), Some(&2));
        assert_eq!(counts.get("slipway.lint"), Some(&0));
        assert_eq!(counts.len(), 2);
    }
}

//! `slipway schedule` and `slipway rescan`: the rescan-scheduler's view, folded here from the
//! `<namespace>.history` stream exactly as the scheduler folds it (its pure core,
//! `slipway_rescan_scheduler::state`), so what is listed is what the scheduler will do, with the
//! period of the CLI configuration's `[scheduler]` section (the scheduler's own setting).

use std::process::ExitCode;

use slipway_broker::history::{HistoryQuery, HistoryStep, history_stream_name};
use slipway_broker::streams::ReadFrom;
use slipway_broker::streams::reader::StreamError;
use slipway_broker::{BrokerConnection, BrokerSettings, Publisher, Topology};
use slipway_common::message::ScanRequested;
use slipway_common::terminal::escape;
use slipway_common::{Cause, Envelope, ImageRef, Message, Timestamp};
use slipway_rescan_scheduler::config::SchedulerSettings;
use slipway_rescan_scheduler::state::{SchedulerState, key_of};

use crate::history;

/// Output formats of `slipway schedule`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ScheduleFormat {
    /// One line per planned event: when (UTC), how long from now, what, for whom.
    Table,
    /// A JSON array of `{at, at_ms, what, subject}`.
    Json,
}

/// Arguments of `slipway schedule`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Lists the next rescans (scan.requested), scheduled rebuilds (build.requested) and owner \
summaries (summary.ready) the rescan-scheduler will publish, earliest first, from the history \
stream and the [scheduler] settings of the CLI configuration (period_ms must match the \
scheduler's).

Exit status: 0 listed (possibly nothing); 2 the broker or the history is unreadable.")]
pub struct ScheduleArgs {
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    format: ScheduleFormat,
    /// How many entries to list.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    limit: u32,
}

/// Arguments of `slipway rescan`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Publishes scan.requested (cause user) now: for IMAGE (a short index name such as team/app:1 is \
taken in Slipway's registry), or with --all for every live image the rescan-scheduler knows. The \
image's owner (notify-email) is taken from the history when known. The periodic schedule is not \
moved.

Exit status: 0 requested; 1 IMAGE is malformed, or --all found no live image; 2 the broker or \
the history is unreadable.")]
pub struct RescanArgs {
    /// The image to rescan.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub image: Option<String>,
    /// Rescan every live image.
    #[arg(long)]
    all: bool,
}

/// The scheduler's view, folded from the whole history.
async fn fold(
    connection: &BrokerConnection,
    settings: &BrokerSettings,
    scheduler: &SchedulerSettings,
) -> anyhow::Result<SchedulerState> {
    let mut state = SchedulerState::new(scheduler.timing());
    let mut events = history::open(
        connection,
        &settings.namespace,
        HistoryQuery::all(),
        ReadFrom::First,
        false,
    )
    .await?;
    while let Some(step) = events.next().await {
        match step? {
            HistoryStep::Event(event) => state.apply(&event.envelope),
            HistoryStep::Undecodable { .. } => {}
            HistoryStep::CaughtUp => break,
        }
    }
    events.close().await;
    Ok(state)
}

/// A read of a namespace with no history yet is an empty view, not an error.
async fn fold_or_empty(
    connection: &BrokerConnection,
    settings: &BrokerSettings,
    scheduler: &SchedulerSettings,
) -> anyhow::Result<SchedulerState> {
    match fold(connection, settings, scheduler).await {
        Err(error)
            if matches!(
                error.downcast_ref::<StreamError>(),
                Some(StreamError::NoStream { .. })
            ) =>
        {
            eprintln!(
                "slipway: {} does not exist: nothing was ever published in namespace {:?}",
                history_stream_name(&settings.namespace),
                settings.namespace
            );
            Ok(SchedulerState::new(scheduler.timing()))
        }
        other => other,
    }
}

/// `in 3h 05m`, `in 12s`, or `now` (overdue).
fn from_now(at: u64, now: u64) -> String {
    if at <= now {
        return "now".to_owned();
    }
    let seconds = (at - now) / 1000;
    let (days, hours, minutes) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60);
    if days > 0 {
        format!("in {days}d {hours:02}h")
    } else if hours > 0 {
        format!("in {hours}h {minutes:02}m")
    } else if minutes > 0 {
        format!("in {minutes}m {:02}s", seconds % 60)
    } else {
        format!("in {seconds}s")
    }
}

/// Run `slipway schedule`.
pub async fn schedule(
    settings: &BrokerSettings,
    scheduler: &SchedulerSettings,
    args: &ScheduleArgs,
) -> anyhow::Result<ExitCode> {
    let connection = BrokerConnection::connect(settings, "slipway-cli").await?;
    let state = fold_or_empty(&connection, settings, scheduler).await;
    connection.close().await;
    let state = state?;
    let now = Timestamp::now().unix_millis();
    let planned = state.planned(now, args.limit as usize);
    match args.format {
        ScheduleFormat::Json => {
            let rows: Vec<serde_json::Value> = planned
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "at": Timestamp::from_unix_millis(p.at).to_rfc3339(),
                        "at_ms": p.at,
                        "what": p.what,
                        "subject": p.subject,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&rows)?);
        }
        ScheduleFormat::Table => {
            println!(
                "{} live image(s), {} scheduled rebuild(s); period {} ms",
                state.live_images(),
                state.scheduled_rebuilds(),
                scheduler.period_ms
            );
            for p in &planned {
                println!(
                    "{}  {:<12}  {:<7}  {}",
                    Timestamp::from_unix_millis(p.at).to_rfc3339(),
                    from_now(p.at, now),
                    p.what,
                    escape(&p.subject)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Run `slipway rescan`.
pub async fn rescan(
    settings: &BrokerSettings,
    scheduler: &SchedulerSettings,
    image: Option<ImageRef>,
) -> anyhow::Result<ExitCode> {
    let connection = BrokerConnection::connect(settings, "slipway-cli").await?;
    let result = async {
        let state = fold_or_empty(&connection, settings, scheduler).await?;
        let owners = state.owners();
        let targets: Vec<ImageRef> = match image {
            Some(image) => {
                if key_of(&image).is_none_or(|key| !owners.contains_key(&key)) {
                    eprintln!(
                        "slipway: note: {image} is not a live image the scheduler knows; requesting it anyway"
                    );
                }
                vec![image]
            }
            None => state.images(),
        };
        if targets.is_empty() {
            eprintln!("slipway: no live image to rescan");
            return Ok(ExitCode::FAILURE);
        }
        let requests: Vec<Envelope> = targets
            .into_iter()
            .map(|image| {
                let notify_email = key_of(&image).and_then(|key| owners.get(&key).cloned().flatten());
                Envelope::new_job(
                    Cause::User,
                    Message::ScanRequested(ScanRequested {
                        image,
                        digest: None,
                        notify_email,
                    }),
                )
            })
            .collect();
        let topology = Topology::pipeline(settings);
        topology.declare(&connection.channel().await?).await?;
        let publisher = Publisher::open(&connection, &topology).await?;
        for chunk in requests.chunks(500) {
            publisher.publish_all(chunk).await?;
        }
        for request in &requests {
            if let Message::ScanRequested(r) = &request.message {
                println!("{}  scan.requested  {}", request.job_id, r.image);
            }
        }
        println!("requested {} scan(s)", requests.len());
        Ok(ExitCode::SUCCESS)
    }
    .await;
    connection.close().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_from_now() {
        assert_eq!(from_now(1_000, 2_000), "now");
        assert_eq!(from_now(13_000, 1_000), "in 12s");
        assert_eq!(from_now(1_000 + 185_000, 1_000), "in 3m 05s");
        assert_eq!(
            from_now(1_000 + 3 * 3_600_000 + 5 * 60_000, 1_000),
            "in 3h 05m"
        );
        assert_eq!(from_now(2 * 86_400_000 + 7_200_000, 0), "in 2d 02h");
    }
}

//! `slipway history IMAGE`: the jobs of one image, from the `<namespace>.history` stream — one
//! line (or JSON object) per job with when it started and last moved, why it ran, how far it got
//! and what its last event says. `slipway job JOB_ID` shows one of them in full.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::process::ExitCode;

use serde_json::{Value, json};
use slipway_broker::history::{HistoryEvent, HistoryQuery, HistoryStep, history_stream_name};
use slipway_broker::streams::reader::StreamError;
use slipway_broker::{BrokerConnection, BrokerSettings};
use slipway_common::{ImageRef, JobId, Timestamp};

use crate::history::{self, Format};

/// Arguments of `slipway history`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
IMAGE is the short index name (`team/app:1`, in the configured [registry]), the full reference \
(`127.0.0.1:5000/team/app:1`), `…@sha256:…` for the jobs that produced or scanned that digest, or \
a repository without tag (`team/app`) for every tag of it.

Output: one row (table) or one JSON object per line (json) per job, oldest first: its id, when \
it started and last moved, its cause, its last event and what that says. `slipway job JOB_ID` \
shows every event of one job.

Exit status: 0 jobs were printed; 1 IMAGE is malformed, or no job of it is in the window; 2 any \
other error (broker unreachable, history unreadable).")]
pub struct HistoryArgs {
    /// The image (see below).
    pub image: String,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    format: Format,
    /// How many days back to look.
    #[arg(long, value_name = "N", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=3650))]
    days: u32,
}

/// One job of the image, as its events so far tell it.
#[derive(Debug)]
struct JobSummary {
    job_id: JobId,
    started: Timestamp,
    cause: String,
    events: usize,
    last: HistoryEvent,
}

/// Run `slipway history` for `image` (already normalised into Slipway's registry); `registry` is
/// the registry host that short names in the events are normalised with.
pub async fn run(
    settings: &BrokerSettings,
    image: &ImageRef,
    registry: &str,
    args: &HistoryArgs,
) -> anyhow::Result<ExitCode> {
    let connection = BrokerConnection::connect(settings, "slipway-cli").await?;
    let jobs = jobs_of(&connection, settings, image, registry, args.days).await;
    connection.close().await;
    let stream = history_stream_name(&settings.namespace);
    let jobs = match jobs {
        Ok(jobs) => jobs,
        Err(StreamError::NoStream { .. }) => {
            eprintln!(
                "slipway: no job of {image}: {stream} does not exist, so nothing was ever published in namespace {:?}",
                settings.namespace
            );
            return Ok(ExitCode::FAILURE);
        }
        Err(error) => return Err(error.into()),
    };
    if jobs.is_empty() {
        eprintln!(
            "slipway: no job of {image} in the last {} of {stream}",
            history::describe_days(args.days)
        );
        return Ok(ExitCode::FAILURE);
    }
    let text = render(&jobs, args.format);
    match io::stdout().lock().write_all(text.as_bytes()) {
        // `slipway history IMAGE | head`: the reader left, which is not an error.
        Err(error) if error.kind() != io::ErrorKind::BrokenPipe => Err(error.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// The jobs with an event about an image `image` selects, oldest first.
async fn jobs_of(
    connection: &BrokerConnection,
    settings: &BrokerSettings,
    image: &ImageRef,
    registry: &str,
    days: u32,
) -> Result<Vec<JobSummary>, StreamError> {
    let wanted = image.clone();
    let host = registry.to_owned();
    let query = HistoryQuery::all().matching(move |envelope| {
        envelope.message.image().is_some_and(|(named, digest)| {
            named
                .in_registry(&host)
                .is_ok_and(|named| wanted.selects(&named, digest))
        })
    });
    let mut events = history::open(
        connection,
        &settings.namespace,
        query,
        history::days_ago(days),
        false,
    )
    .await?;
    let mut jobs: BTreeMap<JobId, JobSummary> = BTreeMap::new();
    let mut order = Vec::new();
    let result = loop {
        match events.next().await {
            None => break Ok(()),
            Some(Ok(HistoryStep::Event(event))) => add(&mut jobs, &mut order, *event),
            Some(Ok(HistoryStep::Undecodable { .. } | HistoryStep::CaughtUp)) => {}
            Some(Err(error)) => break Err(error),
        }
    };
    events.close().await;
    result?;
    Ok(order.iter().filter_map(|job| jobs.remove(job)).collect())
}

/// Count `event` into its job's summary (first seen order kept in `order`).
fn add(jobs: &mut BTreeMap<JobId, JobSummary>, order: &mut Vec<JobId>, event: HistoryEvent) {
    let job_id = event.envelope.job_id;
    match jobs.get_mut(&job_id) {
        Some(job) => {
            job.events += 1;
            job.last = event;
        }
        None => {
            order.push(job_id);
            jobs.insert(
                job_id,
                JobSummary {
                    job_id,
                    started: event.envelope.created_at,
                    cause: event.envelope.cause.to_string(),
                    events: 1,
                    last: event,
                },
            );
        }
    }
}

/// The jobs as a table or as JSON lines.
fn render(jobs: &[JobSummary], format: Format) -> String {
    let mut out = String::new();
    match format {
        Format::Table => {
            out.push_str(&format!(
                "{:<36}  {:<20}  {:<20}  {:<22}  {:<15}  DETAILS\n",
                "JOB", "STARTED", "LAST", "CAUSE", "LAST EVENT"
            ));
            for job in jobs {
                let last = &job.last.envelope;
                out.push_str(&format!(
                    "{:<36}  {:<20}  {:<20}  {}  {:<15}  {}\n",
                    job.job_id.to_string(),
                    job.started.to_rfc3339(),
                    last.created_at.to_rfc3339(),
                    slipway_common::terminal::pad(&job.cause, 22),
                    last.kind().as_str(),
                    slipway_common::terminal::escape(&history::details(&last.message))
                ));
            }
        }
        Format::Json => {
            for job in jobs {
                out.push_str(&summary_json(job).to_string());
                out.push('\n');
            }
        }
    }
    out
}

/// One job as JSON: `job_id`, `started`, `cause`, `events` (how many) and `last` (the last
/// event, as `slipway job --format json` writes it).
fn summary_json(job: &JobSummary) -> Value {
    let ended = history::ends_job(job.last.envelope.kind());
    json!({
        "job_id": job.job_id.to_string(),
        "started": job.started.to_rfc3339(),
        "cause": job.cause,
        "events": job.events,
        "ended": ended,
        "last": history::event_json(&job.last),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_common::message::test_support::sample_messages;
    use slipway_common::{Cause, Envelope, Kind};

    fn event(job: JobId, kind: Kind, at: u64) -> HistoryEvent {
        let message = sample_messages()
            .into_iter()
            .find(|m| m.kind() == kind)
            .expect("a sample of every kind");
        let mut envelope = Envelope::for_job(job, Cause::GitChange, message);
        envelope.created_at = Timestamp::from_unix_millis(at);
        HistoryEvent {
            offset: at,
            envelope,
        }
    }

    #[test]
    fn events_are_grouped_by_job_in_the_order_jobs_started() {
        let (first, second) = (JobId::new(), JobId::new());
        let mut jobs = BTreeMap::new();
        let mut order = Vec::new();
        for (job, kind, at) in [
            (second, Kind::BuildRequested, 1_000),
            (first, Kind::BuildRequested, 2_000),
            (second, Kind::LintFailed, 3_000),
            (first, Kind::LintPassed, 4_000),
            (first, Kind::BuildSucceeded, 5_000),
        ] {
            add(&mut jobs, &mut order, event(job, kind, at));
        }
        let summaries: Vec<JobSummary> = order.iter().filter_map(|j| jobs.remove(j)).collect();
        assert_eq!(summaries.len(), 2);
        assert_eq!(summaries[0].job_id, second, "the job that started first");
        assert_eq!(summaries[0].events, 2);
        assert_eq!(summaries[0].last.envelope.kind(), Kind::LintFailed);
        assert_eq!(summaries[1].events, 3);
        assert_eq!(summaries[1].started, Timestamp::from_unix_millis(2_000));

        let table = render(&summaries, Format::Table);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].starts_with("JOB"), "{table}");
        assert!(
            lines[1].contains(&second.to_string()) && lines[1].contains("lint.failed"),
            "{table}"
        );
        assert!(lines[2].contains("build.succeeded") && lines[2].contains("git-change"));

        let json = render(&summaries, Format::Json);
        let parsed: Vec<Value> = json
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(parsed[0]["ended"], true);
        assert_eq!(parsed[1]["ended"], false);
        assert_eq!(parsed[1]["last"]["kind"], "build.succeeded");
        assert_eq!(parsed[1]["events"], 3);
    }
}

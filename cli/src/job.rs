//! `slipway job JOB_ID`: every event of one job across its stages, from the
//! `<namespace>.history` stream — when, what, why, and how each stage ended — or, following,
//! until the job reaches its end.

use std::io;
use std::process::ExitCode;

use slipway_broker::history::{HistoryQuery, HistoryStep, history_stream_name};
use slipway_broker::streams::reader::StreamError;
use slipway_broker::{BrokerConnection, BrokerSettings};
use slipway_common::JobId;

use crate::history::{self, Format, Printer};

/// Arguments of `slipway job`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Output: one row (table) or one JSON object per line (json) per event of the job, in the order \
they were published: build.requested, lint.passed|lint.failed, build.succeeded|build.failed, \
scan.completed|scan.failed, with lint findings, the failed stage and its error, the image and \
its digest, or the scan's counts. Reading looks at every event of the --days window, whatever \
the job, so a shorter window is faster.

Exit status: 0 events were printed; 1 JOB_ID is not a job id, or no event of it is in the \
window; 2 any other error (broker unreachable, history unreadable).")]
pub struct JobArgs {
    /// The job id (a UUID, as `slipway submit` prints it).
    job: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Keep printing new events until the job ends (lint.failed, build.failed, scan.completed or
    /// scan.failed) or Ctrl-C; a job that has ended already is printed and the command returns.
    #[arg(long, short = 'f')]
    follow: bool,
    /// How many days back to look.
    #[arg(long, value_name = "N", default_value_t = 7,
          value_parser = clap::value_parser!(u32).range(1..=3650))]
    days: u32,
}

/// Run `slipway job`.
pub async fn run(settings: &BrokerSettings, args: &JobArgs) -> anyhow::Result<ExitCode> {
    let Ok(job) = args.job.parse::<JobId>() else {
        eprintln!(
            "slipway: error: {:?} is not a job id: expected a UUID such as 0190b6e2-7c1a-7f3e-9d2b-5a4c3e2f1a0b, as `slipway submit` prints",
            args.job
        );
        return Ok(ExitCode::FAILURE);
    };
    let connection = BrokerConnection::connect(settings, "slipway-cli").await?;
    let shown = show(&connection, settings, job, args).await;
    connection.close().await;
    let stream = history_stream_name(&settings.namespace);
    match shown {
        Ok(0) => {
            eprintln!(
                "slipway: no event of job {job} in the last {} of {stream}",
                history::describe_days(args.days)
            );
            Ok(ExitCode::FAILURE)
        }
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(error) => match error.downcast_ref::<StreamError>() {
            Some(StreamError::NoStream { .. }) => {
                eprintln!(
                    "slipway: no event of job {job}: {stream} does not exist, so nothing was ever published in namespace {:?}",
                    settings.namespace
                );
                Ok(ExitCode::FAILURE)
            }
            // `slipway job JOB | head`: the reader left, which is not an error.
            _ if error
                .downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe) =>
            {
                Ok(ExitCode::SUCCESS)
            }
            _ => Err(error),
        },
    }
}

/// Print the job's events; how many there were.
async fn show(
    connection: &BrokerConnection,
    settings: &BrokerSettings,
    job: JobId,
    args: &JobArgs,
) -> anyhow::Result<usize> {
    let mut events = history::open(
        connection,
        &settings.namespace,
        HistoryQuery::all().job(job),
        history::days_ago(args.days),
        args.follow,
    )
    .await?;
    let mut printer = Printer::new(args.format);
    let mut out = io::stdout().lock();
    let (mut printed, mut ended, mut caught_up) = (0, false, false);
    let result = loop {
        // Following ends once the past is printed and the job has reached its end.
        if caught_up && (ended || printed == 0) {
            break Ok(printed);
        }
        match events.next().await {
            None => break Ok(printed),
            Some(Ok(HistoryStep::Event(event))) => {
                ended |= history::ends_job(event.envelope.kind());
                printed += 1;
                if let Err(error) = printer.print(&mut out, &event) {
                    break Err(error.into());
                }
                // A table row shows the first findings; a failed lint's are all listed below it.
                if args.format == Format::Table
                    && let slipway_common::Message::LintFailed(failed) = &event.envelope.message
                    && let Err(error) = print_findings(&mut out, &failed.findings)
                {
                    break Err(error.into());
                }
            }
            Some(Ok(HistoryStep::Undecodable {
                offset,
                routing_key,
                error,
            })) => {
                eprintln!(
                    "slipway: skipping history entry {offset} ({routing_key}) of job {job}: {error}"
                );
            }
            Some(Ok(HistoryStep::CaughtUp)) => {
                caught_up = true;
                if args.follow && printed > 0 && !ended {
                    eprintln!("slipway: following job {job} until it ends (Ctrl-C to stop)");
                }
            }
            Some(Err(error)) => break Err(error.into()),
        }
    };
    events.close().await;
    result
}

/// Most findings listed under a failed lint.
const MAX_FINDINGS_LISTED: usize = 500;

/// Each finding on its own line, indented: line, rule, level, message, and the rule's page.
fn print_findings(
    out: &mut impl io::Write,
    findings: &[slipway_common::message::LintFinding],
) -> io::Result<()> {
    for finding in findings.iter().take(MAX_FINDINGS_LISTED) {
        let level = serde_json::to_value(finding.level)
            .ok()
            .and_then(|level| level.as_str().map(str::to_owned))
            .unwrap_or_default();
        let page = if finding.code.starts_with("DL") {
            format!(
                "  https://github.com/hadolint/hadolint/wiki/{}",
                finding.code
            )
        } else if finding.code.starts_with("SC") {
            format!("  https://www.shellcheck.net/wiki/{}", finding.code)
        } else {
            String::new()
        };
        writeln!(
            out,
            "    line {}: {} {level}: {}{}",
            finding.line,
            slipway_common::terminal::escape(&finding.code),
            slipway_common::terminal::escape(&finding.message),
            slipway_common::terminal::escape(&page)
        )?;
    }
    if findings.len() > MAX_FINDINGS_LISTED {
        writeln!(
            out,
            "    … and {} more",
            findings.len() - MAX_FINDINGS_LISTED
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arguments_parse_with_defaults_and_reject_a_zero_window() {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: JobArgs,
        }
        let parsed = Wrapper::try_parse_from(["job", "some-job"]).unwrap().args;
        assert_eq!(parsed.job, "some-job");
        assert_eq!(parsed.format, Format::Table);
        assert!(!parsed.follow);
        assert_eq!(parsed.days, 7);
        let parsed = Wrapper::try_parse_from(["job", "j", "-f", "--format", "json", "--days", "2"])
            .unwrap()
            .args;
        assert!(parsed.follow);
        assert_eq!((parsed.format, parsed.days), (Format::Json, 2));
        for bad in [
            &["job", "j", "--days", "0"][..],
            &["job", "j", "--format", "yaml"],
            &["job"],
        ] {
            assert!(Wrapper::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }
}

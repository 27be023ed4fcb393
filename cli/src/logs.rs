//! `slipway logs JOB`: print a job's build log from the `<namespace>.logs` stream, or follow it
//! until the job's log ends.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use slipway_broker::history::{HistoryQuery, HistoryStep};
use slipway_broker::logs::{
    LogChunk, LogError, LogReader, ReadFrom, ReadOptions, StreamError, log_stream_name,
};
use slipway_broker::{BrokerConnection, BrokerSettings};
use slipway_common::{JobId, Kind};

/// Arguments of `slipway logs`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Output: the log text as the build wrote it. Lines starting with `=== slipway:` are added by this \
command: a header before each further run of the job (a redelivery or a retry runs the job again \
and writes its log again), a note where earlier chunks are outside the --since window, and the end \
of each run with its outcome.

A job that ended before the build stage (lint failed, rebuild skipped) has no build log: the \
command says so at once, also with --follow, and points at `slipway job`.

Exit status: 0 the log was printed and its latest run did not fail; 1 JOB is not a job id, no \
log of JOB is in the window, the job ended before the build stage, or the latest run of its \
build failed; 2 any other error (broker unreachable, read took longer than 5 minutes).")]
pub struct LogsArgs {
    /// The job id (a UUID, as `slipway submit` prints it).
    job: String,
    /// Keep reading until the job's log ends (the end-of-log marker of its latest run), waiting
    /// for a job that has not started yet.
    #[arg(long, short = 'f')]
    follow: bool,
    /// How far back to look: a number and a unit (s, m, h, d), e.g. 30m, 2h, 7d; or `all` for
    /// everything the stream still keeps (slow on a busy stream).
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_since)]
    since: Since,
}

/// The `--since` window.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Since {
    /// As the user wrote it, for messages.
    text: String,
    from: ReadFrom,
}

impl Since {
    fn describe(&self) -> String {
        match self.from {
            ReadFrom::First => "anywhere".to_owned(),
            _ => format!("in the last {}", self.text),
        }
    }
}

/// Parse `--since`: `all`, or a positive number followed by one of `s`, `m`, `h`, `d`.
fn parse_since(text: &str) -> Result<Since, String> {
    let expected = "expected a number and a unit (s, m, h, d) such as 30m, 2h or 7d, or `all`";
    if text == "all" {
        return Ok(Since {
            text: text.to_owned(),
            from: ReadFrom::First,
        });
    }
    let Some(unit) = text.chars().last() else {
        return Err(format!("{expected}; found nothing"));
    };
    let number = &text[..text.len() - unit.len_utf8()];
    let seconds_per_unit: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(format!("{expected}; found {text:?}")),
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{expected}; found {text:?}"));
    }
    let count: u64 = number
        .parse()
        .map_err(|_| format!("{expected}; {text:?} is too large"))?;
    if count == 0 {
        return Err(format!(
            "{expected}; found {text:?}, which is no time at all"
        ));
    }
    let seconds = count
        .checked_mul(seconds_per_unit)
        .ok_or_else(|| format!("{expected}; {text:?} is too large"))?;
    Ok(Since {
        text: text.to_owned(),
        from: ReadFrom::Ago(Duration::from_secs(seconds)),
    })
}

/// Run `slipway logs`.
pub async fn run(settings: &BrokerSettings, args: &LogsArgs) -> anyhow::Result<ExitCode> {
    let Ok(job) = args.job.parse::<JobId>() else {
        eprintln!(
            "slipway: error: {:?} is not a job id: expected a UUID such as 0190b6e2-7c1a-7f3e-9d2b-5a4c3e2f1a0b, as `slipway submit` prints",
            args.job
        );
        return Ok(ExitCode::FAILURE);
    };
    let stream = log_stream_name(&settings.namespace);
    let connection = BrokerConnection::connect(settings, "slipway-cli").await?;
    // A job that ended before the build has no log to wait for.
    let mut stages = match crate::history::open(
        &connection,
        &settings.namespace,
        HistoryQuery::all().job(job),
        args.since.from,
        args.follow,
    )
    .await
    {
        Ok(events) => Some(events),
        Err(StreamError::NoStream { .. }) => None,
        Err(error) => {
            connection.close().await;
            return Err(error.into());
        }
    };
    if !args.follow
        && let Some(events) = stages.take()
    {
        let ended = ended_before_build(events).await?;
        if let Some(kind) = ended {
            connection.close().await;
            return Ok(before_build(job, kind));
        }
    }
    if args.follow {
        eprintln!("slipway: following job {job} in {stream} (Ctrl-C to stop)");
    }
    let options = ReadOptions {
        from: args.since.from,
        follow: args.follow,
        deadline: if args.follow {
            None
        } else {
            ReadOptions::default().deadline
        },
        ..ReadOptions::default()
    };
    let reader = LogReader::new(&connection, &stream);
    let mut chunks = reader.read(job, options);
    let mut printer = Printer::default();
    let mut out = io::stdout().lock();
    let mut no_stream = false;
    let mut stopped_before_build: Option<Kind> = None;
    let ended = loop {
        let next = match stages.as_mut() {
            Some(events) => tokio::select! {
                chunk = chunks.next() => chunk,
                step = events.next() => {
                    match step {
                        Some(Ok(HistoryStep::Event(event))) if ends_before_build(event.envelope.kind()) => {
                            stopped_before_build = Some(event.envelope.kind());
                            break Ok(());
                        }
                        Some(Ok(_)) => continue,
                        // The history is only a shortcut: without it, the log alone decides.
                        Some(Err(_)) | None => {
                            stages = None;
                            continue;
                        }
                    }
                }
            },
            None => chunks.next().await,
        };
        match next {
            None => break Ok(()),
            Some(Ok(chunk)) => {
                if let Err(error) = printer.print(&mut out, &chunk) {
                    break Err(anyhow::Error::from(error));
                }
            }
            Some(Err(LogError::Read(StreamError::NoStream { .. }))) => {
                no_stream = true;
                break Ok(());
            }
            Some(Err(error)) => break Err(error.into()),
        }
    };
    drop(chunks);
    if let Some(events) = stages {
        events.close().await;
    }
    connection.close().await;
    if let Some(kind) = stopped_before_build
        && printer.printed == 0
    {
        return Ok(before_build(job, kind));
    }
    match ended {
        Err(error)
            if error
                .downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe) =>
        {
            // `slipway logs JOB | head`: the reader left, which is not an error.
            return Ok(ExitCode::SUCCESS);
        }
        Err(error) => return Err(error),
        Ok(()) => {}
    }
    if no_stream {
        eprintln!(
            "slipway: no log for job {job}: {stream} does not exist, so no build has written a log in namespace {:?}",
            settings.namespace
        );
        return Ok(ExitCode::FAILURE);
    }
    if printer.printed == 0 {
        eprintln!(
            "slipway: no log for job {job} {} of {stream}",
            args.since.describe()
        );
        return Ok(ExitCode::FAILURE);
    }
    if printer.last_outcome.as_deref() == Some("failed") {
        eprintln!(
            "slipway: the build of job {job} failed (slipway job {job} shows the stage and the error)"
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether an event of `kind` ends a job before any build log is written.
fn ends_before_build(kind: Kind) -> bool {
    matches!(kind, Kind::LintFailed | Kind::BuildSkipped)
}

/// Read the job's events to the end: the kind that ended it before the build, if one did.
async fn ended_before_build(
    mut events: slipway_broker::history::HistoryEvents,
) -> anyhow::Result<Option<Kind>> {
    let mut ended = None;
    while let Some(step) = events.next().await {
        match step {
            Ok(HistoryStep::Event(event)) => {
                let kind = event.envelope.kind();
                if ends_before_build(kind) {
                    ended = Some(kind);
                } else if matches!(
                    kind,
                    Kind::LintPassed | Kind::BuildSucceeded | Kind::BuildFailed
                ) {
                    // Rebuilt after all (a later run of the same job).
                    ended = None;
                }
            }
            Ok(HistoryStep::Undecodable { .. }) => {}
            Ok(HistoryStep::CaughtUp) => break,
            Err(error) => {
                events.close().await;
                return Err(error.into());
            }
        }
    }
    events.close().await;
    Ok(ended)
}

/// The answer for a job that ended before the build stage.
fn before_build(job: JobId, kind: Kind) -> ExitCode {
    eprintln!(
        "slipway: job {job} ended before the build stage ({kind}): it has no build log; `slipway job {job}` shows why"
    );
    ExitCode::FAILURE
}

/// Writes chunks with the `=== slipway:` lines between runs.
#[derive(Debug, Default)]
struct Printer {
    /// The run of the last chunk printed.
    run: Option<u32>,
    printed: usize,
    /// The outcome of the latest run that ended (`succeeded`, `failed`, `retried`).
    last_outcome: Option<String>,
}

impl Printer {
    fn print(&mut self, out: &mut impl Write, chunk: &LogChunk) -> io::Result<()> {
        let first = self.run.is_none();
        if self.run != Some(chunk.run_number) && !(first && chunk.run_number == 1) {
            writeln!(
                out,
                "=== slipway: job {} ran again: run {} (retry {}) ===",
                chunk.job_id, chunk.run_number, chunk.attempt
            )?;
        }
        self.run = Some(chunk.run_number);
        if chunk.skipped > 0 {
            writeln!(
                out,
                "=== slipway: {} earlier chunk(s) of this run are outside the --since window or expired ===",
                chunk.skipped
            )?;
        }
        // Build output comes from the build: its control characters (colours included) are
        // written as escapes, lines and tabs kept.
        out.write_all(slipway_common::terminal::escape_lines(&chunk.text).as_bytes())?;
        if !chunk.text.is_empty() && !chunk.text.ends_with('\n') {
            out.write_all(b"\n")?;
        }
        if let Some(outcome) = &chunk.outcome {
            self.last_outcome = Some(outcome.clone());
            writeln!(
                out,
                "=== slipway: end of run {}: {} ===",
                chunk.run_number,
                slipway_common::terminal::escape(outcome)
            )?;
        }
        out.flush()?;
        self.printed += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_number_and_a_unit_or_all() {
        let ago = |text: &str| parse_since(text).map(|s| s.from);
        assert_eq!(ago("30s"), Ok(ReadFrom::Ago(Duration::from_secs(30))));
        assert_eq!(ago("15m"), Ok(ReadFrom::Ago(Duration::from_secs(900))));
        assert_eq!(ago("2h"), Ok(ReadFrom::Ago(Duration::from_secs(7200))));
        assert_eq!(ago("7d"), Ok(ReadFrom::Ago(Duration::from_secs(604_800))));
        assert_eq!(ago("all"), Ok(ReadFrom::First));
        for bad in [
            "",
            "h",
            "2",
            "2x",
            "-2h",
            "2.5h",
            "2 h",
            "0h",
            "2H",
            "99999999999999999999d",
            "2hh",
            "½h",
        ] {
            let error = parse_since(bad).unwrap_err();
            assert!(
                error.contains("expected a number and a unit"),
                "{bad:?}: {error}"
            );
        }
        assert!(
            parse_since("18446744073709551615d")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn since_is_described_in_the_not_found_message() {
        assert_eq!(parse_since("24h").unwrap().describe(), "in the last 24h");
        assert_eq!(parse_since("all").unwrap().describe(), "anywhere");
    }

    #[test]
    fn the_arguments_parse_with_defaults() {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: LogsArgs,
        }
        let parsed = Wrapper::try_parse_from(["logs", "some-job"]).unwrap().args;
        assert_eq!(parsed.job, "some-job");
        assert!(!parsed.follow);
        assert_eq!(
            parsed.since.from,
            ReadFrom::Ago(Duration::from_secs(86_400))
        );
        let parsed = Wrapper::try_parse_from(["logs", "j", "-f", "--since", "2h"])
            .unwrap()
            .args;
        assert!(parsed.follow);
        assert_eq!(parsed.since.text, "2h");
        let error = Wrapper::try_parse_from(["logs", "j", "--since", "2 hours"])
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("--since"), "{error}");
    }

    fn chunk(run_number: u32, seq: u64, text: &str, outcome: Option<&str>) -> LogChunk {
        LogChunk {
            job_id: "0190b6e2-7c1a-7f3e-9d2b-5a4c3e2f1a0b".parse().unwrap(),
            run: format!("run-{run_number}"),
            run_number,
            attempt: run_number - 1,
            seq,
            skipped: 0,
            text: text.to_owned(),
            outcome: outcome.map(str::to_owned),
        }
    }

    #[test]
    fn runs_after_the_first_get_a_header_and_every_end_is_shown() {
        let mut printer = Printer::default();
        let mut out = Vec::new();
        for chunk in [
            chunk(1, 0, "one\n", None),
            chunk(1, 1, "two\n", None),
            chunk(2, 0, "again\n", None),
            chunk(2, 1, "", Some("build.succeeded")),
        ] {
            printer.print(&mut out, &chunk).unwrap();
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "one\ntwo\n\
             === slipway: job 0190b6e2-7c1a-7f3e-9d2b-5a4c3e2f1a0b ran again: run 2 (retry 1) ===\n\
             again\n\
             === slipway: end of run 2: build.succeeded ===\n"
        );
        assert_eq!(printer.printed, 4);
    }

    #[test]
    fn a_read_starting_mid_run_says_so() {
        let mut printer = Printer::default();
        let mut out = Vec::new();
        let mut late = chunk(1, 7, "late\n", None);
        late.skipped = 7;
        printer.print(&mut out, &late).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("=== slipway: 7 earlier chunk(s)"),
            "{text}"
        );
        assert!(text.ends_with("late\n"));
    }
}

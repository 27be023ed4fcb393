//! `slipway watch [JOB…|--all]`: jobs moving through the stages, live, from the
//! `<namespace>.history` stream. On a terminal, one line per job, redrawn in place with a spinner
//! while it runs; piped, a plain line per stage a job reaches. With JOBs it exits once each has
//! ended (scanned, or failed somewhere), non-zero if any failed; with `--all` it shows every job
//! that starts from now on, until Ctrl-C.

use std::collections::BTreeMap;
use std::io::{self, IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use slipway_broker::history::{HistoryEvent, HistoryQuery, HistoryStep};
use slipway_broker::streams::ReadFrom;
use slipway_broker::{BrokerConnection, BrokerSettings};
use slipway_common::terminal::escape;
use slipway_common::{JobId, Kind, Message};

use crate::history;

/// Arguments of `slipway watch`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
With JOB ids (as `slipway submit` prints them), their events of the last --days are shown, then \
new ones as they come, and the command exits once each job has ended: scanned, or failed at \
lint, build or scan (or skipped). With --all, every job that starts from now on is shown, until \
Ctrl-C. On a terminal each job is one line, redrawn in place; piped, each stage a job reaches is \
a line of its own: time, job, image, stage and what it says.

Exit status: 0 every watched job ended well; 1 a watched job failed, or a JOB is not a job id; \
2 any other error (broker unreachable, history unreadable).")]
pub struct WatchArgs {
    /// The jobs to watch.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    jobs: Vec<String>,
    /// Watch every job that starts from now on (until Ctrl-C).
    #[arg(long)]
    all: bool,
    /// How many days back to look for the jobs' earlier events.
    #[arg(long, value_name = "N", default_value_t = 7,
          value_parser = clap::value_parser!(u32).range(1..=3650))]
    days: u32,
}

/// Where one job stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobState {
    /// Its image, once an event named it.
    pub image: String,
    /// The stage it reached: `requested`, `linted`, `built`, `scanned`, or where it failed.
    pub stage: &'static str,
    /// What the last event says.
    pub detail: String,
    /// Whether it has ended, and whether well.
    pub ended: Option<bool>,
}

/// The state after `event`, from `before` (a job's events in order).
pub fn advance(before: Option<&JobState>, event: &HistoryEvent) -> Option<JobState> {
    let message = &event.envelope.message;
    let (stage, ended) = match message {
        Message::BuildRequested(_) => ("requested", None),
        Message::LintPassed(_) => ("linted", None),
        Message::LintFailed(_) => ("lint failed", Some(false)),
        Message::BuildSucceeded(_) => ("built", None),
        Message::BuildFailed(_) => ("build failed", Some(false)),
        Message::BuildSkipped(_) => ("skipped", Some(false)),
        Message::ScanCompleted(_) => ("scanned", Some(true)),
        Message::ScanFailed(_) => ("scan failed", Some(false)),
        _ => return None,
    };
    let image = message
        .image()
        .map(|(image, _)| image.to_string())
        .or_else(|| before.map(|state| state.image.clone()))
        .unwrap_or_default();
    Some(JobState {
        image,
        stage,
        detail: history::details(message),
        ended,
    })
}

/// Run `slipway watch`.
pub async fn run(settings: &BrokerSettings, args: &WatchArgs) -> anyhow::Result<ExitCode> {
    let mut wanted = Vec::new();
    for text in &args.jobs {
        match text.parse::<JobId>() {
            Ok(job) => wanted.push(job),
            Err(_) => {
                eprintln!(
                    "slipway: error: {text:?} is not a job id: expected a UUID, as `slipway submit` prints"
                );
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    let connection = BrokerConnection::connect(settings, "slipway-cli").await?;
    let kinds = [
        Kind::BuildRequested,
        Kind::LintPassed,
        Kind::LintFailed,
        Kind::BuildSucceeded,
        Kind::BuildFailed,
        Kind::BuildSkipped,
        Kind::ScanCompleted,
        Kind::ScanFailed,
    ];
    let query = if args.all {
        HistoryQuery::all().kinds(kinds)
    } else {
        let chosen = wanted.clone();
        HistoryQuery::all()
            .kinds(kinds)
            .matching(move |envelope| chosen.contains(&envelope.job_id))
    };
    let from = if args.all {
        ReadFrom::Ago(Duration::ZERO)
    } else {
        history::days_ago(args.days)
    };
    let events = history::open(&connection, &settings.namespace, query, from, true).await;
    let mut events = match events {
        Ok(events) => events,
        Err(error) => {
            connection.close().await;
            return Err(error.into());
        }
    };
    let terminal = io::stdout().is_terminal();
    let mut view = View::new(terminal, false);
    for job in &wanted {
        view.jobs.insert(*job, None);
    }
    let mut spin = tokio::time::interval(Duration::from_millis(200));
    let outcome = loop {
        if !args.all && !wanted.is_empty() && view.all_ended() {
            break Ok(());
        }
        tokio::select! {
            step = events.next() => match step {
                Some(Ok(HistoryStep::Event(event))) => view.apply(&event)?,
                Some(Ok(_)) => {}
                Some(Err(error)) => break Err(anyhow::Error::from(error)),
                None => break Ok(()),
            },
            _ = spin.tick(), if terminal => view.redraw()?,
            _ = tokio::signal::ctrl_c() => break Ok(()),
        }
    };
    events.close().await;
    connection.close().await;
    outcome?;
    Ok(if view.any_failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// What is on screen: one line per job, redrawn in place on a terminal, else a line per stage a
/// job reaches.
pub struct View {
    terminal: bool,
    /// Whether it writes to standard error (standard output otherwise).
    stderr: bool,
    jobs: BTreeMap<JobId, Option<JobState>>,
    /// Lines drawn last time (terminal), to move back over them.
    drawn: usize,
    frame: usize,
}

const SPINNER: [&str; 4] = ["|", "/", "-", "\\"];

impl View {
    /// An empty view; `terminal`: redraw in place; `stderr`: write there, not to stdout.
    pub fn new(terminal: bool, stderr: bool) -> Self {
        View {
            terminal,
            stderr,
            jobs: BTreeMap::new(),
            drawn: 0,
            frame: 0,
        }
    }

    fn all_ended(&self) -> bool {
        self.jobs
            .values()
            .all(|state| state.as_ref().is_some_and(|s| s.ended.is_some()))
    }

    /// Whether a job it shows has failed.
    pub fn any_failed(&self) -> bool {
        self.jobs
            .values()
            .any(|state| state.as_ref().is_some_and(|s| s.ended == Some(false)))
    }

    fn out(&self) -> Box<dyn io::Write> {
        if self.stderr {
            Box::new(io::stderr().lock())
        } else {
            Box::new(io::stdout().lock())
        }
    }

    /// Show `event` (events of no job stage are ignored).
    pub fn apply(&mut self, event: &HistoryEvent) -> io::Result<()> {
        let job = event.envelope.job_id;
        let before = self.jobs.get(&job).cloned().flatten();
        let Some(state) = advance(before.as_ref(), event) else {
            return Ok(());
        };
        if !self.terminal {
            let mut out = self.out();
            writeln!(
                out,
                "{}  {job}  {}  {}: {}",
                event.envelope.created_at.to_rfc3339(),
                escape(&state.image),
                state.stage,
                escape(&state.detail)
            )?;
            out.flush()?;
        }
        self.jobs.insert(job, Some(state));
        if self.terminal {
            self.redraw()?;
        }
        Ok(())
    }

    /// Draw the lines again (a terminal's spinner turns).
    pub fn redraw(&mut self) -> io::Result<()> {
        if !self.terminal {
            return Ok(());
        }
        self.frame = (self.frame + 1) % SPINNER.len();
        let mut out = self.out();
        if self.drawn > 0 {
            write!(out, "\x1b[{}A", self.drawn)?;
        }
        let mut lines = 0;
        for (job, state) in &self.jobs {
            let line = match state {
                None => format!("{} {job}  waiting for its first event", SPINNER[self.frame]),
                Some(state) => {
                    let mark = match state.ended {
                        Some(true) => "✓",
                        Some(false) => "✗",
                        None => SPINNER[self.frame],
                    };
                    format!(
                        "{mark} {job}  {:<40}  {:<12}  {}",
                        escape(&state.image),
                        state.stage,
                        escape(&state.detail)
                    )
                }
            };
            let shown: String = line.chars().take(200).collect();
            writeln!(out, "\r\x1b[K{shown}")?;
            lines += 1;
        }
        self.drawn = lines;
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_common::message::test_support::sample_messages;
    use slipway_common::{Cause, Envelope};

    fn event(kind: Kind) -> HistoryEvent {
        let message = sample_messages()
            .into_iter()
            .find(|m| m.kind() == kind)
            .unwrap();
        HistoryEvent {
            offset: 0,
            envelope: Envelope::new_job(Cause::User, message),
        }
    }

    #[test]
    fn a_job_moves_through_the_stages_and_ends_well_or_not() {
        let requested = advance(None, &event(Kind::BuildRequested)).unwrap();
        assert_eq!((requested.stage, requested.ended), ("requested", None));
        assert_eq!(requested.image, "centos/django:latest");
        let built = advance(Some(&requested), &event(Kind::BuildSucceeded)).unwrap();
        assert_eq!(built.stage, "built");
        let scanned = advance(Some(&built), &event(Kind::ScanCompleted)).unwrap();
        assert_eq!(scanned.ended, Some(true));
        let failed = advance(Some(&requested), &event(Kind::LintFailed)).unwrap();
        assert_eq!((failed.stage, failed.ended), ("lint failed", Some(false)));
        assert!(advance(None, &event(Kind::GitChanged)).is_none());
    }
}

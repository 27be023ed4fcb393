//! What the commands that read the `<namespace>.history` stream share (`slipway job`, and
//! `slipway history`): opening a typed read of the history, the `--format` and `--days`
//! options, which kinds end a job, and how one event is shown — a table row (time, kind, cause,
//! outcome details) or one JSON object with the decoded payload.
//!
//! The reading itself is `slipway_broker::history` (filters by job, kind, time, or any predicate
//! over the decoded envelope; follow); this module only knows how to present the pipeline's
//! messages.

use std::io::{self, Write};
use std::time::Duration;

use serde_json::{Value, json};
use slipway_broker::BrokerConnection;
use slipway_broker::history::{
    HistoryEvent, HistoryEvents, HistoryQuery, HistoryReader, history_stream_name,
};
use slipway_broker::streams::ReadFrom;
use slipway_broker::streams::reader::{ReadOptions, StreamError};
use slipway_common::index::validate::redact_credentials;
use slipway_common::message::{LintFinding, Removal, SeenBy};
use slipway_common::terminal::{escape, pad};
use slipway_common::{Kind, Message};

/// Output formats of the history commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per event: time, kind, cause and what it says (outcome, findings, error).
    Table,
    /// One JSON object per line and event: ids, kind, cause, times and the decoded payload.
    Json,
}

/// Most lint findings shown in a table row.
const FIRST_FINDINGS: usize = 3;

/// Whether an event of `kind` is the last one of its job: nothing follows a failure, a job that
/// was built ends with its scan, and the repo-tracker's records are jobs of one event each (the
/// builds they lead to are jobs of their own).
pub fn ends_job(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::LintFailed
            | Kind::BuildFailed
            | Kind::ScanCompleted
            | Kind::ScanFailed
            | Kind::GitChanged
            | Kind::IndexApplied
            | Kind::IndexRejected
            | Kind::ImageRetired
            | Kind::BuildSkipped
            | Kind::PackagesUpdated
            | Kind::ImageRemoved
            | Kind::SummaryReady
            | Kind::MailSent
    )
}

/// The `--days N` window as a read's start.
pub fn days_ago(days: u32) -> ReadFrom {
    ReadFrom::Ago(Duration::from_secs(u64::from(days) * 86_400))
}

/// `N day(s)`, for messages.
pub fn describe_days(days: u32) -> String {
    match days {
        1 => "day".to_owned(),
        n => format!("{n} days"),
    }
}

/// Open a read of the events `query` keeps in the namespace's history stream: from `from`, to
/// the end (bounded by the default deadline) or following (no deadline).
pub async fn open(
    connection: &BrokerConnection,
    namespace: &str,
    query: HistoryQuery,
    from: ReadFrom,
    follow: bool,
) -> Result<HistoryEvents, StreamError> {
    let options = ReadOptions {
        from,
        follow,
        deadline: if follow {
            None
        } else {
            ReadOptions::default().deadline
        },
        ..ReadOptions::default()
    };
    HistoryReader::new(connection, &history_stream_name(namespace))
        .open(query, &options)
        .await
}

/// Writes events in one format.
#[derive(Debug)]
pub struct Printer {
    format: Format,
    header_written: bool,
}

impl Printer {
    /// A printer of `format`.
    pub fn new(format: Format) -> Self {
        Self {
            format,
            header_written: false,
        }
    }

    /// Write `event` (and, before the first table row, the header) and flush.
    pub fn print(&mut self, out: &mut impl Write, event: &HistoryEvent) -> io::Result<()> {
        match self.format {
            Format::Table => {
                if !self.header_written {
                    writeln!(
                        out,
                        "{:<20}  {:<15}  {:<10}  DETAILS",
                        "TIME", "KIND", "CAUSE"
                    )?;
                    self.header_written = true;
                }
                writeln!(out, "{}", table_row(event))?;
            }
            Format::Json => writeln!(out, "{}", event_json(event))?,
        }
        out.flush()
    }
}

/// One table row: creation time (UTC), kind, cause, details; the cause and details (which quote
/// image names, errors and lint messages) with their control characters escaped.
pub fn table_row(event: &HistoryEvent) -> String {
    let envelope = &event.envelope;
    format!(
        "{:<20}  {:<15}  {}  {}",
        envelope.created_at.to_rfc3339(),
        envelope.kind().as_str(),
        pad(&envelope.cause.to_string(), 10),
        escape(&details(&envelope.message))
    )
}

/// What an event says, in one line: its outcome and why.
pub fn details(message: &Message) -> String {
    match message {
        Message::BuildRequested(request) => match &request.commit {
            Some(commit) => format!("{} at commit {}", request.entry.image(), commit.as_str()),
            None => request.entry.image().to_string(),
        },
        Message::LintPassed(passed) => format!(
            "commit {}, {}",
            passed.commit.as_str(),
            findings(&passed.findings)
        ),
        Message::LintFailed(failed) => {
            let findings = findings(&failed.findings);
            match &failed.error {
                Some(error) => format!("error: {error}; {findings}"),
                None => findings,
            }
        }
        Message::BuildSucceeded(built) => format!(
            "{}@{} in {:.1}s",
            built.image,
            built.digest,
            built.duration_ms as f64 / 1000.0
        ),
        Message::BuildFailed(failed) => format!(
            "stage {}: {}",
            serde_json::to_value(failed.stage)
                .ok()
                .and_then(|stage| stage.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{:?}", failed.stage)),
            failed.error
        ),
        Message::ScanRequested(request) => request.image.pinned(request.digest.as_ref()),
        Message::ScanCompleted(scan) => {
            let counts: Vec<String> = scan
                .counts
                .iter()
                .map(|(scanner, count)| format!("{scanner} {count}"))
                .collect();
            format!("{}@{}: {}", scan.image, scan.digest, counts.join(", "))
        }
        Message::ScanFailed(failed) => format!("{}: {}", failed.image, failed.error),
        Message::GitChanged(changed) => {
            let seen = match (&changed.seen_by, &changed.delivery_id) {
                (SeenBy::Poll, _) => "by a poll".to_owned(),
                (SeenBy::Webhook, Some(delivery)) => format!("by webhook delivery {delivery}"),
                (SeenBy::Webhook, None) => "by a webhook".to_owned(),
            };
            format!(
                "{} {} at {}, seen {seen}",
                redact_credentials(&changed.git_url),
                changed.git_branch,
                changed.commit.as_str()
            )
        }
        Message::IndexApplied(applied) => format!(
            "{} entries at commit {} of {}",
            applied.entries.len(),
            applied.commit.as_str(),
            redact_credentials(&applied.git_url)
        ),
        Message::IndexRejected(rejected) => {
            let first = rejected.problems.first().map_or(String::new(), |p| {
                let at = p
                    .line
                    .map_or(p.file.clone(), |line| format!("{}:{line}", p.file));
                format!(": {at}: {}", p.message)
            });
            format!(
                "commit {}: {} problem(s){first}",
                rejected.commit.as_str(),
                rejected.problems.len()
            )
        }
        Message::ImageRetired(retired) => format!(
            "{} left the index at commit {}",
            retired.entry.image(),
            retired.index_commit.as_str()
        ),
        Message::BuildSkipped(skipped) => format!("{}: {}", skipped.entry.image(), skipped.reason),
        Message::SummaryReady(summary) => format!(
            "{}: {} image(s), {} with updates",
            summary.notify_email,
            summary.images.len(),
            summary
                .images
                .iter()
                .filter(|image| image.counts.get("os-updates").is_some_and(|n| *n > 0))
                .count()
        ),
        Message::MailSent(sent) => format!(
            "to {}: {} ({} event(s))",
            sent.to,
            sent.subject,
            sent.events.len()
        ),
        Message::ImageRemoved(removed) => format!(
            "{} {}: {}",
            removed.image,
            match removed.outcome {
                Removal::Deleted => "deleted",
                Removal::Kept => "kept",
                Removal::Absent => "absent",
                Removal::Failed => "not deleted",
            },
            removed.detail
        ),
        Message::PackagesUpdated(updated) => {
            let images: Vec<String> = updated
                .images
                .iter()
                .take(3)
                .map(|held| format!("{} ({})", held.image, held.packages.join(", ")))
                .collect();
            let more = updated.images.len().saturating_sub(3);
            format!(
                "{}: {} image(s) to rebuild{}{}{}",
                updated.repository,
                updated.images.len(),
                if images.is_empty() { "" } else { ": " },
                images.join("; "),
                if more > 0 {
                    format!("; {more} more")
                } else {
                    String::new()
                }
            )
        }
    }
}

/// `N finding(s)`, then the first few: `DL3008 warning line 3: message`.
fn findings(findings: &[LintFinding]) -> String {
    let mut text = match findings.len() {
        1 => "1 finding".to_owned(),
        n => format!("{n} findings"),
    };
    for (i, finding) in findings.iter().take(FIRST_FINDINGS).enumerate() {
        text.push_str(if i == 0 { ": " } else { "; " });
        let level = serde_json::to_value(finding.level)
            .ok()
            .and_then(|level| level.as_str().map(str::to_owned))
            .unwrap_or_default();
        text.push_str(&format!(
            "{} {level} line {}: {}",
            finding.code, finding.line, finding.message
        ));
    }
    if findings.len() > FIRST_FINDINGS {
        text.push_str("; …");
    }
    text
}

/// One event as JSON: `offset`, `id`, `job_id`, `kind`, `cause`, `created_at` (RFC 3339),
/// `created_at_ms` and the decoded `payload` (with credentials removed from git URLs).
pub fn event_json(event: &HistoryEvent) -> Value {
    let envelope = &event.envelope;
    let mut payload = payload_json(&envelope.message);
    redact_git_urls(&mut payload);
    json!({
        "offset": event.offset,
        "id": envelope.id.to_string(),
        "job_id": envelope.job_id.to_string(),
        "kind": envelope.kind().as_str(),
        "cause": envelope.cause.to_string(),
        "created_at": envelope.created_at.to_rfc3339(),
        "created_at_ms": envelope.created_at.unix_millis(),
        "payload": payload,
    })
}

/// Removes credentials from every `git-url` in `value` (an entry's, a repository's, those of the
/// entries of an applied index).
fn redact_git_urls(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields.iter_mut() {
                match field {
                    Value::String(text) if name == "git-url" => *text = redact_credentials(text),
                    other => redact_git_urls(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_git_urls),
        _ => {}
    }
}

/// The payload as JSON, with the message contract's (kebab-case) field names.
fn payload_json(message: &Message) -> Value {
    let value = match message {
        Message::BuildRequested(p) => serde_json::to_value(p),
        Message::LintPassed(p) => serde_json::to_value(p),
        Message::LintFailed(p) => serde_json::to_value(p),
        Message::BuildSucceeded(p) => serde_json::to_value(p),
        Message::BuildFailed(p) => serde_json::to_value(p),
        Message::ScanRequested(p) => serde_json::to_value(p),
        Message::ScanCompleted(p) => serde_json::to_value(p),
        Message::ScanFailed(p) => serde_json::to_value(p),
        Message::GitChanged(p) => serde_json::to_value(p),
        Message::IndexApplied(p) => serde_json::to_value(p),
        Message::IndexRejected(p) => serde_json::to_value(p),
        Message::ImageRetired(p) => serde_json::to_value(p),
        Message::ImageRemoved(p) => serde_json::to_value(p),
        Message::SummaryReady(p) => serde_json::to_value(p),
        Message::MailSent(p) => serde_json::to_value(p),
        Message::BuildSkipped(p) => serde_json::to_value(p),
        Message::PackagesUpdated(p) => serde_json::to_value(p),
    };
    // The payload types are plain structs of strings, numbers and maps with string keys.
    value.unwrap_or_else(|error| json!({ "error": format!("cannot show the payload: {error}") }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_common::message::test_support::sample_messages;
    use slipway_common::{Cause, Envelope, JobId, Timestamp};

    fn event_of(kind: Kind) -> HistoryEvent {
        let message = sample_messages()
            .into_iter()
            .find(|m| m.kind() == kind)
            .expect("a sample of every kind");
        let mut envelope = Envelope::for_job(JobId::new(), Cause::User, message);
        envelope.created_at = Timestamp::from_unix_millis(1_700_000_000_500);
        HistoryEvent {
            offset: 9,
            envelope,
        }
    }

    #[test]
    fn failures_the_scan_and_the_trackers_one_event_jobs_end_a_job() {
        let ending: Vec<Kind> = Kind::ALL.into_iter().filter(|k| ends_job(*k)).collect();
        assert_eq!(
            ending,
            [
                Kind::LintFailed,
                Kind::BuildFailed,
                Kind::ScanCompleted,
                Kind::ScanFailed,
                Kind::GitChanged,
                Kind::IndexApplied,
                Kind::IndexRejected,
                Kind::ImageRetired,
                Kind::BuildSkipped,
                Kind::PackagesUpdated,
                Kind::ImageRemoved,
                Kind::SummaryReady,
                Kind::MailSent,
            ]
        );
    }

    #[test]
    fn every_kind_has_a_row_with_its_outcome() {
        for kind in Kind::ALL {
            let row = table_row(&event_of(kind));
            assert!(row.starts_with("2023-11-14T22:13:20Z  "), "{row}");
            assert!(row.contains(kind.as_str()), "{row}");
            assert!(row.contains("  user  "), "{row}");
        }
        let failed = table_row(&event_of(Kind::LintFailed));
        assert!(failed.contains("finding"), "{failed}");
        let build_failed = table_row(&event_of(Kind::BuildFailed));
        assert!(build_failed.contains("stage "), "{build_failed}");
        let built = table_row(&event_of(Kind::BuildSucceeded));
        assert!(built.contains("@sha256:"), "{built}");
    }

    #[test]
    fn findings_show_the_count_and_the_first_three() {
        let finding = |code: &str| LintFinding {
            line: 2,
            column: 1,
            code: code.into(),
            level: slipway_common::message::Level::Warning,
            message: "pin it".into(),
        };
        assert_eq!(findings(&[]), "0 findings");
        assert_eq!(
            findings(&[finding("DL3008")]),
            "1 finding: DL3008 warning line 2: pin it"
        );
        let many: Vec<_> = ["A", "B", "C", "D"].into_iter().map(finding).collect();
        let text = findings(&many);
        assert!(text.starts_with("4 findings: A "), "{text}");
        assert!(text.contains("; C ") && !text.contains("D ") && text.ends_with('…'));
    }

    #[test]
    fn json_has_the_envelope_fields_and_the_payload_in_contract_names() {
        let event = event_of(Kind::BuildFailed);
        let value = event_json(&event);
        assert_eq!(value["offset"], 9);
        assert_eq!(value["kind"], "build.failed");
        assert_eq!(value["cause"], "user");
        assert_eq!(value["job_id"], event.envelope.job_id.to_string());
        assert_eq!(value["created_at_ms"], 1_700_000_000_500_u64);
        assert!(value["payload"]["stage"].is_string(), "{value}");
        assert!(value["payload"]["log-tail"].is_array(), "{value}");
        assert!(value["payload"]["entry"]["git-url"].is_string(), "{value}");
    }

    #[test]
    fn the_table_starts_with_a_header_and_json_is_one_object_per_line() {
        let mut out = Vec::new();
        let mut table = Printer::new(Format::Table);
        table
            .print(&mut out, &event_of(Kind::BuildRequested))
            .unwrap();
        table.print(&mut out, &event_of(Kind::LintPassed)).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("TIME "), "{text}");
        let mut out = Vec::new();
        let mut json = Printer::new(Format::Json);
        json.print(&mut out, &event_of(Kind::ScanCompleted))
            .unwrap();
        json.print(&mut out, &event_of(Kind::ScanFailed)).unwrap();
        let text = String::from_utf8(out).unwrap();
        for line in text.lines() {
            let value: Value = serde_json::from_str(line).unwrap();
            assert!(value["kind"].as_str().unwrap().starts_with("scan."));
        }
    }
}

//! What a mail says (pure): for one event, the recipient, the subject (image, outcome, cause)
//! and a plain-text and an HTML body holding what the owner needs to act — lint findings with
//! their lines and rule links, the build's error and log tail, the scan's counts — and the
//! `slipway` commands that show more. Every text from outside (findings, log lines, errors) is
//! escaped in the HTML part and bounded in both.

use std::fmt::Write as _;

use slipway_common::message::{BuildStage, Level, LintFinding};
use slipway_common::{Cause, Envelope, Message, MessageId, Timestamp};

/// Most lint findings listed in one mail (the rest are counted).
pub const MAX_FINDINGS: usize = 50;
/// Most log lines quoted from a failed build.
pub const MAX_LOG_LINES: usize = 50;
/// Longest line quoted (findings, log lines, errors), in characters.
pub const MAX_LINE_CHARS: usize = 500;

/// A mail to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    /// The recipient.
    pub to: String,
    /// The subject.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
    /// The `Message-ID` header, derived from what the mail tells of.
    pub message_id: String,
    /// The events it tells of.
    pub events: Vec<MessageId>,
    /// Whether it tells of a failure.
    pub failure: bool,
}

/// The `Message-ID` of the mail about the event `id`.
pub fn message_id_of(id: MessageId) -> String {
    format!("<{id}@slipway>")
}

/// Whether an event of this payload is a failure the owner must act on.
pub fn is_failure(message: &Message) -> bool {
    matches!(
        message,
        Message::LintFailed(_)
            | Message::BuildFailed(_)
            | Message::ScanFailed(_)
            | Message::IndexRejected(_)
            | Message::BuildSkipped(_)
    )
}

/// Who hears about `message`: its entry's or request's `notify-email`; `None` when it names
/// nobody (an `index.rejected` goes to the configured administrators instead).
pub fn recipient(message: &Message) -> Option<&str> {
    match message {
        Message::LintFailed(p) => p.entry.notify_email.as_deref(),
        Message::BuildFailed(p) => p.entry.notify_email.as_deref(),
        Message::BuildSucceeded(p) => p.entry.notify_email.as_deref(),
        Message::BuildSkipped(p) => p.entry.notify_email.as_deref(),
        Message::ScanCompleted(p) => p.notify_email.as_deref(),
        Message::ScanFailed(p) => p.notify_email.as_deref(),
        Message::SummaryReady(p) => Some(p.notify_email.as_str()),
        _ => None,
    }
}

/// Why the job ran, for a subject: "git push", "parent rebuilt: centos/centos:7", …
pub fn describe_cause(cause: &Cause) -> String {
    match cause {
        Cause::User => "requested".to_owned(),
        Cause::GitChange => "git push".to_owned(),
        Cause::IndexChange => "index change".to_owned(),
        Cause::ParentRebuilt(parent) => format!("parent rebuilt: {parent}"),
        Cause::PackageUpdate(package) => format!("package updated: {package}"),
        Cause::Schedule => "schedule".to_owned(),
    }
}

/// A body being written twice: as text and as HTML.
#[derive(Default)]
struct Body {
    text: String,
    html: String,
}

impl Body {
    fn paragraph(&mut self, line: &str) {
        let line = bounded(line);
        let _ = writeln!(self.text, "{line}\n");
        let _ = writeln!(self.html, "<p>{}</p>", escape(&line));
    }

    fn heading(&mut self, title: &str) {
        let _ = writeln!(self.text, "{title}\n{}", "-".repeat(title.chars().count()));
        let _ = writeln!(self.html, "<h3>{}</h3>", escape(title));
    }

    fn list(&mut self, items: &[(String, Option<String>)]) {
        self.html.push_str("<ul>\n");
        for (item, link) in items {
            let item = bounded(item);
            match link {
                Some(url) => {
                    let _ = writeln!(self.text, "  - {item}  {url}");
                    let _ = writeln!(
                        self.html,
                        "<li>{} <a href=\"{}\">{}</a></li>",
                        escape(&item),
                        escape(url),
                        escape(url)
                    );
                }
                None => {
                    let _ = writeln!(self.text, "  - {item}");
                    let _ = writeln!(self.html, "<li>{}</li>", escape(&item));
                }
            }
        }
        self.html.push_str("</ul>\n");
        self.text.push('\n');
    }

    fn preformatted(&mut self, lines: &[String]) {
        self.html.push_str("<pre>");
        for line in lines {
            let line = bounded(line);
            let _ = writeln!(self.text, "    {line}");
            let _ = writeln!(self.html, "{}", escape(&line));
        }
        self.html.push_str("</pre>\n");
        self.text.push('\n');
    }

    fn commands(&mut self, commands: &[String]) {
        self.heading("More");
        self.preformatted(commands);
    }
}

/// `text` cut to [`MAX_LINE_CHARS`] characters, control characters replaced.
fn bounded(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_LINE_CHARS)
        .map(|c| {
            if c.is_control() && c != '\n' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect();
    if text.chars().count() > MAX_LINE_CHARS {
        out.push('…');
    }
    out
}

/// HTML-escaped text.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The wiki page of a lint rule: hadolint's for `DL`, ShellCheck's for `SC`.
pub fn rule_link(code: &str) -> Option<String> {
    let valid = code.len() <= 8 && code.chars().all(|c| c.is_ascii_alphanumeric());
    if !valid {
        return None;
    }
    if code.starts_with("DL") {
        Some(format!("https://github.com/hadolint/hadolint/wiki/{code}"))
    } else if code.starts_with("SC") {
        Some(format!("https://www.shellcheck.net/wiki/{code}"))
    } else {
        None
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warning => "warning",
        Level::Info => "info",
        Level::Style => "style",
    }
}

fn stage_name(stage: BuildStage) -> &'static str {
    match stage {
        BuildStage::Checkout => "checkout",
        BuildStage::Prebuild => "prebuild",
        BuildStage::Build => "build",
        BuildStage::Test => "smoke test",
        BuildStage::Push => "push",
    }
}

fn findings(body: &mut Body, findings: &[LintFinding]) {
    body.heading(&format!("Lint findings ({})", findings.len()));
    let items: Vec<(String, Option<String>)> = findings
        .iter()
        .take(MAX_FINDINGS)
        .map(|f| {
            (
                format!(
                    "line {}: {} {}: {}",
                    f.line,
                    f.code,
                    level_name(f.level),
                    f.message
                ),
                rule_link(&f.code),
            )
        })
        .collect();
    body.list(&items);
    if findings.len() > MAX_FINDINGS {
        body.paragraph(&format!(
            "… and {} more (slipway job shows them all).",
            findings.len() - MAX_FINDINGS
        ));
    }
}

/// The mail about `event` to `to`, or `None` for an event no mail is written for.
pub fn event_mail(event: &Envelope, to: &str) -> Option<Mail> {
    let job = event.job_id;
    let cause = describe_cause(&event.cause);
    let mut body = Body::default();
    let (image, outcome, commands): (String, &str, Vec<String>) = match &event.message {
        Message::LintFailed(failed) => {
            let image = failed.entry.image().to_string();
            if let Some(error) = &failed.error {
                body.paragraph(&format!("Lint could not run: {error}"));
            }
            if let Some(commit) = &failed.commit {
                let file = if failed.entry.git_path.is_empty() {
                    failed.entry.target_file.clone()
                } else {
                    format!("{}/{}", failed.entry.git_path, failed.entry.target_file)
                };
                body.paragraph(&format!("{file} at commit {}", commit.as_str()));
            }
            if !failed.findings.is_empty() {
                findings(&mut body, &failed.findings);
            }
            (image, "lint failed", vec![format!("slipway job {job}")])
        }
        Message::BuildFailed(failed) => {
            let image = failed.entry.image().to_string();
            body.paragraph(&format!(
                "The {} stage failed at commit {}: {}",
                stage_name(failed.stage),
                failed.commit.as_str(),
                failed.error
            ));
            if !failed.log_tail.is_empty() {
                body.heading("Last lines of the build log");
                let start = failed.log_tail.len().saturating_sub(MAX_LOG_LINES);
                body.preformatted(&failed.log_tail[start..]);
            }
            (
                image,
                "build failed",
                vec![format!("slipway logs {job}"), format!("slipway job {job}")],
            )
        }
        Message::BuildSucceeded(built) => {
            body.paragraph(&format!(
                "Built from commit {} and pushed as {}@{} in {:.1} s.",
                built.commit.as_str(),
                built.image,
                built.digest,
                built.duration_ms as f64 / 1000.0
            ));
            (
                built.entry.image().to_string(),
                "built",
                vec![format!("slipway logs {job}"), format!("slipway job {job}")],
            )
        }
        Message::BuildSkipped(skipped) => {
            body.paragraph(&format!(
                "Not rebuilt because its parent {} was not: {}",
                skipped.parent, skipped.reason
            ));
            (
                skipped.entry.image().to_string(),
                "rebuild skipped",
                vec![format!("slipway why {}", skipped.entry.image())],
            )
        }
        Message::ScanCompleted(scan) => {
            body.heading("Scan");
            let counts: Vec<(String, Option<String>)> = scan
                .counts
                .iter()
                .map(|(name, count)| (format!("{name}: {count}"), None))
                .collect();
            body.list(&counts);
            body.paragraph(&format!("Scanned {}@{}.", scan.image, scan.digest));
            (
                scan.image.to_string(),
                "scanned",
                vec![format!("slipway report {}", scan.image)],
            )
        }
        Message::ScanFailed(failed) => {
            body.paragraph(&format!("The scan could not run: {}", failed.error));
            (
                failed.image.to_string(),
                "scan failed",
                vec![format!("slipway job {job}")],
            )
        }
        Message::IndexRejected(rejected) => {
            body.paragraph(&format!(
                "Commit {} of {} ({}) was not applied{}.",
                rejected.commit.as_str(),
                slipway_common::index::validate::redact_credentials(&rejected.git_url),
                rejected.git_branch,
                rejected
                    .in_force
                    .as_ref()
                    .map(|c| format!("; commit {} stays in force", c.as_str()))
                    .unwrap_or_default()
            ));
            let problems: Vec<(String, Option<String>)> = rejected
                .problems
                .iter()
                .take(MAX_FINDINGS)
                .map(|p| {
                    let at = p.line.map_or(p.file.clone(), |l| format!("{}:{l}", p.file));
                    (format!("{at}: {}", p.message), None)
                })
                .collect();
            body.heading("Problems");
            body.list(&problems);
            (
                "the index".to_owned(),
                "rejected",
                vec![format!("slipway index check {}", "index.d")],
            )
        }
        _ => return None,
    };
    body.commands(&commands);
    Some(Mail {
        to: to.to_owned(),
        subject: format!("[slipway] {image}: {outcome} ({cause})"),
        text: body.text,
        html: html_document(&body.html),
        message_id: message_id_of(event.id),
        events: vec![event.id],
        failure: is_failure(&event.message),
    })
}

/// The one mail of a `summary.ready`.
pub fn summary_mail(event: &Envelope) -> Option<Mail> {
    let Message::SummaryReady(summary) = &event.message else {
        return None;
    };
    let mut body = Body::default();
    body.paragraph(&format!(
        "Your {} image(s) from {} to {}:",
        summary.images.len() as u64 + summary.omitted,
        Timestamp::from_unix_millis(summary.period_start).to_rfc3339(),
        Timestamp::from_unix_millis(summary.period_end).to_rfc3339()
    ));
    let columns = ["os-updates", "integrity", "capabilities", "vulnerabilities"];
    let items: Vec<(String, Option<String>)> = summary
        .images
        .iter()
        .map(|image| {
            let counts: Vec<String> = if image.counts.is_empty() {
                vec!["not scanned yet".to_owned()]
            } else {
                columns
                    .iter()
                    .map(|name| format!("{name} {}", image.counts.get(*name).copied().unwrap_or(0)))
                    .collect()
            };
            (format!("{}: {}", image.image, counts.join(", ")), None)
        })
        .collect();
    body.list(&items);
    if summary.omitted > 0 {
        body.paragraph(&format!("… and {} more image(s).", summary.omitted));
    }
    body.commands(&[
        "slipway report IMAGE".to_owned(),
        "slipway schedule".to_owned(),
    ]);
    let with_updates = summary
        .images
        .iter()
        .filter(|image| image.counts.get("os-updates").is_some_and(|n| *n > 0))
        .count();
    Some(Mail {
        to: summary.notify_email.clone(),
        subject: format!(
            "[slipway] weekly summary: {} image(s), {with_updates} with updates",
            summary.images.len() as u64 + summary.omitted
        ),
        text: body.text,
        html: html_document(&body.html),
        message_id: message_id_of(event.id),
        events: vec![event.id],
        failure: false,
    })
}

/// The digest of `owner`'s events from `start` to `end`: each event's subject and text, then how
/// many more there were.
pub fn digest_mail(
    owner: &str,
    start: u64,
    end: u64,
    items: &[crate::state::DigestItem],
    more: u64,
    message_id: String,
) -> Mail {
    let total = items.len() as u64 + more;
    let failed = items.iter().filter(|item| item.failure).count();
    let mut body = Body::default();
    body.paragraph(&format!(
        "{total} event(s) from {} to {}:",
        Timestamp::from_unix_millis(start).to_rfc3339(),
        Timestamp::from_unix_millis(end).to_rfc3339()
    ));
    for item in items {
        body.heading(&item.subject);
        let lines: Vec<String> = item.text.lines().map(str::to_owned).collect();
        body.preformatted(&lines);
    }
    if more > 0 {
        body.paragraph(&format!("… and {more} more (slipway history shows them)."));
    }
    Mail {
        to: owner.to_owned(),
        subject: format!(
            "[slipway] {total} event(s){}",
            if failed > 0 {
                format!(", {failed} failed")
            } else {
                String::new()
            }
        ),
        text: body.text,
        html: html_document(&body.html),
        message_id,
        events: items.iter().map(|item| item.event).collect(),
        failure: failed > 0,
    }
}

fn html_document(body: &str) -> String {
    format!("<!DOCTYPE html>\n<html><body>\n{body}</body></html>\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped_and_lines_are_bounded() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let long = "x".repeat(MAX_LINE_CHARS * 3);
        assert_eq!(bounded(&long).chars().count(), MAX_LINE_CHARS + 1);
        assert_eq!(bounded("a\u{1b}[31mb"), "a\u{FFFD}[31mb");
    }

    #[test]
    fn rule_links_name_the_tool_and_refuse_odd_codes() {
        assert_eq!(
            rule_link("DL3008").as_deref(),
            Some("https://github.com/hadolint/hadolint/wiki/DL3008")
        );
        assert_eq!(
            rule_link("SC2086").as_deref(),
            Some("https://www.shellcheck.net/wiki/SC2086")
        );
        assert_eq!(rule_link("DL3008\"><script>"), None);
        assert_eq!(rule_link("X1"), None);
    }

    #[test]
    fn causes_read_as_people_say_them() {
        assert_eq!(
            describe_cause(&Cause::ParentRebuilt("centos/centos:7".into())),
            "parent rebuilt: centos/centos:7"
        );
        assert_eq!(
            describe_cause(&Cause::PackageUpdate("openssl".into())),
            "package updated: openssl"
        );
        assert_eq!(describe_cause(&Cause::GitChange), "git push");
    }
}

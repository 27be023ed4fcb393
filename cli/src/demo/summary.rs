//! What the demo saw, folded from the history stream (pure): how far each sample image got (its
//! digest, lint findings, scan counts), which events the notify worker will mail, and which of
//! them it has recorded as sent. The demo is done when every sample image has ended and every
//! mail its events call for is recorded.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use slipway_broker::history::HistoryEvent;
use slipway_common::message::LintFinding;
use slipway_common::{JobId, Message};
use slipway_notify::policy::{Policies, mails};

use super::sample::{BROKEN_LINE, BROKEN_RULE, ENTRIES};

/// How far one sample image got in its latest job.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ImageOutcome {
    /// The image as the index names it (`demo/web:1`).
    pub image: String,
    /// Its latest job.
    pub job_id: Option<JobId>,
    /// The stage reached: `waiting`, `requested`, `linted`, `built`, `scanned`, or where it
    /// failed (`lint failed`, `build failed`, `skipped`, `scan failed`).
    pub stage: &'static str,
    /// Whether the job has ended, and whether well.
    pub ended: Option<bool>,
    /// The pushed image (`127.0.0.1:5000/demo/web:1`), once built.
    pub pushed: Option<String>,
    /// Its manifest digest, once built.
    pub digest: Option<String>,
    /// The images it was built on, each with the daemon's id of it (its config digest), as the
    /// build recorded them.
    pub parent_digests: BTreeMap<String, String>,
    /// The lint findings of a failed lint.
    pub lint_findings: Vec<LintFinding>,
    /// What went wrong, when a stage failed.
    pub error: Option<String>,
    /// The scan's counts by scanner (`packages`, `os-updates`, `integrity`, …).
    pub scan_counts: BTreeMap<String, u64>,
}

/// A mail the notify worker recorded as sent (`mail.sent`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordedMail {
    /// The recipient.
    pub to: String,
    /// The subject.
    pub subject: String,
    /// Its `Message-ID`.
    pub message_id: String,
}

/// The fold.
#[derive(Debug)]
pub struct Summary {
    images: BTreeMap<String, ImageOutcome>,
    jobs: BTreeMap<JobId, String>,
    policies: Policies,
    /// Ids of the events that call for a mail.
    mail_due: BTreeSet<String>,
    /// Ids of the events a recorded mail told of.
    mailed: BTreeSet<String>,
    recorded: Vec<RecordedMail>,
    /// Why the demo cannot finish (the sample index was rejected).
    fatal: Option<String>,
}

impl Summary {
    /// Nothing seen yet; `policies` are the notify worker's.
    pub fn new(policies: Policies) -> Self {
        let images = ENTRIES
            .iter()
            .map(|entry| {
                let image = entry.image();
                let outcome = ImageOutcome {
                    image: image.clone(),
                    stage: "waiting",
                    ..ImageOutcome::default()
                };
                (image, outcome)
            })
            .collect();
        Summary {
            images,
            jobs: BTreeMap::new(),
            policies,
            mail_due: BTreeSet::new(),
            mailed: BTreeSet::new(),
            recorded: Vec::new(),
            fatal: None,
        }
    }

    /// Take one event of the history.
    pub fn apply(&mut self, event: &HistoryEvent) {
        let envelope = &event.envelope;
        // The clock of the event itself: the demo's events are never too old to be mailed.
        let at = envelope.created_at.unix_millis();
        if mails(envelope, &self.policies, at).is_ok_and(|mails| !mails.is_empty()) {
            self.mail_due.insert(envelope.id.to_string());
        }
        match &envelope.message {
            Message::BuildRequested(request) => {
                let image = request.entry.image().to_string();
                if let Some(outcome) = self.images.get_mut(&image) {
                    *outcome = ImageOutcome {
                        image: image.clone(),
                        job_id: Some(envelope.job_id),
                        stage: "requested",
                        ..ImageOutcome::default()
                    };
                    self.jobs.insert(envelope.job_id, image);
                }
            }
            Message::IndexRejected(rejected) => {
                let problems: Vec<String> = rejected
                    .problems
                    .iter()
                    .map(|problem| match problem.line {
                        Some(line) => format!("{}:{line}: {}", problem.file, problem.message),
                        None => format!("{}: {}", problem.file, problem.message),
                    })
                    .collect();
                self.fatal = Some(format!(
                    "the repo-tracker rejected the sample index: {}",
                    problems.join("; ")
                ));
            }
            Message::MailSent(sent) => {
                self.mailed.extend(sent.events.iter().cloned());
                self.recorded.push(RecordedMail {
                    to: sent.to.clone(),
                    subject: sent.subject.clone(),
                    message_id: sent.message_id.clone(),
                });
            }
            message => {
                let Some(outcome) = self
                    .jobs
                    .get(&envelope.job_id)
                    .and_then(|image| self.images.get_mut(image))
                else {
                    return;
                };
                advance(outcome, message);
            }
        }
    }

    /// Why the demo cannot finish, if something made that certain.
    pub fn fatal(&self) -> Option<&str> {
        self.fatal.as_deref()
    }

    /// Every sample image's job has ended, and every mail their events call for is recorded.
    pub fn complete(&self) -> bool {
        self.images.values().all(|outcome| outcome.ended.is_some())
            && self.mail_due.is_subset(&self.mailed)
    }

    /// The images, in the index's order.
    pub fn images(&self) -> Vec<&ImageOutcome> {
        ENTRIES
            .iter()
            .filter_map(|entry| self.images.get(&entry.image()))
            .collect()
    }

    /// The images whose job has not ended.
    pub fn unfinished(&self) -> Vec<&ImageOutcome> {
        self.images()
            .into_iter()
            .filter(|outcome| outcome.ended.is_none())
            .collect()
    }

    /// How many events still wait for their mail to be recorded.
    pub fn mails_pending(&self) -> usize {
        self.mail_due.difference(&self.mailed).count()
    }

    /// The mails recorded as sent, in the order recorded.
    pub fn recorded_mails(&self) -> &[RecordedMail] {
        &self.recorded
    }

    /// Whether each image ended as the sample means it to: the broken entry at lint, the others
    /// scanned.
    pub fn as_expected(&self) -> bool {
        ENTRIES.iter().all(|entry| {
            self.images.get(&entry.image()).is_some_and(|outcome| {
                if entry.fails_lint {
                    outcome.stage == "lint failed"
                        && outcome
                            .lint_findings
                            .iter()
                            .any(|f| f.code == BROKEN_RULE && f.line == BROKEN_LINE)
                } else {
                    outcome.stage == "scanned"
                }
            })
        })
    }
}

/// `outcome` after one of its job's stage events.
fn advance(outcome: &mut ImageOutcome, message: &Message) {
    match message {
        Message::LintPassed(_) => outcome.stage = "linted",
        Message::LintFailed(failed) => {
            outcome.stage = "lint failed";
            outcome.ended = Some(false);
            outcome.lint_findings = failed.findings.clone();
            outcome.error = failed.error.clone();
        }
        Message::BuildSucceeded(built) => {
            outcome.stage = "built";
            outcome.pushed = Some(built.image.to_string());
            outcome.digest = Some(built.digest.to_string());
            outcome.parent_digests = built
                .parent_digests
                .iter()
                .map(|(image, digest)| (image.to_string(), digest.to_string()))
                .collect();
        }
        Message::BuildFailed(failed) => {
            outcome.stage = "build failed";
            outcome.ended = Some(false);
            outcome.error = Some(failed.error.clone());
        }
        Message::BuildSkipped(skipped) => {
            outcome.stage = "skipped";
            outcome.ended = Some(false);
            outcome.error = Some(skipped.reason.clone());
        }
        Message::ScanCompleted(scanned) => {
            outcome.stage = "scanned";
            outcome.ended = Some(true);
            outcome.scan_counts = scanned.counts.clone();
        }
        Message::ScanFailed(failed) => {
            outcome.stage = "scan failed";
            outcome.ended = Some(false);
            outcome.error = Some(failed.error.clone());
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::sample::{BASE_IMAGE, index_file};
    use slipway_common::index::{Entry, Level, parse_index};
    use slipway_common::message::test_support::{sample_commit, sample_digest};
    use slipway_common::message::{
        BuildRequested, BuildSucceeded, IndexProblemAt, IndexRejected, LintFailed, LintPassed,
        MailSent, ScanCompleted,
    };
    use slipway_common::{Cause, Envelope, ImageRef};
    use slipway_notify::config::NotifySettings;

    fn entries() -> Vec<Entry> {
        parse_index(&index_file("file:///tmp/demo/apps"))
            .unwrap()
            .entries
            .into_iter()
            .map(|placed| placed.entry)
            .collect()
    }

    fn event(envelope: &Envelope) -> HistoryEvent {
        HistoryEvent {
            offset: 0,
            envelope: envelope.clone(),
        }
    }

    /// The events of one entry's job going as the sample means it to; `mailed` gets the ids of
    /// those the notify worker mails.
    fn job(entry: &Entry, mailed: &mut Vec<String>) -> Vec<Envelope> {
        let requested = Envelope::new_job(
            Cause::IndexChange,
            Message::BuildRequested(BuildRequested {
                entry: entry.clone(),
                commit: None,
            }),
        );
        if entry.job_id == "broken" {
            let failed = requested.follow_up(Message::LintFailed(LintFailed {
                entry: entry.clone(),
                commit: Some(sample_commit()),
                findings: vec![LintFinding {
                    line: BROKEN_LINE,
                    column: 1,
                    code: BROKEN_RULE.into(),
                    level: Level::Error,
                    message: "Use COPY instead of ADD for files and folders".into(),
                }],
                error: None,
            }));
            mailed.push(failed.id.to_string());
            return vec![requested, failed];
        }
        let image = ImageRef::parse(&format!("127.0.0.1:5000/{}", entry.image())).unwrap();
        let passed = requested.follow_up(Message::LintPassed(LintPassed {
            entry: entry.clone(),
            commit: sample_commit(),
            findings: Vec::new(),
        }));
        let built = requested.follow_up(Message::BuildSucceeded(BuildSucceeded {
            entry: entry.clone(),
            commit: sample_commit(),
            image: image.clone(),
            digest: sample_digest("ab"),
            content_key: "key".into(),
            parent_digests: [(ImageRef::parse(BASE_IMAGE).unwrap(), sample_digest("cd"))].into(),
            duration_ms: 1,
            record: None,
        }));
        let scanned = requested.follow_up(Message::ScanCompleted(ScanCompleted {
            image,
            digest: sample_digest("ab"),
            counts: [("packages".to_owned(), 96)].into(),
            notify_email: entry.notify_email.clone(),
        }));
        mailed.extend([built.id.to_string(), scanned.id.to_string()]);
        vec![requested, passed, built, scanned]
    }

    fn mail_sent(event_id: &str) -> Envelope {
        Envelope::new_job(
            Cause::User,
            Message::MailSent(MailSent {
                message_id: format!("<{event_id}@slipway>"),
                to: "team@demo.example".into(),
                subject: "s".into(),
                events: vec![event_id.to_owned()],
            }),
        )
    }

    #[test]
    fn done_once_every_image_ended_and_every_mail_is_recorded_and_as_the_sample_means() {
        let mut summary = Summary::new(Policies::new(&NotifySettings::default()));
        let mut mailed = Vec::new();
        for entry in entries() {
            for envelope in job(&entry, &mut mailed) {
                assert!(!summary.complete());
                summary.apply(&event(&envelope));
            }
        }
        assert_eq!(
            mailed.len(),
            7,
            "two mails per image scanned, one for the lint failure"
        );
        assert!(summary.unfinished().is_empty());
        assert_eq!(summary.mails_pending(), 7);
        assert!(!summary.complete(), "the mails are not recorded yet");
        for id in &mailed {
            summary.apply(&event(&mail_sent(id)));
        }
        assert!(summary.complete());
        assert!(summary.as_expected());
        assert_eq!(summary.recorded_mails().len(), 7);
        let web = summary
            .images()
            .into_iter()
            .find(|i| i.image == "demo/web:1")
            .unwrap();
        assert_eq!(web.stage, "scanned");
        assert_eq!(web.scan_counts["packages"], 96);
        assert_eq!(
            web.digest.as_deref(),
            Some(sample_digest("ab").to_string().as_str())
        );
    }

    #[test]
    fn a_broken_entry_that_passes_or_a_rejected_index_is_not_what_the_sample_means() {
        let mut summary = Summary::new(Policies::new(&NotifySettings::default()));
        let mut mailed = Vec::new();
        for entry in entries() {
            // Every entry, the broken one included, scanned: not as expected.
            let mut fine = entry.clone();
            fine.job_id = "web".into();
            let events = job(&fine, &mut mailed);
            for envelope in events {
                let mut envelope = envelope;
                if let Message::BuildRequested(request) = &mut envelope.message {
                    request.entry = entry.clone();
                }
                summary.apply(&event(&envelope));
            }
        }
        assert!(summary.unfinished().is_empty());
        assert!(!summary.as_expected(), "the broken entry was scanned");

        let mut summary = Summary::new(Policies::new(&NotifySettings::default()));
        summary.apply(&event(&Envelope::new_job(
            Cause::IndexChange,
            Message::IndexRejected(IndexRejected {
                git_url: "file:///tmp/demo/index".into(),
                git_branch: "main".into(),
                commit: sample_commit(),
                problems: vec![IndexProblemAt {
                    file: "index.d/demo.yaml".into(),
                    line: Some(4),
                    message: "unknown key".into(),
                }],
                in_force: None,
            }),
        )));
        assert_eq!(
            summary.fatal(),
            Some("the repo-tracker rejected the sample index: index.d/demo.yaml:4: unknown key")
        );
    }
}

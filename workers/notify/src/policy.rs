//! Who gets which mail (pure): an event's recipients by the owners' policies, or why it is not
//! mailed — not a kind owners hear about, no owner named, too old, a success for an owner who
//! wants failures only, or a muted image.

use std::collections::{HashMap, HashSet};

use slipway_common::{Envelope, Message};

use crate::compose::{self, Mail};
use crate::config::NotifySettings;

/// Why an event sends no mail: the `reason` label of the suppressed-mail metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suppressed {
    /// Owners are not mailed about this kind (`image.retired`, `packages.updated`, …).
    Kind,
    /// The event names no owner (an entry without `notify-email`).
    NoOwner,
    /// It is older than `max_event_age_ms`.
    TooOld,
    /// A success, for an owner who wants failures only.
    FailuresOnly,
    /// The image is muted for this owner.
    Muted,
    /// Not suppressed: the owner gets a digest, which the digest sender writes at the end of
    /// the window from the history.
    Digest,
}

impl Suppressed {
    /// Every reason.
    pub const ALL: [Suppressed; 6] = [
        Suppressed::Kind,
        Suppressed::NoOwner,
        Suppressed::TooOld,
        Suppressed::FailuresOnly,
        Suppressed::Muted,
        Suppressed::Digest,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Suppressed::Kind => "kind",
            Suppressed::NoOwner => "no-owner",
            Suppressed::TooOld => "too-old",
            Suppressed::FailuresOnly => "failures-only",
            Suppressed::Muted => "muted",
            Suppressed::Digest => "digest",
        }
    }
}

/// The owners' policies, resolved.
#[derive(Clone, Debug, Default)]
pub struct Policies {
    failures_only: bool,
    muted: HashSet<String>,
    admins: Vec<String>,
    max_event_age_ms: u64,
    digest_window_ms: u64,
    owners: HashMap<String, OwnerRules>,
}

/// One owner's overrides.
#[derive(Clone, Debug, Default)]
struct OwnerRules {
    failures_only: Option<bool>,
    muted: HashSet<String>,
    digest_window_ms: Option<u64>,
}

impl Policies {
    /// From the `[notify]` settings.
    pub fn new(settings: &NotifySettings) -> Self {
        Policies {
            failures_only: settings.failures_only,
            muted: settings.muted_images.iter().cloned().collect(),
            admins: settings.admin_emails.clone(),
            max_event_age_ms: settings.max_event_age_ms,
            digest_window_ms: settings.digest_window_ms,
            owners: settings
                .owners
                .iter()
                .map(|owner| {
                    (
                        owner.email.to_ascii_lowercase(),
                        OwnerRules {
                            failures_only: owner.failures_only,
                            muted: owner.muted_images.iter().cloned().collect(),
                            digest_window_ms: owner.digest_window_ms,
                        },
                    )
                })
                .collect(),
        }
    }

    fn failures_only(&self, owner: &str) -> bool {
        self.owners
            .get(&owner.to_ascii_lowercase())
            .and_then(|rules| rules.failures_only)
            .unwrap_or(self.failures_only)
    }

    /// The owner's digest window in milliseconds; 0: a mail per event.
    pub fn digest_window(&self, owner: &str) -> u64 {
        self.owners
            .get(&owner.to_ascii_lowercase())
            .and_then(|rules| rules.digest_window_ms)
            .unwrap_or(self.digest_window_ms)
    }

    /// How old an event may be and still be mailed.
    pub fn max_event_age_ms(&self) -> u64 {
        self.max_event_age_ms
    }

    fn muted(&self, owner: &str, image: &str) -> bool {
        self.muted.contains(image)
            || self
                .owners
                .get(&owner.to_ascii_lowercase())
                .is_some_and(|rules| rules.muted.contains(image))
    }
}

/// The mails `event` calls for at `now` (milliseconds since the Unix epoch), or why none. An
/// event for an owner with a digest window is [`Suppressed::Digest`]: see [`digested`].
pub fn mails(event: &Envelope, policies: &Policies, now: u64) -> Result<Vec<Mail>, Suppressed> {
    let mails = mailed(event, policies, now)?;
    if let [mail] = mails.as_slice()
        && !matches!(
            event.message,
            Message::SummaryReady(_) | Message::IndexRejected(_)
        )
        && policies.digest_window(&mail.to) > 0
    {
        return Err(Suppressed::Digest);
    }
    Ok(mails)
}

/// The digest entry `event` makes, when its owner gets digests: the owner, the window length,
/// and the event's own mail (whose subject and body the digest lists). Independent of the
/// clock, so every instance folds the same digests from the history.
pub fn digested(event: &Envelope, policies: &Policies) -> Option<(u64, Mail)> {
    if matches!(
        event.message,
        Message::SummaryReady(_) | Message::IndexRejected(_)
    ) {
        return None;
    }
    let mut mails = mailed(event, policies, event.created_at.unix_millis()).ok()?;
    let mail = mails.pop()?;
    let window = policies.digest_window(&mail.to);
    (window > 0).then_some((window, mail))
}

/// What an event calls for, before the digest choice.
fn mailed(event: &Envelope, policies: &Policies, now: u64) -> Result<Vec<Mail>, Suppressed> {
    let message = &event.message;
    let mailed = matches!(
        message,
        Message::LintFailed(_)
            | Message::BuildFailed(_)
            | Message::BuildSucceeded(_)
            | Message::BuildSkipped(_)
            | Message::ScanCompleted(_)
            | Message::ScanFailed(_)
            | Message::IndexRejected(_)
            | Message::SummaryReady(_)
    );
    if !mailed {
        return Err(Suppressed::Kind);
    }
    if now.saturating_sub(event.created_at.unix_millis()) > policies.max_event_age_ms {
        return Err(Suppressed::TooOld);
    }
    if let Message::IndexRejected(_) = message {
        if policies.admins.is_empty() {
            return Err(Suppressed::NoOwner);
        }
        return Ok(policies
            .admins
            .iter()
            .filter_map(|admin| {
                let mut mail = compose::event_mail(event, admin)?;
                // One Message-ID per recipient: each mail is recorded on its own.
                mail.message_id = format!(
                    "<{}.{}@slipway>",
                    event.id,
                    admin.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
                );
                Some(mail)
            })
            .collect());
    }
    let Some(owner) = compose::recipient(message) else {
        return Err(Suppressed::NoOwner);
    };
    if let Message::SummaryReady(_) = message {
        return compose::summary_mail(event)
            .map(|mail| vec![mail])
            .ok_or(Suppressed::Kind);
    }
    if let Some((image, _)) = message.image() {
        let name = match image.tag() {
            Some(tag) => format!("{}:{tag}", image.path()),
            None => image.path().to_owned(),
        };
        if policies.muted(owner, &name) {
            return Err(Suppressed::Muted);
        }
    }
    if !compose::is_failure(message) && policies.failures_only(owner) {
        return Err(Suppressed::FailuresOnly);
    }
    compose::event_mail(event, owner)
        .map(|mail| vec![mail])
        .ok_or(Suppressed::Kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OwnerPolicy;
    use slipway_common::message::test_support::sample_messages;
    use slipway_common::{Cause, Timestamp};

    fn settings() -> NotifySettings {
        NotifySettings {
            admin_emails: vec!["admin@example.org".into(), "ops@example.org".into()],
            owners: vec![OwnerPolicy {
                email: "Owner@Example.org".into(),
                failures_only: Some(true),
                muted_images: vec!["centos/muted:1".into()],
                digest_window_ms: None,
            }],
            ..NotifySettings::default()
        }
    }

    fn event(message: Message) -> Envelope {
        Envelope::new_job(Cause::GitChange, message)
    }

    fn now() -> u64 {
        Timestamp::now().unix_millis()
    }

    #[test]
    fn every_kind_is_mailed_or_suppressed_for_a_reason() {
        let policies = Policies::new(&NotifySettings {
            admin_emails: vec!["admin@example.org".into()],
            ..NotifySettings::default()
        });
        // Every optional field set: each event names its owner.
        for message in slipway_common::message::test_support::sample_messages_with_every_field() {
            let kind = message.kind();
            let decided = mails(&event(message), &policies, now());
            let expected_mail = matches!(
                kind.as_str(),
                "lint.failed"
                    | "build.failed"
                    | "build.succeeded"
                    | "scan.completed"
                    | "scan.failed"
                    | "index.rejected"
                    | "build.skipped"
                    | "summary.ready"
            );
            match decided {
                Ok(mails) => {
                    assert!(expected_mail, "{kind} mailed");
                    assert_eq!(mails.len(), 1, "{kind}");
                    let mail = &mails[0];
                    assert!(mail.subject.starts_with("[slipway] "), "{}", mail.subject);
                    assert!(mail.html.starts_with("<!DOCTYPE html>"));
                    assert!(mail.text.contains("More"), "{kind}: {}", mail.text);
                }
                Err(reason) => assert!(!expected_mail, "{kind}: {reason:?}"),
            }
        }
    }

    #[test]
    fn failures_only_mute_and_age_are_per_owner_and_case_blind() {
        let policies = Policies::new(&settings());
        let messages = sample_messages();
        let owned = |kind: &str| {
            let mut message = messages
                .iter()
                .find(|m| m.kind().as_str() == kind)
                .cloned()
                .unwrap();
            if let Message::BuildSucceeded(p) = &mut message {
                p.entry.notify_email = Some("owner@example.org".into());
            }
            if let Message::BuildFailed(p) = &mut message {
                p.entry.notify_email = Some("owner@example.org".into());
            }
            event(message)
        };
        assert_eq!(
            mails(&owned("build.succeeded"), &policies, now()).unwrap_err(),
            Suppressed::FailuresOnly
        );
        assert_eq!(
            mails(&owned("build.failed"), &policies, now())
                .unwrap()
                .len(),
            1
        );
        let mut muted = owned("build.failed");
        if let Message::BuildFailed(p) = &mut muted.message {
            p.entry.job_id = "muted".into();
            p.entry.app_id = "centos".into();
            p.entry.desired_tag = "1".into();
        }
        assert_eq!(
            mails(&muted, &policies, now()).unwrap_err(),
            Suppressed::Muted
        );
        let mut old = owned("build.failed");
        old.created_at = Timestamp::from_unix_millis(now() - 2 * 86_400_000);
        assert_eq!(
            mails(&old, &policies, now()).unwrap_err(),
            Suppressed::TooOld
        );
        let mut nobody = owned("build.failed");
        if let Message::BuildFailed(p) = &mut nobody.message {
            p.entry.notify_email = None;
        }
        assert_eq!(
            mails(&nobody, &policies, now()).unwrap_err(),
            Suppressed::NoOwner
        );
    }

    #[test]
    fn a_rejected_index_goes_to_each_admin_under_its_own_message_id() {
        let policies = Policies::new(&settings());
        let rejected = sample_messages()
            .into_iter()
            .find(|m| m.kind().as_str() == "index.rejected")
            .unwrap();
        let mails = mails(&event(rejected), &policies, now()).unwrap();
        let to: Vec<&str> = mails.iter().map(|m| m.to.as_str()).collect();
        assert_eq!(to, ["admin@example.org", "ops@example.org"]);
        assert_ne!(mails[0].message_id, mails[1].message_id);
        assert!(
            mails[0]
                .text
                .contains("index.d/centos.yaml: a dependency cycle")
        );
        let none = Policies::new(&NotifySettings::default());
        let rejected = sample_messages()
            .into_iter()
            .find(|m| m.kind().as_str() == "index.rejected")
            .unwrap();
        assert_eq!(
            super::mails(&event(rejected), &none, now()).unwrap_err(),
            Suppressed::NoOwner
        );
    }
}

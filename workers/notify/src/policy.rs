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
}

impl Suppressed {
    /// Every reason.
    pub const ALL: [Suppressed; 5] = [
        Suppressed::Kind,
        Suppressed::NoOwner,
        Suppressed::TooOld,
        Suppressed::FailuresOnly,
        Suppressed::Muted,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Suppressed::Kind => "kind",
            Suppressed::NoOwner => "no-owner",
            Suppressed::TooOld => "too-old",
            Suppressed::FailuresOnly => "failures-only",
            Suppressed::Muted => "muted",
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
    owners: HashMap<String, (Option<bool>, HashSet<String>)>,
}

impl Policies {
    /// From the `[notify]` settings.
    pub fn new(settings: &NotifySettings) -> Self {
        Policies {
            failures_only: settings.failures_only,
            muted: settings.muted_images.iter().cloned().collect(),
            admins: settings.admin_emails.clone(),
            max_event_age_ms: settings.max_event_age_ms,
            owners: settings
                .owners
                .iter()
                .map(|owner| {
                    (
                        owner.email.to_ascii_lowercase(),
                        (
                            owner.failures_only,
                            owner.muted_images.iter().cloned().collect(),
                        ),
                    )
                })
                .collect(),
        }
    }

    fn failures_only(&self, owner: &str) -> bool {
        self.owners
            .get(&owner.to_ascii_lowercase())
            .and_then(|(failures_only, _)| *failures_only)
            .unwrap_or(self.failures_only)
    }

    fn muted(&self, owner: &str, image: &str) -> bool {
        self.muted.contains(image)
            || self
                .owners
                .get(&owner.to_ascii_lowercase())
                .is_some_and(|(_, muted)| muted.contains(image))
    }
}

/// The mails `event` calls for at `now` (milliseconds since the Unix epoch), or why none.
pub fn mails(event: &Envelope, policies: &Policies, now: u64) -> Result<Vec<Mail>, Suppressed> {
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

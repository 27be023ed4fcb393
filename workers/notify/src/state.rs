//! What the notify worker knows from the history (pure): the mails already sent — the
//! `mail.sent` records' `Message-ID`s, kept as 16-byte hashes, so a year of mails costs a few
//! megabytes — and the digests being gathered: for each owner with a digest window, the events
//! of each window not yet mailed.
//!
//! A digest is decided by time alone: the events an owner's policy routes to its digest, in the
//! window their `created_at` falls in (an event that arrives after its window's digest went out
//! joins the next window). So every instance folds the same digests, and the one that sends
//! them — whichever leads — sends each once.

use std::collections::{BTreeMap, HashMap, HashSet};

use sha2::{Digest as _, Sha256};
use slipway_broker::follower::HistoryFold;
use slipway_common::{Envelope, Message, MessageId};

use crate::compose::{self, Mail};
use crate::policy::{self, Policies};

fn hashed(message_id: &str) -> [u8; 16] {
    let digest = Sha256::digest(message_id.as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    first
}

/// The `Message-ID` of `owner`'s digest for the window ending at `end`.
pub fn digest_message_id(owner: &str, end: u64) -> String {
    let hash = Sha256::digest(owner.to_ascii_lowercase().as_bytes());
    let hex: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("<digest.{hex}.{end}@slipway>")
}

/// One event of a digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestItem {
    /// The event.
    pub event: MessageId,
    /// What its own mail's subject says.
    pub subject: String,
    /// Its own mail's text.
    pub text: String,
    /// Whether it is a failure.
    pub failure: bool,
}

/// The events of one owner's window.
#[derive(Clone, Debug, Default)]
struct Bucket {
    window_ms: u64,
    items: Vec<DigestItem>,
    seen: HashSet<MessageId>,
    /// Events beyond the list's bound.
    more: u64,
}

/// The view.
#[derive(Debug)]
pub struct NotifyState {
    sent: HashSet<[u8; 16]>,
    policies: Policies,
    max_digest_events: usize,
    /// By (window end, owner).
    digests: BTreeMap<(u64, String), Bucket>,
    /// A digest's `Message-ID` → its key.
    digest_ids: HashMap<String, (u64, String)>,
}

impl NotifyState {
    /// An empty view routing events by `policies`.
    pub fn new(policies: Policies, max_digest_events: usize) -> Self {
        NotifyState {
            sent: HashSet::new(),
            policies,
            max_digest_events,
            digests: BTreeMap::new(),
            digest_ids: HashMap::new(),
        }
    }

    /// Whether a mail with this `Message-ID` was sent.
    pub fn was_sent(&self, message_id: &str) -> bool {
        self.sent.contains(&hashed(message_id))
    }

    /// How many mails the history records.
    pub fn sent_count(&self) -> usize {
        self.sent.len()
    }

    /// The digests whose window has ended by `now` and that are not older than the policies'
    /// `max_event_age_ms`, earliest first.
    pub fn due_digests(&self, now: u64) -> Vec<Mail> {
        let oldest = now.saturating_sub(self.policies.max_event_age_ms());
        self.digests
            .range(..=(now, String::from("\u{10FFFF}")))
            .filter(|((end, _), _)| *end >= oldest)
            .map(|((end, owner), bucket)| {
                compose::digest_mail(
                    owner,
                    end - bucket.window_ms,
                    *end,
                    &bucket.items,
                    bucket.more,
                    digest_message_id(owner, *end),
                )
            })
            .collect()
    }

    /// When the next digest window ends, if any is gathering.
    pub fn next_digest_end(&self) -> Option<u64> {
        self.digests.keys().next().map(|(end, _)| *end)
    }

    /// Forget digests too old to send (their window ended more than `max_event_age_ms` before
    /// `now`).
    pub fn expire(&mut self, now: u64) {
        let oldest = now.saturating_sub(self.policies.max_event_age_ms());
        let expired: Vec<(u64, String)> = self
            .digests
            .range(..(oldest, String::new()))
            .map(|(key, _)| key.clone())
            .collect();
        for key in expired {
            self.digests.remove(&key);
            self.digest_ids.remove(&digest_message_id(&key.1, key.0));
        }
    }

    fn gather(&mut self, event: &Envelope) {
        let Some((window, mail)) = policy::digested(event, &self.policies) else {
            return;
        };
        let at = event.created_at.unix_millis();
        let mut end = (at / window + 1) * window;
        // Its window's digest went out already (a late event): the next window takes it.
        while self.was_sent(&digest_message_id(&mail.to, end)) {
            end += window;
        }
        let key = (end, mail.to.clone());
        self.digest_ids
            .insert(digest_message_id(&mail.to, end), key.clone());
        let bucket = self.digests.entry(key).or_insert_with(|| Bucket {
            window_ms: window,
            ..Bucket::default()
        });
        if !bucket.seen.insert(event.id) {
            return;
        }
        if bucket.items.len() < self.max_digest_events {
            bucket.items.push(DigestItem {
                event: event.id,
                subject: mail.subject,
                text: mail.text,
                failure: mail.failure,
            });
        } else {
            bucket.more += 1;
        }
    }
}

impl HistoryFold for NotifyState {
    fn apply(&mut self, event: &Envelope) {
        if let Message::MailSent(sent) = &event.message {
            self.sent.insert(hashed(&sent.message_id));
            if let Some(key) = self.digest_ids.remove(&sent.message_id) {
                self.digests.remove(&key);
            }
            return;
        }
        self.gather(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NotifySettings, OwnerPolicy};
    use slipway_common::index::test_support::sample_entry;
    use slipway_common::message::{BuildFailed, BuildStage, CommitSha, MailSent};
    use slipway_common::{Cause, Timestamp};

    const WINDOW: u64 = 60_000;

    fn state() -> NotifyState {
        let settings = NotifySettings {
            max_event_age_ms: 10 * WINDOW,
            owners: vec![OwnerPolicy {
                email: "grouped@example.org".into(),
                digest_window_ms: Some(WINDOW),
                ..OwnerPolicy::default()
            }],
            ..NotifySettings::default()
        };
        NotifyState::new(Policies::new(&settings), 3)
    }

    fn failed(owner: &str, job: &str, at: u64) -> Envelope {
        let mut entry = sample_entry();
        entry.notify_email = Some(owner.into());
        entry.job_id = job.into();
        Envelope {
            created_at: Timestamp::from_unix_millis(at),
            ..Envelope::new_job(
                Cause::GitChange,
                Message::BuildFailed(BuildFailed {
                    entry,
                    commit: CommitSha::try_from("ab".repeat(20)).unwrap(),
                    stage: BuildStage::Build,
                    error: "boom".into(),
                    log_tail: Vec::new(),
                }),
            )
        }
    }

    fn sent(message_id: &str) -> Envelope {
        Envelope::new_job(
            Cause::User,
            Message::MailSent(MailSent {
                message_id: message_id.into(),
                to: "grouped@example.org".into(),
                subject: "s".into(),
                events: Vec::new(),
            }),
        )
    }

    #[test]
    fn a_window_of_events_makes_one_digest_once_and_a_late_event_joins_the_next() {
        let mut state = state();
        let start = 1000 * WINDOW;
        for (n, at) in [start + 1, start + 10, start + WINDOW - 1]
            .into_iter()
            .enumerate()
        {
            state.apply(&failed("grouped@example.org", &format!("j{n}"), at));
        }
        // Another owner mails per event: nothing gathered for it.
        state.apply(&failed("single@example.org", "x", start + 5));
        // A replay of an event is listed once.
        let replay = failed("grouped@example.org", "j9", start + 20);
        state.apply(&replay);
        state.apply(&replay);
        assert!(
            state.due_digests(start + WINDOW - 1).is_empty(),
            "the window is open"
        );
        let due = state.due_digests(start + WINDOW);
        assert_eq!(due.len(), 1);
        let digest = &due[0];
        assert_eq!(digest.to, "grouped@example.org");
        assert_eq!(digest.events.len(), 3, "bounded at 3");
        assert!(digest.text.contains("and 1 more"), "{}", digest.text);
        assert!(digest.subject.contains("4 event(s)"), "{}", digest.subject);
        assert_eq!(
            digest.message_id,
            digest_message_id("grouped@example.org", start + WINDOW)
        );
        // Once sent, it is no longer due; a late event of that window goes to the next one.
        state.apply(&sent(&digest.message_id));
        assert!(state.due_digests(start + WINDOW).is_empty());
        state.apply(&failed("grouped@example.org", "late", start + 30));
        assert!(state.due_digests(start + WINDOW + 1).is_empty());
        let next = state.due_digests(start + 2 * WINDOW);
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].events.len(), 1);
        // Too old to send: expired, not sent.
        state.expire(start + 20 * WINDOW);
        assert!(state.due_digests(start + 20 * WINDOW).is_empty());
        assert_eq!(state.next_digest_end(), None);
    }
}

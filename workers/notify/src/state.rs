//! The mails already sent (pure): folded from the history's `mail.sent` records, which name
//! each mail's `Message-ID`. Kept as 16-byte hashes of the ids, so a year of mails costs a few
//! megabytes.

use std::collections::HashSet;

use sha2::{Digest as _, Sha256};
use slipway_broker::follower::HistoryFold;
use slipway_common::{Envelope, Message};

/// The `Message-ID`s of every mail the history says was sent.
#[derive(Debug, Default)]
pub struct SentMails {
    sent: HashSet<[u8; 16]>,
}

fn hashed(message_id: &str) -> [u8; 16] {
    let digest = Sha256::digest(message_id.as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    first
}

impl SentMails {
    /// Whether a mail with this `Message-ID` was sent.
    pub fn was_sent(&self, message_id: &str) -> bool {
        self.sent.contains(&hashed(message_id))
    }

    /// How many mails the history records.
    pub fn len(&self) -> usize {
        self.sent.len()
    }

    /// Whether it records none.
    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }
}

impl HistoryFold for SentMails {
    fn apply(&mut self, event: &Envelope) {
        if let Message::MailSent(sent) = &event.message {
            self.sent.insert(hashed(&sent.message_id));
        }
    }
}

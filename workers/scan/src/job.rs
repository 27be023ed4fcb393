//! The scan worker's decisions, free of I/O: which image a message asks to scan ([`ScanJob`]),
//! which local reference names exactly that image, and what to publish when the scan succeeds or
//! fails.

use std::collections::BTreeMap;

use slipway_common::Message;
use slipway_common::message::{ScanCompleted, ScanFailed};

/// One image to scan, from `build.succeeded` or `scan.requested`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanJob {
    /// The image reference (`registry/path:tag`).
    pub image: String,
    /// The manifest digest to scan (`sha256:…`); `None` for a rescan of whatever the tag names now.
    pub digest: Option<String>,
    /// Who hears about the result.
    pub notify_email: Option<String>,
}

impl ScanJob {
    /// The job a message asks for, or why the scan worker does not take it (a message kind it
    /// does not consume: a routing mistake, dead-lettered).
    pub fn of(message: &Message) -> Result<ScanJob, String> {
        match message {
            Message::BuildSucceeded(built) => Ok(ScanJob {
                image: built.image.clone(),
                digest: Some(built.digest.clone()),
                notify_email: built.entry.notify_email.clone(),
            }),
            Message::ScanRequested(requested) => Ok(ScanJob {
                image: requested.image.clone(),
                digest: requested.digest.clone(),
                notify_email: requested.notify_email.clone(),
            }),
            other => Err(format!(
                "the scan worker consumes build.succeeded and scan.requested, not {}",
                other.kind().as_str()
            )),
        }
    }

    /// The repository of [`ScanJob::image`]: the reference without its tag.
    pub fn repository(&self) -> &str {
        let last_slash = self.image.rfind('/').map_or(0, |i| i + 1);
        match self.image[last_slash..].rfind(':') {
            Some(colon) => &self.image[..last_slash + colon],
            None => &self.image,
        }
    }

    /// The local reference of exactly the image to scan: `repository@digest` when the digest is
    /// known, else the tag.
    pub fn local_reference(&self) -> String {
        match &self.digest {
            Some(digest) => format!("{}@{digest}", self.repository()),
            None => self.image.clone(),
        }
    }

    /// The digest of the scanned image among the daemon's `repo_digests` for this repository
    /// (what a rescan of a tag learns after pulling it).
    pub fn digest_among(&self, repo_digests: &[String]) -> Option<String> {
        if let Some(digest) = &self.digest {
            return Some(digest.clone());
        }
        let prefix = format!("{}@", self.repository());
        repo_digests
            .iter()
            .find_map(|d| d.strip_prefix(&prefix))
            .map(str::to_owned)
    }

    /// `scan.completed` for the scan of `digest` with these per-scanner counts.
    pub fn completed(&self, digest: String, counts: BTreeMap<String, u64>) -> Message {
        Message::ScanCompleted(ScanCompleted {
            image: self.image.clone(),
            digest,
            counts,
            notify_email: self.notify_email.clone(),
        })
    }

    /// `scan.failed` saying why.
    pub fn failed(&self, error: String) -> Message {
        Message::ScanFailed(ScanFailed {
            image: self.image.clone(),
            error,
            notify_email: self.notify_email.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_common::message::test_support::sample_messages;
    use slipway_common::message::{BuildSucceeded, ScanRequested};

    fn requested(image: &str, digest: Option<&str>) -> ScanJob {
        ScanJob::of(&Message::ScanRequested(ScanRequested {
            image: image.into(),
            digest: digest.map(str::to_owned),
            notify_email: Some("owner@example.org".into()),
        }))
        .unwrap()
    }

    #[test]
    fn a_built_image_is_scanned_at_its_digest() {
        let built = sample_messages()
            .into_iter()
            .find_map(|m| match m {
                Message::BuildSucceeded(b) => Some(b),
                _ => None,
            })
            .unwrap();
        let job = ScanJob::of(&Message::BuildSucceeded(BuildSucceeded {
            image: "127.0.0.1:5000/team/app:1.2".into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            ..built.clone()
        }))
        .unwrap();
        assert_eq!(
            job.local_reference(),
            format!("127.0.0.1:5000/team/app@sha256:{}", "a".repeat(64))
        );
        assert_eq!(job.notify_email, built.entry.notify_email);
    }

    #[test]
    fn a_rescan_without_digest_learns_it_from_the_daemon() {
        let job = requested("127.0.0.1:5000/team/app:latest", None);
        assert_eq!(job.repository(), "127.0.0.1:5000/team/app");
        assert_eq!(job.local_reference(), "127.0.0.1:5000/team/app:latest");
        let digests = [
            "other/repo@sha256:1".to_owned(),
            "127.0.0.1:5000/team/app@sha256:2".to_owned(),
        ];
        assert_eq!(job.digest_among(&digests).as_deref(), Some("sha256:2"));
        assert_eq!(requested("app", None).repository(), "app");
        assert_eq!(
            requested("host:5000/app", None).repository(),
            "host:5000/app"
        );
    }

    #[test]
    fn outcomes_carry_the_image_and_whom_to_tell() {
        let job = requested("r/app:1", Some("sha256:3"));
        let Message::ScanCompleted(done) =
            job.completed("sha256:3".into(), BTreeMap::from([("packages".into(), 96)]))
        else {
            panic!("not scan.completed");
        };
        assert_eq!(
            (done.image.as_str(), done.digest.as_str()),
            ("r/app:1", "sha256:3")
        );
        assert_eq!(done.counts["packages"], 96);
        assert_eq!(done.notify_email.as_deref(), Some("owner@example.org"));
        let Message::ScanFailed(failed) = job.failed("no such image".into()) else {
            panic!("not scan.failed");
        };
        assert_eq!(failed.error, "no such image");
    }

    #[test]
    fn other_kinds_are_refused_with_the_reason() {
        let lint = sample_messages()
            .into_iter()
            .find(|m| matches!(m, Message::LintPassed(_)))
            .unwrap();
        assert!(ScanJob::of(&lint).unwrap_err().contains("lint.passed"));
    }
}

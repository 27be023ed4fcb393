//! The scan worker's decisions, free of I/O: which image a message asks to scan ([`ScanJob`]),
//! which local reference names exactly that image, and what to publish when the scan succeeds or
//! fails.

use std::collections::BTreeMap;

use slipway_common::message::{ScanCompleted, ScanFailed};
use slipway_common::{Digest, ImageRef, Message};

/// One image to scan, from `build.succeeded` or `scan.requested`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanJob {
    /// The image reference (`registry/path:tag`).
    pub image: ImageRef,
    /// The manifest digest to scan; `None` for a rescan of whatever the tag names now.
    pub digest: Option<Digest>,
    /// Who hears about the result.
    pub notify_email: Option<String>,
}

impl ScanJob {
    /// The job a message asks for, or why the scan worker does not take it (a message kind it
    /// does not consume, or a request naming neither tag nor digest: dead-lettered).
    pub fn of(message: &Message) -> Result<ScanJob, String> {
        let job = match message {
            Message::BuildSucceeded(built) => ScanJob {
                image: built.image.clone(),
                digest: Some(built.digest.clone()),
                notify_email: built.entry.notify_email.clone(),
            },
            Message::ScanRequested(requested) => ScanJob {
                image: requested.image.clone(),
                digest: requested
                    .digest
                    .clone()
                    .or_else(|| requested.image.digest().cloned()),
                notify_email: requested.notify_email.clone(),
            },
            other => {
                return Err(format!(
                    "the scan worker consumes build.succeeded and scan.requested, not {}",
                    other.kind().as_str()
                ));
            }
        };
        if job.image.tag().is_none() && job.digest.is_none() {
            return Err(format!(
                "{} names neither a tag nor a digest: there is no image to scan",
                job.image
            ));
        }
        Ok(job)
    }

    /// The local reference of exactly the image to scan: `repository@digest` when the digest is
    /// known, else the tag.
    pub fn local_reference(&self) -> String {
        self.image.pinned(self.digest.as_ref())
    }

    /// `scan.completed` for the scan of `digest` with these per-scanner counts.
    pub fn completed(&self, digest: Digest, counts: BTreeMap<String, u64>) -> Message {
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
    use slipway_common::message::test_support::{sample_digest, sample_image, sample_messages};
    use slipway_common::message::{BuildSucceeded, ScanRequested};

    fn requested(image: &str, digest: Option<Digest>) -> Result<ScanJob, String> {
        ScanJob::of(&Message::ScanRequested(ScanRequested {
            image: sample_image(image),
            digest,
            notify_email: Some("owner@example.org".into()),
        }))
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
            image: sample_image("127.0.0.1:5000/team/app:1.2"),
            digest: sample_digest("aa"),
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
    fn a_rescan_names_the_tag_or_the_pinned_digest() {
        let job = requested("127.0.0.1:5000/team/app:latest", None).unwrap();
        assert_eq!(job.local_reference(), "127.0.0.1:5000/team/app:latest");
        let pinned = format!("127.0.0.1:5000/team/app@{}", sample_digest("bb"));
        let job = requested(&pinned, None).unwrap();
        assert_eq!(job.digest, Some(sample_digest("bb")));
        assert_eq!(job.local_reference(), pinned);
        let error = requested("127.0.0.1:5000/team/app", None).unwrap_err();
        assert!(error.contains("neither a tag nor a digest"), "{error}");
    }

    #[test]
    fn outcomes_carry_the_image_and_whom_to_tell() {
        let job = requested("r/app:1", Some(sample_digest("33"))).unwrap();
        let Message::ScanCompleted(done) = job.completed(
            sample_digest("33"),
            BTreeMap::from([("packages".into(), 96)]),
        ) else {
            panic!("not scan.completed");
        };
        assert_eq!(
            (done.image.to_string(), done.digest),
            ("r/app:1".to_owned(), sample_digest("33"))
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

//! Full scan reports on a RabbitMQ stream: the `<namespace>.reports` stream and its retention,
//! [`append_report`] for the scan worker, and [`latest_report`] / [`report_history`] behind
//! `slipway report`.
//!
//! The stream is declared, appended to and read as every Slipway stream is (`crate::streams`):
//! reports go to the default exchange with the stream's name as routing key, confirmed and
//! `mandatory`, so a missing stream is an error ([`ReportError::NoStream`]), never a silent loss.
//!
//! One message is one report: the body is the report's JSON, opaque here (content type
//! [`REPORT_CONTENT_TYPE`]), and the headers say whose it is:
//!
//! | header | type | meaning |
//! |---|---|---|
//! | `x-slipway-image` | string | the image reference that was scanned |
//! | `x-slipway-digest` | string | the manifest digest that was scanned (`sha256:…`) |
//! | `x-slipway-job-id` | string | the scan's job |
//! | `x-slipway-scanned-at-ms` | integer | when the scan ran, Unix milliseconds |
//!
//! **Duplicates.** The scan worker acks a scan only after its report is confirmed, so a
//! redelivered scan may append the same report (same job id and digest) twice. Readers take the
//! newest message of the stream: [`latest_report`] returns the last one appended, and
//! [`report_history`] lists a job's report for a digest once, at its latest position.

mod reader;

use lapin::types::FieldTable;
use serde::{Deserialize, Serialize};
use slipway_common::{JobId, Timestamp};

use crate::headers;
use crate::publisher::{PublishError, Publisher};
use crate::streams::{self, Append, StreamRetention};
use crate::{BrokerConnection, BrokerError};

pub use crate::streams::ReadFrom;
pub use reader::{ReportEntry, ReportReadOptions, StoredReport, latest_report, report_history};

/// `x-slipway-image`: the image reference that was scanned.
pub const IMAGE: &str = "x-slipway-image";
/// `x-slipway-digest`: the manifest digest that was scanned.
pub const DIGEST: &str = "x-slipway-digest";
/// `x-slipway-scanned-at-ms`: when the scan ran, in Unix milliseconds.
pub const SCANNED_AT_MS: &str = "x-slipway-scanned-at-ms";

/// Content type of a report.
pub const REPORT_CONTENT_TYPE: &str = "application/json";

/// The name of the report stream of `namespace`: `<namespace>.reports`.
pub fn report_stream_name(namespace: &str) -> String {
    format!("{namespace}.reports")
}

/// Retention of the report stream: reports are wanted longer than logs (the latest report of an
/// image that is rarely rescanned), and are fewer. RabbitMQ deletes whole segments, oldest first,
/// once a segment is entirely older than `max_age` or the stream is larger than
/// `max_length_bytes`.
///
/// The arguments are fixed when the stream is first declared: declaring it again with other
/// values fails with a 406 naming the argument. Change retention on a live stream with a policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportStreamSettings {
    /// How long reports are kept (`x-max-age`): a number and one unit of `Y`, `M`, `D`, `h`, `m`,
    /// `s`; default `90D`.
    pub max_age: String,
    /// Largest size of the stream on disk (`x-max-length-bytes`); default 5 GiB.
    pub max_length_bytes: u64,
    /// Size of one segment file (`x-stream-max-segment-size-bytes`); default 100 MiB, so
    /// retention drops reports in steps of at most that much.
    pub max_segment_size_bytes: u64,
}

impl Default for ReportStreamSettings {
    fn default() -> Self {
        Self {
            max_age: "90D".to_owned(),
            max_length_bytes: 5 << 30,
            max_segment_size_bytes: 100 << 20,
        }
    }
}

impl ReportStreamSettings {
    /// Reject retention settings RabbitMQ would refuse, naming the key.
    pub fn validate(&self) -> Result<(), BrokerError> {
        self.retention().validate()
    }

    fn retention(&self) -> StreamRetention<'_> {
        StreamRetention {
            section: "reports",
            max_age: &self.max_age,
            max_length_bytes: self.max_length_bytes,
            max_segment_size_bytes: self.max_segment_size_bytes,
        }
    }
}

/// Declare the report stream `stream` (idempotent; a 406 names an argument that differs from the
/// existing stream's).
pub async fn declare_report_stream(
    connection: &BrokerConnection,
    stream: &str,
    settings: &ReportStreamSettings,
) -> Result<(), BrokerError> {
    streams::declare_stream(connection, stream, settings.retention(), "report stream").await
}

/// Delete the report stream `stream` and every report in it (test namespaces, dev resets).
pub async fn delete_report_stream(
    connection: &BrokerConnection,
    stream: &str,
) -> Result<(), BrokerError> {
    streams::delete_stream(connection, stream).await
}

/// Whose report it is: the headers of a report message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportMeta {
    /// The image reference that was scanned, e.g. `127.0.0.1:5000/centos/django:latest`.
    pub image: String,
    /// The manifest digest that was scanned, `sha256:…`.
    pub digest: String,
    /// The scan's job.
    pub job_id: JobId,
    /// When the scan ran.
    pub scanned_at: Timestamp,
}

impl ReportMeta {
    fn to_headers(&self) -> FieldTable {
        let mut table = FieldTable::default();
        headers::set_text(&mut table, IMAGE, &self.image);
        headers::set_text(&mut table, DIGEST, &self.digest);
        headers::set_text(&mut table, headers::JOB_ID, &self.job_id.to_string());
        headers::set_integer(
            &mut table,
            SCANNED_AT_MS,
            i64::try_from(self.scanned_at.unix_millis()).unwrap_or(i64::MAX),
        );
        table
    }

    fn from_headers(table: Option<&FieldTable>) -> Result<Self, HeaderError> {
        let text = |name| headers::text(table, name).ok_or(HeaderError::MissingText(name));
        let job = text(headers::JOB_ID)?;
        let job_id = job.parse().map_err(|_| HeaderError::BadJobId(job))?;
        let scanned_at = headers::integer(table, SCANNED_AT_MS);
        let scanned_at = scanned_at
            .and_then(|ms| u64::try_from(ms).ok())
            .map(Timestamp::from_unix_millis)
            .ok_or(HeaderError::BadScannedAt(scanned_at))?;
        Ok(Self {
            image: text(IMAGE)?,
            digest: text(DIGEST)?,
            job_id,
            scanned_at,
        })
    }

    /// Check what readers rely on: an image reference and a digest they can match.
    fn validate(&self) -> Result<(), ReportError> {
        validate_image(&self.image)?;
        validate_digest(&self.digest)
    }
}

/// Why a message of the stream is not a readable report.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum HeaderError {
    #[error("header {0} is missing or not a string")]
    MissingText(&'static str),
    #[error("header {JOB_ID_HEADER} is not a job id: {0:?}", JOB_ID_HEADER = headers::JOB_ID)]
    BadJobId(String),
    #[error("header {SCANNED_AT_MS} must be a non-negative integer, found {0:?}")]
    BadScannedAt(Option<i64>),
}

/// Which reports a lookup wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageSelector {
    /// Reports whose image reference is exactly this one (`registry/repo:tag`).
    Reference(String),
    /// Reports of this manifest digest of this repository (`repository@sha256:…`), whatever
    /// tag they were scanned under.
    Digest {
        /// The repository, without tag (`127.0.0.1:5000/centos/django`).
        repository: String,
        /// The digest (`sha256:…`).
        digest: String,
    },
}

impl ImageSelector {
    /// `repository@digest` selects by digest; anything else is an exact image reference.
    pub fn parse(reference: &str) -> Result<Self, ReportError> {
        match reference.split_once('@') {
            Some((repository, digest)) => {
                validate_image(repository)?;
                validate_digest(digest)?;
                Ok(Self::Digest {
                    repository: repository.to_owned(),
                    digest: digest.to_owned(),
                })
            }
            None => {
                validate_image(reference)?;
                Ok(Self::Reference(reference.to_owned()))
            }
        }
    }

    /// Whether the report described by `meta` is one this selector wants.
    pub fn matches(&self, meta: &ReportMeta) -> bool {
        match self {
            Self::Reference(reference) => meta.image == *reference,
            Self::Digest { repository, digest } => {
                meta.digest == *digest && repository_of(&meta.image) == repository
            }
        }
    }
}

impl std::fmt::Display for ImageSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Reference(reference) => f.write_str(reference),
            Self::Digest { repository, digest } => write!(f, "{repository}@{digest}"),
        }
    }
}

/// The repository of an image reference: without its `@digest` and its `:tag` (a `:` before the
/// last `/` is a registry port).
fn repository_of(image: &str) -> &str {
    let image = image.split_once('@').map_or(image, |(name, _)| name);
    match image.rfind(':') {
        Some(colon) if !image[colon..].contains('/') => &image[..colon],
        _ => image,
    }
}

fn validate_image(image: &str) -> Result<(), ReportError> {
    if image.is_empty() || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ReportError::Invalid {
            what: "image reference",
            found: image.to_owned(),
            expected: "an image reference such as registry:5000/repo:tag, without spaces",
        });
    }
    Ok(())
}

/// `algorithm:hex`, e.g. `sha256:` and 64 hexadecimal digits.
fn validate_digest(digest: &str) -> Result<(), ReportError> {
    let valid = digest.split_once(':').is_some_and(|(algorithm, hex)| {
        !algorithm.is_empty()
            && algorithm
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && hex.len() >= 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    });
    if valid {
        Ok(())
    } else {
        Err(ReportError::Invalid {
            what: "digest",
            found: digest.to_owned(),
            expected: "a digest such as sha256: and 64 lowercase hexadecimal digits",
        })
    }
}

/// Append the report `body` (JSON) of `meta` to the report stream `stream` through `publisher` (a
/// confirm-mode channel), and wait for the broker's confirm: once this returns `Ok`, the report is
/// stored and the scan may be acked. Appending the same report again (a redelivered scan) is
/// harmless: readers keep the newest.
pub async fn append_report(
    publisher: &Publisher,
    stream: &str,
    meta: &ReportMeta,
    body: &[u8],
) -> Result<(), ReportError> {
    meta.validate()?;
    let message = Append {
        body,
        content_type: REPORT_CONTENT_TYPE,
        message_id: format!("{}.{}", meta.job_id, meta.digest),
        headers: meta.to_headers(),
    };
    match streams::append(publisher, stream, message).await {
        Ok(()) => Ok(()),
        Err(PublishError::Unroutable { .. }) => Err(ReportError::NoStream {
            stream: stream.to_owned(),
        }),
        Err(error) => Err(ReportError::Publish(error)),
    }
}

/// What can go wrong storing or reading a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Connecting, opening a channel or declaring failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// An image reference or digest is malformed.
    #[error("invalid {what} {found:?}: expected {expected}")]
    Invalid {
        /// `image reference` or `digest`.
        what: &'static str,
        /// What was given.
        found: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The stream does not exist: nothing declared it in this namespace (the scan worker does
    /// when it starts), so no scan has stored a report.
    #[error(
        "report stream {stream:?} does not exist: no scan worker has declared it in this namespace"
    )]
    NoStream {
        /// The stream's name.
        stream: String,
    },
    /// The broker did not take the report (refused, unconfirmed, channel lost).
    #[error("cannot append the report: {0}")]
    Publish(PublishError),
    /// Consuming the stream failed.
    #[error("cannot read report stream {stream:?}: {source}")]
    Consume {
        /// The stream's name.
        stream: String,
        /// lapin's error.
        source: lapin::Error,
    },
    /// The broker ended the consumer (the stream was deleted, or the channel closed).
    #[error("the broker stopped the reader of report stream {stream:?} before its end")]
    ConsumerEnded {
        /// The stream's name.
        stream: String,
    },
    /// The read did not reach the end of the stream within its deadline.
    #[error("reading report stream {stream:?} did not reach its end within {after:?}")]
    Deadline {
        /// The stream's name.
        stream: String,
        /// The deadline.
        after: std::time::Duration,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST_A: &str =
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn meta(image: &str, digest: &str) -> ReportMeta {
        ReportMeta {
            image: image.into(),
            digest: digest.into(),
            job_id: JobId::new(),
            scanned_at: Timestamp::from_unix_millis(1_700_000_000_123),
        }
    }

    #[test]
    fn headers_round_trip_and_name_what_is_wrong() {
        let meta = meta("127.0.0.1:5000/app:1", DIGEST_A);
        let table = meta.to_headers();
        assert_eq!(ReportMeta::from_headers(Some(&table)), Ok(meta.clone()));
        assert_eq!(
            ReportMeta::from_headers(None),
            Err(HeaderError::MissingText(headers::JOB_ID))
        );
        let mut bad_job = table.clone();
        headers::set_text(&mut bad_job, headers::JOB_ID, "nope");
        assert_eq!(
            ReportMeta::from_headers(Some(&bad_job)),
            Err(HeaderError::BadJobId("nope".into()))
        );
        let mut negative = table.clone();
        headers::set_integer(&mut negative, SCANNED_AT_MS, -5);
        let error = ReportMeta::from_headers(Some(&negative)).unwrap_err();
        assert_eq!(error, HeaderError::BadScannedAt(Some(-5)));
        assert!(error.to_string().contains(SCANNED_AT_MS), "{error}");
        let mut no_image = FieldTable::default();
        headers::set_text(&mut no_image, headers::JOB_ID, &JobId::new().to_string());
        headers::set_integer(&mut no_image, SCANNED_AT_MS, 1);
        assert_eq!(
            ReportMeta::from_headers(Some(&no_image)),
            Err(HeaderError::MissingText(IMAGE))
        );
    }

    #[test]
    fn a_reference_selects_exactly_that_image() {
        let selector = ImageSelector::parse("127.0.0.1:5000/app:1").unwrap();
        assert_eq!(
            selector,
            ImageSelector::Reference("127.0.0.1:5000/app:1".into())
        );
        assert!(selector.matches(&meta("127.0.0.1:5000/app:1", DIGEST_A)));
        assert!(!selector.matches(&meta("127.0.0.1:5000/app:2", DIGEST_A)));
        assert!(!selector.matches(&meta("127.0.0.1:5000/app", DIGEST_A)));
        assert_eq!(selector.to_string(), "127.0.0.1:5000/app:1");
    }

    #[test]
    fn repository_at_digest_selects_that_digest_under_any_tag_of_the_repository() {
        let reference = format!("127.0.0.1:5000/app@{DIGEST_A}");
        let selector = ImageSelector::parse(&reference).unwrap();
        assert_eq!(selector.to_string(), reference);
        assert!(selector.matches(&meta("127.0.0.1:5000/app:1", DIGEST_A)));
        assert!(selector.matches(&meta("127.0.0.1:5000/app", DIGEST_A)));
        assert!(selector.matches(&meta(&reference, DIGEST_A)));
        let other_digest = DIGEST_A.replace("0123", "4567");
        assert!(!selector.matches(&meta("127.0.0.1:5000/app:1", &other_digest)));
        assert!(!selector.matches(&meta("127.0.0.1:5000/other:1", DIGEST_A)));
        assert!(!selector.matches(&meta("127.0.0.1:5000/app/sub:1", DIGEST_A)));
    }

    #[test]
    fn the_repository_drops_tag_and_digest_but_not_the_registry_port() {
        assert_eq!(
            repository_of("127.0.0.1:5000/a/b:tag"),
            "127.0.0.1:5000/a/b"
        );
        assert_eq!(repository_of("127.0.0.1:5000/a/b"), "127.0.0.1:5000/a/b");
        assert_eq!(repository_of("a/b@sha256:00"), "a/b");
        assert_eq!(repository_of("a/b:t@sha256:00"), "a/b");
        assert_eq!(repository_of("debian"), "debian");
    }

    #[test]
    fn malformed_references_and_digests_are_refused_saying_what_was_expected() {
        for bad in [
            "",
            "app 1",
            "app@",
            "app@sha256",
            "app@sha256:abc",
            "app@SHA256:0123456789abcdef0123456789abcdef",
            "app@sha256:0123456789ABCDEF0123456789ABCDEF",
            "@sha256:0123456789abcdef0123456789abcdef",
        ] {
            let error = ImageSelector::parse(bad).unwrap_err().to_string();
            assert!(error.contains("expected"), "{bad:?}: {error}");
        }
        let error = meta("app:1", "latest").validate().unwrap_err().to_string();
        assert!(
            error.contains("\"latest\"") && error.contains("sha256"),
            "{error}"
        );
        assert!(meta("app:1", DIGEST_A).validate().is_ok());
    }

    #[test]
    fn the_stream_is_named_after_the_namespace_and_kept_ninety_days() {
        assert_eq!(report_stream_name("slipway"), "slipway.reports");
        let settings = ReportStreamSettings::default();
        assert!(settings.validate().is_ok());
        let arguments = settings.retention().arguments();
        assert_eq!(
            headers::text(Some(&arguments), "x-max-age").as_deref(),
            Some("90D")
        );
        let bad = ReportStreamSettings {
            max_age: "90 days".into(),
            ..ReportStreamSettings::default()
        };
        let error = bad.validate().unwrap_err().to_string();
        assert!(error.contains("reports.max_age"), "{error}");
    }
}

//! Full scan reports as entries of the `<namespace>.reports` stream: whose report an entry is
//! ([`ReportMeta`], its headers), [`append_report`] for the scan worker, and [`latest_report`] /
//! [`report_history`] behind `slipway report`. The stream itself (name, retention, declaration,
//! appending and reading) is `slipway_broker`'s, which knows nothing of images: this module is
//! where the report's domain meets it.
//!
//! One entry is one document of one scan ([`Document`]): the report (its JSON,
//! [`REPORT_CONTENT_TYPE`]), the image's CycloneDX SBOM, or the build's provenance (an in-toto
//! statement with an SLSA v1 predicate, stored by the scan of a freshly built image). The headers
//! say whose it is:
//!
//! | header | type | meaning |
//! |---|---|---|
//! | `x-slipway-image` | string | the image reference that was scanned |
//! | `x-slipway-digest` | string | the manifest digest that was scanned (`sha256:…`) |
//! | `x-slipway-job-id` | string | the scan's job |
//! | `x-slipway-scanned-at-ms` | integer | when the scan ran, Unix milliseconds |
//! | `x-slipway-document` | string | `report`, `sbom` or `provenance`; absent (entries stored before documents existed): `report` |
//!
//! **Duplicates.** The scan worker acks a scan only after its report is confirmed, so a
//! redelivered scan may append the same report (same job id and digest) twice. Readers take the
//! newest entry: [`latest_report`] returns the last one appended, and [`report_history`] lists a
//! job's report for a digest once, at its latest position.
//!
//! **Cost.** RabbitMQ 3.10 cannot filter a stream on the broker, so a lookup transfers every
//! report of its window, every image's; only the newest matching body is kept in memory.

use std::collections::HashSet;
use std::time::Duration;

use slipway_broker::headers::JOB_ID;
use slipway_broker::streams::reader::{
    Filter, ReadOptions, Step, StreamEntry, StreamError, StreamReader,
};
use slipway_broker::streams::{HeaderValue, ReadFrom, StreamAppend, append_entry};
use slipway_broker::{BrokerConnection, PublishError, Publisher};
use slipway_common::{Digest, ImageRef, JobId, Timestamp};

/// `x-slipway-image`: the image reference that was scanned.
pub const IMAGE: &str = "x-slipway-image";
/// `x-slipway-digest`: the manifest digest that was scanned.
pub const DIGEST: &str = "x-slipway-digest";
/// `x-slipway-scanned-at-ms`: when the scan ran, in Unix milliseconds.
pub const SCANNED_AT_MS: &str = "x-slipway-scanned-at-ms";
/// `x-slipway-document`: which document of the scan the entry holds ([`Document`]).
pub const DOCUMENT: &str = "x-slipway-document";
/// Content type of a report.
pub const REPORT_CONTENT_TYPE: &str = "application/json";

/// A document a scan stores in the report stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Document {
    /// The scan report (`slipway report`).
    Report,
    /// The image's CycloneDX SBOM (`slipway sbom`).
    Sbom,
    /// The build's provenance: an in-toto statement with an SLSA provenance v1 predicate
    /// (`slipway provenance`).
    Provenance,
}

impl Document {
    /// The `x-slipway-document` value: `report`, `sbom`, `provenance`.
    pub fn as_str(self) -> &'static str {
        match self {
            Document::Report => "report",
            Document::Sbom => "sbom",
            Document::Provenance => "provenance",
        }
    }

    /// The entry's content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Document::Report => REPORT_CONTENT_TYPE,
            Document::Sbom => crate::sbom::MEDIA_TYPE,
            Document::Provenance => crate::provenance::MEDIA_TYPE,
        }
    }

    /// The document an entry holds: its `x-slipway-document` header, `report` when absent;
    /// `None` for a value this version does not know (a newer writer's document).
    pub fn of_entry(entry: &StreamEntry) -> Option<Document> {
        match entry.header_text(DOCUMENT).as_deref() {
            None | Some("report") => Some(Document::Report),
            Some("sbom") => Some(Document::Sbom),
            Some("provenance") => Some(Document::Provenance),
            Some(_) => None,
        }
    }
}

/// Whose report it is: the headers of a report entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportMeta {
    /// The image reference that was scanned, e.g. `127.0.0.1:5000/centos/django:latest`.
    pub image: ImageRef,
    /// The manifest digest that was scanned.
    pub digest: Digest,
    /// The scan's job.
    pub job_id: JobId,
    /// When the scan ran.
    pub scanned_at: Timestamp,
}

impl ReportMeta {
    /// The stream entry of the report `body` of this scan, for `stream`.
    pub fn entry(&self, stream: &str, body: Vec<u8>) -> StreamAppend {
        self.document_entry(stream, Document::Report, body)
    }

    /// The stream entry of the `document` `body` of this scan, for `stream`.
    pub fn document_entry(&self, stream: &str, document: Document, body: Vec<u8>) -> StreamAppend {
        let message_id = match document {
            Document::Report => format!("{}.{}", self.job_id, self.digest),
            other => format!("{}.{}.{}", self.job_id, self.digest, other.as_str()),
        };
        StreamAppend {
            stream: stream.to_owned(),
            body,
            content_type: document.content_type().to_owned(),
            message_id,
            headers: vec![
                (
                    DOCUMENT.to_owned(),
                    HeaderValue::Text(document.as_str().to_owned()),
                ),
                (IMAGE.to_owned(), HeaderValue::Text(self.image.to_string())),
                (
                    DIGEST.to_owned(),
                    HeaderValue::Text(self.digest.to_string()),
                ),
                (
                    JOB_ID.to_owned(),
                    HeaderValue::Text(self.job_id.to_string()),
                ),
                (
                    SCANNED_AT_MS.to_owned(),
                    HeaderValue::Integer(
                        i64::try_from(self.scanned_at.unix_millis()).unwrap_or(i64::MAX),
                    ),
                ),
            ],
        }
    }

    /// The report metadata of a stream entry, or what is wrong with its headers.
    pub fn of_entry(entry: &StreamEntry) -> Result<Self, HeaderError> {
        let text = |name| {
            entry
                .header_text(name)
                .ok_or(HeaderError::MissingText(name))
        };
        let job = text(JOB_ID)?;
        let job_id = job.parse().map_err(|_| HeaderError::BadJobId(job))?;
        let scanned_at = entry.header_integer(SCANNED_AT_MS);
        let scanned_at = scanned_at
            .and_then(|ms| u64::try_from(ms).ok())
            .map(Timestamp::from_unix_millis)
            .ok_or(HeaderError::BadScannedAt(scanned_at))?;
        let image = text(IMAGE)?;
        let digest = text(DIGEST)?;
        Ok(Self {
            image: ImageRef::parse(&image).map_err(|e| HeaderError::Bad(IMAGE, e.to_string()))?,
            digest: Digest::parse(&digest).map_err(|e| HeaderError::Bad(DIGEST, e.to_string()))?,
            job_id,
            scanned_at,
        })
    }
}

/// Why an entry of the stream is not a readable report.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// A text header is missing.
    #[error("header {0} is missing or not a string")]
    MissingText(&'static str),
    /// The job id header is not a job id.
    #[error("header {JOB_ID} is not a job id: {0:?}")]
    BadJobId(String),
    /// The scan time is not a time.
    #[error("header {SCANNED_AT_MS} must be a non-negative integer, found {0:?}")]
    BadScannedAt(Option<i64>),
    /// The image or the digest header does not parse.
    #[error("header {0}: {1}")]
    Bad(&'static str, String),
}

/// What can go wrong storing or reading a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
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
    /// Reading the stream failed.
    #[error(transparent)]
    Read(StreamError),
}

impl From<StreamError> for ReportError {
    fn from(error: StreamError) -> Self {
        match error {
            StreamError::NoStream { stream } => ReportError::NoStream { stream },
            other => ReportError::Read(other),
        }
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
    match append_entry(publisher, &meta.entry(stream, body.to_vec())).await {
        Ok(()) => Ok(()),
        Err(PublishError::Unroutable { .. }) => Err(ReportError::NoStream {
            stream: stream.to_owned(),
        }),
        Err(error) => Err(ReportError::Publish(error)),
    }
}

/// How to look reports up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportReadOptions {
    /// Where the read starts (default: 30 days ago); reports stored before are not seen.
    pub from: ReadFrom,
    /// A stream from which nothing arrives for this long has been read to its end (default 2 s;
    /// an empty stream, or a window starting after the newest report, costs this much).
    pub idle_timeout: Duration,
    /// The longest the whole read may take; `None`: no limit (default 2 minutes).
    pub deadline: Option<Duration>,
    /// Unacked reports the broker may send ahead (default 8: reports can be megabytes each).
    pub prefetch: u16,
}

impl ReportReadOptions {
    /// The stream read these options describe: one pass to the stream's end, not following.
    pub fn to_read_options(&self) -> ReadOptions {
        ReadOptions {
            from: self.from,
            follow: false,
            idle_timeout: self.idle_timeout,
            deadline: self.deadline,
            prefetch: self.prefetch,
        }
    }
}

impl Default for ReportReadOptions {
    fn default() -> Self {
        Self {
            from: ReadFrom::Ago(Duration::from_secs(30 * 86_400)),
            idle_timeout: Duration::from_secs(2),
            deadline: Some(Duration::from_secs(120)),
            prefetch: 8,
        }
    }
}

/// A report as stored in the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredReport {
    /// Whose report it is.
    pub meta: ReportMeta,
    /// The report's JSON, as appended.
    pub body: Vec<u8>,
    /// Its offset in the stream.
    pub offset: u64,
    /// When it was appended (whole seconds: the entry's timestamp).
    pub stored_at: Timestamp,
}

/// One report of an image's history, without its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportEntry {
    /// Whose report it is.
    pub meta: ReportMeta,
    /// Its offset in the stream.
    pub offset: u64,
    /// When it was appended (whole seconds: the entry's timestamp).
    pub stored_at: Timestamp,
    /// Size of the report's JSON.
    pub body_bytes: usize,
}

/// The newest report in `stream` of an image `image` selects ([`ImageRef::selects`]: a tag, a
/// digest under any tag, or any tag of a repository), among those stored since `options.from`;
/// `None` when there is none.
pub async fn latest_report(
    connection: &BrokerConnection,
    stream: &str,
    image: &ImageRef,
    options: ReportReadOptions,
) -> Result<Option<StoredReport>, ReportError> {
    latest_document(connection, stream, image, Document::Report, options).await
}

/// The newest `document` in `stream` of an image `image` selects, as [`latest_report`] finds
/// reports.
pub async fn latest_document(
    connection: &BrokerConnection,
    stream: &str,
    image: &ImageRef,
    document: Document,
    options: ReportReadOptions,
) -> Result<Option<StoredReport>, ReportError> {
    let mut latest = None;
    read_reports(connection, stream, (image, document), options, |report| {
        latest = Some(report);
    })
    .await?;
    Ok(latest)
}

/// The reports in `stream` of an image `image` selects, stored since `options.from`, newest
/// first; a report appended twice by the same job for the same digest is listed once, at its
/// newest position.
pub async fn report_history(
    connection: &BrokerConnection,
    stream: &str,
    image: &ImageRef,
    options: ReportReadOptions,
) -> Result<Vec<ReportEntry>, ReportError> {
    let mut entries = Vec::new();
    read_reports(
        connection,
        stream,
        (image, Document::Report),
        options,
        |report| {
            entries.push(ReportEntry {
                body_bytes: report.body.len(),
                meta: report.meta,
                offset: report.offset,
                stored_at: report.stored_at,
            });
        },
    )
    .await?;
    Ok(newest_first_without_duplicates(entries))
}

/// Reverse stream order, keeping the newest entry of each job and digest.
fn newest_first_without_duplicates(entries: Vec<ReportEntry>) -> Vec<ReportEntry> {
    let mut seen = HashSet::new();
    entries
        .into_iter()
        .rev()
        .filter(|entry| seen.insert((entry.meta.job_id, entry.meta.digest.clone())))
        .collect()
}

/// Read `stream` from `options.from` to its end through the broker's one stream reader, giving
/// `keep` every entry holding `document` of an image `image` selects, in stream order.
async fn read_reports(
    connection: &BrokerConnection,
    stream: &str,
    (image, document): (&ImageRef, Document),
    options: ReportReadOptions,
    mut keep: impl FnMut(StoredReport),
) -> Result<(), ReportError> {
    let read = options.to_read_options();
    let wanted = image.clone();
    let filter = Filter::all().matching(move |entry| {
        Document::of_entry(entry) == Some(document)
            && ReportMeta::of_entry(entry)
                .is_ok_and(|meta| wanted.selects(&meta.image, Some(&meta.digest)))
    });
    let mut entries = StreamReader::new(connection, stream)
        .open(filter, &read)
        .await?;
    while let Some(step) = entries.next().await {
        match step {
            Ok(Step::Entry(entry)) => match stored(entry) {
                Ok(report) => keep(report),
                Err(error) => tracing::debug!(%stream, %error, "skipping an unreadable report"),
            },
            Ok(Step::CaughtUp) => {}
            Err(error) => {
                entries.close().await;
                return Err(error.into());
            }
        }
    }
    entries.close().await;
    Ok(())
}

/// The report an entry holds.
fn stored(entry: StreamEntry) -> Result<StoredReport, String> {
    let meta = ReportMeta::of_entry(&entry).map_err(|e| e.to_string())?;
    let stored_at = entry
        .timestamp
        .ok_or("expected a timestamp property, found none")?;
    Ok(StoredReport {
        meta,
        offset: entry.offset,
        stored_at,
        body: entry.body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(pair: &str) -> Digest {
        Digest::parse(&format!("sha256:{}", pair.repeat(32))).unwrap()
    }

    fn entry(job_id: JobId, digest: Digest, offset: u64) -> ReportEntry {
        ReportEntry {
            meta: ReportMeta {
                image: ImageRef::parse("app:1").unwrap(),
                digest,
                job_id,
                scanned_at: Timestamp::from_unix_millis(offset),
            },
            offset,
            stored_at: Timestamp::from_unix_millis(offset * 1000),
            body_bytes: 2,
        }
    }

    #[test]
    fn history_is_newest_first_and_a_repeated_append_counts_once_at_its_newest_place() {
        let (scan, rescan) = (JobId::new(), JobId::new());
        let entries = vec![
            entry(scan, digest("aa"), 1),
            entry(scan, digest("aa"), 2), // the redelivered scan appended it again
            entry(rescan, digest("aa"), 3),
            entry(rescan, digest("bb"), 4), // the same job saw a new digest
        ];
        let offsets: Vec<u64> = newest_first_without_duplicates(entries)
            .iter()
            .map(|e| e.offset)
            .collect();
        assert_eq!(offsets, [4, 3, 2]);
    }

    #[test]
    fn the_entry_carries_whose_report_it_is() {
        let meta = ReportMeta {
            image: ImageRef::parse("127.0.0.1:5000/app:1").unwrap(),
            digest: digest("ab"),
            job_id: JobId::new(),
            scanned_at: Timestamp::from_unix_millis(1_700_000_000_123),
        };
        let entry = meta.entry("ns.reports", b"{}".to_vec());
        assert_eq!(entry.stream, "ns.reports");
        assert_eq!(entry.content_type, REPORT_CONTENT_TYPE);
        assert_eq!(entry.message_id, format!("{}.{}", meta.job_id, meta.digest));
        let header = |name: &str| {
            entry
                .headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            header(IMAGE),
            Some(HeaderValue::Text("127.0.0.1:5000/app:1".into()))
        );
        assert_eq!(
            header(SCANNED_AT_MS),
            Some(HeaderValue::Integer(1_700_000_000_123))
        );
        assert_eq!(
            header(JOB_ID),
            Some(HeaderValue::Text(meta.job_id.to_string()))
        );
    }
}

//! Reports read back: the newest report of an image ([`latest_report`]) and the image's report
//! history ([`report_history`]).
//!
//! Both read the report stream from the start of their window ([`ReadFrom`]; default: 30 days
//! ago) up to where the stream ended when the read began, as `crate::streams` reads every stream,
//! and keep the reports the [`ImageSelector`] wants; the newest is the last one in stream order.
//! A lookup ends at that end (however quiet or busy the stream is) or at its deadline.
//!
//! **Cost.** RabbitMQ 3.10 cannot filter a stream on the broker, so a lookup transfers every
//! report of its window, every image's. Only the newest matching body is kept in memory.

use std::collections::HashSet;
use std::time::Duration;

use slipway_common::Timestamp;
use tokio::time::Instant;

use super::{ImageSelector, ReportError, ReportMeta};
use crate::connection::BrokerConnection;
use crate::streams::{CursorOptions, ReadError, ReadFrom, StreamCursor, StreamMessage, probe_tail};

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
    /// When it was appended (whole seconds: the message's timestamp).
    pub stored_at: Timestamp,
}

/// One report of an image's history, without its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportEntry {
    /// Whose report it is.
    pub meta: ReportMeta,
    /// Its offset in the stream.
    pub offset: u64,
    /// When it was appended (whole seconds: the message's timestamp).
    pub stored_at: Timestamp,
    /// Size of the report's JSON.
    pub body_bytes: usize,
}

/// The newest report in `stream` that `image` selects, among those stored since `options.from`;
/// `None` when there is none (or the stream is empty).
pub async fn latest_report(
    connection: &BrokerConnection,
    stream: &str,
    image: &ImageSelector,
    options: ReportReadOptions,
) -> Result<Option<StoredReport>, ReportError> {
    let mut latest = None;
    read_reports(connection, stream, image, options, |report| {
        latest = Some(report);
    })
    .await?;
    Ok(latest)
}

/// The reports in `stream` that `image` selects, among those stored since `options.from`, newest
/// first; a report appended twice by the same job for the same digest is listed once, at its
/// newest position.
pub async fn report_history(
    connection: &BrokerConnection,
    stream: &str,
    image: &ImageSelector,
    options: ReportReadOptions,
) -> Result<Vec<ReportEntry>, ReportError> {
    let mut entries = Vec::new();
    read_reports(connection, stream, image, options, |report| {
        entries.push(ReportEntry {
            body_bytes: report.body.len(),
            meta: report.meta,
            offset: report.offset,
            stored_at: report.stored_at,
        });
    })
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

/// Read `stream` from `options.from` to its end, giving `keep` every report `image` selects, in
/// stream order.
async fn read_reports(
    connection: &BrokerConnection,
    stream: &str,
    image: &ImageSelector,
    options: ReportReadOptions,
    mut keep: impl FnMut(StoredReport),
) -> Result<(), ReportError> {
    let cursor_options = CursorOptions {
        from: options.from,
        idle_timeout: options.idle_timeout,
        deadline: options.deadline.map(|d| Instant::now() + d),
        prefetch: options.prefetch,
        tag_prefix: "slipway-reports",
    };
    let read_error = |error| read_error(stream, options, error);
    let Some(tail) = probe_tail(connection, stream, &cursor_options)
        .await
        .map_err(read_error)?
    else {
        return Ok(());
    };
    let mut cursor = StreamCursor::open(connection, stream, Some(tail), &cursor_options)
        .await
        .map_err(read_error)?;
    let (mut seen, mut kept) = (0_u64, 0_u64);
    let ended = loop {
        if cursor.caught_up() {
            break Ok(());
        }
        match cursor.next().await {
            Ok(Some(message)) => {
                seen += 1;
                match decode(message, image) {
                    Ok(Some(report)) => {
                        kept += 1;
                        keep(report);
                    }
                    Ok(None) => {}
                    Err(error) => {
                        tracing::debug!(%stream, %error, "skipping a message that is not a report");
                    }
                }
            }
            Ok(None) => {}
            Err(error) => break Err(error),
        }
    };
    cursor.close().await;
    tracing::debug!(%stream, %image, seen, kept, "report read done");
    ended.map_err(read_error)
}

/// The report in `message` if `image` selects it; an error when `message` is not a report.
fn decode(message: StreamMessage, image: &ImageSelector) -> Result<Option<StoredReport>, String> {
    let meta = ReportMeta::from_headers(message.headers()).map_err(|e| e.to_string())?;
    if !image.matches(&meta) {
        return Ok(None);
    }
    let offset = message
        .offset
        .and_then(|offset| u64::try_from(offset).ok())
        .ok_or_else(|| format!("expected a stream offset, found {:?}", message.offset))?;
    let stored_at = (*message.properties.timestamp())
        .map(|seconds| Timestamp::from_unix_millis(seconds.saturating_mul(1000)))
        .ok_or("expected a timestamp property, found none")?;
    Ok(Some(StoredReport {
        meta,
        body: message.body,
        offset,
        stored_at,
    }))
}

fn read_error(stream: &str, options: ReportReadOptions, error: ReadError) -> ReportError {
    let stream = stream.to_owned();
    match error {
        ReadError::Broker(error) => ReportError::Broker(error),
        ReadError::NoStream => ReportError::NoStream { stream },
        ReadError::Consume(source) => ReportError::Consume { stream, source },
        ReadError::ConsumerEnded => ReportError::ConsumerEnded { stream },
        ReadError::Deadline => ReportError::Deadline {
            stream,
            after: options.deadline.unwrap_or_default(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_common::JobId;

    fn entry(job_id: JobId, digest: &str, offset: u64) -> ReportEntry {
        ReportEntry {
            meta: ReportMeta {
                image: "app:1".into(),
                digest: digest.into(),
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
            entry(scan, "sha256:a", 1),
            entry(scan, "sha256:a", 2), // the redelivered scan appended it again
            entry(rescan, "sha256:a", 3),
            entry(rescan, "sha256:b", 4), // the same job saw a new digest
        ];
        let offsets: Vec<u64> = newest_first_without_duplicates(entries)
            .iter()
            .map(|e| e.offset)
            .collect();
        assert_eq!(offsets, [4, 3, 2]);
    }
}

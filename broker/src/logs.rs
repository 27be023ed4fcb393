//! Build logs on a RabbitMQ stream: the `<namespace>.logs` stream and its retention, the
//! [`LogWriter`] a build feeds line by line, and the [`LogReader`] behind `slipway logs`.
//!
//! The stream is declared, appended to and read as every Slipway stream is (`crate::streams`):
//! a durable queue with `x-queue-type=stream`, outside the [`Topology`](crate::Topology); log
//! chunks go to the default exchange with the stream's name as routing key, confirmed and
//! `mandatory`, so a missing stream is an error rather than a silent loss.
//!
//! One message is one chunk of one job's log: the body is UTF-8 text made of whole lines, and the
//! headers say whose it is and where it goes:
//!
//! | header | type | meaning |
//! |---|---|---|
//! | `x-slipway-job-id` | string | the job |
//! | `x-slipway-run` | string | one attempt at the job (a UUIDv7 chosen by its [`LogWriter`]) |
//! | `x-slipway-attempt` | integer | the job's retry count when that run started (`Job::attempt`) |
//! | `x-slipway-seq` | integer | 0, 1, 2, … within the run |
//! | `x-slipway-final` | bool | the end-of-log marker of the run (empty body) |
//! | `x-slipway-outcome` | string | on the final marker only: how the run ended |
//!
//! **Redelivered jobs.** A job can run more than once (a crash, a lost connection, a retry); every
//! run writes its own sequence from 0 under its own run id. The reader keeps them apart and shows
//! *all* runs, in the order they started in the stream, each numbered ([`LogChunk::run_number`]);
//! `slipway logs` prints a header line before every run after the first. Following stops at the
//! final marker of the *latest* run.

mod reader;
mod writer;

use std::time::Duration;

use lapin::types::{AMQPValue, FieldTable, ShortString};
use serde::{Deserialize, Serialize};
use slipway_common::JobId;

use crate::connection::BrokerConnection;
use crate::headers;
use crate::streams::{self, StreamRetention};
use crate::{BrokerError, BrokerSettings};

pub use crate::streams::ReadFrom;
pub use crate::streams::reader::{ReadOptions, StreamError};
pub use reader::{LogChunk, LogChunks, LogReader};
pub use writer::{LogStats, LogWriter, LogWriterOptions};

/// `x-slipway-run`: the run (attempt) of the job that wrote the chunk.
pub const RUN: &str = "x-slipway-run";
/// `x-slipway-seq`: position of the chunk in its run, from 0.
pub const SEQ: &str = "x-slipway-seq";
/// `x-slipway-final`: whether the message is the run's end-of-log marker.
pub const FINAL: &str = "x-slipway-final";
/// `x-slipway-outcome`: how the run ended (final marker only).
pub const OUTCOME: &str = "x-slipway-outcome";

/// Content type of a log chunk.
pub const LOG_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// The name of the log stream of `namespace`: `<namespace>.logs`.
pub fn log_stream_name(namespace: &str) -> String {
    format!("{namespace}.logs")
}

/// Retention of the log stream. RabbitMQ deletes whole segments, oldest first, once a segment is
/// entirely older than `max_age` or the stream is larger than `max_length_bytes`.
///
/// The arguments are fixed when the stream is first declared: declaring it again with other
/// values fails with a 406 naming the argument. Change retention on a live stream with a policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogStreamSettings {
    /// How long chunks are kept (`x-max-age`): a number and one unit of `Y`, `M`, `D`, `h`, `m`,
    /// `s`, e.g. `7D` (the default) or `36h`.
    pub max_age: String,
    /// Largest size of the stream on disk (`x-max-length-bytes`); default 5 GiB.
    pub max_length_bytes: u64,
    /// Size of one segment file (`x-stream-max-segment-size-bytes`); default 100 MiB. Retention
    /// works segment by segment, so a segment far larger than a week of logs would keep logs far
    /// longer than `max_age` (RabbitMQ's own default is 500 MB).
    pub max_segment_size_bytes: u64,
}

impl Default for LogStreamSettings {
    fn default() -> Self {
        Self {
            max_age: "7D".to_owned(),
            max_length_bytes: 5 << 30,
            max_segment_size_bytes: 100 << 20,
        }
    }
}

impl LogStreamSettings {
    /// Reject retention settings RabbitMQ would refuse, naming the key.
    pub fn validate(&self) -> Result<(), BrokerError> {
        self.retention().validate()
    }

    pub(crate) fn retention(&self) -> StreamRetention<'_> {
        StreamRetention {
            section: "logs",
            max_age: &self.max_age,
            max_length_bytes: self.max_length_bytes,
            max_segment_size_bytes: self.max_segment_size_bytes,
        }
    }
}

/// Declare the log stream of `broker`'s namespace (idempotent; a 406 names an argument that
/// differs from the existing stream's), or check that it exists (`broker.topology = "verify"`).
pub async fn declare_log_stream(
    connection: &BrokerConnection,
    broker: &BrokerSettings,
    settings: &LogStreamSettings,
) -> Result<(), BrokerError> {
    let stream = log_stream_name(&broker.namespace);
    streams::declare_stream(
        connection,
        broker,
        &stream,
        settings.retention(),
        "log stream",
    )
    .await
}

/// Delete the log stream `stream` and every log in it (test namespaces, dev resets).
pub async fn delete_log_stream(
    connection: &BrokerConnection,
    stream: &str,
) -> Result<(), BrokerError> {
    streams::delete_stream(connection, stream).await
}

/// What can go wrong writing or reading a log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Connecting, opening a channel or declaring failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// [`LogWriter::finish`] gave up: the broker did not take the rest of the log in time.
    #[error(
        "the log of job {job_id} is incomplete: {unpublished_bytes} bytes and the end-of-log marker were not published within {after:?}"
    )]
    Unfinished {
        /// The job.
        job_id: JobId,
        /// Bytes still waiting when the writer gave up.
        unpublished_bytes: usize,
        /// How long it tried.
        after: Duration,
    },
    /// Reading the log stream failed ([`StreamError::NoStream`]: nothing ever wrote a log in
    /// this namespace).
    #[error("cannot read the log: {0}")]
    Read(#[from] StreamError),
}

/// The headers of one chunk, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ChunkMeta {
    job_id: JobId,
    run: String,
    attempt: u32,
    seq: u64,
    /// `Some` on the final marker.
    outcome: Option<String>,
}

/// Why a message of the stream is not a readable log chunk.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum HeaderError {
    #[error("header {0} is missing or not a string")]
    MissingText(&'static str),
    #[error("header {JOB_ID_HEADER} is not a job id: {0:?}", JOB_ID_HEADER = headers::JOB_ID)]
    BadJobId(String),
    #[error("header {SEQ} must be a non-negative integer, found {0:?}")]
    BadSeq(Option<i64>),
    #[error("header {FINAL} must be a bool")]
    BadFinal,
}

impl ChunkMeta {
    fn to_headers(&self) -> FieldTable {
        let mut table = FieldTable::default();
        headers::set_text(&mut table, headers::JOB_ID, &self.job_id.to_string());
        headers::set_text(&mut table, RUN, &self.run);
        headers::set_integer(&mut table, headers::ATTEMPT, self.attempt.into());
        headers::set_integer(&mut table, SEQ, i64::try_from(self.seq).unwrap_or(i64::MAX));
        table.insert(
            ShortString::from(FINAL),
            AMQPValue::Boolean(self.outcome.is_some()),
        );
        if let Some(outcome) = &self.outcome {
            headers::set_text(&mut table, OUTCOME, outcome);
        }
        table
    }

    fn from_headers(table: Option<&FieldTable>) -> Result<Self, HeaderError> {
        let job = headers::text(table, headers::JOB_ID)
            .ok_or(HeaderError::MissingText(headers::JOB_ID))?;
        let job_id = job
            .parse()
            .map_err(|_| HeaderError::BadJobId(job.clone()))?;
        let run = headers::text(table, RUN).ok_or(HeaderError::MissingText(RUN))?;
        let seq = headers::integer(table, SEQ);
        let seq = seq
            .and_then(|n| u64::try_from(n).ok())
            .ok_or(HeaderError::BadSeq(seq))?;
        let is_final = match table.and_then(|t| t.inner().get(FINAL)) {
            None => false,
            Some(AMQPValue::Boolean(b)) => *b,
            Some(_) => return Err(HeaderError::BadFinal),
        };
        let outcome = is_final.then(|| {
            headers::text(table, OUTCOME).unwrap_or_else(|| "unknown (no outcome header)".into())
        });
        Ok(Self {
            job_id,
            run,
            attempt: headers::attempt(table),
            seq,
            outcome,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(outcome: Option<&str>) -> ChunkMeta {
        ChunkMeta {
            job_id: JobId::new(),
            run: "0190aaaa-run".into(),
            attempt: 2,
            seq: 41,
            outcome: outcome.map(str::to_owned),
        }
    }

    #[test]
    fn headers_round_trip_for_chunks_and_final_markers() {
        for outcome in [None, Some("build.succeeded")] {
            let meta = meta(outcome);
            let table = meta.to_headers();
            assert_eq!(ChunkMeta::from_headers(Some(&table)), Ok(meta.clone()));
            assert_eq!(
                table.inner().get(FINAL),
                Some(&AMQPValue::Boolean(outcome.is_some()))
            );
            assert_eq!(table.contains_key(OUTCOME), outcome.is_some());
        }
    }

    #[test]
    fn headers_that_are_not_a_log_chunk_are_rejected_with_the_header_named() {
        assert_eq!(
            ChunkMeta::from_headers(None),
            Err(HeaderError::MissingText(headers::JOB_ID))
        );
        let good = meta(None).to_headers();
        let mut bad_job = good.clone();
        headers::set_text(&mut bad_job, headers::JOB_ID, "not-a-uuid");
        assert_eq!(
            ChunkMeta::from_headers(Some(&bad_job)),
            Err(HeaderError::BadJobId("not-a-uuid".into()))
        );
        let mut negative = good.clone();
        headers::set_integer(&mut negative, SEQ, -1);
        let error = ChunkMeta::from_headers(Some(&negative)).unwrap_err();
        assert_eq!(error, HeaderError::BadSeq(Some(-1)));
        assert!(error.to_string().contains(SEQ), "{error}");
        let mut text_final = good.clone();
        headers::set_text(&mut text_final, FINAL, "yes");
        assert_eq!(
            ChunkMeta::from_headers(Some(&text_final)),
            Err(HeaderError::BadFinal)
        );
        let mut no_run = FieldTable::default();
        headers::set_text(&mut no_run, headers::JOB_ID, &JobId::new().to_string());
        assert_eq!(
            ChunkMeta::from_headers(Some(&no_run)),
            Err(HeaderError::MissingText(RUN))
        );
    }

    #[test]
    fn a_final_marker_without_outcome_still_ends_the_run() {
        let mut table = meta(Some("x")).to_headers();
        let mut stripped = FieldTable::default();
        for (key, value) in &table {
            if key.as_str() != OUTCOME {
                stripped.insert(key.clone(), value.clone());
            }
        }
        table = stripped;
        let decoded = ChunkMeta::from_headers(Some(&table)).unwrap();
        assert!(decoded.outcome.unwrap().starts_with("unknown"));
    }

    #[test]
    fn the_stream_is_named_after_the_namespace_and_declared_as_a_stream() {
        assert_eq!(log_stream_name("slipway"), "slipway.logs");
        let arguments = LogStreamSettings::default().retention().arguments();
        let text = |key: &str| headers::text(Some(&arguments), key);
        assert_eq!(text("x-queue-type").as_deref(), Some("stream"));
        assert_eq!(text("x-max-age").as_deref(), Some("7D"));
        assert_eq!(
            headers::integer(Some(&arguments), "x-max-length-bytes"),
            Some(5 * 1024 * 1024 * 1024)
        );
        assert_eq!(
            headers::integer(Some(&arguments), "x-stream-max-segment-size-bytes"),
            Some(100 * 1024 * 1024)
        );
    }

    #[test]
    fn retention_settings_are_validated_with_the_key_named() {
        assert!(LogStreamSettings::default().validate().is_ok());
        let settings = LogStreamSettings {
            max_age: "7d".into(),
            ..LogStreamSettings::default()
        };
        let error = settings.validate().unwrap_err().to_string();
        assert!(error.contains("logs.max_age"), "{error}");
        let too_big_segment = LogStreamSettings {
            max_length_bytes: 10,
            max_segment_size_bytes: 11,
            ..LogStreamSettings::default()
        };
        let error = too_big_segment.validate().unwrap_err().to_string();
        assert!(error.contains("logs.max_segment_size_bytes"), "{error}");
    }
}

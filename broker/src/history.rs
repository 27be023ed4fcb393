//! The history of every event: the `<namespace>.history` stream, its retention, and
//! [`HistoryReader`], which reads it back as decoded [`Envelope`]s.
//!
//! **Recording.** The stream is part of the pipeline's [`Topology`](crate::Topology): every
//! process declares it with the rest and binds it to the namespace's topic exchange with the
//! routing key `#`, so every event published to the exchange is stored in it, in publish order,
//! with no writer of its own (a publish is confirmed only once the stream has it too). Entries
//! are the events as published: the envelope's MessagePack body, the kind as routing key and
//! `type`, the event id as `message-id`, `created_at` (seconds) as `timestamp`, and the job id in
//! the `x-slipway-job-id` header, so filtering by job or kind decodes only the wanted entries.
//!
//! **Retention** ([`HistoryStreamSettings`], `[broker.history]`): by default 30 days, longer than
//! the weekly rescan period, so that a worker rebuilding its view from the history (the rescan
//! scheduler: the last scan of every image) always finds at least one full period, with a margin
//! for a week of outage, and `slipway job` answers for a month.
//!
//! **Unroutable events.** `mandatory` can no longer tell that no worker consumes an event: the
//! stream takes every routing key. A [`Publisher`](crate::Publisher) opened on a topology with a
//! history stream therefore refuses a routing key that no worker queue of its topology consumes
//! (the same [`PublishError::Unroutable`](crate::PublishError::Unroutable), before sending).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use slipway_common::envelope::DecodeError;
use slipway_common::{Envelope, JobId, Kind};

use crate::BrokerError;
use crate::connection::BrokerConnection;
use crate::headers;
use crate::streams::StreamRetention;
use crate::streams::reader::{
    Entries, Filter, ReadOptions, Step, StreamEntry, StreamError, StreamReader,
};

/// The name of the history stream of `namespace`: `<namespace>.history`.
pub fn history_stream_name(namespace: &str) -> String {
    format!("{namespace}.history")
}

/// Retention of the history stream (`[broker.history]`). RabbitMQ deletes whole segments, oldest
/// first, once a segment is entirely older than `max_age` or the stream is larger than
/// `max_length_bytes`.
///
/// Every process declares the stream with the topology, so every process must agree on these
/// values: declaring it with others fails with a 406 naming the argument. Change retention on a
/// live stream with a policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryStreamSettings {
    /// How long events are kept (`x-max-age`): a number and one unit of `Y`, `M`, `D`, `h`, `m`,
    /// `s`; default `30D`, longer than the weekly rescan period (see the module documentation).
    pub max_age: String,
    /// Largest size of the stream on disk (`x-max-length-bytes`); default 10 GiB (events are a
    /// few kilobytes: millions of them).
    pub max_length_bytes: u64,
    /// Size of one segment file (`x-stream-max-segment-size-bytes`); default 100 MiB, so
    /// retention drops events in steps of at most that much.
    pub max_segment_size_bytes: u64,
}

impl Default for HistoryStreamSettings {
    fn default() -> Self {
        Self {
            max_age: "30D".to_owned(),
            max_length_bytes: 10 << 30,
            max_segment_size_bytes: 100 << 20,
        }
    }
}

impl HistoryStreamSettings {
    /// Reject retention settings RabbitMQ would refuse, naming the key.
    pub fn validate(&self) -> Result<(), BrokerError> {
        self.retention().validate()
    }

    pub(crate) fn retention(&self) -> StreamRetention<'_> {
        StreamRetention {
            section: "broker.history",
            max_age: &self.max_age,
            max_length_bytes: self.max_length_bytes,
            max_segment_size_bytes: self.max_segment_size_bytes,
        }
    }
}

/// A predicate over a decoded event.
type EventPredicate = Arc<dyn Fn(&Envelope) -> bool + Send + Sync>;

/// Which events a history read keeps: all conditions must hold. The job and kinds are checked on
/// the headers before decoding, and again on the decoded envelope.
#[derive(Clone, Default)]
pub struct HistoryQuery {
    job: Option<JobId>,
    kinds: Vec<Kind>,
    predicates: Vec<EventPredicate>,
}

impl HistoryQuery {
    /// Every event.
    pub fn all() -> Self {
        Self::default()
    }

    /// Only the events of `job`.
    pub fn job(mut self, job: JobId) -> Self {
        self.job = Some(job);
        self
    }

    /// Only events of these kinds (with earlier calls; none at all: any kind).
    pub fn kinds(mut self, kinds: impl IntoIterator<Item = Kind>) -> Self {
        self.kinds.extend(kinds);
        self
    }

    /// Only events for which `predicate` holds (e.g. those naming an image).
    pub fn matching(
        mut self,
        predicate: impl Fn(&Envelope) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.predicates.push(Arc::new(predicate));
        self
    }

    /// The header filter: what can be decided without decoding.
    fn filter(&self) -> Filter {
        let mut filter = Filter::all().routing_key_in(self.kinds.iter().map(|kind| kind.as_str()));
        if let Some(job) = self.job {
            filter = filter.header(headers::JOB_ID, job.to_string());
        }
        filter
    }

    /// Whether a decoded event is wanted.
    pub fn keeps(&self, envelope: &Envelope) -> bool {
        self.job.is_none_or(|job| envelope.job_id == job)
            && (self.kinds.is_empty() || self.kinds.contains(&envelope.kind()))
            && self.predicates.iter().all(|predicate| predicate(envelope))
    }
}

impl fmt::Debug for HistoryQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HistoryQuery")
            .field("job", &self.job)
            .field("kinds", &self.kinds)
            .field("predicates", &self.predicates.len())
            .finish()
    }
}

/// One event of the history.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryEvent {
    /// Its offset in the history stream.
    pub offset: u64,
    /// The event, decoded.
    pub envelope: Envelope,
}

/// What a history read gives next.
#[derive(Debug)]
pub enum HistoryStep {
    /// An event the query keeps.
    Event(Box<HistoryEvent>),
    /// An entry whose headers the query keeps but which is not a readable envelope (a raw
    /// publish, another version).
    Undecodable {
        /// Its offset.
        offset: u64,
        /// The routing key it was published with.
        routing_key: String,
        /// Why it does not decode.
        error: DecodeError,
    },
    /// The past is read: what comes next (following) was published since the read opened.
    CaughtUp,
}

/// Reads the history stream.
#[derive(Debug)]
pub struct HistoryReader<'c> {
    reader: StreamReader<'c>,
}

impl<'c> HistoryReader<'c> {
    /// A reader of the history stream `stream` ([`history_stream_name`]) over `connection`.
    pub fn new(connection: &'c BrokerConnection, stream: &str) -> Self {
        Self {
            reader: StreamReader::new(connection, stream),
        }
    }

    /// Open a read of the events `query` keeps, as `options` say (from where, following or not).
    pub async fn open(
        &self,
        query: HistoryQuery,
        options: &ReadOptions,
    ) -> Result<HistoryEvents, StreamError> {
        let entries = self.reader.open(query.filter(), options).await?;
        Ok(HistoryEvents { entries, query })
    }

    /// The offset of the history's newest event now (`None` when it is empty).
    pub async fn tail(&self) -> Result<Option<u64>, StreamError> {
        self.reader.tail().await
    }

    /// The events `query` keeps from `options.from` to the stream's end, in order; entries that
    /// do not decode are skipped (and logged).
    pub async fn read_to_end(
        &self,
        query: HistoryQuery,
        options: &ReadOptions,
    ) -> Result<Vec<HistoryEvent>, StreamError> {
        let entries = self.reader.read_to_end(query.filter(), options).await?;
        Ok(entries
            .into_iter()
            .filter_map(|entry| match decode(entry, &query) {
                Some(HistoryStep::Event(event)) => Some(*event),
                Some(undecodable) => {
                    tracing::warn!(stream = %self.reader.stream(), ?undecodable, "skipping an undecodable history entry");
                    None
                }
                None => None,
            })
            .collect())
    }
}

/// The step for `entry`: `None` when the decoded event is not wanted.
fn decode(entry: StreamEntry, query: &HistoryQuery) -> Option<HistoryStep> {
    match Envelope::decode(&entry.body) {
        Ok(envelope) => query.keeps(&envelope).then(|| {
            HistoryStep::Event(Box::new(HistoryEvent {
                offset: entry.offset,
                envelope,
            }))
        }),
        Err(error) => Some(HistoryStep::Undecodable {
            offset: entry.offset,
            routing_key: entry.routing_key,
            error,
        }),
    }
}

/// An open read of the history: call [`next`](Self::next) until it gives `None` (or stop and
/// [`close`](Self::close) it).
#[derive(Debug)]
pub struct HistoryEvents {
    entries: Entries,
    query: HistoryQuery,
}

impl HistoryEvents {
    /// The next step; `None` once the read is over (never while following, unless an error or
    /// the deadline ended it).
    pub async fn next(&mut self) -> Option<Result<HistoryStep, StreamError>> {
        loop {
            match self.entries.next().await? {
                Ok(Step::Entry(entry)) => {
                    if let Some(step) = decode(entry, &self.query) {
                        return Some(Ok(step));
                    }
                }
                Ok(Step::CaughtUp) => return Some(Ok(HistoryStep::CaughtUp)),
                Err(error) => return Some(Err(error)),
            }
        }
    }

    /// Stop reading and close the read's channel.
    pub async fn close(self) {
        self.entries.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_common::message::test_support::sample_messages;
    use slipway_common::{Cause, Message};

    fn event(job: JobId, message: Message) -> Envelope {
        Envelope::for_job(job, Cause::User, message)
    }

    #[test]
    fn the_stream_is_named_after_the_namespace_and_kept_longer_than_a_rescan_period() {
        assert_eq!(history_stream_name("slipway"), "slipway.history");
        let settings = HistoryStreamSettings::default();
        assert!(settings.validate().is_ok());
        let arguments = settings.retention().arguments();
        assert_eq!(
            headers::text(Some(&arguments), "x-max-age").as_deref(),
            Some("30D")
        );
        assert_eq!(
            headers::text(Some(&arguments), "x-queue-type").as_deref(),
            Some("stream")
        );
    }

    #[test]
    fn retention_settings_are_validated_with_the_key_named() {
        for (settings, key) in [
            (
                HistoryStreamSettings {
                    max_age: "30 days".into(),
                    ..HistoryStreamSettings::default()
                },
                "broker.history.max_age",
            ),
            (
                HistoryStreamSettings {
                    max_length_bytes: 0,
                    ..HistoryStreamSettings::default()
                },
                "broker.history.max_length_bytes",
            ),
            (
                HistoryStreamSettings {
                    max_length_bytes: 10,
                    max_segment_size_bytes: 11,
                    ..HistoryStreamSettings::default()
                },
                "broker.history.max_segment_size_bytes",
            ),
        ] {
            let error = settings.validate().unwrap_err().to_string();
            assert!(error.contains(key), "{key}: {error}");
        }
    }

    #[test]
    fn a_query_checks_job_kind_and_predicates_on_the_decoded_event() {
        let (job, other) = (JobId::new(), JobId::new());
        let messages = sample_messages();
        let first = |kind: Kind| {
            messages
                .iter()
                .find(|m| m.kind() == kind)
                .cloned()
                .expect("a sample of every kind")
        };
        let requested = event(job, first(Kind::BuildRequested));
        let failed = event(job, first(Kind::BuildFailed));
        let elsewhere = event(other, first(Kind::BuildFailed));
        let query = HistoryQuery::all().job(job);
        assert!(query.keeps(&requested) && query.keeps(&failed) && !query.keeps(&elsewhere));
        let failures = HistoryQuery::all().kinds([Kind::BuildFailed, Kind::ScanFailed]);
        assert!(
            !failures.keeps(&requested) && failures.keeps(&failed) && failures.keeps(&elsewhere)
        );
        let none = HistoryQuery::all().matching(|_| false);
        assert!(!none.keeps(&requested));
        assert!(format!("{none:?}").contains("predicates: 1"));
    }
}

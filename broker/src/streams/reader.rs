//! [`StreamReader`]: the one reader of every Slipway stream (logs, reports, history), typed and
//! free of domain words. What an entry means is its caller's business; this module only knows
//! offsets, timestamps, routing keys, headers and bodies.
//!
//! A read starts at a [`ReadFrom`] (the oldest entry, a time, an offset), keeps the entries its
//! [`Filter`] accepts (header values, routing keys, any predicate over the entry) and gives them
//! in stream order as [`Step::Entry`]. When it reaches the offset that was the stream's newest
//! when the read opened (see `crate::streams`: the tail probe), it gives [`Step::CaughtUp`] once;
//! then, without [`ReadOptions::follow`], it ends, and with it, it keeps giving entries as they
//! are appended until the caller stops reading ([`Entries::close`]) or the deadline passes.
//! Callers that follow until something happens (a log's end marker, a job's final event) decide
//! that themselves from the entries, and `CaughtUp` tells them when they have seen the past.
//!
//! RabbitMQ 3.10 cannot filter a stream on the broker: every entry of the window is transferred
//! and the filter runs here, before an entry is handed out (so filtering on headers avoids
//! decoding bodies that are not wanted).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use lapin::types::{AMQPValue, FieldTable};
use slipway_common::Timestamp;
use tokio::time::Instant;

use super::{CursorOptions, ReadError, ReadFrom, StreamCursor, StreamMessage, probe_tail};
use crate::BrokerError;
use crate::connection::BrokerConnection;
use crate::headers;

/// How to read a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadOptions {
    /// Where the read starts (default: 24 hours ago, so a read does not scan everything the
    /// stream keeps).
    pub from: ReadFrom,
    /// Keep reading new entries after catching up (until the caller stops or the deadline).
    pub follow: bool,
    /// A stream from which nothing arrives for this long before catching up has been read to
    /// its end (default 1 s: a window that starts after the newest entry costs this much).
    pub idle_timeout: Duration,
    /// The longest the whole read may take; `None`: no limit (default 5 minutes).
    pub deadline: Option<Duration>,
    /// Unacked entries the broker may send ahead (default 100; lower for large bodies).
    pub prefetch: u16,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            from: ReadFrom::Ago(Duration::from_secs(24 * 3600)),
            follow: false,
            idle_timeout: Duration::from_secs(1),
            deadline: Some(Duration::from_secs(300)),
            prefetch: 100,
        }
    }
}

/// Why a read of a stream stopped.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Opening a channel failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The stream does not exist (nothing declared it in this namespace).
    #[error("stream {stream:?} does not exist")]
    NoStream {
        /// The stream's name.
        stream: String,
    },
    /// Consuming the stream failed.
    #[error("cannot read stream {stream:?}: {source}")]
    Consume {
        /// The stream's name.
        stream: String,
        /// lapin's error.
        source: lapin::Error,
    },
    /// The broker ended the consumer (the stream was deleted, or the channel closed).
    #[error("the broker stopped the reader of stream {stream:?} before the read ended")]
    ConsumerEnded {
        /// The stream's name.
        stream: String,
    },
    /// The read did not end within its deadline.
    #[error("reading stream {stream:?} {doing} when its deadline of {after:?} passed")]
    Deadline {
        /// The stream's name.
        stream: String,
        /// What the read was doing (`had not reached its end`, `was still following it`).
        doing: &'static str,
        /// The deadline.
        after: Duration,
    },
}

impl StreamError {
    fn from_read(error: ReadError, stream: &str, options: &ReadOptions) -> Self {
        let stream = stream.to_owned();
        match error {
            ReadError::Broker(error) => Self::Broker(error),
            ReadError::NoStream => Self::NoStream { stream },
            ReadError::Consume(source) => Self::Consume { stream, source },
            ReadError::ConsumerEnded => Self::ConsumerEnded { stream },
            ReadError::Deadline => Self::Deadline {
                stream,
                doing: if options.follow {
                    "was still following it"
                } else {
                    "had not reached its end"
                },
                after: options.deadline.unwrap_or_default(),
            },
        }
    }
}

/// One entry of a stream, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamEntry {
    /// Its offset in the stream: [`ReadFrom::Offset`] of it starts a read here.
    pub offset: u64,
    /// The `timestamp` property its publisher set (whole seconds), if any.
    pub timestamp: Option<Timestamp>,
    /// The routing key it was published with.
    pub routing_key: String,
    /// Its `message-id` property, if any.
    pub message_id: Option<String>,
    /// Its `type` property, if any.
    pub message_type: Option<String>,
    /// Its body, as appended.
    pub body: Vec<u8>,
    headers: Option<FieldTable>,
}

impl StreamEntry {
    /// An entry from a delivery; `None` without an `x-stream-offset` (not from a stream).
    fn from_message(message: StreamMessage) -> Option<Self> {
        let offset = u64::try_from(message.offset?).ok()?;
        let properties = message.properties;
        Some(Self {
            offset,
            timestamp: (*properties.timestamp())
                .map(|seconds| Timestamp::from_unix_millis(seconds.saturating_mul(1000))),
            routing_key: message.routing_key,
            message_id: properties.message_id().as_ref().map(|id| id.to_string()),
            message_type: properties.kind().as_ref().map(|kind| kind.to_string()),
            body: message.body,
            headers: properties.headers().clone(),
        })
    }

    /// The text header `name`.
    pub fn header_text(&self, name: &str) -> Option<String> {
        headers::text(self.headers.as_ref(), name)
    }

    /// The integer header `name` (any AMQP integer width).
    pub fn header_integer(&self, name: &str) -> Option<i64> {
        headers::integer(self.headers.as_ref(), name)
    }

    /// The boolean header `name`.
    pub fn header_bool(&self, name: &str) -> Option<bool> {
        match self.headers.as_ref()?.inner().get(name)? {
            AMQPValue::Boolean(value) => Some(*value),
            _ => None,
        }
    }

    /// The headers, for this crate's typed decoders.
    pub(crate) fn headers(&self) -> Option<&FieldTable> {
        self.headers.as_ref()
    }
}

/// A predicate over a whole entry.
type Predicate = Arc<dyn Fn(&StreamEntry) -> bool + Send + Sync>;

/// Which entries a read keeps: all of these must hold. [`Filter::all`] keeps everything.
#[derive(Clone, Default)]
pub struct Filter {
    /// Text headers and the value each must have.
    headers: Vec<(String, String)>,
    /// Routing keys of which the entry's must be one (empty: any).
    routing_keys: Vec<String>,
    /// Anything else.
    predicates: Vec<Predicate>,
}

impl Filter {
    /// Keep every entry.
    pub fn all() -> Self {
        Self::default()
    }

    /// Keep entries whose text header `name` is `value`.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Keep entries whose routing key is one of `keys` (together with earlier calls; with no
    /// keys at all, any routing key).
    pub fn routing_key_in<K: Into<String>>(mut self, keys: impl IntoIterator<Item = K>) -> Self {
        self.routing_keys.extend(keys.into_iter().map(Into::into));
        self
    }

    /// Keep entries for which `predicate` holds.
    pub fn matching(
        mut self,
        predicate: impl Fn(&StreamEntry) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.predicates.push(Arc::new(predicate));
        self
    }

    /// Whether the read keeps `entry`.
    pub fn accepts(&self, entry: &StreamEntry) -> bool {
        self.headers
            .iter()
            .all(|(name, value)| entry.header_text(name).as_deref() == Some(value.as_str()))
            && (self.routing_keys.is_empty() || self.routing_keys.contains(&entry.routing_key))
            && self.predicates.iter().all(|predicate| predicate(entry))
    }
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter")
            .field("headers", &self.headers)
            .field("routing_keys", &self.routing_keys)
            .field("predicates", &self.predicates.len())
            .finish()
    }
}

/// What a read gives next.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// An entry the filter kept.
    Entry(StreamEntry),
    /// The read has reached the stream's newest entry as of when it opened (given once). Without
    /// `follow` the read ends after it; with `follow`, what comes next was appended since.
    CaughtUp,
}

/// Reads one stream.
#[derive(Debug)]
pub struct StreamReader<'c> {
    connection: &'c BrokerConnection,
    stream: String,
}

impl<'c> StreamReader<'c> {
    /// A reader of the stream named `stream` over `connection`.
    pub fn new(connection: &'c BrokerConnection, stream: &str) -> Self {
        Self {
            connection,
            stream: stream.to_owned(),
        }
    }

    /// The stream's name.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Open a read: find the stream's tail, then start consuming at `options.from`.
    pub async fn open(
        &self,
        filter: Filter,
        options: &ReadOptions,
    ) -> Result<Entries, StreamError> {
        let deadline = options.deadline.map(|d| Instant::now() + d);
        let cursor_options = CursorOptions {
            from: options.from,
            idle_timeout: options.idle_timeout,
            deadline,
            prefetch: options.prefetch,
            tag_prefix: "slipway-read",
        };
        let failed = |error| StreamError::from_read(error, &self.stream, options);
        let tail = probe_tail(self.connection, &self.stream, &cursor_options)
            .await
            .map_err(failed)?;
        let cursor = if tail.is_none() && !options.follow {
            // An empty stream: nothing to read.
            None
        } else {
            let cursor = StreamCursor::open(self.connection, &self.stream, tail, &cursor_options)
                .await
                .map_err(failed)?;
            Some(cursor)
        };
        Ok(Entries {
            stream: self.stream.clone(),
            options: options.clone(),
            cursor,
            filter,
            announced: false,
            seen: 0,
            kept: 0,
        })
    }

    /// The offset of the stream's newest entry now (`None` for an empty stream): a reader that
    /// has read up to it has seen everything the broker had stored when this was asked.
    pub async fn tail(&self) -> Result<Option<u64>, StreamError> {
        let options = ReadOptions::default();
        let cursor_options = CursorOptions {
            from: ReadFrom::First,
            idle_timeout: options.idle_timeout,
            deadline: options.deadline.map(|d| Instant::now() + d),
            prefetch: options.prefetch,
            tag_prefix: "slipway-tail",
        };
        let tail = probe_tail(self.connection, &self.stream, &cursor_options)
            .await
            .map_err(|error| StreamError::from_read(error, &self.stream, &options))?;
        Ok(tail.and_then(|offset| u64::try_from(offset).ok()))
    }

    /// Every entry `filter` keeps from `options.from` to the stream's end (`follow` is ignored).
    pub async fn read_to_end(
        &self,
        filter: Filter,
        options: &ReadOptions,
    ) -> Result<Vec<StreamEntry>, StreamError> {
        let options = ReadOptions {
            follow: false,
            ..options.clone()
        };
        let mut entries = self.open(filter, &options).await?;
        let mut kept = Vec::new();
        while let Some(step) = entries.next().await {
            match step {
                Ok(Step::Entry(entry)) => kept.push(entry),
                Ok(Step::CaughtUp) => {}
                Err(error) => {
                    entries.close().await;
                    return Err(error);
                }
            }
        }
        entries.close().await;
        Ok(kept)
    }
}

/// An open read of a stream: call [`next`](Self::next) until it gives `None`, or stop earlier
/// and [`close`](Self::close) it (a read dropped unclosed keeps its channel until the connection
/// closes).
pub struct Entries {
    stream: String,
    options: ReadOptions,
    /// `None` once the read is over (or when there was nothing to read).
    cursor: Option<StreamCursor>,
    filter: Filter,
    /// Whether [`Step::CaughtUp`] was given.
    announced: bool,
    seen: u64,
    kept: u64,
}

impl Entries {
    /// The next step of the read; `None` once it is over (after [`Step::CaughtUp`] without
    /// `follow`, or after an error). Waiting for it may be cancelled (`select!`, a timeout):
    /// nothing is lost but the entry being received, and the read can go on or be closed.
    pub async fn next(&mut self) -> Option<Result<Step, StreamError>> {
        loop {
            let caught_up = self.cursor.as_ref().is_none_or(StreamCursor::caught_up);
            if caught_up && !self.announced {
                self.announced = true;
                return Some(Ok(Step::CaughtUp));
            }
            if self.announced && !self.options.follow {
                self.finish().await;
                return None;
            }
            let cursor = self.cursor.as_mut()?;
            match cursor.next().await {
                Ok(Some(message)) => {
                    self.seen += 1;
                    let Some(entry) = StreamEntry::from_message(message) else {
                        tracing::warn!(stream = %self.stream, "skipping a delivery without a stream offset");
                        continue;
                    };
                    if self.filter.accepts(&entry) {
                        self.kept += 1;
                        return Some(Ok(Step::Entry(entry)));
                    }
                }
                Ok(None) => {}
                Err(error) => {
                    self.finish().await;
                    return Some(Err(StreamError::from_read(
                        error,
                        &self.stream,
                        &self.options,
                    )));
                }
            }
        }
    }

    /// Whether the read has reached the stream's newest entry as of when it opened.
    pub fn caught_up(&self) -> bool {
        self.announced
    }

    /// Stop reading and close the read's channel.
    pub async fn close(mut self) {
        self.finish().await;
    }

    async fn finish(&mut self) {
        if let Some(cursor) = self.cursor.take() {
            cursor.close().await;
            tracing::debug!(stream = %self.stream, seen = self.seen, kept = self.kept, "stream read done");
        }
    }
}

impl fmt::Debug for Entries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entries")
            .field("stream", &self.stream)
            .field("filter", &self.filter)
            .field("open", &self.cursor.is_some())
            .field("caught_up", &self.announced)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(routing_key: &str, job: Option<&str>) -> StreamEntry {
        let headers = job.map(|job| {
            let mut table = FieldTable::default();
            headers::set_text(&mut table, headers::JOB_ID, job);
            table.insert("x-flag".into(), AMQPValue::Boolean(true));
            table
        });
        StreamEntry {
            offset: 7,
            timestamp: None,
            routing_key: routing_key.into(),
            message_id: None,
            message_type: None,
            body: Vec::new(),
            headers,
        }
    }

    #[test]
    fn a_filter_keeps_what_all_its_conditions_accept() {
        let (a, b, none) = (
            entry("x.done", Some("a")),
            entry("x.start", Some("b")),
            entry("x.done", None),
        );
        assert!([&a, &b, &none].iter().all(|e| Filter::all().accepts(e)));
        let job_a = Filter::all().header(headers::JOB_ID, "a");
        assert!(job_a.accepts(&a) && !job_a.accepts(&b) && !job_a.accepts(&none));
        let done = Filter::all().routing_key_in(["x.done", "x.failed"]);
        assert!(done.accepts(&a) && !done.accepts(&b) && done.accepts(&none));
        let both = job_a.clone().routing_key_in(["x.start"]);
        assert!(!both.accepts(&a) && !both.accepts(&b));
        let flagged = Filter::all().matching(|e| e.header_bool("x-flag") == Some(true));
        assert!(flagged.accepts(&a) && !flagged.accepts(&none));
        assert!(
            format!("{flagged:?}").contains("predicates: 1"),
            "{flagged:?}"
        );
    }

    #[test]
    fn entry_headers_are_read_by_type() {
        let a = entry("k", Some("a"));
        assert_eq!(a.header_text(headers::JOB_ID).as_deref(), Some("a"));
        assert_eq!(a.header_integer(headers::JOB_ID), None);
        assert_eq!(a.header_bool("x-flag"), Some(true));
        assert_eq!(a.header_bool("x-missing"), None);
    }

    #[test]
    fn a_deadline_error_says_whether_the_read_was_following() {
        let options = ReadOptions {
            deadline: Some(Duration::from_secs(3)),
            ..ReadOptions::default()
        };
        let ended = StreamError::from_read(ReadError::Deadline, "n.history", &options);
        assert_eq!(
            ended.to_string(),
            "reading stream \"n.history\" had not reached its end when its deadline of 3s passed"
        );
        let following = ReadOptions {
            follow: true,
            ..options
        };
        let ended = StreamError::from_read(ReadError::Deadline, "n.history", &following);
        assert!(
            ended.to_string().contains("was still following it"),
            "{ended}"
        );
    }
}

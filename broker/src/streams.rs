//! What every Slipway stream (`<namespace>.logs`, `<namespace>.reports`, `<namespace>.history`)
//! shares: declaring one with its retention arguments and deleting it, appending to it, and
//! reading it from a [`ReadFrom`] up to where it ended when the read began — or on, following it
//! ([`reader`]: the one public, domain-free reader every stream is read through).
//!
//! A stream is a durable queue with `x-queue-type=stream` (AMQP 0-9-1 access, no stream plugin
//! needed on RabbitMQ 3.10). The logs and reports streams are *not* part of
//! [`Topology`](crate::Topology) and are not bound to the topic exchange: messages go to the
//! default exchange with the stream's name as routing key, confirmed and `mandatory`, so a missing
//! stream is an error rather than a silent loss. The history stream is the exception: the
//! topology declares it and binds it to the exchange with `#` (see [`crate::history`]).
//!
//! **Reading.** RabbitMQ 3.10 has no server-side stream filtering: a reader consumes from the
//! start of its window and keeps what it wants, acking everything (stream consumers need acks and
//! a prefetch to get more). Before reading, a short-lived second consumer starting at `last`
//! learns the offset of the stream's newest message (`probe_tail`; nothing within
//! `idle_timeout`: the stream is empty); a `StreamCursor` has *caught up* once it reaches that
//! offset, or when no message arrives for `idle_timeout` (a window that starts after the newest
//! message). Writers that never stop therefore do not keep a read from ending.

pub mod reader;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Consumer};
use tokio::time::Instant;

use crate::connection::BrokerConnection;
use crate::headers;
use crate::publisher::{PublishError, Publisher};
use crate::topology::Declarer;
use crate::{BrokerError, BrokerSettings};

/// The header RabbitMQ puts on every message delivered from a stream: its offset.
const STREAM_OFFSET: &str = "x-stream-offset";
/// How long the tail probe collects the newest chunk's messages after the first one arrives.
const TAIL_GRACE: Duration = Duration::from_millis(100);
/// Persistent delivery mode.
const PERSISTENT: u8 = 2;

/// Retention of one stream, borrowed from its settings (`LogStreamSettings`,
/// `ReportStreamSettings`, `HistoryStreamSettings`, which differ only in their defaults). RabbitMQ deletes whole segments,
/// oldest first, once a segment is entirely older than `max_age` or the stream is larger than
/// `max_length_bytes`.
///
/// The arguments are fixed when the stream is first declared: declaring it again with other
/// values fails with a 406 naming the argument. Change retention on a live stream with a policy.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StreamRetention<'a> {
    /// The settings' config section, to name keys in errors (`logs`, `reports`).
    pub section: &'static str,
    /// `x-max-age`: a number and one unit of `Y`, `M`, `D`, `h`, `m`, `s`.
    pub max_age: &'a str,
    /// `x-max-length-bytes`.
    pub max_length_bytes: u64,
    /// `x-stream-max-segment-size-bytes`.
    pub max_segment_size_bytes: u64,
}

impl StreamRetention<'_> {
    /// Reject retention settings RabbitMQ would refuse, naming the key.
    pub fn validate(&self) -> Result<(), BrokerError> {
        let section = self.section;
        let age = self.max_age;
        let (number, unit) = age.split_at(age.len().saturating_sub(1));
        let problem = if number.is_empty()
            || !number.bytes().all(|b| b.is_ascii_digit())
            || !["Y", "M", "D", "h", "m", "s"].contains(&unit)
        {
            Some(format!(
                "{section}.max_age must be a number and one unit of Y, M, D, h, m, s (e.g. 7D), found {age:?}"
            ))
        } else if number.bytes().all(|b| b == b'0') {
            Some(format!(
                "{section}.max_age must be more than 0, found {age:?}"
            ))
        } else if self.max_length_bytes == 0 {
            Some(format!(
                "{section}.max_length_bytes must be at least 1, found 0"
            ))
        } else if self.max_segment_size_bytes == 0
            || self.max_segment_size_bytes > self.max_length_bytes
        {
            Some(format!(
                "{section}.max_segment_size_bytes must be between 1 and max_length_bytes ({}), found {}",
                self.max_length_bytes, self.max_segment_size_bytes
            ))
        } else {
            None
        };
        match problem {
            Some(problem) => Err(BrokerError::Settings(problem)),
            None => Ok(()),
        }
    }

    /// The declaration arguments of the stream.
    pub fn arguments(&self) -> FieldTable {
        let mut table = FieldTable::default();
        let mut set = |key: &str, value| {
            table.insert(ShortString::from(key), value);
        };
        set(
            "x-queue-type",
            AMQPValue::LongString(LongString::from("stream")),
        );
        set(
            "x-max-age",
            AMQPValue::LongString(LongString::from(self.max_age)),
        );
        set(
            "x-max-length-bytes",
            AMQPValue::LongLongInt(i64::try_from(self.max_length_bytes).unwrap_or(i64::MAX)),
        );
        set(
            "x-stream-max-segment-size-bytes",
            AMQPValue::LongLongInt(i64::try_from(self.max_segment_size_bytes).unwrap_or(i64::MAX)),
        );
        table
    }
}

/// Declare the stream `stream` with `retention` (idempotent; a 406 names an argument that differs
/// from the existing stream's), bound by name to the queue exchange so it can be appended to; with
/// `broker.topology = "verify"`, check that it exists. `what` names the stream in errors
/// (`log stream`).
pub(crate) async fn declare_stream(
    connection: &BrokerConnection,
    settings: &BrokerSettings,
    stream: &str,
    retention: StreamRetention<'_>,
    what: &str,
) -> Result<(), BrokerError> {
    // A 406 closes the channel: use one of our own.
    let channel = connection.channel().await?;
    let declarer = Declarer::new(&channel, settings.topology, &settings.namespace);
    declare_stream_on(&declarer, stream, retention, what).await?;
    declarer.bind_by_name(stream).await?;
    let _ = channel.close(200, "declared".into()).await;
    Ok(())
}

/// Declare (or check) the stream `stream` with `declarer` (the topology's declaration channel).
pub(crate) async fn declare_stream_on(
    declarer: &Declarer<'_>,
    stream: &str,
    retention: StreamRetention<'_>,
    what: &str,
) -> Result<(), BrokerError> {
    retention.validate()?;
    declarer.queue(stream, retention.arguments(), what).await
}

/// Delete the stream `stream` and everything in it.
pub(crate) async fn delete_stream(
    connection: &BrokerConnection,
    stream: &str,
) -> Result<(), BrokerError> {
    let channel = connection.channel().await?;
    channel
        .queue_delete(stream.into(), QueueDeleteOptions::default())
        .await
        .map_err(BrokerError::Channel)?;
    let _ = channel.close(200, "deleted".into()).await;
    Ok(())
}

/// One message to append to a stream.
#[derive(Debug)]
pub(crate) struct Append<'a> {
    /// Its body.
    pub body: &'a [u8],
    /// Its MIME type.
    pub content_type: &'a str,
    /// Its `message-id` property, for people reading the stream.
    pub message_id: String,
    /// Its `x-slipway-*` headers.
    pub headers: FieldTable,
}

/// Append `message` to `stream` (the queue exchange, the stream's name as routing key), persistent,
/// `mandatory` and stamped with the current time, and wait for the broker's confirm. A missing
/// stream is [`PublishError::Unroutable`].
pub(crate) async fn append(
    publisher: &Publisher,
    stream: &str,
    message: Append<'_>,
) -> Result<(), PublishError> {
    let properties = BasicProperties::default()
        .with_content_type(message.content_type.into())
        .with_delivery_mode(PERSISTENT)
        .with_message_id(message.message_id.into())
        .with_timestamp(slipway_common::Timestamp::now().unix_millis() / 1000)
        .with_headers(message.headers);
    publisher
        .send_to_queue(stream, message.body, properties)
        .await
}

/// A header value of a stream entry (the two kinds Slipway's streams use).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderValue {
    /// A string (`x-slipway-job-id`, …).
    Text(String),
    /// A signed integer (times in Unix milliseconds, counters).
    Integer(i64),
}

/// One entry for a stream, in Slipway's own terms: what a worker hands to
/// [`append_entry`] or, through its handler's outcome, to the consumer runner (which appends it,
/// confirmed, before it publishes the job's events and acks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamAppend {
    /// The stream's name (`<namespace>.reports`, …).
    pub stream: String,
    /// The body, opaque here.
    pub body: Vec<u8>,
    /// Its MIME type.
    pub content_type: String,
    /// Its `message-id` property, for people reading the stream.
    pub message_id: String,
    /// Its headers, by name.
    pub headers: Vec<(String, HeaderValue)>,
}

/// Append `entry` to its stream (the queue exchange, the stream's name as routing key),
/// persistent, `mandatory`, stamped with the current time, and wait for the broker's confirm: once
/// this returns `Ok` the entry is stored. A missing stream is [`PublishError::Unroutable`].
pub async fn append_entry(publisher: &Publisher, entry: &StreamAppend) -> Result<(), PublishError> {
    let mut table = FieldTable::default();
    for (name, value) in &entry.headers {
        match value {
            HeaderValue::Text(text) => headers::set_text(&mut table, name, text),
            HeaderValue::Integer(number) => headers::set_integer(&mut table, name, *number),
        }
    }
    let message = Append {
        body: &entry.body,
        content_type: &entry.content_type,
        message_id: entry.message_id.clone(),
        headers: table,
    };
    append(publisher, &entry.stream, message).await
}

/// Where in the stream a read starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadFrom {
    /// The oldest message still in the stream (may read up to `max_age` of everything).
    First,
    /// Messages the broker stored at most this long ago.
    Ago(Duration),
    /// Messages the broker stored at or after this time.
    Since(SystemTime),
    /// The message at this offset and those after it (an offset an earlier read returned).
    Offset(u64),
}

impl ReadFrom {
    /// The `x-stream-offset` consumer argument.
    fn offset_argument(self) -> AMQPValue {
        let since = match self {
            Self::First => return AMQPValue::LongString(LongString::from("first")),
            Self::Ago(ago) => SystemTime::now().checked_sub(ago).unwrap_or(UNIX_EPOCH),
            Self::Since(at) => at,
            Self::Offset(offset) => {
                return AMQPValue::LongLongInt(i64::try_from(offset).unwrap_or(i64::MAX));
            }
        };
        // AMQP timestamps are whole seconds since the epoch.
        let seconds = since
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        AMQPValue::Timestamp(seconds)
    }
}

/// How a read walks a stream.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CursorOptions {
    /// Where the read starts.
    pub from: ReadFrom,
    /// A stream from which nothing arrives for this long has been read to its end.
    pub idle_timeout: Duration,
    /// When the whole read must be over; `None`: no limit.
    pub deadline: Option<Instant>,
    /// Unacked messages the broker may send ahead.
    pub prefetch: u16,
    /// The start of the consumer tags, which say who reads (`slipway-logs`).
    pub tag_prefix: &'static str,
}

/// Why a read of a stream stopped; the caller names the stream.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// Opening a channel failed.
    Broker(BrokerError),
    /// The stream does not exist.
    NoStream,
    /// Consuming failed.
    Consume(lapin::Error),
    /// The broker ended the consumer (the stream was deleted, or the channel closed).
    ConsumerEnded,
    /// The deadline passed.
    Deadline,
}

impl From<BrokerError> for ReadError {
    fn from(error: BrokerError) -> Self {
        Self::Broker(error)
    }
}

/// One message read from a stream (acked, or counted for the next batched ack).
#[derive(Debug)]
pub(crate) struct StreamMessage {
    /// Its offset in the stream, as the broker said.
    pub offset: Option<i64>,
    /// The routing key it was published with (an event's kind on the history stream; the
    /// stream's own name for an append).
    pub routing_key: String,
    /// Its properties and headers.
    pub properties: BasicProperties,
    /// Its body.
    pub body: Vec<u8>,
}

/// A channel with the read's prefetch.
async fn channel(connection: &BrokerConnection, prefetch: u16) -> Result<Channel, ReadError> {
    let channel = connection.channel().await?;
    channel
        .basic_qos(prefetch.max(1), BasicQosOptions::default())
        .await
        .map_err(consume_error)?;
    Ok(channel)
}

/// A consumer of `stream` starting at `offset`.
async fn consume(
    channel: &Channel,
    stream: &str,
    offset: AMQPValue,
    tag_prefix: &str,
    purpose: &str,
) -> Result<Consumer, ReadError> {
    let mut arguments = FieldTable::default();
    arguments.insert(ShortString::from(STREAM_OFFSET), offset);
    let tag = format!("{tag_prefix}-{purpose}-{}", uuid::Uuid::now_v7());
    channel
        .basic_consume(
            stream.into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            arguments,
        )
        .await
        .map_err(consume_error)
}

fn consume_error(source: lapin::Error) -> ReadError {
    let not_found =
        matches!(source.kind(), lapin::ErrorKind::ProtocolError(amqp) if amqp.get_id() == 404);
    if not_found {
        ReadError::NoStream
    } else {
        ReadError::Consume(source)
    }
}

/// The offset of the newest message of `stream` now: the highest offset delivered by a consumer
/// starting at `last` (the newest chunk) within a moment of its first delivery. `None` when
/// nothing arrives within `idle_timeout` (an empty stream).
pub(crate) async fn probe_tail(
    connection: &BrokerConnection,
    stream: &str,
    options: &CursorOptions,
) -> Result<Option<i64>, ReadError> {
    let channel = channel(connection, options.prefetch).await?;
    let last = AMQPValue::LongString(LongString::from("last"));
    let mut consumer = consume(&channel, stream, last, options.tag_prefix, "tail").await?;
    let mut tail = None;
    let mut first = true;
    let mut until = Instant::now() + options.idle_timeout;
    while let Ok(Some(Ok(delivery))) = tokio::time::timeout_at(until, consumer.next()).await {
        if first {
            first = false;
            until = Instant::now() + TAIL_GRACE;
        }
        let offset = headers::integer(delivery.properties.headers().as_ref(), STREAM_OFFSET);
        tail = tail.max(offset);
        let _ = delivery.acker.ack(BasicAckOptions::default()).await;
    }
    let _ = channel.close(200, "tail found".into()).await;
    Ok(tail)
}

/// An open read of a stream, from [`CursorOptions::from`] towards the tail found before it
/// opened.
pub(crate) struct StreamCursor {
    channel: Channel,
    consumer: Consumer,
    /// Offset of the newest message when the read started.
    tail: Option<i64>,
    caught_up: bool,
    idle_timeout: Duration,
    deadline: Option<Instant>,
    /// Messages received and not acked yet. While catching up, acks go in batches
    /// (`multiple`), half a prefetch at a time, so the broker never runs out of credit and a
    /// long read does not pay one ack per message; from the tail on, each message is acked as it
    /// comes, so no delivery stays unacked on a quiet stream (RabbitMQ's `consumer_timeout`
    /// would close the channel).
    unacked: u16,
    ack_every: u16,
    /// The acker of the latest unacked message, to ack the batch when the read catches up by
    /// silence.
    last_acker: Option<lapin::Acker>,
    /// A message received whose ack was being sent when the wait for it was cancelled: the next
    /// call returns it (so a `select!` or a timeout around [`StreamCursor::next`] loses nothing).
    received: Option<StreamMessage>,
    /// The ack being sent, kept across a cancelled wait and finished before any other: lapin
    /// runs each ack as a task of its own, so two acks in flight could reach the broker out of
    /// order, and a `multiple` ack of an earlier tag after a later one is an unknown delivery tag
    /// (the broker closes the channel).
    ack_in_flight: Option<AckInFlight>,
}

/// An ack sent and not yet confirmed by lapin.
type AckInFlight = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Ack `acker`'s delivery and every earlier one. A failed ack means the channel is gone: the next
/// wait reports it.
fn ack_up_to(acker: lapin::Acker) -> AckInFlight {
    Box::pin(async move {
        let _ = acker.ack(BasicAckOptions { multiple: true }).await;
    })
}

impl StreamCursor {
    /// Start reading `stream` as `options` say; `tail` is what [`probe_tail`] found.
    pub async fn open(
        connection: &BrokerConnection,
        stream: &str,
        tail: Option<i64>,
        options: &CursorOptions,
    ) -> Result<Self, ReadError> {
        let channel = channel(connection, options.prefetch).await?;
        let consumer = consume(
            &channel,
            stream,
            options.from.offset_argument(),
            options.tag_prefix,
            "read",
        )
        .await?;
        Ok(Self {
            channel,
            consumer,
            tail,
            caught_up: false,
            idle_timeout: options.idle_timeout,
            deadline: options.deadline,
            unacked: 0,
            ack_every: (options.prefetch / 2).max(1),
            last_acker: None,
            received: None,
            ack_in_flight: None,
        })
    }

    /// Whether the read has reached the tail found when it opened (or the stream went idle).
    pub fn caught_up(&self) -> bool {
        self.caught_up
    }

    /// Wait for the next message. `Ok(None)`: nothing came for `idle_timeout` before catching up,
    /// which counts as caught up. Once caught up, only the deadline limits the wait.
    ///
    /// Cancel-safe: a message is kept in the cursor from the moment it is received until it is
    /// returned, so dropping this future at any await loses none (at worst an ack, which the
    /// next one covers: acks are `multiple`).
    pub async fn next(&mut self) -> Result<Option<StreamMessage>, ReadError> {
        self.settle_ack().await;
        if let Some(message) = self.received.take() {
            return Ok(Some(message));
        }
        // Before catching up, silence means the end of the stream; after, only the deadline counts.
        let idle_at = (!self.caught_up).then(|| Instant::now() + self.idle_timeout);
        let wake_at = [idle_at, self.deadline].into_iter().flatten().min();
        let next = match wake_at {
            Some(at) => match tokio::time::timeout_at(at, self.consumer.next()).await {
                Ok(next) => next,
                Err(_) if self.deadline.is_some_and(|d| Instant::now() >= d) => {
                    return Err(ReadError::Deadline);
                }
                Err(_) => {
                    self.caught_up = true;
                    if let Some(acker) = self.last_acker.take() {
                        self.unacked = 0;
                        self.ack_in_flight = Some(ack_up_to(acker));
                        self.settle_ack().await;
                    }
                    return Ok(None);
                }
            },
            None => self.consumer.next().await,
        };
        let delivery = match next {
            Some(Ok(delivery)) => delivery,
            Some(Err(source)) => return Err(ReadError::Consume(source)),
            None => return Err(ReadError::ConsumerEnded),
        };
        let offset = headers::integer(delivery.properties.headers().as_ref(), STREAM_OFFSET);
        if offset.is_some() && offset >= self.tail {
            self.caught_up = true;
        }
        self.unacked += 1;
        if self.caught_up || self.unacked >= self.ack_every {
            self.unacked = 0;
            self.last_acker = None;
            self.ack_in_flight = Some(ack_up_to(delivery.acker.clone()));
        } else {
            self.last_acker = Some(delivery.acker.clone());
        }
        // Kept before the ack is awaited: if the caller stops waiting during the ack, the next
        // call returns it.
        self.received = Some(StreamMessage {
            offset,
            routing_key: delivery.routing_key.to_string(),
            properties: delivery.properties,
            body: delivery.data,
        });
        self.settle_ack().await;
        Ok(self.received.take())
    }

    /// Wait for the ack in flight, if any (cancel-safe: it stays in flight until done).
    async fn settle_ack(&mut self) {
        if let Some(ack) = self.ack_in_flight.as_mut() {
            ack.await;
            self.ack_in_flight = None;
        }
    }

    /// Stop the consumer and close its channel (what is unacked needs no ack: closing a
    /// stream consumer's channel loses nothing).
    pub async fn close(self) {
        let _ = self
            .channel
            .basic_cancel(self.consumer.tag(), BasicCancelOptions::default())
            .await;
        let _ = self.channel.close(200, "read".into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retention(max_age: &str) -> StreamRetention<'_> {
        StreamRetention {
            section: "things",
            max_age,
            max_length_bytes: 1 << 30,
            max_segment_size_bytes: 1 << 20,
        }
    }

    #[test]
    fn the_arguments_declare_a_stream_with_its_retention() {
        let arguments = retention("36h").arguments();
        let text = |key: &str| headers::text(Some(&arguments), key);
        assert_eq!(text("x-queue-type").as_deref(), Some("stream"));
        assert_eq!(text("x-max-age").as_deref(), Some("36h"));
        assert_eq!(
            headers::integer(Some(&arguments), "x-max-length-bytes"),
            Some(1 << 30)
        );
        assert_eq!(
            headers::integer(Some(&arguments), "x-stream-max-segment-size-bytes"),
            Some(1 << 20)
        );
    }

    #[test]
    fn retention_is_validated_with_the_key_named_in_its_section() {
        for (age, ok) in [
            ("7D", true),
            ("36h", true),
            ("1Y", true),
            ("", false),
            ("D", false),
            ("7", false),
            ("7d", false),
            ("0D", false),
            ("-1D", false),
            ("7 D", false),
        ] {
            let result = retention(age).validate();
            assert_eq!(result.is_ok(), ok, "{age:?}: {result:?}");
            if let Err(error) = result {
                assert!(error.to_string().contains("things.max_age"), "{error}");
            }
        }
        let empty = StreamRetention {
            max_length_bytes: 0,
            ..retention("7D")
        };
        let error = empty.validate().unwrap_err().to_string();
        assert!(error.contains("things.max_length_bytes"), "{error}");
        let too_big_segment = StreamRetention {
            max_length_bytes: 10,
            max_segment_size_bytes: 11,
            ..retention("7D")
        };
        let error = too_big_segment.validate().unwrap_err().to_string();
        assert!(error.contains("things.max_segment_size_bytes"), "{error}");
    }

    #[test]
    fn the_offset_argument_is_first_a_timestamp_in_seconds_or_an_offset() {
        assert_eq!(
            ReadFrom::First.offset_argument(),
            AMQPValue::LongString(LongString::from("first"))
        );
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_999);
        assert_eq!(
            ReadFrom::Since(at).offset_argument(),
            AMQPValue::Timestamp(1_700_000_000)
        );
        let AMQPValue::Timestamp(seconds) =
            ReadFrom::Ago(Duration::from_secs(7200)).offset_argument()
        else {
            panic!("not a timestamp");
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            (now - 7201..=now - 7199).contains(&seconds),
            "{seconds} vs {now}"
        );
        assert_eq!(
            ReadFrom::Ago(Duration::MAX).offset_argument(),
            AMQPValue::Timestamp(0)
        );
        assert_eq!(
            ReadFrom::Offset(42).offset_argument(),
            AMQPValue::LongLongInt(42)
        );
    }
}

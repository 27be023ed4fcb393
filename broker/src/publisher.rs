//! Publishing with publisher confirms and `mandatory`: a publish succeeds only when the broker has
//! routed the message to at least one queue and confirmed it. A returned (unroutable) or nacked
//! message is an error, never a silent loss.
//!
//! With a history stream in the topology, `mandatory` alone proves nothing (the stream is bound
//! with `#` and takes every routing key), so the publisher first checks that a worker queue of its
//! topology consumes the routing key, and refuses the message as unroutable otherwise. Every
//! process declares the whole pipeline before publishing, so what its topology binds is bound on
//! the broker.

use futures_util::future::try_join_all;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, PublisherConfirm};
use slipway_common::Envelope;
use slipway_common::envelope::EncodeError;
use std::sync::Arc;
use std::time::Duration;

use crate::connection::BrokerConnection;
use crate::headers;
use crate::topology::Topology;

/// MIME type of an encoded [`Envelope`].
pub const CONTENT_TYPE: &str = "application/msgpack";

/// Persistent delivery mode.
const PERSISTENT: u8 = 2;

/// Why a publish did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The envelope could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// No queue is bound for this routing key: nobody would ever read the message.
    #[error(
        "message to exchange {exchange:?} with routing key {routing_key:?} is unroutable ({reply_code} {reply_text}): no queue is bound for it"
    )]
    Unroutable {
        /// Target exchange.
        exchange: String,
        /// Routing key used.
        routing_key: String,
        /// AMQP reply code (312 NO_ROUTE).
        reply_code: u16,
        /// The broker's text.
        reply_text: String,
    },
    /// The broker refused to take responsibility for the message.
    #[error("broker nacked the message to exchange {exchange:?} with routing key {routing_key:?}")]
    Nacked {
        /// Target exchange.
        exchange: String,
        /// Routing key used.
        routing_key: String,
    },
    /// The channel or connection failed.
    #[error("publish failed: {0}")]
    Broker(#[from] lapin::Error),
    /// The broker neither confirmed nor refused the message in time: the connection is presumed
    /// broken (a half-open socket, a broker stuck in recovery).
    #[error(
        "the broker did not confirm the message to exchange {exchange:?} with routing key {routing_key:?} within {after:?}"
    )]
    ConfirmTimeout {
        /// Target exchange.
        exchange: String,
        /// Routing key used.
        routing_key: String,
        /// How long we waited.
        after: Duration,
    },
}

impl PublishError {
    /// Whether the broker (or the encoder) refused this message while the channel stayed usable:
    /// unroutable, nacked or unencodable. The runner retries such a job; any other error means
    /// the channel or connection broke and the session is rebuilt.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            PublishError::Unroutable { .. } | PublishError::Nacked { .. } | PublishError::Encode(_)
        )
    }
}

/// Longest wait for the broker's confirm of one message. RabbitMQ confirms within milliseconds
/// when healthy; past this the connection is treated as broken and the job is redelivered.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// A channel in confirm mode, publishing to the topology's exchange.
#[derive(Clone, Debug)]
pub struct Publisher {
    channel: Channel,
    exchange: String,
    /// The topology's queue exchange (`N.queues`): where [`Publisher::send_to_queue`] goes.
    queue_exchange: String,
    /// With a history stream: the topology, to check that a worker consumes what is published.
    checked_against: Option<Arc<Topology>>,
}

/// The `reply-text` of an event refused before publishing because only the history stream would
/// take it.
const HISTORY_ONLY: &str = "NO_ROUTE to a worker queue (checked before publishing: the history stream alone would take it)";

/// A message ready to be published anywhere.
pub(crate) struct Outgoing<'a> {
    pub exchange: &'a str,
    pub routing_key: &'a str,
    pub body: &'a [u8],
    pub properties: BasicProperties,
}

impl Publisher {
    /// Close its channel now (a clean stop). A channel left to its `Drop` is closed by lapin in
    /// the background, which races the connection's close and logs a false error.
    pub async fn close(&self) {
        let _ = self.channel.close(200, "closing".into()).await;
    }

    /// Open a confirm-mode channel on `connection`.
    pub async fn open(
        connection: &BrokerConnection,
        topology: &Topology,
    ) -> Result<Self, crate::BrokerError> {
        let channel = connection.channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(crate::BrokerError::Channel)?;
        Ok(Self {
            channel,
            exchange: topology.exchange().to_owned(),
            queue_exchange: topology.queue_exchange(),
            checked_against: topology
                .history_stream()
                .map(|_| Arc::new(topology.clone())),
        })
    }

    /// Refuse `routing_key` when only the history stream would take it.
    fn check_routable(&self, routing_key: &str) -> Result<(), PublishError> {
        match &self.checked_against {
            Some(topology) if !topology.takes(routing_key) => Err(PublishError::Unroutable {
                exchange: self.exchange.clone(),
                routing_key: routing_key.to_owned(),
                reply_code: 312,
                reply_text: HISTORY_ONLY.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// Publish one event and wait for its confirm.
    pub async fn publish(&self, envelope: &Envelope) -> Result<(), PublishError> {
        self.publish_all(std::slice::from_ref(envelope)).await
    }

    /// Publish events, pipelined, and wait until every one is confirmed.
    pub async fn publish_all(&self, envelopes: &[Envelope]) -> Result<(), PublishError> {
        for envelope in envelopes {
            self.check_routable(envelope.kind().as_str())?;
        }
        let mut pending = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            let body = envelope.encode()?;
            let message = Outgoing {
                exchange: &self.exchange,
                routing_key: envelope.kind().as_str(),
                body: &body,
                properties: envelope_properties(envelope),
            };
            pending.push(self.send(&message).await?);
        }
        try_join_all(pending).await.map(drop)
    }

    /// Publish bytes that need not be a valid envelope (replaying dead letters, poison tests),
    /// with `routing_key` on the topology's exchange, and wait for the confirm.
    pub async fn publish_raw(&self, routing_key: &str, body: &[u8]) -> Result<(), PublishError> {
        self.check_routable(routing_key)?;
        self.send_confirmed(&Outgoing {
            exchange: &self.exchange,
            routing_key,
            body,
            properties: BasicProperties::default()
                .with_content_type(CONTENT_TYPE.into())
                .with_delivery_mode(PERSISTENT),
        })
        .await
    }

    /// Send one message; the returned future resolves when the broker has confirmed it.
    pub(crate) async fn send(
        &self,
        message: &Outgoing<'_>,
    ) -> Result<impl Future<Output = Result<(), PublishError>> + use<>, PublishError> {
        let confirm: PublisherConfirm = self
            .channel
            .basic_publish(
                message.exchange.into(),
                message.routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                message.body,
                message.properties.clone(),
            )
            .await?;
        let exchange = message.exchange.to_owned();
        let routing_key = message.routing_key.to_owned();
        Ok(async move {
            let Ok(confirmation) = tokio::time::timeout(CONFIRM_TIMEOUT, confirm).await else {
                return Err(PublishError::ConfirmTimeout {
                    exchange,
                    routing_key,
                    after: CONFIRM_TIMEOUT,
                });
            };
            match confirmation? {
                Confirmation::Ack(None) => Ok(()),
                Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
                    Err(PublishError::Unroutable {
                        exchange,
                        routing_key,
                        reply_code: returned.reply_code,
                        reply_text: returned.reply_text.to_string(),
                    })
                }
                Confirmation::Nack(None) | Confirmation::NotRequested => {
                    Err(PublishError::Nacked {
                        exchange,
                        routing_key,
                    })
                }
            }
        })
    }

    /// Send `body` with `properties` to the queue or stream named `queue`, through the queue
    /// exchange (where it is bound by name), and wait for the confirm. A queue not bound there is
    /// [`PublishError::Unroutable`].
    pub(crate) async fn send_to_queue(
        &self,
        queue: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        self.send_confirmed(&Outgoing {
            exchange: &self.queue_exchange,
            routing_key: queue,
            body,
            properties,
        })
        .await
    }

    /// Send one message and wait for its confirm.
    pub(crate) async fn send_confirmed(&self, message: &Outgoing<'_>) -> Result<(), PublishError> {
        self.send(message).await?.await
    }
}

/// Persistent, typed (`type` = kind), with the event id as `message-id`, `created_at` (seconds)
/// as `timestamp` and the job id as a header: what readers of queues and of the history stream
/// filter on without decoding.
fn envelope_properties(envelope: &Envelope) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers::set_text(&mut headers, headers::JOB_ID, &envelope.job_id.to_string());
    BasicProperties::default()
        .with_content_type(CONTENT_TYPE.into())
        .with_delivery_mode(PERSISTENT)
        .with_message_id(envelope.id.to_string().into())
        .with_timestamp(envelope.created_at.unix_millis() / 1000)
        .with_type(envelope.kind().as_str().into())
        .with_headers(headers)
}

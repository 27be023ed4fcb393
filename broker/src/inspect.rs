//! Looking into queues from outside a worker: depths, and taking dead letters off `N.dead`
//! (for the CLI and the tests).

use lapin::options::{
    BasicAckOptions, BasicGetOptions, ExchangeDeleteOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;

use crate::BrokerError;
use crate::connection::BrokerConnection;
use crate::headers;
use crate::topology::Topology;

/// One message taken off the dead-letter queue.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    /// The routing key it was first published with.
    pub routing_key: String,
    /// `x-slipway-reason`, or the broker's own reason (e.g. `delivery_limit`) when it dead-lettered it.
    pub reason: String,
    /// `x-slipway-worker`: the worker that gave up on it, when a worker did.
    pub worker: Option<String>,
    /// Retries it went through.
    pub attempt: u32,
    /// The message body, as published.
    pub body: Vec<u8>,
}

/// What the broker says of one queue (a passive declare): its ready messages and consumers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueCounts {
    /// The queue.
    pub queue: String,
    /// Messages ready for delivery (not those delivered and unacked).
    pub ready: u32,
    /// Consumers attached.
    pub consumers: u32,
}

/// Ready messages and consumers of each queue of the topology (queues that do not exist are
/// skipped).
pub async fn queue_counts(
    connection: &BrokerConnection,
    topology: &Topology,
) -> Result<Vec<QueueCounts>, BrokerError> {
    let mut counts = Vec::new();
    for queue in topology.all_queues() {
        // A passive declare of a missing queue closes the channel: use one channel per queue.
        let channel = connection.channel().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        if let Ok(declared) = channel
            .queue_declare(queue.as_str().into(), passive, FieldTable::default())
            .await
        {
            counts.push(QueueCounts {
                queue,
                ready: declared.message_count(),
                consumers: declared.consumer_count(),
            });
            let _ = channel.close(200, "done".into()).await;
        }
    }
    Ok(counts)
}

/// Number of ready messages in each queue of the topology (queues that do not exist are skipped).
pub async fn queue_depths(
    connection: &BrokerConnection,
    topology: &Topology,
) -> Result<Vec<(String, u32)>, BrokerError> {
    Ok(queue_counts(connection, topology)
        .await?
        .into_iter()
        .map(|counts| (counts.queue, counts.ready))
        .collect())
}

/// Take (and remove) up to `max` messages from the dead-letter queue.
pub async fn take_dead_letters(
    connection: &BrokerConnection,
    topology: &Topology,
    max: usize,
) -> Result<Vec<DeadLetter>, BrokerError> {
    let channel = connection.channel().await?;
    let queue = topology.dead_letter_queue();
    let mut letters = Vec::new();
    while letters.len() < max {
        let Some(message) = channel
            .basic_get(queue.as_str().into(), BasicGetOptions::default())
            .await
            .map_err(BrokerError::Channel)?
        else {
            break;
        };
        let delivery = message.delivery;
        let found = delivery.properties.headers().as_ref();
        letters.push(DeadLetter {
            routing_key: headers::text(found, headers::ROUTING_KEY)
                .unwrap_or_else(|| delivery.routing_key.to_string()),
            reason: headers::text(found, headers::REASON)
                .or_else(|| headers::text(found, "x-first-death-reason"))
                .unwrap_or_else(|| "unknown".to_owned()),
            worker: headers::text(found, headers::WORKER),
            attempt: headers::attempt(found),
            body: delivery.data.clone(),
        });
        delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(BrokerError::Channel)?;
    }
    Ok(letters)
}

/// Delete every queue, stream and exchange of the topology (test namespaces, dev resets). Never on a
/// production namespace: queued jobs are lost.
pub async fn delete_topology(
    connection: &BrokerConnection,
    topology: &Topology,
) -> Result<(), BrokerError> {
    let channel = connection.channel().await?;
    for queue in topology
        .all_queues()
        .into_iter()
        .chain(topology.history_stream())
        .chain(topology.report_stream())
    {
        channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await
            .map_err(BrokerError::Channel)?;
    }
    for exchange in [
        topology.exchange().to_owned(),
        topology.dead_letter_exchange(),
    ] {
        channel
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await
            .map_err(BrokerError::Channel)?;
    }
    Ok(())
}

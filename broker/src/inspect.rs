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

/// One message of the dead-letter queue.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    /// Its AMQP message id (the envelope's id, for Slipway's messages), if it had one.
    pub message_id: Option<String>,
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

/// What a delivery from the dead-letter queue says.
fn dead_letter_of(delivery: &lapin::message::Delivery) -> DeadLetter {
    let found = delivery.properties.headers().as_ref();
    DeadLetter {
        message_id: delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.to_string()),
        routing_key: headers::text(found, headers::ROUTING_KEY)
            .unwrap_or_else(|| delivery.routing_key.to_string()),
        reason: headers::text(found, headers::REASON)
            .or_else(|| headers::text(found, "x-first-death-reason"))
            .unwrap_or_else(|| "unknown".to_owned()),
        worker: headers::text(found, headers::WORKER),
        attempt: headers::attempt(found),
        body: delivery.data.clone(),
    }
}

/// The next message of the dead-letter queue `queue`, taken unacked; `None` when it is empty.
async fn next_dead_letter(
    channel: &lapin::Channel,
    queue: &str,
) -> Result<Option<lapin::message::Delivery>, BrokerError> {
    Ok(channel
        .basic_get(queue.into(), BasicGetOptions::default())
        .await
        .map_err(BrokerError::Channel)?
        .map(|message| message.delivery))
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
        let Some(delivery) = next_dead_letter(&channel, &queue).await? else {
            break;
        };
        letters.push(dead_letter_of(&delivery));
        delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(BrokerError::Channel)?;
    }
    Ok(letters)
}

/// Look at up to `max` messages of the dead-letter queue without removing them: they are taken
/// unacked and go back when the channel closes. (The dead-letter queue has no delivery limit,
/// so looking never drops one. RabbitMQ 4.0 to 4.2 give quorum queues a default limit of 20:
/// on those, give `N.dead` a policy lifting it.)
pub async fn peek_dead_letters(
    connection: &BrokerConnection,
    topology: &Topology,
    max: usize,
) -> Result<Vec<DeadLetter>, BrokerError> {
    let channel = connection.channel().await?;
    let queue = topology.dead_letter_queue();
    let mut letters = Vec::new();
    while letters.len() < max {
        let Some(delivery) = next_dead_letter(&channel, &queue).await? else {
            break;
        };
        letters.push(dead_letter_of(&delivery));
    }
    let _ = channel.close(200, "peeked".into()).await;
    Ok(letters)
}

/// Publish the dead letters `chosen` picks again, each to the routing key it was first
/// published with, and remove each from the dead-letter queue once the broker confirmed its
/// publish (a crash in between leaves it in the queue: it may be replayed twice, never lost).
/// The others stay. Returns those replayed.
pub async fn replay_dead_letters(
    connection: &BrokerConnection,
    topology: &Topology,
    publisher: &crate::Publisher,
    chosen: impl Fn(&DeadLetter) -> bool,
) -> Result<Vec<DeadLetter>, BrokerError> {
    let channel = connection.channel().await?;
    let queue = topology.dead_letter_queue();
    let mut replayed = Vec::new();
    loop {
        let Some(delivery) = next_dead_letter(&channel, &queue).await? else {
            break;
        };
        let letter = dead_letter_of(&delivery);
        if !chosen(&letter) {
            continue;
        }
        publisher
            .publish_raw(&letter.routing_key, &letter.body)
            .await?;
        delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(BrokerError::Channel)?;
        replayed.push(letter);
    }
    let _ = channel.close(200, "replayed".into()).await;
    Ok(replayed)
}

/// Remove every message of the dead-letter queue; how many there were.
pub async fn purge_dead_letters(
    connection: &BrokerConnection,
    topology: &Topology,
) -> Result<u32, BrokerError> {
    let channel = connection.channel().await?;
    let purged = channel
        .queue_purge(
            topology.dead_letter_queue().as_str().into(),
            lapin::options::QueuePurgeOptions::default(),
        )
        .await
        .map_err(BrokerError::Channel)?;
    let _ = channel.close(200, "purged".into()).await;
    Ok(purged)
}

/// Delete every queue, stream and exchange of the topology (test namespaces, dev resets). Never on a
/// production namespace: queued jobs are lost.
pub async fn delete_topology(
    connection: &BrokerConnection,
    topology: &Topology,
) -> Result<(), BrokerError> {
    let queues: Vec<String> = topology
        .all_queues()
        .into_iter()
        .chain(topology.history_stream())
        .chain(topology.report_stream())
        .collect();
    delete_queues(connection, &queues).await?;
    let channel = connection.channel().await?;
    for exchange in [
        topology.exchange().to_owned(),
        topology.queue_exchange(),
        topology.dead_letter_exchange(),
    ] {
        channel
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await
            .map_err(BrokerError::Channel)?;
    }
    Ok(())
}

/// Delete everything the pipeline has in `settings`' namespace: the queues and exchanges of
/// [`Topology::pipeline`], its history stream, and what the workers declare themselves — the log
/// and report streams and the lease queues of the elected roles (test namespaces, the demo, dev
/// resets). Never on a production namespace: queued jobs are lost.
pub async fn delete_namespace(
    connection: &BrokerConnection,
    settings: &crate::BrokerSettings,
) -> Result<(), BrokerError> {
    delete_topology(connection, &Topology::pipeline(settings)).await?;
    let mut others = vec![
        crate::logs::log_stream_name(&settings.namespace),
        crate::reports::report_stream_name(&settings.namespace),
    ];
    for role in crate::definitions::ROLES.iter().filter(|role| role.elects) {
        others.push(crate::leadership::lease_queue_name(
            &settings.namespace,
            role.name,
        ));
    }
    delete_queues(connection, &others).await
}

/// Delete the queues and streams named `queues`, with whatever they hold; a name that is not
/// there is no error.
pub async fn delete_queues(
    connection: &BrokerConnection,
    queues: &[String],
) -> Result<(), BrokerError> {
    let channel = connection.channel().await?;
    for queue in queues {
        channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await
            .map_err(BrokerError::Channel)?;
    }
    Ok(())
}

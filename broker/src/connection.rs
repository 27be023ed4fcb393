//! Connecting to the broker: one attempt with a time limit, or attempts with exponential backoff
//! (backon) until connected or shut down.
//!
//! Reconnection after a loss is not left to lapin's auto-recovery: the consumer runner drops the
//! whole session and builds a new one (connection, channels, topology, consumer), which also
//! covers channel-level errors that lapin does not recover.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use lapin::{Channel, Connection, ConnectionProperties};
use tokio_util::sync::CancellationToken;

use crate::{BrokerError, BrokerSettings};

/// Longest wait for one connection attempt (TCP + AMQP handshake).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Longest wait for the broker to acknowledge a connection close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// An open AMQP connection.
#[derive(Debug)]
pub struct BrokerConnection {
    inner: Connection,
}

impl BrokerConnection {
    /// Connect once, failing after 15 s.
    pub async fn connect(settings: &BrokerSettings, name: &str) -> Result<Self, BrokerError> {
        let uri = settings.uri()?;
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        let url = settings.redacted_url();
        match tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect_uri(uri, properties)).await
        {
            Ok(Ok(inner)) => Ok(Self { inner }),
            Ok(Err(source)) => Err(BrokerError::Connect { url, source }),
            Err(_) => Err(BrokerError::ConnectTimeout {
                url,
                after: CONNECT_TIMEOUT,
            }),
        }
    }

    /// Connect, retrying with exponential backoff (capped at `max_reconnect_delay_ms`) until it
    /// works. `Ok(None)` when `shutdown` was cancelled first.
    pub async fn connect_with_retry(
        settings: &BrokerSettings,
        name: &str,
        shutdown: &CancellationToken,
    ) -> Result<Option<Self>, BrokerError> {
        settings.validate()?;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_millis(
                settings.max_reconnect_delay_ms.max(100),
            ))
            .with_factor(2.0)
            .with_jitter()
            .without_max_times();
        let attempt = || Self::connect(settings, name);
        let connecting = attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            // Bad credentials or settings will not fix themselves, but an operator may fix the
            // broker while we wait: keep trying, loudly.
            .notify(|error, delay| {
                tracing::warn!(%error, retry_in_ms = delay.as_millis(), "cannot reach the broker")
            });
        tokio::select! {
            () = shutdown.cancelled() => Ok(None),
            connected = connecting => connected.map(Some),
        }
    }

    /// Open a channel.
    pub async fn channel(&self) -> Result<Channel, BrokerError> {
        self.inner
            .create_channel()
            .await
            .map_err(BrokerError::Channel)
    }

    /// Whether the connection is still usable.
    pub fn is_connected(&self) -> bool {
        self.inner.status().connected()
    }

    /// Close politely; unacked deliveries go back to their queues. Gives up after 5 s (a dead
    /// socket never answers the close), leaving the broker to notice the connection is gone.
    pub async fn close(&self) {
        if !self.is_connected() {
            return;
        }
        match tokio::time::timeout(CLOSE_TIMEOUT, self.inner.close(200, "closing".into())).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::debug!(%error, "closing the broker connection"),
            Err(_) => tracing::warn!(
                after_ms = CLOSE_TIMEOUT.as_millis(),
                "the broker did not answer the connection close; dropping it"
            ),
        }
    }
}

//! A worker's side connection: its own connection for what it writes *while* a job runs (a
//! build's log chunks), so a slow stream never holds up the consumer's channel. (What a job
//! stores with its outcome, such as a scan's report, the consumer runner appends:
//! `Outcome::AppendThenAck`.) It is opened on first use, declaring the stream it writes, and opened again when it
//! has broken; every caller gets a fresh confirm-mode channel on it.

use tokio::sync::Mutex;

use crate::logs::{LogStreamSettings, declare_log_stream, log_stream_name};
use crate::{BrokerConnection, BrokerError, BrokerSettings, Publisher, Topology};

/// The stream a side connection writes, declared whenever it (re)connects.
#[derive(Clone, Debug)]
enum Stream {
    Logs(String, LogStreamSettings),
}

/// A lazily opened, self-repairing connection writing to one stream.
#[derive(Debug)]
pub struct SideConnection {
    settings: BrokerSettings,
    name: String,
    stream: Stream,
    connection: Mutex<Option<BrokerConnection>>,
}

impl SideConnection {
    /// A side connection named `name` (shown in RabbitMQ's connection list) writing the log
    /// stream of the settings' namespace, with `retention`.
    pub fn for_logs(settings: &BrokerSettings, name: &str, retention: &LogStreamSettings) -> Self {
        Self::new(
            settings,
            name,
            Stream::Logs(log_stream_name(&settings.namespace), retention.clone()),
        )
    }

    fn new(settings: &BrokerSettings, name: &str, stream: Stream) -> Self {
        Self {
            settings: settings.clone(),
            name: name.to_owned(),
            stream,
            connection: Mutex::new(None),
        }
    }

    /// The stream's name.
    pub fn stream(&self) -> &str {
        match &self.stream {
            Stream::Logs(name, _) => name,
        }
    }

    /// A publisher on a new channel, connecting (and declaring the stream) first when there is no
    /// connection; when the connection turns out broken, one new connection is tried.
    pub async fn publisher(&self) -> Result<Publisher, BrokerError> {
        let topology = Topology::pipeline(&self.settings);
        let mut connection = self.connection.lock().await;
        let mut last_error = None;
        for _ in 0..2 {
            if connection.is_none() {
                let opened = BrokerConnection::connect(&self.settings, &self.name).await?;
                self.declare(&opened).await?;
                *connection = Some(opened);
            }
            if let Some(open) = connection.as_ref() {
                match Publisher::open(open, &topology).await {
                    Ok(publisher) => return Ok(publisher),
                    // A channel that cannot be opened means the connection is gone.
                    Err(error) => {
                        tracing::warn!(connection = %self.name, %error, "side connection lost; reconnecting");
                        *connection = None;
                        last_error = Some(error);
                    }
                }
            }
        }
        Err(last_error.unwrap_or_else(|| BrokerError::Settings("no side connection".to_owned())))
    }

    /// Forget the connection (after a publish on it failed): the next [`Self::publisher`] opens
    /// a new one.
    pub async fn reset(&self) {
        if let Some(old) = self.connection.lock().await.take() {
            old.close().await;
        }
    }

    async fn declare(&self, connection: &BrokerConnection) -> Result<(), BrokerError> {
        match &self.stream {
            Stream::Logs(_, retention) => {
                declare_log_stream(connection, &self.settings, retention).await
            }
        }
    }
}

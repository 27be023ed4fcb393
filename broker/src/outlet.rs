//! [`Outlet`]: a publisher for a worker's own events outside a consumer's outcomes (a leader's
//! decisions, a webhook's observations). It connects when first used, declares the pipeline's
//! topology, and reconnects when the connection was lost; every publish waits for the broker's
//! confirms.

use std::sync::Arc;

use slipway_common::Envelope;

use crate::{BrokerConnection, BrokerSettings, Publisher, Topology};

/// A lazily opened, self-repairing publisher with confirms; share it behind an `Arc`.
pub struct Outlet {
    settings: BrokerSettings,
    name: String,
    current: tokio::sync::Mutex<Option<(Arc<BrokerConnection>, Arc<Publisher>)>>,
}

impl Outlet {
    /// An outlet whose connection is named `name` (as the broker's connection list shows it).
    pub fn new(settings: &BrokerSettings, name: &str) -> Self {
        Outlet {
            settings: settings.clone(),
            name: name.to_owned(),
            current: tokio::sync::Mutex::new(None),
        }
    }

    async fn publisher(&self) -> Result<(Arc<BrokerConnection>, Arc<Publisher>), String> {
        let mut current = self.current.lock().await;
        if let Some((connection, publisher)) = current.as_ref()
            && connection.is_connected()
        {
            return Ok((Arc::clone(connection), Arc::clone(publisher)));
        }
        let topology = Topology::pipeline(&self.settings);
        let connection = BrokerConnection::connect(&self.settings, &self.name)
            .await
            .map_err(|e| e.to_string())?;
        let channel = connection.channel().await.map_err(|e| e.to_string())?;
        topology
            .declare(&channel)
            .await
            .map_err(|e| e.to_string())?;
        let publisher = Publisher::open(&connection, &topology)
            .await
            .map_err(|e| e.to_string())?;
        let opened = (Arc::new(connection), Arc::new(publisher));
        *current = Some((Arc::clone(&opened.0), Arc::clone(&opened.1)));
        Ok(opened)
    }

    /// Publish `envelopes` and wait for every confirm; after a connection failure one
    /// reconnection is tried. A refusal (an unroutable kind, a nack) is not retried.
    pub async fn publish(&self, envelopes: &[Envelope]) -> Result<(), String> {
        let mut last = String::new();
        for _ in 0..2 {
            let (connection, publisher) = self.publisher().await?;
            match publisher.publish_all(envelopes).await {
                Ok(()) => return Ok(()),
                Err(error) if error.is_refusal() => return Err(error.to_string()),
                Err(error) => {
                    last = error.to_string();
                    let mut current = self.current.lock().await;
                    if current
                        .as_ref()
                        .is_some_and(|(open, _)| Arc::ptr_eq(open, &connection))
                    {
                        *current = None;
                    }
                }
            }
        }
        Err(last)
    }

    /// Close the connection (a later publish opens a new one).
    pub async fn close(&self) {
        if let Some((connection, publisher)) = self.current.lock().await.take() {
            // The channel first: left to its `Drop`, lapin closes it in the background, racing
            // the connection's close (a false "invalid channel state: Closing" ERROR).
            publisher.close().await;
            connection.close().await;
        }
    }
}

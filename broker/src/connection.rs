//! Connecting to the broker: one attempt with a time limit, or attempts with exponential backoff
//! until connected or shut down.
//!
//! A refused login (wrong user or password, or a vhost the user may not open) is not an
//! unreachable broker: it is logged as an error that names the cause and retried on its own,
//! slower backoff ([`REFUSED_MIN_DELAY`] doubling to [`REFUSED_MAX_DELAY`]), since only an
//! operator can fix it. Every wait beats systemd's watchdog: a worker waiting for its broker is
//! alive, and restarting it would not help.
//!
//! Reconnection after a loss is not left to lapin's auto-recovery: the consumer runner drops the
//! whole session and builds a new one (connection, channels, topology, consumer), which also
//! covers channel-level errors that lapin does not recover.

use std::time::Duration;

use lapin::{Channel, Connection, ConnectionProperties};
use slipway_common::errors::Chain;
use slipway_common::service::{self, Component};
use tokio_util::sync::CancellationToken;

use crate::{BrokerError, BrokerSettings};

/// Longest wait for one connection attempt (TCP + AMQP handshake).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Longest wait for the broker to acknowledge a connection close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// First pause after the broker refused the login.
pub const REFUSED_MIN_DELAY: Duration = Duration::from_secs(10);

/// Longest pause between two logins the broker refused.
pub const REFUSED_MAX_DELAY: Duration = Duration::from_secs(300);

/// First pause after an unreachable broker; doubles up to `max_reconnect_delay_ms`.
const UNREACHABLE_MIN_DELAY: Duration = Duration::from_millis(100);

/// An open AMQP connection.
#[derive(Debug)]
pub struct BrokerConnection {
    inner: Connection,
}

impl BrokerConnection {
    /// Connect once, failing after 15 s. A refused login is [`BrokerError::Refused`].
    pub async fn connect(settings: &BrokerSettings, name: &str) -> Result<Self, BrokerError> {
        let uri = settings.uri()?;
        let user = uri.authority.userinfo.username.clone();
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        let url = settings.redacted_url();
        match tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect_uri(uri, properties)).await
        {
            Ok(Ok(inner)) => Ok(Self { inner }),
            Ok(Err(source)) => Err(match refusal(&source) {
                Some(reason) => BrokerError::Refused { url, user, reason },
                None => BrokerError::Connect { url, source },
            }),
            Err(_) => Err(BrokerError::ConnectTimeout {
                url,
                after: CONNECT_TIMEOUT,
            }),
        }
    }

    /// Connect, retrying until it works or `shutdown` is cancelled (`Ok(None)`). An unreachable
    /// broker is retried with exponential backoff capped at `max_reconnect_delay_ms` (a warning
    /// each time); a refused login with its own backoff (an error each time, naming the cause).
    /// `component` says why it is down meanwhile.
    pub async fn connect_with_retry(
        settings: &BrokerSettings,
        name: &str,
        shutdown: &CancellationToken,
        component: &Component,
    ) -> Result<Option<Self>, BrokerError> {
        settings.validate()?;
        let mut backoff = Backoff::default();
        loop {
            service::watchdog_beat();
            let attempt = Self::connect(settings, name);
            let error = tokio::select! {
                () = shutdown.cancelled() => return Ok(None),
                connected = attempt => match connected {
                    Ok(connection) => return Ok(Some(connection)),
                    Err(error) => error,
                },
            };
            let delay = backoff.after(&error, settings);
            let error_text = Chain(&error).to_string();
            let retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
            if matches!(error, BrokerError::Refused { .. }) {
                tracing::error!(
                    error = %error_text,
                    retry_in_ms,
                    "the broker refused the login: check broker.username and the password \
                     (broker.password_file, or the broker-password credential) and the user's \
                     permissions on the vhost"
                );
                component.down(format!("the broker refused the login: {error_text}"));
            } else {
                tracing::warn!(error = %error_text, retry_in_ms, "cannot reach the broker");
                component.down(format!("cannot reach the broker: {error_text}"));
            }
            if !pause(delay, shutdown).await {
                return Ok(None);
            }
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
                after_ms = u64::try_from(CLOSE_TIMEOUT.as_millis()).unwrap_or(u64::MAX),
                "the broker did not answer the connection close; dropping it"
            ),
        }
    }
}

/// Wait `delay`, beating the watchdog each second; `false` when `shutdown` came first.
pub(crate) async fn pause(delay: Duration, shutdown: &CancellationToken) -> bool {
    let until = tokio::time::Instant::now() + delay;
    loop {
        service::watchdog_beat();
        let now = tokio::time::Instant::now();
        if now >= until {
            return true;
        }
        let step = (until - now).min(Duration::from_secs(1));
        tokio::select! {
            () = shutdown.cancelled() => return false,
            () = tokio::time::sleep(step) => {}
        }
    }
}

/// The broker's reason when it refused the login or the vhost: `ACCESS_REFUSED` (user or
/// password) or `NOT_ALLOWED` (no such vhost, or no permission on it).
fn refusal(error: &lapin::Error) -> Option<String> {
    use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
    match error.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => match amqp.kind() {
            AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED)
            | AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED) => {
                Some(amqp.get_message().to_string())
            }
            _ => None,
        },
        _ => None,
    }
}

/// The two backoffs of [`BrokerConnection::connect_with_retry`], each doubling from its own
/// start; a change of kind starts the new kind afresh.
#[derive(Debug, Default)]
struct Backoff {
    refused: Option<Duration>,
    unreachable: Option<Duration>,
}

impl Backoff {
    /// The pause after `error`.
    fn after(&mut self, error: &BrokerError, settings: &BrokerSettings) -> Duration {
        if matches!(error, BrokerError::Refused { .. }) {
            self.unreachable = None;
            let next = self
                .refused
                .map_or(REFUSED_MIN_DELAY, |last| (last * 2).min(REFUSED_MAX_DELAY));
            self.refused = Some(next);
            next
        } else {
            self.refused = None;
            let cap =
                Duration::from_millis(settings.max_reconnect_delay_ms).max(UNREACHABLE_MIN_DELAY);
            let next = self
                .unreachable
                .map_or(UNREACHABLE_MIN_DELAY, |last| (last * 2).min(cap));
            self.unreachable = Some(next);
            jitter(next)
        }
    }
}

/// `delay` less up to a fifth, so that many workers that lost the broker together do not all
/// come back in the same instant.
fn jitter(delay: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |now| now.subsec_nanos());
    delay.saturating_sub(delay / 5 * (nanos % 1000) / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> BrokerError {
        BrokerError::Refused {
            url: "amqp://h/".to_owned(),
            user: "lint".to_owned(),
            reason: "ACCESS_REFUSED".to_owned(),
        }
    }

    fn unreachable() -> BrokerError {
        BrokerError::ConnectTimeout {
            url: "amqp://h/".to_owned(),
            after: CONNECT_TIMEOUT,
        }
    }

    #[test]
    fn a_refused_login_backs_off_on_its_own_slower_scale() {
        let settings = BrokerSettings {
            max_reconnect_delay_ms: 2_000,
            ..BrokerSettings::default()
        };
        let mut backoff = Backoff::default();
        let refusals: Vec<Duration> = (0..8)
            .map(|_| backoff.after(&refused(), &settings))
            .collect();
        assert_eq!(refusals[0], REFUSED_MIN_DELAY);
        assert_eq!(refusals[1], REFUSED_MIN_DELAY * 2);
        assert_eq!(refusals[7], REFUSED_MAX_DELAY);
        // Unreachable: from 100 ms (less jitter), capped by the settings, whatever came before.
        let first = backoff.after(&unreachable(), &settings);
        assert!(
            first <= UNREACHABLE_MIN_DELAY && first >= UNREACHABLE_MIN_DELAY * 4 / 5,
            "{first:?}"
        );
        let capped = (0..10)
            .map(|_| backoff.after(&unreachable(), &settings))
            .last();
        assert!(capped.is_some_and(
            |delay| delay <= Duration::from_secs(2) && delay >= Duration::from_millis(1_600)
        ));
        // And a refusal after that starts its own scale afresh.
        assert_eq!(backoff.after(&refused(), &settings), REFUSED_MIN_DELAY);
    }
}

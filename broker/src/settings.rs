//! The `[broker]` section of every binary's configuration, and the connection URI built from it.

use std::path::PathBuf;
use std::time::Duration;

use lapin::uri::AMQPUri;
use serde::{Deserialize, Serialize};
use slipway_common::config::SecretUrl;

use crate::BrokerError;
use crate::history::HistoryStreamSettings;

/// The largest AMQP frame a connection negotiates unless `broker.url` says `?frame_max=`: 16 KiB.
/// lapin keeps two rings of 32 frames per connection and fills them as traffic flows, so at
/// RabbitMQ's own 128 KiB each connection would hold 8 MiB; at 16 KiB, 1 MiB. Bodies of any size
/// are split across frames; a message's properties (its headers) must fit in one, which is why the
/// runner bounds what it copies ([`crate::headers::MAX_COPIED_BYTES`]) and why the broker should
/// refuse larger frames from publishers (`frame_max = 16384` in `deploy/rabbitmq/rabbitmq.conf`),
/// so that a message a worker could not receive is refused when it is published.
pub const DEFAULT_FRAME_MAX: u32 = 16 * 1024;

/// How to reach the broker and how a worker consumes from it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerSettings {
    /// `amqp://host:port/vhost`. Credentials written here are used for development only
    /// (without any, RabbitMQ's `guest`/`guest`); production sets `username` and `password_file`.
    /// A password here is redacted wherever the settings are printed.
    pub url: SecretUrl,
    /// User name, when the URL has none.
    pub username: Option<String>,
    /// File holding the password (else the systemd credential `broker-password`).
    pub password_file: Option<PathBuf>,
    /// Name of the topic exchange and prefix of every queue; `slipway` in production.
    pub namespace: String,
    /// Jobs one worker process handles at once: the channel prefetch.
    pub prefetch: u16,
    /// Delay before each retry, in milliseconds; later retries reuse the last delay.
    pub retry_delays_ms: Vec<u64>,
    /// Retries before a job that keeps asking for one is dead-lettered.
    pub max_retries: u32,
    /// Deliveries of one message (crashes, lost connections) before the broker dead-letters it
    /// (quorum queue `x-delivery-limit`).
    pub delivery_limit: u32,
    /// On shutdown, how long in-flight jobs may run before they are abandoned (and redelivered).
    pub drain_timeout_ms: u64,
    /// Longest wait between two connection attempts.
    pub max_reconnect_delay_ms: u64,
    /// Retention of the history stream every process declares (`[broker.history]`): it lives
    /// here, with the rest of the topology's arguments, because every process must declare the
    /// stream with the same values.
    pub history: HistoryStreamSettings,
    /// Whether this process declares the exchanges, queues and streams it uses (`declare`, the
    /// default: one user with `configure` rights on the whole vhost) or only checks that an
    /// administrator declared them (`verify`: least-privilege users, see
    /// `deploy/rabbitmq/definitions.json` and `slipway definitions`).
    pub topology: TopologyMode,
}

/// Who declares the topology: [`BrokerSettings::topology`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TopologyMode {
    /// Declare everything this process uses (idempotent): needs `configure` permission on it.
    #[default]
    Declare,
    /// Check with passive declarations that everything this process uses exists (needs no
    /// permission), and fail with an error naming what is missing.
    Verify,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        Self {
            url: SecretUrl::new("amqp://127.0.0.1:5672/%2f"),
            username: None,
            password_file: None,
            namespace: "slipway".to_owned(),
            prefetch: 1,
            retry_delays_ms: vec![1_000, 5_000, 30_000, 120_000, 600_000],
            max_retries: 8,
            delivery_limit: 5,
            drain_timeout_ms: 30_000,
            max_reconnect_delay_ms: 10_000,
            history: HistoryStreamSettings::default(),
            topology: TopologyMode::Declare,
        }
    }
}

impl BrokerSettings {
    /// The connection URI with credentials filled in from `username` and the password file.
    pub fn uri(&self) -> Result<AMQPUri, BrokerError> {
        let mut uri: AMQPUri = self.url.expose().parse().map_err(|reason: String| {
            BrokerError::Settings(format!(
                "broker.url {:?} is not an amqp:// URL: {reason}",
                self.url.redacted()
            ))
        })?;
        if let Some(username) = &self.username {
            uri.authority.userinfo.username = username.clone();
        }
        if uri.query.frame_max.is_none() {
            uri.query.frame_max = Some(DEFAULT_FRAME_MAX);
        }
        let password =
            slipway_common::config::read_secret("broker-password", self.password_file.as_deref())
                .map_err(|e| BrokerError::Settings(e.to_string()))?;
        if let Some(password) = password {
            uri.authority.userinfo.password = password;
        }
        Ok(uri)
    }

    /// The URL without its password, for logs and errors.
    pub fn redacted_url(&self) -> String {
        self.url.redacted()
    }

    /// The delay before retry number `retry` (1-based).
    pub fn retry_delay(&self, retry: u32) -> Duration {
        let index = usize::try_from(retry.saturating_sub(1)).unwrap_or(usize::MAX);
        let millis = self
            .retry_delays_ms
            .get(index)
            .or(self.retry_delays_ms.last())
            .copied()
            .unwrap_or(1_000);
        Duration::from_millis(millis)
    }

    /// Reject settings that cannot work, naming the key.
    pub fn validate(&self) -> Result<(), BrokerError> {
        let problem = if self.prefetch == 0 {
            Some("broker.prefetch must be at least 1, found 0")
        } else if self.retry_delays_ms.is_empty() {
            Some("broker.retry_delays_ms must list at least one delay")
        } else if self.retry_delays_ms.contains(&0) {
            Some("broker.retry_delays_ms must not contain 0")
        } else if self.delivery_limit == 0 {
            Some("broker.delivery_limit must be at least 1, found 0")
        } else if self.namespace.is_empty() || self.namespace.len() > 100 {
            Some("broker.namespace must be 1 to 100 characters")
        } else {
            None
        };
        match problem {
            Some(problem) => Err(BrokerError::Settings(problem.to_owned())),
            None => {
                self.history.validate()?;
                self.uri().map(drop)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_then_stay_at_the_last_tier() {
        let settings = BrokerSettings {
            retry_delays_ms: vec![100, 400],
            ..BrokerSettings::default()
        };
        assert_eq!(settings.retry_delay(1), Duration::from_millis(100));
        assert_eq!(settings.retry_delay(2), Duration::from_millis(400));
        assert_eq!(settings.retry_delay(7), Duration::from_millis(400));
    }

    #[test]
    fn password_file_and_username_override_the_url() {
        let dir =
            std::env::temp_dir().join(format!("slipway-broker-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        let settings = BrokerSettings {
            url: "amqp://127.0.0.1:5672/%2f".into(),
            username: Some("lint".into()),
            password_file: Some(file),
            ..BrokerSettings::default()
        };
        let uri = settings.uri().unwrap();
        assert_eq!(uri.authority.userinfo.username, "lint");
        assert_eq!(uri.authority.userinfo.password, "from-file");
    }

    #[test]
    fn connections_negotiate_16_kib_frames_unless_the_url_says_otherwise() {
        let default = BrokerSettings::default().uri().unwrap();
        assert_eq!(default.query.frame_max, Some(DEFAULT_FRAME_MAX));
        let chosen = BrokerSettings {
            url: "amqp://127.0.0.1:5672/%2f?frame_max=131072".into(),
            ..BrokerSettings::default()
        };
        assert_eq!(chosen.uri().unwrap().query.frame_max, Some(131_072));
    }

    #[test]
    fn invalid_settings_name_the_key() {
        for (settings, key) in [
            (
                BrokerSettings {
                    prefetch: 0,
                    ..Default::default()
                },
                "prefetch",
            ),
            (
                BrokerSettings {
                    retry_delays_ms: vec![],
                    ..Default::default()
                },
                "retry_delays_ms",
            ),
            (
                BrokerSettings {
                    url: "http://x".into(),
                    ..Default::default()
                },
                "broker.url",
            ),
            (
                BrokerSettings {
                    history: HistoryStreamSettings {
                        max_age: "0D".into(),
                        ..HistoryStreamSettings::default()
                    },
                    ..Default::default()
                },
                "broker.history.max_age",
            ),
        ] {
            let error = settings.validate().unwrap_err().to_string();
            assert!(error.contains(key), "{error}");
        }
        assert!(BrokerSettings::default().validate().is_ok());
    }
}

//! What `slipway-notify` reads from `/etc/slipway/notify.toml` and `SLIPWAY_*`: the broker and
//! telemetry sections every worker has, `[smtp]` (server, security, sender, credentials) and
//! `[notify]` (the owners' policies).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use slipway_broker::BrokerSettings;
use slipway_common::process::{WorkerConfig, WorkerKind};
use slipway_common::telemetry::TelemetrySettings;

/// The worker type: its queue is `<namespace>.notify`, its metrics are labelled
/// `worker="notify"`.
pub const WORKER: WorkerKind = WorkerKind::Notify;

/// Everything `slipway-notify` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// `[broker]`.
    pub broker: BrokerSettings,
    /// `[telemetry]`.
    pub telemetry: TelemetrySettings,
    /// `[smtp]`: where mails go.
    pub smtp: SmtpSettings,
    /// `[notify]`: who gets which mail.
    pub notify: NotifySettings,
}

/// Built-in defaults: `/metrics` on this worker's own port, and retries that outlast an SMTP
/// server's maintenance (a mail waits up to about a day and a half for the server to return).
impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            broker: BrokerSettings {
                retry_delays_ms: vec![5_000, 30_000, 120_000, 600_000],
                max_retries: 200,
                ..BrokerSettings::default()
            },
            telemetry: WORKER.default_telemetry(),
            smtp: SmtpSettings::default(),
            notify: NotifySettings::default(),
        }
    }
}

impl WorkerConfig for NotifyConfig {
    const KIND: WorkerKind = WORKER;

    fn telemetry(&self) -> &TelemetrySettings {
        &self.telemetry
    }

    fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.broker.drain_timeout_ms)
    }
}

/// How the connection to the SMTP server is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Security {
    /// Plain SMTP, upgraded with STARTTLS (refused if the server cannot): port 587.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS): port 465.
    Tls,
    /// No encryption: only to a server on 127.0.0.0/8 or ::1 (a local relay or sink).
    Plain,
}

/// `[smtp]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpSettings {
    /// The server's host name (checked against its TLS certificate).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// `starttls`, `tls` or `plain`.
    pub security: Security,
    /// The sender: `From:` and the envelope sender.
    pub from: String,
    /// User name for SMTP AUTH; none: no authentication.
    pub username: Option<String>,
    /// File holding the password (else the systemd credential `smtp-password`).
    pub password_file: Option<PathBuf>,
    /// Longest one SMTP conversation may take, in milliseconds.
    pub timeout_ms: u64,
    /// PEM file of CA certificates to trust, besides the system's, for `starttls` and `tls`: a
    /// server whose certificate an internal CA signed.
    pub ca_file: Option<PathBuf>,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        SmtpSettings {
            host: "127.0.0.1".to_owned(),
            port: 587,
            security: Security::Starttls,
            from: "slipway@localhost".to_owned(),
            username: None,
            password_file: None,
            timeout_ms: 30_000,
            ca_file: None,
        }
    }
}

/// One owner's policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OwnerPolicy {
    /// The owner's address (as the index's `notify-email` writes it).
    pub email: String,
    /// Only failures (lint, build, scan failures, skipped rebuilds); the weekly summary still
    /// comes.
    pub failures_only: Option<bool>,
    /// Images this owner is never mailed about (`app-id/job-id:tag`).
    pub muted_images: Vec<String>,
    /// One mail per window of this many milliseconds, grouping the window's events; 0: a mail
    /// per event.
    pub digest_window_ms: Option<u64>,
}

/// `[notify]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifySettings {
    /// Every owner's default: only failures.
    pub failures_only: bool,
    /// Images nobody is mailed about (`app-id/job-id:tag`).
    pub muted_images: Vec<String>,
    /// Every owner's default digest window, in milliseconds: one mail per owner and window
    /// grouping its events. 0 (the default): a mail per event. The weekly summary is always a
    /// mail of its own.
    pub digest_window_ms: u64,
    /// Most events listed in one digest (the rest are counted).
    pub max_digest_events: usize,
    /// How often the digest sender renews its lease, in milliseconds.
    pub leader_renew_ms: u64,
    /// Who hears about a rejected index commit (it names no owner).
    pub admin_emails: Vec<String>,
    /// Events older than this when they reach the worker are not mailed (a worker started after
    /// a long outage does not flood owners with old news), in milliseconds.
    pub max_event_age_ms: u64,
    /// Per-owner policies (`[[notify.owners]]`), over the defaults.
    pub owners: Vec<OwnerPolicy>,
    /// How long a redelivered event may wait for the history to be read (to see whether its
    /// mail went out before), in milliseconds.
    pub history_wait_ms: u64,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            failures_only: false,
            muted_images: Vec::new(),
            digest_window_ms: 0,
            max_digest_events: 200,
            leader_renew_ms: 60_000,
            admin_emails: Vec::new(),
            max_event_age_ms: 86_400_000,
            owners: Vec::new(),
            history_wait_ms: 30_000,
        }
    }
}

impl NotifyConfig {
    /// Checks the settings, naming the wrong one.
    pub fn validate(&self) -> Result<(), String> {
        if self.smtp.host.is_empty() {
            return Err("smtp.host must name the SMTP server".to_owned());
        }
        if !self.smtp.from.contains('@') {
            return Err(format!(
                "smtp.from must be an address, found {:?}",
                self.smtp.from
            ));
        }
        if self.smtp.security == Security::Plain && !is_loopback(&self.smtp.host) {
            return Err(format!(
                "smtp.security = \"plain\" sends mail (and any password) unencrypted: only to a server on this host (127.0.0.1, ::1, localhost), found {:?}; use starttls or tls",
                self.smtp.host
            ));
        }
        for owner in &self.notify.owners {
            if !owner.email.contains('@') {
                return Err(format!(
                    "notify.owners: email must be an address, found {:?}",
                    owner.email
                ));
            }
        }
        for (name, value) in [
            ("smtp.timeout_ms", self.smtp.timeout_ms),
            ("notify.max_event_age_ms", self.notify.max_event_age_ms),
            ("notify.history_wait_ms", self.notify.history_wait_ms),
            (
                "notify.max_digest_events",
                self.notify.max_digest_events as u64,
            ),
            ("notify.leader_renew_ms", self.notify.leader_renew_ms),
        ] {
            if value == 0 {
                return Err(format!("{name} must be greater than 0"));
            }
        }
        Ok(())
    }
}

/// Whether `host` names this machine.
pub fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_unchanged_print_as_toml_and_use_the_notify_metrics_port() {
        slipway_common::process::assert_worker_config_defaults::<NotifyConfig>();
    }

    #[test]
    fn plain_smtp_is_only_for_this_host() {
        let mut config = NotifyConfig::default();
        config.smtp.security = Security::Plain;
        config.smtp.host = "127.0.0.1".into();
        assert!(config.validate().is_ok());
        config.smtp.host = "mail.example.org".into();
        let error = config.validate().unwrap_err();
        assert!(error.contains("unencrypted"), "{error}");
        config.smtp.security = Security::Starttls;
        assert!(config.validate().is_ok());
        config.smtp.from = "nobody".into();
        assert!(config.validate().unwrap_err().contains("smtp.from"));
    }
}

//! Sending a [`Mail`] over SMTP with lettre: STARTTLS, TLS or plain (loopback only), SMTP AUTH
//! with the password from a file or systemd credential, a time limit per conversation. Errors
//! say whether trying later may help: a connection failure or a 4xx answer may pass, a 5xx
//! answer (an address the server refuses) will not.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::compose::Mail;
use crate::config::{Security, SmtpSettings};

/// A mail could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The settings or an address cannot work.
    #[error("{0}")]
    Invalid(String),
    /// The server refused for good (5xx).
    #[error("the SMTP server refused the mail: {0}")]
    Refused(String),
    /// Trying later may succeed: the server is unreachable, timed out, or answered 4xx.
    #[error("SMTP: {0}")]
    Transient(String),
}

impl SendError {
    /// Whether trying later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::Transient(_))
    }
}

/// An SMTP sender. Cloning it is cheap.
#[derive(Clone)]
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// `host:port`, for messages.
    server: String,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp")
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .finish()
    }
}

impl Smtp {
    /// A sender for `settings`; reads the password (never logged).
    pub fn new(settings: &SmtpSettings) -> Result<Self, SendError> {
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| SendError::Invalid(format!("smtp.from {:?}: {e}", settings.from)))?;
        let builder = match settings.security {
            Security::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host),
            Security::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host)
            }
            Security::Plain => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                &settings.host,
            )),
        }
        .map_err(|e| SendError::Invalid(format!("smtp.host {:?}: {e}", settings.host)))?;
        let mut builder = builder
            .port(settings.port)
            .timeout(Some(Duration::from_millis(settings.timeout_ms)));
        if let Some(username) = &settings.username {
            let password = slipway_common::config::read_secret(
                "smtp-password",
                settings.password_file.as_deref(),
            )
            .map_err(|e| SendError::Invalid(format!("smtp password: {e}")))?
            .ok_or_else(|| {
                SendError::Invalid(
                    "smtp.username is set but no password: set smtp.password_file or the systemd credential smtp-password"
                        .to_owned(),
                )
            })?;
            builder = builder.credentials(Credentials::new(username.clone(), password));
        }
        Ok(Smtp {
            transport: builder.build(),
            from,
            server: format!("{}:{}", settings.host, settings.port),
        })
    }

    /// Send `mail` (a text and an HTML part, its own `Message-ID`).
    pub async fn send(&self, mail: &Mail) -> Result<(), SendError> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|e| SendError::Refused(format!("recipient {:?}: {e}", mail.to)))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .message_id(Some(mail.message_id.clone()))
            .multipart(MultiPart::alternative_plain_html(
                mail.text.clone(),
                mail.html.clone(),
            ))
            .map_err(|e| SendError::Invalid(format!("cannot build the mail: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(error) if error.is_permanent() => Err(SendError::Refused(error.to_string())),
            Err(error) => Err(SendError::Transient(format!("{}: {error}", self.server))),
        }
    }
}

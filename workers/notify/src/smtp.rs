//! Sending a [`Mail`] over SMTP with lettre: STARTTLS, TLS or plain (loopback only), SMTP AUTH
//! with the password from a file or systemd credential, a time limit per conversation. Errors
//! say whether trying later may help: a connection failure or a 4xx answer may pass, a 5xx
//! answer (an address the server refuses) will not.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
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

/// What starts a certificate in a PEM file.
const CERTIFICATE_PEM: &[u8] = b"-----BEGIN CERTIFICATE-----";

/// TLS with the server's certificate checked against the system's roots and `ca_file`'s.
fn tls_parameters(settings: &SmtpSettings) -> Result<TlsParameters, SendError> {
    let mut builder = TlsParameters::builder(settings.host.clone());
    if let Some(path) = &settings.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| SendError::Invalid(format!("smtp.ca_file {}: {e}", path.display())))?;
        // lettre takes a file without any certificate as an empty list: say so instead.
        if !pem
            .windows(CERTIFICATE_PEM.len())
            .any(|window| window == CERTIFICATE_PEM)
        {
            return Err(SendError::Invalid(format!(
                "smtp.ca_file {}: holds no PEM certificate",
                path.display()
            )));
        }
        let certificate = Certificate::from_pem(&pem).map_err(|e| {
            SendError::Invalid(format!(
                "smtp.ca_file {}: not PEM certificates: {e}",
                path.display()
            ))
        })?;
        builder = builder.add_root_certificate(certificate);
    }
    builder
        .build_rustls()
        .map_err(|e| SendError::Invalid(format!("TLS for {:?}: {e}", settings.host)))
}

/// An SMTP sender. Cloning it is cheap.
#[derive(Clone)]
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// `host:port`, for messages.
    server: String,
    /// The longest one conversation may take.
    timeout: Duration,
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
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host);
        let builder = match settings.security {
            Security::Tls => builder.tls(Tls::Wrapper(tls_parameters(settings)?)),
            Security::Starttls => builder.tls(Tls::Required(tls_parameters(settings)?)),
            Security::Plain => builder,
        };
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
            timeout: Duration::from_millis(settings.timeout_ms),
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
        // lettre's timeout covers each command's answer but not the server's greeting: a server
        // that accepts the connection and says nothing would hold the send until it hangs up.
        let sent = tokio::time::timeout(self.timeout, self.transport.send(message)).await;
        let Ok(sent) = sent else {
            return Err(SendError::Transient(format!(
                "{}: no complete SMTP conversation within {} ms",
                self.server,
                self.timeout.as_millis()
            )));
        };
        match sent {
            Ok(_) => Ok(()),
            Err(error) if error.is_permanent() => Err(SendError::Refused(error.to_string())),
            Err(error) => Err(SendError::Transient(format!("{}: {error}", self.server))),
        }
    }
}

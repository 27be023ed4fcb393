//! The notify worker's wiring: a consumer of `<namespace>.notify` (any number of instances
//! compete for it) and, in every instance, a follower of the history that folds the
//! `mail.sent` records into [`SentMails`].
//!
//! Per event: the policy decides which mails it calls for ([`crate::policy`]); a mail whose
//! `Message-ID` the history records as sent is not sent again; the others go to the SMTP server,
//! and each one it accepts is recorded by a `mail.sent` event — published (confirmed) by the
//! runner before the event is acked. An unreachable server or a 4xx answer retries the event
//! with the broker's delays; a mail refused for good (5xx) is logged and counted, not retried.
//!
//! Why a mail is not sent twice: a first delivery of an event was never handled before, so its
//! mails were not sent. A redelivery or a retry may follow a send: the worker first waits until
//! its view has folded the history up to its tail (the `mail.sent` of an earlier attempt, by
//! whichever instance, is recorded before that attempt's ack), then skips the mails it finds.
//! The window left: a crash after the server accepted a mail and before its `mail.sent` was
//! confirmed (one SMTP response plus one confirmed publish, milliseconds); the mail's
//! `Message-ID` is then the same, which lets mail clients fold the two.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use slipway_broker::follower::{Folded, HistoryView};
use slipway_broker::{BrokerSettings, Consumer, Job, Outcome, Outlet, Topology};
use slipway_common::message::MailSent;
use slipway_common::{Envelope, Message};
use tokio_util::sync::CancellationToken;

use crate::config::{NotifyConfig, WORKER};
use crate::policy::{self, Policies};
use crate::smtp::{SendError, Smtp};
use crate::state::SentMails;
use crate::telemetry;

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// `[smtp]` or `[notify]` is unusable.
    #[error("invalid settings: {0}")]
    Settings(String),
    /// The broker failed for good.
    #[error(transparent)]
    Broker(#[from] slipway_broker::BrokerError),
}

/// The view of the mails sent, shared by the consumer's jobs.
pub type View = HistoryView<SentMails>;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// Handles the events of the notify queue.
pub struct NotifyHandler {
    broker: BrokerSettings,
    policies: Policies,
    smtp: Smtp,
    view: Arc<View>,
    /// Publishes the `mail.sent` of mails sent by an attempt that then retries.
    outlet: Outlet,
    history_wait: Duration,
}

impl NotifyHandler {
    /// A handler for `config`, reading what was sent from `view`.
    pub fn new(config: &NotifyConfig, view: Arc<View>) -> Result<Self, WorkerError> {
        config.validate().map_err(WorkerError::Settings)?;
        let smtp = Smtp::new(&config.smtp).map_err(|e| WorkerError::Settings(e.to_string()))?;
        Ok(NotifyHandler {
            broker: config.broker.clone(),
            policies: Policies::new(&config.notify),
            smtp,
            view,
            outlet: Outlet::new(&config.broker, "slipway-notify-records"),
            history_wait: Duration::from_millis(config.notify.history_wait_ms),
        })
    }

    /// Mails what `job` calls for, once.
    pub async fn handle(&self, job: &Job) -> Outcome {
        let event = &job.envelope;
        let job_id = event.job_id;
        let mails = match policy::mails(event, &self.policies, now_ms()) {
            Ok(mails) => mails,
            Err(reason) => {
                telemetry::suppressed(job_id, event.kind().as_str(), reason);
                return Outcome::Ack(Vec::new());
            }
        };
        if job.redelivered || job.attempt > 0 {
            // An earlier attempt may have sent some of these: read the history to its tail.
            let fenced = tokio::time::timeout(
                self.history_wait,
                self.view.fence(&self.broker, "slipway-notify-fence"),
            )
            .await;
            if fenced.is_err() {
                return Outcome::Retry(
                    "the history could not be read to see which mails went out already".into(),
                );
            }
        }
        let mut records = Vec::new();
        for mail in &mails {
            if self.view.read(|sent| sent.was_sent(&mail.message_id)) {
                telemetry::duplicate(job_id, &mail.message_id);
                continue;
            }
            match self.smtp.send(mail).await {
                Ok(()) => {
                    telemetry::sent(job_id, &mail.message_id, &mail.subject);
                    records.push(event.follow_up(Message::MailSent(MailSent {
                        message_id: mail.message_id.clone(),
                        to: mail.to.clone(),
                        subject: mail.subject.clone(),
                        events: mail.events.iter().map(ToString::to_string).collect(),
                    })));
                }
                Err(SendError::Refused(error)) => {
                    telemetry::failed(job_id, &mail.message_id, &error);
                }
                Err(error) => {
                    telemetry::retried(job_id, &error.to_string());
                    if !records.is_empty()
                        && let Err(publish) = self.outlet.publish(&records).await
                    {
                        tracing::warn!(%job_id, error = %publish, "cannot record the mails sent before the failure");
                    }
                    return Outcome::Retry(error.to_string());
                }
            }
        }
        Outcome::Ack(records)
    }
}

/// The follower's report on each history entry.
fn observe_fold(sent: &SentMails, folded: Folded) {
    if folded == Folded::CaughtUp {
        tracing::info!(mails = sent.len(), "caught up with the history");
    }
}

/// Runs the notify worker until `shutdown` is cancelled.
pub async fn run(config: NotifyConfig, shutdown: CancellationToken) -> Result<(), WorkerError> {
    telemetry::register_metrics();
    config.broker.validate()?;
    let view = View::new(SentMails::default());
    let handler = Arc::new(NotifyHandler::new(&config, Arc::clone(&view))?);
    let follower = tokio::spawn(Arc::clone(&view).follow(
        config.broker.clone(),
        "slipway-notify-follower".to_owned(),
        shutdown.clone(),
        observe_fold,
    ));
    let topology = Topology::pipeline(&config.broker);
    let for_exit = Arc::clone(&handler);
    let handle = move |job: Job| {
        let handler = Arc::clone(&handler);
        async move { handler.handle(&job).await }
    };
    let result = Consumer::new(WORKER.into(), config.broker, topology, handle)
        .run(shutdown.clone())
        .await;
    shutdown.cancel();
    let _ = follower.await;
    for_exit.outlet.close().await;
    result?;
    Ok(())
}

/// `event`'s mails as [`policy::mails`] decides them now (for tests and tools).
pub fn mails_for(event: &Envelope, config: &NotifyConfig) -> Vec<crate::compose::Mail> {
    policy::mails(event, &Policies::new(&config.notify), now_ms()).unwrap_or_default()
}

//! The notify worker's wiring: a consumer of `<namespace>.notify` (any number of instances
//! compete for it); in every instance, a follower of the history that folds the `mail.sent`
//! records and the owners' digests into [`NotifyState`]; and a candidacy in the leader election
//! ("notify"): the leader sends each digest when its window ends.
//!
//! Per event: the policy decides which mails it calls for ([`crate::policy`]); a mail whose
//! `Message-ID` the history records as sent is not sent again; the others go to the SMTP server,
//! and each one it accepts is recorded by a `mail.sent` event — published (confirmed) by the
//! runner before the event is acked. An unreachable server or a 4xx answer retries the event
//! with the broker's delays; a mail refused for good (5xx) is logged and counted, not retried.
//!
//! Why a mail is not sent twice: before sending, the worker skips every mail whose `Message-ID`
//! its view of the history records — a view that has read the whole history (an instance that
//! just started waits for that). A redelivery or a retry may follow a send moments earlier: for
//! those the worker first waits until its view has folded the history up to its tail (the
//! `mail.sent` of an earlier attempt, by whichever instance, is recorded before that attempt's
//! ack). The windows left: a crash after the server accepted a mail and before its `mail.sent`
//! was confirmed (one SMTP response plus one confirmed publish, milliseconds), and the same event
//! published again within the milliseconds it takes a record to reach another instance's view;
//! the mail's `Message-ID` is then the same, which lets mail clients fold the two.

use std::sync::Arc;
use std::time::Duration;

use slipway_broker::follower::{Folded, HistoryView};
use slipway_broker::{
    BrokerSettings, Consumer, Job, LeaderElection, LeaderTerm, Outcome, Outlet, Topology,
};
use slipway_common::message::MailSent;
use slipway_common::{Envelope, Message, Timestamp};
use tokio_util::sync::CancellationToken;

use crate::config::{NotifyConfig, WORKER};
use crate::policy::{self, Policies};
use crate::smtp::{SendError, Smtp};
use crate::state::NotifyState;
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

/// The view of the mails sent and the digests gathering, shared by the consumer's jobs and the
/// digest sender.
pub type View = HistoryView<NotifyState>;

/// The view for `config`'s policies.
pub fn new_view(config: &NotifyConfig) -> Arc<View> {
    View::new(NotifyState::new(
        Policies::new(&config.notify),
        config.notify.max_digest_events,
    ))
}

/// A digest the server did not take is tried again after this long.
const DIGEST_RETRY: Duration = Duration::from_secs(10);

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
        let mails = match policy::mails(event, &self.policies, Timestamp::now().unix_millis()) {
            Ok(mails) => mails,
            Err(reason) => {
                telemetry::suppressed(job_id, event.kind().as_str(), reason);
                return Outcome::Ack(Vec::new());
            }
        };
        // What was sent is known only to a view that has read the history: an instance that
        // just started waits for that (a replayed event must find its record). An earlier
        // attempt of this very event may have sent some of these moments ago: then the view
        // reads the history up to its tail first.
        let ready = if job.redelivered || job.attempt > 0 {
            tokio::time::timeout(
                self.history_wait,
                self.view.fence(&self.broker, "slipway-notify-fence"),
            )
            .await
        } else {
            tokio::time::timeout(self.history_wait, self.view.wait_caught_up()).await
        };
        if ready.is_err() {
            return Outcome::Retry(
                "the history could not be read to see which mails went out already".into(),
            );
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
fn observe_fold(state: &NotifyState, folded: Folded) {
    if folded == Folded::CaughtUp {
        tracing::info!(mails = state.sent_count(), "caught up with the history");
    }
}

impl NotifyHandler {
    /// One term of the digest sender: each digest whose window ended goes out once, then
    /// `mail.sent` records it (which removes it from the view).
    pub async fn send_digests(&self, term: LeaderTerm) {
        let _leading = telemetry::LeadingTerm::begin(term.number);
        let token = term.token.clone();
        tokio::select! {
            () = token.cancelled() => return,
            () = self.view.fence(&self.broker, "slipway-notify-fence") => {}
        }
        let mut sent: std::collections::HashMap<String, std::time::Instant> =
            std::collections::HashMap::new();
        let mut retry_at: std::collections::HashMap<String, std::time::Instant> =
            std::collections::HashMap::new();
        loop {
            let now = Timestamp::now().unix_millis();
            self.view.update(|state| state.expire(now));
            let due = self.view.read(|state| state.due_digests(now));
            let clock = std::time::Instant::now();
            sent.retain(|_, at| clock.duration_since(*at) < Duration::from_secs(60));
            retry_at.retain(|_, at| *at > clock);
            for mail in due {
                if sent.contains_key(&mail.message_id) || retry_at.contains_key(&mail.message_id) {
                    continue;
                }
                if self.view.read(|state| state.was_sent(&mail.message_id)) {
                    continue;
                }
                let job = slipway_common::JobId::derived(mail.message_id.as_bytes());
                match self.smtp.send(&mail).await {
                    Ok(()) => {
                        telemetry::sent(job, &mail.message_id, &mail.subject);
                        let record = Envelope::for_job(
                            job,
                            slipway_common::Cause::Schedule,
                            Message::MailSent(MailSent {
                                message_id: mail.message_id.clone(),
                                to: mail.to.clone(),
                                subject: mail.subject.clone(),
                                events: mail.events.iter().map(ToString::to_string).collect(),
                            }),
                        );
                        if let Err(error) = self.outlet.publish(std::slice::from_ref(&record)).await
                        {
                            tracing::warn!(%error, "cannot record a digest sent; it may be sent again");
                        }
                        sent.insert(mail.message_id, clock);
                    }
                    Err(SendError::Refused(error)) => {
                        telemetry::failed(job, &mail.message_id, &error);
                        // Refused for good: recorded as handled, so it is not tried forever.
                        sent.insert(mail.message_id, clock);
                    }
                    Err(error) => {
                        telemetry::retried(job, &error.to_string());
                        retry_at.insert(mail.message_id, clock + DIGEST_RETRY);
                    }
                }
            }
            let wake = self
                .view
                .read(NotifyState::next_digest_end)
                .map_or(Duration::from_secs(60), |end| {
                    Duration::from_millis(end.saturating_sub(Timestamp::now().unix_millis()))
                })
                .clamp(Duration::from_millis(50), Duration::from_secs(5));
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(wake) => {}
            }
        }
    }
}

/// Runs the notify worker until `shutdown` is cancelled.
pub async fn run(config: NotifyConfig, shutdown: CancellationToken) -> Result<(), WorkerError> {
    telemetry::register_metrics();
    config.broker.validate()?;
    let view = new_view(&config);
    let handler = Arc::new(NotifyHandler::new(&config, Arc::clone(&view))?);
    let election = LeaderElection::new(&config.broker, "notify")
        .with_renew_interval(Duration::from_millis(config.notify.leader_renew_ms));
    let digests = tokio::spawn({
        let handler = Arc::clone(&handler);
        let shutdown = shutdown.clone();
        async move {
            election
                .run(shutdown, |term| handler.send_digests(term))
                .await
        }
    });
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
    let elected = digests.await;
    for_exit.outlet.close().await;
    result?;
    if let Ok(Err(error)) = elected {
        return Err(error.into());
    }
    Ok(())
}

/// `event`'s mails as [`policy::mails`] decides them now (for tests and tools).
pub fn mails_for(event: &Envelope, config: &NotifyConfig) -> Vec<crate::compose::Mail> {
    policy::mails(
        event,
        &Policies::new(&config.notify),
        Timestamp::now().unix_millis(),
    )
    .unwrap_or_default()
}

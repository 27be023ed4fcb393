//! The notify worker against the real RabbitMQ and a real SMTP server on 127.0.0.1 (aiosmtpd,
//! `slipway_tests::smtp`): mails reach their owners with a text and an HTML part, by policy; a
//! replayed event sends no second mail; an SMTP server that is down, then back, gets the mail
//! once; a retry after a partial send (one recipient deferred with 451) does not send the first
//! mail again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use slipway_broker::history::HistoryQuery;
use slipway_broker::{BrokerSettings, Job, LeaderElection, Topology};
use slipway_common::index::Entry;
use slipway_common::index::test_support::sample_entry;
use slipway_common::message::test_support::sample_digest;
use slipway_common::message::{
    BuildFailed, BuildStage, BuildSucceeded, CommitSha, ImageSummary, IndexProblemAt,
    IndexRejected, Level, LintFailed, LintFinding, ScanCompleted, SummaryReady,
};
use slipway_common::{Cause, Envelope, ImageRef, Kind, Message};
use slipway_notify::config::{NotifyConfig, OwnerPolicy, Security, SmtpSettings};
use slipway_notify::worker::NotifyHandler;
use slipway_tests::smtp::{Received, SmtpSink};
use slipway_tests::{RunningWorker, TestBus, eventually, metric_value, test_settings};
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(60);

struct Rig {
    bus: TestBus,
    worker: RunningWorker,
    follower_stop: CancellationToken,
    digests: tokio::task::JoinHandle<()>,
}

impl Rig {
    async fn start(
        settings: BrokerSettings,
        sink: &SmtpSink,
        adjust: impl FnOnce(&mut NotifyConfig),
    ) -> Rig {
        let bus = TestBus::start(settings.clone(), Topology::pipeline(&settings)).await;
        let mut config = NotifyConfig {
            broker: settings.clone(),
            smtp: SmtpSettings {
                host: "127.0.0.1".into(),
                port: sink.port,
                security: Security::Plain,
                from: "slipway@example.org".into(),
                timeout_ms: 5_000,
                ..SmtpSettings::default()
            },
            ..NotifyConfig::default()
        };
        config.notify.admin_emails = vec!["admin@example.org".into()];
        adjust(&mut config);
        let view = slipway_notify::worker::new_view(&config);
        let follower_stop = CancellationToken::new();
        tokio::spawn(Arc::clone(&view).follow(
            settings,
            "slipway-test-notify-follower".into(),
            follower_stop.clone(),
            |_, _| {},
        ));
        let handler = Arc::new(NotifyHandler::new(&config, view).expect("a handler"));
        // The digest sender, as the binary runs it: one leader among the instances.
        let digests = tokio::spawn({
            let handler = Arc::clone(&handler);
            let stop = follower_stop.clone();
            let election = LeaderElection::new(&config.broker, "notify")
                .with_renew_interval(Duration::from_secs(5));
            async move {
                let _ = election.run(stop, |term| handler.send_digests(term)).await;
            }
        });
        let worker = bus.spawn_worker("notify", move |job: Job| {
            let handler = Arc::clone(&handler);
            async move { handler.handle(&job).await }
        });
        Rig {
            bus,
            worker,
            follower_stop,
            digests,
        }
    }

    async fn publish(&self, envelope: &Envelope) {
        self.bus.publisher.publish(envelope).await.expect("publish");
    }

    async fn stop(self) {
        self.worker.stop().await.expect("worker stops");
        self.follower_stop.cancel();
        let _ = self.digests.await;
        self.bus.cleanup().await;
    }
}

fn entry(job: &str, owner: &str) -> Entry {
    Entry {
        app_id: "team".into(),
        job_id: job.into(),
        desired_tag: "1".into(),
        notify_email: Some(owner.into()),
        rebuild_schedule: None,
        ..sample_entry()
    }
}

fn commit() -> CommitSha {
    CommitSha::try_from("ab".repeat(20)).unwrap()
}

fn lint_failed(owner: &str) -> Envelope {
    Envelope::new_job(
        Cause::GitChange,
        Message::LintFailed(LintFailed {
            entry: entry("app", owner),
            commit: Some(commit()),
            findings: vec![LintFinding {
                line: 1,
                column: 1,
                code: "DL3006".into(),
                level: Level::Warning,
                message: "Always tag the version of an image explicitly <script>alert(1)</script>"
                    .into(),
            }],
            error: None,
        }),
    )
}

fn build_failed(job: &str, owner: &str) -> Envelope {
    Envelope::new_job(
        Cause::ParentRebuilt("centos/centos:7".into()),
        Message::BuildFailed(BuildFailed {
            entry: entry(job, owner),
            commit: commit(),
            stage: BuildStage::Build,
            error: "the build failed at Step 2/3 : RUN make".into(),
            log_tail: vec!["make: *** No rule to make target 'all'.  Stop.".into()],
        }),
    )
}

fn subjects(received: &[Received]) -> Vec<(String, String)> {
    let mut subjects: Vec<(String, String)> = received
        .iter()
        .map(|r| (r.rcpt_to.join(","), r.header("Subject").unwrap_or_default()))
        .collect();
    subjects.sort();
    subjects
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mails_reach_their_owners_with_both_parts_by_policy_and_a_replay_sends_none() {
    let sink = SmtpSink::start();
    let rig = Rig::start(test_settings("notify-mails"), &sink, |config| {
        config.notify.owners = vec![
            OwnerPolicy {
                email: "quiet@example.org".into(),
                failures_only: Some(true),
                muted_images: Vec::new(),
                digest_window_ms: None,
            },
            OwnerPolicy {
                email: "muter@example.org".into(),
                failures_only: None,
                muted_images: vec!["team/noisy:1".into()],
                digest_window_ms: None,
            },
        ];
    })
    .await;

    let lint = lint_failed("dev@example.org");
    rig.publish(&lint).await;
    rig.publish(&build_failed("app", "dev@example.org")).await;
    // A success for an owner who wants failures only, and a muted image: no mail.
    let quiet = entry("calm", "quiet@example.org");
    rig.publish(&Envelope::new_job(
        Cause::User,
        Message::BuildSucceeded(BuildSucceeded {
            image: quiet.image().in_registry("127.0.0.1:5000").unwrap(),
            entry: quiet,
            commit: commit(),
            digest: sample_digest("cd"),
            content_key: "key".into(),
            parent_digests: BTreeMap::new(),
            duration_ms: 1_200,
            record: None,
        }),
    ))
    .await;
    rig.publish(&Envelope::new_job(
        Cause::Schedule,
        Message::ScanCompleted(ScanCompleted {
            image: ImageRef::parse("127.0.0.1:5000/team/noisy:1").unwrap(),
            digest: sample_digest("cd"),
            counts: [("os-updates".to_owned(), 3)].into_iter().collect(),
            notify_email: Some("muter@example.org".into()),
        }),
    ))
    .await;
    rig.publish(&Envelope::new_job(
        Cause::IndexChange,
        Message::IndexRejected(IndexRejected {
            git_url: "https://git.example.org/index".into(),
            git_branch: "main".into(),
            commit: commit(),
            problems: vec![IndexProblemAt {
                file: "index.d/team.yaml".into(),
                line: Some(7),
                message: "a dependency cycle: team/a:1 → team/b:1 → team/a:1".into(),
            }],
            in_force: None,
        }),
    ))
    .await;
    rig.publish(&Envelope::new_job(
        Cause::Schedule,
        Message::SummaryReady(SummaryReady {
            notify_email: "dev@example.org".into(),
            period_start: 1_796_000_000_000,
            period_end: 1_796_604_800_000,
            images: vec![ImageSummary {
                image: ImageRef::parse("127.0.0.1:5000/team/app:1").unwrap(),
                digest: Some(sample_digest("cd")),
                scanned_at: Some(1_796_100_000_000),
                counts: [("os-updates".to_owned(), 2)].into_iter().collect(),
            }],
            omitted: 0,
        }),
    ))
    .await;

    let received = sink.wait_for(4, DEADLINE).await;
    assert_eq!(
        subjects(&received),
        [
            (
                "admin@example.org".to_owned(),
                "[slipway] the index: rejected (index change)".to_owned()
            ),
            (
                "dev@example.org".to_owned(),
                "[slipway] team/app:1: build failed (parent rebuilt: centos/centos:7)".to_owned()
            ),
            (
                "dev@example.org".to_owned(),
                "[slipway] team/app:1: lint failed (git push)".to_owned()
            ),
            (
                "dev@example.org".to_owned(),
                "[slipway] weekly summary: 1 image(s), 1 with updates".to_owned()
            ),
        ]
    );
    let lint_mail = received
        .iter()
        .find(|r| {
            r.header("Subject")
                .is_some_and(|s| s.contains("lint failed"))
        })
        .unwrap();
    assert_eq!(
        lint_mail.header("Message-ID").as_deref(),
        Some(format!("<{}@slipway>", lint.id).as_str())
    );
    assert_eq!(lint_mail.mail_from, "slipway@example.org");
    let content_type = lint_mail.header("Content-Type").unwrap_or_default();
    assert!(
        content_type.starts_with("multipart/alternative"),
        "{content_type}"
    );
    let text = lint_mail.part("text/plain").expect("a text part");
    let html = lint_mail.part("text/html").expect("an HTML part");
    for body in [&text, &html] {
        assert!(
            body.contains("https://github.com/hadolint/hadolint/wiki/DL3006"),
            "{body}"
        );
        assert!(
            body.contains(&format!("slipway job {}", lint.job_id)),
            "{body}"
        );
        assert!(body.contains("line 1: DL3006 warning"), "{body}");
    }
    assert!(
        text.contains("Django/centos7/Dockerfile at commit"),
        "{text}"
    );
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !html.contains("<script>"),
        "the HTML part escapes what came from outside: {html}"
    );
    // Each mail is recorded in the history.
    let records = rig
        .bus
        .wait_for_history(HistoryQuery::all().kinds([Kind::MailSent]), 4, DEADLINE)
        .await;
    assert_eq!(records.len(), 4);

    // The same event again (a replay), then a new one: only the new one is mailed.
    rig.publish(&lint).await;
    rig.publish(&build_failed("other", "dev@example.org")).await;
    let received = sink.wait_for(5, DEADLINE).await;
    assert_eq!(received.len(), 5, "{:?}", subjects(&received));
    assert!(
        metric_value("slipway_notify_mails_total{outcome=\"duplicate\"}").unwrap_or(0.0) >= 1.0
    );
    assert!(
        metric_value("slipway_notify_suppressed_total{reason=\"failures-only\"}").unwrap_or(0.0)
            >= 1.0
    );
    assert!(
        metric_value("slipway_notify_suppressed_total{reason=\"muted\"}").unwrap_or(0.0) >= 1.0
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smtp_server_down_then_back_gets_the_mail_once() {
    let mut sink = SmtpSink::start();
    sink.stop();
    let settings = BrokerSettings {
        retry_delays_ms: vec![300],
        max_retries: 100,
        ..test_settings("notify-down")
    };
    let rig = Rig::start(settings, &sink, |_| {}).await;
    let before = metric_value("slipway_notify_mails_total{outcome=\"retried\"}").unwrap_or(0.0);
    rig.publish(&build_failed("app", "dev@example.org")).await;
    eventually(
        "the send failed and the event is retried",
        DEADLINE,
        || async {
            metric_value("slipway_notify_mails_total{outcome=\"retried\"}").unwrap_or(0.0) > before
        },
    )
    .await;
    sink.restart();
    let received = sink.wait_for(1, DEADLINE).await;
    assert_eq!(received[0].rcpt_to, ["dev@example.org"]);
    // A marker after it: once it is mailed, the first one was not mailed twice.
    rig.publish(&build_failed("marker", "dev@example.org"))
        .await;
    let received = sink.wait_for(2, DEADLINE).await;
    assert_eq!(received.len(), 2, "{:?}", subjects(&received));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_partial_send_does_not_send_the_first_mail_again() {
    let sink = SmtpSink::start();
    sink.defer_once(&["second@example.org"]);
    let settings = BrokerSettings {
        retry_delays_ms: vec![300],
        max_retries: 10,
        ..test_settings("notify-partial")
    };
    let rig = Rig::start(settings, &sink, |config| {
        config.notify.admin_emails = vec!["first@example.org".into(), "second@example.org".into()];
    })
    .await;
    rig.publish(&Envelope::new_job(
        Cause::IndexChange,
        Message::IndexRejected(IndexRejected {
            git_url: "https://git.example.org/index".into(),
            git_branch: "main".into(),
            commit: commit(),
            problems: Vec::new(),
            in_force: None,
        }),
    ))
    .await;
    let received = sink.wait_for(2, DEADLINE).await;
    rig.publish(&build_failed("marker", "dev@example.org"))
        .await;
    let received_after = sink.wait_for(3, DEADLINE).await;
    assert_eq!(received_after.len(), 3);
    let mut recipients: Vec<String> = received.iter().map(|r| r.rcpt_to.join(",")).collect();
    recipients.sort();
    assert_eq!(recipients, ["first@example.org", "second@example.org"]);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_with_a_digest_window_gets_one_mail_per_window_naming_its_events() {
    let sink = SmtpSink::start();
    let window_ms = 2_000;
    let rig = Rig::start(test_settings("notify-digest"), &sink, |config| {
        config.notify.owners = vec![OwnerPolicy {
            email: "grouped@example.org".into(),
            failures_only: None,
            muted_images: Vec::new(),
            digest_window_ms: Some(window_ms),
        }];
    })
    .await;
    // Wait for a window to begin, so that the three events fall in one.
    let now = slipway_common::Timestamp::now().unix_millis();
    let next = (now / window_ms + 1) * window_ms;
    tokio::time::sleep(Duration::from_millis(next - now + 50)).await;
    let events: Vec<Envelope> = ["a", "b", "c"]
        .iter()
        .map(|job| build_failed(job, "grouped@example.org"))
        .collect();
    for event in &events {
        rig.publish(event).await;
    }
    // Someone without a digest gets a mail per event, at once.
    rig.publish(&build_failed("solo", "single@example.org"))
        .await;
    let received = sink.wait_for(2, DEADLINE).await;
    let digest = received
        .iter()
        .find(|r| r.rcpt_to == ["grouped@example.org"])
        .expect("the digest");
    let subject = digest.header("Subject").unwrap_or_default();
    assert_eq!(subject, "[slipway] 3 event(s), 3 failed");
    let text = digest.part("text/plain").expect("a text part");
    for job in ["team/a:1", "team/b:1", "team/c:1"] {
        assert!(text.contains(job), "{job} missing from {text}");
    }
    assert!(
        digest
            .header("Message-ID")
            .is_some_and(|id| id.starts_with("<digest.")),
        "{:?}",
        digest.header("Message-ID")
    );
    // It is recorded with the events it told of, and sent once: a later window's digest (one
    // more event) is the only other mail the owner gets.
    let records = rig
        .bus
        .wait_for_history(HistoryQuery::all().kinds([Kind::MailSent]), 2, DEADLINE)
        .await;
    let digest_record = records
        .iter()
        .find_map(|r| match &r.envelope.message {
            Message::MailSent(sent) if sent.to == "grouped@example.org" => Some(sent.clone()),
            _ => None,
        })
        .expect("the digest's record");
    let mut told: Vec<String> = digest_record.events.clone();
    told.sort();
    let mut expected: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
    expected.sort();
    assert_eq!(told, expected);
    rig.publish(&build_failed("d", "grouped@example.org")).await;
    let received = sink.wait_for(3, DEADLINE).await;
    let to_grouped: Vec<String> = received
        .iter()
        .filter(|r| r.rcpt_to == ["grouped@example.org"])
        .filter_map(|r| r.header("Subject"))
        .collect();
    assert_eq!(
        to_grouped,
        [
            "[slipway] 3 event(s), 3 failed",
            "[slipway] 1 event(s), 1 failed"
        ]
    );
    rig.stop().await;
}

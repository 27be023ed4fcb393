//! The SMTP sender over STARTTLS and TLS against a real server (aiosmtpd) whose certificate a
//! private CA signed: trusted through `smtp.ca_file`, a mail goes through either way; without it
//! the certificate is refused; and a server that offers no STARTTLS gets no mail in clear when
//! STARTTLS is configured; and a server that accepts a connection and then says nothing costs
//! one `smtp.timeout_ms`, not a hung worker.

use std::time::Duration;

use slipway_notify::compose::Mail;
use slipway_notify::config::{Security, SmtpSettings};
use slipway_notify::smtp::Smtp;
use slipway_tests::smtp::{SinkTls, SmtpSink, TestCertificates};

const DEADLINE: Duration = Duration::from_secs(30);

fn settings(sink: &SmtpSink, security: Security, ca: Option<&TestCertificates>) -> SmtpSettings {
    SmtpSettings {
        // The certificate names localhost: the name checked is the configured host.
        host: "localhost".into(),
        port: sink.port,
        security,
        from: "slipway@example.org".into(),
        timeout_ms: 10_000,
        ca_file: ca.map(|certificates| certificates.ca.clone()),
        ..SmtpSettings::default()
    }
}

fn mail(subject: &str) -> Mail {
    Mail {
        to: "owner@example.org".into(),
        subject: subject.into(),
        text: "text part".into(),
        html: "<p>html part</p>".into(),
        message_id: format!("<{subject}@slipway>"),
        events: Vec::new(),
        failure: false,
    }
}

#[tokio::test]
async fn mails_go_over_starttls_and_tls_to_a_server_the_ca_file_vouches_for() {
    let certificates = TestCertificates::new();
    for (tls, security) in [
        (SinkTls::Starttls, Security::Starttls),
        (SinkTls::Implicit, Security::Tls),
    ] {
        let sink = SmtpSink::start_with(tls, Some(&certificates));
        let trusted = Smtp::new(&settings(&sink, security, Some(&certificates))).expect("sender");
        let subject = format!("over-{tls:?}");
        trusted
            .send(&mail(&subject))
            .await
            .unwrap_or_else(|e| panic!("{tls:?}: {e}"));
        let received = sink.wait_for(1, DEADLINE).await;
        assert_eq!(
            received[0].header("Subject").as_deref(),
            Some(subject.as_str())
        );

        // The system's roots alone do not know the private CA: refused, and nothing sent.
        let untrusting = Smtp::new(&settings(&sink, security, None)).expect("sender");
        let error = untrusting
            .send(&mail("untrusted"))
            .await
            .expect_err("an unknown issuer is refused");
        assert!(
            error.to_string().to_lowercase().contains("certificate"),
            "{tls:?}: {error}"
        );
        assert_eq!(
            sink.received().len(),
            1,
            "{tls:?}: nothing more reached the server"
        );
    }
}

#[tokio::test]
async fn starttls_configured_sends_nothing_to_a_server_without_it() {
    let certificates = TestCertificates::new();
    let sink = SmtpSink::start();
    let sender =
        Smtp::new(&settings(&sink, Security::Starttls, Some(&certificates))).expect("sender");
    let error = sender
        .send(&mail("in-clear"))
        .await
        .expect_err("no STARTTLS offered: no mail");
    assert!(
        error.is_transient(),
        "a server that may be fixed: retried, {error}"
    );
    assert!(sink.received().is_empty(), "nothing went in clear");
}

#[tokio::test]
async fn a_missing_or_malformed_ca_file_is_a_clear_error() {
    let sink = SmtpSink::start();
    let mut missing = settings(&sink, Security::Starttls, None);
    missing.ca_file = Some("/nonexistent/ca.pem".into());
    let error = Smtp::new(&missing).expect_err("missing file");
    assert!(
        error
            .to_string()
            .contains("smtp.ca_file /nonexistent/ca.pem"),
        "{error}"
    );
    let dir = slipway_tests::TempDir::new("bad-ca");
    let mut garbage = settings(&sink, Security::Tls, None);
    garbage.ca_file = Some(dir.file("ca.pem", "not a certificate\n"));
    let error = Smtp::new(&garbage).expect_err("garbage");
    assert!(error.to_string().contains("smtp.ca_file"), "{error}");
}

#[tokio::test]
async fn a_server_that_never_answers_costs_one_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("address").port();
    // Accepts connections and holds them, silent.
    let held = std::thread::spawn(move || {
        let (connection, _) = listener.accept().expect("accept");
        std::thread::sleep(Duration::from_secs(10));
        drop(connection);
    });
    let sender = Smtp::new(&SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        security: Security::Plain,
        timeout_ms: 500,
        ..SmtpSettings::default()
    })
    .expect("sender");
    let started = std::time::Instant::now();
    let error = sender
        .send(&mail("stalled"))
        .await
        .expect_err("a silent server sends nothing");
    let took = started.elapsed();
    assert!(error.is_transient(), "tried again later: {error}");
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(5),
        "one timeout of 500 ms, took {took:?}: {error}"
    );
    drop(held);
}

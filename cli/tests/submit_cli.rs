//! `slipway submit` against a real RabbitMQ: an `index.d` directory validated as one index, JSON
//! on standard input (an array with an invalid entry, left out and named), `--format json`, and
//! exit 1 when nothing valid is left.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use slipway_broker::Topology;
use slipway_broker::history::HistoryQuery;
use slipway_common::{Kind, Message};
use slipway_tests::{AMQP_URL, TempDir, TestBus, test_settings};

mod common;

use common::{stderr, stdout};

/// `slipway submit ARGS` in `namespace`, with `input` on standard input.
fn submit(namespace: &str, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .arg("submit")
        .args(args)
        .env("SLIPWAY_BROKER__URL", AMQP_URL)
        .env("SLIPWAY_BROKER__NAMESPACE", namespace)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start slipway");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("slipway ran")
}

const ENTRY: &str = "    git-url: https://git.example.org/x.git\n    git-branch: main\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_or_json_on_stdin_is_submitted_and_invalid_entries_are_named() {
    let settings = test_settings("cli-submit");
    let namespace = settings.namespace.clone();
    let bus = TestBus::start(settings.clone(), Topology::pipeline(&settings)).await;

    let index = TempDir::new("submit-index");
    index.file(
        "index.d/team.yaml",
        &format!("Projects:\n  - id: 1\n    app-id: team\n    job-id: web\n{ENTRY}  - id: 2\n    app-id: team\n    job-id: api\n{ENTRY}"),
    );
    index.file(
        "index.d/ops.yaml",
        &format!("Projects:\n  - id: 1\n    app-id: ops\n    job-id: tools\n{ENTRY}"),
    );
    let dir = index.path().join("index.d");
    let output = submit(&namespace, &["--format", "json", dir.to_str().unwrap()], "");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let mut images: Vec<String> = stdout(&output)
        .lines()
        .map(|line| {
            let json: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            assert!(json["job_id"].as_str().is_some_and(|id| id.len() == 36));
            json["image"].as_str().unwrap().to_owned()
        })
        .collect();
    images.sort();
    assert_eq!(
        images,
        ["ops/tools:latest", "team/api:latest", "team/web:latest"]
    );

    let json = r#"[
        {"app-id": "team", "job-id": "cli", "git-url": "https://git.example.org/cli.git"},
        {"app-id": "team", "job-id": "broken", "git-url": "ftp://nope"}
    ]"#;
    let output = submit(&namespace, &["-"], json);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("build.requested  team/cli:latest"),
        "{}",
        stdout(&output)
    );
    assert!(
        stdout(&output).contains("submitted 1 job(s)"),
        "{}",
        stdout(&output)
    );
    assert!(stderr(&output).contains("entry 2"), "{}", stderr(&output));

    let requests = bus
        .wait_for_history(
            HistoryQuery::all().kinds([Kind::BuildRequested]),
            4,
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(requests.len(), 4);
    assert!(
        requests
            .iter()
            .all(|r| matches!(r.envelope.message, Message::BuildRequested(_)))
    );

    let none = submit(&namespace, &["-"], r#"{"app-id": "team"}"#);
    assert_eq!(none.status.code(), Some(1), "{}", stderr(&none));
    assert!(
        stderr(&none).contains("no valid entry in standard input"),
        "{}",
        stderr(&none)
    );
    let wrong_job = submit(&namespace, &["--job", "nope", dir.to_str().unwrap()], "");
    assert_eq!(wrong_job.status.code(), Some(1));
    bus.cleanup().await;
}

/// Standard input is read up to 4 MiB: 64 MiB piped in is refused at once, saying so, and
/// nothing is published.
#[test]
fn more_than_4_mib_on_stdin_is_refused_without_reading_it_all() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["submit", "-"])
        .env("SLIPWAY_BROKER__URL", AMQP_URL)
        .env("SLIPWAY_BROKER__NAMESPACE", "test.submit-limit.unused")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start slipway");
    let mut stdin = child.stdin.take().expect("stdin");
    // The writer stops with a broken pipe once slipway has stopped reading.
    let writer = std::thread::spawn(move || {
        let chunk = vec![b' '; 1 << 20];
        let mut written = 0_usize;
        for _ in 0..64 {
            if stdin.write_all(&chunk).is_err() {
                break;
            }
            written += chunk.len();
        }
        written
    });
    let started = std::time::Instant::now();
    let output = child.wait_with_output().expect("slipway ran");
    let written = writer.join().expect("writer");
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("standard input holds more than 4194304 bytes"),
        "{}",
        stderr(&output)
    );
    assert!(
        written < 64 << 20,
        "slipway stopped reading: {written} bytes taken"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

//! The `slipway-lint` binary as ops run it, against the real RabbitMQ started by the shared test
//! helper: configured only through `SLIPWAY_*` variables, it lints a job from a local git repository,
//! publishes `lint.passed` with the commit SHA, exports its lint metrics on `/metrics`, and exits 0
//! on SIGTERM; it shares one environment file with every other program on the host (their
//! variables are ignored), while a typo in its own sections stops it; `--print-config` prints
//! TOML without the broker password.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use slipway_broker::Topology;
use slipway_common::message::BuildRequested;
use slipway_common::{Cause, Envelope, Message};
use slipway_tests::git::LocalRepo;
use slipway_tests::{AMQP_URL, TempDir, TestBus, test_settings};
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(60);

/// What one `/etc/slipway/env` shared by every unit on a host holds besides the lint worker's own
/// variables: other workers' sections and the command line's single-underscore variables.
const OTHER_PROGRAMS_ENV: [(&str, &str); 5] = [
    ("SLIPWAY_OSV_DIR", "/var/lib/slipway/osv"),
    ("SLIPWAY_LINT_SHELLCHECK", "never"),
    ("SLIPWAY_SCAN__OSV_DIR", "/var/lib/slipway/osv"),
    ("SLIPWAY_REPORTS__MAX_AGE", "30D"),
    ("SLIPWAY_BUILD__WORK_DIR", "/var/lib/slipway/build"),
];

/// Kills the worker if the test fails before stopping it.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_lints_a_job_exports_metrics_and_stops_on_sigterm() {
    let settings = test_settings("lint-binary");
    let bus = TestBus::start(settings.clone(), Topology::pipeline(&settings)).await;
    let (tx, mut passed) = mpsc::unbounded_channel();
    let observer = bus.spawn_observer("build", tx);

    let repo = LocalRepo::new("binary");
    let sha = repo.commit(
        &[(
            "Dockerfile",
            "FROM debian:12.5\nRUN apt-get install -y curl\n",
        )],
        "a Dockerfile with warnings only",
    );
    let cache = TempDir::new("lint-binary-cache");
    let metrics_port = slipway_tests::free_port();
    let logs = TempDir::new("lint-binary-log");
    let log = logs.path().join("lint.log");
    let child = Command::new(env!("CARGO_BIN_EXE_slipway-lint"))
        // A test-run switch (`.ci/run` sets it), not configuration: the worker would refuse it as
        // an unknown `SLIPWAY_*` key.
        .env_remove(slipway_common::workspace::REQUIRE_SHARED_VAR)
        .env("SLIPWAY_BROKER__URL", AMQP_URL)
        .env("SLIPWAY_BROKER__NAMESPACE", &settings.namespace)
        .env("SLIPWAY_SOURCE__CACHE_DIR", cache.path())
        .env("SLIPWAY_SOURCE__ALLOW_FILE_URLS", "true")
        .env("SLIPWAY_LINT__SHELLCHECK", "never")
        .env(
            "SLIPWAY_TELEMETRY__METRICS_ADDR",
            format!("127.0.0.1:{metrics_port}"),
        )
        .env("SLIPWAY_TELEMETRY__LOG_FORMAT", "json")
        .envs(OTHER_PROGRAMS_ENV)
        .stdout(std::fs::File::create(&log).expect("log file"))
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start slipway-lint");
    let mut worker = Worker(child);

    let entry = repo.entry("slipway-test");
    let job = Envelope::new_job(
        Cause::User,
        Message::BuildRequested(BuildRequested {
            entry,
            commit: None,
        }),
    );
    bus.publisher.publish(&job).await.expect("publish");
    let started = Instant::now();
    let event = loop {
        if let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_millis(100), passed.recv()).await
        {
            break event;
        }
        if let Some(exit) = worker.0.try_wait().expect("wait") {
            panic!("slipway-lint exited early with {exit}");
        }
        assert!(
            started.elapsed() < DEADLINE,
            "no lint.passed before the deadline"
        );
    };
    assert_eq!(event.job_id, job.job_id);
    let Message::LintPassed(lint) = event.message else {
        panic!("warnings only: the default threshold (error) lets it pass")
    };
    assert_eq!(lint.commit.as_str(), sha);
    assert!(lint.findings.iter().any(|f| f.code == "DL3008"));

    // The job is counted once it is settled, just after lint.passed was confirmed: poll.
    let wanted = [
        "slipway_lint_duration_seconds_count{verdict=\"passed\"} 1",
        "slipway_lint_findings_total{code=\"DL3008\",level=\"warning\"} 1",
        "slipway_jobs_total{outcome=\"acked\",worker=\"lint\"} 1",
    ];
    let started = Instant::now();
    loop {
        let metrics = slipway_tests::scrape_metrics(metrics_port).unwrap_or_default();
        if wanted.iter().all(|line| metrics.contains(line)) {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "lint metrics missing from /metrics: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let status = Command::new("kill")
        .args(["-TERM", &worker.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = worker.0.try_wait().expect("wait") {
            break exit;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "slipway-lint did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(exit.code(), Some(0), "SIGTERM is a clean stop");
    // A clean stop logs no error (lapin's background close of a dropped channel raced the
    // connection's close: "invalid channel state: Closing" at every stop).
    let logged = std::fs::read_to_string(&log).expect("the log");
    let errors: Vec<&str> = logged
        .lines()
        .filter(|line| line.contains("\"level\":\"ERROR\""))
        .collect();
    assert!(
        errors.is_empty(),
        "errors logged by a clean stop: {errors:#?}"
    );
    observer.stop().await.expect("observer stops");
    bus.cleanup().await;
}

/// `slipway-lint --print-config` with `extra` environment variables on top of the shared ones.
fn print_config(extra: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_slipway-lint"))
        .arg("--print-config")
        .env(
            "SLIPWAY_BROKER__URL",
            "amqp://lint:hunter2@broker.example:5672/%2f",
        )
        .envs(OTHER_PROGRAMS_ENV)
        .envs(extra.iter().copied())
        .output()
        .expect("run slipway-lint --print-config")
}

#[test]
fn print_config_is_toml_without_the_password_and_other_programs_variables_are_ignored() {
    let output = print_config(&[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!stdout.contains("hunter2"), "{stdout}");
    let printed: toml::Table = stdout.parse().expect("TOML");
    assert_eq!(
        printed["broker"]["url"].as_str(),
        Some("amqp://lint:<redacted>@broker.example:5672/%2f")
    );
    assert_eq!(
        printed["telemetry"]["metrics_addr"].as_str(),
        Some("127.0.0.1:9464"),
        "the lint worker's own default port"
    );
    assert!(printed.get("scan").is_none() && printed.get("build").is_none());

    let off = print_config(&[("SLIPWAY_TELEMETRY__METRICS_ADDR", "")]);
    let printed: toml::Table = String::from_utf8_lossy(&off.stdout).parse().expect("TOML");
    assert_eq!(printed["telemetry"]["metrics_addr"].as_str(), Some(""));
}

#[test]
fn a_typo_in_its_own_section_stops_the_worker_naming_the_key() {
    let output = print_config(&[("SLIPWAY_LINT__SHELLCHEK", "never")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("shellchek"), "{stderr}");
}

/// Runs `slipway-lint` until it stops on its own (a startup error), metrics off.
fn failed_start(extra: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_slipway-lint"))
        .env_remove(slipway_common::workspace::REQUIRE_SHARED_VAR)
        .env("SLIPWAY_TELEMETRY__METRICS_ADDR", "")
        .env("SLIPWAY_BROKER__URL", AMQP_URL)
        .envs(extra.iter().copied())
        .stdout(Stdio::null())
        .output()
        .expect("run slipway-lint");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_startup_error_is_one_line_naming_each_cause_once() {
    let dir = TempDir::new("lint-binary-error");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").expect("write");
    let cache = file.join("cache");
    let (code, stderr) =
        failed_start(&[("SLIPWAY_SOURCE__CACHE_DIR", cache.to_str().expect("utf-8"))]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "slipway-lint: error: source cache: I/O error at {}: Not a directory (os error 20)\n",
            cache.display()
        )
    );

    let (code, stderr) = failed_start(&[("SLIPWAY_LINT__SHELLCHECK_MEMORY_MIB", "16")]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        stderr,
        "slipway-lint: error: invalid lint settings: lint.shellcheck_memory_mib must be at least \
         64 (ShellCheck cannot start with less), found 16\n"
    );
}

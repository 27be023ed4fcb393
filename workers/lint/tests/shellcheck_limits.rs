//! ShellCheck runs within its limits, with the real `shellcheck` program (Debian's) on the hostile
//! input of issue 13: a 20 KB `RUN` of 10,000 nested parentheses, which grows an unlimited
//! ShellCheck 0.9 past 3 GB and 30 s. Over its time or memory limit the run is stopped and the
//! lint fails with the reason; an ordinary Dockerfile is still checked under the default limits.

use std::time::{Duration, Instant};

use slipway_common::Message;
use slipway_common::index::test_support::sample_entry;
use slipway_common::message::test_support::sample_commit;
use slipway_lint::job::{LintJobSettings, lint_dockerfile};
use slipway_lint::lint::ShellChecker;
use slipway_lint::shellcheck::{ShellcheckLimits, ShellcheckProgram};

/// The hostile Dockerfile: `RUN ((((…true…))))`, 10,000 deep.
fn nested_parentheses() -> String {
    format!(
        "FROM debian:12\nRUN {}true{}\n",
        "(".repeat(10_000),
        ")".repeat(10_000)
    )
}

fn shellcheck(limits: ShellcheckLimits) -> ShellcheckProgram {
    ShellcheckProgram::find("shellcheck")
        .expect("shellcheck is installed (apt-get install shellcheck; deploy/dev-env.sh does)")
        .with_limits(limits)
}

/// Lints `text` as the worker does (default `[lint]` settings: threshold `error`) and returns
/// the `lint.failed` error, or panics when the lint passed.
fn failed_lint(text: &str, checker: &dyn ShellChecker) -> String {
    let entry = slipway_common::index::Entry {
        lint: Default::default(),
        ..sample_entry()
    };
    let (message, failures) = lint_dockerfile(
        &entry,
        &sample_commit(),
        "Dockerfile",
        text.as_bytes(),
        &LintJobSettings::default(),
        Some(checker),
    );
    let Message::LintFailed(failed) = message else {
        panic!("the lint passed: {failures:?}")
    };
    let sc0000: Vec<_> = failed
        .findings
        .iter()
        .filter(|f| f.code == "SC0000")
        .collect();
    assert_eq!(sc0000.len(), 1, "{:?}", failed.findings);
    assert_eq!(sc0000[0].line, 2, "at the RUN");
    failed.error.expect("lint.failed says why")
}

#[test]
fn a_runaway_shellcheck_is_stopped_at_its_time_limit_and_fails_the_lint() {
    let limits = ShellcheckLimits {
        time: Duration::from_secs(2),
        // Enough that memory is not what stops it within 2 s.
        memory_bytes: 3 * 1024 * 1024 * 1024,
        ..ShellcheckLimits::default()
    };
    let started = Instant::now();
    let error = failed_lint(&nested_parentheses(), &shellcheck(limits));
    let took = started.elapsed();
    assert!(
        error.contains("SC0000 error")
            && error.contains("did not finish within its time limit of 2s"),
        "{error}"
    );
    assert!(
        took < Duration::from_secs(10),
        "stopped at the 2 s limit, took {took:?}"
    );
}

#[test]
fn a_runaway_shellcheck_is_stopped_at_its_memory_limit_and_fails_the_lint() {
    let limits = ShellcheckLimits {
        time: Duration::from_secs(120),
        memory_bytes: 256 * 1024 * 1024,
        ..ShellcheckLimits::default()
    };
    let started = Instant::now();
    let error = failed_lint(&nested_parentheses(), &shellcheck(limits));
    assert!(
        error.contains("ran out of its memory limit of 256 MiB"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "stopped by memory, long before the time limit: {:?}",
        started.elapsed()
    );
}

#[test]
fn ordinary_scripts_are_checked_under_the_default_limits() {
    let checker = shellcheck(ShellcheckLimits::default());
    let failures = slipway_lint::lint_with(
        "FROM debian:12\nRUN echo $UNQUOTED && cd /tmp\nRUN true\n",
        &Default::default(),
        Some(&checker as &dyn ShellChecker),
    );
    let codes: Vec<(&str, u32)> = failures.iter().map(|f| (f.code.as_str(), f.line)).collect();
    assert!(codes.contains(&("SC2086", 2)), "{failures:?}");
    assert!(
        !codes.iter().any(|(code, _)| *code == "SC0000"),
        "{failures:?}"
    );
}

#[test]
fn output_over_the_limit_stops_shellcheck_and_fails_the_lint() {
    let limits = ShellcheckLimits {
        output_bytes: 4096,
        ..ShellcheckLimits::default()
    };
    // 200 unquoted expansions: far more than 4 KiB of JSON findings.
    let text = format!("FROM debian:12\nRUN echo {}\n", "$X ".repeat(200));
    let error = failed_lint(&text, &shellcheck(limits));
    assert!(
        error.contains("wrote more than 4096 bytes of findings"),
        "{error}"
    );
}

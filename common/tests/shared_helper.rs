//! `workspace::shared_for_test` as the test harness runs it: a missing part of `../shared` is a
//! skipped test with a line naming it on stderr, and a failed test when `SLIPWAY_REQUIRE_SHARED` is
//! set. This test runs its own binary again, once each way, on a part that never exists.

use std::process::Command;

use slipway_common::workspace::{REQUIRE_SHARED_VAR, shared_for_test};

/// Set only in the runs this test starts, so that the probe below does nothing in a normal run
/// (where the variable may be set, as in CI).
const PROBE_VAR: &str = "SLIPWAY_SHARED_HELPER_PROBE";

#[test]
fn probe() {
    if std::env::var_os(PROBE_VAR).is_none() {
        return;
    }
    assert_eq!(
        shared_for_test(env!("CARGO_MANIFEST_DIR"), "no-such-part-of-shared"),
        None
    );
}

/// Run the probe with `SLIPWAY_REQUIRE_SHARED` set to `require` (or unset): (success, stderr + stdout).
fn run_probe(require: Option<&str>) -> (bool, String) {
    let mut command = Command::new(std::env::current_exe().expect("the test binary"));
    command
        .args(["--exact", "probe", "--test-threads=1"])
        .env(PROBE_VAR, "1");
    match require {
        Some(value) => command.env(REQUIRE_SHARED_VAR, value),
        None => command.env_remove(REQUIRE_SHARED_VAR),
    };
    let output = command.output().expect("the test binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    (output.status.success(), text)
}

#[test]
fn a_missing_part_skips_with_a_line_or_fails_when_required() {
    let (passed, output) = run_probe(None);
    assert!(passed, "{output}");
    assert!(
        output.contains("skipped: ../shared/no-such-part-of-shared not found"),
        "{output}"
    );
    let (passed, output) = run_probe(Some("1"));
    assert!(!passed, "{output}");
    assert!(
        output.contains("../shared/no-such-part-of-shared not found")
            && output.contains("SLIPWAY_REQUIRE_SHARED is set"),
        "{output}"
    );
}

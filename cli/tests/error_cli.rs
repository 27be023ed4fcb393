//! Errors as `slipway` prints them: one line, each cause once, although the broker error quotes
//! lapin's, which quotes its I/O error (anyhow's `{:#}` printed "Connection refused" three times).

use std::process::Command;

use slipway_tests::TempDir;

#[test]
fn an_unreachable_broker_is_reported_with_each_cause_once() {
    // A port nothing listens on: bound, then released.
    let port = slipway_tests::free_port();
    let home = TempDir::new("error-cli");
    let output = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .arg("status")
        .env("HOME", home.path())
        .env(
            "SLIPWAY_BROKER__URL",
            format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        )
        .output()
        .expect("run slipway status");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "one line for one error: {stderr}"
    );
    assert!(
        stderr.starts_with(&format!(
            "slipway: error: cannot connect to amqp://guest:<redacted>@127.0.0.1:{port}/%2f: "
        )),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("Connection refused").count(),
        1,
        "each cause once: {stderr}"
    );
}

//! The systemd template units in `systemd/`, one per worker, checked by systemd's own tools:
//! `systemd-analyze verify` finds nothing (with `ExecStart=` pointed at this build's binary,
//! since `/usr/bin` has none here), and `systemd-analyze security --offline=yes` rates each at
//! most 2.0 ("OK"). Each unit is `Type=notify` with a watchdog, loads the broker password as a
//! credential, reads both environment files, and leaves the worker more time to stop than its
//! drain timeout and grace.

use std::path::{Path, PathBuf};
use std::process::Command;

use slipway_common::worker::WorkerKind;

/// Most exposure `systemd-analyze security` may rate a unit: "OK" ends at 2.0.
const MAX_EXPOSURE: f64 = 2.0;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_owned()
}

fn unit_text(kind: WorkerKind) -> String {
    let path = repo_root()
        .join("systemd")
        .join(format!("slipway-{}@.service", kind.name()));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn setting<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

fn systemd_analyze() -> Option<&'static str> {
    slipway_tests::tools::available_or_skip("systemd-analyze", "apt-get install systemd")
        .then_some("systemd-analyze")
}

#[test]
fn every_unit_is_a_watched_notify_service_with_credentials_and_room_to_drain() {
    let drain_and_grace = slipway_broker::BrokerSettings::default().drain_timeout_ms / 1000
        + slipway_common::process::SHUTDOWN_GRACE.as_secs();
    for kind in WorkerKind::ALL {
        let unit = unit_text(kind);
        let name = kind.name();
        assert_eq!(setting(&unit, "Type"), ["notify"], "{name}");
        assert_eq!(setting(&unit, "NotifyAccess"), ["main"], "{name}");
        assert!(!setting(&unit, "WatchdogSec").is_empty(), "{name}");
        assert_eq!(setting(&unit, "KillSignal"), ["SIGTERM"], "{name}");
        let stop: u64 = setting(&unit, "TimeoutStopSec")[0]
            .parse()
            .expect("seconds");
        assert!(stop > drain_and_grace, "{name}: {stop} s to stop");
        assert_eq!(
            setting(&unit, "ExecStart"),
            [format!(
                "/usr/bin/{} --config /etc/slipway/{name}.toml",
                kind.binary()
            )],
        );
        assert!(
            setting(&unit, "LoadCredential")
                .contains(&format!("broker-password:/etc/slipway/credentials/{name}").as_str()),
            "{name}"
        );
        assert_eq!(
            setting(&unit, "EnvironmentFile"),
            [
                "-/etc/slipway/env",
                &format!("-/etc/slipway/{name}.env"),
                &format!("-/etc/slipway/{name}@%i.env"),
            ],
        );
        // Secrets never come by environment.
        assert!(
            !unit.to_lowercase().contains("password=") && !unit.contains("PASSWORD__"),
            "{name}"
        );
    }
    assert!(
        setting(&unit_text(WorkerKind::Notify), "LoadCredential")
            .contains(&"smtp-password:/etc/slipway/credentials/smtp")
    );
}

#[test]
fn systemd_verifies_every_unit_and_rates_each_ok() {
    let Some(analyze) = systemd_analyze() else {
        return;
    };
    let dir = slipway_tests::TempDir::new("units");
    let bin_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_owned()))
        .expect("target/debug");
    let mut ratings = Vec::new();
    for kind in WorkerKind::ALL {
        let file = format!("slipway-{}@.service", kind.name());
        let original = repo_root().join("systemd").join(&file);

        let security = Command::new(analyze)
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(&original)
            .output()
            .expect("systemd-analyze security");
        let text = String::from_utf8_lossy(&security.stdout);
        let exposure: f64 = text
            .lines()
            .find_map(|line| {
                let rest = line.split("Overall exposure level for ").nth(1)?;
                rest.split(": ")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("{file}: no rating in {text}"));
        assert!(exposure <= MAX_EXPOSURE, "{file} rated {exposure}:\n{text}");
        ratings.push(format!("{file} {exposure}"));

        // verify checks the command exists: point it at this build's binary.
        let binary = bin_dir.join(kind.binary());
        let copy = dir.path().join(&file);
        std::fs::write(
            &copy,
            std::fs::read_to_string(&original)
                .expect("the unit")
                .replace(
                    &format!("/usr/bin/{}", kind.binary()),
                    &binary.to_string_lossy(),
                ),
        )
        .expect("copy the unit");
        let instance = dir
            .path()
            .join(format!("slipway-{}@a.service", kind.name()));
        let verify = Command::new(analyze)
            .args(["verify", "--no-pager"])
            .arg(&instance)
            .output()
            .expect("systemd-analyze verify");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
        // Lines about units outside ours (the host's own, e.g. under /lib/systemd) are not ours.
        let ours: Vec<&str> = said.lines().filter(|l| l.contains("slipway")).collect();
        assert!(
            verify.status.success() && ours.is_empty(),
            "{file}: systemd-analyze verify said:\n{said}"
        );
    }
    println!("{}", ratings.join("\n"));
}

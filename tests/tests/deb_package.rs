//! The Debian packages (`deploy/package.sh`: cargo-deb, metadata in `deploy/deb/Cargo.toml` and
//! `cli/Cargo.toml`), made from this build's binaries (`slipway_tests::deb`), tried for real:
//!
//! - installed with `dpkg -i` in a fresh container of the project's base image with no network
//!   (so every dependency is already there), each file where it belongs, the binaries run, the
//!   settings files load, `dpkg -r` keeps the conffiles and `dpkg --purge` leaves nothing;
//! - installed in the project's image with systemd, whose `systemd-analyze verify` finds nothing
//!   to say about the installed units;
//! - installed in that image booted (systemd as PID 1, host network to reach the test broker on
//!   127.0.0.1): `systemctl start slipway-lint@a` returns once the worker is ready, the unit is
//!   active with the worker's `STATUS=`, its watchdog is fed, its journal entries carry their
//!   priority and fields, and `systemctl stop` ends it cleanly.
//!
//! The settings files the package ships are checked against the binaries here too: each is
//! `--print-config`'s defaults, commented (`deploy/deb/configs.sh` writes them).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use slipway_common::worker::WorkerKind;
use slipway_tests::container::Container;
use slipway_tests::deb::{
    Packages, SYSTEMD_IMAGE, bin_dir, cargo_deb_or_skip, ensure_systemd_image, packages,
    systemd_boot_options, workspace_root,
};
use slipway_tests::tools::skip_unless_required;
use slipway_tests::{AMQP_URL, BASE_IMAGE, TempDir, ensure_docker, ensure_rabbitmq, test_settings};

/// Longest a boot, a `systemctl start` or a `systemctl stop` may take here.
const SYSTEMD_DEADLINE: Duration = Duration::from_secs(90);
/// `WatchdogSec=30`: the worker beats at a quarter of it.
const WATCHDOG_DEADLINE: Duration = Duration::from_secs(20);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `--print-config` of `binary` in a clean environment with an empty settings file.
fn printed_defaults(binary: &Path, empty: &Path) -> String {
    let output = Command::new(binary)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .arg("--config")
        .arg(empty)
        .arg("--print-config")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout)
}

/// The `--debs` mount and the `dpkg -i` line of both packages.
fn mount_and_install(packages: &Packages) -> (String, String) {
    (
        format!("{}:/debs:ro", packages.dir.display()),
        format!("dpkg -i /debs/{} /debs/{}", packages.workers, packages.cli),
    )
}

#[test]
fn the_shipped_settings_files_are_each_workers_printed_defaults_commented() {
    let bin_dir = bin_dir();
    let out = TempDir::new("deb-configs");
    let script = workspace_root().join("deploy/deb/configs.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("run deploy/deb/configs.sh");
    assert!(
        output.status.success(),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    let empty = out.file("empty.toml", "");
    for kind in WorkerKind::ALL {
        let file = format!("{}.toml", kind.name());
        let shipped = workspace_root().join("deploy/deb/etc").join(&file);
        let shipped = std::fs::read_to_string(&shipped)
            .unwrap_or_else(|e| panic!("{}: {e}", shipped.display()));
        let fresh = std::fs::read_to_string(out.path().join(&file)).expect("written");
        assert_eq!(
            shipped,
            fresh,
            "deploy/deb/etc/{file} is not what {} prints now: run `bash deploy/deb/configs.sh`",
            kind.binary()
        );
        // Every line of the defaults is there, commented; uncommented they are the defaults.
        let uncommented: String = shipped
            .lines()
            .skip_while(|line| !line.is_empty())
            .skip(1)
            .map(|line| format!("{}\n", line.strip_prefix("# ").unwrap_or(line)))
            .collect();
        assert_eq!(
            uncommented,
            printed_defaults(&bin_dir.join(kind.binary()), &empty),
            "{file}"
        );
    }
}

#[test]
fn the_packages_install_offline_in_the_base_image_run_and_purge_clean() {
    if !cargo_deb_or_skip() {
        return;
    }
    ensure_docker();
    let packages = packages();
    let (mount, install) = mount_and_install(packages);
    let node = Container::run(
        "deb-base",
        &[
            "--network",
            "none",
            "-v",
            &mount,
            BASE_IMAGE,
            "sleep",
            "infinity",
        ],
    );
    let started = Instant::now();
    let installed = node.sh(&install);
    println!("{install}:\n{installed}");
    assert!(
        node.sh("dpkg-query -W -f='${Status}\\n' slipway-workers slipway")
            .lines()
            .all(|status| status == "install ok installed"),
        "{installed}"
    );

    // Depends: the C library only (dpkg-shlibdeps' answer; without dpkg-dev it would be empty).
    for package in ["slipway-workers", "slipway"] {
        let depends = node.sh(&format!("dpkg-query -W -f='${{Depends}}' {package}"));
        assert!(depends.starts_with("libc6 (>= "), "{package}: {depends:?}");
    }

    // Each file where it belongs, as the repository has it.
    let root = workspace_root();
    let scratch = TempDir::new("deb-empty");
    let empty = scratch.file("empty.toml", "");
    for kind in WorkerKind::ALL {
        let (name, binary) = (kind.name(), kind.binary());
        assert!(
            node.holds(&format!("test -x /usr/bin/{binary}")),
            "{binary}"
        );
        let unit = format!("slipway-{name}@.service");
        assert_eq!(
            node.sh(&format!("cat /lib/systemd/system/{unit}")),
            std::fs::read_to_string(root.join("systemd").join(&unit)).expect("the unit"),
            "{unit}"
        );
        let settings = node.sh(&format!("cat /etc/slipway/{name}.toml"));
        assert_eq!(
            settings,
            std::fs::read_to_string(root.join(format!("deploy/deb/etc/{name}.toml")))
                .expect("the settings file"),
        );
        // The file the unit names loads, and changes no default.
        let defaults = printed_defaults(&bin_dir().join(binary), &empty);
        assert_eq!(
            node.sh(&format!(
                "{binary} --config /etc/slipway/{name}.toml --print-config"
            )),
            defaults,
            "{name}"
        );
        assert_eq!(
            node.sh(&format!("{binary} --version")).trim(),
            format!("{binary} {}", env!("CARGO_PKG_VERSION"))
        );
        assert!(
            node.sh(&format!("{binary} --help"))
                .contains("--print-config")
        );
    }
    assert!(node.holds("test -x /usr/bin/slipway"));
    assert!(node.sh("slipway --version").starts_with("slipway "));
    assert!(node.sh("slipway --help").contains("index"));
    let conffiles = node.sh("dpkg-query -W -f='${Conffiles}\\n' slipway-workers");
    for kind in WorkerKind::ALL {
        assert!(
            conffiles.contains(&format!(" /etc/slipway/{}.toml ", kind.name())),
            "{conffiles}"
        );
    }
    assert_eq!(
        node.sh("stat -c '%a %U:%G' /etc/slipway/credentials")
            .trim(),
        "700 root:root"
    );
    for doc in ["README.Debian", "README.md", "systemd.md", "copyright"] {
        assert!(
            node.holds(&format!("test -s /usr/share/doc/slipway-workers/{doc}")),
            "{doc}"
        );
    }
    assert!(node.holds("test -s /usr/share/doc/slipway/copyright"));
    // Nothing the package does needs a user of its own: the units run as DynamicUser=yes.
    assert!(!node.holds("getent passwd slipway"));

    // Removed: the programs and units go, the settings stay.
    node.sh("dpkg -r slipway-workers slipway");
    assert!(!node.holds("test -e /usr/bin/slipway-lint || test -e /usr/bin/slipway"));
    assert!(!node.holds("ls /lib/systemd/system/slipway-*"));
    assert!(node.holds("test -f /etc/slipway/lint.toml && test -d /etc/slipway/credentials"));
    assert_eq!(
        node.sh("dpkg-query -W -f='${Status}' slipway-workers"),
        "deinstall ok config-files"
    );
    assert!(
        !node.holds("dpkg-query -W slipway"),
        "slipway: no conffiles, so nothing left"
    );

    // Purged with a secret and an enabled instance: nothing of either package is left.
    node.sh("printf guest > /etc/slipway/credentials/lint && \
         mkdir -p /etc/systemd/system/multi-user.target.wants && \
         ln -s /lib/systemd/system/slipway-lint@.service \
               /etc/systemd/system/multi-user.target.wants/slipway-lint@a.service");
    // (slipway, without conffiles, is gone with `dpkg -r` already.)
    let purged = node.sh("dpkg --purge slipway-workers 2>&1");
    println!("dpkg --purge slipway-workers:\n{purged}");
    assert!(!node.holds("test -e /etc/slipway"), "/etc/slipway is left");
    assert!(
        !node.holds("test -L /etc/systemd/system/multi-user.target.wants/slipway-lint@a.service")
    );
    assert!(!node.holds("dpkg-query -W slipway-workers slipway"));
    println!(
        "install, checks, remove and purge: {:.1?}",
        started.elapsed()
    );
}

#[test]
fn systemd_verifies_each_installed_unit_and_finds_nothing() {
    if !cargo_deb_or_skip() {
        return;
    }
    ensure_systemd_image();
    let packages = packages();
    let (mount, install) = mount_and_install(packages);
    let node = Container::run(
        "deb-verify",
        &[
            "--network",
            "none",
            "-v",
            &mount,
            SYSTEMD_IMAGE,
            "sleep",
            "infinity",
        ],
    );
    node.sh(&install);
    // --man=no: verify would otherwise run man(1) for each unit's `Documentation=man:…`, and
    // this image, like a minimal server, has no man-db (nothing to do with the units).
    let verify =
        node.exec("systemd-analyze verify --man=no /lib/systemd/system/slipway-*@.service");
    let said = format!("{}{}", text(&verify.stdout), text(&verify.stderr));
    assert!(
        verify.status.success() && said.trim().is_empty(),
        "systemd-analyze verify ({}) said:\n{said}",
        verify.status
    );
    let units = node.sh("ls /lib/systemd/system/ | grep '^slipway-'");
    assert_eq!(units.lines().count(), WorkerKind::ALL.len(), "{units}");
}

/// `systemctl show <unit>`'s `properties`, as name → value.
fn unit_properties(node: &Container, unit: &str, properties: &[&str]) -> Vec<(String, String)> {
    let asked: Vec<String> = properties.iter().map(|p| format!("-p {p}")).collect();
    node.sh(&format!("systemctl show {unit} {}", asked.join(" ")))
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once('=')?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect()
}

fn property(properties: &[(String, String)], name: &str) -> String {
    properties
        .iter()
        .find(|(each, _)| each == name)
        .map(|(_, value)| value.clone())
        .unwrap_or_default()
}

#[test]
fn a_packaged_unit_runs_under_systemd_feeds_its_watchdog_logs_to_the_journal_and_stops_clean() {
    if !cargo_deb_or_skip() {
        return;
    }
    ensure_systemd_image();
    ensure_rabbitmq();
    let packages = packages();
    // The worker's own defaults (its retry queues among them), in a namespace of the test's.
    let settings = slipway_broker::BrokerSettings {
        url: AMQP_URL.into(),
        namespace: test_settings("deb-systemd").namespace,
        ..slipway_broker::BrokerSettings::default()
    };
    let _namespace = slipway_tests::fleet::NamespaceGuard(settings.clone());
    let (mount, install) = mount_and_install(packages);
    let mut args = systemd_boot_options();
    // Host network: the test broker listens on 127.0.0.1, and RabbitMQ lets guest in from
    // loopback only.
    args.extend(["--network", "host", "-v", &mount, SYSTEMD_IMAGE].map(str::to_owned));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let node = Container::run("deb-systemd", &args);

    let started = Instant::now();
    // systemctl needs the manager's socket, which appears early in the boot; then --wait
    // returns when the boot is over.
    let boot = node.exec_within(
        SYSTEMD_DEADLINE,
        "until test -S /run/systemd/private; do sleep 0.1; done; \
         systemctl is-system-running --wait",
    );
    let state = text(&boot.stdout).trim().to_owned();
    if state != "running" && state != "degraded" {
        let why = format!(
            "systemd did not boot in a container here ({state:?}, {}): {}\n{}",
            boot.status,
            text(&boot.stderr),
            text(
                &node
                    .exec("systemctl --failed --no-pager; journalctl -b --no-pager | tail -n 30")
                    .stdout
            ),
        );
        skip_unless_required(&why);
        return;
    }
    println!("booted ({state}) in {:.1?}", started.elapsed());

    node.sh(&install);
    let metrics_port = slipway_tests::free_port();
    node.sh(&format!(
        "umask 077 && printf guest > /etc/slipway/credentials/lint && \
         printf 'SLIPWAY_BROKER__NAMESPACE={}\\nSLIPWAY_TELEMETRY__METRICS_ADDR=127.0.0.1:{metrics_port}\\n' \
            > /etc/slipway/lint.env",
        settings.namespace
    ));

    // Type=notify: start returns once the worker sent READY=1 (or the start failed).
    let unit = "slipway-lint@a";
    let start = node.exec_within(SYSTEMD_DEADLINE, &format!("systemctl start {unit}"));
    let journal = || {
        text(
            &node
                .exec(&format!("journalctl -q -u {unit} --no-pager -o cat"))
                .stdout,
        )
    };
    assert!(
        start.status.success(),
        "systemctl start {unit}: {}{}\n{}",
        text(&start.stderr),
        text(
            &node
                .exec(&format!("systemctl status --no-pager {unit}"))
                .stdout
        ),
        journal()
    );
    println!(
        "{}",
        node.sh(&format!("systemctl status --no-pager {unit} || true"))
    );
    let shown = unit_properties(
        &node,
        unit,
        &[
            "ActiveState",
            "SubState",
            "StatusText",
            "WatchdogUSec",
            "NotifyAccess",
        ],
    );
    assert_eq!(property(&shown, "ActiveState"), "active", "{shown:?}");
    assert_eq!(property(&shown, "SubState"), "running", "{shown:?}");
    assert_eq!(property(&shown, "WatchdogUSec"), "30s", "{shown:?}");
    assert_eq!(
        property(&shown, "StatusText"),
        format!("consuming {}.lint", settings.namespace),
        "{shown:?}"
    );
    let (code, body) =
        slipway_tests::http_get(metrics_port, "/healthz").expect("/healthz answers on the host");
    assert_eq!(code, 200, "{body}");

    // The watchdog is fed: systemd records each WATCHDOG=1.
    let beat = || {
        property(
            &unit_properties(&node, unit, &["WatchdogTimestampMonotonic"]),
            "WatchdogTimestampMonotonic",
        )
    };
    let first = beat();
    let until = Instant::now() + WATCHDOG_DEADLINE;
    while beat() == first {
        assert!(
            Instant::now() < until,
            "no WATCHDOG=1 within {WATCHDOG_DEADLINE:?} (last at {first})"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // The journal: the worker's lines with their priority and fields.
    let entries: Vec<Value> = node
        .sh(&format!("journalctl -q -u {unit} --no-pager -o json"))
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let consuming = entries
        .iter()
        .find(|entry| {
            entry["SYSLOG_IDENTIFIER"] == "slipway-lint"
                && entry["MESSAGE"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("consuming"))
        })
        .unwrap_or_else(|| panic!("no 'consuming' entry in {entries:?}"));
    assert_eq!(consuming["PRIORITY"], "6", "{consuming}");
    assert_eq!(
        consuming["QUEUE"],
        format!("{}.lint", settings.namespace),
        "{consuming}"
    );
    assert_eq!(consuming["WORKER"], "lint", "{consuming}");

    // Stopped: SIGTERM, a drain, exit 0, nothing logged at error or worse.
    let stop = node.exec_within(SYSTEMD_DEADLINE, &format!("systemctl stop {unit}"));
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    let stopped = unit_properties(&node, unit, &["ActiveState", "Result", "ExecMainStatus"]);
    assert_eq!(property(&stopped, "ActiveState"), "inactive", "{stopped:?}");
    assert_eq!(property(&stopped, "Result"), "success", "{stopped:?}");
    assert_eq!(property(&stopped, "ExecMainStatus"), "0", "{stopped:?}");
    let errors = node.sh(&format!("journalctl -q -u {unit} --no-pager -o cat -p err"));
    assert!(
        errors.trim().is_empty(),
        "errors logged: {errors}\n{}",
        journal()
    );
    println!(
        "boot, install, start, watchdog, stop: {:.1?}",
        started.elapsed()
    );
}

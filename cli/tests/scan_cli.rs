//! `slipway scan IMAGE` as users run it after a build: the daemon holds the image under its full
//! registry name (`127.0.0.1:5000/team/app:1`), and the short index name `team/app:1` that
//! `slipway submit` prints finds it. A short name nothing holds fails naming the full reference.
//! `--fail-on` and `--exit-code` judge a report for CI (a root filesystem and an OSV record).

use std::process::{Command, Output};

use slipway_tests::{BASE_IMAGE, REGISTRY, docker, ensure_docker, try_docker};

fn slipway_scan(image: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["scan", image, "--format", "json"])
        .env("SLIPWAY_REGISTRY__URL", format!("http://{REGISTRY}"))
        .output()
        .expect("run slipway")
}

/// Removes the image tag when the test ends, passed or not.
struct Tag(String);

impl Drop for Tag {
    fn drop(&mut self) {
        let _ = try_docker(&["rmi", &self.0], None);
    }
}

#[test]
fn a_short_index_name_scans_the_registry_image_the_daemon_holds() {
    ensure_docker();
    let path = format!("slcliscan{}/app", std::process::id());
    let tag = Tag(format!("{REGISTRY}/{path}:1"));
    docker(&["tag", BASE_IMAGE, &tag.0], None);
    let image_id = docker(&["image", "inspect", "--format", "{{.Id}}", &tag.0], None);

    let short = slipway_scan(&format!("{path}:1"));
    let stderr = String::from_utf8_lossy(&short.stderr);
    assert!(short.status.success(), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&short.stdout).expect("a JSON report on stdout");
    assert_eq!(
        report["image"],
        format!("{path}:1"),
        "named as the user wrote it"
    );
    assert_eq!(
        report["image_id"].as_str(),
        Some(image_id.trim()),
        "the registry image the daemon holds was scanned"
    );
    assert!(
        report["packages"].as_array().is_some_and(|p| !p.is_empty()),
        "the base image's packages are listed"
    );

    let missing = slipway_scan(&format!("slcliscan{}/absent:1", std::process::id()));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success(), "an image nothing holds fails");
    assert!(
        stderr.contains(&format!("{REGISTRY}/slcliscan")),
        "the error names the full reference it looked for: {stderr}"
    );
}

/// A root filesystem with one Debian package (`openssl` 3.0.0-1) and an OSV directory with one
/// record against it, rated `severity` by its database.
fn vulnerable_rootfs(dir: &slipway_tests::TempDir, severity: &str) -> (String, String) {
    dir.file(
        "root/etc/os-release",
        "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
    );
    dir.file(
        "root/var/lib/dpkg/status",
        "Package: openssl\nStatus: install ok installed\nArchitecture: amd64\nVersion: 3.0.0-1\n\n",
    );
    dir.file(
        "osv/Debian/DSA-0000-1.json",
        &format!(
            r#"{{"schema_version": "1.6.0", "id": "DSA-0000-1", "modified": "2024-01-01T00:00:00Z",
  "summary": "a test advisory",
  "affected": [{{"package": {{"ecosystem": "Debian:12", "name": "openssl"}},
    "ranges": [{{"type": "ECOSYSTEM", "events": [{{"introduced": "0"}}, {{"fixed": "3.0.1-1"}}]}}]}}],
  "database_specific": {{"severity": "{severity}"}}}}"#
        ),
    );
    (
        dir.path().join("root").display().to_string(),
        dir.path().join("osv").display().to_string(),
    )
}

fn scan_with(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slipway"))
        .arg("scan")
        .args(args)
        .env_remove("SLIPWAY_OSV_DIR")
        .output()
        .expect("run slipway scan")
}

/// `--fail-on` and `--exit-code`, as Trivy's `--severity` and `--exit-code` are used in CI.
#[test]
fn fail_on_and_exit_code_judge_the_report_for_ci() {
    let dir = slipway_tests::TempDir::new("scan-fail-on");
    let (root, osv) = vulnerable_rootfs(&dir, "HIGH");
    let run = |extra: &[&str]| {
        let mut args = vec![root.as_str(), "--osv-dir", osv.as_str(), "--no-integrity"];
        args.extend_from_slice(extra);
        scan_with(&args)
    };
    let stderr = |output: &Output| String::from_utf8_lossy(&output.stderr).into_owned();

    let plain = run(&[]);
    assert_eq!(
        plain.status.code(),
        Some(0),
        "no gate, no failure: {}",
        stderr(&plain)
    );
    assert!(String::from_utf8_lossy(&plain.stdout).contains("DSA-0000-1"));

    let high = run(&["--fail-on", "vulnerabilities:high"]);
    assert_eq!(high.status.code(), Some(1), "{}", stderr(&high));
    assert!(
        stderr(&high)
            .contains("failing (--fail-on): 1 vulnerabilit(ies) of severity high or higher"),
        "{}",
        stderr(&high)
    );
    let critical = run(&["--fail-on", "vulnerabilities:critical,capabilities,updates"]);
    assert_eq!(critical.status.code(), Some(0), "{}", stderr(&critical));
    let any = run(&["--exit-code", "7"]);
    assert_eq!(
        any.status.code(),
        Some(7),
        "--exit-code alone: any vulnerability"
    );

    let refused = run(&["--exit-code", "2"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("could not be read"),
        "{}",
        stderr(&refused)
    );
    let unknown = run(&["--fail-on", "vulns"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("expecting updates"),
        "{}",
        stderr(&unknown)
    );
    let sbom = run(&["-f", "cyclonedx", "--fail-on", "vulnerabilities"]);
    assert_eq!(sbom.status.code(), Some(2), "{}", stderr(&sbom));
}

//! `slipway scan IMAGE` as users run it after a build: the daemon holds the image under its full
//! registry name (`127.0.0.1:5000/team/app:1`), and the short index name `team/app:1` that
//! `slipway submit` prints finds it. A short name nothing holds fails naming the full reference.

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

//! The scan worker against the real RabbitMQ, dockerd and registry on 127.0.0.1:5000 (started by
//! `deploy/dev-env.sh` through the shared helper): a `build.succeeded` of an image only the
//! registry has is pulled by digest, scanned, its report appended to the reports stream and
//! `scan.completed` published with the counts, and the image it pulled is removed again; an image
//! the registry does not have, and an image with a corrupted dpkg database, give `scan.failed`
//! saying why; the worker keeps running through all of them.

use std::sync::Arc;
use std::time::Duration;

use slipway_broker::Job;
use slipway_broker::reports::{delete_report_stream, report_stream_name};
use slipway_common::message::test_support::sample_messages;
use slipway_common::message::{BuildSucceeded, ScanRequested};
use slipway_common::{Cause, Digest, Envelope, ImageRef, JobId, Message};
use slipway_scan::reports::{Document, ReportReadOptions, latest_document, latest_report};
use slipway_scan::worker::{ScanHandler, ScanWorkerConfig};
use slipway_tests::{BASE_IMAGE, REGISTRY, RunningWorker, TestBus, docker, test_settings};
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(240);

/// Builds `dockerfile`, pushes it as `REGISTRY/<path>:1`, removes it locally; returns the
/// reference and the manifest digest.
fn pushed_only(path: &str, dockerfile: &str) -> (String, String) {
    let image = format!("{REGISTRY}/{path}:1");
    docker(
        &["build", "-q", "--network", "none", "-t", &image, "-"],
        Some(dockerfile),
    );
    docker(&["push", &image], None);
    let digests = docker(
        &[
            "image",
            "inspect",
            "-f",
            "{{join .RepoDigests \" \"}}",
            &image,
        ],
        None,
    );
    let digest = digests
        .split_whitespace()
        .find_map(|d| d.strip_prefix(&format!("{REGISTRY}/{path}@")))
        .unwrap_or_else(|| panic!("no registry digest among {digests:?}"))
        .to_owned();
    docker(&["rmi", &image], None);
    (image, digest)
}

fn is_local(reference: &str) -> bool {
    std::process::Command::new("docker")
        .args(["image", "inspect", reference])
        .output()
        .is_ok_and(|o| o.status.success())
}

struct ScanRig {
    bus: TestBus,
    _workers: Vec<RunningWorker>,
    events: mpsc::UnboundedReceiver<Envelope>,
}

impl ScanRig {
    async fn start(test: &str) -> ScanRig {
        slipway_tests::ensure_docker();
        let settings = test_settings(test);
        let config = ScanWorkerConfig {
            broker: settings.clone(),
            scan: slipway_scan::worker::ScanSettings {
                sbom_referrers_registry: Some(format!("http://{REGISTRY}")),
                ..Default::default()
            },
            ..ScanWorkerConfig::default()
        };
        let bus = TestBus::start(settings.clone(), config.topology()).await;
        let handler = Arc::new(ScanHandler::new(&config).await.expect("scan handler"));
        let scan = bus.spawn_worker("scan", move |job: Job| {
            let handler = handler.clone();
            async move { handler.scan(&job).await }
        });
        let (tx, events) = mpsc::unbounded_channel();
        let notify = bus.spawn_observer("notify", tx);
        ScanRig {
            bus,
            _workers: vec![scan, notify],
            events,
        }
    }

    async fn publish(&self, message: Message) -> JobId {
        let job = Envelope::new_job(Cause::User, message);
        self.bus.publisher.publish(&job).await.expect("publish");
        job.job_id
    }

    /// The scan outcome of `job`.
    async fn outcome(&mut self, job: JobId) -> Message {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .expect("a scan outcome before the deadline")
                .expect("observer running");
            if event.job_id == job
                && matches!(
                    event.message,
                    Message::ScanCompleted(_) | Message::ScanFailed(_)
                )
            {
                return event.message;
            }
        }
    }
}

fn build_succeeded(image: &str, digest: &str) -> Message {
    let built = sample_messages()
        .into_iter()
        .find_map(|m| match m {
            Message::BuildSucceeded(b) => Some(b),
            _ => None,
        })
        .expect("a sample build.succeeded");
    Message::BuildSucceeded(BuildSucceeded {
        image: ImageRef::parse(image).expect("a valid image"),
        digest: Digest::parse(digest).expect("a valid digest"),
        ..built
    })
}

/// The JSON document at `http://REGISTRY/v2/<path>` (OCI manifests and indexes accepted).
fn registry_json(path: &str) -> serde_json::Value {
    let output = std::process::Command::new("curl")
        .args([
            "-fsS",
            "-H",
            "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
        ])
        .arg(format!("http://{REGISTRY}/v2/{path}"))
        .output()
        .expect("run curl");
    assert!(
        output.status.success(),
        "GET {path}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("a JSON document")
}

fn unique_path(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("sltest{}x{nanos}/{what}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_images_are_scanned_reported_and_cleaned_up_and_bad_ones_fail_clearly() {
    let mut rig = ScanRig::start("scan-worker").await;
    let stream = report_stream_name(&rig.bus.settings.namespace);

    // An image that asks for privileges and lost a packaged file.
    let dockerfile = format!(
        "FROM {BASE_IMAGE}\nRUN rm /usr/bin/tac\nLABEL RUN=\"docker run --privileged --net=host -v /:/host IMAGE\"\n"
    );
    let (image, digest) = pushed_only(&unique_path("scanned"), &dockerfile);
    let pinned = format!("{}@{digest}", image.trim_end_matches(":1"));
    assert!(!is_local(&pinned), "only the registry has it");
    let job = rig.publish(build_succeeded(&image, &digest)).await;
    let Message::ScanCompleted(done) = rig.outcome(job).await else {
        panic!("expected scan.completed");
    };
    assert_eq!(
        (done.image.to_string(), done.digest.to_string()),
        (image.clone(), digest.clone())
    );
    assert!(done.counts["packages"] > 50, "{:?}", done.counts);
    assert_eq!(
        done.counts["integrity"], 1,
        "/usr/bin/tac is missing: {:?}",
        done.counts
    );
    // privileged, host network, / mounted, runs as root.
    assert_eq!(done.counts["capabilities"], 4, "{:?}", done.counts);
    assert_eq!(done.counts["os-updates"], 0);
    assert_eq!(done.counts["vulnerabilities"], 0);
    assert!(
        !is_local(&pinned),
        "the image the worker pulled is removed after the scan"
    );

    let selector = ImageRef::parse(&image).expect("a reference");
    let stored = latest_report(
        rig.bus.connection(),
        &stream,
        &selector,
        ReportReadOptions::default(),
    )
    .await
    .expect("read the reports stream")
    .expect("the scan's report is in the stream");
    assert_eq!(stored.meta.job_id, job);
    assert_eq!(stored.meta.digest.to_string(), digest);
    let report: serde_json::Value = serde_json::from_slice(&stored.body).expect("a JSON report");
    assert_eq!(report["schema"], "slipway.scan-report/1");
    assert_eq!(report["digest"], digest.as_str());
    assert_eq!(report["access"], "layer-directories");
    assert_eq!(report["integrity"]["failures"][0]["path"], "/usr/bin/tac");
    assert_eq!(
        report["vulnerabilities"]["database"]["status"],
        "not-configured"
    );
    assert_eq!(
        report["updates"]["not_checked"],
        "no package repositories are configured"
    );
    assert_eq!(
        report["packages"].as_array().map(Vec::len),
        Some(done.counts["packages"] as usize)
    );
    assert_eq!(
        report["language_updates"]["not_checked"],
        "no package indexes are configured"
    );

    // The SBOM and the build's provenance are stored beside the report.
    let document = |document| {
        latest_document(
            rig.bus.connection(),
            &stream,
            &selector,
            document,
            ReportReadOptions::default(),
        )
    };
    let sbom = document(Document::Sbom)
        .await
        .expect("read the reports stream")
        .expect("the scan's SBOM is in the stream");
    assert_eq!(
        (sbom.meta.job_id, sbom.meta.digest.to_string()),
        (job, digest.clone())
    );
    let sbom: serde_json::Value = serde_json::from_slice(&sbom.body).expect("a JSON SBOM");
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    assert_eq!(
        sbom["metadata"]["component"]["version"],
        digest.as_str(),
        "the SBOM describes the scanned digest: {}",
        sbom["metadata"]
    );
    let components = sbom["components"].as_array().map_or(0, Vec::len);
    assert!(
        components > 50,
        "every package is a component (and the OS): {components}"
    );
    // Attached in the registry too, as an OCI referrer of the scanned manifest, listed under the
    // referrers tag (Distribution 2.8 has no referrers API).
    let repository = image
        .trim_start_matches(&format!("{REGISTRY}/"))
        .trim_end_matches(":1");
    let index = registry_json(&format!(
        "{repository}/manifests/sha256-{}",
        digest.trim_start_matches("sha256:")
    ));
    assert_eq!(
        index["manifests"][0]["artifactType"], "application/vnd.cyclonedx+json",
        "{index}"
    );
    let artifact = registry_json(&format!(
        "{repository}/manifests/{}",
        index["manifests"][0]["digest"]
            .as_str()
            .expect("a referrer digest")
    ));
    assert_eq!(artifact["subject"]["digest"], digest.as_str(), "{artifact}");
    let attached = registry_json(&format!(
        "{repository}/blobs/{}",
        artifact["layers"][0]["digest"]
            .as_str()
            .expect("the SBOM blob")
    ));
    assert_eq!(attached, sbom, "the attached SBOM is the stored one");
    let provenance = document(Document::Provenance)
        .await
        .expect("read the reports stream")
        .expect("the build's provenance is in the stream");
    let provenance: serde_json::Value =
        serde_json::from_slice(&provenance.body).expect("a JSON statement");
    assert_eq!(
        provenance["predicateType"],
        "https://slsa.dev/provenance/v1"
    );
    assert_eq!(
        provenance["subject"][0]["digest"]["sha256"],
        digest.trim_start_matches("sha256:")
    );
    assert_eq!(
        provenance["predicate"]["runDetails"]["metadata"]["invocationId"],
        job.to_string()
    );

    // Not in the registry: a clear scan.failed, and the worker goes on.
    let missing = format!("{REGISTRY}/{}:1", unique_path("never-pushed"));
    let job = rig
        .publish(Message::ScanRequested(ScanRequested {
            image: ImageRef::parse(&missing).expect("a valid image"),
            digest: None,
            notify_email: Some("owner@example.org".into()),
        }))
        .await;
    let Message::ScanFailed(failed) = rig.outcome(job).await else {
        panic!("expected scan.failed for an image the registry does not have");
    };
    assert_eq!(failed.image.to_string(), missing);
    assert!(
        failed
            .error
            .starts_with("image absent: the registry has no ")
            && failed.error.contains(&missing),
        "{}",
        failed.error
    );
    assert_eq!(failed.notify_email.as_deref(), Some("owner@example.org"));

    // A package database unreadable as a whole: scan.failed naming it. (One malformed entry
    // among readable ones is a report warning instead: `hostile_archives.rs`.)
    let corrupted =
        format!("FROM {BASE_IMAGE}\nRUN echo 'this is not a field' > /var/lib/dpkg/status\n");
    let (image, digest) = pushed_only(&unique_path("corrupted"), &corrupted);
    let job = rig.publish(build_succeeded(&image, &digest)).await;
    let Message::ScanFailed(failed) = rig.outcome(job).await else {
        panic!("expected scan.failed for a corrupted dpkg database");
    };
    assert!(failed.error.contains("dpkg database"), "{}", failed.error);
    assert!(
        failed.error.contains("var/lib/dpkg/status"),
        "{}",
        failed.error
    );

    // The worker's metrics (this process's registry: the handler runs in it).
    let metric = |series: &str| slipway_tests::metric_value(series).unwrap_or(0.0);
    assert_eq!(
        metric(r#"slipway_scan_scans_total{outcome="completed"}"#),
        1.0
    );
    assert_eq!(metric(r#"slipway_scan_scans_total{outcome="failed"}"#), 2.0);
    assert_eq!(
        metric(r#"slipway_scan_packages_found_total{ecosystem="deb"}"#),
        done.counts["packages"] as f64
    );
    for scanner in [
        "read",
        "inventory",
        "integrity",
        "updates",
        "vulnerabilities",
        "total",
    ] {
        assert_eq!(
            metric(&format!(
                r#"slipway_scan_duration_seconds_count{{scanner="{scanner}"}}"#
            )),
            1.0,
            "{scanner}"
        );
    }
    assert_eq!(metric("slipway_scan_updates_found_total"), 0.0);

    let _ = delete_report_stream(rig.bus.connection(), &stream).await;
}

#[test]
fn the_binary_documents_what_it_consumes_and_its_configuration() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_slipway-scan"))
        .arg("--help")
        .output()
        .expect("run slipway-scan --help");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "build.succeeded",
        "scan.requested",
        "/etc/slipway/scan.toml",
        "[scan]",
        "--config",
    ] {
        assert!(help.contains(needle), "{needle:?} in\n{help}");
    }
}

#[test]
fn the_binary_starts_with_other_programs_variables_and_stops_on_a_typo_in_its_own() {
    let print_config = |extra: (&str, &str)| {
        std::process::Command::new(env!("CARGO_BIN_EXE_slipway-scan"))
            .arg("--print-config")
            // One environment file for every unit: the lint and build workers' [source], the
            // command line's own variables.
            .env("SLIPWAY_SOURCE__CACHE_DIR", "/var/cache/slipway/git")
            .env("SLIPWAY_OSV_DIR", "/var/lib/slipway/osv")
            .env("SLIPWAY_LINT_SHELLCHECK", "never")
            .env("SLIPWAY_SCAN__OSV_DIR", "/var/lib/slipway/osv")
            .env(extra.0, extra.1)
            .output()
            .expect("run slipway-scan --print-config")
    };
    let output = print_config(("SLIPWAY_SCAN__INTEGRITY", "false"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("osv_dir = \"/var/lib/slipway/osv\""),
        "{stdout}"
    );
    assert!(stdout.contains("integrity = false"), "{stdout}");
    assert!(
        stdout.contains("metrics_addr = \"127.0.0.1:9466\""),
        "{stdout}"
    );
    assert!(!stdout.contains("[source]"), "{stdout}");

    let output = print_config(("SLIPWAY_SCAN__OSV_DIRR", "/var/lib/slipway/osv"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("osv_dirr"), "{stderr}");
}

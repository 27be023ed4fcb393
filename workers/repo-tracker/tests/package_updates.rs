//! Package updates end to end, against the real RabbitMQ and a real apt repository: a flat
//! repository of `.deb`s built with `dpkg-deb` and indexed with `apt-ftparchive`, served over
//! loopback HTTP. Scan reports of the index images are appended to the test's `N.reports` stream
//! in the scan worker's own report format. The tracker runs in this process with a short
//! `package_check_interval_ms`; the lint and build workers are played by a stand-in on the lint
//! queue that answers each `build.requested` with `build.succeeded`. Everything is checked from
//! the history stream.
//!
//! Needs `dpkg-deb` (dpkg), `apt-ftparchive` (apt-utils) and `gzip`; a missing tool fails the
//! test with the package to install.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use slipway_broker::history::{HistoryEvent, HistoryQuery};
use slipway_broker::reports::{ReportStreamSettings, report_stream_name};
use slipway_broker::{Job, Outcome, Topology};
use slipway_common::message::{BuildSucceeded, CommitSha};
use slipway_common::{Digest, ImageRef, JobId, Kind, Message, Timestamp};
use slipway_repo_tracker::config::RepoTrackerConfig;
use slipway_scan::package::{Ecosystem, Inventory, OsIdentity, Package};
use slipway_scan::report::{Analysis, ScanReport, Subject};
use slipway_scan::reports::{ReportMeta, append_report};
use slipway_scan::source::Access;
use slipway_scan::updates::{OsMatch, RepoConfig, RepoKind, UpdatesReport};
use slipway_tests::git::LocalRepo;
use slipway_tests::requests;
use slipway_tests::{TempDir, TestBus, test_settings, tools};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(60);

/// The package two images hold, and the one the third holds.
const P: &str = "slipway-p";
const Q: &str = "slipway-q";

/// The Debian packages of the programs the fixture runs.
const TOOLS_PACKAGES: &str = "dpkg apt-utils gzip";

/// The registry the scanned images were pushed to (reports name it; the index does not).
const REGISTRY: &str = "127.0.0.1:5000";

// ---------------------------------------------------------------------------------------------
// The apt repository

/// Runs `command` in `dir`, failing the test with its output when it fails; returns stdout.
fn run_in(dir: &Path, command: &mut Command) -> String {
    tools::run(command.current_dir(dir), TOOLS_PACKAGES)
}

/// A `.deb` of `name` at `version` (amd64, no files), built in `dir`.
fn build_deb(dir: &Path, name: &str, version: &str) -> PathBuf {
    let root = dir.join(format!("{name}-{version}"));
    std::fs::create_dir_all(root.join("DEBIAN")).expect("DEBIAN");
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: amd64\n\
             Maintainer: Slipway <test@example.org>\nDescription: Slipway test package\n"
        ),
    )
    .expect("control");
    let deb = dir.join(format!("{name}_{version}_amd64.deb"));
    run_in(
        dir,
        Command::new("dpkg-deb")
            .args(["--build", "--root-owner-group"])
            .arg(&root)
            .arg(&deb),
    );
    deb
}

/// Makes `dir` a flat apt repository offering exactly `debs`: the `.deb`s, `Packages`,
/// `Packages.gz` and `Release` (no `InRelease`), rewritten from scratch.
fn publish_flat(dir: &Path, debs: &[&Path]) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("repository directory");
    for deb in debs {
        std::fs::copy(deb, dir.join(deb.file_name().expect("file name"))).expect("copy");
    }
    let packages = run_in(dir, Command::new("apt-ftparchive").args(["packages", "."]));
    std::fs::write(dir.join("Packages"), packages).expect("Packages");
    run_in(dir, Command::new("gzip").args(["-9knf", "Packages"]));
    let release = run_in(dir, Command::new("apt-ftparchive").args(["release", "."]));
    std::fs::write(dir.join("Release"), release).expect("Release");
}

/// A file server on 127.0.0.1 over a directory; stopped when dropped.
struct Server {
    address: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    /// Binds an ephemeral port (the server is ready once this returns) and serves `root`.
    async fn start(root: &Path) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let address = listener.local_addr().expect("local address");
        let root = Arc::new(root.to_owned());
        let task = tokio::spawn(async move {
            // Dropping the set (when the task is aborted) aborts every connection.
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let root = Arc::clone(&root);
                let service = service_fn(move |request| {
                    let response = respond(&root, &request);
                    async move { Ok::<_, Infallible>(response) }
                });
                connections.spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Server { address, task }
    }

    /// `http://127.0.0.1:PORT/path`.
    fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.address)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A file under `root`, or 404.
fn respond(root: &Path, request: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let content = if path.split('/').any(|part| part == "..") {
        None
    } else {
        std::fs::read(root.join(path.trim_start_matches('/'))).ok()
    };
    let (status, body) = match content {
        Some(bytes) => (StatusCode::OK, Bytes::from(bytes)),
        None => (StatusCode::NOT_FOUND, Bytes::new()),
    };
    Response::builder()
        .status(status)
        .body(Full::new(body))
        .expect("response")
}

// ---------------------------------------------------------------------------------------------
// Scan reports

fn debian_12() -> OsIdentity {
    OsIdentity {
        id: "debian".into(),
        version_id: Some("12".into()),
        codename: Some("bookworm".into()),
        pretty_name: Some("Debian GNU/Linux 12 (bookworm)".into()),
        ..OsIdentity::default()
    }
}

fn deb(name: &str, version: &str) -> Package {
    Package {
        ecosystem: Ecosystem::Deb,
        name: name.into(),
        version: version.into(),
        arch: Some("amd64".into()),
        source_name: None,
        source_version: None,
        license: None,
        location: "/var/lib/dpkg/status".into(),
        files: Vec::new(),
    }
}

/// Appends to the test's report stream the scan report of `REGISTRY/team/<job>:1` (at a digest
/// made of `n`) listing `packages` on Debian 12, as the scan worker writes it.
async fn append_scan(bus: &TestBus, job: &str, n: u8, packages: Vec<Package>) {
    let image = format!("{REGISTRY}/team/{job}:1");
    let digest = Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap();
    let inventory = Inventory {
        os: Some(debian_12()),
        packages,
    };
    let analysis = Analysis {
        inventory: inventory.clone(),
        integrity: None,
        capabilities: Vec::new(),
        warnings: Vec::new(),
        durations: BTreeMap::new(),
    };
    let report = ScanReport::new(
        Subject {
            image: image.clone(),
            digest: Some(digest.to_string()),
            image_id: None,
            access: Access::LayerDirectories,
        },
        "2024-06-01T00:00:00Z".into(),
        &analysis,
        UpdatesReport::default(),
        slipway_scan::osv::check(&inventory, None),
    );
    let meta = ReportMeta {
        image: ImageRef::parse(&image).unwrap(),
        digest,
        job_id: JobId::new(),
        scanned_at: Timestamp::now(),
    };
    let body = serde_json::to_vec(&report).expect("the report as JSON");
    append_report(
        &bus.publisher,
        &report_stream_name(&bus.settings.namespace),
        &meta,
        &body,
    )
    .await
    .expect("append a scan report");
}

// ---------------------------------------------------------------------------------------------
// The index, the tracker and the build stand-in

/// One index entry's YAML: `team/<job>:1` from `repo`, depending on `parents` (`team/<p>:1`).
fn entry_yaml(id: usize, job: &str, repo: &LocalRepo, parents: &[&str]) -> String {
    let depends: Vec<String> = parents.iter().map(|p| format!("team/{p}:1")).collect();
    format!(
        "  - id: {id}\n    app-id: team\n    job-id: {job}\n    git-url: {}\n    git-path: /\n    git-branch: main\n    target-file: Dockerfile\n    desired-tag: \"1\"\n    notify-email: owner@example.org\n    depends-on: [{}]\n",
        repo.url(),
        depends.join(", ")
    )
}

/// The stand-in for lint and build: `build.succeeded` with a new digest each time.
fn stand_in_build(job: &Job, count: &std::sync::atomic::AtomicU64) -> Outcome {
    let Message::BuildRequested(request) = &job.envelope.message else {
        return Outcome::Reject("the stand-in takes build.requested".into());
    };
    let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    Outcome::Ack(vec![job.envelope.follow_up(Message::BuildSucceeded(
        BuildSucceeded {
            entry: request.entry.clone(),
            commit: CommitSha::try_from("ab".repeat(20)).unwrap(),
            image: ImageRef::parse(&format!("{REGISTRY}/{}", request.entry.image())).unwrap(),
            digest: Digest::parse(&format!("sha256:{n:064x}")).unwrap(),
            content_key: format!("key-{n}"),
            parent_digests: BTreeMap::new(),
            duration_ms: 1,
        },
    ))])
}

/// `(repository, fingerprint, [(image, packages)])` of each `packages.updated` in `events`.
type Update = (String, String, Vec<(String, Vec<String>)>);

fn updates(events: &[HistoryEvent]) -> Vec<Update> {
    events
        .iter()
        .filter_map(|e| match &e.envelope.message {
            Message::PackagesUpdated(updated) => Some((
                updated.repository.clone(),
                updated.fingerprint.clone(),
                updated
                    .images
                    .iter()
                    .map(|held| (held.image.to_string(), held.packages.clone()))
                    .collect(),
            )),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_update_in_a_local_apt_repository_rebuilds_exactly_the_images_holding_it() {
    let started = Instant::now();
    for (tool, package) in [
        ("dpkg-deb", "dpkg"),
        ("apt-ftparchive", "apt-utils"),
        ("gzip", "gzip"),
    ] {
        tools::require(tool, &["--version"], package);
    }
    let scratch = TempDir::new("package-updates");
    let debs_dir = scratch.path().join("debs");
    std::fs::create_dir_all(&debs_dir).expect("debs directory");
    let (p1, p2) = (
        build_deb(&debs_dir, P, "1.0-1"),
        build_deb(&debs_dir, P, "2.0-1"),
    );
    let (q1, q2) = (
        build_deb(&debs_dir, Q, "1.0-1"),
        build_deb(&debs_dir, Q, "2.0-1"),
    );
    let served = scratch.path().join("www");
    let flat = served.join("flat");
    publish_flat(&flat, &[&p1, &q1]);
    let server = Server::start(&served).await;

    // The index: base, child (on base) and other, all built from one repository.
    let source = LocalRepo::new("pkg-src");
    source.commit(&[("Dockerfile", "FROM scratch\n")], "first");
    let index = LocalRepo::new("pkg-index");
    index.commit(
        &[(
            "index.d/team.yaml",
            &format!(
                "Projects:\n{}{}{}",
                entry_yaml(1, "base", &source, &[]),
                entry_yaml(2, "child", &source, &["base"]),
                entry_yaml(3, "other", &source, &[]),
            ),
        )],
        "index",
    );

    let settings = test_settings("package-updates");
    let retention = ReportStreamSettings {
        max_age: "1h".into(),
        max_length_bytes: 64 << 20,
        max_segment_size_bytes: 8 << 20,
    };
    let topology = Topology::pipeline(&settings).with_reports(&retention);
    let bus = TestBus::start(settings.clone(), topology).await;

    // base and child hold P 1; other held P 1 once, but its newest report holds only Q 1; an
    // image that is not in the index holds P 1 too.
    append_scan(
        &bus,
        "base",
        1,
        vec![deb(P, "1.0-1"), deb("bash", "5.2.15-2")],
    )
    .await;
    append_scan(&bus, "child", 2, vec![deb(P, "1.0-1")]).await;
    append_scan(&bus, "other", 3, vec![deb(P, "1.0-1"), deb(Q, "1.0-1")]).await;
    append_scan(&bus, "other", 4, vec![deb(Q, "1.0-1")]).await;
    append_scan(&bus, "gone", 5, vec![deb(P, "1.0-1")]).await;

    let cache = TempDir::new("package-updates-cache");
    let mut config = RepoTrackerConfig {
        broker: settings,
        ..RepoTrackerConfig::default()
    };
    config.telemetry.metrics_addr = None;
    config.source.cache_dir = cache.path().join("git");
    config.source.allow_file_urls = true;
    config.tracker.index_url = index.url();
    config.tracker.index_branch = "main".into();
    config.tracker.poll_interval_ms = 300;
    config.tracker.poll_jitter_ms = 0;
    config.tracker.leader_renew_ms = 5_000;
    config.tracker.package_check_interval_ms = 300;
    config.tracker.package_fetch.cache_dir = cache.path().join("repos");
    config.tracker.package_fetch.timeout_ms = 10_000;
    config.tracker.package_repos = vec![RepoConfig {
        name: "test-apt".into(),
        kind: RepoKind::Apt,
        url: server.url("flat"),
        suite: Some("./".into()),
        components: Vec::new(),
        architectures: Vec::new(),
        applies_to: OsMatch {
            id: "debian".into(),
            version_id: Some("12".into()),
            codename: None,
        },
    }];
    let shutdown = CancellationToken::new();
    let tracker = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            if let Err(error) = slipway_repo_tracker::worker::run(config, shutdown).await {
                panic!("the tracker stopped: {error}");
            }
        }
    });
    let built = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let builder = bus.spawn_worker("lint", move |job: Job| {
        let built = Arc::clone(&built);
        async move { stand_in_build(&job, &built) }
    });
    let wait = |kinds: &'static [Kind], count: usize| {
        bus.wait_for_history(
            HistoryQuery::all().kinds(kinds.iter().copied()),
            count,
            DEADLINE,
        )
    };

    // The first look is a baseline: the repository's fingerprint, no images.
    wait(&[Kind::IndexApplied], 1).await;
    let baseline = updates(&wait(&[Kind::PackagesUpdated], 1).await);
    let (repository, first_fingerprint, images) = &baseline[0];
    assert_eq!(repository, "test-apt");
    assert!(
        first_fingerprint.starts_with("sha256:"),
        "{first_fingerprint}"
    );
    assert!(images.is_empty(), "a baseline rebuilds nothing: {images:?}");
    let baseline_at = started.elapsed();

    // P 2 is published: base and child hold P 1, other no longer does.
    publish_flat(&flat, &[&p1, &p2, &q1]);
    let published_at = Instant::now();
    let changed = updates(&wait(&[Kind::PackagesUpdated], 2).await);
    let seen_after = published_at.elapsed();
    assert_eq!(
        changed[1].2,
        [
            ("team/base:1".to_owned(), vec![P.to_owned()]),
            ("team/child:1".to_owned(), vec![P.to_owned()]),
        ],
        "exactly the index images whose newest report holds P 1"
    );
    assert_ne!(changed[1].1, changed[0].1);

    // base first; child once base is built.
    let events = wait(&[Kind::BuildRequested, Kind::BuildSucceeded], 4).await;
    let cause = format!("package-update:{P}");
    assert_eq!(
        requests(&events),
        [
            ("team/base:1".to_owned(), cause.clone()),
            ("team/child:1".to_owned(), cause.clone()),
        ]
    );
    let position = |kind: Kind, job: &str| {
        events
            .iter()
            .position(|e| {
                e.envelope.kind() == kind
                    && e.envelope.message.image().unwrap().0.path() == format!("team/{job}")
            })
            .unwrap_or_else(|| panic!("no {kind} for {job}"))
    };
    assert!(
        position(Kind::BuildSucceeded, "base") < position(Kind::BuildRequested, "child"),
        "the child is requested after its parent was built"
    );
    let rebuilt_after = published_at.elapsed();

    // Q 2 next: only other holds Q. Its request, after many checks at 300 ms, shows that the P
    // change was acted on once: no second packages.updated for it, no second request.
    publish_flat(&flat, &[&p1, &p2, &q1, &q2]);
    wait(&[Kind::BuildSucceeded], 3).await;
    let all = bus.history(HistoryQuery::all()).await;
    let all_updates = updates(&all);
    assert_eq!(
        all_updates
            .iter()
            .map(|(_, _, images)| images.clone())
            .collect::<Vec<_>>(),
        [
            vec![],
            vec![
                ("team/base:1".to_owned(), vec![P.to_owned()]),
                ("team/child:1".to_owned(), vec![P.to_owned()]),
            ],
            vec![("team/other:1".to_owned(), vec![Q.to_owned()])],
        ],
        "one packages.updated per change"
    );
    assert_eq!(
        requests(&all),
        [
            ("team/base:1".to_owned(), cause.clone()),
            ("team/child:1".to_owned(), cause),
            ("team/other:1".to_owned(), format!("package-update:{Q}")),
        ],
        "exactly one request per affected image"
    );
    println!(
        "baseline after {baseline_at:?}; P 2 seen {seen_after:?} after it was published, base and \
         child rebuilt {rebuilt_after:?} after; whole test {:?}",
        started.elapsed()
    );

    shutdown.cancel();
    tracker.await.expect("the tracker task ends");
    builder.stop().await.expect("the stand-in stops");
    bus.cleanup().await;
    drop(server);
}

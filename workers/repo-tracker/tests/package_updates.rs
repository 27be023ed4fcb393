//! Package updates end to end, against the real RabbitMQ and real package repositories made with
//! `slipway_tests::repos` and served over loopback HTTP: a flat apt repository of `.deb`s built
//! with `dpkg-deb` and indexed with `apt-ftparchive`; a yum repository of noarch rpms built with
//! `rpmbuild` and indexed with `createrepo_c`; an apk repository (an `APKINDEX.tar.gz` in Alpine's
//! layout, fetched with a conditional GET). Scan reports of the index images are appended to the
//! test's `N.reports` stream in the scan worker's own report format. The tracker runs in this
//! process with a short `package_check_interval_ms`; the lint and build workers are played by a
//! stand-in on the lint queue that answers each `build.requested` with `build.succeeded`.
//! Everything is checked from the history stream.
//!
//! Needs `dpkg-deb` (dpkg), `apt-ftparchive` (apt-utils) and `gzip` for the apt test, `rpmbuild`
//! (rpm) and `createrepo_c` (createrepo-c) for the yum and apk one; a missing tool fails the test
//! with the package to install.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slipway_broker::history::{HistoryEvent, HistoryQuery};
use slipway_broker::reports::{ReportStreamSettings, report_stream_name};
use slipway_broker::{BrokerSettings, Job, Outcome, Topology};
use slipway_common::message::{BuildSucceeded, CommitSha};
use slipway_common::{Digest, ImageRef, JobId, Kind, Message, Timestamp};
use slipway_repo_tracker::config::RepoTrackerConfig;
use slipway_scan::package::{Ecosystem, Inventory, OsIdentity, Package};
use slipway_scan::report::{Analysis, ScanReport, Subject};
use slipway_scan::reports::{Document, ReportMeta, append_report};
use slipway_scan::source::Access;
use slipway_scan::updates::{OsMatch, RepoConfig, RepoKind, UpdatesReport};
use slipway_tests::git::LocalRepo;
use slipway_tests::repos::{self, FileServer, apk_index, apt_flat, build_deb, build_rpm, yum};
use slipway_tests::{RunningWorker, TempDir, TestBus, requests, test_settings};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(60);

/// The package two images hold, and the one the third holds.
const P: &str = "slipway-p";
const Q: &str = "slipway-q";

/// The rpm one image holds, and the apk package another holds.
const R: &str = "slipway-r";
const K: &str = "slipway-k";

/// The registry the scanned images were pushed to (reports name it; the index does not).
const REGISTRY: &str = "127.0.0.1:5000";

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

fn rocky_9() -> OsIdentity {
    OsIdentity {
        id: "rocky".into(),
        version_id: Some("9.4".into()),
        id_like: vec!["rhel".into(), "centos".into(), "fedora".into()],
        pretty_name: Some("Rocky Linux 9.4 (Blue Onyx)".into()),
        ..OsIdentity::default()
    }
}

fn alpine_3_19() -> OsIdentity {
    OsIdentity {
        id: "alpine".into(),
        version_id: Some("3.19.1".into()),
        pretty_name: Some("Alpine Linux v3.19".into()),
        ..OsIdentity::default()
    }
}

/// An installed OS package of `ecosystem` as the scan worker lists it, with the architecture and
/// the package database of that ecosystem.
fn installed(ecosystem: Ecosystem, name: &str, version: &str) -> Package {
    let (arch, location) = match ecosystem {
        Ecosystem::Deb => ("amd64", "/var/lib/dpkg/status"),
        Ecosystem::Rpm => ("noarch", "/var/lib/rpm/rpmdb.sqlite"),
        Ecosystem::Apk => ("x86_64", "/lib/apk/db/installed"),
        other => panic!("not an OS package ecosystem: {other:?}"),
    };
    Package {
        ecosystem,
        name: name.into(),
        version: version.into(),
        arch: Some(arch.into()),
        source_name: None,
        source_version: None,
        license: None,
        location: location.into(),
        files: Vec::new(),
    }
}

fn deb(name: &str, version: &str) -> Package {
    installed(Ecosystem::Deb, name, version)
}

fn rpm(name: &str, version: &str) -> Package {
    installed(Ecosystem::Rpm, name, version)
}

fn apk(name: &str, version: &str) -> Package {
    installed(Ecosystem::Apk, name, version)
}

/// Appends to the test's report stream the scan report of `REGISTRY/team/<job>:1` (at a digest
/// made of `n`) listing `packages` on `os`, as the scan worker writes it.
async fn append_scan(bus: &TestBus, job: &str, n: u8, os: OsIdentity, packages: Vec<Package>) {
    let image = format!("{REGISTRY}/team/{job}:1");
    let digest = Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap();
    let inventory = Inventory {
        os: Some(os),
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
        (UpdatesReport::default(), Default::default()),
        slipway_scan::osv::check(&inventory, None),
    );
    let meta = ReportMeta {
        image: ImageRef::parse(&image).unwrap(),
        digest,
        job_id: JobId::new(),
        scanned_at: Timestamp::now(),
    };
    let body = serde_json::to_vec(&report).expect("the report as JSON");
    let stream = report_stream_name(&bus.settings.namespace);
    append_report(&bus.publisher, &stream, &meta, &body)
        .await
        .expect("append a scan report");
    // The scan worker stores the SBOM after the report: it must not hide the report.
    let sbom = meta.document_entry(
        &stream,
        Document::Sbom,
        b"{\"bomFormat\": \"CycloneDX\"}".to_vec(),
    );
    slipway_broker::streams::append_entry(&bus.publisher, &sbom)
        .await
        .expect("append an SBOM");
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

/// The test's bus: the pipeline's topology with the history and the reports stream.
async fn start_bus(settings: &BrokerSettings) -> TestBus {
    let retention = ReportStreamSettings {
        max_age: "1h".into(),
        max_length_bytes: 64 << 20,
        max_segment_size_bytes: 8 << 20,
    };
    let topology = Topology::pipeline(settings).with_reports(&retention);
    TestBus::start(settings.clone(), topology).await
}

/// Starts the tracker in this process on `settings`' namespace, following `index` (polled every
/// 300 ms) and looking at `package_repos` every 300 ms, its caches in `cache`. Cancel the token
/// to stop it; the task panics if the tracker stops with an error.
fn start_tracker(
    settings: BrokerSettings,
    index: &LocalRepo,
    cache: &TempDir,
    package_repos: Vec<RepoConfig>,
) -> (CancellationToken, JoinHandle<()>) {
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
    config.tracker.package_repos = package_repos;
    let shutdown = CancellationToken::new();
    let tracker = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            if let Err(error) = slipway_repo_tracker::worker::run(config, shutdown).await {
                panic!("the tracker stopped: {error}");
            }
        }
    });
    (shutdown, tracker)
}

/// The stand-in for lint and build on `bus`: [`stand_in_build`] with its own counter.
fn spawn_stand_in(bus: &TestBus) -> RunningWorker {
    let built = Arc::new(std::sync::atomic::AtomicU64::new(0));
    bus.spawn_worker("lint", move |job: Job| {
        let built = Arc::clone(&built);
        async move { stand_in_build(&job, &built) }
    })
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
            record: None,
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

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_update_in_a_local_apt_repository_rebuilds_exactly_the_images_holding_it() {
    let started = Instant::now();
    // dpkg-deb, apt-ftparchive and gzip (not xz: a flat repository has no Packages.xz).
    repos::require(&repos::APT_TOOLS[..3]);
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
    apt_flat(&flat, &[&p1, &q1]);
    let server = FileServer::start(&served).await;

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
    let bus = start_bus(&settings).await;

    // base and child hold P 1; other held P 1 once, but its newest report holds only Q 1; an
    // image that is not in the index holds P 1 too.
    append_scan(
        &bus,
        "base",
        1,
        debian_12(),
        vec![deb(P, "1.0-1"), deb("bash", "5.2.15-2")],
    )
    .await;
    append_scan(&bus, "child", 2, debian_12(), vec![deb(P, "1.0-1")]).await;
    append_scan(
        &bus,
        "other",
        3,
        debian_12(),
        vec![deb(P, "1.0-1"), deb(Q, "1.0-1")],
    )
    .await;
    append_scan(&bus, "other", 4, debian_12(), vec![deb(Q, "1.0-1")]).await;
    append_scan(&bus, "gone", 5, debian_12(), vec![deb(P, "1.0-1")]).await;

    let cache = TempDir::new("package-updates-cache");
    let (shutdown, tracker) = start_tracker(
        settings,
        &index,
        &cache,
        vec![RepoConfig {
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
        }],
    );
    let builder = spawn_stand_in(&bus);
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
    apt_flat(&flat, &[&p1, &p2, &q1]);
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
    apt_flat(&flat, &[&p1, &p2, &q1, &q2]);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn package_updates_in_local_yum_and_apk_repositories_rebuild_exactly_the_images_holding_them()
{
    let started = Instant::now();
    repos::require(&repos::YUM_TOOLS);
    let scratch = TempDir::new("package-updates-yum-apk");
    let rpms_dir = scratch.path().join("rpms");
    std::fs::create_dir_all(&rpms_dir).expect("rpms directory");
    let (r1, r2) = (
        build_rpm(&rpms_dir, R, None, "1.0", "1"),
        build_rpm(&rpms_dir, R, None, "1.1", "1"),
    );
    let served = scratch.path().join("www");
    let (yum_dir, apk_dir) = (served.join("yum"), served.join("apk"));
    yum(&yum_dir, &[&r1]);
    apk_index(&apk_dir, K, "x86_64", &["1.0-r0"]);
    let server = FileServer::start(&served).await;

    // The index: a, b and c, all built from one repository, none on another.
    let source = LocalRepo::new("pkg-src");
    source.commit(&[("Dockerfile", "FROM scratch\n")], "first");
    let index = LocalRepo::new("pkg-index");
    index.commit(
        &[(
            "index.d/team.yaml",
            &format!(
                "Projects:\n{}{}{}",
                entry_yaml(1, "a", &source, &[]),
                entry_yaml(2, "b", &source, &[]),
                entry_yaml(3, "c", &source, &[]),
            ),
        )],
        "index",
    );

    let settings = test_settings("package-updates-yum-apk");
    let bus = start_bus(&settings).await;

    // a (Rocky 9) holds R 1.0; b (Alpine 3.19) holds K 1.0; c (Alpine 3.19) holds neither.
    append_scan(
        &bus,
        "a",
        1,
        rocky_9(),
        vec![rpm(R, "1.0-1"), rpm("bash", "5.1.8-9.el9")],
    )
    .await;
    append_scan(
        &bus,
        "b",
        2,
        alpine_3_19(),
        vec![apk(K, "1.0-r0"), apk("musl", "1.2.4_git20230717-r4")],
    )
    .await;
    append_scan(
        &bus,
        "c",
        3,
        alpine_3_19(),
        vec![apk("busybox", "1.36.1-r15")],
    )
    .await;

    let cache = TempDir::new("package-updates-yum-apk-cache");
    let (shutdown, tracker) = start_tracker(
        settings,
        &index,
        &cache,
        vec![
            RepoConfig {
                name: "test-yum".into(),
                kind: RepoKind::Yum,
                url: server.url("yum"),
                suite: None,
                components: Vec::new(),
                architectures: Vec::new(),
                applies_to: OsMatch {
                    id: "rocky".into(),
                    version_id: Some("9".into()),
                    codename: None,
                },
            },
            RepoConfig {
                name: "test-apk".into(),
                kind: RepoKind::Apk,
                url: server.url("apk"),
                suite: None,
                components: Vec::new(),
                architectures: vec!["x86_64".into()],
                applies_to: OsMatch {
                    id: "alpine".into(),
                    version_id: Some("3.19".into()),
                    codename: None,
                },
            },
        ],
    );
    let builder = spawn_stand_in(&bus);
    let wait = |kinds: &'static [Kind], count: usize| {
        bus.wait_for_history(
            HistoryQuery::all().kinds(kinds.iter().copied()),
            count,
            DEADLINE,
        )
    };

    // The first look at each repository is a baseline: its fingerprint, no images.
    wait(&[Kind::IndexApplied], 1).await;
    let baselines = updates(&wait(&[Kind::PackagesUpdated], 2).await);
    let mut baseline_repositories: Vec<&str> = baselines
        .iter()
        .map(|(repository, _, _)| repository.as_str())
        .collect();
    baseline_repositories.sort_unstable();
    assert_eq!(baseline_repositories, ["test-apk", "test-yum"]);
    for (repository, fingerprint, images) in &baselines {
        assert!(
            fingerprint.starts_with("sha256:"),
            "{repository}: {fingerprint}"
        );
        assert!(
            images.is_empty(),
            "{repository}: a baseline rebuilds nothing: {images:?}"
        );
    }
    let baseline_at = started.elapsed();
    let fingerprint_of = |updates: &[Update], repository: &str| {
        updates
            .iter()
            .rev()
            .find(|(name, _, _)| name == repository)
            .map(|(_, fingerprint, _)| fingerprint.clone())
            .expect("a packages.updated of the repository")
    };

    // R 1.1 is published in the yum repository: only a holds R 1.0.
    yum(&yum_dir, &[&r2]);
    let rpm_published_at = Instant::now();
    let changed = updates(&wait(&[Kind::PackagesUpdated], 3).await);
    let rpm_seen_after = rpm_published_at.elapsed();
    assert_eq!(changed[2].0, "test-yum");
    assert_eq!(
        changed[2].2,
        [("team/a:1".to_owned(), vec![R.to_owned()])],
        "exactly the index image whose newest report holds R 1.0"
    );
    assert_ne!(changed[2].1, fingerprint_of(&baselines, "test-yum"));
    let events = wait(&[Kind::BuildRequested, Kind::BuildSucceeded], 2).await;
    let rpm_cause = format!("package-update:{R}");
    assert_eq!(
        requests(&events),
        [("team/a:1".to_owned(), rpm_cause.clone())]
    );
    let rpm_rebuilt_after = rpm_published_at.elapsed();

    // K 1.1 is published in the apk repository: only b holds K 1.0.
    apk_index(&apk_dir, K, "x86_64", &["1.0-r0", "1.1-r0"]);
    let apk_published_at = Instant::now();
    let changed = updates(&wait(&[Kind::PackagesUpdated], 4).await);
    let apk_seen_after = apk_published_at.elapsed();
    assert_eq!(changed[3].0, "test-apk");
    assert_eq!(
        changed[3].2,
        [("team/b:1".to_owned(), vec![K.to_owned()])],
        "exactly the index image whose newest report holds K 1.0"
    );
    assert_ne!(changed[3].1, fingerprint_of(&baselines, "test-apk"));
    wait(&[Kind::BuildSucceeded], 2).await;
    let apk_rebuilt_after = apk_published_at.elapsed();

    // Each change was acted on once: the apk change came after many checks at 300 ms of the
    // changed yum repository.
    let all = bus.history(HistoryQuery::all()).await;
    assert_eq!(
        updates(&all)
            .iter()
            .map(|(repository, _, images)| (repository.as_str(), images.clone()))
            .filter(|(_, images)| !images.is_empty())
            .collect::<Vec<_>>(),
        [
            (
                "test-yum",
                vec![("team/a:1".to_owned(), vec![R.to_owned()])]
            ),
            (
                "test-apk",
                vec![("team/b:1".to_owned(), vec![K.to_owned()])]
            ),
        ],
        "one packages.updated per change"
    );
    assert_eq!(updates(&all).len(), 4, "two baselines and two changes");
    assert_eq!(
        requests(&all),
        [
            ("team/a:1".to_owned(), rpm_cause),
            ("team/b:1".to_owned(), format!("package-update:{K}")),
        ],
        "exactly one request per affected image"
    );
    // The check that saw R 1.1 asked for the unchanged apk index with the ETag it had stored.
    let apk_path = "/apk/x86_64/APKINDEX.tar.gz";
    assert!(
        server.count(apk_path, 304) > 0,
        "the apk index is fetched conditionally: {:?}",
        server.requests()
    );
    println!(
        "baselines after {baseline_at:?}; R 1.1 seen {rpm_seen_after:?} after it was published, \
         a rebuilt {rpm_rebuilt_after:?} after; K 1.1 seen {apk_seen_after:?} after, b rebuilt \
         {apk_rebuilt_after:?} after; repomd.xml downloaded {} times, APKINDEX {} times and \
         not modified {} times; whole test {:?}",
        server.count("/yum/repodata/repomd.xml", 200),
        server.count(apk_path, 200),
        server.count(apk_path, 304),
        started.elapsed()
    );

    shutdown.cancel();
    tracker.await.expect("the tracker task ends");
    builder.stop().await.expect("the stand-in stops");
    bus.cleanup().await;
    drop(server);
}

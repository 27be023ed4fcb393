//! Language-package updates against package indexes served over loopback HTTP, for an image
//! built by the Docker daemon with a Python distribution, two npm packages (one scoped) and a
//! gem installed (their metadata files, as pip, npm and gem write them):
//! - a PEP 503 simple index (static HTML pages, as a PEP 503 directory is served) offering a
//!   newer version, a newer yanked one and a newer pre-release;
//! - a PEP 691 JSON page of the same distribution on a second PyPI index;
//! - an npm registry as a static packument tree (`@scope%2fname` for the scoped package);
//! - a RubyGems source with `api/v1/versions/NAME.json` and another with a compact index
//!   (`info/NAME`), each offering a different newer version;
//! - an index on a port nobody listens on, which fails while the others answer.
//!
//! The server is `slipway_tests::repos::FileServer`, which logs every request, so that the
//! response cache is seen from outside: a second scan asks nothing.

use std::time::Duration;

use slipway_scan::package::Ecosystem;
use slipway_scan::pipeline::{self, PipelineOptions, ScanSubject, Source};
use slipway_scan::updates::{
    FetchSettings, Fetcher, IndexConfig, IndexKind, LanguageUpdate, validate_indexes,
};
use slipway_tests::repos::FileServer;
use slipway_tests::scratch::TempDir;
use slipway_tests::{BASE_IMAGE, docker, ensure_docker, try_docker};

/// The image's language packages: Python `slipway-probe` 1.0, npm `slipway-npm-probe` 1.0.0
/// and `@slipway/scoped` 2.0.0, gem `slipway-gem` 0.9.
const DOCKERFILE_RUN: &str = r#"RUN set -e; \
  d=/usr/lib/python3/dist-packages/slipway_probe-1.0.dist-info; mkdir -p $d; \
  printf 'Metadata-Version: 2.1\nName: Slipway_Probe\nVersion: 1.0\n' > $d/METADATA; \
  n=/usr/lib/node_modules; mkdir -p $n/slipway-npm-probe $n/@slipway/scoped; \
  printf '{"name": "slipway-npm-probe", "version": "1.0.0"}' > $n/slipway-npm-probe/package.json; \
  printf '{"name": "@slipway/scoped", "version": "2.0.0"}' > $n/@slipway/scoped/package.json; \
  g=/var/lib/gems/3.1.0/specifications; mkdir -p $g; \
  printf '# stub: slipway-gem 0.9 ruby lib\nGem::Specification.new do |s|\n  s.name = "slipway-gem".freeze\n  s.version = "0.9"\nend\n' > $g/slipway-gem-0.9.gemspec
"#;

/// Writes the indexes' documents under `root`.
fn write_indexes(dir: &TempDir) {
    dir.file(
        "simple/slipway-probe/index.html",
        r#"<!DOCTYPE html><html><body>
<a href="../../files/slipway_probe-1.0.tar.gz">slipway_probe-1.0.tar.gz</a><br/>
<a href="../../files/slipway_probe-1.1-py3-none-any.whl">slipway_probe-1.1-py3-none-any.whl</a><br/>
<a href="../../files/slipway_probe-1.2.tar.gz" data-yanked="broken build">slipway_probe-1.2.tar.gz</a><br/>
<a href="../../files/slipway_probe-2.0rc1.tar.gz">slipway_probe-2.0rc1.tar.gz</a><br/>
</body></html>"#,
    );
    // PEP 691 on a second index: 1.1.1 is newer than the first index's 1.1.
    dir.file(
        "simple-json/slipway-probe/index.html",
        r#"{"meta": {"api-version": "1.0"}, "name": "slipway-probe", "files": [
  {"filename": "slipway_probe-1.1.1.tar.gz", "url": "x", "hashes": {}},
  {"filename": "slipway_probe-1.3.tar.gz", "url": "y", "hashes": {}, "yanked": true}]}"#,
    );
    dir.file(
        "npm/slipway-npm-probe",
        r#"{"name": "slipway-npm-probe", "dist-tags": {"latest": "1.2.0"},
  "versions": {"1.0.0": {}, "1.2.0": {}, "1.10.0-beta.1": {}}}"#,
    );
    dir.file(
        "npm/@slipway%2fscoped",
        r#"{"name": "@slipway/scoped", "versions": {"2.0.0": {}, "2.1.0": {}}}"#,
    );
    dir.file(
        "gems/api/v1/versions/slipway-gem.json",
        r#"[{"number": "1.0", "platform": "ruby"}, {"number": "1.5", "platform": "java"}]"#,
    );
    dir.file(
        "compact/info/slipway-gem",
        "---\n0.9 |checksum:aa\n1.1 |checksum:bb\n1.2.pre |checksum:cc\n",
    );
}

fn index(name: &str, kind: IndexKind, url: String) -> IndexConfig {
    IndexConfig {
        name: name.into(),
        kind,
        url,
    }
}

fn update(
    ecosystem: Ecosystem,
    name: &str,
    installed: &str,
    available: &str,
    index: &str,
    location: &str,
) -> LanguageUpdate {
    LanguageUpdate {
        ecosystem,
        name: name.into(),
        installed: installed.into(),
        available: available.into(),
        index: index.into(),
        location: location.into(),
    }
}

/// Removes the image when the test ends, passed or not.
struct Image(String);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = try_docker(&["rmi", "-f", &self.0], None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn language_packages_are_checked_against_pypi_npm_and_rubygems_indexes() {
    ensure_docker();
    let image = Image(format!("slipway-test/lang-updates:{}", std::process::id()));
    docker(
        &["build", "-q", "--network", "none", "-t", &image.0, "-"],
        Some(&format!("FROM {BASE_IMAGE}\n{DOCKERFILE_RUN}")),
    );

    let dir = TempDir::new("language-updates");
    write_indexes(&dir);
    let server = FileServer::start(dir.path()).await;
    let closed = {
        // A port that was just free: nothing listens on it.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let indexes = validate_indexes(&[
        index("pypi-html", IndexKind::Pypi, server.url("simple/")),
        index("pypi-json", IndexKind::Pypi, server.url("simple-json/")),
        index("npm", IndexKind::Npm, server.url("npm/")),
        index("gems-api", IndexKind::Rubygems, server.url("gems/")),
        index(
            "gems-compact",
            IndexKind::RubygemsCompact,
            server.url("compact/"),
        ),
        index(
            "down",
            IndexKind::Npm,
            format!("http://127.0.0.1:{closed}/"),
        ),
    ])
    .unwrap();
    let cache = TempDir::new("language-updates-cache");
    let fetcher = Fetcher::new(&FetchSettings {
        cache_dir: cache.path().to_owned(),
        timeout_ms: 10_000,
        ..FetchSettings::default()
    })
    .unwrap();
    let engine = slipway_docker::DockerEngine::connect()
        .await
        .expect("dockerd");
    let subject = ScanSubject {
        name: image.0.clone(),
        image: None,
        pinned: None,
    };
    let scan = || {
        pipeline::scan(
            Source::Daemon {
                engine: &engine,
                reference: image.0.clone(),
            },
            &subject,
            PipelineOptions {
                indexes: &indexes,
                fetcher: Some(&fetcher),
                ..PipelineOptions::default()
            },
        )
    };

    let scanned = tokio::time::timeout(Duration::from_secs(120), scan())
        .await
        .expect("the scan ends")
        .expect("the image is scanned");
    let report = &scanned.report.language_updates;
    assert_eq!(
        report.updates,
        [
            update(
                Ecosystem::Pypi,
                "Slipway_Probe",
                "1.0",
                "1.1.1",
                "pypi-json",
                "/usr/lib/python3/dist-packages/slipway_probe-1.0.dist-info/METADATA"
            ),
            update(
                Ecosystem::Npm,
                "@slipway/scoped",
                "2.0.0",
                "2.1.0",
                "npm",
                "/usr/lib/node_modules/@slipway/scoped/package.json"
            ),
            update(
                Ecosystem::Npm,
                "slipway-npm-probe",
                "1.0.0",
                "1.2.0",
                "npm",
                "/usr/lib/node_modules/slipway-npm-probe/package.json"
            ),
            update(
                Ecosystem::Gem,
                "slipway-gem",
                "0.9",
                "1.1",
                "gems-compact",
                "/var/lib/gems/3.1.0/specifications/slipway-gem-0.9.gemspec"
            ),
        ],
        "newest installable release per package: no yanked, pre-release or other-platform one"
    );
    assert_eq!(
        report.indexes,
        [
            "pypi-html",
            "pypi-json",
            "npm",
            "gems-api",
            "gems-compact",
            "down"
        ]
    );
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert!(
        report.errors[0]
            .starts_with("index \"down\": 2 of 2 lookups failed; first: GET http://127.0.0.1:")
            && report.errors[0].contains("cannot connect"),
        "{}",
        report.errors[0]
    );
    assert_eq!(scanned.report.counts().get("language-updates"), Some(&4));
    assert_eq!(
        scanned.language_updates_found,
        [
            (Ecosystem::Pypi, 1),
            (Ecosystem::Npm, 2),
            (Ecosystem::Gem, 1)
        ]
        .into_iter()
        .collect()
    );
    let json = serde_json::to_value(&scanned.report).unwrap();
    assert_eq!(
        json["language_updates"]["updates"][3]["ecosystem"], "gem",
        "the report names each update's ecosystem"
    );

    // The worker's telemetry counts them by ecosystem.
    slipway_scan::telemetry::scan_completed(
        slipway_common::JobId::new(),
        &image.0,
        "sha256:00",
        &scanned.analysis.durations,
        &scanned.packages_by_ecosystem(),
        (0, &scanned.language_updates_found),
    );
    assert_eq!(
        slipway_tests::metric_value(
            r#"slipway_scan_language_updates_found_total{ecosystem="npm"}"#
        ),
        Some(2.0)
    );

    // A second scan is answered from the cache: the server sees no request.
    let asked = server.requests().len();
    assert_eq!(
        asked,
        6,
        "one document per package and index: {:?}",
        server.requests()
    );
    let again = scan().await.expect("scanned again");
    assert_eq!(again.report.language_updates.updates, report.updates);
    assert_eq!(server.requests().len(), asked, "{:?}", server.requests());
}

#[tokio::test]
async fn an_answer_over_the_size_limit_is_an_error_naming_the_limit() {
    let dir = TempDir::new("language-updates-limit");
    dir.file(
        "npm/big",
        &format!(
            r#"{{"versions": {{"1.0.0": {{"readme": "{}"}}}}}}"#,
            "x".repeat(4096)
        ),
    );
    let server = FileServer::start(dir.path()).await;
    let cache = TempDir::new("language-updates-limit-cache");
    let fetcher = Fetcher::new(&FetchSettings {
        cache_dir: cache.path().to_owned(),
        max_document_bytes: 1024,
        ..FetchSettings::default()
    })
    .unwrap();
    let index = validate_indexes(&[index("npm", IndexKind::Npm, server.url("npm/"))]).unwrap();
    let error = fetcher.releases(&index[0], "big").await.unwrap_err();
    assert!(
        error.to_string().contains("expected at most 1024 bytes"),
        "{error}"
    );
    let unknown = fetcher.releases(&index[0], "unknown").await.unwrap();
    assert!(
        unknown.is_empty(),
        "a package the index does not know has no releases"
    );
}

#[tokio::test]
async fn lookups_past_the_per_scan_limit_are_reported_not_made() {
    let dir = TempDir::new("language-updates-lookups");
    dir.file("npm/a", r#"{"versions": {"1.0.0": {}, "2.0.0": {}}}"#);
    dir.file("npm/b", r#"{"versions": {"1.0.0": {}, "2.0.0": {}}}"#);
    let server = FileServer::start(dir.path()).await;
    let cache = TempDir::new("language-updates-lookups-cache");
    let fetcher = Fetcher::new(&FetchSettings {
        cache_dir: cache.path().to_owned(),
        max_index_lookups: 1,
        ..FetchSettings::default()
    })
    .unwrap();
    let indexes = validate_indexes(&[index("npm", IndexKind::Npm, server.url("npm/"))]).unwrap();
    let package = |name: &str| slipway_scan::package::Package {
        ecosystem: Ecosystem::Npm,
        name: name.into(),
        version: "1.0.0".into(),
        arch: None,
        source_name: None,
        source_version: None,
        license: None,
        location: format!("/node_modules/{name}/package.json"),
        files: Vec::new(),
    };
    let inventory = slipway_scan::package::Inventory {
        os: None,
        packages: vec![package("a"), package("b")],
    };
    let report =
        slipway_scan::updates::language::lookup::check(Some(&fetcher), &indexes, &inventory).await;
    assert_eq!(report.updates.len(), 1, "{:?}", report.updates);
    assert_eq!(
        report.errors,
        ["1 package lookups not made: expected at most 1 per scan (max_index_lookups)"]
    );
    assert_eq!(server.requests().len(), 1, "only one request was sent");
}

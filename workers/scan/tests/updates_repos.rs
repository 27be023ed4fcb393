//! Updates against real repositories served over loopback HTTP, made with
//! `slipway_tests::repos`:
//! - apt: `.deb`s built with `dpkg-deb`, indexed with `apt-ftparchive`, in a flat repository
//!   (`Packages.gz`, `Release` only, so `InRelease` is a 404) and in a `dists/bookworm/main/
//!   binary-amd64` layout (`Packages.xz` preferred, `InRelease` = the `Release` in clear-sign
//!   armour with a placeholder signature: signatures are not verified);
//! - yum: noarch rpms built with `rpmbuild` (with epochs), indexed with `createrepo_c`;
//! - apk: an `APKINDEX.tar.gz` written in Alpine's layout (signature member first).
//!
//! The server is a small hyper file server in the test's runtime on 127.0.0.1 (ephemeral port,
//! bound before the test goes on), giving an `ETag` (for apk's conditional GET) and logging
//! every request, so that what was downloaded is counted from the outside.
//!
//! Needs `dpkg-deb` (dpkg), `apt-ftparchive` (apt-utils), `gzip`, `xz` (xz-utils), `rpmbuild`
//! (rpm) and `createrepo_c` (createrepo-c); a missing tool fails the test with the package to
//! install.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use sha2::{Digest, Sha256};
use slipway_scan::package::{Ecosystem, Inventory, OsIdentity, Package};
use slipway_scan::updates::{
    FetchError, FetchSettings, Fetcher, Repo, RepoConfig, RepoIndex, Update, find_updates,
    validate_repos,
};
use slipway_tests::repos::{self, FileServer, apt_dists, apt_flat, yum};
use slipway_tests::scratch::TempDir;

/// The apt test package and its versions in the fixture.
const DEB: &str = "slipway-hello";
/// The yum test package (epoch 1) and one whose repository version has a lower epoch.
const RPM: &str = "slipway-yum";
const RPM_OLD_EPOCH: &str = "slipway-epoch";
/// The apk test package.
const APK: &str = "slipway-apk";

// ---------------------------------------------------------------------------------------------
// Fixture packages

/// Built packages shared by the tests.
struct Built {
    /// `.deb` files by version of [`DEB`].
    debs: Vec<(&'static str, PathBuf)>,
    /// `.rpm` files by full version, per name.
    rpms: Vec<(&'static str, &'static str, PathBuf)>,
}

impl Built {
    fn deb(&self, version: &str) -> &Path {
        &self
            .debs
            .iter()
            .find(|(v, _)| *v == version)
            .expect("built deb")
            .1
    }

    fn rpm(&self, name: &str, version: &str) -> &Path {
        &self
            .rpms
            .iter()
            .find(|(n, v, _)| *n == name && *v == version)
            .expect("built rpm")
            .2
    }
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(build_packages)
}

fn build_packages() -> Built {
    repos::require(&repos::APT_TOOLS);
    repos::require(&repos::YUM_TOOLS);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("updates_repos-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");

    let debs = ["1.0-1", "1.1-1", "1.2-1"]
        .into_iter()
        .map(|version| (version, repos::build_deb(&dir, DEB, version)))
        .collect();

    let rpms = [
        (RPM, "1:1.0-1", "1.0"),
        (RPM, "1:1.1-1", "1.1"),
        (RPM_OLD_EPOCH, "1:9.0-1", "9.0"),
    ]
    .into_iter()
    .map(|(name, full, version)| {
        (
            name,
            full,
            repos::build_rpm(&dir, name, Some(1), version, "1"),
        )
    })
    .collect();
    Built { debs, rpms }
}

/// An apk repository in `root/apk` whose `x86_64/APKINDEX.tar.gz` offers [`APK`] at `versions`.
fn apk(root: &Path, versions: &[&str]) {
    repos::apk_index(&root.join("apk"), APK, "x86_64", versions);
}

// ---------------------------------------------------------------------------------------------
// Configuration, inventories, fetching

/// The OS every test repository applies to.
fn test_os() -> OsIdentity {
    OsIdentity {
        id: "slipway-test".into(),
        version_id: Some("1.2".into()),
        ..OsIdentity::default()
    }
}

/// The repositories of a scan worker configuration file holding `[[repos]]` tables, read with
/// the `config` crate as the worker reads its file, and validated.
fn repos(toml: &str) -> Vec<Repo> {
    #[derive(serde::Deserialize)]
    struct File {
        repos: Vec<RepoConfig>,
    }
    let file: File = config::Config::builder()
        .add_source(config::File::from_str(toml, config::FileFormat::Toml))
        .build()
        .and_then(config::Config::try_deserialize)
        .unwrap_or_else(|e| panic!("{e}:\n{toml}"));
    validate_repos(&file.repos).expect("valid repositories")
}

/// A `[[repos]]` table applying to [`test_os`], with `fields` (TOML lines) after its name.
fn table(name: &str, fields: &str) -> String {
    format!(
        "[[repos]]\nname = \"{name}\"\n{fields}\n\
         applies_to = {{ id = \"slipway-test\", version_id = \"1\" }}\n"
    )
}

/// One repository: [`table`] read by [`repos`].
fn repo(name: &str, fields: &str) -> Repo {
    repos(&table(name, fields)).remove(0)
}

/// The fields of a flat apt repository at `url`.
fn flat_fields(url: &str) -> String {
    format!("kind = \"apt\"\nurl = \"{url}\"\nsuite = \"./\"")
}

/// The fields of an apt repository at `url` with `dists/bookworm/main/binary-amd64`.
fn dists_fields(url: &str) -> String {
    format!(
        "kind = \"apt\"\nurl = \"{url}\"\nsuite = \"bookworm\"\ncomponents = [\"main\"]\n\
         architectures = [\"amd64\"]"
    )
}

/// The fields of a yum repository at `url`.
fn yum_fields(url: &str) -> String {
    format!("kind = \"yum\"\nurl = \"{url}\"")
}

/// The fields of an apk repository at `url` for x86_64.
fn apk_fields(url: &str) -> String {
    format!("kind = \"apk\"\nurl = \"{url}\"\narchitectures = [\"x86_64\"]")
}

fn fetcher(cache: &Path) -> Fetcher {
    Fetcher::new(&FetchSettings {
        cache_dir: cache.to_owned(),
        timeout_ms: 10_000,
        ..FetchSettings::default()
    })
    .expect("fetcher")
}

fn installed(ecosystem: Ecosystem, name: &str, version: &str, arch: &str) -> Package {
    Package {
        ecosystem,
        name: name.into(),
        version: version.into(),
        arch: Some(arch.into()),
        source_name: None,
        source_version: None,
        license: None,
        location: "test".into(),
        files: Vec::new(),
    }
}

fn inventory(packages: Vec<Package>) -> Inventory {
    Inventory {
        os: Some(test_os()),
        packages,
    }
}

fn update(name: &str, arch: &str, installed: &str, available: &str, repo: &str) -> Update {
    Update {
        name: name.into(),
        arch: Some(arch.into()),
        installed: installed.into(),
        available: available.into(),
        repo: repo.into(),
    }
}

/// Fetches `repos` for the test OS, failing the test on any repository error.
async fn fetch_all(fetcher: &Fetcher, repos: &[Repo]) -> Vec<RepoIndex> {
    let (indexes, errors) = fetcher.fetch_indexes(repos, &test_os()).await;
    assert!(errors.is_empty(), "{errors:#?}");
    indexes
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn apt_flat_and_dists_repositories_offer_the_newer_version() {
    let built = built();
    let root = TempDir::new("updates-apt");
    let debs = [built.deb("1.0-1"), built.deb("1.1-1")];
    apt_flat(&root.path().join("flat"), &debs);
    apt_dists(&root.path().join("deb"), &debs);
    runtime().block_on(async {
        let server = FileServer::start(root.path()).await;
        let flat = repo("flat", &flat_fields(&server.url("flat")));
        let dists = repo("dists", &dists_fields(&server.url("deb/")));
        let fetcher = fetcher(&root.path().join("cache"));
        for (repo, name) in [(&flat, "flat"), (&dists, "dists")] {
            let indexes = fetch_all(&fetcher, std::slice::from_ref(repo)).await;
            let old = inventory(vec![installed(Ecosystem::Deb, DEB, "1.0-1", "amd64")]);
            assert_eq!(
                find_updates(&old, &indexes),
                [update(DEB, "amd64", "1.0-1", "1.1-1", name)]
            );
            let current = inventory(vec![installed(Ecosystem::Deb, DEB, "1.1-1", "amd64")]);
            assert_eq!(find_updates(&current, &indexes), []);
            // A package of another ecosystem with the same name is not compared.
            let rpm = inventory(vec![installed(Ecosystem::Rpm, DEB, "0.1-1", "amd64")]);
            assert_eq!(find_updates(&rpm, &indexes), []);
        }
        // Flat: no InRelease, so Release; Packages.gz is the best listed. dists: InRelease and
        // Packages.xz.
        assert_eq!(server.count("/flat/InRelease", 404), 1);
        assert_eq!(server.count("/flat/Release", 200), 1);
        assert_eq!(server.count("/flat/Packages.gz", 200), 1);
        assert_eq!(server.count("/deb/dists/bookworm/InRelease", 200), 1);
        assert_eq!(server.count("/deb/dists/bookworm/Release", 200), 0);
        assert_eq!(
            server.count("/deb/dists/bookworm/main/binary-amd64/Packages.xz", 200),
            1
        );
        assert_eq!(server.requests().len(), 5, "{:?}", server.requests());
    });
}

#[test]
fn yum_repository_offers_the_newer_version_epochs_first() {
    let built = built();
    let root = TempDir::new("updates-yum");
    yum(
        &root.path().join("yum"),
        &[
            built.rpm(RPM, "1:1.0-1"),
            built.rpm(RPM, "1:1.1-1"),
            built.rpm(RPM_OLD_EPOCH, "1:9.0-1"),
        ],
    );
    runtime().block_on(async {
        let server = FileServer::start(root.path()).await;
        let el = repo("el", &yum_fields(&server.url("yum")));
        let fetcher = fetcher(&root.path().join("cache"));
        let indexes = fetch_all(&fetcher, &[el]).await;
        let old = inventory(vec![
            installed(Ecosystem::Rpm, RPM, "1:1.0-1", "noarch"),
            // Epoch 2 installed: 1:9.0-1 in the repository is older.
            installed(Ecosystem::Rpm, RPM_OLD_EPOCH, "2:1.0-1", "noarch"),
        ]);
        assert_eq!(
            find_updates(&old, &indexes),
            [update(RPM, "noarch", "1:1.0-1", "1:1.1-1", "el")]
        );
        let current = inventory(vec![
            installed(Ecosystem::Rpm, RPM, "1:1.1-1", "noarch"),
            installed(Ecosystem::Rpm, RPM_OLD_EPOCH, "1:9.0-1", "noarch"),
        ]);
        assert_eq!(find_updates(&current, &indexes), []);
        // Without an epoch installed, epoch 1 is newer whatever the version.
        let no_epoch = inventory(vec![installed(
            Ecosystem::Rpm,
            RPM_OLD_EPOCH,
            "10.0-1",
            "noarch",
        )]);
        assert_eq!(
            find_updates(&no_epoch, &indexes),
            [update(RPM_OLD_EPOCH, "noarch", "10.0-1", "1:9.0-1", "el")]
        );
        assert_eq!(server.count("/yum/repodata/repomd.xml", 200), 1);
        assert_eq!(server.count("/yum/repodata/primary.xml.gz", 200), 1);
    });
}

#[test]
fn apk_repository_offers_the_newer_version_and_is_fetched_conditionally() {
    let root = TempDir::new("updates-apk");
    apk(root.path(), &["1.0-r0", "1.1-r0"]);
    runtime().block_on(async {
        let server = FileServer::start(root.path()).await;
        let alpine = repo("alpine", &apk_fields(&server.url("apk")));
        let fetcher = fetcher(&root.path().join("cache"));
        let index = "/apk/x86_64/APKINDEX.tar.gz";
        for round in 1..=2 {
            let indexes = fetch_all(&fetcher, std::slice::from_ref(&alpine)).await;
            let old = inventory(vec![installed(Ecosystem::Apk, APK, "1.0-r0", "x86_64")]);
            assert_eq!(
                find_updates(&old, &indexes),
                [update(APK, "x86_64", "1.0-r0", "1.1-r0", "alpine")],
                "round {round}"
            );
            let current = inventory(vec![installed(Ecosystem::Apk, APK, "1.1-r0", "x86_64")]);
            assert_eq!(find_updates(&current, &indexes), [], "round {round}");
        }
        // Downloaded once; the second time the server answered 304 to the stored ETag.
        assert_eq!(server.count(index, 200), 1);
        assert_eq!(server.count(index, 304), 1);

        // A new index is downloaded again.
        apk(root.path(), &["1.0-r0", "1.1-r0", "1.2-r0"]);
        let indexes = fetch_all(&fetcher, std::slice::from_ref(&alpine)).await;
        let current = inventory(vec![installed(Ecosystem::Apk, APK, "1.1-r0", "x86_64")]);
        assert_eq!(
            find_updates(&current, &indexes),
            [update(APK, "x86_64", "1.1-r0", "1.2-r0", "alpine")]
        );
        assert_eq!(server.count(index, 200), 2);
    });
}

#[test]
fn unchanged_indexes_come_from_the_cache_changed_ones_are_downloaded() {
    let built = built();
    let root = TempDir::new("updates-cache");
    let repo_dir = root.path().join("deb");
    apt_dists(&repo_dir, &[built.deb("1.0-1"), built.deb("1.1-1")]);
    yum(
        &root.path().join("yum"),
        &[built.rpm(RPM, "1:1.0-1"), built.rpm(RPM, "1:1.1-1")],
    );
    runtime().block_on(async {
        let server = FileServer::start(root.path()).await;
        let repos = repos(
            &[
                table("dists", &dists_fields(&server.url("deb"))),
                table("el", &yum_fields(&server.url("yum/"))),
            ]
            .concat(),
        );
        let packages = "/deb/dists/bookworm/main/binary-amd64/Packages.xz";
        let primary = "/yum/repodata/primary.xml.gz";
        let in_release = "/deb/dists/bookworm/InRelease";
        let repomd = "/yum/repodata/repomd.xml";
        let inv = inventory(vec![
            installed(Ecosystem::Deb, DEB, "1.0-1", "amd64"),
            installed(Ecosystem::Rpm, RPM, "1:1.0-1", "noarch"),
        ]);
        let expected = [
            update(DEB, "amd64", "1.0-1", "1.1-1", "dists"),
            update(RPM, "noarch", "1:1.0-1", "1:1.1-1", "el"),
        ];

        // A fetcher on a new cache, then a second one on the same cache (a restarted worker).
        let cache = root.path().join("cache");
        let indexes = fetch_all(&fetcher(&cache), &repos).await;
        assert_eq!(find_updates(&inv, &indexes), expected);
        let indexes = fetch_all(&fetcher(&cache), &repos).await;
        assert_eq!(find_updates(&inv, &indexes), expected);
        // The top files twice, the big indexes once.
        assert_eq!(server.count(in_release, 200), 2);
        assert_eq!(server.count(repomd, 200), 2);
        assert_eq!(server.count(packages, 200), 1);
        assert_eq!(server.count(primary, 200), 1);

        // New Packages: downloaded again, and the new version is found.
        apt_dists(
            &repo_dir,
            &[built.deb("1.0-1"), built.deb("1.1-1"), built.deb("1.2-1")],
        );
        let indexes = fetch_all(&fetcher(&cache), &repos).await;
        assert_eq!(
            find_updates(&inv, &indexes),
            [
                update(DEB, "amd64", "1.0-1", "1.2-1", "dists"),
                update(RPM, "noarch", "1:1.0-1", "1:1.1-1", "el"),
            ]
        );
        assert_eq!(server.count(packages, 200), 2);
        assert_eq!(server.count(primary, 200), 1);
        // The cache holds one file per index version, named by checksum.
        let mut names: Vec<String> = std::fs::read_dir(&cache)
            .expect("cache directory")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(
            names
                .iter()
                .all(|n| n.starts_with("sha256-") && n.len() == 7 + 64)
        );
    });
}

#[test]
fn broken_repositories_are_clear_errors_and_nothing_is_cached() {
    let built = built();
    let root = TempDir::new("updates-corrupt");
    apt_dists(
        &root.path().join("deb"),
        &[built.deb("1.0-1"), built.deb("1.1-1")],
    );
    // Same size, one byte changed: only the checksum tells.
    let packages = root
        .path()
        .join("deb/dists/bookworm/main/binary-amd64/Packages.xz");
    let mut bytes = std::fs::read(&packages).expect("Packages.xz");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&packages, &bytes).expect("corrupt Packages.xz");
    let found = format!("sha256:{:x}", Sha256::digest(&bytes));
    runtime().block_on(async {
        let server = FileServer::start(root.path()).await;
        let dists = repo("dists", &dists_fields(&server.url("deb")));
        let cache = root.path().join("cache");
        let (indexes, errors) = fetcher(&cache)
            .fetch_indexes(std::slice::from_ref(&dists), &test_os())
            .await;
        assert!(indexes.is_empty());
        let [error] = &errors[..] else {
            panic!("expected one error, found {errors:?}");
        };
        assert_eq!(error.repo, "dists");
        assert!(
            matches!(error.error, FetchError::Mismatch { .. }),
            "{error}"
        );
        let message = error.to_string();
        let url = server.url("deb/dists/bookworm/main/binary-amd64/Packages.xz");
        assert!(
            message.starts_with(&format!(
                "repository \"dists\": GET {url}: expected sha256:"
            )),
            "{message}"
        );
        assert!(
            message.contains(&format!(", found {found}; not cached")),
            "{message}"
        );
        assert!(message.contains("InRelease lists"), "{message}");
        let cached = std::fs::read_dir(&cache).map(|d| d.count()).unwrap_or(0);
        assert_eq!(cached, 0, "nothing is cached");

        // A file larger than the download limit (here the InRelease itself) is an error.
        let small = Fetcher::new(&FetchSettings {
            cache_dir: cache.clone(),
            max_download_bytes: 64,
            ..FetchSettings::default()
        })
        .expect("fetcher");
        let error = small.fetch_index(&dists).await.expect_err("too large");
        assert!(
            matches!(error.error, FetchError::TooLarge { limit: 64, .. }),
            "{error}"
        );
        assert!(
            error.to_string().starts_with(&format!(
                "repository \"dists\": GET {}: expected at most 64 bytes, found Content-Length ",
                server.url("deb/dists/bookworm/InRelease")
            )),
            "{error}"
        );

        // A component the release does not have.
        let contrib = repo(
            "contrib",
            &dists_fields(&server.url("deb")).replace("\"main\"", "\"contrib\""),
        );
        let error = fetcher(&cache)
            .fetch_index(&contrib)
            .await
            .expect_err("not listed");
        assert_eq!(
            error.to_string(),
            format!(
                "repository \"contrib\": {}: expected its SHA256 list to name one of \
                 contrib/binary-amd64/Packages.xz, contrib/binary-amd64/Packages.gz, \
                 contrib/binary-amd64/Packages, found none of them",
                server.url("deb/dists/bookworm/InRelease")
            )
        );
    });
}

#[test]
fn an_unreachable_repository_does_not_hide_the_others() {
    let built = built();
    let root = TempDir::new("updates-unreachable");
    apt_flat(
        &root.path().join("flat"),
        &[built.deb("1.0-1"), built.deb("1.1-1")],
    );
    yum(&root.path().join("yum"), &[built.rpm(RPM, "1:1.1-1")]);
    apk(root.path(), &["1.1-r0"]);
    runtime().block_on(async {
        // A port nothing listens on: bound, then released.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind")
            .local_addr()
            .expect("address");
        let server = FileServer::start(root.path()).await;
        // Applies to version 2 of the test OS only: skipped, never requested.
        let other_os = format!(
            "[[repos]]\nname = \"other-os\"\n{}\n\
             applies_to = {{ id = \"slipway-test\", version_id = \"2\" }}\n",
            yum_fields(&server.url("never-requested"))
        );
        let repos = repos(
            &[
                table("dead", &yum_fields(&format!("http://{closed}/repo"))),
                table("flat", &flat_fields(&server.url("flat"))),
                other_os,
                table("el", &yum_fields(&server.url("yum"))),
                table("alpine", &apk_fields(&server.url("apk"))),
            ]
            .concat(),
        );
        let fetcher = Fetcher::new(&FetchSettings {
            cache_dir: root.path().join("cache"),
            timeout_ms: 5_000,
            ..FetchSettings::default()
        })
        .expect("fetcher");
        let started = std::time::Instant::now();
        let (indexes, errors) = fetcher.fetch_indexes(&repos, &test_os()).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let [error] = &errors[..] else {
            panic!("expected one error, found {errors:?}");
        };
        let message = error.to_string();
        assert!(
            message.starts_with(&format!(
                "repository \"dead\": GET http://{closed}/repo/repodata/repomd.xml: cannot connect"
            )),
            "{message}"
        );
        assert_eq!(
            indexes.iter().map(|i| i.repo.as_str()).collect::<Vec<_>>(),
            ["flat", "el", "alpine"]
        );
        let inv = inventory(vec![
            installed(Ecosystem::Deb, DEB, "1.0-1", "amd64"),
            installed(Ecosystem::Rpm, RPM, "1:1.0-1", "noarch"),
            installed(Ecosystem::Apk, APK, "1.0-r0", "x86_64"),
        ]);
        assert_eq!(
            find_updates(&inv, &indexes),
            [
                update(APK, "x86_64", "1.0-r0", "1.1-r0", "alpine"),
                update(DEB, "amd64", "1.0-1", "1.1-1", "flat"),
                update(RPM, "noarch", "1:1.0-1", "1:1.1-1", "el"),
            ]
        );
        assert!(
            server
                .requests()
                .iter()
                .all(|(path, _)| !path.starts_with("/never-requested")),
            "{:?}",
            server.requests()
        );
    });
}

//! `slipway_source` against real git: repositories created on the fly, served through
//! file:// URLs and a `git daemon` on 127.0.0.1 (git://), plus a closed port and a silent server.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use slipway_source::{FetchedCommit, SourceCache, SourceError, SourceSettings};

/// The commit time of every test commit, as git and as Unix seconds.
const COMMIT_DATE: &str = "2021-02-03T04:05:06Z";
const COMMIT_EPOCH: u64 = 1_612_325_106;

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("slipway-source-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run git in `dir` with a fixed identity and date and no user or system config.
fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Slipway Test")
        .env("GIT_AUTHOR_EMAIL", "test@slipway.invalid")
        .env("GIT_AUTHOR_DATE", COMMIT_DATE)
        .env("GIT_COMMITTER_NAME", "Slipway Test")
        .env("GIT_COMMITTER_EMAIL", "test@slipway.invalid")
        .env("GIT_COMMITTER_DATE", COMMIT_DATE)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn write(repo: &Path, path: &str, contents: &[u8]) {
    let path = repo.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

fn commit(repo: &Path, message: &str) -> String {
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
    git(repo, &["rev-parse", "HEAD"])
}

/// A repository with history:
///
/// ```text
/// c1 (tag v1, annotated) ─ c2 ─ c3 (main, tag light)
///                            └─ c4 (feature)
/// ```
struct Fixture {
    root: TempDir,
    repo: PathBuf,
    c1: String,
    c2: String,
    c3: String,
    c4: String,
}

impl Fixture {
    fn new(label: &str) -> Self {
        let root = TempDir::new(label);
        let repo = root.0.join("served").join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "-q"]);
        write(&repo, "README", b"one\n");
        write(&repo, "docker/app/Dockerfile", b"FROM alpine:3.19\n");
        let c1 = commit(&repo, "one");
        git(&repo, &["tag", "-a", "v1", "-m", "version 1"]);
        write(&repo, "docker/app/Dockerfile", b"FROM alpine:3.20\n");
        let c2 = commit(&repo, "two");
        write(&repo, "docker/app/Dockerfile", b"FROM alpine:3.21\n");
        write(&repo, "docker/app/conf/app.conf", b"port = 8080\n");
        write(&repo, "docker/app/run.sh", b"#!/bin/sh\nexec app\n");
        let run = repo.join("docker/app/run.sh");
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("Dockerfile", repo.join("docker/app/link")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", repo.join("docker/app/escape")).unwrap();
        write(&repo, "other/Dockerfile", b"FROM scratch\n");
        let c3 = commit(&repo, "three");
        git(&repo, &["tag", "light"]);
        git(&repo, &["checkout", "-q", "-b", "feature", &c2]);
        write(&repo, "docker/app/Dockerfile", b"FROM alpine:edge\n");
        let c4 = commit(&repo, "four");
        git(&repo, &["checkout", "-q", "main"]);
        Self {
            root,
            repo,
            c1,
            c2,
            c3,
            c4,
        }
    }

    fn url(&self) -> String {
        format!("file://{}", self.repo.display())
    }

    fn cache(&self) -> SourceCache {
        self.cache_with(|_| {})
    }

    fn cache_with(&self, tweak: impl FnOnce(&mut SourceSettings)) -> SourceCache {
        let mut settings = SourceSettings {
            cache_dir: self.root.0.join("cache"),
            fetch_timeout_ms: 20_000,
            max_repo_bytes: 64 * 1024 * 1024,
            allow_file_urls: true,
        };
        tweak(&mut settings);
        SourceCache::new(settings).unwrap()
    }
}

/// `git daemon` serving `base` on a free port of 127.0.0.1, killed on drop.
struct Daemon {
    child: Child,
    port: u16,
}

impl Daemon {
    fn start(base: &Path) -> Self {
        let port = free_port();
        // `git daemon` would run `git-daemon` as its own child, which killing `git` leaves behind.
        let exec_path = git(base, &["--exec-path"]);
        let child = Command::new(Path::new(&exec_path).join("git-daemon"))
            .arg("--reuseaddr")
            .arg(format!("--base-path={}", base.display()))
            .arg("--export-all")
            .arg(format!("--port={port}"))
            .arg("--listen=127.0.0.1")
            .arg(base)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut daemon = Daemon { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut pause = Duration::from_millis(1);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                daemon.child.try_wait().unwrap().is_none(),
                "git daemon exited before listening"
            );
            assert!(
                Instant::now() < deadline,
                "git daemon did not listen in 10 s"
            );
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        daemon
    }

    fn url(&self, path: &str) -> String {
        format!("git://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn pack_count(mirror: &Path) -> usize {
    std::fs::read_dir(mirror.join("objects/pack"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "pack")
        })
        .count()
}

async fn dockerfile(commit: &FetchedCommit) -> String {
    String::from_utf8(commit.read_file("docker/app/Dockerfile").await.unwrap()).unwrap()
}

#[tokio::test]
async fn a_branch_resolves_to_the_commit_git_rev_parse_names() {
    let fx = Fixture::new("branch");
    let cache = fx.cache();
    let url = fx.url();
    assert_eq!(
        cache.resolve(&url, "main").await.unwrap().as_str(),
        git(&fx.repo, &["rev-parse", "main"])
    );
    let feature = cache.fetch(&url, "feature").await.unwrap();
    assert_eq!(feature.sha().as_str(), fx.c4);
    assert_eq!(dockerfile(&feature).await, "FROM alpine:edge\n");
    assert_eq!(cache.resolve(&url, "HEAD").await.unwrap().as_str(), fx.c3);
    assert_eq!(
        cache
            .resolve(&url, "refs/heads/feature")
            .await
            .unwrap()
            .as_str(),
        fx.c4
    );
}

#[tokio::test]
async fn file_urls_are_refused_unless_allowed() {
    let fx = Fixture::new("nofile");
    let cache = SourceCache::new(SourceSettings {
        cache_dir: fx.root.0.join("strict-cache"),
        ..SourceSettings::default()
    })
    .unwrap();
    let error = cache.fetch(&fx.url(), "main").await.unwrap_err();
    assert!(
        !error.is_transient(),
        "a setting, not a passing fault: {error}"
    );
    assert!(error.to_string().contains("allow_file_urls"), "{error}");
}

#[tokio::test]
async fn tags_resolve_to_the_commit_they_point_at() {
    let fx = Fixture::new("tag");
    let cache = fx.cache();
    let url = fx.url();
    // Annotated: the tag object is peeled to its commit.
    assert_eq!(cache.resolve(&url, "v1").await.unwrap().as_str(), fx.c1);
    assert_eq!(cache.resolve(&url, "light").await.unwrap().as_str(), fx.c3);
    let v1 = cache.fetch(&url, "v1").await.unwrap();
    assert_eq!(v1.sha().as_str(), fx.c1);
    assert_eq!(dockerfile(&v1).await, "FROM alpine:3.19\n");
}

#[tokio::test]
async fn an_older_commit_by_full_or_abbreviated_id_reads_its_own_contents() {
    let fx = Fixture::new("sha");
    let cache = fx.cache();
    let url = fx.url();
    let old = cache.fetch(&url, &fx.c2).await.unwrap();
    assert_eq!(old.sha().as_str(), fx.c2);
    assert!(!old.from_cache());
    assert_eq!(dockerfile(&old).await, "FROM alpine:3.20\n");
    assert_eq!(
        cache
            .resolve(&url, &fx.c1.to_uppercase())
            .await
            .unwrap()
            .as_str(),
        fx.c1
    );

    // c2 is no branch or tag tip: an abbreviation needs the history.
    let fresh = Fixture::new("abbrev");
    let cache = fresh.cache();
    let short = &fresh.c2[..10];
    let by_prefix = cache.fetch(&fresh.url(), short).await.unwrap();
    assert_eq!(by_prefix.sha().as_str(), fresh.c2);
    assert_eq!(dockerfile(&by_prefix).await, "FROM alpine:3.20\n");
    // The abbreviated id of a tip is found from the ref list alone.
    assert_eq!(
        cache
            .resolve(&fresh.url(), &fresh.c4[..8])
            .await
            .unwrap()
            .as_str(),
        fresh.c4
    );
}

#[tokio::test]
async fn read_file_reads_a_sub_path_and_follows_links_inside_the_repository() {
    let fx = Fixture::new("read");
    let commit = fx.cache().fetch(&fx.url(), "main").await.unwrap();
    assert_eq!(dockerfile(&commit).await, "FROM alpine:3.21\n");
    assert_eq!(
        commit.read_file("./docker/app/link").await.unwrap(),
        b"FROM alpine:3.21\n"
    );
    assert_eq!(
        commit.read_file("other/Dockerfile").await.unwrap(),
        b"FROM scratch\n"
    );

    let missing = commit.read_file("docker/app/Nope").await.unwrap_err();
    assert!(!missing.is_transient());
    assert_eq!(
        missing.to_string(),
        format!(
            "\"docker/app/Nope\" in commit {} of {}: expected a file, found nothing",
            fx.c3,
            fx.url()
        )
    );
    let dir = commit.read_file("docker/app").await.unwrap_err();
    assert!(dir.to_string().contains("found a directory"), "{dir}");
}

#[tokio::test]
async fn export_tree_writes_a_subdirectory_with_modes_links_and_commit_times() {
    let fx = Fixture::new("export");
    let commit = fx.cache().fetch(&fx.url(), "main").await.unwrap();
    let dest = fx.root.0.join("context");
    commit.export_tree("docker/app", &dest).await.unwrap();
    assert_eq!(
        std::fs::read(dest.join("Dockerfile")).unwrap(),
        b"FROM alpine:3.21\n"
    );
    assert_eq!(
        std::fs::read(dest.join("conf/app.conf")).unwrap(),
        b"port = 8080\n"
    );
    let run = std::fs::metadata(dest.join("run.sh")).unwrap();
    assert_eq!(
        run.permissions().mode() & 0o111,
        0o111,
        "run.sh stays executable"
    );
    let mtime = run
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    assert_eq!(mtime.as_secs(), COMMIT_EPOCH);
    assert_eq!(
        std::fs::read_link(dest.join("link")).unwrap(),
        Path::new("Dockerfile")
    );
    assert!(
        !dest.join("docker").exists(),
        "the subdir prefix is dropped"
    );
    assert!(!dest.join("README").exists(), "only the subdir is exported");

    let whole = fx.root.0.join("whole");
    commit.export_tree("", &whole).await.unwrap();
    assert_eq!(std::fs::read(whole.join("README")).unwrap(), b"one\n");
    assert!(whole.join("other/Dockerfile").is_file());

    let not_empty = commit.export_tree("", &whole).await.unwrap_err();
    assert!(
        matches!(not_empty, SourceError::InvalidDestination { .. }),
        "{not_empty}"
    );
    let file = commit
        .export_tree("docker/app/Dockerfile", &fx.root.0.join("f"))
        .await
        .unwrap_err();
    assert!(
        file.to_string()
            .contains("expected a directory, found a file"),
        "{file}"
    );
}

#[tokio::test]
async fn an_unknown_ref_is_a_permanent_error_that_says_so() {
    let fx = Fixture::new("unknown");
    let cache = fx.cache();
    let url = fx.url();
    for (git_ref, tries_ls_remote_only) in [("nope", true), ("deadbeef", false)] {
        let error = cache.fetch(&url, git_ref).await.unwrap_err();
        assert!(!error.is_transient(), "{error}");
        assert_eq!(
            error.to_string(),
            format!("unknown ref {git_ref:?} in {url}: no branch, tag or commit of that name"),
            "ls-remote only: {tries_ls_remote_only}"
        );
    }
    let absent = "f".repeat(40);
    let error = cache.fetch(&url, &absent).await.unwrap_err();
    assert!(matches!(error, SourceError::UnknownRef { .. }), "{error}");
}

#[tokio::test]
async fn a_missing_repository_is_permanent() {
    let fx = Fixture::new("missing");
    let url = format!("file://{}/no-such-repo", fx.root.0.display());
    let error = fx.cache().fetch(&url, "main").await.unwrap_err();
    assert!(
        matches!(error, SourceError::RepositoryNotFound { .. }),
        "{error}"
    );
    assert!(!error.is_transient());
    assert!(error.to_string().contains("no-such-repo"), "{error}");
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    let fx = Fixture::new("refused");
    let url = format!("git://127.0.0.1:{}/repo", free_port());
    let error = fx.cache().fetch(&url, "main").await.unwrap_err();
    assert!(matches!(error, SourceError::Unreachable { .. }), "{error}");
    assert!(error.is_transient());
    assert!(error.to_string().contains("Connection refused"), "{error}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_transiently() {
    let fx = Fixture::new("timeout");
    // The kernel accepts connections into the backlog; nobody ever answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("git://{}/repo", silent.local_addr().unwrap());
    let cache = fx.cache_with(|s| s.fetch_timeout_ms = 300);
    let started = Instant::now();
    let error = cache.fetch(&url, "main").await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(error, SourceError::Timeout { .. }), "{error}");
    assert!(error.is_transient());
    assert_eq!(
        error.to_string(),
        format!("git ls-remote for {url} did not finish within the limit fetch_timeout_ms = 300")
    );

    let instant = fx.cache_with(|s| s.fetch_timeout_ms = 0);
    let error = instant.fetch(&fx.url(), "main").await.unwrap_err();
    assert!(matches!(error, SourceError::Timeout { .. }), "{error}");
}

#[tokio::test]
async fn a_repository_over_the_size_limit_is_permanent_and_its_mirror_removed() {
    let fx = Fixture::new("large");
    // 512 KiB that does not compress.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let noise: Vec<u8> = (0..512 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect();
    write(&fx.repo, "blob.bin", &noise);
    commit(&fx.repo, "large");
    let cache = fx.cache_with(|s| s.max_repo_bytes = 128 * 1024);
    let error = cache.fetch(&fx.url(), "main").await.unwrap_err();
    let SourceError::TooLarge {
        limit_bytes,
        found_bytes,
        ..
    } = &error
    else {
        panic!("expected TooLarge, got {error}");
    };
    assert_eq!(*limit_bytes, 128 * 1024);
    assert!(*found_bytes > 128 * 1024);
    assert!(!error.is_transient());
    assert!(
        error.to_string().contains("max_repo_bytes = 131072"),
        "{error}"
    );
    assert!(!cache.mirror_dir(&fx.url()).unwrap().exists());

    // A smaller older commit still fits.
    let small = cache.fetch(&fx.url(), &fx.c1).await.unwrap();
    assert_eq!(dockerfile(&small).await, "FROM alpine:3.19\n");
}

#[tokio::test]
async fn paths_leaving_the_repository_and_bad_input_are_rejected() {
    let fx = Fixture::new("escape");
    let cache = fx.cache();
    let commit = cache.fetch(&fx.url(), "main").await.unwrap();
    for path in ["../etc/passwd", "/etc/passwd", "docker/../../x", ""] {
        let error = commit.read_file(path).await.unwrap_err();
        assert!(
            matches!(error, SourceError::InvalidPath { .. }),
            "{path}: {error}"
        );
        assert!(!error.is_transient());
    }
    let dest = fx.root.0.join("out");
    let error = commit.export_tree("..", &dest).await.unwrap_err();
    assert!(matches!(error, SourceError::InvalidPath { .. }), "{error}");
    let link = commit.read_file("docker/app/escape").await.unwrap_err();
    assert!(
        link.to_string()
            .contains("a symbolic link to \"/etc/passwd\", outside the repository"),
        "{link}"
    );

    for url in [
        "ftp://host/x",
        "ext::sh -c id",
        "--upload-pack=touch /tmp/x",
        "/srv/repo",
    ] {
        let error = cache.fetch(url, "main").await.unwrap_err();
        assert!(
            matches!(error, SourceError::InvalidUrl { .. }),
            "{url}: {error}"
        );
    }
    for git_ref in ["--output=/tmp/x", "a..b", "main@{1}", "x y"] {
        let error = cache.fetch(&fx.url(), git_ref).await.unwrap_err();
        assert!(
            matches!(error, SourceError::InvalidRef { .. }),
            "{git_ref}: {error}"
        );
    }
}

/// Collects what tracing writes, for the redaction test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn credentials_never_appear_in_errors_or_logs() {
    let fx = Fixture::new("secret");
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let cache = fx.cache_with(|s| s.fetch_timeout_ms = 5_000);
    let port = free_port();
    let secret = "s3cr3t-t0ken";
    let urls = [
        format!("http://robot:{secret}@127.0.0.1:{port}/repo.git"),
        format!("https://{secret}@127.0.0.1:{port}/repo.git"),
        format!("git://robot:{secret}@127.0.0.1:{port}/repo"),
        format!("file://robot:{secret}@{}/absent", fx.root.0.display()),
        format!("ftp://robot:{secret}@127.0.0.1/repo"),
    ];
    for url in &urls {
        let error = cache.fetch(url, "main").await.unwrap_err();
        let message = error.to_string();
        assert!(!message.contains(secret), "{message}");
        assert!(!format!("{error:?}").contains(secret), "{error:?}");
        assert!(message.contains("***@"), "{message}");
    }
    let error = cache.fetch(&urls[0], "main").await.unwrap_err();
    assert!(error.to_string().contains("robot:***@127.0.0.1"), "{error}");
    // git ignores credentials in a file:// URL: the fetch works and the handle hides them.
    let fetched = cache
        .fetch(
            &format!("file://robot:{secret}@{}", fx.repo.display()),
            "main",
        )
        .await
        .unwrap();
    assert!(!format!("{fetched:?}").contains(secret), "{fetched:?}");
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("git fetch failed"), "{logs}");
    assert!(logs.contains("robot:***@"), "{logs}");
    assert!(!logs.contains(secret), "{logs}");
}

#[tokio::test]
async fn concurrent_fetches_of_one_repository_both_succeed() {
    let fx = Fixture::new("concurrent");
    let (a, b) = (fx.cache(), fx.cache());
    let url = fx.url();
    let (first, second) = tokio::join!(a.fetch(&url, "main"), b.fetch(&url, &fx.c2));
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.sha().as_str(), fx.c3);
    assert_eq!(second.sha().as_str(), fx.c2);
    let (x, y) = tokio::join!(dockerfile(&first), dockerfile(&second));
    assert_eq!(
        (x.as_str(), y.as_str()),
        ("FROM alpine:3.21\n", "FROM alpine:3.20\n")
    );
    let (again_a, again_b) = tokio::join!(a.fetch(&url, "feature"), b.fetch(&url, "feature"));
    assert_eq!(again_a.unwrap().sha(), again_b.unwrap().sha());
}

#[tokio::test]
async fn a_second_fetch_reuses_the_mirror() {
    let fx = Fixture::new("reuse");
    let cache = fx.cache();
    let url = fx.url();
    let first = cache.fetch(&url, "main").await.unwrap();
    assert!(!first.from_cache());
    let mirror = cache.mirror_dir(&url).unwrap();
    assert!(mirror.join("HEAD").is_file());
    let packs = pack_count(&mirror);
    let second = fx.cache().fetch(&url, "main").await.unwrap();
    assert!(second.from_cache(), "nothing downloaded the second time");
    assert_eq!(second.sha(), first.sha());
    assert_eq!(pack_count(&mirror), packs);
    // Credentials do not change which mirror a repository uses.
    let same = cache.mirror_dir(&format!("file://user:pw@{}", fx.repo.display()));
    assert_eq!(same.unwrap(), mirror);
}

#[tokio::test]
async fn a_mirror_broken_by_a_killed_process_is_recovered() {
    let fx = Fixture::new("recover");
    let cache = fx.cache();
    let url = fx.url();
    cache.fetch(&url, "main").await.unwrap();
    let mirror = cache.mirror_dir(&url).unwrap();
    // A fetch killed while holding git's own locks.
    std::fs::write(mirror.join("shallow.lock"), b"").unwrap();
    std::fs::write(mirror.join("objects/pack/tmp_pack_XXXX"), b"partial").unwrap();
    let next = cache.fetch(&url, "feature").await.unwrap();
    assert_eq!(dockerfile(&next).await, "FROM alpine:edge\n");
    assert!(!mirror.join("shallow.lock").exists());
    // A mirror that is not a repository any more.
    std::fs::remove_file(mirror.join("HEAD")).unwrap();
    std::fs::remove_dir_all(mirror.join("objects")).unwrap();
    let again = cache.fetch(&url, "main").await.unwrap();
    assert!(!again.from_cache(), "re-created and fetched again");
    assert_eq!(dockerfile(&again).await, "FROM alpine:3.21\n");
}

#[tokio::test]
async fn the_git_protocol_resolves_refs_and_fetches_an_old_commit_by_id() {
    let fx = Fixture::new("daemon");
    let daemon = Daemon::start(&fx.root.0.join("served"));
    let cache = fx.cache();
    let url = daemon.url("repo");
    assert_eq!(cache.resolve(&url, "main").await.unwrap().as_str(), fx.c3);
    let old = cache.fetch(&url, &fx.c2).await.unwrap();
    assert_eq!(old.sha().as_str(), fx.c2);
    assert_eq!(dockerfile(&old).await, "FROM alpine:3.20\n");
    let dest = fx.root.0.join("ctx");
    old.export_tree("docker", &dest).await.unwrap();
    assert!(dest.join("app/Dockerfile").is_file());

    let missing = cache.fetch(&daemon.url("nope"), "main").await.unwrap_err();
    assert!(
        matches!(missing, SourceError::RepositoryNotFound { .. }),
        "{missing}"
    );
    assert!(!missing.is_transient());
}

//! Local package repositories, and a file server to offer them over loopback HTTP:
//! - apt: `.deb`s built with `dpkg-deb` ([`build_deb`]), indexed with `apt-ftparchive` in a flat
//!   repository ([`apt_flat`]: `Packages.gz`, `Release` only, so `InRelease` is a 404) or in a
//!   `dists/bookworm/main/binary-amd64` layout ([`apt_dists`]: `Packages.xz` too, and an
//!   `InRelease` that is the `Release` in clear-sign armour with a placeholder signature);
//! - yum: noarch rpms built with `rpmbuild` ([`build_rpm`], with epochs), indexed with
//!   `createrepo_c` ([`yum`]);
//! - apk: an `APKINDEX.tar.gz` written here in Alpine's layout, signature member first
//!   ([`apk_index`]).
//!
//! [`FileServer`] serves a directory on 127.0.0.1 in the test's runtime, with an `ETag` honoured
//! in `If-None-Match` (apk's conditional GET), and logs every request, so that what a reader
//! downloaded is counted from the outside.
//!
//! Needs `dpkg-deb` (Debian package `dpkg`), `apt-ftparchive` (`apt-utils`), `gzip`, `xz`
//! (`xz-utils`), `rpmbuild` (`rpm`) and `createrepo_c` (`createrepo-c`), each only for the
//! fixtures that run it; a missing tool fails the test naming the package to install. Check them
//! up front with [`require`] and [`APT_TOOLS`], [`YUM_TOOLS`].

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{ETAG, IF_NONE_MATCH};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::task::{JoinHandle, JoinSet};

use crate::tools;

/// The programs the apt fixtures run ([`build_deb`], [`apt_flat`], [`apt_dists`]), each with the
/// Debian package that provides it; `xz`, last, only for [`apt_dists`].
pub const APT_TOOLS: [(&str, &str); 4] = [
    ("dpkg-deb", "dpkg"),
    ("apt-ftparchive", "apt-utils"),
    ("gzip", "gzip"),
    ("xz", "xz-utils"),
];

/// The programs the yum fixtures run ([`build_rpm`], [`yum`]), each with the Debian package that
/// provides it.
pub const YUM_TOOLS: [(&str, &str); 2] = [("rpmbuild", "rpm"), ("createrepo_c", "createrepo-c")];

/// Checks that each `(program, Debian package)` of `programs` runs (`program --version`), before
/// a test starts work that needs them.
///
/// # Panics
/// At the first that does not, naming its package.
pub fn require(programs: &[(&str, &str)]) {
    for (program, package) in programs {
        tools::require(program, &["--version"], package);
    }
}

/// Runs `command` in `dir`, failing the test with its output when it fails (naming
/// `apt_package` when it cannot be started); returns stdout.
fn run_in(dir: &Path, command: &mut Command, apt_package: &str) -> String {
    tools::run(command.current_dir(dir), apt_package)
}

// ---------------------------------------------------------------------------------------------
// Packages

/// A `.deb` of `name` at `version` (amd64, no files), built in `dir` with `dpkg-deb`:
/// `dir/<name>_<version>_amd64.deb`.
///
/// # Panics
/// When `dpkg-deb` cannot be run or fails.
pub fn build_deb(dir: &Path, name: &str, version: &str) -> PathBuf {
    let root = dir.join(format!("deb-{name}-{version}"));
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
        "dpkg",
    );
    deb
}

/// An rpm of `name` at `[epoch:]version-release` (noarch, no files), built with `rpmbuild` in
/// `dir` (its spec there, its build tree in `dir/rpmbuild`): the path of the `.rpm`.
///
/// # Panics
/// When `rpmbuild` cannot be run, fails, or makes no such file.
pub fn build_rpm(
    dir: &Path,
    name: &str,
    epoch: Option<u32>,
    version: &str,
    release: &str,
) -> PathBuf {
    let topdir = dir.join("rpmbuild");
    let spec = dir.join(format!("{name}-{version}-{release}.spec"));
    let epoch = epoch.map(|e| format!("Epoch: {e}\n")).unwrap_or_default();
    std::fs::write(
        &spec,
        format!(
            "Name: {name}\n{epoch}Version: {version}\nRelease: {release}\n\
             Summary: Slipway test package\nLicense: MIT\nBuildArch: noarch\n\
             %global __os_install_post %{{nil}}\n%global _build_id_links none\n\n\
             %description\nSlipway test package.\n\n%files\n"
        ),
    )
    .expect("spec");
    run_in(
        dir,
        Command::new("rpmbuild")
            .arg("-bb")
            .arg("--define")
            .arg(format!("_topdir {}", topdir.display()))
            .arg(&spec),
        "rpm",
    );
    let rpm = topdir.join(format!("RPMS/noarch/{name}-{version}-{release}.noarch.rpm"));
    assert!(rpm.is_file(), "rpmbuild made no {}", rpm.display());
    rpm
}

// ---------------------------------------------------------------------------------------------
// Repositories

/// Copies `files` into `dir` (created).
fn copy_into(dir: &Path, files: &[&Path]) {
    std::fs::create_dir_all(dir).expect("repository directory");
    for file in files {
        std::fs::copy(file, dir.join(file.file_name().expect("file name"))).expect("copy");
    }
}

/// Makes `dir` a flat apt repository offering exactly `debs`, rewritten from scratch (`dir` is
/// removed first): the `.deb`s, `Packages`, `Packages.gz` and `Release` (no `InRelease`). Serve
/// its parent at `url` and configure `suite = "<dir name>/"`.
///
/// # Panics
/// When `apt-ftparchive` or `gzip` cannot be run or fails.
pub fn apt_flat(dir: &Path, debs: &[&Path]) {
    let _ = std::fs::remove_dir_all(dir);
    copy_into(dir, debs);
    let packages = run_in(
        dir,
        Command::new("apt-ftparchive").args(["packages", "."]),
        "apt-utils",
    );
    std::fs::write(dir.join("Packages"), packages).expect("Packages");
    run_in(
        dir,
        Command::new("gzip").args(["-9knf", "Packages"]),
        "gzip",
    );
    let release = run_in(
        dir,
        Command::new("apt-ftparchive").args(["release", "."]),
        "apt-utils",
    );
    std::fs::write(dir.join("Release"), release).expect("Release");
}

/// Makes `root` an apt repository with `debs` added to `pool/main/`, and
/// `dists/bookworm/main/binary-amd64/` indexing the whole pool (`Packages`, `.gz`, `.xz`),
/// `dists/bookworm/Release` and a clear-signed-looking `InRelease` (a placeholder signature:
/// Slipway does not verify signatures). Suite `bookworm`, component `main`, architecture `amd64`.
///
/// # Panics
/// When `apt-ftparchive`, `gzip` or `xz` cannot be run or fails.
pub fn apt_dists(root: &Path, debs: &[&Path]) {
    copy_into(&root.join("pool/main"), debs);
    let binary = root.join("dists/bookworm/main/binary-amd64");
    std::fs::create_dir_all(&binary).expect("binary-amd64");
    let packages = run_in(
        root,
        Command::new("apt-ftparchive").args(["packages", "pool"]),
        "apt-utils",
    );
    std::fs::write(binary.join("Packages"), packages).expect("Packages");
    run_in(
        &binary,
        Command::new("gzip").args(["-9knf", "Packages"]),
        "gzip",
    );
    run_in(
        &binary,
        Command::new("xz").args(["-kf", "Packages"]),
        "xz-utils",
    );
    let suite = root.join("dists/bookworm");
    let _ = std::fs::remove_file(suite.join("Release"));
    let _ = std::fs::remove_file(suite.join("InRelease"));
    let release = run_in(
        &suite,
        Command::new("apt-ftparchive")
            .args(["-o", "APT::FTPArchive::Release::Suite=stable"])
            .args(["-o", "APT::FTPArchive::Release::Codename=bookworm"])
            .args(["-o", "APT::FTPArchive::Release::Components=main"])
            .args(["-o", "APT::FTPArchive::Release::Architectures=amd64"])
            .args(["release", "."]),
        "apt-utils",
    );
    assert!(
        release.contains("main/binary-amd64/Packages.xz"),
        "{release}"
    );
    std::fs::write(suite.join("Release"), &release).expect("Release");
    std::fs::write(
        suite.join("InRelease"),
        format!(
            "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n{release}\
             -----BEGIN PGP SIGNATURE-----\n\niHUEARYKAB0WIQQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n\
             =AAAA\n-----END PGP SIGNATURE-----\n"
        ),
    )
    .expect("InRelease");
}

/// Makes `dir` a yum repository offering `rpms` and those already in it: copies them in and
/// (re)writes `dir/repodata/` with `createrepo_c` (simple file names, no sqlite databases).
/// `createrepo_c` builds the new `repodata/` beside the old one and then swaps them, so a reader
/// sees one or the other.
///
/// # Panics
/// When `createrepo_c` cannot be run or fails.
pub fn yum(dir: &Path, rpms: &[&Path]) {
    copy_into(dir, rpms);
    run_in(
        dir,
        Command::new("createrepo_c")
            .args(["--simple-md-filenames", "--no-database", "--quiet"])
            .arg(dir),
        "createrepo-c",
    );
}

/// A tar of `members`; without its end-of-archive blocks when `finish` is false (as Alpine's
/// signature member is).
fn tar(members: &[(&str, &[u8])], finish: bool) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, name, *data)
            .expect("tar member");
    }
    let mut bytes = builder.into_inner().expect("tar");
    if !finish {
        bytes.truncate(bytes.len() - 1024);
    }
    bytes
}

/// `bytes` gzip-compressed.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

/// Writes `dir/<arch>/APKINDEX.tar.gz` offering `name` for `arch` at each of `versions`, as
/// Alpine lays it out: a gzip stream holding the (unfinished) tar of the signature member, then
/// one holding `DESCRIPTION` and `APKINDEX`. The file is replaced whole (written beside it, then
/// renamed), so a reader sees the old index or the new one. Serve `dir` at the repository's
/// `url` and configure `architectures = ["<arch>"]`.
pub fn apk_index(dir: &Path, name: &str, arch: &str, versions: &[&str]) {
    let index: String = versions
        .iter()
        .map(|v| {
            format!(
                "C:Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=\nP:{name}\nV:{v}\nA:{arch}\nS:1024\nI:4096\n\
                 T:Slipway test package\nU:https://example.org\nL:MIT\no:{name}\n\
                 m:Slipway <test@example.org>\nt:1700000000\nD:musl\n\n"
            )
        })
        .collect();
    let mut file = gzip(&tar(
        &[(".SIGN.RSA.slipway-test.rsa.pub", b"signature")],
        false,
    ));
    file.extend(gzip(&tar(
        &[
            ("DESCRIPTION", b"slipway-test"),
            ("APKINDEX", index.as_bytes()),
        ],
        true,
    )));
    let dir = dir.join(arch);
    std::fs::create_dir_all(&dir).expect("apk directory");
    let partial = dir.join("APKINDEX.tar.gz.partial");
    std::fs::write(&partial, file).expect("APKINDEX.tar.gz");
    std::fs::rename(&partial, dir.join("APKINDEX.tar.gz")).expect("APKINDEX.tar.gz");
}

// ---------------------------------------------------------------------------------------------
// The HTTP server

/// The `(path, status)` of each request a [`FileServer`] answered, in order.
type RequestLog = Arc<Mutex<Vec<(String, u16)>>>;

/// A file server on 127.0.0.1 over a directory, in the test's runtime: each file with an `ETag`
/// (its SHA-256) honoured in `If-None-Match` (304), 404 for anything else; every request logged.
/// Stopped when dropped.
#[derive(Debug)]
pub struct FileServer {
    address: SocketAddr,
    log: RequestLog,
    task: JoinHandle<()>,
}

impl FileServer {
    /// Binds an ephemeral port on 127.0.0.1 (the server is ready once this returns) and serves
    /// the files under `root`, read at each request.
    ///
    /// # Panics
    /// When it cannot bind; outside a Tokio runtime.
    pub async fn start(root: &Path) -> FileServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let address = listener.local_addr().expect("local address");
        let log = RequestLog::default();
        let (root, task_log) = (Arc::new(root.to_owned()), Arc::clone(&log));
        let task = tokio::spawn(async move {
            // Dropping the set (when the task is aborted) aborts every connection.
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let (root, log) = (Arc::clone(&root), Arc::clone(&task_log));
                let service = service_fn(move |request| {
                    let response = respond(&root, &log, &request);
                    async move { Ok::<_, Infallible>(response) }
                });
                connections.spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FileServer { address, log, task }
    }

    /// `http://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.address)
    }

    /// How many requests for `path` (`/flat/Release`) were answered with `status`.
    pub fn count(&self, path: &str, status: u16) -> usize {
        self.log
            .lock()
            .expect("request log")
            .iter()
            .filter(|(p, s)| p == path && *s == status)
            .count()
    }

    /// Every request so far, as `(path, status)`, in order.
    pub fn requests(&self) -> Vec<(String, u16)> {
        self.log.lock().expect("request log").clone()
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The file under `root` that `request` names (a directory's `index.html` for a path ending in
/// `/`), with its `ETag`, 304 when `If-None-Match` names that tag; 404 when there is none (or
/// the path climbs out with `..`). Logged in `log`.
fn respond(
    root: &Path,
    log: &Mutex<Vec<(String, u16)>>,
    request: &Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let content = if path.split('/').any(|part| part == "..") {
        None
    } else {
        // A directory's `index.html` answers for it (`/simple/name/`, as a static PEP 503
        // index is served).
        let file = root.join(path.trim_start_matches('/'));
        let file = if path.ends_with('/') {
            file.join("index.html")
        } else {
            file
        };
        std::fs::read(file).ok()
    };
    let mut response = Response::builder();
    let (status, body) = match content {
        None => (StatusCode::NOT_FOUND, Bytes::new()),
        Some(bytes) => {
            let etag = format!("\"{:x}\"", Sha256::digest(&bytes));
            let matches = request
                .headers()
                .get(IF_NONE_MATCH)
                .is_some_and(|value| value.as_bytes() == etag.as_bytes());
            response = response.header(ETAG, etag);
            if matches {
                (StatusCode::NOT_MODIFIED, Bytes::new())
            } else {
                (StatusCode::OK, Bytes::from(bytes))
            }
        }
    };
    log.lock()
        .expect("request log")
        .push((path, status.as_u16()));
    response
        .status(status)
        .body(Full::new(body))
        .expect("response")
}

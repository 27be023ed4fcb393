//! The rpm database readers against databases rpm itself wrote: noarch packages built with
//! `rpmbuild`, installed with `rpm` into a scratch root (an `rpmdb.sqlite`), and the same header
//! blobs loaded into Berkeley DB hash `Packages` files with `db5.3_load` (both byte orders, two
//! page sizes). What the readers return is compared with what `rpm -qa` and `rpm -q --dump`
//! report for that root.
//!
//! Needs Debian's `rpm` (rpm, rpmbuild) and `db5.3-util` (db5.3_load); a missing tool fails the
//! test with the package to install.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use slipway_scan::os::rpm::{RpmDatabase, RpmDbFiles, bdb, read_database};
use slipway_scan::package::{DigestAlgorithm, Ecosystem, FileDigest, Package, PackageFile};
use slipway_tests::tools;

/// `gamma` (with sub-package `beta`, epoch 2): a %config file, a %doc file, a %license file, a
/// normal executable, a symlink, a directory, a %ghost file and a %verify(not md5 …) file.
const GAMMA_SPEC: &str = r#"Name: gamma
Epoch: 2
Version: 1.0
Release: 3
Summary: Slipway test package
License: MIT and BSD
BuildArch: noarch
%global __os_install_post %{nil}
%global _build_id_links none

%description
Slipway test package.

%package -n beta
Summary: Slipway test sub-package
License: GPLv2+

%description -n beta
Slipway test sub-package.

%install
mkdir -p %{buildroot}/etc %{buildroot}/usr/bin %{buildroot}/usr/share/doc/gamma
mkdir -p %{buildroot}/usr/share/gamma %{buildroot}/var/log %{buildroot}/var/lib/gamma
echo 'key=value' > %{buildroot}/etc/gamma.conf
printf '#!/bin/sh\necho gamma\n' > %{buildroot}/usr/bin/gamma
chmod 0755 %{buildroot}/usr/bin/gamma
echo 'read me' > %{buildroot}/usr/share/doc/gamma/README
echo 'license text' > %{buildroot}/usr/share/gamma/COPYING
touch %{buildroot}/var/log/gamma.log
echo state > %{buildroot}/var/lib/gamma/state
ln -s gamma %{buildroot}/usr/bin/gamma-link
echo beta > %{buildroot}/usr/bin/beta

%files
%config(noreplace) /etc/gamma.conf
/usr/bin/gamma
/usr/bin/gamma-link
%doc /usr/share/doc/gamma/README
%license /usr/share/gamma/COPYING
%dir /usr/share/gamma
%ghost /var/log/gamma.log
%verify(not md5 size mtime) /var/lib/gamma/state

%files -n beta
%attr(0640,root,root) /usr/bin/beta
"#;

/// `delta`: built with md5 file digests, which rpm records without a FILEDIGESTALGO tag.
const DELTA_SPEC: &str = r#"Name: delta
Version: 0.9~rc1
Release: 7.fc40
Summary: Slipway md5 test package
License: ASL 2.0
BuildArch: noarch
%global __os_install_post %{nil}
%global _build_id_links none

%description
Slipway md5 test package.

%install
mkdir -p %{buildroot}/opt/delta
echo delta > %{buildroot}/opt/delta/data.txt

%files
/opt/delta
"#;

/// `epsilon`: built with sha512 file digests.
const EPSILON_SPEC: &str = r#"Name: epsilon
Version: 3
Release: 1
Summary: Slipway sha512 test package
License: Unlicense
BuildArch: noarch
%global __os_install_post %{nil}
%global _build_id_links none

%description
Slipway sha512 test package.

%install
mkdir -p %{buildroot}/usr/lib/epsilon
head -c 100000 /dev/zero > %{buildroot}/usr/lib/epsilon/zeros

%files
/usr/lib/epsilon
"#;

/// The rpm database directory inside the scratch root.
const DBPATH: &str = "/var/lib/rpm";

/// Runs a command of the `rpm` package, failing the test with its output when it fails;
/// returns its stdout.
fn run(command: &mut Command) -> String {
    tools::run(command, "rpm")
}

/// `rpm --root ROOT --dbpath /var/lib/rpm` (never the host's database).
fn rpm(root: &Path) -> Command {
    let mut command = Command::new("rpm");
    command
        .arg("--root")
        .arg(root)
        .arg("--dbpath")
        .arg(DBPATH)
        .args(["--define", "_db_backend sqlite"]);
    command
}

/// What the tests share: the scratch root rpm installed into, and what rpm says about it.
struct Fixture {
    dir: PathBuf,
    root: PathBuf,
    /// Per package name: rpm's own view, as the inventory should record it.
    expected: BTreeMap<String, Package>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build_fixture)
}

fn build_fixture() -> Fixture {
    tools::require("rpm", &["--version"], "rpm");
    tools::require("rpmbuild", &["--version"], "rpm");
    tools::require("db5.3_load", &["-V"], "db5.3-util");

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("rpm_database-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let topdir = dir.join("rpmbuild");
    for (name, spec, digest_algorithm) in [
        ("gamma", GAMMA_SPEC, "8"),
        ("delta", DELTA_SPEC, "1"),
        ("epsilon", EPSILON_SPEC, "10"),
    ] {
        let path = dir.join(format!("{name}.spec"));
        std::fs::write(&path, spec).expect("spec");
        run(Command::new("rpmbuild")
            .arg("-bb")
            .arg("--define")
            .arg(format!("_topdir {}", topdir.display()))
            .arg("--define")
            .arg(format!("_binary_filedigest_algorithm {digest_algorithm}"))
            .arg(&path));
    }
    let mut rpms: Vec<PathBuf> = std::fs::read_dir(topdir.join("RPMS/noarch"))
        .expect("built rpms")
        .map(|e| e.expect("dir entry").path())
        .collect();
    rpms.sort();
    assert_eq!(rpms.len(), 4, "{rpms:?}");

    let root = dir.join("root");
    std::fs::create_dir_all(&root).expect("root");
    run(rpm(&root).arg("--initdb"));
    run(rpm(&root).args(["-ivh", "--nodeps"]).args(&rpms));

    let expected = expected_packages(&root);
    assert_eq!(
        expected.keys().map(String::as_str).collect::<Vec<_>>(),
        ["beta", "delta", "epsilon", "gamma"]
    );
    Fixture {
        dir,
        root,
        expected,
    }
}

/// rpm's `(none)` for an absent tag.
fn tag_value(value: &str) -> Option<&str> {
    (value != "(none)").then_some(value)
}

/// What rpm reports about the root's packages, as `Package`s.
fn expected_packages(root: &Path) -> BTreeMap<String, Package> {
    let location = format!("{DBPATH}/rpmdb.sqlite");
    let list = run(rpm(root).args([
        "-qa",
        "--qf",
        "%{NAME}\t%{EPOCH}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\t%{SOURCERPM}\t%{LICENSE}\t\
         %{FILEDIGESTALGO}\n",
    ]));
    let mut packages = BTreeMap::new();
    for line in list.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [name, epoch, version, release, arch, srpm, license, algo] = fields[..] else {
            panic!("unexpected rpm -qa line {line:?}");
        };
        let evr = |v: &str, r: &str| match tag_value(epoch) {
            Some(e) => format!("{e}:{v}-{r}"),
            None => format!("{v}-{r}"),
        };
        let nvr = srpm.strip_suffix(".src.rpm").expect("source rpm name");
        let mut parts = nvr.rsplitn(3, '-');
        let (src_release, src_version, src_name) = (
            parts.next().expect("release"),
            parts.next().expect("version"),
            parts.next().expect("name"),
        );
        let algorithm = match tag_value(algo) {
            None | Some("1") => DigestAlgorithm::Md5,
            Some("8") => DigestAlgorithm::Sha256,
            Some("10") => DigestAlgorithm::Sha512,
            Some(other) => panic!("unexpected FILEDIGESTALGO {other}"),
        };
        let files = expected_files(root, name, algorithm);
        let version = evr(version, release);
        let source_version = evr(src_version, src_release);
        packages.insert(
            name.to_owned(),
            Package {
                ecosystem: Ecosystem::Rpm,
                name: name.to_owned(),
                arch: Some(arch.to_owned()),
                source_name: (src_name != name).then(|| src_name.to_owned()),
                source_version: (source_version != version).then_some(source_version),
                version,
                license: tag_value(license).map(str::to_owned),
                location: location.clone(),
                files,
            },
        );
    }
    packages
}

/// `rpm -q --dump` (path size mtime digest mode owner group isconfig isdoc rdev symlink) and the
/// raw file and verify flags, as `PackageFile`s.
fn expected_files(root: &Path, name: &str, algorithm: DigestAlgorithm) -> Vec<PackageFile> {
    let flags = run(rpm(root).args([
        "-q",
        "--qf",
        "[%{FILENAMES}\t%{FILEFLAGS}\t%{FILEVERIFYFLAGS}\n]",
        name,
    ]));
    let flags: BTreeMap<&str, (u32, u32)> = flags
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            (
                f[0],
                (
                    f[1].parse().expect("file flags"),
                    f[2].parse().expect("verify flags"),
                ),
            )
        })
        .collect();
    let dump = run(rpm(root).args(["-q", "--dump", name]));
    dump.lines()
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            assert!(f.len() >= 11, "unexpected --dump line {line:?}");
            let (file_flags, verify_flags) = flags[f[0]];
            let isdoc = f[8] == "1";
            let doc = file_flags & (2 | 128 | 256) != 0;
            assert!(!isdoc || doc, "{line}: rpm says doc, flags {file_flags}");
            PackageFile {
                path: f[0].to_owned(),
                size: Some(f[1].parse().expect("size")),
                digest: (!f[3].bytes().all(|b| b == b'0')).then(|| FileDigest {
                    algorithm,
                    hex: f[3].to_owned(),
                }),
                mode: Some(u32::from_str_radix(f[4], 8).expect("octal mode")),
                config: f[7] == "1",
                doc,
                volatile: file_flags & 64 != 0 || verify_flags & 1 == 0,
            }
        })
        .collect()
}

fn by_name(packages: Vec<Package>) -> BTreeMap<String, Package> {
    packages.into_iter().map(|p| (p.name.clone(), p)).collect()
}

fn sqlite_files(root: &Path) -> (Vec<u8>, Option<Vec<u8>>) {
    let dir = root.join(DBPATH.trim_start_matches('/'));
    let db = std::fs::read(dir.join("rpmdb.sqlite")).expect("rpmdb.sqlite");
    let wal = std::fs::read(dir.join("rpmdb.sqlite-wal")).ok();
    (db, wal)
}

#[test]
fn sqlite_database_matches_rpm() {
    let fixture = fixture();
    let (db, wal) = sqlite_files(&fixture.root);
    let files = RpmDbFiles {
        dir: DBPATH.to_owned(),
        database: RpmDatabase::Sqlite {
            db: &db,
            wal: wal.as_deref(),
        },
    };
    let packages = read_database(&files).expect("rpm's own database");
    let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["beta", "delta", "epsilon", "gamma"],
        "sorted by name"
    );
    let packages = by_name(packages);
    for (name, expected) in &fixture.expected {
        assert_eq!(packages.get(name), Some(expected), "package {name}");
    }

    // Spot checks that do not go through rpm's own output.
    let gamma = &packages["gamma"];
    assert_eq!(gamma.version, "2:1.0-3");
    assert_eq!(gamma.arch.as_deref(), Some("noarch"));
    assert_eq!(gamma.license.as_deref(), Some("MIT and BSD"));
    let file = |path: &str| {
        gamma
            .files
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("{path} in gamma"))
    };
    let script = file("/usr/bin/gamma");
    assert_eq!(
        script.digest,
        Some(FileDigest {
            algorithm: DigestAlgorithm::Sha256,
            hex: format!("{:x}", Sha256::digest(b"#!/bin/sh\necho gamma\n")),
        })
    );
    assert_eq!((script.size, script.mode), (Some(21), Some(0o100755)));
    assert!(file("/etc/gamma.conf").config);
    assert!(file("/usr/share/doc/gamma/README").doc);
    assert!(file("/usr/share/gamma/COPYING").doc);
    assert!(file("/var/log/gamma.log").volatile);
    assert!(file("/var/lib/gamma/state").volatile);
    assert_eq!(file("/usr/bin/gamma-link").digest, None);
    assert_eq!(file("/usr/share/gamma").mode, Some(0o40755));
    let beta = &packages["beta"];
    assert_eq!(
        (beta.source_name.as_deref(), beta.source_version.as_deref()),
        (Some("gamma"), None)
    );
    assert_eq!(beta.files[0].mode, Some(0o100640));
    let delta = &packages["delta"];
    assert_eq!(delta.version, "0.9~rc1-7.fc40");
    assert_eq!(
        delta.files[1].digest.as_ref().map(|d| d.algorithm),
        Some(DigestAlgorithm::Md5)
    );
    let epsilon = &packages["epsilon"];
    assert_eq!(
        epsilon.files[1].digest.as_ref().map(|d| d.hex.len()),
        Some(128)
    );
}

/// Copies the root's `rpmdb.sqlite` into `dir`, runs `sql` on the copy with automatic
/// checkpoints off, and returns the copy's database and WAL bytes read while the connection is
/// still open (closing would checkpoint and delete the WAL): what an image holds when rpm was
/// stopped mid-transaction or its WAL was not yet checkpointed.
fn copy_with_wal(root: &Path, dir: &Path, sql: &str) -> (Vec<u8>, Vec<u8>) {
    std::fs::create_dir_all(dir).expect("wal dir");
    let path = dir.join("rpmdb.sqlite");
    let (db, _) = sqlite_files(root);
    std::fs::write(&path, db).expect("copy");
    let _ = std::fs::remove_file(dir.join("rpmdb.sqlite-wal"));
    let conn = rusqlite::Connection::open(&path).expect("open copy");
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .expect("wal mode");
    assert_eq!(mode, "wal");
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .expect("no autocheckpoint");
    conn.execute_batch(sql).expect("change");
    let db = std::fs::read(&path).expect("db");
    let wal = std::fs::read(dir.join("rpmdb.sqlite-wal")).expect("wal");
    drop(conn);
    (db, wal)
}

#[test]
fn sqlite_wal_is_honoured() {
    let fixture = fixture();
    let (db, wal) = copy_with_wal(
        &fixture.root,
        &fixture.dir.join("wal"),
        "PRAGMA foreign_keys = OFF; \
         DELETE FROM Packages WHERE hnum = (SELECT max(hnum) FROM Packages)",
    );
    assert!(!wal.is_empty(), "the change is in the WAL");
    let read = |wal: Option<&[u8]>| -> Vec<String> {
        let files = RpmDbFiles {
            dir: DBPATH.to_owned(),
            database: RpmDatabase::Sqlite { db: &db, wal },
        };
        read_database(&files)
            .expect("database")
            .into_iter()
            .map(|p| p.name)
            .collect()
    };
    // The WAL removes the package installed last (rpm's install order is its own business).
    let all = read(None);
    assert_eq!(all, ["beta", "delta", "epsilon", "gamma"]);
    let after = read(Some(&wal));
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(after.iter().all(|name| all.contains(name)));
}

/// The header blobs of the root's sqlite database, as rpm stored them.
fn stored_blobs(root: &Path) -> Vec<(u32, Vec<u8>)> {
    let path = root
        .join(DBPATH.trim_start_matches('/'))
        .join("rpmdb.sqlite");
    let conn =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open rpmdb.sqlite");
    let mut statement = conn
        .prepare("SELECT hnum, blob FROM Packages ORDER BY hnum")
        .expect("query");
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("blobs")
}

/// A `Packages` file made by `db5.3_load` from `blobs`, keyed by instance number in the file's
/// byte order, with rpm's key-0 record (the highest instance) as rpm writes it.
fn berkeley_db(dir: &Path, blobs: &[(u32, Vec<u8>)], big_endian: bool, page_size: u32) -> Vec<u8> {
    let key = |n: u32| {
        let bytes = if big_endian {
            n.to_be_bytes()
        } else {
            n.to_le_bytes()
        };
        hex(&bytes)
    };
    let mut load = format!(
        "VERSION=3\nformat=bytevalue\ntype=hash\ndb_pagesize={page_size}\ndb_lorder={}\n\
         HEADER=END\n",
        if big_endian { 4321 } else { 1234 }
    );
    let highest = blobs.iter().map(|(n, _)| *n).max().unwrap_or(0);
    let _ = writeln!(load, " {}\n {}", key(0), key(highest));
    for (instance, blob) in blobs {
        let _ = writeln!(load, " {}\n {}", key(*instance), hex(blob));
    }
    load.push_str("DATA=END\n");
    let name = format!(
        "Packages-{}-{page_size}",
        if big_endian { "be" } else { "le" }
    );
    let input = dir.join(format!("{name}.txt"));
    let output = dir.join(&name);
    std::fs::write(&input, load).expect("load file");
    let _ = std::fs::remove_file(&output);
    tools::run(
        Command::new("db5.3_load")
            .arg("-f")
            .arg(&input)
            .arg(&output),
        "db5.3-util",
    );
    std::fs::read(&output).expect("Packages")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[test]
fn berkeley_db_packages_match_rpm() {
    let fixture = fixture();
    let blobs = stored_blobs(&fixture.root);
    assert_eq!(blobs.len(), 4);
    let dir = fixture.dir.join("bdb");
    std::fs::create_dir_all(&dir).expect("bdb dir");
    for (big_endian, page_size) in [(false, 4096), (true, 512), (false, 512), (true, 4096)] {
        let packages_file = berkeley_db(&dir, &blobs, big_endian, page_size);
        let files = RpmDbFiles {
            dir: DBPATH.to_owned(),
            database: RpmDatabase::BerkeleyDb {
                packages: &packages_file,
            },
        };
        let packages = read_database(&files)
            .unwrap_or_else(|e| panic!("Packages ({big_endian}, {page_size}): {e}"));
        assert_eq!(
            packages.len(),
            4,
            "big endian {big_endian}, page size {page_size}"
        );
        for package in packages {
            assert_eq!(package.location, "/var/lib/rpm/Packages");
            let expected = Package {
                location: package.location.clone(),
                ..fixture.expected[&package.name].clone()
            };
            assert_eq!(
                package, expected,
                "big endian {big_endian}, page size {page_size}"
            );
        }
    }
}

#[test]
fn berkeley_db_with_many_buckets_gives_every_record_once() {
    let fixture = fixture();
    let blobs = stored_blobs(&fixture.root);
    // 600 records on 512-byte pages: Berkeley DB splits buckets many times, so bucket pages are
    // found through several split points of the spare-page table.
    let many: Vec<(u32, Vec<u8>)> = (1..=600u32)
        .map(|n| (n * 7, blobs[n as usize % blobs.len()].1.clone()))
        .collect();
    let dir = fixture.dir.join("bdb-many");
    std::fs::create_dir_all(&dir).expect("dir");
    for big_endian in [false, true] {
        let file = berkeley_db(&dir, &many, big_endian, 512);
        let read: Vec<(u32, Vec<u8>)> = bdb::header_blobs(&file)
            .expect("valid Packages")
            .into_iter()
            .map(|b| (b.instance, b.blob))
            .collect();
        assert_eq!(read, many, "big endian {big_endian}");
    }
}

#[test]
fn damaged_berkeley_db_is_an_error_not_a_panic() {
    let fixture = fixture();
    let blobs = stored_blobs(&fixture.root);
    let dir = fixture.dir.join("bdb-damaged");
    std::fs::create_dir_all(&dir).expect("dir");
    let file = berkeley_db(&dir, &blobs, false, 512);
    let read = |bytes: &[u8]| {
        read_database(&RpmDbFiles {
            dir: DBPATH.to_owned(),
            database: RpmDatabase::BerkeleyDb { packages: bytes },
        })
    };
    // Cut at every page boundary and mid-page: each is refused with a message, none panics.
    for cut in (0..file.len()).step_by(256) {
        if let Err(e) = read(&file[..cut]) {
            assert!(!e.to_string().is_empty());
        }
    }
    let message = read(&file[..file.len() - 512])
        .expect_err("truncated")
        .to_string();
    assert!(
        message.starts_with("Berkeley DB Packages, page 0"),
        "{message}"
    );
}

/// The ndb database of `tests/data/rpm-ndb`, made by rpm 4.18 built with ndb (`make.sh` there:
/// Debian's rpm has no ndb backend), and `rpm -qa` of it, recorded by the same script.
#[test]
fn ndb_database_lists_what_rpm_qa_listed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rpm-ndb");
    let packages_db = std::fs::read(dir.join("Packages.db")).expect("Packages.db");
    let rpm_qa = std::fs::read_to_string(dir.join("rpm-qa.txt")).expect("rpm-qa.txt");
    let expected: Vec<String> = rpm_qa
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let [name, epoch, version, release, arch] = fields[..] else {
                panic!("unexpected rpm -qa line {line:?}");
            };
            match tag_value(epoch) {
                Some(epoch) => format!("{name} {epoch}:{version}-{release} {arch}"),
                None => format!("{name} {version}-{release} {arch}"),
            }
        })
        .collect();
    assert_eq!(expected.len(), 3, "{rpm_qa}");
    let files = RpmDbFiles {
        dir: "/usr/lib/sysimage/rpm".to_owned(),
        database: RpmDatabase::Ndb {
            packages: &packages_db,
        },
    };
    let packages = read_database(&files).expect("rpm's own ndb database");
    let read: Vec<String> = packages
        .iter()
        .map(|p| {
            format!(
                "{} {} {}",
                p.name,
                p.version,
                p.arch.as_deref().unwrap_or("(none)")
            )
        })
        .collect();
    assert_eq!(read, expected);
    assert!(
        packages
            .iter()
            .all(|p| p.location == "/usr/lib/sysimage/rpm/Packages.db")
    );
    // ndb-gamma's 40 files come through the header reader as they do from the other backends.
    let gamma = packages
        .iter()
        .find(|p| p.name == "ndb-gamma")
        .expect("ndb-gamma");
    assert_eq!(
        gamma
            .files
            .iter()
            .filter(|f| f.path.starts_with("/usr/share/ndb-gamma/file-"))
            .count(),
        40
    );
}

#[test]
fn damaged_ndb_database_is_an_error_not_a_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rpm-ndb");
    let file = std::fs::read(dir.join("Packages.db")).expect("Packages.db");
    let read = |bytes: &[u8]| {
        read_database(&RpmDbFiles {
            dir: DBPATH.to_owned(),
            database: RpmDatabase::Ndb { packages: bytes },
        })
    };
    // Every 16-byte cut is refused with a message (the last blob ends at the end of the file).
    for cut in (0..file.len()).step_by(16) {
        let error = read(&file[..cut]).expect_err("truncated");
        assert!(
            error.to_string().starts_with("ndb Packages.db, byte "),
            "{error}"
        );
    }
    // Each byte flipped in turn: refused, or read exactly as before (a byte rpm does not read:
    // the generation, a free slot's package index, the zeroed hole an erased package left). A
    // flipped byte inside a package's blob is always refused (head, Adler-32 or trailer).
    let original = read(&file).expect("valid");
    let mut refused = 0;
    for at in 0..file.len() {
        let mut bytes = file.clone();
        bytes[at] ^= 0x5a;
        match read(&bytes) {
            Ok(packages) => assert_eq!(packages, original, "byte {at} flipped went unnoticed"),
            Err(_) => refused += 1,
        }
    }
    // The three blobs are 10 592 of the 16 480 bytes; the slots' magic and offsets add more.
    assert!(refused > 12_000, "{refused} flips refused");
}

//! The whole inventory — `docker save` streamed into the archive reader, then
//! `inventory::take_inventory` — on fixture images made offline at test time (see `fixtures`):
//! rpm with `rpmdb.sqlite` (Rocky Linux 9, in `/var/lib/rpm` and in `/usr/lib/sysimage/rpm`
//! behind a `/var/lib/rpm` symlink), rpm with a Berkeley DB `Packages` (CentOS 7), apk (Alpine
//! 3.19), and Python, npm and Ruby packages on the Debian base image.
//!
//! Each image's exact package set — (ecosystem, name, version, arch) — is asserted against the
//! packages the fixture installed, and compared with Trivy's for the same image where Trivy is
//! installed (`fixtures::trivy`; the Debian base image, already checked against `dpkg-query` by
//! `image_inventory.rs`, is only compared with Trivy). Corrupted package databases in an image
//! are errors that name the database, never panics.
//!
//! Needs Docker with the base image (`deploy/dev-env.sh`), `rpm`, `db5.3-util`, `python3-venv`,
//! `npm` and `ruby`; a missing tool fails the test naming its package. Images are built once and
//! cached by recipe (`slipway-fixture/*`): a first run takes about 40 s (rpmbuild, a venv, npm,
//! gem, 14 small images), later runs about 15 s (docker save and Trivy on each image).

mod fixtures;

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;

use fixtures::{apk, rpm, trivy};
use slipway_scan::image::{DigestSet, ImageFs};
use slipway_scan::inventory::{InventoryError, TakenInventory, take_inventory};
use slipway_scan::package::{Ecosystem, Inventory, OsIdentity, Package};
use slipway_tests::{BASE_IMAGE, TempDir, docker, installs};

/// What the exact-set assertions compare: ecosystem, name, version, arch.
type Row = (Ecosystem, String, String, Option<String>);

/// `rows` as a set.
fn expected(rows: &[(Ecosystem, &str, &str, Option<&str>)]) -> BTreeSet<Row> {
    rows.iter()
        .map(|(ecosystem, name, version, arch)| {
            (
                *ecosystem,
                (*name).to_owned(),
                (*version).to_owned(),
                arch.map(str::to_owned),
            )
        })
        .collect()
}

/// The inventory's packages as rows.
fn rows(inventory: &Inventory) -> BTreeSet<Row> {
    inventory
        .packages
        .iter()
        .map(|p| {
            (
                p.ecosystem,
                p.name.clone(),
                p.version.clone(),
                p.arch.clone(),
            )
        })
        .collect()
}

/// Asserts that `inventory` holds exactly `expected` (each package once), listing the
/// differences.
fn assert_exact(tag: &str, inventory: &Inventory, expected: &BTreeSet<Row>) {
    let found = rows(inventory);
    assert_eq!(
        found.len(),
        inventory.packages.len(),
        "{tag}: a package is listed twice: {:#?}",
        inventory.packages
    );
    let missing: Vec<&Row> = expected.difference(&found).collect();
    let extra: Vec<&Row> = found.difference(expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{tag}: the package set differs from the fixture's\nmissing: {missing:#?}\nunexpected: \
         {extra:#?}"
    );
}

/// The inventory of image `tag`, with nothing unreadable.
fn inventory_of(tag: &str, fs: &ImageFs) -> Inventory {
    let TakenInventory {
        inventory,
        unreadable,
        skipped,
    } = take_inventory(fs).unwrap_or_else(|e| panic!("{tag}: {e}"));
    assert!(unreadable.is_empty(), "{tag}: {unreadable:#?}");
    assert!(skipped.is_empty(), "{tag}: {skipped:#?}");
    inventory
}

/// Asserts that the image's OS is `id` `version_id`.
fn assert_os(tag: &str, os: Option<&OsIdentity>, id: &str, version_id: &str) {
    let os = os.unwrap_or_else(|| panic!("{tag}: no OS identified"));
    assert_eq!(
        (os.id.as_str(), os.version_id.as_deref()),
        (id, Some(version_id)),
        "{tag}"
    );
}

/// The `st_mode` type bits of a regular file.
const REGULAR_FILE: u32 = 0o100_000;

/// Asserts that every regular file the packages record matches the image (digest, size, mode):
/// the fixture installed them as recorded. Directories are left out: `integrity::check` takes
/// any recorded size — rpm records 0 for a directory, with mode `040755` — as a promise of
/// content and reports every rpm directory as a type mismatch (to be fixed there).
fn assert_intact(tag: &str, inventory: &Inventory, fs: &ImageFs) {
    let packages: Vec<Package> = inventory
        .packages
        .iter()
        .map(|package| Package {
            files: package
                .files
                .iter()
                .filter(|file| {
                    file.mode
                        .is_none_or(|mode| mode & 0o170_000 == REGULAR_FILE)
                })
                .cloned()
                .collect(),
            ..package.clone()
        })
        .collect();
    let report = slipway_scan::integrity::check(&packages, fs);
    assert!(
        report.failures.is_empty() && report.config_changes.is_empty(),
        "{tag}: {report:#?}"
    );
    let recorded: usize = packages.iter().map(|p| p.files.len()).sum();
    assert!(
        recorded > 0 && report.verified == recorded,
        "{tag}: {} of {recorded} files verified",
        report.verified
    );
}

// ------------------------------------------------------------------------------------ rpm --

/// `os-release` of Rocky Linux 9.3.
const ROCKY_OS_RELEASE: &str = "NAME=\"Rocky Linux\"\nVERSION=\"9.3 (Blue Onyx)\"\nID=\"rocky\"\n\
    ID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\nPLATFORM_ID=\"platform:el9\"\n\
    PRETTY_NAME=\"Rocky Linux 9.3 (Blue Onyx)\"\n";

/// `os-release` of CentOS 7.
const CENTOS_OS_RELEASE: &str = "NAME=\"CentOS Linux\"\nVERSION=\"7 (Core)\"\nID=\"centos\"\n\
    ID_LIKE=\"rhel fedora\"\nVERSION_ID=\"7\"\nPRETTY_NAME=\"CentOS Linux 7 (Core)\"\n\
    CPE_NAME=\"cpe:/o:centos:centos:7\"\n";

/// The packages every rpm fixture holds (all `noarch`).
const RPM_PACKAGES: [(&str, &str); 3] = [
    ("slipway-alpha", "1:2.0-3.el9"),
    ("slipway-beta", "0.9~rc1-1.el9"),
    ("slipway-beta-libs", "0.9~rc1-1.el9"),
];

/// Where an rpm fixture keeps its database.
#[derive(Clone, Copy, Debug)]
enum RpmLayout {
    /// Rocky 9: `rpmdb.sqlite` in `/var/lib/rpm`.
    Sqlite,
    /// Fedora ≥ 36 style: `rpmdb.sqlite` in `/usr/lib/sysimage/rpm`, `/var/lib/rpm` a symlink
    /// to it, `/etc/os-release` a symlink to `/usr/lib/os-release`.
    Sysimage,
    /// CentOS 7: a Berkeley DB `Packages` in `/var/lib/rpm`.
    BerkeleyDb,
}

impl RpmLayout {
    /// The image's name.
    fn name(self) -> &'static str {
        match self {
            RpmLayout::Sqlite => "rpm-sqlite",
            RpmLayout::Sysimage => "rpm-sysimage",
            RpmLayout::BerkeleyDb => "rpm-bdb",
        }
    }

    /// Where the database is, as the inventory reports it.
    fn location(self) -> &'static str {
        match self {
            RpmLayout::Sqlite => "/var/lib/rpm/rpmdb.sqlite",
            RpmLayout::Sysimage => "/usr/lib/sysimage/rpm/rpmdb.sqlite",
            RpmLayout::BerkeleyDb => "/var/lib/rpm/Packages",
        }
    }

    /// The image, built when not cached.
    fn image(self) -> &'static str {
        static IMAGES: [OnceLock<String>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
        IMAGES[self as usize].get_or_init(|| {
            let mut recipe: Vec<&[u8]> = vec![
                self.name().as_bytes(),
                ROCKY_OS_RELEASE.as_bytes(),
                CENTOS_OS_RELEASE.as_bytes(),
            ];
            recipe.extend(rpm::SPECS.iter().map(|(_, spec)| spec.as_bytes()));
            fixtures::cached(self.name(), &recipe, |tag| self.build(tag))
        })
    }

    /// Builds the root and imports it as `tag`.
    fn build(self, tag: &str) {
        let scratch = TempDir::new(self.name());
        let root = scratch.path().join("root");
        let rpms = rpm::build(scratch.path());
        let dbpath = match self {
            RpmLayout::Sysimage => "/usr/lib/sysimage/rpm",
            RpmLayout::Sqlite | RpmLayout::BerkeleyDb => "/var/lib/rpm",
        };
        rpm::install(&root, dbpath, &rpms);
        let release = |os_release: &str, release_file: &str, release: &str| {
            fixtures::write(&root, "etc/os-release", os_release.as_bytes());
            fixtures::write(&root, &format!("etc/{release_file}"), release.as_bytes());
            fixtures::symlink(&root, "etc/redhat-release", release_file);
            fixtures::symlink(&root, "etc/system-release", release_file);
        };
        match self {
            RpmLayout::Sqlite => release(
                ROCKY_OS_RELEASE,
                "rocky-release",
                "Rocky Linux release 9.3 (Blue Onyx)\n",
            ),
            RpmLayout::Sysimage => {
                release(
                    ROCKY_OS_RELEASE,
                    "rocky-release",
                    "Rocky Linux release 9.3 (Blue Onyx)\n",
                );
                std::fs::rename(root.join("etc/os-release"), root.join("usr/lib/os-release"))
                    .expect("move os-release to /usr/lib");
                fixtures::symlink(&root, "etc/os-release", "../usr/lib/os-release");
                fixtures::symlink(&root, "var/lib/rpm", "../../usr/lib/sysimage/rpm");
            }
            RpmLayout::BerkeleyDb => {
                release(
                    CENTOS_OS_RELEASE,
                    "centos-release",
                    "CentOS Linux release 7.9.2009 (Core)\n",
                );
                let dir = root.join("var/lib/rpm");
                let blobs = rpm::header_blobs(&dir.join("rpmdb.sqlite"));
                assert_eq!(blobs.len(), RPM_PACKAGES.len(), "{blobs:?}");
                let packages = rpm::berkeley_db(scratch.path(), &blobs);
                std::fs::remove_dir_all(&dir).expect("remove the sqlite database");
                fixtures::write(&root, "var/lib/rpm/Packages", &packages);
            }
        }
        fixtures::import(&root, tag);
    }

    /// Checks the image: OS, exact package set, where each was found, sub-package source, files.
    fn check(self) {
        let tag = self.image();
        let fs = fixtures::saved(tag, DigestSet::ALL);
        let inventory = inventory_of(tag, &fs);
        match self {
            RpmLayout::Sqlite | RpmLayout::Sysimage => {
                assert_os(tag, inventory.os.as_ref(), "rocky", "9.3");
            }
            RpmLayout::BerkeleyDb => assert_os(tag, inventory.os.as_ref(), "centos", "7"),
        }
        let rows: Vec<_> = RPM_PACKAGES
            .iter()
            .map(|(name, version)| (Ecosystem::Rpm, *name, *version, Some("noarch")))
            .collect();
        assert_exact(tag, &inventory, &expected(&rows));
        for package in &inventory.packages {
            assert_eq!(package.location, self.location(), "{tag}: {}", package.name);
            let source = (package.name == "slipway-beta-libs").then_some("slipway-beta");
            assert_eq!(package.source_name.as_deref(), source, "{tag}");
            assert_eq!(package.source_version, None, "{tag}: {}", package.name);
        }
        assert_intact(tag, &inventory, &fs);
        trivy::assert_agrees(tag, &inventory);
    }
}

#[test]
fn rpm_sqlite_image_has_exactly_the_installed_rpms() {
    RpmLayout::Sqlite.check();
}

#[test]
fn rpm_sqlite_in_usr_lib_sysimage_has_exactly_the_installed_rpms() {
    RpmLayout::Sysimage.check();
}

#[test]
fn rpm_berkeley_db_image_has_exactly_the_installed_rpms() {
    RpmLayout::BerkeleyDb.check();
}

// ------------------------------------------------------------------------------------ apk --

/// The Alpine image.
fn apk_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let installed = apk::installed();
        fixtures::cached("apk", &[installed.as_bytes()], |tag| {
            let scratch = TempDir::new("apk");
            let root = scratch.path().join("root");
            apk::write_root(&root);
            fixtures::import(&root, tag);
        })
    })
}

#[test]
fn apk_image_has_exactly_the_installed_apks() {
    let tag = apk_image();
    let fs = fixtures::saved(tag, DigestSet::ALL);
    let inventory = inventory_of(tag, &fs);
    assert_os(tag, inventory.os.as_ref(), "alpine", "3.19.1");
    let arch = Some("x86_64");
    assert_exact(
        tag,
        &inventory,
        &expected(&[
            (Ecosystem::Apk, "alpine-release", "3.19.1-r0", arch),
            (Ecosystem::Apk, "busybox", "1.36.1-r15", arch),
            (Ecosystem::Apk, "musl", "1.2.4_git20230717-r4", arch),
            (Ecosystem::Apk, "ssl_client", "1.36.1-r15", arch),
        ]),
    );
    let sources: Vec<(&str, Option<&str>)> = inventory
        .packages
        .iter()
        .map(|p| (p.name.as_str(), p.source_name.as_deref()))
        .collect();
    assert_eq!(
        sources,
        [
            ("alpine-release", Some("alpine-base")),
            ("busybox", None),
            ("musl", None),
            ("ssl_client", Some("busybox")),
        ]
    );
    assert_intact(tag, &inventory, &fs);
    trivy::assert_agrees(tag, &inventory);
}

// ------------------------------------------------------------------- Debian and languages --

/// The base image's id: images built on it are rebuilt when it changes.
fn base_image_id() -> String {
    slipway_tests::ensure_docker();
    docker(
        &["image", "inspect", "--format", "{{.Id}}", BASE_IMAGE],
        None,
    )
    .trim()
    .to_owned()
}

/// How the language image is made from the installations of `slipway_tests::installs`.
const LANG_DOCKERFILE: &str =
    "COPY venv /opt/venv\nCOPY app /srv/app\nCOPY gems /usr/local/bundle\n";

/// The base image with a venv in `/opt/venv`, an npm application in `/srv/app` and gems in
/// `/usr/local/bundle`.
fn lang_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let base = base_image_id();
        let recipe: [&[u8]; 3] = [
            base.as_bytes(),
            LANG_DOCKERFILE.as_bytes(),
            installs::RECIPE.as_bytes(),
        ];
        fixtures::cached("lang", &recipe, |tag| {
            let scratch = TempDir::new("lang-image");
            let context = scratch.path().join("context");
            let work = |name: &str| {
                let dir = scratch.path().join(name);
                std::fs::create_dir_all(&dir).expect("work directory");
                dir
            };
            let python = installs::python_venv(&context.join("venv"), &work("python"));
            installs::remove_pip(&python);
            installs::npm_install(&context.join("app"), &work("npm"));
            installs::gem_install(&context.join("gems"), &work("gem"));
            fixtures::write(
                &context,
                "Dockerfile",
                format!("FROM {BASE_IMAGE}\n{LANG_DOCKERFILE}").as_bytes(),
            );
            fixtures::build(&context, tag);
        })
    })
}

/// The Debian packages of the base image, as the inventory reads them.
fn base_image_debs() -> BTreeSet<Row> {
    let fs = fixtures::saved(BASE_IMAGE, DigestSet::NONE);
    let debs = rows(&inventory_of(BASE_IMAGE, &fs));
    assert!(
        debs.len() > 50 && debs.iter().all(|row| row.0 == Ecosystem::Deb),
        "{debs:#?}"
    );
    debs
}

#[test]
fn debian_base_image_agrees_with_trivy() {
    slipway_tests::ensure_docker();
    let fs = fixtures::saved(BASE_IMAGE, DigestSet::NONE);
    let inventory = inventory_of(BASE_IMAGE, &fs);
    assert_os(BASE_IMAGE, inventory.os.as_ref(), "debian", "12");
    trivy::assert_agrees(BASE_IMAGE, &inventory);
}

#[test]
fn language_image_has_exactly_the_installed_packages() {
    let tag = lang_image();
    let fs = fixtures::saved(tag, DigestSet::NONE);
    let inventory = inventory_of(tag, &fs);
    assert_os(tag, inventory.os.as_ref(), "debian", "12");
    let mut want = base_image_debs();
    want.extend(expected(&[
        (Ecosystem::Pypi, "Slipway_Fixture.Alpha", "1.0.0", None),
        (Ecosystem::Pypi, "slipway-fixture-beta", "2.1.0.post1", None),
        (Ecosystem::Npm, "@slipway/scoped", "0.3.0-beta.1", None),
        (Ecosystem::Npm, "slipway-leaf", "1.0.0", None),
        (Ecosystem::Npm, "slipway-leaf", "2.0.0", None),
        (Ecosystem::Npm, "slipway-nest", "1.1.0", None),
        (
            Ecosystem::Gem,
            "slipway-native",
            "0.1.0",
            Some("x86_64-linux"),
        ),
        (Ecosystem::Gem, "slipway-probe", "1.2.3.pre", None),
    ]));
    assert_exact(tag, &inventory, &want);
    let locations: BTreeSet<&str> = inventory
        .packages
        .iter()
        .filter(|p| p.ecosystem == Ecosystem::Npm)
        .map(|p| p.location.as_str())
        .collect();
    assert_eq!(
        locations,
        BTreeSet::from([
            "/srv/app/node_modules/@slipway/scoped/package.json",
            "/srv/app/node_modules/slipway-leaf/package.json",
            "/srv/app/node_modules/slipway-nest/node_modules/slipway-leaf/package.json",
            "/srv/app/node_modules/slipway-nest/package.json",
        ])
    );
    trivy::assert_agrees(tag, &inventory);
}

// ------------------------------------------------------------------------------ corruption --

/// A way to damage a database file.
#[derive(Clone, Copy, Debug)]
enum Damage {
    /// Cut it short: `keep(len)` bytes stay.
    Truncated(fn(&[u8]) -> usize),
    /// Overwrite bytes from `at(len)` on with garbage (a line without `:`, control characters,
    /// bytes that are not UTF-8), as far as the file goes or longer.
    Garbage(fn(&[u8]) -> usize),
}

impl Damage {
    /// `bytes` damaged.
    fn apply(self, bytes: &[u8]) -> Vec<u8> {
        match self {
            Damage::Truncated(keep) => bytes[..keep(bytes)].to_vec(),
            Damage::Garbage(at) => {
                const GARBAGE: &[u8] = b"\n\x00\x01\x02\xff\xfe garbage \xc3\x28 no field here\n";
                let at = at(bytes);
                let mut damaged = bytes[..at].to_vec();
                let rest = bytes.len() - at;
                damaged.extend(GARBAGE.iter().cycle().take(rest.max(GARBAGE.len())));
                damaged
            }
        }
    }
}

/// The offset just after `needle`'s `nth` occurrence (0-based) in `bytes`.
fn after_nth(bytes: &[u8], needle: &[u8], nth: usize) -> usize {
    bytes
        .windows(needle.len())
        .enumerate()
        .filter(|(_, window)| *window == needle)
        .nth(nth)
        .map(|(at, _)| at + needle.len())
        .unwrap_or_else(|| panic!("no occurrence {nth} of {needle:?}"))
}

/// The content of the file at `path` (relative to the root) in image `tag`.
fn file_of(tag: &str, path: &str) -> Vec<u8> {
    fixtures::saved(tag, DigestSet::NONE)
        .content(path)
        .unwrap_or_else(|| panic!("{tag} has no {path}"))
        .to_vec()
}

/// The image `base` with the file at `path` (relative to the root), whose content is
/// `original`, replaced by a damaged copy in a layer of its own.
fn damaged_image(name: &str, base: &str, path: &str, original: &[u8], damage: Damage) -> String {
    let damaged = damage.apply(original);
    fixtures::cached(name, &[base.as_bytes(), path.as_bytes(), &damaged], |tag| {
        let scratch = TempDir::new(name);
        let context = scratch.path();
        fixtures::write(context, "damaged", &damaged);
        let dockerfile = format!("FROM {base}\nCOPY damaged /{path}\n");
        fixtures::write(context, "Dockerfile", dockerfile.as_bytes());
        fixtures::build(context, tag);
    })
}

/// Asserts that the inventory of `tag` is an error (not a panic) whose message starts with
/// `prefix`.
fn assert_refused(tag: &str, prefix: &str) -> InventoryError {
    let fs = fixtures::saved(tag, DigestSet::NONE);
    let taken = std::panic::catch_unwind(AssertUnwindSafe(|| take_inventory(&fs)))
        .unwrap_or_else(|_| panic!("{tag}: the inventory panicked instead of returning an error"));
    let error = match taken {
        Ok(taken) => panic!(
            "{tag}: a damaged database was read without error: {:#?}",
            taken.inventory.packages
        ),
        Err(error) => error,
    };
    let message = error.to_string();
    assert!(
        message.starts_with(prefix),
        "{tag}: expected an error starting with {prefix:?}, found {message:?}"
    );
    error
}

#[test]
fn damaged_rpm_databases_are_errors_naming_them() {
    for (name, layout, path, damage) in [
        (
            "rpm-sqlite-truncated",
            RpmLayout::Sqlite,
            "var/lib/rpm/rpmdb.sqlite",
            Damage::Truncated(|bytes: &[u8]| bytes.len() / 2),
        ),
        (
            "rpm-sqlite-garbage",
            RpmLayout::Sqlite,
            "var/lib/rpm/rpmdb.sqlite",
            Damage::Garbage(|_: &[u8]| 0),
        ),
        (
            "rpm-sysimage-garbage-pages",
            RpmLayout::Sysimage,
            "usr/lib/sysimage/rpm/rpmdb.sqlite",
            Damage::Garbage(|_: &[u8]| 4096),
        ),
        (
            "rpm-bdb-truncated",
            RpmLayout::BerkeleyDb,
            "var/lib/rpm/Packages",
            Damage::Truncated(|bytes: &[u8]| bytes.len() - 4096),
        ),
        (
            "rpm-bdb-garbage",
            RpmLayout::BerkeleyDb,
            "var/lib/rpm/Packages",
            Damage::Garbage(|_: &[u8]| 4096),
        ),
    ] {
        let base = layout.image();
        let tag = damaged_image(name, base, path, &file_of(base, path), damage);
        let error = assert_refused(
            &tag,
            &format!("the rpm database {} is unreadable: ", layout.location()),
        );
        assert!(
            matches!(error, InventoryError::Rpm { .. }),
            "{tag}: {error:?}"
        );
    }
}

/// Asserts that the inventory of `tag` lists `packages` packages and one skipped entry, whose
/// warning starts with `prefix` and contains `found`.
fn assert_partly_read(tag: &str, packages: usize, prefix: &str, found: &str) {
    let fs = fixtures::saved(tag, DigestSet::NONE);
    let taken = take_inventory(&fs).unwrap_or_else(|e| panic!("{tag}: {e}"));
    assert_eq!(taken.inventory.packages.len(), packages, "{tag}");
    let skipped: Vec<String> = taken.skipped.iter().map(ToString::to_string).collect();
    assert_eq!(skipped.len(), 1, "{tag}: {skipped:?}");
    assert!(
        skipped[0].starts_with(prefix) && skipped[0].contains(found),
        "{tag}: {skipped:?}"
    );
}

#[test]
fn a_truncated_dpkg_status_file_lists_its_whole_stanzas_and_names_the_cut_one() {
    slipway_tests::ensure_docker();
    let path = "var/lib/dpkg/status";
    let original = file_of(BASE_IMAGE, path);
    // Cut in the middle of the tenth stanza's `Version` field name: nine stanzas are whole.
    let tag = damaged_image(
        "dpkg-truncated",
        BASE_IMAGE,
        path,
        &original,
        Damage::Truncated(|bytes: &[u8]| after_nth(bytes, b"\nVers", 9)),
    );
    assert_partly_read(
        &tag,
        9,
        "dpkg package skipped: var/lib/dpkg/status: line ",
        "found \"Vers\"",
    );
}

#[test]
fn a_truncated_apk_database_lists_its_whole_stanzas_and_names_the_cut_one() {
    let path = "lib/apk/db/installed";
    let original = apk::installed().into_bytes();
    // Cut just after the third stanza's `P` key: two stanzas are whole.
    let tag = damaged_image(
        "apk-truncated",
        apk_image(),
        path,
        &original,
        Damage::Truncated(|bytes: &[u8]| after_nth(bytes, b"\nP", 2)),
    );
    assert_partly_read(
        &tag,
        2,
        "apk package skipped: lib/apk/db/installed: line ",
        "found \"P\"",
    );
}

#[test]
fn damaged_dpkg_status_files_are_errors_naming_them() {
    slipway_tests::ensure_docker();
    let path = "var/lib/dpkg/status";
    let original = file_of(BASE_IMAGE, path);
    // Garbage after the fifth stanza: more malformed entries than good ones. (A truncated file
    // is read as far as it goes: `a_truncated_dpkg_status_file_…`.)
    let damage = Damage::Garbage(|bytes: &[u8]| after_nth(bytes, b"\n\n", 4));
    let tag = damaged_image("dpkg-garbage", BASE_IMAGE, path, &original, damage);
    let error = assert_refused(
        &tag,
        "the dpkg database is unreadable: var/lib/dpkg/status: ",
    );
    assert!(matches!(error, InventoryError::Dpkg(_)), "{tag}: {error:?}");
}

#[test]
fn damaged_apk_databases_are_errors_naming_them() {
    let path = "lib/apk/db/installed";
    let original = apk::installed().into_bytes();
    // Garbage after the second stanza: more malformed entries than good ones. (A truncated
    // database is read as far as it goes: `a_truncated_apk_database_…`.)
    let damage = Damage::Garbage(|bytes: &[u8]| after_nth(bytes, b"\n\n", 1));
    let tag = damaged_image("apk-garbage", apk_image(), path, &original, damage);
    let error = assert_refused(
        &tag,
        "the apk database is unreadable: lib/apk/db/installed: ",
    );
    assert!(matches!(error, InventoryError::Apk(_)), "{tag}: {error:?}");
}

//! The package inventory of an image: which files the readers need ([`wanted`]) and what they
//! make of them ([`take_inventory`], [`inventory`]): the OS identity, then each package database
//! present (dpkg, apk, rpm), then the language packages (Python, npm, gems).
//!
//! A package database that exists but cannot be read fails the inventory ([`InventoryError`],
//! naming the database), and so do rpm database files beside which no database could be
//! picked (`rpm::unread_database_files`): without it the image's OS packages are unknown, and an
//! empty list would read as "nothing installed". A language-package file that cannot be read describes one package
//! only: it is left out and reported beside the inventory ([`TakenInventory::unreadable`]), so one
//! malformed `package.json` does not hide every other package of the image. Likewise a malformed
//! entry of a package database (a dpkg stanza without `Version:`, an apk stanza without `V:`) is
//! skipped and named ([`TakenInventory::skipped`]) while the rest of the database is read; only a
//! database of which nothing can be read fails. A database path that exists but whose content was
//! not read (a symbolic or hard link to a file the reader did not keep) is named there too, so an
//! unread database never reads as an empty one.

use crate::image::{FileKind, ImageFs};
use crate::lang::{self, LangError};
use crate::os::{apk, dpkg, release, rpm};
use crate::package::{Inventory, Package};

/// Why the inventory could not be taken: a package database that exists but cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The dpkg database is corrupted. (Its problem is in the message, not a `source`: a
    /// printed error chain would say it twice.)
    #[error("the dpkg database is unreadable: {0}")]
    Dpkg(dpkg::DpkgError),
    /// The apk database is corrupted.
    #[error("the apk database is unreadable: {0}")]
    Apk(apk::ApkError),
    /// The rpm database is corrupted.
    #[error("the rpm database {location} is unreadable: {source}")]
    Rpm {
        /// The database file, absolute in the image (`/var/lib/rpm/rpmdb.sqlite`).
        location: String,
        /// What is wrong with it.
        source: rpm::RpmError,
    },
}

impl From<dpkg::DpkgError> for InventoryError {
    fn from(error: dpkg::DpkgError) -> Self {
        InventoryError::Dpkg(error)
    }
}

impl From<apk::ApkError> for InventoryError {
    fn from(error: apk::ApkError) -> Self {
        InventoryError::Apk(error)
    }
}

/// Most malformed entries of one database named one by one ([`Skipped`]); the rest are counted
/// ([`Skipped::More`]), so a damaged database cannot flood a report with warnings.
pub const MAX_SKIPPED_NAMED: usize = 20;

/// Something of a package database the inventory left out, and why (a report shows each as a
/// warning).
#[derive(Debug, thiserror::Error)]
pub enum Skipped {
    /// A malformed stanza of the dpkg status file(s).
    #[error("dpkg package skipped: {0}")]
    Dpkg(dpkg::DpkgError),
    /// A malformed stanza of the apk database.
    #[error("apk package skipped: {0}")]
    Apk(apk::ApkError),
    /// More malformed entries of a database than [`MAX_SKIPPED_NAMED`]: how many more.
    #[error("{count} more malformed entries of /{database} skipped")]
    More {
        /// The database, relative to the image root.
        database: &'static str,
        /// How many were skipped beyond those named.
        count: usize,
    },
    /// The database lists more files than [`crate::os::MAX_DATABASE_FILES`]: these packages'
    /// files past the limit are not listed, so their integrity is checked only in part.
    #[error(
        "files not listed: /{database} lists more than {limit} files; those of {} past the limit \
         are not listed or checked",
        packages.join(", ")
    )]
    FilesCut {
        /// The database, relative to the image root.
        database: &'static str,
        /// [`crate::os::MAX_DATABASE_FILES`].
        limit: usize,
        /// The packages whose files were cut (the first 20).
        packages: Vec<String>,
    },
    /// A database file exists but its content was not read.
    #[error(
        "package database not read: /{path} is {found}, whose content the scanner does not \
         read; its packages are not listed"
    )]
    Unread {
        /// The database file, relative to the image root.
        path: String,
        /// What it is (`a symbolic link to …`, `a hard link to a file not kept`).
        found: String,
    },
}

/// An image's inventory, with the language-package files that could not be read.
#[derive(Debug, Default)]
pub struct TakenInventory {
    /// The OS and every package that could be read.
    pub inventory: Inventory,
    /// Language-package files (Python metadata, `package.json`, gemspec stubs) that are malformed,
    /// in path order: their packages are not in `inventory`. Each says where the file is, what
    /// was expected and what was found; a report shows them as warnings.
    pub unreadable: Vec<LangError>,
    /// Package database entries skipped as malformed, and database files that exist but were
    /// not read: their packages are not in `inventory`. A report shows them as warnings.
    pub skipped: Vec<Skipped>,
}

/// Whether a reader needs the content of the regular file at `path` (relative to the image
/// root).
pub fn wanted(path: &str) -> bool {
    release::RELEASE_FILES.contains(&path)
        || dpkg::wanted(path)
        || path == apk::INSTALLED
        || rpm::RPMDB_PATHS.contains(&path)
        || lang::wanted(path).is_some()
}

/// The OS and packages of `fs`, packages sorted by ecosystem, name, version and location, and the
/// language-package files that could not be read.
pub fn take_inventory(fs: &ImageFs) -> Result<TakenInventory, InventoryError> {
    let os = release::identify(|path| fs.content(path));
    let mut packages: Vec<Package> = Vec::new();
    let mut skipped: Vec<Skipped> = unread_databases(fs);
    let kept = fs.kept();

    let status_files: Vec<(&str, &[u8])> = kept
        .iter()
        .copied()
        .filter(|(path, _)| *path == dpkg::STATUS || path.starts_with(dpkg::STATUS_D))
        .collect();
    if !status_files.is_empty() {
        let md5sums = |name: &str| fs.content(&format!("{}{name}.md5sums", dpkg::INFO));
        let database = dpkg::read_database(&status_files, md5sums)?;
        packages.extend(database.packages);
        skipped.extend(named(database.skipped, Skipped::Dpkg, dpkg::STATUS));
        skipped.extend(files_cut(database.files_cut, dpkg::STATUS));
    }
    if let Some(installed) = fs.content(apk::INSTALLED) {
        let database = apk::read_installed(installed)?;
        packages.extend(database.packages);
        skipped.extend(named(database.skipped, Skipped::Apk, apk::INSTALLED));
        skipped.extend(files_cut(database.files_cut, apk::INSTALLED));
    }
    if let Some(database) = rpm::RpmDbFiles::find(|path| fs.content(path)) {
        let read = rpm::read_database(&database).map_err(|source| InventoryError::Rpm {
            location: database.location(),
            source,
        })?;
        packages.extend(read);
    } else if let Some((dir, source)) =
        rpm::unread_database_files(fs.entries().map(|(path, _)| path))
    {
        // Database files but none picked: packages nobody read, not an image without packages.
        return Err(InventoryError::Rpm {
            location: dir,
            source,
        });
    }

    let mut unreadable = Vec::new();
    for (path, bytes) in kept {
        let Some(kind) = lang::wanted(path) else {
            continue;
        };
        match lang::read(kind, path, bytes) {
            Ok(Some(package)) => packages.push(package),
            Ok(None) => {}
            Err(error) => unreadable.push(error),
        }
    }

    packages.sort_by(|a, b| {
        (a.ecosystem, &a.name, &a.version, &a.location).cmp(&(
            b.ecosystem,
            &b.name,
            &b.version,
            &b.location,
        ))
    });
    Ok(TakenInventory {
        inventory: Inventory { os, packages },
        unreadable,
        skipped,
    })
}

/// The first [`MAX_SKIPPED_NAMED`] of `errors` as `each`, and how many more of `database`.
fn named<E>(errors: Vec<E>, each: fn(E) -> Skipped, database: &'static str) -> Vec<Skipped> {
    let more = errors.len().saturating_sub(MAX_SKIPPED_NAMED);
    let mut out: Vec<Skipped> = errors
        .into_iter()
        .take(MAX_SKIPPED_NAMED)
        .map(each)
        .collect();
    if more > 0 {
        out.push(Skipped::More {
            database,
            count: more,
        });
    }
    out
}

/// The warning for the packages of `database` whose files were cut, if any.
fn files_cut(mut packages: Vec<String>, database: &'static str) -> Option<Skipped> {
    if packages.is_empty() {
        return None;
    }
    let more = packages.len().saturating_sub(MAX_SKIPPED_NAMED);
    packages.truncate(MAX_SKIPPED_NAMED);
    if more > 0 {
        packages.push(format!("{more} more"));
    }
    Some(Skipped::FilesCut {
        database,
        limit: crate::os::MAX_DATABASE_FILES,
        packages,
    })
}

/// The package database files of `fs` that exist but whose content was not kept: a symbolic link,
/// or a hard link to a file the reader did not keep.
fn unread_databases(fs: &ImageFs) -> Vec<Skipped> {
    let databases = [dpkg::STATUS, apk::INSTALLED]
        .into_iter()
        .chain(rpm::RPMDB_PATHS);
    databases
        .filter_map(|path| {
            let meta = fs.meta(path)?;
            if fs.content(path).is_some() {
                return None;
            }
            let found = match &meta.kind {
                FileKind::Symlink(target) => format!("a symbolic link to {target}"),
                FileKind::Regular => "a hard link to a file the scanner did not keep".to_owned(),
                FileKind::Directory => "a directory".to_owned(),
                FileKind::Special => "a device, FIFO or socket".to_owned(),
            };
            Some(Skipped::Unread {
                path: path.to_owned(),
                found,
            })
        })
        .collect()
}

/// [`take_inventory`] without the unreadable language-package files, for callers that do not
/// report them: their packages are missing from the result without a trace.
pub fn inventory(fs: &ImageFs) -> Result<Inventory, InventoryError> {
    take_inventory(fs).map(|taken| taken.inventory)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::layers::{read_layer, stack, tar_of};
    use crate::image::{DigestSet, ReadLimits, ReadOptions};
    use crate::package::Ecosystem;

    /// An image of one layer holding `files`, read as the worker reads images.
    fn image(files: &[(&str, &[u8])]) -> ImageFs {
        let entries: Vec<(&str, Option<&[u8]>)> = files
            .iter()
            .map(|(path, bytes)| (*path, Some(*bytes)))
            .collect();
        let options = ReadOptions {
            keep: &wanted,
            digests: DigestSet::NONE,
            limits: ReadLimits::default(),
        };
        let layer = read_layer(&tar_of(&entries)[..], "test layer", &options).expect("layer");
        stack([layer], None)
    }

    const OS_RELEASE: (&str, &[u8]) = ("etc/os-release", b"ID=debian\nVERSION_ID=12\n");
    const STATUS: (&str, &[u8]) = (
        "var/lib/dpkg/status",
        b"Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\n\
          Version: 1:1.2.13.dfsg-1\n",
    );

    #[test]
    fn language_packages_join_the_os_packages_in_the_sort_order() {
        let fs = image(&[
            OS_RELEASE,
            STATUS,
            (
                "app/node_modules/ms/package.json",
                br#"{"name":"ms","version":"2.1.3"}"#,
            ),
            (
                "usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO",
                b"Name: six\nVersion: 1.16.0\n",
            ),
            (
                "usr/lib/ruby/gems/3.1.0/specifications/rake-13.0.6.gemspec",
                b"# stub: rake 13.0.6 ruby lib\n",
            ),
            ("app/package.json", br#"{"name":"app","version":"1.0.0"}"#),
        ]);
        let taken = take_inventory(&fs).expect("inventory");
        assert!(taken.unreadable.is_empty(), "{:?}", taken.unreadable);
        let found: Vec<(Ecosystem, &str, &str)> = taken
            .inventory
            .packages
            .iter()
            .map(|p| (p.ecosystem, p.name.as_str(), p.location.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (Ecosystem::Deb, "zlib1g", "/var/lib/dpkg/status"),
                (
                    Ecosystem::Pypi,
                    "six",
                    "/usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO"
                ),
                (Ecosystem::Npm, "ms", "/app/node_modules/ms/package.json"),
                (
                    Ecosystem::Gem,
                    "rake",
                    "/usr/lib/ruby/gems/3.1.0/specifications/rake-13.0.6.gemspec"
                ),
            ]
        );
        assert_eq!(inventory(&fs).expect("inventory"), taken.inventory);
    }

    #[test]
    fn an_unreadable_language_file_is_reported_and_the_rest_is_read() {
        let fs = image(&[
            OS_RELEASE,
            STATUS,
            ("srv/node_modules/broken/package.json", b"{\"name\": "),
            (
                "srv/node_modules/ms/package.json",
                br#"{"name":"ms","version":"2.1.3"}"#,
            ),
            (
                "opt/venv/lib/python3.11/site-packages/x-1.dist-info/METADATA",
                b"Name: x\n",
            ),
        ]);
        let taken = take_inventory(&fs).expect("a broken language file is not fatal");
        let names: Vec<&str> = taken
            .inventory
            .packages
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["zlib1g", "ms"]);
        let unreadable: Vec<String> = taken.unreadable.iter().map(|e| e.to_string()).collect();
        assert_eq!(unreadable.len(), 2, "{unreadable:?}");
        assert_eq!(
            unreadable[0],
            "/opt/venv/lib/python3.11/site-packages/x-1.dist-info/METADATA: expected a \
             `Version:` header, found none"
        );
        assert!(
            unreadable[1].starts_with(
                "/srv/node_modules/broken/package.json: expected a JSON object, found invalid JSON"
            ),
            "{}",
            unreadable[1]
        );
    }

    #[test]
    fn a_corrupted_rpm_database_is_named_in_the_error() {
        let fs = image(&[
            ("etc/os-release", b"ID=rocky\nVERSION_ID=9.3\n"),
            (
                "usr/lib/sysimage/rpm/rpmdb.sqlite",
                b"not a database at all",
            ),
        ]);
        let error = take_inventory(&fs).expect_err("corrupted").to_string();
        assert!(
            error
                .starts_with("the rpm database /usr/lib/sysimage/rpm/rpmdb.sqlite is unreadable: "),
            "{error}"
        );
    }

    #[test]
    fn a_malformed_database_entry_is_skipped_with_a_warning_and_the_rest_is_listed() {
        let fs = image(&[
            OS_RELEASE,
            (
                "var/lib/dpkg/status",
                b"Package: zlib1g\nStatus: install ok installed\nVersion: 1:1.2.13.dfsg-1\n\n\
                  Package: broken\nStatus: install ok installed\nArchitecture: amd64\n",
            ),
            ("lib/apk/db/installed", b"P:musl\nV:1.2.4-r4\n\nP:nover\n"),
        ]);
        let taken = take_inventory(&fs).expect("one bad entry is not fatal");
        let names: Vec<&str> = taken
            .inventory
            .packages
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["zlib1g", "musl"]);
        let skipped: Vec<String> = taken.skipped.iter().map(ToString::to_string).collect();
        assert_eq!(
            skipped,
            [
                "dpkg package skipped: var/lib/dpkg/status: the stanza at line 5 has no Version \
                 field",
                "apk package skipped: lib/apk/db/installed: the stanza at line 4 has no V: line",
            ]
        );
    }

    #[test]
    fn a_database_nothing_of_which_can_be_read_fails_the_inventory() {
        let fs = image(&[
            OS_RELEASE,
            ("var/lib/dpkg/status", b"\x7fELF\x02\x01 binary junk\n"),
        ]);
        let error = take_inventory(&fs).expect_err("unreadable as a whole");
        assert!(
            error
                .to_string()
                .starts_with("the dpkg database is unreadable: var/lib/dpkg/status: line 1"),
            "{error}"
        );
    }

    #[test]
    fn a_database_that_is_a_link_to_an_unkept_file_is_named_not_taken_as_empty() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(4);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, "opt/real-status", &b"junk"[..])
            .unwrap();
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Link);
        link.set_size(0);
        builder
            .append_link(&mut link, "var/lib/dpkg/status", "opt/real-status")
            .unwrap();
        let mut symlink = tar::Header::new_gnu();
        symlink.set_entry_type(tar::EntryType::Symlink);
        symlink.set_size(0);
        builder
            .append_link(&mut symlink, "lib/apk/db/installed", "/opt/installed")
            .unwrap();
        let options = ReadOptions {
            keep: &wanted,
            digests: DigestSet::NONE,
            limits: ReadLimits::default(),
        };
        let tar = builder.into_inner().unwrap();
        let fs = stack([read_layer(&tar[..], "layer", &options).unwrap()], None);
        let taken = take_inventory(&fs).unwrap();
        let skipped: Vec<String> = taken.skipped.iter().map(ToString::to_string).collect();
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(
            skipped[0]
                .starts_with("package database not read: /var/lib/dpkg/status is a hard link"),
            "{skipped:?}"
        );
        assert!(skipped[1].starts_with("package database not read: /lib/apk/db/installed is a symbolic link to /opt/installed"), "{skipped:?}");
    }

    #[test]
    fn a_few_malformed_entries_are_named_one_by_one_and_the_rest_counted() {
        let mut status = String::new();
        for i in 0..30 {
            status.push_str(&format!(
                "Package: good{i}\nStatus: install ok installed\nVersion: 1\n\n"
            ));
        }
        for i in 0..25 {
            status.push_str(&format!(
                "Package: bad{i}\nStatus: install ok installed\n\n"
            ));
        }
        let fs = image(&[OS_RELEASE, ("var/lib/dpkg/status", status.as_bytes())]);
        let taken = take_inventory(&fs).expect("more good entries than bad");
        assert_eq!(taken.inventory.packages.len(), 30);
        assert_eq!(taken.skipped.len(), MAX_SKIPPED_NAMED + 1);
        assert_eq!(
            taken.skipped[MAX_SKIPPED_NAMED].to_string(),
            "5 more malformed entries of /var/lib/dpkg/status skipped"
        );
    }

    /// The ndb database rpm 4.18 wrote (`tests/data/rpm-ndb/make.sh`).
    const NDB_PACKAGES: &[u8] = include_bytes!("../tests/data/rpm-ndb/Packages.db");
    const NDB_INDEX_GZ: &[u8] = include_bytes!("../tests/data/rpm-ndb/Index.db.gz");
    const SLES_RELEASE: (&str, &[u8]) = (
        "etc/os-release",
        b"NAME=\"SLES\"\nVERSION=\"15-SP3\"\nVERSION_ID=\"15.3\"\nID=\"sles\"\n",
    );

    fn ndb_index() -> Vec<u8> {
        let mut index = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(NDB_INDEX_GZ), &mut index)
            .expect("Index.db.gz");
        index
    }

    #[test]
    fn an_ndb_database_is_read_not_taken_for_no_packages() {
        // Issue 13 defect 10: SLE 15 SP3+ images identified as sles 15.3 with 0 packages.
        let index = ndb_index();
        let fs = image(&[
            SLES_RELEASE,
            ("usr/lib/sysimage/rpm/Packages.db", NDB_PACKAGES),
            ("usr/lib/sysimage/rpm/Index.db", &index),
        ]);
        let inventory = take_inventory(&fs).expect("readable").inventory;
        let packages: Vec<(&str, &str, Option<&str>, &str)> = inventory
            .packages
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.version.as_str(),
                    p.arch.as_deref(),
                    p.location.as_str(),
                )
            })
            .collect();
        let at = "/usr/lib/sysimage/rpm/Packages.db";
        assert_eq!(
            packages,
            [
                ("ndb-alpha", "3:1.2.3-4.sle15", Some("noarch"), at),
                ("ndb-beta", "0.9~rc1-1.1", Some("noarch"), at),
                ("ndb-gamma", "2024.1-150300.2.1", Some("noarch"), at),
            ]
        );
        assert!(
            inventory
                .packages
                .iter()
                .all(|p| p.ecosystem == Ecosystem::Rpm)
        );
    }

    /// A layer tar holding `files` and a symbolic link `link` → `target`.
    fn image_with_link(files: &[(&str, &[u8])], link: &str, target: &str) -> ImageFs {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, bytes) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, path, *bytes)
                .expect("file");
        }
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        header.set_mode(0o777);
        builder
            .append_link(&mut header, link, target)
            .expect("link");
        let tar = builder.into_inner().expect("tar");
        let options = ReadOptions {
            keep: &wanted,
            digests: DigestSet::NONE,
            limits: ReadLimits::default(),
        };
        stack(
            [read_layer(&tar[..], "test layer", &options).expect("layer")],
            None,
        )
    }

    #[test]
    fn an_rpm_database_found_but_unreadable_is_an_error_whatever_its_backend() {
        let garbage: &[u8] = b"this is not a database of any kind, just text in its place";
        let index = ndb_index();
        /// What the image holds, with what the error must start with.
        type Case<'a> = (&'a str, Vec<(&'a str, &'a [u8])>, &'a str);
        let cases: [Case<'_>; 6] = [
            (
                "garbage rpmdb.sqlite",
                vec![("var/lib/rpm/rpmdb.sqlite", garbage)],
                "the rpm database /var/lib/rpm/rpmdb.sqlite is unreadable: rpmdb.sqlite: ",
            ),
            (
                "garbage Packages.db",
                vec![("usr/lib/sysimage/rpm/Packages.db", garbage)],
                "the rpm database /usr/lib/sysimage/rpm/Packages.db is unreadable: ndb \
                 Packages.db, byte 0: magic",
            ),
            (
                "garbage Packages",
                vec![("var/lib/rpm/Packages", garbage)],
                "the rpm database /var/lib/rpm/Packages is unreadable: Berkeley DB Packages, page \
                 0: ",
            ),
            (
                "truncated Packages.db",
                vec![(
                    "usr/lib/sysimage/rpm/Packages.db",
                    &NDB_PACKAGES[..NDB_PACKAGES.len() - 4096],
                )],
                "the rpm database /usr/lib/sysimage/rpm/Packages.db is unreadable: ndb \
                 Packages.db, byte ",
            ),
            (
                "Index.db without Packages.db",
                vec![("usr/lib/sysimage/rpm/Index.db", &index)],
                "the rpm database /usr/lib/sysimage/rpm is unreadable: the image holds rpm \
                 database files (/usr/lib/sysimage/rpm/Index.db) but no package file",
            ),
            (
                "Berkeley DB indexes without Packages",
                vec![
                    ("var/lib/rpm/Name", garbage),
                    ("var/lib/rpm/Basenames", garbage),
                ],
                "the rpm database /var/lib/rpm is unreadable: the image holds rpm database files \
                 (/var/lib/rpm/Basenames, /var/lib/rpm/Name)",
            ),
        ];
        for (case, files, expected) in cases {
            let mut files = files;
            files.push(SLES_RELEASE);
            let result = take_inventory(&image(&files));
            let error = match result {
                Ok(taken) => panic!(
                    "{case}: read as {} packages, expected an error",
                    taken.inventory.packages.len()
                ),
                Err(error) => error.to_string(),
            };
            assert!(error.starts_with(expected), "{case}: {error}");
        }
        // Packages.db as a symbolic link out of the database directory: not read, so an error.
        let fs = image_with_link(
            &[SLES_RELEASE, ("srv/rpmdb/Packages.db", NDB_PACKAGES)],
            "usr/lib/sysimage/rpm/Packages.db",
            "/srv/rpmdb/Packages.db",
        );
        let error = take_inventory(&fs).expect_err("a link").to_string();
        assert!(
            error.contains("rpm database files (/usr/lib/sysimage/rpm/Packages.db)"),
            "{error}"
        );
    }
}

//! The package inventory of an image: which files the readers need ([`wanted`]) and what they
//! make of them ([`take_inventory`], [`inventory`]): the OS identity, then each package database
//! present (dpkg, apk, rpm), then the language packages (Python, npm, gems).
//!
//! A package database that exists but cannot be read fails the inventory ([`InventoryError`],
//! naming the database), and so do rpm database files beside which no database could be
//! picked (`rpm::unread_database_files`): without it the image's OS packages are unknown, and an
//! empty list would read as "nothing installed". A language-package file that cannot be read describes one package
//! only: it is left out and reported beside the inventory ([`TakenInventory::unreadable`]), so one
//! malformed `package.json` does not hide every other package of the image.

use crate::image::ImageFs;
use crate::lang::{self, LangError};
use crate::os::{apk, dpkg, release, rpm};
use crate::package::{Inventory, Package};

/// Why the inventory could not be taken: a package database that exists but cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The dpkg database is corrupted.
    #[error("the dpkg database is unreadable: {0}")]
    Dpkg(#[from] dpkg::DpkgError),
    /// The apk database is corrupted.
    #[error("the apk database is unreadable: {0}")]
    Apk(#[from] apk::ApkError),
    /// The rpm database is corrupted.
    #[error("the rpm database {location} is unreadable: {source}")]
    Rpm {
        /// The database file, absolute in the image (`/var/lib/rpm/rpmdb.sqlite`).
        location: String,
        /// What is wrong with it.
        source: rpm::RpmError,
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
    let kept = fs.kept();

    let status_files: Vec<(&str, &[u8])> = kept
        .iter()
        .copied()
        .filter(|(path, _)| *path == dpkg::STATUS || path.starts_with(dpkg::STATUS_D))
        .collect();
    if !status_files.is_empty() {
        let md5sums = |name: &str| fs.content(&format!("{}{name}.md5sums", dpkg::INFO));
        packages.extend(dpkg::read_database(&status_files, md5sums)?);
    }
    if let Some(installed) = fs.content(apk::INSTALLED) {
        packages.extend(apk::read_installed(installed)?);
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
    })
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
    use crate::image::{DigestSet, ReadOptions};
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

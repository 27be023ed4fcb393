//! The rpm package database of an image: which files hold it, and the installed packages read
//! from them (sqlite `rpmdb.sqlite` of rpm ≥ 4.16, ndb `Packages.db` of SUSE's rpm ≥ 4.16, or
//! Berkeley DB `Packages` of older rpm).
//!
//! Pure functions over bytes: the image reader collects the files named in [`RPMDB_PATHS`], picks
//! a database with [`RpmDbFiles::find`] and calls [`read_database`]. Each database yields header
//! blobs ([`HeaderBlob`]), which [`header::parse_package`] turns into [`Package`]s. When `find`
//! picks none, [`unread_database_files`] says whether the image still holds rpm database files
//! (an index without its package file, a database that is a symbolic link or too large to keep):
//! such an image has packages nobody read, which is an error, not an empty list.

pub mod bdb;
pub mod header;
pub mod ndb;
pub mod sqlite;

use crate::package::Package;

/// Directories rpm keeps its database in, relative to the image root, in the order
/// [`RpmDbFiles::find`] tries them (`usr/lib/sysimage/rpm` is Fedora ≥ 36 and openSUSE, where
/// `var/lib/rpm` is usually a symlink to it).
pub const RPMDB_DIRS: [&str; 2] = ["var/lib/rpm", "usr/lib/sysimage/rpm"];

/// The sqlite database's file name (rpm ≥ 4.16: RHEL 9, Fedora ≥ 33).
pub const SQLITE_FILE: &str = "rpmdb.sqlite";

/// The sqlite database's write-ahead log, which may hold committed pages not yet copied into
/// [`SQLITE_FILE`].
pub const SQLITE_WAL_FILE: &str = "rpmdb.sqlite-wal";

/// The ndb database's package file name (SUSE Linux Enterprise ≥ 15 SP3, openSUSE).
pub const NDB_FILE: &str = "Packages.db";

/// The ndb database's index file (names, files, provides): not needed to list packages.
pub const NDB_INDEX_FILE: &str = "Index.db";

/// The Berkeley DB hash database's file name (rpm < 4.16: CentOS 7 and 8, RHEL 7 and 8).
pub const BDB_FILE: &str = "Packages";

/// Every path, relative to the image root, the image reader must collect for [`RpmDbFiles::find`].
pub const RPMDB_PATHS: [&str; 8] = [
    "var/lib/rpm/rpmdb.sqlite",
    "var/lib/rpm/rpmdb.sqlite-wal",
    "var/lib/rpm/Packages.db",
    "var/lib/rpm/Packages",
    "usr/lib/sysimage/rpm/rpmdb.sqlite",
    "usr/lib/sysimage/rpm/rpmdb.sqlite-wal",
    "usr/lib/sysimage/rpm/Packages.db",
    "usr/lib/sysimage/rpm/Packages",
];

/// Files of an rpm database directory that belong to a database of some backend: the package
/// files, the sqlite WAL, ndb's index, and Berkeley DB's index files. One of them in an image
/// whose package file could not be picked means the image has rpm packages that were not read.
pub const DATABASE_FILE_NAMES: [&str; 17] = [
    SQLITE_FILE,
    SQLITE_WAL_FILE,
    NDB_FILE,
    NDB_INDEX_FILE,
    BDB_FILE,
    "Basenames",
    "Conflictname",
    "Dirnames",
    "Enhancename",
    "Filetriggername",
    "Group",
    "Installtid",
    "Name",
    "Obsoletename",
    "Providename",
    "Requirename",
    "Sha1header",
];

/// The files of one rpm database found in an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpmDbFiles<'a> {
    /// The directory they were found in, absolute (`/var/lib/rpm`): each package's `location` is
    /// this directory joined with the database's file name.
    pub dir: String,
    /// The database's content.
    pub database: RpmDatabase<'a>,
}

/// The content of an rpm database, by kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RpmDatabase<'a> {
    /// `rpmdb.sqlite`, with `rpmdb.sqlite-wal` when the image has one.
    Sqlite {
        /// `rpmdb.sqlite`.
        db: &'a [u8],
        /// `rpmdb.sqlite-wal`, when present (its committed frames are applied, as sqlite would).
        wal: Option<&'a [u8]>,
    },
    /// An ndb `Packages.db` (its `Index.db` is not needed to list the packages).
    Ndb {
        /// `Packages.db`.
        packages: &'a [u8],
    },
    /// A Berkeley DB hash `Packages` file.
    BerkeleyDb {
        /// `Packages`.
        packages: &'a [u8],
    },
}

impl<'a> RpmDbFiles<'a> {
    /// Picks the database from the files the image reader collected, given a lookup by path
    /// relative to the image root (one of [`RPMDB_PATHS`]). The directories are tried in
    /// [`RPMDB_DIRS`] order, and in one directory the newest backend is preferred over files an
    /// older one left behind by a conversion: `rpmdb.sqlite`, then `Packages.db`, then
    /// `Packages`. `None` when the image has no rpm database.
    pub fn find(lookup: impl Fn(&str) -> Option<&'a [u8]>) -> Option<Self> {
        RPMDB_DIRS.iter().find_map(|dir| {
            let database = if let Some(db) = lookup(&format!("{dir}/{SQLITE_FILE}")) {
                RpmDatabase::Sqlite {
                    db,
                    wal: lookup(&format!("{dir}/{SQLITE_WAL_FILE}")),
                }
            } else if let Some(packages) = lookup(&format!("{dir}/{NDB_FILE}")) {
                RpmDatabase::Ndb { packages }
            } else {
                RpmDatabase::BerkeleyDb {
                    packages: lookup(&format!("{dir}/{BDB_FILE}"))?,
                }
            };
            Some(RpmDbFiles {
                dir: format!("/{dir}"),
                database,
            })
        })
    }

    /// Where the database's packages are recorded in the image (`/var/lib/rpm/rpmdb.sqlite`).
    pub fn location(&self) -> String {
        let file = match self.database {
            RpmDatabase::Sqlite { .. } => SQLITE_FILE,
            RpmDatabase::Ndb { .. } => NDB_FILE,
            RpmDatabase::BerkeleyDb { .. } => BDB_FILE,
        };
        format!("{}/{file}", self.dir.trim_end_matches('/'))
    }
}

/// One record of an rpm database: a package's header as rpm stored it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderBlob {
    /// rpm's instance number of the package (sqlite `hnum`, Berkeley DB key).
    pub instance: u32,
    /// The header in its stored (immutable region) form.
    pub blob: Vec<u8>,
}

/// The rpm database files of an image when [`RpmDbFiles::find`] found no database to read:
/// `entries` are the image's paths (relative to the root, any kind of file), and the result is
/// the directory of the first of them that is a database file ([`DATABASE_FILE_NAMES`]) in an
/// rpm database directory (absolute: `/var/lib/rpm`) and the error naming them all, or `None`
/// when there are none (the image has no rpm database).
///
/// Such files are there when the database is of a kind no reader knows, its package file is
/// missing beside its indexes, or the package file is not a regular file the image reader kept
/// (a symbolic link, a file larger than the reader keeps): the image's rpm packages were not read.
pub fn unread_database_files<'p>(
    entries: impl IntoIterator<Item = &'p str>,
) -> Option<(String, RpmError)> {
    let files: Vec<String> = entries
        .into_iter()
        .filter(|path| {
            path.rsplit_once('/').is_some_and(|(dir, name)| {
                RPMDB_DIRS.contains(&dir) && DATABASE_FILE_NAMES.contains(&name)
            })
        })
        .map(|path| format!("/{path}"))
        .collect();
    let dir = files.first()?.rsplit_once('/')?.0.to_owned();
    Some((dir, RpmError::Unread { files }))
}

/// Why an rpm database could not be read. Each message says what was expected and what was
/// found, and where.
#[derive(Debug, thiserror::Error)]
pub enum RpmError {
    /// The blob cannot even hold the index count and data length it starts with.
    #[error("rpm header needs at least 8 bytes (index count, data length), the blob has {found}")]
    HeaderTooShort {
        /// The blob's length.
        found: u64,
    },
    /// The blob's length disagrees with the index count and data length it starts with.
    #[error(
        "rpm header of {index_count} index entries and {data_len} data bytes is {expected} bytes \
         long, the blob has {found}"
    )]
    HeaderSize {
        /// Index entries the header says it has.
        index_count: u64,
        /// Data bytes the header says it has.
        data_len: u64,
        /// The length those imply (8 + 16 × entries + data).
        expected: u64,
        /// The blob's length.
        found: u64,
    },
    /// A count at the start of the header is beyond rpm's own limits.
    #[error("rpm header: {what} is {found}, expected {min} to {max}")]
    HeaderLimit {
        /// `index count` or `data length`.
        what: &'static str,
        /// The value found.
        found: u64,
        /// The least valid value.
        min: u64,
        /// rpm's limit.
        max: u64,
    },
    /// The immutable region tag or its trailer is malformed.
    #[error("rpm header region (tag {tag}): {problem}")]
    HeaderRegion {
        /// The region tag (61, 62 or 63).
        tag: u32,
        /// What was expected and what was found.
        problem: String,
    },
    /// An index entry's data is malformed.
    #[error("rpm header tag {tag} (type {kind}, data offset {offset}, count {count}): {problem}")]
    HeaderEntry {
        /// The entry's tag.
        tag: u32,
        /// The entry's type.
        kind: u32,
        /// The entry's offset in the data store.
        offset: i64,
        /// The entry's count.
        count: u32,
        /// What was expected and what was found.
        problem: String,
    },
    /// A tag every package header has is missing.
    #[error("rpm header has no {name} tag ({tag})")]
    MissingTag {
        /// The tag.
        tag: u32,
        /// Its rpm name.
        name: &'static str,
    },
    /// A per-file array does not have one entry per file.
    #[error("rpm header: {name} has {found} entries, expected {expected} (one per file)")]
    FileCount {
        /// The tag's rpm name.
        name: &'static str,
        /// The number of files.
        expected: u64,
        /// The array's length.
        found: u64,
    },
    /// A file's directory index points past the directory list.
    #[error("rpm header: file {file} has directory index {index}, expected below {dirs}")]
    DirIndex {
        /// The file's position in the file list.
        file: u64,
        /// Its directory index.
        index: u32,
        /// The number of directories.
        dirs: u64,
    },
    /// A file digest is not the hex string its algorithm gives.
    #[error("rpm header: digest of file {file} is {found:?}, expected {expected} hex digits")]
    Digest {
        /// The file's position in the file list.
        file: u64,
        /// The digest found.
        found: String,
        /// The length expected for the package's digest algorithm.
        expected: usize,
    },
    /// One record of the database is not a valid header.
    /// (The inner error is part of the message, not a `source`, so that printing the error
    /// chain does not repeat it.)
    #[error("{database} record {instance}: {problem}")]
    Record {
        /// `rpmdb.sqlite`, `Packages.db` or `Packages`.
        database: &'static str,
        /// The record's instance number.
        instance: u32,
        /// What is wrong with it.
        problem: Box<RpmError>,
    },
    /// sqlite could not read `rpmdb.sqlite`.
    #[error("rpmdb.sqlite: {context}: {error}")]
    Sqlite {
        /// What was being done.
        context: &'static str,
        /// sqlite's error.
        error: rusqlite::Error,
    },
    /// A `Packages` row of `rpmdb.sqlite` is not what rpm writes.
    #[error("rpmdb.sqlite: {problem}")]
    SqliteRow {
        /// What was expected and what was found.
        problem: String,
    },
    /// The Berkeley DB `Packages` file is malformed or of a kind rpm does not write.
    #[error("Berkeley DB Packages, page {page}: {problem}")]
    Bdb {
        /// The page where the problem was found (0 is the metadata page).
        page: u32,
        /// What was expected and what was found.
        problem: String,
    },
    /// The ndb `Packages.db` file is malformed or of a kind rpm does not write.
    #[error("ndb Packages.db, byte {offset}: {problem}")]
    Ndb {
        /// Where in the file the problem was found.
        offset: u64,
        /// What was expected and what was found.
        problem: String,
    },
    /// The image holds rpm database files, but no package database a reader could read.
    #[error(
        "the image holds rpm database files ({}) but no package file that could be read: \
         expected a regular file rpmdb.sqlite, Packages.db or Packages beside them",
        files.join(", ")
    )]
    Unread {
        /// The database files found, absolute in the image.
        files: Vec<String>,
    },
}

/// Reads the installed packages of an rpm database, sorted by name, then version and architecture
/// (as strings: rpm's version order is `version::rpm`'s business). `gpg-pubkey` pseudo-packages
/// (imported signing keys) are left out.
pub fn read_database(files: &RpmDbFiles<'_>) -> Result<Vec<Package>, RpmError> {
    let (database, blobs) = match files.database {
        RpmDatabase::Sqlite { db, wal } => (SQLITE_FILE, sqlite::header_blobs(db, wal)?),
        RpmDatabase::Ndb { packages } => (NDB_FILE, ndb::header_blobs(packages)?),
        RpmDatabase::BerkeleyDb { packages } => (BDB_FILE, bdb::header_blobs(packages)?),
    };
    let location = files.location();
    let mut packages = Vec::with_capacity(blobs.len());
    for record in blobs {
        let parsed =
            header::parse_package(&record.blob, &location).map_err(|e| RpmError::Record {
                database,
                instance: record.instance,
                problem: Box::new(e),
            })?;
        packages.extend(parsed);
    }
    packages.sort_by(|a, b| (&a.name, &a.version, &a.arch).cmp(&(&b.name, &b.version, &b.arch)));
    Ok(packages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn find_prefers_sqlite_and_the_first_directory() {
        let files: HashMap<&str, &[u8]> = HashMap::from([
            ("var/lib/rpm/Packages", &b"bdb"[..]),
            ("usr/lib/sysimage/rpm/rpmdb.sqlite", &b"sqlite"[..]),
            ("usr/lib/sysimage/rpm/rpmdb.sqlite-wal", &b"wal"[..]),
        ]);
        let found = RpmDbFiles::find(|p| files.get(p).copied());
        assert_eq!(
            found,
            Some(RpmDbFiles {
                dir: "/var/lib/rpm".to_owned(),
                database: RpmDatabase::BerkeleyDb { packages: b"bdb" },
            })
        );
        let files: HashMap<&str, &[u8]> = HashMap::from([
            ("usr/lib/sysimage/rpm/Packages", &b"bdb"[..]),
            ("usr/lib/sysimage/rpm/rpmdb.sqlite", &b"sqlite"[..]),
            ("usr/lib/sysimage/rpm/rpmdb.sqlite-wal", &b"wal"[..]),
        ]);
        let found = RpmDbFiles::find(|p| files.get(p).copied());
        assert_eq!(
            found.as_ref().map(RpmDbFiles::location).as_deref(),
            Some("/usr/lib/sysimage/rpm/rpmdb.sqlite")
        );
        assert_eq!(
            found.map(|f| f.database),
            Some(RpmDatabase::Sqlite {
                db: b"sqlite",
                wal: Some(b"wal"),
            })
        );
        assert_eq!(RpmDbFiles::find(|_| None), None);
    }

    #[test]
    fn find_picks_ndb_before_berkeley_db_and_after_sqlite() {
        let files: HashMap<&str, &[u8]> = HashMap::from([
            ("usr/lib/sysimage/rpm/Packages.db", &b"ndb"[..]),
            ("usr/lib/sysimage/rpm/Index.db", &b"index"[..]),
            ("usr/lib/sysimage/rpm/Packages", &b"bdb"[..]),
        ]);
        let found = RpmDbFiles::find(|p| files.get(p).copied()).expect("a database");
        assert_eq!(found.database, RpmDatabase::Ndb { packages: b"ndb" });
        assert_eq!(found.location(), "/usr/lib/sysimage/rpm/Packages.db");
        let files: HashMap<&str, &[u8]> = HashMap::from([
            ("var/lib/rpm/Packages.db", &b"ndb"[..]),
            ("var/lib/rpm/rpmdb.sqlite", &b"sqlite"[..]),
        ]);
        let found = RpmDbFiles::find(|p| files.get(p).copied()).expect("a database");
        assert_eq!(found.location(), "/var/lib/rpm/rpmdb.sqlite");
    }

    #[test]
    fn database_files_without_a_readable_package_file_are_an_error() {
        // SLE 15 SP3: Packages.db is the database; were it not picked, its Index.db (and the
        // Packages.db entry itself, a symbolic link or too large to keep) still say so.
        let paths = [
            "etc/os-release",
            "usr/lib/sysimage/rpm/Index.db",
            "usr/lib/sysimage/rpm/Packages.db",
            "usr/lib/sysimage/rpm/.rpm.lock",
            "var/lib/rpm",
            "var/lib/rpmstate/Packages",
        ];
        let (dir, error) = unread_database_files(paths).expect("unread files");
        assert_eq!(dir, "/usr/lib/sysimage/rpm");
        assert_eq!(
            error.to_string(),
            "the image holds rpm database files (/usr/lib/sysimage/rpm/Index.db, \
             /usr/lib/sysimage/rpm/Packages.db) but no package file that could be read: expected \
             a regular file rpmdb.sqlite, Packages.db or Packages beside them"
        );
        // Berkeley DB indexes without their Packages.
        assert!(unread_database_files(["var/lib/rpm/Name", "var/lib/rpm/Basenames"]).is_some());
        // Lock files, an empty directory or files elsewhere are no database.
        let none = [
            "var/lib/rpm/.rpm.lock",
            "var/lib/rpm/.dbenv.lock",
            "var/lib/rpm",
            "opt/var/lib/rpm/Packages",
        ];
        assert!(unread_database_files(none).is_none());
    }

    #[test]
    fn every_looked_up_path_is_listed() {
        let asked = std::cell::RefCell::new(Vec::new());
        let _ = RpmDbFiles::find(|p: &str| -> Option<&[u8]> {
            asked.borrow_mut().push(p.to_owned());
            None
        });
        for path in asked.borrow().iter() {
            assert!(RPMDB_PATHS.contains(&path.as_str()), "{path} not listed");
        }
    }

    #[test]
    fn read_database_sorts_skips_keys_and_names_the_record() {
        use header::testblob::HeaderBuilder;
        let blob = |name: &str, version: &str| {
            HeaderBuilder::package(name, version, "1", "noarch").build()
        };
        let records = vec![
            (7, blob("zlib", "1.2")),
            (3, blob("gpg-pubkey", "fd431d51")),
            (5, blob("bash", "5.1")),
        ];
        let db = sqlite::testdb::sqlite_with(&records);
        let files = RpmDbFiles {
            dir: "/var/lib/rpm".to_owned(),
            database: RpmDatabase::Sqlite { db: &db, wal: None },
        };
        let packages = read_database(&files).expect("valid database");
        let names: Vec<_> = packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["bash", "zlib"]);
        assert_eq!(packages[0].location, "/var/lib/rpm/rpmdb.sqlite");

        let mut broken = blob("bad", "1");
        broken.truncate(broken.len() - 3);
        let db = sqlite::testdb::sqlite_with(&[(9, broken)]);
        let files = RpmDbFiles {
            dir: "/var/lib/rpm".to_owned(),
            database: RpmDatabase::Sqlite { db: &db, wal: None },
        };
        let err = read_database(&files).expect_err("truncated header");
        let message = err.to_string();
        assert!(
            message.starts_with("rpmdb.sqlite record 9: rpm header of"),
            "{message}"
        );
    }
}

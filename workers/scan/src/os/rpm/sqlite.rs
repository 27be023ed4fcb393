//! `rpmdb.sqlite` (rpm ≥ 4.16) → the header blobs of its `Packages` table, with the committed
//! frames of `rpmdb.sqlite-wal` applied first, as sqlite would on opening the database.
//!
//! The database is never written to a file: the WAL is applied here (its format is small and
//! fixed) and the resulting image is handed to sqlite as a read-only in-memory database.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, MAIN_DB, OpenFlags};

use super::{HeaderBlob, RpmError};

/// First bytes of every sqlite database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// Bytes of the database header; page 1 starts with it.
const DB_HEADER_LEN: usize = 100;
/// Bytes of the WAL header.
const WAL_HEADER_LEN: usize = 32;
/// Bytes of a WAL frame header (page data follows).
const FRAME_HEADER_LEN: usize = 24;
/// WAL magic whose checksums read 32-bit words little-endian; `| 1` reads them big-endian.
const WAL_MAGIC: u32 = 0x377f_0682;
/// The only WAL format version sqlite writes.
const WAL_VERSION: u32 = 3_007_000;

/// Reads the header blobs of an `rpmdb.sqlite`, given its bytes and, when the image has one,
/// its `rpmdb.sqlite-wal`. Blobs come in instance (`hnum`) order.
pub fn header_blobs(db: &[u8], wal: Option<&[u8]>) -> Result<Vec<HeaderBlob>, RpmError> {
    if db.is_empty() {
        return Err(RpmError::SqliteRow {
            problem: "the file is empty, expected a sqlite database".to_owned(),
        });
    }
    if !db.starts_with(SQLITE_MAGIC) {
        return Err(RpmError::SqliteRow {
            problem: format!(
                "the file starts with {:02x?}, expected the sqlite magic \"SQLite format 3\"",
                &db[..db.len().min(16)]
            ),
        });
    }
    let mut image = match wal {
        Some(wal) => apply_wal(db, wal),
        None => db.to_vec(),
    };
    // sqlite's in-memory databases cannot be in WAL mode, and the WAL is already applied: mark
    // the image as a rollback-journal database (header bytes 18 and 19: read and write
    // versions, 2 for WAL, 1 for legacy).
    if let Some(versions) = image.get_mut(18..20) {
        for v in versions.iter_mut().filter(|v| **v == 2) {
            *v = 1;
        }
    }

    let sqlite = |context| move |error| RpmError::Sqlite { context, error };
    let mut conn = Connection::open_with_flags(
        ":memory:",
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite("opening an in-memory database"))?;
    // The schema comes from the image: run none of its functions, views or triggers' code.
    conn.pragma_update(None, "trusted_schema", false)
        .map_err(sqlite("distrusting the schema"))?;
    let len = image.len();
    conn.deserialize_read_exact(MAIN_DB, image.as_slice(), len, true)
        .map_err(sqlite("loading the database"))?;
    let mut statement = conn
        .prepare("SELECT hnum, blob FROM Packages ORDER BY hnum")
        .map_err(sqlite("querying the Packages table"))?;
    let mut rows = statement
        .query([])
        .map_err(sqlite("querying the Packages table"))?;
    let mut blobs = Vec::new();
    while let Some(row) = rows.next().map_err(sqlite("reading the Packages table"))? {
        let hnum: i64 = row.get(0).map_err(sqlite("reading a Packages hnum"))?;
        let instance = u32::try_from(hnum).map_err(|_| RpmError::SqliteRow {
            problem: format!("Packages hnum {hnum}, expected 0 to {}", u32::MAX),
        })?;
        let blob = match row.get_ref(1).map_err(sqlite("reading a Packages blob"))? {
            ValueRef::Blob(blob) => blob.to_vec(),
            other => {
                return Err(RpmError::SqliteRow {
                    problem: format!(
                        "Packages record {instance} holds {:?} data, expected a BLOB",
                        other.data_type()
                    ),
                });
            }
        };
        blobs.push(HeaderBlob { instance, blob });
    }
    Ok(blobs)
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// sqlite's WAL checksum: Fibonacci-weighted sums of the input's 32-bit words, continued from
/// `(s0, s1)`. `bytes.len()` is a multiple of 8 (headers and pages are).
fn wal_checksum(mut s: (u32, u32), bytes: &[u8], big_endian: bool) -> (u32, u32) {
    for pair in bytes.chunks_exact(8) {
        let word = |w: &[u8]| {
            let w: [u8; 4] = [w[0], w[1], w[2], w[3]];
            if big_endian {
                u32::from_be_bytes(w)
            } else {
                u32::from_le_bytes(w)
            }
        };
        s.0 = s.0.wrapping_add(word(&pair[..4])).wrapping_add(s.1);
        s.1 = s.1.wrapping_add(word(&pair[4..])).wrapping_add(s.0);
    }
    s
}

/// The database image sqlite would see: `db` with the frames of every transaction committed in
/// `wal` applied in order. A WAL sqlite would ignore (bad magic, version, page size or header
/// checksum; a page size other than the database's) leaves `db` as it is, and reading stops at
/// the first frame whose salt or cumulative checksum does not match, as sqlite's recovery does:
/// frames after the last valid commit frame belong to no committed transaction.
fn apply_wal(db: &[u8], wal: &[u8]) -> Vec<u8> {
    let mut image = db.to_vec();
    // sqlite deletes the WAL of an empty database rather than reading it; a file shorter than
    // the database header is not a database to apply frames to.
    if db.len() < DB_HEADER_LEN || wal.len() < WAL_HEADER_LEN {
        return image;
    }
    let header = |i: usize| be32(wal, i * 4).unwrap_or(0);
    let big_endian = match header(0) {
        WAL_MAGIC => false,
        m if m == WAL_MAGIC | 1 => true,
        _ => return image,
    };
    let page_size = header(2) as usize;
    let db_page_size = match u16::from_be_bytes([db[16], db[17]]) {
        1 => 65536,
        n => usize::from(n),
    };
    if header(1) != WAL_VERSION
        || !page_size.is_power_of_two()
        || !(512..=65536).contains(&page_size)
        || page_size != db_page_size
        || wal_checksum((0, 0), &wal[..24], big_endian) != (header(6), header(7))
    {
        return image;
    }
    let salts = &wal[16..24];
    let mut checksum = (header(6), header(7));
    let mut pending: Vec<(u32, usize)> = Vec::new();
    // A commit cannot make the database bigger than its pages plus one page per frame: this
    // bounds the image even when a crafted WAL claims a huge database.
    let frame_len = FRAME_HEADER_LEN + page_size;
    let max_pages = (db.len() / page_size + wal.len() / frame_len) as u64;
    let mut at = WAL_HEADER_LEN;
    while let Some(frame) = wal.get(at..at + frame_len) {
        let (head, page) = frame.split_at(FRAME_HEADER_LEN);
        let page_number = be32(head, 0).unwrap_or(0);
        let commit_pages = be32(head, 4).unwrap_or(0);
        if page_number == 0 || u64::from(page_number) > max_pages || &head[8..16] != salts {
            break;
        }
        checksum = wal_checksum(checksum, &head[..8], big_endian);
        checksum = wal_checksum(checksum, page, big_endian);
        if (be32(head, 16), be32(head, 20)) != (Some(checksum.0), Some(checksum.1)) {
            break;
        }
        pending.push((page_number, at + FRAME_HEADER_LEN));
        if commit_pages != 0 {
            if u64::from(commit_pages) > max_pages {
                break;
            }
            for (number, data) in pending.drain(..) {
                let start = (number as usize - 1) * page_size;
                if image.len() < start + page_size {
                    image.resize(start + page_size, 0);
                }
                image[start..start + page_size].copy_from_slice(&wal[data..data + page_size]);
            }
            image.resize(commit_pages as usize * page_size, 0);
        }
        at += frame_len;
    }
    image
}

/// Builds `rpmdb.sqlite` images for tests, with the schema rpm creates.
#[cfg(test)]
pub(crate) mod testdb {
    use rusqlite::{Connection, MAIN_DB};

    /// rpm's `Packages` table.
    pub(crate) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS 'Packages' \
        (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)";

    /// A database holding `records` (instance, blob).
    pub(crate) fn sqlite_with(records: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let mut conn = Connection::open_in_memory().expect("in-memory database");
        conn.execute(SCHEMA, []).expect("schema");
        for (hnum, blob) in records {
            conn.execute(
                "INSERT INTO Packages (hnum, blob) VALUES (?1, ?2)",
                rusqlite::params![hnum, blob],
            )
            .expect("insert");
        }
        conn.serialize(MAIN_DB).expect("serialize").to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::testdb::{SCHEMA, sqlite_with};
    use super::*;
    use proptest::prelude::*;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn records(blobs: &[HeaderBlob]) -> Vec<(u32, Vec<u8>)> {
        blobs.iter().map(|b| (b.instance, b.blob.clone())).collect()
    }

    #[test]
    fn reads_packages_in_instance_order() {
        let db = sqlite_with(&[(9, vec![9; 3]), (2, vec![2; 5000])]);
        let blobs = header_blobs(&db, None).expect("valid database");
        assert_eq!(records(&blobs), [(2, vec![2; 5000]), (9, vec![9; 3])]);
    }

    #[test]
    fn refuses_what_is_not_rpms_database() {
        let message = header_blobs(b"hello", None)
            .expect_err("not sqlite")
            .to_string();
        assert!(message.contains("expected the sqlite magic"), "{message}");

        let mut conn = Connection::open_in_memory().expect("db");
        conn.execute("CREATE TABLE other (x)", []).expect("table");
        let db = conn.serialize(MAIN_DB).expect("serialize").to_vec();
        let message = header_blobs(&db, None).expect_err("no table").to_string();
        assert!(
            message.starts_with("rpmdb.sqlite: querying the Packages table: no such table"),
            "{message}"
        );

        let mut conn = Connection::open_in_memory().expect("db");
        conn.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob)", [])
            .expect("table");
        conn.execute("INSERT INTO Packages VALUES (4, 'text')", [])
            .expect("row");
        let db = conn.serialize(MAIN_DB).expect("serialize").to_vec();
        assert_eq!(
            header_blobs(&db, None).expect_err("text").to_string(),
            "rpmdb.sqlite: Packages record 4 holds Text data, expected a BLOB"
        );

        let mut db = sqlite_with(&[(1, vec![1; 10])]);
        db.truncate(db.len() / 2);
        assert!(header_blobs(&db, None).is_err());
    }

    static DIR_COUNTER: AtomicUsize = AtomicUsize::new(0);

    /// A private directory for one test's database files, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            let n = DIR_COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("slipway-rpm-sqlite-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("temp dir");
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A database in WAL mode whose first records were checkpointed into the file, and whose
    /// later transactions (one per step) are only in the WAL: the state a crashed or still-open
    /// rpm leaves. Returns the two files' bytes.
    fn database_with_wal(checkpointed: &[(u32, Vec<u8>)], steps: &[&str]) -> (Vec<u8>, Vec<u8>) {
        let dir = TempDir::new();
        let path = dir.0.join("rpmdb.sqlite");
        let conn = Connection::open(&path).expect("open");
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .expect("wal mode");
        assert_eq!(mode, "wal");
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .expect("no autocheckpoint");
        conn.execute(SCHEMA, []).expect("schema");
        for (hnum, blob) in checkpointed {
            conn.execute(
                "INSERT INTO Packages (hnum, blob) VALUES (?1, ?2)",
                rusqlite::params![hnum, blob],
            )
            .expect("insert");
        }
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("checkpoint");
        for step in steps {
            conn.execute_batch(step).expect("step");
        }
        // Read while the connection is open: closing would checkpoint and delete the WAL.
        let db = std::fs::read(&path).expect("db");
        let wal = std::fs::read(dir.0.join("rpmdb.sqlite-wal")).expect("wal");
        drop(conn);
        (db, wal)
    }

    #[test]
    fn committed_wal_frames_are_applied() {
        let (db, wal) = database_with_wal(
            &[(1, vec![1; 100]), (2, vec![2; 100])],
            &[
                "DELETE FROM Packages WHERE hnum = 1",
                "INSERT INTO Packages VALUES (3, zeroblob(9000))",
            ],
        );
        assert!(!wal.is_empty());
        let without = header_blobs(&db, None).expect("db alone");
        assert_eq!(records(&without), [(1, vec![1; 100]), (2, vec![2; 100])]);
        let with = header_blobs(&db, Some(&wal)).expect("db and wal");
        assert_eq!(records(&with), [(2, vec![2; 100]), (3, vec![0; 9000])]);
        // An empty WAL (what rpm leaves after a clean close) changes nothing.
        assert_eq!(header_blobs(&db, Some(&[])).expect("empty wal"), without);
    }

    #[test]
    fn uncommitted_or_damaged_wal_tails_are_ignored() {
        let (db, wal) = database_with_wal(
            &[(1, vec![1; 100])],
            &[
                "INSERT INTO Packages VALUES (2, x'02')",
                "INSERT INTO Packages VALUES (3, x'03')",
            ],
        );
        let page_size = usize::from(u16::from_be_bytes([db[16], db[17]]));
        let frame = FRAME_HEADER_LEN + page_size;
        let frames = (wal.len() - WAL_HEADER_LEN) / frame;
        let instances = |wal: &[u8]| -> Vec<u32> {
            header_blobs(&db, Some(wal))
                .expect("valid")
                .iter()
                .map(|b| b.instance)
                .collect()
        };
        assert_eq!(instances(&wal), [1, 2, 3]);
        // The last transaction is cut mid-frame: only the first is committed.
        let cut = &wal[..wal.len() - 10];
        assert_eq!(instances(cut), [1, 2]);
        // A flipped byte in the last frame breaks its checksum, and so its transaction.
        let mut flipped = wal.clone();
        let last = WAL_HEADER_LEN + (frames - 1) * frame + FRAME_HEADER_LEN + 7;
        flipped[last] ^= 0xff;
        assert_eq!(instances(&flipped), [1, 2]);
        // A WAL with a broken header is ignored, as sqlite ignores it.
        let mut bad_header = wal.clone();
        bad_header[12] ^= 1;
        assert_eq!(instances(&bad_header), [1]);
        let mut bad_magic = wal;
        bad_magic[0] = 0;
        assert_eq!(instances(&bad_magic), [1]);
    }

    #[test]
    fn checksum_matches_the_wal_header_sqlite_wrote() {
        let (_, wal) = database_with_wal(&[], &["INSERT INTO Packages VALUES (1, x'01')"]);
        let big_endian = wal[3] & 1 == 1;
        let sum = wal_checksum((0, 0), &wal[..24], big_endian);
        assert_eq!(Some(sum.0), be32(&wal, 24));
        assert_eq!(Some(sum.1), be32(&wal, 28));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn random_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..4096),
            wal in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..2048)),
        ) {
            let mut db = SQLITE_MAGIC.to_vec();
            db.extend_from_slice(&bytes);
            let _ = header_blobs(&db, wal.as_deref());
            let _ = header_blobs(&bytes, wal.as_deref());
        }

        #[test]
        fn mutated_databases_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        ) {
            let mut db = sqlite_with(&[(1, vec![7; 300]), (2, vec![8; 6000])]);
            for (at, byte) in edits {
                let i = at.index(db.len());
                db[i] = byte;
            }
            let _ = header_blobs(&db, None);
        }
    }
}

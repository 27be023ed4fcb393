//! Loading an OSV database from a directory tree and indexing it by package.
//!
//! Every `*.json` file under the directory is read, at any depth, in path order: a directory of
//! records (`advisories/DSA-5514-1.json`), osv.dev's bulk export unpacked one directory per
//! ecosystem (`Debian/…`, `PyPI/…`), or a distribution's tree (`osv/cve/2024/…`). A file may hold
//! one record or an array of them. Other files are ignored; symbolic links to files are followed,
//! to directories not (a link cycle cannot make the walk endless).
//!
//! Nothing in the tree aborts the load: an unreadable file or directory, a file that is not
//! JSON, a record the schema does not allow ([`super::record`]) is skipped and reported as a
//! [`LoadWarning`] with its path and the reason. Withdrawn records are left out and counted. A
//! record met twice (osv.dev's export repeats a record under every ecosystem it affects) is
//! kept once: the version with the later `modified`, as the schema says, the first read on a tie.
//! Only the root itself being unreadable is an error.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::ecosystem::name_key;
use super::record::{self, Affected, RangeKind, Record};

/// A loaded OSV database, indexed by (ecosystem family, package name).
#[derive(Debug)]
pub struct Database {
    /// The directory it was loaded from.
    path: PathBuf,
    /// The records that stand (not withdrawn, one per id).
    records: Vec<Record>,
    /// (family, [`name_key`]) → (record index, affected index) of every entry for that package.
    index: HashMap<(String, String), Vec<(usize, usize)>>,
    /// What the load met.
    summary: LoadSummary,
}

/// What loading a database met: counts and the reasons records were skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LoadSummary {
    /// Records loaded (withdrawn and repeated ones not counted).
    pub records: usize,
    /// Files or records skipped as unreadable or malformed (one warning each).
    pub skipped: usize,
    /// Withdrawn records left out.
    pub withdrawn: usize,
    /// Records met more than once and kept once.
    pub duplicates: usize,
    /// `GIT` ranges of loaded records, never evaluated (they need the repository).
    pub git_ranges: usize,
    /// Ranges of a type the schema does not define, never evaluated.
    pub unknown_ranges: usize,
    /// Why each skipped file or record was skipped, in path order.
    pub warnings: Vec<LoadWarning>,
}

/// A file or record that was skipped, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoadWarning {
    /// The file (and, for a record inside an array, its position: `all.json[3]`).
    pub path: String,
    /// What was wrong.
    pub reason: String,
}

/// The database directory itself cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the OSV database at {}: expected a readable directory, found {found}", .path.display())]
pub struct OsvError {
    /// The configured path.
    pub path: PathBuf,
    /// What was there instead (the I/O error, or what kind of file it is).
    pub found: String,
}

impl Database {
    /// Loads every record under `root` (see the module documentation for what is read and
    /// skipped). Fails only when `root` is not a readable directory.
    pub fn load(root: &Path) -> Result<Database, OsvError> {
        let error = |found: String| OsvError {
            path: root.to_owned(),
            found,
        };
        let meta = fs::metadata(root).map_err(|err| error(err.to_string()))?;
        if !meta.is_dir() {
            return Err(error("a file that is not a directory".to_owned()));
        }
        fs::read_dir(root).map_err(|err| error(err.to_string()))?;

        let mut loader = Loader::default();
        let mut pending = vec![root.to_owned()];
        while let Some(dir) = pending.pop() {
            let mut subdirs = loader.read_dir(&dir);
            // Popped from the end: reversed so that directories are walked in name order.
            subdirs.reverse();
            pending.extend(subdirs);
        }
        Ok(loader.finish(root))
    }

    /// The directory it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the load met.
    pub fn summary(&self) -> &LoadSummary {
        &self.summary
    }

    /// Every `affected` entry of family `family` (`Debian`, `PyPI`) for a package whose
    /// [`name_key`] is `key`, with its record, in load order.
    pub fn entries<'a>(
        &'a self,
        family: &str,
        key: &str,
    ) -> impl Iterator<Item = (&'a Record, &'a Affected)> + 'a {
        self.index
            .get(&(family.to_owned(), key.to_owned()))
            .into_iter()
            .flatten()
            .filter_map(|&(r, a)| {
                let record = self.records.get(r)?;
                Some((record, record.affected.get(a)?))
            })
    }
}

/// State while walking the tree.
#[derive(Default)]
struct Loader {
    /// Records kept so far.
    records: Vec<Record>,
    /// id → position in `records`.
    by_id: HashMap<String, usize>,
    summary: LoadSummary,
}

impl Loader {
    /// Reads the `*.json` files of `dir` in name order; returns its subdirectories, in name
    /// order.
    fn read_dir(&mut self, dir: &Path) -> Vec<PathBuf> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(err) => {
                self.warn(dir.display().to_string(), err.to_string());
                return Vec::new();
            }
        };
        let mut paths: Vec<(PathBuf, bool)> = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => {
                    let is_dir = entry.file_type().is_ok_and(|kind| kind.is_dir());
                    paths.push((entry.path(), is_dir));
                }
                Err(err) => self.warn(dir.display().to_string(), err.to_string()),
            }
        }
        paths.sort();
        let mut subdirs = Vec::new();
        for (path, is_dir) in paths {
            if is_dir {
                subdirs.push(path);
            } else if is_json(&path) && fs::metadata(&path).is_ok_and(|meta| meta.is_file()) {
                self.read_file(&path);
            }
        }
        subdirs
    }

    /// Reads one file's records.
    fn read_file(&mut self, path: &Path) {
        let shown = path.display().to_string();
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) => return self.warn(shown, err.to_string()),
        };
        let records = match record::parse_document(&bytes) {
            Ok(records) => records,
            Err(reason) => return self.warn(shown, reason),
        };
        for record in records {
            match record {
                Ok(record) => self.add(record),
                Err(reason) => {
                    // Errors inside an array start with the element's `[i]`.
                    let (at, reason) =
                        match reason.strip_prefix('[').and_then(|r| r.split_once("]: ")) {
                            Some((i, reason)) => (format!("{shown}[{i}]"), reason.to_owned()),
                            None => (shown.clone(), reason),
                        };
                    self.warn(at, reason);
                }
            }
        }
    }

    /// Keeps `record` unless withdrawn or an older copy of one already kept.
    fn add(&mut self, record: Record) {
        if record.withdrawn.is_some() {
            self.summary.withdrawn += 1;
            return;
        }
        match self.by_id.entry(record.id.clone()) {
            Entry::Occupied(kept) => {
                self.summary.duplicates += 1;
                let kept = &mut self.records[*kept.get()];
                if is_newer(record.modified.as_deref(), kept.modified.as_deref()) {
                    *kept = record;
                }
            }
            Entry::Vacant(slot) => {
                slot.insert(self.records.len());
                self.records.push(record);
            }
        }
    }

    fn warn(&mut self, path: String, reason: String) {
        self.summary.skipped += 1;
        self.summary.warnings.push(LoadWarning { path, reason });
    }

    /// Indexes the kept records.
    fn finish(self, root: &Path) -> Database {
        let mut summary = self.summary;
        let mut index: HashMap<(String, String), Vec<(usize, usize)>> = HashMap::new();
        for (r, record) in self.records.iter().enumerate() {
            for (a, affected) in record.affected.iter().enumerate() {
                for range in &affected.ranges {
                    match range.kind {
                        RangeKind::Git => summary.git_ranges += 1,
                        RangeKind::Other(_) => summary.unknown_ranges += 1,
                        RangeKind::Ecosystem | RangeKind::Semver => {}
                    }
                }
                let family = affected.family();
                index
                    .entry((family.to_owned(), name_key(family, &affected.name)))
                    .or_default()
                    .push((r, a));
            }
        }
        summary.records = self.records.len();
        Database {
            path: root.to_owned(),
            records: self.records,
            index,
            summary,
        }
    }
}

/// Whether a path names a JSON file (`.json`, any case).
fn is_json(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"))
}

/// Whether timestamp `candidate` is later than `kept` (RFC 3339 in UTC, as the schema writes
/// `modified`): compared as date-time to the second, then as fraction of a second, so that
/// `…:00.5Z` is later than `…:00Z`. A missing timestamp is older than any.
fn is_newer(candidate: Option<&str>, kept: Option<&str>) -> bool {
    /// The part up to the seconds, and the fraction's digits padded to nanoseconds.
    fn key(timestamp: &str) -> (&str, String) {
        let seconds = timestamp.get(..19).unwrap_or(timestamp);
        let fraction: String = timestamp
            .get(19..)
            .and_then(|rest| rest.strip_prefix('.'))
            .map(|rest| rest.chars().take_while(char::is_ascii_digit).collect())
            .unwrap_or_default();
        (seconds, format!("{fraction:0<9}"))
    }
    match (candidate, kept) {
        (Some(candidate), Some(kept)) => key(candidate) > key(kept),
        (Some(_), None) => true,
        (None, _) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_tests::TempDir;

    fn record(id: &str, modified: &str, fixed: &str) -> String {
        format!(
            r#"{{"id": "{id}", "modified": "{modified}", "affected": [{{
                "package": {{"ecosystem": "PyPI", "name": "Some_Package"}},
                "ranges": [{{"type": "ECOSYSTEM", "events": [{{"introduced": "0"}}, {{"fixed": "{fixed}"}}]}},
                           {{"type": "GIT", "repo": "r", "events": [{{"introduced": "a"}}]}}]
            }}]}}"#
        )
    }

    fn load(dir: &TempDir) -> Database {
        match Database::load(dir.path()) {
            Ok(db) => db,
            Err(err) => panic!("{err}"),
        }
    }

    #[test]
    fn loads_a_bulk_export_tree_and_indexes_by_normalised_name() {
        let dir = TempDir::new("osv-load-tree");
        dir.file(
            "PyPI/PYSEC-1.json",
            &record("PYSEC-1", "2024-01-01T00:00:00Z", "1.0"),
        );
        dir.file(
            "Debian/DSA-1-1.json",
            r#"{"id": "DSA-1-1", "affected": [
            {"package": {"ecosystem": "Debian:12", "name": "glibc"}, "ranges": []}]}"#,
        );
        dir.file("README.md", "not a record");
        dir.file("nested/deeper/all.json", r#"[{"id": "A"}, {"id": "B"}]"#);
        let db = load(&dir);
        let summary = db.summary();
        assert_eq!(summary.records, 4);
        assert_eq!(summary.skipped, 0);
        assert_eq!(summary.git_ranges, 1);
        let ids = |family: &str, key: &str| -> Vec<&str> {
            db.entries(family, key)
                .map(|(r, _)| r.id.as_str())
                .collect()
        };
        assert_eq!(ids("PyPI", "some-package"), vec!["PYSEC-1"]);
        assert_eq!(ids("Debian", "glibc"), vec!["DSA-1-1"]);
        assert_eq!(ids("Debian", "libc6"), Vec::<&str>::new());
        assert_eq!(db.path(), dir.path());
    }

    #[test]
    fn malformed_files_and_records_are_skipped_with_a_reason() {
        let dir = TempDir::new("osv-load-malformed");
        dir.file(
            "a-good.json",
            &record("GOOD", "2024-01-01T00:00:00Z", "1.0"),
        );
        dir.file("b-broken.json", "{\"id\": \"X\", ");
        dir.file("c-array.json", r#"[{"id": "IN-ARRAY"}, {"id": ""}]"#);
        dir.file("d-scalar.json", "42");
        dir.file(
            "e-event.json",
            r#"{"id": "E", "affected": [{"package": {"ecosystem": "npm", "name": "x"},
                "ranges": [{"type": "SEMVER", "events": [{}]}]}]}"#,
        );
        let db = load(&dir);
        let summary = db.summary();
        assert_eq!(summary.records, 2, "GOOD and IN-ARRAY");
        assert_eq!(summary.skipped, 4);
        let shown = |name: &str| dir.path().join(name).display().to_string();
        let warnings: Vec<(String, &str)> = summary
            .warnings
            .iter()
            .map(|w| (w.path.clone(), w.reason.as_str()))
            .collect();
        assert_eq!(warnings[0].0, shown("b-broken.json"));
        assert!(warnings[0].1.contains("EOF"), "{}", warnings[0].1);
        assert_eq!(
            warnings[1],
            (
                format!("{}[1]", shown("c-array.json")),
                "id: expected a non-empty string, found an empty one"
            )
        );
        assert_eq!(warnings[2].0, shown("d-scalar.json"));
        assert!(warnings[2].1.starts_with("expected an OSV record"));
        assert_eq!(
            warnings[3],
            (
                shown("e-event.json"),
                "affected[0].ranges[0].events[0]: expected exactly one of introduced, fixed, \
                 last_affected, limit, found 0"
            )
        );
    }

    #[test]
    fn withdrawn_records_are_left_out_and_repeats_keep_the_latest() {
        let dir = TempDir::new("osv-load-dedup");
        dir.file(
            "PyPI/GHSA-1.json",
            &record("GHSA-1", "2024-01-01T00:00:00Z", "1.0"),
        );
        dir.file(
            "npm/GHSA-1.json",
            &record("GHSA-1", "2024-01-01T00:00:00.5Z", "2.0"),
        );
        dir.file(
            "x/GHSA-1.json",
            &record("GHSA-1", "2023-12-31T23:59:59Z", "3.0"),
        );
        dir.file(
            "W.json",
            r#"{"id": "W", "withdrawn": "2024-02-02T00:00:00Z", "affected": [
                {"package": {"ecosystem": "PyPI", "name": "some-package"}}]}"#,
        );
        let db = load(&dir);
        assert_eq!(db.summary().records, 1);
        assert_eq!(db.summary().duplicates, 2);
        assert_eq!(db.summary().withdrawn, 1);
        let kept: Vec<&Record> = db.entries("PyPI", "some-package").map(|(r, _)| r).collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(
            kept[0].modified.as_deref(),
            Some("2024-01-01T00:00:00.5Z"),
            "the later modification wins"
        );
    }

    #[test]
    fn only_an_unreadable_root_is_an_error() {
        let dir = TempDir::new("osv-load-root");
        let missing = dir.path().join("missing");
        let err = Database::load(&missing).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("expected a readable directory")),
            "{err:?}"
        );
        let file = dir.file("file.json", "{}");
        let err = Database::load(&file).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.ends_with("found a file that is not a directory")),
            "{err:?}"
        );
    }

    #[test]
    fn timestamps_compare_by_time() {
        assert!(is_newer(
            Some("2024-01-01T00:00:00.1Z"),
            Some("2024-01-01T00:00:00Z")
        ));
        assert!(!is_newer(
            Some("2024-01-01T00:00:00Z"),
            Some("2024-01-01T00:00:00.000Z")
        ));
        assert!(is_newer(
            Some("2024-01-02T00:00:00Z"),
            Some("2024-01-01T23:59:59.999Z")
        ));
        assert!(is_newer(Some("x"), None));
        assert!(!is_newer(None, Some("x")));
    }
}

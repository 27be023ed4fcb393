//! The apk database of Alpine images: `lib/apk/db/installed`, one stanza of `X:value` lines per
//! package (`P` name, `V` version, `A` arch, `o` origin, `L` licence, `F` directory, `R` file in it,
//! `a` its `uid:gid:mode`, `Z` its checksum `Q1<base64 sha1>`).
//!
//! A malformed stanza (a line that is not `X:value`, no `P:` or `V:`, a file before its
//! directory) is skipped and named ([`ApkDatabase::skipped`]) and the other packages are read; a
//! database of which no stanza can be read, or more stanzas are malformed than not, is unreadable
//! as a whole: an error.

use crate::package::{DigestAlgorithm, Ecosystem, FileDigest, Package, PackageFile};

/// The database file, relative to the image root.
pub const INSTALLED: &str = "lib/apk/db/installed";

/// Why the database could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApkError {
    /// A line is not `X:value`.
    #[error("{INSTALLED}: line {line}: expected `X:value`, found {found:?}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// The line (cut to 80 characters).
        found: String,
    },
    /// A stanza lacks its name or version.
    #[error("{INSTALLED}: the stanza at line {line} has no {field} line")]
    MissingField {
        /// Where the stanza starts.
        line: usize,
        /// `P:` or `V:`.
        field: &'static str,
    },
    /// The database holds more stanzas than any real one.
    #[error(
        "{INSTALLED}: expected at most {limit} stanzas, found more: not a real package database"
    )]
    TooMany {
        /// [`super::MAX_DATABASE_ENTRIES`].
        limit: usize,
    },
    /// A file line comes before any `F:` directory line.
    #[error("{INSTALLED}: line {line}: a file (R:) before any directory (F:)")]
    FileWithoutDirectory {
        /// 1-based line number.
        line: usize,
    },
}

/// What the apk database says: the installed packages, and the stanzas skipped as malformed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ApkDatabase {
    /// The installed packages, sorted by name.
    pub packages: Vec<Package>,
    /// The first problem of each malformed stanza that was skipped, in line order.
    pub skipped: Vec<ApkError>,
    /// Packages whose files were not all listed: the database lists more than
    /// [`super::MAX_DATABASE_FILES`] files, and these come after the limit.
    pub files_cut: Vec<String>,
}

/// The installed packages of `lib/apk/db/installed`, sorted by name. A malformed stanza is
/// skipped and named in [`ApkDatabase::skipped`]; a database of which no stanza can be read, or
/// more stanzas are malformed than not, is an error (its first problem).
pub fn read_installed(bytes: &[u8]) -> Result<ApkDatabase, ApkError> {
    let text = String::from_utf8_lossy(bytes);
    let mut database = ApkDatabase::default();
    let mut draft = Draft::default();
    // The first problem of the stanza being read: the rest of it is skipped with it.
    let mut broken: Option<ApkError> = None;
    let mut in_stanza = false;
    let mut files_left = super::MAX_DATABASE_FILES;
    for entry in stanza_lines(&text) {
        match entry {
            Err((line, text)) => {
                let error = ApkError::Malformed {
                    line,
                    found: text.chars().take(80).collect(),
                };
                // A bad line outside any stanza (before its first field) is an entry of its own.
                if in_stanza {
                    broken.get_or_insert(error);
                } else if database.packages.len() + database.skipped.len()
                    >= super::MAX_DATABASE_ENTRIES
                {
                    return Err(ApkError::TooMany {
                        limit: super::MAX_DATABASE_ENTRIES,
                    });
                } else {
                    database.skipped.push(error);
                }
            }
            Ok(StanzaLine::Field { key, value, line }) => {
                in_stanza = true;
                if broken.is_none()
                    && let Err(error) = draft.take(key, value, line, &mut files_left)
                {
                    broken = Some(error);
                }
            }
            Ok(StanzaLine::End { start }) => {
                in_stanza = false;
                if database.packages.len() + database.skipped.len() >= super::MAX_DATABASE_ENTRIES {
                    return Err(ApkError::TooMany {
                        limit: super::MAX_DATABASE_ENTRIES,
                    });
                }
                let draft = std::mem::take(&mut draft);
                let cut = draft.files_cut;
                let finished = draft.finish(start);
                match broken.take().map_or(finished, Err) {
                    Ok(package) => {
                        if cut {
                            database.files_cut.push(package.name.clone());
                        }
                        database.packages.push(package);
                    }
                    Err(error) => database.skipped.push(error),
                }
            }
        }
    }
    if super::unreadable_as_a_whole(database.packages.len(), database.skipped.len()) {
        return Err(database.skipped.swap_remove(0));
    }
    database.packages.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(database)
}

/// One line of apk's stanza format (the installed database and `APKINDEX` alike): stanzas of
/// `X:value` lines separated by blank lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StanzaLine<'a> {
    /// An `X:value` line.
    Field {
        /// The one-byte key.
        key: u8,
        /// Everything after the colon.
        value: &'a str,
        /// 1-based line number.
        line: usize,
    },
    /// The stanza that started at line `start` is complete (a blank line or the end of the text).
    End {
        /// 1-based line number of its first field.
        start: usize,
    },
}

/// The lines of `text` in order, each stanza closed by an [`StanzaLine::End`]; a line that is
/// not `X:value` is an error carrying its number and text.
pub(crate) fn stanza_lines(
    text: &str,
) -> impl Iterator<Item = Result<StanzaLine<'_>, (usize, &str)>> {
    let mut open: Option<usize> = None;
    let mut lines = text.lines().enumerate();
    std::iter::from_fn(move || {
        loop {
            let Some((index, raw)) = lines.next() else {
                return open.take().map(|start| Ok(StanzaLine::End { start }));
            };
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.trim().is_empty() {
                match open.take() {
                    Some(start) => return Some(Ok(StanzaLine::End { start })),
                    None => continue,
                }
            }
            return Some(match line.as_bytes() {
                [key, b':', ..] => {
                    open.get_or_insert(index + 1);
                    Ok(StanzaLine::Field {
                        key: *key,
                        value: &line[2..],
                        line: index + 1,
                    })
                }
                _ => Err((index + 1, line)),
            });
        }
    })
}

/// A package being read.
#[derive(Default)]
struct Draft {
    name: Option<String>,
    version: Option<String>,
    arch: Option<String>,
    origin: Option<String>,
    license: Option<String>,
    directory: Option<String>,
    files: Vec<PackageFile>,
    /// Files were left out: the database's limit was reached.
    files_cut: bool,
}

impl Draft {
    /// Takes the field `key` of `line`; a file only while `files_left` allows.
    fn take(
        &mut self,
        key: u8,
        value: &str,
        line: usize,
        files_left: &mut usize,
    ) -> Result<(), ApkError> {
        match key {
            b'P' => self.name = Some(value.to_owned()),
            b'V' => self.version = Some(value.to_owned()),
            b'A' => self.arch = Some(value.to_owned()),
            b'o' => self.origin = Some(value.to_owned()),
            b'L' => self.license = Some(value.to_owned()),
            b'F' => self.directory = Some(value.trim_matches('/').to_owned()),
            b'R' => {
                let directory = self
                    .directory
                    .as_deref()
                    .ok_or(ApkError::FileWithoutDirectory { line })?;
                if *files_left == 0 {
                    self.files_cut = true;
                    return Ok(());
                }
                *files_left -= 1;
                let path = if directory.is_empty() {
                    format!("/{value}")
                } else {
                    format!("/{directory}/{value}")
                };
                self.files.push(PackageFile {
                    // apk protects /etc: changes there are the administrator's.
                    config: path.starts_with("/etc/"),
                    doc: path.starts_with("/usr/share/doc/") || path.starts_with("/usr/share/man/"),
                    path,
                    ..PackageFile::default()
                });
            }
            // The `a:` and `Z:` of a file left out are left out with it.
            b'a' | b'Z' if self.files_cut => {}
            b'a' => {
                // `uid:gid:mode` (octal permissions) of the preceding file.
                if let Some(file) = self.files.last_mut()
                    && let Some(mode) = value.rsplit(':').next()
                    && let Ok(perms) = u32::from_str_radix(mode, 8)
                {
                    file.mode = Some(0o100_000 | (perms & 0o7777));
                }
            }
            b'Z' => {
                if let Some(file) = self.files.last_mut() {
                    file.digest = checksum(value);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(self, line: usize) -> Result<Package, ApkError> {
        let name = self
            .name
            .ok_or(ApkError::MissingField { line, field: "P:" })?;
        let version = self
            .version
            .ok_or(ApkError::MissingField { line, field: "V:" })?;
        Ok(Package {
            ecosystem: Ecosystem::Apk,
            source_name: self.origin.filter(|o| *o != name),
            name,
            version,
            arch: self.arch,
            source_version: None,
            license: self.license,
            location: format!("/{INSTALLED}"),
            files: self.files,
        })
    }
}

/// `Q1` + base64 of a SHA-1 → the digest in hex; other forms (an unknown prefix, bad base64) give
/// none, so the file is listed but not verified.
fn checksum(value: &str) -> Option<FileDigest> {
    let encoded = value.strip_prefix("Q1")?;
    let bytes = base64_decode(encoded)?;
    (bytes.len() == 20).then(|| FileDigest {
        algorithm: DigestAlgorithm::Sha1,
        hex: bytes.iter().map(|b| format!("{b:02x}")).collect(),
    })
}

/// Standard base64 with padding (what apk writes); `None` on anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let bytes = text.trim().as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let padding = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if padding > 2 {
            return None;
        }
        let mut word = 0u32;
        for &c in &chunk[..4 - padding] {
            word = (word << 6) | value(c)?;
        }
        word <<= 6 * padding as u32;
        let decoded = word.to_be_bytes();
        out.extend_from_slice(&decoded[1..4 - padding]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanza_lines_close_each_stanza_once_and_name_bad_lines() {
        let lines: Vec<_> = stanza_lines("\n\nP:a\r\nV:1\n\n\nP:b\nnot a field\n").collect();
        assert_eq!(
            lines,
            [
                Ok(StanzaLine::Field {
                    key: b'P',
                    value: "a",
                    line: 3
                }),
                Ok(StanzaLine::Field {
                    key: b'V',
                    value: "1",
                    line: 4
                }),
                Ok(StanzaLine::End { start: 3 }),
                Ok(StanzaLine::Field {
                    key: b'P',
                    value: "b",
                    line: 7
                }),
                Err((8, "not a field")),
                Ok(StanzaLine::End { start: 7 }),
            ]
        );
    }
    use proptest::prelude::*;

    const INSTALLED_TEXT: &str = "C:Q1abcdefghijklmnopqrstuvwxyzA=
P:musl
V:1.2.4_git20230717-r4
A:x86_64
S:383152
I:622592
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Natanael Copa <ncopa@alpinelinux.org>
t:1705321523
c:5a9b1e5d6f55c9b3d0d2c0e0f1b2d6a1f5b3f3a2
F:lib
R:ld-musl-x86_64.so.1
a:0:0:755
Z:Q1HxK0yD1e4u3/X7Q9T2fXxuqgIZ0=
R:libc.musl-x86_64.so.1
a:0:0:777
Z:Q17yJ3JFNypA4mxhJJr0ou6CzsJVI=

P:alpine-baselayout-data
V:3.4.3-r2
A:x86_64
L:GPL-2.0-only
o:alpine-baselayout
F:etc
R:fstab
Z:Q11Q7hNe8QpDS531guqCdrXBzoA/o=
";

    #[test]
    fn packages_files_modes_and_checksums_are_read() {
        let database = read_installed(INSTALLED_TEXT.as_bytes()).unwrap();
        assert_eq!(database.skipped, []);
        assert!(database.files_cut.is_empty());
        let packages = database.packages;
        assert_eq!(packages.len(), 2);
        let data = &packages[0];
        assert_eq!(data.name, "alpine-baselayout-data");
        assert_eq!(data.source_name.as_deref(), Some("alpine-baselayout"));
        assert_eq!(data.files[0].path, "/etc/fstab");
        assert!(data.files[0].config);
        let musl = &packages[1];
        assert_eq!(musl.version, "1.2.4_git20230717-r4");
        assert_eq!(musl.arch.as_deref(), Some("x86_64"));
        assert_eq!(musl.license.as_deref(), Some("MIT"));
        assert_eq!(musl.source_name, None, "origin equal to the name");
        assert_eq!(musl.files.len(), 2);
        assert_eq!(musl.files[0].path, "/lib/ld-musl-x86_64.so.1");
        assert_eq!(musl.files[0].mode, Some(0o100_755));
        let digest = musl.files[0].digest.as_ref().unwrap();
        assert_eq!(digest.algorithm, DigestAlgorithm::Sha1);
        assert_eq!(digest.hex, "1f12b4c83d5ee2edff5fb43d4f67d7c6eaa0219d");
        assert_eq!(musl.location, "/lib/apk/db/installed");
    }

    #[test]
    fn base64_decodes_like_the_standard_alphabet() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
        assert_eq!(base64_decode("abc"), None);
        assert_eq!(base64_decode("a===").map(|v| v.len()), None);
        assert_eq!(checksum("Q2AAAA"), None);
    }

    #[test]
    fn corrupted_databases_give_errors_with_lines() {
        assert_eq!(
            read_installed(b"P:x\nV:1\nthis is not a field\n").unwrap_err(),
            ApkError::Malformed {
                line: 3,
                found: "this is not a field".into()
            }
        );
        assert_eq!(
            read_installed(b"P:x\nR:file\n").unwrap_err(),
            ApkError::FileWithoutDirectory { line: 2 }
        );
        assert_eq!(
            read_installed(b"\nP:x\n").unwrap_err(),
            ApkError::MissingField {
                line: 2,
                field: "V:"
            }
        );
        assert_eq!(read_installed(b"").unwrap(), ApkDatabase::default());
    }

    #[test]
    fn files_past_the_databases_limit_are_not_listed_and_their_packages_named() {
        let mut text = String::from("P:small\nV:1\nF:etc\nR:a\n\nP:big\nV:1\nF:usr\n");
        for i in 0..crate::os::MAX_DATABASE_FILES {
            text.push_str(&format!("R:f{i}\nZ:Q1HxK0yD1e4u3/X7Q9T2fXxuqgIZ0=\n"));
        }
        let database = read_installed(text.as_bytes()).unwrap();
        let listed: Vec<(&str, usize)> = database
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.files.len()))
            .collect();
        assert_eq!(
            listed,
            [("big", crate::os::MAX_DATABASE_FILES - 1), ("small", 1)]
        );
        assert_eq!(database.files_cut, ["big"]);
        let big = &database.packages[0];
        assert!(big.files.iter().all(|f| f.digest.is_some()));
    }

    #[test]
    fn more_stanzas_than_any_real_database_are_refused() {
        let text = "P:p\nV:1\n\n".repeat(crate::os::MAX_DATABASE_ENTRIES + 1);
        assert_eq!(
            read_installed(text.as_bytes()).unwrap_err(),
            ApkError::TooMany {
                limit: crate::os::MAX_DATABASE_ENTRIES
            }
        );
        let text = "P:p\nV:1\n\n".repeat(crate::os::MAX_DATABASE_ENTRIES);
        assert_eq!(
            read_installed(text.as_bytes()).unwrap().packages.len(),
            crate::os::MAX_DATABASE_ENTRIES
        );
    }

    #[test]
    fn a_database_with_more_malformed_stanzas_than_good_ones_is_unreadable() {
        assert_eq!(
            read_installed(b"P:a\nV:1\n\njunk\n\nmore junk\n").unwrap_err(),
            ApkError::Malformed {
                line: 4,
                found: "junk".into()
            }
        );
    }

    #[test]
    fn a_malformed_stanza_is_skipped_and_named_and_the_others_are_read() {
        let text = b"P:a\nV:1\n\nP:no-version\nA:x86_64\n\nP:broken\nV:2\nnot a field\nA:x\n\n\
                     P:orphan\nV:3\nR:file\n\nP:b\nV:4\n\nP:c\nV:5\n\nP:d\nV:6\n";
        let database = read_installed(text).unwrap();
        let names: Vec<&str> = database.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
        assert_eq!(
            database.skipped,
            [
                ApkError::MissingField {
                    line: 4,
                    field: "V:"
                },
                ApkError::Malformed {
                    line: 9,
                    found: "not a field".into()
                },
                ApkError::FileWithoutDirectory { line: 14 },
            ]
        );
        assert_eq!(
            database.skipped[0].to_string(),
            "lib/apk/db/installed: the stanza at line 4 has no V: line"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = read_installed(&bytes);
        }

        #[test]
        fn arbitrary_checksums_never_panic(text in "Q1[A-Za-z0-9+/=]{0,40}") {
            let _ = checksum(&text);
        }
    }
}

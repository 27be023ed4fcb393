//! The dpkg database: `var/lib/dpkg/status` (or one stanza per file in `var/lib/dpkg/status.d/`,
//! as distroless images have it) and the per-package `var/lib/dpkg/info/<name>[:<arch>].md5sums`.
//!
//! One malformed stanza (a line that is not a field, no `Package` or `Version`) is skipped and
//! named ([`DpkgDatabase::skipped`]); the other packages are still read, as Trivy and dpkg itself
//! do. A status file of which no stanza can be read, or more stanzas are malformed than not, is
//! unreadable as a whole: an error.

use std::collections::BTreeMap;

use crate::package::{DigestAlgorithm, Ecosystem, FileDigest, Package, PackageFile};

/// The status file.
pub const STATUS: &str = "var/lib/dpkg/status";
/// The directory of per-package status files (distroless).
pub const STATUS_D: &str = "var/lib/dpkg/status.d/";
/// The directory of `.md5sums` and `.list` files.
pub const INFO: &str = "var/lib/dpkg/info/";

/// Whether the image reader must keep `path` (relative to the image root) for this reader.
pub fn wanted(path: &str) -> bool {
    path == STATUS
        || (path.starts_with(STATUS_D) && !path[STATUS_D.len()..].contains('/'))
        || (path.starts_with(INFO)
            && path.ends_with(".md5sums")
            && !path[INFO.len()..].contains('/'))
}

/// Why the database could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DpkgError {
    /// A line is neither `Field: value`, a continuation, nor a blank line.
    #[error(
        "{path}: line {line}: expected `Field: value` or an indented continuation, found {found:?}"
    )]
    Malformed {
        /// The file, from the image root.
        path: String,
        /// 1-based line number.
        line: usize,
        /// The line (cut to 80 characters).
        found: String,
    },
    /// The status files hold more stanzas than any real database.
    #[error(
        "{path}: expected at most {limit} stanzas in the dpkg status files, found more: not a \
         real package database"
    )]
    TooMany {
        /// The file the count was passed in.
        path: String,
        /// [`super::MAX_DATABASE_ENTRIES`].
        limit: usize,
    },
    /// An installed package's stanza lacks a required field.
    #[error("{path}: the stanza at line {line} has no {field} field")]
    MissingField {
        /// The file.
        path: String,
        /// Where the stanza starts.
        line: usize,
        /// `Package` or `Version`.
        field: &'static str,
    },
}

/// One stanza: its fields in order, and the line it starts on.
struct Stanza<'a> {
    line: usize,
    fields: Vec<(&'a str, String)>,
}

impl Stanza<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// What the dpkg database says: the installed packages, and the stanzas skipped as malformed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DpkgDatabase {
    /// The installed packages, sorted by name and architecture.
    pub packages: Vec<Package>,
    /// Each malformed stanza that was skipped, with its file and line, in file and line order.
    pub skipped: Vec<DpkgError>,
    /// Packages whose files were not all listed: the database lists more than
    /// [`super::MAX_DATABASE_FILES`] files, and these come after the limit.
    pub files_cut: Vec<String>,
}

/// The installed packages described by `status_files` (the status file and/or the files of
/// `status.d/`, each as `(path, bytes)`), with their files from the `.md5sums` file `md5sums`
/// returns for a package name and architecture. Packages whose status is not `installed` (removed
/// but with configuration left, half-installed) are left out. A malformed stanza is skipped and
/// named in [`DpkgDatabase::skipped`]; a status file of which no stanza can be read, or more
/// stanzas are malformed than not, is an error (its first problem).
pub fn read_database<'a>(
    status_files: &[(&str, &[u8])],
    md5sums: impl Fn(&str) -> Option<&'a [u8]>,
) -> Result<DpkgDatabase, DpkgError> {
    let mut database = DpkgDatabase::default();
    let mut left = super::MAX_DATABASE_ENTRIES;
    let mut files_left = super::MAX_DATABASE_FILES;
    for (path, bytes) in status_files {
        let text = String::from_utf8_lossy(bytes);
        let mut readable = 0usize;
        let mut skipped = Vec::new();
        let stanzas = stanzas(path, &text, left)?;
        left -= stanzas.len();
        for stanza in stanzas {
            match stanza.and_then(|stanza| package_of(path, &stanza, &md5sums, &mut files_left)) {
                Ok(package) => {
                    readable += 1;
                    if let Some((package, cut)) = package {
                        if cut {
                            database.files_cut.push(package.name.clone());
                        }
                        database.packages.push(package);
                    }
                }
                Err(error) => skipped.push(error),
            }
        }
        if super::unreadable_as_a_whole(readable, skipped.len()) {
            return Err(skipped.swap_remove(0));
        }
        database.skipped.extend(skipped);
    }
    database
        .packages
        .sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
    Ok(database)
}

/// The stanzas of `text`, each read or the first reason it cannot be (a stanza with a malformed
/// line runs to the next blank line, like the others); an error as soon as there are more than
/// `max`.
fn stanzas<'a>(
    path: &str,
    text: &'a str,
    max: usize,
) -> Result<Vec<Result<Stanza<'a>, DpkgError>>, DpkgError> {
    let mut out = Vec::new();
    let mut current: Option<Result<Stanza<'a>, DpkgError>> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            out.extend(current.take());
            if out.len() > max {
                return Err(DpkgError::TooMany {
                    path: path.to_owned(),
                    limit: super::MAX_DATABASE_ENTRIES,
                });
            }
            continue;
        }
        let stanza = current.get_or_insert_with(|| {
            Ok(Stanza {
                line: index + 1,
                fields: Vec::new(),
            })
        });
        let Ok(open) = stanza else {
            // Already malformed: the rest of it is skipped with it.
            continue;
        };
        if line.starts_with([' ', '\t']) {
            match open.fields.last_mut() {
                Some((_, value)) => {
                    value.push('\n');
                    value.push_str(line.trim_start());
                }
                None => *stanza = Err(malformed(path, index, line)),
            }
            continue;
        }
        match line.split_once(':') {
            Some((name, value)) if !name.is_empty() && !name.contains(char::is_whitespace) => {
                open.fields.push((name, value.trim().to_owned()));
            }
            _ => *stanza = Err(malformed(path, index, line)),
        }
    }
    out.extend(current);
    if out.len() > max {
        return Err(DpkgError::TooMany {
            path: path.to_owned(),
            limit: super::MAX_DATABASE_ENTRIES,
        });
    }
    Ok(out)
}

fn malformed(path: &str, index: usize, line: &str) -> DpkgError {
    DpkgError::Malformed {
        path: path.to_owned(),
        line: index + 1,
        found: line.chars().take(80).collect(),
    }
}

/// The package of an installed stanza (none for other states), with its files from its
/// `md5sums` as far as `files_left` allows, and whether some were left out for that.
fn package_of<'a>(
    path: &str,
    stanza: &Stanza<'_>,
    md5sums: &impl Fn(&str) -> Option<&'a [u8]>,
    files_left: &mut usize,
) -> Result<Option<(Package, bool)>, DpkgError> {
    // `Status: want flag state`; distroless status.d stanzas have no Status at all.
    if let Some(status) = stanza.get("Status")
        && status.split_whitespace().nth(2) != Some("installed")
    {
        return Ok(None);
    }
    let missing = |field| DpkgError::MissingField {
        path: path.to_owned(),
        line: stanza.line,
        field,
    };
    let name = stanza.get("Package").ok_or_else(|| missing("Package"))?;
    let version = stanza.get("Version").ok_or_else(|| missing("Version"))?;
    let arch = stanza.get("Architecture").map(str::to_owned);
    let (source_name, source_version) = match stanza.get("Source") {
        // `Source: glibc (2.36-9)` or just `Source: glibc`.
        Some(source) => match source.split_once(" (") {
            Some((name, version)) => (
                Some(name.trim().to_owned()),
                Some(version.trim_end_matches(')').trim().to_owned()),
            ),
            None => (Some(source.trim().to_owned()), None),
        },
        None => (None, None),
    };

    let conffiles = conffiles(stanza.get("Conffiles").unwrap_or_default());
    let mut files: BTreeMap<String, PackageFile> = BTreeMap::new();
    let sums = arch
        .as_deref()
        .and_then(|arch| md5sums(&format!("{name}:{arch}")))
        .or_else(|| md5sums(name));
    let mut cut = false;
    if let Some(sums) = sums {
        let text = String::from_utf8_lossy(sums);
        for (file, md5) in md5sums_lines(&text) {
            if *files_left == 0 {
                cut = true;
                break;
            }
            *files_left -= 1;
            files.insert(
                file.clone(),
                PackageFile {
                    doc: is_doc(&file),
                    path: file,
                    digest: Some(FileDigest {
                        algorithm: DigestAlgorithm::Md5,
                        hex: md5,
                    }),
                    ..PackageFile::default()
                },
            );
        }
    }
    for (file, md5) in conffiles {
        files.insert(
            file.clone(),
            PackageFile {
                path: file,
                digest: md5.map(|hex| FileDigest {
                    algorithm: DigestAlgorithm::Md5,
                    hex,
                }),
                config: true,
                ..PackageFile::default()
            },
        );
    }
    Ok(Some((
        Package {
            ecosystem: Ecosystem::Deb,
            name: name.to_owned(),
            version: version.to_owned(),
            arch,
            source_version: source_version.filter(|v| v != version),
            source_name: source_name.filter(|s| s != name),
            license: None,
            location: format!("/{path}"),
            files: files.into_values().collect(),
        },
        cut,
    )))
}

/// `Conffiles:` lines: ` /etc/foo.conf <md5> [obsolete|remove-on-upgrade]`. A conffile marked
/// `newconffile` has no digest yet.
fn conffiles(value: &str) -> Vec<(String, Option<String>)> {
    value
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let path = words.next()?;
            let md5 = words.next().filter(|m| is_md5(m)).map(str::to_owned);
            let obsolete = words.any(|w| w == "obsolete");
            (path.starts_with('/') && !obsolete).then(|| (path.to_owned(), md5))
        })
        .collect()
}

/// `<md5>  <path without leading slash>` lines → (absolute path, md5). Lines that are not of that
/// shape are skipped: the file only adds digests to what the status file says.
pub fn parse_md5sums(bytes: &[u8]) -> Vec<(String, String)> {
    md5sums_lines(&String::from_utf8_lossy(bytes)).collect()
}

/// The `(absolute path, md5)` of each well-formed line of an `md5sums` text, one at a time.
fn md5sums_lines(text: &str) -> impl Iterator<Item = (String, String)> + '_ {
    text.lines().filter_map(|line| {
        let (md5, path) = line.split_once(char::is_whitespace)?;
        let path = path.trim_start();
        (is_md5(md5) && !path.is_empty()).then(|| {
            (
                format!("/{}", path.trim_start_matches('/')),
                md5.to_ascii_lowercase(),
            )
        })
    })
}

fn is_md5(word: &str) -> bool {
    word.len() == 32 && word.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_doc(path: &str) -> bool {
    [
        "/usr/share/doc/",
        "/usr/share/man/",
        "/usr/share/info/",
        "/usr/share/lintian/",
    ]
    .iter()
    .any(|prefix| path.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const STATUS_TEXT: &str = "Package: base-files
Status: install ok installed
Priority: required
Essential: yes
Architecture: amd64
Version: 12.4+deb12u5
Conffiles:
 /etc/debian_version 5b8e7f1d0fbbd6d4d0e5e5bfbfa4a3c9
 /etc/host.conf 4eb63731c9f5e30903ac4fc07a7fe3d6
 /etc/old.conf 0123456789abcdef0123456789abcdef obsolete
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy.

Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4

Package: removed-thing
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: libgcc-s1
Status: install ok installed
Architecture: amd64
Source: gcc-12 (12.2.0-14)
Version: 12.2.0-14
";

    fn md5sums() -> HashMap<&'static str, &'static [u8]> {
        HashMap::from([
            (
                "base-files",
                &b"5b8e7f1d0fbbd6d4d0e5e5bfbfa4a3c9  etc/debian_version\nd41d8cd98f00b204e9800998ecf8427e  usr/share/doc/base-files/README\n"[..],
            ),
            (
                "libc6:amd64",
                &b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa  usr/lib/x86_64-linux-gnu/libc.so.6\nnot a line\n"[..],
            ),
        ])
    }

    #[test]
    fn installed_packages_with_sources_and_files_are_read() {
        let sums = md5sums();
        let database = read_database(&[(STATUS, STATUS_TEXT.as_bytes())], |k| {
            sums.get(k).copied()
        })
        .unwrap();
        assert_eq!(database.skipped, []);
        assert!(database.files_cut.is_empty());
        let packages = database.packages;
        let names: Vec<_> = packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["base-files", "libc6", "libgcc-s1"]);

        let base = &packages[0];
        assert_eq!(base.version, "12.4+deb12u5");
        assert_eq!(base.arch.as_deref(), Some("amd64"));
        assert_eq!(base.location, "/var/lib/dpkg/status");
        let paths: Vec<_> = base.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/etc/debian_version",
                "/etc/host.conf",
                "/usr/share/doc/base-files/README"
            ],
            "obsolete conffiles are dropped"
        );
        assert!(base.files[0].config && base.files[1].config && !base.files[2].config);
        assert!(base.files[2].doc);
        assert_eq!(
            base.files[1].digest.as_ref().unwrap().hex,
            "4eb63731c9f5e30903ac4fc07a7fe3d6"
        );

        let libc = &packages[1];
        assert_eq!(libc.source_name.as_deref(), Some("glibc"));
        assert_eq!(libc.source_version, None);
        assert_eq!(libc.files.len(), 1, "md5sums found under name:arch");
        assert_eq!(libc.files[0].path, "/usr/lib/x86_64-linux-gnu/libc.so.6");

        let gcc = &packages[2];
        assert_eq!(gcc.source_name.as_deref(), Some("gcc-12"));
        assert_eq!(gcc.source_version, None, "same as the binary version");
        assert!(gcc.files.is_empty());
    }

    #[test]
    fn distroless_status_d_stanzas_have_no_status_field() {
        let stanza = b"Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n";
        let packages = read_database(&[("var/lib/dpkg/status.d/tzdata", stanza)], |_| None)
            .unwrap()
            .packages;
        assert_eq!(packages.len(), 1);
        assert_eq!(packages[0].location, "/var/lib/dpkg/status.d/tzdata");
    }

    #[test]
    fn corrupted_files_give_errors_with_positions() {
        let err = read_database(
            &[(STATUS, b"Package: a\nVersion: 1\ngarbage line\n")],
            |_| None,
        )
        .unwrap_err();
        assert_eq!(
            err,
            DpkgError::Malformed {
                path: STATUS.into(),
                line: 3,
                found: "garbage line".into()
            }
        );
        assert!(err.to_string().contains("line 3"));
        let err = read_database(
            &[(STATUS, b"Package: a\nStatus: install ok installed\n")],
            |_| None,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            DpkgError::MissingField {
                field: "Version",
                line: 1,
                ..
            }
        ));
        let err = read_database(&[(STATUS, b" leading continuation\n")], |_| None).unwrap_err();
        assert!(matches!(err, DpkgError::Malformed { line: 1, .. }));
        assert_eq!(
            read_database(&[(STATUS, b"")], |_| None).unwrap(),
            DpkgDatabase::default()
        );
    }

    #[test]
    fn files_past_the_databases_limit_are_not_listed_and_their_packages_named() {
        let status = b"Package: a\nStatus: install ok installed\nVersion: 1\n\n\
                       Package: b\nStatus: install ok installed\nVersion: 1\n";
        let half = crate::os::MAX_DATABASE_FILES / 2 + 100;
        let sums_a: String = (0..half)
            .map(|i| format!("d41d8cd98f00b204e9800998ecf8427e  a/{i}\n"))
            .collect();
        let sums_b: String = (0..half)
            .map(|i| format!("d41d8cd98f00b204e9800998ecf8427e  b/{i}\n"))
            .collect();
        let database = read_database(&[(STATUS, status)], |name| match name {
            "a" => Some(sums_a.as_bytes()),
            "b" => Some(sums_b.as_bytes()),
            _ => None,
        })
        .unwrap();
        let listed: Vec<usize> = database.packages.iter().map(|p| p.files.len()).collect();
        assert_eq!(listed, [half, crate::os::MAX_DATABASE_FILES - half]);
        assert_eq!(database.files_cut, ["b"]);
    }

    #[test]
    fn more_stanzas_than_any_real_database_are_refused() {
        let stanza = "Package: p\nStatus: install ok installed\nVersion: 1\n\n";
        let text = stanza.repeat(crate::os::MAX_DATABASE_ENTRIES + 1);
        let error = read_database(&[(STATUS, text.as_bytes())], |_| None).unwrap_err();
        assert_eq!(
            error,
            DpkgError::TooMany {
                path: STATUS.into(),
                limit: crate::os::MAX_DATABASE_ENTRIES
            }
        );
        let text = stanza.repeat(crate::os::MAX_DATABASE_ENTRIES);
        let read = read_database(&[(STATUS, text.as_bytes())], |_| None).unwrap();
        assert_eq!(read.packages.len(), crate::os::MAX_DATABASE_ENTRIES);
    }

    #[test]
    fn a_file_with_more_malformed_stanzas_than_good_ones_is_unreadable() {
        let text = b"Package: a\nStatus: install ok installed\nVersion: 1\n\n\
                     junk\n\nmore junk\n";
        let error = read_database(&[(STATUS, text)], |_| None).unwrap_err();
        assert_eq!(
            error,
            DpkgError::Malformed {
                path: STATUS.into(),
                line: 5,
                found: "junk".into()
            }
        );
    }

    #[test]
    fn a_malformed_stanza_is_skipped_and_named_and_the_others_are_read() {
        let text = b"Package: a\nStatus: install ok installed\nVersion: 1\n\n\
                     Package: no-version\nStatus: install ok installed\n\n\
                     Package: broken\nVersion: 2\ngarbage line\nArchitecture: all\n\n\
                     Package: b\nStatus: install ok installed\nVersion: 3\n";
        let database = read_database(&[(STATUS, text)], |_| None).unwrap();
        let names: Vec<&str> = database.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(
            database.skipped,
            [
                DpkgError::MissingField {
                    path: STATUS.into(),
                    line: 5,
                    field: "Version"
                },
                DpkgError::Malformed {
                    path: STATUS.into(),
                    line: 10,
                    found: "garbage line".into()
                },
            ]
        );
        assert_eq!(
            database.skipped[0].to_string(),
            "var/lib/dpkg/status: the stanza at line 5 has no Version field"
        );
    }

    #[test]
    fn the_reader_wants_the_status_files_and_md5sums_only() {
        assert!(wanted("var/lib/dpkg/status"));
        assert!(wanted("var/lib/dpkg/status.d/base"));
        assert!(wanted("var/lib/dpkg/info/libc6:amd64.md5sums"));
        assert!(!wanted("var/lib/dpkg/info/libc6.list"));
        assert!(!wanted("var/lib/dpkg/status-old"));
        assert!(!wanted("var/lib/dpkg/status.d/sub/x"));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = read_database(&[(STATUS, &bytes)], |_| Some(&bytes));
            let _ = parse_md5sums(&bytes);
        }
    }
}

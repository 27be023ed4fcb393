//! Integrity (the `rpm -Va` idea, for dpkg, rpm and apk alike): each file a package database
//! records is compared with the image — missing, content digest, size, permissions. Changed
//! configuration files, missing documentation and volatile paths are reported apart: they are
//! expected, not failures.

use serde::Serialize;

use crate::image::{FileKind, ImageFs};
use crate::package::{DigestAlgorithm, Package, PackageFile};

/// Paths whose contents change by design at run time; files there are not verified.
const VOLATILE_PREFIXES: [&str; 5] = ["/var/log/", "/var/cache/", "/var/lib/", "/run/", "/tmp/"];

/// What is wrong with one file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "kebab-case")]
pub enum Problem {
    /// The file is not in the image.
    Missing,
    /// Its content differs from the recorded digest.
    Digest {
        /// Recorded (hex).
        expected: String,
        /// Found (hex).
        found: String,
    },
    /// Its size differs from the recorded size.
    Size {
        /// Recorded.
        expected: u64,
        /// Found.
        found: u64,
    },
    /// Its permissions differ from the recorded mode.
    Mode {
        /// Recorded permission bits (octal in reports).
        expected: u32,
        /// Found.
        found: u32,
    },
    /// The path is no longer a regular file (a directory, a special file).
    Type {
        /// What it is now.
        found: String,
    },
}

/// One file that does not match its package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The package that installed it.
    pub package: String,
    /// Its path.
    pub path: String,
    /// What differs.
    #[serde(flatten)]
    pub problem: Problem,
}

/// The integrity of every package's files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IntegrityReport {
    /// Files that differ from their package: the failures.
    pub failures: Vec<Finding>,
    /// Configuration files changed or missing (expected in a configured image).
    pub config_changes: Vec<Finding>,
    /// Documentation files missing (commonly excluded at install time).
    pub docs_missing: Vec<Finding>,
    /// Files not verified because their content changes by design.
    pub volatile_skipped: usize,
    /// Files verified.
    pub verified: usize,
}

/// Checks every file `packages` record against `fs`. A digest is only compared when `fs` has it
/// for the package's algorithm (see [`crate::image::DigestSet`]).
pub fn check(packages: &[Package], fs: &ImageFs) -> IntegrityReport {
    let mut report = IntegrityReport::default();
    for package in packages {
        for file in &package.files {
            if is_volatile(file) {
                report.volatile_skipped += 1;
                continue;
            }
            let Some(problem) = problem_of(file, fs) else {
                report.verified += 1;
                continue;
            };
            let finding = Finding {
                package: package.name.clone(),
                path: file.path.clone(),
                problem,
            };
            report.verified += 1;
            if file.config {
                report.config_changes.push(finding);
            } else if file.doc && finding.problem == Problem::Missing {
                report.docs_missing.push(finding);
            } else {
                report.failures.push(finding);
            }
        }
    }
    report
}

/// The (path in `fs`, algorithm) of every file [`check`] would compare by digest whose digest `fs`
/// does not hold yet: what [`ImageFs::compute_digests`] should hash before the check, for
/// filesystems read from directories (an archive's digests are computed while it streams).
pub fn digests_needed(packages: &[Package], fs: &ImageFs) -> Vec<(String, DigestAlgorithm)> {
    let mut needed = Vec::new();
    for file in packages.iter().flat_map(|p| &p.files) {
        if is_volatile(file) {
            continue;
        }
        let Some(expected) = &file.digest else {
            continue;
        };
        if let Some((path, meta)) = fs.resolve(&file.path)
            && meta.kind == FileKind::Regular
            && meta.digests.hex(expected.algorithm).is_none()
        {
            needed.push((path, expected.algorithm));
        }
    }
    needed
}

fn is_volatile(file: &PackageFile) -> bool {
    file.volatile || VOLATILE_PREFIXES.iter().any(|p| file.path.starts_with(p))
}

/// The file-type bits of a recorded mode (`st_mode & S_IFMT`).
const TYPE_MASK: u32 = 0o170_000;
/// A directory's type bits.
const TYPE_DIRECTORY: u32 = 0o040_000;
/// A regular file's type bits.
const TYPE_REGULAR: u32 = 0o100_000;

fn problem_of(file: &PackageFile, fs: &ImageFs) -> Option<Problem> {
    let Some((_, meta)) = fs.resolve(&file.path) else {
        return Some(Problem::Missing);
    };
    // rpm records full modes, type included (a directory is `040755` with size 0); dpkg records
    // no mode and apk permissions only, so there a digest or size is what says "regular file".
    match file.mode.map(|m| m & TYPE_MASK).filter(|t| *t != 0) {
        Some(TYPE_DIRECTORY) => {
            return match meta.kind {
                FileKind::Directory => mode_problem(file, meta.mode),
                _ => Some(Problem::Type {
                    found: kind_name(&meta.kind),
                }),
            };
        }
        // Symbolic links (resolved above to what they name), devices, FIFOs: nothing to verify.
        Some(t) if t != TYPE_REGULAR => return None,
        _ => {}
    }
    let expects_content = file.digest.is_some() || file.size.is_some();
    match &meta.kind {
        FileKind::Regular => {}
        FileKind::Directory | FileKind::Special if expects_content => {
            return Some(Problem::Type {
                found: kind_name(&meta.kind),
            });
        }
        _ => return None,
    }
    if let Some(expected) = &file.digest
        && let Some(found) = meta.digests.hex(expected.algorithm)
        && found != expected.hex
    {
        return Some(Problem::Digest {
            expected: expected.hex.clone(),
            found,
        });
    }
    if let Some(expected) = file.size
        && expected != meta.size
    {
        return Some(Problem::Size {
            expected,
            found: meta.size,
        });
    }
    mode_problem(file, meta.mode)
}

/// A difference in permission bits (with setuid/setgid/sticky) from the recorded mode.
fn mode_problem(file: &PackageFile, found: u32) -> Option<Problem> {
    let expected = file.mode? & 0o7777;
    (expected != found & 0o7777).then_some(Problem::Mode {
        expected,
        found: found & 0o7777,
    })
}

/// `regular`, `directory`, `symlink`, `special`.
fn kind_name(kind: &FileKind) -> String {
    match kind {
        FileKind::Regular => "regular",
        FileKind::Directory => "directory",
        FileKind::Symlink(_) => "symlink",
        FileKind::Special => "special",
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::layers::{read_layer, stack, tar_of};
    use crate::image::{DigestSet, ReadOptions};
    use crate::package::{DigestAlgorithm, Ecosystem, FileDigest};

    fn fs_of(entries: &[(&str, Option<&[u8]>)]) -> ImageFs {
        let keep = |_: &str| false;
        let options = ReadOptions {
            keep: &keep,
            digests: DigestSet::ALL,
            limits: crate::image::ReadLimits::default(),
        };
        stack(
            [read_layer(&tar_of(entries)[..], "layer", &options).unwrap()],
            None,
        )
    }

    fn file(path: &str, md5_of: &[u8]) -> PackageFile {
        use md5::Digest as _;
        PackageFile {
            path: path.into(),
            digest: Some(FileDigest {
                algorithm: DigestAlgorithm::Md5,
                hex: md5::Md5::digest(md5_of)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect(),
            }),
            ..PackageFile::default()
        }
    }

    #[test]
    fn recorded_directories_are_checked_as_directories() {
        let fs = fs_of(&[
            ("usr/", None),
            ("usr/share/", None),
            ("usr/lib", Some(b"a file")),
        ]);
        let directory = |path: &str, mode: u32| PackageFile {
            path: path.into(),
            size: Some(0),
            mode: Some(mode),
            ..PackageFile::default()
        };
        let package = Package {
            ecosystem: Ecosystem::Rpm,
            name: "filesystem".into(),
            version: "3.16-2.el9".into(),
            arch: Some("x86_64".into()),
            source_name: None,
            source_version: None,
            license: None,
            location: "/var/lib/rpm/rpmdb.sqlite".into(),
            files: vec![
                directory("/usr/share", 0o040_755),
                directory("/usr", 0o040_700),
                directory("/usr/lib", 0o040_755),
            ],
        };
        let report = check(&[package], &fs);
        let problems: Vec<(&str, &Problem)> = report
            .failures
            .iter()
            .map(|f| (f.path.as_str(), &f.problem))
            .collect();
        assert_eq!(
            problems,
            [
                (
                    "/usr",
                    &Problem::Mode {
                        expected: 0o700,
                        found: 0o755
                    }
                ),
                (
                    "/usr/lib",
                    &Problem::Type {
                        found: "regular".into()
                    }
                ),
            ]
        );
        assert_eq!(report.verified, 3);
    }

    #[test]
    fn modified_missing_config_doc_and_volatile_files_are_told_apart() {
        let fs = fs_of(&[
            ("usr/bin/tool", Some(b"tampered")),
            ("usr/bin/fine", Some(b"fine")),
            ("etc/tool.conf", Some(b"edited")),
            ("usr/", None),
        ]);
        let mut config = file("/etc/tool.conf", b"original");
        config.config = true;
        let mut doc = file("/usr/share/doc/tool/README", b"doc");
        doc.doc = true;
        let package = Package {
            ecosystem: Ecosystem::Deb,
            name: "tool".into(),
            version: "1".into(),
            arch: None,
            source_name: None,
            source_version: None,
            license: None,
            location: "/var/lib/dpkg/status".into(),
            files: vec![
                file("/usr/bin/tool", b"original"),
                file("/usr/bin/fine", b"fine"),
                file("/usr/bin/gone", b"x"),
                config,
                doc,
                file("/var/log/tool.log", b"x"),
                file("/usr", b"a directory now"),
            ],
        };
        let report = check(&[package], &fs);
        let failures: Vec<_> = report
            .failures
            .iter()
            .map(|f| (f.path.as_str(), &f.problem))
            .collect();
        assert_eq!(failures.len(), 3, "{failures:?}");
        assert!(matches!(
            failures[0],
            ("/usr/bin/tool", Problem::Digest { .. })
        ));
        assert_eq!(failures[1], ("/usr/bin/gone", &Problem::Missing));
        assert!(matches!(failures[2], ("/usr", Problem::Type { .. })));
        assert_eq!(report.config_changes.len(), 1);
        assert_eq!(report.config_changes[0].path, "/etc/tool.conf");
        assert_eq!(report.docs_missing.len(), 1);
        assert_eq!(report.volatile_skipped, 1);
        assert_eq!(report.verified, 6);
    }
}

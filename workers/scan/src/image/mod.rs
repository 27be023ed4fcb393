//! An image's filesystem as the scanners see it, without running or unpacking the image: the
//! metadata (type, mode, size, digests) of every path after the layers are stacked and their
//! whiteouts applied, and the content of only the files a scanner asked for.
//!
//! Sources: an image archive as `docker save` / the Engine's image export writes it (Docker's
//! `manifest.json` with `<id>/layer.tar`, or the OCI layout with `blobs/sha256/…`; gzip-compressed
//! layers too), read as one stream ([`archive`]), or a root filesystem directory ([`rootfs`]).
//!
//! Everything read from an image is bounded ([`ReadLimits`]): a kept file is read only up to the
//! per-file limit and all kept files of one read together up to the total limit; past either the
//! read stops at once with an error naming the file ([`ImageError::Limit`]). A hard link shares
//! its target's kept bytes ([`Arc`]) instead of copying them.

pub mod archive;
pub mod layers;
pub mod rootfs;

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

use crate::package::DigestAlgorithm;

/// Default largest file kept in memory for a scanner (`[scan] max_file_bytes`): an rpm
/// database is the largest file a scanner reads (a few MiB to tens of MiB on real images; a dpkg
/// status file is a few MiB).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Default total of the files kept in memory for the scanners during one read (`[scan]
/// max_kept_bytes`): every kept file of every layer counts, as they are all in memory before the
/// layers are stacked. With the per-file limit, this keeps a scan's peak memory well under
/// 256 MiB whatever the image holds.
pub const DEFAULT_MAX_KEPT_BYTES: u64 = 128 * 1024 * 1024;

/// How much of an image's content one read may keep in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadLimits {
    /// Largest kept file, in bytes.
    pub max_file_bytes: u64,
    /// Largest total of all kept files (and archive documents) of one read, in bytes.
    pub max_kept_bytes: u64,
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            max_kept_bytes: DEFAULT_MAX_KEPT_BYTES,
        }
    }
}

/// Which limit a read ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKind {
    /// One file is larger than [`ReadLimits::max_file_bytes`].
    File,
    /// The kept files together are larger than [`ReadLimits::max_kept_bytes`].
    Total,
}

impl std::fmt::Display for LimitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LimitKind::File => "the per-file limit of",
            LimitKind::Total => "the limit on all kept files together of",
        })
    }
}

/// The bytes one read has kept so far, against its [`ReadLimits`]: shared by every layer of an
/// archive, as all their kept files are in memory at once before the layers are stacked.
#[derive(Debug)]
pub(crate) struct Budget {
    limits: ReadLimits,
    kept: u64,
}

impl Budget {
    pub(crate) fn new(limits: ReadLimits) -> Self {
        Self { limits, kept: 0 }
    }

    /// How many bytes the next kept file may have, and which limit says so.
    fn allowance(&self) -> (u64, LimitKind) {
        let left = self.limits.max_kept_bytes.saturating_sub(self.kept);
        if self.limits.max_file_bytes <= left {
            (self.limits.max_file_bytes, LimitKind::File)
        } else {
            (left, LimitKind::Total)
        }
    }

    /// The error for the file `path` of `what` over the allowance `kind` gave.
    fn over(&self, what: &str, path: &str, kind: LimitKind, file_limit: u64) -> ImageError {
        ImageError::Limit {
            what: what.to_owned(),
            path: path.to_owned(),
            kind,
            limit: match kind {
                LimitKind::File => file_limit,
                LimitKind::Total => self.limits.max_kept_bytes,
            },
            kept: self.kept,
        }
    }

    /// Reads `reader` (the file `path` of `what`, whose header or metadata says it has
    /// `declared_size` bytes) with `digests`, keeping its bytes when `keep`. A kept file over its
    /// allowance is an error naming it: refused before any byte is read when its declared size
    /// says so, else as soon as one byte too many is read (a size can be wrong, a file can grow).
    pub(crate) fn read_file(
        &mut self,
        reader: &mut dyn Read,
        what: &str,
        path: &str,
        declared_size: u64,
        digests: DigestSet,
        keep: bool,
    ) -> Result<(u64, Digests, Option<Vec<u8>>), ImageError> {
        let (allowance, kind) = self.allowance();
        if keep && declared_size > allowance {
            return Err(self.over(what, path, kind, self.limits.max_file_bytes));
        }
        let limit = keep.then_some(allowance);
        let streamed = digest_stream(reader, digests, limit, declared_size).map_err(|source| {
            ImageError::Io {
                what: format!("{what}: {path}"),
                source,
            }
        })?;
        let Streamed::Whole(size, digests, kept) = streamed else {
            return Err(self.over(what, path, kind, self.limits.max_file_bytes));
        };
        if let Some(bytes) = &kept {
            self.kept += bytes.len() as u64;
        }
        Ok((size, digests, kept))
    }

    /// Reads a whole document of `what` (at most `max` bytes, and within the total) into memory;
    /// `declared_size` as for [`Budget::read_file`].
    pub(crate) fn read_document(
        &mut self,
        reader: &mut dyn Read,
        what: &str,
        path: &str,
        declared_size: u64,
        max: u64,
    ) -> Result<Vec<u8>, ImageError> {
        let (kept_max, kind) = {
            let (allowance, kind) = self.allowance();
            if max < allowance {
                (max, LimitKind::File)
            } else {
                (allowance, kind)
            }
        };
        if declared_size > kept_max {
            return Err(self.over(what, path, kind, kept_max));
        }
        match digest_stream(reader, DigestSet::NONE, Some(kept_max), declared_size) {
            Ok(Streamed::Whole(_, _, Some(bytes))) => {
                self.kept += bytes.len() as u64;
                Ok(bytes)
            }
            Ok(_) => Err(self.over(what, path, kind, kept_max)),
            Err(source) => Err(ImageError::Io {
                what: format!("{what}: {path}"),
                source,
            }),
        }
    }
}

/// What a path is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link to this target.
    Symlink(String),
    /// A device, FIFO or socket.
    Special,
}

/// The digests of a regular file's content, for the algorithms that were asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Digests {
    /// MD5 (dpkg).
    pub md5: Option<[u8; 16]>,
    /// SHA-1 (apk).
    pub sha1: Option<[u8; 20]>,
    /// SHA-256 (rpm).
    pub sha256: Option<[u8; 32]>,
}

impl Digests {
    /// The digest for `algorithm` in lowercase hex, if it was computed.
    pub fn hex(&self, algorithm: DigestAlgorithm) -> Option<String> {
        let bytes: &[u8] = match algorithm {
            DigestAlgorithm::Md5 => self.md5.as_ref()?,
            DigestAlgorithm::Sha1 => self.sha1.as_ref()?,
            DigestAlgorithm::Sha256 => self.sha256.as_ref()?,
            DigestAlgorithm::Sha384 | DigestAlgorithm::Sha512 => return None,
        };
        Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// The metadata of one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMeta {
    /// Its type.
    pub kind: FileKind,
    /// Permission bits (and setuid/setgid/sticky), without the type.
    pub mode: u32,
    /// Size in bytes of a regular file's content.
    pub size: u64,
    /// Digests of a regular file's content (none for other types, or when not asked for).
    pub digests: Digests,
}

/// Which digests to compute for every regular file (integrity checking needs the package
/// databases' algorithms; inventory alone needs none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DigestSet {
    /// Compute MD5.
    pub md5: bool,
    /// Compute SHA-1.
    pub sha1: bool,
    /// Compute SHA-256.
    pub sha256: bool,
}

impl DigestSet {
    /// All three: what integrity checking of dpkg, apk and rpm packages needs.
    pub const ALL: DigestSet = DigestSet {
        md5: true,
        sha1: true,
        sha256: true,
    };
    /// None: inventory only.
    pub const NONE: DigestSet = DigestSet {
        md5: false,
        sha1: false,
        sha256: false,
    };

    /// Just the one digest `algorithm` names ([`DigestSet::NONE`] for one [`Digests`] does not
    /// hold).
    pub fn only(algorithm: DigestAlgorithm) -> DigestSet {
        DigestSet {
            md5: algorithm == DigestAlgorithm::Md5,
            sha1: algorithm == DigestAlgorithm::Sha1,
            sha256: algorithm == DigestAlgorithm::Sha256,
        }
    }

    fn any(self) -> bool {
        self.md5 || self.sha1 || self.sha256
    }
}

/// What to read from an image.
pub struct ReadOptions<'a> {
    /// Whether the content of this path (relative to the root, no leading `/`) is kept.
    pub keep: &'a (dyn Fn(&str) -> bool + Sync),
    /// Digests to compute for every regular file.
    pub digests: DigestSet,
    /// How much content may be kept.
    pub limits: ReadLimits,
}

/// Why an image could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Reading the archive or directory failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being read.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The archive is not an image archive.
    #[error("{what}: expected {expected}, found {found}")]
    Format {
        /// What was being read.
        what: String,
        /// What should have been there.
        expected: String,
        /// What was there.
        found: String,
    },
    /// A file the scanners need is larger than the limits allow: the read stopped there.
    #[error(
        "{what}: {path} is over {kind} {limit} bytes ({kept} bytes kept before it); the scan \
         stopped reading there. A package database or manifest that large is not scanned: raise \
         `[scan] max_file_bytes` / `max_kept_bytes` if the image is trusted"
    )]
    Limit {
        /// What was being read (the archive, a layer).
        what: String,
        /// The file, relative to the image root (or the archive entry).
        path: String,
        /// Which limit.
        kind: LimitKind,
        /// The limit, in bytes.
        limit: u64,
        /// Bytes kept by the read before this file.
        kept: u64,
    },
}

/// The stacked filesystem of an image.
#[derive(Debug, Default)]
pub struct ImageFs {
    entries: BTreeMap<String, FileMeta>,
    /// Kept files' bytes; hard links share their target's.
    contents: HashMap<String, Arc<Vec<u8>>>,
    config: Option<Vec<u8>>,
    /// Where regular files' bytes are on this host (filesystems read from directories).
    origins: HashMap<String, PathBuf>,
}

impl ImageFs {
    /// The metadata of `path` (relative to the root, no leading `/`), if it exists.
    pub fn meta(&self, path: &str) -> Option<&FileMeta> {
        self.entries.get(normalize(path).as_str())
    }

    /// The metadata of `path` with symbolic links followed, in its directories and at its end
    /// (`bin/bash` in a merged-/usr image is `usr/bin/bash`), as the image's own processes would
    /// see it; `None` when it does not exist or the links loop (more than 40).
    pub fn resolve(&self, path: &str) -> Option<(String, &FileMeta)> {
        let mut pending: Vec<String> = normalize(path)
            .split('/')
            .rev()
            .map(str::to_owned)
            .collect();
        let mut current = String::new();
        let mut hops = 0;
        while let Some(part) = pending.pop() {
            if part == ".." {
                current = current
                    .rsplit_once('/')
                    .map(|(p, _)| p.to_owned())
                    .unwrap_or_default();
                continue;
            }
            let candidate = if current.is_empty() {
                part
            } else {
                format!("{current}/{part}")
            };
            // Archives may omit parent directories: a missing component is an implicit directory.
            let Some(meta) = self.entries.get(&candidate) else {
                if pending.is_empty() {
                    return None;
                }
                current = candidate;
                continue;
            };
            if let FileKind::Symlink(target) = &meta.kind {
                hops += 1;
                if hops > 40 {
                    return None;
                }
                // The rest of the path is resolved below the link's target.
                let mut target_parts: Vec<String> = target
                    .split('/')
                    .filter(|p| !p.is_empty() && *p != ".")
                    .map(str::to_owned)
                    .collect();
                if target.starts_with('/') {
                    current = String::new();
                }
                target_parts.reverse();
                pending.extend(target_parts);
                continue;
            }
            current = candidate;
        }
        let meta = self.entries.get(&current)?;
        Some((current, meta))
    }

    /// The content of a kept file.
    pub fn content(&self, path: &str) -> Option<&[u8]> {
        self.contents
            .get(normalize(path).as_str())
            .map(|bytes| bytes.as_slice())
    }

    /// Every kept file, as (path, content), in path order.
    pub fn kept(&self) -> Vec<(&str, &[u8])> {
        let mut kept: Vec<_> = self
            .contents
            .iter()
            .map(|(p, c)| (p.as_str(), c.as_slice()))
            .collect();
        kept.sort_unstable_by_key(|(p, _)| *p);
        kept
    }

    /// Every path with its metadata, in path order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &FileMeta)> {
        self.entries.iter().map(|(p, m)| (p.as_str(), m))
    }

    /// Number of paths.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the filesystem is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The image configuration JSON (`config.Labels`, `config.User`…), when the source had one.
    pub fn config(&self) -> Option<&[u8]> {
        self.config.as_deref()
    }

    /// Computes, for each (path, algorithm) of `wanted` whose digest is not known yet, the digest
    /// from the file's bytes on this host (filesystems read from directories remember where each
    /// file is), on all cores. Paths that are not regular files read from a directory, and
    /// algorithms [`Digests`] does not hold, are skipped. Returns how many digests were computed.
    pub fn compute_digests(
        &mut self,
        wanted: &[(String, DigestAlgorithm)],
    ) -> Result<usize, ImageError> {
        let mut work: Vec<(String, PathBuf, DigestSet)> = Vec::new();
        for (path, algorithm) in wanted {
            let path = normalize(path);
            let (Some(meta), Some(origin)) = (self.entries.get(&path), self.origins.get(&path))
            else {
                continue;
            };
            let set = DigestSet::only(*algorithm);
            if meta.kind != FileKind::Regular
                || set == DigestSet::NONE
                || meta.digests.hex(*algorithm).is_some()
            {
                continue;
            }
            work.push((path, origin.clone(), set));
        }
        work.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        work.dedup_by(|a, b| a.0 == b.0 && a.2 == b.2);
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(work.len().max(1));
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results = std::sync::Mutex::new(Vec::with_capacity(work.len()));
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((path, origin, set)) = work.get(i) else {
                            break;
                        };
                        let digested = std::fs::File::open(origin)
                            .and_then(|mut file| digest_stream(&mut file, *set, None, 0))
                            .map(|streamed| match streamed {
                                Streamed::Whole(_, digests, _) => digests,
                                Streamed::OverLimit => Digests::default(),
                            })
                            .map_err(|source| ImageError::Io {
                                what: origin.display().to_string(),
                                source,
                            });
                        if let Ok(mut results) = results.lock() {
                            results.push((path.clone(), digested));
                        }
                    }
                });
            }
        });
        let results = results
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut computed = 0;
        for (path, digested) in results {
            let digests = digested?;
            if let Some(meta) = self.entries.get_mut(&path) {
                meta.digests.md5 = meta.digests.md5.or(digests.md5);
                meta.digests.sha1 = meta.digests.sha1.or(digests.sha1);
                meta.digests.sha256 = meta.digests.sha256.or(digests.sha256);
                computed += 1;
            }
        }
        Ok(computed)
    }
}

/// `./usr/bin/` → `usr/bin`; `/etc/os-release` → `etc/os-release`.
pub fn normalize(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for part in path.split('/') {
        if part.is_empty() || part == "." {
            continue;
        }
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(part);
    }
    out
}

/// What [`digest_stream`] read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Streamed {
    /// The whole stream: its size, digests and, when kept, its bytes.
    Whole(u64, Digests, Option<Vec<u8>>),
    /// The kept stream went over its limit: reading stopped there.
    OverLimit,
}

/// Reads `reader` to its end, computing `digests`, and keeping the bytes when `keep` gives the
/// most it may hold: reading stops as soon as a kept stream has more
/// ([`Streamed::OverLimit`]). `size_hint` (the size the header or metadata declares) sizes the
/// buffer, never beyond the limit.
pub(crate) fn digest_stream(
    reader: &mut dyn Read,
    digests: DigestSet,
    keep: Option<u64>,
    size_hint: u64,
) -> std::io::Result<Streamed> {
    let mut md5 = digests.md5.then(Md5::new);
    let mut sha1 = digests.sha1.then(Sha1::new);
    let mut sha256 = digests.sha256.then(Sha256::new);
    if !digests.any() && keep.is_none() {
        let size = std::io::copy(reader, &mut std::io::sink())?;
        return Ok(Streamed::Whole(size, Digests::default(), None));
    }
    let mut kept =
        keep.map(|limit| Vec::with_capacity(usize::try_from(size_hint.min(limit)).unwrap_or(0)));
    // One byte past the limit is enough to know a kept stream is over it.
    let mut reader: Box<dyn Read + '_> = match keep {
        Some(limit) => Box::new(reader.take(limit.saturating_add(1))),
        None => Box::new(reader),
    };
    let mut size = 0u64;
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = &buffer[..n];
        size += n as u64;
        if keep.is_some_and(|limit| size > limit) {
            return Ok(Streamed::OverLimit);
        }
        if let Some(h) = md5.as_mut() {
            h.update(chunk);
        }
        if let Some(h) = sha1.as_mut() {
            h.update(chunk);
        }
        if let Some(h) = sha256.as_mut() {
            h.update(chunk);
        }
        if let Some(bytes) = kept.as_mut() {
            bytes.extend_from_slice(chunk);
        }
    }
    Ok(Streamed::Whole(
        size,
        Digests {
            md5: md5.map(|h| h.finalize().into()),
            sha1: sha1.map(|h| h.finalize().into()),
            sha256: sha256.map(|h| h.finalize().into()),
        },
        kept,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(kind: FileKind) -> FileMeta {
        FileMeta {
            kind,
            mode: 0o755,
            size: 0,
            digests: Digests::default(),
        }
    }

    #[test]
    fn symlinks_are_followed_in_directories_and_at_the_end() {
        let mut fs = ImageFs::default();
        fs.entries.insert("usr".into(), meta(FileKind::Directory));
        fs.entries
            .insert("usr/bin".into(), meta(FileKind::Directory));
        fs.entries
            .insert("usr/bin/bash".into(), meta(FileKind::Regular));
        fs.entries
            .insert("bin".into(), meta(FileKind::Symlink("usr/bin".into())));
        fs.entries
            .insert("usr/bin/sh".into(), meta(FileKind::Symlink("bash".into())));
        fs.entries.insert("etc".into(), meta(FileKind::Directory));
        fs.entries.insert(
            "etc/alt".into(),
            meta(FileKind::Symlink("/bin/../bin/sh".into())),
        );
        fs.entries
            .insert("loop".into(), meta(FileKind::Symlink("loop".into())));
        assert_eq!(fs.resolve("/bin/bash").unwrap().0, "usr/bin/bash");
        assert_eq!(fs.resolve("bin/sh").unwrap().0, "usr/bin/bash");
        assert_eq!(fs.resolve("etc/alt").unwrap().0, "usr/bin/bash");
        assert!(fs.resolve("loop").is_none());
        assert!(fs.resolve("bin/zsh").is_none());
    }

    #[test]
    fn paths_are_normalized_relative_to_the_root() {
        assert_eq!(normalize("./usr/bin/"), "usr/bin");
        assert_eq!(normalize("/etc//os-release"), "etc/os-release");
        assert_eq!(normalize("."), "");
    }

    #[test]
    fn digests_match_known_values() {
        let Streamed::Whole(size, digests, kept) =
            digest_stream(&mut &b"hello\n"[..], DigestSet::ALL, Some(6), 6).unwrap()
        else {
            panic!("within the limit")
        };
        assert_eq!(size, 6);
        assert_eq!(kept.as_deref(), Some(&b"hello\n"[..]));
        assert_eq!(
            digests.hex(DigestAlgorithm::Md5).unwrap(),
            "b1946ac92492d2347c6235b4d2611184"
        );
        assert_eq!(
            digests.hex(DigestAlgorithm::Sha1).unwrap(),
            "f572d396fae9206628714fb2ce00f72e94f2258f"
        );
        assert_eq!(
            digests.hex(DigestAlgorithm::Sha256).unwrap(),
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
        let streamed = digest_stream(&mut &b"hello\n"[..], DigestSet::NONE, None, 0).unwrap();
        assert_eq!(streamed, Streamed::Whole(6, Digests::default(), None));
    }

    /// A reader that counts what is taken from it: an endless stream of zeros.
    struct Zeros {
        given: u64,
    }

    impl Read for Zeros {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            buf.fill(0);
            self.given += buf.len() as u64;
            Ok(buf.len())
        }
    }

    #[test]
    fn a_kept_stream_stops_being_read_just_past_its_limit() {
        let mut zeros = Zeros { given: 0 };
        let streamed = digest_stream(&mut zeros, DigestSet::ALL, Some(1000), u64::MAX).unwrap();
        assert_eq!(streamed, Streamed::OverLimit);
        assert_eq!(
            zeros.given, 1001,
            "one byte past the limit, not the stream's end"
        );
    }

    #[test]
    fn a_kept_file_declared_over_the_limit_is_refused_before_any_byte_is_read() {
        let mut budget = Budget::new(ReadLimits {
            max_file_bytes: 1000,
            max_kept_bytes: 5000,
        });
        let mut zeros = Zeros { given: 0 };
        let error = budget
            .read_file(
                &mut zeros,
                "a.tar",
                "var/lib/dpkg/status",
                2 << 30,
                DigestSet::ALL,
                true,
            )
            .unwrap_err();
        assert!(
            matches!(
                error,
                ImageError::Limit {
                    kind: LimitKind::File,
                    ..
                }
            ),
            "{error}"
        );
        assert_eq!(zeros.given, 0);
        // A size that lies low is caught one byte past the limit.
        let error = budget
            .read_file(
                &mut zeros,
                "a.tar",
                "var/lib/dpkg/status",
                10,
                DigestSet::ALL,
                true,
            )
            .unwrap_err();
        assert!(
            matches!(
                error,
                ImageError::Limit {
                    kind: LimitKind::File,
                    ..
                }
            ),
            "{error}"
        );
        assert_eq!(zeros.given, 1001);
    }

    #[test]
    fn the_budget_names_the_file_and_the_limit_it_ran_into() {
        let limits = ReadLimits {
            max_file_bytes: 10,
            max_kept_bytes: 25,
        };
        let mut budget = Budget::new(limits);
        let error = budget
            .read_file(
                &mut &[b'x'; 11][..],
                "a.tar",
                "var/lib/dpkg/status",
                11,
                DigestSet::NONE,
                true,
            )
            .unwrap_err();
        assert!(
            matches!(&error, ImageError::Limit { kind: LimitKind::File, limit: 10, path, .. } if path == "var/lib/dpkg/status"),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .starts_with("a.tar: var/lib/dpkg/status is over the per-file limit of 10 bytes"),
            "{error}"
        );
        for name in ["a", "b"] {
            budget
                .read_file(
                    &mut &[b'x'; 10][..],
                    "a.tar",
                    name,
                    10,
                    DigestSet::NONE,
                    true,
                )
                .unwrap();
        }
        let unkept = budget
            .read_file(
                &mut &[b'x'; 100][..],
                "a.tar",
                "big.bin",
                100,
                DigestSet::ALL,
                false,
            )
            .unwrap();
        assert_eq!(unkept.0, 100, "files not kept are not limited");
        let error = budget
            .read_file(&mut &[b'x'; 6][..], "a.tar", "c", 6, DigestSet::NONE, true)
            .unwrap_err();
        assert!(
            matches!(
                error,
                ImageError::Limit {
                    kind: LimitKind::Total,
                    limit: 25,
                    kept: 20,
                    ..
                }
            ),
            "{error}"
        );
    }
}

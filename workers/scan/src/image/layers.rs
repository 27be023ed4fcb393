//! One layer's changes (read from its tar stream) and the stacking of layers: whiteouts
//! (`.wh.<name>` removes `<name>` and everything under it; `.wh..wh..opq` empties its directory
//! of everything from lower layers) are applied before the layer's own entries. A hard link
//! takes its target's metadata and shares its kept bytes.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use super::{Budget, Digests, FileKind, FileMeta, ImageError, ImageFs, ReadOptions, normalize};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// What one layer changes.
#[derive(Debug, Default)]
pub struct LayerDelta {
    /// Paths the layer removes from lower layers (with everything under them).
    pub whiteouts: Vec<String>,
    /// Directories whose lower-layer contents the layer hides.
    pub opaque: Vec<String>,
    /// Paths the layer adds or replaces, in archive order.
    pub entries: Vec<(String, FileMeta)>,
    /// Hard links: (path, target) — they take the target's metadata and content.
    pub hardlinks: Vec<(String, String)>,
    /// Contents of kept files.
    pub contents: HashMap<String, Arc<Vec<u8>>>,
    /// Where each regular file's bytes are on this host, when the layer is a directory.
    pub origins: HashMap<String, PathBuf>,
}

/// Reads one layer's tar stream (uncompressed, or gzip when it starts with gzip's magic), keeping
/// at most `options.limits` of content.
pub fn read_layer(
    reader: impl Read,
    what: &str,
    options: &ReadOptions<'_>,
) -> Result<LayerDelta, ImageError> {
    read_layer_within(reader, what, options, &mut Budget::new(options.limits))
}

/// [`read_layer`] with the bytes it keeps counted in `budget` (shared by an archive's layers).
pub(crate) fn read_layer_within(
    reader: impl Read,
    what: &str,
    options: &ReadOptions<'_>,
    budget: &mut Budget,
) -> Result<LayerDelta, ImageError> {
    let mut reader = std::io::BufReader::with_capacity(256 * 1024, reader);
    let gzip = {
        use std::io::BufRead as _;
        let head = reader.fill_buf().map_err(|source| ImageError::Io {
            what: what.to_owned(),
            source,
        })?;
        head.starts_with(&[0x1f, 0x8b])
    };
    if gzip {
        let ended = std::rc::Rc::new(std::cell::Cell::new(false));
        let compressed = EndFlag {
            inner: reader,
            ended: std::rc::Rc::clone(&ended),
        };
        read_tar(
            flate2::read::GzDecoder::new(compressed),
            what,
            options,
            budget,
        )
        .map_err(|error| match error {
            // The compressed bytes ran out before the gzip stream's end: whatever the tar reader
            // then made of it, the cause is a truncated gzip, not a malformed tar.
            ImageError::Io { source, .. } if ended.get() => ImageError::Format {
                what: what.to_owned(),
                expected: "a complete gzip-compressed layer".to_owned(),
                found: format!(
                    "a truncated gzip stream (its bytes end before the gzip end marker: {source})"
                ),
            },
            other => other,
        })
    } else {
        read_tar(reader, what, options, budget)
    }
}

/// A reader that records whether it reached its end.
struct EndFlag<R> {
    inner: R,
    ended: std::rc::Rc<std::cell::Cell<bool>>,
}

impl<R: Read> Read for EndFlag<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.ended.set(true);
        }
        Ok(n)
    }
}

fn read_tar(
    reader: impl Read,
    what: &str,
    options: &ReadOptions<'_>,
    budget: &mut Budget,
) -> Result<LayerDelta, ImageError> {
    let io = |source| ImageError::Io {
        what: what.to_owned(),
        source,
    };
    let mut archive = tar::Archive::new(reader);
    let mut delta = LayerDelta::default();
    for entry in archive.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        let raw_path = entry.path_bytes();
        let path = normalize(&String::from_utf8_lossy(&raw_path));
        if path.is_empty() {
            continue;
        }
        let (parent, name) = match path.rsplit_once('/') {
            Some((parent, name)) => (parent.to_owned(), name.to_owned()),
            None => (String::new(), path.clone()),
        };
        if name == OPAQUE_MARKER {
            delta.opaque.push(parent);
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            delta.whiteouts.push(if parent.is_empty() {
                hidden.to_owned()
            } else {
                format!("{parent}/{hidden}")
            });
            continue;
        }
        let header = entry.header();
        let mode = header.mode().unwrap_or(0) & 0o7777;
        let kind = header.entry_type();
        // A GNU sparse entry is a regular file whose holes read as zeros.
        let meta = if kind.is_file() || kind.is_gnu_sparse() || kind == tar::EntryType::Continuous {
            let keep = (options.keep)(&path);
            let (size, digests) = if keep || options.digests != super::DigestSet::NONE {
                let declared_size = entry.size();
                let (size, digests, kept) = budget.read_file(
                    &mut entry,
                    what,
                    &path,
                    declared_size,
                    options.digests,
                    keep,
                )?;
                if let Some(bytes) = kept {
                    delta.contents.insert(path.clone(), Arc::new(bytes));
                }
                (size, digests)
            } else {
                // Nothing to compute: the tar reader skips the stored bytes (a sparse entry's
                // holes are never expanded).
                (entry.size(), Digests::default())
            };
            FileMeta {
                kind: FileKind::Regular,
                mode,
                size,
                digests,
            }
        } else if kind.is_dir() {
            FileMeta {
                kind: FileKind::Directory,
                mode,
                size: 0,
                digests: Digests::default(),
            }
        } else if kind.is_symlink() {
            let target = entry
                .link_name_bytes()
                .map(|t| String::from_utf8_lossy(&t).into_owned())
                .unwrap_or_default();
            FileMeta {
                kind: FileKind::Symlink(target),
                mode,
                size: 0,
                digests: Digests::default(),
            }
        } else if kind.is_hard_link() {
            if let Some(target) = entry.link_name_bytes() {
                delta
                    .hardlinks
                    .push((path, normalize(&String::from_utf8_lossy(&target))));
            }
            continue;
        } else if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        } else {
            FileMeta {
                kind: FileKind::Special,
                mode,
                size: 0,
                digests: Digests::default(),
            }
        };
        delta.entries.push((path, meta));
    }
    Ok(delta)
}

/// Stacks layer deltas, lowest first, into one filesystem.
pub fn stack(deltas: impl IntoIterator<Item = LayerDelta>, config: Option<Vec<u8>>) -> ImageFs {
    let mut fs = ImageFs {
        config,
        ..ImageFs::default()
    };
    for delta in deltas {
        apply(&mut fs, &delta);
    }
    fs
}

/// [`stack`] of borrowed deltas: a layer an image lists twice is applied at both places.
pub(crate) fn stack_listed<'a>(
    deltas: impl IntoIterator<Item = &'a LayerDelta>,
    config: Option<Vec<u8>>,
) -> ImageFs {
    let mut fs = ImageFs {
        config,
        ..ImageFs::default()
    };
    for delta in deltas {
        apply(&mut fs, delta);
    }
    fs
}

fn apply(fs: &mut ImageFs, delta: &LayerDelta) {
    for dir in &delta.opaque {
        remove_under(fs, dir, false);
    }
    for path in &delta.whiteouts {
        remove_under(fs, path, true);
    }
    let mut layer_entries: BTreeMap<&str, &FileMeta> = BTreeMap::new();
    for (path, meta) in &delta.entries {
        // A path replaced by a non-directory loses what lower layers had under it.
        if meta.kind != FileKind::Directory {
            remove_under(fs, path, false);
        }
        fs.contents.remove(path);
        fs.origins.remove(path);
        layer_entries.insert(path, meta);
    }
    for (path, meta) in layer_entries {
        fs.entries.insert(path.to_owned(), meta.clone());
    }
    for (path, content) in &delta.contents {
        fs.contents.insert(path.clone(), Arc::clone(content));
    }
    for (path, origin) in &delta.origins {
        fs.origins.insert(path.clone(), origin.clone());
    }
    for (path, target) in &delta.hardlinks {
        if let Some(meta) = fs.entries.get(target).cloned() {
            // The link shares the target's bytes: no second copy, nothing more kept.
            match fs.contents.get(target).map(Arc::clone) {
                Some(content) => fs.contents.insert(path.clone(), content),
                None => fs.contents.remove(path),
            };
            fs.entries.insert(path.clone(), meta);
        }
    }
}

/// Removes everything under `path` (and `path` itself when `including`).
fn remove_under(fs: &mut ImageFs, path: &str, including: bool) {
    if including {
        fs.entries.remove(path);
        fs.contents.remove(path);
        fs.origins.remove(path);
    }
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    };
    let doomed: Vec<String> = fs
        .entries
        .range(prefix.clone()..)
        .take_while(|(p, _)| p.starts_with(&prefix))
        .map(|(p, _)| p.clone())
        .collect();
    for p in doomed {
        fs.entries.remove(&p);
        fs.contents.remove(&p);
        fs.origins.remove(&p);
    }
}

/// A layer's tar built in memory from (path, kind, content) triples, for tests of this crate.
#[cfg(test)]
pub(crate) fn tar_of(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in entries {
        let mut header = tar::Header::new_gnu();
        match content {
            Some(bytes) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(bytes.len() as u64);
                header.set_mode(0o644);
                header.set_cksum();
                builder.append_data(&mut header, path, *bytes).unwrap();
            }
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                header.set_mode(0o755);
                header.set_cksum();
                builder.append_data(&mut header, path, &[][..]).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{DigestSet, LimitKind, ReadLimits};
    use std::io::Write as _;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    /// A tar of one regular file `path` with `content`, then hard links to it at `links`.
    fn tar_with_links(path: &str, content: &[u8], links: &[&str]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, path, content).unwrap();
        for link in links {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Link);
            header.set_size(0);
            header.set_mode(0o644);
            builder.append_link(&mut header, link, path).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn keep_os_release(path: &str) -> bool {
        path == "etc/os-release"
    }

    fn read(entries: &[(&str, Option<&[u8]>)]) -> LayerDelta {
        let options = ReadOptions {
            keep: &keep_os_release,
            digests: DigestSet::NONE,
            limits: ReadLimits::default(),
        };
        read_layer(&tar_of(entries)[..], "test layer", &options).unwrap()
    }

    #[test]
    fn whiteouts_and_opaque_directories_hide_lower_layers() {
        let base = read(&[
            ("etc/", None),
            ("etc/os-release", Some(b"ID=debian\n")),
            ("opt/app/", None),
            ("opt/app/old.txt", Some(b"old")),
            ("var/cache/", None),
            ("var/cache/x/", None),
            ("var/cache/x/y", Some(b"y")),
            ("tmp/gone", Some(b"g")),
        ]);
        let top = read(&[
            ("etc/os-release", Some(b"ID=alpine\n")),
            ("opt/app/.wh..wh..opq", Some(b"")),
            ("opt/app/new.txt", Some(b"new")),
            ("var/cache/.wh.x", Some(b"")),
            ("tmp/.wh.gone", Some(b"")),
        ]);
        let fs = stack([base, top], None);
        assert_eq!(fs.content("etc/os-release"), Some(&b"ID=alpine\n"[..]));
        assert!(
            fs.meta("opt/app/old.txt").is_none(),
            "opaque dir hides lower files"
        );
        assert!(
            fs.meta("opt/app/new.txt").is_some(),
            "but keeps the layer's own"
        );
        assert!(fs.meta("var/cache/x").is_none() && fs.meta("var/cache/x/y").is_none());
        assert!(fs.meta("tmp/gone").is_none());
        assert!(fs.meta("var/cache").is_some());
        assert_eq!(fs.kept().len(), 1);
    }

    #[test]
    fn a_file_replacing_a_directory_removes_what_was_under_it() {
        let base = read(&[("a/", None), ("a/b", Some(b"b"))]);
        let top = read(&[("a", Some(b"now a file"))]);
        let fs = stack([base, top], None);
        assert!(fs.meta("a/b").is_none());
        assert_eq!(fs.meta("a").unwrap().kind, FileKind::Regular);
        assert_eq!(fs.meta("a").unwrap().size, 10);
    }

    #[test]
    fn gzip_layers_are_read_too() {
        use std::io::Write as _;
        let tar = tar_of(&[("etc/os-release", Some(b"ID=x\n"))]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let options = ReadOptions {
            keep: &keep_os_release,
            digests: DigestSet::ALL,
            limits: ReadLimits::default(),
        };
        let delta = read_layer(&gz.finish().unwrap()[..], "gz", &options).unwrap();
        assert_eq!(delta.contents["etc/os-release"].as_slice(), b"ID=x\n");
        assert!(delta.entries[0].1.digests.sha256.is_some());
    }

    #[test]
    fn a_truncated_layer_is_an_error_not_a_panic() {
        let tar = tar_of(&[("etc/os-release", Some(&[b'x'; 2000]))]);
        let options = ReadOptions {
            keep: &keep_os_release,
            digests: DigestSet::NONE,
            limits: ReadLimits::default(),
        };
        assert!(read_layer(&tar[..700], "cut", &options).is_err());
    }

    #[test]
    fn hard_links_share_their_targets_kept_bytes() {
        let status = vec![b'x'; 64 * 1024];
        let links: Vec<String> = (0..8)
            .map(|i| format!("var/lib/dpkg/status.d/l{i}"))
            .collect();
        let names: Vec<&str> = links.iter().map(String::as_str).collect();
        let tar = tar_with_links("var/lib/dpkg/status", &status, &names);
        let keep = |_: &str| true;
        let options = ReadOptions {
            keep: &keep,
            digests: DigestSet::NONE,
            // Room for one copy only: the links must not count again.
            limits: ReadLimits {
                max_file_bytes: status.len() as u64,
                max_kept_bytes: status.len() as u64,
            },
        };
        let fs = stack([read_layer(&tar[..], "links", &options).unwrap()], None);
        let target = fs.content("var/lib/dpkg/status").unwrap();
        for link in &links {
            let shared = fs.content(link).unwrap();
            assert_eq!(fs.meta(link).unwrap().size, status.len() as u64);
            assert!(
                std::ptr::eq(shared, target),
                "{link} shares the target's bytes instead of a copy"
            );
        }
    }

    #[test]
    fn a_kept_file_over_the_limit_stops_the_read_with_an_error_naming_it() {
        // 4 MiB of zeros compresses to a few KiB: the read must stop just past 1 MiB.
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(4 << 20);
        header.set_mode(0o644);
        tar.append_data(
            &mut header,
            "var/lib/dpkg/info/x.md5sums",
            std::io::repeat(0).take(4 << 20),
        )
        .unwrap();
        let layer = gzip(&tar.into_inner().unwrap());
        let keep = |path: &str| path.ends_with(".md5sums");
        let options = ReadOptions {
            keep: &keep,
            digests: DigestSet::ALL,
            limits: ReadLimits {
                max_file_bytes: 1 << 20,
                max_kept_bytes: 8 << 20,
            },
        };
        let error = read_layer(&layer[..], "layer.tar", &options).unwrap_err();
        assert!(
            matches!(&error, ImageError::Limit { kind: LimitKind::File, path, .. } if path == "var/lib/dpkg/info/x.md5sums"),
            "{error}"
        );
    }

    #[test]
    fn a_truncated_gzip_layer_says_truncated_gzip() {
        let tool = vec![7u8; 30_000];
        let tar = tar_of(&[
            ("etc/os-release", Some(b"ID=x\n")),
            ("usr/bin/tool", Some(&tool)),
        ]);
        let layer = gzip(&tar);
        let options = ReadOptions {
            keep: &keep_os_release,
            digests: DigestSet::NONE,
            limits: ReadLimits::default(),
        };
        for cut in [layer.len() / 4, layer.len() / 2] {
            let error = read_layer(&layer[..cut], "layer.tar.gz", &options).unwrap_err();
            assert!(
                error.to_string().contains("truncated gzip"),
                "cut at {cut}: {error}"
            );
        }
    }

    /// A tar of one GNU sparse entry `path` of `size` bytes: 512 bytes of data, then a hole.
    fn sparse_tar(path: &str, size: u64) -> Vec<u8> {
        fn octal(field: &mut [u8], value: u64) {
            let width = field.len();
            field.copy_from_slice(format!("{value:0width$o}").as_bytes());
        }
        let mut header = tar::Header::new_gnu();
        header.set_path(path).unwrap();
        header.set_entry_type(tar::EntryType::GNUSparse);
        header.set_size(512);
        header.set_mode(0o644);
        let gnu = header.as_gnu_mut().unwrap();
        octal(&mut gnu.sparse[0].offset, 0);
        octal(&mut gnu.sparse[0].numbytes, 512);
        octal(&mut gnu.sparse[1].offset, size);
        octal(&mut gnu.sparse[1].numbytes, 0);
        octal(&mut gnu.realsize, size);
        header.set_cksum();
        let mut bytes = header.as_bytes().to_vec();
        bytes.extend_from_slice(&[b'x'; 512]);
        bytes.extend_from_slice(&[0; 1024]);
        bytes
    }

    #[test]
    fn a_sparse_entry_is_a_regular_file_of_its_real_size_and_its_hole_is_not_expanded() {
        let size = 20u64 << 30;
        let tar = sparse_tar("opt/disk.img", size);
        let options = ReadOptions {
            keep: &keep_os_release,
            digests: DigestSet::NONE,
            limits: ReadLimits::default(),
        };
        let started = std::time::Instant::now();
        let fs = stack([read_layer(&tar[..], "sparse", &options).unwrap()], None);
        let elapsed = started.elapsed();
        let meta = fs.meta("opt/disk.img").unwrap();
        assert_eq!((&meta.kind, meta.size), (&FileKind::Regular, size));
        assert!(elapsed.as_secs_f64() < 5.0, "took {elapsed:?}");
    }
}

//! Filesystems read from directories on this host: a root filesystem (an unpacked image, a
//! chroot) and the layer directories of the Docker daemon's `overlay2` storage, stacked with
//! overlayfs' own whiteouts (a character device 0/0 hides a lower path; a directory with the
//! `trusted.overlay.opaque` (or `user.overlay.opaque`) attribute `y` hides what lower layers had
//! in it). Symlinks are never followed. A regular file is opened only when a scanner wants its
//! content or its digests were asked for up front; otherwise its size comes from its metadata and
//! its path on disk is remembered, so [`ImageFs::compute_digests`] can hash it later if needed.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use super::layers::{LayerDelta, stack};
use super::{Budget, Digests, FileKind, FileMeta, ImageError, ImageFs, ReadOptions};

/// The extended attributes overlayfs marks opaque directories with (the second when mounted with
/// `userxattr`, as rootless setups do).
const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

/// How a directory tree's special entries are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TreeKind {
    /// A plain root filesystem: device files are devices.
    Root,
    /// One `overlay2` layer: a 0/0 character device is a whiteout, an opaque attribute hides the
    /// lower layers' entries of its directory.
    OverlayLayer,
}

/// Reads the directory `root` as an image filesystem.
pub fn read_rootfs(root: &Path, options: &ReadOptions<'_>) -> Result<ImageFs, ImageError> {
    let mut budget = Budget::new(options.limits);
    let delta = read_tree(root, options, TreeKind::Root, &mut budget)?;
    Ok(stack([delta], None))
}

/// Reads an image from its `overlay2` layer directories (lowest layer first) and its
/// configuration JSON, as the daemon reports them (`slipway_docker::ImageStorage`).
pub fn read_layer_dirs(
    layer_dirs: &[PathBuf],
    config: Option<Vec<u8>>,
    options: &ReadOptions<'_>,
) -> Result<ImageFs, ImageError> {
    let mut budget = Budget::new(options.limits);
    let deltas = layer_dirs
        .iter()
        .map(|dir| read_tree(dir, options, TreeKind::OverlayLayer, &mut budget))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(stack(deltas, config))
}

fn read_tree(
    root: &Path,
    options: &ReadOptions<'_>,
    kind: TreeKind,
    budget: &mut Budget,
) -> Result<LayerDelta, ImageError> {
    let io = |path: &Path| {
        let what = path.display().to_string();
        move |source| ImageError::Io { what, source }
    };
    let metadata = std::fs::metadata(root).map_err(io(root))?;
    if !metadata.is_dir() {
        return Err(ImageError::Format {
            what: root.display().to_string(),
            expected: "a directory".to_owned(),
            found: "a file".to_owned(),
        });
    }
    let hash_now = options.digests != super::DigestSet::NONE;
    let mut delta = LayerDelta::default();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let mut children: Vec<_> = std::fs::read_dir(&dir)
            .map_err(io(&dir))?
            .collect::<Result<_, _>>()
            .map_err(io(&dir))?;
        children.sort_by_key(std::fs::DirEntry::file_name);
        for child in children {
            let full = child.path();
            let Ok(relative) = full.strip_prefix(root) else {
                continue;
            };
            let path = relative.to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&full).map_err(io(&full))?;
            let file_type = meta.file_type();
            let mode = meta.mode() & 0o7777;
            let entry = if file_type.is_dir() {
                if kind == TreeKind::OverlayLayer && is_opaque(&full) {
                    delta.opaque.push(path.clone());
                }
                pending.push(full.clone());
                FileMeta {
                    kind: FileKind::Directory,
                    mode,
                    size: 0,
                    digests: Digests::default(),
                }
            } else if file_type.is_symlink() {
                let target = std::fs::read_link(&full).map_err(io(&full))?;
                FileMeta {
                    kind: FileKind::Symlink(target.to_string_lossy().into_owned()),
                    mode,
                    size: 0,
                    digests: Digests::default(),
                }
            } else if file_type.is_file() {
                let keep = (options.keep)(&path);
                let (size, digests) = if keep || hash_now {
                    let mut file = std::fs::File::open(&full).map_err(io(&full))?;
                    let (size, digests, kept) = budget.read_file(
                        &mut file,
                        &root.display().to_string(),
                        &path,
                        meta.len(),
                        options.digests,
                        keep,
                    )?;
                    if let Some(bytes) = kept {
                        delta.contents.insert(path.clone(), Arc::new(bytes));
                    }
                    (size, digests)
                } else {
                    (meta.len(), Digests::default())
                };
                delta.origins.insert(path.clone(), full.clone());
                FileMeta {
                    kind: FileKind::Regular,
                    mode,
                    size,
                    digests,
                }
            } else if kind == TreeKind::OverlayLayer
                && file_type.is_char_device()
                && meta.rdev() == 0
            {
                delta.whiteouts.push(path);
                continue;
            } else {
                debug_assert!(
                    file_type.is_block_device()
                        || file_type.is_char_device()
                        || file_type.is_fifo()
                        || file_type.is_socket()
                );
                FileMeta {
                    kind: FileKind::Special,
                    mode,
                    size: 0,
                    digests: Digests::default(),
                }
            };
            delta.entries.push((path, entry));
        }
    }
    Ok(delta)
}

/// Whether overlayfs marks the directory `path` opaque.
fn is_opaque(path: &Path) -> bool {
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    OPAQUE_XATTRS.iter().any(|name| {
        let Ok(c_name) = CString::new(*name) else {
            return false;
        };
        let mut value = [0u8; 4];
        // SAFETY: both strings are NUL-terminated and outlive the call; the buffer's length is
        // passed with it, and lgetxattr writes at most that many bytes.
        let n = unsafe {
            libc::lgetxattr(
                c_path.as_ptr(),
                c_name.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        n == 1 && value[0] == b'y'
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{DigestSet, LimitKind, ReadLimits};
    use crate::package::DigestAlgorithm;

    fn scratch(name: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("slipway-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        root
    }

    #[test]
    fn a_directory_is_read_with_symlinks_unfollowed() {
        let root = scratch("rootfs");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/os-release"), "ID=debian\n").unwrap();
        std::os::unix::fs::symlink("/etc/os-release", root.join("os-link")).unwrap();
        let keep = |p: &str| p == "etc/os-release";
        let options = ReadOptions {
            keep: &keep,
            digests: DigestSet::ALL,
            limits: ReadLimits::default(),
        };
        let fs = read_rootfs(&root, &options).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(fs.content("etc/os-release"), Some(&b"ID=debian\n"[..]));
        assert_eq!(fs.meta("etc").unwrap().kind, FileKind::Directory);
        assert_eq!(
            fs.meta("os-link").unwrap().kind,
            FileKind::Symlink("/etc/os-release".into())
        );
        assert_eq!(fs.meta("etc/os-release").unwrap().size, 10);
        assert!(fs.meta("etc/os-release").unwrap().digests.md5.is_some());
    }

    #[test]
    fn digests_not_asked_for_up_front_are_computed_later_from_disk() {
        let root = scratch("rootfs-lazy");
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::write(root.join("usr/bin/hello"), "hello\n").unwrap();
        std::fs::write(root.join("usr/bin/other"), "other\n").unwrap();
        let keep = |_: &str| false;
        let options = ReadOptions {
            keep: &keep,
            digests: DigestSet::NONE,
            limits: ReadLimits::default(),
        };
        let mut fs = read_rootfs(&root, &options).unwrap();
        let hello = fs.meta("usr/bin/hello").unwrap();
        assert_eq!((hello.size, hello.digests.md5), (6, None));
        let computed = fs
            .compute_digests(&[("usr/bin/hello".to_owned(), DigestAlgorithm::Md5)])
            .unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(computed, 1);
        assert_eq!(
            fs.meta("usr/bin/hello")
                .unwrap()
                .digests
                .hex(DigestAlgorithm::Md5)
                .unwrap(),
            "b1946ac92492d2347c6235b4d2611184"
        );
        assert_eq!(
            fs.meta("usr/bin/other").unwrap().digests.md5,
            None,
            "only what was asked"
        );
    }

    #[test]
    fn overlay_whiteouts_and_opaque_directories_hide_lower_layers() {
        let lower = scratch("overlay-lower");
        let upper = scratch("overlay-upper");
        std::fs::create_dir_all(lower.join("opt/app")).unwrap();
        std::fs::write(lower.join("opt/app/old"), "old").unwrap();
        std::fs::write(lower.join("gone"), "gone").unwrap();
        std::fs::create_dir_all(upper.join("opt/app")).unwrap();
        std::fs::write(upper.join("opt/app/new"), "new").unwrap();
        let whiteout = CString::new(upper.join("gone").as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path; mknod creates a 0/0 character device (needs root, which
        // the tests have, as overlay2 itself does).
        let made = unsafe { libc::mknod(whiteout.as_ptr(), libc::S_IFCHR, 0) };
        let dir = CString::new(upper.join("opt/app").as_os_str().as_bytes()).unwrap();
        // SAFETY: NUL-terminated strings and a one-byte value with its length.
        let marked = unsafe {
            libc::lsetxattr(
                dir.as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                b"y".as_ptr().cast(),
                1,
                0,
            )
        };
        assert_eq!(
            (made, marked),
            (0, 0),
            "mknod and setxattr need root: {}",
            std::io::Error::last_os_error()
        );
        let keep = |_: &str| false;
        let options = ReadOptions {
            keep: &keep,
            digests: DigestSet::NONE,
            limits: ReadLimits::default(),
        };
        let fs = read_layer_dirs(
            &[lower.clone(), upper.clone()],
            Some(b"{}".to_vec()),
            &options,
        )
        .unwrap();
        std::fs::remove_dir_all(&lower).unwrap();
        std::fs::remove_dir_all(&upper).unwrap();
        assert!(
            fs.meta("gone").is_none(),
            "the whiteout hides the lower file and is no file itself"
        );
        assert!(
            fs.meta("opt/app/old").is_none(),
            "the opaque directory hides lower entries"
        );
        assert_eq!(fs.meta("opt/app/new").unwrap().size, 3);
        assert_eq!(fs.config(), Some(&b"{}"[..]));
    }

    #[test]
    fn a_sparse_20_gib_md5sums_stops_the_read_at_the_limit_at_once() {
        let root = scratch("rootfs-sparse");
        std::fs::create_dir_all(root.join("var/lib/dpkg/info")).unwrap();
        let path = root.join("var/lib/dpkg/info/big.md5sums");
        // A hole: no disk blocks, 20 GiB of zeros to a reader.
        std::fs::File::create(&path)
            .unwrap()
            .set_len(20 << 30)
            .unwrap();
        let keep = |p: &str| p.ends_with(".md5sums");
        let options = ReadOptions {
            keep: &keep,
            digests: DigestSet::ALL,
            limits: ReadLimits {
                max_file_bytes: 1 << 20,
                max_kept_bytes: 4 << 20,
            },
        };
        let started = std::time::Instant::now();
        let error = read_rootfs(&root, &options).unwrap_err();
        let elapsed = started.elapsed();
        std::fs::remove_dir_all(&root).unwrap();
        assert!(
            matches!(&error, ImageError::Limit { kind: LimitKind::File, path, .. } if path == "var/lib/dpkg/info/big.md5sums"),
            "{error}"
        );
        assert!(elapsed.as_secs_f64() < 5.0, "took {elapsed:?}");
    }
}

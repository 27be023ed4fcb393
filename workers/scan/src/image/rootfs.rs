//! A root filesystem directory (an unpacked image, a chroot) read as an [`ImageFs`]: every path's
//! metadata, symlinks not followed, kept files read into memory.

use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::Path;

use super::layers::{LayerDelta, stack};
use super::{Digests, FileKind, FileMeta, ImageError, ImageFs, ReadOptions, digest_stream};

/// Reads the directory `root` as an image filesystem.
pub fn read_rootfs(root: &Path, options: &ReadOptions<'_>) -> Result<ImageFs, ImageError> {
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
                let mut file = std::fs::File::open(&full).map_err(io(&full))?;
                let (size, digests, kept) =
                    digest_stream(&mut file, options.digests, keep).map_err(io(&full))?;
                if let Some(bytes) = kept {
                    delta.contents.insert(path.clone(), bytes);
                }
                FileMeta {
                    kind: FileKind::Regular,
                    mode,
                    size,
                    digests,
                }
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
    Ok(stack([delta], None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::DigestSet;

    #[test]
    fn a_directory_is_read_with_symlinks_unfollowed() {
        let root = std::env::temp_dir().join(format!("slipway-rootfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/os-release"), "ID=debian\n").unwrap();
        std::os::unix::fs::symlink("/etc/os-release", root.join("os-link")).unwrap();
        let keep = |p: &str| p == "etc/os-release";
        let options = ReadOptions {
            keep: &keep,
            digests: DigestSet::ALL,
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
}

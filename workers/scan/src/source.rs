//! Where the image to scan comes from (the I/O shell around [`crate::image`]): an image of the
//! local Docker daemon by name or digest, an image archive file or stdin, or a root filesystem
//! directory.
//!
//! A daemon image is read the fastest way this host allows: with the `overlay2` storage driver
//! and its layer directories readable (the worker runs on the daemon's host, as root), straight
//! from those directories, nothing copied and only the package-owned files hashed later
//! ([`ImageFs::compute_digests`]); otherwise from the daemon's export stream (what `docker save`
//! writes), read as it arrives, every file hashed as it passes.

use std::path::PathBuf;

use futures_util::StreamExt as _;
use slipway_docker::{DockerEngine, DockerError, ImageStorage};

use crate::image::archive::read_archive;
use crate::image::rootfs::{read_layer_dirs, read_rootfs};
use crate::image::{DigestSet, ImageError, ImageFs, ReadLimits, ReadOptions};
use crate::inventory::wanted;

/// What `slipway scan TARGET` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `-`: an image archive on stdin.
    Stdin,
    /// An image archive file (`docker save`, OCI layout tar).
    Archive(PathBuf),
    /// A root filesystem directory.
    Directory(PathBuf),
    /// An image of the local Docker daemon: `name:tag`, `name@sha256:…` or an image id.
    Image(String),
}

impl Target {
    /// `-` is stdin; an existing directory or file is one; anything else names a daemon image.
    pub fn parse(argument: &str) -> Target {
        let path = std::path::Path::new(argument);
        if argument == "-" {
            Target::Stdin
        } else if path.is_dir() {
            Target::Directory(path.to_owned())
        } else if path.is_file() {
            Target::Archive(path.to_owned())
        } else {
            Target::Image(argument.to_owned())
        }
    }
}

/// How the image's files were reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// The daemon's overlay2 layer directories.
    LayerDirectories,
    /// The daemon's image export stream.
    ExportStream,
    /// An image archive.
    Archive,
    /// A root filesystem directory.
    Directory,
}

/// An image's filesystem and what is known about where it came from.
#[derive(Debug)]
pub struct ReadImage {
    /// The stacked filesystem.
    pub fs: ImageFs,
    /// How it was read.
    pub access: Access,
    /// The daemon's image id, for daemon images.
    pub image_id: Option<String>,
    /// `repository@sha256:…` digests of a daemon image.
    pub repo_digests: Vec<String>,
}

/// Why an image could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The daemon has no such image.
    #[error("the Docker daemon has no image {0}")]
    NoSuchImage(String),
    /// The daemon failed.
    #[error(transparent)]
    Docker(#[from] DockerError),
    /// The image's files could not be read or are not an image.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The reading task died.
    #[error("reading the image stopped: {0}")]
    Task(String),
}

impl SourceError {
    /// Whether trying again later may succeed (the daemon was unreachable or busy, a file
    /// vanished under the reader), rather than the image itself being at fault.
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::NoSuchImage(_) => false,
            SourceError::Docker(e) => e.is_transient(),
            SourceError::Image(ImageError::Io { .. }) | SourceError::Task(_) => true,
            SourceError::Image(ImageError::Format { .. } | ImageError::Limit { .. }) => false,
        }
    }
}

/// Reads an archive file, stdin or a directory (blocking). `digests` are computed for every file
/// of an archive as it streams past (a directory's are computed later, on demand); what is kept
/// in memory stays within `limits`.
pub fn read_local(
    target: &Target,
    digests: DigestSet,
    limits: ReadLimits,
) -> Result<ReadImage, SourceError> {
    let options = ReadOptions {
        keep: &wanted,
        digests,
        limits,
    };
    let (fs, access) = match target {
        Target::Stdin => (
            read_archive(std::io::stdin().lock(), "stdin", &options)?,
            Access::Archive,
        ),
        Target::Archive(path) => {
            let what = path.display().to_string();
            let file = std::fs::File::open(path).map_err(|source| ImageError::Io {
                what: what.clone(),
                source,
            })?;
            (read_archive(file, &what, &options)?, Access::Archive)
        }
        Target::Directory(path) => (
            read_rootfs(
                path,
                &ReadOptions {
                    digests: DigestSet::NONE,
                    ..options
                },
            )?,
            Access::Directory,
        ),
        Target::Image(name) => {
            return Err(SourceError::Task(format!(
                "{name} is a daemon image: read it with read_daemon_image"
            )));
        }
    };
    Ok(ReadImage {
        fs,
        access,
        image_id: None,
        repo_digests: Vec::new(),
    })
}

/// Reads the local daemon's image `reference`: from its layer directories when possible, else
/// from its export stream with `stream_digests` computed as it passes; what is kept in memory
/// stays within `limits`.
pub async fn read_daemon_image(
    engine: &DockerEngine,
    reference: &str,
    stream_digests: DigestSet,
    limits: ReadLimits,
) -> Result<ReadImage, SourceError> {
    let storage = engine
        .image_storage(reference)
        .await?
        .ok_or_else(|| SourceError::NoSuchImage(reference.to_owned()))?;
    if layer_dirs_readable(&storage) {
        let ImageStorage {
            id,
            repo_digests,
            config_json,
            layer_dirs,
            ..
        } = storage;
        let fs = slipway_common::telemetry::spawn_blocking_in_span(move || {
            let options = ReadOptions {
                keep: &wanted,
                digests: DigestSet::NONE,
                limits,
            };
            read_layer_dirs(&layer_dirs, Some(config_json), &options)
        })
        .await
        .map_err(|e| SourceError::Task(e.to_string()))??;
        return Ok(ReadImage {
            fs,
            access: Access::LayerDirectories,
            image_id: Some(id),
            repo_digests,
        });
    }
    tracing::debug!(image = reference, driver = %storage.driver, "layer directories not readable here: reading the export stream");
    read_export_stream(engine, storage, stream_digests, limits).await
}

/// Reads the local daemon's image `reference` from its export stream (what `docker save`
/// writes, whatever the storage driver), with `digests` computed as each file passes and what is
/// kept within `limits`.
pub async fn read_exported_image(
    engine: &DockerEngine,
    reference: &str,
    digests: DigestSet,
    limits: ReadLimits,
) -> Result<ReadImage, SourceError> {
    let storage = engine
        .image_storage(reference)
        .await?
        .ok_or_else(|| SourceError::NoSuchImage(reference.to_owned()))?;
    read_export_stream(engine, storage, digests, limits).await
}

async fn read_export_stream(
    engine: &DockerEngine,
    storage: ImageStorage,
    digests: DigestSet,
    limits: ReadLimits,
) -> Result<ReadImage, SourceError> {
    // Export by id: the name could move to another image while the stream is read.
    let stream = engine
        .export_image(&storage.id)
        .map(|chunk| chunk.map_err(std::io::Error::other));
    let reader = tokio_util::io::StreamReader::new(stream);
    let handle = tokio::runtime::Handle::current();
    let what = storage.id.clone();
    let fs = slipway_common::telemetry::spawn_blocking_in_span(move || {
        let bridge = tokio_util::io::SyncIoBridge::new_with_handle(reader, handle);
        let options = ReadOptions {
            keep: &wanted,
            digests,
            limits,
        };
        read_archive(bridge, &what, &options)
    })
    .await
    .map_err(|e| SourceError::Task(e.to_string()))??;
    Ok(ReadImage {
        fs,
        access: Access::ExportStream,
        image_id: Some(storage.id),
        repo_digests: storage.repo_digests,
    })
}

/// Whether this process can read the image's overlay2 layer directories.
fn layer_dirs_readable(storage: &ImageStorage) -> bool {
    storage.driver == "overlay2"
        && !storage.layer_dirs.is_empty()
        && storage
            .layer_dirs
            .iter()
            .all(|dir| std::fs::read_dir(dir).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_told_apart_by_what_exists() {
        let dir = std::env::temp_dir();
        assert_eq!(Target::parse("-"), Target::Stdin);
        assert_eq!(
            Target::parse(&dir.display().to_string()),
            Target::Directory(dir.clone())
        );
        assert_eq!(
            Target::parse("127.0.0.1:5000/team/app:1"),
            Target::Image("127.0.0.1:5000/team/app:1".to_owned())
        );
    }
}

//! Where a local image's files can be read without running it, for the scan worker: the layer
//! directories the daemon's `overlay2` storage driver keeps on this host (fast: nothing is copied),
//! or the image's export stream (`GET /images/{name}/get`, what `docker save` writes), which works
//! with any driver and any daemon.

use std::path::PathBuf;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};

use crate::{DockerEngine, DockerError};

/// What the daemon says about a local image's storage and configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageStorage {
    /// The image id, `sha256:…`.
    pub id: String,
    /// `repository@sha256:…` digests the image is known by in registries.
    pub repo_digests: Vec<String>,
    /// The image configuration as JSON, `{"config": {"User": …, "Labels": {…}, …}}` (the shape of
    /// the `config` object of an image configuration blob).
    pub config_json: Vec<u8>,
    /// The storage driver's name (`overlay2`, `vfs`, `btrfs`…).
    pub driver: String,
    /// With `overlay2`: the layers' `diff` directories on this host, lowest layer first.
    pub layer_dirs: Vec<PathBuf>,
}

/// A byte stream of an image archive.
pub type ArchiveStream = Pin<Box<dyn Stream<Item = Result<Bytes, DockerError>> + Send>>;

impl DockerEngine {
    /// Where the local image `reference` (name:tag, `name@sha256:…` or id) keeps its files, or
    /// `None` when the daemon has no such image.
    pub async fn image_storage(
        &self,
        reference: &str,
    ) -> Result<Option<ImageStorage>, DockerError> {
        let image = match self
            .call("inspect image", self.docker.inspect_image(reference))
            .await
        {
            Ok(image) => image,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let unexpected = |found: &str| DockerError::UnexpectedResponse {
            operation: "inspect image",
            expected: format!("the id and storage of image {reference}"),
            found: found.to_owned(),
        };
        let id = image
            .id
            .ok_or_else(|| unexpected("an answer without `Id`"))?;
        let config = serde_json::json!({ "config": image.config });
        let config_json = serde_json::to_vec(&config)
            .map_err(|e| unexpected(&format!("a config that cannot be encoded: {e}")))?;
        let (driver, layer_dirs) = match image.graph_driver {
            Some(driver) => {
                let dirs = if driver.name == "overlay2" {
                    overlay_layer_dirs(
                        driver.data.get("LowerDir").map(String::as_str),
                        driver.data.get("UpperDir").map(String::as_str),
                    )
                } else {
                    Vec::new()
                };
                (driver.name, dirs)
            }
            None => (String::new(), Vec::new()),
        };
        Ok(Some(ImageStorage {
            id,
            repo_digests: image.repo_digests.unwrap_or_default(),
            config_json,
            driver,
            layer_dirs,
        }))
    }

    /// The local image `reference` as an image archive (Docker's `manifest.json` layout, layers
    /// uncompressed), streamed as the daemon writes it. The stream has no overall time limit (a
    /// large image takes long); each chunk must arrive within the API time limit.
    pub fn export_image(&self, reference: &str) -> ArchiveStream {
        let limit = self.settings.api_timeout;
        let stream = self.client_with_timeout(limit).export_image(reference);
        let reference = reference.to_owned();
        Box::pin(stream.map(move |chunk| {
            chunk.map_err(|e| {
                let error = DockerError::from_bollard("export image", e).with_timeout(limit);
                match error {
                    DockerError::Api { status: 404, .. } => DockerError::Api {
                        operation: "export image",
                        status: 404,
                        message: format!("no such image: {reference}"),
                    },
                    other => other,
                }
            })
        }))
    }
}

/// The layer directories of an overlay2 image, lowest first: `LowerDir` lists the lower layers
/// top first, separated by `:`; `UpperDir` is the top layer. A one-layer image has no `LowerDir`.
fn overlay_layer_dirs(lower: Option<&str>, upper: Option<&str>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = lower
        .unwrap_or_default()
        .split(':')
        .filter(|d| !d.is_empty())
        .rev()
        .map(PathBuf::from)
        .collect();
    dirs.extend(upper.filter(|d| !d.is_empty()).map(PathBuf::from));
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_layers_are_listed_lowest_first() {
        assert_eq!(
            overlay_layer_dirs(Some("/l/c/diff:/l/b/diff:/l/a/diff"), Some("/l/d/diff")),
            ["/l/a/diff", "/l/b/diff", "/l/c/diff", "/l/d/diff"].map(PathBuf::from)
        );
        assert_eq!(
            overlay_layer_dirs(None, Some("/l/only/diff")),
            [PathBuf::from("/l/only/diff")]
        );
        assert!(overlay_layer_dirs(None, None).is_empty());
    }
}

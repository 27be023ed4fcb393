//! Image archives, read in one pass: `docker save` / Engine image export (`manifest.json`,
//! `<id>/layer.tar`, `<config>.json`) and the OCI layout Docker 25+ writes (`blobs/sha256/<hex>`,
//! still with a `manifest.json`). Docker writes `manifest.json` after the layers, so each layer is
//! read into a [`LayerDelta`] as it streams past and the deltas are stacked once the manifest
//! says their order. Nothing is written to disk.

use std::collections::HashMap;
use std::io::Read;

use serde::Deserialize;

use super::layers::{LayerDelta, read_layer, stack};
use super::{ImageError, ImageFs, ReadOptions, normalize};

/// Largest JSON document (manifest, configuration) read from an archive.
const MAX_JSON_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    layers: Vec<String>,
}

/// Reads an image archive from `reader` (`what` names it in errors).
pub fn read_archive(
    reader: impl Read,
    what: &str,
    options: &ReadOptions<'_>,
) -> Result<ImageFs, ImageError> {
    let io = |source| ImageError::Io {
        what: what.to_owned(),
        source,
    };
    let mut archive = tar::Archive::new(reader);
    let mut layers: HashMap<String, LayerDelta> = HashMap::new();
    let mut documents: HashMap<String, Vec<u8>> = HashMap::new();
    for entry in archive.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = normalize(&String::from_utf8_lossy(&entry.path_bytes()));
        let size = entry.header().size().unwrap_or(0);
        if path.ends_with(".json") || path == "repositories" || size <= 4096 {
            // Small documents: manifest, configurations, OCI index (blobs may be configs too).
            if size > MAX_JSON_BYTES {
                return Err(ImageError::Format {
                    what: what.to_owned(),
                    expected: format!("a JSON document of at most {MAX_JSON_BYTES} bytes"),
                    found: format!("{path} of {size} bytes"),
                });
            }
            let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            entry.read_to_end(&mut bytes).map_err(io)?;
            if looks_like_tar(&bytes) {
                let delta = read_layer(&bytes[..], &format!("{what}: {path}"), options)?;
                layers.insert(path, delta);
            } else {
                documents.insert(path, bytes);
            }
            continue;
        }
        // Anything else is a layer (a tar, possibly gzip-compressed) or an unrelated blob.
        let delta = read_layer(&mut entry, &format!("{what}: {path}"), options);
        match delta {
            Ok(delta) => {
                layers.insert(path, delta);
            }
            Err(error) => {
                // An OCI blob that is a manifest or config larger than 4 KiB is JSON, not a tar.
                tracing::debug!(%path, %error, "archive entry is not a layer");
            }
        }
    }
    let manifest = documents
        .get("manifest.json")
        .ok_or_else(|| ImageError::Format {
            what: what.to_owned(),
            expected: "an image archive with a manifest.json (docker save or OCI layout)"
                .to_owned(),
            found: "no manifest.json".to_owned(),
        })?;
    let entries: Vec<ManifestEntry> =
        serde_json::from_slice(manifest).map_err(|e| ImageError::Format {
            what: what.to_owned(),
            expected: "manifest.json as a list of {Config, Layers}".to_owned(),
            found: e.to_string(),
        })?;
    let [entry] = entries.as_slice() else {
        return Err(ImageError::Format {
            what: what.to_owned(),
            expected: "an archive of exactly one image".to_owned(),
            found: format!("{} images in manifest.json", entries.len()),
        });
    };
    let config = documents.get(&normalize(&entry.config)).cloned();
    let mut ordered = Vec::with_capacity(entry.layers.len());
    for layer in &entry.layers {
        // The same layer may be listed twice (an empty layer repeated): read once, applied once
        // per listing is harmless, so an absent second copy is taken as empty.
        let key = normalize(layer);
        match layers.remove(&key) {
            Some(delta) => ordered.push(delta),
            None if entry.layers.iter().filter(|l| normalize(l) == key).count() > 1 => {}
            None => {
                return Err(ImageError::Format {
                    what: what.to_owned(),
                    expected: format!("the layer {layer} that manifest.json lists"),
                    found: "no such entry (or not a tar)".to_owned(),
                });
            }
        }
    }
    Ok(stack(ordered, config))
}

/// A POSIX/GNU tar has `ustar` at offset 257 of its first header; gzip starts with 1f 8b.
fn looks_like_tar(bytes: &[u8]) -> bool {
    bytes.get(257..262) == Some(b"ustar") || bytes.starts_with(&[0x1f, 0x8b])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::DigestSet;
    use crate::image::layers::tar_of;

    fn keep_all(_: &str) -> bool {
        true
    }

    /// A `docker save`-shaped archive with the manifest last, as Docker writes it.
    fn archive(layers: &[Vec<u8>], order: &[usize]) -> Vec<u8> {
        let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
        for (i, layer) in layers.iter().enumerate() {
            entries.push((format!("layer{i}/layer.tar"), layer.clone()));
        }
        entries.push(("cfg.json".into(), br#"{"config":{"User":"app"}}"#.to_vec()));
        let listed: Vec<String> = order
            .iter()
            .map(|i| format!("layer{i}/layer.tar"))
            .collect();
        let manifest =
            serde_json::json!([{"Config": "cfg.json", "RepoTags": [], "Layers": listed}]);
        entries.push(("manifest.json".into(), manifest.to_string().into_bytes()));
        let borrowed: Vec<(&str, Option<&[u8]>)> = entries
            .iter()
            .map(|(p, c)| (p.as_str(), Some(c.as_slice())))
            .collect();
        tar_of(&borrowed)
    }

    #[test]
    fn layers_are_stacked_in_the_manifests_order_not_the_archives() {
        let lower = tar_of(&[("etc/os-release", Some(b"ID=lower\n"))]);
        let upper = tar_of(&[("etc/os-release", Some(b"ID=upper\n"))]);
        // The upper layer comes first in the archive; the manifest says lower, then upper.
        let bytes = archive(&[upper, lower], &[1, 0]);
        let options = ReadOptions {
            keep: &keep_all,
            digests: DigestSet::NONE,
        };
        let fs = read_archive(&bytes[..], "test.tar", &options).unwrap();
        assert_eq!(fs.content("etc/os-release"), Some(&b"ID=upper\n"[..]));
        assert_eq!(fs.config(), Some(&br#"{"config":{"User":"app"}}"#[..]));
    }

    #[test]
    fn archives_without_a_manifest_or_with_missing_layers_are_refused() {
        let options = ReadOptions {
            keep: &keep_all,
            digests: DigestSet::NONE,
        };
        let plain = tar_of(&[("etc/os-release", Some(b"ID=x\n"))]);
        let error = read_archive(&plain[..], "rootfs.tar", &options).unwrap_err();
        assert!(error.to_string().contains("no manifest.json"), "{error}");
        let layer = tar_of(&[("a", Some(b"a"))]);
        let bytes = archive(&[layer], &[0, 3]);
        let error = read_archive(&bytes[..], "x.tar", &options).unwrap_err();
        assert!(error.to_string().contains("layer3/layer.tar"), "{error}");
    }
}

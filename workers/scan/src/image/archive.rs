//! Image archives, read in one pass: `docker save` / Engine image export (`manifest.json`,
//! `<id>/layer.tar`, `<config>.json`) and the OCI layout Docker 25+ writes (`blobs/sha256/<hex>`,
//! still with a `manifest.json`). Docker writes `manifest.json` after the layers, so each layer is
//! read into a [`LayerDelta`] as it streams past and the deltas are stacked once the manifest
//! says their order. Nothing is written to disk.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use serde::Deserialize;

use super::layers::{LayerDelta, read_layer_within, stack_listed};
use super::{Budget, ImageError, ImageFs, ReadOptions, normalize};

/// Largest JSON document (manifest, configuration) read from an archive; documents also count
/// against the read's total ([`super::ReadLimits::max_kept_bytes`]).
const MAX_JSON_BYTES: u64 = 64 * 1024 * 1024;

/// Most layers one image may list. Docker's overlay2 driver stacks at most 128 (its builder stops
/// at 125); the rest is headroom for other builders. Listing more is refused before any layer is
/// stacked, so a manifest repeating a layer 50,000 times costs a count, not 50,000 stackings.
pub const MAX_LAYERS: usize = 256;

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
    let mut budget = Budget::new(options.limits);
    let mut archive = tar::Archive::new(reader);
    let mut layers: HashMap<String, LayerDelta> = HashMap::new();
    // Entries that could not be read as layers, and why: an error only if the manifest lists one.
    let mut not_layers: HashMap<String, ImageError> = HashMap::new();
    let mut documents: HashMap<String, Vec<u8>> = HashMap::new();
    for entry in archive.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = normalize(&String::from_utf8_lossy(&entry.path_bytes()));
        let size = entry.size();
        if path.ends_with(".json") || path == "repositories" || size <= 4096 {
            // Small documents: manifest, configurations, OCI index (blobs may be configs too).
            let bytes = budget.read_document(&mut entry, what, &path, size, MAX_JSON_BYTES)?;
            if looks_like_tar(&bytes) {
                match read_layer_within(
                    &bytes[..],
                    &format!("{what}: {path}"),
                    options,
                    &mut budget,
                ) {
                    Ok(delta) => {
                        layers.insert(path, delta);
                    }
                    Err(error @ ImageError::Limit { .. }) => return Err(error),
                    Err(error) => {
                        not_layers.insert(path, error);
                    }
                }
            } else {
                documents.insert(path, bytes);
            }
            continue;
        }
        // Anything else is a layer (a tar, possibly gzip-compressed) or an unrelated blob.
        match read_layer_within(&mut entry, &format!("{what}: {path}"), options, &mut budget) {
            Ok(delta) => {
                layers.insert(path, delta);
            }
            // Past a limit the read stops: nothing after it is read.
            Err(error @ ImageError::Limit { .. }) => return Err(error),
            Err(error) => {
                // An OCI blob that is a manifest or config larger than 4 KiB is JSON, not a tar.
                tracing::debug!(%path, %error, "archive entry is not a layer");
                not_layers.insert(path, error);
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
    if entry.layers.len() > MAX_LAYERS {
        let distinct = entry
            .layers
            .iter()
            .map(|l| normalize(l))
            .collect::<HashSet<_>>()
            .len();
        return Err(ImageError::Format {
            what: what.to_owned(),
            expected: format!("an image of at most {MAX_LAYERS} layers in manifest.json"),
            found: format!("{} layers listed ({distinct} distinct)", entry.layers.len()),
        });
    }
    let config = documents.get(&normalize(&entry.config)).cloned();
    // Every listed layer must have been read; one listed twice is applied at both places (a
    // layer's delta is the same wherever it is listed).
    let mut ordered = Vec::with_capacity(entry.layers.len());
    for layer in &entry.layers {
        let key = normalize(layer);
        match layers.get(&key) {
            Some(delta) => ordered.push(delta),
            None => {
                return Err(match not_layers.remove(&key) {
                    Some(error @ ImageError::Format { .. }) => error,
                    Some(error) => ImageError::Format {
                        what: what.to_owned(),
                        expected: format!("the layer {layer} that manifest.json lists as a tar"),
                        found: error.to_string(),
                    },
                    None => ImageError::Format {
                        what: what.to_owned(),
                        expected: format!("the layer {layer} that manifest.json lists"),
                        found: "no such entry in the archive".to_owned(),
                    },
                });
            }
        }
    }
    Ok(stack_listed(ordered, config))
}

/// A POSIX/GNU tar has `ustar` at offset 257 of its first header; gzip starts with 1f 8b.
fn looks_like_tar(bytes: &[u8]) -> bool {
    bytes.get(257..262) == Some(b"ustar") || bytes.starts_with(&[0x1f, 0x8b])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::layers::tar_of;
    use crate::image::{DigestSet, ReadLimits};

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
            limits: ReadLimits::default(),
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
            limits: ReadLimits::default(),
        };
        let plain = tar_of(&[("etc/os-release", Some(b"ID=x\n"))]);
        let error = read_archive(&plain[..], "rootfs.tar", &options).unwrap_err();
        assert!(error.to_string().contains("no manifest.json"), "{error}");
        let layer = tar_of(&[("a", Some(b"a"))]);
        let bytes = archive(&[layer], &[0, 3]);
        let error = read_archive(&bytes[..], "x.tar", &options).unwrap_err();
        assert!(error.to_string().contains("layer3/layer.tar"), "{error}");
    }

    fn options() -> ReadOptions<'static> {
        ReadOptions {
            keep: &keep_all,
            digests: DigestSet::NONE,
            limits: ReadLimits::default(),
        }
    }

    #[test]
    fn a_missing_layer_listed_twice_is_an_error_not_an_empty_layer() {
        let layer = tar_of(&[("a", Some(b"a"))]);
        let bytes = archive(&[layer], &[0, 3, 3]);
        let error = read_archive(&bytes[..], "x.tar", &options()).unwrap_err();
        assert!(
            error.to_string().contains("layer3/layer.tar")
                && error.to_string().contains("no such entry"),
            "{error}"
        );
    }

    #[test]
    fn a_layer_listed_twice_is_applied_at_each_place() {
        let l = tar_of(&[("etc/os-release", Some(b"ID=l\n"))]);
        let m = tar_of(&[("etc/os-release", Some(b"ID=m\n"))]);
        let bytes = archive(&[l, m], &[0, 1, 0]);
        let fs = read_archive(&bytes[..], "x.tar", &options()).unwrap();
        assert_eq!(fs.content("etc/os-release"), Some(&b"ID=l\n"[..]));
    }

    #[test]
    fn a_manifest_repeating_one_layer_50000_times_is_refused_in_linear_time() {
        let layer = tar_of(&[("a", Some(b"a"))]);
        let order = vec![0; 50_000];
        let bytes = archive(&[layer], &order);
        let started = std::time::Instant::now();
        let error = read_archive(&bytes[..], "x.tar", &options()).unwrap_err();
        let elapsed = started.elapsed();
        assert!(
            error.to_string().contains("at most 256 layers")
                && error
                    .to_string()
                    .contains("50000 layers listed (1 distinct)"),
            "{error}"
        );
        assert!(elapsed.as_secs_f64() < 5.0, "took {elapsed:?}");
    }

    #[test]
    fn a_truncated_gzip_layer_is_named_as_such() {
        use std::io::Write as _;
        let tool = vec![7u8; 30_000];
        let tar = tar_of(&[
            ("etc/os-release", Some(b"ID=x\n")),
            ("usr/bin/tool", Some(&tool)),
        ]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let cut = gz[..gz.len() / 2].to_vec();
        // Big enough not to be taken for a small document.
        let padded_tar = tar_of(&[("pad", Some(&[1u8; 8192]))]);
        let bytes = archive(&[cut, padded_tar], &[1, 0]);
        let error = read_archive(&bytes[..], "x.tar", &options()).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("layer0/layer.tar") && text.contains("truncated gzip"),
            "{text}"
        );
    }

    #[test]
    fn small_documents_count_against_the_total_limit() {
        let mut entries: Vec<(String, Vec<u8>)> = (0..64)
            .map(|i| (format!("junk{i}"), vec![b'j'; 4096]))
            .collect();
        entries.push(("manifest.json".into(), b"[]".to_vec()));
        let borrowed: Vec<(&str, Option<&[u8]>)> = entries
            .iter()
            .map(|(p, c)| (p.as_str(), Some(c.as_slice())))
            .collect();
        let bytes = tar_of(&borrowed);
        let limited = ReadOptions {
            limits: ReadLimits {
                max_file_bytes: 1 << 20,
                max_kept_bytes: 64 * 1024,
            },
            ..options()
        };
        let error = read_archive(&bytes[..], "x.tar", &limited).unwrap_err();
        assert!(
            matches!(&error, ImageError::Limit { path, .. } if path == "junk16"),
            "{error}"
        );
    }
}

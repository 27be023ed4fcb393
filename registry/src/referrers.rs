//! Attaching a document to an image as an OCI 1.1 referrer, as supply-chain tools (oras, cosign,
//! Trivy) look for SBOMs: the document is uploaded as a blob; an image manifest with its
//! `artifactType`, the empty configuration and `subject` = the image's manifest is PUT by its
//! digest; and, because registries without the referrers API (Distribution 2.8 among them) cannot
//! list referrers, the OCI referrers tag schema is kept too: an index tagged `sha256-<hex of the
//! subject>` lists every referrer of that manifest, this one added (once) to what it listed.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use slipway_common::{Digest, ImageRef};

use super::{Manifest, RegistryClient, RegistryError};

/// Media type of an OCI image manifest.
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI index.
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The empty configuration of an artifact manifest (OCI 1.1): the two bytes `{}`.
const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
/// At most this many referrers are kept in a fallback index (its size stays bounded).
const MAX_REFERRERS: usize = 1_000;

/// The referrers tag of `subject`: `sha256-<hex>`.
pub fn referrers_tag(subject: &Digest) -> String {
    format!("{}-{}", subject.algorithm(), subject.encoded())
}

/// The artifact manifest attaching the blob (`blob_digest`, `blob_size`) of type
/// `artifact_type` to the manifest described by `subject` (its media type, digest and size).
pub fn artifact_manifest(
    artifact_type: &str,
    (blob_digest, blob_size): (&Digest, usize),
    subject: (&str, &Digest, usize),
    annotations: &BTreeMap<String, String>,
) -> Vec<u8> {
    let empty = Digest::sha256_of(b"{}");
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": { "mediaType": EMPTY_CONFIG, "digest": empty.as_str(), "size": 2 },
        "layers": [{ "mediaType": artifact_type, "digest": blob_digest.as_str(), "size": blob_size }],
        "subject": { "mediaType": subject.0, "digest": subject.1.as_str(), "size": subject.2 },
    });
    if !annotations.is_empty() {
        manifest["annotations"] = json!(annotations);
    }
    serde_json::to_vec(&manifest).unwrap_or_default()
}

/// The fallback index `existing` (or a new one) with `referrer` listed once; `None` when it
/// already lists it. A document that is not an index is replaced; at most [`MAX_REFERRERS`] are
/// kept, the newest.
pub fn index_with(existing: Option<&[u8]>, referrer: Value) -> Option<Vec<u8>> {
    let mut manifests: Vec<Value> = existing
        .and_then(|bytes| serde_json::from_slice::<Value>(bytes).ok())
        .and_then(|index| index.get("manifests").and_then(Value::as_array).cloned())
        .unwrap_or_default();
    if manifests
        .iter()
        .any(|m| m.get("digest") == referrer.get("digest"))
    {
        return None;
    }
    manifests.push(referrer);
    let skip = manifests.len().saturating_sub(MAX_REFERRERS);
    let manifests: Vec<Value> = manifests.into_iter().skip(skip).collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    }))
    .ok()
}

impl RegistryClient {
    /// Attaches `document` (of media type `artifact_type`) to the manifest `subject` of `image`'s
    /// repository as a referrer, and lists it under the referrers tag. Returns the artifact
    /// manifest's digest. Attaching the same document twice stores it once.
    pub async fn attach_referrer(
        &self,
        image: &ImageRef,
        subject: &Digest,
        artifact_type: &str,
        document: Vec<u8>,
        annotations: &BTreeMap<String, String>,
    ) -> Result<Digest, RegistryError> {
        let repository = self.repository_of(image)?;
        let target = self.existing_manifest(repository, subject.as_str()).await?;
        let empty = Digest::sha256_of(b"{}");
        self.upload_blob(repository, empty.as_str(), b"{}".to_vec())
            .await?;
        let blob_digest = Digest::sha256_of(&document);
        let blob_size = document.len();
        self.upload_blob(repository, blob_digest.as_str(), document)
            .await?;
        let bytes = artifact_manifest(
            artifact_type,
            (&blob_digest, blob_size),
            (&target.media_type, subject, target.bytes.len()),
            annotations,
        );
        let artifact = Manifest {
            url: target.url.clone(),
            media_type: OCI_MANIFEST.to_owned(),
            digest: Digest::sha256_of(&bytes).to_string(),
            bytes,
        };
        let size = artifact.bytes.len();
        let stored = self
            .put_manifest(repository, &artifact.digest, &artifact)
            .await?;
        let stored = Digest::parse(&stored).map_err(|e| RegistryError::Malformed {
            url: artifact.url.clone(),
            expected: "a manifest digest".to_owned(),
            found: e.to_string(),
        })?;

        let tag = referrers_tag(subject);
        let existing = self.fetch_manifest(repository, &tag).await?;
        let mut entry = json!({
            "mediaType": OCI_MANIFEST,
            "digest": stored.as_str(),
            "size": size,
            "artifactType": artifact_type,
        });
        if !annotations.is_empty() {
            entry["annotations"] = json!(annotations);
        }
        if let Some(bytes) = index_with(existing.as_ref().map(|m| m.bytes.as_slice()), entry) {
            let index = Manifest {
                url: artifact.url,
                media_type: OCI_INDEX.to_owned(),
                digest: Digest::sha256_of(&bytes).to_string(),
                bytes,
            };
            self.put_manifest(repository, &tag, &index).await?;
        }
        Ok(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(pair: &str) -> Digest {
        Digest::parse(&format!("sha256:{}", pair.repeat(32))).unwrap()
    }

    #[test]
    fn the_artifact_manifest_names_its_type_blob_and_subject() {
        let bytes = artifact_manifest(
            "application/vnd.cyclonedx+json",
            (&digest("ab"), 1234),
            (
                "application/vnd.docker.distribution.manifest.v2+json",
                &digest("cd"),
                527,
            ),
            &BTreeMap::from([("org.opencontainers.image.created".into(), "2026".into())]),
        );
        let manifest: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(manifest["artifactType"], "application/vnd.cyclonedx+json");
        assert_eq!(manifest["config"]["mediaType"], EMPTY_CONFIG);
        assert_eq!(
            manifest["config"]["digest"],
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(manifest["layers"][0]["size"], 1234);
        assert_eq!(manifest["subject"]["digest"], digest("cd").as_str());
        assert_eq!(manifest["subject"]["size"], 527);
        assert_eq!(
            manifest["annotations"]["org.opencontainers.image.created"],
            "2026"
        );
        assert_eq!(
            referrers_tag(&digest("cd")),
            format!("sha256-{}", "cd".repeat(32))
        );
    }

    #[test]
    fn the_fallback_index_lists_each_referrer_once() {
        let first = json!({"digest": "sha256:1", "artifactType": "a"});
        let index = index_with(None, first.clone()).unwrap();
        assert_eq!(index_with(Some(&index), first), None, "already listed");
        let both = index_with(Some(&index), json!({"digest": "sha256:2"})).unwrap();
        let parsed: Value = serde_json::from_slice(&both).unwrap();
        assert_eq!(parsed["mediaType"], OCI_INDEX);
        assert_eq!(parsed["manifests"].as_array().unwrap().len(), 2);
        let mut full = index_with(None, json!({"digest": "sha256:0"})).unwrap();
        for n in 1..=MAX_REFERRERS {
            full = index_with(Some(&full), json!({ "digest": format!("sha256:{n}") })).unwrap();
        }
        let parsed: Value = serde_json::from_slice(&full).unwrap();
        let kept = parsed["manifests"].as_array().unwrap();
        assert_eq!(kept.len(), MAX_REFERRERS, "bounded");
        assert_eq!(kept[0]["digest"], "sha256:1", "the oldest went first");
        let replaced = index_with(Some(b"not json"), json!({"digest": "sha256:3"})).unwrap();
        let parsed: Value = serde_json::from_slice(&replaced).unwrap();
        assert_eq!(parsed["manifests"].as_array().unwrap().len(), 1);
    }
}

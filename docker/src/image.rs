//! What the Docker layer asks of an image reference (`slipway_common::ImageRef`, the one parser):
//! a tag and no digest to build, push or name an image ([`required_tag`], [`tagged`]); what a push
//! returns (`PushedImage`), and the reading of the push stream's `digest: sha256:… size: N` line.
//! (Registry credentials are [`crate::RegistryCredentials`].)

use slipway_common::{Digest, ImageRef};

use super::error::DockerError;

/// The tag of `reference`, which a build, push or local name needs: Slipway never relies on an
/// implicit `latest`, and a digest cannot be built or pushed.
pub fn required_tag(reference: &ImageRef) -> Result<&str, DockerError> {
    match (reference.tag(), reference.digest()) {
        (Some(tag), None) => Ok(tag),
        _ => Err(DockerError::InvalidSpec {
            problem: format!(
                "expected an image reference `[registry[:port]/]path:tag` without a digest, found {reference:?}",
                reference = reference.to_string()
            ),
        }),
    }
}

/// Parse `text` as a reference with a tag and without a digest (see [`required_tag`]).
pub fn tagged(text: &str) -> Result<ImageRef, DockerError> {
    let reference = ImageRef::parse(text).map_err(|error| DockerError::InvalidSpec {
        problem: error.to_string(),
    })?;
    required_tag(&reference)?;
    Ok(reference)
}

/// What a push left in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    /// The reference pushed.
    pub reference: ImageRef,
    /// The manifest digest the registry stores it under (`sha256:<64 hex>`): the registry's
    /// `Docker-Content-Digest` for the tag.
    pub digest: Digest,
    /// The manifest's size in bytes, as the daemon reported it.
    pub manifest_size: u64,
}

/// Read `<tag>: digest: sha256:<hex> size: <n>` (the daemon's last push status line).
pub(crate) fn parse_push_digest(status: &str) -> Option<(Digest, u64)> {
    let (_, rest) = status.split_once("digest: ")?;
    let (digest, rest) = rest.split_once(' ')?;
    let digest = Digest::parse(digest).ok()?;
    let size = rest.strip_prefix("size: ")?.trim().parse().ok()?;
    Some((digest, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_pushes_need_a_tag_and_no_digest() {
        let r = tagged("127.0.0.1:5000/team/app-1:v1.2_rc").unwrap();
        assert_eq!(required_tag(&r).unwrap(), "v1.2_rc");
        for bad in ["app", "127.0.0.1:5000/app", "App:1", "app:-x"] {
            let err = tagged(bad).expect_err(bad);
            assert!(!err.is_transient());
            assert!(
                err.to_string().contains("expected an image reference"),
                "{bad}: {err}"
            );
        }
        let pinned = format!("app:1@sha256:{}", "0".repeat(64));
        assert!(
            tagged(&pinned)
                .unwrap_err()
                .to_string()
                .contains("without a digest")
        );
    }

    #[test]
    fn the_digest_line_of_a_push_is_read() {
        let hex = "8f0b1c5e9b2d7a3f4e6c1d2b3a4f5e6d7c8b9a0f1e2d3c4b5a69788796a5b4c3";
        assert_eq!(
            parse_push_digest(&format!("t1: digest: sha256:{hex} size: 528")),
            Some((Digest::parse(&format!("sha256:{hex}")).unwrap(), 528))
        );
        assert_eq!(parse_push_digest("Pushed"), None);
        assert_eq!(
            parse_push_digest("t1: digest: sha256:abc size: 528"),
            None,
            "short digest"
        );
        assert_eq!(
            parse_push_digest(&format!("t1: digest: sha256:{hex} size: x")),
            None
        );
    }
}

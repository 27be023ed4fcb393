//! Image references as the Docker layer takes them, and what a push returns: `ImageRef` (validated
//! `[registry/]repository:tag`), `PushedImage`, and the reading of the push stream's
//! `digest: sha256:… size: N` line. (Registry credentials are [`crate::RegistryCredentials`].)

use std::fmt;

use super::error::DockerError;

/// A validated `[registry[:port]/]path:tag` reference (the tag is required: Slipway never relies on
/// an implicit `latest`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    repository: String,
    tag: String,
}

impl ImageRef {
    /// Parse `[registry[:port]/]path:tag`, e.g. `127.0.0.1:5000/team/app:1.2`.
    pub fn parse(reference: &str) -> Result<Self, DockerError> {
        let invalid = |why: &str| DockerError::InvalidSpec {
            problem: format!(
                "expected an image reference `[registry[:port]/]path:tag`, found {reference:?}: {why}"
            ),
        };
        if reference.len() > 255 {
            return Err(invalid("longer than 255 characters"));
        }
        if reference.contains('@') {
            return Err(invalid("digest references cannot be built or pushed"));
        }
        let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
        let Some(colon) = reference[last_slash..].rfind(':').map(|i| i + last_slash) else {
            return Err(invalid("it has no `:tag`"));
        };
        let (repository, tag) = (&reference[..colon], &reference[colon + 1..]);
        if !valid_tag(tag) {
            return Err(invalid(
                "the tag must be 1-128 of [A-Za-z0-9_.-], not starting with `.` or `-`",
            ));
        }
        let components: Vec<&str> = repository.split('/').collect();
        let (host, path) = match components.as_slice() {
            [first, rest @ ..] if !rest.is_empty() && looks_like_host(first) => {
                (Some(*first), rest)
            }
            all => (None, all),
        };
        if let Some(host) = host
            && !valid_host(host)
        {
            return Err(invalid("the registry must be `host[:port]`"));
        }
        if path.is_empty() || !path.iter().all(|c| valid_path_component(c)) {
            return Err(invalid(
                "each path component must be lowercase letters and digits, separated by `.`, `_` or `-`",
            ));
        }
        Ok(Self {
            repository: repository.to_owned(),
            tag: tag.to_owned(),
        })
    }

    /// The repository, registry included (`127.0.0.1:5000/team/app`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag (`1.2`).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The registry host (`127.0.0.1:5000`), when the reference names one.
    pub fn registry(&self) -> Option<&str> {
        match self.repository.split_once('/') {
            Some((first, _)) if looks_like_host(first) => Some(first),
            _ => None,
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.repository, self.tag)
    }
}

impl std::str::FromStr for ImageRef {
    type Err = DockerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn looks_like_host(component: &str) -> bool {
    component.contains('.') || component.contains(':') || component == "localhost"
}

fn valid_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && port
            .is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && bytes
            .iter()
            .all(|b| alnum(b) || matches!(b, b'.' | b'_' | b'-'))
        && !component.contains("..")
}

fn valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    (1..=128).contains(&bytes.len())
        && !matches!(bytes.first(), Some(b'.' | b'-'))
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// What a push left in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    /// The reference pushed.
    pub reference: ImageRef,
    /// The manifest digest the registry stores it under (`sha256:<64 hex>`): the registry's
    /// `Docker-Content-Digest` for the tag.
    pub digest: String,
    /// The manifest's size in bytes, as the daemon reported it.
    pub manifest_size: u64,
}

/// Read `<tag>: digest: sha256:<hex> size: <n>` (the daemon's last push status line).
pub(crate) fn parse_push_digest(status: &str) -> Option<(String, u64)> {
    let (_, rest) = status.split_once("digest: ")?;
    let (digest, rest) = rest.split_once(' ')?;
    let hex = digest.strip_prefix("sha256:")?;
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let size = rest.strip_prefix("size: ")?.trim().parse().ok()?;
    Some((digest.to_owned(), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_with_registry_port_path_and_tag_parse() {
        let r = ImageRef::parse("127.0.0.1:5000/team/app-1:v1.2_rc").unwrap();
        assert_eq!(r.repository(), "127.0.0.1:5000/team/app-1");
        assert_eq!(r.tag(), "v1.2_rc");
        assert_eq!(r.registry(), Some("127.0.0.1:5000"));
        assert_eq!(r.to_string(), "127.0.0.1:5000/team/app-1:v1.2_rc");
        let local = ImageRef::parse("slipway/debian:bookworm").unwrap();
        assert_eq!(local.registry(), None);
        assert_eq!(
            ImageRef::parse("localhost/x:1").unwrap().registry(),
            Some("localhost")
        );
    }

    #[test]
    fn invalid_references_say_what_was_expected() {
        for bad in [
            "app",
            "127.0.0.1:5000/app",
            "App:1",
            "app:",
            "app:-x",
            "app@sha256:00",
            "a//b:1",
            "-a:1",
            "host:99999999/a:1",
            "a..b:1",
        ] {
            let err = ImageRef::parse(bad).expect_err(bad);
            assert!(!err.is_transient());
            assert!(
                err.to_string().contains("expected an image reference"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn the_digest_line_of_a_push_is_read() {
        let hex = "8f0b1c5e9b2d7a3f4e6c1d2b3a4f5e6d7c8b9a0f1e2d3c4b5a69788796a5b4c3";
        assert_eq!(
            parse_push_digest(&format!("t1: digest: sha256:{hex} size: 528")),
            Some((format!("sha256:{hex}"), 528))
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

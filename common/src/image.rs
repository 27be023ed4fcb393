//! Image references and content digests: the one parser of each in Slipway, following the
//! distribution spec's grammar, and the one normalisation rule.
//!
//! **Grammar** (distribution/reference and the OCI image spec):
//! ```text
//! reference := name [ ":" tag ] [ "@" digest ]
//! name      := [ domain "/" ] path            (at most 255 characters)
//! domain    := host [ ":" port ]              (a first component with ".", ":" or "localhost")
//! path      := component ( "/" component )*   component := [a-z0-9]+ ( ( [._] | __ | -+ ) [a-z0-9]+ )*
//! tag       := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
//! digest    := algorithm ":" encoded          algorithm := [a-z0-9]+ ( [+._-] [a-z0-9]+ )*
//!                                             encoded   := [a-zA-Z0-9=_-]+
//! ```
//! `sha256` digests must be 64 and `sha512` digests 128 lowercase hexadecimal digits.
//!
//! **Normalisation** (the only one): a reference without a domain names an image in *Slipway's*
//! registry, never Docker Hub. [`ImageRef::in_registry`] fills in that registry (the `host[:port]`
//! of the configured registry URL); nothing else is rewritten: no implicit `latest`, no
//! `library/`, no case folding. The short index name `team/app:1` that `slipway submit` prints and
//! the full `127.0.0.1:5000/team/app:1` the build worker pushes are therefore the same image once
//! normalised, and [`fmt::Display`] writes `[domain/]path[:tag][@digest]` back.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest name (domain and path) the distribution spec allows.
const MAX_NAME_LEN: usize = 255;
/// Longest digest accepted (a `sha512` digest is 135 characters).
const MAX_DIGEST_LEN: usize = 256;

/// A content digest, `algorithm:encoded`, e.g. `sha256:` and 64 lowercase hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    /// Parse and validate `algorithm:encoded`.
    pub fn parse(text: &str) -> Result<Self, InvalidDigest> {
        let invalid = |why: &'static str| InvalidDigest {
            found: text.chars().take(MAX_DIGEST_LEN).collect(),
            why,
        };
        if text.len() > MAX_DIGEST_LEN {
            return Err(invalid("it is longer than 256 characters"));
        }
        let Some((algorithm, encoded)) = text.split_once(':') else {
            return Err(invalid("it has no `algorithm:` prefix"));
        };
        if !valid_algorithm(algorithm) {
            return Err(invalid(
                "the algorithm must be lowercase letters and digits, separated by one of + . _ -",
            ));
        }
        let lowercase_hex = |len: usize| {
            encoded.len() == len
                && encoded
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        match algorithm {
            "sha256" if !lowercase_hex(64) => Err(invalid(
                "a sha256 digest has 64 lowercase hexadecimal digits",
            )),
            "sha512" if !lowercase_hex(128) => Err(invalid(
                "a sha512 digest has 128 lowercase hexadecimal digits",
            )),
            _ if encoded.is_empty()
                || !encoded
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-')) =>
            {
                Err(invalid(
                    "the encoded part must be one or more of [a-zA-Z0-9=_-]",
                ))
            }
            _ => Ok(Self(text.to_owned())),
        }
    }

    /// The digest of `bytes` with SHA-256.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        let hash = sha2::Sha256::digest(bytes);
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        Self(format!("sha256:{hex}"))
    }

    /// `algorithm:encoded`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The algorithm, e.g. `sha256`.
    pub fn algorithm(&self) -> &str {
        self.0
            .split_once(':')
            .map_or("", |(algorithm, _)| algorithm)
    }

    /// The encoded part (the hex digits of a `sha256` digest).
    pub fn encoded(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, encoded)| encoded)
    }
}

fn valid_algorithm(algorithm: &str) -> bool {
    !algorithm.is_empty()
        && algorithm.split(['+', '.', '_', '-']).all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// A string that is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "expected a digest such as sha256: and 64 lowercase hexadecimal digits, found {found:?}: {why}"
)]
pub struct InvalidDigest {
    found: String,
    why: &'static str,
}

impl TryFrom<String> for Digest {
    type Error = InvalidDigest;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Digest> for String {
    fn from(digest: Digest) -> Self {
        digest.0
    }
}

impl FromStr for Digest {
    type Err = InvalidDigest;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An image reference `[domain/]path[:tag][@digest]`, validated by the distribution grammar.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageRef {
    domain: Option<String>,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl ImageRef {
    /// Parse `[domain/]path[:tag][@digest]`.
    pub fn parse(text: &str) -> Result<Self, InvalidImageRef> {
        let invalid = |why: String| InvalidImageRef {
            found: text
                .chars()
                .take(MAX_NAME_LEN + MAX_DIGEST_LEN + 1)
                .collect(),
            why,
        };
        if text.len() > MAX_NAME_LEN + 129 + MAX_DIGEST_LEN + 1 {
            return Err(invalid("it is far too long".to_owned()));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (
                rest,
                Some(Digest::parse(digest).map_err(|e| invalid(e.why.to_owned()))?),
            ),
            None => (text, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(colon) => (
                &rest[..last_slash + colon],
                Some(&rest[last_slash + colon + 1..]),
            ),
            None => (rest, None),
        };
        if name.len() > MAX_NAME_LEN {
            return Err(invalid("the name is longer than 255 characters".to_owned()));
        }
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(invalid(format!(
                "the tag {tag:?} must be 1-128 of [A-Za-z0-9_.-], not starting with `.` or `-`"
            )));
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, path)) if looks_like_domain(first) => (Some(first), path),
            _ => (None, name),
        };
        if let Some(domain) = domain
            && !valid_domain(domain)
        {
            return Err(invalid(format!(
                "the registry {domain:?} must be host[:port] (letters, digits, `.`, `-`)"
            )));
        }
        if path.is_empty() {
            return Err(invalid("it names no repository".to_owned()));
        }
        if let Some(bad) = path.split('/').find(|c| !valid_path_component(c)) {
            return Err(invalid(format!(
                "the path component {bad:?} must be lowercase letters and digits separated by `.`, `_`, `__` or dashes"
            )));
        }
        Ok(Self {
            domain: domain.map(str::to_owned),
            path: path.to_owned(),
            tag: tag.map(str::to_owned),
            digest,
        })
    }

    /// `path:tag` from parts the index model validated with the same grammar
    /// ([`valid_path_component`], the tag rule), so [`Entry::image`](crate::index::Entry::image)
    /// needs no second parse.
    pub(crate) fn from_validated_parts(path: String, tag: String) -> Self {
        debug_assert!(path.split('/').all(valid_path_component) && valid_tag(&tag));
        Self {
            domain: None,
            path,
            tag: Some(tag),
            digest: None,
        }
    }

    /// The normalised reference: with `registry` (`host[:port]`) as its domain when it names none
    /// (see the module documentation). An invalid `registry` is an error naming it.
    pub fn in_registry(mut self, registry: &str) -> Result<Self, InvalidImageRef> {
        if self.domain.is_none() {
            if !valid_domain(registry) {
                return Err(InvalidImageRef {
                    found: registry.chars().take(MAX_NAME_LEN).collect(),
                    why: "the registry must be host[:port] (letters, digits, `.`, `-`)".to_owned(),
                });
            }
            self.domain = Some(registry.to_owned());
        }
        Ok(self)
    }

    /// The same repository under `tag` (any digest is dropped: it pinned the old tag's image).
    pub fn with_tag(mut self, tag: &str) -> Result<Self, InvalidImageRef> {
        if !valid_tag(tag) {
            return Err(InvalidImageRef {
                found: tag.chars().take(MAX_NAME_LEN).collect(),
                why: "a tag must be 1-128 of [A-Za-z0-9_.-], not starting with `.` or `-`"
                    .to_owned(),
            });
        }
        self.tag = Some(tag.to_owned());
        self.digest = None;
        Ok(self)
    }

    /// The registry host (`127.0.0.1:5000`), when the reference names one.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// The path inside the registry (`team/app`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The repository: domain and path, without tag or digest (`127.0.0.1:5000/team/app`).
    pub fn repository(&self) -> String {
        match &self.domain {
            Some(domain) => format!("{domain}/{}", self.path),
            None => self.path.clone(),
        }
    }

    /// The tag, when the reference names one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, when the reference pins one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The same reference pinned to `digest` (any tag is kept).
    pub fn with_digest(mut self, digest: Digest) -> Self {
        self.digest = Some(digest);
        self
    }

    /// The same reference without its digest (`[domain/]path[:tag]`).
    pub fn without_digest(mut self) -> Self {
        self.digest = None;
        self
    }

    /// `repository@digest` when `digest` is given or pinned, else the reference itself: the
    /// reference naming exactly one image.
    pub fn pinned(&self, digest: Option<&Digest>) -> String {
        match digest.or(self.digest.as_ref()) {
            Some(digest) => format!("{}@{digest}", self.repository()),
            None => self.to_string(),
        }
    }

    /// Whether `other` names an image this reference selects: the same repository and, where
    /// this reference has a tag or a digest, the same one. `team/app` selects every tag of the
    /// repository; `team/app@sha256:…` selects that digest under any tag.
    pub fn selects(&self, other: &ImageRef, other_digest: Option<&Digest>) -> bool {
        self.domain == other.domain
            && self.path == other.path
            && self
                .tag
                .as_ref()
                .is_none_or(|tag| other.tag.as_ref() == Some(tag))
            && self
                .digest
                .as_ref()
                .is_none_or(|digest| other_digest.or(other.digest.as_ref()) == Some(digest))
    }
}

/// A string that is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "expected an image reference [registry[:port]/]repository[:tag][@sha256:…], found {found:?}: {why}"
)]
pub struct InvalidImageRef {
    found: String,
    why: String,
}

impl TryFrom<String> for ImageRef {
    type Error = InvalidImageRef;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ImageRef> for String {
    fn from(image: ImageRef) -> Self {
        image.to_string()
    }
}

impl FromStr for ImageRef {
    type Err = InvalidImageRef;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(domain) = &self.domain {
            write!(f, "{domain}/")?;
        }
        f.write_str(&self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// The registry `host[:port]` of a registry base URL (`http://127.0.0.1:5000` →
/// `127.0.0.1:5000`): what [`ImageRef::in_registry`] takes.
pub fn registry_host(url: &str) -> &str {
    let without_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    without_scheme.split('/').next().unwrap_or(without_scheme)
}

fn looks_like_domain(component: &str) -> bool {
    component.contains('.')
        || component.contains(':')
        || component == "localhost"
        || component.bytes().any(|b| b.is_ascii_uppercase())
}

fn valid_domain(domain: &str) -> bool {
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    let label_ok = |label: &str| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    !host.is_empty()
        && host.split('.').all(label_ok)
        && port.is_none_or(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `component` is one path component of the grammar (`[a-z0-9]+` joined by `.`, `_`,
/// `__` or dashes): the index model checks `app-id` and `job-id` with it.
pub(crate) fn valid_path_component(component: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = component.as_bytes();
    let mut i = 0;
    let mut expect_alnum = true;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            expect_alnum = false;
            continue;
        }
        if expect_alnum {
            return false;
        }
        // A separator: `.`, `_`, `__` or one or more `-`.
        let run_end = match bytes[i] {
            b'.' => i + 1,
            b'_' if bytes.get(i + 1) == Some(&b'_') => i + 2,
            b'_' => i + 1,
            b'-' => i + bytes[i..].iter().take_while(|&&b| b == b'-').count(),
            _ => return false,
        };
        i = run_end;
        expect_alnum = true;
    }
    !bytes.is_empty() && !expect_alnum
}

fn valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    (1..=128).contains(&bytes.len())
        && !matches!(bytes.first(), Some(b'.' | b'-'))
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex64(c: char) -> String {
        c.to_string().repeat(64)
    }

    #[test]
    fn digests_follow_the_grammar_and_the_registered_lengths() {
        let sha = format!("sha256:{}", hex64('a'));
        assert_eq!(Digest::parse(&sha).unwrap().as_str(), sha);
        assert_eq!(Digest::parse(&sha).unwrap().algorithm(), "sha256");
        assert!(Digest::parse(&format!("sha512:{}", "0".repeat(128))).is_ok());
        assert!(
            Digest::parse("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8")
                .is_ok()
        );
        for bad in [
            String::new(),
            "sha256".to_owned(),
            format!("sha256:{}", hex64('A')),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha512:{}", hex64('a')),
            format!("SHA256:{}", hex64('a')),
            "sha256+:abc".to_owned(),
            "x:".to_owned(),
            "x:a b".to_owned(),
            format!("x:{}", "a".repeat(300)),
        ] {
            let error = Digest::parse(&bad).unwrap_err().to_string();
            assert!(error.contains("expected a digest"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn digests_validate_when_decoded() {
        let good = format!("sha256:{}", hex64('b'));
        let bytes = rmp_serde::to_vec(&good).unwrap();
        assert_eq!(
            rmp_serde::from_slice::<Digest>(&bytes).unwrap().to_string(),
            good
        );
        let bytes = rmp_serde::to_vec("sha256:nope").unwrap();
        assert!(rmp_serde::from_slice::<Digest>(&bytes).is_err());
    }

    #[test]
    fn references_split_into_domain_path_tag_and_digest() {
        let digest = format!("sha256:{}", hex64('c'));
        let full = ImageRef::parse(&format!("127.0.0.1:5000/team/app:1.2@{digest}")).unwrap();
        assert_eq!(full.domain(), Some("127.0.0.1:5000"));
        assert_eq!(full.path(), "team/app");
        assert_eq!(full.repository(), "127.0.0.1:5000/team/app");
        assert_eq!(full.tag(), Some("1.2"));
        assert_eq!(full.digest().map(Digest::as_str), Some(digest.as_str()));
        assert_eq!(
            full.to_string(),
            format!("127.0.0.1:5000/team/app:1.2@{digest}")
        );

        let short = ImageRef::parse("team/app:1").unwrap();
        assert_eq!(
            (short.domain(), short.path(), short.tag()),
            (None, "team/app", Some("1"))
        );
        let port_no_tag = ImageRef::parse("localhost:5000/app").unwrap();
        assert_eq!(
            (port_no_tag.domain(), port_no_tag.tag()),
            (Some("localhost:5000"), None)
        );
        let upper_domain = ImageRef::parse("Registry/app:x").unwrap();
        assert_eq!(upper_domain.domain(), Some("Registry"));
        let separators = ImageRef::parse("a__b/c-----d/e.f_g:T_1.x-y").unwrap();
        assert_eq!(separators.path(), "a__b/c-----d/e.f_g");
    }

    #[test]
    fn malformed_references_are_refused_with_the_reason() {
        for (bad, why) in [
            ("", "names no repository"),
            ("team/App:1", "path component"),
            ("team/app:", "tag"),
            ("team/app:-x", "tag"),
            ("team//app", "path component"),
            ("team/app_/x", "path component"),
            ("team/a___b", "path component"),
            ("host:99999999/a:1", "registry"),
            ("-bad.host/a", "registry"),
            ("team/app@sha256:abc", "64 lowercase"),
            ("team/app:1 ", "tag"),
            ("te am/app", "path component"),
        ] {
            let error = ImageRef::parse(bad).unwrap_err().to_string();
            assert!(error.contains(why), "{bad:?}: {error}");
            assert!(error.contains("expected an image reference"), "{error}");
        }
        let long = format!("{}/app:1", "a".repeat(260));
        assert!(
            ImageRef::parse(&long)
                .unwrap_err()
                .to_string()
                .contains("255")
        );
    }

    #[test]
    fn normalisation_puts_a_short_name_in_slipways_registry_only() {
        let short = ImageRef::parse("team/app:1")
            .unwrap()
            .in_registry("127.0.0.1:5000")
            .unwrap();
        let full = ImageRef::parse("127.0.0.1:5000/team/app:1").unwrap();
        assert_eq!(short, full);
        let elsewhere = ImageRef::parse("registry.example.org/team/app:1")
            .unwrap()
            .in_registry("127.0.0.1:5000")
            .unwrap();
        assert_eq!(elsewhere.domain(), Some("registry.example.org"));
        assert!(
            ImageRef::parse("a:1")
                .unwrap()
                .in_registry("bad host")
                .is_err()
        );
        let retagged = full.clone().with_tag("2-slipway-test").unwrap();
        assert_eq!(
            retagged.to_string(),
            "127.0.0.1:5000/team/app:2-slipway-test"
        );
        assert!(full.with_tag("-x").is_err());
        assert_eq!(registry_host("http://127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(registry_host("https://r.example.org/"), "r.example.org");
        assert_eq!(registry_host("r.example.org:443"), "r.example.org:443");
    }

    #[test]
    fn selection_by_repository_tag_or_digest() {
        let d1 = Digest::parse(&format!("sha256:{}", hex64('1'))).unwrap();
        let d2 = Digest::parse(&format!("sha256:{}", hex64('2'))).unwrap();
        let stored = ImageRef::parse("r:5000/team/app:1").unwrap();
        let select = |s: &str| ImageRef::parse(s).unwrap();
        assert!(select("r:5000/team/app:1").selects(&stored, Some(&d1)));
        assert!(select("r:5000/team/app").selects(&stored, Some(&d1)));
        assert!(select(&format!("r:5000/team/app@{d1}")).selects(&stored, Some(&d1)));
        assert!(!select(&format!("r:5000/team/app@{d2}")).selects(&stored, Some(&d1)));
        assert!(!select("r:5000/team/app:2").selects(&stored, Some(&d1)));
        assert!(!select("team/app:1").selects(&stored, Some(&d1)));
        assert!(!select("r:5000/team/other:1").selects(&stored, None));
        assert_eq!(stored.pinned(Some(&d1)), format!("r:5000/team/app@{d1}"));
        assert_eq!(stored.pinned(None), "r:5000/team/app:1");
    }

    #[test]
    fn references_validate_when_decoded_and_round_trip() {
        let text = "127.0.0.1:5000/team/app:1";
        let bytes = rmp_serde::to_vec(text).unwrap();
        let image: ImageRef = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(rmp_serde::to_vec(&image).unwrap(), bytes);
        let bytes = rmp_serde::to_vec("Team/App").unwrap();
        let error = rmp_serde::from_slice::<ImageRef>(&bytes)
            .unwrap_err()
            .to_string();
        assert!(error.contains("path component"), "{error}");
    }
}

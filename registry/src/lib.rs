//! A client for the Docker Registry HTTP API v2: it reads manifest digests and image labels (for
//! idempotency), labels a pushed image (a new configuration blob and manifest, see `relabel.rs`) and
//! gives an existing manifest a new tag (for promotion). It never uploads layers: the Docker daemon
//! pushes images; this client only moves manifests and small configuration documents.
//!
//! Authentication follows the registry's challenge: none, HTTP Basic, or the Bearer token flow
//! (`WWW-Authenticate: Bearer realm=…,service=…,scope=…`, then a token fetched from the realm with
//! the credentials, then the request again with `Authorization: Bearer`). Credentials are only sent
//! after a challenge asked for them, and only over TLS or to a host allowed plain HTTP. Neither
//! credentials nor tokens are ever logged or put into an error message.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};
use slipway_common::errors::chain;
use slipway_common::{Digest, ImageRef};
pub use slipway_docker::{PASSWORD_CREDENTIAL, RegistryCredentials};

mod delete;
pub mod referrers;
mod relabel;

pub use delete::{MAX_TAGS_LISTED, TagList};

/// Docker image manifest, schema 2.
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-platform image).
pub const MEDIA_TYPE_DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const MEDIA_TYPE_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (multi-platform image).
pub const MEDIA_TYPE_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The manifest types this client understands, in the order it prefers them (the `Accept` header).
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    MEDIA_TYPE_DOCKER_MANIFEST,
    MEDIA_TYPE_OCI_MANIFEST,
    MEDIA_TYPE_DOCKER_MANIFEST_LIST,
    MEDIA_TYPE_OCI_INDEX,
];

/// How long a token is trusted when the token endpoint does not say (the spec's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// A token is renewed this long before it expires, so it does not expire in flight.
const TOKEN_EXPIRY_MARGIN: Duration = Duration::from_secs(10);
/// Largest manifest or config blob read into memory (the registry's own manifest limit is 4 MiB).
const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// The `[registry]` section of the build worker's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrySettings {
    /// Base URL of the registry, `http://127.0.0.1:5000` or `https://registry.example.com`, without
    /// credentials and without a path.
    pub url: String,
    /// User name for Basic authentication and for fetching Bearer tokens.
    pub username: Option<String>,
    /// File holding the password (else the systemd credential `registry-password`).
    pub password_file: Option<PathBuf>,
    /// Time limit of one HTTP request (connecting, sending, reading the whole answer), in ms.
    pub timeout_ms: u64,
    /// Hosts (`host` or `host:port`) that may be reached over plain HTTP besides loopback ones
    /// (`127.0.0.0/8`, `::1`, `localhost`), which always may, as Docker treats them.
    pub insecure_hosts: Vec<String>,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:5000".to_owned(),
            username: None,
            password_file: None,
            timeout_ms: 30_000,
            insecure_hosts: Vec::new(),
        }
    }
}

/// The credentials `settings` name: `username` with the password read from `password_file` or
/// the systemd credential [`PASSWORD_CREDENTIAL`]. `Ok(None)` when no user name is configured; an
/// error when a user name has no password (or a password no user name).
pub fn credentials(
    settings: &RegistrySettings,
) -> Result<Option<RegistryCredentials>, RegistryError> {
    RegistryCredentials::configured(
        settings.username.as_deref(),
        settings.password_file.as_deref(),
    )
    .map_err(|e| RegistryError::Settings(e.to_string()))
}

/// An image's manifest digest and the labels of its configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageLabels {
    /// `sha256:…` of the manifest the reference names (the digest `docker push` prints).
    pub digest: Digest,
    /// `config.Labels` of the image configuration (empty when it has none).
    pub labels: BTreeMap<String, String>,
    /// The configuration's `created` time as written (RFC 3339, UTC with Docker), when present.
    pub created: Option<String>,
}

/// A registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The settings or credentials cannot work.
    #[error("registry settings: {0}")]
    Settings(String),
    /// A repository, tag or digest is not valid; nothing was sent.
    #[error("invalid {what} {value:?}: expected {expected}")]
    InvalidName {
        /// `repository`, `tag`, `reference` or `digest`.
        what: &'static str,
        /// The value given.
        value: String,
        /// The grammar it should follow.
        expected: &'static str,
    },
    /// The request did not complete: connection refused, timeout, connection reset.
    #[error("{method} {url}: {}", chain(.source))]
    Transport {
        /// The HTTP method.
        method: Method,
        /// The URL (never carries credentials).
        url: String,
        /// What reqwest reported.
        source: reqwest::Error,
    },
    /// The registry answered with an unexpected status.
    #[error("{method} {url}: expected {expected}, found HTTP {status}{}", describe_body(.body))]
    Status {
        /// The HTTP method.
        method: Method,
        /// The URL.
        url: String,
        /// What was expected.
        expected: &'static str,
        /// The status received.
        status: StatusCode,
        /// The start of the answer's body (the registry's error JSON, usually).
        body: String,
    },
    /// The registry or its token service refused the credentials (or their absence).
    #[error("{method} {url}: access denied (HTTP {status}): {detail}")]
    Denied {
        /// The HTTP method.
        method: Method,
        /// The URL.
        url: String,
        /// 401 or 403.
        status: StatusCode,
        /// What was tried and what the registry said.
        detail: String,
    },
    /// An answer could not be understood.
    #[error("{url}: malformed answer: expected {expected}, found {found}")]
    Malformed {
        /// The URL that answered.
        url: String,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },
    /// The registry's content does not have the digest it was asked for or claims.
    #[error("{url}: expected digest {expected}, found {found}")]
    DigestMismatch {
        /// The URL that answered.
        url: String,
        /// The digest asked for.
        expected: String,
        /// The digest of what came back.
        found: String,
    },
}

impl RegistryError {
    /// Whether trying again later may succeed: connection failures, timeouts, HTTP 408, 429 and
    /// 5xx. Everything else (bad names, refused credentials, 4xx, malformed answers, digest
    /// mismatches) is permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Transport { source, .. } => {
                source.is_connect()
                    || source.is_timeout()
                    || source.is_request()
                    || source.is_body()
                    || source.is_decode()
            }
            RegistryError::Status { status, .. } => {
                status.is_server_error()
                    || *status == StatusCode::TOO_MANY_REQUESTS
                    || *status == StatusCode::REQUEST_TIMEOUT
            }
            RegistryError::Settings(_)
            | RegistryError::InvalidName { .. }
            | RegistryError::Denied { .. }
            | RegistryError::Malformed { .. }
            | RegistryError::DigestMismatch { .. } => false,
        }
    }
}

fn describe_body(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

/// The first 512 bytes of a body, on one line, for error messages.
fn body_excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A registry client. Cloning it is cheap and clones share the token cache.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// Base URL without trailing `/`.
    base: Url,
    /// `host[:port]`, as image names spell the registry.
    host: String,
    credentials: Option<RegistryCredentials>,
    insecure_hosts: Vec<String>,
    auth: Mutex<AuthState>,
}

/// What the client learned from the registry's challenges.
#[derive(Default)]
struct AuthState {
    /// The registry asked for Basic authentication: send it with every request.
    basic: bool,
    /// Bearer tokens by scope.
    tokens: HashMap<String, CachedToken>,
}

struct CachedToken {
    token: String,
    renew_at: Instant,
}

impl fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryClient")
            .field("url", &self.inner.base.as_str())
            .field(
                "username",
                &self.inner.credentials.as_ref().map(|c| c.username()),
            )
            .finish()
    }
}

/// Access a request needs, for the token's scope.
#[derive(Clone, Copy)]
enum Access {
    Pull,
    PullPush,
    Delete,
}

impl RegistryClient {
    /// A client for the registry `settings` names. Fails when the URL is not an `http(s)` base URL
    /// without credentials, path or query, or is plain HTTP to a host that is neither loopback nor
    /// listed in `insecure_hosts`.
    pub fn new(
        settings: &RegistrySettings,
        credentials: Option<RegistryCredentials>,
    ) -> Result<Self, RegistryError> {
        let base = Url::parse(settings.url.trim_end_matches('/')).map_err(|e| {
            RegistryError::Settings(format!(
                "registry.url: expected an http(s) URL such as http://127.0.0.1:5000, found {:?}: {e}",
                redact_url(&settings.url)
            ))
        })?;
        if !base.username().is_empty() || base.password().is_some() {
            return Err(RegistryError::Settings(format!(
                "registry.url {:?} carries credentials: expected them in registry.username and \
                 registry.password_file",
                redact_url(&settings.url)
            )));
        }
        if !matches!(base.scheme(), "http" | "https")
            || base.host_str().is_none()
            || base.path() != "/"
            || base.query().is_some()
            || base.fragment().is_some()
        {
            return Err(RegistryError::Settings(format!(
                "registry.url: expected http(s)://host[:port] without path or query, found {:?}",
                settings.url
            )));
        }
        if settings.timeout_ms == 0 {
            return Err(RegistryError::Settings(
                "registry.timeout_ms must be at least 1, found 0".to_owned(),
            ));
        }
        let host = host_port(&base);
        if base.scheme() == "http" && !plain_http_allowed(&base, &settings.insecure_hosts) {
            return Err(RegistryError::Settings(format!(
                "registry.url {} is plain HTTP to {host}: expected https, a loopback host, or \
                 {host:?} in registry.insecure_hosts",
                base.as_str()
            )));
        }
        let timeout = Duration::from_millis(settings.timeout_ms);
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config()?)
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("slipway-build/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                RegistryError::Settings(format!("cannot build the HTTP client: {}", chain(&e)))
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                host,
                credentials,
                insecure_hosts: settings.insecure_hosts.clone(),
                auth: Mutex::new(AuthState::default()),
            }),
        })
    }

    /// `host[:port]` of the registry, as image names spell it (`127.0.0.1:5000`).
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// The digest of the manifest `image` names (by its digest, else its tag), as the registry
    /// reports it in `Docker-Content-Digest`; `None` when the repository or the manifest does
    /// not exist.
    pub async fn manifest_digest(&self, image: &ImageRef) -> Result<Option<Digest>, RegistryError> {
        let (repository, reference) = self.locate(image)?;
        Ok(self
            .digest_of(repository, reference)
            .await?
            .and_then(|digest| Digest::parse(&digest).ok()))
    }

    /// What `repository:reference` names now (see [`RegistryClient::manifest_digest`]).
    async fn digest_of(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<String>, RegistryError> {
        let url = self.url(&format!("v2/{repository}/manifests/{reference}"))?;
        let response = self
            .send(
                Method::HEAD,
                &url,
                repository,
                Access::Pull,
                accept_manifests(),
                None,
            )
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            StatusCode::OK => {}
            status => {
                return Err(status_error(
                    Method::HEAD,
                    &url,
                    "200 OK or 404",
                    status,
                    Vec::new(),
                ));
            }
        }
        match response.headers().get("docker-content-digest") {
            Some(value) => {
                let digest = value
                    .to_str()
                    .ok()
                    .filter(|d| is_digest(d))
                    .ok_or_else(|| RegistryError::Malformed {
                        url: url.to_string(),
                        expected: "a Docker-Content-Digest header of the form sha256:<64 hex>"
                            .to_owned(),
                        found: format!("{value:?}"),
                    })?;
                check_digest_reference(&url, reference, digest)?;
                Ok(Some(digest.to_owned()))
            }
            // Some registries omit the header on HEAD: read the manifest and hash it.
            None => Ok(self
                .fetch_manifest(repository, reference)
                .await?
                .map(|manifest| manifest.digest)),
        }
    }

    /// The manifest digest and the image configuration's labels of `image` (by its digest,
    /// else its tag); `None` when the repository or the manifest does not exist. For a
    /// multi-platform image the labels are those of this machine's platform (else of the first
    /// manifest listed).
    pub async fn image_labels(
        &self,
        image: &ImageRef,
    ) -> Result<Option<ImageLabels>, RegistryError> {
        let (repository, reference) = self.locate(image)?;
        let Some(top) = self.fetch_manifest(repository, reference).await? else {
            return Ok(None);
        };
        let mut manifest = top.clone();
        // An index: follow this platform's entry (one level; indexes of indexes are not images).
        if is_index(&manifest.media_type) {
            let child = select_platform_manifest(&manifest.bytes).map_err(|found| {
                RegistryError::Malformed {
                    url: manifest.url.clone(),
                    expected: "an image index listing at least one manifest digest".to_owned(),
                    found,
                }
            })?;
            manifest = self
                .fetch_manifest(repository, &child)
                .await?
                .ok_or_else(|| RegistryError::Malformed {
                    url: manifest.url.clone(),
                    expected: format!("the manifest {child} it lists to exist"),
                    found: "404 for that manifest".to_owned(),
                })?;
        }
        let config_digest = config_digest(&manifest.bytes).map_err(|found| RegistryError::Malformed {
            url: manifest.url.clone(),
            expected: format!(
                "an image manifest ({MEDIA_TYPE_DOCKER_MANIFEST} or {MEDIA_TYPE_OCI_MANIFEST}) with config.digest"
            ),
            found,
        })?;
        let (url, bytes) = self.fetch_blob(repository, &config_digest).await?;
        let labels = labels_from_config(&bytes).map_err(|found| RegistryError::Malformed {
            url: url.to_string(),
            expected: "an image configuration JSON whose config.Labels maps strings to strings"
                .to_owned(),
            found,
        })?;
        let created = created_from_config(&bytes);
        Ok(Some(ImageLabels {
            digest: Digest::parse(&top.digest).map_err(|e| RegistryError::Malformed {
                url: top.url.clone(),
                expected: "a manifest with a digest".to_owned(),
                found: e.to_string(),
            })?,
            labels,
            created,
        }))
    }

    /// Give the manifest `digest` of `target`'s repository the tag of `target`: its exact bytes
    /// are read and put back under the tag, so no layer moves and the digest stays the same
    /// (checked against the registry's answer).
    pub async fn tag(&self, target: &ImageRef, digest: &Digest) -> Result<(), RegistryError> {
        let (repository, tag) = self.locate_tag(target)?;
        let manifest = self.existing_manifest(repository, digest.as_str()).await?;
        self.put_manifest(repository, tag, &manifest)
            .await
            .map(drop)
    }

    /// Give the image `digest` of `target`'s repository the labels `labels` under `target`'s tag,
    /// without moving a layer: its configuration plus the labels is uploaded as a new blob and a
    /// manifest naming it (the same layers) is put under the tag. Returns the new manifest's
    /// digest. Labelling twice with the same labels gives the same digest.
    pub async fn put_labelled(
        &self,
        target: &ImageRef,
        digest: &Digest,
        labels: &BTreeMap<String, String>,
    ) -> Result<Digest, RegistryError> {
        let (repository, tag) = self.locate_tag(target)?;
        let manifest = self.existing_manifest(repository, digest.as_str()).await?;
        if is_index(&manifest.media_type) {
            return Err(RegistryError::Malformed {
                url: manifest.url,
                expected: "a single-platform image manifest to label".to_owned(),
                found: format!("an index ({})", manifest.media_type),
            });
        }
        let malformed = |url: &str, expected: &str| {
            let url = url.to_owned();
            let expected = expected.to_owned();
            move |found: String| RegistryError::Malformed {
                url,
                expected,
                found,
            }
        };
        let config_digest = config_digest(&manifest.bytes).map_err(malformed(
            &manifest.url,
            "an image manifest with config.digest",
        ))?;
        let (config_url, config) = self.fetch_blob(repository, &config_digest).await?;
        let labelled = relabel::config_with_labels(&config, labels).map_err(malformed(
            config_url.as_str(),
            "an image configuration JSON object",
        ))?;
        let labelled_digest = Digest::sha256_of(&labelled).to_string();
        let size = labelled.len();
        self.upload_blob(repository, &labelled_digest, labelled)
            .await?;
        let bytes =
            relabel::manifest_with_config(&manifest.bytes, &labelled_digest, size).map_err(
                malformed(&manifest.url, "an image manifest with a config descriptor"),
            )?;
        let new_manifest = Manifest {
            url: manifest.url,
            media_type: manifest.media_type,
            digest: Digest::sha256_of(&bytes).to_string(),
            bytes,
        };
        let stored = self.put_manifest(repository, tag, &new_manifest).await?;
        Digest::parse(&stored).map_err(|e| RegistryError::Malformed {
            url: new_manifest.url.clone(),
            expected: "a manifest digest".to_owned(),
            found: e.to_string(),
        })
    }

    /// The repository path and the reference (digest, else tag) of `image` in this registry;
    /// an image of another registry, or one with neither tag nor digest, is refused.
    fn locate<'a>(&self, image: &'a ImageRef) -> Result<(&'a str, &'a str), RegistryError> {
        let reference = match (image.digest(), image.tag()) {
            (Some(digest), _) => digest.as_str(),
            (None, Some(tag)) => tag,
            (None, None) => {
                return Err(RegistryError::InvalidName {
                    what: "reference",
                    value: image.to_string(),
                    expected: "an image with a tag or a digest",
                });
            }
        };
        Ok((self.repository_of(image)?, reference))
    }

    /// The repository path and the tag of `image` in this registry.
    fn locate_tag<'a>(&self, image: &'a ImageRef) -> Result<(&'a str, &'a str), RegistryError> {
        match image.tag() {
            Some(tag) => Ok((self.repository_of(image)?, tag)),
            None => Err(RegistryError::InvalidName {
                what: "reference",
                value: image.to_string(),
                expected: "an image with a tag",
            }),
        }
    }

    /// The path of `image` in this registry: its domain must be this registry's host, or absent.
    fn repository_of<'a>(&self, image: &'a ImageRef) -> Result<&'a str, RegistryError> {
        match image.domain() {
            Some(domain) if domain != self.host() => Err(RegistryError::InvalidName {
                what: "repository",
                value: image.to_string(),
                expected: "an image of this registry",
            }),
            _ => Ok(image.path()),
        }
    }

    /// The manifest `repository@digest`, which must exist.
    async fn existing_manifest(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Manifest, RegistryError> {
        if !is_digest(digest) {
            return Err(RegistryError::InvalidName {
                what: "digest",
                value: digest.to_owned(),
                expected: "sha256:<64 lowercase hex digits>",
            });
        }
        self.fetch_manifest(repository, digest)
            .await?
            .ok_or_else(|| RegistryError::Status {
                method: Method::GET,
                url: self
                    .url(&format!("v2/{repository}/manifests/{digest}"))
                    .map(|u| u.to_string())
                    .unwrap_or_default(),
                expected: "200 OK with the manifest",
                status: StatusCode::NOT_FOUND,
                body: String::new(),
            })
    }

    /// PUT `manifest` under `reference`; returns the digest the registry stored it as, checked
    /// to be the digest of its bytes.
    async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        manifest: &Manifest,
    ) -> Result<String, RegistryError> {
        let url = self.url(&format!("v2/{repository}/manifests/{reference}"))?;
        let mut headers = HeaderMap::new();
        let content_type =
            HeaderValue::from_str(&manifest.media_type).map_err(|_| RegistryError::Malformed {
                url: manifest.url.clone(),
                expected: "a Content-Type header value".to_owned(),
                found: format!("{:?}", manifest.media_type),
            })?;
        headers.insert(CONTENT_TYPE, content_type);
        let response = self
            .send(
                Method::PUT,
                &url,
                repository,
                Access::PullPush,
                headers,
                Some(manifest.bytes.clone()),
            )
            .await?;
        let stored = response
            .headers()
            .get("docker-content-digest")
            .map(|value| value.to_str().unwrap_or("<not text>").to_owned());
        expect_status(
            Method::PUT,
            &url,
            response,
            &[StatusCode::CREATED, StatusCode::OK],
            "201 Created",
        )
        .await?;
        let stored = match stored {
            Some(stored) => stored,
            // Without the header, ask what the reference now names.
            None => self
                .digest_of(repository, reference)
                .await?
                .unwrap_or_else(|| "nothing (the tag does not exist)".to_owned()),
        };
        if stored != manifest.digest {
            return Err(RegistryError::DigestMismatch {
                url: url.to_string(),
                expected: manifest.digest.clone(),
                found: stored,
            });
        }
        Ok(stored)
    }

    /// GET the blob `repository@digest` (a small document: a configuration), checked against its
    /// digest. Returns the URL it came from and its bytes.
    async fn fetch_blob(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<(Url, Vec<u8>), RegistryError> {
        let url = self.url(&format!("v2/{repository}/blobs/{digest}"))?;
        let response = self
            .send(
                Method::GET,
                &url,
                repository,
                Access::Pull,
                HeaderMap::new(),
                None,
            )
            .await?;
        let bytes = expect_status(
            Method::GET,
            &url,
            response,
            &[StatusCode::OK],
            "200 OK with the blob",
        )
        .await?;
        let found = Digest::sha256_of(&bytes).to_string();
        if found != digest {
            return Err(RegistryError::DigestMismatch {
                url: url.to_string(),
                expected: digest.to_owned(),
                found,
            });
        }
        Ok((url, bytes))
    }

    /// Upload `bytes` as the blob `digest` of `repository` (unless the registry has it already):
    /// an upload session is opened with POST and completed with one PUT of the whole blob.
    async fn upload_blob(
        &self,
        repository: &str,
        digest: &str,
        bytes: Vec<u8>,
    ) -> Result<(), RegistryError> {
        let blob_url = self.url(&format!("v2/{repository}/blobs/{digest}"))?;
        let response = self
            .send(
                Method::HEAD,
                &blob_url,
                repository,
                Access::Pull,
                HeaderMap::new(),
                None,
            )
            .await?;
        if response.status() == StatusCode::OK {
            return Ok(());
        }
        let start_url = self.url(&format!("v2/{repository}/blobs/uploads/"))?;
        let response = self
            .send(
                Method::POST,
                &start_url,
                repository,
                Access::PullPush,
                HeaderMap::new(),
                Some(Vec::new()),
            )
            .await?;
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        expect_status(
            Method::POST,
            &start_url,
            response,
            &[StatusCode::ACCEPTED],
            "202 Accepted with an upload location",
        )
        .await?;
        // The location may be absolute or relative to the registry.
        let mut upload_url = location
            .and_then(|location| self.inner.base.join(&location).ok())
            .ok_or_else(|| RegistryError::Malformed {
                url: start_url.to_string(),
                expected: "a Location header with the upload URL".to_owned(),
                found: "none, or one that is not a URL".to_owned(),
            })?;
        if upload_url.host_str() != self.inner.base.host_str() {
            return Err(RegistryError::Malformed {
                url: start_url.to_string(),
                expected: format!(
                    "an upload location on {}",
                    self.inner.base.host_str().unwrap_or("the registry")
                ),
                found: upload_url.to_string(),
            });
        }
        upload_url.query_pairs_mut().append_pair("digest", digest);
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        let response = self
            .send(
                Method::PUT,
                &upload_url,
                repository,
                Access::PullPush,
                headers,
                Some(bytes),
            )
            .await?;
        expect_status(
            Method::PUT,
            &upload_url,
            response,
            &[StatusCode::CREATED],
            "201 Created",
        )
        .await
        .map(drop)
    }

    /// GET a manifest: its bytes, media type and digest (checked against a digest reference and
    /// against `Docker-Content-Digest`). `None` on 404.
    async fn fetch_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<Manifest>, RegistryError> {
        let url = self.url(&format!("v2/{repository}/manifests/{reference}"))?;
        let response = self
            .send(
                Method::GET,
                &url,
                repository,
                Access::Pull,
                accept_manifests(),
                None,
            )
            .await?;
        let status = response.status();
        let header_digest = response
            .headers()
            .get("docker-content-digest")
            .map(|v| v.to_str().unwrap_or("<not text>").to_owned());
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
        let bytes = read_body(Method::GET, &url, response).await?;
        match status {
            StatusCode::NOT_FOUND => return Ok(None),
            StatusCode::OK => {}
            status => {
                return Err(status_error(
                    Method::GET,
                    &url,
                    "200 OK or 404",
                    status,
                    bytes,
                ));
            }
        }
        let digest = Digest::sha256_of(&bytes).to_string();
        check_digest_reference(&url, reference, &digest)?;
        if let Some(header) = header_digest
            && header != digest
        {
            return Err(RegistryError::DigestMismatch {
                url: url.to_string(),
                expected: header,
                found: digest,
            });
        }
        // Docker's schema 2 manifests and OCI ones name their type inside; trust that over a
        // generic Content-Type such as application/json.
        let media_type = match content_type {
            Some(t) if MANIFEST_MEDIA_TYPES.contains(&t.as_str()) => t,
            other => embedded_media_type(&bytes).ok_or_else(|| RegistryError::Malformed {
                url: url.to_string(),
                expected: format!("a manifest of type {}", MANIFEST_MEDIA_TYPES.join(", ")),
                found: format!("Content-Type {other:?} and no known mediaType in the body"),
            })?,
        };
        Ok(Some(Manifest {
            url: url.to_string(),
            media_type,
            digest,
            bytes,
        }))
    }

    fn url(&self, path: &str) -> Result<Url, RegistryError> {
        self.inner
            .base
            .join(path)
            .map_err(|e| RegistryError::Settings(format!("cannot form a URL with {path:?}: {e}")))
    }

    /// Send a request, answering at most one authentication challenge.
    async fn send(
        &self,
        method: Method,
        url: &Url,
        repository: &str,
        access: Access,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
    ) -> Result<reqwest::Response, RegistryError> {
        let scope = scope(repository, access);
        let response = self
            .attempt(&method, url, &scope, &headers, body.clone())
            .await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenges: Vec<Challenge> = response
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_challenges)
            .collect();
        let unauthorized = read_body(method.clone(), url, response).await?;
        let denied = |detail: String| RegistryError::Denied {
            method: method.clone(),
            url: url.to_string(),
            status: StatusCode::UNAUTHORIZED,
            detail,
        };
        if let Some(bearer) = challenges
            .iter()
            .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))
        {
            self.fetch_token(url, bearer, &scope).await?;
        } else if challenges
            .iter()
            .any(|c| c.scheme.eq_ignore_ascii_case("basic"))
        {
            if self.inner.credentials.is_none() {
                return Err(denied(
                    "the registry asks for Basic authentication and no credentials are configured"
                        .to_owned(),
                ));
            }
            self.check_may_send_credentials(url)?;
            self.lock_auth().basic = true;
        } else {
            return Err(denied(format!(
                "expected a WWW-Authenticate challenge of scheme Bearer or Basic, found {:?}{}",
                challenges
                    .iter()
                    .map(|c| c.scheme.as_str())
                    .collect::<Vec<_>>(),
                describe_body(&body_excerpt(&unauthorized))
            )));
        }
        let response = self.attempt(&method, url, &scope, &headers, body).await?;
        match response.status() {
            status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                let bytes = read_body(method.clone(), url, response).await?;
                Err(RegistryError::Denied {
                    method,
                    url: url.to_string(),
                    status,
                    detail: format!(
                        "still refused after authenticating{}{}",
                        match &self.inner.credentials {
                            Some(c) => format!(" as {:?}", c.username()),
                            None => " anonymously".to_owned(),
                        },
                        describe_body(&body_excerpt(&bytes))
                    ),
                })
            }
            _ => Ok(response),
        }
    }

    /// One request with whatever authentication the client already holds.
    async fn attempt(
        &self,
        method: &Method,
        url: &Url,
        scope: &str,
        headers: &HeaderMap,
        body: Option<Vec<u8>>,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut request = self
            .inner
            .http
            .request(method.clone(), url.clone())
            .headers(headers.clone());
        let (basic, token) = {
            let auth = self.lock_auth();
            let token = auth
                .tokens
                .get(scope)
                .filter(|t| t.renew_at > Instant::now())
                .map(|t| t.token.clone());
            (auth.basic, token)
        };
        if let Some(token) = token {
            request = request.bearer_auth(token);
        } else if basic && let Some(credentials) = &self.inner.credentials {
            request = request.basic_auth(credentials.username(), Some(credentials.password()));
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        request
            .send()
            .await
            .map_err(|source| RegistryError::Transport {
                method: method.clone(),
                url: url.to_string(),
                source,
            })
    }

    /// Fetch a Bearer token for `scope` from the challenge's realm and cache it.
    async fn fetch_token(
        &self,
        url: &Url,
        challenge: &Challenge,
        scope: &str,
    ) -> Result<(), RegistryError> {
        let realm = challenge
            .param("realm")
            .ok_or_else(|| RegistryError::Malformed {
                url: url.to_string(),
                expected: "a Bearer challenge with a realm".to_owned(),
                found: format!("parameters {:?}", challenge.param_names()),
            })?;
        let mut token_url = Url::parse(realm).map_err(|e| RegistryError::Malformed {
            url: url.to_string(),
            expected: "a Bearer realm that is an absolute http(s) URL".to_owned(),
            found: format!("{realm:?} ({e})"),
        })?;
        if !matches!(token_url.scheme(), "http" | "https") {
            return Err(RegistryError::Malformed {
                url: url.to_string(),
                expected: "a Bearer realm that is an http(s) URL".to_owned(),
                found: format!("{realm:?}"),
            });
        }
        {
            let mut query = token_url.query_pairs_mut();
            if let Some(service) = challenge.param("service") {
                query.append_pair("service", service);
            }
            // The challenge names the scope the registry wants; ours is the fallback.
            query.append_pair("scope", challenge.param("scope").unwrap_or(scope));
        }
        let mut request = self.inner.http.get(token_url.clone());
        if let Some(credentials) = &self.inner.credentials {
            self.check_may_send_credentials(&token_url)?;
            request = request.basic_auth(credentials.username(), Some(credentials.password()));
        }
        let response = request
            .send()
            .await
            .map_err(|source| RegistryError::Transport {
                method: Method::GET,
                url: token_url.to_string(),
                source,
            })?;
        let status = response.status();
        let bytes = read_body(Method::GET, &token_url, response).await?;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RegistryError::Denied {
                method: Method::GET,
                url: token_url.to_string(),
                status,
                detail: format!(
                    "the token service refused {}{}",
                    match &self.inner.credentials {
                        Some(c) => format!("the credentials of {:?}", c.username()),
                        None => "an anonymous request (no credentials are configured)".to_owned(),
                    },
                    describe_body(&body_excerpt(&bytes))
                ),
            });
        }
        if status != StatusCode::OK {
            return Err(status_error(
                Method::GET,
                &token_url,
                "200 OK with a token",
                status,
                bytes,
            ));
        }
        let (token, lifetime) =
            parse_token_response(&bytes).map_err(|found| RegistryError::Malformed {
                url: token_url.to_string(),
                expected: "JSON with a non-empty \"token\" or \"access_token\"".to_owned(),
                found,
            })?;
        let renew_at = Instant::now() + lifetime.saturating_sub(TOKEN_EXPIRY_MARGIN);
        self.lock_auth()
            .tokens
            .insert(scope.to_owned(), CachedToken { token, renew_at });
        Ok(())
    }

    /// Credentials go only over TLS or to hosts allowed plain HTTP.
    fn check_may_send_credentials(&self, url: &Url) -> Result<(), RegistryError> {
        if url.scheme() == "https" || plain_http_allowed(url, &self.inner.insecure_hosts) {
            Ok(())
        } else {
            Err(RegistryError::Settings(format!(
                "refusing to send credentials over plain HTTP to {}: expected https, a loopback \
                 host, or the host in registry.insecure_hosts",
                host_port(url)
            )))
        }
    }

    fn lock_auth(&self) -> std::sync::MutexGuard<'_, AuthState> {
        // The state is a cache: a panic elsewhere cannot leave it inconsistent.
        self.inner
            .auth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A manifest as read from the registry.
#[derive(Clone)]
struct Manifest {
    url: String,
    media_type: String,
    digest: String,
    bytes: Vec<u8>,
}

/// rustls with the ring provider and the operating system's trust store.
fn tls_config() -> Result<rustls::ClientConfig, RegistryError> {
    use rustls_platform_verifier::BuilderVerifierExt as _;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_platform_verifier())
        .map_err(|e| RegistryError::Settings(format!("cannot set up TLS: {e}")))?
        .with_no_client_auth();
    Ok(config)
}

fn accept_manifests() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static(accept_value()));
    headers
}

/// The `Accept` header value for manifests.
const fn accept_value() -> &'static str {
    "application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.index.v1+json"
}

fn scope(repository: &str, access: Access) -> String {
    match access {
        Access::Pull => format!("repository:{repository}:pull"),
        Access::PullPush => format!("repository:{repository}:pull,push"),
        Access::Delete => format!("repository:{repository}:delete"),
    }
}

async fn read_body(
    method: Method,
    url: &Url,
    mut response: reqwest::Response,
) -> Result<Vec<u8>, RegistryError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|source| RegistryError::Transport {
            method: method.clone(),
            url: url.to_string(),
            source,
        })?
    {
        if bytes.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(RegistryError::Malformed {
                url: url.to_string(),
                expected: format!("an answer of at most {MAX_DOCUMENT_BYTES} bytes"),
                found: "a larger one".to_owned(),
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The body of `response` when its status is one of `accepted`; otherwise the error that says
/// the registry answered something other than `expected` (see [`status_error`]).
async fn expect_status(
    method: Method,
    url: &Url,
    response: reqwest::Response,
    accepted: &[StatusCode],
    expected: &'static str,
) -> Result<Vec<u8>, RegistryError> {
    let status = response.status();
    let body = read_body(method.clone(), url, response).await?;
    if accepted.contains(&status) {
        Ok(body)
    } else {
        Err(status_error(method, url, expected, status, body))
    }
}

fn status_error(
    method: Method,
    url: &Url,
    expected: &'static str,
    status: StatusCode,
    body: Vec<u8>,
) -> RegistryError {
    if status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED {
        return RegistryError::Denied {
            method,
            url: url.to_string(),
            status,
            detail: format!("expected {expected}{}", describe_body(&body_excerpt(&body))),
        };
    }
    RegistryError::Status {
        method,
        url: url.to_string(),
        expected,
        status,
        body: body_excerpt(&body),
    }
}

/// When the reference is a digest, the content must have it.
fn check_digest_reference(url: &Url, reference: &str, digest: &str) -> Result<(), RegistryError> {
    if reference.contains(':') && reference != digest {
        return Err(RegistryError::DigestMismatch {
            url: url.to_string(),
            expected: reference.to_owned(),
            found: digest.to_owned(),
        });
    }
    Ok(())
}

/// Whether `value` is a `sha256` digest (by the one parser, [`Digest::parse`]); the only
/// algorithm this client verifies content with.
fn is_digest(value: &str) -> bool {
    Digest::parse(value).is_ok_and(|digest| digest.algorithm() == "sha256")
}

fn is_index(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_DOCKER_MANIFEST_LIST || media_type == MEDIA_TYPE_OCI_INDEX
}

/// The `mediaType` a manifest declares, when it is one this client knows.
fn embedded_media_type(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Typed {
        media_type: Option<String>,
    }
    let typed: Typed = serde_json::from_slice(bytes).ok()?;
    typed
        .media_type
        .filter(|t| MANIFEST_MEDIA_TYPES.contains(&t.as_str()))
}

/// `config.digest` of an image manifest; the error says what was found instead.
fn config_digest(bytes: &[u8]) -> Result<String, String> {
    #[derive(Deserialize)]
    struct Descriptor {
        digest: String,
    }
    #[derive(Deserialize)]
    struct ImageManifest {
        config: Descriptor,
    }
    let manifest: ImageManifest =
        serde_json::from_slice(bytes).map_err(|e| format!("{e} in {:?}", body_excerpt(bytes)))?;
    if is_digest(&manifest.config.digest) {
        Ok(manifest.config.digest)
    } else {
        Err(format!("config.digest {:?}", manifest.config.digest))
    }
}

/// The `config.Labels` of an image configuration (null or absent → empty).
fn labels_from_config(bytes: &[u8]) -> Result<BTreeMap<String, String>, String> {
    #[derive(Deserialize)]
    struct ImageConfig {
        #[serde(default)]
        config: Option<ContainerConfig>,
    }
    #[derive(Deserialize)]
    struct ContainerConfig {
        #[serde(rename = "Labels", default)]
        labels: Option<BTreeMap<String, String>>,
    }
    let config: ImageConfig =
        serde_json::from_slice(bytes).map_err(|e| format!("{e} in {:?}", body_excerpt(bytes)))?;
    Ok(config.config.and_then(|c| c.labels).unwrap_or_default())
}

/// The `created` field of an image configuration, when it is a string.
fn created_from_config(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct ImageConfig {
        #[serde(default)]
        created: Option<String>,
    }
    serde_json::from_slice::<ImageConfig>(bytes)
        .ok()
        .and_then(|config| config.created)
}

/// The manifest of an index to read labels from: the one for this machine's platform (linux and
/// its architecture), else the first one.
fn select_platform_manifest(bytes: &[u8]) -> Result<String, String> {
    #[derive(Deserialize)]
    struct Index {
        manifests: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        digest: String,
        #[serde(default)]
        platform: Option<Platform>,
    }
    #[derive(Deserialize)]
    struct Platform {
        #[serde(default)]
        os: String,
        #[serde(default)]
        architecture: String,
    }
    let index: Index =
        serde_json::from_slice(bytes).map_err(|e| format!("{e} in {:?}", body_excerpt(bytes)))?;
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let chosen = index
        .manifests
        .iter()
        .find(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == architecture)
        })
        .or(index.manifests.first())
        .ok_or_else(|| "an empty manifests list".to_owned())?;
    if is_digest(&chosen.digest) {
        Ok(chosen.digest.clone())
    } else {
        Err(format!("manifest digest {:?}", chosen.digest))
    }
}

/// The token and its lifetime from a token endpoint's JSON answer.
fn parse_token_response(bytes: &[u8]) -> Result<(String, Duration), String> {
    #[derive(Deserialize)]
    struct TokenResponse {
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        access_token: Option<String>,
        #[serde(default)]
        expires_in: Option<u64>,
    }
    // Not echoed: the body holds a secret.
    let parsed: TokenResponse = serde_json::from_slice(bytes)
        .map_err(|e| format!("a body that is not the expected JSON ({e})"))?;
    let token = parsed
        .token
        .filter(|t| !t.is_empty())
        .or(parsed.access_token.filter(|t| !t.is_empty()))
        .ok_or_else(|| "no non-empty token or access_token".to_owned())?;
    let lifetime = parsed
        .expires_in
        .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
    Ok((token, lifetime))
}

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Challenge {
    /// `Bearer`, `Basic`, … as sent.
    scheme: String,
    /// Parameter names (lowercased) and values (unquoted).
    params: Vec<(String, String)>,
}

impl Challenge {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn param_names(&self) -> Vec<&str> {
        self.params.iter().map(|(n, _)| n.as_str()).collect()
    }
}

/// Parse a `WWW-Authenticate` value (RFC 7235): one or more challenges, each a scheme followed by
/// comma-separated `name=value` parameters whose values are tokens or quoted strings (which may
/// contain commas and backslash escapes). Unparseable parts are skipped.
fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut challenges: Vec<Challenge> = Vec::new();
    let chars: Vec<char> = header.chars().collect();
    let mut i = 0;
    let is_token = |c: char| !c.is_whitespace() && !matches!(c, ',' | '=' | '"');
    let skip = |i: &mut usize, pred: &dyn Fn(char) -> bool| {
        while *i < chars.len() && pred(chars[*i]) {
            *i += 1;
        }
    };
    while i < chars.len() {
        skip(&mut i, &|c| c.is_whitespace() || c == ',');
        let start = i;
        skip(&mut i, &is_token);
        if start == i {
            // A stray character: skip it.
            i += 1;
            continue;
        }
        let word: String = chars[start..i].iter().collect();
        let mut after = i;
        skip(&mut after, &|c| c.is_whitespace());
        if after < chars.len() && chars[after] == '=' && !challenges.is_empty() {
            // A parameter of the current challenge.
            i = after + 1;
            skip(&mut i, &|c| c.is_whitespace());
            let value = if i < chars.len() && chars[i] == '"' {
                i += 1;
                let mut value = String::new();
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    value.push(chars[i]);
                    i += 1;
                }
                i += 1; // the closing quote
                value
            } else {
                let start = i;
                skip(&mut i, &|c| c != ',' && !c.is_whitespace());
                chars[start..i].iter().collect()
            };
            if let Some(current) = challenges.last_mut() {
                current.params.push((word.to_ascii_lowercase(), value));
            }
        } else if after < chars.len() && chars[after] == '=' {
            // token68 or a parameter before any scheme: not understood, skip to the next comma.
            skip(&mut i, &|c| c != ',');
        } else {
            challenges.push(Challenge {
                scheme: word,
                params: Vec::new(),
            });
        }
    }
    challenges
}

/// `host[:port]` of a URL (the port only when explicit).
fn host_port(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// Plain HTTP is allowed to loopback hosts and to the configured insecure ones.
fn plain_http_allowed(url: &Url, insecure_hosts: &[String]) -> bool {
    let name = url.host_str().unwrap_or_default();
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    let loopback = match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    };
    let host = host_port(url);
    loopback
        || insecure_hosts.iter().any(|allowed| {
            allowed.eq_ignore_ascii_case(&host) || allowed.eq_ignore_ascii_case(name)
        })
}

/// A URL with any password replaced, for messages about unparseable or rejected settings.
fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://<redacted>@{}", &rest[at + 1..]),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_parse_with_quoted_commas() {
        let parsed = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#,
        );
        assert_eq!(parsed.len(), 1);
        let bearer = &parsed[0];
        assert_eq!(bearer.scheme, "Bearer");
        assert_eq!(bearer.param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(bearer.param("service"), Some("registry.docker.io"));
        assert_eq!(
            bearer.param("scope"),
            Some("repository:samalba/my-app:pull,push")
        );
    }

    #[test]
    fn challenges_parse_tokens_escapes_spaces_and_several_schemes() {
        let parsed = parse_challenges(
            r#"Basic realm="Registry \"Realm\"", Bearer realm=https://h/token , error="insufficient_scope",scope=x"#,
        );
        assert_eq!(parsed.len(), 2, "{parsed:?}");
        assert_eq!(parsed[0].scheme, "Basic");
        assert_eq!(parsed[0].param("realm"), Some(r#"Registry "Realm""#));
        assert_eq!(parsed[1].scheme, "Bearer");
        assert_eq!(parsed[1].param("realm"), Some("https://h/token"));
        assert_eq!(parsed[1].param("error"), Some("insufficient_scope"));
        assert_eq!(parsed[1].param("scope"), Some("x"));

        let upper = parse_challenges(r#"Basic REALM="r""#);
        assert_eq!(
            upper[0].param("realm"),
            Some("r"),
            "names are case-insensitive"
        );
        assert!(parse_challenges("").is_empty());
        assert_eq!(parse_challenges("Basic")[0].params, vec![]);
    }

    #[test]
    fn the_accept_header_lists_every_manifest_type() {
        let accept = accept_value();
        for media_type in MANIFEST_MEDIA_TYPES {
            assert!(
                accept.contains(media_type),
                "{media_type} missing in {accept}"
            );
        }
        assert_eq!(accept.split(", ").count(), MANIFEST_MEDIA_TYPES.len());
        assert!(HeaderValue::from_str(accept).is_ok());
    }

    #[test]
    fn embedded_media_types_are_recognised_only_when_known() {
        let docker = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#;
        assert_eq!(
            embedded_media_type(docker).as_deref(),
            Some(MEDIA_TYPE_DOCKER_MANIFEST)
        );
        assert_eq!(embedded_media_type(br#"{"mediaType":"text/plain"}"#), None);
        assert_eq!(embedded_media_type(br#"{"schemaVersion":2}"#), None);
        assert_eq!(embedded_media_type(b"not json"), None);
        assert!(is_index(MEDIA_TYPE_OCI_INDEX) && is_index(MEDIA_TYPE_DOCKER_MANIFEST_LIST));
        assert!(!is_index(MEDIA_TYPE_OCI_MANIFEST));
    }

    #[test]
    fn labels_come_from_config_labels() {
        let config = br#"{"architecture":"amd64","config":{"Env":["PATH=/bin"],"Labels":{"io.slipway.content-key":"abc","maintainer":"x"}},"rootfs":{}}"#;
        let labels = labels_from_config(config).unwrap();
        assert_eq!(labels.len(), 2);
        assert_eq!(labels["io.slipway.content-key"], "abc");

        assert!(
            labels_from_config(br#"{"config":{"Labels":null}}"#)
                .unwrap()
                .is_empty()
        );
        assert!(labels_from_config(br#"{"config":{}}"#).unwrap().is_empty());
        assert!(
            labels_from_config(br#"{"architecture":"amd64"}"#)
                .unwrap()
                .is_empty()
        );
        let error = labels_from_config(br#"{"config":{"Labels":{"n":1}}}"#).unwrap_err();
        assert!(error.contains("invalid type"), "{error}");
        assert!(labels_from_config(b"<html>").is_err());
    }

    #[test]
    fn config_digests_and_platform_manifests_are_read_from_manifests() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let manifest = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":1,"digest":"{digest}"}},"layers":[]}}"#
        );
        assert_eq!(config_digest(manifest.as_bytes()).unwrap(), digest);
        assert!(config_digest(br#"{"config":{"digest":"md5:x"}}"#).is_err());
        assert!(config_digest(br#"{"manifests":[]}"#).is_err());

        let other = format!("sha256:{}", "b".repeat(64));
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            a => a,
        };
        let index = format!(
            r#"{{"manifests":[{{"digest":"{other}","platform":{{"os":"linux","architecture":"s390x-not-this"}}}},{{"digest":"{digest}","platform":{{"os":"linux","architecture":"{arch}"}}}}]}}"#
        );
        assert_eq!(select_platform_manifest(index.as_bytes()).unwrap(), digest);
        let no_platform = format!(r#"{{"manifests":[{{"digest":"{other}"}}]}}"#);
        assert_eq!(
            select_platform_manifest(no_platform.as_bytes()).unwrap(),
            other
        );
        assert!(select_platform_manifest(br#"{"manifests":[]}"#).is_err());
    }

    #[test]
    fn images_of_other_registries_or_without_reference_are_refused_before_anything_is_sent() {
        let client = RegistryClient::new(&RegistrySettings::default(), None).unwrap();
        let image = |text: &str| ImageRef::parse(text).unwrap();
        let digest = format!("sha256:{}", "0f".repeat(32));
        assert_eq!(
            client.locate(&image("app/job:1")).unwrap(),
            ("app/job", "1")
        );
        assert_eq!(
            client
                .locate(&image(&format!("127.0.0.1:5000/app/job:1@{digest}")))
                .unwrap(),
            ("app/job", digest.as_str())
        );
        assert_eq!(
            client.locate_tag(&image("127.0.0.1:5000/a:t")).unwrap(),
            ("a", "t")
        );
        for (bad, expected) in [
            ("other.example:5000/app/job:1", "an image of this registry"),
            ("127.0.0.1:5000/app/job", "a tag or a digest"),
        ] {
            let error = client.locate(&image(bad)).unwrap_err().to_string();
            assert!(error.contains(expected), "{bad}: {error}");
        }
        let untagged = image(&format!("app@{digest}"));
        assert!(
            client
                .locate_tag(&untagged)
                .unwrap_err()
                .to_string()
                .contains("with a tag")
        );
        assert!(!is_digest(&format!("sha256:{}", "F".repeat(64))));
        assert!(!is_digest(&format!("sha512:{}", "f".repeat(128))));
    }

    #[test]
    fn token_responses_accept_token_or_access_token() {
        let (token, lifetime) =
            parse_token_response(br#"{"token":"t1","expires_in":300}"#).unwrap();
        assert_eq!((token.as_str(), lifetime), ("t1", Duration::from_secs(300)));
        let (token, lifetime) = parse_token_response(br#"{"access_token":"t2"}"#).unwrap();
        assert_eq!((token.as_str(), lifetime), ("t2", DEFAULT_TOKEN_LIFETIME));
        assert!(parse_token_response(br#"{"token":""}"#).is_err());
        let error = parse_token_response(br#"{"token":12,"secret":"s3cr3t"}"#).unwrap_err();
        assert!(
            !error.contains("s3cr3t"),
            "the body is never echoed: {error}"
        );
    }

    #[test]
    fn settings_are_checked() {
        let ok = |url: &str| {
            RegistryClient::new(
                &RegistrySettings {
                    url: url.to_owned(),
                    ..RegistrySettings::default()
                },
                None,
            )
        };
        assert_eq!(
            ok("http://127.0.0.1:5000/").unwrap().host(),
            "127.0.0.1:5000"
        );
        assert_eq!(
            ok("http://localhost:5000").unwrap().host(),
            "localhost:5000"
        );
        assert_eq!(ok("http://[::1]:5000").unwrap().host(), "[::1]:5000");
        // Building a TLS client proves the preconfigured rustls matches reqwest's.
        assert_eq!(
            ok("https://registry.example.com").unwrap().host(),
            "registry.example.com"
        );

        let plain = ok("http://registry.example.com").unwrap_err().to_string();
        assert!(
            plain.contains("plain HTTP") && plain.contains("insecure_hosts"),
            "{plain}"
        );
        let allowed = RegistryClient::new(
            &RegistrySettings {
                url: "http://registry.example.com:5000".to_owned(),
                insecure_hosts: vec!["registry.example.com".to_owned()],
                ..RegistrySettings::default()
            },
            None,
        );
        assert!(allowed.is_ok());

        let with_password = ok("https://user:hunter2@registry.example.com")
            .unwrap_err()
            .to_string();
        assert!(!with_password.contains("hunter2"), "{with_password}");
        assert!(
            with_password.contains("registry.username"),
            "{with_password}"
        );
        assert!(ok("https://registry.example.com/v2").is_err());
        assert!(ok("ftp://registry.example.com").is_err());
        assert!(ok("not a url").is_err());
        assert_eq!(redact_url("https://u:p@h/x"), "https://<redacted>@h/x");
    }

    #[test]
    fn credentials_are_read_as_the_settings_name_them() {
        let dir =
            std::env::temp_dir().join(format!("slipway-registry-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("password");
        std::fs::write(&file, "s3cr3t\n").unwrap();
        let settings = RegistrySettings {
            username: Some("robot".to_owned()),
            password_file: Some(file.clone()),
            ..RegistrySettings::default()
        };
        let found = credentials(&settings).unwrap().unwrap();
        assert_eq!(found, RegistryCredentials::new("robot", "s3cr3t"));
        let no_user = RegistrySettings {
            username: None,
            ..settings
        };
        assert!(matches!(
            credentials(&no_user),
            Err(RegistryError::Settings(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn transient_statuses_are_told_apart_from_permanent_ones() {
        let url = Url::parse("http://127.0.0.1:5000/v2/").unwrap();
        let status = |code: u16| {
            status_error(
                Method::GET,
                &url,
                "200 OK",
                StatusCode::from_u16(code).unwrap(),
                b"{\"errors\":[]}".to_vec(),
            )
        };
        for transient in [500, 502, 503, 429, 408] {
            assert!(status(transient).is_transient(), "{transient}");
        }
        for permanent in [400, 401, 403, 404, 405] {
            assert!(!status(permanent).is_transient(), "{permanent}");
        }
        let message = status(503).to_string();
        assert!(
            message.contains("http://127.0.0.1:5000/v2/")
                && message.contains("expected 200 OK")
                && message.contains("503")
                && message.contains("errors"),
            "{message}"
        );
    }
}

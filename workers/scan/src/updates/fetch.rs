//! The I/O shell of updates: downloads repository indexes over HTTP(S) (reqwest, rustls with
//! the ring provider and the platform's trust store), caches the big ones by checksum, and
//! parses them off the async threads.
//!
//! Per repository kind:
//! - apt: `InRelease` (else `Release`) is fetched every time; each `Packages` file it lists
//!   (`.xz`, else `.gz`, else plain) is taken from the cache when a file with the listed
//!   SHA-256 is there, else downloaded, checked against the listed size and SHA-256, and cached;
//! - yum: `repodata/repomd.xml` every time; the primary file as for apt, by the checksum
//!   repomd.xml gives;
//! - apk: `<arch>/APKINDEX.tar.gz` has no checksum above it: a conditional GET with the
//!   `ETag`/`Last-Modified` of the last download; `304 Not Modified` uses the cached copy.
//!
//! Repositories are fetched concurrently; one failing does not stop the others
//! ([`Fetcher::fetch_indexes`] returns the indexes it could read and an error per repository it
//! could not). Every request has a time limit, every download and every decompressed index a
//! size limit.

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::header::{ETAG, HeaderMap, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use reqwest::{StatusCode, Url};

use super::cache::{Cache, CacheError, Validators};
use super::config::{FetchSettings, Repo, RepoSource};
use super::index::{
    AvailablePackage, Checksum, ChecksumAlgorithm, Compression, IndexFile, ParseError,
};
use super::language::documents::{self, DocumentError};
use super::language::lookup::{ReleaseCache, Releases};
use super::language::{IndexKind, PackageIndex};
use super::{RepoIndex, apk, apt, yum};
use crate::package::OsIdentity;

/// A parser of a downloaded index file: its bytes, their compression, the decompressed-size
/// limit.
type IndexParser = fn(&[u8], Compression, u64) -> Result<Vec<AvailablePackage>, ParseError>;

/// Why a repository's indexes could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The settings cannot be used, or the HTTP client cannot be built.
    #[error("updates settings: {0}")]
    Setup(String),
    /// The request failed: no connection, a timeout, a reset.
    #[error("GET {url}: {message}")]
    Request {
        /// The URL requested.
        url: String,
        /// What failed.
        message: String,
    },
    /// The server answered with another status than expected.
    #[error("GET {url}: expected 200 OK, found {status}")]
    Status {
        /// The URL requested.
        url: String,
        /// The status received.
        status: String,
    },
    /// The response is larger than `max-download-bytes`.
    #[error("GET {url}: expected at most {limit} bytes, found {found}")]
    TooLarge {
        /// The URL requested.
        url: String,
        /// The limit.
        limit: u64,
        /// What the server announced or sent.
        found: String,
    },
    /// A downloaded index file does not match the size or checksum its top file lists.
    #[error("GET {url}: expected {expected} (as {listed_in} lists), found {found}; not cached")]
    Mismatch {
        /// The URL of the index file.
        url: String,
        /// The top file that lists it.
        listed_in: String,
        /// The listed size or checksum.
        expected: String,
        /// The downloaded file's.
        found: String,
    },
    /// A package index's answer about one package could not be read.
    #[error("{url}: {error}")]
    Document {
        /// The URL it came from.
        url: String,
        /// What is wrong with it.
        error: DocumentError,
    },
    /// A file could not be parsed.
    #[error("{url}: {error}")]
    Parse {
        /// The URL it came from.
        url: String,
        /// What is wrong with it.
        error: ParseError,
    },
    /// The top file does not list the index file the configuration asks for.
    #[error("{url}: expected its SHA256 list to name one of {expected}, found none of them")]
    NotListed {
        /// The URL of the top file.
        url: String,
        /// What was looked for.
        expected: String,
    },
    /// The top file points outside the repository.
    #[error("{url}: expected index locations under {base}, found {found:?}")]
    Location {
        /// The URL of the top file.
        url: String,
        /// The repository's directory.
        base: String,
        /// The location given.
        found: String,
    },
    /// The cache could not be read or written.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// A background parsing or hashing task failed.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A repository whose indexes could not be read, and why.
#[derive(Debug, thiserror::Error)]
#[error("repository {repo:?}: {error}")]
pub struct RepoError {
    /// The repository's configured name.
    pub repo: String,
    /// What failed.
    pub error: FetchError,
}

/// Downloads and caches repository indexes.
#[derive(Debug)]
pub struct Fetcher {
    http: reqwest::Client,
    cache: Cache,
    timeout: Duration,
    max_download_bytes: u64,
    max_index_bytes: u64,
    max_document_bytes: u64,
    max_index_lookups: u64,
    /// Package indexes' answers, by document URL.
    releases: ReleaseCache,
}

/// What a GET returned.
enum Got {
    /// `200 OK`, with the body and its validators.
    Body {
        bytes: Vec<u8>,
        etag: Option<String>,
        last_modified: Option<String>,
    },
    /// `304 Not Modified` (only for conditional requests).
    NotModified,
    /// `404 Not Found` or `410 Gone`.
    NotFound,
}

impl Fetcher {
    /// A fetcher with `settings`: time and size limits at least 1, cache in `cache_dir`.
    pub fn new(settings: &FetchSettings) -> Result<Fetcher, FetchError> {
        for (name, value) in [
            ("timeout_ms", settings.timeout_ms),
            ("max_download_bytes", settings.max_download_bytes),
            ("max_index_bytes", settings.max_index_bytes),
            ("max_document_bytes", settings.max_document_bytes),
        ] {
            if value == 0 {
                return Err(FetchError::Setup(format!(
                    "{name}: expected at least 1, found 0"
                )));
            }
        }
        let timeout = Duration::from_millis(settings.timeout_ms);
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config()?)
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("slipway-scan/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                FetchError::Setup(format!("cannot build the HTTP client: {}", chain(&e)))
            })?;
        Ok(Fetcher {
            http,
            cache: Cache::new(&settings.cache_dir),
            timeout,
            max_download_bytes: settings.max_download_bytes,
            max_index_bytes: settings.max_index_bytes,
            max_document_bytes: settings.max_document_bytes,
            max_index_lookups: settings.max_index_lookups,
            releases: ReleaseCache::new(Duration::from_millis(settings.index_cache_ttl_ms)),
        })
    }

    /// The indexes of every repository in `repos` that applies to `os`, fetched concurrently,
    /// in the order of `repos`; and an error for each such repository that could not be read.
    pub async fn fetch_indexes(
        &self,
        repos: &[Repo],
        os: &OsIdentity,
    ) -> (Vec<RepoIndex>, Vec<RepoError>) {
        let results = join_all(
            repos
                .iter()
                .filter(|repo| repo.applies_to.matches(os))
                .map(|repo| self.fetch_index(repo)),
        )
        .await;
        let mut indexes = Vec::new();
        let mut errors = Vec::new();
        for result in results {
            match result {
                Ok(index) => indexes.push(index),
                Err(error) => errors.push(error),
            }
        }
        (indexes, errors)
    }

    /// The packages `repo` offers, from all its configured indexes.
    pub async fn fetch_index(&self, repo: &Repo) -> Result<RepoIndex, RepoError> {
        let packages = match &repo.source {
            RepoSource::Apt {
                release_dir,
                package_dirs,
            } => self.apt(release_dir, package_dirs).await,
            RepoSource::Yum { base } => self.yum(base).await,
            RepoSource::Apk { indexes } => self.apk(indexes).await,
        };
        match packages {
            Ok(packages) => Ok(RepoIndex {
                repo: repo.name.clone(),
                ecosystem: repo.ecosystem(),
                packages,
            }),
            Err(error) => Err(RepoError {
                repo: repo.name.clone(),
                error,
            }),
        }
    }

    async fn apt(
        &self,
        release_dir: &Url,
        package_dirs: &[String],
    ) -> Result<Vec<AvailablePackage>, FetchError> {
        let in_release = join(release_dir, "InRelease")?;
        let (release_url, bytes) = match self.get(&in_release, None).await? {
            Got::Body { bytes, .. } => (in_release, bytes),
            Got::NotFound | Got::NotModified => {
                let release = join(release_dir, "Release")?;
                let bytes = self.get_body(&release).await?;
                (release, bytes)
            }
        };
        let release = apt::parse_release(&bytes).map_err(|error| FetchError::Parse {
            url: release_url.to_string(),
            error,
        })?;
        let mut packages = Vec::new();
        for dir in package_dirs {
            let file = release
                .packages_file(dir)
                .ok_or_else(|| FetchError::NotListed {
                    url: release_url.to_string(),
                    expected: apt::PACKAGES_NAMES
                        .map(|name| {
                            if dir.is_empty() {
                                name.to_owned()
                            } else {
                                format!("{dir}/{name}")
                            }
                        })
                        .join(", "),
                })?;
            let url = under(release_dir, &file.path, &release_url)?;
            let bytes = self.index_file(&url, file, &release_url).await?;
            packages.extend(
                self.parse(&url, &file.path, bytes, apt::parse_packages)
                    .await?,
            );
        }
        Ok(packages)
    }

    async fn yum(&self, base: &Url) -> Result<Vec<AvailablePackage>, FetchError> {
        let repomd_url = join(base, "repodata/repomd.xml")?;
        let bytes = self.get_body(&repomd_url).await?;
        let repomd = yum::parse_repomd(&bytes).map_err(|error| FetchError::Parse {
            url: repomd_url.to_string(),
            error,
        })?;
        let file = &repomd.primary;
        let url = under(base, &file.path, &repomd_url)?;
        let bytes = self.index_file(&url, file, &repomd_url).await?;
        self.parse(&url, &file.path, bytes, yum::parse_primary)
            .await
    }

    async fn apk(&self, indexes: &[Url]) -> Result<Vec<AvailablePackage>, FetchError> {
        let mut packages = Vec::new();
        for url in indexes {
            let bytes = self.conditional(url).await?;
            let limit = self.max_index_bytes;
            packages.extend(
                self.blocking(url, move || apk::parse_apkindex(&bytes, limit))
                    .await?,
            );
        }
        Ok(packages)
    }

    /// Most package-index lookups one scan makes (`max_index_lookups`).
    pub fn max_index_lookups(&self) -> u64 {
        self.max_index_lookups
    }

    /// The releases `index` lists for the package `name` (as
    /// [`super::language::lookup_name`] gives it): none when the index does not know it (404,
    /// 410) or the name cannot be one of its packages. Answers, including "unknown", are kept
    /// for `index_cache_ttl_ms`.
    pub async fn releases(&self, index: &PackageIndex, name: &str) -> Result<Releases, FetchError> {
        let Some(url) = index.document_url(name) else {
            return Ok(std::sync::Arc::default());
        };
        if let Some(cached) = self.releases.get(&url) {
            return Ok(cached);
        }
        let accept = match index.kind {
            IndexKind::Pypi => Some(
                "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01",
            ),
            IndexKind::Npm => {
                Some("application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8")
            }
            IndexKind::Rubygems => Some("application/json"),
            IndexKind::RubygemsCompact => None,
        };
        let releases = match self
            .get_limited(&url, None, accept, self.max_document_bytes)
            .await?
        {
            Got::NotFound => Vec::new(),
            Got::NotModified => {
                return Err(FetchError::Status {
                    url: url.to_string(),
                    status: StatusCode::NOT_MODIFIED.to_string(),
                });
            }
            Got::Body { bytes, .. } => {
                let kind = index.kind;
                let name = name.to_owned();
                tokio::task::spawn_blocking(move || match kind {
                    IndexKind::Pypi => documents::parse_simple_index(&name, &bytes),
                    IndexKind::Npm => documents::parse_packument(&bytes),
                    IndexKind::Rubygems => documents::parse_gem_versions(&bytes),
                    IndexKind::RubygemsCompact => documents::parse_compact_info(&bytes),
                })
                .await
                .map_err(|e| FetchError::Internal(format!("task for {url}: {e}")))?
                .map_err(|error| FetchError::Document {
                    url: url.to_string(),
                    error,
                })?
            }
        };
        Ok(self.releases.put(url, releases))
    }

    /// An index file named by a top file at `listed_in`: from the cache when a file with its
    /// checksum is there, else downloaded, checked and cached.
    async fn index_file(
        &self,
        url: &Url,
        file: &IndexFile,
        listed_in: &Url,
    ) -> Result<Vec<u8>, FetchError> {
        if let Some(bytes) = self.cache.get(&file.checksum).await? {
            return Ok(bytes);
        }
        let bytes = self.get_body(url).await?;
        let mismatch = |expected: String, found: String| FetchError::Mismatch {
            url: url.to_string(),
            listed_in: listed_in.to_string(),
            expected,
            found,
        };
        let length = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if let Some(size) = file.size
            && size != length
        {
            return Err(mismatch(format!("{size} bytes"), format!("{length} bytes")));
        }
        let algorithm = file.checksum.algorithm;
        let (found, bytes) = self
            .blocking(url, move || Ok((Checksum::of(algorithm, &bytes), bytes)))
            .await?;
        if found != file.checksum {
            return Err(mismatch(file.checksum.to_string(), found.to_string()));
        }
        self.cache.put(&file.checksum, &bytes).await?;
        Ok(bytes)
    }

    /// A file without a listed checksum, fetched with a conditional GET against the validators
    /// of its last download; cached by its SHA-256.
    async fn conditional(&self, url: &Url) -> Result<Vec<u8>, FetchError> {
        let cached = match self.cache.validators(url).await? {
            Some(validators) => self
                .cache
                .get(&validators.checksum)
                .await?
                .map(|bytes| (validators, bytes)),
            None => None,
        };
        match self.get(url, cached.as_ref().map(|(v, _)| v)).await? {
            Got::NotModified => match cached {
                Some((_, bytes)) => Ok(bytes),
                None => Err(FetchError::Status {
                    url: url.to_string(),
                    status: "304 Not Modified to an unconditional request".to_owned(),
                }),
            },
            Got::NotFound => Err(FetchError::Status {
                url: url.to_string(),
                status: StatusCode::NOT_FOUND.to_string(),
            }),
            Got::Body {
                bytes,
                etag,
                last_modified,
            } => {
                let (checksum, bytes) = self
                    .blocking(url, move || {
                        Ok((Checksum::of(ChecksumAlgorithm::Sha256, &bytes), bytes))
                    })
                    .await?;
                self.cache.put(&checksum, &bytes).await?;
                if etag.is_some() || last_modified.is_some() {
                    let validators = Validators {
                        etag,
                        last_modified,
                        checksum,
                    };
                    self.cache.put_validators(url, &validators).await?;
                }
                Ok(bytes)
            }
        }
    }

    /// Parses the file at `path` (its name gives the compression) with `parser`, off the async
    /// threads, with the configured decompressed-size limit.
    async fn parse(
        &self,
        url: &Url,
        path: &str,
        bytes: Vec<u8>,
        parser: IndexParser,
    ) -> Result<Vec<AvailablePackage>, FetchError> {
        let compression = Compression::from_path(path).map_err(|error| FetchError::Parse {
            url: url.to_string(),
            error,
        })?;
        let limit = self.max_index_bytes;
        self.blocking(url, move || parser(&bytes, compression, limit))
            .await
    }

    /// Runs CPU-bound `work` on tokio's blocking pool; a parse error is reported for `url`.
    async fn blocking<T: Send + 'static>(
        &self,
        url: &Url,
        work: impl FnOnce() -> Result<T, ParseError> + Send + 'static,
    ) -> Result<T, FetchError> {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| FetchError::Internal(format!("task for {url}: {e}")))?
            .map_err(|error| FetchError::Parse {
                url: url.to_string(),
                error,
            })
    }

    /// GET `url`, which must answer `200 OK`.
    async fn get_body(&self, url: &Url) -> Result<Vec<u8>, FetchError> {
        match self.get(url, None).await? {
            Got::Body { bytes, .. } => Ok(bytes),
            Got::NotFound => Err(FetchError::Status {
                url: url.to_string(),
                status: StatusCode::NOT_FOUND.to_string(),
            }),
            Got::NotModified => Err(FetchError::Status {
                url: url.to_string(),
                status: StatusCode::NOT_MODIFIED.to_string(),
            }),
        }
    }

    /// GET `url`, conditional on `validators` when given; the body is read up to
    /// `max-download-bytes`.
    async fn get(&self, url: &Url, validators: Option<&Validators>) -> Result<Got, FetchError> {
        self.get_limited(url, validators, None, self.max_download_bytes)
            .await
    }

    /// GET `url`, conditional on `validators` when given, asking for `accept` when given; the
    /// body is read up to `limit` bytes.
    async fn get_limited(
        &self,
        url: &Url,
        validators: Option<&Validators>,
        accept: Option<&'static str>,
        limit: u64,
    ) -> Result<Got, FetchError> {
        let mut request = self.http.get(url.clone());
        if let Some(accept) = accept {
            request = request.header(reqwest::header::ACCEPT, accept);
        }
        if let Some(validators) = validators {
            if let Some(etag) = &validators.etag {
                request = request.header(IF_NONE_MATCH, etag);
            }
            if let Some(date) = &validators.last_modified {
                request = request.header(IF_MODIFIED_SINCE, date);
            }
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| self.request_error(url, &e))?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_MODIFIED if validators.is_some() => return Ok(Got::NotModified),
            StatusCode::NOT_FOUND | StatusCode::GONE => return Ok(Got::NotFound),
            status => {
                return Err(FetchError::Status {
                    url: url.to_string(),
                    status: status.to_string(),
                });
            }
        }
        let too_large = |found: String| FetchError::TooLarge {
            url: url.to_string(),
            limit,
            found,
        };
        if let Some(length) = response.content_length()
            && length > limit
        {
            return Err(too_large(format!("Content-Length {length}")));
        }
        let headers = response.headers().clone();
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.request_error(url, &e))?
        {
            if u64::try_from(bytes.len() + chunk.len()).unwrap_or(u64::MAX) > limit {
                return Err(too_large("more".to_owned()));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Got::Body {
            bytes,
            etag: header(&headers, ETAG),
            last_modified: header(&headers, LAST_MODIFIED),
        })
    }

    fn request_error(&self, url: &Url, error: &reqwest::Error) -> FetchError {
        let message = if error.is_timeout() {
            format!("timed out after {} ms", self.timeout.as_millis())
        } else if error.is_connect() {
            format!("cannot connect: {}", chain(error))
        } else {
            chain(error)
        };
        FetchError::Request {
            url: url.to_string(),
            message,
        }
    }
}

/// A header's value, when present and visible ASCII.
fn header(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// `dir` (ending in `/`) joined with a fixed relative name.
fn join(dir: &Url, name: &str) -> Result<Url, FetchError> {
    dir.join(name)
        .map_err(|e| FetchError::Setup(format!("cannot join {name:?} to {dir}: {e}")))
}

/// The URL of `path`, which the top file at `listed_in` gives relative to `base`; it must stay
/// under `base` (no absolute URLs, no `..` out of the repository).
fn under(base: &Url, path: &str, listed_in: &Url) -> Result<Url, FetchError> {
    let outside = || FetchError::Location {
        url: listed_in.to_string(),
        base: base.to_string(),
        found: path.to_owned(),
    };
    let url = base.join(path).map_err(|_| outside())?;
    if !url.as_str().starts_with(base.as_str()) || url.query().is_some() {
        return Err(outside());
    }
    Ok(url)
}

/// rustls with the ring provider and the operating system's trust store.
fn tls_config() -> Result<rustls::ClientConfig, FetchError> {
    use rustls_platform_verifier::BuilderVerifierExt as _;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_platform_verifier())
        .map_err(|e| FetchError::Setup(format!("cannot set up TLS: {e}")))?
        .with_no_client_auth();
    Ok(config)
}

/// An error and its sources, joined with `: `.
fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = inner.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_must_stay_under_the_repository() {
        let base = Url::parse("https://h/repo/").unwrap();
        let top = Url::parse("https://h/repo/repodata/repomd.xml").unwrap();
        assert_eq!(
            under(&base, "repodata/primary.xml.gz", &top)
                .unwrap()
                .as_str(),
            "https://h/repo/repodata/primary.xml.gz"
        );
        for bad in ["../other/primary.xml.gz", "https://evil/x", "/abs", "a?b=c"] {
            let error = under(&base, bad, &top).unwrap_err();
            assert!(
                matches!(error, FetchError::Location { .. }),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn settings_limits_must_be_positive() {
        let settings = FetchSettings {
            timeout_ms: 0,
            ..FetchSettings::default()
        };
        let error = Fetcher::new(&settings).unwrap_err();
        assert_eq!(
            error.to_string(),
            "updates settings: timeout_ms: expected at least 1, found 0"
        );
    }
}

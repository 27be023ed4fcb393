//! The on-disk cache of downloaded index files: each file named by its checksum
//! (`sha256-<hex>`), written atomically (temporary file, then rename) and checked again when
//! read; and, for indexes with no checksum above them (`APKINDEX.tar.gz`), the HTTP validators
//! (`ETag`, `Last-Modified`) of the last download of each URL, in `url-<sha256 of url>`.
//!
//! Nothing is evicted yet: entries of superseded indexes stay until removed by hand.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::Url;

use super::index::{Checksum, ChecksumAlgorithm};

/// A cache directory.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
}

/// A cache file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("index cache {}: {message}", .path.display())]
pub struct CacheError {
    /// The file or directory.
    pub path: PathBuf,
    /// What failed.
    pub message: String,
}

/// What the server said about the last download of a URL, to ask it whether the file changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validators {
    /// The `ETag` header, when there was one.
    pub etag: Option<String>,
    /// The `Last-Modified` header, when there was one.
    pub last_modified: Option<String>,
    /// The SHA-256 of the body, under which it is cached.
    pub checksum: Checksum,
}

impl Validators {
    /// The line format of a validators file: `etag <value>`, `last-modified <value>`,
    /// `sha256 <hex>` (header values cannot hold line breaks).
    fn to_text(&self) -> String {
        let mut text = String::new();
        if let Some(etag) = &self.etag {
            text.push_str(&format!("etag {etag}\n"));
        }
        if let Some(date) = &self.last_modified {
            text.push_str(&format!("last-modified {date}\n"));
        }
        text.push_str(&format!("sha256 {}\n", self.checksum.hex()));
        text
    }

    /// Reads [`Validators::to_text`]'s format; `None` when it is not that.
    fn from_text(text: &str) -> Option<Validators> {
        let (mut etag, mut last_modified, mut checksum) = (None, None, None);
        for line in text.lines() {
            let (key, value) = line.split_once(' ')?;
            match key {
                "etag" => etag = Some(value.to_owned()),
                "last-modified" => last_modified = Some(value.to_owned()),
                "sha256" => checksum = Checksum::parse(ChecksumAlgorithm::Sha256, value).ok(),
                _ => return None,
            }
        }
        Some(Validators {
            etag,
            last_modified,
            checksum: checksum?,
        })
    }
}

impl Cache {
    /// A cache in `dir`, created when first written to.
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the file with `checksum` is kept.
    pub fn path_of(&self, checksum: &Checksum) -> PathBuf {
        self.dir.join(format!(
            "{}-{}",
            checksum.algorithm.as_str(),
            checksum.hex()
        ))
    }

    /// The cached file with `checksum`, when there is one and it still has that checksum (a
    /// damaged entry is removed and reported as absent).
    pub async fn get(&self, checksum: &Checksum) -> Result<Option<Vec<u8>>, CacheError> {
        let path = self.path_of(checksum);
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(cache_error(&path, "cannot read", &e)),
        };
        let expected = checksum.clone();
        let (intact, bytes) =
            tokio::task::spawn_blocking(move || (expected.matches(&bytes), bytes))
                .await
                .map_err(|e| CacheError {
                    path: path.clone(),
                    message: format!("checksum task failed: {e}"),
                })?;
        if intact {
            return Ok(Some(bytes));
        }
        tracing::warn!(path = %path.display(), "cached index file does not match its checksum; removed");
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(cache_error(&path, "cannot remove a damaged entry", &e)),
        }
    }

    /// Stores `bytes`, whose checksum the caller verified, under `checksum`.
    pub async fn put(&self, checksum: &Checksum, bytes: &[u8]) -> Result<(), CacheError> {
        self.write(&self.path_of(checksum), bytes).await
    }

    /// The validators recorded for `url`, when there are readable ones.
    pub async fn validators(&self, url: &Url) -> Result<Option<Validators>, CacheError> {
        let path = self.validators_path(url);
        match tokio::fs::read_to_string(&path).await {
            Ok(text) => Ok(Validators::from_text(&text)),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidData) => Ok(None),
            Err(e) => Err(cache_error(&path, "cannot read", &e)),
        }
    }

    /// Records the validators of the download of `url`.
    pub async fn put_validators(
        &self,
        url: &Url,
        validators: &Validators,
    ) -> Result<(), CacheError> {
        self.write(&self.validators_path(url), validators.to_text().as_bytes())
            .await
    }

    fn validators_path(&self, url: &Url) -> PathBuf {
        let key = Checksum::of(ChecksumAlgorithm::Sha256, url.as_str().as_bytes());
        self.dir.join(format!("url-{}", key.hex()))
    }

    /// Writes `bytes` to `path` atomically: a temporary file in the same directory, renamed.
    async fn write(&self, path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| cache_error(&self.dir, "cannot create the directory", &e))?;
        let temporary = self.dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        if let Err(e) = tokio::fs::write(&temporary, bytes).await {
            let _ = tokio::fs::remove_file(&temporary).await;
            return Err(cache_error(&temporary, "cannot write", &e));
        }
        tokio::fs::rename(&temporary, path)
            .await
            .map_err(|e| cache_error(path, "cannot move the downloaded file into place", &e))
    }
}

fn cache_error(path: &Path, what: &str, error: &std::io::Error) -> CacheError {
    CacheError {
        path: path.to_owned(),
        message: format!("{what}: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "slipway-updates-cache-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn files_are_stored_by_checksum_and_checked_when_read() {
        let dir = temp_dir("blobs");
        let cache = Cache::new(dir.join("sub"));
        let checksum = Checksum::of(ChecksumAlgorithm::Sha256, b"index");
        runtime().block_on(async {
            assert_eq!(cache.get(&checksum).await.unwrap(), None);
            cache.put(&checksum, b"index").await.unwrap();
            assert_eq!(
                cache.get(&checksum).await.unwrap().as_deref(),
                Some(&b"index"[..])
            );
            let path = cache.path_of(&checksum);
            assert_eq!(
                path.file_name().unwrap().to_str().unwrap(),
                format!("sha256-{}", checksum.hex())
            );
            std::fs::write(&path, b"damaged").unwrap();
            assert_eq!(cache.get(&checksum).await.unwrap(), None);
            assert!(!path.exists());
        });
        let leftovers: Vec<_> = std::fs::read_dir(dir.join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn validators_round_trip_per_url() {
        let dir = temp_dir("validators");
        let cache = Cache::new(&dir);
        let url = Url::parse("https://h/alpine/x86_64/APKINDEX.tar.gz").unwrap();
        let other = Url::parse("https://h/alpine/aarch64/APKINDEX.tar.gz").unwrap();
        let validators = Validators {
            etag: Some("\"abc\"".into()),
            last_modified: Some("Mon, 01 Jan 2024 00:00:00 GMT".into()),
            checksum: Checksum::of(ChecksumAlgorithm::Sha256, b"x"),
        };
        runtime().block_on(async {
            assert_eq!(cache.validators(&url).await.unwrap(), None);
            cache.put_validators(&url, &validators).await.unwrap();
            assert_eq!(
                cache.validators(&url).await.unwrap(),
                Some(validators.clone())
            );
            assert_eq!(cache.validators(&other).await.unwrap(), None);
        });
        assert_eq!(Validators::from_text("junk"), None);
        assert_eq!(Validators::from_text("etag x\n"), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! Git source fetching: a local cache of one bare mirror per repository, shallow fetches of exactly
//! the commit a job needs, and reading one file or exporting a tree at that commit, all under time
//! and size limits, with validated input and no credentials in any log line or error.
//!
//! # How a fetch works
//!
//! 1. The URL and ref are validated by [`slipway_common::index::validate`], the rules of an index
//!    [`Entry`](slipway_common::index::Entry).
//! 2. The ref is resolved with `git ls-remote` (branch first, then tag, like `git clone --branch`;
//!    `HEAD` and full `refs/…` names too). A full commit id (40 or 64 hex digits) is taken as is.
//!    An abbreviated one is matched against the remote's branch and tag tips, then against the
//!    mirror, and finally against the mirror after fetching the whole history of every branch and
//!    tag.
//! 3. Under the mirror's exclusive lock, if the commit is already in the mirror nothing is
//!    downloaded. Otherwise `git fetch --depth=1 -- <url> <sha>` fetches just that commit. Protocol
//!    v2 servers (git ≥ 2.18, the default since 2.26: GitHub, GitLab, git daemon, file://) serve
//!    any commit by id; a protocol-v0 server answers "Server does not allow request for
//!    unadvertised object" unless it sets `uploadpack.allowReachableSHA1InWant`. Then the ref name
//!    is fetched with depth 1 instead (the commit it points to *then* is the result), or, for a
//!    commit id, the whole history, which must contain it.
//!
//! # Limits
//!
//! Each public call has one deadline, `fetch_timeout_ms` from its start, covering the wait for the
//! lock and every git process; on expiry git's whole process group is killed. A fetch is watched:
//! when the mirror grows past `max_repo_bytes` git is killed (the check runs every 100 ms, so it
//! can overshoot by what arrives in that time), and the size is checked again when it ends. A
//! mirror that accumulated history past the limit is started afresh once; a single commit that does
//! not fit is [`SourceError::TooLarge`](crate::SourceError::TooLarge) and its mirror is
//! deleted. Exports and file reads are bounded by the same limit, uncompressed.
//!
//! # Sharing the cache
//!
//! Several processes may use one cache directory: a fetch holds its mirror's advisory lock
//! (`flock`) exclusively, reads hold it shared. Fetched objects arrive as packs, which git makes
//! visible atomically, and gc is disabled, so a process killed mid-fetch leaves at worst stale lock
//! files and temporary packs (removed by the next fetch) or an incomplete new mirror (created in a
//! temporary directory and renamed into place; one git does not recognise is re-created).
//!
//! # Safety
//!
//! git runs without a shell, with `--` before positional arguments, `GIT_ALLOW_PROTOCOL` limited to
//! https, http, git, ssh and file, no terminal prompts or askpass programs, no system config, and
//! the `GIT_*` variables that could redirect it or trace credentials removed.

mod error;
mod git;
mod mirror;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

pub use error::SourceError;

use error::GitComplaint;
use git::{Call, GitCommand, Sink, SizeWatch};
use mirror::{ExclusiveLock, Mirror, blocking, mirror_key, small_output};
use slipway_common::index::validate::{
    Redactor, check_git_ref, check_git_url, redact_credentials, repo_relative_path,
};
use slipway_common::message::CommitSha;

/// Most bytes of `git ls-remote` output accepted (a repository with hundreds of thousands of refs).
const REF_LIST_CAP: u64 = 64 * 1024 * 1024;

/// The `[source]` settings of a worker that reads git repositories.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceSettings {
    /// Directory holding one bare mirror per repository (created when missing). Workers on one
    /// node may share it.
    pub cache_dir: PathBuf,
    /// Longest one call (resolve, fetch, read a file, export a tree) may take, in milliseconds,
    /// including the wait for another process holding the mirror; its git processes are then
    /// killed.
    pub fetch_timeout_ms: u64,
    /// Largest size in bytes of one repository's mirror on disk; also the largest file that can be
    /// read and the largest tree that can be exported (uncompressed).
    pub max_repo_bytes: u64,
    /// Whether `file://` URLs may be fetched. Off by default: an index entry must not make a
    /// worker read repositories on its own disk (other mirrors in the cache among them). Turn it on
    /// for development and tests.
    pub allow_file_urls: bool,
}

impl Default for SourceSettings {
    fn default() -> Self {
        Self {
            cache_dir: PathBuf::from("/var/cache/slipway/git"),
            fetch_timeout_ms: 300_000,
            max_repo_bytes: 2 * 1024 * 1024 * 1024,
            allow_file_urls: false,
        }
    }
}

/// The git cache: resolves refs and fetches commits into one bare mirror per repository. Cheap to
/// clone; clones share the settings.
#[derive(Clone, Debug)]
pub struct SourceCache {
    inner: Arc<CacheInner>,
}

#[derive(Debug)]
struct CacheInner {
    settings: SourceSettings,
    /// `-c name=value` settings added to every git command (tests force protocol v0 with it).
    extra_config: Vec<String>,
}

/// A commit present in the cache: read its files or export its tree. Cheap to clone.
#[derive(Clone, Debug)]
pub struct FetchedCommit {
    sha: CommitSha,
    from_cache: bool,
    source: Arc<CommitSource>,
}

#[derive(Debug)]
struct CommitSource {
    mirror: Mirror,
    redacted_url: String,
    redactor: Redactor,
    extra_config: Vec<String>,
    timeout_ms: u64,
    max_bytes: u64,
}

/// A validated remote: the URL for git, and its redacted form for everyone else.
struct Remote {
    url: String,
    redacted: String,
    redactor: Redactor,
    key: String,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.redacted)
            .finish_non_exhaustive()
    }
}

impl Remote {
    /// A validated remote, refusing `file://` unless `allow_file_urls`.
    fn allowed(url: &str, settings: &SourceSettings) -> Result<Self, SourceError> {
        if !settings.allow_file_urls && url.trim_start().to_ascii_lowercase().starts_with("file:") {
            return Err(SourceError::InvalidUrl {
                problem: format!(
                    "file:// URLs are disabled on this worker ([source] allow_file_urls = false), found {:?}",
                    redact_credentials(url)
                ),
            });
        }
        Self::parse(url)
    }

    fn parse(url: &str) -> Result<Self, SourceError> {
        check_git_url(url).map_err(|problem| SourceError::InvalidUrl { problem })?;
        Ok(Self {
            url: url.to_owned(),
            redacted: redact_credentials(url),
            redactor: Redactor::for_url(url),
            key: mirror_key(url),
        })
    }
}

/// What the caller asked for.
#[derive(Debug)]
enum Wanted {
    /// A full commit id (lowercased).
    Commit(CommitSha),
    /// A name that cannot be a commit id.
    Name(String),
    /// 4 to 63 hex digits: a branch or tag of that name, else an abbreviated commit id.
    NameOrPrefix(String),
}

impl Wanted {
    fn parse(git_ref: &str) -> Result<Self, SourceError> {
        check_git_ref(git_ref).map_err(|problem| SourceError::InvalidRef { problem })?;
        let hex = git_ref.bytes().all(|b| b.is_ascii_hexdigit());
        if hex && matches!(git_ref.len(), 40 | 64) {
            let sha = CommitSha::try_from(git_ref.to_ascii_lowercase()).map_err(|e| {
                SourceError::InvalidRef {
                    problem: e.to_string(),
                }
            })?;
            Ok(Wanted::Commit(sha))
        } else if hex && git_ref.len() >= 4 {
            Ok(Wanted::NameOrPrefix(git_ref.to_owned()))
        } else {
            Ok(Wanted::Name(git_ref.to_owned()))
        }
    }
}

/// A commit and, when it came from a ref, that ref's full name.
#[derive(Clone, Debug)]
struct Resolved {
    sha: CommitSha,
    via_ref: Option<String>,
}

/// What `ls-remote` could tell.
#[derive(Debug)]
enum Resolution {
    Found(Resolved),
    /// An abbreviated commit id matching no tip: look in the mirror.
    Prefix(String),
}

impl SourceCache {
    /// A cache rooted at `settings.cache_dir` (created when missing; a relative path is taken
    /// relative to the current directory, now).
    pub fn new(settings: SourceSettings) -> Result<Self, SourceError> {
        Self::with_extra_config(settings, Vec::new())
    }

    fn with_extra_config(
        mut settings: SourceSettings,
        extra_config: Vec<String>,
    ) -> Result<Self, SourceError> {
        // git runs inside the cache directory: a relative path would be resolved twice.
        settings.cache_dir = std::path::absolute(&settings.cache_dir)
            .map_err(|source| SourceError::io(&settings.cache_dir, source))?;
        std::fs::create_dir_all(&settings.cache_dir)
            .map_err(|source| SourceError::io(&settings.cache_dir, source))?;
        Ok(Self {
            inner: Arc::new(CacheInner {
                settings,
                extra_config,
            }),
        })
    }

    /// The settings in force (`cache_dir` made absolute).
    pub fn settings(&self) -> &SourceSettings {
        &self.inner.settings
    }

    /// The directory of the bare mirror of `url` (whether or not it exists yet).
    pub fn mirror_dir(&self, url: &str) -> Result<PathBuf, SourceError> {
        let remote = Remote::allowed(url, self.settings())?;
        Ok(self.mirror(&remote).dir)
    }

    /// Resolve a branch, tag or (full or abbreviated) commit id of `url` to a full commit id,
    /// without fetching the commit. Branches win over tags of the same name. A full commit id is
    /// returned as given (lowercased) without asking the server; [`fetch`](Self::fetch) checks it.
    pub async fn resolve(&self, url: &str, git_ref: &str) -> Result<CommitSha, SourceError> {
        let remote = Remote::allowed(url, self.settings())?;
        let wanted = Wanted::parse(git_ref)?;
        let call = self.call(&remote);
        match self
            .resolve_remote(&remote, &wanted, git_ref, &call)
            .await?
        {
            Resolution::Found(resolved) => Ok(resolved.sha),
            Resolution::Prefix(prefix) => {
                let mirror = self.mirror(&remote);
                let lock = mirror.lock_exclusive(&call).await?;
                let limit = self.inner.settings.max_repo_bytes;
                mirror
                    .prepare(&lock, &call, &self.inner.extra_config, limit)
                    .await?;
                let resolved = self
                    .resolve_prefix(&mirror, &lock, &remote, &prefix, git_ref, &call)
                    .await?;
                Ok(resolved.sha)
            }
        }
    }

    /// Resolve `git_ref` and make sure its commit is in the mirror of `url`, downloading only that
    /// commit (depth 1) when it is not. Logs one line with the redacted URL, the ref, the commit
    /// and the duration.
    pub async fn fetch(&self, url: &str, git_ref: &str) -> Result<FetchedCommit, SourceError> {
        let started = std::time::Instant::now();
        let remote = Remote::allowed(url, self.settings())?;
        let result = self.fetch_remote(&remote, git_ref).await;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &result {
            Ok(commit) => tracing::info!(
                url = %remote.redacted,
                git_ref,
                sha = %commit.sha,
                from_cache = commit.from_cache,
                duration_ms,
                "fetched git commit"
            ),
            Err(error) => tracing::info!(
                url = %remote.redacted,
                git_ref,
                error = %error,
                transient = error.is_transient(),
                duration_ms,
                "git fetch failed"
            ),
        }
        result
    }

    async fn fetch_remote(
        &self,
        remote: &Remote,
        git_ref: &str,
    ) -> Result<FetchedCommit, SourceError> {
        let wanted = Wanted::parse(git_ref)?;
        let call = self.call(remote);
        let resolution = self.resolve_remote(remote, &wanted, git_ref, &call).await?;
        let mirror = self.mirror(remote);
        let lock = mirror.lock_exclusive(&call).await?;
        let limit = self.inner.settings.max_repo_bytes;
        let mut retried = false;
        let (sha, from_cache) = loop {
            let fresh = mirror
                .prepare(&lock, &call, &self.inner.extra_config, limit)
                .await?;
            match self
                .fetch_locked(&mirror, &lock, remote, &resolution, git_ref, &call)
                .await
            {
                Err(error @ SourceError::TooLarge { .. }) => {
                    mirror.wipe(&lock).await?;
                    if fresh || retried {
                        return Err(error);
                    }
                    // The mirror held other commits' history: try again with this commit alone.
                    tracing::info!(url = %remote.redacted, "git mirror full; starting it afresh");
                    retried = true;
                }
                other => break other?,
            }
        };
        Ok(FetchedCommit {
            sha,
            from_cache,
            source: Arc::new(CommitSource {
                mirror,
                redacted_url: remote.redacted.clone(),
                redactor: remote.redactor.clone(),
                extra_config: self.inner.extra_config.clone(),
                timeout_ms: self.inner.settings.fetch_timeout_ms,
                max_bytes: limit,
            }),
        })
    }

    /// Under the exclusive lock: find the commit in the mirror, or download it. Returns the commit
    /// and whether it was already there.
    async fn fetch_locked(
        &self,
        mirror: &Mirror,
        lock: &ExclusiveLock,
        remote: &Remote,
        resolution: &Resolution,
        git_ref: &str,
        call: &Call<'_>,
    ) -> Result<(CommitSha, bool), SourceError> {
        let resolved = match resolution {
            Resolution::Found(resolved) => resolved.clone(),
            Resolution::Prefix(prefix) => {
                self.resolve_prefix(mirror, lock, remote, prefix, git_ref, call)
                    .await?
            }
        };
        let extra = &self.inner.extra_config;
        if let Some(sha) = peel_commit(mirror, resolved.sha.as_str(), extra, call).await? {
            return Ok((sha, true));
        }
        let sha = self
            .download(mirror, remote, &resolved, git_ref, call)
            .await?;
        let dir = mirror.dir.clone();
        let size = blocking(&mirror.dir, move || git::dir_size(&dir)).await?;
        let limit = self.inner.settings.max_repo_bytes;
        if size > limit {
            return Err(SourceError::TooLarge {
                url: remote.redacted.clone(),
                what: "the mirror".to_owned(),
                limit_bytes: limit,
                found_bytes: size,
            });
        }
        Ok((sha, false))
    }

    /// Fetch `resolved` with depth 1 (by id, else by its ref, else the whole history).
    async fn download(
        &self,
        mirror: &Mirror,
        remote: &Remote,
        resolved: &Resolved,
        git_ref: &str,
        call: &Call<'_>,
    ) -> Result<CommitSha, SourceError> {
        let extra = &self.inner.extra_config;
        let by_id = self
            .git_fetch(
                mirror,
                remote,
                &["--depth=1"],
                &[resolved.sha.as_str()],
                call,
            )
            .await?;
        let unknown = || SourceError::UnknownRef {
            url: remote.redacted.clone(),
            git_ref: git_ref.to_owned(),
        };
        if by_id.success() {
            return peel_commit(mirror, resolved.sha.as_str(), extra, call)
                .await?
                .ok_or_else(|| not_a_commit(remote, git_ref));
        }
        match (error::classify_stderr(&by_id.stderr), &resolved.via_ref) {
            (GitComplaint::UnadvertisedObject | GitComplaint::NotOurRef, Some(via_ref)) => {
                let by_ref = self
                    .git_fetch(mirror, remote, &["--depth=1"], &[via_ref.as_str()], call)
                    .await?;
                if !by_ref.success() {
                    return Err(match error::classify_stderr(&by_ref.stderr) {
                        GitComplaint::NoSuchRemoteRef => unknown(),
                        _ => error::failure("fetch", call.url, &by_ref.status, &by_ref.stderr),
                    });
                }
                let sha = peel_commit(mirror, "FETCH_HEAD", extra, call)
                    .await?
                    .ok_or_else(|| not_a_commit(remote, git_ref))?;
                if sha != resolved.sha {
                    tracing::debug!(
                        url = %remote.redacted,
                        git_ref,
                        resolved = %resolved.sha,
                        fetched = %sha,
                        "ref moved between ls-remote and fetch; using the newer commit"
                    );
                }
                Ok(sha)
            }
            (GitComplaint::UnadvertisedObject, None) => {
                self.fetch_history(mirror, remote, call).await?;
                peel_commit(mirror, resolved.sha.as_str(), extra, call)
                    .await?
                    .ok_or_else(unknown)
            }
            (GitComplaint::NotOurRef, None) => Err(unknown()),
            _ => Err(error::failure(
                "fetch",
                call.url,
                &by_id.status,
                &by_id.stderr,
            )),
        }
    }

    /// Fetch the whole history of every branch and tag (deepening a shallow mirror).
    async fn fetch_history(
        &self,
        mirror: &Mirror,
        remote: &Remote,
        call: &Call<'_>,
    ) -> Result<(), SourceError> {
        let shallow = mirror.dir.join("shallow");
        let shallow = blocking(&mirror.dir, move || Ok(shallow.exists())).await?;
        let options: &[&str] = if shallow { &["--unshallow"] } else { &[] };
        let refspecs = [
            "+refs/heads/*:refs/slipway/heads/*",
            "+refs/tags/*:refs/slipway/tags/*",
        ];
        let out = self
            .git_fetch(mirror, remote, options, &refspecs, call)
            .await?;
        if out.success() {
            Ok(())
        } else {
            Err(error::failure("fetch", call.url, &out.status, &out.stderr))
        }
    }

    /// `git fetch --quiet --no-tags <options> -- <url> <refspecs>`, watched against the size limit.
    async fn git_fetch(
        &self,
        mirror: &Mirror,
        remote: &Remote,
        options: &[&str],
        refspecs: &[&str],
        call: &Call<'_>,
    ) -> Result<git::Output, SourceError> {
        let command = GitCommand::new(
            "fetch",
            &mirror.cache_dir,
            Some(&mirror.dir),
            &self.inner.extra_config,
        )
        .args(["--quiet", "--no-tags", "--no-recurse-submodules"])
        .args(options)
        .args(["--", remote.url.as_str()])
        .args(refspecs);
        let watch = SizeWatch {
            dir: mirror.dir.clone(),
            limit: self.inner.settings.max_repo_bytes,
        };
        git::run(command, call, None, small_output("fetch"), Some(watch)).await
    }

    /// Resolve with `ls-remote` what can be: names, and abbreviated ids of branch or tag tips.
    async fn resolve_remote(
        &self,
        remote: &Remote,
        wanted: &Wanted,
        git_ref: &str,
        call: &Call<'_>,
    ) -> Result<Resolution, SourceError> {
        let unknown = || SourceError::UnknownRef {
            url: remote.redacted.clone(),
            git_ref: git_ref.to_owned(),
        };
        match wanted {
            Wanted::Commit(sha) => Ok(Resolution::Found(Resolved {
                sha: sha.clone(),
                via_ref: None,
            })),
            Wanted::Name(name) => {
                let refs = self
                    .ls_remote(remote, &ls_remote_patterns(name), call)
                    .await?;
                lookup_ref(&refs, name)
                    .map(Resolution::Found)
                    .ok_or_else(unknown)
            }
            Wanted::NameOrPrefix(text) => {
                let refs = self.ls_remote(remote, &[], call).await?;
                if let Some(resolved) = lookup_ref(&refs, text) {
                    return Ok(Resolution::Found(resolved));
                }
                let prefix = text.to_ascii_lowercase();
                let mut tips = BTreeMap::new();
                for (sha, name) in &refs {
                    if sha.as_str().starts_with(&prefix) {
                        let name = name.strip_suffix("^{}").unwrap_or(name);
                        tips.entry(sha.as_str())
                            .or_insert_with(|| (sha.clone(), name.to_owned()));
                    }
                }
                let mut tips = tips.into_values();
                match (tips.next(), tips.next()) {
                    (None, _) => Ok(Resolution::Prefix(prefix)),
                    (Some((sha, name)), None) => Ok(Resolution::Found(Resolved {
                        sha,
                        via_ref: Some(name),
                    })),
                    (Some((a, _)), Some((b, _))) => Err(SourceError::AmbiguousRef {
                        url: remote.redacted.clone(),
                        git_ref: git_ref.to_owned(),
                        candidates: format!("{a}, {b}"),
                    }),
                }
            }
        }
    }

    /// An abbreviated commit id in the mirror, after fetching the whole history if need be.
    async fn resolve_prefix(
        &self,
        mirror: &Mirror,
        _lock: &ExclusiveLock,
        remote: &Remote,
        prefix: &str,
        git_ref: &str,
        call: &Call<'_>,
    ) -> Result<Resolved, SourceError> {
        let extra = &self.inner.extra_config;
        for attempt in 0..2 {
            if attempt == 1 {
                self.fetch_history(mirror, remote, call).await?;
            }
            let spec = format!("{prefix}^{{commit}}");
            let command = GitCommand::new("rev-parse", &mirror.cache_dir, Some(&mirror.dir), extra)
                .args(["--verify", spec.as_str()]);
            let out = git::run(command, call, None, small_output("rev-parse"), None).await?;
            if out.success() {
                let sha = parse_sha(&out.stdout)
                    .ok_or_else(|| unexpected_output("rev-parse", remote, &out))?;
                return Ok(Resolved { sha, via_ref: None });
            }
            if out.stderr.contains("ambiguous") {
                let candidates = out
                    .stderr
                    .lines()
                    .filter_map(|line| line.strip_prefix("hint:"))
                    .map(str::trim)
                    .filter(|line| !line.is_empty() && !line.ends_with(':'))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(SourceError::AmbiguousRef {
                    url: remote.redacted.clone(),
                    git_ref: git_ref.to_owned(),
                    candidates,
                });
            }
        }
        Err(SourceError::UnknownRef {
            url: remote.redacted.clone(),
            git_ref: git_ref.to_owned(),
        })
    }

    /// `git ls-remote -- <url> <patterns>`: (id, ref name) pairs, peeled tags as `name^{}`.
    async fn ls_remote(
        &self,
        remote: &Remote,
        patterns: &[String],
        call: &Call<'_>,
    ) -> Result<Vec<(CommitSha, String)>, SourceError> {
        let cache_dir = self.inner.settings.cache_dir.clone();
        blocking(&cache_dir.clone(), move || {
            std::fs::create_dir_all(&cache_dir)
        })
        .await?;
        let command = GitCommand::new(
            "ls-remote",
            &self.inner.settings.cache_dir,
            None,
            &self.inner.extra_config,
        )
        .args(["--", remote.url.as_str()])
        .args(patterns);
        let sink = Sink::Collect {
            cap: REF_LIST_CAP,
            what: "the ref list".to_owned(),
            limit: REF_LIST_CAP,
        };
        let out = git::run(command, call, None, sink, None).await?;
        if !out.success() {
            return Err(error::failure(
                "ls-remote",
                call.url,
                &out.status,
                &out.stderr,
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text
            .lines()
            .filter_map(|line| {
                let (sha, name) = line.split_once('\t')?;
                let sha = CommitSha::try_from(sha.trim().to_owned()).ok()?;
                Some((sha, name.trim().to_owned()))
            })
            .collect())
    }

    fn mirror(&self, remote: &Remote) -> Mirror {
        Mirror::new(&self.inner.settings.cache_dir, remote.key.clone())
    }

    fn call<'a>(&self, remote: &'a Remote) -> Call<'a> {
        call(
            &remote.redacted,
            &remote.redactor,
            self.inner.settings.fetch_timeout_ms,
        )
    }
}

impl FetchedCommit {
    /// The full commit id.
    pub fn sha(&self) -> &CommitSha {
        &self.sha
    }

    /// Whether the commit was already in the cache, so nothing was downloaded.
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }

    /// The contents of the file at `path` (relative to the repository root) in this commit,
    /// following symbolic links that stay inside the repository. Read from the mirror, no checkout.
    pub async fn read_file(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        let path =
            repo_relative_path(path).map_err(|problem| SourceError::InvalidPath { problem })?;
        if path.is_empty() {
            return Err(SourceError::InvalidPath {
                problem: "expected the path of a file, found the repository root".to_owned(),
            });
        }
        let source = &self.source;
        let call = self.call();
        let _lock = source.mirror.lock_shared(&call).await?;
        let command = self.git("cat-file").args(["--batch", "--follow-symlinks"]);
        let sink = Sink::Collect {
            cap: source.max_bytes.saturating_add(4096),
            what: format!("file {path:?} at {}", self.sha),
            limit: source.max_bytes,
        };
        let input = format!("{}:{path}\n", self.sha).into_bytes();
        let out = git::run(command, &call, Some(input), sink, None).await?;
        if !out.success() {
            return Err(error::failure(
                "cat-file",
                call.url,
                &out.status,
                &out.stderr,
            ));
        }
        let (header, body) = split_header(&out.stdout);
        let not_a_file = |found: String| self.path_error(&path, "a file", found);
        if header.ends_with(" missing") {
            return Err(self.missing(&path, "a file", &call).await);
        }
        if let Some(size) = header.strip_prefix("symlink ") {
            let target = size
                .parse::<usize>()
                .ok()
                .and_then(|size| body.get(..size))
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            return Err(not_a_file(format!(
                "a symbolic link to {target:?}, outside the repository"
            )));
        }
        for (prefix, found) in [
            ("dangling ", "a symbolic link to a missing file"),
            ("loop ", "a loop of symbolic links"),
            ("notdir ", "a path through a file"),
        ] {
            if header.starts_with(prefix) {
                return Err(not_a_file(found.to_owned()));
            }
        }
        let mut fields = header.rsplitn(3, ' ');
        let (size, kind) = (fields.next(), fields.next());
        match (kind, size.and_then(|size| size.parse::<usize>().ok())) {
            (Some("blob"), Some(size)) if body.len() >= size => Ok(body[..size].to_vec()),
            (Some("tree"), _) => Err(not_a_file("a directory".to_owned())),
            (Some("commit"), _) => Err(not_a_file("a submodule".to_owned())),
            _ => Err(SourceError::GitFailed {
                operation: "cat-file",
                url: source.redacted_url.clone(),
                status: out.status.to_string(),
                stderr: format!("unexpected output {header:?}"),
            }),
        }
    }

    /// Write the tree of this commit, or only `subdir` of it, into `dest`: `dest` receives the
    /// contents of `subdir` (`dest/Dockerfile`, not `dest/<subdir>/Dockerfile`), with the commit's
    /// time as every file's modification time and symbolic links kept as links. `dest` must be
    /// absent (it is created) or an empty directory.
    pub async fn export_tree(&self, subdir: &str, dest: &Path) -> Result<(), SourceError> {
        let subdir =
            repo_relative_path(subdir).map_err(|problem| SourceError::InvalidPath { problem })?;
        let source = &self.source;
        let call = self.call();
        prepare_destination(dest).await?;
        let _lock = source.mirror.lock_shared(&call).await?;
        let check = self.git("cat-file").args(["--batch-check"]);
        let input = format!("{}:{subdir}\n", self.sha).into_bytes();
        let out = git::run(check, &call, Some(input), small_output("cat-file"), None).await?;
        if !out.success() {
            return Err(error::failure(
                "cat-file",
                call.url,
                &out.status,
                &out.stderr,
            ));
        }
        let (header, _) = split_header(&out.stdout);
        if header.ends_with(" missing") {
            return Err(self.missing(&subdir, "a directory", &call).await);
        }
        match header.split(' ').nth(1) {
            Some("tree") => {}
            Some("blob") => {
                return Err(self.path_error(&subdir, "a directory", "a file".to_owned()));
            }
            other => {
                let found = format!("a {}", other.unwrap_or("thing git cannot describe"));
                return Err(self.path_error(&subdir, "a directory", found));
            }
        }
        let mut archive = self
            .git("archive")
            .args(["--format=tar", self.sha.as_str()]);
        if !subdir.is_empty() {
            archive = archive.args(["--", subdir.as_str()]);
        }
        let unpack = {
            let (dest, subdir) = (dest.to_owned(), subdir.clone());
            let (url, limit) = (source.redacted_url.clone(), source.max_bytes);
            move |reader| unpack_tar(reader, &dest, &subdir, &url, limit)
        };
        let out = git::run(archive, &call, None, Sink::Stream(Box::new(unpack)), None).await?;
        if out.success() {
            Ok(())
        } else {
            Err(error::failure(
                "archive",
                call.url,
                &out.status,
                &out.stderr,
            ))
        }
    }

    fn git(&self, operation: &'static str) -> GitCommand {
        let mirror = &self.source.mirror;
        GitCommand::new(
            operation,
            &mirror.cache_dir,
            Some(&mirror.dir),
            &self.source.extra_config,
        )
    }

    fn call(&self) -> Call<'_> {
        call(
            &self.source.redacted_url,
            &self.source.redactor,
            self.source.timeout_ms,
        )
    }

    fn path_error(&self, path: &str, expected: &'static str, found: String) -> SourceError {
        SourceError::PathNotInCommit {
            url: self.source.redacted_url.clone(),
            commit: self.sha.clone(),
            path: path.to_owned(),
            expected,
            found,
        }
    }

    /// git found nothing at `path`: either the path is not in the commit, or the commit itself is
    /// gone (another process reset the mirror).
    async fn missing(&self, path: &str, expected: &'static str, call: &Call<'_>) -> SourceError {
        let extra = &self.source.extra_config;
        match peel_commit(&self.source.mirror, self.sha.as_str(), extra, call).await {
            Ok(Some(_)) => self.path_error(path, expected, "nothing".to_owned()),
            Ok(None) => SourceError::NoLongerCached {
                url: self.source.redacted_url.clone(),
                commit: self.sha.clone(),
            },
            Err(error) => error,
        }
    }
}

fn call<'a>(url: &'a str, redactor: &'a Redactor, timeout_ms: u64) -> Call<'a> {
    let now = Instant::now();
    let deadline = now
        .checked_add(Duration::from_millis(timeout_ms))
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600));
    Call {
        url,
        redactor,
        deadline,
        timeout_ms,
    }
}

/// `rev-parse --verify --quiet <rev>^{commit}`: the commit `rev` names, if the mirror has it.
async fn peel_commit(
    mirror: &Mirror,
    rev: &str,
    extra_config: &[String],
    call: &Call<'_>,
) -> Result<Option<CommitSha>, SourceError> {
    let spec = format!("{rev}^{{commit}}");
    let command = GitCommand::new(
        "rev-parse",
        &mirror.cache_dir,
        Some(&mirror.dir),
        extra_config,
    )
    .args(["--verify", "--quiet", spec.as_str()]);
    let out = git::run(command, call, None, small_output("rev-parse"), None).await?;
    Ok(if out.success() {
        parse_sha(&out.stdout)
    } else {
        None
    })
}

fn parse_sha(stdout: &[u8]) -> Option<CommitSha> {
    let text = String::from_utf8_lossy(stdout);
    CommitSha::try_from(text.trim().to_owned()).ok()
}

fn not_a_commit(remote: &Remote, git_ref: &str) -> SourceError {
    SourceError::UnknownRef {
        url: remote.redacted.clone(),
        git_ref: git_ref.to_owned(),
    }
}

fn unexpected_output(operation: &'static str, remote: &Remote, out: &git::Output) -> SourceError {
    SourceError::GitFailed {
        operation,
        url: remote.redacted.clone(),
        status: out.status.to_string(),
        stderr: format!(
            "unexpected output {:?}",
            String::from_utf8_lossy(&out.stdout)
        ),
    }
}

/// The first line of `cat-file --batch` output (lossy), and what follows it.
fn split_header(stdout: &[u8]) -> (String, &[u8]) {
    match stdout.iter().position(|&b| b == b'\n') {
        Some(newline) => (
            String::from_utf8_lossy(&stdout[..newline]).into_owned(),
            &stdout[newline + 1..],
        ),
        None => (String::from_utf8_lossy(stdout).into_owned(), &[]),
    }
}

/// `ls-remote` patterns for a name: just the refs [`lookup_ref`] may pick (tail-matched by git),
/// so a repository with many refs answers with a few lines.
fn ls_remote_patterns(name: &str) -> Vec<String> {
    if name == "HEAD" {
        vec!["HEAD".to_owned()]
    } else if name.starts_with("refs/") {
        vec![name.to_owned(), format!("{name}^{{}}")]
    } else {
        vec![
            format!("refs/heads/{name}"),
            format!("refs/tags/{name}"),
            format!("refs/tags/{name}^{{}}"),
        ]
    }
}

/// The commit `name` names among `refs`: `HEAD`, a full `refs/…` name, else `refs/heads/<name>`
/// before `refs/tags/<name>`; annotated tags peeled.
fn lookup_ref(refs: &[(CommitSha, String)], name: &str) -> Option<Resolved> {
    let candidates = if name == "HEAD" || name.starts_with("refs/") {
        vec![name.to_owned()]
    } else {
        vec![format!("refs/heads/{name}"), format!("refs/tags/{name}")]
    };
    let find = |wanted: &str| {
        refs.iter()
            .find(|(_, name)| name == wanted)
            .map(|(sha, _)| sha.clone())
    };
    candidates.into_iter().find_map(|candidate| {
        let peeled = format!("{candidate}^{{}}");
        find(&peeled)
            .or_else(|| find(&candidate))
            .map(|sha| Resolved {
                sha,
                via_ref: Some(candidate),
            })
    })
}

/// Create `dest`, or check that it is an empty directory.
async fn prepare_destination(dest: &Path) -> Result<(), SourceError> {
    let owned = dest.to_owned();
    let problem = blocking(dest, move || match std::fs::read_dir(&owned) {
        Ok(mut entries) => Ok(entries
            .next()
            .is_some()
            .then(|| "expected an empty directory, found one with entries".to_owned())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&owned).map(|()| None)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotADirectory => {
            Ok(Some("expected a directory, found a file".to_owned()))
        }
        Err(error) => Err(error),
    })
    .await?;
    match problem {
        None => Ok(()),
        Some(problem) => Err(SourceError::InvalidDestination {
            dest: dest.to_owned(),
            problem,
        }),
    }
}

/// A reader that fails once more than `limit` bytes went through it.
struct Limited<R> {
    inner: R,
    limit: u64,
    read: u64,
}

impl<R: std::io::Read> std::io::Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read = self
            .read
            .saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        if self.read > self.limit {
            return Err(std::io::Error::other(
                "the exported tree is over max_repo_bytes",
            ));
        }
        Ok(n)
    }
}

/// Unpack the tar stream of `git archive <sha> [-- subdir]` into `dest`, dropping the `subdir/`
/// prefix. Every path is checked to stay inside `dest` and not to pass through a symbolic link.
fn unpack_tar(
    reader: impl std::io::Read,
    dest: &Path,
    subdir: &str,
    url: &str,
    limit: u64,
) -> Result<(), SourceError> {
    let mut archive = tar::Archive::new(Limited {
        inner: reader,
        limit,
        read: 0,
    });
    archive.set_preserve_mtime(true);
    let prefix: Vec<&str> = subdir.split('/').filter(|part| !part.is_empty()).collect();
    let result = (|| -> Result<(), SourceError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| SourceError::io(path, source)
        };
        for entry in archive.entries().map_err(io(dest))? {
            let mut entry = entry.map_err(io(dest))?;
            if matches!(
                entry.header().entry_type(),
                tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
            ) {
                continue;
            }
            let path = entry.path().map_err(io(dest))?.into_owned();
            let mut parts = Vec::new();
            for component in path.components() {
                match component {
                    std::path::Component::Normal(part) => parts.push(part.to_owned()),
                    std::path::Component::CurDir => {}
                    _ => {
                        return Err(SourceError::InvalidPath {
                            problem: format!(
                                "expected archive paths inside the repository, found {path:?}"
                            ),
                        });
                    }
                }
            }
            // Leading directories of `subdir` and `subdir` itself: already `dest`.
            if parts.len() <= prefix.len() {
                continue;
            }
            if parts.iter().zip(&prefix).any(|(part, want)| part != want) {
                continue;
            }
            let relative: PathBuf = parts[prefix.len()..].iter().collect();
            let mut ancestor = dest.to_owned();
            for part in relative.parent().into_iter().flat_map(Path::components) {
                ancestor.push(part);
                if ancestor
                    .symlink_metadata()
                    .is_ok_and(|metadata| metadata.file_type().is_symlink())
                {
                    return Err(SourceError::InvalidPath {
                        problem: format!(
                            "expected archive paths not to pass through a symbolic link, found {path:?}"
                        ),
                    });
                }
            }
            let target = dest.join(&relative);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            entry.unpack(&target).map_err(io(&target))?;
        }
        Ok(())
    })();
    let limited = archive.into_inner();
    if limited.read > limited.limit {
        return Err(SourceError::TooLarge {
            url: url.to_owned(),
            what: "the exported tree".to_owned(),
            limit_bytes: limited.limit,
            found_bytes: limited.read,
        });
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(c: char) -> CommitSha {
        CommitSha::try_from(c.to_string().repeat(40)).unwrap()
    }

    #[test]
    fn refs_resolve_branch_before_tag_and_peel_annotated_tags() {
        let refs = vec![
            (sha('a'), "HEAD".to_owned()),
            (sha('a'), "refs/heads/main".to_owned()),
            (sha('b'), "refs/heads/v1".to_owned()),
            (sha('c'), "refs/tags/v1".to_owned()),
            (sha('d'), "refs/tags/v1^{}".to_owned()),
            (sha('e'), "refs/tags/v2".to_owned()),
            (sha('f'), "refs/tags/v2^{}".to_owned()),
        ];
        let get = |name| lookup_ref(&refs, name).map(|r| r.sha);
        assert_eq!(get("main"), Some(sha('a')));
        assert_eq!(get("HEAD"), Some(sha('a')));
        assert_eq!(get("v1"), Some(sha('b')));
        assert_eq!(get("refs/tags/v1"), Some(sha('d')));
        assert_eq!(get("v2"), Some(sha('f')));
        assert_eq!(get("nope"), None);
        assert_eq!(
            lookup_ref(&refs, "v2").and_then(|r| r.via_ref).as_deref(),
            Some("refs/tags/v2")
        );
    }

    #[test]
    fn wanted_refs_are_classified_by_shape() {
        assert!(matches!(
            Wanted::parse(&"A".repeat(40)),
            Ok(Wanted::Commit(sha)) if sha.as_str() == "a".repeat(40)
        ));
        assert!(matches!(Wanted::parse("beef"), Ok(Wanted::NameOrPrefix(_))));
        assert!(matches!(Wanted::parse("abc"), Ok(Wanted::Name(_))));
        assert!(matches!(Wanted::parse("main"), Ok(Wanted::Name(_))));
        assert!(matches!(
            Wanted::parse("--upload-pack=x"),
            Err(SourceError::InvalidRef { .. })
        ));
    }

    /// A repository with two commits on `main`, in a temporary directory removed on drop.
    struct TwoCommits {
        root: PathBuf,
        old: String,
        tip: String,
    }

    impl TwoCommits {
        fn new(label: &str) -> Self {
            let root = std::env::temp_dir().join(format!(
                "slipway-source-unit-{label}-{}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&root);
            let repo = root.join("repo");
            std::fs::create_dir_all(&repo).unwrap();
            let git = |args: &[&str]| {
                let out = std::process::Command::new("git")
                    .args(["-c", "init.defaultBranch=main"])
                    .args(args)
                    .current_dir(&repo)
                    .env("GIT_CONFIG_NOSYSTEM", "1")
                    .env("GIT_CONFIG_GLOBAL", "/dev/null")
                    .env("GIT_AUTHOR_NAME", "t")
                    .env("GIT_AUTHOR_EMAIL", "t@t.invalid")
                    .env("GIT_COMMITTER_NAME", "t")
                    .env("GIT_COMMITTER_EMAIL", "t@t.invalid")
                    .output()
                    .unwrap();
                assert!(out.status.success(), "git {args:?}: {out:?}");
                String::from_utf8(out.stdout).unwrap().trim().to_owned()
            };
            git(&["init", "-q"]);
            std::fs::write(repo.join("Dockerfile"), "FROM old\n").unwrap();
            git(&["add", "-A"]);
            git(&["commit", "-qm", "old"]);
            let old = git(&["rev-parse", "HEAD"]);
            std::fs::write(repo.join("Dockerfile"), "FROM new\n").unwrap();
            git(&["commit", "-qam", "new"]);
            let tip = git(&["rev-parse", "HEAD"]);
            Self { root, old, tip }
        }

        fn url(&self) -> String {
            format!("file://{}", self.root.join("repo").display())
        }

        /// A cache whose git speaks protocol v0, which refuses unadvertised commits by id.
        fn cache_v0(&self) -> SourceCache {
            let settings = SourceSettings {
                cache_dir: self.root.join("cache"),
                fetch_timeout_ms: 20_000,
                max_repo_bytes: 64 << 20,
                allow_file_urls: true,
            };
            SourceCache::with_extra_config(settings, vec!["protocol.version=0".to_owned()]).unwrap()
        }
    }

    impl Drop for TwoCommits {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    #[tokio::test]
    async fn a_v0_server_refusing_a_commit_id_is_fetched_through_the_history() {
        let repo = TwoCommits::new("history");
        let cache = repo.cache_v0();
        let old = cache.fetch(&repo.url(), &repo.old).await.unwrap();
        assert_eq!(old.sha().as_str(), repo.old);
        assert_eq!(old.read_file("Dockerfile").await.unwrap(), b"FROM old\n");
        let mirror = cache.mirror_dir(&repo.url()).unwrap();
        assert!(
            mirror.join("refs/slipway/heads/main").is_file(),
            "the history was fetched"
        );
        let absent = cache.fetch(&repo.url(), &"e".repeat(40)).await.unwrap_err();
        assert!(matches!(absent, SourceError::UnknownRef { .. }), "{absent}");
    }

    #[tokio::test]
    async fn a_v0_server_refusing_a_commit_id_is_fetched_by_its_ref_name() {
        let repo = TwoCommits::new("by-ref");
        let cache = repo.cache_v0();
        let remote = Remote::parse(&repo.url()).unwrap();
        let call = cache.call(&remote);
        let mirror = cache.mirror(&remote);
        let lock = mirror.lock_exclusive(&call).await.unwrap();
        mirror
            .prepare(&lock, &call, &cache.inner.extra_config, u64::MAX)
            .await
            .unwrap();
        // As if `main` moved from `old` to `tip` between ls-remote and fetch: `old` is no longer
        // advertised, so the v0 server refuses it and the ref is fetched instead.
        let resolved = Resolved {
            sha: CommitSha::try_from(repo.old.clone()).unwrap(),
            via_ref: Some("refs/heads/main".to_owned()),
        };
        let sha = cache
            .download(&mirror, &remote, &resolved, "main", &call)
            .await
            .unwrap();
        assert_eq!(sha.as_str(), repo.tip);
    }

    #[test]
    fn settings_defaults_are_the_documented_ones() {
        let settings = SourceSettings::default();
        assert_eq!(settings.cache_dir, Path::new("/var/cache/slipway/git"));
        assert_eq!(settings.fetch_timeout_ms, 300_000);
        assert_eq!(settings.max_repo_bytes, 2 << 30);
    }
}

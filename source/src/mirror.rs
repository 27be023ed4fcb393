//! One bare mirror per remote in the cache directory: where it lives, its advisory lock (shared by
//! every process on the node), and keeping it usable: created atomically, re-created when a killed
//! process left it broken, stale lock files of killed fetches removed, reset when it outgrew its
//! size limit.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{self, SourceError};
use crate::git::{self, Call, GitCommand, Sink};

/// A mirror's paths. Directory names are the SHA-256 of the credential-free cache key.
#[derive(Clone, Debug)]
pub(crate) struct Mirror {
    /// The cache directory holding every mirror.
    pub(crate) cache_dir: PathBuf,
    /// The bare repository, `<cache>/<sha256>.git`.
    pub(crate) dir: PathBuf,
    /// The advisory lock file beside it, `<cache>/<sha256>.lock` (never deleted, so every process
    /// locks the same inode even while the mirror is being re-created).
    lock_path: PathBuf,
    /// The remote's cache key (no credentials), written to the mirror's `description`.
    key: String,
}

/// Proof that this process holds a mirror's lock exclusively (released on drop).
#[derive(Debug)]
pub(crate) struct ExclusiveLock(#[allow(dead_code, reason = "held for its Drop")] File);

/// Proof that this process holds a mirror's lock shared (released on drop).
#[derive(Debug)]
pub(crate) struct SharedLock(#[allow(dead_code, reason = "held for its Drop")] File);

impl Mirror {
    /// The mirror of the remote whose cache key is `key`.
    pub(crate) fn new(cache_dir: &Path, key: String) -> Self {
        let digest = Sha256::digest(key.as_bytes());
        let hash: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        Self {
            cache_dir: cache_dir.to_owned(),
            dir: cache_dir.join(format!("{hash}.git")),
            lock_path: cache_dir.join(format!("{hash}.lock")),
            key,
        }
    }

    /// Wait (until the deadline) for the exclusive lock: fetching, re-creating, resetting.
    pub(crate) async fn lock_exclusive(
        &self,
        call: &Call<'_>,
    ) -> Result<ExclusiveLock, SourceError> {
        self.acquire(call, File::lock).await.map(ExclusiveLock)
    }

    /// Wait (until the deadline) for a shared lock: reading objects while nobody resets the mirror.
    pub(crate) async fn lock_shared(&self, call: &Call<'_>) -> Result<SharedLock, SourceError> {
        self.acquire(call, File::lock_shared).await.map(SharedLock)
    }

    async fn acquire(
        &self,
        call: &Call<'_>,
        lock: fn(&File) -> io::Result<()>,
    ) -> Result<File, SourceError> {
        let path = self.lock_path.clone();
        let cache_dir = self.cache_dir.clone();
        // A blocking flock on the blocking pool; if the deadline passes first, the task still ends
        // when it gets the lock, and then releases it by dropping the file.
        let task = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&cache_dir)?;
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&path)?;
            lock(&file)?;
            Ok::<_, io::Error>(file)
        });
        match tokio::time::timeout_at(call.deadline, task).await {
            Err(_elapsed) => Err(call.timeout("waiting for the mirror lock")),
            Ok(Err(join)) => Err(SourceError::io(&self.lock_path, io::Error::other(join))),
            Ok(Ok(Err(source))) => Err(SourceError::io(&self.lock_path, source)),
            Ok(Ok(Ok(file))) => Ok(file),
        }
    }

    /// Make the mirror usable, under the exclusive lock: remove what interrupted processes left,
    /// re-create it when git does not recognise it or it outgrew `limit`. Returns whether it is
    /// new (empty).
    pub(crate) async fn prepare(
        &self,
        lock: &ExclusiveLock,
        call: &Call<'_>,
        extra_config: &[String],
        limit: u64,
    ) -> Result<bool, SourceError> {
        let (cache_dir, dir) = (self.cache_dir.clone(), self.dir.clone());
        let exists = blocking(&self.dir, move || {
            remove_interrupted_inits(&cache_dir, &dir)?;
            Ok(dir.exists())
        })
        .await?;
        if exists {
            let check =
                GitCommand::new("rev-parse", &self.cache_dir, Some(&self.dir), extra_config)
                    .args(["--git-dir"]);
            let out = git::run(check, call, None, small_output("rev-parse"), None).await?;
            if out.success() {
                let dir = self.dir.clone();
                let size = blocking(&self.dir, move || {
                    remove_stale_files(&dir)?;
                    git::dir_size(&dir)
                })
                .await?;
                if size <= limit {
                    return Ok(false);
                }
                tracing::info!(
                    url = call.url,
                    size,
                    limit,
                    "git mirror outgrew max_repo_bytes; starting it afresh"
                );
            } else {
                tracing::warn!(
                    url = call.url,
                    git = %error::summarize(&out.stderr),
                    "git mirror is unusable (a process was killed while creating it?); re-creating it"
                );
            }
            self.wipe(lock).await?;
        }
        self.init(call, extra_config).await?;
        Ok(true)
    }

    /// Delete the mirror (its lock file stays).
    pub(crate) async fn wipe(&self, _lock: &ExclusiveLock) -> Result<(), SourceError> {
        let dir = self.dir.clone();
        blocking(&self.dir, move || remove_all(&dir)).await
    }

    /// `git init --bare` into a temporary directory renamed into place, so the mirror either does
    /// not exist or is a complete empty repository.
    async fn init(&self, call: &Call<'_>, extra_config: &[String]) -> Result<(), SourceError> {
        let tmp = temp_dir_for(&self.dir);
        let init = GitCommand::new("init", &self.cache_dir, None, extra_config)
            .args(["--bare", "--quiet", "--template=", "--"])
            .args([&tmp]);
        let out = git::run(init, call, None, small_output("init"), None).await?;
        if !out.success() {
            return Err(error::failure("init", call.url, &out.status, &out.stderr));
        }
        let (dir, key) = (self.dir.clone(), self.key.clone());
        blocking(&self.dir, move || {
            std::fs::write(tmp.join("description"), format!("{key}\n"))?;
            std::fs::rename(&tmp, &dir)
        })
        .await
    }
}

/// A collected output for small commands (64 KiB is far more than any of them prints).
pub(crate) fn small_output(operation: &str) -> Sink {
    Sink::Collect {
        cap: 64 * 1024,
        what: format!("the output of git {operation}"),
        limit: 64 * 1024,
    }
}

/// Run blocking file-system work on the blocking pool; errors name `path`.
pub(crate) async fn blocking<T, F>(path: &Path, work: F) -> Result<T, SourceError>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(SourceError::io(path, source)),
        Err(join) => Err(SourceError::io(path, io::Error::other(join))),
    }
}

fn temp_dir_for(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    dir.with_file_name(name)
}

/// Remove `<mirror>.tmp-*` directories of inits that were interrupted (we hold the exclusive lock,
/// so nobody else is creating this mirror).
fn remove_interrupted_inits(cache_dir: &Path, dir: &Path) -> io::Result<()> {
    let Some(prefix) = dir.file_name().and_then(|name| name.to_str()) else {
        return Ok(());
    };
    let prefix = format!("{prefix}.tmp-");
    remove_matching(cache_dir, |name| name.starts_with(&prefix))
}

/// Remove lock files and temporary packs left by git processes that were killed: under the
/// exclusive lock, no git process of ours is writing this mirror, so every one of them is stale
/// (a stale `shallow.lock` would otherwise fail every later fetch).
fn remove_stale_files(dir: &Path) -> io::Result<()> {
    remove_matching(dir, |name| name.ends_with(".lock"))?;
    remove_matching(&dir.join("objects"), |name| {
        name.starts_with("tmp_") || name.starts_with("incoming-")
    })?;
    remove_matching(&dir.join("objects").join("pack"), |name| {
        name.starts_with("tmp_") || name.starts_with(".tmp-")
    })?;
    let mut pending = vec![dir.join("refs")];
    while let Some(refs) = pending.pop() {
        let entries = match std::fs::read_dir(&refs) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "lock") {
                remove_all(&path)?;
            }
        }
    }
    Ok(())
}

fn remove_matching(dir: &Path, matches: impl Fn(&str) -> bool) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_name().to_str().is_some_and(&matches) {
            remove_all(&entry.path())?;
        }
    }
    Ok(())
}

fn remove_all(path: &Path) -> io::Result<()> {
    let result = match path.symlink_metadata() {
        Ok(metadata) if metadata.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(error) => Err(error),
    };
    match result {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// The identity of a remote for the cache: scheme and host lowercased, trailing `/` dropped, and no
/// credentials (http(s) user names and passwords are dropped; ssh user names are kept, since they
/// choose the repository). Two spellings with different credentials share one mirror: objects are
/// content-addressed, so a mirror never returns wrong content for a commit id.
pub(crate) fn mirror_key(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let scheme = scheme.to_ascii_lowercase();
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (userinfo, host) = authority.rsplit_once('@').unwrap_or(("", authority));
        let user = match userinfo.split_once(':') {
            Some((user, _)) => user,
            None => userinfo,
        };
        let user = if scheme == "ssh" && !user.is_empty() {
            format!("{user}@")
        } else {
            String::new()
        };
        let host = host.to_ascii_lowercase();
        let path = path.trim_end_matches('/');
        format!("{scheme}://{user}{host}{path}")
    } else {
        // scp-like `user@host:path`.
        let (login, path) = url.split_once(':').unwrap_or((url, ""));
        let (user, host) = login.rsplit_once('@').unwrap_or(("", login));
        format!(
            "scp://{user}@{}:{}",
            host.to_ascii_lowercase(),
            path.trim_end_matches('/')
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_key_ignores_credentials_case_of_host_and_trailing_slashes() {
        assert_eq!(
            mirror_key("HTTPS://u:p@GitHub.com/O/R.git/"),
            "https://github.com/O/R.git"
        );
        assert_eq!(
            mirror_key("https://tok@github.com/O/R.git"),
            mirror_key("https://github.com/O/R.git")
        );
        assert_eq!(mirror_key("ssh://git@H/x"), "ssh://git@h/x");
        assert_eq!(mirror_key("git@H:o/x.git"), "scp://git@h:o/x.git");
        assert!(!mirror_key("https://u:secret@h/x").contains("secret"));
    }
}

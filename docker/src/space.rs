//! `DockerEngine::root_dir_space`: free and total bytes and inodes of the file system holding the
//! daemon's data (`DockerRootDir`), so that a build starts only when the disk can take it.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{DockerEngine, DockerError};

/// Space on the file system of the daemon's root directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpace {
    /// The daemon's root directory (`/var/lib/docker`).
    pub path: PathBuf,
    /// Bytes available to unprivileged users.
    pub free_bytes: u64,
    /// Size of the file system in bytes.
    pub total_bytes: u64,
    /// Inodes available to unprivileged users (0 for file systems without a fixed count).
    pub free_inodes: u64,
    /// Inodes in all (0 for file systems without a fixed count).
    pub total_inodes: u64,
}

impl DockerEngine {
    /// Ask the daemon for its root directory and measure its file system with `statvfs`. The path
    /// is looked up in this process's mount namespace, so the worker must see the daemon's file
    /// system at the same path (the same host, no private mount hiding it).
    pub async fn root_dir_space(&self) -> Result<DiskSpace, DockerError> {
        let info = self.call("info", self.docker.info()).await?;
        let Some(root) = info.docker_root_dir.filter(|r| !r.is_empty()) else {
            return Err(DockerError::UnexpectedResponse {
                operation: "info",
                expected: "the daemon's DockerRootDir".into(),
                found: "an answer without it".into(),
            });
        };
        let path = PathBuf::from(root);
        tokio::task::spawn_blocking(move || statvfs(&path))
            .await
            .map_err(|e| DockerError::Io {
                what: "the statvfs task failed".into(),
                source: std::io::Error::other(e.to_string()),
            })?
    }
}

/// `statvfs(2)` of `path`.
// The fields are `u64` on 64-bit Linux but 32-bit on other targets: the conversions are kept.
#[allow(
    clippy::useless_conversion,
    reason = "the statvfs fields are u64 on 64-bit Linux, narrower elsewhere"
)]
fn statvfs(path: &Path) -> Result<DiskSpace, DockerError> {
    let io_error = |source| DockerError::Io {
        what: format!("cannot measure the file system of {}", path.display()),
        source,
    };
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io_error(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string and `stat` points to writable memory of
    // the right type; statvfs initialises it fully when it returns 0.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(io_error(std::io::Error::last_os_error()));
    }
    // SAFETY: statvfs returned 0, so `stat` is initialised.
    let stat = unsafe { stat.assume_init() };
    let fragment = u64::from(stat.f_frsize);
    Ok(DiskSpace {
        path: path.to_owned(),
        free_bytes: u64::from(stat.f_bavail).saturating_mul(fragment),
        total_bytes: u64::from(stat.f_blocks).saturating_mul(fragment),
        free_inodes: u64::from(stat.f_favail),
        total_inodes: u64::from(stat.f_files),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statvfs_of_the_root_is_plausible_and_a_missing_path_is_an_error() {
        let root = statvfs(Path::new("/")).unwrap();
        assert!(
            root.total_bytes > 0 && root.free_bytes <= root.total_bytes,
            "{root:?}"
        );
        let err = statvfs(Path::new("/nonexistent/slipway")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/slipway"), "{err}");
    }
}

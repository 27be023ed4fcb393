//! Local git repositories for tests: created in a private temporary directory, committed to with a
//! fixed author and date, reachable by a `file://` URL, removed on drop.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

/// A git repository (with a work tree) that tests commit files into.
#[derive(Debug)]
pub struct LocalRepo {
    dir: PathBuf,
}

impl LocalRepo {
    /// A new, empty repository whose first branch is `main`.
    pub fn new(name: &str) -> LocalRepo {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "slipway-test-repo-{}-{}-{name}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the repository directory");
        let repo = LocalRepo { dir };
        repo.git(&["init", "--quiet", "--initial-branch=main"]);
        repo
    }

    /// The `file://` URL of the repository.
    pub fn url(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    /// The work tree.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes `files` (path, contents) and commits them; returns the commit SHA.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        for (path, contents) in files {
            let full = self.dir.join(path);
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent).expect("create directories in the work tree");
            }
            std::fs::write(&full, contents).expect("write a file in the work tree");
            self.git(&["add", "--", path]);
        }
        self.git(&["commit", "--quiet", "--allow-empty", "-m", message]);
        self.rev_parse("HEAD")
    }

    /// The SHA a revision names.
    pub fn rev_parse(&self, revision: &str) -> String {
        self.git(&["rev-parse", "--verify", revision])
            .trim()
            .to_string()
    }

    /// Runs git in the repository with a fixed identity and date; panics on failure.
    pub fn git(&self, args: &[&str]) -> String {
        let output = Command::new("git")
            .args(args)
            .current_dir(&self.dir)
            .env("GIT_AUTHOR_NAME", "Slipway Test")
            .env("GIT_AUTHOR_EMAIL", "test@slipway.invalid")
            .env("GIT_COMMITTER_NAME", "Slipway Test")
            .env("GIT_COMMITTER_EMAIL", "test@slipway.invalid")
            .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .expect("run git");
        assert!(
            output.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for LocalRepo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

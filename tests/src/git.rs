//! Local git repositories for tests: created in a private temporary directory, committed to with a
//! fixed author and date, reachable by a `file://` URL, removed on drop.

use std::path::Path;
use std::process::Command;

use slipway_common::index::test_support::sample_entry;
use slipway_common::index::{Entry, NetworkMode};

use crate::TempDir;

/// A git repository (with a work tree) that tests commit files into.
#[derive(Debug)]
pub struct LocalRepo {
    dir: TempDir,
}

impl LocalRepo {
    /// A new, empty repository whose first branch is `main`.
    pub fn new(name: &str) -> LocalRepo {
        let repo = LocalRepo {
            dir: TempDir::new(&format!("repo-{name}")),
        };
        repo.git(&["init", "--quiet", "--initial-branch=main"]);
        repo
    }

    /// The `file://` URL of the repository.
    pub fn url(&self) -> String {
        format!("file://{}", self.dir.path().display())
    }

    /// A plain index entry for this repository: the `Dockerfile` at the root of `main`, built as
    /// `<app_id>/app:latest`, without network, prebuild script, smoke test, build arguments or
    /// lint overrides (the sample entry's other fields).
    pub fn entry(&self, app_id: &str) -> Entry {
        Entry {
            app_id: app_id.to_string(),
            job_id: "app".into(),
            desired_tag: "latest".into(),
            git_url: self.url(),
            git_branch: "main".into(),
            git_path: "/".into(),
            target_file: "Dockerfile".into(),
            build_context: "./".into(),
            prebuild_script: None,
            prebuild_context: None,
            smoke_test: None,
            build_args: Default::default(),
            network: NetworkMode::None,
            lint: Default::default(),
            rebuild_schedule: None,
            ..sample_entry()
        }
    }

    /// The work tree.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `files` (path, contents) and commits them; returns the commit SHA.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        for (path, contents) in files {
            self.dir.file(path, contents);
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
            .current_dir(self.dir.path())
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

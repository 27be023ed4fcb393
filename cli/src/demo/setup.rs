//! The demo's files: its work directory (removed when the demo ends, however it ends short of
//! `kill -9`), and the two sample git repositories in it, committed with a fixed author and date
//! so that the same sample gives the same commits on every run.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use super::sample;

/// A directory removed with everything in it when dropped.
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    /// `<tmp>/slipway-demo-<namespace>`, emptied first if an earlier demo left it behind.
    pub fn create(namespace: &str) -> anyhow::Result<(WorkDir, bool)> {
        let path = std::env::temp_dir().join(format!("slipway-demo-{namespace}"));
        let leftover = path.exists();
        if leftover {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("remove {} (left by an earlier demo)", path.display()))?;
        }
        // `mail` is a Maildir: the sink stores into its `tmp` and `new`.
        for dir in [
            "logs", "config", "mail/tmp", "mail/new", "mail/cur", "cache", "build",
        ] {
            std::fs::create_dir_all(path.join(dir))
                .with_context(|| format!("create {}", path.join(dir).display()))?;
        }
        Ok((WorkDir { path }, leftover))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The sample repositories, committed: `(application URL, index URL)`.
pub fn repositories(work: &Path, registry_host: &str) -> anyhow::Result<(String, String)> {
    let applications = work.join("apps");
    let application_url = format!("file://{}", applications.display());
    commit_tree(
        &applications,
        &sample::application_files(registry_host),
        "The demo's services: a base image, two services on it, and a broken one",
    )?;
    let index = work.join("index");
    let index_url = format!("file://{}", index.display());
    let index_file = format!("index.d/{}.yaml", sample::APP_ID);
    commit_tree(
        &index,
        &[(index_file, sample::index_file(&application_url))],
        "The demo's index",
    )?;
    Ok((application_url, index_url))
}

/// A new repository at `dir` on the sample branch, holding `files` in one commit.
fn commit_tree(dir: &Path, files: &[(String, String)], message: &str) -> anyhow::Result<()> {
    for (name, text) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    }
    git(
        dir,
        &["init", "--quiet", "--initial-branch", sample::BRANCH],
    )?;
    git(dir, &["add", "--all"])?;
    git(
        dir,
        &["commit", "--quiet", "--no-gpg-sign", "--message", message],
    )?;
    Ok(())
}

/// Run git in `dir` with a fixed identity and date, and no user or system configuration.
fn git(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    const DATE: &str = "2026-01-01T00:00:00Z";
    let output = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Slipway demo")
        .env("GIT_AUTHOR_EMAIL", sample::OWNER)
        .env("GIT_AUTHOR_DATE", DATE)
        .env("GIT_COMMITTER_NAME", "Slipway demo")
        .env("GIT_COMMITTER_EMAIL", sample::OWNER)
        .env("GIT_COMMITTER_DATE", DATE)
        .output()
        .context("run git (is it installed? `bash deploy/dev-env.sh` installs it)")?;
    if !output.status.success() {
        bail!(
            "git {} in {}: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

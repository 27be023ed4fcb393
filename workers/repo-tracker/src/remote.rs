//! Which git URLs name the same repository. An index entry may write a repository over HTTPS,
//! SSH or as its web page; a forge's push names it in several of these forms. They are compared
//! by a key: host (lowercase, without user or port) and path (without a trailing `/` or `.git`).
//! Pure: no I/O.

use std::fmt;

/// A repository's identity, independent of how its URL is written.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoKey(String);

impl RepoKey {
    /// The key of `url`: `https://github.com/CentOS/foo.git`, `git@github.com:CentOS/foo` and
    /// `ssh://git@github.com:22/CentOS/foo/` all give `github.com/CentOS/foo`. A local path or
    /// `file://` URL keeps its path. Paths stay case-sensitive (most forges' are not, but a
    /// plain git server's are).
    pub fn of(url: &str) -> RepoKey {
        let url = url.trim();
        let (rest, scheme) = match url.split_once("://") {
            Some((scheme, rest)) => (rest, Some(scheme.to_ascii_lowercase())),
            None => (url, None),
        };
        if scheme.as_deref() == Some("file") || (scheme.is_none() && rest.starts_with('/')) {
            return RepoKey(format!("file:{}", trim_path(rest)));
        }
        let (authority, path) = match scheme {
            Some(_) => rest.split_once('/').unwrap_or((rest, "")),
            // scp-like `user@host:path`.
            None => rest.split_once(':').unwrap_or((rest, "")),
        };
        let host = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host);
        let host = host.split_once(':').map_or(host, |(host, _port)| host);
        RepoKey(format!(
            "{}/{}",
            host.to_ascii_lowercase(),
            trim_path(path.trim_start_matches('/'))
        ))
    }
}

/// `path` without trailing slashes and one `.git` suffix.
fn trim_path(path: &str) -> &str {
    let path = path.trim_end_matches('/');
    path.strip_suffix(".git").unwrap_or(path)
}

impl fmt::Display for RepoKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tracked branch: a repository and a branch name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BranchKey {
    /// The repository.
    pub repo: RepoKey,
    /// The branch.
    pub branch: String,
}

impl BranchKey {
    /// The branch `branch` of the repository at `url`.
    pub fn of(url: &str, branch: &str) -> BranchKey {
        BranchKey {
            repo: RepoKey::of(url),
            branch: branch.to_owned(),
        }
    }
}

impl fmt::Display for BranchKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.repo, self.branch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_of_one_repository_share_a_key() {
        let key = RepoKey::of("https://github.com/CentOS/foo");
        for form in [
            "https://github.com/CentOS/foo.git",
            "https://GitHub.com/CentOS/foo/",
            "http://user:secret@github.com/CentOS/foo",
            "git@github.com:CentOS/foo.git",
            "ssh://git@github.com:22/CentOS/foo",
            "git://github.com/CentOS/foo",
        ] {
            assert_eq!(RepoKey::of(form), key, "{form}");
        }
        assert_eq!(key.to_string(), "github.com/CentOS/foo");
    }

    #[test]
    fn different_repositories_and_local_paths_differ() {
        let key = RepoKey::of("https://github.com/CentOS/foo");
        for other in [
            "https://github.com/CentOS/foo-bar",
            "https://github.com/centos/foo",
            "https://gitlab.com/CentOS/foo",
            "/srv/git/foo",
        ] {
            assert_ne!(RepoKey::of(other), key, "{other}");
        }
        assert_eq!(
            RepoKey::of("file:///srv/git/foo.git"),
            RepoKey::of("/srv/git/foo")
        );
        assert_ne!(
            BranchKey::of("/srv/git/foo", "main"),
            BranchKey::of("/srv/git/foo", "dev")
        );
    }
}

//! Why fetching or reading source failed, split into permanent and transient failures, and how
//! git's stderr is classified into them.
//!
//! Classification of git's messages (matched case-insensitively, permanent patterns first, because
//! git often adds a generic "hung up" line after a specific one):
//!
//! | git says | variant | why |
//! |---|---|---|
//! | "Repository not found", "repository '…' not found", "does not appear to be a git repository", "access denied or repository not exported" (git daemon), "not found: did you run git update-server-info", HTTP 404 | [`SourceError::RepositoryNotFound`] | the URL names nothing: retrying will not create it |
//! | "Authentication failed", "could not read Username/Password", "terminal prompts disabled", "Permission denied", "Host key verification failed", HTTP 401/403 | [`SourceError::AccessDenied`] | needs a configuration change, not time |
//! | "transport '…' not allowed" | [`SourceError::InvalidUrl`] | the protocol is not allowed |
//! | "strange hostname/port/pathname '…' blocked" | [`SourceError::InvalidUrl`] | git refuses a URL part that ssh could take for an option: the URL is the problem |
//! | "Could not resolve host(name)", "unable to look up", "Name or service not known", "Temporary failure in name resolution" | [`SourceError::Unreachable`] | **transient**: a DNS outage looks exactly like a typo; a typo ends in the dead-letter queue after the retries, with this message |
//! | "Connection refused", "Couldn't connect", "Failed to connect", "No route to host", "Network is unreachable", "timed out", "Connection reset", "hung up unexpectedly", "early EOF", "RPC failed", "transfer closed", TLS read errors, HTTP 429/5xx | [`SourceError::Unreachable`] | the network or the server is having a bad moment |
//! | anything else | [`SourceError::GitFailed`] | **transient**: an unknown failure is retried a bounded number of times rather than failing a job for good on a message we have never seen |

use std::path::PathBuf;

use slipway_common::message::CommitSha;

/// Fetching or reading git source failed. Every message names what was expected and what was
/// found; URLs and git's output in it are redacted (no credentials).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The URL has a scheme that is not allowed or could be taken for an option. Permanent.
    #[error("invalid git URL: {problem}")]
    InvalidUrl {
        /// What was expected and found.
        problem: String,
    },
    /// The ref cannot be a branch, tag or commit name. Permanent.
    #[error("invalid git ref: {problem}")]
    InvalidRef {
        /// What was expected and found.
        problem: String,
    },
    /// A path is absolute, leaves the repository or has control characters. Permanent.
    #[error("invalid path: {problem}")]
    InvalidPath {
        /// What was expected and found.
        problem: String,
    },
    /// The export destination cannot be used. Permanent.
    #[error("cannot export into {}: {problem}", dest.display())]
    InvalidDestination {
        /// The destination directory.
        dest: PathBuf,
        /// What was expected and found.
        problem: String,
    },
    /// Nothing answers to that URL as a repository. Permanent.
    #[error("repository {url} not found (or not exported): {detail}")]
    RepositoryNotFound {
        /// The URL, redacted.
        url: String,
        /// What git reported, redacted.
        detail: String,
    },
    /// The server refused the credentials (or there were none). Permanent.
    #[error("access to {url} denied (check its credentials): {detail}")]
    AccessDenied {
        /// The URL, redacted.
        url: String,
        /// What git reported, redacted.
        detail: String,
    },
    /// The repository has no branch, tag or commit of that name. Permanent.
    #[error("unknown ref {git_ref:?} in {url}: no branch, tag or commit of that name")]
    UnknownRef {
        /// The URL, redacted.
        url: String,
        /// The ref as given.
        git_ref: String,
    },
    /// An abbreviated commit id matches more than one commit. Permanent.
    #[error(
        "ambiguous ref {git_ref:?} in {url}: it abbreviates more than one commit ({candidates}); give more hex digits"
    )]
    AmbiguousRef {
        /// The URL, redacted.
        url: String,
        /// The ref as given.
        git_ref: String,
        /// Some of the commits it matches.
        candidates: String,
    },
    /// The commit has no file (or directory, for an export) at that path. Permanent.
    #[error("{path:?} in commit {commit} of {url}: expected {expected}, found {found}")]
    PathNotInCommit {
        /// The URL, redacted.
        url: String,
        /// The commit.
        commit: CommitSha,
        /// The path inside the repository.
        path: String,
        /// "a file" or "a directory".
        expected: &'static str,
        /// What is there instead, e.g. "nothing" or "a directory".
        found: String,
    },
    /// The mirror, an exported tree or a file grew past `max_repo_bytes`. Permanent.
    #[error(
        "{what} of {url} reached {found_bytes} bytes, over the limit max_repo_bytes = {limit_bytes}"
    )]
    TooLarge {
        /// The URL, redacted.
        url: String,
        /// What was measured: "the mirror", "the exported tree", "file …".
        what: String,
        /// The configured limit.
        limit_bytes: u64,
        /// The size when the limit was noticed (a lower bound while data was still arriving).
        found_bytes: u64,
    },
    /// An operation did not finish within `fetch_timeout_ms`; its git processes were killed.
    /// Transient.
    #[error("{operation} for {url} did not finish within the limit fetch_timeout_ms = {limit_ms}")]
    Timeout {
        /// What was running, e.g. "git fetch" or "waiting for the mirror lock".
        operation: &'static str,
        /// The URL, redacted.
        url: String,
        /// The configured limit.
        limit_ms: u64,
    },
    /// The host could not be reached (DNS, refused, reset, 5xx). Transient.
    #[error("{url} is unreachable: {detail}")]
    Unreachable {
        /// The URL, redacted.
        url: String,
        /// What git reported, redacted.
        detail: String,
    },
    /// git died of a signal we did not send (e.g. the OOM killer). Transient.
    #[error("git {operation} for {url} was killed by signal {signal}")]
    Killed {
        /// The git subcommand.
        operation: &'static str,
        /// The URL, redacted.
        url: String,
        /// The signal number.
        signal: i32,
    },
    /// A commit fetched earlier is no longer in the cache (another process reset the mirror).
    /// Transient: fetching again restores it.
    #[error(
        "commit {commit} of {url} is no longer in the cache (the mirror was reset); fetch it again"
    )]
    NoLongerCached {
        /// The URL, redacted.
        url: String,
        /// The commit.
        commit: CommitSha,
    },
    /// git failed in a way not recognised above. Transient.
    #[error("git {operation} for {url} failed ({status}): {stderr}")]
    GitFailed {
        /// The git subcommand.
        operation: &'static str,
        /// The URL, redacted.
        url: String,
        /// The exit status.
        status: String,
        /// git's message, redacted and shortened.
        stderr: String,
    },
    /// git could not be started (not installed, no permission). Transient.
    #[error("cannot start git for {operation}: {source}")]
    Spawn {
        /// The git subcommand.
        operation: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Reading or writing the cache or an export failed (disk full, permissions). Transient.
    #[error("I/O error at {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl SourceError {
    /// Whether trying again later may succeed (network, timeouts, signals, I/O, unknown git
    /// failures). Permanent failures (bad input, missing repository, ref or path, access denied,
    /// too large) will fail the same way every time.
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::InvalidUrl { .. }
            | SourceError::InvalidRef { .. }
            | SourceError::InvalidPath { .. }
            | SourceError::InvalidDestination { .. }
            | SourceError::RepositoryNotFound { .. }
            | SourceError::AccessDenied { .. }
            | SourceError::UnknownRef { .. }
            | SourceError::AmbiguousRef { .. }
            | SourceError::PathNotInCommit { .. }
            | SourceError::TooLarge { .. } => false,
            SourceError::Timeout { .. }
            | SourceError::Unreachable { .. }
            | SourceError::Killed { .. }
            | SourceError::NoLongerCached { .. }
            | SourceError::GitFailed { .. }
            | SourceError::Spawn { .. }
            | SourceError::Io { .. } => true,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SourceError::Io {
            path: path.into(),
            source,
        }
    }
}

/// What git's stderr says happened, as far as Slipway cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GitComplaint {
    /// No repository at that URL.
    RepositoryNotFound,
    /// Credentials missing or refused.
    AccessDenied,
    /// The protocol is not in `GIT_ALLOW_PROTOCOL`.
    TransportNotAllowed,
    /// git refused a host, port or path that ssh could take for an option ("strange hostname
    /// '-oProxyCommand=…' blocked").
    StrangeUrlPart,
    /// DNS, connection or server trouble.
    Unreachable,
    /// `git fetch <ref>`: the server has no such ref.
    NoSuchRemoteRef,
    /// The server does not allow fetching an unadvertised commit by id (protocol v0 without
    /// `uploadpack.allowReachableSHA1InWant`/`allowAnySHA1InWant`).
    UnadvertisedObject,
    /// The server does not have that object (protocol v2's answer to an unknown commit id).
    NotOurRef,
    /// Anything else.
    Other,
}

/// Classify git's (redacted) stderr; see the module documentation for the table and its reasons.
pub(crate) fn classify_stderr(stderr: &str) -> GitComplaint {
    let text = stderr.to_ascii_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|needle| text.contains(needle));
    if any(&["server does not allow request for unadvertised object"]) {
        GitComplaint::UnadvertisedObject
    } else if any(&["not our ref"]) {
        GitComplaint::NotOurRef
    } else if any(&["couldn't find remote ref"]) {
        GitComplaint::NoSuchRemoteRef
    } else if text.contains("transport '") && text.contains("' not allowed") {
        GitComplaint::TransportNotAllowed
    } else if text.contains("strange ") && text.contains("' blocked") {
        GitComplaint::StrangeUrlPart
    } else if any(&[
        "repository not found",
        "does not appear to be a git repository",
        "access denied or repository not exported",
        "did you run git update-server-info",
        "returned error: 404",
    ]) || (text.contains("repository '") && text.contains("' not found"))
    {
        GitComplaint::RepositoryNotFound
    } else if any(&[
        "authentication failed",
        "could not read username",
        "could not read password",
        "terminal prompts disabled",
        "permission denied",
        "host key verification failed",
        "returned error: 401",
        "returned error: 403",
    ]) {
        GitComplaint::AccessDenied
    } else if any(&[
        "could not resolve host",
        "unable to look up",
        "name or service not known",
        "temporary failure in name resolution",
        "connection refused",
        "couldn't connect to server",
        "failed to connect",
        "no route to host",
        "network is unreachable",
        "timed out",
        "connection reset",
        "hung up unexpectedly",
        "early eof",
        "rpc failed",
        "transfer closed",
        "ssl_read",
        "gnutls",
        "returned error: 429",
        "returned error: 5",
    ]) {
        GitComplaint::Unreachable
    } else {
        GitComplaint::Other
    }
}

/// Shorten git's stderr for an error message: its lines joined with "; ", at most 600 characters.
pub(crate) fn summarize(stderr: &str) -> String {
    const MAX: usize = 600;
    let joined = stderr
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    if joined.chars().count() <= MAX {
        return joined;
    }
    let cut: String = joined.chars().take(MAX).collect();
    format!("{cut}…")
}

/// The error for a git process that exited unsuccessfully, from its (redacted) stderr.
pub(crate) fn failure(
    operation: &'static str,
    url: &str,
    status: &std::process::ExitStatus,
    stderr: &str,
) -> SourceError {
    let url = url.to_owned();
    let detail = summarize(stderr);
    match classify_stderr(stderr) {
        GitComplaint::RepositoryNotFound => SourceError::RepositoryNotFound { url, detail },
        GitComplaint::AccessDenied => SourceError::AccessDenied { url, detail },
        GitComplaint::TransportNotAllowed => SourceError::InvalidUrl {
            problem: format!(
                "expected a transport git may use (https, http, git, ssh, file), found {url}: {detail}"
            ),
        },
        GitComplaint::StrangeUrlPart => SourceError::InvalidUrl {
            problem: format!(
                "expected a host, port and path that cannot be taken for an option, found {url}: {detail}"
            ),
        },
        GitComplaint::Unreachable => SourceError::Unreachable { url, detail },
        GitComplaint::NoSuchRemoteRef
        | GitComplaint::UnadvertisedObject
        | GitComplaint::NotOurRef
        | GitComplaint::Other => SourceError::GitFailed {
            operation,
            url,
            status: status.to_string(),
            stderr: detail,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_messages_are_classified_permanent_before_transient() {
        let cases = [
            (
                "remote: Repository not found.\nfatal: repository 'https://github.com/a/b.git/' not found",
                GitComplaint::RepositoryNotFound,
            ),
            (
                "fatal: '/tmp/x' does not appear to be a git repository\nfatal: Could not read from remote repository.",
                GitComplaint::RepositoryNotFound,
            ),
            (
                "fatal: remote error: access denied or repository not exported: /nope\nfatal: the remote end hung up unexpectedly",
                GitComplaint::RepositoryNotFound,
            ),
            (
                "fatal: could not read Username for 'https://github.com': terminal prompts disabled",
                GitComplaint::AccessDenied,
            ),
            (
                "git@github.com: Permission denied (publickey).",
                GitComplaint::AccessDenied,
            ),
            (
                "fatal: unable to access 'https://h/x/': The requested URL returned error: 403",
                GitComplaint::AccessDenied,
            ),
            (
                "fatal: transport 'file' not allowed",
                GitComplaint::TransportNotAllowed,
            ),
            (
                "fatal: strange hostname '-oProxyCommand=touch /tmp/x' blocked",
                GitComplaint::StrangeUrlPart,
            ),
            (
                "fatal: strange pathname '-x' blocked\nfatal: the remote end hung up unexpectedly",
                GitComplaint::StrangeUrlPart,
            ),
            (
                "fatal: unable to access 'https://nonexistent.invalid/x.git/': Could not resolve host: nonexistent.invalid",
                GitComplaint::Unreachable,
            ),
            (
                "fatal: unable to connect to 127.0.0.1:\n127.0.0.1[0: 127.0.0.1]: errno=Connection refused",
                GitComplaint::Unreachable,
            ),
            (
                "fatal: unable to access 'https://127.0.0.1:1/x.git/': Failed to connect to 127.0.0.1 port 1 after 0 ms: Couldn't connect to server",
                GitComplaint::Unreachable,
            ),
            (
                "error: RPC failed; HTTP 502 curl 22 The requested URL returned error: 502",
                GitComplaint::Unreachable,
            ),
            (
                "fatal: unable to look up nonexistent.invalid (port 9418) (Name or service not known)",
                GitComplaint::Unreachable,
            ),
            (
                "error: Server does not allow request for unadvertised object 0d0f4a74ef4a65b363b0a16f688a2eed55784591",
                GitComplaint::UnadvertisedObject,
            ),
            (
                "fatal: remote error: upload-pack: not our ref 1111111111111111111111111111111111111111",
                GitComplaint::NotOurRef,
            ),
            (
                "fatal: couldn't find remote ref refs/heads/nope",
                GitComplaint::NoSuchRemoteRef,
            ),
            ("fatal: something new", GitComplaint::Other),
        ];
        for (stderr, expected) in cases {
            assert_eq!(classify_stderr(stderr), expected, "{stderr}");
        }
    }

    #[test]
    fn failures_map_to_permanent_or_transient_errors() {
        use std::os::unix::process::ExitStatusExt;
        let status = std::process::ExitStatus::from_raw(128 << 8);
        let url = "https://u:***@h/x.git";
        let not_found = failure("ls-remote", url, &status, "remote: Repository not found.");
        assert!(!not_found.is_transient());
        assert!(not_found.to_string().contains(url), "{not_found}");
        let refused = failure("fetch", url, &status, "errno=Connection refused");
        assert!(refused.is_transient());
        let blocked = failure(
            "ls-remote",
            "ssh://-oProxyCommand=x/r",
            &status,
            "fatal: strange hostname '-oProxyCommand=x' blocked",
        );
        assert!(!blocked.is_transient(), "{blocked}");
        assert!(
            matches!(blocked, SourceError::InvalidUrl { .. }),
            "{blocked}"
        );
        let unknown = failure("fetch", url, &status, "fatal: gremlins");
        assert!(unknown.is_transient());
        assert!(unknown.to_string().contains("gremlins"), "{unknown}");
    }

    #[test]
    fn long_stderr_is_summarized_on_one_line() {
        assert_eq!(summarize("a\n\n  b  \n"), "a; b");
        let long = "x".repeat(2000);
        assert_eq!(summarize(&long).chars().count(), 601);
    }
}

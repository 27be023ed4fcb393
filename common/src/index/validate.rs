//! What an index entry may name as its source: validation of remote URLs, ref names and paths
//! inside a repository, and credential redaction. `slipway-source` runs git with exactly these
//! checks, so an [`Entry`](super::Entry) and a fetch accept the same input.

use std::path::{Component, Path};

/// Check a remote URL: one of the allowed schemes (or scp-like `user@host:path`) and nothing git
/// could take for an option. The problem names what was expected and what was found, credentials
/// redacted.
pub fn check_git_url(value: &str) -> Result<(), String> {
    const SCHEMES: [&str; 5] = ["https://", "http://", "git://", "ssh://", "file://"];
    let has_scheme = SCHEMES.iter().any(|scheme| value.starts_with(scheme));
    let scp_like = !value.contains("://")
        && value
            .split_once(':')
            .is_some_and(|(host, path)| host.contains('@') && !path.is_empty());
    let safe_chars = !value.starts_with('-')
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\');
    if (has_scheme || scp_like) && safe_chars {
        match option_like_part(value) {
            None => Ok(()),
            Some(part) => Err(format!(
                "expected a URL whose user, host, port and path cannot be taken for an option, found {:?} ({part} starts with '-')",
                redact_credentials(value)
            )),
        }
    } else {
        Err(format!(
            "expected an https://, http://, git://, ssh://, file:// or user@host:path URL without spaces, found {:?}",
            redact_credentials(value)
        ))
    }
}

/// The part of a git URL that starts with `-` and that git would hand to ssh as an argument
/// (`ssh://-oProxyCommand=…/r`, `git@-oProxyCommand=…:r`), if any. git itself refuses some of
/// these ("strange hostname … blocked"), but only after a job has been accepted.
fn option_like_part(url: &str) -> Option<&'static str> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("scp", url));
    let (authority, path) = if scheme == "scp" {
        rest.split_once(':').unwrap_or((rest, ""))
    } else {
        rest.split_once('/').unwrap_or((rest, ""))
    };
    let (user, host_port) = match authority.rsplit_once('@') {
        Some((user, host_port)) => (Some(user), host_port),
        None => (None, authority),
    };
    let (host, port) = host_port.rsplit_once(':').unwrap_or((host_port, ""));
    let starts_with_dash = |part: &str| part.trim_start_matches('[').starts_with('-');
    if user.is_some_and(starts_with_dash) {
        Some("the user")
    } else if starts_with_dash(host) {
        Some("the host")
    } else if port.starts_with('-') {
        Some("the port")
    } else if matches!(scheme, "ssh" | "scp") && path.starts_with('-') {
        Some("the path")
    } else {
        None
    }
}

/// Check a branch, tag or commit name: git's `check-ref-format` rules that matter here, and nothing
/// git could take for an option or a revision expression.
pub fn check_git_ref(value: &str) -> Result<(), String> {
    let problem = if value.is_empty() {
        Some("it is empty")
    } else if value.starts_with('-') {
        Some("it starts with '-'")
    } else if value.contains("..") {
        Some("it contains \"..\"")
    } else if value.contains("@{") || value == "@" {
        Some("it contains \"@{\" or is \"@\"")
    } else if value.ends_with('/') || value.ends_with('.') || value.contains("//") {
        Some("it ends with '/' or '.', or contains \"//\"")
    } else if value
        .split('/')
        .any(|part| part.starts_with('.') || part.ends_with(".lock"))
    {
        Some("a component starts with '.' or ends with \".lock\"")
    } else if value
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c))
    {
        Some("it contains a space, a control character or one of ~^:?*[\\")
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(why) => Err(format!(
            "expected a git branch, tag or commit name, found {value:?} ({why})"
        )),
    }
}

/// Normalise a path relative to the repository root: no leading `/`, no `..`, no control
/// characters; `.` components and trailing `/` are dropped. `""` (or `.`) is the root itself.
pub fn repo_relative_path(value: &str) -> Result<String, String> {
    let outside = || format!("expected a relative path inside the repository, found {value:?}");
    if value.chars().any(char::is_control) {
        return Err(format!(
            "expected a path without control characters, found {value:?}"
        ));
    }
    let mut parts = Vec::new();
    for component in Path::new(value).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str().ok_or_else(outside)?),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(outside());
            }
        }
    }
    Ok(parts.join("/"))
}

/// Redact the credentials of every URL in `text`: a password becomes `***`
/// (`https://user:***@host/x.git`), and so does a user name standing alone in an http(s) URL, as
/// tokens are often passed that way (`https://***@host/x.git`). User names of ssh URLs, which are
/// not secrets, are kept. Use it on anything that may contain a URL before it is logged or
/// returned.
pub fn redact_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (before, after) = rest.split_at(pos);
        let scheme_start = before
            .char_indices()
            .rev()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || "+.-".contains(c)))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let scheme = &before[scheme_start..];
        out.push_str(before);
        out.push_str("://");
        let after = &after[3..];
        let end = after
            .find(|c: char| c.is_whitespace() || c.is_control() || "/?#'\"<>`".contains(c))
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(at) => {
                let (userinfo, host) = authority.split_at(at);
                match userinfo.split_once(':') {
                    Some((user, _password)) => {
                        out.push_str(user);
                        out.push_str(":***");
                    }
                    None if is_http(scheme) => out.push_str("***"),
                    None => out.push_str(userinfo),
                }
                out.push_str(host);
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn is_http(scheme: &str) -> bool {
    scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")
}

/// Redacts one remote's credentials from git's output: every URL as [`redact_credentials`] does,
/// plus the literal secrets of that remote wherever they appear (git may print a URL in a form the
/// URL pass does not recognise). Secrets shorter than 4 characters are only redacted inside URLs,
/// since replacing them everywhere would garble the text.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl Redactor {
    /// The redactor for the remote `url`.
    pub fn for_url(url: &str) -> Self {
        let mut secrets = Vec::new();
        if let Some((scheme, rest)) = url.split_once("://") {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            if let Some((userinfo, _host)) = authority.rsplit_once('@') {
                match userinfo.split_once(':') {
                    Some((_user, password)) => secrets.push(password.to_owned()),
                    None if is_http(scheme) => secrets.push(userinfo.to_owned()),
                    None => {}
                }
            }
        }
        let decoded: Vec<String> = secrets
            .iter()
            .map(|s| percent_decode(s))
            .filter(|d| !secrets.contains(d))
            .collect();
        secrets.extend(decoded);
        secrets.retain(|s| s.len() >= 4);
        // Longest first, so a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Self { secrets }
    }

    /// `text` with every credential of this remote, and of any URL, replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = redact_credentials(text);
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let value = hex(h).unwrap_or_default() * 16 + hex(l).unwrap_or_default();
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_http_tokens_are_redacted_ssh_users_kept() {
        let cases = [
            (
                "https://user:token@host/x.git",
                "https://user:***@host/x.git",
            ),
            (
                "https://ghp_abc123@github.com/o/r",
                "https://***@github.com/o/r",
            ),
            ("HTTP://u:p@h:8080/r?x=1", "HTTP://u:***@h:8080/r?x=1"),
            ("ssh://git@host/r.git", "ssh://git@host/r.git"),
            ("ssh://git:pw@host/r.git", "ssh://git:***@host/r.git"),
            ("git@github.com:o/r.git", "git@github.com:o/r.git"),
            ("https://host/x.git", "https://host/x.git"),
            ("https://u:p@ss@host/x", "https://u:***@host/x"),
            (
                "fatal: unable to access 'https://u:s3cret@h/x.git/': refused; see http://a:b@c",
                "fatal: unable to access 'https://u:***@h/x.git/': refused; see http://a:***@c",
            ),
            ("no url here", "no url here"),
            ("ünïcode://u:p@h", "ünïcode://u:***@h"),
        ];
        for (input, expected) in cases {
            assert_eq!(redact_credentials(input), expected, "{input}");
        }
    }

    #[test]
    fn the_redactor_also_removes_literal_and_decoded_secrets() {
        let redactor = Redactor::for_url("https://bot:p%40ss%2Fword@host/x.git");
        let text = "remote said: bad password p@ss/word (p%40ss%2Fword) for bot";
        let redacted = redactor.redact(text);
        assert!(!redacted.contains("p@ss/word"), "{redacted}");
        assert!(!redacted.contains("p%40ss%2Fword"), "{redacted}");
        assert!(redacted.contains("for bot"), "{redacted}");
        let token_only = Redactor::for_url("https://tok3n-value@host/x.git");
        assert_eq!(token_only.redact("echo tok3n-value"), "echo ***");
        // Short secrets are only redacted inside URLs.
        let short = Redactor::for_url("https://u:pw@host/x");
        assert_eq!(
            short.redact("pw: https://u:pw@host/x"),
            "pw: https://u:***@host/x"
        );
    }

    #[test]
    fn refs_follow_check_ref_format_and_cannot_be_options() {
        for good in [
            "main",
            "release/1.2",
            "v1.0",
            "HEAD",
            "refs/heads/x",
            "0123abc",
        ] {
            assert!(check_git_ref(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-b",
            "--upload-pack=x",
            "a..b",
            "a@{1}",
            "@",
            "x/",
            "x.",
            "a//b",
            ".hidden",
            "a/.b",
            "x.lock",
            "a b",
            "a\nb",
            "a~1",
            "a^",
            "a:b",
            "a?",
            "a*",
            "a[",
            "a\\b",
        ] {
            let problem = check_git_ref(bad).expect_err(bad);
            assert!(
                problem.starts_with("expected a git branch, tag or commit name"),
                "{problem}"
            );
        }
    }

    #[test]
    fn paths_stay_inside_the_repository() {
        assert_eq!(repo_relative_path("").unwrap(), "");
        assert_eq!(repo_relative_path(".").unwrap(), "");
        assert_eq!(repo_relative_path("./a/b/").unwrap(), "a/b");
        assert_eq!(
            repo_relative_path("a/./Dockerfile").unwrap(),
            "a/Dockerfile"
        );
        for bad in ["/etc/passwd", "../x", "a/../../x", "a/..", "a\nb", "a\0b"] {
            assert!(repo_relative_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn urls_of_allowed_schemes_only_and_redacted_in_the_problem() {
        for good in [
            "https://h/x.git",
            "http://h/x",
            "git://h/x",
            "ssh://git@h/x",
            "file:///srv/x",
            "git@h:o/x.git",
        ] {
            assert!(check_git_url(good).is_ok(), "{good}");
        }
        for bad in [
            "ftp://h/x",
            "/srv/x",
            "-uhttps://h",
            "ext::sh -c touch% /tmp/x",
            "https://h/a b",
            "h:x",
        ] {
            assert!(check_git_url(bad).is_err(), "{bad}");
        }
        let problem = check_git_url("ftp://u:hunter22@h/x").unwrap_err();
        assert!(!problem.contains("hunter22"), "{problem}");
        assert!(problem.contains("ftp://u:***@h/x"), "{problem}");
    }

    #[test]
    fn hosts_users_ports_and_ssh_paths_that_look_like_options_are_refused() {
        for (bad, part) in [
            ("ssh://-oProxyCommand=touch%20x/r", "the host"),
            ("git@-oProxyCommand=touch:r", "the host"),
            ("ssh://-oProxyCommand=x@h/r", "the user"),
            ("u@-h:r", "the host"),
            ("ssh://git@h:-1/r", "the port"),
            ("git@h:-r", "the path"),
            ("ssh://[-x]/r", "the host"),
            ("https://u:p@-h/r", "the host"),
        ] {
            let problem = check_git_url(bad).expect_err(bad);
            assert!(problem.contains(part), "{bad}: {problem}");
        }
        for good in [
            "ssh://git@h:22/r-x",
            "git@h:team/-r",
            "https://h/-r",
            "ssh://[::1]:22/r",
            "git@host-1.example:r",
        ] {
            assert!(check_git_url(good).is_ok(), "{good}");
        }
        let problem = check_git_url("https://u:hunter22@-h/x").unwrap_err();
        assert!(!problem.contains("hunter22"), "{problem}");
        assert!(problem.contains("https://u:***@-h/x"), "{problem}");
    }
}

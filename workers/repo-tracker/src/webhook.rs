//! Push events from GitHub, GitLab and Gitea: which forge sent a request, whether it is
//! signed with the secret, and the push it describes. Pure: headers and body in, a decision out.
//!
//! | forge | event header | signature | delivery id |
//! |---|---|---|---|
//! | GitHub | `X-GitHub-Event: push` | `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>` | `X-GitHub-Delivery` |
//! | GitLab | `X-Gitlab-Event: Push Hook` | `X-Gitlab-Token: <the secret itself>` | `X-Gitlab-Webhook-UUID`, else `X-Gitlab-Event-UUID` |
//! | Gitea | `X-Gitea-Event: push` | `X-Gitea-Signature: <hex HMAC-SHA256 of the body>` | `X-Gitea-Delivery` |
//!
//! Every comparison with the secret is constant-time. The body is bounded by the caller
//! ([`MAX_BODY_BYTES`]) before any of this runs.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use slipway_common::message::CommitSha;
use subtle::ConstantTimeEq;

/// The largest webhook body accepted. GitHub caps its payloads at 25 MB, but a push's payload
/// is a few kilobytes plus its commit list (at most 20 commits on GitHub, configurable on
/// GitLab); 1 MiB holds any real push.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The forge that sent a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forge {
    /// GitHub (and GitHub Enterprise).
    GitHub,
    /// GitLab.
    GitLab,
    /// Gitea (and Forgejo, which sends Gitea's headers too).
    Gitea,
}

impl Forge {
    /// The forge named by the request's event header, if any. Gitea also sends GitHub-style
    /// headers, so its own header is looked at first.
    pub fn of<H: Headers + ?Sized>(headers: &H) -> Option<Forge> {
        if headers.get("x-gitea-event").is_some() {
            Some(Forge::Gitea)
        } else if headers.get("x-gitlab-event").is_some() {
            Some(Forge::GitLab)
        } else if headers.get("x-github-event").is_some() {
            Some(Forge::GitHub)
        } else {
            None
        }
    }

    /// Its label (metrics, logs).
    pub const fn as_str(self) -> &'static str {
        match self {
            Forge::GitHub => "github",
            Forge::GitLab => "gitlab",
            Forge::Gitea => "gitea",
        }
    }
}

/// A request's headers, looked up by lowercase name.
pub trait Headers {
    /// The value of header `name` (lowercase), if present and text.
    fn get(&self, name: &str) -> Option<&str>;
}

impl Headers for [(&str, &str)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| *value)
    }
}

/// Why a request is not acted on. Each maps to one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// No forge's event header: 400.
    #[error(
        "not a webhook of GitHub, GitLab or Gitea (no X-GitHub-Event, X-Gitlab-Event or X-Gitea-Event header)"
    )]
    UnknownForge,
    /// The signature header is missing: 401.
    #[error("{forge} webhook without its signature header {header}")]
    Unsigned {
        /// The forge's label.
        forge: &'static str,
        /// The header that was expected.
        header: &'static str,
    },
    /// The signature does not match the secret: 401.
    #[error("{forge} webhook signature does not match the secret")]
    BadSignature {
        /// The forge's label.
        forge: &'static str,
    },
    /// The body is larger than [`MAX_BODY_BYTES`]: 413.
    #[error("webhook body of more than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    /// The body is not the push event JSON it claims to be: 400.
    #[error("malformed {forge} push event: {problem}")]
    Malformed {
        /// The forge's label.
        forge: &'static str,
        /// What is wrong (bounded).
        problem: String,
    },
}

impl WebhookError {
    /// The HTTP status to answer with.
    pub const fn status(&self) -> u16 {
        match self {
            WebhookError::UnknownForge | WebhookError::Malformed { .. } => 400,
            WebhookError::Unsigned { .. } | WebhookError::BadSignature { .. } => 401,
            WebhookError::TooLarge => 413,
        }
    }
}

/// Check that `body` was sent by someone holding `secret`, the way `forge` signs.
pub fn verify<H: Headers + ?Sized>(
    forge: Forge,
    headers: &H,
    body: &[u8],
    secret: &[u8],
) -> Result<(), WebhookError> {
    let label = forge.as_str();
    let header = match forge {
        Forge::GitHub => "x-hub-signature-256",
        Forge::GitLab => "x-gitlab-token",
        Forge::Gitea => "x-gitea-signature",
    };
    let value = headers.get(header).ok_or(WebhookError::Unsigned {
        forge: label,
        header,
    })?;
    let bad = WebhookError::BadSignature { forge: label };
    match forge {
        Forge::GitLab => {
            if bool::from(value.as_bytes().ct_eq(secret)) {
                Ok(())
            } else {
                Err(bad)
            }
        }
        Forge::GitHub | Forge::Gitea => {
            let hex = if forge == Forge::GitHub {
                value.strip_prefix("sha256=").ok_or_else(|| bad.clone())?
            } else {
                value
            };
            let expected = decode_hex(hex).ok_or_else(|| bad.clone())?;
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| bad.clone())?;
            mac.update(body);
            mac.verify_slice(&expected).map_err(|_| bad)
        }
    }
}

/// A push to one branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Push {
    /// The forge that sent it.
    pub forge: Forge,
    /// The forge's delivery id: a redelivery carries the same one.
    pub delivery: Option<String>,
    /// Every URL the repository is known by in the payload (clone over HTTPS and SSH, web page):
    /// an index entry's `git-url` may use any of them.
    pub repository_urls: Vec<String>,
    /// The branch pushed to (`refs/heads/` removed).
    pub branch: String,
    /// The branch's new head.
    pub head: CommitSha,
}

/// What a signed request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A push that moved a branch to a commit.
    Push(Push),
    /// Anything else (a ping, a tag push, a deleted branch, another event): acknowledged,
    /// nothing to do. The reason is for the log.
    Ignored(&'static str),
}

/// The push described by a *verified* request.
pub fn parse<H: Headers + ?Sized>(
    forge: Forge,
    headers: &H,
    body: &[u8],
) -> Result<Event, WebhookError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(WebhookError::TooLarge);
    }
    let event = match forge {
        Forge::GitHub => headers.get("x-github-event"),
        Forge::GitLab => headers.get("x-gitlab-event"),
        Forge::Gitea => headers.get("x-gitea-event"),
    }
    .unwrap_or_default();
    let is_push = match forge {
        Forge::GitLab => event == "Push Hook",
        Forge::GitHub | Forge::Gitea => event == "push",
    };
    if !is_push {
        return Ok(Event::Ignored("not a push event"));
    }
    let malformed = |problem: String| WebhookError::Malformed {
        forge: forge.as_str(),
        problem: problem.chars().take(200).collect(),
    };
    let payload: Payload =
        serde_json::from_slice(body).map_err(|error| malformed(error.to_string()))?;
    let Some(branch) = payload.git_ref.strip_prefix("refs/heads/") else {
        return Ok(Event::Ignored("not a branch (a tag or another ref)"));
    };
    if payload.deleted || payload.after.bytes().all(|b| b == b'0') {
        return Ok(Event::Ignored("the branch was deleted"));
    }
    let head = CommitSha::try_from(payload.after.clone())
        .map_err(|_| malformed(format!("`after` is not a commit id: {:?}", payload.after)))?;
    let delivery = match forge {
        Forge::GitHub => headers.get("x-github-delivery"),
        Forge::GitLab => headers
            .get("x-gitlab-webhook-uuid")
            .or_else(|| headers.get("x-gitlab-event-uuid")),
        Forge::Gitea => headers.get("x-gitea-delivery"),
    }
    .map(|id| id.chars().take(128).collect());
    let mut repository_urls: Vec<String> = Vec::new();
    for url in [payload.repository, payload.project]
        .into_iter()
        .flatten()
        .flat_map(RepositoryUrls::into_urls)
    {
        if !repository_urls.contains(&url) {
            repository_urls.push(url);
        }
    }
    if repository_urls.is_empty() {
        return Err(malformed("no repository URL".to_owned()));
    }
    Ok(Event::Push(Push {
        forge,
        delivery,
        repository_urls,
        branch: branch.to_owned(),
        head,
    }))
}

/// The fields of a push payload the tracker reads (the three forges share these names; GitLab
/// puts its URLs in `project` as well as `repository`).
#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "ref")]
    git_ref: String,
    #[serde(default)]
    after: String,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    repository: Option<RepositoryUrls>,
    #[serde(default)]
    project: Option<RepositoryUrls>,
}

#[derive(Deserialize)]
struct RepositoryUrls {
    #[serde(default)]
    clone_url: Option<String>,
    #[serde(default)]
    ssh_url: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    git_http_url: Option<String>,
    #[serde(default)]
    git_ssh_url: Option<String>,
    #[serde(default)]
    web_url: Option<String>,
}

impl RepositoryUrls {
    fn into_urls(self) -> impl Iterator<Item = String> {
        [
            self.clone_url,
            self.ssh_url,
            self.html_url,
            self.git_http_url,
            self.git_ssh_url,
            self.web_url,
        ]
        .into_iter()
        .flatten()
    }
}

/// Lowercase or uppercase hex to bytes.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"It's a Secret to Everybody";
    const HEAD: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";

    fn hmac_hex(body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
        mac.update(body);
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn github_push() -> String {
        format!(
            r#"{{"ref":"refs/heads/main","before":"0000000000000000000000000000000000000001","after":"{HEAD}","repository":{{"clone_url":"https://github.com/team/app.git","ssh_url":"git@github.com:team/app.git","html_url":"https://github.com/team/app"}},"commits":[]}}"#
        )
    }

    #[test]
    fn githubs_documented_example_signature_verifies() {
        // The example in GitHub's "Validating webhook deliveries" documentation.
        let headers: &[(&str, &str)] = &[(
            "X-Hub-Signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        )];
        assert_eq!(
            verify(Forge::GitHub, headers, b"Hello, World!", SECRET),
            Ok(())
        );
    }

    #[test]
    fn each_forge_accepts_its_signature_and_refuses_others() {
        let body = github_push();
        let signature = format!("sha256={}", hmac_hex(body.as_bytes()));
        let cases: [(Forge, &str, String); 3] = [
            (Forge::GitHub, "X-Hub-Signature-256", signature),
            (Forge::Gitea, "X-Gitea-Signature", hmac_hex(body.as_bytes())),
            (
                Forge::GitLab,
                "X-Gitlab-Token",
                String::from_utf8(SECRET.to_vec()).unwrap(),
            ),
        ];
        for (forge, header, good) in cases {
            let headers: &[(&str, &str)] = &[(header, good.as_str())];
            assert_eq!(verify(forge, headers, body.as_bytes(), SECRET), Ok(()));
            let error = verify(forge, headers, body.as_bytes(), b"another secret").unwrap_err();
            assert_eq!(error.status(), 401, "{error}");
            if forge != Forge::GitLab {
                let tampered = body.replace("main", "evil");
                let error = verify(forge, headers, tampered.as_bytes(), SECRET).unwrap_err();
                assert!(
                    matches!(error, WebhookError::BadSignature { .. }),
                    "{error}"
                );
            }
            let unsigned = verify(forge, &[][..], body.as_bytes(), SECRET).unwrap_err();
            assert!(
                matches!(unsigned, WebhookError::Unsigned { .. }),
                "{unsigned}"
            );
        }
        for garbage in ["sha256=zz", "sha256=abc", "757107ea", ""] {
            let headers: &[(&str, &str)] = &[("X-Hub-Signature-256", garbage)];
            assert!(verify(Forge::GitHub, headers, b"x", SECRET).is_err());
        }
    }

    #[test]
    fn a_github_push_names_its_urls_branch_head_and_delivery() {
        let headers: &[(&str, &str)] = &[
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ];
        assert_eq!(Forge::of(headers), Some(Forge::GitHub));
        let Event::Push(push) = parse(Forge::GitHub, headers, github_push().as_bytes()).unwrap()
        else {
            panic!("a push")
        };
        assert_eq!(push.branch, "main");
        assert_eq!(push.head.as_str(), HEAD);
        assert_eq!(
            push.delivery.as_deref(),
            Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
        );
        assert_eq!(
            push.repository_urls,
            [
                "https://github.com/team/app.git",
                "git@github.com:team/app.git",
                "https://github.com/team/app"
            ]
        );
    }

    #[test]
    fn gitlab_and_gitea_pushes_are_read_from_their_own_shapes() {
        let gitlab = format!(
            r#"{{"object_kind":"push","ref":"refs/heads/dev","after":"{HEAD}","project":{{"git_http_url":"https://gitlab.example.com/g/app.git","git_ssh_url":"git@gitlab.example.com:g/app.git","web_url":"https://gitlab.example.com/g/app"}},"repository":{{"git_http_url":"https://gitlab.example.com/g/app.git"}}}}"#
        );
        let headers: &[(&str, &str)] = &[
            ("X-Gitlab-Event", "Push Hook"),
            (
                "X-Gitlab-Event-UUID",
                "13792a34-cac6-4fda-95a8-c58e00a3954e",
            ),
        ];
        assert_eq!(Forge::of(headers), Some(Forge::GitLab));
        let Event::Push(push) = parse(Forge::GitLab, headers, gitlab.as_bytes()).unwrap() else {
            panic!("a push")
        };
        assert_eq!(push.branch, "dev");
        assert_eq!(
            push.repository_urls,
            [
                "https://gitlab.example.com/g/app.git",
                "git@gitlab.example.com:g/app.git",
                "https://gitlab.example.com/g/app"
            ]
        );
        assert_eq!(
            push.delivery.as_deref(),
            Some("13792a34-cac6-4fda-95a8-c58e00a3954e")
        );

        // Gitea sends GitHub's headers too; its own decide.
        let headers: &[(&str, &str)] = &[
            ("X-GitHub-Event", "push"),
            ("X-Gitea-Event", "push"),
            ("X-Gitea-Delivery", "d1"),
        ];
        assert_eq!(Forge::of(headers), Some(Forge::Gitea));
        let event = parse(Forge::Gitea, headers, github_push().as_bytes()).unwrap();
        assert!(
            matches!(event, Event::Push(Push { ref delivery, .. }) if delivery.as_deref() == Some("d1"))
        );
    }

    #[test]
    fn pings_tags_deletions_and_garbage_are_told_apart() {
        let push: &[(&str, &str)] = &[("X-GitHub-Event", "push")];
        let ping: &[(&str, &str)] = &[("X-GitHub-Event", "ping")];
        assert_eq!(
            parse(Forge::GitHub, ping, b"{}").unwrap(),
            Event::Ignored("not a push event")
        );
        let tag = github_push().replace("refs/heads/main", "refs/tags/v1");
        assert!(matches!(
            parse(Forge::GitHub, push, tag.as_bytes()).unwrap(),
            Event::Ignored(_)
        ));
        let deleted = github_push().replace(HEAD, &"0".repeat(40));
        assert_eq!(
            parse(Forge::GitHub, push, deleted.as_bytes()).unwrap(),
            Event::Ignored("the branch was deleted")
        );
        for garbage in [
            &b"not json"[..],
            br#"{"ref":"refs/heads/main","after":"xyz","repository":{"clone_url":"u"}}"#,
            br#"{"ref":"refs/heads/main","after":"6dcb09b5b57875f334f61aebed695e2e4193db5e"}"#,
        ] {
            let error = parse(Forge::GitHub, push, garbage).unwrap_err();
            assert_eq!(error.status(), 400, "{error}");
        }
        let huge = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(
            parse(Forge::GitHub, push, &huge),
            Err(WebhookError::TooLarge)
        );
        assert_eq!(Forge::of(&[("Content-Type", "x")][..]), None);
    }
}

//! The webhook endpoint over real TCP: signed pushes of GitHub, GitLab and Gitea become one
//! `git.changed` each; unsigned, untracked, ignored, malformed, oversized and failed ones are
//! answered with their status and publish nothing. The client is a few lines of raw HTTP/1.1,
//! so that the tests control exactly what is sent (a body cut short, chunks, no body at all).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use slipway_common::message::{GitChanged, SeenBy};
use slipway_repo_tracker::http::{PushSink, WebhookSecrets, serve_webhooks};
use slipway_repo_tracker::remote::BranchKey;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const GLOBAL: &[u8] = b"the global secret";
const OWN: &[u8] = b"the app's own secret";
const HEAD: &str = "0123456789abcdef0123456789abcdef01234567";

/// The tracked branches, as the index writes their repositories.
const GITHUB_APP: &str = "https://github.com/team/app";
const GITLAB_APP: &str = "https://gitlab.example.com/group/app.git";
const GITEA_APP: &str = "git@gitea.example.com:org/app.git";

/// The longest a test waits for an answer. The server's read timeout is longer, so an answer
/// that arrives in time was not produced by a timeout.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
const SERVER_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Tracks `main` of the three apps; records what it publishes, or fails every publish.
#[derive(Default)]
struct RecordingSink {
    published: Mutex<Vec<GitChanged>>,
    fail: bool,
}

impl RecordingSink {
    fn published(&self) -> Vec<GitChanged> {
        self.published.lock().unwrap().clone()
    }
}

impl PushSink for RecordingSink {
    fn tracked_url(&self, repository_urls: &[String], branch: &str) -> Option<String> {
        [GITHUB_APP, GITLAB_APP, GITEA_APP]
            .into_iter()
            .find(|tracked| {
                repository_urls
                    .iter()
                    .any(|url| BranchKey::of(url, branch) == BranchKey::of(tracked, "main"))
            })
            .map(str::to_owned)
    }

    async fn publish(&self, changed: GitChanged) -> Result<(), String> {
        if self.fail {
            return Err("the broker did not confirm".into());
        }
        self.published.lock().unwrap().push(changed);
        Ok(())
    }
}

/// A running endpoint; stopped (and its task awaited) by [`Server::stop`].
struct Server {
    addr: SocketAddr,
    sink: Arc<RecordingSink>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(secrets: WebhookSecrets, sink: RecordingSink) -> Server {
        Server::start_with(secrets, sink, SERVER_READ_TIMEOUT).await
    }

    async fn start_with(
        secrets: WebhookSecrets,
        sink: RecordingSink,
        read_timeout: Duration,
    ) -> Server {
        let sink = Arc::new(sink);
        let shutdown = CancellationToken::new();
        let server = serve_webhooks(
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(secrets),
            Arc::clone(&sink),
            read_timeout,
            shutdown.clone(),
        )
        .await
        .unwrap();
        Server {
            addr: server.local_addr,
            sink,
            shutdown,
            task: server.task,
        }
    }

    async fn global() -> Server {
        Server::start(
            WebhookSecrets::from_parts(Some(GLOBAL.to_vec()), Vec::new()),
            RecordingSink::default(),
        )
        .await
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(ANSWER_WITHIN, self.task)
            .await
            .expect("the endpoint stops on shutdown")
            .unwrap();
    }
}

/// An HTTP response.
#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: String,
}

/// Reads one response: its head, then as much body as its `Content-Length` says (or up to the
/// end of the connection).
async fn read_reply<R: AsyncRead + Unpin>(reader: &mut R) -> Reply {
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let length = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(usize::MAX);
                if buf.len() - end - 4 >= length {
                    let body =
                        String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into_owned();
                    let status = head
                        .split(' ')
                        .nth(1)
                        .and_then(|code| code.parse().ok())
                        .unwrap_or_else(|| panic!("a status line, found {head:?}"));
                    return Reply { status, head, body };
                }
            }
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => panic!(
                    "connection closed before a whole response: {:?}",
                    String::from_utf8_lossy(&buf)
                ),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(ANSWER_WITHIN, read)
        .await
        .expect("an answer in time")
}

/// Sends `method` with `headers` and `body` (and its length), reads the answer.
async fn request(addr: SocketAddr, method: &str, headers: &[(&str, String)], body: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut message = format!(
        "{method} /hooks/push HTTP/1.1\r\nHost: slipway.test\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        message.push_str(&format!("{name}: {value}\r\n"));
    }
    message.push_str("\r\n");
    let mut bytes = message.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes).await.unwrap();
    read_reply(&mut stream).await
}

async fn post(addr: SocketAddr, headers: &[(&str, String)], body: &str) -> Reply {
    request(addr, "POST", headers, body.as_bytes()).await
}

fn hmac_hex(secret: &[u8], body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(body.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The forges, each with its payload shape and its way of signing.
#[derive(Clone, Copy, Debug)]
enum Forge {
    GitHub,
    GitLab,
    Gitea,
}

impl Forge {
    const ALL: [Forge; 3] = [Forge::GitHub, Forge::GitLab, Forge::Gitea];

    /// The tracked repository's URL as the index writes it.
    fn tracked(self) -> &'static str {
        match self {
            Forge::GitHub => GITHUB_APP,
            Forge::GitLab => GITLAB_APP,
            Forge::Gitea => GITEA_APP,
        }
    }

    /// A push of `branch` of the repository at `host/path`, in this forge's shape.
    fn push(self, host: &str, path: &str, branch: &str) -> String {
        match self {
            Forge::GitHub | Forge::Gitea => format!(
                r#"{{"ref":"refs/heads/{branch}","before":"{zero}","after":"{HEAD}","repository":{{"full_name":"{path}","clone_url":"https://{host}/{path}.git","ssh_url":"git@{host}:{path}.git","html_url":"https://{host}/{path}"}},"commits":[]}}"#,
                zero = "0".repeat(40)
            ),
            Forge::GitLab => format!(
                r#"{{"object_kind":"push","ref":"refs/heads/{branch}","after":"{HEAD}","project":{{"path_with_namespace":"{path}","git_http_url":"https://{host}/{path}.git","git_ssh_url":"git@{host}:{path}.git","web_url":"https://{host}/{path}"}},"repository":{{"git_http_url":"https://{host}/{path}.git"}}}}"#
            ),
        }
    }

    /// A push to `main` of the tracked repository.
    fn tracked_push(self) -> String {
        match self {
            Forge::GitHub => self.push("github.com", "team/app", "main"),
            Forge::GitLab => self.push("gitlab.example.com", "group/app", "main"),
            Forge::Gitea => self.push("gitea.example.com", "org/app", "main"),
        }
    }

    /// The headers of event `event` (None: the forge's push event) signed with `secret`.
    fn headers(
        self,
        event: Option<&str>,
        delivery: &str,
        secret: &[u8],
        body: &str,
    ) -> Vec<(&'static str, String)> {
        match self {
            Forge::GitHub => vec![
                ("X-GitHub-Event", event.unwrap_or("push").to_owned()),
                ("X-GitHub-Delivery", delivery.to_owned()),
                (
                    "X-Hub-Signature-256",
                    format!("sha256={}", hmac_hex(secret, body)),
                ),
            ],
            Forge::GitLab => vec![
                ("X-Gitlab-Event", event.unwrap_or("Push Hook").to_owned()),
                ("X-Gitlab-Event-UUID", delivery.to_owned()),
                (
                    "X-Gitlab-Token",
                    String::from_utf8(secret.to_vec()).unwrap(),
                ),
            ],
            Forge::Gitea => vec![
                ("X-Gitea-Event", event.unwrap_or("push").to_owned()),
                ("X-Gitea-Delivery", delivery.to_owned()),
                ("X-Gitea-Signature", hmac_hex(secret, body)),
            ],
        }
    }
}

#[tokio::test]
async fn a_signed_push_of_each_forge_is_published_once_and_answered_202() {
    let server = Server::global().await;
    for forge in Forge::ALL {
        let body = forge.tracked_push();
        let delivery = format!("{forge:?}-delivery-1");
        let reply = post(
            server.addr,
            &forge.headers(None, &delivery, GLOBAL, &body),
            &body,
        )
        .await;
        assert_eq!(reply.status, 202, "{forge:?}: {reply:?}");
        assert!(reply.body.contains("accepted"), "{reply:?}");
        let published = server.sink.published();
        assert_eq!(
            published.last(),
            Some(&GitChanged {
                git_url: forge.tracked().to_owned(),
                git_branch: "main".into(),
                commit: HEAD.to_owned().try_into().unwrap(),
                seen_by: SeenBy::Webhook,
                delivery_id: Some(delivery),
            }),
            "{forge:?}"
        );
    }
    assert_eq!(server.sink.published().len(), 3);
    server.stop().await;
}

#[tokio::test]
async fn a_push_with_a_wrong_or_missing_signature_is_refused_401_and_not_published() {
    let server = Server::global().await;
    for forge in Forge::ALL {
        let body = forge.tracked_push();
        let wrong = forge.headers(None, "d", b"not the secret", &body);
        let reply = post(server.addr, &wrong, &body).await;
        assert_eq!(reply.status, 401, "{forge:?}: {reply:?}");
        assert!(!reply.body.contains("secret\""), "{reply:?}");
        assert!(!reply.body.contains("global"), "{reply:?}");

        // Signed for another body (GitLab sends the secret itself, which signs no body).
        if !matches!(forge, Forge::GitLab) {
            let tampered = forge.headers(None, "d", GLOBAL, &body.replace("main", "mainx"));
            let reply = post(server.addr, &tampered, &body).await;
            assert_eq!(reply.status, 401, "{forge:?}: {reply:?}");
        }

        let unsigned: Vec<_> = forge.headers(None, "d", GLOBAL, &body)[..2].to_vec();
        let reply = post(server.addr, &unsigned, &body).await;
        assert_eq!(reply.status, 401, "{forge:?}: {reply:?}");
    }
    assert!(server.sink.published().is_empty());
    let metrics = slipway_common::telemetry::render_metrics();
    assert!(
        metrics.contains(r#"slipway_webhook_requests_total{forge="gitea",outcome="unauthorized"}"#),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn untracked_pings_tags_and_malformed_bodies_publish_nothing() {
    let server = Server::global().await;
    let forge = Forge::GitHub;

    let untracked = forge.push("github.com", "team/unknown", "main");
    let reply = post(
        server.addr,
        &forge.headers(None, "d1", GLOBAL, &untracked),
        &untracked,
    )
    .await;
    assert_eq!(reply.status, 202, "{reply:?}");
    assert!(reply.body.contains("not tracked"), "{reply:?}");

    let other_branch = forge.push("github.com", "team/app", "feature");
    let reply = post(
        server.addr,
        &forge.headers(None, "d2", GLOBAL, &other_branch),
        &other_branch,
    )
    .await;
    assert_eq!(
        (reply.status, reply.body.contains("not tracked")),
        (202, true)
    );

    let ping = r#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    let reply = post(
        server.addr,
        &forge.headers(Some("ping"), "d3", GLOBAL, ping),
        ping,
    )
    .await;
    assert_eq!(reply.status, 202, "{reply:?}");
    assert!(reply.body.contains("ignored"), "{reply:?}");

    for forge in Forge::ALL {
        let tag = forge
            .tracked_push()
            .replace("refs/heads/main", "refs/tags/v1.0");
        let reply = post(server.addr, &forge.headers(None, "d4", GLOBAL, &tag), &tag).await;
        assert_eq!(reply.status, 202, "{forge:?}: {reply:?}");
        assert!(reply.body.contains("ignored"), "{reply:?}");

        let malformed = r#"{"ref":"refs/heads/main","after": nope"#;
        let reply = post(
            server.addr,
            &forge.headers(None, "d5", GLOBAL, malformed),
            malformed,
        )
        .await;
        assert_eq!(reply.status, 400, "{forge:?}: {reply:?}");
        assert!(
            !reply.body.contains("nope"),
            "the body is not echoed: {reply:?}"
        );
    }

    let no_forge = post(server.addr, &[], "{}").await;
    assert_eq!(no_forge.status, 400, "{no_forge:?}");

    assert!(server.sink.published().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn only_post_is_served() {
    let server = Server::global().await;
    for method in ["GET", "PUT", "DELETE"] {
        let reply = request(
            server.addr,
            method,
            &[("X-GitHub-Event", "push".to_owned())],
            b"",
        )
        .await;
        assert_eq!(reply.status, 405, "{method}: {reply:?}");
        assert!(
            reply
                .head
                .lines()
                .any(|line| line.eq_ignore_ascii_case("allow: POST")),
            "{reply:?}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn an_announced_10_mb_body_is_refused_413_before_it_is_sent() {
    let server = Server::global().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: slipway.test\r\nX-GitHub-Event: push\r\nX-Hub-Signature-256: sha256={}\r\nContent-Length: 10485760\r\n\r\n",
        "0".repeat(64)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // A sliver of the body; the rest never comes. The answer must not wait for it (the server's
    // read timeout is longer than this test waits).
    stream.write_all(&[b' '; 16 * 1024]).await.unwrap();
    let reply = read_reply(&mut stream).await;
    assert_eq!(reply.status, 413, "{reply:?}");
    assert!(server.sink.published().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn a_chunked_10_mb_body_is_refused_413_once_it_passes_the_limit() {
    let server = Server::global().await;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let sender = tokio::spawn(async move {
        let head = "POST / HTTP/1.1\r\nHost: slipway.test\r\nX-Gitea-Event: push\r\nX-Gitea-Signature: 00\r\nTransfer-Encoding: chunked\r\n\r\n";
        writer.write_all(head.as_bytes()).await?;
        let chunk = vec![b' '; 64 * 1024];
        let mut sent = 0usize;
        for _ in 0..160 {
            writer
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            writer.write_all(&chunk).await?;
            writer.write_all(b"\r\n").await?;
            sent += chunk.len();
        }
        writer.write_all(b"0\r\n\r\n").await?;
        Ok::<usize, std::io::Error>(sent)
    });
    let reply = read_reply(&mut reader).await;
    assert_eq!(reply.status, 413, "{reply:?}");
    // The server closes the connection: the sender fails (or, with large buffers, finishes).
    let _ = tokio::time::timeout(ANSWER_WITHIN, sender).await;
    assert!(server.sink.published().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn a_failed_publish_is_answered_503_so_that_the_forge_retries() {
    let server = Server::start(
        WebhookSecrets::from_parts(Some(GLOBAL.to_vec()), Vec::new()),
        RecordingSink {
            fail: true,
            ..RecordingSink::default()
        },
    )
    .await;
    for forge in Forge::ALL {
        let body = forge.tracked_push();
        let reply = post(server.addr, &forge.headers(None, "d", GLOBAL, &body), &body).await;
        assert_eq!(reply.status, 503, "{forge:?}: {reply:?}");
        assert!(!reply.body.contains("broker"), "{reply:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_repositorys_own_secret_wins_over_the_global_one() {
    let server = Server::start(
        WebhookSecrets::from_parts(
            Some(GLOBAL.to_vec()),
            vec![("git@github.com:team/app.git".to_owned(), OWN.to_vec())],
        ),
        RecordingSink::default(),
    )
    .await;
    let app = Forge::GitHub.tracked_push();
    let reply = post(
        server.addr,
        &Forge::GitHub.headers(None, "global", GLOBAL, &app),
        &app,
    )
    .await;
    assert_eq!(
        reply.status, 401,
        "the global secret does not sign app's pushes"
    );
    let reply = post(
        server.addr,
        &Forge::GitHub.headers(None, "own", OWN, &app),
        &app,
    )
    .await;
    assert_eq!(reply.status, 202, "{reply:?}");

    // A repository without its own secret still uses the global one.
    let gitlab = Forge::GitLab.tracked_push();
    let reply = post(
        server.addr,
        &Forge::GitLab.headers(None, "gl", OWN, &gitlab),
        &gitlab,
    )
    .await;
    assert_eq!(reply.status, 401, "{reply:?}");
    let reply = post(
        server.addr,
        &Forge::GitLab.headers(None, "gl", GLOBAL, &gitlab),
        &gitlab,
    )
    .await;
    assert_eq!(reply.status, 202, "{reply:?}");

    let published = server.sink.published();
    assert_eq!(
        published
            .iter()
            .map(|changed| (changed.git_url.as_str(), changed.delivery_id.as_deref()))
            .collect::<Vec<_>>(),
        [(GITHUB_APP, Some("own")), (GITLAB_APP, Some("gl"))]
    );
    server.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once() {
    let server = Server::global().await;
    // 256 connections that send nothing hold every slot (until the header timeout).
    let mut idle = Vec::new();
    for _ in 0..256 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // Accepted after them (the backlog is first come, first served) and closed unanswered.
    let mut extra = TcpStream::connect(server.addr).await.unwrap();
    let _ = extra
        .write_all(b"GET / HTTP/1.1\r\nHost: slipway.test\r\n\r\n")
        .await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(ANSWER_WITHIN, extra.read(&mut buf))
        .await
        .expect("closed promptly");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "expected the connection closed, read {read:?}"
    );

    // Once they are gone, requests are served again (their slots come back as the server sees
    // each close: poll for that, bounded).
    drop(idle);
    let deadline = tokio::time::Instant::now() + ANSWER_WITHIN;
    loop {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: slipway.test\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        if answer.starts_with(b"HTTP/1.1 405") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not served again after the idle connections closed"
        );
        tokio::task::yield_now().await;
    }
    server.stop().await;
}

#[tokio::test]
async fn slow_senders_are_cut_off_by_the_read_timeout() {
    let server = Server::start_with(
        WebhookSecrets::from_parts(Some(GLOBAL.to_vec()), Vec::new()),
        RecordingSink::default(),
        Duration::from_millis(200),
    )
    .await;

    // Headers that never end: the connection is closed (hyper's header timer).
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: slipway.test\r\nX-GitHub-Ev")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(ANSWER_WITHIN, stream.read_to_end(&mut rest))
        .await
        .expect("the connection is closed promptly");
    assert!(
        closed.is_err() || !rest.starts_with(b"HTTP/1.1 2"),
        "{closed:?} {rest:?}"
    );

    // A body that stops short of its length: 408.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: slipway.test\r\nX-GitHub-Event: push\r\nContent-Length: 100\r\n\r\n{\"ref\":")
        .await
        .unwrap();
    let reply = read_reply(&mut stream).await;
    assert_eq!(reply.status, 408, "{reply:?}");
    assert!(server.sink.published().is_empty());
    server.stop().await;
}

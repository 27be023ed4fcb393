//! The webhook endpoint: an HTTP/1.1 server that takes forge push webhooks, checks them with
//! [`webhook`]'s pure core and hands each verified push of a tracked branch to a
//! [`PushSink`], which publishes it as `git.changed`. It owns the `[webhook]` settings, the
//! secrets read from files, the limits on what a request may cost (body size, read time,
//! connections) and `slipway_webhook_requests_total`.
//!
//! Why a forge can trust a 202: it is sent only after the broker confirmed the `git.changed`
//! (or when there is nothing to publish); a failed publish answers 503 and the forge redelivers.
//! A redelivery carries the same delivery id, so the tracker acts on it once.
//!
//! Why one repository's secret cannot move another: with per-repository secrets, the secret is
//! chosen from the URLs the (not yet verified) body names, and only the URLs that this same secret
//! covers are then matched against the tracked branches.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Bytes};
use hyper::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::{IntCounterVec, Opts};
use serde::{Deserialize, Serialize};
use slipway_common::message::{GitChanged, SeenBy};
use slipway_common::telemetry::register;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::remote::RepoKey;
use crate::webhook::{self, Event, Forge, Headers, MAX_BODY_BYTES, WebhookError};

/// Connections served at once; one more is closed as soon as it is accepted. Forges send a
/// handful of webhooks at a time; this bounds the memory and tasks a flood can take.
const MAX_CONNECTIONS: usize = 256;

/// The read buffer of one connection (hyper's default is about 400 KiB): enough for any
/// forge's headers, and 256 connections stay within 16 MiB of buffers.
const MAX_BUF_BYTES: usize = 64 * 1024;

/// The longest delivery id kept for logs and `git.changed` (forges send UUIDs).
const MAX_DELIVERY_CHARS: usize = 128;

/// `[webhook]` config section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Address to listen on, e.g. "0.0.0.0:9480"; empty: no webhook endpoint (the default).
    pub listen: String,
    /// File holding the secret for every repository without its own (trailing newline trimmed).
    pub secret_file: Option<PathBuf>,
    /// Per-repository secrets: git URL (any form; compared by RepoKey) → file.
    pub repository_secret_files: BTreeMap<String, PathBuf>,
    /// Longest time to read one request's headers and body, in ms (default 10_000).
    pub read_timeout_ms: u64,
}

/// No endpoint; a 10 s read timeout once one is configured.
impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            listen: String::new(),
            secret_file: None,
            repository_secret_files: BTreeMap::new(),
            read_timeout_ms: 10_000,
        }
    }
}

impl WebhookSettings {
    /// Checks what serde cannot: `listen` is an address and port when set, an endpoint has at
    /// least one secret, each per-repository URL is a git URL naming a repository no other entry
    /// names, and the read timeout is positive.
    pub fn validate(&self) -> Result<(), String> {
        if self.read_timeout_ms == 0 {
            return Err("webhook.read_timeout_ms must be greater than 0".into());
        }
        let mut keys: BTreeMap<RepoKey, &str> = BTreeMap::new();
        for url in self.repository_secret_files.keys() {
            slipway_common::index::validate::check_git_url(url)
                .map_err(|e| format!("webhook.repository_secret_files: {e}"))?;
            if let Some(first) = keys.insert(RepoKey::of(url), url) {
                return Err(format!(
                    "webhook.repository_secret_files names one repository twice, as {first:?} and {url:?}: expected one secret file per repository"
                ));
            }
        }
        if self.listen.is_empty() {
            return Ok(());
        }
        self.listen.parse::<SocketAddr>().map_err(|_| {
            format!(
                "webhook.listen must be an address and port such as \"0.0.0.0:9480\" (or empty for no endpoint), found {:?}",
                self.listen
            )
        })?;
        if self.secret_file.is_none() && self.repository_secret_files.is_empty() {
            return Err(
                "webhook.listen is set but no secret is: expected webhook.secret_file or webhook.repository_secret_files"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Why the endpoint cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookSetupError {
    /// A secret file could not be read.
    #[error("cannot read the webhook secret file {}: {source}", path.display())]
    ReadSecret {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A secret file holds nothing but whitespace at its end.
    #[error(
        "the webhook secret file {} is empty: expected the secret shared with the forge",
        path.display()
    )]
    EmptySecret {
        /// The file.
        path: PathBuf,
    },
    /// Two per-repository entries name the same repository.
    #[error(
        "webhook.repository_secret_files names one repository twice, as {first:?} and {second:?}: expected one secret file per repository"
    )]
    DuplicateRepository {
        /// The first URL.
        first: String,
        /// The other URL.
        second: String,
    },
    /// The address could not be listened on.
    #[error("cannot listen for webhooks on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Secrets loaded from the files (read once at start; errors name the file; an empty secret is an error; a secret file readable by others (mode & 0o077 != 0) is only warned about).
///
/// Its `Debug` shows which repositories have their own secret, never a secret.
pub struct WebhookSecrets {
    /// The secret of every repository without its own.
    global: Option<Vec<u8>>,
    /// Each repository's own secret.
    per_repository: BTreeMap<RepoKey, Vec<u8>>,
}

/// Which secret a push is checked with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Choice<'a> {
    /// The global one.
    Global,
    /// This repository's own.
    Repository(&'a RepoKey),
}

impl WebhookSecrets {
    /// Reads the secret files named in `settings`.
    pub fn load(settings: &WebhookSettings) -> Result<WebhookSecrets, WebhookSetupError> {
        let global = settings
            .secret_file
            .as_deref()
            .map(read_secret)
            .transpose()?;
        let mut per_repository = BTreeMap::new();
        let mut firsts: BTreeMap<RepoKey, &str> = BTreeMap::new();
        for (url, path) in &settings.repository_secret_files {
            let key = RepoKey::of(url);
            if let Some(first) = firsts.insert(key.clone(), url) {
                return Err(WebhookSetupError::DuplicateRepository {
                    first: first.to_owned(),
                    second: url.clone(),
                });
            }
            per_repository.insert(key, read_secret(path)?);
        }
        Ok(WebhookSecrets {
            global,
            per_repository,
        })
    }

    /// Secrets given directly (tests): a global one and `(git URL, secret)` pairs. Of two
    /// URLs naming one repository, the first wins.
    pub fn from_parts(global: Option<Vec<u8>>, per_repository: Vec<(String, Vec<u8>)>) -> Self {
        let mut map = BTreeMap::new();
        for (url, secret) in per_repository {
            map.entry(RepoKey::of(&url)).or_insert(secret);
        }
        WebhookSecrets {
            global,
            per_repository: map,
        }
    }

    /// The secret for a push naming these repository URLs: a per-repository one if any URL matches, else the global one.
    ///
    /// The first URL (in the given order) with its own secret decides.
    pub fn for_repository(&self, urls: &[String]) -> Option<&[u8]> {
        self.choose(urls).map(|(_, secret)| secret)
    }

    /// Whether some repository has its own secret (then a body is parsed before it is verified,
    /// to know which secret signed it).
    fn has_per_repository(&self) -> bool {
        !self.per_repository.is_empty()
    }

    /// The secret for these URLs and which one it is.
    fn choose(&self, urls: &[String]) -> Option<(Choice<'_>, &[u8])> {
        urls.iter()
            .find_map(|url| self.per_repository.get_key_value(&RepoKey::of(url)))
            .map(|(key, secret)| (Choice::Repository(key), secret.as_slice()))
            .or_else(|| {
                self.global
                    .as_deref()
                    .map(|secret| (Choice::Global, secret))
            })
    }

    /// Those of `urls` whose own secret is `choice`: the URLs a push verified with it may speak
    /// for.
    fn covered(&self, choice: Choice<'_>, urls: &[String]) -> Vec<String> {
        urls.iter()
            .filter(|url| {
                self.choose(std::slice::from_ref(*url))
                    .is_some_and(|(own, _)| own == choice)
            })
            .cloned()
            .collect()
    }
}

impl fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSecrets")
            .field("global", &self.global.as_ref().map(|_| "<redacted>"))
            .field(
                "per_repository",
                &self.per_repository.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The secret in `path`, without its trailing newline.
fn read_secret(path: &Path) -> Result<Vec<u8>, WebhookSetupError> {
    let read_error = |source| WebhookSetupError::ReadSecret {
        path: path.to_owned(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(read_error)?;
    warn_if_readable_by_others(path, &metadata);
    let mut secret = std::fs::read(path).map_err(read_error)?;
    while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        secret.pop();
    }
    if secret.is_empty() {
        return Err(WebhookSetupError::EmptySecret {
            path: path.to_owned(),
        });
    }
    Ok(secret)
}

/// A secret readable by its group or anyone is a mistake worth a warning, not a refusal (some
/// deployments share a group with a secrets agent on purpose).
#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path, metadata: &std::fs::Metadata) {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", mode & 0o7777),
            "webhook secret file is accessible to its group or others: expected mode 0600 or 0400"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path, _metadata: &std::fs::Metadata) {}

/// What the endpoint hands accepted pushes to (the tracker implements it over its state and publisher).
pub trait PushSink: Send + Sync + 'static {
    /// The URL, as the index writes it, of the tracked branch `branch` of the repository these URLs name; None when nothing tracked builds from it.
    fn tracked_url(&self, repository_urls: &[String], branch: &str) -> Option<String>;
    /// Publish the event and wait for the broker's confirm.
    fn publish(&self, changed: GitChanged) -> impl Future<Output = Result<(), String>> + Send;
}

/// A running webhook endpoint.
#[derive(Debug)]
pub struct WebhookServer {
    /// The bound address (useful when port 0 was configured).
    pub local_addr: SocketAddr,
    /// Ends once `shutdown` is cancelled and the connections in progress are done (each given
    /// at most the read timeout to finish).
    pub task: tokio::task::JoinHandle<()>,
}

/// Serve POST (any path) on `addr` until `shutdown`.
///
/// Each request's headers must arrive within `read_timeout` (hyper's header timer, which also
/// closes idle keep-alive connections) and its body within `read_timeout` more. At most 256
/// connections are served at once (more are closed as soon as accepted).
pub async fn serve_webhooks<S: PushSink>(
    addr: SocketAddr,
    secrets: Arc<WebhookSecrets>,
    sink: Arc<S>,
    read_timeout: Duration,
    shutdown: CancellationToken,
) -> Result<WebhookServer, WebhookSetupError> {
    let bind_error = |source| WebhookSetupError::Bind { addr, source };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(bind_error)?;
    let local_addr = listener.local_addr().map_err(bind_error)?;
    register_metrics();
    let task = tokio::spawn(accept_loop(listener, secrets, sink, read_timeout, shutdown));
    Ok(WebhookServer { local_addr, task })
}

/// Accepts connections until `shutdown`, then waits (bounded) for those in progress.
async fn accept_loop<S: PushSink>(
    listener: tokio::net::TcpListener,
    secrets: Arc<WebhookSecrets>,
    sink: Arc<S>,
    read_timeout: Duration,
    shutdown: CancellationToken,
) {
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut saturated = false;
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    // Out of file descriptors, usually: wait a little instead of spinning.
                    tracing::warn!(%error, "webhook endpoint: accept failed");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    }
                }
            },
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            if !saturated {
                tracing::warn!(
                    max_connections = MAX_CONNECTIONS,
                    "webhook endpoint: too many connections, closing new ones until some end"
                );
                saturated = true;
            }
            drop(stream);
            continue;
        };
        saturated = false;
        let secrets = Arc::clone(&secrets);
        let sink = Arc::clone(&sink);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |request| {
                let secrets = Arc::clone(&secrets);
                let sink = Arc::clone(&sink);
                async move { Ok::<_, Infallible>(handle(request, &secrets, &*sink, read_timeout).await) }
            });
            let mut connection = pin!(
                hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(read_timeout)
                    .max_buf_size(MAX_BUF_BYTES)
                    .serve_connection(TokioIo::new(stream), service)
            );
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    match tokio::time::timeout(read_timeout, connection.as_mut()).await {
                        Ok(result) => result,
                        Err(_elapsed) => return,
                    }
                }
            };
            if let Err(error) = result {
                tracing::debug!(%error, "webhook connection ended with an error");
            }
        });
    }
    drop(listener);
    // Every permit back means every connection is done; each has at most `read_timeout` after
    // the shutdown, so this bound is only a backstop.
    let all = u32::try_from(MAX_CONNECTIONS).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(
        read_timeout + Duration::from_secs(1),
        connections.acquire_many(all),
    )
    .await;
    if drained.is_err() {
        tracing::warn!("webhook endpoint: connections still open at shutdown were dropped");
    }
}

/// How a request ended: the `outcome` label of `slipway_webhook_requests_total`, one per
/// status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// A push of a tracked branch, published and confirmed: 202.
    Accepted,
    /// A verified event with nothing to do (ping, tag, deleted branch): 202.
    Ignored,
    /// A verified push of a branch nothing tracked builds from: 202.
    Untracked,
    /// No secret for it, or a missing or wrong signature: 401.
    Unauthorized,
    /// Not from a known forge, or not the JSON its event header announces: 400.
    Malformed,
    /// A body larger than [`MAX_BODY_BYTES`]: 413.
    TooLarge,
    /// A body not received within the read timeout: 408.
    Timeout,
    /// Not a POST: 405.
    Method,
    /// The publish failed; the forge retries: 503.
    Unavailable,
}

impl Outcome {
    /// Every outcome.
    const ALL: [Outcome; 9] = [
        Outcome::Accepted,
        Outcome::Ignored,
        Outcome::Untracked,
        Outcome::Unauthorized,
        Outcome::Malformed,
        Outcome::TooLarge,
        Outcome::Timeout,
        Outcome::Method,
        Outcome::Unavailable,
    ];

    /// The label value.
    const fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Ignored => "ignored",
            Outcome::Untracked => "untracked",
            Outcome::Unauthorized => "unauthorized",
            Outcome::Malformed => "malformed",
            Outcome::TooLarge => "too_large",
            Outcome::Timeout => "timeout",
            Outcome::Method => "method",
            Outcome::Unavailable => "unavailable",
        }
    }

    /// The HTTP status answered.
    const fn status(self) -> StatusCode {
        match self {
            Outcome::Accepted | Outcome::Ignored | Outcome::Untracked => StatusCode::ACCEPTED,
            Outcome::Unauthorized => StatusCode::UNAUTHORIZED,
            Outcome::Malformed => StatusCode::BAD_REQUEST,
            Outcome::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Outcome::Timeout => StatusCode::REQUEST_TIMEOUT,
            Outcome::Method => StatusCode::METHOD_NOT_ALLOWED,
            Outcome::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The answer to one request.
#[derive(Debug, PartialEq)]
struct Answer {
    /// What happened.
    outcome: Outcome,
    /// The response body: says what happened, never echoes the request or a secret.
    text: Cow<'static, str>,
    /// More for the log only (bounded): why it was refused or ignored.
    detail: Option<String>,
}

impl Answer {
    /// An answer whose text is fixed.
    fn new(outcome: Outcome, text: &'static str) -> Answer {
        Answer {
            outcome,
            text: Cow::Borrowed(text),
            detail: None,
        }
    }

    /// With a detail for the log.
    fn detail(mut self, detail: impl fmt::Display) -> Answer {
        self.detail = Some(detail.to_string().chars().take(300).collect());
        self
    }
}

/// The one text of every 401, whichever check failed (the log says which), so that a sender
/// cannot tell which repositories have their own secret.
const UNAUTHORIZED: &str =
    "unauthorized: signature missing or not made with the secret of this repository";

/// `slipway_webhook_requests_total{forge,outcome}`.
static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "slipway_webhook_requests_total",
                "Webhook requests answered, by forge (github, gitlab, gitea, unknown) and outcome.",
            ),
            &["forge", "outcome"],
        )
        .expect("valid metric"),
    )
});

/// Registers `slipway_webhook_requests_total` and exports its forge series at zero.
pub fn register_metrics() {
    for forge in [Forge::GitHub, Forge::GitLab, Forge::Gitea] {
        for outcome in Outcome::ALL {
            REQUESTS.with_label_values(&[forge.as_str(), outcome.as_str()]);
        }
    }
}

/// The typed event of one answered request: one log line, one count.
fn request_answered(forge: Option<Forge>, delivery: Option<&str>, answer: &Answer) {
    let forge_label = forge.map_or("unknown", Forge::as_str);
    let outcome = answer.outcome.as_str();
    REQUESTS.with_label_values(&[forge_label, outcome]).inc();
    let status = answer.outcome.status().as_u16();
    let detail = answer.detail.as_deref().unwrap_or("");
    if answer.outcome == Outcome::Unavailable {
        tracing::warn!(
            forge = forge_label,
            outcome,
            status,
            delivery,
            detail,
            "webhook not acted on: publishing failed, the forge will retry"
        );
    } else {
        tracing::info!(
            forge = forge_label,
            outcome,
            status,
            delivery,
            detail,
            "webhook answered"
        );
    }
}

/// hyper's headers, read through [`Headers`].
struct HttpHeaders<'a>(&'a HeaderMap);

impl Headers for HttpHeaders<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|value| value.to_str().ok())
    }
}

/// The forge's delivery id header of a request, bounded (for the log of any request, verified
/// or not).
fn delivery_of<H: Headers + ?Sized>(forge: Forge, headers: &H) -> Option<String> {
    match forge {
        Forge::GitHub => headers.get("x-github-delivery"),
        Forge::GitLab => headers
            .get("x-gitlab-webhook-uuid")
            .or_else(|| headers.get("x-gitlab-event-uuid")),
        Forge::Gitea => headers.get("x-gitea-delivery"),
    }
    .map(|id| id.chars().take(MAX_DELIVERY_CHARS).collect())
}

/// Answers one request: method, forge, body limits, then [`decide`].
async fn handle<B, S>(
    request: Request<B>,
    secrets: &WebhookSecrets,
    sink: &S,
    read_timeout: Duration,
) -> Response<Full<Bytes>>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S: PushSink,
{
    let (parts, body) = request.into_parts();
    let headers = HttpHeaders(&parts.headers);
    let forge = Forge::of(&headers);
    let delivery = forge.and_then(|forge| delivery_of(forge, &headers));
    let answer = match forge {
        _ if parts.method != Method::POST => Answer::new(Outcome::Method, "only POST is accepted")
            .detail(format_args!("method {}", parts.method)),
        None => Answer::new(
            Outcome::Malformed,
            "not a webhook of GitHub, GitLab or Gitea",
        )
        .detail(WebhookError::UnknownForge),
        Some(forge) => match read_body(&parts.headers, body, read_timeout).await {
            Err(answer) => answer,
            Ok(body) => decide(secrets, sink, forge, &headers, &body).await,
        },
    };
    request_answered(forge, delivery.as_deref(), &answer);
    let mut response = Response::new(Full::new(Bytes::from(format!("{}\n", answer.text))));
    *response.status_mut() = answer.outcome.status();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if answer.outcome == Outcome::Method {
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
    }
    response
}

/// The body, refused when it announces or turns out more than [`MAX_BODY_BYTES`] or does not
/// arrive within `read_timeout`. At most one frame beyond the limit is read.
async fn read_body<B>(headers: &HeaderMap, body: B, read_timeout: Duration) -> Result<Bytes, Answer>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let too_large = || Answer {
        outcome: Outcome::TooLarge,
        text: Cow::Owned(format!("body too large: at most {MAX_BODY_BYTES} bytes")),
        detail: Some(WebhookError::TooLarge.to_string()),
    };
    let announced = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    let limit = u64::try_from(MAX_BODY_BYTES).unwrap_or(u64::MAX);
    if announced.is_some_and(|length| length > limit) || body.size_hint().lower() > limit {
        return Err(too_large());
    }
    match tokio::time::timeout(read_timeout, Limited::new(body, MAX_BODY_BYTES).collect()).await {
        Err(_elapsed) => Err(Answer::new(Outcome::Timeout, "body not received in time")
            .detail(format_args!("no complete body within {read_timeout:?}"))),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(error)) => Err(
            Answer::new(Outcome::Malformed, "the body could not be read")
                .detail(format_args!("reading the body: {error}")),
        ),
    }
}

/// The decision on a bounded body from `forge`: verify (before parsing when one secret signs
/// everything), parse, and publish a push of a tracked branch.
async fn decide<S, H>(
    secrets: &WebhookSecrets,
    sink: &S,
    forge: Forge,
    headers: &H,
    body: &[u8],
) -> Answer
where
    S: PushSink,
    H: Headers + ?Sized,
{
    let unauthorized =
        |why: &dyn fmt::Display| Answer::new(Outcome::Unauthorized, UNAUTHORIZED).detail(why);
    let malformed = |error: WebhookError| {
        let text = match forge {
            Forge::GitHub => "malformed github push event",
            Forge::GitLab => "malformed gitlab push event",
            Forge::Gitea => "malformed gitea push event",
        };
        Answer::new(Outcome::Malformed, text).detail(error)
    };
    let (event, choice) = if secrets.has_per_repository() {
        // The secret depends on the repository, which only the body names: parse first (the
        // body is bounded; nothing is acted on before the signature is checked).
        let event = match webhook::parse(forge, headers, body) {
            Ok(event) => event,
            Err(error) => return malformed(error),
        };
        let urls = match &event {
            Event::Push(push) => Cow::Borrowed(push.repository_urls.as_slice()),
            Event::Ignored(_) => Cow::Owned(repository_urls_in(body)),
        };
        let Some((choice, secret)) = secrets.choose(&urls) else {
            return unauthorized(&"no secret configured for this repository");
        };
        if let Err(error) = webhook::verify(forge, headers, body, secret) {
            return unauthorized(&error);
        }
        (event, choice)
    } else {
        let Some(secret) = secrets.global.as_deref() else {
            return unauthorized(&"no secret configured");
        };
        if let Err(error) = webhook::verify(forge, headers, body, secret) {
            return unauthorized(&error);
        }
        match webhook::parse(forge, headers, body) {
            Ok(event) => (event, Choice::Global),
            Err(error) => return malformed(error),
        }
    };
    let push = match event {
        Event::Ignored(reason) => {
            return Answer {
                outcome: Outcome::Ignored,
                text: Cow::Owned(format!("ignored: {reason}")),
                detail: Some(reason.to_owned()),
            };
        }
        Event::Push(push) => push,
    };
    let urls = secrets.covered(choice, &push.repository_urls);
    let Some(git_url) = sink.tracked_url(&urls, &push.branch) else {
        return Answer::new(
            Outcome::Untracked,
            "not tracked: nothing builds from this branch of this repository",
        );
    };
    let changed = GitChanged {
        git_url,
        git_branch: push.branch,
        commit: push.head,
        seen_by: SeenBy::Webhook,
        delivery_id: push.delivery,
    };
    match sink.publish(changed).await {
        Ok(()) => Answer::new(Outcome::Accepted, "accepted: git.changed published"),
        Err(error) => Answer::new(
            Outcome::Unavailable,
            "could not publish the change now, try again later",
        )
        .detail(error),
    }
}

/// The repository URLs of any event's JSON body (`repository` and `project` objects), to choose
/// the secret of an event that is not a push. Nothing when it is not such JSON.
fn repository_urls_in(body: &[u8]) -> Vec<String> {
    const FIELDS: [&str; 6] = [
        "clone_url",
        "ssh_url",
        "html_url",
        "git_http_url",
        "git_ssh_url",
        "web_url",
    ];
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let mut urls: Vec<String> = Vec::new();
    for object in ["repository", "project"] {
        for field in FIELDS {
            if let Some(url) = value
                .get(object)
                .and_then(|repository| repository.get(field))
                .and_then(serde_json::Value::as_str)
                && !urls.iter().any(|known| known == url)
            {
                urls.push(url.to_owned());
            }
        }
    }
    urls
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll};

    use hmac::{Hmac, Mac};
    use hyper::body::Frame;
    use sha2::Sha256;

    use super::*;

    const GLOBAL: &[u8] = b"global secret";
    const OWN: &[u8] = b"the app's own secret";
    const HEAD: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";
    const APP: &str = "https://github.com/team/app";
    const OTHER: &str = "https://github.com/team/other";

    /// Tracks `main` of APP and OTHER; records what it publishes.
    #[derive(Default)]
    struct Sink {
        published: Mutex<Vec<GitChanged>>,
        asked: Mutex<Vec<Vec<String>>>,
        fail: bool,
    }

    impl PushSink for Sink {
        fn tracked_url(&self, urls: &[String], branch: &str) -> Option<String> {
            self.asked.lock().unwrap().push(urls.to_vec());
            let tracked = [APP, OTHER];
            urls.iter()
                .find_map(|url| tracked.iter().find(|t| RepoKey::of(t) == RepoKey::of(url)))
                .filter(|_| branch == "main")
                .map(|t| (*t).to_owned())
        }

        async fn publish(&self, changed: GitChanged) -> Result<(), String> {
            if self.fail {
                return Err("broker unreachable".into());
            }
            self.published.lock().unwrap().push(changed);
            Ok(())
        }
    }

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("sha256={hex}")
    }

    fn push_body(url: &str, branch: &str) -> String {
        format!(
            r#"{{"ref":"refs/heads/{branch}","after":"{HEAD}","repository":{{"clone_url":"{url}.git","html_url":"{url}"}}}}"#
        )
    }

    /// Request headers, owned.
    type OwnedHeaders = Vec<(&'static str, String)>;

    fn github(event: &'static str, signature: String) -> OwnedHeaders {
        vec![
            ("x-github-event", event.to_owned()),
            ("x-github-delivery", "d-1".to_owned()),
            ("x-hub-signature-256", signature),
        ]
    }

    async fn decide_on(
        secrets: &WebhookSecrets,
        sink: &Sink,
        headers: &[(&'static str, String)],
        body: &str,
    ) -> Answer {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let forge = Forge::of(headers.as_slice()).unwrap();
        decide(secrets, sink, forge, headers.as_slice(), body.as_bytes()).await
    }

    #[test]
    fn a_repositorys_own_secret_wins_over_the_global_one() {
        let secrets = WebhookSecrets::from_parts(
            Some(GLOBAL.to_vec()),
            vec![("git@github.com:team/app.git".into(), OWN.to_vec())],
        );
        let app = vec![format!("{APP}.git"), APP.to_owned()];
        assert_eq!(secrets.for_repository(&app), Some(OWN));
        assert_eq!(secrets.for_repository(&[OTHER.to_owned()]), Some(GLOBAL));
        assert_eq!(secrets.for_repository(&[]), Some(GLOBAL));
        let only_own = WebhookSecrets::from_parts(None, vec![(APP.into(), OWN.to_vec())]);
        assert_eq!(only_own.for_repository(&[OTHER.to_owned()]), None);
        assert_eq!(
            only_own.for_repository(&[OTHER.to_owned(), format!("{APP}/")]),
            Some(OWN)
        );
        let debug = format!("{secrets:?}");
        assert!(!debug.contains("secret\""), "{debug}");
        assert!(!debug.contains("global secret"), "{debug}");
    }

    #[tokio::test]
    async fn a_signed_push_of_a_tracked_branch_is_published_once_confirmed() {
        let secrets = WebhookSecrets::from_parts(Some(GLOBAL.to_vec()), vec![]);
        let sink = Sink::default();
        let body = push_body(APP, "main");
        let answer = decide_on(
            &secrets,
            &sink,
            &github("push", sign(GLOBAL, body.as_bytes())),
            &body,
        )
        .await;
        assert_eq!(answer.outcome, Outcome::Accepted, "{answer:?}");
        let published = sink.published.lock().unwrap();
        assert_eq!(
            *published,
            [GitChanged {
                git_url: APP.into(),
                git_branch: "main".into(),
                commit: HEAD.to_owned().try_into().unwrap(),
                seen_by: SeenBy::Webhook,
                delivery_id: Some("d-1".into()),
            }]
        );
    }

    #[tokio::test]
    async fn each_refusal_and_no_op_has_its_outcome_and_publishes_nothing() {
        let secrets = WebhookSecrets::from_parts(Some(GLOBAL.to_vec()), vec![]);
        let sink = Sink::default();
        let push = push_body(APP, "main");
        let cases: Vec<(OwnedHeaders, String, Outcome)> = vec![
            (
                github("push", sign(b"wrong", push.as_bytes())),
                push.clone(),
                Outcome::Unauthorized,
            ),
            (
                vec![("x-github-event", "push".into())],
                push.clone(),
                Outcome::Unauthorized,
            ),
            (
                github("ping", sign(GLOBAL, b"{}")),
                "{}".into(),
                Outcome::Ignored,
            ),
            (
                github("push", sign(GLOBAL, b"{nope")),
                "{nope".into(),
                Outcome::Malformed,
            ),
            {
                let dev = push_body(APP, "dev");
                (
                    github("push", sign(GLOBAL, dev.as_bytes())),
                    dev,
                    Outcome::Untracked,
                )
            },
            {
                let tag = push.replace("refs/heads/main", "refs/tags/v1");
                (
                    github("push", sign(GLOBAL, tag.as_bytes())),
                    tag,
                    Outcome::Ignored,
                )
            },
        ];
        for (headers, body, expected) in cases {
            let answer = decide_on(&secrets, &sink, &headers, &body).await;
            assert_eq!(answer.outcome, expected, "{body}: {answer:?}");
            assert!(!answer.text.contains("global secret"));
            assert!(!answer.text.contains(&body), "{answer:?} echoes the body");
        }
        assert!(sink.published.lock().unwrap().is_empty());

        let failing = Sink {
            fail: true,
            ..Sink::default()
        };
        let answer = decide_on(
            &secrets,
            &failing,
            &github("push", sign(GLOBAL, push.as_bytes())),
            &push,
        )
        .await;
        assert_eq!(answer.outcome, Outcome::Unavailable);
        assert_eq!(answer.outcome.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.detail.as_deref(), Some("broker unreachable"));
    }

    #[tokio::test]
    async fn with_per_repository_secrets_the_repositorys_secret_signs_its_pushes() {
        let secrets = WebhookSecrets::from_parts(
            Some(GLOBAL.to_vec()),
            vec![(format!("{APP}.git"), OWN.to_vec())],
        );
        let sink = Sink::default();
        let app = push_body(APP, "main");
        let other = push_body(OTHER, "main");
        for (secret, body, expected) in [
            (OWN, &app, Outcome::Accepted),
            (GLOBAL, &app, Outcome::Unauthorized),
            (GLOBAL, &other, Outcome::Accepted),
            (OWN, &other, Outcome::Unauthorized),
        ] {
            let answer = decide_on(
                &secrets,
                &sink,
                &github("push", sign(secret, body.as_bytes())),
                body,
            )
            .await;
            assert_eq!(answer.outcome, expected, "{body}");
        }
        assert_eq!(sink.published.lock().unwrap().len(), 2);

        // A ping names its repository too: its own secret signs it.
        let ping = format!(r#"{{"zen":"x","repository":{{"clone_url":"{APP}.git"}}}}"#);
        let answer = decide_on(
            &secrets,
            &sink,
            &github("ping", sign(OWN, ping.as_bytes())),
            &ping,
        )
        .await;
        assert_eq!(answer.outcome, Outcome::Ignored);
        let answer = decide_on(
            &secrets,
            &sink,
            &github("ping", sign(GLOBAL, ping.as_bytes())),
            &ping,
        )
        .await;
        assert_eq!(answer.outcome, Outcome::Unauthorized);

        // No secret at all for a repository: 401.
        let only_own = WebhookSecrets::from_parts(None, vec![(APP.into(), OWN.to_vec())]);
        let answer = decide_on(
            &only_own,
            &sink,
            &github("push", sign(GLOBAL, other.as_bytes())),
            &other,
        )
        .await;
        assert_eq!(answer.outcome, Outcome::Unauthorized);
        assert_eq!(answer.text, UNAUTHORIZED);
    }

    #[tokio::test]
    async fn one_repositorys_secret_cannot_speak_for_another_repository() {
        // A body naming APP (own secret) and OTHER (global secret), signed with APP's secret:
        // only APP's URLs are matched against the tracked branches.
        let secrets =
            WebhookSecrets::from_parts(Some(GLOBAL.to_vec()), vec![(APP.into(), OWN.to_vec())]);
        let sink = Sink::default();
        let body = format!(
            r#"{{"ref":"refs/heads/main","after":"{HEAD}","repository":{{"clone_url":"{APP}.git","html_url":"{OTHER}"}}}}"#
        );
        let answer = decide_on(
            &secrets,
            &sink,
            &github("push", sign(OWN, body.as_bytes())),
            &body,
        )
        .await;
        assert_eq!(answer.outcome, Outcome::Accepted);
        assert_eq!(*sink.asked.lock().unwrap(), [vec![format!("{APP}.git")]]);
        assert_eq!(sink.published.lock().unwrap()[0].git_url, APP);
    }

    /// A body that never sends anything.
    struct Stalled;

    impl Body for Stalled {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Pending
        }
    }

    /// A body of `left` bytes in 64 KiB frames, counting what was read.
    struct Counted {
        left: usize,
        read: Arc<AtomicUsize>,
    }

    impl Body for Counted {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            if self.left == 0 {
                return Poll::Ready(None);
            }
            let n = self.left.min(64 * 1024);
            self.left -= n;
            self.read.fetch_add(n, Ordering::SeqCst);
            Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b' '; n])))))
        }
    }

    fn request<B>(method: Method, headers: &[(&str, &str)], body: B) -> Request<B> {
        let mut request = Request::new(body);
        *request.method_mut() = method;
        for (name, value) in headers {
            request.headers_mut().insert(
                hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        request
    }

    const TIMEOUT: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn method_forge_and_body_limits_are_checked_before_anything_else() {
        let secrets = WebhookSecrets::from_parts(Some(GLOBAL.to_vec()), vec![]);
        let sink = Sink::default();
        let push: &[(&str, &str)] = &[("X-GitHub-Event", "push")];

        let response = handle(
            request(Method::GET, push, Full::new(Bytes::new())),
            &secrets,
            &sink,
            TIMEOUT,
        )
        .await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers().get(ALLOW).unwrap(), "POST");

        let response = handle(
            request(Method::POST, &[], Full::new(Bytes::from_static(b"{}"))),
            &secrets,
            &sink,
            TIMEOUT,
        )
        .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);

        // Announced too large: refused without reading anything.
        let read = Arc::new(AtomicUsize::new(0));
        let huge = Counted {
            left: 10 << 20,
            read: Arc::clone(&read),
        };
        let response = handle(
            request(
                Method::POST,
                &[("X-GitHub-Event", "push"), ("Content-Length", "10485760")],
                huge,
            ),
            &secrets,
            &sink,
            TIMEOUT,
        )
        .await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(read.load(Ordering::SeqCst), 0);

        // Not announced: read up to the limit and one frame more.
        let huge = Counted {
            left: 10 << 20,
            read: Arc::clone(&read),
        };
        let response = handle(request(Method::POST, push, huge), &secrets, &sink, TIMEOUT).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(read.load(Ordering::SeqCst) <= MAX_BODY_BYTES + 64 * 1024);

        // Exactly the limit is read (and then refused by the signature, not the size).
        let read = Arc::new(AtomicUsize::new(0));
        let full = Counted {
            left: MAX_BODY_BYTES,
            read: Arc::clone(&read),
        };
        let response = handle(request(Method::POST, push, full), &secrets, &sink, TIMEOUT).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(read.load(Ordering::SeqCst), MAX_BODY_BYTES);

        let response = handle(
            request(Method::POST, push, Stalled),
            &secrets,
            &sink,
            Duration::from_millis(20),
        )
        .await;
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert!(sink.published.lock().unwrap().is_empty());
    }

    #[test]
    fn each_outcome_has_its_own_status_and_label() {
        let statuses: std::collections::BTreeSet<u16> = Outcome::ALL
            .iter()
            .map(|outcome| outcome.status().as_u16())
            .collect();
        assert_eq!(
            statuses.into_iter().collect::<Vec<_>>(),
            [202, 400, 401, 405, 408, 413, 503]
        );
        let labels: std::collections::BTreeSet<&str> = Outcome::ALL
            .iter()
            .map(|outcome| outcome.as_str())
            .collect();
        assert_eq!(labels.len(), Outcome::ALL.len());
    }

    #[test]
    fn settings_are_checked() {
        let mut settings = WebhookSettings::default();
        assert_eq!(settings.validate(), Ok(()));
        settings.listen = "0.0.0.0:9480".into();
        assert!(settings.validate().unwrap_err().contains("no secret"));
        settings.secret_file = Some("/run/credentials/webhook".into());
        assert_eq!(settings.validate(), Ok(()));
        settings.listen = "localhost".into();
        assert!(settings.validate().unwrap_err().contains("localhost"));
        settings.listen = "127.0.0.1:0".into();
        settings.read_timeout_ms = 0;
        assert!(settings.validate().unwrap_err().contains("read_timeout_ms"));
        settings.read_timeout_ms = 1;
        settings
            .repository_secret_files
            .insert(format!("{APP}.git"), "/a".into());
        settings
            .repository_secret_files
            .insert("git@github.com:team/app".into(), "/b".into());
        assert!(settings.validate().unwrap_err().contains("twice"));

        let parsed: WebhookSettings = toml::from_str(
            "listen = \"127.0.0.1:9480\"\nsecret_file = \"/s\"\n[repository_secret_files]\n\"https://github.com/team/app\" = \"/t\"\n",
        )
        .unwrap();
        assert_eq!(parsed.read_timeout_ms, 10_000);
        assert_eq!(parsed.validate(), Ok(()));
        assert!(toml::from_str::<WebhookSettings>("secret = \"inline\"").is_err());
    }

    #[test]
    fn secrets_load_from_files_trimmed_and_empty_ones_are_refused() {
        use std::os::unix::fs::PermissionsExt;

        let dir = std::env::temp_dir().join(format!(
            "slipway-webhook-secrets-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let global = dir.join("global");
        std::fs::write(&global, "global secret\r\n").unwrap();
        std::fs::set_permissions(&global, std::fs::Permissions::from_mode(0o600)).unwrap();
        let own = dir.join("own");
        // Readable by others: loaded, with a warning.
        std::fs::write(&own, "the app's own secret\n").unwrap();
        std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut settings = WebhookSettings {
            listen: "127.0.0.1:0".into(),
            secret_file: Some(global.clone()),
            repository_secret_files: [(APP.to_owned(), own.clone())].into(),
            ..WebhookSettings::default()
        };
        let secrets = WebhookSecrets::load(&settings).unwrap();
        assert_eq!(secrets.for_repository(&[OTHER.into()]), Some(GLOBAL));
        assert_eq!(secrets.for_repository(&[format!("{APP}.git")]), Some(OWN));

        let empty = dir.join("empty");
        std::fs::write(&empty, "\n").unwrap();
        settings.secret_file = Some(empty.clone());
        let error = WebhookSecrets::load(&settings).unwrap_err();
        assert!(matches!(error, WebhookSetupError::EmptySecret { .. }));
        assert!(error.to_string().contains(&empty.display().to_string()));

        let missing = dir.join("missing");
        settings.secret_file = Some(missing.clone());
        let error = WebhookSecrets::load(&settings).unwrap_err();
        assert!(error.to_string().contains(&missing.display().to_string()));

        settings.secret_file = Some(global);
        settings
            .repository_secret_files
            .insert("git@github.com:team/app.git".into(), own);
        assert!(matches!(
            WebhookSecrets::load(&settings),
            Err(WebhookSetupError::DuplicateRepository { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn repository_urls_are_found_in_any_events_body() {
        let body = format!(
            r#"{{"repository":{{"clone_url":"{APP}.git","html_url":"{APP}"}},"project":{{"web_url":"{APP}"}}}}"#
        );
        assert_eq!(
            repository_urls_in(body.as_bytes()),
            [format!("{APP}.git"), APP.to_owned()]
        );
        assert!(repository_urls_in(b"not json").is_empty());
        assert!(repository_urls_in(b"[1]").is_empty());
    }
}

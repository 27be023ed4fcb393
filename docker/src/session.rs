//! BuildKit sessions: the side channel through which the daemon's BuildKit asks the client for what
//! only the client has, here the values of `RUN --mount=type=secret` mounts ([`BuildSecrets`]).
//! [`DockerEngine::build`](super::DockerEngine::build) opens one for each BuildKit build and names
//! it in the build request (`session=<id>`); without one, both daemons fail every secret mount,
//! required or not, with "no active sessions" (checked by hand with a raw `POST /build?version=2`).
//!
//! The protocol, and what was checked against the daemons (dockerd 20.10.24, API 1.41, BuildKit
//! vendored by it; Docker 26.1.5, API 1.45), by `tests/buildkit_session.rs`,
//! `tests/buildkit_session_docker26.rs` and by hand with raw requests on the sockets:
//! - The client opens the session with an HTTP/1.1 `POST /v<api>/session` on the daemon's socket
//!   (the unversioned `/session` works as well on both), with `Connection: Upgrade`,
//!   `Upgrade: h2c`, `X-Docker-Expose-Session-Uuid` (the id the build request names),
//!   `X-Docker-Expose-Session-Name`, `X-Docker-Expose-Session-Sharedkey` (a key for caching local
//!   sources between sessions; unused here, so the session's own id) and one
//!   `X-Docker-Expose-Session-Grpc-Method` per gRPC method the client serves. Both daemons answer
//!   `101 Switching Protocols` (`Connection: Upgrade`, `Upgrade: h2c`), and any other `Upgrade`
//!   with `400 {"message":"protocol websocket not supported"}`; dockerd 20.10 refuses a version
//!   newer than its own (`/v1.45/session`: 400 "client version 1.45 is too new"), hence the
//!   negotiated version.
//! - Right after the `101`, the daemon writes the HTTP/2 client preface and its `SETTINGS` on the
//!   same connection: it is the gRPC *client* (BuildKit's session manager dials the hijacked
//!   connection, and only once: a second dial fails with "only one connection allowed"), and the
//!   client of the Engine API is the HTTP/2 *server*. The connection must therefore stay open, and
//!   never be told to go away (`GOAWAY`), for as long as the build runs: here one hyper HTTP/2
//!   server serves that one connection until the build ends, then it is closed (as the docker CLI
//!   does: it closes the connection).
//! - BuildKit calls `/grpc.health.v1.Health/Check` for as long as the session is open (measured:
//!   every second on dockerd 20.10, every 5 s on Docker 26) and, per its source, drops a session
//!   whose checks fail; it is answered `SERVING`. Any other method (registry credentials,
//!   `moby.filesync.v1.Auth`, …) is answered `Unimplemented` by tonic's router; a base image from
//!   the local registry still resolves and builds with a session open (checked on both daemons).
//! - A secret mount calls `/moby.buildkit.secrets.v1.Secrets/GetSecret` with the mount's id. A
//!   `NotFound` status makes BuildKit skip a mount that is not `required` (the file is then absent)
//!   and fail a `required=true` one: "secret <id> not found: not found" (dockerd 20.10), "secret
//!   <id>: not found" (Docker 26). Any other status fails the build with its message. BuildKit's
//!   own providers refuse secrets over 500 KiB; so does [`MAX_SECRET_BYTES`].
//! - The build request takes the session with the `session` query parameter (bollard's
//!   `BuildImageOptions::session`: with bollard's `buildkit` features off, only a query
//!   parameter).
//!
//! - A `RUN --mount=type=ssh` step reaches the worker's SSH agents through
//!   `/moby.sshforward.v1.SSH/CheckAgent` and `…/ForwardAgent`, read-only (`ssh_agent.rs`).
//!
//! A secret's value is read from its source when the daemon asks for it, handed to the gRPC
//! response and dropped: never kept, never logged (only its id and its source's path are).

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bollard_buildkit_proto::health::health_check_response::ServingStatus;
use bollard_buildkit_proto::health::health_server::{Health, HealthServer};
use bollard_buildkit_proto::health::{
    HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse,
};
use bollard_buildkit_proto::moby::buildkit::secrets::v1::secrets_server::{Secrets, SecretsServer};
use bollard_buildkit_proto::moby::buildkit::secrets::v1::{GetSecretRequest, GetSecretResponse};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::StatusCode;
use hyper::header::{CONNECTION, HOST, UPGRADE};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::DockerError;
use super::ssh_agent::{SshAgents, SshService};
use bollard_buildkit_proto::moby::sshforward::v1::ssh_server::SshServer;
use slipway_common::errors::chain;

/// The largest secret served, in bytes (500 KiB, BuildKit's own limit for its secret providers).
/// A larger source fails the build with a message naming the secret and this limit.
pub const MAX_SECRET_BYTES: u64 = 500 * 1024;

/// The session's name in the daemon (shown in its debug logs).
const SESSION_NAME: &str = "slipway-build";

/// The gRPC methods the session serves, announced to the daemon when opening it.
const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
const GET_SECRET: &str = "/moby.buildkit.secrets.v1.Secrets/GetSecret";
const CHECK_AGENT: &str = "/moby.sshforward.v1.SSH/CheckAgent";
const FORWARD_AGENT: &str = "/moby.sshforward.v1.SSH/ForwardAgent";

/// At most this much of a refusal's body is read (the daemon's JSON `{"message": …}`).
const MAX_REFUSAL_BYTES: usize = 64 * 1024;

/// What the operation is called in errors.
const OPERATION: &str = "open a BuildKit session";

/// Where a secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file on the build worker's machine, read each time the daemon asks for the secret. Its
    /// path shows in debug output and in errors; its contents never do.
    File(PathBuf),
}

/// The secrets a BuildKit build may mount with `RUN --mount=type=secret,id=ID`: ids mapped to
/// their sources, which belong to the worker (the worker's own credentials), never to the job.
///
/// The daemon asks for a secret by id when a step mounts it: an id that is not here is answered
/// "not found", which BuildKit takes as "absent" (a mount without `required=true` is skipped, a
/// required one fails the build). Values are read from their sources at that moment and not
/// kept; the debug output shows ids and paths only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildSecrets {
    sources: BTreeMap<String, SecretSource>,
}

impl BuildSecrets {
    /// No secrets: every secret mount is answered "not found".
    pub fn new() -> Self {
        Self::default()
    }

    /// These secrets and the secret `id`, read from the file `path` when a step mounts it.
    pub fn with_file(mut self, id: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        self.insert(id, SecretSource::File(path.into()));
        self
    }

    /// Adds (or replaces) the secret `id`; returns the source it had before, if any.
    pub fn insert(&mut self, id: impl Into<String>, source: SecretSource) -> Option<SecretSource> {
        self.sources.insert(id.into(), source)
    }

    /// The source of the secret `id`, if it is configured.
    pub fn source(&self, id: &str) -> Option<&SecretSource> {
        self.sources.get(id)
    }

    /// The ids of the configured secrets, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.sources.keys().map(String::as_str)
    }

    /// Whether no secret is configured.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// How many secrets are configured.
    pub fn len(&self) -> usize {
        self.sources.len()
    }
}

/// A BuildKit session open on the daemon for one build. The daemon's gRPC calls are served by a
/// task of its own until [`BuildSession::close`], or until the value is dropped (the task is then
/// told to stop, and closes the connection within a moment).
pub(crate) struct BuildSession {
    id: String,
    stop: CancellationToken,
    /// The task serving the connection (taken by [`BuildSession::close`]).
    server: Option<tokio::task::JoinHandle<()>>,
}

impl BuildSession {
    /// Opens a session on the daemon listening on `socket` (API version `api_version`, `1.41`),
    /// serving `secrets`; the opening (connection, request, `101`) is bounded by `limit`.
    ///
    /// Errors: the socket cannot be reached or the connection breaks
    /// ([`DockerError::Unreachable`]); the daemon answers anything but `101`
    /// ([`DockerError::Api`] with its status and message); no answer within `limit`
    /// ([`DockerError::ApiTimeout`]).
    pub(crate) async fn open(
        socket: &Path,
        api_version: &str,
        secrets: &BuildSecrets,
        agents: &SshAgents,
        limit: Duration,
    ) -> Result<Self, DockerError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let upgraded = match tokio::time::timeout(limit, upgrade(socket, api_version, &id)).await {
            Ok(upgraded) => upgraded?,
            Err(_) => {
                return Err(DockerError::ApiTimeout {
                    operation: OPERATION,
                    after: limit,
                });
            }
        };

        let stop = CancellationToken::new();
        let routes = tonic::service::Routes::new(HealthServer::new(SessionHealth))
            .add_service(SecretsServer::new(SecretsService {
                secrets: Arc::new(secrets.clone()),
            }))
            .add_service(SshServer::new(SshService {
                agents: Arc::new(agents.clone()),
                stop: stop.clone(),
            }))
            .prepare();
        let executor = SessionExecutor { stop: stop.clone() };
        let stopped = stop.clone();
        let session_id = id.clone();
        let server = tokio::spawn(async move {
            let connection = hyper::server::conn::http2::Builder::new(executor)
                .serve_connection(upgraded, TowerToHyperService::new(routes));
            tokio::select! {
                // Dropping the connection closes it (no `GOAWAY`): the build is over.
                () = stopped.cancelled() => {}
                served = connection => match served {
                    Ok(()) => tracing::debug!(session = %session_id, "the daemon closed the BuildKit session"),
                    Err(error) => tracing::warn!(
                        session = %session_id,
                        error = %chain(&error),
                        "the BuildKit session's connection broke"
                    ),
                },
            }
        });
        tracing::debug!(session = %id, "BuildKit session open");
        Ok(Self {
            id,
            stop,
            server: Some(server),
        })
    }

    /// The session's id, for the build request's `session` parameter.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Stops serving and closes the connection; returns once the server task has ended.
    pub(crate) async fn close(mut self) {
        self.stop.cancel();
        if let Some(server) = self.server.take()
            && let Err(error) = server.await
            && error.is_panic()
        {
            tracing::error!(session = %self.id, %error, "the BuildKit session's server panicked");
        }
    }
}

impl Drop for BuildSession {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Connects to `socket`, asks for the session `id` and returns the upgraded connection.
async fn upgrade(
    socket: &Path,
    api_version: &str,
    id: &str,
) -> Result<hyper::upgrade::Upgraded, DockerError> {
    let unreachable =
        |what: &str, error: &(dyn std::error::Error + 'static)| DockerError::Unreachable {
            operation: OPERATION,
            detail: format!("{what} {}: {}", socket.display(), chain(error)),
        };
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| unreachable("cannot connect to", &e))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable("cannot speak HTTP/1.1 on", &e))?;
    let request = hyper::Request::post(format!("/v{api_version}/session"))
        .header(HOST, "docker")
        .header(CONNECTION, "Upgrade")
        .header(UPGRADE, "h2c")
        .header("X-Docker-Expose-Session-Uuid", id)
        .header("X-Docker-Expose-Session-Name", SESSION_NAME)
        .header("X-Docker-Expose-Session-Sharedkey", id)
        .header("X-Docker-Expose-Session-Grpc-Method", HEALTH_CHECK)
        .header("X-Docker-Expose-Session-Grpc-Method", GET_SECRET)
        .header("X-Docker-Expose-Session-Grpc-Method", CHECK_AGENT)
        .header("X-Docker-Expose-Session-Grpc-Method", FORWARD_AGENT)
        .body(Empty::new())
        .map_err(|e| DockerError::InvalidSpec {
            problem: format!("cannot form the session request: {e}"),
        })?;
    let exchange = async move {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| unreachable("no answer to the session request on", &e))?;
        let status = response.status();
        if status != StatusCode::SWITCHING_PROTOCOLS {
            let body = Limited::new(response.into_body(), MAX_REFUSAL_BYTES)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(DockerError::Api {
                operation: OPERATION,
                status: status.as_u16(),
                message: refusal_message(&body),
            });
        }
        hyper::upgrade::on(response)
            .await
            .map_err(|e| unreachable("the session's upgrade failed on", &e))
    };
    // The connection is driven alongside the exchange: it ends once the upgrade has been handed
    // over, or once the exchange (and with it the request sender) is dropped.
    let (driven, upgraded) = tokio::join!(connection.with_upgrades(), exchange);
    let upgraded = upgraded?;
    if let Err(error) = driven {
        return Err(unreachable("the session's connection broke on", &error));
    }
    Ok(upgraded)
}

/// The daemon's message in a refusal's body (`{"message": "…"}`), or the body as text.
fn refusal_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned())
}

/// Runs the HTTP/2 connection's stream tasks on tokio, each stopped with the session (so that
/// nothing of the session outlives the build).
#[derive(Clone)]
struct SessionExecutor {
    stop: CancellationToken,
}

impl<F> hyper::rt::Executor<F> for SessionExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        let stop = self.stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                _ = future => {}
            }
        });
    }
}

/// The session's health service: always `SERVING` while the session is open.
struct SessionHealth;

#[tonic::async_trait]
impl Health for SessionHealth {
    async fn check(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving.into(),
        }))
    }

    async fn list(
        &self,
        _request: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        Ok(Response::new(HealthListResponse {
            statuses: HashMap::from([(
                String::new(),
                HealthCheckResponse {
                    status: ServingStatus::Serving.into(),
                },
            )]),
        }))
    }

    type WatchStream = futures_util::stream::Empty<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("the session's health is not watched"))
    }
}

/// The session's secrets service: each secret read from its source when asked for.
pub(crate) struct SecretsService {
    secrets: Arc<BuildSecrets>,
}

#[tonic::async_trait]
impl Secrets for SecretsService {
    async fn get_secret(
        &self,
        request: Request<GetSecretRequest>,
    ) -> Result<Response<GetSecretResponse>, Status> {
        let id = request.into_inner().id;
        let Some(source) = self.secrets.source(&id) else {
            tracing::info!(secret = %id, "BuildKit asked for a secret that is not configured");
            return Err(Status::not_found(format!(
                "secret {id:?} is not one of this worker's build secrets"
            )));
        };
        match read_secret(&id, source).await {
            Ok(data) => {
                tracing::debug!(secret = %id, "BuildKit secret served");
                Ok(Response::new(GetSecretResponse { data }))
            }
            Err(status) => {
                tracing::warn!(secret = %id, problem = %status.message(), "BuildKit secret refused");
                Err(status)
            }
        }
    }
}

/// Reads the secret `id` from `source`, at most [`MAX_SECRET_BYTES`].
async fn read_secret(id: &str, source: &SecretSource) -> Result<Vec<u8>, Status> {
    match source {
        SecretSource::File(path) => {
            let unreadable = |e: std::io::Error| {
                Status::failed_precondition(format!(
                    "secret {id:?}: cannot read its source file {}: {e}",
                    path.display()
                ))
            };
            let file = tokio::fs::File::open(path).await.map_err(unreadable)?;
            // One byte past the limit tells a source that is too large; nothing more is read.
            let mut data = Vec::new();
            file.take(MAX_SECRET_BYTES + 1)
                .read_to_end(&mut data)
                .await
                .map_err(unreadable)?;
            if data.len() as u64 > MAX_SECRET_BYTES {
                return Err(Status::resource_exhausted(format!(
                    "secret {id:?}: its source file {} is larger than {MAX_SECRET_BYTES} bytes \
                     (500 KiB), the most BuildKit accepts",
                    path.display()
                )));
            }
            Ok(data)
        }
    }
}

/// The local socket a client of [`bollard::Docker::connect_with_local_defaults`] talks to:
/// `DOCKER_HOST` when it is a `unix://` URL, `/var/run/docker.sock` otherwise (bollard 0.21 ignores
/// a `DOCKER_HOST` of any other scheme there).
pub(crate) fn local_socket(docker_host: Option<&str>) -> PathBuf {
    match docker_host.and_then(|host| host.strip_prefix("unix://")) {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from("/var/run/docker.sock"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_tests::TempDir;

    async fn ask(service: &SecretsService, id: &str) -> Result<Vec<u8>, Status> {
        service
            .get_secret(Request::new(GetSecretRequest {
                id: id.into(),
                annotations: HashMap::new(),
            }))
            .await
            .map(|r| r.into_inner().data)
    }

    #[tokio::test]
    async fn configured_secrets_are_read_and_unknown_ids_are_not_found() {
        let dir = TempDir::new("session-secrets");
        let path = dir.file("token", "s3cr3t-value");
        let service = SecretsService {
            secrets: Arc::new(BuildSecrets::new().with_file("token", &path)),
        };
        assert_eq!(ask(&service, "token").await.unwrap(), b"s3cr3t-value");
        let unknown = ask(&service, "other").await.expect_err("not configured");
        assert_eq!(unknown.code(), tonic::Code::NotFound);
        assert!(unknown.message().contains("\"other\""), "{unknown:?}");

        // A configured secret whose file is gone is not "absent": the build must fail.
        std::fs::remove_file(&path).unwrap();
        let gone = ask(&service, "token").await.expect_err("no file");
        assert_eq!(gone.code(), tonic::Code::FailedPrecondition);
        assert!(
            gone.message().contains(&path.display().to_string()),
            "{gone:?}"
        );
    }

    #[tokio::test]
    async fn a_secret_is_served_up_to_500_kib_and_refused_past_it() {
        let dir = TempDir::new("session-secret-size");
        let limit = usize::try_from(MAX_SECRET_BYTES).unwrap();
        let largest = dir.file("largest", &"a".repeat(limit));
        let too_large = dir.file("too-large", &"a".repeat(limit + 1));
        let service = SecretsService {
            secrets: Arc::new(
                BuildSecrets::new()
                    .with_file("largest", &largest)
                    .with_file("too-large", &too_large),
            ),
        };
        assert_eq!(ask(&service, "largest").await.unwrap().len(), limit);
        let refused = ask(&service, "too-large").await.expect_err("too large");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(
            refused.message().contains("\"too-large\"") && refused.message().contains("500 KiB"),
            "{refused:?}"
        );
        // A source that never ends is cut at the limit too.
        let endless = BuildSecrets::new().with_file("zero", "/dev/zero");
        let service = SecretsService {
            secrets: Arc::new(endless),
        };
        let refused = ask(&service, "zero").await.expect_err("endless");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    }

    #[test]
    fn debug_output_shows_ids_and_paths_only() {
        let dir = TempDir::new("session-secret-debug");
        let path = dir.file("token", "never-in-debug-output");
        let secrets = BuildSecrets::new().with_file("token", &path);
        let shown = format!("{secrets:?}");
        assert!(shown.contains("token") && shown.contains(&path.display().to_string()));
        assert!(!shown.contains("never-in-debug-output"), "{shown}");
        assert_eq!(secrets.ids().collect::<Vec<_>>(), ["token"]);
        assert_eq!(secrets.len(), 1);
    }

    #[test]
    fn the_socket_is_docker_host_when_unix_and_the_default_otherwise() {
        assert_eq!(
            local_socket(Some("unix:///run/slipway-docker26/docker.sock")),
            Path::new("/run/slipway-docker26/docker.sock")
        );
        assert_eq!(
            local_socket(Some("tcp://127.0.0.1:2375")),
            Path::new("/var/run/docker.sock")
        );
        assert_eq!(local_socket(None), Path::new("/var/run/docker.sock"));
    }

    #[test]
    fn a_refusal_names_the_daemons_message() {
        assert_eq!(
            refusal_message(b"{\"message\":\"protocol websocket not supported\"}\n"),
            "protocol websocket not supported"
        );
        assert_eq!(refusal_message(b"plain text\n"), "plain text");
    }

    /// Against the real dockerd 20.10 (`deploy/dev-env.sh`): a session it refuses (here for an API
    /// version newer than its own) is an API error quoting its answer, and one it accepts opens
    /// and closes.
    #[tokio::test]
    async fn a_session_the_daemon_refuses_is_an_api_error_with_its_answer() {
        slipway_tests::ensure_docker();
        let socket = local_socket(None);
        let limit = Duration::from_secs(30);
        let refused = BuildSession::open(
            &socket,
            "1.99",
            &BuildSecrets::new(),
            &SshAgents::new(),
            limit,
        )
        .await
        .err()
        .expect("refused");
        let DockerError::Api {
            status, message, ..
        } = &refused
        else {
            panic!("expected an API error, found {refused:?}");
        };
        assert_eq!(*status, 400, "{refused}");
        assert!(message.contains("1.99 is too new"), "{refused}");
        assert!(
            refused
                .to_string()
                .starts_with("Docker open a BuildKit session failed"),
            "{refused}"
        );

        let session = BuildSession::open(
            &socket,
            "1.41",
            &BuildSecrets::new(),
            &SshAgents::new(),
            limit,
        )
        .await
        .expect("accepted");
        assert_eq!(session.id().len(), 32);
        session.close().await;

        let absent = BuildSession::open(
            Path::new("/nonexistent/docker.sock"),
            "1.41",
            &BuildSecrets::new(),
            &SshAgents::new(),
            limit,
        )
        .await
        .err()
        .expect("no socket");
        assert!(
            matches!(absent, DockerError::Unreachable { .. }) && absent.is_transient(),
            "{absent:?}"
        );
    }
}

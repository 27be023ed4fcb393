//! `DockerEngine::build`: one build from a tar context, with the classic builder or BuildKit
//! (the Engine API's `version=2`, with a BuildKit session of its own that serves the spec's
//! [`BuildSecrets`] to `RUN --mount=type=secret` steps: `session.rs`), its output streamed line by
//! line, bounded by a time limit and a cancellation token, and no intermediate container left
//! behind whatever the outcome.
//!
//! BuildKit's progress arrives as `moby.buildkit.trace` messages (base64 protobuf, decoded by
//! bollard-stubs' `buildkit` feature): each step ("vertex") is logged once when it starts, with
//! `CACHED` when its result came from the cache, its output lines, and its error. BuildKit keys
//! its cache on each `RUN`'s network mode (part of the step's definition), so its layer cache is
//! safe to use across builds of different networks. Unlike the classic builder, dockerd 20.10's
//! BuildKit ignores the build API's memory and CPU caps (measured: a 300 MB allocation under a
//! 64 MB `memory` ran to completion).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::pin::pin;
use std::time::Duration;

use bollard::models::{BuildInfo, BuildInfoAux};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, BuilderVersion, WaitContainerOptionsBuilder,
};
use bollard_stubs::moby::buildkit::v1::StatusResponse;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::error::classify_build_failure;
use super::sandbox::{
    BuildLimits, CPU_PERIOD_US, build_memory_query, cpu_quota, explain_build_failure, with_query,
};
use super::session::{BuildSecrets, BuildSession};
use super::ssh_agent::SshAgents;
use super::{DockerEngine, DockerError};

/// The network the build's `RUN` steps (or a container) get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// No network at all: only a loopback interface of its own.
    None,
    /// The host's network (needed to reach a registry or a mirror on the host).
    Host,
}

impl Network {
    /// The daemon's name of the mode.
    pub fn mode(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Host => "host",
        }
    }
}

/// Which of the daemon's builders runs a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuilderKind {
    /// The classic builder (`version=1`): each `RUN` in a container with the spec's limits.
    Classic,
    /// BuildKit (`version=2`): heredocs, `RUN --mount`, `COPY --link`… as far as the daemon's
    /// built-in Dockerfile frontend goes; a network-aware layer cache; no per-step memory or CPU
    /// caps on dockerd 20.10.
    BuildKit,
}

/// Where the build context (a tar archive, optionally gzip/bzip2/xz compressed, with the
/// Dockerfile inside) comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildContext {
    /// The archive in memory.
    Tar(Vec<u8>),
    /// An archive file, streamed to the daemon (for contexts too large to hold in memory).
    TarFile(PathBuf),
}

/// What to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    /// The context archive.
    pub context: BuildContext,
    /// The Dockerfile's path inside the context (`Dockerfile`, `docker/app.Dockerfile`).
    pub dockerfile: String,
    /// `repository:tag` names to give the image (may be empty: the image is then known by id).
    pub tags: Vec<String>,
    /// Labels of the final image. The classic builder applies them with an extra `LABEL` step (a
    /// container created and committed): leave this empty when the labels can be added later.
    pub labels: BTreeMap<String, String>,
    /// `ARG` values.
    pub build_args: BTreeMap<String, String>,
    /// The network of the `RUN` steps.
    pub network: Network,
    /// The builder.
    pub builder: BuilderKind,
    /// The build's time limit, context upload included.
    pub timeout: Duration,
    /// Build every step afresh (`nocache`). The classic builder's cache ignores the network mode,
    /// so a layer made by a `host`-network build would otherwise be reused by a `none` build.
    pub no_cache: bool,
    /// Memory and CPU caps of each `RUN` step's container (the build API has no pids limit,
    /// capability or read-only-root option).
    pub limits: BuildLimits,
    /// The cgroup the `RUN` step containers are created under (`cgroupparent`): an operator's
    /// cgroup whose own limits (a `pids.max`, say: the build API has no pids limit) then bound
    /// every step. `None`: the daemon's default.
    pub cgroup_parent: Option<String>,
    /// The secrets `RUN --mount=type=secret,id=…` steps may mount (BuildKit only: a classic build
    /// with secrets is refused). Their values come from the worker's own files, never from the
    /// job, and are read only when a step mounts them; empty for most builds.
    pub secrets: BuildSecrets,
    /// The SSH agents `RUN --mount=type=ssh[,id=…]` steps may use (BuildKit only, like
    /// secrets): the worker's own agents' sockets, forwarded read-only (listing keys and signing;
    /// never adding, removing or locking).
    pub ssh_agents: SshAgents,
}

/// A finished build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// The image id (`sha256:…`).
    pub id: String,
    /// The tags it was given (those of the spec).
    pub tags: Vec<String>,
}

/// Why the stream stopped being read.
enum Ending {
    Finished,
    Failed(bollard::errors::Error),
    TimedOut,
    Cancelled,
}

impl DockerEngine {
    /// Build `spec` with the classic builder: `rm` and `forcerm` (no intermediate container
    /// survives, even a failed step's), no `pull` (a missing base image is still fetched, from a
    /// registry the daemon can reach), the spec's network for `RUN` steps, and the spec's labels
    /// (if any) on the final image. Every output line goes to `log` (the steps' output,
    /// status lines once per change, errors, and `slipway: …` notes of this layer).
    ///
    /// On the time limit or `cancel`, the request is dropped, which makes the daemon stop the build
    /// and remove the running step's container; this waits (up to
    /// [`DockerSettings::cleanup_grace`](super::DockerSettings::cleanup_grace)) until that container
    /// is gone, and removes it by force otherwise.
    ///
    /// A BuildKit build runs with a BuildKit session of its own (opened on the daemon's socket
    /// before the build request, closed when the build ends whatever the outcome) that serves
    /// the spec's [`BuildSecrets`]; a classic build has none.
    ///
    /// Errors: a failing step, an invalid Dockerfile or an unknown base image is
    /// [`DockerError::Build`] naming the step (so is a `required=true` secret mount whose id is not
    /// among the spec's secrets); [`DockerError::BuildTimedOut`]; [`DockerError::Cancelled`]; a
    /// full disk is [`DockerError::NoSpace`]; secrets in a classic build are
    /// [`DockerError::InvalidSpec`]; a session the daemon refuses is [`DockerError::Api`] with its
    /// answer (or [`DockerError::Unreachable`], [`DockerError::ApiTimeout`]).
    pub async fn build(
        &self,
        spec: &BuildSpec,
        log: &mut (dyn FnMut(&str) + Send),
        cancel: &CancellationToken,
    ) -> Result<BuiltImage, DockerError> {
        let tags = spec
            .tags
            .iter()
            .map(|t| super::tagged(t))
            .collect::<Result<Vec<_>, _>>()?;
        if spec.dockerfile.is_empty() {
            return Err(DockerError::InvalidSpec {
                problem: "expected the Dockerfile's path inside the context, found an empty path"
                    .into(),
            });
        }
        let labels: HashMap<&str, &str> = spec
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let build_args: HashMap<&str, &str> = spec
            .build_args
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if spec.builder == BuilderKind::Classic && !spec.ssh_agents.is_empty() {
            return Err(DockerError::InvalidSpec {
                problem: format!(
                    "expected a BuildKit build for SSH agents (the classic builder cannot mount them), \
                     found a classic build with the agents {:?}",
                    spec.ssh_agents.ids().collect::<Vec<_>>()
                ),
            });
        }
        if spec.builder == BuilderKind::Classic && !spec.secrets.is_empty() {
            return Err(DockerError::InvalidSpec {
                problem: format!(
                    "expected a BuildKit build for secrets (the classic builder cannot mount them), \
                     found a classic build with the secrets {:?}",
                    spec.secrets.ids().collect::<Vec<_>>()
                ),
            });
        }
        let version = match spec.builder {
            BuilderKind::Classic => BuilderVersion::BuilderV1,
            BuilderKind::BuildKit => BuilderVersion::BuilderBuildKit,
        };
        // The time limit counts from here: the session's opening and the context's upload included.
        let deadline = tokio::time::Instant::now() + spec.timeout;
        let mut options = BuildImageOptionsBuilder::default()
            .dockerfile(&spec.dockerfile)
            .version(version)
            .rm(true)
            .forcerm(true)
            .networkmode(spec.network.mode())
            .nocache(spec.no_cache)
            .cpuperiod(CPU_PERIOD_US)
            .cpuquota(cpu_quota(spec.limits.cpu_millicores)?)
            .buildargs(&build_args);
        if !labels.is_empty() {
            options = options.labels(&labels);
        }
        if let Some(first) = tags.first() {
            options = options.t(&first.to_string());
        }
        let body = match &spec.context {
            BuildContext::Tar(bytes) => bollard::body_full(bytes.clone().into()),
            BuildContext::TarFile(path) => {
                let file = tokio::fs::File::open(path)
                    .await
                    .map_err(|source| DockerError::Io {
                        what: format!("cannot open the build context {}", path.display()),
                        source,
                    })?;
                bollard::body_try_stream(tokio_util::io::ReaderStream::new(file))
            }
        };

        // bollard 0.21 types `memory` and `memswap` as i32 (2 GiB at most) and has no
        // `cgroupparent`: they are added to the request's query here instead.
        let memory = build_memory_query(&spec.limits, spec.cgroup_parent.as_deref())?;
        let client = self
            .client_with_timeout(spec.timeout)
            .with_request_modifier(move |mut request| {
                let uri = with_query(&request.uri().to_string(), &memory);
                match uri.parse() {
                    Ok(uri) => *request.uri_mut() = uri,
                    Err(error) => {
                        // Cannot happen (digits added to a valid URI); never build without the cap.
                        tracing::error!(%error, "cannot add the memory cap to the build request");
                        if let Ok(refused) = "/slipway-refused-build-without-memory-cap".parse() {
                            *request.uri_mut() = refused;
                        }
                    }
                }
                request
            });
        // BuildKit's session, open until the build's stream is done with (then closed below, or
        // stopped when dropped on an early return).
        let session = match spec.builder {
            BuilderKind::Classic => None,
            BuilderKind::BuildKit => {
                let api_version = self.api_version();
                let opening = BuildSession::open(
                    &self.socket,
                    &api_version,
                    &spec.secrets,
                    &spec.ssh_agents,
                    self.settings.api_timeout,
                );
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => {
                        log("slipway: the build was cancelled");
                        return Err(DockerError::Cancelled { operation: "build" });
                    }
                    () = tokio::time::sleep_until(deadline) => {
                        log(&format!(
                            "slipway: the build ran past its time limit of {:?} before it started",
                            spec.timeout
                        ));
                        return Err(DockerError::BuildTimedOut { limit: spec.timeout, step: None });
                    }
                    opened = opening => Some(opened?),
                }
            }
        };
        if let Some(session) = &session {
            options = options.session(session.id());
        }
        let mut progress = BuildProgress::default();
        let ending = {
            let mut stream = pin!(client.build_image(options.build(), None, Some(body)));
            let mut deadline = pin!(tokio::time::sleep_until(deadline));
            loop {
                let item = tokio::select! {
                    biased;
                    () = cancel.cancelled() => break Ending::Cancelled,
                    () = &mut deadline => break Ending::TimedOut,
                    item = stream.next() => item,
                };
                match item {
                    None => break Ending::Finished,
                    Some(Ok(info)) => progress.observe(&info, log),
                    Some(Err(e)) => break Ending::Failed(e),
                }
            }
            // The stream (and with it the HTTP request) is dropped here: for a cancelled or
            // timed-out build, that is what makes the daemon stop it.
        };
        if let Some(session) = session {
            session.close().await;
        }
        progress.flush(log);

        let failure = match ending {
            Ending::Finished => None,
            Ending::Failed(bollard::errors::Error::DockerStreamError { error }) => {
                let error = explain_build_failure(error, &spec.limits);
                log(&format!("error: {error}"));
                Some(classify_build_failure(progress.step.clone(), error))
            }
            Ending::Failed(bollard::errors::Error::DockerResponseServerError {
                message, ..
            }) => {
                // The daemon refused the build before it started (an invalid Dockerfile, a
                // missing one): the input's fault.
                log(&format!("error: {message}"));
                Some(classify_build_failure(progress.step.clone(), message))
            }
            Ending::Failed(other) => {
                Some(DockerError::from_bollard("build", other).with_timeout(spec.timeout))
            }
            Ending::TimedOut => {
                log(&format!(
                    "slipway: the build ran past its time limit of {:?}; stopping it",
                    spec.timeout
                ));
                Some(DockerError::BuildTimedOut {
                    limit: spec.timeout,
                    step: progress.step.clone(),
                })
            }
            Ending::Cancelled => {
                log("slipway: the build was cancelled; stopping it");
                Some(DockerError::Cancelled { operation: "build" })
            }
        };
        if let Some(failure) = failure {
            if let Err(e) = self.ensure_gone(&progress.containers, log).await {
                tracing::warn!(error = %e, "cannot make sure a build's containers are gone");
            }
            return Err(failure);
        }

        let id = match progress.image_id.clone() {
            Some(id) => id,
            None => self.image_id_after_build(&progress).await?,
        };
        for extra in tags.iter().skip(1) {
            self.tag_image(&id, extra).await?;
        }
        Ok(BuiltImage {
            id,
            tags: spec.tags.clone(),
        })
    }

    /// The image id when the stream had no `aux` id: from `Successfully built <short id>`.
    async fn image_id_after_build(&self, progress: &BuildProgress) -> Result<String, DockerError> {
        let unexpected = |found: &str| DockerError::UnexpectedResponse {
            operation: "build",
            expected: "the built image's id (an `aux` ID or `Successfully built <id>`)".into(),
            found: found.to_owned(),
        };
        let Some(short) = &progress.built_short_id else {
            return Err(unexpected("a build stream that ended without either"));
        };
        self.image_id(short)
            .await?
            .ok_or_else(|| unexpected(&format!("`Successfully built {short}` but no such image")))
    }

    /// Wait until each of a stopped build's step containers is gone (the daemon removes them by
    /// itself); remove by force those still there after the grace period.
    async fn ensure_gone(
        &self,
        containers: &[String],
        log: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), DockerError> {
        let grace = self.settings.cleanup_grace;
        let mut first_error = None;
        for id in containers {
            // `condition=removed` answers once the container is gone; 404 when it already is.
            let options = WaitContainerOptionsBuilder::default()
                .condition("removed")
                .build();
            let client = self.client_with_timeout(grace);
            let mut wait = client.wait_container(id, Some(options));
            let gone = match tokio::time::timeout(grace, wait.next()).await {
                Ok(None) => true,
                Ok(Some(Ok(_))) => true,
                Ok(Some(Err(bollard::errors::Error::DockerContainerWaitError { .. }))) => true,
                Ok(Some(Err(e))) => DockerError::from_bollard("wait container", e).is_not_found(),
                Err(_) => false,
            };
            if gone {
                continue;
            }
            log(&format!(
                "slipway: the daemon left build container {id} behind for {grace:?}; removing it"
            ));
            match self.force_remove_container(id).await {
                Ok(_) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// What a build stream has said so far, and the turning of its messages into log lines.
#[derive(Debug, Default)]
pub(crate) struct BuildProgress {
    /// The last `Step N/M : …` line.
    pub(crate) step: Option<String>,
    /// The step containers announced by `---> Running in <id>`.
    pub(crate) containers: Vec<String>,
    /// The image id from the final `aux` message.
    pub(crate) image_id: Option<String>,
    /// The short id of `Successfully built <id>`.
    pub(crate) built_short_id: Option<String>,
    /// The unfinished last line of the `stream` text.
    partial: String,
    /// The last status shown for each progress id (status lines are shown once per change).
    statuses: HashMap<String, String>,
    /// BuildKit steps announced so far, by digest: their number in the log (as `docker build
    /// --progress=plain` numbers them) and whether they were announced as cached.
    vertices: HashMap<String, (usize, bool)>,
}

/// At most this many BuildKit steps are remembered (a step repeated past it is logged again).
const MAX_TRACKED_VERTICES: usize = 10_000;

/// An output line longer than this is logged in pieces.
const MAX_PARTIAL_LINE: usize = 64 * 1024;

impl BuildProgress {
    /// Take one message of the build stream, sending its complete lines to `log`.
    pub(crate) fn observe(&mut self, info: &BuildInfo, log: &mut (dyn FnMut(&str) + Send)) {
        if let Some(text) = &info.stream {
            self.partial.push_str(text);
            while let Some(newline) = self.partial.find('\n') {
                let line: String = self.partial.drain(..=newline).collect();
                self.line(line.trim_end_matches(['\n', '\r']), log);
            }
        }
        if let Some(status) = &info.status {
            let key = info.id.clone().unwrap_or_default();
            if self.statuses.get(&key) != Some(status) {
                match &info.id {
                    Some(id) => log(&format!("{id}: {status}")),
                    None => log(status),
                }
                self.statuses.insert(key, status.clone());
            }
        }
        match &info.aux {
            Some(BuildInfoAux::Default(image)) => {
                if let Some(id) = &image.id {
                    self.image_id = Some(id.clone());
                }
            }
            Some(BuildInfoAux::BuildKit(status)) => self.buildkit(status, log),
            None => {}
        }
    }

    /// Take one BuildKit status message: steps as they start (and whether they were cached),
    /// their output lines, their errors.
    fn buildkit(&mut self, status: &StatusResponse, log: &mut (dyn FnMut(&str) + Send)) {
        for vertex in &status.vertexes {
            if self.vertices.len() >= MAX_TRACKED_VERTICES {
                self.vertices.clear();
            }
            let known = self.vertices.len() + 1;
            let (number, announced_cached) = match self.vertices.get(&vertex.digest) {
                Some(&seen) => seen,
                None if vertex.started.is_some() || vertex.cached => {
                    log(&format!("#{known} {}", vertex.name));
                    self.step = Some(vertex.name.clone());
                    self.vertices.insert(vertex.digest.clone(), (known, false));
                    (known, false)
                }
                None => continue,
            };
            if vertex.cached && vertex.completed.is_some() && !announced_cached {
                log(&format!("#{number} CACHED"));
                self.vertices.insert(vertex.digest.clone(), (number, true));
            }
            if !vertex.error.is_empty() {
                log(&format!("#{number} ERROR: {}", vertex.error));
            }
        }
        for entry in &status.logs {
            self.partial.push_str(&String::from_utf8_lossy(&entry.msg));
            while let Some(newline) = self.partial.find('\n') {
                let line: String = self.partial.drain(..=newline).collect();
                log(line.trim_end_matches(['\n', '\r']));
            }
            if self.partial.len() > MAX_PARTIAL_LINE {
                let line = std::mem::take(&mut self.partial);
                log(&line);
            }
        }
    }

    /// Send the unfinished last line, if any.
    pub(crate) fn flush(&mut self, log: &mut (dyn FnMut(&str) + Send)) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(line.trim_end_matches('\r'), log);
        }
    }

    fn line(&mut self, line: &str, log: &mut (dyn FnMut(&str) + Send)) {
        if line.starts_with("Step ") && line.contains(" : ") {
            self.step = Some(line.to_owned());
        } else if let Some(id) = line.trim_start().strip_prefix("---> Running in ") {
            let id = id.trim();
            if is_hex_id(id) {
                self.containers.push(id.to_owned());
            }
        } else if let Some(id) = line.strip_prefix("Successfully built ") {
            let id = id.trim();
            if is_hex_id(id) {
                self.built_short_id = Some(id.to_owned());
            }
        }
        log(line);
    }
}

fn is_hex_id(id: &str) -> bool {
    (12..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::ImageId;

    fn stream(text: &str) -> BuildInfo {
        BuildInfo {
            stream: Some(text.to_owned()),
            ..BuildInfo::default()
        }
    }

    #[test]
    fn lines_split_across_messages_are_joined_and_steps_and_containers_tracked() {
        let mut progress = BuildProgress::default();
        let mut lines = Vec::new();
        let mut log = |l: &str| lines.push(l.to_owned());
        for text in [
            "Step 1/2 : FROM slipway/debian:bookworm\n",
            " ---> 4ef747b20095\n",
            "Step 2/2 : RUN echo one; ",
            "echo two\n",
            " ---> Running in bfa68a735ef0\n",
            "one\ntw",
            "o\n",
            "Removing intermediate container bfa68a735ef0\n",
            "Successfully built 34e9c9ce73bb\n",
            "trailing",
        ] {
            progress.observe(&stream(text), &mut log);
        }
        progress.observe(
            &BuildInfo {
                aux: Some(BuildInfoAux::Default(ImageId {
                    id: Some("sha256:34e9".into()),
                })),
                ..BuildInfo::default()
            },
            &mut log,
        );
        progress.flush(&mut log);
        assert_eq!(
            lines,
            [
                "Step 1/2 : FROM slipway/debian:bookworm",
                " ---> 4ef747b20095",
                "Step 2/2 : RUN echo one; echo two",
                " ---> Running in bfa68a735ef0",
                "one",
                "two",
                "Removing intermediate container bfa68a735ef0",
                "Successfully built 34e9c9ce73bb",
                "trailing",
            ]
        );
        assert_eq!(
            progress.step.as_deref(),
            Some("Step 2/2 : RUN echo one; echo two")
        );
        assert_eq!(progress.containers, ["bfa68a735ef0"]);
        assert_eq!(progress.built_short_id.as_deref(), Some("34e9c9ce73bb"));
        assert_eq!(progress.image_id.as_deref(), Some("sha256:34e9"));
    }

    #[test]
    fn buildkit_steps_are_numbered_once_with_their_output_cache_and_errors() {
        use bollard_stubs::moby::buildkit::v1::{Vertex, VertexLog};
        let vertex = |digest: &str, name: &str, cached: bool, done: bool, error: &str| Vertex {
            digest: digest.into(),
            name: name.into(),
            cached,
            started: Some(Default::default()),
            completed: done.then(Default::default),
            error: error.into(),
            ..Vertex::default()
        };
        let status = |vertexes, logs: &[&str]| BuildInfo {
            aux: Some(BuildInfoAux::BuildKit(StatusResponse {
                vertexes,
                logs: logs
                    .iter()
                    .map(|msg| VertexLog {
                        msg: msg.as_bytes().to_vec(),
                        ..VertexLog::default()
                    })
                    .collect(),
                ..StatusResponse::default()
            })),
            ..BuildInfo::default()
        };
        let mut progress = BuildProgress::default();
        let mut lines = Vec::new();
        let mut log = |l: &str| lines.push(l.to_owned());
        progress.observe(
            &status(vec![vertex("a", "[1/2] FROM base", false, false, "")], &[]),
            &mut log,
        );
        progress.observe(
            &status(vec![vertex("a", "[1/2] FROM base", true, true, "")], &[]),
            &mut log,
        );
        progress.observe(
            &status(
                vec![vertex("b", "[2/2] RUN make", false, false, "")],
                &["one\ntw", "o\n"],
            ),
            &mut log,
        );
        progress.observe(
            &status(
                vec![vertex("b", "[2/2] RUN make", false, true, "exit code: 2")],
                &[],
            ),
            &mut log,
        );
        assert_eq!(
            lines,
            [
                "#1 [1/2] FROM base",
                "#1 CACHED",
                "#2 [2/2] RUN make",
                "one",
                "two",
                "#2 ERROR: exit code: 2",
            ]
        );
        assert_eq!(progress.step.as_deref(), Some("[2/2] RUN make"));

        // Output without newlines is flushed once past the limit, not accumulated.
        let endless = "x".repeat(MAX_PARTIAL_LINE + 1);
        let mut pieces = Vec::new();
        let mut log = |l: &str| pieces.push(l.len());
        progress.observe(&status(Vec::new(), &[&endless]), &mut log);
        assert_eq!(pieces, [MAX_PARTIAL_LINE + 1]);
        assert!(progress.partial.is_empty());
    }

    #[test]
    fn status_lines_are_shown_once_per_change() {
        let mut progress = BuildProgress::default();
        let mut lines = Vec::new();
        let mut log = |l: &str| lines.push(l.to_owned());
        let status = |id: &str, s: &str| BuildInfo {
            id: Some(id.into()),
            status: Some(s.into()),
            ..BuildInfo::default()
        };
        for info in [
            status("a1", "Downloading"),
            status("a1", "Downloading"),
            status("b2", "Downloading"),
            status("a1", "Download complete"),
        ] {
            progress.observe(&info, &mut log);
        }
        assert_eq!(
            lines,
            [
                "a1: Downloading",
                "b2: Downloading",
                "a1: Download complete"
            ]
        );
    }
}

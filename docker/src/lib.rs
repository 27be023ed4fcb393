//! Slipway's one door to the Docker daemon, shared by the build and scan workers (the only crate
//! importing bollard): build an image from a tar context, push and pull it, run a container with a
//! time limit, look images up, read an image's layers, clean up what a job left behind, and measure
//! the daemon's disk.
//!
//! Facts this module relies on (dockerd 20.10, API 1.41, bollard 0.21), each checked by
//! `tests/docker_engine.rs` unless marked otherwise:
//! - bollard asks for API 1.53 unless told otherwise: [`DockerEngine::connect`] negotiates.
//! - BuildKit builds (`version=2`) run with a BuildKit session of their own (`session.rs`, which
//!   lists what was checked on dockerd 20.10 and Docker 26), through which the daemon asks for
//!   the values of secret mounts.
//! - The classic builder (`version=1`): its `labels` option is applied by a `LABEL`
//!   step appended to the *last* stage (counted in `Step N/M`; it creates and commits a container,
//!   about 160 ms here), so only the final image carries the labels: intermediate containers, the
//!   images of earlier stages and the step images a failed build leaves behind are unlabelled.
//!   [`DockerEngine::build`] therefore tracks the intermediate containers by the
//!   `---> Running in <id>` lines and makes sure each is gone when the build ends.
//! - Dropping the build's HTTP request cancels the build: the daemon kills and removes the running
//!   step's container by itself (within about a second).
//! - With `forcerm` the container of a failed step is removed too (`rm` alone leaves it).
//! - The classic builder's cache key ignores the network mode: a `RUN` step that succeeded under
//!   `host` is reused as is by a later `none` build of the same instructions (checked by hand).
//! - Throwaway containers run confined ([`ContainerSandbox`]: memory, pids and CPU caps, no
//!   capabilities, `no-new-privileges`, optionally a read-only root) and never see the Docker
//!   socket; builds get the memory and CPU caps the build API takes ([`BuildLimits`]). See
//!   `sandbox.rs` for what applies where.
//! - The push stream ends with `<tag>: digest: sha256:… size: N`; bollard's `PushImageInfo` drops
//!   the `aux` object, so the digest is read from that status line. It equals the registry's
//!   `Docker-Content-Digest` for the tag.

mod build;
mod credentials;
mod error;
mod filesystem;
mod image;
mod push;
mod run;
mod sandbox;
mod session;
mod space;
mod ssh_agent;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
};

pub use build::{BuildContext, BuildSpec, BuilderKind, BuiltImage, Network};
pub use credentials::{CredentialsError, PASSWORD_CREDENTIAL, RegistryCredentials};
pub use error::DockerError;
pub use filesystem::{ArchiveStream, ImageStorage};
pub use image::{PushedImage, required_tag, tagged};
pub use run::{BindMount, MountAccess, OutputTail, RunCommand, RunOutcome, RunSpec};
pub use sandbox::{
    BuildLimits, ContainerSandbox, DOCKER_SOCKETS, MIN_MEMORY_BYTES, ResourceLimits, RootFs,
    check_cgroup_parent, exposes_docker_socket,
};
pub use session::{BuildSecrets, MAX_SECRET_BYTES, SecretSource};
pub use slipway_common::{Digest, ImageRef};
pub use space::DiskSpace;
pub use ssh_agent::{DEFAULT_AGENT_ID, SshAgents};

/// The label every container and image a job creates carries, with the job id as its value.
pub const JOB_LABEL: &str = "io.slipway.job-id";

/// Time limits of the engine's own calls (a build's and a container's limits are in their specs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerSettings {
    /// Limit of a short API call (inspect, list, remove, create, kill, the logs of one container).
    pub api_timeout: Duration,
    /// Limit of a whole push.
    pub push_timeout: Duration,
    /// How long to wait for the daemon to remove a cancelled build's container by itself before
    /// removing it by force.
    pub cleanup_grace: Duration,
}

impl Default for DockerSettings {
    fn default() -> Self {
        Self {
            api_timeout: Duration::from_secs(60),
            push_timeout: Duration::from_secs(30 * 60),
            cleanup_grace: Duration::from_secs(15),
        }
    }
}

/// What a base image hands down to the builds of images `FROM` it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InheritedConfig {
    /// Its `ONBUILD` triggers, as written (`ADD http://… /x`, `RUN make`).
    pub onbuild: Vec<String>,
    /// Its environment, `NAME=value` each.
    pub env: Vec<String>,
}

/// A connection to the local Docker daemon (cheap to clone: clones share the connection pool).
#[derive(Debug, Clone)]
pub struct DockerEngine {
    docker: Docker,
    settings: DockerSettings,
    /// The daemon's socket, which BuildKit sessions dial (the one the client talks to).
    socket: PathBuf,
}

impl DockerEngine {
    /// Connect to the local daemon (`DOCKER_HOST` if it is a `unix://` URL, else
    /// `/var/run/docker.sock`: as bollard's `connect_with_local_defaults`, a `DOCKER_HOST` of
    /// another scheme is ignored) with the default [`DockerSettings`], and negotiate the API
    /// version. The socket is kept: BuildKit sessions dial the same daemon.
    pub async fn connect() -> Result<Self, DockerError> {
        Self::connect_with(DockerSettings::default()).await
    }

    /// [`DockerEngine::connect`] with explicit settings.
    pub async fn connect_with(settings: DockerSettings) -> Result<Self, DockerError> {
        // What `Docker::connect_with_local_defaults` does, keeping the socket's path.
        let socket = session::local_socket(std::env::var("DOCKER_HOST").ok().as_deref());
        let docker = Docker::connect_with_unix(
            &socket.to_string_lossy(),
            client_timeout(settings.api_timeout).as_secs(),
            bollard::API_DEFAULT_VERSION,
        )
        .map_err(|e| DockerError::from_bollard("connect", e))?;
        let docker = within(settings.api_timeout, "version negotiation", async {
            docker.negotiate_version().await
        })
        .await?;
        Ok(Self {
            docker,
            settings,
            socket,
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> &DockerSettings {
        &self.settings
    }

    /// The daemon's socket (the path of `DOCKER_HOST`'s `unix://` URL, or `/var/run/docker.sock`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The API version in use after negotiation (`1.41` for dockerd 20.10).
    pub fn api_version(&self) -> String {
        let v = self.docker.client_version();
        format!("{}.{}", v.major_version, v.minor_version)
    }

    /// Removes both builders' layer caches; returns the bytes freed:
    /// - BuildKit's build cache records unused for `older_than` (`POST /build/prune?all=1` with
    ///   `until`; records a running build uses are never pruned);
    /// - the classic builder's, which is the daemon's untagged images (`POST /images/prune` with
    ///   `dangling=true`, which takes their untagged parents too) created more than
    ///   `older_than` ago. On a build node these are the images of earlier builds' steps, kept as
    ///   the cache. A build in progress (of another worker on the node) holds no reference to
    ///   the image of its last step until the next step makes a child of it: `older_than` (the
    ///   build time limit) keeps every image a running build may still need.
    pub async fn prune_build_cache(&self, older_than: Duration) -> Result<u64, DockerError> {
        let until = format!("{}s", older_than.as_secs());
        let unused = HashMap::from([("until", vec![until.as_str()])]);
        let options = bollard::query_parameters::PruneBuildOptionsBuilder::default()
            .all(true)
            .filters(&unused)
            .build();
        let buildkit = self
            .call("prune build cache", self.docker.prune_build(Some(options)))
            .await?
            .space_reclaimed;
        let dangling = HashMap::from([("dangling", vec!["true"]), ("until", vec![until.as_str()])]);
        let options = bollard::query_parameters::PruneImagesOptionsBuilder::default()
            .filters(&dangling)
            .build();
        let classic = self
            .call("prune images", self.docker.prune_images(Some(options)))
            .await?
            .space_reclaimed;
        let bytes = |reclaimed: Option<i64>| reclaimed.and_then(|b| u64::try_from(b).ok());
        Ok(bytes(buildkit).unwrap_or(0) + bytes(classic).unwrap_or(0))
    }

    /// The daemon's engine version (`20.10.24+dfsg1`), which tells what its builders parse.
    pub async fn engine_version(&self) -> Result<String, DockerError> {
        let version = self.call("version", self.docker.version()).await?;
        version
            .version
            .ok_or_else(|| DockerError::UnexpectedResponse {
                operation: "version",
                expected: "the engine's version".into(),
                found: "an answer without `Version`".into(),
            })
    }

    /// The id (`sha256:…`) of the local image `reference` (a name:tag or an id), or `None` when the
    /// daemon has no such image.
    pub async fn image_id(&self, reference: &str) -> Result<Option<String>, DockerError> {
        match self
            .call("inspect image", self.docker.inspect_image(reference))
            .await
        {
            Ok(image) => image
                .id
                .map(Some)
                .ok_or_else(|| DockerError::UnexpectedResponse {
                    operation: "inspect image",
                    expected: format!("the id of image {reference}"),
                    found: "an answer without `Id`".into(),
                }),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The labels of the local image `reference`, or `None` when the daemon has no such image.
    pub async fn image_labels(
        &self,
        reference: &str,
    ) -> Result<Option<HashMap<String, String>>, DockerError> {
        match self
            .call("inspect image", self.docker.inspect_image(reference))
            .await
        {
            Ok(image) => Ok(Some(
                image.config.and_then(|c| c.labels).unwrap_or_default(),
            )),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// What the local image `reference` hands down to the build of any image `FROM` it: its
    /// `ONBUILD` triggers (instructions such as `ADD http://… /x`) and its environment. `None`
    /// when the daemon has no such image.
    pub async fn inherited_config(
        &self,
        reference: &str,
    ) -> Result<Option<InheritedConfig>, DockerError> {
        match self
            .call("inspect image", self.docker.inspect_image(reference))
            .await
        {
            Ok(image) => {
                let config = image.config.unwrap_or_default();
                Ok(Some(InheritedConfig {
                    onbuild: config.on_build.unwrap_or_default(),
                    env: config.env.unwrap_or_default(),
                }))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Remove the tag (or image id) `reference`: the image itself goes when no other tag and no
    /// container uses it. Never forced: an image a container uses stays and the daemon's 409 is
    /// returned as [`DockerError::Api`]. Removing what is already gone succeeds.
    pub async fn remove_image(&self, reference: &str) -> Result<(), DockerError> {
        self.remove_unforced(reference).await.map(drop)
    }

    /// Removes `reference` without force (pruning untagged parents): `Ok(true)` when removed,
    /// `Ok(false)` when already gone; an image in use stays and its 409 is the error.
    async fn remove_unforced(&self, reference: &str) -> Result<bool, DockerError> {
        let options = RemoveImageOptionsBuilder::default()
            .force(false)
            .noprune(false)
            .build();
        match self
            .call(
                "remove image",
                self.docker.remove_image(reference, Some(options), None),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Remove (killing first when running) every container, in any state, labelled
    /// [`JOB_LABEL`]`=<job_label_value>`, with its anonymous volumes; returns how many were
    /// removed. This catches the containers of [`DockerEngine::run_container`] whose caller was
    /// dropped mid-run. (Build steps' containers carry no labels: [`DockerEngine::build`] removes
    /// those itself.)
    pub async fn remove_job_containers(&self, job_label_value: &str) -> Result<usize, DockerError> {
        let filter = job_filter(job_label_value)?;
        let filters = HashMap::from([("label", vec![filter])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let containers = self
            .call(
                "list containers",
                self.docker.list_containers(Some(options)),
            )
            .await?;
        let mut removed = 0;
        let mut first_error = None;
        for id in containers.into_iter().filter_map(|c| c.id) {
            match self.force_remove_container(&id).await {
                Ok(true) => removed += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(container = %id, error = %e, "cannot remove a job's container");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(removed),
        }
    }

    /// Removes those of `ids` (image ids, full or short; given oldest first, removed newest first)
    /// that no tag names. Never forced: an image in use by a container or with children stays,
    /// and a tagged image (a base image, another build's result) is never touched. Returns how
    /// many were removed. One image the daemon fails on (for instance one another client is
    /// deleting at that moment) does not keep the others: each is tried, each failure is logged,
    /// and the first is returned after all were tried.
    pub async fn remove_untagged_images(&self, ids: &[String]) -> Result<usize, DockerError> {
        let mut removed = 0;
        let mut first_error = None;
        for id in ids.iter().rev() {
            match self.remove_if_untagged(id).await {
                Ok(true) => removed += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(image = %id, error = %e, "cannot remove an untagged image");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(removed),
        }
    }

    /// Removes the image `id` when no tag names it (unforced); `Ok(false)` when it is gone, still
    /// tagged, or kept by the daemon (in use, or a parent of another image).
    async fn remove_if_untagged(&self, id: &str) -> Result<bool, DockerError> {
        let image = match self
            .call("inspect image", self.docker.inspect_image(id))
            .await
        {
            Ok(image) => image,
            Err(e) if e.is_not_found() => return Ok(false),
            Err(e) => return Err(e),
        };
        let untagged = image
            .repo_tags
            .as_ref()
            .is_none_or(|tags| tags.iter().all(|t| t == "<none>:<none>"));
        if !untagged {
            return Ok(false);
        }
        match self.remove_unforced(id).await {
            Err(DockerError::Api { status: 409, .. }) => Ok(false),
            other => other,
        }
    }

    /// Remove the container `id` by force with its anonymous volumes; `Ok(false)` when it was
    /// already gone.
    async fn force_remove_container(&self, id: &str) -> Result<bool, DockerError> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self
            .call(
                "remove container",
                self.docker.remove_container(id, Some(options)),
            )
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            // "removal of container … is already in progress": the daemon is removing it.
            Err(DockerError::Api {
                status: 409,
                message,
                ..
            }) if message.contains("already in progress") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Run one short API call under [`DockerSettings::api_timeout`].
    async fn call<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, DockerError> {
        within(self.settings.api_timeout, operation, call).await
    }

    /// A client whose per-request limit (bollard's, on the response headers) is `limit`.
    fn client_with_timeout(&self, limit: Duration) -> Docker {
        self.docker.clone().with_timeout(client_timeout(limit))
    }
}

/// bollard's request limit for calls that should end within `limit` by our own clock: whole
/// seconds, never zero (zero would fail every request at once), a little later than ours.
fn client_timeout(limit: Duration) -> Duration {
    Duration::from_secs(limit.as_secs().saturating_add(5).max(1))
}

/// Run `call` for at most `limit`, translating its errors.
async fn within<T>(
    limit: Duration,
    operation: &'static str,
    call: impl Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<T, DockerError> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(DockerError::from_bollard(operation, e).with_timeout(limit)),
        Err(_) => Err(DockerError::ApiTimeout {
            operation,
            after: limit,
        }),
    }
}

/// The `label` filter value selecting a job's objects.
fn job_filter(job_label_value: &str) -> Result<String, DockerError> {
    if job_label_value.is_empty() || job_label_value.chars().any(char::is_control) {
        return Err(DockerError::InvalidSpec {
            problem: format!(
                "expected a non-empty job label value without control characters, found {job_label_value:?}"
            ),
        });
    }
    Ok(format!("{JOB_LABEL}={job_label_value}"))
}

//! `DockerEngine::push`: push one `repository:tag` to its registry and return the manifest digest
//! the registry stored it under.

use std::collections::HashMap;
use std::pin::pin;

use bollard::auth::DockerCredentials;
use bollard::query_parameters::PushImageOptionsBuilder;
use futures_util::StreamExt;

use super::image::parse_push_digest;
use crate::{
    Digest, DockerEngine, DockerError, ImageRef, PushedImage, RegistryCredentials, required_tag,
};

impl DockerEngine {
    /// Push `reference` (already tagged locally) with `auth` when the registry needs a login.
    /// Status lines go to `log`, once per change per layer. The digest is read from the daemon's
    /// final `<tag>: digest: sha256:… size: N` status line.
    ///
    /// Errors: [`DockerError::Push`] (transient unless the registry refused the credentials or
    /// the tag does not exist locally: dockerd 20.10 reports that inside the stream as
    /// `tag does not exist: …`); [`DockerError::ApiTimeout`] past
    /// [`DockerSettings::push_timeout`](super::DockerSettings::push_timeout).
    pub async fn push(
        &self,
        reference: &ImageRef,
        auth: Option<&RegistryCredentials>,
        log: &mut (dyn FnMut(&str) + Send),
    ) -> Result<PushedImage, DockerError> {
        let tag = required_tag(reference)?;
        let limit = self.settings.push_timeout;
        let options = PushImageOptionsBuilder::default().tag(tag).build();
        let credentials = auth.map(|c| daemon_credentials(c, reference));
        let client = self.client_with_timeout(limit);
        let mut digest = None;
        let read = async {
            let mut stream =
                pin!(client.push_image(&reference.repository(), Some(options), credentials));
            let mut last_status: HashMap<Option<i64>, String> = HashMap::new();
            while let Some(item) = stream.next().await {
                let info = match item {
                    Ok(info) => info,
                    Err(bollard::errors::Error::DockerStreamError { error }) => {
                        log(&format!("error: {error}"));
                        return Err(if super::error::is_no_space(&error) {
                            DockerError::NoSpace {
                                operation: "push",
                                message: error,
                            }
                        } else {
                            DockerError::Push {
                                reference: reference.to_string(),
                                message: error,
                            }
                        });
                    }
                    Err(e) => {
                        return Err(DockerError::from_bollard("push", e).with_timeout(limit));
                    }
                };
                let Some(status) = info.status else { continue };
                if let Some(found) = parse_push_digest(&status) {
                    digest = Some(found);
                }
                // PushImageInfo carries no layer id: key the once-per-change filter on the
                // progress total, which tells the layers apart well enough for a log.
                let key = info.progress_detail.as_ref().and_then(|p| p.total);
                if last_status.get(&key) != Some(&status) {
                    log(&status);
                    last_status.insert(key, status);
                }
            }
            Ok(())
        };
        match tokio::time::timeout(limit, read).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(DockerError::ApiTimeout {
                    operation: "push",
                    after: limit,
                });
            }
        }
        let Some((digest, manifest_size)) = digest else {
            return Err(DockerError::UnexpectedResponse {
                operation: "push",
                expected: format!("a `{tag}: digest: sha256:… size: N` status line"),
                found: "a push stream that ended without one".into(),
            });
        };
        Ok(PushedImage {
            reference: reference.clone(),
            digest,
            manifest_size,
        })
    }
}

impl DockerEngine {
    /// Pull `reference` from its registry (Slipway's own registry, for parents built by
    /// Slipway on another node), with `auth` when the registry needs a login. Status lines go to
    /// `log`. A failure the daemon reports in the stream (unknown manifest, refused login) is
    /// [`DockerError::Push`] naming the reference; an unreachable daemon or registry is transient.
    pub async fn pull(
        &self,
        reference: &ImageRef,
        auth: Option<&RegistryCredentials>,
        log: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), DockerError> {
        let tag = required_tag(reference)?;
        self.create_image(reference, tag, auth, log).await
    }

    /// Pull the manifest `digest` (`sha256:` and 64 hex digits) of `reference`'s repository: the
    /// exact image a build published, whatever its tag names now. The daemon verifies the digest.
    pub async fn pull_by_digest(
        &self,
        reference: &ImageRef,
        digest: &Digest,
        auth: Option<&RegistryCredentials>,
        log: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), DockerError> {
        self.create_image(reference, digest.as_str(), auth, log)
            .await
    }

    /// `POST /images/create` of `reference`'s repository at `tag_or_digest`.
    async fn create_image(
        &self,
        reference: &ImageRef,
        tag_or_digest: &str,
        auth: Option<&RegistryCredentials>,
        log: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), DockerError> {
        let limit = self.settings.push_timeout;
        let options = bollard::query_parameters::CreateImageOptionsBuilder::default()
            .from_image(&reference.repository())
            .tag(tag_or_digest)
            .build();
        let credentials = auth.map(|c| daemon_credentials(c, reference));
        let client = self.client_with_timeout(limit);
        let read = async {
            let mut stream = pin!(client.create_image(Some(options), None, credentials));
            let mut last = String::new();
            while let Some(item) = stream.next().await {
                match item {
                    Ok(info) => {
                        if let Some(status) = info.status
                            && status != last
                        {
                            log(&status);
                            last = status;
                        }
                    }
                    Err(bollard::errors::Error::DockerStreamError { error }) => {
                        log(&format!("error: {error}"));
                        return Err(DockerError::Push {
                            reference: reference.to_string(),
                            message: error,
                        });
                    }
                    Err(e) => return Err(DockerError::from_bollard("pull", e).with_timeout(limit)),
                }
            }
            Ok(())
        };
        match tokio::time::timeout(limit, read).await {
            Ok(result) => result,
            Err(_) => Err(DockerError::ApiTimeout {
                operation: "pull",
                after: limit,
            }),
        }
    }

    /// Gives the local image `id` the name `reference` (moving the name if another image had it).
    pub async fn tag_image(&self, id: &str, reference: &ImageRef) -> Result<(), DockerError> {
        let tag = required_tag(reference)?;
        let options = bollard::query_parameters::TagImageOptionsBuilder::default()
            .repo(&reference.repository())
            .tag(tag)
            .build();
        self.call("tag image", self.docker.tag_image(id, Some(options)))
            .await
    }
}

/// `auth` as the daemon takes it (`X-Registry-Auth`) for `reference`'s registry.
fn daemon_credentials(auth: &RegistryCredentials, reference: &ImageRef) -> DockerCredentials {
    DockerCredentials {
        username: Some(auth.username().to_owned()),
        password: Some(auth.password().to_owned()),
        serveraddress: reference.domain().map(str::to_owned),
        ..DockerCredentials::default()
    }
}

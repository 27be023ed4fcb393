//! `DockerError`: every way a call to the Docker Engine can fail, each saying what was expected and
//! what was found, split into transient (retry later) and permanent (fail the job) by
//! [`DockerError::is_transient`].

use std::time::Duration;

use slipway_common::errors::chain;

/// A failure of the Docker Engine layer.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The daemon could not be reached, or the connection broke mid-call. Transient.
    #[error("cannot reach the Docker daemon during {operation}: {detail}")]
    Unreachable {
        /// The API call that failed.
        operation: &'static str,
        /// What the client reported.
        detail: String,
    },
    /// An API call did not answer within the time allowed. Transient.
    #[error("the Docker daemon did not answer {operation} within {after:?}")]
    ApiTimeout {
        /// The API call that timed out.
        operation: &'static str,
        /// The time allowed.
        after: Duration,
    },
    /// The daemon refused an API call: transient for a 5xx status, permanent for a 4xx one.
    #[error("Docker {operation} failed: the daemon answered HTTP {status}: {message}")]
    Api {
        /// The API call that failed.
        operation: &'static str,
        /// The HTTP status the daemon answered with.
        status: u16,
        /// The daemon's message.
        message: String,
    },
    /// The disk under the daemon (or its registry) is full. Transient: it clears once space is
    /// freed.
    #[error("Docker {operation} failed: no space left on device ({message})")]
    NoSpace {
        /// The API call that failed.
        operation: &'static str,
        /// The daemon's message.
        message: String,
    },
    /// The build failed: a step exited non-zero, the Dockerfile is invalid, a base image cannot be
    /// pulled. Permanent: building the same input again fails the same way.
    #[error("{}", build_message(step.as_deref(), message))]
    Build {
        /// The step being run when the build failed (`Step 3/5 : RUN make`), when one had started.
        step: Option<String>,
        /// The daemon's message (`The command '/bin/sh -c make' returned a non-zero code: 2`).
        message: String,
    },
    /// The build ran past its time limit and was stopped. Permanent: the same build would take as
    /// long again.
    #[error("the build was stopped after its time limit of {limit:?}{}", step_suffix(step.as_deref()))]
    BuildTimedOut {
        /// The time limit.
        limit: Duration,
        /// The step that was running, when one had started.
        step: Option<String>,
    },
    /// The push was refused or broke off. Transient (registry down, connection lost) unless the
    /// registry refused the credentials or the tag does not exist locally.
    #[error("push of {reference} failed: {message}")]
    Push {
        /// The reference being pushed.
        reference: String,
        /// The daemon's (or registry's) message.
        message: String,
    },
    /// The work was cancelled (shutdown) and stopped. Transient: the job was not done and should
    /// run again.
    #[error("{operation} was cancelled")]
    Cancelled {
        /// What was cancelled.
        operation: &'static str,
    },
    /// A request was invalid before it reached the daemon. Permanent.
    #[error("invalid Docker request: {problem}")]
    InvalidSpec {
        /// What was expected and found.
        problem: String,
    },
    /// The daemon's answer lacked something it always carries. Transient (a daemon glitch).
    #[error(
        "unexpected answer from the Docker daemon to {operation}: expected {expected}, found {found}"
    )]
    UnexpectedResponse {
        /// The API call.
        operation: &'static str,
        /// What was expected.
        expected: String,
        /// What was found instead.
        found: String,
    },
    /// A local file or file system call failed. Transient.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, and on which path.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Any other client-side failure (an undecodable answer, …). Transient.
    #[error("Docker {operation} failed: {detail}")]
    Client {
        /// The API call that failed.
        operation: &'static str,
        /// What the client reported.
        detail: String,
    },
}

fn step_suffix(step: Option<&str>) -> String {
    step.map(|s| format!(" (at {s})")).unwrap_or_default()
}

fn build_message(step: Option<&str>, message: &str) -> String {
    match step {
        Some(step) => format!("the build failed at {step}: {message}"),
        None => format!("the build failed before its first step: {message}"),
    }
}

impl DockerError {
    /// Whether retrying later may succeed (daemon unreachable or overloaded, a full disk, an API
    /// timeout, a cancellation) or the input itself is at fault (a failing build, an invalid
    /// request, a 4xx answer).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. }
            | Self::ApiTimeout { .. }
            | Self::NoSpace { .. }
            | Self::Cancelled { .. }
            | Self::UnexpectedResponse { .. }
            | Self::Io { .. }
            | Self::Client { .. } => true,
            Self::Api { status, .. } => *status >= 500,
            Self::Push { message, .. } => !is_permanent_push_failure(message),
            Self::Build { .. } | Self::BuildTimedOut { .. } | Self::InvalidSpec { .. } => false,
        }
    }

    /// Whether a pull failed because the registry does not have the image (no such repository,
    /// tag or manifest), as opposed to a refused login or an unreachable registry.
    pub fn is_absent_image(&self) -> bool {
        match self {
            Self::Api { status, .. } => *status == 404,
            Self::Push { message, .. } => is_absent_message(message),
            _ => false,
        }
    }

    /// Translate a bollard error of the API call `operation`.
    pub(crate) fn from_bollard(operation: &'static str, error: bollard::errors::Error) -> Self {
        use bollard::errors::Error as E;
        match error {
            E::DockerResponseServerError {
                status_code,
                message,
            } => {
                if is_no_space(&message) {
                    Self::NoSpace { operation, message }
                } else {
                    Self::Api {
                        operation,
                        status: status_code,
                        message,
                    }
                }
            }
            E::DockerStreamError { error } if is_no_space(&error) => Self::NoSpace {
                operation,
                message: error,
            },
            E::DockerStreamError { error } => Self::Api {
                operation,
                status: 500,
                message: error,
            },
            E::RequestTimeoutError => Self::ApiTimeout {
                operation,
                // bollard does not say which limit fired; the caller replaces it when it knows.
                after: Duration::ZERO,
            },
            e @ (E::HyperLegacyError { .. }
            | E::HyperResponseError { .. }
            | E::IOError { .. }
            | E::SocketNotFoundError(_)) => Self::Unreachable {
                operation,
                detail: chain(&e),
            },
            other => Self::Client {
                operation,
                detail: chain(&other),
            },
        }
    }

    /// Whether this is the daemon saying the object does not exist (HTTP 404).
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, Self::Api { status: 404, .. })
    }

    /// Replace the unknown time limit of an [`DockerError::ApiTimeout`] by `after`.
    pub(crate) fn with_timeout(self, after: Duration) -> Self {
        match self {
            Self::ApiTimeout { operation, .. } => Self::ApiTimeout { operation, after },
            other => other,
        }
    }
}

/// Whether a daemon message says a disk is full.
pub(crate) fn is_no_space(message: &str) -> bool {
    message
        .to_ascii_lowercase()
        .contains("no space left on device")
}

/// Whether a push failure will happen again: the registry refused the credentials, or the daemon
/// has no such tag to push (`tag does not exist: …`).
pub(crate) fn is_permanent_push_failure(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    [
        "unauthorized",
        "authentication required",
        "access denied",
        "denied:",
        "tag does not exist",
        "does not exist locally",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
        || is_absent_message(message)
}

/// Whether a registry's message says the image is not there.
fn is_absent_message(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("manifest unknown") || lower.contains("name unknown")
}

/// Classify a failure reported inside a build stream: a full disk and an unreachable registry
/// (while pulling a base image) are transient; anything else is the build's own fault.
pub(crate) fn classify_build_failure(step: Option<String>, message: String) -> DockerError {
    if is_no_space(&message) {
        return DockerError::NoSpace {
            operation: "build",
            message,
        };
    }
    // A RUN step's failure quotes the command, which may contain anything: only the daemon's own
    // pull errors are looked at for network trouble.
    let from_a_command = message.starts_with("The command ");
    let lower = message.to_ascii_lowercase();
    let registry_trouble = [
        "connect: connection refused",
        "i/o timeout",
        "tls handshake timeout",
        "503 service unavailable",
        "502 bad gateway",
        "connection reset by peer",
    ]
    .iter()
    .any(|needle| lower.contains(needle));
    if registry_trouble && !from_a_command {
        return DockerError::Unreachable {
            operation: "build (pulling a base image)",
            detail: message,
        };
    }
    DockerError::Build { step, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_steps_and_bad_dockerfiles_are_permanent() {
        let failed = classify_build_failure(
            Some("Step 2/3 : RUN exit 3".into()),
            "The command '/bin/sh -c exit 3' returned a non-zero code: 3".into(),
        );
        assert!(!failed.is_transient());
        assert_eq!(
            failed.to_string(),
            "the build failed at Step 2/3 : RUN exit 3: The command '/bin/sh -c exit 3' returned a non-zero code: 3"
        );
        let unknown_base = classify_build_failure(
            Some("Step 1/2 : FROM 127.0.0.1:5000/nope:x".into()),
            "manifest for 127.0.0.1:5000/nope:x not found: manifest unknown: manifest unknown"
                .into(),
        );
        assert!(matches!(unknown_base, DockerError::Build { .. }));
        assert!(!unknown_base.is_transient());
        // A command that mentions a network failure is still the build's own failure.
        let command = classify_build_failure(
            None,
            "The command '/bin/sh -c curl x || echo i/o timeout' returned a non-zero code: 1"
                .into(),
        );
        assert!(!command.is_transient());
    }

    #[test]
    fn full_disks_and_unreachable_registries_are_transient() {
        let full = classify_build_failure(
            None,
            "failed to copy files: write /var/lib/docker/x: no space left on device".into(),
        );
        assert!(matches!(full, DockerError::NoSpace { .. }));
        assert!(full.is_transient());
        let down = classify_build_failure(
            Some("Step 1/2 : FROM 127.0.0.1:5999/base:1".into()),
            "Get \"http://127.0.0.1:5999/v2/\": dial tcp 127.0.0.1:5999: connect: connection refused"
                .into(),
        );
        assert!(down.is_transient());
    }

    #[test]
    fn api_errors_are_transient_only_for_server_errors() {
        let not_found = DockerError::from_bollard(
            "inspect image",
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                message: "No such image: x:y".into(),
            },
        );
        assert!(not_found.is_not_found());
        assert!(!not_found.is_transient());
        let busy = DockerError::from_bollard(
            "create container",
            bollard::errors::Error::DockerResponseServerError {
                status_code: 500,
                message: "something broke".into(),
            },
        );
        assert!(busy.is_transient());
        let timeout =
            DockerError::from_bollard("info", bollard::errors::Error::RequestTimeoutError)
                .with_timeout(Duration::from_secs(60));
        assert!(timeout.is_transient());
        assert_eq!(
            timeout.to_string(),
            "the Docker daemon did not answer info within 60s"
        );
    }

    #[test]
    fn refused_credentials_and_absent_tags_make_a_push_failure_permanent() {
        let denied = DockerError::Push {
            reference: "r/x:1".into(),
            message: "unauthorized: authentication required".into(),
        };
        assert!(!denied.is_transient());
        let down = DockerError::Push {
            reference: "r/x:1".into(),
            message: "Get \"http://127.0.0.1:5000/v2/\": dial tcp: connect: connection refused"
                .into(),
        };
        assert!(down.is_transient());
        let absent = DockerError::Push {
            reference: "r/x:1".into(),
            message: "tag does not exist: r/x:1".into(),
        };
        assert!(!absent.is_transient());
    }

    #[test]
    fn an_image_the_registry_does_not_have_is_absent_and_permanent() {
        let unknown = DockerError::Push {
            reference: "127.0.0.1:5000/team/gone:1".into(),
            message: "manifest for 127.0.0.1:5000/team/gone:1 not found: manifest unknown: manifest unknown".into(),
        };
        assert!(unknown.is_absent_image());
        assert!(!unknown.is_transient());
        let not_found = DockerError::Api {
            operation: "pull",
            status: 404,
            message: "pull access denied or repository does not exist".into(),
        };
        assert!(not_found.is_absent_image() && !not_found.is_transient());
        let refused = DockerError::Push {
            reference: "127.0.0.1:5000/team/app:1".into(),
            message: "unauthorized: authentication required".into(),
        };
        assert!(!refused.is_absent_image());
        let unreachable = DockerError::Push {
            reference: "127.0.0.1:5000/team/app:1".into(),
            message: "Get \"http://127.0.0.1:5000/v2/\": dial tcp: connection refused".into(),
        };
        assert!(!unreachable.is_absent_image() && unreachable.is_transient());
    }

    #[test]
    fn cancellation_is_transient_and_timeouts_of_builds_are_not() {
        assert!(DockerError::Cancelled { operation: "build" }.is_transient());
        let timed_out = DockerError::BuildTimedOut {
            limit: Duration::from_secs(5),
            step: Some("Step 2/2 : RUN sleep 60".into()),
        };
        assert!(!timed_out.is_transient());
        assert_eq!(
            timed_out.to_string(),
            "the build was stopped after its time limit of 5s (at Step 2/2 : RUN sleep 60)"
        );
    }
}

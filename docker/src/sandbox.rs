//! The confinement of what Slipway runs for a job: the resource limits, capabilities, privileges,
//! user and root filesystem of throwaway containers (prebuild scripts, smoke tests), the limits the
//! build API applies to `RUN` steps, and the rule that the Docker socket is never mounted. Pure:
//! the create request and the build query are computed here and checked by unit tests.
//!
//! What each piece buys (dockerd 20.10, cgroup v1 or v2; checked by `tests/docker_engine.rs`):
//! - `memory` with `memory_swap` equal to it: a hard cap without swap; past it the kernel's OOM
//!   killer ends a process of the container and dockerd records `OOMKilled`.
//! - `pids_limit`: the pids cgroup; a fork past it fails (`Resource temporarily unavailable`).
//! - `nano_cpus`: a CFS quota (thousandths of a core here, `NanoCpus` = millicores × 10⁶).
//! - `cap_drop ALL` + `no-new-privileges`: the container's processes, root included, hold no
//!   capability (`CapEff` 0) and no set-uid binary can give one back.
//! - A read-only root with a `tmpfs` `/tmp` and `/run` (bounded, charged to the memory cap).
//! - The build API (classic builder) takes `memory`, `memswap`, `cpuperiod`, `cpuquota` and
//!   `networkmode` for its `RUN` step containers, but has no pids limit, no `cap_drop`, no
//!   `security_opt` and no read-only root: the daemon gives `RUN` steps its default capabilities.

use std::collections::HashMap;
use std::path::{Component, Path};

use super::DockerError;

/// The smallest memory cap dockerd accepts (6 MiB).
pub const MIN_MEMORY_BYTES: u64 = 6 * 1024 * 1024;

/// The Docker sockets no container may see, at their usual paths (`/var/run` is usually a link
/// to `/run`).
pub const DOCKER_SOCKETS: [&str; 2] = ["/var/run/docker.sock", "/run/docker.sock"];

/// The exit status of a process killed by SIGKILL (the OOM killer's signal) inside a container.
const KILLED: &str = "non-zero code: 137";

/// Resource limits of a throwaway container. Every field is required: nothing runs unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceLimits {
    /// The memory cap in bytes, swap included (no swap beyond it); at least [`MIN_MEMORY_BYTES`].
    pub memory_bytes: u64,
    /// The most processes and threads the container may hold at once (at least 1).
    pub pids: u32,
    /// CPU time in thousandths of a core (1000 = one core; at least 1).
    pub cpu_millicores: u32,
}

/// Resource limits of a build's `RUN` steps: what the build API can apply (no pids limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildLimits {
    /// The memory cap of each `RUN` step's container, swap included; at least [`MIN_MEMORY_BYTES`].
    pub memory_bytes: u64,
    /// CPU time of each `RUN` step in thousandths of a core (1000 = one core; at least 1).
    pub cpu_millicores: u32,
}

/// Whether a container's root filesystem may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootFs {
    /// Read-only, with a small `tmpfs` on `/tmp` and `/run` (bounded by the memory cap).
    ReadOnly,
    /// Writable (the image's own layers, thrown away with the container).
    Writable,
}

/// How a throwaway container is confined, besides its network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSandbox {
    /// Memory, processes and CPU.
    pub limits: ResourceLimits,
    /// The root filesystem.
    pub root: RootFs,
    /// `uid[:gid]` to run as; `None` runs as the image's `USER` (often root, though without
    /// capabilities).
    pub user: Option<String>,
}

impl ResourceLimits {
    /// Checks that every limit is set and within what the daemon takes.
    pub fn validate(&self) -> Result<(), DockerError> {
        check_memory(self.memory_bytes)?;
        if self.pids == 0 {
            return Err(invalid(
                "expected a pids limit of at least 1, found 0 (no limit is not allowed)".into(),
            ));
        }
        check_cpu(self.cpu_millicores)
    }
}

impl BuildLimits {
    /// Checks that every limit is set and within what the build API takes.
    pub fn validate(&self) -> Result<(), DockerError> {
        check_memory(self.memory_bytes)?;
        check_cpu(self.cpu_millicores)?;
        cpu_quota(self.cpu_millicores).map(drop)
    }
}

fn invalid(problem: String) -> DockerError {
    DockerError::InvalidSpec { problem }
}

fn check_memory(bytes: u64) -> Result<(), DockerError> {
    if bytes < MIN_MEMORY_BYTES || i64::try_from(bytes).is_err() {
        return Err(invalid(format!(
            "expected a memory cap of at least {MIN_MEMORY_BYTES} bytes (6 MiB, dockerd's minimum) \
             and at most {} bytes, found {bytes}",
            i64::MAX
        )));
    }
    Ok(())
}

fn check_cpu(millicores: u32) -> Result<(), DockerError> {
    if millicores == 0 {
        return Err(invalid(
            "expected a CPU limit of at least 1 millicore, found 0 (no limit is not allowed)"
                .into(),
        ));
    }
    Ok(())
}

/// The CFS period of build steps, in microseconds (dockerd's default).
pub(crate) const CPU_PERIOD_US: i32 = 100_000;

/// The CFS quota (µs per [`CPU_PERIOD_US`]) giving `millicores` thousandths of a core.
pub(crate) fn cpu_quota(millicores: u32) -> Result<i32, DockerError> {
    i32::try_from(u64::from(millicores) * 100).map_err(|_| {
        invalid(format!(
            "expected a build CPU limit of at most {} millicores, found {millicores}",
            i32::MAX / 100
        ))
    })
}

/// The `tmpfs` mounts of a read-only root: `/tmp` and `/run`, each at most the memory cap (the
/// pages are charged to the container's memory cgroup anyway), not set-uid, no devices.
fn tmpfs_mounts(limits: &ResourceLimits) -> HashMap<String, String> {
    let options = format!("rw,nosuid,nodev,size={}", limits.memory_bytes);
    HashMap::from([
        ("/tmp".to_owned(), options.clone()),
        ("/run".to_owned(), options),
    ])
}

/// The confinement part of a container's `HostConfig`: limits, no capabilities, no new
/// privileges, private IPC, the root filesystem. (Network and binds are the caller's.)
pub(crate) fn confine(
    sandbox: &ContainerSandbox,
    host: bollard::models::HostConfig,
) -> Result<bollard::models::HostConfig, DockerError> {
    sandbox.limits.validate()?;
    let limits = sandbox.limits;
    // Both fit: validate() checked the memory against i64, and pids and millicores are u32.
    let memory = i64::try_from(limits.memory_bytes).unwrap_or(i64::MAX);
    let read_only = sandbox.root == RootFs::ReadOnly;
    Ok(bollard::models::HostConfig {
        memory: Some(memory),
        memory_swap: Some(memory),
        oom_kill_disable: Some(false),
        pids_limit: Some(i64::from(limits.pids)),
        nano_cpus: Some(i64::from(limits.cpu_millicores) * 1_000_000),
        cap_drop: Some(vec!["ALL".to_owned()]),
        cap_add: Some(Vec::new()),
        security_opt: Some(vec!["no-new-privileges".to_owned()]),
        privileged: Some(false),
        ipc_mode: Some("private".to_owned()),
        readonly_rootfs: Some(read_only),
        tmpfs: read_only.then(|| tmpfs_mounts(&limits)),
        ..host
    })
}

/// Whether mounting `host_dir` would show a container the Docker socket: the socket itself or a
/// directory above it (`/`, `/run`, `/var`, `/var/run`), compared path component by path
/// component. A path with `..` is refused too (it could climb to one of them).
pub fn exposes_docker_socket(host_dir: &Path) -> bool {
    if host_dir
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return true;
    }
    let dir: Vec<Component<'_>> = host_dir
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect();
    DOCKER_SOCKETS.iter().any(|socket| {
        let socket: Vec<Component<'_>> = Path::new(socket).components().collect();
        socket.starts_with(&dir)
    })
}

/// The query parameters of a build that bollard 0.21 cannot send: `memory` and `memswap` (equal:
/// no swap), which the API takes as 64-bit numbers and bollard types as `i32` (2 GiB at most),
/// and `cgroupparent`, which bollard lacks.
pub(crate) fn build_memory_query(
    limits: &BuildLimits,
    cgroup_parent: Option<&str>,
) -> Result<String, DockerError> {
    limits.validate()?;
    let mut query = format!("memory={0}&memswap={0}", limits.memory_bytes);
    if let Some(parent) = cgroup_parent {
        check_cgroup_parent(parent)?;
        query.push_str("&cgroupparent=");
        query.push_str(parent);
    }
    Ok(query)
}

/// Checks a cgroup parent: an absolute cgroupfs path (`/slipway-build`) or a systemd slice
/// (`slipway-build.slice`), of letters, digits, `/`, `.`, `_` and `-` (so it needs no escaping in
/// a query), without `..`.
pub fn check_cgroup_parent(parent: &str) -> Result<(), DockerError> {
    let charset = parent
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b));
    let shape = parent.starts_with('/') || parent.ends_with(".slice");
    if parent.is_empty() || !charset || !shape || parent.split('/').any(|c| c == "..") {
        return Err(invalid(format!(
            "expected a cgroup parent such as /slipway-build or slipway-build.slice (letters, \
             digits, `/`, `.`, `_`, `-`; no `..`), found {parent:?}"
        )));
    }
    Ok(())
}

/// `uri` with `extra` (already encoded `k=v&k=v`) added to its query.
pub(crate) fn with_query(uri: &str, extra: &str) -> String {
    let separator = match uri.split_once('?') {
        Some((_, "")) => "",
        Some(_) => "&",
        None => "?",
    };
    format!("{uri}{separator}{extra}")
}

/// A build failure message, with the likely cause added when a step was killed (exit 137): the
/// classic builder does not report that a `RUN` step was OOM-killed, only its status.
pub(crate) fn explain_build_failure(message: String, limits: &BuildLimits) -> String {
    if message.trim_end().ends_with(KILLED) {
        format!(
            "{message} (killed: most likely the step went past the build's memory limit of {} MiB \
             = {} bytes)",
            limits.memory_bytes / (1024 * 1024),
            limits.memory_bytes
        )
    } else {
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::HostConfig;

    fn sandbox(root: RootFs) -> ContainerSandbox {
        ContainerSandbox {
            limits: ResourceLimits {
                memory_bytes: 64 * 1024 * 1024,
                pids: 32,
                cpu_millicores: 500,
            },
            root,
            user: None,
        }
    }

    #[test]
    fn a_confined_container_has_limits_no_capabilities_and_no_new_privileges() {
        let host = HostConfig {
            network_mode: Some("none".into()),
            ..HostConfig::default()
        };
        let host = confine(&sandbox(RootFs::ReadOnly), host).unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("none"), "kept");
        assert_eq!(host.memory, Some(64 * 1024 * 1024));
        assert_eq!(host.memory_swap, host.memory, "no swap beyond the cap");
        assert_eq!(host.oom_kill_disable, Some(false));
        assert_eq!(host.pids_limit, Some(32));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
        assert_eq!(host.cap_add, Some(vec![]));
        assert_eq!(
            host.security_opt,
            Some(vec!["no-new-privileges".to_owned()])
        );
        assert_eq!(host.privileged, Some(false));
        assert_eq!(host.readonly_rootfs, Some(true));
        let tmpfs = host.tmpfs.unwrap();
        assert_eq!(
            tmpfs.get("/tmp").map(String::as_str),
            Some("rw,nosuid,nodev,size=67108864")
        );
        assert!(tmpfs.contains_key("/run"));

        let writable = confine(&sandbox(RootFs::Writable), HostConfig::default()).unwrap();
        assert_eq!(writable.readonly_rootfs, Some(false));
        assert_eq!(writable.tmpfs, None);
        assert_eq!(writable.cap_drop, Some(vec!["ALL".to_owned()]));
    }

    #[test]
    fn unset_or_impossible_limits_are_refused_naming_the_limit() {
        let mut s = sandbox(RootFs::Writable);
        s.limits.memory_bytes = 1024;
        let err = confine(&s, HostConfig::default()).unwrap_err();
        assert!(err.to_string().contains("memory cap of at least"), "{err}");
        s.limits.memory_bytes = u64::MAX;
        assert!(confine(&s, HostConfig::default()).is_err());
        s = sandbox(RootFs::Writable);
        s.limits.pids = 0;
        let err = confine(&s, HostConfig::default()).unwrap_err();
        assert!(err.to_string().contains("pids limit"), "{err}");
        s = sandbox(RootFs::Writable);
        s.limits.cpu_millicores = 0;
        let err = confine(&s, HostConfig::default()).unwrap_err();
        assert!(err.to_string().contains("CPU limit"), "{err}");
        let build = BuildLimits {
            memory_bytes: 1 << 30,
            cpu_millicores: u32::MAX,
        };
        let err = build.validate().unwrap_err();
        assert!(err.to_string().contains("millicores"), "{err}");
    }

    #[test]
    fn the_docker_socket_and_the_directories_above_it_are_never_mountable() {
        for refused in [
            "/",
            "/run",
            "/var",
            "/var/run",
            "/var/run/",
            "/run/docker.sock",
            "/var/./run/docker.sock",
            "/srv/../run",
            "/work/x/../../var/run",
        ] {
            assert!(exposes_docker_socket(Path::new(refused)), "{refused}");
        }
        for allowed in [
            "/var/lib/slipway/build/job-1",
            "/tmp/ctx",
            "/run2",
            "/var/runner",
        ] {
            assert!(!exposes_docker_socket(Path::new(allowed)), "{allowed}");
        }
    }

    #[test]
    fn build_memory_goes_past_bollards_i32_and_is_added_to_the_query() {
        let limits = BuildLimits {
            memory_bytes: 8 << 30,
            cpu_millicores: 2000,
        };
        assert_eq!(
            build_memory_query(&limits, None).unwrap(),
            "memory=8589934592&memswap=8589934592"
        );
        assert_eq!(
            build_memory_query(&limits, Some("/slipway-build")).unwrap(),
            "memory=8589934592&memswap=8589934592&cgroupparent=/slipway-build"
        );
        check_cgroup_parent("slipway-build.slice").unwrap();
        for bad in ["", "slipway", "/a/../b", "/a&memory=0", "/a b", "/ä"] {
            let err = build_memory_query(&limits, Some(bad)).unwrap_err();
            assert!(err.to_string().contains("cgroup parent"), "{bad}: {err}");
        }
        assert_eq!(cpu_quota(2000).unwrap(), 200_000);
        assert_eq!(
            with_query("/v1.41/build?dockerfile=D", "memory=1"),
            "/v1.41/build?dockerfile=D&memory=1"
        );
        assert_eq!(with_query("/build", "memory=1"), "/build?memory=1");
        assert_eq!(with_query("/build?", "memory=1"), "/build?memory=1");
    }

    #[test]
    fn a_killed_step_names_the_memory_limit_and_other_failures_are_unchanged() {
        let limits = BuildLimits {
            memory_bytes: 64 * 1024 * 1024,
            cpu_millicores: 1000,
        };
        let killed = explain_build_failure(
            "The command '/bin/sh -c perl -e 1' returned a non-zero code: 137".into(),
            &limits,
        );
        assert!(killed.contains("memory limit of 64 MiB"), "{killed}");
        assert!(killed.contains("67108864 bytes"), "{killed}");
        let other = "The command '/bin/sh -c false' returned a non-zero code: 1".to_owned();
        assert_eq!(explain_build_failure(other.clone(), &limits), other);
    }
}

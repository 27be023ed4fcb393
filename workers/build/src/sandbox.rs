//! The build sandbox policy (pure): from an index entry and the worker's `[build]` settings,
//! whether the job may build at all (host networking only where the worker allows it; no `ADD`
//! of a URL, which the daemon fetches on the host's network, in a build without network) and how
//! each step is confined — the build's network and memory/CPU caps, and the prebuild's and smoke
//! test's container sandboxes; the worker's settings are checked at start; a confined step's end
//! (killed at its memory cap, past its time limit, a non-zero exit) becomes the reason on the job.

use std::time::Duration;

use slipway_common::index::{Entry, NetworkMode};
use slipway_docker::{
    BuildLimits, ContainerSandbox, Network, ResourceLimits, RootFs, RunOutcome, check_cgroup_parent,
};

use crate::plan::RemoteAdd;
use crate::worker::BuildSettings;

/// Why an entry is not built on this worker. Permanent: the same entry is refused again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The entry asks for the host network and the worker does not allow it.
    #[error(
        "the entry asks for `network: host` for its build steps, but this build worker does not \
         allow the host network ([build].allow_host_network = false): its build steps would reach \
         every service on the node's loopback (RabbitMQ, the registry). Build without network \
         (`network: none`, dependencies vendored or fetched by the prebuild script's checkout), or \
         have the entry built by a worker whose operators allow it"
    )]
    HostNetwork,
    /// A build without network has an `ADD` of a URL, which dockerd would fetch on the host's
    /// network.
    #[error(
        "line {line}: `ADD {written}` would be fetched by the Docker daemon itself, on the build \
         node's network, although this build has no network: it could reach every service on the \
         node's loopback (RabbitMQ, the registry). Fetch it in the prebuild script's checkout or \
         vendor it in the repository and `COPY` it (`ADD` with a variable is refused too: it may \
         expand to a URL)"
    )]
    RemoteAdd {
        /// The line of the `ADD`.
        line: u32,
        /// Its source, as written.
        written: String,
    },
    /// A build without network builds on an image whose `ONBUILD` trigger is an `ADD` of a URL.
    #[error(
        "the parent image {parent} has the trigger `ONBUILD ADD {written}`, which the Docker \
         daemon would fetch itself, on the build node's network, in this build without network: \
         build on a parent without it"
    )]
    RemoteAddInParent {
        /// The parent image, as the Dockerfile names it.
        parent: String,
        /// The trigger's source, as written.
        written: String,
    },
}

/// How one job's steps are confined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxPlan {
    /// The network of the build's `RUN` steps.
    pub build_network: Network,
    /// The memory and CPU caps of the build's `RUN` steps.
    pub build_limits: BuildLimits,
    /// The operators' cgroup the `RUN` steps run under (its pids limit bounds them), if any.
    pub build_cgroup_parent: Option<String>,
    /// The prebuild script's container: the container caps, read-only root, run as the owner of
    /// the checkout (so that what it writes there stays the worker's).
    pub prebuild: ContainerSandbox,
    /// The smoke test's container: the container caps, the image's user, a read-only root unless
    /// `[build].smoke_test_read_only_root` is off.
    pub smoke_test: ContainerSandbox,
}

/// The sandbox of `entry`'s job on a worker with `settings`; `checkout_owner` is the `uid:gid`
/// owning the checkout. Refused when the entry asks for what the worker does not allow.
pub fn plan(
    entry: &Entry,
    settings: &BuildSettings,
    checkout_owner: (u32, u32),
) -> Result<SandboxPlan, Refusal> {
    let build_network = match entry.network {
        NetworkMode::None => Network::None,
        NetworkMode::Host if settings.allow_host_network => Network::Host,
        NetworkMode::Host => return Err(Refusal::HostNetwork),
    };
    let limits = container_limits(settings);
    Ok(SandboxPlan {
        build_network,
        build_limits: build_limits(settings),
        build_cgroup_parent: (!settings.build_cgroup_parent.is_empty())
            .then(|| settings.build_cgroup_parent.clone()),
        prebuild: ContainerSandbox {
            limits,
            root: RootFs::ReadOnly,
            user: Some(format!("{}:{}", checkout_owner.0, checkout_owner.1)),
        },
        smoke_test: ContainerSandbox {
            limits,
            root: if settings.smoke_test_read_only_root {
                RootFs::ReadOnly
            } else {
                RootFs::Writable
            },
            user: None,
        },
    })
}

/// Refuses, for a build without network, the first `ADD` source dockerd would fetch itself (found
/// by [`crate::plan::remote_add_sources`]). With the host network (allowed by the worker) the
/// steps reach the same services anyway.
pub fn check_add_sources(network: Network, remote: &[RemoteAdd]) -> Result<(), Refusal> {
    match (network, remote.first()) {
        (Network::None, Some(first)) => Err(Refusal::RemoteAdd {
            line: first.line,
            written: first.source.clone(),
        }),
        _ => Ok(()),
    }
}

/// Refuses, for a build without network, a parent image (`parent`) whose `ONBUILD` triggers hold a
/// remote `ADD` source (`remote`, from [`crate::plan::remote_trigger_sources`]).
pub fn check_parent_triggers(
    network: Network,
    parent: &str,
    remote: &[String],
) -> Result<(), Refusal> {
    match (network, remote.first()) {
        (Network::None, Some(first)) => Err(Refusal::RemoteAddInParent {
            parent: parent.to_string(),
            written: first.clone(),
        }),
        _ => Ok(()),
    }
}

fn container_limits(settings: &BuildSettings) -> ResourceLimits {
    ResourceLimits {
        memory_bytes: settings.container_memory_bytes,
        pids: settings.container_pids,
        cpu_millicores: settings.container_cpu_millicores,
    }
}

fn build_limits(settings: &BuildSettings) -> BuildLimits {
    BuildLimits {
        memory_bytes: settings.build_memory_bytes,
        cpu_millicores: settings.build_cpu_millicores,
    }
}

/// Checks the sandbox settings when the worker starts: every limit set and within what dockerd
/// takes. The error names the keys.
pub fn check_settings(settings: &BuildSettings) -> Result<(), String> {
    container_limits(settings).validate().map_err(|e| {
        format!("[build].container_memory_bytes, container_pids, container_cpu_millicores: {e}")
    })?;
    build_limits(settings)
        .validate()
        .map_err(|e| format!("[build].build_memory_bytes, build_cpu_millicores: {e}"))?;
    if !settings.build_cgroup_parent.is_empty() {
        check_cgroup_parent(&settings.build_cgroup_parent)
            .map_err(|e| format!("[build].build_cgroup_parent: {e}"))?;
    }
    Ok(())
}

/// Why a confined step (`what`: "the prebuild script", "the smoke test"; `timeout` its limit)
/// failed, or `None` when it succeeded. An OOM kill is named as such, with the cap and its
/// setting, before any exit code.
pub fn step_failure(
    what: &str,
    outcome: &RunOutcome,
    sandbox: &ContainerSandbox,
    timeout: Duration,
) -> Option<String> {
    if outcome.oom_killed {
        let cap = sandbox.limits.memory_bytes;
        return Some(format!(
            "{what} was killed for going past its memory limit of {} MiB ({cap} bytes, \
             [build].container_memory_bytes); exit status {}",
            cap / (1024 * 1024),
            outcome.exit_code
        ));
    }
    if outcome.timed_out {
        return Some(format!("{what} ran past {} ms", timeout.as_millis()));
    }
    (outcome.exit_code != 0).then(|| format!("{what} exited with {}", outcome.exit_code))
}

/// A build failure with the setting to change when a step was killed at the memory cap.
pub fn explain_build_failure(error: String) -> String {
    if error.contains("memory limit of") {
        format!("{error}; the cap is [build].build_memory_bytes")
    } else {
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_common::index::test_support::sample_entry;
    use slipway_docker::OutputTail;

    fn entry(network: NetworkMode) -> Entry {
        Entry {
            network,
            ..sample_entry()
        }
    }

    #[test]
    fn host_networking_is_refused_unless_the_worker_allows_it() {
        let settings = BuildSettings::default();
        assert!(!settings.allow_host_network, "off by default");
        let refused = plan(&entry(NetworkMode::Host), &settings, (0, 0)).unwrap_err();
        assert_eq!(refused, Refusal::HostNetwork);
        let reason = refused.to_string();
        assert!(reason.contains("network: host"), "{reason}");
        assert!(reason.contains("[build].allow_host_network"), "{reason}");

        let none = plan(&entry(NetworkMode::None), &settings, (0, 0)).unwrap();
        assert_eq!(none.build_network, Network::None);

        let allowing = BuildSettings {
            allow_host_network: true,
            ..BuildSettings::default()
        };
        let host = plan(&entry(NetworkMode::Host), &allowing, (0, 0)).unwrap();
        assert_eq!(host.build_network, Network::Host);
        // The host network is for build steps only: the containers stay confined either way.
        assert_eq!(host.prebuild, none.prebuild);
        assert_eq!(host.smoke_test, none.smoke_test);
    }

    #[test]
    fn an_add_url_is_refused_without_network_and_allowed_with_the_host_network() {
        let remote = [RemoteAdd {
            line: 4,
            source: "http://127.0.0.1:5000/v2/_catalog".into(),
        }];
        let refused = check_add_sources(Network::None, &remote).unwrap_err();
        let reason = refused.to_string();
        assert!(
            reason.starts_with("line 4: `ADD http://127.0.0.1:5000/v2/_catalog`")
                && reason.contains("Docker daemon itself"),
            "{reason}"
        );
        check_add_sources(Network::Host, &remote).unwrap();
        check_add_sources(Network::None, &[]).unwrap();

        let url = ["http://127.0.0.1:5000/v2/_catalog".to_string()];
        let refused = check_parent_triggers(Network::None, "team/base:1", &url).unwrap_err();
        let reason = refused.to_string();
        assert!(
            reason.contains("team/base:1")
                && reason.contains("`ONBUILD ADD http://127.0.0.1:5000/v2/_catalog`"),
            "{reason}"
        );
        check_parent_triggers(Network::Host, "team/base:1", &url).unwrap();
        check_parent_triggers(Network::None, "team/base:1", &[]).unwrap();
    }

    #[test]
    fn steps_get_the_configured_caps_a_read_only_root_and_the_prebuild_runs_as_the_checkouts_owner()
    {
        let settings = BuildSettings {
            container_memory_bytes: 100 << 20,
            container_pids: 50,
            container_cpu_millicores: 250,
            build_memory_bytes: 3 << 30,
            build_cpu_millicores: 1500,
            ..BuildSettings::default()
        };
        let plan = plan(&entry(NetworkMode::None), &settings, (1000, 1001)).unwrap();
        let caps = ResourceLimits {
            memory_bytes: 100 << 20,
            pids: 50,
            cpu_millicores: 250,
        };
        assert_eq!(
            plan.prebuild,
            ContainerSandbox {
                limits: caps,
                root: RootFs::ReadOnly,
                user: Some("1000:1001".into()),
            }
        );
        assert_eq!(
            plan.smoke_test,
            ContainerSandbox {
                limits: caps,
                root: RootFs::ReadOnly,
                user: None,
            }
        );
        assert_eq!(
            plan.build_limits,
            BuildLimits {
                memory_bytes: 3 << 30,
                cpu_millicores: 1500,
            }
        );
        let writable = BuildSettings {
            smoke_test_read_only_root: false,
            ..settings
        };
        let plan = super::plan(&entry(NetworkMode::None), &writable, (0, 0)).unwrap();
        assert_eq!(plan.smoke_test.root, RootFs::Writable);
        assert_eq!(plan.prebuild.root, RootFs::ReadOnly);
    }

    #[test]
    fn the_defaults_bound_everything_and_unbounded_settings_stop_the_worker_naming_the_key() {
        let defaults = BuildSettings::default();
        check_settings(&defaults).unwrap();
        let no_pids = BuildSettings {
            container_pids: 0,
            ..BuildSettings::default()
        };
        let err = check_settings(&no_pids).unwrap_err();
        assert!(
            err.contains("container_pids") && err.contains("pids limit"),
            "{err}"
        );
        let tiny = BuildSettings {
            build_memory_bytes: 1024,
            ..BuildSettings::default()
        };
        let err = check_settings(&tiny).unwrap_err();
        assert!(
            err.contains("build_memory_bytes") && err.contains("found 1024"),
            "{err}"
        );
    }

    #[test]
    fn an_oom_kill_is_named_with_its_cap_before_the_exit_code() {
        let sandbox = plan(&entry(NetworkMode::None), &BuildSettings::default(), (0, 0))
            .unwrap()
            .smoke_test;
        let limit = Duration::from_secs(5);
        let outcome = |exit_code, timed_out, oom_killed| RunOutcome {
            exit_code,
            timed_out,
            oom_killed,
            output: OutputTail::default(),
        };
        let oom = step_failure(
            "the smoke test",
            &outcome(137, false, true),
            &sandbox,
            limit,
        )
        .unwrap();
        assert!(
            oom.contains("killed for going past its memory limit of 1024 MiB")
                && oom.contains("[build].container_memory_bytes"),
            "{oom}"
        );
        let slow = step_failure(
            "the smoke test",
            &outcome(137, true, false),
            &sandbox,
            limit,
        )
        .unwrap();
        assert_eq!(slow, "the smoke test ran past 5000 ms");
        let failed =
            step_failure("the smoke test", &outcome(3, false, false), &sandbox, limit).unwrap();
        assert_eq!(failed, "the smoke test exited with 3");
        assert_eq!(
            step_failure("the smoke test", &outcome(0, false, false), &sandbox, limit),
            None
        );
        let build = explain_build_failure(
            "the build failed at Step 2/2 : RUN x: … code: 137 (killed: most likely the step went \
             past the build's memory limit of 64 MiB = 67108864 bytes)"
                .into(),
        );
        assert!(
            build.ends_with("the cap is [build].build_memory_bytes"),
            "{build}"
        );
    }
}

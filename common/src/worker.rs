//! The worker types: each one's name, binary and metrics port, and the `worker` label of the core
//! metrics. Imports nothing, so every other module may use it.

/// Every worker type, present and planned: its name (queue, config file, binary) and its default
/// metrics port, so that all of them can run on one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkerKind {
    /// `slipway-lint`.
    Lint,
    /// `slipway-build`.
    Build,
    /// `slipway-scan`.
    Scan,
    /// `slipway-repo-tracker` (planned).
    RepoTracker,
    /// `slipway-rescan-scheduler` (planned).
    RescanScheduler,
    /// `slipway-notify` (planned).
    Notify,
}

impl WorkerKind {
    /// Every worker type.
    pub const ALL: [WorkerKind; 6] = [
        WorkerKind::Lint,
        WorkerKind::Build,
        WorkerKind::Scan,
        WorkerKind::RepoTracker,
        WorkerKind::RescanScheduler,
        WorkerKind::Notify,
    ];

    /// The name: queue `<namespace>.<name>`, `/etc/slipway/<name>.toml`, binary `slipway-<name>`,
    /// and the `worker` label of the core metrics.
    pub const fn name(self) -> &'static str {
        match self {
            WorkerKind::Lint => "lint",
            WorkerKind::Build => "build",
            WorkerKind::Scan => "scan",
            WorkerKind::RepoTracker => "repo-tracker",
            WorkerKind::RescanScheduler => "rescan-scheduler",
            WorkerKind::Notify => "notify",
        }
    }

    /// Its binary, `slipway-<name>`.
    pub const fn binary(self) -> &'static str {
        match self {
            WorkerKind::Lint => "slipway-lint",
            WorkerKind::Build => "slipway-build",
            WorkerKind::Scan => "slipway-scan",
            WorkerKind::RepoTracker => "slipway-repo-tracker",
            WorkerKind::RescanScheduler => "slipway-rescan-scheduler",
            WorkerKind::Notify => "slipway-notify",
        }
    }

    /// The default port of its `/metrics` endpoint (on 127.0.0.1): 9464 to 9469, one each.
    pub const fn metrics_port(self) -> u16 {
        match self {
            WorkerKind::Lint => 9464,
            WorkerKind::Build => 9465,
            WorkerKind::Scan => 9466,
            WorkerKind::RepoTracker => 9467,
            WorkerKind::RescanScheduler => 9468,
            WorkerKind::Notify => 9469,
        }
    }
}

/// The `worker` label of the core metrics and logs: a worker type, or a named stage of a topology
/// that tests and tools build. Never a runtime string, so the label's values are a closed set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkerLabel {
    /// One of Slipway's worker binaries.
    Worker(WorkerKind),
    /// A stage of a test or tool topology, named at compile time.
    Stage(&'static str),
}

impl WorkerLabel {
    /// The label value (also the stage's queue name in its topology).
    pub const fn as_str(self) -> &'static str {
        match self {
            WorkerLabel::Worker(kind) => kind.name(),
            WorkerLabel::Stage(name) => name,
        }
    }
}

impl From<WorkerKind> for WorkerLabel {
    fn from(kind: WorkerKind) -> Self {
        WorkerLabel::Worker(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workers_label_is_its_name_and_names_are_distinct() {
        let labels: std::collections::HashSet<&str> = WorkerKind::ALL
            .iter()
            .map(|&kind| WorkerLabel::from(kind).as_str())
            .collect();
        assert_eq!(labels.len(), WorkerKind::ALL.len());
        assert_eq!(
            WorkerLabel::from(WorkerKind::RepoTracker).as_str(),
            "repo-tracker"
        );
        assert_eq!(WorkerLabel::Stage("first").as_str(), "first");
    }
}

//! `DockerEngine::run_container`: run one command in a fresh container (a prebuild script, an image
//! test) with a time limit and a cancellation token, keep a bounded tail of its output, and always
//! remove the container afterwards.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::pin::pin;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, KillContainerOptionsBuilder,
    LogsOptionsBuilder, StartContainerOptions, WaitContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::sandbox::{ContainerSandbox, confine, exposes_docker_socket};
use super::{DockerEngine, DockerError, JOB_LABEL, Network, job_filter};

/// The longest output line kept; longer ones are cut and marked.
const MAX_LINE_BYTES: usize = 4096;

/// What the container runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunCommand {
    /// An argument vector run as is (`argv[0]` replaces the image's entrypoint).
    Exec(Vec<String>),
    /// A script run by `/bin/sh -c` (which replaces the image's entrypoint).
    Shell(String),
}

/// Whether a bind mount may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountAccess {
    /// Read-only.
    ReadOnly,
    /// Read-write.
    ReadWrite,
}

/// A host directory mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// The host directory (absolute).
    pub host_dir: PathBuf,
    /// Where it appears in the container (absolute).
    pub container_dir: String,
    /// Read-only or read-write.
    pub access: MountAccess,
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    /// The image (name:tag or id); it must be present locally.
    pub image: String,
    /// The command.
    pub command: RunCommand,
    /// The container's network.
    pub network: Network,
    /// The time limit; past it the container is killed.
    pub timeout: Duration,
    /// The working directory, when not the image's.
    pub workdir: Option<String>,
    /// Host directories to mount.
    pub binds: Vec<BindMount>,
    /// Labels of the container ([`JOB_LABEL`] is added from `job_label`).
    pub labels: BTreeMap<String, String>,
    /// Environment variables.
    pub env: BTreeMap<String, String>,
    /// The job id, the value of the [`JOB_LABEL`] label.
    pub job_label: String,
    /// How many of the last output lines to keep.
    pub tail_lines: usize,
    /// Limits, capabilities, user and root filesystem.
    pub sandbox: ContainerSandbox,
}

/// The end of a container's output (stdout and stderr interleaved).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputTail {
    /// The last lines, oldest first; each at most 4 KiB (longer ones end with ` […]`).
    pub lines: Vec<String>,
    /// How many lines there were in all.
    pub total_lines: u64,
}

impl OutputTail {
    /// Whether earlier lines were dropped.
    pub fn is_truncated(&self) -> bool {
        self.total_lines > self.lines.len() as u64
    }
}

/// How a container run ended. A non-zero exit is an outcome, not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// The exit code (137 when killed at the time limit).
    pub exit_code: i64,
    /// Whether the time limit was reached and the container killed.
    pub timed_out: bool,
    /// Whether the kernel killed a process of the container for going past its memory cap.
    pub oom_killed: bool,
    /// The end of its output.
    pub output: OutputTail,
}

impl RunOutcome {
    /// Whether the command ran to completion and exited 0.
    pub fn succeeded(&self) -> bool {
        self.exit_code == 0 && !self.timed_out && !self.oom_killed
    }
}

enum Stop {
    Exited(i64),
    TimedOut,
    Cancelled,
}

impl DockerEngine {
    /// Create a container for `spec` (labelled [`JOB_LABEL`]`=<job_label>` plus the spec's
    /// labels), start it, wait for it up to the time limit, read the tail of its output, and
    /// remove it, whatever happened. At the time limit or on `cancel` the container is killed
    /// first; a cancellation returns [`DockerError::Cancelled`].
    ///
    /// If this future is dropped mid-run the container stays: [`DockerEngine::remove_job_containers`]
    /// finds it by its label.
    pub async fn run_container(
        &self,
        spec: &RunSpec,
        cancel: &CancellationToken,
    ) -> Result<RunOutcome, DockerError> {
        let body = container_body(spec)?;
        refuse_resolved_docker_socket(spec)?;
        let created = self
            .call(
                "create container",
                self.docker
                    .create_container(None::<CreateContainerOptions>, body),
            )
            .await?;
        let id = created.id;
        let result = self.run_created(&id, spec, cancel).await;
        let removal = self.force_remove_container(&id).await;
        match (result, removal) {
            (Ok(outcome), Ok(_)) => Ok(outcome),
            (Ok(_), Err(e)) => Err(e),
            (Err(e), removal) => {
                if let Err(r) = removal {
                    tracing::warn!(container = %id, error = %r, "cannot remove a container");
                }
                Err(e)
            }
        }
    }

    async fn run_created(
        &self,
        id: &str,
        spec: &RunSpec,
        cancel: &CancellationToken,
    ) -> Result<RunOutcome, DockerError> {
        self.call(
            "start container",
            self.docker
                .start_container(id, None::<StartContainerOptions>),
        )
        .await?;
        let stop = {
            let client = self.client_with_timeout(spec.timeout);
            let options = WaitContainerOptionsBuilder::default()
                .condition("not-running")
                .build();
            let mut wait = pin!(client.wait_container(id, Some(options)));
            let mut deadline = pin!(tokio::time::sleep(spec.timeout));
            tokio::select! {
                biased;
                () = cancel.cancelled() => Stop::Cancelled,
                () = &mut deadline => Stop::TimedOut,
                item = wait.next() => Stop::Exited(exit_code(item)?),
            }
        };
        let (exit_code, timed_out) = match stop {
            Stop::Exited(code) => (code, false),
            Stop::TimedOut => (self.kill_and_wait(id).await?, true),
            Stop::Cancelled => {
                self.kill_and_wait(id).await?;
                return Err(DockerError::Cancelled {
                    operation: "container run",
                });
            }
        };
        let oom_killed = self.oom_killed(id).await?;
        let output = self.output_tail(id, spec.tail_lines).await?;
        Ok(RunOutcome {
            exit_code,
            timed_out,
            oom_killed,
            output,
        })
    }

    /// Kill the container (if still running) and return its exit code once it has stopped.
    async fn kill_and_wait(&self, id: &str) -> Result<i64, DockerError> {
        let options = KillContainerOptionsBuilder::default()
            .signal("SIGKILL")
            .build();
        match self
            .call(
                "kill container",
                self.docker.kill_container(id, Some(options)),
            )
            .await
        {
            Ok(()) => {}
            // 409: "is not running" (it ended on its own meanwhile).
            Err(DockerError::Api { status: 409, .. }) => {}
            Err(e) => return Err(e),
        }
        let options = WaitContainerOptionsBuilder::default()
            .condition("not-running")
            .build();
        let limit = self.settings.api_timeout;
        let mut wait = pin!(self.docker.wait_container(id, Some(options)));
        match tokio::time::timeout(limit, wait.next()).await {
            Ok(item) => exit_code(item),
            Err(_) => Err(DockerError::ApiTimeout {
                operation: "wait for a killed container",
                after: limit,
            }),
        }
    }

    /// Whether the stopped container `id` was OOM-killed (dockerd's `State.OOMKilled`).
    async fn oom_killed(&self, id: &str) -> Result<bool, DockerError> {
        let inspected = self
            .call(
                "inspect container",
                self.docker
                    .inspect_container(id, None::<InspectContainerOptions>),
            )
            .await?;
        Ok(inspected
            .state
            .and_then(|state| state.oom_killed)
            .unwrap_or(false))
    }

    /// Read the container's whole log, keeping the last `keep` lines.
    async fn output_tail(&self, id: &str, keep: usize) -> Result<OutputTail, DockerError> {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(false)
            .tail("all")
            .build();
        let mut tail = TailCollector::new(keep);
        let read = async {
            let mut logs = pin!(self.docker.logs(id, Some(options)));
            while let Some(item) = logs.next().await {
                match item {
                    Ok(LogOutput::StdErr { message }) => tail.push(1, &message),
                    Ok(
                        LogOutput::StdOut { message }
                        | LogOutput::Console { message }
                        | LogOutput::StdIn { message },
                    ) => tail.push(0, &message),
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        };
        self.call("container logs", read).await?;
        Ok(tail.finish())
    }
}

/// The exit code in a wait answer (bollard turns a non-zero one into an error).
fn exit_code(
    item: Option<Result<bollard::models::ContainerWaitResponse, bollard::errors::Error>>,
) -> Result<i64, DockerError> {
    match item {
        Some(Ok(response)) => Ok(response.status_code),
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
        Some(Err(e)) => Err(DockerError::from_bollard("wait container", e)),
        None => Err(DockerError::UnexpectedResponse {
            operation: "wait container",
            expected: "the container's exit status".into(),
            found: "an empty answer".into(),
        }),
    }
}

/// The create request of `spec`, validated.
fn container_body(spec: &RunSpec) -> Result<ContainerCreateBody, DockerError> {
    let invalid = |problem: String| DockerError::InvalidSpec { problem };
    job_filter(&spec.job_label)?;
    let (entrypoint, cmd) = match &spec.command {
        RunCommand::Exec(argv) => match argv.split_first() {
            Some((program, args)) if !program.is_empty() => (vec![program.clone()], args.to_vec()),
            _ => {
                return Err(invalid(format!(
                    "expected a command with a program name, found {argv:?}"
                )));
            }
        },
        RunCommand::Shell(script) => (
            vec!["/bin/sh".to_owned(), "-c".to_owned()],
            vec![script.clone()],
        ),
    };
    let mut binds = Vec::with_capacity(spec.binds.len());
    for bind in &spec.binds {
        let host = bind
            .host_dir
            .to_str()
            .filter(|h| bind.host_dir.is_absolute() && !h.contains(':') && !h.contains(','));
        let Some(host) = host else {
            return Err(invalid(format!(
                "expected an absolute UTF-8 host directory without `:` or `,` to mount, found {:?}",
                bind.host_dir
            )));
        };
        if !bind.container_dir.starts_with('/') || bind.container_dir.contains(':') {
            return Err(invalid(format!(
                "expected an absolute container directory without `:` to mount {host} on, found {:?}",
                bind.container_dir
            )));
        }
        if exposes_docker_socket(&bind.host_dir) {
            return Err(invalid(format!(
                "expected a host directory that does not hold the Docker socket ({}), found {host}: \
                 containers never see the daemon",
                super::DOCKER_SOCKETS.join(", ")
            )));
        }
        let mode = match bind.access {
            MountAccess::ReadOnly => "ro",
            MountAccess::ReadWrite => "rw",
        };
        binds.push(format!("{host}:{}:{mode}", bind.container_dir));
    }
    let mut env = Vec::with_capacity(spec.env.len());
    for (name, value) in &spec.env {
        if name.is_empty() || name.contains('=') || name.contains('\0') || value.contains('\0') {
            return Err(invalid(format!(
                "expected an environment variable name without `=` or NUL, found {name:?}"
            )));
        }
        env.push(format!("{name}={value}"));
    }
    let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    labels.insert(JOB_LABEL.to_owned(), spec.job_label.clone());
    Ok(ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: Some(entrypoint),
        cmd: Some(cmd),
        env: Some(env),
        working_dir: spec.workdir.clone(),
        labels: Some(labels),
        attach_stdin: Some(false),
        attach_stdout: Some(false),
        attach_stderr: Some(false),
        tty: Some(false),
        open_stdin: Some(false),
        user: spec.sandbox.user.clone(),
        host_config: Some(confine(
            &spec.sandbox,
            HostConfig {
                network_mode: Some(spec.network.mode().to_owned()),
                binds: Some(binds),
                auto_remove: Some(false),
                ..HostConfig::default()
            },
        )?),
        ..ContainerCreateBody::default()
    })
}

/// Refuses a bind whose host directory, with every symlink resolved, holds the Docker socket (a
/// work directory reached through a link to `/run`, say). A directory that does not exist is left
/// to the daemon, which refuses it.
fn refuse_resolved_docker_socket(spec: &RunSpec) -> Result<(), DockerError> {
    for bind in &spec.binds {
        if let Ok(real) = std::fs::canonicalize(&bind.host_dir)
            && exposes_docker_socket(&real)
        {
            return Err(DockerError::InvalidSpec {
                problem: format!(
                    "expected a host directory that does not hold the Docker socket, found {} \
                     (which resolves to {})",
                    bind.host_dir.display(),
                    real.display()
                ),
            });
        }
    }
    Ok(())
}

/// Keeps the last lines of a container's output, each bounded, and counts them all.
#[derive(Debug)]
struct TailCollector {
    keep: usize,
    lines: VecDeque<String>,
    total: u64,
    /// The unfinished line of stdout (0) and stderr (1).
    pending: [String; 2],
    /// Whether that line was cut at `MAX_LINE_BYTES`.
    cut: [bool; 2],
}

impl TailCollector {
    fn new(keep: usize) -> Self {
        Self {
            keep,
            lines: VecDeque::with_capacity(keep.min(1024)),
            total: 0,
            pending: [String::new(), String::new()],
            cut: [false, false],
        }
    }

    fn push(&mut self, stream: usize, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        let mut rest: &str = &text;
        while let Some(newline) = rest.find('\n') {
            self.append(stream, &rest[..newline]);
            self.end_line(stream);
            rest = &rest[newline + 1..];
        }
        self.append(stream, rest);
    }

    fn append(&mut self, stream: usize, text: &str) {
        let pending = &mut self.pending[stream];
        let room = MAX_LINE_BYTES.saturating_sub(pending.len());
        if text.len() <= room {
            pending.push_str(text);
        } else {
            let mut end = room;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            pending.push_str(&text[..end]);
            self.cut[stream] = true;
        }
    }

    fn end_line(&mut self, stream: usize) {
        let mut line = std::mem::take(&mut self.pending[stream]);
        if line.ends_with('\r') {
            line.pop();
        }
        if std::mem::take(&mut self.cut[stream]) {
            line.push_str(" […]");
        }
        self.total += 1;
        if self.keep > 0 {
            if self.lines.len() == self.keep {
                self.lines.pop_front();
            }
            self.lines.push_back(line);
        }
    }

    fn finish(mut self) -> OutputTail {
        for stream in 0..2 {
            if !self.pending[stream].is_empty() || self.cut[stream] {
                self.end_line(stream);
            }
        }
        OutputTail {
            lines: self.lines.into(),
            total_lines: self.total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(command: RunCommand) -> RunSpec {
        RunSpec {
            image: "slipway/debian:bookworm".into(),
            command,
            network: Network::None,
            timeout: Duration::from_secs(5),
            workdir: Some("/ctx".into()),
            binds: vec![BindMount {
                host_dir: "/tmp/ctx".into(),
                container_dir: "/ctx".into(),
                access: MountAccess::ReadWrite,
            }],
            labels: BTreeMap::from([("a".into(), "b".into())]),
            env: BTreeMap::from([("X".into(), "1=2".into())]),
            job_label: "job-1".into(),
            tail_lines: 10,
            sandbox: ContainerSandbox {
                limits: crate::ResourceLimits {
                    memory_bytes: 64 * 1024 * 1024,
                    pids: 64,
                    cpu_millicores: 1000,
                },
                root: crate::RootFs::ReadOnly,
                user: Some("1000:1000".into()),
            },
        }
    }

    #[test]
    fn the_create_request_carries_command_mounts_env_labels_and_network() {
        let body = container_body(&spec(RunCommand::Shell("echo hi".into()))).unwrap();
        assert_eq!(body.entrypoint, Some(vec!["/bin/sh".into(), "-c".into()]));
        assert_eq!(body.cmd, Some(vec!["echo hi".into()]));
        assert_eq!(body.env, Some(vec!["X=1=2".into()]));
        let labels = body.labels.unwrap();
        assert_eq!(labels.get(JOB_LABEL).map(String::as_str), Some("job-1"));
        assert_eq!(labels.get("a").map(String::as_str), Some("b"));
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        assert_eq!(host.binds, Some(vec!["/tmp/ctx:/ctx:rw".into()]));
        // The sandbox: limits, no capabilities, no new privileges, read-only root, the user.
        assert_eq!(host.memory, Some(64 * 1024 * 1024));
        assert_eq!(host.pids_limit, Some(64));
        assert_eq!(host.cap_drop, Some(vec!["ALL".into()]));
        assert_eq!(host.security_opt, Some(vec!["no-new-privileges".into()]));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(body.user.as_deref(), Some("1000:1000"));
        let exec = container_body(&spec(RunCommand::Exec(vec![
            "/bin/echo".into(),
            "a b".into(),
        ])))
        .unwrap();
        assert_eq!(exec.entrypoint, Some(vec!["/bin/echo".into()]));
        assert_eq!(exec.cmd, Some(vec!["a b".into()]));
    }

    #[test]
    fn invalid_specs_are_refused_before_the_daemon() {
        let mut s = spec(RunCommand::Exec(vec![]));
        assert!(matches!(
            container_body(&s),
            Err(DockerError::InvalidSpec { .. })
        ));
        s.command = RunCommand::Shell("true".into());
        s.binds[0].host_dir = "relative".into();
        let err = container_body(&s).unwrap_err();
        assert!(err.to_string().contains("absolute"), "{err}");
        for socket_dir in ["/var/run", "/run/docker.sock", "/"] {
            s.binds[0].host_dir = socket_dir.into();
            let err = container_body(&s).unwrap_err();
            assert!(err.to_string().contains("Docker socket"), "{err}");
        }
        s.binds.clear();
        s.sandbox.limits.pids = 0;
        let err = container_body(&s).unwrap_err();
        assert!(err.to_string().contains("pids"), "{err}");
        s.sandbox.limits.pids = 64;
        s.env = BTreeMap::from([("A=B".into(), "c".into())]);
        assert!(container_body(&s).is_err());
        s.env.clear();
        s.job_label = String::new();
        assert!(container_body(&s).is_err());
    }

    #[test]
    fn the_tail_keeps_the_last_lines_and_counts_them_all() {
        let mut tail = TailCollector::new(2);
        tail.push(0, b"one\ntwo\r\nthr");
        tail.push(1, b"err\n");
        tail.push(0, b"ee\nfour");
        let out = tail.finish();
        assert_eq!(out.lines, ["three", "four"]);
        assert_eq!(out.total_lines, 5);
        assert!(out.is_truncated());
    }

    #[test]
    fn long_lines_are_cut_at_a_char_boundary() {
        let mut tail = TailCollector::new(3);
        let long = "é".repeat(MAX_LINE_BYTES);
        tail.push(0, long.as_bytes());
        tail.push(0, b"more\nnext\n");
        let out = tail.finish();
        assert_eq!(out.total_lines, 2);
        assert!(out.lines[0].len() <= MAX_LINE_BYTES + " […]".len());
        assert!(out.lines[0].ends_with(" […]"));
        assert_eq!(out.lines[1], "next");
    }
}

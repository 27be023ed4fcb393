//! `slipway demo`: the whole pipeline on this machine, from nothing to mails. It makes a sample
//! index in a local git repository (a parent image, two children, one entry with a lint error),
//! starts an SMTP sink and one process of every worker on a namespace of its own, lets the
//! repo-tracker build the index (parents first), shows the jobs moving through the stages, and
//! ends with a summary: each image's digest, lint findings and scan counts, and the mails the
//! sink caught. Then it stops every process it started and deletes its namespace and files —
//! or, with `--keep-running`, leaves the fleet up until Ctrl-C.

mod fleet;
mod processes;
mod sample;
mod setup;
mod sink;
mod summary;

use std::io::{self, IsTerminal as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::json;
use slipway_broker::definitions::ROLES;
use slipway_broker::history::{HistoryQuery, HistoryStep};
use slipway_broker::inspect::{delete_namespace, queue_counts};
use slipway_broker::leadership::declare_lease_queue_of;
use slipway_broker::logs::{LogStreamSettings, declare_log_stream};
use slipway_broker::reports::{ReportStreamSettings, declare_report_stream};
use slipway_broker::streams::ReadFrom;
use slipway_broker::{BrokerConnection, BrokerSettings, Topology, TopologyMode};
use slipway_common::terminal::escape;
use slipway_notify::config::NotifySettings;
use slipway_notify::policy::Policies;
use tokio::signal::unix::{SignalKind, signal};

use crate::history;
use crate::watch::View;
use fleet::{FleetPlan, WORKERS};
use processes::Processes;
use sink::CaughtMail;
use summary::Summary;

/// The Python that has aiosmtpd: the venv `deploy/dev-env.sh` makes.
const DEFAULT_PYTHON: &str = "/opt/slipway-py-venv/bin/python";
/// How long each process may take to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// How long the SMTP sink may take to listen.
const SINK_START: Duration = Duration::from_secs(20);
/// Exit status after Ctrl-C or SIGTERM (128 + SIGINT), as shells report an interrupted command.
const INTERRUPTED: u8 = 130;

/// Output formats of `slipway demo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoFormat {
    /// Progress and the summary as text on standard output.
    Text,
    /// Progress as text on standard error; the summary as one JSON object (one line) on
    /// standard output.
    Json,
}

/// Arguments of `slipway demo`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Needs what `bash deploy/dev-env.sh` sets up (RabbitMQ, Docker, the registry on 127.0.0.1:5000, \
the slipway/debian:bookworm base image, aiosmtpd in /opt/slipway-py-venv) and the worker \
binaries beside this `slipway` (`cargo build --release --bins`) or in PATH. Everything it makes \
lives in <tmp>/slipway-demo-<namespace> and in the broker namespace; both are deleted when it \
stops, and every process it started is stopped (killed by the kernel if `slipway demo` itself is \
killed). The images it built stay in the registry and in Docker, for you to run.

Exit status: 0 the pipeline did what the sample means (three images built and scanned, the \
broken entry stopped at lint, every mail sent); 1 it did not (the summary says what), or it timed \
out; 2 it could not start (a missing binary or service, the namespace in use); 130 interrupted \
(Ctrl-C or SIGTERM), after stopping everything.")]
pub struct DemoArgs {
    /// Leave the fleet running after the summary, for you to submit to; Ctrl-C stops it.
    #[arg(long)]
    keep_running: bool,
    /// The broker namespace of the demo's queues and streams (deleted when it stops; refused if
    /// another fleet consumes from it).
    #[arg(long, default_value = "demo", value_parser = namespace_name)]
    namespace: String,
    /// Where the worker binaries are (default: beside this `slipway`, else PATH).
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// A Python interpreter with aiosmtpd, which runs the SMTP sink.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_PYTHON)]
    python: PathBuf,
    /// Give up if the sample has not gone through the pipeline after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(10..=86_400))]
    timeout: u64,
    /// Output format of the summary.
    #[arg(long, short = 'f', value_enum, default_value_t = DemoFormat::Text)]
    format: DemoFormat,
    /// Run each worker as its own least-privilege broker user (`<PREFIX><worker>`, the password
    /// in DIR/<worker>, as `slipway definitions --credentials DIR` made them), declaring nothing
    /// (`broker.topology = "verify"`): a check of a least-privilege setup from end to end. The
    /// demo itself declares and deletes its namespace with the command line's account, which
    /// must be allowed to.
    #[arg(long, value_name = "DIR")]
    credentials: Option<PathBuf>,
    /// With --credentials: the users' name prefix.
    #[arg(
        long,
        value_name = "PREFIX",
        default_value = "slipway-",
        requires = "credentials"
    )]
    user_prefix: String,
}

fn namespace_name(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(text.to_owned())
    } else {
        Err("a namespace is 1 to 64 letters, digits, '-', '_' or '.'".to_owned())
    }
}

/// Where the progress lines go: standard output for text, standard error for JSON.
struct Progress {
    stderr: bool,
}

impl Progress {
    fn say(&self, line: &str) {
        let line = format!("slipway demo: {line}\n");
        // A closed pipe must not stop the demo before it has cleaned up.
        let _ = if self.stderr {
            io::stderr().write_all(line.as_bytes())
        } else {
            io::stdout().write_all(line.as_bytes())
        };
    }
}

/// How the pipeline part of the run ended.
enum Ending {
    /// Every image ended and every mail is recorded.
    Complete,
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// The deadline passed.
    TimedOut,
    /// It cannot finish: a process died, the index was rejected, the history failed.
    Failed(String),
}

/// Run `slipway demo` with the CLI's broker settings and registry.
pub async fn run(
    broker: &BrokerSettings,
    registry_url: &str,
    args: &DemoArgs,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let progress = Progress {
        stderr: args.format == DemoFormat::Json,
    };
    let mut interrupt = Interrupt::new()?;
    let binaries = find_binaries(args.bin_dir.as_deref())?;
    check_python(&args.python)?;
    let registry_host = slipway_common::image::registry_host(registry_url).to_owned();

    let mut settings = broker.clone();
    settings.namespace = args.namespace.clone();
    // The demo declares and deletes its own namespace.
    settings.topology = TopologyMode::Declare;
    let connection = BrokerConnection::connect(&settings, "slipway-demo")
        .await
        .context("connect to the broker (is it running? `bash deploy/dev-env.sh` starts it)")?;
    let topology = Topology::pipeline(&settings);
    clear_namespace(&connection, &settings, &topology, &progress).await?;

    let (work, leftover) = setup::WorkDir::create(&args.namespace)?;
    if leftover {
        progress.say("removed the files an earlier demo left behind");
    }
    progress.say(&format!(
        "work directory {} (logs, configuration, mail; removed when the demo stops)",
        work.path().display()
    ));
    let (_, index_url) = setup::repositories(work.path(), &registry_host)?;
    progress.say(&format!(
        "sample index: {} entries in {index_url} (a parent, two children, one with a lint error)",
        sample::ENTRIES.len()
    ));

    // The queues and streams exist before any worker starts, and the demo reads the history from
    // its first event, so it misses none.
    topology
        .declare(&connection.channel().await?)
        .await
        .context("declare the demo's queues")?;
    if args.credentials.is_some() {
        // Workers that only verify need what they would otherwise declare themselves.
        declare_worker_resources(&connection, &settings)
            .await
            .context("declare the demo's streams and lease queues")?;
    }
    let mut events = history::open(
        &connection,
        &settings.namespace,
        HistoryQuery::all(),
        ReadFrom::First,
        true,
    )
    .await
    .context("read the demo's history stream")?;

    let mut processes = Processes::default();
    let inputs = RunInputs {
        settings: &settings,
        binaries: &binaries,
        args,
        work: work.path(),
        index_url: &index_url,
        registry_url,
        progress: &progress,
    };
    let outcome = start_and_watch(&mut processes, &mut events, &mut interrupt, &inputs).await;
    events.close().await;
    let (ending, summary, mails) = match outcome {
        Ok(result) => result,
        Err(error) => {
            stop(&mut processes, &connection, &settings, &progress).await;
            return Err(error);
        }
    };

    let elapsed = started.elapsed();
    let as_expected = matches!(ending, Ending::Complete) && summary.as_expected();
    match args.format {
        DemoFormat::Text => print!(
            "{}",
            render_text(&summary, &mails, &ending, elapsed, &registry_host)
        ),
        DemoFormat::Json => println!(
            "{}",
            render_json(&summary, &mails, &ending, elapsed, &processes, &settings)
        ),
    }
    let _ = io::stdout().flush();

    let mut interrupted = matches!(ending, Ending::Interrupted);
    if args.keep_running && matches!(ending, Ending::Complete) {
        progress.say(&keep_running_hints(&settings, &processes, work.path()));
        interrupted = keep_running(&mut processes, &mut interrupt, &progress).await;
    }
    stop(&mut processes, &connection, &settings, &progress).await;
    drop(work);
    Ok(if interrupted {
        ExitCode::from(INTERRUPTED)
    } else if as_expected {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What the fleet is started from.
struct RunInputs<'a> {
    /// The broker, in the demo's namespace.
    settings: &'a BrokerSettings,
    /// The directory of the worker binaries.
    binaries: &'a Path,
    args: &'a DemoArgs,
    /// The work directory.
    work: &'a Path,
    /// `file://` URL of the sample index repository.
    index_url: &'a str,
    /// The registry the build worker pushes to.
    registry_url: &'a str,
    progress: &'a Progress,
}

/// Start the sink and the workers, then follow the history until the sample has gone through
/// (or cannot): what ended it, the summary, and the mails the sink caught.
async fn start_and_watch(
    processes: &mut Processes,
    events: &mut slipway_broker::history::HistoryEvents,
    interrupt: &mut Interrupt,
    inputs: &RunInputs<'_>,
) -> anyhow::Result<(Ending, Summary, Vec<CaughtMail>)> {
    let RunInputs {
        settings,
        binaries,
        args,
        work,
        index_url,
        registry_url,
        progress,
    } = *inputs;
    let maildir = work.join("mail");
    let smtp_port = free_port()?;
    let started = processes
        .start(
            "smtp-sink",
            sink::command(&args.python, smtp_port, &maildir),
            &work.join("logs/smtp-sink.log"),
        )
        .context("start the SMTP sink")?;
    progress.say(&format!(
        "SMTP sink (aiosmtpd) on 127.0.0.1:{smtp_port}, pid {}",
        started.pid()
    ));
    wait_for_port(processes, smtp_port, SINK_START)?;

    let plan = FleetPlan {
        namespace: settings.namespace.clone(),
        work_dir: work.to_owned(),
        index_url: index_url.to_owned(),
        registry_url: registry_url.to_owned(),
        smtp_port,
    };
    for worker in WORKERS {
        let config = work.join("config").join(format!("{worker}.toml"));
        std::fs::write(&config, fleet::config_file(&plan, worker, free_port()?))
            .with_context(|| format!("write {}", config.display()))?;
        let name = fleet::binary_name(worker);
        let mut command = Command::new(binaries.join(&name));
        command.arg("--config").arg(&config);
        hermetic_environment(&mut command, settings);
        if let Some(dir) = &args.credentials {
            least_privilege_environment(&mut command, worker, dir, &args.user_prefix);
        }
        let log = work.join("logs").join(format!("{worker}.log"));
        let started = processes
            .start(&name, command, &log)
            .with_context(|| format!("start {name}"))?;
        progress.say(&format!("started {name}, pid {}", started.pid()));
    }
    progress.say("the jobs, as the repo-tracker starts them:");

    let terminal = !progress.stderr && io::stdout().is_terminal();
    let mut view = View::new(terminal, progress.stderr);
    let mut summary = Summary::new(Policies::new(&NotifySettings::default()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let ending = loop {
        if summary.complete() {
            break Ending::Complete;
        }
        if let Some(reason) = summary.fatal() {
            break Ending::Failed(reason.to_owned());
        }
        tokio::select! {
            step = events.next() => match step {
                Some(Ok(HistoryStep::Event(event))) => {
                    summary.apply(&event);
                    view.apply(&event)?;
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => break Ending::Failed(format!("reading the history: {error}")),
                None => break Ending::Failed("the history stream ended".to_owned()),
            },
            _ = tick.tick() => {
                view.redraw()?;
                if let Some(reason) = exited(processes) {
                    break Ending::Failed(reason);
                }
            }
            _ = tokio::time::sleep_until(deadline) => break Ending::TimedOut,
            _ = interrupt.next() => break Ending::Interrupted,
        }
    };
    // The sink stores a message before it answers 250, and the worker records the mail after
    // that answer: every recorded mail is in the Maildir already.
    let mails = sink::caught(&maildir);
    Ok((ending, summary, mails))
}

/// The first started process found dead, as a sentence with the end of its log.
fn exited(processes: &mut Processes) -> Option<String> {
    let (started, status) = processes.exited()?;
    Some(format!(
        "{} (pid {}) exited ({status}); the end of its log {}:\n{}",
        started.name,
        started.pid(),
        started.log.display(),
        log_tail(&started.log, 15)
    ))
}

/// The last `lines` lines of a log, indented.
fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let start = text.len().saturating_sub(64 * 1024);
    let text = String::from_utf8_lossy(&text[start..]);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|line| format!("    {}", escape(line)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Only the broker URL (and its login) reach a worker by environment; the caller's other
/// `SLIPWAY_*` variables are not passed on.
fn hermetic_environment(command: &mut Command, settings: &BrokerSettings) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SLIPWAY_") {
            command.env_remove(name);
        }
    }
    command.env("SLIPWAY_BROKER__URL", settings.url.expose());
    if let Some(username) = &settings.username {
        command.env("SLIPWAY_BROKER__USERNAME", username);
    }
    if let Some(file) = &settings.password_file {
        command.env("SLIPWAY_BROKER__PASSWORD_FILE", file);
    }
}

/// `worker` logs in as its own user (`<prefix><worker>`, password in `<dir>/<worker>`) and
/// declares nothing.
fn least_privilege_environment(command: &mut Command, worker: &str, dir: &Path, prefix: &str) {
    command
        .env("SLIPWAY_BROKER__USERNAME", format!("{prefix}{worker}"))
        .env("SLIPWAY_BROKER__PASSWORD_FILE", dir.join(worker))
        .env("SLIPWAY_BROKER__TOPOLOGY", "verify");
}

/// The streams and lease queues the workers declare themselves when they may (with the
/// workers' default retention, as the demo's worker configurations leave it).
async fn declare_worker_resources(
    connection: &BrokerConnection,
    settings: &BrokerSettings,
) -> anyhow::Result<()> {
    declare_log_stream(connection, settings, &LogStreamSettings::default()).await?;
    declare_report_stream(connection, settings, &ReportStreamSettings::default()).await?;
    for role in ROLES.iter().filter(|role| role.elects) {
        declare_lease_queue_of(connection, settings, role.name).await?;
    }
    Ok(())
}

/// Refuse a namespace another fleet consumes from; delete what an earlier demo left in it.
async fn clear_namespace(
    connection: &BrokerConnection,
    settings: &BrokerSettings,
    topology: &Topology,
    progress: &Progress,
) -> anyhow::Result<()> {
    let counts = queue_counts(connection, topology).await?;
    if let Some(busy) = counts.iter().find(|count| count.consumers > 0) {
        bail!(
            "namespace {:?} is in use: queue {} has {} consumer(s). Stop that fleet, or give the \
             demo another --namespace",
            settings.namespace,
            busy.queue,
            busy.consumers
        );
    }
    if !counts.is_empty() {
        delete_namespace(connection, settings).await?;
        progress.say(&format!(
            "deleted what an earlier run left in namespace {:?}",
            settings.namespace
        ));
    }
    Ok(())
}

/// Stop every process, then delete the namespace; say what was done.
async fn stop(
    processes: &mut Processes,
    connection: &BrokerConnection,
    settings: &BrokerSettings,
    progress: &Progress,
) {
    let count = processes.list().len();
    let killed = processes.stop_all(STOP_GRACE);
    let deleted = delete_namespace(connection, settings).await;
    connection.close().await;
    let mut said = format!("stopped {count} processes");
    if killed > 0 {
        said.push_str(&format!(
            " ({killed} killed after {} s)",
            STOP_GRACE.as_secs()
        ));
    }
    match deleted {
        Ok(()) => said.push_str(&format!(
            ", deleted namespace {:?} and the work directory",
            settings.namespace
        )),
        Err(error) => said.push_str(&format!(
            "; could not delete namespace {:?}: {error}",
            settings.namespace
        )),
    }
    progress.say(&said);
}

/// Wait for Ctrl-C or SIGTERM while the fleet runs; a process that dies is reported. Returns
/// whether it was interrupted (always, unless the wait itself failed).
async fn keep_running(
    processes: &mut Processes,
    interrupt: &mut Interrupt,
    progress: &Progress,
) -> bool {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = interrupt.next() => return true,
            _ = tick.tick() => {
                if let Some(reason) = exited(processes) {
                    progress.say(&format!("{reason}\nstopping the demo"));
                    return false;
                }
            }
        }
    }
}

fn keep_running_hints(settings: &BrokerSettings, processes: &Processes, work: &Path) -> String {
    let namespace = &settings.namespace;
    let mut text = format!(
        "the fleet keeps running in namespace {namespace:?}; Ctrl-C stops it and deletes the \
         namespace and {}.\n",
        work.display()
    );
    for started in processes.list() {
        text.push_str(&format!(
            "  {:<26} pid {:<8} log {}\n",
            started.name,
            started.pid(),
            started.log.display()
        ));
    }
    text.push_str(&format!(
        "try, in another shell:\n  \
         SLIPWAY_BROKER__NAMESPACE={namespace} slipway status\n  \
         SLIPWAY_BROKER__NAMESPACE={namespace} slipway why demo/web:1\n  \
         SLIPWAY_BROKER__NAMESPACE={namespace} slipway submit your/index.d   # file:// URLs too\n  \
         git -C {apps} commit --allow-empty -m rebuild   # the tracker rebuilds within {poll} s\n",
        apps = work.join("apps").display(),
        poll = fleet::POLL_INTERVAL_MS / 1000,
    ));
    text
}

/// Ctrl-C and SIGTERM, either of which ends the demo.
struct Interrupt {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Interrupt {
    fn new() -> anyhow::Result<Self> {
        Ok(Interrupt {
            terminate: signal(SignalKind::terminate()).context("listen for SIGTERM")?,
            interrupt: signal(SignalKind::interrupt()).context("listen for SIGINT")?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}

/// The directory holding every `slipway-<worker>`: `--bin-dir`, else this program's own, else the
/// first of PATH's that has them all.
fn find_binaries(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let has_all = |dir: &Path| {
        WORKERS
            .iter()
            .all(|worker| dir.join(fleet::binary_name(worker)).is_file())
    };
    let missing = |dir: &Path| -> Vec<String> {
        WORKERS
            .iter()
            .map(|worker| fleet::binary_name(worker))
            .filter(|name| !dir.join(name).is_file())
            .collect()
    };
    if let Some(dir) = given {
        if has_all(dir) {
            return Ok(dir.to_owned());
        }
        bail!("{} lacks {}", dir.display(), missing(dir).join(", "));
    }
    let own = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_owned));
    let path = std::env::var_os("PATH").unwrap_or_default();
    let candidates = own.iter().cloned().chain(std::env::split_paths(&path));
    for dir in candidates {
        if has_all(&dir) {
            return Ok(dir);
        }
    }
    let beside = own.map_or_else(String::new, |dir| {
        format!(" ({} lacks {})", dir.display(), missing(&dir).join(", "))
    });
    bail!(
        "the worker binaries are neither beside this slipway{beside} nor in PATH: build them \
         with `cargo build --release --bins`, or give --bin-dir"
    )
}

/// `python` runs and has aiosmtpd.
fn check_python(python: &Path) -> anyhow::Result<()> {
    let output = Command::new(python)
        .args(["-c", "import aiosmtpd"])
        .output();
    match output {
        Ok(output) if output.status.success() => Ok(()),
        Ok(_) => bail!(
            "{} has no aiosmtpd: `bash deploy/dev-env.sh` installs it, or give --python",
            python.display()
        ),
        Err(error) => bail!(
            "cannot run {} ({error}): `bash deploy/dev-env.sh` makes that venv, or give --python",
            python.display()
        ),
    }
}

/// A port on 127.0.0.1 free right now.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Wait until something listens on 127.0.0.1:`port`, failing if a process died or `limit`
/// passed.
fn wait_for_port(processes: &mut Processes, port: u16, limit: Duration) -> anyhow::Result<()> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + limit;
    loop {
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Some(reason) = exited(processes) {
            bail!("{reason}");
        }
        if Instant::now() >= deadline {
            bail!("nothing listens on 127.0.0.1:{port} after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The summary as text.
fn render_text(
    summary: &Summary,
    mails: &[CaughtMail],
    ending: &Ending,
    elapsed: Duration,
    registry_host: &str,
) -> String {
    let mut out = String::from("\nImages\n");
    for image in summary.images() {
        let digest = image.digest.as_deref().unwrap_or("-");
        out.push_str(&format!(
            "  {:<16} {:<12} {}\n",
            image.image, image.stage, digest
        ));
        if let Some(error) = &image.error {
            out.push_str(&format!("      error: {}\n", escape(error)));
        }
        for finding in &image.lint_findings {
            out.push_str(&format!(
                "      Dockerfile:{} {} {:?}: {}\n",
                finding.line,
                finding.code,
                finding.level,
                escape(&finding.message)
            ));
        }
        if !image.scan_counts.is_empty() {
            let counts: Vec<String> = image
                .scan_counts
                .iter()
                .map(|(name, count)| format!("{name} {count}"))
                .collect();
            out.push_str(&format!("      scan: {}\n", counts.join(", ")));
        }
    }
    out.push_str(&format!(
        "\nMails caught by the SMTP sink ({})\n",
        mails.len()
    ));
    for mail in mails {
        out.push_str(&format!(
            "  {:<20} {}\n",
            escape(&mail.to),
            escape(&mail.subject)
        ));
    }
    let seconds = elapsed.as_secs_f64();
    let verdict = match ending {
        Ending::Complete if summary.as_expected() => format!(
            "\nThe sample went through the pipeline in {seconds:.0} s: three images built, \
             scanned and pushed to {registry_host}, the broken entry stopped at lint, and every \
             mail sent.\nRun one: docker run --rm {registry_host}/demo/web:1\n"
        ),
        Ending::Complete => format!(
            "\nThe pipeline ended in {seconds:.0} s, but not as the sample means it to (see the \
             images above).\n"
        ),
        Ending::Interrupted => format!("\nInterrupted after {seconds:.0} s.\n"),
        Ending::TimedOut => format!(
            "\nTimed out after {seconds:.0} s: {} image(s) unfinished, {} mail(s) not sent \
             yet.\n",
            summary.unfinished().len(),
            summary.mails_pending()
        ),
        Ending::Failed(reason) => format!("\nStopped after {seconds:.0} s: {reason}\n"),
    };
    out.push_str(&verdict);
    out
}

/// The summary as one JSON object.
fn render_json(
    summary: &Summary,
    mails: &[CaughtMail],
    ending: &Ending,
    elapsed: Duration,
    processes: &Processes,
    settings: &BrokerSettings,
) -> serde_json::Value {
    let (outcome, reason) = match ending {
        Ending::Complete => ("complete", None),
        Ending::Interrupted => ("interrupted", None),
        Ending::TimedOut => ("timed-out", None),
        Ending::Failed(reason) => ("failed", Some(reason.clone())),
    };
    let processes: Vec<serde_json::Value> = processes
        .list()
        .iter()
        .map(|started| json!({"name": started.name, "pid": started.pid(), "log": started.log}))
        .collect();
    json!({
        "outcome": outcome,
        "reason": reason,
        "as_expected": matches!(ending, Ending::Complete) && summary.as_expected(),
        "namespace": settings.namespace,
        "elapsed_ms": u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        "images": summary.images(),
        "mails": mails,
        "mails_recorded": summary.recorded_mails(),
        "processes": processes,
    })
}

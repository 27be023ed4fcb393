//! `slipway demo` end to end, as the README's first command runs it: the real RabbitMQ, Docker,
//! registry and aiosmtpd, and the worker binaries this build made (beside `slipway`). First a
//! `kill -9` of the demo: the kernel stops its children. Then a Ctrl-C while the jobs run (after
//! clearing what the killed run left): every process it started is gone, and so are its files and its
//! broker namespace. Then the whole run with `--keep-running`: three images built and scanned,
//! the broken entry stopped at lint with its finding, one mail per event, caught by the SMTP
//! sink; then Ctrl-C, and again nothing is left. One test, so the two runs do not build the same
//! images at once.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use slipway_tests::{AMQP_URL, ensure_docker, ensure_rabbitmq, rabbitmqctl};

/// The whole sample takes about 10 s here; a cold, busy CI machine gets room.
const RUN_DEADLINE: Duration = Duration::from_secs(300);
const STOP_DEADLINE: Duration = Duration::from_secs(60);

/// A `slipway demo` process, killed (SIGKILL) if the test fails while it runs: its children
/// die with it (`PR_SET_PDEATHSIG`), so a failed test leaves no fleet behind.
struct DemoProcess(Child);

impl std::ops::Deref for DemoProcess {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for DemoProcess {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for DemoProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `slipway demo ARGS` on namespace `namespace`, its output piped, the workers from this build.
fn start_demo(namespace: &str, args: &[&str]) -> DemoProcess {
    start_demo_on(AMQP_URL, namespace, args)
}

/// [`start_demo`] on the broker (and vhost) of `url`.
fn start_demo_on(url: &str, namespace: &str, args: &[&str]) -> DemoProcess {
    let slipway = Path::new(env!("CARGO_BIN_EXE_slipway"));
    let bin_dir = slipway.parent().expect("the binaries' directory");
    Command::new(slipway)
        .arg("demo")
        .args([
            "--namespace",
            namespace,
            "--format",
            "json",
            "--timeout",
            "280",
        ])
        .arg("--bin-dir")
        .arg(bin_dir)
        .args(args)
        .env("SLIPWAY_BROKER__URL", url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map(DemoProcess)
        .expect("start slipway demo")
}

/// Start the demo and read its progress until every process is started: the progress channel,
/// the lines so far, and the 7 pids (the sink and six workers).
fn start_until_running(
    namespace: &str,
    args: &[&str],
) -> (DemoProcess, mpsc::Receiver<String>, Vec<String>, Vec<u32>) {
    let mut demo = start_demo(namespace, args);
    let stderr = lines(demo.stderr.take().expect("stderr"));
    let mut seen = Vec::new();
    line_where(&stderr, &mut seen, Instant::now() + RUN_DEADLINE, |line| {
        line.contains("started slipway-repo-tracker")
    });
    let pids: Vec<u32> = seen
        .iter()
        .filter_map(|line| line.rsplit_once("pid ")?.1.trim().parse().ok())
        .collect();
    assert_eq!(pids.len(), 7, "the sink and six workers: {seen:?}");
    assert!(pids.iter().all(|&pid| running(pid)));
    (demo, stderr, seen, pids)
}

/// Each line of `stream`, as it comes, through a channel.
fn lines(stream: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// The next line from `lines` that `wanted` accepts, every line read kept in `seen`; a panic
/// after `deadline`.
fn line_where(
    lines: &mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    deadline: Instant,
    wanted: impl Fn(&str) -> bool,
) -> String {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                seen.push(line.clone());
                if wanted(&line) {
                    return line;
                }
            }
            Err(_) => panic!(
                "no such line before the deadline; lines so far:\n{}",
                seen.join("\n")
            ),
        }
    }
}

fn interrupt(child: &Child) {
    let pid = libc::pid_t::try_from(child.id()).expect("a pid");
    // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our unreaped child.
    unsafe {
        libc::kill(pid, libc::SIGINT);
    }
}

/// Wait for `child` to exit within `limit`: its exit code.
fn exit_code(child: &mut Child, limit: Duration) -> i32 {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for slipway demo") {
            return status.code().expect("an exit code, not a signal");
        }
        assert!(
            Instant::now() < deadline,
            "slipway demo still runs after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn running(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The broker's queues and streams named `<namespace>.…`.
fn queues_of(namespace: &str) -> Vec<String> {
    let listed = rabbitmqctl(&["list_queues", "--quiet", "--no-table-headers", "name"])
        .expect("rabbitmqctl list_queues");
    listed
        .lines()
        .map(str::trim)
        .filter(|name| name.starts_with(&format!("{namespace}.")))
        .map(str::to_owned)
        .collect()
}

/// After the demo exited: none of `pids` runs, `work_dir` is gone, the namespace is empty.
fn assert_nothing_left(pids: &[u32], work_dir: &Path, namespace: &str) {
    let alive: Vec<u32> = pids.iter().copied().filter(|&pid| running(pid)).collect();
    assert!(alive.is_empty(), "processes left running: {alive:?}");
    assert!(!work_dir.exists(), "{} left behind", work_dir.display());
    let queues = queues_of(namespace);
    assert!(queues.is_empty(), "queues left behind: {queues:?}");
}

fn work_dir(namespace: &str) -> PathBuf {
    std::env::temp_dir().join(format!("slipway-demo-{namespace}"))
}

#[test]
fn the_demo_runs_the_sample_through_every_stage_and_ctrl_c_leaves_nothing_behind() {
    ensure_rabbitmq();
    ensure_docker();
    let namespace = format!("test.demo.{}", std::process::id());

    // 0. kill -9 of the demo: the kernel stops what it started (PR_SET_PDEATHSIG); only its
    // namespace and files stay, for the next run to clear.
    let (mut demo, _, _, pids) = start_until_running(&namespace, &[]);
    demo.kill().expect("kill -9");
    demo.wait().expect("reap");
    let deadline = Instant::now() + STOP_DEADLINE;
    while pids.iter().any(|&pid| running(pid)) {
        assert!(Instant::now() < deadline, "children outlived a killed demo");
        std::thread::sleep(Duration::from_millis(50));
    }

    // 1. Ctrl-C while the jobs run; the leftovers of the killed run are cleared first.
    let (mut demo, _, seen, pids) = start_until_running(&namespace, &[]);
    for leftover in [
        "deleted what an earlier run left",
        "removed the files an earlier demo left",
    ] {
        assert!(
            seen.iter().any(|line| line.contains(leftover)),
            "{leftover:?} in {seen:?}"
        );
    }
    interrupt(&demo);
    assert_eq!(
        exit_code(&mut demo, STOP_DEADLINE),
        130,
        "Ctrl-C's exit status"
    );
    let mut summary = String::new();
    demo.stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut summary)
        .expect("read the summary");
    let summary: Value = serde_json::from_str(&summary).expect("a JSON summary");
    assert_eq!(summary["outcome"], "interrupted");
    assert_nothing_left(&pids, &work_dir(&namespace), &namespace);

    // 2. The whole run, the fleet kept running, then Ctrl-C.
    let mut demo = start_demo(&namespace, &["--keep-running"]);
    let stdout = lines(demo.stdout.take().expect("stdout"));
    let stderr = lines(demo.stderr.take().expect("stderr"));
    let mut output = Vec::new();
    let line = line_where(&stdout, &mut output, Instant::now() + RUN_DEADLINE, |_| {
        true
    });
    let progress: Vec<String> = stderr.try_iter().collect();
    let summary: Value = serde_json::from_str(&line).expect("a JSON summary");
    assert_eq!(
        summary["outcome"],
        "complete",
        "{summary:#}\n{}",
        progress.join("\n")
    );
    assert_eq!(summary["as_expected"], true, "{summary:#}");

    let images = summary["images"].as_array().expect("images");
    let image = |name: &str| {
        images
            .iter()
            .find(|image| image["image"] == name)
            .unwrap_or_else(|| panic!("{name} in {images:?}"))
    };
    let base_digest = image("demo/base:1")["digest"]
        .as_str()
        .expect("base's digest");
    assert!(base_digest.starts_with("sha256:"), "{base_digest}");
    let mut parent_ids = BTreeSet::new();
    for name in ["demo/base:1", "demo/web:1", "demo/worker:1"] {
        let image = image(name);
        assert_eq!(image["stage"], "scanned", "{image}");
        assert!(
            image["scan_counts"]["packages"].as_u64() > Some(50),
            "{image}"
        );
        let parents = image["parent_digests"].as_object().expect("parent digests");
        if name == "demo/base:1" {
            assert_eq!(
                parents.keys().collect::<Vec<_>>(),
                ["slipway/debian:bookworm"]
            );
        } else {
            assert_eq!(
                parents.keys().collect::<Vec<_>>(),
                ["127.0.0.1:5000/demo/base:1"],
                "{name} is built on the demo's base"
            );
            parent_ids.extend(parents.values().filter_map(Value::as_str));
        }
    }
    assert_eq!(
        parent_ids.len(),
        1,
        "both children on the same base: {parent_ids:?}"
    );
    let broken = image("demo/broken:1");
    assert_eq!(broken["stage"], "lint failed");
    assert!(broken["digest"].is_null(), "never built: {broken}");
    let findings = broken["lint_findings"].as_array().expect("findings");
    assert!(
        findings
            .iter()
            .any(|f| f["code"] == "DL3020" && f["line"] == 3 && f["level"] == "error"),
        "{findings:?}"
    );

    // One mail per event, each caught by the sink once, each recorded in the history.
    let mails = summary["mails"].as_array().expect("mails");
    let subjects: BTreeSet<&str> = mails.iter().filter_map(|m| m["subject"].as_str()).collect();
    let expected: BTreeSet<String> = [
        "[slipway] demo/broken:1: lint failed (index change)".to_owned(),
        "[slipway] demo/base:1: built (index change)".to_owned(),
        "[slipway] demo/web:1: built (index change)".to_owned(),
        "[slipway] demo/worker:1: built (index change)".to_owned(),
        "[slipway] 127.0.0.1:5000/demo/base:1: scanned (index change)".to_owned(),
        "[slipway] 127.0.0.1:5000/demo/web:1: scanned (index change)".to_owned(),
        "[slipway] 127.0.0.1:5000/demo/worker:1: scanned (index change)".to_owned(),
    ]
    .into();
    assert_eq!(mails.len(), 7, "{mails:?}");
    assert_eq!(subjects, expected.iter().map(String::as_str).collect());
    assert!(
        mails.iter().all(|m| m["to"] == "team@demo.example"),
        "{mails:?}"
    );
    let caught: BTreeSet<&str> = mails
        .iter()
        .filter_map(|m| m["message_id"].as_str())
        .collect();
    let recorded: BTreeSet<&str> = summary["mails_recorded"]
        .as_array()
        .expect("recorded mails")
        .iter()
        .filter_map(|m| m["message_id"].as_str())
        .collect();
    assert_eq!(caught.len(), 7, "no Message-ID twice");
    assert_eq!(
        caught, recorded,
        "the sink caught exactly the mails recorded as sent"
    );

    // The jobs were shown moving through the stages.
    for stage in ["requested", "linted", "built", "scanned", "lint failed"] {
        assert!(
            progress
                .iter()
                .any(|line| line.contains(&format!("  {stage}: "))),
            "no {stage:?} line in:\n{}",
            progress.join("\n")
        );
    }

    // Still running, as asked; then Ctrl-C.
    let pids: Vec<u32> = summary["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .filter_map(|p| p["pid"].as_u64().and_then(|pid| u32::try_from(pid).ok()))
        .collect();
    assert_eq!(pids.len(), 7);
    let mut progress = progress;
    // The line may have come before the summary was read, or may still be on its way.
    let keeps_running = |line: &str| line.contains("the fleet keeps running");
    if !progress.iter().any(|line| keeps_running(line)) {
        line_where(
            &stderr,
            &mut progress,
            Instant::now() + STOP_DEADLINE,
            keeps_running,
        );
    }
    assert!(
        pids.iter().all(|&pid| running(pid)),
        "the fleet keeps running"
    );
    interrupt(&demo);
    assert_eq!(exit_code(&mut demo, STOP_DEADLINE), 130);
    assert_nothing_left(&pids, &work_dir(&namespace), &namespace);

    // 3. The same sample with every worker as its own least-privilege user (`slipway
    // definitions`, imported into a vhost of its own), declaring nothing: each stage's grants
    // suffice for its real work (publish its kinds, append its stream, retry, lead, read).
    let deployment = slipway_tests::vhost::LeastPrivilegeVhost::import(
        "demo",
        &slipway_broker::BrokerSettings::default(),
    );
    let credentials = deployment.credentials_dir().to_string_lossy().into_owned();
    let mut demo = start_demo_on(
        deployment.admin.url.expose(),
        &deployment.admin.namespace,
        &[
            "--credentials",
            &credentials,
            "--user-prefix",
            &deployment.user_prefix,
        ],
    );
    // Who is connected to the vhost, watched while the demo runs.
    let running_demo = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = std::thread::spawn({
        let running_demo = std::sync::Arc::clone(&running_demo);
        let vhost = deployment.vhost.clone();
        move || {
            let mut users = BTreeSet::new();
            while running_demo.load(std::sync::atomic::Ordering::SeqCst) {
                let listed = rabbitmqctl(&[
                    "list_connections",
                    "-q",
                    "--no-table-headers",
                    "user",
                    "vhost",
                ])
                .unwrap_or_default();
                users.extend(listed.lines().filter_map(|line| {
                    let (user, on) = line.split_once('\t')?;
                    (on.trim() == vhost).then(|| user.trim().to_owned())
                }));
            }
            users
        }
    });
    let mut output = String::new();
    demo.stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut output)
        .expect("read the summary");
    let mut progress = String::new();
    demo.stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut progress)
        .expect("read the progress");
    let code = exit_code(&mut demo, STOP_DEADLINE);
    running_demo.store(false, std::sync::atomic::Ordering::SeqCst);
    let users = watcher.join().expect("the connection watcher");
    for worker in [
        "lint",
        "build",
        "scan",
        "repo-tracker",
        "rescan-scheduler",
        "notify",
    ] {
        assert!(
            users.contains(&deployment.user(worker)),
            "{worker} never connected as its own user: {users:?}"
        );
    }
    let summary: Value = serde_json::from_str(&output)
        .unwrap_or_else(|e| panic!("a JSON summary ({e}): {output}\n{progress}"));
    assert_eq!(summary["outcome"], "complete", "{summary:#}\n{progress}");
    assert_eq!(summary["as_expected"], true, "{summary:#}");
    assert_eq!(
        summary["mails"].as_array().map(Vec::len),
        Some(7),
        "{summary:#}"
    );
    assert_eq!(code, 0, "{progress}");
}

//! Every worker binary as systemd runs it (`Type=notify`, `WatchdogSec=`), against the real
//! RabbitMQ: the binaries this build made (beside `slipway`), each given a stand-in for systemd's
//! notify socket (`NOTIFY_SOCKET`, a unix datagram socket the test reads) and a 3 s watchdog.
//!
//! Each must send `READY=1` (with a `STATUS=`) once it consumes, `WATCHDOG=1` at least every 3 s,
//! answer `GET /healthz` with 200 and its broker sessions, export `slipway_broker_connected 1`,
//! and on SIGTERM send `STOPPING=1`, exit 0 and log no error. With a wrong broker password a
//! worker must say so as an error naming the cause, report 503 on `/healthz` and 0 on the gauge,
//! never send `READY=1`, and try again only after its own, slower pause.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use slipway_common::worker::WorkerKind;
use slipway_tests::fleet::Instance;
use slipway_tests::git::LocalRepo;
use slipway_tests::systemd::NotifySocket;
use slipway_tests::{TempDir, ensure_rabbitmq, test_settings};

const START_DEADLINE: Duration = Duration::from_secs(60);
const STOP_DEADLINE: Duration = Duration::from_secs(45);
/// `WatchdogSec=3`: the workers beat at a quarter of it, at most once a second.
const WATCHDOG: Duration = Duration::from_secs(3);

/// The worker binary `binary` of this build, beside `slipway`.
fn worker_binary(kind: WorkerKind) -> PathBuf {
    let slipway = Path::new(env!("CARGO_BIN_EXE_slipway"));
    let path = slipway.with_file_name(kind.binary());
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --bins` (cargo test --workspace builds it)",
        path.display()
    );
    path
}

/// The broker sessions each worker holds (the components of its `/healthz`).
fn sessions_of(kind: WorkerKind) -> Vec<&'static str> {
    let mut sessions = match kind {
        WorkerKind::Lint | WorkerKind::Build | WorkerKind::Scan => vec!["consumer"],
        WorkerKind::RepoTracker | WorkerKind::RescanScheduler => vec!["election", "history"],
        WorkerKind::Notify => vec!["consumer", "election", "history"],
    };
    sessions.sort_unstable();
    sessions
}

struct Running {
    kind: WorkerKind,
    instance: Instance,
    socket: NotifySocket,
    log: PathBuf,
}

fn error_lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains("\"level\":\"ERROR\""))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_worker_speaks_the_notify_protocol_answers_healthz_and_stops_without_an_error() {
    ensure_rabbitmq();
    let settings = test_settings("service");
    // The namespace exists before its workers start, as in production: six processes declaring
    // the same new queues at once make RabbitMQ refuse some declarations for a moment (404 "home
    // node … is down or inaccessible", seen once in 15 runs), which lapin logs as an error.
    declare_topology(&settings);
    run_the_fleet(&settings, &|_| Vec::new());
    delete_namespace(&settings);
}

/// The same fleet in a least-privilege vhost made by `slipway definitions`: each worker logs in
/// as its own user, with `broker.topology = "verify"` (it declares nothing), and must still get
/// ready, consume, lead and follow the history, and stop, with no error.
#[test]
fn every_worker_runs_as_its_own_least_privilege_user() {
    ensure_rabbitmq();
    // The workers run with the default retry delays: the definitions must name the same retry
    // queues (with other delays each worker stops at "queue … does not exist").
    let deployment = slipway_tests::vhost::LeastPrivilegeVhost::import(
        "service",
        &slipway_broker::BrokerSettings::default(),
    );
    run_the_fleet(&deployment.admin, &|kind| deployment.env_for(kind.name()));
}

/// Start every worker with `extra(kind)` on top of its settings, then check readiness, health,
/// metrics, watchdog beats and a clean stop with no error logged.
fn run_the_fleet(
    settings: &slipway_broker::BrokerSettings,
    extra: &dyn Fn(WorkerKind) -> Vec<(&'static str, String)>,
) {
    let work = TempDir::new("worker-service");
    let index = LocalRepo::new("service-index");
    index.commit(&[("index.d/team.yaml", "Projects: []\n")], "an empty index");
    index.git(&["branch", "-M", "main"]);
    let mut fleet: Vec<Running> = WorkerKind::ALL
        .into_iter()
        .map(|kind| {
            let socket = NotifySocket::bind();
            let log = work.path().join(format!("{}.log", kind.name()));
            // The SMTP port is closed: notify only has to start.
            let mut env = slipway_tests::fleet::worker_settings(
                kind,
                work.path(),
                &index.url(),
                slipway_tests::free_port(),
            );
            env.extend(extra(kind));
            env.push(("NOTIFY_SOCKET", socket.path().display().to_string()));
            env.push(("WATCHDOG_USEC", WATCHDOG.as_micros().to_string()));
            let instance =
                Instance::start_logging(worker_binary(kind), &settings.namespace, &env, Some(&log));
            Running {
                kind,
                instance,
                socket,
                log,
            }
        })
        .collect();

    for worker in &mut fleet {
        let name = worker.kind.name();
        let ready = worker
            .socket
            .wait_for_line("READY=1", START_DEADLINE)
            .unwrap_or_else(|e| panic!("{name}: {e}\nits errors: {:?}", error_lines(&worker.log)));
        let status = ready
            .lines()
            .find_map(|line| line.strip_prefix("STATUS="))
            .unwrap_or_else(|| panic!("{name}: READY=1 without a STATUS=: {ready:?}"));
        assert!(!status.starts_with("waiting"), "{name}: {status}");

        let (code, body) = worker.instance.get("/healthz").expect("/healthz answers");
        assert_eq!(code, 200, "{name}: {body}");
        let health: Value = serde_json::from_str(&body).expect("/healthz is JSON");
        assert_eq!(health["healthy"], true, "{name}: {body}");
        let mut sessions: Vec<&str> = health["components"]
            .as_array()
            .expect("components")
            .iter()
            .map(|component| {
                assert_eq!(component["up"], true, "{name}: {body}");
                component["name"].as_str().expect("a name")
            })
            .collect();
        sessions.sort_unstable();
        assert_eq!(sessions, sessions_of(worker.kind), "{name}: {body}");
        assert_eq!(
            worker.instance.metric("slipway_broker_connected"),
            Some(1.0),
            "{name}"
        );
        let metrics =
            slipway_tests::scrape_metrics(worker.instance.metrics_port).unwrap_or_default();
        let info = format!(
            "slipway_build_info{{commit=\"{}\",program=\"{}\",version=\"{}\"}} 1",
            slipway_common::telemetry::COMMIT,
            worker.kind.binary(),
            env!("CARGO_PKG_VERSION")
        );
        assert!(metrics.contains(&info), "{name}: no {info}");
        let rss = worker
            .instance
            .metric("process_resident_memory_bytes")
            .unwrap_or_else(|| panic!("{name}: no process_resident_memory_bytes"));
        assert!(
            worker.instance.metric("process_open_fds").is_some(),
            "{name}"
        );
        // The figure the operations guide quotes (a debug build here: release is smaller).
        println!("{name}: ready, resident memory {:.1} MB", rss / 1e6);
        if worker.kind == WorkerKind::Build {
            let free = worker
                .instance
                .metric("slipway_build_docker_root_free_bytes");
            assert!(
                free.is_some_and(|free| free > 0.0),
                "{name}: measured at start: {free:?}"
            );
            assert!(
                worker
                    .instance
                    .metric("slipway_build_docker_root_free_inodes")
                    .is_some()
            );
        }
    }

    // Three beats each, never further apart than the watchdog interval.
    let watched = Instant::now();
    for worker in &mut fleet {
        let name = worker.kind.name();
        let beats = loop {
            let beats = worker.socket.times_of("WATCHDOG=1");
            if beats.len() >= 3 {
                break beats;
            }
            assert!(
                watched.elapsed() < WATCHDOG * 5,
                "{name}: {} watchdog beats in {:?}: {:?}",
                beats.len(),
                watched.elapsed(),
                worker.socket.messages()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        for pair in beats.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(gap < WATCHDOG, "{name}: {gap:?} between two beats");
        }
    }

    for mut worker in fleet {
        let name = worker.kind.name();
        let code = worker.instance.terminate(STOP_DEADLINE);
        assert_eq!(code, Some(0), "{name}: SIGTERM is a clean stop");
        worker
            .socket
            .wait_for_line("STOPPING=1", Duration::from_secs(1))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let errors = error_lines(&worker.log);
        assert!(errors.is_empty(), "{name} logged errors: {errors:#?}");
    }
}

#[test]
fn a_refused_login_is_an_error_that_names_it_with_a_slow_retry_and_never_ready() {
    ensure_rabbitmq();
    let settings = test_settings("service-refused");
    let work = TempDir::new("worker-service-refused");
    let password = work.path().join("password");
    std::fs::write(&password, "not-the-password").expect("password file");
    let mut socket = NotifySocket::bind();
    let log = work.path().join("scan.log");
    let instance = Instance::start_logging(
        worker_binary(WorkerKind::Scan),
        &settings.namespace,
        &[
            ("NOTIFY_SOCKET", socket.path().display().to_string()),
            ("SLIPWAY_BROKER__USERNAME", "guest".to_owned()),
            (
                "SLIPWAY_BROKER__PASSWORD_FILE",
                password.display().to_string(),
            ),
        ],
        Some(&log),
    );
    let started = Instant::now();
    // lapin logs the broker's close as an error of its own; ours is the one that says what to do.
    let refusals = || -> Vec<String> {
        error_lines(&log)
            .into_iter()
            .filter(|line| line.contains("refused the login"))
            .collect()
    };
    let refusal = loop {
        if let Some(line) = refusals().into_iter().next() {
            break line;
        }
        assert!(
            started.elapsed() < START_DEADLINE,
            "no error logged; the log: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        refusal.contains("ACCESS_REFUSED") && refusal.contains("broker.password_file"),
        "{refusal}"
    );
    assert!(refusal.contains("\"retry_in_ms\":10000"), "{refusal}");

    let (code, body) = instance.get("/healthz").expect("/healthz answers");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("the broker refused the login"), "{body}");
    assert_eq!(instance.metric("slipway_broker_connected"), Some(0.0));

    // Not a hot loop: the next attempt waits its 10 s (3 s of watching is enough to tell).
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(refusals().len(), 1, "retried within 3 s");
    assert_eq!(
        instance.terminate(STOP_DEADLINE),
        Some(0),
        "a stop while waiting is clean"
    );
    let messages = socket.messages();
    assert!(
        !messages.iter().any(|m| m.lines().any(|l| l == "READY=1")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("STATUS=waiting: consumer: the broker refused the login")),
        "{messages:?}"
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Declare the pipeline's topology in the test's namespace.
fn declare_topology(settings: &slipway_broker::BrokerSettings) {
    runtime().block_on(async {
        let connection = slipway_broker::BrokerConnection::connect(settings, "service-setup")
            .await
            .expect("connect for setup");
        let channel = connection.channel().await.expect("a channel");
        slipway_broker::Topology::pipeline(settings)
            .declare(&channel)
            .await
            .expect("declare the topology");
        let _ = channel.close(200, "declared".into()).await;
        connection.close().await;
    });
}

/// Delete every queue, stream and exchange the workers declared in the test's namespace.
fn delete_namespace(settings: &slipway_broker::BrokerSettings) {
    runtime()
        .block_on(slipway_tests::fleet::delete_namespace(settings))
        .expect("delete the test's namespace");
}

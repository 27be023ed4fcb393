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

/// What a worker needs besides the broker to start and idle: local directories, a closed SMTP
/// port, an index repository with no entries.
fn settings_of(kind: WorkerKind, work: &Path, index: &LocalRepo) -> Vec<(&'static str, String)> {
    let dir = |name: &str| work.join(kind.name()).join(name).display().to_string();
    let source = [
        ("SLIPWAY_SOURCE__ALLOW_FILE_URLS", "true".to_owned()),
        ("SLIPWAY_SOURCE__CACHE_DIR", dir("cache")),
    ];
    match kind {
        WorkerKind::Lint => [
            source.to_vec(),
            vec![("SLIPWAY_LINT__SHELLCHECK", "never".to_owned())],
        ]
        .concat(),
        WorkerKind::Build => [
            source.to_vec(),
            vec![
                ("SLIPWAY_REGISTRY__URL", "http://127.0.0.1:5000".to_owned()),
                ("SLIPWAY_BUILD__WORK_DIR", dir("build")),
            ],
        ]
        .concat(),
        WorkerKind::Scan => Vec::new(),
        WorkerKind::RepoTracker => [
            source.to_vec(),
            vec![
                ("SLIPWAY_TRACKER__INDEX_URL", index.url()),
                ("SLIPWAY_TRACKER__INDEX_BRANCH", "main".to_owned()),
            ],
        ]
        .concat(),
        WorkerKind::RescanScheduler => Vec::new(),
        WorkerKind::Notify => vec![
            ("SLIPWAY_SMTP__HOST", "127.0.0.1".to_owned()),
            ("SLIPWAY_SMTP__PORT", slipway_tests::free_port().to_string()),
            ("SLIPWAY_SMTP__SECURITY", "plain".to_owned()),
            ("SLIPWAY_SMTP__FROM", "slipway@localhost".to_owned()),
        ],
    }
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
    let work = TempDir::new("worker-service");
    let index = LocalRepo::new("service-index");
    index.commit(&[("index.d/team.yaml", "Projects: []\n")], "an empty index");
    index.git(&["branch", "-M", "main"]);
    // The namespace exists before its workers start, as in production: six processes declaring
    // the same new queues at once make RabbitMQ refuse some declarations for a moment (404 "home
    // node … is down or inaccessible", seen once in 15 runs), which lapin logs as an error.
    declare_topology(&settings);

    let mut fleet: Vec<Running> = WorkerKind::ALL
        .into_iter()
        .map(|kind| {
            let socket = NotifySocket::bind();
            let log = work.path().join(format!("{}.log", kind.name()));
            let mut env = settings_of(kind, work.path(), &index);
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
    delete_namespace(&settings);
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
    use slipway_broker::inspect::{delete_queues, delete_topology};
    use slipway_broker::leadership::lease_queue_name;
    runtime().block_on(async {
        let connection = slipway_broker::BrokerConnection::connect(settings, "service-cleanup")
            .await
            .expect("connect for cleanup");
        delete_topology(&connection, &slipway_broker::Topology::pipeline(settings))
            .await
            .expect("delete the topology");
        let mut others = vec![
            slipway_broker::logs::log_stream_name(&settings.namespace),
            slipway_broker::reports::report_stream_name(&settings.namespace),
        ];
        for election in ["notify", "repo-tracker", "rescan-scheduler"] {
            others.push(lease_queue_name(&settings.namespace, election));
        }
        delete_queues(&connection, &others)
            .await
            .expect("delete the streams and leases");
        connection.close().await;
    });
}

//! Three `slipway-repo-tracker` processes against the real RabbitMQ and real git repositories:
//! one leads; `kill -9` of the leader in the middle of a cascade hands the lease to another
//! within seconds, which rebuilds its view from the history and finishes the cascade with no
//! image requested twice and none left out; polling goes on under the new leader. The lint and
//! build workers are played by a stand-in on the lint queue (each build takes a moment).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use slipway_broker::history::{HistoryEvent, HistoryQuery};
use slipway_broker::{Job, Outcome, Topology};
use slipway_common::message::{BuildSucceeded, CommitSha};
use slipway_common::{Digest, ImageRef, Kind, Message};
use slipway_tests::fleet::{self, Instance};
use slipway_tests::git::LocalRepo;
use slipway_tests::{TempDir, TestBus, eventually, test_settings};

const DEADLINE: Duration = Duration::from_secs(90);

/// The `worker` label of the tracker's metrics.
const WORKER: &str = "repo-tracker";

/// The images, each with its parents: a diamond under `r`, then two more levels.
const IMAGES: [(&str, &[&str]); 7] = [
    ("r", &[]),
    ("a", &["r"]),
    ("b", &["r"]),
    ("c", &["a", "b"]),
    ("d", &["c"]),
    ("e", &["c"]),
    ("f", &["d", "e"]),
];

fn start_tracker(namespace: &str, index: &LocalRepo, cache: &TempDir) -> Instance {
    Instance::start(
        env!("CARGO_BIN_EXE_slipway-repo-tracker"),
        namespace,
        &[
            (
                "SLIPWAY_SOURCE__CACHE_DIR",
                cache.path().display().to_string(),
            ),
            ("SLIPWAY_SOURCE__ALLOW_FILE_URLS", "true".into()),
            ("SLIPWAY_TRACKER__INDEX_URL", index.url()),
            ("SLIPWAY_TRACKER__INDEX_BRANCH", "main".into()),
            ("SLIPWAY_TRACKER__POLL_INTERVAL_MS", "300".into()),
            ("SLIPWAY_TRACKER__POLL_JITTER_MS", "0".into()),
            ("SLIPWAY_TRACKER__LEADER_RENEW_MS", "1000".into()),
        ],
    )
}

fn entry_yaml(id: usize, job: &str, repo: &LocalRepo, parents: &[&str]) -> String {
    let depends: Vec<String> = parents.iter().map(|p| format!("team/{p}:1")).collect();
    format!(
        "  - id: {id}\n    app-id: team\n    job-id: {job}\n    git-url: {}\n    git-path: /\n    git-branch: main\n    target-file: Dockerfile\n    desired-tag: \"1\"\n    notify-email: owner@example.org\n    depends-on: [{}]\n",
        repo.url(),
        depends.join(", ")
    )
}

/// The stand-in for lint and build: a build takes 150 ms, then `build.succeeded` with a new
/// digest.
async fn stand_in_build(job: Job) -> Outcome {
    let Message::BuildRequested(request) = &job.envelope.message else {
        return Outcome::Reject("the stand-in takes build.requested".into());
    };
    // The build's duration, so that the leader can die with builds in flight.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let digest = Digest::sha256_of(job.envelope.id.to_string().as_bytes());
    Outcome::Ack(vec![job.envelope.follow_up(Message::BuildSucceeded(
        BuildSucceeded {
            entry: request.entry.clone(),
            commit: CommitSha::try_from("ab".repeat(20)).unwrap(),
            image: ImageRef::parse(&format!("127.0.0.1:5000/{}", request.entry.image())).unwrap(),
            digest,
            content_key: job.envelope.id.to_string(),
            parent_digests: BTreeMap::new(),
            duration_ms: 150,
            record: None,
        },
    ))])
}

fn of_kind(events: &[HistoryEvent], kind: Kind) -> Vec<&HistoryEvent> {
    events
        .iter()
        .filter(|e| e.envelope.kind() == kind)
        .collect()
}

fn image_of(event: &HistoryEvent) -> String {
    event
        .envelope
        .message
        .image()
        .map(|(image, _)| image.path().trim_start_matches("team/").to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_mid_cascade_loses_no_child_and_repeats_none() {
    let settings = test_settings("tracker-takeover");
    let bus = TestBus::start(settings.clone(), Topology::pipeline(&settings)).await;
    let repos: BTreeMap<&str, LocalRepo> = IMAGES
        .iter()
        .map(|(name, _)| {
            let repo = LocalRepo::new(name);
            repo.commit(&[("Dockerfile", "FROM scratch\n")], "first");
            (*name, repo)
        })
        .collect();
    let index = LocalRepo::new("index");
    let yaml: Vec<String> = IMAGES
        .iter()
        .enumerate()
        .map(|(i, (name, parents))| entry_yaml(i + 1, name, &repos[name], parents))
        .collect();
    index.commit(
        &[(
            "index.d/team.yaml",
            &format!("Projects:\n{}", yaml.concat()),
        )],
        "index",
    );
    let builder = bus.spawn_worker("lint", stand_in_build);
    let caches: Vec<TempDir> = (0..3)
        .map(|n| TempDir::new(&format!("takeover-cache-{n}")))
        .collect();
    let mut trackers: Vec<Instance> = caches
        .iter()
        .map(|cache| start_tracker(&settings.namespace, &index, cache))
        .collect();

    // The baseline: the index applied, every branch seen once.
    bus.wait_for_history(HistoryQuery::all().kinds([Kind::GitChanged]), 8, DEADLINE)
        .await;
    let leader = fleet::leader(&trackers, WORKER).expect("exactly one leader");

    // A change at the root starts a cascade over all seven images; the leader dies once the
    // first children are being built.
    repos["r"].commit(&[("Dockerfile", "FROM scratch\nLABEL v=2\n")], "change");
    bus.wait_for_history(
        HistoryQuery::all().kinds([Kind::BuildRequested]),
        3,
        DEADLINE,
    )
    .await;
    let killed = Instant::now();
    trackers.remove(leader).kill();
    eventually("another tracker leads", Duration::from_secs(30), || {
        let leading = trackers.iter().any(|tracker| tracker.is_leader(WORKER));
        async move { leading }
    })
    .await;
    let takeover = killed.elapsed();
    eprintln!("takeover after kill -9: {} ms", takeover.as_millis());
    assert!(takeover < Duration::from_secs(30));

    // The cascade completes: every image built exactly once, each after all its parents.
    let events = bus
        .wait_for_history(
            HistoryQuery::all().kinds([Kind::BuildSucceeded]),
            IMAGES.len(),
            DEADLINE,
        )
        .await;
    let all = bus.history(HistoryQuery::all()).await;
    let requested: Vec<String> = of_kind(&all, Kind::BuildRequested)
        .into_iter()
        .map(image_of)
        .collect();
    let unique: BTreeSet<&String> = requested.iter().collect();
    assert_eq!(
        requested.len(),
        IMAGES.len(),
        "each image requested once: {requested:?}"
    );
    assert_eq!(unique.len(), IMAGES.len(), "{requested:?}");
    assert_eq!(events.len(), IMAGES.len());
    for (name, parents) in IMAGES {
        let request = all
            .iter()
            .position(|e| e.envelope.kind() == Kind::BuildRequested && image_of(e) == name)
            .unwrap();
        for parent in parents {
            let built = all
                .iter()
                .position(|e| e.envelope.kind() == Kind::BuildSucceeded && image_of(e) == *parent)
                .unwrap();
            assert!(
                built < request,
                "{name} was requested before {parent} was built"
            );
        }
    }

    // Polling goes on under the new leader: a change to e rebuilds e, then f.
    repos["e"].commit(&[("Dockerfile", "FROM scratch\nLABEL v=3\n")], "change e");
    let events = bus
        .wait_for_history(
            HistoryQuery::all().kinds([Kind::BuildSucceeded]),
            IMAGES.len() + 2,
            DEADLINE,
        )
        .await;
    let last: Vec<String> = events[IMAGES.len()..].iter().map(image_of).collect();
    assert_eq!(last, ["e", "f"]);

    drop(trackers);
    builder.stop().await.expect("stand-in stops");
    bus.cleanup().await;
}

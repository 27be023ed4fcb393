//! The repo-tracker against the real RabbitMQ and real git repositories (`file://`): the index
//! from git (added, changed and removed entries; a rejected commit keeps the last good index), a
//! moved branch head rebuilds what builds from it, and a parent's rebuild cascades to its
//! children, parents first, diamonds once, checked from the history stream. The lint and build
//! workers are played by a small stand-in on the lint queue that answers each `build.requested`
//! with `build.succeeded` (a new digest) or, for the images it is told to fail, `build.failed`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slipway_broker::history::{HistoryEvent, HistoryQuery};
use slipway_broker::{Job, Outcome, Topology};
use slipway_common::message::{BuildFailed, BuildStage, BuildSucceeded};
use slipway_common::{Digest, ImageRef, Kind, Message};
use slipway_repo_tracker::config::RepoTrackerConfig;
use slipway_tests::git::LocalRepo;
use slipway_tests::requests;
use slipway_tests::{TempDir, TestBus, test_settings};
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(60);

/// One index entry's YAML: `team/<job>:1` from `repo`, depending on `parents` (`team/<p>:1`).
fn entry_yaml(id: usize, job: &str, repo: &LocalRepo, parents: &[&str]) -> String {
    let depends: Vec<String> = parents.iter().map(|p| format!("team/{p}:1")).collect();
    format!(
        "  - id: {id}\n    app-id: team\n    job-id: {job}\n    git-url: {}\n    git-path: /\n    git-branch: main\n    target-file: Dockerfile\n    desired-tag: \"1\"\n    notify-email: owner@example.org\n    depends-on: [{}]\n",
        repo.url(),
        depends.join(", ")
    )
}

fn index_file(entries: &[String]) -> String {
    format!("Projects:\n{}", entries.concat())
}

fn image(job: &str) -> ImageRef {
    ImageRef::parse(&format!("team/{job}:1")).unwrap()
}

/// A running tracker over a test bus, with the build stand-in.
struct Rig {
    bus: TestBus,
    shutdown: CancellationToken,
    tracker: tokio::task::JoinHandle<()>,
    builder: slipway_tests::RunningWorker,
    _cache: TempDir,
}

/// What the build stand-in is told.
#[derive(Default)]
struct Builds {
    failing: BTreeSet<String>,
    count: u64,
}

impl Rig {
    async fn start(test: &str, index: &LocalRepo, builds: Arc<Mutex<Builds>>) -> Rig {
        Rig::start_with(test, index, builds, |_| {}).await
    }

    async fn start_with(
        test: &str,
        index: &LocalRepo,
        builds: Arc<Mutex<Builds>>,
        tune: impl FnOnce(&mut RepoTrackerConfig),
    ) -> Rig {
        let settings = test_settings(test);
        let bus = TestBus::start(settings.clone(), Topology::pipeline(&settings)).await;
        let cache = TempDir::new(&format!("tracker-cache-{test}"));
        let mut config = RepoTrackerConfig {
            broker: settings,
            ..RepoTrackerConfig::default()
        };
        config.telemetry.metrics_addr = None;
        config.source.cache_dir = cache.path().to_path_buf();
        config.source.allow_file_urls = true;
        config.tracker.index_url = index.url();
        config.tracker.index_branch = "main".into();
        config.tracker.poll_interval_ms = 300;
        config.tracker.poll_jitter_ms = 0;
        config.tracker.leader_renew_ms = 5_000;
        tune(&mut config);
        let shutdown = CancellationToken::new();
        let tracker = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                if let Err(error) = slipway_repo_tracker::worker::run(config, shutdown).await {
                    panic!("the tracker stopped: {error}");
                }
            }
        });
        let builder = bus.spawn_worker("lint", move |job: Job| {
            let builds = Arc::clone(&builds);
            async move { stand_in_build(&job, &builds) }
        });
        Rig {
            bus,
            shutdown,
            tracker,
            builder,
            _cache: cache,
        }
    }

    /// The history events of `kinds`, once there are at least `count`.
    async fn wait(&self, kinds: &[Kind], count: usize) -> Vec<HistoryEvent> {
        self.bus
            .wait_for_history(
                HistoryQuery::all().kinds(kinds.iter().copied()),
                count,
                DEADLINE,
            )
            .await
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.await.expect("the tracker task ends");
        self.builder.stop().await.expect("the stand-in stops");
        self.bus.cleanup().await;
    }
}

/// The stand-in for lint and build: `build.succeeded` with a new digest, or `build.failed`.
fn stand_in_build(job: &Job, builds: &Mutex<Builds>) -> Outcome {
    let Message::BuildRequested(request) = &job.envelope.message else {
        return Outcome::Reject("the stand-in takes build.requested".into());
    };
    let mut builds = builds.lock().unwrap();
    builds.count += 1;
    let commit = slipway_common::message::CommitSha::try_from("ab".repeat(20)).unwrap();
    let message = if builds.failing.contains(&request.entry.job_id) {
        Message::BuildFailed(BuildFailed {
            entry: request.entry.clone(),
            commit,
            stage: BuildStage::Build,
            error: "the stand-in was told to fail".into(),
            log_tail: vec![],
        })
    } else {
        Message::BuildSucceeded(BuildSucceeded {
            entry: request.entry.clone(),
            commit,
            image: ImageRef::parse(&format!("127.0.0.1:5000/{}", request.entry.image())).unwrap(),
            digest: Digest::parse(&format!("sha256:{:064x}", builds.count)).unwrap(),
            content_key: format!("key-{}", builds.count),
            parent_digests: BTreeMap::new(),
            duration_ms: 1,
            record: None,
        })
    };
    Outcome::Ack(vec![job.envelope.follow_up(message)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_commit_adds_changes_and_removes_entries_and_a_bad_one_is_rejected() {
    let (a, b, c, d) = (
        LocalRepo::new("a"),
        LocalRepo::new("b"),
        LocalRepo::new("c"),
        LocalRepo::new("d"),
    );
    for repo in [&a, &b, &c, &d] {
        repo.commit(&[("Dockerfile", "FROM scratch\n")], "first");
    }
    let index = LocalRepo::new("index");
    let first = index.commit(
        &[(
            "index.d/team.yaml",
            &index_file(&[
                entry_yaml(1, "a", &a, &[]),
                entry_yaml(2, "b", &b, &["a"]),
                entry_yaml(3, "c", &c, &[]),
            ]),
        )],
        "first index",
    );
    let builds = Arc::new(Mutex::new(Builds::default()));
    let rig = Rig::start("tracker-index", &index, Arc::clone(&builds)).await;
    let applied = rig.wait(&[Kind::IndexApplied], 1).await;
    let Message::IndexApplied(first_applied) = &applied[0].envelope.message else {
        unreachable!()
    };
    assert_eq!(first_applied.commit.as_str(), first);
    assert_eq!(first_applied.entries.len(), 3);

    // Change a (a field that shapes the image), remove c, add d built from a.
    let second = index.commit(
        &[(
            "index.d/team.yaml",
            &index_file(&[
                entry_yaml(1, "a", &a, &[]).replace("git-path: /", "git-path: /sub"),
                entry_yaml(2, "b", &b, &["a"]),
                entry_yaml(4, "d", &d, &["a"]),
            ]),
        )],
        "second index",
    );
    let retired = rig.wait(&[Kind::ImageRetired], 1).await;
    assert_eq!(
        retired[0].envelope.message.image().unwrap().0,
        image("c"),
        "the removed entry is retired"
    );
    // a first (changed); then b follows its parent, and d (added) waits for it.
    let events = rig
        .wait(&[Kind::BuildRequested, Kind::BuildSucceeded], 6)
        .await;
    let requested = requests(&events);
    assert_eq!(
        requested[0],
        ("team/a:1".to_owned(), "index-change".to_owned()),
        "{requested:?}"
    );
    let rest: BTreeSet<(String, String)> = requested[1..].iter().cloned().collect();
    assert_eq!(
        rest,
        BTreeSet::from([
            ("team/b:1".to_owned(), "parent-rebuilt:team/a:1".to_owned()),
            ("team/d:1".to_owned(), "index-change".to_owned()),
        ])
    );
    let a_done = events
        .iter()
        .position(|e| e.envelope.kind() == Kind::BuildSucceeded)
        .unwrap();
    let first_child = events
        .iter()
        .skip(1)
        .position(|e| e.envelope.kind() == Kind::BuildRequested)
        .unwrap()
        + 1;
    assert!(
        a_done < first_child,
        "children are requested after their parent was built"
    );

    // A commit with a cycle and a misspelled key is rejected; the second index stays in force.
    let third = index.commit(
        &[(
            "index.d/team.yaml",
            &index_file(&[
                entry_yaml(1, "a", &a, &["b"]),
                entry_yaml(2, "b", &b, &["a"]),
                entry_yaml(4, "d", &d, &["a"]).replace("git-branch", "git_branch"),
            ]),
        )],
        "broken index",
    );
    let rejected = rig.wait(&[Kind::IndexRejected], 1).await;
    let Message::IndexRejected(rejected) = &rejected[0].envelope.message else {
        unreachable!()
    };
    assert_eq!(rejected.commit.as_str(), third);
    assert_eq!(
        rejected.in_force.as_ref().map(|c| c.as_str()),
        Some(second.as_str())
    );
    let text: Vec<String> = rejected
        .problems
        .iter()
        .map(|p| format!("{}:{}: {}", p.file, p.line.unwrap_or(0), p.message))
        .collect();
    assert!(
        text.iter()
            .any(|p| p.starts_with("index.d/team.yaml:") && p.contains("git_branch")),
        "{text:?}"
    );
    assert!(text.iter().any(|p| p.contains("cycle")), "{text:?}");
    let applied = rig.wait(&[Kind::IndexApplied], 2).await;
    assert_eq!(applied.len(), 2, "the rejected commit was not applied");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_head_rebuilds_its_entries_and_cascades_through_a_diamond_once() {
    let repos: Vec<LocalRepo> = ["a", "b", "c", "d", "x"]
        .iter()
        .map(|name| {
            let repo = LocalRepo::new(name);
            repo.commit(&[("Dockerfile", "FROM scratch\n")], "first");
            repo
        })
        .collect();
    let index = LocalRepo::new("index");
    index.commit(
        &[(
            "index.d/team.yaml",
            &index_file(&[
                entry_yaml(1, "a", &repos[0], &[]),
                entry_yaml(2, "b", &repos[1], &["a"]),
                entry_yaml(3, "c", &repos[2], &["a"]),
                entry_yaml(4, "d", &repos[3], &["b", "c"]),
                entry_yaml(5, "x", &repos[4], &["d"]),
            ]),
        )],
        "index",
    );
    let builds = Arc::new(Mutex::new(Builds::default()));
    builds.lock().unwrap().failing.insert("c".into());
    let rig = Rig::start("tracker-cascade", &index, Arc::clone(&builds)).await;
    // Every branch has been seen once (the baseline) before a commit moves one.
    rig.wait(&[Kind::GitChanged], 6).await;
    repos[0].commit(&[("Dockerfile", "FROM scratch\nLABEL v=2\n")], "second");
    // a, then b and c; c fails, so d (and x below it) are skipped, each saying why.
    let skipped = rig.wait(&[Kind::BuildSkipped], 2).await;
    let events = rig
        .wait(
            &[
                Kind::BuildRequested,
                Kind::BuildSucceeded,
                Kind::BuildFailed,
            ],
            6,
        )
        .await;
    let requested = requests(&events);
    assert_eq!(
        requested[0],
        ("team/a:1".to_owned(), "git-change".to_owned())
    );
    let children: BTreeSet<String> = requested[1..].iter().map(|(i, _)| i.clone()).collect();
    assert_eq!(
        children,
        BTreeSet::from(["team/b:1".to_owned(), "team/c:1".to_owned()])
    );
    let skipped: BTreeMap<String, String> = skipped
        .iter()
        .map(|e| {
            let Message::BuildSkipped(s) = &e.envelope.message else {
                unreachable!()
            };
            (s.entry.image().to_string(), s.parent.to_string())
        })
        .collect();
    assert_eq!(
        skipped.get("team/d:1").map(String::as_str),
        Some("team/c:1")
    );
    assert_eq!(
        skipped.get("team/x:1").map(String::as_str),
        Some("team/d:1")
    );

    // Now c builds again: a new commit to c rebuilds c, then d once, then x.
    builds.lock().unwrap().failing.clear();
    repos[2].commit(&[("Dockerfile", "FROM scratch\nLABEL v=3\n")], "fix");
    let events = rig.wait(&[Kind::BuildRequested], 6).await;
    let requested: Vec<String> = requests(&events).into_iter().map(|(i, _)| i).collect();
    assert_eq!(
        requested[3..],
        [
            "team/c:1".to_owned(),
            "team/d:1".to_owned(),
            "team/x:1".to_owned()
        ]
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_images_with_diamonds_four_deep_are_each_rebuilt_once_after_their_parents() {
    // A root, then four levels of 12 or 13 images; each depends on one or two images of the
    // level above (every third on two: diamonds). One repository builds them all.
    let repo = LocalRepo::new("fifty");
    repo.commit(&[("Dockerfile", "FROM scratch\n")], "first");
    let mut parents: BTreeMap<String, Vec<String>> = BTreeMap::new();
    parents.insert("root".into(), vec![]);
    let mut above = vec!["root".to_owned()];
    let mut n = 0;
    for level in 1..=4 {
        let width = if level % 2 == 0 { 12 } else { 13 };
        let mut this = Vec::new();
        for i in 0..width {
            n += 1;
            let name = format!("i{n}");
            let mut mine = vec![above[i % above.len()].clone()];
            if i % 3 == 0 && above.len() > 1 {
                mine.push(above[(i + 1) % above.len()].clone());
            }
            parents.insert(name.clone(), mine);
            this.push(name);
        }
        above = this;
    }
    assert_eq!(parents.len(), 51);
    // Every image but the root builds from its own repository, so a change at the root's
    // repository rebuilds the others only through the cascade.
    let root_repo = LocalRepo::new("fifty-root");
    root_repo.commit(&[("Dockerfile", "FROM scratch\n")], "first");
    let yaml: Vec<String> = parents
        .iter()
        .enumerate()
        .map(|(i, (name, mine))| {
            let from = if name == "root" { &root_repo } else { &repo };
            let mine: Vec<&str> = mine.iter().map(String::as_str).collect();
            entry_yaml(i + 1, name, from, &mine)
        })
        .collect();
    let index = LocalRepo::new("index");
    index.commit(&[("index.d/team.yaml", &index_file(&yaml))], "index");
    let builds = Arc::new(Mutex::new(Builds::default()));
    let rig = Rig::start("tracker-fifty", &index, builds).await;
    rig.wait(&[Kind::GitChanged], 3).await;
    root_repo.commit(&[("Dockerfile", "FROM scratch\nLABEL v=2\n")], "change");
    let built = rig.wait(&[Kind::BuildSucceeded], 51).await;
    let all = rig.bus.history(HistoryQuery::all()).await;
    let requested: Vec<String> = requests(&all).into_iter().map(|(image, _)| image).collect();
    let unique: BTreeSet<&String> = requested.iter().collect();
    assert_eq!(requested.len(), 51, "every image once: {requested:?}");
    assert_eq!(unique.len(), 51);
    assert_eq!(built.len(), 51);
    let position = |kind: Kind, name: &str| {
        all.iter()
            .position(|e| {
                e.envelope.kind() == kind
                    && e.envelope.message.image().unwrap().0.path() == format!("team/{name}")
            })
            .unwrap_or_else(|| panic!("no {kind} for {name}"))
    };
    for (name, mine) in &parents {
        let request = position(Kind::BuildRequested, name);
        for parent in mine {
            assert!(
                position(Kind::BuildSucceeded, parent) < request,
                "{name} requested before its parent {parent} was built"
            );
        }
    }
    rig.stop().await;
}

/// A GitHub push through the shared helper; its status code, as text for the assertions.
async fn github_push(
    addr: std::net::SocketAddr,
    secret: &[u8],
    url: &str,
    head: &str,
    delivery: &str,
) -> String {
    slipway_tests::webhook::github_push(addr, secret, url, head, delivery)
        .await
        .expect("the endpoint answers")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_push_rebuilds_once_and_its_replay_or_an_unknown_repository_does_nothing() {
    let (a, b) = (LocalRepo::new("hook-a"), LocalRepo::new("hook-b"));
    for repo in [&a, &b] {
        repo.commit(&[("Dockerfile", "FROM scratch\n")], "first");
    }
    let index = LocalRepo::new("index");
    index.commit(
        &[(
            "index.d/team.yaml",
            &index_file(&[entry_yaml(1, "a", &a, &[]), entry_yaml(2, "b", &b, &[])]),
        )],
        "index",
    );
    let secrets = TempDir::new("hook-secret");
    let secret_file = secrets.file("secret", "s3cr3t\n");
    let port = slipway_tests::free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let builds = Arc::new(Mutex::new(Builds::default()));
    let rig = Rig::start_with("tracker-webhook", &index, builds, |config| {
        // Polls only when leading starts: the pushes below reach it by webhook alone.
        config.tracker.poll_interval_ms = 3_600_000;
        config.webhook.listen = addr.to_string();
        config.webhook.secret_file = Some(secret_file);
    })
    .await;
    rig.wait(&[Kind::GitChanged], 3).await;

    let new_a = a.commit(&[("Dockerfile", "FROM scratch\nLABEL v=2\n")], "change a");
    let reply = github_push(addr, b"s3cr3t", &a.url(), &new_a, "delivery-1").await;
    assert!(reply.contains("202"), "{reply}");
    let events = rig.wait(&[Kind::BuildRequested], 1).await;
    assert_eq!(
        requests(&events),
        [("team/a:1".to_owned(), "git-change".to_owned())]
    );

    // The same delivery again, a wrong signature and an unknown repository: nothing is built.
    let replay = github_push(addr, b"s3cr3t", &a.url(), &new_a, "delivery-1").await;
    assert!(replay.contains("202"), "{replay}");
    let forged = github_push(addr, b"wrong", &a.url(), &"1".repeat(40), "delivery-2").await;
    assert!(forged.contains("401"), "{forged}");
    let unknown = github_push(
        addr,
        b"s3cr3t",
        "https://git.example.org/x/y",
        &new_a,
        "d-3",
    )
    .await;
    assert!(unknown.contains("202"), "{unknown}");
    // A push to b afterwards: once it is requested, everything before it was folded.
    let new_b = b.commit(&[("Dockerfile", "FROM scratch\nLABEL v=2\n")], "change b");
    github_push(addr, b"s3cr3t", &b.url(), &new_b, "delivery-4").await;
    let events = rig.wait(&[Kind::BuildRequested], 2).await;
    let all = rig.bus.history(HistoryQuery::all()).await;
    assert_eq!(
        requests(&events),
        [
            ("team/a:1".to_owned(), "git-change".to_owned()),
            ("team/b:1".to_owned(), "git-change".to_owned())
        ],
        "the replay rebuilt nothing"
    );
    assert!(
        !all.iter().any(|e| matches!(&e.envelope.message,
            Message::GitChanged(c) if c.git_url.contains("git.example.org"))),
        "an unknown repository publishes nothing"
    );
    rig.stop().await;
}

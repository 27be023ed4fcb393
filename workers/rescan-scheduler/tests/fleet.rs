//! Three `slipway-rescan-scheduler` processes against the real RabbitMQ and its history stream,
//! with a 20 s "week": 500 built images (one owner holds three of them, fifty owners share the
//! rest) and one index entry rebuilt every 10 s. The leader is killed with `kill -9` twice. Read
//! back from the history: every image is requested once per period, never twice, at its stable
//! offset, and the requests are spread (no tenth of a period holds more than twice the mean); the
//! scheduled rebuild fires at each firing, once, within a second; each owner gets one summary per
//! period, the three-image owner's naming its three images; a retired image is no longer
//! requested and a new one is requested within a period.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use slipway_broker::Topology;
use slipway_broker::history::{HistoryEvent, HistoryQuery};
use slipway_common::index::Entry;
use slipway_common::index::test_support::sample_entry;
use slipway_common::message::test_support::sample_built;
use slipway_common::message::{CommitSha, ImageRetired, IndexApplied};
use slipway_common::{Cause, Envelope, Kind, Message, Timestamp};
use slipway_rescan_scheduler::state::{key_of, offset};
use slipway_tests::fleet::{self, Instance};
use slipway_tests::{TestBus, eventually, test_settings};

const PERIOD: u64 = 20_000;
const IMAGES: usize = 500;
const WORKER: &str = "rescan-scheduler";
const DEADLINE: Duration = Duration::from_secs(120);

fn entry(job: &str, owner: &str) -> Entry {
    Entry {
        app_id: "fleet".into(),
        job_id: job.into(),
        desired_tag: "1".into(),
        notify_email: Some(owner.into()),
        rebuild_schedule: None,
        ..sample_entry()
    }
}

fn owner_of(n: usize) -> String {
    if n < 3 {
        "trio@example.org".into()
    } else {
        format!("owner{}@example.org", n % 50)
    }
}

fn built(entry: Entry) -> Envelope {
    Envelope::new_job(Cause::User, Message::BuildSucceeded(sample_built(entry)))
}

fn start(namespace: &str) -> Instance {
    Instance::start(
        env!("CARGO_BIN_EXE_slipway-rescan-scheduler"),
        namespace,
        &[
            ("SLIPWAY_SCHEDULER__PERIOD_MS", PERIOD.to_string()),
            ("SLIPWAY_SCHEDULER__MAX_REBUILD_DELAY_MS", "5000".into()),
            ("SLIPWAY_SCHEDULER__LEADER_RENEW_MS", "1000".into()),
        ],
    )
}

/// The scheduled requests of `events`: (image name, created at).
fn rescans(events: &[HistoryEvent]) -> Vec<(String, u64)> {
    events
        .iter()
        .filter(|e| e.envelope.cause == Cause::Schedule)
        .filter_map(|e| match &e.envelope.message {
            Message::ScanRequested(r) => Some((
                key_of(&r.image).unwrap().to_string(),
                e.envelope.created_at.unix_millis(),
            )),
            _ => None,
        })
        .collect()
}

/// Kill the leader of `fleet`; how long until another leads.
async fn kill_leader(fleet: &mut Vec<Instance>) -> Duration {
    let leader = fleet::leader(fleet, WORKER).expect("exactly one leader");
    let killed = Instant::now();
    fleet.remove(leader).kill();
    eventually("another instance leads", Duration::from_secs(30), || {
        let leading = fleet::leader(fleet, WORKER).is_some();
        async move { leading }
    })
    .await;
    killed.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_images_are_each_requested_once_per_period_across_two_kills() {
    let settings = test_settings("scheduler-fleet");
    let bus = TestBus::start(settings.clone(), Topology::pipeline(&settings)).await;

    // The index: one entry rebuilt every 10 s (six-field cron, seconds first).
    let mut nightly = entry("clockwork", "trio@example.org");
    nightly.rebuild_schedule = Some("*/10 * * * * *".into());
    bus.publisher
        .publish(&Envelope::new_job(
            Cause::IndexChange,
            Message::IndexApplied(IndexApplied {
                git_url: "https://git.example.org/index".into(),
                git_branch: "main".into(),
                commit: CommitSha::try_from("cd".repeat(20)).unwrap(),
                entries: vec![nightly],
            }),
        ))
        .await
        .expect("publish the index");
    let builds: Vec<Envelope> = (0..IMAGES)
        .map(|n| built(entry(&format!("img{n}"), &owner_of(n))))
        .collect();
    let built_at: BTreeMap<String, u64> = builds
        .iter()
        .map(|b| {
            let (image, _) = b.message.image().unwrap();
            (
                key_of(&image).unwrap().to_string(),
                b.created_at.unix_millis(),
            )
        })
        .collect();
    let t0 = Timestamp::now().unix_millis();
    for chunk in builds.chunks(100) {
        bus.publisher
            .publish_all(chunk)
            .await
            .expect("publish builds");
    }

    let mut instances: Vec<Instance> = (0..3).map(|_| start(&settings.namespace)).collect();
    eventually("one instance leads", Duration::from_secs(30), || {
        let leading = fleet::leader(&instances, WORKER).is_some();
        async move { leading }
    })
    .await;
    let scheduled = || HistoryQuery::all().kinds([Kind::ScanRequested]);

    // Kill the leader half-way through the first period, and again in the second.
    bus.wait_for_history(scheduled(), IMAGES / 2, DEADLINE)
        .await;
    let first = kill_leader(&mut instances).await;
    // A retired image, and a new one.
    let retired_at = Timestamp::now().unix_millis();
    bus.publisher
        .publish(&Envelope::new_job(
            Cause::IndexChange,
            Message::ImageRetired(ImageRetired {
                entry: entry(&format!("img{}", IMAGES - 1), &owner_of(IMAGES - 1)),
                index_commit: CommitSha::try_from("ef".repeat(20)).unwrap(),
                delete_tag: false,
            }),
        ))
        .await
        .expect("publish the retirement");
    let new_at = Timestamp::now().unix_millis();
    bus.publisher
        .publish(&built(entry("newcomer", "late@example.org")))
        .await
        .expect("publish the new build");
    bus.wait_for_history(scheduled(), IMAGES + IMAGES / 2, DEADLINE)
        .await;
    let second = kill_leader(&mut instances).await;
    eprintln!(
        "takeovers after kill -9: {} ms, {} ms",
        first.as_millis(),
        second.as_millis()
    );
    assert!(first < Duration::from_secs(30) && second < Duration::from_secs(30));

    // Three periods' worth of requests.
    bus.wait_for_history(scheduled(), 3 * IMAGES, DEADLINE)
        .await;
    let end = Timestamp::now().unix_millis();
    let history = bus.history(HistoryQuery::all()).await;
    drop(instances);

    // Once per slot, contiguous, at the image's offset.
    let mut slots: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (name, at) in rescans(&history) {
        let o = offset(&name, PERIOD);
        let slot = (at - o) / PERIOD;
        let late = at - (slot * PERIOD + o);
        assert!(
            late < 5_000,
            "{name} requested {late} ms after its slot began"
        );
        slots.entry(name).or_default().push(slot);
    }
    let retired_name = format!("fleet/img{}:1", IMAGES - 1);
    for n in 0..IMAGES - 1 {
        let name = format!("fleet/img{n}:1");
        let got = slots
            .get(&name)
            .unwrap_or_else(|| panic!("{name} never requested"));
        let unique: BTreeSet<u64> = got.iter().copied().collect();
        assert_eq!(
            unique.len(),
            got.len(),
            "{name} requested twice in a slot: {got:?}"
        );
        // The build served the slot it fell in.
        let first_slot = (built_at[&name] - offset(&name, PERIOD)) / PERIOD + 1;
        let expected: Vec<u64> = (first_slot..first_slot + unique.len() as u64).collect();
        assert_eq!(
            unique.iter().copied().collect::<Vec<_>>(),
            expected,
            "{name}: a slot was missed"
        );
        assert!(
            (3..=4).contains(&got.len()),
            "{name}: {} requests in three periods",
            got.len()
        );
    }

    // The retired image: nothing asked for it after its retirement was folded (1 s margin).
    let after_retirement: Vec<u64> = rescans(&history)
        .into_iter()
        .filter(|(name, at)| *name == retired_name && *at > retired_at + 1_000)
        .map(|(_, at)| at)
        .collect();
    assert!(after_retirement.is_empty(), "{after_retirement:?}");
    // The newcomer: requested within one period of its build.
    let newcomer: Vec<u64> = rescans(&history)
        .into_iter()
        .filter(|(name, _)| name == "fleet/newcomer:1")
        .map(|(_, at)| at)
        .collect();
    if end > new_at + PERIOD + 2_000 {
        assert!(
            newcomer
                .first()
                .is_some_and(|at| *at <= new_at + PERIOD + 2_000),
            "the new image within a period: {newcomer:?} (built at {new_at})"
        );
    }

    // Spread: in every tenth of the two full periods after the first, at most twice the mean.
    let tenth = PERIOD / 10;
    let mut buckets: BTreeMap<u64, usize> = BTreeMap::new();
    for (_, at) in rescans(&history) {
        if at >= t0 + PERIOD && at < t0 + 3 * PERIOD {
            *buckets.entry((at - t0 - PERIOD) / tenth).or_default() += 1;
        }
    }
    let mean = IMAGES / 10;
    assert!(
        buckets.values().all(|count| *count <= 2 * mean),
        "requests per tenth of a period (mean {mean}): {buckets:?}"
    );

    // The scheduled rebuild: every 10 s firing once, within a second of it.
    let firings: Vec<u64> = history
        .iter()
        .filter(|e| e.envelope.cause == Cause::Schedule)
        .filter_map(|e| match &e.envelope.message {
            Message::BuildRequested(_) => Some(e.envelope.created_at.unix_millis()),
            _ => None,
        })
        .collect();
    assert!(firings.len() >= 4, "{firings:?}");
    let mut fired: Vec<u64> = Vec::new();
    for at in &firings {
        let firing = at / 10_000 * 10_000;
        assert!(at - firing <= 1_000, "a rebuild {} ms late", at - firing);
        fired.push(firing);
    }
    let unique: BTreeSet<u64> = fired.iter().copied().collect();
    assert_eq!(unique.len(), fired.len(), "a firing sent twice: {fired:?}");
    let steps: Vec<u64> = fired.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        steps.iter().all(|step| *step == 10_000),
        "a firing missed: {fired:?}"
    );

    // Summaries: one per owner and slot; the trio's names its three images.
    let mut summaries: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for event in &history {
        if let Message::SummaryReady(summary) = &event.envelope.message {
            let at = event.envelope.created_at.unix_millis();
            let slot = (at - offset(&summary.notify_email, PERIOD)) / PERIOD;
            summaries
                .entry(summary.notify_email.clone())
                .or_default()
                .push(slot);
            if summary.notify_email == "trio@example.org" {
                let images: Vec<String> =
                    summary.images.iter().map(|i| i.image.to_string()).collect();
                assert_eq!(
                    images,
                    [
                        "127.0.0.1:5000/fleet/img0:1",
                        "127.0.0.1:5000/fleet/img1:1",
                        "127.0.0.1:5000/fleet/img2:1"
                    ]
                );
            }
        }
    }
    assert!(
        summaries.len() >= 50,
        "{} owners summarised",
        summaries.len()
    );
    for (owner, slots) in &summaries {
        let unique: BTreeSet<&u64> = slots.iter().collect();
        assert_eq!(
            unique.len(),
            slots.len(),
            "{owner}: two summaries in a slot"
        );
    }
    assert!(summaries["trio@example.org"].len() >= 2);
    bus.cleanup().await;
}

//! Retiring images against the real registry on 127.0.0.1:5000 and the real broker: an
//! `image.retired` that asks for it reaches the build worker through its queue, and its answer,
//! `image.removed`, reaches notify. A manifest only the image's own tags name is deleted (the
//! test tag goes with it); one another tag names is kept and the tag is named; an image pushed
//! after the retirement is kept; an absent tag and a second delivery are `absent`; a retirement
//! that does not ask deletes nothing.

mod rig;

use std::time::Duration;

use rig::*;
use slipway_common::index::Entry;
use slipway_common::index::test_support::sample_entry;
use slipway_common::message::{CommitSha, ImageRemoved, ImageRetired, Removal};
use slipway_common::{Cause, Envelope, JobId, Message, Timestamp};

/// Build a one-layer image from the base image with a label unique to `name`, and push it under
/// each of `tags` of `repository` in the local registry; returns the registry's digest.
fn push_image(repository: &str, name: &str, tags: &[&str]) -> String {
    let first = format!("127.0.0.1:5000/{repository}:{}", tags[0]);
    let dockerfile = format!(
        "FROM {}\nLABEL io.slipway.test-image={name}\n",
        slipway_tests::BASE_IMAGE
    );
    slipway_tests::docker(
        &["build", "--network", "none", "--quiet", "-t", &first, "-"],
        Some(&dockerfile),
    );
    let images: Vec<String> = tags
        .iter()
        .map(|tag| format!("127.0.0.1:5000/{repository}:{tag}"))
        .collect();
    for image in &images {
        slipway_tests::docker(&["tag", &first, image], None);
        slipway_tests::docker(&["push", image], None);
    }
    for image in &images {
        slipway_tests::docker(&["rmi", image], None);
    }
    let digest = registry_digest(repository, tags[0]).expect("the pushed tag");
    for tag in tags {
        assert_eq!(registry_digest(repository, tag).as_ref(), Some(&digest));
    }
    digest
}

fn entry(app_id: &str, job_id: &str, desired_tag: &str) -> Entry {
    Entry {
        app_id: app_id.to_owned(),
        job_id: job_id.to_owned(),
        desired_tag: desired_tag.to_owned(),
        ..sample_entry()
    }
}

/// Publish the retirement of `entry`, made at `created_at`.
async fn retire(rig: &BuildRig, entry: Entry, delete_tag: bool, created_at: Timestamp) -> JobId {
    let mut envelope = Envelope::new_job(
        Cause::IndexChange,
        Message::ImageRetired(ImageRetired {
            entry,
            index_commit: CommitSha::try_from("ab".repeat(20)).expect("a commit"),
            delete_tag,
        }),
    );
    envelope.created_at = created_at;
    rig.bus.publisher.publish(&envelope).await.expect("publish");
    envelope.job_id
}

/// The `image.removed` of `job` (notify sees the `image.retired` first).
async fn removal(rig: &mut BuildRig, job: JobId) -> ImageRemoved {
    loop {
        match rig.outcome(job).await {
            Message::ImageRetired(_) => continue,
            Message::ImageRemoved(removed) => return removed,
            other => panic!("expected image.removed, found {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_tag_is_deleted_only_when_nothing_else_names_its_manifest() {
    let mut rig = BuildRig::start("retire", |_| {}).await;
    let app = app_id("retire");
    let solo = push_image(&format!("{app}/solo"), "solo", &["1", "1-slipway-test"]);
    let pair = push_image(&format!("{app}/pair"), "pair", &["1", "latest"]);
    let unasked = push_image(&format!("{app}/unasked"), "unasked", &["1"]);
    let again = push_image(&format!("{app}/again"), "again", &["1"]);
    // The rule compares whole seconds and keeps an image created in its retirement's second (as
    // built again): the retirements are dated a second after the pushes, or a push and its
    // retirement falling in one second made this test fail now and then.
    let now = Timestamp::from_unix_millis(Timestamp::now().unix_millis() + 1_000);

    // The build queue takes one job at a time (prefetch 1): by the time a later job's answer
    // arrives, this one was handled.
    let unasked_job = retire(&rig, entry(&app, "unasked", "1"), false, now).await;
    let solo_job = retire(&rig, entry(&app, "solo", "1"), true, now).await;
    let pair_job = retire(&rig, entry(&app, "pair", "1"), true, now).await;
    let hour_ago = Timestamp::from_unix_millis(now.unix_millis() - 3_600_000);
    let again_job = retire(&rig, entry(&app, "again", "1"), true, hour_ago).await;
    let never_job = retire(&rig, entry(&app, "never", "1"), true, now).await;

    assert!(matches!(
        rig.outcome(unasked_job).await,
        Message::ImageRetired(_)
    ));

    let removed = removal(&mut rig, solo_job).await;
    assert_eq!(removed.outcome, Removal::Deleted, "{removed:?}");
    assert_eq!(removed.digest.map(|d| d.to_string()), Some(solo));
    assert_eq!(
        removed.image.to_string(),
        format!("127.0.0.1:5000/{app}/solo:1")
    );
    assert_eq!(registry_digest(&format!("{app}/solo"), "1"), None);
    assert_eq!(
        registry_digest(&format!("{app}/solo"), "1-slipway-test"),
        None,
        "the test tag goes with the manifest"
    );

    let removed = removal(&mut rig, pair_job).await;
    assert_eq!(removed.outcome, Removal::Kept, "{removed:?}");
    assert_eq!(removed.digest.map(|d| d.to_string()), Some(pair.clone()));
    assert!(removed.detail.contains("latest"), "{}", removed.detail);
    assert_eq!(
        registry_digest(&format!("{app}/pair"), "1"),
        Some(pair.clone())
    );
    assert_eq!(
        registry_digest(&format!("{app}/pair"), "latest"),
        Some(pair)
    );

    let removed = removal(&mut rig, again_job).await;
    assert_eq!(removed.outcome, Removal::Kept, "{removed:?}");
    assert!(removed.detail.contains("built again"), "{}", removed.detail);
    assert_eq!(registry_digest(&format!("{app}/again"), "1"), Some(again));

    let removed = removal(&mut rig, never_job).await;
    assert_eq!(
        (removed.outcome, removed.digest.clone()),
        (Removal::Absent, None),
        "{removed:?}"
    );

    // Handled before the others, and it did not ask: the tag is still there.
    assert_eq!(
        registry_digest(&format!("{app}/unasked"), "1"),
        Some(unasked)
    );

    // The same retirement again (a redelivery, or a second tracker's duplicate) finds nothing.
    let solo_again = retire(&rig, entry(&app, "solo", "1"), true, now).await;
    let removed = tokio::time::timeout(Duration::from_secs(120), removal(&mut rig, solo_again))
        .await
        .expect("an answer in time");
    assert_eq!(removed.outcome, Removal::Absent, "{removed:?}");
    rig.stop().await;
}

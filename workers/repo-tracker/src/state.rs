//! The tracker's view, folded from the history stream, and the events it decides. Pure: no I/O.
//!
//! # State is the history
//!
//! Everything the tracker knows comes from events in the history stream, applied in order with
//! [`TrackerState::apply`]: the index in force (`index.applied` carries every entry), the last
//! head seen of each branch (`git.changed`), the webhook deliveries already acted on, the last
//! digest of each image (`build.succeeded`) and the rebuilds in progress ([`RebuildPlan`]: fed by
//! the tracker's own requests and the builds' outcomes).
//!
//! # Decisions are replay-safe
//!
//! Applying an event may decide new events (build requests, skips, retirements) or an index read.
//! Each decision gets an id derived from the event that caused it ([`MessageId::derived`]), and
//! waits in the *outbox* until an event with that id shows up in the history, which removes it.
//! A tracker that takes over folds the whole history first: whatever the previous leader
//! published is in it, so only what it decided but never published is left in the outbox. Nothing
//! is decided twice and nothing decided is lost, whatever moment the previous leader died at.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use slipway_common::envelope::{Cause, MessageId, Timestamp};
use slipway_common::index::Entry;
use slipway_common::index::diff::diff_entries;
use slipway_common::index::graph::DependencyGraph;
use slipway_common::message::{
    BuildRequested, BuildSkipped, CommitSha, GitChanged, ImageRetired, IndexApplied,
};
use slipway_common::{Digest, Envelope, ImageRef, JobId, Message};

use crate::plan::{BuildEnd, Decision, RebuildPlan};
use crate::remote::BranchKey;

/// Webhook delivery ids remembered (the oldest is forgotten first). A forge redelivers within
/// hours; this is far more deliveries than any index sees in that time.
pub const REMEMBERED_DELIVERIES: usize = 100_000;

/// What the tracker follows, as its configuration says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracking {
    /// The index repository.
    pub index_url: String,
    /// Its branch.
    pub index_branch: String,
    /// Whether the first index ever applied builds every image (otherwise it is the baseline:
    /// nothing is built until something changes). Off by default, so that a tracker whose
    /// history expired does not rebuild everything.
    pub build_first_index: bool,
    /// Whether a retired image's tag is to be deleted from the registry: its `image.retired`
    /// asks the build worker to (see `slipway_common::message::ImageRemoved`).
    pub delete_retired_tags: bool,
}

/// Something the tracker decided to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Publish this event.
    Publish(Box<Envelope>),
    /// Read the index repository at `commit`, validate it, and publish `index.applied` or
    /// `index.rejected` with the id `result`.
    LoadIndex {
        /// The index commit.
        commit: CommitSha,
        /// The id the resulting event must carry.
        result: MessageId,
    },
}

impl Action {
    /// The id of the event that carries the action out.
    pub fn id(&self) -> MessageId {
        match self {
            Action::Publish(envelope) => envelope.id,
            Action::LoadIndex { result, .. } => *result,
        }
    }
}

/// The index in force, with its dependency graph.
#[derive(Clone, Debug)]
pub struct IndexInForce {
    /// The commit applied.
    pub commit: CommitSha,
    /// Its entries.
    pub entries: Vec<Entry>,
    by_image: BTreeMap<ImageRef, usize>,
    /// Each branch some entry builds from: the URL its first entry writes, and its entries.
    by_branch: HashMap<BranchKey, (String, Vec<usize>)>,
    graph: Arc<DependencyGraph>,
}

impl IndexInForce {
    fn new(applied: &IndexApplied) -> Self {
        let parents: Vec<(ImageRef, Vec<ImageRef>)> = applied
            .entries
            .iter()
            .map(|entry| {
                let parents = entry
                    .depends_on
                    .iter()
                    .filter_map(|parent| ImageRef::parse(parent).ok())
                    .collect();
                (entry.image(), parents)
            })
            .collect();
        let graph = DependencyGraph::new(
            parents
                .iter()
                .map(|(image, parents)| (image.clone(), parents.as_slice())),
        );
        let by_image = applied
            .entries
            .iter()
            .enumerate()
            .map(|(i, entry)| (entry.image(), i))
            .collect();
        let mut by_branch: HashMap<BranchKey, (String, Vec<usize>)> = HashMap::new();
        for (i, entry) in applied.entries.iter().enumerate() {
            by_branch
                .entry(BranchKey::of(&entry.git_url, &entry.git_branch))
                .or_insert_with(|| (entry.git_url.clone(), Vec::new()))
                .1
                .push(i);
        }
        IndexInForce {
            commit: applied.commit.clone(),
            entries: applied.entries.clone(),
            by_image,
            by_branch,
            graph: Arc::new(graph),
        }
    }

    /// The entry that builds `image`.
    pub fn entry(&self, image: &ImageRef) -> Option<&Entry> {
        self.by_image.get(image).map(|&i| &self.entries[i])
    }

    /// The dependency graph.
    pub fn graph(&self) -> &DependencyGraph {
        &self.graph
    }

    /// The entries that build from `branch`.
    pub fn entries_on(&self, branch: &BranchKey) -> impl Iterator<Item = &Entry> {
        self.by_branch
            .get(branch)
            .into_iter()
            .flat_map(|(_, entries)| entries.iter().map(|&i| &self.entries[i]))
    }
}

/// A bounded set of recent strings: the oldest is forgotten first.
#[derive(Clone, Debug, Default)]
struct Recent {
    order: VecDeque<String>,
    members: HashSet<String>,
}

impl Recent {
    /// Remember `value`; `false` when it was already remembered.
    fn insert(&mut self, value: &str) -> bool {
        if self.members.contains(value) {
            return false;
        }
        if self.order.len() == REMEMBERED_DELIVERIES
            && let Some(oldest) = self.order.pop_front()
        {
            self.members.remove(&oldest);
        }
        self.order.push_back(value.to_owned());
        self.members.insert(value.to_owned());
        true
    }
}

/// The tracker's view and its outbox.
#[derive(Clone, Debug)]
pub struct TrackerState {
    tracking: Tracking,
    index_branch: BranchKey,
    index: Option<IndexInForce>,
    rejected: Option<CommitSha>,
    heads: BTreeMap<BranchKey, CommitSha>,
    deliveries: Recent,
    digests: BTreeMap<ImageRef, Digest>,
    fingerprints: BTreeMap<String, String>,
    plan: RebuildPlan,
    outbox: BTreeMap<MessageId, Action>,
    applied_events: u64,
    index_generation: u64,
}

impl TrackerState {
    /// The empty view of a tracker following `tracking`.
    pub fn new(tracking: Tracking) -> Self {
        TrackerState {
            index_branch: BranchKey::of(&tracking.index_url, &tracking.index_branch),
            tracking,
            index: None,
            rejected: None,
            heads: BTreeMap::new(),
            deliveries: Recent::default(),
            digests: BTreeMap::new(),
            fingerprints: BTreeMap::new(),
            plan: RebuildPlan::default(),
            outbox: BTreeMap::new(),
            applied_events: 0,
            index_generation: 0,
        }
    }

    /// What the tracker follows.
    pub fn tracking(&self) -> &Tracking {
        &self.tracking
    }

    /// The index in force.
    pub fn index(&self) -> Option<&IndexInForce> {
        self.index.as_ref()
    }

    /// The last head seen of `branch`.
    pub fn head(&self, branch: &BranchKey) -> Option<&CommitSha> {
        self.heads.get(branch)
    }

    /// The fingerprint of what package repository `repository` offered when last looked at.
    pub fn fingerprint(&self, repository: &str) -> Option<&str> {
        self.fingerprints.get(repository).map(String::as_str)
    }

    /// The images of the index in force.
    pub fn images(&self) -> Vec<ImageRef> {
        self.index
            .iter()
            .flat_map(|index| index.entries.iter().map(Entry::image))
            .collect()
    }

    /// The rebuilds in progress.
    pub fn plan(&self) -> &RebuildPlan {
        &self.plan
    }

    /// How many events were applied.
    pub fn applied_events(&self) -> u64 {
        self.applied_events
    }

    /// Decisions not yet seen in the history, oldest id first.
    pub fn outbox(&self) -> impl Iterator<Item = &Action> {
        self.outbox.values()
    }

    /// Every branch to poll: the index's own, then each (repository, branch) some entry builds
    /// from, once, as the first entry writes its URL.
    pub fn tracked_branches(&self) -> Vec<(String, String)> {
        let mut seen = HashSet::new();
        let mut branches = Vec::new();
        let index = (&self.tracking.index_url, &self.tracking.index_branch);
        let entries = self
            .index
            .iter()
            .flat_map(|index| index.entries.iter())
            .map(|entry| (&entry.git_url, &entry.git_branch));
        for (url, branch) in std::iter::once(index).chain(entries) {
            if seen.insert(BranchKey::of(url, branch)) {
                branches.push((url.clone(), branch.clone()));
            }
        }
        branches
    }

    /// The URL `branch` is tracked under (the index's, or the first entry's that builds from
    /// it), when it is tracked. Constant time: the webhook endpoint asks on every delivery.
    pub fn tracked_url(&self, branch: &BranchKey) -> Option<&str> {
        if *branch == self.index_branch {
            return Some(&self.tracking.index_url);
        }
        let index = self.index.as_ref()?;
        index.by_branch.get(branch).map(|(url, _)| url.as_str())
    }

    /// How many indexes were applied: the set of [tracked branches](Self::tracked_branches)
    /// changes only when this does.
    pub fn index_generation(&self) -> u64 {
        self.index_generation
    }

    /// Fold one history event into the view; what it decides goes to the outbox.
    pub fn apply(&mut self, event: &Envelope) {
        self.applied_events += 1;
        self.outbox.remove(&event.id);
        match &event.message {
            Message::GitChanged(changed) => self.on_git_changed(changed),
            Message::IndexApplied(applied) => self.on_index_applied(event, applied),
            Message::IndexRejected(rejected) => self.rejected = Some(rejected.commit.clone()),
            Message::PackagesUpdated(updated) => {
                let previous = self
                    .fingerprints
                    .insert(updated.repository.clone(), updated.fingerprint.clone());
                // The same change published twice (two leaders overlapping) rebuilds once.
                if previous.as_deref() == Some(updated.fingerprint.as_str()) {
                    return self.release(event);
                }
                for held in &updated.images {
                    let in_index = self
                        .index
                        .as_ref()
                        .is_some_and(|index| index.entry(&held.image).is_some());
                    if let (true, Some(package)) = (in_index, held.packages.first()) {
                        self.plan
                            .want(&held.image, Cause::PackageUpdate(package.clone()));
                    }
                }
            }
            Message::BuildSucceeded(built) => {
                let image = built.entry.image();
                let changed = self.digests.insert(image.clone(), built.digest.clone())
                    != Some(built.digest.clone());
                let graph = self.graph();
                if self.plan.requested_as(event.job_id) == Some(&image) {
                    self.plan.ended(&graph, &image, BuildEnd::Built { changed });
                } else if changed {
                    // A build the tracker did not ask for (a user's): its children follow.
                    self.plan.parent_changed(&graph, &image);
                }
            }
            Message::BuildFailed(_) | Message::LintFailed(_) => {
                if let Some(image) = self.plan.requested_as(event.job_id).cloned() {
                    let graph = self.graph();
                    self.plan.ended(&graph, &image, BuildEnd::Failed);
                }
            }
            _ => {}
        }
        self.release(event);
    }

    fn graph(&self) -> Arc<DependencyGraph> {
        self.index
            .as_ref()
            .map(|index| Arc::clone(&index.graph))
            .unwrap_or_default()
    }

    fn on_git_changed(&mut self, changed: &GitChanged) {
        if let Some(delivery) = &changed.delivery_id
            && !self.deliveries.insert(delivery)
        {
            return;
        }
        let branch = BranchKey::of(&changed.git_url, &changed.git_branch);
        let previous = self.heads.insert(branch.clone(), changed.commit.clone());
        if previous.as_ref() == Some(&changed.commit) {
            return;
        }
        if branch == self.index_branch {
            let in_force = self.index.as_ref().map(|index| &index.commit);
            if in_force == Some(&changed.commit) || self.rejected.as_ref() == Some(&changed.commit)
            {
                return;
            }
            // Only the newest index commit is worth reading.
            self.outbox
                .retain(|_, action| !matches!(action, Action::LoadIndex { .. }));
            let result = MessageId::derived(
                format!("index:{}:{}", self.index_branch, changed.commit.as_str()).as_bytes(),
            );
            self.outbox.insert(
                result,
                Action::LoadIndex {
                    commit: changed.commit.clone(),
                    result,
                },
            );
            return;
        }
        // The first head seen of a branch is the baseline: nothing to rebuild yet.
        if previous.is_none() {
            return;
        }
        let Some(index) = &self.index else { return };
        let targets: Vec<ImageRef> = index.entries_on(&branch).map(Entry::image).collect();
        for image in targets {
            self.plan.want(&image, Cause::GitChange);
        }
    }

    fn on_index_applied(&mut self, event: &Envelope, applied: &IndexApplied) {
        let new = IndexInForce::new(applied);
        self.index_generation += 1;
        match self.index.take() {
            None => {
                if self.tracking.build_first_index {
                    for entry in &new.entries {
                        self.plan.want(&entry.image(), Cause::IndexChange);
                    }
                }
            }
            Some(old) => {
                let diff = diff_entries(&old.entries, &new.entries);
                for entry in diff.removed {
                    let image = entry.image();
                    self.plan.forget(&image);
                    self.digests.remove(&image);
                    let seed = format!("{}:retired:{image}", event.id);
                    self.decide(Envelope {
                        id: MessageId::derived(seed.as_bytes()),
                        job_id: JobId::derived(seed.as_bytes()),
                        cause: Cause::IndexChange,
                        created_at: Timestamp::now(),
                        message: Message::ImageRetired(ImageRetired {
                            entry,
                            index_commit: applied.commit.clone(),
                            delete_tag: self.tracking.delete_retired_tags,
                        }),
                    });
                }
                let wanted = diff
                    .added
                    .iter()
                    .chain(diff.changed.iter().map(|changed| &changed.entry));
                for entry in wanted {
                    self.plan.want(&entry.image(), Cause::IndexChange);
                }
            }
        }
        self.index = Some(new);
    }

    /// Release what the plan can decide now; the decisions' ids derive from `event`'s.
    fn release(&mut self, event: &Envelope) {
        if self.plan.is_empty() {
            return;
        }
        let graph = self.graph();
        let seed = |what: &str, image: &ImageRef| format!("{}:{what}:{image}", event.id);
        let decisions = self.plan.release(&graph, |image| {
            JobId::derived(seed("job", image).as_bytes())
        });
        for decision in decisions {
            let (image, cause, job, message) = match decision {
                Decision::Request { image, cause, job } => {
                    let Some(entry) = self.entry(&image) else {
                        continue;
                    };
                    let message = Message::BuildRequested(BuildRequested {
                        entry,
                        commit: None,
                    });
                    (image, cause, job, message)
                }
                Decision::Skip { image, parent } => {
                    let Some(entry) = self.entry(&image) else {
                        continue;
                    };
                    let job = JobId::derived(seed("job", &image).as_bytes());
                    let message = Message::BuildSkipped(BuildSkipped {
                        entry,
                        reason: format!("the rebuild of its parent {parent} failed or was skipped"),
                        parent: parent.clone(),
                    });
                    (image, crate::plan::parent_rebuilt(&parent), job, message)
                }
            };
            self.decide(Envelope {
                id: MessageId::derived(seed("decision", &image).as_bytes()),
                job_id: job,
                cause,
                created_at: Timestamp::now(),
                message,
            });
        }
    }

    fn entry(&self, image: &ImageRef) -> Option<Entry> {
        self.index.as_ref()?.entry(image).cloned()
    }

    fn decide(&mut self, envelope: Envelope) {
        self.outbox
            .insert(envelope.id, Action::Publish(Box::new(envelope)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_common::index::test_support::sample_entry;
    use slipway_common::message::{BuildFailed, BuildStage, BuildSucceeded, SeenBy};

    const INDEX: &str = "https://git.example.org/team/index";

    fn tracking() -> Tracking {
        Tracking {
            index_url: INDEX.into(),
            index_branch: "main".into(),
            build_first_index: false,
            delete_retired_tags: false,
        }
    }

    fn sha(n: u8) -> CommitSha {
        CommitSha::try_from(format!("{n:02x}").repeat(20)).unwrap()
    }

    fn digest(n: u8) -> Digest {
        Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
    }

    /// An entry `team/<name>:1` built from `repo` (branch main), depending on `parents`.
    fn entry(name: &str, repo: &str, parents: &[&str]) -> Entry {
        let mut entry = sample_entry();
        entry.app_id = "team".into();
        entry.job_id = name.into();
        entry.desired_tag = "1".into();
        entry.git_url = format!("https://git.example.org/team/{repo}");
        entry.git_branch = "main".into();
        entry.depends_on = parents.iter().map(|p| format!("team/{p}:1")).collect();
        entry
    }

    fn image(name: &str) -> ImageRef {
        ImageRef::parse(&format!("team/{name}:1")).unwrap()
    }

    fn event(message: Message) -> Envelope {
        Envelope::new_job(Cause::User, message)
    }

    fn applied(commit: u8, entries: Vec<Entry>) -> Envelope {
        event(Message::IndexApplied(IndexApplied {
            git_url: INDEX.into(),
            git_branch: "main".into(),
            commit: sha(commit),
            entries,
        }))
    }

    fn pushed(repo: &str, commit: u8, delivery: Option<&str>) -> Envelope {
        event(Message::GitChanged(GitChanged {
            git_url: format!("https://git.example.org/team/{repo}"),
            git_branch: "main".into(),
            commit: sha(commit),
            seen_by: if delivery.is_some() {
                SeenBy::Webhook
            } else {
                SeenBy::Poll
            },
            delivery_id: delivery.map(str::to_owned),
        }))
    }

    fn succeeded(request: &Envelope, digest_byte: u8) -> Envelope {
        let Message::BuildRequested(requested) = &request.message else {
            panic!("not a request: {request:?}")
        };
        Envelope::for_job(
            request.job_id,
            request.cause.clone(),
            Message::BuildSucceeded(BuildSucceeded {
                entry: requested.entry.clone(),
                commit: sha(1),
                image: ImageRef::parse(&format!("127.0.0.1:5000/{}", requested.entry.image()))
                    .unwrap(),
                digest: digest(digest_byte),
                content_key: "k".into(),
                parent_digests: BTreeMap::new(),
                duration_ms: 1,
                record: None,
            }),
        )
    }

    fn failed(request: &Envelope) -> Envelope {
        let Message::BuildRequested(requested) = &request.message else {
            panic!("not a request: {request:?}")
        };
        Envelope::for_job(
            request.job_id,
            request.cause.clone(),
            Message::BuildFailed(BuildFailed {
                entry: requested.entry.clone(),
                commit: sha(1),
                stage: BuildStage::Build,
                error: "exit 1".into(),
                log_tail: vec![],
            }),
        )
    }

    /// The outbox as `kind image (cause)` lines.
    fn outbox(state: &TrackerState) -> Vec<String> {
        let mut lines: Vec<String> = state
            .outbox()
            .map(|action| match action {
                Action::Publish(envelope) => {
                    let image = envelope
                        .message
                        .image()
                        .map(|(image, _)| image.path().trim_start_matches("team/").to_owned())
                        .unwrap_or_default();
                    format!("{} {image} ({})", envelope.kind(), envelope.cause)
                }
                Action::LoadIndex { commit, .. } => format!("load index {}", &commit.as_str()[..2]),
            })
            .collect();
        lines.sort();
        lines
    }

    /// Publishes the outbox into `history` (as a leader would) and applies it; returns the
    /// events published.
    fn publish(state: &mut TrackerState, history: &mut Vec<Envelope>) -> Vec<Envelope> {
        let events: Vec<Envelope> = state
            .outbox()
            .filter_map(|action| match action {
                Action::Publish(envelope) => Some((**envelope).clone()),
                Action::LoadIndex { .. } => None,
            })
            .collect();
        for event in &events {
            history.push(event.clone());
            state.apply(event);
        }
        events
    }

    fn request_for<'a>(events: &'a [Envelope], name: &str) -> &'a Envelope {
        events
            .iter()
            .find(|e| {
                e.kind() == slipway_common::Kind::BuildRequested
                    && e.message.image().is_some_and(|(i, _)| i == image(name))
            })
            .unwrap_or_else(|| panic!("no request for {name} in {events:?}"))
    }

    #[test]
    fn the_first_index_is_a_baseline_and_the_next_commit_builds_changes_and_retires_removals() {
        let mut state = TrackerState::new(tracking());
        state.apply(&applied(
            1,
            vec![
                entry("a", "a", &[]),
                entry("gone", "g", &[]),
                entry("same", "s", &[]),
            ],
        ));
        assert!(
            outbox(&state).is_empty(),
            "the first index builds nothing by default"
        );

        let mut changed = entry("a", "a", &[]);
        changed.git_path = "/other".into();
        let mut bookkeeping = entry("same", "s", &[]);
        bookkeeping.notify_email = Some("new@example.org".into());
        state.apply(&applied(
            2,
            vec![changed, bookkeeping, entry("new", "n", &["a"])],
        ));
        assert_eq!(
            outbox(&state),
            [
                "build.requested a (index-change)",
                "image.retired gone (index-change)"
            ],
            "the new child waits for its changed parent"
        );
        assert_eq!(state.index().unwrap().commit, sha(2));
    }

    #[test]
    fn a_retirement_asks_for_the_tags_deletion_only_when_configured() {
        for delete_retired_tags in [false, true] {
            let mut state = TrackerState::new(Tracking {
                delete_retired_tags,
                ..tracking()
            });
            state.apply(&applied(
                1,
                vec![entry("a", "a", &[]), entry("gone", "g", &[])],
            ));
            state.apply(&applied(2, vec![entry("a", "a", &[])]));
            let retired: Vec<bool> = state
                .outbox()
                .filter_map(|action| match action {
                    Action::Publish(envelope) => match &envelope.message {
                        Message::ImageRetired(retired) => Some(retired.delete_tag),
                        _ => None,
                    },
                    Action::LoadIndex { .. } => None,
                })
                .collect();
            assert_eq!(retired, [delete_retired_tags]);
        }
    }

    #[test]
    fn building_the_first_index_is_a_setting_and_goes_parents_first() {
        let mut state = TrackerState::new(Tracking {
            build_first_index: true,
            ..tracking()
        });
        state.apply(&applied(
            1,
            vec![entry("child", "c", &["parent"]), entry("parent", "p", &[])],
        ));
        assert_eq!(outbox(&state), ["build.requested parent (index-change)"]);
    }

    #[test]
    fn a_moved_head_rebuilds_the_entries_of_that_branch_once_per_new_commit() {
        let mut state = TrackerState::new(tracking());
        state.apply(&applied(
            1,
            vec![
                entry("a", "shared", &[]),
                entry("b", "shared", &[]),
                entry("c", "other", &[]),
            ],
        ));
        state.apply(&pushed("shared", 1, None));
        assert!(
            outbox(&state).is_empty(),
            "the first head seen is the baseline"
        );
        state.apply(&pushed("shared", 1, None));
        assert!(outbox(&state).is_empty(), "the same head again");
        let mut history = Vec::new();
        state.apply(&pushed("shared.git", 2, None));
        assert_eq!(
            outbox(&state),
            [
                "build.requested a (git-change)",
                "build.requested b (git-change)"
            ]
        );
        publish(&mut state, &mut history);
        assert!(
            outbox(&state).is_empty(),
            "published events leave the outbox"
        );
    }

    #[test]
    fn a_webhook_delivery_is_acted_on_once_even_after_the_branch_moved_on() {
        let mut state = TrackerState::new(tracking());
        state.apply(&applied(1, vec![entry("a", "a", &[])]));
        state.apply(&pushed("a", 1, None));
        state.apply(&pushed("a", 2, Some("d-1")));
        let mut history = Vec::new();
        let first = publish(&mut state, &mut history);
        assert_eq!(first.len(), 1);
        state.apply(&succeeded(&first[0], 2));
        state.apply(&pushed("a", 3, Some("d-2")));
        let second = publish(&mut state, &mut history);
        assert_eq!(second.len(), 1);
        // The first push redelivered: its older head must not be rebuilt.
        state.apply(&pushed("a", 2, Some("d-1")));
        assert!(outbox(&state).is_empty());
    }

    #[test]
    fn a_new_index_head_asks_for_a_read_unless_in_force_or_rejected() {
        let mut state = TrackerState::new(tracking());
        let result_of = |state: &TrackerState| match state.outbox().next() {
            Some(Action::LoadIndex { result, .. }) => *result,
            other => panic!("no index read: {other:?}"),
        };
        state.apply(&pushed("index", 1, None));
        assert_eq!(outbox(&state), ["load index 01"]);
        let mut applied_event = applied(1, vec![]);
        applied_event.id = result_of(&state);
        state.apply(&applied_event);
        assert!(
            outbox(&state).is_empty(),
            "the read's result leaves the outbox"
        );
        state.apply(&pushed("index", 1, Some("same-head")));
        assert!(
            outbox(&state).is_empty(),
            "the commit in force is not read again"
        );

        state.apply(&pushed("index", 2, None));
        state.apply(&pushed("index", 3, None));
        assert_eq!(
            outbox(&state),
            ["load index 03"],
            "only the newest commit is read"
        );
        let mut rejected = event(Message::IndexRejected(
            slipway_common::message::IndexRejected {
                git_url: INDEX.into(),
                git_branch: "main".into(),
                commit: sha(3),
                problems: vec![],
                in_force: Some(sha(1)),
            },
        ));
        rejected.id = result_of(&state);
        state.apply(&rejected);
        assert!(outbox(&state).is_empty());
        assert_eq!(
            state.index().unwrap().commit,
            sha(1),
            "the last good index stays"
        );
        state.apply(&pushed("index", 2, None));
        state.apply(&pushed("index", 3, None));
        assert_eq!(
            outbox(&state),
            ["load index 02"],
            "a rejected commit is not read again; an older one seen anew is"
        );
    }

    #[test]
    fn a_failed_parent_skips_its_children_and_says_so() {
        let mut state = TrackerState::new(tracking());
        state.apply(&applied(
            1,
            vec![entry("p", "p", &[]), entry("c", "c", &["p"])],
        ));
        state.apply(&pushed("p", 1, None));
        state.apply(&pushed("p", 2, None));
        let mut history = Vec::new();
        let requests = publish(&mut state, &mut history);
        state.apply(&failed(request_for(&requests, "p")));
        assert_eq!(
            outbox(&state),
            ["build.skipped c (parent-rebuilt:team/p:1)"]
        );
    }

    /// One whole cascade over a diamond, driven as the pipeline would: the history, and for each
    /// decision the position of the event whose application decided it.
    fn cascade_history() -> (Vec<Envelope>, BTreeMap<MessageId, usize>) {
        let mut state = TrackerState::new(tracking());
        let mut history = Vec::new();
        let mut decided_at = BTreeMap::new();
        let mut apply = |state: &mut TrackerState, history: &mut Vec<Envelope>, event: Envelope| {
            history.push(event.clone());
            state.apply(&event);
            for action in state.outbox() {
                decided_at.entry(action.id()).or_insert(history.len() - 1);
            }
        };
        let entries = vec![
            entry("a", "a", &[]),
            entry("b", "b", &["a"]),
            entry("c", "c", &["a"]),
            entry("d", "d", &["b", "c"]),
        ];
        for event in [
            applied(1, entries),
            pushed("a", 1, None),
            pushed("a", 2, None),
        ] {
            apply(&mut state, &mut history, event);
        }
        let mut digest_byte = 10;
        loop {
            let requests: Vec<Envelope> = state
                .outbox()
                .filter_map(|action| match action {
                    Action::Publish(envelope) => Some((**envelope).clone()),
                    Action::LoadIndex { .. } => None,
                })
                .collect();
            if requests.is_empty() {
                break;
            }
            for request in &requests {
                apply(&mut state, &mut history, request.clone());
            }
            for request in requests.iter().rev() {
                digest_byte += 1;
                apply(&mut state, &mut history, succeeded(request, digest_byte));
            }
        }
        (history, decided_at)
    }

    #[test]
    fn a_cascade_rebuilds_the_diamond_once_in_order() {
        let (history, _) = cascade_history();
        let requested: Vec<String> = history
            .iter()
            .filter(|e| e.kind() == slipway_common::Kind::BuildRequested)
            .map(|e| e.message.image().unwrap().0.path().to_owned())
            .collect();
        assert_eq!(requested.len(), 4, "{requested:?}");
        assert_eq!(requested[0], "team/a");
        assert_eq!(requested[3], "team/d");
    }

    #[test]
    fn a_tracker_taking_over_at_any_point_finishes_the_cascade_without_duplicates() {
        let (history, decided_at) = cascade_history();
        assert_eq!(decided_at.len(), 4, "four requests were decided");
        for cut in 0..=history.len() {
            // The new leader folds what the history holds at the cut: its outbox is exactly
            // what the first leader had decided by then but not yet published.
            let mut state = TrackerState::new(tracking());
            for event in &history[..cut] {
                state.apply(event);
            }
            let mut pending: Vec<MessageId> = state.outbox().map(Action::id).collect();
            pending.sort();
            let published: Vec<MessageId> = history[..cut].iter().map(|e| e.id).collect();
            let mut expected: Vec<MessageId> = decided_at
                .iter()
                .filter(|(id, at)| **at < cut && !published.contains(id))
                .map(|(id, _)| *id)
                .collect();
            expected.sort();
            assert_eq!(pending, expected, "cut {cut}");
        }
    }

    #[test]
    fn a_package_update_rebuilds_each_listed_image_once_parents_first() {
        let mut state = TrackerState::new(tracking());
        state.apply(&applied(
            1,
            vec![
                entry("child", "c", &["base"]),
                entry("base", "b", &[]),
                entry("other", "o", &[]),
            ],
        ));
        let updated = |images: Vec<(&str, Vec<&str>)>, fingerprint: &str| {
            event(Message::PackagesUpdated(
                slipway_common::message::PackagesUpdated {
                    repository: "updates".into(),
                    fingerprint: fingerprint.into(),
                    images: images
                        .into_iter()
                        .map(|(name, packages)| slipway_common::message::ImagePackages {
                            image: image(name),
                            packages: packages.into_iter().map(str::to_owned).collect(),
                        })
                        .collect(),
                },
            ))
        };
        state.apply(&updated(vec![], "f1"));
        assert_eq!(state.fingerprint("updates"), Some("f1"));
        assert!(outbox(&state).is_empty(), "a baseline rebuilds nothing");
        state.apply(&updated(
            vec![
                ("child", vec!["openssl", "zlib"]),
                ("base", vec!["openssl"]),
                ("gone", vec!["openssl"]),
            ],
            "f2",
        ));
        assert_eq!(
            outbox(&state),
            ["build.requested base (package-update:openssl)"],
            "the child waits for its parent; an image not in the index is ignored"
        );
        assert_eq!(state.fingerprint("updates"), Some("f2"));
        let mut history = Vec::new();
        publish(&mut state, &mut history);
        state.apply(&updated(vec![("other", vec!["openssl"])], "f2"));
        assert!(
            outbox(&state).is_empty(),
            "a change already applied (same fingerprint) rebuilds nothing"
        );
    }

    #[test]
    fn the_branches_to_poll_are_the_index_and_each_entry_branch_once() {
        let mut state = TrackerState::new(tracking());
        assert_eq!(
            state.tracked_branches(),
            [(INDEX.to_owned(), "main".to_owned())]
        );
        state.apply(&applied(
            1,
            vec![
                entry("a", "x", &[]),
                entry("b", "x.git", &[]),
                entry("c", "y", &[]),
            ],
        ));
        assert_eq!(state.tracked_branches().len(), 3);
    }
}

//! The rebuilds in progress, as one plan over the index's dependency graph: which images wait for
//! which parents, which were requested under which job, how each ended. Pure: no I/O.
//!
//! # The rule
//!
//! An image enters the plan either as a *target* (somebody wants it rebuilt: a git change, an
//! index change, a package update) or as the *child of a parent whose rebuild changed its digest*.
//! A waiting image is released once every parent of it that is in the plan has ended:
//! - a parent failed or was skipped → it is skipped too (and says which parent);
//! - it is a target, or some parent changed → it is requested;
//! - otherwise (every parent's rebuild was a no-op) → it ends unchanged, and cascades no further.
//!
//! So parents are built before children even when both are targets of one change, a diamond's
//! bottom is requested once, after both sides, and a failure stops its whole subtree. Each image
//! is in the plan at most once, so the plan is bounded by the index. When no image is waiting or
//! requested any more the plan is cleared.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use slipway_common::envelope::Cause;
use slipway_common::index::graph::DependencyGraph;
use slipway_common::{ImageRef, JobId};

/// Where one image of the plan stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Waits for parents in the plan to end.
    Waiting,
    /// Requested under this job; waits for its outcome.
    Requested(JobId),
    /// Built; `changed` when its digest changed (only then do its children follow).
    Built {
        /// Whether the digest changed.
        changed: bool,
    },
    /// Its build failed (lint or build).
    Failed,
    /// Not rebuilt, because this parent failed or was skipped.
    Skipped(ImageRef),
}

impl Stage {
    /// Whether the image's part in the plan is over.
    pub fn ended(&self) -> bool {
        !matches!(self, Stage::Waiting | Stage::Requested(_))
    }
}

/// One image of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Member {
    stage: Stage,
    /// Why it is wanted for itself (a target), when it is.
    target: Option<Cause>,
    /// A new reason to rebuild it that came while it was being built: it is requested again
    /// once the current build ends.
    again: Option<Cause>,
}

/// What the plan decided about an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Request a rebuild of `image`, for `cause`, as job `job`.
    Request {
        /// The image.
        image: ImageRef,
        /// Why.
        cause: Cause,
        /// The job the request starts (the plan waits for its outcome).
        job: JobId,
    },
    /// `image` is not rebuilt because `parent` failed or was skipped.
    Skip {
        /// The image.
        image: ImageRef,
        /// The parent that stopped it.
        parent: ImageRef,
    },
}

/// How a requested build ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildEnd {
    /// Built and pushed; `changed` when the digest differs from the image's previous one.
    Built {
        /// Whether the digest changed.
        changed: bool,
    },
    /// Lint or build failed.
    Failed,
}

impl Member {
    /// A member that waits, wanted for itself when `target` is set.
    fn waiting(target: Option<Cause>) -> Self {
        Self {
            stage: Stage::Waiting,
            target,
            again: None,
        }
    }
}

/// The members that are waiting or requested, kept beside the members so that a decision costs
/// the images in progress, not the whole plan: a webhook burst over thousands of repositories
/// leaves thousands of requested images waiting for their builds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct InProgress {
    waiting: BTreeSet<ImageRef>,
    requested: HashMap<JobId, ImageRef>,
}

impl InProgress {
    /// Move `member` (of `image`) to `stage`, keeping the index true.
    fn set(&mut self, image: &ImageRef, member: &mut Member, stage: Stage) {
        self.remove(image, member);
        match &stage {
            Stage::Waiting => {
                self.waiting.insert(image.clone());
            }
            Stage::Requested(job) => {
                self.requested.insert(*job, image.clone());
            }
            _ => {}
        }
        member.stage = stage;
    }

    /// `member` (of `image`) left the plan.
    fn remove(&mut self, image: &ImageRef, member: &Member) {
        match &member.stage {
            Stage::Waiting => {
                self.waiting.remove(image);
            }
            Stage::Requested(job) => {
                self.requested.remove(job);
            }
            _ => {}
        }
    }

    fn len(&self) -> usize {
        self.waiting.len() + self.requested.len()
    }
}

/// The rebuilds in progress.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RebuildPlan {
    members: BTreeMap<ImageRef, Member>,
    in_progress: InProgress,
}

impl RebuildPlan {
    /// Whether nothing is in progress.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The stage of `image`, when it is in the plan.
    pub fn stage(&self, image: &ImageRef) -> Option<&Stage> {
        self.members.get(image).map(|member| &member.stage)
    }

    /// How many images are waiting or requested.
    pub fn in_progress(&self) -> usize {
        self.in_progress.len()
    }

    /// Add `image` as a waiting member; the caller checked it is not in the plan.
    fn insert_waiting(&mut self, image: &ImageRef, target: Option<Cause>) {
        self.members.insert(image.clone(), Member::waiting(target));
        self.in_progress.waiting.insert(image.clone());
    }

    /// `image` is wanted for itself, for `cause`. An image being built is requested again after
    /// that build (the reason came after its request); a built one is rebuilt; one that failed or
    /// was skipped in this plan is tried again.
    pub fn want(&mut self, image: &ImageRef, cause: Cause) {
        match self.members.get_mut(image) {
            None => self.insert_waiting(image, Some(cause)),
            Some(member) => match member.stage {
                Stage::Waiting => {
                    member.target.get_or_insert(cause);
                }
                Stage::Requested(_) => {
                    member.again.get_or_insert(cause);
                }
                _ => {
                    self.in_progress.set(image, member, Stage::Waiting);
                    member.target = Some(cause);
                }
            },
        }
    }

    /// `parent` was rebuilt with a new digest: each of its children in `graph` follows it. A
    /// child being built is rebuilt again afterwards (it started from the old parent); one
    /// already built in this plan is rebuilt; one that failed or was skipped stays so.
    pub fn parent_changed(&mut self, graph: &DependencyGraph, parent: &ImageRef) {
        for child in graph.children_of(parent) {
            match self.members.get_mut(child) {
                None => self.insert_waiting(child, None),
                Some(member) => match member.stage {
                    Stage::Requested(_) => {
                        member.again.get_or_insert(parent_rebuilt(parent));
                    }
                    Stage::Built { .. } => self.in_progress.set(child, member, Stage::Waiting),
                    Stage::Waiting | Stage::Failed | Stage::Skipped(_) => {}
                },
            }
        }
    }

    /// Drop `image` from the plan (it left the index); its children no longer wait for it.
    pub fn forget(&mut self, image: &ImageRef) {
        if let Some(member) = self.members.remove(image) {
            self.in_progress.remove(image, &member);
        }
    }

    /// The image requested under `job`, if the plan requested it and waits for it.
    pub fn requested_as(&self, job: JobId) -> Option<&ImageRef> {
        self.in_progress.requested.get(&job)
    }

    /// The build of `image` ended. A change makes its children follow; a failure skips its
    /// whole subtree (the skips come out of the next [`release`](Self::release)).
    pub fn ended(&mut self, graph: &DependencyGraph, image: &ImageRef, end: BuildEnd) {
        let Some(member) = self.members.get_mut(image) else {
            return;
        };
        let stage = match end {
            BuildEnd::Built { changed } => Stage::Built { changed },
            BuildEnd::Failed => Stage::Failed,
        };
        self.in_progress.set(image, member, stage);
        if let Some(cause) = member.again.take() {
            self.in_progress.set(image, member, Stage::Waiting);
            member.target = Some(cause);
        }
        match end {
            BuildEnd::Built { changed: true } => self.parent_changed(graph, image),
            BuildEnd::Failed => self.fail_subtree(graph, image),
            BuildEnd::Built { changed: false } => {}
        }
    }

    /// Every descendant of the failed `image` that is not being built waits in the plan, so
    /// that the next release skips it, naming its parent.
    fn fail_subtree(&mut self, graph: &DependencyGraph, image: &ImageRef) {
        let mut stack = vec![image.clone()];
        let mut seen = BTreeSet::new();
        while let Some(parent) = stack.pop() {
            for child in graph.children_of(&parent) {
                if !seen.insert(child.clone()) {
                    continue;
                }
                let waits = match self.members.get(child) {
                    None => {
                        self.insert_waiting(child, None);
                        true
                    }
                    Some(member) => member.stage == Stage::Waiting,
                };
                if waits {
                    stack.push(child.clone());
                }
            }
        }
    }

    /// Decide every waiting image whose parents in the plan have all ended, in dependency order
    /// (a skip or a no-op releases its own children in the same call). A request's job id is
    /// `job_for(image)`.
    pub fn release(
        &mut self,
        graph: &DependencyGraph,
        mut job_for: impl FnMut(&ImageRef) -> JobId,
    ) -> Vec<Decision> {
        let mut decisions = Vec::new();
        loop {
            let mut progressed = false;
            let waiting: Vec<ImageRef> = self.in_progress.waiting.iter().cloned().collect();
            for image in waiting {
                let parents: Vec<(&ImageRef, &Stage)> = graph
                    .parents_of(&image)
                    .into_iter()
                    .filter_map(|parent| self.stage(parent).map(|stage| (parent, stage)))
                    .collect();
                if parents.iter().any(|(_, stage)| !stage.ended()) {
                    continue;
                }
                let stopped = parents
                    .iter()
                    .find(|(_, stage)| matches!(stage, Stage::Failed | Stage::Skipped(_)))
                    .map(|(parent, _)| (*parent).clone());
                let changed = parents
                    .iter()
                    .find(|(_, stage)| **stage == Stage::Built { changed: true })
                    .map(|(parent, _)| (*parent).clone());
                let Some(member) = self.members.get_mut(&image) else {
                    continue;
                };
                progressed = true;
                if let Some(parent) = stopped {
                    self.in_progress
                        .set(&image, member, Stage::Skipped(parent.clone()));
                    decisions.push(Decision::Skip { image, parent });
                } else if let Some(cause) = member
                    .target
                    .clone()
                    .or_else(|| changed.as_ref().map(parent_rebuilt))
                {
                    let job = job_for(&image);
                    self.in_progress.set(&image, member, Stage::Requested(job));
                    decisions.push(Decision::Request { image, cause, job });
                } else {
                    self.in_progress
                        .set(&image, member, Stage::Built { changed: false });
                }
            }
            if !progressed {
                break;
            }
        }
        if self.in_progress() == 0 {
            self.members.clear();
        }
        debug_assert_eq!(
            self.in_progress(),
            self.members
                .values()
                .filter(|member| !member.stage.ended())
                .count()
        );
        decisions
    }
}

/// The cause of a rebuild that follows `parent`.
pub fn parent_rebuilt(parent: &ImageRef) -> Cause {
    Cause::ParentRebuilt(parent.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str) -> ImageRef {
        ImageRef::parse(&format!("team/{name}:1")).unwrap()
    }

    /// A graph of `(child, parents)`.
    fn graph(edges: &[(&str, &[&str])]) -> DependencyGraph {
        let nodes: Vec<(ImageRef, Vec<ImageRef>)> = edges
            .iter()
            .map(|(child, parents)| (image(child), parents.iter().map(|p| image(p)).collect()))
            .collect();
        DependencyGraph::new(
            nodes
                .iter()
                .map(|(child, parents)| (child.clone(), parents.as_slice())),
        )
    }

    /// Releases, names each request's job, and returns the decisions as short strings.
    fn step(plan: &mut RebuildPlan, graph: &DependencyGraph) -> Vec<String> {
        plan.release(graph, |_| JobId::new())
            .into_iter()
            .map(|decision| match decision {
                Decision::Request { image, cause, .. } => {
                    format!("request {} ({cause})", short(&image))
                }
                Decision::Skip { image, parent } => {
                    format!("skip {} (parent {})", short(&image), short(&parent))
                }
            })
            .collect()
    }

    fn short(image: &ImageRef) -> String {
        image.path().trim_start_matches("team/").to_owned()
    }

    fn build(plan: &mut RebuildPlan, graph: &DependencyGraph, name: &str, end: BuildEnd) {
        let Some(Stage::Requested(job)) = plan.stage(&image(name)).cloned() else {
            panic!("{name} is not requested: {:?}", plan.stage(&image(name)))
        };
        assert_eq!(plan.requested_as(job), Some(&image(name)));
        plan.ended(graph, &image(name), end);
    }

    const CHANGED: BuildEnd = BuildEnd::Built { changed: true };
    const SAME: BuildEnd = BuildEnd::Built { changed: false };

    fn diamond() -> DependencyGraph {
        graph(&[("a", &[]), ("b", &["a"]), ("c", &["a"]), ("d", &["b", "c"])])
    }

    #[test]
    fn a_diamond_bottom_is_requested_once_after_both_sides() {
        let graph = diamond();
        let mut plan = RebuildPlan::default();
        plan.want(&image("a"), Cause::GitChange);
        assert_eq!(step(&mut plan, &graph), ["request a (git-change)"]);
        build(&mut plan, &graph, "a", CHANGED);
        assert_eq!(
            step(&mut plan, &graph),
            [
                "request b (parent-rebuilt:team/a:1)",
                "request c (parent-rebuilt:team/a:1)"
            ]
        );
        build(&mut plan, &graph, "b", CHANGED);
        assert!(step(&mut plan, &graph).is_empty(), "d waits for c");
        build(&mut plan, &graph, "c", SAME);
        assert_eq!(
            step(&mut plan, &graph),
            ["request d (parent-rebuilt:team/b:1)"]
        );
        build(&mut plan, &graph, "d", CHANGED);
        assert!(step(&mut plan, &graph).is_empty());
        assert!(plan.is_empty(), "a settled plan is cleared");
    }

    #[test]
    fn a_no_op_rebuild_cascades_no_further() {
        let graph = diamond();
        let mut plan = RebuildPlan::default();
        plan.want(&image("a"), Cause::GitChange);
        step(&mut plan, &graph);
        build(&mut plan, &graph, "a", SAME);
        assert!(step(&mut plan, &graph).is_empty());
        assert!(plan.is_empty());
    }

    #[test]
    fn parents_come_first_when_both_are_wanted_at_once() {
        let graph = graph(&[("foreman", &[]), ("dynflow", &["foreman"])]);
        let mut plan = RebuildPlan::default();
        plan.want(&image("dynflow"), Cause::IndexChange);
        plan.want(&image("foreman"), Cause::IndexChange);
        assert_eq!(step(&mut plan, &graph), ["request foreman (index-change)"]);
        // The parent's rebuild is a no-op, but the child was wanted for itself.
        build(&mut plan, &graph, "foreman", SAME);
        assert_eq!(step(&mut plan, &graph), ["request dynflow (index-change)"]);
    }

    #[test]
    fn a_failed_parent_skips_its_whole_subtree_naming_the_parent() {
        let graph = graph(&[("a", &[]), ("b", &["a"]), ("c", &["b"]), ("x", &[])]);
        let mut plan = RebuildPlan::default();
        plan.want(&image("a"), Cause::GitChange);
        plan.want(&image("x"), Cause::GitChange);
        step(&mut plan, &graph);
        build(&mut plan, &graph, "a", BuildEnd::Failed);
        assert_eq!(
            step(&mut plan, &graph),
            ["skip b (parent a)", "skip c (parent b)"]
        );
        assert!(!plan.is_empty(), "x is still being built");
        build(&mut plan, &graph, "x", CHANGED);
        step(&mut plan, &graph);
        assert!(plan.is_empty());
    }

    #[test]
    fn a_diamond_with_one_failed_side_skips_the_bottom_once() {
        let graph = diamond();
        let mut plan = RebuildPlan::default();
        plan.want(&image("a"), Cause::GitChange);
        step(&mut plan, &graph);
        build(&mut plan, &graph, "a", CHANGED);
        step(&mut plan, &graph);
        build(&mut plan, &graph, "b", BuildEnd::Failed);
        assert!(step(&mut plan, &graph).is_empty(), "d waits for c");
        build(&mut plan, &graph, "c", CHANGED);
        assert_eq!(step(&mut plan, &graph), ["skip d (parent b)"]);
        assert!(plan.is_empty());
    }

    #[test]
    fn a_reason_arriving_during_a_build_requests_it_again_afterwards() {
        let graph = graph(&[("a", &[])]);
        let mut plan = RebuildPlan::default();
        plan.want(&image("a"), Cause::GitChange);
        step(&mut plan, &graph);
        plan.want(&image("a"), Cause::GitChange);
        assert!(step(&mut plan, &graph).is_empty(), "one build at a time");
        build(&mut plan, &graph, "a", CHANGED);
        assert_eq!(step(&mut plan, &graph), ["request a (git-change)"]);
        build(&mut plan, &graph, "a", SAME);
        step(&mut plan, &graph);
        assert!(plan.is_empty());
    }

    #[test]
    fn a_parent_changing_while_its_child_builds_rebuilds_the_child_afterwards() {
        let graph = graph(&[("a", &[]), ("b", &["a"])]);
        let mut plan = RebuildPlan::default();
        plan.want(&image("b"), Cause::GitChange);
        step(&mut plan, &graph);
        plan.want(&image("a"), Cause::GitChange);
        assert_eq!(step(&mut plan, &graph), ["request a (git-change)"]);
        build(&mut plan, &graph, "a", CHANGED);
        assert!(step(&mut plan, &graph).is_empty(), "b is still building");
        build(&mut plan, &graph, "b", CHANGED);
        assert_eq!(
            step(&mut plan, &graph),
            ["request b (parent-rebuilt:team/a:1)"]
        );
    }

    #[test]
    fn fifty_images_with_diamonds_are_each_rebuilt_once_after_all_their_parents() {
        // Five levels of ten; each image depends on one or two images of the level above.
        let names: Vec<String> = (0..50).map(|i| format!("i{i}")).collect();
        let mut edges: Vec<(String, Vec<String>)> = Vec::new();
        for i in 0..50 {
            let level = i / 10;
            let parents = if level == 0 {
                vec![]
            } else {
                let above = (level - 1) * 10;
                let mut p = vec![names[above + i % 10].clone()];
                if i % 3 == 0 {
                    p.push(names[above + (i + 1) % 10].clone());
                }
                p
            };
            edges.push((names[i].clone(), parents));
        }
        // A single root over the first level.
        edges.push(("root".into(), vec![]));
        for edge in edges.iter_mut().take(10) {
            edge.1.push("root".into());
        }
        let borrowed: Vec<(&str, Vec<&str>)> = edges
            .iter()
            .map(|(c, p)| (c.as_str(), p.iter().map(String::as_str).collect()))
            .collect();
        let slices: Vec<(&str, &[&str])> =
            borrowed.iter().map(|(c, p)| (*c, p.as_slice())).collect();
        let graph = graph(&slices);
        let mut plan = RebuildPlan::default();
        plan.want(&image("root"), Cause::GitChange);
        let mut built: Vec<ImageRef> = Vec::new();
        loop {
            let requested: Vec<ImageRef> = plan
                .release(&graph, |_| JobId::new())
                .into_iter()
                .map(|decision| match decision {
                    Decision::Request { image, .. } => image,
                    skip => panic!("nothing fails here: {skip:?}"),
                })
                .collect();
            if requested.is_empty() {
                break;
            }
            // Finish them in reverse order.
            for image in requested.iter().rev() {
                for parent in graph.parents_of(image) {
                    assert!(built.contains(parent), "{image} before its parent {parent}");
                }
                assert!(!built.contains(image), "{image} rebuilt twice");
                built.push(image.clone());
                plan.ended(&graph, image, CHANGED);
            }
        }
        assert_eq!(built.len(), 51, "every descendant once");
        assert!(plan.is_empty());
    }

    #[test]
    fn a_forgotten_or_rebuilt_request_is_no_longer_waited_for() {
        let graph = diamond();
        let mut plan = RebuildPlan::default();
        plan.want(&image("b"), Cause::GitChange);
        plan.want(&image("c"), Cause::GitChange);
        let jobs: Vec<JobId> = plan
            .release(&graph, |_| JobId::new())
            .into_iter()
            .map(|decision| match decision {
                Decision::Request { job, .. } => job,
                skip => panic!("{skip:?}"),
            })
            .collect();
        assert_eq!((jobs.len(), plan.in_progress()), (2, 2));
        plan.forget(&image("b"));
        assert_eq!(plan.requested_as(jobs[0]), None, "b left the index");
        assert_eq!(plan.in_progress(), 1);
        // c ends with no change: d has no changed parent and c's job is no longer awaited.
        plan.ended(&graph, &image("c"), SAME);
        assert_eq!(plan.requested_as(jobs[1]), None);
        assert_eq!(plan.in_progress(), 0);
        assert!(step(&mut plan, &graph).is_empty());
        assert!(
            plan.is_empty(),
            "a plan with nothing in progress is cleared"
        );
    }
}

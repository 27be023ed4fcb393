//! Slipway's repo-tracker: it follows the index repository and every tracked branch, and asks
//! for rebuilds on a git change, a parent rebuild or a package update, in dependency order.
//!
//! The pure core: [`plan`] (the rebuilds in progress over the dependency graph), [`state`] (the
//! tracker's view, folded from the history stream, and the events it decides), [`remote`] (which
//! URLs name the same repository), [`poll`] (the order and limits of a poll cycle) and
//! [`webhook`] (forge push events: signature checks and the push they describe). The shell:
//! [`config`], [`index_load`] (reading an index commit), [`http`] (the webhook endpoint),
//! [`packages`] (the package-repository watch: repository fingerprints and the latest scan
//! reports → `packages.updated`) and [`worker`] (the follower of the history, the leader's loop,
//! the wiring). The index model, its validation, diff and dependency graph are in
//! `slipway_common::index`, shared with the CLI.

pub mod config;
pub mod http;
pub mod index_load;
pub mod packages;
pub mod plan;
pub mod poll;
pub mod remote;
pub mod state;
pub mod telemetry;
pub mod webhook;
pub mod worker;

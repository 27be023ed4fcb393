//! Slipway's repo-tracker: it follows the index repository and every tracked branch, and asks
//! for rebuilds on a git change, a parent rebuild or a package update, in dependency order.
//!
//! The pure core: [`plan`] (the rebuilds in progress over the dependency graph), [`state`] (the
//! tracker's view, folded from the history stream, and the events it decides), [`remote`] (which
//! URLs name the same repository) and [`webhook`] (forge push events: signature checks and the
//! push they describe). The index model, its validation, diff and dependency graph are in
//! `slipway_common::index`, shared with the CLI.

pub mod plan;
pub mod remote;
pub mod state;
pub mod webhook;

//! Slipway's repo-tracker: it follows the index repository and every tracked branch, and asks
//! for rebuilds on a git change, a parent rebuild or a package update, in dependency order.
//!
//! This crate holds its pure core so far: [`webhook`] (forge push events: signature checks and
//! the push they describe). The index model, its validation, diff and dependency graph are in
//! `slipway_common::index`, shared with the CLI.

pub mod webhook;

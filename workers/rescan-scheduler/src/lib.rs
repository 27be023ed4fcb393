//! Slipway's rescan-scheduler: every live image is rescanned once per period, at a stable offset
//! that spreads the requests evenly; index entries with a `rebuild-schedule` are rebuilt on
//! their clock; each owner gets one summary of its images per period. Its state is the history
//! stream: any number of instances follow it, one leads.
//!
//! The pure core is [`state`] (the view folded from the history, and what is due when). The
//! shell: [`config`], [`telemetry`] and [`worker`] (the follower, the leader's loop, the wiring).

pub mod config;
pub mod state;
pub mod telemetry;
pub mod worker;

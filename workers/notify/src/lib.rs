//! Slipway's notify worker: it mails owners about what the pipeline did to their images — lint,
//! build and scan outcomes, rejected index commits, weekly summaries — once each.
//!
//! The pure core: [`compose`] (what a mail says) and [`policy`] (who gets which mail, by the
//! owners' policies) and [`state`] (the mails already sent and the digests gathering, folded from
//! the history). The shell: [`smtp`] (lettre), [`config`], [`telemetry`] and [`worker`] (the
//! consumer of the notify queue, the history follower, the digest sender).

pub mod compose;
pub mod config;
pub mod policy;
pub mod smtp;
pub mod state;
pub mod telemetry;
pub mod worker;

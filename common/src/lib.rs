//! Slipway's shared foundation: the versioned message contract every worker speaks, the container
//! index model (with the git URL, ref and path validation `slipway-source` fetches by), layered
//! configuration, telemetry, the shutdown signal and the one startup path of worker binaries
//! (`process`). It spawns no processes.

pub mod config;
pub mod envelope;
pub mod errors;
pub mod image;
pub mod index;
pub mod journal;
pub mod message;
pub mod process;
pub mod schedule;
pub mod schema;
pub mod service;
pub mod shutdown;
pub mod telemetry;
pub mod terminal;
pub mod worker;
pub mod workspace;

pub use envelope::{Cause, DecodeError, Envelope, JobId, MessageId, Timestamp};
pub use image::{Digest, ImageRef};
pub use message::{Kind, Message};

//! Slipway's shared foundation: the versioned message contract every worker speaks, the container
//! index model, layered configuration, telemetry, the shutdown signal and the one startup path of
//! worker binaries (`process`).

pub mod config;
pub mod envelope;
pub mod image;
pub mod index;
pub mod message;
pub mod process;
pub mod schema;
pub mod shutdown;
/// Git source fetching: a cache of bare mirrors, shallow fetches of one commit, file reads and tree
/// exports under time and size limits.
pub mod source;
pub mod telemetry;
pub mod workspace;

pub use envelope::{Cause, DecodeError, Envelope, JobId, MessageId, Timestamp};
pub use image::{Digest, ImageRef};
pub use message::{Kind, Message};

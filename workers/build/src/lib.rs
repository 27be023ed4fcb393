//! Slipway's build worker: turns a linted commit into a tested image in the registry. The pure core
//! ([`plan`]) decides what to build and what to publish, [`sandbox`] how each step is confined and
//! whether an entry may build here at all; the other modules talk to git, the Docker
//! Engine and the registry.

pub mod context;
pub mod features;
pub mod layer_cache;
pub mod plan;
/// The registry client, shared with the scan worker (`slipway-registry`).
pub use slipway_registry as registry;
pub mod retire;
pub mod sandbox;
pub mod secrets;
pub mod telemetry;
pub mod worker;

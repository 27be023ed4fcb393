//! Slipway's fuzzer: a mutational driver on stable Rust over the parsers that read untrusted
//! bytes (message envelopes, Dockerfiles, index files, package databases, repository indexes,
//! OSV records, image archives).
//!
//! `targets` names each parser with its seeds and dictionary; `mutate` makes inputs (pure,
//! deterministic for a seed); `seeds` loads the seed corpus; `child` is the loop a child process
//! runs per target (limits, pending input, caught panics); `driver` starts the children, tells
//! deaths and hangs apart, saves crashing inputs and prints the table.

pub mod child;
pub mod driver;
pub mod mutate;
pub mod seeds;
pub mod targets;

//! Slipway's Dockerfile linter: a hadolint-compatible parser and rule set (pure, no I/O), output
//! formats and configuration, the ShellCheck adapter, and the lint worker (its decisions in
//! [`job`], its broker wiring in [`worker`]).

pub mod batch;
pub mod config;
pub mod format;
pub mod images;
pub mod job;
pub mod lint;
pub mod parser;
pub mod rules;
pub mod shell;
pub mod shellcheck;
pub mod substitution;
pub mod syntax;
pub mod telemetry;
pub mod worker;

pub use lint::{Settings, lint, lint_with};
pub use rules::{Failure, Severity};

//! Packaging only: this crate carries the `slipway-workers` Debian package's metadata
//! (`[package.metadata.deb]` in its `Cargo.toml`) and has no code. The package holds the six
//! worker binaries, their systemd template units and default configuration files; build it with
//! `deploy/package.sh`.

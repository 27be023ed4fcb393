//! Slipway's scan worker as a library: what is in a container image and what is wrong with it,
//! read without running the image.
//!
//! Pure core, each part a function from file contents to findings: `package` (the inventory's
//! types), `version` (dpkg, rpm, apk, PEP 440, semver and gem version ordering), `os` (OS identity
//! and the dpkg, rpm and apk package databases), `lang` (Python, npm and Ruby packages),
//! `inventory` (all of them over one filesystem), `integrity` (files against their package
//! databases), `capabilities` (what the image configuration and its `RUN`/`INSTALL`/`UNINSTALL`
//! labels ask of the host), `osv` (the offline match against an OSV database, or the report that
//! none is configured), `updates` (OS packages against the apt, yum and apk repositories
//! configured for the image's OS: index parsers and the comparison are pure, its `fetch` shell
//! downloads and caches indexes), `purl` and `sbom` (CycloneDX), `report` (one scan's steps and
//! its report) and `job` (which image a message asks for, and what to publish).
//!
//! Shell: `image` reads filesystems (layers streamed or read from directories, whiteouts applied,
//! only the files scanners need kept), `source` finds them (the Docker daemon's image, an archive,
//! a directory), `worker` and `telemetry` wire the scan worker to the broker.

pub mod capabilities;
pub mod gate;
pub mod image;
pub mod integrity;
pub mod inventory;
pub mod job;
pub mod lang;
pub mod os;
pub mod osv;
pub mod package;
pub mod pipeline;
pub mod provenance;
pub mod purl;
pub mod report;
pub mod reports;
pub mod sbom;
pub mod source;
pub mod telemetry;
pub mod updates;
pub mod version;
pub mod worker;

//! Slipway's scan worker as a library: what is in a container image and what is wrong with it,
//! read without running the image.
//!
//! Pure core, each part a function from file contents to findings: `package` (the inventory's
//! types), `version` (dpkg, rpm and apk version ordering), `os` (OS identity and the dpkg, rpm and
//! apk package databases), `lang` (Python, npm and Ruby packages). The image's filesystem comes from
//! `image` (layers streamed, whiteouts applied, only the files scanners need kept). `capabilities`
//! reads what the image configuration asks of the host (root user, the `RUN`/`INSTALL`/`UNINSTALL`
//! labels' `docker run` options). `osv` matches the inventory against an OSV database on disk, when
//! one is configured, and says so when none is.

pub mod capabilities;
pub mod image;
pub mod integrity;
pub mod inventory;
pub mod job;
pub mod lang;
pub mod os;
pub mod osv;
pub mod package;
pub mod purl;
pub mod report;
pub mod sbom;
pub mod source;
pub mod telemetry;
pub mod version;
pub mod worker;

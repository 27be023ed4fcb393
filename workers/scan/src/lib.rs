//! Slipway's scan worker as a library: what is in a container image and what is wrong with it,
//! read without running the image.
//!
//! Pure core, each part a function from file contents to findings: `package` (the inventory's
//! types), `version` (dpkg, rpm and apk version ordering), `os` (OS identity and the dpkg, rpm and
//! apk package databases), `lang` (Python, npm and Ruby packages). The image's filesystem comes from
//! `image` (layers streamed, whiteouts applied, only the files scanners need kept). `updates`
//! compares the OS packages with the apt, yum and apk repositories configured for the image's OS
//! (index parsers and the comparison are pure; its `fetch` shell downloads and caches indexes).

pub mod image;
pub mod integrity;
pub mod inventory;
pub mod lang;
pub mod os;
pub mod package;
pub mod purl;
pub mod sbom;
pub mod updates;
pub mod version;

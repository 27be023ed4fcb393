//! The package inventory's types: what every package reader produces and every scanner reads.

use serde::Serialize;

/// The packaging system a package belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ecosystem {
    /// Debian packages (dpkg).
    Deb,
    /// RPM packages.
    Rpm,
    /// Alpine packages (apk).
    Apk,
    /// Python distributions (`*.dist-info`, `*.egg-info`).
    Pypi,
    /// npm packages (`node_modules/**/package.json`).
    Npm,
    /// Ruby gems (`specifications/*.gemspec`).
    Gem,
}

impl Ecosystem {
    /// Every ecosystem, in their order.
    pub const ALL: [Ecosystem; 6] = [
        Ecosystem::Deb,
        Ecosystem::Rpm,
        Ecosystem::Apk,
        Ecosystem::Pypi,
        Ecosystem::Npm,
        Ecosystem::Gem,
    ];

    /// The name used in reports and purls (`deb`, `rpm`, `apk`, `pypi`, `npm`, `gem`).
    pub fn as_str(self) -> &'static str {
        match self {
            Ecosystem::Deb => "deb",
            Ecosystem::Rpm => "rpm",
            Ecosystem::Apk => "apk",
            Ecosystem::Pypi => "pypi",
            Ecosystem::Npm => "npm",
            Ecosystem::Gem => "gem",
        }
    }
}

/// A digest algorithm a package database records file digests with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DigestAlgorithm {
    /// dpkg's `md5sums`, old rpm databases.
    Md5,
    /// apk's `Z:Q1…` checksums.
    Sha1,
    /// rpm's default since 4.6.
    Sha256,
    /// Used by some rpm builds.
    Sha384,
    /// Used by some rpm builds.
    Sha512,
}

/// A file's expected digest, as recorded by its package.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct FileDigest {
    /// How it was computed.
    pub algorithm: DigestAlgorithm,
    /// Lowercase hex.
    pub hex: String,
}

/// A file a package says it installed, with what the package database recorded about it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PackageFile {
    /// Absolute path inside the image (`/usr/bin/env`).
    pub path: String,
    /// Expected digest of a regular file's content, when recorded.
    pub digest: Option<FileDigest>,
    /// Expected size in bytes, when recorded.
    pub size: Option<u64>,
    /// Expected mode bits (type and permissions, as `st_mode`), when recorded.
    pub mode: Option<u32>,
    /// A configuration file: changing it is expected, reported apart from failures.
    pub config: bool,
    /// Documentation: may be missing (excluded at install time), reported apart.
    pub doc: bool,
    /// A file whose content changes by design (`%ghost`, `%verify(not …)`): not verified.
    pub volatile: bool,
}

/// One installed package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Package {
    /// The packaging system.
    pub ecosystem: Ecosystem,
    /// Name as the packaging system knows it (`libc6`, `bash`, `requests`).
    pub name: String,
    /// Full version as the packaging system compares it (`1:2.36-9+deb12u4`, `4.18.0-1.el9`).
    pub version: String,
    /// Architecture (`amd64`, `x86_64`, `noarch`), when the system records one.
    pub arch: Option<String>,
    /// The source package it was built from, when different from `name` (dpkg `Source:`, rpm
    /// `SOURCERPM` name, apk `o:`).
    pub source_name: Option<String>,
    /// The source package's version, when it differs from `version`.
    pub source_version: Option<String>,
    /// Declared licence(s), as written by the package.
    pub license: Option<String>,
    /// Where the package's metadata was found in the image (`/var/lib/dpkg/status`,
    /// `/usr/lib/python3/dist-packages/requests-2.28.1.dist-info/METADATA`).
    pub location: String,
    /// Files the package installed (OS packages; empty for language packages).
    pub files: Vec<PackageFile>,
}

/// The operating system of an image, from `etc/os-release` (or `usr/lib/os-release`), with
/// `etc/redhat-release` / `etc/alpine-release` as fallbacks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OsIdentity {
    /// `ID` (`debian`, `ubuntu`, `centos`, `rhel`, `fedora`, `alpine`).
    pub id: String,
    /// `VERSION_ID` (`12`, `7`, `3.19.1`), when known.
    pub version_id: Option<String>,
    /// `ID_LIKE` entries (`rhel fedora` → `["rhel", "fedora"]`).
    pub id_like: Vec<String>,
    /// `VERSION_CODENAME` (`bookworm`), when known.
    pub codename: Option<String>,
    /// `PRETTY_NAME` (`Debian GNU/Linux 12 (bookworm)`), when known.
    pub pretty_name: Option<String>,
}

/// Everything installed in one image.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Inventory {
    /// The OS, when the image has an identifiable one.
    pub os: Option<OsIdentity>,
    /// OS and language packages, sorted by ecosystem, name, version, location.
    pub packages: Vec<Package>,
}

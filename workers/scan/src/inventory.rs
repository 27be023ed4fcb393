//! The package inventory of an image: which files the readers need ([`wanted`]) and what they
//! make of them ([`inventory`]): the OS identity, then each package database present (dpkg,
//! apk, rpm).

use crate::image::ImageFs;
use crate::os::{apk, dpkg, release, rpm};
use crate::package::{Inventory, Package};

/// Why the inventory could not be taken: a package database that exists but cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The dpkg database is corrupted.
    #[error("the dpkg database is unreadable: {0}")]
    Dpkg(#[from] dpkg::DpkgError),
    /// The apk database is corrupted.
    #[error("the apk database is unreadable: {0}")]
    Apk(#[from] apk::ApkError),
    /// The rpm database is corrupted.
    #[error("the rpm database is unreadable: {0}")]
    Rpm(#[from] rpm::RpmError),
}

/// Whether a reader needs the content of `path` (relative to the image root).
pub fn wanted(path: &str) -> bool {
    release::RELEASE_FILES.contains(&path)
        || dpkg::wanted(path)
        || path == apk::INSTALLED
        || rpm::RPMDB_PATHS.contains(&path)
}

/// The OS and packages of `fs`, packages sorted by ecosystem, name, version and location.
pub fn inventory(fs: &ImageFs) -> Result<Inventory, InventoryError> {
    let os = release::identify(|path| fs.content(path));
    let mut packages: Vec<Package> = Vec::new();

    let status_files: Vec<(&str, &[u8])> = fs
        .kept()
        .into_iter()
        .filter(|(path, _)| *path == dpkg::STATUS || path.starts_with(dpkg::STATUS_D))
        .collect();
    if !status_files.is_empty() {
        let md5sums = |name: &str| fs.content(&format!("{}{name}.md5sums", dpkg::INFO));
        packages.extend(dpkg::read_database(&status_files, md5sums)?);
    }
    if let Some(installed) = fs.content(apk::INSTALLED) {
        packages.extend(apk::read_installed(installed)?);
    }
    if let Some(database) = rpm::RpmDbFiles::find(|path| fs.content(path)) {
        packages.extend(rpm::read_database(&database)?);
    }

    packages.sort_by(|a, b| {
        (a.ecosystem, &a.name, &a.version, &a.location).cmp(&(
            b.ecosystem,
            &b.name,
            &b.version,
            &b.location,
        ))
    });
    Ok(Inventory { os, packages })
}

//! Locating the workspace root and the team's shared directory (`../shared` beside the root),
//! for tests and benchmarks that read the corpus.

use std::path::{Path, PathBuf};

/// The workspace root: the nearest ancestor of `start` whose `Cargo.toml` has a `[workspace]`.
pub fn root_from(start: &Path) -> Option<PathBuf> {
    start.ancestors().find_map(|dir| {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
        manifest
            .lines()
            .any(|line| line.trim() == "[workspace]")
            .then(|| dir.to_owned())
    })
}

/// `../shared` beside the workspace root that contains `start`.
pub fn shared_dir_from(start: &Path) -> Option<PathBuf> {
    let shared = root_from(start)?.parent()?.join("shared");
    shared.is_dir().then_some(shared)
}

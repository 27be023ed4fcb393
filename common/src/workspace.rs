//! Locating the workspace root and the team's shared directory (`../shared` beside the root), for
//! tests and benchmarks that read the corpus. A fresh clone has no `../shared`: tests that need it
//! go through [`shared_for_test`], which skips them with a printed line, or fails them when
//! [`REQUIRE_SHARED_VAR`] is set (as CI does).

use std::io::Write;
use std::path::{Path, PathBuf};

/// The environment variable that turns a missing `../shared` from a skipped test into a failed one:
/// set to anything but empty or `0` (`.ci/run` sets `SLIPWAY_REQUIRE_SHARED=1`).
pub const REQUIRE_SHARED_VAR: &str = "SLIPWAY_REQUIRE_SHARED";

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

/// What to do when a test's part of `../shared` is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenMissing {
    /// Skip the test (a fresh clone).
    Skip,
    /// Fail the test (CI, where a missing corpus means tests silently not run).
    Fail,
}

impl WhenMissing {
    /// From the value of [`REQUIRE_SHARED_VAR`]: unset, empty or `0` skip; anything else fails.
    pub fn from_var(value: Option<&str>) -> Self {
        match value.map(str::trim) {
            None | Some("" | "0") => Self::Skip,
            Some(_) => Self::Fail,
        }
    }

    /// From this process's environment.
    pub fn from_env() -> Self {
        Self::from_var(std::env::var(REQUIRE_SHARED_VAR).ok().as_deref())
    }
}

/// A part of `../shared` that a test needs and that is not there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "../shared/{relative} not found (expected it beside the workspace root containing {start})"
)]
pub struct SharedMissing {
    /// The part that was asked for, relative to `../shared`.
    pub relative: String,
    /// Where the workspace root was looked for.
    pub start: PathBuf,
}

/// `../shared/<relative>` beside the workspace root containing `start`: `Ok(Some(path))` when it
/// exists, `Ok(None)` when it does not and `when_missing` is [`WhenMissing::Skip`], and the
/// [`SharedMissing`] error when it is [`WhenMissing::Fail`].
pub fn locate_shared(
    start: &Path,
    relative: &str,
    when_missing: WhenMissing,
) -> Result<Option<PathBuf>, SharedMissing> {
    let found = shared_dir_from(start)
        .map(|shared| shared.join(relative))
        .filter(|path| path.exists());
    match (found, when_missing) {
        (Some(path), _) => Ok(Some(path)),
        (None, WhenMissing::Skip) => Ok(None),
        (None, WhenMissing::Fail) => Err(SharedMissing {
            relative: relative.to_owned(),
            start: start.to_owned(),
        }),
    }
}

/// For tests: `../shared/<relative>` (a file or directory) beside the workspace root containing
/// `start` (pass `env!("CARGO_MANIFEST_DIR")`). When it is missing, prints
/// `skipped: ../shared/<relative> not found` on stderr (past the test harness's capture, so
/// `cargo test` shows it) and returns `None`: the test returns early. With
/// [`REQUIRE_SHARED_VAR`] set, a missing part panics instead, failing the test.
///
/// # Panics
///
/// When the part is missing and [`REQUIRE_SHARED_VAR`] is set.
pub fn shared_for_test(start: impl AsRef<Path>, relative: &str) -> Option<PathBuf> {
    match locate_shared(start.as_ref(), relative, WhenMissing::from_env()) {
        Ok(Some(path)) => Some(path),
        Ok(None) => {
            skip_unless_required(&format!("../shared/{relative} not found"));
            None
        }
        Err(missing) => panic!("{missing}, and {REQUIRE_SHARED_VAR} is set: the test cannot run"),
    }
}

/// Skip the calling test because of `reason`: a line saying so on stderr (past the harness's
/// capture), naming the test. When [`REQUIRE_SHARED_VAR`] is set (CI, where `deploy/dev-env.sh`
/// set everything up) the test fails instead.
///
/// # Panics
/// When [`REQUIRE_SHARED_VAR`] is set.
pub fn skip_unless_required(reason: &str) {
    assert!(
        WhenMissing::from_env() == WhenMissing::Skip,
        "{reason}; and {REQUIRE_SHARED_VAR} is set: the test cannot run"
    );
    let test = std::thread::current()
        .name()
        .map(|name| format!(" ({name})"))
        .unwrap_or_default();
    // Straight to the stream: the test harness captures `eprintln!` of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {reason}{test}; {REQUIRE_SHARED_VAR}=1 makes this a failure"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_requires_the_shared_directory_unless_empty_or_zero() {
        assert_eq!(WhenMissing::from_var(None), WhenMissing::Skip);
        assert_eq!(WhenMissing::from_var(Some("")), WhenMissing::Skip);
        assert_eq!(WhenMissing::from_var(Some("0")), WhenMissing::Skip);
        assert_eq!(WhenMissing::from_var(Some("1")), WhenMissing::Fail);
        assert_eq!(WhenMissing::from_var(Some("yes")), WhenMissing::Fail);
    }

    #[test]
    fn a_missing_part_is_skipped_or_an_error_naming_it() {
        let start = Path::new(env!("CARGO_MANIFEST_DIR"));
        let relative = "corpus/no-such-part-of-shared";
        assert_eq!(locate_shared(start, relative, WhenMissing::Skip), Ok(None));
        let error = locate_shared(start, relative, WhenMissing::Fail).unwrap_err();
        assert_eq!(error.relative, relative);
        assert!(
            error
                .to_string()
                .starts_with("../shared/corpus/no-such-part-of-shared not found"),
            "{error}"
        );
        // Outside any workspace there is no `../shared` either.
        assert_eq!(
            locate_shared(Path::new("/"), "corpus", WhenMissing::Skip),
            Ok(None)
        );
        assert!(locate_shared(Path::new("/"), "corpus", WhenMissing::Fail).is_err());
    }

    #[test]
    fn a_part_that_exists_is_found_whatever_the_variable_says() {
        let start = Path::new(env!("CARGO_MANIFEST_DIR"));
        let Some(shared) = shared_dir_from(start) else {
            // A fresh clone: nothing beside the root to find.
            return;
        };
        let relative = shared
            .read_dir()
            .ok()
            .and_then(|mut entries| entries.next())
            .and_then(|entry| entry.ok())
            .map(|entry| entry.file_name().to_string_lossy().into_owned());
        if let Some(relative) = relative {
            for when_missing in [WhenMissing::Skip, WhenMissing::Fail] {
                assert_eq!(
                    locate_shared(start, &relative, when_missing),
                    Ok(Some(shared.join(&relative)))
                );
            }
        }
    }
}

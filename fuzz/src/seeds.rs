//! A target's seed corpus: the repository's files its [`Seeds`] name, `../shared/corpus` when it
//! is there, and envelopes encoded here. Always in the same order (paths sorted), so a run is
//! determined by its seed; never empty (an empty input stands in).

use std::path::{Path, PathBuf};

use slipway_common::envelope::{Cause, Envelope, JobId, Timestamp};
use slipway_common::message::test_support::sample_messages_with_every_field;

use crate::mutate::MAX_INPUT;
use crate::targets::{Seeds, Target};

/// Where seeds are looked up.
#[derive(Clone, Debug)]
pub struct SeedRoots {
    /// The workspace root.
    pub workspace: PathBuf,
    /// `../shared` beside it, when present.
    pub shared: Option<PathBuf>,
}

impl SeedRoots {
    /// The roots of the workspace this crate was built in.
    pub fn of_this_workspace() -> Self {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let workspace =
            slipway_common::workspace::root_from(manifest).unwrap_or_else(|| manifest.join(".."));
        SeedRoots {
            shared: slipway_common::workspace::shared_dir_from(&workspace),
            workspace,
        }
    }
}

/// The seeds of `target`, each at most [`MAX_INPUT`] bytes, with the names they came from.
pub fn load(target: &Target, roots: &SeedRoots) -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for source in target.seeds {
        match source {
            Seeds::Dir(dir) => read_dir(&roots.workspace.join(dir), &mut seeds),
            Seeds::File(file) => read_file(&roots.workspace.join(file), &mut seeds),
            Seeds::Shared(dir) => {
                if let Some(shared) = &roots.shared {
                    read_dir(&shared.join(dir), &mut seeds);
                }
            }
            Seeds::Envelopes => seeds.extend(
                envelopes()
                    .into_iter()
                    .enumerate()
                    .map(|(i, bytes)| (format!("envelope #{i}"), bytes)),
            ),
        }
    }
    if seeds.is_empty() {
        seeds.push(("(empty input)".to_owned(), Vec::new()));
    }
    seeds
}

fn read_dir(dir: &Path, seeds: &mut Vec<(String, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "py" && e != "tsv"))
        .collect();
    paths.sort();
    for path in paths {
        read_file(&path, seeds);
    }
}

fn read_file(path: &Path, seeds: &mut Vec<(String, Vec<u8>)>) {
    if let Ok(mut bytes) = std::fs::read(path) {
        bytes.truncate(MAX_INPUT);
        seeds.push((path.display().to_string(), bytes));
    }
}

/// Every sample message in an envelope, encoded, with fixed ids and time (ids are random and
/// times the clock's otherwise, and a run must be the same for the same seed).
pub fn envelopes() -> Vec<Vec<u8>> {
    let job: JobId = "01890a5d-ac96-774b-bcce-b302099a8057"
        .parse()
        .expect("a valid job id");
    let fixed_id = uuid::Uuid::from_u128(0x0189_0a5d_ac96_774b_bcce_b302_099a_8058);
    sample_messages_with_every_field()
        .into_iter()
        .enumerate()
        .filter_map(|(i, message)| {
            let cause = match i % 3 {
                0 => Cause::User,
                1 => Cause::ParentRebuilt("base/debian:12".to_owned()),
                _ => Cause::PackageUpdate("openssl".to_owned()),
            };
            let mut envelope = Envelope::for_job(job, cause, message);
            envelope.created_at = Timestamp::from_unix_millis(1_700_000_000_000);
            let id = uuid::Uuid::parse_str(&envelope.id.to_string()).ok()?;
            let mut bytes = envelope.encode().ok()?;
            // The message id is written as its 16 bytes: put the fixed id in their place.
            let at = bytes.windows(16).position(|w| w == id.as_bytes())?;
            bytes[at..at + 16].copy_from_slice(fixed_id.as_bytes());
            Some(bytes)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::{TARGETS, find};

    #[test]
    fn envelopes_are_valid_and_the_same_every_time() {
        let first = envelopes();
        assert_eq!(first.len(), sample_messages_with_every_field().len());
        assert_eq!(first, envelopes());
        for bytes in &first {
            Envelope::decode(bytes).expect("a valid envelope");
        }
    }

    #[test]
    fn every_parser_target_has_seeds_of_its_own_and_they_parse() {
        let roots = SeedRoots::of_this_workspace();
        for target in TARGETS.iter().filter(|t| !t.self_check) {
            let seeds = load(target, &roots);
            assert!(
                seeds.iter().all(|(name, _)| name != "(empty input)"),
                "{}: no seeds",
                target.name
            );
            let ok = seeds
                .iter()
                .filter(|(_, bytes)| (target.run)(bytes).starts_with("ok"))
                .count();
            assert!(ok > 0, "{}: no seed parses", target.name);
        }
    }

    #[test]
    fn seeds_come_in_the_same_order() {
        let roots = SeedRoots::of_this_workspace();
        let target = find("rpm-header").expect("target");
        let names =
            |seeds: Vec<(String, Vec<u8>)>| seeds.into_iter().map(|s| s.0).collect::<Vec<_>>();
        assert_eq!(names(load(target, &roots)), names(load(target, &roots)));
        let empty = find("self-panic").expect("target");
        assert_eq!(
            load(empty, &roots),
            [("(empty input)".to_owned(), Vec::new())]
        );
    }
}

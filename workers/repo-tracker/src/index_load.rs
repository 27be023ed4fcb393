//! Reading the index at one commit of the index repository: fetch exactly that commit through
//! the git cache, export its index directory, and validate every file together
//! ([`IndexSet`]). The outcome is the event to publish: `index.applied` with every entry, or
//! `index.rejected` with each problem's file and line.

use std::path::{Path, PathBuf};

use slipway_common::ImageRef;
use slipway_common::index::Entry;
use slipway_common::index::set::{IndexProblem, IndexSet};
use slipway_common::message::{CommitSha, IndexProblemAt};
use slipway_source::{SourceCache, SourceError};

/// The most problems an `index.rejected` lists; the last one says how many more there were.
pub const MAX_PROBLEMS: usize = 100;

/// What an index commit holds.
#[derive(Clone, Debug, PartialEq)]
pub enum LoadedIndex {
    /// A valid index: every entry.
    Valid(Vec<Entry>),
    /// An invalid one: why, file by file.
    Invalid(Vec<IndexProblemAt>),
}

/// Where a read of the index failed for a reason that may pass (the git server, the disk): the
/// read is tried again later. A commit that cannot exist is [`LoadedIndex::Invalid`] instead.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the index at {commit}: {reason}")]
pub struct LoadError {
    /// The commit.
    pub commit: String,
    /// Why.
    pub reason: String,
}

/// Read the index at `commit` of `url`: the `*.yaml`/`*.yml` files of `index_dir`.
pub async fn load_index(
    cache: &SourceCache,
    url: &str,
    index_dir: &str,
    commit: &CommitSha,
    external: &[ImageRef],
) -> Result<LoadedIndex, LoadError> {
    let failed = |reason: String| LoadError {
        commit: commit.to_string(),
        reason,
    };
    let permanent = |error: &SourceError| {
        Ok(LoadedIndex::Invalid(vec![IndexProblemAt {
            file: index_dir.to_owned(),
            line: None,
            message: error.to_string(),
        }]))
    };
    let fetched = match cache.fetch(url, commit.as_str()).await {
        Ok(fetched) => fetched,
        Err(error) if error.is_transient() => return Err(failed(error.to_string())),
        Err(error) => return permanent(&error),
    };
    let scratch = std::env::temp_dir().join(format!(
        "slipway-index-{}-{}",
        std::process::id(),
        commit.as_str()
    ));
    let _ = tokio::fs::remove_dir_all(&scratch).await;
    let exported = fetched.export_tree(index_dir, &scratch).await;
    let result = match exported {
        Ok(()) => read_exported(&scratch, index_dir, external).await,
        Err(error) if error.is_transient() => Err(failed(error.to_string())),
        Err(error) => permanent(&error),
    };
    let _ = tokio::fs::remove_dir_all(&scratch).await;
    result
}

/// Validate the exported index directory `root` (files named relative to the repository, under
/// `index_dir`).
async fn read_exported(
    root: &Path,
    index_dir: &str,
    external: &[ImageRef],
) -> Result<LoadedIndex, LoadError> {
    let (root, index_dir, external) = (root.to_path_buf(), index_dir.to_owned(), external.to_vec());
    let read = slipway_common::telemetry::spawn_blocking_in_span(move || {
        IndexSet::read(std::slice::from_ref(&root), &external).map(|set| (set, root, index_dir))
    })
    .await
    .map_err(|error| LoadError {
        commit: String::new(),
        reason: format!("the index reader stopped: {error}"),
    })?;
    match read {
        Ok((set, root, index_dir)) => Ok(judge(set, &root, &index_dir)),
        Err(error) => Ok(LoadedIndex::Invalid(vec![IndexProblemAt {
            file: String::new(),
            line: None,
            message: error.to_string(),
        }])),
    }
}

/// The verdict on a read index: its entries, or its problems named relative to the repository.
pub fn judge(set: IndexSet, root: &Path, index_dir: &str) -> LoadedIndex {
    if set.entries.is_empty() && set.problems.is_empty() {
        return LoadedIndex::Invalid(vec![IndexProblemAt {
            file: index_dir.to_owned(),
            line: None,
            message: "no index file (*.yaml or *.yml) with an entry".into(),
        }]);
    }
    if set.is_valid() {
        return LoadedIndex::Valid(set.entries.into_iter().map(|placed| placed.entry).collect());
    }
    let total = set.problems.len();
    let mut problems: Vec<IndexProblemAt> = set
        .problems
        .iter()
        .take(MAX_PROBLEMS)
        .map(|problem| located(problem, root, index_dir))
        .collect();
    if total > MAX_PROBLEMS {
        problems.push(IndexProblemAt {
            file: index_dir.to_owned(),
            line: None,
            message: format!("{} more problem(s) not listed", total - MAX_PROBLEMS),
        });
    }
    LoadedIndex::Invalid(problems)
}

/// `problem` with its file relative to the repository root.
fn located(problem: &IndexProblem, root: &Path, index_dir: &str) -> IndexProblemAt {
    let relative = problem
        .file
        .strip_prefix(root)
        .map(|path| PathBuf::from(index_dir).join(path))
        .unwrap_or_else(|_| problem.file.clone());
    IndexProblemAt {
        file: relative.display().to_string(),
        line: problem.line.and_then(|line| u32::try_from(line).ok()),
        message: problem.message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("slipway-judge-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    const ENTRY: &str = "Projects:\n  - id: 1\n    app-id: team\n    job-id: app\n    git-url: https://git.example.org/team/app\n    git-path: /\n    git-branch: main\n    target-file: Dockerfile\n    desired-tag: latest\n    notify-email: a@example.org\n    depends-on: []\n";

    #[test]
    fn a_valid_index_gives_its_entries() {
        let dir = scratch("valid");
        write(&dir, "team.yaml", ENTRY);
        let set = IndexSet::read(std::slice::from_ref(&dir), &[]).unwrap();
        let LoadedIndex::Valid(entries) = judge(set, &dir, "index.d") else {
            panic!("valid")
        };
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].image().to_string(), "team/app:latest");
    }

    #[test]
    fn problems_name_the_file_in_the_repository_and_the_line() {
        let dir = scratch("invalid");
        write(
            &dir,
            "team.yaml",
            &ENTRY.replace("git-branch", "git_branch"),
        );
        let set = IndexSet::read(std::slice::from_ref(&dir), &[]).unwrap();
        let LoadedIndex::Invalid(problems) = judge(set, &dir, "index.d") else {
            panic!("a misspelled key is refused")
        };
        assert_eq!(problems[0].file, "index.d/team.yaml", "{problems:?}");
        assert_eq!(problems[0].line, Some(7), "{problems:?}");
        assert!(problems[0].message.contains("git_branch"), "{problems:?}");
    }

    #[test]
    fn an_empty_index_is_refused_not_applied() {
        let dir = scratch("empty");
        std::fs::create_dir_all(&dir).unwrap();
        let set = IndexSet::read(std::slice::from_ref(&dir), &[]).unwrap();
        assert!(matches!(
            judge(set, &dir, "index.d"),
            LoadedIndex::Invalid(_)
        ));
    }

    #[test]
    fn the_problem_list_is_bounded() {
        let dir = scratch("many");
        for i in 0..(MAX_PROBLEMS + 20) {
            write(&dir, &format!("team{i}.yaml"), "not: an index\n");
        }
        let set = IndexSet::read(std::slice::from_ref(&dir), &[]).unwrap();
        let LoadedIndex::Invalid(problems) = judge(set, &dir, "index.d") else {
            panic!("invalid")
        };
        assert_eq!(problems.len(), MAX_PROBLEMS + 1);
        assert!(problems[MAX_PROBLEMS].message.contains("20 more"));
    }
}

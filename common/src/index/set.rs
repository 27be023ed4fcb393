//! The whole index: every file of an `index.d` directory, validated together.
//!
//! Besides each file's own checks ([`super::read_index_file`]), the set needs: one entry per
//! image (`app-id/job-id:desired-tag`), every `depends-on` naming an image of the index or one
//! declared external, and no dependency cycle. Every problem names its file and line.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::graph::DependencyGraph;
use super::{Entry, IndexError, IndexFile, read_index_file};
use crate::image::ImageRef;

/// The most index files read from one directory.
pub const MAX_INDEX_FILES: usize = 10_000;

/// An entry of the index and where it is written.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexEntry {
    /// The file it is in.
    pub file: PathBuf,
    /// 1-based line of its first key.
    pub line: usize,
    /// The entry.
    pub entry: Entry,
}

/// One problem of the index, where it is written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IndexProblem {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for IndexProblem {
    /// `file:line: message`, the form editors and CI annotations understand.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Every entry of an index and every problem found in it. Only an index with no problem is put
/// in force.
#[derive(Debug, Default)]
pub struct IndexSet {
    /// The valid entries, by file name then position.
    pub entries: Vec<IndexEntry>,
    /// Every problem, by file then line.
    pub problems: Vec<IndexProblem>,
    /// What is odd but harmless (an entry depending on its own image), by file then line.
    pub warnings: Vec<IndexProblem>,
    /// Position in `entries` of each image's entry.
    by_image: HashMap<ImageRef, usize>,
}

impl IndexSet {
    /// Read `paths` (index files, or directories whose `*.yaml`/`*.yml` files are read) and
    /// validate them together. `external` are images entries may depend on that the index does
    /// not build. A file that cannot be read at all is an error; everything else is a problem.
    pub fn read(paths: &[PathBuf], external: &[ImageRef]) -> Result<IndexSet, IndexError> {
        let mut files = Vec::new();
        for path in paths {
            if path.is_dir() {
                files.extend(index_files_in(path)?);
            } else {
                files.push(path.clone());
            }
        }
        let mut read = Vec::new();
        let mut refused = Vec::new();
        for file in files {
            match read_index_file(&file) {
                Ok(index) => read.push((file, index)),
                Err(IndexError::Refused(error)) => refused.push(IndexProblem {
                    line: error.line(),
                    message: error.without_line(),
                    file,
                }),
                Err(IndexError::NotAnIndex(error)) => refused.push(IndexProblem {
                    file,
                    line: None,
                    message: IndexError::NotAnIndex(error).to_string(),
                }),
                Err(unreadable @ IndexError::Read { .. }) => return Err(unreadable),
            }
        }
        let mut set = IndexSet::validate(read, external);
        set.problems.extend(refused);
        set.sort_problems();
        Ok(set)
    }

    fn sort_problems(&mut self) {
        self.problems
            .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    }

    /// Validate parsed files together (pure).
    pub fn validate(files: Vec<(PathBuf, IndexFile)>, external: &[ImageRef]) -> IndexSet {
        let mut set = IndexSet::default();
        for (file, index) in files {
            for bad in index.invalid {
                set.problems.push(IndexProblem {
                    file: file.clone(),
                    line: bad.line,
                    message: bad.to_string(),
                });
            }
            for placed in index.entries {
                set.add(&file, placed.line, placed.entry);
            }
        }
        set.check_dependencies(external);
        set.sort_problems();
        set
    }

    /// Add an entry unless its image is already built by another.
    fn add(&mut self, file: &Path, line: usize, entry: Entry) {
        let image = entry.image();
        if let Some(first) = self.by_image.get(&image).map(|&i| &self.entries[i]) {
            self.problems.push(IndexProblem {
                file: file.to_owned(),
                line: Some(line),
                message: format!(
                    "{image} is already built by the entry at {}:{}",
                    first.file.display(),
                    first.line
                ),
            });
            return;
        }
        self.by_image.insert(image, self.entries.len());
        self.entries.push(IndexEntry {
            file: file.to_owned(),
            line,
            entry,
        });
    }

    /// Each `depends-on` names an image of the index or an external one; no cycle.
    fn check_dependencies(&mut self, external: &[ImageRef]) {
        let graph = self.graph();
        let mut problems = Vec::new();
        for placed in &self.entries {
            let own = placed.entry.image();
            for parent in &placed.entry.depends_on {
                let parsed = ImageRef::parse(parent);
                if parsed.as_ref().is_ok_and(|image| image == &own) {
                    self.warnings.push(IndexProblem {
                        file: placed.file.clone(),
                        line: Some(placed.line),
                        message: format!(
                            "depends-on: {parent:?} is this entry's own image; ignored"
                        ),
                    });
                    continue;
                }
                let known =
                    parsed.is_ok_and(|image| graph.contains(&image) || external.contains(&image));
                if !known {
                    problems.push(IndexProblem {
                        file: placed.file.clone(),
                        line: Some(placed.line),
                        message: format!(
                            "depends-on: {parent:?} is neither an image of the index nor declared external"
                        ),
                    });
                }
            }
        }
        for cycle in graph.cycles() {
            let placed = self.placed(&cycle[0]);
            let path: Vec<String> = cycle.iter().map(ToString::to_string).collect();
            problems.push(IndexProblem {
                file: placed.map(|p| p.file.clone()).unwrap_or_default(),
                line: placed.map(|p| p.line),
                message: format!("dependency cycle: {}", path.join(" → ")),
            });
        }
        self.problems.extend(problems);
    }

    /// The entry that builds `image`.
    pub fn placed(&self, image: &ImageRef) -> Option<&IndexEntry> {
        self.by_image.get(image).map(|&i| &self.entries[i])
    }

    /// Whether the index has no problem.
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }

    /// The dependency graph of the valid entries.
    pub fn graph(&self) -> DependencyGraph {
        let images: Vec<(ImageRef, Vec<ImageRef>)> = self
            .entries
            .iter()
            .map(|placed| {
                let parents = placed
                    .entry
                    .depends_on
                    .iter()
                    .filter_map(|parent| ImageRef::parse(parent).ok())
                    .collect();
                (placed.entry.image(), parents)
            })
            .collect();
        DependencyGraph::new(
            images
                .iter()
                .map(|(image, parents)| (image.clone(), parents.as_slice())),
        )
    }
}

/// The `*.yaml` and `*.yml` files directly in `dir`, sorted, at most [`MAX_INDEX_FILES`].
fn index_files_in(dir: &Path) -> Result<Vec<PathBuf>, IndexError> {
    let read_error = |source| IndexError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for item in std::fs::read_dir(dir).map_err(read_error)? {
        let path = item.map_err(read_error)?.path();
        let yaml = path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml");
        if yaml && path.is_file() {
            files.push(path);
            if files.len() > MAX_INDEX_FILES {
                return Err(read_error(std::io::Error::other(format!(
                    "more than {MAX_INDEX_FILES} index files"
                ))));
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::parse_index;

    fn file(name: &str, yaml: &str) -> (PathBuf, IndexFile) {
        (PathBuf::from(name), parse_index(yaml).unwrap())
    }

    fn entry(app: &str, job: &str, depends_on: &str) -> String {
        format!(
            "  - app-id: {app}\n    job-id: {job}\n    git-url: https://e.org/r\n    depends-on: {depends_on}\n"
        )
    }

    #[test]
    fn images_must_be_unique_across_files_and_parents_known() {
        let a = file(
            "a.yaml",
            &format!(
                "Projects:\n{}{}",
                entry("a", "base", "debian:12"),
                entry("a", "web", "[a/base:latest, b/lib:latest, nobody/x:1]")
            ),
        );
        let b = file(
            "b.yaml",
            &format!("Projects:\n{}", entry("a", "base", "null")),
        );
        let external = [ImageRef::parse("debian:12").unwrap()];
        let set = IndexSet::validate(vec![a, b], &external);
        let problems: Vec<String> = set.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            problems,
            [
                r#"a.yaml:6: depends-on: "b/lib:latest" is neither an image of the index nor declared external"#,
                r#"a.yaml:6: depends-on: "nobody/x:1" is neither an image of the index nor declared external"#,
                "b.yaml:2: a/base:latest is already built by the entry at a.yaml:2",
            ]
        );
        assert_eq!(set.entries.len(), 2);
        assert!(!set.is_valid());
    }

    #[test]
    fn a_cycle_is_named_with_its_file_and_line() {
        let a = file(
            "a.yaml",
            &format!(
                "Projects:\n{}{}{}",
                entry("a", "x", "a/z:latest"),
                entry("a", "y", "a/x:latest"),
                entry("a", "z", "a/y:latest")
            ),
        );
        let set = IndexSet::validate(vec![a], &[]);
        let problems: Vec<String> = set.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            problems,
            ["a.yaml:2: dependency cycle: a/x:latest → a/y:latest → a/z:latest → a/x:latest"]
        );
    }

    #[test]
    fn an_entry_naming_its_own_image_is_a_warning_not_a_cycle() {
        let a = file(
            "a.yaml",
            &format!("Projects:\n{}", entry("a", "x", "a/x:latest")),
        );
        let set = IndexSet::validate(vec![a], &[]);
        assert!(set.is_valid(), "{:?}", set.problems);
        assert_eq!(
            set.warnings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [r#"a.yaml:2: depends-on: "a/x:latest" is this entry's own image; ignored"#]
        );
    }

    #[test]
    fn a_valid_set_gives_its_graph() {
        let a = file(
            "a.yaml",
            &format!(
                "Projects:\n{}{}",
                entry("a", "base", "null"),
                entry("a", "web", "a/base:latest")
            ),
        );
        let set = IndexSet::validate(vec![a], &[]);
        assert!(set.is_valid(), "{:?}", set.problems);
        let base = ImageRef::parse("a/base:latest").unwrap();
        assert_eq!(
            set.graph().children_of(&base),
            [&ImageRef::parse("a/web:latest").unwrap()]
        );
        assert_eq!(set.placed(&base).map(|p| p.line), Some(2));
    }
}

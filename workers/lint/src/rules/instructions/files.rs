//! Rules about paths: `WORKDIR` must be absolute, `ADD` only for archives and URLs, `COPY`
//! destinations (trailing slash, relative without `WORKDIR`) and copying a whole filesystem.

use std::collections::HashMap;

use super::commands::is_archive;
use super::{drop_quotes, is_windows_absolute};
use crate::rules::{Failure, Meta, Registry, Rule, Severity, Simple};
use crate::syntax::{BaseImage, Instruction};

pub const DL3000: Meta = Meta {
    code: "DL3000",
    severity: Severity::Error,
    message: "Use absolute WORKDIR",
};

pub const DL3020: Meta = Meta {
    code: "DL3020",
    severity: Severity::Error,
    message: "Use COPY instead of ADD for files and folders",
};

pub const DL3021: Meta = Meta {
    code: "DL3021",
    severity: Severity::Error,
    message: "COPY with more than 2 arguments requires the last argument to end with /",
};

pub const DL3045: Meta = Meta {
    code: "DL3045",
    severity: Severity::Warning,
    message: "`COPY` to a relative destination without `WORKDIR` set.",
};

pub const DL3067: Meta = Meta {
    code: "DL3067",
    severity: Severity::Warning,
    message: "Do not copy an entire filesystem from another stage",
};

/// Registers the path rules.
pub fn register(registry: &mut Registry) {
    registry.add(Box::new(Simple::new(DL3000, absolute_workdir)));
    registry.add(Box::new(Simple::new(DL3020, add_only_archives_and_urls)));
    registry.add(Box::new(Simple::new(DL3021, copy_many_into_directory)));
    registry.add(Box::<RelativeCopy>::default());
    registry.add(Box::new(Simple::new(DL3067, no_whole_filesystem_copy)));
}

/// Whether a path (quotes aside) is absolute: `/…`, a variable, or a Windows drive path.
fn is_absolute_or_variable(path: &str) -> bool {
    let path = drop_quotes(path);
    path.starts_with('/') || path.starts_with('$') || is_windows_absolute(path)
}

/// DL3000: a `WORKDIR` that is not absolute (variables and Windows drive paths are accepted).
fn absolute_workdir(instruction: &Instruction) -> bool {
    match instruction {
        Instruction::Workdir(path) => is_absolute_or_variable(path),
        _ => true,
    }
}

/// DL3020: an `ADD` with a source that is neither an archive nor an `http(s)://` URL.
fn add_only_archives_and_urls(instruction: &Instruction) -> bool {
    let is_url = |source: &str| {
        let source = drop_quotes(source);
        source.starts_with("https://") || source.starts_with("http://")
    };
    match instruction {
        Instruction::Add(add) => add
            .sources
            .iter()
            .all(|source| is_archive(source) || is_url(source)),
        _ => true,
    }
}

/// DL3021: a `COPY` of several sources whose destination does not end with `/`.
fn copy_many_into_directory(instruction: &Instruction) -> bool {
    match instruction {
        Instruction::Copy(copy) if copy.sources.len() > 1 => drop_quotes(&copy.dest).ends_with('/'),
        _ => true,
    }
}

/// DL3067: `COPY --from=… / /`, copying another stage's whole filesystem.
fn no_whole_filesystem_copy(instruction: &Instruction) -> bool {
    match instruction {
        Instruction::Copy(copy) if copy.from.is_some() => {
            !(copy.sources.iter().any(|s| drop_quotes(s) == "/") && drop_quotes(&copy.dest) == "/")
        }
        _ => true,
    }
}

/// A stage as DL3045 keys it: by alias or, without one, by image name; `Unnamed` before any
/// `FROM`.
#[derive(Clone, PartialEq, Eq, Hash)]
enum StageKey {
    Unnamed,
    Named(String),
}

/// DL3045: a `COPY` to a relative destination in a stage without `WORKDIR`. As hadolint does, a
/// stage inherits the `WORKDIR` state of the stage (or previous stage of the same image) it is
/// built from, looked up by name.
#[derive(Default)]
struct RelativeCopy {
    /// The current stage and whether each stage set a `WORKDIR`; `None` before anything happened.
    state: Option<(StageKey, HashMap<StageKey, bool>)>,
}

impl RelativeCopy {
    fn enter_stage(&mut self, image: &BaseImage) {
        let key = StageKey::Named(image.alias.clone().unwrap_or_else(|| image.name.clone()));
        match &mut self.state {
            None => self.state = Some((key, HashMap::new())),
            Some((current, workdirs)) => {
                let inherited = workdirs
                    .get(&StageKey::Named(image.name.clone()))
                    .copied()
                    .unwrap_or(false);
                workdirs.insert(key.clone(), inherited);
                *current = key;
            }
        }
    }

    fn set_workdir(&mut self) {
        match &mut self.state {
            None => {
                self.state = Some((
                    StageKey::Unnamed,
                    HashMap::from([(StageKey::Unnamed, true)]),
                ))
            }
            Some((current, workdirs)) => {
                workdirs.insert(current.clone(), true);
            }
        }
    }

    fn has_workdir(&self) -> bool {
        self.state
            .as_ref()
            .is_some_and(|(current, workdirs)| workdirs.get(current) == Some(&true))
    }
}

impl Rule for RelativeCopy {
    fn check(&mut self, line: u32, instruction: &Instruction, out: &mut Vec<Failure>) {
        match instruction {
            Instruction::From(image) => self.enter_stage(image),
            Instruction::Workdir(_) => self.set_workdir(),
            Instruction::Copy(copy)
                if !self.has_workdir() && !is_absolute_or_variable(&copy.dest) =>
            {
                out.push(DL3045.at(line));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::assert_lines;

    #[test]
    fn dl3000_absolute_workdir() {
        assert_lines("DL3000", "FROM a:1\nWORKDIR relative/dir\n", &[2]);
        assert_lines("DL3000", "FROM a:1\nWORKDIR .\n", &[2]);
        for ok in [
            "/usr/src/app",
            "\"/usr/src/app\"",
            "$HOME/x",
            "${DIR}",
            "C:\\\\app",
            "'/a'",
        ] {
            assert_lines("DL3000", &format!("FROM a:1\nWORKDIR {ok}\n"), &[]);
        }
    }

    #[test]
    fn dl3020_add_for_files() {
        assert_lines("DL3020", "FROM a:1\nADD file /usr/src/app/\n", &[2]);
        assert_lines("DL3020", "FROM a:1\nADD a.tar.gz b /x/\n", &[2]);
        for ok in [
            "ADD file.tar /usr/src/app/",
            "ADD file.tar.xz /x",
            "ADD \"file.tgz\" /x",
            "ADD http://example.com/x /x",
            "ADD https://example.com/x.zip /x",
            "ADD [\"a.tar.bz2\", \"/x/\"]",
        ] {
            assert_lines("DL3020", &format!("FROM a:1\n{ok}\n"), &[]);
        }
    }

    #[test]
    fn dl3021_copy_many() {
        assert_lines("DL3021", "FROM a:1\nCOPY foo bar baz\n", &[2]);
        assert_lines(
            "DL3021",
            "FROM a:1\nCOPY [\"foo\", \"bar\", \"baz\"]\n",
            &[2],
        );
        assert_lines("DL3021", "FROM a:1\nCOPY foo bar baz/\n", &[]);
        assert_lines("DL3021", "FROM a:1\nCOPY foo bar \"baz/\"\n", &[]);
        assert_lines("DL3021", "FROM a:1\nCOPY foo bar\n", &[]);
    }

    #[test]
    fn dl3045_relative_copy() {
        assert_lines("DL3045", "FROM a:1\nCOPY bla.sh .\n", &[2]);
        assert_lines("DL3045", "FROM a:1\nCOPY bla.sh bin/\n", &[2]);
        for ok in [
            "/usr/local/bin/",
            "\"/x\"",
            "$DIR",
            "${DIR}/x",
            "c:\\\\x",
            "'/x'",
        ] {
            assert_lines("DL3045", &format!("FROM a:1\nCOPY bla.sh {ok}\n"), &[]);
        }
        assert_lines("DL3045", "FROM a:1\nWORKDIR /app\nCOPY bla.sh .\n", &[]);
        // WORKDIR in one stage does not cover the next...
        let text = "FROM a:1 AS one\nWORKDIR /app\nFROM b:1\nCOPY x .\n";
        assert_lines("DL3045", text, &[4]);
        // ...unless the next stage is built from it.
        let text = "FROM a:1 AS one\nWORKDIR /app\nFROM one AS two\nCOPY x .\nFROM two\nCOPY y .\n";
        assert_lines("DL3045", text, &[]);
        // A WORKDIR before FROM is forgotten by the first FROM.
        let text = "WORKDIR /app\nFROM a:1\nCOPY x .\n";
        assert_lines("DL3045", text, &[3]);
    }

    #[test]
    fn dl3067_whole_filesystem() {
        assert_lines("DL3067", "FROM a:1\nCOPY --from=b / /\n", &[2]);
        assert_lines("DL3067", "FROM a:1\nCOPY --from=b \"/\" '/'\n", &[2]);
        assert_lines("DL3067", "FROM a:1\nCOPY / /\n", &[]);
        assert_lines("DL3067", "FROM a:1\nCOPY --from=b /app /\n", &[]);
        assert_lines("DL3067", "FROM a:1\nCOPY --from=b / /app\n", &[]);
    }
}

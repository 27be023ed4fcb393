//! A first, bounded pass over an index file: its size and nesting depth are checked, and the line
//! of every entry and of each of its keys is recorded, before the YAML is deserialized.
//!
//! The deserializer (libyaml's algorithm) takes time quadratic in the depth of unclosed flow
//! collections: 100 KB of `[` took 28 s. This pass uses an event parser that is linear there, and
//! stops at [`MAX_NESTING`] levels, so the deserializer only ever sees shallow documents. The key
//! lines let unknown keys be reported where they are written.

use saphyr_parser::{Event, Parser, ScanError};

/// The largest index file read, in bytes. The largest file of the real CentOS index is 23 KB.
pub const MAX_INDEX_BYTES: usize = 1 << 20;

/// The deepest nesting of collections in an index file. An entry needs four levels (file,
/// `Projects` list, entry, `lint` settings) and a fifth for `lint.ignored`.
pub const MAX_NESTING: usize = 16;

/// Where the entries of an index file and their keys are written.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outline {
    /// One per element of the `Projects` list, in order.
    pub entries: Vec<EntryOutline>,
}

/// Where one entry and its keys are written.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EntryOutline {
    /// 1-based line of the entry's first key (or of the element, when it is not a mapping).
    pub line: usize,
    /// Each top-level key of the entry as written, with its 1-based line.
    pub keys: Vec<(String, usize)>,
}

/// Why an index file was refused before it was deserialized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutlineError {
    /// The file is larger than [`MAX_INDEX_BYTES`].
    #[error("the file has {size} bytes; an index file may have at most {max}", max = MAX_INDEX_BYTES)]
    TooLarge {
        /// Its size (or the size read so far).
        size: usize,
    },
    /// Collections are nested deeper than [`MAX_NESTING`].
    #[error("line {line}: collections are nested more than {max} levels deep", max = MAX_NESTING)]
    TooDeep {
        /// Where the limit was passed.
        line: usize,
    },
    /// Not YAML.
    #[error("line {line}: not valid YAML: {problem}")]
    Syntax {
        /// Where the parser stopped.
        line: usize,
        /// What it expected.
        problem: String,
    },
}

impl OutlineError {
    /// The 1-based line of the problem, when it has one.
    pub fn line(&self) -> Option<usize> {
        match self {
            OutlineError::TooLarge { .. } => None,
            OutlineError::TooDeep { line } | OutlineError::Syntax { line, .. } => Some(*line),
        }
    }

    /// The message without its `line N: ` prefix, for output that names the line itself.
    pub fn without_line(&self) -> String {
        let message = self.to_string();
        match self.line() {
            Some(line) => message
                .strip_prefix(&format!("line {line}: "))
                .map_or_else(|| message.clone(), str::to_owned),
            None => message,
        }
    }
}

/// What a collection is, as far as the outline cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// The document's top-level mapping.
    File,
    /// The `Projects` list.
    Projects,
    /// One element of the `Projects` list.
    Entry,
    /// Anything else.
    Other,
}

/// An open collection: its role, how many nodes it holds so far, and (for the file mapping) the
/// last key read.
struct Frame {
    role: Role,
    mapping: bool,
    nodes: usize,
    last_key: Option<String>,
}

impl Frame {
    /// The next node of this mapping is a key.
    fn expects_key(&self) -> bool {
        self.mapping && self.nodes.is_multiple_of(2)
    }
}

/// Check `yaml`'s size and depth and record where its entries and their keys are. Linear in the
/// input; stops at the first problem.
pub fn outline(yaml: &str) -> Result<Outline, OutlineError> {
    if yaml.len() > MAX_INDEX_BYTES {
        return Err(OutlineError::TooLarge { size: yaml.len() });
    }
    let mut outline = Outline::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut parser = Parser::new_from_str(yaml);
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(syntax_error)?;
        let line = span.start.line();
        match event {
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let mapping = matches!(event, Event::MappingStart(..));
                let role = element_role(&mut outline, &stack, line, mapping);
                if stack.len() >= MAX_NESTING {
                    return Err(OutlineError::TooDeep { line });
                }
                stack.push(Frame {
                    role,
                    mapping,
                    nodes: 0,
                    last_key: None,
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                node_done(&mut stack);
            }
            Event::Scalar(value, ..) => {
                element_role(&mut outline, &stack, line, false);
                if let Some(parent) = stack.last_mut()
                    && parent.expects_key()
                {
                    match parent.role {
                        Role::Entry => {
                            if let Some(entry) = outline.entries.last_mut() {
                                entry.keys.push((value.to_string(), line));
                            }
                        }
                        Role::File => parent.last_key = Some(value.to_string()),
                        Role::Projects | Role::Other => {}
                    }
                }
                node_done(&mut stack);
            }
            Event::Alias(_) => {
                element_role(&mut outline, &stack, line, false);
                node_done(&mut stack);
            }
            Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd
            | Event::Nothing => {}
        }
    }
    Ok(outline)
}

/// The role of a node starting at `line` under the innermost open collection; a node directly in
/// the `Projects` list starts a new entry outline.
fn element_role(outline: &mut Outline, stack: &[Frame], line: usize, mapping: bool) -> Role {
    let Some(parent) = stack.last() else {
        return if mapping { Role::File } else { Role::Other };
    };
    match parent.role {
        Role::Projects => {
            outline.entries.push(EntryOutline {
                line,
                keys: Vec::new(),
            });
            Role::Entry
        }
        Role::File if !parent.expects_key() && parent.last_key.as_deref() == Some("Projects") => {
            Role::Projects
        }
        Role::File | Role::Entry | Role::Other => Role::Other,
    }
}

/// A node of the innermost open collection is complete.
fn node_done(stack: &mut [Frame]) {
    if let Some(parent) = stack.last_mut() {
        parent.nodes += 1;
    }
}

/// The parser's own error; its nesting limit (which may come before ours) is ours.
fn syntax_error(error: ScanError) -> OutlineError {
    let line = error.marker().line();
    if error.info().contains("recursion limit") {
        OutlineError::TooDeep { line }
    } else {
        OutlineError::Syntax {
            line,
            problem: error.info().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn entries_and_their_keys_are_found_with_their_lines() {
        let yaml = "\
# comment
Projects:
  - id: 1
    app-id: a
    lint: { ignored: [DL3008] }
    smoketest: true

  - {app-id: b, job-id: c}
  - just text
Other: [1, 2]
";
        let outline = outline(yaml).unwrap();
        let keys = |i: usize| -> Vec<(&str, usize)> {
            outline.entries[i]
                .keys
                .iter()
                .map(|(k, l)| (k.as_str(), *l))
                .collect()
        };
        assert_eq!(outline.entries.len(), 3);
        assert_eq!(outline.entries[0].line, 3);
        assert_eq!(
            keys(0),
            [("id", 3), ("app-id", 4), ("lint", 5), ("smoketest", 6)]
        );
        assert_eq!(outline.entries[1].line, 8);
        assert_eq!(keys(1), [("app-id", 8), ("job-id", 8)]);
        assert_eq!(outline.entries[2].line, 9);
        assert!(keys(2).is_empty());
    }

    #[test]
    fn a_key_named_projects_elsewhere_is_not_the_list() {
        let outline = outline("x: {Projects: [{a: 1}]}\nProjects:\n  - b: 2\n  - c: 3\n").unwrap();
        assert_eq!(outline.entries.len(), 2);
        assert_eq!(outline.entries[0].keys, [("b".to_owned(), 3)]);
    }

    #[test]
    fn unclosed_flow_collections_are_refused_in_linear_time() {
        // 100 KB of `[` took 28 s in the deserializer.
        for text in [
            "[".repeat(100_000),
            format!("Projects: {}", "[".repeat(100_000)),
        ] {
            let started = Instant::now();
            let error = outline(&text).unwrap_err();
            assert!(matches!(error, OutlineError::TooDeep { .. }), "{error}");
            assert!(started.elapsed() < Duration::from_secs(1), "{error}");
        }
        let deep_block = (0..40)
            .map(|depth| format!("{}k{depth}:\n", "  ".repeat(depth)))
            .collect::<String>();
        let error = outline(&deep_block).unwrap_err();
        assert_eq!(
            error,
            OutlineError::TooDeep {
                line: MAX_NESTING + 1
            }
        );
    }

    #[test]
    fn sixteen_levels_are_allowed_and_oversized_files_refused() {
        let just_deep_enough = format!("{}{}", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
        assert!(outline(&just_deep_enough).is_ok());
        let too_deep = format!(
            "{}{}",
            "[".repeat(MAX_NESTING + 1),
            "]".repeat(MAX_NESTING + 1)
        );
        assert!(matches!(
            outline(&too_deep),
            Err(OutlineError::TooDeep { line: 1 })
        ));
        let big = format!("Projects: []\n#{}\n", "x".repeat(MAX_INDEX_BYTES));
        assert_eq!(
            outline(&big),
            Err(OutlineError::TooLarge { size: big.len() })
        );
    }

    #[test]
    fn broken_yaml_names_its_line() {
        let error = outline("Projects:\n  - a: 1\n  b: [\n").unwrap_err();
        assert!(matches!(error, OutlineError::Syntax { .. }), "{error}");
        assert!(error.to_string().starts_with("line "), "{error}");
    }
}

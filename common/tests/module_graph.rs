//! The modules of `slipway-common` form no import circle: no module uses another that uses it back,
//! directly or through others (issue 12). Read from the sources: every `crate::…` path, every
//! top-level `use super::…` of a submodule, and every `child::…` path of a module with children,
//! outside comments.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("common/src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a file defines: `lib.rs` is `crate`, `a/mod.rs` and `a.rs` are `a`, `a/b.rs` is `a::b`.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("a file under src");
    let mut parts: Vec<String> = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts == ["lib"] {
        return "crate".to_owned();
    }
    parts.join("::")
}

/// The module `path` (`a::b::Item`) names: its longest prefix that is a module.
fn resolve<'a>(modules: &'a BTreeSet<String>, path: &str) -> Option<&'a String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .find_map(|n| modules.get(&parts[..n].join("::")))
}

/// The identifier path starting at `text` (`a::b::C` of `a::b::C::new(…)`, `a::b` of `a::b::{…}`).
fn path_at(text: &str) -> String {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .next()
        .unwrap_or_default()
        .trim_end_matches(':')
        .to_owned()
}

/// The parent of module `module` (`crate` for a top-level one).
fn parent(module: &str) -> String {
    module
        .rsplit_once("::")
        .map_or_else(|| "crate".to_owned(), |(parent, _)| parent.to_owned())
}

/// Edges `module -> module it imports`, read from the sources of `src`.
fn import_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(src, f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let module = module_of(src, file);
        let text = std::fs::read_to_string(file).expect("a readable source file");
        let children: Vec<&String> = modules
            .iter()
            .filter(|m| **m != module && parent(m) == module)
            .collect();
        let edges = graph.entry(module.clone()).or_default();
        for line in text.lines() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for (at, _) in code.match_indices("crate::") {
                let path = path_at(&code[at + "crate::".len()..]);
                if let Some(target) = resolve(&modules, &path) {
                    edges.insert(target.clone());
                }
            }
            if line.starts_with("use super::") || line.starts_with("pub use super::") {
                edges.insert(parent(&module));
            }
            for child in &children {
                let name = child.rsplit("::").next().unwrap_or(child);
                let relative = format!("{name}::");
                let uses_child = code.match_indices(&relative).any(|(at, _)| {
                    code[..at]
                        .chars()
                        .next_back()
                        .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'))
                });
                if uses_child {
                    edges.insert((*child).clone());
                }
            }
        }
        edges.remove(&module);
    }
    graph
}

/// A circle of imports in `graph`, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_module_of_common_imports_one_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = import_graph(&src);
    // The reader sees the imports that exist.
    assert!(graph["message"].contains("index"), "{graph:#?}");
    assert!(graph["envelope"].contains("message"), "{graph:#?}");
    assert!(graph["index"].contains("index::validate"), "{graph:#?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import circle: {}\n{graph:#?}", cycle.join(" -> "));
    }
}

#[test]
fn the_reader_finds_a_circle_when_there_is_one() {
    let mut graph = BTreeMap::<String, BTreeSet<String>>::new();
    graph
        .entry("index".into())
        .or_default()
        .insert("message".into());
    graph
        .entry("message".into())
        .or_default()
        .insert("index".into());
    assert_eq!(
        find_cycle(&graph).expect("a circle"),
        ["index", "message", "index"]
    );
}

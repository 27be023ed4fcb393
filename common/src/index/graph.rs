//! The dependency graph of an index: which image is built from which. Pure: no I/O.
//!
//! An edge runs from a parent image to each child whose `depends-on` names it. Parents outside
//! the index (external images) are not nodes. The graph finds cycles (each named as a path), and
//! orders a rebuild: every image affected by a change, parents before children, each once.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use crate::image::ImageRef;

/// Images and their parent → child edges.
#[derive(Clone, Debug, Default)]
pub struct DependencyGraph {
    images: Vec<ImageRef>,
    position: HashMap<ImageRef, usize>,
    parents: Vec<Vec<usize>>,
    children: Vec<Vec<usize>>,
}

impl DependencyGraph {
    /// The graph of `images`, each with the images it depends on. A parent that is not one of
    /// the images is external and ignored, as is an image naming itself (the real CentOS index
    /// has `centos/centos:7` depend on itself); a repeated image keeps its first parents.
    pub fn new<'a>(images: impl IntoIterator<Item = (ImageRef, &'a [ImageRef])>) -> Self {
        let mut graph = DependencyGraph::default();
        let mut wanted = Vec::new();
        for (image, parents) in images {
            if graph.position.contains_key(&image) {
                continue;
            }
            graph.position.insert(image.clone(), graph.images.len());
            graph.images.push(image);
            wanted.push(parents);
        }
        graph.parents = vec![Vec::new(); graph.images.len()];
        graph.children = vec![Vec::new(); graph.images.len()];
        for (child, parents) in wanted.into_iter().enumerate() {
            for parent in parents {
                if let Some(&parent) = graph.position.get(parent)
                    && parent != child
                    && !graph.parents[child].contains(&parent)
                {
                    graph.parents[child].push(parent);
                    graph.children[parent].push(child);
                }
            }
        }
        graph
    }

    /// Every image, in the order given.
    pub fn images(&self) -> &[ImageRef] {
        &self.images
    }

    /// Whether `image` is a node.
    pub fn contains(&self, image: &ImageRef) -> bool {
        self.position.contains_key(image)
    }

    /// The images `image` is built from, inside the graph.
    pub fn parents_of(&self, image: &ImageRef) -> Vec<&ImageRef> {
        self.position.get(image).map_or_else(Vec::new, |&i| {
            self.parents[i].iter().map(|&p| &self.images[p]).collect()
        })
    }

    /// The images built from `image`.
    pub fn children_of(&self, image: &ImageRef) -> Vec<&ImageRef> {
        self.position.get(image).map_or_else(Vec::new, |&i| {
            self.children[i].iter().map(|&c| &self.images[c]).collect()
        })
    }

    /// Every dependency cycle, each once, as the path around it starting and ending at its
    /// first image in graph order (`a → b → a`). Iterative, so a long chain cannot overflow
    /// the stack.
    pub fn cycles(&self) -> Vec<Vec<ImageRef>> {
        let mut cycles = Vec::new();
        for component in self.strongly_connected() {
            let is_cycle =
                component.len() > 1 || self.children[component[0]].contains(&component[0]);
            if is_cycle {
                cycles.push(self.cycle_path(&component));
            }
        }
        cycles
    }

    /// A closed path through a strongly connected `component`, from its first image.
    fn cycle_path(&self, component: &[usize]) -> Vec<ImageRef> {
        let members: BTreeSet<usize> = component.iter().copied().collect();
        let start = *members.first().unwrap_or(&component[0]);
        // Breadth-first from the start's children back to the start, inside the component.
        let mut came_from: HashMap<usize, usize> = HashMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut end = None;
        'search: while let Some(node) = queue.pop_front() {
            for &next in &self.children[node] {
                if !members.contains(&next) {
                    continue;
                }
                if next == start {
                    end = Some(node);
                    break 'search;
                }
                if let std::collections::hash_map::Entry::Vacant(slot) = came_from.entry(next) {
                    slot.insert(node);
                    queue.push_back(next);
                }
            }
        }
        let mut path = vec![start];
        let mut node = end.unwrap_or(start);
        let mut back = Vec::new();
        while node != start {
            back.push(node);
            node = came_from[&node];
        }
        path.extend(back.into_iter().rev());
        path.push(start);
        path.into_iter().map(|i| self.images[i].clone()).collect()
    }

    /// Tarjan's strongly connected components, iteratively; each component's members in graph
    /// order, components in order of their first member.
    fn strongly_connected(&self) -> Vec<Vec<usize>> {
        let n = self.images.len();
        let mut index = vec![usize::MAX; n];
        let mut low = vec![0; n];
        let mut on_stack = vec![false; n];
        let mut stack = Vec::new();
        let mut components = Vec::new();
        let mut next_index = 0;
        for root in 0..n {
            if index[root] != usize::MAX {
                continue;
            }
            // (node, next child position)
            let mut work = vec![(root, 0usize)];
            index[root] = next_index;
            low[root] = next_index;
            next_index += 1;
            stack.push(root);
            on_stack[root] = true;
            while let Some(&mut (node, ref mut next_child)) = work.last_mut() {
                if let Some(&child) = self.children[node].get(*next_child) {
                    *next_child += 1;
                    if index[child] == usize::MAX {
                        index[child] = next_index;
                        low[child] = next_index;
                        next_index += 1;
                        stack.push(child);
                        on_stack[child] = true;
                        work.push((child, 0));
                    } else if on_stack[child] {
                        low[node] = low[node].min(index[child]);
                    }
                    continue;
                }
                work.pop();
                if let Some(&(parent, _)) = work.last() {
                    low[parent] = low[parent].min(low[node]);
                }
                if low[node] == index[node] {
                    let mut component = Vec::new();
                    while let Some(member) = stack.pop() {
                        on_stack[member] = false;
                        component.push(member);
                        if member == node {
                            break;
                        }
                    }
                    component.sort_unstable();
                    components.push(component);
                }
            }
        }
        components.sort_by_key(|component| component[0]);
        components
    }

    /// What a change to `changed` rebuilds: those images and every descendant, each once, in
    /// waves: an image comes in the wave after the last of its affected parents (so a diamond's
    /// bottom waits for both sides). Unknown images are ignored. On a cycle, its members are
    /// left out (an index with a cycle is refused before it is used).
    pub fn rebuild_waves(&self, changed: &[ImageRef]) -> Vec<Vec<ImageRef>> {
        let mut affected = vec![false; self.images.len()];
        let mut pending: Vec<usize> = changed
            .iter()
            .filter_map(|image| self.position.get(image).copied())
            .collect();
        while let Some(node) = pending.pop() {
            if !affected[node] {
                affected[node] = true;
                pending.extend(&self.children[node]);
            }
        }
        // Kahn's algorithm over the affected subgraph.
        let mut waiting_on: Vec<usize> = (0..self.images.len())
            .map(|node| self.parents[node].iter().filter(|&&p| affected[p]).count())
            .collect();
        let mut wave: Vec<usize> = (0..self.images.len())
            .filter(|&node| affected[node] && waiting_on[node] == 0)
            .collect();
        let mut waves = Vec::new();
        while !wave.is_empty() {
            let mut next = Vec::new();
            for &node in &wave {
                for &child in &self.children[node] {
                    if affected[child] {
                        waiting_on[child] -= 1;
                        if waiting_on[child] == 0 {
                            next.push(child);
                        }
                    }
                }
            }
            next.sort_unstable();
            waves.push(wave.iter().map(|&i| self.images[i].clone()).collect());
            wave = next;
        }
        waves
    }

    /// The tree under `root` (or under every image with no parent in the graph), one image per
    /// line, children indented; an image reached twice (a diamond) is shown again with `(…)`
    /// instead of its subtree.
    pub fn render_tree(&self, root: Option<&ImageRef>) -> String {
        let roots: Vec<usize> = match root {
            Some(image) => self.position.get(image).copied().into_iter().collect(),
            None => (0..self.images.len())
                .filter(|&node| self.parents[node].is_empty())
                .collect(),
        };
        let mut out = String::new();
        let mut shown = vec![false; self.images.len()];
        for root in roots {
            let mut work = vec![(root, 0usize)];
            while let Some((node, depth)) = work.pop() {
                let repeat = shown[node] && !self.children[node].is_empty();
                let _ = writeln!(
                    out,
                    "{}{}{}",
                    "  ".repeat(depth),
                    self.images[node],
                    if repeat { " (…)" } else { "" }
                );
                if repeat {
                    continue;
                }
                shown[node] = true;
                for &child in self.children[node].iter().rev() {
                    work.push((child, depth + 1));
                }
            }
        }
        out
    }

    /// The graph in Graphviz `dot` form: one `"parent" -> "child";` line per edge, and a line
    /// for each image with no edge.
    pub fn render_dot(&self) -> String {
        let mut out = String::from("digraph slipway {\n");
        for (node, image) in self.images.iter().enumerate() {
            if self.children[node].is_empty() && self.parents[node].is_empty() {
                let _ = writeln!(out, "  \"{image}\";");
            }
            for &child in &self.children[node] {
                let _ = writeln!(out, "  \"{image}\" -> \"{}\";", self.images[child]);
            }
        }
        out.push_str("}\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str) -> ImageRef {
        ImageRef::parse(&format!("t/{name}:1")).unwrap()
    }

    /// A graph from `child: parent parent …` lines.
    fn graph(spec: &[(&str, &[&str])]) -> DependencyGraph {
        let parents: Vec<(ImageRef, Vec<ImageRef>)> = spec
            .iter()
            .map(|(child, parents)| (image(child), parents.iter().map(|p| image(p)).collect()))
            .collect();
        DependencyGraph::new(parents.iter().map(|(c, p)| (c.clone(), p.as_slice())))
    }

    fn names(waves: &[Vec<ImageRef>]) -> Vec<Vec<String>> {
        waves
            .iter()
            .map(|wave| {
                wave.iter()
                    .map(|i| i.path().trim_start_matches("t/").to_owned())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_diamond_rebuilds_its_bottom_once_after_both_sides() {
        let g = graph(&[("a", &[]), ("d", &["b", "c"]), ("b", &["a"]), ("c", &["a"])]);
        assert_eq!(
            names(&g.rebuild_waves(&[image("a")])),
            [vec!["a"], vec!["b", "c"], vec!["d"]]
        );
        // Parents before children even when both are asked for together.
        assert_eq!(
            names(&g.rebuild_waves(&[image("d"), image("b")])),
            [vec!["b"], vec!["d"]]
        );
        assert!(g.rebuild_waves(&[image("nope")]).is_empty());
        assert!(g.cycles().is_empty());
    }

    #[test]
    fn external_parents_are_not_nodes() {
        let g = graph(&[("a", &["external"]), ("b", &["a"])]);
        assert_eq!(g.images().len(), 2);
        assert!(!g.contains(&image("external")));
        assert_eq!(g.parents_of(&image("b")), [&image("a")]);
        assert_eq!(g.children_of(&image("a")), [&image("b")]);
    }

    #[test]
    fn cycles_are_named_as_paths() {
        let g = graph(&[
            ("a", &["c"]),
            ("b", &["a"]),
            ("c", &["b"]),
            ("d", &["e"]),
            ("e", &["d", "e"]),
        ]);
        let cycles: Vec<Vec<String>> = g
            .cycles()
            .iter()
            .map(|cycle| cycle.iter().map(ToString::to_string).collect())
            .collect();
        assert_eq!(
            cycles,
            [
                vec!["t/a:1", "t/b:1", "t/c:1", "t/a:1"],
                vec!["t/d:1", "t/e:1", "t/d:1"]
            ]
        );
    }

    #[test]
    fn a_long_chain_is_ordered_without_recursion() {
        let n = 100_000;
        let spec: Vec<(ImageRef, Vec<ImageRef>)> = (0..n)
            .map(|i| {
                let parents = if i == 0 {
                    Vec::new()
                } else {
                    vec![image(&format!("n{}", i - 1))]
                };
                (image(&format!("n{i}")), parents)
            })
            .collect();
        let g = DependencyGraph::new(spec.iter().map(|(c, p)| (c.clone(), p.as_slice())));
        assert!(g.cycles().is_empty());
        let waves = g.rebuild_waves(&[image("n0")]);
        assert_eq!(waves.len(), n);
        assert_eq!(waves[n - 1], [image(&format!("n{}", n - 1))]);
    }

    #[test]
    fn every_edge_is_respected_in_a_generated_graph() {
        // 50 images in 5 levels, each depending on up to 3 of the level above: diamonds galore.
        let mut spec: Vec<(String, Vec<String>)> = Vec::new();
        for i in 0..50usize {
            let level = i / 10;
            let parents = if level == 0 {
                Vec::new()
            } else {
                (0..3)
                    .map(|k| format!("n{}", (level - 1) * 10 + (i * 7 + k * 3) % 10))
                    .collect()
            };
            spec.push((format!("n{i}"), parents));
        }
        let spec: Vec<(ImageRef, Vec<ImageRef>)> = spec
            .iter()
            .map(|(c, p)| (image(c), p.iter().map(|p| image(p)).collect()))
            .collect();
        let g = DependencyGraph::new(spec.iter().map(|(c, p)| (c.clone(), p.as_slice())));
        let roots: Vec<ImageRef> = (0..10).map(|i| image(&format!("n{i}"))).collect();
        let waves = g.rebuild_waves(&roots);
        let order: HashMap<&ImageRef, usize> = waves
            .iter()
            .enumerate()
            .flat_map(|(w, wave)| wave.iter().map(move |i| (i, w)))
            .collect();
        assert_eq!(order.len(), 50, "every image once");
        assert_eq!(waves.iter().map(Vec::len).sum::<usize>(), 50);
        for (child, parents) in &spec {
            for parent in parents {
                assert!(order[parent] < order[child], "{parent} before {child}");
            }
        }
    }

    #[test]
    fn tree_and_dot_show_every_edge() {
        let g = graph(&[("a", &[]), ("b", &["a"]), ("c", &["a"]), ("d", &["b", "c"])]);
        assert_eq!(
            g.render_tree(None),
            "t/a:1\n  t/b:1\n    t/d:1\n  t/c:1\n    t/d:1\n"
        );
        assert_eq!(g.render_tree(Some(&image("c"))), "t/c:1\n  t/d:1\n");
        let dot = g.render_dot();
        for edge in [
            "\"t/a:1\" -> \"t/b:1\";",
            "\"t/a:1\" -> \"t/c:1\";",
            "\"t/b:1\" -> \"t/d:1\";",
            "\"t/c:1\" -> \"t/d:1\";",
        ] {
            assert!(dot.contains(edge), "{dot}");
        }
    }
}

//! What changed between two versions of an index, and what each change asks for: an added
//! entry is built, a changed entry is rebuilt when a field that shapes the image changed, a
//! removed entry's image is retired. Pure: no I/O. An image is identified by its name
//! (`app-id/job-id:desired-tag`), so a new `desired-tag` retires the old image and adds a new one.

use super::Entry;
use super::set::IndexSet;
use crate::image::ImageRef;

/// The fields whose change rebuilds an image: where its source is, how it is built and
/// tested, and whether its Dockerfile passes lint. `id`, `notify-email`, `depends-on` and
/// `rebuild-schedule` are bookkeeping: a change to them alone rebuilds nothing.
pub const IMAGE_FIELDS: [&str; 11] = [
    "git-url",
    "git-path",
    "git-branch",
    "target-file",
    "build-context",
    "prebuild-script",
    "prebuild-context",
    "build-args",
    "network",
    "smoke-test",
    "lint",
];

/// An entry whose image-shaping fields changed.
#[derive(Clone, Debug, PartialEq)]
pub struct Changed {
    /// The entry as it is now.
    pub entry: Entry,
    /// The [`IMAGE_FIELDS`] that differ, in that order.
    pub fields: Vec<&'static str>,
}

/// The difference between two indexes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IndexDiff {
    /// Entries whose image the old index did not have: each is built.
    pub added: Vec<Entry>,
    /// Entries whose image-shaping fields changed: each is rebuilt.
    pub changed: Vec<Changed>,
    /// Entries whose other fields changed (`notify-email`, `depends-on`, `id`): nothing to build.
    pub updated: Vec<Entry>,
    /// Entries of the old index whose image the new one does not have: each is retired.
    pub removed: Vec<Entry>,
}

impl IndexDiff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.changed.is_empty()
            && self.updated.is_empty()
            && self.removed.is_empty()
    }

    /// The images to build, added and changed, in the new index's dependency order: parents
    /// before children, each once (see [`super::graph::DependencyGraph::rebuild_waves`];
    /// descendants of these images are the cascade's business, not the diff's).
    pub fn builds_in_order(&self, new: &IndexSet) -> Vec<Entry> {
        let wanted: Vec<ImageRef> = self
            .added
            .iter()
            .chain(self.changed.iter().map(|changed| &changed.entry))
            .map(Entry::image)
            .collect();
        let graph = new.graph();
        let mut ordered = Vec::new();
        for wave in graph.rebuild_waves(&wanted) {
            for image in wave {
                if wanted.contains(&image)
                    && let Some(placed) = new.placed(&image)
                {
                    ordered.push(placed.entry.clone());
                }
            }
        }
        ordered
    }
}

/// The difference from `old` to `new`, in the new index's order (removals in the old one's).
pub fn diff(old: &IndexSet, new: &IndexSet) -> IndexDiff {
    let entries = |set: &IndexSet| -> Vec<Entry> {
        set.entries
            .iter()
            .map(|placed| placed.entry.clone())
            .collect()
    };
    diff_entries(&entries(old), &entries(new))
}

/// [`diff`] of two lists of valid entries (each image built by one entry), such as the entries of
/// two `index.applied` events.
pub fn diff_entries(old: &[Entry], new: &[Entry]) -> IndexDiff {
    use std::collections::BTreeMap;
    let by_image = |entries: &[Entry]| -> BTreeMap<ImageRef, usize> {
        entries
            .iter()
            .enumerate()
            .map(|(i, entry)| (entry.image(), i))
            .collect()
    };
    let (old_images, new_images) = (by_image(old), by_image(new));
    let mut result = IndexDiff::default();
    for entry in new {
        match old_images.get(&entry.image()).map(|&i| &old[i]) {
            None => result.added.push(entry.clone()),
            Some(before) => {
                let fields = changed_image_fields(before, entry);
                if !fields.is_empty() {
                    result.changed.push(Changed {
                        entry: entry.clone(),
                        fields,
                    });
                } else if before != entry {
                    result.updated.push(entry.clone());
                }
            }
        }
    }
    for entry in old {
        if !new_images.contains_key(&entry.image()) {
            result.removed.push(entry.clone());
        }
    }
    result
}

/// The [`IMAGE_FIELDS`] in which `before` and `after` differ.
fn changed_image_fields(before: &Entry, after: &Entry) -> Vec<&'static str> {
    let differs = [
        before.git_url != after.git_url,
        before.git_path != after.git_path,
        before.git_branch != after.git_branch,
        before.target_file != after.target_file,
        before.build_context != after.build_context,
        before.prebuild_script != after.prebuild_script,
        before.prebuild_context != after.prebuild_context,
        before.build_args != after.build_args,
        before.network != after.network,
        before.smoke_test != after.smoke_test,
        before.lint != after.lint,
    ];
    IMAGE_FIELDS
        .iter()
        .zip(differs)
        .filter(|(_, differs)| *differs)
        .map(|(field, _)| *field)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::index::parse_index;

    fn set(entries: &[String]) -> IndexSet {
        let yaml = format!("Projects:\n{}", entries.concat());
        IndexSet::validate(
            vec![(PathBuf::from("t.yaml"), parse_index(&yaml).unwrap())],
            &[],
        )
    }

    fn entry(job: &str, extra: &str) -> String {
        format!(
            "  - app-id: t\n    job-id: {job}\n    git-url: https://e.org/r\n    git-path: {job}\n{extra}"
        )
    }

    fn names(entries: &[Entry]) -> Vec<String> {
        entries.iter().map(|e| e.image().to_string()).collect()
    }

    #[test]
    fn added_changed_updated_and_removed_entries_are_told_apart() {
        let old = set(&[
            entry("same", ""),
            entry("branch", "    git-branch: main\n"),
            entry("mail", "    notify-email: a@e.org\n"),
            entry("gone", ""),
            entry("tagged", "    desired-tag: '1'\n"),
        ]);
        let new = set(&[
            entry("same", ""),
            entry("branch", "    git-branch: next\n    build-args: {A: 1}\n"),
            entry("mail", "    notify-email: b@e.org\n"),
            entry("new", ""),
            entry("tagged", "    desired-tag: '2'\n"),
        ]);
        let change = diff(&old, &new);
        assert_eq!(names(&change.added), ["t/new:latest", "t/tagged:2"]);
        assert_eq!(change.changed.len(), 1);
        assert_eq!(
            change.changed[0].entry.image().to_string(),
            "t/branch:latest"
        );
        assert_eq!(change.changed[0].fields, ["git-branch", "build-args"]);
        assert_eq!(names(&change.updated), ["t/mail:latest"]);
        assert_eq!(names(&change.removed), ["t/gone:latest", "t/tagged:1"]);
        assert!(diff(&new, &new).is_empty());
    }

    #[test]
    fn builds_come_parents_first_even_when_listed_children_first() {
        let old = set(&[]);
        let new = set(&[
            entry("child", "    depends-on: t/parent:latest\n"),
            entry("grandchild", "    depends-on: t/child:latest\n"),
            entry("parent", ""),
        ]);
        let change = diff(&old, &new);
        assert_eq!(
            names(&change.builds_in_order(&new)),
            ["t/parent:latest", "t/child:latest", "t/grandchild:latest"]
        );
    }

    #[test]
    fn every_entry_field_is_either_image_shaping_or_bookkeeping() {
        let bookkeeping = [
            "id",
            "app-id",
            "job-id",
            "desired-tag",
            "notify-email",
            "depends-on",
            "rebuild-schedule",
        ];
        let mut all: Vec<&str> = IMAGE_FIELDS.iter().chain(&bookkeeping).copied().collect();
        all.sort_unstable();
        let mut known = crate::index::ENTRY_KEYS.to_vec();
        known.sort_unstable();
        assert_eq!(all, known, "a new entry field must be classified here");
    }
}

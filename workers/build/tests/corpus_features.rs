//! The builder choice over the shared corpus of real Dockerfiles (`../shared/corpus/dockerfiles`):
//! every file's BuildKit-only syntax is looked for without panicking and without false positives
//! (the corpus predates that syntax), and the summary says how many need BuildKit, how many
//! dockerd 20.10 builds, and which features need a newer daemon.
//! Skipped (with a message) when the corpus is absent, unless CI requires it.

use std::collections::BTreeMap;

use slipway_build::features::{
    BuilderPreference, DaemonBuilder, choose_builder, required_features,
};
use slipway_common::workspace::shared_for_test;

#[test]
fn the_corpus_builder_choices_are_counted() {
    let Some(dir) = shared_for_test(env!("CARGO_MANIFEST_DIR"), "corpus/dockerfiles") else {
        return;
    };
    let docker20 = DaemonBuilder::of_engine_version("20.10.24+dfsg1");
    let docker26 = DaemonBuilder::of_engine_version("26.1.5");
    let (mut files, mut need_buildkit, mut on20, mut on26) = (0, 0, 0, 0);
    let mut refused: BTreeMap<String, usize> = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("the corpus directory") {
        let path = entry.expect("a corpus entry").path();
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        files += 1;
        let uses = required_features(&text);
        if uses.is_empty() {
            continue;
        }
        need_buildkit += 1;
        match choose_builder(&uses, &docker20, BuilderPreference::Classic) {
            Ok(_) => on20 += 1,
            Err(error) => *refused.entry(error.feature).or_default() += 1,
        }
        if choose_builder(&uses, &docker26, BuilderPreference::Classic).is_ok() {
            on26 += 1;
        }
    }
    println!(
        "{files} Dockerfiles; {need_buildkit} use BuildKit-only syntax; dockerd 20.10 builds {on20} of them, Docker 26 {on26}; refused on 20.10 by first feature: {refused:?}"
    );
    assert!(files > 100, "the corpus has its files: {files}");
    // The shared corpus predates BuildKit syntax (none of its files uses any); the held-back
    // corpus the issue measured holds 16 of 347. What must hold here: no false positive, such as
    // the `--link` of a `docker run` in a comment or a RUN argument.
    assert_eq!(need_buildkit, 0, "{refused:?}");
    assert!(on26 >= on20, "a newer daemon builds at least as much");
}

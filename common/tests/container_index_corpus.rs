//! Every entry of the real CentOS container index in `../shared/corpus/container-index` but two
//! known bad ones parses,
//! validates, and survives a trip through a `build.requested` envelope unchanged (skipped without
//! `../shared`, unless `SLIPWAY_REQUIRE_SHARED` is set).

use slipway_common::index::read_index_file;
use slipway_common::message::BuildRequested;
use slipway_common::workspace::shared_for_test;
use slipway_common::{Cause, Envelope, Message};

#[test]
fn every_corpus_entry_is_valid_and_round_trips() {
    let Some(dir) = shared_for_test(env!("CARGO_MANIFEST_DIR"), "corpus/container-index") else {
        return;
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).unwrap();
    assert_eq!(
        files.len(),
        manifest.lines().skip(1).count(),
        "every file in MANIFEST.tsv is here"
    );

    let (mut entries, mut declared, mut invalid) = (0, 0, Vec::new());
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        // Entries as written: uncommented `app-id:` keys.
        declared += text
            .lines()
            .filter(|l| {
                l.trim_start()
                    .trim_start_matches("- ")
                    .starts_with("app-id")
            })
            .count();
        let index = read_index_file(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for entry in index.entries.iter().map(|placed| &placed.entry) {
            let envelope = Envelope::new_job(
                Cause::User,
                Message::BuildRequested(BuildRequested {
                    entry: entry.clone(),
                    commit: None,
                }),
            );
            let decoded = Envelope::decode(&envelope.encode().unwrap()).unwrap();
            assert_eq!(decoded, envelope);
        }
        entries += index.entries.len();
        invalid.extend(index.invalid.iter().map(|bad| {
            let name = file.file_name().unwrap().to_string_lossy();
            format!("{name}:{}: {bad}", bad.line.unwrap_or(0))
        }));
    }
    // index_template.yaml is the index's own fill-in-the-blanks template (`id: number`,
    // `app-id: container_namespace`), and one real entry misspells `build-context`: the two
    // entries that must be refused.
    assert_eq!(
        invalid,
        [
            r#"index_template.yaml:8: entry 1 (container_namespace/container_name): invalid type: string "number", expected u64"#,
            r#"pipeline-images.yaml:62: entry 4 (pipeline-images/scanner-analytics-integration): unknown key "build_context" (did you mean "build-context"?)"#,
        ],
        "invalid corpus entries"
    );
    assert_eq!(
        entries + invalid.len(),
        declared,
        "every declared entry was read"
    );
    assert!(entries >= 180, "only {entries} entries found");
}

/// The real index as one set: besides the two refused entries, four `depends-on` name images
/// the index does not build (declared external here, as a deployment would), and nothing else
/// is wrong: no repeated image, no cycle (one entry names itself, which is a warning).
#[test]
fn the_corpus_is_one_valid_index_once_its_externals_are_declared() {
    use slipway_common::ImageRef;
    use slipway_common::index::set::IndexSet;

    let Some(dir) = shared_for_test(env!("CARGO_MANIFEST_DIR"), "corpus/container-index") else {
        return;
    };
    let set = IndexSet::read(std::slice::from_ref(&dir), &[]).unwrap();
    let mut unresolved: Vec<String> = set
        .problems
        .iter()
        .filter(|p| p.message.starts_with("depends-on:"))
        .map(|p| p.message.clone())
        .collect();
    unresolved.sort();
    unresolved.dedup();
    assert_eq!(
        unresolved,
        [
            r#"depends-on: "openshift/base-centos7:latest" is neither an image of the index nor declared external"#,
            r#"depends-on: "openshift/jenkins-slave-base-centos7:latest" is neither an image of the index nor declared external"#,
            r#"depends-on: "sclo/nodejs-6-centos7:latest" is neither an image of the index nor declared external"#,
        ]
    );
    let external: Vec<ImageRef> = [
        "openshift/base-centos7:latest",
        "openshift/jenkins-slave-base-centos7:latest",
        "sclo/nodejs-6-centos7:latest",
    ]
    .iter()
    .map(|name| ImageRef::parse(name).unwrap())
    .collect();
    let set = IndexSet::read(&[dir], &external).unwrap();
    let problems: Vec<String> = set
        .problems
        .iter()
        .map(|p| p.to_string().rsplit('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    // centos/centos:7 names itself in depends-on: a warning, not a cycle.
    assert_eq!(set.warnings.len(), 1, "{:?}", set.warnings);
    assert!(set.warnings[0].to_string().ends_with(
        r#"centos.yaml:254: depends-on: "centos/centos:7" is this entry's own image; ignored"#
    ));
    assert!(set.graph().cycles().is_empty());
    // centos/centos:7 is the parent of most of the index.
    let children = set
        .graph()
        .children_of(&ImageRef::parse("centos/centos:7").unwrap())
        .len();
    assert!(children >= 50, "{children}");
}

//! ShellCheck in batches (`slipway_lint::batch`) with the real `shellcheck`: the findings of every
//! corpus file are exactly those of linting it alone, and a script over the time limit costs only
//! its own file a `SC0000`, while the files that shared its batch keep their findings.

use std::time::Duration;

use slipway_lint::batch::lint_sources;
use slipway_lint::lint::ShellChecker;
use slipway_lint::shellcheck::{ShellcheckLimits, ShellcheckProgram};
use slipway_lint::{Settings, lint_with};

fn shellcheck(limits: ShellcheckLimits) -> ShellcheckProgram {
    ShellcheckProgram::find("shellcheck")
        .expect("shellcheck is installed (apt-get install shellcheck; deploy/dev-env.sh does)")
        .with_limits(limits)
}

#[test]
fn batched_findings_are_each_files_own_over_the_corpus() {
    let Some(corpus) =
        slipway_common::workspace::shared_for_test(env!("CARGO_MANIFEST_DIR"), "corpus")
    else {
        return;
    };
    let mut paths: Vec<_> = std::fs::read_dir(corpus.join("dockerfiles"))
        .expect("the corpus")
        .filter_map(|entry| Some(entry.ok()?.path()))
        .collect();
    paths.sort();
    let sources: Vec<String> = paths
        .iter()
        .map(|path| slipway_lint::parser::decode(&std::fs::read(path).expect("readable")))
        .collect();
    let program = shellcheck(ShellcheckLimits::default());
    let settings = Settings::default();
    let batched = lint_sources(&sources, &settings, Some(&program), 2);
    let mut with_shellcheck = 0;
    for ((path, source), batched) in paths.iter().zip(&sources).zip(&batched) {
        let alone = lint_with(source, &settings, Some(&program as &dyn ShellChecker));
        assert_eq!(batched, &alone, "{}", path.display());
        with_shellcheck += usize::from(alone.iter().any(|f| f.code.starts_with("SC")));
    }
    assert!(
        with_shellcheck > sources.len() / 4,
        "ShellCheck found something in only {with_shellcheck} files"
    );
}

#[test]
fn a_script_over_the_time_limit_fails_only_its_own_file() {
    let hostile = format!(
        "FROM debian:12\nRUN {}true{}\n",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    let ordinary = "FROM debian:12\nRUN echo $1\n".to_owned();
    let sources = vec![ordinary.clone(), hostile, ordinary];
    let program = shellcheck(ShellcheckLimits {
        time: Duration::from_secs(2),
        ..ShellcheckLimits::default()
    });
    // One thread: all three scripts (two of them the same) in one batch, which times out.
    let found = lint_sources(&sources, &Settings::default(), Some(&program), 1);
    let codes = |failures: &[slipway_lint::Failure]| -> Vec<String> {
        failures.iter().map(|f| f.code.clone()).collect()
    };
    assert!(
        codes(&found[0]).contains(&"SC2086".to_owned()),
        "{:?}",
        found[0]
    );
    assert_eq!(found[0], found[2], "the same script, the same findings");
    let failed = found[1]
        .iter()
        .find(|f| f.code == "SC0000")
        .unwrap_or_else(|| panic!("{:?}", found[1]));
    assert!(failed.message.contains("time limit"), "{}", failed.message);
    assert!(!codes(&found[0]).contains(&"SC0000".to_owned()));
}

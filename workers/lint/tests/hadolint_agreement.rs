//! Agreement with hadolint 2.15 over the shared corpus: precision and recall of (file, line, code)
//! against `hadolint-reference.jsonl`, each at least 0.97, for the DL codes and for the ShellCheck
//! (SC) findings. Prints a per-code table and every disagreement, so a failing run says exactly
//! where the linters differ. Skipped without `../shared` unless `SLIPWAY_REQUIRE_SHARED` is set.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use slipway_lint::lint::ShellChecker;
use slipway_lint::shellcheck::ShellcheckProgram;
use slipway_lint::{Settings, lint, lint_with};

/// Findings where hadolint is wrong, each with the reason: (file, line, code, why). Kept under 1%
/// of the reference findings.
const ALLOWLIST: &[(&str, u32, &str, &str)] = &[];

type Key = (String, u32, String);

/// `../shared/corpus`, or `None` (the test is skipped, with a line saying so) on a fresh clone.
fn corpus() -> Option<PathBuf> {
    slipway_common::workspace::shared_for_test(env!("CARGO_MANIFEST_DIR"), "corpus")
}

/// hadolint's level and message for each (file, line, code) of the reference.
type Texts = BTreeMap<Key, BTreeSet<(String, String)>>;

/// The corpus files and hadolint's findings whose code starts with `prefix` (`DL` or `SC`).
fn reference(corpus: &Path, prefix: &str) -> (Vec<String>, BTreeMap<Key, usize>, Texts) {
    let text = std::fs::read_to_string(corpus.join("hadolint-reference.jsonl"))
        .expect("hadolint-reference.jsonl is readable");
    let mut files = Vec::new();
    let mut findings = BTreeMap::new();
    let mut texts = Texts::new();
    for line in text.lines() {
        let record: serde_json::Value = serde_json::from_str(line).expect("valid JSON line");
        let file = record["file"].as_str().expect("file name").to_string();
        for finding in record["findings"].as_array().expect("findings array") {
            let code = finding["code"].as_str().expect("code");
            if code.starts_with(prefix) {
                let line = finding["line"].as_u64().expect("line") as u32;
                let key = (file.clone(), line, code.to_string());
                let level = finding["level"].as_str().expect("level").to_string();
                let message = finding["message"].as_str().expect("message").to_string();
                texts
                    .entry(key.clone())
                    .or_default()
                    .insert((level, message));
                *findings.entry(key).or_insert(0) += 1;
            }
        }
        files.push(file);
    }
    (files, findings, texts)
}

#[test]
fn agrees_with_hadolint_on_the_corpus() {
    let Some(corpus) = corpus() else {
        return;
    };
    let (files, expected, texts) = reference(&corpus, "DL");
    let mut wrong_texts = Vec::new();
    assert_eq!(files.len(), 416, "the corpus has 416 files");
    let mut actual: BTreeMap<Key, usize> = BTreeMap::new();
    for file in &files {
        let bytes = std::fs::read(corpus.join("dockerfiles").join(file)).expect("corpus file");
        let text = slipway_lint::parser::decode(&bytes);
        for failure in lint(&text, &Settings::default()) {
            let key = (file.clone(), failure.line, failure.code.clone());
            let said = (
                failure.severity.as_str().to_string(),
                failure.message.clone(),
            );
            if failure.code != "DL1000" && texts.get(&key).is_some_and(|t| !t.contains(&said)) {
                wrong_texts.push(format!(
                    "{key:?}: we say {said:?}, hadolint {:?}",
                    texts[&key]
                ));
            }
            *actual
                .entry((file.clone(), failure.line, failure.code))
                .or_insert(0) += 1;
        }
    }
    let (precision, recall) = compare(&expected, &actual, ALLOWLIST);
    let reference_total: usize = expected.values().sum();
    assert!(
        ALLOWLIST.len() * 100 < reference_total,
        "the allowlist must stay under 1% of {reference_total} findings"
    );
    for wrong in &wrong_texts {
        println!("TEXT    {wrong}");
    }
    assert!(
        wrong_texts.is_empty(),
        "{} findings agree on file, line and code but not on level or message",
        wrong_texts.len()
    );
    assert!(precision >= 0.97, "precision {precision:.4} < 0.97");
    assert!(recall >= 0.97, "recall {recall:.4} < 0.97");
}

/// ShellCheck's findings through Slipway's adapter agree with hadolint's built-in ShellCheck once
/// they are reduced the way hadolint reduces them: hadolint keeps at most one ShellCheck finding
/// per `RUN` (its `CheckFailure` ordering compares line numbers only, and a RUN's findings go
/// through `Set.fromList`, which keeps the last), while `slipway lint` reports them all. Needs the
/// `shellcheck` program (`deploy/dev-env.sh` installs it). Misses allowed for by the threshold:
/// hadolint runs ShellCheck over `SHELL ["powershell", …]` scripts (6 SC1088 parse errors), and
/// Debian's ShellCheck 0.9.0 picks another last finding than hadolint's on a few RUNs.
#[test]
fn shellcheck_findings_agree_once_reduced_to_one_per_run_as_hadolint_does() {
    let Some(corpus) = corpus() else {
        return;
    };
    let shellcheck = ShellcheckProgram::find("shellcheck")
        .expect("shellcheck is installed (deploy/dev-env.sh installs it)");
    let (files, expected, _) = reference(&corpus, "SC");
    assert!(expected.len() > 250, "the reference has SC findings");
    // Lint on both cores: one shellcheck process per file is most of the time.
    let halves = files.split_at(files.len() / 2);
    let lint_some = |files: &[String]| -> BTreeMap<(String, u32), String> {
        let mut last_per_run = BTreeMap::new();
        for file in files {
            let bytes = std::fs::read(corpus.join("dockerfiles").join(file)).expect("corpus file");
            let text = slipway_lint::parser::decode(&bytes);
            let checker: &dyn ShellChecker = &shellcheck;
            for failure in lint_with(&text, &Settings::default(), Some(checker)) {
                if failure.code.starts_with("SC") {
                    // Findings of one RUN come in ShellCheck's position order: the last stays.
                    last_per_run.insert((file.clone(), failure.line), failure.code);
                }
            }
        }
        last_per_run
    };
    let (first, second) = std::thread::scope(|scope| {
        let first = scope.spawn(|| lint_some(halves.0));
        let second = lint_some(halves.1);
        (first.join().expect("first half linted"), second)
    });
    let actual: BTreeMap<Key, usize> = first
        .into_iter()
        .chain(second)
        .map(|((file, line), code)| ((file, line, code), 1))
        .collect();
    let (precision, recall) = compare(&expected, &actual, &[]);
    assert!(precision >= 0.97, "SC precision {precision:.4} < 0.97");
    assert!(recall >= 0.97, "SC recall {recall:.4} < 0.97");
}

/// Compares (file, line, code) counts, prints a per-code table and every disagreement, and
/// returns (precision, recall); allowlisted keys count neither way.
fn compare(
    expected: &BTreeMap<Key, usize>,
    actual: &BTreeMap<Key, usize>,
    allowlist: &[(&str, u32, &str, &str)],
) -> (f64, f64) {
    let allowed = |key: &Key| {
        allowlist
            .iter()
            .any(|(f, l, c, _)| *f == key.0 && *l == key.1 && *c == key.2)
    };
    let mut per_code: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let mut missing = Vec::new();
    let mut extra = Vec::new();
    let (mut tp, mut fp, mut fn_) = (0, 0, 0);
    let keys: BTreeSet<&Key> = expected.keys().chain(actual.keys()).collect();
    for key in keys {
        let e = expected.get(key).copied().unwrap_or(0);
        let a = actual.get(key).copied().unwrap_or(0);
        let entry = per_code.entry(key.2.clone()).or_default();
        let matched = e.min(a);
        entry.0 += matched;
        tp += matched;
        if a > e && !allowed(key) {
            entry.1 += a - e;
            fp += a - e;
            extra.push(key.clone());
        }
        if e > a && !allowed(key) {
            entry.2 += e - a;
            fn_ += e - a;
            missing.push(key.clone());
        }
    }
    println!("code      agree  extra  missing");
    for (code, (t, f, m)) in &per_code {
        println!("{code}  {t:6} {f:6} {m:8}");
    }
    for (file, line, code) in &extra {
        println!("EXTRA   {code} {file}:{line}");
    }
    for (file, line, code) in &missing {
        println!("MISSING {code} {file}:{line}");
    }
    let precision = tp as f64 / (tp + fp).max(1) as f64;
    let recall = tp as f64 / (tp + fn_).max(1) as f64;
    println!(
        "precision {precision:.4} ({tp} agree, {fp} extra), recall {recall:.4} ({fn_} missing), allowlisted {}",
        allowlist.len()
    );
    (precision, recall)
}

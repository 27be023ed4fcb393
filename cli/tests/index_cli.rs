//! `slipway index check` as users run it: problems with their file and line, a suggestion for a
//! misspelled key, the file-name rule, and hostile files refused quickly.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use slipway_tests::TempDir;

fn index_check(dir: &TempDir, file: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["index", "check", file])
        .current_dir(dir.path())
        .output()
        .expect("run slipway")
}

#[test]
fn problems_are_listed_with_file_line_and_suggestion() {
    let dir = TempDir::new("index-check");
    dir.file(
        "team.yaml",
        "Projects:\n  - id: 1\n    app-id: team\n    job-id: web\n    git-url: https://e.org/r\n    smoketest: 'true'\n\n  - id: 1\n    app-id: team\n    job-id: api\n    git-url: https://e.org/r\n\n  - id: 2\n    app-id: other\n    job-id: db\n    git-url: https://e.org/r\n",
    );
    let output = index_check(&dir, "team.yaml");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            r#"team.yaml:6: entry 1 (team/web): unknown key "smoketest" (did you mean "smoke-test"?)"#,
            "team.yaml:8: entry 2 (team/api): id: 1 is already the id of entry 1, line 2",
            r#"team.yaml:14: entry 3 (other/db): app-id: expected "team", the file's name (the index keeps the entries of app-id X in X.yaml), found "other""#,
            "team.yaml: 0 valid, 3 invalid",
        ]
    );
}

#[test]
fn unclosed_brackets_are_refused_at_once() {
    let dir = TempDir::new("index-brackets");
    dir.file("team.yaml", &format!("Projects: {}", "[".repeat(100_000)));
    let started = Instant::now();
    let output = index_check(&dir, "team.yaml");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("team.yaml") && stderr.contains("nested more than 16 levels deep"),
        "{stderr}"
    );
    // The deserializer alone took 28 s on this.
    assert!(started.elapsed() < Duration::from_secs(5), "{stderr}");
}

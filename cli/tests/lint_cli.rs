//! `slipway lint` as users run it: exit codes as hadolint's, output formats, standard input,
//! configuration from a file, the environment and options, many files in order, ShellCheck.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const ERRORS: &str = "FROM debian:12\nMAINTAINER me\nRUN apt-get install -y curl\n";
const STYLE_ONLY: &str = "FROM debian:12\nLABEL -bad=1\n";
const CLEAN: &str = "FROM debian:12.5\nCMD [\"true\"]\n";

use slipway_tests::TempDir;

/// Runs `slipway lint ARGS` in `dir` with no HADOLINT_* variables and no home configuration.
fn slipway(dir: &TempDir, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway"));
    cmd.arg("lint")
        .args(args)
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("SLIPWAY_LINT_SHELLCHECK")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, _) in std::env::vars() {
        if name.starts_with("HADOLINT_") || name == "NO_COLOR" {
            cmd.env_remove(name);
        }
    }
    for (name, value) in env {
        cmd.env(name, value);
    }
    let mut child = cmd.spawn().expect("run slipway");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("slipway finishes")
}

fn json(output: &Output) -> Vec<serde_json::Value> {
    serde_json::from_slice::<Vec<serde_json::Value>>(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not a JSON array ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn codes(output: &Output) -> Vec<(String, u64)> {
    json(output)
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap_or_default().to_string(),
                f["line"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

#[test]
fn exit_codes_follow_the_failure_threshold_like_hadolint() {
    let dir = TempDir::new("exit");
    let errors = dir.file("Errors", ERRORS);
    let style = dir.file("Style", STYLE_ONLY);
    let clean = dir.file("Clean", CLEAN);
    let never = ["--shellcheck", "never"];
    let run = |extra: &[&str], file: &PathBuf| {
        let mut args: Vec<&str> = never.to_vec();
        args.extend_from_slice(extra);
        args.push(file.to_str().expect("utf-8 path"));
        slipway(&dir, &args, &[], None).status.code()
    };
    assert_eq!(run(&[], &errors), Some(1));
    assert_eq!(run(&["--no-fail"], &errors), Some(0));
    assert_eq!(run(&[], &clean), Some(0));
    // Style findings are below the default threshold (info)…
    assert_eq!(run(&[], &style), Some(0));
    // …and above it when the threshold is style.
    assert_eq!(run(&["-t", "style"], &style), Some(1));
    assert_eq!(run(&["--failure-threshold", "error"], &errors), Some(1));
    let warnings_only = dir.file("Warn", "FROM debian:12\nRUN cd /tmp\n");
    assert_eq!(
        run(&["--failure-threshold", "error"], &warnings_only),
        Some(0)
    );
    // An unparseable file and a missing file fail.
    let broken = dir.file("Broken", "FROM a:1\n{{ x }}\n");
    assert_eq!(run(&[], &broken), Some(1));
    assert_eq!(run(&[], &dir.path().join("missing")), Some(1));
    // A bad option value is an error, not a silent default.
    let out = slipway(
        &dir,
        &["-t", "fatal", errors.to_str().unwrap_or_default()],
        &[],
        None,
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fatal"));
}

#[test]
fn json_output_has_hadolints_shape_and_keeps_file_order_across_threads() {
    let dir = TempDir::new("order");
    let files: Vec<PathBuf> = (0..40)
        .map(|i| {
            dir.file(
                &format!("Dockerfile.{i:02}"),
                if i % 2 == 0 { ERRORS } else { STYLE_ONLY },
            )
        })
        .collect();
    let mut args = vec!["--format", "json", "--shellcheck", "never"];
    args.extend(files.iter().map(|f| f.to_str().unwrap_or_default()));
    let out = slipway(&dir, &args, &[], None);
    let findings = json(&out);
    let order: Vec<&str> = findings
        .iter()
        .map(|f| f["file"].as_str().unwrap_or_default())
        .collect();
    let mut expected: Vec<&str> = order.clone();
    expected.dedup();
    assert_eq!(expected.len(), 40, "every file reported once, contiguously");
    assert!(expected.windows(2).all(|w| w[0] < w[1]), "input order kept");
    let first = &findings[0];
    let keys: Vec<&String> = first.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["code", "column", "file", "level", "line", "message"]);
    assert_eq!(first["code"], "DL4000");
    assert_eq!(first["level"], "error");
    assert_eq!(first["line"], 2);
}

#[test]
fn stdin_is_read_for_a_dash() {
    let dir = TempDir::new("stdin");
    let out = slipway(
        &dir,
        &["-f", "json", "--shellcheck", "never", "-"],
        &[],
        Some(ERRORS),
    );
    let findings = json(&out);
    assert!(findings.iter().all(|f| f["file"] == "-"));
    assert!(codes(&out).contains(&("DL4000".to_string(), 2)));
}

#[test]
fn configuration_from_file_environment_and_options_layers() {
    let dir = TempDir::new("config");
    let file = dir.file("Dockerfile", ERRORS);
    let path = file.to_str().unwrap_or_default();
    let base = ["-f", "json", "--shellcheck", "never"];
    let with = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        args.push(path);
        slipway(&dir, &args, env, None)
    };
    // Found in the working directory.
    dir.file(
        ".hadolint.yaml",
        "ignored: [DL4000]\noverride:\n  error: [DL3008]\n",
    );
    let out = with(&[], &[]);
    let findings = json(&out);
    assert!(!codes(&out).iter().any(|(c, _)| c == "DL4000"));
    assert!(
        findings
            .iter()
            .any(|f| f["code"] == "DL3008" && f["level"] == "error")
    );
    // The environment adds to it.
    let out = with(&[], &[("HADOLINT_IGNORE", "DL3008,DL3015")]);
    assert!(!codes(&out).iter().any(|(c, _)| c == "DL3008"));
    // Options add to both; --config replaces the search.
    let explicit = dir.file("other.yaml", "failure-threshold: error\n");
    let out = with(
        &[
            "--config",
            explicit.to_str().unwrap_or_default(),
            "--ignore",
            "DL4000",
        ],
        &[],
    );
    assert!(
        codes(&out).iter().any(|(c, _)| c == "DL3008"),
        "the cwd file is not read with --config"
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "only warnings remain and the threshold is error"
    );
    // A broken configuration file is a clear error.
    let broken = dir.file("broken.yaml", "failure-threshold: [\n");
    let out = with(&["--config", broken.to_str().unwrap_or_default()], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken.yaml"));
}

#[test]
fn every_format_renders() {
    let dir = TempDir::new("formats");
    let file = dir.file("Dockerfile", ERRORS);
    let path = file.to_str().unwrap_or_default();
    let render = |format: &str| {
        let out = slipway(
            &dir,
            &["--format", format, "--shellcheck", "never", path],
            &[],
            None,
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(render("tty").contains(&format!("{path}:2 DL4000 error: MAINTAINER is deprecated")));
    assert!(render("gnu").contains(&format!("slipway-lint:{path}:2:1: DL4000 error:")));
    assert!(render("checkstyle").contains("source='DL4000'"));
    let sarif: serde_json::Value = serde_json::from_str(&render("sarif")).expect("SARIF is JSON");
    assert_eq!(sarif["version"], "2.1.0");
}

#[test]
fn shellcheck_findings_appear_when_shellcheck_runs() {
    let dir = TempDir::new("shellcheck");
    let file = dir.file("Dockerfile", "FROM debian:12.5\nARG V\nRUN echo $FOO $V\n");
    let path = file.to_str().unwrap_or_default();
    let out = slipway(
        &dir,
        &["-f", "json", "--shellcheck", "always", path],
        &[],
        None,
    );
    assert!(
        out.status.code().is_some(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let findings = codes(&out);
    assert!(
        findings.contains(&("SC2086".to_string(), 3)),
        "{findings:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = slipway(
        &dir,
        &["-f", "json", "--shellcheck", "never", path],
        &[],
        None,
    );
    assert!(codes(&out).iter().all(|(c, _)| c.starts_with("DL")));
}

/// Pids of the running (not zombie) processes named `name` whose parent is `parent`.
fn children_named(parent: u32, name: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some((comm, state, ppid)) = proc_stat(pid)
            && comm == name
            && ppid == parent
            && state != 'Z'
        {
            found.push(pid);
        }
    }
    found
}

/// `(comm, state, ppid)` of `pid` from `/proc/PID/stat`, or `None` once it is gone.
fn proc_stat(pid: u32) -> Option<(String, char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let comm = stat[open + 1..close].to_owned();
    let mut rest = stat[close + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((comm, state, ppid))
}

/// Kills a process the test could not see end (so a failing test leaves nothing behind).
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", &self.0.to_string()])
            .status();
    }
}

#[test]
fn a_slipway_lint_killed_with_sigkill_takes_its_shellcheck_with_it() {
    let dir = TempDir::new("shellcheck-parent");
    // The hostile RUN of issue 13: an unlimited ShellCheck runs for more than 30 s on it.
    let hostile = format!(
        "FROM debian:12\nRUN {}true{}\n",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    let path = dir.file("Dockerfile", &hostile);
    let mut parent = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["lint", "--shellcheck", "always"])
        .arg(&path)
        // Limits far above what the test waits for: only the parent's death can stop it in time.
        .env("SLIPWAY_LINT_SHELLCHECK_TIMEOUT", "300")
        .env("SLIPWAY_LINT_SHELLCHECK_MEMORY", "4096")
        .env("HOME", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run slipway lint");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let shellcheck = loop {
        if let Some(&pid) = children_named(parent.id(), "shellcheck").first() {
            break pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "slipway lint started no shellcheck within 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let _cleanup = KillOnDrop(shellcheck);

    parent.kill().expect("SIGKILL slipway lint");
    parent.wait().expect("reap slipway lint");
    let killed_at = std::time::Instant::now();
    let deadline = killed_at + std::time::Duration::from_secs(10);
    while proc_stat(shellcheck).is_some_and(|(comm, state, _)| comm == "shellcheck" && state != 'Z')
    {
        assert!(
            std::time::Instant::now() < deadline,
            "shellcheck (pid {shellcheck}) still runs 10 s after its parent was killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    eprintln!(
        "shellcheck gone {:?} after its parent's SIGKILL",
        killed_at.elapsed()
    );
}

#[test]
fn a_shellcheck_over_its_time_limit_fails_slipway_lint_with_the_reason() {
    let dir = TempDir::new("shellcheck-limit");
    let hostile = format!(
        "FROM debian:12.5\nRUN {}true{}\n",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    let path = dir.file("Dockerfile", &hostile);
    let path = path.to_str().expect("utf-8 path");
    let output = slipway(
        &dir,
        &["--shellcheck", "always", "--no-color", path],
        &[("SLIPWAY_LINT_SHELLCHECK_TIMEOUT", "1")],
        None,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(":2 SC0000 error: ShellCheck could not check the RUN scripts (lines 2): shellcheck did not finish within its time limit of 1s"),
        "{stdout}"
    );
}

/// The formats CI systems read, byte for byte against hadolint 2.15 over the shared corpus: the
/// files whose JSON findings are the same, in the same order, from both (most; the agreement test
/// compares the rest as sets), linted in one run each, with the same relative paths, in each of `codeclimate`, `gitlab_codeclimate` (its
/// fingerprints are SHA-1s of the Code Climate JSON), `sonarqube` and `codacy`; exit codes too
/// (hadolint exits 0 for Code Climate and Codacy whatever it finds).
#[test]
fn the_ci_formats_are_hadolints_byte_for_byte_on_the_corpus() {
    let Some(corpus) =
        slipway_common::workspace::shared_for_test(env!("CARGO_MANIFEST_DIR"), "corpus")
    else {
        return;
    };
    let Some(hadolint) = slipway_tests::tools::hadolint_or_skip() else {
        return;
    };
    let dir = TempDir::new("ci-formats");
    let home = dir.path().to_str().expect("a path").to_owned();
    let run_hadolint = |args: &[&str]| {
        Command::new(&hadolint)
            .args(args)
            .current_dir(corpus.join("dockerfiles"))
            .env("HOME", &home)
            .env("NO_COLOR", "1")
            .output()
            .expect("hadolint runs")
    };
    let run_slipway = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway"));
        cmd.arg("lint")
            .args(["--shellcheck", "never"])
            .args(args)
            .current_dir(corpus.join("dockerfiles"))
            .env("HOME", &home)
            .env("NO_COLOR", "1");
        for (name, _) in std::env::vars() {
            if name.starts_with("HADOLINT_") {
                cmd.env_remove(name);
            }
        }
        cmd.output().expect("slipway lint runs")
    };
    let mut names: Vec<String> = std::fs::read_dir(corpus.join("dockerfiles"))
        .expect("the corpus")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    // The files whose findings are the same from both in JSON (one run each, grouped by file):
    // one differing finding must not hide the others.
    let by_file = |output: Output| {
        let findings: Vec<serde_json::Value> =
            serde_json::from_slice(&output.stdout).expect("a JSON array");
        let mut grouped = std::collections::BTreeMap::<String, Vec<serde_json::Value>>::new();
        for finding in findings {
            let file = finding["file"].as_str().unwrap_or_default().to_owned();
            grouped.entry(file).or_default().push(finding);
        }
        grouped
    };
    let all: Vec<&str> = ["-f", "json"]
        .into_iter()
        .chain(names.iter().map(String::as_str))
        .collect();
    // hadolint runs the ShellCheck built into it, another version than Debian's: both leave out
    // the SC codes it finds, so that the comparison is of the formats.
    let mut shellcheck_codes: Vec<String> = by_file(run_hadolint(&all))
        .into_values()
        .flatten()
        .filter_map(|f| Some(f["code"].as_str()?.to_owned()))
        .filter(|code| code.starts_with("SC"))
        .collect();
    shellcheck_codes.sort();
    shellcheck_codes.dedup();
    let ignore: Vec<&str> = shellcheck_codes
        .iter()
        .flat_map(|code| ["--ignore", code.as_str()])
        .collect();
    let all: Vec<&str> = ignore.iter().copied().chain(all).collect();
    let (ours, theirs) = (by_file(run_slipway(&all)), by_file(run_hadolint(&all)));
    let agreed: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|name| {
            let theirs = theirs.get(*name);
            ours.get(*name) == theirs
                && !theirs.is_some_and(|findings| findings.iter().any(|f| f["code"] == "DL1000"))
        })
        .collect();
    // Most files: in 124 of the 417 hadolint lists two findings of one line in another order (not
    // rule order: an unstable sort, it seems), and a few DL1000 messages differ.
    assert!(
        agreed.len() * 10 >= names.len() * 6,
        "only {} of {} files agree in JSON",
        agreed.len(),
        names.len()
    );
    for format in ["codeclimate", "gitlab_codeclimate", "sonarqube", "codacy"] {
        let args: Vec<&str> = ignore
            .iter()
            .copied()
            .chain(["-f", format])
            .chain(agreed.iter().copied())
            .collect();
        let ours = run_slipway(&args);
        let theirs = run_hadolint(&args);
        assert!(
            !theirs.stdout.is_empty(),
            "{format}: hadolint printed nothing"
        );
        if ours.stdout != theirs.stdout {
            let (ours, theirs) = (
                String::from_utf8_lossy(&ours.stdout),
                String::from_utf8_lossy(&theirs.stdout),
            );
            let at = ours
                .char_indices()
                .zip(theirs.chars())
                .find(|((_, a), b)| a != b)
                .map_or(ours.len().min(theirs.len()), |((i, _), _)| i);
            let from = at.saturating_sub(200);
            panic!(
                "{format} differs at byte {at}:\nslipway:  …{}\nhadolint: …{}",
                &ours[from..(at + 200).min(ours.len())],
                &theirs[from..(at + 200).min(theirs.len())]
            );
        }
        assert_eq!(
            ours.status.code(),
            theirs.status.code(),
            "{format}: exit status"
        );
    }
    println!(
        "{} of {} corpus files compared in 4 formats",
        agreed.len(),
        names.len()
    );
}

#[test]
fn an_unknown_hadolint_format_is_an_error_not_a_silent_tty() {
    let dir = TempDir::new("format-env");
    let file = dir.file("Dockerfile", CLEAN);
    let out = slipway(
        &dir,
        &["--shellcheck", "never", file.to_str().unwrap_or_default()],
        &[("HADOLINT_FORMAT", "codeclimat")],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing rendered");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("HADOLINT_FORMAT: unknown format 'codeclimat'")
            && stderr.contains("codeclimate"),
        "{stderr}"
    );
}

//! The lint engine: parse, run every rule, apply ignore pragmas, configured severities and
//! ignores, and sort — hadolint's pipeline, with no I/O (ShellCheck is plugged in by the caller).

use std::collections::{BTreeMap, BTreeSet};

use crate::parser;
use crate::rules::{self, Failure, Meta, RuleConfig, Severity};
use crate::syntax::{ArgumentsForm, Dockerfile, Instruction};

/// The pseudo-rule reported when the Dockerfile cannot be parsed.
pub const PARSE_ERROR: Meta = Meta {
    code: "DL1000",
    severity: Severity::Error,
    message: "Dockerfile parse error",
};

/// Everything that changes what the linter reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// Rule codes never reported.
    pub ignored: BTreeSet<String>,
    /// Rule codes whose severity is changed (`ignore` hides them; it also shows rules that are
    /// off by default, such as DL3057, when set to another level).
    pub overrides: BTreeMap<String, Severity>,
    /// Inputs to the configurable rules.
    pub rules: RuleConfig,
    /// Whether `# hadolint ignore=` pragmas are disregarded.
    pub disable_ignore_pragma: bool,
}

/// The finding reported when ShellCheck could not check the `RUN` scripts (not installed
/// correctly, over its time or memory limit, crashed). Always an error that fails the lint, and
/// never ignored, overridden or hidden by a pragma: a Dockerfile that could not be checked must
/// not pass (the Dockerfile itself could otherwise carry `# hadolint ignore=SC0000`).
pub const SHELLCHECK_FAILED: Meta = Meta {
    code: "SC0000",
    severity: Severity::Error,
    message: "ShellCheck could not check the RUN scripts",
};

/// One `RUN` script to give to ShellCheck, with what hadolint tells ShellCheck about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellScript {
    /// Line of the `RUN` instruction (findings are reported there).
    pub line: u32,
    /// The shell command line in effect (`/bin/sh -c` unless `SHELL` or a pragma changed it).
    pub shell: String,
    /// Variables defined by `ARG`/`ENV` so far in the stage (plus the proxy variables).
    pub variables: BTreeSet<String>,
    /// The script text.
    pub script: String,
}

/// Something that checks shell scripts (the `shellcheck` program, in practice).
pub trait ShellChecker {
    /// Checks the scripts of one Dockerfile, returning failures positioned at their `line`s, or
    /// why it could not check them.
    fn check(&self, scripts: &[ShellScript]) -> Result<Vec<Failure>, String>;
}

/// Lints Dockerfile text with the DL rules only.
pub fn lint(source: &str, settings: &Settings) -> Vec<Failure> {
    lint_with(source, settings, None)
}

/// Lints Dockerfile text, also running `shellcheck` over `RUN` scripts when given.
pub fn lint_with(
    source: &str,
    settings: &Settings,
    shellcheck: Option<&dyn ShellChecker>,
) -> Vec<Failure> {
    let analysis = Analysis::of(source, settings);
    let checked = shellcheck.map(|checker| checker.check(analysis.scripts()));
    analysis.finish(checked, settings)
}

/// A Dockerfile linted by the DL rules, its `RUN` scripts waiting for ShellCheck: what a caller
/// that checks the scripts of many files together (in batches, once per distinct script) holds
/// between [`Analysis::of`] and [`Analysis::finish`].
#[derive(Debug)]
pub struct Analysis {
    /// The DL findings, or the parse error alone.
    failures: Vec<Failure>,
    /// The `RUN` scripts (none when the file does not parse).
    scripts: Vec<ShellScript>,
    /// The ignore pragmas, when the file parsed and pragmas count.
    pragmas: Option<Pragmas>,
}

impl Analysis {
    /// Parses `source` and runs the DL rules.
    pub fn of(source: &str, settings: &Settings) -> Self {
        match parser::parse(source) {
            Ok(dockerfile) => Analysis {
                failures: run_rules(&dockerfile, &settings.rules),
                scripts: shell_scripts(&dockerfile),
                pragmas: (!settings.disable_ignore_pragma).then(|| Pragmas::collect(&dockerfile)),
            },
            // As hadolint: a file that does not parse gets the parse error alone.
            Err(error) => Analysis {
                failures: vec![Failure {
                    column: error.column,
                    ..PARSE_ERROR.with_message(error.line, error.message)
                }],
                scripts: Vec::new(),
                pragmas: None,
            },
        }
    }

    /// The `RUN` scripts ShellCheck should check.
    pub fn scripts(&self) -> &[ShellScript] {
        &self.scripts
    }

    /// The findings: the DL ones with ShellCheck's (`checked`: its findings at the scripts' lines,
    /// or why it could not check them; `None` when ShellCheck does not run), after pragmas,
    /// severity overrides and ignores, sorted by line.
    pub fn finish(
        self,
        checked: Option<Result<Vec<Failure>, String>>,
        settings: &Settings,
    ) -> Vec<Failure> {
        let Analysis {
            mut failures,
            scripts,
            pragmas,
        } = self;
        let mut unchecked = None;
        match checked {
            Some(Ok(found)) => failures.extend(found),
            Some(Err(reason)) if !scripts.is_empty() => {
                unchecked = Some(shellcheck_failed(&scripts, &reason));
            }
            Some(Err(_)) | None => {}
        }
        if let Some(pragmas) = &pragmas {
            failures.retain(|f| !pragmas.ignores(f));
        }
        for failure in &mut failures {
            if let Some(severity) = settings.overrides.get(&failure.code) {
                failure.severity = *severity;
            }
        }
        failures.retain(|f| f.severity != Severity::Ignore && !settings.ignored.contains(&f.code));
        // Added after pragmas, overrides and ignores: see SHELLCHECK_FAILED.
        failures.extend(unchecked);
        failures.sort_by_key(|f| f.line);
        failures
    }
}

/// The [`SHELLCHECK_FAILED`] finding for `scripts`, at the first one's line, naming the lines of
/// the `RUN`s that were being checked.
fn shellcheck_failed(scripts: &[ShellScript], reason: &str) -> Failure {
    const NAMED: usize = 10;
    let mut lines: Vec<String> = scripts
        .iter()
        .take(NAMED)
        .map(|s| s.line.to_string())
        .collect();
    if scripts.len() > NAMED {
        lines.push(format!("and {} more", scripts.len() - NAMED));
    }
    let line = scripts.first().map_or(1, |s| s.line);
    Failure {
        column: 1,
        ..SHELLCHECK_FAILED.with_message(
            line,
            format!(
                "ShellCheck could not check the RUN scripts (lines {}): {reason}",
                lines.join(", ")
            ),
        )
    }
}

/// Runs every DL rule over the instructions.
pub fn run_rules(dockerfile: &Dockerfile, config: &RuleConfig) -> Vec<Failure> {
    let mut rules = rules::all(config);
    let mut failures = Vec::new();
    for located in &dockerfile.instructions {
        for rule in rules.iter_mut() {
            rule.check(located.line, &located.instruction, &mut failures);
        }
    }
    for rule in rules.iter_mut() {
        rule.finish(&mut failures);
    }
    failures
}

/// The shell-form `RUN` scripts (including inside `ONBUILD`) with the shell and the variables in
/// effect for each, tracking `SHELL`, `ARG`, `ENV` and `# hadolint shell=` per stage.
pub fn shell_scripts(dockerfile: &Dockerfile) -> Vec<ShellScript> {
    let default_vars: BTreeSet<String> = crate::images::PREDEFINED_ARGS
        .iter()
        .map(|v| v.to_string())
        .collect();
    let mut default_shell = "/bin/sh -c".to_string();
    let mut shell = default_shell.clone();
    let mut variables = default_vars.clone();
    let mut scripts = Vec::new();
    for located in &dockerfile.instructions {
        let mut instruction = &located.instruction;
        if let Instruction::OnBuild(inner) = instruction {
            instruction = inner;
        }
        match instruction {
            Instruction::From(_) => {
                shell = default_shell.clone();
                variables = default_vars.clone();
            }
            Instruction::Arg { name, .. } => {
                variables.insert(name.clone());
            }
            Instruction::Env(pairs) => variables.extend(pairs.iter().map(|(k, _)| k.clone())),
            Instruction::Shell(arguments) => shell = arguments.text().to_string(),
            Instruction::Comment(text) => {
                if let Some(name) = shell_pragma(text) {
                    shell = name.to_string();
                    default_shell = name.to_string();
                }
            }
            Instruction::Run(run) if run.arguments.form != ArgumentsForm::Exec => {
                let script = run.arguments.text();
                if is_posix_shell(&shell, script) {
                    scripts.push(ShellScript {
                        line: located.line,
                        shell: shell.clone(),
                        variables: variables.clone(),
                        script: script.to_string(),
                    });
                }
            }
            _ => {}
        }
    }
    scripts
}

/// Whether ShellCheck applies: not PowerShell or cmd, and no foreign shebang.
fn is_posix_shell(shell: &str, script: &str) -> bool {
    const NON_POSIX: [&str; 3] = ["pwsh", "powershell", "cmd"];
    const SHEBANGS: [&str; 6] = [
        "#!/bin/sh",
        "#!/bin/bash",
        "#!/bin/ksh",
        "#!/usr/bin/env sh",
        "#!/usr/bin/env bash",
        "#!/usr/bin/env ksh",
    ];
    if NON_POSIX.iter().any(|s| shell.contains(s)) {
        return false;
    }
    !script.starts_with("#!") || SHEBANGS.iter().any(|s| script.starts_with(s))
}

/// The `# hadolint shell=NAME` pragma.
fn shell_pragma(comment: &str) -> Option<&str> {
    let rest = pragma_body(comment)?.strip_prefix("shell")?;
    let rest = rest.trim_start_matches([' ', '\t']).strip_prefix('=')?;
    let name = rest.trim_start_matches([' ', '\t']);
    let end = name.find([' ', '\t', '#']).unwrap_or(name.len());
    let (name, tail) = name.split_at(end);
    let tail = tail.trim_start_matches([' ', '\t']);
    (!name.is_empty() && (tail.is_empty() || tail.starts_with('#'))).then_some(name)
}

/// The text after `hadolint` in a pragma comment (`comment` is the text after `#`).
pub(crate) fn pragma_body(comment: &str) -> Option<&str> {
    let rest = comment
        .trim_start_matches([' ', '\t'])
        .strip_prefix("hadolint")?;
    let trimmed = rest.trim_start_matches([' ', '\t']);
    (trimmed.len() < rest.len()).then_some(trimmed)
}

/// Which codes a pragma body `ignore=A,B` (after an optional `global`/`stage` word) names.
pub(crate) fn ignore_list<'a>(body: &'a str, scope: Option<&str>) -> Option<Vec<&'a str>> {
    let mut rest = body;
    if let Some(scope) = scope {
        let after = rest.strip_prefix(scope)?;
        let trimmed = after.trim_start_matches([' ', '\t']);
        if trimmed.len() == after.len() {
            return None;
        }
        rest = trimmed;
    }
    let rest = rest.strip_prefix("ignore")?.trim_start_matches([' ', '\t']);
    let mut rest = rest.strip_prefix('=')?.trim_start_matches([' ', '\t']);
    let mut codes = Vec::new();
    loop {
        let end = rest
            .find(|c: char| !"DLSC0123456789".contains(c))
            .unwrap_or(rest.len());
        if end == 0 {
            return None;
        }
        codes.push(&rest[..end]);
        rest = rest[end..].trim_start_matches([' ', '\t']);
        if let Some(next) = rest.strip_prefix(',') {
            rest = next.trim_start_matches([' ', '\t']);
            continue;
        }
        return (rest.is_empty() || rest.starts_with('#')).then_some(codes);
    }
}

/// The ignore pragmas of a Dockerfile.
#[derive(Debug, Default)]
struct Pragmas {
    /// Codes ignored on a line (the line after the pragma comment).
    by_line: BTreeMap<u32, BTreeSet<String>>,
    /// Codes ignored from a line on, until the next stage (keys: pragma line + 1, and each FROM).
    by_stage: BTreeMap<u32, BTreeSet<String>>,
    /// Codes ignored everywhere.
    global: BTreeSet<String>,
}

impl Pragmas {
    fn collect(dockerfile: &Dockerfile) -> Pragmas {
        let mut pragmas = Pragmas::default();
        for located in &dockerfile.instructions {
            match &located.instruction {
                Instruction::Comment(text) => {
                    let Some(body) = pragma_body(text) else {
                        continue;
                    };
                    let own = |codes: Vec<&str>| -> BTreeSet<String> {
                        codes.into_iter().map(str::to_string).collect()
                    };
                    if let Some(codes) = ignore_list(body, None) {
                        pragmas.by_line.insert(located.line + 1, own(codes));
                    } else if let Some(codes) = ignore_list(body, Some("stage")) {
                        pragmas.by_stage.insert(located.line + 1, own(codes));
                    } else if let Some(codes) = ignore_list(body, Some("global")) {
                        pragmas.global.extend(own(codes));
                    }
                }
                Instruction::From(_) => {
                    pragmas.by_stage.entry(located.line).or_default();
                }
                _ => {}
            }
        }
        pragmas
    }

    fn ignores(&self, failure: &Failure) -> bool {
        let code = &failure.code;
        self.global.contains(code)
            || self
                .by_line
                .get(&failure.line)
                .is_some_and(|codes| codes.contains(code))
            || self
                .by_stage
                .range(..failure.line)
                .next_back()
                .is_some_and(|(_, codes)| codes.contains(code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What hadolint 2.15 reports for these (checked with `hadolint -f json`), where slipway
    /// reported DL1000 before.
    #[test]
    fn nested_onbuild_and_variable_port_ranges_lint_as_hadolint_lints_them() {
        let codes = |text: &str| -> Vec<String> {
            lint(text, &Settings::default())
                .into_iter()
                .map(|f| f.code)
                .collect()
        };
        assert_eq!(
            codes("FROM debian:12.5\nONBUILD ONBUILD RUN anything\n"),
            ["DL3043"]
        );
        assert_eq!(
            codes("FROM debian:12.5\nONBUILD ONBUILD ONBUILD RUN anything\n"),
            ["DL3043"]
        );
        assert!(
            codes(
                "FROM debian:12.5\nARG FOOBAR=40010\nEXPOSE 40000-${FOOBAR}\nEXPOSE 80-${X}/tcp\n"
            )
            .is_empty()
        );
        // BuildKit's dash-stripped, backslash-quoted heredoc on COPY (hadolint: DL1000).
        assert!(codes("FROM debian:12.5\nCOPY <<-\\EOT /x\n\thello\n\tEOT\n").is_empty());
    }

    #[test]
    fn pragma_grammar() {
        assert_eq!(
            ignore_list("ignore=DL3008,DL3015", None),
            Some(vec!["DL3008", "DL3015"])
        );
        assert_eq!(
            ignore_list("ignore = DL3008 , SC2086 # why", None),
            Some(vec!["DL3008", "SC2086"])
        );
        assert_eq!(ignore_list("ignore=", None), None);
        assert_eq!(ignore_list("ignore=DL3008 trailing", None), None);
        assert_eq!(
            ignore_list("global ignore=DL3059", Some("global")),
            Some(vec!["DL3059"])
        );
        assert_eq!(pragma_body(" hadolint ignore=DL1"), Some("ignore=DL1"));
        assert_eq!(pragma_body("hadolintignore=DL1"), None);
        assert_eq!(
            shell_pragma(" hadolint shell=powershell"),
            Some("powershell")
        );
    }

    /// A ShellCheck that cannot check anything.
    struct Broken;

    impl ShellChecker for Broken {
        fn check(&self, _: &[ShellScript]) -> Result<Vec<Failure>, String> {
            Err("shellcheck did not finish within its time limit of 20s".into())
        }
    }

    #[test]
    fn a_shellcheck_failure_is_an_error_no_pragma_ignore_or_override_hides() {
        let text = "FROM debian:12\n# hadolint ignore=SC0000\nRUN echo hi\nRUN echo ho\n";
        let mut settings = Settings::default();
        settings.ignored.insert("SC0000".into());
        settings.overrides.insert("SC0000".into(), Severity::Ignore);
        let failures = lint_with(text, &settings, Some(&Broken));
        let failed: Vec<&Failure> = failures.iter().filter(|f| f.code == "SC0000").collect();
        assert_eq!(failed.len(), 1, "{failures:?}");
        assert_eq!(failed[0].severity, Severity::Error);
        assert_eq!(failed[0].line, 3);
        assert_eq!(
            failed[0].message,
            "ShellCheck could not check the RUN scripts (lines 3, 4): shellcheck did not finish \
             within its time limit of 20s"
        );
    }

    fn codes(text: &str, settings: &Settings) -> Vec<(String, u32)> {
        lint(text, settings)
            .into_iter()
            .map(|f| (f.code, f.line))
            .collect()
    }

    #[test]
    fn an_ignore_pragma_covers_the_next_line_only() {
        let text = "FROM debian:12\n# hadolint ignore=DL3003,DL3008\nRUN cd /x && apt-get install -y a\nRUN cd /y\n";
        let found = codes(text, &Settings::default());
        assert!(!found.contains(&("DL3003".into(), 3)) && !found.contains(&("DL3008".into(), 3)));
        assert!(found.contains(&("DL3003".into(), 4)), "{found:?}");
        let disabled = Settings {
            disable_ignore_pragma: true,
            ..Settings::default()
        };
        assert!(codes(text, &disabled).contains(&("DL3003".into(), 3)));
    }

    #[test]
    fn global_and_stage_pragmas() {
        let text = "# hadolint global ignore=DL3003\nFROM debian:12 AS a\nRUN cd /x\n# hadolint stage ignore=DL4000\nFROM debian:12 AS b\nMAINTAINER x\nFROM debian:12 AS c\nMAINTAINER y\n";
        let found = codes(text, &Settings::default());
        assert!(!found.iter().any(|(c, _)| c == "DL3003"), "{found:?}");
        assert!(
            !found.contains(&("DL4000".into(), 6)),
            "the stage pragma covers stage b"
        );
        assert!(
            found.contains(&("DL4000".into(), 8)),
            "…and not stage c: {found:?}"
        );
    }

    #[test]
    fn overrides_and_ignores_apply_after_the_rules() {
        let text = "FROM debian:12\nMAINTAINER x\nRUN cd /x\n";
        let mut settings = Settings::default();
        settings.overrides.insert("DL4000".into(), Severity::Info);
        settings.overrides.insert("DL3003".into(), Severity::Ignore);
        settings
            .overrides
            .insert("DL3057".into(), Severity::Warning);
        let found = lint(text, &settings);
        assert!(
            found
                .iter()
                .any(|f| f.code == "DL4000" && f.severity == Severity::Info)
        );
        assert!(!found.iter().any(|f| f.code == "DL3003"));
        assert!(
            found.iter().any(|f| f.code == "DL3057"),
            "an off-by-default rule shown by an override"
        );
        settings.ignored.insert("DL4000".into());
        assert!(!lint(text, &settings).iter().any(|f| f.code == "DL4000"));
        let lines: Vec<u32> = found.iter().map(|f| f.line).collect();
        assert!(lines.windows(2).all(|w| w[0] <= w[1]), "sorted by line");
    }

    #[test]
    fn a_parse_error_is_the_only_finding() {
        let failures = lint(
            "FROM a:1\n{{ template }}\nMAINTAINER x\n",
            &Settings::default(),
        );
        assert_eq!(failures.len(), 1);
        assert_eq!((failures[0].code.as_str(), failures[0].line), ("DL1000", 2));
    }
}

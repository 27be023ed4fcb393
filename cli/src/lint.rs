//! `slipway lint`: lint Dockerfiles with hadolint's rules, options, configuration files,
//! environment variables, output formats and exit codes; files are linted in parallel.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use slipway_lint::batch::lint_sources;
use slipway_lint::config::{self, Options, Partial};
use slipway_lint::format::{FileResult, Format, render};
use slipway_lint::lint::{PARSE_ERROR, SHELLCHECK_FAILED};
use slipway_lint::shellcheck::{ShellcheckLimits, ShellcheckProgram};
use slipway_lint::{Failure, Severity, parser};

/// Options of `slipway lint` (named as hadolint names them).
#[derive(Args, Debug)]
#[command(after_help = "\
Configuration is read, lowest precedence first, from: a .hadolint.yaml (./.hadolint.y[a]ml, \
$XDG_CONFIG_HOME/hadolint.y[a]ml, ~/.hadolint/{hadolint,config}.y[a]ml, ~/.hadolint.y[a]ml) or \
--config FILE; the HADOLINT_* environment variables (HADOLINT_IGNORE, HADOLINT_OVERRIDE_ERROR, \
HADOLINT_FAILURE_THRESHOLD, HADOLINT_NOFAIL, HADOLINT_FORMAT, HADOLINT_TRUSTED_REGISTRIES, \
HADOLINT_REQUIRE_LABELS, HADOLINT_STRICT_LABELS, HADOLINT_DISABLE_IGNORE_PRAGMA, NO_COLOR); then \
these options.

Exit status: 0 when no finding reaches the failure threshold (or --no-fail), 1 otherwise \
(including unreadable files, parse errors and invalid configuration).")]
pub struct LintArgs {
    /// Dockerfiles to lint (`-` reads standard input).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum)]
    format: Option<FormatArg>,
    /// hadolint configuration file (instead of searching for .hadolint.yaml).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Exit 1 only for findings at this level or more serious [default: info].
    #[arg(short = 't', long, value_name = "LEVEL", value_parser = parse_level)]
    failure_threshold: Option<Severity>,
    /// Always exit 0.
    #[arg(long)]
    no_fail: bool,
    /// No colours in tty output.
    #[arg(long)]
    no_color: bool,
    /// A rule code never to report (repeatable).
    #[arg(long, value_name = "CODE")]
    ignore: Vec<String>,
    /// Report this rule code as an error (repeatable).
    #[arg(long, value_name = "CODE")]
    error: Vec<String>,
    /// Report this rule code as a warning (repeatable).
    #[arg(long, value_name = "CODE")]
    warning: Vec<String>,
    /// Report this rule code as info (repeatable).
    #[arg(long, value_name = "CODE")]
    info: Vec<String>,
    /// Report this rule code as style (repeatable).
    #[arg(long, value_name = "CODE")]
    style: Vec<String>,
    /// A registry FROM may use (DL3026; repeatable).
    #[arg(long, value_name = "REGISTRY")]
    trusted_registry: Vec<String>,
    /// A label every stage must carry, as NAME:TYPE (DL3049…; repeatable).
    #[arg(long, value_name = "LABEL:TYPE")]
    require_label: Vec<String>,
    /// Report labels that are not in the label schema (DL3050).
    #[arg(long)]
    strict_labels: bool,
    /// Disregard `# hadolint ignore=` comments.
    #[arg(long)]
    disable_ignore_pragma: bool,
    /// Run ShellCheck over RUN scripts: when installed (auto), always (error if missing), never.
    #[arg(
        long,
        value_enum,
        default_value = "auto",
        env = "SLIPWAY_LINT_SHELLCHECK"
    )]
    shellcheck: ShellcheckMode,
    /// Seconds one ShellCheck run (one Dockerfile) may take before it is stopped; a stopped or
    /// failed run is an SC0000 error.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = ShellcheckLimits::DEFAULT_TIME.as_secs_f64(),
        value_parser = parse_seconds,
        env = "SLIPWAY_LINT_SHELLCHECK_TIMEOUT"
    )]
    shellcheck_timeout: f64,
    /// Memory (address space, MiB) one ShellCheck run may use.
    #[arg(
        long,
        value_name = "MIB",
        default_value_t = ShellcheckLimits::DEFAULT_MEMORY_BYTES / (1024 * 1024),
        value_parser = clap::value_parser!(u64).range(64..),
        env = "SLIPWAY_LINT_SHELLCHECK_MEMORY"
    )]
    shellcheck_memory: u64,
}

/// `--format` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Tty,
    Json,
    Sarif,
    Checkstyle,
    Gnu,
    /// Code Climate issues, NUL-separated (always exits 0, as hadolint does).
    #[value(name = "codeclimate")]
    CodeClimate,
    /// GitLab's code-quality report.
    #[value(name = "gitlab_codeclimate")]
    GitlabCodeClimate,
    /// SonarQube's generic issue import.
    #[value(name = "sonarqube")]
    SonarQube,
    /// Codacy's tool results (always exits 0, as hadolint does).
    #[value(name = "codacy")]
    Codacy,
}

/// `--shellcheck` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ShellcheckMode {
    Auto,
    Always,
    Never,
}

fn parse_seconds(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds <= 86_400.0 => Ok(seconds),
        _ => Err(format!(
            "expected a number of seconds above 0 and at most 86400, found {value:?}"
        )),
    }
}

fn parse_level(value: &str) -> Result<Severity, String> {
    config::severity("--failure-threshold", value).map_err(|e| e.to_string())
}

impl LintArgs {
    /// This command line as the last configuration layer.
    fn partial(&self) -> anyhow::Result<Partial> {
        let mut label_schema = std::collections::BTreeMap::new();
        for item in &self.require_label {
            let (label, kind) = item
                .split_once(':')
                .with_context(|| format!("--require-label {item:?}: expecting NAME:TYPE"))?;
            let kind = slipway_lint::rules::LabelType::parse(kind).with_context(|| {
                format!("--require-label {item:?}: unknown type {kind:?}; expecting text, url, email, hash, rfc3339, semver or spdx")
            })?;
            label_schema.insert(label.to_string(), kind);
        }
        Ok(Partial {
            no_fail: self.no_fail.then_some(true),
            no_color: self.no_color.then_some(true),
            formats: self
                .format
                .map(|f| match f {
                    FormatArg::Tty => Format::Tty,
                    FormatArg::Json => Format::Json,
                    FormatArg::Sarif => Format::Sarif,
                    FormatArg::Checkstyle => Format::Checkstyle,
                    FormatArg::Gnu => Format::Gnu,
                    FormatArg::CodeClimate => Format::CodeClimate,
                    FormatArg::GitlabCodeClimate => Format::GitlabCodeClimate,
                    FormatArg::SonarQube => Format::SonarQube,
                    FormatArg::Codacy => Format::Codacy,
                })
                .into_iter()
                .collect(),
            error: self.error.clone(),
            warning: self.warning.clone(),
            info: self.info.clone(),
            style: self.style.clone(),
            ignored: self.ignore.clone(),
            trusted_registries: self.trusted_registry.clone(),
            label_schema,
            strict_labels: self.strict_labels.then_some(true),
            disable_ignore_pragma: self.disable_ignore_pragma.then_some(true),
            failure_threshold: self.failure_threshold,
        })
    }
}

/// Runs `slipway lint`.
pub fn run(args: &LintArgs) -> ExitCode {
    match run_inner(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!(
                "slipway lint: error: {}",
                slipway_common::errors::Chain(error.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}

fn run_inner(args: &LintArgs) -> anyhow::Result<ExitCode> {
    let options = options(args)?;
    let shellcheck = match args.shellcheck {
        ShellcheckMode::Never => None,
        ShellcheckMode::Auto => ShellcheckProgram::find("shellcheck").ok(),
        ShellcheckMode::Always => Some(ShellcheckProgram::find("shellcheck")?),
    }
    .map(|program| {
        program.with_limits(ShellcheckLimits {
            time: std::time::Duration::from_secs_f64(args.shellcheck_timeout),
            memory_bytes: args.shellcheck_memory * 1024 * 1024,
            ..ShellcheckLimits::default()
        })
    });
    let results = lint_files(&args.files, &options, shellcheck.as_ref());
    let format = options.formats.last().copied().unwrap_or(Format::Tty);
    let color = format == Format::Tty && !options.no_color && std::io::stdout().is_terminal();
    print!("{}", render(format, &results, color));
    let failed = results.iter().flat_map(|r| &r.failures).any(|f| {
        f.code == PARSE_ERROR.code
            || f.code == SHELLCHECK_FAILED.code
            || options.fails_at(f.severity)
    });
    Ok(
        if failed && !options.no_fail && format.fails_on_findings() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        },
    )
}

/// Merges defaults, the configuration file, the environment and the command line.
fn options(args: &LintArgs) -> anyhow::Result<Options> {
    let mut options = Options::default();
    let file = match &args.config {
        Some(path) => Some(path.clone()),
        None => {
            let cwd = std::env::current_dir().unwrap_or_default();
            let home = std::env::var_os("HOME").map(PathBuf::from);
            let xdg = std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from);
            config::config_file_candidates(&cwd, home.as_deref(), xdg.as_deref())
                .into_iter()
                .find(|p| p.is_file())
        }
    };
    if let Some(path) = file {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read configuration {}", path.display()))?;
        let partial = Partial::from_yaml(&text).with_context(|| format!("{}", path.display()))?;
        options.apply(partial);
    }
    options.apply(Partial::from_env(|name| std::env::var(name).ok())?);
    options.apply(args.partial()?);
    Ok(options)
}

/// Lints `files` on every core: the DL rules file by file, ShellCheck once per distinct `RUN`
/// script in batches (`slipway_lint::batch`). A file that cannot be read gets one finding
/// saying so.
fn lint_files(
    files: &[PathBuf],
    options: &Options,
    shellcheck: Option<&ShellcheckProgram>,
) -> Vec<FileResult> {
    let mut readable = Vec::with_capacity(files.len());
    let unreadable: Vec<Option<std::io::Error>> = files
        .iter()
        .map(|path| read(path).map(|text| readable.push(text)).err())
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut linted = lint_sources(&readable, &options.settings, shellcheck, threads).into_iter();
    files
        .iter()
        .zip(unreadable)
        .map(|(path, unreadable)| FileResult {
            file: path.to_string_lossy().into_owned(),
            failures: match unreadable {
                None => linted.next().unwrap_or_default(),
                Some(error) => vec![Failure {
                    code: PARSE_ERROR.code.to_string(),
                    severity: Severity::Error,
                    message: format!("cannot read the file: {error}"),
                    line: 1,
                    column: 1,
                }],
            },
        })
        .collect()
}

/// The text of `path` (`-`: standard input), decoded as the parser decodes files.
fn read(path: &Path) -> std::io::Result<String> {
    let bytes = if path.as_os_str() == "-" {
        let mut buffer = Vec::new();
        std::io::stdin().read_to_end(&mut buffer).map(|_| buffer)
    } else {
        std::fs::read(path)
    }?;
    Ok(parser::decode(&bytes))
}

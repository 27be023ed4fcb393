//! Linter configuration as hadolint reads it: `.hadolint.yaml` keys, `HADOLINT_*` environment
//! variables and command-line values, merged in that order over the defaults. Pure: files and the
//! environment are handed in by the caller.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::format::Format;
use crate::lint::Settings;
use crate::rules::{LabelType, Severity};

/// A configuration value that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The YAML file is malformed or has a value of the wrong type.
    #[error("invalid configuration file: {0}")]
    File(String),
    /// A severity name that is not `error`, `warning`, `info`, `style`, `ignore` or `none`.
    #[error(
        "{source_name}: invalid severity '{value}'; expecting error, warning, info, style, ignore or none"
    )]
    Severity {
        /// Where the value came from (a key or variable name).
        source_name: String,
        /// The value found.
        value: String,
    },
    /// An output format that is not known.
    #[error(
        "{source_name}: unknown format '{value}'; expecting tty, json, sarif, checkstyle, gnu, \
         codeclimate, gitlab_codeclimate, sonarqube or codacy"
    )]
    Format {
        /// Where the value came from.
        source_name: String,
        /// The value found.
        value: String,
    },
    /// A label type that is not known.
    #[error(
        "{source_name}: label '{label}' has unknown type '{value}'; expecting text, url, email, hash, rfc3339, semver or spdx"
    )]
    LabelType {
        /// Where the value came from.
        source_name: String,
        /// The label.
        label: String,
        /// The type found.
        value: String,
    },
}

/// Part of a configuration, from one source; unset values leave the lower layers alone and lists
/// add to them, as in hadolint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Partial {
    /// Exit 0 whatever is found.
    pub no_fail: Option<bool>,
    /// No colours in tty output.
    pub no_color: Option<bool>,
    /// Output formats.
    pub formats: Vec<Format>,
    /// Codes raised to `error`.
    pub error: Vec<String>,
    /// Codes set to `warning`.
    pub warning: Vec<String>,
    /// Codes set to `info`.
    pub info: Vec<String>,
    /// Codes set to `style`.
    pub style: Vec<String>,
    /// Codes never reported.
    pub ignored: Vec<String>,
    /// Registries `FROM` may use.
    pub trusted_registries: Vec<String>,
    /// Required labels and their types.
    pub label_schema: BTreeMap<String, LabelType>,
    /// Report labels outside the schema.
    pub strict_labels: Option<bool>,
    /// Disregard `# hadolint ignore=` pragmas.
    pub disable_ignore_pragma: Option<bool>,
    /// The least serious level that makes the run fail.
    pub failure_threshold: Option<Severity>,
}

/// The merged configuration of one lint run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// What the engine needs.
    pub settings: Settings,
    /// The least serious level that makes the run fail (`info` by default).
    pub failure_threshold: Severity,
    /// Exit 0 whatever is found.
    pub no_fail: bool,
    /// No colours in tty output.
    pub no_color: bool,
    /// Output formats (tty when none is given).
    pub formats: Vec<Format>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            settings: Settings::default(),
            failure_threshold: Severity::Info,
            no_fail: false,
            no_color: false,
            formats: Vec::new(),
        }
    }
}

impl Options {
    /// Applies one configuration layer over this one.
    pub fn apply(&mut self, partial: Partial) {
        if let Some(v) = partial.no_fail {
            self.no_fail = v;
        }
        if let Some(v) = partial.no_color {
            self.no_color = v;
        }
        self.formats.extend(partial.formats);
        // hadolint applies style, info, warning, then error: the most serious listing wins.
        for (codes, severity) in [
            (&partial.style, Severity::Style),
            (&partial.info, Severity::Info),
            (&partial.warning, Severity::Warning),
            (&partial.error, Severity::Error),
        ] {
            for code in codes {
                self.settings.overrides.insert(code.clone(), severity);
            }
        }
        self.settings.ignored.extend(partial.ignored);
        self.settings
            .rules
            .trusted_registries
            .extend(partial.trusted_registries);
        self.settings
            .rules
            .label_schema
            .extend(partial.label_schema);
        if let Some(v) = partial.strict_labels {
            self.settings.rules.strict_labels = v;
        }
        if let Some(v) = partial.disable_ignore_pragma {
            self.settings.disable_ignore_pragma = v;
        }
        if let Some(v) = partial.failure_threshold {
            self.failure_threshold = v;
        }
    }

    /// Whether findings at `severity` make the run fail.
    pub fn fails_at(&self, severity: Severity) -> bool {
        severity != Severity::Ignore && severity <= self.failure_threshold
    }
}

/// The keys of `.hadolint.yaml`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct FileKeys {
    no_fail: Option<bool>,
    no_color: Option<bool>,
    format: Option<String>,
    #[serde(default)]
    formats: Vec<String>,
    #[serde(rename = "override", default)]
    overrides: OverrideKeys,
    #[serde(default)]
    ignored: Vec<String>,
    #[serde(rename = "trustedRegistries", default)]
    trusted_registries: Vec<String>,
    #[serde(default)]
    label_schema: BTreeMap<String, String>,
    strict_labels: Option<bool>,
    disable_ignore_pragma: Option<bool>,
    failure_threshold: Option<String>,
}

/// The `override:` section.
#[derive(Debug, Default, Deserialize)]
struct OverrideKeys {
    #[serde(default)]
    error: Vec<String>,
    #[serde(default)]
    warning: Vec<String>,
    #[serde(default)]
    info: Vec<String>,
    #[serde(default)]
    style: Vec<String>,
}

/// Reads a severity value.
pub fn severity(source_name: &str, value: &str) -> Result<Severity, ConfigError> {
    Severity::parse(value).ok_or_else(|| ConfigError::Severity {
        source_name: source_name.to_string(),
        value: value.to_string(),
    })
}

fn format(source_name: &str, value: &str) -> Result<Format, ConfigError> {
    Format::parse(value).ok_or_else(|| ConfigError::Format {
        source_name: source_name.to_string(),
        value: value.to_string(),
    })
}

fn label_type(source_name: &str, label: &str, value: &str) -> Result<LabelType, ConfigError> {
    LabelType::parse(value).ok_or_else(|| ConfigError::LabelType {
        source_name: source_name.to_string(),
        label: label.to_string(),
        value: value.to_string(),
    })
}

impl Partial {
    /// Reads a `.hadolint.yaml` document (an empty document is an empty configuration).
    pub fn from_yaml(text: &str) -> Result<Partial, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Partial::default());
        }
        let keys: FileKeys =
            yaml_serde::from_str(text).map_err(|e| ConfigError::File(e.to_string()))?;
        let mut formats = Vec::new();
        for name in keys.formats.iter().chain(keys.format.iter()) {
            formats.push(format("format", name)?);
        }
        let mut label_schema = BTreeMap::new();
        for (label, kind) in &keys.label_schema {
            label_schema.insert(label.clone(), label_type("label-schema", label, kind)?);
        }
        Ok(Partial {
            no_fail: keys.no_fail,
            no_color: keys.no_color,
            formats,
            error: keys.overrides.error,
            warning: keys.overrides.warning,
            info: keys.overrides.info,
            style: keys.overrides.style,
            ignored: keys.ignored,
            trusted_registries: keys.trusted_registries,
            label_schema,
            strict_labels: keys.strict_labels,
            disable_ignore_pragma: keys.disable_ignore_pragma,
            failure_threshold: keys
                .failure_threshold
                .as_deref()
                .map(|v| severity("failure-threshold", v))
                .transpose()?,
        })
    }

    /// Reads the `HADOLINT_*` (and `NO_COLOR`) variables through `lookup`.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Partial, ConfigError> {
        let truthy = |name: &str| {
            lookup(name)
                .map(|v| ["1", "y", "on", "true", "yes"].contains(&v.to_lowercase().as_str()))
        };
        let list = |name: &str| -> Vec<String> {
            lookup(name)
                .map(|v| v.split(',').map(str::to_string).collect())
                .unwrap_or_default()
        };
        let mut formats = Vec::new();
        if let Some(value) = lookup("HADOLINT_FORMAT") {
            for name in value.split(',') {
                // hadolint falls back to tty silently here; a CI job that asked for a report
                // would then read none, so an unknown name is an error.
                formats.push(format("HADOLINT_FORMAT", name)?);
            }
        }
        let mut label_schema = BTreeMap::new();
        if let Some(value) = lookup("HADOLINT_REQUIRE_LABELS") {
            for item in value.split(',') {
                if let Some((label, kind)) = item.split_once(':') {
                    label_schema.insert(
                        label.to_string(),
                        label_type("HADOLINT_REQUIRE_LABELS", label, kind)?,
                    );
                }
            }
        }
        Ok(Partial {
            no_fail: truthy("HADOLINT_NOFAIL"),
            no_color: lookup("NO_COLOR").map(|_| true),
            formats,
            error: list("HADOLINT_OVERRIDE_ERROR"),
            warning: list("HADOLINT_OVERRIDE_WARNING"),
            info: list("HADOLINT_OVERRIDE_INFO"),
            style: list("HADOLINT_OVERRIDE_STYLE"),
            ignored: list("HADOLINT_IGNORE"),
            trusted_registries: list("HADOLINT_TRUSTED_REGISTRIES"),
            label_schema,
            strict_labels: truthy("HADOLINT_STRICT_LABELS"),
            disable_ignore_pragma: truthy("HADOLINT_DISABLE_IGNORE_PRAGMA"),
            failure_threshold: lookup("HADOLINT_FAILURE_THRESHOLD")
                .and_then(|v| Severity::parse(&v)),
        })
    }
}

/// Where hadolint looks for a configuration file when none is given, in order: the working
/// directory, `$XDG_CONFIG_HOME` (or `~/.config`), `~/.hadolint/`, then the home directory.
pub fn config_file_candidates(
    cwd: &Path,
    home: Option<&Path>,
    xdg_config: Option<&Path>,
) -> Vec<PathBuf> {
    let mut candidates = vec![cwd.join(".hadolint.yaml"), cwd.join(".hadolint.yml")];
    let xdg = xdg_config
        .map(Path::to_path_buf)
        .or_else(|| home.map(|h| h.join(".config")));
    if let Some(xdg) = xdg {
        candidates.push(xdg.join("hadolint.yaml"));
        candidates.push(xdg.join("hadolint.yml"));
    }
    if let Some(home) = home {
        for name in ["hadolint.yaml", "hadolint.yml", "config.yaml", "config.yml"] {
            candidates.push(home.join(".hadolint").join(name));
        }
        candidates.push(home.join(".hadolint.yaml"));
        candidates.push(home.join(".hadolint.yml"));
    }
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_hadolint_key() {
        let partial = Partial::from_yaml(
            "failure-threshold: warning\nformat: json\nignored: [DL3000]\noverride:\n  error: [DL3008]\n  style: [DL3015]\ntrustedRegistries:\n  - docker.io\nlabel-schema:\n  author: text\n  url: url\nstrict-labels: true\ndisable-ignore-pragma: true\nno-fail: false\n",
        )
        .unwrap();
        assert_eq!(partial.failure_threshold, Some(Severity::Warning));
        assert_eq!(partial.formats, [Format::Json]);
        assert_eq!(partial.ignored, ["DL3000"]);
        assert_eq!(partial.error, ["DL3008"]);
        assert_eq!(partial.trusted_registries, ["docker.io"]);
        assert_eq!(partial.label_schema.get("url"), Some(&LabelType::Url));
        assert_eq!(partial.strict_labels, Some(true));
        assert_eq!(partial.disable_ignore_pragma, Some(true));
        let mut options = Options::default();
        options.apply(partial);
        assert_eq!(
            options.settings.overrides.get("DL3008"),
            Some(&Severity::Error)
        );
        assert!(options.fails_at(Severity::Warning) && !options.fails_at(Severity::Info));
    }

    #[test]
    fn bad_values_are_named() {
        let err = Partial::from_yaml("failure-threshold: fatal\n").unwrap_err();
        assert!(err.to_string().contains("'fatal'"), "{err}");
        assert!(Partial::from_yaml("ignored: 3\n").is_err());
        assert!(
            Partial::from_yaml("label-schema:\n  a: colour\n")
                .unwrap_err()
                .to_string()
                .contains("colour")
        );
    }

    #[test]
    fn environment_layer_and_precedence() {
        let env = |name: &str| match name {
            "HADOLINT_IGNORE" => Some("DL3008,DL3009".to_string()),
            "HADOLINT_OVERRIDE_ERROR" => Some("DL3015".to_string()),
            "HADOLINT_OVERRIDE_INFO" => Some("DL3015".to_string()),
            "HADOLINT_NOFAIL" => Some("yes".to_string()),
            "HADOLINT_FAILURE_THRESHOLD" => Some("error".to_string()),
            "HADOLINT_REQUIRE_LABELS" => Some("maintainer:email".to_string()),
            _ => None,
        };
        let partial = Partial::from_env(env).unwrap();
        let mut options = Options::default();
        options.apply(Partial::from_yaml("no-fail: false\nfailure-threshold: style\n").unwrap());
        options.apply(partial);
        assert!(options.no_fail);
        assert_eq!(options.failure_threshold, Severity::Error);
        assert_eq!(
            options.settings.overrides.get("DL3015"),
            Some(&Severity::Error)
        );
        assert!(options.settings.ignored.contains("DL3009"));
        assert_eq!(
            options.settings.rules.label_schema.get("maintainer"),
            Some(&LabelType::Email)
        );
    }

    #[test]
    fn candidates_follow_hadolint_order() {
        let c = config_file_candidates(Path::new("/w"), Some(Path::new("/h")), None);
        assert_eq!(c[0], Path::new("/w/.hadolint.yaml"));
        assert_eq!(c[2], Path::new("/h/.config/hadolint.yaml"));
        assert_eq!(c.last().unwrap(), Path::new("/h/.hadolint.yml"));
    }
}

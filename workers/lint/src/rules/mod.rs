//! The rule engine's vocabulary (severities, failures, the [`Rule`] trait) and the registry of every
//! DL rule, grouped by concern in the submodules.
//!
//! A rule sees the instructions one by one, in order, as hadolint's folds do, and reports failures
//! at instruction lines; rules that need the whole file report in [`Rule::finish`]. Rules that
//! hadolint also applies inside `ONBUILD` are registered with [`Registry::with_onbuild`], which
//! adds a second, independent instance that sees only the unwrapped `ONBUILD` instructions.

#[cfg(test)]
mod examples;
pub mod instructions;
pub mod labels;
pub mod packages;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::syntax::Instruction;

/// How serious a finding is. Ordered from most to least serious.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Breaks the build or is certainly wrong.
    Error,
    /// Likely wrong or fragile.
    Warning,
    /// Worth knowing.
    Info,
    /// A matter of style.
    Style,
    /// Not reported (`ignore`, or `none` in configuration).
    #[serde(alias = "none")]
    Ignore,
}

impl Severity {
    /// The lower-case name hadolint prints (`error`, `warning`, `info`, `style`, `ignore`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
            Severity::Style => "style",
            Severity::Ignore => "ignore",
        }
    }

    /// Reads a severity name as hadolint accepts it (`none` means `ignore`).
    pub fn parse(name: &str) -> Option<Severity> {
        Some(match name {
            "error" => Severity::Error,
            "warning" => Severity::Warning,
            "info" => Severity::Info,
            "style" => Severity::Style,
            "ignore" | "none" => Severity::Ignore,
            _ => return None,
        })
    }
}

/// One finding: a rule code at a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `DL3008`, `SC2086`, …
    pub code: String,
    /// Its severity (after configuration overrides, once the engine is done).
    pub severity: Severity,
    /// What is wrong and what to do instead.
    pub message: String,
    /// 1-based line of the instruction.
    pub line: u32,
    /// 1-based column (1 for DL rules, as hadolint reports).
    pub column: u32,
}

/// A rule's code, default severity and message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// The rule code, e.g. `DL3008`.
    pub code: &'static str,
    /// The default severity.
    pub severity: Severity,
    /// The message (for rules whose message varies, its general form).
    pub message: &'static str,
}

impl Meta {
    /// A failure of this rule at `line`, with the rule's own message.
    pub fn at(&self, line: u32) -> Failure {
        Failure {
            code: self.code.to_string(),
            severity: self.severity,
            message: self.message.to_string(),
            line,
            column: 1,
        }
    }

    /// A failure of this rule at `line` with a specific message.
    pub fn with_message(&self, line: u32, message: String) -> Failure {
        Failure {
            message,
            ..self.at(line)
        }
    }
}

/// A rule: it sees every instruction in order (a fold over the Dockerfile).
pub trait Rule {
    /// Looks at the instruction at `line`, recording failures in `out`.
    fn check(&mut self, line: u32, instruction: &Instruction, out: &mut Vec<Failure>);

    /// Called once after the last instruction, for rules that decide at the end.
    fn finish(&mut self, _out: &mut Vec<Failure>) {}
}

/// A rule that judges each instruction alone: `ok` returns `false` for a failing instruction.
pub struct Simple {
    meta: Meta,
    ok: fn(&Instruction) -> bool,
}

impl Simple {
    /// The rule `meta` failing where `ok` is false.
    pub fn new(meta: Meta, ok: fn(&Instruction) -> bool) -> Simple {
        Simple { meta, ok }
    }
}

impl Rule for Simple {
    fn check(&mut self, line: u32, instruction: &Instruction, out: &mut Vec<Failure>) {
        if !(self.ok)(instruction) {
            out.push(self.meta.at(line));
        }
    }
}

/// Runs a rule only on the instructions inside `ONBUILD`, unwrapped.
struct InsideOnbuild(Box<dyn Rule>);

impl Rule for InsideOnbuild {
    fn check(&mut self, line: u32, instruction: &Instruction, out: &mut Vec<Failure>) {
        if let Instruction::OnBuild(inner) = instruction {
            self.0.check(line, inner, out);
        }
    }

    fn finish(&mut self, out: &mut Vec<Failure>) {
        self.0.finish(out);
    }
}

/// The kind of value a label must hold (`label-schema` in `.hadolint.yaml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelType {
    /// An RFC 5322 e-mail address.
    Email,
    /// A git commit hash.
    Hash,
    /// Any text.
    Text,
    /// An RFC 3339 date-time.
    Rfc3339,
    /// A semantic version.
    Semver,
    /// An SPDX license identifier.
    Spdx,
    /// A URL.
    Url,
}

impl LabelType {
    /// Reads a label type name (`""` means text), as hadolint does.
    pub fn parse(name: &str) -> Option<LabelType> {
        Some(match name {
            "email" => LabelType::Email,
            "hash" => LabelType::Hash,
            "text" | "" => LabelType::Text,
            "rfc3339" => LabelType::Rfc3339,
            "semver" => LabelType::Semver,
            "spdx" => LabelType::Spdx,
            "url" => LabelType::Url,
            _ => return None,
        })
    }
}

/// What the configurable rules need to know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleConfig {
    /// Registries `FROM` may use (DL3026); empty means any.
    pub trusted_registries: Vec<String>,
    /// Labels every stage must carry, with their value types (DL3049–DL3058).
    pub label_schema: BTreeMap<String, LabelType>,
    /// Whether labels outside the schema are reported (DL3050).
    pub strict_labels: bool,
}

/// Collects rule instances.
#[derive(Default)]
pub struct Registry {
    rules: Vec<Box<dyn Rule>>,
}

impl Registry {
    /// Adds a rule that sees the instructions as they are (an `ONBUILD` as an `ONBUILD`).
    pub fn add(&mut self, rule: Box<dyn Rule>) {
        self.rules.push(rule);
    }

    /// Adds a rule as [`Registry::add`] does, plus a second instance that sees what is inside
    /// each `ONBUILD` (hadolint's `rule <> onbuild rule`).
    pub fn with_onbuild(&mut self, make: impl Fn() -> Box<dyn Rule>) {
        self.rules.push(make());
        self.rules.push(Box::new(InsideOnbuild(make())));
    }

    /// The rules collected.
    pub fn into_rules(self) -> Vec<Box<dyn Rule>> {
        self.rules
    }
}

/// Every DL rule, configured.
pub fn all(config: &RuleConfig) -> Vec<Box<dyn Rule>> {
    let mut registry = Registry::default();
    instructions::register(&mut registry, config);
    packages::register(&mut registry, config);
    labels::register(&mut registry, config);
    registry.into_rules()
}

/// The code, default severity and message of every DL rule, sorted by code.
pub fn catalog() -> Vec<Meta> {
    let mut all: Vec<Meta> = instructions::RULES
        .iter()
        .chain(packages::RULES)
        .chain(labels::RULES)
        .copied()
        .collect();
    all.push(crate::lint::PARSE_ERROR);
    all.sort_by_key(|m| m.code);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    /// hadolint 2.15's DL rules (DL1000 is the parse error).
    const HADOLINT_CODES: &[&str] = &[
        "DL1000", "DL1001", "DL3000", "DL3001", "DL3002", "DL3003", "DL3004", "DL3006", "DL3007",
        "DL3008", "DL3009", "DL3010", "DL3011", "DL3012", "DL3013", "DL3014", "DL3015", "DL3016",
        "DL3018", "DL3019", "DL3020", "DL3021", "DL3022", "DL3023", "DL3024", "DL3025", "DL3026",
        "DL3027", "DL3028", "DL3029", "DL3030", "DL3032", "DL3033", "DL3034", "DL3035", "DL3036",
        "DL3037", "DL3038", "DL3040", "DL3041", "DL3042", "DL3043", "DL3044", "DL3045", "DL3046",
        "DL3047", "DL3048", "DL3049", "DL3050", "DL3051", "DL3052", "DL3053", "DL3054", "DL3055",
        "DL3056", "DL3057", "DL3058", "DL3059", "DL3060", "DL3061", "DL3062", "DL3063", "DL3064",
        "DL3065", "DL3066", "DL3067", "DL4000", "DL4001", "DL4003", "DL4004", "DL4005", "DL4006",
    ];

    #[test]
    fn the_catalog_has_every_hadolint_rule_once() {
        let codes: Vec<&str> = catalog().iter().map(|m| m.code).collect();
        assert_eq!(codes, HADOLINT_CODES);
    }
}

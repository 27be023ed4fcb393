//! Rules about `LABEL`: well-formed keys (DL3048) and, when a label schema is configured, the
//! required labels and the form of their values (DL3049–DL3058).

mod spdx;
mod validators;

use std::collections::BTreeSet;

use super::{Failure, LabelType, Meta, Registry, Rule, RuleConfig, Severity, Simple};
use crate::syntax::Instruction;

const DL3048: Meta = Meta {
    code: "DL3048",
    severity: Severity::Style,
    message: "Invalid label key.",
};
const DL3049: Meta = Meta {
    code: "DL3049",
    severity: Severity::Info,
    message: "Label `<label>` is missing.",
};
const DL3050: Meta = Meta {
    code: "DL3050",
    severity: Severity::Info,
    message: "Superfluous label(s) present.",
};
const DL3051: Meta = Meta {
    code: "DL3051",
    severity: Severity::Warning,
    message: "label `<label>` is empty.",
};
const DL3052: Meta = Meta {
    code: "DL3052",
    severity: Severity::Warning,
    message: "Label `<label>` is not a valid URL.",
};
const DL3053: Meta = Meta {
    code: "DL3053",
    severity: Severity::Warning,
    message: "Label `<label>` is not a valid time format - must conform to RFC3339.",
};
const DL3054: Meta = Meta {
    code: "DL3054",
    severity: Severity::Warning,
    message: "Label `<label>` is not a valid SPDX identifier.",
};
const DL3055: Meta = Meta {
    code: "DL3055",
    severity: Severity::Warning,
    message: "Label `<label>` is not a valid git hash.",
};
const DL3056: Meta = Meta {
    code: "DL3056",
    severity: Severity::Warning,
    message: "Label `<label>` does not conform to semantic versioning.",
};
const DL3058: Meta = Meta {
    code: "DL3058",
    severity: Severity::Warning,
    message: "Label `<label>` is not a valid email format - must conform to RFC5322.",
};

/// The rules of this group (`<label>` stands for the label's name in the messages).
pub const RULES: &[Meta] = &[
    DL3048, DL3049, DL3050, DL3051, DL3052, DL3053, DL3054, DL3055, DL3056, DL3058,
];

/// Registers the rules of this group. The schema rules get one instance per label concerned,
/// as hadolint has one rule per label; none of them looks inside `ONBUILD`.
pub fn register(registry: &mut Registry, config: &RuleConfig) {
    registry.add(Box::new(Simple::new(DL3048, has_valid_label_keys)));
    let schema = &config.label_schema;
    for label in schema.keys() {
        registry.add(Box::new(MissingLabel::new(label)));
    }
    if config.strict_labels {
        registry.add(Box::new(SuperfluousLabels {
            known: schema.keys().cloned().collect(),
        }));
    }
    for label in schema.keys() {
        registry.add(Box::new(LabelValue::new(DL3051, label, |v| !v.is_empty())));
    }
    let typed: [(Meta, LabelType, Validator); 6] = [
        (DL3052, LabelType::Url, validators::is_url),
        (DL3053, LabelType::Rfc3339, validators::is_rfc3339),
        (DL3054, LabelType::Spdx, validators::is_spdx_license_id),
        (DL3055, LabelType::Hash, validators::is_git_hash),
        (DL3056, LabelType::Semver, validators::is_semver),
        (DL3058, LabelType::Email, validators::is_email),
    ];
    for (meta, wanted, valid) in typed {
        for (label, kind) in schema {
            if *kind == wanted {
                registry.add(Box::new(LabelValue::new(meta, label, valid)));
            }
        }
    }
}

/// A check on a label value: `true` when it is acceptable.
type Validator = fn(&str) -> bool;

/// `meta`'s message with the label's name in place of `<label>`.
fn message_for(meta: &Meta, label: &str) -> String {
    meta.message.replace("<label>", label)
}

/// DL3048: a `LABEL` key that is not a valid Docker label key: it must start with a lower-case
/// letter, end with a lower-case letter or digit, hold only `[a-z0-9._/-]`, have no `..` or
/// `--`, and not use a reserved namespace (`com.docker.`, `io.docker.`, `org.dockerproject.`).
fn has_valid_label_keys(instruction: &Instruction) -> bool {
    match instruction {
        Instruction::Label(pairs) => pairs.iter().all(|(key, _)| is_valid_label_key(key)),
        _ => true,
    }
}

/// Whether `key` is a valid label key (see [`has_valid_label_keys`]).
fn is_valid_label_key(key: &str) -> bool {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._/-".contains(c);
    key.starts_with(|c: char| c.is_ascii_lowercase())
        && key.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && key.chars().all(allowed)
        && !["com.docker.", "io.docker.", "org.dockerproject."]
            .iter()
            .any(|namespace| key.starts_with(namespace))
        && !key.contains("..")
        && !key.contains("--")
}

/// DL3050 (with `strict-labels`): a `LABEL` setting a key that the schema does not list. With
/// an empty schema every `LABEL` is superfluous, as in hadolint.
struct SuperfluousLabels {
    known: BTreeSet<String>,
}

impl Rule for SuperfluousLabels {
    fn check(&mut self, line: u32, instruction: &Instruction, out: &mut Vec<Failure>) {
        if let Instruction::Label(pairs) = instruction
            && pairs.iter().any(|(key, _)| !self.known.contains(key))
        {
            out.push(DL3050.at(line));
        }
    }
}

/// DL3051–DL3058 for one schema label: a `LABEL` giving that label a value `valid` refuses —
/// empty (DL3051), or not a URL (DL3052), an RFC 3339 date-time (DL3053), an SPDX license
/// identifier (DL3054), a git hash (DL3055), a semantic version (DL3056) or an e-mail address
/// (DL3058). One failure per instruction, however many pairs are bad.
struct LabelValue {
    meta: Meta,
    label: String,
    message: String,
    valid: Validator,
}

impl LabelValue {
    fn new(meta: Meta, label: &str, valid: Validator) -> LabelValue {
        LabelValue {
            meta,
            label: label.to_string(),
            message: message_for(&meta, label),
            valid,
        }
    }
}

impl Rule for LabelValue {
    fn check(&mut self, line: u32, instruction: &Instruction, out: &mut Vec<Failure>) {
        if let Instruction::Label(pairs) = instruction
            && pairs
                .iter()
                .any(|(key, value)| *key == self.label && !(self.valid)(value))
        {
            out.push(self.meta.with_message(line, self.message.clone()));
        }
    }
}

/// A build stage, for DL3049.
struct Stage {
    line: u32,
    /// The base image's name (without registry, tag or digest).
    image: String,
    alias: Option<String>,
}

/// DL3049 for one schema label: a stage (reported at its `FROM`) that never sets the label.
///
/// A stage counts as labelled when it sets the label itself or starts `FROM` a labelled stage.
/// An unlabelled stage is forgiven when a later stage copies from it (`COPY --from=alias`), or
/// when a stage whose alias — or, lacking one, image name — equals its alias sets the label.
/// The verdict on each stage is given at the end of the file.
struct MissingLabel {
    label: String,
    message: String,
    stages: Vec<Stage>,
    /// Indices into `stages`.
    labelled: BTreeSet<usize>,
    /// Indices into `stages` still to report.
    unlabelled: BTreeSet<usize>,
}

impl MissingLabel {
    fn new(label: &str) -> MissingLabel {
        MissingLabel {
            label: label.to_string(),
            message: message_for(&DL3049, label),
            stages: Vec::new(),
            labelled: BTreeSet::new(),
            unlabelled: BTreeSet::new(),
        }
    }

    /// Forgives the unlabelled stages called `name`.
    fn forgive(&mut self, name: &str) {
        let stages = &self.stages;
        self.unlabelled
            .retain(|&index| stages[index].alias.as_deref() != Some(name));
    }
}

impl Rule for MissingLabel {
    fn check(&mut self, line: u32, instruction: &Instruction, _out: &mut Vec<Failure>) {
        match instruction {
            Instruction::From(base) => {
                let index = self.stages.len();
                let inherits = self
                    .labelled
                    .iter()
                    .any(|&parent| self.stages[parent].alias.as_deref() == Some(&base.name));
                if inherits {
                    self.labelled.insert(index);
                } else {
                    self.unlabelled.insert(index);
                }
                self.stages.push(Stage {
                    line,
                    image: base.name.clone(),
                    alias: base.alias.clone(),
                });
            }
            Instruction::Copy(copy) => {
                if let Some(from) = &copy.from {
                    self.forgive(from);
                }
            }
            Instruction::Label(pairs) if pairs.iter().any(|(key, _)| *key == self.label) => {
                let Some(current) = self.stages.len().checked_sub(1) else {
                    return;
                };
                let stage = &self.stages[current];
                let name = stage.alias.clone().unwrap_or_else(|| stage.image.clone());
                self.forgive(&name);
                self.unlabelled.remove(&current);
                self.labelled.insert(current);
            }
            _ => {}
        }
    }

    fn finish(&mut self, out: &mut Vec<Failure>) {
        for &index in &self.unlabelled {
            out.push(DL3049.with_message(self.stages[index].line, self.message.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::parser;

    fn schema(entries: &[(&str, LabelType)]) -> BTreeMap<String, LabelType> {
        entries
            .iter()
            .map(|(name, kind)| (name.to_string(), *kind))
            .collect()
    }

    /// (code, line) of the findings of this group's codes, sorted.
    fn findings(text: &str, config: &RuleConfig) -> Vec<(String, u32)> {
        let dockerfile = parser::parse(text).expect("test Dockerfile parses");
        let mut found: Vec<(String, u32)> = crate::lint::run_rules(&dockerfile, config)
            .into_iter()
            .filter(|f| RULES.iter().any(|m| m.code == f.code))
            .map(|f| (f.code, f.line))
            .collect();
        found.sort();
        found
    }

    fn config(entries: &[(&str, LabelType)]) -> RuleConfig {
        RuleConfig {
            label_schema: schema(entries),
            ..RuleConfig::default()
        }
    }

    /// Lines at which `code` is reported.
    fn lines(code: &str, text: &str, config: &RuleConfig) -> Vec<u32> {
        findings(text, config)
            .into_iter()
            .filter(|(c, _)| c == code)
            .map(|(_, line)| line)
            .collect()
    }

    fn messages(code: &str, text: &str, config: &RuleConfig) -> Vec<String> {
        let dockerfile = parser::parse(text).expect("test Dockerfile parses");
        crate::lint::run_rules(&dockerfile, config)
            .into_iter()
            .filter(|f| f.code == code)
            .map(|f| f.message)
            .collect()
    }

    #[test]
    fn dl3048_flags_invalid_keys() {
        let plain = RuleConfig::default();
        for text in [
            "FROM a\nLABEL com.docker.label=\"foo\"",
            "FROM a\nLABEL io.docker.label=\"foo\"",
            "FROM a\nLABEL org.dockerproject.label=\"foo\"",
            "FROM a\nLABEL invalid$character=\"foo\"",
            "FROM a\nLABEL .invalid=\"foo\"",
            "FROM a\nLABEL -invalid=\"foo\"",
            "FROM a\nLABEL 1invalid=\"foo\"",
            "FROM a\nLABEL invalid..character=\"foo\"",
            "FROM a\nLABEL invalid--character=\"foo\"",
            "FROM a\nLABEL Vendor=\"CentOS\"",
            "FROM a\nLABEL ends-with-dot.=x",
            "FROM a\nLABEL ok=1 Bad=2",
            "FROM a\nLABEL RUN /usr/bin/docker run -d",
        ] {
            assert_eq!(lines("DL3048", text, &plain), [2], "{text}");
        }
        for text in [
            "FROM a\nLABEL org.valid-key.label3=\"foo\"",
            "FROM a\nLABEL validlabel=\"foo\"",
            "FROM a\nLABEL a/b_c=1 maintainer=\"x\"",
            "FROM a\nONBUILD LABEL Invalid=1",
        ] {
            assert!(lines("DL3048", text, &plain).is_empty(), "{text}");
        }
    }

    #[test]
    fn dl3049_single_stage() {
        let foo = config(&[("foo", LabelType::Text)]);
        assert_eq!(lines("DL3049", "FROM baseimage", &foo), [1]);
        assert_eq!(
            lines("DL3049", "FROM baseimage\nLABEL bar=\"baz\"", &foo),
            [1]
        );
        assert!(lines("DL3049", "FROM baseimage\nLABEL foo=\"bar\"", &foo).is_empty());
        assert!(lines("DL3049", "FROM baseimage", &RuleConfig::default()).is_empty());
        assert_eq!(
            messages("DL3049", "FROM baseimage", &foo),
            ["Label `foo` is missing."]
        );
    }

    #[test]
    fn dl3049_multi_stage() {
        let foo = config(&[("foo", LabelType::Text)]);
        let cases: &[(&str, &[u32])] = &[
            ("FROM stage1\nFROM stage2", &[1, 2]),
            (
                "FROM stage1\nLABEL bar=\"baz\"\nFROM stage2\nLABEL buzz=\"fuzz\"",
                &[1, 3],
            ),
            ("FROM baseimage\nLABEL foo=\"bar\"\nFROM newimage", &[3]),
            ("FROM baseimage\nFROM newimage\nLABEL foo=\"bar\"", &[1]),
            (
                "FROM baseimage\nLABEL baz=\"bar\"\nFROM newimage\nLABEL foo=\"bar\"",
                &[1],
            ),
            ("FROM baseimage as base\nFROM base", &[1, 2]),
            ("FROM baseimage as base\nFROM base\nLABEL foo=\"bar\"", &[]),
            (
                "FROM baseimage as base\nFROM anotherimage\nLABEL foo=\"bar\"\nCOPY --from=base /bar /baz",
                &[],
            ),
            (
                "FROM baseimage as base\nFROM anotherimage\nLABEL foo=\"bar\"",
                &[1],
            ),
            ("FROM baseimage as base\nLABEL foo=\"bar\"\nFROM base", &[]),
            (
                "FROM baseimage as base\nFROM newimage\nLABEL foo=\"bar\"\nCOPY --from=base /bar /baz\n\nFROM newimage\nCOPY --from=base /bar /baz",
                &[6],
            ),
            (
                "FROM baseimage as base\nFROM base\nLABEL foo=\"bar\"\n\nFROM base",
                &[5],
            ),
            (
                "FROM baseimage as base\nFROM base\n\nFROM base\nLABEL foo=\"bar\"",
                &[2],
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(lines("DL3049", text, &foo), *expected, "{text}");
        }
    }

    #[test]
    fn dl3049_one_finding_per_missing_label() {
        let two = config(&[("a", LabelType::Text), ("b", LabelType::Url)]);
        assert_eq!(lines("DL3049", "FROM x\nLABEL b=http://x", &two), [1]);
        assert_eq!(lines("DL3049", "FROM x", &two), [1, 1]);
        assert!(lines("DL3049", "FROM x\nONBUILD LABEL a=1 b=2", &two).len() == 2);
    }

    #[test]
    fn dl3050_flags_labels_outside_the_schema_when_strict() {
        let strict = RuleConfig {
            strict_labels: true,
            ..config(&[("required", LabelType::Text)])
        };
        assert!(lines("DL3050", "FROM a", &strict).is_empty());
        assert!(lines("DL3050", "FROM a\nLABEL required=\"foo\"", &strict).is_empty());
        assert_eq!(lines("DL3050", "FROM a\nLABEL other=\"bar\"", &strict), [2]);
        assert_eq!(
            lines(
                "DL3050",
                "FROM a\nLABEL required=\"foo\" other=\"bar\"",
                &strict
            ),
            [2]
        );
        let lax = config(&[("required", LabelType::Text)]);
        assert!(lines("DL3050", "FROM a\nLABEL other=\"bar\"", &lax).is_empty());
        let strict_without_schema = RuleConfig {
            strict_labels: true,
            ..RuleConfig::default()
        };
        assert_eq!(
            lines("DL3050", "FROM a\nLABEL any=1", &strict_without_schema),
            [2]
        );
    }

    #[test]
    fn dl3051_flags_empty_schema_labels() {
        let schema = config(&[("emptylabel", LabelType::Text)]);
        assert_eq!(
            lines("DL3051", "FROM a\nLABEL emptylabel=\"\"", &schema),
            [2]
        );
        assert!(lines("DL3051", "FROM a\nLABEL emptylabel=\"foo\"", &schema).is_empty());
        assert!(lines("DL3051", "FROM a\nLABEL other=\"\"", &schema).is_empty());
        assert_eq!(
            messages("DL3051", "FROM a\nLABEL emptylabel=\"\"", &schema),
            ["label `emptylabel` is empty."]
        );
    }

    /// For a typed label: `bad` is flagged at line 2 with `message`, `good` is not, and an
    /// untyped label with the bad value is not.
    fn check_typed(code: &str, kind: LabelType, bad: &str, good: &str, message: &str) {
        let schema = config(&[("lbl", kind)]);
        let bad_file = format!("FROM a\nLABEL lbl=\"{bad}\"");
        assert_eq!(lines(code, &bad_file, &schema), [2], "{bad}");
        assert_eq!(messages(code, &bad_file, &schema), [message]);
        let good_file = format!("FROM a\nLABEL lbl=\"{good}\"");
        assert!(lines(code, &good_file, &schema).is_empty(), "{good}");
        let other = format!("FROM a\nLABEL other=\"{bad}\"");
        assert!(lines(code, &other, &schema).is_empty());
        let untyped = config(&[("lbl", LabelType::Text)]);
        assert!(lines(code, &bad_file, &untyped).is_empty());
        let onbuild = format!("FROM a\nONBUILD LABEL lbl=\"{bad}\"");
        assert!(lines(code, &onbuild, &schema).is_empty());
    }

    #[test]
    fn dl3052_flags_non_urls() {
        check_typed(
            "DL3052",
            LabelType::Url,
            "not-url",
            "http://example.com",
            "Label `lbl` is not a valid URL.",
        );
    }

    #[test]
    fn dl3053_flags_non_rfc3339_times() {
        check_typed(
            "DL3053",
            LabelType::Rfc3339,
            "not-date",
            "2021-03-10T10:26:33.564595127+01:00",
            "Label `lbl` is not a valid time format - must conform to RFC3339.",
        );
    }

    #[test]
    fn dl3054_flags_non_spdx_licenses() {
        check_typed(
            "DL3054",
            LabelType::Spdx,
            "not-spdx",
            "BSD-3-Clause",
            "Label `lbl` is not a valid SPDX identifier.",
        );
    }

    #[test]
    fn dl3055_flags_non_git_hashes() {
        check_typed(
            "DL3055",
            LabelType::Hash,
            "not-git-hash",
            "2dbfae9",
            "Label `lbl` is not a valid git hash.",
        );
        let schema = config(&[("lbl", LabelType::Hash)]);
        let full = "FROM a\nLABEL lbl=43c572f1272b6b3171dd1db9e41b7027128ce080";
        assert!(lines("DL3055", full, &schema).is_empty());
    }

    #[test]
    fn dl3056_flags_non_semantic_versions() {
        check_typed(
            "DL3056",
            LabelType::Semver,
            "not-sem-ver",
            "2.0.1-rc1",
            "Label `lbl` does not conform to semantic versioning.",
        );
    }

    #[test]
    fn dl3058_flags_non_emails() {
        check_typed(
            "DL3058",
            LabelType::Email,
            "not-email",
            "abcd@google.com",
            "Label `lbl` is not a valid email format - must conform to RFC5322.",
        );
    }

    #[test]
    fn typed_rules_report_once_per_instruction_and_label() {
        let schema = config(&[("u", LabelType::Url), ("v", LabelType::Url)]);
        let text = "FROM a\nLABEL u=bad u=worse v=bad";
        assert_eq!(lines("DL3052", text, &schema), [2, 2]);
        let empty_url = "FROM a\nLABEL u=\"\"";
        assert_eq!(
            findings(empty_url, &schema),
            [
                ("DL3049".to_string(), 1),
                ("DL3051".to_string(), 2),
                ("DL3052".to_string(), 2)
            ]
        );
    }

    #[test]
    fn rules_lists_every_code_of_the_group() {
        let codes: Vec<&str> = RULES.iter().map(|m| m.code).collect();
        assert_eq!(
            codes,
            [
                "DL3048", "DL3049", "DL3050", "DL3051", "DL3052", "DL3053", "DL3054", "DL3055",
                "DL3056", "DL3058"
            ]
        );
    }
}

//! Rules about package managers in `RUN`: version pinning, non-interactive switches and cache
//! clean-up for apt, apk, pip, npm, gem, go, yum, dnf, zypper and yarn.

mod apk;
mod apt;
mod languages;
mod pip;
mod rpm;

use std::collections::{BTreeMap, HashSet};

use super::{Failure, Meta, Registry, Rule, RuleConfig, Simple};
use crate::shell::{Command, Script};
use crate::syntax::{BaseImage, Instruction, RunArgs};

use apk::{DL3018, DL3019, dl3018, dl3019};
use apt::{DL3008, DL3009, DL3014, DL3015, DL3027, dl3008, dl3009_step, dl3014, dl3015, dl3027};
use languages::{DL3016, DL3028, DL3060, DL3062, dl3016, dl3028, dl3060_step, dl3062};
use pip::{DL3013, DL3042, PipCacheDir, dl3013};
use rpm::{
    DL3030, DL3032, DL3033, DL3034, DL3035, DL3036, DL3037, DL3038, DL3040, DL3041, RpmPinning,
    dl3030, dl3032, dl3034, dl3035, dl3036, dl3037, dl3038, dl3040,
};

/// The rules of this group.
pub const RULES: &[Meta] = &[
    DL3008, DL3009, DL3013, DL3014, DL3015, DL3016, DL3018, DL3019, DL3027, DL3028, DL3030, DL3032,
    DL3033, DL3034, DL3035, DL3036, DL3037, DL3038, DL3040, DL3041, DL3042, DL3060, DL3062,
];

/// A stateless rule's test: `false` for a failing instruction.
type Check = fn(&Instruction) -> bool;

/// Registers the rules of this group (each also applies inside `ONBUILD`, as in hadolint).
pub fn register(registry: &mut Registry, _config: &RuleConfig) {
    let simple: &[(Meta, Check)] = &[
        (DL3008, dl3008),
        (DL3013, dl3013),
        (DL3014, dl3014),
        (DL3015, dl3015),
        (DL3016, dl3016),
        (DL3018, dl3018),
        (DL3019, dl3019),
        (DL3027, dl3027),
        (DL3028, dl3028),
        (DL3030, dl3030),
        (DL3032, dl3032),
        (DL3034, dl3034),
        (DL3035, dl3035),
        (DL3036, dl3036),
        (DL3037, dl3037),
        (DL3038, dl3038),
        (DL3040, dl3040),
        (DL3062, dl3062),
    ];
    for &(meta, ok) in simple {
        registry.with_onbuild(move || -> Box<dyn Rule> { Box::new(Simple::new(meta, ok)) });
    }
    registry.with_onbuild(|| Box::new(StageLeak::new(DL3009, dl3009_step)));
    registry.with_onbuild(|| Box::new(RpmPinning::dl3033()));
    registry.with_onbuild(|| Box::new(RpmPinning::dl3041()));
    registry.with_onbuild(|| Box::new(PipCacheDir::default()));
    registry.with_onbuild(|| Box::new(StageLeak::new(DL3060, dl3060_step)));
}

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// Applies `ok` to a `RUN` instruction; every other instruction is fine.
fn on_run(instruction: &Instruction, ok: impl Fn(&RunArgs) -> bool) -> bool {
    match instruction {
        Instruction::Run(run) => ok(run),
        _ => true,
    }
}

/// Applies `ok` to the script of a `RUN` instruction; every other instruction is fine.
fn on_script(instruction: &Instruction, ok: impl Fn(&Script) -> bool) -> bool {
    on_run(instruction, |run| ok(&run.arguments.script))
}

/// Whether a `cache` or `tmpfs` mount's target contains `fragment` (hadolint's
/// `hasCacheOrTmpfsMountWith`).
fn has_cache_mount_with(run: &RunArgs, fragment: &str) -> bool {
    run.mounts.iter().any(|mount| {
        matches!(mount.kind.as_str(), "cache" | "tmpfs")
            && mount
                .target
                .as_deref()
                .is_some_and(|t| t.contains(fragment))
    })
}

/// Whether the first command matching `install` comes before the first matching `clean`
/// (false when either is missing).
fn cleans_after(
    script: &Script,
    install: impl Fn(&Command) -> bool,
    clean: impl Fn(&Command) -> bool,
) -> bool {
    match (
        script.find_command_index(install),
        script.find_command_index(clean),
    ) {
        (Some(i), Some(c)) => i < c,
        _ => false,
    }
}

/// Whether nothing is installed, or the first install is followed by a clean-up.
fn cleaned_up(
    script: &Script,
    install: impl Fn(&Command) -> bool + Copy,
    clean: impl Fn(&Command) -> bool,
) -> bool {
    script.no_commands(install) || cleans_after(script, install, clean)
}

/// The operands of every command named `name` that has the sub-command `subcommand` among its
/// arguments: its non-flag arguments without the values of `value_flags` and without `skip` words.
fn operands<'a>(
    script: &'a Script,
    name: &'a str,
    subcommand: &'a str,
    value_flags: &'a [&'a str],
    skip: &'a [&'a str],
) -> impl Iterator<Item = String> + 'a {
    script
        .commands
        .iter()
        .filter(move |cmd| cmd.has_args(name, &[subcommand]))
        .flat_map(move |cmd| {
            let cmd = cmd.drop_flag_values(value_flags);
            cmd.args_no_flags()
                .into_iter()
                .filter(|a| !skip.contains(a))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
}

/// The words after the first `install`, leading `install`s skipped (hadolint's `stripInstallPrefix`).
fn after_install<'a>(words: &[&'a str]) -> Vec<&'a str> {
    words
        .iter()
        .skip_while(|w| **w != "install")
        .skip_while(|w| **w == "install")
        .copied()
        .collect()
}

/// A non-interactive check: every command `is_install` matches has one of `yes_flags`.
fn all_confirmed(
    script: &Script,
    is_install: impl Fn(&Command) -> bool,
    yes_flags: &[&str],
) -> bool {
    script.no_commands(|cmd| is_install(cmd) && !cmd.has_any_flag(yes_flags))
}

// ---------------------------------------------------------------------------------------------
// Rules about leftovers that matter only in stages that end up in the image
// ---------------------------------------------------------------------------------------------

/// A rule that remembers the `RUN`s leaving something behind, and reports them at the end when
/// their stage is the last one or is used as the base of another stage (DL3009, DL3060).
struct StageLeak {
    meta: Meta,
    /// Whether a `RUN` leaves something behind.
    leaves: fn(&RunArgs) -> bool,
    /// The current stage's `FROM` (`None` before anything was seen).
    current: Option<BaseImage>,
    /// The image names `FROM` used.
    bases: HashSet<String>,
    /// The lines of the `RUN`s leaving something behind, with their stage.
    leaks: BTreeMap<u32, BaseImage>,
}

impl StageLeak {
    fn new(meta: Meta, leaves: fn(&RunArgs) -> bool) -> StageLeak {
        StageLeak {
            meta,
            leaves,
            current: None,
            bases: HashSet::new(),
            leaks: BTreeMap::new(),
        }
    }
}

/// The stage hadolint pretends to be in before any `FROM`.
fn scratch() -> BaseImage {
    BaseImage {
        name: "scratch".to_string(),
        ..BaseImage::default()
    }
}

impl Rule for StageLeak {
    fn check(&mut self, line: u32, instruction: &Instruction, _out: &mut Vec<Failure>) {
        match instruction {
            Instruction::From(image) => {
                self.current = Some(image.clone());
                self.bases.insert(image.name.clone());
            }
            Instruction::Run(run) if (self.leaves)(run) => {
                let stage = self.current.get_or_insert_with(scratch).clone();
                self.leaks.insert(line, stage);
            }
            _ => {}
        }
    }

    fn finish(&mut self, out: &mut Vec<Failure>) {
        let Some(last) = &self.current else {
            return;
        };
        for (line, stage) in &self.leaks {
            let reused = stage
                .alias
                .as_ref()
                .is_some_and(|alias| self.bases.contains(alias));
            if stage == last || reused {
                out.push(self.meta.at(*line));
            }
        }
    }
}

#[cfg(test)]
mod test_support {
    use crate::lint::{Settings, lint};

    /// The lines at which `code` is reported for `dockerfile`.
    pub(super) fn lines(code: &str, dockerfile: &str) -> Vec<u32> {
        lint(dockerfile, &Settings::default())
            .into_iter()
            .filter(|f| f.code == code)
            .map(|f| f.line)
            .collect()
    }

    /// Asserts that each single-`RUN` command (written after `RUN `) is flagged or not, both as
    /// is and inside `ONBUILD`.
    pub(super) fn check_runs(code: &str, flagged: &[&str], clean: &[&str]) {
        for run in flagged {
            assert_eq!(
                lines(code, &format!("RUN {run}\n")),
                [1],
                "{code} should flag: {run}"
            );
            assert_eq!(
                lines(code, &format!("FROM x\nONBUILD RUN {run}\n")),
                [2],
                "{code} should flag in ONBUILD: {run}"
            );
        }
        for run in clean {
            assert!(
                lines(code, &format!("RUN {run}\n")).is_empty(),
                "{code} should accept: {run}"
            );
            assert!(
                lines(code, &format!("FROM x\nONBUILD RUN {run}\n")).is_empty(),
                "{code} should accept in ONBUILD: {run}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_rule_is_listed_once_in_code_order() {
        let codes: Vec<&str> = super::RULES.iter().map(|m| m.code).collect();
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(codes, sorted);
        assert_eq!(codes.len(), 23);
    }
}

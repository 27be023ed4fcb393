//! RPM package managers: yum, dnf/microdnf and zypper.

use std::collections::{BTreeMap, BTreeSet};

use super::{all_confirmed, cleaned_up, has_cache_mount_with, on_run, on_script};
use crate::rules::{Failure, Meta, Rule, Severity};
use crate::shell::{Command, Script};
use crate::syntax::{BaseImage, Instruction};

pub(super) const DL3030: Meta = Meta {
    code: "DL3030",
    severity: Severity::Warning,
    message: "Use the -y switch to avoid manual input `yum install -y <package>`",
};
pub(super) const DL3032: Meta = Meta {
    code: "DL3032",
    severity: Severity::Warning,
    message: "`yum clean all` missing after yum command.",
};
pub(super) const DL3033: Meta = Meta {
    code: "DL3033",
    severity: Severity::Warning,
    message: "Specify version with `yum install -y <package>-<version>`.",
};
pub(super) const DL3034: Meta = Meta {
    code: "DL3034",
    severity: Severity::Warning,
    message: "Non-interactive switch missing from `zypper` command: `zypper install -y`",
};
pub(super) const DL3035: Meta = Meta {
    code: "DL3035",
    severity: Severity::Warning,
    message: "Do not use `zypper dist-upgrade`.",
};
pub(super) const DL3036: Meta = Meta {
    code: "DL3036",
    severity: Severity::Warning,
    message: "`zypper clean` missing after zypper use.",
};
pub(super) const DL3037: Meta = Meta {
    code: "DL3037",
    severity: Severity::Warning,
    message: "Specify version with `zypper install -y <package>=<version>`.",
};
pub(super) const DL3038: Meta = Meta {
    code: "DL3038",
    severity: Severity::Warning,
    message: "Use the -y switch to avoid manual input `dnf install -y <package>`",
};
pub(super) const DL3040: Meta = Meta {
    code: "DL3040",
    severity: Severity::Warning,
    message: "`dnf clean all` missing after dnf command.",
};
pub(super) const DL3041: Meta = Meta {
    code: "DL3041",
    severity: Severity::Warning,
    message: "Specify version with `dnf install -y <package>-<version>`.",
};

/// DL3030: `yum install`/`groupinstall`/`localinstall` without `-y`.
pub(super) fn dl3030(instruction: &Instruction) -> bool {
    on_script(instruction, |script| {
        all_confirmed(
            script,
            |cmd| cmd.has_args("yum", &["install", "groupinstall", "localinstall"]),
            &["y", "assumeyes"],
        )
    })
}

/// DL3032: `yum install` not followed by `yum clean all` (or an `rm -rf` of the cache).
pub(super) fn dl3032(instruction: &Instruction) -> bool {
    on_script(instruction, |script| {
        cleaned_up(
            script,
            |cmd| cmd.has_args("yum", &["install"]),
            |cmd| {
                cmd.has_args("yum", &["clean", "all"])
                    || cmd.has_args("rm", &["-rf", "/var/cache/yum/*"])
            },
        )
    })
}

/// The dnf front-ends.
const DNF: &[&str] = &["dnf", "microdnf"];

/// DL3038: `dnf`/`microdnf` `install`/`groupinstall`/`localinstall` without `-y`.
pub(super) fn dl3038(instruction: &Instruction) -> bool {
    on_script(instruction, |script| {
        all_confirmed(
            script,
            |cmd| cmd.names_have_args(DNF, &["install", "groupinstall", "localinstall"]),
            &["y", "assumeyes"],
        )
    })
}

/// DL3040: a `dnf`/`microdnf` install or upgrade not followed by `clean all` from the same
/// front-end (or an `rm -rf` of the cache), unless the libdnf5 cache is a cache/tmpfs mount.
pub(super) fn dl3040(instruction: &Instruction) -> bool {
    const INSTALLS: &[&str] = &[
        "install",
        "in",
        "upgrade",
        "up",
        "upgrade-minimal",
        "up-min",
        "reinstall",
        "rei",
    ];
    on_run(instruction, |run| {
        let script = &run.arguments.script;
        DNF.iter().all(|name| {
            cleaned_up(
                script,
                |cmd| cmd.has_args(name, INSTALLS),
                |cmd| {
                    cmd.has_args(name, &["clean", "all"])
                        || cmd.has_args("rm", &["-rf", "/var/cache/libdnf5*"])
                },
            )
        }) || has_cache_mount_with(run, "/var/cache/libdnf5")
            || has_cache_mount_with(run, ".cache/libdnf5")
    })
}

/// The variables an `RPM` pinning rule may see in a stage: `ENV`s of the stage (inherited from a
/// named parent stage) and every `ARG` so far, the way hadolint tracks them.
#[derive(Default)]
struct StageVariables {
    /// `false` until an `ENV`, `ARG` or `FROM` is seen.
    started: bool,
    stage: usize,
    aliases: BTreeMap<usize, String>,
    envs: BTreeMap<usize, BTreeSet<String>>,
    args: BTreeSet<String>,
}

impl StageVariables {
    /// Starts the state before any `FROM` (stage 0), if not started yet.
    fn start(&mut self) {
        if !self.started {
            self.started = true;
            self.stage = 0;
            self.aliases.insert(0, String::new());
            self.envs.insert(0, BTreeSet::new());
        }
    }

    fn from(&mut self, image: &BaseImage) {
        let alias = image.alias.clone().unwrap_or_default();
        if !self.started {
            self.started = true;
            self.stage = 1;
            self.aliases.insert(1, alias);
            self.envs.insert(1, BTreeSet::new());
            return;
        }
        let next = self.stage + 1;
        let parent = self
            .aliases
            .iter()
            .find(|(_, a)| **a == image.name)
            .map_or(next, |(i, _)| *i);
        let inherited = self.envs.get(&parent).cloned().unwrap_or_default();
        self.envs.insert(next, inherited);
        self.aliases.insert(next, alias);
        self.stage = next;
    }

    fn env(&mut self, names: impl Iterator<Item = String>) {
        self.start();
        if let Some(set) = self.envs.get_mut(&self.stage) {
            set.extend(names);
        }
    }

    fn arg(&mut self, name: &str) {
        self.start();
        self.args.insert(name.to_string());
    }

    /// Whether `text` uses `${NAME}` for a variable known here.
    fn defines_variable_in(&self, text: &str) -> bool {
        if !self.started {
            return false;
        }
        let used = |name: &String| text.contains(&format!("${{{name}}}"));
        self.envs
            .get(&self.stage)
            .is_some_and(|set| set.iter().any(used))
            || self.args.iter().any(used)
    }

    /// Whether an RPM package spec `name-version` pins its version.
    fn rpm_version_fixed(&self, package: &str) -> bool {
        let parts: Vec<&str> = package.split('-').collect();
        if parts.len() <= 1 {
            return false;
        }
        if package.ends_with(".rpm") {
            return true;
        }
        if package.contains('$') {
            return self.defines_variable_in(package);
        }
        let version = &parts[1..];
        version.iter().all(|part| {
            part.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".~^_:+".contains(c))
        }) && version
            .iter()
            .any(|part| part.starts_with(|c: char| c.is_ascii_digit()))
    }
}

/// A rule reporting `RUN`s whose RPM packages are not pinned (DL3033, DL3041), knowing the
/// variables defined so far.
pub(super) struct RpmPinning {
    meta: Meta,
    pinned: fn(&Script, &StageVariables) -> bool,
    vars: StageVariables,
}

impl RpmPinning {
    /// DL3033 (yum).
    pub(super) fn dl3033() -> RpmPinning {
        RpmPinning::new(DL3033, yum_pinned)
    }

    /// DL3041 (dnf, microdnf).
    pub(super) fn dl3041() -> RpmPinning {
        RpmPinning::new(DL3041, dnf_pinned)
    }

    fn new(meta: Meta, pinned: fn(&Script, &StageVariables) -> bool) -> RpmPinning {
        RpmPinning {
            meta,
            pinned,
            vars: StageVariables::default(),
        }
    }
}

impl Rule for RpmPinning {
    fn check(&mut self, line: u32, instruction: &Instruction, out: &mut Vec<Failure>) {
        match instruction {
            Instruction::Run(run) if !(self.pinned)(&run.arguments.script, &self.vars) => {
                out.push(self.meta.at(line));
            }
            Instruction::Env(pairs) => self.vars.env(pairs.iter().map(|(k, _)| k.clone())),
            Instruction::Arg { name, .. } => self.vars.arg(name),
            Instruction::From(image) => self.vars.from(image),
            _ => {}
        }
    }
}

/// The operands of an install through one of `names` (`install` and `module` removed).
fn rpm_install_operands<'a>(cmd: &'a Command, names: &[&str]) -> Vec<&'a str> {
    if !cmd.names_have_args(names, &["install"]) {
        return Vec::new();
    }
    cmd.args_no_flags()
        .into_iter()
        .filter(|a| *a != "install" && *a != "module")
        .collect()
}

/// Whether a script's RPM installs through `names` pin their versions: packages as
/// `name-version`, modules (`… module install`) as `name:stream`; commands with any of
/// `unchecked` (besides `module`) are not looked at.
fn rpm_pinned(script: &Script, vars: &StageVariables, names: &[&str], unchecked: &[&str]) -> bool {
    script.commands.iter().all(|cmd| {
        let operands = rpm_install_operands(cmd, names);
        if cmd.names_have_args(names, &["module"]) {
            operands.iter().all(|m| m.contains(':'))
        } else if cmd.names_have_args(names, unchecked) {
            true
        } else {
            operands.iter().all(|p| vars.rpm_version_fixed(p))
        }
    })
}

/// DL3033: `yum install` of a package without `-version` (or `yum module install` without
/// `:stream`).
fn yum_pinned(script: &Script, vars: &StageVariables) -> bool {
    rpm_pinned(script, vars, &["yum"], &[])
}

/// DL3041: `dnf`/`microdnf install` of a package without `-version` (or a module without
/// `:stream`; group installs are not checked).
fn dnf_pinned(script: &Script, vars: &StageVariables) -> bool {
    rpm_pinned(script, vars, DNF, &["group"])
}

// ---------------------------------------------------------------------------------------------
// zypper
// ---------------------------------------------------------------------------------------------

/// DL3034: a `zypper` install, removal, source install or patch without a non-interactive switch.
pub(super) fn dl3034(instruction: &Instruction) -> bool {
    on_script(instruction, |script| {
        all_confirmed(
            script,
            |cmd| {
                cmd.has_args(
                    "zypper",
                    &[
                        "install",
                        "in",
                        "remove",
                        "rm",
                        "source-install",
                        "si",
                        "patch",
                    ],
                )
            },
            &["non-interactive", "n", "no-confirm", "y"],
        )
    })
}

/// DL3035: `zypper dist-upgrade` (or `dup`) is run.
pub(super) fn dl3035(instruction: &Instruction) -> bool {
    on_script(instruction, |script| {
        script.no_commands(|cmd| cmd.has_args("zypper", &["dist-upgrade", "dup"]))
    })
}

/// DL3036: `zypper install` not followed by `zypper clean`, unless the zypp cache is a
/// cache/tmpfs mount.
pub(super) fn dl3036(instruction: &Instruction) -> bool {
    on_run(instruction, |run| {
        has_cache_mount_with(run, "/var/cache/zypp")
            || cleaned_up(
                &run.arguments.script,
                |cmd| cmd.has_args("zypper", &["install", "in"]),
                |cmd| cmd.has_args("zypper", &["clean", "cc"]),
            )
    })
}

/// DL3037: a package of `zypper install` without a version (`=`, `<`, `>`) that is not an
/// `.rpm` file.
pub(super) fn dl3037(instruction: &Instruction) -> bool {
    on_script(instruction, |script| {
        script
            .commands
            .iter()
            .filter(|cmd| cmd.has_args("zypper", &["install", "in"]))
            .flat_map(|cmd| cmd.args_no_flags())
            .filter(|a| *a != "install" && *a != "in")
            .all(|p| p.contains(['=', '<', '>']) || p.ends_with(".rpm"))
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{check_runs, lines};

    #[test]
    fn dl3030_yum_yes() {
        check_runs(
            "DL3030",
            &[
                "yum install httpd-2.4.24 && yum clean all",
                "yum groupinstall x",
            ],
            &[
                "yum install -y httpd-2.4.24 && yum clean all",
                "yum --assumeyes localinstall x",
                "bash -c `# not even a yum command`",
            ],
        );
    }

    #[test]
    fn dl3032_yum_clean() {
        check_runs(
            "DL3032",
            &[
                "yum install -y mariadb-10.4",
                "yum clean all && yum install -y",
            ],
            &[
                "yum install -y mariadb-10.4 && yum clean all",
                "yum install -y mariadb-10.4 && rm -rf /var/cache/yum/*",
                "bash -c `# not even a yum command`",
            ],
        );
    }

    #[test]
    fn dl3033_yum_pinning() {
        check_runs(
            "DL3033",
            &[
                "yum install -y tomcat && yum clean all",
                "yum module install -y tomcat && yum clean all",
                "yum install -y rpm-sign",
                "yum -y install git-core-${version}",
            ],
            &[
                "yum install -y tomcat-9.2 && yum clean all",
                "yum install -y openssl-1:1.1.1k",
                "yum install -y rpm-sign-4.16.1.3",
                "yum install -y gcc-c++-1.1.1",
                "yum install -y ./local-1.rpm",
                "yum module install -y tomcat:9 && yum clean all",
                "bash -c `# not even a yum command`",
            ],
        );
    }

    #[test]
    fn dl3033_yum_version_variables() {
        assert!(
            lines(
                "DL3033",
                "ENV version=2.51.0-2.fc42\nRUN yum -y install git-core-${version}\n"
            )
            .is_empty()
        );
        assert!(
            lines(
                "DL3033",
                "ARG version=2.51.0-2.fc42\nRUN yum -y install git-core-$version\n"
            )
            .is_empty()
        );
        assert!(
            lines(
                "DL3033",
                "FROM f AS build\nARG version=1\nFROM f\nRUN yum -y install git-core-${version}\n"
            )
            .is_empty()
        );
        assert!(lines("DL3033", "FROM f AS build\nENV version=1\nFROM build\nRUN yum -y install git-core-${version}\n").is_empty());
        assert_eq!(
            lines(
                "DL3033",
                "FROM f AS build\nENV version=1\nFROM f\nRUN yum -y install git-core-${version}\n"
            ),
            [4]
        );
        assert_eq!(
            lines(
                "DL3033",
                "FROM f\nENV other=1\nRUN yum -y install git-core-${version}\n"
            ),
            [3]
        );
    }

    #[test]
    fn dl3034_zypper_non_interactive() {
        check_runs(
            "DL3034",
            &[
                "zypper install httpd=2.4.24 && zypper clean",
                "zypper rm x",
                "zypper patch",
            ],
            &[
                "zypper install -n httpd=2.4.24 && zypper clean",
                "zypper install --non-interactive httpd=2.4.24",
                "zypper install -y httpd=2.4.24",
                "zypper install --no-confirm httpd=2.4.24",
                "zypper --non-interactive in x",
                "zypper refresh",
            ],
        );
    }

    #[test]
    fn dl3035_zypper_dist_upgrade() {
        check_runs(
            "DL3035",
            &["zypper dist-upgrade", "zypper -n dup"],
            &["zypper update", "zypper install -y x=1"],
        );
    }

    #[test]
    fn dl3036_zypper_clean() {
        check_runs(
            "DL3036",
            &[
                "zypper install -y mariadb=10.4",
                "zypper clean && zypper install -y mariadb=10.4",
                "--mount=type=bind,target=/var/cache/zypp zypper in -y x",
            ],
            &[
                "zypper install -y mariadb=10.4 && zypper clean",
                "zypper install -y mariadb=10.4 && zypper cc",
                "--mount=type=cache,target=/var/cache/zypp zypper install -y mariadb",
                "--mount=type=tmpfs,target=/var/cache/zypp zypper install -y mariadb",
                "zypper refresh",
            ],
        );
    }

    #[test]
    fn dl3037_zypper_pinning() {
        check_runs(
            "DL3037",
            &[
                "zypper install -y tomcat && zypper clean",
                "zypper in -y tomcat=9 other",
            ],
            &[
                "zypper install -y tomcat=9.0.39 && zypper clean",
                "zypper install -y tomcat\\>=9.0 tomcat\\>9.0 tomcat\\<=9.0 tomcat\\<9.0",
                "zypper install -y tomcat-9.0.39-1.rpm && zypper clean",
            ],
        );
    }

    #[test]
    fn dl3038_dnf_yes() {
        check_runs(
            "DL3038",
            &[
                "dnf install httpd-2.4.24 && dnf clean all",
                "microdnf install httpd-2.4.24 && microdnf clean all",
            ],
            &[
                "dnf install -y httpd-2.4.24 && dnf clean all",
                "microdnf install -y httpd-2.4.24 && microdnf clean all",
                "notdnf install httpd",
            ],
        );
    }

    #[test]
    fn dl3040_dnf_clean() {
        check_runs(
            "DL3040",
            &[
                "dnf install -y mariadb-10.4",
                "microdnf install -y mariadb-10.4",
                "dnf in -y mariadb-10.4",
                "microdnf clean all && dnf install -y mariadb-10.4",
                "rm -rf /var/cache/libdnf5 && dnf in -y mariadb-10.4",
                "dnf -y upgrade",
                "dnf -y up-min",
                "dnf -y rei",
                "dnf install -y x && microdnf install -y y && dnf clean all",
            ],
            &[
                "dnf install -y mariadb-10.4 && dnf clean all",
                "microdnf install -y mariadb-10.4 && microdnf clean all",
                "notdnf install mariadb",
                "dnf install -y mariadb-10.4 && rm -rf /var/cache/yum/*",
                "--mount=type=cache,target=/var/cache/libdnf5 dnf install -y mariadb-10.4",
                "--mount=type=tmpfs,target=/var/cache/libdnf5 microdnf install -y mariadb-10.4",
                "--mount=type=cache,target=/root/.cache/libdnf5 dnf install -y mariadb-10.4",
                "dnf -y reinstall && dnf clean all",
            ],
        );
    }

    #[test]
    fn dl3041_dnf_pinning() {
        check_runs(
            "DL3041",
            &[
                "dnf install -y tomcat && dnf clean all",
                "microdnf install -y tomcat && microdnf clean all",
                "dnf install -y rpm-sign && dnf clean all",
                "dnf module install -y tomcat && dnf clean all",
                "microdnf module install -y tomcat",
            ],
            &[
                "dnf install -y tomcat-9.0.1 && dnf clean all",
                "microdnf install -y rpm-sign-4.16.1.3",
                "dnf install -y gcc-c++-1.1.1",
                "microdnf install -y openssl-1:1.1.1k",
                "notdnf install tomcat",
                "dnf module install -y tomcat:9 && dnf clean all",
                "notdnf module install tomcat",
                "dnf -y group install \"Development Tools\"",
                "dnf -y --setopt=group_package_types=\"mandatory\" group install \"Development Tools\"",
                "microdnf group install -y \"Development Tools\" && microdnf clean all",
            ],
        );
        assert!(
            lines(
                "DL3041",
                "ENV version=2.51.0-2.fc42\nRUN dnf -y install git-core-${version}\n"
            )
            .is_empty()
        );
        assert!(
            lines(
                "DL3041",
                "ARG version=2\nRUN dnf -y install git-core-$version\n"
            )
            .is_empty()
        );
        assert!(lines("DL3041", "FROM f AS build\nENV version=1\nFROM build\nRUN dnf -y install git-core-${version}\n").is_empty());
        assert_eq!(
            lines(
                "DL3041",
                "FROM f AS build\nENV version=1\nFROM f\nRUN dnf -y install git-core-${version}\n"
            ),
            [4]
        );
    }
}

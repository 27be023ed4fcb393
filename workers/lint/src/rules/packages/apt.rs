//! apt (Debian, Ubuntu): pinning, `-y`, recommends, the `apt` front-end and the package lists.

use super::{has_cache_mount_with, on_script, operands};
use crate::rules::{Meta, Severity};
use crate::shell::Command;
use crate::syntax::{Instruction, RunArgs};

pub(super) const DL3008: Meta = Meta {
    code: "DL3008",
    severity: Severity::Warning,
    message: "Pin versions in apt get install. Instead of `apt-get install <package>` use `apt-get install <package>=<version>`",
};
pub(super) const DL3009: Meta = Meta {
    code: "DL3009",
    severity: Severity::Info,
    message: "Delete the apt lists (/var/lib/apt/lists) after installing something",
};
pub(super) const DL3014: Meta = Meta {
    code: "DL3014",
    severity: Severity::Warning,
    message: "Use the `-y` switch to avoid manual input `apt-get -y install <package>`",
};
pub(super) const DL3015: Meta = Meta {
    code: "DL3015",
    severity: Severity::Info,
    message: "Avoid additional packages by specifying `--no-install-recommends`",
};
pub(super) const DL3027: Meta = Meta {
    code: "DL3027",
    severity: Severity::Warning,
    message: "Do not use apt as it is meant to be an end-user tool, use apt-get or apt-cache instead",
};

/// DL3008: a package of `apt-get install` without `=version` (paths and `.deb` files are fine;
/// `-t`/`--target-release` values are not packages).
pub(super) fn dl3008(instruction: &Instruction) -> bool {
    on_script(instruction, |script| {
        operands(
            script,
            "apt-get",
            "install",
            &["t", "target-release"],
            &["install"],
        )
        .all(|p| p.contains('=') || p.contains('/') || p.ends_with(".deb"))
    })
}

/// Whether `cmd` is `apt-get install`.
fn is_apt_get_install(cmd: &Command) -> bool {
    cmd.has_args("apt-get", &["install"])
}

/// DL3014: `apt-get install` without `-y`, `--yes`, `--assume-yes` or quiet level 2.
pub(super) fn dl3014(instruction: &Instruction) -> bool {
    on_script(instruction, |script| {
        script.no_commands(|cmd| {
            is_apt_get_install(cmd)
                && !(cmd.has_any_flag(&["y", "yes", "qq", "assume-yes"])
                    || cmd.count_flag("q") == 2
                    || cmd.count_flag("quiet") == 2
                    || cmd.has_arg("-q=2"))
        })
    })
}

/// DL3015: `apt-get install` without `--no-install-recommends` (or the equivalent `-o` option).
pub(super) fn dl3015(instruction: &Instruction) -> bool {
    on_script(instruction, |script| {
        script.no_commands(|cmd| {
            is_apt_get_install(cmd)
                && !(cmd.has_flag("no-install-recommends")
                    || cmd.has_arg("APT::Install-Recommends=false"))
        })
    })
}

/// DL3027: `apt` is run (it is meant for people, not scripts).
pub(super) fn dl3027(instruction: &Instruction) -> bool {
    on_script(instruction, |script| !script.using_program("apt"))
}

/// DL3009 (one `RUN`): `apt`/`apt-get`/`aptitude update` without `rm -rf` of the lists, and no
/// cache or tmpfs mount keeping the lists out of the image.
pub(super) fn dl3009_step(run: &RunArgs) -> bool {
    let script = &run.arguments.script;
    let updates = script.any_command(|cmd| {
        ["apt", "apt-get", "aptitude"]
            .iter()
            .any(|name| cmd.has_args(name, &["update"]))
    });
    let cleans = script.any_command(|cmd| cmd.has_args("rm", &["-rf", "/var/lib/apt/lists/*"]));
    let lists_kept_out = has_cache_mount_with(run, "/var/lib/apt/lists")
        || (has_cache_mount_with(run, "/var/lib/apt")
            && has_cache_mount_with(run, "/var/cache/apt"));
    updates && !cleans && !lists_kept_out
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{check_runs, lines};

    #[test]
    fn dl3008_apt_get_pinning() {
        check_runs(
            "DL3008",
            &[
                "apt-get update && apt-get install python",
                "apt-get install -y curl=7.1 wget",
                "apt-get install -t stable curl",
            ],
            &[
                "apt-get update && apt-get -yqq --no-install-recommends install nodejs=0.10 && rm -rf /var/lib/apt/lists/*",
                "apt-get install --no-install-recommends -y python-demjson=2.2.2* wget=1.16.1* git=1:2.5.0*",
                "apt-get install ./wkhtmltox_0.12.5-1.bionic_amd64.deb",
                "apt-get install -y --no-install-recommends -t jessie-backports openjdk-8-jdk=8u131-b11-1~bpo8+1",
                "apt-get install -y --target-release=stable curl=1.0",
                "apt-get update",
                "[\"apt-get\", \"install\", \"-y\", \"curl=1.2\"]",
            ],
        );
        assert_eq!(
            lines(
                "DL3008",
                "FROM x\nRUN [\"apt-get\", \"install\", \"curl\"]\n"
            ),
            [2]
        );
    }

    #[test]
    fn dl3009_apt_lists_in_final_or_reused_stages() {
        let update = "RUN apt-get update && apt-get install python";
        assert_eq!(lines("DL3009", &format!("FROM scratch\n{update}\n")), [2]);
        assert_eq!(
            lines(
                "DL3009",
                &format!("FROM ubuntu as foo\n{update}\nFROM scratch\nRUN echo\n")
            ),
            [] as [u32; 0]
        );
        assert_eq!(
            lines(
                "DL3009",
                &format!("FROM ubuntu as foo\nRUN x\nFROM scratch\n{update}\n")
            ),
            [4]
        );
        assert_eq!(
            lines(
                "DL3009",
                &format!("FROM ubuntu as foo\n{update}\nFROM foo\nRUN x\n")
            ),
            [2]
        );
        assert!(
            lines(
                "DL3009",
                "FROM ubuntu as foo\nRUN apt-get update && rm -rf /var/lib/apt/lists/*\nFROM foo\n"
            )
            .is_empty()
        );
        assert!(lines("DL3009", "FROM scratch\nRUN aptitude update && aptitude install python && rm -rf /var/lib/apt/lists/*\n").is_empty());
        assert_eq!(
            lines(
                "DL3009",
                "FROM scratch\nRUN apt update && apt install python\n"
            ),
            [2]
        );
        // No FROM at all: hadolint pretends the file starts from scratch.
        assert_eq!(lines("DL3009", &format!("{update}\n")), [1]);
        // Inside ONBUILD there is never a later stage, so it always counts.
        assert_eq!(
            lines(
                "DL3009",
                &format!("FROM ubuntu as foo\nONBUILD {update}\nFROM scratch\n")
            ),
            [2]
        );
    }

    #[test]
    fn dl3009_cache_mounts() {
        for mounts in [
            "--mount=type=cache,target=/var/lib/apt/lists",
            "--mount=type=cache,target=/var/lib/apt --mount=type=cache,target=/var/cache/apt",
            "--mount=type=tmpfs,target=/var/cache/apt --mount=type=cache,target=/var/lib/apt",
        ] {
            assert!(
                lines(
                    "DL3009",
                    &format!("RUN {mounts} apt-get update && apt-get install python\n")
                )
                .is_empty(),
                "{mounts}"
            );
        }
        for mounts in [
            "--mount=type=cache,target=/var/cache/apt",
            "--mount=type=cache,target=/var/lib/apt",
            "--mount=type=bind,target=/var/lib/apt/lists",
        ] {
            assert_eq!(
                lines("DL3009", &format!("RUN {mounts} apt-get update\n")),
                [1],
                "{mounts}"
            );
        }
    }

    #[test]
    fn dl3014_apt_get_yes() {
        check_runs(
            "DL3014",
            &[
                "apt-get install python",
                "apt-get install -q python",
                "apt-get install --quiet python",
            ],
            &[
                "apt-get install -yq python",
                "apt-get -y install python",
                "apt-get --yes install python",
                "apt-get --assume-yes install python",
                "apt-get install -qq python",
                "apt-get install -q -q python",
                "apt-get install -q=2 python",
                "apt-get install --quiet --quiet python",
                "apt-get update",
            ],
        );
    }

    #[test]
    fn dl3015_no_install_recommends() {
        check_runs(
            "DL3015",
            &["apt-get install python", "apt-get -y install python"],
            &[
                "apt-get install --no-install-recommends python",
                "apt-get -o APT::Install-Recommends=false install python",
            ],
        );
    }

    #[test]
    fn dl3027_apt() {
        check_runs(
            "DL3027",
            &["apt install python", "apt-get update && apt upgrade"],
            &["apt-get install python", "apt-cache search x"],
        );
    }
}

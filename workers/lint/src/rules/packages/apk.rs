//! apk (Alpine): pinning and the package cache.

use super::{has_cache_mount_with, on_run, on_script, operands};
use crate::rules::{Meta, Severity};
use crate::syntax::Instruction;

pub(super) const DL3018: Meta = Meta {
    code: "DL3018",
    severity: Severity::Warning,
    message: "Pin versions in apk add. Instead of `apk add <package>` use `apk add <package>=<version>`",
};
pub(super) const DL3019: Meta = Meta {
    code: "DL3019",
    severity: Severity::Info,
    message: "Use the `--no-cache` switch to avoid the need to use `--update` and remove `/var/cache/apk/*` when done installing packages",
};

/// DL3018: a package of `apk add` without a version constraint (`=`, `~`, `>`, `<`) that is not
/// an `.apk` file; values of `-t`/`--virtual`/`--repository`/`-X` are not packages.
pub(super) fn dl3018(instruction: &Instruction) -> bool {
    on_script(instruction, |script| {
        operands(
            script,
            "apk",
            "add",
            &["t", "virtual", "repository", "X"],
            &["add"],
        )
        .all(|p| ["=", "~", ">", "<"].iter().any(|s| p.contains(s)) || p.ends_with(".apk"))
    })
}

/// DL3019: `apk add` without `--no-cache`, unless `/var/cache/apk` is a cache or tmpfs mount.
pub(super) fn dl3019(instruction: &Instruction) -> bool {
    on_run(instruction, |run| {
        has_cache_mount_with(run, "/var/cache/apk")
            || run
                .arguments
                .script
                .no_commands(|cmd| cmd.has_args("apk", &["add"]) && !cmd.has_flag("no-cache"))
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::check_runs;

    #[test]
    fn dl3018_apk_pinning() {
        check_runs(
            "DL3018",
            &[
                "apk add flex",
                "apk add --no-cache flex=2.6.4-r1 libffi python2=2.7.13-r1",
            ],
            &[
                "apk add flex=2.6.4-r1",
                "apk add --no-cache git~2.52.0 git=~2.52 \"flex>=2.6.1-r1\" \"python3<3.6.12-r2\"",
                "apk add --virtual build-dependencies python-dev=1.1.1 && pip install -r r.txt",
                "apk add --no-cache --repository https://nl.alpinelinux.org/alpine/edge/testing flow=0.78.0-r0",
                "apk add --no-cache -X https://example.org flow=0.78.0-r0",
                "apk add -t .deps flow=0.78.0-r0",
                "apk add mypackage-1.1.1.apk",
                "apk update",
            ],
        );
    }

    #[test]
    fn dl3019_apk_no_cache() {
        check_runs(
            "DL3019",
            &[
                "apk add flex=2.6.4-r1",
                "--mount=type=cache,target=/var/cache/foo apk add -U curl=7.77.0",
                "--mount=type=tmpfs,target=/var/cache/foo apk add -U curl=7.77.0",
            ],
            &[
                "apk add --no-cache flex=2.6.4-r1",
                "--mount=type=cache,target=/var/cache/apk apk add -U curl=7.77.0",
                "--mount=type=tmpfs,target=/var/cache/apk apk add -U curl=7.77.0",
                "--mount=type=cache,target=/var/cache/foo apk add --no-cache -U curl=7.77.0",
            ],
        );
    }
}

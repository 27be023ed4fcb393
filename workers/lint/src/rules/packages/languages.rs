//! Language package managers besides pip: npm, gem, go and yarn.

use super::{after_install, cleans_after, has_cache_mount_with, on_script};
use crate::rules::{Meta, Severity};
use crate::shell::Command;
use crate::syntax::{Instruction, RunArgs};

pub(super) const DL3016: Meta = Meta {
    code: "DL3016",
    severity: Severity::Warning,
    message: "Pin versions in npm. Instead of `npm install <package>` use `npm install <package>@<version>`",
};
pub(super) const DL3028: Meta = Meta {
    code: "DL3028",
    severity: Severity::Warning,
    message: "Pin versions in gem install. Instead of `gem install <gem>` use `gem install <gem>:<version>`",
};
pub(super) const DL3060: Meta = Meta {
    code: "DL3060",
    severity: Severity::Info,
    message: "`yarn cache clean` missing after `yarn install` was run.",
};
pub(super) const DL3062: Meta = Meta {
    code: "DL3062",
    severity: Severity::Warning,
    message: "Pin versions in go. Instead of `go install <package>` use `go install <package>@<version>`",
};

/// DL3016: `npm install <package>` without `@version` (git URLs need `#ref`; tarballs and
/// folders are fine; a bare `npm install` uses package.json).
pub(super) fn dl3016(instruction: &Instruction) -> bool {
    on_script(instruction, |script| {
        script.no_commands(|cmd| {
            if !cmd.has_args("npm", &["install"]) {
                return false;
            }
            let cmd = cmd.drop_flag_values(&["loglevel", "registry"]);
            let words = cmd.args_no_flags();
            words.first() == Some(&"install")
                && !after_install(&words).iter().all(|p| npm_version_fixed(p))
        })
    })
}

/// Whether an npm package spec pins a version.
fn npm_version_fixed(package: &str) -> bool {
    if ["git://", "git+ssh://", "git+http://", "git+https://"]
        .iter()
        .any(|p| package.starts_with(p))
    {
        return package.contains('#');
    }
    if [".tar", ".tar.gz", ".tgz"]
        .iter()
        .any(|s| package.ends_with(s))
        || ["/", "./", "../", "~/"]
            .iter()
            .any(|p| package.starts_with(p))
    {
        return true;
    }
    // hadolint drops a leading scope by skipping every character above '/'.
    let unscoped = if package.starts_with('@') {
        package.trim_start_matches(|c: char| c > '/')
    } else {
        package
    };
    unscoped.contains('@')
}

/// DL3028: `gem install`/`gem i` of a gem without `:version` (unless `-v`/`--version` is given).
pub(super) fn dl3028(instruction: &Instruction) -> bool {
    on_script(instruction, |script| {
        script
            .commands
            .iter()
            .filter(|cmd| {
                cmd.has_args("gem", &["install", "i"])
                    && !cmd.has_args("gem", &["-v", "--version"])
                    && !cmd.has_prefix_arg("gem", "--version=")
            })
            .all(|cmd| {
                let mut words = cmd.args.iter().take_while(|a| *a != "--");
                let mut gems = Vec::new();
                while let Some(word) = words.next() {
                    if word.starts_with('-') {
                        words.next();
                    } else {
                        gems.push(word);
                    }
                }
                gems.iter()
                    .filter(|g| g.as_str() != "install" && g.as_str() != "i")
                    .all(|g| g.contains(':'))
            })
    })
}

/// DL3062: `go install`/`go get`/`go run` of a module without `@version` (`@latest` and `@none`
/// do not count; local paths are fine).
pub(super) fn dl3062(instruction: &Instruction) -> bool {
    on_script(instruction, |script| {
        let run: Vec<&str> = script
            .commands
            .iter()
            .filter(|cmd| cmd.has_args("go", &["run"]))
            .flat_map(|cmd| {
                cmd.args_no_flags()
                    .into_iter()
                    .enumerate()
                    .filter(|(i, a)| *a != "run" && *i <= 1)
                    .map(|(_, a)| a)
            })
            .collect();
        let packages = if !run.is_empty() {
            run
        } else {
            script
                .commands
                .iter()
                .filter(|cmd| cmd.has_args("go", &["install", "get"]))
                .flat_map(|cmd| cmd.args_no_flags())
                .filter(|a| !["install", "get", "tool"].contains(a))
                .collect()
        };
        packages.iter().all(|p| {
            *p == "."
                || p.starts_with('/')
                || p.starts_with('.')
                || (p.contains('@') && !p.ends_with("@latest") && !p.ends_with("@none"))
        })
    })
}

/// DL3060 (one `RUN`): `yarn install` with no `yarn cache clean` after it (a cache or tmpfs
/// mount of the yarn cache excuses a missing clean, not one run too early).
pub(super) fn dl3060_step(run: &RunArgs) -> bool {
    let script = &run.arguments.script;
    let install = |cmd: &Command| cmd.has_args("yarn", &["install"]);
    let clean = |cmd: &Command| cmd.has_args("yarn", &["cache", "clean"]);
    if !script.any_command(install) {
        return false;
    }
    if script.no_commands(clean) {
        return !has_cache_mount_with(run, ".cache/yarn");
    }
    cleans_after(script, clean, install)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{check_runs, lines};

    #[test]
    fn dl3016_npm_pinning() {
        check_runs(
            "DL3016",
            &[
                "npm install express",
                "npm install @myorg/privatepackage",
                "npm install express sax@0.1.1",
                "npm install --global express",
                "npm install git+ssh://git@github.com:npm/npm.git",
                "npm install git://github.com/npm/npm.git",
                "npm install --registry https://example.com express",
                "npm install --registry=https://example.com express",
            ],
            &[
                "npm install",
                "npm install --progress=false",
                "npm install express@4.1.1",
                "npm install @myorg/privatepackage@\">=0.1.0\"",
                "npm install -g express@\"4.1.1\"",
                "npm install package-v1.2.3.tar package-v1.2.3.tgz",
                "npm install /folder ./folder ../folder ~/folder",
                "npm install git+https://isaacs@github.com/npm/npm.git#v1.0.27",
                "npm run --crazy install",
                "npm install --loglevel verbose sax@0.1.1",
            ],
        );
    }

    #[test]
    fn dl3028_gem_pinning() {
        check_runs(
            "DL3028",
            &[
                "gem i bundler",
                "gem i bunlder:1 nokogiri",
                "gem install bundler",
            ],
            &[
                "gem i bundler:1",
                "gem i bunlder:1 nokogirii:1",
                "gem install bundler:1",
                "gem install bundler -v '2.0.1'",
                "gem install bundler --version '2.0.1'",
                "gem install bundler --version='2.0.1'",
                "gem install bundler:2.0.1 -- --use-system-libraries=true",
                "gem install bundler:2.0.1 -- --use-system-libraries true",
                "gem install bundler:2.0.1 --use-system-libraries true",
                "gem update",
            ],
        );
    }

    #[test]
    fn dl3060_yarn_cache_clean() {
        check_runs(
            "DL3060",
            &[
                "yarn install foo",
                "yarn cache clean && yarn install foo",
                "--mount=type=cache,target=/var/lib/foobar yarn install foobar",
                "--mount=type=tmpfs,target=/var/lib/foobar yarn install foobar",
            ],
            &[
                "foo",
                "yarn install bar && yarn cache clean",
                "--mount=type=cache,target=/root/.cache/yarn yarn install foobar",
                "--mount=type=tmpfs,target=/root/.cache/yarn yarn install foobar",
            ],
        );
        assert_eq!(
            lines(
                "DL3060",
                "FROM node as foo\nRUN hey\nFROM scratch\nRUN yarn install\n"
            ),
            [4]
        );
        assert_eq!(
            lines(
                "DL3060",
                "FROM node as foo\nRUN yarn install\nFROM foo\nRUN hey\n"
            ),
            [2]
        );
        assert!(
            lines(
                "DL3060",
                "FROM node as foo\nRUN yarn install && yarn cache clean\nFROM foo\n"
            )
            .is_empty()
        );
        assert!(
            lines(
                "DL3060",
                "FROM node as foo\nRUN yarn install foo\nFROM scratch\nRUN hey\n"
            )
            .is_empty()
        );
    }

    #[test]
    fn dl3062_go_pinning() {
        check_runs(
            "DL3062",
            &[
                "go install example.com/pkg",
                "go install example.com/pkg@latest",
                "go get example.com/pkg",
                "go get example.com/pkg@none",
                "go get -tool foobar",
                "go run example.com/pkg",
                "go run example.com/pkg@latest",
            ],
            &[
                "go install example.com/pkg@v1.2.3",
                "go install /go/app/foobar",
                "go install ./app/foobar",
                "go install .",
                "go get -tool foobar@v1.2.3",
                "go run example.com/pkg@v1.2.3 -f",
                "go run example.com/pkg@v1.2.3 --foo bar",
                "go run example.com/pkg@v1.2.3 foobar",
                "go run ./app/foobar",
                "go build ./...",
            ],
        );
    }
}

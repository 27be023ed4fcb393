//! pip (Python): pinning and the download cache.

use std::collections::HashMap;

use super::{after_install, has_cache_mount_with, on_script};
use crate::rules::{Failure, Meta, Rule, Severity};
use crate::shell::Command;
use crate::syntax::Instruction;

pub(super) const DL3013: Meta = Meta {
    code: "DL3013",
    severity: Severity::Warning,
    message: "Pin versions in pip. Instead of `pip install <package>` use `pip install <package>==<version>` or `pip install --requirement <requirements file>`",
};
pub(super) const DL3042: Meta = Meta {
    code: "DL3042",
    severity: Severity::Warning,
    message: "Avoid use of cache directory with pip. Use `pip install --no-cache-dir <package>`",
};

/// The flags of `pip install` whose value is a separate word, not a package.
const PIP_VALUE_FLAGS: &[&str] = &[
    "abi",
    "b",
    "build",
    "e",
    "editable",
    "extra-index-url",
    "f",
    "find-links",
    "i",
    "index-url",
    "implementation",
    "no-binary",
    "only-binary",
    "platform",
    "prefix",
    "progress-bar",
    "proxy",
    "python",
    "python-version",
    "root",
    "root-user-action",
    "src",
    "t",
    "target",
    "trusted-host",
    "upgrade-strategy",
];

/// The version-control schemes pip understands (`vcs[+protocol]`).
const VCS_SCHEMES: &[&str] = &[
    "git+file",
    "git+https",
    "git+ssh",
    "git+http",
    "git+git",
    "git",
    "hg+file",
    "hg+http",
    "hg+https",
    "hg+ssh",
    "hg+static-http",
    "svn",
    "svn+svn",
    "svn+http",
    "svn+https",
    "svn+ssh",
    "bzr+http",
    "bzr+https",
    "bzr+ssh",
    "bzr+sftp",
    "bzr+ftp",
    "bzr+lp",
];

/// Whether a pip requirement pins its version (or needs none: local files and paths, or a VCS
/// URL with `@ref`).
fn pip_version_fixed(package: &str) -> bool {
    let vcs = VCS_SCHEMES.iter().any(|s| package.starts_with(s));
    ["==", ">=", "<=", ">", "<", "!=", "~=", "==="]
        .iter()
        .any(|s| package.contains(s))
        || (vcs && package.contains('@'))
        || [".whl", ".tar.gz"].iter().any(|s| package.ends_with(s))
        || (!vcs && package.contains('/'))
}

/// DL3013: `pip install` of a package without a pinned version (unless a constraints file,
/// a requirements file or `.` is installed).
pub(super) fn dl3013(instruction: &Instruction) -> bool {
    on_script(instruction, |script| {
        script.no_commands(|cmd| {
            if !cmd.is_pip_install()
                || cmd.has_any_flag(&["constraint", "c"])
                || cmd
                    .args
                    .iter()
                    .any(|a| matches!(a.as_str(), "--requirement" | "-r" | "."))
            {
                return false;
            }
            let cmd = cmd.drop_flag_values(PIP_VALUE_FLAGS);
            !after_install(&cmd.args_no_flags())
                .iter()
                .all(|p| pip_version_fixed(p))
        })
    })
}

/// The values of `PIP_NO_CACHE_DIR` that turn the cache off.
const TRUTHY: &[&str] = &[
    "1", "true", "True", "TRUE", "on", "On", "ON", "yes", "Yes", "YES",
];

/// Whether the `RUN` text sets `PIP_NO_CACHE_DIR=` (its first occurrence) to a truthy value.
fn pip_no_cache_dir_in_text(text: &str) -> bool {
    text.find("PIP_NO_CACHE_DIR=").is_some_and(|at| {
        let value = &text[at + "PIP_NO_CACHE_DIR=".len()..];
        TRUTHY.iter().any(|t| value.starts_with(t))
    })
}

/// Whether `cmd` runs pipx or pipenv (directly or as `python -m`).
fn is_pip_wrapper(cmd: &Command) -> bool {
    ["pipx", "pipenv"].iter().any(|w| {
        cmd.name.contains(w)
            || (cmd.name.starts_with("python")
                && cmd.args.windows(2).any(|p| p[0] == "-m" && p[1] == *w))
    })
}

/// DL3042: `pip install` without `--no-cache-dir`, unless `PIP_NO_CACHE_DIR` is set (by `ENV` in
/// this stage or its ancestors, or in the `RUN` itself) or the pip cache is a cache/tmpfs mount.
#[derive(Default)]
pub(super) struct PipCacheDir {
    /// `None` before any `FROM` or relevant `ENV`.
    state: Option<PipStages>,
}

/// What [`PipCacheDir`] knows about the stages, each named by its alias or else its image
/// (`None` names the instructions before the first `FROM`).
struct PipStages {
    current: Option<String>,
    /// Whether `ENV` turned the pip cache off in a stage (or in the stage it is built on).
    no_cache: HashMap<Option<String>, bool>,
}

impl Rule for PipCacheDir {
    fn check(&mut self, line: u32, instruction: &Instruction, out: &mut Vec<Failure>) {
        match instruction {
            Instruction::From(image) => {
                let stage = image.alias.clone().unwrap_or_else(|| image.name.clone());
                match &mut self.state {
                    None => {
                        self.state = Some(PipStages {
                            current: Some(stage),
                            no_cache: HashMap::new(),
                        })
                    }
                    Some(stages) => {
                        let parent = stages
                            .no_cache
                            .get(&Some(image.name.clone()))
                            .copied()
                            .unwrap_or(false);
                        stages.no_cache.insert(Some(stage.clone()), parent);
                        stages.current = Some(stage);
                    }
                }
            }
            Instruction::Env(pairs) => {
                let set = pairs
                    .iter()
                    .find(|(k, _)| k == "PIP_NO_CACHE_DIR")
                    .is_some_and(|(_, v)| TRUTHY.contains(&v.as_str()));
                if set {
                    match &mut self.state {
                        None => {
                            self.state = Some(PipStages {
                                current: None,
                                no_cache: HashMap::from([(None, true)]),
                            })
                        }
                        Some(stages) => {
                            stages.no_cache.insert(stages.current.clone(), true);
                        }
                    }
                }
            }
            Instruction::Run(run) => {
                if let Some(stages) = &self.state
                    && stages.no_cache.get(&stages.current) == Some(&true)
                {
                    return;
                }
                let script = &run.arguments.script;
                let ok = pip_no_cache_dir_in_text(&script.source)
                    || script.no_commands(|cmd| {
                        cmd.is_pip_install()
                            && !cmd.has_arg("--no-cache-dir")
                            && !is_pip_wrapper(cmd)
                    })
                    || has_cache_mount_with(run, ".cache/pip");
                if !ok {
                    out.push(DL3042.at(line));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{check_runs, lines};

    #[test]
    fn dl3013_pip_pinning() {
        check_runs(
            "DL3013",
            &[
                "pip2 install MySQL_python",
                "pip install MySQL_python",
                "python -m pip install example",
                "python3 -m pip install --index-url url example",
                "pip install git+https://github.com/rtfd/read-ext.git#egg=read-ext",
                "pipx install black",
                "pip install --root-user-action=ignore mypkg",
            ],
            &[
                "pip3 install MySQL_python==1.2.2",
                "pip3 install mypkg.whl mypkg.tar.gz",
                "pip install -r requirements.txt",
                "pip install --requirement requirements.txt",
                "pip install .",
                "pip install MySQL_python~=1.2.2",
                "pip3 install --build /opt/yamllint yamllint==1.20.0",
                "pip3 install --trusted-host host example==1.2.2",
                "pip install git+https://github.com/rtfd/r-ext.git@0.6-alpha#egg=r-ext",
                "pip install foo/bar",
                "pip install https://foo.bar/baz.zip",
                "pip install 'alabaster>=0.7' 'b<1' 'c!=2'",
                "pip install --index-url https://eg.com/foo --extra-index-url https://ex-eg.io/foo foobar==1.0.0",
                "pip install pykafka --constraint http://foo.bar.baz",
                "pip install pykafka -c http://foo.bar.baz",
                "pipenv install black",
                "pipx install --python \"$(which python)\" \"poetry==1.8.5\"",
                "pip install --no-cache-dir --root-user-action ignore poetry==1.8.5",
                "pip download six",
            ],
        );
    }

    #[test]
    fn dl3042_pip_cache_dir() {
        check_runs(
            "DL3042",
            &[
                "pip2 install MySQL_python",
                "pip3 install MySQL_python",
                "python -m pip install x",
                "PIP_NO_CACHE_DIR=0 pip install MySQL_python",
                "export PIP_NO_CACHE_DIR=off && pip install MySQL_python",
                "--mount=type=cache,target=/root/.cache/other pip install foobar",
            ],
            &[
                "pip2 install MySQL_python --no-cache-dir",
                "pip3 install --no-cache-dir MySQL_python",
                "pipx install software",
                "pipenv install library",
                "python -m pipx install x",
                "PIP_NO_CACHE_DIR=1 pip install MySQL_python",
                "export PIP_NO_CACHE_DIR=yes && pip install MySQL_python",
                "--mount=type=cache,target=/root/.cache/pip pip install foobar",
                "--mount=type=tmpfs,target=/root/.cache/pip pip install foobar",
            ],
        );
        for value in ["1", "on", "yes", "true"] {
            assert!(
                lines(
                    "DL3042",
                    &format!("ENV PIP_NO_CACHE_DIR={value}\nRUN pip install x\n")
                )
                .is_empty()
            );
        }
        for value in ["0", "off", "no", "false"] {
            assert_eq!(
                lines(
                    "DL3042",
                    &format!("ENV PIP_NO_CACHE_DIR={value}\nRUN pip install x\n")
                ),
                [2]
            );
        }
        let inherited =
            "FROM debian:buster as base\nENV PIP_NO_CACHE_DIR=1\nFROM base\nRUN pip install six\n";
        assert!(lines("DL3042", inherited).is_empty());
        let fresh = "FROM debian:buster as base\nENV PIP_NO_CACHE_DIR=1\nFROM debian:buster\nRUN pip install six\n";
        assert_eq!(lines("DL3042", fresh), [4]);
    }
}

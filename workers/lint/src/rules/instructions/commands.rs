//! Rules about what `RUN` scripts do: commands that make no sense in a build, `cd`, `sudo`,
//! archive extraction, `useradd`, `wget`/`curl`, consecutive `RUN`s, `/bin/sh` links and pipes
//! without `pipefail`.

use std::collections::BTreeSet;

use super::drop_quotes;
use crate::rules::{Failure, Meta, Registry, Rule, Severity, Simple};
use crate::shell::{Command, Script};
use crate::syntax::{Instruction, RunArgs, RunMount};

pub const DL3001: Meta = Meta {
    code: "DL3001",
    severity: Severity::Info,
    message: "For some bash commands it makes no sense running them in a Docker container like \
              `ssh`, `vim`, `shutdown`, `service`, `ps`, `free`, `top`, `kill`, `mount`, `ifconfig`",
};

pub const DL3003: Meta = Meta {
    code: "DL3003",
    severity: Severity::Warning,
    message: "Use WORKDIR to switch to a directory",
};

pub const DL3004: Meta = Meta {
    code: "DL3004",
    severity: Severity::Error,
    message: "Do not use sudo as it leads to unpredictable behavior. Use a tool like gosu to \
              enforce root",
};

pub const DL3010: Meta = Meta {
    code: "DL3010",
    severity: Severity::Info,
    message: "Use `ADD` for extracting archives into an image",
};

pub const DL3046: Meta = Meta {
    code: "DL3046",
    severity: Severity::Warning,
    message: "`useradd` without flag `-l` and high UID will result in excessively large Image.",
};

pub const DL3047: Meta = Meta {
    code: "DL3047",
    severity: Severity::Info,
    message: "Avoid use of wget without progress bar. Use `wget --progress=dot:giga <url>`. Or \
              consider using `-q` or `-nv` (shorthands for `--quiet` or `--no-verbose`).",
};

pub const DL3059: Meta = Meta {
    code: "DL3059",
    severity: Severity::Info,
    message: "Multiple consecutive `RUN` instructions. Consider consolidation.",
};

pub const DL4001: Meta = Meta {
    code: "DL4001",
    severity: Severity::Warning,
    message: "Either use Wget or Curl but not both",
};

pub const DL4005: Meta = Meta {
    code: "DL4005",
    severity: Severity::Warning,
    message: "Use SHELL to change the default shell",
};

pub const DL4006: Meta = Meta {
    code: "DL4006",
    severity: Severity::Warning,
    message: "Set the SHELL option -o pipefail before RUN with a pipe in it. If you are using \
              /bin/sh in an alpine image or if your shell is symlinked to busybox then consider \
              explicitly setting your SHELL to /bin/ash, or disable this check",
};

/// Registers the `RUN` script rules.
pub fn register(registry: &mut Registry) {
    registry.with_onbuild(|| Box::new(Simple::new(DL3001, no_pointless_commands)));
    registry.add(Box::new(Simple::new(DL3003, no_cd)));
    registry.with_onbuild(|| Box::new(Simple::new(DL3004, no_sudo)));
    registry.add(Box::<ExtractedArchives>::default());
    registry.with_onbuild(|| Box::new(Simple::new(DL3046, no_useradd_with_long_uid)));
    registry.with_onbuild(|| Box::new(Simple::new(DL3047, no_wget_progress_bar)));
    registry.add(Box::<ConsecutiveRuns>::default());
    registry.with_onbuild(|| Box::<WgetAndCurl>::default());
    registry.with_onbuild(|| Box::new(Simple::new(DL4005, no_bin_sh_link)));
    registry.add(Box::<PipefailBeforePipes>::default());
}

/// The script of a `RUN` instruction (hadolint's `foldArguments` over its arguments).
fn run_script(instruction: &Instruction) -> Option<&Script> {
    match instruction {
        Instruction::Run(run) => Some(&run.arguments.script),
        _ => None,
    }
}

/// Whether the instruction is not a `RUN`, or its script has no command satisfying `bad`.
fn run_has_no(instruction: &Instruction, bad: impl Fn(&Command) -> bool) -> bool {
    run_script(instruction).is_none_or(|script| script.no_commands(bad))
}

/// DL3001: a `RUN` uses a command that makes no sense in a container (`ssh`, `vim`, `ps`, …).
fn no_pointless_commands(instruction: &Instruction) -> bool {
    const POINTLESS: [&str; 9] = [
        "free", "kill", "mount", "ps", "service", "shutdown", "ssh", "top", "vim",
    ];
    run_has_no(instruction, |cmd| POINTLESS.contains(&cmd.name.as_str()))
}

/// DL3003: a `RUN` uses `cd` (`WORKDIR` should be used instead).
fn no_cd(instruction: &Instruction) -> bool {
    run_script(instruction).is_none_or(|script| !script.using_program("cd"))
}

/// DL3004: a `RUN` uses `sudo`.
fn no_sudo(instruction: &Instruction) -> bool {
    run_script(instruction).is_none_or(|script| !script.using_program("sudo"))
}

/// DL3046: `useradd -u` with a UID longer than 5 digits, without `-l`/`--no-log-init`.
fn no_useradd_with_long_uid(instruction: &Instruction) -> bool {
    run_has_no(instruction, |cmd| {
        cmd.name == "useradd"
            && !cmd.has_any_flag(&["l", "no-log-init"])
            && cmd.has_any_flag(&["u", "uid"])
            && cmd
                .flag_values("u")
                .iter()
                .any(|uid| uid.chars().count() > 5)
    })
}

/// DL3047: `wget` without `--progress` and without a flag that quiets or redirects its output.
fn no_wget_progress_bar(instruction: &Instruction) -> bool {
    run_has_no(instruction, |cmd| {
        let quiet = cmd.has_any_flag(&[
            "q",
            "quiet",
            "o",
            "output-file",
            "a",
            "append-output",
            "no-verbose",
        ]) || cmd.has_args("wget", &["-nv"]);
        cmd.name == "wget" && !cmd.has_flag("progress") && !quiet
    })
}

/// DL4005: a `RUN` runs `ln` with `/bin/sh` as an argument (relinking the shell).
fn no_bin_sh_link(instruction: &Instruction) -> bool {
    run_has_no(instruction, |cmd| cmd.has_args("ln", &["/bin/sh"]))
}

/// DL3010: an archive copied with `COPY` (no `--from`) is extracted by a later `RUN` of the same
/// stage with `tar -x`/`unzip`/`gunzip`/…; reported at the `COPY`, once per archive name.
#[derive(Default)]
struct ExtractedArchives {
    /// `(COPY line, archive file name)` copied in this stage.
    copied: BTreeSet<(u32, String)>,
    /// Those of `copied` a `RUN` extracted.
    extracted: BTreeSet<(u32, String)>,
}

/// Archive file name extensions (hadolint's `archiveFileFormatExtensions`).
pub(super) const ARCHIVE_EXTENSIONS: [&str; 15] = [
    ".tar", ".Z", ".bz2", ".gz", ".lz", ".lzma", ".tZ", ".tb2", ".tbz", ".tbz2", ".tgz", ".tlz",
    ".tpz", ".txz", ".xz",
];

/// Whether `path` (quotes aside) ends with an archive extension.
pub(super) fn is_archive(path: &str) -> bool {
    let path = drop_quotes(path);
    ARCHIVE_EXTENSIONS.iter().any(|ext| path.ends_with(ext))
}

/// The last component of a path, quotes removed (`/` and `\` both separate).
fn basename(path: &str) -> &str {
    let path = drop_quotes(path);
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// Whether the command extracts archives: `tar` with `-…x…`, `--extract` or `--get`, or one of
/// the decompressors.
fn is_extract_command(cmd: &Command) -> bool {
    const DECOMPRESSORS: [&str; 9] = [
        "unzip",
        "gunzip",
        "bunzip2",
        "unlzma",
        "unxz",
        "zgz",
        "uncompress",
        "zcat",
        "gzcat",
    ];
    let tar_extract = cmd.name == "tar"
        && cmd.args.iter().any(|arg| {
            arg == "--extract" || arg == "--get" || (arg.starts_with('-') && arg.contains('x'))
        });
    tar_extract || DECOMPRESSORS.contains(&cmd.name.as_str())
}

impl Rule for ExtractedArchives {
    fn check(&mut self, line: u32, instruction: &Instruction, _out: &mut Vec<Failure>) {
        match instruction {
            Instruction::From(_) => {
                self.copied.clear();
                self.extracted.clear();
            }
            Instruction::Copy(copy) if copy.from.is_none() => {
                if is_archive(&copy.dest) {
                    self.copied.insert((line, basename(&copy.dest).to_string()));
                } else {
                    self.copied.extend(
                        copy.sources
                            .iter()
                            .map(|source| basename(source))
                            .filter(|name| is_archive(name))
                            .map(|name| (line, name.to_string())),
                    );
                }
            }
            Instruction::Run(run) => {
                let extractors: Vec<&Command> = run
                    .arguments
                    .script
                    .commands
                    .iter()
                    .filter(|cmd| is_extract_command(cmd))
                    .collect();
                for archive in &self.copied {
                    let extracted = extractors.iter().any(|cmd| {
                        cmd.args_no_flags()
                            .iter()
                            .any(|arg| basename(arg) == archive.1)
                    });
                    if extracted {
                        self.extracted.insert(archive.clone());
                    }
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, out: &mut Vec<Failure>) {
        out.extend(self.extracted.iter().map(|(line, _)| DL3010.at(*line)));
    }
}

/// DL3059: a `RUN` right after another `RUN` (comments between are fine) with the same flags,
/// when both run a single command (chained commands suggest the split is deliberate).
#[derive(Default)]
struct ConsecutiveRuns {
    /// The flags and command count of the previous `RUN`, when the previous instruction was one.
    previous: Option<(RunFlags, usize)>,
}

/// The `RUN` flags as hadolint compares them: the set of mounts, the network and the security mode.
#[derive(PartialEq, Eq)]
struct RunFlags {
    mounts: BTreeSet<Vec<(String, String)>>,
    network: Option<String>,
    security: Option<String>,
}

impl RunFlags {
    fn of(run: &RunArgs) -> RunFlags {
        RunFlags {
            mounts: run.mounts.iter().map(mount_options).collect(),
            network: run.network.clone(),
            security: run.security.clone(),
        }
    }
}

/// A mount's options, normalised so that the same mount written differently compares equal:
/// sorted, quotes removed, `dst`/`destination` read as `target`, and the type always present.
fn mount_options(mount: &RunMount) -> Vec<(String, String)> {
    let mut options: Vec<(String, String)> = mount
        .raw
        .split(',')
        .map(|item| {
            let (key, value) = item.split_once('=').unwrap_or((item, ""));
            let key = match key {
                "dst" | "destination" => "target",
                "type" => return ("type".to_string(), mount.kind.clone()),
                other => other,
            };
            (key.to_string(), drop_quotes(value).to_string())
        })
        .collect();
    if !options.iter().any(|(key, _)| key == "type") {
        options.push(("type".to_string(), mount.kind.clone()));
    }
    options.sort();
    options
}

impl Rule for ConsecutiveRuns {
    fn check(&mut self, line: u32, instruction: &Instruction, out: &mut Vec<Failure>) {
        match instruction {
            Instruction::Run(run) => {
                let flags = RunFlags::of(run);
                let count = run.arguments.script.commands.len();
                // hadolint counts each command twice and allows more than 2, i.e. more than one.
                let repeated = match &self.previous {
                    Some((previous_flags, previous_count)) => {
                        *previous_flags == flags && count <= 1 && *previous_count <= 1
                    }
                    None => false,
                };
                if repeated {
                    out.push(DL3059.at(line));
                } else {
                    self.previous = Some((flags, count));
                }
            }
            Instruction::Comment(_) => {}
            _ => self.previous = None,
        }
    }
}

/// DL4001: both `wget` and `curl` are used in the same stage; reported at each `RUN` using either
/// once both have been seen.
#[derive(Default)]
struct WgetAndCurl {
    /// Which of `curl`, `wget` the stage has used so far.
    seen: BTreeSet<&'static str>,
}

impl Rule for WgetAndCurl {
    fn check(&mut self, line: u32, instruction: &Instruction, out: &mut Vec<Failure>) {
        match instruction {
            Instruction::From(_) => self.seen.clear(),
            Instruction::Run(run) => {
                let used: BTreeSet<&'static str> = run
                    .arguments
                    .script
                    .command_names()
                    .filter_map(|name| match name {
                        "curl" => Some("curl"),
                        "wget" => Some("wget"),
                        _ => None,
                    })
                    .collect();
                self.seen.extend(&used);
                if !used.is_empty() && self.seen.len() >= 2 {
                    out.push(DL4001.at(line));
                }
            }
            _ => {}
        }
    }
}

/// DL4006: a `RUN` with a pipe while the stage's `SHELL` does not set `-o pipefail` (a non-POSIX
/// `SHELL` such as PowerShell or cmd turns the check off for the stage).
#[derive(Default)]
struct PipefailBeforePipes {
    /// Whether the `SHELL` in effect makes pipes safe (or is not a POSIX shell).
    safe: bool,
}

/// Whether a `SHELL` command line is a POSIX shell started with `-o pipefail`.
fn sets_pipefail(script: &Script) -> bool {
    const SHELLS: [&str; 6] = ["/bin/bash", "/bin/zsh", "/bin/ash", "bash", "zsh", "ash"];
    script.any_command(|cmd| {
        SHELLS.contains(&cmd.name.as_str()) && cmd.has_flag("o") && cmd.has_arg("pipefail")
    })
}

impl Rule for PipefailBeforePipes {
    fn check(&mut self, line: u32, instruction: &Instruction, out: &mut Vec<Failure>) {
        match instruction {
            Instruction::From(_) => self.safe = false,
            Instruction::Shell(arguments) => {
                const NON_POSIX: [&str; 3] = ["pwsh", "powershell", "cmd"];
                let text = arguments.text();
                self.safe = NON_POSIX.iter().any(|shell| text.starts_with(shell))
                    || sets_pipefail(&arguments.script);
            }
            Instruction::Run(run) if !self.safe && run.arguments.script.has_pipes => {
                out.push(DL4006.at(line));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::assert_lines;

    #[test]
    fn dl3001_pointless_commands() {
        assert_lines("DL3001", "FROM a:1\nRUN top\n", &[2]);
        assert_lines("DL3001", "FROM a:1\nRUN apt-get install -y ssh\n", &[]);
        assert_lines(
            "DL3001",
            "FROM a:1\nRUN service nginx start && ps aux\n",
            &[2],
        );
        assert_lines("DL3001", "FROM a:1\nONBUILD RUN vim x\n", &[2]);
        assert_lines("DL3001", "FROM a:1\nRUN ifconfig\n", &[]);
    }

    #[test]
    fn dl3003_cd() {
        assert_lines(
            "DL3003",
            "FROM a:1\nRUN cd /usr/src/app && git pull\n",
            &[2],
        );
        assert_lines("DL3003", "FROM a:1\nRUN git pull\n", &[]);
        assert_lines("DL3003", "FROM a:1\nRUN (cd /x && make)\n", &[2]);
        assert_lines("DL3003", "FROM a:1\nRUN echo cd\n", &[]);
        // Not applied inside ONBUILD.
        assert_lines("DL3003", "FROM a:1\nONBUILD RUN cd /x\n", &[]);
    }

    #[test]
    fn dl3004_sudo() {
        assert_lines("DL3004", "FROM a:1\nRUN sudo apt-get update\n", &[2]);
        assert_lines("DL3004", "FROM a:1\nRUN apt-get install sudo\n", &[]);
        assert_lines("DL3004", "FROM a:1\nONBUILD RUN sudo x\n", &[2]);
    }

    #[test]
    fn dl3010_extracted_archives() {
        let text = "FROM a:1\nCOPY app.tar.gz /tmp/\nRUN tar -xzf /tmp/app.tar.gz\n";
        assert_lines("DL3010", text, &[2]);
        let text = "FROM a:1\nCOPY app.tar.gz /tmp/\nRUN tar -czf out.tgz /tmp\n";
        assert_lines("DL3010", text, &[]);
        let text = "FROM a:1\nCOPY x.zip /tmp/\nRUN unzip /tmp/x.zip\n";
        assert_lines("DL3010", text, &[]);
        let text =
            "FROM a:1\nCOPY x.tar.xz y.gz /tmp/\nRUN unxz y.gz && tar --extract -f x.tar.xz\n";
        assert_lines("DL3010", text, &[2, 2]);
        // The target name counts when it is an archive.
        let text = "FROM a:1\nCOPY src /tmp/a.tgz\nRUN tar xf a.tgz && gunzip /tmp/a.tgz\n";
        assert_lines("DL3010", text, &[2]);
        // A new stage forgets the archives; COPY --from is not a local archive.
        let text = "FROM a:1\nCOPY a.tgz /\nFROM b:1\nRUN tar -xf a.tgz\n";
        assert_lines("DL3010", text, &[]);
        let text = "FROM a:1\nCOPY --from=b a.tgz /\nRUN tar -xf a.tgz\n";
        assert_lines("DL3010", text, &[]);
        // Windows paths (COPY splits at blanks even inside quotes, as hadolint does).
        let text = "FROM a:1\nCOPY build\\foo\\bar.tar.gz \"C:\\Program Files\\Foo\"\nRUN tar -xf \"C:\\Program Files\\Foo\\bar.tar.gz\"\n";
        assert_lines("DL3010", text, &[2]);
        let text = "FROM a:1\nCOPY build\\bar.tar.gz \"C:\\Program Files\\foo.tar.gz\"\nRUN tar -xf foo.tar.gz\n";
        assert_lines("DL3010", text, &[2]);
    }

    #[test]
    fn dl3046_useradd_long_uid() {
        assert_lines("DL3046", "FROM a:1\nRUN useradd -u 123456 luser\n", &[2]);
        assert_lines("DL3046", "FROM a:1\nRUN useradd -l -u 123456 luser\n", &[]);
        assert_lines(
            "DL3046",
            "FROM a:1\nRUN useradd --no-log-init -u 123456 luser\n",
            &[],
        );
        assert_lines("DL3046", "FROM a:1\nRUN useradd -u 12345 luser\n", &[]);
        assert_lines("DL3046", "FROM a:1\nRUN useradd luser\n", &[]);
        assert_lines(
            "DL3046",
            "FROM a:1\nONBUILD RUN useradd -u 123456 x\n",
            &[2],
        );
    }

    #[test]
    fn dl3047_wget_progress() {
        assert_lines("DL3047", "FROM a:1\nRUN wget http://x/y\n", &[2]);
        for ok in [
            "wget --progress=dot:giga http://x/y",
            "wget -q http://x/y",
            "wget --quiet http://x/y",
            "wget -nv http://x/y",
            "wget --no-verbose http://x/y",
            "wget -O out -o log http://x/y",
            "wget --output-file=log http://x/y",
            "wget -a log http://x/y",
            "wget -qO- http://x/y",
            "curl http://x/y",
        ] {
            assert_lines("DL3047", &format!("FROM a:1\nRUN {ok}\n"), &[]);
        }
        assert_lines("DL3047", "FROM a:1\nONBUILD RUN wget x\n", &[2]);
    }

    #[test]
    fn dl3059_consecutive_runs() {
        assert_lines("DL3059", "FROM a:1\nRUN /foo.sh\nRUN /bar.sh\n", &[3]);
        assert_lines(
            "DL3059",
            "FROM a:1\nRUN /foo.sh\nWORKDIR /\nRUN /bar.sh\n",
            &[],
        );
        assert_lines(
            "DL3059",
            "FROM a:1\nRUN /foo.sh\n# c\n# d\nRUN /bar.sh\n",
            &[5],
        );
        assert_lines("DL3059", "# c\nFROM a:1\nRUN /foo.sh\n", &[]);
        let text = "FROM a:1\nRUN --mount=type=secret,id=foo /foo.sh\nRUN /bar.sh\n";
        assert_lines("DL3059", text, &[]);
        let text = "FROM a:1\nRUN --mount=type=secret,id=foo a\nRUN --mount=type=secret,id=bar b\n";
        assert_lines("DL3059", text, &[]);
        let text = "FROM a:1\nRUN --mount=type=secret,id=foo a\nRUN --mount=type=secret,id=foo b\n";
        assert_lines("DL3059", text, &[3]);
        let text =
            "FROM a:1\nRUN --mount=type=cache,target=/c a\nRUN --mount=target=/c,type=cache b\n";
        assert_lines("DL3059", text, &[3]);
        assert_lines("DL3059", "FROM a:1\nRUN foo && bar\nRUN foobar\n", &[]);
        assert_lines("DL3059", "FROM a:1\nRUN foobar\nRUN foo; bar\n", &[]);
        assert_lines(
            "DL3059",
            "FROM a:1\nRUN foo && bar\nRUN foo\nRUN bar\n",
            &[4],
        );
        assert_lines("DL3059", "FROM a:1\nRUN a\nRUN b\nRUN c\n", &[3, 4]);
        assert_lines("DL3059", "FROM a:1\nRUN a\nFROM b:1\nRUN b\n", &[]);
    }

    #[test]
    fn dl4001_wget_and_curl() {
        let text = "FROM a:1\nRUN wget x\nRUN curl y\nRUN ls\nRUN wget z\n";
        assert_lines("DL4001", text, &[3, 5]);
        assert_lines("DL4001", "FROM a:1\nRUN wget x && curl y\n", &[2]);
        assert_lines(
            "DL4001",
            "FROM a:1\nRUN wget x\nFROM b:1\nRUN curl y\n",
            &[],
        );
        assert_lines("DL4001", "FROM a:1\nRUN curl x\nRUN curl y\n", &[]);
        assert_lines(
            "DL4001",
            "FROM a:1\nONBUILD RUN wget x\nONBUILD RUN curl y\n",
            &[3],
        );
    }

    #[test]
    fn dl4005_bin_sh_link() {
        assert_lines("DL4005", "FROM a:1\nRUN ln -sfv /bin/bash /bin/sh\n", &[2]);
        assert_lines(
            "DL4005",
            "FROM a:1\nRUN ln -sf /bin/true /sbin/initctl\n",
            &[],
        );
        assert_lines(
            "DL4005",
            "FROM a:1\nONBUILD RUN ln -s /bin/bash /bin/sh\n",
            &[2],
        );
    }

    #[test]
    fn dl4006_pipefail() {
        assert_lines("DL4006", "FROM a:1\nRUN wget -O - x | tar xz\n", &[2]);
        assert_lines("DL4006", "FROM a:1\nRUN a || b\n", &[]);
        let text = "FROM a:1\nSHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\nRUN a | b\n";
        assert_lines("DL4006", text, &[]);
        let text = "FROM a:1\nSHELL [\"/bin/ash\", \"-eo\", \"pipefail\", \"-c\"]\nRUN a | b\n";
        assert_lines("DL4006", text, &[]);
        let text = "FROM a:1\nSHELL [\"/bin/sh\", \"-o\", \"pipefail\", \"-c\"]\nRUN a | b\n";
        assert_lines("DL4006", text, &[3]);
        let text = "FROM a:1\nSHELL [\"pwsh\", \"-c\"]\nRUN a | b\n";
        assert_lines("DL4006", text, &[]);
        let text = "FROM a:1\nSHELL [\"cmd\", \"/S\", \"/C\"]\nRUN a | b\n";
        assert_lines("DL4006", text, &[]);
        // Each stage starts again with the default shell.
        let text =
            "FROM a:1\nSHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\nFROM b:1\nRUN a | b\n";
        assert_lines("DL4006", text, &[4]);
        // A later SHELL without pipefail turns the check back on.
        let text = "FROM a:1\nSHELL [\"bash\", \"-o\", \"pipefail\", \"-c\"]\nSHELL [\"sh\", \"-c\"]\nRUN a | b\n";
        assert_lines("DL4006", text, &[4]);
        assert_lines("DL4006", "FROM a:1\nRUN echo $(a | b)\n", &[2]);
    }
}

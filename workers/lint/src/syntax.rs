//! The Dockerfile syntax tree: instructions with their exact positions, as the parser produces them.

use crate::shell::Script;

/// A parsed Dockerfile: its instructions in source order.
#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    /// Every instruction, comment and parser directive, in source order.
    pub instructions: Vec<Located>,
    /// The escape character in effect (`\` unless a `# escape=` directive says otherwise).
    pub escape: char,
}

/// An instruction with the position of its first character.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    /// 1-based line of the instruction keyword (or of the `#` of a comment).
    pub line: u32,
    /// 1-based column (in characters) of the instruction keyword.
    pub column: u32,
    /// 1-based line of the instruction's last character (after line continuations and heredocs).
    pub end_line: u32,
    /// What the instruction says.
    pub instruction: Instruction,
}

/// One Dockerfile instruction.
#[derive(Debug, Clone, PartialEq)]
pub enum Instruction {
    /// `FROM [--platform=P] image[:tag][@digest] [AS alias]`
    From(BaseImage),
    /// `ADD [flags] src... dest`
    Add(AddArgs),
    /// `COPY [flags] src... dest` (or heredoc sources)
    Copy(CopyArgs),
    /// `RUN [flags] command`
    Run(RunArgs),
    /// `CMD command`
    Cmd(Arguments),
    /// `SHELL ["executable", "params"]`
    Shell(Arguments),
    /// `ENTRYPOINT command`
    Entrypoint(Arguments),
    /// `USER user[:group]`
    User(String),
    /// `LABEL key=value ...`
    Label(Vec<(String, String)>),
    /// `ENV key=value ...` (or the legacy `ENV key value`)
    Env(Vec<(String, String)>),
    /// `ARG name[=default]`
    Arg {
        /// The argument's name.
        name: String,
        /// Its default value, if one is given.
        default: Option<String>,
    },
    /// `STOPSIGNAL signal`
    StopSignal(String),
    /// `WORKDIR path`
    Workdir(String),
    /// `EXPOSE port[/proto] ...`
    Expose(Vec<PortSpec>),
    /// `VOLUME path...` or `VOLUME ["path", ...]` (kept as written)
    Volume(String),
    /// `MAINTAINER name` (deprecated)
    Maintainer(String),
    /// `HEALTHCHECK NONE` (`None`) or `HEALTHCHECK [flags] CMD command`
    Healthcheck(Option<HealthcheckArgs>),
    /// `ONBUILD instruction`
    OnBuild(Box<Instruction>),
    /// A `# escape=` or `# syntax=` parser directive.
    Pragma(Pragma),
    /// A comment line; the text after `#`.
    Comment(String),
}

impl Instruction {
    /// The instruction keyword in upper case (`"COMMENT"`/`"PRAGMA"` for those lines).
    pub fn keyword(&self) -> &'static str {
        match self {
            Instruction::From(_) => "FROM",
            Instruction::Add(_) => "ADD",
            Instruction::Copy(_) => "COPY",
            Instruction::Run(_) => "RUN",
            Instruction::Cmd(_) => "CMD",
            Instruction::Shell(_) => "SHELL",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::User(_) => "USER",
            Instruction::Label(_) => "LABEL",
            Instruction::Env(_) => "ENV",
            Instruction::Arg { .. } => "ARG",
            Instruction::StopSignal(_) => "STOPSIGNAL",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::Volume(_) => "VOLUME",
            Instruction::Maintainer(_) => "MAINTAINER",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
            Instruction::OnBuild(_) => "ONBUILD",
            Instruction::Pragma(_) => "PRAGMA",
            Instruction::Comment(_) => "COMMENT",
        }
    }
}

/// A parser directive.
#[derive(Debug, Clone, PartialEq)]
pub enum Pragma {
    /// `# escape=c`
    Escape(char),
    /// `# syntax=image`
    Syntax(String),
}

/// The image a stage starts from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BaseImage {
    /// The registry host, when the first path component names one (`quay.io/x` → `quay.io`).
    pub registry: Option<String>,
    /// The image name without registry, tag or digest.
    pub name: String,
    /// The tag after `:`, if any.
    pub tag: Option<String>,
    /// The digest after `@`, if any.
    pub digest: Option<String>,
    /// The stage name after `AS`, if any.
    pub alias: Option<String>,
    /// The `--platform` value, if any.
    pub platform: Option<String>,
}

/// How a command is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgumentsForm {
    /// `RUN apt-get update` — run by the shell.
    Shell,
    /// `RUN ["executable", "arg"]` — JSON array, no shell.
    Exec,
    /// `RUN <<EOF` … `EOF` — a heredoc body run by the shell.
    Heredoc,
}

/// The command of a `RUN`, `CMD`, `ENTRYPOINT`, `SHELL` or `HEALTHCHECK CMD`.
#[derive(Debug, Clone, PartialEq)]
pub struct Arguments {
    /// How it was written.
    pub form: ArgumentsForm,
    /// The exec-form words (empty for the shell and heredoc forms).
    pub list: Vec<String>,
    /// The command text as the shell would see it (exec-form words joined by spaces).
    pub script: Script,
}

impl Arguments {
    /// The command text (continuations joined).
    pub fn text(&self) -> &str {
        &self.script.source
    }
}

/// `RUN` flags and command.
#[derive(Debug, Clone, PartialEq)]
pub struct RunArgs {
    /// The `--mount=` flags in order.
    pub mounts: Vec<RunMount>,
    /// The `--network=` value, if given.
    pub network: Option<String>,
    /// The `--security=` value, if given.
    pub security: Option<String>,
    /// The command.
    pub arguments: Arguments,
}

/// One `RUN --mount=` flag.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RunMount {
    /// `bind` (the default), `cache`, `tmpfs`, `secret` or `ssh`.
    pub kind: String,
    /// The `target=`/`dst=`/`destination=` value, if given.
    pub target: Option<String>,
    /// The whole flag value as written (`type=cache,target=/root/.cache`).
    pub raw: String,
}

/// `COPY` flags and paths.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CopyArgs {
    /// Source paths (or heredoc markers).
    pub sources: Vec<String>,
    /// Destination path.
    pub dest: String,
    /// `--from=` stage, image or context.
    pub from: Option<String>,
    /// `--chown=` value.
    pub chown: Option<String>,
    /// `--chmod=` value.
    pub chmod: Option<String>,
    /// `--link` given (and not `=false`).
    pub link: bool,
    /// `--parents` given.
    pub parents: bool,
    /// `--exclude=` patterns.
    pub exclude: Vec<String>,
}

/// `ADD` flags and paths.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AddArgs {
    /// Source paths or URLs.
    pub sources: Vec<String>,
    /// Destination path.
    pub dest: String,
    /// `--checksum=` value.
    pub checksum: Option<String>,
    /// `--chown=` value.
    pub chown: Option<String>,
    /// `--chmod=` value.
    pub chmod: Option<String>,
    /// `--link` given.
    pub link: bool,
    /// `--keep-git-dir` given.
    pub keep_git_dir: bool,
    /// `--unpack` value, if given.
    pub unpack: Option<bool>,
    /// `--exclude=` patterns.
    pub exclude: Vec<String>,
}

/// One `EXPOSE` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSpec {
    /// A port number with its protocol (`tcp` unless given).
    Port {
        /// The number as written (may exceed 65535: the rules judge that).
        number: u64,
        /// `tcp` or `udp`.
        protocol: String,
    },
    /// A port range `start-end[/proto]`.
    Range {
        /// First port.
        start: u64,
        /// Last port.
        end: u64,
        /// `tcp` or `udp`.
        protocol: String,
    },
    /// A variable reference such as `$PORT` or `${PORT}/udp`, kept as written.
    Variable(String),
}

/// `HEALTHCHECK` options and command.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthcheckArgs {
    /// `--interval=`, `--timeout=`, `--start-period=`, `--start-interval=`, `--retries=` as written.
    pub flags: Vec<(String, String)>,
    /// The command after `CMD`.
    pub command: Arguments,
}

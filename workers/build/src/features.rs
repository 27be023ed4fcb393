//! Which builder a Dockerfile needs, and whether this node's Docker daemon has it: the
//! BuildKit-only syntax a Dockerfile uses ([`required_features`]), what a daemon's built-in
//! Dockerfile frontend parses ([`DaemonBuilder::of_engine_version`]), and the choice of builder
//! for a job ([`choose_builder`]) — a Dockerfile asking for more than the daemon offers fails at
//! once, naming the feature and its line, instead of failing in the daemon with a parse error.
//!
//! Dockerfile frontend versions per Docker Engine release (the BuildKit each release vendors):
//!
//! | Engine | built-in frontend | adds |
//! |---|---|---|
//! | 18.09 – 20.10 | 1.2 | `RUN --mount` (cache, secret, ssh, bind, tmpfs), `COPY/ADD --chmod` |
//! | 23.0 | 1.4 | heredocs, `COPY/ADD --link`, `RUN --network` |
//! | 24.0 | 1.5 | `ADD --keep-git-dir` |
//! | 25.0 | 1.6 | `ADD --checksum` |
//! | 26.0 and later | 1.7 | — |
//!
//! Labs-only syntax (`RUN --security`, `COPY --parents`, `--exclude`) needs a labs frontend
//! image, which offline builds cannot pull: it is always refused. A `# syntax=` directive asks
//! the daemon to pull a frontend image, which offline builds cannot do either: when it names
//! Docker's own frontend (`docker/dockerfile`) and the built-in frontend parses every feature the
//! file uses, the directive is neutralised ([`neutralise_syntax_directive`]) and the built-in
//! frontend builds it; any other frontend image is refused.

use slipway_lint::parser;
use slipway_lint::syntax::{Instruction, Pragma};

/// A frontend version, `(major, minor)`.
pub type FrontendVersion = (u32, u32);

/// Syntax only BuildKit parses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feature {
    /// `RUN --mount=type=…`.
    RunMount(String),
    /// `RUN --network=…`.
    RunNetwork,
    /// `RUN --security=…` (labs).
    RunSecurity,
    /// A heredoc (`RUN <<EOF`, `COPY <<EOF dest`).
    Heredoc(&'static str),
    /// `COPY --link` / `ADD --link`.
    Link(&'static str),
    /// `COPY --chmod` / `ADD --chmod`.
    Chmod(&'static str),
    /// `COPY --parents` (labs).
    Parents,
    /// `COPY --exclude` / `ADD --exclude` (labs).
    Exclude(&'static str),
    /// `ADD --checksum`.
    AddChecksum,
    /// `ADD --keep-git-dir`.
    AddKeepGitDir,
    /// A `# syntax=` directive naming a frontend image.
    Syntax(String),
}

impl Feature {
    /// The feature as users write it.
    pub fn describe(&self) -> String {
        match self {
            Feature::RunMount(kind) => format!("RUN --mount=type={kind}"),
            Feature::RunNetwork => "RUN --network".to_owned(),
            Feature::RunSecurity => "RUN --security".to_owned(),
            Feature::Heredoc(keyword) => format!("a heredoc ({keyword} <<EOF)"),
            Feature::Link(keyword) => format!("{keyword} --link"),
            Feature::Chmod(keyword) => format!("{keyword} --chmod"),
            Feature::Parents => "COPY --parents".to_owned(),
            Feature::Exclude(keyword) => format!("{keyword} --exclude"),
            Feature::AddChecksum => "ADD --checksum".to_owned(),
            Feature::AddKeepGitDir => "ADD --keep-git-dir".to_owned(),
            Feature::Syntax(image) => format!("# syntax={image}"),
        }
    }

    /// The built-in frontend version that parses it; `None` for labs-only syntax and frontend
    /// images, which no built-in frontend serves.
    pub fn frontend(&self) -> Option<FrontendVersion> {
        match self {
            Feature::RunMount(_) | Feature::Chmod(_) => Some((1, 2)),
            Feature::Heredoc(_) | Feature::Link(_) | Feature::RunNetwork => Some((1, 4)),
            Feature::AddKeepGitDir => Some((1, 5)),
            Feature::AddChecksum => Some((1, 6)),
            Feature::RunSecurity | Feature::Parents | Feature::Exclude(_) | Feature::Syntax(_) => {
                None
            }
        }
    }
}

/// A feature and the line that uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    /// 1-based line.
    pub line: u32,
    /// What it uses.
    pub feature: Feature,
}

/// Every BuildKit-only feature `dockerfile` uses, in line order (`ONBUILD` bodies included: they
/// run in the child's build, but a parent built with them is made by the same builder). A file
/// that does not parse uses none: the plan reports its parse error.
pub fn required_features(dockerfile: &str) -> Vec<Use> {
    let Ok(parsed) = parser::parse(dockerfile) else {
        return Vec::new();
    };
    let mut uses = Vec::new();
    let directives = leading_directives(&parsed);
    for (position, located) in parsed.instructions.iter().enumerate() {
        let mut instruction = &located.instruction;
        while let Instruction::OnBuild(inner) = instruction {
            instruction = inner;
        }
        let mut add = |feature| {
            uses.push(Use {
                line: located.line,
                feature,
            })
        };
        match instruction {
            Instruction::Pragma(Pragma::Syntax(image)) if position < directives => {
                add(Feature::Syntax(image.clone()));
            }
            Instruction::Run(run) => {
                for mount in &run.mounts {
                    add(Feature::RunMount(mount.kind.clone()));
                }
                if run.network.is_some() {
                    add(Feature::RunNetwork);
                }
                if run.security.is_some() {
                    add(Feature::RunSecurity);
                }
                if run.arguments.form == slipway_lint::syntax::ArgumentsForm::Heredoc {
                    add(Feature::Heredoc("RUN"));
                }
            }
            Instruction::Copy(copy) => {
                if copy.sources.iter().any(|s| s.starts_with("<<")) {
                    add(Feature::Heredoc("COPY"));
                }
                if copy.link {
                    add(Feature::Link("COPY"));
                }
                if copy.chmod.is_some() {
                    add(Feature::Chmod("COPY"));
                }
                if copy.parents {
                    add(Feature::Parents);
                }
                if !copy.exclude.is_empty() {
                    add(Feature::Exclude("COPY"));
                }
            }
            Instruction::Add(add_args) => {
                if add_args.sources.iter().any(|s| s.starts_with("<<")) {
                    add(Feature::Heredoc("ADD"));
                }
                if add_args.link {
                    add(Feature::Link("ADD"));
                }
                if add_args.chmod.is_some() {
                    add(Feature::Chmod("ADD"));
                }
                if add_args.checksum.is_some() {
                    add(Feature::AddChecksum);
                }
                if add_args.keep_git_dir {
                    add(Feature::AddKeepGitDir);
                }
                if !add_args.exclude.is_empty() {
                    add(Feature::Exclude("ADD"));
                }
            }
            _ => {}
        }
    }
    uses
}

/// How many instructions at the start of `parsed` are parser directives: after the first
/// comment or instruction, a `# syntax=` line is a comment.
fn leading_directives(parsed: &slipway_lint::syntax::Dockerfile) -> usize {
    parsed
        .instructions
        .iter()
        .take_while(|l| matches!(l.instruction, Instruction::Pragma(_)))
        .count()
}

/// What a daemon can build with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonBuilder {
    /// The engine version as the daemon reports it (`20.10.24+dfsg1`).
    pub engine_version: String,
    /// Its built-in Dockerfile frontend, when it has BuildKit.
    pub frontend: Option<FrontendVersion>,
}

impl DaemonBuilder {
    /// The builder of a daemon reporting `engine_version` (see the module's table); a version
    /// that does not parse is taken as one without BuildKit.
    pub fn of_engine_version(engine_version: &str) -> DaemonBuilder {
        let mut numbers = engine_version
            .split(|c: char| !c.is_ascii_digit())
            .filter(|part| !part.is_empty())
            .map(|part| part.parse::<u32>().unwrap_or(0));
        let major = numbers.next().unwrap_or(0);
        let minor = numbers.next().unwrap_or(0);
        let frontend = match (major, minor) {
            (0..=17, _) | (18, 0..=8) => None,
            (18..=22, _) => Some((1, 2)),
            (23, _) => Some((1, 4)),
            (24, _) => Some((1, 5)),
            (25, _) => Some((1, 6)),
            _ => Some((1, 7)),
        };
        DaemonBuilder {
            engine_version: engine_version.to_owned(),
            frontend,
        }
    }
}

/// The builder a job runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builder {
    /// dockerd's classic builder.
    Classic,
    /// BuildKit, through the Engine API (`version=2`).
    BuildKit,
}

/// What to build with when the Dockerfile itself needs nothing of BuildKit (`[build] builder`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BuilderPreference {
    /// BuildKit whenever the daemon has it.
    #[default]
    Buildkit,
    /// The classic builder unless the Dockerfile needs BuildKit.
    Classic,
}

/// The builder chosen for a Dockerfile, and whether its `# syntax=` directive must be
/// neutralised for the built-in frontend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// Which builder.
    pub builder: Builder,
    /// The directive names Docker's own frontend, which the built-in one stands in for.
    pub neutralise_syntax: bool,
}

/// A Dockerfile asks for more than the daemon offers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {feature} needs {needs}; {has}")]
pub struct Unsupported {
    /// The line of the first such use.
    pub line: u32,
    /// The feature, as written.
    pub feature: String,
    /// What it needs.
    pub needs: String,
    /// What this daemon has.
    pub has: String,
}

/// Whether `image` is Docker's own Dockerfile frontend (`docker/dockerfile`, any tag, with or
/// without `docker.io/`), not a labs or third-party one.
fn is_official_frontend(image: &str) -> bool {
    let name = image
        .trim()
        .trim_start_matches("docker.io/")
        .split(['@', ':'])
        .next()
        .unwrap_or_default();
    let tag = image.trim().split_once(':').map(|(_, tag)| tag);
    name == "docker/dockerfile" && !tag.is_some_and(|t| t.contains("labs"))
}

/// Chooses the builder for a Dockerfile using `uses` on `daemon`, with `preference` when the
/// file needs nothing of BuildKit.
pub fn choose_builder(
    uses: &[Use],
    daemon: &DaemonBuilder,
    preference: BuilderPreference,
) -> Result<Choice, Unsupported> {
    let has = match daemon.frontend {
        Some((major, minor)) => format!(
            "this daemon (Docker {}) has the Dockerfile frontend {major}.{minor}",
            daemon.engine_version
        ),
        None => format!(
            "this daemon (Docker {}) has no BuildKit",
            daemon.engine_version
        ),
    };
    let unsupported = |used: &Use, needs: String| Unsupported {
        line: used.line,
        feature: used.feature.describe(),
        needs,
        has: has.clone(),
    };
    let mut neutralise_syntax = false;
    for used in uses {
        match (&used.feature, used.feature.frontend()) {
            (Feature::Syntax(image), _) => {
                if !is_official_frontend(image) {
                    return Err(unsupported(
                        used,
                        format!(
                            "the frontend image {image} pulled at build time, and builds run offline"
                        ),
                    ));
                }
                neutralise_syntax = true;
            }
            (_, None) => {
                return Err(unsupported(
                    used,
                    "a labs Dockerfile frontend image (docker/dockerfile:1-labs) pulled at build time, and builds run offline".to_owned(),
                ));
            }
            (_, Some(needed)) => {
                if daemon.frontend.is_none_or(|built_in| built_in < needed) {
                    return Err(unsupported(
                        used,
                        format!(
                            "BuildKit with the Dockerfile frontend {}.{} or newer (Docker Engine {} or newer)",
                            needed.0,
                            needed.1,
                            engine_for(needed)
                        ),
                    ));
                }
            }
        }
    }
    let needs_buildkit = uses
        .iter()
        .any(|used| !matches!(used.feature, Feature::Syntax(_)));
    let builder = match (daemon.frontend, needs_buildkit, preference) {
        // Without BuildKit only a `# syntax=` line can be left: the classic builder ignores it.
        (None, _, _) => Builder::Classic,
        (Some(_), true, _) | (Some(_), false, BuilderPreference::Buildkit) => Builder::BuildKit,
        (Some(_), false, BuilderPreference::Classic) => Builder::Classic,
    };
    Ok(Choice {
        builder,
        neutralise_syntax: neutralise_syntax && builder == Builder::BuildKit,
    })
}

/// What a session mount asks the build's BuildKit session for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionMountKind {
    /// `RUN --mount=type=secret`: a secret of the worker's.
    Secret,
    /// `RUN --mount=type=ssh`: an SSH agent of the worker's.
    Ssh,
}

/// A `RUN --mount=type=secret` or `type=ssh` of a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionMount {
    /// 1-based line of the `RUN`.
    pub line: u32,
    /// Secret or SSH agent.
    pub kind: SessionMountKind,
    /// Its id: `id=`; else, for a secret, the base name of `target=` (empty when neither is
    /// given), for an agent `default` (BuildKit's rules).
    pub id: String,
    /// `required` / `required=true`: the build fails when the session does not serve it.
    pub required: bool,
}

/// Every secret and SSH mount of `dockerfile` (`ONBUILD` bodies included), in line order; none
/// for a file that does not parse.
pub fn session_mounts(dockerfile: &str) -> Vec<SessionMount> {
    let Ok(parsed) = parser::parse(dockerfile) else {
        return Vec::new();
    };
    let mut mounts = Vec::new();
    for located in &parsed.instructions {
        let mut instruction = &located.instruction;
        while let Instruction::OnBuild(inner) = instruction {
            instruction = inner;
        }
        let Instruction::Run(run) = instruction else {
            continue;
        };
        for mount in &run.mounts {
            let kind = match mount.kind.as_str() {
                "secret" => SessionMountKind::Secret,
                "ssh" => SessionMountKind::Ssh,
                _ => continue,
            };
            let mut id = None;
            let mut required = false;
            for option in mount.raw.split(',') {
                let (key, value) = option
                    .split_once('=')
                    .map_or((option, None), |(k, v)| (k, Some(v)));
                match key.trim().to_ascii_lowercase().as_str() {
                    "id" => id = value.map(|v| v.trim().to_owned()),
                    "required" => {
                        required = value.is_none_or(|v| v.trim().eq_ignore_ascii_case("true"))
                    }
                    _ => {}
                }
            }
            let id = id
                .filter(|id| !id.is_empty())
                .unwrap_or_else(|| match kind {
                    SessionMountKind::Secret => mount
                        .target
                        .as_deref()
                        .and_then(|target| target.trim_end_matches('/').rsplit('/').next())
                        .unwrap_or_default()
                        .to_owned(),
                    SessionMountKind::Ssh => slipway_docker::DEFAULT_AGENT_ID.to_owned(),
                });
            mounts.push(SessionMount {
                line: located.line,
                kind,
                id,
                required,
            });
        }
    }
    mounts
}

/// The first Docker Engine release with the built-in frontend `version`.
fn engine_for(version: FrontendVersion) -> &'static str {
    match version {
        (1, 0..=2) => "18.09",
        (1, 3..=4) => "23.0",
        (1, 5) => "24.0",
        (1, 6) => "25.0",
        _ => "26.0",
    }
}

/// `dockerfile` with each `# syntax=` directive line turned into a bare `#` comment (same line
/// count, so that the daemon's line numbers stay the file's).
pub fn neutralise_syntax_directive(dockerfile: &str) -> String {
    let Ok(parsed) = parser::parse(dockerfile) else {
        return dockerfile.to_owned();
    };
    let lines: Vec<u32> = parsed.instructions[..leading_directives(&parsed)]
        .iter()
        .filter(|l| matches!(l.instruction, Instruction::Pragma(Pragma::Syntax(_))))
        .map(|l| l.line)
        .collect();
    dockerfile
        .split_inclusive('\n')
        .enumerate()
        .map(|(index, line)| {
            let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
            if lines.contains(&number) {
                if line.ends_with('\n') { "#\n" } else { "#" }
            } else {
                line
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(text: &str) -> Vec<(u32, String)> {
        required_features(text)
            .into_iter()
            .map(|u| (u.line, u.feature.describe()))
            .collect()
    }

    const DOCKER_20: &str = "20.10.24+dfsg1";

    #[test]
    fn buildkit_only_syntax_is_found_with_its_line() {
        let text = "# syntax=docker/dockerfile:1\nFROM debian\nRUN --mount=type=cache,target=/root/.cache --network=none make\nCOPY --link --chmod=755 a /a\nRUN <<EOF\necho hi\nEOF\nCOPY <<EOT /etc/x\nhello\nEOT\nADD --checksum=sha256:ab https://x/y /y\nONBUILD RUN --mount=type=secret,id=t cat /run/secrets/t\nRUN plain\n";
        assert_eq!(
            features(text),
            [
                (1, "# syntax=docker/dockerfile:1".to_owned()),
                (3, "RUN --mount=type=cache".to_owned()),
                (3, "RUN --network".to_owned()),
                (4, "COPY --link".to_owned()),
                (4, "COPY --chmod".to_owned()),
                (5, "a heredoc (RUN <<EOF)".to_owned()),
                (8, "a heredoc (COPY <<EOF)".to_owned()),
                (11, "ADD --checksum".to_owned()),
                (12, "RUN --mount=type=secret".to_owned()),
            ]
        );
        assert!(features("FROM debian\nRUN make\nCOPY a /a\n").is_empty());
    }

    #[test]
    fn engine_versions_map_to_their_built_in_frontends() {
        let frontend = |v| DaemonBuilder::of_engine_version(v).frontend;
        assert_eq!(frontend("17.06.2-ce"), None);
        assert_eq!(frontend("18.06.1"), None);
        assert_eq!(frontend("18.09.0"), Some((1, 2)));
        assert_eq!(frontend(DOCKER_20), Some((1, 2)));
        assert_eq!(frontend("23.0.6"), Some((1, 4)));
        assert_eq!(frontend("26.1.5+dfsg1"), Some((1, 7)));
        assert_eq!(frontend("28.2.2"), Some((1, 7)));
        assert_eq!(frontend("garbage"), None);
    }

    #[test]
    fn a_feature_the_daemon_lacks_fails_naming_it_and_the_versions() {
        let docker20 = DaemonBuilder::of_engine_version(DOCKER_20);
        let uses = required_features(
            "FROM debian\nRUN --mount=type=cache,target=/c make\nRUN <<EOF\necho\nEOF\n",
        );
        let error = choose_builder(&uses, &docker20, BuilderPreference::Buildkit).unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 3: a heredoc (RUN <<EOF) needs BuildKit with the Dockerfile frontend 1.4 or newer (Docker Engine 23.0 or newer); this daemon (Docker 20.10.24+dfsg1) has the Dockerfile frontend 1.2"
        );
        let docker26 = DaemonBuilder::of_engine_version("26.1.5");
        assert_eq!(
            choose_builder(&uses, &docker26, BuilderPreference::Classic),
            Ok(Choice {
                builder: Builder::BuildKit,
                neutralise_syntax: false
            }),
            "a file needing BuildKit gets it whatever the preference"
        );
        let old = DaemonBuilder::of_engine_version("18.06.0");
        let error = choose_builder(&uses[..1], &old, BuilderPreference::Buildkit).unwrap_err();
        assert!(error.to_string().ends_with("has no BuildKit"), "{error}");
    }

    #[test]
    fn labs_syntax_and_foreign_frontends_are_refused_and_dockers_own_is_neutralised() {
        let docker26 = DaemonBuilder::of_engine_version("26.1.5");
        let labs = required_features("FROM debian\nCOPY --parents a/b /x\n");
        let error = choose_builder(&labs, &docker26, BuilderPreference::Buildkit).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("line 2: COPY --parents needs a labs"),
            "{error}"
        );
        let foreign = required_features("# syntax=example.org/frontend:2\nFROM debian\n");
        let error = choose_builder(&foreign, &docker26, BuilderPreference::Buildkit).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("frontend image example.org/frontend:2"),
            "{error}"
        );
        let labs_frontend = required_features("# syntax=docker/dockerfile:1-labs\nFROM debian\n");
        assert!(choose_builder(&labs_frontend, &docker26, BuilderPreference::Buildkit).is_err());

        let official = required_features(
            "# syntax=docker/dockerfile:1.4\nFROM debian\nRUN --mount=type=cache,target=/c make\n",
        );
        let docker20 = DaemonBuilder::of_engine_version(DOCKER_20);
        assert_eq!(
            choose_builder(&official, &docker20, BuilderPreference::Classic),
            Ok(Choice {
                builder: Builder::BuildKit,
                neutralise_syntax: true
            })
        );
        assert_eq!(
            neutralise_syntax_directive(
                "# syntax=docker/dockerfile:1.4\nFROM debian\n# syntax=not-a-directive-here\n"
            ),
            "#\nFROM debian\n# syntax=not-a-directive-here\n"
        );
    }

    #[test]
    fn secret_and_ssh_mounts_need_buildkit() {
        let docker26 = DaemonBuilder::of_engine_version("26.1.5");
        let docker20 = DaemonBuilder::of_engine_version(DOCKER_20);
        for dockerfile in [
            "FROM debian\nRUN --mount=type=secret,id=token,required=false cat /run/secrets/token\n",
            "FROM debian\nRUN --mount=type=ssh git clone git@h:r\n",
        ] {
            let uses = required_features(dockerfile);
            for daemon in [&docker20, &docker26] {
                let choice = choose_builder(&uses, daemon, BuilderPreference::Classic).unwrap();
                assert_eq!(choice.builder, Builder::BuildKit, "{daemon:?} {dockerfile}");
            }
        }
    }

    #[test]
    fn session_mounts_are_read_with_their_kind_id_and_whether_they_are_required() {
        let mounts = session_mounts(
            "FROM debian\n\
             RUN --mount=type=secret,id=npmrc,required cat /run/secrets/npmrc\n\
             RUN --mount=type=secret,target=/root/.pip/pip.conf,required=true pip install x \\\n  && true\n\
             RUN --mount=type=secret,id=opt,required=false --mount=type=cache,target=/c true\n\
             ONBUILD RUN --mount=type=secret,id=later true\n\
             RUN --mount=type=secret true\n\
             RUN --mount=type=ssh,required git clone git@h:r\n\
             RUN --mount=type=ssh,id=deploy,target=/agent true\n",
        );
        use SessionMountKind::{Secret, Ssh};
        let found: Vec<(u32, SessionMountKind, &str, bool)> = mounts
            .iter()
            .map(|m| (m.line, m.kind, m.id.as_str(), m.required))
            .collect();
        assert_eq!(
            found,
            vec![
                (2, Secret, "npmrc", true),
                (3, Secret, "pip.conf", true),
                (5, Secret, "opt", false),
                (6, Secret, "later", false),
                (7, Secret, "", false),
                (8, Ssh, "default", true),
                (9, Ssh, "deploy", false),
            ]
        );
        assert!(session_mounts("FROM debian\nRUN <<EOF\nunterminated\n").is_empty());
    }

    #[test]
    fn without_buildkit_syntax_the_preference_decides() {
        let plain = required_features("FROM debian\nRUN make\n");
        let docker20 = DaemonBuilder::of_engine_version(DOCKER_20);
        let chosen = |preference| {
            choose_builder(&plain, &docker20, preference)
                .unwrap()
                .builder
        };
        assert_eq!(chosen(BuilderPreference::Buildkit), Builder::BuildKit);
        assert_eq!(chosen(BuilderPreference::Classic), Builder::Classic);
        let old = DaemonBuilder::of_engine_version("17.03");
        assert_eq!(
            choose_builder(&plain, &old, BuilderPreference::Buildkit)
                .unwrap()
                .builder,
            Builder::Classic
        );
    }
}

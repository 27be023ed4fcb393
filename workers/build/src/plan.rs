//! The build worker's pure decisions: where the context and Dockerfile are in the checkout, which
//! images the Dockerfile builds on, the content key that identifies a build, the image names and
//! labels, whether an image already in the registry makes the build unnecessary, and the messages
//! a job ends with. No I/O.

use std::collections::{BTreeMap, VecDeque};

use slipway_common::image::InvalidImageRef;
use slipway_common::index::Entry;
use slipway_common::message::{BuildFailed, BuildRecord, BuildStage, BuildSucceeded, CommitSha};
use slipway_common::{Digest, ImageRef, Message, Timestamp};
use slipway_lint::images::{BaseImageError, base_images};
use slipway_lint::parser;
use slipway_lint::syntax::Instruction;

use crate::layer_cache::Reuse;

/// Label: the repository URL the image was built from (credentials removed).
pub const LABEL_SOURCE: &str = "io.slipway.source-url";
/// Label: the commit built.
pub const LABEL_COMMIT: &str = "io.slipway.commit";
/// Label: the sha256 of the Dockerfile built.
pub const LABEL_DOCKERFILE_DIGEST: &str = "io.slipway.dockerfile-digest";
/// Label: the pipeline job that built it.
pub const LABEL_JOB: &str = "io.slipway.job-id";
/// Label: the content key (see [`content_key`]).
pub const LABEL_CONTENT_KEY: &str = "io.slipway.content-key";

/// Why a job cannot be planned: the entry and the checkout disagree. Permanent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A path of the entry leaves the repository.
    #[error("{field} {value:?} (relative to git-path {git_path:?}) leaves the repository")]
    OutsideRepository {
        /// The entry field.
        field: &'static str,
        /// Its value.
        value: String,
        /// The entry's git-path.
        git_path: String,
    },
    /// The Dockerfile does not parse.
    #[error("the Dockerfile does not parse: {0}")]
    Dockerfile(String),
    /// The Dockerfile has no `FROM`.
    #[error("the Dockerfile has no FROM instruction")]
    NoFrom,
    /// The Dockerfile's parent images cannot be known: a global `ARG` or a `FROM` does not expand,
    /// a `FROM` expands to nothing, or a `COPY --from=` holds a variable.
    #[error("the Dockerfile's base images cannot be resolved: {0}")]
    BaseImages(#[from] BaseImageError),
}

/// Normalises `path` (a `/`-separated path relative to the repository root) to its components,
/// resolving `.` and `..`; `None` when it climbs out of the root.
fn normalise(path: &str) -> Option<Vec<&str>> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    Some(parts)
}

/// A path relative to the repository root: `relative` is taken from `git_path`, except that a
/// leading `/` means the root itself (the container index's rule for `build-context`).
pub fn repo_path(git_path: &str, relative: &str, field: &'static str) -> Result<String, PlanError> {
    let joined = if relative.starts_with('/') {
        relative.to_string()
    } else {
        format!("{git_path}/{relative}")
    };
    normalise(&joined)
        .map(|parts| parts.join("/"))
        .ok_or_else(|| PlanError::OutsideRepository {
            field,
            value: relative.to_string(),
            git_path: git_path.to_string(),
        })
}

/// Where things are in the checkout, relative to the repository root (`""` = the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The build context directory.
    pub context: String,
    /// The Dockerfile.
    pub dockerfile: String,
    /// The directory the prebuild script runs in, when there is a script.
    pub prebuild_context: Option<String>,
}

impl Layout {
    /// The layout an entry describes.
    pub fn of(entry: &Entry) -> Result<Layout, PlanError> {
        let git_path = entry.git_path.trim_matches('/');
        let context = repo_path(git_path, &entry.build_context, "build-context")?;
        let dockerfile = repo_path(git_path, &entry.target_file, "target-file")?;
        let prebuild_context = match (&entry.prebuild_script, &entry.prebuild_context) {
            (None, _) => None,
            // The prebuild context is relative to the repository root.
            (Some(_), Some(dir)) => Some(repo_path("", dir, "prebuild-context")?),
            (Some(_), None) => Some(git_path.to_string()),
        };
        Ok(Layout {
            context,
            dockerfile,
            prebuild_context,
        })
    }
}

/// The images the Dockerfile builds on, in order of first use: every `FROM` (and `COPY --from=`
/// naming an image) that is not an earlier stage or `scratch`, with the global `ARG`s (overridden
/// by `build_args`) expanded as dockerd's classic builder expands them
/// ([`slipway_lint::images::base_images`]).
pub fn parent_images(
    dockerfile: &str,
    build_args: &BTreeMap<String, String>,
) -> Result<Vec<String>, PlanError> {
    let parsed = parser::parse(dockerfile).map_err(|e| PlanError::Dockerfile(e.to_string()))?;
    if !parsed
        .instructions
        .iter()
        .any(|located| matches!(located.instruction, Instruction::From(_)))
    {
        return Err(PlanError::NoFrom);
    }
    Ok(base_images(&parsed, build_args)?)
}

/// An `ADD` source the daemon would fetch itself: a URL (`scheme://…`, `git@…`), or a variable
/// whose value is only known during the build (it may expand to a URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteAdd {
    /// The 1-based line of the `ADD` (or of its `ONBUILD`).
    pub line: u32,
    /// The source as written.
    pub source: String,
}

/// Every `ADD` (also under `ONBUILD`) source of the Dockerfile that is not a plain path of the
/// context. dockerd fetches an `ADD` URL itself, on the host's network, whatever the build's
/// network mode. A parse error is [`PlanError::Dockerfile`].
pub fn remote_add_sources(dockerfile: &str) -> Result<Vec<RemoteAdd>, PlanError> {
    let parsed = parser::parse(dockerfile).map_err(|e| PlanError::Dockerfile(e.to_string()))?;
    let mut found = Vec::new();
    for located in &parsed.instructions {
        let mut instruction = &located.instruction;
        while let Instruction::OnBuild(inner) = instruction {
            instruction = inner;
        }
        if let Instruction::Add(add) = instruction {
            found.extend(
                add.sources
                    .iter()
                    .filter(|source| is_remote_source(source))
                    .map(|source| RemoteAdd {
                        line: located.line,
                        source: source.clone(),
                    }),
            );
        }
    }
    Ok(found)
}

/// The remote `ADD` sources among a parent image's `ONBUILD` triggers (each an instruction such as
/// `ADD http://… /x`), which run in the build of an image `FROM` it.
pub fn remote_trigger_sources(triggers: &[String]) -> Result<Vec<String>, PlanError> {
    Ok(remote_add_sources(&triggers.join("\n"))?
        .into_iter()
        .map(|remote| remote.source)
        .collect())
}

fn is_remote_source(source: &str) -> bool {
    source.contains("://") || source.starts_with("git@") || source.contains('$')
}

/// The identity of a build's inputs: `sha256` over the commit, the Dockerfile's digest, each parent
/// image with its digest, and the build arguments, in a fixed canonical form. Equal keys mean the
/// same image would be built.
pub fn content_key(
    commit: &CommitSha,
    dockerfile_digest: &str,
    parent_digests: &BTreeMap<ImageRef, Digest>,
    build_args: &BTreeMap<String, String>,
) -> String {
    let mut canonical = format!(
        "slipway-content-key-v1\ncommit {}\ndockerfile {dockerfile_digest}\n",
        commit.as_str()
    );
    for (image, digest) in parent_digests {
        // As written in the Dockerfile (a quoted string): keys of earlier builds stay valid.
        canonical.push_str(&format!("parent {:?} {digest}\n", image.to_string()));
    }
    for (name, value) in build_args {
        canonical.push_str(&format!("arg {name:?} {value:?}\n"));
    }
    Digest::sha256_of(canonical.as_bytes()).to_string()
}

/// Image names of one build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// `registry/<app-id>/<job-id>:<desired-tag>`: the tag users asked for.
    pub image: ImageRef,
    /// The same repository under the tag the image is pushed under for its smoke test, before
    /// promotion.
    pub test_image: ImageRef,
}

impl Names {
    /// The names for `entry` in `registry` (`host[:port]`); an invalid registry host is an error.
    pub fn of(entry: &Entry, registry: &str) -> Result<Names, InvalidImageRef> {
        let image = entry.image().in_registry(registry)?;
        let test_image = image.clone().with_tag(&test_tag(&entry.desired_tag))?;
        Ok(Names { image, test_image })
    }
}

/// The test tag for a desired tag: `<tag>-slipway-test`, cut to Docker's 128 characters.
pub fn test_tag(desired: &str) -> String {
    const SUFFIX: &str = "-slipway-test";
    let keep = desired.len().min(128 - SUFFIX.len());
    format!("{}{SUFFIX}", &desired[..keep])
}

/// The labels every built image carries.
pub fn labels(
    entry: &Entry,
    commit: &CommitSha,
    dockerfile_digest: &str,
    job_id: &str,
    content_key: &str,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            LABEL_SOURCE.to_string(),
            slipway_common::index::validate::redact_credentials(&entry.git_url),
        ),
        (LABEL_COMMIT.to_string(), commit.as_str().to_string()),
        (
            LABEL_DOCKERFILE_DIGEST.to_string(),
            dockerfile_digest.to_string(),
        ),
        (LABEL_JOB.to_string(), job_id.to_string()),
        (LABEL_CONTENT_KEY.to_string(), content_key.to_string()),
    ])
}

/// Whether the image already under the desired tag is this job's result: built from exactly
/// these inputs and, for a job that must build afresh ([`Reuse::Fresh`]: a package update, the
/// schedule), by this very job (an earlier attempt of it, redelivered after a crash).
pub fn already_built(
    existing_labels: &BTreeMap<String, String>,
    content_key: &str,
    reuse: Reuse,
    job_id: &str,
) -> bool {
    let label = |name: &str| existing_labels.get(name).map(String::as_str);
    label(LABEL_CONTENT_KEY) == Some(content_key)
        && (reuse == Reuse::Earlier || label(LABEL_JOB) == Some(job_id))
}

/// The last lines of a log, for `build.failed`.
#[derive(Debug, Clone)]
pub struct LogTail {
    lines: VecDeque<String>,
    capacity: usize,
}

impl LogTail {
    /// Keeps the last `capacity` lines.
    pub fn new(capacity: usize) -> LogTail {
        LogTail {
            lines: VecDeque::with_capacity(capacity.min(1024)),
            capacity,
        }
    }

    /// Adds the lines of `text` (a chunk may hold several; empty lines are kept).
    pub fn push(&mut self, text: &str) {
        for line in text.trim_end_matches('\n').split('\n') {
            if self.capacity == 0 {
                return;
            }
            if self.lines.len() == self.capacity {
                self.lines.pop_front();
            }
            self.lines
                .push_back(line.trim_end_matches('\r').to_string());
        }
    }

    /// The lines kept, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.lines.iter().cloned().collect()
    }
}

/// The image a classic-builder step produced, from its ` ---> <12 hex>` log line (`None` for
/// other lines, `---> Running in …` and `---> Using cache` included).
pub fn step_image_id(line: &str) -> Option<&str> {
    let id = line.trim().strip_prefix("---> ")?.trim();
    (id.len() == 12
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then_some(id)
}

/// `build.failed` for a stage.
pub fn failed(
    entry: &Entry,
    commit: &CommitSha,
    stage: BuildStage,
    error: String,
    tail: &LogTail,
) -> Message {
    Message::BuildFailed(BuildFailed {
        entry: entry.clone(),
        commit: commit.clone(),
        stage,
        error,
        log_tail: tail.lines(),
    })
}

/// What a successful job reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Success {
    /// The pushed reference (desired tag).
    pub image: ImageRef,
    /// Its manifest digest.
    pub digest: Digest,
    /// The inputs' identity.
    pub content_key: String,
    /// Parent image → digest.
    pub parent_digests: BTreeMap<ImageRef, Digest>,
    /// Wall time of the job.
    pub duration_ms: u64,
    /// How it was made, for its provenance.
    pub record: BuildRecord,
}

/// The builder named in provenance records: this program and its version.
pub const BUILDER: &str = concat!("slipway-build/", env!("CARGO_PKG_VERSION"));

/// The record of a build of the Dockerfile with `dockerfile_digest` that started `elapsed_ms`
/// before `now`.
pub fn record(dockerfile_digest: &str, now: Timestamp, elapsed_ms: u64) -> BuildRecord {
    BuildRecord {
        dockerfile_digest: dockerfile_digest.to_owned(),
        builder: BUILDER.to_owned(),
        started_at: Timestamp::from_unix_millis(now.unix_millis().saturating_sub(elapsed_ms)),
    }
}

/// `build.succeeded`.
pub fn succeeded(entry: &Entry, commit: &CommitSha, success: Success) -> Message {
    Message::BuildSucceeded(BuildSucceeded {
        entry: entry.clone(),
        commit: commit.clone(),
        image: success.image,
        digest: success.digest,
        content_key: success.content_key,
        parent_digests: success.parent_digests,
        duration_ms: success.duration_ms,
        record: Some(success.record),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_common::index::test_support::sample_entry;
    use slipway_common::message::test_support::sample_commit;

    #[test]
    fn layout_resolves_contexts_like_the_container_index() {
        let mut entry = sample_entry();
        entry.git_path = "/images/web/".into();
        entry.target_file = "Dockerfile".into();
        entry.build_context = "./".into();
        entry.prebuild_script = None;
        let layout = Layout::of(&entry).unwrap();
        assert_eq!(
            (layout.context.as_str(), layout.dockerfile.as_str()),
            ("images/web", "images/web/Dockerfile")
        );
        entry.build_context = "../..".into();
        assert_eq!(Layout::of(&entry).unwrap().context, "");
        entry.build_context = "/shared".into();
        assert_eq!(Layout::of(&entry).unwrap().context, "shared");
        entry.build_context = "../../..".into();
        assert!(matches!(
            Layout::of(&entry),
            Err(PlanError::OutsideRepository {
                field: "build-context",
                ..
            })
        ));
        entry.build_context = "./".into();
        entry.prebuild_script = Some("prep.sh".into());
        entry.prebuild_context = Some("/".into());
        assert_eq!(
            Layout::of(&entry).unwrap().prebuild_context.as_deref(),
            Some("")
        );
        entry.prebuild_context = None;
        assert_eq!(
            Layout::of(&entry).unwrap().prebuild_context.as_deref(),
            Some("images/web")
        );
    }

    #[test]
    fn add_sources_the_daemon_would_fetch_are_found_with_their_lines() {
        let dockerfile = "FROM base\n\
            ADD local.tar /\n\
            ADD --chown=1:1 https://example.org/a.tgz ./b /dst/\n\
            COPY http://not-fetched-by-copy /x\n\
            ONBUILD ADD http://127.0.0.1:15672/api/definitions /d\n\
            ADD ${URL} /u\n\
            ADD git@github.com:o/r.git /r\n";
        let found = remote_add_sources(dockerfile).unwrap();
        let lines: Vec<(u32, &str)> = found.iter().map(|r| (r.line, r.source.as_str())).collect();
        assert_eq!(
            lines,
            [
                (3, "https://example.org/a.tgz"),
                (5, "http://127.0.0.1:15672/api/definitions"),
                (6, "${URL}"),
                (7, "git@github.com:o/r.git"),
            ]
        );
        assert!(
            remote_add_sources("FROM base\nADD . /app\n")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn parents_skip_stages_and_scratch_and_expand_global_args() {
        let dockerfile = "ARG BASE=slipway/debian:bookworm\nARG TOOLS\nFROM ${BASE} AS build\nRUN make\nFROM scratch AS empty\nFROM build AS test\nFROM 127.0.0.1:5000/team/runtime:1\nCOPY --from=build /a /a\nCOPY --from=127.0.0.1:5000/team/tools:2 /t /t\nCOPY --from=0 /b /b\n";
        let parents = parent_images(dockerfile, &BTreeMap::new()).unwrap();
        assert_eq!(
            parents,
            [
                "slipway/debian:bookworm",
                "127.0.0.1:5000/team/runtime:1",
                "127.0.0.1:5000/team/tools:2"
            ]
        );
        let args = BTreeMap::from([("BASE".to_string(), "other:3".to_string())]);
        assert_eq!(parent_images(dockerfile, &args).unwrap()[0], "other:3");
        assert_eq!(
            parent_images("# nothing\n", &BTreeMap::new()),
            Err(PlanError::NoFrom)
        );
        assert!(matches!(
            parent_images("FROM a\n{{x}}\n", &BTreeMap::new()),
            Err(PlanError::Dockerfile(_))
        ));
        let unset = parent_images("ARG V\nFROM a:${V:?needed}\n", &BTreeMap::new()).unwrap_err();
        assert!(matches!(unset, PlanError::BaseImages(_)));
        assert_eq!(
            unset.to_string(),
            "the Dockerfile's base images cannot be resolved: line 2: cannot expand FROM \
             a:${V:?needed}: V: needed"
        );
        let args = BTreeMap::from([("V".to_string(), "1".to_string())]);
        assert_eq!(
            parent_images("ARG V\nFROM a:${V:?needed}\n", &args).unwrap(),
            ["a:1"]
        );
    }

    #[test]
    fn the_content_key_changes_with_every_input_and_only_with_them() {
        let commit = sample_commit();
        let image = |text: &str| ImageRef::parse(text).unwrap();
        let digest = |pair: &str| Digest::parse(&format!("sha256:{}", pair.repeat(32))).unwrap();
        let parents = BTreeMap::from([(image("base:1"), digest("aa"))]);
        let args = BTreeMap::from([("V".to_string(), "1".to_string())]);
        let key = content_key(&commit, "sha256:df", &parents, &args);
        assert_eq!(
            key,
            content_key(&commit, "sha256:df", &parents.clone(), &args.clone())
        );
        assert!(key.starts_with("sha256:") && key.len() == 71);
        let other_commit = CommitSha::try_from("b".repeat(40)).unwrap();
        assert_ne!(
            key,
            content_key(&other_commit, "sha256:df", &parents, &args)
        );
        assert_ne!(key, content_key(&commit, "sha256:dg", &parents, &args));
        let other_parents = BTreeMap::from([(image("base:1"), digest("ab"))]);
        assert_ne!(
            key,
            content_key(&commit, "sha256:df", &other_parents, &args)
        );
        let other_args = BTreeMap::from([("V".to_string(), "2".to_string())]);
        assert_ne!(
            key,
            content_key(&commit, "sha256:df", &parents, &other_args)
        );
        // No ambiguity from concatenation: ("a b", "c") is not ("a", "b c").
        let split1 = BTreeMap::from([("A".to_string(), "b c".to_string())]);
        let split2 = BTreeMap::from([("A b".to_string(), "c".to_string())]);
        assert_ne!(
            content_key(&commit, "d", &parents, &split1),
            content_key(&commit, "d", &parents, &split2)
        );
    }

    #[test]
    fn names_and_labels() {
        let entry = sample_entry();
        let names = Names::of(&entry, "127.0.0.1:5000").unwrap();
        assert_eq!(
            names.image.to_string(),
            format!(
                "127.0.0.1:5000/{}/{}:{}",
                entry.app_id, entry.job_id, entry.desired_tag
            )
        );
        assert!(names.test_image.to_string().ends_with("-slipway-test"));
        assert_eq!(names.test_image.repository(), names.image.repository());
        assert!(Names::of(&entry, "not a host").is_err());
        assert_eq!(test_tag(&"t".repeat(128)).len(), 128);
        let mut with_secret = entry.clone();
        with_secret.git_url = "https://bot:token123@git.example.com/x.git".into();
        let labels = labels(
            &with_secret,
            &sample_commit(),
            "sha256:df",
            "job",
            "sha256:key",
        );
        assert!(!labels[LABEL_SOURCE].contains("token123"));
        assert!(already_built(
            &labels,
            "sha256:key",
            Reuse::Earlier,
            "other-job"
        ));
        assert!(!already_built(
            &labels,
            "sha256:other",
            Reuse::Earlier,
            "job"
        ));
        assert!(!already_built(
            &BTreeMap::new(),
            "sha256:key",
            Reuse::Earlier,
            "job"
        ));
        // A fresh rebuild of the same inputs: only its own earlier attempt counts.
        assert!(already_built(&labels, "sha256:key", Reuse::Fresh, "job"));
        assert!(!already_built(
            &labels,
            "sha256:key",
            Reuse::Fresh,
            "other-job"
        ));
    }

    #[test]
    fn step_images_are_read_from_the_build_log() {
        assert_eq!(step_image_id(" ---> 3f2a1b4c5d6e"), Some("3f2a1b4c5d6e"));
        assert_eq!(step_image_id(" ---> 3f2a1b4c5d6e\n"), Some("3f2a1b4c5d6e"));
        assert_eq!(step_image_id(" ---> Running in 3f2a1b4c5d6e"), None);
        assert_eq!(step_image_id(" ---> Using cache"), None);
        assert_eq!(step_image_id("Step 2/3 : RUN make"), None);
        assert_eq!(step_image_id(" ---> 3F2A1B4C5D6E"), None);
    }

    #[test]
    fn the_log_tail_keeps_the_last_lines() {
        let mut tail = LogTail::new(3);
        tail.push("one\ntwo\n");
        tail.push("three\r\nfour\n");
        assert_eq!(tail.lines(), ["two", "three", "four"]);
        let message = failed(
            &sample_entry(),
            &sample_commit(),
            BuildStage::Build,
            "step 2 failed".into(),
            &tail,
        );
        let Message::BuildFailed(failed) = message else {
            panic!()
        };
        assert_eq!(failed.stage, BuildStage::Build);
        assert_eq!(failed.log_tail.len(), 3);
    }
}

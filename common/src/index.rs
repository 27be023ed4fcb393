//! The container index: YAML files of entries, each naming a git repo, a Dockerfile, a tag and the
//! images it depends on. An [`Entry`] can only exist validated: URLs, paths and tags are checked
//! when an index file is read *and* when a message carrying an entry is decoded.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use crate::image::ImageRef;

pub mod diff;
pub mod graph;
pub mod outline;
pub mod set;
pub mod validate;

/// Severity of a lint finding, as hadolint names them: an entry's `lint.failure-threshold`, and
/// each finding of a `lint.failed`/`lint.passed` message (re-exported as `message::Level`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// Fails the lint by default.
    Error,
    /// Worth fixing.
    Warning,
    /// Informational.
    Info,
    /// Style only.
    Style,
}

/// One validated index entry: the whole spec of a build job.
///
/// Field names on the wire and in YAML are the container index's kebab-case ones. Its `Debug`
/// output hides credentials in `git_url`, so logging an entry never leaks them.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawEntry", rename_all = "kebab-case")]
pub struct Entry {
    /// Position of the entry in its index file, when it has one.
    pub id: Option<u64>,
    /// The namespace (first path component of the image name).
    pub app_id: String,
    /// The job's name inside the namespace (second component of the image name). Not the
    /// envelope's job id, which names one run of the pipeline.
    pub job_id: String,
    /// Where the source lives.
    pub git_url: String,
    /// Directory inside the repository holding the Dockerfile; `""` is the repository root.
    pub git_path: String,
    /// Branch, tag or commit to build.
    pub git_branch: String,
    /// The Dockerfile, relative to `git_path`.
    pub target_file: String,
    /// The tag to give the image.
    pub desired_tag: String,
    /// Who hears about builds and scans.
    pub notify_email: Option<String>,
    /// Build context relative to `git_path` (a leading `/` means the repository root).
    pub build_context: String,
    /// Script run before the build, inside the prebuild context.
    pub prebuild_script: Option<String>,
    /// Directory (relative to the repository root) the prebuild script runs in.
    pub prebuild_context: Option<String>,
    /// Images this one is built from; a rebuild of any of them triggers a rebuild of this one.
    pub depends_on: Vec<String>,
    /// Command run in a test container before the image is promoted to `desired_tag`.
    pub smoke_test: Option<String>,
    /// `--build-arg`s for the build.
    pub build_args: BTreeMap<String, String>,
    /// Network available to `RUN` steps.
    pub network: NetworkMode,
    /// Per-entry lint settings.
    pub lint: LintSettings,
    /// When to rebuild the image on a clock, as a cron pattern in UTC (`0 2 * * 0`, `@hourly`;
    /// see [`crate::schedule`]): a Slipway extension of the container index.
    pub rebuild_schedule: Option<String>,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("id", &self.id)
            .field("app_id", &self.app_id)
            .field("job_id", &self.job_id)
            .field("git_url", &validate::redact_credentials(&self.git_url))
            .field("git_path", &self.git_path)
            .field("git_branch", &self.git_branch)
            .field("target_file", &self.target_file)
            .field("desired_tag", &self.desired_tag)
            .field("notify_email", &self.notify_email)
            .field("build_context", &self.build_context)
            .field("prebuild_script", &self.prebuild_script)
            .field("prebuild_context", &self.prebuild_context)
            .field("depends_on", &self.depends_on)
            .field("smoke_test", &self.smoke_test)
            .field("build_args", &self.build_args)
            .field("network", &self.network)
            .field("lint", &self.lint)
            .field("rebuild_schedule", &self.rebuild_schedule)
            .finish()
    }
}

/// Network given to build steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkMode {
    /// No network at all (the default).
    #[default]
    None,
    /// The build host's network: only for entries that cannot build offline.
    Host,
}

/// Lint settings an entry may override.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LintSettings {
    /// Rule codes to ignore, e.g. `DL3008`.
    #[serde(default)]
    pub ignored: Vec<String>,
    /// Lowest level that fails the lint (hadolint's `failure-threshold`).
    #[serde(default)]
    pub failure_threshold: Option<Level>,
}

impl Entry {
    /// The image name this entry produces, `<app-id>/<job-id>:<desired-tag>` (without registry:
    /// normalise it with [`ImageRef::in_registry`]).
    pub fn image(&self) -> ImageRef {
        ImageRef::from_validated_parts(
            format!("{}/{}", self.app_id, self.job_id),
            self.desired_tag.clone(),
        )
    }
}

/// Why an entry is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct EntryError {
    /// The offending field, kebab-case as in the index.
    pub field: &'static str,
    /// What was expected and what was found.
    pub problem: String,
}

impl EntryError {
    fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self {
            field,
            problem: problem.into(),
        }
    }
}

/// The entry as written, before validation. Tolerates what real indexes contain: numeric tags,
/// `depends-on` as null, one string or a list. An unknown key is an error: a misspelled
/// `smoketest:` must not silently skip the smoke test.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawEntry {
    #[serde(default)]
    id: Option<u64>,
    app_id: Scalar,
    job_id: Scalar,
    git_url: String,
    #[serde(default)]
    git_path: Option<String>,
    #[serde(default)]
    git_branch: Option<Scalar>,
    #[serde(default)]
    target_file: Option<String>,
    #[serde(default)]
    desired_tag: Option<Scalar>,
    #[serde(default)]
    notify_email: Option<String>,
    #[serde(default)]
    build_context: Option<String>,
    #[serde(default)]
    prebuild_script: Option<String>,
    #[serde(default)]
    prebuild_context: Option<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    depends_on: Vec<String>,
    #[serde(default)]
    smoke_test: Option<String>,
    #[serde(default)]
    build_args: BTreeMap<String, Scalar>,
    #[serde(default)]
    network: NetworkMode,
    #[serde(default)]
    lint: LintSettings,
    #[serde(default)]
    rebuild_schedule: Option<String>,
}

/// A YAML scalar that should be text: `desired-tag: 8` is the tag "8".
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Text(s) => f.write_str(s),
            Scalar::Integer(n) => write!(f, "{n}"),
            Scalar::Float(x) => write!(f, "{x}"),
            Scalar::Bool(b) => write!(f, "{b}"),
        }
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(OneOrMany::One(one)) => vec![one],
        Some(OneOrMany::Many(many)) => many,
    })
}

impl TryFrom<RawEntry> for Entry {
    type Error = EntryError;

    fn try_from(raw: RawEntry) -> Result<Self, Self::Error> {
        let app_id = image_component("app-id", raw.app_id.to_string())?;
        let job_id = image_component("job-id", raw.job_id.to_string())?;
        let git_url = git_url(raw.git_url)?;
        let git_path = repo_path("git-path", raw.git_path.as_deref().unwrap_or(""))?;
        let git_branch = git_ref(
            raw.git_branch
                .map_or_else(|| "master".to_owned(), |b| b.to_string()),
        )?;
        let target_file = repo_path(
            "target-file",
            raw.target_file.as_deref().unwrap_or("Dockerfile"),
        )?;
        if target_file.is_empty() {
            return Err(EntryError::new(
                "target-file",
                "must name a file, found an empty path",
            ));
        }
        let desired_tag = tag(raw
            .desired_tag
            .map_or_else(|| "latest".to_owned(), |t| t.to_string()))?;
        let build_context = raw.build_context.unwrap_or_else(|| "./".to_owned());
        context_inside_repo(&git_path, &build_context)?;
        let prebuild_context = raw
            .prebuild_context
            .map(|context| repo_path("prebuild-context", &context))
            .transpose()?;
        if let Some(script) = &raw.prebuild_script {
            repo_path("prebuild-script", script)?;
        }
        let notify_email = raw.notify_email.map(email).transpose()?;
        for parent in &raw.depends_on {
            image_reference("depends-on", parent)?;
        }
        let rebuild_schedule = raw
            .rebuild_schedule
            .map(|pattern| {
                crate::schedule::RebuildSchedule::parse(&pattern)
                    .map(|schedule| schedule.as_str().to_owned())
                    .map_err(|problem| EntryError::new("rebuild-schedule", problem))
            })
            .transpose()?;
        let build_args = raw
            .build_args
            .into_iter()
            .map(|(name, value)| build_arg_name(name).map(|name| (name, value.to_string())))
            .collect::<Result<_, _>>()?;
        Ok(Entry {
            id: raw.id,
            app_id,
            job_id,
            git_url,
            git_path,
            git_branch,
            target_file,
            desired_tag,
            notify_email,
            build_context,
            prebuild_script: raw.prebuild_script,
            prebuild_context,
            depends_on: raw.depends_on,
            smoke_test: raw.smoke_test,
            build_args,
            network: raw.network,
            lint: raw.lint,
            rebuild_schedule,
        })
    }
}

/// A lowercase Docker repository path component.
fn image_component(field: &'static str, value: String) -> Result<String, EntryError> {
    if value.len() <= 128 && crate::image::valid_path_component(&value) {
        Ok(value)
    } else {
        Err(EntryError::new(
            field,
            format!(
                "expected lowercase letters and digits, separated by '.', '_', '__' or dashes (at most 128), found {value:?}"
            ),
        ))
    }
}

/// A git URL of an allowed scheme that cannot be mistaken for a git option (the rules of
/// [`validate::check_git_url`], which `slipway-source` applies before it fetches).
fn git_url(value: String) -> Result<String, EntryError> {
    match validate::check_git_url(&value) {
        Ok(()) => Ok(value),
        Err(problem) => Err(EntryError::new("git-url", problem)),
    }
}

/// A relative path that stays inside the repository; normalised without `./` and trailing `/`. A
/// leading `/` means the repository root.
fn repo_path(field: &'static str, value: &str) -> Result<String, EntryError> {
    validate::repo_relative_path(value.trim_start_matches('/'))
        .map_err(|problem| EntryError::new(field, problem))
}

/// `build-context` is relative to `git-path` and may climb out of it, but not out of the repo.
fn context_inside_repo(git_path: &str, context: &str) -> Result<(), EntryError> {
    if context.starts_with('/') {
        return repo_path("build-context", context).map(drop);
    }
    let mut depth = git_path.split('/').filter(|p| !p.is_empty()).count();
    for component in Path::new(context).components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir if depth > 0 => depth -= 1,
            _ => {
                return Err(EntryError::new(
                    "build-context",
                    format!("{context:?} relative to git-path {git_path:?} leaves the repository"),
                ));
            }
        }
    }
    Ok(())
}

/// A branch, tag or commit name git would accept, which cannot be taken for an option (the rules
/// are [`validate::check_git_ref`]'s, which `slipway-source` applies too).
fn git_ref(value: String) -> Result<String, EntryError> {
    match validate::check_git_ref(&value) {
        Ok(()) => Ok(value),
        Err(problem) => Err(EntryError::new("git-branch", problem)),
    }
}

/// A Docker tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn tag(value: String) -> Result<String, EntryError> {
    let valid = !value.is_empty()
        && value.len() <= 128
        && !value.starts_with(['.', '-'])
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if valid {
        Ok(value)
    } else {
        Err(EntryError::new(
            "desired-tag",
            format!(
                "expected a Docker tag (letters, digits, '_', '.', '-'; at most 128), found {value:?}"
            ),
        ))
    }
}

/// A Docker image reference like `centos/centos:7` or `registry:5000/a/b@sha256:…`, by the one
/// parser ([`ImageRef::parse`]).
fn image_reference(field: &'static str, value: &str) -> Result<(), EntryError> {
    ImageRef::parse(value)
        .map(drop)
        .map_err(|error| EntryError::new(field, error.to_string()))
}

fn email(value: String) -> Result<String, EntryError> {
    let trimmed = value.trim();
    let valid = trimmed
        .split_once('@')
        .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'))
        && !trimmed.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(trimmed.to_owned())
    } else {
        Err(EntryError::new(
            "notify-email",
            format!("expected an email address, found {value:?}"),
        ))
    }
}

fn build_arg_name(name: String) -> Result<String, EntryError> {
    let valid = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(name)
    } else {
        Err(EntryError::new(
            "build-args",
            format!("expected an argument name of letters, digits and '_', found {name:?}"),
        ))
    }
}

/// The keys an entry may have, as written in the index.
pub const ENTRY_KEYS: [&str; 18] = [
    "id",
    "app-id",
    "job-id",
    "git-url",
    "git-path",
    "git-branch",
    "target-file",
    "desired-tag",
    "notify-email",
    "build-context",
    "prebuild-script",
    "prebuild-context",
    "depends-on",
    "smoke-test",
    "build-args",
    "network",
    "lint",
    "rebuild-schedule",
];

/// An index file could not be read as a list of projects.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Too large, too deeply nested or not YAML: refused before it was deserialized.
    #[error(transparent)]
    Refused(#[from] outline::OutlineError),
    /// YAML, but not a top-level `Projects:` list.
    #[error("not a container index (expected a top-level `Projects:` list): {0}")]
    NotAnIndex(String),
}

/// One problem with one entry of an index file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {position} ({name}): {error}")]
pub struct InvalidEntry {
    /// 1-based position of the entry in the file.
    pub position: usize,
    /// `app-id/job-id` as written, or `?` when absent.
    pub name: String,
    /// 1-based line of the problem (the offending key, or the entry's start), when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub error: String,
}

/// A valid entry of an index file, and where it is written.
#[derive(Clone, Debug, PartialEq)]
pub struct PlacedEntry {
    /// 1-based line of the entry's first key.
    pub line: usize,
    /// The entry.
    pub entry: Entry,
}

/// The result of reading one index file: every valid entry, and every problem of the invalid
/// ones (an entry may have more than one).
#[derive(Debug, Default)]
pub struct IndexFile {
    /// Entries that passed validation, in file order.
    pub entries: Vec<PlacedEntry>,
    /// Problems of the entries that did not, in file order.
    pub invalid: Vec<InvalidEntry>,
}

impl IndexFile {
    /// How many distinct entries are invalid.
    pub fn invalid_entries(&self) -> usize {
        let mut positions: Vec<usize> = self.invalid.iter().map(|bad| bad.position).collect();
        positions.dedup();
        positions.len()
    }
}

/// Read and parse the index file at `path`: at most [`outline::MAX_INDEX_BYTES`] are read, and
/// besides [`parse_index`]'s checks, every entry's `app-id` must be the file's name (the
/// container index keeps a namespace's entries in `<app-id>.yaml`).
pub fn read_index_file(path: &Path) -> Result<IndexFile, IndexError> {
    let read_error = |source| IndexError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(outline::MAX_INDEX_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() > outline::MAX_INDEX_BYTES {
        return Err(outline::OutlineError::TooLarge { size: bytes.len() }.into());
    }
    let text = String::from_utf8(bytes)
        .map_err(|error| read_error(std::io::Error::new(std::io::ErrorKind::InvalidData, error)))?;
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    parse(&text, stem.as_deref())
}

/// Parse an index file (`Projects: [ … ]`). A bad entry does not hide the good ones. Refused
/// before deserializing: more than [`outline::MAX_INDEX_BYTES`] bytes or collections nested
/// more than [`outline::MAX_NESTING`] deep. Unknown keys (with a suggestion) and a second
/// entry with the same `id` are problems of their entry, with the line.
pub fn parse_index(yaml: &str) -> Result<IndexFile, IndexError> {
    parse(yaml, None)
}

/// [`parse_index`], and when the file's name is known, each entry's `app-id` must be that name.
fn parse(yaml: &str, file_stem: Option<&str>) -> Result<IndexFile, IndexError> {
    #[derive(Deserialize)]
    struct File {
        #[serde(rename = "Projects")]
        projects: Vec<yaml_serde::Value>,
    }
    let outline = outline::outline(yaml)?;
    let file: File =
        yaml_serde::from_str(yaml).map_err(|e| IndexError::NotAnIndex(e.to_string()))?;
    let mut index = IndexFile::default();
    // The position and line of the first entry with each id.
    let mut ids: HashMap<u64, (usize, Option<usize>)> = HashMap::new();
    for (i, value) in file.projects.into_iter().enumerate() {
        let position = i + 1;
        let name = entry_name(&value);
        let placed = outline.entries.get(i);
        let line = placed.map(|entry| entry.line);
        let problem = |line: Option<usize>, error: String| InvalidEntry {
            position,
            name: name.clone(),
            line,
            error,
        };
        let first_with_id = value
            .get("id")
            .and_then(yaml_serde::Value::as_u64)
            .and_then(|id| match ids.get(&id) {
                Some(first) => Some((id, *first)),
                None => {
                    ids.insert(id, (position, line));
                    None
                }
            });
        let unknown: Vec<InvalidEntry> = placed
            .into_iter()
            .flat_map(|entry| &entry.keys)
            .filter(|(key, _)| !ENTRY_KEYS.contains(&key.as_str()))
            .map(|(key, line)| problem(Some(*line), unknown_key(key)))
            .collect();
        if !unknown.is_empty() {
            index.invalid.extend(unknown);
            continue;
        }
        match yaml_serde::from_value::<Entry>(value) {
            Ok(entry) if file_stem.is_some_and(|stem| stem != entry.app_id) => {
                let stem = file_stem.unwrap_or_default();
                let app_id_line = placed
                    .and_then(|entry| entry.keys.iter().find(|(key, _)| key == "app-id"))
                    .map(|(_, line)| *line);
                index.invalid.push(problem(
                    app_id_line.or(line),
                    format!(
                        "app-id: expected {stem:?}, the file's name (the index keeps the entries of app-id X in X.yaml), found {:?}",
                        entry.app_id
                    ),
                ));
            }
            Ok(entry) => match first_with_id {
                Some((id, (first, first_line))) => {
                    let at = first_line.map_or(String::new(), |l| format!(", line {l}"));
                    index.invalid.push(problem(
                        line,
                        format!("id: {id} is already the id of entry {first}{at}"),
                    ));
                }
                None => index.entries.push(PlacedEntry {
                    line: line.unwrap_or(0),
                    entry,
                }),
            },
            Err(error) => index.invalid.push(problem(line, error.to_string())),
        }
    }
    Ok(index)
}

/// The problem of an unknown key, with the known key it most likely means.
fn unknown_key(key: &str) -> String {
    let squash = |s: &str| {
        s.chars()
            .filter(|c| !matches!(c, '-' | '_' | ' '))
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    let squashed = squash(key);
    let suggestion = ENTRY_KEYS
        .iter()
        .map(|known| {
            (
                strsim::damerau_levenshtein(&squashed, &squash(known)),
                known,
            )
        })
        .min()
        .filter(|(distance, _)| *distance <= 2)
        .map(|(_, known)| format!(" (did you mean {known:?}?)"))
        .unwrap_or_default();
    let shown: String = key.chars().take(64).collect();
    format!("unknown key {shown:?}{suggestion}")
}

fn entry_name(value: &yaml_serde::Value) -> String {
    let field = |key: &str| {
        value
            .get(key)
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "?".to_owned())
    };
    format!("{}/{}", field("app-id"), field("job-id"))
}

/// Sample entries for tests in this crate and others.
#[cfg(any(test, feature = "test-support"))]
pub mod test_support {
    use super::*;

    /// A realistic entry with every optional field set.
    pub fn sample_entry() -> Entry {
        let yaml = r#"
id: 2
app-id: centos
job-id: django
git-url: https://github.com/CentOS/CentOS-Dockerfiles
git-branch: master
git-path: Django/centos7
target-file: Dockerfile
desired-tag: latest
notify-email: owner@example.org
build-context: ./
prebuild-script: prebuild.sh
prebuild-context: Django/centos7
depends-on: centos/centos:7
smoke-test: python -c 'import django'
build-args: { PY_VERSION: 3 }
network: host
lint: { ignored: [DL3008], failure-threshold: warning }
rebuild-schedule: "0 2 * * 0"
"#;
        yaml_serde::from_str(yaml).expect("sample entry is valid")
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::sample_entry;
    use super::*;

    fn entry(extra: &str) -> Result<Entry, String> {
        let yaml = format!(
            "app-id: centos\njob-id: web\ngit-url: https://example.org/r.git\ngit-path: app\n{extra}"
        );
        yaml_serde::from_str(&yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_follow_the_container_index() {
        let e = entry("").unwrap();
        assert_eq!(e.git_branch, "master");
        assert_eq!(e.target_file, "Dockerfile");
        assert_eq!(e.desired_tag, "latest");
        assert_eq!(e.build_context, "./");
        assert_eq!(e.network, NetworkMode::None);
        assert!(e.depends_on.is_empty());
        assert_eq!(e.image().to_string(), "centos/web:latest");
    }

    #[test]
    fn flexible_scalars_are_accepted() {
        assert_eq!(entry("desired-tag: 8").unwrap().desired_tag, "8");
        assert_eq!(
            entry("depends-on: null").unwrap().depends_on,
            Vec::<String>::new()
        );
        assert_eq!(entry("depends-on: a/b:1").unwrap().depends_on, ["a/b:1"]);
        assert_eq!(
            entry("depends-on: [a/b:1, c/d:latest]").unwrap().depends_on,
            ["a/b:1", "c/d:latest"]
        );
        let trailing_slash: Entry = yaml_serde::from_str(
            "app-id: a\njob-id: b\ngit-url: https://e.org/r\ngit-path: ./docker/\n",
        )
        .unwrap();
        assert_eq!(trailing_slash.git_path, "docker");
    }

    #[test]
    fn debug_output_hides_credentials_in_the_git_url() {
        let mut entry = sample_entry();
        entry.git_url = "https://robot:s3cr3t-token@git.example.com/team/app.git".into();
        let shown = format!("{entry:?}");
        assert!(!shown.contains("s3cr3t-token"), "{shown}");
        assert!(shown.contains("git.example.com/team/app.git"), "{shown}");
    }

    #[test]
    fn unsafe_or_malformed_fields_are_rejected_with_the_field_named() {
        let cases = [
            ("git-url: --upload-pack=touch /tmp/x", "git-url"),
            ("git-url: ftp://example.org/r", "git-url"),
            ("git-url: 'https://example.org/a b'", "git-url"),
            ("target-file: ../../etc/passwd", "target-file"),
            ("build-context: ../../..", "build-context"),
            ("git-branch: --output=x", "git-branch"),
            ("git-branch: a..b", "git-branch"),
            ("desired-tag: 'bad tag'", "desired-tag"),
            ("notify-email: nobody", "notify-email"),
            ("depends-on: ['a b']", "depends-on"),
            ("build-args: { 'A-B': 1 }", "build-args"),
            ("prebuild-context: ../x", "prebuild-context"),
        ];
        for (extra, field) in cases {
            let error = entry(extra).expect_err(extra);
            assert!(error.contains(field), "{extra}: {error}");
        }
        let error =
            yaml_serde::from_str::<Entry>("app-id: CentOS\njob-id: x\ngit-url: https://e.org/r")
                .unwrap_err();
        assert!(error.to_string().contains("app-id"), "{error}");
    }

    #[test]
    fn build_context_may_climb_out_of_git_path_but_not_the_repo() {
        assert!(entry("build-context: ../").is_ok());
        assert!(entry("build-context: /").is_ok());
        assert!(entry("build-context: ../../").is_err());
    }

    #[test]
    fn sample_entry_round_trips_through_messagepack() {
        let sample = sample_entry();
        let bytes = rmp_serde::to_vec_named(&sample).unwrap();
        assert_eq!(rmp_serde::from_slice::<Entry>(&bytes).unwrap(), sample);
    }

    #[test]
    fn a_bad_entry_does_not_hide_the_good_ones() {
        let index = parse_index(
            "Projects:\n  - app-id: a\n    job-id: b\n    git-url: https://e.org/r\n  - app-id: a\n    job-id: c\n    git-url: nope\n",
        )
        .unwrap();
        assert_eq!(index.entries.len(), 1);
        assert_eq!(index.invalid.len(), 1);
        assert_eq!(index.invalid[0].position, 2);
        assert_eq!(index.invalid[0].name, "a/c");
        assert!(index.invalid[0].error.contains("git-url"));
        assert_eq!(index.invalid[0].line, Some(5));
        assert!(parse_index("- just a list").is_err());
    }

    const GOOD: &str = "job-id: b\n    git-url: https://e.org/r";

    #[test]
    fn unknown_keys_are_errors_with_their_line_and_a_suggestion() {
        let yaml = format!(
            "Projects:\n  - app-id: a\n    {GOOD}\n    smoketest: 'true'\n    build_context: ./\n    colour: red\n  - app-id: b\n    {GOOD}\n"
        );
        let index = parse_index(&yaml).unwrap();
        assert_eq!(index.entries.len(), 1, "the good entry is kept");
        assert_eq!(index.invalid_entries(), 1);
        let problems: Vec<(Option<usize>, &str)> = index
            .invalid
            .iter()
            .map(|bad| (bad.line, bad.error.as_str()))
            .collect();
        assert_eq!(
            problems,
            [
                (
                    Some(5),
                    r#"unknown key "smoketest" (did you mean "smoke-test"?)"#
                ),
                (
                    Some(6),
                    r#"unknown key "build_context" (did you mean "build-context"?)"#
                ),
                (Some(7), r#"unknown key "colour""#),
            ]
        );
        // On the wire too: the decoder refuses what the index refuses.
        let error = entry("smoketest: 'true'").unwrap_err();
        assert!(error.contains("smoketest"), "{error}");
    }

    #[test]
    fn a_rebuild_schedule_is_a_cron_pattern_and_a_bad_one_names_the_entry_and_its_line() {
        let yaml = format!(
            "Projects:\n  - app-id: a\n    {GOOD}\n    rebuild-schedule: '0 2 * * 0'\n  - app-id: c\n    {GOOD}\n    rebuild-schedule: '0 25 * * *'\n"
        );
        let index = parse_index(&yaml).unwrap();
        assert_eq!(index.entries.len(), 1);
        assert_eq!(
            index.entries[0].entry.rebuild_schedule.as_deref(),
            Some("0 2 * * 0")
        );
        assert_eq!(index.invalid_entries(), 1);
        let bad = &index.invalid[0];
        assert_eq!(bad.line, Some(6), "{bad:?}");
        assert_eq!(bad.name, "c/b");
        assert!(
            bad.error.contains("rebuild-schedule") && bad.error.contains("0 25 * * *"),
            "{}",
            bad.error
        );
        assert!(entry("rebuild-schedule: '@reboot'").is_err());
    }

    #[test]
    fn a_second_entry_with_the_same_id_is_an_error() {
        let yaml = format!(
            "Projects:\n  - id: 7\n    app-id: a\n    {GOOD}\n  - id: 7\n    app-id: c\n    {GOOD}\n  - id: 8\n    app-id: d\n    {GOOD}\n"
        );
        let index = parse_index(&yaml).unwrap();
        assert_eq!(index.entries.len(), 2);
        assert_eq!(index.invalid.len(), 1);
        let duplicate = &index.invalid[0];
        assert_eq!((duplicate.position, duplicate.line), (2, Some(6)));
        assert_eq!(
            duplicate.error,
            "id: 7 is already the id of entry 1, line 2"
        );
    }

    #[test]
    fn index_files_name_their_app_id_and_are_read_bounded() {
        let dir = std::env::temp_dir().join(format!("slipway-index-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("team.yaml");
        let yaml =
            format!("Projects:\n  - app-id: team\n    {GOOD}\n  - app-id: other\n    {GOOD}\n");
        std::fs::write(&file, &yaml).unwrap();
        let index = read_index_file(&file).unwrap();
        assert_eq!(index.entries.len(), 1);
        assert_eq!(index.invalid.len(), 1);
        assert_eq!(index.invalid[0].line, Some(5));
        assert!(
            index.invalid[0]
                .error
                .starts_with(r#"app-id: expected "team", the file's name"#),
            "{}",
            index.invalid[0].error
        );
        // parse_index alone knows no file name.
        assert_eq!(parse_index(&yaml).unwrap().entries.len(), 2);

        let big = dir.join("big.yaml");
        let file = std::fs::File::create(&big).unwrap();
        // Sparse: 1 GiB of nothing costs no disk and must not be read.
        file.set_len(1 << 30).unwrap();
        let error = read_index_file(&big).unwrap_err();
        assert!(
            matches!(
                error,
                IndexError::Refused(outline::OutlineError::TooLarge { size })
                    if size == outline::MAX_INDEX_BYTES + 1
            ),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn entry_keys_are_the_fields_an_entry_has() {
        let written = yaml_serde::to_value(sample_entry()).unwrap();
        let mut keys: Vec<&str> = written
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap())
            .collect();
        keys.sort_unstable();
        let mut known = ENTRY_KEYS.to_vec();
        known.sort_unstable();
        assert_eq!(keys, known);
    }
}

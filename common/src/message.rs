//! The message kinds of the pipeline (GUIDE §2) and their typed payloads: Slipway's wire contract.
//!
//! Each kind is also the routing key its events are published with on the `slipway` exchange.
//! Payload fields use kebab-case names, like the container index they come from. Adding an
//! optional field is compatible; renaming or retyping one needs a new envelope version.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};

use crate::Timestamp;
use crate::image::{Digest, ImageRef};
use crate::index::Entry;
pub use crate::index::Level;

/// Every message kind; its string form is the routing key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `build.requested`: somebody or something wants an index entry built.
    BuildRequested,
    /// `lint.passed`: the Dockerfile at a resolved commit passed lint.
    LintPassed,
    /// `lint.failed`: lint found errors, or the source could not be fetched.
    LintFailed,
    /// `build.succeeded`: the image is built and pushed.
    BuildSucceeded,
    /// `build.failed`: some build stage failed.
    BuildFailed,
    /// `scan.requested`: scan an existing image (the rescan schedule).
    ScanRequested,
    /// `scan.completed`: a scan finished; the full report is in the reports stream.
    ScanCompleted,
    /// `scan.failed`: the scan could not run.
    ScanFailed,
    /// `git.changed`: a tracked branch was seen at a commit, by a poll or a webhook push.
    GitChanged,
    /// `index.applied`: the repo-tracker put an index commit in force.
    IndexApplied,
    /// `index.rejected`: an index commit failed validation; the previous one stays in force.
    IndexRejected,
    /// `image.retired`: an entry left the index; rescans and notices for its image stop.
    ImageRetired,
    /// `build.skipped`: a rebuild the repo-tracker did not request, because a parent failed.
    BuildSkipped,
    /// `packages.updated`: a configured package repository changed; these images hold packages
    /// it now has newer versions of.
    PackagesUpdated,
    /// `image.removed`: the build worker dealt with a retired image's tag in the registry (the
    /// repo-tracker asked for it): the manifest was deleted, kept because other tags share it,
    /// or was already absent.
    ImageRemoved,
    /// `summary.ready`: the rescan-scheduler's summary for one owner, once per period: each of
    /// the owner's images with its latest scan's counts.
    SummaryReady,
    /// `mail.sent`: the notify worker's record of a mail the SMTP server accepted, naming the
    /// events it told of; no second mail is sent for them.
    MailSent,
}

impl Kind {
    /// All kinds, in pipeline order.
    pub const ALL: [Kind; 17] = [
        Kind::BuildRequested,
        Kind::LintPassed,
        Kind::LintFailed,
        Kind::BuildSucceeded,
        Kind::BuildFailed,
        Kind::ScanRequested,
        Kind::ScanCompleted,
        Kind::ScanFailed,
        Kind::GitChanged,
        Kind::IndexApplied,
        Kind::IndexRejected,
        Kind::ImageRetired,
        Kind::BuildSkipped,
        Kind::PackagesUpdated,
        Kind::ImageRemoved,
        Kind::SummaryReady,
        Kind::MailSent,
    ];

    /// The routing key / wire name, e.g. `build.requested`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::BuildRequested => "build.requested",
            Kind::LintPassed => "lint.passed",
            Kind::LintFailed => "lint.failed",
            Kind::BuildSucceeded => "build.succeeded",
            Kind::BuildFailed => "build.failed",
            Kind::ScanRequested => "scan.requested",
            Kind::ScanCompleted => "scan.completed",
            Kind::ScanFailed => "scan.failed",
            Kind::GitChanged => "git.changed",
            Kind::IndexApplied => "index.applied",
            Kind::IndexRejected => "index.rejected",
            Kind::ImageRetired => "image.retired",
            Kind::BuildSkipped => "build.skipped",
            Kind::PackagesUpdated => "packages.updated",
            Kind::ImageRemoved => "image.removed",
            Kind::SummaryReady => "summary.ready",
            Kind::MailSent => "mail.sent",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no message kind.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown message kind {0:?}")]
pub struct UnknownKind(String);

impl FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

impl Serialize for Kind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A message payload, tagged by its kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// See [`Kind::BuildRequested`].
    BuildRequested(BuildRequested),
    /// See [`Kind::LintPassed`].
    LintPassed(LintPassed),
    /// See [`Kind::LintFailed`].
    LintFailed(LintFailed),
    /// See [`Kind::BuildSucceeded`].
    BuildSucceeded(BuildSucceeded),
    /// See [`Kind::BuildFailed`].
    BuildFailed(BuildFailed),
    /// See [`Kind::ScanRequested`].
    ScanRequested(ScanRequested),
    /// See [`Kind::ScanCompleted`].
    ScanCompleted(ScanCompleted),
    /// See [`Kind::ScanFailed`].
    ScanFailed(ScanFailed),
    /// See [`Kind::GitChanged`].
    GitChanged(GitChanged),
    /// See [`Kind::IndexApplied`].
    IndexApplied(IndexApplied),
    /// See [`Kind::IndexRejected`].
    IndexRejected(IndexRejected),
    /// See [`Kind::ImageRetired`].
    ImageRetired(ImageRetired),
    /// See [`Kind::BuildSkipped`].
    BuildSkipped(BuildSkipped),
    /// See [`Kind::PackagesUpdated`].
    PackagesUpdated(PackagesUpdated),
    /// See [`Kind::ImageRemoved`].
    ImageRemoved(ImageRemoved),
    /// See [`Kind::SummaryReady`].
    SummaryReady(SummaryReady),
    /// See [`Kind::MailSent`].
    MailSent(MailSent),
}

impl Message {
    /// This payload's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Message::BuildRequested(_) => Kind::BuildRequested,
            Message::LintPassed(_) => Kind::LintPassed,
            Message::LintFailed(_) => Kind::LintFailed,
            Message::BuildSucceeded(_) => Kind::BuildSucceeded,
            Message::BuildFailed(_) => Kind::BuildFailed,
            Message::ScanRequested(_) => Kind::ScanRequested,
            Message::ScanCompleted(_) => Kind::ScanCompleted,
            Message::ScanFailed(_) => Kind::ScanFailed,
            Message::GitChanged(_) => Kind::GitChanged,
            Message::IndexApplied(_) => Kind::IndexApplied,
            Message::IndexRejected(_) => Kind::IndexRejected,
            Message::ImageRetired(_) => Kind::ImageRetired,
            Message::BuildSkipped(_) => Kind::BuildSkipped,
            Message::PackagesUpdated(_) => Kind::PackagesUpdated,
            Message::ImageRemoved(_) => Kind::ImageRemoved,
            Message::SummaryReady(_) => Kind::SummaryReady,
            Message::MailSent(_) => Kind::MailSent,
        }
    }

    /// The image this message is about, and its digest when the message names one: the entry's
    /// image (`app-id/job-id:desired-tag`, without registry) for the lint and build stages, a
    /// skipped build and a retired entry, the pushed image and its digest for `build.succeeded`,
    /// the scanned image for the scans. `None` for the events about a repository or the index as
    /// a whole (`git.changed`, `index.applied`, `index.rejected`, `packages.updated`).
    pub fn image(&self) -> Option<(ImageRef, Option<&Digest>)> {
        Some(match self {
            Message::BuildRequested(p) => (p.entry.image(), None),
            Message::LintPassed(p) => (p.entry.image(), None),
            Message::LintFailed(p) => (p.entry.image(), None),
            Message::BuildFailed(p) => (p.entry.image(), None),
            Message::BuildSucceeded(p) => (p.image.clone(), Some(&p.digest)),
            Message::ScanRequested(p) => (p.image.clone(), p.digest.as_ref()),
            Message::ScanCompleted(p) => (p.image.clone(), Some(&p.digest)),
            Message::ScanFailed(p) => (p.image.clone(), None),
            Message::ImageRetired(p) => (p.entry.image(), None),
            Message::BuildSkipped(p) => (p.entry.image(), None),
            Message::ImageRemoved(p) => (p.image.clone(), p.digest.as_ref()),
            Message::GitChanged(_)
            | Message::IndexApplied(_)
            | Message::IndexRejected(_)
            | Message::PackagesUpdated(_)
            | Message::SummaryReady(_)
            | Message::MailSent(_) => {
                return None;
            }
        })
    }

    pub(crate) fn serialize_payload<S: Serializer>(
        &self,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match self {
            Message::BuildRequested(p) => p.serialize(serializer),
            Message::LintPassed(p) => p.serialize(serializer),
            Message::LintFailed(p) => p.serialize(serializer),
            Message::BuildSucceeded(p) => p.serialize(serializer),
            Message::BuildFailed(p) => p.serialize(serializer),
            Message::ScanRequested(p) => p.serialize(serializer),
            Message::ScanCompleted(p) => p.serialize(serializer),
            Message::ScanFailed(p) => p.serialize(serializer),
            Message::GitChanged(p) => p.serialize(serializer),
            Message::IndexApplied(p) => p.serialize(serializer),
            Message::IndexRejected(p) => p.serialize(serializer),
            Message::ImageRetired(p) => p.serialize(serializer),
            Message::BuildSkipped(p) => p.serialize(serializer),
            Message::PackagesUpdated(p) => p.serialize(serializer),
            Message::ImageRemoved(p) => p.serialize(serializer),
            Message::SummaryReady(p) => p.serialize(serializer),
            Message::MailSent(p) => p.serialize(serializer),
        }
    }

    /// Decode the `payload` field of an encoded envelope as the payload type of `kind`.
    pub(crate) fn from_payload(
        kind: Kind,
        envelope: &[u8],
    ) -> Result<Self, rmp_serde::decode::Error> {
        #[derive(Deserialize)]
        struct Body<P> {
            payload: P,
        }
        fn from_value<P: serde::de::DeserializeOwned>(
            envelope: &[u8],
        ) -> Result<P, rmp_serde::decode::Error> {
            Ok(rmp_serde::from_slice::<Body<P>>(envelope)?.payload)
        }
        Ok(match kind {
            Kind::BuildRequested => Message::BuildRequested(from_value(envelope)?),
            Kind::LintPassed => Message::LintPassed(from_value(envelope)?),
            Kind::LintFailed => Message::LintFailed(from_value(envelope)?),
            Kind::BuildSucceeded => Message::BuildSucceeded(from_value(envelope)?),
            Kind::BuildFailed => Message::BuildFailed(from_value(envelope)?),
            Kind::ScanRequested => Message::ScanRequested(from_value(envelope)?),
            Kind::ScanCompleted => Message::ScanCompleted(from_value(envelope)?),
            Kind::ScanFailed => Message::ScanFailed(from_value(envelope)?),
            Kind::GitChanged => Message::GitChanged(from_value(envelope)?),
            Kind::IndexApplied => Message::IndexApplied(from_value(envelope)?),
            Kind::IndexRejected => Message::IndexRejected(from_value(envelope)?),
            Kind::ImageRetired => Message::ImageRetired(from_value(envelope)?),
            Kind::BuildSkipped => Message::BuildSkipped(from_value(envelope)?),
            Kind::PackagesUpdated => Message::PackagesUpdated(from_value(envelope)?),
            Kind::ImageRemoved => Message::ImageRemoved(from_value(envelope)?),
            Kind::SummaryReady => Message::SummaryReady(from_value(envelope)?),
            Kind::MailSent => Message::MailSent(from_value(envelope)?),
        })
    }
}

/// A git commit id: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CommitSha(String);

impl CommitSha {
    /// The hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A string that is not a full commit id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("expected a full commit id (40 or 64 lowercase hex digits), found {0:?}")]
pub struct InvalidCommitSha(String);

impl TryFrom<String> for CommitSha {
    type Error = InvalidCommitSha;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let hex = value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if hex && matches!(value.len(), 40 | 64) {
            Ok(Self(value))
        } else {
            Err(InvalidCommitSha(value))
        }
    }
}

impl From<CommitSha> for String {
    fn from(sha: CommitSha) -> Self {
        sha.0
    }
}

impl fmt::Display for CommitSha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One lint finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LintFinding {
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// Rule code, e.g. `DL3008` or `SC2086`.
    pub code: String,
    /// Severity after config overrides.
    pub level: Level,
    /// What is wrong.
    pub message: String,
}

/// `build.requested`: build this index entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BuildRequested {
    /// The whole job spec, so no worker but the tracker needs the index.
    pub entry: Entry,
    /// Build exactly this commit instead of the head of `git-branch` (set by the repo tracker).
    #[serde(default)]
    pub commit: Option<CommitSha>,
}

/// `lint.passed`: the Dockerfile at `commit` passed; build exactly that commit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LintPassed {
    /// The job spec.
    pub entry: Entry,
    /// The commit that was linted.
    pub commit: CommitSha,
    /// Findings below the failure threshold.
    #[serde(default)]
    pub findings: Vec<LintFinding>,
}

/// `lint.failed`: lint found errors, or the source could not be fetched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LintFailed {
    /// The job spec.
    pub entry: Entry,
    /// The commit, when the ref could be resolved.
    #[serde(default)]
    pub commit: Option<CommitSha>,
    /// All findings.
    #[serde(default)]
    pub findings: Vec<LintFinding>,
    /// Why lint could not run (unreachable repo, unknown ref), if that is the failure.
    #[serde(default)]
    pub error: Option<String>,
}

/// `build.succeeded`: the image is built, tested and pushed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BuildSucceeded {
    /// The job spec.
    pub entry: Entry,
    /// The commit that was built.
    pub commit: CommitSha,
    /// Full image reference that was pushed, e.g. `127.0.0.1:5000/centos/django:latest`.
    pub image: ImageRef,
    /// Manifest digest, `sha256:…`.
    pub digest: Digest,
    /// Identity of the build's inputs (commit, Dockerfile digest, parent digests, build args).
    pub content_key: String,
    /// Each parent image the build used, by image reference, with the Docker daemon's id of it
    /// (its config digest, not a manifest digest).
    #[serde(default)]
    pub parent_digests: BTreeMap<ImageRef, Digest>,
    /// Wall time of the whole job in the build worker, in milliseconds.
    pub duration_ms: u64,
    /// How the image was made, for its provenance record; absent from the messages of builders
    /// older than it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<BuildRecord>,
}

/// How the build worker made an image, beyond its inputs' identity: what its provenance record
/// needs besides the entry, the commit and the parents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BuildRecord {
    /// `sha256:…` of the Dockerfile built.
    pub dockerfile_digest: String,
    /// The program that built it and its version: `slipway-build/0.1.0`.
    pub builder: String,
    /// When the build job started.
    pub started_at: Timestamp,
}

/// The build stage that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuildStage {
    /// Getting the source at the commit.
    Checkout,
    /// Running the entry's prebuild script.
    Prebuild,
    /// `docker build`.
    Build,
    /// The smoke test.
    Test,
    /// Pushing or tagging in the registry.
    Push,
}

/// `build.failed`: a build stage failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BuildFailed {
    /// The job spec.
    pub entry: Entry,
    /// The commit being built.
    pub commit: CommitSha,
    /// Which stage failed.
    pub stage: BuildStage,
    /// What went wrong, in one line.
    pub error: String,
    /// The last lines of the stage's log.
    #[serde(default)]
    pub log_tail: Vec<String>,
}

/// `scan.requested`: scan an existing image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ScanRequested {
    /// Image reference to scan (a digest in it pins the image like `digest` does).
    pub image: ImageRef,
    /// Expected manifest digest, when known.
    #[serde(default)]
    pub digest: Option<Digest>,
    /// Who to tell about the result.
    #[serde(default)]
    pub notify_email: Option<String>,
}

/// `scan.completed`: a scan finished.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ScanCompleted {
    /// Image reference that was scanned.
    pub image: ImageRef,
    /// Manifest digest that was scanned.
    pub digest: Digest,
    /// Number of results per scanner, e.g. `{"os-updates": 3, "integrity": 0}`.
    pub counts: BTreeMap<String, u64>,
    /// Who to tell about the result.
    #[serde(default)]
    pub notify_email: Option<String>,
}

/// `scan.failed`: the scan could not run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ScanFailed {
    /// Image reference that was to be scanned.
    pub image: ImageRef,
    /// Why the scan failed.
    pub error: String,
    /// Who to tell about the failure.
    #[serde(default)]
    pub notify_email: Option<String>,
}

/// How a branch head was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeenBy {
    /// The tracker's poll asked the remote for the branch head.
    Poll,
    /// A forge's push webhook named the new head.
    Webhook,
}

/// `git.changed`: a tracked branch was seen at a commit. An observation, not yet a decision: the
/// repo-tracker acts on it (rebuilds, or reads the index) only when the commit is new to it and,
/// for a webhook push, the delivery id was not seen before.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GitChanged {
    /// The repository, as the index writes it.
    pub git_url: String,
    /// The branch.
    pub git_branch: String,
    /// The head the branch was seen at.
    pub commit: CommitSha,
    /// Who saw it.
    pub seen_by: SeenBy,
    /// The forge's delivery id of a webhook push (a redelivered push is acted on once).
    #[serde(default)]
    pub delivery_id: Option<String>,
}

/// `index.applied`: the repo-tracker put an index commit in force. It carries every entry, so a
/// starting tracker rebuilds the index in force from the history alone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct IndexApplied {
    /// The index repository.
    pub git_url: String,
    /// Its branch.
    pub git_branch: String,
    /// The commit now in force.
    pub commit: CommitSha,
    /// Every entry of the index at that commit.
    pub entries: Vec<Entry>,
}

/// One reason an index commit was rejected, where it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct IndexProblemAt {
    /// The file, relative to the index repository's root.
    pub file: String,
    /// The 1-based line, when known.
    #[serde(default)]
    pub line: Option<u32>,
    /// What is wrong.
    pub message: String,
}

/// `index.rejected`: an index commit failed validation and was not applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct IndexRejected {
    /// The index repository.
    pub git_url: String,
    /// Its branch.
    pub git_branch: String,
    /// The commit that was rejected.
    pub commit: CommitSha,
    /// Why, file by file (at most a bounded number; the last one says how many more there were).
    pub problems: Vec<IndexProblemAt>,
    /// The commit still in force, when one was ever applied.
    #[serde(default)]
    pub in_force: Option<CommitSha>,
}

/// `image.retired`: an entry left the index (or changed its tag, retiring the old image).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImageRetired {
    /// The entry as it was in force before.
    pub entry: Entry,
    /// The index commit that removed it.
    pub index_commit: CommitSha,
    /// Whether the build worker should delete the image's tag from the registry (the
    /// repo-tracker's `delete_retired_tags`); absent in older events, which means no.
    #[serde(default)]
    pub delete_tag: bool,
}

/// What became of a retired image's tag in the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Removal {
    /// The manifest the tag named was deleted (with the tag, and the image's test tag).
    Deleted,
    /// The manifest was kept: another tag names it too, or it was pushed after the image was
    /// retired; `detail` says which.
    Kept,
    /// The registry held no such tag (already removed, or never pushed).
    Absent,
    /// The registry refused (no delete permission, deletes disabled); `detail` has its answer.
    /// The tag stays.
    Failed,
}

/// `image.removed`: the build worker dealt with a retired image's tag (an `image.retired` that
/// asked for it). The registry can only delete a manifest, with every tag on it, so a manifest
/// another tag still names is kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImageRemoved {
    /// The image in the registry (`registry/app-id/job-id:desired-tag`).
    pub image: ImageRef,
    /// What was done.
    pub outcome: Removal,
    /// The manifest the tag named, when it named one.
    #[serde(default)]
    pub digest: Option<Digest>,
    /// Why, in one line (the other tags sharing the manifest, for [`Removal::Kept`]).
    pub detail: String,
}

/// `build.skipped`: an image the repo-tracker would have rebuilt after its parents, left as it is
/// because a parent's rebuild failed (or was itself skipped).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BuildSkipped {
    /// The entry that was not rebuilt.
    pub entry: Entry,
    /// The parent whose rebuild failed or was skipped, as the index names it.
    pub parent: ImageRef,
    /// Why, in one line.
    pub reason: String,
}

/// An image and the packages it holds that a repository now has newer versions of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImagePackages {
    /// The image, as the index names it (`app-id/job-id:desired-tag`).
    pub image: ImageRef,
    /// The packages, by name, sorted (at most a bounded number).
    pub packages: Vec<String>,
}

/// `packages.updated`: a configured package repository (apt, yum or apk) changed. Lists the
/// images whose latest scan report holds a package the repository now has a newer version of;
/// the repo-tracker rebuilds exactly those, parents first. The first look at a repository is a
/// baseline: its fingerprint, no images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PackagesUpdated {
    /// The repository's configured name.
    pub repository: String,
    /// A digest of what the repository offers now (its packages and versions).
    pub fingerprint: String,
    /// The images to rebuild, with their packages that have newer versions.
    pub images: Vec<ImagePackages>,
}

/// One image of a [`SummaryReady`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImageSummary {
    /// The image (`registry/app-id/job-id:desired-tag`).
    pub image: ImageRef,
    /// The digest its latest scan read, when it was scanned.
    #[serde(default)]
    pub digest: Option<Digest>,
    /// When that scan completed (milliseconds since the Unix epoch), when it was scanned.
    #[serde(default)]
    pub scanned_at: Option<u64>,
    /// That scan's counts (`scan.completed`'s, e.g. `os-updates`, `integrity`, `capabilities`,
    /// `vulnerabilities`); empty when it was not scanned.
    pub counts: BTreeMap<String, u64>,
}

/// `summary.ready`: once per period, the rescan-scheduler's summary for one owner (a
/// `notify-email`): each of the owner's live images with its latest scan's counts. The notify
/// worker turns it into one mail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SummaryReady {
    /// The owner.
    pub notify_email: String,
    /// The start of the period summed up (milliseconds since the Unix epoch).
    pub period_start: u64,
    /// Its end (milliseconds since the Unix epoch).
    pub period_end: u64,
    /// The owner's images, by name (at most a bounded number).
    pub images: Vec<ImageSummary>,
    /// How many more images the owner has than are listed (the bound).
    #[serde(default)]
    pub omitted: u64,
}

/// `mail.sent`: a mail the SMTP server accepted. Its `Message-ID` derives from the events it
/// tells of, so the notify worker recognises a mail it sent already.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct MailSent {
    /// The mail's `Message-ID` header (`<…@slipway>`).
    pub message_id: String,
    /// The recipient.
    pub to: String,
    /// The subject.
    pub subject: String,
    /// The ids of the events it told of (canonical UUID strings).
    pub events: Vec<String>,
}

/// Sample payloads for tests in this crate and others.
#[cfg(any(test, feature = "test-support"))]
pub mod test_support {
    use super::*;
    use crate::index::test_support::sample_entry;

    /// A commit id that passes validation.
    pub fn sample_commit() -> CommitSha {
        CommitSha::try_from("0123456789abcdef0123456789abcdef01234567".to_owned())
            .expect("valid sample commit")
    }

    /// A valid image reference.
    pub fn sample_image(text: &str) -> ImageRef {
        ImageRef::parse(text).expect("valid sample image")
    }

    /// A valid `sha256` digest made of `pair` repeated.
    pub fn sample_digest(pair: &str) -> Digest {
        Digest::parse(&format!("sha256:{}", pair.repeat(32))).expect("valid sample digest")
    }

    /// The `build.succeeded` of `entry`: pushed to `127.0.0.1:5000` at `sample_digest("cd")`.
    pub fn sample_built(entry: Entry) -> BuildSucceeded {
        BuildSucceeded {
            image: entry
                .image()
                .in_registry("127.0.0.1:5000")
                .expect("a valid registry"),
            entry,
            commit: sample_commit(),
            digest: sample_digest("cd"),
            content_key: "key".into(),
            parent_digests: BTreeMap::new(),
            duration_ms: 1,
            record: None,
        }
    }

    /// One message of every kind, in [`Kind::ALL`] order.
    pub fn sample_messages() -> Vec<Message> {
        let entry = sample_entry();
        let finding = LintFinding {
            line: 3,
            column: 1,
            code: "DL3008".into(),
            level: Level::Warning,
            message: "Pin versions in apt get install".into(),
        };
        vec![
            Message::BuildRequested(BuildRequested {
                entry: entry.clone(),
                commit: None,
            }),
            Message::LintPassed(LintPassed {
                entry: entry.clone(),
                commit: sample_commit(),
                findings: vec![finding.clone()],
            }),
            Message::LintFailed(LintFailed {
                entry: entry.clone(),
                commit: Some(sample_commit()),
                findings: vec![finding],
                error: None,
            }),
            Message::BuildSucceeded(BuildSucceeded {
                entry: entry.clone(),
                commit: sample_commit(),
                image: sample_image("127.0.0.1:5000/centos/django:latest"),
                digest: sample_digest("ab"),
                content_key: "cd".repeat(32),
                parent_digests: [(sample_image("centos/centos:7"), sample_digest("ef"))]
                    .into_iter()
                    .collect(),
                duration_ms: 81_234,
                record: None,
            }),
            Message::BuildFailed(BuildFailed {
                entry: entry.clone(),
                commit: sample_commit(),
                stage: BuildStage::Test,
                error: "smoke test exited with 1".into(),
                log_tail: vec!["+ curl localhost".into(), "connection refused".into()],
            }),
            Message::ScanRequested(ScanRequested {
                image: sample_image("127.0.0.1:5000/centos/django:latest"),
                digest: None,
                notify_email: Some("owner@example.org".into()),
            }),
            Message::ScanCompleted(ScanCompleted {
                image: sample_image("127.0.0.1:5000/centos/django:latest"),
                digest: sample_digest("ab"),
                counts: [("os-updates".to_owned(), 3), ("integrity".to_owned(), 0)]
                    .into_iter()
                    .collect(),
                notify_email: Some("owner@example.org".into()),
            }),
            Message::ScanFailed(ScanFailed {
                image: sample_image("127.0.0.1:5000/centos/django:latest"),
                error: "manifest unknown".into(),
                notify_email: None,
            }),
            Message::GitChanged(GitChanged {
                git_url: entry.git_url.clone(),
                git_branch: entry.git_branch.clone(),
                commit: sample_commit(),
                seen_by: SeenBy::Poll,
                delivery_id: None,
            }),
            Message::IndexApplied(IndexApplied {
                git_url: "https://github.com/CentOS/container-index".into(),
                git_branch: "master".into(),
                commit: sample_commit(),
                entries: vec![entry.clone()],
            }),
            Message::IndexRejected(IndexRejected {
                git_url: "https://github.com/CentOS/container-index".into(),
                git_branch: "master".into(),
                commit: sample_commit(),
                problems: vec![IndexProblemAt {
                    file: "index.d/centos.yaml".into(),
                    line: None,
                    message: "a dependency cycle: centos/a:1 → centos/b:1 → centos/a:1".into(),
                }],
                in_force: None,
            }),
            Message::ImageRetired(ImageRetired {
                entry: entry.clone(),
                index_commit: sample_commit(),
                delete_tag: true,
            }),
            Message::BuildSkipped(BuildSkipped {
                entry: entry.clone(),
                parent: sample_image("centos/centos:7"),
                reason: "the rebuild of centos/centos:7 failed".into(),
            }),
            Message::PackagesUpdated(PackagesUpdated {
                repository: "centos-7-updates".into(),
                fingerprint: format!("sha256:{}", "12".repeat(32)),
                images: vec![ImagePackages {
                    image: entry.image(),
                    packages: vec!["openssl-libs".into()],
                }],
            }),
            Message::ImageRemoved(ImageRemoved {
                image: sample_image("127.0.0.1:5000/centos/django:latest"),
                outcome: Removal::Kept,
                digest: Some(sample_digest("ab")),
                detail: "127.0.0.1:5000/centos/django:1 names the same manifest".into(),
            }),
            Message::SummaryReady(SummaryReady {
                notify_email: "owner@example.org".into(),
                period_start: 1_796_000_000_000,
                period_end: 1_796_604_800_000,
                images: vec![ImageSummary {
                    image: sample_image("127.0.0.1:5000/centos/django:latest"),
                    digest: Some(sample_digest("ab")),
                    scanned_at: Some(1_796_100_000_000),
                    counts: [("os-updates".to_owned(), 3), ("integrity".to_owned(), 0)]
                        .into_iter()
                        .collect(),
                }],
                omitted: 2,
            }),
            Message::MailSent(MailSent {
                message_id: "<0190c3e5-7b1a-7cc0-8e3f-5a2b9c1d4e6f@slipway>".into(),
                to: "owner@example.org".into(),
                subject: "[slipway] centos/django:latest: lint failed".into(),
                events: vec!["0190c3e5-7b1a-7cc0-8e3f-5a2b9c1d4e6f".into()],
            }),
        ]
    }

    /// The messages of [`sample_messages`] with every optional field set, so that a test looking
    /// at every field of the contract (the JSON Schema's) sees each one written at least once.
    pub fn sample_messages_with_every_field() -> Vec<Message> {
        let mut messages = sample_messages();
        let digest = messages.iter().find_map(|message| match message {
            Message::ScanCompleted(completed) => Some(completed.digest.clone()),
            _ => None,
        });
        for message in &mut messages {
            match message {
                Message::BuildRequested(requested) => requested.commit = Some(sample_commit()),
                Message::LintFailed(failed) => {
                    failed.error = Some("DL4000 error: MAINTAINER is deprecated".into());
                }
                Message::ScanRequested(requested) => requested.digest = digest.clone(),
                Message::BuildSucceeded(built) => {
                    built.record = Some(BuildRecord {
                        dockerfile_digest: sample_digest("df").to_string(),
                        builder: "slipway-build/0.1.0".into(),
                        started_at: Timestamp::from_unix_millis(1_700_000_000_000),
                    });
                }
                Message::ScanFailed(failed) => {
                    failed.notify_email = Some("owner@example.org".into());
                }
                Message::GitChanged(changed) => {
                    changed.seen_by = SeenBy::Webhook;
                    changed.delivery_id = Some("72d3162e-cc78-11e3-81ab-4c9367dc0958".into());
                }
                Message::IndexRejected(rejected) => {
                    rejected.problems[0].line = Some(12);
                    rejected.in_force = Some(sample_commit());
                }
                _ => {}
            }
        }
        messages
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::sample_messages;
    use super::*;

    #[test]
    fn kinds_parse_from_their_routing_keys() {
        for kind in Kind::ALL {
            assert_eq!(kind.as_str().parse::<Kind>(), Ok(kind));
        }
        assert!("build".parse::<Kind>().is_err());
    }

    #[test]
    fn sample_messages_cover_every_kind_in_order() {
        let kinds: Vec<Kind> = sample_messages().iter().map(Message::kind).collect();
        assert_eq!(kinds, Kind::ALL);
    }

    #[test]
    fn every_message_about_an_image_names_it() {
        for message in sample_messages() {
            let about_the_index_or_a_repository = matches!(
                message.kind(),
                Kind::GitChanged
                    | Kind::IndexApplied
                    | Kind::IndexRejected
                    | Kind::PackagesUpdated
                    | Kind::SummaryReady
                    | Kind::MailSent
            );
            let Some((image, digest)) = message.image() else {
                assert!(about_the_index_or_a_repository, "{:?}", message.kind());
                continue;
            };
            assert!(!about_the_index_or_a_repository, "{:?}", message.kind());
            assert_eq!(image.path(), "centos/django", "{:?}", message.kind());
            // The sample `image.removed` names the manifest it kept.
            let pinned = matches!(
                message.kind(),
                Kind::BuildSucceeded | Kind::ScanCompleted | Kind::ImageRemoved
            );
            assert_eq!(digest.is_some(), pinned, "{:?}", message.kind());
        }
    }

    #[test]
    fn commit_ids_are_validated() {
        assert!(CommitSha::try_from("a".repeat(40)).is_ok());
        assert!(CommitSha::try_from("a".repeat(64)).is_ok());
        for bad in [
            "",
            "master",
            &"A".repeat(40),
            &"a".repeat(39),
            &"g".repeat(40),
        ] {
            assert!(CommitSha::try_from(bad.to_owned()).is_err(), "{bad:?}");
        }
    }
}

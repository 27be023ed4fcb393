//! The one scan pipeline, shared by `slipway scan` and the scan worker: read the image from its
//! source, analyse it (inventory, integrity, capabilities), compare its packages with the
//! configured repositories and the OSV database, and make the report. The callers only differ in
//! where the result goes (stdout, or the reports stream and `scan.completed`).

use std::collections::BTreeMap;
use std::time::Instant;

use slipway_common::{Digest, ImageRef, Timestamp};
use slipway_docker::DockerEngine;

use crate::image::{DigestSet, ReadLimits};
use crate::osv::Database;
use crate::package::Ecosystem;
use crate::report::{
    Analysis, AnalysisError, ScanOptions, ScanReport, Subject, analyse, match_vulnerabilities,
};
use crate::source::{ReadImage, SourceError, Target, read_daemon_image, read_local};
use crate::updates::{Fetcher, PackageIndex, Repo};

/// Where the image to scan is.
#[derive(Debug)]
pub enum Source<'a> {
    /// An image of this node's Docker daemon, by a reference the daemon resolves (name:tag,
    /// `repository@digest` or an id).
    Daemon {
        /// The daemon.
        engine: &'a DockerEngine,
        /// The reference the daemon looks up.
        reference: String,
    },
    /// An archive file, stdin or a root filesystem directory.
    Local(Target),
}

/// What the pipeline consults besides the image.
#[derive(Clone, Copy, Debug, Default)]
pub struct PipelineOptions<'a> {
    /// Compare every package-owned file with its package database.
    pub integrity: bool,
    /// The repositories to look for updates in (none: updates are reported as not checked).
    pub repos: &'a [Repo],
    /// The package indexes to look for language-package updates in (none: reported as not
    /// checked).
    pub indexes: &'a [PackageIndex],
    /// The fetcher for `repos` and `indexes`.
    pub fetcher: Option<&'a Fetcher>,
    /// The OSV database (none: the report says none is configured).
    pub database: Option<&'a Database>,
    /// How much of the image's content may be kept in memory (`[scan] max_file_bytes`,
    /// `max_kept_bytes`): a package database over them fails the scan, naming the file.
    pub limits: ReadLimits,
}

/// The image the report is about, as the caller names it.
#[derive(Clone, Debug)]
pub struct ScanSubject {
    /// The name shown in the report (an image reference, or an archive or directory path).
    pub name: String,
    /// The image reference, when the source is a registry image: its repository picks the
    /// digest among the daemon's repository digests.
    pub image: Option<ImageRef>,
    /// The digest the request pinned, if any.
    pub pinned: Option<Digest>,
}

/// A finished scan.
#[derive(Debug)]
pub struct Scanned {
    /// The report, as `slipway scan` prints it and the worker stores it.
    pub report: ScanReport,
    /// The analysis the report was made from (inventory, durations).
    pub analysis: Analysis,
    /// The manifest digest that was scanned, when known ([`subject_digest`]).
    pub digest: Option<Digest>,
    /// When the report was made.
    pub scanned_at: Timestamp,
    /// How many updates the repositories offer.
    pub updates_found: u64,
    /// How many language-package updates the indexes offer, by ecosystem.
    pub language_updates_found: BTreeMap<Ecosystem, u64>,
}

impl Scanned {
    /// How many packages of each ecosystem the image holds.
    pub fn packages_by_ecosystem(&self) -> BTreeMap<Ecosystem, u64> {
        let mut packages = BTreeMap::new();
        for package in &self.analysis.inventory.packages {
            *packages.entry(package.ecosystem).or_default() += 1;
        }
        packages
    }
}

/// Why a scan did not finish.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The image could not be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The image's package databases are unreadable or its files could not be hashed.
    #[error(transparent)]
    Analysis(#[from] AnalysisError),
    /// A blocking task died.
    #[error("the scan task stopped: {0}")]
    Task(String),
}

impl PipelineError {
    /// Whether trying again later may succeed (the daemon was busy, a file vanished), rather
    /// than the image itself being at fault.
    pub fn is_transient(&self) -> bool {
        match self {
            PipelineError::Source(error) => error.is_transient(),
            PipelineError::Analysis(AnalysisError::Inventory(_)) => false,
            PipelineError::Analysis(AnalysisError::Hashing(_)) | PipelineError::Task(_) => true,
        }
    }
}

/// The digest a report names (one rule for every caller): the digest the request pinned, else
/// the one of `image`'s repository among the daemon's `repository@digest` list; `None` when
/// neither says (an archive, a directory, an image never pushed or scanned by id).
pub fn subject_digest(
    image: Option<&ImageRef>,
    pinned: Option<&Digest>,
    repo_digests: &[String],
) -> Option<Digest> {
    if let Some(digest) = pinned.or(image.and_then(ImageRef::digest)) {
        return Some(digest.clone());
    }
    let repository = image?.repository();
    repo_digests.iter().find_map(|entry| {
        let (name, digest) = entry.split_once('@')?;
        (name == repository).then(|| Digest::parse(digest).ok())?
    })
}

/// Scans the image at `source`: reads it, analyses it, checks updates and vulnerabilities, and
/// makes the report. Durations of every step (read, inventory, integrity, updates,
/// vulnerabilities, total) are in the report.
pub async fn scan(
    source: Source<'_>,
    subject: &ScanSubject,
    options: PipelineOptions<'_>,
) -> Result<Scanned, PipelineError> {
    let started = Instant::now();
    // A stream is read once: its digests are computed on the way (a directory's later, lazily).
    let stream_digests = if options.integrity {
        DigestSet::ALL
    } else {
        DigestSet::NONE
    };
    let read = match source {
        Source::Daemon { engine, reference } => {
            read_daemon_image(engine, &reference, stream_digests, options.limits).await?
        }
        Source::Local(target) => {
            let limits = options.limits;
            slipway_common::telemetry::spawn_blocking_in_span(move || {
                read_local(&target, stream_digests, limits)
            })
            .await
            .map_err(|e| PipelineError::Task(e.to_string()))??
        }
    };
    let read_time = started.elapsed();
    let ReadImage {
        mut fs,
        access,
        image_id,
        repo_digests,
    } = read;
    let digest = subject_digest(
        subject.image.as_ref(),
        subject.pinned.as_ref(),
        &repo_digests,
    );
    let scan_options = ScanOptions {
        integrity: options.integrity,
    };
    let mut analysis =
        slipway_common::telemetry::spawn_blocking_in_span(move || analyse(&mut fs, scan_options))
            .await
            .map_err(|e| PipelineError::Task(e.to_string()))??;
    let updates_started = Instant::now();
    let (updates, language_updates) = futures_util::join!(
        crate::updates::check(options.fetcher, options.repos, &analysis.inventory),
        crate::updates::language::lookup::check(
            options.fetcher,
            options.indexes,
            &analysis.inventory
        ),
    );
    analysis
        .durations
        .insert("updates", updates_started.elapsed());
    let vulnerabilities = match_vulnerabilities(&mut analysis, options.database);
    let updates_found = u64::try_from(updates.updates.len()).unwrap_or(u64::MAX);
    let language_updates_found = language_updates.updates.iter().fold(
        BTreeMap::new(),
        |mut found: BTreeMap<Ecosystem, u64>, update| {
            *found.entry(update.ecosystem).or_default() += 1;
            found
        },
    );
    analysis.durations.insert("read", read_time);
    analysis.durations.insert("total", started.elapsed());
    let scanned_at = Timestamp::now();
    let report = ScanReport::new(
        Subject {
            image: subject.name.clone(),
            digest: digest.as_ref().map(ToString::to_string),
            image_id,
            access,
        },
        scanned_at.to_rfc3339(),
        &analysis,
        (updates, language_updates),
        vulnerabilities,
    );
    Ok(Scanned {
        report,
        analysis,
        digest,
        scanned_at,
        updates_found,
        language_updates_found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(pair: &str) -> Digest {
        Digest::parse(&format!("sha256:{}", pair.repeat(32))).unwrap()
    }

    #[test]
    fn the_digest_is_the_pinned_one_else_the_repositorys_own() {
        let image = ImageRef::parse("r:5000/team/app:1").unwrap();
        let listed = vec![
            format!("r:5000/other/app@{}", digest("aa")),
            format!("r:5000/team/app@{}", digest("bb")),
        ];
        assert_eq!(
            subject_digest(Some(&image), Some(&digest("cc")), &listed),
            Some(digest("cc"))
        );
        assert_eq!(
            subject_digest(Some(&image), None, &listed),
            Some(digest("bb"))
        );
        let pinned_in_reference = image.clone().with_digest(digest("dd"));
        assert_eq!(
            subject_digest(Some(&pinned_in_reference), None, &listed),
            Some(digest("dd"))
        );
        let unpushed = ImageRef::parse("r:5000/new/app:1").unwrap();
        assert_eq!(subject_digest(Some(&unpushed), None, &listed), None);
        assert_eq!(
            subject_digest(None, None, &listed),
            None,
            "an archive has none"
        );
        let garbage = vec!["r:5000/team/app@sha256:short".to_owned()];
        assert_eq!(subject_digest(Some(&image), None, &garbage), None);
    }
}

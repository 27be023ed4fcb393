//! The hostile image archives of issue 13, scanned the way `slipway scan ARCHIVE` scans them
//! (`pipeline::scan` of the archive, integrity on, the default limits): each finishes in under
//! 5 s with a clear error naming what is wrong, or a correct report with warnings. Peak memory
//! is checked in a child process by `scan_memory.rs`.

mod hostile;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hostile::Hostile;
use slipway_scan::image::ReadLimits;
use slipway_scan::pipeline::{self, PipelineError, PipelineOptions, ScanSubject, Scanned, Source};
use slipway_scan::source::Target;

/// A directory of its own for one test's archive, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("slipway-hostile-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Scans the archive `hostile` with the default limits; the result and how long it took.
async fn scan(hostile: Hostile) -> (Result<Scanned, PipelineError>, Duration) {
    let scratch = Scratch::new(hostile.name());
    let path = hostile.write(&scratch.0);
    let subject = ScanSubject {
        name: path.display().to_string(),
        image: None,
        pinned: None,
    };
    let options = PipelineOptions {
        integrity: true,
        limits: ReadLimits::default(),
        ..PipelineOptions::default()
    };
    let started = Instant::now();
    let result = pipeline::scan(
        Source::Local(Target::parse(&path.display().to_string())),
        &subject,
        options,
    )
    .await;
    (result, started.elapsed())
}

/// Scans `hostile`, expecting an error that contains every one of `expected`, in under 5 s.
async fn assert_refused(hostile: Hostile, expected: &[&str]) -> String {
    let (result, elapsed) = scan(hostile).await;
    let error = match result {
        Ok(scanned) => panic!(
            "{}: scanned with {} packages, expected an error",
            hostile.name(),
            scanned.report.packages.len()
        ),
        Err(error) => error,
    };
    let text = error.to_string();
    for part in expected {
        assert!(
            text.contains(part),
            "{}: {text:?} lacks {part:?}",
            hostile.name()
        );
    }
    assert!(
        !error.is_transient(),
        "{}: {text}: a retry cannot help",
        hostile.name()
    );
    assert!(
        !hostile.timed() || elapsed < Duration::from_secs(5),
        "{}: took {elapsed:?}",
        hostile.name()
    );
    text
}

#[tokio::test]
async fn md5sums_files_of_256_mib_are_refused_at_the_first_naming_it() {
    assert_refused(
        Hostile::Md5sumsBomb,
        &["var/lib/dpkg/info/pkg0.md5sums is over the per-file limit of 67108864 bytes"],
    )
    .await;
}

#[tokio::test]
async fn md5sums_files_each_under_the_file_limit_are_refused_past_the_total() {
    assert_refused(
        Hostile::Md5sumsUnderFileLimit,
        &[
            "var/lib/dpkg/info/pkg2.md5sums is over the limit on all kept files together of \
             134217728 bytes (125829120 bytes kept before it)",
            "max_kept_bytes",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_256_mib_status_file_with_8_hard_links_is_refused_naming_it() {
    assert_refused(
        Hostile::StatusHardlinks,
        &["var/lib/dpkg/status is over the per-file limit of 67108864 bytes"],
    )
    .await;
}

#[tokio::test]
async fn a_status_file_of_a_million_tiny_stanzas_is_refused_before_listing_them() {
    assert_refused(
        Hostile::ManyTinyStanzas,
        &[
            "the dpkg database is unreadable: var/lib/dpkg/status: expected at most 100000 \
             stanzas",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_2_gib_status_file_is_an_error_not_an_image_without_packages() {
    assert_refused(
        Hostile::HugeStatus,
        &[
            "layer0/layer.tar: var/lib/dpkg/status is over the per-file limit",
            "max_file_bytes",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_sparse_20_gib_md5sums_is_refused_without_reading_it() {
    assert_refused(
        Hostile::SparseMd5sums,
        &["layer0/layer.tar: var/lib/dpkg/info/big.md5sums is over the per-file limit"],
    )
    .await;
}

#[tokio::test]
async fn a_sparse_20_gib_md5sums_in_a_directory_is_refused_without_reading_it() {
    assert_refused(
        Hostile::SparseMd5sumsDirectory,
        &["var/lib/dpkg/info/big.md5sums is over the per-file limit"],
    )
    .await;
}

#[tokio::test]
async fn a_manifest_repeating_one_layer_50000_times_is_refused() {
    assert_refused(
        Hostile::RepeatedLayers,
        &["at most 256 layers", "50000 layers listed (1 distinct)"],
    )
    .await;
}

#[tokio::test]
async fn a_missing_layer_listed_twice_is_an_error() {
    assert_refused(
        Hostile::MissingLayerTwice,
        &["layer7/layer.tar", "no such entry in the archive"],
    )
    .await;
}

#[tokio::test]
async fn a_truncated_gzip_layer_says_truncated_gzip() {
    assert_refused(
        Hostile::TruncatedGzip,
        &["layer0/layer.tar", "truncated gzip"],
    )
    .await;
}

/// Scans `hostile`, expecting a report listing `packages` with one warning containing each of
/// `warning`.
async fn assert_reported(hostile: Hostile, packages: &[&str], warning: &[&str]) {
    let (result, elapsed) = scan(hostile).await;
    let scanned = result.unwrap_or_else(|e| panic!("{}: {e}", hostile.name()));
    let names: Vec<&str> = scanned
        .report
        .packages
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, packages, "{}", hostile.name());
    let warnings: Vec<&String> = scanned
        .report
        .warnings
        .iter()
        .filter(|w| !w.starts_with("capabilities"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}: {warnings:?}", hostile.name());
    for part in warning {
        assert!(
            warnings[0].contains(part),
            "{}: {warnings:?} lacks {part:?}",
            hostile.name()
        );
    }
    assert!(
        !hostile.timed() || elapsed < Duration::from_secs(5),
        "{}: took {elapsed:?}",
        hostile.name()
    );
}

#[tokio::test]
async fn a_package_listing_a_million_files_is_reported_with_its_files_cut_at_the_limit() {
    assert_reported(
        Hostile::ManyPackageFiles,
        &["p"],
        &[
            "files not listed: /var/lib/dpkg/status lists more than 500000 files",
            "those of p past the limit",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_dpkg_stanza_without_version_is_skipped_with_a_warning_naming_its_line() {
    assert_reported(
        Hostile::DpkgStanzaWithoutVersion,
        &["base-files", "zlib1g"],
        &[
            "dpkg package skipped",
            "var/lib/dpkg/status",
            "line 5",
            "no Version field",
        ],
    )
    .await;
}

#[tokio::test]
async fn an_apk_entry_without_version_is_skipped_with_a_warning_naming_its_line() {
    assert_reported(
        Hostile::ApkEntryWithoutVersion,
        &["musl", "zlib"],
        &[
            "apk package skipped",
            "lib/apk/db/installed",
            "line 5",
            "no V: line",
        ],
    )
    .await;
}

#[tokio::test]
async fn an_unwanted_sparse_20_gib_file_is_skipped_without_expanding_its_hole() {
    let scratch = Scratch::new("unwanted-sparse");
    let layer = hostile::plain_tar(&[("etc/os-release", hostile::DEBIAN_RELEASE)]);
    let sparse = hostile::sparse_tar("opt/disk.img", 20 * 1024 * hostile::MIB);
    let path = scratch.0.join("unwanted-sparse.tar");
    std::fs::write(&path, hostile::image(&[layer, sparse], &[0, 1])).expect("write the archive");
    let subject = ScanSubject {
        name: path.display().to_string(),
        image: None,
        pinned: None,
    };
    // Without integrity nothing needs the file's bytes: its size comes from its header.
    let options = PipelineOptions::default();
    let started = Instant::now();
    let scanned = pipeline::scan(Source::Local(Target::Archive(path)), &subject, options)
        .await
        .expect("an image with a large file is an image");
    let elapsed = started.elapsed();
    assert_eq!(
        scanned.report.os.as_ref().map(|os| os.id.as_str()),
        Some("debian")
    );
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}

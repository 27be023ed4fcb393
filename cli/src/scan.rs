//! `slipway scan TARGET`: the package inventory and integrity of an image of the local Docker
//! daemon (by name, digest or id), of an image archive (`docker save` output, a file or `-` for
//! stdin) or of a root filesystem directory.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use slipway_common::envelope::Timestamp;
use slipway_scan::image::DigestSet;
use slipway_scan::osv::Database;
use slipway_scan::report::{ScanOptions, ScanReport, Subject, analyse, match_vulnerabilities};
use slipway_scan::sbom::{SbomSubject, cyclonedx};
use slipway_scan::source::{ReadImage, Target, read_daemon_image, read_local};
use slipway_scan::updates::{FetchSettings, Fetcher, Repo, RepoConfig, validate_repos};

/// Output formats of `slipway scan`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ScanFormat {
    /// Human-readable tables.
    Table,
    /// The full report as one JSON document (the shape the scan worker stores).
    Json,
    /// The CycloneDX 1.5 SBOM alone.
    Cyclonedx,
}

/// Arguments of `slipway scan`.
#[derive(Args, Debug)]
pub struct ScanArgs {
    /// What to scan: an image of the local Docker daemon (`name:tag`, `name@sha256:…`, an id), an
    /// image archive (`docker save IMAGE > image.tar`; `-` reads one from stdin), or a root
    /// filesystem directory. An existing file or directory of that name wins over an image name.
    pub target: String,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    pub format: ScanFormat,
    /// Skip integrity checking (no file digests are computed: faster).
    #[arg(long)]
    pub no_integrity: bool,
    /// A directory of OSV records (e.g. osv.dev's export, one directory per ecosystem) to match
    /// the packages against, offline. Without it the report says no database is configured.
    #[arg(long, value_name = "DIR", env = "SLIPWAY_OSV_DIR")]
    pub osv_dir: Option<std::path::PathBuf>,
    /// A TOML file with `[[repos]]` (the apt, yum and apk repositories to look for updates in,
    /// as in the scan worker's configuration) and optionally `[updates]` (index cache directory,
    /// limits). Without it the report says updates were not checked.
    #[arg(long, value_name = "FILE")]
    pub repos: Option<std::path::PathBuf>,
}

/// The `[[repos]]` and `[updates]` of a `--repos` file.
#[derive(serde::Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct ReposFile {
    updates: FetchSettings,
    repos: Vec<RepoConfig>,
}

/// The repositories of `file` (none without one) and a fetcher for them.
fn repositories(file: Option<&std::path::Path>) -> anyhow::Result<(Vec<Repo>, Option<Fetcher>)> {
    let Some(file) = file else {
        return Ok((Vec::new(), None));
    };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let parsed: ReposFile = config::Config::builder()
        .add_source(config::File::from_str(&text, config::FileFormat::Toml))
        .build()
        .and_then(config::Config::try_deserialize)
        .with_context(|| format!("{}", file.display()))?;
    let repos = validate_repos(&parsed.repos).with_context(|| format!("{}", file.display()))?;
    let fetcher = Fetcher::new(&parsed.updates)?;
    Ok((repos, Some(fetcher)))
}

/// Runs `slipway scan`: exit 0 when the image was read, 2 when it could not be.
pub async fn run(args: &ScanArgs) -> ExitCode {
    match scan(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("slipway scan: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn scan(args: &ScanArgs) -> anyhow::Result<()> {
    let integrity = !args.no_integrity && !matches!(args.format, ScanFormat::Cyclonedx);
    let database = match &args.osv_dir {
        Some(dir) => {
            let dir = dir.clone();
            let database = tokio::task::spawn_blocking(move || Database::load(&dir)).await??;
            let summary = database.summary();
            if summary.skipped > 0 {
                eprintln!(
                    "slipway scan: {} of the OSV records in {} were skipped as unreadable (see the JSON report)",
                    summary.skipped,
                    database.path().display()
                );
            }
            Some(database)
        }
        None => None,
    };
    // An archive streams once: its digests are computed on the way (a directory's later, lazily).
    let stream_digests = if integrity {
        DigestSet::ALL
    } else {
        DigestSet::NONE
    };
    let target = Target::parse(&args.target);
    let read = match &target {
        Target::Image(reference) => {
            let engine = slipway_docker::DockerEngine::connect().await.context(
                "connecting to the Docker daemon (to scan a file or directory, give its path)",
            )?;
            read_daemon_image(&engine, reference, stream_digests).await?
        }
        local => {
            let local = local.clone();
            tokio::task::spawn_blocking(move || read_local(&local, stream_digests)).await??
        }
    };
    let ReadImage {
        mut fs,
        access,
        image_id,
        repo_digests,
    } = read;
    let mut analysis =
        tokio::task::spawn_blocking(move || analyse(&mut fs, ScanOptions { integrity })).await??;
    let subject = Subject {
        image: args.target.clone(),
        digest: repo_digests
            .first()
            .and_then(|d| d.split_once('@'))
            .map(|(_, digest)| digest.to_owned()),
        image_id,
        access,
    };
    let mut out = std::io::stdout().lock();
    if let ScanFormat::Cyclonedx = args.format {
        let sbom_subject = SbomSubject {
            image: args.target.clone(),
            digest: subject.digest,
            timestamp: Timestamp::now().to_rfc3339(),
            tool_name: "slipway".to_owned(),
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        serde_json::to_writer_pretty(&mut out, &cyclonedx(&analysis.inventory, &sbom_subject))?;
        writeln!(out)?;
        return Ok(());
    }
    let (repos, fetcher) = repositories(args.repos.as_deref())?;
    let updates = slipway_scan::updates::check(fetcher.as_ref(), &repos, &analysis.inventory).await;
    let vulnerabilities = match_vulnerabilities(&mut analysis, database.as_ref());
    let report = ScanReport::new(
        subject,
        Timestamp::now().to_rfc3339(),
        &analysis,
        updates,
        vulnerabilities,
    );
    if let ScanFormat::Json = args.format {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        let value = serde_json::to_value(&report)?;
        write!(out, "{}", crate::report_table::render(&value, true))?;
    }
    Ok(())
}

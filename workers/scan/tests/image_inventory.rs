//! The inventory of real images read from `docker save` streams: the package set equals what the
//! image's own package manager lists, and a file changed after install is seen as changed.

use std::io::Read as _;
use std::process::{Command, Stdio};

use slipway_scan::image::archive::read_archive;
use slipway_scan::image::{DigestSet, ReadLimits, ReadOptions};
use slipway_scan::inventory::{inventory, wanted};
use slipway_scan::package::{DigestAlgorithm, Ecosystem};
use slipway_scan::report::{ScanOptions, analyse};
use slipway_scan::source::{Access, read_daemon_image, read_exported_image};
use slipway_tests::{BASE_IMAGE, docker, ensure_docker};

/// Inventory and integrity of `fs`.
fn analysed(mut fs: slipway_scan::image::ImageFs) -> slipway_scan::report::Analysis {
    analyse(&mut fs, ScanOptions { integrity: true }).expect("analyse")
}

/// Streams `docker save image` into the archive reader (no temporary file).
fn saved(image: &str, digests: DigestSet) -> slipway_scan::image::ImageFs {
    let mut child = Command::new("docker")
        .args(["save", image])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run docker save");
    let stdout = child.stdout.take().expect("piped stdout");
    let options = ReadOptions {
        keep: &wanted,
        digests,
        limits: ReadLimits::default(),
    };
    let fs = read_archive(stdout, image, &options).expect("read the saved image");
    let mut rest = Vec::new();
    let _ = child.stdout.take().map(|mut s| s.read_to_end(&mut rest));
    assert!(child.wait().expect("docker save exits").success());
    fs
}

#[test]
fn the_debian_base_images_packages_are_exactly_what_dpkg_query_lists() {
    ensure_docker();
    let fs = saved(BASE_IMAGE, DigestSet::NONE);
    let found = inventory(&fs).expect("inventory");
    let os = found.os.as_ref().expect("an OS");
    assert_eq!(
        (os.id.as_str(), os.version_id.as_deref()),
        ("debian", Some("12"))
    );

    let listed = docker(
        &[
            "run",
            "--rm",
            "--network",
            "none",
            BASE_IMAGE,
            "dpkg-query",
            "-W",
            "-f",
            "${db:Status-Status} ${Package} ${Version} ${Architecture}\\n",
        ],
        None,
    );
    let mut expected: Vec<String> = listed
        .lines()
        .filter_map(|l| l.strip_prefix("installed "))
        .map(str::to_owned)
        .collect();
    expected.sort();
    let mut actual: Vec<String> = found
        .packages
        .iter()
        .filter(|p| p.ecosystem == Ecosystem::Deb)
        .map(|p| {
            format!(
                "{} {} {}",
                p.name,
                p.version,
                p.arch.as_deref().unwrap_or("")
            )
        })
        .collect();
    actual.sort();
    assert!(
        expected.len() > 50,
        "a minbase image has ~90 packages: {expected:?}"
    );
    assert_eq!(actual, expected);
}

#[test]
fn file_digests_from_the_stream_match_the_dpkg_md5sums() {
    ensure_docker();
    let fs = saved(BASE_IMAGE, DigestSet::ALL);
    let found = inventory(&fs).expect("inventory");
    let mut checked = 0;
    let mut differing = Vec::new();
    for package in &found.packages {
        for file in &package.files {
            let (Some(expected), Some(meta)) = (&file.digest, fs.meta(&file.path)) else {
                continue;
            };
            assert_eq!(expected.algorithm, DigestAlgorithm::Md5);
            checked += 1;
            if meta.digests.hex(DigestAlgorithm::Md5).as_ref() != Some(&expected.hex) {
                differing.push(file.path.clone());
            }
        }
    }
    assert!(checked > 1000, "only {checked} files checked");
    // A fresh image matches its package database except configuration files edited by
    // maintainer scripts at install time.
    let unexpected: Vec<_> = differing
        .iter()
        .filter(|p| !p.starts_with("/etc/"))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
}

#[test]
fn files_changed_after_install_are_reported_by_integrity() {
    ensure_docker();
    let tag = format!("slipway-test/integrity:{}", std::process::id());
    let dockerfile = format!(
        "FROM {BASE_IMAGE}\nRUN echo tampered >> /usr/lib/os-release && echo 'multi on' >> /etc/host.conf && rm /usr/bin/tac\n"
    );
    docker(
        &["build", "-q", "--network", "none", "-t", &tag, "-"],
        Some(&dockerfile),
    );

    // The same report whichever way the image is read: a `docker save` stream (digests as
    // files pass), the daemon's overlay2 layer directories (only package files hashed, later) and
    // the daemon's export stream.
    let archive = analysed(saved(&tag, DigestSet::ALL));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (layers, exported) = runtime.block_on(async {
        let engine = slipway_docker::DockerEngine::connect()
            .await
            .expect("dockerd");
        let layers = read_daemon_image(&engine, &tag, DigestSet::ALL, ReadLimits::default())
            .await
            .expect("read from the daemon");
        let exported = read_exported_image(&engine, &tag, DigestSet::ALL, ReadLimits::default())
            .await
            .expect("read the export stream");
        (layers, exported)
    });
    assert_eq!(
        layers.access,
        Access::LayerDirectories,
        "this host reads overlay2 directly"
    );
    assert_eq!(exported.access, Access::ExportStream);
    let layers = analysed(layers.fs);
    let exported = analysed(exported.fs);
    // Only now: the layer directories are hashed lazily, while the image exists.
    let _ = Command::new("docker").args(["rmi", &tag]).output();
    assert_eq!(layers.inventory, archive.inventory);
    assert_eq!(exported.inventory, archive.inventory);
    assert_eq!(layers.integrity, archive.integrity);
    assert_eq!(exported.integrity, archive.integrity);
    let report = archive.integrity.expect("integrity was asked for");
    let failures: Vec<(&str, &str)> = report
        .failures
        .iter()
        .map(|f| (f.package.as_str(), f.path.as_str()))
        .collect();
    assert!(
        failures.contains(&("base-files", "/usr/lib/os-release")),
        "{failures:?}"
    );
    assert!(
        failures.contains(&("coreutils", "/usr/bin/tac")),
        "{failures:?}"
    );
    assert!(
        report
            .config_changes
            .iter()
            .any(|f| f.path == "/etc/host.conf"),
        "{:?}",
        report.config_changes
    );
    assert!(
        !failures.iter().any(|(_, p)| *p == "/etc/host.conf"),
        "a config change is not a failure"
    );
    assert_eq!(failures.len(), 2, "nothing else differs: {failures:?}");
    assert!(report.verified > 1000);
}

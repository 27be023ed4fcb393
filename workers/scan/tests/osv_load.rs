//! Loading and matching a large OSV tree: 10,000 generated records in osv.dev's bulk export
//! layout (one directory per ecosystem), loaded and matched against a 3,000-package inventory.
//! Prints how long each step took (`cargo test -p slipway-scan --test osv_load -- --nocapture`)
//! and checks the results, so the figures are from a load that really indexed everything.

use std::time::Instant;

use slipway_scan::osv::{self, Database};
use slipway_scan::package::{Ecosystem, Inventory, OsIdentity, Package};
use slipway_tests::TempDir;

/// Records generated per ecosystem directory.
const PER_ECOSYSTEM: usize = 2_500;

/// One generated record for package `name` in `ecosystem`, fixed at `fixed`.
fn record(id: &str, ecosystem: &str, name: &str, fixed: &str) -> String {
    format!(
        r#"{{"schema_version": "1.6.0", "id": "{id}", "modified": "2024-01-01T00:00:00Z",
  "aliases": ["CVE-{id}"], "summary": "generated record {id}",
  "details": "A generated record, about as long as a short real one, to measure loading.",
  "affected": [{{"package": {{"ecosystem": "{ecosystem}", "name": "{name}"}},
    "ranges": [{{"type": "ECOSYSTEM", "events": [{{"introduced": "0"}}, {{"fixed": "{fixed}"}}]}}],
    "versions": ["0.9", "1.0"]}}],
  "references": [{{"type": "WEB", "url": "https://example.org/{id}"}}]}}"#
    )
}

fn package(ecosystem: Ecosystem, name: String, version: &str) -> Package {
    Package {
        ecosystem,
        source_name: None,
        source_version: None,
        location: format!("/{name}"),
        name,
        version: version.to_owned(),
        arch: None,
        license: None,
        files: vec![],
    }
}

#[test]
fn ten_thousand_records_load_and_match() {
    let dir = TempDir::new("osv-load-50k");
    let started = Instant::now();
    for (directory, ecosystem, fixed) in [
        ("Debian", "Debian:12", "1.5-1"),
        ("PyPI", "PyPI", "1.5"),
        ("npm", "npm", "1.5.0"),
        ("RubyGems", "RubyGems", "1.5"),
    ] {
        for i in 0..PER_ECOSYSTEM {
            let id = format!("{directory}-{i}");
            // 1,000 packages per ecosystem, each named by a dozen records.
            let name = format!("package{}", i % 1_000);
            dir.file(
                &format!("{directory}/{id}.json"),
                &record(&id, ecosystem, &name, fixed),
            );
        }
    }
    let written = started.elapsed();

    let started = Instant::now();
    let database = match Database::load(dir.path()) {
        Ok(database) => database,
        Err(err) => panic!("{err}"),
    };
    let loaded = started.elapsed();
    assert_eq!(database.summary().records, 4 * PER_ECOSYSTEM);
    assert_eq!(database.summary().skipped, 0);

    // 750 affected (1.0 / 1.0-1 / 1.0.0) and 750 fixed (2.0…) packages in each of 3 ecosystems
    // whose names the records use, so half the lookups find a dozen records each.
    let mut packages = Vec::new();
    for i in 0..1_500 {
        let affected = i % 2 == 0;
        let name = format!("package{}", i % 1_000 + if i < 1_000 { 0 } else { 10_000 });
        let (deb, pypi, npm) = if affected {
            ("1.0-1", "1.0", "1.0.0")
        } else {
            ("2.0-1", "2.0", "2.0.0")
        };
        packages.push(package(Ecosystem::Deb, name.clone(), deb));
        packages.push(package(Ecosystem::Pypi, name.clone(), pypi));
        packages.push(package(Ecosystem::Npm, name, npm));
    }
    let inventory = Inventory {
        os: Some(OsIdentity {
            id: "debian".to_owned(),
            version_id: Some("12".to_owned()),
            ..OsIdentity::default()
        }),
        packages,
    };
    let started = Instant::now();
    let report = osv::check(&inventory, Some(&database));
    let matched = started.elapsed();
    // Affected packages are the even i below 1,000 (500 names), each named by 12 or 13
    // records (12,500 records over 1,000 names), in 3 ecosystems.
    let per_name = |n: usize| PER_ECOSYSTEM / 1_000 + usize::from(n < PER_ECOSYSTEM % 1_000);
    let expected: usize = (0..1_000).step_by(2).map(per_name).sum::<usize>() * 3;
    assert_eq!(report.vulnerabilities.len(), expected);

    eprintln!(
        "osv: wrote {} records in {written:.2?}, loaded and indexed them in {loaded:.2?} \
         ({:.0} records/s), matched {} packages in {matched:.2?} ({} vulnerabilities)",
        4 * PER_ECOSYSTEM,
        (4 * PER_ECOSYSTEM) as f64 / loaded.as_secs_f64(),
        inventory.packages.len(),
        report.vulnerabilities.len(),
    );
}

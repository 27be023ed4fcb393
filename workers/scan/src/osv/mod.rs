//! Offline CVE matching: the inventory's packages against an OSV database on disk, with each
//! ecosystem's own version ordering. Without a configured database, the report says so instead
//! of claiming a clean image.
//!
//! Parts, by concern: [`record`] (the OSV record model, validated), [`load`] (reading a directory
//! tree of records, skipping and reporting what is malformed, indexing by package),
//! [`ecosystem`] (which OSV ecosystem, release and name each inventory package is known by) and
//! [`matching`] (the schema's range semantics). [`check`] puts them together.

pub mod ecosystem;
pub mod load;
pub mod matching;
pub mod record;

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

pub use ecosystem::{Target, Unmapped};
pub use load::{Database, LoadSummary, LoadWarning, OsvError};
pub use record::{Record, Severity};

use crate::package::{Ecosystem, Inventory};

/// Whether an OSV database was consulted, and what loading it met.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum OsvStatus {
    /// No database is configured: nothing was matched, which says nothing about the image.
    NotConfigured,
    /// A database was loaded and every mapped package was matched against it.
    Loaded {
        /// The directory it was loaded from.
        path: String,
        /// What the load met (records, skipped files with reasons, withdrawn, …).
        #[serde(flatten)]
        summary: LoadSummary,
    },
}

impl fmt::Display for OsvStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OsvStatus::NotConfigured => write!(f, "no OSV database configured"),
            OsvStatus::Loaded { path, summary } => write!(
                f,
                "database: {path}, {} records, {} skipped",
                summary.records, summary.skipped
            ),
        }
    }
}

/// One vulnerability affecting one installed package.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Vulnerability {
    /// The installed package's name.
    pub package: String,
    /// Its packaging system.
    pub ecosystem: Ecosystem,
    /// Its installed version.
    pub installed_version: String,
    /// Where it was found in the image (two copies of a Python package can differ).
    pub location: String,
    /// The record's `id`.
    pub id: String,
    /// The record's `aliases`.
    pub aliases: Vec<String>,
    /// The record's `upstream` (the CVEs a distribution advisory covers).
    pub upstream: Vec<String>,
    /// The record's summary (or the first line of its details).
    pub summary: Option<String>,
    /// The OSV ecosystem the match was made in (`Debian:12`, `PyPI`).
    pub osv_ecosystem: String,
    /// The name the record gives the package (a deb's source package, `openssl` for `libssl3`).
    pub osv_package: String,
    /// The version compared with the record, when not the installed one (a source version).
    pub compared_version: Option<String>,
    /// Versions that fix it for this package, lowest first per range; empty when there is none.
    pub fixed_versions: Vec<String>,
    /// The package's severity scores, or the record's when the package has none.
    pub severity: Vec<Severity>,
    /// The database's own rating (`database_specific.severity`, e.g. GitHub's `HIGH`).
    pub database_severity: Option<String>,
}

/// Packages that could not be matched because they have no OSV ecosystem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NotChecked {
    /// Their packaging system.
    pub ecosystem: Ecosystem,
    /// Why ([`Unmapped`], as a sentence).
    pub reason: String,
    /// How many packages.
    pub packages: usize,
}

/// The offline CVE match of one inventory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OsvReport {
    /// Whether a database was used, and what loading it met.
    pub database: OsvStatus,
    /// Vulnerabilities found, sorted by package name, ecosystem, installed version (as text),
    /// location and id.
    pub vulnerabilities: Vec<Vulnerability>,
    /// Packages left unchecked for lack of an OSV ecosystem (empty without a database).
    pub not_checked: Vec<NotChecked>,
}

/// Matches every package of `inventory` against `database`, or reports that no database is
/// configured when there is none.
///
/// Each package is looked up under its OSV ecosystem ([`ecosystem::target`]); each `affected`
/// entry of that ecosystem's applicable releases is evaluated ([`matching::affected_by`]); a
/// record that affects a package through several entries or names is reported once for it,
/// with the fixed versions of all of them.
pub fn check(inventory: &Inventory, database: Option<&Database>) -> OsvReport {
    let Some(database) = database else {
        return OsvReport {
            database: OsvStatus::NotConfigured,
            vulnerabilities: Vec::new(),
            not_checked: Vec::new(),
        };
    };
    let mut vulnerabilities = Vec::new();
    let mut unmapped: BTreeMap<(Ecosystem, Unmapped), usize> = BTreeMap::new();
    for package in &inventory.packages {
        let target = match ecosystem::target(package.ecosystem, inventory.os.as_ref()) {
            Ok(target) => target,
            Err(reason) => {
                *unmapped.entry((package.ecosystem, reason)).or_default() += 1;
                continue;
            }
        };
        // Per record id: the vulnerability being built for this package.
        let mut found: BTreeMap<&str, Vulnerability> = BTreeMap::new();
        for lookup in ecosystem::lookups(package, &target) {
            for (record, affected) in database.entries(target.family, &lookup.key) {
                if !target.release.accepts(affected.release()) {
                    continue;
                }
                let Some(fixed) =
                    matching::affected_by(affected, package.ecosystem, lookup.version)
                else {
                    continue;
                };
                let vulnerability = found.entry(&record.id).or_insert_with(|| Vulnerability {
                    package: package.name.clone(),
                    ecosystem: package.ecosystem,
                    installed_version: package.version.clone(),
                    location: package.location.clone(),
                    id: record.id.clone(),
                    aliases: record.aliases.clone(),
                    upstream: record.upstream.clone(),
                    summary: record.summary.clone(),
                    osv_ecosystem: affected.ecosystem.clone(),
                    osv_package: affected.name.clone(),
                    compared_version: (lookup.version != package.version)
                        .then(|| lookup.version.to_owned()),
                    fixed_versions: Vec::new(),
                    severity: if affected.severity.is_empty() {
                        record.severity.clone()
                    } else {
                        affected.severity.clone()
                    },
                    database_severity: record.database_severity.clone(),
                });
                for fix in fixed {
                    if !vulnerability.fixed_versions.contains(&fix) {
                        vulnerability.fixed_versions.push(fix);
                    }
                }
            }
        }
        vulnerabilities.extend(found.into_values());
    }
    vulnerabilities.sort();
    let not_checked = unmapped
        .into_iter()
        .map(|((ecosystem, reason), packages)| NotChecked {
            ecosystem,
            reason: reason.to_string(),
            packages,
        })
        .collect();
    OsvReport {
        database: OsvStatus::Loaded {
            path: database.path().display().to_string(),
            summary: database.summary().clone(),
        },
        vulnerabilities,
        not_checked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::{OsIdentity, Package};
    use slipway_tests::TempDir;

    /// A Debian security advisory as Debian's converter writes it: source package names, one
    /// entry per release, `introduced: 0` up to the fixed version, CVEs in `upstream`.
    const DSA_GLIBC: &str = r#"{
      "id": "DSA-5514-1",
      "modified": "2023-10-03T00:00:00Z",
      "upstream": ["CVE-2023-4911"],
      "summary": "glibc - security update",
      "affected": [
        {"package": {"ecosystem": "Debian:11", "name": "glibc", "purl": "pkg:deb/debian/glibc?arch=source"},
         "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.31-13+deb11u7"}]}]},
        {"package": {"ecosystem": "Debian:12", "name": "glibc", "purl": "pkg:deb/debian/glibc?arch=source"},
         "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.36-9+deb12u3"}]}]}
      ]
    }"#;

    /// A Debian LTS-style advisory with an epoch in the fixed version, and one with a tilde.
    const DLA_ATTR: &str = r#"{
      "id": "DSA-9001-1",
      "affected": [
        {"package": {"ecosystem": "Debian:12", "name": "attr"},
         "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1:2.5.1-4+deb12u1"}]}]},
        {"package": {"ecosystem": "Debian:12", "name": "openssl"},
         "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"}]}]}
      ]
    }"#;

    /// A Debian security tracker record: no summary, no fix yet, affected versions listed.
    const DEBIAN_CVE_ZLIB: &str = r#"{
      "schema_version": "1.7.0",
      "id": "DEBIAN-CVE-2023-45853",
      "upstream": ["CVE-2023-45853"],
      "details": "MiniZip in zlib through 1.3 has an integer overflow.\nMore text.",
      "affected": [
        {"package": {"ecosystem": "Debian:12", "name": "zlib"},
         "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
         "versions": ["1:1.2.13.dfsg-1"],
         "ecosystem_specific": {"urgency": "not yet assigned"}}
      ]
    }"#;

    /// An Alpine secdb record: source (origin) package, branch-scoped ecosystem.
    const ALPINE_OPENSSL: &str = r#"{
      "id": "ALPINE-CVE-2023-5678",
      "upstream": ["CVE-2023-5678"],
      "affected": [
        {"package": {"ecosystem": "Alpine:v3.18", "name": "openssl"},
         "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.1.4-r1"}]}]},
        {"package": {"ecosystem": "Alpine:v3.19", "name": "openssl"},
         "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.1.4-r3"}]}]}
      ]
    }"#;

    /// A PyPI advisory with both an ECOSYSTEM range and the enumerated versions.
    const PYSEC_JINJA2: &str = r#"{
      "id": "PYSEC-2024-1",
      "aliases": ["CVE-2024-22195", "GHSA-h5c8-rqwp-cp95"],
      "summary": "Jinja2 xmlattr filter allows keys with spaces",
      "affected": [
        {"package": {"ecosystem": "PyPI", "name": "jinja2", "purl": "pkg:pypi/jinja2"},
         "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.1.3"}]}],
         "versions": ["2.11.3", "3.0.0", "3.1.2"]}
      ],
      "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:L/I:L/A:N"}]
    }"#;

    /// A GitHub advisory on npm with a SEMVER range, and a withdrawn one.
    const GHSA_LODASH: &str = r#"[
      {"id": "GHSA-35jh-r3h4-6jhm",
       "aliases": ["CVE-2021-23337"],
       "summary": "Command Injection in lodash",
       "database_specific": {"severity": "HIGH"},
       "affected": [{"package": {"ecosystem": "npm", "name": "lodash"},
                     "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "4.17.21"}]}]}]},
      {"id": "GHSA-withdrawn",
       "withdrawn": "2022-01-01T00:00:00Z",
       "affected": [{"package": {"ecosystem": "npm", "name": "lodash"},
                     "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}]}]}
    ]"#;

    /// A RubyGems advisory with no fix, only a last affected version; an unknown ecosystem.
    const GEM_LAST_AFFECTED: &str = r#"[
      {"id": "GHSA-gem-last",
       "affected": [{"package": {"ecosystem": "RubyGems", "name": "rack"},
                     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"last_affected": "2.2.3"}]}]}]},
      {"id": "FOO-1",
       "affected": [{"package": {"ecosystem": "Foo:1", "name": "rack"},
                     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]}]}
    ]"#;

    /// Rocky Linux and Red Hat advisories: epochs in fixed versions, binary package names.
    const RLSA_OPENSSL: &str = r#"[
      {"id": "RLSA-2024:1234",
       "affected": [
         {"package": {"ecosystem": "Rocky Linux:9", "name": "openssl-libs"},
          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1:3.0.7-27.el9"}]}]},
         {"package": {"ecosystem": "Rocky Linux:8", "name": "openssl-libs"},
          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1:1.1.1k-12.el8_9"}]}]}]},
      {"id": "RHSA-2024:1234",
       "affected": [
         {"package": {"ecosystem": "Red Hat:enterprise_linux:9::baseos", "name": "openssl"},
          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1:3.0.7-27.el9"}]}]}]}
    ]"#;

    fn database() -> (TempDir, Database) {
        let dir = TempDir::new("osv-check");
        for (name, json) in [
            ("Debian/DSA-5514-1.json", DSA_GLIBC),
            ("Debian/DSA-9001-1.json", DLA_ATTR),
            ("Debian/DEBIAN-CVE-2023-45853.json", DEBIAN_CVE_ZLIB),
            ("Alpine/ALPINE-CVE-2023-5678.json", ALPINE_OPENSSL),
            ("PyPI/PYSEC-2024-1.json", PYSEC_JINJA2),
            ("npm/all.json", GHSA_LODASH),
            ("RubyGems/all.json", GEM_LAST_AFFECTED),
            ("Rocky Linux/all.json", RLSA_OPENSSL),
            ("broken.json", "{\"id\": \"BROKEN\", \"affected\": ["),
        ] {
            dir.file(name, json);
        }
        let db = match Database::load(dir.path()) {
            Ok(db) => db,
            Err(err) => panic!("{err}"),
        };
        (dir, db)
    }

    fn package(
        ecosystem: Ecosystem,
        name: &str,
        version: &str,
        source: Option<(&str, Option<&str>)>,
    ) -> Package {
        Package {
            ecosystem,
            name: name.to_owned(),
            version: version.to_owned(),
            arch: None,
            source_name: source.map(|(name, _)| name.to_owned()),
            source_version: source.and_then(|(_, version)| version.map(str::to_owned)),
            license: None,
            location: format!("/{name}"),
            files: vec![],
        }
    }

    fn inventory(id: &str, version_id: &str, packages: Vec<Package>) -> Inventory {
        Inventory {
            os: Some(OsIdentity {
                id: id.to_owned(),
                version_id: Some(version_id.to_owned()),
                ..OsIdentity::default()
            }),
            packages,
        }
    }

    /// (package, record id) of every vulnerability found.
    fn found(report: &OsvReport) -> Vec<(&str, &str)> {
        report
            .vulnerabilities
            .iter()
            .map(|v| (v.package.as_str(), v.id.as_str()))
            .collect()
    }

    #[test]
    fn debian_matches_source_packages_with_source_versions() {
        let (_dir, db) = database();
        let deb = |name, version, source| package(Ecosystem::Deb, name, version, source);
        let inventory = inventory(
            "debian",
            "12",
            vec![
                deb("libc6", "2.36-9+deb12u2", Some(("glibc", None))), // below the fix
                deb("libc-bin", "2.36-9+deb12u3", Some(("glibc", None))), // at the fix
                deb("libc-l10n", "2.36-9+deb12u4", Some(("glibc", None))), // above
                deb("glibc", "2.31-13+deb11u6", None), // a Debian 11 version: 12's fix applies
                deb("libattr1", "1:2.5.1-4", Some(("attr", None))), // epoch, below
                deb("attr-old", "2.5.2-1", Some(("attr", None))), // no epoch: epoch 0, below
                deb("attr", "1:2.5.1-4+deb12u1", None), // at
                deb(
                    "libssl3",
                    "3.0.11-1~deb12u1+b1",
                    Some(("openssl", Some("3.0.11-1~deb12u1"))),
                ), // binNMU of a source below the fix
                deb(
                    "openssl",
                    "3.0.11-1~deb12u2+b1",
                    Some(("openssl", Some("3.0.11-1~deb12u2"))),
                ), // binNMU of the fixed source
                deb("zlib1g", "1:1.2.13.dfsg-1", Some(("zlib", None))), // no fix yet
            ],
        );
        let report = check(&inventory, Some(&db));
        assert_eq!(
            found(&report),
            vec![
                ("attr-old", "DSA-9001-1"),
                ("glibc", "DSA-5514-1"),
                ("libattr1", "DSA-9001-1"),
                ("libc6", "DSA-5514-1"),
                ("libssl3", "DSA-9001-1"),
                ("zlib1g", "DEBIAN-CVE-2023-45853"),
            ]
        );
        let libssl = &report.vulnerabilities[4];
        assert_eq!(libssl.osv_package, "openssl");
        assert_eq!(libssl.osv_ecosystem, "Debian:12");
        assert_eq!(libssl.compared_version.as_deref(), Some("3.0.11-1~deb12u1"));
        assert_eq!(libssl.fixed_versions, vec!["3.0.11-1~deb12u2".to_owned()]);
        let libc = &report.vulnerabilities[3];
        assert_eq!(libc.upstream, vec!["CVE-2023-4911".to_owned()]);
        assert_eq!(libc.fixed_versions, vec!["2.36-9+deb12u3".to_owned()]);
        assert_eq!(libc.compared_version, None);
        let zlib = &report.vulnerabilities[5];
        assert_eq!(zlib.fixed_versions, Vec::<String>::new());
        assert_eq!(
            zlib.summary.as_deref(),
            Some("MiniZip in zlib through 1.3 has an integer overflow.")
        );
        assert_eq!(
            report.database.to_string(),
            format!("database: {}, 10 records, 1 skipped", db.path().display())
        );
    }

    #[test]
    fn other_releases_records_do_not_apply() {
        let (_dir, db) = database();
        // Debian 11: only the Debian:11 entry of the DSA; the Debian:12-only records do not apply.
        let bullseye = inventory(
            "debian",
            "11",
            vec![
                package(
                    Ecosystem::Deb,
                    "libc6",
                    "2.31-13+deb11u6",
                    Some(("glibc", None)),
                ),
                package(
                    Ecosystem::Deb,
                    "libc-bin",
                    "2.31-13+deb11u7",
                    Some(("glibc", None)),
                ),
                package(
                    Ecosystem::Deb,
                    "zlib1g",
                    "1:1.2.11.dfsg-2",
                    Some(("zlib", None)),
                ),
            ],
        );
        let report = check(&bullseye, Some(&db));
        assert_eq!(found(&report), vec![("libc6", "DSA-5514-1")]);
        assert_eq!(
            report.vulnerabilities[0].fixed_versions,
            vec!["2.31-13+deb11u7".to_owned()]
        );
        // Ubuntu names source packages too, but Debian's records are not Ubuntu's.
        let jammy = inventory(
            "ubuntu",
            "22.04",
            vec![package(
                Ecosystem::Deb,
                "libc6",
                "2.35-0ubuntu3",
                Some(("glibc", None)),
            )],
        );
        assert_eq!(found(&check(&jammy, Some(&db))), vec![]);
    }

    #[test]
    fn alpine_matches_origin_packages_of_its_branch() {
        let (_dir, db) = database();
        let apk = |name, version| package(Ecosystem::Apk, name, version, Some(("openssl", None)));
        let alpine = inventory(
            "alpine",
            "3.18.4",
            vec![
                apk("libssl3", "3.1.4-r0"),
                apk("libcrypto3", "3.1.4-r1"),
                apk("openssl-dbg", "3.1.3_rc1-r5"),
            ],
        );
        let report = check(&alpine, Some(&db));
        assert_eq!(
            found(&report),
            vec![
                ("libssl3", "ALPINE-CVE-2023-5678"),
                ("openssl-dbg", "ALPINE-CVE-2023-5678"),
            ]
        );
        assert_eq!(report.vulnerabilities[0].osv_ecosystem, "Alpine:v3.18");
        assert_eq!(
            report.vulnerabilities[0].fixed_versions,
            vec!["3.1.4-r1".to_owned()]
        );
        // On 3.19 the fix is r3: r1 is still affected.
        let edge = inventory("alpine", "3.19.0", vec![apk("libcrypto3", "3.1.4-r1")]);
        assert_eq!(
            found(&check(&edge, Some(&db))),
            vec![("libcrypto3", "ALPINE-CVE-2023-5678")]
        );
    }

    #[test]
    fn language_packages_match_by_name_with_their_own_ordering() {
        let (_dir, db) = database();
        let inventory = Inventory {
            os: None,
            packages: vec![
                package(Ecosystem::Pypi, "Jinja2", "3.1.2", None),
                package(Ecosystem::Pypi, "jinja2", "2.11.3.post0", None),
                package(Ecosystem::Pypi, "JINJA2", "3.1.3", None),
                package(Ecosystem::Pypi, "jinja_2", "3.0.0", None),
                package(Ecosystem::Npm, "lodash", "4.17.20", None),
                package(Ecosystem::Npm, "lodash-es", "4.17.20", None),
                package(Ecosystem::Npm, "Lodash", "4.17.20", None),
                package(Ecosystem::Npm, "lodash", "4.17.21-rc.1", None),
                package(Ecosystem::Npm, "lodash", "4.17.21", None),
                package(Ecosystem::Gem, "rack", "2.2.3", None),
                package(Ecosystem::Gem, "rack", "2.2.3.1", None),
                package(Ecosystem::Gem, "rack", "0.9", None),
            ],
        };
        let report = check(&inventory, Some(&db));
        let with_versions: Vec<(&str, &str, &str)> = report
            .vulnerabilities
            .iter()
            .map(|v| {
                (
                    v.package.as_str(),
                    v.installed_version.as_str(),
                    v.id.as_str(),
                )
            })
            .collect();
        assert_eq!(
            with_versions,
            vec![
                ("Jinja2", "3.1.2", "PYSEC-2024-1"),
                ("jinja2", "2.11.3.post0", "PYSEC-2024-1"),
                ("lodash", "4.17.20", "GHSA-35jh-r3h4-6jhm"),
                ("lodash", "4.17.21-rc.1", "GHSA-35jh-r3h4-6jhm"),
                ("rack", "2.2.3", "GHSA-gem-last"),
            ]
        );
        let jinja = &report.vulnerabilities[0];
        assert_eq!(jinja.osv_package, "jinja2");
        assert_eq!(jinja.aliases.len(), 2);
        assert_eq!(jinja.severity.len(), 1);
        assert_eq!(jinja.fixed_versions, vec!["3.1.3".to_owned()]);
        let lodash = &report.vulnerabilities[2];
        assert_eq!(lodash.database_severity.as_deref(), Some("HIGH"));
        assert_eq!(
            report.vulnerabilities[4].fixed_versions,
            Vec::<String>::new()
        );
    }

    #[test]
    fn rocky_matches_binary_names_and_epochs() {
        let (_dir, db) = database();
        let rpm = |name, version| package(Ecosystem::Rpm, name, version, Some(("openssl", None)));
        let rocky = inventory(
            "rocky",
            "9.3",
            vec![
                rpm("openssl-libs", "1:3.0.7-26.el9"),
                rpm("openssl-libs", "1:3.0.7-27.el9"),
                rpm("openssl-libs", "3.0.7-28.el9"), // epoch 0: below epoch 1
                rpm("openssl", "1:3.0.7-26.el9"),    // no Rocky record names it
            ],
        );
        let report = check(&rocky, Some(&db));
        let versions: Vec<(&str, &str)> = report
            .vulnerabilities
            .iter()
            .map(|v| (v.installed_version.as_str(), v.id.as_str()))
            .collect();
        assert_eq!(
            versions,
            vec![
                ("1:3.0.7-26.el9", "RLSA-2024:1234"),
                ("3.0.7-28.el9", "RLSA-2024:1234"),
            ]
        );
        // The Red Hat record names the source package `openssl`: it applies on RHEL 9.
        let rhel = inventory("rhel", "9.4", vec![rpm("openssl-libs", "1:3.0.7-26.el9")]);
        assert_eq!(
            found(&check(&rhel, Some(&db))),
            vec![("openssl-libs", "RHSA-2024:1234")]
        );
    }

    #[test]
    fn unmapped_packages_are_counted_as_not_checked() {
        let (_dir, db) = database();
        let centos = inventory(
            "centos",
            "7",
            vec![
                package(Ecosystem::Rpm, "bash", "4.2.46-35.el7_9", None),
                package(Ecosystem::Rpm, "openssl-libs", "1:1.0.2k-26.el7_9", None),
                package(Ecosystem::Npm, "lodash", "4.17.20", None),
            ],
        );
        let report = check(&centos, Some(&db));
        assert_eq!(found(&report), vec![("lodash", "GHSA-35jh-r3h4-6jhm")]);
        assert_eq!(
            report.not_checked,
            vec![NotChecked {
                ecosystem: Ecosystem::Rpm,
                reason: "OSV has no ecosystem for OS \"centos\"".to_owned(),
                packages: 2,
            }]
        );
    }

    #[test]
    fn without_a_database_the_report_says_so() {
        let inventory = inventory(
            "debian",
            "12",
            vec![package(
                Ecosystem::Deb,
                "libc6",
                "2.36-9",
                Some(("glibc", None)),
            )],
        );
        let report = check(&inventory, None);
        assert_eq!(report.database, OsvStatus::NotConfigured);
        assert_eq!(report.database.to_string(), "no OSV database configured");
        assert!(report.vulnerabilities.is_empty());
        assert_eq!(
            serde_json::to_value(&report).unwrap_or_default(),
            serde_json::json!({
                "database": {"status": "not-configured"},
                "vulnerabilities": [],
                "not_checked": [],
            })
        );
    }

    #[test]
    fn the_loaded_status_serialises_its_counts_and_warnings() {
        let (_dir, db) = database();
        let report = check(&Inventory::default(), Some(&db));
        let json = serde_json::to_value(&report.database).unwrap_or_default();
        assert_eq!(json["status"], "loaded");
        assert_eq!(json["records"], 10);
        assert_eq!(json["skipped"], 1);
        assert_eq!(json["withdrawn"], 1);
        assert!(
            json["warnings"][0]["path"]
                .as_str()
                .is_some_and(|path| path.ends_with("broken.json"))
        );
    }
}

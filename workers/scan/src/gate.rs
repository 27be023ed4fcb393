//! What makes a scan fail a CI job (`slipway scan --fail-on … --exit-code N`), as Trivy users
//! expect of `--severity … --exit-code 1`: the kinds of findings that count, and for
//! vulnerabilities the least severity that does. Pure: a report in, the reasons out.
//!
//! A vulnerability's severity is the highest of what its record says: the database's own rating
//! (`database_specific.severity`, GitHub's `LOW|MODERATE|HIGH|CRITICAL`), textual ratings
//! (Ubuntu's `low|medium|high|critical`), and the base score of a CVSS v3 vector, rated as
//! CVSS does (0.1–3.9 low, 4.0–6.9 medium, 7.0–8.9 high, 9.0–10 critical). Without any of those
//! it is unknown, which only `vulnerabilities` with no level counts.

use std::fmt;

use crate::osv::Vulnerability;
use crate::report::ScanReport;

/// A vulnerability's severity, least first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum VulnerabilitySeverity {
    /// No rating the scanner can read.
    Unknown,
    /// Low.
    Low,
    /// Medium (GitHub's "moderate").
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl VulnerabilitySeverity {
    fn parse(text: &str) -> Option<Self> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "low" | "negligible" => Self::Low,
            "medium" | "moderate" => Self::Medium,
            "high" | "important" => Self::High,
            "critical" => Self::Critical,
            _ => return None,
        })
    }

    /// The rating of a CVSS base score.
    fn of_score(score: f64) -> Self {
        match score {
            s if s >= 9.0 => Self::Critical,
            s if s >= 7.0 => Self::High,
            s if s >= 4.0 => Self::Medium,
            s if s > 0.0 => Self::Low,
            _ => Self::Unknown,
        }
    }
}

impl fmt::Display for VulnerabilitySeverity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unknown => "unknown",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        })
    }
}

/// One kind of finding that fails the scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailOn {
    /// Any OS package with a newer version in a configured repository.
    Updates,
    /// Any file that differs from its package (not configuration changes).
    Integrity,
    /// Any host privilege the image asks for.
    Capabilities,
    /// Any vulnerability at least this severe (`Unknown`: any at all).
    Vulnerabilities(VulnerabilitySeverity),
}

/// Reads `--fail-on`: a comma-separated list of `updates`, `integrity`, `capabilities`,
/// `vulnerabilities` and `vulnerabilities:LEVEL` (low, medium, high, critical).
pub fn parse_fail_on(text: &str) -> Result<Vec<FailOn>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| match item.split_once(':') {
            None => match item {
                "updates" => Ok(FailOn::Updates),
                "integrity" => Ok(FailOn::Integrity),
                "capabilities" => Ok(FailOn::Capabilities),
                "vulnerabilities" => Ok(FailOn::Vulnerabilities(VulnerabilitySeverity::Unknown)),
                other => Err(format!(
                    "unknown finding {other:?}: expecting updates, integrity, capabilities, \
                     vulnerabilities or vulnerabilities:low|medium|high|critical"
                )),
            },
            Some(("vulnerabilities", level)) => VulnerabilitySeverity::parse(level)
                .map(FailOn::Vulnerabilities)
                .ok_or_else(|| {
                    format!("unknown severity {level:?}: expecting low, medium, high or critical")
                }),
            Some(_) => Err(format!(
                "{item:?}: only vulnerabilities take a level (vulnerabilities:high)"
            )),
        })
        .collect()
}

/// The severity of `vulnerability` (see the module's documentation).
pub fn severity_of(vulnerability: &Vulnerability) -> VulnerabilitySeverity {
    let rated = vulnerability
        .database_severity
        .as_deref()
        .and_then(VulnerabilitySeverity::parse);
    let scored = vulnerability.severity.iter().filter_map(|severity| {
        if severity.kind.starts_with("CVSS_V3") {
            cvss3_base_score(&severity.score).map(VulnerabilitySeverity::of_score)
        } else {
            VulnerabilitySeverity::parse(&severity.score)
        }
    });
    rated
        .into_iter()
        .chain(scored)
        .max()
        .unwrap_or(VulnerabilitySeverity::Unknown)
}

/// The base score of a CVSS v3.0/v3.1 vector (`CVSS:3.1/AV:N/AC:L/…`), or `None` when a base
/// metric is missing or unknown.
pub fn cvss3_base_score(vector: &str) -> Option<f64> {
    let metric = |name: &str| {
        vector
            .split('/')
            .find_map(|part| part.strip_prefix(name)?.strip_prefix(':'))
    };
    let attack_vector = match metric("AV")? {
        "N" => 0.85,
        "A" => 0.62,
        "L" => 0.55,
        "P" => 0.2,
        _ => return None,
    };
    let complexity = match metric("AC")? {
        "L" => 0.77,
        "H" => 0.44,
        _ => return None,
    };
    let changed = match metric("S")? {
        "U" => false,
        "C" => true,
        _ => return None,
    };
    let privileges = match (metric("PR")?, changed) {
        ("N", _) => 0.85,
        ("L", false) => 0.62,
        ("L", true) => 0.68,
        ("H", false) => 0.27,
        ("H", true) => 0.5,
        _ => return None,
    };
    let interaction = match metric("UI")? {
        "N" => 0.85,
        "R" => 0.62,
        _ => return None,
    };
    let impact_of = |name: &str| -> Option<f64> {
        Some(match metric(name)? {
            "H" => 0.56,
            "L" => 0.22,
            "N" => 0.0,
            _ => return None,
        })
    };
    let (c, i, a) = (impact_of("C")?, impact_of("I")?, impact_of("A")?);
    let iss = 1.0 - (1.0 - c) * (1.0 - i) * (1.0 - a);
    let impact = if changed {
        7.52 * (iss - 0.029) - 3.25 * (iss - 0.02).powi(15)
    } else {
        6.42 * iss
    };
    if impact <= 0.0 {
        return Some(0.0);
    }
    let exploitability = 8.22 * attack_vector * complexity * privileges * interaction;
    let base = if changed {
        (1.08 * (impact + exploitability)).min(10.0)
    } else {
        (impact + exploitability).min(10.0)
    };
    Some(round_up(base))
}

/// CVSS v3.1's Roundup: the smallest number of one decimal at least `value`.
fn round_up(value: f64) -> f64 {
    let scaled = (value * 100_000.0).round() as i64;
    if scaled % 10_000 == 0 {
        scaled as f64 / 100_000.0
    } else {
        ((scaled / 10_000) + 1) as f64 / 10.0
    }
}

/// Why `report` fails under `fail_on`: one reason per kind that has findings, empty when it
/// passes.
pub fn failing(report: &ScanReport, fail_on: &[FailOn]) -> Vec<String> {
    let mut reasons = Vec::new();
    for rule in fail_on {
        match *rule {
            FailOn::Updates => {
                let (os, language) = (
                    report.updates.updates.len(),
                    report.language_updates.updates.len(),
                );
                if os > 0 {
                    reasons.push(format!("{os} OS package update(s) available"));
                }
                if language > 0 {
                    reasons.push(format!("{language} language package update(s) available"));
                }
            }
            FailOn::Integrity => {
                let failures = report.integrity.as_ref().map_or(0, |i| i.failures.len());
                if failures > 0 {
                    reasons.push(format!("{failures} file(s) differ from their package"));
                }
            }
            FailOn::Capabilities if !report.capabilities.is_empty() => reasons.push(format!(
                "{} host privilege(s) asked for",
                report.capabilities.len()
            )),
            FailOn::Vulnerabilities(least) => {
                let count = report
                    .vulnerabilities
                    .vulnerabilities
                    .iter()
                    .filter(|v| severity_of(v) >= least)
                    .count();
                if count > 0 {
                    reasons.push(if least == VulnerabilitySeverity::Unknown {
                        format!("{count} vulnerabilit(ies)")
                    } else {
                        format!("{count} vulnerabilit(ies) of severity {least} or higher")
                    });
                }
            }
            _ => {}
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::osv::record::Severity;

    /// Base scores as NVD's calculator gives them.
    #[test]
    fn cvss3_base_scores_match_the_specification() {
        for (vector, score) in [
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
            ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N", 5.5),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
            ("CVSS:3.0/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N", 5.9),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
        ] {
            assert_eq!(cvss3_base_score(vector), Some(score), "{vector}");
        }
        assert_eq!(cvss3_base_score("CVSS:3.1/AV:N/AC:L"), None, "incomplete");
        assert_eq!(
            cvss3_base_score("AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),
            None
        );
    }

    fn vulnerability(database: Option<&str>, scores: &[(&str, &str)]) -> Vulnerability {
        Vulnerability {
            package: "openssl".into(),
            ecosystem: crate::package::Ecosystem::Deb,
            installed_version: "1".into(),
            location: "var/lib/dpkg/status".into(),
            id: "CVE-1".into(),
            aliases: Vec::new(),
            upstream: Vec::new(),
            summary: None,
            osv_ecosystem: "Debian:12".into(),
            osv_package: "openssl".into(),
            compared_version: None,
            fixed_versions: Vec::new(),
            severity: scores
                .iter()
                .map(|(kind, score)| Severity {
                    kind: (*kind).into(),
                    score: (*score).into(),
                })
                .collect(),
            database_severity: database.map(str::to_owned),
        }
    }

    #[test]
    fn a_vulnerability_is_as_severe_as_the_highest_rating_it_carries() {
        use VulnerabilitySeverity::*;
        assert_eq!(severity_of(&vulnerability(Some("MODERATE"), &[])), Medium);
        assert_eq!(
            severity_of(&vulnerability(
                Some("LOW"),
                &[("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")]
            )),
            Critical
        );
        assert_eq!(
            severity_of(&vulnerability(None, &[("Ubuntu", "high")])),
            High
        );
        assert_eq!(
            severity_of(&vulnerability(None, &[("CVSS_V4", "CVSS:4.0/AV:N")])),
            Unknown,
            "v4 vectors are not scored"
        );
    }

    #[test]
    fn fail_on_lists_parse_and_bad_ones_say_what_is_expected() {
        use VulnerabilitySeverity::*;
        assert_eq!(
            parse_fail_on("updates, integrity,capabilities,vulnerabilities:HIGH").unwrap(),
            [
                FailOn::Updates,
                FailOn::Integrity,
                FailOn::Capabilities,
                FailOn::Vulnerabilities(High)
            ]
        );
        assert_eq!(
            parse_fail_on("vulnerabilities").unwrap(),
            [FailOn::Vulnerabilities(Unknown)]
        );
        assert!(
            parse_fail_on("vulns")
                .unwrap_err()
                .contains("expecting updates")
        );
        assert!(
            parse_fail_on("vulnerabilities:severe")
                .unwrap_err()
                .contains("expecting low")
        );
        assert!(
            parse_fail_on("updates:high")
                .unwrap_err()
                .contains("only vulnerabilities")
        );
    }
}

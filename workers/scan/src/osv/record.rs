//! The OSV record model (OSV schema 1.6/1.7): the fields matching and reporting use, read from
//! JSON and validated, so the rest of [`super`] only sees well-formed records.
//!
//! Kept: `id`, `modified`, `withdrawn`, `aliases`, `upstream`, `summary` (or the first line of
//! `details` when there is no summary), `severity`, `database_specific.severity` (GitHub's
//! advisories put their rating there) and, per `affected` entry, the package, `ranges`,
//! `versions` and `severity`. Everything else is skipped while parsing.
//!
//! Validation follows the schema's requirements that matching depends on: a non-empty `id`, a
//! non-empty ecosystem and name for every package, exactly one of `introduced`, `fixed`,
//! `last_affected`, `limit` in every event. An `affected` entry without a package (allowed for
//! `GIT`-only entries) is dropped, as nothing in an image can match it.

use serde::{Deserialize, Serialize};

/// A validated OSV record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// `id` (`DSA-5514-1`, `GHSA-…`, `PYSEC-…`).
    pub id: String,
    /// `modified`, when given (RFC 3339, UTC).
    pub modified: Option<String>,
    /// `withdrawn`, when given: the record no longer stands.
    pub withdrawn: Option<String>,
    /// `aliases`: the same vulnerability in other databases.
    pub aliases: Vec<String>,
    /// `upstream`: the upstream vulnerabilities a distribution advisory covers (CVE ids).
    pub upstream: Vec<String>,
    /// `summary`, or the first line of `details` when there is none.
    pub summary: Option<String>,
    /// Record-level `severity`.
    pub severity: Vec<Severity>,
    /// `database_specific.severity`, when it is a string (`HIGH`).
    pub database_severity: Option<String>,
    /// `affected` entries that name a package.
    pub affected: Vec<Affected>,
}

/// One `severity` entry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Severity {
    /// `CVSS_V2`, `CVSS_V3`, `CVSS_V4`, `Ubuntu`, ….
    #[serde(rename = "type")]
    pub kind: String,
    /// The vector or rating.
    pub score: String,
}

/// One `affected` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Affected {
    /// `package.ecosystem` (`Debian:12`, `PyPI`, `Red Hat:enterprise_linux:9::baseos`).
    pub ecosystem: String,
    /// `package.name`.
    pub name: String,
    /// `ranges`.
    pub ranges: Vec<Range>,
    /// `versions`: affected versions listed one by one.
    pub versions: Vec<String>,
    /// Package-level `severity` (then the record has none).
    pub severity: Vec<Severity>,
}

impl Affected {
    /// The ecosystem's name before its first `:` (`Debian` for `Debian:12`).
    pub fn family(&self) -> &str {
        split_ecosystem(&self.ecosystem).0
    }

    /// The ecosystem's release scope after its first `:` (`12` for `Debian:12`,
    /// `enterprise_linux:9::baseos` for Red Hat), `None` when unscoped.
    pub fn release(&self) -> Option<&str> {
        split_ecosystem(&self.ecosystem).1
    }
}

/// Splits an OSV ecosystem string at its first `:` into family and release scope.
pub fn split_ecosystem(ecosystem: &str) -> (&str, Option<&str>) {
    match ecosystem.split_once(':') {
        Some((family, release)) => (family, Some(release)),
        None => (ecosystem, None),
    }
}

/// How a range's versions are ordered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeKind {
    /// `ECOSYSTEM`: the package ecosystem's own ordering.
    Ecosystem,
    /// `SEMVER`: SemVer 2.0 precedence.
    Semver,
    /// `GIT`: commit hashes; needs the repository, so never evaluated here.
    Git,
    /// A type the schema does not define; never evaluated.
    Other(String),
}

/// One range: a timeline of events in one ordering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    /// `type`.
    pub kind: RangeKind,
    /// `events`, in the record's order.
    pub events: Vec<Event>,
}

/// One range event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Versions from here on are affected (`0`: from the first version).
    Introduced(String),
    /// Versions from here on are not affected.
    Fixed(String),
    /// Versions after this one are not affected.
    LastAffected(String),
    /// Only versions below a limit are in the range (`*`: no limit).
    Limit(String),
}

/// Parses one JSON document: a record, or an array of records. Each record is read and
/// validated on its own: the result has one entry per record, an error saying what is wrong for
/// each that is not valid. An error for the whole document when it is neither an object nor an
/// array, or an array that is not valid JSON.
pub fn parse_document(bytes: &[u8]) -> Result<Vec<Result<Record, String>>, String> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        Some(b'{') => Ok(vec![
            serde_json::from_slice::<RawRecord>(bytes)
                .map_err(|err| err.to_string())
                .and_then(validate),
        ]),
        Some(b'[') => {
            let raws: Vec<serde_json::Value> =
                serde_json::from_slice(bytes).map_err(|err| err.to_string())?;
            Ok(raws
                .into_iter()
                .enumerate()
                .map(|(i, raw)| {
                    let raw: RawRecord =
                        serde_json::from_value(raw).map_err(|err| format!("[{i}]: {err}"))?;
                    validate(raw).map_err(|err| format!("[{i}]: {err}"))
                })
                .collect())
        }
        _ => Err(format!(
            "expected an OSV record (a JSON object) or an array of them, found {}",
            match first {
                None => "an empty file".to_owned(),
                Some(b) => format!("a document starting with {:?}", char::from(*b)),
            }
        )),
    }
}

/// A record as written, before validation.
#[derive(Deserialize)]
struct RawRecord {
    id: String,
    #[serde(default)]
    modified: Option<String>,
    #[serde(default)]
    withdrawn: Option<String>,
    #[serde(default)]
    aliases: Option<Vec<String>>,
    #[serde(default)]
    upstream: Option<Vec<String>>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    details: Option<String>,
    #[serde(default)]
    severity: Option<Vec<Severity>>,
    #[serde(default)]
    database_specific: Option<RawDatabaseSpecific>,
    #[serde(default)]
    affected: Option<Vec<RawAffected>>,
}

/// The part of `database_specific` that is kept.
#[derive(Deserialize)]
struct RawDatabaseSpecific {
    #[serde(default)]
    severity: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawAffected {
    #[serde(default)]
    package: Option<RawPackage>,
    #[serde(default)]
    severity: Option<Vec<Severity>>,
    #[serde(default)]
    ranges: Option<Vec<RawRange>>,
    #[serde(default)]
    versions: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RawPackage {
    #[serde(default)]
    ecosystem: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct RawRange {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    events: Vec<RawEvent>,
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(default)]
    introduced: Option<String>,
    #[serde(default)]
    fixed: Option<String>,
    #[serde(default)]
    last_affected: Option<String>,
    #[serde(default)]
    limit: Option<String>,
}

/// Checks what the schema requires of a record and keeps what matching and reports use.
fn validate(raw: RawRecord) -> Result<Record, String> {
    if raw.id.trim().is_empty() {
        return Err("id: expected a non-empty string, found an empty one".to_owned());
    }
    let mut affected = Vec::new();
    for (i, entry) in raw.affected.unwrap_or_default().into_iter().enumerate() {
        let Some(package) = entry.package else {
            continue;
        };
        if package.ecosystem.is_empty() || package.name.is_empty() {
            return Err(format!(
                "affected[{i}].package: expected a non-empty ecosystem and name, found \
                 ecosystem {:?} and name {:?}",
                package.ecosystem, package.name
            ));
        }
        let mut ranges = Vec::new();
        for (j, range) in entry.ranges.unwrap_or_default().into_iter().enumerate() {
            let events = range
                .events
                .into_iter()
                .enumerate()
                .map(|(k, event)| {
                    validate_event(event)
                        .map_err(|found| format!("affected[{i}].ranges[{j}].events[{k}]: {found}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let kind = match range.kind.as_str() {
                "ECOSYSTEM" => RangeKind::Ecosystem,
                "SEMVER" => RangeKind::Semver,
                "GIT" => RangeKind::Git,
                _ => RangeKind::Other(range.kind),
            };
            ranges.push(Range { kind, events });
        }
        affected.push(Affected {
            ecosystem: package.ecosystem,
            name: package.name,
            ranges,
            versions: entry.versions.unwrap_or_default(),
            severity: entry.severity.unwrap_or_default(),
        });
    }
    let summary = raw
        .summary
        .filter(|summary| !summary.trim().is_empty())
        .or_else(|| {
            raw.details
                .as_deref()
                .and_then(|details| details.lines().map(str::trim).find(|line| !line.is_empty()))
                .map(str::to_owned)
        });
    let database_severity = raw
        .database_specific
        .and_then(|specific| specific.severity)
        .and_then(|severity| match severity {
            serde_json::Value::String(severity) => Some(severity),
            _ => None,
        });
    Ok(Record {
        id: raw.id,
        modified: raw.modified,
        withdrawn: raw.withdrawn,
        aliases: raw.aliases.unwrap_or_default(),
        upstream: raw.upstream.unwrap_or_default(),
        summary,
        severity: raw.severity.unwrap_or_default(),
        database_severity,
        affected,
    })
}

/// The one event an event object holds, or what it holds instead.
fn validate_event(raw: RawEvent) -> Result<Event, String> {
    let present = [
        raw.introduced.map(Event::Introduced),
        raw.fixed.map(Event::Fixed),
        raw.last_affected.map(Event::LastAffected),
        raw.limit.map(Event::Limit),
    ];
    let count = present.iter().flatten().count();
    match present.into_iter().flatten().next() {
        Some(event) if count == 1 => Ok(event),
        _ => Err(format!(
            "expected exactly one of introduced, fixed, last_affected, limit, found {count}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(json: &str) -> Result<Record, String> {
        match parse_document(json.as_bytes()) {
            Ok(mut records) if records.len() == 1 => records.remove(0),
            other => panic!("{json}: {other:?}"),
        }
    }

    #[test]
    fn reads_a_github_advisory() {
        let record = one(r#"{
              "schema_version": "1.4.0",
              "id": "GHSA-xxxx-yyyy-zzzz",
              "modified": "2024-03-01T12:00:00Z",
              "aliases": ["CVE-2024-0001"],
              "summary": "Prototype pollution",
              "details": "Long text",
              "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
              "affected": [{
                "package": {"ecosystem": "npm", "name": "lodash", "purl": "pkg:npm/lodash"},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "4.17.21"}]}],
                "database_specific": {"source": "x"}
              }],
              "references": [{"type": "WEB", "url": "https://example.org"}],
              "database_specific": {"severity": "HIGH", "github_reviewed": true}
            }"#);
        assert_eq!(
            record,
            Ok(Record {
                id: "GHSA-xxxx-yyyy-zzzz".to_owned(),
                modified: Some("2024-03-01T12:00:00Z".to_owned()),
                withdrawn: None,
                aliases: vec!["CVE-2024-0001".to_owned()],
                upstream: vec![],
                summary: Some("Prototype pollution".to_owned()),
                severity: vec![Severity {
                    kind: "CVSS_V3".to_owned(),
                    score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H".to_owned(),
                }],
                database_severity: Some("HIGH".to_owned()),
                affected: vec![Affected {
                    ecosystem: "npm".to_owned(),
                    name: "lodash".to_owned(),
                    ranges: vec![Range {
                        kind: RangeKind::Semver,
                        events: vec![
                            Event::Introduced("0".to_owned()),
                            Event::Fixed("4.17.21".to_owned()),
                        ],
                    }],
                    versions: vec![],
                    severity: vec![],
                }],
            })
        );
    }

    #[test]
    fn summary_falls_back_to_the_first_line_of_details() {
        let record = one(r#"{"id": "DEBIAN-CVE-2024-1", "details": "\n  first line\nsecond"}"#);
        assert_eq!(record.map(|r| r.summary), Ok(Some("first line".to_owned())));
    }

    #[test]
    fn ecosystem_splits_at_the_first_colon() {
        assert_eq!(split_ecosystem("Debian:12"), ("Debian", Some("12")));
        assert_eq!(
            split_ecosystem("Red Hat:enterprise_linux:9::baseos"),
            ("Red Hat", Some("enterprise_linux:9::baseos"))
        );
        assert_eq!(split_ecosystem("PyPI"), ("PyPI", None));
    }

    #[test]
    fn entries_without_a_package_are_dropped_and_unknown_range_types_kept() {
        let record = one(r#"{"id": "OSV-1", "affected": [
                {"ranges": [{"type": "GIT", "repo": "r", "events": [{"introduced": "abc"}]}]},
                {"package": {"ecosystem": "PyPI", "name": "x"},
                 "ranges": [{"type": "WEIRD", "events": []}]}
            ]}"#);
        let affected = record.map(|r| r.affected).unwrap_or_default();
        assert_eq!(affected.len(), 1);
        assert_eq!(
            affected[0].ranges[0].kind,
            RangeKind::Other("WEIRD".to_owned())
        );
    }

    #[test]
    fn malformed_records_say_what_is_wrong() {
        let reason = |json: &str| one(json).err().unwrap_or_default();
        assert!(reason(r#"{"summary": "no id"}"#).contains("missing field `id`"));
        assert_eq!(
            reason(r#"{"id": " "}"#),
            "id: expected a non-empty string, found an empty one"
        );
        assert_eq!(
            reason(
                r#"{"id": "X", "affected": [{"package": {"ecosystem": "npm", "name": "a"},
                   "ranges": [{"type": "SEMVER", "events": [{"introduced": "0", "fixed": "1"}]}]}]}"#
            ),
            "affected[0].ranges[0].events[0]: expected exactly one of introduced, fixed, \
             last_affected, limit, found 2"
        );
        assert!(
            reason(r#"{"id": "X", "affected": [{"package": {"name": "a"}}]}"#)
                .starts_with("affected[0].package: expected a non-empty ecosystem and name")
        );
        assert!(reason(r#"{"id": "X", "aliases": "CVE-1"}"#).contains("invalid type"));
    }

    #[test]
    fn arrays_are_validated_element_by_element() {
        let records = parse_document(br#"[{"id": "A"}, {"id": 3}, {"id": "C"}]"#);
        let ids: Vec<Result<String, String>> = records
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.map(|r| r.id))
            .collect();
        assert_eq!(ids[0], Ok("A".to_owned()));
        assert!(
            ids[1]
                .as_ref()
                .is_err_and(|e| e.starts_with("[1]: invalid type"))
        );
        assert_eq!(ids[2], Ok("C".to_owned()));
        assert_eq!(
            parse_document(b" \"a string\""),
            Err(
                "expected an OSV record (a JSON object) or an array of them, found a document \
                 starting with '\"'"
                    .to_owned()
            )
        );
        assert!(parse_document(b"[1, 2").is_err());
        assert!(matches!(
            parse_document(b"{not json").as_deref(),
            Ok([Err(_)])
        ));
    }
}

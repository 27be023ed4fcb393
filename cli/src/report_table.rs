//! A scan report (the JSON document `slipway scan --format json` prints and the scan worker
//! stores) as text for people: what was scanned, the OS, the packages, then each scanner's
//! findings. Works on the JSON value, so `slipway report` renders stored reports of any version:
//! sections a report lacks are left out. Every string from the report is written with its
//! control characters escaped (`slipway_common::terminal`): package names and versions come
//! from the scanned image.

use std::fmt::Write as _;

use serde_json::Value;
use slipway_common::terminal::{column_width, escape, pad};

/// A string of the report, escaped for the terminal.
fn safe(value: &Value) -> Option<String> {
    value.as_str().map(|s| escape(s).into_owned())
}

/// Writes an updates section (`updates` or `language_updates`) under `title`: why nothing was
/// checked, or the sources asked (the list under `sources_key`), one `row` per update, and
/// the errors.
fn updates_section(
    out: &mut String,
    updates: &Value,
    (title, sources_key): (&str, &str),
    row: impl Fn(&Value) -> String,
) {
    if let Some(reason) = updates.get("not_checked").and_then(safe) {
        let _ = writeln!(out, "\n{title}: not checked: {reason}");
        return;
    }
    let list = |key: &str| {
        updates
            .get(key)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
    };
    let sources: Vec<String> = list(sources_key).iter().filter_map(safe).collect();
    let _ = writeln!(
        out,
        "\n{title}: {} ({sources_key}: {})",
        list("updates").len(),
        sources.join(", ")
    );
    for update in list("updates") {
        let _ = writeln!(out, "  {}", row(update));
    }
    for error in list("errors") {
        let _ = writeln!(out, "  error: {}", safe(error).unwrap_or_default());
    }
}

/// Renders `report`; `list_packages` adds the full package table.
pub fn render(report: &Value, list_packages: bool) -> String {
    let mut out = String::new();
    let text = |value: &Value, key: &str| value.get(key).and_then(safe);
    let len =
        |value: &Value, key: &str| value.get(key).and_then(Value::as_array).map_or(0, Vec::len);

    if let Some(image) = text(report, "image") {
        let _ = writeln!(out, "{image}");
    }
    for (label, key) in [
        ("digest", "digest"),
        ("read from", "access"),
        ("scanned at", "scanned_at"),
    ] {
        if let Some(value) = text(report, key) {
            let _ = writeln!(out, "  {label}: {value}");
        }
    }
    match report.get("os").filter(|os| !os.is_null()) {
        Some(os) => {
            let name = text(os, "pretty_name").unwrap_or_else(|| {
                format!(
                    "{} {}",
                    text(os, "id").unwrap_or_default(),
                    text(os, "version_id").unwrap_or_default()
                )
            });
            let _ = writeln!(out, "OS: {name}");
        }
        None => {
            let _ = writeln!(out, "OS: none identified");
        }
    }

    let packages: &[Value] = report
        .get("packages")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let mut per_ecosystem: std::collections::BTreeMap<String, usize> = Default::default();
    for package in packages {
        *per_ecosystem
            .entry(text(package, "ecosystem").unwrap_or_default())
            .or_default() += 1;
    }
    let breakdown: Vec<String> = per_ecosystem
        .iter()
        .map(|(e, n)| format!("{e} {n}"))
        .collect();
    let _ = writeln!(
        out,
        "\nPackages: {} ({})",
        packages.len(),
        breakdown.join(", ")
    );
    if list_packages {
        // Widths from the escaped text, capped: one huge name neither widens every row nor
        // overflows `format!`'s width (which panicked at 65,536).
        let raw = |package: &Value, key: &str| -> String {
            package
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let names: Vec<String> = packages.iter().map(|p| raw(p, "name")).collect();
        let width = column_width(names.iter().map(String::as_str), 4);
        let _ = writeln!(out, "  {} {} VERSION", pad("TYPE", 6), pad("NAME", width));
        for (package, name) in packages.iter().zip(&names) {
            let _ = writeln!(
                out,
                "  {} {} {}",
                pad(&raw(package, "ecosystem"), 6),
                pad(name, width),
                escape(&raw(package, "version"))
            );
        }
    }

    if let Some(integrity) = report.get("integrity").filter(|i| !i.is_null()) {
        let number = |key: &str| integrity.get(key).and_then(Value::as_u64).unwrap_or(0);
        let _ = writeln!(
            out,
            "\nIntegrity: {} files verified, {} differ, {} configuration changes, {} docs missing, {} volatile not verified",
            number("verified"),
            len(integrity, "failures"),
            len(integrity, "config_changes"),
            len(integrity, "docs_missing"),
            number("volatile_skipped")
        );
        for (kind, key) in [("", "failures"), ("config ", "config_changes")] {
            for finding in integrity
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let _ = writeln!(
                    out,
                    "  {kind}{} ({}): {}",
                    text(finding, "path").unwrap_or_default(),
                    text(finding, "package").unwrap_or_default(),
                    problem(finding)
                );
            }
        }
    }

    if let Some(capabilities) = report.get("capabilities").and_then(Value::as_array) {
        let _ = writeln!(
            out,
            "\nCapabilities asked of the host: {}",
            capabilities.len()
        );
        for finding in capabilities {
            let place = finding
                .get("where")
                .map(|w| match text(w, "name") {
                    Some(name) => format!("label {name}"),
                    None => text(w, "from").unwrap_or_default(),
                })
                .unwrap_or_default();
            let mut what = text(finding, "capability").unwrap_or_default();
            for detail in ["name", "namespace", "source", "target"] {
                if let Some(value) = text(finding, detail) {
                    let _ = write!(what, " {value}");
                }
            }
            let _ = writeln!(
                out,
                "  {what} ({place}: {})",
                text(finding, "evidence").unwrap_or_default()
            );
        }
    }

    if let Some(updates) = report.get("updates") {
        updates_section(&mut out, updates, ("Updates", "repositories"), |update| {
            format!(
                "{} {} -> {} ({})",
                text(update, "name").unwrap_or_default(),
                text(update, "installed").unwrap_or_default(),
                text(update, "available").unwrap_or_default(),
                text(update, "repo").unwrap_or_default()
            )
        });
    }
    if let Some(updates) = report.get("language_updates") {
        updates_section(
            &mut out,
            updates,
            ("Language updates", "indexes"),
            |update| {
                format!(
                    "{} {} {} -> {} ({}; {})",
                    text(update, "ecosystem").unwrap_or_default(),
                    text(update, "name").unwrap_or_default(),
                    text(update, "installed").unwrap_or_default(),
                    text(update, "available").unwrap_or_default(),
                    text(update, "index").unwrap_or_default(),
                    text(update, "location").unwrap_or_default()
                )
            },
        );
    }

    if let Some(vulnerabilities) = report.get("vulnerabilities") {
        let database = vulnerabilities.get("database");
        match database.and_then(|d| text(d, "status")).as_deref() {
            Some("loaded") => {
                let _ = writeln!(
                    out,
                    "\nVulnerabilities: {} (OSV database {})",
                    len(vulnerabilities, "vulnerabilities"),
                    database.and_then(|d| text(d, "path")).unwrap_or_default()
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "\nVulnerabilities: not checked: no OSV database configured"
                );
            }
        }
        for found in vulnerabilities
            .get("vulnerabilities")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let fixed: Vec<String> = found
                .get("fixed_versions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(safe)
                .collect();
            let _ = writeln!(
                out,
                "  {} {} {}: fixed in {}",
                text(found, "id").unwrap_or_default(),
                text(found, "package").unwrap_or_default(),
                text(found, "installed_version").unwrap_or_default(),
                if fixed.is_empty() {
                    "no release yet".to_owned()
                } else {
                    fixed.join(", ")
                }
            );
        }
    }

    for warning in report
        .get("warnings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let _ = writeln!(out, "warning: {}", safe(warning).unwrap_or_default());
    }
    out
}

/// One integrity finding's problem in words.
fn problem(finding: &Value) -> String {
    let field = |key: &str| {
        finding.get(key).map(|v| match v {
            Value::String(s) => escape(s).into_owned(),
            other => other.to_string(),
        })
    };
    match finding.get("problem").and_then(Value::as_str) {
        Some("missing") => "missing".to_owned(),
        Some("mode") => format!(
            "mode {:o}, expected {:o}",
            finding.get("found").and_then(Value::as_u64).unwrap_or(0),
            finding.get("expected").and_then(Value::as_u64).unwrap_or(0)
        ),
        Some(kind) => match (field("expected"), field("found")) {
            (Some(expected), Some(found)) => {
                format!("{} {found}, expected {expected}", escape(kind))
            }
            (None, Some(found)) => format!("{}: now {found}", escape(kind)),
            _ => escape(kind).into_owned(),
        },
        None => "differs".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_of_a_report_is_rendered() {
        let report: Value = serde_json::from_str(
            r#"{"schema":"slipway.scan-report/1","image":"r/app:1","digest":"sha256:ab","access":"layer-directories",
                "os":{"id":"debian","version_id":"12","pretty_name":"Debian GNU/Linux 12 (bookworm)"},
                "packages":[{"ecosystem":"deb","name":"bash","version":"5.2"},{"ecosystem":"pypi","name":"six","version":"1.16"}],
                "integrity":{"failures":[{"package":"coreutils","path":"/usr/bin/tac","problem":"missing"}],
                  "config_changes":[{"package":"base-files","path":"/etc/host.conf","problem":"mode","expected":420,"found":384}],
                  "docs_missing":[],"volatile_skipped":2,"verified":10},
                "capabilities":[{"where":{"from":"label","name":"RUN"},"capability":"privileged","evidence":"--privileged"}],
                "updates":{"repositories":["local"],"updates":[{"name":"bash","installed":"5.2","available":"5.3","repo":"local"}],"errors":[]},
                "language_updates":{"indexes":["pypi","npm"],"updates":[{"ecosystem":"pypi","name":"six","installed":"1.16","available":"1.17","index":"pypi","location":"/usr/lib/python3/dist-packages/six-1.16.dist-info/METADATA"}],
                  "errors":["index \"npm\": 1 of 1 lookups failed; first: GET http://127.0.0.1:1/x: cannot connect"]},
                "vulnerabilities":{"database":{"status":"not-configured"},"vulnerabilities":[],"not_checked":[]},
                "warnings":["language package skipped: x"]}"#,
        )
        .unwrap();
        let text = render(&report, true);
        for line in [
            "r/app:1",
            "  digest: sha256:ab",
            "OS: Debian GNU/Linux 12 (bookworm)",
            "Packages: 2 (deb 1, pypi 1)",
            "Integrity: 10 files verified, 1 differ, 1 configuration changes, 0 docs missing, 2 volatile not verified",
            "  /usr/bin/tac (coreutils): missing",
            "  config /etc/host.conf (base-files): mode 600, expected 644",
            "Capabilities asked of the host: 1",
            "  privileged (label RUN: --privileged)",
            "Updates: 1 (repositories: local)",
            "  bash 5.2 -> 5.3 (local)",
            "Language updates: 1 (indexes: pypi, npm)",
            "  pypi six 1.16 -> 1.17 (pypi; /usr/lib/python3/dist-packages/six-1.16.dist-info/METADATA)",
            "  error: index \"npm\": 1 of 1 lookups failed; first: GET http://127.0.0.1:1/x: cannot connect",
            "Vulnerabilities: not checked: no OSV database configured",
            "warning: language package skipped: x",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
        }
        assert!(
            !render(&report, false).contains("TYPE"),
            "packages listed only when asked"
        );
    }

    #[test]
    fn hostile_package_names_neither_panic_nor_reach_the_terminal_raw() {
        let long = "p".repeat(65_536);
        let report = serde_json::json!({
            "image": "r/app:1\u{1b}]0;owned\u{7}",
            "os": {"pretty_name": "Debian\u{1b}[2J"},
            "packages": [
                {"ecosystem": "deb", "name": long, "version": "1"},
                {"ecosystem": "npm", "name": "evil\u{1b}[31mred\r\n\u{9b}1m", "version": "2\u{7}"},
                {"ecosystem": "pypi", "name": "six", "version": "1.16"}
            ],
            "updates": {"repositories": ["local"], "updates": [
                {"name": "x\u{1b}[1A", "installed": "1", "available": "2", "repo": "local"}
            ], "errors": ["bad\u{1b}c"]},
            "warnings": ["w\u{1b}[K"]
        });
        let text = render(&report, true);
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "a control character reached the output"
        );
        assert!(text.contains(&long), "a long name is printed whole");
        assert!(text.contains("evil\\x1b[31mred\\r\\n\\u{9b}1m"), "{text}");
        let six = text
            .lines()
            .find(|l| l.contains(" six "))
            .expect("six listed");
        assert!(
            six.len() < 100,
            "one long name does not widen every row: {six:?}"
        );
    }
}

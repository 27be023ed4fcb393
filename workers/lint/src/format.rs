//! Output formats for lint results: tty, JSON (hadolint's exact shape), SARIF 2.1.0, Checkstyle
//! XML, GNU error lines, and the shapes of hadolint's formats for CI systems: Code Climate (and
//! GitLab's code-quality report), SonarQube's generic issues and Codacy. Pure: results in, text out. The text formats (tty, GNU) write file
//! names, codes and messages with their control characters escapes
//! (`slipway_common::terminal::escape`): a file name or a message quoting the Dockerfile must not
//! drive the terminal.

use serde_json::{Value, json};
use slipway_common::terminal::escape;

use crate::rules::{Failure, Severity};

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `file:line CODE level: message`, coloured on a terminal.
    Tty,
    /// A JSON array of `{"code","column","file","level","line","message"}`, as `hadolint -f json`.
    Json,
    /// A SARIF 2.1.0 log.
    Sarif,
    /// Checkstyle 4.3 XML.
    Checkstyle,
    /// GNU-style `slipway-lint:file:line: CODE level: message` lines.
    Gnu,
    /// Code Climate issues, each JSON object followed by a NUL byte (the engine spec).
    CodeClimate,
    /// GitLab's code-quality report: one JSON array of Code Climate issues, each with a
    /// `fingerprint` (SHA-1 of the issue's Code Climate JSON).
    GitlabCodeClimate,
    /// SonarQube's generic issue import: one `{"issues": [...]}` object for every file.
    SonarQube,
    /// Codacy's tool results: one JSON object per finding, back to back.
    Codacy,
}

impl Format {
    /// Reads a format name.
    pub fn parse(name: &str) -> Option<Format> {
        Some(match name {
            "tty" => Format::Tty,
            "json" => Format::Json,
            "sarif" => Format::Sarif,
            "checkstyle" => Format::Checkstyle,
            "gnu" => Format::Gnu,
            "codeclimate" => Format::CodeClimate,
            "gitlab_codeclimate" => Format::GitlabCodeClimate,
            "sonarqube" => Format::SonarQube,
            "codacy" => Format::Codacy,
            _ => return None,
        })
    }

    /// Every format's name, as [`Format::parse`] reads it.
    pub const NAMES: [&'static str; 9] = [
        "tty",
        "json",
        "sarif",
        "checkstyle",
        "gnu",
        "codeclimate",
        "gitlab_codeclimate",
        "sonarqube",
        "codacy",
    ];

    /// Whether findings make the exit status 1 in this format. As hadolint does, the Code
    /// Climate and Codacy formats always exit 0: the CI system reads the report and decides.
    pub fn fails_on_findings(self) -> bool {
        !matches!(self, Format::CodeClimate | Format::Codacy)
    }
}

/// The findings for one file (a parse error is the single `DL1000` finding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileResult {
    /// The file name as given on the command line (`-` for stdin).
    pub file: String,
    /// Its findings, sorted by line.
    pub failures: Vec<Failure>,
}

/// Renders `results` in `format`. `color` applies to tty only.
pub fn render(format: Format, results: &[FileResult], color: bool) -> String {
    match format {
        Format::Tty => tty(results, color),
        Format::Json => json_array(results),
        Format::Sarif => sarif(results),
        Format::Checkstyle => checkstyle(results),
        Format::Gnu => gnu(results),
        Format::CodeClimate => code_climate(results),
        Format::GitlabCodeClimate => gitlab_code_climate(results),
        Format::SonarQube => sonarqube(results),
        Format::Codacy => codacy(results),
    }
}

/// Code Climate's severity of a finding (hadolint's mapping).
fn code_climate_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "blocker",
        Severity::Warning => "major",
        Severity::Info => "info",
        Severity::Style => "minor",
        Severity::Ignore => "",
    }
}

/// One finding as a Code Climate issue. A parse error (`DL1000`) has a position (line and column),
/// the others a line.
fn code_climate_issue(file: &str, f: &Failure) -> Value {
    let location = if f.code == crate::lint::PARSE_ERROR.code {
        let position = json!({ "column": f.column, "line": f.line });
        json!({ "path": file, "positions": { "begin": position, "end": position } })
    } else {
        json!({ "lines": { "begin": f.line, "end": f.line }, "path": file })
    };
    json!({
        "categories": ["Bug Risk"],
        "check_name": f.code,
        "description": f.message,
        "location": location,
        "severity": code_climate_severity(f.severity),
        "type": "issue",
    })
}

fn code_climate(results: &[FileResult]) -> String {
    let mut out = String::new();
    for result in results {
        for f in &result.failures {
            out.push_str(&code_climate_issue(&result.file, f).to_string());
            out.push('\0');
        }
    }
    out
}

fn gitlab_code_climate(results: &[FileResult]) -> String {
    use sha1::{Digest, Sha1};
    let issues: Vec<Value> = results
        .iter()
        .flat_map(|result| {
            result.failures.iter().map(|f| {
                let mut issue = code_climate_issue(&result.file, f);
                let digest = Sha1::digest(issue.to_string().as_bytes());
                let fingerprint: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                issue["fingerprint"] = Value::String(fingerprint);
                issue
            })
        })
        .collect();
    Value::Array(issues).to_string()
}

fn sonarqube(results: &[FileResult]) -> String {
    let issues: Vec<Value> = results
        .iter()
        .flat_map(|r| {
            r.failures.iter().map(move |f| {
                let parse_error = f.code == crate::lint::PARSE_ERROR.code;
                let (severity, kind) = match f.severity {
                    _ if parse_error => ("BLOCKER", "BUG"),
                    Severity::Error => ("CRITICAL", "BUG"),
                    Severity::Warning => ("MAJOR", "CODE_SMELL"),
                    Severity::Info => ("MINOR", "CODE_SMELL"),
                    Severity::Style | Severity::Ignore => ("INFO", "CODE_SMELL"),
                };
                let (start, end) = if parse_error {
                    (f.column, f.column)
                } else {
                    (0, 1)
                };
                json!({
                    "engineId": "Hadolint",
                    "primaryLocation": {
                        "filePath": r.file,
                        "message": f.message,
                        "textRange": {
                            "endColumn": end,
                            "endLine": f.line,
                            "startColumn": start,
                            "startLine": f.line,
                        },
                    },
                    "ruleId": f.code,
                    "severity": severity,
                    "type": kind,
                })
            })
        })
        .collect();
    json!({ "issues": issues }).to_string()
}

fn codacy(results: &[FileResult]) -> String {
    let mut out = String::new();
    for result in results {
        for f in &result.failures {
            let issue = json!({
                "filename": result.file,
                "line": f.line,
                "message": f.message,
                "patternId": f.code,
            });
            out.push_str(&issue.to_string());
        }
    }
    out
}

fn tty(results: &[FileResult], color: bool) -> String {
    let mut out = String::new();
    for result in results {
        for f in &result.failures {
            let level = if color {
                let code = match f.severity {
                    Severity::Error => "31",
                    Severity::Warning => "33",
                    Severity::Info => "32",
                    Severity::Style | Severity::Ignore => "36",
                };
                format!("\x1b[{code}m{}\x1b[0m", f.severity.as_str())
            } else {
                f.severity.as_str().to_string()
            };
            let (file, code) = (escape(&result.file), escape(&f.code));
            if f.code == "DL1000" {
                out.push_str(&format!(
                    "{file}:{}:{} {code} {level}: {}\n",
                    f.line,
                    f.column,
                    one_line(&f.message)
                ));
            } else {
                out.push_str(&format!(
                    "{file}:{} {code} {level}: {}\n",
                    f.line,
                    one_line(&f.message)
                ));
            }
        }
    }
    out
}

/// `message` on one line, control characters escaped.
fn one_line(message: &str) -> String {
    escape(&message.replace('\n', " ")).into_owned()
}

fn json_array(results: &[FileResult]) -> String {
    let items: Vec<Value> = results
        .iter()
        .flat_map(|r| {
            r.failures.iter().map(move |f| {
                json!({
                    "code": f.code,
                    "column": f.column,
                    "file": r.file,
                    "level": f.severity.as_str(),
                    "line": f.line,
                    "message": f.message,
                })
            })
        })
        .collect();
    Value::Array(items).to_string()
}

fn sarif_level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info | Severity::Style | Severity::Ignore => "note",
    }
}

fn sarif(results: &[FileResult]) -> String {
    let mut codes: Vec<&str> = results
        .iter()
        .flat_map(|r| r.failures.iter().map(|f| f.code.as_str()))
        .collect();
    codes.sort_unstable();
    codes.dedup();
    let catalog = crate::rules::catalog();
    let rules: Vec<Value> = codes
        .iter()
        .map(|code| {
            let mut rule = json!({ "id": code });
            if let Some(meta) = catalog.iter().find(|m| m.code == *code) {
                rule["shortDescription"] = json!({ "text": meta.message });
                rule["defaultConfiguration"] = json!({ "level": sarif_level(meta.severity) });
            }
            if code.starts_with("DL") {
                rule["helpUri"] =
                    json!(format!("https://github.com/hadolint/hadolint/wiki/{code}"));
            } else if let Some(number) = code.strip_prefix("SC") {
                rule["helpUri"] = json!(format!("https://www.shellcheck.net/wiki/SC{number}"));
            }
            rule
        })
        .collect();
    let results: Vec<Value> = results
        .iter()
        .flat_map(|r| {
            r.failures.iter().map(move |f| {
                json!({
                    "ruleId": f.code,
                    "level": sarif_level(f.severity),
                    "message": { "text": f.message },
                    "locations": [{
                        "physicalLocation": {
                            "artifactLocation": { "uri": r.file },
                            "region": {
                                "startLine": f.line,
                                "endLine": f.line,
                                "startColumn": f.column,
                                "endColumn": f.column,
                                "sourceLanguage": if f.code.starts_with("SC") { "sh" } else { "dockerfile" },
                            }
                        }
                    }]
                })
            })
        })
        .collect();
    json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "slipway-lint",
                    "fullName": "Slipway Dockerfile linter (hadolint-compatible)",
                    "version": env!("CARGO_PKG_VERSION"),
                    "informationUri": "https://github.com/hadolint/hadolint",
                    "rules": rules,
                }
            },
            "results": results,
            "defaultSourceLanguage": "dockerfile",
        }]
    })
    .to_string()
}

/// Escapes text for an XML attribute.
fn xml_attr(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            c if (c as u32) < 0x20 && c != '\t' => out.push_str(&format!("&#{};", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn checkstyle(results: &[FileResult]) -> String {
    let mut out =
        String::from("<?xml version='1.0' encoding='UTF-8'?>\n<checkstyle version='4.3'>\n");
    for result in results {
        if result.failures.is_empty() {
            continue;
        }
        out.push_str(&format!("<file name='{}'>\n", xml_attr(&result.file)));
        for f in &result.failures {
            out.push_str(&format!(
                "<error line='{}' column='{}' severity='{}' message='{}' source='{}'/>\n",
                f.line,
                f.column,
                f.severity.as_str(),
                xml_attr(&f.message),
                xml_attr(&f.code)
            ));
        }
        out.push_str("</file>\n");
    }
    out.push_str("</checkstyle>\n");
    out
}

fn gnu(results: &[FileResult]) -> String {
    let mut out = String::new();
    for result in results {
        for f in &result.failures {
            out.push_str(&format!(
                "slipway-lint:{}:{}:{}: {} {}: {}\n",
                escape(&result.file),
                f.line,
                f.column,
                escape(&f.code),
                f.severity.as_str(),
                one_line(&f.message)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: &str, severity: Severity, line: u32, column: u32, message: &str) -> Failure {
        Failure {
            code: code.into(),
            severity,
            message: message.into(),
            line,
            column,
        }
    }

    /// Shapes taken from hadolint 2.15's own output (`hadolint -f FORMAT`); the corpus test in
    /// `cli/tests/lint_cli.rs` compares whole runs byte for byte.
    #[test]
    fn the_ci_formats_have_hadolints_shapes_severities_and_parse_error_positions() {
        let results = vec![FileResult {
            file: "/tmp/bad".into(),
            failures: vec![
                failure("DL1000", Severity::Error, 2, 3, "unexpected 'F'"),
                failure("DL3059", Severity::Info, 4, 1, "Multiple consecutive `RUN`"),
                failure("DL3057", Severity::Style, 5, 1, "HEALTHCHECK missing"),
            ],
        }];
        let climate = render(Format::CodeClimate, &results, false);
        let issues: Vec<&str> = climate.split('\0').collect();
        assert_eq!(issues.len(), 4, "each issue ends with a NUL: {climate:?}");
        assert_eq!(
            issues[0],
            r#"{"categories":["Bug Risk"],"check_name":"DL1000","description":"unexpected 'F'","location":{"path":"/tmp/bad","positions":{"begin":{"column":3,"line":2},"end":{"column":3,"line":2}}},"severity":"blocker","type":"issue"}"#
        );
        assert!(issues[1].contains(
            r#""location":{"lines":{"begin":4,"end":4},"path":"/tmp/bad"},"severity":"info""#
        ));
        assert!(issues[2].contains(r#""severity":"minor""#));

        let gitlab: Value =
            serde_json::from_str(&render(Format::GitlabCodeClimate, &results, false)).unwrap();
        let first = &gitlab[0];
        let mut without = first.clone();
        without.as_object_mut().unwrap().remove("fingerprint");
        use sha1::Digest as _;
        let expected: String = sha1::Sha1::digest(without.to_string().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(first["fingerprint"], expected.as_str());
        assert_eq!(
            without.to_string(),
            issues[0],
            "the fingerprint is of the Code Climate issue"
        );

        let sonar: Value =
            serde_json::from_str(&render(Format::SonarQube, &results, false)).unwrap();
        let sonar = sonar["issues"].as_array().unwrap();
        assert_eq!(
            (sonar[0]["severity"].as_str(), sonar[0]["type"].as_str()),
            (Some("BLOCKER"), Some("BUG"))
        );
        assert_eq!(sonar[0]["primaryLocation"]["textRange"]["startColumn"], 3);
        assert_eq!(sonar[1]["severity"], "MINOR");
        assert_eq!(sonar[1]["primaryLocation"]["textRange"]["startColumn"], 0);
        assert_eq!(sonar[1]["primaryLocation"]["textRange"]["endColumn"], 1);
        assert_eq!(sonar[2]["severity"], "INFO");

        assert_eq!(
            render(Format::Codacy, &results[..], false),
            concat!(
                r#"{"filename":"/tmp/bad","line":2,"message":"unexpected 'F'","patternId":"DL1000"}"#,
                r#"{"filename":"/tmp/bad","line":4,"message":"Multiple consecutive `RUN`","patternId":"DL3059"}"#,
                r#"{"filename":"/tmp/bad","line":5,"message":"HEALTHCHECK missing","patternId":"DL3057"}"#,
            )
        );
    }

    #[test]
    fn no_findings_render_as_hadolint_renders_them() {
        let clean = [FileResult {
            file: "Dockerfile".into(),
            failures: Vec::new(),
        }];
        assert_eq!(render(Format::CodeClimate, &clean, false), "");
        assert_eq!(render(Format::GitlabCodeClimate, &clean, false), "[]");
        assert_eq!(render(Format::SonarQube, &clean, false), r#"{"issues":[]}"#);
        assert_eq!(render(Format::Codacy, &clean, false), "");
    }

    #[test]
    fn every_format_name_parses_and_only_code_climate_and_codacy_always_exit_0() {
        for name in Format::NAMES {
            let format = Format::parse(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(
                format.fails_on_findings(),
                !matches!(name, "codeclimate" | "codacy"),
                "{name}"
            );
        }
        assert_eq!(Format::parse("codeclimat"), None);
    }

    #[test]
    fn text_formats_escape_control_characters_of_names_and_messages() {
        let results = vec![FileResult {
            file: "evil\x1b]0;owned\x07/Dockerfile".into(),
            failures: vec![Failure {
                code: "DL1000".into(),
                severity: Severity::Error,
                message: "unexpected '\x1b[2J'\nhere\u{9b}".into(),
                line: 2,
                column: 1,
            }],
        }];
        for format in [Format::Tty, Format::Gnu] {
            let text = render(format, &results, false);
            assert!(
                !text.chars().any(|c| c.is_control() && c != '\n'),
                "{text:?}"
            );
            assert!(
                text.contains("evil\\x1b]0;owned\\x07/Dockerfile:")
                    && text.contains("unexpected '\\x1b[2J' here\\u{9b}"),
                "{text}"
            );
        }
        let coloured = render(Format::Tty, &results, true);
        assert_eq!(
            coloured.matches('\x1b').count(),
            2,
            "only the colour codes: {coloured:?}"
        );
    }

    fn sample() -> Vec<FileResult> {
        vec![FileResult {
            file: "a/Dockerfile".into(),
            failures: vec![Failure {
                code: "DL3008".into(),
                severity: Severity::Warning,
                message: "Pin <versions> & 'quote'".into(),
                line: 3,
                column: 1,
            }],
        }]
    }

    #[test]
    fn json_has_hadolints_shape() {
        let out = render(Format::Json, &sample(), false);
        assert_eq!(
            out,
            r#"[{"code":"DL3008","column":1,"file":"a/Dockerfile","level":"warning","line":3,"message":"Pin <versions> & 'quote'"}]"#
        );
        assert_eq!(render(Format::Json, &[], false), "[]");
    }

    #[test]
    fn text_formats() {
        assert_eq!(
            render(Format::Tty, &sample(), false),
            "a/Dockerfile:3 DL3008 warning: Pin <versions> & 'quote'\n"
        );
        assert!(render(Format::Tty, &sample(), true).contains("\x1b[33mwarning\x1b[0m"));
        assert_eq!(
            render(Format::Gnu, &sample(), false),
            "slipway-lint:a/Dockerfile:3:1: DL3008 warning: Pin <versions> & 'quote'\n"
        );
        let xml = render(Format::Checkstyle, &sample(), false);
        assert!(
            xml.contains("message='Pin &lt;versions&gt; &amp; &apos;quote&apos;' source='DL3008'"),
            "{xml}"
        );
    }

    #[test]
    fn sarif_carries_rules_and_locations() {
        let log: Value = serde_json::from_str(&render(Format::Sarif, &sample(), false)).unwrap();
        assert_eq!(log["version"], "2.1.0");
        let run = &log["runs"][0];
        assert_eq!(run["tool"]["driver"]["rules"][0]["id"], "DL3008");
        let result = &run["results"][0];
        assert_eq!(result["level"], "warning");
        assert_eq!(
            result["locations"][0]["physicalLocation"]["region"]["startLine"],
            3
        );
    }
}

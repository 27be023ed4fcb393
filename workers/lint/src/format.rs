//! Output formats for lint results: tty, JSON (hadolint's exact shape), SARIF 2.1.0, Checkstyle
//! XML and GNU error lines. Pure: results in, text out. The text formats (tty, GNU) write file
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
            _ => return None,
        })
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
    }
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

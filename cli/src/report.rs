//! `slipway report IMAGE`: print the latest full scan report of an image from the
//! `<namespace>.reports` stream, as its JSON or as a short summary; `slipway sbom IMAGE` and
//! `slipway provenance IMAGE`: the SBOM and the build provenance stored beside it.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;
use slipway_broker::reports::report_stream_name;
use slipway_broker::streams::ReadFrom;
use slipway_broker::{BrokerConnection, BrokerSettings};
use slipway_common::ImageRef;
use slipway_scan::reports::{
    Document, ReportError, ReportReadOptions, StoredReport, latest_document,
};

/// Output formats of `slipway report`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// A short summary: image, digest, times, and how many entries each part of the report has.
    Table,
    /// The whole report, pretty-printed JSON.
    Json,
}

/// Arguments of `slipway report`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
The report is the newest one the scan worker stored for IMAGE: a rescan replaces it. Looking it up \
reads every report stored in the --days window, whatever the image, so a shorter window is faster.

Exit status: 0 the report was printed; 1 IMAGE is malformed, or no report of IMAGE is in the \
window; 2 any other error (broker unreachable, lookup took longer than 2 minutes, the stored \
report is not JSON).")]
pub struct ReportArgs {
    /// The image: its short index name (`team/app:1`, in the configured `[registry]`), its full
    /// reference (`registry:5000/team/app:1`), or `repository@sha256:…` for the report of that
    /// digest under any tag.
    pub image: String,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    format: ReportFormat,
    /// How many days back to look.
    #[arg(long, value_name = "N", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=3650))]
    days: u32,
}

/// Arguments of `slipway sbom` and `slipway provenance`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
The document is the newest one stored for IMAGE: the SBOM is stored with every scan (CycloneDX \
1.5 JSON); the provenance (an in-toto statement with an SLSA provenance v1 predicate) with the \
scan of a freshly built image. Looking it up reads every document stored in the --days window, \
whatever the image, so a shorter window is faster.

Exit status: 0 the document was printed; 1 IMAGE is malformed, or none of IMAGE is in the \
window; 2 any other error (broker unreachable, lookup took longer than 2 minutes, the stored \
document is not JSON).")]
pub struct DocumentArgs {
    /// The image: its short index name (`team/app:1`, in the configured `[registry]`), its full
    /// reference (`registry:5000/team/app:1`), or `repository@sha256:…` for that digest under
    /// any tag.
    pub image: String,
    /// How many days back to look.
    #[arg(long, value_name = "N", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=3650))]
    days: u32,
}

/// What users call each document in messages.
fn document_name(document: Document) -> &'static str {
    match document {
        Document::Report => "report",
        Document::Sbom => "SBOM",
        Document::Provenance => "provenance record",
    }
}

/// The newest `document` of `image` stored in the last `days` days, with its text and JSON;
/// `Err(exit code)` once the reason there is none is printed.
async fn find(
    settings: &BrokerSettings,
    image: &ImageRef,
    document: Document,
    days: u32,
) -> anyhow::Result<Result<(StoredReport, Value), ExitCode>> {
    let stream = report_stream_name(&settings.namespace);
    let connection = BrokerConnection::connect(settings, "slipway-cli").await?;
    let options = ReportReadOptions {
        from: ReadFrom::Ago(Duration::from_secs(u64::from(days) * 86_400)),
        ..ReportReadOptions::default()
    };
    let found = latest_document(&connection, &stream, image, document, options).await;
    connection.close().await;
    let name = document_name(document);
    let stored = match found {
        Ok(Some(stored)) => stored,
        Ok(None) => {
            let days = match days {
                1 => "day".to_owned(),
                n => format!("{n} days"),
            };
            let hint = match document {
                Document::Provenance => {
                    " (it is stored when the scan worker scans a freshly built image)"
                }
                Document::Report | Document::Sbom => "",
            };
            eprintln!("slipway: no {name} for {image} in the last {days} of {stream}{hint}");
            return Ok(Err(ExitCode::FAILURE));
        }
        Err(ReportError::NoStream { .. }) => {
            eprintln!(
                "slipway: no {name} for {image}: {stream} does not exist, so no scan has stored one in namespace {:?}",
                settings.namespace
            );
            return Ok(Err(ExitCode::FAILURE));
        }
        Err(error) => return Err(error.into()),
    };
    let json: Option<Value> = serde_json::from_slice(&stored.body).ok();
    let Some(json) = json else {
        anyhow::bail!(
            "the {name} of {} at offset {} of {stream} is not JSON",
            stored.meta.image,
            stored.offset
        );
    };
    Ok(Ok((stored, json)))
}

/// Writes `output` to stdout; a reader that left (`| head`) is not an error.
fn print(output: &str) -> anyhow::Result<ExitCode> {
    match io::stdout().lock().write_all(output.as_bytes()) {
        Err(error) if error.kind() != io::ErrorKind::BrokenPipe => Err(error.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Run `slipway report`.
pub async fn run(
    settings: &BrokerSettings,
    image: &ImageRef,
    args: &ReportArgs,
) -> anyhow::Result<ExitCode> {
    let (report, json) = match find(settings, image, Document::Report, args.days).await? {
        Ok(found) => found,
        Err(code) => return Ok(code),
    };
    let output = match args.format {
        // Valid UTF-8: it parsed as JSON.
        ReportFormat::Json => pretty_json(&String::from_utf8_lossy(&report.body)),
        ReportFormat::Table => summary(&report, &json),
    };
    print(&output)
}

/// Run `slipway sbom` or `slipway provenance`: the stored `document`, pretty-printed JSON.
pub async fn run_document(
    settings: &BrokerSettings,
    image: &ImageRef,
    document: Document,
    args: &DocumentArgs,
) -> anyhow::Result<ExitCode> {
    match find(settings, image, document, args.days).await? {
        Ok((stored, _)) => print(&pretty_json(&String::from_utf8_lossy(&stored.body))),
        Err(code) => Ok(code),
    }
}

/// Where the report is stored, then the report itself as `slipway scan` prints it (without the
/// full package list).
fn summary(report: &StoredReport, json: &Value) -> String {
    let meta = &report.meta;
    format!(
        "job: {}\nstored at: {} (offset {})\n{}",
        meta.job_id,
        report.stored_at.to_rfc3339(),
        report.offset,
        crate::report_table::render(json, false)
    )
}

/// `json` (valid JSON) indented as `serde_json::to_string_pretty` would, but with its members in
/// their stored order and its numbers and strings exactly as stored.
fn pretty_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len() * 2);
    let mut depth = 0_usize;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n("  ", depth));
    };
    let mut chars = json.chars().peekable();
    let (mut in_string, mut escaped) = (false, false);
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
                if let Some(close) = chars.next_if(|&next| matches!(next, '}' | ']')) {
                    out.push(close);
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_ascii_whitespace() => {}
            c => out.push(c),
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_common::{Digest, Timestamp};
    use slipway_scan::reports::ReportMeta;

    #[test]
    fn pretty_json_indents_like_serde_json_and_keeps_the_stored_order() {
        // Keys already sorted, so serde_json's own (sorted) output is the reference.
        let sorted =
            r#" {"a":[1, 2.50,{"b":"x, \"y\": [z]\\"}],"c":{}, "d":[ ],"e":{"f":null,"g":-1e3}} "#;
        let reference =
            serde_json::to_string_pretty(&serde_json::from_str::<Value>(sorted).unwrap())
                .unwrap()
                .replace("2.5", "2.50")
                .replace("-1000.0", "-1e3");
        assert_eq!(pretty_json(sorted), format!("{reference}\n"));
        assert_eq!(
            pretty_json(r#"{"z":1,"a":"é"}"#),
            "{\n  \"z\": 1,\n  \"a\": \"é\"\n}\n"
        );
        assert_eq!(pretty_json("[]"), "[]\n");
    }

    #[test]
    fn the_summary_says_where_the_report_is_stored_then_renders_it() {
        let report = StoredReport {
            meta: ReportMeta {
                image: ImageRef::parse("127.0.0.1:5000/app:1").unwrap(),
                digest: Digest::parse(&format!("sha256:{}", "0".repeat(64))).unwrap(),
                job_id: "0190b6e2-7c1a-7f3e-9d2b-5a4c3e2f1a0b".parse().unwrap(),
                scanned_at: Timestamp::from_unix_millis(1_700_000_000_000),
            },
            body: Vec::new(),
            offset: 42,
            stored_at: Timestamp::from_unix_millis(1_700_000_001_000),
        };
        let json: Value = serde_json::from_str(
            r#"{"image":"127.0.0.1:5000/app:1","digest":"sha256:00","packages":[{"ecosystem":"rpm","name":"a","version":"1"}]}"#,
        )
        .unwrap();
        let text = summary(&report, &json);
        for line in [
            "job: 0190b6e2-7c1a-7f3e-9d2b-5a4c3e2f1a0b",
            "stored at: 2023-11-14T22:13:21Z (offset 42)",
            "127.0.0.1:5000/app:1",
            "  digest: sha256:00",
            "Packages: 1 (rpm 1)",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
        }
    }

    #[test]
    fn the_arguments_parse_with_defaults_and_bounds() {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: ReportArgs,
        }
        let parsed = Wrapper::try_parse_from(["report", "app:1"]).unwrap().args;
        assert_eq!(
            (parsed.image.as_str(), parsed.format, parsed.days),
            ("app:1", ReportFormat::Table, 30)
        );
        let parsed =
            Wrapper::try_parse_from(["report", "app:1", "--format", "json", "--days", "7"])
                .unwrap()
                .args;
        assert_eq!((parsed.format, parsed.days), (ReportFormat::Json, 7));
        for bad in [["--days", "0"], ["--format", "yaml"]] {
            let error = Wrapper::try_parse_from(["report", "app:1", bad[0], bad[1]])
                .err()
                .unwrap()
                .to_string();
            assert!(error.contains(bad[0]), "{error}");
        }
    }
}

//! `slipway submit SOURCE`: publish a `build.requested` for entries of an index file, of an
//! `index.d` directory (validated as one index), or of JSON on standard input.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use slipway_broker::{BrokerConnection, BrokerSettings, Publisher, Topology};
use slipway_common::index::Entry;
use slipway_common::index::set::IndexSet;
use slipway_common::message::BuildRequested;
use slipway_common::terminal::escape;
use slipway_common::{Cause, Envelope, Message};

/// Largest JSON document read from standard input.
const MAX_STDIN_BYTES: u64 = 4 << 20;

/// Output formats of `slipway submit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SubmitFormat {
    /// A line per job (`JOB_ID  build.requested  IMAGE`), then a summary.
    Table,
    /// A JSON object per line and job: `job_id`, `image`.
    Json,
}

/// Arguments of `slipway submit`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
SOURCE is an index file (a `Projects:` list), an `index.d` directory (its *.yaml files, \
validated as one index: unique ids and images, known parents, no cycle), or `-` for JSON on \
standard input: one entry object or an array of them, with the container index's field names \
(app-id, job-id, git-url, …). Invalid entries are reported on standard error with their file \
and line and not submitted; the valid ones are.

Exit status: 0 at least one job was submitted; 1 no valid entry (or none with --job); 2 any \
other error (unreadable source, broker unreachable).")]
pub struct SubmitArgs {
    /// An index file, an `index.d` directory, or `-` for JSON on standard input.
    source: String,
    /// Only the entry with this `job-id` (default: every entry).
    #[arg(long)]
    job: Option<String>,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    format: SubmitFormat,
}

/// The entries of `source`, reporting the invalid ones on standard error.
fn entries(source: &str) -> anyhow::Result<Vec<Entry>> {
    if source == "-" {
        let mut text = String::new();
        std::io::stdin()
            .take(MAX_STDIN_BYTES + 1)
            .read_to_string(&mut text)?;
        anyhow::ensure!(
            text.len() as u64 <= MAX_STDIN_BYTES,
            "standard input holds more than {MAX_STDIN_BYTES} bytes"
        );
        return entries_from_json(&text);
    }
    let path = PathBuf::from(source);
    if path.is_dir() {
        let set = IndexSet::read(std::slice::from_ref(&path), &[])?;
        for problem in &set.problems {
            eprintln!(
                "{}: skipped: {}",
                escape(source),
                escape(&problem.to_string())
            );
        }
        return Ok(set.entries.into_iter().map(|placed| placed.entry).collect());
    }
    let index = slipway_common::index::read_index_file(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    for invalid in &index.invalid {
        eprintln!(
            "{}",
            escape(&format!("{}: skipped: {invalid}", path.display()))
        );
    }
    Ok(index
        .entries
        .into_iter()
        .map(|placed| placed.entry)
        .collect())
}

/// Entries from a JSON object or array; the invalid ones are reported and left out.
fn entries_from_json(text: &str) -> anyhow::Result<Vec<Entry>> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| anyhow::anyhow!("standard input is not JSON: {e}"))?;
    let values = match value {
        serde_json::Value::Array(values) => values,
        object @ serde_json::Value::Object(_) => vec![object],
        other => anyhow::bail!(
            "standard input: expected an entry object or an array of them, found {}",
            match other {
                serde_json::Value::Null => "null",
                serde_json::Value::Bool(_) => "a boolean",
                serde_json::Value::Number(_) => "a number",
                _ => "a string",
            }
        ),
    };
    let mut entries = Vec::new();
    for (n, value) in values.into_iter().enumerate() {
        match serde_json::from_value::<Entry>(value) {
            Ok(entry) => entries.push(entry),
            Err(error) => eprintln!(
                "-: skipped: entry {}: {}",
                n + 1,
                escape(&error.to_string())
            ),
        }
    }
    Ok(entries)
}

/// Run `slipway submit`.
pub async fn run(settings: &BrokerSettings, args: &SubmitArgs) -> anyhow::Result<ExitCode> {
    let jobs: Vec<Envelope> = entries(&args.source)?
        .into_iter()
        .filter(|entry| {
            args.job
                .as_deref()
                .is_none_or(|wanted| entry.job_id == wanted)
        })
        .map(|entry| {
            Envelope::new_job(
                Cause::User,
                Message::BuildRequested(BuildRequested {
                    entry,
                    commit: None,
                }),
            )
        })
        .collect();
    if jobs.is_empty() {
        eprintln!(
            "slipway: no valid entry{} in {}",
            args.job
                .as_deref()
                .map(|j| format!(" with job-id {j:?}"))
                .unwrap_or_default(),
            if args.source == "-" {
                "standard input".to_owned()
            } else {
                Path::new(&args.source).display().to_string()
            }
        );
        return Ok(ExitCode::FAILURE);
    }
    let connection = BrokerConnection::connect(settings, "slipway-cli").await?;
    let published = async {
        let topology = Topology::pipeline(settings);
        topology.declare(&connection.channel().await?).await?;
        let publisher = Publisher::open(&connection, &topology).await?;
        publisher.publish_all(&jobs).await?;
        Ok::<(), anyhow::Error>(())
    }
    .await;
    connection.close().await;
    published?;
    for job in &jobs {
        if let Message::BuildRequested(request) = &job.message {
            match args.format {
                SubmitFormat::Table => {
                    println!("{}  build.requested  {}", job.job_id, request.entry.image())
                }
                SubmitFormat::Json => println!(
                    "{}",
                    serde_json::json!({
                        "job_id": job.job_id.to_string(),
                        "image": request.entry.image().to_string(),
                    })
                ),
            }
        }
    }
    if args.format == SubmitFormat::Table {
        println!(
            "submitted {} job(s) to {}",
            jobs.len(),
            settings.redacted_url()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_on_stdin_is_an_entry_or_an_array_and_bad_entries_are_left_out() {
        let one =
            r#"{"app-id": "team", "job-id": "web", "git-url": "https://git.example.org/web.git"}"#;
        assert_eq!(entries_from_json(one).unwrap().len(), 1);
        let two = format!("[{one}, {{\"app-id\": \"team\"}}, {one}]");
        assert_eq!(entries_from_json(&two).unwrap().len(), 2);
        assert!(
            entries_from_json("42")
                .unwrap_err()
                .to_string()
                .contains("a number")
        );
        assert!(entries_from_json("{").is_err());
    }
}

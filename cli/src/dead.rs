//! `slipway dead list|show|replay|purge`: the dead letters of `<namespace>.dead` — messages a
//! worker gave up on (malformed, rejected, out of retries) or the broker dropped (delivery
//! limit) — with their reasons; replayed to the routing key they were first published with, or
//! purged after a confirmation.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;

use slipway_broker::history::HistoryEvent;
use slipway_broker::inspect::{
    DeadLetter, peek_dead_letters, purge_dead_letters, replay_dead_letters,
};
use slipway_broker::{BrokerConnection, BrokerSettings, Publisher, Topology};
use slipway_common::Envelope;
use slipway_common::terminal::escape;

use crate::history;

/// Most dead letters looked at by `list` and `show`.
const MAX_LISTED: usize = 10_000;

/// `slipway dead …`.
#[derive(clap::Subcommand, Debug)]
pub enum DeadCommand {
    /// List the dead letters: id, kind, worker, retries and reason.
    #[command(
        after_help = "Exit status: 0 listed (possibly none); 2 the broker cannot be reached."
    )]
    List {
        /// Output format.
        #[arg(long, short = 'f', value_enum, default_value = "table")]
        format: history::Format,
        /// How many to list, oldest first.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show one dead letter whole: its headers and its decoded event.
    #[command(
        after_help = "Exit status: 0 shown; 1 no dead letter has this id; 2 the broker cannot be reached."
    )]
    Show {
        /// Its id, as `slipway dead list` prints it.
        id: String,
    },
    /// Publish dead letters again to the routing key they were first published with, and remove
    /// them from the dead-letter queue once the broker confirmed each (each is replayed once).
    #[command(
        after_help = "Exit status: 0 replayed; 1 none matched; 2 the broker cannot be reached."
    )]
    Replay {
        /// The ids to replay, as `slipway dead list` prints them.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<String>,
        /// Replay every dead letter.
        #[arg(long)]
        all: bool,
    },
    /// Remove every dead letter (asks first, on a terminal).
    #[command(
        after_help = "Exit status: 0 purged (or nothing to purge); 1 not confirmed (on a terminal), or --yes missing when not on one; 2 the broker cannot be reached."
    )]
    Purge {
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
}

/// The id to show for a dead letter: its message id, else a digest of its body.
fn id_of(letter: &DeadLetter) -> String {
    letter.message_id.clone().unwrap_or_else(|| {
        let digest = slipway_common::Digest::sha256_of(&letter.body);
        format!("body-{}", &digest.encoded()[..16])
    })
}

fn decoded(letter: &DeadLetter) -> Option<Envelope> {
    Envelope::decode(&letter.body).ok()
}

/// Run `slipway dead …`.
pub async fn run(settings: &BrokerSettings, command: &DeadCommand) -> anyhow::Result<ExitCode> {
    let connection = BrokerConnection::connect(settings, "slipway-cli").await?;
    let topology = Topology::pipeline(settings);
    topology.declare(&connection.channel().await?).await?;
    let result = match command {
        DeadCommand::List { format, limit } => {
            let letters =
                peek_dead_letters(&connection, &topology, (*limit).min(MAX_LISTED)).await?;
            list(&letters, *format)
        }
        DeadCommand::Show { id } => {
            let letters = peek_dead_letters(&connection, &topology, MAX_LISTED).await?;
            match letters.iter().find(|letter| &id_of(letter) == id) {
                Some(letter) => show(letter),
                None => {
                    eprintln!(
                        "slipway: no dead letter has the id {id:?} (slipway dead list shows them)"
                    );
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        DeadCommand::Replay { ids, all } => {
            let publisher = Publisher::open(&connection, &topology).await?;
            let replayed = replay_dead_letters(&connection, &topology, &publisher, |letter| {
                *all || ids.contains(&id_of(letter))
            })
            .await?;
            for letter in &replayed {
                println!(
                    "{}  replayed to {}",
                    id_of(letter),
                    escape(&letter.routing_key)
                );
            }
            if replayed.is_empty() {
                eprintln!("slipway: no dead letter matched");
                Ok(ExitCode::FAILURE)
            } else {
                let missing: Vec<&String> = ids
                    .iter()
                    .filter(|id| !replayed.iter().any(|l| &id_of(l) == *id))
                    .collect();
                for id in &missing {
                    eprintln!("slipway: no dead letter has the id {id:?}");
                }
                println!("replayed {} dead letter(s)", replayed.len());
                Ok(ExitCode::SUCCESS)
            }
        }
        DeadCommand::Purge { yes } => {
            let count = slipway_broker::inspect::queue_counts(&connection, &topology)
                .await?
                .into_iter()
                .find(|c| c.queue == topology.dead_letter_queue())
                .map_or(0, |c| c.ready);
            if count == 0 {
                println!("no dead letters");
                Ok(ExitCode::SUCCESS)
            } else if !*yes && !confirmed(count)? {
                Ok(ExitCode::FAILURE)
            } else {
                let purged = purge_dead_letters(&connection, &topology).await?;
                println!("purged {purged} dead letter(s)");
                Ok(ExitCode::SUCCESS)
            }
        }
    };
    connection.close().await;
    result
}

/// Ask on the terminal; off a terminal, refuse (say `--yes`).
fn confirmed(count: u32) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        eprintln!("slipway: not on a terminal: add --yes to purge {count} dead letter(s)");
        return Ok(false);
    }
    eprint!("purge {count} dead letter(s)? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

fn list(letters: &[DeadLetter], format: history::Format) -> anyhow::Result<ExitCode> {
    match format {
        history::Format::Json => {
            for letter in letters {
                let json = serde_json::json!({
                    "id": id_of(letter),
                    "routing_key": letter.routing_key,
                    "worker": letter.worker,
                    "attempt": letter.attempt,
                    "reason": letter.reason,
                    "job_id": decoded(letter).map(|e| e.job_id.to_string()),
                });
                println!("{json}");
            }
        }
        history::Format::Table => {
            if letters.is_empty() {
                println!("no dead letters");
            }
            for letter in letters {
                println!(
                    "{}  {:<16}  {:<8}  retries {}  {}",
                    id_of(letter),
                    escape(&letter.routing_key),
                    escape(letter.worker.as_deref().unwrap_or("-")),
                    letter.attempt,
                    escape(&letter.reason)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(letter: &DeadLetter) -> anyhow::Result<ExitCode> {
    let event = decoded(letter).map(|envelope| {
        history::event_json(&HistoryEvent {
            offset: 0,
            envelope,
        })
    });
    let json = serde_json::json!({
        "id": id_of(letter),
        "routing_key": letter.routing_key,
        "worker": letter.worker,
        "attempt": letter.attempt,
        "reason": letter.reason,
        "bytes": letter.body.len(),
        "event": event,
        "body_excerpt": body_excerpt(letter),
    });
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(ExitCode::SUCCESS)
}

/// The start of a body that is not an event, escaped, for the eye.
fn body_excerpt(letter: &DeadLetter) -> Option<String> {
    decoded(letter).is_none().then(|| {
        let head = &letter.body[..letter.body.len().min(256)];
        escape(&String::from_utf8_lossy(head)).into_owned()
    })
}

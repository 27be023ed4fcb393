//! `slipway why IMAGE`: why was this image built? The chain of causes behind the image's latest
//! build, read from the `<namespace>.history` stream, first cause first: a git push (or poll) of
//! a branch at a commit, an index change, a package update in a repository, a rebuild schedule
//! or a user's request; then each parent rebuilt on the way; then the image itself. Each link has
//! its time and job id. The chain is found by [`chain`], a pure function of the events.

use std::io::{self, Write as _};
use std::process::ExitCode;

use serde::Serialize;
use slipway_broker::history::{HistoryEvent, HistoryQuery, HistoryStep, history_stream_name};
use slipway_broker::streams::reader::StreamError;
use slipway_broker::{BrokerConnection, BrokerSettings};
use slipway_common::message::SeenBy;
use slipway_common::terminal::escape;
use slipway_common::{Cause, ImageRef, Kind, Message};

use crate::history::{self, Format};

/// Arguments of `slipway why`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
IMAGE is the short index name (`team/app:1`) or the full reference. The answer starts with the \
first cause (a git push to a repository at a commit, an index change, a package update, a \
schedule, a user's request), then each parent rebuilt because of it, then the image itself; each \
with its time and job id.

Exit status: 0 the chain was printed; 1 IMAGE is malformed, or no build of it is in the window; \
2 any other error (broker unreachable, history unreadable).")]
pub struct WhyArgs {
    /// The image.
    pub image: String,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    format: Format,
    /// How many days back to look.
    #[arg(long, value_name = "N", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=3650))]
    days: u32,
}

/// One link of the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Link {
    /// When (RFC 3339).
    pub at: String,
    /// The job the link belongs to.
    pub job_id: String,
    /// What happened.
    pub what: String,
}

/// Most parents followed up a chain (a cycle in a corrupted history cannot loop).
const MAX_DEPTH: usize = 32;

fn same_image(a: &ImageRef, b: &ImageRef) -> bool {
    a.path() == b.path() && a.tag() == b.tag()
}

fn link(event: &HistoryEvent, what: String) -> Link {
    Link {
        at: event.envelope.created_at.to_rfc3339(),
        job_id: event.envelope.job_id.to_string(),
        what,
    }
}

/// The chain behind the latest build of `image` in `events` (in stream order), first cause
/// first; `None` when no build of it is there.
pub fn chain(events: &[HistoryEvent], image: &ImageRef) -> Option<Vec<Link>> {
    // The latest request of the image (that was built, or is the latest at all).
    let mut links = Vec::new();
    let mut target = image.clone();
    let mut before = events.len();
    for _ in 0..MAX_DEPTH {
        let (index, request) = events[..before].iter().enumerate().rev().find(|(_, e)| {
            matches!(&e.envelope.message, Message::BuildRequested(r) if same_image(&r.entry.image(), &target))
        })?;
        let built = events[index..]
            .iter()
            .find_map(|e| match &e.envelope.message {
                Message::BuildSucceeded(b) if e.envelope.job_id == request.envelope.job_id => {
                    Some((e, b.digest.to_string()))
                }
                _ => None,
            });
        let outcome = match &built {
            Some((_, digest)) => format!("{target} rebuilt: {digest}"),
            None => format!("{target} requested (no build.succeeded of that job yet)"),
        };
        links.push(match built {
            Some((event, _)) => link(event, outcome),
            None => link(request, outcome),
        });
        match &request.envelope.cause {
            Cause::ParentRebuilt(parent) => {
                let Ok(parent) = ImageRef::parse(parent) else {
                    links.push(link(request, format!("parent {parent} rebuilt")));
                    break;
                };
                target = parent;
                before = index;
            }
            cause => {
                links.push(first_cause(&events[..index], request, cause));
                break;
            }
        }
    }
    links.reverse();
    Some(links)
}

/// The link for a cause that is not a parent: the event that started it all, when found.
fn first_cause(earlier: &[HistoryEvent], request: &HistoryEvent, cause: &Cause) -> Link {
    let Message::BuildRequested(requested) = &request.envelope.message else {
        return link(request, cause.to_string());
    };
    let entry = &requested.entry;
    match cause {
        Cause::GitChange => earlier
            .iter()
            .rev()
            .find_map(|e| match &e.envelope.message {
                Message::GitChanged(changed)
                    if changed.git_url == entry.git_url
                        && changed.git_branch == entry.git_branch =>
                {
                    let how = match changed.seen_by {
                        SeenBy::Webhook => "a git push (webhook)",
                        SeenBy::Poll => "a new commit (poll)",
                    };
                    Some(link(
                        e,
                        format!(
                            "{how} to {} {} at commit {}",
                            slipway_common::index::validate::redact_credentials(&changed.git_url),
                            changed.git_branch,
                            changed.commit.as_str()
                        ),
                    ))
                }
                _ => None,
            })
            .unwrap_or_else(|| {
                link(
                    request,
                    "a git change (its git.changed is outside the window)".into(),
                )
            }),
        Cause::PackageUpdate(repository) => earlier
            .iter()
            .rev()
            .find_map(|e| match &e.envelope.message {
                Message::PackagesUpdated(updated) => updated
                    .images
                    .iter()
                    .find(|held| same_image(&held.image, &entry.image()))
                    .map(|held| {
                        link(
                            e,
                            format!(
                                "package {} updated in repository {}",
                                held.packages.join(", "),
                                updated.repository
                            ),
                        )
                    }),
                _ => None,
            })
            .unwrap_or_else(|| link(request, format!("a package update ({repository})"))),
        Cause::IndexChange => earlier
            .iter()
            .rev()
            .find_map(|e| match &e.envelope.message {
                Message::IndexApplied(applied) => Some(link(
                    e,
                    format!(
                        "index commit {} added or changed the entry",
                        applied.commit.as_str()
                    ),
                )),
                _ => None,
            })
            .unwrap_or_else(|| link(request, "an index change".into())),
        Cause::Schedule => link(
            request,
            format!(
                "its rebuild schedule ({})",
                entry.rebuild_schedule.as_deref().unwrap_or("?")
            ),
        ),
        Cause::User => link(
            request,
            "a user's request (slipway submit, or a service)".into(),
        ),
        Cause::ParentRebuilt(parent) => link(request, format!("parent {parent} rebuilt")),
    }
}

/// Run `slipway why`.
pub async fn run(
    settings: &BrokerSettings,
    image: &ImageRef,
    args: &WhyArgs,
) -> anyhow::Result<ExitCode> {
    let connection = BrokerConnection::connect(settings, "slipway-cli").await?;
    let kinds = [
        Kind::BuildRequested,
        Kind::BuildSucceeded,
        Kind::GitChanged,
        Kind::PackagesUpdated,
        Kind::IndexApplied,
    ];
    let read = async {
        let mut events = history::open(
            &connection,
            &settings.namespace,
            HistoryQuery::all().kinds(kinds),
            history::days_ago(args.days),
            false,
        )
        .await?;
        let mut found = Vec::new();
        while let Some(step) = events.next().await {
            match step? {
                HistoryStep::Event(event) => found.push(*event),
                HistoryStep::Undecodable { .. } => {}
                HistoryStep::CaughtUp => break,
            }
        }
        events.close().await;
        Ok::<_, StreamError>(found)
    }
    .await;
    connection.close().await;
    let events = match read {
        Ok(events) => events,
        Err(StreamError::NoStream { .. }) => {
            eprintln!(
                "slipway: {} does not exist: nothing was ever published in namespace {:?}",
                history_stream_name(&settings.namespace),
                settings.namespace
            );
            return Ok(ExitCode::FAILURE);
        }
        Err(error) => return Err(error.into()),
    };
    let Some(links) = chain(&events, image) else {
        eprintln!(
            "slipway: no build of {image} in the last {}",
            history::describe_days(args.days)
        );
        return Ok(ExitCode::FAILURE);
    };
    let mut out = io::stdout().lock();
    match args.format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&links)?)?,
        Format::Table => {
            writeln!(out, "{} was built because of:", escape(&image.to_string()))?;
            for (n, link) in links.iter().enumerate() {
                writeln!(
                    out,
                    "{}{}  job {}  {}",
                    "  ".repeat(n + 1),
                    link.at,
                    link.job_id,
                    escape(&link.what)
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_common::index::test_support::sample_entry;
    use slipway_common::message::test_support::sample_digest;
    use slipway_common::message::{BuildRequested, BuildSucceeded, CommitSha, GitChanged};
    use slipway_common::{Envelope, Timestamp};

    fn at(offset: u64, envelope: Envelope) -> HistoryEvent {
        HistoryEvent {
            offset,
            envelope: Envelope {
                created_at: Timestamp::from_unix_millis(1_796_000_000_000 + offset * 1000),
                ..envelope
            },
        }
    }

    fn entry(job: &str, repo: &str) -> slipway_common::index::Entry {
        let mut entry = sample_entry();
        entry.app_id = "team".into();
        entry.job_id = job.into();
        entry.desired_tag = "1".into();
        entry.git_url = format!("https://git.example.org/{repo}");
        entry.git_branch = "main".into();
        entry
    }

    fn requested(job: &str, repo: &str, cause: Cause) -> Envelope {
        Envelope::new_job(
            cause,
            Message::BuildRequested(BuildRequested {
                entry: entry(job, repo),
                commit: None,
            }),
        )
    }

    fn succeeded(request: &Envelope, digest: &str) -> Envelope {
        let Message::BuildRequested(r) = &request.message else {
            unreachable!()
        };
        request.follow_up(Message::BuildSucceeded(BuildSucceeded {
            entry: r.entry.clone(),
            commit: CommitSha::try_from("ab".repeat(20)).unwrap(),
            image: r.entry.image().in_registry("127.0.0.1:5000").unwrap(),
            digest: sample_digest(digest),
            content_key: "k".into(),
            parent_digests: Default::default(),
            duration_ms: 1,
            record: None,
        }))
    }

    #[test]
    fn a_push_to_the_parents_repository_explains_the_childs_rebuild() {
        let push = Envelope::new_job(
            Cause::GitChange,
            Message::GitChanged(GitChanged {
                git_url: "https://git.example.org/base".into(),
                git_branch: "main".into(),
                commit: CommitSha::try_from("cd".repeat(20)).unwrap(),
                seen_by: SeenBy::Webhook,
                delivery_id: Some("d1".into()),
            }),
        );
        let base = requested("base", "base", Cause::GitChange);
        let base_built = succeeded(&base, "11");
        let app = requested("app", "app", Cause::ParentRebuilt("team/base:1".into()));
        let app_built = succeeded(&app, "22");
        // An older, unrelated build of the app (by a user) before all this.
        let old = requested("app", "app", Cause::User);
        let events = vec![
            at(0, old.clone()),
            at(1, succeeded(&old, "00")),
            at(2, push),
            at(3, base),
            at(4, base_built),
            at(5, app),
            at(6, app_built),
        ];
        let links = chain(
            &events,
            &ImageRef::parse("127.0.0.1:5000/team/app:1").unwrap(),
        )
        .expect("a chain");
        let what: Vec<&str> = links.iter().map(|l| l.what.as_str()).collect();
        assert_eq!(what.len(), 3, "{what:?}");
        assert!(
            what[0].starts_with(
                "a git push (webhook) to https://git.example.org/base main at commit cdcd"
            ),
            "{}",
            what[0]
        );
        assert!(
            what[1].starts_with("team/base:1 rebuilt: sha256:1111"),
            "{}",
            what[1]
        );
        assert!(
            what[2].starts_with("127.0.0.1:5000/team/app:1 rebuilt: sha256:2222"),
            "{}",
            what[2]
        );
        assert!(links[0].at < links[2].at);
        assert!(chain(&events, &ImageRef::parse("team/other:1").unwrap()).is_none());
    }

    #[test]
    fn a_user_request_is_its_own_first_cause() {
        let request = requested("app", "app", Cause::User);
        let events = vec![at(0, request.clone()), at(1, succeeded(&request, "33"))];
        let links = chain(&events, &ImageRef::parse("team/app:1").unwrap()).unwrap();
        assert_eq!(links.len(), 2);
        assert!(links[0].what.starts_with("a user's request"));
        assert_eq!(links[0].job_id, request.job_id.to_string());
    }
}

//! [`LogReader`]: one job's log out of the shared log stream, as a stream of [`LogChunk`]s.
//!
//! The log stream is read through the one stream reader ([`StreamReader`]) from the start of the
//! window ([`ReadFrom`](crate::streams::ReadFrom); default: 24 hours ago, so a read does not scan a week of everyone's logs),
//! keeping the entries whose `x-slipway-job-id` is the job's. The reader knows where the stream
//! ended when the read began, so other jobs writing all the time do not keep a read from ending.
//!
//! - Without `follow`, the read ends when it has caught up.
//! - With `follow`, it ends when it has caught up *and* the latest run of the job has published
//!   its end-of-log marker (a run that started later, e.g. a redelivery, is followed in turn);
//!   until then it waits for more.
//!
//! Either way `deadline` bounds the whole read.
//!
//! Chunks come in stream order, which is each run's `seq` order (a writer publishes one chunk at a
//! time, confirmed); a chunk published twice (a retry after a lost confirm) is skipped, and chunks
//! missing before one (older than the window, or expired) are counted in [`LogChunk::skipped`].

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::{Stream, StreamExt};
use slipway_common::JobId;

use super::{ChunkMeta, LogError};
use crate::connection::BrokerConnection;
use crate::headers;
use crate::streams::reader::{Entries, Filter, ReadOptions, Step, StreamEntry, StreamReader};

/// One chunk of a job's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogChunk {
    /// The job.
    pub job_id: JobId,
    /// The run that wrote it (`x-slipway-run`).
    pub run: String,
    /// 1 for the first run of the job seen in the read, 2 for the next, …
    pub run_number: u32,
    /// The job's retry count when the run started (`x-slipway-attempt`).
    pub attempt: u32,
    /// Position in the run, from 0.
    pub seq: u64,
    /// Chunks of this run before this one that the read did not see (older than the read's
    /// start, or already expired).
    pub skipped: u64,
    /// Whole lines of log text (empty on the end-of-log marker).
    pub text: String,
    /// `Some(outcome)` on the run's end-of-log marker.
    pub outcome: Option<String>,
}

impl LogChunk {
    /// Whether this is the run's end-of-log marker.
    pub fn is_final(&self) -> bool {
        self.outcome.is_some()
    }
}

/// Reads job logs from one log stream.
#[derive(Debug)]
pub struct LogReader<'c> {
    connection: &'c BrokerConnection,
    stream: String,
}

impl<'c> LogReader<'c> {
    /// A reader of `stream` (`log_stream_name(namespace)`) over `connection`.
    pub fn new(connection: &'c BrokerConnection, stream: &str) -> Self {
        Self {
            connection,
            stream: stream.to_owned(),
        }
    }

    /// `job_id`'s log, chunk by chunk, as the module documentation describes. An error ends the
    /// stream.
    pub fn read(&self, job_id: JobId, options: ReadOptions) -> LogChunks<'c> {
        let state = ReadState {
            reader: StreamReader::new(self.connection, &self.stream),
            job_id,
            options,
            phase: Phase::Start,
            runs: Vec::new(),
            out: VecDeque::new(),
        };
        let stream = futures_util::stream::unfold(state, |mut state| async move {
            let item = state.next_item().await;
            item.map(|item| (item, state))
        });
        LogChunks {
            inner: Box::pin(stream),
        }
    }
}

/// The chunks of one job's log, in order; a [`Stream`], or call [`next`](Self::next).
pub struct LogChunks<'c> {
    inner: Pin<Box<dyn Stream<Item = Result<LogChunk, LogError>> + Send + 'c>>,
}

impl LogChunks<'_> {
    /// The next chunk; `None` once the read is over.
    pub async fn next(&mut self) -> Option<Result<LogChunk, LogError>> {
        self.inner.next().await
    }
}

impl Stream for LogChunks<'_> {
    type Item = Result<LogChunk, LogError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for LogChunks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogChunks").finish_non_exhaustive()
    }
}

struct ReadState<'c> {
    reader: StreamReader<'c>,
    job_id: JobId,
    options: ReadOptions,
    phase: Phase,
    /// Runs of the job, in the order they appeared.
    runs: Vec<RunState>,
    out: VecDeque<LogChunk>,
}

enum Phase {
    Start,
    Reading(Box<Entries>),
    Done,
}

struct RunState {
    run: String,
    next_seq: u64,
    finished: bool,
}

impl ReadState<'_> {
    async fn next_item(&mut self) -> Option<Result<LogChunk, LogError>> {
        loop {
            if let Some(chunk) = self.out.pop_front() {
                return Some(Ok(chunk));
            }
            match &mut self.phase {
                Phase::Done => return None,
                Phase::Start => {
                    let job = Filter::all().header(headers::JOB_ID, self.job_id.to_string());
                    match self.reader.open(job, &self.options).await {
                        Ok(entries) => self.phase = Phase::Reading(Box::new(entries)),
                        Err(error) => {
                            self.phase = Phase::Done;
                            return Some(Err(error.into()));
                        }
                    }
                }
                Phase::Reading(entries) => {
                    // Following ends once the past is read and the latest run has ended.
                    let latest_finished = self.runs.last().is_some_and(|run| run.finished);
                    if entries.caught_up() && latest_finished {
                        self.finish().await;
                        continue;
                    }
                    match entries.next().await {
                        Some(Ok(Step::Entry(entry))) => self.take(&entry),
                        Some(Ok(Step::CaughtUp)) => {}
                        None => self.finish().await,
                        Some(Err(error)) => {
                            self.finish().await;
                            return Some(Err(error.into()));
                        }
                    }
                }
            }
        }
    }

    /// Keep `entry` if it is a new chunk of the job's log.
    fn take(&mut self, entry: &StreamEntry) {
        let meta = match ChunkMeta::from_headers(entry.headers()) {
            Ok(meta) => meta,
            Err(error) => {
                tracing::debug!(stream = %self.reader.stream(), %error, "skipping a message that is not a log chunk");
                return;
            }
        };
        if let Some(chunk) = accept(&mut self.runs, meta, &entry.body) {
            self.out.push_back(chunk);
        }
    }

    async fn finish(&mut self) {
        if let Phase::Reading(entries) = std::mem::replace(&mut self.phase, Phase::Done) {
            entries.close().await;
        }
        tracing::debug!(job_id = %self.job_id, runs = self.runs.len(), "log read done");
    }
}

/// Turn a chunk of the job into a [`LogChunk`], unless it repeats one already seen.
fn accept(runs: &mut Vec<RunState>, meta: ChunkMeta, body: &[u8]) -> Option<LogChunk> {
    let index = match runs.iter().position(|run| run.run == meta.run) {
        Some(index) => index,
        None => {
            runs.push(RunState {
                run: meta.run.clone(),
                next_seq: 0,
                finished: false,
            });
            runs.len() - 1
        }
    };
    let run = &mut runs[index];
    if meta.seq < run.next_seq || run.finished {
        return None;
    }
    let skipped = meta.seq - run.next_seq;
    run.next_seq = meta.seq + 1;
    run.finished = meta.outcome.is_some();
    Some(LogChunk {
        job_id: meta.job_id,
        run: meta.run,
        run_number: u32::try_from(index + 1).unwrap_or(u32::MAX),
        attempt: meta.attempt,
        seq: meta.seq,
        skipped,
        text: String::from_utf8_lossy(body).into_owned(),
        outcome: meta.outcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(run: &str, seq: u64, outcome: Option<&str>) -> ChunkMeta {
        ChunkMeta {
            job_id: JobId::new(),
            run: run.into(),
            attempt: 0,
            seq,
            outcome: outcome.map(str::to_owned),
        }
    }

    #[test]
    fn runs_are_numbered_in_order_of_appearance_and_duplicates_are_skipped() {
        let mut runs = Vec::new();
        let a0 = accept(&mut runs, meta("a", 0, None), b"a0\n").unwrap();
        assert_eq!((a0.run_number, a0.seq, a0.skipped), (1, 0, 0));
        assert!(accept(&mut runs, meta("a", 0, None), b"a0\n").is_none());
        let b0 = accept(&mut runs, meta("b", 0, None), b"b0\n").unwrap();
        assert_eq!(b0.run_number, 2);
        let a1 = accept(&mut runs, meta("a", 1, Some("lost")), b"").unwrap();
        assert!(a1.is_final());
        assert_eq!(a1.run_number, 1);
        assert!(runs[0].finished && !runs[1].finished);
        assert!(
            accept(&mut runs, meta("a", 2, None), b"late").is_none(),
            "nothing after a run's end"
        );
    }

    #[test]
    fn chunks_missing_before_one_are_counted() {
        let mut runs = Vec::new();
        let first = accept(&mut runs, meta("a", 5, None), b"x\n").unwrap();
        assert_eq!(
            first.skipped, 5,
            "the read started in the middle of the run"
        );
        let gap = accept(&mut runs, meta("a", 8, None), b"y\n").unwrap();
        assert_eq!(gap.skipped, 2);
    }
}

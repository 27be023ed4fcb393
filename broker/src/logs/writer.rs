//! [`LogWriter`]: one job run's log, line by line, into the log stream without ever holding up the
//! build.
//!
//! `write_line` only appends to a buffer under a mutex; a background task cuts the buffer into
//! chunks of whole lines and publishes them one at a time, each confirmed, retrying with growing
//! delays when the broker refuses or fails. A chunk leaves when `chunk_bytes` are waiting or the
//! oldest waiting line is `flush_interval` old, whichever comes first.
//!
//! When the broker is slow or away, the buffer grows up to `buffer_cap_bytes` (plus one line);
//! past that the *oldest unsent* lines are dropped and replaced by one line
//! `[… N bytes of log dropped …]`, so the log keeps its beginning (already sent), an explicit gap,
//! and its most recent end — usually the part that says why a build failed. A log is not worth
//! failing a build over: nothing here returns an error to the build except [`LogWriter::finish`],
//! and that one only reports.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use slipway_common::JobId;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{ChunkMeta, LOG_CONTENT_TYPE, LogError};
use crate::publisher::{PublishError, Publisher};
use crate::streams::{self, Append};

/// First delay before publishing a refused chunk again.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
/// Room kept for the marker when a single line is longer than the whole buffer.
const MARKER_ROOM: usize = 64;

/// How a [`LogWriter`] cuts and buffers the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogWriterOptions {
    /// A chunk is published once this many bytes wait (default 64 KiB); a chunk holds whole lines
    /// and is at most this big, unless one line alone is bigger.
    pub chunk_bytes: usize,
    /// A line waits at most this long before its chunk is published (default 500 ms).
    pub flush_interval: Duration,
    /// Most bytes kept waiting while the broker is slow (default 8 MiB); past it the oldest unsent
    /// lines are dropped and replaced by `[… N bytes of log dropped …]`.
    pub buffer_cap_bytes: usize,
    /// Longest pause between two attempts to publish a refused chunk (default 5 s).
    pub retry_max_delay: Duration,
    /// How long [`LogWriter::finish`] (or a dropped writer) keeps trying to publish the rest of
    /// the log and the end-of-log marker (default 30 s).
    pub finish_timeout: Duration,
}

impl Default for LogWriterOptions {
    fn default() -> Self {
        Self {
            chunk_bytes: 64 << 10,
            flush_interval: Duration::from_millis(500),
            buffer_cap_bytes: 8 << 20,
            retry_max_delay: Duration::from_secs(5),
            finish_timeout: Duration::from_secs(30),
        }
    }
}

/// Counters of one writer, for logs and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Bytes given to `write_line`, newlines included.
    pub bytes_written: u64,
    /// Bytes of chunks the broker confirmed (drop markers included).
    pub bytes_published: u64,
    /// Bytes dropped because the buffer was full.
    pub bytes_dropped: u64,
    /// Chunks the broker confirmed, the end-of-log marker included.
    pub chunks_published: u64,
    /// Publish attempts that failed (and were retried).
    pub publish_failures: u64,
    /// Bytes waiting to be published (buffered or in flight).
    pub unpublished_bytes: usize,
}

/// The log of one run of one job. Create it when the run starts, feed it lines, and call
/// [`finish`](Self::finish) with the outcome; dropping it instead publishes what is buffered
/// (for up to `finish_timeout`) but no end-of-log marker, which readers take as a run that died.
#[derive(Debug)]
pub struct LogWriter {
    job_id: JobId,
    run: String,
    shared: Arc<Shared>,
    options: LogWriterOptions,
    task: Option<JoinHandle<LogStats>>,
}

impl LogWriter {
    /// A writer for `job_id`'s log in `stream`, publishing through `publisher` (a confirm-mode
    /// channel; a dedicated one keeps log traffic from delaying events), with default options and
    /// attempt 0.
    ///
    /// # Panics
    /// Outside a Tokio runtime: the writer publishes from a task of its own.
    pub fn new(publisher: &Publisher, stream: &str, job_id: JobId) -> Self {
        Self::start(publisher, stream, job_id, 0, LogWriterOptions::default())
    }

    /// A writer with `options`, for the run of `job_id` whose retry count is `attempt`
    /// (`Job::attempt`).
    ///
    /// # Panics
    /// Outside a Tokio runtime: the writer publishes from a task of its own.
    pub fn start(
        publisher: &Publisher,
        stream: &str,
        job_id: JobId,
        attempt: u32,
        options: LogWriterOptions,
    ) -> Self {
        let sink = PublisherSink {
            publisher: publisher.clone(),
            stream: stream.to_owned(),
        };
        Self::with_sink(sink, job_id, attempt, options)
    }

    fn with_sink<S: ChunkSink>(
        sink: S,
        job_id: JobId,
        attempt: u32,
        options: LogWriterOptions,
    ) -> Self {
        let options = LogWriterOptions {
            chunk_bytes: options.chunk_bytes.max(1),
            buffer_cap_bytes: options.buffer_cap_bytes.max(1),
            ..options
        };
        let run = uuid::Uuid::now_v7().to_string();
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            wake: Notify::new(),
        });
        let meta = ChunkMeta {
            job_id,
            run: run.clone(),
            attempt,
            seq: 0,
            outcome: None,
        };
        let task = tokio::spawn(flush_loop(shared.clone(), sink, meta, options.clone()));
        Self {
            job_id,
            run,
            shared,
            options,
            task: Some(task),
        }
    }

    /// The run id in this writer's `x-slipway-run` header.
    pub fn run(&self) -> &str {
        &self.run
    }

    /// Append one line (without its newline; one trailing `\n` or `\r\n` is not doubled). Never
    /// waits for the broker.
    pub fn write_line(&self, line: &str) {
        let line = line
            .strip_suffix('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .unwrap_or(line);
        let mut state = self.shared.lock();
        let was_empty = state.pending.is_empty();
        let before = state.pending.bytes();
        let dropped = state.pending.push_line(line, self.options.buffer_cap_bytes);
        state.stats.bytes_written += len_u64(line.len() + 1);
        if dropped > 0 && state.stats.bytes_dropped == 0 {
            tracing::warn!(
                job_id = %self.job_id,
                cap_bytes = self.options.buffer_cap_bytes,
                "the broker is not taking this job's log fast enough; dropping the middle of the log"
            );
        }
        state.stats.bytes_dropped += dropped;
        if was_empty {
            state.oldest_at = Some(Instant::now());
        }
        let crossed =
            before < self.options.chunk_bytes && state.pending.bytes() >= self.options.chunk_bytes;
        drop(state);
        if was_empty || crossed {
            self.shared.wake.notify_one();
        }
    }

    /// The writer's counters so far.
    pub fn stats(&self) -> LogStats {
        self.shared.lock().stats()
    }

    /// Publish the rest of the log and the end-of-log marker with `outcome` (e.g.
    /// `build.succeeded`), waiting at most `finish_timeout`. An error says how much of the log
    /// the broker never took; the build's own result should not depend on it.
    pub async fn finish(mut self, outcome: &str) -> Result<LogStats, LogError> {
        self.shared.lock().end = End::Finish(outcome.to_owned());
        self.shared.wake.notify_one();
        let Some(task) = self.task.take() else {
            return Ok(self.stats());
        };
        let abort = task.abort_handle();
        match tokio::time::timeout(self.options.finish_timeout, task).await {
            Ok(Ok(stats)) => Ok(stats),
            Ok(Err(_)) | Err(_) => {
                abort.abort();
                Err(LogError::Unfinished {
                    job_id: self.job_id,
                    unpublished_bytes: self.stats().unpublished_bytes,
                    after: self.options.finish_timeout,
                })
            }
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if self.task.is_some() {
            self.shared.lock().end = End::Abandon {
                give_up_at: Instant::now() + self.options.finish_timeout,
            };
            self.shared.wake.notify_one();
        }
    }
}

/// Where chunks go: the log stream, or a fake in unit tests.
trait ChunkSink: Send + Sync + 'static {
    /// Publish one chunk and wait for the broker's confirm.
    fn publish(
        &self,
        body: &[u8],
        meta: &ChunkMeta,
    ) -> impl Future<Output = Result<(), PublishError>> + Send;
}

struct PublisherSink {
    publisher: Publisher,
    stream: String,
}

impl ChunkSink for PublisherSink {
    async fn publish(&self, body: &[u8], meta: &ChunkMeta) -> Result<(), PublishError> {
        let message = Append {
            body,
            content_type: LOG_CONTENT_TYPE,
            message_id: format!("{}.{}", meta.run, meta.seq),
            headers: meta.to_headers(),
        };
        streams::append(&self.publisher, &self.stream, message).await
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    wake: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned buffer is still a valid buffer.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug, Default)]
struct State {
    pending: Pending,
    /// When the oldest waiting line was written (`Some` exactly when `pending` is not empty).
    oldest_at: Option<Instant>,
    /// Bytes of the chunk being published.
    in_flight: usize,
    end: End,
    stats: LogStats,
}

impl State {
    fn stats(&self) -> LogStats {
        LogStats {
            unpublished_bytes: self.pending.bytes() + self.in_flight,
            ..self.stats
        }
    }
}

#[derive(Debug, Default, PartialEq)]
enum End {
    #[default]
    Open,
    /// `finish`: publish everything, then the final marker.
    Finish(String),
    /// Dropped: publish what is buffered until `give_up_at`, no final marker.
    Abandon { give_up_at: Instant },
}

enum Step {
    Publish(String),
    Final(String),
    Stop,
    WaitUntil(Instant),
    Wait,
}

fn next_step(state: &mut State, options: &LogWriterOptions, now: Instant) -> Step {
    let due = state
        .oldest_at
        .map(|oldest| oldest + options.flush_interval);
    let ready = state.pending.bytes() >= options.chunk_bytes
        || state.end != End::Open
        || due.is_some_and(|due| due <= now);
    if ready && let Some(body) = state.pending.take_chunk(options.chunk_bytes) {
        state.in_flight = body.len();
        if state.pending.is_empty() {
            state.oldest_at = None;
        }
        return Step::Publish(body);
    }
    match (&state.end, due) {
        (End::Finish(outcome), _) => Step::Final(outcome.clone()),
        (End::Abandon { .. }, _) => Step::Stop,
        (End::Open, Some(due)) => Step::WaitUntil(due),
        (End::Open, None) => Step::Wait,
    }
}

async fn flush_loop<S: ChunkSink>(
    shared: Arc<Shared>,
    sink: S,
    mut meta: ChunkMeta,
    options: LogWriterOptions,
) -> LogStats {
    loop {
        let step = next_step(&mut shared.lock(), &options, Instant::now());
        match step {
            Step::Publish(body) => {
                if !publish(&shared, &sink, &meta, &body, &options).await {
                    break;
                }
                meta.seq += 1;
            }
            Step::Final(outcome) => {
                meta.outcome = Some(outcome);
                publish(&shared, &sink, &meta, "", &options).await;
                break;
            }
            Step::Stop => break,
            Step::WaitUntil(due) => {
                tokio::select! {
                    () = tokio::time::sleep_until(due) => {}
                    () = shared.wake.notified() => {}
                }
            }
            Step::Wait => shared.wake.notified().await,
        }
    }
    shared.lock().stats()
}

/// Publish one chunk, retrying until the broker confirms it; `false` when an abandoned writer's
/// time is up.
async fn publish<S: ChunkSink>(
    shared: &Shared,
    sink: &S,
    meta: &ChunkMeta,
    body: &str,
    options: &LogWriterOptions,
) -> bool {
    let mut delay = FIRST_RETRY_DELAY.min(options.retry_max_delay);
    let mut failed_here = 0u64;
    loop {
        let give_up_at = match shared.lock().end {
            End::Abandon { give_up_at } => Some(give_up_at),
            _ => None,
        };
        let attempt = sink.publish(body.as_bytes(), meta);
        let result = match give_up_at {
            Some(at) => tokio::time::timeout_at(at, attempt).await.ok(),
            None => Some(attempt.await),
        };
        let error = match result {
            None => return false,
            Some(Ok(())) => {
                let mut state = shared.lock();
                state.in_flight = 0;
                state.stats.chunks_published += 1;
                state.stats.bytes_published += len_u64(body.len());
                if failed_here > 0 {
                    tracing::info!(job_id = %meta.job_id, failures = failed_here, "a chunk of the job's log was published after failures");
                }
                return true;
            }
            Some(Err(error)) => error,
        };
        failed_here += 1;
        let failures = {
            let mut state = shared.lock();
            state.stats.publish_failures += 1;
            state.stats.publish_failures
        };
        if failures == 1 {
            tracing::warn!(job_id = %meta.job_id, %error, retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), "cannot publish a chunk of the job's log; retrying");
        } else {
            tracing::debug!(job_id = %meta.job_id, %error, failures, "cannot publish a chunk of the job's log; retrying");
        }
        if give_up_at.is_some_and(|at| Instant::now() + delay >= at) {
            return false;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(options.retry_max_delay);
    }
}

/// Lines waiting to be published, with the drop markers between them.
#[derive(Debug, Default)]
struct Pending {
    segments: VecDeque<Segment>,
    /// Bytes of the lines (markers are not counted).
    bytes: usize,
}

#[derive(Debug, PartialEq)]
enum Segment {
    /// One line, with its newline.
    Line(String),
    /// So many bytes of lines were dropped here.
    Dropped(u64),
}

fn dropped_marker(bytes: u64) -> String {
    format!("[… {bytes} bytes of log dropped …]\n")
}

impl Segment {
    fn len(&self) -> usize {
        match self {
            Self::Line(line) => line.len(),
            Self::Dropped(bytes) => dropped_marker(*bytes).len(),
        }
    }
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    fn bytes(&self) -> usize {
        self.bytes
    }

    /// Append `line` and a newline; drop the oldest waiting lines (never the newest) while more
    /// than `cap` bytes wait. A line longer than `cap` alone keeps its beginning. Returns how many
    /// bytes were dropped.
    fn push_line(&mut self, line: &str, cap: usize) -> u64 {
        let mut dropped = 0;
        let mut text = String::with_capacity(line.len().min(cap) + MARKER_ROOM);
        if line.len() + 1 > cap {
            let keep = floor_char_boundary(line, cap.saturating_sub(MARKER_ROOM));
            let cut = len_u64(line.len() - keep);
            text.push_str(&line[..keep]);
            text.push_str(&dropped_marker(cut));
            dropped += cut;
        } else {
            text.push_str(line);
            text.push('\n');
        }
        self.bytes += text.len();
        self.segments.push_back(Segment::Line(text));
        while self.bytes > cap {
            let oldest = match self.segments.front() {
                Some(Segment::Dropped(_)) => 1,
                _ => 0,
            };
            if oldest + 1 >= self.segments.len() {
                break;
            }
            let Some(Segment::Line(old)) = self.segments.remove(oldest) else {
                break;
            };
            self.bytes -= old.len();
            let old = len_u64(old.len());
            dropped += old;
            match self.segments.front_mut() {
                Some(Segment::Dropped(bytes)) if oldest == 1 => *bytes += old,
                _ => self.segments.push_front(Segment::Dropped(old)),
            }
        }
        dropped
    }

    /// Take whole lines (and markers) from the front, at most `max` bytes unless the first one
    /// alone is bigger.
    fn take_chunk(&mut self, max: usize) -> Option<String> {
        let mut body = String::new();
        while let Some(front) = self.segments.front() {
            if !body.is_empty() && body.len() + front.len() > max {
                break;
            }
            match self.segments.pop_front() {
                Some(Segment::Line(line)) => {
                    self.bytes -= line.len();
                    body.push_str(&line);
                }
                Some(Segment::Dropped(bytes)) => body.push_str(&dropped_marker(bytes)),
                None => break,
            }
        }
        (!body.is_empty()).then_some(body)
    }
}

fn floor_char_boundary(text: &str, index: usize) -> usize {
    if index >= text.len() {
        return text.len();
    }
    (0..=index)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

fn len_u64(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicBool, Ordering};

    fn drain(pending: &mut Pending) -> String {
        let mut all = String::new();
        while let Some(chunk) = pending.take_chunk(usize::MAX) {
            all.push_str(&chunk);
        }
        all
    }

    #[test]
    fn chunks_hold_whole_lines_and_respect_the_size_unless_one_line_is_bigger() {
        let mut pending = Pending::default();
        for line in ["aaaa", "bbbb", "cccc", "a-much-longer-line", "d"] {
            assert_eq!(pending.push_line(line, 1 << 20), 0);
        }
        assert_eq!(pending.take_chunk(10).as_deref(), Some("aaaa\nbbbb\n"));
        assert_eq!(pending.take_chunk(10).as_deref(), Some("cccc\n"));
        assert_eq!(
            pending.take_chunk(10).as_deref(),
            Some("a-much-longer-line\n")
        );
        assert_eq!(pending.take_chunk(10).as_deref(), Some("d\n"));
        assert_eq!(pending.take_chunk(10), None);
        assert_eq!(pending.bytes(), 0);
    }

    #[test]
    fn over_the_cap_the_oldest_waiting_lines_become_one_marker_and_the_newest_stay() {
        let mut pending = Pending::default();
        let lines: Vec<String> = (0..10).map(|i| format!("line {i:02}")).collect(); // 7 bytes + \n
        let mut dropped = 0;
        for line in &lines {
            dropped += pending.push_line(line, 30);
        }
        assert!(pending.bytes() <= 30, "{}", pending.bytes());
        assert_eq!(dropped, 7 * 8);
        assert_eq!(
            drain(&mut pending),
            "[… 56 bytes of log dropped …]\nline 07\nline 08\nline 09\n"
        );
    }

    #[test]
    fn a_marker_already_sent_is_not_reused_and_the_new_gap_gets_its_own() {
        let mut pending = Pending::default();
        for i in 0..5 {
            pending.push_line(&format!("a{i}"), 6);
        }
        let first = pending.take_chunk(1000).unwrap();
        assert_eq!(first, "[… 9 bytes of log dropped …]\na3\na4\n");
        for i in 0..3 {
            pending.push_line(&format!("b{i}"), 6);
        }
        assert_eq!(
            drain(&mut pending),
            "[… 3 bytes of log dropped …]\nb1\nb2\n"
        );
    }

    #[test]
    fn a_line_longer_than_the_cap_keeps_its_beginning_and_says_what_was_cut() {
        let mut pending = Pending::default();
        let long = "é".repeat(100); // 200 bytes
        let dropped = pending.push_line(&long, 100);
        let text = drain(&mut pending);
        assert!(text.starts_with("éééé"), "{text}");
        assert!(text.ends_with("bytes of log dropped …]\n"), "{text}");
        let kept = text.split('[').next().unwrap().len();
        assert_eq!(kept as u64 + dropped, 200);
        assert!(kept <= 100 - MARKER_ROOM);
    }

    /// Records chunks, or refuses them while `refuse` is set.
    #[derive(Clone, Default)]
    struct FakeSink {
        published: Arc<Mutex<Vec<(String, ChunkMeta, Instant)>>>,
        refuse: Arc<AtomicBool>,
        published_signal: Arc<Notify>,
    }

    impl ChunkSink for FakeSink {
        async fn publish(&self, body: &[u8], meta: &ChunkMeta) -> Result<(), PublishError> {
            if self.refuse.load(Ordering::SeqCst) {
                return Err(PublishError::Nacked {
                    exchange: String::new(),
                    routing_key: "fake".into(),
                });
            }
            self.published.lock().unwrap().push((
                String::from_utf8(body.to_vec()).unwrap(),
                meta.clone(),
                Instant::now(),
            ));
            self.published_signal.notify_one();
            Ok(())
        }
    }

    impl FakeSink {
        fn chunks(&self) -> Vec<(String, ChunkMeta, Instant)> {
            self.published.lock().unwrap().clone()
        }

        async fn wait_for(&self, count: usize) {
            while self.chunks().len() < count {
                self.published_signal.notified().await;
            }
        }
    }

    fn options(chunk_bytes: usize, cap: usize) -> LogWriterOptions {
        LogWriterOptions {
            chunk_bytes,
            flush_interval: Duration::from_millis(500),
            buffer_cap_bytes: cap,
            retry_max_delay: Duration::from_millis(400),
            finish_timeout: Duration::from_secs(30),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_log_is_flushed_after_the_interval_and_a_busy_one_at_the_chunk_size() {
        let sink = FakeSink::default();
        let writer = LogWriter::with_sink(sink.clone(), JobId::new(), 0, options(20, 1 << 20));
        let started = Instant::now();
        writer.write_line("quiet");
        sink.wait_for(1).await;
        let chunks = sink.chunks();
        assert_eq!(chunks[0].0, "quiet\n");
        assert_eq!(chunks[0].2 - started, Duration::from_millis(500));

        let busy = Instant::now();
        for i in 0..4 {
            writer.write_line(&format!("busy line {i}")); // 12 bytes each
        }
        sink.wait_for(3).await;
        let chunks = sink.chunks();
        assert_eq!(chunks[1].0, "busy line 0\n");
        assert_eq!(chunks[2].0, "busy line 1\n");
        assert_eq!(chunks[1].2, busy, "a full chunk leaves without waiting");
        let stats = writer.finish("build.succeeded").await.unwrap();
        let chunks = sink.chunks();
        let seqs: Vec<u64> = chunks.iter().map(|c| c.1.seq).collect();
        assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
        let last = chunks.last().unwrap();
        assert_eq!(last.0, "");
        assert_eq!(last.1.outcome.as_deref(), Some("build.succeeded"));
        assert!(
            chunks[..chunks.len() - 1]
                .iter()
                .all(|c| c.1.outcome.is_none())
        );
        let text: String = chunks.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(
            text,
            "quiet\nbusy line 0\nbusy line 1\nbusy line 2\nbusy line 3\n"
        );
        assert_eq!(stats.bytes_written, 6 + 4 * 12);
        assert_eq!(stats.bytes_published, stats.bytes_written);
        assert_eq!(stats.chunks_published, chunks.len() as u64);
        assert_eq!(stats.unpublished_bytes, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusing_broker_never_blocks_writes_and_the_log_resumes_with_the_gap_marked() {
        let sink = FakeSink::default();
        sink.refuse.store(true, Ordering::SeqCst);
        let writer = LogWriter::with_sink(sink.clone(), JobId::new(), 1, options(64, 256));
        let lines: Vec<String> = (0..1000).map(|i| format!("line {i:04}")).collect(); // 10 bytes
        for line in &lines {
            writer.write_line(line);
            tokio::task::yield_now().await;
        }
        let stats = writer.stats();
        assert!(stats.publish_failures >= 1, "{stats:?}");
        assert!(stats.unpublished_bytes <= 256 + 64, "{stats:?}");
        assert!(stats.bytes_dropped > 0);
        sink.refuse.store(false, Ordering::SeqCst);
        let stats = writer.finish("build.failed").await.unwrap();
        let text: String = sink.chunks().iter().map(|c| c.0.as_str()).collect();
        let kept: Vec<&str> = text.lines().collect();
        let marker = kept
            .iter()
            .position(|l| l.starts_with("[… "))
            .expect("a drop marker");
        let dropped: u64 = kept[marker]
            .trim_start_matches("[… ")
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(dropped, stats.bytes_dropped);
        assert_eq!(
            kept.iter().filter(|l| l.starts_with("[… ")).count(),
            1,
            "{text}"
        );
        let before: Vec<&str> = kept[..marker].to_vec();
        let after: Vec<&str> = kept[marker + 1..].to_vec();
        assert_eq!(before, lines[..before.len()], "the beginning is kept");
        assert_eq!(after, lines[lines.len() - after.len()..], "the end is kept");
        assert_eq!(
            (lines.len() - before.len() - after.len()) as u64 * 10,
            dropped,
            "exactly the missing lines are counted"
        );
        assert!(after.len() * 10 >= 256 - 10, "the tail fills the buffer");
    }

    #[tokio::test(start_paused = true)]
    async fn finish_gives_up_after_its_timeout_and_says_how_much_was_lost() {
        let sink = FakeSink::default();
        sink.refuse.store(true, Ordering::SeqCst);
        let options = LogWriterOptions {
            finish_timeout: Duration::from_secs(3),
            ..options(1 << 10, 1 << 20)
        };
        let writer = LogWriter::with_sink(sink.clone(), JobId::new(), 0, options);
        writer.write_line("never published");
        let started = Instant::now();
        let error = writer.finish("build.succeeded").await.unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        match error {
            LogError::Unfinished {
                unpublished_bytes, ..
            } => assert_eq!(unpublished_bytes, 16),
            other => panic!("{other}"),
        }
        assert!(sink.chunks().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_writer_publishes_what_it_has_but_no_end_marker() {
        let sink = FakeSink::default();
        let writer = LogWriter::with_sink(sink.clone(), JobId::new(), 0, options(1 << 10, 1 << 20));
        writer.write_line("half a build");
        drop(writer);
        sink.wait_for(1).await;
        let chunks = sink.chunks();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].0, "half a build\n");
        assert!(chunks[0].1.outcome.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn each_writer_is_its_own_run_and_carries_the_attempt() {
        let sink = FakeSink::default();
        let job = JobId::new();
        let first = LogWriter::with_sink(sink.clone(), job, 0, options(1 << 10, 1 << 20));
        let second = LogWriter::with_sink(sink.clone(), job, 1, options(1 << 10, 1 << 20));
        assert_ne!(first.run(), second.run());
        first.finish("worker lost").await.unwrap();
        second.finish("build.succeeded").await.unwrap();
        let chunks = sink.chunks();
        assert_eq!(chunks.len(), 2);
        assert!(chunks.iter().all(|c| c.1.seq == 0 && c.1.job_id == job));
        assert_eq!(
            chunks.iter().map(|c| c.1.attempt).collect::<Vec<_>>(),
            [0, 1]
        );
    }

    #[test]
    fn floor_char_boundary_never_splits_a_character() {
        assert_eq!(floor_char_boundary("aé", 2), 1);
        assert_eq!(floor_char_boundary("aé", 3), 3);
        assert_eq!(floor_char_boundary("aé", 10), 3);
        assert_eq!(floor_char_boundary("", 0), 0);
    }
}

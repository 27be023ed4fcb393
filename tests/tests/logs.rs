//! Build logs on the log stream against a real RabbitMQ: interleaved jobs read back apart and
//! complete, following a log as it is written, a redelivered job's runs, and a broker that does
//! not take the log (the buffer cap drops the middle, writes never block).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slipway_broker::logs::{
    LogChunk, LogReader, LogStreamSettings, LogWriter, LogWriterOptions, ReadFrom, ReadOptions,
    declare_log_stream, delete_log_stream, log_stream_name,
};
use slipway_broker::{BrokerConnection, BrokerSettings, Publisher, Topology};
use slipway_common::JobId;
use slipway_tests::{ensure_rabbitmq, eventually, test_settings};
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(60);

/// A test's own log stream, its connection, and a confirm-mode publisher.
struct LogBus {
    settings: BrokerSettings,
    stream: String,
    connection: BrokerConnection,
    publisher: Publisher,
}

/// Small retention: test streams live for one test.
fn test_retention() -> LogStreamSettings {
    LogStreamSettings {
        max_age: "1h".into(),
        max_length_bytes: 64 << 20,
        max_segment_size_bytes: 4 << 20,
    }
}

/// Run `body` with a fresh log stream, and delete the stream afterwards even when `body` panics
/// (every stream or queue left behind holds broker file handles).
async fn with_log_stream<F, Fut>(test: &str, body: F)
where
    F: FnOnce(Arc<LogBus>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    ensure_rabbitmq();
    let settings = test_settings(test);
    let connection = BrokerConnection::connect(&settings, "slipway-test-logs")
        .await
        .expect("connect to the test broker");
    let stream = log_stream_name(&settings.namespace);
    declare_log_stream(&connection, &settings, &test_retention())
        .await
        .expect("declare the log stream");
    // Idempotent: a second declaration with the same retention is fine.
    declare_log_stream(&connection, &settings, &test_retention())
        .await
        .expect("declare the log stream again");
    let publisher = Publisher::open(&connection, &Topology::new(&settings))
        .await
        .expect("publisher");
    let bus = Arc::new(LogBus {
        settings,
        stream,
        connection,
        publisher,
    });
    let outcome = tokio::spawn(body(bus.clone())).await;

    let cleanup = BrokerConnection::connect(&bus.settings, "slipway-test-logs-cleanup")
        .await
        .expect("connect for cleanup");
    delete_log_stream(&cleanup, &bus.stream)
        .await
        .expect("delete the test's log stream");
    cleanup.close().await;
    bus.connection.close().await;
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

fn read_options(follow: bool) -> ReadOptions {
    ReadOptions {
        from: ReadFrom::First,
        follow,
        deadline: Some(DEADLINE),
        ..ReadOptions::default()
    }
}

/// Everything the reader gives for `job`.
async fn read_log(bus: &LogBus, job: JobId) -> Vec<LogChunk> {
    let reader = LogReader::new(&bus.connection, &bus.stream);
    let mut chunks = reader.read(job, read_options(false));
    let mut all = Vec::new();
    while let Some(chunk) = chunks.next().await {
        all.push(chunk.expect("read the log"));
    }
    all
}

fn text_of(chunks: &[LogChunk]) -> String {
    chunks.iter().map(|c| c.text.as_str()).collect()
}

fn small_chunks() -> LogWriterOptions {
    LogWriterOptions {
        chunk_bytes: 100,
        flush_interval: Duration::from_millis(50),
        ..LogWriterOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_interleaved_jobs_are_read_back_apart_complete_and_in_order() {
    with_log_stream("logs-interleaved", |bus| async move {
        let (a, b) = (JobId::new(), JobId::new());
        let writer_a = LogWriter::start(&bus.publisher, &bus.stream, a, 0, small_chunks());
        let writer_b = LogWriter::start(&bus.publisher, &bus.stream, b, 0, small_chunks());
        let lines = |job: &str| -> Vec<String> {
            (0..300)
                .map(|i| format!("{job} step {i:03}: ünïcode ok"))
                .collect()
        };
        let (lines_a, lines_b) = (lines("A"), lines("B"));
        for (line_a, line_b) in lines_a.iter().zip(&lines_b) {
            writer_a.write_line(line_a);
            writer_b.write_line(line_b);
            tokio::task::yield_now().await;
        }
        let stats_a = writer_a.finish("build.succeeded").await.expect("finish A");
        let stats_b = writer_b.finish("build.failed").await.expect("finish B");
        assert!(
            stats_a.chunks_published > 20 && stats_b.chunks_published > 20,
            "both logs span many chunks, so they interleave: {stats_a:?} {stats_b:?}"
        );

        for (job, lines, outcome) in [
            (a, &lines_a, "build.succeeded"),
            (b, &lines_b, "build.failed"),
        ] {
            let chunks = read_log(&bus, job).await;
            assert!(chunks.iter().all(|c| c.job_id == job));
            let text = text_of(&chunks);
            let read: Vec<&str> = text.lines().collect();
            assert_eq!(read, *lines, "exactly the job's lines, in order");
            let seqs: Vec<u64> = chunks.iter().map(|c| c.seq).collect();
            assert_eq!(seqs, (0..chunks.len() as u64).collect::<Vec<_>>());
            assert!(chunks.iter().all(|c| c.run_number == 1 && c.skipped == 0));
            let last = chunks.last().expect("chunks");
            assert_eq!(last.outcome.as_deref(), Some(outcome));
            assert_eq!(chunks.iter().filter(|c| c.is_final()).count(), 1);
        }
        assert!(
            read_log(&bus, JobId::new()).await.is_empty(),
            "another job has no log"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_started_first_sees_lines_as_they_are_written_and_stops_at_the_end_marker() {
    with_log_stream("logs-follow", |bus| async move {
        let job = JobId::new();
        let (sent, mut received) = mpsc::unbounded_channel::<LogChunk>();
        let follower = {
            let bus = bus.clone();
            tokio::spawn(async move {
                let reader = LogReader::new(&bus.connection, &bus.stream);
                let mut chunks = reader.read(job, read_options(true));
                while let Some(chunk) = chunks.next().await {
                    let _ = sent.send(chunk.expect("follow the log"));
                }
            })
        };
        let writer = LogWriter::start(&bus.publisher, &bus.stream, job, 0, small_chunks());
        let mut seen = String::new();
        for batch in 0..3 {
            let lines: Vec<String> = (0..5).map(|i| format!("batch {batch} line {i}")).collect();
            for line in &lines {
                writer.write_line(line);
            }
            // The follower gets this batch while the writer is still open.
            let expected: String = lines.iter().map(|l| format!("{l}\n")).collect();
            let wanted = format!("{seen}{expected}");
            tokio::time::timeout(DEADLINE, async {
                while seen.len() < wanted.len() {
                    let chunk = received
                        .recv()
                        .await
                        .expect("the follower is still reading");
                    assert!(!chunk.is_final(), "no end marker before finish");
                    seen.push_str(&chunk.text);
                }
            })
            .await
            .expect("the follower receives lines while the job runs");
            assert_eq!(seen, wanted);
        }
        assert!(!follower.is_finished(), "the follower waits for the end");
        writer.finish("build.succeeded").await.expect("finish");
        let end = tokio::time::timeout(DEADLINE, received.recv())
            .await
            .expect("the end marker arrives")
            .expect("an end marker, not the end of the read");
        assert_eq!(end.outcome.as_deref(), Some("build.succeeded"));
        tokio::time::timeout(DEADLINE, follower)
            .await
            .expect("the follower stops after the end marker")
            .expect("the follower did not panic");
        assert!(received.recv().await.is_none(), "nothing after the end");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_job_shows_every_run_in_order_and_following_ends_with_the_latest() {
    with_log_stream("logs-redelivered", |bus| async move {
        let job = JobId::new();
        // Run 1 writes, its lines reach the stream, then its worker dies: no end marker.
        let first = LogWriter::start(&bus.publisher, &bus.stream, job, 0, small_chunks());
        for i in 0..3 {
            first.write_line(&format!("first run line {i}"));
        }
        eventually("run 1's lines to be published", DEADLINE, || {
            let stats = first.stats();
            async move { stats.unpublished_bytes == 0 && stats.chunks_published > 0 }
        })
        .await;
        drop(first);
        // Run 2 (the redelivery, after one retry) runs to the end.
        let second = LogWriter::start(&bus.publisher, &bus.stream, job, 1, small_chunks());
        for i in 0..3 {
            second.write_line(&format!("second run line {i}"));
        }
        second.finish("build.succeeded").await.expect("finish");

        let chunks = read_log(&bus, job).await;
        let runs: Vec<(u32, u32)> = chunks.iter().map(|c| (c.run_number, c.attempt)).collect();
        let split = runs
            .iter()
            .position(|&(run, _)| run == 2)
            .expect("a second run");
        assert!(runs[..split].iter().all(|&r| r == (1, 0)), "{runs:?}");
        assert!(runs[split..].iter().all(|&r| r == (2, 1)), "{runs:?}");
        assert_ne!(chunks[0].run, chunks[split].run);
        assert_eq!(
            text_of(&chunks[..split]),
            "first run line 0\nfirst run line 1\nfirst run line 2\n"
        );
        assert_eq!(
            text_of(&chunks[split..]),
            "second run line 0\nsecond run line 1\nsecond run line 2\n"
        );
        assert!(chunks[..split].iter().all(|c| !c.is_final()));
        assert_eq!(
            chunks.last().and_then(|c| c.outcome.as_deref()),
            Some("build.succeeded")
        );

        // Following a finished job prints it all and stops at the latest run's end.
        let reader = LogReader::new(&bus.connection, &bus.stream);
        let mut followed = reader.read(job, read_options(true));
        let mut count = 0;
        let started = Instant::now();
        while let Some(chunk) = followed.next().await {
            chunk.expect("follow");
            count += 1;
        }
        assert_eq!(count, chunks.len());
        assert!(started.elapsed() < DEADLINE / 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_broker_does_not_take_the_log_writes_never_block_and_the_middle_is_dropped() {
    with_log_stream("logs-cap", |bus| async move {
        // No stream: every chunk comes back unroutable until it is declared again.
        delete_log_stream(&bus.connection, &bus.stream)
            .await
            .expect("delete the stream");
        let job = JobId::new();
        let cap = 8 << 10;
        let options = LogWriterOptions {
            chunk_bytes: 1 << 10,
            flush_interval: Duration::from_millis(50),
            buffer_cap_bytes: cap,
            retry_max_delay: Duration::from_millis(200),
            finish_timeout: DEADLINE,
        };
        let writer = LogWriter::start(&bus.publisher, &bus.stream, job, 0, options);
        let lines: Vec<String> = (0..2000)
            .map(|i| format!("line {i:05} {}", "x".repeat(38)))
            .collect(); // 49 bytes + newline
        let started = Instant::now();
        let mut slowest = Duration::ZERO;
        for line in &lines {
            let call = Instant::now();
            writer.write_line(line);
            slowest = slowest.max(call.elapsed());
        }
        let writing = started.elapsed();
        assert!(
            writing < Duration::from_secs(2),
            "100 KB of log took {writing:?} to write (slowest line {slowest:?})"
        );
        eventually("a refused publish", DEADLINE, || {
            let failures = writer.stats().publish_failures;
            async move { failures > 0 }
        })
        .await;
        let stats = writer.stats();
        assert!(stats.bytes_dropped > 0, "{stats:?}");
        assert!(stats.unpublished_bytes <= cap + (1 << 10) + 50, "{stats:?}");

        declare_log_stream(&bus.connection, &bus.settings, &test_retention())
            .await
            .expect("declare the stream again");
        let stats = writer.finish("build.succeeded").await.expect("finish");
        assert!(stats.publish_failures > 0);

        let chunks = read_log(&bus, job).await;
        let text = text_of(&chunks);
        let read: Vec<&str> = text.lines().collect();
        let markers: Vec<usize> = read
            .iter()
            .enumerate()
            .filter(|(_, l)| l.starts_with("[… "))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(markers.len(), 1, "one gap: {markers:?}");
        let marker = markers[0];
        let dropped: u64 = read[marker]
            .strip_prefix("[… ")
            .and_then(|rest| rest.strip_suffix(" bytes of log dropped …]"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a drop marker: {:?}", read[marker]));
        assert_eq!(dropped, stats.bytes_dropped);
        let head = &read[..marker];
        let tail = &read[marker + 1..];
        assert_eq!(head, &lines[..head.len()], "the beginning is kept");
        assert_eq!(tail, &lines[lines.len() - tail.len()..], "the end is kept");
        assert_eq!(
            (lines.len() - head.len() - tail.len()) as u64 * 50,
            dropped,
            "the marker counts exactly the missing lines"
        );
        assert!(tail.len() * 50 >= cap - 50, "the tail fills the buffer");
        assert_eq!(
            chunks.last().and_then(|c| c.outcome.as_deref()),
            Some("build.succeeded")
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_ends_at_the_end_of_the_stream_while_other_jobs_keep_writing() {
    with_log_stream("logs-busy", |bus| async move {
        let job = JobId::new();
        let writer = LogWriter::start(&bus.publisher, &bus.stream, job, 0, small_chunks());
        writer.write_line("the only line");
        writer.finish("build.succeeded").await.expect("finish");

        // Another job writes a chunk every few milliseconds for as long as the read runs: the
        // stream is never idle, so only the tail found at the start can end the read.
        let noisy = Arc::new(LogWriter::start(
            &bus.publisher,
            &bus.stream,
            JobId::new(),
            0,
            LogWriterOptions {
                flush_interval: Duration::from_millis(5),
                ..small_chunks()
            },
        ));
        let noise = tokio::spawn({
            let noisy = noisy.clone();
            async move {
                let mut pace = tokio::time::interval(Duration::from_millis(5));
                for i in 0.. {
                    pace.tick().await;
                    noisy.write_line(&format!("noise {i}"));
                }
            }
        });
        eventually("the other job's log to flow", DEADLINE, || {
            let published = noisy.stats().chunks_published;
            async move { published >= 5 }
        })
        .await;

        let reader = LogReader::new(&bus.connection, &bus.stream);
        let options = ReadOptions {
            from: ReadFrom::First,
            idle_timeout: Duration::from_secs(5),
            deadline: Some(Duration::from_secs(20)),
            ..ReadOptions::default()
        };
        let started = Instant::now();
        let mut chunks = reader.read(job, options);
        let mut text = String::new();
        while let Some(chunk) = chunks.next().await {
            text.push_str(
                &chunk
                    .expect("the read ends by itself, not at its deadline")
                    .text,
            );
        }
        let took = started.elapsed();
        noise.abort();
        assert_eq!(text, "the only line\n");
        assert!(
            took < Duration::from_secs(5),
            "the read waited for silence ({took:?}) instead of stopping at the tail"
        );
    })
    .await;
}

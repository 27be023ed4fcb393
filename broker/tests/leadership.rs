//! Leader election against a real RabbitMQ (`bash deploy/dev-env.sh` starts it): one leader among
//! candidates on separate connections, takeover after a lost connection or a crash, renewals that
//! keep one lease, prompt handover on shutdown or resignation, and no accumulation of the
//! candidates' leases.
//!
//! Each test has its own namespace, hence its own lease queue, deleted at the end. Tests wait on
//! the events the leader code sends, with deadlines; the bounded negative checks ("no other term
//! starts meanwhile") wait on the same channel with a timeout.
//!
//! Counting leases: a passive declare reports a quorum queue's ready messages as they are now
//! (RabbitMQ's listings of unacked messages lag by the queue's tick, ~5 s), and its consumers as
//! RabbitMQ 3.10 counts them on a single-active-consumer queue: the active one only. So the exact
//! number of leases is read once every candidate has left: with no consumer, every lease is ready.
//!
//! This file cannot use the shared helper crate (`slipway-tests` depends on this crate), so it
//! keeps its own few lines of setup and `rabbitmqctl`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use slipway_broker::leadership::{LeaseQueue, delete_lease_queue, inspect_lease_queue};
use slipway_broker::{
    BrokerConnection, BrokerError, BrokerSettings, LeaderElection, LeaderStatus, LeaderTerm,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The broker `deploy/dev-env.sh` starts.
const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Longest wait for anything that should happen at once (a first leader, a reconnection).
const SOON: Duration = Duration::from_secs(10);

/// What the leader code of one candidate reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    Started { candidate: usize, term: u64 },
    Ended { candidate: usize, term: u64 },
}

/// What a candidate's leader code does once its term has started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Conduct {
    /// Runs until its term is cancelled.
    Hold,
    /// Returns at once, while still leading: a resignation.
    ReturnAtOnce,
}

/// One candidate: an election running in its own task, on its own connection.
struct Candidate {
    connection_name: String,
    shutdown: CancellationToken,
    status: LeaderStatus,
    task: Option<JoinHandle<Result<(), BrokerError>>>,
}

/// The candidates of one election, the events of their leader code, and an observer connection.
struct Election {
    test: &'static str,
    settings: BrokerSettings,
    name: String,
    queue: String,
    renew_interval: Option<Duration>,
    observer: BrokerConnection,
    candidates: Vec<Candidate>,
    events_in: mpsc::UnboundedSender<(Event, Instant)>,
    events: mpsc::UnboundedReceiver<(Event, Instant)>,
    /// When the leader code sent the last event [`Self::next_event`] returned.
    last_event_at: Option<Instant>,
}

impl Election {
    async fn start(test: &'static str, candidates: usize, renew: Option<Duration>) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", 5672)).is_ok(),
            "RabbitMQ is not running on 127.0.0.1:5672: run `bash deploy/dev-env.sh`"
        );
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let settings = BrokerSettings {
            url: AMQP_URL.into(),
            namespace: format!("test.leadership.{test}.{}.{n}", std::process::id()),
            max_reconnect_delay_ms: 1_000,
            drain_timeout_ms: 5_000,
            ..BrokerSettings::default()
        };
        let name = "scheduler".to_owned();
        let queue = LeaderElection::new(&settings, &name).queue_name();
        let observer = BrokerConnection::connect(&settings, &format!("{test}-observer"))
            .await
            .expect("connect the observer");
        let (events_in, events) = mpsc::unbounded_channel();
        let mut election = Self {
            test,
            settings,
            name,
            queue,
            renew_interval: renew,
            observer,
            candidates: Vec::new(),
            events_in,
            events,
            last_event_at: None,
        };
        for _ in 0..candidates {
            election.add_candidate();
        }
        election
    }

    /// Start one more candidate, whose leader code reports its terms and holds each until it is
    /// cancelled.
    fn add_candidate(&mut self) {
        self.add_candidate_that(Conduct::Hold);
    }

    /// Start one more candidate whose leader code reports its terms and behaves as `conduct` says.
    fn add_candidate_that(&mut self, conduct: Conduct) {
        let index = self.candidates.len();
        let connection_name = format!("{}-candidate-{index}", self.settings.namespace);
        let mut election = LeaderElection::new(&self.settings, &self.name)
            .with_connection_name(connection_name.clone());
        if let Some(every) = self.renew_interval {
            election = election.with_renew_interval(every);
        }
        let status = election.status();
        let shutdown = CancellationToken::new();
        let events = self.events_in.clone();
        let lead = move |term: LeaderTerm| {
            let events = events.clone();
            async move {
                let _ = events.send((
                    Event::Started {
                        candidate: index,
                        term: term.number,
                    },
                    Instant::now(),
                ));
                if conduct == Conduct::Hold {
                    term.token.cancelled().await;
                }
                let _ = events.send((
                    Event::Ended {
                        candidate: index,
                        term: term.number,
                    },
                    Instant::now(),
                ));
            }
        };
        let task = tokio::spawn(election.run(shutdown.clone(), lead));
        self.candidates.push(Candidate {
            connection_name,
            shutdown,
            status,
            task: Some(task),
        });
    }

    /// The next event, or a panic after `deadline`.
    async fn next_event(&mut self, deadline: Duration) -> Event {
        match tokio::time::timeout(deadline, self.events.recv()).await {
            Ok(Some((event, at))) => {
                self.last_event_at = Some(at);
                event
            }
            Ok(None) => panic!("{}: the event channel closed", self.test),
            Err(_) => panic!("{}: no event within {deadline:?}", self.test),
        }
    }

    /// The first term: which candidate leads.
    async fn first_leader(&mut self) -> usize {
        match self.next_event(SOON).await {
            Event::Started { candidate, term: 1 } => {
                assert!(self.candidates[candidate].status.is_leader());
                candidate
            }
            other => panic!(
                "{}: expected a first term to start, found {other:?}",
                self.test
            ),
        }
    }

    /// Bounded negative check: no term starts or ends for `period`.
    async fn assert_quiet_for(&mut self, period: Duration) {
        if let Ok(Some((event, _))) = tokio::time::timeout(period, self.events.recv()).await {
            panic!(
                "{}: expected no change of leader for {period:?}, found {event:?}",
                self.test
            );
        }
    }

    async fn lease_queue(&self) -> LeaseQueue {
        inspect_lease_queue(&self.observer, &self.queue)
            .await
            .expect("inspect the lease queue")
    }

    /// Wait until every running candidate has joined (consuming, its lease confirmed). The broker
    /// counts one consumer: on a single-active-consumer quorum queue, RabbitMQ 3.10's declare-ok
    /// counts only the active one (`rabbitmqctl list_consumers` shows the others as `waiting`).
    async fn wait_for_candidates(&self) {
        let running = self.candidates.iter().filter(|c| c.task.is_some()).count();
        let started = Instant::now();
        loop {
            let joined = self
                .candidates
                .iter()
                .filter(|c| c.task.is_some() && c.status.is_candidate())
                .count();
            let queue = self.lease_queue().await;
            if joined == running && queue.consumers == 1 {
                return;
            }
            assert!(
                started.elapsed() < SOON,
                "{}: expected {running} candidates, found {joined} joined and {queue:?}",
                self.test
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until `condition` holds for the candidate `index`'s status.
    async fn wait_for_status(
        &self,
        index: usize,
        what: &str,
        condition: impl Fn(&LeaderStatus) -> bool,
    ) {
        let started = Instant::now();
        while !condition(&self.candidates[index].status) {
            assert!(
                started.elapsed() < SOON,
                "{}: timed out waiting for candidate {index}: {what}",
                self.test
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Close candidate `index`'s connection from the broker's side (as a network failure or a
    /// broker-side kill would); returns how many connections were closed.
    async fn close_connection_of(&self, index: usize) -> usize {
        let name = self.candidates[index].connection_name.clone();
        tokio::task::spawn_blocking(move || close_connections_named(&name))
            .await
            .expect("rabbitmqctl task")
            .unwrap_or_else(|error| panic!("closing the connection: {error}"))
    }

    /// Graceful shutdown of candidate `index`: `Ok` from its `run` within `deadline`.
    async fn stop(&mut self, index: usize, deadline: Duration) {
        let candidate = &mut self.candidates[index];
        candidate.shutdown.cancel();
        if let Some(task) = candidate.task.take() {
            match tokio::time::timeout(deadline, task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(error))) => panic!("candidate {index} failed: {error}"),
                Ok(Err(join)) => panic!("candidate {index} panicked: {join}"),
                Err(_) => panic!("candidate {index} did not stop within {deadline:?}"),
            }
        }
    }

    /// The crash of candidate `index`: its task is aborted, nothing is shut down gracefully.
    fn crash(&mut self, index: usize) {
        if let Some(task) = self.candidates[index].task.take() {
            task.abort();
        }
    }

    /// Stop every candidate, then count the leases: once the broker counts no consumer (not even
    /// an active one), every lease is ready, so `ready` is the exact number.
    async fn stop_all_and_count_leases(&mut self) -> u32 {
        for candidate in &self.candidates {
            candidate.shutdown.cancel();
        }
        for index in 0..self.candidates.len() {
            self.stop(index, SOON).await;
        }
        let started = Instant::now();
        loop {
            let queue = self.lease_queue().await;
            if queue.consumers == 0 {
                return queue.ready;
            }
            assert!(
                started.elapsed() < SOON,
                "{}: consumers left after every candidate stopped: {queue:?}",
                self.test
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn cleanup(mut self) {
        for candidate in &mut self.candidates {
            candidate.shutdown.cancel();
            if let Some(task) = candidate.task.take() {
                task.abort();
            }
        }
        let _ = delete_lease_queue(&self.observer, &self.queue).await;
        self.observer.close().await;
    }
}

/// Close every broker connection whose client-provided name is `name`; returns how many.
fn close_connections_named(name: &str) -> Result<usize, String> {
    // RabbitMQ 3.10 has no user_provided_name column: the name is in the client properties,
    // printed as `{"connection_name","<name>"}`.
    let listing = rabbitmqctl(&[
        "list_connections",
        "-q",
        "--no-table-headers",
        "pid",
        "client_properties",
    ])?;
    let needle = format!("{{\"connection_name\",\"{name}\"}}");
    let mut closed = 0;
    for line in listing.lines() {
        if let Some((pid, properties)) = line.split_once('\t')
            && properties.contains(&needle)
        {
            rabbitmqctl(&["close_connection", pid.trim(), "closed by a Slipway test"])?;
            closed += 1;
        }
    }
    Ok(closed)
}

fn rabbitmqctl(args: &[&str]) -> Result<String, String> {
    let output = std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run rabbitmqctl: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "rabbitmqctl {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

#[tokio::test]
async fn one_of_three_candidates_leads_and_the_others_stand_by() {
    let mut election = Election::start("one-leader", 3, None).await;
    let started = Instant::now();
    let leader = election.first_leader().await;
    eprintln!("first leader after {:?}", started.elapsed());
    election.wait_for_candidates().await;
    election.assert_quiet_for(Duration::from_secs(2)).await;
    for (index, candidate) in election.candidates.iter().enumerate() {
        assert_eq!(
            candidate.status.is_leader(),
            index == leader,
            "candidate {index}"
        );
        assert_eq!(candidate.status.terms(), u64::from(index == leader));
    }
    assert_eq!(election.stop_all_and_count_leases().await, 1);
    election.cleanup().await;
}

#[tokio::test]
async fn a_leader_whose_connection_is_closed_loses_its_term_and_another_leads() {
    let mut election = Election::start("connection-closed", 3, None).await;
    let leader = election.first_leader().await;
    election.wait_for_candidates().await;

    // Timed from before the close (rabbitmqctl takes about a second to start and close it).
    let closed = Instant::now();
    assert_eq!(election.close_connection_of(leader).await, 1);
    let rabbitmqctl_took = closed.elapsed();
    let (mut ended, mut next) = (false, None);
    while !ended || next.is_none() {
        match election.next_event(SOON).await {
            Event::Ended { candidate, term: 1 } if candidate == leader => ended = true,
            Event::Started { candidate, term } if candidate != leader && next.is_none() => {
                assert_eq!(term, 1, "the new leader's first term");
                next = election.last_event_at.map(|at| (candidate, at));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let Some((next, started_at)) = next else {
        unreachable!("the loop ends once another leader started")
    };
    let handover = started_at.saturating_duration_since(closed);
    eprintln!(
        "candidate {next} led {handover:?} after closing the leader's connection began (rabbitmqctl took {rabbitmqctl_took:?} of it)"
    );
    assert!(handover < SOON, "{handover:?}");
    assert!(!election.candidates[leader].status.is_leader());

    // The old leader comes back as a standby: its new lease is a surplus, nobody else leads.
    election.wait_for_candidates().await;
    election.assert_quiet_for(Duration::from_secs(1)).await;
    assert_eq!(election.stop_all_and_count_leases().await, 1);
    election.cleanup().await;
}

#[tokio::test]
async fn a_crashed_leader_is_replaced_within_ten_seconds() {
    let mut election = Election::start("crash", 3, None).await;
    let leader = election.first_leader().await;
    election.wait_for_candidates().await;

    // As kill -9: the task is gone, and so is its connection (dropping it closes the socket;
    // closing it from the broker too makes sure nothing of it lingers).
    election.crash(leader);
    let crashed = Instant::now();
    let lingering = election.close_connection_of(leader).await;
    let next = match election.next_event(SOON).await {
        Event::Started { candidate, term } => {
            assert_ne!(candidate, leader);
            assert_eq!(term, 1, "the new leader's first term");
            candidate
        }
        other => panic!("expected another leader, found {other:?}"),
    };
    let takeover = election
        .last_event_at
        .map(|at| at.saturating_duration_since(crashed))
        .unwrap_or_default();
    eprintln!(
        "candidate {next} took over {takeover:?} after the crash ({lingering} connection left for rabbitmqctl to close)"
    );
    assert!(takeover < SOON, "{takeover:?}");
    assert!(election.candidates[next].status.is_leader());
    election.wait_for_candidates().await;
    assert_eq!(election.stop_all_and_count_leases().await, 1);
    election.cleanup().await;
}

#[tokio::test]
async fn renewals_keep_one_lease_and_the_same_leader() {
    let renew = Duration::from_millis(200);
    let mut election = Election::start("renewals", 3, Some(renew)).await;
    let leader = election.first_leader().await;
    election.wait_for_candidates().await;
    let started = Instant::now();
    election
        .wait_for_status(leader, "ten renewals", |status| status.renewals() >= 10)
        .await;
    eprintln!("ten renewals in {:?}", started.elapsed());
    // Nobody else started a term, the leader's did not end.
    if let Ok(event) = election.events.try_recv() {
        panic!("the leader changed during renewals: {event:?}");
    }
    let status = &election.candidates[leader].status;
    assert!(status.is_leader());
    assert_eq!(status.terms(), 1);
    for (index, candidate) in election.candidates.iter().enumerate() {
        if index != leader {
            assert_eq!(candidate.status.renewals(), 0, "a standby renewed");
        }
    }
    assert_eq!(election.stop_all_and_count_leases().await, 1);
    election.cleanup().await;
}

#[tokio::test]
async fn a_leader_shut_down_gracefully_hands_over_promptly() {
    let mut election = Election::start("graceful", 3, None).await;
    let leader = election.first_leader().await;
    election.wait_for_candidates().await;

    let stopping = Instant::now();
    election.stop(leader, Duration::from_secs(5)).await;
    let stopped = stopping.elapsed();
    // Its term ended before the next one started: the lease moves only once the leader code
    // has returned.
    assert_eq!(
        election.next_event(Duration::from_secs(5)).await,
        Event::Ended {
            candidate: leader,
            term: 1
        }
    );
    let next = match election.next_event(Duration::from_secs(5)).await {
        Event::Started { candidate, term: 1 } if candidate != leader => candidate,
        other => panic!("expected another candidate's first term, found {other:?}"),
    };
    let handover = election
        .last_event_at
        .map(|at| at.saturating_duration_since(stopping))
        .unwrap_or_default();
    eprintln!(
        "stopped in {stopped:?}, candidate {next} leads {handover:?} after the shutdown began"
    );
    assert!(handover < Duration::from_secs(5), "{handover:?}");
    assert!(!election.candidates[leader].status.is_leader());
    assert_eq!(election.stop_all_and_count_leases().await, 1);
    election.cleanup().await;
}

#[tokio::test]
async fn leases_of_joining_candidates_do_not_accumulate() {
    let mut election = Election::start("no-accumulation", 3, None).await;
    let leader = election.first_leader().await;
    election.wait_for_candidates().await;
    // Three leases were published: the leader holds one and acks the two others away.
    election
        .wait_for_status(leader, "two surplus leases acked", |status| {
            status.discarded() >= 2
        })
        .await;
    assert_eq!(election.lease_queue().await.ready, 0);

    // Two late joiners while a leader leads: their leases are surplus too.
    election.add_candidate();
    election.add_candidate();
    election.wait_for_candidates().await;
    election
        .wait_for_status(leader, "four surplus leases acked", |status| {
            status.discarded() >= 4
        })
        .await;
    assert_eq!(election.candidates[leader].status.discarded(), 4);
    election.assert_quiet_for(Duration::from_millis(500)).await;
    assert_eq!(election.stop_all_and_count_leases().await, 1);
    election.cleanup().await;
}

#[tokio::test]
async fn a_leader_whose_code_returns_resigns_and_the_lease_moves_on() {
    let mut election = Election::start("resign", 0, None).await;
    election.add_candidate_that(Conduct::ReturnAtOnce);
    // Alone, it leads and resigns at once (and again after each pause, until someone else
    // stands).
    assert!(matches!(
        election.next_event(SOON).await,
        Event::Started { candidate: 0, .. }
    ));
    election.add_candidate();
    let started = Instant::now();
    loop {
        match election.next_event(SOON).await {
            Event::Started { candidate: 1, term } => {
                assert_eq!(term, 1);
                break;
            }
            Event::Started { candidate: 0, .. } | Event::Ended { candidate: 0, .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    eprintln!(
        "the holding candidate leads {:?} after it was started; the resigning one led {} terms",
        started.elapsed(),
        election.candidates[0].status.terms()
    );
    // The resigner stands again, as a standby: it never gets the lease back.
    election.wait_for_candidates().await;
    election.assert_quiet_for(Duration::from_secs(1)).await;
    assert!(!election.candidates[0].status.is_leader());
    assert_eq!(election.stop_all_and_count_leases().await, 1);
    election.cleanup().await;
}

//! systemd's side of the notify protocol (sd_notify(3)), for tests: a unix datagram socket to
//! set as `NOTIFY_SOCKET` for a worker process, and the messages it received, in order.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::TempDir;

/// A bound notify socket and what came in on it.
pub struct NotifySocket {
    _dir: TempDir,
    path: PathBuf,
    received: mpsc::Receiver<(Instant, String)>,
    seen: Vec<(Instant, String)>,
}

impl NotifySocket {
    /// Bind a fresh socket in a temporary directory; a thread reads it until the test ends.
    ///
    /// # Panics
    /// When the socket cannot be bound.
    pub fn bind() -> Self {
        let dir = TempDir::new("notify-socket");
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        let (sender, received) = mpsc::channel();
        std::thread::spawn(move || {
            // sd_notify messages are small; systemd itself reads at most a page or so.
            let mut buffer = vec![0u8; 8192];
            while let Ok(length) = socket.recv(&mut buffer) {
                let message = String::from_utf8_lossy(&buffer[..length]).into_owned();
                if sender.send((Instant::now(), message)).is_err() {
                    return;
                }
            }
        });
        Self {
            _dir: dir,
            path,
            received,
            seen: Vec::new(),
        }
    }

    /// The value for `NOTIFY_SOCKET`.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Wait until a message has a line `line` (e.g. `READY=1`), at most `deadline`; returns the
    /// whole message.
    ///
    /// # Errors
    /// Every message received so far, when none had it in time.
    pub fn wait_for_line(&mut self, line: &str, deadline: Duration) -> Result<String, String> {
        let has = |message: &str| message.lines().any(|each| each == line);
        if let Some((_, message)) = self.seen.iter().find(|(_, message)| has(message)) {
            return Ok(message.clone());
        }
        let until = Instant::now() + deadline;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.received.recv_timeout(left) {
                Ok((at, message)) => {
                    self.seen.push((at, message.clone()));
                    if has(&message) {
                        return Ok(message);
                    }
                }
                Err(_) => {
                    return Err(format!(
                        "no {line:?} within {deadline:?}; received: {:?}",
                        self.messages()
                    ));
                }
            }
        }
    }

    /// Every message received so far, in order.
    pub fn messages(&mut self) -> Vec<String> {
        while let Ok(message) = self.received.try_recv() {
            self.seen.push(message);
        }
        self.seen
            .iter()
            .map(|(_, message)| message.clone())
            .collect()
    }

    /// When each message with a line `line` arrived, so far.
    pub fn times_of(&mut self, line: &str) -> Vec<Instant> {
        self.messages();
        self.seen
            .iter()
            .filter(|(_, message)| message.lines().any(|each| each == line))
            .map(|(at, _)| *at)
            .collect()
    }
}

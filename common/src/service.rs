//! The worker as a service: what systemd's notify protocol, `GET /healthz` and the
//! `slipway_broker_connected` gauge say about a worker process. All three read one state.
//!
//! Each long-lived broker session of a worker (the consumer runner, the leader election, the
//! history follower) holds a [`Component`]: it reports [`Component::up`] once it consumes (or
//! follows, or stands in the election) and [`Component::down`] with the reason while it
//! reconnects. The process is *healthy* while it has at least one component, every one is up, and
//! it is not stopping.
//!
//! Under systemd (`Type=notify`, so `$NOTIFY_SOCKET` is set; sd_notify(3)):
//! - `READY=1` the first time every component is up;
//! - `WATCHDOG=1` from [`watchdog_beat`], which each session loop calls on its liveness tick and
//!   while it waits to reconnect: a loop that hangs stops the beats, and systemd restarts the unit
//!   after `WatchdogSec=` (the beats go at a quarter of it);
//! - `STATUS=` with a short state at each change ("consuming slipway.lint", "waiting for the
//!   broker: …"), shown by `systemctl status`;
//! - `STOPPING=1` once the shutdown signal arrives ([`stopping`]).
//!
//! Without `$NOTIFY_SOCKET` the messages are not sent; the health state and the gauge work alike.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

/// One broker session of the process, registered while the handle lives.
#[derive(Debug)]
pub struct Component {
    id: u64,
}

impl Component {
    /// Register a session named `name` (`consumer`, `election`, `history`), down until it says
    /// otherwise.
    pub fn register(name: &'static str) -> Self {
        let service = service();
        let id = service.next_id.fetch_add(1, Ordering::Relaxed);
        service.lock().insert(
            id,
            ComponentHealth {
                name,
                up: false,
                detail: "starting".to_owned(),
            },
        );
        service.changed();
        Self { id }
    }

    /// Connected and doing its work; `detail` says what ("consuming slipway.lint").
    pub fn up(&self, detail: impl Into<String>) {
        self.set(true, detail.into());
    }

    /// Not connected, or not doing its work; `detail` says why.
    pub fn down(&self, detail: impl Into<String>) {
        self.set(false, detail.into());
    }

    fn set(&self, up: bool, detail: String) {
        let service = service();
        {
            let mut components = service.lock();
            let Some(component) = components.get_mut(&self.id) else {
                return;
            };
            if component.up == up && component.detail == detail {
                return;
            }
            component.up = up;
            component.detail = detail;
        }
        service.changed();
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        let service = service();
        service.lock().remove(&self.id);
        service.changed();
    }
}

/// What `GET /healthz` answers (as JSON): 200 when `healthy`, else 503.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    /// Every component is up, there is at least one, and the process is not stopping.
    pub healthy: bool,
    /// The shutdown signal arrived: the process finishes its in-flight jobs and takes no more.
    pub stopping: bool,
    /// Each broker session, in registration order.
    pub components: Vec<ComponentHealth>,
}

/// One component's state in a [`HealthReport`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ComponentHealth {
    /// `consumer`, `election` or `history`.
    pub name: &'static str,
    /// Connected and doing its work.
    pub up: bool,
    /// What it does, or why it is down.
    pub detail: String,
}

/// The process's health now.
pub fn health() -> HealthReport {
    let service = service();
    let components: Vec<ComponentHealth> = service.lock().values().cloned().collect();
    let stopping = service.stopping.load(Ordering::SeqCst);
    HealthReport {
        healthy: !stopping && all_up(&components),
        stopping,
        components,
    }
}

/// The shutdown signal arrived: tell systemd (`STOPPING=1`) and fail `/healthz` from now on.
pub fn stopping() {
    let service = service();
    if !service.stopping.swap(true, Ordering::SeqCst) {
        service.notify("STOPPING=1\nSTATUS=stopping: finishing in-flight jobs");
    }
}

/// A session loop is alive: send `WATCHDOG=1` when systemd's watchdog is on and a quarter of its
/// interval has passed since the last beat. Cheap enough to call every second.
pub fn watchdog_beat() {
    let service = service();
    let Some(interval) = service.watchdog else {
        return;
    };
    {
        let mut last = service
            .last_beat
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|last| last.elapsed() < interval / 4) {
            return;
        }
        *last = Some(Instant::now());
    }
    service.notify("WATCHDOG=1");
}

/// `slipway_broker_connected`, for the metrics registry to export (the registry takes it from
/// here, so that this module does not import the telemetry that imports it).
pub fn connected_gauge() -> prometheus::IntGauge {
    service().connected.clone()
}

/// `slipway_broker_connected`'s help text.
const GAUGE_HELP: &str =
    "1 while every broker session of this process is connected and working, else 0.";

struct Service {
    components: Mutex<BTreeMap<u64, ComponentHealth>>,
    next_id: AtomicU64,
    stopping: AtomicBool,
    ready_sent: AtomicBool,
    last_status: Mutex<String>,
    watchdog: Option<Duration>,
    last_beat: Mutex<Option<Instant>>,
    connected: prometheus::IntGauge,
    notify_failed: AtomicBool,
}

fn service() -> &'static Service {
    static SERVICE: LazyLock<Service> = LazyLock::new(|| Service {
        components: Mutex::new(BTreeMap::new()),
        next_id: AtomicU64::new(0),
        stopping: AtomicBool::new(false),
        ready_sent: AtomicBool::new(false),
        last_status: Mutex::new(String::new()),
        watchdog: watchdog_interval(),
        last_beat: Mutex::new(None),
        connected: prometheus::IntGauge::new("slipway_broker_connected", GAUGE_HELP)
            .expect("valid metric"),
        notify_failed: AtomicBool::new(false),
    });
    &SERVICE
}

impl Service {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, ComponentHealth>> {
        self.components
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// After any change: the gauge, `READY=1` the first time all is up, and `STATUS=`.
    fn changed(&self) {
        let components: Vec<ComponentHealth> = self.lock().values().cloned().collect();
        let up = all_up(&components);
        self.connected.set(i64::from(up));
        if self.stopping.load(Ordering::SeqCst) {
            return;
        }
        let status = status_line(&components);
        {
            let mut last = self
                .last_status
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if *last == status {
                return;
            }
            last.clone_from(&status);
        }
        if up && !self.ready_sent.swap(true, Ordering::SeqCst) {
            self.notify(&format!("READY=1\nSTATUS={status}"));
        } else {
            self.notify(&format!("STATUS={status}"));
        }
    }

    /// Send `message` to `$NOTIFY_SOCKET`, if set. A failure is logged once: the service manager
    /// may be gone (a stop in progress), and the work goes on without it.
    fn notify(&self, message: &str) {
        let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
            return;
        };
        if let Err(error) = send_notification(&socket, message)
            && !self.notify_failed.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(%error, socket = %socket.to_string_lossy(), "cannot notify the service manager");
        }
    }
}

/// One datagram to the notify socket: a path, or `@name` for an abstract socket (sd_notify(3)).
/// Written here rather than taken from the `sd-notify` crate, whose 0.5 cannot reach an abstract
/// socket.
fn send_notification(socket: &std::ffi::OsStr, message: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};

    let address = match socket.as_bytes().strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(socket)?,
    };
    let sent = UnixDatagram::unbound()?.send_to_addr(message.as_bytes(), &address)?;
    if sent == message.len() {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            "the notification was cut short",
        ))
    }
}

/// systemd's watchdog interval for this process: `$WATCHDOG_USEC`, when `$WATCHDOG_PID` is unset
/// or names this process (sd_watchdog_enabled(3)).
fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    let for_us = std::env::var("WATCHDOG_PID")
        .ok()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        .is_none_or(|pid| pid == std::process::id());
    (for_us && usec > 0).then(|| Duration::from_micros(usec))
}

fn all_up(components: &[ComponentHealth]) -> bool {
    !components.is_empty() && components.iter().all(|component| component.up)
}

/// `systemctl status`'s line: what each component does when all are up, else what is down and
/// why. One line, at most [`MAX_STATUS_CHARS`] characters.
fn status_line(components: &[ComponentHealth]) -> String {
    let down: Vec<String> = components
        .iter()
        .filter(|component| !component.up)
        .map(|component| format!("{}: {}", component.name, component.detail))
        .collect();
    let line = if components.is_empty() {
        "starting".to_owned()
    } else if down.is_empty() {
        components
            .iter()
            .map(|component| component.detail.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        format!("waiting: {}", down.join("; "))
    };
    let line = line.replace(['\n', '\r'], " ");
    match line.char_indices().nth(MAX_STATUS_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// Longest `STATUS=` text.
const MAX_STATUS_CHARS: usize = 200;

#[cfg(test)]
mod tests {
    use super::*;

    fn component(name: &'static str, up: bool, detail: &str) -> ComponentHealth {
        ComponentHealth {
            name,
            up,
            detail: detail.to_owned(),
        }
    }

    #[test]
    fn the_status_says_what_works_or_what_is_down_and_why_on_one_bounded_line() {
        assert_eq!(status_line(&[]), "starting");
        assert_eq!(
            status_line(&[
                component("consumer", true, "consuming t.lint"),
                component("history", true, "history read"),
            ]),
            "consuming t.lint; history read"
        );
        assert_eq!(
            status_line(&[
                component("consumer", true, "consuming t.lint"),
                component("election", false, "the broker refused\nthe login"),
            ]),
            "waiting: election: the broker refused the login"
        );
        let long = status_line(&[component("consumer", false, &"é".repeat(1000))]);
        assert_eq!(long.chars().count(), MAX_STATUS_CHARS + 1);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn healthy_needs_a_component_and_every_one_up() {
        assert!(!all_up(&[]));
        assert!(all_up(&[component("consumer", true, "")]));
        assert!(!all_up(&[
            component("consumer", true, ""),
            component("history", false, "")
        ]));
    }
}

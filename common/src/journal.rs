//! Log lines to systemd's journal over its native protocol (systemd.io/JOURNAL_NATIVE_PROTOCOL):
//! one datagram per event on `/run/systemd/journal/socket`, so that each line keeps its priority
//! (`journalctl -p warning`) and its fields (`journalctl JOB_ID=…`).
//!
//! Each entry has:
//! - `MESSAGE`: the event's message followed by its fields and those of its spans as
//!   `key=value`, so that `journalctl -u slipway-lint@a` alone shows the whole line;
//! - `PRIORITY`: 3 for ERROR, 4 WARN, 6 INFO, 7 DEBUG and TRACE (syslog's levels);
//! - `SYSLOG_IDENTIFIER` (the binary) and `TARGET` (the module);
//! - every field of the event and of its spans (a job's `job_id`, `kind`, `attempt`, `worker`) as
//!   a journal field of its own, its name upper-cased (`JOB_ID`); names the journal reserves
//!   (`MESSAGE`, `PRIORITY`, …) get an `F_` prefix instead of overwriting them.
//!
//! Written here because `tracing-journald` (0.3) keeps the fields out of `MESSAGE`: a plain
//! `journalctl` would show "cannot start consuming" without the error that says why.
//!
//! Everything is bounded: a value is cut at [`MAX_VALUE_BYTES`], an entry keeps its first
//! [`MAX_FIELDS`] fields, so one entry always fits in one datagram.

use std::fmt::Write as _;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Where journald listens for native-protocol datagrams.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// Longest value of one field, in bytes; a longer one is cut and ends with `…`.
pub const MAX_VALUE_BYTES: usize = 8 * 1024;

/// Most fields of one entry besides `MESSAGE`, `PRIORITY`, `SYSLOG_IDENTIFIER` and `TARGET`.
pub const MAX_FIELDS: usize = 32;

/// A `tracing` layer that writes each event to the journal.
#[derive(Debug)]
pub struct JournalLayer {
    socket: UnixDatagram,
    path: PathBuf,
    identifier: String,
}

impl JournalLayer {
    /// A layer writing to journald's socket as `identifier` (the binary's name), after checking
    /// that something listens there.
    ///
    /// # Errors
    /// When the socket cannot be reached (no journald).
    pub fn new(identifier: &str) -> io::Result<Self> {
        Self::with_socket(identifier, Path::new(JOURNAL_SOCKET))
    }

    /// [`JournalLayer::new`] with another socket (tests).
    ///
    /// # Errors
    /// When nothing listens on `path`.
    pub fn with_socket(identifier: &str, path: &Path) -> io::Result<Self> {
        let socket = UnixDatagram::unbound()?;
        // journald ignores an empty datagram; the send fails when nobody listens.
        socket.send_to(&[], path)?;
        Ok(Self {
            socket,
            path: path.to_owned(),
            identifier: identifier.to_owned(),
        })
    }
}

/// `(name, value)` pairs of a span, kept in its extensions.
struct SpanFields(Vec<(&'static str, String)>);

/// Collects an event's or a span's fields as text.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    pairs: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.push(field, format!("{value:?}"));
    }
}

impl Fields {
    fn push(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = Some(value);
        } else {
            self.pairs.push((field.name(), value));
        }
    }
}

impl<S> tracing_subscriber::Layer<S> for JournalLayer
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, context: Context<'_, S>) {
        let Some(span) = context.span(id) else { return };
        let mut fields = Fields::default();
        attributes.record(&mut fields);
        span.extensions_mut().insert(SpanFields(fields.pairs));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, context: Context<'_, S>) {
        let Some(span) = context.span(id) else { return };
        let mut fields = Fields::default();
        values.record(&mut fields);
        let mut extensions = span.extensions_mut();
        if let Some(known) = extensions.get_mut::<SpanFields>() {
            known.0.extend(fields.pairs);
        }
    }

    fn on_event(&self, event: &Event<'_>, context: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut pairs = fields.pairs;
        if let Some(scope) = context.event_scope(event) {
            for span in scope.from_root() {
                if let Some(span_fields) = span.extensions().get::<SpanFields>() {
                    for (name, value) in &span_fields.0 {
                        if !pairs.iter().any(|(known, _)| known == name) {
                            pairs.push((name, value.clone()));
                        }
                    }
                }
            }
        }
        let entry = encode_entry(&Entry {
            message: fields.message.as_deref().unwrap_or_default(),
            level: *event.metadata().level(),
            identifier: &self.identifier,
            target: event.metadata().target(),
            fields: &pairs,
        });
        // Nowhere to report a failure to log; the journal may be restarting.
        let _ = self.socket.send_to(&entry, &self.path);
    }
}

/// One journal entry before encoding.
struct Entry<'a> {
    message: &'a str,
    level: Level,
    identifier: &'a str,
    target: &'a str,
    fields: &'a [(&'static str, String)],
}

/// syslog's priority of a `tracing` level.
fn priority(level: Level) -> &'static str {
    match level {
        Level::ERROR => "3",
        Level::WARN => "4",
        Level::INFO => "6",
        Level::DEBUG | Level::TRACE => "7",
    }
}

/// Fields the journal (or this layer) sets itself: an event field of that name gets `F_`.
const RESERVED: [&str; 8] = [
    "MESSAGE",
    "MESSAGE_ID",
    "PRIORITY",
    "CODE_FILE",
    "CODE_LINE",
    "CODE_FUNC",
    "SYSLOG_IDENTIFIER",
    "TARGET",
];

/// The journal's name for a field: upper case letters, digits and `_`, not starting with `_` or
/// a digit, at most 64 bytes.
fn field_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .skip_while(|c| *c == '_')
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) || RESERVED.contains(&&*out)
    {
        out.insert_str(0, "F_");
    }
    out.truncate(64);
    out
}

/// `value` cut at [`MAX_VALUE_BYTES`] on a character boundary.
fn bounded(value: &str) -> std::borrow::Cow<'_, str> {
    if value.len() <= MAX_VALUE_BYTES {
        return value.into();
    }
    let mut cut = MAX_VALUE_BYTES - '…'.len_utf8();
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &value[..cut]).into()
}

/// The entry in the native protocol's binary-safe form: for each field `NAME\n`, the value's
/// length as a little-endian u64, the value, `\n`.
fn encode_entry(entry: &Entry<'_>) -> Vec<u8> {
    let mut message = entry.message.to_owned();
    for (name, value) in entry.fields {
        let _ = write!(message, " {name}={value}");
    }
    let mut out = Vec::with_capacity(512);
    put(&mut out, "MESSAGE", &bounded(&message));
    put(&mut out, "PRIORITY", priority(entry.level));
    put(&mut out, "SYSLOG_IDENTIFIER", &bounded(entry.identifier));
    put(&mut out, "TARGET", &bounded(entry.target));
    for (name, value) in entry.fields.iter().take(MAX_FIELDS) {
        put(&mut out, &field_name(name), &bounded(value));
    }
    out
}

fn put(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

/// Whether the journal holds this process's stdout or stderr: systemd sets `JOURNAL_STREAM` to
/// `device:inode` of that stream (systemd.exec(5)), which must match, since a child of a unit
/// inherits the variable with other output.
pub fn stream_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let Some(expected) = std::env::var("JOURNAL_STREAM").ok() else {
        return false;
    };
    let Some((device, inode)) = expected.split_once(':') else {
        return false;
    };
    let (Ok(device), Ok(inode)) = (device.parse::<u64>(), inode.parse::<u64>()) else {
        return false;
    };
    ["/proc/self/fd/1", "/proc/self/fd/2"].iter().any(|fd| {
        std::fs::metadata(fd).is_ok_and(|meta| meta.dev() == device && meta.ino() == inode)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt as _;

    /// Decode an entry in the binary-safe form: what journald reads.
    fn decode_entry(mut bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
        let mut fields = Vec::new();
        while !bytes.is_empty() {
            let newline = bytes
                .iter()
                .position(|&b| b == b'\n')
                .ok_or("a field name without a newline")?;
            let name = String::from_utf8_lossy(&bytes[..newline]).into_owned();
            bytes = &bytes[newline + 1..];
            let (length, rest) = bytes
                .split_first_chunk::<8>()
                .ok_or("a field without its length")?;
            let length = usize::try_from(u64::from_le_bytes(*length)).map_err(|e| e.to_string())?;
            if rest.len() < length + 1 || rest[length] != b'\n' {
                return Err(format!("field {name}: a value shorter than its length"));
            }
            fields.push((name, String::from_utf8_lossy(&rest[..length]).into_owned()));
            bytes = &rest[length + 1..];
        }
        Ok(fields)
    }

    fn field<'a>(entry: &'a [(String, String)], name: &str) -> Option<&'a str> {
        entry
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, value)| value.as_str())
    }

    #[test]
    fn each_event_is_one_entry_with_its_priority_its_spans_fields_and_a_readable_message() {
        let dir = std::env::temp_dir().join(format!("slipway-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("socket");
        let _ = std::fs::remove_file(&path);
        let journal = UnixDatagram::bind(&path).unwrap();
        let layer = JournalLayer::with_socket("slipway-lint", &path).unwrap();
        let mut empty = [0u8; 16];
        assert_eq!(
            journal.recv(&mut empty).unwrap(),
            0,
            "the reachability probe"
        );
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("job", job_id = "0193-abc", attempt = 2);
            let _entered = span.enter();
            tracing::error!(error = "disk full", priority = 1, "cannot build");
            tracing::warn!("slow");
            tracing::info!(value = %"x".repeat(100_000), "big");
            tracing::debug!("quiet");
        });
        let mut buffer = vec![0u8; 1 << 20];
        let mut entries = Vec::new();
        for _ in 0..4 {
            let length = journal.recv(&mut buffer).unwrap();
            entries.push(decode_entry(&buffer[..length]).unwrap());
        }
        let error = &entries[0];
        assert_eq!(field(error, "PRIORITY"), Some("3"));
        assert_eq!(
            field(error, "MESSAGE"),
            Some("cannot build error=disk full priority=1 job_id=0193-abc attempt=2")
        );
        assert_eq!(field(error, "JOB_ID"), Some("0193-abc"));
        assert_eq!(field(error, "ATTEMPT"), Some("2"));
        assert_eq!(field(error, "ERROR"), Some("disk full"));
        assert_eq!(
            field(error, "F_PRIORITY"),
            Some("1"),
            "reserved names kept apart"
        );
        assert_eq!(field(error, "SYSLOG_IDENTIFIER"), Some("slipway-lint"));
        assert_eq!(field(&entries[1], "PRIORITY"), Some("4"));
        assert_eq!(field(&entries[2], "PRIORITY"), Some("6"));
        let big = field(&entries[2], "VALUE").unwrap();
        assert!(
            big.len() <= MAX_VALUE_BYTES && big.ends_with('…'),
            "{}",
            big.len()
        );
        assert_eq!(field(&entries[3], "PRIORITY"), Some("7"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_journal_is_an_error_at_once() {
        let error =
            JournalLayer::with_socket("x", Path::new("/nonexistent/journal/socket")).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn field_names_follow_the_journals_rules() {
        assert_eq!(field_name("job_id"), "JOB_ID");
        assert_eq!(field_name("_private"), "PRIVATE");
        assert_eq!(field_name("9lives"), "F_9LIVES");
        assert_eq!(field_name("message_id"), "F_MESSAGE_ID");
        assert_eq!(field_name("a.b-c"), "A_B_C");
        assert_eq!(field_name(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn only_the_stream_journald_named_counts() {
        // Not under systemd here: no JOURNAL_STREAM, or one naming another file.
        if std::env::var_os("JOURNAL_STREAM").is_none() {
            assert!(!stream_is_journal());
        }
    }
}

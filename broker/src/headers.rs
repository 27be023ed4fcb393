//! The `x-slipway-*` message headers: retry bookkeeping and dead-letter reasons.
//!
//! Architecture invariant — *headers are bounded*: every header the runner writes fits in one
//! AMQP frame whatever a message carried. A message's content header must fit in one frame
//! (`frame_max`, 128 KiB by default): a reason quoting a 1 MiB `kind` string made the publish
//! of the dead letter kill the connection (six times, until the broker's delivery limit
//! dead-lettered it with no reason, abandoning every other job in flight on that connection).
//! So text written with [`set_text`] is cut to [`MAX_TEXT_BYTES`], and headers copied from a
//! delivery into its retry or dead letter go through [`bounded`].

use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};

/// Retries this message has been through before this delivery (absent = 0).
pub const ATTEMPT: &str = "x-slipway-attempt";
/// Why the message was retried or dead-lettered.
pub const REASON: &str = "x-slipway-reason";
/// The worker type that retried or dead-lettered it.
pub const WORKER: &str = "x-slipway-worker";
/// The routing key it was first published with (its kind, unless it never decoded).
pub const ROUTING_KEY: &str = "x-slipway-routing-key";
/// When it was sent to a delay queue, in Unix milliseconds.
pub const RETRIED_AT_MS: &str = "x-slipway-retried-at-ms";
/// The job it belongs to, for people reading queues.
pub const JOB_ID: &str = "x-slipway-job-id";

/// Read an integer header of any AMQP integer type.
pub fn integer(headers: Option<&FieldTable>, name: &str) -> Option<i64> {
    let value = headers?.inner().get(name)?;
    match value {
        AMQPValue::ShortShortInt(v) => Some((*v).into()),
        AMQPValue::ShortShortUInt(v) => Some((*v).into()),
        AMQPValue::ShortInt(v) => Some((*v).into()),
        AMQPValue::ShortUInt(v) => Some((*v).into()),
        AMQPValue::LongInt(v) => Some((*v).into()),
        AMQPValue::LongUInt(v) => Some((*v).into()),
        AMQPValue::LongLongInt(v) => Some(*v),
        AMQPValue::Timestamp(v) => i64::try_from(*v).ok(),
        _ => None,
    }
}

/// Read a text header.
pub fn text(headers: Option<&FieldTable>, name: &str) -> Option<String> {
    match headers?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// The retry count carried by a message.
pub fn attempt(headers: Option<&FieldTable>) -> u32 {
    integer(headers, ATTEMPT)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0)
}

/// Longest text header value written, in bytes (a reason longer than this is cut, saying so).
pub const MAX_TEXT_BYTES: usize = 4096;

/// Most bytes of headers copied from a delivery into its retry or dead letter (names, values and
/// a little per entry): with the runner's own headers (a few of at most [`MAX_TEXT_BYTES`]) and
/// the broker's `x-death` they stay below the 16 KiB frame the workers negotiate
/// ([`crate::DEFAULT_FRAME_MAX`]), which must hold all of a message's properties.
pub const MAX_COPIED_BYTES: usize = 6 * 1024;

/// Longest string or byte array kept in a copied header, in bytes (cut, saying so).
pub const MAX_COPIED_VALUE_BYTES: usize = 1024;

/// Most levels of nested tables and arrays kept in a copied header.
const MAX_DEPTH: usize = 4;

/// What an entry costs besides its name and value: type tags and lengths.
const ENTRY_OVERHEAD: usize = 16;

/// `text` cut to at most `max` bytes (on a character boundary), ending with a note of how many
/// bytes were cut when it was.
pub fn truncate(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return std::borrow::Cow::Borrowed(text);
    }
    let note = format!("… ({} bytes cut)", text.len());
    let mut end = max.saturating_sub(note.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}{note}", &text[..end]))
}

/// Set a text header, cut to [`MAX_TEXT_BYTES`].
pub fn set_text(headers: &mut FieldTable, name: &str, value: &str) {
    headers.insert(
        ShortString::from(name),
        AMQPValue::LongString(LongString::from(truncate(value, MAX_TEXT_BYTES).as_ref())),
    );
}

/// Set an integer header.
pub fn set_integer(headers: &mut FieldTable, name: &str, value: i64) {
    headers.insert(ShortString::from(name), AMQPValue::LongLongInt(value));
}

/// A copy of `headers` that fits a frame: strings and byte arrays cut to
/// [`MAX_COPIED_VALUE_BYTES`],
/// nesting cut below a few levels, and entries kept in order while they fit in
/// [`MAX_COPIED_BYTES`] (the rest are dropped).
pub fn bounded(headers: &FieldTable) -> FieldTable {
    let mut budget = MAX_COPIED_BYTES;
    bounded_table(headers, 0, &mut budget)
}

fn bounded_table(table: &FieldTable, depth: usize, budget: &mut usize) -> FieldTable {
    let mut out = FieldTable::default();
    for (name, value) in table.inner() {
        let Some(left) = budget.checked_sub(name.as_str().len() + ENTRY_OVERHEAD) else {
            continue;
        };
        *budget = left;
        if let Some(value) = bounded_value(value, depth, budget) {
            out.insert(name.clone(), value);
        }
    }
    out
}

/// `value` within the budget (which it reduces), or `None` when it does not fit.
fn bounded_value(value: &AMQPValue, depth: usize, budget: &mut usize) -> Option<AMQPValue> {
    let mut take = |cost: usize| -> Option<()> {
        *budget = budget.checked_sub(cost)?;
        Some(())
    };
    Some(match value {
        AMQPValue::LongString(text) => {
            let text = String::from_utf8_lossy(text.as_bytes());
            let text = truncate(&text, MAX_COPIED_VALUE_BYTES);
            take(text.len())?;
            AMQPValue::LongString(LongString::from(text.as_ref()))
        }
        AMQPValue::ShortString(text) => {
            take(text.as_str().len())?;
            value.clone()
        }
        AMQPValue::ByteArray(bytes) => {
            let bytes = &bytes.as_slice()[..bytes.as_slice().len().min(MAX_COPIED_VALUE_BYTES)];
            take(bytes.len())?;
            AMQPValue::ByteArray(bytes.to_vec().into())
        }
        AMQPValue::FieldTable(_) | AMQPValue::FieldArray(_) if depth >= MAX_DEPTH => return None,
        AMQPValue::FieldTable(table) => {
            AMQPValue::FieldTable(bounded_table(table, depth + 1, budget))
        }
        AMQPValue::FieldArray(array) => {
            let mut out = FieldArray::default();
            for item in array.as_slice() {
                let Some(left) = budget.checked_sub(ENTRY_OVERHEAD) else {
                    break;
                };
                *budget = left;
                if let Some(item) = bounded_value(item, depth + 1, budget) {
                    out.push(item);
                }
            }
            AMQPValue::FieldArray(out)
        }
        other => {
            take(8)?;
            other.clone()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_reads_any_integer_width_and_defaults_to_zero() {
        assert_eq!(attempt(None), 0);
        let mut headers = FieldTable::default();
        assert_eq!(attempt(Some(&headers)), 0);
        headers.insert(ATTEMPT.into(), AMQPValue::LongInt(3));
        assert_eq!(attempt(Some(&headers)), 3);
        set_integer(&mut headers, ATTEMPT, 4);
        assert_eq!(attempt(Some(&headers)), 4);
        set_integer(&mut headers, ATTEMPT, -1);
        assert_eq!(
            attempt(Some(&headers)),
            0,
            "nonsense counts as a first attempt"
        );
        set_text(&mut headers, REASON, "why");
        assert_eq!(text(Some(&headers), REASON).as_deref(), Some("why"));
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary_saying_so() {
        assert_eq!(truncate("short", 10), "short");
        let long = "é".repeat(3000); // 6000 bytes
        let cut = truncate(&long, MAX_TEXT_BYTES);
        assert!(cut.len() <= MAX_TEXT_BYTES, "{}", cut.len());
        assert!(cut.ends_with("… (6000 bytes cut)"), "{cut}");
        assert!(cut.starts_with("éé"));
        let mut headers = FieldTable::default();
        set_text(&mut headers, REASON, &"x".repeat(1 << 20));
        let reason = text(Some(&headers), REASON).unwrap();
        assert!(reason.len() <= MAX_TEXT_BYTES && reason.ends_with("(1048576 bytes cut)"));
    }

    #[test]
    fn copied_headers_are_bounded_in_size_count_and_depth() {
        let mut inner = FieldTable::default();
        inner.insert(
            "deep".into(),
            AMQPValue::LongString("y".repeat(100_000).into()),
        );
        let mut headers = FieldTable::default();
        for i in 0..100 {
            headers.insert(format!("h{i:03}").into(), AMQPValue::LongInt(i));
        }
        let mut huge = FieldTable::default();
        huge.insert(
            ROUTING_KEY.into(),
            AMQPValue::LongString("x".repeat(1 << 20).into()),
        );
        huge.insert(
            "x-death".into(),
            AMQPValue::FieldArray(vec![AMQPValue::FieldTable(inner)].into()),
        );
        huge.insert(
            "x-bin".into(),
            AMQPValue::ByteArray(vec![0u8; 100_000].into()),
        );
        let bounded_huge = bounded(&huge);
        assert!(text(Some(&bounded_huge), ROUTING_KEY).unwrap().len() <= MAX_COPIED_VALUE_BYTES);
        let Some(AMQPValue::FieldArray(deaths)) = bounded_huge.inner().get("x-death") else {
            panic!("x-death kept")
        };
        let Some(AMQPValue::FieldTable(death)) = deaths.as_slice().first() else {
            panic!("its table kept")
        };
        assert!(text(Some(death), "deep").unwrap().len() <= MAX_COPIED_VALUE_BYTES);
        let Some(AMQPValue::ByteArray(bin)) = bounded_huge.inner().get("x-bin") else {
            panic!("bytes kept")
        };
        assert_eq!(bin.as_slice().len(), MAX_COPIED_VALUE_BYTES);
        assert_eq!(
            bounded(&headers).inner().len(),
            100,
            "small headers all kept"
        );
        let mut many = FieldTable::default();
        for i in 0..100 {
            many.insert(
                format!("h{i:03}").into(),
                AMQPValue::LongString("z".repeat(4000).into()),
            );
        }
        let kept = bounded(&many);
        let bytes: usize = kept
            .inner()
            .values()
            .map(|v| match v {
                AMQPValue::LongString(s) => s.as_bytes().len(),
                _ => 0,
            })
            .sum();
        assert!(
            bytes <= MAX_COPIED_BYTES && kept.inner().len() >= 5,
            "{bytes}"
        );
    }
}

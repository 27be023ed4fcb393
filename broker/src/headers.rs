//! The `x-slipway-*` message headers: retry bookkeeping and dead-letter reasons.

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

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

/// Set a text header.
pub fn set_text(headers: &mut FieldTable, name: &str, value: &str) {
    headers.insert(
        ShortString::from(name),
        AMQPValue::LongString(LongString::from(value)),
    );
}

/// Set an integer header.
pub fn set_integer(headers: &mut FieldTable, name: &str, value: i64) {
    headers.insert(ShortString::from(name), AMQPValue::LongLongInt(value));
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
}

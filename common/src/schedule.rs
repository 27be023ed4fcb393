//! Cron-style schedules: an index entry's `rebuild-schedule` (a Slipway extension of the
//! container index), evaluated in UTC.
//!
//! The grammar is POSIX/Vixie cron as the `croner` crate reads it: five fields (minute, hour,
//! day of month, month, day of week), or six with seconds first; ranges, steps, lists, names
//! (`MON`, `JAN`), and the nicknames `@yearly`, `@monthly`, `@weekly`, `@daily`, `@hourly`. A
//! pattern that never matches (`0 0 31 2 *`) is refused, as is one longer than
//! [`MAX_PATTERN_LEN`].

use std::str::FromStr;

use chrono::{DateTime, Utc};
use croner::Cron;

/// Longest pattern accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 256;

/// A validated cron pattern.
#[derive(Clone, Debug)]
pub struct RebuildSchedule {
    pattern: String,
    cron: Cron,
}

impl PartialEq for RebuildSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl Eq for RebuildSchedule {}

impl RebuildSchedule {
    /// Parse `pattern`; the error says what is wrong, in one line.
    pub fn parse(pattern: &str) -> Result<Self, String> {
        let pattern = pattern.trim();
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(format!(
                "a cron pattern of at most {MAX_PATTERN_LEN} bytes, found {}",
                pattern.len()
            ));
        }
        if pattern.starts_with('@') && !NICKNAMES.contains(&pattern.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "expected one of {} or five cron fields, found {pattern:?}",
                NICKNAMES.join(", ")
            ));
        }
        let fields = pattern.split_whitespace().count();
        if !pattern.starts_with('@') && !(5..=6).contains(&fields) {
            return Err(format!(
                "expected five cron fields (minute hour day-of-month month day-of-week), or six \
                 with seconds first, found {fields} in {pattern:?}"
            ));
        }
        let cron = Cron::from_str(pattern)
            .map_err(|error| format!("not a cron pattern: {error} in {pattern:?}"))?;
        let schedule = RebuildSchedule {
            pattern: pattern.to_owned(),
            cron,
        };
        // A pattern that cannot match in the next few years is a mistake, not a schedule.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        if schedule.next_after(now).is_none() {
            return Err(format!("{pattern:?} never fires"));
        }
        Ok(schedule)
    }

    /// The pattern as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// The first firing strictly after `moment` (milliseconds since the Unix epoch, as
    /// `Timestamp::unix_millis`).
    pub fn next_after(&self, moment: u64) -> Option<u64> {
        let at = whole_second(moment)?;
        self.cron
            .find_next_occurrence(&at, false)
            .ok()
            .map(timestamp)
    }

    /// The last firing at or before `moment` (milliseconds since the Unix epoch).
    pub fn last_at_or_before(&self, moment: u64) -> Option<u64> {
        let at = whole_second(moment)?;
        self.cron
            .find_previous_occurrence(&at, true)
            .ok()
            .map(timestamp)
    }
}

/// The nicknames accepted for common schedules.
const NICKNAMES: [&str; 6] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@hourly",
];

/// `moment` cut to its second, as a UTC date-time (cron fires on whole seconds).
fn whole_second(moment: u64) -> Option<DateTime<Utc>> {
    let seconds = i64::try_from(moment / 1000).ok()?;
    DateTime::from_timestamp(seconds, 0)
}

fn timestamp(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp_millis()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-06T10:00:00.123Z, a Sunday.
    fn sunday_ten() -> u64 {
        1_796_551_200_123
    }

    fn at(text: &str) -> String {
        text.to_owned()
    }

    fn rfc3339(millis: u64) -> String {
        DateTime::from_timestamp_millis(millis as i64)
            .expect("a time")
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    }

    #[test]
    fn five_fields_six_with_seconds_and_nicknames_are_schedules() {
        let cases = [
            ("0 2 * * 0", "2026-12-13T02:00:00Z", "2026-12-06T02:00:00Z"),
            ("@hourly", "2026-12-06T11:00:00Z", "2026-12-06T10:00:00Z"),
            ("@daily", "2026-12-07T00:00:00Z", "2026-12-06T00:00:00Z"),
            (
                "*/15 * * * *",
                "2026-12-06T10:15:00Z",
                "2026-12-06T10:00:00Z",
            ),
            (
                "*/5 * * * * *",
                "2026-12-06T10:00:05Z",
                "2026-12-06T10:00:00Z",
            ),
            (
                "0 0 * * MON",
                "2026-12-07T00:00:00Z",
                "2026-11-30T00:00:00Z",
            ),
        ];
        for (pattern, next, last) in cases {
            let schedule = RebuildSchedule::parse(pattern).expect(pattern);
            assert_eq!(schedule.as_str(), pattern);
            assert_eq!(
                schedule.next_after(sunday_ten()).map(rfc3339),
                Some(at(next)),
                "{pattern}"
            );
            assert_eq!(
                schedule.last_at_or_before(sunday_ten()).map(rfc3339),
                Some(at(last)),
                "{pattern}"
            );
        }
    }

    #[test]
    fn a_firing_is_on_a_whole_second_and_next_after_it_is_the_following_one() {
        let schedule = RebuildSchedule::parse("@hourly").unwrap();
        let fired = schedule.last_at_or_before(sunday_ten()).unwrap();
        assert_eq!(fired % 1000, 0);
        assert_eq!(schedule.last_at_or_before(fired), Some(fired));
        assert_eq!(
            schedule.next_after(fired).map(rfc3339),
            Some(at("2026-12-06T11:00:00Z"))
        );
    }

    #[test]
    fn malformed_or_impossible_patterns_are_refused_with_the_reason() {
        for (pattern, reason) in [
            ("61 * * * *", "not a cron pattern"),
            ("0 2 * *", "found 4"),
            ("* * * * * * *", "found 7"),
            ("@reboot", "expected one of @yearly"),
            ("0 0 31 2 *", "never fires"),
            ("", "found 0"),
            ("tomorrow at noon", "found 3"),
        ] {
            let error = RebuildSchedule::parse(pattern).expect_err(pattern);
            assert!(error.contains(reason), "{pattern}: {error}");
        }
        let long = format!("0 {} * * *", "1,".repeat(200));
        assert!(
            RebuildSchedule::parse(&long)
                .unwrap_err()
                .contains("at most 256 bytes")
        );
    }
}

//! Ruby gem version ordering: `Gem::Version` parsing and its `<=>`, as current RubyGems
//! implements them.
//!
//! Follows rubygems/rubygems' lib/rubygems/version.rb: versions match `VERSION_PATTERN`, a `-`
//! becomes `.pre.`, segments are runs of digits or letters, and comparison uses the
//! "canonical" segments (trailing zeros and the zeros before the first letter dropped, by the
//! same two substitutions RubyGems applies).

use std::cmp::Ordering;

use super::{VersionError, cmp_decimal, digit_run, fallback, found_at, is_zero};
use crate::package::Ecosystem;

/// One segment of a version.
#[derive(Clone, Debug)]
enum Segment {
    /// A run of digits: compares by value, after every text segment.
    Number(String),
    /// A run of letters: makes the version a pre-release, compares as text.
    Text(String),
}

/// A parsed gem version. Equality and order are `Gem::Version#<=>`'s: `1.0 == 1`,
/// `1.2.b1 == 1.2.b.1`, and any version with a letter is a pre-release, older than its
/// release (`1.0.a < 1.0`).
#[derive(Clone, Debug)]
pub struct Version {
    /// The segments `<=>` compares.
    canonical: Vec<Segment>,
}

impl Version {
    /// A version with a letter (`1.0.a`, `2.0.0.rc1`): `Gem::Version#prerelease?`.
    pub fn is_prerelease(&self) -> bool {
        self.canonical
            .iter()
            .any(|segment| matches!(segment, Segment::Text(_)))
    }

    /// Parses a version as `Gem::Version.new` does: Ruby whitespace around it is ignored, an
    /// empty or blank string means `0`, and the rest must match
    /// `[0-9]+(\.[0-9a-zA-Z]+)*(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?`.
    pub fn parse(version: &str) -> Result<Version, VersionError> {
        let trimmed = version.trim_matches(is_ruby_space);
        let trimmed = if trimmed.is_empty() { "0" } else { trimmed };
        if let Some((expected, rest)) = shape_error(trimmed.as_bytes()) {
            return Err(VersionError::new(
                Ecosystem::Gem,
                version,
                expected,
                found_at(&String::from_utf8_lossy(rest)),
            ));
        }
        let normalised = trimmed.replace('-', ".pre.");
        Ok(Version {
            canonical: segments(&canonical_text(normalised.as_bytes())),
        })
    }
}

impl Ord for Version {
    /// `Gem::Version#<=>`: segment by segment, text before numbers; where one version runs out,
    /// the other's next non-zero segment decides (text: the shorter is newer, number: older).
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (&self.canonical, &other.canonical);
        for (x, y) in a.iter().zip(b) {
            let order = cmp_segment(x, y);
            if order != Ordering::Equal {
                return order;
            }
        }
        let common = a.len().min(b.len());
        let (longer, sign) = if a.len() > b.len() {
            (&a[common..], Ordering::Greater)
        } else {
            (&b[common..], Ordering::Less)
        };
        for segment in longer {
            match segment {
                Segment::Text(_) => return sign.reverse(),
                Segment::Number(n) if !is_zero(n.as_bytes()) => return sign,
                Segment::Number(_) => {}
            }
        }
        Ordering::Equal
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

/// Compares two gem versions as `Gem::Version#<=>` does.
///
/// Versions `Gem::Version` refuses sort before all valid ones, and among themselves by their
/// bytes.
pub fn compare(a: &str, b: &str) -> Ordering {
    match (Version::parse(a), Version::parse(b)) {
        (Ok(va), Ok(vb)) => va.cmp(&vb),
        (ra, rb) => fallback(ra.is_ok(), rb.is_ok(), a, b),
    }
}

/// Two segments compared: numbers by value, text bytewise, text before numbers.
fn cmp_segment(x: &Segment, y: &Segment) -> Ordering {
    match (x, y) {
        (Segment::Number(x), Segment::Number(y)) => cmp_decimal(x.as_bytes(), y.as_bytes()),
        (Segment::Text(x), Segment::Text(y)) => x.cmp(y),
        (Segment::Text(_), Segment::Number(_)) => Ordering::Less,
        (Segment::Number(_), Segment::Text(_)) => Ordering::Greater,
    }
}

/// Ruby's `\s`: space, `\t`, `\n`, `\v`, `\f`, `\r`.
fn is_ruby_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r')
}

/// Where `s` departs from `VERSION_PATTERN`, as (expected, rest), or `None` if it matches.
fn shape_error(s: &[u8]) -> Option<(&'static str, &[u8])> {
    let release_char = |c: &u8| c.is_ascii_alphanumeric();
    let pre_char = |c: &u8| c.is_ascii_alphanumeric() || *c == b'-';
    let run = |s: &[u8], ok: &dyn Fn(&u8) -> bool| s.iter().take_while(|c| ok(c)).count();

    let len = digit_run(s);
    if len == 0 {
        return Some(("a version starting with a digit", s));
    }
    let mut s = &s[len..];
    // `.` and letters or digits, repeatedly.
    while let Some(rest) = s.strip_prefix(b".") {
        let len = run(rest, &release_char);
        if len == 0 {
            return Some(("letters or digits after '.'", rest));
        }
        s = &rest[len..];
    }
    // Optionally `-` and letters, digits or `-`, then `.`-separated more of them.
    if let Some(rest) = s.strip_prefix(b"-") {
        let len = run(rest, &pre_char);
        if len == 0 {
            return Some(("letters, digits or '-' after '-'", rest));
        }
        s = &rest[len..];
        while let Some(rest) = s.strip_prefix(b".") {
            let len = run(rest, &pre_char);
            if len == 0 {
                return Some(("letters, digits or '-' after '.'", rest));
            }
            s = &rest[len..];
        }
    }
    if s.is_empty() {
        None
    } else {
        Some(("'.', '-' or the end of the version", s))
    }
}

/// The text RubyGems splits into canonical segments: `version` without its trailing zero
/// segments (the run of `.` and `0` at the end, from just after a letter or a `.`), and, if it
/// has letters, without the zero segments before its first letter (the first run of `.` and
/// `0` that starts the string or follows a `.` and is followed by a letter).
///
/// These are RubyGems' two substitutions `sub(/(?<=[a-zA-Z.])[.0]+\z/, "")` and
/// `sub!(/(?<=\.|\A)[0.]+(?=[a-zA-Z])/, "")`, matched here without a regex engine; like
/// RubyGems', the second removes only the first such run, wherever it is.
fn canonical_text(version: &[u8]) -> Vec<u8> {
    let zero_or_dot = |c: &u8| *c == b'.' || *c == b'0';

    // First substitution: the leftmost start in the trailing [.0] run whose previous byte is a
    // letter or a '.'.
    let trailing = version.iter().rev().take_while(|c| zero_or_dot(c)).count();
    let run_start = version.len() - trailing;
    let cut = (run_start..version.len())
        .find(|&p| {
            p > 0
                && version
                    .get(p - 1)
                    .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'.')
        })
        .unwrap_or(version.len());
    let mut text = version[..cut].to_vec();

    // Second substitution, for pre-releases. A match starts inside a maximal [.0] run at its
    // first byte when the run starts the string, or right after one of its own '.'s; it always
    // extends to the run's end, which must be followed by a letter.
    if text.iter().any(u8::is_ascii_alphabetic) {
        let mut i = 0;
        while i < text.len() {
            if !zero_or_dot(&text[i]) {
                i += 1;
                continue;
            }
            let end = i + text[i..].iter().take_while(|c| zero_or_dot(c)).count();
            let followed_by_letter = text.get(end).is_some_and(u8::is_ascii_alphabetic);
            let start = if i == 0 {
                Some(0)
            } else {
                text[i..end]
                    .iter()
                    .position(|&c| c == b'.')
                    .map(|p| i + p + 1)
            };
            if followed_by_letter
                && let Some(start) = start
                && start < end
            {
                text.drain(start..end);
                break;
            }
            i = end;
        }
    }
    text
}

/// Splits `text` into runs of digits and runs of letters (`scan(/\d+|[a-z]+/i)`), skipping
/// everything else.
fn segments(text: &[u8]) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut rest = text;
    while let Some(&c) = rest.first() {
        let len = if c.is_ascii_digit() {
            digit_run(rest)
        } else if c.is_ascii_alphabetic() {
            rest.iter().take_while(|c| c.is_ascii_alphabetic()).count()
        } else {
            rest = &rest[1..];
            continue;
        };
        let text = String::from_utf8_lossy(&rest[..len]).into_owned();
        segments.push(if c.is_ascii_digit() {
            Segment::Number(text)
        } else {
            Segment::Text(text)
        });
        rest = &rest[len..];
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::tests::check_both_ways;
    use Ordering::{Equal, Greater, Less};

    /// Comparisons of RubyGems' own suite: `test_spaceship`, `test_semver`, `test_equals2`,
    /// `test_initialize`, `test_empty_version`, `test_hash` (equal hashes are equal canonical
    /// segments) and `test_frozen_version`.
    /// Source: github.com/rubygems/rubygems, test/rubygems/test_gem_version.rb.
    const TEST_GEM_VERSION: &[(&str, Ordering, &str)] = &[
        // test_spaceship
        ("1.0", Equal, "1.0.0"),
        ("1.0", Greater, "1.0.a"),
        ("1.8.2", Greater, "0.0.0"),
        ("1.8.2", Greater, "1.8.2.a"),
        ("1.8.2.b", Greater, "1.8.2.a"),
        ("1.8.2.a", Less, "1.8.2"),
        ("1.8.2.a10", Greater, "1.8.2.a9"),
        ("", Equal, "0"),
        ("0.beta.1", Equal, "0.0.beta.1"),
        ("0.0.beta", Less, "0.0.beta.1"),
        ("0.0.beta", Less, "0.beta.1"),
        ("5.a", Less, "5.0.0.rc2"),
        ("5.x", Greater, "5.0.0.rc2"),
        ("1.9.3", Equal, "1.9.3"),
        ("1.9.3", Greater, "1.9.2.99"),
        ("1.9.3", Less, "1.9.3.1"),
        // test_semver
        ("1.0.0-alpha", Less, "1.0.0-alpha.1"),
        ("1.0.0-alpha.1", Less, "1.0.0-beta.2"),
        ("1.0.0-beta.2", Less, "1.0.0-beta.11"),
        ("1.0.0-beta.11", Less, "1.0.0-rc.1"),
        ("1.0.0-rc1", Less, "1.0.0"),
        ("1.0.0-1", Less, "1"),
        // test_eql_eh / test_equals2
        ("1.2", Equal, "1.2"),
        ("1.2", Less, "1.3"),
        ("1.2.b1", Equal, "1.2.b.1"),
        // test_initialize
        ("1.0", Equal, "1.0 "),
        ("1.0", Equal, " 1.0 "),
        ("1.0", Equal, "1.0\n"),
        ("1.0", Equal, "\n1.0\n"),
        ("1", Equal, "1"),
        // test_empty_version
        ("", Equal, "0"),
        ("   ", Equal, "0"),
        (" ", Equal, "0"),
        // test_hash
        ("1.2", Equal, "1.2.0"),
        ("1.2.pre.1", Equal, "1.2.0.pre.1.0"),
        // test_frozen_version
        ("1.freeze.test", Less, "1"),
    ];

    /// Strings `Gem::Version.new` refuses.
    /// Source: github.com/rubygems/rubygems, test/rubygems/test_gem_version.rb,
    /// `test_initialize_invalid` and `test_class_correct`.
    const TEST_GEM_VERSION_INVALID: &[&str] = &[
        "junk",
        "1.0\n2.0",
        "1..2",
        "1.2 3.4",
        "2.3422222.222.222222222.22222.ads0as.dasd0.ddd2222.2.qd3e.",
        "an incorrect version",
    ];

    /// `test_canonical_segments`, with numbers as digits.
    /// Source: github.com/rubygems/rubygems, test/rubygems/test_gem_version.rb.
    const TEST_CANONICAL_SEGMENTS: &[(&str, &[&str])] = &[
        ("1.0.0", &["1"]),
        ("1.0.0.a.1.0", &["1", "a", "1"]),
        ("1.2.3-1", &["1", "2", "3", "pre", "1"]),
    ];

    #[test]
    fn test_gem_version_table() {
        for &(a, expected, b) in TEST_GEM_VERSION {
            assert!(Version::parse(a).is_ok(), "{a:?} parses");
            assert!(Version::parse(b).is_ok(), "{b:?} parses");
            check_both_ways(compare, a, expected, b);
        }
        for input in TEST_GEM_VERSION_INVALID {
            assert!(Version::parse(input).is_err(), "{input:?} is invalid");
        }
    }

    #[test]
    fn canonical_segments_table() {
        for &(input, expected) in TEST_CANONICAL_SEGMENTS {
            let segments = Version::parse(input).map(|v| {
                v.canonical
                    .into_iter()
                    .map(|s| match s {
                        Segment::Number(n) | Segment::Text(n) => n,
                    })
                    .collect::<Vec<_>>()
            });
            assert_eq!(
                segments,
                Ok(expected.iter().map(|s| s.to_string()).collect()),
                "{input:?}"
            );
        }
    }

    #[test]
    fn canonical_text_follows_rubygems_substitutions() {
        let cases: &[(&str, &str)] = &[
            ("1.0.0", "1."),
            ("1.10", "1.10"),
            ("10", "10"),
            ("0", "0"),
            ("1.a0.0", "1.a"),
            ("1.0a", "1.a"),
            ("0.a", "a"),
            ("10.0a", "10.a"),
            ("1.01.a", "1.01.a"),
            // Only the first run is removed, even after the first letter (RubyGems' `sub!`).
            ("1.a.0.b", "1.a.b"),
            ("1.0.a.0.b", "1.a.0.b"),
            ("1.0.0.pre.rc1", "1.pre.rc1"),
        ];
        for &(input, expected) in cases {
            let text = canonical_text(input.as_bytes());
            assert_eq!(String::from_utf8_lossy(&text), expected, "{input:?}");
        }
    }

    #[test]
    fn errors_say_where_the_shape_breaks() {
        let err = Version::parse("1..2").err();
        assert_eq!(
            err.map(|e| (e.expected, e.found)),
            Some(("letters or digits after '.'", "\".2\"".to_owned()))
        );
    }
}

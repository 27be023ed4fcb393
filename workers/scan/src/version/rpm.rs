//! RPM version ordering: `rpmvercmp` on one version or release string, and the comparison of
//! whole `[epoch:]version[-release]` strings built on it.
//!
//! Follows rpm's rpmio/rpmvercmp.cc and rpmio/rpmver.cc (`rpmverParse`, `rpmverCmp`). Only ASCII
//! letters and digits form segments; every other byte (including non-ASCII) separates them,
//! except `~` (sorts before anything, even the end) and `^` (sorts after the end but before
//! anything else).

use std::cmp::Ordering;

use super::{cmp_decimal, digit_run, fallback};

/// rpm's `rpmvercmp`: compares two version (or two release) strings segment by segment.
///
/// Segments are maximal runs of ASCII digits or of ASCII letters; other characters only
/// separate them. Numeric segments compare by value (leading zeros ignored) and are newer than
/// alphabetic ones, which compare bytewise. `~` sorts before anything, even the end of the
/// string (`1.0~rc1 < 1.0`); `^` sorts after the end but before anything else
/// (`1.0 < 1.0^git1 < 1.0.1`). Strings differing only in separators are equal.
pub fn vercmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a == b {
        return Ordering::Equal;
    }
    let (mut i, mut j) = (0, 0);
    loop {
        i += separators(&a[i..]);
        j += separators(&b[j..]);
        let (ca, cb) = (a.get(i).copied(), b.get(j).copied());

        if ca == Some(b'~') || cb == Some(b'~') {
            if ca != Some(b'~') {
                return Ordering::Greater;
            }
            if cb != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }

        if ca == Some(b'^') || cb == Some(b'^') {
            match (ca, cb) {
                (None, _) => return Ordering::Less,
                (_, None) => return Ordering::Greater,
                (Some(x), _) if x != b'^' => return Ordering::Greater,
                (_, Some(y)) if y != b'^' => return Ordering::Less,
                _ => {
                    i += 1;
                    j += 1;
                    continue;
                }
            }
        }

        let (Some(first), Some(_)) = (ca, cb) else {
            break;
        };

        // One segment from each side, of the kind `a`'s segment is.
        let numeric = first.is_ascii_digit();
        let run = |s: &[u8]| {
            if numeric {
                digit_run(s)
            } else {
                s.iter().take_while(|c| c.is_ascii_alphabetic()).count()
            }
        };
        let (len_a, len_b) = (run(&a[i..]), run(&b[j..]));
        if len_b == 0 {
            // Different kinds: a numeric segment is newer than an alphabetic one.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let (seg_a, seg_b) = (&a[i..i + len_a], &b[j..j + len_b]);
        let order = if numeric {
            cmp_decimal(seg_a, seg_b)
        } else {
            seg_a.cmp(seg_b)
        };
        if order != Ordering::Equal {
            return order;
        }
        i += len_a;
        j += len_b;
    }

    // All segments compared equal: whichever still has characters left is newer.
    match (i < a.len(), j < b.len()) {
        (false, false) => Ordering::Equal,
        (false, true) => Ordering::Less,
        (true, _) => Ordering::Greater,
    }
}

/// How many leading bytes of `s` are mere separators: neither ASCII alphanumeric nor `~`/`^`.
fn separators(s: &[u8]) -> usize {
    s.iter()
        .take_while(|&&c| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^')
        .count()
}

/// An `[epoch:]version[-release]` string split as rpm's `rpmverParse` splits it.
struct Evr<'a> {
    /// The digits before the first `:`, when the string starts with digits and a `:` (an empty
    /// epoch before the `:` counts as `0`).
    epoch: Option<&'a str>,
    /// Between the epoch and the last `-`.
    version: &'a str,
    /// After the last `-`, when there is one.
    release: Option<&'a str>,
}

impl<'a> Evr<'a> {
    /// Splits `evr`; rpm accepts any string except the empty one.
    fn parse(evr: &'a str) -> Option<Evr<'a>> {
        if evr.is_empty() {
            return None;
        }
        // The epoch is a leading run of digits ended by ':'; the release starts after the last
        // '-' found after that run.
        let digits = digit_run(evr.as_bytes());
        let (epoch, rest_start) = match evr[digits..].starts_with(':') {
            true if digits == 0 => (Some("0"), 1),
            true => (Some(&evr[..digits]), digits + 1),
            false => (None, 0),
        };
        let (version, release) = match evr[digits..].rfind('-') {
            Some(dash) => (
                &evr[rest_start..digits + dash],
                Some(&evr[digits + dash + 1..]),
            ),
            None => (&evr[rest_start..], None),
        };
        Some(Evr {
            epoch,
            version,
            release,
        })
    }
}

impl Ord for Evr<'_> {
    /// rpm's `rpmverCmp`: epochs (absent = `0`), then versions, then releases (a present
    /// release is newer than an absent one), each with [`vercmp`].
    fn cmp(&self, other: &Self) -> Ordering {
        vercmp(self.epoch.unwrap_or("0"), other.epoch.unwrap_or("0"))
            .then_with(|| vercmp(self.version, other.version))
            .then_with(|| match (self.release, other.release) {
                (Some(x), Some(y)) => vercmp(x, y),
                (x, y) => x.is_some().cmp(&y.is_some()),
            })
    }
}

impl PartialOrd for Evr<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Evr<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Evr<'_> {}

/// Compares two `[epoch:]version[-release]` strings as rpm does (`rpm.vercmp` in rpm's Lua,
/// `rpmverCmp` in C): a missing epoch is `0`, each part is compared with [`vercmp`].
///
/// The empty string, which rpm refuses, sorts before every other version.
pub fn compare(a: &str, b: &str) -> Ordering {
    match (Evr::parse(a), Evr::parse(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (x, y) => fallback(x.is_some(), y.is_some(), a, b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::tests::check_both_ways;
    use Ordering::{Equal, Greater, Less};

    /// Every active `RPMVERCMP(a, b, result)` row of rpm's test suite, in its order (they are
    /// run through `rpm.vercmp`, i.e. whole-EVR comparison; none has an epoch or release, so
    /// they hold for [`vercmp`] too).
    /// Source: github.com/rpm-software-management/rpm, tests/rpmvercmp.at.
    const RPMVERCMP_AT: &[(&str, &str, Ordering)] = &[
        ("1.0", "1.0", Equal),
        ("1.0", "2.0", Less),
        ("2.0", "1.0", Greater),
        ("2.0.1", "2.0.1", Equal),
        ("2.0", "2.0.1", Less),
        ("2.0.1", "2.0", Greater),
        ("2.0.1a", "2.0.1a", Equal),
        ("2.0.1a", "2.0.1", Greater),
        ("2.0.1", "2.0.1a", Less),
        ("5.5p1", "5.5p1", Equal),
        ("5.5p1", "5.5p2", Less),
        ("5.5p2", "5.5p1", Greater),
        ("5.5p10", "5.5p10", Equal),
        ("5.5p1", "5.5p10", Less),
        ("5.5p10", "5.5p1", Greater),
        ("10xyz", "10.1xyz", Less),
        ("10.1xyz", "10xyz", Greater),
        ("xyz10", "xyz10", Equal),
        ("xyz10", "xyz10.1", Less),
        ("xyz10.1", "xyz10", Greater),
        ("xyz.4", "xyz.4", Equal),
        ("xyz.4", "8", Less),
        ("8", "xyz.4", Greater),
        ("xyz.4", "2", Less),
        ("2", "xyz.4", Greater),
        ("5.5p2", "5.6p1", Less),
        ("5.6p1", "5.5p2", Greater),
        ("5.6p1", "6.5p1", Less),
        ("6.5p1", "5.6p1", Greater),
        ("6.0.rc1", "6.0", Greater),
        ("6.0", "6.0.rc1", Less),
        ("10b2", "10a1", Greater),
        ("10a2", "10b2", Less),
        ("1.0aa", "1.0aa", Equal),
        ("1.0a", "1.0aa", Less),
        ("1.0aa", "1.0a", Greater),
        ("10.0001", "10.0001", Equal),
        ("10.0001", "10.1", Equal),
        ("10.1", "10.0001", Equal),
        ("10.0001", "10.0039", Less),
        ("10.0039", "10.0001", Greater),
        ("4.999.9", "5.0", Less),
        ("5.0", "4.999.9", Greater),
        ("20101121", "20101121", Equal),
        ("20101121", "20101122", Less),
        ("20101122", "20101121", Greater),
        ("2_0", "2_0", Equal),
        ("2.0", "2_0", Equal),
        ("2_0", "2.0", Equal),
        ("a", "a", Equal),
        ("a+", "a+", Equal),
        ("a+", "a_", Equal),
        ("a_", "a+", Equal),
        ("+a", "+a", Equal),
        ("+a", "_a", Equal),
        ("_a", "+a", Equal),
        ("+_", "+_", Equal),
        ("_+", "+_", Equal),
        ("_+", "_+", Equal),
        ("+", "_", Equal),
        ("_", "+", Equal),
        ("1.0~rc1", "1.0~rc1", Equal),
        ("1.0~rc1", "1.0", Less),
        ("1.0", "1.0~rc1", Greater),
        ("1.0~rc1", "1.0~rc2", Less),
        ("1.0~rc2", "1.0~rc1", Greater),
        ("1.0~rc1~git123", "1.0~rc1~git123", Equal),
        ("1.0~rc1~git123", "1.0~rc1", Less),
        ("1.0~rc1", "1.0~rc1~git123", Greater),
        ("1.0^", "1.0^", Equal),
        ("1.0^", "1.0", Greater),
        ("1.0", "1.0^", Less),
        ("1.0^git1", "1.0^git1", Equal),
        ("1.0^git1", "1.0", Greater),
        ("1.0", "1.0^git1", Less),
        ("1.0^git1", "1.0^git2", Less),
        ("1.0^git2", "1.0^git1", Greater),
        ("1.0^git1", "1.01", Less),
        ("1.01", "1.0^git1", Greater),
        ("1.0^20160101", "1.0^20160101", Equal),
        ("1.0^20160101", "1.0.1", Less),
        ("1.0.1", "1.0^20160101", Greater),
        ("1.0^20160101^git1", "1.0^20160101^git1", Equal),
        ("1.0^20160102", "1.0^20160101^git1", Greater),
        ("1.0^20160101^git1", "1.0^20160102", Less),
        ("1.0~rc1^git1", "1.0~rc1^git1", Equal),
        ("1.0~rc1^git1", "1.0~rc1", Greater),
        ("1.0~rc1", "1.0~rc1^git1", Less),
        ("1.0^git1~pre", "1.0^git1~pre", Equal),
        ("1.0^git1", "1.0^git1~pre", Greater),
        ("1.0^git1~pre", "1.0^git1", Less),
    ];

    /// The rows rpm's suite keeps commented out (`dnl`) "to document current, arguably buggy
    /// behaviors": RhBug:811992, and non-ASCII characters all counting as separators.
    /// Source: github.com/rpm-software-management/rpm, tests/rpmvercmp.at.
    const RPMVERCMP_AT_ODDITIES: &[(&str, &str, Ordering)] = &[
        ("1b.fc17", "1b.fc17", Equal),
        ("1b.fc17", "1.fc17", Less),
        ("1.fc17", "1b.fc17", Greater),
        ("1g.fc17", "1g.fc17", Equal),
        ("1g.fc17", "1.fc17", Greater),
        ("1.fc17", "1g.fc17", Less),
        ("1.1.α", "1.1.α", Equal),
        ("1.1.α", "1.1.β", Equal),
        ("1.1.β", "1.1.α", Equal),
        ("1.1.αα", "1.1.α", Equal),
        ("1.1.α", "1.1.ββ", Equal),
        ("1.1.ββ", "1.1.αα", Equal),
    ];

    /// Whole-EVR comparisons from rpm's Python and Lua bindings' tests (`rpm.labelCompare`,
    /// `rpm.ver` objects), written as `[epoch:]version[-release]` strings.
    /// Sources: github.com/rpm-software-management/rpm, tests/rpmpython.at ("labelCompare",
    /// "version objects 1", "version objects 3") and tests/rpmmacro.at ("lua rpm version
    /// objects").
    const EVR_BINDINGS: &[(&str, &str, Ordering)] = &[
        ("3:1.0-1", "3:1.0-1", Equal),
        ("1.0-1", "1.1-2", Less),
        ("1.0-1", "1.1-1", Less),
        ("1.1-1", "1.0-1", Greater),
        ("1.1-1", "1.0-2", Greater),
        ("1:1.0-1", "0:1.0-1", Greater),
        ("0:1.0-1", "1:1.0-1", Less),
        ("0:1.0-1", "1.0-1", Equal),
        ("1.0-1", "2.0-1", Less),
        ("2:1.0-1", "2.0-1", Greater),
        ("1.0", "1.0", Equal),
        ("1.0", "4:1.0", Less),
        ("4:1.0", "1.5-1", Greater),
        ("1.5-1", "3:2.0-1", Less),
        ("v1.0", "v2.0", Less),
        ("v1.0", "v1.0", Equal),
        ("1:4.16-5", "4.4-1", Greater),
    ];

    #[test]
    fn rpmvercmp_at_table() {
        for &(a, b, expected) in RPMVERCMP_AT {
            check_both_ways(vercmp, a, expected, b);
            check_both_ways(compare, a, expected, b);
        }
    }

    #[test]
    fn rpmvercmp_at_oddities() {
        for &(a, b, expected) in RPMVERCMP_AT_ODDITIES {
            check_both_ways(vercmp, a, expected, b);
        }
    }

    #[test]
    fn evr_binding_table() {
        for &(a, b, expected) in EVR_BINDINGS {
            check_both_ways(compare, a, expected, b);
        }
    }

    #[test]
    fn evr_is_split_as_rpmverparse_does() {
        // (input, epoch, version, release); the first three are tests/rpmmacro.at's
        // `rpm.ver(...)` prints.
        let cases: &[(&str, Option<&str>, &str, Option<&str>)] = &[
            ("1:4.16-5", Some("1"), "4.16", Some("5")),
            ("4.16-1", None, "4.16", Some("1")),
            ("4.16", None, "4.16", None),
            (":1.0-2", Some("0"), "1.0", Some("2")),
            ("1.0-2-3", None, "1.0-2", Some("3")),
            ("a:1.0", None, "a:1.0", None),
            ("12-1:3", None, "12", Some("1:3")),
        ];
        for &(input, epoch, version, release) in cases {
            let evr = Evr::parse(input).map(|e| (e.epoch, e.version, e.release));
            assert_eq!(evr, Some((epoch, version, release)), "{input:?}");
        }
        assert!(Evr::parse("").is_none());
    }

    #[test]
    fn release_present_is_newer_than_absent() {
        check_both_ways(compare, "1.0-1", Greater, "1.0");
        check_both_ways(compare, "1.0-", Greater, "1.0");
        check_both_ways(compare, "1.0~rc1-5", Less, "1.0-1");
        check_both_ways(compare, "", Less, "~");
    }
}

//! Version ordering per packaging system, as each system's own tools compare versions.
//!
//! Every ecosystem has a module with a pure `compare(a, b) -> Ordering` that reproduces its
//! reference tool: [`dpkg`] (dpkg's `verrevcmp`), [`rpm`] (`rpmvercmp` over `[epoch:]v[-r]`),
//! [`apk`] (apk-tools' tokenizer), [`pypi`] (PEP 440 as `packaging` implements it), [`npm`]
//! (SemVer 2.0 as `node-semver` implements it) and [`gem`] (`Gem::Version#<=>`). [`compare`]
//! dispatches on [`Ecosystem`].
//!
//! # Unparseable versions
//!
//! No comparison panics, whatever the input, and each is a total order on all strings (the
//! proptests below check antisymmetry on arbitrary strings). Where the reference tool refuses a
//! version (dpkg's hard errors, PEP 440, SemVer, `Gem::Version`, rpm's empty EVR), the order is:
//!
//! 1. an unparseable version sorts **before** every parseable one — like dpkg, which treats a
//!    missing version as older than any version, and so that an unreadable installed version is
//!    never taken to be newer than a fix;
//! 2. two unparseable versions compare by their raw bytes (`str::cmp`).
//!
//! apk-tools defines an order on every string itself (it compares token by token up to the first
//! invalid token), so [`apk::compare`] applies no fallback.
//!
//! Numbers are compared by value at any length (no overflow): a 30-digit date stamp still orders
//! correctly, where some tools would wrap or lose precision.

pub mod apk;
pub mod dpkg;
pub mod gem;
pub mod npm;
pub mod pypi;
pub mod rpm;

use std::cmp::Ordering;

use crate::package::Ecosystem;

/// Compares two versions of one packaging system the way that system's own tools do.
///
/// Never panics. Versions the system would reject sort before all valid ones and among
/// themselves by their bytes (see the module documentation).
pub fn compare(ecosystem: Ecosystem, a: &str, b: &str) -> Ordering {
    match ecosystem {
        Ecosystem::Deb => dpkg::compare(a, b),
        Ecosystem::Rpm => rpm::compare(a, b),
        Ecosystem::Apk => apk::compare(a, b),
        Ecosystem::Pypi => pypi::compare(a, b),
        Ecosystem::Npm => npm::compare(a, b),
        Ecosystem::Gem => gem::compare(a, b),
    }
}

/// Whether `version` is a pre-release by its ecosystem's rules: PEP 440 `a`/`b`/`rc` or `.dev`,
/// a SemVer pre-release part, a gem version with a letter. OS package versions have no such
/// notion and are never pre-releases.
///
/// # Errors
/// When a language ecosystem cannot parse `version`.
pub fn is_prerelease(ecosystem: Ecosystem, version: &str) -> Result<bool, VersionError> {
    match ecosystem {
        Ecosystem::Pypi => pypi::Version::parse(version).map(|v| v.is_prerelease()),
        Ecosystem::Npm => npm::Version::parse(version).map(|v| v.is_prerelease()),
        Ecosystem::Gem => gem::Version::parse(version).map(|v| v.is_prerelease()),
        Ecosystem::Deb | Ecosystem::Rpm | Ecosystem::Apk => Ok(false),
    }
}

/// A version string its packaging system does not accept.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid {} version {version:?}: expected {expected}, found {found}",
    .ecosystem.as_str()
)]
pub struct VersionError {
    /// The packaging system whose rules were applied.
    pub ecosystem: Ecosystem,
    /// The version string as it was given.
    pub version: String,
    /// What the rules require at the point where parsing stopped.
    pub expected: &'static str,
    /// What was there instead.
    pub found: String,
}

impl VersionError {
    /// An error for `version`, where `expected` was required and `found` was there.
    pub(crate) fn new(
        ecosystem: Ecosystem,
        version: &str,
        expected: &'static str,
        found: impl Into<String>,
    ) -> Self {
        VersionError {
            ecosystem,
            version: version.to_owned(),
            expected,
            found: found.into(),
        }
    }
}

/// Describes what stands at the start of `rest` for an error message: the end of the string, or
/// the next few characters, quoted.
pub(crate) fn found_at(rest: &str) -> String {
    const SHOWN: usize = 12;
    match rest.char_indices().nth(SHOWN) {
        None if rest.is_empty() => "the end of the string".to_owned(),
        None => format!("{rest:?}"),
        Some((cut, _)) => format!("{:?}…", &rest[..cut]),
    }
}

/// Orders two versions of which at least one failed to parse: unparseable before parseable,
/// two unparseable ones by their bytes. `a_ok` / `b_ok` say which parsed.
pub(crate) fn fallback(a_ok: bool, b_ok: bool, a: &str, b: &str) -> Ordering {
    match (a_ok, b_ok) {
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.cmp(b),
    }
}

/// Compares two runs of ASCII digits by numeric value, at any length: leading zeros are
/// ignored, then the longer number is the larger, then the digits decide. Empty is zero.
pub(crate) fn cmp_decimal(a: &[u8], b: &[u8]) -> Ordering {
    let a = strip_zeros(a);
    let b = strip_zeros(b);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// A run of ASCII digits ordered (and equal) by numeric value, as [`cmp_decimal`] compares.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Decimal<'a>(pub(crate) &'a [u8]);

impl Ord for Decimal<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_decimal(self.0, other.0)
    }
}

impl PartialOrd for Decimal<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Decimal<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Decimal<'_> {}

/// Whether a run of ASCII digits is numerically zero (empty counts as zero).
pub(crate) fn is_zero(digits: &[u8]) -> bool {
    digits.iter().all(|&c| c == b'0')
}

/// `digits` without its leading zeros.
fn strip_zeros(digits: &[u8]) -> &[u8] {
    let start = digits
        .iter()
        .position(|&c| c != b'0')
        .unwrap_or(digits.len());
    &digits[start..]
}

/// How many ASCII digits `s` starts with.
pub(crate) fn digit_run(s: &[u8]) -> usize {
    s.iter().take_while(|c| c.is_ascii_digit()).count()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Asserts `cmp(a, b) == expected` and `cmp(b, a) == expected.reverse()`, naming the case.
    #[track_caller]
    pub(crate) fn check_both_ways(
        cmp: fn(&str, &str) -> Ordering,
        a: &str,
        expected: Ordering,
        b: &str,
    ) {
        assert_eq!(cmp(a, b), expected, "compare({a:?}, {b:?})");
        assert_eq!(cmp(b, a), expected.reverse(), "compare({b:?}, {a:?})");
    }

    /// Asserts that `sorted` is strictly increasing: every earlier entry compares less than
    /// every later one, both ways, and each equals itself.
    #[track_caller]
    pub(crate) fn check_strictly_sorted(cmp: fn(&str, &str) -> Ordering, sorted: &[&str]) {
        for (i, a) in sorted.iter().enumerate() {
            check_both_ways(cmp, a, Ordering::Equal, a);
            for b in &sorted[i + 1..] {
                check_both_ways(cmp, a, Ordering::Less, b);
            }
        }
    }

    #[test]
    fn cmp_decimal_compares_by_value_at_any_length() {
        let cases: &[(&str, Ordering, &str)] = &[
            ("", Ordering::Equal, "0"),
            ("007", Ordering::Equal, "7"),
            ("9", Ordering::Less, "10"),
            ("0010", Ordering::Greater, "9"),
            (
                "123456789012345678901234567890",
                Ordering::Greater,
                "123456789012345678901234567889",
            ),
        ];
        for &(a, expected, b) in cases {
            assert_eq!(
                cmp_decimal(a.as_bytes(), b.as_bytes()),
                expected,
                "{a} vs {b}"
            );
            assert_eq!(cmp_decimal(b.as_bytes(), a.as_bytes()), expected.reverse());
        }
    }

    #[test]
    fn dispatch_reaches_each_ecosystem() {
        // One case per ecosystem whose answer differs from a plain string comparison.
        assert_eq!(compare(Ecosystem::Deb, "1.0~rc1", "1.0"), Ordering::Less);
        assert_eq!(
            compare(Ecosystem::Rpm, "1.0^git1", "1.0"),
            Ordering::Greater
        );
        assert_eq!(compare(Ecosystem::Apk, "1.0_rc1", "1.0"), Ordering::Less);
        assert_eq!(
            compare(Ecosystem::Pypi, "1.0.dev1", "1.0a1"),
            Ordering::Less
        );
        assert_eq!(
            compare(Ecosystem::Npm, "1.0.0-rc.1", "1.0.0"),
            Ordering::Less
        );
        assert_eq!(compare(Ecosystem::Gem, "1.0.a", "1.0"), Ordering::Less);
    }

    #[test]
    fn unparseable_sorts_first_then_by_bytes() {
        // A blank inside a version is refused by dpkg, PEP 440, SemVer and Gem::Version alike.
        for eco in [
            Ecosystem::Deb,
            Ecosystem::Pypi,
            Ecosystem::Npm,
            Ecosystem::Gem,
        ] {
            assert_eq!(compare(eco, "1.0 x", "0.0.1"), Ordering::Less, "{eco:?}");
            assert_eq!(compare(eco, "0.0.1", "1.0 x"), Ordering::Greater, "{eco:?}");
            assert_eq!(compare(eco, "9 a", "1 b"), Ordering::Greater, "{eco:?}");
            assert_eq!(compare(eco, "1 b", "9 a"), Ordering::Less, "{eco:?}");
            assert_eq!(compare(eco, "1 a", "1 a"), Ordering::Equal, "{eco:?}");
        }
        assert_eq!(compare(Ecosystem::Rpm, "", "~"), Ordering::Less);
    }

    #[test]
    fn errors_say_what_was_expected_and_found() {
        let err = VersionError::new(Ecosystem::Deb, "a:1", "a numeric epoch", "\"a\"");
        assert_eq!(
            err.to_string(),
            "invalid deb version \"a:1\": expected a numeric epoch, found \"a\""
        );
        assert_eq!(found_at(""), "the end of the string");
        assert_eq!(found_at("+x"), "\"+x\"");
        assert_eq!(found_at("abcdefghijklmnop"), "\"abcdefghijkl\"…");
    }

    /// Strings that look like versions of every kind, so the proptests reach deep into each
    /// parser instead of failing at the first character.
    fn version_like() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[0-9a-zA-Z.:~^+_!-]{0,16}",
            "v?[0-9]{1,3}(\\.[0-9]{1,3}){0,3}([-_.~^+]?(a|b|rc|alpha|pre|p|post|dev|git|r)[0-9]{0,2}){0,3}(-r[0-9])?",
            "[0-9]{1,2}:[0-9.]{1,6}(-[0-9a-z.+~]{1,5})?",
        ]
    }

    proptest! {
        #[test]
        fn every_compare_is_antisymmetric_and_reflexive(a in version_like(), b in version_like()) {
            for eco in Ecosystem::ALL {
                let ab = compare(eco, &a, &b);
                let ba = compare(eco, &b, &a);
                prop_assert_eq!(ab, ba.reverse(), "{:?}: {:?} vs {:?}", eco, a, b);
                prop_assert_eq!(compare(eco, &a, &a), Ordering::Equal, "{:?}: {:?}", eco, a);
            }
        }

        #[test]
        fn every_compare_is_transitive_on_triples(
            a in version_like(),
            b in version_like(),
            c in version_like(),
        ) {
            for eco in Ecosystem::ALL {
                let mut v = [a.as_str(), b.as_str(), c.as_str()];
                v.sort_by(|x, y| compare(eco, x, y));
                prop_assert!(compare(eco, v[0], v[1]) != Ordering::Greater, "{:?}: {:?}", eco, v);
                prop_assert!(compare(eco, v[1], v[2]) != Ordering::Greater, "{:?}: {:?}", eco, v);
                prop_assert!(compare(eco, v[0], v[2]) != Ordering::Greater, "{:?}: {:?}", eco, v);
            }
        }
    }
}

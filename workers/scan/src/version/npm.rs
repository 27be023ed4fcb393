//! npm version ordering: SemVer 2.0 precedence, as `node-semver` (what npm uses) parses and
//! compares versions.
//!
//! Follows npm/node-semver's classes/semver.js in its default (strict) mode: surrounding
//! whitespace and one leading `v` are accepted, as there; the loose forms (`=1.2.3`,
//! `v 1.2.3`, `1.2.3beta`) are not, and take the fallback order of [`super`].
//!
//! One deliberate difference: numeric pre-release identifiers above 2^53 compare exactly here,
//! where node-semver converts them to JavaScript numbers and can find two different ones equal.

use std::cmp::Ordering;

use super::{VersionError, cmp_decimal, digit_run, fallback, found_at};
use crate::package::Ecosystem;

/// node-semver's longest version string (`MAX_LENGTH`).
const MAX_LENGTH: usize = 256;

/// JavaScript's `Number.MAX_SAFE_INTEGER`: node-semver refuses larger major, minor or patch.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// One dot-separated pre-release identifier.
#[derive(Clone, Debug)]
enum Identifier {
    /// Digits only (no leading zero): compares by value, before any alphanumeric identifier.
    Numeric(String),
    /// Contains a letter or `-`: compares as ASCII text.
    Alphanumeric(String),
}

/// A parsed SemVer version. Build metadata is kept out: it never affects precedence, so
/// `1.0.0+a == 1.0.0+b`.
#[derive(Clone, Debug)]
pub struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    pre: Vec<Identifier>,
}

impl Version {
    /// A version with a pre-release part (`1.0.0-beta.1`), which npm's ranges skip.
    pub fn is_prerelease(&self) -> bool {
        !self.pre.is_empty()
    }

    /// Parses `MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]` as node-semver does in strict mode:
    /// trimmed, optionally prefixed by `v`, numbers without leading zeros and at most 2^53 - 1,
    /// at most 256 characters in all.
    pub fn parse(version: &str) -> Result<Version, VersionError> {
        let err =
            |expected, found: String| VersionError::new(Ecosystem::Npm, version, expected, found);
        // node-semver measures the untrimmed string in UTF-16 code units.
        let length = version.encode_utf16().count();
        if length > MAX_LENGTH {
            return Err(err("at most 256 characters", format!("{length}")));
        }
        let trimmed = version.trim_matches(is_js_space);
        let s = trimmed.strip_prefix('v').unwrap_or(trimmed).as_bytes();

        let (major, s) = main_number(s).map_err(|(e, at)| err(e, found_at_bytes(at)))?;
        let s = dot(s).map_err(|at| err("'.' after the major version", found_at_bytes(at)))?;
        let (minor, s) = main_number(s).map_err(|(e, at)| err(e, found_at_bytes(at)))?;
        let s = dot(s).map_err(|at| err("'.' after the minor version", found_at_bytes(at)))?;
        let (patch, mut s) = main_number(s).map_err(|(e, at)| err(e, found_at_bytes(at)))?;

        let mut pre = Vec::new();
        if let Some(rest) = s.strip_prefix(b"-") {
            let (ids, after) = identifiers(rest);
            for id in ids {
                pre.push(pre_identifier(id).ok_or_else(|| {
                    err(
                        "pre-release identifiers of [0-9A-Za-z-], numeric ones without leading \
                         zeros",
                        found_identifier(id),
                    )
                })?);
            }
            s = after;
        }
        if let Some(rest) = s.strip_prefix(b"+") {
            let (ids, after) = identifiers(rest);
            if let Some(id) = ids.iter().find(|id| id.is_empty()) {
                return Err(err(
                    "build identifiers of [0-9A-Za-z-]",
                    found_identifier(id),
                ));
            }
            s = after;
        }
        if !s.is_empty() {
            return Err(err(
                "MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]",
                found_at_bytes(s),
            ));
        }
        Ok(Version {
            major,
            minor,
            patch,
            pre,
        })
    }
}

impl Ord for Version {
    /// SemVer precedence: major, minor, patch numerically; then a version without pre-release
    /// is newer than one with; then identifier by identifier (numeric before alphanumeric,
    /// numbers by value, text in ASCII order), a longer list winning over its own prefix.
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => cmp_pre(&self.pre, &other.pre),
            })
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

/// Compares two npm package versions by SemVer precedence, as `semver.compare` does.
///
/// Versions node-semver refuses sort before all valid ones, and among themselves by their
/// bytes.
pub fn compare(a: &str, b: &str) -> Ordering {
    match (Version::parse(a), Version::parse(b)) {
        (Ok(va), Ok(vb)) => va.cmp(&vb),
        (ra, rb) => fallback(ra.is_ok(), rb.is_ok(), a, b),
    }
}

/// Pre-release identifier lists compared one identifier at a time.
fn cmp_pre(a: &[Identifier], b: &[Identifier]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let order = match (x, y) {
            (Identifier::Numeric(x), Identifier::Numeric(y)) => {
                cmp_decimal(x.as_bytes(), y.as_bytes())
            }
            (Identifier::Alphanumeric(x), Identifier::Alphanumeric(y)) => x.cmp(y),
            (Identifier::Numeric(_), Identifier::Alphanumeric(_)) => Ordering::Less,
            (Identifier::Alphanumeric(_), Identifier::Numeric(_)) => Ordering::Greater,
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

/// JavaScript's `String.prototype.trim` set: Unicode White_Space without U+0085, plus U+FEFF.
fn is_js_space(c: char) -> bool {
    (c.is_whitespace() && c != '\u{85}') || c == '\u{feff}'
}

/// [`found_at`] for ASCII-checked bytes.
fn found_at_bytes(rest: &[u8]) -> String {
    found_at(&String::from_utf8_lossy(rest))
}

/// Describes an offending identifier for an error message.
fn found_identifier(id: &[u8]) -> String {
    if id.is_empty() {
        "an empty identifier".to_owned()
    } else {
        found_at_bytes(id)
    }
}

/// A value parsed from the start of a byte string and the bytes after it, or what was expected
/// and the bytes where it was not found.
type Parsed<'a, T> = Result<(T, &'a [u8]), (&'static str, &'a [u8])>;

/// A major, minor or patch number at the start of `s`, and what follows it; or what was
/// expected and where.
fn main_number(s: &[u8]) -> Parsed<'_, u64> {
    let len = digit_run(s);
    let digits = &s[..len];
    if len == 0 {
        return Err(("a number", s));
    }
    if len > 1 && digits[0] == b'0' {
        return Err(("a number without leading zeros", s));
    }
    let value = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<u64>().ok())
        .filter(|&v| v <= MAX_SAFE_INTEGER)
        .ok_or(("a number of at most 9007199254740991", s))?;
    Ok((value, &s[len..]))
}

/// `s` after its leading `.`, or `s` itself as the error position.
fn dot(s: &[u8]) -> Result<&[u8], &[u8]> {
    s.strip_prefix(b".").ok_or(s)
}

/// Splits the dot-separated identifiers (`[0-9A-Za-z-]*` each) at the start of `s` from what
/// follows them.
fn identifiers(s: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let len = s
        .iter()
        .take_while(|&&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
        .count();
    (s[..len].split(|&c| c == b'.').collect(), &s[len..])
}

/// A pre-release identifier, if valid: non-empty, numeric without leading zero or containing
/// a letter or `-`.
fn pre_identifier(id: &[u8]) -> Option<Identifier> {
    let text = std::str::from_utf8(id).ok()?.to_owned();
    if id.is_empty() {
        None
    } else if !id.iter().all(u8::is_ascii_digit) {
        Some(Identifier::Alphanumeric(text))
    } else if id.len() > 1 && id[0] == b'0' {
        None
    } else {
        Some(Identifier::Numeric(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::tests::{check_both_ways, check_strictly_sorted};
    use Ordering::{Equal, Greater};

    /// SemVer's precedence examples, each chain in increasing order.
    /// Source: github.com/semver/semver, semver.md, item 11 ("Precedence") and item 9.
    const SEMVER_ORG_SORTED: &[&[&str]] = &[
        &["1.0.0", "2.0.0", "2.1.0", "2.1.1"],
        &["1.0.0-alpha", "1.0.0"],
        &[
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
        ],
    ];

    /// SemVer's examples of build metadata (item 10), which must not affect precedence: each
    /// equals its version without the build.
    /// Source: github.com/semver/semver, semver.md, item 10.
    const SEMVER_ORG_BUILDS: &[(&str, &str)] = &[
        ("1.0.0-alpha+001", "1.0.0-alpha"),
        ("1.0.0+20130313144700", "1.0.0"),
        ("1.0.0-beta+exp.sha.5114f85", "1.0.0-beta"),
        ("1.0.0+21AF26D3----117B344092BD", "1.0.0"),
    ];

    /// SemVer's examples of valid pre-release versions (item 9).
    /// Source: github.com/semver/semver, semver.md, item 9.
    const SEMVER_ORG_VALID: &[&str] = &[
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-0.3.7",
        "1.0.0-x.7.z.92",
        "1.0.0-x-y-z.--",
    ];

    /// (greater, lesser) pairs node-semver's suite runs through `cmp`, `gt`, `lt`, `eq`, `neq`
    /// (the rows marked loose use only the `v` prefix, which strict mode accepts too).
    /// Source: github.com/npm/node-semver, test/fixtures/comparisons.js.
    const NODE_SEMVER_COMPARISONS: &[(&str, &str)] = &[
        ("0.0.0", "0.0.0-foo"),
        ("0.0.1", "0.0.0"),
        ("1.0.0", "0.9.9"),
        ("0.10.0", "0.9.0"),
        ("0.99.0", "0.10.0"),
        ("2.0.0", "1.2.3"),
        ("v0.0.0", "0.0.0-foo"),
        ("v0.0.1", "0.0.0"),
        ("v1.0.0", "0.9.9"),
        ("v0.10.0", "0.9.0"),
        ("v0.99.0", "0.10.0"),
        ("v2.0.0", "1.2.3"),
        ("0.0.0", "v0.0.0-foo"),
        ("0.0.1", "v0.0.0"),
        ("1.0.0", "v0.9.9"),
        ("0.10.0", "v0.9.0"),
        ("0.99.0", "v0.10.0"),
        ("2.0.0", "v1.2.3"),
        ("1.2.3", "1.2.3-asdf"),
        ("1.2.3", "1.2.3-4"),
        ("1.2.3", "1.2.3-4-foo"),
        ("1.2.3-5-foo", "1.2.3-5"),
        ("1.2.3-5", "1.2.3-4"),
        ("1.2.3-5-foo", "1.2.3-5-Foo"),
        ("3.0.0", "2.7.2+asdf"),
        ("1.2.3-a.10", "1.2.3-a.5"),
        ("1.2.3-a.b", "1.2.3-a.5"),
        ("1.2.3-a.b", "1.2.3-a"),
        ("1.2.3-a.b.c.10.d.5", "1.2.3-a.b.c.5.d.100"),
        ("1.2.3-r2", "1.2.3-r100"),
        ("1.2.3-r100", "1.2.3-R2"),
    ];

    /// Equal pairs of node-semver's suite that strict mode accepts (its other rows use the
    /// loose forms `=1.2.3` and `v 1.2.3`).
    /// Source: github.com/npm/node-semver, test/fixtures/equality.js.
    const NODE_SEMVER_EQUALITY: &[(&str, &str)] = &[
        ("1.2.3", "v1.2.3"),
        ("1.2.3", " v1.2.3"),
        ("1.2.3-0", "v1.2.3-0"),
        ("1.2.3-0", " v1.2.3-0"),
        ("1.2.3-1", "v1.2.3-1"),
        ("1.2.3-1", " v1.2.3-1"),
        ("1.2.3-beta", "v1.2.3-beta"),
        ("1.2.3-beta", " v1.2.3-beta"),
        ("1.2.3-beta+build", "1.2.3-beta+otherbuild"),
        ("1.2.3+build", "1.2.3+otherbuild"),
        ("  v1.2.3+build", "1.2.3+otherbuild"),
    ];

    /// Strings node-semver refuses (the string rows of its invalid-versions fixture, plus the
    /// loose forms of the equality fixture, which strict mode refuses).
    /// Source: github.com/npm/node-semver, test/fixtures/invalid-versions.js and
    /// test/fixtures/equality.js.
    const NODE_SEMVER_INVALID: &[&str] = &[
        "90071992547409910.0.0",
        "0.90071992547409910.0",
        "0.0.90071992547409910",
        "hello, world",
        "xyz",
        "=1.2.3",
        "v 1.2.3",
        "= 1.2.3",
        " =1.2.3",
        " v 1.2.3",
        " = 1.2.3-beta+otherbuild",
    ];

    #[test]
    fn semver_org_examples() {
        for sorted in SEMVER_ORG_SORTED {
            check_strictly_sorted(compare, sorted);
        }
        for &(with_build, without) in SEMVER_ORG_BUILDS {
            assert!(Version::parse(with_build).is_ok(), "{with_build:?} parses");
            check_both_ways(compare, with_build, Equal, without);
        }
        for valid in SEMVER_ORG_VALID {
            assert!(Version::parse(valid).is_ok(), "{valid:?} parses");
        }
    }

    #[test]
    fn node_semver_fixtures() {
        for &(greater, lesser) in NODE_SEMVER_COMPARISONS {
            check_both_ways(compare, greater, Greater, lesser);
        }
        for &(a, b) in NODE_SEMVER_EQUALITY {
            check_both_ways(compare, a, Equal, b);
        }
        for input in NODE_SEMVER_INVALID {
            assert!(Version::parse(input).is_err(), "{input:?} is invalid");
        }
        // invalid-versions.js: "too long".
        let too_long = format!("{}.0.0", "1".repeat(MAX_LENGTH - 1));
        assert!(Version::parse(&too_long).is_err());
    }

    #[test]
    fn strict_grammar() {
        for input in [
            "01.2.3",
            "1.02.3",
            "1.2.03",
            "1.2.3-01",
            "1.2.3-",
            "1.2.3+",
            "1.2.3-a..b",
            "1.2",
            "V1.2.3",
        ] {
            assert!(Version::parse(input).is_err(), "{input:?} is invalid");
        }
        assert!(Version::parse("9007199254740991.0.0").is_ok());
        check_both_ways(
            compare,
            "1.0.0-99999999999999999999",
            Greater,
            "1.0.0-9999999999999999999",
        );
    }

    #[test]
    fn errors_say_what_was_expected() {
        let err = Version::parse("1.2").err();
        assert_eq!(
            err.map(|e| (e.expected, e.found)),
            Some((
                "'.' after the minor version",
                "the end of the string".to_owned()
            ))
        );
    }
}

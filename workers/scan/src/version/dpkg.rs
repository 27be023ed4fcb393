//! Debian version ordering: parsing `[epoch:]upstream[-revision]` and comparing as dpkg does.
//!
//! Parsing follows dpkg's `parseversion()` (lib/dpkg/parsehelp.c); comparison follows
//! `dpkg_version_compare()` / `verrevcmp()` (lib/dpkg/version.c) and Debian Policy §5.6.12.
//!
//! dpkg sorts its findings in two classes. *Errors* (empty version, blanks inside, bad or empty
//! epoch, empty upstream version, empty revision) make dpkg refuse the version outright:
//! [`Version::parse`] rejects them. *Warnings* (upstream version not starting with a digit,
//! characters outside the allowed sets) are only reported: dpkg still installs and compares such
//! versions, and they occur in real status files, so [`Version::parse`] accepts them and
//! [`Version::parse_strict`] — for callers that want policy-conformant versions only — rejects
//! them too.

use std::cmp::Ordering;

use super::{VersionError, fallback, found_at};
use crate::package::Ecosystem;

/// The largest epoch dpkg accepts (`INT_MAX`).
const MAX_EPOCH: u32 = 2_147_483_647;

/// A parsed Debian version: `[epoch:]upstream[-revision]`.
///
/// Equality and order are dpkg's: `1.0`, `0:1.0` and `1.0-0` are equal.
#[derive(Clone, Debug)]
pub struct Version {
    epoch: u32,
    upstream: String,
    revision: String,
}

impl Version {
    /// Parses a version as dpkg does, rejecting what dpkg rejects (its errors) and accepting
    /// what it only warns about (see the module documentation). Leading and trailing blanks
    /// (space, tab) are ignored, as dpkg ignores them.
    pub fn parse(version: &str) -> Result<Version, VersionError> {
        parse_checked(version).map(|(parsed, _warning)| parsed)
    }

    /// Parses a version, also rejecting what dpkg only warns about: an upstream version that
    /// does not start with a digit, or characters outside `[A-Za-z0-9.+~-:]` in the upstream
    /// version or outside `[A-Za-z0-9.+~]` in the revision.
    pub fn parse_strict(version: &str) -> Result<Version, VersionError> {
        match parse_checked(version)? {
            (_, Some(warning)) => Err(warning),
            (parsed, None) => Ok(parsed),
        }
    }

    /// The epoch (0 when absent).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The upstream version: between the epoch's `:` and the last `-`.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// The Debian revision: after the last `-` (empty when absent, which compares like `0`).
    pub fn revision(&self) -> &str {
        &self.revision
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(self.upstream.as_bytes(), other.upstream.as_bytes()))
            .then_with(|| verrevcmp(self.revision.as_bytes(), other.revision.as_bytes()))
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

/// Compares two Debian version strings as `dpkg --compare-versions` does.
///
/// Versions [`Version::parse`] rejects sort before all valid ones, and among themselves by
/// their bytes.
pub fn compare(a: &str, b: &str) -> Ordering {
    match (Version::parse(a), Version::parse(b)) {
        (Ok(va), Ok(vb)) => va.cmp(&vb),
        (ra, rb) => fallback(ra.is_ok(), rb.is_ok(), a, b),
    }
}

/// dpkg's blanks: what it trims around a version and refuses inside one.
fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Parses `version`, returning the version and dpkg's warning about it, if any; dpkg's errors
/// are returned as `Err`.
fn parse_checked(version: &str) -> Result<(Version, Option<VersionError>), VersionError> {
    let err = |expected, found: String| VersionError::new(Ecosystem::Deb, version, expected, found);

    let trimmed = version.trim_matches(is_blank);
    if trimmed.is_empty() {
        return Err(err("a version", "an empty string".to_owned()));
    }
    if let Some(blank) = trimmed.find(is_blank) {
        return Err(err(
            "no blanks inside the version",
            format!(
                "a blank before {}",
                found_at(trimmed[blank..].trim_start_matches(is_blank))
            ),
        ));
    }

    let (epoch, rest) = match trimmed.split_once(':') {
        None => (0, trimmed),
        Some((epoch, rest)) => (parse_epoch(epoch, &err)?, rest),
    };
    if rest.is_empty() {
        return Err(err(
            "an upstream version after the epoch's ':'",
            found_at(rest),
        ));
    }

    let (upstream, revision) = match rest.rsplit_once('-') {
        None => (rest, ""),
        Some((_, "")) => {
            return Err(err("a revision after the last '-'", found_at("")));
        }
        Some(split) => split,
    };
    if upstream.is_empty() {
        return Err(err(
            "an upstream version before the last '-'",
            found_at(rest),
        ));
    }

    let warning = policy_warning(upstream, revision).map(|(expected, found)| err(expected, found));
    let parsed = Version {
        epoch,
        upstream: upstream.to_owned(),
        revision: revision.to_owned(),
    };
    Ok((parsed, warning))
}

/// Parses the text before the first `:` as an epoch, as dpkg's `strtol` call does: optional
/// leading whitespace other than blanks (blanks are refused earlier), an optional sign, then
/// decimal digits up to the `:`, with a value from 0 to `INT_MAX` (`-0` is 0).
fn parse_epoch(
    epoch: &str,
    err: &dyn Fn(&'static str, String) -> VersionError,
) -> Result<u32, VersionError> {
    let unsigned = epoch.trim_start_matches(['\n', '\u{b}', '\u{c}', '\r']);
    let (negative, digits) = match unsigned.as_bytes().first() {
        Some(b'-') => (true, &unsigned[1..]),
        Some(b'+') => (false, &unsigned[1..]),
        _ => (false, unsigned),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        let found = if epoch.is_empty() {
            "nothing".to_owned()
        } else {
            format!("{epoch:?}")
        };
        return Err(err("a number before ':' (the epoch)", found));
    }
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(0);
    }
    if negative {
        return Err(err("a non-negative epoch", format!("{epoch:?}")));
    }
    match digits.parse::<u32>() {
        Ok(value) if value <= MAX_EPOCH => Ok(value),
        _ => Err(err("an epoch of at most 2147483647", format!("{epoch:?}"))),
    }
}

/// dpkg's warnings about a version it still accepts, as (expected, found).
fn policy_warning(upstream: &str, revision: &str) -> Option<(&'static str, String)> {
    if !upstream.starts_with(|c: char| c.is_ascii_digit()) {
        return Some((
            "an upstream version starting with a digit",
            found_at(upstream),
        ));
    }
    if let Some(bad) = upstream
        .chars()
        .find(|&c| !c.is_ascii_alphanumeric() && !".-+~:".contains(c))
    {
        return Some((
            "only letters, digits and . + ~ - : in the upstream version",
            format!("{bad:?}"),
        ));
    }
    if let Some(bad) = revision
        .chars()
        .find(|&c| !c.is_ascii_alphanumeric() && !".+~".contains(c))
    {
        return Some((
            "only letters, digits and . + ~ in the revision",
            format!("{bad:?}"),
        ));
    }
    None
}

/// The weight of one character in the non-digit parts of a version: `~` below the end of the
/// part, the end below letters, letters below everything else. `None` is the end of the part.
///
/// Non-ASCII bytes weigh like other non-letters (byte + 256). dpkg computes this from a C
/// `char`, so on platforms where `char` is signed (x86) bytes ≥ 0x80 weigh between letters and
/// ASCII punctuation instead; such versions only occur after a dpkg warning.
fn weight(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

/// Whether `c` is an ASCII digit (`None`, the end, is not).
fn is_digit(c: Option<&u8>) -> bool {
    c.is_some_and(u8::is_ascii_digit)
}

/// Compares two upstream versions or two revisions: alternately the longest non-digit prefix
/// (character by character, by [`weight`]) and the longest digit prefix (by numeric value).
fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        // Non-digit parts. The weights of a digit or the end (0) never equal a non-digit's, so
        // both indices only move past real, identical characters.
        while a.get(i).is_some_and(|c| !c.is_ascii_digit())
            || b.get(j).is_some_and(|c| !c.is_ascii_digit())
        {
            let (wa, wb) = (weight(a.get(i).copied()), weight(b.get(j).copied()));
            if wa != wb {
                return wa.cmp(&wb);
            }
            i += 1;
            j += 1;
        }
        // Digit parts, by value: skip leading zeros, then the longer run wins, then the first
        // differing digit.
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while is_digit(a.get(i)) && is_digit(b.get(j)) {
            if first_diff == Ordering::Equal {
                first_diff = a.get(i).cmp(&b.get(j));
            }
            i += 1;
            j += 1;
        }
        if is_digit(a.get(i)) {
            return Ordering::Greater;
        }
        if is_digit(b.get(j)) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::tests::{check_both_ways, check_strictly_sorted};
    use Ordering::{Equal, Greater, Less};

    /// The comparison table of dpkg's Perl test suite (every row of its `__DATA__`, each checked
    /// there against `dpkg --compare-versions` too).
    /// Source: github.com/guillemj/dpkg, scripts/t/Dpkg_Version.t.
    const DPKG_VERSION_T: &[(&str, &str, Ordering)] = &[
        ("1.0-1", "2.0-2", Less),
        ("2.2~rc-4", "2.2-1", Less),
        ("2.2-1", "2.2~rc-4", Greater),
        ("1.0000-1", "1.0-1", Equal),
        ("1", "0:1", Equal),
        ("0", "0:0-0", Equal),
        ("2:2.5", "1:7.5", Greater),
        ("1:0foo", "0foo", Greater),
        ("0:0foo", "0foo", Equal),
        ("0foo", "0foo", Equal),
        ("0foo-0", "0foo", Equal),
        ("0foo", "0foo-0", Equal),
        ("0foo", "0fo", Greater),
        ("0foo-0", "0foo+", Less),
        ("0foo~1", "0foo", Less),
        ("0foo~foo+Bar", "0foo~foo+bar", Less),
        ("0foo~~", "0foo~", Less),
        ("1~", "1", Less),
        (
            "12345+that-really-is-some-ver-0",
            "12345+that-really-is-some-ver-10",
            Less,
        ),
        ("0foo-0", "0foo-01", Less),
        ("0foo.bar", "0foobar", Greater),
        ("0foo.bar", "0foo1bar", Greater),
        ("0foo.bar", "0foo0bar", Greater),
        ("0foo1bar-1", "0foobar-1", Less),
        ("0foo2.0", "0foo2", Greater),
        ("0foo2.0.0", "0foo2.10.0", Less),
        ("0foo2.0", "0foo2.0.0", Less),
        ("0foo2.0", "0foo2.10", Less),
        ("0foo2.1", "0foo2.10", Less),
        ("1.09", "1.9", Equal),
        ("1.0.8+nmu1", "1.0.8", Greater),
        ("3.11", "3.10+nmu1", Greater),
        ("0.9j-20080306-4", "0.9i-20070324-2", Greater),
        ("1.2.0~b7-1", "1.2.0~b6-1", Greater),
        ("1.011-1", "1.06-2", Greater),
        ("0.0.9+dfsg1-1", "0.0.8+dfsg1-3", Greater),
        ("4.6.99+svn6582-1", "4.6.99+svn6496-1", Greater),
        ("53", "52", Greater),
        ("0.9.9~pre122-1", "0.9.9~pre111-1", Greater),
        ("2:2.3.2-2+lenny2", "2:2.3.2-2", Greater),
        ("1:3.8.1-1", "3.8.GA-1", Greater),
        ("1.0.1+gpl-1", "1.0.1-2", Greater),
        ("1a", "1000a", Less),
    ];

    /// `dpkg_version_compare` and `dpkg_version_relate` cases of dpkg's C test suite, with its
    /// `DPKG_VERSION_OBJECT(epoch, upstream, revision)` written as strings.
    /// Source: github.com/guillemj/dpkg, lib/dpkg/t/t-version.c.
    const T_VERSION_C_COMPARE: &[(&str, &str, Ordering)] = &[
        ("1-1", "2-1", Less),
        ("1-1", "1-2", Less),
        ("0-0", "0-0", Equal),
        ("0-00", "00-0", Equal),
        ("1:2-3", "1:2-3", Equal),
        ("0:0-0", "1:0-0", Less),
        ("a-0", "b-0", Less),
        ("0-a", "0-b", Less),
        ("1-1", "1-1", Equal),
        ("2-1", "1-1", Greater),
    ];

    /// Debian Policy's examples: "the following parts are in sorted order from earliest to
    /// latest: ~~, ~~a, ~, the empty part, a" and "1.0~beta1~svn1245 sorts earlier than
    /// 1.0~beta1, which sorts earlier than 1.0".
    /// Source: Debian Policy Manual §5.6.12 "Version" (salsa.debian.org/dbnpolicy/policy,
    /// policy/ch-controlfields.rst).
    const POLICY_SORTED: &[&[&str]] = &[
        &["1.0~~", "1.0~~a", "1.0~", "1.0", "1.0a"],
        &["1.0~beta1~svn1245", "1.0~beta1", "1.0"],
    ];

    #[test]
    fn dpkg_version_t_table() {
        for &(a, b, expected) in DPKG_VERSION_T {
            assert!(
                Version::parse_strict(a).is_ok(),
                "{a:?} is valid in the table"
            );
            assert!(
                Version::parse_strict(b).is_ok(),
                "{b:?} is valid in the table"
            );
            check_both_ways(compare, a, expected, b);
        }
    }

    #[test]
    fn t_version_c_compare_table() {
        for &(a, b, expected) in T_VERSION_C_COMPARE {
            check_both_ways(compare, a, expected, b);
        }
    }

    #[test]
    fn policy_examples() {
        for sorted in POLICY_SORTED {
            check_strictly_sorted(compare, sorted);
        }
    }

    /// `parseversion` successes of t-version.c: (input, epoch, upstream, revision).
    /// Source: github.com/guillemj/dpkg, lib/dpkg/t/t-version.c, `test_version_parse`.
    const T_VERSION_C_PARSE: &[(&str, u32, &str, &str)] = &[
        ("0", 0, "0", ""),
        ("0:0", 0, "0", ""),
        ("0:0-0", 0, "0", "0"),
        ("0:0.0-0.0", 0, "0.0", "0.0"),
        ("1:0", 1, "0", ""),
        ("5:1", 5, "1", ""),
        ("0:0-0-0", 0, "0-0", "0"),
        ("0:0-0-0-0", 0, "0-0-0", "0"),
        ("0:0:0-0", 0, "0:0", "0"),
        ("0:0:0:0-0", 0, "0:0:0", "0"),
        ("0:0:0-0-0", 0, "0:0-0", "0"),
        ("0:0-0:0-0", 0, "0-0:0", "0"),
        ("0:09azAZ.-+~:-0", 0, "09azAZ.-+~:", "0"),
        ("0:0-azAZ09.+~", 0, "0", "azAZ09.+~"),
        ("  \t0:0-1", 0, "0", "1"),
        ("0:0-1\t  ", 0, "0", "1"),
        ("\t  0:0-1  \t", 0, "0", "1"),
    ];

    /// Inputs t-version.c expects `parseversion` to fail on with an error.
    const T_VERSION_C_ERRORS: &[&str] = &[
        "",
        "  ",
        "0:",
        ":1.0",
        "1.0-",
        "0:0 0-1",
        "-1:0-1",
        "999999999999999999999999:0-1",
        "a:0-0",
        "A:0-0",
        "-0",
        "0:-0",
    ];

    #[test]
    fn t_version_c_parse_table() {
        for &(input, epoch, upstream, revision) in T_VERSION_C_PARSE {
            let parsed = Version::parse_strict(input);
            let parsed = parsed
                .as_ref()
                .map(|v| (v.epoch(), v.upstream(), v.revision()));
            assert_eq!(parsed, Ok((epoch, upstream, revision)), "{input:?}");
        }
        for input in T_VERSION_C_ERRORS {
            assert!(Version::parse(input).is_err(), "{input:?} is an error");
        }
    }

    #[test]
    fn t_version_c_warnings_parse_leniently_but_not_strictly() {
        let mut warned = vec!["0:abc3-0".to_owned(), "0:0-0:0".to_owned()];
        for c in "!#@$%&/|\\<>()[]{};,_=*^'".chars() {
            warned.push(format!("0:0{c}-0"));
        }
        for c in "!#@$%&/|\\<>()[]{}:;,_=*^'".chars() {
            warned.push(format!("0:0-{c}"));
        }
        for input in &warned {
            assert!(Version::parse(input).is_ok(), "{input:?} is only a warning");
            assert!(Version::parse_strict(input).is_err(), "{input:?} warns");
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let cases: &[(&str, &str, &str)] = &[
            ("", "a version", "an empty string"),
            ("a:0-0", "a number before ':' (the epoch)", "\"a\""),
            ("-1:0-1", "a non-negative epoch", "\"-1\""),
            (
                "99999999999:1",
                "an epoch of at most 2147483647",
                "\"99999999999\"",
            ),
            (
                "0:",
                "an upstream version after the epoch's ':'",
                "the end of the string",
            ),
            (
                "1.0-",
                "a revision after the last '-'",
                "the end of the string",
            ),
            (
                "0:0 0-1",
                "no blanks inside the version",
                "a blank before \"0-1\"",
            ),
        ];
        for &(input, expected, found) in cases {
            let err = Version::parse(input).err();
            let got = err.as_ref().map(|e| (e.expected, e.found.as_str()));
            assert_eq!(got, Some((expected, found)), "{input:?}");
        }
        let warning = Version::parse_strict("0:abc3-0").err();
        assert_eq!(
            warning.map(|e| e.to_string()),
            Some(
                "invalid deb version \"0:abc3-0\": expected an upstream version starting with \
                 a digit, found \"abc3\""
                    .to_owned()
            )
        );
    }

    #[test]
    fn largest_epoch_is_accepted() {
        assert_eq!(
            Version::parse("2147483647:1").map(|v| v.epoch()),
            Ok(MAX_EPOCH)
        );
        assert!(Version::parse("2147483648:1").is_err());
        assert_eq!(Version::parse("000:1").map(|v| v.epoch()), Ok(0));
        // dpkg reads the epoch with strtol, which takes a sign (and `-0` is not negative).
        assert_eq!(Version::parse("+2:1").map(|v| v.epoch()), Ok(2));
        assert_eq!(Version::parse("-0:1").map(|v| v.epoch()), Ok(0));
        assert!(Version::parse("+:1").is_err());
    }
}

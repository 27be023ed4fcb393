//! Python version ordering: PEP 440 parsing, normalisation and comparison, as the `packaging`
//! library (what pip uses) implements them.
//!
//! Follows pypa/packaging's src/packaging/version.py: its `VERSION_PATTERN` (written here as a
//! hand parser that makes the same choices as the pattern's possessive groups) and its sort key
//! `_cmpkey`. Legacy (non-PEP 440) versions are not parsed; they take the fallback order of
//! [`super`].

use std::cmp::Ordering;

use super::{Decimal, VersionError, cmp_decimal, fallback, found_at};
use crate::package::Ecosystem;

/// What a whole version must look like, for error messages.
const SHAPE: &str = "a PEP 440 version: [N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local]";

/// A pre-release phase; the spellings `alpha`, `beta`, `c`, `pre`, `preview` normalise to these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// `a`, `alpha`.
    Alpha,
    /// `b`, `beta`.
    Beta,
    /// `rc`, `c`, `pre`, `preview`.
    Rc,
}

/// One segment of a local version label, lowercased.
#[derive(Clone, Debug)]
enum LocalSegment {
    /// All digits: compares by value, after every text segment.
    Number(String),
    /// Anything else: compares as text, before every number.
    Text(String),
}

/// A parsed PEP 440 version.
///
/// Equality and order are PEP 440's: `1.0 == 1.0.0 == v1.0 == 0!1.0`, `1.0rc1 == 1.0c1`,
/// `1.0+ABC == 1.0+abc`.
#[derive(Clone, Debug)]
pub struct Version {
    /// Digits of the epoch (`0` when absent).
    epoch: String,
    /// Digits of each release number.
    release: Vec<String>,
    /// The pre-release phase and its number.
    pre: Option<(Phase, String)>,
    /// The post-release number.
    post: Option<String>,
    /// The development-release number.
    dev: Option<String>,
    /// The local version label's segments.
    local: Option<Vec<LocalSegment>>,
}

impl Version {
    /// A pre-release or development release (`1.0a1`, `1.0rc2`, `1.0.dev3`), which pip skips
    /// unless asked.
    pub fn is_prerelease(&self) -> bool {
        self.pre.is_some() || self.dev.is_some()
    }

    /// Parses a PEP 440 version, accepting every spelling PEP 440 normalises (case, `v`
    /// prefix, separators, `alpha`/`c`/`rev`/..., implicit numbers, surrounding whitespace).
    pub fn parse(version: &str) -> Result<Version, VersionError> {
        let err = |expected, rest: &[u8]| {
            VersionError::new(
                Ecosystem::Pypi,
                version,
                expected,
                found_at(&String::from_utf8_lossy(rest)),
            )
        };
        let mut c = Cursor {
            s: version.trim_matches(is_python_space).as_bytes(),
            pos: 0,
        };

        if matches!(c.peek(), Some(b'v' | b'V')) {
            c.pos += 1;
        }

        let start = c.pos;
        let epoch = match c.digits() {
            Some(digits) if c.eat(b'!') => digits,
            _ => {
                c.pos = start;
                b"0"
            }
        };

        let Some(first) = c.digits() else {
            return Err(err("a release number", c.rest()));
        };
        let mut release = vec![text(first)];
        loop {
            let start = c.pos;
            match (c.eat(b'.'), c.digits()) {
                (true, Some(number)) => release.push(text(number)),
                _ => {
                    c.pos = start;
                    break;
                }
            }
        }

        let start = c.pos;
        c.separator();
        let pre = match c.word(&["alpha", "a", "beta", "b", "preview", "pre", "c", "rc"]) {
            Some(label) => {
                let phase = match label {
                    "alpha" | "a" => Phase::Alpha,
                    "beta" | "b" => Phase::Beta,
                    _ => Phase::Rc,
                };
                c.separator();
                Some((phase, text(c.digits().unwrap_or(b"0"))))
            }
            None => {
                c.pos = start;
                None
            }
        };

        let start = c.pos;
        let post = match (c.eat(b'-'), c.digits()) {
            (true, Some(number)) => Some(text(number)),
            _ => {
                c.pos = start;
                c.separator();
                if c.word(&["post", "rev", "r"]).is_some() {
                    c.separator();
                    Some(text(c.digits().unwrap_or(b"0")))
                } else {
                    c.pos = start;
                    None
                }
            }
        };

        let start = c.pos;
        c.separator();
        let dev = if c.word(&["dev"]).is_some() {
            c.separator();
            Some(text(c.digits().unwrap_or(b"0")))
        } else {
            c.pos = start;
            None
        };

        let local = if c.eat(b'+') {
            let mut segments = Vec::new();
            loop {
                let len = c
                    .rest()
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric())
                    .count();
                if len == 0 {
                    return Err(err(
                        "a local version label of ASCII letters and digits after '+', '.', '-' \
                         or '_'",
                        c.rest(),
                    ));
                }
                let segment = c.rest()[..len].to_ascii_lowercase();
                c.pos += len;
                segments.push(if segment.iter().all(u8::is_ascii_digit) {
                    LocalSegment::Number(text(&segment))
                } else {
                    LocalSegment::Text(text(&segment))
                });
                if !c.separator() {
                    break;
                }
            }
            Some(segments)
        } else {
            None
        };

        if !c.rest().is_empty() {
            return Err(err(SHAPE, c.rest()));
        }
        Ok(Version {
            epoch: text(epoch),
            release,
            pre,
            post,
            dev,
            local,
        })
    }

    /// The pre/post/dev part of `packaging`'s sort key: (pre rank, pre number, has post, post
    /// number, not dev, dev number). A dev release of a final release (`1.0.dev1`) ranks below
    /// all its pre-releases; a release without pre-release ranks above them.
    fn suffix_key(&self) -> (i8, Decimal<'_>, bool, Decimal<'_>, bool, Decimal<'_>) {
        let zero = Decimal(b"0");
        let (pre_rank, pre_number) = match (&self.pre, &self.post, &self.dev) {
            (None, None, Some(_)) => (-1, zero),
            (None, _, _) => (3, zero),
            (Some((phase, number)), _, _) => (*phase as i8, Decimal(number.as_bytes())),
        };
        (
            pre_rank,
            pre_number,
            self.post.is_some(),
            optional_number(&self.post),
            self.dev.is_none(),
            optional_number(&self.dev),
        )
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_decimal(self.epoch.as_bytes(), other.epoch.as_bytes())
            .then_with(|| cmp_release(&self.release, &other.release))
            .then_with(|| self.suffix_key().cmp(&other.suffix_key()))
            .then_with(|| match (&self.local, &other.local) {
                (Some(a), Some(b)) => cmp_local(a, b),
                (a, b) => a.is_some().cmp(&b.is_some()),
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

/// Compares two Python package versions by PEP 440.
///
/// Versions that are not PEP 440 sort before all valid ones, and among themselves by their
/// bytes.
pub fn compare(a: &str, b: &str) -> Ordering {
    match (Version::parse(a), Version::parse(b)) {
        (Ok(va), Ok(vb)) => va.cmp(&vb),
        (ra, rb) => fallback(ra.is_ok(), rb.is_ok(), a, b),
    }
}

/// Release numbers compared as if the shorter were padded with zeros (`1.0 == 1.0.0`).
fn cmp_release(a: &[String], b: &[String]) -> Ordering {
    (0..a.len().max(b.len()))
        .map(|i| cmp_decimal(release_number(a, i), release_number(b, i)))
        .find(|o| *o != Ordering::Equal)
        .unwrap_or(Ordering::Equal)
}

/// The `i`-th release number, zero past the end.
fn release_number(release: &[String], i: usize) -> &[u8] {
    release.get(i).map_or(b"0", |n| n.as_bytes())
}

/// A post or dev number, zero when absent (its rank already says whether it is present).
fn optional_number(number: &Option<String>) -> Decimal<'_> {
    Decimal(number.as_deref().map_or(b"0", str::as_bytes))
}

/// Local labels compared segment by segment (text before numbers), a longer label winning over
/// its own prefix.
fn cmp_local(a: &[LocalSegment], b: &[LocalSegment]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let order = match (x, y) {
            (LocalSegment::Number(x), LocalSegment::Number(y)) => {
                cmp_decimal(x.as_bytes(), y.as_bytes())
            }
            (LocalSegment::Text(x), LocalSegment::Text(y)) => x.cmp(y),
            (LocalSegment::Text(_), LocalSegment::Number(_)) => Ordering::Less,
            (LocalSegment::Number(_), LocalSegment::Text(_)) => Ordering::Greater,
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

/// Python's whitespace (`str.isspace`, what `\s` matches in `packaging`'s pattern): Unicode
/// White_Space plus the ASCII information separators U+001C..U+001F.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// ASCII bytes the parser accepted, as a `String`.
fn text(ascii: &[u8]) -> String {
    String::from_utf8_lossy(ascii).into_owned()
}

/// A position in the version being parsed.
struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// What is left to parse.
    fn rest(&self) -> &'a [u8] {
        self.s.get(self.pos..).unwrap_or_default()
    }

    /// The next byte, if any.
    fn peek(&self) -> Option<u8> {
        self.rest().first().copied()
    }

    /// Consumes `c` if it is next.
    fn eat(&mut self, c: u8) -> bool {
        let found = self.peek() == Some(c);
        if found {
            self.pos += 1;
        }
        found
    }

    /// Consumes one of PEP 440's separators `.`, `-`, `_` if one is next.
    fn separator(&mut self) -> bool {
        let found = matches!(self.peek(), Some(b'.' | b'-' | b'_'));
        if found {
            self.pos += 1;
        }
        found
    }

    /// Consumes a run of ASCII digits, if one is next.
    fn digits(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest();
        let len = super::digit_run(rest);
        self.pos += len;
        (len > 0).then(|| &rest[..len])
    }

    /// Consumes the first of `words` (lowercase) that comes next, ignoring ASCII case.
    fn word(&mut self, words: &[&'static str]) -> Option<&'static str> {
        let rest = self.rest();
        let word = words.iter().copied().find(|w| {
            rest.get(..w.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(w.as_bytes()))
        })?;
        self.pos += word.len();
        Some(word)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::tests::{check_both_ways, check_strictly_sorted};

    /// `packaging`'s master list, "in the correct sorting order"; its suite checks every pair
    /// with every operator.
    /// Source: github.com/pypa/packaging, tests/test_version.py, `VERSIONS`.
    const PACKAGING_VERSIONS: &[&str] = &[
        "1.0.dev0",
        "1.0.dev456",
        "1.0.dev456+local",
        "1.0a0",
        "1.0a0.post0.dev0",
        "1.0a0.post0",
        "1.0a1.dev1",
        "1.0a1.dev1+local",
        "1.0a1",
        "1.0a1+local",
        "1.0b0",
        "1.0b1.dev456",
        "1.0b2",
        "1.0b2.post345.dev456",
        "1.0b2.post345",
        "1.0b2-346",
        "1.0rc0",
        "1.0rc1.dev1",
        "1.0c1",
        "1.0rc2",
        "1.0",
        "1.0.post0.dev0",
        "1.0.post0",
        "1.0.post456.dev34",
        "1.0.post456",
        "1.0.post456+local",
        "1.0.1.dev1",
        "1.0.1a1",
        "1.0.1",
        "1.0.1+local",
        "1.0.1.post1",
        "1.1.dev1",
        "1.2+a",
        "1.2+abc",
        "1.2+abcdef",
        "1.2+def",
        "1.2+0",
        "1.2+1",
        "1.2+1.abc",
        "1.2+1.1",
        "1.2+1.1.0",
        "1.2+2",
        "1.2+123",
        "1.2+123456",
        "1.2.r32+123456",
        "1.2.rev33+123456",
        "1!1.0.dev0",
        "1!1.0.dev456",
        "1!1.0.dev456+local",
        "1!1.0a0",
        "1!1.0a0.post0.dev0",
        "1!1.0a0.post0",
        "1!1.0a1.dev1",
        "1!1.0a1.dev1+local",
        "1!1.0a1",
        "1!1.0a1+local",
        "1!1.0b0",
        "1!1.0b1.dev456",
        "1!1.0b2",
        "1!1.0b2.post345.dev456",
        "1!1.0b2.post345",
        "1!1.0b2-346",
        "1!1.0rc0",
        "1!1.0rc1.dev1",
        "1!1.0c1",
        "1!1.0rc2",
        "1!1.0",
        "1!1.0.post0.dev0",
        "1!1.0.post0",
        "1!1.0.post456.dev34",
        "1!1.0.post456",
        "1!1.0.post456+local",
        "1!1.0.1.dev1",
        "1!1.0.1a1",
        "1!1.0.1",
        "1!1.0.1+local",
        "1!1.0.1.post1",
        "1!1.1.dev1",
        "1!1.2+a",
        "1!1.2+abc",
        "1!1.2+abcdef",
        "1!1.2+def",
        "1!1.2+0",
        "1!1.2+1",
        "1!1.2+1.abc",
        "1!1.2+1.1",
        "1!1.2+1.1.0",
        "1!1.2+2",
        "1!1.2+123",
        "1!1.2+123456",
        "1!1.2.r32+123456",
        "1!1.2.rev33+123456",
    ];

    /// PEP 440's example "covering many of the possible combinations", in order.
    /// Source: github.com/python/peps, peps/pep-0440.rst, "Summary of permitted suffixes and
    /// relative ordering".
    const PEP_440_EXAMPLE: &[&str] = &[
        "1.dev0",
        "1.0.dev456",
        "1.0a1",
        "1.0a2.dev456",
        "1.0a12.dev456",
        "1.0a12",
        "1.0b1.dev456",
        "1.0b2",
        "1.0b2.post345.dev456",
        "1.0b2.post345",
        "1.0rc1.dev456",
        "1.0rc1",
        "1.0",
        "1.0+abc.5",
        "1.0+abc.7",
        "1.0+5",
        "1.0.post456.dev34",
        "1.0.post456",
        "1.0.15",
        "1.1.dev1",
    ];

    /// (spelling, normal form): each spelling must compare equal to its normal form.
    /// Source: github.com/pypa/packaging, tests/test_version.py, `test_normalized_versions`.
    const PACKAGING_NORMALIZED: &[(&str, &str)] = &[
        ("1.0dev", "1.0.dev0"),
        ("1.0.dev", "1.0.dev0"),
        ("1.0dev1", "1.0.dev1"),
        ("1.0-dev", "1.0.dev0"),
        ("1.0-dev1", "1.0.dev1"),
        ("1.0DEV", "1.0.dev0"),
        ("1.0.DEV", "1.0.dev0"),
        ("1.0DEV1", "1.0.dev1"),
        ("1.0.DEV1", "1.0.dev1"),
        ("1.0-DEV", "1.0.dev0"),
        ("1.0-DEV1", "1.0.dev1"),
        ("1.0a", "1.0a0"),
        ("1.0.a", "1.0a0"),
        ("1.0.a1", "1.0a1"),
        ("1.0-a", "1.0a0"),
        ("1.0-a1", "1.0a1"),
        ("1.0alpha", "1.0a0"),
        ("1.0.alpha", "1.0a0"),
        ("1.0.alpha1", "1.0a1"),
        ("1.0-alpha", "1.0a0"),
        ("1.0-alpha1", "1.0a1"),
        ("1.0A", "1.0a0"),
        ("1.0.A", "1.0a0"),
        ("1.0.A1", "1.0a1"),
        ("1.0-A", "1.0a0"),
        ("1.0-A1", "1.0a1"),
        ("1.0ALPHA", "1.0a0"),
        ("1.0.ALPHA", "1.0a0"),
        ("1.0.ALPHA1", "1.0a1"),
        ("1.0-ALPHA", "1.0a0"),
        ("1.0-ALPHA1", "1.0a1"),
        ("1.0b", "1.0b0"),
        ("1.0.b", "1.0b0"),
        ("1.0.b1", "1.0b1"),
        ("1.0-b", "1.0b0"),
        ("1.0-b1", "1.0b1"),
        ("1.0beta", "1.0b0"),
        ("1.0.beta", "1.0b0"),
        ("1.0.beta1", "1.0b1"),
        ("1.0-beta", "1.0b0"),
        ("1.0-beta1", "1.0b1"),
        ("1.0B", "1.0b0"),
        ("1.0.B", "1.0b0"),
        ("1.0.B1", "1.0b1"),
        ("1.0-B", "1.0b0"),
        ("1.0-B1", "1.0b1"),
        ("1.0BETA", "1.0b0"),
        ("1.0.BETA", "1.0b0"),
        ("1.0.BETA1", "1.0b1"),
        ("1.0-BETA", "1.0b0"),
        ("1.0-BETA1", "1.0b1"),
        ("1.0c", "1.0rc0"),
        ("1.0.c", "1.0rc0"),
        ("1.0.c1", "1.0rc1"),
        ("1.0-c", "1.0rc0"),
        ("1.0-c1", "1.0rc1"),
        ("1.0rc", "1.0rc0"),
        ("1.0.rc", "1.0rc0"),
        ("1.0.rc1", "1.0rc1"),
        ("1.0-rc", "1.0rc0"),
        ("1.0-rc1", "1.0rc1"),
        ("1.0C", "1.0rc0"),
        ("1.0.C", "1.0rc0"),
        ("1.0.C1", "1.0rc1"),
        ("1.0-C", "1.0rc0"),
        ("1.0-C1", "1.0rc1"),
        ("1.0RC", "1.0rc0"),
        ("1.0.RC", "1.0rc0"),
        ("1.0.RC1", "1.0rc1"),
        ("1.0-RC", "1.0rc0"),
        ("1.0-RC1", "1.0rc1"),
        ("1.0post", "1.0.post0"),
        ("1.0.post", "1.0.post0"),
        ("1.0post1", "1.0.post1"),
        ("1.0-post", "1.0.post0"),
        ("1.0-post1", "1.0.post1"),
        ("1.0POST", "1.0.post0"),
        ("1.0.POST", "1.0.post0"),
        ("1.0POST1", "1.0.post1"),
        ("1.0r", "1.0.post0"),
        ("1.0rev", "1.0.post0"),
        ("1.0.POST1", "1.0.post1"),
        ("1.0.r1", "1.0.post1"),
        ("1.0.rev1", "1.0.post1"),
        ("1.0-POST", "1.0.post0"),
        ("1.0-POST1", "1.0.post1"),
        ("1.0-5", "1.0.post5"),
        ("1.0-r5", "1.0.post5"),
        ("1.0-rev5", "1.0.post5"),
        ("1.0+AbC", "1.0+abc"),
        ("1.01", "1.1"),
        ("1.0a05", "1.0a5"),
        ("1.0b07", "1.0b7"),
        ("1.0c056", "1.0rc56"),
        ("1.0rc09", "1.0rc9"),
        ("1.0.post000", "1.0.post0"),
        ("1.1.dev09000", "1.1.dev9000"),
        ("00!1.2", "1.2"),
        ("0100!0.0", "100!0.0"),
        ("v1.0", "1.0"),
        ("   v1.0\t\n", "1.0"),
        ("\u{202f}1.0\t\u{2029}\n ", "1.0"),
    ];

    /// Versions `packaging` refuses.
    /// Source: github.com/pypa/packaging, tests/test_version.py, `test_invalid_versions` and
    /// `test_parse_raises`.
    const PACKAGING_INVALID: &[&str] = &[
        "lolwat",
        "french toast",
        "1.0+a+",
        "1.0++",
        "1.0+_foobar",
        "1.0+foo&asd",
        "1.0+1+1",
        "1. 0",
        "1 .0",
        "1. 0a1",
        "1 .0a1",
        "1.0 a1",
        "1.0a 1",
        "٠١٢.٣٤٥.٦٧٨٩",
        ".",
        "..",
        "1..0",
        "1.0.",
        ".1.0",
        "1..2.3",
        "1.0+\u{130}",
    ];

    #[test]
    fn packaging_versions_are_sorted() {
        check_strictly_sorted(compare, PACKAGING_VERSIONS);
    }

    #[test]
    fn pep_440_example_is_sorted() {
        check_strictly_sorted(compare, PEP_440_EXAMPLE);
    }

    #[test]
    fn packaging_normalisations_compare_equal() {
        for &(spelling, normal) in PACKAGING_NORMALIZED {
            assert!(Version::parse(spelling).is_ok(), "{spelling:?} parses");
            check_both_ways(compare, spelling, Ordering::Equal, normal);
        }
        // test_version_rc_and_c_equals
        check_both_ways(compare, "1.0rc1", Ordering::Equal, "1.0c1");
    }

    #[test]
    fn packaging_invalid_versions_are_refused() {
        for input in PACKAGING_INVALID {
            assert!(Version::parse(input).is_err(), "{input:?} is invalid");
        }
    }

    #[test]
    fn pep_440_rules_not_covered_above() {
        // "1.0-" is not a valid version and does not normalise to 1.0.post0 (PEP 440,
        // "Implicit post releases").
        assert!(Version::parse("1.0-").is_err());
        check_both_ways(compare, "1.0", Ordering::Equal, "1.0.0.0");
        check_both_ways(compare, "2!0.1", Ordering::Greater, "1!99");
        check_both_ways(compare, "1.0+ubuntu-1", Ordering::Equal, "1.0+ubuntu.1");
        check_both_ways(compare, "1.0+01", Ordering::Equal, "1.0+1");
        check_both_ways(
            compare,
            "1.99999999999999999999",
            Ordering::Less,
            "1.100000000000000000000",
        );
    }

    #[test]
    fn errors_say_where_parsing_stopped() {
        let err = Version::parse("1.0+a+").err();
        assert_eq!(
            err.map(|e| (e.expected, e.found)),
            Some((SHAPE, "\"+\"".to_owned()))
        );
        let err = Version::parse("lolwat").err();
        assert_eq!(
            err.map(|e| (e.expected, e.found)),
            Some(("a release number", "\"lolwat\"".to_owned()))
        );
    }
}

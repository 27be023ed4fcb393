//! Python distributions: the core metadata of `*.dist-info/METADATA` and `*.egg-info/PKG-INFO`
//! (RFC 822-style headers), and PEP 503 name normalisation.
//!
//! Only the header block is read: it ends at the first empty line (the description body of
//! metadata 2.1+ follows) or, as Python's own `email` parser does, at the first line that is
//! neither a header nor a continuation. Header names are case-insensitive; a line starting with a
//! space or tab continues the previous header. Lines may end in CRLF; bytes that are not UTF-8 are
//! decoded lossily, so a Latin-1 author name does not hide a package (but a name or version that
//! is not UTF-8 is an error).
//!
//! The licence, in order of preference: `License-Expression` (metadata 2.4, an SPDX expression);
//! a one-line `License` other than `UNKNOWN` (old setuptools' placeholder); the `License ::`
//! classifiers (their last segment, `MIT License`, joined with `, `); the first line of a
//! multi-line `License` (some packages paste the whole licence text there).

use super::{Declared, Mismatch, identifier};

/// Whether a file named `file` in directory `parent` (itself in `grandparent`) holds Python core
/// metadata: `<d>.dist-info/METADATA`, `<d>.egg-info/PKG-INFO`, a file `<d>.egg-info`, or
/// `<d>.egg/EGG-INFO/PKG-INFO`.
pub(super) fn is_metadata(file: &str, parent: &str, grandparent: &str) -> bool {
    match file {
        "METADATA" => has_stem(parent, ".dist-info"),
        "PKG-INFO" => {
            has_stem(parent, ".egg-info") || (parent == "EGG-INFO" && has_stem(grandparent, ".egg"))
        }
        _ => has_stem(file, ".egg-info"),
    }
}

/// Whether `name` is `<something>` + `suffix`, with something non-empty.
fn has_stem(name: &str, suffix: &str) -> bool {
    name.len() > suffix.len() && name.ends_with(suffix)
}

/// A distribution's name normalised as PEP 503 says (lowercase, each run of `-`, `_` and `.`
/// replaced by one `-`): `Slipway_Probe.Pkg` → `slipway-probe-pkg`. Names are kept as written in
/// packages; purls, OSV records, index lookups and comparisons use this form.
pub fn normalized_name(name: &str) -> String {
    let mut normalized = String::with_capacity(name.len());
    let mut in_separator_run = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_separator_run {
                normalized.push('-');
            }
            in_separator_run = true;
        } else {
            normalized.extend(c.to_lowercase());
            in_separator_run = false;
        }
    }
    normalized
}

/// Reads a METADATA / PKG-INFO file: its `Name`, `Version` and licence.
pub(super) fn parse(bytes: &[u8]) -> Result<Declared, Mismatch> {
    let headers = headers(bytes);
    let single = |name: &str| -> Result<String, Mismatch> {
        let header = headers
            .iter()
            .find(|header| header.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| Mismatch::missing(format!("a `{name}:` header")))?;
        identifier(&format!("`{name}:` value"), &header.lines.join(" "))
    };
    let name = single("Name")?;
    let version = single("Version")?;
    Ok(Declared {
        name,
        version,
        license: license(&headers),
        arch: None,
    })
}

/// One header: its name as written and its value's lines (continuations with their indentation
/// removed).
#[derive(Debug, PartialEq, Eq)]
struct Header {
    /// Field name, as written (compare case-insensitively).
    name: String,
    /// The value's first line, then one entry per continuation line.
    lines: Vec<String>,
}

/// The header block of a metadata file.
fn headers(bytes: &[u8]) -> Vec<Header> {
    let mut headers: Vec<Header> = Vec::new();
    for raw in super::without_bom(bytes).split(|&b| b == b'\n') {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.is_empty() {
            break;
        }
        let line = String::from_utf8_lossy(raw);
        if line.starts_with([' ', '\t']) {
            if let Some(current) = headers.last_mut() {
                current.lines.push(line.trim().to_owned());
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            break;
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_graphic()) {
            break;
        }
        headers.push(Header {
            name: name.to_owned(),
            lines: vec![value.trim().to_owned()],
        });
    }
    headers
}

/// The declared licence, by the order of preference in the module's documentation.
fn license(headers: &[Header]) -> Option<String> {
    let field = |name: &str| {
        headers
            .iter()
            .find(|header| header.name.eq_ignore_ascii_case(name))
            .map(|header| &header.lines)
    };
    if let Some(lines) = field("License-Expression") {
        let expression = lines.join(" ").trim().to_owned();
        if !expression.is_empty() {
            return Some(expression);
        }
    }
    let text: Vec<&str> = field("License")
        .map(|lines| {
            lines
                .iter()
                .map(|line| line.trim())
                .filter(|line| !line.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if let [one] = text.as_slice()
        && !one.eq_ignore_ascii_case("UNKNOWN")
    {
        return Some((*one).to_owned());
    }
    let classifiers = licence_classifiers(headers);
    if !classifiers.is_empty() {
        return Some(classifiers.join(", "));
    }
    match text.as_slice() {
        [first, _, ..] => Some((*first).to_owned()),
        _ => None,
    }
}

/// The licences named by `Classifier: License :: …` headers (the last segment, without the
/// uninformative `OSI Approved` and `DFSG approved`), in order, without repeats.
fn licence_classifiers(headers: &[Header]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for header in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Classifier"))
    {
        let classifier = header.lines.join(" ");
        let segments: Vec<&str> = classifier.split("::").map(str::trim).collect();
        let &[first, .., last] = segments.as_slice() else {
            continue;
        };
        if first != "License" {
            continue;
        }
        if last.is_empty() || last == "OSI Approved" || last == "DFSG approved" {
            continue;
        }
        if !names.iter().any(|known| known == last) {
            names.push(last.to_owned());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(name: &str, version: &str, license: Option<&str>) -> Result<Declared, Mismatch> {
        Ok(Declared::new(name, version, license))
    }

    /// The head of requests' wheel METADATA (metadata 2.1, body after the headers).
    const REQUESTS: &str = "Metadata-Version: 2.1
Name: requests
Version: 2.31.0
Summary: Python HTTP for Humans.
Home-page: https://requests.readthedocs.io
Author: Kenneth Reitz
Author-email: me@kennethreitz.org
License: Apache 2.0
Project-URL: Documentation, https://requests.readthedocs.io
Classifier: Development Status :: 5 - Production/Stable
Classifier: License :: OSI Approved :: Apache Software License
Requires-Python: >=3.7
Description-Content-Type: text/markdown
License-File: LICENSE
Requires-Dist: charset-normalizer (<4,>=2)
Provides-Extra: socks

# Requests

Name: not-a-header
Version: 0.0.0
";

    #[test]
    fn reads_a_wheel_metadata_and_stops_at_the_body() {
        assert_eq!(
            parse(REQUESTS.as_bytes()),
            declared("requests", "2.31.0", Some("Apache 2.0"))
        );
    }

    #[test]
    fn reads_crlf_line_endings() {
        let crlf = REQUESTS.replace('\n', "\r\n");
        assert_eq!(
            parse(crlf.as_bytes()),
            declared("requests", "2.31.0", Some("Apache 2.0"))
        );
    }

    #[test]
    fn license_expression_wins_over_license_and_classifiers() {
        // A metadata 2.4 file as written by recent setuptools / hatchling.
        let metadata = "Metadata-Version: 2.4
Name: attrs
Version: 25.3.0
License-Expression: MIT OR Apache-2.0
License: Something else
Classifier: License :: OSI Approved :: MIT License
License-File: LICENSE
";
        assert_eq!(
            parse(metadata.as_bytes()),
            declared("attrs", "25.3.0", Some("MIT OR Apache-2.0"))
        );
    }

    #[test]
    fn classifiers_replace_unknown_and_multi_line_licences() {
        // setuptools writes `UNKNOWN` when no licence was given (old versions).
        let unknown = "Metadata-Version: 1.1
Name: six
Version: 1.16.0
License: UNKNOWN
Classifier: Programming Language :: Python :: 3
Classifier: License :: OSI Approved :: MIT License
";
        assert_eq!(
            parse(unknown.as_bytes()),
            declared("six", "1.16.0", Some("MIT License"))
        );
        // A whole licence text folded into the header, as setuptools' rfc822_escape writes it.
        let folded = "Metadata-Version: 2.1
Name: Slipway-Probe.Pkg
Version: 1.2.3
License: Probe Licence
        second line
Classifier: License :: OSI Approved :: MIT License
Classifier: License :: OSI Approved :: Apache Software License
Classifier: License :: OSI Approved :: MIT License
Classifier: License :: OSI Approved
";
        assert_eq!(
            parse(folded.as_bytes()),
            declared(
                "Slipway-Probe.Pkg",
                "1.2.3",
                Some("MIT License, Apache Software License")
            )
        );
    }

    #[test]
    fn multi_line_licence_without_classifiers_gives_its_first_line() {
        let metadata = "Name: pytz\nVersion: 2023.3\nLicense: MIT License\n\n\tCopyright (c) 2003-2019 Stuart Bishop\n";
        // The blank line ends the headers: only `MIT License` is in the header.
        assert_eq!(
            parse(metadata.as_bytes()),
            declared("pytz", "2023.3", Some("MIT License"))
        );
        let metadata = "Name: pytz\nVersion: 2023.3\nLicense: The MIT License\n        \n        Copyright (c) Stuart Bishop\n";
        assert_eq!(
            parse(metadata.as_bytes()),
            declared("pytz", "2023.3", Some("The MIT License"))
        );
    }

    #[test]
    fn no_licence_at_all() {
        assert_eq!(
            parse(b"Name: x\nVersion: 1\nLicense: UNKNOWN\n"),
            declared("x", "1", None)
        );
        assert_eq!(
            parse(b"Name: x\nVersion: 1\nLicense:\n"),
            declared("x", "1", None)
        );
        assert_eq!(parse(b"Name: x\nVersion: 1\n"), declared("x", "1", None));
    }

    #[test]
    fn reads_a_distutils_pkg_info_with_folded_description() {
        // Debian's python3-apt ships a single-file `.egg-info` like this one.
        let pkg_info = "Metadata-Version: 1.1
Name: python-apt
Version: 2.6.0
Summary: Python bindings for APT
Description: This module allows you to
        |access the APT library
        |from Python.
Author: APT Development Team
License: GNU GPL
Platform: posix
";
        assert_eq!(
            parse(pkg_info.as_bytes()),
            declared("python-apt", "2.6.0", Some("GNU GPL"))
        );
    }

    #[test]
    fn header_names_are_case_insensitive_and_values_trimmed() {
        let metadata = b"metadata-version: 2.1\nNAME:   Flask\t\nversion:3.0.0\nlicense-expression: BSD-3-Clause\n";
        assert_eq!(
            parse(metadata),
            declared("Flask", "3.0.0", Some("BSD-3-Clause"))
        );
    }

    #[test]
    fn folded_name_is_unfolded() {
        assert_eq!(
            parse(b"Name: zope.\n interface\nVersion: 6.0\n"),
            declared("zope. interface", "6.0", None)
        );
    }

    #[test]
    fn non_utf8_bytes_outside_name_and_version_are_tolerated() {
        let mut metadata =
            b"Metadata-Version: 1.0\nName: pyserial\nVersion: 2.7\nAuthor: Chris Liechti\n"
                .to_vec();
        metadata.extend_from_slice(b"Maintainer: J\xfcrgen\nLicense: Python\n\nBody \xff\xfe\n");
        assert_eq!(
            parse(&metadata),
            declared("pyserial", "2.7", Some("Python"))
        );
    }

    #[test]
    fn non_utf8_name_is_an_error() {
        let error = parse(b"Name: caf\xe9\nVersion: 1.0\n");
        assert_eq!(
            error,
            Err(Mismatch::new(
                "a `Name:` value of printable UTF-8 characters on one line",
                "caf\u{FFFD}"
            ))
        );
    }

    #[test]
    fn a_byte_order_mark_is_skipped() {
        assert_eq!(
            parse(b"\xEF\xBB\xBFName: x\nVersion: 1\n"),
            declared("x", "1", None)
        );
    }

    #[test]
    fn missing_name_or_version_is_an_error() {
        assert_eq!(parse(b""), Err(Mismatch::missing("a `Name:` header")));
        assert_eq!(
            parse(b"Version: 1.0\n"),
            Err(Mismatch::missing("a `Name:` header"))
        );
        assert_eq!(
            parse(b"Name: x\n"),
            Err(Mismatch::missing("a `Version:` header"))
        );
        // Headers after the body's start are not headers.
        assert_eq!(
            parse(b"Name: x\n\nVersion: 1\n"),
            Err(Mismatch::missing("a `Version:` header"))
        );
        // Nor after a line that is not a header (Python's email parser stops there too).
        assert_eq!(
            parse(b"Name: x\nnot a header\nVersion: 1\n"),
            Err(Mismatch::missing("a `Version:` header"))
        );
        assert_eq!(
            parse(b"Name: x\nVersion:   \n"),
            Err(Mismatch::new("a non-empty `Version:` value", ""))
        );
    }

    #[test]
    fn names_are_normalized_as_pep_503_says() {
        assert_eq!(normalized_name("Slipway_Probe.Pkg"), "slipway-probe-pkg");
        assert_eq!(normalized_name("zope.interface"), "zope-interface");
        assert_eq!(normalized_name("Django"), "django");
        assert_eq!(normalized_name("a-_.-b__c"), "a-b-c");
        assert_eq!(normalized_name("ruamel.yaml.clib"), "ruamel-yaml-clib");
        assert_eq!(normalized_name(""), "");
    }

    #[test]
    fn metadata_paths() {
        assert!(is_metadata(
            "METADATA",
            "pip-23.2.1.dist-info",
            "site-packages"
        ));
        assert!(is_metadata(
            "PKG-INFO",
            "six-1.16.0.egg-info",
            "dist-packages"
        ));
        assert!(is_metadata("PKG-INFO", "EGG-INFO", "foo-1.0-py2.7.egg"));
        assert!(is_metadata(
            "python_apt-2.6.0.egg-info",
            "dist-packages",
            "python3"
        ));
        assert!(!is_metadata("METADATA", ".dist-info", "site-packages"));
        assert!(!is_metadata("PKG-INFO", "EGG-INFO", ".egg"));
        assert!(!is_metadata("PKG-INFO", "foo-1.0", "src"));
        assert!(!is_metadata(
            "RECORD",
            "pip-23.2.1.dist-info",
            "site-packages"
        ));
    }
}

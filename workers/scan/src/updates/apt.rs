//! apt repository indexes: the `InRelease` / `Release` top file (its `SHA256` list of index
//! files) and the `Packages` files it names, both in Debian's deb822 stanza format.
//!
//! # Trust
//!
//! `InRelease` is an OpenPGP clear-signed `Release`; the armour is stripped and the signature is
//! **not verified**: repositories are trusted as apt trusts a `[trusted=yes]` source. What the
//! `Release` file says is still enforced: every `Packages` file is checked against the SHA-256
//! and size it lists, so a tampered or truncated download is refused; a tampered `Release`
//! served by the repository (or by whoever sits between it and the scanner on plain HTTP) is not
//! detected. Use HTTPS to repositories you trust.

use super::index::{
    AvailablePackage, Checksum, ChecksumAlgorithm, Compression, IndexFile, ParseError, decompress,
    excerpt, read_line,
};

/// The first line of a clear-signed message.
const SIGNED_BEGIN: &str = "-----BEGIN PGP SIGNED MESSAGE-----";
/// The line that ends the signed text of a clear-signed message.
const SIGNATURE_BEGIN: &str = "-----BEGIN PGP SIGNATURE-----";

/// The names a `Packages` file may have, in order of preference (smallest download first).
pub const PACKAGES_NAMES: [&str; 3] = ["Packages.xz", "Packages.gz", "Packages"];

/// What a `Release` file says about the index files of its suite.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Release {
    /// The `SHA256` section: every file with its size and digest, paths relative to the
    /// directory holding the `Release` file.
    pub files: Vec<IndexFile>,
}

impl Release {
    /// The `Packages` file of `dir` (`main/binary-amd64`, or empty for a flat repository) the
    /// release lists, preferring `.xz`, then `.gz`, then the uncompressed file
    /// ([`PACKAGES_NAMES`]).
    pub fn packages_file(&self, dir: &str) -> Option<&IndexFile> {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{}/", dir.trim_end_matches('/'))
        };
        PACKAGES_NAMES.iter().find_map(|name| {
            let path = format!("{prefix}{name}");
            self.files.iter().find(|file| file.path == path)
        })
    }
}

/// Parses an `InRelease` (clear-signed, signature not verified) or `Release` file.
pub fn parse_release(bytes: &[u8]) -> Result<Release, ParseError> {
    let text = String::from_utf8_lossy(bytes);
    let body = strip_clearsign(&text)?;
    let mut release = Release::default();
    let mut first = true;
    for_each_stanza(
        body.as_bytes(),
        Compression::None,
        u64::MAX,
        &["SHA256"],
        |stanza| {
            // A Release file is one stanza; anything after it is not apt's business.
            if !std::mem::take(&mut first) {
                return Ok(());
            }
            if let Some(section) = stanza.get("SHA256") {
                release.files = section
                    .lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty())
                    .map(sha256_entry)
                    .collect::<Result<_, _>>()?;
            }
            Ok(())
        },
    )?;
    Ok(release)
}

/// One `<sha256> <size> <path>` line of a `SHA256` section.
fn sha256_entry(line: &str) -> Result<IndexFile, ParseError> {
    let malformed = || ParseError::Invalid {
        what: "Release SHA256 entry",
        expected: "`<sha256> <size> <path>`",
        found: excerpt(line),
    };
    let mut parts = line.split_whitespace();
    let (Some(digest), Some(size), Some(path), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let size = size.parse::<u64>().map_err(|_| malformed())?;
    Ok(IndexFile {
        path: path.to_owned(),
        size: Some(size),
        checksum: Checksum::parse(ChecksumAlgorithm::Sha256, digest)?,
    })
}

/// The signed text of an OpenPGP clear-signed message (RFC 4880 §7: armour headers dropped,
/// dash-escaping undone), or `text` itself when it is not clear-signed. The signature is not
/// checked.
pub fn strip_clearsign(text: &str) -> Result<String, ParseError> {
    let mut lines = text
        .lines()
        .enumerate()
        .skip_while(|(_, l)| l.trim().is_empty());
    match lines.next() {
        Some((_, first)) if first.trim_end() == SIGNED_BEGIN => {}
        _ => return Ok(text.to_owned()),
    }
    // Armour headers (`Hash: SHA512`) up to the first empty line.
    for (_, line) in lines.by_ref() {
        if line.trim().is_empty() {
            break;
        }
    }
    let mut body = String::with_capacity(text.len());
    for (_, line) in lines.by_ref() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim_end() == SIGNATURE_BEGIN {
            return Ok(body);
        }
        body.push_str(line.strip_prefix("- ").unwrap_or(line));
        body.push('\n');
    }
    Err(ParseError::Syntax {
        line: text.lines().count() + 1,
        expected: SIGNATURE_BEGIN,
        found: "the end of the file".to_owned(),
    })
}

/// Parses a `Packages` file, stored with `compression`, allowing at most `limit` bytes once
/// decompressed. Every stanza must have `Package` and `Version`.
pub fn parse_packages(
    file: &[u8],
    compression: Compression,
    limit: u64,
) -> Result<Vec<AvailablePackage>, ParseError> {
    let mut packages = Vec::new();
    let wanted = ["Package", "Version", "Architecture", "Source"];
    for_each_stanza(file, compression, limit, &wanted, |stanza| {
        let field = |name: &'static str| {
            stanza.get(name).ok_or(ParseError::MissingField {
                line: stanza.line,
                field: name,
            })
        };
        packages.push(AvailablePackage {
            name: field("Package")?.to_owned(),
            version: field("Version")?.to_owned(),
            arch: stanza.get("Architecture").map(str::to_owned),
            // `Source: name (version)` when the source version differs.
            source_name: stanza
                .get("Source")
                .and_then(|source| source.split_whitespace().next())
                .map(str::to_owned),
        });
        Ok(())
    })?;
    Ok(packages)
}

/// One deb822 stanza: the fields asked for, in order, multi-line values joined with `\n`.
struct Stanza {
    /// Line of its first field (1-based).
    line: usize,
    fields: Vec<(String, String)>,
}

impl Stanza {
    /// The value of field `name` (field names are case-insensitive).
    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Calls `each` with every stanza of the deb822 document in `file` (decompressed with
/// `compression`, at most `limit` bytes), reading it line by line and keeping only the `wanted`
/// fields (a `Packages` file's long descriptions are skipped, not copied).
fn for_each_stanza(
    file: &[u8],
    compression: Compression,
    limit: u64,
    wanted: &[&str],
    mut each: impl FnMut(Stanza) -> Result<(), ParseError>,
) -> Result<(), ParseError> {
    let mut reader = decompress(compression, file, limit);
    let (mut raw, mut line) = (Vec::new(), String::new());
    let mut current: Option<Stanza> = None;
    // Whether the last field line was a wanted one, so its continuation lines are kept.
    let mut keeping = false;
    let mut number = 0;
    while read_line(&mut reader, &mut raw, &mut line, compression)? {
        number += 1;
        if line.trim().is_empty() {
            if let Some(stanza) = current.take() {
                each(stanza)?;
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let Some(stanza) = current.as_mut() else {
                return Err(ParseError::Syntax {
                    line: number,
                    expected: "a field before a continuation line",
                    found: excerpt(&line),
                });
            };
            if keeping && let Some((_, value)) = stanza.fields.last_mut() {
                value.push('\n');
                value.push_str(line.trim());
            }
            continue;
        }
        let Some((name, value)) = line
            .split_once(':')
            .filter(|(name, _)| !name.is_empty() && !name.contains(char::is_whitespace))
        else {
            return Err(ParseError::Syntax {
                line: number,
                expected: "`Field: value`",
                found: excerpt(&line),
            });
        };
        let stanza = current.get_or_insert_with(|| Stanza {
            line: number,
            fields: Vec::new(),
        });
        keeping = wanted.iter().any(|w| w.eq_ignore_ascii_case(name));
        if keeping {
            stanza
                .fields
                .push((name.to_owned(), value.trim().to_owned()));
        }
    }
    match current {
        Some(stanza) => each(stanza),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::updates::index::tests::{HELLO_XZ, gzip};
    use proptest::prelude::*;

    const SHA_A: &str = "0000000000000000000000000000000000000000000000000000000000000001";
    const SHA_B: &str = "00000000000000000000000000000000000000000000000000000000000000b2";

    fn release_text() -> String {
        format!(
            "Origin: Slipway\nSuite: stable\nCodename: bookworm\nArchitectures: amd64\n\
             Components: main\nMD5Sum:\n 0123456789abcdef0123456789abcdef 12 main/binary-amd64/Packages\n\
             SHA256:\n {SHA_A}      1234 main/binary-amd64/Packages\n {SHA_B}  567 main/binary-amd64/Packages.gz\n \
             {SHA_A} 89 main/binary-arm64/Packages.xz\n"
        )
    }

    #[test]
    fn release_lists_sha256_entries() {
        let release = parse_release(release_text().as_bytes()).unwrap();
        assert_eq!(release.files.len(), 3);
        assert_eq!(
            release.files[1],
            IndexFile {
                path: "main/binary-amd64/Packages.gz".to_owned(),
                size: Some(567),
                checksum: Checksum::parse(ChecksumAlgorithm::Sha256, SHA_B).unwrap(),
            }
        );
        // .gz preferred over the uncompressed file; .xz where there is one.
        assert_eq!(
            release.packages_file("main/binary-amd64").unwrap().path,
            "main/binary-amd64/Packages.gz"
        );
        assert_eq!(
            release.packages_file("main/binary-arm64/").unwrap().path,
            "main/binary-arm64/Packages.xz"
        );
        assert_eq!(release.packages_file("contrib/binary-amd64"), None);
        assert_eq!(release.packages_file(""), None);
    }

    #[test]
    fn flat_release_names_files_without_a_directory() {
        let text = format!("SHA256:\n {SHA_A} 10 Packages\n {SHA_B} 20 Packages.xz\n");
        let release = parse_release(text.as_bytes()).unwrap();
        assert_eq!(release.packages_file("").unwrap().path, "Packages.xz");
    }

    #[test]
    fn inrelease_armour_is_stripped_and_dash_escaping_undone() {
        let signed = format!(
            "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n{}- -dashed: line\n\
             -----BEGIN PGP SIGNATURE-----\n\niQIzBAEBCgAdFiEE\n=abcd\n-----END PGP SIGNATURE-----\n",
            release_text()
        );
        let body = strip_clearsign(&signed).unwrap();
        assert!(body.starts_with("Origin: Slipway\n"), "{body}");
        assert!(body.ends_with("\n-dashed: line\n"), "{body}");
        assert!(!body.contains("PGP"));
        assert_eq!(
            parse_release(signed.as_bytes()).unwrap(),
            parse_release(release_text().as_bytes()).unwrap()
        );
        // Not signed: as is.
        assert_eq!(strip_clearsign("Suite: x\n").unwrap(), "Suite: x\n");
        // Cut before the signature.
        assert!(matches!(
            strip_clearsign("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nSuite: x\n"),
            Err(ParseError::Syntax { line: 5, .. })
        ));
    }

    #[test]
    fn malformed_sha256_entries_are_errors() {
        for bad in [
            format!("SHA256:\n {SHA_A} 12\n"),
            format!("SHA256:\n {SHA_A} twelve Packages\n"),
            "SHA256:\n abc 12 Packages\n".to_owned(),
            format!("SHA256:\n {SHA_A} 12 Packages extra\n"),
        ] {
            assert!(parse_release(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    const PACKAGES: &str = "Package: hello\nVersion: 2.10-3\nArchitecture: amd64\n\
        Description: says hello\n multi-line\n .\n description\n\n\
        package: libfoo1\nsource: foo (1:2.0-1)\nversion: 1:2.0-1+b1\narchitecture: amd64\n\n\n\
        Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\nSource: tzdata\n";

    #[test]
    fn packages_stanzas_are_read() {
        let packages = parse_packages(PACKAGES.as_bytes(), Compression::None, u64::MAX).unwrap();
        assert_eq!(
            packages,
            vec![
                AvailablePackage {
                    name: "hello".into(),
                    version: "2.10-3".into(),
                    arch: Some("amd64".into()),
                    source_name: None,
                },
                AvailablePackage {
                    name: "libfoo1".into(),
                    version: "1:2.0-1+b1".into(),
                    arch: Some("amd64".into()),
                    source_name: Some("foo".into()),
                },
                AvailablePackage {
                    name: "tzdata".into(),
                    version: "2024a-0+deb12u1".into(),
                    arch: Some("all".into()),
                    source_name: Some("tzdata".into()),
                },
            ]
        );
        let crlf = PACKAGES.replace('\n', "\r\n");
        assert_eq!(
            parse_packages(crlf.as_bytes(), Compression::None, u64::MAX).unwrap(),
            packages
        );
        let gz = gzip(PACKAGES.as_bytes());
        assert_eq!(
            parse_packages(&gz, Compression::Gzip, u64::MAX).unwrap(),
            packages
        );
    }

    #[test]
    fn packages_errors_say_where() {
        assert_eq!(
            parse_packages(b"Package: a\n\nVersion: 1\n", Compression::None, 100),
            Err(ParseError::MissingField {
                line: 1,
                field: "Version"
            })
        );
        assert_eq!(
            parse_packages(b"Package: a\nno colon here\n", Compression::None, 100),
            Err(ParseError::Syntax {
                line: 2,
                expected: "`Field: value`",
                found: "no colon here".into()
            })
        );
        assert!(matches!(
            parse_packages(b" continued\n", Compression::None, 100),
            Err(ParseError::Syntax { line: 1, .. })
        ));
        assert_eq!(
            parse_packages(PACKAGES.as_bytes(), Compression::None, 10),
            Err(ParseError::TooLarge { limit: 10 })
        );
        // Valid xz of a text that is not a Packages file.
        assert!(matches!(
            parse_packages(HELLO_XZ, Compression::Xz, 100),
            Err(ParseError::Syntax { line: 1, .. })
        ));
    }

    proptest! {
        #[test]
        fn release_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_release(&bytes);
        }

        #[test]
        fn release_mutations_never_panic(
            cut in 0usize..600,
            at in 0usize..600,
            byte in any::<u8>(),
        ) {
            let signed = format!(
                "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n{}-----BEGIN PGP SIGNATURE-----\n",
                release_text()
            );
            let mut bytes = signed.into_bytes();
            if let Some(b) = bytes.get_mut(at) {
                *b = byte;
            }
            bytes.truncate(cut);
            let _ = parse_release(&bytes);
        }

        #[test]
        fn packages_parsing_never_panics(
            text in "([A-Za-z]{0,8}:? ?[ -~]{0,12}\n){0,20}",
            gzipped in any::<bool>(),
        ) {
            let (file, compression) = if gzipped {
                (gzip(text.as_bytes()), Compression::Gzip)
            } else {
                (text.clone().into_bytes(), Compression::None)
            };
            let _ = parse_packages(&file, compression, 10_000);
        }

        #[test]
        fn compressed_garbage_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            xz in any::<bool>(),
        ) {
            let compression = if xz { Compression::Xz } else { Compression::Gzip };
            let _ = parse_packages(&bytes, compression, 10_000);
        }
    }
}

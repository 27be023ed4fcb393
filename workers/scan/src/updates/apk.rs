//! Alpine repository indexes: `APKINDEX.tar.gz`, a gzip'd tar holding the text file `APKINDEX`
//! (one stanza of `X:value` lines per package: `P` name, `V` version, `A` arch, `o` origin).
//!
//! Alpine's own indexes are two gzip streams concatenated: first a tar member `.SIGN.RSA.*`
//! holding the signature, then `DESCRIPTION` and `APKINDEX`. The signature is skipped and
//! **not verified** (repositories are trusted as configured); there is no checksum above the
//! index either, so the download is only as trustworthy as the connection (use HTTPS).

use std::io::Read;

use super::index::{AvailablePackage, Compression, ParseError, decompress, excerpt};
use crate::os::apk::{StanzaLine, stanza_lines};

/// The index member of the archive.
const INDEX_MEMBER: &str = "APKINDEX";

/// Parses an `APKINDEX.tar.gz`, allowing at most `limit` bytes once decompressed.
pub fn parse_apkindex(file: &[u8], limit: u64) -> Result<Vec<AvailablePackage>, ParseError> {
    let compression = Compression::Gzip;
    let archive_error = |found: String| ParseError::Archive {
        expected: "a tar archive holding APKINDEX",
        found,
    };
    let read_error = |e: std::io::Error| match ParseError::from_read(compression, &e) {
        ParseError::Decompress { message, .. } => archive_error(message),
        other => other,
    };
    let mut archive = tar::Archive::new(decompress(compression, file, limit));
    let mut seen = Vec::new();
    for entry in archive.entries().map_err(read_error)? {
        let mut entry = entry.map_err(read_error)?;
        let path = entry
            .path()
            .map_err(read_error)?
            .to_string_lossy()
            .into_owned();
        if path.trim_start_matches("./") != INDEX_MEMBER {
            seen.push(path);
            continue;
        }
        let mut text = Vec::new();
        entry.read_to_end(&mut text).map_err(read_error)?;
        return parse_index_text(&String::from_utf8_lossy(&text));
    }
    Err(ParseError::Archive {
        expected: "a member named APKINDEX",
        found: if seen.is_empty() {
            "no member".to_owned()
        } else {
            excerpt(&seen.join(", "))
        },
    })
}

/// Parses the text of an `APKINDEX` member. Every stanza needs `P:` and `V:`.
pub fn parse_index_text(text: &str) -> Result<Vec<AvailablePackage>, ParseError> {
    let mut packages = Vec::new();
    let mut draft = Draft::default();
    for entry in stanza_lines(text) {
        match entry.map_err(|(line, text)| ParseError::Syntax {
            line,
            expected: "`X:value`",
            found: excerpt(text),
        })? {
            StanzaLine::Field { key, value, .. } => {
                let slot = match key {
                    b'P' => &mut draft.name,
                    b'V' => &mut draft.version,
                    b'A' => &mut draft.arch,
                    b'o' => &mut draft.origin,
                    _ => continue,
                };
                *slot = Some(value.to_owned());
            }
            StanzaLine::End { start } => packages.push(std::mem::take(&mut draft).finish(start)?),
        }
    }
    Ok(packages)
}

/// A package stanza being read.
#[derive(Default)]
struct Draft {
    name: Option<String>,
    version: Option<String>,
    arch: Option<String>,
    origin: Option<String>,
}

impl Draft {
    fn finish(self, line: usize) -> Result<AvailablePackage, ParseError> {
        let missing = |field| ParseError::MissingField { line, field };
        Ok(AvailablePackage {
            name: self.name.ok_or_else(|| missing("P:"))?,
            version: self.version.ok_or_else(|| missing("V:"))?,
            arch: self.arch,
            source_name: self.origin,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::updates::index::tests::gzip;
    use proptest::prelude::*;

    const INDEX: &str = "C:Q1abcdefghijklmnopqrstuvwxyz0=\nP:musl\nV:1.2.4-r2\nA:x86_64\nS:383152\n\
        I:622592\nT:the musl c library\no:musl\nm:Maintainer <m@example.org>\nt:1700000000\n\
        D:so:libc.musl-x86_64.so.1\n\nP:ca-certificates-bundle\nV:20240226-r0\nA:noarch\n\
        o:ca-certificates\n";

    /// A tar holding `members`, with or without its end-of-archive blocks.
    fn tar(members: &[(&str, &[u8])], finish: bool) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in members {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, *data).unwrap();
        }
        let mut bytes = builder.into_inner().unwrap();
        if !finish {
            bytes.truncate(bytes.len() - 1024);
        }
        bytes
    }

    /// An index as Alpine signs them: the signature's tar (no end blocks) gzip'd, then the
    /// index's tar gzip'd, concatenated.
    fn signed_index(text: &str) -> Vec<u8> {
        let mut file = gzip(&tar(&[(".SIGN.RSA.alpine-devel.rsa.pub", b"sig")], false));
        file.extend(gzip(&tar(
            &[("DESCRIPTION", b"v3.19"), ("APKINDEX", text.as_bytes())],
            true,
        )));
        file
    }

    fn expected() -> Vec<AvailablePackage> {
        vec![
            AvailablePackage {
                name: "musl".into(),
                version: "1.2.4-r2".into(),
                arch: Some("x86_64".into()),
                source_name: Some("musl".into()),
            },
            AvailablePackage {
                name: "ca-certificates-bundle".into(),
                version: "20240226-r0".into(),
                arch: Some("noarch".into()),
                source_name: Some("ca-certificates".into()),
            },
        ]
    }

    #[test]
    fn signed_and_unsigned_indexes_are_read() {
        assert_eq!(
            parse_apkindex(&signed_index(INDEX), u64::MAX).unwrap(),
            expected()
        );
        let unsigned = gzip(&tar(&[("APKINDEX", INDEX.as_bytes())], true));
        assert_eq!(parse_apkindex(&unsigned, u64::MAX).unwrap(), expected());
    }

    #[test]
    fn archive_errors_say_what_is_missing() {
        let no_index = gzip(&tar(&[("DESCRIPTION", b"x")], true));
        assert_eq!(
            parse_apkindex(&no_index, u64::MAX),
            Err(ParseError::Archive {
                expected: "a member named APKINDEX",
                found: "DESCRIPTION".into()
            })
        );
        assert!(matches!(
            parse_apkindex(b"not gzip at all", u64::MAX),
            Err(ParseError::Archive { .. })
        ));
        assert_eq!(
            parse_apkindex(&signed_index(INDEX), 600),
            Err(ParseError::TooLarge { limit: 600 })
        );
    }

    #[test]
    fn stanza_errors_say_where() {
        assert_eq!(
            parse_index_text("P:a\nV:1\n\nP:b\n"),
            Err(ParseError::MissingField {
                line: 4,
                field: "V:"
            })
        );
        assert!(matches!(
            parse_index_text("P:a\nnot a field\n"),
            Err(ParseError::Syntax { line: 2, .. })
        ));
    }

    proptest! {
        #[test]
        fn index_text_never_panics(text in "([PVAoC]?:?[ -~]{0,10}\n){0,12}") {
            let _ = parse_index_text(&text);
        }

        #[test]
        fn archive_mutations_never_panic(at in 0usize..4000, byte in any::<u8>(), cut in 0usize..4000) {
            let mut file = signed_index(INDEX);
            if let Some(b) = file.get_mut(at) {
                *b = byte;
            }
            file.truncate(cut);
            let _ = parse_apkindex(&file, 1 << 20);
        }
    }
}

//! yum/dnf repository metadata: `repodata/repomd.xml` (where the `primary` metadata is and its
//! checksum) and `primary.xml` (every package's name, architecture and epoch/version/release).
//!
//! Read with quick-xml as a stream of events, element names compared without their namespace
//! prefix. `repomd.xml` is trusted as it comes (its optional `repomd.xml.asc` signature is not
//! fetched); the primary file is checked against the checksum it names.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::index::{
    AvailablePackage, Checksum, ChecksumAlgorithm, Compression, IndexFile, ParseError, decompress,
    excerpt,
};

/// What `repomd.xml` says about the primary metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoMd {
    /// The primary file: `location href` relative to the repository's base URL, its `size`
    /// when given, and its `checksum` (of the file as stored, compressed).
    pub primary: IndexFile,
}

/// Parses `repomd.xml`. The `primary` data must name a location and a sha256 or sha512
/// checksum.
pub fn parse_repomd(bytes: &[u8]) -> Result<RepoMd, ParseError> {
    let mut reader = Reader::from_reader(bytes);
    reader.config_mut().trim_text(true);
    let mut buf = Vec::new();
    let mut in_primary = false;
    let mut text: Option<(Field, String)> = None;
    let (mut href, mut checksum_type, mut checksum, mut size) = (None, None, None, None);
    loop {
        let position = reader.buffer_position();
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| xml_error(position, e))?;
        match event {
            Event::Start(element) | Event::Empty(element)
                if local_name(&element) == "data" && !in_primary =>
            {
                in_primary = attribute(&element, "type", position)?.as_deref() == Some("primary");
            }
            Event::Start(element) if in_primary => match local_name(&element) {
                "checksum" => {
                    checksum_type = attribute(&element, "type", position)?;
                    text = Some((Field::Checksum, String::new()));
                }
                "size" => text = Some((Field::Size, String::new())),
                "location" => href = attribute(&element, "href", position)?,
                _ => {}
            },
            Event::Empty(element) if in_primary && local_name(&element) == "location" => {
                href = attribute(&element, "href", position)?;
            }
            Event::End(element) if in_primary => match element.local_name().as_ref() {
                "data" => break,
                "checksum" | "size" => match text.take() {
                    Some((Field::Checksum, value)) => checksum = Some(value),
                    Some((Field::Size, value)) => size = Some(value),
                    None => {}
                },
                _ => {}
            },
            ref other @ (Event::Text(_) | Event::CData(_) | Event::GeneralRef(_)) => {
                if let Some((_, value)) = text.as_mut() {
                    push_text(value, other, position)?;
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    let missing = |expected| ParseError::Xml {
        position: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
        expected,
        found: "none".to_owned(),
    };
    if !in_primary {
        return Err(missing("a <data type=\"primary\"> element"));
    }
    let href = href.ok_or_else(|| missing("a <location href> in the primary data"))?;
    let algorithm = match checksum_type.as_deref() {
        Some("sha256") => ChecksumAlgorithm::Sha256,
        Some("sha512") => ChecksumAlgorithm::Sha512,
        other => {
            return Err(ParseError::Invalid {
                what: "primary checksum type",
                expected: "sha256 or sha512",
                found: other.map_or_else(|| "none".to_owned(), excerpt),
            });
        }
    };
    let checksum = checksum.ok_or_else(|| missing("a <checksum> in the primary data"))?;
    let size = size
        .map(|s| {
            s.trim().parse::<u64>().map_err(|_| ParseError::Invalid {
                what: "primary size",
                expected: "a number of bytes",
                found: excerpt(&s),
            })
        })
        .transpose()?;
    Ok(RepoMd {
        primary: IndexFile {
            path: href,
            size,
            checksum: Checksum::parse(algorithm, checksum.trim())?,
        },
    })
}

/// The repomd.xml element whose text is being collected.
#[derive(Clone, Copy)]
enum Field {
    Checksum,
    Size,
}

/// Parses a `primary.xml` file stored with `compression`, allowing at most `limit` bytes once
/// decompressed. Source packages (`arch` `src`/`nosrc`) are left out. The version is
/// `[epoch:]ver-rel`, the epoch omitted when it is `0` or absent, as rpm prints it.
pub fn parse_primary(
    file: &[u8],
    compression: Compression,
    limit: u64,
) -> Result<Vec<AvailablePackage>, ParseError> {
    let mut reader = Reader::from_reader(decompress(compression, file, limit));
    reader.config_mut().trim_text(true);
    let mut buf = Vec::new();
    let mut packages = Vec::new();
    // Depth of the current element; `Some(depth)` of the open <package>.
    let mut depth = 0usize;
    let mut package: Option<(usize, Draft)> = None;
    let mut text: Option<(PackageField, String)> = None;
    loop {
        let position = reader.buffer_position();
        let event = match reader.read_event_into(&mut buf) {
            Ok(event) => event,
            Err(quick_xml::Error::Io(e)) => return Err(ParseError::from_read(compression, &e)),
            Err(e) => return Err(xml_error(position, e)),
        };
        match event {
            Event::Start(element) => {
                depth += 1;
                let child_of_package = matches!(package, Some((open, _)) if depth == open + 1);
                match local_name(&element) {
                    "package" if package.is_none() => package = Some((depth, Draft::default())),
                    "name" if child_of_package => text = Some((PackageField::Name, String::new())),
                    "arch" if child_of_package => text = Some((PackageField::Arch, String::new())),
                    "version" if child_of_package => {
                        take_version(&mut package, &element, position)?
                    }
                    _ => {}
                }
            }
            Event::Empty(element)
                if matches!(package, Some((open, _)) if depth == open)
                    && local_name(&element) == "version" =>
            {
                take_version(&mut package, &element, position)?;
            }
            Event::End(_) => {
                if let Some((field, value)) = text.take()
                    && let Some((_, draft)) = package.as_mut()
                {
                    match field {
                        PackageField::Name => draft.name = Some(value),
                        PackageField::Arch => draft.arch = Some(value),
                    }
                }
                if let Some((open, draft)) = package.take_if(|(open, _)| *open == depth)
                    && let Some(available) = draft.finish(open, position)?
                {
                    packages.push(available);
                }
                depth = depth.saturating_sub(1);
            }
            ref other @ (Event::Text(_) | Event::CData(_) | Event::GeneralRef(_)) => {
                if let Some((_, value)) = text.as_mut() {
                    push_text(value, other, position)?;
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(packages)
}

/// Records the `<version epoch ver rel/>` attributes in the open package.
fn take_version(
    package: &mut Option<(usize, Draft)>,
    element: &BytesStart<'_>,
    position: u64,
) -> Result<(), ParseError> {
    if let Some((_, draft)) = package.as_mut() {
        draft.epoch = attribute(element, "epoch", position)?;
        draft.ver = attribute(element, "ver", position)?;
        draft.rel = attribute(element, "rel", position)?;
    }
    Ok(())
}

/// The primary.xml element whose text is being collected.
#[derive(Clone, Copy)]
enum PackageField {
    Name,
    Arch,
}

/// A `<package>` being read.
#[derive(Default)]
struct Draft {
    name: Option<String>,
    arch: Option<String>,
    epoch: Option<String>,
    ver: Option<String>,
    rel: Option<String>,
}

impl Draft {
    /// The package, or `None` for a source package; an error when the name or version is
    /// missing.
    fn finish(self, depth: usize, position: u64) -> Result<Option<AvailablePackage>, ParseError> {
        let missing = |expected| ParseError::Xml {
            position,
            expected,
            found: format!("a <package> (depth {depth}) without it"),
        };
        if matches!(self.arch.as_deref(), Some("src" | "nosrc")) {
            return Ok(None);
        }
        let name = self.name.ok_or_else(|| missing("a <name>"))?;
        let ver = self.ver.ok_or_else(|| missing("a <version ver=…>"))?;
        let mut version = match self.epoch.as_deref() {
            Some(epoch) if !epoch.is_empty() && epoch.bytes().any(|b| b != b'0') => {
                format!("{epoch}:{ver}")
            }
            _ => ver,
        };
        if let Some(rel) = self.rel.filter(|rel| !rel.is_empty()) {
            version.push('-');
            version.push_str(&rel);
        }
        Ok(Some(AvailablePackage {
            name,
            version,
            arch: self.arch,
            source_name: None,
        }))
    }
}

/// The element's name without its namespace prefix (`rpm:entry` → `entry`).
fn local_name<'a>(element: &'a BytesStart<'_>) -> &'a str {
    let name = element.name().0;
    name.rsplit(':').next().unwrap_or(name)
}

/// The value of attribute `name`, entities resolved; `None` when absent.
fn attribute(
    element: &BytesStart<'_>,
    name: &str,
    position: u64,
) -> Result<Option<String>, ParseError> {
    let bad = |found: String| ParseError::Xml {
        position,
        expected: "well-formed attributes",
        found,
    };
    let Some(attribute) = element
        .try_get_attribute(name)
        .map_err(|e| bad(e.to_string()))?
    else {
        return Ok(None);
    };
    attribute
        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
        .map(|value| Some(value.into_owned()))
        .map_err(|e| bad(e.to_string()))
}

/// Appends the text of a text, CDATA or entity-reference event to `value`.
fn push_text(value: &mut String, event: &Event<'_>, position: u64) -> Result<(), ParseError> {
    match event {
        Event::Text(text) => value.push_str(&text.xml10_content()),
        Event::CData(data) => value.push_str(data),
        Event::GeneralRef(reference) => {
            let resolved = match reference.resolve_char_ref() {
                Ok(Some(c)) => Some(c.to_string()),
                Ok(None) => {
                    quick_xml::escape::resolve_predefined_entity(reference).map(str::to_owned)
                }
                Err(_) => None,
            };
            let Some(resolved) = resolved else {
                return Err(ParseError::Xml {
                    position,
                    expected: "a character reference or one of XML's predefined entities",
                    found: format!("&{};", excerpt(reference)),
                });
            };
            value.push_str(&resolved);
        }
        _ => {}
    }
    Ok(())
}

/// A quick-xml error at `position` as a [`ParseError`].
fn xml_error(position: u64, error: quick_xml::Error) -> ParseError {
    ParseError::Xml {
        position,
        expected: "well-formed XML",
        found: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::updates::index::tests::gzip;
    use proptest::prelude::*;

    const SHA: &str = "a3f1e8c8a4c5b3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8";

    fn repomd(checksum_type: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">
  <revision>1700000000</revision>
  <data type="filelists">
    <checksum type="sha256">{SHA}</checksum>
    <location href="repodata/filelists.xml.gz"/>
    <size>999</size>
  </data>
  <data type="primary">
    <checksum type="{checksum_type}">{SHA}</checksum>
    <open-checksum type="sha256">ffff</open-checksum>
    <location href="repodata/primary.xml.gz"/>
    <timestamp>1700000000</timestamp>
    <size>1234</size>
    <open-size>5678</open-size>
  </data>
</repomd>
"#
        )
    }

    #[test]
    fn repomd_names_the_primary_file() {
        let md = parse_repomd(repomd("sha256").as_bytes()).unwrap();
        assert_eq!(
            md.primary,
            IndexFile {
                path: "repodata/primary.xml.gz".into(),
                size: Some(1234),
                checksum: Checksum::parse(ChecksumAlgorithm::Sha256, SHA).unwrap(),
            }
        );
    }

    #[test]
    fn repomd_refuses_weak_or_missing_checksums() {
        assert!(matches!(
            parse_repomd(repomd("sha").as_bytes()),
            Err(ParseError::Invalid {
                what: "primary checksum type",
                ..
            })
        ));
        assert!(matches!(
            parse_repomd(repomd("sha512").as_bytes()),
            Err(ParseError::Invalid { what: "sha512", .. })
        ));
        let no_primary = repomd("sha256").replace("\"primary\"", "\"other\"");
        assert!(matches!(
            parse_repomd(no_primary.as_bytes()),
            Err(ParseError::Xml { .. })
        ));
        assert!(matches!(
            parse_repomd(b"<repomd><data type=\"primary\"></dat></repomd>"),
            Err(ParseError::Xml { .. })
        ));
    }

    const PRIMARY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="4">
<package type="rpm">
  <name>bash</name>
  <arch>x86_64</arch>
  <version epoch="0" ver="5.1.8" rel="9.el9"/>
  <checksum type="sha256" pkgid="YES">abc</checksum>
  <summary>The GNU Bourne Again shell</summary>
  <format>
    <rpm:license>GPLv3+</rpm:license>
    <rpm:sourcerpm>bash-5.1.8-9.el9.src.rpm</rpm:sourcerpm>
    <rpm:provides>
      <rpm:entry name="bash" flags="EQ" epoch="0" ver="5.1.8" rel="9.el9"/>
    </rpm:provides>
    <file>/usr/bin/bash</file>
  </format>
</package>
<package type="rpm">
  <name>perl&#45;Foo&amp;Bar</name>
  <arch>noarch</arch>
  <version epoch="2" ver="1.0" rel="3"></version>
  <format><rpm:entry name="not-the-name"/><name>nested-not-the-name</name></format>
</package>
<package type="rpm">
  <name>bash</name>
  <arch>src</arch>
  <version epoch="0" ver="5.1.8" rel="9.el9"/>
</package>
<package type="rpm">
  <name><![CDATA[tzdata]]></name>
  <arch>noarch</arch>
  <version ver="2024a" rel=""/>
</package>
</metadata>
"#;

    #[test]
    fn primary_packages_are_read() {
        let expected = vec![
            AvailablePackage {
                name: "bash".into(),
                version: "5.1.8-9.el9".into(),
                arch: Some("x86_64".into()),
                source_name: None,
            },
            AvailablePackage {
                name: "perl-Foo&Bar".into(),
                version: "2:1.0-3".into(),
                arch: Some("noarch".into()),
                source_name: None,
            },
            AvailablePackage {
                name: "tzdata".into(),
                version: "2024a".into(),
                arch: Some("noarch".into()),
                source_name: None,
            },
        ];
        assert_eq!(
            parse_primary(PRIMARY.as_bytes(), Compression::None, u64::MAX).unwrap(),
            expected
        );
        assert_eq!(
            parse_primary(&gzip(PRIMARY.as_bytes()), Compression::Gzip, u64::MAX).unwrap(),
            expected
        );
    }

    #[test]
    fn primary_errors() {
        let no_version = PRIMARY.replace(r#"<version epoch="0" ver="5.1.8" rel="9.el9"/>"#, "");
        assert!(matches!(
            parse_primary(no_version.as_bytes(), Compression::None, u64::MAX),
            Err(ParseError::Xml {
                expected: "a <version ver=…>",
                ..
            })
        ));
        assert_eq!(
            parse_primary(PRIMARY.as_bytes(), Compression::None, 100),
            Err(ParseError::TooLarge { limit: 100 })
        );
        let bad_entity = PRIMARY.replace("&amp;", "&nope;");
        assert!(matches!(
            parse_primary(bad_entity.as_bytes(), Compression::None, u64::MAX),
            Err(ParseError::Xml { .. })
        ));
        let cut = &PRIMARY[..PRIMARY.len() / 2];
        assert!(parse_primary(cut.as_bytes(), Compression::None, u64::MAX).is_err());
    }

    proptest! {
        #[test]
        fn repomd_mutations_never_panic(cut in 0usize..900, at in 0usize..900, byte in any::<u8>()) {
            let mut bytes = repomd("sha256").into_bytes();
            if let Some(b) = bytes.get_mut(at) {
                *b = byte;
            }
            bytes.truncate(cut);
            let _ = parse_repomd(&bytes);
        }

        #[test]
        fn primary_mutations_never_panic(cut in 0usize..1500, at in 0usize..1500, byte in any::<u8>()) {
            let mut bytes = PRIMARY.as_bytes().to_vec();
            if let Some(b) = bytes.get_mut(at) {
                *b = byte;
            }
            bytes.truncate(cut);
            let _ = parse_primary(&bytes, Compression::None, u64::MAX);
        }

        #[test]
        fn arbitrary_xml_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_repomd(&bytes);
            let _ = parse_primary(&bytes, Compression::None, 10_000);
            let _ = parse_primary(&bytes, Compression::Gzip, 10_000);
        }
    }
}

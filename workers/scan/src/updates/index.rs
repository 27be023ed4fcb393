//! What the repository index parsers share: the parse error, checksums of index files, the
//! packages an index offers, and decompression with a size limit.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read};

use sha2::{Digest, Sha256, Sha512};

/// The decompressor's memory limit for xz files, in KiB: far above the 64 MiB dictionaries of
/// `xz -9`, low enough that a hostile header cannot make it allocate gigabytes.
const XZ_MEMORY_LIMIT_KIB: u32 = 256 * 1024;

/// One package a repository offers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AvailablePackage {
    /// Name as the packaging system knows it.
    pub name: String,
    /// Full version in the form the installed package's version has: dpkg's `[epoch:]v[-r]`,
    /// rpm's `[epoch:]version-release` (epoch omitted when `0`), apk's `V:`.
    pub version: String,
    /// Architecture (`amd64`, `all`, `x86_64`, `noarch`), when the index gives one.
    pub arch: Option<String>,
    /// The source package, when the index names one (apt `Source:`, apk `o:`).
    pub source_name: Option<String>,
}

/// Why an index file could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A line is not what the format allows there.
    #[error("line {line}: expected {expected}, found {found}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What the format requires.
        expected: &'static str,
        /// The offending text (cut to 80 characters).
        found: String,
    },
    /// A package stanza lacks a field every package has.
    #[error("the stanza at line {line} has no {field} field")]
    MissingField {
        /// Where the stanza starts (1-based).
        line: usize,
        /// The missing field.
        field: &'static str,
    },
    /// The XML is not well-formed, or an element lacks what the format requires.
    #[error("XML at byte {position}: expected {expected}, found {found}")]
    Xml {
        /// Byte offset in the (decompressed) document.
        position: u64,
        /// What was required.
        expected: &'static str,
        /// What was there.
        found: String,
    },
    /// A value has the wrong form (a checksum that is not hex, a size that is not a number).
    #[error("{what}: expected {expected}, found {found}")]
    Invalid {
        /// Which value.
        what: &'static str,
        /// The form it must have.
        expected: &'static str,
        /// The value (cut to 80 characters).
        found: String,
    },
    /// The compressed data is corrupt or cut short.
    #[error("{format} data: {message}")]
    Decompress {
        /// `gzip` or `xz`.
        format: &'static str,
        /// The decompressor's message.
        message: String,
    },
    /// The decompressed data is larger than the configured limit.
    #[error("expected at most {limit} bytes once decompressed, found more")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The tar archive (APKINDEX.tar.gz) is corrupt or lacks its index.
    #[error("tar archive: expected {expected}, found {found}")]
    Archive {
        /// What was required.
        expected: &'static str,
        /// What was there.
        found: String,
    },
}

impl ParseError {
    /// The error a read from a [`decompress`]ed stream failed with: the size limit, or the
    /// decompressor's complaint.
    pub(crate) fn from_read(compression: Compression, error: &io::Error) -> ParseError {
        match error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<LimitExceeded>())
        {
            Some(LimitExceeded(limit)) => ParseError::TooLarge { limit: *limit },
            None => ParseError::Decompress {
                format: compression.name(),
                message: error.to_string(),
            },
        }
    }
}

/// Cuts `text` to at most 80 characters, for error messages.
pub(crate) fn excerpt(text: &str) -> String {
    text.chars().take(80).collect()
}

/// A digest algorithm index files are checked with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChecksumAlgorithm {
    /// SHA-256: apt's `SHA256` section, createrepo's default.
    Sha256,
    /// SHA-512: some yum repositories.
    Sha512,
}

impl ChecksumAlgorithm {
    /// `sha256` or `sha512`, as repomd.xml spells them.
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Sha256 => "sha256",
            ChecksumAlgorithm::Sha512 => "sha512",
        }
    }

    /// Length of the digest in hex digits.
    fn hex_len(self) -> usize {
        match self {
            ChecksumAlgorithm::Sha256 => 64,
            ChecksumAlgorithm::Sha512 => 128,
        }
    }
}

/// A digest of a whole file, as an index names it or as computed from downloaded bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Checksum {
    /// How it is computed.
    pub algorithm: ChecksumAlgorithm,
    /// Lowercase hex.
    hex: String,
}

impl Checksum {
    /// Validates `hex` as a digest of `algorithm` (any case; stored lowercase).
    pub fn parse(algorithm: ChecksumAlgorithm, hex: &str) -> Result<Checksum, ParseError> {
        if hex.len() != algorithm.hex_len() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseError::Invalid {
                what: algorithm.as_str(),
                expected: match algorithm {
                    ChecksumAlgorithm::Sha256 => "64 hex digits",
                    ChecksumAlgorithm::Sha512 => "128 hex digits",
                },
                found: excerpt(hex),
            });
        }
        Ok(Checksum {
            algorithm,
            hex: hex.to_ascii_lowercase(),
        })
    }

    /// The digest of `bytes` with `algorithm`.
    pub fn of(algorithm: ChecksumAlgorithm, bytes: &[u8]) -> Checksum {
        let hex = match algorithm {
            ChecksumAlgorithm::Sha256 => hex(&Sha256::digest(bytes)),
            ChecksumAlgorithm::Sha512 => hex(&Sha512::digest(bytes)),
        };
        Checksum { algorithm, hex }
    }

    /// Lowercase hex digits of the digest.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Whether `bytes` have this digest.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        Checksum::of(self.algorithm, bytes) == *self
    }
}

impl fmt::Display for Checksum {
    /// `sha256:<hex>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// An index file a top file (Release, repomd.xml) names, with what the download must match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexFile {
    /// Path relative to the top file's directory (apt) or the repository's base URL (yum).
    pub path: String,
    /// Size in bytes of the file as stored, when the top file gives it.
    pub size: Option<u64>,
    /// Digest of the file as stored (compressed).
    pub checksum: Checksum,
}

/// How an index file is compressed, from its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Stored as is.
    None,
    /// `.gz` (several concatenated gzip members are read as one stream, as APKINDEX needs).
    Gzip,
    /// `.xz`.
    Xz,
}

impl Compression {
    /// The compression of a file named `path`: `.gz`, `.xz`, or none for names without a
    /// compression suffix. Other compressions (`.zst`, `.bz2`, `.lzma`) are refused.
    pub fn from_path(path: &str) -> Result<Compression, ParseError> {
        let name = path.rsplit('/').next().unwrap_or(path);
        let extension = name.rsplit_once('.').map(|(_, ext)| ext);
        match extension {
            Some("gz") => Ok(Compression::Gzip),
            Some("xz") => Ok(Compression::Xz),
            Some("zst" | "zstd" | "bz2" | "lzma" | "lz4" | "Z") => Err(ParseError::Invalid {
                what: "index file compression",
                expected: ".gz, .xz or no compression",
                found: excerpt(name),
            }),
            _ => Ok(Compression::None),
        }
    }

    /// `uncompressed`, `gzip` or `xz`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
        }
    }
}

/// A reader over `bytes` decompressed, whose reads fail once more than `limit` bytes have come
/// out (an I/O error the parsers report as [`ParseError::TooLarge`]).
pub fn decompress(
    compression: Compression,
    bytes: &[u8],
    limit: u64,
) -> BufReader<Box<dyn Read + '_>> {
    let inner: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(bytes),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(bytes)),
        Compression::Xz => Box::new(lzma_rust2::XzReader::new_mem_limit(
            bytes,
            true,
            XZ_MEMORY_LIMIT_KIB,
        )),
    };
    BufReader::new(Box::new(Limited {
        inner,
        left: limit,
        limit,
    }))
}

/// The size limit was reached; carried inside an `io::Error`.
#[derive(Debug)]
struct LimitExceeded(u64);

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "more than {} bytes", self.0)
    }
}

impl std::error::Error for LimitExceeded {}

/// A reader that fails once more than `limit` bytes have been read from `inner`.
struct Limited<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Ask for one byte more than allowed, so that reaching the limit exactly is not an error
        // but going past it is.
        let want = usize::try_from(self.left.saturating_add(1))
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let got = self.inner.read(&mut buf[..want])?;
        let got_u64 = u64::try_from(got).unwrap_or(u64::MAX);
        if got_u64 > self.left {
            return Err(io::Error::other(LimitExceeded(self.limit)));
        }
        self.left -= got_u64;
        Ok(got)
    }
}

/// Reads one line (without its `\n` or `\r\n`) into `line`, lossily as UTF-8; `false` at the
/// end of the input.
pub(crate) fn read_line(
    reader: &mut impl BufRead,
    raw: &mut Vec<u8>,
    line: &mut String,
    compression: Compression,
) -> Result<bool, ParseError> {
    raw.clear();
    line.clear();
    let n = reader
        .read_until(b'\n', raw)
        .map_err(|e| ParseError::from_read(compression, &e))?;
    if n == 0 {
        return Ok(false);
    }
    if raw.last() == Some(&b'\n') {
        raw.pop();
    }
    if raw.last() == Some(&b'\r') {
        raw.pop();
    }
    line.push_str(&String::from_utf8_lossy(raw));
    Ok(true)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `printf 'hello\n' | xz -c` (CRC64 check, XZ Utils 5.4.1).
    pub(crate) const HELLO_XZ: &[u8] = &[
        0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00, 0x04, 0xe6, 0xd6, 0xb4, 0x46, 0x02, 0x00, 0x21,
        0x01, 0x16, 0x00, 0x00, 0x00, 0x74, 0x2f, 0xe5, 0xa3, 0x01, 0x00, 0x05, 0x68, 0x65, 0x6c,
        0x6c, 0x6f, 0x0a, 0x00, 0x00, 0x00, 0xa5, 0x60, 0x97, 0xf1, 0x94, 0xf6, 0xfd, 0xe0, 0x00,
        0x01, 0x1e, 0x06, 0xc1, 0x2f, 0xa4, 0x1d, 0x1f, 0xb6, 0xf3, 0x7d, 0x01, 0x00, 0x00, 0x00,
        0x00, 0x04, 0x59, 0x5a,
    ];

    /// `bytes` gzip-compressed.
    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn read_all(compression: Compression, bytes: &[u8], limit: u64) -> Result<Vec<u8>, ParseError> {
        let mut out = Vec::new();
        decompress(compression, bytes, limit)
            .read_to_end(&mut out)
            .map_err(|e| ParseError::from_read(compression, &e))?;
        Ok(out)
    }

    #[test]
    fn gzip_xz_and_plain_are_decompressed() {
        assert_eq!(
            read_all(Compression::Xz, HELLO_XZ, 100).unwrap(),
            b"hello\n"
        );
        assert_eq!(
            read_all(Compression::Gzip, &gzip(b"hello\n"), 100).unwrap(),
            b"hello\n"
        );
        assert_eq!(
            read_all(Compression::None, b"hello\n", 100).unwrap(),
            b"hello\n"
        );
    }

    #[test]
    fn concatenated_gzip_members_read_as_one_stream() {
        let mut both = gzip(b"one\n");
        both.extend(gzip(b"two\n"));
        assert_eq!(
            read_all(Compression::Gzip, &both, 100).unwrap(),
            b"one\ntwo\n"
        );
    }

    #[test]
    fn the_limit_is_inclusive_and_enforced() {
        assert_eq!(read_all(Compression::Xz, HELLO_XZ, 6).unwrap(), b"hello\n");
        assert_eq!(
            read_all(Compression::Xz, HELLO_XZ, 5),
            Err(ParseError::TooLarge { limit: 5 })
        );
        assert_eq!(
            read_all(Compression::None, b"hello\n", 0),
            Err(ParseError::TooLarge { limit: 0 })
        );
    }

    #[test]
    fn corrupt_data_is_a_decompression_error() {
        let mut corrupt = HELLO_XZ.to_vec();
        corrupt[30] ^= 0xff;
        assert!(matches!(
            read_all(Compression::Xz, &corrupt, 100),
            Err(ParseError::Decompress { format: "xz", .. })
        ));
        assert!(matches!(
            read_all(Compression::Gzip, b"not gzip", 100),
            Err(ParseError::Decompress { format: "gzip", .. })
        ));
    }

    #[test]
    fn compression_follows_the_file_name() {
        assert_eq!(
            Compression::from_path("main/binary-amd64/Packages.xz"),
            Ok(Compression::Xz)
        );
        assert_eq!(
            Compression::from_path("repodata/primary.xml.gz"),
            Ok(Compression::Gzip)
        );
        assert_eq!(Compression::from_path("Packages"), Ok(Compression::None));
        assert_eq!(
            Compression::from_path("x.y/Packages"),
            Ok(Compression::None)
        );
        assert!(Compression::from_path("repodata/primary.xml.zst").is_err());
    }

    #[test]
    fn checksums_are_validated_and_compared() {
        let sha = Checksum::of(ChecksumAlgorithm::Sha256, b"abc");
        assert_eq!(
            sha.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            Checksum::parse(ChecksumAlgorithm::Sha256, &sha.hex().to_uppercase()),
            Ok(sha.clone())
        );
        assert!(sha.matches(b"abc"));
        assert!(!sha.matches(b"abd"));
        assert!(Checksum::parse(ChecksumAlgorithm::Sha256, "abc").is_err());
        assert!(Checksum::parse(ChecksumAlgorithm::Sha512, sha.hex()).is_err());
        assert_eq!(sha.to_string(), format!("sha256:{}", sha.hex()));
    }
}

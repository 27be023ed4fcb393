//! rpm package headers as the database stores them (index count and data length, index entries,
//! data store, with the immutable region and install-time "dribble" entries), and the
//! [`Package`] one describes.
//!
//! Every offset and count comes from the blob, so every one is checked before it is used: a
//! corrupted blob gives an [`RpmError`] naming the tag, its offset and what was expected.

use std::collections::BTreeMap;

use super::RpmError;
use crate::package::{DigestAlgorithm, Ecosystem, FileDigest, Package, PackageFile};

/// rpm's tag numbers used here (`rpmtag.h`).
pub mod tag {
    /// `HEADERIMAGE`: region tag of legacy headers.
    pub const HEADERIMAGE: u32 = 61;
    /// `HEADERSIGNATURES`: region tag of signature headers.
    pub const HEADERSIGNATURES: u32 = 62;
    /// `HEADERIMMUTABLE`: region tag of package headers.
    pub const HEADERIMMUTABLE: u32 = 63;
    /// `NAME` (string).
    pub const NAME: u32 = 1000;
    /// `VERSION` (string).
    pub const VERSION: u32 = 1001;
    /// `RELEASE` (string).
    pub const RELEASE: u32 = 1002;
    /// `EPOCH` (int32).
    pub const EPOCH: u32 = 1003;
    /// `LICENSE` (string).
    pub const LICENSE: u32 = 1014;
    /// `ARCH` (string).
    pub const ARCH: u32 = 1022;
    /// `OLDFILENAMES` (string array): full paths, in headers older than `BASENAMES`.
    pub const OLDFILENAMES: u32 = 1027;
    /// `FILESIZES` (int32 array).
    pub const FILESIZES: u32 = 1028;
    /// `FILEMODES` (int16 array).
    pub const FILEMODES: u32 = 1030;
    /// `FILEDIGESTS` (string array of hex digests, empty for non-regular files).
    pub const FILEDIGESTS: u32 = 1035;
    /// `FILEFLAGS` (int32 array of `RPMFILE_*`).
    pub const FILEFLAGS: u32 = 1037;
    /// `SOURCERPM` (string): `name-version-release.src.rpm`.
    pub const SOURCERPM: u32 = 1044;
    /// `FILEVERIFYFLAGS` (int32 array of `RPMVERIFY_*`).
    pub const FILEVERIFYFLAGS: u32 = 1045;
    /// `DIRINDEXES` (int32 array): each file's index into `DIRNAMES`.
    pub const DIRINDEXES: u32 = 1116;
    /// `BASENAMES` (string array).
    pub const BASENAMES: u32 = 1117;
    /// `DIRNAMES` (string array, each ending in `/`).
    pub const DIRNAMES: u32 = 1118;
    /// `LONGFILESIZES` (int64 array): replaces `FILESIZES` when a file is ≥ 4 GiB.
    pub const LONGFILESIZES: u32 = 5008;
    /// `FILEDIGESTALGO` (int32): PGP hash algorithm of `FILEDIGESTS`; md5 when absent.
    pub const FILEDIGESTALGO: u32 = 5011;
}

/// rpm's data types (`rpmTagType`).
mod kind {
    pub const INT16: u32 = 3;
    pub const INT32: u32 = 4;
    pub const INT64: u32 = 5;
    pub const STRING: u32 = 6;
    pub const BIN: u32 = 7;
    pub const STRING_ARRAY: u32 = 8;
    pub const I18NSTRING: u32 = 9;
}

/// `RPMFILE_*` bits of `FILEFLAGS`.
mod file_flag {
    pub const CONFIG: u32 = 1;
    pub const DOC: u32 = 1 << 1;
    pub const GHOST: u32 = 1 << 6;
    pub const LICENSE: u32 = 1 << 7;
    pub const README: u32 = 1 << 8;
}

/// `RPMVERIFY_FILEDIGEST`: the bit of `FILEVERIFYFLAGS` saying the content is verified.
const VERIFY_FILEDIGEST: u32 = 1;

/// rpm's `HEADER_TAGS_MAX`: the most index entries a header may have.
const MAX_INDEX_COUNT: u64 = 0xffff;
/// rpm's `HEADER_DATA_MAX`: the largest data store a header may have (256 MiB).
const MAX_DATA_LEN: u64 = 0x0fff_ffff;
/// Bytes of one index entry (tag, type, offset, count, each a big-endian 32-bit number).
const ENTRY_LEN: usize = 16;
/// The pseudo-package rpm records each imported signing key as.
const GPG_PUBKEY: &str = "gpg-pubkey";

/// One index entry: where a tag's data is in the data store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    tag: u32,
    kind: u32,
    offset: i32,
    count: u32,
}

impl Entry {
    /// Reads the entry at the start of `bytes`, which holds at least [`ENTRY_LEN`] bytes.
    fn read(bytes: &[u8]) -> Option<Entry> {
        let word = |i: usize| -> Option<[u8; 4]> { bytes.get(i..i + 4)?.try_into().ok() };
        Some(Entry {
            tag: u32::from_be_bytes(word(0)?),
            kind: u32::from_be_bytes(word(4)?),
            offset: i32::from_be_bytes(word(8)?),
            count: u32::from_be_bytes(word(12)?),
        })
    }
}

/// A parsed header: its entries by tag (region entries, replaced by dribble entries of the same
/// tag, as rpm's `headerImport` does) and its data store. Data is read, and checked, on access.
#[derive(Clone, Debug)]
pub struct Header<'a> {
    entries: BTreeMap<u32, Entry>,
    data: &'a [u8],
}

impl<'a> Header<'a> {
    /// Parses a header blob as stored in an rpm database: checks its size, its immutable region
    /// (when it has one) and indexes its entries.
    pub fn parse(blob: &'a [u8]) -> Result<Self, RpmError> {
        let found = blob.len() as u64;
        let (Some(il), Some(dl)) = (
            blob.get(0..4).and_then(|b| b.try_into().ok()),
            blob.get(4..8).and_then(|b| b.try_into().ok()),
        ) else {
            return Err(RpmError::HeaderTooShort { found });
        };
        let index_count = u64::from(u32::from_be_bytes(il));
        let data_len = u64::from(u32::from_be_bytes(dl));
        if !(1..=MAX_INDEX_COUNT).contains(&index_count) {
            return Err(RpmError::HeaderLimit {
                what: "index count",
                found: index_count,
                min: 1,
                max: MAX_INDEX_COUNT,
            });
        }
        if data_len > MAX_DATA_LEN {
            return Err(RpmError::HeaderLimit {
                what: "data length",
                found: data_len,
                min: 0,
                max: MAX_DATA_LEN,
            });
        }
        // Both counts are bounded above, so this cannot overflow.
        let expected = 8 + index_count * ENTRY_LEN as u64 + data_len;
        if found != expected {
            return Err(RpmError::HeaderSize {
                index_count,
                data_len,
                expected,
                found,
            });
        }
        // The length check above makes both slices in bounds.
        let index_end = 8 + index_count as usize * ENTRY_LEN;
        let index = &blob[8..index_end];
        let data = &blob[index_end..];
        let raw: Vec<Entry> = index
            .chunks_exact(ENTRY_LEN)
            .filter_map(Entry::read)
            .collect();

        let region_len = region_len(&raw, data)?;
        let (members, dribbles) = raw.split_at(region_len);
        let mut entries = BTreeMap::new();
        for e in members.iter().filter(|e| !is_region_tag(e.tag)) {
            entries.entry(e.tag).or_insert(*e);
        }
        for e in dribbles.iter().filter(|e| !is_region_tag(e.tag)) {
            if e.tag == tag::BASENAMES {
                entries.remove(&tag::OLDFILENAMES);
            }
            entries.insert(e.tag, *e);
        }
        Ok(Header { entries, data })
    }

    /// A string tag's value (`STRING`, or the first of an `I18NSTRING`), lossily decoded as
    /// UTF-8; `None` when the tag is absent.
    pub fn string(&self, tag: u32) -> Result<Option<String>, RpmError> {
        let Some(e) = self.entries.get(&tag).copied() else {
            return Ok(None);
        };
        match e.kind {
            kind::STRING if e.count != 1 => Err(self.error(e, "expected count 1 for a string")),
            kind::STRING | kind::I18NSTRING => {
                let strings = self.raw_strings(Entry { count: 1, ..e })?;
                Ok(strings
                    .first()
                    .map(|s| String::from_utf8_lossy(s).into_owned()))
            }
            _ => Err(self.wrong_kind(e, "6 (string) or 9 (i18n string)")),
        }
    }

    /// A string array tag's values, lossily decoded as UTF-8; `None` when the tag is absent.
    pub fn string_array(&self, tag: u32) -> Result<Option<Vec<String>>, RpmError> {
        let Some(e) = self.entries.get(&tag).copied() else {
            return Ok(None);
        };
        if e.kind != kind::STRING_ARRAY {
            return Err(self.wrong_kind(e, "8 (string array)"));
        }
        let strings = self.raw_strings(e)?;
        Ok(Some(
            strings
                .into_iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
        ))
    }

    /// An int16 array tag's values; `None` when the tag is absent.
    pub fn int16(&self, tag: u32) -> Result<Option<Vec<u16>>, RpmError> {
        self.numbers(tag, kind::INT16, "3 (int16)", |b| {
            b.try_into().ok().map(u16::from_be_bytes)
        })
    }

    /// An int32 array tag's values; `None` when the tag is absent.
    pub fn int32(&self, tag: u32) -> Result<Option<Vec<u32>>, RpmError> {
        self.numbers(tag, kind::INT32, "4 (int32)", |b| {
            b.try_into().ok().map(u32::from_be_bytes)
        })
    }

    /// An int64 array tag's values; `None` when the tag is absent.
    pub fn int64(&self, tag: u32) -> Result<Option<Vec<u64>>, RpmError> {
        self.numbers(tag, kind::INT64, "5 (int64)", |b| {
            b.try_into().ok().map(u64::from_be_bytes)
        })
    }

    /// The first value of an int32 tag; `None` when the tag is absent.
    fn int32_scalar(&self, tag: u32) -> Result<Option<u32>, RpmError> {
        let Some(values) = self.int32(tag)? else {
            return Ok(None);
        };
        match (values.first(), self.entries.get(&tag)) {
            (Some(v), _) => Ok(Some(*v)),
            (None, Some(e)) => Err(self.error(*e, "count 0, expected at least 1")),
            (None, None) => Ok(None),
        }
    }

    fn numbers<T>(
        &self,
        tag: u32,
        want: u32,
        want_name: &str,
        decode: impl Fn(&[u8]) -> Option<T>,
    ) -> Result<Option<Vec<T>>, RpmError> {
        let Some(e) = self.entries.get(&tag).copied() else {
            return Ok(None);
        };
        if e.kind != want {
            return Err(self.wrong_kind(e, want_name));
        }
        let width = match want {
            kind::INT16 => 2,
            kind::INT32 => 4,
            _ => 8,
        };
        let bytes = self.span(e, width)?;
        Ok(Some(bytes.chunks_exact(width).filter_map(decode).collect()))
    }

    /// The data store from the entry's offset on.
    fn tail(&self, e: Entry) -> Result<&'a [u8], RpmError> {
        let start = usize::try_from(e.offset)
            .map_err(|_| self.error(e, "negative data offset, expected 0 or more"))?;
        self.data.get(start..).ok_or_else(|| {
            self.error(
                e,
                format!(
                    "data offset past the end of the {}-byte data store",
                    self.data.len()
                ),
            )
        })
    }

    /// The `count × width` bytes of a fixed-width entry.
    fn span(&self, e: Entry, width: usize) -> Result<&'a [u8], RpmError> {
        let tail = self.tail(e)?;
        let len = u64::from(e.count) * width as u64;
        if len > tail.len() as u64 {
            return Err(self.error(
                e,
                format!(
                    "needs {len} bytes from its offset, the data store has {} left",
                    tail.len()
                ),
            ));
        }
        // len ≤ tail.len(), a usize.
        Ok(&tail[..len as usize])
    }

    /// The `count` NUL-terminated strings of a string entry.
    fn raw_strings(&self, e: Entry) -> Result<Vec<&'a [u8]>, RpmError> {
        let mut rest = self.tail(e)?;
        // Each string takes at least its NUL: more strings than bytes left cannot be.
        if u64::from(e.count) > rest.len() as u64 {
            return Err(self.error(
                e,
                format!(
                    "{} strings cannot fit in the {} bytes left in the data store",
                    e.count,
                    rest.len()
                ),
            ));
        }
        let mut strings = Vec::with_capacity(e.count as usize);
        for i in 0..e.count {
            let Some(nul) = rest.iter().position(|b| *b == 0) else {
                return Err(self.error(
                    e,
                    format!(
                        "string {} of {} is not NUL-terminated before the data store's end",
                        i + 1,
                        e.count
                    ),
                ));
            };
            strings.push(&rest[..nul]);
            rest = &rest[nul + 1..];
        }
        Ok(strings)
    }

    fn error(&self, e: Entry, problem: impl Into<String>) -> RpmError {
        RpmError::HeaderEntry {
            tag: e.tag,
            kind: e.kind,
            offset: i64::from(e.offset),
            count: e.count,
            problem: problem.into(),
        }
    }

    fn wrong_kind(&self, e: Entry, expected: &str) -> RpmError {
        self.error(e, format!("type {}, expected type {expected}", e.kind))
    }
}

fn is_region_tag(tag: u32) -> bool {
    (tag::HEADERIMAGE..=tag::HEADERIMMUTABLE).contains(&tag)
}

/// How many of the leading index entries form the immutable region (region entry included), the
/// rest being dribbles; all of them when the header has no region (legacy headers).
fn region_len(raw: &[Entry], data: &[u8]) -> Result<usize, RpmError> {
    let Some(first) = raw.first().copied() else {
        return Ok(0);
    };
    if !is_region_tag(first.tag) {
        return Ok(raw.len());
    }
    let region = first.tag;
    let fail = |problem: String| RpmError::HeaderRegion {
        tag: region,
        problem,
    };
    if first.kind != kind::BIN || first.count != ENTRY_LEN as u32 {
        return Err(fail(format!(
            "region entry has type {} count {}, expected type 7 (binary) count 16",
            first.kind, first.count
        )));
    }
    let trailer = usize::try_from(first.offset)
        .ok()
        .and_then(|start| data.get(start..start.checked_add(ENTRY_LEN)?))
        .and_then(Entry::read)
        .ok_or_else(|| {
            fail(format!(
                "trailer at data offset {} needs 16 bytes, the data store has {}",
                first.offset,
                data.len()
            ))
        })?;
    // Some old packages end a signature region with HEADERIMAGE; rpm accepts that.
    let trailer_tag = if region == tag::HEADERSIGNATURES && trailer.tag == tag::HEADERIMAGE {
        region
    } else {
        trailer.tag
    };
    if trailer_tag != region || trailer.kind != kind::BIN || trailer.count != ENTRY_LEN as u32 {
        return Err(fail(format!(
            "trailer is tag {} type {} count {}, expected tag {region} type 7 count 16",
            trailer.tag, trailer.kind, trailer.count
        )));
    }
    // The trailer's offset is minus the region's index size.
    if trailer.offset >= 0 || trailer.offset % ENTRY_LEN as i32 != 0 {
        return Err(fail(format!(
            "trailer offset {}, expected a negative multiple of 16",
            trailer.offset
        )));
    }
    let region_len = (trailer.offset / ENTRY_LEN as i32).unsigned_abs() as usize;
    if region_len > raw.len() {
        return Err(fail(format!(
            "region covers {region_len} index entries, the header has {}",
            raw.len()
        )));
    }
    Ok(region_len)
}

/// Parses a header blob from an rpm database into the package it describes, recorded at
/// `location` (the database file, `/var/lib/rpm/rpmdb.sqlite`). `None` for a `gpg-pubkey`
/// pseudo-package.
pub fn parse_package(blob: &[u8], location: &str) -> Result<Option<Package>, RpmError> {
    let header = Header::parse(blob)?;
    let name = required_string(&header, tag::NAME, "NAME")?;
    if name == GPG_PUBKEY {
        return Ok(None);
    }
    let version = required_string(&header, tag::VERSION, "VERSION")?;
    let release = required_string(&header, tag::RELEASE, "RELEASE")?;
    let epoch = header.int32_scalar(tag::EPOCH)?;
    let evr = |version: &str, release: &str| match epoch {
        Some(epoch) => format!("{epoch}:{version}-{release}"),
        None => format!("{version}-{release}"),
    };
    let full_version = evr(&version, &release);
    let (source_name, source_version) = match header.string(tag::SOURCERPM)? {
        Some(srpm) => match parse_source_rpm(&srpm) {
            Some((src_name, src_version, src_release)) => {
                // A source rpm's name carries no epoch; it is built from the same spec, so it
                // has the binary's.
                let src_evr = evr(src_version, src_release);
                (
                    (src_name != name).then(|| src_name.to_owned()),
                    (src_evr != full_version).then_some(src_evr),
                )
            }
            None => (None, None),
        },
        None => (None, None),
    };
    Ok(Some(Package {
        ecosystem: Ecosystem::Rpm,
        arch: header.string(tag::ARCH)?,
        license: header.string(tag::LICENSE)?,
        files: files(&header)?,
        name,
        version: full_version,
        source_name,
        source_version,
        location: location.to_owned(),
    }))
}

fn required_string(header: &Header<'_>, tag: u32, name: &'static str) -> Result<String, RpmError> {
    header
        .string(tag)?
        .ok_or(RpmError::MissingTag { tag, name })
}

/// Splits `name-version-release.src.rpm` (or `.nosrc.rpm`); `None` when it is not of that form.
fn parse_source_rpm(srpm: &str) -> Option<(&str, &str, &str)> {
    let nvr = srpm
        .strip_suffix(".src.rpm")
        .or_else(|| srpm.strip_suffix(".nosrc.rpm"))?;
    let (nv, release) = nvr.rsplit_once('-')?;
    let (name, version) = nv.rsplit_once('-')?;
    (!name.is_empty() && !version.is_empty() && !release.is_empty())
        .then_some((name, version, release))
}

/// The PGP hash algorithm ids of `FILEDIGESTALGO`, with their hex digest lengths. `None` for an
/// algorithm the inventory has no name for (sha224, id 11).
fn digest_algorithm(id: u32) -> Option<(DigestAlgorithm, usize)> {
    match id {
        1 => Some((DigestAlgorithm::Md5, 32)),
        2 => Some((DigestAlgorithm::Sha1, 40)),
        8 => Some((DigestAlgorithm::Sha256, 64)),
        9 => Some((DigestAlgorithm::Sha384, 96)),
        10 => Some((DigestAlgorithm::Sha512, 128)),
        _ => None,
    }
}

/// A per-file array, checked to have one value per file.
fn per_file<T>(
    values: Option<Vec<T>>,
    name: &'static str,
    files: usize,
) -> Result<Option<Vec<T>>, RpmError> {
    match values {
        Some(v) if v.len() != files => Err(RpmError::FileCount {
            name,
            expected: files as u64,
            found: v.len() as u64,
        }),
        other => Ok(other),
    }
}

fn paths(header: &Header<'_>) -> Result<Vec<String>, RpmError> {
    let Some(basenames) = header.string_array(tag::BASENAMES)? else {
        return Ok(header.string_array(tag::OLDFILENAMES)?.unwrap_or_default());
    };
    let dirnames = header
        .string_array(tag::DIRNAMES)?
        .ok_or(RpmError::MissingTag {
            tag: tag::DIRNAMES,
            name: "DIRNAMES",
        })?;
    let indexes = per_file(
        header.int32(tag::DIRINDEXES)?,
        "DIRINDEXES",
        basenames.len(),
    )?
    .ok_or(RpmError::MissingTag {
        tag: tag::DIRINDEXES,
        name: "DIRINDEXES",
    })?;
    basenames
        .iter()
        .zip(indexes)
        .enumerate()
        .map(|(file, (base, index))| {
            let dir = usize::try_from(index)
                .ok()
                .and_then(|i| dirnames.get(i))
                .ok_or(RpmError::DirIndex {
                    file: file as u64,
                    index,
                    dirs: dirnames.len() as u64,
                })?;
            Ok(format!("{dir}{base}"))
        })
        .collect()
}

fn files(header: &Header<'_>) -> Result<Vec<PackageFile>, RpmError> {
    let paths = paths(header)?;
    let n = paths.len();
    let digests = per_file(header.string_array(tag::FILEDIGESTS)?, "FILEDIGESTS", n)?;
    let algorithm = match header.int32_scalar(tag::FILEDIGESTALGO)? {
        Some(id) => digest_algorithm(id),
        // rpm writes no FILEDIGESTALGO for md5, the original digest.
        None => digest_algorithm(1),
    };
    let sizes = match header.int64(tag::LONGFILESIZES)? {
        Some(long) => per_file(Some(long), "LONGFILESIZES", n)?,
        None => per_file(header.int32(tag::FILESIZES)?, "FILESIZES", n)?
            .map(|v| v.into_iter().map(u64::from).collect()),
    };
    let modes = per_file(header.int16(tag::FILEMODES)?, "FILEMODES", n)?;
    let flags = per_file(header.int32(tag::FILEFLAGS)?, "FILEFLAGS", n)?;
    let verify = per_file(header.int32(tag::FILEVERIFYFLAGS)?, "FILEVERIFYFLAGS", n)?;

    paths
        .into_iter()
        .enumerate()
        .map(|(i, path)| {
            let digest = match (&digests, algorithm) {
                (Some(d), Some((algorithm, hex_len))) => file_digest(&d[i], algorithm, hex_len, i)?,
                _ => None,
            };
            let flag = flags.as_ref().map_or(0, |f| f[i]);
            let verify_flag = verify.as_ref().map(|v| v[i]);
            Ok(PackageFile {
                path,
                digest,
                size: sizes.as_ref().map(|s| s[i]),
                mode: modes.as_ref().map(|m| u32::from(m[i])),
                config: flag & file_flag::CONFIG != 0,
                doc: flag & (file_flag::DOC | file_flag::LICENSE | file_flag::README) != 0,
                // %ghost files are not shipped, and a file whose digest rpm does not verify
                // (%verify(not md5 …), or FILEVERIFYFLAGS 0) is expected to change.
                volatile: flag & file_flag::GHOST != 0
                    || verify_flag.is_some_and(|v| v & VERIFY_FILEDIGEST == 0),
            })
        })
        .collect()
}

fn file_digest(
    hex: &str,
    algorithm: DigestAlgorithm,
    hex_len: usize,
    file: usize,
) -> Result<Option<FileDigest>, RpmError> {
    if hex.is_empty() {
        return Ok(None);
    }
    if hex.len() != hex_len || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RpmError::Digest {
            file: file as u64,
            found: hex.chars().take(200).collect(),
            expected: hex_len,
        });
    }
    Ok(Some(FileDigest {
        algorithm,
        hex: hex.to_ascii_lowercase(),
    }))
}

/// Builds header blobs for tests, in the immutable region form rpm stores.
#[cfg(test)]
pub(crate) mod testblob {
    use super::{kind, tag};

    struct Item {
        tag: u32,
        kind: u32,
        count: u32,
        data: Vec<u8>,
        align: usize,
    }

    /// A header under construction: region entries, then dribble entries.
    #[derive(Default)]
    pub(crate) struct HeaderBuilder {
        region: Vec<Item>,
        dribbles: Vec<Item>,
        in_dribbles: bool,
    }

    impl HeaderBuilder {
        /// A header with NAME, VERSION, RELEASE and ARCH.
        pub(crate) fn package(name: &str, version: &str, release: &str, arch: &str) -> Self {
            HeaderBuilder::default()
                .string(tag::NAME, name)
                .string(tag::VERSION, version)
                .string(tag::RELEASE, release)
                .string(tag::ARCH, arch)
        }

        /// Entries added from now on are install-time dribbles, outside the region.
        pub(crate) fn dribbles(mut self) -> Self {
            self.in_dribbles = true;
            self
        }

        fn push(mut self, item: Item) -> Self {
            if self.in_dribbles {
                self.dribbles.push(item);
            } else {
                self.region.push(item);
            }
            self
        }

        /// Adds a STRING entry.
        pub(crate) fn string(self, tag: u32, value: &str) -> Self {
            let mut data = value.as_bytes().to_vec();
            data.push(0);
            self.push(Item {
                tag,
                kind: kind::STRING,
                count: 1,
                data,
                align: 1,
            })
        }

        /// Adds a STRING_ARRAY entry.
        pub(crate) fn strings(self, tag: u32, values: &[&str]) -> Self {
            let mut data = Vec::new();
            for v in values {
                data.extend_from_slice(v.as_bytes());
                data.push(0);
            }
            self.push(Item {
                tag,
                kind: kind::STRING_ARRAY,
                count: values.len() as u32,
                data,
                align: 1,
            })
        }

        /// Adds an INT16 array entry.
        pub(crate) fn int16(self, tag: u32, values: &[u16]) -> Self {
            self.push(Item {
                tag,
                kind: kind::INT16,
                count: values.len() as u32,
                data: values.iter().flat_map(|v| v.to_be_bytes()).collect(),
                align: 2,
            })
        }

        /// Adds an INT32 array entry.
        pub(crate) fn int32(self, tag: u32, values: &[u32]) -> Self {
            self.push(Item {
                tag,
                kind: kind::INT32,
                count: values.len() as u32,
                data: values.iter().flat_map(|v| v.to_be_bytes()).collect(),
                align: 4,
            })
        }

        /// Adds an INT64 array entry.
        pub(crate) fn int64(self, tag: u32, values: &[u64]) -> Self {
            self.push(Item {
                tag,
                kind: kind::INT64,
                count: values.len() as u32,
                data: values.iter().flat_map(|v| v.to_be_bytes()).collect(),
                align: 8,
            })
        }

        /// The blob: region entry, region members, dribbles; data aligned as rpm aligns it,
        /// with the region trailer after the members' data.
        pub(crate) fn build(&self) -> Vec<u8> {
            let mut index = Vec::new();
            let mut data = Vec::new();
            let entry = |index: &mut Vec<u8>, tag: u32, kind: u32, offset: i32, count: u32| {
                for word in [tag, kind, offset as u32, count] {
                    index.extend_from_slice(&word.to_be_bytes());
                }
            };
            let place = |item: &Item, data: &mut Vec<u8>| {
                while !data.len().is_multiple_of(item.align) {
                    data.push(0);
                }
                let offset = data.len() as i32;
                data.extend_from_slice(&item.data);
                (item.tag, item.kind, offset, item.count)
            };
            let region_entries = 1 + self.region.len();
            let mut members = Vec::new();
            for item in &self.region {
                members.push(place(item, &mut data));
            }
            let trailer_offset = data.len() as i32;
            entry(
                &mut data,
                tag::HEADERIMMUTABLE,
                kind::BIN,
                -((region_entries * 16) as i32),
                16,
            );
            let mut dribbles = Vec::new();
            for item in &self.dribbles {
                dribbles.push(place(item, &mut data));
            }
            entry(
                &mut index,
                tag::HEADERIMMUTABLE,
                kind::BIN,
                trailer_offset,
                16,
            );
            for (t, k, o, c) in members.into_iter().chain(dribbles) {
                entry(&mut index, t, k, o, c);
            }
            let il = (index.len() / 16) as u32;
            let mut blob = Vec::new();
            blob.extend_from_slice(&il.to_be_bytes());
            blob.extend_from_slice(&(data.len() as u32).to_be_bytes());
            blob.extend_from_slice(&index);
            blob.extend_from_slice(&data);
            blob
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testblob::HeaderBuilder;
    use super::*;
    use proptest::prelude::*;

    const SHA_A: &str = "d5c5f09b69f25bf5059606bc891a4bdaac96e4ba058fc001cab9a8a4b9ee7c39";
    const SHA_B: &str = "3884f6a38c5c5aa665212a3eb6844d87ab5dadf78d39bba54ee24f14f2a23e60";

    /// A package like rpmbuild makes: epoch, source rpm of another name, four files.
    fn full() -> HeaderBuilder {
        HeaderBuilder::package("beta", "1.0", "3.el9", "x86_64")
            .int32(tag::EPOCH, &[2])
            .string(tag::LICENSE, "MIT and BSD")
            .string(tag::SOURCERPM, "gamma-1.0-3.el9.src.rpm")
            .strings(tag::DIRNAMES, &["/etc/", "/usr/bin/", "/var/log/"])
            .strings(
                tag::BASENAMES,
                &["beta.conf", "beta", "beta-link", "beta.log"],
            )
            .int32(tag::DIRINDEXES, &[0, 1, 1, 2])
            .strings(tag::FILEDIGESTS, &[SHA_A, &SHA_B.to_uppercase(), "", ""])
            .int32(tag::FILEDIGESTALGO, &[8])
            .int32(tag::FILESIZES, &[10, 21, 4, 0])
            .int16(tag::FILEMODES, &[0o100644, 0o100755, 0o120777, 0o100644])
            .int32(tag::FILEFLAGS, &[1 | 16, 0, 0, 64])
            .int32(
                tag::FILEVERIFYFLAGS,
                &[u32::MAX, u32::MAX, u32::MAX, 0xffff_ffd8],
            )
    }

    fn package(builder: &HeaderBuilder) -> Package {
        parse_package(&builder.build(), "/var/lib/rpm/rpmdb.sqlite")
            .expect("valid header")
            .expect("not a key")
    }

    #[test]
    fn reads_identity_source_and_files() {
        let p = package(&full());
        assert_eq!(p.ecosystem, Ecosystem::Rpm);
        assert_eq!(p.name, "beta");
        assert_eq!(p.version, "2:1.0-3.el9");
        assert_eq!(p.arch.as_deref(), Some("x86_64"));
        assert_eq!(p.license.as_deref(), Some("MIT and BSD"));
        assert_eq!(p.source_name.as_deref(), Some("gamma"));
        assert_eq!(p.source_version, None, "same version as the binary");
        assert_eq!(p.location, "/var/lib/rpm/rpmdb.sqlite");
        let sha = |hex: &str| {
            Some(FileDigest {
                algorithm: DigestAlgorithm::Sha256,
                hex: hex.to_owned(),
            })
        };
        assert_eq!(
            p.files,
            vec![
                PackageFile {
                    path: "/etc/beta.conf".into(),
                    digest: sha(SHA_A),
                    size: Some(10),
                    mode: Some(0o100644),
                    config: true,
                    ..PackageFile::default()
                },
                PackageFile {
                    path: "/usr/bin/beta".into(),
                    digest: sha(SHA_B),
                    size: Some(21),
                    mode: Some(0o100755),
                    ..PackageFile::default()
                },
                PackageFile {
                    path: "/usr/bin/beta-link".into(),
                    size: Some(4),
                    mode: Some(0o120777),
                    ..PackageFile::default()
                },
                PackageFile {
                    path: "/var/log/beta.log".into(),
                    size: Some(0),
                    mode: Some(0o100644),
                    volatile: true,
                    ..PackageFile::default()
                },
            ]
        );
    }

    #[test]
    fn version_without_epoch_and_source_of_other_version() {
        let p = package(
            &HeaderBuilder::package("bash", "5.1.8", "6.el9", "x86_64")
                .string(tag::SOURCERPM, "bash-5.1.8-9.el9.src.rpm"),
        );
        assert_eq!(p.version, "5.1.8-6.el9");
        assert_eq!(p.source_name, None);
        assert_eq!(p.source_version.as_deref(), Some("5.1.8-9.el9"));
        assert!(p.files.is_empty());
        assert_eq!(p.license, None);
    }

    #[test]
    fn source_rpm_names_are_split_from_the_right() {
        assert_eq!(
            parse_source_rpm("python3-pip-21.2.3-7.el9.src.rpm"),
            Some(("python3-pip", "21.2.3", "7.el9"))
        );
        assert_eq!(
            parse_source_rpm("foo-1-2.nosrc.rpm"),
            Some(("foo", "1", "2"))
        );
        assert_eq!(parse_source_rpm("foo-1.src.rpm"), None);
        assert_eq!(parse_source_rpm("-1-2.src.rpm"), None);
        assert_eq!(parse_source_rpm("foo-1-2.rpm"), None);
    }

    #[test]
    fn digest_algorithm_defaults_to_md5_and_follows_the_tag() {
        let md5 = "d2840cc81bc032bd1141b56687d0f93c";
        let p = package(
            &HeaderBuilder::package("delta", "0.9", "1", "noarch")
                .strings(tag::OLDFILENAMES, &["/opt/delta/data.txt"])
                .strings(tag::FILEDIGESTS, &[md5]),
        );
        assert_eq!(p.files[0].path, "/opt/delta/data.txt");
        assert_eq!(
            p.files[0].digest,
            Some(FileDigest {
                algorithm: DigestAlgorithm::Md5,
                hex: md5.to_owned()
            })
        );
        for (id, algorithm, len) in [
            (2, DigestAlgorithm::Sha1, 40),
            (9, DigestAlgorithm::Sha384, 96),
            (10, DigestAlgorithm::Sha512, 128),
        ] {
            let hex = "ab".repeat(len / 2);
            let p = package(
                &HeaderBuilder::package("x", "1", "1", "noarch")
                    .strings(tag::OLDFILENAMES, &["/x"])
                    .strings(tag::FILEDIGESTS, &[&hex])
                    .int32(tag::FILEDIGESTALGO, &[id]),
            );
            assert_eq!(p.files[0].digest, Some(FileDigest { algorithm, hex }));
        }
        // sha224 has no name in the inventory: recorded as no digest rather than a wrong one.
        let p = package(
            &HeaderBuilder::package("x", "1", "1", "noarch")
                .strings(tag::OLDFILENAMES, &["/x"])
                .strings(tag::FILEDIGESTS, &[&"ab".repeat(28)])
                .int32(tag::FILEDIGESTALGO, &[11]),
        );
        assert_eq!(p.files[0].digest, None);
    }

    #[test]
    fn doc_license_readme_and_verify_flags() {
        let p = package(
            &HeaderBuilder::package("x", "1", "1", "noarch")
                .strings(
                    tag::OLDFILENAMES,
                    &["/doc", "/license", "/readme", "/log", "/state"],
                )
                .int32(tag::FILEFLAGS, &[2, 128, 256, 0, 0])
                .int32(
                    tag::FILEVERIFYFLAGS,
                    &[u32::MAX, u32::MAX, u32::MAX, 0, 0xffff_ffdc],
                ),
        );
        let flags: Vec<_> = p
            .files
            .iter()
            .map(|f| (f.config, f.doc, f.volatile))
            .collect();
        assert_eq!(
            flags,
            [
                (false, true, false),
                (false, true, false),
                (false, true, false),
                (false, false, true),
                (false, false, true),
            ]
        );
    }

    #[test]
    fn long_file_sizes_win() {
        let p = package(
            &HeaderBuilder::package("x", "1", "1", "noarch")
                .strings(tag::OLDFILENAMES, &["/big"])
                .int64(tag::LONGFILESIZES, &[5_000_000_000]),
        );
        assert_eq!(p.files[0].size, Some(5_000_000_000));
    }

    #[test]
    fn dribbles_replace_region_entries() {
        let p = package(
            &HeaderBuilder::package("x", "1", "1", "noarch")
                .strings(tag::OLDFILENAMES, &["/old"])
                .string(tag::LICENSE, "GPL")
                .dribbles()
                .string(tag::LICENSE, "MIT")
                .strings(tag::DIRNAMES, &["/new/"])
                .strings(tag::BASENAMES, &["file"])
                .int32(tag::DIRINDEXES, &[0]),
        );
        assert_eq!(p.license.as_deref(), Some("MIT"));
        let paths: Vec<_> = p.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["/new/file"]);
    }

    #[test]
    fn headers_without_a_region_are_read() {
        // A legacy header: the same entries, without the region entry and trailer.
        let blob = HeaderBuilder::package("old", "1.0", "1", "i386").build();
        let il = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
        let dl = u32::from_be_bytes([blob[4], blob[5], blob[6], blob[7]]) as usize;
        let mut legacy = Vec::new();
        legacy.extend_from_slice(&((il - 1) as u32).to_be_bytes());
        legacy.extend_from_slice(&((dl - 16) as u32).to_be_bytes());
        legacy.extend_from_slice(&blob[8 + 16..8 + il * 16]);
        legacy.extend_from_slice(&blob[8 + il * 16..blob.len() - 16]);
        let p = parse_package(&legacy, "/x")
            .expect("valid")
            .expect("package");
        assert_eq!((p.name.as_str(), p.version.as_str()), ("old", "1.0-1"));
        assert_eq!(p.arch.as_deref(), Some("i386"));
    }

    #[test]
    fn gpg_pubkeys_are_skipped() {
        let blob = HeaderBuilder::package("gpg-pubkey", "fd431d51", "4ae0493b", "").build();
        assert_eq!(parse_package(&blob, "/x").expect("valid"), None);
    }

    fn err(blob: &[u8]) -> String {
        parse_package(blob, "/x")
            .expect_err("invalid header")
            .to_string()
    }

    #[test]
    fn truncated_and_overlong_blobs_are_refused() {
        let blob = full().build();
        assert_eq!(
            err(&blob[..5]),
            "rpm header needs at least 8 bytes (index count, data length), the blob has 5"
        );
        let message = err(&blob[..blob.len() - 1]);
        assert!(message.contains("the blob has"), "{message}");
        let mut longer = blob.clone();
        longer.push(0);
        assert!(err(&longer).starts_with("rpm header of 17 index entries"));
        let mut huge = blob.clone();
        huge[0..4].copy_from_slice(&0x0001_0000u32.to_be_bytes());
        assert_eq!(
            err(&huge),
            "rpm header: index count is 65536, expected 1 to 65535"
        );
        assert!(err(&[0, 0, 0, 0, 0, 0, 0, 0]).contains("index count is 0"));
    }

    /// Overwrites field `field` (0 tag, 1 type, 2 offset, 3 count) of index entry `entry`.
    fn patch(blob: &mut [u8], entry: usize, field: usize, value: u32) {
        let at = 8 + entry * 16 + field * 4;
        blob[at..at + 4].copy_from_slice(&value.to_be_bytes());
    }

    /// The index position of `tag` in a blob built from `full()`.
    fn position(blob: &[u8], wanted: u32) -> usize {
        (0..)
            .find(|i| blob[8 + i * 16..12 + i * 16] == wanted.to_be_bytes())
            .expect("tag present")
    }

    #[test]
    fn corrupted_entries_name_the_tag_and_offset() {
        let blob = full().build();
        let mut b = blob.clone();
        patch(&mut b, position(&blob, tag::NAME), 2, 100_000);
        let message = err(&b);
        assert!(
            message.starts_with("rpm header tag 1000 (type 6, data offset 100000, count 1)")
                && message.contains("past the end"),
            "{message}"
        );

        let mut b = blob.clone();
        patch(&mut b, position(&blob, tag::FILESIZES), 3, 1_000_000);
        let message = err(&b);
        assert!(message.contains("needs 4000000 bytes"), "{message}");

        let mut b = blob.clone();
        patch(&mut b, position(&blob, tag::BASENAMES), 3, 100_000_000);
        let message = err(&b);
        assert!(
            message.contains("100000000 strings cannot fit"),
            "{message}"
        );

        let mut b = blob.clone();
        patch(&mut b, position(&blob, tag::VERSION), 1, 4);
        assert!(err(&b).contains("type 4, expected type 6 (string) or 9"));

        let mut b = blob.clone();
        patch(&mut b, position(&blob, tag::EPOCH), 2, u32::MAX);
        assert!(err(&b).contains("negative data offset"));
    }

    #[test]
    fn unterminated_strings_are_refused() {
        // LICENSE, a dribble, is the last thing in the data store: its NUL is the last byte.
        let mut blob = HeaderBuilder::package("x", "1", "1", "noarch")
            .dribbles()
            .string(tag::LICENSE, "MIT")
            .build();
        let nul = blob.len() - 1;
        assert_eq!(blob[nul], 0);
        blob[nul] = b'x';
        let message = err(&blob);
        assert!(
            message.starts_with("rpm header tag 1014 (type 6"),
            "{message}"
        );
        assert!(
            message.ends_with("string 1 of 1 is not NUL-terminated before the data store's end"),
            "{message}"
        );
    }

    #[test]
    fn file_arrays_must_match_the_file_count() {
        let message = err(&HeaderBuilder::package("x", "1", "1", "noarch")
            .strings(tag::OLDFILENAMES, &["/a", "/b"])
            .int16(tag::FILEMODES, &[0o644])
            .build());
        assert_eq!(
            message,
            "rpm header: FILEMODES has 1 entries, expected 2 (one per file)"
        );
        let message = err(&HeaderBuilder::package("x", "1", "1", "noarch")
            .strings(tag::DIRNAMES, &["/"])
            .strings(tag::BASENAMES, &["a"])
            .int32(tag::DIRINDEXES, &[1])
            .build());
        assert_eq!(
            message,
            "rpm header: file 0 has directory index 1, expected below 1"
        );
        let message = err(&HeaderBuilder::package("x", "1", "1", "noarch")
            .strings(tag::DIRNAMES, &["/"])
            .strings(tag::BASENAMES, &["a"])
            .build());
        assert_eq!(message, "rpm header has no DIRINDEXES tag (1116)");
        let message = err(&HeaderBuilder::package("x", "1", "1", "noarch")
            .strings(tag::OLDFILENAMES, &["/a"])
            .strings(tag::FILEDIGESTS, &["xyz"])
            .build());
        assert_eq!(
            message,
            "rpm header: digest of file 0 is \"xyz\", expected 32 hex digits"
        );
        let message = err(&HeaderBuilder::default().string(tag::NAME, "x").build());
        assert_eq!(message, "rpm header has no VERSION tag (1001)");
    }

    #[test]
    fn broken_regions_are_refused() {
        let blob = full().build();
        let data_start = 8 + 17 * 16;
        let trailer = blob.len() - 16 - data_start;
        let mut b = blob.clone();
        patch(&mut b, 0, 3, 15);
        assert!(err(&b).starts_with(
            "rpm header region (tag 63): region entry has type 7 count 15, expected type 7"
        ));
        let mut b = blob.clone();
        patch(&mut b, 0, 2, (trailer + 1) as u32);
        assert!(err(&b).contains("needs 16 bytes"), "{}", err(&b));
        let mut b = blob.clone();
        let at = data_start + trailer + 8;
        b[at..at + 4].copy_from_slice(&(-(18 * 16i32)).to_be_bytes());
        assert_eq!(
            err(&b),
            "rpm header region (tag 63): region covers 18 index entries, the header has 17"
        );
        b[at..at + 4].copy_from_slice(&5i32.to_be_bytes());
        assert!(err(&b).contains("trailer offset 5, expected a negative multiple of 16"));
        let mut b = blob;
        b[data_start + trailer + 3] = 62;
        assert!(err(&b).contains("trailer is tag 62 type 7 count 16, expected tag 63"));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_package(&bytes, "/x");
        }

        #[test]
        fn mutated_blobs_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
        ) {
            let mut blob = full().dribbles().string(tag::LICENSE, "MIT").build();
            for (at, byte) in edits {
                let i = at.index(blob.len());
                blob[i] = byte;
            }
            if truncate {
                blob.truncate(cut.index(blob.len()));
            }
            let _ = parse_package(&blob, "/x");
        }
    }
}

//! Berkeley DB hash `Packages` files (rpm < 4.16: CentOS 7 and 8, RHEL 7 and 8) → the header
//! blobs they hold, read without Berkeley DB: metadata page, bucket pages (walked bucket by bucket
//! through the metadata's spare-page table, then along each bucket's overflow-page chain), and
//! overflow pages for values too big for a bucket page, in either byte order.
//!
//! Every page number, offset and length comes from the file, so each is checked; page chains are
//! followed only through pages not visited before, so a loop in a corrupted file ends in an error.

use std::borrow::Cow;

use super::{HeaderBlob, RpmError};

/// `DB_HASHMAGIC`, at byte 12 of the metadata page, in the file's byte order.
const HASH_MAGIC: u32 = 0x0006_1561;
/// `DB_BTREEMAGIC`: recognised only to say what the file is.
const BTREE_MAGIC: u32 = 0x0005_3162;
/// Bytes of every page's header (`PAGE`: lsn, pgno, prev, next, entries, hf_offset, level, type).
const PAGE_HEADER_LEN: usize = 26;
/// Bytes of the metadata page that are read (`HMETA` up to the end of its spare-page table).
const META_LEN: usize = 224;

/// Page types (`P_*`).
mod page_type {
    pub const HASH_UNSORTED: u8 = 2;
    pub const OVERFLOW: u8 = 7;
    pub const HASH_META: u8 = 8;
    pub const HASH: u8 = 13;
}

/// Hash page item types (`H_*`).
mod item_type {
    pub const KEYDATA: u8 = 1;
    pub const DUPLICATE: u8 = 2;
    pub const OFFPAGE: u8 = 3;
    pub const OFFDUP: u8 = 4;
}

/// A `Packages` file, its metadata checked.
struct Db<'a> {
    bytes: &'a [u8],
    big_endian: bool,
    page_size: usize,
    last_page: u32,
}

/// Reads the header blobs of a Berkeley DB hash `Packages` file, in instance order. The record
/// of key 0 (rpm's counter of instances) is left out.
pub fn header_blobs(packages: &[u8]) -> Result<Vec<HeaderBlob>, RpmError> {
    let meta = packages.get(..META_LEN).ok_or_else(|| {
        meta_error(format!(
            "the file has {} bytes, expected at least {META_LEN} (a metadata page)",
            packages.len()
        ))
    })?;
    let magic_bytes = [meta[12], meta[13], meta[14], meta[15]];
    let big_endian = match (
        u32::from_le_bytes(magic_bytes),
        u32::from_be_bytes(magic_bytes),
    ) {
        (HASH_MAGIC, _) => false,
        (_, HASH_MAGIC) => true,
        (BTREE_MAGIC, _) | (_, BTREE_MAGIC) => {
            return Err(meta_error(
                "a B-tree database, expected a hash database (rpm's Packages)".to_owned(),
            ));
        }
        (le, _) => {
            return Err(meta_error(format!(
                "magic {le:#010x}, expected {HASH_MAGIC:#010x} (Berkeley DB hash)"
            )));
        }
    };
    let word = |at: usize| read_u32(meta, at, big_endian).unwrap_or(0);
    let version = word(16);
    if !(8..=10).contains(&version) {
        return Err(meta_error(format!(
            "hash version {version}, expected 8 to 10 (Berkeley DB 4 and 5)"
        )));
    }
    let page_size = word(20) as usize;
    if !page_size.is_power_of_two() || !(512..=65536).contains(&page_size) {
        return Err(meta_error(format!(
            "page size {page_size}, expected a power of two from 512 to 65536"
        )));
    }
    if meta[24] != 0 {
        return Err(meta_error(format!(
            "encryption algorithm {}, expected 0 (rpm never encrypts Packages)",
            meta[24]
        )));
    }
    if meta[25] != page_type::HASH_META {
        return Err(meta_error(format!(
            "page type {}, expected {} (hash metadata)",
            meta[25],
            page_type::HASH_META
        )));
    }
    // DBMETA_CHKSUM: pages carry a checksum that moves their item index; rpm never sets it.
    if meta[26] & 1 != 0 {
        return Err(meta_error(
            "page checksums enabled, which rpm never uses and this reader does not read".to_owned(),
        ));
    }
    let last_page = word(32);
    let pages_in_file = (packages.len() / page_size) as u64;
    if u64::from(last_page) >= pages_in_file {
        return Err(meta_error(format!(
            "last page is {last_page}, the file holds only {pages_in_file} pages of {page_size} \
             bytes (truncated?)"
        )));
    }
    let max_bucket = word(72);
    if max_bucket >= last_page.max(1) {
        return Err(meta_error(format!(
            "highest bucket is {max_bucket}, expected below the last page {last_page}"
        )));
    }
    let spares: Vec<u32> = (0..32).map(|i| word(96 + 4 * i)).collect();

    let db = Db {
        bytes: packages,
        big_endian,
        page_size,
        last_page,
    };
    let mut visited = vec![false; last_page as usize + 1];
    let mut blobs = Vec::new();
    for bucket in 0..=max_bucket {
        // A bucket's page: the bucket number plus the spare pages of its split point (the
        // number of bits of the bucket number).
        let split_point = (u32::BITS - bucket.leading_zeros()) as usize;
        let first = spares
            .get(split_point)
            .and_then(|spare| bucket.checked_add(*spare))
            .ok_or_else(|| {
                meta_error(format!(
                    "bucket {bucket} has no page: split point {split_point} overflows"
                ))
            })?;
        let mut number = first;
        loop {
            let page = db.page(number, &mut visited, "a bucket page")?;
            if page[25] != page_type::HASH && page[25] != page_type::HASH_UNSORTED {
                return Err(page_error(
                    number,
                    format!(
                        "page type {}, expected {} (hash) for bucket {bucket}",
                        page[25],
                        page_type::HASH
                    ),
                ));
            }
            db.read_bucket_page(number, page, &mut visited, &mut blobs)?;
            number = db.u32(page, 16).unwrap_or(0);
            if number == 0 {
                break;
            }
        }
    }
    blobs.sort_by_key(|b| b.instance);
    Ok(blobs)
}

fn meta_error(problem: String) -> RpmError {
    page_error(0, problem)
}

fn page_error(page: u32, problem: String) -> RpmError {
    RpmError::Bdb { page, problem }
}

fn read_u16(bytes: &[u8], at: usize, big_endian: bool) -> Option<u16> {
    let b: [u8; 2] = bytes.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(if big_endian {
        u16::from_be_bytes(b)
    } else {
        u16::from_le_bytes(b)
    })
}

fn read_u32(bytes: &[u8], at: usize, big_endian: bool) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    })
}

impl<'a> Db<'a> {
    fn u16(&self, page: &[u8], at: usize) -> Option<u16> {
        read_u16(page, at, self.big_endian)
    }

    fn u32(&self, page: &[u8], at: usize) -> Option<u32> {
        read_u32(page, at, self.big_endian)
    }

    /// Page `number`, checked to exist, to say it is that page, and not to have been visited.
    fn page(&self, number: u32, visited: &mut [bool], role: &str) -> Result<&'a [u8], RpmError> {
        if number == 0 || number > self.last_page {
            return Err(page_error(
                number,
                format!(
                    "wanted as {role}, expected a page from 1 to the last page {}",
                    self.last_page
                ),
            ));
        }
        let seen = visited
            .get_mut(number as usize)
            .ok_or_else(|| page_error(number, format!("wanted as {role}, past the last page")))?;
        if *seen {
            return Err(page_error(
                number,
                format!("reached a second time, as {role}: the page chains loop or overlap"),
            ));
        }
        *seen = true;
        let start = number as usize * self.page_size;
        let page = self
            .bytes
            .get(start..start + self.page_size)
            .ok_or_else(|| page_error(number, "past the end of the file".to_owned()))?;
        let says = self.u32(page, 8).unwrap_or(0);
        if says != number {
            return Err(page_error(
                number,
                format!("its header says page {says}, expected {number}"),
            ));
        }
        Ok(page)
    }

    /// Adds the records of one bucket page (key/value item pairs) to `blobs`.
    fn read_bucket_page(
        &self,
        number: u32,
        page: &'a [u8],
        visited: &mut [bool],
        blobs: &mut Vec<HeaderBlob>,
    ) -> Result<(), RpmError> {
        let items = usize::from(self.u16(page, 20).unwrap_or(0));
        let index_end = PAGE_HEADER_LEN + 2 * items;
        if index_end > self.page_size {
            return Err(page_error(
                number,
                format!(
                    "{items} items, more than a {}-byte page can index",
                    self.page_size
                ),
            ));
        }
        if items % 2 != 0 {
            return Err(page_error(
                number,
                format!("{items} items, expected an even number (key, value pairs)"),
            ));
        }
        // Items are packed from the page's end downwards: item i ends where item i-1 starts.
        let mut end = self.page_size;
        let mut item = |i: usize| -> Result<&'a [u8], RpmError> {
            let start = usize::from(self.u16(page, PAGE_HEADER_LEN + 2 * i).unwrap_or(0));
            if start < index_end || start >= end {
                return Err(page_error(
                    number,
                    format!(
                        "item {i} starts at offset {start}, expected from {index_end} to below {end}"
                    ),
                ));
            }
            let bytes = &page[start..end];
            end = start;
            Ok(bytes)
        };
        for pair in 0..items / 2 {
            let key = item(2 * pair)?;
            let value = item(2 * pair + 1)?;
            let key = self.item_data(number, 2 * pair, key, visited)?;
            let key: [u8; 4] = key.as_ref().try_into().map_err(|_| {
                page_error(
                    number,
                    format!(
                        "item {} is a key of {} bytes, expected 4 (a package instance number)",
                        2 * pair,
                        key.len()
                    ),
                )
            })?;
            let instance = if self.big_endian {
                u32::from_be_bytes(key)
            } else {
                u32::from_le_bytes(key)
            };
            let value = self.item_data(number, 2 * pair + 1, value, visited)?;
            // Key 0 holds rpm's instance counter, not a header.
            if instance != 0 {
                blobs.push(HeaderBlob {
                    instance,
                    blob: value.into_owned(),
                });
            }
        }
        Ok(())
    }

    /// The data of a hash item: inline (`H_KEYDATA`) or in an overflow chain (`H_OFFPAGE`).
    fn item_data(
        &self,
        number: u32,
        index: usize,
        item: &'a [u8],
        visited: &mut [bool],
    ) -> Result<Cow<'a, [u8]>, RpmError> {
        match item.first().copied() {
            Some(item_type::KEYDATA) => Ok(Cow::Borrowed(&item[1..])),
            Some(item_type::OFFPAGE) => {
                let (Some(first), Some(len), 12) =
                    (self.u32(item, 4), self.u32(item, 8), item.len())
                else {
                    return Err(page_error(
                        number,
                        format!(
                            "item {index} is an off-page reference of {} bytes, expected 12",
                            item.len()
                        ),
                    ));
                };
                self.overflow(number, index, first, len, visited)
                    .map(Cow::Owned)
            }
            Some(kind @ (item_type::DUPLICATE | item_type::OFFDUP)) => Err(page_error(
                number,
                format!(
                    "item {index} is of type {kind} (duplicates), which rpm's Packages never holds"
                ),
            )),
            other => Err(page_error(
                number,
                format!("item {index} is of type {other:?}, expected 1 (inline) or 3 (off-page)"),
            )),
        }
    }

    /// Reads `len` bytes along the overflow chain starting at page `first`.
    fn overflow(
        &self,
        number: u32,
        index: usize,
        first: u32,
        len: u32,
        visited: &mut [bool],
    ) -> Result<Vec<u8>, RpmError> {
        let len = len as usize;
        if len == 0 || len > self.bytes.len() {
            return Err(page_error(
                number,
                format!(
                    "item {index} is an off-page item of {len} bytes, expected 1 to the file's {}",
                    self.bytes.len()
                ),
            ));
        }
        let mut data = Vec::with_capacity(len);
        let mut page_number = first;
        while data.len() < len {
            if page_number == 0 {
                return Err(page_error(
                    number,
                    format!(
                        "item {index}'s overflow chain ends after {} of its {len} bytes",
                        data.len()
                    ),
                ));
            }
            let page = self.page(page_number, visited, "an overflow page")?;
            if page[25] != page_type::OVERFLOW {
                return Err(page_error(
                    page_number,
                    format!(
                        "page type {}, expected {} (overflow)",
                        page[25],
                        page_type::OVERFLOW
                    ),
                ));
            }
            let held = usize::from(self.u16(page, 22).unwrap_or(0));
            let left = len - data.len();
            if held == 0 || held > left || PAGE_HEADER_LEN + held > self.page_size {
                return Err(page_error(
                    page_number,
                    format!(
                        "overflow page holds {held} bytes, expected 1 to {} ({left} of the \
                         item's {len} bytes are left)",
                        left.min(self.page_size - PAGE_HEADER_LEN)
                    ),
                ));
            }
            data.extend_from_slice(&page[PAGE_HEADER_LEN..PAGE_HEADER_LEN + held]);
            page_number = self.u32(page, 16).unwrap_or(0);
        }
        Ok(data)
    }
}

/// Builds Berkeley DB hash files for tests, laid out as Berkeley DB lays them out.
#[cfg(test)]
pub(crate) mod testdb {
    use super::{PAGE_HEADER_LEN, item_type, page_type};

    /// A hash database under construction.
    pub(crate) struct BdbBuilder {
        /// Page size.
        pub(crate) page_size: usize,
        /// Byte order.
        pub(crate) big_endian: bool,
        /// Number of buckets.
        pub(crate) buckets: usize,
        /// Values longer than this go to overflow pages.
        pub(crate) inline_max: usize,
        /// Key/value records, spread over the buckets in turn.
        pub(crate) records: Vec<(Vec<u8>, Vec<u8>)>,
    }

    impl BdbBuilder {
        fn put16(&self, page: &mut [u8], at: usize, v: u16) {
            let b = if self.big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            page[at..at + 2].copy_from_slice(&b);
        }

        fn put32(&self, page: &mut [u8], at: usize, v: u32) {
            let b = if self.big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            page[at..at + 4].copy_from_slice(&b);
        }

        fn new_page(&self, pages: &mut Vec<Vec<u8>>, kind: u8) -> usize {
            let number = pages.len();
            let mut page = vec![0; self.page_size];
            self.put32(&mut page, 8, number as u32);
            page[25] = kind;
            if kind != page_type::OVERFLOW {
                self.put16(&mut page, 22, self.page_size as u16);
            }
            pages.push(page);
            number
        }

        /// An instance number as a key in this file's byte order.
        pub(crate) fn key(&self, instance: u32) -> Vec<u8> {
            if self.big_endian {
                instance.to_be_bytes().to_vec()
            } else {
                instance.to_le_bytes().to_vec()
            }
        }

        /// The file.
        pub(crate) fn build(&self) -> Vec<u8> {
            let mut pages = vec![vec![0; self.page_size]];
            for _ in 0..self.buckets {
                self.new_page(&mut pages, page_type::HASH);
            }
            let mut tails: Vec<usize> = (1..=self.buckets).collect();
            for (i, (key, value)) in self.records.iter().enumerate() {
                let mut items = Vec::new();
                let mut k = vec![item_type::KEYDATA];
                k.extend_from_slice(key);
                items.push(k);
                if value.len() <= self.inline_max {
                    let mut v = vec![item_type::KEYDATA];
                    v.extend_from_slice(value);
                    items.push(v);
                } else {
                    let mut first = 0;
                    let mut previous: Option<usize> = None;
                    for chunk in value.chunks(self.page_size - PAGE_HEADER_LEN) {
                        let number = self.new_page(&mut pages, page_type::OVERFLOW);
                        let page = &mut pages[number];
                        page[PAGE_HEADER_LEN..PAGE_HEADER_LEN + chunk.len()].copy_from_slice(chunk);
                        let mut header = page.clone();
                        self.put16(&mut header, 22, chunk.len() as u16);
                        pages[number] = header;
                        match previous {
                            Some(p) => {
                                let mut prev = pages[p].clone();
                                self.put32(&mut prev, 16, number as u32);
                                pages[p] = prev;
                            }
                            None => first = number,
                        }
                        previous = Some(number);
                    }
                    let mut v = vec![item_type::OFFPAGE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
                    self.put32(&mut v, 4, first as u32);
                    self.put32(&mut v, 8, value.len() as u32);
                    items.push(v);
                }
                let bucket = i % self.buckets;
                let need: usize = items.iter().map(|it| it.len() + 2).sum();
                let mut number = tails[bucket];
                let free = |page: &Vec<u8>, db: &BdbBuilder| {
                    let entries = usize::from(read16(page, 20, db.big_endian));
                    let low = usize::from(read16(page, 22, db.big_endian));
                    low - (PAGE_HEADER_LEN + 2 * entries)
                };
                if free(&pages[number], self) < need {
                    let next = self.new_page(&mut pages, page_type::HASH);
                    let mut page = pages[number].clone();
                    self.put32(&mut page, 16, next as u32);
                    pages[number] = page;
                    tails[bucket] = next;
                    number = next;
                }
                let mut page = pages[number].clone();
                for it in items {
                    let entries = usize::from(read16(&page, 20, self.big_endian));
                    let low = usize::from(read16(&page, 22, self.big_endian));
                    let start = low - it.len();
                    page[start..low].copy_from_slice(&it);
                    self.put16(&mut page, PAGE_HEADER_LEN + 2 * entries, start as u16);
                    self.put16(&mut page, 20, (entries + 1) as u16);
                    self.put16(&mut page, 22, start as u16);
                }
                pages[number] = page;
            }
            let last = pages.len() - 1;
            let mut meta = vec![0; self.page_size];
            self.put32(&mut meta, 12, super::HASH_MAGIC);
            self.put32(&mut meta, 16, 9);
            self.put32(&mut meta, 20, self.page_size as u32);
            meta[25] = page_type::HASH_META;
            self.put32(&mut meta, 32, last as u32);
            self.put32(&mut meta, 72, (self.buckets - 1) as u32);
            // Bucket b is on page b + 1: every split point has one spare page before it.
            for i in 0..32 {
                self.put32(&mut meta, 96 + 4 * i, 1);
            }
            pages[0] = meta;
            pages.concat()
        }
    }

    fn read16(page: &[u8], at: usize, big_endian: bool) -> u16 {
        let b = [page[at], page[at + 1]];
        if big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testdb::BdbBuilder;
    use super::*;
    use proptest::prelude::*;

    fn builder(page_size: usize, big_endian: bool) -> BdbBuilder {
        let mut b = BdbBuilder {
            page_size,
            big_endian,
            buckets: 2,
            inline_max: 100,
            records: Vec::new(),
        };
        let mut records = vec![(b.key(0), b.key(3))];
        for (instance, len) in [(1u32, 40usize), (2, 3000), (3, 700)] {
            records.push((b.key(instance), vec![instance as u8; len]));
        }
        b.records = records;
        b
    }

    fn expected() -> Vec<(u32, Vec<u8>)> {
        vec![(1, vec![1; 40]), (2, vec![2; 3000]), (3, vec![3; 700])]
    }

    fn read(file: &[u8]) -> Result<Vec<(u32, Vec<u8>)>, RpmError> {
        Ok(header_blobs(file)?
            .into_iter()
            .map(|b| (b.instance, b.blob))
            .collect())
    }

    #[test]
    fn reads_inline_and_overflow_values_in_both_byte_orders() {
        for (page_size, big_endian) in [(4096, false), (512, true), (512, false), (1024, true)] {
            let file = builder(page_size, big_endian).build();
            assert_eq!(
                read(&file).expect("valid file"),
                expected(),
                "{page_size} {big_endian}"
            );
        }
    }

    #[test]
    fn follows_bucket_chains() {
        let mut b = builder(512, false);
        b.buckets = 1;
        b.inline_max = 200;
        b.records = (1..=20u32)
            .map(|i| (b.key(i), vec![i as u8; 150]))
            .collect();
        let blobs = read(&b.build()).expect("valid");
        assert_eq!(blobs.len(), 20);
        assert_eq!(blobs[19], (20, vec![20; 150]));
    }

    #[test]
    fn empty_databases_have_no_records() {
        let mut b = builder(4096, false);
        b.records.clear();
        assert_eq!(read(&b.build()).expect("valid"), []);
        // rpm's instance counter alone.
        b.records = vec![(b.key(0), b.key(0))];
        assert_eq!(read(&b.build()).expect("valid"), []);
    }

    fn err(file: &[u8]) -> String {
        read(file).expect_err("invalid file").to_string()
    }

    fn put32(file: &mut [u8], at: usize, v: u32) {
        file[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn refuses_other_files() {
        assert_eq!(
            err(&[0; 10]),
            "Berkeley DB Packages, page 0: the file has 10 bytes, expected at least 224 (a \
             metadata page)"
        );
        let mut file = builder(512, false).build();
        put32(&mut file, 12, BTREE_MAGIC);
        assert!(err(&file).contains("a B-tree database"));
        put32(&mut file, 12, 0x1234);
        assert!(err(&file).contains("magic 0x00001234, expected 0x00061561"));
        let mut file = builder(512, false).build();
        put32(&mut file, 20, 1000);
        assert!(err(&file).contains("page size 1000"));
        let mut file = builder(512, false).build();
        file[26] = 1;
        assert!(err(&file).contains("page checksums"));
        let mut file = builder(512, false).build();
        file[24] = 1;
        assert!(err(&file).contains("encryption"));
    }

    #[test]
    fn refuses_truncated_files_and_bad_pages() {
        let file = builder(512, false).build();
        let message = err(&file[..file.len() - 512]);
        assert!(message.contains("the file holds only"), "{message}");

        // Bucket 1's page claims to be another page.
        let mut b = file.clone();
        put32(&mut b, 2 * 512 + 8, 7);
        assert_eq!(
            err(&b),
            "Berkeley DB Packages, page 2: its header says page 7, expected 2"
        );

        // Bucket 0's page chains to itself.
        let mut b = file.clone();
        put32(&mut b, 512 + 16, 1);
        assert!(
            err(&b).contains("page 1: reached a second time"),
            "{}",
            err(&b)
        );

        // An item offset points into the index.
        let mut b = file.clone();
        b[512 + 26] = 3;
        b[512 + 27] = 0;
        assert!(err(&b).contains("item 0 starts at offset 3"), "{}", err(&b));

        // An overflow page claims more bytes than a page holds.
        let overflow = (3..file.len() / 512)
            .find(|p| file[p * 512 + 25] == 7)
            .expect("an overflow page");
        let mut b = file.clone();
        b[overflow * 512 + 22] = 0xff;
        b[overflow * 512 + 23] = 0xff;
        assert!(
            err(&b).contains("overflow page holds 65535 bytes"),
            "{}",
            err(&b)
        );

        // An overflow chain that ends early.
        let mut b = file.clone();
        put32(&mut b, overflow * 512 + 16, 0);
        let message = err(&b);
        assert!(message.contains("overflow chain ends after"), "{message}");
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..2048),
            big_endian in any::<bool>(),
        ) {
            let mut file = bytes;
            if file.len() >= 224 {
                // Give the metadata a valid magic, version and page size so the walk starts.
                let builder = builder(512, big_endian);
                let meta = builder.build();
                file[12..24].copy_from_slice(&meta[12..24]);
                file[24] = 0;
                file[25] = 8;
                file[26] = 0;
            }
            let _ = header_blobs(&file);
        }

        #[test]
        fn mutated_files_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12),
            big_endian in any::<bool>(),
        ) {
            let mut file = builder(512, big_endian).build();
            for (at, byte) in edits {
                let i = at.index(file.len());
                file[i] = byte;
            }
            let _ = header_blobs(&file);
        }
    }
}

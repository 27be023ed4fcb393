//! rpm's ndb `Packages.db` (rpm ≥ 4.16 built with `--enable-ndb`: SUSE Linux Enterprise 15 SP3
//! and later, openSUSE) → the header blobs it holds, read without rpm.
//!
//! The format (rpm's `lib/backend/ndb/rpmpkg.c`), all words little-endian, the file in 16-byte
//! blocks: a 32-byte header (`RpmP`, version 0, generation, number of 4 KiB slot pages, next
//! package index); the slot pages, 16-byte slots (`Slot`, package index, first block, block
//! count; block 0 is a free slot) after the header; then the blobs, each `BlbS`, package index,
//! generation, length, the header blob, zero padding to a block, and a trailer (Adler-32 of
//! everything before it, length, `BlbE`). `Index.db` holds rpm's secondary indexes (names,
//! files, provides) and is not needed to list the packages.
//!
//! Every count, offset and length comes from the file, so each is checked against the file's
//! size before it is used: a hostile file costs at most its own size in memory, and one pass.

use super::{HeaderBlob, RpmError};

/// `RpmP`: the file's first word.
const PKGDB_MAGIC: [u8; 4] = *b"RpmP";
/// The only version rpm writes.
const PKGDB_VERSION: u32 = 0;
/// Bytes of the file header, at the start of the first slot page.
const HEADER_LEN: usize = 32;
/// `Slot`: the first word of every slot, used or free.
const SLOT_MAGIC: [u8; 4] = *b"Slot";
/// `BlbS`: the first word of a blob.
const BLOB_HEAD_MAGIC: [u8; 4] = *b"BlbS";
/// `BlbE`: the last word of a blob.
const BLOB_TAIL_MAGIC: [u8; 4] = *b"BlbE";
/// Bytes of a slot.
const SLOT_LEN: usize = 16;
/// Bytes of a block, the unit of blob offsets and lengths.
const BLOCK_LEN: usize = 16;
/// Bytes of a slot page.
const PAGE_LEN: usize = 4096;
/// Bytes before a blob's data (magic, package index, generation, length).
const BLOB_HEAD_LEN: usize = 16;
/// Bytes after a blob's data and padding (Adler-32, length, magic).
const BLOB_TAIL_LEN: usize = 12;

/// One used slot: where a package's blob is.
#[derive(Clone, Copy, Debug)]
struct Slot {
    /// rpm's package index (the instance number).
    package: u32,
    /// First block of the blob.
    block: u32,
    /// Blocks of the blob.
    blocks: u32,
    /// Byte offset of the slot in the file, for error messages.
    at: usize,
}

/// Reads the header blobs of an ndb `Packages.db`, in instance (package index) order.
pub fn header_blobs(packages: &[u8]) -> Result<Vec<HeaderBlob>, RpmError> {
    let header = packages.get(..HEADER_LEN).ok_or_else(|| {
        error(
            0,
            format!(
                "the file has {} bytes, expected at least {HEADER_LEN} (the ndb header)",
                packages.len()
            ),
        )
    })?;
    if header[..4] != PKGDB_MAGIC {
        return Err(error(
            0,
            format!(
                "magic {:02x?}, expected \"RpmP\" (an rpm ndb Packages.db)",
                &header[..4]
            ),
        ));
    }
    let version = le32(header, 4);
    if version != PKGDB_VERSION {
        return Err(error(
            4,
            format!("version {version}, expected {PKGDB_VERSION}"),
        ));
    }
    if !packages.len().is_multiple_of(BLOCK_LEN) {
        return Err(error(
            0,
            format!(
                "the file has {} bytes, expected a multiple of {BLOCK_LEN} (truncated?)",
                packages.len()
            ),
        ));
    }
    let slot_pages = le32(header, 12);
    let pages_in_file = packages.len() / PAGE_LEN;
    if slot_pages == 0 || slot_pages as usize > pages_in_file {
        return Err(error(
            12,
            format!(
                "{slot_pages} slot pages, expected 1 to {pages_in_file} (the file has {} bytes; \
                 truncated?)",
                packages.len()
            ),
        ));
    }
    let slot_area = slot_pages as usize * PAGE_LEN;
    let slots = read_slots(packages, slot_area)?;
    check_no_overlap(&slots)?;

    let mut blobs = Vec::with_capacity(slots.len());
    for slot in &slots {
        blobs.push(HeaderBlob {
            instance: slot.package,
            blob: read_blob(packages, slot)?.to_vec(),
        });
    }
    Ok(blobs)
}

/// The used slots of the slot area (its first `slot_area` bytes), sorted by package index, each
/// pointing past the slot area and inside the file; a package index used twice is an error.
fn read_slots(packages: &[u8], slot_area: usize) -> Result<Vec<Slot>, RpmError> {
    let file_blocks = packages.len() / BLOCK_LEN;
    let first_blob_block = slot_area / BLOCK_LEN;
    let mut slots = Vec::new();
    for at in (HEADER_LEN..slot_area).step_by(SLOT_LEN) {
        let bytes = &packages[at..at + SLOT_LEN];
        if bytes[..4] != SLOT_MAGIC {
            return Err(error(
                at as u64,
                format!("slot magic {:02x?}, expected \"Slot\"", &bytes[..4]),
            ));
        }
        let (package, block, blocks) = (le32(bytes, 4), le32(bytes, 8), le32(bytes, 12));
        if block == 0 {
            continue;
        }
        let slot = Slot {
            package,
            block,
            blocks,
            at,
        };
        let end = u64::from(block) + u64::from(blocks);
        if package == 0 || blocks == 0 {
            return Err(slot_error(
                &slot,
                "expected a package index and a block count above 0",
            ));
        }
        if (block as usize) < first_blob_block {
            return Err(slot_error(
                &slot,
                &format!(
                    "the blob starts inside the slot pages, which end at block {first_blob_block}"
                ),
            ));
        }
        if end > file_blocks as u64 {
            return Err(slot_error(
                &slot,
                &format!("the blob ends past the file's {file_blocks} blocks (truncated?)"),
            ));
        }
        slots.push(slot);
    }
    slots.sort_by_key(|s| s.package);
    if let Some(pair) = slots.windows(2).find(|w| w[0].package == w[1].package) {
        return Err(slot_error(
            &pair[1],
            &format!(
                "package index {} is also in the slot at byte {}, expected each once",
                pair[1].package, pair[0].at
            ),
        ));
    }
    Ok(slots)
}

/// Fails when two slots claim the same blocks (rpm never writes that; a reader that allowed it
/// would read one blob as two packages).
fn check_no_overlap(slots: &[Slot]) -> Result<(), RpmError> {
    let mut by_block: Vec<&Slot> = slots.iter().collect();
    by_block.sort_by_key(|s| s.block);
    for pair in by_block.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if u64::from(a.block) + u64::from(a.blocks) > u64::from(b.block) {
            return Err(slot_error(
                b,
                &format!(
                    "the blob overlaps that of package {} (blocks {} to {}), expected separate \
                     blobs",
                    a.package,
                    a.block,
                    u64::from(a.block) + u64::from(a.blocks) - 1
                ),
            ));
        }
    }
    Ok(())
}

/// The header blob a slot points at, its head, length and trailer checked.
fn read_blob<'a>(packages: &'a [u8], slot: &Slot) -> Result<&'a [u8], RpmError> {
    let start = slot.block as usize * BLOCK_LEN;
    let len = slot.blocks as usize * BLOCK_LEN;
    // read_slots checked that the blocks are inside the file.
    let area = &packages[start..start + len];
    let blob_error = |at: usize, problem: String| {
        error(
            (start + at) as u64,
            format!(
                "blob of package {} (slot at byte {}): {problem}",
                slot.package, slot.at
            ),
        )
    };
    if len < BLOB_HEAD_LEN + BLOB_TAIL_LEN {
        return Err(blob_error(
            0,
            format!(
                "{} blocks, expected at least {} (head and trailer)",
                slot.blocks,
                (BLOB_HEAD_LEN + BLOB_TAIL_LEN).div_ceil(BLOCK_LEN)
            ),
        ));
    }
    if area[..4] != BLOB_HEAD_MAGIC {
        return Err(blob_error(
            0,
            format!("magic {:02x?}, expected \"BlbS\"", &area[..4]),
        ));
    }
    let package = le32(area, 4);
    if package != slot.package {
        return Err(blob_error(
            4,
            format!(
                "package index {package}, expected {} (the slot's)",
                slot.package
            ),
        ));
    }
    let data_len = le32(area, 12) as usize;
    let expected_blocks = (BLOB_HEAD_LEN + BLOB_TAIL_LEN)
        .checked_add(data_len)
        .map(|n| n.div_ceil(BLOCK_LEN));
    if expected_blocks != Some(slot.blocks as usize) {
        return Err(blob_error(
            12,
            format!(
                "length {data_len} needs {} blocks, the slot has {}",
                expected_blocks.map_or_else(|| "too many".to_owned(), |n| n.to_string()),
                slot.blocks
            ),
        ));
    }
    let tail_at = len - BLOB_TAIL_LEN;
    let tail = &area[tail_at..];
    if tail[8..] != BLOB_TAIL_MAGIC {
        return Err(blob_error(
            tail_at + 8,
            format!("trailer magic {:02x?}, expected \"BlbE\"", &tail[8..]),
        ));
    }
    let tail_len = le32(tail, 4) as usize;
    if tail_len != data_len {
        return Err(blob_error(
            tail_at + 4,
            format!("trailer length {tail_len}, expected {data_len} (the head's)"),
        ));
    }
    let stored = le32(tail, 0);
    let computed = adler32(&area[..tail_at]);
    if stored != computed {
        return Err(blob_error(
            tail_at,
            format!("Adler-32 {stored:#010x}, the blob's bytes give {computed:#010x}"),
        ));
    }
    Ok(&area[BLOB_HEAD_LEN..BLOB_HEAD_LEN + data_len])
}

/// Adler-32 (RFC 1950) of `bytes`, as rpm computes it over a blob.
fn adler32(bytes: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    // The largest run of bytes whose sums cannot overflow a u32 before the reduction.
    const RUN: usize = 5552;
    let (mut a, mut b) = (1u32, 0u32);
    for run in bytes.chunks(RUN) {
        for &byte in run {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// The little-endian word at `at`; callers index inside the slice they checked.
fn le32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn error(offset: u64, problem: String) -> RpmError {
    RpmError::Ndb { offset, problem }
}

fn slot_error(slot: &Slot, problem: &str) -> RpmError {
    error(
        slot.at as u64,
        format!(
            "slot of package {} (blocks {} + {}): {problem}",
            slot.package, slot.block, slot.blocks
        ),
    )
}

/// Builds ndb `Packages.db` files for tests, laid out as rpm lays them out.
#[cfg(test)]
pub(crate) mod testdb {
    use super::{
        BLOB_HEAD_LEN, BLOB_HEAD_MAGIC, BLOB_TAIL_LEN, BLOB_TAIL_MAGIC, BLOCK_LEN, HEADER_LEN,
        PAGE_LEN, PKGDB_MAGIC, SLOT_LEN, SLOT_MAGIC, adler32,
    };

    /// A `Packages.db` of `slot_pages` slot pages holding `records` (package index, blob) in
    /// that order: slots from the first free one, blobs one after the other past the slot pages.
    pub(crate) fn ndb_with(slot_pages: usize, records: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let mut file = vec![0u8; slot_pages * PAGE_LEN];
        file[..4].copy_from_slice(&PKGDB_MAGIC);
        file[8..12].copy_from_slice(&1u32.to_le_bytes());
        file[12..16].copy_from_slice(&(slot_pages as u32).to_le_bytes());
        let next = records.iter().map(|r| r.0).max().unwrap_or(0) + 1;
        file[16..20].copy_from_slice(&next.to_le_bytes());
        for at in (HEADER_LEN..file.len()).step_by(SLOT_LEN) {
            file[at..at + 4].copy_from_slice(&SLOT_MAGIC);
        }
        for (i, (package, blob)) in records.iter().enumerate() {
            let block = file.len() / BLOCK_LEN;
            let blocks = (BLOB_HEAD_LEN + blob.len() + BLOB_TAIL_LEN).div_ceil(BLOCK_LEN);
            let mut area = Vec::with_capacity(blocks * BLOCK_LEN);
            area.extend_from_slice(&BLOB_HEAD_MAGIC);
            area.extend_from_slice(&package.to_le_bytes());
            area.extend_from_slice(&7u32.to_le_bytes());
            area.extend_from_slice(&(blob.len() as u32).to_le_bytes());
            area.extend_from_slice(blob);
            area.resize(blocks * BLOCK_LEN - BLOB_TAIL_LEN, 0);
            let sum = adler32(&area);
            area.extend_from_slice(&sum.to_le_bytes());
            area.extend_from_slice(&(blob.len() as u32).to_le_bytes());
            area.extend_from_slice(&BLOB_TAIL_MAGIC);
            file.extend_from_slice(&area);
            let slot = HEADER_LEN + i * SLOT_LEN;
            file[slot + 4..slot + 8].copy_from_slice(&package.to_le_bytes());
            file[slot + 8..slot + 12].copy_from_slice(&(block as u32).to_le_bytes());
            file[slot + 12..slot + 16].copy_from_slice(&(blocks as u32).to_le_bytes());
        }
        file
    }
}

#[cfg(test)]
mod tests {
    use super::testdb::ndb_with;
    use super::*;
    use proptest::prelude::*;

    fn records() -> Vec<(u32, Vec<u8>)> {
        vec![
            (5, b"fifth package's header".to_vec()),
            (2, vec![0xab; 4000]),
            (9, Vec::new()),
        ]
    }

    fn read(file: &[u8]) -> Result<Vec<(u32, Vec<u8>)>, RpmError> {
        Ok(header_blobs(file)?
            .into_iter()
            .map(|b| (b.instance, b.blob))
            .collect())
    }

    fn err(file: &[u8]) -> String {
        read(file).expect_err("refused").to_string()
    }

    fn put32(file: &mut [u8], at: usize, v: u32) {
        file[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn reads_blobs_in_package_index_order() {
        let mut expected = records();
        expected.sort_by_key(|r| r.0);
        assert_eq!(read(&ndb_with(1, &records())).expect("valid"), expected);
        assert_eq!(read(&ndb_with(3, &records())).expect("valid"), expected);
        assert_eq!(read(&ndb_with(1, &[])).expect("empty"), []);
    }

    #[test]
    fn free_slots_are_skipped_wherever_they_are() {
        let mut file = ndb_with(1, &records());
        // Free the first slot (package 5): its blob stays, as after an erase before the
        // blob is zeroed.
        put32(&mut file, HEADER_LEN + 8, 0);
        let read = read(&file).expect("valid");
        assert_eq!(
            read.iter().map(|r| r.0).collect::<Vec<_>>(),
            [2, 9],
            "package 5 is gone"
        );
    }

    #[test]
    fn adler32_matches_rfc_1950() {
        // Known values: zlib's adler32 of "Wikipedia" and of 100 000 0xff bytes (which needs
        // the periodic reduction).
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
        assert_eq!(adler32(b""), 1);
        assert_eq!(adler32(&vec![0xff; 100_000]), 0x149a_302c);
    }

    #[test]
    fn refuses_other_files() {
        assert!(err(b"").contains("expected at least 32"), "{}", err(b""));
        let sqlite = b"SQLite format 3\0 and then some more bytes for a header..";
        assert!(err(sqlite).contains("expected \"RpmP\""), "{}", err(sqlite));
        let mut file = ndb_with(1, &records());
        put32(&mut file, 4, 1);
        assert!(
            err(&file).contains("version 1, expected 0"),
            "{}",
            err(&file)
        );
    }

    #[test]
    fn refuses_truncated_files() {
        let file = ndb_with(1, &records());
        let message = err(&file[..file.len() - 16]);
        assert!(message.contains("ends past the file's"), "{message}");
        let message = err(&file[..file.len() - 3]);
        assert!(message.contains("multiple of 16"), "{message}");
        let message = err(&file[..2048]);
        assert!(
            message.contains("1 slot pages, expected 1 to 0"),
            "{message}"
        );
        // Every cut is refused (the last blob ends at the end of the file); none panics.
        for cut in 0..file.len() {
            assert!(read(&file[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn refuses_bad_slots() {
        let file = ndb_with(2, &records());
        let slot = HEADER_LEN;
        let mut b = file.clone();
        b[slot] = b'X';
        assert!(err(&b).contains("byte 32: slot magic"), "{}", err(&b));
        let mut b = file.clone();
        put32(&mut b, 12, 1_000_000);
        assert!(err(&b).contains("1000000 slot pages"), "{}", err(&b));
        let mut b = file.clone();
        put32(&mut b, slot + 8, 3);
        assert!(
            err(&b).contains("starts inside the slot pages"),
            "{}",
            err(&b)
        );
        let mut b = file.clone();
        put32(&mut b, slot + 12, u32::MAX);
        assert!(err(&b).contains("ends past the file"), "{}", err(&b));
        let mut b = file.clone();
        put32(&mut b, slot + 4, 0);
        assert!(err(&b).contains("above 0"), "{}", err(&b));
        let mut b = file.clone();
        put32(&mut b, slot + 4, 2);
        assert!(
            err(&b).contains("package index 2 is also in"),
            "{}",
            err(&b)
        );
        // Slot 2 (package 9) pointed at package 2's blob.
        let mut b = file.clone();
        let blob_of_2 = le32(&b, slot + SLOT_LEN + 8);
        put32(&mut b, slot + 2 * SLOT_LEN + 8, blob_of_2);
        assert!(
            err(&b).contains("overlaps that of package 2"),
            "{}",
            err(&b)
        );
    }

    #[test]
    fn refuses_bad_blobs() {
        let file = ndb_with(1, &records());
        let first = le32(&file, HEADER_LEN + 8) as usize * BLOCK_LEN;
        let mut b = file.clone();
        b[first] = b'X';
        assert!(err(&b).contains("expected \"BlbS\""), "{}", err(&b));
        let mut b = file.clone();
        put32(&mut b, first + 4, 6);
        assert!(
            err(&b).contains("package index 6, expected 5"),
            "{}",
            err(&b)
        );
        let mut b = file.clone();
        put32(&mut b, first + 12, u32::MAX);
        assert!(err(&b).contains("length 4294967295 needs"), "{}", err(&b));
        // A flipped data byte: the checksum says so.
        let mut b = file.clone();
        b[first + BLOB_HEAD_LEN] ^= 1;
        assert!(err(&b).contains("Adler-32"), "{}", err(&b));
        // The blob of package 5 is 22 + 28 bytes: 4 blocks; its trailer ends at block 4.
        let tail = first + 4 * BLOCK_LEN - BLOB_TAIL_LEN;
        let mut b = file.clone();
        b[tail + 8] = b'X';
        assert!(err(&b).contains("expected \"BlbE\""), "{}", err(&b));
        let mut b = file.clone();
        put32(&mut b, tail + 4, 21);
        assert!(err(&b).contains("trailer length 21"), "{}", err(&b));
        // A slot too short for a head and a trailer.
        let mut b = file.clone();
        put32(&mut b, HEADER_LEN + 12, 1);
        assert!(
            err(&b).contains("1 blocks, expected at least 2"),
            "{}",
            err(&b)
        );
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..9000)) {
            let mut file = bytes;
            if file.len() >= HEADER_LEN {
                // A valid header, so the slot walk starts.
                file[..4].copy_from_slice(&PKGDB_MAGIC);
                file[4..8].copy_from_slice(&0u32.to_le_bytes());
                file[12..16].copy_from_slice(&1u32.to_le_bytes());
            }
            let _ = header_blobs(&file);
        }

        #[test]
        fn mutated_files_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12),
        ) {
            let mut file = ndb_with(1, &records());
            for (at, byte) in edits {
                let i = at.index(file.len());
                file[i] = byte;
            }
            let _ = header_blobs(&file);
        }
    }
}

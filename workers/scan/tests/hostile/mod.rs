//! Generators of the hostile image archives of issue 13, each a `docker save`-shaped archive
//! (`manifest.json`, a config, `<id>/layer.tar` layers) written to a file that stays small on
//! disk: gigabytes of content are gzip streams of zeros built from one compressed chunk repeated
//! (a deflate stream may be cut into independently compressed, sync-flushed pieces), or GNU
//! sparse tar entries (a hole costs nothing).
//!
//! Shared by `hostile_archives.rs` (what a scan of each says) and `scan_memory.rs` (time and peak
//! memory of each scan in a child process).

#![allow(dead_code, reason = "each test target uses a part of the generators")]

use std::io::Write as _;
use std::path::{Path, PathBuf};

use flate2::{Compress, Compression, Crc, FlushCompress};

/// One MiB.
pub const MIB: u64 = 1 << 20;

/// A hostile archive of the issue, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hostile {
    /// 24 gzip-compressed `md5sums` files of 256 MiB each (about 6 MB of archive).
    Md5sumsBomb,
    /// 24 gzip-compressed `md5sums` files of 60 MiB each: each under the per-file limit, together
    /// over the total.
    Md5sumsUnderFileLimit,
    /// One 256 MiB status file plus 8 hard links to it.
    StatusHardlinks,
    /// A 60 MiB status file (under the per-file limit) of 983,040 tiny installed stanzas.
    ManyTinyStanzas,
    /// One installed package whose 60 MiB `md5sums` lists 983,040 files.
    ManyPackageFiles,
    /// A 2 GiB status file.
    HugeStatus,
    /// A sparse `md5sums` entry of 20 GiB.
    SparseMd5sums,
    /// A root filesystem directory with a sparse `md5sums` file of 20 GiB (`slipway scan DIR`).
    SparseMd5sumsDirectory,
    /// 50,000 copies of one layer name in `manifest.json`.
    RepeatedLayers,
    /// A missing layer listed twice.
    MissingLayerTwice,
    /// A gzip layer cut in the middle.
    TruncatedGzip,
    /// A dpkg status file with a stanza without `Version:`.
    DpkgStanzaWithoutVersion,
    /// An apk database with an entry without `V:`.
    ApkEntryWithoutVersion,
}

impl Hostile {
    /// Every hostile archive.
    pub const ALL: [Hostile; 13] = [
        Hostile::Md5sumsBomb,
        Hostile::Md5sumsUnderFileLimit,
        Hostile::StatusHardlinks,
        Hostile::ManyTinyStanzas,
        Hostile::ManyPackageFiles,
        Hostile::HugeStatus,
        Hostile::SparseMd5sums,
        Hostile::SparseMd5sumsDirectory,
        Hostile::RepeatedLayers,
        Hostile::MissingLayerTwice,
        Hostile::TruncatedGzip,
        Hostile::DpkgStanzaWithoutVersion,
        Hostile::ApkEntryWithoutVersion,
    ];

    /// Its name, as a file name.
    pub fn name(self) -> &'static str {
        match self {
            Hostile::Md5sumsBomb => "md5sums-bomb",
            Hostile::Md5sumsUnderFileLimit => "md5sums-under-file-limit",
            Hostile::StatusHardlinks => "status-hardlinks",
            Hostile::ManyTinyStanzas => "many-tiny-stanzas",
            Hostile::ManyPackageFiles => "many-package-files",
            Hostile::HugeStatus => "huge-status",
            Hostile::SparseMd5sums => "sparse-md5sums",
            Hostile::SparseMd5sumsDirectory => "sparse-md5sums-directory",
            Hostile::RepeatedLayers => "repeated-layers",
            Hostile::MissingLayerTwice => "missing-layer-twice",
            Hostile::TruncatedGzip => "truncated-gzip",
            Hostile::DpkgStanzaWithoutVersion => "dpkg-stanza-without-version",
            Hostile::ApkEntryWithoutVersion => "apk-entry-without-version",
        }
    }

    /// Whether its scan must finish in under 5 s in this build. All the issue's archives must;
    /// [`Hostile::Md5sumsUnderFileLimit`] and [`Hostile::ManyTinyStanzas`] (not in the issue)
    /// inflate and hash 120 and 60 MiB within the limits, which an unoptimised (debug) build does
    /// in about 9 and 5 s, an optimised one in well under 1 s.
    pub fn timed(self) -> bool {
        !matches!(
            self,
            Hostile::Md5sumsUnderFileLimit | Hostile::ManyTinyStanzas | Hostile::ManyPackageFiles
        ) || !cfg!(debug_assertions)
    }

    /// How the child of `scan_memory.rs` must end: its first output line's start (`report
    /// <packages> <warnings>`, or `error`).
    pub fn expected(self) -> &'static str {
        match self {
            Hostile::DpkgStanzaWithoutVersion | Hostile::ApkEntryWithoutVersion => "report 2 1",
            Hostile::ManyPackageFiles => "report 1 1",
            _ => "error ",
        }
    }

    /// The archive by its name.
    pub fn by_name(name: &str) -> Option<Hostile> {
        Hostile::ALL.into_iter().find(|h| h.name() == name)
    }

    /// Writes the archive (or directory) into `dir`; its path. Remove it with [`remove`].
    pub fn write(self, dir: &Path) -> PathBuf {
        if self == Hostile::SparseMd5sumsDirectory {
            let root = dir.join(self.name());
            let info = root.join("var/lib/dpkg/info");
            std::fs::create_dir_all(&info).expect("scratch directory");
            std::fs::create_dir_all(root.join("etc")).expect("scratch directory");
            std::fs::write(root.join("etc/os-release"), DEBIAN_RELEASE).expect("a small file");
            // A hole: no disk blocks, 20 GiB of zeros to a reader.
            std::fs::File::create(info.join("big.md5sums"))
                .and_then(|file| file.set_len(20 * 1024 * MIB))
                .expect("a sparse file");
            return root;
        }
        let path = dir.join(format!("{}.tar", self.name()));
        let bytes = match self {
            Hostile::SparseMd5sumsDirectory => unreachable!("written above"),
            Hostile::Md5sumsBomb => {
                let mut layer = GzipTar::new();
                for i in 0..24 {
                    layer.zeros(&format!("var/lib/dpkg/info/pkg{i}.md5sums"), 256 * MIB);
                }
                image(&[layer.finish()], &[0])
            }
            Hostile::Md5sumsUnderFileLimit => {
                let mut layer = GzipTar::new();
                for i in 0..24 {
                    layer.zeros(&format!("var/lib/dpkg/info/pkg{i}.md5sums"), 60 * MIB);
                }
                image(&[layer.finish()], &[0])
            }
            Hostile::StatusHardlinks => {
                let mut layer = GzipTar::new();
                layer.zeros("var/lib/dpkg/status", 256 * MIB);
                for i in 0..8 {
                    layer.hardlink(
                        &format!("var/lib/dpkg/status.d/l{i}"),
                        "var/lib/dpkg/status",
                    );
                }
                image(&[layer.finish()], &[0])
            }
            Hostile::ManyTinyStanzas => {
                let mut layer = GzipTar::new();
                let stanza =
                    b"Package: p\nStatus: install ok installed\nVersion: 1.00000000000\n\n";
                layer.repeated("var/lib/dpkg/status", stanza, 60 * MIB);
                image(
                    &[
                        plain_tar(&[("etc/os-release", DEBIAN_RELEASE)]),
                        layer.finish(),
                    ],
                    &[0, 1],
                )
            }
            Hostile::ManyPackageFiles => {
                let mut layer = GzipTar::new();
                let line = b"d41d8cd98f00b204e9800998ecf8427e  usr/share/doc/p/file-name.txt\n";
                layer.repeated("var/lib/dpkg/info/p.md5sums", line, 60 * MIB);
                let status = b"Package: p\nStatus: install ok installed\nVersion: 1\n";
                image(
                    &[
                        plain_tar(&[
                            ("etc/os-release", DEBIAN_RELEASE),
                            ("var/lib/dpkg/status", status),
                        ]),
                        layer.finish(),
                    ],
                    &[0, 1],
                )
            }
            Hostile::HugeStatus => {
                let mut layer = GzipTar::new();
                layer.zeros("var/lib/dpkg/status", 2048 * MIB);
                image(&[layer.finish()], &[0])
            }
            Hostile::SparseMd5sums => {
                let layer = sparse_tar("var/lib/dpkg/info/big.md5sums", 20 * 1024 * MIB);
                image(&[layer], &[0])
            }
            Hostile::RepeatedLayers => {
                let layer = plain_tar(&[("etc/os-release", DEBIAN_RELEASE)]);
                image(&[layer], &vec![0; 50_000])
            }
            Hostile::MissingLayerTwice => {
                let layer = plain_tar(&[("etc/os-release", DEBIAN_RELEASE)]);
                image(&[layer], &[0, 7, 7])
            }
            Hostile::TruncatedGzip => {
                let filler: Vec<u8> = (0..200_000u32)
                    .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
                    .collect();
                let tar = plain_tar(&[
                    ("etc/os-release", DEBIAN_RELEASE),
                    ("usr/bin/tool", &filler),
                ]);
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), Compression::fast());
                gz.write_all(&tar).expect("gzip in memory");
                let gz = gz.finish().expect("gzip in memory");
                image(&[gz[..gz.len() / 2].to_vec()], &[0])
            }
            Hostile::DpkgStanzaWithoutVersion => {
                let layer = plain_tar(&[
                    ("etc/os-release", DEBIAN_RELEASE),
                    ("var/lib/dpkg/status", DPKG_STATUS_WITHOUT_VERSION),
                ]);
                image(&[layer], &[0])
            }
            Hostile::ApkEntryWithoutVersion => {
                let layer = plain_tar(&[
                    ("etc/os-release", ALPINE_RELEASE),
                    ("lib/apk/db/installed", APK_WITHOUT_VERSION),
                ]);
                image(&[layer], &[0])
            }
        };
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }
}

/// Removes what [`Hostile::write`] wrote at `path`.
pub fn remove(path: &Path) {
    if path.is_dir() {
        let _ = std::fs::remove_dir_all(path);
    } else {
        let _ = std::fs::remove_file(path);
    }
}

/// `etc/os-release` of Debian 12.
pub const DEBIAN_RELEASE: &[u8] = b"ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n";
/// `etc/os-release` of Alpine 3.19.
pub const ALPINE_RELEASE: &[u8] = b"ID=alpine\nVERSION_ID=3.19.1\n";

/// Three stanzas, the second (line 5) without `Version:`.
pub const DPKG_STATUS_WITHOUT_VERSION: &[u8] = b"Package: base-files\n\
Status: install ok installed\nVersion: 12.4+deb12u5\n\n\
Package: broken\nStatus: install ok installed\nArchitecture: amd64\n\n\
Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:1.2.13.dfsg-1\n";

/// Three entries, the second (line 5) without `V:`.
pub const APK_WITHOUT_VERSION: &[u8] = b"P:musl\nV:1.2.4_git20230717-r4\nA:x86_64\n\n\
P:broken\nA:x86_64\n\n\
P:zlib\nV:1.3.1-r0\nA:x86_64\n";

/// A `docker save` archive of `layers` (each `layer<i>/layer.tar`), the manifest listing
/// `listed` (indexes; one without a layer names a missing `layer<i>/layer.tar`), written last as
/// Docker writes it.
pub fn image(layers: &[Vec<u8>], listed: &[usize]) -> Vec<u8> {
    let mut outer = tar::Builder::new(Vec::new());
    for (i, layer) in layers.iter().enumerate() {
        append(&mut outer, &format!("layer{i}/layer.tar"), layer);
    }
    append(&mut outer, "config.json", br#"{"config":{"User":"app"}}"#);
    let names: Vec<String> = listed
        .iter()
        .map(|i| format!("layer{i}/layer.tar"))
        .collect();
    let manifest = serde_json::json!([{"Config": "config.json", "RepoTags": [], "Layers": names}]);
    append(&mut outer, "manifest.json", manifest.to_string().as_bytes());
    outer.into_inner().expect("tar in memory")
}

fn append(builder: &mut tar::Builder<Vec<u8>>, path: &str, bytes: &[u8]) {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    builder
        .append_data(&mut header, path, bytes)
        .expect("tar in memory");
}

/// An uncompressed layer of regular files.
pub fn plain_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        append(&mut builder, path, bytes);
    }
    builder.into_inner().expect("tar in memory")
}

/// An uncompressed layer holding one GNU sparse entry of `size` bytes: one data block of `md5sums`
/// lines at the start, a hole to the end.
pub fn sparse_tar(path: &str, size: u64) -> Vec<u8> {
    let mut data = b"d41d8cd98f00b204e9800998ecf8427e  usr/share/doc/x/README\n".to_vec();
    data.resize(512, b'\n');
    let mut header = tar::Header::new_gnu();
    header.set_path(path).expect("short path");
    header.set_entry_type(tar::EntryType::GNUSparse);
    header.set_size(512);
    header.set_mode(0o644);
    let gnu = header.as_gnu_mut().expect("a GNU header");
    octal(&mut gnu.sparse[0].offset, 0);
    octal(&mut gnu.sparse[0].numbytes, 512);
    // The hole to the end is a last, empty block at the real size.
    octal(&mut gnu.sparse[1].offset, size);
    octal(&mut gnu.sparse[1].numbytes, 0);
    octal(&mut gnu.realsize, size);
    header.set_cksum();
    let mut bytes = header.as_bytes().to_vec();
    bytes.extend_from_slice(&data);
    bytes.extend_from_slice(&[0; 1024]);
    bytes
}

/// `value` as an octal field filling `field`: NUL-terminated when it fits, else all digits (as
/// GNU tar writes sizes of 8 GiB and more).
fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}");
    if text.len() == width {
        field[..width].copy_from_slice(text.as_bytes());
        field[width] = 0;
    } else {
        let width = field.len();
        field.copy_from_slice(format!("{value:0width$o}").as_bytes());
    }
}

/// A gzip-compressed tar built piece by piece: headers are compressed as they come, runs of zeros
/// from one compressed MiB of zeros repeated, so gigabytes of content cost milliseconds.
pub struct GzipTar {
    deflate: Vec<u8>,
    crc: Crc,
    zero_chunk: Vec<u8>,
    zero_crc: Crc,
}

impl Default for GzipTar {
    fn default() -> Self {
        Self::new()
    }
}

impl GzipTar {
    /// An empty layer.
    pub fn new() -> Self {
        let zeros = vec![0u8; MIB as usize];
        let mut zero_crc = Crc::new();
        zero_crc.update(&zeros);
        Self {
            deflate: Vec::new(),
            crc: Crc::new(),
            zero_chunk: deflate_piece(&zeros, FlushCompress::Sync),
            zero_crc,
        }
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.deflate
            .extend_from_slice(&deflate_piece(bytes, FlushCompress::Sync));
        self.crc.update(bytes);
    }

    /// A regular file of `unit` repeated to `size` bytes (`unit`'s length divides 1 MiB, `size`
    /// a multiple of 1 MiB).
    pub fn repeated(&mut self, path: &str, unit: &[u8], size: u64) {
        assert_eq!(MIB as usize % unit.len(), 0, "whole units per MiB");
        let chunk = unit.repeat(MIB as usize / unit.len());
        let mut crc = Crc::new();
        crc.update(&chunk);
        let compressed = deflate_piece(&chunk, FlushCompress::Sync);
        self.file(path, size, &compressed, &crc);
    }

    /// A regular file of `size` zero bytes (`size` a multiple of 1 MiB).
    pub fn zeros(&mut self, path: &str, size: u64) {
        let compressed = std::mem::take(&mut self.zero_chunk);
        let crc = std::mem::take(&mut self.zero_crc);
        self.file(path, size, &compressed, &crc);
        self.zero_chunk = compressed;
        self.zero_crc = crc;
    }

    /// A regular file of `size` bytes, each MiB of it `chunk` compressed (with `crc`).
    fn file(&mut self, path: &str, size: u64, chunk: &[u8], crc: &Crc) {
        assert_eq!(size % MIB, 0, "whole MiBs");
        let mut header = tar::Header::new_gnu();
        header.set_path(path).expect("short path");
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(size);
        header.set_mode(0o644);
        header.set_cksum();
        self.bytes(header.as_bytes());
        for _ in 0..size / MIB {
            self.deflate.extend_from_slice(chunk);
            self.crc.combine(crc);
        }
    }

    /// A hard link `path` to `target`.
    pub fn hardlink(&mut self, path: &str, target: &str) {
        let mut header = tar::Header::new_gnu();
        header.set_path(path).expect("short path");
        header.set_link_name(target).expect("short target");
        header.set_entry_type(tar::EntryType::Link);
        header.set_size(0);
        header.set_mode(0o644);
        header.set_cksum();
        self.bytes(header.as_bytes());
    }

    /// The gzip stream: the tar's end, the final deflate block, the CRC and size.
    pub fn finish(mut self) -> Vec<u8> {
        self.bytes(&[0; 1024]);
        let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
        out.extend_from_slice(&self.deflate);
        out.extend_from_slice(&deflate_piece(&[], FlushCompress::Finish));
        out.extend_from_slice(&self.crc.sum().to_le_bytes());
        out.extend_from_slice(&self.crc.amount().to_le_bytes());
        out
    }
}

/// `data` as raw deflate from a fresh compressor, ended by `flush` (a sync flush ends on a byte
/// boundary with no final block, so pieces can be concatenated).
fn deflate_piece(data: &[u8], flush: FlushCompress) -> Vec<u8> {
    let mut compress = Compress::new(Compression::best(), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    loop {
        let consumed = usize::try_from(compress.total_in()).expect("fits");
        compress
            .compress_vec(&data[consumed..], &mut out, flush)
            .expect("deflate in memory");
        if usize::try_from(compress.total_in()).expect("fits") == data.len()
            && out.len() < out.capacity()
        {
            return out;
        }
        out.reserve(out.capacity().max(1024));
    }
}

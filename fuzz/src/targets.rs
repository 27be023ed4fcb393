//! The fuzz targets: every parser Slipway feeds untrusted bytes to, each as a function from an
//! input to an outcome signature, with where its seeds are and a dictionary of tokens its format
//! is made of.
//!
//! The signature is what the parser made of the input, with numbers left out (`ok 3`, or the
//! error's text without digits): an input whose signature was not seen before joins the corpus,
//! which steers mutation towards the parsers' deeper checks without coverage instrumentation.

use slipway_common::envelope::Envelope;
use slipway_common::index::parse_index;
use slipway_scan::image::archive::read_archive;
use slipway_scan::image::{DigestSet, ReadLimits, ReadOptions};
use slipway_scan::inventory;
use slipway_scan::os::rpm::{self, RpmDatabase, RpmDbFiles};
use slipway_scan::os::{apk, dpkg};
use slipway_scan::osv::record::parse_document;
use slipway_scan::updates::index::Compression;
use slipway_scan::updates::{apk as apkindex, apt, yum};

/// Largest decompressed index the repository parsers are allowed (they take a limit).
const DECOMPRESSED_LIMIT: u64 = 64 << 20;

/// Where a target's seeds come from, relative to the workspace root.
#[derive(Clone, Copy, Debug)]
pub enum Seeds {
    /// Every file of a directory of the repository.
    Dir(&'static str),
    /// One file of the repository.
    File(&'static str),
    /// Every file of a directory of `../shared/corpus`, when it is there.
    Shared(&'static str),
    /// Envelopes of every message kind, encoded here (`seeds::envelopes`).
    Envelopes,
}

/// A fuzz target.
#[derive(Clone, Copy)]
pub struct Target {
    /// Its name on the command line.
    pub name: &'static str,
    /// What it feeds the input to.
    pub about: &'static str,
    /// Where its seeds come from.
    pub seeds: &'static [Seeds],
    /// Tokens of its format, inserted by the `Token` mutation.
    pub tokens: &'static [&'static [u8]],
    /// Runs the parser on an input; returns the outcome signature.
    pub run: fn(&[u8]) -> String,
    /// Driver self-checks are left out of `all` and listed apart.
    pub self_check: bool,
}

/// The signature of a parse result: `ok` and a count, or the error without digits.
fn outcome<T, E: std::fmt::Display>(result: Result<T, E>, count: impl Fn(&T) -> usize) -> String {
    match result {
        Ok(value) => format!("ok {}", usize::BITS - count(&value).leading_zeros()),
        Err(error) => {
            // Quoted text is usually the input itself: a new one is no new outcome.
            let mut quoted = None;
            let text: String = error
                .to_string()
                .chars()
                .filter(|c| {
                    match (quoted, *c) {
                        (None, '"' | '\'' | '`') => quoted = Some(*c),
                        (Some(q), c) if q == c => quoted = None,
                        _ => {}
                    }
                    quoted.is_none() && !c.is_ascii_digit() && !matches!(c, '"' | '\'' | '`')
                })
                .take(120)
                .collect();
            format!("err {text}")
        }
    }
}

/// The compression a repository index file has, by its magic bytes (the fetcher knows it from
/// the file name; here the input says).
fn compression_of(input: &[u8]) -> Compression {
    if input.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if input.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Compression::Xz
    } else {
        Compression::None
    }
}

fn rpm_database(database: RpmDatabase<'_>) -> String {
    let files = RpmDbFiles {
        dir: "/var/lib/rpm".to_owned(),
        database,
    };
    outcome(rpm::read_database(&files), Vec::len)
}

/// `rpmdb.sqlite` followed by its WAL: the database's own size (header bytes 16..18 page
/// size, 28..32 page count) says where the WAL starts; the rest, if any, is the WAL.
fn split_sqlite(input: &[u8]) -> (&[u8], Option<&[u8]>) {
    let page_size = match input.get(16..18) {
        Some([1, 0]) => 65536,
        Some(b) => usize::from(u16::from_be_bytes([b[0], b[1]])),
        None => 0,
    };
    let pages = input
        .get(28..32)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let split = page_size.saturating_mul(pages).min(input.len());
    match input.split_at(if split == 0 { input.len() } else { split }) {
        (db, []) => (db, None),
        (db, wal) => (db, Some(wal)),
    }
}

const STANZA_TOKENS: &[&[u8]] = &[
    b"\n",
    b"\n\n",
    b"\n ",
    b": ",
    b"Package: ",
    b"Version: ",
    b"Status: install ok installed\n",
    b"Architecture: ",
    b"Source: ",
    b"Conffiles:\n /etc/x 0123456789abcdef0123456789abcdef\n",
    b" (",
    b")",
    b"1:",
    b"~",
];
const APK_TOKENS: &[&[u8]] = &[
    b"\n",
    b"\n\n",
    b"P:",
    b"V:",
    b"A:",
    b"F:",
    b"R:",
    b"Z:Q1",
    b"a:0:0:755",
    b"C:Q1",
    b"o:",
];
const XML_TOKENS: &[&[u8]] = &[
    b"<",
    b">",
    b"</",
    b"/>",
    b"<![CDATA[",
    b"]]>",
    b"&amp;",
    b"&#",
    b"<package type=\"rpm\">",
    b"</package>",
    b"<name>",
    b"<version epoch=\"1\" ver=\"1\" rel=\"1\"/>",
    b"<arch>",
    b"\"",
    b"<data type=\"primary\">",
    b"<location href=\"",
    b"<checksum type=\"sha256\">",
];
const JSON_TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"null",
    b"\"affected\"",
    b"\"ranges\"",
    b"\"events\"",
    b"{\"introduced\": \"0\"}",
    b"{\"fixed\": \"1\"}",
    b"\"ECOSYSTEM\"",
    b"\\u0000",
];
const DOCKERFILE_TOKENS: &[&[u8]] = &[
    b"\n",
    b"\\\n",
    b"`\n",
    b"# escape=`\n",
    b"FROM ",
    b"RUN ",
    b"<<EOF\n",
    b"\nEOF\n",
    b"${",
    b"}",
    b":-",
    b"$(",
    b")",
    b"\"",
    b"'",
    b"[\"",
    b"\"]",
    b"--from=",
    b"AS ",
    b"ARG ",
    b"ONBUILD ",
    b"HEALTHCHECK ",
    b"COPY ",
    b"&&",
    b"|",
    b";",
    b"\t",
];
const YAML_TOKENS: &[&[u8]] = &[
    b"\n",
    b"\n  ",
    b"- ",
    b": ",
    b"{",
    b"}",
    b"[",
    b"]",
    b"&a",
    b"*a",
    b"<<: *a",
    b"!!binary ",
    b"---\n",
    b"'",
    b"\"",
    b"|\n",
    b"depends-on:",
    b"git-url: ",
    b"target-file: ",
    b"notify:",
];
const BINARY_TOKENS: &[&[u8]] = &[
    b"RpmP",
    b"Slot",
    b"BlbS",
    b"BlbE",
    &[0x8e, 0xad, 0xe8, 0x01],
    b"SQLite format 3\0",
    &[0x00, 0x06, 0x15, 0x61],
    &[0x61, 0x15, 0x06, 0x00],
    &[0, 0, 0, 0x3f],
    &[0, 0, 0, 0x3e],
];
const MSGPACK_TOKENS: &[&[u8]] = &[
    &[0x80],
    &[0x81],
    &[0x90],
    &[0xc4, 0x10],
    &[0xc0],
    &[0xdc, 0xff, 0xff],
    &[0xdf, 0, 0, 0xff, 0xff],
    b"\xa1v",
    b"\xa4kind",
    b"\xa7payload",
    &[0xcf],
    &[0xd9, 0xff],
];
const TAR_TOKENS: &[&[u8]] = &[
    b"manifest.json",
    b"ustar\0",
    b"ustar  \0",
    b".wh.",
    b".wh..wh..opq",
    b"././@LongLink",
    b"{\"Config\":\"c\",\"Layers\":[\"l\"]}",
    b"../",
    b"/",
    b"0000644\0",
    b"00000000000\0",
];

/// Every target, in the order `all` runs them; self-checks last.
pub const TARGETS: &[Target] = &[
    Target {
        name: "envelope",
        about: "message envelope decoder (common::envelope::Envelope::decode)",
        seeds: &[Seeds::Envelopes, Seeds::Dir("fuzz/seeds/envelope")],
        tokens: MSGPACK_TOKENS,
        run: |input| outcome(Envelope::decode(input), |_| 1),
        self_check: false,
    },
    Target {
        name: "dockerfile",
        about: "Dockerfile parser and every DL rule (slipway_lint::lint, no ShellCheck)",
        seeds: &[
            Seeds::Dir("fuzz/seeds/dockerfile"),
            Seeds::Shared("corpus/dockerfiles"),
        ],
        tokens: DOCKERFILE_TOKENS,
        run: |input| {
            let text = slipway_lint::parser::decode(input);
            let parsed = slipway_lint::parser::parse(&text);
            let findings = slipway_lint::lint(&text, &slipway_lint::Settings::default());
            format!("{} {}", outcome(parsed, |_| 1), findings.len().min(8))
        },
        self_check: false,
    },
    Target {
        name: "index-yaml",
        about: "index file parser and validation (common::index::parse_index)",
        seeds: &[
            Seeds::Dir("fuzz/seeds/index-yaml"),
            Seeds::Shared("corpus/container-index"),
        ],
        tokens: YAML_TOKENS,
        run: |input| outcome(parse_index(&String::from_utf8_lossy(input)), |_| 1),
        self_check: false,
    },
    Target {
        name: "dpkg-status",
        about: "dpkg status and md5sums readers (os::dpkg)",
        seeds: &[Seeds::Dir("fuzz/seeds/dpkg-status")],
        tokens: STANZA_TOKENS,
        run: |input| {
            let md5sums = dpkg::parse_md5sums(input).len();
            let read = dpkg::read_database(&[(dpkg::STATUS, input)], |_| Some(input));
            format!(
                "{} {}",
                outcome(read, |db| db.packages.len() * 8 + db.skipped.len().min(7)),
                md5sums.min(4)
            )
        },
        self_check: false,
    },
    Target {
        name: "rpm-header",
        about: "rpm header blob parser (os::rpm::header::parse_package)",
        seeds: &[Seeds::Dir("fuzz/seeds/rpm-header")],
        tokens: BINARY_TOKENS,
        run: |input| {
            outcome(
                rpm::header::parse_package(input, "/var/lib/rpm/rpmdb.sqlite"),
                |p| p.as_ref().map_or(0, |p| p.files.len()),
            )
        },
        self_check: false,
    },
    Target {
        name: "rpm-sqlite",
        about: "rpmdb.sqlite (+ WAL after the database's pages) reader (os::rpm::sqlite)",
        seeds: &[Seeds::Dir("fuzz/seeds/rpm-sqlite")],
        tokens: BINARY_TOKENS,
        run: |input| {
            let (db, wal) = split_sqlite(input);
            rpm_database(RpmDatabase::Sqlite { db, wal })
        },
        self_check: false,
    },
    Target {
        name: "rpm-bdb",
        about: "Berkeley DB hash Packages reader (os::rpm::bdb)",
        seeds: &[Seeds::Dir("fuzz/seeds/rpm-bdb")],
        tokens: BINARY_TOKENS,
        run: |input| rpm_database(RpmDatabase::BerkeleyDb { packages: input }),
        self_check: false,
    },
    Target {
        name: "rpm-ndb",
        about: "ndb Packages.db reader (os::rpm::ndb)",
        seeds: &[
            Seeds::File("workers/scan/tests/data/rpm-ndb/Packages.db"),
            Seeds::Dir("fuzz/seeds/rpm-ndb"),
        ],
        tokens: BINARY_TOKENS,
        run: |input| rpm_database(RpmDatabase::Ndb { packages: input }),
        self_check: false,
    },
    Target {
        name: "apk-installed",
        about: "apk installed database reader (os::apk::read_installed)",
        seeds: &[Seeds::Dir("fuzz/seeds/apk-installed")],
        tokens: APK_TOKENS,
        run: |input| {
            outcome(apk::read_installed(input), |db| {
                db.packages.len() * 8 + db.skipped.len().min(7)
            })
        },
        self_check: false,
    },
    Target {
        name: "apkindex",
        about: "APKINDEX.tar.gz parser (updates::apk::parse_apkindex)",
        seeds: &[Seeds::Dir("fuzz/seeds/apkindex")],
        tokens: APK_TOKENS,
        run: |input| {
            outcome(
                apkindex::parse_apkindex(input, DECOMPRESSED_LIMIT),
                Vec::len,
            )
        },
        self_check: false,
    },
    Target {
        name: "apt-packages",
        about: "apt Packages parser, plain, gzip or xz by magic (updates::apt::parse_packages)",
        seeds: &[Seeds::Dir("fuzz/seeds/apt-packages")],
        tokens: STANZA_TOKENS,
        run: |input| {
            outcome(
                apt::parse_packages(input, compression_of(input), DECOMPRESSED_LIMIT),
                Vec::len,
            )
        },
        self_check: false,
    },
    Target {
        name: "apt-release",
        about: "apt Release/InRelease parser (updates::apt::parse_release)",
        seeds: &[Seeds::Dir("fuzz/seeds/apt-release")],
        tokens: STANZA_TOKENS,
        run: |input| outcome(apt::parse_release(input), |_| 1),
        self_check: false,
    },
    Target {
        name: "yum-primary",
        about: "yum primary.xml parser, plain, gzip or xz by magic (updates::yum::parse_primary)",
        seeds: &[Seeds::Dir("fuzz/seeds/yum-primary")],
        tokens: XML_TOKENS,
        run: |input| {
            outcome(
                yum::parse_primary(input, compression_of(input), DECOMPRESSED_LIMIT),
                Vec::len,
            )
        },
        self_check: false,
    },
    Target {
        name: "yum-repomd",
        about: "yum repomd.xml parser (updates::yum::parse_repomd)",
        seeds: &[Seeds::Dir("fuzz/seeds/yum-repomd")],
        tokens: XML_TOKENS,
        run: |input| outcome(yum::parse_repomd(input), |_| 1),
        self_check: false,
    },
    Target {
        name: "osv",
        about: "OSV record documents (osv::record::parse_document)",
        seeds: &[Seeds::Dir("fuzz/seeds/osv")],
        tokens: JSON_TOKENS,
        run: |input| outcome(parse_document(input), Vec::len),
        self_check: false,
    },
    Target {
        name: "image-archive",
        about: "docker save/OCI archive reader with its manifest, then the inventory \
                (image::archive::read_archive, inventory::take_inventory)",
        seeds: &[Seeds::Dir("fuzz/seeds/image-archive")],
        tokens: TAR_TOKENS,
        run: |input| {
            let options = ReadOptions {
                keep: &inventory::wanted,
                digests: DigestSet::NONE,
                limits: ReadLimits::default(),
            };
            match read_archive(input, "fuzz input", &options) {
                Ok(fs) => outcome(inventory::take_inventory(&fs), |t| {
                    t.inventory.packages.len()
                }),
                Err(error) => outcome(Err::<(), _>(error), |_| 0),
            }
        },
        self_check: false,
    },
    // Self-checks of the driver: each misbehaves on purpose, so the driver's detection of it can
    // be tested (`fuzz/tests/driver.rs`). Not part of `all`.
    Target {
        name: "self-panic",
        about: "panics on inputs that start with `P` (driver self-check)",
        seeds: &[],
        tokens: &[b"P"],
        run: |input| {
            assert!(!input.starts_with(b"P"), "self-check panic on purpose");
            "ok".to_owned()
        },
        self_check: true,
    },
    Target {
        name: "self-abort",
        about: "aborts the process on inputs that start with `A` (driver self-check)",
        seeds: &[],
        tokens: &[b"A"],
        run: |input| {
            if input.starts_with(b"A") {
                std::process::abort();
            }
            "ok".to_owned()
        },
        self_check: true,
    },
    Target {
        name: "self-oom",
        about: "allocates 8 GiB on inputs that start with `M`, past any memory limit (driver \
                self-check)",
        seeds: &[],
        tokens: &[b"M"],
        run: |input| {
            if input.starts_with(b"M") {
                let huge = vec![1u8; 8 << 30];
                return format!("ok {}", huge.len());
            }
            "ok".to_owned()
        },
        self_check: true,
    },
    Target {
        name: "self-hang",
        about: "loops forever on inputs that start with `H` (driver self-check)",
        seeds: &[],
        tokens: &[b"H"],
        run: |input| {
            let mut spins = 0u64;
            while input.starts_with(b"H") {
                spins = std::hint::black_box(spins.wrapping_add(1));
            }
            format!("ok {spins}")
        },
        self_check: true,
    },
];

/// The target named `name`.
pub fn find(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_the_parsers_come_before_the_self_checks() {
        let mut names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
        let first_check = TARGETS.iter().position(|t| t.self_check).expect("checks");
        assert!(TARGETS[first_check..].iter().all(|t| t.self_check));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TARGETS.len());
    }

    #[test]
    fn outcomes_leave_numbers_out() {
        let a = outcome(Err::<(), _>("record 12 at byte 4096"), |_| 0);
        let b = outcome(Err::<(), _>("record 3 at byte 7"), |_| 0);
        assert_eq!(a, b);
        let quoted =
            |found: &str| outcome(Err::<(), _>(format!("expected '=', found {found}")), |_| 0);
        assert_eq!(quoted("\"abc\""), quoted("'x y'"));
        assert_eq!(quoted("`z`"), "err expected , found ");
        assert_eq!(outcome(Ok::<_, String>(vec![1, 2, 3]), Vec::len), "ok 2");
        assert_eq!(outcome(Ok::<_, String>(Vec::<u8>::new()), Vec::len), "ok 0");
    }

    #[test]
    fn compression_follows_the_magic() {
        assert!(matches!(
            compression_of(&[0x1f, 0x8b, 8]),
            Compression::Gzip
        ));
        assert!(matches!(compression_of(b"\xfd7zXZ\0rest"), Compression::Xz));
        assert!(matches!(compression_of(b"Package: a"), Compression::None));
    }

    #[test]
    fn sqlite_inputs_split_at_the_databases_size() {
        let mut db = vec![0u8; 2048];
        db[16..18].copy_from_slice(&1024u16.to_be_bytes());
        db[28..32].copy_from_slice(&2u32.to_be_bytes());
        let mut input = db.clone();
        input.extend_from_slice(b"WAL bytes");
        assert_eq!(split_sqlite(&input), (&db[..], Some(&b"WAL bytes"[..])));
        assert_eq!(split_sqlite(&db), (&db[..], None));
        // A page count past the input, or none: all of it is the database.
        assert_eq!(split_sqlite(&input[..100]), (&input[..100], None));
        assert_eq!(split_sqlite(b"short"), (&b"short"[..], None));
    }

    #[test]
    fn every_parser_target_reads_its_seed_shapes() {
        // A valid input of each kind gives `ok`, so a target wired to the wrong parser fails.
        let ok = |name: &str, input: &[u8]| {
            let result = (find(name).expect("target").run)(input);
            assert!(result.starts_with("ok"), "{name}: {result}");
        };
        ok("apk-installed", b"P:musl\nV:1.2.4-r2\nA:x86_64\n");
        ok("apt-packages", b"Package: hello\nVersion: 2.10-3\n");
        ok("osv", br#"{"id": "X-1", "affected": []}"#);
        ok(
            "yum-primary",
            br#"<metadata><package type="rpm"><name>a</name><arch>noarch</arch><version epoch="0" ver="1" rel="1"/></package></metadata>"#,
        );
        let refused = (find("rpm-ndb").expect("target").run)(b"RpmP");
        assert!(refused.starts_with("err ndb Packages.db"), "{refused}");
    }
}

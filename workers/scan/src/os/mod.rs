//! The operating system of an image: its identity and its package database (dpkg, rpm, apk).

pub mod apk;
pub mod dpkg;
pub mod release;
pub mod rpm;

/// Whether a database of `readable` good entries and `malformed` bad ones is not a package
/// database at all (nothing readable, or more bad entries than good: garbage with a few entries in
/// it) rather than a database with a few bad entries, which are skipped with a warning each.
pub(crate) fn unreadable_as_a_whole(readable: usize, malformed: usize) -> bool {
    malformed > 0 && malformed > readable
}

/// Most entries (stanzas) one package database may have: Debian's whole archive has about 65,000
/// binary packages per architecture, an image a few thousand at most. A database with more is not
/// a real one (a 194 KB archive can hold a 60 MiB status file of a million tiny stanzas, which
/// took 827 MiB to list); it is refused as soon as the count is passed, before its packages are
/// built.
pub const MAX_DATABASE_ENTRIES: usize = 100_000;

/// Most files the packages of one database may list together (dpkg `md5sums` lines, apk `R:`
/// lines). The largest images list a few hundred thousand; past this the remaining files are not
/// listed, and the database says which packages were cut (a report warning: their integrity is
/// checked only for the files listed), so a small archive cannot make the inventory hold millions
/// of file records.
pub const MAX_DATABASE_FILES: usize = 500_000;

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

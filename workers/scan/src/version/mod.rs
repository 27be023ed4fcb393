//! Version ordering per packaging system, as each system's own tools compare versions.

pub mod apk;
pub mod dpkg;
pub mod rpm;

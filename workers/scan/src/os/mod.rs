//! The operating system of an image: its identity and its package database (dpkg, rpm, apk).

pub mod apk;
pub mod dpkg;
pub mod release;
pub mod rpm;

//! Language packages installed in an image: Python distributions, npm packages, Ruby gems.

pub mod gem;
pub mod npm;
pub mod python;

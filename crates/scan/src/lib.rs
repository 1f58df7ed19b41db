//! From image contents to a bill of materials: parsers for the package
//! databases found in layers and the version orderings needed to match them
//! against advisories.
//!
//! Pure by design (no files, no network): callers hand in bytes they read
//! under their own size limits, and get values back. Bad input is skipped
//! with a recorded warning, never a panic, because a layer is data from a
//! stranger.

pub mod apk;
pub mod dpkg;
pub mod layer;
pub mod matching;
pub mod os_release;
pub mod osv;
pub mod severity;
pub mod version;

/// A package as a package database records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub architecture: Option<String>,
    /// The source package it was built from (dpkg `Source:`, apk `o:`);
    /// distribution advisories name these, not binary packages.
    pub source_name: String,
    pub source_version: String,
    pub license: Option<String>,
}

/// What a package database held, and what in it could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub packages: Vec<Package>,
    pub warnings: Vec<String>,
}

//! From image contents to a bill of materials: parsers for the package
//! databases found in layers and the version orderings needed to match them
//! against advisories.
//!
//! Pure by design (no files, no network): callers hand in bytes they read
//! under their own size limits, and get values back. Bad input is skipped
//! with a recorded warning, never a panic, because a layer is data from a
//! stranger.

pub mod apk;
pub mod binary;
pub mod decompress;
pub mod distro;
pub mod dpkg;
pub mod java;
pub mod layer;
pub mod license;
pub mod matching;
pub mod npm;
pub mod os_release;
pub mod osv;
pub mod purl;
pub mod python;
pub mod rpm;
pub mod sarif;
pub mod sbom;
pub mod severity;
pub mod summary;
pub mod version;

/// How a package was installed, which decides how advisories name it and
/// how its versions are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ecosystem {
    Deb,
    Apk,
    Python,
    Npm,
    Rpm,
    Go,
    Cargo,
    Maven,
}

impl Ecosystem {
    /// The OSV ecosystem of a language package; distribution packages
    /// take theirs from the image's OS release instead.
    pub fn osv_name(self) -> Option<&'static str> {
        match self {
            Ecosystem::Python => Some("PyPI"),
            Ecosystem::Npm => Some("npm"),
            Ecosystem::Go => Some("Go"),
            Ecosystem::Cargo => Some("crates.io"),
            Ecosystem::Maven => Some("Maven"),
            Ecosystem::Deb | Ecosystem::Apk | Ecosystem::Rpm => None,
        }
    }

    /// How the ecosystem orders versions.
    pub fn version_order(self) -> fn(&str, &str) -> std::cmp::Ordering {
        match self {
            Ecosystem::Deb => version::dpkg_cmp,
            Ecosystem::Apk => version::apk_cmp,
            Ecosystem::Rpm => version::rpm_cmp,
            Ecosystem::Python => version::pep440_cmp,
            Ecosystem::Npm | Ecosystem::Go | Ecosystem::Cargo => version::semver_cmp,
            Ecosystem::Maven => version::maven_cmp,
        }
    }

    /// The package URL type (github.com/package-url/purl-spec).
    pub fn purl_type(self) -> &'static str {
        match self {
            Ecosystem::Deb => "deb",
            Ecosystem::Apk => "apk",
            Ecosystem::Rpm => "rpm",
            Ecosystem::Python => "pypi",
            Ecosystem::Npm => "npm",
            Ecosystem::Go => "golang",
            Ecosystem::Cargo => "cargo",
            Ecosystem::Maven => "maven",
        }
    }
}

/// A package as a package database records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Package {
    pub ecosystem: Ecosystem,
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
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Parsed {
    pub packages: Vec<Package>,
    pub warnings: Vec<String>,
}

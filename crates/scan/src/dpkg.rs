//! The dpkg database: `var/lib/dpkg/status` (one file, many paragraphs) and
//! distroless images' `var/lib/dpkg/status.d/<name>` (one file a package).

use crate::{Ecosystem, Package, Parsed};

/// One RFC 822-style paragraph: field names with (possibly folded) values.
fn paragraphs(text: &str) -> impl Iterator<Item = Vec<(&str, String)>> {
    text.split("\n\n").filter(|p| !p.trim().is_empty()).map(|p| {
        let mut fields: Vec<(&str, String)> = Vec::new();
        for line in p.lines() {
            if line.starts_with([' ', '\t']) {
                // Continuation of the previous field (descriptions, conffiles).
                if let Some((_, v)) = fields.last_mut() {
                    v.push('\n');
                    v.push_str(line.trim());
                }
            } else if let Some((k, v)) = line.split_once(':') {
                fields.push((k.trim(), v.trim().to_string()));
            }
        }
        fields
    })
}

/// Parses a dpkg status file. Only packages whose `Status` says they are
/// installed count (removed packages linger with `deinstall ok config-files`);
/// `status.d` entries have no `Status` and are installed by definition.
pub fn parse_status(text: &str) -> Parsed {
    let mut out = Parsed::default();
    for (i, fields) in paragraphs(&text.replace("\r\n", "\n")).enumerate() {
        let get = |k: &str| {
            fields
                .iter()
                .find(|(f, _)| f.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.as_str())
        };
        if let Some(status) = get("Status") {
            if status.split_whitespace().nth(2) != Some("installed") {
                continue;
            }
        }
        let (Some(name), Some(version)) = (get("Package"), get("Version")) else {
            out.warnings
                .push(format!("dpkg paragraph {} has no Package or Version; skipped", i + 1));
            continue;
        };
        if name.is_empty() || version.is_empty() || name.contains(char::is_whitespace) {
            out.warnings.push(format!(
                "dpkg paragraph {}: bad Package {name:?} or Version {version:?}; skipped",
                i + 1
            ));
            continue;
        }
        // `Source: name` or `Source: name (version)` when the source version differs.
        let (source_name, source_version) = match get("Source") {
            Some(s) => match s.split_once('(') {
                Some((n, v)) => (n.trim().to_string(), v.trim_end_matches(')').trim().to_string()),
                None => (s.trim().to_string(), version.to_string()),
            },
            None => (name.to_string(), version.to_string()),
        };
        out.packages.push(Package {
            ecosystem: Ecosystem::Deb,
            name: name.to_string(),
            version: version.to_string(),
            architecture: get("Architecture").map(String::from),
            source_name,
            source_version,
            license: None,
        });
    }
    out
}

/// `usr/share/doc/<package>/copyright` → the package it describes.
pub fn copyright_package(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("usr/share/doc/")?;
    let name = rest.strip_suffix("/copyright")?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// The licenses a machine-readable (DEP-5) copyright file declares, as
/// one SPDX expression when every name maps exactly; otherwise the
/// Debian names as written, so nothing is silently dropped or guessed.
/// Free-form copyright files (no `Format:` header) give `None`.
pub fn copyright_licenses(text: &str) -> Option<String> {
    let first = text.lines().find(|l| !l.trim().is_empty())?;
    if !first.starts_with("Format:") {
        return None;
    }
    let mut names: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("License:") {
            let v = v.trim();
            if !v.is_empty() && !names.iter().any(|n| n == v) {
                names.push(v.to_string());
            }
        }
    }
    if names.is_empty() {
        return None;
    }
    // `GPL-1+ or Artistic` is one choice; the file's several licenses all apply.
    let spdx: Option<Vec<String>> = names
        .iter()
        .map(|n| {
            let alternatives: Option<Vec<String>> = n.split(" or ").map(crate::license::debian_to_spdx).collect();
            let alternatives = alternatives?;
            Some(if alternatives.len() > 1 {
                format!("({})", alternatives.join(" OR "))
            } else {
                alternatives.join("")
            })
        })
        .collect();
    Some(match spdx {
        Some(mut ids) => {
            ids.dedup();
            let joined = ids.join(" AND ");
            // A lone parenthesised choice reads better bare.
            if ids.len() == 1 {
                joined.trim_start_matches('(').trim_end_matches(')').to_string()
            } else {
                joined
            }
        }
        None => names.join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "\
Package: libc6
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.

Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl (3.0.11-1~deb12u2)
Version: 3.0.11-1~deb12u2+b1

Package: oldthing
Status: deinstall ok config-files
Architecture: all
Version: 1.0-1

Package: bash
Status: install ok installed
Architecture: amd64
Version: 5.2.15-2+b2

Status: install ok installed
Version: 9.9

Package: broken name
Version: 1
";

    #[test]
    fn status_file_table() {
        let parsed = parse_status(STATUS);
        let got: Vec<(&str, &str, &str, &str)> = parsed
            .packages
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.version.as_str(),
                    p.source_name.as_str(),
                    p.source_version.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("libc6", "2.36-9+deb12u4", "glibc", "2.36-9+deb12u4"),
                ("libssl3", "3.0.11-1~deb12u2+b1", "openssl", "3.0.11-1~deb12u2"),
                ("bash", "5.2.15-2+b2", "bash", "5.2.15-2+b2"),
            ]
        );
        assert_eq!(parsed.packages[0].architecture.as_deref(), Some("amd64"));
        assert_eq!(parsed.warnings.len(), 2, "{:?}", parsed.warnings);
    }

    #[test]
    fn distroless_status_d_entries_have_no_status() {
        let entry = "Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n";
        let parsed = parse_status(entry);
        assert_eq!(parsed.packages.len(), 1);
        assert_eq!(parsed.packages[0].source_name, "tzdata");
    }

    #[test]
    fn garbage_never_panics() {
        for text in [
            "",
            "\n\n\n",
            ":::\n:",
            "Package:\nVersion:",
            "\u{0}\u{ffff}\n \n\t",
            "Source: (\nPackage: a\nVersion: 1",
        ] {
            let _ = parse_status(text);
        }
        let crlf = "Package: a\r\nStatus: install ok installed\r\nVersion: 1.0\r\n\r\nPackage: b\r\nVersion: 2\r\n";
        assert_eq!(parse_status(crlf).packages.len(), 2);
    }

    #[test]
    fn copyright_files() {
        let dep5 = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
Upstream-Name: x\n\nFiles: *\nCopyright: 2000 A\nLicense: GPL-2+\n\nFiles: lib/*\nLicense: LGPL-2.1+\n\n\
Files: perl/*\nLicense: GPL-1+ or Artistic\n\nLicense: GPL-2+\n On Debian systems the full text is in /usr/share/common-licenses.\n";
        assert_eq!(
            copyright_licenses(dep5).as_deref(),
            Some("GPL-2.0-or-later AND LGPL-2.1-or-later AND (GPL-1.0-or-later OR Artistic-1.0-Perl)")
        );
        let odd = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: Expat\n\nFiles: x\nLicense: public-domain\n";
        assert_eq!(copyright_licenses(odd).as_deref(), Some("Expat, public-domain"));
        let one = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: GPL-1+ or Artistic\n";
        assert_eq!(
            copyright_licenses(one).as_deref(),
            Some("GPL-1.0-or-later OR Artistic-1.0-Perl")
        );
        assert_eq!(
            copyright_licenses("This is the Debian prepackaged version of glibc."),
            None
        );
        assert_eq!(copyright_package("usr/share/doc/libc6/copyright"), Some("libc6"));
        assert_eq!(copyright_package("usr/share/doc/libc6/examples/copyright"), None);
    }
}

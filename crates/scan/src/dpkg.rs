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
}

//! Python distributions: `*.dist-info/METADATA` (wheels, pip) and
//! `*.egg-info/PKG-INFO` (setuptools). Both are email-style headers
//! followed by the long description, which is not read.

use crate::{Ecosystem, Package, Parsed};

/// Whether a path is a distribution's metadata file.
pub fn is_metadata_path(path: &str) -> bool {
    path.ends_with(".dist-info/METADATA") || path.ends_with(".egg-info/PKG-INFO")
}

/// PEP 503 normalisation, which is how the Python advisory database and
/// pip compare names: case-insensitive, runs of `-`, `_`, `.` are one `-`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
            continue;
        }
        if sep && !out.is_empty() {
            out.push('-');
        }
        sep = false;
        out.extend(c.to_lowercase());
    }
    out
}

pub fn parse_metadata(text: &str) -> Parsed {
    let mut out = Parsed::default();
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            break; // the description starts here
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = fields.last_mut() {
                v.push('\n');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            fields.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
    let (Some(name), Some(version)) = (get("name"), get("version")) else {
        out.warnings
            .push("Python metadata without Name or Version; skipped".into());
        return out;
    };
    if name.is_empty() || version.is_empty() {
        out.warnings
            .push("Python metadata with an empty Name or Version; skipped".into());
        return out;
    }
    out.packages.push(Package {
        ecosystem: Ecosystem::Python,
        name: name.to_string(),
        version: version.to_string(),
        architecture: None,
        source_name: normalize_name(name),
        source_version: version.to_string(),
        license: license(&fields),
    });
    out
}

/// `License-Expression` (PEP 639) when present; else a short `License`
/// (many packages paste the whole license text there, which is no name);
/// else the trove classifiers.
fn license(fields: &[(String, String)]) -> Option<String> {
    let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.trim());
    if let Some(e) = get("license-expression").filter(|e| !e.is_empty()) {
        return Some(e.to_string());
    }
    if let Some(l) = get("license").filter(|l| !l.is_empty() && !l.contains('\n') && l.len() <= 80 && *l != "UNKNOWN") {
        return Some(l.to_string());
    }
    let classifiers: Vec<&str> = fields
        .iter()
        .filter(|(f, _)| f == "classifier")
        .filter_map(|(_, v)| v.strip_prefix("License :: "))
        .map(|v| v.rsplit(" :: ").next().unwrap_or(v))
        .filter(|v| *v != "OSI Approved")
        .collect();
    (!classifiers.is_empty()).then(|| classifiers.join(" OR "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_table() {
        let cases: &[(&str, Option<(&str, &str, &str, Option<&str>)>)] = &[
            (
                "Metadata-Version: 2.1\nName: Jinja2\nVersion: 3.1.2\nLicense: BSD-3-Clause\n\nbody: x\n",
                Some(("Jinja2", "3.1.2", "jinja2", Some("BSD-3-Clause"))),
            ),
            (
                "Metadata-Version: 2.4\nName: zope.interface\nVersion: 6.0\nLicense-Expression: ZPL-2.1\nLicense: Zope Public License\n",
                Some(("zope.interface", "6.0", "zope-interface", Some("ZPL-2.1"))),
            ),
            (
                "Name: requests\nVersion: 2.31.0\nLicense: Apache 2.0\n        (full text follows)\nClassifier: License :: OSI Approved :: Apache Software License\n",
                Some(("requests", "2.31.0", "requests", Some("Apache Software License"))),
            ),
            ("Name: x\nVersion: 1\nLicense: UNKNOWN\n", Some(("x", "1", "x", None))),
            ("Name: Foo__Bar\nVersion: 0.1rc1\n", Some(("Foo__Bar", "0.1rc1", "foo-bar", None))),
            ("Name: nover\n", None),
            ("\nName: after-blank\nVersion: 1\n", None),
        ];
        for (text, want) in cases {
            let p = parse_metadata(text);
            let got = p.packages.first().map(|p| {
                (
                    p.name.as_str(),
                    p.version.as_str(),
                    p.source_name.as_str(),
                    p.license.as_deref(),
                )
            });
            assert_eq!(got, *want, "{text:?}");
            assert_eq!(p.warnings.is_empty(), want.is_some());
        }
        assert!(is_metadata_path(
            "usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA"
        ));
        assert!(is_metadata_path(
            "usr/lib/python3.11/site-packages/foo.egg-info/PKG-INFO"
        ));
        assert!(!is_metadata_path(
            "usr/lib/python3/dist-packages/six-1.16.0.dist-info/RECORD"
        ));
    }
}

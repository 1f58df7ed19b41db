//! npm packages: each `node_modules/<name>/package.json` (or
//! `node_modules/@scope/<name>/package.json`) is one installed package.
//! Other `package.json` files (an application's own, test fixtures inside
//! a package) describe nothing that was installed and are not read.

use serde::Deserialize;

use crate::{Ecosystem, Package, Parsed};

pub fn is_installed_manifest(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let n = parts.len();
    if n < 3 || parts[n - 1] != "package.json" {
        return false;
    }
    parts[n - 3] == "node_modules" || (n >= 4 && parts[n - 3].starts_with('@') && parts[n - 4] == "node_modules")
}

#[derive(Deserialize)]
#[serde(untagged)]
enum License {
    Id(String),
    Object {
        #[serde(rename = "type")]
        kind: String,
    },
}

#[derive(Deserialize)]
struct Manifest {
    name: Option<String>,
    version: Option<String>,
    license: Option<License>,
    #[serde(default)]
    licenses: Vec<License>,
}

fn license_name(l: &License) -> &str {
    match l {
        License::Id(s) => s,
        License::Object { kind } => kind,
    }
}

pub fn parse_package_json(text: &str) -> Parsed {
    let mut out = Parsed::default();
    let m: Manifest = match serde_json::from_str(text) {
        Ok(m) => m,
        Err(e) => {
            out.warnings.push(format!("package.json is not readable: {e}"));
            return out;
        }
    };
    let (Some(name), Some(version)) = (m.name.filter(|n| !n.is_empty()), m.version.filter(|v| !v.is_empty())) else {
        out.warnings
            .push("package.json without name or version; skipped".into());
        return out;
    };
    let license = match (&m.license, m.licenses.as_slice()) {
        (Some(l), _) => Some(license_name(l).to_string()),
        (None, []) => None,
        (None, many) => Some(many.iter().map(license_name).collect::<Vec<_>>().join(" OR ")),
    };
    out.packages.push(Package {
        ecosystem: Ecosystem::Npm,
        source_name: name.clone(),
        source_version: version.clone(),
        name,
        version,
        architecture: None,
        license,
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_json_table() {
        let cases: &[(&str, Option<(&str, &str, Option<&str>)>)] = &[
            (
                r#"{"name":"lodash","version":"4.17.20","license":"MIT"}"#,
                Some(("lodash", "4.17.20", Some("MIT"))),
            ),
            (
                r#"{"name":"@babel/core","version":"7.0.0","license":{"type":"MIT","url":"x"}}"#,
                Some(("@babel/core", "7.0.0", Some("MIT"))),
            ),
            (
                r#"{"name":"old","version":"0.1.0","licenses":[{"type":"MIT"},{"type":"Apache-2.0"}]}"#,
                Some(("old", "0.1.0", Some("MIT OR Apache-2.0"))),
            ),
            (
                r#"{"name":"nolicense","version":"1.0.0"}"#,
                Some(("nolicense", "1.0.0", None)),
            ),
            (r#"{"name":"private-app"}"#, None),
            (r#"{"name": 5}"#, None),
            ("not json", None),
        ];
        for (text, want) in cases {
            let p = parse_package_json(text);
            let got = p
                .packages
                .first()
                .map(|p| (p.name.as_str(), p.version.as_str(), p.license.as_deref()));
            assert_eq!(got, *want, "{text}");
            assert_eq!(p.warnings.is_empty(), want.is_some(), "{text}");
        }
        for (path, want) in [
            ("app/node_modules/lodash/package.json", true),
            ("app/node_modules/@babel/core/package.json", true),
            ("app/node_modules/a/node_modules/b/package.json", true),
            ("app/package.json", false),
            ("app/node_modules/lodash/test/package.json", false),
            ("node_modules/package.json", false),
        ] {
            assert_eq!(is_installed_manifest(path), want, "{path}");
        }
    }
}

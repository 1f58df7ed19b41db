//! Package URLs (github.com/package-url/purl-spec), the identifiers SBOM
//! consumers join on.

use crate::os_release::OsRelease;
use crate::{Ecosystem, Package};

/// Percent-encodes all but the characters the purl spec leaves bare.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The purl of a package as found in an image with this OS release.
pub fn purl(p: &Package, os: Option<&OsRelease>) -> String {
    let version = encode(&p.version);
    match p.ecosystem {
        Ecosystem::Deb | Ecosystem::Apk | Ecosystem::Rpm => {
            let namespace = os.map_or(
                match p.ecosystem {
                    Ecosystem::Deb => "debian",
                    Ecosystem::Apk => "alpine",
                    _ => "redhat",
                },
                |o| o.id.as_str(),
            );
            let mut qualifiers = Vec::new();
            if let Some(arch) = &p.architecture {
                qualifiers.push(format!("arch={}", encode(arch)));
            }
            // rpm purls carry the epoch as a qualifier, not in the version.
            let mut version = version.clone();
            if p.ecosystem == Ecosystem::Rpm {
                if let Some((epoch, rest)) = p.version.split_once(':') {
                    qualifiers.push(format!("epoch={}", encode(epoch)));
                    version = encode(rest);
                }
            }
            if let Some(o) = os {
                if let Some(v) = &o.version_id {
                    qualifiers.push(format!("distro={}-{}", encode(&o.id), encode(v)));
                }
            }
            let query = if qualifiers.is_empty() {
                String::new()
            } else {
                format!("?{}", qualifiers.join("&"))
            };
            format!(
                "pkg:{}/{}/{}@{version}{query}",
                p.ecosystem.purl_type(),
                encode(namespace),
                encode(&p.name)
            )
        }
        // The spec: lowercase, with `_` read as `-`.
        Ecosystem::Python => format!(
            "pkg:pypi/{}@{version}",
            encode(&p.name.to_lowercase().replace('_', "-"))
        ),
        // Module paths keep their `/` as purl namespace separators.
        Ecosystem::Go => format!(
            "pkg:golang/{}@{version}",
            p.name.split('/').map(encode).collect::<Vec<_>>().join("/")
        ),
        Ecosystem::Cargo => format!("pkg:cargo/{}@{version}", encode(&p.name)),
        Ecosystem::Maven => match p.name.split_once(':') {
            Some((group, artifact)) => format!("pkg:maven/{}/{}@{version}", encode(group), encode(artifact)),
            None => format!("pkg:maven/{}@{version}", encode(&p.name)),
        },
        Ecosystem::Npm => match p.name.split_once('/') {
            Some((scope, name)) => format!("pkg:npm/{}/{}@{version}", encode(scope), encode(name)),
            None => format!("pkg:npm/{}@{version}", encode(&p.name)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os_release;

    #[test]
    fn purl_table() {
        let debian = os_release::parse("ID=debian\nVERSION_ID=\"12\"\n").unwrap();
        let alpine = os_release::parse("ID=alpine\nVERSION_ID=3.19.1\n").unwrap();
        let p = |eco, name: &str, version: &str, arch: Option<&str>| Package {
            ecosystem: eco,
            name: name.into(),
            version: version.into(),
            architecture: arch.map(String::from),
            source_name: name.into(),
            source_version: version.into(),
            license: None,
        };
        let cases = [
            (
                p(
                    Ecosystem::Deb,
                    "xserver-xorg-core",
                    "2:1.20.11-1+deb11u5",
                    Some("amd64"),
                ),
                Some(&debian),
                "pkg:deb/debian/xserver-xorg-core@2:1.20.11-1%2Bdeb11u5?arch=amd64&distro=debian-12",
            ),
            (
                p(Ecosystem::Apk, "musl", "1.2.4_git20230717-r4", Some("x86_64")),
                Some(&alpine),
                "pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=alpine-3.19.1",
            ),
            (
                p(Ecosystem::Python, "Django_Filter", "23.5", None),
                None,
                "pkg:pypi/django-filter@23.5",
            ),
            (
                p(Ecosystem::Npm, "@babel/core", "7.0.0", None),
                None,
                "pkg:npm/%40babel/core@7.0.0",
            ),
            (
                p(Ecosystem::Npm, "lodash", "4.17.21", None),
                None,
                "pkg:npm/lodash@4.17.21",
            ),
        ];
        for (package, os, want) in cases {
            assert_eq!(purl(&package, os), want);
        }
    }
}

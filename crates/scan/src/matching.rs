//! Installed packages × advisories → findings, for distribution packages.

use crate::os_release::OsRelease;
use crate::osv::Advisory;
use crate::version::{apk_cmp, dpkg_cmp};
use crate::Package;

/// One vulnerable package, with every id the vulnerability goes by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub ids: Vec<String>,
    pub package: String,
    pub version: String,
    pub fixed_version: Option<String>,
}

type VersionOrder = fn(&str, &str) -> std::cmp::Ordering;

/// The OSV ecosystem of the distribution release (`Debian:11`,
/// `Alpine:v3.11`) and its version order; `None` for distributions not
/// handled yet.
pub fn distro_ecosystem(os: &OsRelease) -> Option<(String, VersionOrder)> {
    let version = os.version_id.as_deref()?;
    let mut parts = version.split('.');
    let major = parts.next().filter(|m| !m.is_empty())?;
    match os.id.as_str() {
        "debian" => Some((format!("Debian:{major}"), dpkg_cmp)),
        "alpine" => Some((format!("Alpine:v{major}.{}", parts.next()?), apk_cmp)),
        _ => None,
    }
}

/// Distribution advisories (Debian's DSA/DLA, Alpine's secdb) name *source*
/// packages (dpkg `Source:`, apk origin) and apply to one release, so each
/// package is looked up by its source name and version in the ecosystem of
/// the image's own release. Withdrawn advisories never match.
pub fn match_os_packages(os: &OsRelease, packages: &[Package], advisories: &[Advisory]) -> Vec<Finding> {
    let Some((ecosystem, cmp)) = distro_ecosystem(os) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for adv in advisories.iter().filter(|a| a.withdrawn.is_none()) {
        for aff in &adv.affected {
            let Some(pkg) = &aff.package else { continue };
            if pkg.ecosystem != ecosystem {
                continue;
            }
            for p in packages.iter().filter(|p| p.source_name == pkg.name) {
                if aff.includes(&p.source_version, cmp) {
                    out.push(Finding {
                        ids: adv.ids().into_iter().map(String::from).collect(),
                        package: p.name.clone(),
                        version: p.version.clone(),
                        fixed_version: aff.fixed_after(&p.source_version, cmp).map(String::from),
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os_release;

    fn sample() -> Vec<Advisory> {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/vulndb/sample.osv.jsonl"
        ))
        .unwrap();
        text.lines().map(|l| Advisory::parse(l).unwrap()).collect()
    }

    fn pkg(name: &str, version: &str, source: &str, source_version: &str) -> Package {
        Package {
            name: name.into(),
            version: version.into(),
            architecture: Some("amd64".into()),
            source_name: source.into(),
            source_version: source_version.into(),
            license: None,
        }
    }

    /// Expectations read off the advisories themselves:
    /// DSA-5380-1: xorg-server in Debian:11 fixed in 2:1.20.11-1+deb11u6 (CVE-2023-1393).
    /// DSA-4477-1: zeromq3 in Debian:9 fixed in 4.2.1-4+deb9u2, in Debian:10 in 4.3.1-4+deb10u1.
    /// DSA-3699-1: virtualbox in Debian:8, introduced 0 and never fixed (end of life).
    #[test]
    fn real_debian_advisories() {
        let advisories = sample();
        let os = |v: &str| os_release::parse(&format!("ID=debian\nVERSION_ID=\"{v}\"\n")).unwrap();
        let xserver = |v: &str| pkg("xserver-xorg-core", v, "xorg-server", v);
        let cases: Vec<(OsRelease, Package, Option<(&str, Option<&str>)>)> = vec![
            (
                os("11"),
                xserver("2:1.20.11-1+deb11u5"),
                Some(("DSA-5380-1", Some("2:1.20.11-1+deb11u6"))),
            ),
            (os("11"), xserver("2:1.20.11-1+deb11u6"), None),
            (os("11"), xserver("2:1.20.11-1+deb11u7"), None),
            // The same vulnerable version on another release: that advisory is not about it.
            (os("10"), xserver("2:1.20.11-1+deb11u5"), None),
            (
                os("9"),
                pkg("libzmq5", "4.2.1-4+deb9u1", "zeromq3", "4.2.1-4+deb9u1"),
                Some(("DSA-4477-1", Some("4.2.1-4+deb9u2"))),
            ),
            (
                os("10"),
                pkg("libzmq5", "4.3.1-4", "zeromq3", "4.3.1-4"),
                Some(("DSA-4477-1", Some("4.3.1-4+deb10u1"))),
            ),
            (
                os("10"),
                pkg("libzmq5", "4.3.1-4+deb10u1", "zeromq3", "4.3.1-4+deb10u1"),
                None,
            ),
            // Matched by source name, not by the binary package's name.
            (os("10"), pkg("zeromq3", "4.3.1-4", "libzmq-other", "4.3.1-4"), None),
            (
                os("8"),
                pkg("virtualbox", "5.1.8-dfsg-1", "virtualbox", "5.1.8-dfsg-1"),
                Some(("DSA-3699-1", None)),
            ),
        ];
        for (os, p, want) in cases {
            let found = match_os_packages(&os, std::slice::from_ref(&p), &advisories);
            let got = found.first().map(|f| (f.ids[0].as_str(), f.fixed_version.as_deref()));
            assert_eq!(
                got, want,
                "{} {} on Debian {:?}",
                p.source_name, p.source_version, os.version_id
            );
            if let Some(f) = found.first() {
                assert_eq!(f.package, p.name);
            }
        }
        let f = match_os_packages(&os("11"), &[xserver("2:1.20.11-1+deb11u5")], &advisories);
        assert_eq!(
            f[0].ids,
            ["DSA-5380-1", "CVE-2023-1393"],
            "aliases travel with the finding"
        );
        let alpine = os_release::parse("ID=alpine\nVERSION_ID=3.11.6\n").unwrap();
        assert!(match_os_packages(&alpine, &[xserver("1")], &advisories).is_empty());
        let centos = os_release::parse("ID=centos\nVERSION_ID=7\n").unwrap();
        assert!(match_os_packages(&centos, &[xserver("2:1.20.11-1+deb11u5")], &advisories).is_empty());
    }

    /// ALPINE-CVE-2019-14904: ansible in Alpine:v3.11 fixed in 2.9.3-r0.
    /// ALPINE-CVE-2016-9932: xen fixed in 4.7.1-r3 for v3.5 … v3.11, 4.6.3-r6 for v3.4.
    #[test]
    fn real_alpine_advisories() {
        let advisories = sample();
        let os = |v: &str| os_release::parse(&format!("ID=alpine\nVERSION_ID={v}\n")).unwrap();
        let apk = |name: &str, v: &str, origin: &str| pkg(name, v, origin, v);
        let ids = |f: &[Finding]| -> Vec<String> { f.iter().map(|x| x.ids[0].clone()).collect() };
        let found = match_os_packages(&os("3.11.6"), &[apk("ansible", "2.9.2-r0", "ansible")], &advisories);
        assert_eq!(ids(&found), ["ALPINE-CVE-2019-14904"]);
        assert_eq!(
            found[0].ids,
            ["ALPINE-CVE-2019-14904", "CVE-2019-14904"],
            "alias and upstream name one CVE once"
        );
        assert_eq!(found[0].fixed_version.as_deref(), Some("2.9.3-r0"));
        assert!(match_os_packages(&os("3.11.6"), &[apk("ansible", "2.9.3-r0", "ansible")], &advisories).is_empty());
        assert!(
            match_os_packages(&os("3.10.1"), &[apk("ansible", "2.9.2-r0", "ansible")], &advisories).is_empty(),
            "only v3.11 is listed"
        );

        // xen 4.7.1-r4 on v3.11: past CVE-2016-9932's fix (r3), before XSA-207's (r5).
        let found = match_os_packages(&os("3.11.0"), &[apk("xen-libs", "4.7.1-r4", "xen")], &advisories);
        assert_eq!(ids(&found), ["ALPINE-XSA-207"]);
        let found = match_os_packages(&os("3.4.6"), &[apk("xen", "4.6.3-r5", "xen")], &advisories);
        let mut got = ids(&found);
        got.sort();
        assert_eq!(got, ["ALPINE-CVE-2016-9932", "ALPINE-XSA-207"]);
    }
}

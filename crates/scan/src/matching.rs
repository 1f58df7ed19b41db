//! Components × advisories → findings.
//!
//! The advisories are indexed once by (OSV ecosystem, package name), so
//! matching an image costs a hash lookup per component, not a pass over
//! the database; re-matching stored SBOMs after an import relies on that.

use std::collections::HashMap;

use serde::Serialize;

use crate::layer::ImageFacts;
use crate::osv::Advisory;
use crate::python;
use crate::severity::{rate, Rated, Severity};

type VersionOrder = fn(&str, &str) -> std::cmp::Ordering;

/// The advisories in force, ready for lookups. Withdrawn advisories are
/// left out here, once.
pub struct VulnIndex {
    advisories: Vec<Advisory>,
    rated: Vec<Rated>,
    by_package: HashMap<(String, String), Vec<(u32, u32)>>,
}

impl VulnIndex {
    pub fn new(advisories: Vec<Advisory>) -> VulnIndex {
        let advisories: Vec<Advisory> = advisories.into_iter().filter(|a| a.withdrawn.is_none()).collect();
        let rated = advisories.iter().map(rate).collect();
        let mut by_package: HashMap<(String, String), Vec<(u32, u32)>> = HashMap::new();
        for (i, a) in advisories.iter().enumerate() {
            for (j, aff) in a.affected.iter().enumerate() {
                if let Some(p) = &aff.package {
                    let name = if p.ecosystem == "PyPI" {
                        python::normalize_name(&p.name)
                    } else {
                        p.name.clone()
                    };
                    by_package
                        .entry((p.ecosystem.clone(), name))
                        .or_default()
                        .push((i as u32, j as u32));
                }
            }
        }
        VulnIndex {
            advisories,
            rated,
            by_package,
        }
    }

    /// Advisories in the index (withdrawn ones excluded).
    pub fn len(&self) -> usize {
        self.advisories.len()
    }

    pub fn is_empty(&self) -> bool {
        self.advisories.is_empty()
    }
}

/// One vulnerability in one component, with every id it goes by.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Finding {
    /// The first advisory's own id, then its aliases and those of any
    /// advisory merged into this finding for naming the same vulnerability.
    pub ids: Vec<String>,
    /// Ids that are related but not the same vulnerability (a DSA's CVEs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss_score: Option<f64>,
    pub package: String,
    pub version: String,
    /// The component's package URL.
    pub purl: String,
    /// The OSV ecosystem the match was made in (`Debian:11`).
    pub ecosystem: String,
    /// The lowest version that fixes it (for merged advisories, the
    /// highest of their fixes, since all must be applied).
    pub fixed_version: Option<String>,
    /// The layer that introduced the component.
    pub layer: String,
    /// The file the component was found in.
    pub path: String,
    /// The advisory's page (see `Advisory::reference`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

pub use crate::distro::distro_ecosystem;

/// Every vulnerability in the image's components, worst first.
///
/// Distribution advisories (Debian's DSA/DLA, Alpine's secdb) name *source*
/// packages (dpkg `Source:`, apk origin) and apply to one release, so each
/// package is looked up by its source name and version in the ecosystem of
/// the image's own release. Language packages are looked up in their
/// ecosystem's advisories (PyPI by normalised name).
pub fn match_image(image: &ImageFacts, index: &VulnIndex) -> Vec<Finding> {
    match_image_with(image, index, &mut MatchCache::default())
}

/// Which affected entries include a (ecosystem, package, version), with
/// the fix to upgrade to: the costly part of matching (version parsing
/// and range walks), remembered across the images of one re-match, which
/// share most of their packages.
#[derive(Default)]
pub struct MatchCache {
    hits: HashMap<(String, String, String), Vec<(u32, u32, Option<String>)>>,
}

/// [`match_image`], remembering per-package results in `cache`. The cache
/// belongs to one index: make a new one when the index changes.
pub fn match_image_with(image: &ImageFacts, index: &VulnIndex, cache: &mut MatchCache) -> Vec<Finding> {
    let mut out = Vec::new();
    let distro = image.os.as_ref().and_then(distro_ecosystem);
    for c in &image.components {
        let p = &c.package;
        let ecosystem = match (p.ecosystem.osv_name(), &distro) {
            (Some(name), _) => name.to_string(),
            (None, Some((name, manager))) if *manager == p.ecosystem => name.clone(),
            _ => continue,
        };
        let cmp = &p.ecosystem.version_order();
        let key = (ecosystem.clone(), p.source_name.clone());
        let Some(candidates) = index.by_package.get(&key) else {
            continue;
        };
        let hits = cache
            .hits
            .entry((key.0, key.1, p.source_version.clone()))
            .or_insert_with(|| {
                candidates
                    .iter()
                    .filter_map(|&(i, j)| {
                        let aff = &index.advisories[i as usize].affected[j as usize];
                        aff.includes(&p.source_version, *cmp)
                            .then(|| (i, j, aff.fixed_after(&p.source_version, *cmp).map(String::from)))
                    })
                    .collect()
            });
        let mut found: Vec<Finding> = Vec::new();
        for (i, _, fixed) in hits.iter() {
            let adv = &index.advisories[*i as usize];
            let rated = index.rated[*i as usize];
            found.push(Finding {
                ids: adv.ids().into_iter().map(String::from).collect(),
                related: adv.upstream.iter().chain(&adv.related).cloned().collect(),
                summary: adv.summary.clone(),
                severity: rated.severity,
                cvss_score: rated.cvss_score,
                package: p.name.clone(),
                version: p.version.clone(),
                purl: c.purl.clone(),
                ecosystem: ecosystem.clone(),
                fixed_version: fixed.clone(),
                layer: c.layer.clone(),
                path: c.path.clone(),
                reference: adv.reference.clone(),
            });
        }
        out.extend(merge_aliases(found, *cmp));
    }
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.package.cmp(&b.package))
            .then_with(|| a.ids.cmp(&b.ids))
    });
    out
}

/// Findings for one component that share any id are one vulnerability.
fn merge_aliases(found: Vec<Finding>, cmp: VersionOrder) -> Vec<Finding> {
    let mut merged: Vec<Finding> = Vec::new();
    for f in found {
        let mut f = f;
        // Absorb every earlier group this one overlaps; it may join several.
        let mut k = 0;
        while k < merged.len() {
            if merged[k].ids.iter().any(|id| f.ids.contains(id)) {
                let g = merged.swap_remove(k);
                f = join(g, f, cmp);
            } else {
                k += 1;
            }
        }
        merged.push(f);
    }
    merged
}

fn join(mut a: Finding, b: Finding, cmp: VersionOrder) -> Finding {
    for id in b.ids {
        if !a.ids.contains(&id) {
            a.ids.push(id);
        }
    }
    for id in b.related {
        if !a.related.contains(&id) {
            a.related.push(id);
        }
    }
    if (b.severity, b.cvss_score.unwrap_or(0.0)) > (a.severity, a.cvss_score.unwrap_or(0.0)) {
        a.severity = b.severity;
        a.cvss_score = b.cvss_score;
    }
    a.summary = a.summary.or(b.summary);
    a.reference = a.reference.or(b.reference);
    a.fixed_version = match (a.fixed_version, b.fixed_version) {
        (Some(x), Some(y)) => Some(if cmp(&x, &y).is_ge() { x } else { y }),
        (x, y) => x.or(y),
    };
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::Component;
    use crate::os_release::{self, OsRelease};
    use crate::Package;

    fn sample() -> VulnIndex {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/vulndb/sample.osv.jsonl"
        ))
        .unwrap();
        VulnIndex::new(text.lines().map(|l| Advisory::parse(l).unwrap()).collect())
    }

    fn scan(os: &OsRelease, p: &Package, index: &VulnIndex) -> Vec<Finding> {
        scan_in(Some(os), p, index)
    }

    /// One package found in the base layer of an image with this release.
    fn scan_in(os: Option<&OsRelease>, p: &Package, index: &VulnIndex) -> Vec<Finding> {
        let image = ImageFacts {
            os: os.cloned(),
            components: vec![Component {
                package: p.clone(),
                layer: "sha256:base".into(),
                path: "var/lib/dpkg/status".into(),
                purl: String::new(),
            }],
            warnings: vec![],
        };
        match_image(&image, index)
    }

    fn pkg(name: &str, version: &str, source: &str, source_version: &str) -> Package {
        Package {
            ecosystem: crate::Ecosystem::Deb,
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
            let found = scan(&os, &p, &advisories);
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
        let f = scan(&os("11"), &xserver("2:1.20.11-1+deb11u5"), &advisories);
        assert_eq!(f[0].ids, ["DSA-5380-1"]);
        assert_eq!(f[0].related, ["CVE-2023-1393"], "a DSA's CVEs are related, not aliases");
        assert_eq!(
            (f[0].layer.as_str(), f[0].path.as_str()),
            ("sha256:base", "var/lib/dpkg/status")
        );
        let alpine = os_release::parse("ID=alpine\nVERSION_ID=3.11.6\n").unwrap();
        assert!(scan(&alpine, &xserver("1"), &advisories).is_empty());
        let centos = os_release::parse("ID=centos\nVERSION_ID=7\n").unwrap();
        assert!(scan(&centos, &xserver("2:1.20.11-1+deb11u5"), &advisories).is_empty());
    }

    /// ALPINE-CVE-2019-14904: ansible in Alpine:v3.11 fixed in 2.9.3-r0.
    /// ALPINE-CVE-2016-9932: xen fixed in 4.7.1-r3 for v3.5 … v3.11, 4.6.3-r6 for v3.4.
    #[test]
    fn real_alpine_advisories() {
        let advisories = sample();
        let os = |v: &str| os_release::parse(&format!("ID=alpine\nVERSION_ID={v}\n")).unwrap();
        let apk = |name: &str, v: &str, origin: &str| Package {
            ecosystem: crate::Ecosystem::Apk,
            ..pkg(name, v, origin, v)
        };
        let ids = |f: &[Finding]| -> Vec<String> { f.iter().map(|x| x.ids[0].clone()).collect() };
        let found = scan(&os("3.11.6"), &apk("ansible", "2.9.2-r0", "ansible"), &advisories);
        assert_eq!(ids(&found), ["ALPINE-CVE-2019-14904"]);
        assert_eq!(
            found[0].ids,
            ["ALPINE-CVE-2019-14904", "CVE-2019-14904"],
            "alias and upstream name one CVE once"
        );
        assert_eq!(found[0].fixed_version.as_deref(), Some("2.9.3-r0"));
        assert!(scan(&os("3.11.6"), &apk("ansible", "2.9.3-r0", "ansible"), &advisories).is_empty());
        assert!(
            scan(&os("3.10.1"), &apk("ansible", "2.9.2-r0", "ansible"), &advisories).is_empty(),
            "only v3.11 is listed"
        );

        // xen 4.7.1-r4 on v3.11: past CVE-2016-9932's fix (r3), before XSA-207's (r5).
        let found = scan(&os("3.11.0"), &apk("xen-libs", "4.7.1-r4", "xen"), &advisories);
        assert_eq!(ids(&found), ["ALPINE-XSA-207"]);
        let found = scan(&os("3.4.6"), &apk("xen", "4.6.3-r5", "xen"), &advisories);
        let mut got = ids(&found);
        got.sort();
        assert_eq!(got, ["ALPINE-CVE-2016-9932", "ALPINE-XSA-207"]);
    }

    /// Two advisories naming one CVE are one finding; a DSA that merely
    /// lists the CVE as upstream stays separate; withdrawn ones never match.
    #[test]
    fn aliases_merge_and_withdrawn_advisories_are_gone() {
        let range = |fixed: &str| {
            format!(
                r#"[{{"package":{{"ecosystem":"Debian:12","name":"foo"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"{fixed}"}}]}}]}}]"#
            )
        };
        let records = [
            format!(
                r#"{{"id":"GHSA-1","aliases":["CVE-1"],"severity":[{{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}}],"affected":{}}}"#,
                range("1.2-1")
            ),
            format!(
                r#"{{"id":"DEBIAN-CVE-1","aliases":["CVE-1"],"database_specific":{{"severity":"low"}},"affected":{}}}"#,
                range("1.3-1")
            ),
            format!(r#"{{"id":"DSA-9","upstream":["CVE-1"],"affected":{}}}"#, range("1.2-1")),
            format!(
                r#"{{"id":"GHSA-2","withdrawn":"2024-01-01T00:00:00Z","affected":{}}}"#,
                range("9")
            ),
        ];
        let index = VulnIndex::new(records.iter().map(|r| Advisory::parse(r).unwrap()).collect());
        assert_eq!(index.len(), 3);
        let os = os_release::parse("ID=debian\nVERSION_ID=\"12\"\n").unwrap();
        let found = scan(&os, &pkg("libfoo1", "1.1-1", "foo", "1.1-1"), &index);
        let got: Vec<(Vec<&str>, Severity, Option<&str>)> = found
            .iter()
            .map(|f| {
                (
                    f.ids.iter().map(String::as_str).collect(),
                    f.severity,
                    f.fixed_version.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (vec!["GHSA-1", "CVE-1", "DEBIAN-CVE-1"], Severity::High, Some("1.3-1")),
                (vec!["DSA-9"], Severity::Unknown, Some("1.2-1")),
            ]
        );
        assert_eq!(found[0].cvss_score, Some(7.5));
        assert_eq!(found[1].related, ["CVE-1"]);
        // Past the first fix, only the later advisory still applies.
        let found = scan(&os, &pkg("libfoo1", "1.2-1", "foo", "1.2-1"), &index);
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].ids[0].as_str(), found[0].severity),
            ("DEBIAN-CVE-1", Severity::Low)
        );
    }

    /// ALSA-2025:10991 ("Moderate: microcode_ctl security update"):
    /// microcode_ctl in AlmaLinux:8 fixed in 4:20250512-1.el8_10, related CVE-2024-28956.
    #[test]
    fn real_almalinux_advisory() {
        let index = sample();
        let os = |v: &str| os_release::parse(&format!("ID=\"almalinux\"\nVERSION_ID=\"{v}\"\n")).unwrap();
        let rpm = |v: &str| Package {
            ecosystem: crate::Ecosystem::Rpm,
            ..pkg("microcode_ctl", v, "microcode_ctl", v)
        };
        let found = scan(&os("8.10"), &rpm("4:20240531-1.el8_10"), &index);
        assert_eq!(found.len(), 1);
        let f = &found[0];
        assert_eq!(
            (
                f.ids[0].as_str(),
                f.fixed_version.as_deref(),
                f.severity,
                f.ecosystem.as_str()
            ),
            (
                "ALSA-2025:10991",
                Some("4:20250512-1.el8_10"),
                Severity::Medium,
                "AlmaLinux:8"
            )
        );
        assert_eq!(f.related, ["CVE-2024-28956"]);
        assert!(scan(&os("8.10"), &rpm("4:20250512-1.el8_10"), &index).is_empty());
        assert!(scan(&os("8.10"), &rpm("4:20250812-1.el8_10"), &index).is_empty());
        assert!(
            scan(&os("9.4"), &rpm("4:20240531-1.el9_4"), &index).is_empty(),
            "an AlmaLinux 8 erratum"
        );
        // A newer epoch wins over any date.
        assert!(scan(&os("8.10"), &rpm("5:20200101-1.el8"), &index).is_empty());
    }

    /// Expectations read off the sample advisories:
    /// PYSEC-2021-335: accesscontrol affected in [4.0, 4.3) and [5.0, 5.2).
    /// PYSEC-2022-42969: py affected up to and including 1.11.0, no fix.
    /// PYSEC-2024-1: gratient, only version 0.5 listed.
    /// PYSEC-2022-15: loguru, withdrawn.
    /// NSWG-ECO-500: mqtt-packet fixed in 3.5.1, 4.1.3, 5.6.1, 6.1.2 (CVSS 3.0 …/A:H = 7.5).
    /// NSWG-ECO-151: passport-azure-ad [1.0.0, 1.4.6) and exactly 2.0.0.
    /// NSWG-ECO-1: bassmaster up to 1.5.1 (CVSS 3.0 …/C:L/I:L/A:N = 6.5).
    #[test]
    fn real_python_and_npm_advisories() {
        let index = sample();
        let lang = |eco: crate::Ecosystem, name: &str, version: &str| {
            let source = if eco == crate::Ecosystem::Python {
                python::normalize_name(name)
            } else {
                name.to_string()
            };
            Package {
                ecosystem: eco,
                architecture: None,
                ..pkg(name, version, &source, version)
            }
        };
        use crate::Ecosystem::{Cargo, Go, Npm, Python};
        let cases: &[(crate::Ecosystem, &str, &str, Option<(&str, Option<&str>, Severity)>)] = &[
            (
                Python,
                "AccessControl",
                "4.2",
                Some(("PYSEC-2021-335", Some("4.3"), Severity::Unknown)),
            ),
            (Python, "AccessControl", "4.3", None),
            (
                Python,
                "AccessControl",
                "5.1",
                Some(("PYSEC-2021-335", Some("5.2"), Severity::Unknown)),
            ),
            (Python, "AccessControl", "5.2", None),
            (Python, "AccessControl", "3.9", None),
            (
                Python,
                "py",
                "1.11.0",
                Some(("PYSEC-2022-42969", None, Severity::Unknown)),
            ),
            (Python, "py", "1.11.1", None),
            (
                Python,
                "gratient",
                "0.5",
                Some(("PYSEC-2024-1", None, Severity::Unknown)),
            ),
            (Python, "gratient", "0.6", None),
            (Python, "loguru", "0.5.3", None),
            (
                Npm,
                "mqtt-packet",
                "4.1.2",
                Some(("NSWG-ECO-500", Some("4.1.3"), Severity::High)),
            ),
            (Npm, "mqtt-packet", "4.1.3", None),
            (
                Npm,
                "mqtt-packet",
                "6.1.1",
                Some(("NSWG-ECO-500", Some("6.1.2"), Severity::High)),
            ),
            (Npm, "mqtt-packet", "7.0.0", None),
            (
                Npm,
                "passport-azure-ad",
                "1.4.5",
                Some(("NSWG-ECO-151", Some("1.4.6"), Severity::Critical)),
            ),
            (
                Npm,
                "passport-azure-ad",
                "2.0.0",
                Some(("NSWG-ECO-151", None, Severity::Critical)),
            ),
            (Npm, "passport-azure-ad", "2.0.1", None),
            (Npm, "bassmaster", "1.5.1", Some(("NSWG-ECO-1", None, Severity::Medium))),
            // A PyPI name in npm is another package.
            (Npm, "py", "1.0.0", None),
            // GO-2020-0001: gin fixed in 1.6.0. GO-2023-2044: stdlib [1.21.0-0, 1.21.1).
            (
                Go,
                "github.com/gin-gonic/gin",
                "1.5.0",
                Some(("GO-2020-0001", Some("1.6.0"), Severity::Unknown)),
            ),
            (Go, "github.com/gin-gonic/gin", "1.6.0", None),
            (
                Go,
                "stdlib",
                "1.21.0",
                Some(("GO-2023-2044", Some("1.21.1"), Severity::Unknown)),
            ),
            (Go, "stdlib", "1.21.1", None),
            (Go, "stdlib", "1.20.8", None),
            // RUSTSEC-2017-0002: hyper [0.0.0-0, 0.9.18) and [0.10.0, 0.10.2), CVSS 3.0 …/I:L = 5.3.
            (
                Cargo,
                "hyper",
                "0.10.1",
                Some(("RUSTSEC-2017-0002", Some("0.10.2"), Severity::Medium)),
            ),
            (
                Cargo,
                "hyper",
                "0.9.17",
                Some(("RUSTSEC-2017-0002", Some("0.9.18"), Severity::Medium)),
            ),
            (Cargo, "hyper", "0.9.18", None),
            // RUSTSEC-2016-0001: openssl below 0.9.0, CVSS 3.0 AV:N/AC:H/…/C:H/I:H/A:H = 8.1.
            (
                Cargo,
                "openssl",
                "0.8.3",
                Some(("RUSTSEC-2016-0001", Some("0.9.0"), Severity::High)),
            ),
        ];
        for (eco, name, version, want) in cases {
            let found = scan_in(None, &lang(*eco, name, version), &index);
            let got = found
                .first()
                .map(|f| (f.ids[0].as_str(), f.fixed_version.as_deref(), f.severity));
            assert_eq!(got, *want, "{name} {version}");
            assert!(found.len() <= 1, "{found:?}");
        }
    }

    /// The shared data has no Maven advisories; this one is written the way
    /// GitHub's OSV export writes them (`group:artifact`, ECOSYSTEM ranges),
    /// and the expectations follow Maven's order (2.9.10 < 2.9.10.1 < 2.10.0-rc1 < 2.10.0).
    #[test]
    fn maven_packages_match_group_and_artifact() {
        let advisory = r#"{"id":"GHSA-test-maven","aliases":["CVE-2019-0000"],"affected":[{"package":{"ecosystem":"Maven","name":"com.fasterxml.jackson.core:jackson-databind"},
            "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"2.9.0"},{"fixed":"2.9.10.1"},{"introduced":"2.10.0-rc1"},{"fixed":"2.10.0"}]}]}]}"#;
        let index = VulnIndex::new(vec![Advisory::parse(advisory).unwrap()]);
        let jar = |name: &str, v: &str| Package {
            ecosystem: crate::Ecosystem::Maven,
            architecture: None,
            ..pkg(name, v, name, v)
        };
        let cases = [
            (
                "com.fasterxml.jackson.core:jackson-databind",
                "2.9.10",
                Some("2.9.10.1"),
            ),
            ("com.fasterxml.jackson.core:jackson-databind", "2.9.10.1", None),
            (
                "com.fasterxml.jackson.core:jackson-databind",
                "2.10.0-rc2",
                Some("2.10.0"),
            ),
            ("com.fasterxml.jackson.core:jackson-databind", "2.10.0", None),
            ("com.fasterxml.jackson.core:jackson-databind", "2.8.11", None),
            ("jackson-databind", "2.9.10", None),
        ];
        for (name, version, fixed) in cases {
            let found = scan_in(None, &jar(name, version), &index);
            assert_eq!(
                found.first().map(|f| f.fixed_version.as_deref()),
                fixed.map(Some),
                "{name} {version}"
            );
        }
    }
}

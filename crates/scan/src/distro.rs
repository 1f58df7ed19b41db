//! Which OSV ecosystem holds the advisories for an image's distribution,
//! from its os-release. The names are OSV's (github.com/ossf/osv-schema,
//! `ecosystems.json`) as the distributions publish them.

use crate::os_release::OsRelease;
use crate::Ecosystem;

/// The OSV ecosystem of the distribution release (`Debian:11`,
/// `Alpine:v3.11`, `Ubuntu:22.04:LTS`, `Wolfi`) and the package manager
/// whose packages it covers; `None` for distributions not handled yet.
pub fn distro_ecosystem(os: &OsRelease) -> Option<(String, Ecosystem)> {
    // Wolfi and Chainguard are rolling: one ecosystem each, and VERSION_ID
    // is only the version of their base layout package.
    match os.id.as_str() {
        "wolfi" => return Some(("Wolfi".into(), Ecosystem::Apk)),
        "chainguard" => return Some(("Chainguard".into(), Ecosystem::Apk)),
        "opensuse-tumbleweed" => return Some(("openSUSE:Tumbleweed".into(), Ecosystem::Rpm)),
        _ => {}
    }
    let version = os.version_id.as_deref()?;
    let mut parts = version.split('.');
    let major = parts.next().filter(|m| !m.is_empty())?;
    match os.id.as_str() {
        "debian" => Some((format!("Debian:{major}"), Ecosystem::Deb)),
        "ubuntu" => Some((ubuntu(version)?, Ecosystem::Deb)),
        "alpine" => Some((format!("Alpine:v{major}.{}", parts.next()?), Ecosystem::Apk)),
        "almalinux" => Some((format!("AlmaLinux:{major}"), Ecosystem::Rpm)),
        "rocky" => Some((format!("Rocky Linux:{major}"), Ecosystem::Rpm)),
        "opensuse-leap" => Some((format!("openSUSE:Leap {major}.{}", parts.next()?), Ecosystem::Rpm)),
        // Not handled, on purpose: SUSE files SLE advisories under the
        // module that ships a package ("SUSE:Linux Enterprise Module for
        // Basesystem 15 SP5") and under support-phase names ("… 15 SP5-LTSS"),
        // and Red Hat under its repositories ("Red Hat:enterprise_linux:9::baseos");
        // neither is in os-release, and a guessed name would scan clean.
        _ => None,
    }
}

/// `Ubuntu:YY.MM`, with `:LTS` for the long-term releases: every April
/// release of an even year since 6.06. Ubuntu also publishes
/// `Ubuntu:Pro:YY.MM:LTS` for fixes that need an Ubuntu Pro (ESM)
/// subscription; an image says nothing of a subscription, so the
/// release's own ecosystem is the one matched.
fn ubuntu(version: &str) -> Option<String> {
    let (year, month) = version.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(year) || month.len() != 2 || !digits(month) {
        return None;
    }
    let lts = month == "04" && year.parse::<u32>().ok()? % 2 == 0;
    Some(format!("Ubuntu:{year}.{month}{}", if lts { ":LTS" } else { "" }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os_release;

    /// os-release files as the images ship them (trimmed to the fields
    /// read) → the ecosystem their advisories are published under.
    #[test]
    fn os_release_to_ecosystem() {
        let cases: &[(&str, Option<(&str, Ecosystem)>)] = &[
            (
                "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n",
                Some(("Debian:12", Ecosystem::Deb)),
            ),
            (
                "PRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nVERSION=\"22.04.4 LTS (Jammy Jellyfish)\"\nID=ubuntu\nID_LIKE=debian\n",
                Some(("Ubuntu:22.04:LTS", Ecosystem::Deb)),
            ),
            (
                "PRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\nVERSION_ID=\"24.04\"\nID=ubuntu\n",
                Some(("Ubuntu:24.04:LTS", Ecosystem::Deb)),
            ),
            (
                "PRETTY_NAME=\"Ubuntu 20.04.6 LTS\"\nVERSION_ID=\"20.04\"\nID=ubuntu\n",
                Some(("Ubuntu:20.04:LTS", Ecosystem::Deb)),
            ),
            // Interim releases have no suffix; neither does an odd year's April.
            (
                "PRETTY_NAME=\"Ubuntu 24.10\"\nVERSION_ID=\"24.10\"\nID=ubuntu\n",
                Some(("Ubuntu:24.10", Ecosystem::Deb)),
            ),
            (
                "PRETTY_NAME=\"Ubuntu 25.04\"\nVERSION_ID=\"25.04\"\nID=ubuntu\n",
                Some(("Ubuntu:25.04", Ecosystem::Deb)),
            ),
            (
                "PRETTY_NAME=\"Ubuntu 25.10\"\nVERSION_ID=\"25.10\"\nID=ubuntu\n",
                Some(("Ubuntu:25.10", Ecosystem::Deb)),
            ),
            ("ID=ubuntu\nVERSION_ID=\"22\"\n", None),
            ("ID=ubuntu\nVERSION_ID=\"22.4\"\n", None),
            ("ID=ubuntu\n", None),
            (
                "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.18.4\nPRETTY_NAME=\"Alpine Linux v3.18\"\n",
                Some(("Alpine:v3.18", Ecosystem::Apk)),
            ),
            (
                "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.21.2\nPRETTY_NAME=\"Alpine Linux v3.21\"\n",
                Some(("Alpine:v3.21", Ecosystem::Apk)),
            ),
            ("ID=alpine\nVERSION_ID=3\n", None),
            // Chainguard's own examples (vulnerability-scanner-support, docs/scanning_implementation.md).
            (
                "ID=wolfi\nNAME=\"Wolfi\"\nPRETTY_NAME=\"Wolfi\"\nVERSION_ID=\"20230201\"\nHOME_URL=\"https://wolfi.dev\"\n",
                Some(("Wolfi", Ecosystem::Apk)),
            ),
            (
                "ID=chainguard\nNAME=\"Chainguard\"\nPRETTY_NAME=\"Chainguard\"\nVERSION_ID=\"20230214\"\nHOME_URL=\"https://chainguard.dev/\"\n",
                Some(("Chainguard", Ecosystem::Apk)),
            ),
            ("ID=wolfi\n", Some(("Wolfi", Ecosystem::Apk))),
            (
                "NAME=\"AlmaLinux\"\nVERSION_ID=\"8.10\"\nID=\"almalinux\"\n",
                Some(("AlmaLinux:8", Ecosystem::Rpm)),
            ),
            (
                "NAME=\"Rocky Linux\"\nVERSION_ID=\"9.3\"\nID=\"rocky\"\n",
                Some(("Rocky Linux:9", Ecosystem::Rpm)),
            ),
            ("NAME=\"CentOS Linux\"\nVERSION_ID=\"7\"\nID=\"centos\"\n", None),
            (
                "NAME=\"openSUSE Leap\"\nVERSION_ID=\"15.6\"\nID=\"opensuse-leap\"\nID_LIKE=\"suse opensuse\"\n",
                Some(("openSUSE:Leap 15.6", Ecosystem::Rpm)),
            ),
            ("NAME=\"openSUSE Leap\"\nVERSION_ID=\"15\"\nID=\"opensuse-leap\"\n", None),
            (
                "NAME=\"openSUSE Tumbleweed\"\nID=\"opensuse-tumbleweed\"\nVERSION_ID=\"20240801\"\n",
                Some(("openSUSE:Tumbleweed", Ecosystem::Rpm)),
            ),
            ("NAME=\"SLES\"\nVERSION=\"15-SP5\"\nVERSION_ID=\"15.5\"\nID=\"sles\"\n", None),
            ("NAME=\"Red Hat Enterprise Linux\"\nVERSION_ID=\"9.4\"\nID=\"rhel\"\n", None),
        ];
        for (text, want) in cases {
            let os = os_release::parse(text).unwrap();
            let got = distro_ecosystem(&os);
            let want = want.map(|(e, m)| (e.to_string(), m));
            assert_eq!(got, want, "{text:?}");
        }
    }

    use crate::layer::{Component, ImageFacts};
    use crate::matching::{match_image, Finding, VulnIndex};
    use crate::osv::Advisory;
    use crate::Package;

    /// Real advisories, cut down to what matching reads (no `versions`
    /// lists, binaries, `database_specific` or details):
    /// - USN-7400-1 and USN-7300-1 from github.com/canonical/ubuntu-security-notices,
    ///   `osv/usn/`, commit 03f64e4bf926333b961b3c72c3744fd14ba4dcbe;
    /// - USN-7900-1, the same repository and commit;
    /// - CGA-224q-ccj5-2p53, Chainguard's OSV feed as kept in
    ///   github.com/anchore/vunnel, `tests/unit/providers/chainguard/test-fixtures/osv/`,
    ///   commit 3e7011918d645f70d58920911a136f10c66880d0 (unchanged).
    const RECORDS: [&str; 4] = [
        r#"{"schema_version":"1.7.0","id":"USN-7400-1","summary":"php7.4, php8.1, php8.3 vulnerabilities","aliases":[],"upstream":["UBUNTU-CVE-2024-11235","UBUNTU-CVE-2025-1217","UBUNTU-CVE-2025-1219","UBUNTU-CVE-2025-1734","UBUNTU-CVE-2025-1736","UBUNTU-CVE-2025-1861"],"related":[],"published":"2025-03-31T19:36:15Z","modified":"2026-04-27T14:11:41Z",
          "affected":[
            {"package":{"ecosystem":"Ubuntu:20.04:LTS","name":"php7.4","purl":"pkg:deb/ubuntu/php7.4@7.4.3-4ubuntu2.29?arch=source&distro=focal"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"7.4.3-4ubuntu2.29"}]}],"ecosystem_specific":{"availability":"No subscription required"}},
            {"package":{"ecosystem":"Ubuntu:22.04:LTS","name":"php8.1","purl":"pkg:deb/ubuntu/php8.1@8.1.2-1ubuntu2.21?arch=source&distro=jammy"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"8.1.2-1ubuntu2.21"}]}],"ecosystem_specific":{"availability":"No subscription required"}},
            {"package":{"ecosystem":"Ubuntu:24.04:LTS","name":"php8.3","purl":"pkg:deb/ubuntu/php8.3@8.3.6-0ubuntu0.24.04.4?arch=source&distro=noble"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"8.3.6-0ubuntu0.24.04.4"}]}],"ecosystem_specific":{"availability":"No subscription required"}}],
          "references":[{"type":"ADVISORY","url":"https://ubuntu.com/security/notices/USN-7400-1"}]}"#,
        r#"{"schema_version":"1.7.0","id":"USN-7300-1","summary":"linux vulnerability","aliases":[],"upstream":["UBUNTU-CVE-2025-0927"],"related":[],"published":"2025-02-25T16:28:44Z","modified":"2026-04-27T14:11:40Z",
          "affected":[
            {"package":{"ecosystem":"Ubuntu:Pro:14.04:LTS","name":"linux","purl":"pkg:deb/ubuntu/linux@3.13.0-203.254?arch=source&distro=esm-infra-legacy/trusty"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.13.0-203.254"}]}],"ecosystem_specific":{"availability":"Available with Ubuntu Pro with Legacy support add-on: https://ubuntu.com/pro"}}],
          "references":[{"type":"ADVISORY","url":"https://ubuntu.com/security/notices/USN-7300-1"}]}"#,
        r#"{"schema_version":"1.7.0","id":"USN-7900-1","summary":"openjdk-17-crac vulnerabilities","aliases":[],"upstream":["UBUNTU-CVE-2025-53057","UBUNTU-CVE-2025-53066"],"related":[],"published":"2025-12-01T14:37:11Z","modified":"2026-04-27T14:11:47Z",
          "affected":[
            {"package":{"ecosystem":"Ubuntu:25.10","name":"openjdk-17-crac","purl":"pkg:deb/ubuntu/openjdk-17-crac@17.0.17+10-0ubuntu1~25.10?arch=source&distro=questing"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"17.0.17+10-0ubuntu1~25.10"}]}],"ecosystem_specific":{"availability":"No subscription required"}}],
          "references":[{"type":"ADVISORY","url":"https://ubuntu.com/security/notices/USN-7900-1"}]}"#,
        r#"{"schema_version":"1.7.0","id":"CGA-224q-ccj5-2p53","published":"2026-01-07T00:00:00Z","modified":"2026-01-07T00:00:00Z","upstream":["CVE-2025-32464","GHSA-frg5-h47x-75j9"],"related":["CVE-2025-32464","GHSA-frg5-h47x-75j9"],
          "affected":[
            {"package":{"ecosystem":"Chainguard","name":"haproxy-2.2","purl":"pkg:apk/chainguard/haproxy-2.2"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"2.2.34-r0"}]}]},
            {"package":{"ecosystem":"Chainguard","name":"haproxy-2.8","purl":"pkg:apk/chainguard/haproxy-2.8"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"2.8.18-r0"}]}]},
            {"package":{"ecosystem":"Wolfi","name":"haproxy-3.0","purl":"pkg:apk/wolfi/haproxy-3.0"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.0.10-r0"}]}]},
            {"package":{"ecosystem":"Wolfi","name":"haproxy-3.1","purl":"pkg:apk/wolfi/haproxy-3.1"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.1.7-r0"}]}]}]}"#,
    ];

    /// One package (binary name, source name, version) found in the base
    /// layer of an image with this os-release.
    fn scan(os: &str, (name, source, version): (&str, &str, &str), index: &VulnIndex) -> Vec<Finding> {
        let os = os_release::parse(os).unwrap();
        let ecosystem = distro_ecosystem(&os).map_or(Ecosystem::Deb, |(_, m)| m);
        let image = ImageFacts {
            os: Some(os),
            components: vec![Component {
                package: Package {
                    ecosystem,
                    name: name.into(),
                    version: version.into(),
                    architecture: Some("amd64".into()),
                    source_name: source.into(),
                    source_version: version.into(),
                    license: None,
                },
                layer: "sha256:base".into(),
                path: "var/lib/dpkg/status".into(),
                purl: String::new(),
            }],
            warnings: vec![],
        };
        match_image(&image, index).unwrap()
    }

    /// Expectations read off the records: which release's ecosystem lists
    /// which source package, fixed in which version.
    #[test]
    fn real_ubuntu_and_chainguard_advisories() {
        let index = VulnIndex::new(RECORDS.iter().map(|r| Advisory::parse(r).unwrap()).collect());
        let ubuntu = |v: &str| format!("PRETTY_NAME=\"Ubuntu {v}\"\nID=ubuntu\nVERSION_ID=\"{v}\"\n");
        const WOLFI: &str = "ID=wolfi\nNAME=\"Wolfi\"\nVERSION_ID=\"20230201\"\n";
        const CHAINGUARD: &str = "ID=chainguard\nNAME=\"Chainguard\"\nVERSION_ID=\"20230214\"\n";
        type Want<'a> = Option<(&'a str, &'a str, &'a str)>;
        let cases: Vec<(String, (&str, &str, &str), Want)> = vec![
            (
                ubuntu("22.04"),
                ("php8.1-cli", "php8.1", "8.1.2-1ubuntu2.20"),
                Some(("USN-7400-1", "8.1.2-1ubuntu2.21", "Ubuntu:22.04:LTS")),
            ),
            (ubuntu("22.04"), ("php8.1-cli", "php8.1", "8.1.2-1ubuntu2.21"), None),
            (
                ubuntu("24.04"),
                ("libapache2-mod-php8.3", "php8.3", "8.3.6-0ubuntu0.24.04.3"),
                Some(("USN-7400-1", "8.3.6-0ubuntu0.24.04.4", "Ubuntu:24.04:LTS")),
            ),
            (ubuntu("24.04"), ("php8.3", "php8.3", "8.3.6-0ubuntu0.24.04.4"), None),
            (
                ubuntu("20.04"),
                ("php7.4", "php7.4", "7.4.3-4ubuntu2.28"),
                Some(("USN-7400-1", "7.4.3-4ubuntu2.29", "Ubuntu:20.04:LTS")),
            ),
            // php8.3 is listed for 24.04 only.
            (ubuntu("22.04"), ("php8.3", "php8.3", "8.3.6-0ubuntu0.24.04.3"), None),
            // An interim release: no `:LTS`.
            (
                ubuntu("25.10"),
                ("openjdk-17-crac-jre-headless", "openjdk-17-crac", "17.0.16+8-0ubuntu1"),
                Some(("USN-7900-1", "17.0.17+10-0ubuntu1~25.10", "Ubuntu:25.10")),
            ),
            (
                ubuntu("25.10"),
                (
                    "openjdk-17-crac-jre-headless",
                    "openjdk-17-crac",
                    "17.0.17+10-0ubuntu1~25.10",
                ),
                None,
            ),
            (
                ubuntu("25.04"),
                ("openjdk-17-crac-jre", "openjdk-17-crac", "17.0.16+8-0ubuntu1"),
                None,
            ),
            // Only Ubuntu Pro (ESM) has this fix for 14.04: not matched without a subscription.
            (
                ubuntu("14.04"),
                ("linux-image-generic", "linux", "3.13.0-202.253"),
                None,
            ),
            // Debian's advisories are not Ubuntu's.
            (
                "ID=debian\nVERSION_ID=\"12\"\n".into(),
                ("php8.1", "php8.1", "8.1.2-1ubuntu2.20"),
                None,
            ),
            // Wolfi and Chainguard name origin packages, each in its own ecosystem.
            (
                WOLFI.into(),
                ("haproxy-3.1", "haproxy-3.1", "3.1.6-r2"),
                Some(("CGA-224q-ccj5-2p53", "3.1.7-r0", "Wolfi")),
            ),
            (
                WOLFI.into(),
                ("haproxy-3.1-doc", "haproxy-3.1", "3.1.6-r0"),
                Some(("CGA-224q-ccj5-2p53", "3.1.7-r0", "Wolfi")),
            ),
            (WOLFI.into(), ("haproxy-3.1", "haproxy-3.1", "3.1.7-r0"), None),
            (WOLFI.into(), ("haproxy-2.8", "haproxy-2.8", "2.8.17-r0"), None),
            (
                CHAINGUARD.into(),
                ("haproxy-2.8", "haproxy-2.8", "2.8.17-r0"),
                Some(("CGA-224q-ccj5-2p53", "2.8.18-r0", "Chainguard")),
            ),
            (CHAINGUARD.into(), ("haproxy-3.1", "haproxy-3.1", "3.1.6-r0"), None),
            (
                "ID=alpine\nVERSION_ID=3.20.3\n".into(),
                ("haproxy-3.1", "haproxy-3.1", "3.1.6-r0"),
                None,
            ),
        ];
        for (os, package, want) in cases {
            let found = scan(&os, package, &index);
            let got = found.first().map(|f| {
                (
                    f.ids[0].as_str(),
                    f.fixed_version.as_deref().unwrap_or("-"),
                    f.ecosystem.as_str(),
                )
            });
            assert_eq!(got, want, "{package:?} on {os:?}");
            assert!(found.len() <= 1, "{found:?}");
            if let Some(f) = found.first() {
                assert_eq!(f.package, package.0, "findings name the installed package");
            }
        }
        let f = scan(&ubuntu("22.04"), ("php8.1", "php8.1", "8.1.2-1ubuntu2.1"), &index);
        assert_eq!(
            f[0].related.len(),
            6,
            "a USN's UBUNTU-CVE records are related: {:?}",
            f[0].related
        );
    }
}

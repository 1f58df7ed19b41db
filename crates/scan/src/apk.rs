//! Alpine's `lib/apk/db/installed`: one-letter fields, a blank line between packages.

use crate::{Ecosystem, Package, Parsed};

pub fn parse_installed(text: &str) -> Parsed {
    let mut out = Parsed::default();
    for (i, block) in text.split("\n\n").filter(|b| !b.trim().is_empty()).enumerate() {
        let field = |k: char| {
            block
                .lines()
                .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix(':')))
                .map(|v| v.trim().to_string())
        };
        let (Some(name), Some(version)) = (field('P'), field('V')) else {
            out.warnings
                .push(format!("apk entry {} has no P: or V:; skipped", i + 1));
            continue;
        };
        let origin = field('o').unwrap_or_else(|| name.clone());
        out.packages.push(Package {
            ecosystem: Ecosystem::Apk,
            source_name: origin,
            source_version: version.clone(),
            architecture: field('A'),
            license: field('L'),
            name,
            version,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_db_table() {
        let db = "C:Q1abc=\nP:musl\nV:1.2.4_git20230717-r4\nA:x86_64\nS:383152\nL:MIT\no:musl\nm:Natanael Copa\n\nC:Q1def=\nP:libcrypto3\nV:3.1.4-r5\nA:x86_64\nL:Apache-2.0\no:openssl\n\nP:nameless-version\n\n";
        let p = parse_installed(db);
        let got: Vec<(&str, &str, &str, Option<&str>)> = p
            .packages
            .iter()
            .map(|x| {
                (
                    x.name.as_str(),
                    x.version.as_str(),
                    x.source_name.as_str(),
                    x.license.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("musl", "1.2.4_git20230717-r4", "musl", Some("MIT")),
                ("libcrypto3", "3.1.4-r5", "openssl", Some("Apache-2.0"))
            ]
        );
        assert_eq!(p.warnings.len(), 1);
        assert!(parse_installed("\u{0}P\nV:\n").packages.is_empty());
    }
}

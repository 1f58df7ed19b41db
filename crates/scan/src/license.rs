//! Declared license text → SPDX expression, where that is certain.
//!
//! Valid SPDX expressions pass through. Common non-SPDX names map through
//! a table of unambiguous spellings. Everything else (`BSD`, `GPL` with no
//! version, `Apache Software License`) stays unnormalised: guessing a
//! license for a compliance report is worse than saying NOASSERTION.

/// Names seen in package metadata that mean exactly one SPDX license.
const KNOWN: &[(&str, &str)] = &[
    ("mit license", "MIT"),
    ("the mit license", "MIT"),
    ("apache 2.0", "Apache-2.0"),
    ("apache-2", "Apache-2.0"),
    ("apache 2", "Apache-2.0"),
    ("apache license 2.0", "Apache-2.0"),
    ("apache license, version 2.0", "Apache-2.0"),
    ("apache license version 2.0", "Apache-2.0"),
    ("apache software license 2.0", "Apache-2.0"),
    ("asl 2.0", "Apache-2.0"),
    ("new bsd", "BSD-3-Clause"),
    ("new bsd license", "BSD-3-Clause"),
    ("modified bsd", "BSD-3-Clause"),
    ("3-clause bsd", "BSD-3-Clause"),
    ("bsd 3-clause", "BSD-3-Clause"),
    ("bsd-3", "BSD-3-Clause"),
    ("simplified bsd", "BSD-2-Clause"),
    ("2-clause bsd", "BSD-2-Clause"),
    ("bsd 2-clause", "BSD-2-Clause"),
    ("isc license (iscl)", "ISC"),
    ("isc license", "ISC"),
    ("mozilla public license 2.0 (mpl 2.0)", "MPL-2.0"),
    ("mpl 2.0", "MPL-2.0"),
    ("gplv2", "GPL-2.0-only"),
    ("gplv2+", "GPL-2.0-or-later"),
    ("gplv3", "GPL-3.0-only"),
    ("gplv3+", "GPL-3.0-or-later"),
    ("gnu general public license v2 (gplv2)", "GPL-2.0-only"),
    ("gnu general public license v2 or later (gplv2+)", "GPL-2.0-or-later"),
    ("gnu general public license v3 (gplv3)", "GPL-3.0-only"),
    ("gnu general public license v3 or later (gplv3+)", "GPL-3.0-or-later"),
    ("lgplv2.1", "LGPL-2.1-only"),
    ("lgplv2.1+", "LGPL-2.1-or-later"),
    ("lgplv3", "LGPL-3.0-only"),
    ("lgplv3+", "LGPL-3.0-or-later"),
    ("gnu lesser general public license v3 (lgplv3)", "LGPL-3.0-only"),
    (
        "gnu lesser general public license v3 or later (lgplv3+)",
        "LGPL-3.0-or-later",
    ),
    ("python software foundation license", "PSF-2.0"),
    ("psf", "PSF-2.0"),
    ("the unlicense (unlicense)", "Unlicense"),
    ("zope public license", "ZPL-2.1"),
];

/// A Debian short license name (`GPL-2+`, `Expat`, `BSD-3-clause`,
/// `LGPL-2.1+`) as SPDX, where the mapping is exact.
pub fn debian_to_spdx(name: &str) -> Option<String> {
    let lower = name.trim().to_ascii_lowercase();
    let fixed = match lower.as_str() {
        "expat" | "mit" => Some("MIT"),
        "bsd-2-clause" => Some("BSD-2-Clause"),
        "bsd-3-clause" => Some("BSD-3-Clause"),
        "bsd-4-clause" => Some("BSD-4-Clause"),
        "zlib" => Some("Zlib"),
        "isc" => Some("ISC"),
        "apache-2.0" => Some("Apache-2.0"),
        "cc0-1.0" => Some("CC0-1.0"),
        // Perl's dual license: Debian's `Artistic` is version 1.0 as Perl ships it.
        "artistic" => Some("Artistic-1.0-Perl"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    // (A|L)GPL[-]vN[.M][+]
    let (family, rest) = ["agpl", "lgpl", "gpl"]
        .iter()
        .find_map(|f| lower.strip_prefix(f).map(|r| (*f, r)))?;
    let rest = rest.trim_start_matches('-').trim_start_matches('v');
    let (number, later) = match rest.strip_suffix('+') {
        Some(n) => (n, true),
        None => (rest, false),
    };
    let number = number.strip_suffix(".0").unwrap_or(number);
    let version = match (family, number) {
        ("gpl", "1" | "2" | "3") | ("agpl", "3") | ("lgpl", "2" | "3") => format!("{number}.0"),
        ("lgpl", "2.1") => "2.1".to_string(),
        _ => return None,
    };
    let id = format!(
        "{}GPL-{version}-{}",
        &family[..family.len() - 3].to_ascii_uppercase(),
        if later { "or-later" } else { "only" }
    );
    spdx::license_id(&id).map(|_| id)
}

/// One name or expression → SPDX; `None` when not certain.
fn one(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    if spdx::Expression::parse(raw).is_ok() {
        return Some(raw.to_string());
    }
    let lower = raw.to_ascii_lowercase();
    KNOWN.iter().find(|(k, _)| *k == lower).map(|(_, v)| v.to_string())
}

/// The SPDX expression for a declared license, when every part of it is
/// certain. Parts joined by ` OR ` (as the Python and npm readers join
/// several declarations) are normalised one by one.
pub fn to_spdx(raw: &str) -> Option<String> {
    if let Some(whole) = one(raw) {
        return Some(whole);
    }
    let parts: Option<Vec<String>> = raw.split(" OR ").map(one).collect();
    let parts = parts?;
    let joined = parts.join(" OR ");
    spdx::Expression::parse(&joined).is_ok().then_some(joined)
}

#[cfg(test)]
mod tests {
    use super::to_spdx;

    #[test]
    fn license_table() {
        let cases = [
            ("MIT", Some("MIT")),
            ("Apache-2.0 OR MIT", Some("Apache-2.0 OR MIT")),
            (
                "GPL-2.0-or-later WITH Classpath-exception-2.0",
                Some("GPL-2.0-or-later WITH Classpath-exception-2.0"),
            ),
            ("MIT License", Some("MIT")),
            ("Apache 2.0", Some("Apache-2.0")),
            ("GPLv2+", Some("GPL-2.0-or-later")),
            ("MIT License OR Apache 2.0", Some("MIT OR Apache-2.0")),
            // Ambiguous or not a license name: left for a human.
            ("BSD", None),
            ("GPL", None),
            ("Apache Software License", None),
            ("BSD License OR MIT", None),
            ("Copyright (c) 2010 Someone. All rights reserved.", None),
            ("", None),
        ];
        for (raw, want) in cases {
            assert_eq!(to_spdx(raw).as_deref(), want, "{raw:?}");
        }
    }

    #[test]
    fn debian_names() {
        use super::debian_to_spdx;
        let cases = [
            ("GPL-2+", Some("GPL-2.0-or-later")),
            ("GPL-2", Some("GPL-2.0-only")),
            ("GPL-2.0+", Some("GPL-2.0-or-later")),
            ("GPLv3+", Some("GPL-3.0-or-later")),
            ("LGPL-2.1+", Some("LGPL-2.1-or-later")),
            ("LGPL-3", Some("LGPL-3.0-only")),
            ("AGPL-3+", Some("AGPL-3.0-or-later")),
            ("Expat", Some("MIT")),
            ("BSD-3-clause", Some("BSD-3-Clause")),
            ("Artistic", Some("Artistic-1.0-Perl")),
            ("LGPL", None),
            ("GPL-4", None),
            ("public-domain", None),
        ];
        for (name, want) in cases {
            assert_eq!(debian_to_spdx(name).as_deref(), want, "{name}");
        }
    }
}

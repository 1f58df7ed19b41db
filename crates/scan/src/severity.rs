//! How bad a vulnerability is: the distribution's own rating for its
//! packages, else the advisory's CVSS, else CVSS published under its other
//! ids (GHSA, NVD, CVE 5), else Unknown; always with where it came from.

use std::str::FromStr;

use serde::Serialize;

/// Ordered so that `max()` is the worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Severity {
    Unknown,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Unknown,
    ];

    /// The DESIGN.md bands of a CVSS base score.
    pub fn from_score(score: f64) -> Severity {
        match score {
            s if s >= 9.0 => Severity::Critical,
            s if s >= 7.0 => Severity::High,
            s if s >= 4.0 => Severity::Medium,
            s if s > 0.0 => Severity::Low,
            _ => Severity::Unknown,
        }
    }

    /// An advisory's own word: GitHub's `CRITICAL/HIGH/MODERATE/LOW`, Red
    /// Hat's (and AlmaLinux's) `Critical/Important/Moderate/Low`, and the
    /// plain `medium`.
    pub fn from_rating(word: &str) -> Option<Severity> {
        match word.trim().to_ascii_lowercase().as_str() {
            "critical" => Some(Severity::Critical),
            "high" | "important" => Some(Severity::High),
            "medium" | "moderate" => Some(Severity::Medium),
            "low" | "negligible" => Some(Severity::Low),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Severity::Unknown => "unknown",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Severity, String> {
        Severity::ALL
            .into_iter()
            .find(|v| v.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("{s:?} is not one of critical, high, medium, low, unknown"))
    }
}

/// A CVSS vector someone published for a vulnerability id, and who:
/// `ghsa`, `nvd`, `cve:cna`, `cve:adp`, `nvd:cna` or `osv` (any other
/// advisory database's own vector).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub struct Vector {
    pub origin: String,
    pub vector: String,
}

/// The order in which vectors found through an advisory's other ids are
/// trusted, like Trivy's: GitHub's reviewed advisories, then NVD's own
/// analysis, then the CVE record's CNA, then its ADP enrichment (CISA),
/// then the CNA scores NVD republishes, then any other advisory database.
pub const ORIGINS: [&str; 6] = ["ghsa", "nvd", "cve:cna", "cve:adp", "nvd:cna", "osv"];

fn origin_rank(origin: &str) -> usize {
    ORIGINS.iter().position(|o| *o == origin).unwrap_or(ORIGINS.len())
}

/// A CVSS v3.x or v4.0 base score; `None` for a vector the CVSS crate
/// cannot parse, which is passed over rather than trusted.
pub fn score_of(vector: &str) -> Option<f64> {
    cvss::Cvss::from_str(vector.trim()).ok().map(|c| c.score())
}

/// A finding's severity and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Rating {
    pub severity: Severity,
    /// `debian`, `ubuntu`, `almalinux`…, `advisory` (the matched record's
    /// own), or a vector's origin (`ghsa`, `nvd`, `cve:cna`, `cve:adp`…).
    pub source: Option<String>,
    pub vector: Option<String>,
    pub score: Option<f64>,
}

impl Rating {
    pub const UNKNOWN: Rating = Rating {
        severity: Severity::Unknown,
        source: None,
        vector: None,
        score: None,
    };
}

/// Everything known about how bad one matched vulnerability is.
#[derive(Debug, Default)]
pub struct Evidence<'a> {
    /// The distribution's own rating of the package's exposure (Debian's
    /// urgency, Ubuntu's priority, Red Hat's and AlmaLinux's severity) and
    /// the distribution's name.
    pub distro: Option<(&'a str, Severity)>,
    /// The matched advisory's own `severity` entries.
    pub own: &'a [crate::osv::Severity],
    /// The matched advisory's own severity word.
    pub own_rating: Option<&'a str>,
    /// Vectors published under the advisory's ids (its aliases, upstream
    /// and related ids) in every imported source.
    pub elsewhere: &'a [Vector],
}

/// The severity of a finding, in Trivy's order: the distribution's own
/// rating for its packages; then the advisory's own CVSS (the worst of its
/// vectors, as a gate errs towards caution) or its own word; then vectors
/// found through its other ids, by [`ORIGINS`] (within the first origin
/// that has one, the worst); else Unknown.
pub fn resolve(e: &Evidence<'_>) -> Rating {
    if let Some((distro, severity)) = e.distro {
        if severity != Severity::Unknown {
            return Rating {
                severity,
                source: Some(distro.to_string()),
                vector: None,
                score: None,
            };
        }
    }
    let own = e
        .own
        .iter()
        .filter(|s| matches!(s.kind.as_str(), "CVSS_V3" | "CVSS_V4"))
        .filter_map(|s| score_of(&s.score).map(|score| (score, s.score.trim())))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((score, vector)) = own {
        return Rating {
            severity: Severity::from_score(score),
            source: Some("advisory".into()),
            vector: Some(vector.to_string()),
            score: Some(score),
        };
    }
    if let Some(severity) = e.own_rating.and_then(Severity::from_rating) {
        return Rating {
            severity,
            source: Some("advisory".into()),
            vector: None,
            score: None,
        };
    }
    let best = e
        .elsewhere
        .iter()
        .filter_map(|v| score_of(&v.vector).map(|score| (origin_rank(&v.origin), score, v)))
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
    match best {
        Some((_, score, v)) => Rating {
            severity: Severity::from_score(score),
            source: Some(v.origin.clone()),
            vector: Some(v.vector.trim().to_string()),
            score: Some(score),
        },
        None => Rating::UNKNOWN,
    }
}

/// Debian's urgency words (with the tracker's `*`/`**` uncertainty marks):
/// `unimportant` is Low, as Trivy shows it; `not yet assigned` and
/// `end-of-life` say nothing about severity.
pub fn debian_urgency(word: &str) -> Option<Severity> {
    match word.trim().trim_end_matches('*') {
        "unimportant" | "low" => Some(Severity::Low),
        "medium" => Some(Severity::Medium),
        "high" => Some(Severity::High),
        _ => None,
    }
}

/// The distribution's own label for a finding it does not plan to fix in
/// a security update, kept as the tracker writes it: `unimportant`,
/// `no-dsa` (`postponed` or `ignored` when the tracker says why),
/// `end-of-life`.
pub fn debian_status(note: &crate::osv::DistroNote) -> Option<String> {
    let urgency = note.urgency.as_deref().map(|u| u.trim().trim_end_matches('*'));
    if urgency == Some("unimportant") {
        return Some("unimportant".into());
    }
    if urgency == Some("end-of-life") {
        return Some("end-of-life".into());
    }
    match note.nodsa_reason.as_deref().map(str::trim) {
        Some(r @ ("postponed" | "ignored")) => Some(r.to_string()),
        _ if note.nodsa.is_some() || note.nodsa_reason.is_some() => Some("no-dsa".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores computed by hand from the CVSS v3.1 and v4.0 specifications
    /// for these vectors; ratings as their sources define them.
    #[test]
    fn resolution_table() {
        const CRIT: &str = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"; // 9.8
        const HIGH: &str = "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"; // 7.5
        const LOW: &str = "CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:U/C:L/I:N/A:N"; // 3.3
        const V4: &str = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H"; // 10
        let own = |kind: &str, v: &str| crate::osv::Severity {
            kind: kind.into(),
            score: v.into(),
        };
        let at = |origin: &str, v: &str| Vector {
            origin: origin.into(),
            vector: v.into(),
        };
        struct Case {
            distro: Option<(&'static str, Severity)>,
            own: Vec<crate::osv::Severity>,
            rating: Option<&'static str>,
            elsewhere: Vec<Vector>,
            want: (Severity, Option<&'static str>, Option<&'static str>, Option<f64>),
        }
        let case = |distro, own, rating, elsewhere, want| Case {
            distro,
            own,
            rating,
            elsewhere,
            want,
        };
        use Severity::*;
        let cases = vec![
            // 1. The distribution's own rating wins over any CVSS.
            case(
                Some(("debian", Low)),
                vec![own("CVSS_V3", CRIT)],
                None,
                vec![at("nvd", CRIT)],
                (Low, Some("debian"), None, None),
            ),
            // ... unless it says nothing ("not yet assigned").
            case(
                Some(("debian", Unknown)),
                vec![],
                None,
                vec![at("nvd", HIGH)],
                (High, Some("nvd"), Some(HIGH), Some(7.5)),
            ),
            // 2. The advisory's own vectors: the worst one.
            case(
                None,
                vec![own("CVSS_V3", LOW), own("CVSS_V3", HIGH)],
                None,
                vec![at("ghsa", CRIT)],
                (High, Some("advisory"), Some(HIGH), Some(7.5)),
            ),
            case(
                None,
                vec![own("CVSS_V4", V4)],
                None,
                vec![],
                (Critical, Some("advisory"), Some(V4), Some(10.0)),
            ),
            // A broken own vector falls through to the own word.
            case(
                None,
                vec![own("CVSS_V3", "CVSS:3.1/AV:X")],
                Some("MODERATE"),
                vec![at("nvd", CRIT)],
                (Medium, Some("advisory"), None, None),
            ),
            // Ubuntu's priority word is not a CVSS vector.
            case(
                None,
                vec![own("Ubuntu", "medium")],
                None,
                vec![],
                (Unknown, None, None, None),
            ),
            // 3. Through the aliases: GHSA before NVD before CVE 5's CNA before its ADP.
            case(
                None,
                vec![],
                None,
                vec![at("cve:adp", CRIT), at("nvd", LOW), at("cve:cna", HIGH)],
                (Low, Some("nvd"), Some(LOW), Some(3.3)),
            ),
            case(
                None,
                vec![],
                None,
                vec![at("cve:adp", CRIT), at("cve:cna", HIGH), at("ghsa", LOW)],
                (Low, Some("ghsa"), Some(LOW), Some(3.3)),
            ),
            case(
                None,
                vec![],
                None,
                vec![at("cve:adp", CRIT), at("cve:cna", HIGH)],
                (High, Some("cve:cna"), Some(HIGH), Some(7.5)),
            ),
            case(
                None,
                vec![],
                None,
                vec![at("cve:adp", CRIT)],
                (Critical, Some("cve:adp"), Some(CRIT), Some(9.8)),
            ),
            // Within one origin (two CVEs of one DSA), the worst.
            case(
                None,
                vec![],
                None,
                vec![at("nvd", LOW), at("nvd", CRIT)],
                (Critical, Some("nvd"), Some(CRIT), Some(9.8)),
            ),
            // An unparsable vector elsewhere is passed over.
            case(
                None,
                vec![],
                None,
                vec![at("ghsa", "CVSS:3.1/garbage"), at("cve:adp", HIGH)],
                (High, Some("cve:adp"), Some(HIGH), Some(7.5)),
            ),
            case(None, vec![], None, vec![], (Unknown, None, None, None)),
        ];
        for (i, c) in cases.iter().enumerate() {
            let got = resolve(&Evidence {
                distro: c.distro,
                own: &c.own,
                own_rating: c.rating,
                elsewhere: &c.elsewhere,
            });
            assert_eq!(
                (got.severity, got.source.as_deref(), got.vector.as_deref(), got.score),
                c.want,
                "case {i}"
            );
        }
    }

    #[test]
    fn debian_words() {
        use crate::osv::DistroNote;
        let note = |u: Option<&str>, nodsa: Option<&str>, reason: Option<&str>| DistroNote {
            urgency: u.map(String::from),
            nodsa: nodsa.map(String::from),
            nodsa_reason: reason.map(String::from),
        };
        let cases = [
            (
                note(Some("unimportant"), None, None),
                Some(Severity::Low),
                Some("unimportant"),
            ),
            (note(Some("low**"), None, None), Some(Severity::Low), None),
            (
                note(Some("medium"), Some("Minor issue"), None),
                Some(Severity::Medium),
                Some("no-dsa"),
            ),
            (
                note(Some("high*"), Some(""), Some("postponed")),
                Some(Severity::High),
                Some("postponed"),
            ),
            (
                note(Some("not yet assigned"), None, Some("ignored")),
                None,
                Some("ignored"),
            ),
            (note(Some("end-of-life"), None, None), None, Some("end-of-life")),
            (note(None, None, None), None, None),
        ];
        for (n, severity, status) in cases {
            assert_eq!(n.urgency.as_deref().and_then(debian_urgency), severity, "{n:?}");
            assert_eq!(debian_status(&n).as_deref(), status, "{n:?}");
        }
    }

    #[test]
    fn names_round_trip_and_order() {
        for s in Severity::ALL {
            assert_eq!(s.name().parse::<Severity>(), Ok(s));
        }
        assert!("severe".parse::<Severity>().is_err());
        assert!(Severity::Critical > Severity::High && Severity::Low > Severity::Unknown);
    }
}

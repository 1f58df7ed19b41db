//! How bad a vulnerability is, per DESIGN.md: the CVSS base score when the
//! advisory carries a vector, else the advisory's own rating, else Unknown.

use std::str::FromStr;

use serde::Serialize;

use crate::osv::Advisory;

/// Ordered so that `max()` is the worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
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

/// A severity with the CVSS score it came from, if any.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rated {
    pub severity: Severity,
    pub cvss_score: Option<f64>,
}

/// The worst CVSS v3.x/v4 base score among the advisory's vectors (a gate
/// errs towards caution when sources disagree); vectors the CVSS crate
/// cannot parse are passed over rather than trusted.
pub fn rate(advisory: &Advisory) -> Rated {
    let score = advisory
        .severity
        .iter()
        .filter(|s| matches!(s.kind.as_str(), "CVSS_V3" | "CVSS_V4"))
        .filter_map(|s| cvss::Cvss::from_str(s.score.trim()).ok())
        .map(|c| c.score())
        .max_by(f64::total_cmp);
    if let Some(score) = score {
        return Rated {
            severity: Severity::from_score(score),
            cvss_score: Some(score),
        };
    }
    let own = advisory.rating.as_deref().and_then(Severity::from_rating).or_else(|| {
        // AlmaLinux and Red Hat put the rating in front of the title.
        let summary = advisory.summary.as_deref()?;
        Severity::from_rating(summary.split_once(':')?.0)
    });
    Rated {
        severity: own.unwrap_or(Severity::Unknown),
        cvss_score: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores computed by hand from the CVSS v3.1 and v4.0 specifications
    /// for these vectors; ratings as their sources define them.
    #[test]
    fn severity_table() {
        let advisory = |severity: &str, rating: Option<&str>, summary: Option<&str>| {
            let mut a = Advisory::parse(&format!(r#"{{"id":"X","severity":[{severity}]}}"#)).unwrap();
            a.rating = rating.map(String::from);
            a.summary = summary.map(String::from);
            a
        };
        let v3 = |v: &str| format!(r#"{{"type":"CVSS_V3","score":"{v}"}}"#);
        let v4 = |v: &str| format!(r#"{{"type":"CVSS_V4","score":"{v}"}}"#);
        let cases: Vec<(Advisory, Severity, Option<f64>)> = vec![
            // AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H is the textbook 9.8.
            (
                advisory(&v3("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"), None, None),
                Severity::Critical,
                Some(9.8),
            ),
            // Network, low complexity, no privileges, availability only: 7.5.
            (
                advisory(&v3("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"), None, None),
                Severity::High,
                Some(7.5),
            ),
            // Local, user interaction, low confidentiality: 3.3.
            (
                advisory(&v3("CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:U/C:L/I:N/A:N"), None, None),
                Severity::Low,
                Some(3.3),
            ),
            // Two vectors: the worse one counts.
            (
                advisory(
                    &format!(
                        "{},{}",
                        v3("CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:U/C:L/I:N/A:N"),
                        v3("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H")
                    ),
                    None,
                    None,
                ),
                Severity::High,
                Some(7.5),
            ),
            // CVSS v4: everything high and unauthenticated is 10.
            (
                advisory(
                    &v4("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H"),
                    None,
                    None,
                ),
                Severity::Critical,
                Some(10.0),
            ),
            // A broken vector falls back to the rating.
            (
                advisory(&v3("CVSS:3.1/AV:X"), Some("MODERATE"), None),
                Severity::Medium,
                None,
            ),
            (advisory("", Some("HIGH"), None), Severity::High, None),
            (
                advisory("", None, Some("Important: kernel security update")),
                Severity::High,
                None,
            ),
            (
                advisory("", None, Some("Moderate: curl security update")),
                Severity::Medium,
                None,
            ),
            (
                advisory("", None, Some("xorg-server - security update")),
                Severity::Unknown,
                None,
            ),
            (advisory("", None, None), Severity::Unknown, None),
        ];
        for (a, severity, score) in cases {
            let got = rate(&a);
            assert_eq!((got.severity, got.cvss_score), (severity, score), "{:?}", a.severity);
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

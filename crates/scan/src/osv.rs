//! OSV advisories (https://ossf.github.io/osv-schema/): parsing one record
//! and deciding whether a version falls in its affected ranges.

use std::cmp::Ordering;

use serde::Deserialize;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum OsvError {
    #[error("not an OSV record: {0}")]
    Malformed(String),
    #[error("OSV record has no id")]
    NoId,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Advisory {
    pub id: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Debian's and others' upstream ids (CVEs) for a distribution advisory.
    #[serde(default)]
    pub upstream: Vec<String>,
    /// Ids of other vulnerabilities this one relates to (AlmaLinux lists
    /// the CVEs an erratum fixes here).
    #[serde(default)]
    pub related: Vec<String>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub withdrawn: Option<String>,
    #[serde(default)]
    pub severity: Vec<Severity>,
    #[serde(default)]
    pub affected: Vec<Affected>,
    /// The advisory's own severity word (`database_specific.severity`, as
    /// GitHub and others write it), for records without a CVSS vector.
    #[serde(default, rename = "database_specific", deserialize_with = "own_rating")]
    pub rating: Option<String>,
    /// Where people read the advisory: its first `ADVISORY` reference,
    /// else its first `WEB` one. Only that URL is kept, not the list, so
    /// a loaded database stays small.
    #[serde(default, rename = "references", deserialize_with = "advisory_url")]
    pub reference: Option<String>,
}

fn advisory_url<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    let refs = value.as_ref().and_then(|v| v.as_array());
    let url_of = |kind: &str| {
        refs.into_iter()
            .flatten()
            .filter(|r| r.get("type").and_then(|t| t.as_str()) == Some(kind))
            .find_map(|r| r.get("url").and_then(|u| u.as_str()))
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
            .map(String::from)
    };
    Ok(url_of("ADVISORY").or_else(|| url_of("WEB")))
}

fn own_rating<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(value
        .as_ref()
        .and_then(|v| v.get("severity"))
        .and_then(|s| s.as_str())
        .map(String::from))
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Severity {
    #[serde(rename = "type")]
    pub kind: String,
    pub score: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Affected {
    #[serde(default)]
    pub package: Option<PackageRef>,
    #[serde(default)]
    pub ranges: Vec<Range>,
    #[serde(default)]
    pub versions: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct PackageRef {
    pub ecosystem: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Range {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Introduced(String),
    Fixed(String),
    LastAffected(String),
    Limit(String),
}

impl Advisory {
    pub fn parse(json: &str) -> Result<Advisory, OsvError> {
        let a: Advisory = serde_json::from_str(json).map_err(|e| OsvError::Malformed(e.to_string()))?;
        if a.id.is_empty() {
            return Err(OsvError::NoId);
        }
        Ok(a)
    }

    /// Every id this vulnerability is known by, its own first. `upstream`
    /// is not among them: a Debian DSA bundles several CVEs, which are
    /// related to it, not the same vulnerability.
    pub fn ids(&self) -> Vec<&str> {
        let mut ids = vec![self.id.as_str()];
        for alias in &self.aliases {
            if !ids.contains(&alias.as_str()) {
                ids.push(alias);
            }
        }
        ids
    }
}

impl Affected {
    /// Whether `version` is affected, under the ecosystem's ordering `cmp`.
    /// `GIT` ranges name commits, which a package version cannot be placed
    /// among, so they are ignored here.
    pub fn includes(&self, version: &str, cmp: fn(&str, &str) -> Ordering) -> bool {
        if self.versions.iter().any(|v| v == version) {
            return true;
        }
        self.ranges
            .iter()
            .filter(|r| r.kind != "GIT")
            .any(|r| in_range(&r.events, version, cmp))
    }

    /// The lowest `fixed` version above `version`, to tell users what to upgrade to.
    pub fn fixed_after(&self, version: &str, cmp: fn(&str, &str) -> Ordering) -> Option<&str> {
        self.ranges
            .iter()
            .flat_map(|r| &r.events)
            .filter_map(|e| match e {
                Event::Fixed(f) if cmp(f, version) == Ordering::Greater => Some(f.as_str()),
                _ => None,
            })
            .min_by(|a, b| cmp(a, b))
    }
}

/// The OSV evaluation: walk the events in version order; `introduced` opens
/// an affected interval, `fixed` closes it at that version, `last_affected`
/// just after it; `limit` caps the whole range.
fn in_range(events: &[Event], version: &str, cmp: fn(&str, &str) -> Ordering) -> bool {
    let key = |e: &Event| match e {
        Event::Introduced(v) | Event::Fixed(v) | Event::LastAffected(v) | Event::Limit(v) => v.clone(),
    };
    for e in events {
        if let Event::Limit(l) = e {
            if l != "*" && cmp(version, l) != Ordering::Less {
                return false;
            }
        }
    }
    let mut sorted: Vec<&Event> = events.iter().filter(|e| !matches!(e, Event::Limit(_))).collect();
    sorted.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        match (ka.as_str(), kb.as_str()) {
            ("0", "0") => Ordering::Equal,
            ("0", _) => Ordering::Less,
            (_, "0") => Ordering::Greater,
            _ => cmp(&ka, &kb),
        }
    });
    let mut affected = false;
    for e in sorted {
        match e {
            Event::Introduced(v) if v == "0" || cmp(version, v) != Ordering::Less => affected = true,
            Event::Fixed(v) if cmp(version, v) != Ordering::Less => affected = false,
            Event::LastAffected(v) if cmp(version, v) == Ordering::Greater => affected = false,
            _ => {}
        }
    }
    affected
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::dpkg_cmp;

    fn ev(list: &[(&str, &str)]) -> Affected {
        let events = list
            .iter()
            .map(|(k, v)| match *k {
                "introduced" => Event::Introduced(v.to_string()),
                "fixed" => Event::Fixed(v.to_string()),
                "last_affected" => Event::LastAffected(v.to_string()),
                _ => Event::Limit(v.to_string()),
            })
            .collect();
        Affected {
            package: None,
            ranges: vec![Range {
                kind: "ECOSYSTEM".into(),
                events,
            }],
            versions: vec![],
        }
    }

    #[test]
    fn range_evaluation_table() {
        let cases: &[(&[(&str, &str)], &str, bool)] = &[
            (&[("introduced", "0"), ("fixed", "1.2-1")], "1.1-1", true),
            (&[("introduced", "0"), ("fixed", "1.2-1")], "1.2-1", false),
            (&[("introduced", "0"), ("fixed", "1.2-1")], "1.2-1~bpo1", true),
            (&[("introduced", "1.0"), ("fixed", "1.2")], "0.9", false),
            (&[("introduced", "1.0"), ("fixed", "1.2")], "1.0", true),
            (&[("introduced", "1.0"), ("last_affected", "1.2")], "1.2", true),
            (&[("introduced", "1.0"), ("last_affected", "1.2")], "1.2.1", false),
            // Two intervals in one range, events deliberately out of order.
            (
                &[
                    ("fixed", "1.5"),
                    ("introduced", "2.0"),
                    ("introduced", "1.0"),
                    ("fixed", "2.3"),
                ],
                "1.7",
                false,
            ),
            (
                &[
                    ("fixed", "1.5"),
                    ("introduced", "2.0"),
                    ("introduced", "1.0"),
                    ("fixed", "2.3"),
                ],
                "2.1",
                true,
            ),
            (&[("introduced", "0")], "99:1.0", true),
            (&[("introduced", "0"), ("limit", "2.0")], "2.5", false),
            (&[("introduced", "0"), ("limit", "2.0")], "1.5", true),
            (&[], "1.0", false),
        ];
        for (events, version, want) in cases {
            assert_eq!(ev(events).includes(version, dpkg_cmp), *want, "{events:?} @ {version}");
        }
        let mut exact = ev(&[]);
        exact.versions = vec!["3.1".into()];
        assert!(exact.includes("3.1", dpkg_cmp) && !exact.includes("3.2", dpkg_cmp));
    }

    #[test]
    fn every_sample_record_parses_and_bad_ones_say_why() {
        let sample = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/vulndb/sample.osv.jsonl"
        ))
        .unwrap();
        let parsed: Vec<Advisory> = sample.lines().map(|l| Advisory::parse(l).unwrap()).collect();
        assert_eq!(parsed.len(), 30);
        let dsa = parsed.iter().find(|a| a.id == "DSA-5380-1").unwrap();
        assert_eq!(dsa.ids(), ["DSA-5380-1"]);
        assert_eq!(dsa.upstream, ["CVE-2023-1393"]);
        let ghsa = Advisory::parse(r#"{"id":"G","database_specific":{"severity":"HIGH"}}"#).unwrap();
        assert_eq!(ghsa.rating.as_deref(), Some("HIGH"));
        for (bad, why) in [
            ("{", "not an OSV record"),
            ("[]", "not an OSV record"),
            (r#"{"id":""}"#, "no id"),
            (
                r#"{"id":"X","affected":[{"ranges":[{"type":"ECOSYSTEM","events":[{"bogus":"1"}]}]}]}"#,
                "not an OSV record",
            ),
        ] {
            let err = Advisory::parse(bad).unwrap_err();
            assert!(err.to_string().contains(why), "{bad}: {err}");
        }
    }
}

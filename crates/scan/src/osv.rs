//! OSV advisories (https://ossf.github.io/osv-schema/): parsing one record
//! and deciding whether a version falls in its affected ranges.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum OsvError {
    #[error("not an OSV record: {0}")]
    Malformed(String),
    #[error("OSV record has no id")]
    NoId,
    #[error("OSV record {id} has {count} {what}; at most {max} are read")]
    TooLarge {
        id: String,
        what: &'static str,
        count: usize,
        max: usize,
    },
}

/// Bounds on one record, far above any real one (the largest seen: 849
/// upstream CVEs in a kernel DLA, 516 affected packages in an AlmaLinux
/// erratum, 16 aliases), so that a hostile record cannot make indexing
/// it cost more than a few thousand rows.
const MAX_IDS: usize = 1024;
const MAX_LINKED: usize = 8192;
const MAX_SEVERITY: usize = 64;
const MAX_AFFECTED: usize = 16384;

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
    /// What `database_specific` says that matters here.
    #[serde(default, rename = "database_specific", deserialize_with = "database_specific")]
    pub specific: DatabaseSpecific,
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

/// The parts of an advisory's free-form `database_specific` that matter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DatabaseSpecific {
    /// The advisory's own severity word (`severity`, as GitHub and others
    /// write it), for records without a CVSS vector.
    pub rating: Option<String>,
    /// Who published each entry of `severity`, in the same order, for
    /// records converted from CVE 5 or NVD (`cve:cna`, `cve:adp`, `nvd`).
    pub severity_origins: Vec<String>,
}

/// Lenient: `database_specific` has no schema, so anything unexpected in
/// it is ignored rather than failing the record.
fn database_specific<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DatabaseSpecific, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    let Some(v) = value else {
        return Ok(DatabaseSpecific::default());
    };
    let strings = |key: &str| -> Vec<String> {
        v.get(key)
            .and_then(|o| o.as_array())
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(String::from))
            .collect()
    };
    Ok(DatabaseSpecific {
        rating: v.get("severity").and_then(|s| s.as_str()).map(String::from),
        severity_origins: strings("severity_origins"),
    })
}

/// A distribution's own word on one package's exposure (`affected[].
/// ecosystem_specific` of Debian's per-CVE records: the tracker's urgency
/// and whether a fix is planned).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistroNote {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodsa: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodsa_reason: Option<String>,
}

impl DistroNote {
    pub fn is_empty(&self) -> bool {
        self.urgency.is_none() && self.nodsa.is_none() && self.nodsa_reason.is_none()
    }
}

fn distro_note<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<DistroNote>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    let text = |key: &str| {
        value
            .as_ref()
            .and_then(|v| v.get(key))
            .and_then(|s| s.as_str())
            .map(String::from)
    };
    let note = DistroNote {
        urgency: text("urgency"),
        nodsa: text("nodsa"),
        nodsa_reason: text("nodsa_reason"),
    };
    Ok((!note.is_empty()).then_some(note))
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Severity {
    #[serde(rename = "type")]
    pub kind: String,
    pub score: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Affected {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<PackageRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<Range>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<String>,
    #[serde(
        default,
        rename = "ecosystem_specific",
        deserialize_with = "distro_note",
        skip_serializing_if = "Option::is_none"
    )]
    pub note: Option<DistroNote>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct PackageRef {
    pub ecosystem: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Range {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
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
        let noted = a.affected.iter().filter(|x| x.note.is_some()).count();
        let bounds = [
            ("aliases", a.aliases.len(), MAX_IDS),
            (
                "upstream and related ids",
                a.upstream.len() + a.related.len(),
                MAX_LINKED,
            ),
            ("severity entries", a.severity.len(), MAX_SEVERITY),
            ("affected entries", a.affected.len(), MAX_AFFECTED),
            // Each note is indexed under every id of the record.
            ("notes × ids", noted * (1 + a.aliases.len()), MAX_AFFECTED),
        ];
        for (what, count, max) in bounds {
            if count > max {
                return Err(OsvError::TooLarge {
                    id: a.id,
                    what,
                    count,
                    max,
                });
            }
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
            note: None,
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
        assert_eq!(ghsa.specific.rating.as_deref(), Some("HIGH"));
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

    /// Bounds a hostile record meets, each named in the error; records at
    /// the bound still parse.
    #[test]
    fn oversized_records_are_refused_with_the_bound() {
        let list = |n: usize| (0..n).map(|i| format!("\"CVE-{i}\"")).collect::<Vec<_>>().join(",");
        let noted = |n: usize| {
            (0..n)
                .map(|i| format!(r#"{{"package":{{"ecosystem":"Debian:12","name":"p{i}"}},"ecosystem_specific":{{"urgency":"low"}}}}"#))
                .collect::<Vec<_>>()
                .join(",")
        };
        let cases = [
            (format!(r#"{{"id":"X","aliases":[{}]}}"#, list(MAX_IDS)), None),
            (
                format!(r#"{{"id":"X","aliases":[{}]}}"#, list(MAX_IDS + 1)),
                Some("1025 aliases"),
            ),
            (
                format!(r#"{{"id":"X","upstream":[{}],"related":[{}]}}"#, list(8000), list(193)),
                Some("8193 upstream and related ids"),
            ),
            (format!(r#"{{"id":"X","affected":[{}]}}"#, noted(100)), None),
            (
                format!(r#"{{"id":"X","aliases":[{}],"affected":[{}]}}"#, list(200), noted(100)),
                Some("notes × ids"),
            ),
        ];
        for (record, want) in cases {
            match (Advisory::parse(&record), want) {
                (Ok(_), None) => {}
                (Err(e), Some(why)) => assert!(e.to_string().contains(why), "{e}"),
                (got, want) => panic!("{want:?}: {:?}", got.map(|a| a.id)),
            }
        }
    }
}

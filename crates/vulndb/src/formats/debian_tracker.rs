//! Debian's security tracker JSON (security-tracker.debian.org/tracker/data/json):
//! `{source package: {CVE id: {description, releases: {codename: {status,
//! fixed_version, urgency, nodsa, nodsa_reason, …}}}}}`, one document of
//! tens of megabytes. It is read one issue at a time and regrouped by CVE
//! into OSV records named as osv.dev names them (`DEBIAN-CVE-…`), with one
//! `affected` entry per source package and release.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::Read;
use std::rc::Rc;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{stream_document, Allowance, Format, Streamed};
use crate::input::Emit;

/// Debian codenames and the OSV ecosystem version osv.dev gives them;
/// sid and experimental are not releases an image is built from.
const RELEASES: [(&str, &str); 13] = [
    ("woody", "3.0"),
    ("sarge", "3.1"),
    ("etch", "4"),
    ("lenny", "5"),
    ("squeeze", "6"),
    ("wheezy", "7"),
    ("jessie", "8"),
    ("stretch", "9"),
    ("buster", "10"),
    ("bullseye", "11"),
    ("bookworm", "12"),
    ("trixie", "13"),
    ("forky", "14"),
];

#[derive(Deserialize)]
struct TrackerIssue {
    #[serde(default)]
    description: Option<String>,
    /// An object by codename; the tracker writes `[]` when there is none.
    #[serde(default)]
    releases: Value,
}

#[derive(Deserialize)]
struct TrackerRelease {
    status: String,
    #[serde(default)]
    fixed_version: Option<String>,
    #[serde(default)]
    urgency: Option<String>,
    #[serde(default)]
    nodsa: Option<String>,
    #[serde(default)]
    nodsa_reason: Option<String>,
}

/// One (source package, release) a CVE affects, kept small until the end
/// of the document, when all packages of a CVE are known. The tracker
/// repeats a few words (urgencies, statuses, no-dsa notes) hundreds of
/// thousands of times; they are kept once each.
struct Affected {
    package: Rc<str>,
    release: usize,
    /// `None` while Debian has no fix (status `open`).
    fixed: Option<Box<str>>,
    status: Rc<str>,
    urgency: Option<Rc<str>>,
    nodsa: Option<Rc<str>>,
    nodsa_reason: Option<Rc<str>>,
}

#[derive(Default)]
struct Issue {
    description: Option<String>,
    affected: Vec<Affected>,
}

#[derive(Default)]
struct Issues {
    by_cve: BTreeMap<String, Issue>,
    words: HashSet<Rc<str>>,
}

impl Issues {
    fn add(&mut self, package: &Rc<str>, id: &str, issue: Value) -> Result<(), String> {
        let issue: TrackerIssue = serde_json::from_value(issue).map_err(|e| e.to_string())?;
        let releases = match issue.releases {
            Value::Object(releases) => releases,
            Value::Array(list) if list.is_empty() => Map::new(),
            Value::Null => Map::new(),
            other => return Err(format!("releases is {other}, not an object")),
        };
        let mut word = |text: String| -> Rc<str> {
            if let Some(known) = self.words.get(text.as_str()) {
                return known.clone();
            }
            let new: Rc<str> = text.into();
            self.words.insert(new.clone());
            new
        };
        let mut affected = Vec::new();
        for (codename, release) in releases {
            let Some(index) = RELEASES.iter().position(|(name, _)| *name == codename) else {
                continue;
            };
            let release: TrackerRelease =
                serde_json::from_value(release).map_err(|e| format!("releases.{codename}: {e}"))?;
            let fixed = match release.status.as_str() {
                "open" => None,
                // A fix at version 0: this release never had the flaw.
                "resolved" => match release.fixed_version.as_deref() {
                    None | Some("" | "0") => continue,
                    Some(version) => Some(version.into()),
                },
                _ => continue, // undetermined: Debian has not decided
            };
            affected.push(Affected {
                package: package.clone(),
                release: index,
                fixed,
                status: word(release.status),
                urgency: release.urgency.map(&mut word),
                nodsa: release.nodsa.map(&mut word),
                nodsa_reason: release.nodsa_reason.map(&mut word),
            });
        }
        // Each package's entry repeats the description, so a CVE no
        // release is affected by is not kept at all.
        if affected.is_empty() {
            return Ok(());
        }
        let entry = self.by_cve.entry(id.to_string()).or_default();
        if entry.description.is_none() {
            entry.description = issue.description.filter(|d| !d.is_empty());
        }
        entry.affected.extend(affected);
        Ok(())
    }

    /// The OSV records, by CVE.
    fn into_records(self) -> impl Iterator<Item = (String, String)> {
        self.by_cve.into_iter().map(|(cve, mut issue)| {
            issue
                .affected
                .sort_by(|a, b| (&a.package, a.release).cmp(&(&b.package, b.release)));
            let affected: Vec<Value> = issue.affected.into_iter().map(affected_entry).collect();
            let mut record = Map::new();
            record.insert("id".into(), format!("DEBIAN-{cve}").into());
            record.insert("upstream".into(), json!([cve.as_str()]));
            if let Some(description) = issue.description {
                record.insert("summary".into(), description.clone().into());
                record.insert("details".into(), description.into());
            }
            record.insert("affected".into(), affected.into());
            record.insert(
                "references".into(),
                json!([{"type": "ADVISORY", "url": format!("https://security-tracker.debian.org/tracker/{cve}")}]),
            );
            (cve, Value::Object(record).to_string())
        })
    }
}

fn affected_entry(a: Affected) -> Value {
    let mut events = vec![json!({"introduced": "0"})];
    if let Some(fixed) = a.fixed {
        events.push(json!({"fixed": &*fixed}));
    }
    let mut specific = Map::new();
    if let Some(urgency) = a.urgency {
        specific.insert("urgency".into(), Value::from(&*urgency));
    }
    specific.insert("status".into(), Value::from(&*a.status));
    if let Some(nodsa) = a.nodsa {
        specific.insert("nodsa".into(), Value::from(&*nodsa));
    }
    if let Some(reason) = a.nodsa_reason {
        specific.insert("nodsa_reason".into(), Value::from(&*reason));
    }
    json!({
        "package": {"ecosystem": format!("Debian:{}", RELEASES[a.release].1), "name": &*a.package},
        "ranges": [{"type": "ECOSYSTEM", "events": events}],
        "ecosystem_specific": specific,
    })
}

/// Reads one tracker document from `reader`; a bad issue is rejected, the
/// others kept. The records are handed to `emit` once the whole document
/// has been read, as a CVE's packages are spread over it.
pub(crate) fn stream(reader: impl Read, at: (&str, &Allowance), emit: &mut Emit<'_, '_>) -> Result<(), String> {
    let issues = stream_document(reader, Format::DebianTracker, Issues::default(), at, emit)?;
    for (cve, record) in issues.into_records() {
        emit.record(Format::DebianTracker, format!("{}[{cve}]", at.0), &record);
    }
    Ok(())
}

type Tracker<'p, 'e, 's, 'a> = Streamed<'p, 'e, 's, 'a, Issues>;

impl<'de> Visitor<'de> for &mut Tracker<'_, '_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the Debian security tracker's JSON, an object of source packages")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        loop {
            self.allowance.reset();
            let Some(package) = map.next_key::<String>()? else {
                break;
            };
            let package: Rc<str> = package.into();
            map.next_value_seed(Package {
                tracker: &mut *self,
                name: package,
            })?;
        }
        Ok(())
    }
}

struct Package<'x, 'p, 'e, 's, 'a> {
    tracker: &'x mut Tracker<'p, 'e, 's, 'a>,
    name: Rc<str>,
}

impl<'de> DeserializeSeed<'de> for Package<'_, '_, '_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Package<'_, '_, '_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "the issues of source package {:?}, an object", &*self.name)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let tracker = self.tracker;
        loop {
            tracker.allowance.reset();
            let Some(id) = map.next_key::<String>()? else { break };
            let issue: Value = map.next_value()?;
            // TEMP- ids name issues that have no CVE yet; nothing else can refer to them.
            if !id.starts_with("CVE-") {
                continue;
            }
            if let Err(why) = tracker.state.add(&self.name, &id, issue) {
                let location = format!("{}[{}][{id}]", tracker.location, &*self.name);
                tracker.emit.reject(location, why);
            }
        }
        Ok(())
    }
}

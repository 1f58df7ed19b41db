//! NVD CVE API 2.0 JSON: API pages and the `nvdcve-2.0-*.json` feed files,
//! which run to hundreds of megabytes, so the `vulnerabilities` array is
//! read one entry at a time. Each entry becomes an OSV record with no
//! `affected`, carrying NVD's CVSS vectors for looking severities up by CVE id.

use std::fmt;
use std::io::Read;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::{stream_document, utc, Allowance, Format, Severities, Streamed};
use crate::input::Emit;

/// NVD's own analyses are published under this source.
const NVD_SOURCE: &str = "nvd@nist.gov";

/// Metric lists in the order their vectors are listed (v2 separately).
const METRICS: [(&str, &str); 3] = [
    ("cvssMetricV31", "CVSS_V3"),
    ("cvssMetricV30", "CVSS_V3"),
    ("cvssMetricV40", "CVSS_V4"),
];

/// One `cve` object as OSV. NVD's own (Primary) vectors come first, with
/// origin `nvd`; those NVD republishes from the CNA or others follow, with
/// origin `nvd:cna`. CVSS v2 only when there is nothing newer.
pub(crate) fn to_osv(cve: &Map<String, Value>) -> Result<String, String> {
    let id = cve
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or("an NVD entry without cve.id")?;
    let text = |key: &str| cve.get(key).and_then(Value::as_str);
    let metrics = cve.get("metrics");
    let entries = |name: &str| {
        metrics
            .and_then(|m| m.get(name))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| {
                let vector = m.get("cvssData")?.get("vectorString")?.as_str()?;
                let own = m.get("source").and_then(Value::as_str) == Some(NVD_SOURCE);
                let primary = m.get("type").and_then(Value::as_str) == Some("Primary");
                Some((vector, own, primary))
            })
            .collect::<Vec<_>>()
    };
    let mut found: Vec<(&'static str, &str, bool, bool)> = METRICS
        .iter()
        .flat_map(|(name, kind)| {
            entries(name)
                .into_iter()
                .map(|(v, own, primary)| (*kind, v, own, primary))
        })
        .collect();
    if found.is_empty() {
        found = entries("cvssMetricV2")
            .into_iter()
            .map(|(v, own, primary)| ("CVSS_V2", v, own, primary))
            .collect();
    }
    // Stable: NVD's own first, Primary before Secondary, else as listed.
    found.sort_by_key(|(_, _, own, primary)| (!own, !primary));
    let mut severities = Severities::default();
    for (kind, vector, own, _) in found {
        severities.push(kind, vector, if own { "nvd" } else { "nvd:cna" });
    }

    let mut osv = Map::new();
    osv.insert("id".into(), id.into());
    if let Some(modified) = text("lastModified").or(text("published")) {
        osv.insert("modified".into(), utc(modified).into());
    }
    if let Some(published) = text("published") {
        osv.insert("published".into(), utc(published).into());
    }
    if text("vulnStatus") == Some("Rejected") {
        let when = text("lastModified")
            .or(text("published"))
            .ok_or_else(|| format!("{id} is Rejected but carries no date"))?;
        osv.insert("withdrawn".into(), utc(when).into());
    }
    severities.write_into(&mut osv);
    Ok(Value::Object(osv).to_string())
}

/// Reads one NVD document from `reader`, handing each entry to `emit` as
/// it is read; only one entry is in memory at a time.
pub(crate) fn stream(reader: impl Read, at: (&str, &Allowance), emit: &mut Emit<'_, '_>) -> Result<(), String> {
    // The state is how many entries were read.
    stream_document(reader, Format::Nvd, 0, at, emit).map(drop)
}

type Page<'p, 'e, 's, 'a> = Streamed<'p, 'e, 's, 'a, usize>;

impl<'de> Visitor<'de> for &mut Page<'_, '_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an NVD CVE API 2.0 document")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "vulnerabilities" {
                map.next_value_seed(Entries(&mut *self))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct Entries<'x, 'p, 'e, 's, 'a>(&'x mut Page<'p, 'e, 's, 'a>);

impl<'de> DeserializeSeed<'de> for Entries<'_, '_, '_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Entries<'_, '_, '_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of NVD entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let page = self.0;
        loop {
            page.allowance.reset();
            let Some(entry) = seq.next_element::<Value>()? else {
                break;
            };
            let location = format!("{}[{}]", page.location, page.state);
            page.state += 1;
            match entry.get("cve").and_then(Value::as_object) {
                Some(cve) => match to_osv(cve) {
                    Ok(osv) => page.emit.record(Format::Nvd, location, &osv),
                    Err(why) => page.emit.reject(location, why),
                },
                None => page.emit.reject(location, "an NVD entry without a cve object".into()),
            }
        }
        Ok(())
    }
}

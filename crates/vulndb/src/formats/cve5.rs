//! CVE JSON 5 records (the CVE Program's cvelistV5, CISA's vulnrichment):
//! kept for their CVSS vectors, the CNA's first, then each ADP container's,
//! as an OSV record with no `affected`, for looking severities up by CVE id.

use serde_json::{Map, Value};

use super::{utc, Severities};

/// The CVSS objects a `metrics` entry may hold, in the order they are taken.
const CVSS: [(&str, &str); 4] = [
    ("cvssV3_1", "CVSS_V3"),
    ("cvssV3_0", "CVSS_V3"),
    ("cvssV4_0", "CVSS_V4"),
    ("cvssV2_0", "CVSS_V2"),
];

pub(crate) fn to_osv(record: &Map<String, Value>) -> Result<String, String> {
    let meta = record
        .get("cveMetadata")
        .and_then(Value::as_object)
        .ok_or("a CVE record without cveMetadata")?;
    let id = meta
        .get("cveId")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or("a CVE record without cveMetadata.cveId")?;
    let date = |key: &str| meta.get(key).and_then(Value::as_str).map(utc);

    let containers = record.get("containers");
    let mut found: Vec<(&'static str, &str, &'static str)> = Vec::new();
    let cna = containers.and_then(|c| c.get("cna"));
    let adps = containers
        .and_then(|c| c.get("adp"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for (container, origin) in cna
        .into_iter()
        .map(|c| (c, "cve:cna"))
        .chain(adps.map(|a| (a, "cve:adp")))
    {
        let metrics = container.get("metrics").and_then(Value::as_array).into_iter().flatten();
        for metric in metrics {
            for (key, kind) in CVSS {
                if let Some(vector) = metric
                    .get(key)
                    .and_then(|m| m.get("vectorString"))
                    .and_then(Value::as_str)
                {
                    found.push((kind, vector, origin));
                }
            }
        }
    }
    // CVSS v2 only where there is nothing newer, as for NVD.
    let only_v2 = found.iter().all(|(kind, ..)| *kind == "CVSS_V2");
    let mut severities = Severities::default();
    for (kind, vector, origin) in found {
        if only_v2 || kind != "CVSS_V2" {
            severities.push(kind, vector, origin);
        }
    }

    let mut osv = Map::new();
    osv.insert("id".into(), id.into());
    if let Some(modified) = date("dateUpdated")
        .or_else(|| date("datePublished"))
        .or_else(|| date("dateReserved"))
    {
        osv.insert("modified".into(), modified.into());
    }
    if let Some(published) = date("datePublished") {
        osv.insert("published".into(), published.into());
    }
    if meta.get("state").and_then(Value::as_str) == Some("REJECTED") {
        let when = ["dateRejected", "dateUpdated", "datePublished", "dateReserved"]
            .into_iter()
            .find_map(date)
            .ok_or_else(|| format!("{id} is REJECTED but carries no date"))?;
        osv.insert("withdrawn".into(), when.into());
    }
    severities.write_into(&mut osv);
    Ok(Value::Object(osv).to_string())
}

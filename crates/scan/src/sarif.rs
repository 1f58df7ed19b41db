//! Findings as SARIF 2.1.0, the format code-scanning dashboards (GitHub,
//! GitLab, Azure DevOps) read: one rule per vulnerability, one result per
//! affected component, with GitHub's `security-severity` score so the
//! dashboard ranks them as the registry did.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::matching::Finding;
use crate::sbom::Subject;
use crate::severity::Severity;

const SCHEMA: &str = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

/// SARIF's levels for a severity: what blocks (error), what warns, the rest.
fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Unknown => "note",
    }
}

/// GitHub reads `security-severity` as a CVSS-like number; without a
/// score, the middle of the severity's band.
fn security_severity(f: &Finding) -> Option<String> {
    let score = f.cvss_score.or(match f.severity {
        Severity::Critical => Some(9.5),
        Severity::High => Some(8.0),
        Severity::Medium => Some(5.5),
        Severity::Low => Some(2.0),
        Severity::Unknown => None,
    })?;
    Some(format!("{score:.1}"))
}

pub fn sarif(subject: &Subject, findings: &[Finding]) -> Value {
    let mut rules: BTreeMap<&str, (usize, &Finding)> = BTreeMap::new();
    for f in findings {
        let n = rules.len();
        let entry = rules.entry(f.ids[0].as_str()).or_insert((n, f));
        if f.severity > entry.1.severity {
            entry.1 = f;
        }
    }
    // Rule indexes follow first appearance, so results can name them.
    let mut ordered: Vec<(&str, usize, &Finding)> = rules.iter().map(|(id, (i, f))| (*id, *i, *f)).collect();
    ordered.sort_by_key(|r| r.1);
    let rule_docs: Vec<Value> = ordered
        .iter()
        .map(|(id, _, f)| {
            let mut properties = json!({
                "tags": ["vulnerability", "security", f.severity.name()],
                "precision": "very-high",
                "severity": f.severity.name(),
            });
            if let Some(s) = security_severity(f) {
                properties["security-severity"] = json!(s);
            }
            if let Some(src) = &f.severity_source {
                properties["severity_source"] = json!(src);
            }
            if let Some(v) = &f.cvss_vector {
                properties["cvss_vector"] = json!(v);
            }
            let text = f.summary.clone().unwrap_or_else(|| format!("{id} in {}", f.package));
            let mut rule = json!({
                "id": id,
                "name": "OsPackageVulnerability",
                "shortDescription": {"text": text},
                "fullDescription": {"text": text},
                "defaultConfiguration": {"level": level(f.severity)},
                "properties": properties,
            });
            if let Some(url) = &f.reference {
                rule["helpUri"] = json!(url);
            }
            rule
        })
        .collect();
    let index: BTreeMap<&str, usize> = ordered.iter().enumerate().map(|(k, (id, _, _))| (*id, k)).collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let fix = f
                .fixed_version
                .as_deref()
                .map_or("no fixed version".to_string(), |v| format!("fixed in {v}"));
            let mut properties = json!({
                "package": f.package,
                "installed_version": f.version,
                "purl": f.purl,
                "layer": f.layer,
                "severity": f.severity.name(),
            });
            for (key, value) in [
                ("severity_source", &f.severity_source),
                ("cvss_vector", &f.cvss_vector),
                ("distro_status", &f.distro_status),
                ("fixed_version", &f.fixed_version),
            ] {
                if let Some(v) = value {
                    properties[key] = json!(v);
                }
            }
            json!({
                "ruleId": f.ids[0],
                "ruleIndex": index[f.ids[0].as_str()],
                "level": level(f.severity),
                "message": {"text": format!(
                    "{} {} in {} {} ({fix}; severity {}{})",
                    f.ids[0],
                    if f.ids.len() > 1 { format!("({})", f.ids[1..].join(", ")) } else { String::new() },
                    f.package,
                    f.version,
                    f.severity.name(),
                    f.severity_source.as_deref().map(|s| format!(" from {s}")).unwrap_or_default(),
                )},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": f.path, "uriBaseId": "ROOTPATH"},
                        "region": {"startLine": 1, "startColumn": 1, "endLine": 1, "endColumn": 1},
                    },
                    "message": {"text": format!("{}@{}", f.package, f.version)},
                }],
                "properties": properties,
            })
        })
        .collect();
    json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "portcullis",
                "version": subject.tool_version,
                "informationUri": "https://github.com/portcullis/portcullis",
                "rules": rule_docs,
            }},
            "originalUriBaseIds": {"ROOTPATH": {"uri": "file:///"}},
            "automationDetails": {"id": subject.serial},
            "properties": {
                "image": subject.name,
                "manifest_digest": subject.manifest_digest,
                "created": subject.created,
            },
            "results": results,
        }],
    })
}

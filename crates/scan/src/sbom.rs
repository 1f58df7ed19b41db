//! The image's bill of materials as SPDX 2.3 JSON and CycloneDX 1.5 JSON.
//!
//! Pure: the caller supplies the clock and the document's unique id, so the
//! same inputs give the same document.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::layer::ImageFacts;
use crate::license::to_spdx;
use crate::matching::Finding;

/// What the document is about and when it was made.
pub struct Subject<'a> {
    /// How the image was named (`oci:…`, `registry/acme/app:1`).
    pub name: &'a str,
    pub manifest_digest: Option<&'a str>,
    /// RFC 3339, UTC, seconds.
    pub created: &'a str,
    /// A UUID, unique per document.
    pub serial: &'a str,
    pub tool_version: &'a str,
}

/// The two document formats, for callers that choose one by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Spdx,
    CycloneDx,
}

impl Format {
    /// `spdx` or `cyclonedx`.
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "spdx" => Some(Format::Spdx),
            "cyclonedx" => Some(Format::CycloneDx),
            _ => None,
        }
    }

    /// The media type a document of this format is served as.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Spdx => "application/spdx+json",
            Format::CycloneDx => "application/vnd.cyclonedx+json; version=1.5",
        }
    }

    /// The name a document of this format about `digest` in `repository`
    /// is saved under: `acme_app_0123456789ab.spdx.json` (or `.cdx.json`).
    pub fn file_name(self, repository: &str, digest: &str) -> String {
        let hex = digest.split_once(':').map_or(digest, |(_, hex)| hex);
        let extension = match self {
            Format::Spdx => "spdx.json",
            Format::CycloneDx => "cdx.json",
        };
        format!(
            "{}_{}.{extension}",
            repository.replace('/', "_"),
            &hex[..hex.len().min(12)]
        )
    }

    pub fn document(self, subject: &Subject, image: &ImageFacts, findings: &[Finding]) -> Value {
        match self {
            Format::Spdx => spdx(subject, image, findings),
            Format::CycloneDx => cyclonedx(subject, image, findings),
        }
    }
}

fn osv_url(id: &str) -> String {
    format!("https://osv.dev/vulnerability/{id}")
}

pub fn spdx(subject: &Subject, image: &ImageFacts, findings: &[Finding]) -> Value {
    let mut packages = vec![json!({
        "SPDXID": "SPDXRef-Image",
        "name": subject.name,
        "versionInfo": subject.manifest_digest.unwrap_or("NOASSERTION"),
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
    })];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": "SPDXRef-Image",
    })];
    for (i, c) in image.components.iter().enumerate() {
        let id = format!("SPDXRef-Package-{i}");
        let mut refs = vec![json!({
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": c.purl,
        })];
        for f in findings.iter().filter(|f| f.purl == c.purl && f.path == c.path) {
            refs.push(json!({
                "referenceCategory": "SECURITY",
                "referenceType": "advisory",
                "referenceLocator": osv_url(&f.ids[0]),
            }));
        }
        let declared = c.package.license.as_deref().and_then(to_spdx);
        let mut package = json!({
            "SPDXID": id,
            "name": c.package.name,
            "versionInfo": c.package.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": declared.as_deref().unwrap_or("NOASSERTION"),
            "copyrightText": "NOASSERTION",
            "sourceInfo": format!("found in layer {} at /{}", c.layer, c.path),
            "externalRefs": refs,
        });
        if let (None, Some(raw)) = (&declared, &c.package.license) {
            package["comment"] = json!(format!("declared license (not an SPDX expression): {raw}"));
        }
        packages.push(package);
        relationships.push(json!({
            "spdxElementId": "SPDXRef-Image",
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    }
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": subject.name,
        "documentNamespace": format!("urn:uuid:{}", subject.serial),
        "creationInfo": {
            "created": subject.created,
            "creators": [format!("Tool: portcullis-{}", subject.tool_version)],
        },
        "packages": packages,
        "relationships": relationships,
    })
}

pub fn cyclonedx(subject: &Subject, image: &ImageFacts, findings: &[Finding]) -> Value {
    let mut components = Vec::new();
    if let Some(os) = &image.os {
        components.push(json!({
            "type": "operating-system",
            "bom-ref": "os",
            "name": os.id,
            "version": os.version_id.as_deref().unwrap_or(""),
        }));
    }
    let mut refs: BTreeMap<(&str, &str), String> = BTreeMap::new();
    for (i, c) in image.components.iter().enumerate() {
        let bom_ref = format!("component-{i}");
        refs.insert((c.purl.as_str(), c.path.as_str()), bom_ref.clone());
        let licenses = match (c.package.license.as_deref().and_then(to_spdx), &c.package.license) {
            (Some(e), _) => json!([{ "expression": e }]),
            (None, Some(raw)) => json!([{ "license": { "name": raw } }]),
            (None, None) => json!([]),
        };
        components.push(json!({
            "type": "library",
            "bom-ref": bom_ref,
            "name": c.package.name,
            "version": c.package.version,
            "purl": c.purl,
            "licenses": licenses,
            "properties": [
                {"name": "portcullis:layer", "value": c.layer},
                {"name": "portcullis:path", "value": c.path},
            ],
        }));
    }
    // One entry per vulnerability, affecting every component that has it.
    let mut by_id: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in findings {
        by_id.entry(f.ids[0].as_str()).or_default().push(f);
    }
    let vulnerabilities: Vec<Value> = by_id
        .iter()
        .enumerate()
        .map(|(i, (id, fs))| {
            let f = fs[0];
            let mut v = json!({
                "bom-ref": format!("vulnerability-{i}"),
                "id": id,
                "source": {"name": "OSV", "url": osv_url(id)},
                "references": f.ids[1..].iter().chain(&f.related).map(|other| json!({
                    "id": other,
                    "source": {"name": "OSV", "url": osv_url(other)},
                })).collect::<Vec<_>>(),
                "ratings": [{
                    "severity": f.severity.name(),
                }],
                "affects": fs.iter().filter_map(|f| refs.get(&(f.purl.as_str(), f.path.as_str()))).map(|r| json!({
                    "ref": r,
                    "versions": [{"version": f.version, "status": "affected"}],
                })).collect::<Vec<_>>(),
            });
            if let Some(score) = f.cvss_score {
                v["ratings"][0]["score"] = json!(score);
            }
            if let Some(vector) = &f.cvss_vector {
                let method = if vector.starts_with("CVSS:4.0") {
                    "CVSSv4"
                } else if vector.starts_with("CVSS:3.1") {
                    "CVSSv31"
                } else {
                    "CVSSv3"
                };
                v["ratings"][0]["method"] = json!(method);
                v["ratings"][0]["vector"] = json!(vector);
            }
            if let Some(source) = &f.severity_source {
                v["ratings"][0]["source"] = json!({"name": source});
            }
            if let Some(status) = &f.distro_status {
                v["properties"] = json!([{"name": "portcullis:distro_status", "value": status}]);
            }
            if let Some(summary) = &f.summary {
                v["description"] = json!(summary);
            }
            if let Some(fixed) = &f.fixed_version {
                v["recommendation"] = json!(format!("Upgrade {} to {fixed} or later", f.package));
            }
            v
        })
        .collect();
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": format!("urn:uuid:{}", subject.serial),
        "version": 1,
        "metadata": {
            "timestamp": subject.created,
            "tools": {"components": [{"type": "application", "name": "portcullis", "version": subject.tool_version}]},
            "component": {
                "type": "container",
                "bom-ref": "image",
                "name": subject.name,
                "version": subject.manifest_digest.unwrap_or(""),
            },
        },
        "components": components,
        "vulnerabilities": vulnerabilities,
    })
}

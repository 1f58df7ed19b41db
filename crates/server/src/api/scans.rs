//! `/api/v1/scans/{digest}?repository=R`: what the scanner found in an
//! image. Results are kept per manifest digest; the repository names where
//! the caller may see it, and the manifest must be in that repository.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use portcullis_auth::Actions;
use portcullis_meta::ScanRecord;
use portcullis_oci::{index_entries, media_type, Digest, Manifest, Reference, RepositoryName};
use portcullis_scan::layer::ImageFacts;
use portcullis_scan::matching::Finding;
use portcullis_scan::sbom;
use portcullis_scan::summary::{counts_json, layer_view};
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::{reply, ApiResult, Who};
use crate::access::Need;
use crate::{Registry, RegistryError};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ScanQuery {
    /// Required: a repository holding the manifest, which the caller may
    /// pull from (push to, for `POST`).
    #[param(required = true, example = "acme/app")]
    repository: Option<String>,
    /// `/sbom` only: `spdx` (the default, SPDX 2.3 JSON) or `cyclonedx`
    /// (CycloneDX 1.5 JSON).
    format: Option<String>,
}

/// An image's scan, or for an index its images' scans.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ScanView {
    digest: String,
    /// `not_scanned`, `queued`, `scanning`, `done` or `failed` (not for an index).
    status: Option<String>,
    error: Option<String>,
    database_generation: Option<i64>,
    summary: Option<crate::api::openapi::SeverityCounts>,
    requested_at: Option<i64>,
    finished_at: Option<i64>,
    attempts: Option<i64>,
    /// An index: `true`, with `manifests`.
    index: Option<bool>,
    /// An index's images, each as above with its `platform`.
    manifests: Option<Vec<serde_json::Value>>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ScanQueued {
    /// The image digests queued (an index's images).
    queued: Vec<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct LayersView {
    layers: Vec<LayerView>,
}

/// A layer and what it brought in.
#[derive(serde::Serialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct LayerView {
    #[serde(flatten)]
    summary: portcullis_scan::summary::LayerSummary,
    /// Compressed bytes.
    size: Option<u64>,
    /// The image history line that created it.
    created_by: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ComponentsView {
    /// The operating system, from `os-release`.
    os: Option<serde_json::Value>,
    components: Vec<ComponentView>,
    /// What the scanner could not read.
    warnings: Vec<String>,
}

/// A software component of the image.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ComponentView {
    name: String,
    version: String,
    /// How it was installed: `deb`, `apk`, `rpm`, `python`, `npm`, `go`,
    /// `cargo` or `maven`.
    ecosystem: String,
    purl: String,
    license: Option<String>,
    /// The layer that introduced it.
    layer: String,
    /// The file it was found in.
    path: String,
    /// The first id of each of its findings.
    vulnerabilities: Vec<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct VulnerabilitiesView {
    database_generation: Option<i64>,
    vulnerabilities: Vec<portcullis_scan::matching::Finding>,
}

/// The manifest `digest` in the caller's view of `repository`.
async fn image(
    reg: &Registry,
    who: &Who,
    q: &ScanQuery,
    digest: &str,
    actions: Actions,
) -> Result<(RepositoryName, Digest, Manifest), RegistryError> {
    let repo = q
        .repository
        .as_deref()
        .ok_or_else(|| RegistryError::Invalid("the repository query parameter is required".into()))?
        .parse::<RepositoryName>()?;
    who.need(reg, Need::Repository(repo.as_str(), actions)).await?;
    let digest: Digest = digest
        .parse()
        .map_err(|e| RegistryError::Invalid(format!("digest: {e}")))?;
    let stored = reg
        .meta
        .get_manifest(repo.as_str(), &Reference::Digest(digest.clone()))
        .await?
        .ok_or_else(|| RegistryError::Absent(format!("{repo} has no manifest {digest}")))?;
    let manifest = Manifest::parse(&stored.content, Some(&stored.media_type))?;
    Ok((repo, digest, manifest))
}

fn record_json(digest: &str, r: Option<&ScanRecord>) -> serde_json::Value {
    match r {
        None => json!({"digest": digest, "status": "not_scanned"}),
        Some(r) => json!({
            "digest": r.digest,
            "status": r.status.as_str(),
            "error": r.error,
            "database_generation": r.db_generation,
            "summary": counts_json(r.counts.map(|n| n as usize)),
            "requested_at": r.requested_at,
            "finished_at": r.finished_at,
            "attempts": r.attempts,
        }),
    }
}

/// `GET`: status and counts per severity; for an index, each platform's.
#[utoipa::path(
    get,
    path = "/api/v1/scans/{digest}",
    tag = "scanning",
    params(("digest" = String, Path, description = "An image or index manifest digest (`sha256:…`)"), ScanQuery),
    responses((status = 200, description = "The scan's status and counts per severity; for an index, each platform's", body = ScanView)),
)]
pub(crate) async fn scan_get(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path(digest): Path<String>,
    Query(q): Query<ScanQuery>,
) -> ApiResult {
    let (_, digest, manifest) = image(&reg, &who, &q, &digest, Actions::PULL).await?;
    if media_type::is_index(&manifest.media_type) {
        let stored = reg
            .meta
            .manifest_by_digest(digest.as_str())
            .await?
            .ok_or_else(|| RegistryError::Absent(digest.to_string()))?;
        let mut images = Vec::new();
        for e in index_entries(&stored.content)? {
            let r = reg.meta.scan(e.digest.as_str()).await?;
            let mut j = record_json(e.digest.as_str(), r.as_ref());
            j["platform"] = json!(e.platform.map(|p| p.to_string()));
            images.push(j);
        }
        return Ok(reply(
            StatusCode::OK,
            json!({"digest": digest.as_str(), "index": true, "manifests": images}),
        ));
    }
    let r = reg.meta.scan(digest.as_str()).await?;
    Ok(reply(StatusCode::OK, record_json(digest.as_str(), r.as_ref())))
}

/// `POST`: scan now (again, if it was scanned before).
#[utoipa::path(
    post,
    path = "/api/v1/scans/{digest}",
    tag = "scanning",
    params(("digest" = String, Path, description = "An image or index manifest digest (`sha256:…`)"), ScanQuery),
    responses((status = 202, description = "Queued (again, if it was scanned before)", body = ScanQueued)),
)]
pub(crate) async fn scan_request(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path(digest): Path<String>,
    Query(q): Query<ScanQuery>,
) -> ApiResult {
    let (repo, digest, manifest) = image(&reg, &who, &q, &digest, Actions::PUSH).await?;
    if !reg.scanner.enabled() {
        return Err(RegistryError::Invalid(
            "scanning is turned off (scan_workers = 0)".into(),
        ));
    }
    let queued = reg.request_scans(repo.as_str(), &manifest, &digest, true).await?;
    let ev = who
        .actor
        .event("scan.request")
        .repository(repo.as_str())
        .digest(digest.as_str());
    reg.meta.audit(&[ev]).await?;
    Ok(reply(StatusCode::ACCEPTED, json!({"queued": queued})))
}

/// A finished scan's SBOM, findings and layers.
async fn finished(
    reg: &Registry,
    who: &Who,
    q: &ScanQuery,
    digest: &str,
) -> Result<(RepositoryName, ScanRecord, ImageFacts, Vec<Finding>, Vec<String>), RegistryError> {
    let (repo, digest, _) = image(reg, who, q, digest, Actions::PULL).await?;
    let r = reg
        .meta
        .scan(digest.as_str())
        .await?
        .filter(|r| r.status == portcullis_meta::ScanStatus::Done)
        .ok_or_else(|| RegistryError::Absent(format!("no finished scan of {digest}")))?;
    let parse = |what: &str, text: Option<&str>| {
        RegistryError::Invalid(format!(
            "the stored {what} of {digest} is unreadable ({}); scan it again",
            text.map_or("missing", |_| "not the expected JSON")
        ))
    };
    let sbom = reg.meta.scan_sbom(digest.as_str()).await?;
    let image: ImageFacts = sbom
        .as_deref()
        .and_then(crate::scanner::sbom_from_bytes)
        .ok_or_else(|| parse("SBOM", sbom.as_ref().map(|_| "")))?;
    let findings: Vec<Finding> = serde_json::from_str(r.findings.as_deref().unwrap_or(""))
        .map_err(|_| parse("findings", r.findings.as_deref()))?;
    let layers: Vec<String> =
        serde_json::from_str(r.layers.as_deref().unwrap_or("")).map_err(|_| parse("layers", r.layers.as_deref()))?;
    Ok((repo, r, image, findings, layers))
}

/// `GET …/layers`: which layer brought what, with each layer's size and
/// the image history line that created it (when the config has one).
#[utoipa::path(
    get,
    path = "/api/v1/scans/{digest}/layers",
    tag = "scanning",
    params(("digest" = String, Path, description = "An image or index manifest digest (`sha256:…`)"), ScanQuery),
    responses((status = 200, description = "Each layer, bottom first, with what it brought in", body = LayersView)),
)]
pub(crate) async fn scan_layers(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path(digest): Path<String>,
    Query(q): Query<ScanQuery>,
) -> ApiResult {
    let (repo, _, manifest) = image(&reg, &who, &q, &digest, Actions::PULL).await?;
    let (_, _, image, findings, layers) = finished(&reg, &who, &q, &digest).await?;
    let history = match &manifest.config {
        Some(c) => layer_history(&reg, repo.as_str(), &c.digest).await?,
        None => Vec::new(),
    };
    let view: Vec<serde_json::Value> = layer_view(&layers, &image, &findings)
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut j = json!(l);
            j["size"] = json!(manifest.layers.get(i).map(|d| d.size));
            j["created_by"] = json!(history.get(i).cloned().flatten());
            j
        })
        .collect();
    Ok(reply(StatusCode::OK, json!({ "layers": view })))
}

/// The config's `history` lines of the layers that are not empty, in
/// layer order (`None` for a layer without a line). A config that is
/// missing, too big or not JSON gives none.
async fn layer_history(reg: &Registry, repo: &str, config: &Digest) -> Result<Vec<Option<String>>, RegistryError> {
    const MAX_CONFIG: u64 = 4 << 20;
    match reg.meta.blob_in_repo(repo, config).await? {
        Some(size) if size <= MAX_CONFIG => {}
        _ => return Ok(Vec::new()),
    }
    let Ok(bytes) = tokio::fs::read(reg.store.blob_path(config)).await else {
        return Ok(Vec::new());
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Ok(Vec::new());
    };
    Ok(v["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| !h["empty_layer"].as_bool().unwrap_or(false))
        .map(|h| h["created_by"].as_str().map(str::to_string))
        .collect())
}

/// `GET …/components`: every component, with the ids of its findings.
#[utoipa::path(
    get,
    path = "/api/v1/scans/{digest}/components",
    tag = "scanning",
    params(("digest" = String, Path, description = "An image or index manifest digest (`sha256:…`)"), ScanQuery),
    responses((status = 200, description = "Every component, with the ids of its findings", body = ComponentsView)),
)]
pub(crate) async fn scan_components(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path(digest): Path<String>,
    Query(q): Query<ScanQuery>,
) -> ApiResult {
    let (_, _, image, findings, _) = finished(&reg, &who, &q, &digest).await?;
    let components: Vec<serde_json::Value> = image
        .components
        .iter()
        .map(|c| {
            let ids: Vec<&str> = findings
                .iter()
                .filter(|f| f.purl == c.purl && f.path == c.path)
                .map(|f| f.ids[0].as_str())
                .collect();
            json!({
                "name": c.package.name,
                "version": c.package.version,
                "ecosystem": c.package.ecosystem,
                "purl": c.purl,
                "license": c.package.license,
                "layer": c.layer,
                "path": c.path,
                "vulnerabilities": ids,
            })
        })
        .collect();
    Ok(reply(
        StatusCode::OK,
        json!({"os": image.os, "components": components, "warnings": image.warnings}),
    ))
}

/// `GET …/vulnerabilities`: component, version, ids, severity, fixed
/// version, file and layer of each finding, worst first.
#[utoipa::path(
    get,
    path = "/api/v1/scans/{digest}/vulnerabilities",
    tag = "scanning",
    params(("digest" = String, Path, description = "An image or index manifest digest (`sha256:…`)"), ScanQuery),
    responses((status = 200, description = "Every finding, worst first", body = VulnerabilitiesView)),
)]
pub(crate) async fn scan_vulnerabilities(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path(digest): Path<String>,
    Query(q): Query<ScanQuery>,
) -> ApiResult {
    let (_, r, _, findings, _) = finished(&reg, &who, &q, &digest).await?;
    Ok(reply(
        StatusCode::OK,
        json!({"database_generation": r.db_generation, "vulnerabilities": findings}),
    ))
}

/// `GET …/sbom?format=spdx|cyclonedx` (SPDX without `format`), as an
/// attachment named after the repository and the digest.
#[utoipa::path(
    get,
    path = "/api/v1/scans/{digest}/sbom",
    tag = "scanning",
    params(("digest" = String, Path, description = "An image or index manifest digest (`sha256:…`)"), ScanQuery),
    responses((status = 200, description = "The SBOM, as an attachment (`Content-Disposition` names the file)",
        content((serde_json::Value = "application/spdx+json"), (serde_json::Value = "application/vnd.cyclonedx+json")))),
)]
pub(crate) async fn scan_sbom(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path(digest): Path<String>,
    Query(q): Query<ScanQuery>,
) -> ApiResult {
    let format = match q.format.as_deref() {
        None => sbom::Format::Spdx,
        Some(name) => sbom::Format::parse(name)
            .ok_or_else(|| RegistryError::Invalid("format is spdx (the default) or cyclonedx".into()))?,
    };
    let (repo, r, image, findings, _) = finished(&reg, &who, &q, &digest).await?;
    let name = format!("{repo}@{}", r.digest);
    let created = portcullis_vulndb::rfc3339((r.finished_at.unwrap_or(r.requested_at) / 1000) as u64);
    let serial = uuid::Uuid::new_v4().to_string();
    let subject = sbom::Subject {
        name: &name,
        manifest_digest: Some(&r.digest),
        created: &created,
        serial: &serial,
        tool_version: env!("CARGO_PKG_VERSION"),
    };
    let doc = format.document(&subject, &image, &findings);
    let disposition = format!(
        "attachment; filename=\"{}\"",
        format.file_name(repo.as_str(), &r.digest)
    );
    Ok((
        StatusCode::OK,
        [
            ("content-type", format.content_type().to_string()),
            ("content-disposition", disposition),
        ],
        doc.to_string(),
    )
        .into_response())
}

//! Lists for browsing: repositories the caller can read (with tag counts
//! and worst findings), a repository's tags with what is known about each
//! image, and the vulnerability database (status, offline import). The web
//! UI reads these too, so the API and the pages can never disagree.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use portcullis_auth::Actions;
use portcullis_meta::{SeverityCounts, TagDetail};
use portcullis_oci::Digest;
use portcullis_sign::PublicKey;
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::identity::repo_name;
use super::{reply, ApiResult, Who};
use crate::access::Need;
use crate::pull::Signed;
use crate::{Registry, RegistryError};

/// How many rows one page holds at most.
const MAX_PAGE: i64 = 1000;

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// Only names containing this text (repositories only).
    #[serde(default)]
    q: String,
    /// The previous page's `next`.
    after: Option<String>,
    /// Rows per page: 1 to 1000, default 100.
    limit: Option<i64>,
}

/// A page of repositories.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct RepositoryPage {
    repositories: Vec<RepositorySummaryView>,
    /// The `after` of the next page; `null` on the last one.
    next: Option<String>,
}

/// A repository in a list.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct RepositorySummaryView {
    name: String,
    /// `public` or `private`.
    visibility: String,
    /// How many tags it has.
    tags: i64,
    /// When a manifest was last pushed.
    last_push: Option<i64>,
    /// How many of its tagged images have a finished scan.
    scanned: i64,
    /// Bytes of its blobs.
    size: i64,
    /// The findings of its worst tagged image.
    worst: crate::api::openapi::SeverityCounts,
}

/// A page of a repository's tags.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct TagPage {
    repository: String,
    tags: Vec<TagSummaryView>,
    /// The `after` of the next page; `null` on the last one.
    next: Option<String>,
}

/// A tag and what is known of its image.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct TagSummaryView {
    name: String,
    digest: String,
    media_type: String,
    artifact_type: Option<String>,
    size: i64,
    pushed_at: i64,
    pushed_by: Option<String>,
    /// `null` when it was never scanned.
    scan: Option<TagScanView>,
    promoted_from: Option<PromotedFromView>,
    /// How many referrers (signatures, SBOMs, attestations) it has.
    referrers: i64,
    /// A signature, SBOM or other artifact rather than an image.
    artifact: bool,
    /// For cosign's `sha256-<hex>.sig`, `.att` or `.sbom` tag holding a
    /// signature, attestation or SBOM: the image it is about; else `null`.
    accessory_of: Option<AccessoryView>,
    signed: SignedView,
}

/// What a cosign accessory tag is about.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct AccessoryView {
    /// The image's digest.
    digest: String,
    /// `signature`, `attestation` or `SBOM`.
    kind: String,
}

/// A tag's scan.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct TagScanView {
    /// `queued`, `scanning`, `done` or `failed`.
    status: String,
    /// Matched against the vulnerability database in force.
    matched: bool,
    counts: crate::api::openapi::SeverityCounts,
}

/// Where a promotion brought an image from.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct PromotedFromView {
    repository: String,
    tag: Option<String>,
    policy_id: String,
    at: i64,
}

/// Whose signature over an image verifies.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct SignedView {
    /// `verified`, `unverified` (no account holds the key any more) or
    /// `unsigned`.
    status: String,
    /// With `verified`.
    key_id: Option<String>,
    /// With `verified`: the account holding the key.
    account: Option<String>,
}

impl PageQuery {
    fn limit(&self) -> i64 {
        self.limit.unwrap_or(100).clamp(1, MAX_PAGE)
    }
}

fn counts_json(c: &SeverityCounts) -> serde_json::Value {
    portcullis_scan::summary::counts_json(c.map(|n| n.max(0) as usize))
}

/// `GET /api/v1/repositories?q=&after=&limit=`: a page of the repositories
/// the caller may pull, with `next` (the `after` of the next page) when
/// there is one.
#[utoipa::path(
    get,
    path = "/api/v1/repositories",
    tag = "repositories",
    params(PageQuery),
    responses((status = 200, description = "A page of the repositories the caller may pull, by name", body = RepositoryPage)),
)]
pub(crate) async fn repository_list(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Query(p): Query<PageQuery>,
) -> ApiResult {
    who.need(&reg, Need::Authenticated).await?;
    let limit = p.limit();
    let mut names = crate::listing::readable_page(&reg, &who.caller, p.after.as_deref(), limit, &p.q).await?;
    let next = (names.len() as i64 > limit).then(|| {
        names.truncate(limit as usize);
        names.last().cloned()
    });
    let summaries = reg.meta.repository_summaries(&names).await?;
    let list: Vec<_> = summaries
        .iter()
        .map(|s| {
            json!({"name": s.name, "visibility": s.visibility, "tags": s.tags, "last_push": s.last_push,
                   "scanned": s.scanned, "size": s.size, "worst": counts_json(&s.worst)})
        })
        .collect();
    Ok(reply(
        StatusCode::OK,
        json!({"repositories": list, "next": next.flatten()}),
    ))
}

/// `GET …/repositories/NAME/tags?after=&limit=`: a page of tags in
/// bytewise order with digest, size, who pushed it and when, the scan's
/// counts, where a promotion brought it from, and whose signature over it
/// verifies (checked against every current account key).
#[utoipa::path(
    get,
    path = "/api/v1/repositories/{name}/tags",
    tag = "repositories",
    params(super::RepositoryPath, PageQuery),
    responses((status = 200, description = "A page of tags in bytewise order", body = TagPage)),
)]
pub(crate) async fn tag_list(reg: &Registry, who: &Who, name: &str, query: &str) -> ApiResult {
    let name = repo_name(name)?;
    who.need(reg, Need::Repository(name.as_str(), Actions::PULL)).await?;
    let p: PageQuery = serde_urlencoded_query(query)?;
    let limit = p.limit();
    let mut tags = reg
        .meta
        .tag_details(name.as_str(), p.after.as_deref(), limit + 1)
        .await?;
    let next = (tags.len() as i64 > limit).then(|| {
        tags.truncate(limit as usize);
        tags.last().map(|t| t.name.clone())
    });
    let signed = signatures(reg, name.as_str(), &tags).await?;
    let mut accessories = HashMap::new();
    for t in &tags {
        if let Some(a) = accessory(reg, name.as_str(), t).await? {
            accessories.insert(t.name.clone(), a);
        }
    }
    let list: Vec<_> =
        tags.iter()
            .map(|t| {
                let scan = t.scan_status.as_ref().map(
                    |status| json!({"status": status, "matched": t.scan_matched, "counts": counts_json(&t.counts)}),
                );
                let promoted = t.promoted_from.as_ref().map(
                    |(repo, tag, policy, at)| json!({"repository": repo, "tag": tag, "policy_id": policy, "at": at}),
                );
                json!({
                    "name": t.name, "digest": t.digest, "media_type": t.media_type,
                    "artifact_type": t.artifact_type, "size": t.size, "pushed_at": t.pushed_at,
                    "pushed_by": t.pushed_by, "scan": scan, "promoted_from": promoted,
                    "referrers": t.referrers, "artifact": is_artifact(t),
                    "accessory_of": accessories.get(&t.name),
                    "signed": signed.get(&t.digest).cloned().unwrap_or(json!({"status": "unsigned"})),
                })
            })
            .collect();
    Ok(reply(
        StatusCode::OK,
        json!({"repository": name.as_str(), "tags": list, "next": next.flatten()}),
    ))
}

/// What a cosign accessory tag (`sha256-<hex>.sig`, `.att`, `.sbom`) is
/// about: `{"digest", "kind"}` when the name says so and its manifest is
/// an artifact (its layers signatures, attestations or SBOMs, as the gate
/// judges them); an image tagged so is a tag like any other, so no one
/// who may push can hide one under another image's row.
async fn accessory(reg: &Registry, repo: &str, t: &TagDetail) -> Result<Option<serde_json::Value>, RegistryError> {
    let Some((subject, suffix)) = portcullis_oci::cosign_tag_subject(&t.name) else {
        return Ok(None);
    };
    // A digest as the registry writes it (lowercase hex).
    let Ok(subject) = subject.parse::<Digest>() else {
        return Ok(None);
    };
    let kind = match suffix {
        "sig" => "signature",
        "att" => "attestation",
        _ => "SBOM",
    };
    let Ok(digest) = t.digest.parse::<Digest>() else {
        return Ok(None);
    };
    let Some(m) = reg
        .meta
        .get_manifest(repo, &portcullis_oci::Reference::Digest(digest))
        .await?
    else {
        return Ok(None);
    };
    let artifact = portcullis_oci::Manifest::parse(&m.content, Some(&m.media_type))
        .is_ok_and(|m| m.kind() == portcullis_oci::ManifestKind::Artifact);
    Ok(artifact.then(|| json!({"digest": subject.to_string(), "kind": kind})))
}

/// Not an image or index: a signature, SBOM or other artifact (a `.sig`
/// tag, or an artifact type that is not an image config's).
fn is_artifact(t: &TagDetail) -> bool {
    let signature = t.name.starts_with("sha256-") && t.name.ends_with(".sig");
    signature
        || t.artifact_type
            .as_deref()
            .is_some_and(|a| !crate::scanner::IMAGE_CONFIGS.contains(&a))
}

/// Who signed each signed digest on the page: `{"status": "verified",
/// "account", "key_id"}` or `{"status": "unverified"}` (signature
/// artifacts whose key no account holds any more).
async fn signatures(
    reg: &Registry,
    repo: &str,
    tags: &[TagDetail],
) -> Result<HashMap<String, serde_json::Value>, RegistryError> {
    let mut out = HashMap::new();
    let signed: Vec<&TagDetail> = tags.iter().filter(|t| t.signature_tag || t.referrers > 0).collect();
    if signed.is_empty() {
        return Ok(out);
    }
    let keys = reg.meta.current_keys().await?;
    let public: Vec<PublicKey> = keys
        .iter()
        .filter_map(|(_, _, pem)| PublicKey::from_pem(pem).ok())
        .collect();
    for t in signed {
        if out.contains_key(&t.digest) {
            continue;
        }
        let Ok(digest) = t.digest.parse::<Digest>() else {
            continue;
        };
        let verdict = match reg.signature_verdict(repo, &digest, &public, false).await? {
            Signed::Unsigned => continue,
            Signed::Unverified => json!({"status": "unverified"}),
            Signed::By(id) => {
                let account = keys.iter().find(|(k, _, _)| *k == id).map(|(_, a, _)| a.clone());
                json!({"status": "verified", "key_id": id, "account": account})
            }
        };
        out.insert(t.digest.clone(), verdict);
    }
    Ok(out)
}

fn serde_urlencoded_query<T: serde::de::DeserializeOwned>(query: &str) -> Result<T, RegistryError> {
    Query::<T>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|_| RegistryError::Invalid("query".into()))?,
    )
    .map(|q| q.0)
    .map_err(|e| RegistryError::Invalid(format!("query: {e}")))
}

/// The vulnerability database's status.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct VulnDbStatusView {
    status: VulnDbStatusFields,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct VulnDbStatusFields {
    /// The generation in force; `null` before any import.
    generation: Option<u64>,
    /// RFC 3339.
    imported_at: Option<String>,
    records: Option<u64>,
    sources: Vec<VulnDbSourceView>,
    /// The generation the scanner has loaded.
    loaded_generation: Option<u64>,
    loaded_advisories: Option<u64>,
    /// Scheduled updates from `vulndb_sources`.
    updates: serde_json::Value,
    /// Scheduled pulls from `vulndb_pull`.
    pull: serde_json::Value,
}

/// A source in force.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct VulnDbSourceView {
    name: String,
    format: String,
    records: u64,
    rejected: u64,
    /// RFC 3339.
    imported_at: String,
}

/// An import's report.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ImportReportView {
    /// The new generation.
    generation: u64,
    /// Each source read, with its record and rejection counts.
    sources: Vec<serde_json::Value>,
    /// Sources from earlier imports still in force.
    kept: Vec<String>,
}

/// The scan queue.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ScannerStatusView {
    /// Scans by status (`queued`, `scanning`, `done`, `failed`).
    scans: std::collections::BTreeMap<String, i64>,
    /// The database generation the scanner matches with.
    database_generation: Option<u64>,
}

/// What refers to an image.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ReferrersView {
    referrers: Vec<ReferrerView>,
    /// Cosign's tag-form signature (`sha256-<hex>.sig`), if any.
    signature_tag: Option<SignatureTagView>,
}

/// An OCI 1.1 referrer.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ReferrerView {
    digest: String,
    media_type: String,
    artifact_type: Option<String>,
    size: i64,
    annotations: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct SignatureTagView {
    tag: String,
    digest: String,
}

/// Findings per day.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct HistoryView {
    /// The first day (ms, UTC midnight).
    since: i64,
    days: Vec<DayView>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct DayView {
    /// UTC midnight (ms).
    day: i64,
    /// Scanned images pushed that day.
    images: i64,
    counts: crate::api::openapi::SeverityCounts,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Days {
    /// How many days back: 1 to 366, default 30.
    days: Option<i64>,
}

/// `GET /api/v1/vulndb`: the sources in force, their record counts, the
/// generation and when it was imported (`null` before any import).
#[utoipa::path(
    get,
    path = "/api/v1/vulndb",
    tag = "scanning",
    responses((status = 200, description = "The database's status", body = VulnDbStatusView)),
)]
pub(crate) async fn vulndb_status(State(reg): State<Arc<Registry>>, who: Who) -> ApiResult {
    who.need(&reg, Need::System).await?;
    let status = reg.vulndb_status().await?;
    Ok(reply(StatusCode::OK, json!({ "status": status })))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ImportQuery {
    /// The source's file name (`debian.osv.jsonl.gz`): it says the format
    /// and replaces an earlier source of the same name.
    name: String,
    /// Replace every source, not only one of the same name.
    #[serde(default)]
    replace_all: bool,
}

/// `POST /api/v1/vulndb?name=FILE[&replace_all=true]` with the file as
/// the body (streamed to disk, never held): the same atomic import as
/// `portcullis db import`.
#[utoipa::path(
    post,
    path = "/api/v1/vulndb",
    tag = "scanning",
    params(ImportQuery),
    request_body(content = String, description = "The source file, streamed as the body: OSV JSON or JSON Lines, CVE JSON 5, NVD CVE API 2.0 or Debian tracker JSON, plain or gzip, zstd or zip", content_type = "application/octet-stream"),
    responses((status = 201, description = "The import's report: a new generation is in force", body = ImportReportView)),
)]
pub(crate) async fn vulndb_import(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Query(q): Query<ImportQuery>,
    body: axum::body::Body,
) -> ApiResult {
    who.need(&reg, Need::System).await?;
    let mut upload = reg.vulndb_upload(&q.name).await?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
        let chunk = chunk.map_err(|e| RegistryError::Invalid(format!("request body: {e}")))?;
        upload.write(&chunk).await?;
    }
    let report = upload.import(&reg, &who.actor, q.replace_all).await?;
    Ok(reply(StatusCode::CREATED, report))
}

/// `GET /api/v1/scanner`: the scan queue by status, and the database
/// generation the scanner matches with.
#[utoipa::path(
    get,
    path = "/api/v1/scanner",
    tag = "scanning",
    responses((status = 200, description = "The scan queue by status", body = ScannerStatusView)),
)]
pub(crate) async fn scanner_status(State(reg): State<Arc<Registry>>, who: Who) -> ApiResult {
    who.need(&reg, Need::System).await?;
    let counts: serde_json::Map<String, serde_json::Value> = reg
        .meta
        .scan_status_counts()
        .await?
        .into_iter()
        .map(|(status, n)| (status, json!(n)))
        .collect();
    let loaded = reg.scanner.index().map(|(g, _)| g);
    Ok(reply(
        StatusCode::OK,
        json!({"scans": counts, "database_generation": loaded}),
    ))
}

/// `GET …/repositories/NAME/referrers/DIGEST`: what refers to an image in
/// this repository: OCI 1.1 referrers (signature bundles, SBOMs,
/// attestations) and cosign's tag-form signature, if any.
#[utoipa::path(
    get,
    path = "/api/v1/repositories/{name}/referrers/{digest}",
    tag = "repositories",
    params(super::RepositoryPath, ("digest" = String, Path, description = "A manifest digest (`sha256:…`)")),
    responses((status = 200, description = "What refers to the image", body = ReferrersView)),
)]
pub(crate) async fn referrer_list(reg: &Registry, who: &Who, name: &str, digest: &str) -> ApiResult {
    let name = repo_name(name)?;
    who.need(reg, Need::Repository(name.as_str(), Actions::PULL)).await?;
    let digest: Digest = digest
        .parse()
        .map_err(|e| RegistryError::Invalid(format!("digest: {e}")))?;
    let found = reg.meta.referrers(name.as_str(), &digest, None).await?;
    let list: Vec<_> = found
        .iter()
        .map(|r| {
            json!({"digest": r.digest, "media_type": r.media_type, "artifact_type": r.artifact_type, "size": r.size,
                   "annotations": r.annotations.as_deref().and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok())})
        })
        .collect();
    let tag = portcullis_sign::signature_tag(&digest);
    let tag_form = reg
        .meta
        .get_manifest(name.as_str(), &portcullis_oci::Reference::Tag(tag.clone()))
        .await?
        .map(|m| json!({"tag": tag, "digest": m.digest}));
    Ok(reply(
        StatusCode::OK,
        json!({"referrers": list, "signature_tag": tag_form}),
    ))
}

/// `GET …/repositories/NAME/history?days=N` (at most 366, default 30):
/// per day, the scanned images pushed and their findings per severity.
#[utoipa::path(
    get,
    path = "/api/v1/repositories/{name}/history",
    tag = "repositories",
    params(super::RepositoryPath, Days),
    responses((status = 200, description = "Per day, the scanned images pushed and their findings", body = HistoryView)),
)]
pub(crate) async fn repository_history(reg: &Registry, who: &Who, name: &str, query: &str) -> ApiResult {
    let name = repo_name(name)?;
    who.need(reg, Need::Repository(name.as_str(), Actions::PULL)).await?;
    let q: Days = serde_urlencoded_query(query)?;
    let days = q.days.unwrap_or(30).clamp(1, 366);
    let today = portcullis_meta::now_ms() / 86_400_000 * 86_400_000;
    let since = today - (days - 1) * 86_400_000;
    let list: Vec<_> = reg
        .meta
        .findings_by_day(name.as_str(), since)
        .await?
        .iter()
        .map(|d| json!({"day": d.day, "images": d.images, "counts": counts_json(&d.counts)}))
        .collect();
    Ok(reply(StatusCode::OK, json!({"since": since, "days": list})))
}

//! Promotion policies of a source repository, and what they did:
//! `…/repositories/NAME/policies[/ID[/apply|/dry-run|/evaluations]]`, and
//! a tag's provenance at `…/repositories/NAME/tags/TAG`.

use axum::http::StatusCode;
use portcullis_auth::Actions;
use portcullis_meta::{now_ms, EvaluationRecord, StoredPolicy};
use portcullis_oci::{Digest, Reference};
use portcullis_policy::PromotionPolicy;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::identity::repo_name;
use super::{json_body, reply, to_json, ApiResult, Who};
use crate::access::{Caller, Need};
use crate::{Registry, RegistryError};

/// A stored promotion policy: the policy's fields and these.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct PolicyView {
    target: String,
    tag_template: String,
    enabled: bool,
    rules: Vec<portcullis_policy::Rule>,
    copy_referrers: bool,
    sign_as: Option<String>,
    require_provenance: Option<portcullis_policy::RequireProvenance>,
    id: String,
    /// The source repository.
    repository: String,
    /// Who created it: the policy acts with this account's rights.
    owner: String,
    created_at: i64,
    updated_at: i64,
    /// `POST` with `apply_existing` only.
    evaluations: Option<Vec<EvaluationView>>,
}

/// The body of `POST …/policies`: a promotion policy, and whether to
/// apply it at once to every tag of its source.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct NewPolicy {
    /// The repository promoted images are copied to.
    target: String,
    /// The promoted tag: `%n` the source tag, `%D` the digest prefix,
    /// DTR's date and time variables (UTC).
    tag_template: String,
    /// Default true.
    enabled: Option<bool>,
    /// All must hold (none: every image).
    rules: Option<Vec<portcullis_policy::Rule>>,
    /// Copy the image's signatures, SBOMs and attestations with it (default true).
    copy_referrers: Option<bool>,
    /// A service account whose server-side key signs each promoted image.
    sign_as: Option<String>,
    /// Promote only images (every image of an index) with a verified SLSA
    /// provenance attestation (v0.2 or v1, either of cosign's forms) about
    /// them, signed by a current key of these teams' members or accounts,
    /// whose builder id and source URI match these globs (empty: any).
    require_provenance: Option<portcullis_policy::RequireProvenance>,
    /// Also apply it now to every tag of its source (default false).
    apply_existing: Option<bool>,
}

/// What a policy said of one image.
#[derive(Serialize, ToSchema)]
pub(crate) struct EvaluationView {
    id: String,
    policy_id: String,
    repository: String,
    tag: Option<String>,
    digest: String,
    /// `promoted`, `failed` (a rule did not hold), `pending` (no finished
    /// scan yet), `refused` (the target would not take it) or `passed`.
    outcome: String,
    target_tag: Option<String>,
    /// The rules with their outcomes and the facts they used, or the reason.
    detail: serde_json::Value,
    at: i64,
}

/// Evaluations of a policy run.
#[derive(Serialize, ToSchema)]
pub(crate) struct Evaluations {
    evaluations: Vec<EvaluationView>,
}

/// A tag, where a promotion brought it from, and what policies said of it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct TagView {
    repository: String,
    tag: String,
    digest: String,
    media_type: String,
    promoted_from: Option<ProvenanceView>,
    /// Where a replication rule imported it from (while the tag still
    /// names what was imported).
    replicated_from: Option<ReplicatedFromView>,
    /// The latest 20, newest first.
    evaluations: Vec<EvaluationView>,
}

/// Where a promotion brought a tag from.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ProvenanceView {
    repository: String,
    tag: Option<String>,
    policy_id: String,
    at: i64,
    /// `promoted from REPO:TAG by policy ID`.
    summary: String,
    /// `null` when the policy does not sign (or is gone); else
    /// `{"signed_by", "state"}` (`signed`, `failed` with why, `pending`).
    signature: Option<serde_json::Value>,
}

/// Where a replication brought a tag from.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ReplicatedFromView {
    /// The upstream registry's name.
    registry: String,
    repository: String,
    tag: String,
    /// The upstream digest (the same as the local one: nothing is rewritten).
    digest: String,
    /// The id of the key whose signature verified, when the rule required one.
    verified_key: Option<String>,
    rule_id: String,
    run_id: String,
    at: i64,
}

fn policy_json(p: &StoredPolicy) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(&p.policy).unwrap_or(json!({}));
    v["id"] = json!(p.id);
    v["repository"] = json!(p.repository);
    v["owner"] = json!(p.owner);
    v["created_at"] = json!(p.created_at);
    v["updated_at"] = json!(p.updated_at);
    v
}

fn evaluation_view(e: &EvaluationRecord) -> EvaluationView {
    EvaluationView {
        id: e.id.clone(),
        policy_id: e.policy_id.clone(),
        repository: e.repository.clone(),
        tag: e.tag.clone(),
        digest: e.digest.clone(),
        outcome: e.outcome.as_str().to_string(),
        target_tag: e.target_tag.clone(),
        detail: serde_json::from_str::<serde_json::Value>(&e.detail).unwrap_or(json!(e.detail)),
        at: e.at,
    }
}

pub(crate) fn evaluation_json(e: &EvaluationRecord) -> serde_json::Value {
    to_json(&evaluation_view(e))
}

/// Parses and checks a policy, and that the caller may push to its target
/// (a policy acts with its creator's rights: it can't reach further).
async fn checked(reg: &Registry, who: &Who, source: &str, body: &[u8]) -> Result<PromotionPolicy, RegistryError> {
    check_size(body)?;
    let p: PromotionPolicy = json_body(body)?;
    p.compile().map_err(|e| RegistryError::Invalid(e.to_string()))?;
    let target = repo_name(&p.target)?;
    if target.as_str() == source {
        return Err(RegistryError::Invalid("a policy's target is another repository".into()));
    }
    who.need(reg, Need::Repository(target.as_str(), Actions::PUSH))
        .await
        .map_err(|_| RegistryError::Denied(format!("you may not push to {target}, so no policy of yours may")))?;
    if let Some(required) = &p.require_provenance {
        super::identity::signers_exist(reg, &required.signed_by, "require_provenance.signed_by").await?;
    }
    if let Some(account) = &p.sign_as {
        // The same check runs before every signature the policy makes.
        reg.may_sign_as(&who.caller, account).await.map_err(|e| match e {
            RegistryError::Denied(_) => RegistryError::Denied(format!("sign_as: you do not administer {account}")),
            other => other,
        })?;
        if reg.meta.signing_key(account).await?.is_none() {
            return Err(RegistryError::Invalid(format!(
                "sign_as: {account} has no server-side signing key (POST /api/v1/accounts/{account}/signing-key)"
            )));
        }
    }
    Ok(p)
}

fn check_size(body: &[u8]) -> Result<(), RegistryError> {
    if body.len() > MAX_POLICY_BYTES {
        return Err(RegistryError::Invalid(format!(
            "a policy of {} bytes; at most {MAX_POLICY_BYTES}",
            body.len()
        )));
    }
    Ok(())
}

fn owner(who: &Who) -> Result<String, RegistryError> {
    match &who.caller {
        Caller::Account(p) => Ok(p.account.name.clone()),
        _ => Err(RegistryError::Unauthorized("authentication required".into())),
    }
}

async fn find(reg: &Registry, source: &str, id: &str) -> Result<StoredPolicy, RegistryError> {
    reg.meta
        .policy(id)
        .await?
        .filter(|p| p.repository == source)
        .ok_or_else(|| RegistryError::Absent(format!("no policy {id} on {source}")))
}

#[utoipa::path(
    get,
    path = "/api/v1/repositories/{name}/policies",
    tag = "policies",
    params(super::RepositoryPath),
    responses((status = 200, description = "The repository's promotion policies", body = [PolicyView])),
)]
pub(crate) async fn policy_list(reg: &Registry, who: &Who, name: &str) -> ApiResult {
    let name = repo_name(name)?;
    who.need(reg, Need::Repository(name.as_str(), Actions::PULL)).await?;
    let list: Vec<_> = reg
        .meta
        .policies(name.as_str())
        .await?
        .iter()
        .map(policy_json)
        .collect();
    Ok(reply(StatusCode::OK, json!(list)))
}

/// Promotion policies one source repository may have.
pub(crate) const MAX_POLICIES: usize = 32;
/// The largest policy: every push to its source parses it again.
const MAX_POLICY_BYTES: usize = 64 << 10;

/// Takes the request's `apply_existing` (a bool, default false) out of a
/// policy body: it asks for an action, it is not part of the policy, so
/// the rest is parsed (unknown fields refused) and stored without it.
fn take_apply_existing(body: &[u8]) -> Result<(bool, Vec<u8>), RegistryError> {
    let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_slice(body) else {
        // Not an object: the policy's own parse says what is wrong.
        return Ok((false, body.to_vec()));
    };
    let apply = match fields.remove("apply_existing") {
        None => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| RegistryError::Invalid("request body: apply_existing is true or false".into()))?,
    };
    Ok((apply, serde_json::to_vec(&fields).expect("json")))
}

/// `POST …/policies`: a new policy; with `"apply_existing": true` it is
/// also applied at once to every tag of its source, as `POST …/apply` does,
/// and the response carries those `evaluations`.
#[utoipa::path(
    post,
    path = "/api/v1/repositories/{name}/policies",
    tag = "policies",
    params(super::RepositoryPath),
    request_body = NewPolicy,
    responses((status = 201, description = "The policy (with `evaluations` when `apply_existing` was set)", body = PolicyView)),
)]
pub(crate) async fn policy_create(reg: &Registry, who: &Who, name: &str, body: &[u8]) -> ApiResult {
    let name = repo_name(name)?;
    who.need(reg, Need::Repository(name.as_str(), Actions::ALL)).await?;
    check_size(body)?;
    let (apply_existing, body) = take_apply_existing(body)?;
    let p = checked(reg, who, name.as_str(), &body).await?;
    // Every push to the repository runs each of its policies.
    let existing = reg.meta.policies(name.as_str()).await?.len();
    if existing >= MAX_POLICIES {
        return Err(RegistryError::Invalid(format!(
            "{name} has {existing} promotion policies, the most a repository may have"
        )));
    }
    let stored = StoredPolicy {
        id: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
        repository: name.to_string(),
        owner: owner(who)?,
        policy: serde_json::to_string(&p).expect("json"),
        created_at: now_ms(),
        updated_at: now_ms(),
    };
    let ev = who
        .actor
        .event("policy.create")
        .repository(name.as_str())
        .detail(format!("{} {}", stored.id, stored.policy));
    reg.meta.create_policy(&stored, &ev).await?;
    let mut out = policy_json(&stored);
    if apply_existing {
        out["evaluations"] = applied(reg, &stored).await?;
    }
    Ok(reply(StatusCode::CREATED, out))
}

#[utoipa::path(
    get,
    path = "/api/v1/repositories/{name}/policies/{id}",
    tag = "policies",
    params(super::RepositoryPath, ("id" = String, Path, description = "The policy's id")),
    responses((status = 200, description = "The policy", body = PolicyView)),
)]
pub(crate) async fn policy_get(reg: &Registry, who: &Who, name: &str, id: &str) -> ApiResult {
    let name = repo_name(name)?;
    who.need(reg, Need::Repository(name.as_str(), Actions::PULL)).await?;
    Ok(reply(StatusCode::OK, policy_json(&find(reg, name.as_str(), id).await?)))
}

#[utoipa::path(
    put,
    path = "/api/v1/repositories/{name}/policies/{id}",
    tag = "policies",
    params(super::RepositoryPath, ("id" = String, Path, description = "The policy's id")),
    request_body = PromotionPolicy,
    responses((status = 200, description = "The policy now", body = PolicyView)),
)]
pub(crate) async fn policy_update(reg: &Registry, who: &Who, name: &str, id: &str, body: &[u8]) -> ApiResult {
    let name = repo_name(name)?;
    who.need(reg, Need::Repository(name.as_str(), Actions::ALL)).await?;
    let mut stored = find(reg, name.as_str(), id).await?;
    let p = checked(reg, who, name.as_str(), body).await?;
    stored.policy = serde_json::to_string(&p).expect("json");
    let ev = who
        .actor
        .event("policy.update")
        .repository(name.as_str())
        .detail(format!("{id} {}", stored.policy));
    reg.meta.update_policy(id, &stored.policy, &ev).await?;
    Ok(reply(StatusCode::OK, policy_json(&find(reg, name.as_str(), id).await?)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/repositories/{name}/policies/{id}",
    tag = "policies",
    params(super::RepositoryPath, ("id" = String, Path, description = "The policy's id")),
    responses((status = 204, description = "Deleted")),
)]
pub(crate) async fn policy_delete(reg: &Registry, who: &Who, name: &str, id: &str) -> ApiResult {
    let name = repo_name(name)?;
    who.need(reg, Need::Repository(name.as_str(), Actions::ALL)).await?;
    find(reg, name.as_str(), id).await?;
    let ev = who
        .actor
        .event("policy.delete")
        .repository(name.as_str())
        .detail(id.to_string());
    reg.meta.delete_policy(id, &ev).await?;
    Ok(reply(StatusCode::NO_CONTENT, json!(null)))
}

/// `POST …/apply`: the policy over every tag of its source, now.
#[utoipa::path(
    post,
    path = "/api/v1/repositories/{name}/policies/{id}/apply",
    tag = "policies",
    params(super::RepositoryPath, ("id" = String, Path, description = "The policy's id")),
    responses((status = 200, description = "The policy's evaluation of every tag of its source, promotions made", body = Evaluations)),
)]
pub(crate) async fn policy_apply(reg: &Registry, who: &Who, name: &str, id: &str) -> ApiResult {
    let name = repo_name(name)?;
    who.need(reg, Need::Repository(name.as_str(), Actions::ALL)).await?;
    let p = find(reg, name.as_str(), id).await?;
    // The promotions it makes are recorded as the policy owner's; who
    // asked for them is recorded here.
    let ev = who
        .actor
        .event("policy.apply")
        .repository(name.as_str())
        .detail(id.to_string());
    reg.meta.audit(&[ev]).await?;
    let evaluations = Evaluations {
        evaluations: reg.apply_policy(&p).await?.iter().map(evaluation_view).collect(),
    };
    Ok(reply(StatusCode::OK, to_json(&evaluations)))
}

/// Runs a stored policy over every tag of its source now; its evaluations.
async fn applied(reg: &Registry, p: &StoredPolicy) -> Result<serde_json::Value, RegistryError> {
    let done = reg.apply_policy(p).await?;
    Ok(json!(done.iter().map(evaluation_json).collect::<Vec<_>>()))
}

/// The image to try the policy on: give exactly one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DryRun {
    /// A tag of the source repository.
    tag: Option<String>,
    /// A manifest digest in the source repository.
    digest: Option<String>,
}

/// `POST …/dry-run {"tag"|"digest"}`: every rule with its outcome and the
/// facts it used; nothing is promoted or recorded.
#[utoipa::path(
    post,
    path = "/api/v1/repositories/{name}/policies/{id}/dry-run",
    tag = "policies",
    params(super::RepositoryPath, ("id" = String, Path, description = "The policy's id")),
    request_body = DryRun,
    responses((status = 200, description = "Every rule with its outcome and the facts it used; nothing promoted or recorded", body = EvaluationView)),
)]
pub(crate) async fn policy_dry_run(reg: &Registry, who: &Who, name: &str, id: &str, body: &[u8]) -> ApiResult {
    let name = repo_name(name)?;
    who.need(reg, Need::Repository(name.as_str(), Actions::PULL)).await?;
    let p = find(reg, name.as_str(), id).await?;
    let d: DryRun = json_body(body)?;
    let (tag, digest) = match (d.tag, d.digest) {
        (Some(tag), None) => {
            portcullis_oci::validate_tag(&tag)?;
            let reference = Reference::Tag(tag.clone());
            let m = reg
                .meta
                .get_manifest(name.as_str(), &reference)
                .await?
                .ok_or_else(|| RegistryError::Absent(format!("no tag {tag} in {name}")))?;
            (tag, m.digest)
        }
        (None, Some(digest)) => {
            let parsed: Digest = digest.parse()?;
            if reg
                .meta
                .get_manifest(name.as_str(), &Reference::Digest(parsed))
                .await?
                .is_none()
            {
                return Err(RegistryError::Absent(format!("no manifest {digest} in {name}")));
            }
            (String::new(), digest)
        }
        _ => return Err(RegistryError::Invalid("give a tag or a digest".into())),
    };
    let outcome = reg.run_policy(&p, &tag, &digest, true).await?;
    Ok(reply(StatusCode::OK, evaluation_json(&outcome.record)))
}

#[utoipa::path(
    get,
    path = "/api/v1/repositories/{name}/policies/{id}/evaluations",
    tag = "policies",
    params(super::RepositoryPath, ("id" = String, Path, description = "The policy's id"), ("limit" = Option<i64>, Query, description = "At most this many, newest first: 1 to 1000, default 100")),
    responses((status = 200, description = "The policy's recorded evaluations, newest first", body = [EvaluationView])),
)]
pub(crate) async fn policy_evaluations(reg: &Registry, who: &Who, name: &str, id: &str, query: &str) -> ApiResult {
    let name = repo_name(name)?;
    who.need(reg, Need::Repository(name.as_str(), Actions::PULL)).await?;
    find(reg, name.as_str(), id).await?;
    let limit = crate::query_param(query, "limit")
        .and_then(|l| l.parse::<i64>().ok())
        .unwrap_or(100)
        .clamp(1, 1000);
    let list: Vec<_> = reg
        .meta
        .evaluations(Some(id), None, limit)
        .await?
        .iter()
        .map(evaluation_json)
        .collect();
    Ok(reply(StatusCode::OK, json!(list)))
}

/// `GET …/tags/TAG`: the digest, where a promotion brought it from, and
/// what the policies said of it.
#[utoipa::path(
    get,
    path = "/api/v1/repositories/{name}/tags/{tag}",
    tag = "repositories",
    params(super::RepositoryPath, ("tag" = String, Path, description = "A tag")),
    responses((status = 200, description = "The tag's digest, provenance and evaluations", body = TagView)),
)]
pub(crate) async fn tag_get(reg: &Registry, who: &Who, name: &str, tag: &str) -> ApiResult {
    let name = repo_name(name)?;
    portcullis_oci::validate_tag(tag)?;
    who.need(reg, Need::Repository(name.as_str(), Actions::PULL)).await?;
    let m = reg
        .meta
        .get_manifest(name.as_str(), &Reference::Tag(tag.to_string()))
        .await?
        .ok_or_else(|| RegistryError::Absent(format!("no tag {tag} in {name}")))?;
    let provenance = match reg
        .meta
        .provenance(name.as_str(), tag)
        .await?
        .filter(|p| p.digest == m.digest)
    {
        None => None,
        Some(p) => Some(json!({
            "repository": p.source_repository, "tag": p.source_tag, "policy_id": p.policy_id, "at": p.at,
            "summary": format!("promoted from {}:{} by policy {}", p.source_repository,
                p.source_tag.as_deref().unwrap_or("?"), p.policy_id),
            // null when the policy does not sign (or is gone).
            "signature": reg.promotion_signature(&m.digest, &p.policy_id).await?,
        })),
    };
    let replicated = reg
        .meta
        .replication_provenance(name.as_str(), tag)
        .await?
        .filter(|p| p.digest == m.digest)
        .map(|p| {
            json!({"registry": p.registry, "repository": p.upstream_repository, "tag": p.upstream_tag,
                   "digest": p.upstream_digest, "verified_key": p.verified_key, "rule_id": p.rule_id,
                   "run_id": p.run_id, "at": p.replicated_at})
        });
    let evaluations: Vec<_> = reg
        .meta
        .evaluations(None, Some(&m.digest), 20)
        .await?
        .iter()
        .map(evaluation_json)
        .collect();
    Ok(reply(
        StatusCode::OK,
        json!({"repository": name.as_str(), "tag": tag, "digest": m.digest, "media_type": m.media_type,
               "promoted_from": provenance, "replicated_from": replicated, "evaluations": evaluations}),
    ))
}

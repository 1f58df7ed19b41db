//! Upstream registries and replication rules, pull and push
//! (`replication.rs` runs them). Registries are system administrators'
//! (their credentials are the server's); a pull rule is managed by the
//! administrators of the namespace it writes into and by system
//! administrators, a push rule (it sends this registry's content out with
//! a registry's credentials) by system administrators. A registry's
//! password is sealed before it is stored and write-only: no response,
//! log line or audit record shows it (`has_password` says whether one is
//! set).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use portcullis_meta::{ReplicationRule, ReplicationRun, UpstreamRegistry};
use portcullis_sign::PublicKey;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{json_body, reply, to_json, ApiResult, Who};
use crate::access::Need;
use crate::replication::{is_glob, local_repository, source_matcher, RunItem};
use crate::{keys, Registry, RegistryError};
use portcullis_auth::Role;

/// An upstream registry's fields. `password` is write-only.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegistryBody {
    /// 1 to 64 of `a-z 0-9 . _ -` (on `POST`; a `PUT` may repeat it, not change it).
    #[schema(example = "hub")]
    name: Option<String>,
    /// `https://host[:port]` (or `http://` for a plain-HTTP registry); no path.
    #[schema(example = "https://registry-1.docker.io")]
    url: Option<String>,
    /// Empty for anonymous access.
    username: Option<String>,
    /// Or a token; sealed at rest, never shown.
    password: Option<String>,
    /// Certificate authorities (PEM) trusted for this registry besides the system's.
    ca_pem: Option<String>,
    /// `false` accepts any certificate over HTTPS (default `true`).
    tls_verify: Option<bool>,
}

/// An upstream registry as the API shows it (never its password).
#[derive(Serialize, ToSchema)]
pub(crate) struct RegistryView {
    name: String,
    url: String,
    username: Option<String>,
    /// Whether a password is set (it is never shown).
    has_password: bool,
    ca_pem: Option<String>,
    tls_verify: bool,
    created_by: String,
    created_at: i64,
    updated_at: i64,
}

/// What a test of the connection found.
#[derive(Serialize, ToSchema)]
pub(crate) struct ConnectionTest {
    /// `GET /v2/` answered, with the credentials accepted.
    ok: bool,
    /// Why not.
    error: Option<String>,
    latency_ms: i64,
}

fn registry_json(r: &UpstreamRegistry) -> serde_json::Value {
    to_json(&RegistryView {
        name: r.name.clone(),
        url: r.url.clone(),
        username: r.username.clone(),
        has_password: r.sealed_password.is_some(),
        ca_pem: r.ca_pem.clone(),
        tls_verify: r.tls_verify,
        created_by: r.created_by.clone(),
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

fn valid_name(what: &str, name: &str) -> Result<(), RegistryError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(RegistryError::Invalid(format!(
            "{what} {name:?}: 1 to 64 of a-z 0-9 . _ -"
        )))
    }
}

/// Applies a request to a registry (new or existing), checking every field.
fn apply_registry(reg: &Registry, r: &mut UpstreamRegistry, b: RegistryBody) -> Result<(), RegistryError> {
    if let Some(url) = b.url {
        let parsed = reqwest::Url::parse(&url).map_err(|e| RegistryError::Invalid(format!("url: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(RegistryError::Invalid("url: http:// or https:// and a host".into()));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(RegistryError::Invalid(
                "url: no credentials in the URL; use username and password".into(),
            ));
        }
        if !parsed.path().trim_matches('/').is_empty() || parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(RegistryError::Invalid(
                "url: the registry's base URL, without a path".into(),
            ));
        }
        let url = url.trim_end_matches('/').to_string();
        // The password was given for the old address: it goes nowhere
        // else unless it is given again (else an administrator could send
        // a "write-only" password to a server of theirs and read it).
        if !r.url.is_empty() && r.url != url && b.password.is_none() {
            r.sealed_password = None;
        }
        r.url = url;
    }
    if let Some(u) = b.username {
        if u.contains(':') {
            return Err(RegistryError::Invalid("username: no ':'".into()));
        }
        r.username = Some(u).filter(|u| !u.is_empty());
    }
    if let Some(p) = b.password {
        r.sealed_password = (!p.is_empty()).then(|| keys::seal_registry_password(&reg.kek, &r.name, &p));
    }
    if let Some(ca) = b.ca_pem {
        r.ca_pem = Some(ca).filter(|c| !c.trim().is_empty());
    }
    if let Some(v) = b.tls_verify {
        r.tls_verify = v;
    }
    // The client is built once here, so a CA that does not parse is refused now.
    reg.upstream_client(r, "").map_err(RegistryError::Invalid)?;
    Ok(())
}

async fn find_registry(reg: &Registry, name: &str) -> Result<UpstreamRegistry, RegistryError> {
    reg.meta
        .upstream_registry(name)
        .await?
        .ok_or_else(|| RegistryError::Absent(format!("no such registry: {name}")))
}

fn registry_detail(r: &UpstreamRegistry) -> String {
    format!(
        "{} {} username={} password={} tls_verify={} ca={}",
        r.name,
        r.url,
        r.username.as_deref().unwrap_or(""),
        if r.sealed_password.is_some() { "set" } else { "none" },
        r.tls_verify,
        r.ca_pem.is_some()
    )
}

#[utoipa::path(
    get,
    path = "/api/v1/registries",
    tag = "replication",
    responses((status = 200, description = "The upstream registries", body = [RegistryView])),
)]
pub(crate) async fn registry_list(State(reg): State<Arc<Registry>>, who: Who) -> ApiResult {
    who.need(&reg, Need::System).await?;
    let list: Vec<_> = reg
        .meta
        .upstream_registries()
        .await?
        .iter()
        .map(registry_json)
        .collect();
    Ok(reply(StatusCode::OK, json!(list)))
}

#[utoipa::path(
    post,
    path = "/api/v1/registries",
    tag = "replication",
    request_body(content = RegistryBody, description = "`name` and `url` are required"),
    responses((status = 201, description = "The registry", body = RegistryView)),
)]
pub(crate) async fn registry_create(State(reg): State<Arc<Registry>>, who: Who, body: Bytes) -> ApiResult {
    who.need(&reg, Need::System).await?;
    let b: RegistryBody = json_body(&body)?;
    let (Some(name), Some(_)) = (b.name.clone(), b.url.as_ref()) else {
        return Err(RegistryError::Invalid("a registry needs name and url".into()));
    };
    valid_name("name", &name)?;
    let now = portcullis_meta::now_ms();
    let mut r = UpstreamRegistry {
        name,
        tls_verify: true,
        created_by: who.actor.name.clone(),
        created_at: now,
        updated_at: now,
        ..UpstreamRegistry::default()
    };
    apply_registry(&reg, &mut r, b)?;
    let ev = who.actor.event("registry.create").detail(registry_detail(&r));
    reg.meta.create_upstream_registry(&r, &ev).await?;
    Ok(reply(StatusCode::CREATED, registry_json(&r)))
}

#[utoipa::path(
    get,
    path = "/api/v1/registries/{name}",
    tag = "replication",
    params(("name" = String, Path, description = "The registry's name")),
    responses((status = 200, description = "The registry", body = RegistryView)),
)]
pub(crate) async fn registry_get(State(reg): State<Arc<Registry>>, who: Who, Path(name): Path<String>) -> ApiResult {
    who.need(&reg, Need::System).await?;
    Ok(reply(StatusCode::OK, registry_json(&find_registry(&reg, &name).await?)))
}

#[utoipa::path(
    put,
    path = "/api/v1/registries/{name}",
    tag = "replication",
    params(("name" = String, Path, description = "The registry's name")),
    request_body(content = RegistryBody, description = "The fields to change (`password: \"\"` removes it)"),
    responses((status = 200, description = "The registry now", body = RegistryView)),
)]
pub(crate) async fn registry_update(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    who.need(&reg, Need::System).await?;
    let mut r = find_registry(&reg, &name).await?;
    let b: RegistryBody = json_body(&body)?;
    if b.name.as_ref().is_some_and(|n| *n != r.name) {
        return Err(RegistryError::Invalid("a registry's name does not change".into()));
    }
    apply_registry(&reg, &mut r, b)?;
    let ev = who.actor.event("registry.update").detail(registry_detail(&r));
    if !reg.meta.update_upstream_registry(&r, &ev).await? {
        return Err(RegistryError::Absent(format!("no such registry: {name}")));
    }
    let r = find_registry(&reg, &name).await?;
    Ok(reply(StatusCode::OK, registry_json(&r)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/registries/{name}",
    tag = "replication",
    params(("name" = String, Path, description = "The registry's name")),
    responses((status = 204, description = "Deleted (refused with 409 while a rule uses it)")),
)]
pub(crate) async fn registry_delete(State(reg): State<Arc<Registry>>, who: Who, Path(name): Path<String>) -> ApiResult {
    who.need(&reg, Need::System).await?;
    find_registry(&reg, &name).await?;
    let rules = reg.meta.rules_of_registry(&name).await?;
    if !rules.is_empty() {
        return Err(RegistryError::Conflict(format!(
            "registry {name} is used by replication rules {}",
            rules.join(", ")
        )));
    }
    let proxies = reg.meta.proxies_of_registry(&name).await?;
    if !proxies.is_empty() {
        return Err(RegistryError::Conflict(format!(
            "registry {name} is the upstream of the pull-through cache namespaces {}",
            proxies.join(", ")
        )));
    }
    let ev = who.actor.event("registry.delete").detail(name.clone());
    if !reg.meta.delete_upstream_registry(&name, &ev).await? {
        return Err(RegistryError::Absent(format!("no such registry: {name}")));
    }
    Ok(reply(StatusCode::NO_CONTENT, json!(null)))
}

/// `POST …/test`: reaches `/v2/` and authenticates as a run would.
#[utoipa::path(
    post,
    path = "/api/v1/registries/{name}/test",
    tag = "replication",
    params(("name" = String, Path, description = "The registry's name")),
    responses((status = 200, description = "Whether the registry answered and took the credentials", body = ConnectionTest)),
)]
pub(crate) async fn registry_test(State(reg): State<Arc<Registry>>, who: Who, Path(name): Path<String>) -> ApiResult {
    who.need(&reg, Need::System).await?;
    let r = find_registry(&reg, &name).await?;
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(std::time::Duration::from_secs(20), reg.test_upstream(&r))
        .await
        .unwrap_or_else(|_| Err("no answer within 20 s".into()));
    Ok(reply(
        StatusCode::OK,
        to_json(&ConnectionTest {
            ok: result.is_ok(),
            error: result.err(),
            latency_ms: started.elapsed().as_millis() as i64,
        }),
    ))
}

/// Whose signature a replicated image must carry: one that verifies
/// under any of these keys, or under a key registered to one of these
/// accounts or to a member of one of these teams, admits it.
#[derive(Deserialize, Serialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequireSignedBy {
    /// ECDSA P-256 public keys (PEM); a signature in cosign's tag or
    /// bundle form that verifies under one of them admits an image.
    #[serde(default)]
    keys: Vec<String>,
    /// Local accounts (users, service accounts such as `acme+ci`) whose
    /// registered keys may sign.
    #[serde(default)]
    #[schema(example = json!(["acme+ci"]))]
    accounts: Vec<String>,
    /// Local teams (`org/team`) whose members' registered keys may sign.
    #[serde(default)]
    #[schema(example = json!(["acme/release"]))]
    teams: Vec<String>,
}

/// A replication rule's fields.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleBody {
    /// 1 to 64 of `a-z 0-9 . _ -`, unique.
    #[schema(example = "alpine")]
    name: Option<String>,
    /// The upstream registry's name.
    #[schema(example = "hub")]
    registry: Option<String>,
    /// `pull` (default: from the registry into this one) or `push` (local
    /// tags to the registry, when events write them and on `…/run`).
    #[schema(example = "pull")]
    direction: Option<String>,
    /// Pull: an upstream repository, or a glob over repository names
    /// (`*` within a path segment, `**` across them; listed through
    /// `/v2/_catalog`). Push: a local repository or a glob over local ones.
    #[schema(example = "library/alpine")]
    source: Option<String>,
    /// Tag globs (`*`, `?`, `[a-z]`, `{a,b}`).
    #[schema(example = json!(["3.*", "latest"]))]
    tags: Option<Vec<String>>,
    /// Where images go: a repository (`mirror/alpine`, for a single
    /// source), or a namespace the source repository's name goes under
    /// (`mirror` → `mirror/library/alpine`); here for a pull, on the
    /// registry for a push.
    #[schema(example = "mirror")]
    target: Option<String>,
    /// Pull only: import only images a signature of one of these keys,
    /// accounts or teams verifies (accounts and teams must exist).
    require_signed_by: Option<RequireSignedBy>,
    /// Seconds between scheduled runs (5 or more); 0 runs only when asked.
    interval_secs: Option<i64>,
    enabled: Option<bool>,
}

/// Signers required: keys, with their ids, accounts and teams.
#[derive(Serialize, ToSchema)]
pub(crate) struct RequiredKeys {
    keys: Vec<String>,
    /// `sha256:<hex>` of each key's DER, as run records name them.
    key_ids: Vec<String>,
    accounts: Vec<String>,
    teams: Vec<String>,
}

/// A replication rule as the API shows it.
#[derive(Serialize, ToSchema)]
pub(crate) struct RuleView {
    id: String,
    name: String,
    registry: String,
    direction: String,
    source: String,
    tags: Vec<String>,
    target: String,
    require_signed_by: Option<RequiredKeys>,
    interval_secs: i64,
    enabled: bool,
    /// A run holds the rule now.
    running: bool,
    last_run_at: Option<i64>,
    created_by: String,
    created_at: i64,
    updated_at: i64,
}

/// A run of a rule.
#[derive(Serialize, ToSchema)]
pub(crate) struct RunView {
    id: String,
    rule_id: String,
    /// `manual`, `schedule`, or `event` (a push rule's queued pushes).
    cause: String,
    started_at: i64,
    finished_at: Option<i64>,
    /// `running`, `completed`, or `failed` (something could not be copied,
    /// or the upstream could not be listed).
    status: String,
    /// Tags imported, with the key that verified each.
    copied: Vec<RunItem>,
    /// Tags whose upstream digest the local tag already has.
    skipped: Vec<RunItem>,
    /// Tags not imported, each with its reason (a signature missing or by
    /// another key; a digest mismatch; an upstream error).
    refused: Vec<RunItem>,
    /// Bytes of blobs downloaded by a pull (blobs held here are linked, not
    /// counted) or uploaded by a push (blobs the remote has, or mounted
    /// there, not counted).
    bytes: i64,
    error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RunStarted {
    run_id: String,
}

fn rule_json(r: &ReplicationRule) -> serde_json::Value {
    let by = &r.require_signers;
    let required = !r.require_keys.is_empty() || !by.accounts.is_empty() || !by.teams.is_empty();
    let require = required.then(|| RequiredKeys {
        keys: r.require_keys.clone(),
        key_ids: r
            .require_keys
            .iter()
            .filter_map(|k| PublicKey::from_pem(k).ok().map(|k| k.id))
            .collect(),
        accounts: by.accounts.clone(),
        teams: by.teams.clone(),
    });
    to_json(&RuleView {
        id: r.id.clone(),
        name: r.name.clone(),
        registry: r.registry.clone(),
        direction: r.direction.clone(),
        source: r.source.clone(),
        tags: r.tags.clone(),
        target: r.target.clone(),
        require_signed_by: require,
        interval_secs: r.interval_secs,
        enabled: r.enabled,
        running: r.running_since.is_some(),
        last_run_at: r.last_run_at,
        created_by: r.created_by.clone(),
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

fn run_json(r: &ReplicationRun) -> serde_json::Value {
    let items = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap_or(json!([]));
    json!({
        "id": r.id, "rule_id": r.rule_id, "cause": r.cause, "started_at": r.started_at,
        "finished_at": r.finished_at, "status": r.status, "copied": items(&r.copied),
        "skipped": items(&r.skipped), "refused": items(&r.refused), "bytes": r.bytes, "error": r.error,
    })
}

/// Applies a request to a rule (new or existing), checking every field.
async fn apply_rule(reg: &Registry, r: &mut ReplicationRule, b: RuleBody) -> Result<(), RegistryError> {
    if let Some(n) = b.name {
        valid_name("name", &n)?;
        r.name = n;
    }
    if let Some(registry) = b.registry {
        if reg.meta.upstream_registry(&registry).await?.is_none() {
            return Err(RegistryError::Invalid(format!("no such registry: {registry}")));
        }
        r.registry = registry;
    }
    if let Some(d) = b.direction {
        match d.as_str() {
            "pull" | "push" => r.direction = d,
            other => return Err(RegistryError::Invalid(format!("direction {other:?}: pull or push"))),
        }
    }
    if let Some(s) = b.source {
        if s.is_empty() || s.len() > 255 || s.starts_with('/') || s.contains(char::is_whitespace) {
            return Err(RegistryError::Invalid(format!("source {s:?}: a repository or a glob")));
        }
        if is_glob(&s) {
            source_matcher(&s).map_err(RegistryError::Invalid)?;
        } else {
            s.parse::<portcullis_oci::RepositoryName>()
                .map_err(|e| RegistryError::Invalid(format!("source: {e}")))?;
        }
        r.source = s;
    }
    if let Some(tags) = b.tags {
        if tags.is_empty() {
            return Err(RegistryError::Invalid("tags: at least one glob (`*` for all)".into()));
        }
        portcullis_policy::parse_patterns(&tags, "tags").map_err(|e| RegistryError::Invalid(format!("tags: {e}")))?;
        r.tags = tags;
    }
    if let Some(t) = b.target {
        r.target = t.trim_end_matches('/').to_string();
    }
    // The target must name repositories here, whatever the upstream lists.
    local_repository(&r.source, &r.target, "x/y").map_err(|e| RegistryError::Invalid(format!("target: {e}")))?;
    if let Some(req) = b.require_signed_by {
        if req.keys.len() > 16 || req.accounts.len() + req.teams.len() > 16 {
            return Err(RegistryError::Invalid(
                "require_signed_by: at most 16 keys and 16 accounts and teams".into(),
            ));
        }
        for k in &req.keys {
            PublicKey::from_pem(k).map_err(|e| RegistryError::Invalid(format!("require_signed_by: {e}")))?;
        }
        let by = portcullis_policy::SignedBy {
            teams: req.teams,
            accounts: req.accounts,
            match_reference: false,
        };
        if !by.teams.is_empty() || !by.accounts.is_empty() {
            // Named as pull rules name them: they must exist now.
            by.check_valid("require_signed_by")
                .map_err(|e| RegistryError::Invalid(e.to_string()))?;
            super::identity::signers_exist(reg, &by, "require_signed_by").await?;
        }
        r.require_keys = req.keys;
        r.require_signers = by;
    }
    // A push sends what is here; signatures are asked of what comes in.
    let requires_signatures =
        !r.require_keys.is_empty() || !r.require_signers.accounts.is_empty() || !r.require_signers.teams.is_empty();
    if r.direction == "push" && requires_signatures {
        return Err(RegistryError::Invalid(
            "require_signed_by applies to pull rules; a push rule sends what is here (use pull rules on the source)"
                .into(),
        ));
    }
    if let Some(i) = b.interval_secs {
        if i != 0 && !(5..=366 * 86_400).contains(&i) {
            return Err(RegistryError::Invalid(
                "interval_secs: 0 (runs only when asked) or 5 to a year".into(),
            ));
        }
        r.interval_secs = i;
    }
    if let Some(e) = b.enabled {
        r.enabled = e;
    }
    Ok(())
}

/// The namespace a pull rule writes into: its target's, or the target
/// itself when it names a namespace.
fn target_namespace(target: &str) -> &str {
    target.split_once('/').map_or(target, |(ns, _)| ns)
}

/// What managing rule `r` takes: a pull rule writes into its target's
/// namespace, so that namespace's administrators manage it (and system
/// administrators); a push rule sends this registry's content out with
/// the registry's credentials, so only system administrators do.
fn rule_need(r: &ReplicationRule) -> Need<'_> {
    if r.direction == "push" {
        Need::System
    } else {
        Need::Namespace(target_namespace(&r.target), Role::Admin)
    }
}

async fn find_rule(reg: &Registry, id: &str) -> Result<ReplicationRule, RegistryError> {
    reg.meta
        .replication_rule(id)
        .await?
        .ok_or_else(|| RegistryError::Absent(format!("no such replication rule: {id}")))
}

/// Rule `id`, if the caller may manage it. Whether a rule exists is
/// told only to an authenticated caller (as repositories are).
async fn find_managed_rule(reg: &Registry, who: &Who, id: &str) -> Result<ReplicationRule, RegistryError> {
    who.need(reg, Need::Authenticated).await?;
    let r = find_rule(reg, id).await?;
    who.need(reg, rule_need(&r)).await?;
    Ok(r)
}

fn rule_detail(r: &ReplicationRule) -> String {
    format!(
        "{} {} registry={} direction={} source={} tags={} target={} keys={} signers={} interval={} enabled={}",
        r.id,
        r.name,
        r.registry,
        r.direction,
        r.source,
        r.tags.join(","),
        r.target,
        r.require_keys.len(),
        crate::pull::signers_text(&r.require_signers),
        r.interval_secs,
        r.enabled
    )
}

#[utoipa::path(
    get,
    path = "/api/v1/replication-rules",
    tag = "replication",
    responses((status = 200, description = "The replication rules the caller manages (all, for a system administrator)", body = [RuleView])),
)]
pub(crate) async fn replication_rule_list(State(reg): State<Arc<Registry>>, who: Who) -> ApiResult {
    who.need(&reg, Need::Authenticated).await?;
    let mut list = Vec::new();
    for r in reg.meta.replication_rules().await? {
        match who.need(&reg, rule_need(&r)).await {
            Ok(()) => list.push(rule_json(&r)),
            Err(RegistryError::Denied(_) | RegistryError::Unauthorized(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(reply(StatusCode::OK, json!(list)))
}

#[utoipa::path(
    post,
    path = "/api/v1/replication-rules",
    tag = "replication",
    request_body(content = RuleBody, description = "`name`, `registry`, `source`, `tags` and `target` are required"),
    responses((status = 201, description = "The rule", body = RuleView)),
)]
pub(crate) async fn replication_rule_create(State(reg): State<Arc<Registry>>, who: Who, body: Bytes) -> ApiResult {
    who.need(&reg, Need::Authenticated).await?;
    let b: RuleBody = json_body(&body)?;
    // Who may create it depends on where it writes: asked before anything
    // else of the body is looked up.
    let prospective = ReplicationRule {
        direction: b.direction.clone().unwrap_or_else(|| "pull".into()),
        target: b.target.clone().unwrap_or_default().trim_end_matches('/').to_string(),
        ..ReplicationRule::default()
    };
    who.need(&reg, rule_need(&prospective)).await?;
    if b.name.is_none() || b.registry.is_none() || b.source.is_none() || b.tags.is_none() || b.target.is_none() {
        return Err(RegistryError::Invalid(
            "a rule needs name, registry, source, tags and target".into(),
        ));
    }
    let now = portcullis_meta::now_ms();
    let mut r = ReplicationRule {
        id: uuid::Uuid::new_v4().simple().to_string()[..16].to_string(),
        direction: "pull".into(),
        enabled: true,
        created_by: who.actor.name.clone(),
        created_at: now,
        updated_at: now,
        ..ReplicationRule::default()
    };
    apply_rule(&reg, &mut r, b).await?;
    let ev = who.actor.event("replication_rule.create").detail(rule_detail(&r));
    reg.meta.create_replication_rule(&r, &ev).await?;
    Ok(reply(StatusCode::CREATED, rule_json(&r)))
}

#[utoipa::path(
    get,
    path = "/api/v1/replication-rules/{id}",
    tag = "replication",
    params(("id" = String, Path, description = "The rule's id")),
    responses((status = 200, description = "The rule", body = RuleView)),
)]
pub(crate) async fn replication_rule_get(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path(id): Path<String>,
) -> ApiResult {
    let r = find_managed_rule(&reg, &who, &id).await?;
    Ok(reply(StatusCode::OK, rule_json(&r)))
}

#[utoipa::path(
    put,
    path = "/api/v1/replication-rules/{id}",
    tag = "replication",
    params(("id" = String, Path, description = "The rule's id")),
    request_body(content = RuleBody, description = "The fields to change"),
    responses((status = 200, description = "The rule now", body = RuleView)),
)]
pub(crate) async fn replication_rule_update(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let mut r = find_managed_rule(&reg, &who, &id).await?;
    let b: RuleBody = json_body(&body)?;
    apply_rule(&reg, &mut r, b).await?;
    // And where it writes now: a rule is not moved into another namespace.
    who.need(&reg, rule_need(&r)).await?;
    let ev = who.actor.event("replication_rule.update").detail(rule_detail(&r));
    if !reg.meta.update_replication_rule(&r, &ev).await? {
        return Err(RegistryError::Absent(format!("no such replication rule: {id}")));
    }
    Ok(reply(StatusCode::OK, rule_json(&find_rule(&reg, &id).await?)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/replication-rules/{id}",
    tag = "replication",
    params(("id" = String, Path, description = "The rule's id")),
    responses((status = 204, description = "Deleted with its runs (what it imported stays)")),
)]
pub(crate) async fn replication_rule_delete(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path(id): Path<String>,
) -> ApiResult {
    let r = find_managed_rule(&reg, &who, &id).await?;
    let ev = who
        .actor
        .event("replication_rule.delete")
        .detail(format!("{} {}", r.id, r.name));
    if !reg.meta.delete_replication_rule(&id, &ev).await? {
        return Err(RegistryError::Absent(format!("no such replication rule: {id}")));
    }
    Ok(reply(StatusCode::NO_CONTENT, json!(null)))
}

/// `POST …/run`: starts a run now (409 while one runs).
#[utoipa::path(
    post,
    path = "/api/v1/replication-rules/{id}/run",
    tag = "replication",
    params(("id" = String, Path, description = "The rule's id")),
    responses((status = 202, description = "The run started; its record is under …/runs", body = RunStarted)),
)]
pub(crate) async fn replication_rule_run(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path(id): Path<String>,
) -> ApiResult {
    let r = find_managed_rule(&reg, &who, &id).await?;
    let run_id = reg.start_replication(r, "manual", who.actor.clone()).await?;
    Ok(reply(StatusCode::ACCEPTED, to_json(&RunStarted { run_id })))
}

#[utoipa::path(
    get,
    path = "/api/v1/replication-rules/{id}/runs",
    tag = "replication",
    params(("id" = String, Path, description = "The rule's id")),
    responses((status = 200, description = "The latest 50 runs, newest first", body = [RunView])),
)]
pub(crate) async fn replication_rule_runs(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path(id): Path<String>,
) -> ApiResult {
    find_managed_rule(&reg, &who, &id).await?;
    let list: Vec<_> = reg.meta.replication_runs(&id, 50).await?.iter().map(run_json).collect();
    Ok(reply(StatusCode::OK, json!(list)))
}

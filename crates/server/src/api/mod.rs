//! The management API (`/api/v1/…`, JSON). Every handler names what it
//! needs and asks [`Registry::authorize`]; the router is built from
//! [`ENDPOINTS`], so an endpoint cannot exist without its row there (and the
//! authorization matrix test checks it has a row of its own).

mod admission;
mod browse;
mod identity;
mod openapi;
mod policies;
mod registry_keys;
mod replication;
mod scans;
mod vulndb_sources;
mod webhooks;

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use portcullis_meta::AuditQuery;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::access::{Actor, Caller, Need, Principal};
use crate::token::LoginRecord;
use crate::{Registry, RegistryError};

/// `(method, path, name)` of every management endpoint.
pub const ENDPOINTS: &[(&str, &str, &str)] = &[
    ("GET", "/api/v1/openapi.json", "openapi"),
    ("GET", "/api/v1/users", "user_list"),
    ("POST", "/api/v1/users", "user_create"),
    ("GET", "/api/v1/users/{name}", "user_get"),
    ("DELETE", "/api/v1/users/{name}", "user_delete"),
    ("PUT", "/api/v1/users/{name}/password", "user_password"),
    ("POST", "/api/v1/orgs", "org_create"),
    ("GET", "/api/v1/orgs/{org}", "org_get"),
    ("DELETE", "/api/v1/orgs/{org}", "org_delete"),
    ("GET", "/api/v1/orgs/{org}/teams", "team_list"),
    ("POST", "/api/v1/orgs/{org}/teams", "team_create"),
    ("DELETE", "/api/v1/orgs/{org}/teams/{team}", "team_delete"),
    ("GET", "/api/v1/orgs/{org}/teams/{team}/keys", "team_keys"),
    ("GET", "/api/v1/orgs/{org}/teams/{team}/members", "member_list"),
    ("PUT", "/api/v1/orgs/{org}/teams/{team}/members/{account}", "member_add"),
    (
        "DELETE",
        "/api/v1/orgs/{org}/teams/{team}/members/{account}",
        "member_remove",
    ),
    ("GET", "/api/v1/namespaces/{ns}/grants", "grant_list"),
    ("POST", "/api/v1/namespaces/{ns}/grants", "grant_create"),
    ("DELETE", "/api/v1/namespaces/{ns}/grants/{id}", "grant_delete"),
    ("GET", "/api/v1/namespaces/{ns}/settings", "namespace_settings_get"),
    ("PUT", "/api/v1/namespaces/{ns}/settings", "namespace_settings_update"),
    (
        "GET",
        "/api/v1/namespaces/{ns}/service-accounts",
        "service_account_list",
    ),
    (
        "POST",
        "/api/v1/namespaces/{ns}/service-accounts",
        "service_account_create",
    ),
    (
        "DELETE",
        "/api/v1/namespaces/{ns}/service-accounts/{name}",
        "service_account_delete",
    ),
    ("GET", "/api/v1/accounts/{account}/tokens", "token_list"),
    ("POST", "/api/v1/accounts/{account}/tokens", "token_create"),
    ("DELETE", "/api/v1/accounts/{account}/tokens/{id}", "token_revoke"),
    ("GET", "/api/v1/accounts/{account}/keys", "key_list"),
    ("POST", "/api/v1/accounts/{account}/keys", "key_add"),
    ("DELETE", "/api/v1/accounts/{account}/keys/{id}", "key_revoke"),
    ("POST", "/api/v1/accounts/{account}/signing-key", "signing_key_create"),
    ("GET", "/api/v1/accounts/{account}/signing-key", "signing_key_get"),
    ("GET", "/api/v1/keys/registry", "registry_keys_get"),
    ("POST", "/api/v1/keys/registry", "registry_key_rotate"),
    ("GET", "/api/v1/repositories", "repository_list"),
    ("GET", "/api/v1/repositories/{*name}", "repository_get"),
    ("PUT", "/api/v1/repositories/{*name}", "repository_update"),
    ("DELETE", "/api/v1/repositories/{*name}", "repository_delete"),
    ("GET", "/api/v1/repositories/{*name}/policies", "policy_list"),
    ("POST", "/api/v1/repositories/{*name}/policies", "policy_create"),
    ("GET", "/api/v1/repositories/{*name}/policies/{id}", "policy_get"),
    ("PUT", "/api/v1/repositories/{*name}/policies/{id}", "policy_update"),
    ("DELETE", "/api/v1/repositories/{*name}/policies/{id}", "policy_delete"),
    (
        "POST",
        "/api/v1/repositories/{*name}/policies/{id}/apply",
        "policy_apply",
    ),
    (
        "POST",
        "/api/v1/repositories/{*name}/policies/{id}/dry-run",
        "policy_dry_run",
    ),
    (
        "GET",
        "/api/v1/repositories/{*name}/policies/{id}/evaluations",
        "policy_evaluations",
    ),
    ("GET", "/api/v1/repositories/{*name}/tags", "tag_list"),
    ("GET", "/api/v1/repositories/{*name}/history", "repository_history"),
    (
        "GET",
        "/api/v1/repositories/{*name}/referrers/{digest}",
        "referrer_list",
    ),
    ("GET", "/api/v1/repositories/{*name}/tags/{tag}", "tag_get"),
    ("GET", "/api/v1/repositories/{*name}/webhooks", "repository_webhooks"),
    (
        "POST",
        "/api/v1/repositories/{*name}/webhooks",
        "repository_webhook_create",
    ),
    ("GET", "/api/v1/namespaces/{ns}/webhooks", "namespace_webhooks"),
    ("POST", "/api/v1/namespaces/{ns}/webhooks", "namespace_webhook_create"),
    ("GET", "/api/v1/webhooks/{id}", "webhook_get"),
    ("PUT", "/api/v1/webhooks/{id}", "webhook_update"),
    ("DELETE", "/api/v1/webhooks/{id}", "webhook_delete"),
    ("POST", "/api/v1/webhooks/{id}/test", "webhook_test"),
    ("GET", "/api/v1/webhooks/{id}/deliveries", "webhook_deliveries"),
    (
        "POST",
        "/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver",
        "webhook_redeliver",
    ),
    ("GET", "/api/v1/audit", "audit_list"),
    ("GET", "/api/v1/audit/verify", "audit_verify"),
    ("GET", "/api/v1/vulndb", "vulndb_status"),
    ("POST", "/api/v1/vulndb", "vulndb_import"),
    ("GET", "/api/v1/vulndb/sources", "vulndb_sources_get"),
    ("PUT", "/api/v1/vulndb/sources", "vulndb_sources_set"),
    ("GET", "/api/v1/scanner", "scanner_status"),
    ("POST", "/api/v1/admission", "admission"),
    ("GET", "/api/v1/scans/{digest}", "scan_get"),
    ("POST", "/api/v1/scans/{digest}", "scan_request"),
    ("GET", "/api/v1/scans/{digest}/layers", "scan_layers"),
    ("GET", "/api/v1/scans/{digest}/components", "scan_components"),
    ("GET", "/api/v1/scans/{digest}/vulnerabilities", "scan_vulnerabilities"),
    ("GET", "/api/v1/scans/{digest}/sbom", "scan_sbom"),
    ("GET", "/api/v1/registries", "registry_list"),
    ("POST", "/api/v1/registries", "registry_create"),
    ("GET", "/api/v1/registries/{name}", "registry_get"),
    ("PUT", "/api/v1/registries/{name}", "registry_update"),
    ("DELETE", "/api/v1/registries/{name}", "registry_delete"),
    ("POST", "/api/v1/registries/{name}/test", "registry_test"),
    ("GET", "/api/v1/replication-rules", "replication_rule_list"),
    ("POST", "/api/v1/replication-rules", "replication_rule_create"),
    ("GET", "/api/v1/replication-rules/{id}", "replication_rule_get"),
    ("PUT", "/api/v1/replication-rules/{id}", "replication_rule_update"),
    ("DELETE", "/api/v1/replication-rules/{id}", "replication_rule_delete"),
    ("POST", "/api/v1/replication-rules/{id}/run", "replication_rule_run"),
    ("GET", "/api/v1/replication-rules/{id}/runs", "replication_rule_runs"),
];

fn handler(name: &str, m: MethodFilter) -> MethodRouter<Arc<Registry>> {
    use identity::*;
    use scans::*;
    match name {
        "openapi" => on(m, openapi::openapi_json),
        "registry_keys_get" => on(m, registry_keys::registry_keys_get),
        "registry_key_rotate" => on(m, registry_keys::registry_key_rotate),
        "user_list" => on(m, user_list),
        "user_create" => on(m, user_create),
        "user_get" => on(m, user_get),
        "user_delete" => on(m, user_delete),
        "user_password" => on(m, user_password),
        "org_create" => on(m, org_create),
        "org_get" => on(m, org_get),
        "org_delete" => on(m, org_delete),
        "team_list" => on(m, team_list),
        "team_create" => on(m, team_create),
        "team_delete" => on(m, team_delete),
        "member_list" => on(m, member_list),
        "member_add" => on(m, member_add),
        "member_remove" => on(m, member_remove),
        "grant_list" => on(m, grant_list),
        "grant_create" => on(m, grant_create),
        "grant_delete" => on(m, grant_delete),
        "namespace_settings_get" => on(m, namespace_settings_get),
        "namespace_settings_update" => on(m, namespace_settings_update),
        "service_account_list" => on(m, service_account_list),
        "service_account_create" => on(m, service_account_create),
        "service_account_delete" => on(m, service_account_delete),
        "token_list" => on(m, token_list),
        "token_create" => on(m, token_create),
        "token_revoke" => on(m, token_revoke),
        "key_list" => on(m, key_list),
        "key_add" => on(m, key_add),
        "key_revoke" => on(m, key_revoke),
        "signing_key_create" => on(m, signing_key_create),
        "signing_key_get" => on(m, signing_key_get),
        "team_keys" => on(m, team_keys),
        "audit_list" => on(m, audit_list),
        "audit_verify" => on(m, audit_verify),
        "repository_list" => on(m, browse::repository_list),
        "vulndb_status" => on(m, browse::vulndb_status),
        "vulndb_import" => on(m, browse::vulndb_import),
        "vulndb_sources_get" => on(m, vulndb_sources::vulndb_sources_get),
        "vulndb_sources_set" => on(m, vulndb_sources::vulndb_sources_set),
        "scanner_status" => on(m, browse::scanner_status),
        "admission" => on(m, admission::admission),
        "namespace_webhooks" => on(m, webhooks::namespace_webhooks),
        "namespace_webhook_create" => on(m, webhooks::namespace_webhook_create),
        "webhook_get" => on(m, webhooks::webhook_get),
        "webhook_update" => on(m, webhooks::webhook_update),
        "webhook_delete" => on(m, webhooks::webhook_delete),
        "webhook_test" => on(m, webhooks::webhook_test),
        "webhook_deliveries" => on(m, webhooks::webhook_deliveries),
        "webhook_redeliver" => on(m, webhooks::webhook_redeliver),
        "scan_get" => on(m, scan_get),
        "scan_request" => on(m, scan_request),
        "scan_layers" => on(m, scan_layers),
        "scan_components" => on(m, scan_components),
        "scan_vulnerabilities" => on(m, scan_vulnerabilities),
        "scan_sbom" => on(m, scan_sbom),
        "registry_list" => on(m, replication::registry_list),
        "registry_create" => on(m, replication::registry_create),
        "registry_get" => on(m, replication::registry_get),
        "registry_update" => on(m, replication::registry_update),
        "registry_delete" => on(m, replication::registry_delete),
        "registry_test" => on(m, replication::registry_test),
        "replication_rule_list" => on(m, replication::replication_rule_list),
        "replication_rule_create" => on(m, replication::replication_rule_create),
        "replication_rule_get" => on(m, replication::replication_rule_get),
        "replication_rule_update" => on(m, replication::replication_rule_update),
        "replication_rule_delete" => on(m, replication::replication_rule_delete),
        "replication_rule_run" => on(m, replication::replication_rule_run),
        "replication_rule_runs" => on(m, replication::replication_rule_runs),
        other => unreachable!("endpoint {other} has no handler"),
    }
}

fn method_filter(method: &str) -> MethodFilter {
    match method {
        "GET" => MethodFilter::GET,
        "POST" => MethodFilter::POST,
        "PUT" => MethodFilter::PUT,
        "DELETE" => MethodFilter::DELETE,
        other => unreachable!("method {other}"),
    }
}

/// Routes under a repository name, which may itself contain `/`: one
/// catch-all route, split at the most specific suffix that matches (as the
/// registry API splits at its route keywords).
const REPOSITORY_PREFIX: &str = "/api/v1/repositories/{*name}";

pub(crate) fn router() -> Router<Arc<Registry>> {
    let mut by_path: Vec<(&str, MethodRouter<Arc<Registry>>)> = Vec::new();
    for (method, path, name) in ENDPOINTS.iter().filter(|(_, p, _)| !p.starts_with(REPOSITORY_PREFIX)) {
        let one = handler(name, method_filter(method));
        match by_path.iter_mut().find(|(p, _)| p == path) {
            Some((_, mr)) => *mr = std::mem::take(mr).merge(one),
            None => by_path.push((path, one)),
        }
    }
    let methods = ENDPOINTS
        .iter()
        .filter(|(_, p, _)| p.starts_with(REPOSITORY_PREFIX))
        .map(|(m, _, _)| method_filter(m))
        .reduce(MethodFilter::or)
        .expect("repository routes");
    by_path
        .into_iter()
        .fold(Router::new(), |r, (path, mr)| r.route(path, mr))
        .route(REPOSITORY_PREFIX, on(methods, repository_routes))
}

/// The repository endpoint a method and path reach: its name, the
/// repository name and the path parameters after it. `rest` is the path
/// after `/api/v1/repositories/` as sent, split before decoding, so a
/// segment may carry an encoded `/`: `team%2Fpolicies` names the repository
/// `team/policies`, which `team/policies` (the policies of `team`) shadows.
fn repository_endpoint(method: &str, rest: &str) -> Option<(&'static str, String, Vec<String>)> {
    let segments: Vec<String> = rest
        .trim_matches('/')
        .split('/')
        .map(|s| Some(percent_encoding::percent_decode_str(s).decode_utf8().ok()?.into_owned()))
        .collect::<Option<_>>()?;
    let mut candidates: Vec<(&str, Vec<&str>)> = ENDPOINTS
        .iter()
        .filter(|(m, p, _)| *m == method && p.starts_with(REPOSITORY_PREFIX))
        .map(|(_, p, n)| {
            (
                *n,
                p[REPOSITORY_PREFIX.len()..]
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .collect(),
            )
        })
        .collect();
    candidates.sort_by_key(|(_, suffix)| std::cmp::Reverse(suffix.len()));
    for (name, suffix) in candidates {
        if segments.len() <= suffix.len() {
            continue;
        }
        let tail = &segments[segments.len() - suffix.len()..];
        let mut params = Vec::new();
        let matched = suffix.iter().zip(tail).all(|(p, t)| {
            if p.starts_with('{') {
                params.push(t.clone());
                !t.is_empty()
            } else {
                p == t
            }
        });
        if matched {
            return Some((name, segments[..segments.len() - suffix.len()].join("/"), params));
        }
    }
    None
}

async fn repository_routes(
    State(reg): State<Arc<Registry>>,
    who: Who,
    method: axum::http::Method,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> ApiResult {
    use identity::{repository_delete, repository_get, repository_update};
    use policies::*;
    let rest = uri.path().strip_prefix("/api/v1/repositories/").unwrap_or_default();
    let Some((endpoint, name, params)) = repository_endpoint(method.as_str(), rest) else {
        return Err(RegistryError::NotFound);
    };
    let reg = &*reg;
    let who = &who;
    let p = |i: usize| params.get(i).map(String::as_str).unwrap_or_default();
    match endpoint {
        "repository_get" => repository_get(reg, who, &name).await,
        "repository_update" => repository_update(reg, who, &name, &body).await,
        "repository_delete" => repository_delete(reg, who, &name).await,
        "policy_list" => policy_list(reg, who, &name).await,
        "policy_create" => policy_create(reg, who, &name, &body).await,
        "policy_get" => policy_get(reg, who, &name, p(0)).await,
        "policy_update" => policy_update(reg, who, &name, p(0), &body).await,
        "policy_delete" => policy_delete(reg, who, &name, p(0)).await,
        "policy_apply" => policy_apply(reg, who, &name, p(0)).await,
        "policy_dry_run" => policy_dry_run(reg, who, &name, p(0), &body).await,
        "policy_evaluations" => policy_evaluations(reg, who, &name, p(0), uri.query().unwrap_or("")).await,
        "tag_get" => tag_get(reg, who, &name, p(0)).await,
        "tag_list" => browse::tag_list(reg, who, &name, uri.query().unwrap_or("")).await,
        "referrer_list" => browse::referrer_list(reg, who, &name, p(0)).await,
        "repository_history" => browse::repository_history(reg, who, &name, uri.query().unwrap_or("")).await,
        "repository_webhooks" => webhooks::repository_webhooks(reg, who, &name).await,
        "repository_webhook_create" => webhooks::repository_webhook_create(reg, who, &name, &body).await,
        other => unreachable!("repository endpoint {other} has no handler"),
    }
}

#[cfg(test)]
mod tests {
    use super::repository_endpoint;

    /// Paths under a repository name split at the most specific suffix.
    #[test]
    fn repository_route_table() {
        let table = [
            ("GET", "acme/app", Some(("repository_get", "acme/app", vec![]))),
            ("GET", "a/b/c", Some(("repository_get", "a/b/c", vec![]))),
            ("GET", "acme/app/policies", Some(("policy_list", "acme/app", vec![]))),
            ("POST", "acme/app/policies", Some(("policy_create", "acme/app", vec![]))),
            (
                "GET",
                "acme/app/policies/p1",
                Some(("policy_get", "acme/app", vec!["p1"])),
            ),
            (
                "POST",
                "acme/app/policies/p1/apply",
                Some(("policy_apply", "acme/app", vec!["p1"])),
            ),
            (
                "POST",
                "acme/app/policies/p1/dry-run",
                Some(("policy_dry_run", "acme/app", vec!["p1"])),
            ),
            (
                "GET",
                "acme/app/policies/p1/evaluations",
                Some(("policy_evaluations", "acme/app", vec!["p1"])),
            ),
            ("GET", "acme/app/tags/v1", Some(("tag_get", "acme/app", vec!["v1"]))),
            ("GET", "acme/app/tags", Some(("tag_list", "acme/app", vec![]))),
            (
                "GET",
                "acme/app/referrers/sha256:ab",
                Some(("referrer_list", "acme/app", vec!["sha256:ab"])),
            ),
            ("POST", "acme/app", None),
            ("POST", "policies", None),
            // An encoded `/` stays inside its segment: names the route
            // keywords would shadow are reachable.
            (
                "GET",
                "team%2Fpolicies",
                Some(("repository_get", "team/policies", vec![])),
            ),
            ("GET", "team/policies", Some(("policy_list", "team", vec![]))),
            ("GET", "acme%2Fapp/policies", Some(("policy_list", "acme/app", vec![]))),
            ("GET", "a/tags%2Fv1", Some(("repository_get", "a/tags/v1", vec![]))),
            ("GET", "acme/app/tags/v%31", Some(("tag_get", "acme/app", vec!["v1"]))),
            ("GET", "a/%FF", None),
        ];
        for (method, rest, want) in table {
            let got = repository_endpoint(method, rest);
            let want = want.map(|(n, r, p): (&str, &str, Vec<&str>)| {
                (n, r.to_string(), p.into_iter().map(String::from).collect::<Vec<_>>())
            });
            assert_eq!(got, want, "{method} {rest}");
        }
    }
}

/// The authenticated (or anonymous) caller of a management request.
pub(crate) struct Who {
    pub caller: Caller,
    pub actor: Actor,
}

impl FromRequestParts<Arc<Registry>> for Who {
    type Rejection = RegistryError;
    async fn from_request_parts(parts: &mut Parts, reg: &Arc<Registry>) -> Result<Who, RegistryError> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        if let Some(on_behalf) = parts.extensions.get::<crate::inproc::OnBehalfOf>() {
            // The web UI's session vetted this account for this request.
            let caller = Caller::Account(Principal::full(on_behalf.account.clone(), None));
            let actor = caller.actor(on_behalf.address.clone());
            return Ok(Who { caller, actor });
        }
        let addr = reg.access.settings.trusted_proxies.client(peer, &parts.headers);
        // A password (Basic) logs in like the token endpoint does: throttled,
        // failures audited. A success writes no `login` record per request
        // (`curl -u` would flood the trail); the action's own record says
        // `via: password`. Bearer credentials are API tokens, or registry
        // tokens limited to their repositories (`Principal::registry_access`).
        let basic = crate::header_str(&parts.headers, "authorization").is_some_and(|v| v.starts_with("Basic "));
        let mut via = None;
        let principal = match basic
            .then(|| crate::token::basic(&parts.headers))
            .transpose()?
            .flatten()
        {
            Some((user, password)) => {
                let p = crate::token::login(reg, &user, &password, addr.clone(), LoginRecord::Occasionally).await?;
                // As on the bearer path: a refresh token (an unscoped token
                // that is not a password) is for the token endpoint only.
                if p.token_id.is_some() && p.scopes.is_none() {
                    return Err(RegistryError::Unauthorized(
                        "a refresh token is exchanged at the token endpoint, not sent as a password".into(),
                    ));
                }
                // A token sent as the password is named by its id already.
                via = p.token_id.is_none().then_some("password");
                Some(p)
            }
            None => reg.principal(&reg.authenticate(&parts.headers).await?).await?,
        };
        let caller = principal.map_or(Caller::Anonymous, Caller::Account);
        let mut actor = caller.actor(addr);
        actor.via = via;
        Ok(Who { caller, actor })
    }
}

impl Who {
    pub async fn need(&self, reg: &Registry, need: Need<'_>) -> Result<(), RegistryError> {
        reg.authorize(&self.caller, need).await
    }
}

pub(crate) type ApiResult = Result<Response, RegistryError>;

pub(crate) fn json_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RegistryError> {
    serde_json::from_slice(bytes).map_err(|e| RegistryError::Invalid(format!("request body: {e}")))
}

pub(crate) fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (status, [("content-type", "application/json")], body.to_string()).into_response()
}

/// A typed response body, rendered through a `Value` (keys sorted, as
/// every `reply` body is).
pub(crate) fn to_json<T: Serialize>(body: &T) -> serde_json::Value {
    serde_json::to_value(body).expect("a response body is JSON")
}

/// The path parameter of a repository route: the catch-all `{*name}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct RepositoryPath {
    /// A repository name, which may contain `/` (`acme/app`,
    /// `acme/team/app`), sent as it is.
    #[param(example = "acme/app")]
    name: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditParams {
    /// Only records by this account (or `system`, `anonymous`).
    actor: Option<String>,
    /// Only records about this repository.
    repository: Option<String>,
    /// Only records of this action (`push`, `login`, `token.create`, …).
    action: Option<String>,
    /// Only records at or after this time (ms).
    since: Option<i64>,
    /// Only records before this time (ms).
    until: Option<i64>,
    /// Oldest first, after this sequence number (the previous page's `next`).
    after: Option<i64>,
    /// Newest first, older than this sequence number (`before=` alone:
    /// from the newest).
    before: Option<String>,
    /// Records per page: 1 to 1000, default 100.
    limit: Option<i64>,
}

/// One audit record.
#[derive(Serialize, ToSchema)]
pub(crate) struct AuditRecordView {
    /// Its place in the chain.
    seq: i64,
    at: i64,
    /// The account that acted (`system` for the server's own work,
    /// `anonymous`).
    actor: String,
    /// The API token it used, if any.
    token_id: Option<String>,
    action: String,
    repository: Option<String>,
    digest: Option<String>,
    /// The client's address.
    address: Option<String>,
    /// `ok`, `failed`, `denied`, …
    result: String,
    detail: Option<String>,
    /// How the actor authenticated, where no `login` record of its own
    /// says so: `password` for a Basic login on the management API.
    via: Option<String>,
    /// The previous record's hash.
    prev_hash: String,
    /// HMAC-SHA-256 (under the audit key) over the fields and `prev_hash`.
    hash: String,
}

/// A page of the audit trail.
#[derive(Serialize, ToSchema)]
pub(crate) struct AuditPage {
    records: Vec<AuditRecordView>,
    /// The `after` (or, paging with `before`, the `before`) of the next
    /// page; `null` on the last one.
    next: Option<i64>,
}

/// Whether the chain is intact.
#[derive(Serialize, ToSchema)]
pub(crate) struct AuditVerification {
    /// Records walked.
    records: i64,
    intact: bool,
    /// Where it breaks, when it does.
    #[serde(rename = "break")]
    broken: Option<AuditBreak>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AuditBreak {
    seq: i64,
    reason: String,
}

/// `GET /api/v1/audit`: the trail, filtered and paged by sequence number.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    params(AuditParams),
    responses((status = 200, description = "A page of records, oldest first (newest first with `before`)", body = AuditPage)),
)]
pub(crate) async fn audit_list(
    State(reg): State<Arc<Registry>>,
    who: Who,
    axum::extract::Query(p): axum::extract::Query<AuditParams>,
) -> ApiResult {
    who.need(&reg, Need::System).await?;
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    let records = reg
        .meta
        .audit_records(&AuditQuery {
            actor: p.actor,
            repository: p.repository,
            action: p.action,
            since_ms: p.since,
            until_ms: p.until,
            after_seq: p.after,
            before_seq: match p.before.as_deref() {
                None => None,
                Some("") => Some(i64::MAX),
                Some(b) => Some(
                    b.parse()
                        .map_err(|_| RegistryError::Invalid("before: a sequence number".into()))?,
                ),
            },
            limit,
        })
        .await?;
    // With `before`, `next` is the `before` of the next (older) page.
    let next = (records.len() as i64 == limit)
        .then(|| records.last().map(|r| r.seq))
        .flatten();
    let records: Vec<_> = records.iter().map(audit_view).collect();
    Ok(reply(StatusCode::OK, to_json(&AuditPage { records, next })))
}

/// `GET /api/v1/audit/verify`: walks the whole chain (as `portcullis
/// audit verify` does) and says whether it is intact, or where it breaks.
#[utoipa::path(
    get,
    path = "/api/v1/audit/verify",
    tag = "audit",
    responses((status = 200, description = "The chain walked", body = AuditVerification)),
)]
pub(crate) async fn audit_verify(State(reg): State<Arc<Registry>>, who: Who) -> ApiResult {
    who.need(&reg, Need::System).await?;
    let (records, broken) = reg.meta.verify_audit().await?;
    let body = AuditVerification {
        records,
        intact: broken.is_none(),
        broken: broken.map(|b| AuditBreak {
            seq: b.seq,
            reason: b.reason,
        }),
    };
    Ok(reply(StatusCode::OK, to_json(&body)))
}

fn audit_view(r: &portcullis_meta::AuditRecord) -> AuditRecordView {
    let e = r.event.clone();
    AuditRecordView {
        seq: r.seq,
        at: r.at,
        actor: e.actor,
        token_id: e.token_id,
        action: e.action,
        repository: e.repository,
        digest: e.digest,
        address: e.address,
        result: e.result,
        detail: e.detail,
        via: e.via,
        prev_hash: r.prev_hash.clone(),
        hash: r.hash.clone(),
    }
}

pub fn audit_json(r: &portcullis_meta::AuditRecord) -> serde_json::Value {
    to_json(&audit_view(r))
}

//! `GET /api/v1/openapi.json`: the management API described as OpenAPI
//! 3.1, generated (utoipa) from the handlers' own `#[utoipa::path]`
//! annotations and their request and response types. The tests below keep
//! it complete: every row of [`super::ENDPOINTS`] (the table the router is
//! built from) has its operation here with the same path parameters, and
//! the document has no operation the table lacks.

use std::sync::{Arc, OnceLock};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{admission, browse, identity, policies, registry_keys, replication, scans, vulndb_sources, webhooks};
use crate::error::{ErrorBody, ErrorEntry};

/// The path of the document itself.
pub(crate) const PATH: &str = "/api/v1/openapi.json";

/// Findings per severity, worst first.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct SeverityCounts {
    critical: u64,
    high: u64,
    medium: u64,
    low: u64,
    unknown: u64,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Portcullis management API",
        description = "JSON under /api/v1/. People call it with their password (HTTP Basic, \
                       throttled and audited like any login), machines with an API token \
                       (`Authorization: Bearer pct_…`); a registry token from /auth/token reaches \
                       only the repositories it was issued for. Times are milliseconds since the \
                       Unix epoch unless said otherwise. Every error is an `ErrorBody`. Request \
                       bodies refuse unknown fields. A repository name (`{name}`) may contain `/` \
                       (`acme/app`, `acme/team/app`): send it as it is; a `/` inside one segment \
                       may be sent as `%2F`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        openapi_json,
        identity::user_list,
        identity::user_create,
        identity::user_get,
        identity::user_delete,
        identity::user_password,
        identity::org_create,
        identity::org_get,
        identity::org_delete,
        identity::team_list,
        identity::team_create,
        identity::team_delete,
        identity::team_keys,
        identity::member_list,
        identity::member_add,
        identity::member_remove,
        identity::grant_list,
        identity::grant_create,
        identity::grant_delete,
        identity::namespace_settings_get,
        identity::namespace_settings_update,
        identity::service_account_list,
        identity::service_account_create,
        identity::service_account_delete,
        identity::token_list,
        identity::token_create,
        identity::token_revoke,
        identity::key_list,
        identity::key_add,
        identity::key_revoke,
        identity::signing_key_create,
        identity::signing_key_get,
        registry_keys::registry_keys_get,
        registry_keys::registry_key_rotate,
        identity::repository_get,
        identity::repository_update,
        identity::repository_delete,
        browse::repository_list,
        browse::tag_list,
        browse::repository_history,
        browse::referrer_list,
        browse::vulndb_status,
        browse::vulndb_import,
        browse::scanner_status,
        policies::policy_list,
        policies::policy_create,
        policies::policy_get,
        policies::policy_update,
        policies::policy_delete,
        policies::policy_apply,
        policies::policy_dry_run,
        policies::policy_evaluations,
        policies::tag_get,
        webhooks::repository_webhooks,
        webhooks::repository_webhook_create,
        webhooks::namespace_webhooks,
        webhooks::namespace_webhook_create,
        webhooks::webhook_get,
        webhooks::webhook_update,
        webhooks::webhook_delete,
        webhooks::webhook_test,
        webhooks::webhook_deliveries,
        webhooks::webhook_redeliver,
        super::audit_list,
        super::audit_verify,
        vulndb_sources::vulndb_sources_get,
        vulndb_sources::vulndb_sources_set,
        admission::admission,
        scans::scan_get,
        scans::scan_request,
        scans::scan_layers,
        scans::scan_components,
        scans::scan_vulnerabilities,
        scans::scan_sbom,
        replication::registry_list,
        replication::registry_create,
        replication::registry_get,
        replication::registry_update,
        replication::registry_delete,
        replication::registry_test,
        replication::replication_rule_list,
        replication::replication_rule_create,
        replication::replication_rule_get,
        replication::replication_rule_update,
        replication::replication_rule_delete,
        replication::replication_rule_run,
        replication::replication_rule_runs,
    ),
    components(schemas(ErrorBody, ErrorEntry, SeverityCounts)),
    modifiers(&Conventions),
    tags(
        (name = "users", description = "User accounts and their passwords"),
        (name = "organizations", description = "Organizations, their teams and team members"),
        (name = "namespaces", description = "A namespace's grants, settings and service accounts"),
        (name = "accounts", description = "API tokens and public keys of an account; server-side signing keys"),
        (name = "repositories", description = "Repositories, their settings, tags, referrers and history"),
        (name = "policies", description = "Promotion policies of a source repository, and what they did"),
        (name = "webhooks", description = "Webhooks of a repository or a namespace, and their deliveries"),
        (name = "audit", description = "The tamper-evident audit trail"),
        (name = "scanning", description = "Scan results, SBOMs, the scanner and the vulnerability database"),
        (name = "replication", description = "Upstream registries and the rules that replicate from them"),
        (name = "admission", description = "The Kubernetes validating admission webhook"),
        (name = "keys", description = "The keys the registry signs its own attestations with"),
        (name = "meta", description = "This document"),
    ),
)]
pub(crate) struct ApiDoc;

/// What every operation shares, added once instead of on each handler:
/// the security schemes (Bearer token, Basic password), the requirement
/// (either, on every operation but this document's), and the error body
/// every refusal carries.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token (`pct_…`), or a registry token from /auth/token (limited to its repositories)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("A user's name and password: a login, throttled and audited"))
                    .build(),
            ),
        );
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    Content::new(Some(RefOr::Ref(Ref::from_schema_name("ErrorBody")))),
                )
                .build()
        };
        for (path, item) in doc.paths.paths.iter_mut() {
            let ops: [&mut Option<Operation>; 4] = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete];
            for (i, op) in ops.into_iter().enumerate() {
                let Some(op) = op else { continue };
                // Served to anyone: this document describes no data, and
                // the registry's public keys are for whoever verifies.
                if path == PATH || (path == "/api/v1/keys/registry" && i == 0) {
                    op.security = Some(Vec::new());
                    continue;
                }
                op.security = Some(vec![
                    SecurityRequirement::new("bearer", Vec::<String>::new()),
                    SecurityRequirement::new("basic", Vec::<String>::new()),
                ]);
                let responses = &mut op.responses.responses;
                responses.entry("401".into()).or_insert_with(|| {
                    error("No credentials, or wrong ones (a `WWW-Authenticate` challenge comes with it)").into()
                });
                responses
                    .entry("403".into())
                    .or_insert_with(|| error("The caller may not do this").into());
                responses.entry("default".into()).or_insert_with(|| {
                    error("Any other refusal: 400 for a malformed request, 404 for something that does not exist, 409 for a conflict").into()
                });
            }
        }
    }
}

/// The document as served, built once.
pub(crate) fn document_json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| ApiDoc::openapi().to_json().expect("the OpenAPI document is JSON"))
}

/// `GET /api/v1/openapi.json`: this document. No credentials needed.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document of the management API", body = serde_json::Value)),
)]
pub(crate) async fn openapi_json(_: axum::extract::State<Arc<crate::Registry>>) -> Response {
    (StatusCode::OK, [("content-type", "application/json")], document_json()).into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    /// The path parameters a path template names: `{name}`, `{*name}`.
    fn template_params(path: &str) -> BTreeSet<String> {
        path.split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|s| s.trim_start_matches('*').to_string())
            .collect()
    }

    /// Every operation of the document: (METHOD, path) → the names of its
    /// path parameters.
    fn operations(doc: &serde_json::Value) -> BTreeMap<(String, String), BTreeSet<String>> {
        let mut out = BTreeMap::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("a path item") {
                if !["get", "put", "post", "delete", "patch", "head", "options", "trace"].contains(&method.as_str()) {
                    continue;
                }
                let params = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == "path")
                    .map(|p| p["name"].as_str().expect("a name").to_string())
                    .collect();
                out.insert((method.to_uppercase(), path.clone()), params);
            }
        }
        out
    }

    /// The router is built from `ENDPOINTS`: each row has its operation,
    /// with the same path parameters, and the document describes no
    /// operation the router lacks.
    #[test]
    fn the_document_covers_exactly_the_router() {
        let doc: serde_json::Value = serde_json::from_str(document_json()).unwrap();
        let documented = operations(&doc);
        let mut routed = BTreeMap::new();
        for (method, path, name) in super::super::ENDPOINTS {
            // The repository catch-all `{*name}` is written `{name}`.
            let path = path.replace("{*name}", "{name}");
            assert!(
                routed.insert((method.to_string(), path.clone()), *name).is_none(),
                "{method} {path} twice in ENDPOINTS"
            );
            let Some(params) = documented.get(&(method.to_string(), path.clone())) else {
                panic!("{method} {path} ({name}) is routed but not in the OpenAPI document");
            };
            assert_eq!(
                params,
                &template_params(&path),
                "{method} {path}: documented path parameters differ from the path's"
            );
        }
        for (method, path) in documented.keys() {
            assert!(
                routed.contains_key(&(method.clone(), path.clone())),
                "{method} {path} is in the OpenAPI document but not routed"
            );
        }
        assert_eq!(documented.len(), routed.len());
    }

    /// Each operation has an id (the endpoint's name in `ENDPOINTS`), a
    /// tag, a success response, and every refusal is the error body.
    #[test]
    fn every_operation_is_named_tagged_and_answers() {
        let doc: serde_json::Value = serde_json::from_str(document_json()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let names: BTreeMap<String, String> = super::super::ENDPOINTS
            .iter()
            .map(|(m, p, n)| (format!("{m} {}", p.replace("{*name}", "{name}")), n.to_string()))
            .collect();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let key = format!("{} {path}", method.to_uppercase());
                assert_eq!(op["operationId"].as_str(), names.get(&key).map(String::as_str), "{key}");
                assert!(op["tags"].as_array().is_some_and(|t| t.len() == 1), "{key}: one tag");
                let responses = op["responses"].as_object().unwrap();
                assert!(
                    responses.keys().any(|s| s.starts_with('2')),
                    "{key}: no success response"
                );
                if path != PATH && key != "GET /api/v1/keys/registry" {
                    assert_eq!(
                        responses["default"]["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{key}"
                    );
                    assert_eq!(op["security"].as_array().map(Vec::len), Some(2), "{key}");
                }
            }
        }
        assert_eq!(doc["paths"][PATH]["get"]["security"], serde_json::json!([]));
        assert_eq!(
            doc["paths"]["/api/v1/keys/registry"]["get"]["security"],
            serde_json::json!([])
        );
    }

    /// Request bodies refuse unknown fields (`deny_unknown_fields`), and
    /// the document says so.
    #[test]
    fn request_bodies_are_closed() {
        let doc: serde_json::Value = serde_json::from_str(document_json()).unwrap();
        let schemas = &doc["components"]["schemas"];
        for name in [
            "NewUser",
            "NewPassword",
            "Named",
            "NewGrant",
            "NewToken",
            "NewKey",
            "ImportedKey",
            "RepositorySettings",
            "NamespaceSettings",
            "ProxySettings",
            "PullRule",
            "SignedBy",
            "RequireProvenance",
            "PromotionPolicy",
            "NewPolicy",
            "Rule",
            "DryRun",
            "HookBody",
            "SetSources",
        ] {
            assert_eq!(schemas[name]["additionalProperties"], false, "{name}");
        }
    }

    /// `NewPolicy` (the body of `POST …/policies`) is a promotion policy
    /// plus `apply_existing`, field for field.
    #[test]
    fn policy_bodies_follow_the_policy_type() {
        let doc: serde_json::Value = serde_json::from_str(document_json()).unwrap();
        let fields = |name: &str| -> BTreeSet<String> {
            doc["components"]["schemas"][name]["properties"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect()
        };
        let mut want = fields("PromotionPolicy");
        want.insert("apply_existing".into());
        assert_eq!(fields("NewPolicy"), want);
        // And a stored one shows every field of the policy.
        let shown = fields("PolicyView");
        assert!(fields("PromotionPolicy").is_subset(&shown), "{shown:?}");
    }
}

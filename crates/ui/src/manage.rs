//! Pages for running the registry: a repository's settings and webhooks,
//! a namespace's teams, grants, service accounts and webhooks, an
//! account's tokens and keys, a webhook's delivery log. Their forms all
//! post to `/ui/do` with an `op`: each op is one management API call
//! (`Op::call`), so what a form may do is exactly what the API allows.

use std::collections::HashMap;

use askama::Template;
use axum::extract::Query;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::Form;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::pages::{chrome, render, s, Chrome};
use crate::session::SignedIn;
use crate::view::{self, enc};
use crate::UiError;

type Page = Result<Response, UiError>;

/// Reads `path`, or `None` when the API refuses this user (a section of
/// the page they may not see is left out, not an error).
async fn optional(who: &SignedIn, path: &str) -> Result<Option<Value>, UiError> {
    match who.get(path).await {
        Ok(v) => Ok(Some(v)),
        Err(UiError::Api { status, .. }) if status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

pub struct HookRow {
    id: String,
    url: String,
    events: String,
    enabled: bool,
}

fn hooks(v: Option<&Value>) -> Option<Vec<HookRow>> {
    v.map(|v| {
        view::items(v)
            .map(|h| HookRow {
                id: s(&h["id"]),
                url: s(&h["url"]),
                events: view::items(&h["events"]).map(s).collect::<Vec<_>>().join(", "),
                enabled: h["enabled"] != false,
            })
            .collect()
    })
}

// ---- repository settings --------------------------------------------------

#[derive(Deserialize)]
pub struct NameQuery {
    name: String,
    msg: Option<String>,
}

#[derive(Template)]
#[template(path = "repository_settings.html")]
struct RepositorySettingsPage {
    chrome: Chrome,
    name: String,
    visibility: String,
    scan_on_push: bool,
    immutable_tags: bool,
    patterns: String,
    /// The rule as stored, for those who only read it.
    pull_rule: String,
    rule: PullRuleForm,
    hooks: Option<Vec<HookRow>>,
    /// The repository's namespace, and its hooks (which apply to the
    /// repository too) when the viewer may see them.
    namespace: String,
    namespace_hooks: Option<Vec<HookRow>>,
    events: &'static [&'static str],
    may_admin: bool,
}

/// A pull rule's fields as the settings form shows them.
pub struct PullRuleForm {
    deny_severity: String,
    unknown_as: String,
    deny_unscanned: bool,
    deny_failed: bool,
    teams: String,
    accounts: String,
    match_reference: bool,
    provenance_teams: String,
    provenance_accounts: String,
    provenance_match_reference: bool,
    builder_ids: String,
    source_uris: String,
    max_database_age: String,
    severities: &'static [&'static str],
}

impl PullRuleForm {
    fn of(rule: &Value) -> PullRuleForm {
        let lines = |v: &Value| view::items(v).map(s).collect::<Vec<_>>().join("\n");
        let by = &rule["require_signed_by"];
        let provenance = &rule["require_provenance"];
        PullRuleForm {
            provenance_teams: lines(&provenance["signed_by"]["teams"]),
            provenance_accounts: lines(&provenance["signed_by"]["accounts"]),
            provenance_match_reference: provenance["signed_by"]["match_reference"] == true,
            builder_ids: lines(&provenance["builder_ids"]),
            source_uris: lines(&provenance["source_uris"]),
            deny_severity: s(&rule["deny_severity"]),
            unknown_as: s(&rule["unknown_as"]),
            deny_unscanned: rule["deny_unscanned"] == true,
            deny_failed: rule["deny_failed"] == true,
            teams: lines(&by["teams"]),
            accounts: lines(&by["accounts"]),
            match_reference: by["match_reference"] == true,
            max_database_age: s(&rule["max_database_age"]),
            severities: &portcullis_policy::SEVERITIES,
        }
    }
}

/// The pull rule the settings form describes (`rule_*` fields); `{}`, no
/// rule, when nothing is set. The registry validates it.
fn pull_rule_of_form(
    get: &dyn Fn(&str) -> String,
    lines: &dyn Fn(&str) -> Vec<String>,
    f: &HashMap<String, String>,
) -> Value {
    let mut rule = serde_json::Map::new();
    for key in ["deny_severity", "unknown_as", "max_database_age"] {
        let v = get(&format!("rule_{key}"));
        if !v.is_empty() {
            rule.insert(key.into(), json!(v));
        }
    }
    for key in ["deny_unscanned", "deny_failed"] {
        if f.contains_key(&format!("rule_{key}")) {
            rule.insert(key.into(), json!(true));
        }
    }
    let (teams, accounts) = (lines("rule_teams"), lines("rule_accounts"));
    if !teams.is_empty() || !accounts.is_empty() {
        let mut by = json!({"teams": teams, "accounts": accounts});
        if f.contains_key("rule_match_reference") {
            by["match_reference"] = json!(true);
        }
        rule.insert("require_signed_by".into(), by);
    }
    let (teams, accounts) = (lines("rule_provenance_teams"), lines("rule_provenance_accounts"));
    let (builder_ids, source_uris) = (lines("rule_builder_ids"), lines("rule_source_uris"));
    if !teams.is_empty() || !accounts.is_empty() || !builder_ids.is_empty() || !source_uris.is_empty() {
        let mut by = json!({"teams": teams, "accounts": accounts});
        if f.contains_key("rule_provenance_match_reference") {
            by["match_reference"] = json!(true);
        }
        rule.insert(
            "require_provenance".into(),
            json!({"signed_by": by, "builder_ids": builder_ids, "source_uris": source_uris}),
        );
    }
    Value::Object(rule)
}

impl RepositorySettingsPage {
    fn back(&self) -> String {
        format!("/ui/repository/settings?name={}", enc(&self.name))
    }
}

pub async fn repository_settings(who: SignedIn, Query(q): Query<NameQuery>) -> Page {
    let api = format!("/api/v1/repositories/{}", enc(&q.name));
    let r = who.get(&api).await?;
    let hooks_json = optional(&who, &format!("{api}/webhooks")).await?;
    let namespace = q.name.split_once('/').map_or("", |(ns, _)| ns).to_string();
    let namespace_hooks = if namespace.is_empty() {
        None
    } else {
        optional(&who, &format!("/api/v1/namespaces/{}/webhooks", enc(&namespace))).await?
    };
    let patterns: Vec<String> = view::items(&r["immutable_tag_patterns"]).map(s).collect();
    render(RepositorySettingsPage {
        chrome: chrome(&who, q.msg),
        visibility: s(&r["visibility"]),
        scan_on_push: r["scan_on_push"] != false,
        immutable_tags: r["immutable_tags"] == true,
        patterns: patterns.join("\n"),
        rule: PullRuleForm::of(&r["pull_rule"]),
        pull_rule: if r["pull_rule"].is_null() {
            String::new()
        } else {
            serde_json::to_string_pretty(&r["pull_rule"]).unwrap_or_default()
        },
        hooks: hooks(hooks_json.as_ref()),
        namespace_hooks: hooks(namespace_hooks.as_ref()),
        namespace,
        events: &portcullis_server::webhooks::EVENT_TYPES,
        may_admin: r["caller_may"]["admin"] == true,
        name: q.name,
    })
}

// ---- namespace ------------------------------------------------------------

pub struct TeamRow {
    name: String,
    members: Vec<String>,
}

pub struct GrantRow {
    id: String,
    who: String,
    repository: String,
    role: String,
}

#[derive(Template)]
#[template(path = "namespace.html")]
struct NamespacePage {
    chrome: Chrome,
    name: String,
    teams: Option<Vec<TeamRow>>,
    grants: Option<Vec<GrantRow>>,
    service_accounts: Option<Vec<String>>,
    hooks: Option<Vec<HookRow>>,
    events: &'static [&'static str],
    /// Administers the namespace (the API shows its grants only to them):
    /// the team, member, grant and service account forms are theirs.
    may_admin: bool,
}

impl NamespacePage {
    fn back(&self) -> String {
        format!("/ui/namespace?name={}", enc(&self.name))
    }
}

pub async fn namespace(who: SignedIn, Query(q): Query<NameQuery>) -> Page {
    let ns = enc(&q.name);
    let org = optional(&who, &format!("/api/v1/orgs/{ns}")).await?;
    let grants = optional(&who, &format!("/api/v1/namespaces/{ns}/grants")).await?;
    let accounts = optional(&who, &format!("/api/v1/namespaces/{ns}/service-accounts")).await?;
    let hooks_json = optional(&who, &format!("/api/v1/namespaces/{ns}/webhooks")).await?;
    if org.is_none() && grants.is_none() && accounts.is_none() {
        return Err(UiError::Api {
            status: StatusCode::FORBIDDEN,
            message: format!("you may not see namespace {}", q.name),
        });
    }
    render(NamespacePage {
        chrome: chrome(&who, q.msg),
        may_admin: grants.is_some(),
        teams: org.map(|o| {
            view::items(&o["teams"])
                .map(|t| TeamRow {
                    name: s(&t["name"]),
                    members: view::items(&t["members"]).map(s).collect(),
                })
                .collect()
        }),
        grants: grants.map(|g| {
            view::items(&g)
                .map(|g| GrantRow {
                    id: s(&g["id"]),
                    who: if g["account"].is_null() {
                        format!("team {}", s(&g["team"]))
                    } else {
                        s(&g["account"])
                    },
                    repository: if g["repository"].is_null() {
                        "(whole namespace)".into()
                    } else {
                        s(&g["repository"])
                    },
                    role: s(&g["role"]),
                })
                .collect()
        }),
        service_accounts: accounts.map(|a| view::items(&a).map(|a| s(&a["name"])).collect()),
        hooks: hooks(hooks_json.as_ref()),
        events: &portcullis_server::webhooks::EVENT_TYPES,
        name: q.name,
    })
}

// ---- account --------------------------------------------------------------

pub struct TokenRow {
    id: String,
    name: String,
    scopes: String,
    created_at: String,
    last_used_at: String,
    revoked: bool,
}

pub struct KeyRow {
    id: String,
    name: String,
    created_at: String,
    revoked: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    chrome: Chrome,
    name: String,
    tokens: Vec<TokenRow>,
    keys: Vec<KeyRow>,
    service: bool,
    signing_key: Option<String>,
}

impl AccountPage {
    fn back(&self) -> String {
        format!("/ui/account?name={}", enc(&self.name))
    }
}

pub async fn account(who: SignedIn, Query(q): Query<NameQuery>) -> Page {
    let a = enc(&q.name);
    let tokens = who.get(&format!("/api/v1/accounts/{a}/tokens")).await?;
    let keys = who.get(&format!("/api/v1/accounts/{a}/keys")).await?;
    let service = q.name.contains('+');
    let signing = if service {
        optional(&who, &format!("/api/v1/accounts/{a}/signing-key")).await?
    } else {
        None
    };
    render(AccountPage {
        chrome: chrome(&who, q.msg),
        tokens: view::items(&tokens)
            .map(|t| TokenRow {
                id: s(&t["id"]),
                name: s(&t["name"]),
                scopes: view::items(&t["scopes"]).map(s).collect::<Vec<_>>().join(" "),
                created_at: view::time_of(&t["created_at"]),
                last_used_at: view::time_of(&t["last_used_at"]),
                revoked: !t["revoked_at"].is_null(),
            })
            .collect(),
        keys: view::items(&keys)
            .map(|k| KeyRow {
                id: s(&k["id"]),
                name: s(&k["name"]),
                created_at: view::time_of(&k["created_at"]),
                revoked: !k["revoked_at"].is_null(),
            })
            .collect(),
        service,
        signing_key: signing.map(|k| s(&k["key_id"])),
        name: q.name,
    })
}

// ---- one webhook ----------------------------------------------------------

#[derive(Deserialize)]
pub struct IdQuery {
    id: String,
    msg: Option<String>,
}

pub struct DeliveryRow {
    id: String,
    kind: String,
    status: String,
    created_at: String,
    attempts: Vec<AttemptRow>,
}

pub struct AttemptRow {
    at: String,
    status_code: String,
    latency_ms: String,
    excerpt: String,
}

#[derive(Template)]
#[template(path = "webhook.html")]
struct WebhookPage {
    chrome: Chrome,
    hook: HookRow,
    scope: String,
    deliveries: Vec<DeliveryRow>,
}

impl WebhookPage {
    fn back(&self) -> String {
        format!("/ui/webhook?id={}", enc(&self.hook.id))
    }
}

pub async fn webhook(who: SignedIn, Query(q): Query<IdQuery>) -> Page {
    let api = format!("/api/v1/webhooks/{}", enc(&q.id));
    let h = who.get(&api).await?;
    let log = who.get(&format!("{api}/deliveries")).await?;
    let scope = if h["repository"].is_null() {
        format!("namespace {}", s(&h["namespace"]))
    } else {
        format!("repository {}", s(&h["repository"]))
    };
    render(WebhookPage {
        chrome: chrome(&who, q.msg),
        hook: hooks(Some(&json!([h]))).unwrap_or_default().remove(0),
        scope,
        deliveries: view::items(&log["deliveries"])
            .map(|d| DeliveryRow {
                id: s(&d["id"]),
                kind: s(&d["type"]),
                status: s(&d["status"]),
                created_at: view::time_of(&d["created_at"]),
                attempts: view::items(&d["attempts"])
                    .map(|a| AttemptRow {
                        at: view::time_of(&a["at"]),
                        status_code: s(&a["status_code"]),
                        latency_ms: s(&a["latency_ms"]),
                        excerpt: {
                            let text = if a["error"].is_null() {
                                s(&a["response"])
                            } else {
                                s(&a["error"])
                            };
                            text.chars().take(200).collect()
                        },
                    })
                    .collect(),
            })
            .collect(),
    })
}

// ---- the forms ------------------------------------------------------------

#[derive(Template)]
#[template(path = "token_created.html")]
struct TokenCreatedPage {
    chrome: Chrome,
    account: String,
    token: String,
    /// The registry's public URL, and its host for registry clients.
    url: String,
    host: String,
    /// `--tls-verify=false ` when the public URL is plain HTTP.
    tls_flag: &'static str,
}

/// One form post: the API call it makes, as (method, path, body).
fn op_call(op: &str, f: &HashMap<String, String>) -> Result<(Method, String, Value), UiError> {
    let get = |k: &str| f.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    let lines = |k: &str| -> Vec<String> {
        get(k)
            .split(['\n', ',', ' '])
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    };
    let repo = || enc(&get("repository"));
    let ns = || enc(&get("namespace"));
    let account = || enc(&get("account"));
    let events = || -> Vec<String> {
        portcullis_server::webhooks::EVENT_TYPES
            .iter()
            .filter(|e| f.contains_key(&format!("event_{e}")))
            .map(|e| e.to_string())
            .collect()
    };
    Ok(match op {
        "repository_update" => {
            let pull_rule = pull_rule_of_form(&get, &lines, f);
            let body = json!({
                "visibility": get("visibility"), "scan_on_push": f.contains_key("scan_on_push"),
                "immutable_tags": f.contains_key("immutable_tags"), "immutable_tag_patterns": lines("patterns"),
                "pull_rule": pull_rule,
            });
            (Method::PUT, format!("/api/v1/repositories/{}", repo()), body)
        }
        "repository_webhook_create" | "namespace_webhook_create" => {
            let body = json!({"url": get("url"), "secret": get("secret"), "events": events()});
            let path = if op == "repository_webhook_create" {
                format!("/api/v1/repositories/{}/webhooks", repo())
            } else {
                format!("/api/v1/namespaces/{}/webhooks", ns())
            };
            (Method::POST, path, body)
        }
        "webhook_test" => (
            Method::POST,
            format!("/api/v1/webhooks/{}/test", enc(&get("id"))),
            Value::Null,
        ),
        "webhook_delete" => (
            Method::DELETE,
            format!("/api/v1/webhooks/{}", enc(&get("id"))),
            Value::Null,
        ),
        "webhook_redeliver" => (
            Method::POST,
            format!(
                "/api/v1/webhooks/{}/deliveries/{}/redeliver",
                enc(&get("id")),
                enc(&get("delivery"))
            ),
            Value::Null,
        ),
        "org_create" => (Method::POST, "/api/v1/orgs".into(), json!({"name": get("name")})),
        "team_create" => (
            Method::POST,
            format!("/api/v1/orgs/{}/teams", ns()),
            json!({"name": get("name")}),
        ),
        "member_add" | "member_remove" => (
            if op == "member_add" {
                Method::PUT
            } else {
                Method::DELETE
            },
            format!(
                "/api/v1/orgs/{}/teams/{}/members/{}",
                ns(),
                enc(&get("team")),
                account()
            ),
            Value::Null,
        ),
        "grant_create" => {
            let grantee = get("grantee");
            let mut body = json!({"role": get("role")});
            match grantee.strip_prefix("team:") {
                Some(team) => body["team"] = json!(team),
                None => body["account"] = json!(grantee),
            }
            if !get("repository").is_empty() {
                body["repository"] = json!(get("repository"));
            }
            (Method::POST, format!("/api/v1/namespaces/{}/grants", ns()), body)
        }
        "grant_delete" => (
            Method::DELETE,
            format!("/api/v1/namespaces/{}/grants/{}", ns(), enc(&get("id"))),
            Value::Null,
        ),
        "service_account_create" => (
            Method::POST,
            format!("/api/v1/namespaces/{}/service-accounts", ns()),
            json!({"name": get("name")}),
        ),
        "token_create" => (
            Method::POST,
            format!("/api/v1/accounts/{}/tokens", account()),
            json!({"name": get("name"), "scopes": lines("scopes")}),
        ),
        "token_revoke" => (
            Method::DELETE,
            format!("/api/v1/accounts/{}/tokens/{}", account(), enc(&get("id"))),
            Value::Null,
        ),
        "key_add" => (
            Method::POST,
            format!("/api/v1/accounts/{}/keys", account()),
            json!({"name": get("name"), "pem": get("pem")}),
        ),
        "key_revoke" => (
            Method::DELETE,
            format!("/api/v1/accounts/{}/keys/{}", account(), enc(&get("id"))),
            Value::Null,
        ),
        "signing_key_create" => (
            Method::POST,
            format!("/api/v1/accounts/{}/signing-key", account()),
            Value::Null,
        ),
        // One URL a line; "use the configuration's" clears the API's list.
        "vulndb_sources" => {
            let sources = if f.contains_key("from_configuration") {
                Value::Null
            } else {
                json!(get("sources")
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>())
            };
            (
                Method::PUT,
                "/api/v1/vulndb/sources".into(),
                json!({"sources": sources}),
            )
        }
        other => return Err(UiError::BadRequest(format!("unknown form {other:?}"))),
    })
}

/// Where a form goes back to: a page of this UI, or the repositories.
fn back_to(f: &HashMap<String, String>) -> String {
    crate::session::local_path(f.get("back").map(String::as_str))
}

/// `POST /ui/do`: one form, one API call, then back to the page with the
/// outcome (the API's own message when it refuses a value).
pub async fn form_action(who: SignedIn, Form(f): Form<HashMap<String, String>>) -> Page {
    who.check_csrf(f.get("csrf").map(String::as_str).unwrap_or(""))?;
    let op = f.get("op").cloned().unwrap_or_default();
    let (method, path, body) = op_call(&op, &f)?;
    let back = back_to(&f);
    let answer = match who.api(method, &path, body).await {
        Ok(v) => v,
        Err(UiError::Api { status, message }) if matches!(status.as_u16(), 400 | 409 | 422) => {
            return Ok(crate::pages::back(back, &message));
        }
        Err(e) => return Err(e),
    };
    if op == "token_create" {
        // Shown once, here; the API never shows it again.
        let url = who.registry().public_url().trim_end_matches('/').to_string();
        let (scheme, host) = url.split_once("://").unwrap_or(("https", &url));
        return render(TokenCreatedPage {
            chrome: chrome(&who, None),
            account: f.get("account").cloned().unwrap_or_default(),
            token: s(&answer["token"]),
            host: host.to_string(),
            tls_flag: if scheme == "http" { "--tls-verify=false " } else { "" },
            url,
        });
    }
    if op == "org_create" {
        // A new organization's page is where its teams are made.
        let name = f.get("name").map(|n| n.trim()).unwrap_or_default();
        let to = format!("/ui/namespace?name={}", enc(name));
        return Ok(crate::pages::back(to, "organization created"));
    }
    Ok(crate::pages::back(back, &format!("{} done", op.replace('_', " "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// What a browser submits for the form as shown (checked boxes only).
    fn pull_rule_form_fields(r: &PullRuleForm) -> HashMap<String, String> {
        let mut f = form(&[
            ("repository", "acme/app"),
            ("rule_deny_severity", &r.deny_severity),
            ("rule_unknown_as", &r.unknown_as),
            ("rule_teams", &r.teams),
            ("rule_accounts", &r.accounts),
            ("rule_provenance_teams", &r.provenance_teams),
            ("rule_provenance_accounts", &r.provenance_accounts),
            ("rule_builder_ids", &r.builder_ids),
            ("rule_source_uris", &r.source_uris),
            ("rule_max_database_age", &r.max_database_age),
        ]);
        for (name, on) in [
            ("rule_deny_unscanned", r.deny_unscanned),
            ("rule_deny_failed", r.deny_failed),
            ("rule_match_reference", r.match_reference),
            ("rule_provenance_match_reference", r.provenance_match_reference),
        ] {
            if on {
                f.insert(name.into(), "on".into());
            }
        }
        f
    }

    /// Each form op is the API call it names, with values encoded.
    #[test]
    fn form_ops_table() {
        let table = [
            (
                "vulndb_sources",
                form(&[("sources", " https://a.example/Debian/all.zip\r\n\r\nfile:///srv/osv \n")]),
                (
                    Method::PUT,
                    "/api/v1/vulndb/sources",
                    json!({"sources": ["https://a.example/Debian/all.zip", "file:///srv/osv"]}),
                ),
            ),
            (
                "vulndb_sources",
                form(&[("sources", "https://a.example/x"), ("from_configuration", "on")]),
                (Method::PUT, "/api/v1/vulndb/sources", json!({"sources": null})),
            ),
            (
                "grant_create",
                form(&[
                    ("namespace", "acme"),
                    ("grantee", "team:dev"),
                    ("role", "read"),
                    ("repository", "acme/app"),
                ]),
                (
                    Method::POST,
                    "/api/v1/namespaces/acme/grants",
                    json!({"role": "read", "team": "dev", "repository": "acme/app"}),
                ),
            ),
            (
                "member_remove",
                form(&[("namespace", "ci"), ("team", "gitlab"), ("account", "ci+release")]),
                (
                    Method::DELETE,
                    "/api/v1/orgs/ci/teams/gitlab/members/ci%2Brelease",
                    Value::Null,
                ),
            ),
            (
                "token_create",
                form(&[
                    ("account", "alice"),
                    ("name", "laptop"),
                    ("scopes", "acme/*:pull\nacme/app:push"),
                ]),
                (
                    Method::POST,
                    "/api/v1/accounts/alice/tokens",
                    json!({"name": "laptop", "scopes": ["acme/*:pull", "acme/app:push"]}),
                ),
            ),
            (
                "repository_webhook_create",
                form(&[
                    ("repository", "acme/app"),
                    ("url", "https://ci/x"),
                    ("secret", "s"),
                    ("event_TAG_PUSH", "on"),
                ]),
                (
                    Method::POST,
                    "/api/v1/repositories/acme%2Fapp/webhooks",
                    json!({"url": "https://ci/x", "secret": "s", "events": ["TAG_PUSH"]}),
                ),
            ),
        ];
        for (op, f, (method, path, body)) in table {
            let (m, p, b) = op_call(op, &f).unwrap();
            assert_eq!((m, p.as_str(), b), (method, path, body), "{op}");
        }
        assert!(op_call("user_delete", &form(&[])).is_err(), "only the listed ops");
    }

    /// Every field a pull rule has survives the form: built without
    /// `..Default::default()`, so a field added to `PullRule` fails to
    /// compile here until the form carries it (a settings save must never
    /// drop part of a rule).
    #[test]
    fn every_pull_rule_field_round_trips_through_the_form() {
        let full = portcullis_policy::PullRule {
            deny_severity: Some("high".into()),
            unknown_as: Some("medium".into()),
            deny_unscanned: true,
            deny_failed: true,
            require_signed_by: Some(portcullis_policy::SignedBy {
                teams: vec!["ci/gitlab".into()],
                accounts: vec!["ci+release".into()],
                match_reference: true,
            }),
            require_provenance: Some(portcullis_policy::RequireProvenance {
                signed_by: portcullis_policy::SignedBy {
                    teams: vec!["ci/builders".into()],
                    accounts: vec!["ci+build".into()],
                    match_reference: true,
                },
                builder_ids: vec!["https://ci.acme.example/*".into()],
                source_uris: vec![
                    "git+https://git.acme.example/acme/*".into(),
                    "https://git.acme.example/*".into(),
                ],
            }),
            max_database_age: Some("2d".into()),
            // Stamped by the registry, never sent by the form.
            saved_at: None,
        };
        let rule = serde_json::to_value(&full).unwrap();
        let (_, _, body) = op_call("repository_update", &pull_rule_form_fields(&PullRuleForm::of(&rule))).unwrap();
        let back: portcullis_policy::PullRule = serde_json::from_value(body["pull_rule"].clone()).unwrap();
        assert_eq!(back, full);
    }

    /// The settings form's pull-rule fields are the rule the API takes.
    #[test]
    fn pull_rule_form_table() {
        let table = [
            (form(&[]), json!({})),
            (
                form(&[("rule_deny_severity", "high")]),
                json!({"deny_severity": "high"}),
            ),
            (
                form(&[
                    ("rule_deny_severity", "critical"),
                    ("rule_unknown_as", "high"),
                    ("rule_deny_unscanned", "on"),
                    ("rule_deny_failed", "on"),
                    ("rule_max_database_age", " 2d "),
                ]),
                json!({"deny_severity": "critical", "unknown_as": "high", "deny_unscanned": true,
                       "deny_failed": true, "max_database_age": "2d"}),
            ),
            (
                form(&[
                    ("rule_teams", "ci/gitlab\r\nci/release\n"),
                    ("rule_match_reference", "on"),
                ]),
                json!({"require_signed_by": {"teams": ["ci/gitlab", "ci/release"], "accounts": [],
                                             "match_reference": true}}),
            ),
            (
                form(&[("rule_accounts", "ci+release")]),
                json!({"require_signed_by": {"teams": [], "accounts": ["ci+release"]}}),
            ),
            (
                form(&[
                    ("rule_provenance_accounts", "acme+ci"),
                    ("rule_builder_ids", "https://ci.acme.example/*\r\n"),
                ]),
                json!({"require_provenance": {"signed_by": {"teams": [], "accounts": ["acme+ci"]},
                                              "builder_ids": ["https://ci.acme.example/*"], "source_uris": []}}),
            ),
        ];
        for (mut f, rule) in table {
            f.insert("repository".into(), "acme/app".into());
            let (_, path, body) = op_call("repository_update", &f).unwrap();
            assert_eq!(path, "/api/v1/repositories/acme%2Fapp");
            assert_eq!(body["pull_rule"], rule, "{f:?}");
            // What the form shows for the rule saved is what was entered.
            let shown = PullRuleForm::of(&rule);
            let round = pull_rule_form_fields(&shown);
            let (_, _, again) = op_call("repository_update", &round).unwrap();
            assert_eq!(again["pull_rule"], rule, "round trip of {f:?}");
        }
    }

    #[test]
    fn forms_go_back_only_to_ui_pages() {
        assert_eq!(
            back_to(&form(&[("back", "/ui/namespace?name=acme")])),
            "/ui/namespace?name=acme"
        );
        assert_eq!(back_to(&form(&[("back", "https://evil.example/")])), "/ui/");
        assert_eq!(back_to(&form(&[])), "/ui/");
    }
}

//! The management API's OpenAPI document (`GET /api/v1/openapi.json`):
//! served to anyone, valid OpenAPI 3.1 by an independent validator, every
//! operation it names really routed, and `docs/api.md` documenting exactly
//! its operations, each with a curl example. (That it covers every route
//! of the router is a unit test beside it: `api::openapi`.)

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::{Backend, TestServer};
use reqwest::Method;
use serde_json::Value;

/// `(METHOD, path template)` of every operation of the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            if ["get", "put", "post", "delete", "patch", "head", "options", "trace"].contains(&method.as_str()) {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

async fn served(s: &TestServer) -> Value {
    let r = s.anon.get(s.url("/api/v1/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"].to_str().unwrap(), "application/json");
    r.json().await.unwrap()
}

fn validator_present() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok && common::tools_required() {
        panic!("openapi-spec-validator (PyPI) is required but missing");
    }
    ok
}

/// Anyone gets the same document, with or without credentials (bad ones
/// are not even read), and openapi-spec-validator finds it valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_is_valid_openapi_3_1() {
    let s = TestServer::start(&Backend::Sqlite).await;
    let doc = served(&s).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let with_token: Value = s
        .http
        .get(s.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(with_token, doc);
    let bad = s
        .anon
        .get(s.url("/api/v1/openapi.json"))
        .header("authorization", "Bearer pct_nope_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 200);
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["securitySchemes"]["basic"].is_object());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());

    if !validator_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
    let out = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/validate_openapi.py"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The validator is not a rubber stamp: a path parameter the path does
    // not name is refused.
    let mut broken = doc.clone();
    let op = &mut broken["paths"]["/api/v1/users/{name}"]["get"];
    op["parameters"][0]["name"] = "nobody".into();
    std::fs::write(&file, serde_json::to_vec(&broken).unwrap()).unwrap();
    let out = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/validate_openapi.py"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a broken document passed");
}

/// A sample value for each path parameter of the document; a repository
/// name (after `repositories/`) has two `/`.
fn sample(param: &str, after: &str) -> &'static str {
    match param {
        "name" if after == "repositories" => "acme/team/app",
        "digest" => "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "tag" => "v1",
        _ => "x1",
    }
}

/// Every operation of the document reaches a handler of the running
/// server: asked anonymously, none answers that the route does not exist
/// or that the method is not allowed there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed() {
    let s = TestServer::start(&Backend::Sqlite).await;
    let doc = served(&s).await;
    let ops = operations(&doc);
    assert!(ops.len() > 70, "{} operations", ops.len());
    for (method, template) in &ops {
        let segments: Vec<&str> = template.split('/').collect();
        let path: String = segments
            .iter()
            .enumerate()
            .map(
                |(i, seg)| match seg.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    Some(p) => sample(p, segments[i.saturating_sub(1)]),
                    None => seg,
                },
            )
            .collect::<Vec<_>>()
            .join("/");
        let r = s
            .anon
            .request(method.parse::<Method>().unwrap(), s.url(&path))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert_ne!(status, 405, "{method} {path}: {text}");
        assert!(
            !(status == 404 && text.contains("the route does not exist")),
            "{method} {path} is documented but not routed: {text}"
        );
        // Served to anyone: this document and the registry's public keys.
        let public = template == "/api/v1/openapi.json"
            || (method.eq_ignore_ascii_case("get") && template == "/api/v1/keys/registry");
        if !public {
            // Its handler refused an anonymous caller (401; a webhook
            // that does not exist is a 404 first; a missing query 400).
            assert!((400..500).contains(&status), "{method} {path}: {status} {text}");
        } else {
            assert_eq!(status, 200, "{method} {path}");
        }
    }
    // And the same walk finds an undocumented path unrouted.
    let r = s
        .anon
        .get(s.url("/api/v1/repositories/acme/app/nothing-here/x"))
        .send()
        .await
        .unwrap();
    assert!(r.status() == 404 || r.status() == 401, "{}", r.status());
}

/// `docs/api.md`'s `### METHOD /path` headings, each with the text under it.
fn doc_sections(text: &str) -> Vec<((String, String), String)> {
    let mut out: Vec<((String, String), String)> = Vec::new();
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            let (method, path) = h.trim().split_once(' ').expect("### METHOD /path");
            let path = path.trim().trim_matches('`');
            out.push(((method.to_string(), path.to_string()), String::new()));
        } else if line.starts_with("## ") || line.starts_with("# ") {
            continue;
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

/// Whether the URL path `actual` fits `template`: a repository's
/// `{name}` (after `repositories`) takes one or more segments, other
/// parameters one.
fn fits(template: &[&str], actual: &[&str]) -> bool {
    fn walk(template: &[&str], actual: &[&str], after_repositories: bool) -> bool {
        match (template.split_first(), actual.split_first()) {
            (None, None) => true,
            (Some((&"{name}", rest)), Some(_)) if after_repositories => {
                (1..=actual.len()).any(|n| walk(rest, &actual[n..], false))
            }
            (Some((t, rest)), Some((a, arest))) => {
                let param = t.starts_with('{') && t.ends_with('}');
                (if param { !a.is_empty() } else { t == a }) && walk(rest, arest, *t == "repositories")
            }
            _ => false,
        }
    }
    walk(template, actual, false)
}

/// docs/api.md names every operation of the document as a `### METHOD
/// /path` heading, once, and no operation the document lacks; under each
/// is a curl example of that method and path, and a response excerpt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_api_md_documents_every_operation() {
    let s = TestServer::start(&Backend::Sqlite).await;
    let doc = served(&s).await;
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md")).unwrap();
    let sections = doc_sections(&text);
    let headed: BTreeSet<(String, String)> = sections.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(headed.len(), sections.len(), "an operation has two headings");
    let documented = operations(&doc);
    let missing: Vec<_> = documented.difference(&headed).collect();
    let extra: Vec<_> = headed.difference(&documented).collect();
    assert!(missing.is_empty(), "docs/api.md lacks {missing:?}");
    assert!(
        extra.is_empty(),
        "docs/api.md names operations the API lacks: {extra:?}"
    );

    for ((method, template), body) in &sections {
        // The command: from `curl` to the end of its code block.
        let start = body
            .find("\ncurl ")
            .or_else(|| body.starts_with("curl ").then_some(0))
            .unwrap_or_else(|| panic!("{method} {template}: no curl example"));
        let command = &body[start..];
        let curl = &command[..command.find("```").unwrap_or(command.len())];
        let explicit = curl
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .find(|w| w[0] == "-X")
            .map(|w| w[1].to_string());
        let sends_data = curl.contains(" -d ") || curl.contains("--data");
        let curl_method = explicit.unwrap_or(if sends_data { "POST" } else { "GET" }.to_string());
        assert_eq!(&curl_method, method, "{method} {template}: {curl}");
        let url = curl
            .split_whitespace()
            .map(|w| w.trim_matches(|c| c == '"' || c == '\''))
            .rfind(|w| w.starts_with("http://127.0.0.1:5000/"))
            .unwrap_or_else(|| panic!("{method} {template}: no URL in {curl}"));
        let path = url.splitn(4, '/').nth(3).map(|p| format!("/{p}")).unwrap();
        let path = path.split('?').next().unwrap();
        let t: Vec<&str> = template.split('/').collect();
        let a: Vec<&str> = path.split('/').collect();
        assert!(fits(&t, &a), "{method} {template}: the example calls {path}");
        assert!(
            body.contains("```json") || body.contains("HTTP/1.1 "),
            "{method} {template}: no response excerpt"
        );
        // A JSON body given inline names only fields the operation's
        // request body has (the API refuses unknown ones).
        if let Some(start) = curl.find(" -d '") {
            let rest = &curl[start + 5..];
            let json = &rest[..rest.find('\'').expect("a closing quote")];
            let sent: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{method} {template}: {e}: {json}"));
            let op = &doc["paths"][template.as_str()][method.to_lowercase()];
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            let fields = properties(&doc, schema);
            for key in sent.as_object().expect("an object").keys() {
                assert!(
                    fields.contains(key),
                    "{method} {template}: the example sends {key}, not in {fields:?}"
                );
            }
        }
    }
}

/// The property names a schema (or the schema it refers to, or those it
/// combines) allows.
fn properties(doc: &Value, schema: &Value) -> BTreeSet<String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        return properties(doc, &doc["components"]["schemas"][name]);
    }
    let mut out: BTreeSet<String> = schema["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    for combined in ["allOf", "oneOf", "anyOf"] {
        for s in schema[combined].as_array().into_iter().flatten() {
            out.extend(properties(doc, s));
        }
    }
    out
}

#[test]
fn repository_names_fit_their_template() {
    let t = |s: &'static str| s.split('/').collect::<Vec<_>>();
    assert!(fits(
        &t("/api/v1/repositories/{name}/tags/{tag}"),
        &t("/api/v1/repositories/acme/app/tags/v1")
    ));
    assert!(fits(
        &t("/api/v1/repositories/{name}"),
        &t("/api/v1/repositories/acme/team/app")
    ));
    assert!(!fits(
        &t("/api/v1/repositories/{name}/tags/{tag}"),
        &t("/api/v1/repositories/acme/app/policies/p1")
    ));
    assert!(!fits(&t("/api/v1/users/{name}"), &t("/api/v1/users/a/b")));
    assert!(!fits(&t("/api/v1/users"), &t("/api/v1/orgs")));
}

/// Real answers of the operations match the document's response schemas
/// strictly (no property the schema lacks, every required one there, each
/// of its type), checked by the `jsonschema` package over the document's
/// own schemas: the typed response structs and the ones that only
/// describe a shape alike. On both databases: the bodies come from them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_match_their_schemas() {
    if !validator_present() {
        return;
    }
    for backend in common::backends() {
        let s = TestServer::start(&backend).await;
        let doc = served(&s).await;
        let mut calls: Vec<Value> = Vec::new();
        let call = |op: &'static str, method: Method, path: String, body: Value| {
            let s = &s;
            async move {
                let (status, v) = common::call(s, method.clone(), &path, body).await;
                assert!((200..300).contains(&status), "{method} {path}: {status} {v}");
                (op, status, v)
            }
        };
        let mut record = |(op, status, v): (&'static str, u16, Value)| {
            calls.push(serde_json::json!([op, status, v.clone()]));
            v
        };
        let (digest, _) = s.push_image("acme/app", "1", b"{\"os\":\"linux\"}", &[b"layer"]).await;
        let post = Method::POST;
        let get = Method::GET;
        let put = Method::PUT;
        record(
            call(
                "user_create",
                post.clone(),
                "/api/v1/users".into(),
                serde_json::json!({"name": "bob", "password": "long-enough-password"}),
            )
            .await,
        );
        record(call("user_list", get.clone(), "/api/v1/users".into(), Value::Null).await);
        record(call("user_get", get.clone(), "/api/v1/users/bob".into(), Value::Null).await);
        record(
            call(
                "org_create",
                post.clone(),
                "/api/v1/orgs".into(),
                serde_json::json!({"name": "acme"}),
            )
            .await,
        );
        record(
            call(
                "team_create",
                post.clone(),
                "/api/v1/orgs/acme/teams".into(),
                serde_json::json!({"name": "release"}),
            )
            .await,
        );
        record(
            call(
                "member_add",
                put.clone(),
                "/api/v1/orgs/acme/teams/release/members/bob".into(),
                Value::Null,
            )
            .await,
        );
        record(call("org_get", get.clone(), "/api/v1/orgs/acme".into(), Value::Null).await);
        record(call("team_list", get.clone(), "/api/v1/orgs/acme/teams".into(), Value::Null).await);
        record(
            call(
                "member_list",
                get.clone(),
                "/api/v1/orgs/acme/teams/release/members".into(),
                Value::Null,
            )
            .await,
        );
        let pem = portcullis_sign::SigningKey::generate().unwrap().0.public.to_pem();
        record(
            call(
                "key_add",
                post.clone(),
                "/api/v1/accounts/admin/keys".into(),
                serde_json::json!({"name": "laptop", "pem": pem}),
            )
            .await,
        );
        record(
            call(
                "key_list",
                get.clone(),
                "/api/v1/accounts/admin/keys".into(),
                Value::Null,
            )
            .await,
        );
        record(
            call(
                "team_keys",
                get.clone(),
                "/api/v1/orgs/acme/teams/owners/keys".into(),
                Value::Null,
            )
            .await,
        );
        record(
            call(
                "grant_create",
                post.clone(),
                "/api/v1/namespaces/acme/grants".into(),
                serde_json::json!({"team": "release", "repository": "acme/app", "role": "write"}),
            )
            .await,
        );
        record(
            call(
                "grant_list",
                get.clone(),
                "/api/v1/namespaces/acme/grants".into(),
                Value::Null,
            )
            .await,
        );
        record(
            call(
                "namespace_settings_update",
                put.clone(),
                "/api/v1/namespaces/acme/settings".into(),
                serde_json::json!({"immutable_tag_patterns": ["v*"], "promotion_only": ["release"]}),
            )
            .await,
        );
        record(
            call(
                "namespace_settings_get",
                get.clone(),
                "/api/v1/namespaces/acme/settings".into(),
                Value::Null,
            )
            .await,
        );
        record(
            call(
                "service_account_create",
                post.clone(),
                "/api/v1/namespaces/acme/service-accounts".into(),
                serde_json::json!({"name": "ci"}),
            )
            .await,
        );
        record(
            call(
                "service_account_list",
                get.clone(),
                "/api/v1/namespaces/acme/service-accounts".into(),
                Value::Null,
            )
            .await,
        );
        record(
            call(
                "token_create",
                post.clone(),
                "/api/v1/accounts/acme+ci/tokens".into(),
                serde_json::json!({"name": "build", "scopes": ["acme/app:pull,push"]}),
            )
            .await,
        );
        record(
            call(
                "token_list",
                get.clone(),
                "/api/v1/accounts/acme+ci/tokens".into(),
                Value::Null,
            )
            .await,
        );
        record(
            call(
                "signing_key_create",
                post.clone(),
                "/api/v1/accounts/acme+ci/signing-key".into(),
                Value::Null,
            )
            .await,
        );
        record(
            call(
                "signing_key_get",
                get.clone(),
                "/api/v1/accounts/acme+ci/signing-key".into(),
                Value::Null,
            )
            .await,
        );
        record(call("repository_update", put.clone(), "/api/v1/repositories/acme/app".into(),
            serde_json::json!({"scan_on_push": true, "pull_rule": {"deny_failed": true, "require_signed_by": {"teams": ["acme/release"]}}})).await);
        record(
            call(
                "repository_get",
                get.clone(),
                "/api/v1/repositories/acme/app".into(),
                Value::Null,
            )
            .await,
        );
        record(
            call(
                "repository_list",
                get.clone(),
                "/api/v1/repositories?q=acme".into(),
                Value::Null,
            )
            .await,
        );
        record(
            call(
                "tag_list",
                get.clone(),
                "/api/v1/repositories/acme/app/tags".into(),
                Value::Null,
            )
            .await,
        );
        record(
            call(
                "tag_get",
                get.clone(),
                "/api/v1/repositories/acme/app/tags/1".into(),
                Value::Null,
            )
            .await,
        );
        record(
            call(
                "repository_history",
                get.clone(),
                "/api/v1/repositories/acme/app/history?days=3".into(),
                Value::Null,
            )
            .await,
        );
        record(
            call(
                "referrer_list",
                get.clone(),
                format!("/api/v1/repositories/acme/app/referrers/{digest}"),
                Value::Null,
            )
            .await,
        );
        let policy = record(
            call(
                "policy_create",
                post.clone(),
                "/api/v1/repositories/acme/app/policies".into(),
                serde_json::json!({"target": "acme/other", "tag_template": "%n", "apply_existing": true,
                               "rules": [{"field": "tag", "operator": "eq", "values": ["1"]}]}),
            )
            .await,
        );
        let policy = format!(
            "/api/v1/repositories/acme/app/policies/{}",
            policy["id"].as_str().unwrap()
        );
        record(
            call(
                "policy_list",
                get.clone(),
                "/api/v1/repositories/acme/app/policies".into(),
                Value::Null,
            )
            .await,
        );
        record(call("policy_get", get.clone(), policy.clone(), Value::Null).await);
        record(
            call(
                "policy_update",
                put.clone(),
                policy.clone(),
                serde_json::json!({"target": "acme/other", "tag_template": "%n-x", "enabled": false}),
            )
            .await,
        );
        record(
            call(
                "policy_dry_run",
                post.clone(),
                format!("{policy}/dry-run"),
                serde_json::json!({"tag": "1"}),
            )
            .await,
        );
        record(call("policy_apply", post.clone(), format!("{policy}/apply"), Value::Null).await);
        record(
            call(
                "policy_evaluations",
                get.clone(),
                format!("{policy}/evaluations"),
                Value::Null,
            )
            .await,
        );
        let hook = record(call("repository_webhook_create", post.clone(), "/api/v1/repositories/acme/app/webhooks".into(),
            serde_json::json!({"url": "http://127.0.0.1:9/hook?token=x", "events": ["TAG_PUSH"], "secret": "a-long-webhook-secret",
                               "headers": {"X-Team": "release"}})).await);
        let hook = format!("/api/v1/webhooks/{}", hook["id"].as_str().unwrap());
        record(call("namespace_webhook_create", post.clone(), "/api/v1/namespaces/acme/webhooks".into(),
            serde_json::json!({"url": "http://127.0.0.1:9/ns", "events": ["SCAN_FAILED"], "secret": "a-long-webhook-secret"})).await);
        record(
            call(
                "repository_webhooks",
                get.clone(),
                "/api/v1/repositories/acme/app/webhooks".into(),
                Value::Null,
            )
            .await,
        );
        record(
            call(
                "namespace_webhooks",
                get.clone(),
                "/api/v1/namespaces/acme/webhooks".into(),
                Value::Null,
            )
            .await,
        );
        record(
            call(
                "webhook_update",
                put.clone(),
                hook.clone(),
                serde_json::json!({"enabled": true}),
            )
            .await,
        );
        record(call("webhook_get", get.clone(), hook.clone(), Value::Null).await);
        record(call("webhook_test", post.clone(), format!("{hook}/test"), Value::Null).await);
        // The test delivery is attempted (nothing listens on port 9).
        let deliveries = loop {
            let (_, _, v) = call(
                "webhook_deliveries",
                get.clone(),
                format!("{hook}/deliveries"),
                Value::Null,
            )
            .await;
            let tried = v["deliveries"][0]["attempts"].as_array().is_some_and(|a| !a.is_empty());
            if tried {
                break v;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        record(("webhook_deliveries", 200, deliveries.clone()));
        let delivery = deliveries["deliveries"][0]["id"].as_str().unwrap().to_string();
        record(
            call(
                "webhook_redeliver",
                post.clone(),
                format!("{hook}/deliveries/{delivery}/redeliver"),
                Value::Null,
            )
            .await,
        );
        // An image whose scan finishes (one empty layer), for the scan's views.
        let (scanned, _) = s
            .push_image("acme/app", "scanned", b"{\"os\":\"linux\"}", &[&[0u8; 1024]])
            .await;
        let scan = format!("/api/v1/scans/{scanned}");
        let done = 'wait: {
            for _ in 0..300 {
                let (_, _, v) = call(
                    "scan_get",
                    get.clone(),
                    format!("{scan}?repository=acme/app"),
                    Value::Null,
                )
                .await;
                if v["status"] == "done" {
                    break 'wait v;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("the scan of {scanned} did not finish within 30 s");
        };
        record(("scan_get", 200, done));
        for (op, view) in [
            ("scan_layers", "layers"),
            ("scan_components", "components"),
            ("scan_vulnerabilities", "vulnerabilities"),
        ] {
            record(
                call(
                    op,
                    get.clone(),
                    format!("{scan}/{view}?repository=acme/app"),
                    Value::Null,
                )
                .await,
            );
        }
        record(
            call(
                "scan_request",
                post.clone(),
                format!("{scan}?repository=acme/app"),
                Value::Null,
            )
            .await,
        );
        record(
            call(
                "vulndb_sources_set",
                put.clone(),
                "/api/v1/vulndb/sources".into(),
                serde_json::json!({"sources": null}),
            )
            .await,
        );
        record(
            call(
                "scan_get",
                get.clone(),
                format!("/api/v1/scans/{digest}?repository=acme/app"),
                Value::Null,
            )
            .await,
        );
        // Replication: a registry nothing listens at, a rule, a run that fails.
        let upstream = serde_json::json!({"name": "up", "url": "http://127.0.0.1:9", "username": "bot",
                                          "password": "upstream-password"});
        record(call("registry_create", post.clone(), "/api/v1/registries".into(), upstream).await);
        record(call("registry_list", get.clone(), "/api/v1/registries".into(), Value::Null).await);
        record(call("registry_get", get.clone(), "/api/v1/registries/up".into(), Value::Null).await);
        let change = serde_json::json!({"tls_verify": true});
        record(call("registry_update", put.clone(), "/api/v1/registries/up".into(), change).await);
        record(
            call(
                "registry_test",
                post.clone(),
                "/api/v1/registries/up/test".into(),
                Value::Null,
            )
            .await,
        );
        let rule = serde_json::json!({"name": "r", "registry": "up", "direction": "pull", "source": "library/alpine",
                                      "tags": ["*"], "target": "mirror", "interval_secs": 0});
        let rules = "/api/v1/replication-rules";
        let rule = record(call("replication_rule_create", post.clone(), rules.into(), rule).await);
        let base = format!("{rules}/{}", rule["id"].as_str().unwrap());
        record(call("replication_rule_list", get.clone(), rules.into(), Value::Null).await);
        record(call("replication_rule_get", get.clone(), base.clone(), Value::Null).await);
        let change = serde_json::json!({"tags": ["3.*"]});
        record(call("replication_rule_update", put.clone(), base.clone(), change).await);
        record(call("replication_rule_run", post.clone(), format!("{base}/run"), Value::Null).await);
        let finished = |v: &Value| {
            v.as_array()
                .is_some_and(|l| !l.is_empty() && l.iter().all(|r| !r["finished_at"].is_null()))
        };
        let runs = common::until(&s, &format!("{base}/runs"), finished).await;
        record(("replication_rule_runs", 200, runs));
        record(call("scanner_status", get.clone(), "/api/v1/scanner".into(), Value::Null).await);
        record(call("vulndb_status", get.clone(), "/api/v1/vulndb".into(), Value::Null).await);
        record(
            call(
                "vulndb_sources_get",
                get.clone(),
                "/api/v1/vulndb/sources".into(),
                Value::Null,
            )
            .await,
        );
        record(call("audit_list", get.clone(), "/api/v1/audit?limit=5".into(), Value::Null).await);
        record(call("audit_verify", get.clone(), "/api/v1/audit/verify".into(), Value::Null).await);
        record(
            call(
                "admission",
                post.clone(),
                "/api/v1/admission".into(),
                serde_json::json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": {"uid": "u1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                            "object": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}),
            )
            .await,
        );

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("doc.json"), serde_json::to_vec(&doc).unwrap()).unwrap();
        std::fs::write(dir.path().join("calls.json"), serde_json::to_vec(&calls).unwrap()).unwrap();
        let check = |calls: &str| {
            Command::new("python3")
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/validate_openapi_responses.py"
                ))
                .arg(dir.path().join("doc.json"))
                .arg(dir.path().join(calls))
                .output()
                .unwrap()
        };
        let out = check("calls.json");
        eprintln!("{}: {}", s.label(), String::from_utf8_lossy(&out.stdout).trim());
        assert!(
            out.status.success(),
            "{}: {}{}",
            s.label(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Strict indeed: a property the schema lacks is refused.
        let mut extra = calls[0].clone();
        extra[2]["nickname"] = "bobby".into();
        std::fs::write(dir.path().join("extra.json"), serde_json::to_vec(&[extra]).unwrap()).unwrap();
        assert!(!check("extra.json").status.success(), "an undocumented property passed");
    }
}

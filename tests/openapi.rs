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
        if template != "/api/v1/openapi.json" {
            // Its handler refused an anonymous caller (401; a webhook
            // that does not exist is a 404 first; a missing query 400).
            assert!((400..500).contains(&status), "{method} {path}: {status} {text}");
        } else {
            assert_eq!(status, 200);
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

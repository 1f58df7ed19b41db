//! The server log (issue 21): with `log_format = json` the real binary
//! writes one INFO line, with its facts as separate keys, for a promotion,
//! the signature a promotion's `sign_as` makes, a webhook delivery attempt,
//! a pull that a pull rule refuses, and a vulnerability database update
//! from a feed on 127.0.0.1; secrets stay out of it; a promotion a restart
//! makes is delivered, audited and logged. On SQLite and, with
//! `PORTCULLIS_TEST_POSTGRES`, PostgreSQL.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::feed::Feed;
use common::{backends, database_args, image_manifest, Backend, ServerProcess};
use portcullis_oci::Digest;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ADMIN_PW: &str = "logging-admin-password";
const SECRET: &str = "a-webhook-secret-never-logged";
const URL_TOKEN: &str = "query-token-never-logged";

/// A receiver on 127.0.0.1 that answers 200 to every request and keeps
/// the `x-portcullis-event` header of each.
async fn receiver() -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Headers, then the body's content-length bytes.
                loop {
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some(end) = text.find("\r\n\r\n") else { continue };
                    let head = text[..end].to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap_or(0));
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    let event = head
                        .lines()
                        .find_map(|l| l.strip_prefix("x-portcullis-event:"))
                        .map(|v| v.trim().to_ascii_uppercase())
                        .unwrap_or_default();
                    seen.lock().unwrap().push(event);
                    break;
                }
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
                let _ = conn.shutdown().await;
            });
        }
    });
    (addr, events)
}

/// Pushes a one-layer image to `acme/app:1` without credentials (the
/// spawned server lets anonymous callers push); its digest.
async fn push_anonymously(http: &reqwest::Client, base: &str, config: &[u8], layer: &[u8]) -> String {
    for blob in [config, layer] {
        let d = Digest::sha256_of(blob);
        let r = http
            .post(format!("{base}/v2/acme/app/blobs/uploads/?digest={d}"))
            .body(blob.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let manifest = image_manifest(
        &Digest::sha256_of(config),
        config.len(),
        &[(Digest::sha256_of(layer), layer.len())],
    );
    let digest = Digest::sha256_of(&manifest).to_string();
    let r = http
        .put(format!("{base}/v2/acme/app/manifests/1"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    digest
}

/// `method path body` as `admin` (Basic): (status, body text). The
/// request is built before the future, which borrows nothing.
fn as_admin(
    http: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> impl std::future::Future<Output = (u16, String)> {
    let req = http
        .request(method, format!("{base}{path}"))
        .basic_auth("admin", Some(ADMIN_PW));
    let req = if body.is_null() { req } else { req.json(&body) };
    async move {
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    }
}

fn lines(log: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

/// The INFO lines whose `log` field is `kind`.
fn of_kind(lines: &[Value], kind: &str) -> Vec<Value> {
    lines
        .iter()
        .filter(|l| l["level"] == "INFO" && l["fields"]["log"] == kind)
        .map(|l| l["fields"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_has_promotions_signatures_deliveries_and_refused_pulls() {
    for backend in backends() {
        logged_on(&backend).await;
    }
}

async fn logged_on(backend: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let database = database_args(backend, &data).await;
    let database: Vec<&str> = database.iter().map(String::as_str).collect();
    let log = dir.path().join("server.log");
    let feed = Feed::start().await;
    let db = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/vulndb/npm.osv.jsonl.gz"
    ))
    .unwrap();
    feed.publish("/npm.osv.jsonl.gz", &db);
    // One source imports, one fails (nothing is published there).
    let sources = format!(
        "{},{}",
        feed.url("/npm.osv.jsonl.gz"),
        feed.url("/missing.osv.jsonl.gz")
    );
    let envs = [
        ("PORTCULLIS_ADMIN_PASSWORD", ADMIN_PW),
        ("PORTCULLIS_LOG_FORMAT", "json"),
        ("PORTCULLIS_WEBHOOK_ALLOW", "127.0.0.1"),
        ("PORTCULLIS_WEBHOOK_POLL_MS", "50"),
        ("RUST_LOG", "info,sqlx=warn"),
        ("PORTCULLIS_VULNDB_SOURCES", sources.as_str()),
        ("PORTCULLIS_VULNDB_UPDATE_INTERVAL", "1s"),
    ];
    let server = ServerProcess::spawn_logged(&data, &database, &envs, &log);
    let base = server.base.clone();
    let http = reqwest::Client::new();
    let api = |method: reqwest::Method, path: &str, body: Value| as_admin(&http, &base, method, path, body);
    for org in ["ci", "acme"] {
        let (st, v) = api(reqwest::Method::POST, "/api/v1/orgs", json!({"name": org})).await;
        assert_eq!(st, 201, "{v}");
    }
    let (st, v) = api(
        reqwest::Method::POST,
        "/api/v1/namespaces/ci/service-accounts",
        json!({"name": "release"}),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = api(
        reqwest::Method::POST,
        "/api/v1/accounts/ci+release/signing-key",
        Value::Null,
    )
    .await;
    assert_eq!(st, 201, "{v}");

    let (addr, events) = receiver().await;
    let hook_url = format!("http://127.0.0.1:{}/hook?token={URL_TOKEN}", addr.port());
    let (st, hook) = api(
        reqwest::Method::POST,
        "/api/v1/namespaces/acme/webhooks",
        json!({"url": hook_url, "secret": SECRET, "events": ["PROMOTION"]}),
    )
    .await;
    assert_eq!(st, 201, "{hook}");
    let hook: Value = serde_json::from_str(&hook).unwrap();
    let hook_id = hook["id"].as_str().unwrap().to_string();
    let (st, policy) = api(
        reqwest::Method::POST,
        "/api/v1/repositories/acme/app/policies",
        json!({"target": "acme/release", "tag_template": "r%n", "sign_as": "ci+release",
               "rules": [{"field": "tag", "operator": "eq", "values": ["1"]}]}),
    )
    .await;
    assert_eq!(st, 201, "{policy}");
    let policy: Value = serde_json::from_str(&policy).unwrap();
    let policy_id = policy["id"].as_str().unwrap().to_string();

    // An anonymous push (the test server lets anonymous callers push) of acme/app:1.
    let digest = push_anonymously(&http, &base, b"{\"logging\":1}", b"a layer of the logging test").await;

    let deadline = Instant::now() + Duration::from_secs(30);
    while !events.lock().unwrap().iter().any(|e| e == "PROMOTION") {
        assert!(
            Instant::now() < deadline,
            "no PROMOTION delivery: {:?}",
            events.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The source repository now serves only images signed by ci+release.
    let (st, v) = api(
        reqwest::Method::PUT,
        "/api/v1/repositories/acme/app",
        json!({"pull_rule": {"require_signed_by": {"accounts": ["ci+release"]}}}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let r = http
        .get(format!("{base}/v2/acme/app/manifests/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "an anonymous pull of an unsigned image");

    // The delivery is logged after its response, the update after its
    // import, the promotion after its signature and attestation (its
    // webhook may be delivered first); give the lines a moment.
    let deadline = Instant::now() + Duration::from_secs(30);
    let all = loop {
        let all = lines(&log);
        let done = ["webhook_delivery", "vulndb_update", "promotion"]
            .iter()
            .all(|k| !of_kind(&all, k).is_empty());
        if done || Instant::now() > deadline {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    drop(server);
    let text = std::fs::read_to_string(&log).unwrap();
    for secret in [SECRET, URL_TOKEN, ADMIN_PW] {
        assert!(!text.contains(secret), "{secret} is in the log");
    }

    let promotions = of_kind(&all, "promotion");
    assert_eq!(promotions.len(), 1, "{promotions:?}");
    let p = &promotions[0];
    assert_eq!(p["source_repository"], "acme/app", "{p}");
    assert_eq!(p["source_tag"], "1", "{p}");
    assert_eq!(p["target_repository"], "acme/release", "{p}");
    assert_eq!(p["target_tag"], "r1", "{p}");
    assert_eq!(p["digest"], digest.as_str(), "{p}");
    assert_eq!(p["policy_id"], policy_id.as_str(), "{p}");
    assert_eq!(p["signed"], true, "{p}");
    assert_eq!(p["sign_as"], "ci+release", "{p}");

    let signatures = of_kind(&all, "signature");
    assert_eq!(signatures.len(), 1, "{signatures:?}");
    let s = &signatures[0];
    assert_eq!(s["event"], "IMAGE_SIGNED", "{s}");
    assert_eq!(s["repository"], "acme/release", "{s}");
    assert_eq!(s["digest"], digest.as_str(), "{s}");
    assert_eq!(s["signed_by"], "ci+release", "{s}");
    assert!(s["key_id"].as_str().is_some_and(|k| !k.is_empty()), "{s}");

    let deliveries = of_kind(&all, "webhook_delivery");
    let d = deliveries
        .iter()
        .find(|d| d["event_type"] == "PROMOTION")
        .unwrap_or_else(|| panic!("no PROMOTION delivery line: {deliveries:?}"));
    assert_eq!(d["hook_id"], hook_id.as_str(), "{d}");
    assert_eq!(d["status"], 200, "{d}");
    assert_eq!(d["attempt"], 1, "{d}");
    assert_eq!(d["outcome"], "delivered", "{d}");
    assert!(d["latency_ms"].is_u64() || d["latency_ms"].is_i64(), "{d}");
    let url = d["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("http://127.0.0.1:{}/hook", addr.port())),
        "{d}"
    );

    let refused = of_kind(&all, "pull_refused");
    assert_eq!(refused.len(), 1, "{refused:?}");
    let r = &refused[0];
    assert_eq!(r["repository"], "acme/app", "{r}");
    assert_eq!(r["reference"], "1", "{r}");
    assert_eq!(r["digest"], digest.as_str(), "{r}");
    assert_eq!(r["rule"], "require_signed_by", "{r}");
    assert!(r["reason"].as_str().unwrap().contains("not signed"), "{r}");

    let updates = of_kind(&all, "vulndb_update");
    let u = updates
        .iter()
        .find(|u| u["generation"].is_u64())
        .unwrap_or_else(|| panic!("no update with a new generation: {updates:?}"));
    assert_eq!(u["sources"], 2, "{u}");
    assert_eq!(u["imported"], 1, "{u}");
    assert_eq!(u["failed"], 1, "{u}");
    assert!(u["failed_sources"].as_str().is_some_and(|f| !f.is_empty()), "{u}");
    assert!(u["ms"].is_u64(), "{u}");
}

/// A promotion that a restart makes (the database arrives with the new
/// process, re-matching an image that was waiting for one) is never silent:
/// the webhook created before the restart hears PROMOTION, the trail holds
/// the promotion, and the log has its line. On both databases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_made_by_a_restart_is_delivered_audited_and_logged() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let database = database_args(&backend, &data).await;
        let database: Vec<&str> = database.iter().map(String::as_str).collect();
        let envs = [
            ("PORTCULLIS_ADMIN_PASSWORD", ADMIN_PW),
            ("PORTCULLIS_LOG_FORMAT", "json"),
            ("PORTCULLIS_WEBHOOK_ALLOW", "127.0.0.1"),
            ("PORTCULLIS_WEBHOOK_POLL_MS", "50"),
            ("RUST_LOG", "info,sqlx=warn"),
        ];
        let http = reqwest::Client::new();
        let (addr, events) = receiver().await;

        // Before: a hook, a policy that needs a scan against a database,
        // and an image scanned while there is none (its evaluation waits).
        let first = ServerProcess::spawn_logged(&data, &database, &envs, &dir.path().join("first.log"));
        let base = first.base.clone();
        let (st, v) = as_admin(
            &http,
            &base,
            reqwest::Method::POST,
            "/api/v1/orgs",
            json!({"name": "acme"}),
        )
        .await;
        assert_eq!(st, 201, "{v}");
        let hook = json!({"url": format!("http://127.0.0.1:{}/hook", addr.port()), "secret": SECRET,
                          "events": ["PROMOTION"]});
        let (st, v) = as_admin(
            &http,
            &base,
            reqwest::Method::POST,
            "/api/v1/namespaces/acme/webhooks",
            hook,
        )
        .await;
        assert_eq!(st, 201, "{v}");
        let policy = json!({"target": "acme/release", "tag_template": "r%n",
                            "rules": [{"field": "vulnerability_critical", "operator": "lte", "values": ["0"]}]});
        let (st, v) = as_admin(
            &http,
            &base,
            reqwest::Method::POST,
            "/api/v1/repositories/acme/app/policies",
            policy,
        )
        .await;
        assert_eq!(st, 201, "{v}");
        let policy_id = serde_json::from_str::<Value>(&v).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let layer = common::tar_of(&[("etc/restart-test", b"a file of the restart test")]);
        let digest = push_anonymously(&http, &base, b"{\"restart\":1}", &layer).await;
        let evaluations = format!("/api/v1/repositories/acme/app/policies/{policy_id}/evaluations");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, v) = as_admin(&http, &base, reqwest::Method::GET, &evaluations, Value::Null).await;
            // Scanned, and waiting for a database.
            if v.contains("before any vulnerability database") {
                break;
            }
            assert!(Instant::now() < deadline, "no evaluation waiting for a database: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(first);
        assert!(events.lock().unwrap().is_empty(), "nothing promoted before the restart");

        // The restart brings the database (an update source on 127.0.0.1).
        let feed = Feed::start().await;
        let db = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/vulndb/npm.osv.jsonl.gz"
        ))
        .unwrap();
        feed.publish("/npm.osv.jsonl.gz", &db);
        let source = feed.url("/npm.osv.jsonl.gz");
        let mut envs = envs.to_vec();
        envs.push(("PORTCULLIS_VULNDB_SOURCES", source.as_str()));
        envs.push(("PORTCULLIS_VULNDB_UPDATE_INTERVAL", "1s"));
        let log = dir.path().join("second.log");
        let second = ServerProcess::spawn_logged(&data, &database, &envs, &log);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !events.lock().unwrap().iter().any(|e| e == "PROMOTION") {
            if Instant::now() > deadline {
                let scan = as_admin(
                    &http,
                    &second.base,
                    reqwest::Method::GET,
                    &format!("/api/v1/scans/{digest}"),
                    Value::Null,
                )
                .await;
                let evals = as_admin(&http, &second.base, reqwest::Method::GET, &evaluations, Value::Null).await;
                panic!(
                    "no PROMOTION delivery after the restart; scan {scan:?}; evaluations {evals:?}; its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (_, v) = as_admin(
            &http,
            &second.base,
            reqwest::Method::GET,
            "/api/v1/audit?action=promotion",
            Value::Null,
        )
        .await;
        let audit: Value = serde_json::from_str(&v).unwrap();
        let records = audit["records"].as_array().unwrap();
        assert_eq!(records.len(), 1, "{audit}");
        assert_eq!(records[0]["repository"], "acme/release", "{audit}");
        assert_eq!(records[0]["digest"], digest.as_str(), "{audit}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let promotions = loop {
            let found = of_kind(&lines(&log), "promotion");
            if !found.is_empty() || Instant::now() > deadline {
                break found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(promotions.len(), 1, "{promotions:?}");
        assert_eq!(promotions[0]["target_tag"], "r1", "{promotions:?}");
    }
}

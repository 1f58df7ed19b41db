//! Webhooks end to end, on SQLite and PostgreSQL, with skopeo pushing and a
//! receiver on 127.0.0.1 (a small HTTP server here): signed events in
//! order, retries logged, delivery across a SIGKILL, the URL's query string
//! intact in deliveries and redacted everywhere it is shown, proxies
//! ignored, and internal targets refused at creation and at delivery.
//! Deliveries only ever go to 127.0.0.0/8, even if the filter failed.

mod common;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    backends, call, database_args, have_tool, image_manifest, tar_of, write_layout, ServerProcess, TestServer,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "a-webhook-secret-of-some-length";
const SCHEMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/webhook-event.v1.json");
const VERIFY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webhook_verify.py");

#[derive(Debug, Clone)]
struct Received {
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
    fn event(&self) -> &str {
        self.header("x-portcullis-event")
    }
    fn payload(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// An HTTP/1.1 receiver answering with the statuses of `plan` in turn,
/// then 200; it records every request. With `close`, it closes each
/// connection after one answer, so the next request connects (and
/// resolves) anew instead of reusing a pooled connection.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    plan: Arc<Mutex<VecDeque<u16>>>,
    close: bool,
}

impl Receiver {
    async fn listen(&self, addr: &str) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let local = listener.local_addr().unwrap();
        let me = self.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(me.clone().serve(conn));
            }
        });
        local
    }

    async fn serve(self, mut conn: tokio::net::TcpStream) {
        let mut buf = Vec::new();
        loop {
            let end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i;
                }
                let mut chunk = [0u8; 4096];
                match conn.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let mut lines = head.split("\r\n");
            let target = lines.next().unwrap_or("").split(' ').nth(1).unwrap_or("").to_string();
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let mut chunk = [0u8; 4096];
                match conn.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
            buf.drain(..end + 4 + len);
            let status = self.plan.lock().unwrap().pop_front().unwrap_or(200);
            self.got.lock().unwrap().push(Received { target, headers, body });
            let connection = if self.close { "close" } else { "keep-alive" };
            let reply = format!("HTTP/1.1 {status} X\r\nconnection: {connection}\r\ncontent-length: 2\r\n\r\nok");
            if conn.write_all(reply.as_bytes()).await.is_err() || self.close {
                return;
            }
        }
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (bounded) until `ready` holds for what arrived.
    async fn until(&self, what: &str, ready: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        for _ in 0..600 {
            let got = self.received();
            if ready(&got) {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{what}: not within 30 s; got {:?}",
            self.received()
                .iter()
                .map(|r| r.event().to_string())
                .collect::<Vec<_>>()
        );
    }
}

/// Checks signatures (and that a wrong secret fails) and the schema, as an
/// independent receiver would: Python's hmac and jsonschema.
fn verify(received: &[Received], dir: &Path) {
    let list: Vec<Value> = received
        .iter()
        .map(|r| {
            json!({"timestamp": r.header("x-portcullis-timestamp"), "delivery": r.header("x-portcullis-delivery"),
                   "event": r.event(), "signature": r.header("x-portcullis-signature"), "body": r.body})
        })
        .collect();
    let file = dir.join("deliveries.json");
    std::fs::write(&file, serde_json::to_vec(&list).unwrap()).unwrap();
    let out = std::process::Command::new("python3")
        .args([VERIFY, SCHEMA, file.to_str().unwrap(), SECRET])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_events_in_order_with_retries_and_the_query_string_intact() {
    if !have_tool("skopeo") {
        return;
    }
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let work = tempfile::tempdir().unwrap();
        let receiver = Receiver::default();
        let addr = receiver.listen("127.0.0.1:0").await;
        assert_eq!(
            call(&s, reqwest::Method::POST, "/api/v1/orgs", json!({"name": "acme"}))
                .await
                .0,
            201
        );
        // A GitLab pipeline-trigger URL: its query string must arrive as given.
        let trigger = format!("http://{addr}/api/v4/projects/7/trigger/pipeline?token=glptt-T0k3n&ref=main");
        let (st, hook) = call(
            &s,
            reqwest::Method::POST,
            "/api/v1/namespaces/acme/webhooks",
            json!({"url": trigger, "secret": SECRET, "headers": {"Authorization": "Bearer extra-header-value"},
                   "events": ["MANIFEST_PUSH", "TAG_PUSH", "SCAN_COMPLETED", "SCAN_FAILED", "PROMOTION",
                              "TAG_DELETE", "MANIFEST_DELETE"]}),
        )
        .await;
        assert_eq!(st, 201, "{hook}");
        assert!(!hook.to_string().contains(SECRET) && !hook.to_string().contains("extra-header-value"));
        assert!(!hook.to_string().contains("glptt-T0k3n"), "{hook}");
        let id = hook["id"].as_str().unwrap().to_string();
        let (st, _) = call(
            &s,
            reqwest::Method::POST,
            "/api/v1/repositories/acme/app/policies",
            json!({"target": "acme/release", "tag_template": "r%n", "rules": [{"field": "tag", "operator": "eq", "values": ["1"]}]}),
        )
        .await;
        assert_eq!(st, 201);

        // skopeo pushes acme/app:1.
        let layout = work.path().join("layout");
        write_layout(
            &layout,
            "v1",
            &[tar_of(&[("etc/os-release", b"ID=debian\nVERSION_ID=\"12\"\n")])],
        );
        let h = s.base.trim_start_matches("http://").to_string();
        let out = tokio::process::Command::new("skopeo")
            .args([
                "copy",
                "--dest-tls-verify=false",
                "--dest-creds",
                &format!("admin:{}", common::ADMIN_PASSWORD),
                &format!("oci:{}:v1", layout.display()),
                &format!("docker://{h}/acme/app:1"),
            ])
            .env("HOME", work.path())
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let got = receiver
            .until("push, promotion and scan events", |g| {
                ["MANIFEST_PUSH", "TAG_PUSH", "PROMOTION", "SCAN_COMPLETED"]
                    .iter()
                    .all(|e| g.iter().any(|r| r.event() == *e))
            })
            .await;
        let kinds: Vec<&str> = got.iter().map(Received::event).collect();
        let pos = |k: &str| kinds.iter().position(|e| *e == k).unwrap();
        assert!(
            pos("MANIFEST_PUSH") < pos("TAG_PUSH") && pos("TAG_PUSH") < pos("SCAN_COMPLETED"),
            "{label}: {kinds:?}"
        );
        let push = &got[pos("TAG_PUSH")];
        assert_eq!(
            push.target,
            "/api/v4/projects/7/trigger/pipeline?token=glptt-T0k3n&ref=main"
        );
        assert_eq!(push.header("authorization"), "Bearer extra-header-value");
        let p = push.payload();
        assert_eq!(
            (p["repository"].as_str(), p["tag"].as_str()),
            (Some("acme/app"), Some("1")),
            "{p}"
        );
        assert_eq!(p["actor"]["account"], "admin");
        assert_eq!(p["registry"], s.base.as_str());
        let promotion = got[pos("PROMOTION")].payload();
        assert_eq!(promotion["promotion"]["target_tag"], "r1", "{promotion}");
        let scan = got[pos("SCAN_COMPLETED")].payload();
        assert!(scan["summary"]["critical"].is_i64(), "{scan}");

        // A tag delete and a ping, then every payload is checked.
        let r = s
            .http
            .delete(s.url("/v2/acme/release/manifests/r1"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let (st, _) = call(
            &s,
            reqwest::Method::POST,
            &format!("/api/v1/webhooks/{id}/test"),
            Value::Null,
        )
        .await;
        assert_eq!(st, 202);
        let got = receiver
            .until("TAG_DELETE and PING", |g| {
                g.iter().any(|r| r.event() == "TAG_DELETE") && g.iter().any(|r| r.event() == "PING")
            })
            .await;
        verify(&got, work.path());

        // A receiver that fails three times: delivered on the fourth attempt.
        let flaky = Receiver::default();
        flaky.plan.lock().unwrap().extend([500, 500, 500]);
        let faddr = flaky.listen("127.0.0.1:0").await;
        let (st, fhook) = call(
            &s,
            reqwest::Method::POST,
            "/api/v1/repositories/acme/flaky/webhooks",
            json!({"url": format!("http://{faddr}/hook"), "secret": SECRET, "events": ["MANIFEST_PUSH"]}),
        )
        .await;
        assert_eq!(st, 201, "{fhook}");
        s.push_image("acme/flaky", "1", b"{\"f\":1}", &[b"flaky layer"]).await;
        flaky.until("four attempts", |g| g.len() == 4).await;
        let fid = fhook["id"].as_str().unwrap();
        let mut log = Value::Null;
        for _ in 0..100 {
            (_, log) = call(
                &s,
                reqwest::Method::GET,
                &format!("/api/v1/webhooks/{fid}/deliveries"),
                Value::Null,
            )
            .await;
            if log["deliveries"][0]["status"] == "delivered" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let d = &log["deliveries"][0];
        assert_eq!(d["status"], "delivered", "{label}: {log}");
        let codes: Vec<i64> = d["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["status_code"].as_i64().unwrap())
            .collect();
        assert_eq!(codes, [500, 500, 500, 200], "{label}");
        assert_eq!(flaky.received().len(), 4, "delivered once, not again");
        // Redelivery is a new attempt series of the same event.
        let did = d["id"].as_str().unwrap();
        let (st, _) = call(
            &s,
            reqwest::Method::POST,
            &format!("/api/v1/webhooks/{fid}/deliveries/{did}/redeliver"),
            Value::Null,
        )
        .await;
        assert_eq!(st, 202);
        let again = flaky.until("the redelivery", |g| g.len() == 5).await;
        assert_eq!(again[4].payload()["id"], again[3].payload()["id"]);
        // Secrets never reach the audit trail.
        let (_, audit) = call(
            &s,
            reqwest::Method::GET,
            "/api/v1/audit?action=webhook.create",
            Value::Null,
        )
        .await;
        assert_eq!(audit["records"].as_array().unwrap().len(), 2);
        assert!(!audit.to_string().contains(SECRET), "{label}");
        assert!(!audit.to_string().contains("glptt-T0k3n"), "{label}: {audit}");
    }
}

/// The receiver is down; two pushes happen; the server is killed with
/// SIGKILL and started again; the receiver comes back: every event of both
/// pushes arrives, none twice, in commit order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_survive_a_killed_server_and_arrive_in_commit_order() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let db = database_args(&backend, &data).await;
        let db_args: Vec<&str> = db.iter().map(String::as_str).collect();
        let port = common::free_port();
        let envs = [
            ("PORTCULLIS_ADMIN_PASSWORD", "webhook-admin-password"),
            ("PORTCULLIS_WEBHOOK_ALLOW", "127.0.0.1"),
            ("PORTCULLIS_WEBHOOK_RETRY_BASE_MS", "100"),
            ("PORTCULLIS_WEBHOOK_POLL_MS", "50"),
        ];
        let http = reqwest::Client::new();
        let mut server = ServerProcess::spawn_env(&data, &db_args, &envs);
        let r = http
            .post(format!("{}/api/v1/repositories/lib/app/webhooks", server.base))
            .basic_auth("admin", Some("webhook-admin-password"))
            .json(
                &json!({"url": format!("http://127.0.0.1:{port}/events"), "secret": SECRET,
                          "events": ["MANIFEST_PUSH", "TAG_PUSH"]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let mut expected = Vec::new();
        for n in 1..=2 {
            let base = server.base.clone();
            let config = format!("{{\"n\":{n}}}");
            let layer = format!("layer {n}");
            for blob in [config.as_bytes(), layer.as_bytes()] {
                let d = portcullis_oci::Digest::sha256_of(blob);
                let r = http
                    .post(format!("{base}/v2/lib/app/blobs/uploads/?digest={d}"))
                    .body(blob.to_vec())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
            }
            let m = image_manifest(
                &portcullis_oci::Digest::sha256_of(config.as_bytes()),
                config.len(),
                &[(portcullis_oci::Digest::sha256_of(layer.as_bytes()), layer.len())],
            );
            let r = http
                .put(format!("{base}/v2/lib/app/manifests/{n}"))
                .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                .body(m.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            let d = portcullis_oci::Digest::sha256_of(&m).to_string();
            expected.push(("MANIFEST_PUSH".to_string(), d.clone()));
            expected.push(("TAG_PUSH".to_string(), d));
        }
        tokio::time::sleep(Duration::from_millis(300)).await; // some attempts fail meanwhile
        sigkill(server.pid());
        let _ = server.child.wait();
        let server = ServerProcess::spawn_env(&data, &db_args, &envs);
        let receiver = Receiver::default();
        receiver.listen(&format!("127.0.0.1:{port}")).await;
        let got = receiver.until("both pushes' events", |g| g.len() >= 4).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let got = if receiver.received().len() > got.len() {
            receiver.received()
        } else {
            got
        };
        let seen: Vec<(String, String)> = got
            .iter()
            .map(|r| {
                (
                    r.event().to_string(),
                    r.payload()["digest"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(seen, expected, "in commit order, each once");
        drop(server);
    }
}

/// SIGKILL, as a crash would end the process.
fn sigkill(pid: u32) {
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
}

/// Polls hook `id`'s delivery log until `ready` holds for it (bounded).
async fn log_until(s: &TestServer, id: &str, what: &str, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut log = Value::Null;
    for _ in 0..600 {
        (_, log) = call(
            s,
            reqwest::Method::GET,
            &format!("/api/v1/webhooks/{id}/deliveries"),
            Value::Null,
        )
        .await;
        if let Some(list) = log["deliveries"].as_array().filter(|l| ready(l)) {
            return list.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{}: {what}: not within 30 s: {log}", s.label());
}

/// The first error recorded for the newest delivery of hook `id`.
async fn newest_error(s: &TestServer, id: &str, deliveries: usize) -> String {
    let log = log_until(s, id, "an attempt of the newest delivery", |l| {
        l.len() >= deliveries && l[0]["attempts"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    log[0]["attempts"][0]["error"].as_str().unwrap_or_default().to_string()
}

async fn ping(s: &TestServer, id: &str) {
    let (st, v) = call(
        s,
        reqwest::Method::POST,
        &format!("/api/v1/webhooks/{id}/test"),
        Value::Null,
    )
    .await;
    assert_eq!(st, 202, "{v}");
}

/// A hook created with `url`, and hook `id` changed to it: both refused
/// (400); the two answers, as "POST: …" and "PUT: …".
async fn refused_url(s: &TestServer, id: &str, url: &str) -> [String; 2] {
    let create = json!({"url": url, "secret": SECRET, "events": ["TAG_PUSH"]});
    let change = json!({"url": url});
    let mut out = [String::new(), String::new()];
    for (i, (method, path, body)) in [
        (
            reqwest::Method::POST,
            "/api/v1/repositories/acme/app/webhooks".to_string(),
            create,
        ),
        (reqwest::Method::PUT, format!("/api/v1/webhooks/{id}"), change),
    ]
    .into_iter()
    .enumerate()
    {
        let (st, v) = call(s, method.clone(), &path, body).await;
        assert_eq!(st, 400, "{} {method} {url}: {v}", s.label());
        out[i] = format!("{method}: {v}");
    }
    out
}

/// Internal targets in every form the filter knows: each is refused when a
/// hook is created with it and when a hook is changed to it. Every URL
/// names an address, judged without connecting anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_targets_are_refused_when_saved() {
    let internal = [
        ("http://10.0.0.1/hook", "private"),
        ("http://[::1]:8080/hook", "loopback"),
        ("http://169.254.169.254/latest", "link-local"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://127.0.0.2:8080/", "loopback, only 127.0.0.1 is allowed here"),
        ("http://2130706434/", "127.0.0.2 in decimal"),
        ("http://0x7f.2/", "127.0.0.2 in hexadecimal, short form"),
        ("http://[::127.0.0.1]/", "IPv4-compatible"),
        ("http://[::8.8.8.8]/", "IPv4-compatible, refused whole"),
        ("http://[::ffff:127.0.0.2]/", "IPv4-mapped"),
        ("http://[::ffff:169.254.169.254]/", "IPv4-mapped"),
        ("http://[64:ff9b::127.0.0.1]/", "NAT64, well-known prefix"),
        ("http://[64:ff9b::a9fe:a9fe]/", "NAT64, well-known prefix"),
        ("http://[64:ff9b:1::a00:1]/", "NAT64, local-use prefix, refused whole"),
        ("http://[2002:a9fe:a9fe::1]/", "6to4 of 169.254.169.254"),
        ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "Teredo"),
        ("http://100.64.0.1/", "carrier-grade NAT"),
        ("http://100.127.255.254/", "carrier-grade NAT"),
        ("http://198.18.0.1/", "benchmarking"),
        ("http://198.19.255.1/", "benchmarking"),
        ("http://192.0.0.8/", "IETF protocol assignments"),
        ("http://192.0.2.1/", "documentation"),
        ("http://198.51.100.1/", "documentation"),
        ("http://203.0.113.9/", "documentation"),
        ("http://[2001:db8::1]/", "documentation"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://255.255.255.255/", "broadcast"),
        ("http://[fc00::1]/", "unique-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[fec0::1]/", "site-local"),
    ];
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let (st, v) = call(
            &s,
            reqwest::Method::POST,
            "/api/v1/repositories/acme/app/webhooks",
            json!({"url": "ftp://example.com/x", "secret": SECRET, "events": ["TAG_PUSH"]}),
        )
        .await;
        assert_eq!(st, 400, "{label}: {v}");
        // The allowed address is saved: the refusals below are the filter's.
        let allowed = "http://127.0.0.1:9/hook";
        let (st, hook) = call(
            &s,
            reqwest::Method::POST,
            "/api/v1/repositories/acme/app/webhooks",
            json!({"url": allowed, "secret": SECRET, "events": ["TAG_PUSH"], "enabled": false}),
        )
        .await;
        assert_eq!(st, 201, "{label}: {hook}");
        let id = hook["id"].as_str().unwrap();
        for (url, what) in internal {
            for refusal in refused_url(&s, id, url).await {
                assert!(
                    refusal.contains("internal address"),
                    "{label}: {url} ({what}): {refusal}"
                );
            }
        }
        let (_, list) = call(
            &s,
            reqwest::Method::GET,
            "/api/v1/repositories/acme/app/webhooks",
            Value::Null,
        )
        .await;
        let urls: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|h| h["url"].as_str())
            .collect();
        assert_eq!(urls, [allowed], "{label}: nothing else saved, nothing changed");
    }
}

/// A URL without a scheme is refused with a message that says so, on
/// creation and on change (the URL parser alone says "relative URL without
/// a base", or takes `host:port` for a scheme).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_without_a_scheme_says_so() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let (st, hook) = call(
            &s,
            reqwest::Method::POST,
            "/api/v1/repositories/acme/app/webhooks",
            json!({"url": "http://127.0.0.1:9/hook", "secret": SECRET, "events": ["TAG_PUSH"], "enabled": false}),
        )
        .await;
        assert_eq!(st, 201, "{label}: {hook}");
        let id = hook["id"].as_str().unwrap();
        for url in ["ci.example.com/hook", "ci.example.com:8443/hook"] {
            for refusal in refused_url(&s, id, url).await {
                assert!(
                    refusal.contains("url needs a scheme") && refusal.contains(&format!("https://{url}")),
                    "{label}: {url}: {refusal}"
                );
            }
        }
    }
}

/// A host name vetted when the hook was saved is vetted again at every
/// delivery: it resolves to 127.0.0.1 (allowed) when saved and first
/// delivered, then to 127.0.0.2 (internal, not allowed), where a receiver
/// listens that must hear nothing. A stored address is vetted at delivery
/// too (a row saved under a wider `webhook_allow`). Everything stays on
/// loopback even if the filter failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_targets_are_refused_at_delivery() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let allowed = Receiver {
            close: true,
            ..Receiver::default()
        };
        let addr = allowed.listen("127.0.0.1:0").await;
        let refused = Receiver::default();
        refused.listen(&format!("127.0.0.2:{}", addr.port())).await;

        let name = format!("hook-{}.portcullis-test", uuid::Uuid::new_v4().simple());
        let hosts = HostsEntry::add(&name, "127.0.0.1");
        let (st, hook) = call(
            &s,
            reqwest::Method::POST,
            "/api/v1/repositories/acme/app/webhooks",
            json!({"url": format!("http://{name}:{}/hook", addr.port()), "secret": SECRET, "events": ["MANIFEST_PUSH"]}),
        )
        .await;
        assert_eq!(st, 201, "{label}: an allowed address is fine: {hook}");
        let id = hook["id"].as_str().unwrap();
        ping(&s, id).await;
        allowed.until("the ping to the allowed address", |g| g.len() == 1).await;

        hosts.set("127.0.0.2");
        ping(&s, id).await;
        let error = newest_error(&s, id, 2).await;
        assert!(error.contains("internal address"), "{label}: {error}");
        drop(hosts);

        // The same for an address stored as such.
        let (_, hook2) = call(
            &s,
            reqwest::Method::POST,
            "/api/v1/repositories/acme/other/webhooks",
            json!({"url": format!("http://127.0.0.1:{}/other", addr.port()), "secret": SECRET, "events": ["MANIFEST_PUSH"]}),
        )
        .await;
        let id2 = hook2["id"].as_str().unwrap().to_string();
        let mut h2 = s.registry.meta.webhook(&id2).await.unwrap().unwrap();
        h2.url = format!("http://127.0.0.2:{}/stored", addr.port());
        let ev = portcullis_meta::AuditEvent::ok("admin", "webhook.update");
        assert!(s.registry.meta.update_webhook(&h2, &ev).await.unwrap());
        ping(&s, &id2).await;
        let error = newest_error(&s, &id2, 1).await;
        assert!(error.contains("internal address"), "{label}: {error}");

        assert_eq!(allowed.received().len(), 1, "{label}");
        assert!(refused.received().is_empty(), "{label}: {:?}", refused.received());
    }
}

/// `HTTP_PROXY` and friends in the server's environment are not used for
/// deliveries: a proxy would connect to the target itself, past the
/// vetting resolver. Both "proxy" and target are receivers on loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_ignore_proxy_settings() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let db = database_args(&backend, &data).await;
        let db_args: Vec<&str> = db.iter().map(String::as_str).collect();
        let proxy = Receiver::default();
        let proxy_url = format!("http://{}", proxy.listen("127.0.0.1:0").await);
        let target = Receiver::default();
        let taddr = target.listen("127.0.0.1:0").await;
        let mut envs = vec![
            ("PORTCULLIS_ADMIN_PASSWORD", "webhook-admin-password"),
            ("PORTCULLIS_WEBHOOK_ALLOW", "127.0.0.1"),
            ("PORTCULLIS_WEBHOOK_POLL_MS", "50"),
            ("NO_PROXY", ""),
            ("no_proxy", ""),
        ];
        for var in [
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            envs.push((var, proxy_url.as_str()));
        }
        let server = ServerProcess::spawn_env(&data, &db_args, &envs);
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let r = http
            .post(format!("{}/api/v1/repositories/lib/app/webhooks", server.base))
            .basic_auth("admin", Some("webhook-admin-password"))
            .json(&json!({"url": format!("http://{taddr}/hook"), "secret": SECRET, "events": ["TAG_PUSH"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let hook: Value = r.json().await.unwrap();
        let r = http
            .post(format!(
                "{}/api/v1/webhooks/{}/test",
                server.base,
                hook["id"].as_str().unwrap()
            ))
            .basic_auth("admin", Some("webhook-admin-password"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let got = target.until("the ping, directly", |g| !g.is_empty()).await;
        assert_eq!(got[0].target, "/hook");
        assert!(proxy.received().is_empty(), "{:?}", proxy.received());
        drop(server);
    }
}

/// A URL's query string and userinfo are write-only: every response, the
/// audit trail and delivery errors show them redacted, while deliveries
/// still use them, also after a change that leaves the URL out and after
/// one that sends back the redacted URL it was shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_query_and_userinfo_are_write_only() {
    const TOKEN: &str = "glptt-T0k3nT0k3n";
    const PASSWORD: &str = "pa55w0rd-in-url";
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let receiver = Receiver::default();
        let addr = receiver.listen("127.0.0.1:0").await;
        let url = format!("http://ci:{PASSWORD}@{addr}/trigger?token={TOKEN}&ref=main");
        let shown = format!("http://…@{addr}/trigger?token=…&ref=…");
        let leaks = |v: &Value| v.to_string().contains(TOKEN) || v.to_string().contains(PASSWORD);
        let (st, hook) = call(
            &s,
            reqwest::Method::POST,
            "/api/v1/repositories/acme/app/webhooks",
            json!({"url": url, "secret": SECRET, "events": ["TAG_PUSH"]}),
        )
        .await;
        assert_eq!(st, 201, "{label}: {hook}");
        assert_eq!(hook["url"], shown.as_str(), "{label}");
        let id = hook["id"].as_str().unwrap().to_string();
        let hook_path = format!("/api/v1/webhooks/{id}");
        let changes = [
            json!({"events": ["TAG_PUSH", "TAG_DELETE"]}),
            json!({"url": shown, "enabled": true}),
        ];
        for change in changes {
            let (st, v) = call(&s, reqwest::Method::PUT, &hook_path, change.clone()).await;
            assert_eq!(st, 200, "{label}: {change}: {v}");
            assert_eq!(v["url"], shown.as_str(), "{label}: {change}");
        }
        for path in [hook_path.as_str(), "/api/v1/repositories/acme/app/webhooks"] {
            let (st, v) = call(&s, reqwest::Method::GET, path, Value::Null).await;
            assert_eq!(st, 200, "{label}: {path}");
            assert!(v.to_string().contains(&shown) && !leaks(&v), "{label}: {path}: {v}");
        }
        // The stored URL is whole.
        ping(&s, &id).await;
        let got = receiver.until("the ping", |g| !g.is_empty()).await;
        assert_eq!(got[0].target, format!("/trigger?token={TOKEN}&ref=main"), "{label}");
        let basic = base64_of(&format!("ci:{PASSWORD}"));
        assert_eq!(got[0].header("authorization"), format!("Basic {basic}"), "{label}");

        // A delivery that fails: reqwest's error would quote the URL.
        let closed = common::free_port();
        let (st, failing) = call(
            &s,
            reqwest::Method::POST,
            "/api/v1/repositories/acme/app/webhooks",
            json!({"url": format!("http://127.0.0.1:{closed}/x?token={TOKEN}"), "secret": SECRET, "events": ["TAG_PUSH"]}),
        )
        .await;
        assert_eq!(st, 201, "{label}: {failing}");
        let fid = failing["id"].as_str().unwrap().to_string();
        ping(&s, &fid).await;
        let error = newest_error(&s, &fid, 1).await;
        assert!(!error.is_empty() && !error.contains(TOKEN), "{label}: {error}");

        let (st, _) = call(&s, reqwest::Method::DELETE, &hook_path, Value::Null).await;
        assert_eq!(st, 204, "{label}");
        for action in ["webhook.create", "webhook.update", "webhook.delete"] {
            let (_, audit) = call(
                &s,
                reqwest::Method::GET,
                &format!("/api/v1/audit?action={action}"),
                Value::Null,
            )
            .await;
            let records = audit["records"].as_array().unwrap();
            assert!(!records.is_empty(), "{label}: {action}");
            assert!(audit.to_string().contains(&shown), "{label}: {action}: {audit}");
            assert!(!leaks(&audit), "{label}: {action}: {audit}");
        }
    }
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A line in /etc/hosts for the test's own name, removed when dropped.
struct HostsEntry {
    name: String,
}

impl HostsEntry {
    fn add(name: &str, ip: &str) -> HostsEntry {
        let e = HostsEntry { name: name.to_string() };
        e.set(ip);
        e
    }
    fn set(&self, ip: &str) {
        let text = std::fs::read_to_string("/etc/hosts").unwrap();
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| !l.ends_with(&format!(" {}", self.name)))
            .map(str::to_string)
            .collect();
        lines.push(format!("{ip} {}", self.name));
        std::fs::write("/etc/hosts", lines.join("\n") + "\n").unwrap();
    }
}

impl Drop for HostsEntry {
    fn drop(&mut self) {
        if let Ok(text) = std::fs::read_to_string("/etc/hosts") {
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| !l.ends_with(&format!(" {}", self.name)))
                .collect();
            let _ = std::fs::write("/etc/hosts", lines.join("\n") + "\n");
        }
    }
}

//! Webhooks end to end, on SQLite and PostgreSQL, with skopeo pushing and a
//! receiver on 127.0.0.1 (a small HTTP server here): signed events in
//! order, retries logged, delivery across a SIGKILL, the URL's query string
//! intact, and internal targets refused at creation and at delivery.

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
/// then 200; it records every request.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    plan: Arc<Mutex<VecDeque<u16>>>,
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
            let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\nok");
            if conn.write_all(reply.as_bytes()).await.is_err() {
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

/// Targets on internal addresses are refused when the hook is created, and
/// again when a name that resolved to a public address at creation
/// resolves to an internal one at delivery (the test rewrites /etc/hosts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_targets_are_refused_at_creation_and_at_delivery() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        for url in [
            "http://10.0.0.1/hook",
            "http://[::1]:8080/hook",
            "http://169.254.169.254/latest",
            "ftp://example.com/x",
        ] {
            let (st, v) = call(
                &s,
                reqwest::Method::POST,
                "/api/v1/repositories/acme/app/webhooks",
                json!({"url": url, "secret": SECRET, "events": ["TAG_PUSH"]}),
            )
            .await;
            assert_eq!(st, 400, "{label}: {url} {v}");
        }
        let name = format!("hook-{}.portcullis-test", uuid::Uuid::new_v4().simple());
        let hosts = HostsEntry::add(&name, "203.0.113.9");
        let (st, hook) = call(
            &s,
            reqwest::Method::POST,
            "/api/v1/repositories/acme/app/webhooks",
            json!({"url": format!("http://{name}/hook"), "secret": SECRET, "events": ["MANIFEST_PUSH"]}),
        )
        .await;
        assert_eq!(st, 201, "{label}: a public address is fine: {hook}");
        hosts.set("10.0.0.9");
        s.push_image("acme/app", "1", b"{\"x\":1}", &[b"x"]).await;
        let id = hook["id"].as_str().unwrap();
        let mut log = Value::Null;
        for _ in 0..200 {
            (_, log) = call(
                &s,
                reqwest::Method::GET,
                &format!("/api/v1/webhooks/{id}/deliveries"),
                Value::Null,
            )
            .await;
            if log["deliveries"][0]["attempts"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let error = log["deliveries"][0]["attempts"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(error.contains("internal address"), "{label}: {log}");
        drop(hosts);
    }
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

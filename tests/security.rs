//! The attacks of the security review (issue 14), each performed against a
//! running registry; every test here failed on the code before the fix.
//! On SQLite and PostgreSQL where the database matters.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{backends, database_args, gzip, image_manifest, tar_of, vm_hwm_kib, ServerProcess, TestServer};
use portcullis_meta::{AuditQuery, Meta, MAX_SCAN_ATTEMPTS};
use portcullis_oci::Digest;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const PW: &str = "long-enough-password";

async fn call(s: &TestServer, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
    let r = s.http.request(method, s.url(path)).json(&body).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn user(s: &TestServer, name: &str) {
    let (st, v) = call(s, Method::POST, "/api/v1/users", json!({"name": name, "password": PW})).await;
    assert_eq!(st, 201, "{v}");
}

/// A registry token for `user` with `scope` (empty: none).
async fn jwt(s: &TestServer, user: &str, password: &str, scope: &str) -> String {
    let mut q = vec![("service", "portcullis")];
    if !scope.is_empty() {
        q.push(("scope", scope));
    }
    let r = s
        .anon
        .get(s.url("/auth/token"))
        .query(&q)
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "login {user}");
    r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string()
}

fn held_body() -> (tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>, reqwest::Body) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    (tx, reqwest::Body::wrap_stream(stream))
}

/// High 1: a tenant who may push only to their own repository holds a PATCH
/// open on their session while closing it with the digest of a layer
/// another tenant stored. The close waits for the held write, fails the
/// digest check, and the shared layer stays byte-identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_patch_cannot_corrupt_a_shared_blob() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        user(&s, "mallory").await;
        let layer = b"a popular base layer ".repeat(4096);
        let d = s.push_blob("library/base", &layer).await;
        let token = jwt(&s, "mallory", PW, "repository:mallory/evil:pull,push").await;
        let auth = format!("Bearer {token}");
        let r = s
            .anon
            .post(s.url("/v2/mallory/evil/blobs/uploads/"))
            .header("authorization", &auth)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let location = s.url(r.headers()["location"].to_str().unwrap());
        let r = s
            .anon
            .patch(&location)
            .header("authorization", &auth)
            .body(layer.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);

        let (tx, body) = held_body();
        let held = tokio::spawn(s.anon.patch(&location).header("authorization", &auth).body(body).send());
        tx.send(Ok(Bytes::from_static(b"evil "))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let close = tokio::spawn(
            s.anon
                .put(format!("{location}?digest={d}"))
                .header("authorization", &auth)
                .send(),
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            !close.is_finished(),
            "{}: the close waits for the held write",
            s.label()
        );
        tx.send(Ok(Bytes::from(vec![b'X'; 64 << 10]))).await.unwrap();
        drop(tx);
        assert_eq!(held.await.unwrap().unwrap().status(), 202);
        let closed = close.await.unwrap().unwrap();
        assert_eq!(closed.status(), 400, "{}", s.label());
        assert!(closed.text().await.unwrap().contains("DIGEST_INVALID"));

        assert_eq!(std::fs::read(s.registry.store.blob_path(&d)).unwrap(), layer);
        let r = s
            .http
            .get(s.url(&format!("/v2/library/base/blobs/{d}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.bytes().await.unwrap().as_ref(), layer.as_slice(), "{}", s.label());
    }
}

/// Upload sessions answer only the account that opened them, and a
/// Content-Range that spans 2^64 bytes is refused, not wrapped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_sessions_belong_to_their_opener_and_ranges_do_not_overflow() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        for u in ["w1", "w2"] {
            user(&s, u).await;
        }
        let (st, _) = call(&s, Method::POST, "/api/v1/orgs", json!({"name": "acme"})).await;
        assert_eq!(st, 201);
        for u in ["w1", "w2"] {
            let (st, v) = call(
                &s,
                Method::POST,
                "/api/v1/namespaces/acme/grants",
                json!({"account": u, "role": "write"}),
            )
            .await;
            assert_eq!(st, 201, "{v}");
        }
        let scope = "repository:acme/app:pull,push";
        let w1 = format!("Bearer {}", jwt(&s, "w1", PW, scope).await);
        let w2 = format!("Bearer {}", jwt(&s, "w2", PW, scope).await);
        let r = s
            .anon
            .post(s.url("/v2/acme/app/blobs/uploads/"))
            .header("authorization", &w1)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let location = s.url(r.headers()["location"].to_str().unwrap());
        let d = Digest::sha256_of(b"w2 bytes");
        for (method, url) in [
            (Method::GET, location.clone()),
            (Method::PATCH, location.clone()),
            (Method::PUT, format!("{location}?digest={d}")),
            (Method::DELETE, location.clone()),
        ] {
            let r = s
                .anon
                .request(method.clone(), &url)
                .header("authorization", &w2)
                .body("w2 bytes")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 404, "{} {method}", s.label());
            assert!(r.text().await.unwrap().contains("BLOB_UPLOAD_UNKNOWN"));
        }
        let r = s
            .anon
            .patch(&location)
            .header("authorization", &w1)
            .header("content-range", "0-18446744073709551615")
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 416, "{}", s.label());
        let r = s
            .anon
            .patch(&location)
            .header("authorization", &w1)
            .header("content-range", "0-2")
            .body("abc")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "the opener carries on");
    }
}

/// High 2: nobody but a system administrator can create an organization
/// named after a namespace that holds repositories; a deleted account's
/// repositories go with it; grants need the namespace's account; internal
/// subjects are reserved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_cannot_be_taken_over() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        for u in ["bob", "mallory"] {
            user(&s, u).await;
        }
        s.push_image("library/alpine", "3", b"alpine config", &[b"alpine layer"])
            .await;
        s.push_image("bob/private", "1", b"bob config", &[b"bob layer"]).await;
        let as_mallory = |name: &str| {
            s.anon
                .post(s.url("/api/v1/orgs"))
                .basic_auth("mallory", Some(PW))
                .json(&json!({"name": name}))
                .send()
        };
        let r = as_mallory("library").await.unwrap();
        assert_eq!(r.status(), 403, "{label}");
        assert!(r.text().await.unwrap().contains("holds repositories"));
        let r = as_mallory("bob").await.unwrap();
        assert!(r.status() == 409 || r.status() == 403, "bob is taken: {}", r.status());

        let (st, _) = call(&s, Method::DELETE, "/api/v1/users/bob", json!(null)).await;
        assert_eq!(st, 204);
        let r = s.http.get(s.url("/v2/bob/private/tags/list")).send().await.unwrap();
        assert_eq!(r.status(), 404, "{label}: bob's repositories went with bob");
        let r = as_mallory("bob").await.unwrap();
        assert_eq!(r.status(), 201, "{label}: the name is free, and claims nothing");
        let mine = jwt(&s, "mallory", PW, "repository:bob/private:pull").await;
        let r = s
            .anon
            .get(s.url("/v2/bob/private/manifests/1"))
            .bearer_auth(&mine)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{label}");

        // An administrator may give an existing namespace an owner.
        let (st, v) = call(&s, Method::POST, "/api/v1/orgs", json!({"name": "library"})).await;
        assert_eq!(st, 201, "{v}");
        let (st, _) = call(
            &s,
            Method::POST,
            "/api/v1/namespaces/ghost/grants",
            json!({"account": "mallory", "role": "admin"}),
        )
        .await;
        assert_eq!(st, 404, "{label}: no grant on a namespace without its account");
        let (st, _) = call(
            &s,
            Method::POST,
            "/api/v1/users",
            json!({"name": "anonymous", "password": PW}),
        )
        .await;
        assert_eq!(st, 400, "{label}: reserved");
        assert_eq!(as_mallory("anonymous").await.unwrap().status(), 400);
    }
}

/// Medium 6: a registry token (JWT) is a pull/push credential; it cannot
/// mint API tokens, change passwords or read accounts. A password change
/// needs the old password and ends the sessions the old one made, and
/// refresh tokens neither breed nor work as bearers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_management_api_refuses_registry_tokens() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        user(&s, "carol").await;
        s.push_image("carol/app", "1", b"carol config", &[b"carol layer"]).await;
        let bare = jwt(&s, "carol", PW, "").await;
        let scoped = jwt(&s, "carol", PW, "repository:carol/app:pull").await;
        let with = |method: Method, path: &str, auth: &str, body: Value| {
            s.anon
                .request(method, s.url(path))
                .header("authorization", auth)
                .json(&body)
                .send()
        };
        let bearer = format!("Bearer {bare}");
        for (method, path, body) in [
            (
                Method::POST,
                "/api/v1/accounts/carol/tokens",
                json!({"name": "forever", "scopes": ["*:pull,push,delete"], "expires_in_days": 366}),
            ),
            (Method::GET, "/api/v1/accounts/carol/tokens", json!(null)),
            (
                Method::PUT,
                "/api/v1/users/carol/password",
                json!({"password": "taken-over-password"}),
            ),
            (Method::GET, "/api/v1/users/carol", json!(null)),
            (Method::POST, "/api/v1/orgs", json!({"name": "carolco"})),
        ] {
            let r = with(method.clone(), path, &bearer, body).await.unwrap();
            assert_eq!(r.status(), 403, "{label}: {method} {path} with a registry token");
        }
        // Repository reads within the token's own access still work.
        let read_app = || {
            with(
                Method::GET,
                "/api/v1/repositories/carol/app",
                &format!("Bearer {scoped}"),
                json!(null),
            )
        };
        assert_eq!(read_app().await.unwrap().status(), 200, "{label}");

        // A refresh token from a password login...
        let form = |pairs: Vec<(&str, String)>| s.anon.post(s.url("/auth/token")).form(&pairs).send();
        let v: Value = form(vec![
            ("grant_type", "password".into()),
            ("username", "carol".into()),
            ("password", PW.into()),
            ("access_type", "offline".into()),
        ])
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        let refresh = v["refresh_token"].as_str().unwrap().to_string();
        // ...does not make another when sent as a password...
        let v: Value = form(vec![
            ("grant_type", "password".into()),
            ("username", "carol".into()),
            ("password", refresh.clone()),
            ("access_type", "offline".into()),
        ])
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert!(
            v["token"].is_string() && v.get("refresh_token").is_none(),
            "{label}: {v}"
        );
        // ...and is not a bearer.
        let r = with(
            Method::GET,
            "/api/v1/repositories/carol/app",
            &format!("Bearer {refresh}"),
            json!(null),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 401);

        // Changing the password needs the old one.
        let basic = |pw: &str| {
            format!(
                "Basic {}",
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("carol:{pw}"))
            )
        };
        let new_pw = "carols-new-password";
        let r = with(
            Method::PUT,
            "/api/v1/users/carol/password",
            &basic(PW),
            json!({"password": new_pw}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 403, "{label}: no old password");
        let r = with(
            Method::PUT,
            "/api/v1/users/carol/password",
            &basic(PW),
            json!({"password": new_pw, "old_password": "not-the-password"}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 403, "{label}: wrong old password");
        // Sessions from before the change end: the registry token made
        // earlier (the clock's seconds must move past its issue time).
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let r = with(
            Method::PUT,
            "/api/v1/users/carol/password",
            &basic(PW),
            json!({"password": new_pw, "old_password": PW}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 204, "{label}");
        assert_eq!(
            read_app().await.unwrap().status(),
            401,
            "{label}: a token from before the change"
        );
        let r = form(vec![
            ("grant_type", "refresh_token".into()),
            ("refresh_token", refresh.clone()),
        ])
        .await
        .unwrap();
        assert_eq!(r.status(), 401, "{label}: the refresh token was revoked");
        // Refresh tokens are listed, so a user can find them.
        let list: Value = with(
            Method::GET,
            "/api/v1/accounts/carol/tokens",
            &basic(new_pw),
            json!(null),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        let refreshes: Vec<&Value> = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["kind"] == "refresh")
            .collect();
        assert_eq!(refreshes.len(), 1, "{label}: {list}");
        assert!(refreshes[0]["revoked_at"].is_i64());
    }
}

/// Medium 7: an anonymous registry token reads the public catalog instead
/// of failing as an account that "no longer exists".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_token_reads_the_public_catalog() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        s.push_image("pub/open", "1", b"p", &[b"p1"]).await;
        s.push_image("priv/closed", "1", b"q", &[b"q1"]).await;
        let (st, _) = call(
            &s,
            Method::PUT,
            "/api/v1/repositories/pub/open",
            json!({"visibility": "public"}),
        )
        .await;
        assert_eq!(st, 200);
        let v: Value = s
            .anon
            .get(s.url("/auth/token?service=portcullis&scope=registry:catalog:*"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let r = s
            .anon
            .get(s.url("/v2/_catalog"))
            .bearer_auth(v["token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", s.label());
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["repositories"], json!(["pub/open"]));
    }
}

/// Medium 4 and Low 8: floods of the token endpoint stay bounded: huge
/// credentials are refused before anything is hashed or recorded, a
/// parallel burst gets `limit` password checks, the refusals are one
/// record, a CI token is not locked out by someone guessing its account's
/// password, and scopes are capped and deduplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_floods_stay_bounded() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        user(&s, "dave").await;
        let meta = &s.registry.meta;
        let records = |actor: &'static str| async move {
            meta.audit_records(&AuditQuery {
                actor: Some(actor.into()),
                limit: 10_000,
                ..AuditQuery::default()
            })
            .await
            .unwrap()
        };
        let before = meta
            .audit_records(&AuditQuery {
                limit: 100_000,
                ..AuditQuery::default()
            })
            .await
            .unwrap()
            .len();
        let huge = "u".repeat(1 << 20);
        let r = s
            .anon
            .post(s.url("/auth/token"))
            .form(&[
                ("grant_type", "password"),
                ("username", huge.as_str()),
                ("password", "x"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{label}");
        let after = meta
            .audit_records(&AuditQuery {
                limit: 100_000,
                ..AuditQuery::default()
            })
            .await
            .unwrap()
            .len();
        assert_eq!(before, after, "{label}: nothing recorded for a refused request");

        let burst = (0..40).map(|_| {
            s.anon
                .post(s.url("/auth/token"))
                .form(&[
                    ("grant_type", "password"),
                    ("username", "dave"),
                    ("password", "wrong-password"),
                ])
                .send()
        });
        let statuses: Vec<u16> = futures_util::future::join_all(burst)
            .await
            .into_iter()
            .map(|r| r.unwrap().status().as_u16())
            .collect();
        let checked = statuses.iter().filter(|s| **s == 401).count();
        assert!(checked <= 5, "{label}: {checked} password checks ran");
        assert_eq!(checked + statuses.iter().filter(|s| **s == 429).count(), 40);
        let dave = records("dave").await;
        assert!(dave.iter().filter(|r| r.event.result == "failed").count() <= 5);
        assert_eq!(
            dave.iter().filter(|r| r.event.result == "denied").count(),
            1,
            "{label}: one record for the lockout"
        );

        // A CI service account's token still logs in while its name is locked
        // by password guesses.
        let (st, _) = call(&s, Method::POST, "/api/v1/orgs", json!({"name": "acme"})).await;
        assert_eq!(st, 201);
        let (st, _) = call(
            &s,
            Method::POST,
            "/api/v1/namespaces/acme/service-accounts",
            json!({"name": "ci"}),
        )
        .await;
        assert_eq!(st, 201);
        let (_, t) = call(
            &s,
            Method::POST,
            "/api/v1/accounts/acme+ci/tokens",
            json!({"name": "ci", "scopes": ["acme/*:pull,push"]}),
        )
        .await;
        let ci_token = t["token"].as_str().unwrap().to_string();
        for _ in 0..8 {
            s.anon
                .get(s.url("/auth/token?service=portcullis"))
                .basic_auth("acme+ci", Some("guessing-a-password"))
                .send()
                .await
                .unwrap();
        }
        let r = s
            .anon
            .get(s.url("/auth/token?service=portcullis&scope=repository:acme/app:push"))
            .basic_auth("acme+ci", Some(&ci_token))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{label}: the token is not locked out");

        // 50,000 scopes (what fits in a form body): refused at once, not a
        // query each; the same scope 50,000 times is one.
        let many: String = (0..50_000)
            .map(|i| format!("repository:a/r{i}:pull"))
            .collect::<Vec<_>>()
            .join(" ");
        let r = s
            .anon
            .post(s.url("/auth/token"))
            .form(&[("service", "portcullis"), ("scope", many.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{label}");
        let same = vec!["registry:catalog:*"; 50_000].join(" ");
        let v: Value = s
            .anon
            .post(s.url("/auth/token"))
            .form(&[("service", "portcullis"), ("scope", same.as_str())])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let claims = v["token"].as_str().unwrap().split('.').nth(1).unwrap().to_string();
        let claims: Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims).unwrap(),
        )
        .unwrap();
        assert_eq!(claims["access"].as_array().unwrap().len(), 1, "{label}");
    }
}

/// Low 9: a client that sends headers slowly, or nothing at all, is
/// disconnected, and connections beyond the limit wait for a free slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::spawn_env(
        &dir.path().join("data"),
        &[],
        &[
            ("PORTCULLIS_HEADER_READ_TIMEOUT_SECS", "1"),
            ("PORTCULLIS_MAX_CONNECTIONS", "4"),
        ],
    );
    let addr = server.base.trim_start_matches("http://").to_string();
    // Half a request line, then silence; and a connection that says nothing.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), slow.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the slow client was never disconnected");
    assert!(started.elapsed() < Duration::from_secs(10));

    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Every slot is held: this request waits until the idle ones time out.
    let started = Instant::now();
    let r = reqwest::Client::new()
        .get(format!("{}/healthz", server.base))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "served while every slot was taken: {:?}",
        started.elapsed()
    );
    for mut c in idle {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), c.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "an idle connection was never closed");
    }
}

/// A 4 KiB `rpmdb.sqlite` whose `Packages` is a recursive view of endless
/// 50 MB rows, made by SQLite itself (Python's sqlite3 module).
fn hostile_rpmdb(dir: &std::path::Path) -> Vec<u8> {
    let path = dir.join("rpmdb.sqlite");
    let script = format!(
        "import sqlite3; c = sqlite3.connect({:?}); c.executescript(\"CREATE VIEW Packages AS WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT n AS hnum, zeroblob(50000000) AS blob FROM r;\"); c.commit()",
        path.to_str().unwrap()
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::read(path).unwrap()
}

async fn push(http: &reqwest::Client, base: &str, repo: &str, tag: &str, config: &[u8], layer: &[u8]) -> Digest {
    let mut blobs = Vec::new();
    for b in [config, layer] {
        let d = Digest::sha256_of(b);
        let r = http
            .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={d}"))
            .body(b.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        blobs.push((d, b.len()));
    }
    let manifest = image_manifest(&blobs[0].0, blobs[0].1, &blobs[1..]);
    let r = http
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    Digest::sha256_of(&manifest)
}

async fn scan_status(http: &reqwest::Client, base: &str, digest: &Digest, want: &[&str]) -> Value {
    for _ in 0..600 {
        let v: Value = http
            .get(format!("{base}/api/v1/scans/{digest}?repository=evil/rpm"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if want.contains(&v["status"].as_str().unwrap_or("")) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the scan of {digest} did not reach {want:?} within 30 s");
}

/// High 3: the hostile rpmdb is refused within bounded memory and time,
/// and an image whose scan was interrupted again and again (as a crashing
/// scanner would leave it) is failed at the next start, not rescanned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_rpmdb_fails_its_scan_and_the_server_survives_restarts() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let db = database_args(&backend, &data).await;
        let db_args: Vec<&str> = db.iter().map(String::as_str).collect();
        let layer = gzip(&tar_of(&[("var/lib/rpm/rpmdb.sqlite", &hostile_rpmdb(dir.path()))]));
        assert!(layer.len() < 8192);
        let http = reqwest::Client::new();
        let digest = {
            let server = ServerProcess::spawn(&data, &db_args);
            let start_kib = vm_hwm_kib(server.pid());
            let d = push(&http, &server.base, "evil/rpm", "1", b"{\"rpm\":1}", &layer).await;
            let v = scan_status(&http, &server.base, &d, &["done", "failed"]).await;
            assert_eq!(v["status"], "done", "{v}");
            let components: Value = http
                .get(format!(
                    "{}/api/v1/scans/{d}/components?repository=evil/rpm",
                    server.base
                ))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(components["components"], json!([]), "{components}");
            let grown = vm_hwm_kib(server.pid()).saturating_sub(start_kib);
            assert!(grown < 256 * 1024, "the scan took {grown} KiB");
            d
        };
        // As a scanner killed by the image would leave it: scanning, with
        // its attempts used up.
        let url = match db.get(1) {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", data.join("portcullis.db").display()),
        };
        let meta = Meta::connect(&url).await.unwrap();
        assert!(meta.request_scan(digest.as_str(), true).await.unwrap());
        for _ in 1..MAX_SCAN_ATTEMPTS {
            assert!(meta.start_scan(digest.as_str()).await.unwrap());
            meta.requeue_interrupted_scans().await.unwrap();
        }
        assert!(meta.start_scan(digest.as_str()).await.unwrap());
        meta.close().await;
        let server = ServerProcess::spawn(&data, &db_args);
        let v = scan_status(&http, &server.base, &digest, &["failed"]).await;
        assert!(v["error"].as_str().unwrap().contains("interrupted"), "{v}");
        assert_eq!(v["attempts"], MAX_SCAN_ATTEMPTS);
        let r = http.get(format!("{}/readyz", server.base)).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
}

/// Low 10: a package database hidden behind a link (here a symlink to a
/// file in the layer below, and a hard link within a layer) is still
/// found, so an image cannot hide its packages from the scanner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn package_databases_behind_links_are_scanned() {
    let with_link = |file, link, hard| gzip(&common::tar_with_link(file, link, hard));
    let status = |name: &str| format!("Package: {name}\nStatus: install ok installed\nVersion: 1.0-1\n").into_bytes();
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let lower = gzip(&tar_of(&[("opt/.cache/s", &status("hidden-below"))]));
        let upper = with_link(None, ("var/lib/dpkg/status", "../../../opt/.cache/s"), false);
        let python = with_link(
            Some(("opt/m", b"Metadata-Version: 2.1\nName: hidden-py\nVersion: 2.0\n")),
            (
                "usr/lib/python3/dist-packages/hidden_py-2.0.dist-info/METADATA",
                "opt/m",
            ),
            true,
        );
        let (image, _) = s
            .push_image(
                "acme/hiding",
                "1",
                b"{\"hiding\":1}",
                &[lower.as_slice(), upper.as_slice(), python.as_slice()],
            )
            .await;
        let path = format!("/api/v1/scans/{image}?repository=acme/hiding");
        let mut done = false;
        for _ in 0..600 {
            let (_, v) = call(&s, Method::GET, &path, json!(null)).await;
            if v["status"] == "done" {
                done = true;
                break;
            }
            assert_ne!(v["status"], "failed", "{v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(done, "the scan did not finish within 30 s");
        let (_, v) = call(
            &s,
            Method::GET,
            &format!("/api/v1/scans/{image}/components?repository=acme/hiding"),
            json!(null),
        )
        .await;
        let mut names: Vec<&str> = v["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["hidden-below", "hidden-py"], "{}: {v}", s.label());
    }
}

/// A misspelt field is an error naming it, never silently ignored:
/// `expires_days` for `expires_in_days` used to give a 90-day token. Every
/// JSON body of the management API (`api::ENDPOINTS`) is here, nested
/// objects included (a pull rule, a promotion rule); the admission webhook
/// is not, its `AdmissionReview` is Kubernetes's and grows fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_bodies_refuse_unknown_fields() {
    const PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n";
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        // Something for each body to be about.
        s.push_image("acme/app", "1", b"{\"u\":1}", &[b"unknown fields"]).await;
        let made = |path: &'static str, body: Value| {
            let s = &s;
            async move {
                let (st, v) = common::call(s, Method::POST, path, body).await;
                assert!(st == 201 || st == 200, "{path}: {v}");
                v
            }
        };
        made("/api/v1/orgs", json!({"name": "acme"})).await;
        made("/api/v1/namespaces/acme/service-accounts", json!({"name": "ci"})).await;
        let policy = made(
            "/api/v1/repositories/acme/app/policies",
            json!({"target": "acme/release", "tag_template": "%n"}),
        )
        .await;
        let policy = format!(
            "/api/v1/repositories/acme/app/policies/{}",
            policy["id"].as_str().unwrap()
        );
        let hook = made(
            "/api/v1/repositories/acme/app/webhooks",
            json!({"url": "http://127.0.0.1:9/hook", "secret": "a-webhook-secret-of-length", "events": ["TAG_PUSH"], "enabled": false}),
        )
        .await;
        let hook = format!("/api/v1/webhooks/{}", hook["id"].as_str().unwrap());
        let password = "long-enough-password";
        let hook_body = json!({"url": "http://127.0.0.1:9/hook", "secret": "a-webhook-secret-of-length",
            "events": ["TAG_PUSH"], "retries": 3});
        let policy_body = |extra: Value| {
            let mut p = json!({"target": "acme/release", "tag_template": "%n"});
            p.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            p
        };
        let nested_rule = json!({"rules": [{"field": "tag", "operator": "eq", "values": ["1"], "value": "1"}]});
        let table: Vec<(Method, String, Value, &str)> = vec![
            (
                Method::POST,
                "/api/v1/accounts/admin/tokens".into(),
                json!({"name": "ci", "scopes": ["acme/*:pull"], "expires_days": 1}),
                "expires_days",
            ),
            (
                Method::POST,
                "/api/v1/users".into(),
                json!({"name": "u1", "password": password, "role": "admin"}),
                "role",
            ),
            (
                Method::PUT,
                "/api/v1/users/admin/password".into(),
                json!({"password": password, "current_password": common::ADMIN_PASSWORD}),
                "current_password",
            ),
            (
                Method::POST,
                "/api/v1/orgs".into(),
                json!({"name": "o1", "owner": "admin"}),
                "owner",
            ),
            (
                Method::POST,
                "/api/v1/orgs/acme/teams".into(),
                json!({"name": "t1", "members": ["admin"]}),
                "members",
            ),
            (
                Method::POST,
                "/api/v1/namespaces/acme/grants".into(),
                json!({"account": "admin", "role": "read", "repo": "acme/app"}),
                "repo",
            ),
            (
                Method::POST,
                "/api/v1/namespaces/acme/service-accounts".into(),
                json!({"name": "bot", "description": "a robot"}),
                "description",
            ),
            (
                Method::POST,
                "/api/v1/accounts/admin/keys".into(),
                json!({"name": "laptop", "pem": PEM, "public_key": PEM}),
                "public_key",
            ),
            (
                Method::POST,
                "/api/v1/accounts/acme+ci/signing-key".into(),
                json!({"cosign_key": "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----", "passphrase": "x"}),
                "passphrase",
            ),
            (
                Method::PUT,
                "/api/v1/repositories/acme/app".into(),
                json!({"visibilty": "public"}),
                "visibilty",
            ),
            (
                Method::PUT,
                "/api/v1/repositories/acme/app".into(),
                json!({"pull_rule": {"deny_unscanned": true, "max_db_age": "2d"}}),
                "max_db_age",
            ),
            (
                Method::PUT,
                "/api/v1/repositories/acme/app".into(),
                json!({"pull_rule": {"require_signed_by": {"teams": [], "team": "ci/gitlab"}}}),
                "team",
            ),
            (
                Method::PUT,
                "/api/v1/namespaces/acme/settings".into(),
                json!({"immutable_tag_patterns": ["v*"], "immutable_tags": true}),
                "immutable_tags",
            ),
            (
                Method::PUT,
                "/api/v1/namespaces/acme/settings".into(),
                json!({"pull_rule": {"deny_severity": "high", "deny_unknown": true}}),
                "deny_unknown",
            ),
            (
                Method::POST,
                "/api/v1/repositories/acme/app/policies".into(),
                policy_body(json!({"sign_with": "acme+ci"})),
                "sign_with",
            ),
            (
                Method::POST,
                "/api/v1/repositories/acme/app/policies".into(),
                policy_body(nested_rule.clone()),
                "value",
            ),
            (
                Method::PUT,
                policy.clone(),
                policy_body(json!({"enable": false})),
                "enable",
            ),
            (Method::PUT, policy.clone(), policy_body(nested_rule), "value"),
            (
                Method::POST,
                format!("{policy}/dry-run"),
                json!({"tag": "1", "platform": "linux/amd64"}),
                "platform",
            ),
            (
                Method::POST,
                "/api/v1/repositories/acme/app/webhooks".into(),
                hook_body.clone(),
                "retries",
            ),
            (
                Method::POST,
                "/api/v1/namespaces/acme/webhooks".into(),
                hook_body,
                "retries",
            ),
            (
                Method::PUT,
                hook.clone(),
                json!({"enabled": false, "event": "TAG_PUSH"}),
                "event",
            ),
            (
                Method::PUT,
                "/api/v1/vulndb/sources".into(),
                json!({"sources": [], "interval": "1h"}),
                "interval",
            ),
        ];
        for (method, path, body, field) in table {
            let (st, v) = common::call(&s, method.clone(), &path, body).await;
            assert_eq!(st, 400, "{label}: {method} {path} took an unknown field: {v}");
            assert!(
                v.to_string().contains(&format!("unknown field `{field}`")),
                "{label}: {method} {path}: {v}"
            );
        }
        // Nothing above was saved.
        let (_, stored) = common::call(&s, Method::GET, &policy, Value::Null).await;
        assert_eq!(stored["rules"], json!([]), "{label}: {stored}");
        let (_, settings) = common::call(&s, Method::GET, "/api/v1/namespaces/acme/settings", Value::Null).await;
        assert_eq!(settings["pull_rule"], json!({}), "{label}: no rule: {settings}");
    }
}

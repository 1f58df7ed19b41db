//! Immutable tags over HTTP, on SQLite and PostgreSQL: concurrent pushes of
//! different manifests to one new immutable tag (exactly one wins), and the
//! refusals every route gives (push, `?tag=`, tag and manifest deletes,
//! repository deletion). skopeo's view is in `clients.rs`.

mod common;

use common::{backends, image_manifest, TestServer};
use portcullis_oci::Digest;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_many_concurrent_pushes_wins_an_immutable_tag() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let r = s
            .http
            .put(s.url("/api/v1/repositories/acme/build"))
            .json(&json!({"immutable_tags": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let config = s.push_blob("acme/build", b"{}").await;
        let mut manifests = Vec::new();
        for i in 0..24 {
            let layer = format!("layer of build {i}");
            let d = s.push_blob("acme/build", layer.as_bytes()).await;
            manifests.push(image_manifest(&config, 2, &[(d, layer.len())]));
        }
        let pushes = manifests.iter().map(|m| {
            s.http
                .put(s.url("/v2/acme/build/manifests/66"))
                .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                .body(m.clone())
                .send()
        });
        let mut won = Vec::new();
        for (i, r) in futures_util::future::join_all(pushes).await.into_iter().enumerate() {
            let r = r.unwrap();
            match r.status().as_u16() {
                201 => won.push(i),
                403 => {
                    let text = r.text().await.unwrap();
                    assert!(text.contains("DENIED") && text.contains("immutable"), "{text}");
                }
                other => panic!("{label}: push {i} answered {other}"),
            }
        }
        assert_eq!(won.len(), 1, "{label}: exactly one push wins, not {won:?}");
        let winner = Digest::sha256_of(&manifests[won[0]]);
        let r = s.http.get(s.url("/v2/acme/build/manifests/66")).send().await.unwrap();
        assert_eq!(r.headers()["docker-content-digest"], winner.as_str(), "{label}");

        // Every other route is refused too, naming the rule.
        let loser = &manifests[(won[0] + 1) % manifests.len()];
        let loser_digest = Digest::sha256_of(loser);
        for (method, path, body) in [
            (
                reqwest::Method::PUT,
                format!("/v2/acme/build/manifests/{loser_digest}?tag=66"),
                Some(loser.clone()),
            ),
            (reqwest::Method::DELETE, "/v2/acme/build/manifests/66".to_string(), None),
            (
                reqwest::Method::DELETE,
                format!("/v2/acme/build/manifests/{winner}"),
                None,
            ),
            (
                reqwest::Method::DELETE,
                "/api/v1/repositories/acme/build".to_string(),
                None,
            ),
        ] {
            let mut req = s.http.request(method.clone(), s.url(&path));
            if let Some(b) = body {
                req = req
                    .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                    .body(b);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 403, "{label}: {method} {path}");
            let text = r.text().await.unwrap();
            assert!(text.contains("repository acme/build has immutable tags"), "{text}");
        }
        let r = s.http.get(s.url("/v2/acme/build/manifests/66")).send().await.unwrap();
        assert_eq!(
            r.headers()["docker-content-digest"],
            winner.as_str(),
            "{label}: untouched"
        );
    }
}

/// Who put an image under an immutable tag is provenance: pushing the same
/// manifest again (clients retry) succeeds, but keeps the first push's
/// pusher and time; the audit trail records the re-push.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repush_to_an_immutable_tag_keeps_the_first_pushers_record() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let (st, _) = common::call(
            &s,
            reqwest::Method::PUT,
            "/api/v1/repositories/acme/build",
            json!({"immutable_tags": true}),
        )
        .await;
        assert_eq!(st, 200);
        let (_, body) = s.push_image("acme/build", "7", b"{\"b\":7}", &[b"build 7"]).await;
        let tag = |v: &serde_json::Value| {
            v["tags"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["name"] == "7")
                .cloned()
                .unwrap()
        };
        let (_, before) = common::call(
            &s,
            reqwest::Method::GET,
            "/api/v1/repositories/acme/build/tags",
            json!(null),
        )
        .await;
        let first = tag(&before);
        assert_eq!(first["pushed_by"], "admin", "{label}: {first}");

        // Another account with push rights re-pushes the same manifest.
        let (st, _) = common::call(
            &s,
            reqwest::Method::POST,
            "/api/v1/users",
            json!({"name": "ci", "password": "ci-password-long-enough"}),
        )
        .await;
        assert_eq!(st, 201);
        let (st, _) = common::call(&s, reqwest::Method::POST, "/api/v1/orgs", json!({"name": "acme"})).await;
        assert_eq!(st, 201);
        let (st, _) = common::call(
            &s,
            reqwest::Method::POST,
            "/api/v1/namespaces/acme/grants",
            json!({"account": "ci", "role": "write"}),
        )
        .await;
        assert_eq!(st, 201);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let token = s
            .registry_token("ci", "ci-password-long-enough", &["repository:acme/build:push,pull"])
            .await;
        let r = reqwest::Client::new()
            .put(s.url("/v2/acme/build/manifests/7"))
            .bearer_auth(token)
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert_eq!(
            status,
            201,
            "{label}: a retry of the same manifest succeeds: {}",
            r.text().await.unwrap()
        );
        let (_, after) = common::call(
            &s,
            reqwest::Method::GET,
            "/api/v1/repositories/acme/build/tags",
            json!(null),
        )
        .await;
        let now = tag(&after);
        assert_eq!(
            now["pushed_by"], "admin",
            "{label}: the re-push rewrote the pusher: {now}"
        );
        assert_eq!(
            now["pushed_at"], first["pushed_at"],
            "{label}: the re-push rewrote the time"
        );
        let (_, audit) = common::call(
            &s,
            reqwest::Method::GET,
            "/api/v1/audit?actor=ci&repository=acme/build",
            json!(null),
        )
        .await;
        assert!(
            !audit["records"].as_array().unwrap().is_empty(),
            "{label}: the re-push is in the audit trail: {audit}"
        );
    }
}

/// Cosign adds a layer per signer to one `sha256-<hex>.sig` tag. Under
/// immutable tags a second signer still signs (the tag moves to a
/// manifest that keeps every layer and adds one); a change that drops a
/// signature is refused like any other move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signer_signs_under_immutable_tags() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let work = tempfile::tempdir().unwrap();
        common::signing::trusted_team(&s, &["alice", "bob"], &[]).await;
        let (alice, _) = common::signing::register_key(&s, work.path(), "alice").await;
        let (bob, _) = common::signing::register_key(&s, work.path(), "bob").await;
        let (image, _) = s.push_image("acme/app", "1", b"{\"i\":1}", &[b"immutable"]).await;
        let (st, _) = common::call(
            &s,
            reqwest::Method::PUT,
            "/api/v1/repositories/acme/app",
            json!({"immutable_tags": true}),
        )
        .await;
        assert_eq!(st, 200);
        // Each call adds a layer to the .sig tag and asserts a 201.
        common::signing::cosign_sign(&s, work.path(), &alice, "acme/app", &image).await;
        common::signing::cosign_sign(&s, work.path(), &bob, "acme/app", &image).await;
        let sig_tag = format!("sha256-{}.sig", image.hex());
        let sig: serde_json::Value = serde_json::from_slice(&s.manifest_bytes("acme/app", &sig_tag).await).unwrap();
        let layers = sig["layers"].as_array().unwrap().clone();
        assert_eq!(layers.len(), 2, "{label}: both signatures kept: {sig}");
        // Dropping alice's signature is a move like any other: refused.
        let mut fewer = sig.clone();
        fewer["layers"] = json!([layers[1]]);
        let r = s
            .put_manifest("acme/app", &sig_tag, serde_json::to_vec(&fewer).unwrap())
            .await;
        assert_eq!(
            r.status(),
            403,
            "{label}: a signature was dropped under an immutable tag"
        );
    }
}

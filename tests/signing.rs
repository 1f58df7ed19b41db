//! Signed-only pulls, on SQLite and PostgreSQL, with keys and signatures
//! made by OpenSSL (an implementation independent of ours) in cosign's tag
//! form: a team's members' current keys are trusted; an unsigned image, one
//! signed by a key outside the team, one whose tag moved after signing and
//! one signed by a revoked key are refused; a promotion carries the
//! signature along, so the release repository serves the image signed.

mod common;

use std::path::Path;

use base64::Engine;
use common::{backends, TestServer};
use portcullis_oci::Digest;
use serde_json::{json, Value};

const PW: &str = "signing-test-password";

fn openssl(args: &[&str], dir: &Path) -> Vec<u8> {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A P-256 key pair made by OpenSSL: (private key file, public PEM).
fn key_pair(dir: &Path, name: &str) -> (String, String) {
    let key = format!("{name}.key");
    openssl(
        &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &key],
        dir,
    );
    let public = String::from_utf8(openssl(&["ec", "-in", &key, "-pubout"], dir)).unwrap();
    (key, public)
}

async fn call(s: &TestServer, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
    let r = s.http.request(method, s.url(path)).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Signs `image` in `repo` as cosign does (tag form): the simple-signing
/// payload, its ECDSA signature by OpenSSL, the signature manifest under
/// `sha256-<hex>.sig`.
async fn cosign_sign(s: &TestServer, dir: &Path, key: &str, repo: &str, image: &Digest) {
    let host = s.base.trim_start_matches("http://");
    let payload = serde_json::to_vec(&json!({
        "critical": {"identity": {"docker-reference": format!("{host}/{repo}")},
                     "image": {"docker-manifest-digest": image.as_str()},
                     "type": "cosign container image signature"},
        "optional": null,
    }))
    .unwrap();
    std::fs::write(dir.join("payload.json"), &payload).unwrap();
    let sig = openssl(&["dgst", "-sha256", "-sign", key, "payload.json"], dir);
    let p = s.push_blob(repo, &payload).await;
    let config = s.push_blob(repo, b"{}").await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.as_str(), "size": 2},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": p.as_str(),
                    "size": payload.len(),
                    "annotations": {"dev.cosignproject.cosign/signature":
                        base64::engine::general_purpose::STANDARD.encode(sig)}}],
    }))
    .unwrap();
    let r = s
        .http
        .put(s.url(&format!("/v2/{repo}/manifests/sha256-{}.sig", image.hex())))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

/// Users `users`, organizations `ci` and `acme`, and team `ci/gitlab`
/// holding `members`: the world of a "signed by the team" rule.
async fn trusted_team(s: &TestServer, users: &[&str], members: &[&str]) {
    for u in users {
        let (st, v) = call(
            s,
            reqwest::Method::POST,
            "/api/v1/users",
            json!({"name": u, "password": PW}),
        )
        .await;
        assert_eq!(st, 201, "{v}");
    }
    for org in ["ci", "acme"] {
        assert_eq!(
            call(s, reqwest::Method::POST, "/api/v1/orgs", json!({"name": org}))
                .await
                .0,
            201
        );
    }
    let team = json!({"name": "gitlab"});
    assert_eq!(
        call(s, reqwest::Method::POST, "/api/v1/orgs/ci/teams", team).await.0,
        201
    );
    for m in members {
        let path = format!("/api/v1/orgs/ci/teams/gitlab/members/{m}");
        assert_eq!(call(s, reqwest::Method::PUT, &path, Value::Null).await.0, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_images_signed_by_the_team_are_served() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let work = tempfile::tempdir().unwrap();
        let dir = work.path();
        let post = |path: &'static str, body: Value| call(&s, reqwest::Method::POST, path, body);
        trusted_team(&s, &["builder", "stranger", "dev"], &["builder"]).await;
        assert_eq!(
            post(
                "/api/v1/namespaces/acme/grants",
                json!({"account": "dev", "role": "read"})
            )
            .await
            .0,
            201
        );
        // Each signer registers their OpenSSL-made public key themselves.
        let mut keys = Vec::new();
        for u in ["builder", "stranger"] {
            let (key, public) = key_pair(dir, u);
            let r = s
                .anon
                .post(s.url(&format!("/api/v1/accounts/{u}/keys")))
                .basic_auth(u, Some(PW))
                .json(&json!({"name": "laptop", "pem": public}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201, "{label}");
            let v: Value = r.json().await.unwrap();
            keys.push((key, v["id"].as_str().unwrap().to_string()));
        }
        let (signed, _) = s
            .push_image("acme/app", "signed", b"{\"s\":1}", &[b"signed layer"])
            .await;
        let (unsigned, unsigned_manifest) = s
            .push_image("acme/app", "unsigned", b"{\"u\":1}", &[b"unsigned layer"])
            .await;
        let (foreign, _) = s
            .push_image("acme/app", "foreign", b"{\"f\":1}", &[b"foreign layer"])
            .await;
        cosign_sign(&s, dir, &keys[0].0, "acme/app", &signed).await;
        cosign_sign(&s, dir, &keys[1].0, "acme/app", &foreign).await;
        let rule = json!({"pull_rule": {"require_signed_by": {"teams": ["ci/gitlab"]}}});
        let (st, v) = call(&s, reqwest::Method::PUT, "/api/v1/repositories/acme/app", rule.clone()).await;
        assert_eq!(st, 200, "{v}");

        let token = {
            let r = s
                .anon
                .get(s.url(
                    "/auth/token?service=portcullis&scope=repository:acme/app:pull&scope=repository:acme/release:pull",
                ))
                .basic_auth("dev", Some(PW))
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string()
        };
        let pull = |reference: String| {
            let url = s.url(&format!("/v2/{reference}"));
            let token = token.clone();
            async move {
                let r = reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap();
                let status = r.status().as_u16();
                (status, r.text().await.unwrap())
            }
        };
        assert_eq!(pull(format!("acme/app/manifests/{signed}")).await.0, 200, "{label}");
        assert_eq!(pull("acme/app/manifests/signed".into()).await.0, 200);
        let (st, text) = pull("acme/app/manifests/unsigned".into()).await;
        assert_eq!(st, 403, "{label}");
        assert!(text.contains("not signed") && text.contains("team ci/gitlab"), "{text}");
        let (st, text) = pull("acme/app/manifests/foreign".into()).await;
        assert_eq!(st, 403);
        assert!(text.contains("no signature verifies"), "{text}");
        // The signature itself stays pullable.
        let sig_tag = format!("sha256-{}.sig", signed.hex());
        assert_eq!(pull(format!("acme/app/manifests/{sig_tag}")).await.0, 200);
        // A tag moved to an unsigned manifest stops verifying at once.
        let r = s
            .http
            .put(s.url("/v2/acme/app/manifests/signed"))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(unsigned_manifest)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(pull("acme/app/manifests/signed".into()).await.0, 403, "{label}");
        assert_eq!(pull(format!("acme/app/manifests/{unsigned}")).await.0, 403);

        // A promotion copies the signature along (copy_referrers, on by default).
        let (st, p) = post(
            "/api/v1/repositories/acme/app/policies",
            json!({"target": "acme/release", "tag_template": "%n", "rules": [{"field": "tag", "operator": "eq", "values": ["ship"]}]}),
        )
        .await;
        assert_eq!(st, 201, "{p}");
        let signed_manifest = s
            .http
            .get(s.url(&format!("/v2/acme/app/manifests/{signed}")))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let r = s
            .http
            .put(s.url("/v2/acme/app/manifests/ship"))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(signed_manifest)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let (st, v) = call(&s, reqwest::Method::PUT, "/api/v1/repositories/acme/release", rule).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(
            pull("acme/release/manifests/ship".into()).await.0,
            200,
            "{label}: signed in the release repository too"
        );
        assert_eq!(pull(format!("acme/release/manifests/{sig_tag}")).await.0, 200);

        // The builder's key is revoked: its signatures stop counting.
        let r = s
            .anon
            .delete(s.url(&format!("/api/v1/accounts/builder/keys/{}", keys[0].1)))
            .basic_auth("builder", Some(PW))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        let (st, text) = pull(format!("acme/app/manifests/{signed}")).await;
        assert_eq!(st, 403, "{label}: {text}");
        // Administrators are exempt.
        let r = s
            .http
            .get(s.url(&format!("/v2/acme/app/manifests/{signed}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

/// Server-side signing at promotion: a service account of the trusted team
/// holds a key made and sealed by the server; a policy with `sign_as`
/// signs what it promotes, so the release repository's signed-only rule
/// serves it, and OpenSSL verifies the signature the server made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotions_are_signed_by_the_ci_machine_identity() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let work = tempfile::tempdir().unwrap();
        let dir = work.path();
        let post = |path: &'static str, body: Value| call(&s, reqwest::Method::POST, path, body);
        for u in ["dev", "lead"] {
            assert_eq!(post("/api/v1/users", json!({"name": u, "password": PW})).await.0, 201);
        }
        for org in ["ci", "acme"] {
            assert_eq!(post("/api/v1/orgs", json!({"name": org})).await.0, 201);
        }
        assert_eq!(post("/api/v1/orgs/ci/teams", json!({"name": "gitlab"})).await.0, 201);
        assert_eq!(
            post("/api/v1/namespaces/ci/service-accounts", json!({"name": "release"}))
                .await
                .0,
            201
        );
        let (st, _) = call(
            &s,
            reqwest::Method::PUT,
            "/api/v1/orgs/ci/teams/gitlab/members/ci+release",
            Value::Null,
        )
        .await;
        assert_eq!(st, 200);
        assert_eq!(
            post(
                "/api/v1/namespaces/acme/grants",
                json!({"account": "dev", "role": "read"})
            )
            .await
            .0,
            201
        );
        assert_eq!(
            post(
                "/api/v1/namespaces/acme/grants",
                json!({"account": "lead", "role": "admin"})
            )
            .await
            .0,
            201
        );
        let (st, key) = post("/api/v1/accounts/ci+release/signing-key", Value::Null).await;
        assert_eq!(st, 201, "{key}");
        assert!(
            !key.to_string().contains("PRIVATE"),
            "only the public half leaves the server"
        );
        let (st, _) = post("/api/v1/accounts/dev/signing-key", Value::Null).await;
        assert_eq!(st, 400, "users sign with their own keys");

        let policy = json!({"target": "acme/signed", "tag_template": "%n", "sign_as": "ci+release",
                            "rules": [{"field": "tag", "operator": "eq", "values": ["ship"]}]});
        // The lead administers acme, not ci: they can't use ci's key.
        let r = s
            .anon
            .post(s.url("/api/v1/repositories/acme/build/policies"))
            .basic_auth("lead", Some(PW))
            .json(&policy)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{label}");
        let (st, p) = post("/api/v1/repositories/acme/build/policies", policy).await;
        assert_eq!(st, 201, "{p}");
        let (st, v) = call(
            &s,
            reqwest::Method::PUT,
            "/api/v1/repositories/acme/signed",
            json!({"pull_rule": {"require_signed_by": {"teams": ["ci/gitlab"]}}}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        let (image, _) = s
            .push_image("acme/build", "ship", b"{\"ship\":1}", &[b"shipped layer"])
            .await;

        let r = s
            .anon
            .get(s.url("/auth/token?service=portcullis&scope=repository:acme/signed:pull"))
            .basic_auth("dev", Some(PW))
            .send()
            .await
            .unwrap();
        let token = r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
        let r = reqwest::Client::new()
            .get(s.url("/v2/acme/signed/manifests/ship"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{label}: {}", r.text().await.unwrap());

        // OpenSSL checks the server's signature with the published key.
        let sig: Value = s
            .http
            .get(s.url(&format!("/v2/acme/signed/manifests/sha256-{}.sig", image.hex())))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let layer = &sig["layers"][0];
        let payload = s
            .http
            .get(s.url(&format!("/v2/acme/signed/blobs/{}", layer["digest"].as_str().unwrap())))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let claimed: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(claimed["critical"]["image"]["docker-manifest-digest"], image.as_str());
        std::fs::write(dir.join("payload"), &payload).unwrap();
        std::fs::write(
            dir.join("sig.der"),
            base64::engine::general_purpose::STANDARD
                .decode(
                    layer["annotations"]["dev.cosignproject.cosign/signature"]
                        .as_str()
                        .unwrap(),
                )
                .unwrap(),
        )
        .unwrap();
        std::fs::write(dir.join("pub.pem"), key["pem"].as_str().unwrap()).unwrap();
        let out = openssl(
            &[
                "dgst",
                "-sha256",
                "-verify",
                "pub.pem",
                "-signature",
                "sig.der",
                "payload",
            ],
            dir,
        );
        assert!(String::from_utf8_lossy(&out).contains("Verified OK"), "{label}");

        let (_, audit) = call(&s, reqwest::Method::GET, "/api/v1/audit?action=signature", Value::Null).await;
        let records = audit["records"].as_array().unwrap();
        assert_eq!(records.len(), 1, "{label}: {audit}");
        assert!(records[0]["detail"]
            .as_str()
            .unwrap()
            .contains(key["key_id"].as_str().unwrap()));
    }
}

/// An AdmissionReview as the Kubernetes API server sends it.
fn review(uid: &str, kind: &str, images: &[&str]) -> Value {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
        .collect();
    let pod_spec = json!({"containers": containers, "restartPolicy": "Always"});
    let object = match kind {
        "Pod" => {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "prod"}, "spec": pod_spec})
        }
        "Deployment" => {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "prod"},
                               "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                                        "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec}}})
        }
        _ => json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly", "namespace": "prod"},
                    "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": pod_spec}}}}}),
    };
    let group = match kind {
        "Pod" => ("", "v1"),
        "Deployment" => ("apps", "v1"),
        _ => ("batch", "v1"),
    };
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group.0, "version": group.1, "kind": kind},
            "resource": {"group": group.0, "version": group.1, "resource": format!("{}s", kind.to_lowercase())},
            "namespace": "prod",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:deployer"},
            "object": object,
            "dryRun": false,
        }
    })
}

/// The admission webhook admits workloads whose images the pull rules
/// would serve (signed by the team) and denies the others, naming each
/// failing image; images of other registries are denied by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_reviews_allow_only_signed_images() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let work = tempfile::tempdir().unwrap();
        let dir = work.path();
        let post = |path: &'static str, body: Value| call(&s, reqwest::Method::POST, path, body);
        trusted_team(&s, &["builder"], &["builder"]).await;
        let (key, public) = key_pair(dir, "builder");
        assert_eq!(
            post("/api/v1/accounts/builder/keys", json!({"name": "k", "pem": public}))
                .await
                .0,
            201
        );
        let (signed, _) = s.push_image("acme/app", "signed", b"{\"s\":2}", &[b"signed 2"]).await;
        s.push_image("acme/app", "unsigned", b"{\"u\":2}", &[b"unsigned 2"])
            .await;
        cosign_sign(&s, dir, &key, "acme/app", &signed).await;
        let (st, _) = call(
            &s,
            reqwest::Method::PUT,
            "/api/v1/repositories/acme/app",
            json!({"pull_rule": {"require_signed_by": {"teams": ["ci/gitlab"]}}}),
        )
        .await;
        assert_eq!(st, 200);
        // A cluster's webhook account: a service account that may pull.
        assert_eq!(
            post("/api/v1/namespaces/acme/service-accounts", json!({"name": "kube"}))
                .await
                .0,
            201
        );
        let grant = json!({"account": "acme+kube", "role": "read"});
        assert_eq!(post("/api/v1/namespaces/acme/grants", grant).await.0, 201);
        let (_, t) = post(
            "/api/v1/accounts/acme+kube/tokens",
            json!({"name": "admission", "scopes": ["acme/*:pull"]}),
        )
        .await;
        let token = t["token"].as_str().unwrap().to_string();
        let host = s.base.trim_start_matches("http://").to_string();
        let ask = |body: Value| {
            let (url, token) = (s.url("/api/v1/admission"), token.clone());
            async move {
                let r = reqwest::Client::new()
                    .post(url)
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                r.json::<Value>().await.unwrap()
            }
        };
        let signed_ref = format!("{host}/acme/app:signed");
        let by_digest = format!("{host}/acme/app@{signed}");
        let unsigned_ref = format!("{host}/acme/app:unsigned");
        for kind in ["Pod", "Deployment", "CronJob"] {
            let v = ask(review("uid-ok", kind, &[&signed_ref, &by_digest])).await;
            assert_eq!(v["response"]["uid"], "uid-ok");
            assert_eq!(v["response"]["allowed"], true, "{label} {kind}: {v}");
        }
        let v = ask(review(
            "uid-no",
            "Deployment",
            &[&signed_ref, &unsigned_ref, "nginx:1.25"],
        ))
        .await;
        assert_eq!(v["response"]["allowed"], false, "{label}: {v}");
        let message = v["response"]["status"]["message"].as_str().unwrap();
        assert!(
            message.contains(&unsigned_ref) && message.contains("not signed"),
            "{message}"
        );
        assert!(
            message.contains("nginx:1.25") && message.contains("docker.io"),
            "{message}"
        );
        assert!(
            !message.contains(&format!("{signed_ref}:")),
            "the signed image passed: {message}"
        );
        // Administrators get no exemption here: the rule is the cluster's.
        let r = s
            .http
            .post(s.url("/api/v1/admission"))
            .json(&review("uid-admin", "Pod", &[&unsigned_ref]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.json::<Value>().await.unwrap()["response"]["allowed"], false);
        // Anonymous callers are not answered.
        let r = s
            .anon
            .post(s.url("/api/v1/admission"))
            .json(&review("x", "Pod", &[]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
}

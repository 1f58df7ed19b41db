//! Signing helpers shared by the signature tests: keys made and cosign
//! tag-form signatures written by OpenSSL, an implementation independent
//! of ours, and the accounts of a "signed by the team" rule.

use std::path::Path;

use base64::Engine;
use portcullis_oci::Digest;
use serde_json::{json, Value};

use super::{call, openssl, TestServer};

pub const PW: &str = "signing-test-password";

/// A P-256 key pair made by OpenSSL: (private key file, public PEM).
pub fn key_pair(dir: &Path, name: &str) -> (String, String) {
    let key = format!("{name}.key");
    openssl(
        &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &key],
        dir,
    );
    let public = String::from_utf8(openssl(&["ec", "-in", &key, "-pubout"], dir)).unwrap();
    (key, public)
}

/// Makes `user`'s OpenSSL key and registers its public half as `user`:
/// (private key file, key id).
pub async fn register_key(s: &TestServer, dir: &Path, user: &str) -> (String, String) {
    let (key, public) = key_pair(dir, user);
    let r = s
        .anon
        .post(s.url(&format!("/api/v1/accounts/{user}/keys")))
        .basic_auth(user, Some(PW))
        .json(&json!({"name": "laptop", "pem": public}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let v: Value = r.json().await.unwrap();
    (key, v["id"].as_str().unwrap().to_string())
}

/// Signs `image` in `repo` as cosign does (tag form): the simple-signing
/// payload, its ECDSA signature by OpenSSL, the signature manifest under
/// `sha256-<hex>.sig`, keeping the signatures already there (as cosign
/// does when a second signer signs).
pub async fn cosign_sign(s: &TestServer, dir: &Path, key: &str, repo: &str, image: &Digest) {
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
    let tag = format!("sha256-{}.sig", image.hex());
    let existing = s
        .http
        .get(s.url(&format!("/v2/{repo}/manifests/{tag}")))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    let mut layers: Vec<Value> = if existing.status() == 200 {
        let v: Value = existing.json().await.unwrap();
        v["layers"].as_array().cloned().unwrap_or_default()
    } else {
        Vec::new()
    };
    layers.push(
        json!({"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": p.as_str(),
                       "size": payload.len(),
                       "annotations": {"dev.cosignproject.cosign/signature":
                           base64::engine::general_purpose::STANDARD.encode(sig)}}),
    );
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.as_str(), "size": 2},
        "layers": layers,
    }))
    .unwrap();
    let r = s
        .http
        .put(s.url(&format!("/v2/{repo}/manifests/{tag}")))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

/// Users `users`, organizations `ci` and `acme`, and team `ci/gitlab`
/// holding `members`: the world of a "signed by the team" rule.
pub async fn trusted_team(s: &TestServer, users: &[&str], members: &[&str]) {
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

/// The CI's machine identity: service account `ci+release`, a member of `ci/gitlab`.
pub async fn ci_release_account(s: &TestServer) {
    let (st, v) = call(
        s,
        reqwest::Method::POST,
        "/api/v1/namespaces/ci/service-accounts",
        json!({"name": "release"}),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let path = "/api/v1/orgs/ci/teams/gitlab/members/ci+release";
    assert_eq!(call(s, reqwest::Method::PUT, path, Value::Null).await.0, 200);
}

/// The status a reader's pull of `repo`'s `reference` gets, with a token.
pub async fn reader_pull(s: &TestServer, user: &str, repo: &str, reference: &str) -> (u16, String) {
    let token = s.registry_token(user, PW, &[format!("repository:{repo}:pull")]).await;
    let r = reqwest::Client::new()
        .get(s.url(&format!("/v2/{repo}/manifests/{reference}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// An AdmissionReview as the Kubernetes API server sends it.
pub fn review(uid: &str, kind: &str, images: &[&str]) -> Value {
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

/// An OpenSSL P-256 key as files: `NAME.p8` (PKCS#8 PEM, what `attest`
/// takes), `NAME.der` (PKCS#8 DER) and `NAME.pub`; `NAME.key` is made
/// unless there (`register_key` makes it).
pub fn key_files(dir: &Path, name: &str) {
    let key = format!("{name}.key");
    if !dir.join(&key).exists() {
        key_pair(dir, name);
    }
    let (p8, der, public) = (format!("{name}.p8"), format!("{name}.der"), format!("{name}.pub"));
    openssl(&["pkcs8", "-topk8", "-nocrypt", "-in", &key, "-out", &p8], dir);
    let args = [
        "pkcs8", "-topk8", "-nocrypt", "-in", &key, "-outform", "DER", "-out", &der,
    ];
    openssl(&args, dir);
    openssl(&["ec", "-in", &key, "-pubout", "-out", &public], dir);
}

/// `dir/name` as a string argument.
pub fn path(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().unwrap().to_string()
}

/// The server's `host:port`, as image references name it.
pub fn host(s: &TestServer) -> String {
    s.base.trim_start_matches("http://").to_string()
}

/// Runs the CLI against the test server as the administrator: (exit code,
/// JSON on stdout or null, stdout, stderr).
pub async fn admin_cli(s: &TestServer, args: &[&str]) -> (i32, Value, String, String) {
    let creds = format!("admin:{}", s.admin_token);
    let args = [args, &["--tls-verify=false", "--creds", &creds]].concat();
    let (code, out, err) = super::cli(&args, &[]).await;
    (code, serde_json::from_str(&out).unwrap_or(Value::Null), out, err)
}

/// `portcullis attest IMAGE --type KIND --predicate FILE --key KEY --form
/// FORM` and `extra`, as the administrator (the real CLI).
pub async fn attest_cli(
    s: &TestServer,
    image: &str,
    (kind, predicate, key, form): (&str, &str, &str, &str),
    extra: &[&str],
) -> (i32, Value, String, String) {
    let args = [
        "attest",
        image,
        "--type",
        kind,
        "--predicate",
        predicate,
        "--key",
        key,
        "--form",
        form,
    ];
    admin_cli(s, &[&args[..], extra].concat()).await
}

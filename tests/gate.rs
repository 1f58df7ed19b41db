//! The gate cannot be walked around: each test performs an attack from the
//! adversarial review (issue 19) against a running server, on SQLite and
//! PostgreSQL, and checks that a reader's GET and an admission review now
//! refuse what they used to serve.

mod common;

use common::signing::{cosign_sign, reader_pull, register_key, review, trusted_team, PW};
use common::{backends, call, TestServer};
use portcullis_meta::AuditEvent;
use portcullis_oci::Digest;
use reqwest::Method;
use serde_json::{json, Value};

/// Pushes an ordinary image whose config claims `config_type`.
async fn push_with_config_type(s: &TestServer, repo: &str, tag: &str, config_type: &str, layer: &[u8]) -> Digest {
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let c = s.push_blob(repo, config).await;
    let l = s.push_blob(repo, layer).await;
    let body = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": config_type, "digest": c.as_str(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": l.as_str(), "size": layer.len()}],
    }))
    .unwrap();
    let r = s.put_manifest(repo, tag, body.clone()).await;
    assert_eq!(r.status(), 201);
    Digest::sha256_of(&body)
}

/// An OCI index over `children` (digests of manifests of `media_type`).
async fn push_index(s: &TestServer, repo: &str, tag: &str, children: &[(&Digest, &str)]) -> Digest {
    let mut manifests = Vec::new();
    for (d, media_type) in children {
        let r = s
            .http
            .get(s.url(&format!("/v2/{repo}/manifests/{d}")))
            .header("accept", *media_type)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let size = r.bytes().await.unwrap().len();
        manifests.push(json!({"mediaType": media_type, "digest": d.as_str(), "size": size,
                              "platform": {"architecture": "amd64", "os": "linux"}}));
    }
    let body = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests,
    }))
    .unwrap();
    let r = s.put_index(repo, tag, body.clone()).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    Digest::sha256_of(&body)
}

async fn grant(s: &TestServer, ns: &str, body: Value) {
    let (st, v) = call(s, Method::POST, &format!("/api/v1/namespaces/{ns}/grants"), body).await;
    assert_eq!(st, 201, "{v}");
}

async fn set_rule(s: &TestServer, path: &str, rule: Value) -> (u16, Value) {
    call(s, Method::PUT, path, json!({ "pull_rule": rule })).await
}

/// Service account `acme+NAME` with `role` on namespace `acme`, and an
/// API token of it limited to `scope`.
async fn service_token(s: &TestServer, name: &str, role: &str, scope: &str) -> String {
    let (st, _) = call(
        s,
        Method::POST,
        "/api/v1/namespaces/acme/service-accounts",
        json!({ "name": name }),
    )
    .await;
    assert_eq!(st, 201);
    grant(s, "acme", json!({"account": format!("acme+{name}"), "role": role})).await;
    let (_, t) = call(
        s,
        Method::POST,
        &format!("/api/v1/accounts/acme+{name}/tokens"),
        json!({"name": "token", "scopes": [scope]}),
    )
    .await;
    t["token"].as_str().unwrap().to_string()
}

/// What a cluster's admission webhook authenticates as: a service account
/// of `acme` that may pull.
async fn admission_token(s: &TestServer) -> String {
    service_token(s, "kube", "read", "acme/*:pull").await
}

async fn admit(s: &TestServer, token: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .post(s.url("/api/v1/admission"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["response"].clone()
}

/// Attack 1: an image whose config media type is not one of the two image
/// config types was never scanned or judged; an index of an index of an
/// unsigned image was admitted. Both are judged now, at pull and at
/// admission, and an index passes only when every image it reaches does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_runnable_manifest_and_every_nested_image_is_judged() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let work = tempfile::tempdir().unwrap();
        trusted_team(&s, &["builder", "dev"], &["builder"]).await;
        grant(&s, "acme", json!({"account": "dev", "role": "read"})).await;
        let key = register_key(&s, work.path(), "builder").await.0;
        let (st, v) = set_rule(
            &s,
            "/api/v1/namespaces/acme/settings",
            json!({"require_signed_by": {"teams": ["ci/gitlab"]}}),
        )
        .await;
        assert_eq!(st, 200, "{v}");

        let odd = push_with_config_type(
            &s,
            "acme/app",
            "odd",
            "application/vnd.oci.image.config.v2+json",
            b"odd layer",
        )
        .await;
        let (st, text) = reader_pull(&s, "dev", "acme/app", "odd").await;
        assert_eq!(
            st, 403,
            "{label}: an unsigned image with a v2 config type is served: {text}"
        );
        assert!(text.contains("not signed"), "{text}");
        // It is scanned like any image (queued on push).
        assert!(
            s.registry.meta.scan(odd.as_str()).await.unwrap().is_some(),
            "{label}: the odd image was never queued for a scan"
        );

        let (signed, _) = s.push_image("acme/app", "signed", b"{\"s\":1}", &[b"signed"]).await;
        cosign_sign(&s, work.path(), &key, "acme/app", &signed).await;
        let (unsigned, _) = s.push_image("acme/app", "unsigned", b"{\"u\":1}", &[b"unsigned"]).await;
        let image = "application/vnd.oci.image.manifest.v1+json";
        let index = "application/vnd.oci.image.index.v1+json";
        let inner = push_index(&s, "acme/app", "inner", &[(&signed, image), (&unsigned, image)]).await;
        push_index(&s, "acme/app", "nested", &[(&inner, index)]).await;
        let good_inner = push_index(&s, "acme/app", "good-inner", &[(&signed, image)]).await;
        push_index(&s, "acme/app", "good", &[(&good_inner, index)]).await;

        assert_eq!(reader_pull(&s, "dev", "acme/app", "signed").await.0, 200, "{label}");
        assert_eq!(reader_pull(&s, "dev", "acme/app", "good").await.0, 200, "{label}");
        let (st, text) = reader_pull(&s, "dev", "acme/app", "nested").await;
        assert_eq!(st, 403, "{label}: an index reaching an unsigned image is served");
        assert!(text.contains(unsigned.as_str()), "{text}");

        let token = admission_token(&s).await;
        let host = s.base.trim_start_matches("http://").to_string();
        let at = |tag: &str| format!("{host}/acme/app:{tag}");
        let v = admit(&s, &token, review("ok", "Pod", &[&at("signed"), &at("good")])).await;
        assert_eq!(v["allowed"], true, "{label}: {v}");
        for tag in ["odd", "nested"] {
            let v = admit(&s, &token, review("no", "Deployment", &[&at(tag)])).await;
            assert_eq!(v["allowed"], false, "{label}: {tag} admitted: {v}");
        }
    }
}

/// Attack 2: a repository administrator adds a rule of their own naming
/// themselves as signer; the namespace's signer list still has to be
/// satisfied, separately.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_admin_cannot_replace_the_namespace_signers() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let work = tempfile::tempdir().unwrap();
        trusted_team(&s, &["builder", "mallory", "dev"], &["builder"]).await;
        grant(&s, "acme", json!({"account": "dev", "role": "read"})).await;
        grant(
            &s,
            "acme",
            json!({"account": "mallory", "role": "admin", "repository": "acme/app"}),
        )
        .await;
        let builder_key = register_key(&s, work.path(), "builder").await.0;
        let mallory_key = register_key(&s, work.path(), "mallory").await.0;
        let (st, _) = set_rule(
            &s,
            "/api/v1/namespaces/acme/settings",
            json!({"require_signed_by": {"teams": ["ci/gitlab"]}}),
        )
        .await;
        assert_eq!(st, 200);

        let (image, _) = s.push_image("acme/app", "evil", b"{\"evil\":1}", &[b"evil"]).await;
        cosign_sign(&s, work.path(), &mallory_key, "acme/app", &image).await;
        let r = s
            .anon
            .put(s.url("/api/v1/repositories/acme/app"))
            .basic_auth("mallory", Some(PW))
            .json(&json!({"pull_rule": {"require_signed_by": {"accounts": ["mallory"]}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "the repository admin may add a rule");
        let (st, text) = reader_pull(&s, "dev", "acme/app", "evil").await;
        assert_eq!(
            st, 403,
            "{label}: the repository admin replaced the namespace's signers"
        );
        assert!(text.contains("team ci/gitlab"), "{text}");
        // Signed by both, both rules hold.
        cosign_sign(&s, work.path(), &builder_key, "acme/app", &image).await;
        let (st, text) = reader_pull(&s, "dev", "acme/app", "evil").await;
        assert_eq!(st, 200, "{label}: {text}");
    }
}

/// Attack 5: a rule naming a team nobody has created yet was saved, and
/// whoever created it became a trusted signer. Such a rule is refused; a
/// named team that is deleted makes the rule refuse everything; one created
/// again under the same name is not trusted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_name_only_signers_that_exist_and_fail_closed_when_they_go() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let work = tempfile::tempdir().unwrap();
        trusted_team(&s, &["builder", "mallory", "dev"], &[]).await;
        grant(&s, "acme", json!({"account": "dev", "role": "read"})).await;
        let builder_key = register_key(&s, work.path(), "builder").await.0;
        let mallory_key = register_key(&s, work.path(), "mallory").await.0;
        let rule = json!({"require_signed_by": {"teams": ["ops/signers"], "accounts": ["builder"]}});
        for path in ["/api/v1/repositories/acme/app", "/api/v1/namespaces/acme/settings"] {
            let (st, v) = set_rule(&s, path, rule.clone()).await;
            assert_eq!(
                st, 400,
                "{label}: a rule naming a missing team was saved at {path}: {v}"
            );
            assert!(v.to_string().contains("team ops/signers"), "{v}");
        }
        let (st, v) = set_rule(
            &s,
            "/api/v1/repositories/acme/app",
            json!({"require_signed_by": {"accounts": ["nobody"]}}),
        )
        .await;
        assert_eq!(st, 400, "{v}");

        let make_team = |member: &'static str| {
            let s = &s;
            async move {
                assert_eq!(
                    call(s, Method::POST, "/api/v1/orgs", json!({"name": "ops"})).await.0,
                    201
                );
                let (st, _) = call(s, Method::POST, "/api/v1/orgs/ops/teams", json!({"name": "signers"})).await;
                assert_eq!(st, 201);
                let path = format!("/api/v1/orgs/ops/teams/signers/members/{member}");
                assert_eq!(call(s, Method::PUT, &path, Value::Null).await.0, 200);
            }
        };
        make_team("builder").await;
        let (st, v) = set_rule(
            &s,
            "/api/v1/repositories/acme/app",
            json!({"require_signed_by": {"teams": ["ops/signers"]}}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        let (image, _) = s.push_image("acme/app", "1", b"{\"one\":1}", &[b"one"]).await;
        cosign_sign(&s, work.path(), &builder_key, "acme/app", &image).await;
        cosign_sign(&s, work.path(), &mallory_key, "acme/app", &image).await;
        assert_eq!(reader_pull(&s, "dev", "acme/app", "1").await.0, 200, "{label}");

        assert_eq!(call(&s, Method::DELETE, "/api/v1/orgs/ops", Value::Null).await.0, 204);
        let (st, text) = reader_pull(&s, "dev", "acme/app", "1").await;
        assert_eq!(st, 403, "{label}: a rule whose team is gone still serves");
        assert!(text.contains("no longer exists"), "{text}");

        // Someone else takes the name: their team is not the one trusted.
        make_team("mallory").await;
        let (st, text) = reader_pull(&s, "dev", "acme/app", "1").await;
        assert_eq!(st, 403, "{label}: a re-created team of the same name is trusted");
        assert!(text.contains("created after"), "{text}");
        // Saving the settings with the rule unchanged (as the web UI's form
        // does) keeps its stamp: the re-created team still does not count.
        let (st, v) = call(
            &s,
            Method::PUT,
            "/api/v1/repositories/acme/app",
            json!({"scan_on_push": true, "pull_rule": {"require_signed_by": {"teams": ["ops/signers"]}}}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        let (st, text) = reader_pull(&s, "dev", "acme/app", "1").await;
        assert_eq!(st, 403, "{label}: re-saving the same rule trusted the re-created team");
        assert!(text.contains("created after"), "{text}");
        // A changed rule is a new decision, stamped now.
        let (_, before) = call(&s, Method::GET, "/api/v1/repositories/acme/app", Value::Null).await;
        let (st, v) = set_rule(
            &s,
            "/api/v1/repositories/acme/app",
            json!({"require_signed_by": {"teams": ["ops/signers"]}, "deny_failed": true}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        assert!(
            v["pull_rule"]["saved_at"].as_i64() > before["pull_rule"]["saved_at"].as_i64(),
            "{label}: {before} then {v}"
        );
    }
}

/// Attack 17: a stored rule that does not parse (written by a newer
/// version, or by hand) counted as no rule. It refuses every pull and
/// every admission now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_stored_rule_refuses_everything() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        trusted_team(&s, &["dev"], &[]).await;
        grant(&s, "acme", json!({"account": "dev", "role": "read"})).await;
        s.push_image("acme/app", "1", b"{\"one\":1}", &[b"one"]).await;
        let corrupt =
            r#"{"require_signed_by": {"teams": ["ci/gitlab"]}, "require_provenance": {"builder_ids": ["x"]}}"#;
        s.registry
            .meta
            .set_repository_pull_rule("acme/app", corrupt, &AuditEvent::ok("test", "repository.update"))
            .await
            .unwrap();
        let (st, text) = reader_pull(&s, "dev", "acme/app", "1").await;
        assert_eq!(st, 403, "{label}: an unreadable rule served the image");
        assert!(text.contains("unreadable"), "{text}");
        let token = admission_token(&s).await;
        let host = s.base.trim_start_matches("http://").to_string();
        let v = admit(&s, &token, review("u", "Pod", &[&format!("{host}/acme/app:1")])).await;
        assert_eq!(v["allowed"], false, "{label}: {v}");
    }
}

/// Attacks 9, 11 and 19: admission judges `kubectl debug`'s ephemeral
/// containers, knows this registry under other spellings and names, and
/// bounds its work per review.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_sees_through_spellings_debug_containers_and_floods() {
    for backend in backends() {
        let s = TestServer::start_tuned(&backend, portcullis_server::Anonymous::None, |o| {
            o.access.admission_foreign_images = true;
            o.access.listen = o.webhooks.public_url.trim_start_matches("http://").parse().ok();
            o.access.registry_aliases = vec!["registry.internal".into()];
        })
        .await;
        let label = s.label();
        trusted_team(&s, &["builder"], &["builder"]).await;
        s.push_image("acme/app", "unsigned", b"{\"u\":1}", &[b"unsigned"]).await;
        let (st, _) = set_rule(
            &s,
            "/api/v1/repositories/acme/app",
            json!({"require_signed_by": {"teams": ["ci/gitlab"]}}),
        )
        .await;
        assert_eq!(st, 200);
        let token = admission_token(&s).await;
        let port = s.base.rsplit(':').next().unwrap().to_string();

        // Foreign images are allowed here, so a spelling taken as foreign
        // would be admitted.
        let foreign = admit(&s, &token, review("f", "Pod", &["docker.io/library/busybox:1"])).await;
        assert_eq!(foreign["allowed"], true, "{foreign}");
        for host in [
            format!("127.0.0.1:{port}"),
            format!("LOCALHOST:{port}"),
            format!("localhost.:{port}"),
            format!("localhost:{port}"),
            "registry.internal".to_string(),
            "Registry.Internal.:443".to_string(),
        ] {
            let image = format!("{host}/acme/app:unsigned");
            let v = admit(&s, &token, review("h", "Pod", &[&image])).await;
            assert_eq!(v["allowed"], false, "{label}: {image} slipped past as foreign: {v}");
        }

        // `kubectl debug`: an UPDATE of the pods/ephemeralcontainers
        // subresource (kind Pod), and the older EphemeralContainers kind.
        let image = format!("127.0.0.1:{port}/acme/app:unsigned");
        let mut debug = review("d", "Pod", &["docker.io/library/busybox:1"]);
        debug["request"]["subResource"] = json!("ephemeralcontainers");
        debug["request"]["operation"] = json!("UPDATE");
        debug["request"]["object"]["spec"]["ephemeralContainers"] = json!([{"name": "debugger", "image": image}]);
        let v = admit(&s, &token, debug).await;
        assert_eq!(v["allowed"], false, "{label}: a debug container escaped admission: {v}");
        let mut old = review("e", "Pod", &[]);
        old["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "EphemeralContainers"});
        old["request"]["object"] = json!({"apiVersion": "v1", "kind": "EphemeralContainers",
                                          "metadata": {"name": "web"},
                                          "ephemeralContainers": [{"name": "debugger", "image": image}]});
        let v = admit(&s, &token, old).await;
        assert_eq!(v["allowed"], false, "{label}: {v}");

        // A flood of references is refused outright, with the reason.
        let many: Vec<String> = (0..300).map(|i| format!("docker.io/library/busybox:{i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let v = admit(&s, &token, review("m", "Pod", &refs)).await;
        assert_eq!(v["allowed"], false, "{v}");
        assert!(v["status"]["message"].as_str().unwrap().contains("at most 256"), "{v}");
    }
}

/// Attack 16: CI's token may push to the whole namespace, so it could push
/// straight into the release repository and skip the gate. A namespace's
/// promotion-only repositories take images only by promotion; signatures
/// are still pushed to them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_only_repository_takes_images_only_by_promotion() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let work = tempfile::tempdir().unwrap();
        trusted_team(&s, &["builder"], &["builder"]).await;
        let key = register_key(&s, work.path(), "builder").await.0;
        let ci = service_token(&s, "ci", "write", "acme/*:pull,push").await;
        let (st, v) = call(
            &s,
            Method::PUT,
            "/api/v1/namespaces/acme/settings",
            json!({"promotion_only": ["app"]}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["promotion_only"], json!(["app"]));
        let (st, _) = call(
            &s,
            Method::PUT,
            "/api/v1/namespaces/acme/settings",
            json!({"promotion_only": ["a/b"]}),
        )
        .await;
        assert_eq!(st, 400, "a bad pattern is refused when saved");
        let (st, p) = call(
            &s,
            Method::POST,
            "/api/v1/repositories/acme/app-build/policies",
            json!({"target": "acme/app", "tag_template": "%n", "enabled": true,
                   "rules": [{"field": "tag", "operator": "eq", "values": ["ship"]}]}),
        )
        .await;
        assert_eq!(st, 201, "{p}");

        // CI pushes the same image to the build repository and, directly, to the release one.
        let (_, body) = s.push_image("acme/scratch", "x", b"{\"hotfix\":1}", &[b"hotfix"]).await;
        let push = |repo: &str, tag: &str| {
            let (url, ci, body) = (s.url(&format!("/v2/{repo}/manifests/{tag}")), ci.clone(), body.clone());
            async move {
                let r = reqwest::Client::new()
                    .put(url)
                    .bearer_auth(ci)
                    .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }
        };
        // Blobs are linked into each repository first (a mount, as clients do).
        for repo in ["acme/app", "acme/app-build"] {
            for blob in [&b"{\"hotfix\":1}"[..], b"hotfix"] {
                s.push_blob(repo, blob).await;
            }
        }
        let (st, text) = push("acme/app", "hotfix-1").await;
        assert_eq!(st, 403, "{label}: CI pushed straight into the release repository");
        assert!(text.contains("promotion-only"), "{text}");
        let (st, text) = push("acme/app-build", "ship").await;
        assert_eq!(st, 201, "{text}");
        let digest = Digest::sha256_of(&body);
        let mut promoted = false;
        for _ in 0..100 {
            let r = s.http.get(s.url("/v2/acme/app/manifests/ship")).send().await.unwrap();
            if r.status() == 200 {
                promoted = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(promoted, "{label}: the promotion reached the promotion-only repository");
        // Signatures are still written by clients.
        cosign_sign(&s, work.path(), &key, "acme/app", &digest).await;
    }
}

/// Hardening: a signature names the repository it was made for
/// (`docker-reference`); by default (as cosign) only the digest is bound,
/// so a signature made for `acme/app` also counts in `acme/other`. A rule
/// with `match_reference` counts only signatures made for its repository.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn match_reference_counts_only_signatures_made_for_the_repository() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let work = tempfile::tempdir().unwrap();
        trusted_team(&s, &["builder", "dev"], &["builder"]).await;
        grant(&s, "acme", json!({"account": "dev", "role": "read"})).await;
        let key = register_key(&s, work.path(), "builder").await.0;
        let (image, body) = s.push_image("acme/app", "1", b"{\"m\":1}", &[b"matched"]).await;
        cosign_sign(&s, work.path(), &key, "acme/app", &image).await;
        // The same image and its signature manifest, copied to acme/other.
        let sig_tag = format!("sha256-{}.sig", image.hex());
        let sig = s.manifest_bytes("acme/app", &sig_tag).await;
        let sig_json: Value = serde_json::from_slice(&sig).unwrap();
        for d in std::iter::once(&sig_json["config"]).chain(sig_json["layers"].as_array().unwrap()) {
            let digest = d["digest"].as_str().unwrap();
            let blob = s
                .http
                .get(s.url(&format!("/v2/acme/app/blobs/{digest}")))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            s.push_blob("acme/other", &blob).await;
        }
        for blob in [&b"{\"m\":1}"[..], b"matched"] {
            s.push_blob("acme/other", blob).await;
        }
        assert_eq!(s.put_manifest("acme/other", "1", body).await.status(), 201);
        assert_eq!(s.put_manifest("acme/other", &sig_tag, sig.to_vec()).await.status(), 201);

        for repo in ["acme/app", "acme/other"] {
            let (st, v) = set_rule(
                &s,
                &format!("/api/v1/repositories/{repo}"),
                json!({"require_signed_by": {"teams": ["ci/gitlab"], "match_reference": true}}),
            )
            .await;
            assert_eq!(st, 200, "{v}");
        }
        assert_eq!(reader_pull(&s, "dev", "acme/app", "1").await.0, 200, "{label}");
        let (st, text) = reader_pull(&s, "dev", "acme/other", "1").await;
        assert_eq!(st, 403, "{label}: a signature made for acme/app counted in acme/other");
        assert!(text.contains("no signature verifies"), "{text}");
        // Without match_reference the digest alone is bound, as in cosign.
        let (st, _) = set_rule(
            &s,
            "/api/v1/repositories/acme/other",
            json!({"require_signed_by": {"teams": ["ci/gitlab"]}}),
        )
        .await;
        assert_eq!(st, 200);
        assert_eq!(reader_pull(&s, "dev", "acme/other", "1").await.0, 200, "{label}");
    }
}

/// Review finding: an image whose tar layers are labelled as a signature
/// type would be taken for a signature and never judged, while Docker
/// picks a layer's decompression by its bytes and would run it. Such a
/// manifest is refused at push; a real signature manifest is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_labelled_as_a_signature_is_refused() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let tar = common::tar_of(&[("bin/sh", b"#!/bin/true\n")]);
        for (name, layer) in [("gzip", common::gzip(&tar)), ("tar", tar.clone())] {
            let config = s.push_blob("acme/app", b"{\"os\":\"linux\"}").await;
            let l = s.push_blob("acme/app", &layer).await;
            let body = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.as_str(), "size": 15},
                "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                            "digest": l.as_str(), "size": layer.len()}],
            }))
            .unwrap();
            let r = s.put_manifest("acme/app", &format!("disguised-{name}"), body).await;
            assert_eq!(r.status(), 400, "{label}: a {name} layer passed for a signature");
            let text = r.text().await.unwrap();
            assert!(
                text.contains("MANIFEST_INVALID") && text.contains("holds an archive"),
                "{text}"
            );
        }
    }
}

/// Attack 14: 50 policies of 880 KB each made every push to their source
/// take seconds. Policies, their size, and the tags one push sets are
/// bounded, and refused past the bound with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_and_tags_per_push_are_bounded() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let policy = |i: usize| {
            json!({"target": "acme/release", "tag_template": "%n",
                   "rules": [{"field": "tag", "operator": "eq", "values": [format!("v{i}")]}]})
        };
        for i in 0..32 {
            let (st, v) = call(&s, Method::POST, "/api/v1/repositories/acme/build/policies", policy(i)).await;
            assert_eq!(st, 201, "{label}: {v}");
        }
        let (st, v) = call(&s, Method::POST, "/api/v1/repositories/acme/build/policies", policy(32)).await;
        assert_eq!(st, 400, "{label}: a 33rd policy");
        assert!(v.to_string().contains("the most a repository may have"), "{v}");
        let big = json!({"target": "acme/release", "tag_template": "%n",
                         "rules": [{"field": "tag", "operator": "one_of", "values": vec!["x".repeat(1000); 70]}]});
        let (st, v) = call(&s, Method::POST, "/api/v1/repositories/acme/other/policies", big).await;
        assert_eq!(st, 400, "{label}: a 70 KB policy: {v}");
        assert!(v.to_string().contains("at most 65536"), "{v}");

        let (_, body) = s.push_image("acme/build", "base", b"{\"t\":1}", &[b"tags"]).await;
        let digest = Digest::sha256_of(&body);
        let tags: Vec<String> = (0..101).map(|i| format!("tag={i}")).collect();
        let r = s
            .http
            .put(s.url(&format!("/v2/acme/build/manifests/{digest}?{}", tags.join("&"))))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{label}: 101 tags in one push");
        assert!(r.text().await.unwrap().contains("at most 100"));
    }
}

//! Signed-only pulls, on SQLite and PostgreSQL, with keys and signatures
//! made by OpenSSL (an implementation independent of ours) in cosign's tag
//! form: a team's members' current keys are trusted; an unsigned image, one
//! signed by a key outside the team, one whose tag moved after signing and
//! one signed by a revoked key are refused; a promotion carries the
//! signature along, so the release repository serves the image signed.

mod common;

use std::path::Path;

use base64::Engine;
use common::signing::{ci_release_account, cosign_sign, key_pair, reader_pull, review, trusted_team, PW};
use common::{backends, call, cli, openssl, TestServer};
use portcullis_oci::Digest;
use serde_json::{json, Value};
use sigstore::cosign::constraint::PrivateKeySigner;
use sigstore::cosign::verification_constraint::{PublicKeyVerifier, VerificationConstraintVec};
use sigstore::cosign::{verify_constraints, Constraint, CosignCapabilities, SignatureLayer};
use sigstore::crypto::signing_key::ecdsa::{ECDSAKeys, EllipticCurve};
use sigstore::crypto::signing_key::SigStoreKeyPair;
use sigstore::crypto::SigningScheme;
use sigstore::registry::{Auth, ClientConfig, ClientProtocol, OciReference};

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
            keys.push(common::signing::register_key(&s, dir, u).await);
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

        let token = s
            .registry_token("dev", PW, &["repository:acme/app:pull", "repository:acme/release:pull"])
            .await;
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
        let r = s.put_manifest("acme/app", "signed", unsigned_manifest).await;
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
        let signed_manifest = s.manifest_bytes("acme/app", &signed.to_string()).await;
        let r = s.put_manifest("acme/app", "ship", signed_manifest.to_vec()).await;
        assert_eq!(r.status(), 201);
        common::evaluated(&s, "acme/app", p["id"].as_str().unwrap(), "ship").await;
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
        trusted_team(&s, &[], &[]).await;
        ci_release_account(&s).await;
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
        common::evaluated(&s, "acme/build", p["id"].as_str().unwrap(), "ship").await;

        let (st, text) = reader_pull(&s, "dev", "acme/signed", "ship").await;
        assert_eq!(st, 200, "{label}: {text}");

        // OpenSSL checks the server's signature with the published key.
        let sig: Value = common::json_of(
            s.http
                .get(s.url(&format!("/v2/acme/signed/manifests/sha256-{}.sig", image.hex())))
                .header("accept", "application/vnd.oci.image.manifest.v1+json"),
        )
        .await;
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

/// Sealed signing keys are bound to their account (AES-GCM associated
/// data): a key sealed before that (no associated data, as a database from
/// before holds it) still signs and is re-sealed bound; that sealed key,
/// copied by a database writer into another account's row, signs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_signing_keys_sign_only_for_their_account() {
    use portcullis_meta::{AccountKey, AuditEvent};
    let b64 = base64::engine::general_purpose::STANDARD;
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let meta = &s.registry.meta;
        trusted_team(&s, &[], &[]).await;
        ci_release_account(&s).await;
        let accounts = "/api/v1/namespaces/ci/service-accounts";
        assert_eq!(
            call(&s, reqwest::Method::POST, accounts, json!({"name": "other"}))
                .await
                .0,
            201
        );
        let kek = portcullis_server::keys::load_secret(&s.dir.path().join("keys"), "signing.kek")
            .unwrap()
            .expect("the server made its key-encryption key");
        let (key, pkcs8) = portcullis_sign::SigningKey::generate().unwrap();
        let stored = |account: &str, id: &str, sealed: String| {
            let public = AccountKey {
                id: id.into(),
                account: account.into(),
                pem: key.public.to_pem(),
                name: "written to the database".into(),
                created_at: 0,
                revoked_at: None,
            };
            async move {
                let event = AuditEvent::ok("admin", "signing_key.create");
                meta.put_signing_key(&public, &sealed, &event).await.unwrap();
            }
        };
        let legacy = b64.encode(portcullis_server::keys::seal(&kek, &pkcs8, b""));
        stored("ci+release", &key.public.id, legacy.clone()).await;

        // Promotes `tag` from acme/build to `target`, signing as `account`:
        // whether the promoted image carries a signature.
        let signed_promotion = |tag: &'static str, target: &'static str, account: &'static str| {
            let s = &s;
            async move {
                let policy = json!({"target": target, "tag_template": "%n", "sign_as": account,
                                    "rules": [{"field": "tag", "operator": "eq", "values": [tag]}]});
                let (st, p) = call(
                    s,
                    reqwest::Method::POST,
                    "/api/v1/repositories/acme/build/policies",
                    policy,
                )
                .await;
                assert_eq!(st, 201, "{p}");
                let (image, _) = s.push_image("acme/build", tag, tag.as_bytes(), &[tag.as_bytes()]).await;
                common::evaluated(s, "acme/build", p["id"].as_str().unwrap(), tag).await;
                let promoted = s.url(&format!("/v2/{target}/manifests/{tag}"));
                assert_eq!(
                    s.http.get(promoted).send().await.unwrap().status(),
                    200,
                    "{tag} promoted"
                );
                let sig = s.url(&format!("/v2/{target}/manifests/sha256-{}.sig", image.hex()));
                s.http.get(sig).send().await.unwrap().status() == 200
            }
        };
        assert!(
            signed_promotion("one", "acme/release", "ci+release").await,
            "{label}: legacy key signs"
        );
        let (_, bound) = meta.signing_key("ci+release").await.unwrap().unwrap();
        assert!(
            bound.starts_with("v2:") && bound != legacy,
            "{label}: re-sealed bound: {bound}"
        );
        assert!(
            signed_promotion("two", "acme/release", "ci+release").await,
            "{label}: bound key signs"
        );

        // A database writer copies the bound key into ci+other's row.
        stored("ci+other", "moved", bound).await;
        assert!(
            !signed_promotion("three", "acme/other", "ci+other").await,
            "{label}: moved key signs"
        );
    }
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

/// `portcullis verify IMAGE --team ci/gitlab` against the test server:
/// (exit code, JSON report, stderr).
async fn verify_by_team(s: &TestServer, creds: &str, image: String) -> (i32, Value, String) {
    let args = [
        "verify",
        &image,
        "--team",
        "ci/gitlab",
        "--registry",
        &s.base,
        "--format",
        "json",
        "--tls-verify=false",
        "--creds",
        creds,
    ];
    let (code, out, err) = cli(&args, &[]).await;
    (code, serde_json::from_str(&out).unwrap_or(Value::Null), err)
}

/// A cosign key pair made by the `sigstore` crate, as `cosign
/// generate-key-pair` makes one: (encrypted key file, public PEM).
fn sigstore_key_pair(password: &[u8]) -> (String, String, SigStoreKeyPair) {
    let pair = SigStoreKeyPair::ECDSA(ECDSAKeys::new(EllipticCurve::P256).unwrap());
    let private = pair.private_key_to_encrypted_pem(password).unwrap().to_string();
    assert!(private.contains("ENCRYPTED SIGSTORE PRIVATE KEY"), "{private}");
    (private, pair.public_key_to_pem().unwrap(), pair)
}

/// A cosign key file (`ENCRYPTED SIGSTORE PRIVATE KEY`) sealing `pkcs8`
/// with scrypt at N=2^`log_n`, r=8, p=1: cosign itself writes N=2^15.
fn cosign_key_file(pkcs8: &[u8], password: &[u8], log_n: u8) -> String {
    use crypto_secretbox::aead::{Aead, KeyInit};
    let b64 = base64::engine::general_purpose::STANDARD;
    let (salt, nonce) = ([3u8; 32], [5u8; 24]);
    let mut key = [0u8; 32];
    scrypt::scrypt(password, &salt, &scrypt::Params::new(log_n, 8, 1).unwrap(), &mut key).unwrap();
    let sealed = crypto_secretbox::XSalsa20Poly1305::new(&key.into())
        .encrypt(nonce.as_slice().into(), pkcs8)
        .unwrap();
    let body = json!({
        "kdf": {"name": "scrypt", "params": {"N": 1u64 << log_n, "r": 8, "p": 1}, "salt": b64.encode(salt)},
        "cipher": {"name": "nacl/secretbox", "nonce": b64.encode(nonce)},
        "ciphertext": b64.encode(sealed),
    });
    let text = b64.encode(serde_json::to_vec(&body).unwrap());
    format!("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n{text}\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
}

/// Any user with a service account may import a key file, so its scrypt
/// cost is capped at cosign's own (N=2^15, 32 MiB): a genuine file sealed
/// with N=2^18 (256 MiB to open) is refused with a 400 naming the
/// parameters and the limit, and nothing is stored; one sealed as cosign
/// seals imports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_files_costlier_than_cosigns_are_refused() {
    let (key, pkcs8) = portcullis_sign::SigningKey::generate().unwrap();
    let costly = cosign_key_file(&pkcs8, b"pw", 18);
    let usual = cosign_key_file(&pkcs8, b"pw", 15);
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        trusted_team(&s, &[], &[]).await;
        ci_release_account(&s).await;
        let path = "/api/v1/accounts/ci+release/signing-key";
        let (st, v) = call(
            &s,
            reqwest::Method::POST,
            path,
            json!({"cosign_key": costly, "password": "pw"}),
        )
        .await;
        assert_eq!(st, 400, "{label}: {v}");
        let text = v.to_string();
        assert!(
            text.contains("N=262144 r=8 p=1") && text.contains("32768"),
            "{label}: {text}"
        );
        assert_eq!(
            call(&s, reqwest::Method::GET, path, Value::Null).await.0,
            404,
            "{label}"
        );
        let (st, v) = call(
            &s,
            reqwest::Method::POST,
            path,
            json!({"cosign_key": usual, "password": "pw"}),
        )
        .await;
        assert_eq!(st, 201, "{label}: {v}");
        let imported = portcullis_sign::PublicKey::from_pem(v["pem"].as_str().unwrap()).unwrap();
        assert_eq!(imported, key.public, "{label}");
    }
}

/// A sigstore-rs cosign client for the test server (plain HTTP).
fn sigstore_client() -> sigstore::cosign::Client {
    sigstore::cosign::ClientBuilder::default()
        .with_oci_client_config(ClientConfig {
            protocol: ClientProtocol::Http,
            ..Default::default()
        })
        .build()
        .unwrap()
}

/// Whether sigstore-rs finds a signature on `image` that verifies under `public`.
async fn sigstore_rs_verifies(s: &TestServer, image: &str, public: &str) -> bool {
    let auth = Auth::Basic("admin".into(), s.admin_token.clone());
    let host = s.base.trim_start_matches("http://");
    let reference: OciReference = format!("{host}/{image}").parse().unwrap();
    let layers = sigstore_client()
        .trusted_signature_layers(&auth, &reference)
        .await
        .unwrap();
    let verifier = PublicKeyVerifier::new(public.as_bytes(), &SigningScheme::ECDSA_P256_SHA256_ASN1).unwrap();
    let constraints: VerificationConstraintVec = vec![Box::new(verifier)];
    verify_constraints(&layers, constraints.iter()).is_ok()
}

/// `portcullis sign` writes both of cosign's forms and `portcullis verify`
/// checks them against keys or a team; the `sigstore` crate (cosign's Rust
/// client) and sigstore-js (npm) verify what Portcullis signed; the pull
/// rule accepts a bundle signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_signs_and_verifies_both_forms_and_independent_verifiers_agree() {
    assert!(common::have_tool("node"), "node is needed for the sigstore-js check");
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let work = tempfile::tempdir().unwrap();
        let dir = work.path();
        let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
        trusted_team(&s, &["alice", "mallory", "dev"], &["alice"]).await;
        let (st, _) = call(
            &s,
            reqwest::Method::POST,
            "/api/v1/namespaces/acme/grants",
            json!({"account": "dev", "role": "read"}),
        )
        .await;
        assert_eq!(st, 201);
        // Alice's key comes from the sigstore crate in cosign's encrypted
        // key-file format; she registers its public half.
        let (alice_key, alice_pub, alice_pair) = sigstore_key_pair(b"alice-pw");
        std::fs::write(path("alice.key"), &alice_key).unwrap();
        std::fs::write(path("alice.pub"), &alice_pub).unwrap();
        let r = s
            .anon
            .post(s.url("/api/v1/accounts/alice/keys"))
            .basic_auth("alice", Some(PW))
            .json(&json!({"name": "laptop", "pem": alice_pub}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{label}");
        // Mallory's is OpenSSL's, unencrypted PKCS#8, and not the team's.
        let (mallory_key, mallory_pub) = key_pair(dir, "mallory");
        openssl(
            &["pkcs8", "-topk8", "-nocrypt", "-in", &mallory_key, "-out", "mallory.p8"],
            dir,
        );
        std::fs::write(path("mallory.pub"), &mallory_pub).unwrap();

        let (image, _) = s.push_image("acme/app", "1", b"{\"app\":1}", &[b"app layer"]).await;
        let (other, _) = s.push_image("acme/app", "2", b"{\"app\":2}", &[b"other layer"]).await;
        let host = s.base.trim_start_matches("http://").to_string();
        let img = format!("docker://{host}/acme/app:1");
        let creds = format!("admin:{}", s.admin_token);
        let reach = ["--tls-verify=false", "--creds", &creds];

        let (code, v, err) = verify_by_team(&s, &creds, img.clone()).await;
        assert_eq!(code, 1, "{label}: {v} {err}");
        assert_eq!(v["verified"], false);
        assert!(v["reason"].as_str().unwrap().contains("no signatures"), "{v}");

        // Mallory signs in the tag form: a signature, but not the team's.
        let (code, out, err) = cli(
            &[&["sign", &img, "--key", &path("mallory.p8")][..], &reach].concat(),
            &[],
        )
        .await;
        assert_eq!(code, 0, "{label}: {out} {err}");
        let (code, v, _) = verify_by_team(&s, &creds, img.clone()).await;
        assert_eq!((code, v["unverified"].as_u64()), (1, Some(1)), "{v}");

        // Alice's key file opens only with its password (from COSIGN_PASSWORD).
        let alice_file = path("alice.key");
        let sign_alice = [
            &[
                "sign",
                &img,
                "--key",
                &alice_file,
                "--form",
                "bundle",
                "--format",
                "json",
            ][..],
            &reach,
        ]
        .concat();
        let (code, _, err) = cli(&sign_alice, &[("COSIGN_PASSWORD", "wrong")]).await;
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("password"), "{err}");
        let (code, _, err) = cli(&sign_alice, &[]).await;
        assert_eq!(code, 2);
        assert!(err.contains("COSIGN_PASSWORD"), "{err}");
        let (code, out, err) = cli(&sign_alice, &[("COSIGN_PASSWORD", "alice-pw")]).await;
        assert_eq!(code, 0, "{label}: {out} {err}");
        let signed: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            (signed["digest"].as_str(), signed["form"].as_str()),
            (Some(image.as_str()), Some("bundle"))
        );

        let (code, v, err) = verify_by_team(&s, &creds, img.clone()).await;
        assert_eq!(code, 0, "{label}: {v} {err}");
        assert_eq!(v["signatures"][0]["account"], "alice", "{v}");
        assert_eq!(v["signatures"][0]["form"], "bundle", "{v}");
        for key in ["alice.pub", "mallory.pub"] {
            let (code, out, err) = cli(&[&["verify", &img, "--key", &path(key)][..], &reach].concat(), &[]).await;
            assert_eq!(code, 0, "{key}: {out} {err}");
            assert!(out.starts_with("verified "), "{out}");
        }
        let (_, stranger_pub) = key_pair(dir, "stranger");
        std::fs::write(path("stranger.pub"), &stranger_pub).unwrap();
        let (code, out, _) = cli(
            &[&["verify", &img, "--key", &path("stranger.pub")][..], &reach].concat(),
            &[],
        )
        .await;
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("none of its 2 signature(s)"), "{out}");
        let missing = format!("docker://{host}/acme/app:nope");
        let (code, _, err) = cli(
            &[&["verify", &missing, "--key", &path("alice.pub")][..], &reach].concat(),
            &[],
        )
        .await;
        assert_eq!(code, 2, "{err}");
        let (code, _, err) = cli(
            &["verify", &img, "--key", &path("alice.pub"), "--tls-verify=false"],
            &[],
        )
        .await;
        assert_eq!(code, 2, "no credentials");
        assert!(err.contains("--creds"), "{err}");

        // The sigstore crate verifies the tag form Portcullis wrote. (It
        // reads bundles only with a Fulcio certificate and a Rekor entry,
        // so key-based bundles are sigstore-js's to check, below.)
        assert!(
            sigstore_rs_verifies(&s, "acme/app:1", &mallory_pub).await,
            "{label}: tag form"
        );
        assert!(!sigstore_rs_verifies(&s, "acme/app:1", &stranger_pub).await);
        assert!(!sigstore_rs_verifies(&s, "acme/app:2", &mallory_pub).await, "unsigned");

        // sigstore-js verifies Alice's bundle with her key, and only hers.
        let referrer: Value = common::json_of(
            s.http
                .get(s.url(&format!(
                    "/v2/acme/app/manifests/{}",
                    signed["signature"].as_str().unwrap()
                )))
                .header("accept", "application/vnd.oci.image.manifest.v1+json"),
        )
        .await;
        assert_eq!(referrer["subject"]["digest"], image.as_str());
        let bundle = s
            .http
            .get(s.url(&format!(
                "/v2/acme/app/blobs/{}",
                referrer["layers"][0]["digest"].as_str().unwrap()
            )))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        std::fs::write(path("bundle.json"), &bundle).unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node/verify_bundle.js");
        for (key, want) in [("alice.pub", true), ("mallory.pub", false)] {
            let out = tokio::process::Command::new("node")
                .args([script, &path("bundle.json"), &path(key), image.as_str()])
                .output()
                .await
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert_eq!(
                out.status.success(),
                want,
                "{key}: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }

        // The pull rule takes the bundle form: image 1 (Alice's bundle) is
        // served, image 2 (Mallory's tag-form signature only) is not.
        let (code, out, err) = cli(
            &[
                &[
                    "sign",
                    &format!("docker://{host}/acme/app:2"),
                    "--key",
                    &path("mallory.p8"),
                ][..],
                &reach,
            ]
            .concat(),
            &[],
        )
        .await;
        assert_eq!(code, 0, "{out} {err}");
        let rule = json!({"pull_rule": {"require_signed_by": {"teams": ["ci/gitlab"]}}});
        let (st, v) = call(&s, reqwest::Method::PUT, "/api/v1/repositories/acme/app", rule).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(reader_pull(&s, "dev", "acme/app", "1").await.0, 200, "{label}");
        let (st, text) = reader_pull(&s, "dev", "acme/app", other.as_str()).await;
        assert_eq!(st, 403, "{label}: {text}");
        assert!(text.contains("no signature verifies"), "{text}");

        // The sigstore crate signs image 2 with Alice's key (tag form):
        // Portcullis's verify and its pull rule accept that signature.
        sigstore_rs_signs(&s, "acme/app:2", &alice_pair).await;
        let (code, v, err) = verify_by_team(&s, &creds, format!("docker://{host}/acme/app:2")).await;
        assert_eq!(code, 0, "{label}: {v} {err}");
        assert_eq!(
            (
                v["signatures"][0]["account"].as_str(),
                v["signatures"][0]["form"].as_str()
            ),
            (Some("alice"), Some("tag"))
        );
        assert_eq!(
            reader_pull(&s, "dev", "acme/app", other.as_str()).await.0,
            200,
            "{label}"
        );

        // sigstore-rs wrote its own signature manifest (Alice's layer only).
        // Mallory signs image 2 in the tag form twice: her layer is added
        // beside Alice's once, then replaced, not repeated.
        let image2 = format!("docker://{host}/acme/app:2");
        let sig_tag = format!("sha256-{}.sig", other.hex());
        let layers = |m: bytes::Bytes| {
            serde_json::from_slice::<Value>(&m).unwrap()["layers"]
                .as_array()
                .unwrap()
                .len()
        };
        assert_eq!(layers(s.manifest_bytes("acme/app", &sig_tag).await), 1, "{label}");
        for want in [2, 2] {
            let (code, out, err) = cli(
                &[&["sign", &image2, "--key", &path("mallory.p8")][..], &reach].concat(),
                &[],
            )
            .await;
            assert_eq!(code, 0, "{out} {err}");
            assert_eq!(layers(s.manifest_bytes("acme/app", &sig_tag).await), want, "{label}");
        }
        for key in ["alice.pub", "mallory.pub"] {
            let (code, out, err) = cli(&[&["verify", &image2, "--key", &path(key)][..], &reach].concat(), &[]).await;
            assert_eq!(code, 0, "{label} {key}: {out} {err}");
        }
    }
}

/// Signs `image` as cosign's Rust client does (tag form) with `pair`.
async fn sigstore_rs_signs(s: &TestServer, image: &str, pair: &SigStoreKeyPair) {
    let auth = Auth::Basic("admin".into(), s.admin_token.clone());
    let host = s.base.trim_start_matches("http://");
    let reference: OciReference = format!("{host}/{image}").parse().unwrap();
    let mut client = sigstore_client();
    let (signature_image, digest) = client.triangulate(&reference, &auth).await.unwrap();
    let mut layer = SignatureLayer::new_unsigned(&reference, &digest).unwrap();
    let signer =
        PrivateKeySigner::new_with_signer(pair.to_sigstore_signer(&SigningScheme::ECDSA_P256_SHA256_ASN1).unwrap());
    assert!(signer.add_constraint(&mut layer).unwrap());
    client
        .push_signature(None, &auth, &signature_image, vec![layer])
        .await
        .unwrap();
}

/// The supply chain end to end, as a deploy script sees it: CI pushes a
/// clean build with skopeo; the registry scans it against the real npm
/// advisories, promotes it into the release repository and signs it there
/// with the `ci+release` service account's key (imported from a cosign key
/// file the `sigstore` crate wrote); `portcullis verify --team ci/gitlab`
/// exits 0 for the release and 1 for the build that was never promoted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_build_is_scanned_promoted_signed_and_verified_by_team() {
    assert!(common::have_tool("skopeo"), "skopeo is needed");
    const NPM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vulndb/npm.osv.jsonl.gz");
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let work = tempfile::tempdir().unwrap();
        let dir = work.path();
        portcullis_vulndb::VulnDb::in_data_dir(s.dir.path())
            .import(
                &[NPM.into()],
                true,
                &portcullis_vulndb::Limits::default(),
                &portcullis_vulndb::NoProgress,
            )
            .unwrap();
        let post = |path: &'static str, body: Value| call(&s, reqwest::Method::POST, path, body);
        trusted_team(&s, &["dev"], &[]).await;
        ci_release_account(&s).await;
        let grant = json!({"account": "dev", "role": "read"});
        assert_eq!(post("/api/v1/namespaces/acme/grants", grant).await.0, 201);
        let rule = json!({"pull_rule": {"require_signed_by": {"teams": ["ci/gitlab"]}}});
        let (st, v) = call(&s, reqwest::Method::PUT, "/api/v1/repositories/acme/release", rule).await;
        assert_eq!(st, 200, "{v}");
        // The CI's key, made elsewhere as a cosign key file, imported once.
        let (cosign_key, cosign_pub, _) = sigstore_key_pair(b"ci-key-password");
        let (st, v) = post(
            "/api/v1/accounts/ci+release/signing-key",
            json!({"cosign_key": cosign_key, "password": "wrong"}),
        )
        .await;
        assert_eq!(st, 400, "{v}");
        assert!(v.to_string().contains("password"), "{v}");
        let (st, key) = post(
            "/api/v1/accounts/ci+release/signing-key",
            json!({"cosign_key": cosign_key, "password": "ci-key-password"}),
        )
        .await;
        assert_eq!(st, 201, "{key}");
        assert_eq!(
            portcullis_sign::PublicKey::from_pem(key["pem"].as_str().unwrap()).unwrap(),
            portcullis_sign::PublicKey::from_pem(&cosign_pub).unwrap(),
            "the imported key is the cosign key"
        );
        let (st, p) = post(
            "/api/v1/repositories/acme/build/policies",
            json!({"target": "acme/release", "tag_template": "%n", "sign_as": "ci+release", "rules": [
                {"field": "tag", "operator": "regex", "values": ["^[0-9]+$"]},
                {"field": "vulnerability_critical", "operator": "lte", "values": ["0"]},
                {"field": "vulnerability_high", "operator": "lte", "values": ["0"]},
            ]}),
        )
        .await;
        assert_eq!(st, 201, "{p}");

        let host = s.base.trim_start_matches("http://").to_string();
        let creds = format!("admin:{}", common::ADMIN_PASSWORD);
        for (tag, package, version) in [
            ("41", "mqtt-packet", "6.1.1"),
            ("42", "portcullis-demo-widget", "1.0.0"),
        ] {
            let layout = dir.join(tag);
            common::write_npm_layout(&layout, package, version);
            let out = tokio::process::Command::new("skopeo")
                .args([
                    "copy",
                    "--dest-tls-verify=false",
                    "--dest-creds",
                    &creds,
                    &format!("oci:{}:latest", layout.display()),
                    &format!("docker://{host}/acme/build:{tag}"),
                ])
                .env("HOME", dir)
                .output()
                .await
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        // Bounded wait for scan, promotion and signature (100 tries).
        let release = format!("docker://{host}/acme/release:42");
        let mut last = (0, Value::Null, String::new());
        for _ in 0..100 {
            last = verify_by_team(&s, &creds, release.clone()).await;
            if last.0 == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let (code, v, err) = last;
        let evaluations = format!(
            "/api/v1/repositories/acme/build/policies/{}/evaluations",
            p["id"].as_str().unwrap()
        );
        let (_, history) = call(&s, reqwest::Method::GET, &evaluations, Value::Null).await;
        assert_eq!(code, 0, "{label}: {v} {err}; evaluations: {history}");
        assert_eq!(v["signatures"][0]["account"], "ci+release", "{v}");
        assert_eq!(v["signatures"][0]["key_id"], key["key_id"], "{v}");
        // A reader pulls the release under the signed-only rule, and the
        // sigstore crate verifies the server's signature with the cosign key.
        assert_eq!(reader_pull(&s, "dev", "acme/release", "42").await.0, 200, "{label}");
        assert!(
            sigstore_rs_verifies(&s, "acme/release:42", &cosign_pub).await,
            "{label}"
        );
        // The vulnerable build was never promoted, and its build image was
        // never signed: not verified.
        let (code, _, err) = verify_by_team(&s, &creds, format!("docker://{host}/acme/release:41")).await;
        assert_eq!(code, 2, "{label}: no such release: {err}");
        let (code, v, _) = verify_by_team(&s, &creds, format!("docker://{host}/acme/build:41")).await;
        assert_eq!((code, v["verified"].as_bool()), (1, Some(false)), "{v}");
    }
}

/// CNCF Distribution (Debian's `docker-registry`) on a free port, stopped on drop.
struct Distribution {
    child: std::process::Child,
    addr: String,
}

impl Distribution {
    fn start(dir: &Path) -> Distribution {
        let addr = format!("127.0.0.1:{}", common::free_port());
        let config = dir.join("distribution.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: error, accesslog: {{disabled: true}}}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: {addr}}}\n",
                dir.join("distribution-data").display()
            ),
        )
        .unwrap();
        let child = std::process::Command::new("docker-registry")
            .args(["serve", config.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        common::wait_ready(&addr);
        Distribution { child, addr }
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sign` and `verify` against another registry: CNCF Distribution 2.8 has
/// no referrers API, so the bundle's referrer is recorded in the referrers
/// tag schema's index, and `verify` finds both forms there; so does
/// `verify-attestation`, and attestations are not taken for signatures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_and_verify_work_against_distribution() {
    if !common::have_tool("docker-registry") || !common::have_tool("skopeo") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let registry = Distribution::start(dir);
    common::write_layout(
        &dir.join("layout"),
        "latest",
        &[common::tar_of(&[("etc/motd", b"hello\n")])],
    );
    let image = format!("docker://{}/acme/app:1", registry.addr);
    let out = tokio::process::Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:latest", dir.join("layout").display()))
        .arg(&image)
        .env("HOME", dir)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let (alice_key, alice_pub, _) = sigstore_key_pair(b"pw");
    std::fs::write(path("alice.key"), alice_key).unwrap();
    std::fs::write(path("alice.pub"), &alice_pub).unwrap();
    let (mallory_key, mallory_pub) = key_pair(dir, "mallory");
    openssl(
        &["pkcs8", "-topk8", "-nocrypt", "-in", &mallory_key, "-out", "mallory.p8"],
        dir,
    );
    std::fs::write(path("mallory.pub"), mallory_pub).unwrap();
    let (_, stranger_pub) = key_pair(dir, "stranger");
    std::fs::write(path("stranger.pub"), stranger_pub).unwrap();

    let alice_file = path("alice.key");
    let sign = [
        "sign",
        &image,
        "--key",
        &alice_file,
        "--form",
        "bundle",
        "--tls-verify=false",
        "--format",
        "json",
    ];
    let (code, out, err) = cli(&sign, &[("COSIGN_PASSWORD", "pw")]).await;
    assert_eq!(code, 0, "{out} {err}");
    let signed: Value = serde_json::from_str(&out).unwrap();
    let mallory_file = path("mallory.p8");
    let (code, out, err) = cli(&["sign", &image, "--key", &mallory_file, "--tls-verify=false"], &[]).await;
    assert_eq!(code, 0, "{out} {err}");

    // The fallback index names the bundle's referrer manifest.
    let subject: Digest = signed["digest"].as_str().unwrap().parse().unwrap();
    let fallback_index = || async {
        let url = format!(
            "http://{}/v2/acme/app/manifests/sha256-{}",
            registry.addr,
            subject.hex()
        );
        let accept = "application/vnd.oci.image.index.v1+json";
        common::json_of(reqwest::Client::new().get(url).header("accept", accept)).await
    };
    let index = fallback_index().await;
    assert_eq!(index["manifests"][0]["digest"], signed["signature"], "{index}");

    for (key, want, form) in [
        ("alice.pub", 0, Some("bundle")),
        ("mallory.pub", 0, Some("tag")),
        ("stranger.pub", 1, None),
    ] {
        let key = path(key);
        let args = [
            "verify",
            &image,
            "--key",
            &key,
            "--tls-verify=false",
            "--format",
            "json",
        ];
        let (code, out, err) = cli(&args, &[]).await;
        assert_eq!(code, want, "{key}: {out} {err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["signatures"][0]["form"].as_str(), form, "{v}");
    }

    // Attestations in both forms: the bundle's referrer is in the fallback
    // index with its predicate type, and neither is taken for a signature.
    std::fs::write(path("provenance.json"), r#"{"buildDefinition": {"externalParameters": {"source": "git+https://git.example/acme/app"}}, "runDetails": {"builder": {"id": "https://ci.example/runner"}}}"#).unwrap();
    std::fs::write(path("notes.txt"), "reviewed").unwrap();
    let (predicate, notes) = (path("provenance.json"), path("notes.txt"));
    let attestations = [
        (&alice_file, "slsaprovenance1", &predicate, "bundle"),
        (&mallory_file, "custom", &notes, "tag"),
    ];
    for (key, kind, predicate, form) in attestations {
        let args = [
            "attest",
            &image,
            "--key",
            key,
            "--type",
            kind,
            "--predicate",
            predicate,
            "--form",
            form,
            "--tls-verify=false",
        ];
        let (code, out, err) = cli(&args, &[("COSIGN_PASSWORD", "pw")]).await;
        assert_eq!(code, 0, "{out} {err}");
    }
    let index = fallback_index().await;
    assert_eq!(
        index["manifests"][1]["annotations"]["dev.sigstore.bundle.predicateType"], "https://slsa.dev/provenance/v1",
        "{index}"
    );
    let stranger = path("stranger.pub");
    let (code, out, _) = cli(&["verify", &image, "--key", &stranger, "--tls-verify=false"], &[]).await;
    assert_eq!(code, 1);
    assert!(out.contains("none of its 2 signature(s)"), "{out}");
    let provenance_checks: [(&str, &str, &str, &[&str]); 2] = [
        (
            "alice.pub",
            "slsaprovenance1",
            "bundle",
            &["--builder-id", "https://ci.example/*"],
        ),
        ("mallory.pub", "custom", "tag", &[]),
    ];
    for (key, kind, form, extra) in provenance_checks {
        let key = path(key);
        let args = [
            &[
                "verify-attestation",
                &image,
                "--type",
                kind,
                "--key",
                &key,
                "--tls-verify=false",
                "--format",
                "json",
            ][..],
            extra,
        ]
        .concat();
        let (code, out, err) = cli(&args, &[]).await;
        assert_eq!(code, 0, "{kind}: {out} {err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["attestations"][0]["form"], form, "{v}");
    }
}

/// Under a signed-only pull rule the unsigned image's body is refused to
/// readers, but a pusher still signs it: `portcullis sign` learns the
/// digest with a HEAD, which the rules leave to those who may push.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pusher_signs_an_image_the_rule_refuses_to_readers() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let work = tempfile::tempdir().unwrap();
        let dir = work.path();
        trusted_team(&s, &["builder", "dev"], &["builder"]).await;
        for (account, role) in [("builder", "write"), ("dev", "read")] {
            let (st, v) = call(
                &s,
                reqwest::Method::POST,
                "/api/v1/namespaces/acme/grants",
                json!({"account": account, "role": role}),
            )
            .await;
            assert_eq!(st, 201, "{v}");
        }
        let (key, _) = common::signing::register_key(&s, dir, "builder").await;
        openssl(&["pkcs8", "-topk8", "-nocrypt", "-in", &key, "-out", "builder.p8"], dir);
        let (image, _) = s.push_image("acme/app", "1", b"{\"p\":1}", &[b"pusher signs"]).await;
        let (st, v) = call(
            &s,
            reqwest::Method::PUT,
            "/api/v1/repositories/acme/app",
            json!({"pull_rule": {"require_signed_by": {"teams": ["ci/gitlab"]}}}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(reader_pull(&s, "dev", "acme/app", "1").await.0, 403, "{label}");

        let host = s.base.trim_start_matches("http://").to_string();
        let creds = format!("builder:{PW}");
        let p8 = dir.join("builder.p8").to_str().unwrap().to_string();
        for form in ["tag", "bundle"] {
            let img = format!("docker://{host}/acme/app:1");
            let args = [
                "sign",
                &img,
                "--key",
                &p8,
                "--form",
                form,
                "--tls-verify=false",
                "--creds",
                &creds,
            ];
            let (code, out, err) = cli(&args, &[]).await;
            assert_eq!(code, 0, "{label}: the pusher could not sign ({form}): {out} {err}");
        }
        let (st, text) = reader_pull(&s, "dev", "acme/app", "1").await;
        assert_eq!(st, 200, "{label}: signed by the team now: {text}");
        assert_eq!(reader_pull(&s, "dev", "acme/app", &image.to_string()).await.0, 200);
    }
}

/// `verify --team` without `--registry` asks the image's own registry for
/// the team's keys (over plain HTTP with `--tls-verify=false`), and the
/// usage shows `--registry` and the other flags as optional.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_by_team_asks_the_images_registry_unless_told() {
    let (code, help, err) = cli(&["verify", "--help"], &[]).await;
    assert_eq!(code, 0, "{err}");
    let usage: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Usage:"))
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(usage.len(), 2, "one line with --key, one with --team: {help}");
    assert!(
        usage[0].contains("--key <FILE> [--key <FILE>]...") && !usage[0].contains("--team"),
        "{help}"
    );
    assert!(usage[1].contains("--team <ORG/TEAM> [--registry <URL>]"), "{help}");
    for optional in ["[--creds <USER:PASSWORD>]", "[--tls-verify=false]", "[--format json]"] {
        assert!(usage.iter().all(|l| l.contains(optional)), "{optional}: {help}");
    }
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let work = tempfile::tempdir().unwrap();
        let dir = work.path();
        trusted_team(&s, &["builder"], &["builder"]).await;
        let (key, key_id) = common::signing::register_key(&s, dir, "builder").await;
        let (image, _) = s.push_image("acme/app", "1", b"{\"t\":1}", &[b"team from image"]).await;
        common::signing::cosign_sign(&s, dir, &key, "acme/app", &image).await;
        let host = s.base.trim_start_matches("http://");
        let img = format!("{host}/acme/app:1");
        let creds = format!("admin:{}", s.admin_token);
        let args = [
            "verify",
            &img,
            "--team",
            "ci/gitlab",
            "--tls-verify=false",
            "--creds",
            &creds,
            "--format",
            "json",
        ];
        let (code, out, err) = cli(&args, &[]).await;
        assert_eq!(code, 0, "{label}: {out} {err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["digest"], image.as_str(), "{label}: {v}");
        assert_eq!(
            (
                v["signatures"][0]["account"].as_str(),
                v["signatures"][0]["key_id"].as_str()
            ),
            (Some("builder"), Some(key_id.as_str())),
            "{label}: {v}"
        );
        assert_eq!(v["trusted_keys"], 1, "{label}: {v}");
        // `--registry` still names the team's server: here, one that is not there.
        let (code, _, err) = cli(&[&args[..], &["--registry", "http://127.0.0.1:1"]].concat(), &[]).await;
        assert_eq!(code, 2, "{label}: {err}");
        assert!(
            err.contains("http://127.0.0.1:1/api/v1/orgs/ci/teams/gitlab/keys"),
            "{label}: {err}"
        );
    }
}

/// `sign` and `verify` against a plain-HTTP registry without
/// `--tls-verify=false` say to pass it, naming the URL once (the TLS
/// handshake's failure is the same whatever the database).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http_registry_is_met_with_the_flag_it_needs() {
    let backend = backends().remove(0);
    let s = TestServer::start(&backend).await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let (key, public) = common::signing::key_pair(dir, "someone");
    openssl(&["pkcs8", "-topk8", "-nocrypt", "-in", &key, "-out", "someone.p8"], dir);
    std::fs::write(dir.join("someone.pub"), &public).unwrap();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let host = s.base.trim_start_matches("http://");
    let img = format!("{host}/acme/app:1");
    let creds = format!("admin:{}", s.admin_token);
    for args in [
        vec!["verify", &img, "--key", &path("someone.pub")],
        vec!["verify", &img, "--team", "ci/gitlab"],
        vec!["sign", &img, "--key", &path("someone.p8")],
    ] {
        let (code, out, err) = cli(&[&args[..], &["--creds", &creds]].concat(), &[]).await;
        assert_eq!(code, 2, "{args:?}: {out} {err}");
        assert!(
            err.contains("does not answer in TLS") && err.contains("pass --tls-verify=false"),
            "{args:?}: {err}"
        );
        assert_eq!(err.matches(host).count(), 1, "{args:?}: the URL once: {err}");
        assert!(err.contains(&format!("https://{host}/")), "{args:?}: {err}");
    }
}

//! Access control end to end: the authorization matrix (every endpoint ×
//! every kind of caller), the token flow's grants, the catalog filter, and
//! the audit trail those requests leave. On SQLite and PostgreSQL.

mod common;

use std::collections::BTreeSet;

use base64::Engine;
use common::{backends, Backend, TestServer, ADMIN_PASSWORD};
use portcullis_auth::{AccessEntry, ApiToken, RegistryClaims, TokenKeys};
use portcullis_meta::{now_ms, AuditEvent, AuditQuery, StoredToken};
use portcullis_oci::Digest;
use reqwest::Method;
use serde_json::{json, Value};

const PW: &str = "long-enough-password";
const SCOPE: &str = "repository:acme/app:pull,push,delete";

/// The kinds of caller, in the matrix's column order.
const CALLERS: [&str; 13] = [
    "anonymous",
    "reader",
    "writer",
    "repo_admin",
    "outsider",
    "sa_scoped",
    "sa_unscoped",
    "expired",
    "foreign_key",
    "tampered",
    "revoked",
    "admin",
    "admin_jwt",
];

struct Caller {
    /// What it presents to every endpoint: `Authorization` header value.
    bearer: Option<String>,
    /// What it presents to the management API instead, if anything else:
    /// people log in there with their password (Basic), as in Harbor.
    api: Option<String>,
    /// What it presents to the token endpoint.
    basic: Option<(String, String)>,
    /// Its own account, for endpoints about "self".
    account: String,
}

async fn api(s: &TestServer, method: Method, path: &str, body: Value) -> Value {
    let r = s
        .http
        .request(method.clone(), s.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(status.is_success(), "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

async fn jwt(s: &TestServer, user: &str, secret: &str, scope: &str) -> String {
    let r = s
        .anon
        .get(s.url("/auth/token"))
        .query(&[("service", "portcullis"), ("scope", scope)])
        .basic_auth(user, Some(secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "login {user}");
    r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string()
}

fn basic_header(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// The world of the matrix: organization `acme` with grants, an outsider
/// organization, a service account, and one private image in `acme/app`.
async fn world(s: &TestServer) -> Vec<Caller> {
    // `bystander` is only ever added to and removed from a team.
    for u in ["reader", "writer", "repoadmin", "outsider", "bystander"] {
        api(s, Method::POST, "/api/v1/users", json!({"name": u, "password": PW})).await;
    }
    // A second system administrator, whose registry token is a column.
    api(
        s,
        Method::POST,
        "/api/v1/users",
        json!({"name": "root", "password": PW, "admin": true}),
    )
    .await;
    api(s, Method::POST, "/api/v1/orgs", json!({"name": "acme"})).await;
    let grant = |body: Value| api(s, Method::POST, "/api/v1/namespaces/acme/grants", body);
    grant(json!({"account": "reader", "role": "read"})).await;
    grant(json!({"account": "writer", "role": "write"})).await;
    grant(json!({"account": "repoadmin", "repository": "acme/app", "role": "admin"})).await;
    api(
        s,
        Method::POST,
        "/api/v1/namespaces/acme/service-accounts",
        json!({"name": "ci"}),
    )
    .await;
    api(s, Method::POST, "/api/v1/orgs/acme/teams", json!({"name": "gitlab"})).await;
    api(
        s,
        Method::PUT,
        "/api/v1/orgs/acme/teams/gitlab/members/acme+ci",
        json!(null),
    )
    .await;
    grant(json!({"team": "gitlab", "role": "write"})).await;
    let token = |scopes: Value| {
        api(
            s,
            Method::POST,
            "/api/v1/accounts/acme+ci/tokens",
            json!({"name": "ci", "scopes": scopes, "expires_in_days": 30}),
        )
    };
    let scoped = token(json!(["acme/*:pull,push"])).await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let unscoped = token(json!(["other/*:pull"])).await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let revoked = token(json!(["acme/*:pull,push"])).await;
    api(
        s,
        Method::DELETE,
        &format!("/api/v1/accounts/acme+ci/tokens/{}", revoked["id"].as_str().unwrap()),
        json!(null),
    )
    .await;
    let revoked = revoked["token"].as_str().unwrap().to_string();
    // An expired token can only be made by hand: the API refuses past expiries.
    let t = ApiToken::generate();
    let expired = StoredToken {
        id: t.id.clone(),
        account: "acme+ci".into(),
        name: "old".into(),
        kind: "api".into(),
        secret_hash: t.secret_hash(),
        scopes: "acme/*:pull,push".into(),
        created_at: 0,
        expires_at: Some(now_ms() - 1000),
        last_used_at: None,
        revoked_at: None,
    };
    s.registry
        .meta
        .create_token(&expired, &AuditEvent::ok("test", "token.create"))
        .await
        .unwrap();
    let expired = t.reveal();
    s.push_image("acme/app", "v1", b"app config", &[b"app layer"]).await;
    let (scanned, _) = s
        .push_image("acme/app", "scanned", SCANNED_CONFIG, &[EMPTY_TAR.as_slice()])
        .await;
    wait_for_scan(s, &scanned).await;
    api(s, Method::POST, "/api/v1/orgs", json!({"name": "other"})).await;

    let scope = format!("{SCOPE} registry:catalog:*");
    let mut out = vec![Caller {
        bearer: None,
        api: None,
        basic: None,
        account: "nobody".into(),
    }];
    for (name, account) in [
        ("reader", "reader"),
        ("writer", "writer"),
        ("repoadmin", "repoadmin"),
        ("outsider", "outsider"),
    ] {
        let token = jwt(s, name, PW, &scope).await;
        out.push(Caller {
            bearer: Some(format!("Bearer {token}")),
            api: Some(basic_header(name, PW)),
            basic: Some((name.into(), PW.into())),
            account: account.into(),
        });
    }
    // The scoped service account goes through the token flow; the unscoped
    // one presents its API token directly.
    let sa_jwt = jwt(s, "acme+ci", &scoped, &format!("{SCOPE} registry:catalog:*")).await;
    let sa_claims = claims_of(&sa_jwt);
    assert_eq!(
        sa_claims["access"][0]["actions"],
        json!(["pull", "push"]),
        "granted: the requested scope ∩ the role ∩ the token's limit"
    );
    out.push(Caller {
        bearer: Some(format!("Bearer {sa_jwt}")),
        api: None,
        basic: Some(("acme+ci".into(), scoped.clone())),
        account: "acme+ci".into(),
    });
    out.push(Caller {
        bearer: Some(format!("Bearer {unscoped}")),
        api: None,
        basic: Some(("acme+ci".into(), unscoped.clone())),
        account: "acme+ci".into(),
    });
    out.push(Caller {
        bearer: Some(format!("Bearer {expired}")),
        api: None,
        basic: Some(("acme+ci".into(), expired)),
        account: "acme+ci".into(),
    });
    // Signed by a key this registry never had, claiming everything.
    let now = now_ms() / 1000;
    let all = RegistryClaims {
        iss: "portcullis".into(),
        sub: "admin".into(),
        aud: "portcullis".into(),
        exp: now + 300,
        nbf: now - 1,
        iat: now,
        jti: "forged".into(),
        access: vec![AccessEntry {
            kind: "repository".into(),
            name: "acme/app".into(),
            actions: vec!["*".into()],
        }],
        tid: None,
    };
    let foreign = TokenKeys::new(
        "portcullis",
        &[("k000000000000001".into(), TokenKeys::generate_pkcs8())],
    )
    .unwrap()
    .sign(&all)
    .unwrap();
    out.push(Caller {
        bearer: Some(format!("Bearer {foreign}")),
        api: None,
        basic: None,
        account: "admin".into(),
    });
    // The reader's real token with its claims widened.
    let real = jwt(s, "reader", PW, SCOPE).await;
    let mut parts: Vec<String> = real.split('.').map(str::to_string).collect();
    let mut c = claims_of(&real);
    c["sub"] = json!("admin");
    c["access"][0]["actions"] = json!(["*"]);
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(c.to_string());
    out.push(Caller {
        bearer: Some(format!("Bearer {}", parts.join("."))),
        api: None,
        basic: None,
        account: "admin".into(),
    });
    out.push(Caller {
        bearer: Some(format!("Bearer {revoked}")),
        api: None,
        basic: Some(("acme+ci".into(), revoked)),
        account: "acme+ci".into(),
    });
    let admin = jwt(s, "admin", ADMIN_PASSWORD, &scope).await;
    out.push(Caller {
        bearer: Some(format!("Bearer {admin}")),
        api: Some(basic_header("admin", ADMIN_PASSWORD)),
        basic: Some(("admin".into(), ADMIN_PASSWORD.into())),
        account: "admin".into(),
    });
    // A system administrator's registry token: a pull/push credential that
    // authorizes no account, namespace or system management.
    let root = jwt(s, "root", PW, &scope).await;
    out.push(Caller {
        bearer: Some(format!("Bearer {root}")),
        api: None,
        basic: None,
        account: "root".into(),
    });
    assert_eq!(out.len(), CALLERS.len());
    out
}

const SCANNED_CONFIG: &[u8] = b"scanned config";
/// An empty tar archive: two zero blocks.
const EMPTY_TAR: [u8; 1024] = [0; 1024];

/// The digest of `acme/app:scanned`, whose scan the scan endpoints read.
fn scanned_digest() -> Digest {
    let config = Digest::sha256_of(SCANNED_CONFIG);
    let layer = Digest::sha256_of(&EMPTY_TAR);
    Digest::sha256_of(&common::image_manifest(
        &config,
        SCANNED_CONFIG.len(),
        &[(layer, EMPTY_TAR.len())],
    ))
}

async fn wait_for_scan(s: &TestServer, digest: &Digest) {
    let url = s.url(&format!("/api/v1/scans/{digest}?repository=acme/app"));
    for _ in 0..300 {
        let v: Value = s.http.get(&url).send().await.unwrap().json().await.unwrap();
        match v["status"].as_str() {
            Some("done") => return,
            Some("failed") => panic!("scan failed: {v}"),
            _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    panic!("the scan of {digest} did not finish within 30 s");
}

/// A request for one cell: method, path, body. Targets that a success would
/// consume (a user to delete, an upload to finish) are made fresh per cell.
async fn prepare(s: &TestServer, endpoint: &str, cell: usize, caller: &Caller) -> (Method, String, Option<Vec<u8>>) {
    let n = format!("c{cell}");
    let json_body = |v: Value| Some(serde_json::to_vec(&v).unwrap());
    // A repository holds a bounded number of policies: each cell starts
    // with none left by the cells before.
    if endpoint.starts_with("policy_") {
        for p in s.registry.meta.policies("acme/app").await.unwrap() {
            let path = format!("/api/v1/repositories/acme/app/policies/{}", p.id);
            api(s, Method::DELETE, &path, Value::Null).await;
        }
    }
    // Sessions answer only their opener: the caller opens its own when it
    // may, else the administrator does (and the caller is refused anyway).
    let upload = || async {
        let mut r = s.anon.post(s.url("/v2/acme/app/blobs/uploads/"));
        if let Some(b) = &caller.bearer {
            r = r.header("authorization", b);
        }
        let r = r.send().await.unwrap();
        let r = if r.status() == 202 {
            r
        } else {
            s.http.post(s.url("/v2/acme/app/blobs/uploads/")).send().await.unwrap()
        };
        assert_eq!(r.status(), 202);
        r.headers()["location"].to_str().unwrap().to_string()
    };
    if ["scan_layers", "scan_components", "scan_vulnerabilities", "scan_sbom"].contains(&endpoint) {
        // A "scan now" cell before may have queued it again.
        wait_for_scan(s, &scanned_digest()).await;
    }
    match endpoint {
        "base" => (Method::GET, "/v2/".into(), None),
        "catalog" => (Method::GET, "/v2/_catalog".into(), None),
        "tags_list" => (Method::GET, "/v2/acme/app/tags/list".into(), None),
        "manifest_get" => (Method::GET, "/v2/acme/app/manifests/v1".into(), None),
        "manifest_put" => {
            let (_, m) = s.push_image("acme/app", "base", b"put config", &[b"put layer"]).await;
            (Method::PUT, format!("/v2/acme/app/manifests/{n}"), Some(m))
        }
        "manifest_delete" => {
            let (d, _) = s.push_image("acme/app", &n, n.as_bytes(), &[b"shared layer"]).await;
            (Method::DELETE, format!("/v2/acme/app/manifests/{d}"), None)
        }
        "blob_get" => (
            Method::GET,
            format!("/v2/acme/app/blobs/{}", Digest::sha256_of(b"app layer")),
            None,
        ),
        "blob_delete" => {
            let d = s.push_blob("acme/app", format!("loose {n}").as_bytes()).await;
            (Method::DELETE, format!("/v2/acme/app/blobs/{d}"), None)
        }
        "upload_start" => (Method::POST, "/v2/acme/app/blobs/uploads/".into(), None),
        "upload_status" => (Method::GET, upload().await, None),
        "upload_patch" => (Method::PATCH, upload().await, Some(b"chunk".to_vec())),
        "upload_finish" => {
            let d = Digest::sha256_of(n.as_bytes());
            (
                Method::PUT,
                format!("{}?digest={d}", upload().await),
                Some(n.into_bytes()),
            )
        }
        "upload_cancel" => (Method::DELETE, upload().await, None),
        "referrers" => (
            Method::GET,
            format!("/v2/acme/app/referrers/{}", Digest::sha256_of(b"x")),
            None,
        ),
        "token" => (
            Method::GET,
            format!("/auth/token?service=portcullis&scope={SCOPE}"),
            None,
        ),
        "healthz" => (Method::GET, "/healthz".into(), None),
        "readyz" => (Method::GET, "/readyz".into(), None),
        "metrics" => (Method::GET, "/metrics".into(), None),
        "user_list" => (Method::GET, "/api/v1/users".into(), None),
        "user_create" => (
            Method::POST,
            "/api/v1/users".into(),
            json_body(json!({"name": format!("new{n}"), "password": PW})),
        ),
        "user_get" => (Method::GET, "/api/v1/users/reader".into(), None),
        "user_delete" => {
            api(
                s,
                Method::POST,
                "/api/v1/users",
                json!({"name": format!("victim{n}"), "password": PW}),
            )
            .await;
            (Method::DELETE, format!("/api/v1/users/victim{n}"), None)
        }
        "user_password" => (
            Method::PUT,
            format!("/api/v1/users/{}/password", caller.account),
            json_body(json!({"password": caller.basic.as_ref().map_or(PW, |b| b.1.as_str()),
                "old_password": caller.basic.as_ref().map_or(PW, |b| b.1.as_str())})),
        ),
        "org_create" => (
            Method::POST,
            "/api/v1/orgs".into(),
            json_body(json!({"name": format!("org{n}")})),
        ),
        "org_get" => (Method::GET, "/api/v1/orgs/acme".into(), None),
        "org_delete" => {
            api(s, Method::POST, "/api/v1/orgs", json!({"name": format!("gone{n}")})).await;
            (Method::DELETE, format!("/api/v1/orgs/gone{n}"), None)
        }
        "team_list" => (Method::GET, "/api/v1/orgs/acme/teams".into(), None),
        "member_list" => (Method::GET, "/api/v1/orgs/acme/teams/gitlab/members".into(), None),
        "team_create" => (
            Method::POST,
            "/api/v1/orgs/acme/teams".into(),
            json_body(json!({"name": format!("team{n}")})),
        ),
        "team_delete" => {
            api(
                s,
                Method::POST,
                "/api/v1/orgs/acme/teams",
                json!({"name": format!("t{n}")}),
            )
            .await;
            (Method::DELETE, format!("/api/v1/orgs/acme/teams/t{n}"), None)
        }
        "team_keys" => (Method::GET, "/api/v1/orgs/acme/teams/gitlab/keys".into(), None),
        "member_add" => (
            Method::PUT,
            "/api/v1/orgs/acme/teams/gitlab/members/reader".into(),
            None,
        ),
        "member_remove" => {
            api(
                s,
                Method::PUT,
                "/api/v1/orgs/acme/teams/gitlab/members/bystander",
                json!(null),
            )
            .await;
            (
                Method::DELETE,
                "/api/v1/orgs/acme/teams/gitlab/members/bystander".into(),
                None,
            )
        }
        "grant_list" => (Method::GET, "/api/v1/namespaces/acme/grants".into(), None),
        "grant_create" => (
            Method::POST,
            "/api/v1/namespaces/acme/grants".into(),
            json_body(json!({"account": "outsider", "repository": format!("acme/g{n}"), "role": "read"})),
        ),
        "grant_delete" => {
            let g = api(
                s,
                Method::POST,
                "/api/v1/namespaces/acme/grants",
                json!({"account": "outsider", "repository": format!("acme/d{n}"), "role": "read"}),
            )
            .await;
            (
                Method::DELETE,
                format!("/api/v1/namespaces/acme/grants/{}", g["id"].as_str().unwrap()),
                None,
            )
        }
        "namespace_settings_get" => (Method::GET, "/api/v1/namespaces/acme/settings".into(), None),
        "namespace_settings_update" => (
            Method::PUT,
            "/api/v1/namespaces/acme/settings".into(),
            json_body(json!({"immutable_tag_patterns": ["frozen-*"]})),
        ),
        "service_account_list" => (Method::GET, "/api/v1/namespaces/acme/service-accounts".into(), None),
        "service_account_create" => (
            Method::POST,
            "/api/v1/namespaces/acme/service-accounts".into(),
            json_body(json!({"name": format!("bot{n}")})),
        ),
        "service_account_delete" => {
            let body = json!({"name": format!("gone{n}")});
            api(s, Method::POST, "/api/v1/namespaces/acme/service-accounts", body).await;
            (
                Method::DELETE,
                format!("/api/v1/namespaces/acme/service-accounts/gone{n}"),
                None,
            )
        }
        "token_list" => (Method::GET, "/api/v1/accounts/reader/tokens".into(), None),
        "token_create" => (
            Method::POST,
            "/api/v1/accounts/reader/tokens".into(),
            json_body(json!({"name": n, "scopes": ["acme/*:pull"]})),
        ),
        "token_revoke" => {
            let body = json!({"name": n, "scopes": ["acme/*:pull"]});
            let t = api(s, Method::POST, "/api/v1/accounts/reader/tokens", body).await;
            (
                Method::DELETE,
                format!("/api/v1/accounts/reader/tokens/{}", t["id"].as_str().unwrap()),
                None,
            )
        }
        "key_list" => (Method::GET, "/api/v1/accounts/reader/keys".into(), None),
        "key_add" => (
            Method::POST,
            "/api/v1/accounts/reader/keys".into(),
            json_body(json!({"name": n, "pem": fresh_key()})),
        ),
        "key_revoke" => {
            let body = json!({"name": n, "pem": fresh_key()});
            let k = api(s, Method::POST, "/api/v1/accounts/reader/keys", body).await;
            (
                Method::DELETE,
                format!("/api/v1/accounts/reader/keys/{}", k["id"].as_str().unwrap()),
                None,
            )
        }
        "signing_key_create" | "signing_key_get" => {
            let body = json!({"name": format!("k{n}")});
            api(s, Method::POST, "/api/v1/namespaces/acme/service-accounts", body).await;
            let path = format!("/api/v1/accounts/acme+k{n}/signing-key");
            if endpoint == "signing_key_get" {
                api(s, Method::POST, &path, json!(null)).await;
                (Method::GET, path, None)
            } else {
                (Method::POST, path, None)
            }
        }
        "repository_get" => (Method::GET, "/api/v1/repositories/acme/app".into(), None),
        "repository_update" => (
            Method::PUT,
            "/api/v1/repositories/acme/app".into(),
            json_body(json!({"visibility": "private"})),
        ),
        "repository_delete" => {
            let repo = format!("acme/tmp{n}");
            s.push_image(&repo, "v1", b"tmp", &[b"tmp layer"]).await;
            (Method::DELETE, format!("/api/v1/repositories/{repo}"), None)
        }
        "audit_list" => (Method::GET, "/api/v1/audit?limit=5".into(), None),
        "admission" => (
            Method::POST,
            "/api/v1/admission".into(),
            json_body(json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": {"uid": n, "kind": {"group": "", "version": "v1", "kind": "Pod"},
                            "object": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})),
        ),
        "policy_list" => (Method::GET, "/api/v1/repositories/acme/app/policies".into(), None),
        "policy_create" => (
            Method::POST,
            "/api/v1/repositories/acme/app/policies".into(),
            json_body(never_policy(&n)),
        ),
        "policy_get" | "policy_update" | "policy_delete" | "policy_apply" | "policy_dry_run" | "policy_evaluations" => {
            let p = api(
                s,
                Method::POST,
                "/api/v1/repositories/acme/app/policies",
                never_policy(&n),
            )
            .await;
            let base = format!("/api/v1/repositories/acme/app/policies/{}", p["id"].as_str().unwrap());
            match endpoint {
                "policy_get" => (Method::GET, base, None),
                "policy_update" => (Method::PUT, base, json_body(never_policy(&format!("{n}b")))),
                "policy_delete" => (Method::DELETE, base, None),
                "policy_apply" => (Method::POST, format!("{base}/apply"), None),
                "policy_dry_run" => (Method::POST, format!("{base}/dry-run"), json_body(json!({"tag": "v1"}))),
                _ => (Method::GET, format!("{base}/evaluations"), None),
            }
        }
        "tag_get" => (Method::GET, "/api/v1/repositories/acme/app/tags/v1".into(), None),
        "repository_webhooks" => (Method::GET, "/api/v1/repositories/acme/app/webhooks".into(), None),
        "repository_webhook_create" => (
            Method::POST,
            "/api/v1/repositories/acme/app/webhooks".into(),
            json_body(hook_body()),
        ),
        "namespace_webhooks" => (Method::GET, "/api/v1/namespaces/acme/webhooks".into(), None),
        "namespace_webhook_create" => (
            Method::POST,
            "/api/v1/namespaces/acme/webhooks".into(),
            json_body(hook_body()),
        ),
        "webhook_get" | "webhook_update" | "webhook_delete" | "webhook_test" | "webhook_deliveries"
        | "webhook_redeliver" => {
            let h = api(s, Method::POST, "/api/v1/repositories/acme/app/webhooks", hook_body()).await;
            let base = format!("/api/v1/webhooks/{}", h["id"].as_str().unwrap());
            match endpoint {
                "webhook_get" => (Method::GET, base, None),
                "webhook_update" => (Method::PUT, base, json_body(json!({"enabled": false}))),
                "webhook_delete" => (Method::DELETE, base, None),
                "webhook_test" => (Method::POST, format!("{base}/test"), None),
                "webhook_deliveries" => (Method::GET, format!("{base}/deliveries"), None),
                _ => {
                    api(s, Method::POST, &format!("{base}/test"), json!(null)).await;
                    let log = api(s, Method::GET, &format!("{base}/deliveries"), json!(null)).await;
                    let d = log["deliveries"][0]["id"].as_str().unwrap().to_string();
                    (Method::POST, format!("{base}/deliveries/{d}/redeliver"), None)
                }
            }
        }
        "scan_get" => (
            Method::GET,
            format!("/api/v1/scans/{}?repository=acme/app", scanned_digest()),
            None,
        ),
        "scan_request" => (
            Method::POST,
            format!("/api/v1/scans/{}?repository=acme/app", scanned_digest()),
            None,
        ),
        "scan_layers" => (
            Method::GET,
            format!("/api/v1/scans/{}/layers?repository=acme/app", scanned_digest()),
            None,
        ),
        "scan_components" => (
            Method::GET,
            format!("/api/v1/scans/{}/components?repository=acme/app", scanned_digest()),
            None,
        ),
        "scan_vulnerabilities" => (
            Method::GET,
            format!("/api/v1/scans/{}/vulnerabilities?repository=acme/app", scanned_digest()),
            None,
        ),
        "scan_sbom" => (
            Method::GET,
            format!(
                "/api/v1/scans/{}/sbom?repository=acme/app&format=spdx",
                scanned_digest()
            ),
            None,
        ),
        "audit_verify" => (Method::GET, "/api/v1/audit/verify".into(), None),
        "openapi" => (Method::GET, "/api/v1/openapi.json".into(), None),
        "registry_keys_get" => (Method::GET, "/api/v1/keys/registry".into(), None),
        "registry_key_rotate" => (Method::POST, "/api/v1/keys/registry".into(), None),
        "repository_list" => (Method::GET, "/api/v1/repositories?q=acme".into(), None),
        "tag_list" => (Method::GET, "/api/v1/repositories/acme/app/tags".into(), None),
        "repository_history" => (Method::GET, "/api/v1/repositories/acme/app/history?days=7".into(), None),
        "referrer_list" => (
            Method::GET,
            format!("/api/v1/repositories/acme/app/referrers/{}", scanned_digest()),
            None,
        ),
        "vulndb_status" => (Method::GET, "/api/v1/vulndb".into(), None),
        "scanner_status" => (Method::GET, "/api/v1/scanner".into(), None),
        "vulndb_sources_get" => (Method::GET, "/api/v1/vulndb/sources".into(), None),
        "vulndb_sources_set" => (
            Method::PUT,
            "/api/v1/vulndb/sources".into(),
            Some(json!({ "sources": [] }).to_string().into_bytes()),
        ),
        "vulndb_import" => (
            Method::POST,
            format!("/api/v1/vulndb?name={n}.json"),
            Some(
                json!({"id": format!("MATRIX-{n}"), "modified": "2024-01-01T00:00:00Z", "affected": [
                    {"package": {"ecosystem": "npm", "name": "nothing-here"},
                     "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.0.0"}]}]}]})
                .to_string()
                .into_bytes(),
            ),
        ),
        "registry_list" => (Method::GET, "/api/v1/registries".into(), None),
        "registry_create" => (Method::POST, "/api/v1/registries".into(), json_body(registry_body(&n))),
        "registry_get" | "registry_update" | "registry_delete" | "registry_test" => {
            api(s, Method::POST, "/api/v1/registries", registry_body(&n)).await;
            let base = format!("/api/v1/registries/{n}");
            match endpoint {
                "registry_get" => (Method::GET, base, None),
                "registry_update" => (Method::PUT, base, json_body(json!({"username": "someone-else"}))),
                "registry_delete" => (Method::DELETE, base, None),
                _ => (Method::POST, format!("{base}/test"), None),
            }
        }
        "replication_rule_list" => (Method::GET, "/api/v1/replication-rules".into(), None),
        "replication_rule_create" => {
            api(s, Method::POST, "/api/v1/registries", registry_body(&n)).await;
            (
                Method::POST,
                "/api/v1/replication-rules".into(),
                json_body(replication_rule_body(&n)),
            )
        }
        "replication_rule_get"
        | "replication_rule_update"
        | "replication_rule_delete"
        | "replication_rule_run"
        | "replication_rule_runs" => {
            api(s, Method::POST, "/api/v1/registries", registry_body(&n)).await;
            let rule = api(s, Method::POST, "/api/v1/replication-rules", replication_rule_body(&n)).await;
            let base = format!("/api/v1/replication-rules/{}", rule["id"].as_str().unwrap());
            match endpoint {
                "replication_rule_get" => (Method::GET, base, None),
                "replication_rule_update" => (Method::PUT, base, json_body(json!({"enabled": false}))),
                "replication_rule_delete" => (Method::DELETE, base, None),
                "replication_rule_run" => (Method::POST, format!("{base}/run"), None),
                _ => (Method::GET, format!("{base}/runs"), None),
            }
        }
        other => panic!("the matrix has no request for endpoint {other}"),
    }
}

/// A new ECDSA P-256 public key in PEM.
fn fresh_key() -> String {
    portcullis_sign::SigningKey::generate().unwrap().0.public.to_pem()
}

/// A hook to a loopback port nothing answers on (tests allow 127.0.0.1).
/// An upstream registry nothing listens at (a test of it fails fast).
fn registry_body(n: &str) -> Value {
    json!({"name": n, "url": "http://127.0.0.1:9", "username": "bot", "password": "matrix-upstream-password"})
}

/// A pull rule from the registry `n` into the namespace `mirror`.
fn replication_rule_body(n: &str) -> Value {
    json!({"name": n, "registry": n, "direction": "pull", "source": "library/alpine", "tags": ["*"],
           "target": "mirror", "interval_secs": 0})
}

fn hook_body() -> Value {
    json!({"url": "http://127.0.0.1:9/hook", "secret": "matrix-webhook-secret", "events": ["TAG_DELETE"]})
}

/// A policy of acme/app whose rule never holds (nothing is promoted while
/// the matrix runs), targeting acme/other.
fn never_policy(n: &str) -> Value {
    json!({"target": "acme/other", "tag_template": format!("{n}-%n"),
           "rules": [{"field": "tag", "operator": "eq", "values": ["never"]}]})
}

/// Expected status per caller, in [`CALLERS`] order, for every endpoint.
/// `U` = 401 (no or bad credentials, or a registry token without the scope:
/// the client should get a better one), `D` = 403 (known caller, no right).
fn matrix() -> Vec<(&'static str, [u16; 13])> {
    const U: u16 = 401;
    const D: u16 = 403;
    // Columns: anon reader writer repo_admin outsider sa_scoped sa_unscoped expired foreign tampered revoked admin admin_jwt
    vec![
        ("base", [U, 200, 200, 200, 200, 200, 200, U, U, U, U, 200, 200]),
        ("catalog", [U, 200, 200, 200, 200, 200, 200, U, U, U, U, 200, 200]),
        ("tags_list", [U, 200, 200, 200, U, 200, D, U, U, U, U, 200, 200]),
        ("manifest_get", [U, 200, 200, 200, U, 200, D, U, U, U, U, 200, 200]),
        ("manifest_put", [U, U, 201, 201, U, 201, D, U, U, U, U, 201, 201]),
        ("manifest_delete", [U, U, U, 202, U, U, D, U, U, U, U, 202, 202]),
        ("blob_get", [U, 200, 200, 200, U, 200, D, U, U, U, U, 200, 200]),
        ("blob_delete", [U, U, U, 202, U, U, D, U, U, U, U, 202, 202]),
        ("upload_start", [U, U, 202, 202, U, 202, D, U, U, U, U, 202, 202]),
        ("upload_status", [U, U, 204, 204, U, 204, D, U, U, U, U, 204, 204]),
        ("upload_patch", [U, U, 202, 202, U, 202, D, U, U, U, U, 202, 202]),
        ("upload_finish", [U, U, 201, 201, U, 201, D, U, U, U, U, 201, 201]),
        ("upload_cancel", [U, U, 204, 204, U, 204, D, U, U, U, U, 204, 204]),
        ("referrers", [U, 200, 200, 200, U, 200, D, U, U, U, U, 200, 200]),
        // Before the rows that change memberships (member_add makes the reader a writer).
        ("scan_get", [U, 200, 200, 200, D, 200, D, U, U, U, U, 200, 200]),
        ("scan_request", [U, D, 202, 202, D, 202, D, U, U, U, U, 202, 202]),
        ("scan_layers", [U, 200, 200, 200, D, 200, D, U, U, U, U, 200, 200]),
        ("scan_components", [U, 200, 200, 200, D, 200, D, U, U, U, U, 200, 200]),
        (
            "scan_vulnerabilities",
            [U, 200, 200, 200, D, 200, D, U, U, U, U, 200, 200],
        ),
        ("scan_sbom", [U, 200, 200, 200, D, 200, D, U, U, U, U, 200, 200]),
        // Upstream registries: system administrators. Replication rules:
        // the target namespace's administrators (a list shows each
        // caller the rules it manages).
        ("registry_list", [U, D, D, D, D, D, D, U, U, U, U, 200, D]),
        ("registry_create", [U, D, D, D, D, D, D, U, U, U, U, 201, D]),
        ("registry_get", [U, D, D, D, D, D, D, U, U, U, U, 200, D]),
        ("registry_update", [U, D, D, D, D, D, D, U, U, U, U, 200, D]),
        ("registry_delete", [U, D, D, D, D, D, D, U, U, U, U, 204, D]),
        ("registry_test", [U, D, D, D, D, D, D, U, U, U, U, 200, D]),
        (
            "replication_rule_list",
            [U, 200, 200, 200, 200, 200, 200, U, U, U, U, 200, 200],
        ),
        ("replication_rule_create", [U, D, D, D, D, D, D, U, U, U, U, 201, D]),
        ("replication_rule_get", [U, D, D, D, D, D, D, U, U, U, U, 200, D]),
        ("replication_rule_update", [U, D, D, D, D, D, D, U, U, U, U, 200, D]),
        ("replication_rule_delete", [U, D, D, D, D, D, D, U, U, U, U, 204, D]),
        ("replication_rule_run", [U, D, D, D, D, D, D, U, U, U, U, 202, D]),
        ("replication_rule_runs", [U, D, D, D, D, D, D, U, U, U, U, 200, D]),
        ("token", [200, 200, 200, 200, 200, 200, 200, U, U, U, U, 200, U]),
        ("healthz", [200; 13]),
        ("readyz", [200; 13]),
        ("metrics", [200; 13]),
        // The API's description: no data, no credentials needed (bad ones
        // are not even read).
        ("openapi", [200; 13]),
        ("user_list", [U, D, D, D, D, D, D, U, U, U, U, 200, D]),
        ("user_create", [U, D, D, D, D, D, D, U, U, U, U, 201, D]),
        ("user_get", [U, 200, D, D, D, D, D, U, U, U, U, 200, D]),
        ("user_delete", [U, D, D, D, D, D, D, U, U, U, U, 204, D]),
        ("user_password", [U, 204, 204, 204, 204, D, D, U, U, U, U, 204, D]),
        ("org_create", [U, 201, 201, 201, 201, D, D, U, U, U, U, 201, D]),
        ("org_get", [U, 200, 200, D, D, D, D, U, U, U, U, 200, D]),
        ("org_delete", [U, D, D, D, D, D, D, U, U, U, U, 204, D]),
        // Listing teams and members: whoever may read the organization.
        ("team_list", [U, 200, 200, D, D, D, D, U, U, U, U, 200, D]),
        ("member_list", [U, 200, 200, D, D, D, D, U, U, U, U, 200, D]),
        ("team_create", [U, D, D, D, D, D, D, U, U, U, U, 201, D]),
        ("team_delete", [U, D, D, D, D, D, D, U, U, U, U, 204, D]),
        // Public keys are for verifiers: any authenticated caller.
        ("team_keys", [U, 200, 200, 200, 200, 200, 200, U, U, U, U, 200, 200]),
        ("member_add", [U, D, D, D, D, D, D, U, U, U, U, 200, D]),
        ("member_remove", [U, D, D, D, D, D, D, U, U, U, U, 204, D]),
        ("grant_list", [U, D, D, D, D, D, D, U, U, U, U, 200, D]),
        ("grant_create", [U, D, D, D, D, D, D, U, U, U, U, 201, D]),
        ("grant_delete", [U, D, D, D, D, D, D, U, U, U, U, 204, D]),
        ("namespace_settings_get", [U, 200, 200, D, D, D, D, U, U, U, U, 200, D]),
        ("namespace_settings_update", [U, D, D, D, D, D, D, U, U, U, U, 200, D]),
        ("service_account_list", [U, D, D, D, D, D, D, U, U, U, U, 200, D]),
        ("service_account_create", [U, D, D, D, D, D, D, U, U, U, U, 201, D]),
        ("service_account_delete", [U, D, D, D, D, D, D, U, U, U, U, 204, D]),
        ("token_list", [U, 200, D, D, D, D, D, U, U, U, U, 200, D]),
        ("token_create", [U, 201, D, D, D, D, D, U, U, U, U, 201, D]),
        ("token_revoke", [U, 204, D, D, D, D, D, U, U, U, U, 204, D]),
        ("key_list", [U, 200, D, D, D, D, D, U, U, U, U, 200, D]),
        ("key_add", [U, 201, D, D, D, D, D, U, U, U, U, 201, D]),
        ("key_revoke", [U, 204, D, D, D, D, D, U, U, U, U, 204, D]),
        ("signing_key_create", [U, D, D, D, D, D, D, U, U, U, U, 201, D]),
        ("signing_key_get", [U, D, D, D, D, D, D, U, U, U, U, 200, D]),
        // The registry's public keys are for anyone who verifies; only a
        // system administrator rotates them.
        ("registry_keys_get", [200; 13]),
        ("registry_key_rotate", [U, D, D, D, D, D, D, U, U, U, U, 201, D]),
        ("repository_get", [U, 200, 200, 200, D, 200, D, U, U, U, U, 200, 200]),
        ("repository_update", [U, D, D, 200, D, D, D, U, U, U, U, 200, 200]),
        // Policies of acme/app targeting acme/other: only the administrator
        // may push there, so only it may create or change one.
        ("policy_list", [U, 200, 200, 200, D, 200, D, U, U, U, U, 200, 200]),
        ("policy_create", [U, D, D, D, D, D, D, U, U, U, U, 201, D]),
        ("policy_get", [U, 200, 200, 200, D, 200, D, U, U, U, U, 200, 200]),
        ("policy_update", [U, D, D, D, D, D, D, U, U, U, U, 200, D]),
        ("policy_delete", [U, D, D, 204, D, D, D, U, U, U, U, 204, 204]),
        ("policy_apply", [U, D, D, 200, D, D, D, U, U, U, U, 200, 200]),
        ("policy_dry_run", [U, 200, 200, 200, D, 200, D, U, U, U, U, 200, 200]),
        (
            "policy_evaluations",
            [U, 200, 200, 200, D, 200, D, U, U, U, U, 200, 200],
        ),
        ("tag_get", [U, 200, 200, 200, D, 200, D, U, U, U, U, 200, 200]),
        // Webhooks: administrators of the repository (or namespace) only.
        ("repository_webhooks", [U, D, D, 200, D, D, D, U, U, U, U, 200, 200]),
        (
            "repository_webhook_create",
            [U, D, D, 201, D, D, D, U, U, U, U, 201, 201],
        ),
        ("namespace_webhooks", [U, D, D, D, D, D, D, U, U, U, U, 200, D]),
        ("namespace_webhook_create", [U, D, D, D, D, D, D, U, U, U, U, 201, D]),
        ("webhook_get", [U, D, D, 200, D, D, D, U, U, U, U, 200, 200]),
        ("webhook_update", [U, D, D, 200, D, D, D, U, U, U, U, 200, 200]),
        ("webhook_delete", [U, D, D, 204, D, D, D, U, U, U, U, 204, 204]),
        ("webhook_test", [U, D, D, 202, D, D, D, U, U, U, U, 202, 202]),
        ("webhook_deliveries", [U, D, D, 200, D, D, D, U, U, U, U, 200, 200]),
        ("webhook_redeliver", [U, D, D, 202, D, D, D, U, U, U, U, 202, 202]),
        ("audit_verify", [U, D, D, D, D, D, D, U, U, U, U, 200, D]),
        (
            "repository_list",
            [U, 200, 200, 200, 200, 200, 200, U, U, U, U, 200, 200],
        ),
        ("tag_list", [U, 200, 200, 200, D, 200, D, U, U, U, U, 200, 200]),
        ("referrer_list", [U, 200, 200, 200, D, 200, D, U, U, U, U, 200, 200]),
        (
            "repository_history",
            [U, 200, 200, 200, D, 200, D, U, U, U, U, 200, 200],
        ),
        ("vulndb_status", [U, D, D, D, D, D, D, U, U, U, U, 200, D]),
        ("scanner_status", [U, D, D, D, D, D, D, U, U, U, U, 200, D]),
        ("vulndb_import", [U, D, D, D, D, D, D, U, U, U, U, 201, D]),
        ("vulndb_sources_get", [U, D, D, D, D, D, D, U, U, U, U, 200, D]),
        ("vulndb_sources_set", [U, D, D, D, D, D, D, U, U, U, U, 200, D]),
        ("repository_delete", [U, D, D, D, D, D, D, U, U, U, U, 204, D]),
        ("audit_list", [U, D, D, D, D, D, D, U, U, U, U, 200, D]),
        ("admission", [U, 200, 200, 200, 200, 200, 200, U, U, U, U, 200, 200]),
    ]
}

/// The audit action a successful call of `endpoint` records in the same
/// transaction as its change (pulls are recorded in batches, not here).
fn audited_action(endpoint: &str) -> Option<&'static str> {
    Some(match endpoint {
        "manifest_put" => "push",
        "manifest_delete" => "manifest.delete",
        "blob_delete" => "blob.delete",
        "token" => "login",
        "user_create" => "user.create",
        "user_delete" => "user.delete",
        "user_password" => "user.password",
        "org_create" => "org.create",
        "org_delete" => "org.delete",
        "team_create" => "team.create",
        "team_delete" => "team.delete",
        "member_add" => "team.member.add",
        "member_remove" => "team.member.remove",
        "grant_create" => "grant.create",
        "grant_delete" => "grant.delete",
        "namespace_settings_update" => "namespace.update",
        "service_account_create" => "service_account.create",
        "service_account_delete" => "service_account.delete",
        "token_create" => "token.create",
        "token_revoke" => "token.revoke",
        "key_add" => "key.add",
        "key_revoke" => "key.revoke",
        "signing_key_create" => "signing_key.create",
        "repository_update" => "repository.update",
        "repository_delete" => "repository.delete",
        "policy_create" => "policy.create",
        "policy_update" => "policy.update",
        "policy_delete" => "policy.delete",
        "repository_webhook_create" | "namespace_webhook_create" => "webhook.create",
        "webhook_update" => "webhook.update",
        "webhook_delete" => "webhook.delete",
        "webhook_redeliver" => "webhook.redeliver",
        "webhook_test" => "webhook.test",
        "policy_apply" => "policy.apply",
        "scan_request" => "scan.request",
        "vulndb_import" => "vulndb.import",
        "vulndb_sources_set" => "vulndb.sources.update",
        "registry_create" => "registry.create",
        "registry_update" => "registry.update",
        "registry_delete" => "registry.delete",
        "replication_rule_create" => "replication_rule.create",
        "replication_rule_update" => "replication_rule.update",
        "replication_rule_delete" => "replication_rule.delete",
        _ => return None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_matrix() {
    // Every endpoint the server has must have a row, and no row may name
    // an endpoint that does not exist.
    let rows: BTreeSet<&str> = matrix().iter().map(|(e, _)| *e).collect();
    let endpoints: BTreeSet<&str> = portcullis_server::REGISTRY_ENDPOINTS
        .iter()
        .copied()
        .chain(portcullis_server::API_ENDPOINTS.iter().map(|(_, _, n)| *n))
        .collect();
    assert_eq!(rows, endpoints, "the matrix and the server's endpoints differ");
    assert_eq!(matrix().len(), rows.len(), "one row per endpoint");

    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let callers = world(&s).await;
        let mut failures = Vec::new();
        let mut cell = 0;
        let meta = &s.registry.meta;
        let after = |seq: i64| async move {
            meta.audit_records(&AuditQuery {
                after_seq: Some(seq),
                limit: 100_000,
                ..AuditQuery::default()
            })
            .await
            .unwrap()
        };
        let mut last_seq = 0;
        for (endpoint, want) in matrix() {
            for (i, caller) in callers.iter().enumerate() {
                cell += 1;
                let (method, path, body) = prepare(&s, endpoint, cell, caller).await;
                if let Some(r) = after(last_seq).await.last() {
                    last_seq = r.seq;
                }
                let mut req = s.anon.request(method.clone(), s.url(&path));
                if endpoint == "token" {
                    if let Some((u, p)) = &caller.basic {
                        req = req.basic_auth(u, Some(p));
                    } else if let Some(b) = &caller.bearer {
                        req = req.header("authorization", b);
                    }
                } else if let Some(b) = caller.api.as_ref().filter(|_| path.starts_with("/api/")) {
                    req = req.header("authorization", b);
                } else if let Some(b) = &caller.bearer {
                    req = req.header("authorization", b);
                }
                if let Some(b) = body {
                    let ct = if path.contains("/manifests/") {
                        "application/vnd.oci.image.manifest.v1+json"
                    } else {
                        "application/json"
                    };
                    req = req.header("content-type", ct).body(b);
                }
                let r = req.send().await.unwrap();
                let got = r.status().as_u16();
                if got == 401 && path.starts_with("/v2/") {
                    assert!(
                        r.headers().contains_key("www-authenticate"),
                        "{endpoint}: 401 without a challenge"
                    );
                }
                let text = r.text().await.unwrap();
                // A change that succeeded left exactly its record, by this
                // caller; one that was refused changed nothing it would record.
                if let Some(action) = audited_action(endpoint) {
                    let new = after(last_seq).await;
                    let by_caller = new
                        .iter()
                        .any(|r| r.event.action == action && r.event.result == "ok" && r.event.actor == caller.account);
                    let any_ok = new.iter().any(|r| r.event.action == action && r.event.result == "ok");
                    let success = (200..300).contains(&got) && !(endpoint == "token" && caller.basic.is_none());
                    if success && !by_caller {
                        failures.push(format!("{endpoint} as {}: no {action} record", CALLERS[i]));
                    }
                    if !success && any_ok {
                        failures.push(format!("{endpoint} as {}: refused but {action} recorded", CALLERS[i]));
                    }
                }
                if got != want[i] {
                    failures.push(format!(
                        "{endpoint} as {}: want {}, got {got} {text}",
                        CALLERS[i], want[i]
                    ));
                } else if got == 401 && path.starts_with("/v2/") {
                    assert!(text.contains("UNAUTHORIZED"), "{endpoint} {}: {text}", CALLERS[i]);
                } else if got == 403 {
                    assert!(text.contains("DENIED"), "{endpoint} {}: {text}", CALLERS[i]);
                }
            }
        }
        assert!(failures.is_empty(), "{}:\n{}", s.label(), failures.join("\n"));

        // Every successful change in the matrix left an audit record, and the
        // chain is intact.
        let records = s
            .registry
            .meta
            .audit_records(&AuditQuery {
                limit: 100_000,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        let count = |action: &str, result: &str| {
            records
                .iter()
                .filter(|r| r.event.action == action && r.event.result == result)
                .count()
        };
        // Deletions by repo_admin and admin; user creation by admin (plus set-up).
        assert!(count("manifest.delete", "ok") >= 2, "{}", s.label());
        assert!(count("blob.delete", "ok") >= 2);
        assert!(count("user.delete", "ok") >= 1);
        assert!(count("token.revoke", "ok") >= 2);
        assert!(count("repository.update", "ok") >= 2);
        assert!(count("login", "failed") >= 2, "expired and revoked tokens");
        let push = records
            .iter()
            .find(|r| r.event.action == "push" && r.event.actor == "writer")
            .unwrap();
        assert_eq!(push.event.repository.as_deref(), Some("acme/app"));
        assert!(push.event.address.is_some());
        let sa_push = records
            .iter()
            .find(|r| r.event.action == "push" && r.event.actor == "acme+ci");
        assert!(
            sa_push.unwrap().event.token_id.is_some(),
            "the token a push came with is recorded"
        );
        assert_eq!(s.registry.meta.verify_audit().await.unwrap().1, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_and_members_are_listed_as_created() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        for u in ["alice", "bob"] {
            api(&s, Method::POST, "/api/v1/users", json!({"name": u, "password": PW})).await;
        }
        api(&s, Method::POST, "/api/v1/orgs", json!({"name": "acme"})).await;
        for t in ["ci", "dev"] {
            api(&s, Method::POST, "/api/v1/orgs/acme/teams", json!({"name": t})).await;
        }
        for (t, u) in [("dev", "bob"), ("dev", "alice"), ("ci", "alice")] {
            let path = format!("/api/v1/orgs/acme/teams/{t}/members/{u}");
            api(&s, Method::PUT, &path, json!(null)).await;
        }
        let teams = api(&s, Method::GET, "/api/v1/orgs/acme/teams", json!(null)).await;
        assert_eq!(
            teams,
            json!([
                {"name": "ci", "members": ["alice"]},
                {"name": "dev", "members": ["alice", "bob"]},
                {"name": "owners", "members": ["admin"]},
            ]),
            "{}",
            s.label()
        );
        let members = api(&s, Method::GET, "/api/v1/orgs/acme/teams/dev/members", json!(null)).await;
        assert_eq!(members, json!(["alice", "bob"]), "{}", s.label());
        let s = &s;
        let missing = |path: &'static str| async move { s.http.get(s.url(path)).send().await.unwrap().status() };
        assert_eq!(missing("/api/v1/orgs/acme/teams/nope/members").await, 404);
        assert_eq!(missing("/api/v1/orgs/nobody/teams").await, 404);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_lists_only_what_the_caller_can_read_and_public_repos_are_pullable() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        api(
            &s,
            Method::POST,
            "/api/v1/users",
            json!({"name": "alice", "password": PW}),
        )
        .await;
        s.push_image("alice/mine", "v1", b"a", &[b"a1"]).await;
        s.push_image("bob/theirs", "v1", b"b", &[b"b1"]).await;
        s.push_image("pub/open", "v1", b"p", &[b"p1"]).await;
        api(
            &s,
            Method::PUT,
            "/api/v1/repositories/pub/open",
            json!({"visibility": "public"}),
        )
        .await;
        let alice = jwt(&s, "alice", PW, "registry:catalog:*").await;
        let r = s
            .anon
            .get(s.url("/v2/_catalog?n=1"))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers().contains_key("link"), "paged after filtering");
        let all: Value = s
            .anon
            .get(s.url("/v2/_catalog"))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(all["repositories"], json!(["alice/mine", "pub/open"]), "{}", s.label());
        // Anonymous pull of the public repository works through the token flow
        // and directly; its neighbours stay hidden.
        let anon: Value = s
            .anon
            .get(s.url(
                "/auth/token?service=portcullis&scope=repository:pub/open:pull,push&scope=repository:bob/theirs:pull",
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let c = claims_of(anon["token"].as_str().unwrap());
        assert_eq!(c["sub"], "anonymous");
        assert_eq!(
            c["access"],
            json!([
                {"type": "repository", "name": "pub/open", "actions": ["pull"]},
                {"type": "repository", "name": "bob/theirs", "actions": []},
            ]),
            "a refused scope is listed with no actions"
        );
        let r = s.anon.get(s.url("/v2/pub/open/manifests/v1")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let r = s.anon.get(s.url("/v2/bob/theirs/manifests/v1")).send().await.unwrap();
        assert_eq!(r.status(), 401);
        let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_string();
        assert!(
            challenge.starts_with("Bearer realm=\"http://127.0.0.1:")
                && challenge.contains("/auth/token\",service=\"portcullis\",scope=\"repository:bob/theirs:pull\""),
            "{challenge}"
        );
        // A reference that can't exist is answered only to those who may
        // read the repository: a stranger is challenged, not told it's bad.
        let r = s
            .anon
            .get(s.url("/v2/bob/theirs/manifests/.INVALID_MANIFEST_NAME"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let r = s
            .anon
            .get(s.url("/v2/pub/open/manifests/.INVALID_MANIFEST_NAME"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        // A push to a public repository still needs a grant.
        let r = s.anon.post(s.url("/v2/pub/open/blobs/uploads/")).send().await.unwrap();
        assert_eq!(r.status(), 401);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_password_and_refresh_grants_and_login_throttling() {
    let s = TestServer::start(&Backend::Sqlite).await;
    api(
        &s,
        Method::POST,
        "/api/v1/users",
        json!({"name": "carol", "password": PW}),
    )
    .await;
    let form = |pairs: &[(&str, &str)]| {
        s.anon
            .post(s.url("/auth/token"))
            .form(
                &pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Vec<_>>(),
            )
            .send()
    };
    let r = form(&[
        ("grant_type", "password"),
        ("username", "carol"),
        ("password", PW),
        ("service", "portcullis"),
        ("scope", "repository:carol/app:pull,push"),
        ("client_id", "docker"),
        ("access_type", "offline"),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let refresh = body["refresh_token"].as_str().unwrap().to_string();
    // Not a password on the management API (nor a bearer there).
    let r = s
        .anon
        .get(s.url("/api/v1/accounts/carol/tokens"))
        .header("authorization", basic_header("carol", &refresh))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a refresh token sent as a Basic password");
    let c = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(c["access"][0]["actions"], json!(["pull", "push"]), "own namespace");
    let r = form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh),
        ("service", "portcullis"),
        ("scope", "repository:carol/app:pull"),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let r = form(&[
        ("grant_type", "refresh_token"),
        (
            "refresh_token",
            "pct_0000000000000000_nope-nope-nope-nope-nope-nope-nope",
        ),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), 401);

    // Five wrong passwords lock the account (and the address) for a while:
    // even the right password is refused then.
    for _ in 0..5 {
        let r = form(&[
            ("grant_type", "password"),
            ("username", "carol"),
            ("password", "wrong-password"),
        ])
        .await
        .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = form(&[("grant_type", "password"), ("username", "carol"), ("password", PW)])
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let failed = s
        .registry
        .meta
        .audit_records(&AuditQuery {
            actor: Some("carol".into()),
            action: Some("login".into()),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(failed.iter().filter(|r| r.event.result == "failed").count(), 5);
    assert_eq!(failed.iter().filter(|r| r.event.result == "denied").count(), 1);
    // No secret reaches the trail.
    assert!(failed.iter().all(|r| !format!("{r:?}").contains(PW)));
}

/// A registry token verified once is remembered, but only until it
/// expires: the next pull with it is challenged again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_registry_token_still_expires() {
    let backend = common::backends().remove(0);
    let s = TestServer::start_tuned(&backend, portcullis_server::access::Anonymous::None, |o| {
        o.access.token_ttl = std::time::Duration::from_secs(1)
    })
    .await;
    let (digest, _) = s.push_image("acme/app", "1", b"{\"t\":1}", &[b"layer"]).await;
    let token = s.admin_registry_token("repository:acme/app:pull").await;
    let pull = || {
        s.anon
            .get(s.url(&format!("/v2/acme/app/manifests/{digest}")))
            .bearer_auth(&token)
            .send()
    };
    for _ in 0..3 {
        assert_eq!(pull().await.unwrap().status(), 200);
    }
    // Past its expiry and the 5 s of clock skew verification allows.
    tokio::time::sleep(std::time::Duration::from_millis(7100)).await;
    let r = pull().await.unwrap();
    assert_eq!(r.status(), 401, "an expired token is not served from the cache");
}

/// `curl -u` on the management API does not flood the trail: successful
/// Basic logins from one address write one `login` record per 15 minutes,
/// and the actions' records say `via: password`; failures stay audited, and
/// a lockout's further refusals are one record and a count. The token
/// endpoint still records each login. On SQLite and PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_logins_ride_on_the_actions_record() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        api(
            &s,
            Method::POST,
            "/api/v1/users",
            json!({"name": "dana", "password": PW}),
        )
        .await;
        let registry = s.registry.clone();
        let records = move |actor: &'static str| {
            let registry = registry.clone();
            async move {
                registry
                    .meta
                    .audit_records(&AuditQuery {
                        actor: Some(actor.into()),
                        limit: 1000,
                        ..AuditQuery::default()
                    })
                    .await
                    .unwrap()
            }
        };
        let as_dana = |method: Method, path: &str, password: &str| {
            s.anon
                .request(method, s.url(path))
                .header("authorization", basic_header("dana", password))
        };
        for _ in 0..10 {
            let r = as_dana(Method::GET, "/api/v1/accounts/dana/tokens", PW)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{label}");
        }
        let logins = records("dana").await;
        assert_eq!(
            logins.len(),
            1,
            "{label}: ten reads by password, one login record: {logins:?}"
        );
        assert_eq!(
            (logins[0].event.action.as_str(), logins[0].event.result.as_str()),
            ("login", "ok")
        );

        let r = as_dana(Method::POST, "/api/v1/accounts/dana/tokens", PW)
            .json(&json!({"name": "ci", "scopes": ["dana/*:pull"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{label}: {}", r.text().await.unwrap());
        let trail = records("dana").await;
        assert_eq!(trail.len(), 2, "{label}: {trail:?}");
        assert_eq!(trail[1].event.action, "token.create", "{label}");
        assert_eq!(trail[1].event.via.as_deref(), Some("password"), "{label}");
        let listed: Value = s
            .http
            .get(s.url("/api/v1/audit?actor=dana"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(listed["records"][1]["via"], "password", "{label}: {listed}");
        let verified: Value = s
            .http
            .get(s.url("/api/v1/audit/verify"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(verified["intact"], true, "{label}: the chain covers via: {verified}");

        // Twenty wrong passwords: five failures, then one lockout record.
        for _ in 0..20 {
            let r = as_dana(Method::GET, "/api/v1/accounts/dana/tokens", "wrong-password")
                .send()
                .await
                .unwrap();
            assert!(matches!(r.status().as_u16(), 401 | 429), "{label}");
        }
        let logins: Vec<_> = records("dana")
            .await
            .into_iter()
            .filter(|r| r.event.action == "login")
            .collect();
        let failed = logins.iter().filter(|r| r.event.result == "failed").count();
        let denied = logins.iter().filter(|r| r.event.result == "denied").count();
        assert_eq!(
            (failed, denied, logins.len()),
            (5, 1, 7),
            "{label}: one ok, then these: {logins:?}"
        );

        // The token endpoint issues a token: that login is recorded.
        let s2 = TestServer::start(&backend).await;
        api(
            &s2,
            Method::POST,
            "/api/v1/users",
            json!({"name": "erin", "password": PW}),
        )
        .await;
        jwt(&s2, "erin", PW, "repository:erin/app:pull").await;
        let logins = s2
            .registry
            .meta
            .audit_records(&AuditQuery {
                actor: Some("erin".into()),
                action: Some("login".into()),
                limit: 10,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(logins.len(), 1, "{label}");
        assert_eq!(logins[0].event.result, "ok", "{label}");
    }
}

//! The web UI over HTTP: sessions, CSRF, security headers, and that every
//! UI route answers each kind of user as the management API would (the
//! UI's own authorization matrix). Browser tests are in `tests/browser.rs`.

mod common;

use std::time::Duration;

use common::{backends, call, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

const PW: &str = "long-enough-password";

/// A browser without JavaScript: keeps its cookies by hand.
struct Browser {
    client: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn new(s: &TestServer) -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: s.base.clone(),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, r: &reqwest::Response) {
        for c in r.headers().get_all("set-cookie") {
            let text = c.to_str().unwrap();
            let (pair, _) = text.split_once(';').unwrap_or((text, ""));
            let (k, v) = pair.split_once('=').unwrap();
            self.cookies.retain(|(name, _)| name != k);
            if !v.is_empty() {
                self.cookies.push((k.to_string(), v.to_string()));
            }
        }
    }

    /// Sends with this browser's cookies and keeps the ones it is given.
    async fn send(&mut self, request: reqwest::RequestBuilder) -> (u16, String, reqwest::header::HeaderMap) {
        let r = request.header("cookie", self.cookie_header()).send().await.unwrap();
        self.keep_cookies(&r);
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        (status, r.text().await.unwrap(), headers)
    }

    async fn get(&mut self, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
        let request = self.client.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> (u16, String, reqwest::header::HeaderMap) {
        let request = self.client.post(format!("{}{path}", self.base)).form(form);
        self.send(request).await
    }

    /// Signs in through the form; the status of the form post.
    async fn sign_in(&mut self, user: &str, password: &str) -> u16 {
        let (st, page, _) = self.get("/ui/login").await;
        assert_eq!(st, 200);
        let token = field(&page, "token");
        self.post(
            "/ui/login",
            &[
                ("username", user),
                ("password", password),
                ("token", &token),
                ("next", "/ui/"),
            ],
        )
        .await
        .0
    }

    /// The CSRF token in a page's forms.
    async fn csrf(&mut self) -> String {
        let (st, page, _) = self.get("/ui/").await;
        assert_eq!(st, 200, "{page}");
        field(&page, "csrf")
    }
}

/// The value of the hidden input `name` in `html`.
fn field(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no {name} field in {html}"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_string()
}

fn location(h: &reqwest::header::HeaderMap) -> String {
    h.get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

async fn user(s: &TestServer, name: &str) {
    let (st, v) = call(s, Method::POST, "/api/v1/users", json!({"name": name, "password": PW})).await;
    assert_eq!(st, 201, "{v}");
}

/// `acme/app` with one scanned image; `reader` may read it, `outsider` nothing.
async fn world(s: &TestServer) -> String {
    let digest = world_without_scan(s).await;
    wait_for_scan(s, &digest).await;
    digest
}

async fn wait_for_scan(s: &TestServer, digest: &str) {
    let path = format!("/api/v1/scans/{digest}?repository=acme/app");
    for _ in 0..200 {
        if call(s, Method::GET, &path, Value::Null).await.1["status"] == "done" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the image was not scanned");
}

async fn world_without_scan(s: &TestServer) -> String {
    user(s, "reader").await;
    user(s, "outsider").await;
    assert_eq!(
        call(s, Method::POST, "/api/v1/orgs", json!({"name": "acme"})).await.0,
        201
    );
    let grant = json!({"account": "reader", "repository": "acme/app", "role": "read"});
    let (st, v) = call(s, Method::POST, "/api/v1/namespaces/acme/grants", grant).await;
    assert_eq!(st, 201, "{v}");
    let layer = common::tar_of(&[("etc/os-release", b"ID=debian\nVERSION_ID=\"12\"\n".as_slice())]);
    let (digest, _) = s
        .push_image("acme/app", "v1", br#"{"architecture":"amd64","os":"linux"}"#, &[&layer])
        .await;
    s.push_image("acme/secret", "v1", b"{}", &[b"secret layer"]).await;
    digest.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sessions_csrf_and_headers() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        world(&s).await;
        let mut b = Browser::new(&s);
        // Not signed in: every page sends to the sign-in form and back.
        let (st, _, h) = b.get("/").await;
        assert_eq!((st, location(&h).as_str()), (303, "/ui/"), "{label}");
        let (st, _, h) = b.get("/ui/repository?name=acme/app").await;
        assert_eq!(st, 303, "{label}");
        assert_eq!(location(&h), "/ui/login?next=%2Fui%2Frepository%3Fname%3Dacme%2Fapp");
        // The sign-in form is CSRF-checked by double submit.
        let (_, page, h) = b.get("/ui/login").await;
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(h["x-frame-options"], "DENY");
        let login_cookie = h["set-cookie"].to_str().unwrap();
        assert!(
            login_cookie.contains("HttpOnly") && login_cookie.contains("SameSite=Lax"),
            "{login_cookie}"
        );
        assert!(!login_cookie.contains("Secure"), "no TLS here: {login_cookie}");
        let token = field(&page, "token");
        let mut stranger = Browser::new(&s);
        let forged = [("username", "reader"), ("password", PW), ("token", token.as_str())];
        assert_eq!(
            stranger.post("/ui/login", &forged).await.0,
            403,
            "{label}: no login cookie"
        );
        assert!(stranger.cookies.is_empty());
        // A wrong password is the form again with the reason, and audited.
        assert_eq!(b.sign_in("reader", "wrong-password").await, 401, "{label}");
        assert_eq!(b.sign_in("reader", PW).await, 303, "{label}");
        let session = b
            .cookies
            .iter()
            .find(|(k, _)| k == "portcullis_session")
            .cloned()
            .unwrap();
        assert!(session.1.len() >= 40, "a long random id");
        // Pages carry the CSP and no inline script.
        let (st, page, h) = b.get("/ui/").await;
        assert_eq!(st, 200, "{label}: {page}");
        assert!(h.contains_key("content-security-policy"));
        assert!(!page.contains("<script>"), "no inline script");
        assert!(
            page.contains("acme/app") && !page.contains("acme/secret"),
            "{label}: {page}"
        );
        // Forms need the session's token.
        let csrf = b.csrf().await;
        let form = [("csrf", "not-the-token")];
        let (st, page, _) = b.post("/ui/logout", &form).await;
        assert_eq!(st, 403, "{label}: {page}");
        assert!(page.contains("did not come from this site"), "{page}");
        // A session's token is no good with another session.
        let mut other = Browser::new(&s);
        assert_eq!(other.sign_in("outsider", PW).await, 303);
        let (st, _, _) = other.post("/ui/logout", &[("csrf", csrf.as_str())]).await;
        assert_eq!(st, 403, "{label}: another session's token");
        // Signing out ends the session on the server, not just the cookie.
        let (st, _, h) = b.post("/ui/logout", &[("csrf", csrf.as_str())]).await;
        assert_eq!((st, location(&h).as_str()), (303, "/ui/login"), "{label}");
        let mut replay = Browser::new(&s);
        replay.cookies.push(session.clone());
        assert_eq!(replay.get("/ui/").await.0, 303, "{label}: the old cookie is dead");
        // A password change ends the user's sessions.
        assert_eq!(other.get("/ui/").await.0, 200);
        let (st, v) = call(
            &s,
            Method::PUT,
            "/api/v1/users/outsider/password",
            json!({"password": "another-long-password"}),
        )
        .await;
        assert!(st == 200 || st == 204, "{v}");
        assert_eq!(other.get("/ui/").await.0, 303, "{label}: password changed");
        // Sign-in and sign-out are in the audit trail.
        let (_, audit) = call(&s, Method::GET, "/api/v1/audit?actor=reader", Value::Null).await;
        let actions: Vec<(&str, &str)> = audit["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["action"].as_str().unwrap(), r["result"].as_str().unwrap()))
            .collect();
        assert!(actions.contains(&("login", "failed")), "{actions:?}");
        assert!(actions.contains(&("login", "ok")), "{actions:?}");
        assert!(actions.contains(&("logout", "ok")), "{actions:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_end() {
    let backend = backends().remove(0);
    let ui = portcullis_ui::UiSettings {
        idle: Duration::from_millis(700),
        absolute: Duration::from_secs(3600),
        secure_cookies: true,
    };
    let s = TestServer::start_with_ui(&backend, portcullis_server::Anonymous::None, |_| {}, ui).await;
    let mut b = Browser::new(&s);
    let (_, _, h) = b.get("/ui/login").await;
    assert!(
        h["set-cookie"].to_str().unwrap().contains("Secure"),
        "TLS cookies are Secure"
    );
    assert_eq!(b.sign_in("admin", common::ADMIN_PASSWORD).await, 303);
    assert_eq!(b.get("/ui/").await.0, 200);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (st, _, h) = b.get("/ui/").await;
    assert_eq!(
        (st, location(&h).as_str()),
        (303, "/ui/login?next=%2Fui%2F"),
        "idle too long"
    );
}

/// Expected status per caller (anonymous, reader, outsider, admin) for
/// every UI route. 303 for anonymous callers is the sign-in redirect; 303
/// after a form is the redirect back to the page.
fn ui_matrix() -> Vec<(&'static str, [u16; 4])> {
    vec![
        ("ui_root", [303, 303, 303, 303]),
        ("ui_root_slash", [303, 303, 303, 303]),
        ("ui_repositories", [303, 200, 200, 200]),
        ("ui_login_form", [200, 200, 200, 200]),
        // Without the sign-in form's cookie: refused as a forgery.
        ("ui_login", [403, 403, 403, 403]),
        ("ui_static", [200, 200, 200, 200]),
        ("ui_repository", [303, 200, 403, 200]),
        ("ui_image", [303, 200, 403, 200]),
        ("ui_image_scan", [303, 403, 403, 303]),
        ("ui_image_sbom", [303, 200, 403, 200]),
        ("ui_policies", [303, 200, 403, 200]),
        ("ui_policy_save", [303, 403, 403, 303]),
        ("ui_policy_dry_run", [303, 200, 403, 200]),
        ("ui_policy_apply", [303, 403, 403, 303]),
        ("ui_policy_delete", [303, 403, 403, 303]),
        ("ui_vulndb", [303, 403, 403, 200]),
        ("ui_vulndb_upload", [303, 403, 403, 303]),
        ("ui_audit", [303, 403, 403, 200]),
        ("ui_repository_settings", [303, 200, 403, 200]),
        // The reader holds a grant on one repository, not a role in the namespace.
        ("ui_namespace", [303, 403, 403, 200]),
        ("ui_account", [303, 200, 403, 200]),
        ("ui_webhook", [303, 403, 403, 200]),
        ("ui_form", [303, 403, 403, 303]),
        // With a wrong token: refused; the sign-in redirect for anonymous.
        ("ui_logout", [303, 403, 403, 403]),
    ]
}

const OSV: &str = r#"{"id":"UI-MATRIX-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"nothing-here"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.0.0"}]}]}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_authorization_matrix() {
    let rows: std::collections::BTreeSet<&str> = ui_matrix().iter().map(|(n, _)| *n).collect();
    let routes: std::collections::BTreeSet<&str> = portcullis_ui::UI_ROUTES.iter().map(|(_, _, n)| *n).collect();
    assert_eq!(rows, routes, "the UI matrix and the UI's routes differ");
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let digest = world(&s).await;
        let mut callers = vec![Browser::new(&s)];
        for (u, p) in [("reader", PW), ("outsider", PW), ("admin", common::ADMIN_PASSWORD)] {
            let mut b = Browser::new(&s);
            assert_eq!(b.sign_in(u, p).await, 303, "{label}: {u}");
            callers.push(b);
        }
        let mut tokens = vec![String::new()];
        for b in callers.iter_mut().skip(1) {
            tokens.push(b.csrf().await);
        }
        let mut failures = Vec::new();
        for (route, want) in ui_matrix() {
            for (i, b) in callers.iter_mut().enumerate() {
                let csrf = tokens[i].clone();
                let image_q = format!("repository=acme/app&digest={digest}");
                // Each policy row gets a policy of its own to act on.
                let policy = || async {
                    let body = json!({"target": "acme/other", "tag_template": format!("m{i}-%n"),
                        "rules": [{"field": "tag", "operator": "eq", "values": ["never"]}]});
                    let (st, v) = call(&s, Method::POST, "/api/v1/repositories/acme/app/policies", body).await;
                    assert_eq!(st, 201, "{v}");
                    v["id"].as_str().unwrap().to_string()
                };
                let (st, page, _) = match route {
                    "ui_root" => b.get("/").await,
                    "ui_root_slash" => b.get("/ui").await,
                    "ui_repositories" => b.get("/ui/").await,
                    "ui_login_form" => b.get("/ui/login").await,
                    "ui_login" => {
                        let mut fresh = Browser::new(&s);
                        fresh.cookies = b
                            .cookies
                            .iter()
                            .filter(|(k, _)| k != "portcullis_login")
                            .cloned()
                            .collect();
                        let (st, page, h) = fresh
                            .post("/ui/login", &[("username", "reader"), ("password", PW), ("token", "x")])
                            .await;
                        (st, page, h)
                    }
                    "ui_static" => b.get("/ui/static/app.css").await,
                    "ui_repository" => b.get("/ui/repository?name=acme/app").await,
                    "ui_image" => b.get(&format!("/ui/image?{image_q}")).await,
                    "ui_image_scan" => {
                        b.post(
                            "/ui/image/scan",
                            &[("csrf", &csrf), ("repository", "acme/app"), ("digest", &digest)],
                        )
                        .await
                    }
                    "ui_image_sbom" => {
                        // A "scan now" row before may have queued it again.
                        wait_for_scan(&s, &digest).await;
                        let (st, page, h) = b.get(&format!("/ui/image/sbom?{image_q}&format=spdx")).await;
                        if st == 200 {
                            // The API's file name, passed on.
                            let short = &digest["sha256:".len()..][..12];
                            assert_eq!(
                                h["content-disposition"],
                                format!("attachment; filename=\"acme_app_{short}.spdx.json\"").as_str(),
                                "{label}"
                            );
                        }
                        (st, page, h)
                    }
                    "ui_policies" => b.get("/ui/policies?repository=acme/app").await,
                    "ui_policy_save" => {
                        let template = format!("n{i}-%n");
                        b.post(
                            "/ui/policies",
                            &[
                                ("csrf", &csrf),
                                ("repository", "acme/app"),
                                ("target", "acme/other"),
                                ("tag_template", &template),
                                ("field1", "tag"),
                                ("operator1", "eq"),
                                ("values1", "never"),
                            ],
                        )
                        .await
                    }
                    "ui_policy_dry_run" | "ui_policy_apply" | "ui_policy_delete" => {
                        let id = policy().await;
                        let path = match route {
                            "ui_policy_dry_run" => "/ui/policies/dry-run",
                            "ui_policy_apply" => "/ui/policies/apply",
                            _ => "/ui/policies/delete",
                        };
                        b.post(
                            path,
                            &[("csrf", &csrf), ("repository", "acme/app"), ("id", &id), ("tag", "v1")],
                        )
                        .await
                    }
                    "ui_vulndb" => b.get("/ui/admin/vulndb").await,
                    "ui_vulndb_upload" => {
                        let form = reqwest::multipart::Form::new().text("csrf", csrf.clone()).part(
                            "file",
                            reqwest::multipart::Part::bytes(OSV.as_bytes().to_vec()).file_name("matrix.json"),
                        );
                        let request = b.client.post(format!("{}/ui/admin/vulndb", b.base)).multipart(form);
                        b.send(request).await
                    }
                    "ui_audit" => b.get("/ui/audit").await,
                    "ui_repository_settings" => b.get("/ui/repository/settings?name=acme/app").await,
                    "ui_namespace" => b.get("/ui/namespace?name=acme").await,
                    "ui_account" => b.get("/ui/account?name=reader").await,
                    "ui_webhook" => {
                        let hook = json!({"url": "http://127.0.0.1:9/hook", "secret": "ui-matrix-webhook-secret", "events": ["TAG_PUSH"]});
                        let (st, v) = call(&s, Method::POST, "/api/v1/repositories/acme/app/webhooks", hook).await;
                        assert_eq!(st, 201, "{v}");
                        b.get(&format!("/ui/webhook?id={}", v["id"].as_str().unwrap())).await
                    }
                    "ui_form" => {
                        let team = format!("t{i}");
                        let form = [
                            ("csrf", csrf.as_str()),
                            ("op", "team_create"),
                            ("namespace", "acme"),
                            ("name", &team),
                        ];
                        b.post("/ui/do", &form).await
                    }
                    "ui_logout" => b.post("/ui/logout", &[("csrf", "wrong")]).await,
                    other => panic!("no request for {other}"),
                };
                if st != want[i] {
                    failures.push(format!(
                        "{route} as caller {i}: want {}, got {st}: {page:.300}",
                        want[i]
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{label}:\n{}", failures.join("\n"));
        // The upload went through the same import as `db import`.
        let (_, status) = call(&s, Method::GET, "/api/v1/vulndb", Value::Null).await;
        assert_eq!(status["status"]["sources"][0]["name"], "matrix.json", "{status}");
        assert_eq!(status["status"]["records"], 1, "{status}");
    }
}

/// Posts a management form (`/ui/do`) with the session's token.
async fn submit(b: &mut Browser, csrf: &str, fields: &[(&str, &str)]) -> (u16, String, reqwest::header::HeaderMap) {
    let mut all = vec![("csrf", csrf)];
    all.extend_from_slice(fields);
    b.post("/ui/do", &all).await
}

/// The management pages' forms change what the API holds, and offer only
/// what the user may do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_forms_do_what_they_say() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let digest = world(&s).await;
        let mut admin = Browser::new(&s);
        assert_eq!(admin.sign_in("admin", common::ADMIN_PASSWORD).await, 303);
        let csrf = admin.csrf().await;
        // An organization made from the account page opens on its own page.
        let (st, _, h) = submit(&mut admin, &csrf, &[("op", "org_create"), ("name", "widgets")]).await;
        assert_eq!(st, 303, "{label}");
        assert!(
            location(&h).starts_with("/ui/namespace?name=widgets&msg="),
            "{}",
            location(&h)
        );
        let (st, page, _) = admin.get("/ui/namespace?name=widgets").await;
        assert!(st == 200 && page.contains("owners"), "{label}: {page}");
        // Teams and members.
        let back = "/ui/namespace?name=acme";
        let (st, _, h) = submit(
            &mut admin,
            &csrf,
            &[
                ("op", "team_create"),
                ("namespace", "acme"),
                ("name", "dev"),
                ("back", back),
            ],
        )
        .await;
        assert_eq!(st, 303, "{label}");
        assert!(
            location(&h).starts_with("/ui/namespace?name=acme&msg="),
            "{}",
            location(&h)
        );
        assert_eq!(
            submit(
                &mut admin,
                &csrf,
                &[
                    ("op", "member_add"),
                    ("namespace", "acme"),
                    ("team", "dev"),
                    ("account", "reader")
                ]
            )
            .await
            .0,
            303
        );
        let (_, org) = call(&s, Method::GET, "/api/v1/orgs/acme", Value::Null).await;
        let team = org["teams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "dev")
            .unwrap()
            .clone();
        assert_eq!(team["members"], json!(["reader"]), "{label}: {org}");
        let (st, page, _) = admin.get("/ui/namespace?name=acme").await;
        assert!(
            st == 200 && page.contains("dev") && page.contains("reader"),
            "{label}: {page}"
        );
        // A bad value comes back as the API's message, not an error page.
        let (st, _, h) = submit(
            &mut admin,
            &csrf,
            &[
                ("op", "team_create"),
                ("namespace", "acme"),
                ("name", "Bad Name!"),
                ("back", back),
            ],
        )
        .await;
        assert_eq!(st, 303);
        assert!(!location(&h).ends_with("done"), "{}", location(&h));
        // A token is shown once, and works.
        let (st, page, _) = submit(
            &mut admin,
            &csrf,
            &[
                ("op", "token_create"),
                ("account", "admin"),
                ("name", "ui"),
                ("scopes", "acme/*:pull"),
            ],
        )
        .await;
        assert_eq!(st, 200, "{label}: {page}");
        let at = page.find("pct_").expect("the new token is on the page");
        let token: String = page[at..].chars().take_while(|c| *c != '<').collect();
        // And how to use it: on the API, and with registry clients.
        let host = s.base.trim_start_matches("http://");
        for how in [
            format!(
                "curl -H \"Authorization: Bearer {token}\" {}/api/v1/repositories",
                s.base
            ),
            format!("skopeo login --tls-verify=false -u admin --password-stdin {host}"),
        ] {
            assert!(page.contains(&how), "{label}: {how:?} in {page}");
        }
        let r = s
            .anon
            .get(s.url("/auth/token?scope=repository:acme/app:pull"))
            .basic_auth("admin", Some(&token))
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert_eq!(
            status,
            200,
            "{label}: the token {token:?} from the page works: {}",
            r.text().await.unwrap()
        );
        let (_, page, _) = admin.get("/ui/account?name=admin").await;
        assert!(
            page.contains("ui") && !page.contains(&token),
            "{label}: listed, never shown again"
        );
        // A webhook, its test delivery and the delivery log.
        assert_eq!(
            submit(
                &mut admin,
                &csrf,
                &[
                    ("op", "repository_webhook_create"),
                    ("repository", "acme/app"),
                    ("url", "http://127.0.0.1:9/hook?token=ui-hook-t0k3n"),
                    ("secret", "a-long-enough-hook-secret"),
                    ("event_TAG_PUSH", "on"),
                ]
            )
            .await
            .0,
            303
        );
        let (_, hooks) = call(&s, Method::GET, "/api/v1/repositories/acme/app/webhooks", Value::Null).await;
        let id = hooks[0]["id"].as_str().unwrap().to_string();
        assert_eq!(hooks[0]["events"], json!(["TAG_PUSH"]), "{hooks}");
        assert_eq!(
            submit(&mut admin, &csrf, &[("op", "webhook_test"), ("id", &id)])
                .await
                .0,
            303
        );
        let (st, page, _) = admin.get(&format!("/ui/webhook?id={id}")).await;
        assert_eq!(st, 200);
        assert!(page.contains("Redeliver"), "{label}: a delivery is listed: {page}");
        assert!(!page.contains("a-long-enough-hook-secret"), "the secret is never shown");
        // Nor the URL's query string: the page shows the API's redacted URL.
        for path in [
            format!("/ui/webhook?id={id}"),
            "/ui/repository/settings?name=acme/app".into(),
        ] {
            let (st, page, _) = admin.get(&path).await;
            assert_eq!(st, 200, "{label}: {path}");
            assert!(
                page.contains("127.0.0.1:9/hook?token=…") && !page.contains("ui-hook-t0k3n"),
                "{label}: {path}: {page}"
            );
        }
        // The namespace's hooks apply to the repository: its settings list
        // them, for those who may see them (not the reader, below).
        let ns_hook = json!({"url": "http://127.0.0.1:9/acme-namespace-hook", "secret": "a-long-enough-hook-secret",
                             "events": ["PROMOTION"]});
        let (st, v) = call(&s, Method::POST, "/api/v1/namespaces/acme/webhooks", ns_hook).await;
        assert_eq!(st, 201, "{v}");
        let (_, page, _) = admin.get("/ui/repository/settings?name=acme/app").await;
        let section = page.split("id=\"namespace-hooks\"").nth(1).unwrap_or_default();
        assert!(
            section.contains("acme-namespace-hook")
                && section.contains(&format!("/ui/webhook?id={}", v["id"].as_str().unwrap()))
                && section.contains("PROMOTION")
                && !section.contains("ui-hook-t0k3n"),
            "{label}: {page}"
        );
        // Settings: saved through the form, the pull rule from its fields;
        // a rule the registry refuses is refused.
        let settings = |severity: &'static str| {
            [
                ("op", "repository_update"),
                ("repository", "acme/app"),
                ("visibility", "public"),
                ("scan_on_push", "on"),
                ("patterns", "v*\nrelease-*"),
                ("rule_deny_severity", severity),
                ("rule_deny_unscanned", "on"),
                ("rule_teams", "acme/dev"),
            ]
        };
        let f = settings("critical");
        let (st, body, _) = submit(&mut admin, &csrf, &f).await;
        assert_eq!(st, 303, "{label}: {body}");
        let (_, repo) = call(&s, Method::GET, "/api/v1/repositories/acme/app", Value::Null).await;
        assert_eq!(repo["visibility"], "public", "{label}: {repo}");
        assert_eq!(repo["immutable_tag_patterns"], json!(["v*", "release-*"]), "{repo}");
        assert_eq!(repo["pull_rule"]["deny_severity"], "critical", "{repo}");
        assert_eq!(repo["pull_rule"]["deny_unscanned"], true, "{repo}");
        assert_eq!(
            repo["pull_rule"]["require_signed_by"]["teams"],
            json!(["acme/dev"]),
            "{repo}"
        );
        // The form shows the saved rule in its fields.
        let (_, page, _) = admin.get("/ui/repository/settings?name=acme/app").await;
        let fieldset = page.split("id=\"pull-rule\"").nth(1).unwrap_or_default();
        assert!(
            fieldset.contains("<option value=\"critical\" selected>")
                && fieldset.contains("name=\"rule_deny_unscanned\" checked")
                && fieldset.contains(">acme/dev</textarea>"),
            "{label}: {fieldset}"
        );
        // The registry's refusal comes back as the page's message; the
        // saved rule stays.
        let f = settings("severe");
        let (st, _, h) = submit(&mut admin, &csrf, &f).await;
        assert_eq!(st, 303, "{label}");
        assert!(location(&h).contains("severe"), "{label}: {}", location(&h));
        let (_, repo) = call(&s, Method::GET, "/api/v1/repositories/acme/app", Value::Null).await;
        assert_eq!(repo["pull_rule"]["deny_severity"], "critical", "{label}: {repo}");
        // The database's update sources, set on the administration page.
        let feed = tempfile::tempdir().unwrap();
        let url = format!("file://{}/", feed.path().display());
        let back = ("back", "/ui/admin/vulndb");
        let list = format!("{url}\r\n");
        let f = [("op", "vulndb_sources"), ("sources", list.as_str()), back];
        assert_eq!(submit(&mut admin, &csrf, &f).await.0, 303, "{label}");
        let (_, v) = call(&s, Method::GET, "/api/v1/vulndb/sources", Value::Null).await;
        assert_eq!(
            (&v["sources"], &v["from"]),
            (&json!([url]), &json!("api")),
            "{label}: {v}"
        );
        let (_, page, _) = admin.get("/ui/admin/vulndb").await;
        assert!(page.contains(&format!(">{url}</textarea>")), "{label}: {page}");
        let f = [("op", "vulndb_sources"), ("sources", "ftp://mirror.example/osv"), back];
        let (st, _, h) = submit(&mut admin, &csrf, &f).await;
        let to = h["location"].to_str().unwrap();
        assert!(
            st == 303 && to.contains("scheme"),
            "{label}: the API's refusal is shown: {to}"
        );
        let f = [
            ("op", "vulndb_sources"),
            ("sources", ""),
            ("from_configuration", "on"),
            back,
        ];
        assert_eq!(submit(&mut admin, &csrf, &f).await.0, 303, "{label}");
        let (_, v) = call(&s, Method::GET, "/api/v1/vulndb/sources", Value::Null).await;
        assert_eq!(v["from"], "configuration", "{label}: {v}");
        // A policy edited through its form keeps its id and takes the new values.
        let body = json!({"target": "acme/other", "tag_template": "%n",
            "rules": [{"field": "tag", "operator": "eq", "values": ["never"]}]});
        let (st, created) = call(&s, Method::POST, "/api/v1/repositories/acme/app/policies", body).await;
        assert_eq!(st, 201, "{created}");
        let id = created["id"].as_str().unwrap().to_string();
        let (_, page, _) = admin.get("/ui/policies?repository=acme/app").await;
        assert!(
            page.contains("Save policy") && page.contains("value=\"never\""),
            "{label}: the edit form holds the rule"
        );
        // Its evaluations are listed (the API answers a bare list).
        let apply = format!("/api/v1/repositories/acme/app/policies/{id}/apply");
        let (st, applied) = call(&s, Method::POST, &apply, Value::Null).await;
        assert_eq!(st, 200, "{applied}");
        let (_, page, _) = admin.get("/ui/policies?repository=acme/app").await;
        assert!(
            page.contains("<td>v1</td><td>failed</td>") && !page.contains("none yet"),
            "{label}: the policy page shows no evaluation: {page}"
        );
        let edit = [
            ("csrf", csrf.as_str()),
            ("repository", "acme/app"),
            ("id", id.as_str()),
            ("target", "acme/other"),
            ("tag_template", "rel-%n"),
            ("field1", "tag"),
            ("operator1", "one_of"),
            ("values1", "v1, v2"),
            ("field2", ""),
            ("disabled", "on"),
        ];
        let (st, _, h) = admin.post("/ui/policies", &edit).await;
        assert_eq!(st, 303, "{label}");
        assert!(location(&h).contains("saved"), "{}", location(&h));
        let (_, p) = call(
            &s,
            Method::GET,
            &format!("/api/v1/repositories/acme/app/policies/{id}"),
            Value::Null,
        )
        .await;
        assert_eq!(p["tag_template"], "rel-%n", "{p}");
        assert_eq!(p["enabled"], false, "{p}");
        assert_eq!(
            p["rules"],
            json!([{"field": "tag", "operator": "one_of", "values": ["v1", "v2"]}]),
            "{p}"
        );
        // An index's page lists its images, each with its own shield and page.
        let image = s.manifest_bytes("acme/app", "v1").await;
        let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
                           "size": image.len(), "platform": {"architecture": "amd64", "os": "linux"}}]});
        let r = s.put_index("acme/app", "multi", index.to_string().into_bytes()).await;
        assert_eq!(r.status(), 201, "{label}");
        let index_digest = r.headers()["docker-content-digest"].to_str().unwrap().to_string();
        let (st, page, _) = admin
            .get(&format!(
                "/ui/image?repository=acme/app&digest={index_digest}&tag=multi"
            ))
            .await;
        assert_eq!(st, 200, "{label}: {page}");
        assert!(
            page.contains("id=\"platforms\"") && page.contains("linux/amd64"),
            "{label}: {page}"
        );
        assert!(
            page.contains(&format!("digest={}", digest.replace(':', "%3A"))),
            "{label}: links to the image"
        );
        // The reader sees the settings and the image, without the forms.
        let mut reader = Browser::new(&s);
        assert_eq!(reader.sign_in("reader", PW).await, 303);
        let (st, page, _) = reader.get("/ui/repository/settings?name=acme/app").await;
        assert_eq!(st, 200);
        assert!(
            !page.contains("id=\"repository-settings\"") && page.contains("critical"),
            "{label}: {page}"
        );
        assert!(
            !page.contains("namespace-hooks") && !page.contains("acme-namespace-hook"),
            "{label}: the reader may not see the namespace's hooks: {page}"
        );
        let (st, page, _) = reader
            .get(&format!("/ui/image?repository=acme/app&digest={digest}"))
            .await;
        assert_eq!(st, 200);
        assert!(!page.contains("Scan now"), "{label}: a reader cannot scan");
        let (_, page, _) = admin
            .get(&format!("/ui/image?repository=acme/app&digest={digest}"))
            .await;
        assert!(page.contains("Scan now"), "{label}");
    }
}

/// A repository named like an API route (`team/policies`, `team/tags`,
/// `team/history`) is reached through the API with its `/` encoded, and its
/// UI page (which calls the API that way) shows it; the plain API path
/// keeps meaning the route. Both databases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repositories_named_like_api_routes_are_reachable() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let mut b = Browser::new(&s);
        assert_eq!(b.sign_in("admin", common::ADMIN_PASSWORD).await, 303);
        for name in ["team/policies", "team/tags", "team/history"] {
            let config = format!("{{\"repository\":\"{name}\"}}");
            s.push_image(name, "v1", config.as_bytes(), &[name.as_bytes()]).await;
            let api = format!("/api/v1/repositories/{}", name.replace('/', "%2F"));
            let (st, v) = call(&s, Method::GET, &api, Value::Null).await;
            assert_eq!((st, v["name"].as_str()), (200, Some(name)), "{label}: {v}");
            let (st, v) = call(&s, Method::PUT, &api, json!({"visibility": "public"})).await;
            assert_eq!(
                (st, v["visibility"].as_str()),
                (200, Some("public")),
                "{label} {name}: {v}"
            );
            let (st, v) = call(&s, Method::GET, &format!("{api}/tags"), Value::Null).await;
            assert_eq!(
                (st, v["tags"][0]["name"].as_str()),
                (200, Some("v1")),
                "{label} {name}: {v}"
            );
            let (st, page, _) = b
                .get(&format!("/ui/repository?name={}", name.replace('/', "%2F")))
                .await;
            assert_eq!(st, 200, "{label} {name}");
            assert!(page.contains(name) && page.contains(">v1<"), "{label} {name}: {page}");
        }
        // The plain path is the route: the (empty) findings history of `team`.
        let (st, v) = call(&s, Method::GET, "/api/v1/repositories/team/history", Value::Null).await;
        assert_eq!(st, 200, "{label}: {v}");
        assert!(v["days"].is_array() && v["name"].is_null(), "{label}: {v}");
    }
}

/// The audit page's "How" column says how each actor came in: a password
/// on the management API, or which API token, and from where. Both
/// databases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_page_says_how_each_actor_came_in() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        s.push_image("acme/app", "v1", b"{\"how\":1}", &[b"how layer"]).await;
        let api = "/api/v1/repositories/acme%2Fapp";
        let r = s
            .anon
            .put(s.url(api))
            .basic_auth("admin", Some(common::ADMIN_PASSWORD))
            .json(&json!({"visibility": "public"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{label}");
        let (st, v) = call(
            &s,
            Method::POST,
            "/api/v1/accounts/admin/tokens",
            json!({"name": "how", "scopes": ["acme/*:pull,push,delete"]}),
        )
        .await;
        assert_eq!(st, 201, "{label}: {v}");
        let (token, id) = (v["token"].as_str().unwrap(), v["id"].as_str().unwrap());
        let r = s
            .anon
            .put(s.url(api))
            .bearer_auth(token)
            .json(&json!({"visibility": "private"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{label}");
        let mut b = Browser::new(&s);
        assert_eq!(b.sign_in("admin", common::ADMIN_PASSWORD).await, 303);
        let (st, page, _) = b.get("/ui/audit?action=repository.update").await;
        assert_eq!(st, 200, "{label}");
        let row = |how: &str| format!("<td>admin</td><td>{how}</td><td>repository.update</td>");
        assert!(page.contains(&row("password from 127.0.0.1")), "{label}: {page}");
        assert!(
            page.contains(&row(&format!("token {id} from 127.0.0.1"))),
            "{label}: {page}"
        );
    }
}

/// An artifact manifest (one layer of `layer_type`) tagged `tag` in `repo`.
async fn push_artifact(s: &TestServer, repo: &str, tag: &str, layer_type: &str, layer: &[u8]) {
    let config = s.push_blob(repo, b"{}").await;
    let layer_digest = s.push_blob(repo, layer).await;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": 2},
        "layers": [{"mediaType": layer_type, "digest": layer_digest.to_string(), "size": layer.len()}],
    });
    let r = s.put_manifest(repo, tag, serde_json::to_vec(&manifest).unwrap()).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

/// Cosign's `sha256-<hex>.sig` and `.att` tags holding a signature or an
/// attestation are shown under the image they name, not as tags, and the
/// repository list does not count them. A runnable image tagged so stays a
/// tag row: naming a tag cannot hide an image under another's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signature_tags_sit_under_their_image() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let mut b = Browser::new(&s);
        assert_eq!(b.sign_in("admin", common::ADMIN_PASSWORD).await, 303);
        let (image, _) = s.push_image("acme/app", "v1", b"{\"image\":1}", &[b"app layer"]).await;
        let hex = image.hex().to_string();
        let sig = format!("sha256-{hex}.sig");
        let att = format!("sha256-{hex}.att");
        push_artifact(
            &s,
            "acme/app",
            &sig,
            "application/vnd.dev.cosign.simplesigning.v1+json",
            b"{\"sig\":1}",
        )
        .await;
        push_artifact(
            &s,
            "acme/app",
            &att,
            "application/vnd.dsse.envelope.v1+json",
            b"{\"att\":1}",
        )
        .await;
        // A runnable image named as v1's SBOM: a tag of its own.
        let disguised = format!("sha256-{hex}.sbom");
        s.push_image("acme/app", &disguised, b"{\"disguised\":1}", &[b"disguised layer"])
            .await;
        // A signature of an image that is not here: a row of its own.
        let stray = format!("sha256-{}.sig", "0".repeat(64));
        push_artifact(
            &s,
            "acme/app",
            &stray,
            "application/vnd.dev.cosign.simplesigning.v1+json",
            b"{\"stray\":1}",
        )
        .await;

        let (_, v) = call(&s, Method::GET, "/api/v1/repositories/acme/app/tags", Value::Null).await;
        let of: Vec<(String, Value)> = view_items(&v["tags"])
            .map(|t| (t["name"].as_str().unwrap().to_string(), t["accessory_of"].clone()))
            .collect();
        for (name, accessory) in &of {
            let want = if *name == sig {
                json!({"digest": image.to_string(), "kind": "signature"})
            } else if *name == att {
                json!({"digest": image.to_string(), "kind": "attestation"})
            } else if *name == stray {
                json!({"digest": format!("sha256:{}", "0".repeat(64)), "kind": "signature"})
            } else {
                Value::Null
            };
            assert_eq!(accessory, &want, "{label}: {name}");
        }

        let (st, page, _) = b.get("/ui/repository?name=acme%2Fapp").await;
        assert_eq!(st, 200, "{label}");
        let rows: Vec<&str> = page
            .split("data-tag=\"")
            .skip(1)
            .map(|r| r.split('"').next().unwrap())
            .collect();
        let mut want = vec![stray.as_str(), disguised.as_str(), "v1"];
        want.sort();
        assert_eq!(rows, want, "{label}: {page}");
        let v1_row = page
            .split("data-tag=\"v1\"")
            .nth(1)
            .unwrap()
            .split("</tr>")
            .next()
            .unwrap();
        for (tag, kind) in [(&sig, "signature"), (&att, "attestation")] {
            assert!(
                v1_row.contains(&format!("data-accessory=\"{tag}\">{kind}: ")),
                "{label}: {tag} under v1: {v1_row}"
            );
        }
        assert!(
            !v1_row.contains(&disguised),
            "{label}: the disguised image is not under v1"
        );
        let (_, v) = call(&s, Method::GET, "/api/v1/repositories?q=acme", Value::Null).await;
        // The count goes by name alone (the list does not read manifests):
        // tags named like accessories are not counted.
        assert_eq!(v["repositories"][0]["tags"], 1, "{label}: only v1: {v}");
    }
}

fn view_items(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

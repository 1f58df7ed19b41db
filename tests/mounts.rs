//! Cross-repository mounts every client can use, on SQLite and PostgreSQL:
//! the 401 for `?mount=D&from=R` names both scopes, so a token fetched for
//! exactly the challenged scopes mounts (201) instead of uploading (202);
//! a token for the target alone is challenged again (insufficient_scope),
//! and one that asked for the source and was refused uploads;
//! a mount without `from` (OCI 1.1) mounts from a repository the caller
//! may pull, and otherwise answers exactly as if the blob did not exist.

mod common;

use common::{backends, TestServer};
use serde_json::{json, Value};

const PW: &str = "mount-test-password";

/// The `scope` parameter of a `WWW-Authenticate` challenge.
fn challenged_scopes(r: &reqwest::Response) -> Vec<String> {
    let header = r.headers()["www-authenticate"].to_str().unwrap();
    let scope = header
        .split("scope=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no scope in {header}"));
    scope.split(' ').map(String::from).collect()
}

/// What a response reveals, with the session's and the request's random ids taken out.
async fn shape(r: reqwest::Response) -> (u16, Vec<String>, String) {
    let status = r.status().as_u16();
    let mut headers: Vec<String> = r
        .headers()
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "date" | "location" | "docker-upload-uuid" | "x-request-id"))
        .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap()))
        .collect();
    headers.sort();
    (status, headers, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounts_from_the_challenge_alone_and_without_from() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let call = |method: reqwest::Method, path: &'static str, body: Value| {
            let r = s.http.request(method, s.url(path)).json(&body);
            async move { r.send().await.unwrap().status().as_u16() }
        };
        for u in ["dev", "stranger"] {
            let user = json!({"name": u, "password": PW});
            assert_eq!(call(reqwest::Method::POST, "/api/v1/users", user).await, 201);
        }
        assert_eq!(
            call(reqwest::Method::POST, "/api/v1/orgs", json!({"name": "acme"})).await,
            201
        );
        assert_eq!(
            call(reqwest::Method::POST, "/api/v1/orgs", json!({"name": "secret"})).await,
            201
        );
        let grant = json!({"account": "dev", "role": "write"});
        assert_eq!(
            call(reqwest::Method::POST, "/api/v1/namespaces/acme/grants", grant).await,
            201
        );
        let base = s.push_blob("acme/base", b"base layer everyone here shares").await;
        let hidden = s.push_blob("secret/x", b"a layer dev may not read").await;
        let absent = portcullis_oci::Digest::sha256_of(b"never pushed");

        // The challenge names the target's and the source's scopes; a token
        // for exactly those mounts.
        let post = |path: String| s.anon.post(s.url(&path));
        let r = post(format!("/v2/acme/app/blobs/uploads/?mount={base}&from=acme/base"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{label}");
        let scopes = challenged_scopes(&r);
        assert_eq!(
            scopes,
            ["repository:acme/app:pull,push", "repository:acme/base:pull"],
            "{label}"
        );
        let t = s.registry_token("dev", PW, &scopes).await;
        let r = post(format!("/v2/acme/app/blobs/uploads/?mount={base}&from=acme/base"))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{label}: {}", r.text().await.unwrap());
        // A token for the target only is challenged again with both scopes
        // (401 insufficient_scope, as Distribution answers); the wider token
        // it names mounts.
        let narrow = s.registry_token("dev", PW, &["repository:acme/app2:pull,push"]).await;
        let mount_app2 = format!("/v2/acme/app2/blobs/uploads/?mount={base}&from=acme/base");
        let r = post(mount_app2.clone()).bearer_auth(&narrow).send().await.unwrap();
        assert_eq!(r.status(), 401, "{label}");
        let header = r.headers()["www-authenticate"].to_str().unwrap().to_string();
        assert!(header.contains("error=\"insufficient_scope\""), "{label}: {header}");
        let scopes = challenged_scopes(&r);
        assert_eq!(
            scopes,
            ["repository:acme/app2:pull,push", "repository:acme/base:pull"],
            "{label}"
        );
        let wider = s.registry_token("dev", PW, &scopes).await;
        let r = post(mount_app2).bearer_auth(&wider).send().await.unwrap();
        assert_eq!(r.status(), 201, "{label}: {}", r.text().await.unwrap());
        // A source the account may not read: the token lists it with no
        // actions (asked for, refused), so the mount falls back to an upload
        // rather than challenging forever.
        let refused = s
            .registry_token(
                "dev",
                PW,
                &["repository:acme/app6:pull,push", "repository:secret/x:pull"],
            )
            .await;
        let r = post(format!("/v2/acme/app6/blobs/uploads/?mount={hidden}&from=secret/x"))
            .bearer_auth(&refused)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{label}");
        let r = s
            .anon
            .head(s.url(&format!("/v2/acme/app6/blobs/{hidden}")))
            .bearer_auth(&refused)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{label}: nothing was linked");

        // Without `from`: a repository the caller may pull holds it: mounted.
        // (dev's API token may do anything dev's grants allow.)
        let r = s
            .http
            .post(s.url("/api/v1/accounts/dev/tokens"))
            .json(&json!({"name": "ci", "scopes": ["*:pull,push"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let api_token = r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
        let r = post(format!("/v2/acme/app3/blobs/uploads/?mount={base}"))
            .bearer_auth(&api_token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{label}");
        assert_eq!(r.headers()["location"], format!("/v2/acme/app3/blobs/{base}").as_str());
        let with_scope = s.registry_token("dev", PW, &scopes_for("acme/app4", "acme/base")).await;
        let r = post(format!("/v2/acme/app4/blobs/uploads/?mount={base}"))
            .bearer_auth(&with_scope)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{label}: a token naming the source");
        // The conformance suite's automatic cross-mount: the blob is in the
        // target already, and a client asks for exactly the challenged
        // scope, which names pull as well as push.
        let r = post(format!("/v2/acme/app3/blobs/uploads/?mount={base}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{label}");
        let scopes = challenged_scopes(&r);
        assert_eq!(scopes, ["repository:acme/app3:pull,push"], "{label}");
        let exact = s.registry_token("dev", PW, &scopes).await;
        let r = post(format!("/v2/acme/app3/blobs/uploads/?mount={base}"))
            .bearer_auth(&exact)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{label}: {}", r.text().await.unwrap());

        // Held only where dev may not read: the same answer as a blob that
        // exists nowhere (a plain upload session), and no link made.
        let hidden_answer = shape(
            post(format!("/v2/acme/app5/blobs/uploads/?mount={hidden}"))
                .bearer_auth(&api_token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        let absent_answer = shape(
            post(format!("/v2/acme/app5/blobs/uploads/?mount={absent}"))
                .bearer_auth(&api_token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(hidden_answer.0, 202, "{label}");
        assert_eq!(hidden_answer, absent_answer, "{label}");
        let r = s
            .anon
            .head(s.url(&format!("/v2/acme/app5/blobs/{hidden}")))
            .bearer_auth(&api_token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{label}");
    }
}

fn scopes_for(target: &str, source: &str) -> Vec<String> {
    vec![
        format!("repository:{target}:pull,push"),
        format!("repository:{source}:pull"),
    ]
}

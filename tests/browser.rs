//! The web UI in headless Chromium (Debian's), driven by playwright-core
//! from npm (`tests/node/ui_browser.js`): sign in, upload a vulnerability
//! database, find an image and the layer that brought its vulnerable
//! component, create a promotion policy, push a clean build with skopeo and
//! see it PROMOTED and SIGNED (its signature tag under it) and its
//! evaluation on the policy's page, and see a reader refused. Screenshots of the
//! main pages go to `target/ui-screenshots/` (not committed).

mod common;

use common::{backends, call, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

const PW: &str = "long-enough-password";
const NPM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vulndb/npm.osv.jsonl.gz");

async fn ok(s: &TestServer, method: Method, path: &str, body: Value) -> Value {
    let (st, v) = call(s, method, path, body).await;
    assert!((200..300).contains(&st), "{path}: {st} {v}");
    v
}

/// skopeo's arguments to push a one-layer image holding an npm package
/// to `acme/build:TAG`.
fn skopeo_push_args(s: &TestServer, work: &std::path::Path, tag: &str, package: &str, version: &str) -> Vec<String> {
    let layout = work.join(tag);
    common::write_npm_layout(&layout, package, version);
    let host = s.base.trim_start_matches("http://");
    vec![
        "copy".into(),
        "--dest-tls-verify=false".into(),
        "--dest-creds".into(),
        format!("admin:{}", common::ADMIN_PASSWORD),
        format!("oci:{}:latest", layout.display()),
        format!("docker://{host}/acme/build:{tag}"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supply_chain_in_a_browser() {
    for tool in ["skopeo", "chromium", "node"] {
        assert!(common::have_tool(tool), "{tool} is needed (test.sh installs it)");
    }
    let modules = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node/node_modules/playwright-core");
    assert!(
        std::path::Path::new(modules).is_dir(),
        "playwright-core is needed (test.sh runs npm ci)"
    );
    let shots = concat!(env!("CARGO_MANIFEST_DIR"), "/target/ui-screenshots");
    std::fs::create_dir_all(shots).unwrap();
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let work = tempfile::tempdir().unwrap();
        // A reader of the build repository; the CI's identity with a
        // server-made signing key, member of the trusted team.
        ok(
            &s,
            Method::POST,
            "/api/v1/users",
            json!({"name": "rita", "password": PW}),
        )
        .await;
        for org in ["acme", "ci"] {
            ok(&s, Method::POST, "/api/v1/orgs", json!({"name": org})).await;
        }
        ok(&s, Method::POST, "/api/v1/orgs/ci/teams", json!({"name": "gitlab"})).await;
        let sa = json!({"name": "release"});
        ok(&s, Method::POST, "/api/v1/namespaces/ci/service-accounts", sa).await;
        ok(
            &s,
            Method::PUT,
            "/api/v1/orgs/ci/teams/gitlab/members/ci+release",
            Value::Null,
        )
        .await;
        let key = ok(&s, Method::POST, "/api/v1/accounts/ci+release/signing-key", Value::Null).await;
        let grant = json!({"account": "rita", "repository": "acme/build", "role": "read"});
        ok(&s, Method::POST, "/api/v1/namespaces/acme/grants", grant).await;
        // Build 41 carries mqtt-packet 6.1.1 (a high finding in the npm
        // advisories the browser will upload); 42 is clean, pushed later.
        let push41 = skopeo_push_args(&s, work.path(), "41", "mqtt-packet", "6.1.1");
        let out = tokio::process::Command::new("skopeo")
            .args(&push41)
            .env("HOME", work.path())
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let push42 = skopeo_push_args(&s, work.path(), "42", "portcullis-demo-widget", "1.0.0");

        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node/ui_browser.js");
        let out = tokio::process::Command::new("node")
            .arg(script)
            .env("UI_BASE", &s.base)
            .env("UI_SCREENSHOTS", shots)
            .env("UI_LABEL", label)
            .env("CHROMIUM", "/usr/bin/chromium")
            .env("ADMIN_PASSWORD", common::ADMIN_PASSWORD)
            .env("READER_PASSWORD", PW)
            .env("VULNDB_FILE", NPM)
            .env("PUSH_CLEAN", serde_json::to_string(&push42).unwrap())
            .env("SKOPEO_HOME", work.path())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(std::time::Duration::from_secs(240), out)
            .await
            .expect("the browser run finished within 4 minutes")
            .unwrap();
        assert!(
            out.status.success(),
            "{label}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // What the browser saw is what the API says.
        let tags = ok(&s, Method::GET, "/api/v1/repositories/acme/release/tags", Value::Null).await;
        let t = &tags["tags"][0];
        assert_eq!(t["name"], "42", "{label}: {tags}");
        assert_eq!(t["signed"]["status"], "verified", "{tags}");
        assert_eq!(t["signed"]["key_id"], key["key_id"], "{tags}");
        assert_eq!(t["promoted_from"]["repository"], "acme/build", "{tags}");
        let (_, audit) = call(&s, Method::GET, "/api/v1/audit?action=vulndb.import", Value::Null).await;
        assert_eq!(audit["records"][0]["actor"], "admin", "{audit}");
        let screenshots = std::fs::read_dir(shots)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(label))
            .count();
        assert!(screenshots >= 10, "{label}: {screenshots} screenshots");
    }
}

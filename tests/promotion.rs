//! Promotion policies end to end, on SQLite and PostgreSQL, with skopeo
//! pushing and pulling and the real npm advisories from `../shared/vulndb`:
//! CI pushes builds to an immutable build repository, a policy promotes
//! the clean one to the release repository and keeps back the one that
//! carries mqtt-packet 6.1.1 (NSWG-ECO-500 / CVE-2019-5432, CVSS 3.0
//! `AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H`, base score 7.5: High), and a
//! later database without that advisory lets it through.

mod common;

use std::path::Path;

use common::{backends, call, have_tool, tar_of, until, write_layout, TestServer, ADMIN_PASSWORD};
use portcullis_vulndb::{Limits, NoProgress, VulnDb};
use serde_json::{json, Value};

const NPM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vulndb/npm.osv.jsonl.gz");

async fn skopeo(args: &[&str], home: &Path) -> std::process::Output {
    tokio::process::Command::new("skopeo")
        .args(args)
        .env("HOME", home)
        .output()
        .await
        .unwrap()
}

/// An image whose only content is one npm package at one version.
fn npm_image(dir: &Path, name: &str, version: &str) {
    let manifest = format!("{{\"name\": \"{name}\", \"version\": \"{version}\"}}");
    write_layout(
        dir,
        "latest",
        &[tar_of(&[(
            &format!("app/node_modules/{name}/package.json"),
            manifest.as_bytes(),
        )])],
    );
}

/// A registry with the real npm advisories loaded and organization `acme`;
/// and a work directory.
async fn acme_with_npm_advisories(backend: &common::Backend) -> (TestServer, tempfile::TempDir) {
    let s = TestServer::start(backend).await;
    import(&s, &[NPM.into()]);
    let (st, _) = call(&s, reqwest::Method::POST, "/api/v1/orgs", json!({"name": "acme"})).await;
    assert_eq!(st, 201);
    (s, tempfile::tempdir().unwrap())
}

fn import(s: &TestServer, inputs: &[std::path::PathBuf]) {
    VulnDb::in_data_dir(s.dir.path())
        .import(inputs, true, &Limits::default(), &NoProgress)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_builds_are_promoted_and_vulnerable_ones_are_not() {
    if !have_tool("skopeo") {
        return;
    }
    for backend in backends() {
        let (s, work) = acme_with_npm_advisories(&backend).await;
        let label = s.label();
        let home = work.path();
        let (st, _) = call(
            &s,
            reqwest::Method::PUT,
            "/api/v1/repositories/acme/app-build",
            json!({"immutable_tags": true}),
        )
        .await;
        assert_eq!(st, 200);
        let (st, policy) = call(
            &s,
            reqwest::Method::POST,
            "/api/v1/repositories/acme/app-build/policies",
            json!({"target": "acme/app", "tag_template": "%n", "enabled": true, "rules": [
                {"field": "vulnerability_critical", "operator": "lte", "values": ["0"]},
                {"field": "vulnerability_high", "operator": "lte", "values": ["0"]},
            ]}),
        )
        .await;
        assert_eq!(st, 201, "{policy}");
        let id = policy["id"].as_str().unwrap().to_string();
        // A rule with an unknown field is a 400 naming it.
        let (st, bad) = call(
            &s,
            reqwest::Method::POST,
            "/api/v1/repositories/acme/app-build/policies",
            json!({"target": "acme/app", "tag_template": "%n",
                   "rules": [{"field": "vulnerability_severe", "operator": "lte", "values": ["0"]}]}),
        )
        .await;
        assert_eq!(st, 400);
        assert!(bad.to_string().contains("vulnerability_severe"), "{bad}");

        let clean = work.path().join("clean");
        npm_image(&clean, "portcullis-demo-widget", "1.0.0");
        let vulnerable = work.path().join("vulnerable");
        npm_image(&vulnerable, "mqtt-packet", "6.1.1");
        let h = s.base.trim_start_matches("http://").to_string();
        let creds = format!("admin:{ADMIN_PASSWORD}");
        let push = |layout: &Path, tag: &str| {
            let (src, dest) = (
                format!("oci:{}:latest", layout.display()),
                format!("docker://{h}/acme/app-build:{tag}"),
            );
            let creds = creds.clone();
            async move {
                skopeo(
                    &["copy", "--dest-tls-verify=false", "--dest-creds", &creds, &src, &dest],
                    home,
                )
                .await
            }
        };
        let out = push(&clean, "1").await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let out = push(&vulnerable, "2").await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

        // Build 1: scanned, then promoted; it pulls byte-identical.
        let v = until(&s, "/api/v1/repositories/acme/app/tags/1", |v| v["digest"].is_string()).await;
        assert_eq!(v["promoted_from"]["repository"], "acme/app-build", "{label}: {v}");
        assert_eq!(v["promoted_from"]["policy_id"], id.as_str());
        let raw = |repo: &str, tag: &str| {
            let (creds, url) = (creds.clone(), format!("docker://{h}/{repo}:{tag}"));
            async move {
                let out = skopeo(
                    &["inspect", "--tls-verify=false", "--creds", &creds, "--raw", &url],
                    home,
                )
                .await;
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                out.stdout
            }
        };
        assert_eq!(raw("acme/app", "1").await, raw("acme/app-build", "1").await, "{label}");
        let pulled = work.path().join("pulled");
        let out = skopeo(
            &[
                "copy",
                "--src-tls-verify=false",
                "--src-creds",
                &creds,
                &format!("docker://{h}/acme/app:1"),
                &format!("oci:{}:1", pulled.display()),
            ],
            home,
        )
        .await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

        // Build 2: scanned, High finding, not promoted; the evaluation and a
        // dry run name the failing rule and the count.
        let evals = until(
            &s,
            &format!("/api/v1/repositories/acme/app-build/policies/{id}/evaluations"),
            |v| {
                v.as_array()
                    .is_some_and(|a| a.iter().any(|e| e["tag"] == "2" && e["outcome"] == "failed"))
            },
        )
        .await;
        let failed = evals.as_array().unwrap().iter().find(|e| e["tag"] == "2").unwrap();
        let high = &failed["detail"]["images"][0]["rules"][1];
        assert_eq!(
            (high["passed"].clone(), high["facts"].clone()),
            (json!(false), json!("1 findings")),
            "{label}: {failed}"
        );
        let (st, _) = call(
            &s,
            reqwest::Method::GET,
            "/api/v1/repositories/acme/app/tags/2",
            Value::Null,
        )
        .await;
        assert_eq!(st, 404, "{label}: not promoted");
        let (st, dry) = call(
            &s,
            reqwest::Method::POST,
            &format!("/api/v1/repositories/acme/app-build/policies/{id}/dry-run"),
            json!({"tag": "2"}),
        )
        .await;
        assert_eq!(st, 200);
        assert_eq!(dry["outcome"], "failed", "{dry}");
        assert_eq!(
            dry["detail"]["images"][0]["rules"][1]["rule"]["field"],
            "vulnerability_high"
        );

        // The build repository's tags are immutable: overwriting 1 fails.
        let out = push(&vulnerable, "1").await;
        assert!(!out.status.success(), "{label}: overwrote an immutable tag");
        assert!(String::from_utf8_lossy(&out.stderr).contains("immutable"));

        // A database without that advisory: build 2 now passes and is promoted.
        let without = work.path().join("without-nswg-eco-500.osv.jsonl");
        let npm = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("gzip -dc {NPM} | grep -v '\"id\":\"NSWG-ECO-500\"'"))
            .output()
            .unwrap();
        assert!(npm.status.success());
        std::fs::write(&without, &npm.stdout).unwrap();
        import(&s, &[without]);
        let v = until(&s, "/api/v1/repositories/acme/app/tags/2", |v| v["digest"].is_string()).await;
        assert_eq!(v["promoted_from"]["tag"], "2", "{label}: {v}");
        // Every promotion left its audit record.
        let (_, audit) = call(&s, reqwest::Method::GET, "/api/v1/audit?action=promotion", Value::Null).await;
        assert_eq!(audit["records"].as_array().unwrap().len(), 2, "{label}: {audit}");
    }
}

/// Pull rules: a developer can't pull the manifest of a vulnerable image, of
/// one never scanned, or of one whose scan failed, when the repository's or
/// namespace's rule says so; blobs stay pullable; administrators are exempt;
/// clearing the rule takes effect at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_rules_refuse_vulnerable_unscanned_and_failed_images() {
    if !have_tool("skopeo") {
        return;
    }
    const PW: &str = "developer-password";
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        import(&s, &[NPM.into()]);
        let post = |path: &'static str, body: Value| call(&s, reqwest::Method::POST, path, body);
        assert_eq!(
            post("/api/v1/users", json!({"name": "dev", "password": PW})).await.0,
            201
        );
        assert_eq!(post("/api/v1/orgs", json!({"name": "acme"})).await.0, 201);
        let grant = json!({"account": "dev", "role": "read"});
        assert_eq!(post("/api/v1/namespaces/acme/grants", grant).await.0, 201);
        let (st, _) = call(
            &s,
            reqwest::Method::PUT,
            "/api/v1/repositories/acme/raw",
            json!({"scan_on_push": false}),
        )
        .await;
        assert_eq!(st, 200);

        let layer = |name: &str, version: &str| {
            let manifest = format!("{{\"name\": \"{name}\", \"version\": \"{version}\"}}");
            common::gzip(&tar_of(&[(
                &format!("app/node_modules/{name}/package.json"),
                manifest.as_bytes(),
            )]))
        };
        let vulnerable = layer("mqtt-packet", "6.1.1");
        let (vuln, _) = s
            .push_image("acme/app", "vuln", b"{\"v\":1}", &[vulnerable.as_slice()])
            .await;
        let (clean, _) = s
            .push_image(
                "acme/app",
                "clean",
                b"{\"c\":1}",
                &[layer("portcullis-demo-widget", "1.0.0").as_slice()],
            )
            .await;
        let (broken, _) = s
            .push_image(
                "acme/app",
                "broken",
                b"{\"b\":1}",
                &[common::gzip(b"not a tar archive").as_slice()],
            )
            .await;
        s.push_image("acme/raw", "1", b"{\"r\":1}", &[layer("left-pad", "1.3.0").as_slice()])
            .await;
        // Done, and matched against the imported database (the server may
        // have scanned before it loaded it; the re-match follows).
        for (digest, want) in [(&vuln, "done"), (&clean, "done"), (&broken, "failed")] {
            until(&s, &format!("/api/v1/scans/{digest}?repository=acme/app"), |v| {
                v["status"] == want && (want == "failed" || v["database_generation"].is_i64())
            })
            .await;
        }

        let (st, v) = call(
            &s,
            reqwest::Method::PUT,
            "/api/v1/repositories/acme/app",
            json!({"pull_rule": {"deny_severity": "high", "deny_failed": true}}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["pull_rule"]["deny_severity"], "high");
        let (st, v) = call(
            &s,
            reqwest::Method::PUT,
            "/api/v1/namespaces/acme/settings",
            json!({"pull_rule": {"deny_unscanned": true}}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        let (st, _) = call(
            &s,
            reqwest::Method::PUT,
            "/api/v1/repositories/acme/app",
            json!({"pull_rule": {"deny_severity": "severe"}}),
        )
        .await;
        assert_eq!(st, 400);

        let token = s
            .registry_token("dev", PW, &["repository:acme/app:pull", "repository:acme/raw:pull"])
            .await;
        let pull = |path: &str| s.anon.get(s.url(path)).bearer_auth(&token).send();
        for (path, why) in [
            ("/v2/acme/app/manifests/vuln", "1 high"),
            ("/v2/acme/app/manifests/broken", "scan failed"),
            ("/v2/acme/raw/manifests/1", "never been scanned"),
        ] {
            let r = pull(path).await.unwrap();
            assert_eq!(r.status(), 403, "{label}: {path}");
            let text = r.text().await.unwrap();
            assert!(text.contains("DENIED") && text.contains(why), "{label}: {text}");
        }
        assert_eq!(pull("/v2/acme/app/manifests/clean").await.unwrap().status(), 200);
        let layer_digest = portcullis_oci::Digest::sha256_of(&vulnerable);
        let r = pull(&format!("/v2/acme/app/blobs/{layer_digest}")).await.unwrap();
        assert_eq!(r.status(), 200, "blobs stay pullable");
        let r = s.http.get(s.url("/v2/acme/app/manifests/vuln")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{label}: administrators are exempt");

        // skopeo, as the developer, is refused with the rule's words.
        let work = tempfile::tempdir().unwrap();
        let h = s.base.trim_start_matches("http://").to_string();
        let out = skopeo(
            &[
                "inspect",
                "--tls-verify=false",
                "--creds",
                &format!("dev:{PW}"),
                "--raw",
                &format!("docker://{h}/acme/app:vuln"),
            ],
            work.path(),
        )
        .await;
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("deny_severity"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        // Clearing the repository's rule lets the vulnerable image through at once.
        let (st, _) = call(
            &s,
            reqwest::Method::PUT,
            "/api/v1/repositories/acme/app",
            json!({"pull_rule": {}}),
        )
        .await;
        assert_eq!(st, 200);
        assert_eq!(
            pull("/v2/acme/app/manifests/vuln").await.unwrap().status(),
            200,
            "{label}"
        );
    }
}

/// A multi-arch index is promoted only when every image in it passes, and
/// a policy acts with its creator's live rights: once they lose their
/// grant, it is suspended (and that is recorded once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_promote_only_whole_and_policies_keep_their_owners_rights() {
    const PW: &str = "release-lead-password";
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        import(&s, &[NPM.into()]);
        let s = &s;
        let post = |path: String, body: Value| async move { call(s, reqwest::Method::POST, &path, body).await };
        assert_eq!(
            post("/api/v1/users".into(), json!({"name": "lead", "password": PW}))
                .await
                .0,
            201
        );
        assert_eq!(post("/api/v1/orgs".into(), json!({"name": "acme"})).await.0, 201);
        let (st, grant) = post(
            "/api/v1/namespaces/acme/grants".into(),
            json!({"account": "lead", "role": "admin"}),
        )
        .await;
        assert_eq!(st, 201);
        // The lead creates the policy with their password.
        let r = s
            .anon
            .post(s.url("/api/v1/repositories/acme/build/policies"))
            .basic_auth("lead", Some(PW))
            .json(&json!({"target": "acme/release", "tag_template": "%n", "rules": [
                {"field": "vulnerability_high", "operator": "lte", "values": ["0"]}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();

        let layer = |name: &str, version: &str| {
            let manifest = format!("{{\"name\": \"{name}\", \"version\": \"{version}\"}}");
            common::gzip(&tar_of(&[(
                &format!("node_modules/{name}/package.json"),
                manifest.as_bytes(),
            )]))
        };
        let mut images = Vec::new();
        for (arch, name, version) in [
            ("amd64", "portcullis-demo-widget", "1.0.0"),
            ("arm64", "portcullis-demo-widget", "1.0.0"),
            ("s390x", "mqtt-packet", "6.1.1"),
        ] {
            let config = format!("{{\"architecture\":\"{arch}\",\"os\":\"linux\"}}");
            let (d, m) = s
                .push_image(
                    "acme/build",
                    &format!("img-{arch}"),
                    config.as_bytes(),
                    &[layer(name, version).as_slice()],
                )
                .await;
            until(s, &format!("/api/v1/scans/{d}?repository=acme/build"), |v| {
                v["status"] == "done"
            })
            .await;
            images.push((arch, d, m.len()));
        }
        let index = |archs: &[&str]| {
            let manifests: Vec<Value> = images
                .iter()
                .filter(|(a, _, _)| archs.contains(a))
                .map(|(a, d, n)| {
                    json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": d.as_str(), "size": n, "platform": {"architecture": a, "os": "linux"}})
                })
                .collect();
            serde_json::to_vec(&json!({"schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}))
            .unwrap()
        };
        for (tag, archs) in [
            ("multi-clean", vec!["amd64", "arm64"]),
            ("multi-mixed", vec!["amd64", "s390x"]),
        ] {
            let r = s.put_index("acme/build", tag, index(&archs)).await;
            assert_eq!(r.status(), 201);
        }
        let v = until(s, "/api/v1/repositories/acme/release/tags/multi-clean", |v| {
            v["digest"].is_string()
        })
        .await;
        assert_eq!(v["media_type"], "application/vnd.oci.image.index.v1+json", "{label}");
        for (_, d, _) in images.iter().take(2) {
            let r = s
                .http
                .get(s.url(&format!("/v2/acme/release/manifests/{d}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{label}: the index's images came along");
        }
        // Policies run after the push's answer: its evaluation first.
        evaluation(s, "acme/build", &id, "multi-mixed", "failed").await;
        let (st, _) = call(
            s,
            reqwest::Method::GET,
            "/api/v1/repositories/acme/release/tags/multi-mixed",
            Value::Null,
        )
        .await;
        assert_eq!(st, 404, "{label}: one vulnerable platform keeps the index back");
        let (_, dry) = call(
            s,
            reqwest::Method::POST,
            &format!("/api/v1/repositories/acme/build/policies/{id}/dry-run"),
            json!({"tag": "multi-mixed"}),
        )
        .await;
        let per_image = dry["detail"]["images"].as_array().unwrap();
        assert_eq!(per_image.len(), 2, "{dry}");
        assert_eq!(per_image.iter().filter(|i| i["passed"] == false).count(), 1);

        // The lead loses their grant: the policy can't act for them any more.
        let gid = grant["id"].as_str().unwrap();
        let (st, _) = call(
            s,
            reqwest::Method::DELETE,
            &format!("/api/v1/namespaces/acme/grants/{gid}"),
            Value::Null,
        )
        .await;
        assert_eq!(st, 204);
        let clean_img = &images[0].1;
        let r = s
            .http
            .put(s.url("/v2/acme/build/manifests/later"))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(
                s.http
                    .get(s.url(&format!("/v2/acme/build/manifests/{clean_img}")))
                    .header("accept", "application/vnd.oci.image.manifest.v1+json")
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let evals = until(
            s,
            &format!("/api/v1/repositories/acme/build/policies/{id}/evaluations"),
            |v| {
                v.as_array()
                    .is_some_and(|a| a.iter().any(|e| e["tag"] == "later" && e["outcome"] == "suspended"))
            },
        )
        .await;
        let suspended = evals.as_array().unwrap().iter().find(|e| e["tag"] == "later").unwrap();
        assert!(
            suspended["detail"]["suspended"]
                .as_str()
                .unwrap()
                .contains("lead may not push to acme/release"),
            "{label}: {suspended}"
        );
        let (st, _) = call(
            s,
            reqwest::Method::GET,
            "/api/v1/repositories/acme/release/tags/later",
            Value::Null,
        )
        .await;
        assert_eq!(st, 404);
        // Applying again records nothing new: the suspension stands once.
        let before = evals.as_array().unwrap().len();
        let (st, _) = call(
            s,
            reqwest::Method::POST,
            &format!("/api/v1/repositories/acme/build/policies/{id}/apply"),
            Value::Null,
        )
        .await;
        assert_eq!(st, 200);
        let (_, after) = call(
            s,
            reqwest::Method::GET,
            &format!("/api/v1/repositories/acme/build/policies/{id}/evaluations"),
            Value::Null,
        )
        .await;
        let later = |v: &Value| v.as_array().unwrap().iter().filter(|e| e["tag"] == "later").count();
        assert_eq!(
            later(&after),
            later(&evals),
            "{label}: {} then {}",
            before,
            after.as_array().unwrap().len()
        );
    }
}

/// A promotion is a push into its target: the target's own policies run
/// next, so build → release → production moves a clean build all the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotions_chain_build_to_release_to_production() {
    if !have_tool("skopeo") {
        return;
    }
    for backend in backends() {
        let (s, work) = acme_with_npm_advisories(&backend).await;
        let label = s.label();
        let home = work.path();
        for (source, target, rule) in [
            (
                "acme/build",
                "acme/release",
                json!({"field": "tag", "operator": "regex", "values": ["^[0-9]+$"]}),
            ),
            (
                "acme/release",
                "acme/prod",
                json!({"field": "vulnerability_high", "operator": "lte", "values": ["0"]}),
            ),
        ] {
            let (st, p) = call(
                &s,
                reqwest::Method::POST,
                &format!("/api/v1/repositories/{source}/policies"),
                json!({"target": target, "tag_template": "%n", "rules": [rule]}),
            )
            .await;
            assert_eq!(st, 201, "{p}");
        }
        let layout = home.join("clean");
        npm_image(&layout, "portcullis-demo-widget", "1.0.0");
        let h = s.base.trim_start_matches("http://").to_string();
        let out = skopeo(
            &[
                "copy",
                "--dest-tls-verify=false",
                "--dest-creds",
                &format!("admin:{ADMIN_PASSWORD}"),
                &format!("oci:{}:latest", layout.display()),
                &format!("docker://{h}/acme/build:7"),
            ],
            home,
        )
        .await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let prod = until(&s, "/api/v1/repositories/acme/prod/tags/7", |v| v["digest"].is_string()).await;
        assert_eq!(prod["promoted_from"]["repository"], "acme/release", "{label}: {prod}");
        let release = until(&s, "/api/v1/repositories/acme/release/tags/7", |v| {
            v["digest"].is_string()
        })
        .await;
        assert_eq!(release["promoted_from"]["repository"], "acme/build");
        assert_eq!(prod["digest"], release["digest"]);
    }
}

/// `GET path` as the administrator: the status.
async fn status_of(s: &TestServer, path: &str) -> u16 {
    call(s, reqwest::Method::GET, path, Value::Null).await.0
}

/// The newest evaluation of policy `id` (on `source`) for `tag` whose
/// outcome is `outcome`, waited for.
async fn evaluation(s: &TestServer, source: &str, id: &str, tag: &str, outcome: &str) -> Value {
    let path = format!("/api/v1/repositories/{source}/policies/{id}/evaluations");
    let evals = until(s, &path, |v| {
        v.as_array()
            .is_some_and(|a| a.iter().any(|e| e["tag"] == tag && e["outcome"] == outcome))
    })
    .await;
    let found = evals.as_array().unwrap().iter().find(|e| e["tag"] == tag).unwrap();
    assert_eq!(found["outcome"], outcome, "the newest evaluation of {tag}: {evals}");
    found.clone()
}

/// A policy acts with its owner's rights at every run: someone who was
/// briefly an administrator of a private repository, and left a policy
/// copying it to their own repository, copies nothing once their grant is
/// revoked (the policy is suspended, and says so). A repository deleted and
/// made again under the same name has none of the old policies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_is_suspended_when_its_owner_loses_the_source() {
    const PW: &str = "mallory-password";
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let s = &s;
        let post = |path: String, body: Value| async move { call(s, reqwest::Method::POST, &path, body).await };
        let (st, _) = post("/api/v1/users".into(), json!({"name": "mallory", "password": PW})).await;
        assert_eq!(st, 201);
        assert_eq!(post("/api/v1/orgs".into(), json!({"name": "acme"})).await.0, 201);
        let (st, grant) = post(
            "/api/v1/namespaces/acme/grants".into(),
            json!({"account": "mallory", "repository": "acme/build", "role": "admin"}),
        )
        .await;
        assert_eq!(st, 201, "{grant}");
        let r = s
            .anon
            .post(s.url("/api/v1/repositories/acme/build/policies"))
            .basic_auth("mallory", Some(PW))
            .json(&json!({"target": "mallory/leak", "tag_template": "%n", "rules": [
                {"field": "tag", "operator": "regex", "values": [".*"]}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{label}");
        let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
        // While the grant holds, the policy copies (so the test can fail).
        s.push_image("acme/build", "1", b"{\"b\":1}", &[b"build one"]).await;
        until(s, "/api/v1/repositories/mallory/leak/tags/1", |v| {
            v["digest"].is_string()
        })
        .await;

        let gid = grant["id"].as_str().unwrap();
        let (st, _) = call(
            s,
            reqwest::Method::DELETE,
            &format!("/api/v1/namespaces/acme/grants/{gid}"),
            Value::Null,
        )
        .await;
        assert_eq!(st, 204);
        s.push_image("acme/build", "2", b"{\"b\":2}", &[b"build two"]).await;
        let suspended = evaluation(s, "acme/build", &id, "2", "suspended").await;
        let why = suspended["detail"]["suspended"].as_str().unwrap();
        assert!(why.contains("mallory may not administer acme/build"), "{label}: {why}");
        assert_eq!(status_of(s, "/api/v1/repositories/mallory/leak/tags/2").await, 404);
        // A dry run says the same; applying records nothing new.
        let (_, dry) = post(
            format!("/api/v1/repositories/acme/build/policies/{id}/dry-run"),
            json!({"tag": "1"}),
        )
        .await;
        assert_eq!(dry["outcome"], "suspended", "{label}: {dry}");
        let evals = format!("/api/v1/repositories/acme/build/policies/{id}/evaluations");
        let (_, before) = call(s, reqwest::Method::GET, &evals, Value::Null).await;
        let (st, _) = post(
            format!("/api/v1/repositories/acme/build/policies/{id}/apply"),
            Value::Null,
        )
        .await;
        assert_eq!(st, 200);
        let (_, after) = call(s, reqwest::Method::GET, &evals, Value::Null).await;
        let suspended_twos = |v: &Value| {
            v.as_array()
                .unwrap()
                .iter()
                .filter(|e| e["tag"] == "2" && e["outcome"] == "suspended")
                .count()
        };
        assert_eq!(suspended_twos(&after), suspended_twos(&before), "{label}: {after}");
        assert_eq!(status_of(s, "/api/v1/repositories/mallory/leak/tags/2").await, 404);

        // Deleted and made again: the old repository's policies are gone.
        let (st, p) = post(
            "/api/v1/repositories/acme/old/policies".into(),
            json!({"target": "acme/out", "tag_template": "%n", "rules": [
                {"field": "tag", "operator": "regex", "values": [".*"]}]}),
        )
        .await;
        assert_eq!(st, 201, "{p}");
        s.push_image("acme/old", "1", b"{\"o\":1}", &[b"old one"]).await;
        until(s, "/api/v1/repositories/acme/out/tags/1", |v| v["digest"].is_string()).await;
        let (st, _) = call(s, reqwest::Method::DELETE, "/api/v1/repositories/acme/old", Value::Null).await;
        assert_eq!(st, 204, "{label}");
        s.push_image("acme/old", "2", b"{\"o\":2}", &[b"old two"]).await;
        let (st, list) = call(
            s,
            reqwest::Method::GET,
            "/api/v1/repositories/acme/old/policies",
            Value::Null,
        )
        .await;
        assert_eq!((st, list.clone()), (200, json!([])), "{label}: {list}");
        assert_eq!(
            status_of(s, "/api/v1/repositories/acme/out/tags/2").await,
            404,
            "{label}"
        );
    }
}

/// Organizations `ci` and `acme`, service account `ci+release` (a member
/// of `ci/gitlab`), and (with `key`) its server-side signing key.
async fn signing_world(s: &TestServer, key: bool) {
    common::signing::trusted_team(s, &[], &[]).await;
    common::signing::ci_release_account(s).await;
    if key {
        let (st, v) = call(
            s,
            reqwest::Method::POST,
            "/api/v1/accounts/ci+release/signing-key",
            Value::Null,
        )
        .await;
        assert_eq!(st, 201, "{v}");
    }
}

/// `sign_as` is checked before every signature, not only when the policy
/// is saved: once its author no longer owns the signing account's
/// organization, the policy neither promotes nor signs, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_whose_author_may_no_longer_sign_does_not_promote() {
    const PW: &str = "release-lead-password";
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let s = &s;
        signing_world(s, true).await;
        let (st, _) = call(
            s,
            reqwest::Method::POST,
            "/api/v1/users",
            json!({"name": "lead", "password": PW}),
        )
        .await;
        assert_eq!(st, 201);
        let (st, _) = call(
            s,
            reqwest::Method::POST,
            "/api/v1/namespaces/acme/grants",
            json!({"account": "lead", "role": "admin"}),
        )
        .await;
        assert_eq!(st, 201);
        let owners = "/api/v1/orgs/ci/teams/owners/members/lead";
        assert_eq!(call(s, reqwest::Method::PUT, owners, Value::Null).await.0, 200);
        let r = s
            .anon
            .post(s.url("/api/v1/repositories/acme/build/policies"))
            .basic_auth("lead", Some(PW))
            .json(
                &json!({"target": "acme/signed", "tag_template": "%n", "sign_as": "ci+release", "rules": [
                {"field": "tag", "operator": "regex", "values": [".*"]}]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{label}");
        let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
        let (first, _) = s.push_image("acme/build", "1", b"{\"s\":1}", &[b"signed one"]).await;
        // Policies run after the push's answer: wait for this one's record.
        evaluation(s, "acme/build", &id, "1", "promoted").await;
        let v = until(s, "/api/v1/repositories/acme/signed/tags/1", |v| {
            v["digest"].is_string()
        })
        .await;
        let signature_of = |d: &portcullis_oci::Digest| format!("/v2/acme/signed/manifests/sha256-{}.sig", d.hex());
        let found = |path: String| async move { s.http.get(s.url(&path)).send().await.unwrap().status() };
        assert_eq!(found(signature_of(&first)).await, 200, "{label}: signed while allowed");

        assert_eq!(call(s, reqwest::Method::DELETE, owners, Value::Null).await.0, 204);
        let (image, _) = s.push_image("acme/build", "2", b"{\"s\":2}", &[b"signed two"]).await;
        let suspended = evaluation(s, "acme/build", &id, "2", "suspended").await;
        let why = suspended["detail"]["suspended"].as_str().unwrap();
        assert!(why.contains("lead does not administer ci+release"), "{label}: {why}");
        assert_eq!(status_of(s, "/api/v1/repositories/acme/signed/tags/2").await, 404);
        assert_eq!(found(signature_of(&image)).await, 404, "{label}");
        let (_, audit) = call(s, reqwest::Method::GET, "/api/v1/audit?action=signature", Value::Null).await;
        assert_eq!(audit["records"].as_array().unwrap().len(), 1, "{label}: {audit}");
        // The tag API shows how the first promotion's signing went.
        assert_eq!(v["promoted_from"]["signature"]["state"], "signed", "{label}: {v}");
    }
}

/// A signature that failed is tried again at later triggers until the
/// promoted image carries it, and its state is shown meanwhile: the
/// signing account had no key when the image was promoted; once it has
/// one, the next `apply` signs; one more signs nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_signature_is_retried_until_the_image_is_signed() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let s = &s;
        signing_world(s, true).await;
        let (st, p) = call(
            s,
            reqwest::Method::POST,
            "/api/v1/repositories/acme/build/policies",
            json!({"target": "acme/signed", "tag_template": "%n", "sign_as": "ci+release", "rules": [
                {"field": "tag", "operator": "eq", "values": ["ship"]}]}),
        )
        .await;
        assert_eq!(st, 201, "{p}");
        let id = p["id"].as_str().unwrap().to_string();
        // The account is made again, without a key (a saved policy needs
        // one to exist, so it goes afterwards).
        let account = "/api/v1/namespaces/ci/service-accounts/release";
        assert_eq!(call(s, reqwest::Method::DELETE, account, Value::Null).await.0, 204);
        let (st, _) = call(
            s,
            reqwest::Method::POST,
            "/api/v1/namespaces/ci/service-accounts",
            json!({"name": "release"}),
        )
        .await;
        assert_eq!(st, 201);

        let (image, _) = s.push_image("acme/build", "ship", b"{\"ship\":1}", &[b"shipped"]).await;
        let sig = format!("/v2/acme/signed/manifests/sha256-{}.sig", image.hex());
        let signed = || async { s.http.get(s.url(&sig)).send().await.unwrap().status() == 200 };
        let promoted = evaluation(s, "acme/build", &id, "ship", "promoted").await;
        assert!(!signed().await, "{label}");
        let tag = "/api/v1/repositories/acme/signed/tags/ship";
        let (_, unsigned) = call(s, reqwest::Method::GET, tag, Value::Null).await;

        let (st, key) = call(
            s,
            reqwest::Method::POST,
            "/api/v1/accounts/ci+release/signing-key",
            Value::Null,
        )
        .await;
        assert_eq!(st, 201);
        let apply = format!("/api/v1/repositories/acme/build/policies/{id}/apply");
        let (st, applied) = call(s, reqwest::Method::POST, &apply, Value::Null).await;
        assert_eq!(st, 200);
        assert!(signed().await, "{label}: the next trigger signed it");

        // Meanwhile the evaluation and the tag API said it had failed.
        let signature = &promoted["detail"]["signature"];
        assert_eq!(signature["state"], "failed", "{label}: {promoted}");
        let error = signature["error"].as_str().unwrap();
        assert!(error.contains("no server-side signing key"), "{label}: {error}");
        let state = &unsigned["promoted_from"]["signature"]["state"];
        assert_eq!(state, "failed", "{label}: {unsigned}");
        let signature = &applied["evaluations"][0]["detail"]["signature"];
        assert_eq!(signature["state"], "signed", "{label}: {applied}");
        assert_eq!(signature["key_id"], key["key_id"]);
        let (_, v) = call(s, reqwest::Method::GET, tag, Value::Null).await;
        assert_eq!(v["promoted_from"]["signature"]["state"], "signed", "{label}: {v}");

        // Signed now: later triggers add no second signature.
        let (st, _) = call(s, reqwest::Method::POST, &apply, Value::Null).await;
        assert_eq!(st, 200);
        let (_, audit) = call(s, reqwest::Method::GET, "/api/v1/audit?action=signature", Value::Null).await;
        assert_eq!(audit["records"].as_array().unwrap().len(), 1, "{label}: {audit}");
    }
}

/// Only signatures, attestations and SBOMs travel with a promoted image:
/// an index that refers to a clean image (claiming to be an SBOM) and
/// lists a vulnerable one does not carry the vulnerable one into the
/// target, while a sigstore bundle referrer comes along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copied_referrers_carry_no_image_the_policy_did_not_judge() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        import(&s, &[NPM.into()]);
        let s = &s;
        assert_eq!(
            call(s, reqwest::Method::POST, "/api/v1/orgs", json!({"name": "acme"}))
                .await
                .0,
            201
        );
        let layer = |name: &str, version: &str| {
            let manifest = format!("{{\"name\": \"{name}\", \"version\": \"{version}\"}}");
            common::gzip(&tar_of(&[(
                &format!("node_modules/{name}/package.json"),
                manifest.as_bytes(),
            )]))
        };
        let (clean, clean_bytes) = s
            .push_image(
                "acme/build",
                "1",
                b"{\"clean\":1}",
                &[layer("portcullis-demo-widget", "1.0.0").as_slice()],
            )
            .await;
        let (bad, bad_bytes) = s
            .push_image(
                "acme/build",
                "bad",
                b"{\"bad\":1}",
                &[layer("mqtt-packet", "6.1.1").as_slice()],
            )
            .await;
        for d in [&clean, &bad] {
            until(s, &format!("/api/v1/scans/{d}?repository=acme/build"), |v| {
                v["status"] == "done" && v["database_generation"].is_i64()
            })
            .await;
        }
        let subject = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                             "digest": clean.as_str(), "size": clean_bytes.len()});
        let smuggler = serde_json::to_vec(&json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "artifactType": "application/spdx+json",
            "subject": subject,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "digest": bad.as_str(), "size": bad_bytes.len()}]}))
        .unwrap();
        let smuggler_digest = portcullis_oci::Digest::sha256_of(&smuggler);
        let r = s.put_index("acme/build", smuggler_digest.as_str(), smuggler).await;
        assert_eq!(r.status(), 201, "{label}: {}", r.text().await.unwrap());
        let bundle_type = "application/vnd.dev.sigstore.bundle.v0.3+json";
        let bundle_bytes = b"{\"not\":\"verified here\"}";
        let bundle = s.push_blob("acme/build", bundle_bytes).await;
        let empty = s.push_blob("acme/build", b"{}").await;
        let attached = serde_json::to_vec(&json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": bundle_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.as_str(), "size": 2},
            "layers": [{"mediaType": bundle_type, "digest": bundle.as_str(), "size": bundle_bytes.len()}],
            "subject": subject}))
        .unwrap();
        let attached_digest = portcullis_oci::Digest::sha256_of(&attached);
        let r = s.put_manifest("acme/build", attached_digest.as_str(), attached).await;
        assert_eq!(r.status(), 201, "{label}: {}", r.text().await.unwrap());

        let (st, p) = call(
            s,
            reqwest::Method::POST,
            "/api/v1/repositories/acme/build/policies",
            json!({"target": "acme/release", "tag_template": "%n", "copy_referrers": true, "rules": [
                {"field": "vulnerability_high", "operator": "lte", "values": ["0"]}]}),
        )
        .await;
        assert_eq!(st, 201, "{p}");
        let id = p["id"].as_str().unwrap();
        let (st, applied) = call(
            s,
            reqwest::Method::POST,
            &format!("/api/v1/repositories/acme/build/policies/{id}/apply"),
            Value::Null,
        )
        .await;
        assert_eq!(st, 200, "{applied}");
        let outcomes: Vec<_> = applied["evaluations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["tag"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
            .collect();
        assert_eq!(outcomes, [("1", "promoted"), ("bad", "failed")], "{label}: {applied}");
        let in_release = |d: String| async move {
            s.http
                .get(s.url(&format!("/v2/acme/release/manifests/{d}")))
                .header(
                    "accept",
                    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
                )
                .send()
                .await
                .unwrap()
                .status()
        };
        assert_eq!(in_release(clean.to_string()).await, 200, "{label}");
        assert_eq!(
            in_release(attached_digest.to_string()).await,
            200,
            "{label}: the bundle came along"
        );
        assert_eq!(
            in_release(bad.to_string()).await,
            404,
            "{label}: the failing image was carried"
        );
        assert_eq!(in_release(smuggler_digest.to_string()).await, 404, "{label}");
    }
}

/// `apply_existing` on create: an image pushed and scanned before the
/// policy existed is promoted by its creation, which answers with the
/// evaluations and leaves a `PROMOTION` event; the flag is not stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_created_with_apply_existing_promotes_what_is_already_there() {
    for backend in backends() {
        let (s, _work) = acme_with_npm_advisories(&backend).await;
        let label = s.label();
        let layer = common::gzip(&tar_of(&[(
            "node_modules/portcullis-demo-widget/package.json",
            b"{\"name\": \"portcullis-demo-widget\", \"version\": \"1.0.0\"}".as_slice(),
        )]));
        let (digest, _) = s.push_image("acme/build", "1", b"{\"old\":1}", &[&layer]).await;
        until(&s, &format!("/api/v1/scans/{digest}?repository=acme/build"), |v| {
            v["status"] == "done" && v["database_generation"].is_i64()
        })
        .await;
        let (st, hook) = call(
            &s,
            reqwest::Method::POST,
            "/api/v1/namespaces/acme/webhooks",
            json!({"url": "http://127.0.0.1:9/hook", "secret": "apply-existing-secret", "events": ["PROMOTION"]}),
        )
        .await;
        assert_eq!(st, 201, "{hook}");
        let policy = |apply: Value| {
            json!({"target": "acme/release", "tag_template": "%n", "apply_existing": apply,
                   "rules": [{"field": "vulnerability_high", "operator": "lte", "values": ["0"]}]})
        };
        let create = |body: Value| {
            call(
                &s,
                reqwest::Method::POST,
                "/api/v1/repositories/acme/build/policies",
                body,
            )
        };
        let (st, bad) = create(policy(json!("yes"))).await;
        assert_eq!(st, 400, "{label}: {bad}");
        assert!(bad.to_string().contains("apply_existing"), "{bad}");

        let (st, p) = create(policy(json!(true))).await;
        assert_eq!(st, 201, "{label}: {p}");
        let outcomes: Vec<_> = p["evaluations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["tag"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
            .collect();
        assert_eq!(outcomes, [("1", "promoted")], "{label}: {p}");
        let id = p["id"].as_str().unwrap();
        let (st, tag) = call(
            &s,
            reqwest::Method::GET,
            "/api/v1/repositories/acme/release/tags/1",
            Value::Null,
        )
        .await;
        assert_eq!(st, 200, "{label}: {tag}");
        assert_eq!(tag["digest"], digest.as_str());
        assert_eq!(tag["promoted_from"]["policy_id"], id);
        let (_, stored) = call(
            &s,
            reqwest::Method::GET,
            &format!("/api/v1/repositories/acme/build/policies/{id}"),
            Value::Null,
        )
        .await;
        assert!(stored.get("apply_existing").is_none(), "{label}: stored {stored}");
        assert!(stored.get("evaluations").is_none(), "{label}: stored {stored}");
        let hook_id = hook["id"].as_str().unwrap();
        let (_, log) = call(
            &s,
            reqwest::Method::GET,
            &format!("/api/v1/webhooks/{hook_id}/deliveries"),
            Value::Null,
        )
        .await;
        let kinds: Vec<_> = log["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["type"].clone())
            .collect();
        assert_eq!(kinds, [json!("PROMOTION")], "{label}: {log}");
        let (_, audit) = call(&s, reqwest::Method::GET, "/api/v1/audit?action=promotion", Value::Null).await;
        assert_eq!(audit["records"].as_array().unwrap().len(), 1, "{label}: {audit}");

        // Without the flag (or with it false) nothing runs and nothing is said.
        let mut other = policy(json!(false));
        other["target"] = json!("acme/prod");
        let (st, p) = create(other).await;
        assert_eq!(st, 201, "{label}: {p}");
        assert!(p.get("evaluations").is_none(), "{p}");
        assert_eq!(status_of(&s, "/api/v1/repositories/acme/prod/tags/1").await, 404);
    }
}

/// A failed scan is a policy's answer too: the evaluation recorded at push
/// ("the scan is queued") is followed by a failed one naming the scan's
/// error, so the policy page never keeps saying the image waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_scan_fails_the_policies_that_need_it() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let policy = json!({"target": "acme/release", "tag_template": "%n",
                            "rules": [{"field": "vulnerability_critical", "operator": "lte", "values": ["0"]}]});
        let (st, v) = call(
            &s,
            reqwest::Method::POST,
            "/api/v1/repositories/acme/app/policies",
            policy,
        )
        .await;
        assert_eq!(st, 201, "{label}: {v}");
        let id = v["id"].as_str().unwrap().to_string();
        let (broken, _) = s
            .push_image(
                "acme/app",
                "broken",
                b"{\"b\":1}",
                &[common::gzip(b"not a tar archive").as_slice()],
            )
            .await;
        let e = evaluation(&s, "acme/app", &id, "broken", "failed").await;
        let reason = e["detail"]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(&format!("the scan of {broken} failed")), "{label}: {e}");
    }
}

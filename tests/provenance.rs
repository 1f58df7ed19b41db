//! `require_provenance` on a running server, on SQLite and PostgreSQL: pull
//! rules (a reader's GET), admission (`AdmissionReview`) and promotion
//! policies refuse an image without a SLSA provenance attestation, with one
//! naming a wrong builder or source, signed by an untrusted key, about
//! another digest, or changed after signing, each refusal naming what was
//! missing; they allow the right one, in either of cosign's forms and in
//! either SLSA version, and an index only when each of its images passes.
//! Every attestation is written by `portcullis attest`, the real CLI.
//! Promotion carries the attestations with the image.

mod common;

use std::path::Path;

use base64::Engine;
use common::signing::{
    admin_cli, attest_cli, host, key_files, path, reader_pull, register_key, review, trusted_team, PW,
};
use common::{backends, call, Backend, TestServer};
use portcullis_oci::Digest;
use reqwest::Method;
use serde_json::{json, Value};

const BUILDER: &str = "https://ci.acme.example/runners/7";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A SLSA v1 provenance predicate: built by `builder` from `git_host`'s acme/app.
fn v1(builder: &str, git_host: &str) -> Value {
    json!({
        "buildDefinition": {
            "buildType": "https://ci.acme.example/buildtypes/container/v1",
            "externalParameters": {"workflow": {"repository": format!("https://{git_host}/acme/app"), "ref": "refs/heads/main"}},
            "resolvedDependencies": [{"uri": format!("git+https://{git_host}/acme/app@refs/heads/main"),
                                      "digest": {"gitCommit": "5f0c6a1e4b1d6a1c0b8e2f0d9a7c3b2a1e0f9d8c"}}],
        },
        "runDetails": {"builder": {"id": builder}, "metadata": {"invocationId": "build-42"}},
    })
}

/// The same build as SLSA v0.2 says it.
fn v02() -> Value {
    json!({
        "builder": {"id": BUILDER},
        "buildType": "https://ci.acme.example/buildtypes/container/v1",
        "invocation": {"configSource": {"uri": "git+https://git.acme.example/acme/app@refs/heads/main",
                                        "digest": {"sha1": "5f0c6a1e4b1d6a1c0b8e2f0d9a7c3b2a1e0f9d8c"}}},
    })
}

/// The rule every test sets: team `ci/gitlab` (alice), this CI's builders,
/// acme's git server.
fn rule() -> Value {
    json!({"signed_by": {"teams": ["ci/gitlab"], "accounts": []},
           "builder_ids": ["https://ci.acme.example/**"],
           "source_uris": ["https://git.acme.example/acme/*", "git+https://git.acme.example/acme/app@refs/heads/*"]})
}

/// What `portcullis attest` writes on one image, and what a rule says of it.
struct Case {
    tag: &'static str,
    /// `None`: allowed; else what the refusal says.
    refused: Option<&'static str>,
}

const CASES: [Case; 9] = [
    Case {
        tag: "right-tag",
        refused: None,
    },
    Case {
        tag: "right-bundle",
        refused: None,
    },
    Case {
        tag: "right-v02",
        refused: None,
    },
    Case {
        tag: "none",
        refused: Some("no attestation"),
    },
    Case {
        tag: "builder",
        refused: Some("wrong builder: builder id https://evil.example/runner matches none of"),
    },
    Case {
        tag: "source",
        refused: Some("wrong source: source https://git.evil.example/acme/app"),
    },
    Case {
        tag: "untrusted",
        refused: Some("untrusted signer"),
    },
    Case {
        tag: "subject",
        refused: Some("subject mismatch: its subject is another image"),
    },
    Case {
        tag: "tampered",
        refused: Some("tampered: its signature names a trusted key but does not verify under it"),
    },
];

/// Accounts (alice in team ci/gitlab; mallory, registered but outside it;
/// dev, a reader of acme), keys, and predicate files in `dir`.
async fn accounts(s: &TestServer, dir: &Path) {
    trusted_team(s, &["alice", "mallory", "dev"], &["alice"]).await;
    let (st, v) = call(
        s,
        Method::POST,
        "/api/v1/namespaces/acme/grants",
        json!({"account": "dev", "role": "read"}),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    for who in ["alice", "mallory"] {
        register_key(s, dir, who).await;
        key_files(dir, who);
    }
    for (file, predicate) in [
        ("right.json", v1(BUILDER, "git.acme.example")),
        ("builder.json", v1("https://evil.example/runner", "git.acme.example")),
        ("source.json", v1(BUILDER, "git.evil.example")),
        ("v02.json", v02()),
    ] {
        std::fs::write(dir.join(file), predicate.to_string()).unwrap();
    }
}

/// `portcullis attest` on `repo:tag`.
async fn attest(s: &TestServer, dir: &Path, repo: &str, tag: &str, how: (&str, &str, &str, &str)) {
    let (kind, predicate, signer, form) = how;
    let image = format!("docker://{}/{repo}:{tag}", host(s));
    let (predicate, key) = (path(dir, predicate), path(dir, &format!("{signer}.p8")));
    let (code, _, out, err) = attest_cli(s, &image, (kind, &predicate, &key, form), &[]).await;
    assert_eq!(code, 0, "{}: attest {tag}: {out} {err}", s.label());
}

/// Pushes one image per case to `repo` (tagged as the case) and attests it
/// as the case says: (tag, digest, manifest size).
async fn images(s: &TestServer, dir: &Path, repo: &str) -> Vec<(&'static str, Digest, usize)> {
    let mut out = Vec::new();
    for (n, case) in CASES.iter().enumerate() {
        let config = format!("{{\"case\":{n}}}");
        let layer = format!("layer of {}", case.tag);
        let (digest, bytes) = s
            .push_image(repo, case.tag, config.as_bytes(), &[layer.as_bytes()])
            .await;
        out.push((case.tag, digest, bytes.len()));
    }
    let right = ("slsaprovenance1", "right.json", "alice", "tag");
    let attested = [
        ("right-tag", right),
        ("right-bundle", ("slsaprovenance1", "right.json", "alice", "bundle")),
        ("right-v02", ("slsaprovenance02", "v02.json", "alice", "tag")),
        ("builder", ("slsaprovenance1", "builder.json", "alice", "bundle")),
        ("source", right_with(right, "source.json")),
        ("untrusted", ("slsaprovenance1", "right.json", "mallory", "tag")),
        ("tampered", right),
    ];
    for (tag, how) in attested {
        attest(s, dir, repo, tag, how).await;
    }
    let digest = |tag: &str| out.iter().find(|(t, _, _)| *t == tag).unwrap().1.clone();
    let att = |tag: &str| format!("sha256-{}.att", digest(tag).hex());
    // A statement about right-tag's image, under the subject case's tag.
    let about_another = s.manifest_bytes(repo, &att("right-tag")).await;
    let r = s.put_manifest(repo, &att("subject"), about_another.to_vec()).await;
    assert_eq!(r.status(), 201);
    // The tampered case: its envelope's statement edited after signing
    // (the builder it names), the `.att` manifest otherwise as it was.
    let mut m: Value = serde_json::from_slice(&s.manifest_bytes(repo, &att("tampered")).await).unwrap();
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    let r = s
        .http
        .get(s.url(&format!("/v2/{repo}/blobs/{layer}")))
        .send()
        .await
        .unwrap();
    let mut envelope: Value = r.json().await.unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let statement = b64.decode(envelope["payload"].as_str().unwrap()).unwrap();
    let edited = String::from_utf8(statement).unwrap().replace("runners/7", "runners/8");
    envelope["payload"] = b64.encode(edited).into();
    let bytes = serde_json::to_vec(&envelope).unwrap();
    let blob = s.push_blob(repo, &bytes).await;
    m["layers"][0]["digest"] = blob.as_str().into();
    m["layers"][0]["size"] = bytes.len().into();
    let forged = serde_json::to_vec(&m).unwrap();
    let r = s.put_manifest(repo, &att("tampered"), forged).await;
    assert_eq!(r.status(), 201);
    out
}

fn right_with<'a>(
    how: (&'a str, &'a str, &'a str, &'a str),
    predicate: &'a str,
) -> (&'a str, &'a str, &'a str, &'a str) {
    (how.0, predicate, how.2, how.3)
}

/// An OCI index over the images of `tags` (from `images`), pushed as `tag`.
async fn index(s: &TestServer, repo: &str, tag: &str, all: &[(&str, Digest, usize)], tags: &[&str]) {
    let manifests: Vec<Value> = tags
        .iter()
        .map(|t| {
            let (_, d, size) = all.iter().find(|(x, _, _)| x == t).unwrap();
            json!({"mediaType": MANIFEST, "digest": d.as_str(), "size": size,
                   "platform": {"architecture": "amd64", "os": "linux"}})
        })
        .collect();
    let body = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests})).unwrap();
    let r = s.put_index(repo, tag, body).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

/// A server on `backend` with the accounts, and the cases' images in
/// `repo` with an index (`index-bad`) over a right one and an unattested one.
async fn world(backend: &Backend, repo: &str) -> (TestServer, tempfile::TempDir, Vec<(&'static str, Digest, usize)>) {
    let s = TestServer::start(backend).await;
    let work = tempfile::tempdir().unwrap();
    accounts(&s, work.path()).await;
    let all = images(&s, work.path(), repo).await;
    index(&s, repo, "index-bad", &all, &["right-tag", "none"]).await;
    (s, work, all)
}

async fn set_pull_rule(s: &TestServer, repo: &str, rule: Value) -> (u16, Value) {
    call(
        s,
        Method::PUT,
        &format!("/api/v1/repositories/{repo}"),
        json!({ "pull_rule": rule }),
    )
    .await
}

/// A reader's pull and an admission review of every case, and of two
/// indexes: each refusal names what was missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_and_admission_demand_provenance() {
    for backend in backends() {
        let (s, work, all) = world(&backend, "acme/app").await;
        let (label, dir) = (s.label(), work.path());
        index(&s, "acme/app", "index-good", &all, &["right-tag", "right-bundle"]).await;

        // Rules that can't be saved: a signer that does not exist, a bad glob, no signer.
        let bad = [
            (
                json!({"signed_by": {"accounts": ["nobody"]}}),
                "require_provenance.signed_by names account nobody",
            ),
            (
                json!({"signed_by": {"teams": ["ci/gitlab"]}, "builder_ids": ["a[b"]}),
                "is not a glob",
            ),
            (json!({"signed_by": {}}), "names no team and no account"),
            (json!({"signed_by": {"teams": ["ci/gitlab"]}, "builder": []}), "builder"),
        ];
        for (rule, says) in bad {
            let (st, v) = set_pull_rule(&s, "acme/app", json!({ "require_provenance": rule })).await;
            assert_eq!(st, 400, "{label}: {rule} saved: {v}");
            assert!(v.to_string().contains(says), "{label}: {v}");
        }
        let (st, v) = set_pull_rule(&s, "acme/app", json!({ "require_provenance": rule() })).await;
        assert_eq!(st, 200, "{label}: {v}");
        assert_eq!(v["pull_rule"]["require_provenance"], rule(), "{v}");

        let name = |tag: &str| format!("{}/acme/app:{tag}", host(&s));
        for case in &CASES {
            let (st, text) = reader_pull(&s, "dev", "acme/app", case.tag).await;
            let v = call(
                &s,
                Method::POST,
                "/api/v1/admission",
                review("u-1", "Deployment", &[&name(case.tag)]),
            )
            .await
            .1;
            let response = &v["response"];
            match case.refused {
                None => {
                    assert_eq!(st, 200, "{label} {}: {text}", case.tag);
                    assert_eq!(response["allowed"], true, "{label} {}: {v}", case.tag);
                }
                Some(says) => {
                    assert_eq!(st, 403, "{label} {}: served", case.tag);
                    assert!(
                        text.contains("pull rule require_provenance (team ci/gitlab)") && text.contains(says),
                        "{label} {}: {text}",
                        case.tag
                    );
                    assert_eq!(response["allowed"], false, "{label} {}: {v}", case.tag);
                    let message = response["status"]["message"].as_str().unwrap();
                    assert!(message.contains(says), "{label} {}: {message}", case.tag);
                }
            }
        }
        // An index passes only if each of its images does.
        assert_eq!(reader_pull(&s, "dev", "acme/app", "index-good").await.0, 200, "{label}");
        let (st, text) = reader_pull(&s, "dev", "acme/app", "index-bad").await;
        assert_eq!(st, 403, "{label}");
        let none = &all.iter().find(|(t, _, _)| *t == "none").unwrap().1;
        assert!(
            text.contains(none.as_str()) && text.contains("no attestation"),
            "{text}"
        );
        let v = call(
            &s,
            Method::POST,
            "/api/v1/admission",
            review("u-2", "Pod", &[&name("index-good"), &name("index-bad")]),
        )
        .await
        .1;
        assert_eq!(v["response"]["allowed"], false, "{v}");
        let message = v["response"]["status"]["message"].as_str().unwrap();
        assert!(
            message.contains("index-bad") && !message.contains("index-good"),
            "{message}"
        );
        // Each review is on the audit trail: who asked, about which
        // images, and why a denial denied.
        let (st, v) = call(&s, Method::GET, "/api/v1/audit?action=admission&limit=100", Value::Null).await;
        assert_eq!(st, 200, "{v}");
        let records = v["records"].as_array().unwrap();
        assert_eq!(records.len(), CASES.len() + 1, "{label}: {v}");
        let allowed = records.iter().filter(|r| r["result"] == "ok").count();
        assert_eq!(
            allowed,
            CASES.iter().filter(|c| c.refused.is_none()).count(),
            "{label}: {v}"
        );
        let last = records.last().unwrap();
        assert_eq!(
            (&last["actor"], &last["result"]),
            (&json!("admin"), &json!("denied")),
            "{last}"
        );
        let detail = last["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("Pod ") && detail.contains("index-good") && detail.contains("index-bad: "),
            "{detail}"
        );

        // A real client, as the reader: skopeo gets the right image and the
        // refusal of the tampered one.
        assert!(
            common::have_tool("skopeo") || !common::tools_required(),
            "skopeo is needed"
        );
        if common::have_tool("skopeo") {
            for (tag, served) in [("right-bundle", true), ("tampered", false)] {
                let out = tokio::process::Command::new("skopeo")
                    .args([
                        "inspect",
                        "--raw",
                        "--tls-verify=false",
                        "--creds",
                        &format!("dev:{PW}"),
                        &format!("docker://{}", name(tag)),
                    ])
                    .env("HOME", dir)
                    .output()
                    .await
                    .unwrap();
                let err = String::from_utf8_lossy(&out.stderr);
                assert_eq!(out.status.success(), served, "{label} skopeo {tag}: {err}");
                if !served {
                    assert!(err.contains("tampered"), "{label}: {err}");
                }
            }
        }

        // An attestation pushed later is seen at once (the verdict is cached
        // by what it depends on, and a new `.att` manifest is a new one).
        attest(
            &s,
            dir,
            "acme/app",
            "none",
            ("slsaprovenance1", "right.json", "alice", "bundle"),
        )
        .await;
        assert_eq!(reader_pull(&s, "dev", "acme/app", "none").await.0, 200, "{label}");
        // A key revoked (mallory's is not trusted anyway): alice's gone, nothing passes.
        let (_, keys) = call(&s, Method::GET, "/api/v1/accounts/alice/keys", Value::Null).await;
        let id = keys[0]["id"].as_str().unwrap();
        let (st, v) = call(
            &s,
            Method::DELETE,
            &format!("/api/v1/accounts/alice/keys/{id}"),
            Value::Null,
        )
        .await;
        assert!(st == 200 || st == 204, "{v}");
        let (st, text) = reader_pull(&s, "dev", "acme/app", "right-tag").await;
        assert_eq!(st, 403, "{label}: served with the signer's key revoked");
        assert!(text.contains("untrusted signer"), "{text}");
    }
}

/// A policy demanding provenance promotes only the right images, records
/// why each other one failed, and copies the attestations (both forms)
/// with the image, so the target's own rule passes it; an attestation
/// pushed after the image sets the policy off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_demands_provenance_and_carries_it() {
    for backend in backends() {
        let (s, work, _) = world(&backend, "acme/app-build").await;
        let (label, dir) = (s.label(), work.path());

        let policies = "/api/v1/repositories/acme/app-build/policies";
        let (st, v) = call(
            &s,
            Method::POST,
            policies,
            json!({"target": "acme/app", "tag_template": "%n",
                   "require_provenance": {"signed_by": {"accounts": ["nobody"]}}}),
        )
        .await;
        assert_eq!(st, 400, "{label}: {v}");
        assert!(v.to_string().contains("account nobody"), "{v}");
        let (st, v) = call(
            &s,
            Method::POST,
            policies,
            json!({"target": "acme/app", "tag_template": "%n", "require_provenance": rule(),
                   "apply_existing": true}),
        )
        .await;
        assert_eq!(st, 201, "{label}: {v}");
        assert_eq!(v["require_provenance"], rule(), "{v}");
        let id = v["id"].as_str().unwrap().to_string();
        let evaluations = v["evaluations"].as_array().unwrap().clone();
        let outcome = |tag: &str| {
            evaluations
                .iter()
                .find(|e| e["tag"] == tag)
                .unwrap_or_else(|| panic!("{label}: no evaluation of {tag}: {v}"))
                .clone()
        };
        for case in &CASES {
            let e = outcome(case.tag);
            match case.refused {
                None => assert_eq!(e["outcome"], "promoted", "{label} {}: {e}", case.tag),
                Some(says) => {
                    assert_eq!(e["outcome"], "failed", "{label} {}: {e}", case.tag);
                    let facts = e["detail"]["images"][0]["provenance"]["facts"]
                        .as_str()
                        .unwrap_or_default();
                    assert!(facts.contains(says), "{label} {}: {e}", case.tag);
                    let (st, _) = reader_pull(&s, "dev", "acme/app", case.tag).await;
                    assert_eq!(st, 404, "{label} {}: promoted", case.tag);
                }
            }
        }
        let e = outcome("index-bad");
        assert_eq!(e["outcome"], "failed", "{label}: {e}");
        let images = e["detail"]["images"].as_array().unwrap();
        let passed: Vec<&Value> = images.iter().map(|i| &i["provenance"]["passed"]).collect();
        assert_eq!(passed, [&json!(true), &json!(false)], "{label}: {e}");

        // The attestations travelled: verify-attestation finds them in the
        // target, and the target's own provenance rule serves the images.
        let (st, v) = set_pull_rule(&s, "acme/app", json!({ "require_provenance": rule() })).await;
        assert_eq!(st, 200, "{v}");
        for (tag, form) in [("right-tag", "tag"), ("right-bundle", "bundle")] {
            let (st, text) = reader_pull(&s, "dev", "acme/app", tag).await;
            assert_eq!(st, 200, "{label} {tag}: {text}");
            let image = format!("docker://{}/acme/app:{tag}", host(&s));
            let alice = path(dir, "alice.pub");
            let args = [
                "verify-attestation",
                &image,
                "--type",
                "slsaprovenance1",
                "--key",
                &alice,
                "--builder-id",
                "https://ci.acme.example/**",
                "--format",
                "json",
            ];
            let (code, v, _, err) = admin_cli(&s, &args).await;
            assert_eq!(code, 0, "{label} {tag}: {v} {err}");
            assert_eq!(v["attestations"][0]["form"], form, "{v}");
        }
        let (st, _) = reader_pull(&s, "dev", "acme/app", "right-v02").await;
        assert_eq!(st, 200, "{label}");

        // An image pushed before its attestation: refused first, promoted
        // once the attestation is pushed.
        s.push_image("acme/app-build", "late", b"{\"late\":1}", &[b"late layer"])
            .await;
        let list = format!("{policies}/{id}/evaluations");
        common::until(&s, &list, |v| {
            v.as_array()
                .is_some_and(|l| l.iter().any(|e| e["tag"] == "late" && e["outcome"] == "failed"))
        })
        .await;
        attest(
            &s,
            dir,
            "acme/app-build",
            "late",
            ("slsaprovenance1", "right.json", "alice", "tag"),
        )
        .await;
        common::until(&s, &list, |v| {
            v.as_array()
                .is_some_and(|l| l.iter().any(|e| e["tag"] == "late" && e["outcome"] == "promoted"))
        })
        .await;
        assert_eq!(reader_pull(&s, "dev", "acme/app", "late").await.0, 200, "{label}");

        // The `.att` tags those attestations were pushed under travel with
        // their images: no policy judges them as images of their own.
        let (st, v) = call(&s, Method::GET, &list, Value::Null).await;
        assert_eq!(st, 200, "{v}");
        let judged: Vec<&str> = v.as_array().unwrap().iter().filter_map(|e| e["tag"].as_str()).collect();
        assert!(judged.contains(&"late"), "{label}: {judged:?}");
        assert!(
            !judged.iter().any(|t| t.starts_with("sha256-")),
            "{label}: cosign tags were evaluated as images: {judged:?}"
        );
    }
}

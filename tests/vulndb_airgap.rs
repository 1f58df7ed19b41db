//! The vulnerability database carried to a registry no network reaches
//! (issue 20 §4, air-gapped transfer): `db export` and `db push --key`
//! on the connected side, the artifact and its signature carried across
//! by skopeo through an OCI layout (as an operator's removable disk
//! would), then `db pull --key` on the other side, and `serve` pulling on
//! its own schedule. An unsigned copy, one signed by an unknown key and
//! one whose layer was altered are refused and the generation in force
//! keeps serving. Registries on SQLite and PostgreSQL.

mod common;

use std::path::Path;
use std::time::Duration;

use common::signing::key_pair;
use common::{backends, cli, have_tool, openssl, TestServer, ADMIN_PASSWORD};
use portcullis_oci::Digest;
use serde_json::Value;

fn shared(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/vulndb")
        .join(name)
        .display()
        .to_string()
}

/// As [`cli`], asserting success; stdout.
async fn ok(args: &[&str]) -> String {
    let (code, out, err) = cli(args, &[]).await;
    assert_eq!(code, 0, "portcullis {args:?}: {out} {err}");
    out
}

/// `db status --format json` of `data`.
async fn status(data: &Path) -> Value {
    let data = data.to_str().unwrap();
    serde_json::from_str(&ok(&["db", "status", "--format", "json", "--data", data]).await).unwrap()
}

/// What must cross intact: per source its name, format, records,
/// rejected and import time; and the time the data was current.
fn carried(status: &Value) -> (Value, Vec<(String, String, u64, u64, u64)>) {
    let sources = status["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["format"].as_str().unwrap().to_string(),
                s["records"].as_u64().unwrap(),
                s["rejected"].as_u64().unwrap(),
                s["imported_at"].as_u64().unwrap(),
            )
        })
        .collect();
    (status["imported_at"].clone(), sources)
}

/// A signing key made by OpenSSL as PKCS#8 (`NAME.p8`) and its public half (`NAME.pub`).
fn signer(dir: &Path, name: &str) -> (String, String) {
    let (key, public) = key_pair(dir, name);
    openssl(
        &[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            &key,
            "-out",
            &format!("{name}.p8"),
        ],
        dir,
    );
    std::fs::write(dir.join(format!("{name}.pub")), public).unwrap();
    let path = |f: String| dir.join(f).to_str().unwrap().to_string();
    (path(format!("{name}.p8")), path(format!("{name}.pub")))
}

fn host(s: &TestServer) -> String {
    s.base.trim_start_matches("http://").to_string()
}

/// `skopeo copy --all --preserve-digests FROM TO`, credentials for
/// whichever side is a registry.
async fn skopeo_copy(from: &str, to: &str, from_creds: Option<&str>, to_creds: Option<&str>, home: &Path) {
    let mut args = vec!["copy", "--all", "--preserve-digests"];
    if let Some(c) = from_creds {
        args.extend(["--src-tls-verify=false", "--src-creds", c]);
    }
    if let Some(c) = to_creds {
        args.extend(["--dest-tls-verify=false", "--dest-creds", c]);
    }
    args.extend([from, to]);
    let out = tokio::process::Command::new("skopeo")
        .args(&args)
        .env("HOME", home)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A database on the connected side, three sources, made an hour and a
/// half old (its import time is what its age counts from).
async fn online_database(data: &Path) {
    let d = data.to_str().unwrap();
    ok(&[
        "db",
        "import",
        &shared("npm.osv.jsonl.gz"),
        &shared("alpine.osv.jsonl.gz"),
        &shared("sample.osv.jsonl"),
        "--data",
        d,
    ])
    .await;
    let dir = data.join("vulndb");
    let generation = std::fs::read_to_string(dir.join("CURRENT")).unwrap();
    let path = dir.join(generation.trim()).join("status.json");
    let mut status: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let then = status["imported_at"].as_u64().unwrap() - 5400;
    status["imported_at"] = then.into();
    for s in status["sources"].as_array_mut().unwrap() {
        s["imported_at"] = then.into();
    }
    std::fs::write(&path, serde_json::to_vec(&status).unwrap()).unwrap();
}

/// Flips a byte near the end of a stored blob, in place: the storage (or
/// someone with access to it) altered what the registry serves.
fn tamper_blob(s: &TestServer, digest: &str) {
    let d: Digest = digest.parse().unwrap();
    let path = s.dir.path().join("blobs/sha256").join(&d.hex()[..2]).join(d.hex());
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 20;
    bytes[at] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
}

/// `db pull` refuses (exit 1, `why` in its message) and the generation in
/// force of `data` stays `generation`, with the refusal in its status.
async fn refused(args: &[String], why: &str, data: &Path, generation: &Value) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = cli(&args, &[]).await;
    assert_eq!(code, 1, "{args:?} must be refused: {out} {err}");
    assert!(err.contains(why), "{args:?}: {err}");
    assert!(err.contains("the database in force is unchanged"), "{err}");
    let now = status(data).await;
    assert_eq!(&now["generation"], generation, "{why}: the generation in force changed");
    let last_error = now["pull"]["last_error"].as_str().unwrap_or_default();
    assert!(last_error.contains(why), "{now}");
}

/// Export, push signed, carry across with skopeo (artifact and signature
/// tag), pull with the key on the other side: the same sources, counts
/// and dates. Then the refusals, each leaving the generation in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_database_crosses_the_air_gap_and_nothing_else_does() {
    if !have_tool("skopeo") {
        return;
    }
    for backend in backends() {
        let online = TestServer::start(&backend).await;
        let offline = TestServer::start(&backend).await;
        let label = online.label();
        let work = tempfile::tempdir().unwrap();
        let dir = work.path();
        let (signer_key, signer_pub) = signer(dir, "release");
        let (stranger_key, stranger_pub) = signer(dir, "stranger");
        let online_data = dir.join("online");
        let offline_data = dir.join("offline");
        let (od, fd) = (online_data.to_str().unwrap(), offline_data.to_str().unwrap());
        online_database(&online_data).await;
        let online_creds = format!("admin:{}", online.admin_token);
        let offline_creds = format!("admin:{}", offline.admin_token);
        // `db push` of `data` to `tag` in `s`, signed by `key` if any: its report.
        let push = |s: &TestServer, tag: &str, data: &str, key: Option<&str>| {
            let artifact = format!("{}/security/vulndb:{tag}", host(s));
            let creds = format!("admin:{}", s.admin_token);
            let key = key.map(str::to_string);
            let data = data.to_string();
            async move {
                let mut args = vec!["db", "push", &artifact, "--format", "json", "--data", &data];
                args.extend(["--tls-verify=false", "--creds", &creds]);
                if let Some(k) = &key {
                    args.extend(["--key", k]);
                }
                serde_json::from_str::<Value>(&ok(&args).await).unwrap()
            }
        };
        // `db pull` of `tag` in the disconnected registry into its data, trusting `keys`.
        let pull = |tag: &str, keys: &[&str]| -> Vec<String> {
            let mut args: Vec<String> = [
                "db",
                "pull",
                "--format",
                "json",
                "--data",
                fd,
                "--tls-verify=false",
                "--creds",
            ]
            .map(String::from)
            .into();
            args.push(offline_creds.clone());
            args.push(format!("{}/security/vulndb:{tag}", host(&offline)));
            for k in keys {
                args.extend(["--key".to_string(), k.to_string()]);
            }
            args
        };
        let pulled = |args: Vec<String>| async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            serde_json::from_str::<Value>(&ok(&args).await).unwrap()
        };

        // The connected side: one file, then that file pushed and signed.
        let export = dir.join("vulndb.tar.zst");
        let manifest: Value = serde_json::from_str(
            &ok(&[
                "db",
                "export",
                export.to_str().unwrap(),
                "--format",
                "json",
                "--data",
                od,
            ])
            .await,
        )
        .unwrap();
        assert_eq!(manifest["sources"].as_array().unwrap().len(), 3, "{manifest}");
        let artifact = format!("{}/security/vulndb:latest", host(&online));
        let args = [
            "db",
            "push",
            &artifact,
            "--key",
            &signer_key,
            "--file",
            export.to_str().unwrap(),
            "--format",
            "json",
            "--data",
            od,
            "--tls-verify=false",
            "--creds",
            &online_creds,
        ];
        let pushed: Value = serde_json::from_str(&ok(&args).await).unwrap();
        let digest = pushed["digest"].as_str().unwrap().to_string();
        assert!(
            pushed["signature"]["key_id"].as_str().unwrap().starts_with("sha256:"),
            "{pushed}"
        );
        // The tools already here see a signed artifact of our type.
        let raw: Value = serde_json::from_slice(&online.manifest_bytes("security/vulndb", &digest).await).unwrap();
        assert_eq!(raw["artifactType"], "application/vnd.portcullis.vulndb.v1", "{raw}");
        assert_eq!(
            raw["layers"][0]["mediaType"],
            "application/vnd.portcullis.vulndb.layer.v1.tar+zstd"
        );
        assert_eq!(
            raw["layers"][0]["size"].as_u64(),
            Some(std::fs::metadata(&export).unwrap().len())
        );
        let reach = ["--tls-verify=false", "--creds", &online_creds];
        ok(&[&["verify", &artifact, "--key", &signer_pub][..], &reach].concat()).await;

        // Across the gap: the artifact and its signature tag into an OCI
        // layout, and from there into the disconnected registry.
        let sig_tag = format!("sha256-{}.sig", digest.trim_start_matches("sha256:"));
        let disk = dir.join("removable-disk");
        for (tag, name) in [("latest", "db"), (sig_tag.as_str(), "sig")] {
            let layout = format!("oci:{}:{name}", disk.display());
            let from = format!("docker://{}/security/vulndb:{tag}", host(&online));
            skopeo_copy(&from, &layout, Some(&online_creds), None, dir).await;
            let to = format!("docker://{}/security/vulndb:{tag}", host(&offline));
            skopeo_copy(&layout, &to, None, Some(&offline_creds), dir).await;
        }
        let report = pulled(pull("latest", &[&signer_pub])).await;
        assert_eq!(
            (report["result"].as_str(), report["digest"].as_str()),
            (Some("imported"), Some(digest.as_str())),
            "{label}: {report}"
        );
        let (before, after) = (status(&online_data).await, status(&offline_data).await);
        assert_eq!(
            carried(&after),
            carried(&before),
            "{label}: sources, counts and dates cross unchanged"
        );
        assert_eq!(after["pull"]["digest"], digest.as_str(), "{after}");
        let generation = after["generation"].clone();
        // Pulled again: nothing new to import.
        assert_eq!(pulled(pull("latest", &[&signer_pub])).await["result"], "unchanged");
        assert_eq!(status(&offline_data).await["generation"], generation);

        // Copies of another database: one nobody signed, one signed by a
        // key this registry does not trust (taken once its key is given).
        let other = dir.join("other");
        let other = other.to_str().unwrap();
        ok(&["db", "import", &shared("sample.osv.jsonl"), "--data", other]).await;
        push(&offline, "unsigned", other, None).await;
        refused(
            &pull("unsigned", &[&signer_pub]),
            "unsigned",
            &offline_data,
            &generation,
        )
        .await;
        push(&offline, "stranger", other, Some(&stranger_key)).await;
        let why = "signed by an unknown key";
        refused(&pull("stranger", &[&signer_pub]), why, &offline_data, &generation).await;
        assert_eq!(
            pulled(pull("stranger", &[&signer_pub, &stranger_pub])).await["result"],
            "imported"
        );
        // Back to the release's copy.
        assert_eq!(pulled(pull("latest", &[&signer_pub])).await["result"], "imported");
        let generation = status(&offline_data).await["generation"].clone();

        // A newer signed release whose layer was altered in the
        // disconnected registry's storage after it arrived.
        ok(&["db", "import", &shared("go.osv.jsonl.gz"), "--data", od]).await;
        let v2 = push(&offline, "v2", od, Some(&signer_key)).await;
        tamper_blob(&offline, v2["layer"].as_str().unwrap());
        refused(
            &pull("v2", &[&signer_pub]),
            "digest mismatch",
            &offline_data,
            &generation,
        )
        .await;
        let kept = status(&offline_data).await;
        assert_eq!(
            carried(&kept),
            carried(&before),
            "{label}: the previous database still serves"
        );

        // A manifest altered after signing is no longer what was signed,
        // even with the old signature copied beside it.
        let mut forged = raw.clone();
        forged["annotations"]["io.portcullis.vulndb.generation"] = "99".into();
        let forged = serde_json::to_vec(&forged).unwrap();
        let r = offline.put_manifest("security/vulndb", "forged", forged.clone()).await;
        assert_eq!(r.status(), 201);
        let sig = offline.manifest_bytes("security/vulndb", &sig_tag).await;
        let forged_sig = format!("sha256-{}.sig", Digest::sha256_of(&forged).hex());
        let r = offline.put_manifest("security/vulndb", &forged_sig, sig.to_vec()).await;
        assert_eq!(r.status(), 201);
        refused(&pull("forged", &[&signer_pub]), why, &offline_data, &generation).await;
    }
}

/// `serve` with `vulndb_pull` on its own repository pulls on its schedule:
/// nothing there yet is an error it retries; a signed push is imported;
/// an unsigned one under the same tag is refused (the database stays and
/// the refusal shows in `GET /api/v1/vulndb`); a newer signed one goes in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_pulls_newly_pushed_signed_exports_by_itself() {
    for backend in backends() {
        let work = tempfile::tempdir().unwrap();
        let dir = work.path();
        let (signer_key, signer_pub) = signer(dir, "release");
        let key = portcullis_sign::PublicKey::from_pem(&std::fs::read_to_string(&signer_pub).unwrap()).unwrap();
        let s = TestServer::start_tuned(&backend, portcullis_server::Anonymous::None, |o| {
            let own = o.webhooks.public_url.trim_start_matches("http://").to_string();
            o.scan.pull = portcullis_server::PullSettings {
                reference: Some(format!("{own}/security/vulndb:latest")),
                interval: Duration::from_secs(1),
                options: portcullis_vulndb::PullOptions {
                    access: portcullis_vulndb::Access {
                        creds: Some(format!("admin:{ADMIN_PASSWORD}")),
                        tls_verify: false,
                        ..Default::default()
                    },
                    keys: vec![key],
                    limits: portcullis_vulndb::Limits::default(),
                },
            };
        })
        .await;
        let label = s.label();
        let online = dir.join("online");
        let od = online.to_str().unwrap();
        online_database(&online).await;
        let creds = format!("admin:{}", s.admin_token);
        let reach = ["--tls-verify=false", "--creds", &creds];
        let artifact = format!("{}/security/vulndb:latest", host(&s));
        let vulndb = || async { common::json_of(s.http.get(s.url("/api/v1/vulndb"))).await["status"].clone() };
        let wait = |what: &'static str, ready: Box<dyn Fn(&Value) -> bool>| async move {
            for _ in 0..300 {
                let v = vulndb().await;
                if ready(&v) {
                    return v;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("{label}: within 30 s, {what}: {}", vulndb().await);
        };

        // Nothing pushed yet: a failed pull, shown, and retried.
        let v = wait(
            "a failed first pull",
            Box::new(|v| v["pull"]["last"]["last_error"].is_string()),
        )
        .await;
        assert_eq!(v["pull"]["configured"], artifact.as_str(), "{v}");
        assert!(v["generation"].is_null(), "{v}");

        // Another database, for the copy nobody signs.
        let other = dir.join("other");
        let other = other.to_str().unwrap();
        ok(&["db", "import", &shared("sample.osv.jsonl"), "--data", other]).await;
        let push = |data: &'static str, sign: bool| {
            let (artifact, reach, key) = (
                format!("{}/security/vulndb:latest", host(&s)),
                reach,
                signer_key.clone(),
            );
            let data = if data == "online" { od } else { other };
            async move {
                let mut args = vec!["db", "push", &artifact, "--format", "json", "--data", data];
                if sign {
                    args.extend(["--key", key.as_str()]);
                }
                args.extend(reach);
                let v: Value = serde_json::from_str(&ok(&args).await).unwrap();
                v["digest"].as_str().unwrap().to_string()
            }
        };
        let first = push("online", true).await;
        let v = wait(
            "the signed export imported",
            Box::new(move |v| v["pull"]["last"]["digest"] == first.as_str() && v["generation"].is_u64()),
        )
        .await;
        assert_eq!(v["records"].as_u64(), Some(467 + 2469 + 30), "{v}");
        assert!(v["pull"]["last"]["last_error"].is_null(), "{v}");
        let generation = v["generation"].clone();
        // The scanner loads it, as after `db import`.
        wait(
            "the scanner loaded it",
            Box::new(move |v| v["loaded_generation"] == v["generation"]),
        )
        .await;

        // The same tag, unsigned now: refused; the database stays.
        push("other", false).await;
        let v = wait(
            "the unsigned copy refused",
            Box::new(|v| {
                v["pull"]["last"]["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("unsigned"))
            }),
        )
        .await;
        assert_eq!(v["generation"], generation, "{label}: {v}");

        // A newer release, signed: imported.
        ok(&["db", "import", &shared("go.osv.jsonl.gz"), "--data", od]).await;
        let newer = push("online", true).await;
        let v = wait(
            "the newer signed export imported",
            Box::new(move |v| {
                v["pull"]["last"]["digest"] == newer.as_str() && v["pull"]["last"]["last_error"].is_null()
            }),
        )
        .await;
        assert_eq!(v["records"].as_u64(), Some(467 + 2469 + 30 + 4291), "{v}");
        assert_ne!(v["generation"], generation);

        // Sources cannot be set beside a pull.
        let (st, body) = common::call(
            &s,
            reqwest::Method::PUT,
            "/api/v1/vulndb/sources",
            serde_json::json!({"sources": ["https://example.org/x.json"]}),
        )
        .await;
        assert_eq!(st, 400, "{body}");
        // Imports and the refusal are in the audit trail.
        let audit = common::json_of(s.http.get(s.url("/api/v1/audit?action=vulndb.pull"))).await;
        let results: Vec<&str> = audit
            .as_array()
            .or(audit["records"].as_array())
            .into_iter()
            .flatten()
            .filter(|r| r["action"] == "vulndb.pull")
            .filter_map(|r| r["result"].as_str())
            .collect();
        assert!(
            results.contains(&"ok") && results.contains(&"failed"),
            "{label}: {audit}"
        );
    }
}

//! Pull replication from a real upstream on loopback: CNCF Distribution
//! (`docker-registry`) behind htpasswd (bcrypt, made by Python's `crypt`
//! over libxcrypt, at the lowest cost Distribution accepts: it checks the
//! password on every request), on SQLite and PostgreSQL. A multi-arch index comes over
//! whole with its cosign signature, byte-identical (skopeo reads both
//! sides); under `require_signed_by` an image signed with the trusted key
//! (tag form and bundle form) is imported and an unsigned one and one
//! signed by another key are refused with their reasons; a blob altered in
//! the upstream's storage is refused (digest mismatch); a moved upstream
//! tag is copied again on the next run, and recorded as a conflict when the
//! local tag is immutable; a second Portcullis is replicated
//! from through Docker's token flow; an HTTPS upstream whose certificate a
//! private CA issued is reached with `ca_pem` (or `tls_verify: false`); a scheduled rule runs by itself and
//! mounts the blobs held here instead of downloading them; credentials
//! appear in no response and no audit record; provenance is shown and
//! audited; runs announce themselves through the outbox.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{backends, call, free_port, have_tool, image_manifest, TestServer, ADMIN_PASSWORD};
use portcullis_oci::Digest;
use portcullis_registry_client::{Access, RegistryClient, SignatureForm};
use portcullis_sign::SigningKey;
use reqwest::Method;
use serde_json::{json, Value};

const UPSTREAM_USER: &str = "mirror-bot";
const UPSTREAM_PASSWORD: &str = "upstream-pw-7f3a9c1e";

/// A Distribution registry with htpasswd authentication.
struct Upstream {
    child: Child,
    host: String,
    data: PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Upstream {
    fn start() -> Upstream {
        Upstream::start_with(false)
    }

    /// With `tls`, over HTTPS with a certificate from a CA made here
    /// (`ca.crt` in [`Upstream::dir`]).
    fn start_with(tls: bool) -> Upstream {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("python3")
            .args([
                "-W",
                "ignore",
                "-c",
                "import crypt,sys; print(sys.argv[1] + ':' + crypt.crypt(sys.argv[2], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))",
                UPSTREAM_USER,
                UPSTREAM_PASSWORD,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "bcrypt: {}", String::from_utf8_lossy(&out.stderr));
        let entry = String::from_utf8(out.stdout).unwrap();
        assert!(entry.contains(":$2"), "a bcrypt entry: {entry}");
        std::fs::write(dir.path().join("htpasswd"), entry).unwrap();
        let port = free_port();
        let data = dir.path().join("data");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: upstream\n    path: {}\n",
            data.display(),
            dir.path().join("htpasswd").display()
        );
        if tls {
            common::tls_ca_and_server_cert(dir.path());
            let d = dir.path().display();
            config = config.replace(
                &format!("  addr: 127.0.0.1:{port}\n"),
                &format!(
                    "  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {d}/server.crt\n    key: {d}/server.key\n"
                ),
            );
        }
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let child = Command::new("docker-registry")
            .args(["serve", dir.path().join("config.yml").to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let host = format!("127.0.0.1:{port}");
        for _ in 0..100 {
            if std::net::TcpStream::connect(&host).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Upstream { child, host, data, dir }
    }

    /// Stops the registry (its storage stays), as an outage would.
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the stopped registry again, on the same address and storage.
    fn resume(&mut self) {
        self.child = Command::new("docker-registry")
            .args(["serve", self.dir.path().join("config.yml").to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(&self.host).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The digest the registry has under `repo:reference`, if any.
    async fn digest_of(&self, repo: &str, reference: &str) -> Option<Digest> {
        self.client(repo).manifest_head(reference).await.ok().map(|h| h.digest)
    }

    fn client(&self, repo: &str) -> RegistryClient {
        let access = Access {
            creds: Some(format!("{UPSTREAM_USER}:{UPSTREAM_PASSWORD}")),
            tls_verify: false,
            ..Access::default()
        };
        RegistryClient::new(&self.host, repo, &access).unwrap()
    }

    /// Pushes a one-layer image under `tag`: its digest.
    async fn push_image(&self, repo: &str, tag: &str, seed: &str) -> Digest {
        let c = self.client(repo);
        let config = format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"seed\":\"{seed}\"}}");
        let layer = common::gzip(&common::tar_of(&[("etc/seed", seed.as_bytes())]));
        let cd = c.push_blob(config.as_bytes()).await.unwrap();
        let ld = c.push_blob(&layer).await.unwrap();
        let m = image_manifest(&cd, config.len(), &[(ld, layer.len())]);
        c.put_manifest(tag, "application/vnd.oci.image.manifest.v1+json", &m)
            .await
            .unwrap()
    }

    /// Pushes a two-platform index under `tag`: its digest.
    async fn push_index(&self, repo: &str, tag: &str) -> Digest {
        let c = self.client(repo);
        let mut entries = Vec::new();
        for arch in ["amd64", "arm64"] {
            let d = self.push_image(repo, &format!("tmp-{arch}"), arch).await;
            let m = c.manifest(d.as_str()).await.unwrap();
            entries.push(json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": d.as_str(), "size": m.bytes.len(),
                "platform": {"architecture": arch, "os": "linux"}}));
        }
        let index = serde_json::to_vec(&json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries}))
        .unwrap();
        c.put_manifest(tag, "application/vnd.oci.image.index.v1+json", &index)
            .await
            .unwrap()
    }

    async fn sign(&self, repo: &str, tag: &str, key: &SigningKey, form: SignatureForm) {
        self.client(repo)
            .sign(&format!("{}/{repo}", self.host), tag, key, form, "2026-01-01T00:00:00Z")
            .await
            .unwrap();
    }

    /// Overwrites a blob's bytes in the upstream's storage (same length),
    /// so the registry serves bytes that do not hash to the digest.
    fn tamper(&self, digest: &Digest) {
        let path = self.blob_file(digest);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }

    /// Appends a MiB to a blob in the upstream's storage, so the registry
    /// serves more bytes than the manifest declares.
    fn grow(&self, digest: &Digest) {
        let path = self.blob_file(digest);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend(std::iter::repeat_n(0u8, 1 << 20));
        std::fs::write(&path, bytes).unwrap();
    }

    /// Where Distribution keeps a blob's bytes.
    fn blob_file(&self, digest: &Digest) -> std::path::PathBuf {
        self.data
            .join("docker/registry/v2/blobs/sha256")
            .join(&digest.hex()[..2])
            .join(digest.hex())
            .join("data")
    }
}

/// `skopeo inspect --raw` of an image, as its bytes' digest.
fn raw_digest(reference: &str, creds: &str) -> Digest {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", "--creds", creds, reference])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Digest::sha256_of(&out.stdout)
}

/// Runs rule `id` and waits for the run to finish: the run's record.
async fn run_rule(s: &TestServer, id: &str) -> Value {
    let (status, started) = call(
        s,
        Method::POST,
        &format!("/api/v1/replication-rules/{id}/run"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 202, "{started}");
    let run_id = started["run_id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/replication-rules/{id}/runs");
    let runs = common::until(s, &path, |v| {
        v.as_array().is_some_and(|l| {
            l.iter()
                .any(|r| r["id"] == run_id.as_str() && !r["finished_at"].is_null())
        })
    })
    .await;
    runs.as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == run_id.as_str())
        .cloned()
        .unwrap()
}

async fn create_rule(s: &TestServer, body: Value) -> String {
    let (status, v) = call(s, Method::POST, "/api/v1/replication-rules", body).await;
    assert_eq!(status, 201, "{v}");
    v["id"].as_str().unwrap().to_string()
}

fn tags_of(run: &Value, list: &str) -> Vec<String> {
    let mut t: Vec<String> = run[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["tag"].as_str().unwrap().to_string())
        .collect();
    t.sort();
    t
}

fn reason(run: &Value, tag: &str) -> String {
    run["refused"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["tag"] == tag)
        .and_then(|i| i["reason"].as_str())
        .unwrap_or_else(|| panic!("{tag} not refused: {run}"))
        .to_string()
}

async fn local_digest(s: &TestServer, repo: &str, tag: &str) -> Option<String> {
    let r = s
        .http
        .head(s.url(&format!("/v2/{repo}/manifests/{tag}")))
        .header(
            "accept",
            "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
        )
        .send()
        .await
        .unwrap();
    (r.status() == 200).then(|| r.headers()["docker-content-digest"].to_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_replication_from_distribution() {
    if !have_tool("docker-registry") || !have_tool("skopeo") {
        return;
    }
    for backend in backends() {
        one_backend(&backend).await;
    }
}

async fn one_backend(backend: &common::Backend) {
    let up = Upstream::start();
    let (trusted, _) = SigningKey::generate().unwrap();
    let (other, _) = SigningKey::generate().unwrap();

    // The upstream's content.
    let index = up.push_index("library/multi", "1.0").await;
    up.sign("library/multi", "1.0", &trusted, SignatureForm::Tag).await;
    up.push_image("acme/app", "v1", "v1").await;
    up.sign("acme/app", "v1", &trusted, SignatureForm::Tag).await;
    up.push_image("acme/app", "v2", "v2").await;
    up.sign("acme/app", "v2", &trusted, SignatureForm::Bundle).await;
    up.push_image("acme/app", "unsigned", "unsigned").await;
    up.push_image("acme/app", "other", "other").await;
    up.sign("acme/app", "other", &other, SignatureForm::Tag).await;
    let tampered = up.push_image("acme/broken", "v1", "broken").await;
    let layer = {
        let m = up.client("acme/broken").manifest(tampered.as_str()).await.unwrap();
        let v: Value = serde_json::from_slice(&m.bytes).unwrap();
        v["layers"][0]["digest"].as_str().unwrap().parse::<Digest>().unwrap()
    };
    up.tamper(&layer);
    // A blob that grew upstream: more bytes than its manifest declares.
    let grown_image = up.push_image("acme/grown", "v1", "grown").await;
    let grown = {
        let m = up.client("acme/grown").manifest(grown_image.as_str()).await.unwrap();
        let v: Value = serde_json::from_slice(&m.bytes).unwrap();
        v["layers"][0]["digest"].as_str().unwrap().parse::<Digest>().unwrap()
    };
    up.grow(&grown);

    let s = TestServer::start(backend).await;
    let label = s.label();
    let hook_sink = free_port();
    // Hooks of the namespace the rules write into, an organization here.
    let (status, v) = call(&s, Method::POST, "/api/v1/orgs", json!({"name": "mirror"})).await;
    assert_eq!(status, 201, "{v}");
    let (status, hook) = call(
        &s,
        Method::POST,
        "/api/v1/namespaces/mirror/webhooks",
        json!({"url": format!("http://127.0.0.1:{hook_sink}/hook"),
               "events": ["REPLICATION_COMPLETED", "REPLICATION_FAILED"], "secret": "0123456789abcdef0123"}),
    )
    .await;
    assert_eq!(status, 201, "{hook}");
    let hook_id = hook["id"].as_str().unwrap().to_string();

    // Registries: the password is write-only, the connection tests out.
    let (status, v) = call(
        &s,
        Method::POST,
        "/api/v1/registries",
        json!({"name": "dist", "url": format!("http://{}", up.host), "username": UPSTREAM_USER,
               "password": UPSTREAM_PASSWORD, "tls_verify": true}),
    )
    .await;
    assert_eq!(status, 201, "{label}: {v}");
    assert_eq!(v["has_password"], true);
    let (_, v) = call(&s, Method::POST, "/api/v1/registries/dist/test", Value::Null).await;
    assert_eq!(v["ok"], true, "{label}: {v}");
    let (status, v) = call(
        &s,
        Method::POST,
        "/api/v1/registries",
        json!({"name": "wrong", "url": format!("http://{}", up.host), "username": UPSTREAM_USER,
               "password": "not-the-password"}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let (_, v) = call(&s, Method::POST, "/api/v1/registries/wrong/test", Value::Null).await;
    assert_eq!(v["ok"], false, "{label}: {v}");
    assert!(v["error"].as_str().unwrap().contains("refused"), "{v}");
    let (status, v) = call(
        &s,
        Method::PUT,
        "/api/v1/registries/wrong",
        json!({"password": UPSTREAM_PASSWORD}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (_, v) = call(&s, Method::POST, "/api/v1/registries/wrong/test", Value::Null).await;
    assert_eq!(v["ok"], true, "{label}: {v}");
    // A new address without the password again drops it: a sealed
    // password never goes to a server it was not given for.
    let (status, v) = call(
        &s,
        Method::PUT,
        "/api/v1/registries/wrong",
        json!({"url": format!("http://{}/", up.host.replace("127.0.0.1", "localhost"))}),
    )
    .await;
    assert_eq!(
        (status, v["has_password"].as_bool()),
        (200, Some(false)),
        "{label}: {v}"
    );
    let (status, _) = call(&s, Method::DELETE, "/api/v1/registries/wrong", Value::Null).await;
    assert_eq!(status, 204);
    // A push rule sends what is here: it asks no signatures.
    let (status, v) = call(
        &s,
        Method::POST,
        "/api/v1/replication-rules",
        json!({"name": "out", "registry": "dist", "direction": "push", "source": "a/b", "tags": ["*"], "target": "x",
               "require_signed_by": {"keys": [trusted.public.to_pem()]}}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(v.to_string().contains("pull rules"), "{v}");

    // 1. A multi-arch index with its signature, byte-identical.
    let multi = create_rule(
        &s,
        json!({"name": "multi", "registry": "dist", "direction": "pull", "source": "library/multi",
               "tags": ["1.*"], "target": "mirror", "interval_secs": 0, "enabled": true}),
    )
    .await;
    let run = run_rule(&s, &multi).await;
    assert_eq!(run["status"], "completed", "{label}: {run}");
    assert_eq!(tags_of(&run, "copied"), ["1.0"], "{run}");
    assert!(run["bytes"].as_i64().unwrap() > 0, "{run}");
    let local = s.base.trim_start_matches("http://").to_string();
    let admin = format!("admin:{ADMIN_PASSWORD}");
    let upstream_creds = format!("{UPSTREAM_USER}:{UPSTREAM_PASSWORD}");
    let sig_tag = format!("sha256-{}.sig", index.hex());
    for reference in ["1.0".to_string(), sig_tag.clone()] {
        let theirs = raw_digest(
            &format!("docker://{}/library/multi:{reference}", up.host),
            &upstream_creds,
        );
        let ours = raw_digest(&format!("docker://{local}/mirror/library/multi:{reference}"), &admin);
        assert_eq!(theirs, ours, "{label}: {reference} byte-identical");
    }
    assert_eq!(
        local_digest(&s, "mirror/library/multi", "1.0").await.as_deref(),
        Some(index.as_str())
    );
    // Both children came along.
    let index_bytes = up.client("library/multi").manifest("1.0").await.unwrap().bytes;
    let index_json: Value = serde_json::from_slice(&index_bytes).unwrap();
    for child in index_json["manifests"].as_array().unwrap() {
        let d = child["digest"].as_str().unwrap();
        let ours = raw_digest(&format!("docker://{local}/mirror/library/multi@{d}"), &admin);
        assert_eq!(ours.as_str(), d, "{label}: child {d}");
    }
    // Provenance, shown and audited.
    let (_, tag) = call(
        &s,
        Method::GET,
        "/api/v1/repositories/mirror/library/multi/tags/1.0",
        Value::Null,
    )
    .await;
    let from = &tag["replicated_from"];
    assert_eq!(from["registry"], "dist", "{tag}");
    assert_eq!(from["repository"], "library/multi");
    assert_eq!(from["tag"], "1.0");
    assert_eq!(from["digest"], index.as_str());
    assert_eq!(from["rule_id"], multi.as_str());
    // A second run finds nothing new.
    let again = run_rule(&s, &multi).await;
    assert_eq!(tags_of(&again, "skipped"), ["1.0"], "{again}");
    assert_eq!(again["bytes"], 0);

    // 2. Known good: only images signed by the trusted key come in.
    let signed = create_rule(
        &s,
        json!({"name": "signed", "registry": "dist", "direction": "pull", "source": "acme/app",
               "tags": ["*"], "target": "mirror/app", "interval_secs": 0, "enabled": true,
               "require_signed_by": {"keys": [trusted.public.to_pem()]}}),
    )
    .await;
    let run = run_rule(&s, &signed).await;
    assert_eq!(run["status"], "completed", "{label}: {run}");
    assert_eq!(tags_of(&run, "copied"), ["v1", "v2"], "{label}: {run}");
    assert_eq!(tags_of(&run, "refused"), ["other", "unsigned"], "{label}: {run}");
    assert!(reason(&run, "unsigned").contains("unsigned"), "{run}");
    assert!(reason(&run, "other").contains("unknown key"), "{run}");
    for item in run["copied"].as_array().unwrap() {
        assert_eq!(item["verified_key"], trusted.public.id.as_str(), "{item}");
    }
    assert!(local_digest(&s, "mirror/app", "unsigned").await.is_none());
    assert!(local_digest(&s, "mirror/app", "other").await.is_none());
    let (_, tag) = call(&s, Method::GET, "/api/v1/repositories/mirror/app/tags/v2", Value::Null).await;
    assert_eq!(
        tag["replicated_from"]["verified_key"],
        trusted.public.id.as_str(),
        "{tag}"
    );

    // 3. A moved upstream tag is copied again on the next run.
    let moved = up.push_image("acme/app", "v1", "v1-rebuilt").await;
    up.sign("acme/app", "v1", &trusted, SignatureForm::Tag).await;
    let run = run_rule(&s, &signed).await;
    assert_eq!(tags_of(&run, "copied"), ["v1"], "{label}: {run}");
    assert_eq!(tags_of(&run, "skipped"), ["v2"], "{run}");
    assert_eq!(
        local_digest(&s, "mirror/app", "v1").await.as_deref(),
        Some(moved.as_str())
    );

    // An immutable local tag is not moved: the run records the conflict.
    let (status, v) = call(
        &s,
        Method::PUT,
        "/api/v1/repositories/mirror/app",
        json!({"immutable_tags": true}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    up.push_image("acme/app", "v2", "v2-rebuilt").await;
    up.sign("acme/app", "v2", &trusted, SignatureForm::Tag).await;
    let run = run_rule(&s, &signed).await;
    assert_eq!(run["status"], "completed", "{label}: {run}");
    assert!(reason(&run, "v2").starts_with("conflict: "), "{run}");
    assert_eq!(run["bytes"], 0, "nothing downloaded for a tag that can't move: {run}");
    assert_eq!(tags_of(&run, "skipped"), ["v1"], "{run}");

    // 4. A blob altered upstream is refused, and so is one that sends more
    // than its manifest declares (cut off there): nothing of either is
    // stored.
    let mut refusing_rules = Vec::new();
    for (name, blob, says) in [
        ("broken", &layer, "digest mismatch"),
        ("grown", &grown, "more than the"),
    ] {
        let rule = create_rule(
            &s,
            json!({"name": name, "registry": "dist", "direction": "pull", "source": format!("acme/{name}"),
                   "tags": ["*"], "target": "mirror", "interval_secs": 0}),
        )
        .await;
        let run = run_rule(&s, &rule).await;
        assert_eq!(run["status"], "failed", "{label}: {run}");
        let why = reason(&run, "v1");
        assert!(why.contains(says) && why.contains(blob.as_str()), "{why}");
        assert!(local_digest(&s, &format!("mirror/acme/{name}"), "v1").await.is_none());
        assert!(s.registry.store.blob_size(blob).await.unwrap().is_none());
        refusing_rules.push(rule);
    }
    let broken = &refusing_rules[0];

    // 5. A scheduled rule runs by itself. The blobs it needs are held here
    // already, but only outside its target ("mirror/…"): an upstream naming
    // a digest proves nothing about having its bytes, so they are
    // downloaded and checked, never linked from another repository.
    let scheduled = create_rule(
        &s,
        json!({"name": "scheduled", "registry": "dist", "direction": "pull", "source": "library/*",
               "tags": ["1.0"], "target": "copy", "interval_secs": 5}),
    )
    .await;
    let runs = common::until(&s, &format!("/api/v1/replication-rules/{scheduled}/runs"), |v| {
        v.as_array().is_some_and(|l| {
            l.iter()
                .any(|r| r["cause"] == "schedule" && !r["finished_at"].is_null())
        })
    })
    .await;
    let first = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| !r["finished_at"].is_null())
        .unwrap();
    assert_eq!(first["status"], "completed", "{first}");
    assert_eq!(tags_of(first, "copied"), ["1.0"], "{first}");
    assert!(
        first["bytes"].as_u64().is_some_and(|b| b > 0),
        "blobs outside the target are downloaded, not linked: {first}"
    );
    assert_eq!(
        local_digest(&s, "copy/library/multi", "1.0").await.as_deref(),
        Some(index.as_str())
    );
    // Disabled, it runs no more.
    let (status, _) = call(
        &s,
        Method::PUT,
        &format!("/api/v1/replication-rules/{scheduled}"),
        json!({"enabled": false}),
    )
    .await;
    assert_eq!(status, 200);

    // Events through the outbox: the namespace's hook got one per run
    // into it, completed and failed alike.
    let deliveries = common::until(&s, &format!("/api/v1/webhooks/{hook_id}/deliveries"), |v| {
        let types: Vec<&str> = v["deliveries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["type"].as_str())
            .collect();
        types.contains(&"REPLICATION_COMPLETED") && types.contains(&"REPLICATION_FAILED")
    })
    .await;
    assert!(deliveries["deliveries"].as_array().unwrap().len() >= 3, "{deliveries}");

    // Credentials appear in no response and no audit record.
    let mut seen = String::new();
    for path in [
        "/api/v1/registries",
        "/api/v1/registries/dist",
        "/api/v1/replication-rules",
    ] {
        let (_, v) = call(&s, Method::GET, path, Value::Null).await;
        seen.push_str(&v.to_string());
    }
    let (_, audit) = call(&s, Method::GET, "/api/v1/audit?limit=1000", Value::Null).await;
    let audit_text = audit.to_string();
    seen.push_str(&audit_text);
    assert!(!seen.contains(UPSTREAM_PASSWORD), "{label}: the password leaked");
    assert!(!seen.contains("not-the-password"), "{label}: the password leaked");
    for action in [
        "registry.create",
        "registry.update",
        "registry.delete",
        "replication_rule.create",
        "replication_rule.update",
        "replication.import",
        "replication.run",
    ] {
        assert!(
            audit_text.contains(&format!("\"{action}\"")),
            "{label}: no {action} record"
        );
    }
    assert!(
        audit_text.contains("provenance=") && audit_text.contains(trusted.public.id.as_str()),
        "{label}: the import's record names its provenance and key"
    );
    // The stored row is sealed, not the password.
    let stored = s.registry.meta.upstream_registry("dist").await.unwrap().unwrap();
    assert!(!stored.sealed_password.unwrap().contains(UPSTREAM_PASSWORD));

    // Another Portcullis upstream: Docker's token flow (the challenge,
    // the token endpoint with the password, the bearer token).
    let other_pc = TestServer::start(backend).await;
    let (tool, _) = other_pc
        .push_image("lib/tool", "2.1", b"{\"os\":\"linux\"}", &[b"tool layer"])
        .await;
    let (status, v) = call(
        &s,
        Method::POST,
        "/api/v1/registries",
        json!({"name": "pc", "url": other_pc.base, "username": "admin", "password": ADMIN_PASSWORD}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let (_, v) = call(&s, Method::POST, "/api/v1/registries/pc/test", Value::Null).await;
    assert_eq!(v["ok"], true, "{label}: {v}");
    let from_pc = create_rule(
        &s,
        json!({"name": "from-pc", "registry": "pc", "source": "lib/*", "tags": ["2.*"], "target": "mirror"}),
    )
    .await;
    let run = run_rule(&s, &from_pc).await;
    assert_eq!(run["status"], "completed", "{label}: {run}");
    assert_eq!(tags_of(&run, "copied"), ["2.1"], "{run}");
    assert_eq!(
        local_digest(&s, "mirror/lib/tool", "2.1").await.as_deref(),
        Some(tool.as_str())
    );

    // Over HTTPS with a private CA: trusted through ca_pem, refused
    // without it, accepted with tls_verify false.
    let secure = Upstream::start_with(true);
    let ca = std::fs::read_to_string(secure.dir.path().join("ca.crt")).unwrap();
    let https = format!("https://{}", secure.host);
    let (status, v) = call(
        &s,
        Method::POST,
        "/api/v1/registries",
        json!({"name": "tls", "url": https, "username": UPSTREAM_USER, "password": UPSTREAM_PASSWORD}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let (_, v) = call(&s, Method::POST, "/api/v1/registries/tls/test", Value::Null).await;
    assert_eq!(v["ok"], false, "{label}: an unknown CA: {v}");
    let (status, v) = call(&s, Method::PUT, "/api/v1/registries/tls", json!({"ca_pem": ca})).await;
    assert_eq!(status, 200, "{v}");
    let (_, v) = call(&s, Method::POST, "/api/v1/registries/tls/test", Value::Null).await;
    assert_eq!(v["ok"], true, "{label}: the CA given: {v}");
    let (status, v) = call(
        &s,
        Method::PUT,
        "/api/v1/registries/tls",
        json!({"ca_pem": "", "tls_verify": false}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (_, v) = call(&s, Method::POST, "/api/v1/registries/tls/test", Value::Null).await;
    assert_eq!(v["ok"], true, "{label}: not verified: {v}");
    let (status, v) = call(
        &s,
        Method::PUT,
        "/api/v1/registries/tls",
        json!({"ca_pem": "not a certificate"}),
    )
    .await;
    assert_eq!(status, 400, "{v}");

    // A registry in use is not deleted; a rule goes with its runs.
    let (status, _) = call(&s, Method::DELETE, "/api/v1/registries/dist", Value::Null).await;
    assert_eq!(status, 409);
    let (status, _) = call(
        &s,
        Method::DELETE,
        &format!("/api/v1/replication-rules/{broken}"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 204);
}

/// Polls `ready` every 200 ms for at most 90 s: its value, or a panic
/// naming `what`.
async fn wait_for<T, F>(what: &str, mut ready: impl FnMut() -> F) -> T
where
    F: std::future::Future<Output = Option<T>>,
{
    for _ in 0..450 {
        if let Some(v) = ready().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{what}: not within 90 s");
}

/// Signs `repo:tag` on server `s` as its administrator, in cosign's `form`.
async fn sign_here(s: &TestServer, repo: &str, tag: &str, key: &SigningKey, form: SignatureForm) {
    let host = s.base.trim_start_matches("http://").to_string();
    let access = Access {
        creds: Some(format!("admin:{ADMIN_PASSWORD}")),
        tls_verify: false,
        ..Access::default()
    };
    RegistryClient::new(&host, repo, &access)
        .unwrap()
        .sign(&format!("{host}/{repo}"), tag, key, form, "2026-01-01T00:00:00Z")
        .await
        .unwrap();
}

/// `n` bytes that do not compress (xorshift from `seed`).
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Layer bytes of each platform of [`push_index_here`]'s index, at least.
const LAYER_BYTES: usize = 300_000;

/// Pushes a two-platform index to `repo:tag` on `s` (each image with a
/// layer of [`LAYER_BYTES`] that does not compress): its digest.
async fn push_index_here(s: &TestServer, repo: &str, tag: &str) -> Digest {
    let mut entries = Vec::new();
    for (seed, arch) in [(1, "amd64"), (2, "arm64")] {
        let config = format!("{{\"architecture\":\"{arch}\",\"os\":\"linux\"}}");
        let layer = common::gzip(&common::tar_of(&[("etc/noise", noise(seed, LAYER_BYTES).as_slice())]));
        let (d, bytes) = s
            .push_image(repo, &format!("build-{arch}"), config.as_bytes(), &[layer.as_slice()])
            .await;
        entries.push(json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": d.as_str(), "size": bytes.len(), "platform": {"architecture": arch, "os": "linux"}}));
    }
    let index = serde_json::to_vec(&json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries}))
    .unwrap();
    let r = s.put_index(repo, tag, index.clone()).await;
    assert_eq!(r.status(), 201);
    Digest::sha256_of(&index)
}

/// The bytes of the index `repo:reference` on `s`.
async fn index_bytes(s: &TestServer, repo: &str, reference: &str) -> Vec<u8> {
    let r = s
        .http
        .get(s.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header("accept", "application/vnd.oci.image.index.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "index {repo}:{reference}");
    r.bytes().await.unwrap().to_vec()
}

/// The runs of rule `id` on `s` once one with `cause` has finished: that run.
async fn finished_run(s: &TestServer, id: &str, cause: &str) -> Value {
    let runs = common::until(s, &format!("/api/v1/replication-rules/{id}/runs"), |v| {
        v.as_array()
            .is_some_and(|l| l.iter().any(|r| r["cause"] == cause && !r["finished_at"].is_null()))
    })
    .await;
    runs.as_array()
        .unwrap()
        .iter()
        .find(|r| r["cause"] == cause && !r["finished_at"].is_null())
        .cloned()
        .unwrap()
}

/// Push replication: a promotion into `acme/release` is sent, through the
/// queue its event fills, to Distribution behind htpasswd, byte-identical,
/// the index whole with its cosign signature (tag form) and its signature
/// referrer (bundle form); a full run finds nothing to send again; a
/// glob rule sends two repositories holding the same blobs and uploads
/// them once (the second repository mounts them); a second Portcullis
/// (token auth) receives the same image through `POST …/run`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_replication_after_a_promotion() {
    if !have_tool("docker-registry") || !have_tool("skopeo") {
        return;
    }
    for backend in backends() {
        push_one_backend(&backend).await;
    }
}

async fn push_one_backend(backend: &common::Backend) {
    let remote = Upstream::start();
    let s = TestServer::start(backend).await;
    let label = s.label();
    let (key, _) = SigningKey::generate().unwrap();
    let (status, v) = call(&s, Method::POST, "/api/v1/orgs", json!({"name": "acme"})).await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = call(
        &s,
        Method::POST,
        "/api/v1/registries",
        json!({"name": "dr", "url": format!("http://{}", remote.host), "username": UPSTREAM_USER,
               "password": UPSTREAM_PASSWORD}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let rule = create_rule(
        &s,
        json!({"name": "to-dr", "registry": "dr", "direction": "push", "source": "acme/release",
               "tags": ["*"], "target": "site/release"}),
    )
    .await;
    let (status, policy) = call(
        &s,
        Method::POST,
        "/api/v1/repositories/acme/build/policies",
        json!({"target": "acme/release", "tag_template": "%n", "enabled": true, "copy_referrers": true,
               "rules": [{"field": "tag", "operator": "eq", "values": ["1.0"]}]}),
    )
    .await;
    assert_eq!(status, 201, "{policy}");

    // Built, signed in both forms, then tagged 1.0: the promotion copies
    // it with its signatures into acme/release.
    let index = push_index_here(&s, "acme/build", "rc").await;
    sign_here(&s, "acme/build", "rc", &key, SignatureForm::Tag).await;
    sign_here(&s, "acme/build", "rc", &key, SignatureForm::Bundle).await;
    let r = s
        .put_index("acme/build", "1.0", index_bytes(&s, "acme/build", "rc").await)
        .await;
    assert_eq!(r.status(), 201);
    let promoted = wait_for("the promotion", || async {
        local_digest(&s, "acme/release", "1.0").await
    })
    .await;
    assert_eq!(promoted, index.as_str(), "{label}");

    // The promotion's event queued the push: it arrives by itself.
    let arrived = wait_for("the push to Distribution", || remote.digest_of("site/release", "1.0")).await;
    assert_eq!(arrived, index, "{label}");
    let run = finished_run(&s, &rule, "event").await;
    assert_eq!(run["status"], "completed", "{label}: {run}");
    assert!(tags_of(&run, "copied").contains(&"1.0".to_string()), "{label}: {run}");
    assert!(run["bytes"].as_i64().unwrap() > 2 * LAYER_BYTES as i64, "{run}");
    // A full run sends what was attached after the event's push (the
    // registry attests a promotion just after it commits, so the event's
    // push may or may not have found it); then a second finds everything
    // there: nothing sent again.
    let settle = run_rule(&s, &rule).await;
    assert_eq!(settle["status"], "completed", "{label}: {settle}");
    let again = run_rule(&s, &rule).await;
    assert_eq!(again["status"], "completed", "{label}: {again}");
    assert_eq!(tags_of(&again, "skipped"), ["1.0"], "{label}: {again}");
    assert_eq!(again["bytes"], 0, "{again}");
    let local = s.base.trim_start_matches("http://").to_string();
    let admin = format!("admin:{ADMIN_PASSWORD}");
    let remote_creds = format!("{UPSTREAM_USER}:{UPSTREAM_PASSWORD}");
    let sig_tag = format!("sha256-{}.sig", index.hex());
    for reference in [":1.0".to_string(), format!(":{sig_tag}")] {
        let ours = raw_digest(&format!("docker://{local}/acme/release{reference}"), &admin);
        let theirs = raw_digest(
            &format!("docker://{}/site/release{reference}", remote.host),
            &remote_creds,
        );
        assert_eq!(ours, theirs, "{label}: {reference} byte-identical");
    }
    // Both children, and the bundle referrer (listed under the referrers
    // tag schema: Distribution 2.8 has no referrers API).
    let index_json: Value = serde_json::from_slice(&index_bytes(&s, "acme/release", "1.0").await).unwrap();
    for child in index_json["manifests"].as_array().unwrap() {
        let d = child["digest"].as_str().unwrap();
        let theirs = raw_digest(&format!("docker://{}/site/release@{d}", remote.host), &remote_creds);
        assert_eq!(theirs.as_str(), d, "{label}: child {d}");
    }
    let (_, ours) = call(
        &s,
        Method::GET,
        &format!("/v2/acme/release/referrers/{index}"),
        Value::Null,
    )
    .await;
    let ours: Vec<String> = ours["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap().to_string())
        .collect();
    assert!(!ours.is_empty(), "{label}: the bundle was promoted with the image");
    let theirs = remote.client("site/release").referrers(&index, None).await.unwrap();
    for d in &ours {
        assert!(
            theirs.iter().any(|t| t["digest"] == d.as_str()),
            "{label}: referrer {d} sent"
        );
        let raw = raw_digest(&format!("docker://{}/site/release@{d}", remote.host), &remote_creds);
        assert_eq!(raw.as_str(), d, "{label}: referrer {d} byte-identical");
    }

    // Two repositories with the same layers, one run: each layer
    // uploaded once, then mounted (Distribution links blobs per
    // repository, so the second repository's HEADs miss). The first
    // repository alone, for comparison, in a namespace of its own.
    let solo = create_rule(
        &s,
        json!({"name": "solo", "registry": "dr", "direction": "push", "source": "acme/build",
               "tags": ["1.0"], "target": "solo"}),
    )
    .await;
    let run = run_rule(&s, &solo).await;
    assert_eq!(tags_of(&run, "copied"), ["1.0"], "{label}: {run}");
    // A runnable image pushed under a name like an attachment is queued by
    // its event, and refused there: the rule's tags (1.0) do not select
    // it, whatever it is called.
    let disguised = format!("sha256-{}.sig", "b".repeat(64));
    let disguised_bare = format!("sha256-{}", "b".repeat(64));
    for tag in [&disguised, &disguised_bare] {
        s.push_image("acme/build", tag, b"{\"disguised\":1}", &[b"disguised layer"])
            .await;
    }
    let queued = common::until(&s, &format!("/api/v1/replication-rules/{solo}/runs"), |v| {
        v.as_array().is_some_and(|l| {
            l.iter()
                .filter(|r| r["cause"] == "event" && !r["finished_at"].is_null())
                .flat_map(|r| r["refused"].as_array().cloned().unwrap_or_default())
                .filter(|i| i["tag"] == disguised.as_str() || i["tag"] == disguised_bare.as_str())
                .count()
                >= 2
        })
    })
    .await;
    for tag in [&disguised, &disguised_bare] {
        let refused = queued
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["refused"].as_array().cloned().unwrap_or_default())
            .find(|i| i["tag"] == tag.as_str())
            .unwrap();
        assert!(
            refused["reason"].as_str().unwrap().contains("not a cosign signature"),
            "{label}: {refused}"
        );
    }
    let one = run["bytes"].as_i64().unwrap();
    assert!(one > 2 * LAYER_BYTES as i64, "{label}: both layers sent: {run}");
    let both = create_rule(
        &s,
        json!({"name": "both", "registry": "dr", "direction": "push", "source": "acme/*",
               "tags": ["1.0"], "target": "copy"}),
    )
    .await;
    let run = run_rule(&s, &both).await;
    assert_eq!(run["status"], "completed", "{label}: {run}");
    assert_eq!(tags_of(&run, "copied"), ["1.0", "1.0"], "{label}: {run}");
    let two = run["bytes"].as_i64().unwrap();
    assert!(
        two >= one && two < one + LAYER_BYTES as i64 / 2,
        "{label}: the second repository's layers mounted, not uploaded ({one} for one, {two} for two): {run}"
    );
    for repo in ["copy/acme/build", "copy/acme/release"] {
        assert_eq!(
            remote.digest_of(repo, "1.0").await,
            Some(index.clone()),
            "{label}: {repo}"
        );
    }

    // Another Portcullis, through Docker's token flow.
    let edge = TestServer::start(backend).await;
    let (status, v) = call(
        &s,
        Method::POST,
        "/api/v1/registries",
        json!({"name": "edge", "url": edge.base, "username": "admin", "password": ADMIN_PASSWORD}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let to_edge = create_rule(
        &s,
        json!({"name": "to-edge", "registry": "edge", "direction": "push", "source": "acme/release",
               "tags": ["1.*"], "target": "site"}),
    )
    .await;
    let run = run_rule(&s, &to_edge).await;
    assert_eq!(run["status"], "completed", "{label}: {run}");
    assert_eq!(tags_of(&run, "copied"), ["1.0"], "{label}: {run}");
    let edge_host = edge.base.trim_start_matches("http://").to_string();
    for reference in [":1.0".to_string(), format!(":{sig_tag}")] {
        let ours = raw_digest(&format!("docker://{local}/acme/release{reference}"), &admin);
        let theirs = raw_digest(&format!("docker://{edge_host}/site/acme/release{reference}"), &admin);
        assert_eq!(
            ours, theirs,
            "{label}: {reference} byte-identical on the second Portcullis"
        );
    }
    let (_, theirs) = call(
        &edge,
        Method::GET,
        &format!("/v2/site/acme/release/referrers/{index}"),
        Value::Null,
    )
    .await;
    for d in &ours {
        assert!(
            theirs["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["digest"] == d.as_str()),
            "{label}: referrer {d} on the second Portcullis: {theirs}"
        );
    }
    // The password went nowhere it shows.
    let (_, audit) = call(&s, Method::GET, "/api/v1/audit?limit=1000", Value::Null).await;
    assert!(!audit.to_string().contains(UPSTREAM_PASSWORD), "{label}");
    assert!(
        audit.to_string().contains("direction=push"),
        "{label}: the rule's record"
    );
}

/// A push queued while the remote is down survives a SIGKILL of the
/// server: with the remote back and the server started again, it arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_push_survives_a_killed_server() {
    if !have_tool("docker-registry") || !have_tool("skopeo") {
        return;
    }
    for backend in backends() {
        let mut remote = Upstream::start();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let db = common::database_args(&backend, &data).await;
        let db_args: Vec<&str> = db.iter().map(String::as_str).collect();
        let password = "push-admin-password";
        let envs = [("PORTCULLIS_ADMIN_PASSWORD", password)];
        let http = reqwest::Client::new();
        let mut server = common::ServerProcess::spawn_env(&data, &db_args, &envs);
        let api = |base: &str, method: Method, path: &str, body: Value| {
            let req = http
                .request(method, format!("{base}{path}"))
                .basic_auth("admin", Some(password));
            let req = if body.is_null() { req } else { req.json(&body) };
            async move {
                let r = req.send().await.unwrap();
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap_or(Value::Null))
            }
        };
        let (status, v) = api(
            &server.base,
            Method::POST,
            "/api/v1/registries",
            json!({"name": "dr", "url": format!("http://{}", remote.host), "username": UPSTREAM_USER,
                   "password": UPSTREAM_PASSWORD}),
        )
        .await;
        assert_eq!(status, 201, "{v}");
        let (status, rule) = api(
            &server.base,
            Method::POST,
            "/api/v1/replication-rules",
            json!({"name": "to-dr", "registry": "dr", "direction": "push", "source": "lib/app",
                   "tags": ["v*"], "target": "site/app"}),
        )
        .await;
        assert_eq!(status, 201, "{rule}");
        let id = rule["id"].as_str().unwrap().to_string();

        // The remote goes down; a tag is pushed here (anonymous pushes are
        // allowed in these process tests); its first attempt fails.
        remote.stop();
        let config = b"{\"architecture\":\"amd64\",\"os\":\"linux\"}".to_vec();
        let layer = common::gzip(&common::tar_of(&[("etc/app", b"v1")]));
        for blob in [&config, &layer] {
            let d = Digest::sha256_of(blob);
            let r = http
                .post(format!("{}/v2/lib/app/blobs/uploads/?digest={d}", server.base))
                .body(blob.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
        let m = image_manifest(
            &Digest::sha256_of(&config),
            config.len(),
            &[(Digest::sha256_of(&layer), layer.len())],
        );
        let r = http
            .put(format!("{}/v2/lib/app/manifests/v1", server.base))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(m.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let image = Digest::sha256_of(&m);
        let runs_path = format!("/api/v1/replication-rules/{id}/runs");
        let failed = wait_for("a failed attempt", || {
            let runs = api(&server.base, Method::GET, &runs_path, Value::Null);
            async move {
                let (_, runs) = runs.await;
                runs.as_array()?
                    .iter()
                    .find(|r| r["cause"] == "event" && r["status"] == "failed")
                    .cloned()
            }
        })
        .await;
        assert!(
            failed["refused"][0]["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{failed}"
        );

        // Killed with the push queued; the remote comes back; so does the server.
        let killed = Command::new("kill")
            .args(["-9", &server.pid().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let _ = server.child.wait();
        remote.resume();
        assert!(
            remote.digest_of("site/app", "v1").await.is_none(),
            "not sent before the restart"
        );
        server = common::ServerProcess::spawn_env(&data, &db_args, &envs);
        let arrived = wait_for("the push after the restart", || remote.digest_of("site/app", "v1")).await;
        assert_eq!(arrived, image);
        let ours = raw_digest(
            &format!("docker://{}/lib/app:v1", server.base.trim_start_matches("http://")),
            &format!("admin:{password}"),
        );
        let theirs = raw_digest(
            &format!("docker://{}/site/app:v1", remote.host),
            &format!("{UPSTREAM_USER}:{UPSTREAM_PASSWORD}"),
        );
        assert_eq!(ours, theirs, "byte-identical");
        // The run that sent it is recorded, and nothing is left queued.
        let sent = wait_for("the run that sent it", || {
            let runs = api(&server.base, Method::GET, &runs_path, Value::Null);
            async move {
                let (_, runs) = runs.await;
                runs.as_array()?
                    .iter()
                    .find(|r| r["cause"] == "event" && r["status"] == "completed")
                    .cloned()
            }
        })
        .await;
        assert_eq!(tags_of(&sent, "copied"), ["v1"], "{sent}");
        drop(server);
    }
}

/// `require_signed_by` by local accounts and teams: an upstream image
/// signed with a key registered to a member of the team is imported, one
/// signed by another key is refused with the reason in the run record;
/// naming an account that signed the other works the other way round; a
/// team or account that does not exist is refused when the rule is saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_requires_signatures_by_local_accounts_and_teams() {
    if !have_tool("docker-registry") {
        return;
    }
    for backend in backends() {
        let up = Upstream::start();
        let (alice_key, _) = SigningKey::generate().unwrap();
        let (bob_key, _) = SigningKey::generate().unwrap();
        up.push_image("acme/app", "team", "team").await;
        up.sign("acme/app", "team", &alice_key, SignatureForm::Tag).await;
        up.push_image("acme/app", "bob", "bob").await;
        up.sign("acme/app", "bob", &bob_key, SignatureForm::Bundle).await;
        let s = TestServer::start(&backend).await;
        let label = s.label();
        // alice is in team ci/gitlab, bob is not.
        common::signing::trusted_team(&s, &["alice", "bob"], &["alice"]).await;
        for (user, key) in [("alice", &alice_key), ("bob", &bob_key)] {
            let r = s
                .anon
                .post(s.url(&format!("/api/v1/accounts/{user}/keys")))
                .basic_auth(user, Some(common::signing::PW))
                .json(&json!({"name": "laptop", "pem": key.public.to_pem()}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        }
        let (status, v) = call(
            &s,
            Method::POST,
            "/api/v1/registries",
            json!({"name": "dist", "url": format!("http://{}", up.host), "username": UPSTREAM_USER,
                   "password": UPSTREAM_PASSWORD}),
        )
        .await;
        assert_eq!(status, 201, "{v}");
        for (by, says) in [
            (json!({"teams": ["ci/nobody"]}), "ci/nobody"),
            (json!({"accounts": ["carol"]}), "carol"),
        ] {
            let (status, v) = call(
                &s,
                Method::POST,
                "/api/v1/replication-rules",
                json!({"name": "bad", "registry": "dist", "source": "acme/app", "tags": ["*"],
                       "target": "acme/mirror", "require_signed_by": by}),
            )
            .await;
            assert_eq!(status, 400, "{label}: {v}");
            assert!(v.to_string().contains(says), "{label}: {v}");
        }
        let by_team = create_rule(
            &s,
            json!({"name": "by-team", "registry": "dist", "source": "acme/app", "tags": ["*"],
                   "target": "acme/team", "require_signed_by": {"teams": ["ci/gitlab"]}}),
        )
        .await;
        let (_, shown) = call(
            &s,
            Method::GET,
            &format!("/api/v1/replication-rules/{by_team}"),
            Value::Null,
        )
        .await;
        assert_eq!(shown["require_signed_by"]["teams"], json!(["ci/gitlab"]), "{shown}");
        let run = run_rule(&s, &by_team).await;
        assert_eq!(run["status"], "completed", "{label}: {run}");
        assert_eq!(tags_of(&run, "copied"), ["team"], "{label}: {run}");
        assert_eq!(tags_of(&run, "refused"), ["bob"], "{label}: {run}");
        assert!(reason(&run, "bob").starts_with("require_signed_by"), "{run}");
        assert_eq!(run["copied"][0]["verified_key"], alice_key.public.id.as_str(), "{run}");
        assert!(local_digest(&s, "acme/team", "bob").await.is_none());
        let by_bob = create_rule(
            &s,
            json!({"name": "by-bob", "registry": "dist", "source": "acme/app", "tags": ["*"],
                   "target": "acme/bob", "require_signed_by": {"accounts": ["bob"]}}),
        )
        .await;
        let run = run_rule(&s, &by_bob).await;
        assert_eq!(tags_of(&run, "copied"), ["bob"], "{label}: {run}");
        assert_eq!(tags_of(&run, "refused"), ["team"], "{label}: {run}");
        assert!(local_digest(&s, "acme/bob", "bob").await.is_some());
        // A named signer deleted since: every image refused, saying why.
        let (status, _) = call(&s, Method::DELETE, "/api/v1/users/bob", Value::Null).await;
        assert_eq!(status, 204);
        let run = run_rule(&s, &by_bob).await;
        assert!(reason(&run, "team").contains("no longer exists"), "{label}: {run}");

        // An administrator of namespace acme manages the pull rules that
        // write into acme, and no others; registries and push rules stay
        // system administrators'.
        let (status, v) = call(
            &s,
            Method::POST,
            "/api/v1/namespaces/acme/grants",
            json!({"account": "alice", "role": "admin"}),
        )
        .await;
        assert_eq!(status, 201, "{v}");
        let alice = |method: Method, path: String, body: Value| {
            let req = s
                .anon
                .request(method, s.url(&path))
                .basic_auth("alice", Some(common::signing::PW));
            let req = if body.is_null() { req } else { req.json(&body) };
            async move {
                let r = req.send().await.unwrap();
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap_or(Value::Null))
            }
        };
        let elsewhere = create_rule(
            &s,
            json!({"name": "elsewhere", "registry": "dist", "source": "acme/app", "tags": ["*"], "target": "ci/app"}),
        )
        .await;
        let (status, mine) = alice(
            Method::POST,
            "/api/v1/replication-rules".into(),
            json!({"name": "alice-rule", "registry": "dist", "source": "acme/app", "tags": ["team"],
                   "target": "acme/alice", "require_signed_by": {"teams": ["ci/gitlab"]}}),
        )
        .await;
        assert_eq!(status, 201, "{label}: {mine}");
        let mine = mine["id"].as_str().unwrap().to_string();
        let (status, v) = alice(
            Method::PUT,
            format!("/api/v1/replication-rules/{mine}"),
            json!({"tags": ["team", "bob"]}),
        )
        .await;
        assert_eq!(status, 200, "{label}: {v}");
        let (status, v) = alice(
            Method::POST,
            format!("/api/v1/replication-rules/{mine}/run"),
            Value::Null,
        )
        .await;
        assert_eq!(status, 202, "{label}: {v}");
        let run = finished_run(&s, &mine, "manual").await;
        assert_eq!(tags_of(&run, "copied"), ["team"], "{label}: {run}");
        let (status, runs) = alice(
            Method::GET,
            format!("/api/v1/replication-rules/{mine}/runs"),
            Value::Null,
        )
        .await;
        assert_eq!(
            (status, runs.as_array().map(Vec::len)),
            (200, Some(1)),
            "{label}: {runs}"
        );
        let (status, list) = alice(Method::GET, "/api/v1/replication-rules".into(), Value::Null).await;
        assert_eq!(status, 200);
        let mut names: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["alice-rule", "by-bob", "by-team"],
            "{label}: only rules into acme"
        );
        // Refused: a rule into another namespace, moving hers there,
        // another namespace's rule, a push rule, the registries.
        let refused = [
            (
                Method::POST,
                "/api/v1/replication-rules".to_string(),
                json!({"name": "into-ci", "registry": "dist", "source": "acme/app", "tags": ["*"], "target": "ci/x"}),
            ),
            (
                Method::PUT,
                format!("/api/v1/replication-rules/{mine}"),
                json!({"target": "ci/x"}),
            ),
            (
                Method::GET,
                format!("/api/v1/replication-rules/{elsewhere}"),
                Value::Null,
            ),
            (
                Method::PUT,
                format!("/api/v1/replication-rules/{elsewhere}"),
                json!({"enabled": false}),
            ),
            (
                Method::POST,
                format!("/api/v1/replication-rules/{elsewhere}/run"),
                Value::Null,
            ),
            (
                Method::DELETE,
                format!("/api/v1/replication-rules/{elsewhere}"),
                Value::Null,
            ),
            (
                Method::POST,
                "/api/v1/replication-rules".to_string(),
                json!({"name": "out", "registry": "dist", "direction": "push", "source": "acme/app", "tags": ["*"], "target": "acme/x"}),
            ),
            (Method::GET, "/api/v1/registries".to_string(), Value::Null),
        ];
        for (method, path, body) in refused {
            let (status, v) = alice(method.clone(), path.clone(), body).await;
            assert_eq!(status, 403, "{label}: {method} {path}: {v}");
        }
        let (_, shown) = call(
            &s,
            Method::GET,
            &format!("/api/v1/replication-rules/{mine}"),
            Value::Null,
        )
        .await;
        assert_eq!(shown["target"], "acme/alice", "{label}: not moved: {shown}");
        let (status, _) = alice(Method::DELETE, format!("/api/v1/replication-rules/{mine}"), Value::Null).await;
        assert_eq!(status, 204, "{label}");
    }
}

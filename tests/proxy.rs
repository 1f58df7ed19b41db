//! The pull-through cache against a real upstream on loopback: CNCF
//! Distribution 2.8 (`docker-registry`) behind htpasswd, with skopeo as
//! the client, on SQLite and PostgreSQL. A namespace set up as a proxy of
//! the upstream's `library` serves cold and warm pulls byte-identical to
//! the upstream (an image and a multi-arch index), a warm pull reads no
//! blob upstream, two parallel cold pulls read each blob upstream once
//! (counted in Distribution's access log), pushes and deletes by
//! non-administrators are refused, anonymous callers pull only from a
//! public proxy, a blob altered in the upstream's storage is refused and
//! nothing of it stored, the size limit evicts the least recently pulled
//! image (and garbage collection then reclaims its blobs), and with the
//! upstream stopped the cached copy is served with a `Warning` header.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{backends, call, free_port, have_tool, image_manifest, TestServer, ADMIN_PASSWORD};
use portcullis_oci::Digest;
use portcullis_registry_client::{Access, RegistryClient};
use reqwest::Method;
use serde_json::{json, Value};

const UPSTREAM_USER: &str = "hub-bot";
const UPSTREAM_PASSWORD: &str = "upstream-pw-51c0ffee";
const PW: &str = "a-password-for-proxy-tests";
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json";

/// A Distribution registry with htpasswd authentication, its requests
/// logged to `log` (Distribution writes one access log line per request).
struct Upstream {
    child: Child,
    host: String,
    data: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Upstream {
    fn start() -> Upstream {
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
        std::fs::write(dir.path().join("htpasswd"), out.stdout).unwrap();
        let port = free_port();
        let data = dir.path().join("data");
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: upstream\n    path: {}\n",
            data.display(),
            dir.path().join("htpasswd").display()
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let log = dir.path().join("access.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("docker-registry")
            .args(["serve", dir.path().join("config.yml").to_str().unwrap()])
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap();
        let host = format!("127.0.0.1:{port}");
        for _ in 0..100 {
            if std::net::TcpStream::connect(&host).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Upstream {
            child,
            host,
            data,
            log,
            _dir: dir,
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn client(&self, repo: &str) -> RegistryClient {
        let access = Access {
            creds: Some(format!("{UPSTREAM_USER}:{UPSTREAM_PASSWORD}")),
            tls_verify: false,
            ..Access::default()
        };
        RegistryClient::new(&self.host, repo, &access).unwrap()
    }

    /// Pushes an image of one layer of `layer_bytes` bytes (incompressible,
    /// from `seed`) under `tag`: the manifest's digest and the blobs'.
    async fn push_image(&self, repo: &str, tag: &str, seed: &str, layer_bytes: usize) -> (Digest, Vec<Digest>) {
        let c = self.client(repo);
        let config = format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"seed\":\"{seed}\"}}");
        let layer = common::gzip(&common::tar_of(&[("etc/seed", &noise(seed, layer_bytes))]));
        let cd = c.push_blob(config.as_bytes()).await.unwrap();
        let ld = c.push_blob(&layer).await.unwrap();
        let m = image_manifest(&cd, config.len(), &[(ld.clone(), layer.len())]);
        let d = c
            .put_manifest(tag, "application/vnd.oci.image.manifest.v1+json", &m)
            .await
            .unwrap();
        (d, vec![cd, ld])
    }

    /// Pushes a two-platform index under `tag`.
    async fn push_index(&self, repo: &str, tag: &str) -> Digest {
        let c = self.client(repo);
        let mut entries = Vec::new();
        for arch in ["amd64", "arm64"] {
            let (d, _) = self.push_image(repo, &format!("tmp-{arch}"), arch, 4096).await;
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

    /// Overwrites a blob's bytes in the upstream's storage (same length),
    /// so the registry serves bytes that do not hash to the digest.
    fn tamper(&self, digest: &Digest) {
        let path = self
            .data
            .join("docker/registry/v2/blobs/sha256")
            .join(&digest.hex()[..2])
            .join(digest.hex())
            .join("data");
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }

    /// Reads (`GET`, `HEAD`) of `repo`'s manifests the upstream has logged.
    fn manifest_reads(&self, repo: &str) -> usize {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let get = format!("\"GET /v2/{repo}/manifests/");
        let head = format!("\"HEAD /v2/{repo}/manifests/");
        log.lines().filter(|l| l.contains(&get) || l.contains(&head)).count()
    }

    /// Successful `GET`s of `repo`'s blob `digest` the upstream has logged.
    fn blob_gets(&self, repo: &str, digest: &Digest) -> usize {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let wanted = format!("\"GET /v2/{repo}/blobs/{digest} HTTP/1.1\" 200 ");
        log.lines().filter(|l| l.contains(&wanted)).count()
    }
}

/// `n` bytes that gzip can't shrink, the same for the same seed.
fn noise(seed: &str, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 32);
    let mut block = Digest::sha256_of(seed.as_bytes()).hex().as_bytes().to_vec();
    while out.len() < n {
        let d = Digest::sha256_of(&block);
        block = d.hex().as_bytes().to_vec();
        out.extend_from_slice(&hex_bytes(d.hex()));
    }
    out.truncate(n);
    out
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// Runs skopeo: (success, stdout, stderr).
fn skopeo(args: &[&str], home: &Path) -> (bool, Vec<u8>, String) {
    let out = Command::new("skopeo").args(args).env("HOME", home).output().unwrap();
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `skopeo inspect --raw` of `reference` with `creds`: the bytes.
fn raw(reference: &str, creds: &str, home: &Path) -> Vec<u8> {
    let (ok, out, err) = skopeo(
        &["inspect", "--raw", "--tls-verify=false", "--creds", creds, reference],
        home,
    );
    assert!(ok, "skopeo inspect {reference}: {err}");
    out
}

/// `skopeo copy` (of every platform with `all`) into an OCI layout:
/// the digests of the blobs the layout holds.
fn copy_to_layout(reference: &str, creds: &str, layout: &Path, all: bool, home: &Path) -> Vec<String> {
    let dest = format!("oci:{}:t", layout.display());
    let mut args = vec!["copy", "--src-tls-verify=false", "--src-creds", creds];
    if all {
        args.push("--all");
    }
    args.extend([reference, dest.as_str()]);
    let (ok, _, err) = skopeo(&args, home);
    assert!(ok, "skopeo copy {reference}: {err}");
    let mut blobs: Vec<String> = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    blobs.sort();
    blobs
}

/// The tags `repo` holds here (the cache's own state, never the upstream's).
async fn local_tags(s: &TestServer, repo: &str) -> Vec<String> {
    let r = s
        .http
        .get(s.url(&format!("/v2/{repo}/tags/list")))
        .send()
        .await
        .unwrap();
    if r.status() != 200 {
        return Vec::new();
    }
    let v: Value = r.json().await.unwrap();
    v["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect()
}

/// Waits (at most 30 s) until `repo` holds `tag` here: the cache stores
/// an image after answering its manifest.
async fn until_cached(s: &TestServer, repo: &str, tag: &str) {
    for _ in 0..300 {
        if local_tags(s, repo).await.iter().any(|t| t == tag) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{repo}:{tag} was not cached within 30 s ({})", s.label());
}

async fn set_proxy(s: &TestServer, ns: &str, proxy: Value) -> (u16, Value) {
    call(
        s,
        Method::PUT,
        &format!("/api/v1/namespaces/{ns}/settings"),
        json!({ "proxy": proxy }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pull_through_cache_of_distribution() {
    if !have_tool("docker-registry") || !have_tool("skopeo") {
        assert!(!common::tools_required(), "docker-registry and skopeo are required");
        return;
    }
    for backend in backends() {
        one_backend(&backend).await;
    }
}

async fn one_backend(backend: &common::Backend) {
    let mut up = Upstream::start();
    let (app, app_blobs) = up.push_image("library/app", "1", "app", 300_000).await;
    let multi = up.push_index("library/multi", "1.0").await;
    let (_, par_blobs) = up.push_image("library/par", "1", "parallel", 3_000_000).await;
    let (_, broken_blobs) = up.push_image("library/broken", "1", "broken", 100_000).await;
    up.tamper(&broken_blobs[1]);
    up.push_image("library/ruled", "1", "ruled", 4096).await;
    let mut evictable = Vec::new();
    for name in ["e1", "e2", "e3"] {
        evictable.push(up.push_image(&format!("library/{name}"), "1", name, 200_000).await);
    }

    let s = TestServer::start(backend).await;
    let label = s.label();
    let work = tempfile::tempdir().unwrap();
    let home = work.path();
    let host = s.base.trim_start_matches("http://").to_string();
    let here = |r: &str| format!("docker://{host}/{r}");
    let there = |r: &str| format!("docker://{}/{r}", up.host);
    let admin = format!("admin:{ADMIN_PASSWORD}");
    let upstream_creds = format!("{UPSTREAM_USER}:{UPSTREAM_PASSWORD}");

    for org in ["hub", "lim"] {
        let (status, v) = call(&s, Method::POST, "/api/v1/orgs", json!({"name": org})).await;
        assert_eq!(status, 201, "{v}");
    }
    for (user, grant) in [
        ("writer", Some(json!({"account": "writer", "role": "write"}))),
        (
            "repoadmin",
            Some(json!({"account": "repoadmin", "repository": "hub/app", "role": "admin"})),
        ),
        ("nsadmin", Some(json!({"account": "nsadmin", "role": "admin"}))),
        ("outsider", None),
    ] {
        let (status, v) = call(&s, Method::POST, "/api/v1/users", json!({"name": user, "password": PW})).await;
        assert_eq!(status, 201, "{v}");
        if let Some(grant) = grant {
            let (status, v) = call(&s, Method::POST, "/api/v1/namespaces/hub/grants", grant).await;
            assert!(status < 300, "{v}");
        }
    }
    // A proxy spends the registry's credentials: the namespace's own
    // administrator may not set one.
    let r = s
        .anon
        .put(s.url("/api/v1/namespaces/hub/settings"))
        .basic_auth("nsadmin", Some(PW))
        .json(&json!({"proxy": {"registry": "dist", "namespace": "library", "public": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "{label}: a namespace administrator set a proxy");
    let body: Value = r.json().await.unwrap();
    assert!(body.to_string().contains("only a system administrator"), "{body}");
    // The upstream must be a registry here.
    let (status, v) = set_proxy(&s, "hub", json!({"registry": "dist", "namespace": "library"})).await;
    assert_eq!(status, 400, "{label}: {v}");
    assert!(v.to_string().contains("registry dist does not exist"), "{v}");
    let (status, v) = call(
        &s,
        Method::POST,
        "/api/v1/registries",
        json!({"name": "dist", "url": format!("http://{}", up.host), "username": UPSTREAM_USER,
               "password": UPSTREAM_PASSWORD, "tls_verify": false}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = set_proxy(
        &s,
        "hub",
        json!({"registry": "dist", "namespace": "library", "ttl_secs": 0, "bogus": 1}),
    )
    .await;
    assert_eq!(status, 400, "unknown fields are refused: {v}");
    let (status, v) = set_proxy(
        &s,
        "hub",
        json!({"registry": "dist", "namespace": "library", "ttl_secs": 0}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["proxy"]["registry"], "dist", "{v}");
    assert_eq!(v["proxy"]["namespace"], "library", "{v}");
    assert_eq!(v["proxy"]["max_bytes"], Value::Null, "{v}");
    // A registry a proxy uses can't be deleted.
    let (status, v) = call(&s, Method::DELETE, "/api/v1/registries/dist", Value::Null).await;
    assert_eq!(status, 409, "{v}");
    assert!(v.to_string().contains("hub"), "{v}");

    // Cold, then warm: byte-identical to the upstream, and warm reads no blob upstream.
    let upstream_raw = raw(&there("library/app:1"), &upstream_creds, home);
    assert_eq!(Digest::sha256_of(&upstream_raw), app);
    assert_eq!(raw(&here("hub/app:1"), &admin, home), upstream_raw, "{label}: cold");
    let direct = copy_to_layout(
        &there("library/app:1"),
        &upstream_creds,
        &work.path().join("direct"),
        false,
        home,
    );
    let cold = copy_to_layout(&here("hub/app:1"), &admin, &work.path().join("cold"), false, home);
    assert_eq!(cold, direct, "{label}: cold copy");
    until_cached(&s, "hub/app", "1").await;
    // Stored like a push: scanned.
    common::until(&s, &format!("/api/v1/scans/{app}?repository=hub/app"), |v| {
        v["status"] == "done"
    })
    .await;
    let gets: Vec<usize> = app_blobs.iter().map(|b| up.blob_gets("library/app", b)).collect();
    assert!(gets.iter().all(|n| *n >= 1), "{label}: {gets:?}");
    let warm = copy_to_layout(&here("hub/app:1"), &admin, &work.path().join("warm"), false, home);
    assert_eq!(warm, direct, "{label}: warm copy");
    assert_eq!(raw(&here("hub/app:1"), &admin, home), upstream_raw, "{label}: warm");
    let after: Vec<usize> = app_blobs.iter().map(|b| up.blob_gets("library/app", b)).collect();
    assert_eq!(after, gets, "{label}: a warm pull reads no blob upstream");
    // By digest too.
    assert_eq!(raw(&here(&format!("hub/app@{app}")), &admin, home), upstream_raw);

    // A multi-arch index, whole.
    let upstream_index = raw(&there("library/multi:1.0"), &upstream_creds, home);
    assert_eq!(Digest::sha256_of(&upstream_index), multi);
    assert_eq!(raw(&here("hub/multi:1.0"), &admin, home), upstream_index, "{label}");
    let direct = copy_to_layout(
        &there("library/multi:1.0"),
        &upstream_creds,
        &work.path().join("mdirect"),
        true,
        home,
    );
    let through = copy_to_layout(&here("hub/multi:1.0"), &admin, &work.path().join("mcold"), true, home);
    assert_eq!(through, direct, "{label}: index copy");
    until_cached(&s, "hub/multi", "1.0").await;

    // Two parallel cold pulls read each blob upstream once.
    let spawn = |dir: &str| {
        let dest = format!("oci:{}:t", work.path().join(dir).display());
        Command::new("skopeo")
            .args([
                "copy",
                "--src-tls-verify=false",
                "--src-creds",
                &admin,
                &here("hub/par:1"),
                &dest,
            ])
            .env("HOME", home)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("par-a"), spawn("par-b"));
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{label}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    until_cached(&s, "hub/par", "1").await;
    for blob in &par_blobs {
        assert_eq!(
            up.blob_gets("library/par", blob),
            1,
            "{label}: {blob} read upstream once"
        );
    }

    // Pushes are refused, with a clear error, to anyone; deletes to all but administrators.
    let writer = format!("writer:{PW}");
    let (ok, _, err) = skopeo(
        &[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &writer,
            &format!("oci:{}:t", work.path().join("direct").display()),
            &here("hub/pushed:1"),
        ],
        home,
    );
    assert!(!ok, "{label}: a push into the proxy");
    assert!(err.contains("pull-through cache"), "{label}: {err}");
    let r = s.http.post(s.url("/v2/hub/app/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.status(), 403, "{label}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "DENIED", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("namespace hub is a pull-through cache of library on registry dist"),
        "{body}"
    );
    // An administrator of the repository alone may not delete from the cache.
    let token = s
        .registry_token("repoadmin", PW, &["repository:hub/app:pull,push,delete"])
        .await;
    let r = s
        .anon
        .delete(s.url(&format!("/v2/hub/app/manifests/{app}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "{label}");
    let body: Value = r.json().await.unwrap();
    assert!(body.to_string().contains("pull-through cache"), "{body}");
    let r = s
        .anon
        .delete(s.url("/api/v1/repositories/hub/app"))
        .basic_auth("repoadmin", Some(PW))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "{label}: the repository's administrator deletes it");
    let body: Value = r.json().await.unwrap();
    assert!(body.to_string().contains("pull-through cache"), "{body}");
    assert!(local_tags(&s, "hub/app").await.contains(&"1".to_string()));

    // Who may pull follows the namespace's grants; anonymous callers only from a public proxy.
    let (ok, _, _) = skopeo(
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            &format!("outsider:{PW}"),
            &here("hub/e1:1"),
        ],
        home,
    );
    assert!(!ok, "{label}: an outsider pulls from a private proxy");
    let r = s
        .anon
        .get(s.url("/v2/hub/e1/manifests/1"))
        .header("accept", ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "{label}: anonymous, private proxy");
    assert!(
        local_tags(&s, "hub/e1").await.is_empty(),
        "{label}: nothing cached for them"
    );
    let (ok, _, _) = skopeo(
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            &writer,
            &here("hub/app:1"),
        ],
        home,
    );
    assert!(ok, "{label}: a member pulls");

    // A blob altered upstream is refused, and nothing of it is stored.
    let (ok, _, _) = skopeo(
        &[
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            &admin,
            &here("hub/broken:1"),
            &format!("oci:{}:t", work.path().join("broken").display()),
        ],
        home,
    );
    assert!(!ok, "{label}: a tampered blob was served whole");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        local_tags(&s, "hub/broken").await.is_empty(),
        "{label}: tampered image cached"
    );
    assert!(
        s.registry.store.blob_size(&broken_blobs[1]).await.unwrap().is_none(),
        "{label}: the tampered blob is in the store"
    );

    // A second proxy of the same upstream, public and with a size limit:
    // room for two of the three images; the least recently pulled goes
    // when the third arrives.
    let one = 210_000; // more than one evictable image's layer and config
    let limit = 2 * one + one / 2;
    let (status, v) = set_proxy(
        &s,
        "lim",
        json!({"registry": "dist", "namespace": "library", "max_bytes": limit, "public": true}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["proxy"]["max_bytes"], limit, "{v}");
    assert_eq!(v["proxy"]["ttl_secs"], 300, "{v}");
    // Public: an anonymous pull fills the cache.
    let r = s
        .anon
        .get(s.url("/v2/lim/e1/manifests/1"))
        .header("accept", ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{label}: anonymous, public proxy");
    let (e1, _) = &evictable[0];
    assert_eq!(r.headers()["docker-content-digest"], e1.as_str());
    copy_to_layout(&here("lim/e1:1"), &admin, &work.path().join("e1"), false, home);
    until_cached(&s, "lim/e1", "1").await;
    copy_to_layout(&here("lim/e2:1"), &admin, &work.path().join("e2"), false, home);
    until_cached(&s, "lim/e2", "1").await;
    // e1 pulled again: e2 is now the least recently pulled of them.
    tokio::time::sleep(Duration::from_millis(50)).await;
    raw(&here("lim/e1:1"), &admin, home);
    tokio::time::sleep(Duration::from_millis(50)).await;
    copy_to_layout(&here("lim/e3:1"), &admin, &work.path().join("e3"), false, home);
    until_cached(&s, "lim/e3", "1").await;
    let mut evicted = false;
    for _ in 0..100 {
        if local_tags(&s, "lim/e2").await.is_empty() {
            evicted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(evicted, "{label}: e2 was not evicted");
    for kept in ["lim/e1", "lim/e3", "hub/app", "hub/multi"] {
        assert!(!local_tags(&s, kept).await.is_empty(), "{label}: {kept} evicted");
    }
    let (_, v) = call(&s, Method::GET, "/api/v1/namespaces/lim/settings", Value::Null).await;
    assert!(v["proxy"]["used_bytes"].as_u64().unwrap() <= limit, "{label}: {v}");
    let (_, audit) = call(&s, Method::GET, "/api/v1/audit?action=proxy.evict", Value::Null).await;
    assert!(
        audit.to_string().contains("lim/e2"),
        "{label}: eviction audited: {audit}"
    );
    // Garbage collection reclaims the evicted image's own layer.
    let e2_layer = &evictable[1].1[1];
    assert!(s.registry.store.blob_size(e2_layer).await.unwrap().is_some());
    portcullis_server::collect_garbage_logged(&s.registry, &common::gc_without_grace()).await;
    assert!(
        s.registry.store.blob_size(e2_layer).await.unwrap().is_none(),
        "{label}: the evicted layer was not reclaimed"
    );
    assert!(s.registry.store.blob_size(&evictable[0].1[1]).await.unwrap().is_some());

    // Pull rules: one that decides without the image (no vulnerability
    // database is younger than a day: there is none) refuses before the
    // upstream is asked; one that needs the image judges it once cached.
    let (status, v) = call(
        &s,
        Method::PUT,
        "/api/v1/namespaces/lim/settings",
        json!({"pull_rule": {"max_database_age": "1d"}}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let anon_get = |path: &str| s.anon.get(s.url(path)).header("accept", ACCEPT).send();
    let r = anon_get("/v2/lim/ruled/manifests/1").await.unwrap();
    assert_eq!(r.status(), 403, "{label}");
    assert!(r.text().await.unwrap().contains("max_database_age"), "{label}");
    assert_eq!(up.manifest_reads("library/ruled"), 0, "{label}: the upstream was asked");
    assert!(local_tags(&s, "lim/ruled").await.is_empty());
    let (status, v) = call(
        &s,
        Method::PUT,
        "/api/v1/namespaces/lim/settings",
        json!({"pull_rule": {"require_signed_by": {"accounts": ["admin"]}}}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let r = anon_get("/v2/lim/ruled/manifests/1").await.unwrap();
    assert_eq!(r.status(), 403, "{label}");
    assert!(r.text().await.unwrap().contains("not signed"), "{label}");
    assert!(up.manifest_reads("library/ruled") > 0, "{label}");
    assert_eq!(
        local_tags(&s, "lim/ruled").await,
        ["1"],
        "{label}: judged on the cached image"
    );

    // The upstream stops: the cached copy is served, with a warning.
    up.stop();
    let r = s
        .http
        .get(s.url("/v2/hub/app/manifests/1"))
        .header("accept", ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{label}");
    let warning = r.headers().get("warning").map(|v| v.to_str().unwrap().to_string());
    assert_eq!(
        warning.as_deref(),
        Some("110 - \"stale: upstream unreachable\""),
        "{label}"
    );
    assert_eq!(r.bytes().await.unwrap().to_vec(), upstream_raw, "{label}");
    assert_eq!(raw(&here("hub/app:1"), &admin, home), upstream_raw, "{label}: stale");
    let stale = copy_to_layout(&here("hub/app:1"), &admin, &work.path().join("stale"), false, home);
    assert_eq!(stale, cold, "{label}: stale copy");
    // What was never cached can't be had.
    let r = s
        .http
        .get(s.url("/v2/hub/never/manifests/1"))
        .header("accept", ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502, "{label}");
}

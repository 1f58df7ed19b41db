//! Shared set-up for the integration tests: a registry on a free loopback
//! port, backed by SQLite in a temporary directory or by its own schema in
//! the PostgreSQL named by `PORTCULLIS_TEST_POSTGRES`.
#![allow(dead_code)]

pub mod feed;
pub mod signing;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_auth::ApiToken;
use portcullis_meta::{Account, AuditEvent, Meta, StoredToken};
use portcullis_oci::Digest;
use portcullis_server::{AccessSettings, Anonymous, Registry, RegistryOptions, ScanSettings, WebhookSettings};
use portcullis_store::BlobStore;

#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

/// SQLite always; PostgreSQL when configured (and it must be under CI=true).
pub fn backends() -> Vec<Backend> {
    let mut out = vec![Backend::Sqlite];
    match std::env::var("PORTCULLIS_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => out.push(Backend::Postgres(url)),
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!("CI=true but PORTCULLIS_TEST_POSTGRES is not set"),
        _ => eprintln!("PORTCULLIS_TEST_POSTGRES not set: PostgreSQL half skipped"),
    }
    out
}

/// A database URL for `backend` whose data lives under `dir` (SQLite) or in
/// a fresh schema (PostgreSQL, via `search_path` in the URL's options).
pub async fn open_meta(backend: &Backend, dir: &Path) -> Meta {
    match backend {
        Backend::Sqlite => Meta::connect(&format!("sqlite://{}", dir.join("portcullis.db").display()))
            .await
            .unwrap(),
        Backend::Postgres(url) => {
            let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
            Meta::connect_in_schema(url, Some(&schema)).await.unwrap()
        }
    }
}

pub struct TestServer {
    pub base: String,
    /// Sends the administrator's API token with every request.
    pub http: reqwest::Client,
    /// Sends nothing: an anonymous caller.
    pub anon: reqwest::Client,
    /// `pct_…`: an unlimited API token of the system administrator `admin`.
    pub admin_token: String,
    pub registry: Arc<Registry>,
    pub dir: tempfile::TempDir,
    pub backend: Backend,
}

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

impl TestServer {
    /// A registry with the secure defaults: nothing anonymous.
    pub async fn start(backend: &Backend) -> TestServer {
        Self::start_with(backend, Anonymous::None).await
    }

    /// Anonymous pull and push, for tests of clients that are not about access control.
    pub async fn start_open(backend: &Backend) -> TestServer {
        Self::start_with(backend, Anonymous::Push).await
    }

    pub async fn start_with(backend: &Backend, anonymous: Anonymous) -> TestServer {
        Self::start_tuned(backend, anonymous, |_| {}).await
    }

    /// As `start_with`, with `tune` changing the options first.
    pub async fn start_tuned(
        backend: &Backend,
        anonymous: Anonymous,
        tune: impl FnOnce(&mut RegistryOptions),
    ) -> TestServer {
        Self::start_with_ui(backend, anonymous, tune, portcullis_ui::UiSettings::default()).await
    }

    /// As `start_tuned`, with the web UI's session settings given.
    pub async fn start_with_ui(
        backend: &Backend,
        anonymous: Anonymous,
        tune: impl FnOnce(&mut RegistryOptions),
        ui: portcullis_ui::UiSettings,
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let meta = open_meta(backend, dir.path()).await;
        let admin_token = bootstrap_admin(&meta).await;
        let store = BlobStore::open(dir.path()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut access = AccessSettings::new(dir.path().join("keys"));
        access.anonymous = anonymous;
        let options = RegistryOptions {
            manifest_cache_ttl: Duration::from_secs(1),
            access,
            tls: false,
            scan: ScanSettings {
                db_poll: Duration::from_millis(100),
                ..ScanSettings::new(dir.path())
            },
            // Receivers in tests listen on loopback; retries come quickly.
            webhooks: WebhookSettings {
                allow: "127.0.0.1".parse().unwrap(),
                retry_base: Duration::from_millis(100),
                poll: Duration::from_millis(50),
                timeout: Duration::from_secs(5),
                public_url: base.clone(),
                ..WebhookSettings::default()
            },
            kek: None,
            background: true,
        };
        let mut options = options;
        tune(&mut options);
        let registry = Registry::new(meta, store, options).unwrap();
        let app = portcullis_server::app_with(registry.clone(), portcullis_ui::router(ui));
        tokio::spawn(portcullis_server::serve(
            listener,
            app,
            None,
            portcullis_server::ConnectionLimits::default(),
            std::future::pending(),
        ));
        let mut auth = reqwest::header::HeaderMap::new();
        auth.insert(
            "authorization",
            reqwest::header::HeaderValue::from_str(&format!("Bearer {admin_token}")).unwrap(),
        );
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(auth)
            .build()
            .unwrap();
        let anon = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        TestServer {
            base,
            http,
            anon,
            admin_token,
            registry,
            dir,
            backend: backend.clone(),
        }
    }

    /// A registry token (JWT) for `scopes`, from the token endpoint with
    /// `user`'s password.
    pub async fn registry_token<S: AsRef<str>>(&self, user: &str, password: &str, scopes: &[S]) -> String {
        let mut query = vec![("service", "portcullis")];
        query.extend(scopes.iter().map(|scope| ("scope", scope.as_ref())));
        let r = self
            .anon
            .get(self.url("/auth/token"))
            .query(&query)
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "token for {user}");
        let v: serde_json::Value = r.json().await.unwrap();
        v["token"].as_str().unwrap().to_string()
    }

    /// A registry token for `scope` with the administrator's password.
    pub async fn admin_registry_token(&self, scope: &str) -> String {
        self.registry_token("admin", ADMIN_PASSWORD, &[scope]).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn label(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Pushes a blob in one POST; panics unless the registry answers 201.
    pub async fn push_blob(&self, repo: &str, bytes: &[u8]) -> Digest {
        let d = Digest::sha256_of(bytes);
        let r = self
            .http
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/?digest={d}")))
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        d
    }

    /// Pushes an OCI image manifest over `config` and `layers`; returns its digest and bytes.
    pub async fn push_image(&self, repo: &str, reference: &str, config: &[u8], layers: &[&[u8]]) -> (Digest, Vec<u8>) {
        let c = self.push_blob(repo, config).await;
        let mut ls = Vec::new();
        for l in layers {
            ls.push((self.push_blob(repo, l).await, l.len()));
        }
        let body = image_manifest(&c, config.len(), &ls);
        let r = self.put_manifest(repo, reference, body.clone()).await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        (Digest::sha256_of(&body), body)
    }

    /// PUTs an OCI image manifest as the administrator; the answer.
    /// The stored bytes of `repo`'s manifest `reference`, fetched as the admin.
    pub async fn manifest_bytes(&self, repo: &str, reference: &str) -> bytes::Bytes {
        let r = self
            .http
            .get(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "manifest {repo}:{reference}");
        r.bytes().await.unwrap()
    }

    pub async fn put_manifest(&self, repo: &str, reference: &str, body: Vec<u8>) -> reqwest::Response {
        self.put_manifest_as(repo, reference, "application/vnd.oci.image.manifest.v1+json", body)
            .await
    }

    /// PUTs an OCI image index as the admin.
    pub async fn put_index(&self, repo: &str, reference: &str, body: Vec<u8>) -> reqwest::Response {
        self.put_manifest_as(repo, reference, "application/vnd.oci.image.index.v1+json", body)
            .await
    }

    async fn put_manifest_as(&self, repo: &str, reference: &str, media_type: &str, body: Vec<u8>) -> reqwest::Response {
        self.http
            .put(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header("content-type", media_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }
}

/// Creates `admin` (password [`ADMIN_PASSWORD`]) and an unlimited API token for it.
pub async fn bootstrap_admin(meta: &Meta) -> String {
    let ev = AuditEvent::ok("test", "user.create");
    let admin = Account {
        name: "admin".into(),
        kind: "user".into(),
        password_hash: Some(portcullis_auth::password::hash(ADMIN_PASSWORD).unwrap()),
        admin: true,
        owner: None,
        created_at: 0,
        password_changed_at: None,
    };
    meta.create_account(&admin, &ev).await.unwrap();
    let t = ApiToken::generate();
    let stored = StoredToken {
        id: t.id.clone(),
        account: "admin".into(),
        name: "tests".into(),
        kind: "api".into(),
        secret_hash: t.secret_hash(),
        scopes: "*:pull,push,delete".into(),
        created_at: 0,
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
    };
    meta.create_token(&stored, &ev).await.unwrap();
    t.reveal()
}

pub fn image_manifest(config: &Digest, config_len: usize, layers: &[(Digest, usize)]) -> Vec<u8> {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|(d, n)| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d.as_str(), "size": n}))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.as_str(), "size": config_len},
        "layers": layers,
    }))
    .unwrap()
}

/// A database URL for the spawned binary: SQLite in `data`, or a fresh
/// PostgreSQL schema chosen through the connection's `search_path` option.
pub async fn database_args(backend: &Backend, data: &std::path::Path) -> Vec<String> {
    match backend {
        Backend::Sqlite => vec![],
        Backend::Postgres(url) => {
            let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
            portcullis_meta::Meta::connect_in_schema(url, Some(&schema))
                .await
                .unwrap()
                .close()
                .await;
            let sep = if url.contains('?') { '&' } else { '?' };
            let _ = data;
            vec![
                "--database".into(),
                format!("{url}{sep}options=-c%20search_path%3D{schema}"),
            ]
        }
    }
}

/// Runs the real binary, as users do; for tests that kill it or measure it.
pub struct ServerProcess {
    pub child: Child,
    pub base: String,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl ServerProcess {
    pub fn spawn(data: &Path, extra: &[&str]) -> ServerProcess {
        Self::spawn_env(data, extra, &[])
    }

    /// As [`ServerProcess::spawn`], with environment variables that override the defaults.
    pub fn spawn_env(data: &Path, extra: &[&str], envs: &[(&str, &str)]) -> ServerProcess {
        Self::spawn_to(data, extra, envs, Stdio::inherit())
    }

    /// As [`ServerProcess::spawn_env`], with the server's log (its
    /// stderr) written to the file `log`, for a test to read.
    pub fn spawn_logged(data: &Path, extra: &[&str], envs: &[(&str, &str)], log: &Path) -> ServerProcess {
        Self::spawn_to(data, extra, envs, std::fs::File::create(log).unwrap().into())
    }

    fn spawn_to(data: &Path, extra: &[&str], envs: &[(&str, &str)], stderr: Stdio) -> ServerProcess {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data"])
            .arg(data)
            .args(extra)
            .env("PORTCULLIS_GC_INTERVAL_SECS", "0")
            // These tests are about storage and operations, not access control.
            .env("PORTCULLIS_ANONYMOUS", "push")
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        wait_ready(&format!("127.0.0.1:{port}"));
        ServerProcess { child, base }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_ready(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("server at {addr} did not start within 30 s");
}

/// Runs the `portcullis` binary with `envs` (and none of the variables a
/// developer's shell might hold for it): (exit code, stdout, stderr).
pub async fn cli(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .env_remove("COSIGN_PASSWORD")
        .env_remove("PORTCULLIS_CREDS")
        .env_remove("PORTCULLIS_VULNDB_SOURCES")
        .envs(envs.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// Whether a missing tool must fail the test rather than skip it: under
/// `PORTCULLIS_REQUIRE_CLIENTS` and under CI (`CI=true`), so a direct
/// `cargo nextest run` in CI cannot pass on skipped tests.
pub fn tools_required() -> bool {
    std::env::var_os("PORTCULLIS_REQUIRE_CLIENTS").is_some() || std::env::var("CI").as_deref() == Ok("true")
}

/// Whether an external tool is available; under `PORTCULLIS_REQUIRE_CLIENTS`
/// (set by test.sh) its absence fails the test instead of skipping it.
pub fn have_tool(name: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && tools_required() {
        panic!("{name} is required (PORTCULLIS_REQUIRE_CLIENTS or CI=true is set) but not installed");
    }
    if !found {
        eprintln!("{name} not installed: test skipped");
    }
    found
}

/// An OCI image layout in `dir` (tag `latest`) whose one layer installs
/// the npm package `package` at `version`: the builds of the supply-chain
/// tests.
pub fn write_npm_layout(dir: &Path, package: &str, version: &str) {
    let manifest = format!("{{\"name\": \"{package}\", \"version\": \"{version}\"}}");
    let path = format!("app/node_modules/{package}/package.json");
    write_layout(dir, "latest", &[tar_of(&[(&path, manifest.as_bytes())])]);
}

/// An OCI image layout in `dir` holding one image of these (uncompressed)
/// layer tars under `tag`; returns each layer's (blob digest, diff id).
pub fn write_layout(dir: &Path, tag: &str, tars: &[Vec<u8>]) -> Vec<(Digest, Digest)> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = Digest::sha256_of(bytes);
        std::fs::write(blobs.join(d.hex()), bytes).unwrap();
        (d, bytes.len())
    };
    let mut layers = Vec::new();
    let mut ids = Vec::new();
    for t in tars {
        let (d, n) = put(&gzip(t));
        layers.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d.as_str(), "size": n}));
        ids.push((d, Digest::sha256_of(t)));
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": ids.iter().map(|(_, d)| d.as_str()).collect::<Vec<_>>()},
        "config": {}
    }))
    .unwrap();
    let (cd, cn) = put(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.as_str(), "size": cn},
        "layers": layers,
    }))
    .unwrap();
    let (md, mn) = put(&manifest);
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md.as_str(), "size": mn,
                           "annotations": {"org.opencontainers.image.ref.name": tag}}]
        }))
        .unwrap(),
    )
    .unwrap();
    ids
}

/// A tar archive of regular files.
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, *bytes).unwrap();
    }
    b.into_inner().unwrap()
}

/// A tar archive of an optional regular file, then a hard or symbolic link
/// at `link.0` pointing to `link.1`.
pub fn tar_with_link(file: Option<(&str, &[u8])>, link: (&str, &str), hard: bool) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    if let Some((path, data)) = file {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, data).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_size(0);
    h.set_mode(0o777);
    h.set_entry_type(if hard {
        tar::EntryType::Link
    } else {
        tar::EntryType::Symlink
    });
    b.append_link(&mut h, link.0, link.1).unwrap();
    b.into_inner().unwrap()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// The peak resident memory of a process, in KiB.
pub fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Garbage collection with no grace for manifests and blobs (uploads keep an hour).
pub fn gc_without_grace() -> portcullis_server::GcSettings {
    portcullis_server::GcSettings {
        manifest_grace: std::time::Duration::ZERO,
        blob_grace: std::time::Duration::ZERO,
        upload_expiry: std::time::Duration::from_secs(3600),
    }
}

/// Sends `req` and reads its JSON answer.
pub async fn json_of(req: reqwest::RequestBuilder) -> serde_json::Value {
    req.send().await.unwrap().json().await.unwrap()
}

/// A management API call as the administrator: (status, JSON body or null).
pub async fn call(
    s: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let r = s.http.request(method, s.url(path)).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// The server's `/metrics` text.
pub async fn scrape(s: &TestServer) -> String {
    s.anon
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Runs `openssl` in `dir`; its standard output. A failure fails the test.
pub fn openssl(args: &[&str], dir: &Path) -> Vec<u8> {
    let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// In `d`: a test CA (`ca.crt`, `ca.key`) and a certificate for
/// 127.0.0.1 signed by it (`server.crt`, `server.key`), valid two days.
pub fn tls_ca_and_server_cert(d: &Path) {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-subj",
            "/CN=Portcullis Test CA",
            "-days",
            "2",
        ],
        d,
    );
    openssl(
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
        d,
    );
    std::fs::write(d.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
        d,
    );
}

/// Polls until `ready` holds for the JSON at `path` (at most 30 s);
/// panics with the last answer otherwise.
pub async fn until(s: &TestServer, path: &str, ready: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..600 {
        let (_, v) = call(s, reqwest::Method::GET, path, serde_json::Value::Null).await;
        if ready(&v) {
            return v;
        }
        last = v;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{path} did not get there within 30 s: {last}");
}

/// Waits until policy `id` of `repo` has evaluated `tag` (policies run
/// after the push's answer); returns the newest such evaluation.
pub async fn evaluated(s: &TestServer, repo: &str, id: &str, tag: &str) -> serde_json::Value {
    let path = format!("/api/v1/repositories/{repo}/policies/{id}/evaluations");
    let has = |v: &serde_json::Value| v.as_array().is_some_and(|l| l.iter().any(|e| e["tag"] == tag));
    let list = until(s, &path, has).await;
    let newest = list.as_array().and_then(|l| l.iter().find(|e| e["tag"] == tag));
    newest.cloned().expect("found by until")
}

/// The uncompressed layers of a Debian image whose upper layers change
/// what the lower ones installed: an upgrade, a whiteout, an opaque
/// directory. The base is the largest (several MiB that do not compress)
/// so, read at once, the upper layers finish first.
pub fn overlay_layers() -> Vec<Vec<u8>> {
    let site = "usr/lib/python3/dist-packages";
    let status = |extra: &str| {
        format!(
            "Package: libc6\nStatus: install ok installed\nSource: glibc\nVersion: 2.36-9\nArchitecture: amd64\n\n\
             Package: bash\nStatus: install ok installed\nVersion: 5.2.15-2\nArchitecture: amd64\n{extra}"
        )
    };
    let base_status = status("");
    let upgraded = status("\nPackage: curl\nStatus: install ok installed\nVersion: 7.88.1-10\nArchitecture: amd64\n")
        .replace("2.36-9", "2.36-9+deb12u4");
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let padding: Vec<u8> = (0..6 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let six = format!("{site}/six-1.16.0.dist-info/METADATA");
    let six_gone = format!("{site}/.wh.six-1.16.0.dist-info");
    vec![
        tar_of(&[
            (
                "etc/os-release",
                b"ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n",
            ),
            ("var/lib/dpkg/status", base_status.as_bytes()),
            (
                "var/lib/dpkg/status.d/tzdata",
                b"Package: tzdata\nVersion: 2024a-0+deb12u1\n",
            ),
            ("srv/padding", &padding),
            (&six, b"Name: six\nVersion: 1.16.0\n"),
        ]),
        tar_of(&[
            ("var/lib/dpkg/status", upgraded.as_bytes()),
            ("var/lib/dpkg/status.d/.wh..wh..opq", b""),
            (
                "var/lib/dpkg/status.d/base-files",
                b"Package: base-files\nVersion: 12.4+deb12u5\n",
            ),
        ]),
        tar_of(&[(&six_gone, b"")]),
        tar_of(&[(
            "srv/app/node_modules/lodash/package.json",
            br#"{"name":"lodash","version":"4.17.20","license":"MIT"}"#,
        )]),
    ]
}

/// What [`overlay_layers`] merge to: (name, version, index of the layer
/// that introduced it), in merged order.
pub const OVERLAY_COMPONENTS: [(&str, &str, usize); 5] = [
    ("lodash", "4.17.20", 3),
    ("libc6", "2.36-9+deb12u4", 1),
    ("bash", "5.2.15-2", 0),
    ("curl", "7.88.1-10", 1),
    ("base-files", "12.4+deb12u5", 1),
];

/// A script's process group (its servers and receivers in the
/// background), killed when dropped, whatever happened.
pub struct ProcessGroup(pub u32);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.0)])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Waits for `child` (spawned as the leader of its process group) until
/// `deadline`; `None` when it ran out of time (it is killed then). Its group
/// is killed either way.
pub async fn wait_for_group(child: &mut Child, deadline: std::time::Instant) -> Option<std::process::ExitStatus> {
    let group = ProcessGroup(child.id());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    drop(group);
    status
}

/// `bash` as a reader's shell would run a documented script, isolated: its
/// own HOME, XDG_RUNTIME_DIR and TMPDIR under `dir` (so it never reads or
/// writes the user's credentials), the built `portcullis` first on PATH,
/// none of the variables that would point it at another server or
/// credentials, no proxy, stdout and stderr into `dir/output.txt`, and in a
/// process group of its own (see [`wait_for_group`]). The caller adds the
/// arguments and the working directory.
pub fn isolated_bash(dir: &std::path::Path) -> Command {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let (home, runtime, tmp) = (dir.join("home"), dir.join("run"), dir.join("tmp"));
    for d in [&home, &runtime, &tmp] {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_portcullis")).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let out = std::fs::File::create(dir.join("output.txt")).unwrap();
    let mut command = Command::new("bash");
    command
        .env("PATH", path)
        .env("HOME", &home)
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("TMPDIR", &tmp)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0);
    for name in [
        "REGISTRY_AUTH_FILE",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "XDG_CACHE_HOME",
        "DOCKER_CONFIG",
        "PORTCULLIS_DATABASE",
        "PORTCULLIS_SERVER",
        "PORTCULLIS_CREDS",
        "PORTCULLIS_WEBHOOK_SECRET",
        "COSIGN_PASSWORD",
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "all_proxy",
    ] {
        command.env_remove(name);
    }
    command
}

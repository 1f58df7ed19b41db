//! Hostile requests, TLS with a verifying client, graceful shutdown.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{have_tool, Backend, ServerProcess, TestServer};
use portcullis_oci::Digest;

/// Sends raw bytes, half-closes, and returns what the server answered (if anything).
fn raw(addr: &str, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).to_string()
}

const TLS_ADMIN_PW: &str = "tls-admin-password";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_errors_and_leave_stored_data_untouched() {
    let s = TestServer::start_open(&Backend::Sqlite).await;
    let (md, manifest) = s.push_image("safe/app", "v1", b"cfg", &[b"precious layer"]).await;
    let addr = s.base.trim_start_matches("http://").to_string();
    let layer = Digest::sha256_of(b"precious layer");

    // A body shorter than its Content-Length, then the connection closes.
    let short = format!(
        "POST /v2/safe/app/blobs/uploads/?digest={layer} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b"
    );
    let addr2 = addr.clone();
    tokio::task::spawn_blocking(move || raw(&addr2, short.as_bytes()))
        .await
        .unwrap();
    // A body longer than its Content-Length: only the declared bytes count.
    let d = Digest::sha256_of(b"abcdef");
    let long = format!("POST /v2/safe/other/blobs/uploads/?digest={d} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabcdef");
    let addr2 = addr.clone();
    let answer = tokio::task::spawn_blocking(move || raw(&addr2, long.as_bytes()))
        .await
        .unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 400") && answer.contains("DIGEST_INVALID"),
        "{answer}"
    );
    // A manifest that claims 4 MiB + 1 is refused before it is read.
    let huge = "PUT /v2/safe/app/manifests/v1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 4194305\r\nConnection: close\r\n\r\n{";
    let addr2 = addr.clone();
    let answer = tokio::task::spawn_blocking(move || raw(&addr2, huge.as_bytes()))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // Garbage where a request line should be.
    let addr2 = addr.clone();
    let answer = tokio::task::spawn_blocking(move || raw(&addr2, b"\x00\x01\x02 garbage\r\n\r\n"))
        .await
        .unwrap();
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 400"), "{answer}");
    // Enormous headers.
    let big_header = format!(
        "GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(2 * 1024 * 1024)
    );
    let addr2 = addr.clone();
    let answer = tokio::task::spawn_blocking(move || raw(&addr2, big_header.as_bytes()))
        .await
        .unwrap();
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431") || answer.starts_with("HTTP/1.1 400"),
        "{}",
        &answer[..answer.len().min(200)]
    );

    // Manifest replaced by garbage under the same tag: refused, the old one stays.
    let r = s
        .http
        .put(s.url("/v2/safe/app/manifests/v1"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(r#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:00","size":1},"layers":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Everything stored before is still exactly there.
    let r = s.http.get(s.url("/v2/safe/app/manifests/v1")).send().await.unwrap();
    assert_eq!(r.headers()["docker-content-digest"], md.as_str());
    assert_eq!(r.bytes().await.unwrap().as_ref(), &manifest[..]);
    let r = s
        .http
        .get(s.url(&format!("/v2/safe/app/blobs/{layer}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"precious layer");
    let r = s
        .http
        .head(s.url(&format!("/v2/safe/other/blobs/{d}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "nothing stored from the lying request");
    // Blob files are all whole.
    for (d, _) in s.registry.store.list_blobs().unwrap() {
        assert_eq!(
            Digest::sha256_of(&std::fs::read(s.registry.store.blob_path(&d)).unwrap()),
            d
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_test_ca_and_a_verifying_client() {
    if !have_tool("openssl") || !have_tool("skopeo") || !have_tool("curl") {
        return;
    }
    for backend in common::backends() {
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres(url) => Some(fresh_database(&url)),
        };
        tls_login_flow(database).await;
    }
}

/// A new, empty PostgreSQL database next to the one `url` names, for a
/// server process (which cannot be pointed at a schema).
fn fresh_database(url: &str) -> String {
    let name = format!("portcullis_t_{}", uuid::Uuid::new_v4().simple());
    let st = std::process::Command::new("psql")
        .args([url, "-q", "-c", &format!("CREATE DATABASE {name}")])
        .status()
        .expect("psql");
    assert!(st.success(), "creating database {name}");
    let (base, _) = url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// Log in and push/pull over HTTPS with a test CA, the client verifying.
async fn tls_login_flow(database: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A CA, and a server certificate for 127.0.0.1 signed by it.
    common::tls_ca_and_server_cert(d);
    // Secure defaults: nothing anonymous; the first administrator's password
    // comes from the environment.
    let server = ServerProcess::spawn_env(
        &d.join("data"),
        &[
            "--tls-cert",
            d.join("server.crt").to_str().unwrap(),
            "--tls-key",
            d.join("server.key").to_str().unwrap(),
        ]
        .into_iter()
        .chain(database.iter().flat_map(|db| ["--database", db.as_str()]))
        .collect::<Vec<_>>(),
        &[
            ("PORTCULLIS_ANONYMOUS", "none"),
            ("PORTCULLIS_ADMIN_PASSWORD", TLS_ADMIN_PW),
        ],
    );
    let host = server.base.trim_start_matches("http://").to_string();

    let curl = |extra: &[&str]| {
        std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(extra)
            .output()
            .unwrap()
    };
    let ok = curl(&[
        "--cacert",
        d.join("ca.crt").to_str().unwrap(),
        &format!("https://{host}/v2/"),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout),
        "401",
        "challenged, over verified TLS"
    );
    let untrusted = curl(&[&format!("https://{host}/v2/")]);
    assert!(
        !untrusted.status.success(),
        "a client without the CA must refuse the certificate"
    );

    // skopeo pushes and pulls over HTTPS, verifying against the test CA.
    let certs = d.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(d.join("ca.crt"), certs.join("ca.crt")).unwrap();
    let layout = d.join("layout");
    for args in [
        vec!["init", "--layout", layout.to_str().unwrap()],
        vec!["new", "--image", &format!("{}:t", layout.display())],
    ] {
        assert!(std::process::Command::new("umoci")
            .args(&args)
            .status()
            .unwrap()
            .success());
    }
    let certs = certs.to_str().unwrap();
    let dest = format!("docker://{host}/tls/app:t");
    let creds = format!("admin:{TLS_ADMIN_PW}");
    let push = std::process::Command::new("skopeo")
        .args([
            "copy",
            "--dest-cert-dir",
            certs,
            "--dest-creds",
            &creds,
            &format!("oci:{}:t", layout.display()),
            &dest,
        ])
        .env("HOME", d)
        .output()
        .unwrap();
    assert!(push.status.success(), "{}", String::from_utf8_lossy(&push.stderr));
    let inspect = std::process::Command::new("skopeo")
        .args(["inspect", "--cert-dir", certs, "--creds", &creds, "--raw", &dest])
        .env("HOME", d)
        .output()
        .unwrap();
    assert!(inspect.status.success(), "{}", String::from_utf8_lossy(&inspect.stderr));
    // The token endpoint is on the same verified HTTPS origin; wrong
    // credentials and no credentials are refused there.
    for args in [vec!["--creds", "admin:wrong-password"], vec![]] {
        let denied = std::process::Command::new("skopeo")
            .args(["inspect", "--cert-dir", certs, "--raw"])
            .args(&args)
            .arg(&dest)
            .env("HOME", d)
            .output()
            .unwrap();
        assert!(!denied.status.success(), "{args:?} must be refused");
    }
    let refused = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", &dest])
        .env("HOME", d)
        .output()
        .unwrap();
    assert!(!refused.status.success(), "skopeo without the CA must refuse");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::spawn(&dir.path().join("data"), &[]);
    let base = server.base.clone();
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/v2/slow/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let loc = format!("{base}{}", r.headers()["location"].to_str().unwrap());
    // A PATCH whose body trickles in over ~1.5 s; SIGTERM arrives mid-way.
    let body = futures_util::stream::unfold(0u32, |i| async move {
        if i == 6 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        Some((Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'x'; 1000])), i + 1))
    });
    let patch = tokio::spawn({
        let http = http.clone();
        async move {
            http.patch(&loc)
                .body(reqwest::Body::wrap_stream(body))
                .send()
                .await
                .map(|r| (r.status(), r.headers()["range"].to_str().unwrap().to_string()))
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = server.pid().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let (status, range) = patch.await.unwrap().expect("in-flight request finished");
    assert_eq!(status, 202);
    assert_eq!(range, "0-5999");
    // The server then exits by itself, cleanly.
    let mut server = server;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(code) = server.child.try_wait().unwrap() {
            assert!(code.success(), "exit status {code}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // New connections are refused once it is gone.
    assert!(http.get(format!("{base}/v2/")).send().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_command_runs_beside_a_live_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServerProcess::spawn(&data, &[]);
    let http = reqwest::Client::new();
    let base = &server.base;
    let push = |path: String, body: Vec<u8>| {
        let http = http.clone();
        async move { http.post(path).body(body).send().await.unwrap().status() }
    };
    let layer = Digest::sha256_of(b"kept layer");
    let config = Digest::sha256_of(b"{}");
    let loose = Digest::sha256_of(b"loose blob");
    assert_eq!(
        push(
            format!("{base}/v2/gc/app/blobs/uploads/?digest={layer}"),
            b"kept layer".to_vec()
        )
        .await,
        201
    );
    assert_eq!(
        push(
            format!("{base}/v2/gc/app/blobs/uploads/?digest={config}"),
            b"{}".to_vec()
        )
        .await,
        201
    );
    assert_eq!(
        push(
            format!("{base}/v2/gc/app/blobs/uploads/?digest={loose}"),
            b"loose blob".to_vec()
        )
        .await,
        201
    );
    let manifest = common::image_manifest(&config, 2, &[(layer.clone(), 10)]);
    let r = http
        .put(format!("{base}/v2/gc/app/manifests/v1"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([
            "gc",
            "--blob-grace",
            "0",
            "--manifest-grace",
            "0",
            "--format",
            "json",
            "--data",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["links"], 1, "{report}");
    assert_eq!(report["blobs"], 1, "{report}");
    assert_eq!(report["manifests"], 0, "{report}");

    let status = |d: &Digest| {
        let url = format!("{base}/v2/gc/app/blobs/{d}");
        let http = http.clone();
        async move { http.get(url).send().await.unwrap().status() }
    };
    assert_eq!(status(&loose).await, 404);
    assert_eq!(status(&layer).await, 200);
    assert_eq!(status(&config).await, 200);
    let r = http.get(format!("{base}/v2/gc/app/manifests/v1")).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), &manifest[..]);

    let help = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["gc", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("--blob-grace"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_sweep_removes_only_old_files_without_rows() {
    let s = TestServer::start(&Backend::Sqlite).await;
    let store = &s.registry.store;
    let write = |content: &[u8], age: Duration| {
        let d = Digest::sha256_of(content);
        let path = store.blob_path(&d);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(std::time::SystemTime::now() - age).unwrap();
        d
    };
    // Left by a crash two hours ago, and one from a commit that may still be under way.
    let old = write(b"crash leftover", Duration::from_secs(7200));
    let fresh = write(b"publishing now", Duration::from_secs(1));
    let kept = s.push_blob("r", b"a real blob").await;
    let zero = common::gc_without_grace();
    let report = portcullis_server::gc::collect_garbage(&s.registry, &zero)
        .await
        .unwrap();
    assert_eq!(report.orphan_files, 1, "{report:?}");
    assert!(!store.blob_path(&old).exists());
    assert!(
        store.blob_path(&fresh).exists(),
        "a fresh file may be a commit in flight"
    );
    // The real blob was unreferenced, so grace 0 collected it through its row.
    assert_eq!(report.blobs, 1, "{report:?}");
    assert!(!store.blob_path(&kept).exists());
}

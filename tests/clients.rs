//! Real clients, driven as their users drive them: umoci builds images,
//! skopeo, podman, buildah and oras push and pull them through the registry.
//! test.sh installs the tools; with PORTCULLIS_REQUIRE_CLIENTS set a missing
//! tool fails the test.

mod common;

use std::path::{Path, PathBuf};

use common::{backends, have_tool, Backend, TestServer};
use portcullis_oci::Digest;

/// Runs a command to completion; panics with its output unless it succeeded.
async fn run(program: &str, args: &[&str], envs: &[(&str, &Path)]) -> String {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).env(
        "HOME",
        envs.iter()
            .find(|(k, _)| *k == "HOME")
            .map_or(Path::new("/tmp"), |(_, v)| v),
    );
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap_or_else(|e| panic!("{program}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs a command with `HOME` set; its output, whatever its status.
async fn output(program: &str, args: &[&str], home: &Path) -> std::process::Output {
    tokio::process::Command::new(program)
        .args(args)
        .env("HOME", home)
        .output()
        .await
        .unwrap()
}

async fn fails(program: &str, args: &[&str], home: &Path) -> bool {
    !output(program, args, home).await.status.success()
}

/// A tiny root filesystem: static busybox as /bin/sh, and a file.
fn rootfs(dir: &Path, marker: &str) -> PathBuf {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox");
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    std::fs::write(root.join("etc/marker"), marker).unwrap();
    root
}

/// An OCI layout at `layout` holding tag `tag`, built by umoci from `root`.
async fn umoci_image(layout: &Path, tag: &str, root: &Path, arch: &str) {
    let l = layout.to_str().unwrap();
    if !layout.exists() {
        run("umoci", &["init", "--layout", l], &[]).await;
    }
    let image = format!("{l}:{tag}");
    run("umoci", &["new", "--image", &image], &[]).await;
    run(
        "umoci",
        &["insert", "--image", &image, root.to_str().unwrap(), "/"],
        &[],
    )
    .await;
    run(
        "umoci",
        &[
            "config",
            "--image",
            &image,
            "--architecture",
            arch,
            "--config.cmd",
            "/bin/sh",
        ],
        &[],
    )
    .await;
}

/// The descriptor `index.json` of an OCI layout lists under a ref name.
fn layout_descriptor(layout: &Path, tag: &str) -> serde_json::Value {
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("{tag} not in {index}"))
        .clone()
}

fn layout_blob(layout: &Path, digest: &str) -> Vec<u8> {
    let (alg, hex) = digest.split_once(':').unwrap();
    std::fs::read(layout.join("blobs").join(alg).join(hex)).unwrap()
}

fn bytes_received(s: &TestServer) -> u64 {
    let text = s.registry.metrics.render();
    let line = text
        .lines()
        .find(|l| l.starts_with("portcullis_blob_bytes_received_total"))
        .unwrap();
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

fn host(s: &TestServer) -> String {
    s.base.trim_start_matches("http://").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_round_trips_an_umoci_image() {
    if !have_tool("skopeo") || !have_tool("umoci") {
        return;
    }
    for b in backends() {
        let s = TestServer::start_open(&b).await;
        let work = tempfile::tempdir().unwrap();
        let home = work.path();
        let layout = work.path().join("layout");
        umoci_image(&layout, "t1", &rootfs(work.path(), "round trip"), "amd64").await;
        let l = layout.to_str().unwrap();
        let h = host(&s);
        let dest = format!("docker://{h}/org/app:t1");
        let env = [("HOME", home)];
        run(
            "skopeo",
            &["copy", "--dest-tls-verify=false", &format!("oci:{l}:t1"), &dest],
            &env,
        )
        .await;

        // The registry holds the layout's manifest byte for byte.
        let desc = layout_descriptor(&layout, "t1");
        let manifest = layout_blob(&layout, desc["digest"].as_str().unwrap());
        let raw = run("skopeo", &["inspect", "--tls-verify=false", "--raw", &dest], &env).await;
        assert_eq!(raw.as_bytes(), &manifest[..], "{}", s.label());
        let config = run("skopeo", &["inspect", "--tls-verify=false", "--config", &dest], &env).await;
        assert!(config.contains("\"architecture\": \"amd64\""), "{config}");
        let info = run("skopeo", &["inspect", "--tls-verify=false", &dest], &env).await;
        assert!(info.contains(desc["digest"].as_str().unwrap()), "{info}");

        // And back: same manifest digest, same layers.
        let back = work.path().join("back");
        run(
            "skopeo",
            &[
                "copy",
                "--src-tls-verify=false",
                &dest,
                &format!("oci:{}:t1", back.display()),
            ],
            &env,
        )
        .await;
        assert_eq!(layout_descriptor(&back, "t1")["digest"], desc["digest"]);
        let layers: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        for layer in layers["layers"].as_array().unwrap() {
            let d = layer["digest"].as_str().unwrap();
            assert_eq!(Digest::sha256_of(&layout_blob(&back, d)).as_str(), d);
        }

        // Pushing again uploads nothing. Pushing to another repository mounts
        // the layers; skopeo never tries a mount for the config, so exactly
        // the config's bytes travel again.
        let before = bytes_received(&s);
        run(
            "skopeo",
            &["copy", "--dest-tls-verify=false", &format!("oci:{l}:t1"), &dest],
            &env,
        )
        .await;
        assert_eq!(
            bytes_received(&s),
            before,
            "{}: a second push re-sent blob bytes",
            s.label()
        );
        let other = format!("docker://{h}/org/other:t1");
        run(
            "skopeo",
            &["copy", "--dest-tls-verify=false", &format!("oci:{l}:t1"), &other],
            &env,
        )
        .await;
        let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        let config_size = m["config"]["size"].as_u64().unwrap();
        assert_eq!(
            bytes_received(&s) - before,
            config_size,
            "{}: layers should have been mounted",
            s.label()
        );
        let raw_other = run("skopeo", &["inspect", "--tls-verify=false", "--raw", &other], &env).await;
        assert_eq!(raw_other.as_bytes(), &manifest[..]);

        let tags = run(
            "skopeo",
            &["list-tags", "--tls-verify=false", &format!("docker://{h}/org/app")],
            &env,
        )
        .await;
        assert!(tags.contains("\"t1\""), "{tags}");

        let synced = work.path().join("synced");
        run(
            "skopeo",
            &[
                "sync",
                "--src",
                "docker",
                "--dest",
                "dir",
                "--src-tls-verify=false",
                &format!("{h}/org/app"),
                synced.to_str().unwrap(),
            ],
            &env,
        )
        .await;
        let synced_manifest = std::fs::read(synced.join("app:t1/manifest.json")).unwrap();
        assert_eq!(synced_manifest, manifest);

        // Anonymous callers may push here, never delete: the admin's token does.
        let creds = format!("admin:{}", s.admin_token);
        run(
            "skopeo",
            &["delete", "--tls-verify=false", "--creds", &creds, &dest],
            &env,
        )
        .await;
        assert!(
            fails("skopeo", &["inspect", "--tls-verify=false", "--raw", &dest], home).await,
            "deleted image still there"
        );
        assert!(!fails("skopeo", &["inspect", "--tls-verify=false", "--raw", &other], home).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_copies_a_multi_arch_index_with_all() {
    if !have_tool("skopeo") || !have_tool("umoci") {
        return;
    }
    let s = TestServer::start_open(&Backend::Sqlite).await;
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let mut descs = Vec::new();
    for arch in ["amd64", "arm64"] {
        let dir = work.path().join(arch);
        umoci_image(&layout, arch, &rootfs(&dir, arch), arch).await;
        let mut d = layout_descriptor(&layout, arch);
        d.as_object_mut().unwrap().remove("annotations");
        d["platform"] = serde_json::json!({"os": "linux", "architecture": arch});
        descs.push(d);
    }
    // Write the index into the layout as any OCI tool would.
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": descs
    }))
    .unwrap();
    let idx = Digest::sha256_of(&index);
    std::fs::write(layout.join("blobs/sha256").join(idx.hex()), &index).unwrap();
    let mut top: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    top["manifests"].as_array_mut().unwrap().push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": idx.as_str(), "size": index.len(),
        "annotations": {"org.opencontainers.image.ref.name": "multi"}
    }));
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();

    let env = [("HOME", work.path())];
    let dest = format!("docker://{}/multi/app:1", host(&s));
    run(
        "skopeo",
        &[
            "copy",
            "--all",
            "--dest-tls-verify=false",
            &format!("oci:{}:multi", layout.display()),
            &dest,
        ],
        &env,
    )
    .await;
    let raw = run("skopeo", &["inspect", "--tls-verify=false", "--raw", &dest], &env).await;
    assert_eq!(raw.as_bytes(), &index[..], "the index is stored as pushed");
    let back = work.path().join("back");
    run(
        "skopeo",
        &[
            "copy",
            "--all",
            "--src-tls-verify=false",
            &dest,
            &format!("oci:{}:multi", back.display()),
        ],
        &env,
    )
    .await;
    assert_eq!(layout_descriptor(&back, "multi")["digest"], idx.as_str());
    for d in &descs {
        let digest = d["digest"].as_str().unwrap();
        assert_eq!(
            layout_blob(&back, digest),
            layout_blob(&layout, digest),
            "child {digest}"
        );
    }
}

struct Engine {
    dir: tempfile::TempDir,
    conf: PathBuf,
}

impl Engine {
    /// Private vfs storage and a registries.conf marking the test registry insecure.
    fn new(s: &TestServer) -> Engine {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("registries.conf");
        std::fs::write(
            &conf,
            format!("[[registry]]\nlocation = \"{}\"\ninsecure = true\n", host(s)),
        )
        .unwrap();
        Engine { dir, conf }
    }

    fn global(&self, tool: &str) -> Vec<String> {
        let p = |x: &str| self.dir.path().join(x).display().to_string();
        let mut v = vec![
            "--root".into(),
            p("root"),
            "--runroot".into(),
            p("runroot"),
            "--storage-driver".into(),
            "vfs".into(),
        ];
        if tool == "podman" {
            v.extend([
                "--cgroup-manager".into(),
                "cgroupfs".into(),
                "--events-backend".into(),
                "file".into(),
            ]);
        }
        v
    }

    async fn run(&self, tool: &str, args: &[&str]) -> String {
        let mut all: Vec<String> = self.global(tool);
        all.extend(args.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        run(
            tool,
            &refs,
            &[("CONTAINERS_REGISTRIES_CONF", &self.conf), ("HOME", self.dir.path())],
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_imports_pushes_and_pulls() {
    if !have_tool("podman") {
        return;
    }
    let s = TestServer::start_open(&Backend::Sqlite).await;
    let e = Engine::new(&s);
    let root = rootfs(e.dir.path(), "podman");
    let tar = e.dir.path().join("rootfs.tar");
    run(
        "tar",
        &["-C", root.to_str().unwrap(), "-cf", tar.to_str().unwrap(), "."],
        &[],
    )
    .await;
    e.run("podman", &["import", tar.to_str().unwrap(), "localhost/imported:1"])
        .await;
    let target = format!("{}/pod/imported:1", host(&s));
    e.run(
        "podman",
        &["push", "--tls-verify=false", "localhost/imported:1", &target],
    )
    .await;
    e.run("podman", &["rmi", "-a", "-f"]).await;
    e.run("podman", &["pull", "--tls-verify=false", &target]).await;
    let images = e
        .run("podman", &["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .await;
    assert!(images.contains(&target), "{images}");
    let r = s.http.get(s.url("/v2/pod/imported/tags/list")).send().await.unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["tags"],
        serde_json::json!(["1"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buildah_builds_from_a_registry_image_and_pushes() {
    if !have_tool("buildah") || !have_tool("skopeo") || !have_tool("umoci") {
        return;
    }
    let s = TestServer::start_open(&Backend::Sqlite).await;
    let e = Engine::new(&s);
    let layout = e.dir.path().join("layout");
    umoci_image(&layout, "base", &rootfs(e.dir.path(), "base"), "amd64").await;
    let h = host(&s);
    let env = [("HOME", e.dir.path())];
    run(
        "skopeo",
        &[
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:base", layout.display()),
            &format!("docker://{h}/base/os:1"),
        ],
        &env,
    )
    .await;

    let ctx = e.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Containerfile"),
        format!("FROM {h}/base/os:1\nRUN echo built > /built.txt\n"),
    )
    .unwrap();
    let image = format!("{h}/built/app:1");
    let file = ctx.join("Containerfile");
    e.run(
        "buildah",
        &[
            "bud",
            "--isolation",
            "chroot",
            "--tls-verify=false",
            "-f",
            file.to_str().unwrap(),
            "-t",
            &image,
            ctx.to_str().unwrap(),
        ],
    )
    .await;
    e.run("buildah", &["push", "--tls-verify=false", &image]).await;

    let raw = run(
        "skopeo",
        &["inspect", "--tls-verify=false", "--raw", &format!("docker://{image}")],
        &env,
    )
    .await;
    let m: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        m["layers"].as_array().unwrap().len(),
        2,
        "base layer plus the RUN layer: {raw}"
    );
    for layer in m["layers"].as_array().unwrap() {
        let r = s
            .http
            .head(s.url(&format!("/v2/built/app/blobs/{}", layer["digest"].as_str().unwrap())))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oras_pushes_and_pulls_an_artifact_in_chunks() {
    let has_oras = std::process::Command::new("python3")
        .args(["-c", "import oras.client"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_oras {
        assert!(!common::tools_required(), "oras (PyPI) is required but not installed");
        eprintln!("oras not installed: test skipped");
        return;
    }
    let s = TestServer::start_open(&Backend::Sqlite).await;
    let work = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(work.path().join("artifact.bin"), &data).unwrap();
    let h = host(&s);
    let script = format!(
        r#"
import oras.client, os
c = oras.client.OrasClient(hostname="{h}", insecure=True)
r = c.push(files=["artifact.bin"], target="{h}/art/thing:v1", do_chunked=True, chunk_size=65536)
assert r.status_code == 201, r.status_code
os.makedirs("out", exist_ok=True)
c.pull(target="{h}/art/thing:v1", outdir="out")
print(c.get_tags("{h}/art/thing"))
"#
    );
    let out = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .current_dir(work.path())
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("v1"));
    assert_eq!(std::fs::read(work.path().join("out/artifact.bin")).unwrap(), data);
    let text = s.registry.metrics.render();
    let patches = text
        .lines()
        .find(|l| l.contains("route=\"upload_patch\",status=\"202\""))
        .expect("chunked PATCHes were made");
    let n: u64 = patches.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 5, "300 kB in 64 KiB chunks is at least 5 PATCHes, saw {n}");
}

/// Creates `alice` (password) and service account `acme+ci` with write on
/// `acme` and a token limited to `acme/*:pull,push`; returns the token.
async fn accounts_for_login(s: &TestServer) -> String {
    let call = |m: reqwest::Method, path: &str, body: serde_json::Value| {
        let req = s.http.request(m, s.url(path)).json(&body);
        async move {
            let r = req.send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.text().await.unwrap());
            r.json::<serde_json::Value>().await.unwrap_or_default()
        }
    };
    use reqwest::Method;
    use serde_json::json;
    call(
        Method::POST,
        "/api/v1/users",
        json!({"name": "alice", "password": LOGIN_PW}),
    )
    .await;
    call(Method::POST, "/api/v1/orgs", json!({"name": "acme"})).await;
    call(
        Method::POST,
        "/api/v1/namespaces/acme/service-accounts",
        json!({"name": "ci"}),
    )
    .await;
    call(
        Method::POST,
        "/api/v1/namespaces/acme/grants",
        json!({"account": "acme+ci", "role": "write"}),
    )
    .await;
    let t = call(
        Method::POST,
        "/api/v1/accounts/acme+ci/tokens",
        json!({"name": "gitlab", "scopes": ["acme/*:pull,push"]}),
    )
    .await;
    t["token"].as_str().unwrap().to_string()
}

const LOGIN_PW: &str = "alice-password-123";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_and_podman_log_in_with_a_password_and_a_service_account_token() {
    if !have_tool("skopeo") || !have_tool("umoci") || !have_tool("podman") {
        return;
    }
    for b in backends() {
        let s = TestServer::start(&b).await;
        let ci_token = accounts_for_login(&s).await;
        let e = Engine::new(&s);
        let home = e.dir.path();
        let layout = home.join("layout");
        umoci_image(&layout, "t", &rootfs(home, "login"), "amd64").await;
        let src = format!("oci:{}:t", layout.display());
        let h = host(&s);
        let env: &[(&str, &Path)] = &[("HOME", home)];

        // Without credentials nothing gets in.
        assert!(
            fails(
                "skopeo",
                &[
                    "copy",
                    "--dest-tls-verify=false",
                    &src,
                    &format!("docker://{h}/alice/app:1")
                ],
                home
            )
            .await
        );
        // A wrong password is refused at login.
        assert!(
            fails(
                "skopeo",
                &[
                    "login",
                    "--tls-verify=false",
                    "-u",
                    "alice",
                    "-p",
                    "wrong-password!",
                    &h
                ],
                home
            )
            .await
        );
        // alice logs in with her password and pushes to her own namespace.
        let auth = home.join("auth.json");
        let auth_s = auth.to_str().unwrap();
        run(
            "skopeo",
            &[
                "login",
                "--tls-verify=false",
                "--authfile",
                auth_s,
                "-u",
                "alice",
                "-p",
                LOGIN_PW,
                &h,
            ],
            env,
        )
        .await;
        run(
            "skopeo",
            &[
                "copy",
                "--dest-tls-verify=false",
                "--authfile",
                auth_s,
                &src,
                &format!("docker://{h}/alice/app:1"),
            ],
            env,
        )
        .await;
        // ... but not into acme, where she has no grant.
        assert!(
            fails(
                "skopeo",
                &[
                    "copy",
                    "--dest-tls-verify=false",
                    "--authfile",
                    auth_s,
                    &src,
                    &format!("docker://{h}/acme/app:1")
                ],
                home
            )
            .await
        );

        // The CI pushes with its service-account token, and pulls it back.
        let creds = format!("acme+ci:{ci_token}");
        let acme = format!("docker://{h}/acme/app:42");
        run(
            "skopeo",
            &["copy", "--dest-tls-verify=false", "--dest-creds", &creds, &src, &acme],
            env,
        )
        .await;
        let raw = run(
            "skopeo",
            &["inspect", "--tls-verify=false", "--raw", "--creds", &creds, &acme],
            env,
        )
        .await;
        assert!(raw.contains("schemaVersion"), "{raw}");
        // Its token is limited to acme: alice's repository stays out of reach.
        assert!(
            fails(
                "skopeo",
                &[
                    "inspect",
                    "--tls-verify=false",
                    "--raw",
                    "--creds",
                    &creds,
                    &format!("docker://{h}/alice/app:1")
                ],
                home
            )
            .await
        );
        // A wrong token is refused.
        let bad = format!("acme+ci:{}x", &ci_token[..ci_token.len() - 1]);
        assert!(
            fails(
                "skopeo",
                &["inspect", "--tls-verify=false", "--raw", "--creds", &bad, &acme],
                home
            )
            .await
        );

        // podman logs in with the token and pulls through the token flow.
        e.run(
            "podman",
            &["login", "--tls-verify=false", "-u", "acme+ci", "-p", &ci_token, &h],
        )
        .await;
        e.run("podman", &["pull", "--tls-verify=false", &format!("{h}/acme/app:42")])
            .await;
        let images = e
            .run("podman", &["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .await;
        assert!(images.contains(&format!("{h}/acme/app:42")), "{images}");
        e.run("podman", &["logout", &h]).await;
        let refused = tokio::process::Command::new("podman")
            .args(e.global("podman"))
            .args([
                "login",
                "--tls-verify=false",
                "-u",
                "alice",
                "-p",
                "not-her-password",
                &h,
            ])
            .env("HOME", home)
            .env("CONTAINERS_REGISTRIES_CONF", &e.conf)
            .output()
            .await
            .unwrap();
        assert!(
            !refused.status.success(),
            "podman login with a wrong password must fail"
        );

        // The pushes are in the audit trail under the right names and token.
        let records = s
            .registry
            .meta
            .audit_records(&portcullis_meta::AuditQuery {
                action: Some("push".into()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(records
            .iter()
            .any(|r| r.event.actor == "alice" && r.event.repository.as_deref() == Some("alice/app")));
        let ci = records.iter().find(|r| r.event.actor == "acme+ci").unwrap();
        assert_eq!(ci.event.token_id.as_deref(), Some(&ci_token[4..20]), "{}", s.label());
    }
}

/// Runs a command that must fail; returns its standard error.
async fn refused(program: &str, args: &[&str], home: &Path) -> String {
    let out = output(program, args, home).await;
    assert!(!out.status.success(), "{program} {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Immutable tags as CI meets them through skopeo: the build number can't
/// be overwritten or deleted (a retry of the same image is fine), tags
/// matching a namespace pattern are frozen, other tags still move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_cannot_overwrite_or_delete_an_immutable_tag() {
    if !have_tool("skopeo") || !have_tool("umoci") {
        return;
    }
    for b in backends() {
        let s = TestServer::start(&b).await;
        let label = s.label();
        let work = tempfile::tempdir().unwrap();
        let home = work.path();
        let put = |path: &str, body: serde_json::Value| s.http.put(s.url(path)).json(&body).send();
        let r = s
            .http
            .post(s.url("/api/v1/orgs"))
            .json(&serde_json::json!({"name": "acme"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let r = put(
            "/api/v1/repositories/acme/app-build",
            serde_json::json!({"immutable_tags": true}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["immutable_tags"], true);
        let r = put(
            "/api/v1/namespaces/acme/settings",
            serde_json::json!({"immutable_tag_patterns": ["v*"]}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
        let r = put(
            "/api/v1/namespaces/acme/settings",
            serde_json::json!({"immutable_tag_patterns": ["[v"]}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 400, "a bad glob is refused when saved");

        let layout = work.path().join("layout");
        for (tag, marker) in [("one", "first build"), ("two", "second build")] {
            let root = work.path().join(tag);
            umoci_image(&layout, tag, &rootfs(&root, marker), "amd64").await;
        }
        let l = layout.to_str().unwrap();
        let h = host(&s);
        let creds = format!("admin:{}", common::ADMIN_PASSWORD);
        let copy = |src: &str, dest: &str| {
            vec![
                "copy".to_string(),
                "--dest-tls-verify=false".into(),
                "--dest-creds".into(),
                creds.clone(),
                format!("oci:{l}:{src}"),
                format!("docker://{h}/{dest}"),
            ]
        };
        let go = |v: Vec<String>| async move {
            run(
                "skopeo",
                &v.iter().map(String::as_str).collect::<Vec<_>>(),
                &[("HOME", home)],
            )
            .await
        };
        let no = |v: Vec<String>| async move {
            refused("skopeo", &v.iter().map(String::as_str).collect::<Vec<_>>(), home).await
        };
        go(copy("one", "acme/app-build:66")).await;
        let err = no(copy("two", "acme/app-build:66")).await;
        assert!(err.contains("immutable"), "{label}: {err}");
        go(copy("one", "acme/app-build:66")).await; // a retry of the same image
        let err = refused(
            "skopeo",
            &[
                "delete",
                "--tls-verify=false",
                "--creds",
                &creds,
                &format!("docker://{h}/acme/app-build:66"),
            ],
            home,
        )
        .await;
        assert!(err.contains("immutable"), "{label}: {err}");
        let raw = run(
            "skopeo",
            &[
                "inspect",
                "--tls-verify=false",
                "--creds",
                &creds,
                "--raw",
                &format!("docker://{h}/acme/app-build:66"),
            ],
            &[("HOME", home)],
        )
        .await;
        let first = layout_blob(&layout, layout_descriptor(&layout, "one")["digest"].as_str().unwrap());
        assert_eq!(raw.as_bytes(), &first[..], "{label}: still the first build");

        // The namespace pattern: v1 is frozen, latest moves.
        go(copy("one", "acme/app:v1")).await;
        let err = no(copy("two", "acme/app:v1")).await;
        assert!(err.contains("v*"), "{label}: {err}");
        go(copy("one", "acme/app:latest")).await;
        go(copy("two", "acme/app:latest")).await;
    }
}

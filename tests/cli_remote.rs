//! The CLI managing a running server (issue 21): the real `portcullis`
//! binary logs in to a real `portcullis serve` and manages organizations,
//! teams, grants, robot accounts, tokens, policies, webhooks and repository
//! settings, with `--format json` output and the exit codes 0 (done), 1
//! (refused) and 2 (error). Credentials live where `skopeo login` keeps
//! them, and skopeo reads ours as we read its. On SQLite and, with
//! `PORTCULLIS_TEST_POSTGRES`, PostgreSQL.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{backends, database_args, free_port, have_tool, image_manifest, write_npm_layout, Backend, ServerProcess};
use portcullis_oci::Digest;
use serde_json::{json, Value};

const ADMIN_PW: &str = "cli-remote-admin-password";
const BOB_PW: &str = "cli-remote-bob-password";

/// One person's environment: their own home, auth file and CLI state.
struct Person {
    home: tempfile::TempDir,
    /// The auth file is found through XDG_RUNTIME_DIR, not REGISTRY_AUTH_FILE.
    runtime_dir: bool,
}

impl Person {
    fn new() -> Person {
        Person {
            home: tempfile::tempdir().unwrap(),
            runtime_dir: false,
        }
    }

    fn with_runtime_dir() -> Person {
        let p = Person {
            home: tempfile::tempdir().unwrap(),
            runtime_dir: true,
        };
        std::fs::create_dir(p.runtime()).unwrap();
        p
    }

    fn runtime(&self) -> PathBuf {
        self.home.path().join("run")
    }

    fn auth_file(&self) -> PathBuf {
        match self.runtime_dir {
            true => self.runtime().join("containers/auth.json"),
            false => self.home.path().join("auth.json"),
        }
    }

    /// The variables that say where this person's auth file is.
    fn auth_env(&self) -> Vec<(&'static str, PathBuf)> {
        match self.runtime_dir {
            true => vec![("XDG_RUNTIME_DIR", self.runtime())],
            false => vec![("REGISTRY_AUTH_FILE", self.auth_file())],
        }
    }

    /// Runs `portcullis ARGS` as this person, `stdin` on its standard
    /// input: (exit code, stdout, stderr).
    async fn run(&self, args: &[&str], stdin: &str, envs: &[(&str, &str)]) -> (i32, String, String) {
        use tokio::io::AsyncWriteExt;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(args)
            .env_remove("PORTCULLIS_SERVER")
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("PORTCULLIS_WEBHOOK_SECRET")
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .envs(self.auth_env())
            .envs(envs.iter().copied())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).await.unwrap();
        drop(input);
        let out = child.wait_with_output().await.unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    }

    /// Runs a command that must succeed with `--format json`; its JSON.
    async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--format", "json"]);
        let (code, out, err) = self.run(&all, "", &[]).await;
        assert_eq!(code, 0, "portcullis {args:?}: {out}\n{err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("portcullis {args:?} printed no JSON ({e}): {out}"))
    }

    /// Runs a command that must exit `want`; its stderr.
    async fn exits(&self, want: i32, args: &[&str]) -> String {
        let (code, out, err) = self.run(args, "", &[]).await;
        assert_eq!(code, want, "portcullis {args:?} exited {code}: {out}\n{err}");
        err
    }

    fn auth_entries(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.auth_file()).unwrap()).unwrap()
    }
}

fn host_of(base: &str) -> String {
    base.trim_start_matches("http://").to_string()
}

/// Pushes a small image to `repo:tag` with a registry token for `user`.
async fn push_image(base: &str, user: &str, password: &str, repo: &str, tag: &str) -> String {
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{base}/auth/token"))
        .query(&[
            ("service", "portcullis"),
            ("scope", &format!("repository:{repo}:pull,push")),
        ])
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
    let config = format!("{{\"cli\":\"{repo}:{tag}\"}}").into_bytes();
    let layer = format!("a layer of {repo}:{tag}").into_bytes();
    for blob in [&config, &layer] {
        let d = Digest::sha256_of(blob);
        let r = http
            .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={d}"))
            .bearer_auth(&token)
            .body(blob.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    let manifest = image_manifest(
        &Digest::sha256_of(&config),
        config.len(),
        &[(Digest::sha256_of(&layer), layer.len())],
    );
    let digest = Digest::sha256_of(&manifest).to_string();
    let r = http
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .bearer_auth(&token)
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    digest
}

/// A server on 127.0.0.1 with nothing anonymous, `admin`'s password
/// [`ADMIN_PW`], loopback webhooks allowed; and the database arguments an
/// offline command needs to reach the same data.
async fn start(backend: &Backend, dir: &Path) -> (ServerProcess, Vec<String>) {
    let data = dir.join("data");
    let database = database_args(backend, &data).await;
    let args: Vec<&str> = database.iter().map(String::as_str).collect();
    let server = ServerProcess::spawn_env(
        &data,
        &args,
        &[
            ("PORTCULLIS_ANONYMOUS", "none"),
            ("PORTCULLIS_ADMIN_PASSWORD", ADMIN_PW),
            ("PORTCULLIS_WEBHOOK_ALLOW", "127.0.0.1"),
            ("PORTCULLIS_WEBHOOK_POLL_MS", "50"),
            ("PORTCULLIS_WEBHOOK_RETRY_BASE_MS", "100"),
        ],
    );
    let mut offline = vec!["--data".to_string(), data.display().to_string()];
    offline.extend(database);
    (server, offline)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_manages_a_running_server() {
    for backend in backends() {
        round_trip(&backend).await;
    }
}

async fn round_trip(backend: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (server, offline) = start(backend, dir.path()).await;
    let base = server.base.clone();
    let host = host_of(&base);
    let admin = Person::new();

    // An entry someone else wrote stays through login and logout.
    std::fs::write(
        admin.auth_file(),
        r#"{"auths": {"other.example": {"auth": "b3RoZXI6c2VjcmV0"}}, "credHelpers": {"x.example": "pass"}}"#,
    )
    .unwrap();

    // A wrong password is refused (1) and nothing is kept.
    let (code, _, err) = admin
        .run(
            &["login", &base, "-u", "admin", "--password-stdin"],
            "not-the-password\n",
            &[],
        )
        .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("wrong user name or password"), "{err}");
    assert!(admin.auth_entries()["auths"].get(&host).is_none());
    assert!(!admin.home.path().join("config/portcullis/cli.json").exists());

    // Log in: an API token made for the login is kept as skopeo keeps credentials.
    let (code, out, err) = admin
        .run(
            &["login", &base, "-u", "admin", "--password-stdin", "--format", "json"],
            &format!("{ADMIN_PW}\n"),
            &[],
        )
        .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let login: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(login["username"], "admin");
    assert!(
        login["token"].get("token").is_none(),
        "the secret is not printed: {login}"
    );
    let login_token_id = login["token"]["id"].as_str().unwrap().to_string();
    let entries = admin.auth_entries();
    assert_eq!(entries["auths"]["other.example"]["auth"], "b3RoZXI6c2VjcmV0");
    assert_eq!(entries["credHelpers"]["x.example"], "pass");
    let kept = base64::engine::general_purpose::STANDARD
        .decode(entries["auths"][&host]["auth"].as_str().unwrap())
        .unwrap();
    let kept = String::from_utf8(kept).unwrap();
    let (user, secret) = kept.split_once(':').unwrap();
    assert_eq!(user, "admin");
    assert!(
        secret.starts_with(&format!("pct_{login_token_id}_")),
        "a token, not the password"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(admin.auth_file()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // Organizations and teams; every later command finds the server by the login.
    let org = admin.json(&["org", "create", "acme"]).await;
    assert_eq!(org["name"], "acme");
    let err = admin.exits(1, &["org", "create", "acme"]).await;
    assert!(err.contains("HTTP 409"), "an existing org is refused: {err}");
    assert_eq!(admin.json(&["team", "create", "acme", "ci"]).await["name"], "ci");
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/api/v1/users"))
        .basic_auth("admin", Some(ADMIN_PW))
        .json(&json!({"name": "bob", "password": BOB_PW}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(admin.json(&["team", "add", "acme", "ci", "bob"]).await["member"], "bob");
    let err = admin.exits(1, &["team", "add", "acme", "ci", "nobody"]).await;
    assert!(
        err.contains("HTTP 404") && err.contains("no such account: nobody"),
        "{err}"
    );
    let teams = admin.json(&["team", "list", "acme"]).await;
    assert!(
        teams
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "ci" && t["members"] == json!(["bob"])),
        "{teams}"
    );

    // A robot account, a grant to the team, tokens for the robot.
    let robot = admin.json(&["robot", "create", "acme", "ci"]).await;
    assert_eq!(robot["name"], "acme+ci");
    assert_eq!(robot["kind"], "service");
    // A server-side signing key for the robot: its public half, as PEM.
    let (code, out, err) = admin.run(&["robot", "signing-key", "acme", "acme+ci"], "", &[]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("-----BEGIN PUBLIC KEY-----") && !out.contains("PRIVATE"),
        "{out}"
    );
    let robots = admin.json(&["robot", "list", "acme"]).await;
    assert!(
        robots.as_array().unwrap().iter().any(|a| a["name"] == "acme+ci"),
        "{robots}"
    );
    let err = admin.exits(1, &["robot", "signing-key", "acme", "nosuchrobot"]).await;
    assert!(err.contains("no such account"), "{err}");
    let grant = admin.json(&["grant", "acme/app-build", "write", "--team", "ci"]).await;
    assert_eq!(
        (grant["repository"].as_str(), grant["team"].as_str()),
        (Some("acme/app-build"), Some("ci"))
    );
    assert_eq!(grant["role"], "write");
    let grant = admin.json(&["grant", "acme", "read", "--account", "acme+ci"]).await;
    assert!(grant["repository"].is_null(), "a namespace grant: {grant}");
    // Bad input is an error (2) with the server's message.
    let err = admin.exits(2, &["grant", "acme", "superuser", "--team", "ci"]).await;
    assert!(err.contains("HTTP 400"), "{err}");
    let token = admin
        .json(&[
            "token",
            "create",
            "acme+ci",
            "--name",
            "gitlab",
            "--scope",
            "acme/app-build:pull,push",
            "--days",
            "30",
        ])
        .await;
    let robot_token = token["token"].as_str().unwrap().to_string();
    assert!(robot_token.starts_with("pct_"));
    let token_id = token["id"].as_str().unwrap().to_string();
    // Text output is the token alone, for scripts.
    let (code, out, _) = admin
        .run(
            &[
                "token",
                "create",
                "acme+ci",
                "--name",
                "other",
                "--scope",
                "acme/*:pull",
            ],
            "",
            &[],
        )
        .await;
    assert_eq!(code, 0);
    assert!(
        out.trim().starts_with("pct_") && out.trim().lines().count() == 1,
        "{out}"
    );
    let listed = admin.json(&["token", "list", "acme+ci"]).await;
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&token_id.as_str()), "{listed}");
    // Without an account, the logged-in one's: the login's own token.
    let mine = admin.json(&["token", "list"]).await;
    assert!(
        mine.as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == login_token_id.as_str()),
        "{mine}"
    );
    // The robot's token works (as skopeo would use it) until revoked.
    let token_flow = |user: &'static str, secret: String| {
        let http = http.clone();
        let base = base.clone();
        async move {
            http.get(format!("{base}/auth/token"))
                .query(&[("service", "portcullis"), ("scope", "repository:acme/app-build:pull")])
                .basic_auth(user, Some(secret))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(token_flow("acme+ci", robot_token.clone()).await, 200);
    // A robot logs in with its token: kept as it is, and logout leaves it valid.
    let ci = Person::new();
    let (code, _, err) = ci
        .run(
            &["login", &base, "-u", "acme+ci", "--password-stdin"],
            &format!("{robot_token}\n"),
            &[],
        )
        .await;
    assert_eq!(code, 0, "{err}");
    let kept = ci.auth_entries()["auths"][&host]["auth"].as_str().unwrap().to_string();
    assert_eq!(
        base64::engine::general_purpose::STANDARD.decode(kept).unwrap(),
        format!("acme+ci:{robot_token}").into_bytes()
    );
    // Its token reaches acme/app-build only.
    let policies = ci.json(&["policy", "list", "acme/app-build"]).await;
    assert_eq!(policies, json!([]));
    let err = ci.exits(1, &["team", "list", "acme"]).await;
    assert!(err.contains("HTTP 403"), "{err}");
    assert!(ci.json(&["logout"]).await["revoked_token"].is_null());
    assert_eq!(token_flow("acme+ci", robot_token.clone()).await, 200);
    admin
        .json(&["token", "revoke", &token_id, "--account", "acme+ci"])
        .await;
    assert_eq!(token_flow("acme+ci", robot_token.clone()).await, 401);
    let err = admin
        .exits(1, &["token", "revoke", &token_id, "--account", "acme+ci"])
        .await;
    assert!(err.contains("HTTP 404"), "revoked already: {err}");
    let listed = admin.json(&["token", "list", "acme+ci"]).await;
    let revoked = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == token_id.as_str())
        .unwrap();
    assert!(revoked["revoked_at"].is_i64(), "{listed}");

    // Offline mode is still there, on the same data: --data (and --database) select it.
    let mut args = vec!["token", "list", "admin"];
    args.extend(offline.iter().map(String::as_str));
    let (code, out, err) = admin.run(&args, "", &[]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&login_token_id) && out.contains("active"), "{out}");
    let mut args = vec!["token", "list", "admin", "--server", &base];
    args.extend(offline.iter().map(String::as_str));
    assert_eq!(
        admin.run(&args, "", &[]).await.0,
        2,
        "--server and --data exclude each other"
    );

    // A webhook (on a port where nothing listens: its deliveries fail and are logged).
    let err = admin
        .exits(
            2,
            &[
                "webhook",
                "create",
                "--repository",
                "acme/app-build",
                "--url",
                "example.com/hook",
                "--event",
                "TAG_PUSH",
            ],
        )
        .await;
    assert!(err.contains("url needs a scheme"), "the server's message: {err}");
    let nobody = format!("http://127.0.0.1:{}/hook", free_port());
    let (code, out, err) = admin
        .run(
            &[
                "webhook",
                "create",
                "--repository",
                "acme/app-build",
                "--url",
                &nobody,
                "--event",
                "TAG_PUSH,PROMOTION",
                "--header",
                "X-Team=ci",
                "--format",
                "json",
            ],
            "",
            &[],
        )
        .await;
    assert_eq!(code, 0, "{err}");
    let hook: Value = serde_json::from_str(&out).unwrap();
    assert!(
        err.contains("secret (shown once"),
        "a generated secret is shown once: {err}"
    );
    assert_eq!(hook["events"], json!(["TAG_PUSH", "PROMOTION"]));
    assert_eq!(hook["header_names"], json!(["X-Team"]));
    let hook_id = hook["id"].as_str().unwrap().to_string();
    let hooks = admin.json(&["webhook", "list", "--repository", "acme/app-build"]).await;
    assert!(
        hooks.as_array().unwrap().iter().any(|h| h["id"] == hook_id.as_str()),
        "{hooks}"
    );
    admin.exits(2, &["webhook", "list"]).await;
    let ns_hooks = admin.json(&["webhook", "list", "--namespace", "acme"]).await;
    assert!(
        ns_hooks.as_array().unwrap().iter().all(|h| h["id"] != hook_id.as_str()),
        "{ns_hooks}"
    );

    // Bob (in team ci, which may write acme/app-build) pushes a build.
    push_image(&base, "bob", BOB_PW, "acme/app-build", "1").await;

    let deadline = Instant::now() + Duration::from_secs(30);
    let deliveries = loop {
        let d = admin.json(&["webhook", "deliveries", &hook_id]).await;
        let tried = d["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["type"] == "TAG_PUSH" && !d["attempts"].as_array().unwrap().is_empty());
        if tried {
            break d;
        }
        assert!(Instant::now() < deadline, "no delivery attempt: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let attempt = &deliveries["deliveries"][0]["attempts"][0];
    assert!(attempt["error"].is_string(), "nothing listens there: {deliveries}");
    let (code, out, _) = admin.run(&["webhook", "deliveries", &hook_id], "", &[]).await;
    assert_eq!(code, 0);
    assert!(out.contains("TAG_PUSH"), "{out}");
    admin.exits(1, &["webhook", "deliveries", "nosuchhook"]).await;

    // Policies: one that passes tag 1, one that does not.
    let passing = admin
        .json(&[
            "policy",
            "create",
            "acme/app-build",
            "--target",
            "acme/app",
            "--tag-template",
            "r%n",
            "--rule",
            "tag eq 1",
        ])
        .await;
    let passing_id = passing["id"].as_str().unwrap().to_string();
    assert_eq!(
        passing["rules"][0],
        json!({"field": "tag", "operator": "eq", "values": ["1"]})
    );
    let failing = admin
        .json(&[
            "policy",
            "create",
            "acme/app-build",
            "--target",
            "acme/app",
            "--rule",
            r#"{"field": "tag", "operator": "one_of", "values": ["2", "3"]}"#,
        ])
        .await;
    let failing_id = failing["id"].as_str().unwrap().to_string();
    let err = admin
        .exits(
            2,
            &[
                "policy",
                "create",
                "acme/app-build",
                "--target",
                "acme/app",
                "--rule",
                "tag sounds_like 1",
            ],
        )
        .await;
    assert!(err.contains("HTTP 400"), "{err}");
    let list = admin.json(&["policy", "list", "acme/app-build"]).await;
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    let dry = admin
        .json(&["policy", "dry-run", "acme/app-build", &passing_id, "--tag", "1"])
        .await;
    assert_eq!(
        (dry["outcome"].as_str(), dry["target_tag"].as_str()),
        (Some("passed"), Some("r1"))
    );
    let (code, out, err) = admin
        .run(
            &[
                "policy",
                "dry-run",
                "acme/app-build",
                &failing_id,
                "--tag",
                "1",
                "--format",
                "json",
            ],
            "",
            &[],
        )
        .await;
    assert_eq!(code, 1, "a failing dry run is a refusal: {out}\n{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["outcome"], "failed");
    let (code, out, _) = admin
        .run(
            &["policy", "dry-run", "acme/app-build", &failing_id, "--tag", "1"],
            "",
            &[],
        )
        .await;
    assert_eq!(code, 1);
    assert!(out.contains("FAIL\ttag one_of 2,3"), "each rule's verdict: {out}");
    admin
        .exits(
            1,
            &["policy", "dry-run", "acme/app-build", &passing_id, "--tag", "nosuchtag"],
        )
        .await;
    let applied = admin.json(&["policy", "apply", "acme/app-build", &passing_id]).await;
    assert_eq!(applied["evaluations"][0]["outcome"], "promoted", "{applied}");

    // Repository settings: shown, then changed.
    let settings = admin.json(&["repo", "settings", "acme/app"]).await;
    assert_eq!(
        (settings["name"].as_str(), settings["visibility"].as_str()),
        (Some("acme/app"), Some("private"))
    );
    let changed = admin
        .json(&[
            "repo",
            "settings",
            "acme/app-build",
            "--immutable-tags",
            "true",
            "--immutable-tag-patterns",
            "v*,release-*",
        ])
        .await;
    assert_eq!(changed["immutable_tags"], true);
    assert_eq!(changed["immutable_tag_patterns"], json!(["v*", "release-*"]));
    let (code, out, _) = admin.run(&["repo", "settings", "acme/app-build"], "", &[]).await;
    assert_eq!(code, 0);
    assert!(out.contains("immutable_tags\ttrue"), "{out}");
    admin.exits(1, &["repo", "settings", "acme/nosuchrepo"]).await;
    admin
        .exits(2, &["repo", "settings", "acme/app", "--pull-rule", "{not json"])
        .await;
    // Provenance demanded: by a pull rule's JSON, and by `policy create
    // --require-provenance` (a disabled policy: nothing it would refuse runs).
    let provenance = json!({"signed_by": {"teams": [], "accounts": ["admin"]},
                            "builder_ids": ["https://ci.acme.example/*"], "source_uris": []});
    let rule = json!({ "require_provenance": provenance }).to_string();
    let changed = admin
        .json(&["repo", "settings", "acme/app-build", "--pull-rule", &rule])
        .await;
    assert_eq!(changed["pull_rule"]["require_provenance"], provenance, "{changed}");
    admin
        .json(&["repo", "settings", "acme/app-build", "--pull-rule", "{}"])
        .await;
    let demanding = admin
        .json(&[
            "policy",
            "create",
            "acme/app-build",
            "--target",
            "acme/app",
            "--disabled",
            "--require-provenance",
            &provenance.to_string(),
        ])
        .await;
    assert_eq!(demanding["require_provenance"], provenance, "{demanding}");
    let err = admin
        .exits(
            2,
            &[
                "policy",
                "create",
                "acme/app-build",
                "--target",
                "acme/app",
                "--require-provenance",
                r#"{"signed_by": {"accounts": ["nobody"]}}"#,
            ],
        )
        .await;
    assert!(err.contains("account nobody"), "{err}");

    // Bob: what his team may do, and refusals (1) for the rest.
    let bob = Person::new();
    let (code, _, err) = bob
        .run(
            &["login", &host, "--tls-verify=false", "-u", "bob", "-p", BOB_PW],
            "",
            &[],
        )
        .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        bob.json(&["policy", "list", "acme/app-build"])
            .await
            .as_array()
            .unwrap()
            .len(),
        3,
        "the passing, failing and provenance-demanding policies"
    );
    let err = bob.exits(1, &["team", "create", "acme", "release"]).await;
    assert!(err.contains("HTTP 403"), "{err}");
    bob.exits(1, &["repo", "settings", "acme/app-build", "--visibility", "public"])
        .await;
    bob.exits(1, &["policy", "apply", "acme/app-build", &passing_id]).await;
    let (code, out, _) = bob
        .run(
            &["grant", "acme", "admin", "--account", "bob", "--format", "json"],
            "",
            &[],
        )
        .await;
    assert_eq!(code, 1);
    let refused: Value = serde_json::from_str(&out).expect("json format prints the server's error body");
    assert_eq!(refused["errors"][0]["code"], "DENIED");

    // Unreachable (PORTCULLIS_SERVER beats the login's server) is an error (2).
    let closed = format!("http://127.0.0.1:{}", free_port());
    let (code, _, err) = bob
        .run(&["org", "show", "acme"], "", &[("PORTCULLIS_SERVER", &closed)])
        .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot reach"), "{err}");
    let err = bob.exits(2, &["org", "show", "acme", "--server", &closed]).await;
    assert!(err.contains("cannot reach"), "{err}");

    // Logout revokes the login's token and keeps the other entries.
    let out = admin.json(&["logout"]).await;
    assert_eq!(out["revoked_token"], login_token_id.as_str());
    let entries = admin.auth_entries();
    assert!(entries["auths"].get(&host).is_none(), "{entries}");
    assert_eq!(entries["auths"]["other.example"]["auth"], "b3RoZXI6c2VjcmV0");
    assert_eq!(
        token_flow("admin", secret.to_string()).await,
        401,
        "the login's token is revoked"
    );
    // No default server now; with one named, not logged in is a refusal.
    admin.exits(2, &["org", "show", "acme"]).await;
    let err = admin.exits(1, &["org", "show", "acme", "--server", &base]).await;
    assert!(err.contains("not logged in"), "{err}");
    admin.exits(1, &["logout", &base]).await;
    drop(server);
}

/// `skopeo` reads the auth file `portcullis login` writes (a push and an
/// inspect with it), and `portcullis` reads the one `skopeo login` writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_and_portcullis_share_credentials() {
    if !have_tool("skopeo") {
        return;
    }
    for backend in backends() {
        shared_with_skopeo(&backend).await;
    }
}

fn skopeo(args: &[&str], stdin: &str) -> (bool, String, String) {
    skopeo_env(args, stdin, &[])
}

fn skopeo_env(args: &[&str], stdin: &str, envs: &[(&str, PathBuf)]) -> (bool, String, String) {
    use std::io::Write;
    let mut child = std::process::Command::new("skopeo")
        .args(args)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

async fn shared_with_skopeo(backend: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start(backend, dir.path()).await;
    let host = host_of(&server.base);
    let admin = Person::new();
    let (code, _, err) = admin
        .run(
            &["login", &host, "--tls-verify=false", "-u", "admin", "--password-stdin"],
            &format!("{ADMIN_PW}\n"),
            &[],
        )
        .await;
    assert_eq!(code, 0, "{err}");
    let auth = admin.auth_file();
    let auth = auth.to_str().unwrap();

    let (ok, out, err) = skopeo(&["login", "--get-login", "--authfile", auth, &host], "");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "admin");
    let layout = dir.path().join("layout");
    write_npm_layout(&layout, "left-pad", "1.3.0");
    let src = format!("oci:{}:latest", layout.display());
    let dest = format!("docker://{host}/admin/app:1");
    let (ok, _, err) = skopeo(
        &["copy", "--authfile", auth, "--dest-tls-verify=false", &src, &dest],
        "",
    );
    assert!(ok, "skopeo pushes with the login's token: {err}");
    let (ok, out, err) = skopeo(&["inspect", "--authfile", auth, "--tls-verify=false", &dest], "");
    assert!(ok, "{err}");
    let inspected: Value = serde_json::from_str(&out).unwrap();
    assert!(inspected["Digest"].as_str().unwrap().starts_with("sha256:"));

    // sign, verify and scan docker:// use the login kept for the registry
    // when no --creds is given (the repository is private: anonymous
    // callers are refused).
    common::openssl(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "key.pem",
        ],
        dir.path(),
    );
    common::openssl(&["pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem"], dir.path());
    let key = dir.path().join("key.pem");
    let public = dir.path().join("pub.pem");
    let image = format!("{host}/admin/app:1");
    let scan_data = dir.path().join("scan-data");
    let scan = [
        "scan",
        &format!("docker://{image}"),
        "--tls-verify=false",
        "--format",
        "json",
        "--data",
        scan_data.to_str().unwrap(),
    ];
    let (code, out, err) = admin
        .run(
            &["sign", &image, "--key", key.to_str().unwrap(), "--tls-verify=false"],
            "",
            &[],
        )
        .await;
    assert_eq!(code, 0, "sign with the login: {out}{err}");
    let (code, out, err) = admin
        .run(
            &[
                "verify",
                &image,
                "--key",
                public.to_str().unwrap(),
                "--tls-verify=false",
            ],
            "",
            &[],
        )
        .await;
    assert_eq!(code, 0, "verify with the login: {out}{err}");
    let (code, out, err) = admin.run(&scan, "", &[]).await;
    assert_eq!(code, 0, "scan with the login: {err}");
    assert!(serde_json::from_str::<Value>(&out).is_ok(), "{out}");
    let (code, _, err) = Person::new().run(&scan, "", &[]).await;
    assert_eq!(code, 2, "without a login the private image is refused: {err}");

    // The other way: skopeo keeps the password, portcullis uses it.
    let other = Person::new();
    let theirs = other.auth_file();
    let (ok, _, err) = skopeo(
        &[
            "login",
            "--authfile",
            theirs.to_str().unwrap(),
            "--tls-verify=false",
            "-u",
            "admin",
            "--password-stdin",
            &host,
        ],
        &format!("{ADMIN_PW}\n"),
    );
    assert!(ok, "{err}");
    let base = server.base.clone();
    let settings = other.json(&["repo", "settings", "admin/app", "--server", &base]).await;
    assert_eq!(settings["name"], "admin/app");
    let tokens = other.json(&["token", "list", "--server", &base]).await;
    assert!(
        tokens.as_array().unwrap().iter().any(|t| t["account"] == "admin"),
        "{tokens}"
    );
    // A wrong password skopeo kept is a refusal.
    let (ok, _, err) = skopeo(&["logout", "--authfile", theirs.to_str().unwrap(), &host], "");
    assert!(ok, "{err}");
    let encoded = base64::engine::general_purpose::STANDARD.encode("admin:wrong-password-here");
    std::fs::write(&theirs, json!({"auths": {&host: {"auth": encoded}}}).to_string()).unwrap();
    let err = other
        .exits(1, &["repo", "settings", "admin/app", "--server", &base])
        .await;
    assert!(err.contains("HTTP 401") && err.contains("was refused"), "{err}");

    // Without REGISTRY_AUTH_FILE both use $XDG_RUNTIME_DIR/containers/auth.json.
    let runtime = Person::with_runtime_dir();
    let (code, _, err) = runtime
        .run(
            &["login", &base, "-u", "admin", "--password-stdin"],
            &format!("{ADMIN_PW}\n"),
            &[],
        )
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(runtime.auth_file().exists());
    let (ok, out, err) = skopeo_env(&["login", "--get-login", &host], "", &runtime.auth_env());
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "admin");
    let (ok, _, err) = skopeo_env(&["logout", &host], "", &runtime.auth_env());
    assert!(ok, "skopeo logs out of our login: {err}");
    let err = runtime.exits(1, &["repo", "settings", "admin/app"]).await;
    assert!(err.contains("not logged in"), "{err}");
    drop(server);
}

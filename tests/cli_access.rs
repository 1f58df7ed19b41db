//! The offline commands against a real data directory and a running
//! server: first start creates `admin`, `user`/`token` manage accounts,
//! `key rotate` keeps issued tokens valid, and `audit verify` names the
//! first record someone edited or deleted; the chain is keyed with a key
//! kept apart from the database, and anchors catch a log cut back.

mod common;

use std::process::Command;

use common::ServerProcess;

fn portcullis(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = portcullis(args);
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

async fn token_for(base: &str, user: &str, secret: &str, scope: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{base}/auth/token"))
        .query(&[("service", "portcullis"), ("scope", scope)])
        .basic_auth(user, Some(secret))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_commands_rotation_and_audit_verify() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();

    // First start: a random administrator password, written to a file only
    // its owner can read; the log says where, and never holds the password.
    let log = dir.path().join("serve.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data", d])
        .env("PORTCULLIS_GC_INTERVAL_SECS", "0")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let file = data.join("initial-admin-password");
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.contains("serving") {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not start:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(text.contains(file.to_str().unwrap()), "the log names the file:\n{text}");
    let password = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert!(!text.contains(&password), "the password is not in the log");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(password.len(), 24, "{password}");
    // A first password from the environment follows the same rule as any.
    let short = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("other"))
        .env("PORTCULLIS_ADMIN_PASSWORD", "too-short")
        .output()
        .unwrap();
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 12 characters"));
    let users = ok(&["user", "list", "--data", d]);
    assert!(users.contains("admin\tuser\tadmin"), "{users}");

    // Offline: a CI user and a token for it.
    let created = ok(&["user", "create", "ci", "--data", d]);
    assert!(created.starts_with("created ci; password: "), "{created}");
    let token = ok(&[
        "token",
        "create",
        "ci",
        "--name",
        "pipeline",
        "--scope",
        "ci/*:pull,push",
        "--data",
        d,
    ]);
    let token = token.trim().to_string();
    assert!(token.starts_with("pct_"));
    let listed = ok(&["token", "list", "ci", "--data", d]);
    assert!(listed.contains("pipeline\tci/*:pull,push\tactive"), "{listed}");
    assert!(
        !portcullis(&["token", "create", "ci", "--name", "x", "--scope", "Bad:pull", "--data", d])
            .status
            .success()
    );

    let server = ServerProcess::spawn_env(&data, &[], &[("PORTCULLIS_ANONYMOUS", "none")]);
    let r = token_for(&server.base, "admin", &password, "repository:ci/app:pull").await;
    assert_eq!(r.status(), 200, "the printed password works");
    let r = token_for(&server.base, "ci", &token, "repository:ci/app:pull,push").await;
    assert_eq!(r.status(), 200);
    let before: serde_json::Value = r.json().await.unwrap();
    let old_jwt = before["token"].as_str().unwrap().to_string();

    // Rotation: new tokens use the new key, the old token still works.
    let rotated = ok(&["key", "rotate", "--data", d]);
    assert!(rotated.starts_with("new signing key "), "{rotated}");
    // The server looks at its key directory at most once a second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{}/v2/ci/app/tags/list", server.base))
        .bearer_auth(&old_jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "authorized (the repository does not exist yet)");
    let new_jwt: serde_json::Value = token_for(&server.base, "ci", &token, "repository:ci/app:pull")
        .await
        .json()
        .await
        .unwrap();
    let kid = |t: &str| {
        use base64::Engine;
        let h = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(t.split('.').next().unwrap())
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&h).unwrap()["kid"].clone()
    };
    assert_ne!(kid(&old_jwt), kid(new_jwt["token"].as_str().unwrap()));
    let r = http
        .get(format!("{}/v2/ci/app/tags/list", server.base))
        .bearer_auth(new_jwt["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Revoked offline: refused by the running server.
    let id = &token[4..20];
    ok(&["token", "revoke", id, "--data", d]);
    let r = token_for(&server.base, "ci", &token, "repository:ci/app:pull").await;
    assert_eq!(r.status(), 401);
    drop(server);

    // The trail verifies; editing or deleting a row breaks it at that row.
    let intact = ok(&["audit", "verify", "--data", d]);
    assert!(intact.starts_with("audit trail intact: "), "{intact}");
    let export = ok(&["audit", "export", "--data", d]);
    let lines: Vec<serde_json::Value> = export.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.iter().any(|r| r["action"] == "token.revoke"));
    assert!(lines.iter().any(|r| r["action"] == "login" && r["result"] == "failed"));
    let db = data.join("portcullis.db");
    let sql = |q: &str| {
        let st = Command::new("python3")
            .args([
                "-c",
                "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()",
            ])
            .arg(&db)
            .arg(q)
            .status()
            .unwrap();
        assert!(st.success());
    };
    sql("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 3");
    let out = portcullis(&["audit", "verify", "--data", d]);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("BROKEN at record 3: record 3 was altered"), "{said}");
    sql("DELETE FROM audit_log WHERE seq = 2");
    let said = String::from_utf8_lossy(&portcullis(&["audit", "verify", "--data", d]).stdout).to_string();
    assert!(said.contains("BROKEN at record 2: record 2 is missing"), "{said}");
}

/// Rewrites record 2's actor and recomputes every hash and the head with
/// plain SHA-256, the way the chain was hashed before it was keyed: what
/// someone with write access to the database, but not the key, can do.
const REHASH_WITHOUT_KEY: &str = r#"
import hashlib, json, sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2")
prev = "0" * 64
cols = "seq, at, actor, token_id, action, repository, digest, address, result, detail"
for row in c.execute(f"SELECT {cols} FROM audit_log ORDER BY seq").fetchall():
    fields = [prev] + list(row)
    h = hashlib.sha256(json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()
    c.execute("UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, h, row[0]))
    prev = h
c.execute("UPDATE audit_head SET hash = ? WHERE id = 1", (prev,))
c.commit()
"#;

fn sqlite(db: &std::path::Path, statements: &str) {
    let st = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()",
        ])
        .arg(db)
        .arg(statements)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn the_audit_chain_is_keyed_and_anchors_catch_truncation() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path().to_str().unwrap();
    let db = data.path().join("portcullis.db");
    for user in ["ann", "bob", "cat", "dan"] {
        ok(&["user", "create", user, "--data", d]);
    }
    let key_file = data.path().join("keys/audit.key");
    let mode = std::fs::metadata(&key_file).unwrap().permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
    // Without its key nothing writes to a keyed trail (plain records
    // appended to it would break it for good).
    let aside = data.path().join("audit.key.aside");
    std::fs::rename(&key_file, &aside).unwrap();
    let out = portcullis(&["user", "create", "frank", "--data", d]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("audit key"), "{said}");
    assert!(!key_file.exists(), "no new key made in its place");
    std::fs::rename(&aside, &key_file).unwrap();
    // Nor with a key that never wrote it (an operator moving to
    // PORTCULLIS_AUDIT_KEY with a new key): its records would verify under
    // neither key. `audit verify` still reads the trail and reports it.
    let with_key = |key: &str, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(args)
            .env("PORTCULLIS_AUDIT_KEY", key)
            .output()
            .unwrap()
    };
    let other = "ab".repeat(32);
    let before = ok(&["audit", "anchor", "--data", d]);
    let out = with_key(&other, &["user", "create", "frank", "--data", d]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("does not verify under the audit key from PORTCULLIS_AUDIT_KEY"),
        "{said}"
    );
    assert_eq!(ok(&["audit", "anchor", "--data", d]), before, "nothing was written");
    let out = with_key(&other, &["audit", "verify", "--data", d]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("BROKEN at record 1"), "{said}");
    // The trail's own key, given by the environment, writes to it.
    let own: String = std::fs::read(&key_file)
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let out = with_key(&own, &["user", "create", "frank", "--data", d]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // An anchor at record 3 of 4; the log goes on, the anchor still holds.
    sqlite(&db, "");
    let anchor: serde_json::Value = serde_json::from_str(&ok(&["audit", "anchor", "--data", d])).unwrap();
    let last = anchor["seq"].as_i64().unwrap();
    assert!(last >= 4, "{anchor}");
    let anchor_file = data.path().join("anchor.json");
    std::fs::write(&anchor_file, anchor.to_string()).unwrap();
    ok(&["user", "create", "eve", "--data", d]);
    let a = anchor_file.to_str().unwrap();
    let intact = ok(&["audit", "verify", "--anchor", a, "--data", d]);
    assert!(intact.starts_with("audit trail intact: "), "{intact}");

    // Cut back before the anchor, head rewound to the new last record: the
    // chain alone still verifies (no key is needed to drop a tail), the
    // anchor does not.
    let cut = format!(
        "DELETE FROM audit_log WHERE seq >= {last};
         UPDATE audit_head SET seq = {k}, hash = (SELECT hash FROM audit_log WHERE seq = {k}) WHERE id = 1;",
        k = last - 1
    );
    let copy = data.path().join("before-cut.db");
    std::fs::copy(&db, &copy).unwrap();
    sqlite(&db, &cut);
    let plain = ok(&["audit", "verify", "--data", d]);
    assert!(plain.starts_with("audit trail intact: "), "{plain}");
    let out = portcullis(&["audit", "verify", "--anchor", a, "--data", d]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains(&format!("anchored record {last} is gone")), "{said}");

    // A record edited and the whole chain re-hashed without the key: caught.
    std::fs::copy(&copy, &db).unwrap();
    let rehash = Command::new("python3")
        .args(["-c", REHASH_WITHOUT_KEY])
        .arg(&db)
        .status()
        .unwrap();
    assert!(rehash.success());
    let out = portcullis(&["audit", "verify", "--data", d]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("BROKEN at record 1: record 1 was altered"), "{said}");
    assert!(said.contains("under the audit key"), "{said}");
    let out = portcullis(&["audit", "verify", "--anchor", a, "--data", d]);
    assert_eq!(out.status.code(), Some(1));
}

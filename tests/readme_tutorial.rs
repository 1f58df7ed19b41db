//! README's tutorial, run as written (issue 21): every `sh` block of the
//! section "Tutorial: from an empty server to a signed-only pull", in
//! order, as one `bash -euo pipefail` script, against the real
//! `portcullis serve`, on SQLite and, with `PORTCULLIS_TEST_POSTGRES`,
//! PostgreSQL; then the outcomes the README claims are checked from the
//! outside.
//!
//! The first block starts the server: it is not run; its `NAME=VALUE`
//! settings start the test's server (on a free port, with the test's
//! database). Every other block runs verbatim except for [`substitutions`]:
//! the two addresses the reader's machine would have, the registry's and
//! the webhook receiver's. The script runs in this checkout (the README
//! says so: `../shared/vulndb` sits beside it) with its own HOME,
//! XDG_RUNTIME_DIR and TMPDIR, so it never reads or writes the user's
//! credentials, and in its own process group, which is killed afterwards
//! (the README's webhook receiver runs in the background).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{backends, database_args, free_port, have_tool, Backend, ServerProcess};
use serde_json::{json, Value};

const SECTION: &str = "## Tutorial: from an empty server to a signed-only pull";
/// The registry's address as README writes it (`portcullis serve`'s default).
const README_REGISTRY: &str = "127.0.0.1:5000";
/// The webhook receiver's address as README writes it.
const README_RECEIVER: &str = "127.0.0.1:8080";
/// How long the whole script may take.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(300);

/// The tutorial's `sh` blocks, in order.
fn tutorial_blocks(readme: &str) -> Vec<String> {
    let start = readme
        .find(SECTION)
        .unwrap_or_else(|| panic!("README has no section {SECTION:?}"));
    let rest = &readme[start + SECTION.len()..];
    let section = match rest.find("\n## ") {
        Some(end) => &rest[..end],
        None => rest,
    };
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in section.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "an unclosed sh block in the tutorial");
    blocks
}

/// The server block's `NAME=VALUE` settings (the environment it starts
/// `portcullis serve` with).
fn server_settings(block: &str) -> Vec<(String, String)> {
    let line = block.replace("\\\n", " ");
    let command: Vec<&str> = line
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(command.len(), 1, "the server block is one command: {block}");
    let words: Vec<&str> = command[0].split_whitespace().collect();
    let serve = words
        .windows(2)
        .position(|w| w == ["portcullis", "serve"])
        .unwrap_or_else(|| panic!("the first tutorial block starts `portcullis serve`: {block}"));
    assert_eq!(
        serve + 2,
        words.len(),
        "the server block gives serve no arguments (the test chooses the address and data): {block}"
    );
    words[..serve]
        .iter()
        .map(|w| {
            let (k, v) = w
                .split_once('=')
                .unwrap_or_else(|| panic!("{w:?}: only NAME=VALUE settings before portcullis serve"));
            assert!(
                k.starts_with("PORTCULLIS_") && !v.contains(['$', '\'', '"']),
                "{w:?}: a plain PORTCULLIS_ setting"
            );
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Every change made to the README's text before it runs: the addresses.
fn substitutions(registry: &str, receiver: &str) -> Vec<(&'static str, String)> {
    vec![
        (README_REGISTRY, registry.to_string()),
        (README_RECEIVER, receiver.to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_tutorial_runs_as_written() {
    // The tools the tutorial uses; under PORTCULLIS_REQUIRE_CLIENTS a missing one fails.
    for tool in ["skopeo", "umoci", "jq", "curl", "python3", "timeout"] {
        if !have_tool(tool) {
            return;
        }
    }
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let blocks = tutorial_blocks(&readme);
    assert!(blocks.len() > 5, "the tutorial's sh blocks: {blocks:?}");
    for backend in backends() {
        run_tutorial(&backend, &blocks).await;
    }
}

async fn run_tutorial(backend: &Backend, blocks: &[String]) {
    let label = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres(_) => "postgres",
    };
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        checkout.join("../shared/vulndb/npm.osv.jsonl.gz").exists(),
        "the tutorial reads ../shared/vulndb beside the checkout"
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    // The server, as the first block starts it.
    let settings = server_settings(&blocks[0]);
    let admin_password = settings
        .iter()
        .find(|(k, _)| k == "PORTCULLIS_ADMIN_PASSWORD")
        .map(|(_, v)| v.clone())
        .expect("the tutorial sets the administrator's password");
    let mut envs: Vec<(&str, &str)> = vec![("PORTCULLIS_ANONYMOUS", "none")];
    envs.extend(settings.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let database = database_args(backend, &data).await;
    let args: Vec<&str> = database.iter().map(String::as_str).collect();
    let log = dir.path().join("server.log");
    let server = ServerProcess::spawn_logged(&data, &args, &envs, &log);
    let registry = server.base.trim_start_matches("http://").to_string();
    let receiver = format!("127.0.0.1:{}", free_port());

    // The rest, as one script.
    let mut script = blocks[1..].join("\n");
    for (from, to) in substitutions(&registry, &receiver) {
        assert!(script.contains(from), "the tutorial writes {from}");
        script = script.replace(from, &to);
    }
    let script_file = dir.path().join("tutorial.sh");
    std::fs::write(&script_file, &script).unwrap();
    let output_file = dir.path().join("output.txt");
    let (tmp, runtime) = (dir.path().join("tmp"), dir.path().join("run"));
    let mut child = common::isolated_bash(dir.path())
        .args(["-euo", "pipefail"])
        .arg(&script_file)
        .current_dir(checkout)
        .spawn()
        .unwrap();
    let status = common::wait_for_group(&mut child, Instant::now() + SCRIPT_DEADLINE).await;
    let output = std::fs::read_to_string(&output_file).unwrap_or_default();
    let server_log = || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!(
            "[{label}] the tutorial failed ({s}):\n{output}\n--- server log (end) ---\n{}",
            server_log()
        ),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "[{label}] the tutorial did not finish within {SCRIPT_DEADLINE:?}:\n{output}\n--- server log (end) ---\n{}",
                server_log()
            );
        }
    }

    // What README says happened. The scratch directory is the one
    // `mktemp -d` made under TMPDIR: the one holding the receiver's log.
    let scratch: PathBuf = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("events.txt").exists())
        .unwrap_or_else(|| panic!("[{label}] no scratch directory with events.txt under {}", tmp.display()));
    let events = std::fs::read_to_string(scratch.join("events.txt")).unwrap();
    for want in [
        "SCAN_COMPLETED acme/build@sha256:",
        "PROMOTION acme/release:2 ",
        "IMAGE_SIGNED acme/release:sha256-",
    ] {
        assert!(
            events.lines().any(|l| l.starts_with(want)),
            "[{label}] the receiver heard no {want:?}:\n{events}"
        );
    }
    assert!(
        events.contains(r#""high": 1"#),
        "[{label}] build 1's scan found the high-severity advisory:\n{events}"
    );
    assert!(
        output.contains("FAIL\tvulnerability_high lte 0"),
        "[{label}] the dry run shows why build 1 does not pass:\n{output}"
    );
    assert!(
        output.contains("verified ") && output.contains("(acme+ci)"),
        "[{label}] portcullis verify names the CI account:\n{output}"
    );
    assert!(
        output.contains("require_signed_by"),
        "[{label}] skopeo's refusal names the rule:\n{output}"
    );

    let http = reqwest::Client::new();
    let base = server.base.clone();
    let api = |path: &str| {
        http.get(format!("{base}{path}"))
            .basic_auth("admin", Some(admin_password.clone()))
    };
    let tags: Value = api("/api/v1/repositories/acme/release/tags")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tag = |name: &str| {
        tags["tags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .cloned()
    };
    let release = tag("2").unwrap_or_else(|| panic!("[{label}] no acme/release:2: {tags}"));
    assert_eq!(release["promoted_from"]["repository"], "acme/build", "{release}");
    assert_eq!(
        (
            release["signed"]["status"].as_str(),
            release["signed"]["account"].as_str()
        ),
        (Some("verified"), Some("acme+ci")),
        "[{label}] {release}"
    );
    assert!(tag("1").is_none(), "[{label}] build 1 was not promoted: {tags}");
    let hotfix = tag("hotfix").unwrap_or_else(|| panic!("[{label}] no acme/release:hotfix: {tags}"));
    assert_eq!(hotfix["signed"]["status"], "unsigned", "{hotfix}");

    // The deploy account: the signed release is served, the unsigned image refused.
    let r = http
        .post(format!("{base}/api/v1/accounts/acme+deploy/tokens"))
        .basic_auth("admin", Some(admin_password.clone()))
        .json(&json!({"name": "check", "scopes": ["acme/release:pull"], "expires_in_days": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "[{label}] a deploy token");
    let deploy_token = r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
    let r = http
        .get(format!("{base}/auth/token"))
        .query(&[("service", "portcullis"), ("scope", "repository:acme/release:pull")])
        .basic_auth("acme+deploy", Some(deploy_token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bearer = r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
    let manifest_status = |reference: &str| {
        http.get(format!("{base}/v2/acme/release/manifests/{reference}"))
            .bearer_auth(&bearer)
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
    };
    assert_eq!(manifest_status("2").await.unwrap().status(), 200, "[{label}]");
    let refused = manifest_status("hotfix").await.unwrap();
    assert_eq!(refused.status(), 403, "[{label}]");
    let body = refused.text().await.unwrap();
    assert!(body.contains("require_signed_by"), "[{label}] {body}");

    // What the deploy account pulled into its layout: the release, not the hotfix.
    let index: Value = serde_json::from_slice(&std::fs::read(scratch.join("deployed/index.json")).unwrap()).unwrap();
    let names: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .collect();
    assert_eq!(names, ["2"], "[{label}] {index}");

    // Nothing was written where the user keeps credentials: the login went to the test's runtime dir.
    assert!(
        runtime.join("containers/auth.json").exists(),
        "[{label}] portcullis login kept its token in $XDG_RUNTIME_DIR/containers/auth.json"
    );
    drop(server);
}

#[test]
fn the_tutorial_is_found_and_parsed() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let blocks = tutorial_blocks(&readme);
    let settings = server_settings(&blocks[0]);
    assert!(settings.iter().any(|(k, _)| k == "PORTCULLIS_ADMIN_PASSWORD"));
    assert!(
        settings
            .iter()
            .any(|(k, v)| k == "PORTCULLIS_WEBHOOK_ALLOW" && v == "127.0.0.1"),
        "loopback receivers need PORTCULLIS_WEBHOOK_ALLOW: {settings:?}"
    );
    // The section ends at the next heading: no block of "Running it" is run.
    assert!(blocks.iter().all(|b| !b.contains("portcullis gc")));
}

//! The vulnerability database updated without a person (issue 20 §4):
//! `portcullis db update` and `serve` against a publication server on
//! 127.0.0.1 serving the real OSV files of `../shared/vulndb` (conditional
//! requests, a download cut off and resumed, corrupt files), and the
//! freshness rules, which refuse promotions and pulls while the database
//! is older than their limit, on SQLite and PostgreSQL.

mod common;

use std::path::Path;
use std::time::Duration;

use common::feed::Feed;
use common::signing::{reader_pull, PW};
use common::{backends, call, database_args, evaluated, until, ServerProcess, TestServer};
use portcullis_vulndb::{Limits, NoProgress, VulnDb};
use reqwest::Method;
use serde_json::{json, Value};

fn shared(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/vulndb")
            .join(name),
    )
    .unwrap()
}

/// Runs `portcullis db ARGS --data DATA` with these sources; (exit code, stdout).
async fn db(data: &Path, args: &[&str], sources: &[String]) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("db")
        .args(args)
        .arg("--data")
        .arg(data)
        .env("PORTCULLIS_VULNDB_SOURCES", sources.join(","))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
}

async fn status(data: &Path, sources: &[String]) -> Value {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["db", "status", "--format", "json", "--data"])
        .arg(data)
        .env("PORTCULLIS_VULNDB_SOURCES", sources.join(","))
        .output()
        .await
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Records per source name in the generation in force.
fn records(status: &Value) -> Vec<(String, u64)> {
    status["sources"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|s| (s["name"].as_str().unwrap().to_string(), s["records"].as_u64().unwrap()))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_update_imports_then_asks_only_whether_anything_changed() {
    let feed = Feed::start().await;
    feed.publish("/npm.osv.jsonl.gz", &shared("npm.osv.jsonl.gz"));
    feed.publish("/alpine/all.jsonl.gz", &shared("alpine.osv.jsonl.gz"));
    let sources = vec![feed.url("/npm.osv.jsonl.gz"), feed.url("/alpine/all.jsonl.gz")];
    let data = tempfile::tempdir().unwrap();

    let (code, out) = db(data.path(), &["update"], &sources).await;
    assert_eq!(code, 0, "{out}");
    let first = status(data.path(), &sources).await;
    let generation = first["generation"].as_u64().unwrap();
    let port = feed.base.rsplit(':').next().unwrap().to_string();
    let npm = format!("127.0.0.1_{port}_npm.osv.jsonl.gz");
    let alpine = format!("127.0.0.1_{port}_alpine_all.jsonl.gz");
    assert_eq!(records(&first), [(npm.clone(), 467), (alpine.clone(), 2469)]);
    let view = &first["updates"]["sources"][0];
    assert_eq!(view["records"], 467, "{view}");
    assert!(
        view["last_success"].is_string() && view["last_error"].is_null(),
        "{view}"
    );
    assert!(view["age_seconds"].as_u64().unwrap() < 60);

    // The second run sends the validators back, gets 304s, imports nothing.
    feed.forget_seen();
    let (code, out) = db(data.path(), &["update"], &sources).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("not modified") && out.contains("nothing new"), "{out}");
    let seen = feed.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for s in &seen {
        assert_eq!(s.status, 304, "{s:?}");
        assert_eq!(s.headers["if-none-match"], feed.etag(&s.path));
        assert!(s.headers.contains_key("if-modified-since"), "{s:?}");
    }
    assert_eq!(status(data.path(), &sources).await["generation"], generation);

    // A new version of one source: it alone is downloaded, into one new
    // generation; the other keeps its records.
    feed.publish("/npm.osv.jsonl.gz", &shared("sample.osv.jsonl"));
    feed.forget_seen();
    let (code, out) = db(data.path(), &["update", "--format", "json"], &sources).await;
    assert_eq!(code, 0, "{out}");
    let report: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(report["sources"][0]["result"], "imported");
    assert_eq!(report["sources"][1]["result"], "unchanged");
    let statuses: Vec<u16> = feed.seen().iter().map(|s| s.status).collect();
    assert_eq!(statuses, [200, 304]);
    let third = status(data.path(), &sources).await;
    assert_eq!(third["generation"].as_u64(), Some(generation + 1));
    assert_eq!(records(&third), [(alpine, 2469), (npm, 30)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_download_resumes_where_it_stopped() {
    let feed = Feed::start().await;
    let go = shared("go.osv.jsonl.gz");
    feed.publish("/go.osv.jsonl.gz", &go);
    let sources = vec![feed.url("/go.osv.jsonl.gz")];
    let data = tempfile::tempdir().unwrap();
    feed.cut_next_after(300_000);
    let (code, out) = db(data.path(), &["update"], &sources).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("the download stopped after"), "{out}");
    assert!(
        status(data.path(), &sources).await["generation"].is_null(),
        "nothing imported"
    );

    feed.forget_seen();
    let (code, out) = db(data.path(), &["update", "--format", "json"], &sources).await;
    assert_eq!(code, 0, "{out}");
    let seen = feed.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let asked = &seen[0];
    assert_eq!(asked.status, 206, "{asked:?}");
    let from: u64 = asked.headers["range"]
        .strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
        .unwrap()
        .parse()
        .unwrap();
    assert!(from > 0 && from <= 300_000, "{asked:?}");
    assert_eq!(asked.headers["if-range"], feed.etag("/go.osv.jsonl.gz"));
    let report: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(report["sources"][0]["resumed_from"], from);
    assert_eq!(report["sources"][0]["downloaded"], go.len() as u64 - from);
    // Every record arrived: the whole file, not the part after the cut.
    assert_eq!(status(data.path(), &sources).await["sources"][0]["records"], 4291);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_publication_leaves_the_database_in_force() {
    let feed = Feed::start().await;
    let npm = shared("npm.osv.jsonl.gz");
    feed.publish("/npm.osv.jsonl.gz", &npm);
    feed.publish("/pypi.osv.jsonl.gz", &shared("pypi.osv.jsonl.gz"));
    let sources = vec![feed.url("/npm.osv.jsonl.gz"), feed.url("/pypi.osv.jsonl.gz")];
    let data = tempfile::tempdir().unwrap();
    assert_eq!(db(data.path(), &["update"], &sources).await.0, 0);
    let generation = status(data.path(), &sources).await["generation"].as_u64().unwrap();

    let corrupt: [(&str, Vec<u8>, &str); 3] = [
        ("truncated gzip", npm[..npm.len() / 2].to_vec(), "npm.osv.jsonl.gz"),
        (
            "an HTML error page",
            b"<html><body>502 Bad Gateway</body></html>".to_vec(),
            "not JSON",
        ),
        ("an empty file", Vec::new(), "empty"),
    ];
    for (what, bytes, error) in corrupt {
        feed.publish("/npm.osv.jsonl.gz", &bytes);
        let (code, out) = db(data.path(), &["update"], &sources).await;
        assert_eq!(code, 1, "{what}: {out}");
        let st = status(data.path(), &sources).await;
        assert_eq!(st["generation"].as_u64(), Some(generation), "{what}: no new generation");
        let view = &st["updates"]["sources"][0];
        assert_eq!(view["records"], 467, "{what}: the previous records stay in force");
        let last_error = view["last_error"].as_str().unwrap_or_default();
        assert!(last_error.contains(error), "{what}: {view}");
        assert!(st["updates"]["sources"][1]["last_error"].is_null(), "{what}: {st}");
        let (_, text) = db(data.path(), &["status"], &sources).await;
        assert!(text.contains("last error"), "{what}: {text}");
    }
    // Published again whole, it is imported again and the error is gone.
    feed.publish("/npm.osv.jsonl.gz", &shared("sample.osv.jsonl"));
    assert_eq!(db(data.path(), &["update"], &sources).await.0, 0);
    let st = status(data.path(), &sources).await;
    assert_eq!(st["generation"].as_u64(), Some(generation + 1));
    assert!(st["updates"]["sources"][0]["last_error"].is_null(), "{st}");
}

/// `serve` with a one-second interval picks up a new version by itself,
/// and a list set through the API replaces the configuration's at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_updates_by_itself() {
    for backend in backends() {
        let feed = Feed::start().await;
        feed.publish("/npm.osv.jsonl.gz", &shared("npm.osv.jsonl.gz"));
        let sources = vec![feed.url("/npm.osv.jsonl.gz")];
        let data = tempfile::tempdir().unwrap();
        let args = database_args(&backend, data.path()).await;
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let _server = ServerProcess::spawn_env(
            data.path(),
            &args,
            &[
                ("PORTCULLIS_VULNDB_SOURCES", sources[0].as_str()),
                ("PORTCULLIS_VULNDB_UPDATE_INTERVAL", "1s"),
            ],
        );
        let wait_for = |want: u64| {
            let (data, sources) = (data.path().to_path_buf(), sources.clone());
            async move {
                for _ in 0..300 {
                    let st = status(&data, &sources).await;
                    if st["sources"][0]["records"] == want {
                        return st;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                panic!("the server did not import {want} records within 30 s");
            }
        };
        let first = wait_for(467).await;
        // It keeps asking, conditionally: "not modified".
        let mut asked = false;
        for _ in 0..300 {
            asked = feed.seen().iter().any(|s| s.status == 304);
            if asked {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(asked, "no conditional request within 30 s: {:?}", feed.seen());
        assert_eq!(status(data.path(), &sources).await["generation"], first["generation"]);
        feed.publish("/npm.osv.jsonl.gz", &shared("sample.osv.jsonl"));
        let second = wait_for(30).await;
        assert!(second["generation"].as_u64() > first["generation"].as_u64());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_are_set_through_the_api_and_shown_with_their_state() {
    for backend in backends() {
        let feed = Feed::start().await;
        feed.publish("/npm.osv.jsonl.gz", &shared("npm.osv.jsonl.gz"));
        let configured = "file:///nonexistent/portcullis-test/configured.json".to_string();
        let s = TestServer::start_tuned(&backend, portcullis_server::Anonymous::None, |o| {
            o.scan.updates.sources = vec![configured.clone()];
            o.scan.updates.interval = Duration::from_secs(3600);
        })
        .await;
        let label = s.label();
        // The configured file is missing: its error shows, nothing is imported.
        let v = until(&s, "/api/v1/vulndb", |v| {
            v["status"]["updates"]["sources"][0]["last_error"].is_string()
        })
        .await;
        let view = &v["status"]["updates"]["sources"][0];
        assert!(
            view["last_error"].as_str().unwrap().contains("No such file"),
            "{label}: {view}"
        );
        assert_eq!(v["status"]["updates"]["from"], "configuration");

        for (body, why) in [
            (json!({"sources": ["ftp://example.org/x.json"]}), "scheme"),
            (
                json!({"sources": ["https://user:pw@example.org/x.json"]}),
                "credentials",
            ),
            (json!({"urls": []}), "urls"),
        ] {
            let (st, err) = call(&s, Method::PUT, "/api/v1/vulndb/sources", body).await;
            assert_eq!(st, 400, "{label}: {err}");
            assert!(err.to_string().contains(why), "{label}: {err}");
        }
        let (st, v) = call(
            &s,
            Method::PUT,
            "/api/v1/vulndb/sources",
            json!({"sources": [feed.url("/npm.osv.jsonl.gz")]}),
        )
        .await;
        assert_eq!(st, 200, "{label}: {v}");
        assert_eq!(v["from"], "api");
        assert!(v["warnings"][0].as_str().unwrap().contains("plain http"), "{v}");
        // Updated at once, not at the next interval.
        // (the import comes first, then what the update learnt is written)
        let v = until(&s, "/api/v1/vulndb", |v| {
            v["status"]["records"] == 467 && v["status"]["updates"]["sources"][0]["last_success"].is_string()
        })
        .await;
        let view = &v["status"]["updates"]["sources"][0];
        assert_eq!(view["url"], feed.url("/npm.osv.jsonl.gz"));
        assert_eq!(view["records"], 467);
        assert!(view["last_error"].is_null() && view["age_seconds"].as_u64().unwrap() < 60);
        assert!(v["status"]["updates"]["database_age_seconds"].as_u64().unwrap() < 60);
        let (_, audit) = call(
            &s,
            Method::GET,
            "/api/v1/audit?action=vulndb.sources.update",
            Value::Null,
        )
        .await;
        assert_eq!(
            audit["records"].as_array().map(Vec::len),
            Some(3),
            "{label}: two refused, one set: {audit}"
        );
        // `null` returns to the configuration's list.
        let (st, v) = call(&s, Method::PUT, "/api/v1/vulndb/sources", json!({"sources": null})).await;
        assert_eq!((st, &v["from"]), (200, &json!("configuration")), "{label}: {v}");
        assert_eq!(v["sources"], json!([configured]));
    }
}

/// Makes the database in force look imported `secs` ago (no sleeping for
/// days): its recorded import time is what its age is counted from.
fn age_database(data: &Path, secs: u64) {
    let dir = data.join("vulndb");
    let generation = std::fs::read_to_string(dir.join("CURRENT")).unwrap();
    let path = dir.join(generation.trim()).join("status.json");
    let mut status: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let then = portcullis_vulndb::unix_now() - secs;
    status["imported_at"] = json!(then);
    std::fs::write(&path, serde_json::to_vec(&status).unwrap()).unwrap();
}

fn import_npm(s: &TestServer) {
    let npm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vulndb/npm.osv.jsonl.gz");
    VulnDb::in_data_dir(s.dir.path())
        .import(&[npm], true, &Limits::default(), &NoProgress)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_database_blesses_no_promotion() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        assert_eq!(
            call(&s, Method::POST, "/api/v1/orgs", json!({"name": "acme"})).await.0,
            201
        );
        let (st, policy) = call(
            &s,
            Method::POST,
            "/api/v1/repositories/acme/build/policies",
            json!({"target": "acme/release", "tag_template": "%n", "rules": [
                {"field": "database_age", "operator": "lte", "values": ["2d"]}]}),
        )
        .await;
        assert_eq!(st, 201, "{label}: {policy}");
        let id = policy["id"].as_str().unwrap().to_string();
        let released = |tag: &'static str| {
            let s = &s;
            async move {
                call(
                    s,
                    Method::GET,
                    &format!("/api/v1/repositories/acme/release/tags/{tag}"),
                    Value::Null,
                )
                .await
                .0
            }
        };

        // No database at all: refused.
        s.push_image("acme/build", "1", b"{\"n\": 1}", &[b"layer one"]).await;
        let e = evaluated(&s, "acme/build", &id, "1").await;
        assert_eq!(e["outcome"], "failed", "{label}: {e}");
        assert!(
            e.to_string().contains("there is no vulnerability database (limit 2d)"),
            "{label}: {e}"
        );

        // Imported three days ago: refused, naming the age and the limit.
        import_npm(&s);
        age_database(s.dir.path(), 3 * 86_400 + 120);
        s.push_image("acme/build", "2", b"{\"n\": 2}", &[b"layer two"]).await;
        let e = evaluated(&s, "acme/build", &id, "2").await;
        assert_eq!(e["outcome"], "failed", "{label}: {e}");
        assert!(
            e.to_string()
                .contains("the vulnerability database is 3d 0h old (limit 2d)"),
            "{label}: {e}"
        );
        assert_eq!(released("2").await, 404, "{label}");

        // A day old: promoted.
        age_database(s.dir.path(), 86_400);
        s.push_image("acme/build", "3", b"{\"n\": 3}", &[b"layer three"]).await;
        let e = evaluated(&s, "acme/build", &id, "3").await;
        assert_eq!(e["outcome"], "promoted", "{label}: {e}");
        assert_eq!(released("3").await, 200, "{label}");
        assert_eq!(released("2").await, 404, "{label}: a refusal stays a refusal");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_rule_refuses_pulls_while_the_database_is_stale() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let (st, v) = call(
            &s,
            Method::POST,
            "/api/v1/users",
            json!({"name": "dev", "password": PW}),
        )
        .await;
        assert_eq!(st, 201, "{v}");
        assert_eq!(
            call(&s, Method::POST, "/api/v1/orgs", json!({"name": "acme"})).await.0,
            201
        );
        let (st, v) = call(
            &s,
            Method::POST,
            "/api/v1/namespaces/acme/grants",
            json!({"account": "dev", "role": "read"}),
        )
        .await;
        assert_eq!(st, 201, "{v}");
        s.push_image("acme/app", "1", b"{}", &[b"layer"]).await;
        let (st, v) = call(
            &s,
            Method::PUT,
            "/api/v1/repositories/acme/app",
            json!({"pull_rule": {"max_database_age": "fortnightly"}}),
        )
        .await;
        assert_eq!(st, 400, "{label}: {v}");
        let (st, v) = call(
            &s,
            Method::PUT,
            "/api/v1/repositories/acme/app",
            json!({"pull_rule": {"max_database_age": "2d"}}),
        )
        .await;
        assert_eq!(st, 200, "{label}: {v}");

        let (st, body) = reader_pull(&s, "dev", "acme/app", "1").await;
        assert_eq!(st, 403, "{label}: no database: {body}");
        assert!(
            body.contains("max_database_age: there is no vulnerability database"),
            "{body}"
        );
        import_npm(&s);
        age_database(s.dir.path(), 5 * 86_400 + 7200);
        let (st, body) = reader_pull(&s, "dev", "acme/app", "1").await;
        assert_eq!(st, 403, "{label}: {body}");
        assert!(
            body.contains("the vulnerability database is 5d 2h old (limit 2d)"),
            "{body}"
        );
        age_database(s.dir.path(), 3600);
        let (st, body) = reader_pull(&s, "dev", "acme/app", "1").await;
        assert_eq!(st, 200, "{label}: {body}");
    }
}

/// A source taken off the list takes its records with it at the next
/// update; a source imported by hand (`db import`) is not the updater's
/// to remove.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_taken_off_the_list_leaves_the_database() {
    let feed = Feed::start().await;
    feed.publish("/npm.osv.jsonl.gz", &shared("npm.osv.jsonl.gz"));
    feed.publish("/alpine/all.jsonl.gz", &shared("alpine.osv.jsonl.gz"));
    let both = vec![feed.url("/npm.osv.jsonl.gz"), feed.url("/alpine/all.jsonl.gz")];
    let data = tempfile::tempdir().unwrap();
    let (code, out) = db(data.path(), &["update"], &both).await;
    assert_eq!(code, 0, "{out}");
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vulndb/crates.osv.jsonl.gz");
    let (code, out) = db(data.path(), &["import", crates.to_str().unwrap()], &both).await;
    assert_eq!(code, 0, "{out}");
    let names = |st: &Value| records(st).into_iter().map(|(n, _)| n).collect::<Vec<_>>();
    assert_eq!(names(&status(data.path(), &both).await).len(), 3);

    let npm_only = vec![both[0].clone()];
    let (code, out) = db(data.path(), &["update", "--format", "json"], &npm_only).await;
    assert_eq!(code, 0, "{out}");
    let report: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let port = feed.base.rsplit(':').next().unwrap().to_string();
    assert_eq!(
        report["removed"],
        json!([format!("127.0.0.1_{port}_alpine_all.jsonl.gz")]),
        "{report}"
    );
    let left = names(&status(data.path(), &npm_only).await);
    assert_eq!(
        left,
        [
            format!("127.0.0.1_{port}_npm.osv.jsonl.gz"),
            "crates.osv.jsonl.gz".to_string()
        ]
    );
    // Nothing more to remove the next time.
    let (code, out) = db(data.path(), &["update"], &npm_only).await;
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("no longer a source"), "{out}");
}

/// osv.dev's layout (`<Ecosystem>/all.zip`, `modified_id.csv`, `<ID>.json`):
/// the first update imports the archive; later ones fetch only the records
/// listed as modified since, and never the archive again; a hostile
/// listing changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_osv_bucket_is_followed_record_by_record() {
    use std::io::{Read, Write};
    let mut text = String::new();
    flate2::read::GzDecoder::new(&shared("alpine.osv.jsonl.gz")[..])
        .read_to_string(&mut text)
        .unwrap();
    let mut records: Vec<Value> = text.lines().take(5).map(|l| serde_json::from_str(l).unwrap()).collect();
    let id = |r: &Value| r["id"].as_str().unwrap().to_string();
    let mut archive = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for r in &records {
        archive
            .start_file(format!("{}.json", id(r)), zip::write::SimpleFileOptions::default())
            .unwrap();
        archive.write_all(r.to_string().as_bytes()).unwrap();
    }
    let archive = archive.finish().unwrap().into_inner();
    let listing = |lines: &[(String, String)]| {
        lines
            .iter()
            .map(|(when, id)| format!("{when},{id}\n"))
            .collect::<String>()
    };
    let mut lines: Vec<(String, String)> = records
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("2026-01-0{}T00:00:00Z", 5 - i), id(r)))
        .collect();
    let feed = Feed::start().await;
    feed.publish("/osv/Alpine/all.zip", &archive);
    feed.publish("/osv/Alpine/modified_id.csv", listing(&lines).as_bytes());
    let sources = vec![feed.url("/osv/Alpine/all.zip")];
    let data = tempfile::tempdir().unwrap();
    let paths = |feed: &Feed| {
        let mut p: Vec<String> = feed.seen().into_iter().map(|s| s.path).collect();
        p.sort();
        p
    };

    let (code, out) = db(data.path(), &["update"], &sources).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(paths(&feed), ["/osv/Alpine/all.zip", "/osv/Alpine/modified_id.csv"]);
    assert_eq!(total(data.path(), &sources).await, 5);

    // One record changed, one new: those two are fetched, not the archive.
    records[0]["summary"] = json!("changed upstream");
    records[0]["modified"] = json!("2026-02-01T00:00:00.5Z");
    let mut added = records[1].clone();
    added["id"] = json!("ALPINE-TEST-1");
    added["modified"] = json!("2026-02-01T00:00:00.5Z");
    for r in [&records[0], &added] {
        feed.publish(&format!("/osv/Alpine/{}.json", id(r)), r.to_string().as_bytes());
        lines.insert(0, ("2026-02-01T00:00:00.5Z".into(), id(r)));
    }
    feed.publish("/osv/Alpine/modified_id.csv", listing(&lines).as_bytes());
    feed.forget_seen();
    let (code, out) = db(data.path(), &["update"], &sources).await;
    assert_eq!(code, 0, "{out}");
    let mut want = vec![
        "/osv/Alpine/ALPINE-TEST-1.json".to_string(),
        format!("/osv/Alpine/{}.json", id(&records[0])),
        "/osv/Alpine/modified_id.csv".to_string(),
    ];
    want.sort();
    assert_eq!(paths(&feed), want);
    assert_eq!(total(data.path(), &sources).await, 6);
    let loaded = VulnDb::in_data_dir(data.path()).load().unwrap().unwrap();
    let first = loaded.advisories.iter().find(|a| a.id == id(&records[0])).unwrap();
    assert_eq!(first.summary.as_deref(), Some("changed upstream"));
    assert_eq!(loaded.advisories.iter().filter(|a| a.id == id(&records[0])).count(), 1);

    // Nothing listed since: only the listing is read.
    feed.forget_seen();
    let (code, out) = db(data.path(), &["update"], &sources).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(paths(&feed), ["/osv/Alpine/modified_id.csv"]);

    // A listing naming a path, a time ahead of the clock, a record it
    // lists that is missing, or a copy older than listed (a stale cache):
    // the source fails, its records stay.
    let stale = added.to_string().replace("ALPINE-TEST-1", "ALPINE-STALE-1");
    feed.publish("/osv/Alpine/ALPINE-STALE-1.json", stale.as_bytes());
    for (when, bad, why) in [
        ("2026-03-01T00:00:00Z", "../../etc/passwd", "not an OSV id"),
        ("9999-01-01T00:00:00Z", "ALPINE-TEST-1", "in the future"),
        ("2026-03-01T00:00:00Z", "ALPINE-MISSING-1", "not published"),
        ("2026-03-01T00:00:00Z", "ALPINE-STALE-1", "older than"),
    ] {
        lines.insert(0, (when.into(), bad.into()));
        feed.publish("/osv/Alpine/modified_id.csv", listing(&lines).as_bytes());
        let (code, out) = db(data.path(), &["update"], &sources).await;
        assert_eq!(code, 1, "{out}");
        assert!(out.contains(why), "{why}: {out}");
        assert_eq!(total(data.path(), &sources).await, 6);
        lines.remove(0);
    }
    // A listing older than what was imported (a mirror restored from an
    // old copy): the whole archive is fetched again.
    feed.publish("/osv/Alpine/modified_id.csv", listing(&lines[2..]).as_bytes());
    feed.publish("/osv/Alpine/all.zip", &archive);
    feed.forget_seen();
    let (code, out) = db(data.path(), &["update"], &sources).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(paths(&feed), ["/osv/Alpine/all.zip", "/osv/Alpine/modified_id.csv"]);
    assert_eq!(total(data.path(), &sources).await, 5);
}

/// Records in force, over all sources.
async fn total(data: &Path, sources: &[String]) -> u64 {
    records(&status(data, sources).await).iter().map(|r| r.1).sum()
}

//! What must survive: acknowledged pushes across SIGKILL, referenced blobs
//! across garbage collection racing pushes and deletes, and bounded memory
//! for large blobs (DESIGN invariants 1, 2 and 5).

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{backends, database_args, image_manifest, vm_hwm_kib, ServerProcess, TestServer};
use portcullis_oci::Digest;

/// Deterministic pseudo-random bytes (xorshift), so no two layers collide.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

struct Acked {
    tag: String,
    manifest: Vec<u8>,
    blobs: Vec<Digest>,
}

/// Pushes one image: the layer by POST+PATCH+PUT (the session path), the
/// config monolithically, then the manifest under `tag`. `Err` on any failure.
async fn push_image(
    http: &reqwest::Client,
    base: &str,
    repo: &str,
    tag: &str,
    seed: u64,
    layer_len: usize,
) -> Result<Acked, String> {
    let layer = bytes(seed, layer_len);
    let config = format!("{{\"seed\":{seed}}}").into_bytes();
    let ld = Digest::sha256_of(&layer);
    let cd = Digest::sha256_of(&config);
    let e = |x: reqwest::Error| x.to_string();
    let r = http
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .map_err(e)?;
    if r.status() != 202 {
        return Err(format!("POST {}", r.status()));
    }
    let loc = format!("{base}{}", r.headers()["location"].to_str().unwrap());
    let r = http.patch(&loc).body(layer).send().await.map_err(e)?;
    if r.status() != 202 {
        return Err(format!("PATCH {}", r.status()));
    }
    let r = http.put(format!("{loc}?digest={ld}")).send().await.map_err(e)?;
    if r.status() != 201 {
        return Err(format!("PUT blob {}", r.status()));
    }
    let r = http
        .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={cd}"))
        .body(config.clone())
        .send()
        .await
        .map_err(e)?;
    if r.status() != 201 {
        return Err(format!("POST config {}", r.status()));
    }
    let manifest = image_manifest(&cd, config.len(), &[(ld.clone(), layer_len)]);
    let r = http
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .await
        .map_err(e)?;
    if r.status() != 201 {
        return Err(format!(
            "PUT manifest {}: {}",
            r.status(),
            r.text().await.unwrap_or_default()
        ));
    }
    Ok(Acked {
        tag: tag.to_string(),
        manifest,
        blobs: vec![cd, ld],
    })
}

/// Pulls an acknowledged image and checks every byte against its digest.
async fn verify_image(http: &reqwest::Client, base: &str, repo: &str, a: &Acked) -> Result<(), String> {
    let r = http
        .get(format!("{base}/v2/{repo}/manifests/{}", a.tag))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status() != 200 {
        return Err(format!("manifest {} answered {}", a.tag, r.status()));
    }
    if r.bytes().await.map_err(|e| e.to_string())?.as_ref() != &a.manifest[..] {
        return Err(format!("manifest {} changed", a.tag));
    }
    for d in &a.blobs {
        let r = http
            .get(format!("{base}/v2/{repo}/blobs/{d}"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status() != 200 {
            return Err(format!("blob {d} of {} answered {}", a.tag, r.status()));
        }
        let body = r.bytes().await.map_err(|e| e.to_string())?;
        if Digest::sha256_of(&body) != *d {
            return Err(format!("blob {d} of {} reads back different bytes", a.tag));
        }
    }
    Ok(())
}

/// Every file under blobs/ hashes to its own name: no partial blob is visible.
fn assert_no_partial_blobs(data: &std::path::Path) {
    let store = portcullis_store::BlobStore::open(data).unwrap();
    for (d, _) in store.list_blobs().unwrap() {
        let content = std::fs::read(store.blob_path(&d)).unwrap();
        assert_eq!(
            Digest::sha256_of(&content),
            d,
            "a partial or corrupt blob is stored under {d}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_pushes_survive_sigkill() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let db = database_args(&backend, &data).await;
        let db: Vec<&str> = db.iter().map(String::as_str).collect();
        let mut server = ServerProcess::spawn(&data, &db);
        let base = server.base.clone();
        let acked = Arc::new(Mutex::new(Vec::<Acked>::new()));
        let failures = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut pushers = Vec::new();
        for p in 0..16u64 {
            let (acked, failures, stop, base) = (acked.clone(), failures.clone(), stop.clone(), base.clone());
            pushers.push(tokio::spawn(async move {
                let http = reqwest::Client::new();
                for i in 0..1000u64 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let len = 64 * 1024 + ((p * 7919 + i * 104729) % (1024 * 1024)) as usize;
                    match push_image(&http, &base, "crash/app", &format!("p{p}-{i}"), p * 100_000 + i, len).await {
                        Ok(a) => acked.lock().unwrap().push(a),
                        Err(_) => {
                            failures.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    }
                }
            }));
        }
        // Kill mid-flight, once a fair number of pushes have been acknowledged.
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.lock().unwrap().len() < 48 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for p in pushers {
            p.await.unwrap();
        }
        let acked = std::mem::take(&mut *acked.lock().unwrap());
        assert!(
            acked.len() >= 48,
            "only {} pushes acknowledged before the deadline",
            acked.len()
        );
        assert!(
            failures.load(Ordering::Relaxed) > 0,
            "the kill interrupted no push; the test proved nothing"
        );

        assert_no_partial_blobs(&data);
        let server = ServerProcess::spawn(&data, &db);
        let http = reqwest::Client::new();
        for a in &acked {
            verify_image(&http, &server.base, "crash/app", a).await.unwrap();
        }
        let fresh = push_image(&http, &server.base, "crash/app", "after-restart", 7, 300_000)
            .await
            .unwrap();
        verify_image(&http, &server.base, "crash/app", &fresh).await.unwrap();
        eprintln!("{backend:?}: {} acknowledged pushes intact after SIGKILL", acked.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_during_pushes_and_deletes_keeps_every_referenced_blob() {
    for backend in backends() {
        // Grace 0: GC collects anything unreferenced at once, the harshest race
        // for pushes whose layers are up but whose manifest is not yet.
        for grace in [Duration::ZERO, Duration::from_secs(30)] {
            let s = TestServer::start(&backend).await;
            let settings = portcullis_server::GcSettings {
                manifest_grace: grace,
                blob_grace: grace,
                upload_expiry: Duration::from_secs(3600),
            };
            // An image committed before the collector starts: whatever the
            // racing pushes below manage, the invariant is checked against
            // at least one image GC had to leave alone while it ran.
            let seed = push_image(&s.http, &s.base, "gc/app", "seed", 999_999, 20_000)
                .await
                .unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let gc_runs = Arc::new(AtomicUsize::new(0));
            let gc = {
                let (reg, stop, settings, runs) = (s.registry.clone(), stop.clone(), settings.clone(), gc_runs.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        portcullis_server::gc::collect_garbage(&reg, &settings).await.unwrap();
                        runs.fetch_add(1, Ordering::Relaxed);
                    }
                })
            };
            let mut tasks = Vec::new();
            for p in 0..4u64 {
                let (http, base, gc_runs) = (s.http.clone(), s.base.clone(), gc_runs.clone());
                tasks.push(tokio::spawn(async move {
                    let (mut kept, mut refused) = (Vec::new(), 0);
                    // At least 15 pushes each, and on until GC has run three
                    // times beside them (a slow machine's GC may take longer
                    // than 15 pushes); bounded at 200.
                    let mut i = 0u64;
                    while i < 15 || (gc_runs.load(Ordering::Relaxed) < 3 && i < 200) {
                        i += 1;
                        match push_image(&http, &base, "gc/app", &format!("p{p}-{i}"), p * 1000 + i, 20_000).await {
                            Ok(a) if i.is_multiple_of(3) => {
                                // Delete every third image right away.
                                let md = Digest::sha256_of(&a.manifest);
                                let r = http
                                    .delete(format!("{base}/v2/gc/app/manifests/{md}"))
                                    .send()
                                    .await
                                    .unwrap();
                                assert_eq!(r.status(), 202);
                            }
                            Ok(a) => kept.push(a),
                            Err(e) => {
                                assert!(
                                    e.contains("MANIFEST_BLOB_UNKNOWN") || e.contains("BLOB_UPLOAD"),
                                    "unexpected failure: {e}"
                                );
                                refused += 1;
                            }
                        }
                    }
                    (kept, refused)
                }));
            }
            let mut kept = vec![seed];
            let mut refused = 0;
            for t in tasks {
                let (k, r) = t.await.unwrap();
                kept.extend(k);
                refused += r;
            }
            let runs = gc_runs.load(Ordering::Relaxed);
            stop.store(true, Ordering::Relaxed);
            gc.await.unwrap();
            assert!(runs >= 3, "GC ran {runs} times during the pushes");
            if grace > Duration::ZERO {
                assert_eq!(refused, 0, "{}: within the grace period no push may fail", s.label());
                assert!(kept.len() > 1, "{}: no image was pushed while GC ran", s.label());
            }
            // With no grace a collection that runs without pause may take
            // every layer before its manifest arrives (batched collection is
            // fast enough to do so on PostgreSQL): then every push must have
            // been refused cleanly, which the loop above asserted.
            for a in &kept {
                verify_image(&s.http, &s.base, "gc/app", a)
                    .await
                    .unwrap_or_else(|e| panic!("{} grace {grace:?}: {e}", s.label()));
            }
            // A final collection with no grace leaves exactly what tagged images use.
            let now = portcullis_server::GcSettings {
                manifest_grace: Duration::ZERO,
                blob_grace: Duration::ZERO,
                upload_expiry: Duration::ZERO,
            };
            portcullis_server::gc::collect_garbage(&s.registry, &now).await.unwrap();
            let mut want: Vec<String> = kept
                .iter()
                .flat_map(|a| a.blobs.iter().map(|d| d.to_string()))
                .collect();
            want.sort();
            want.dedup();
            let mut on_disk: Vec<String> = s
                .registry
                .store
                .list_blobs()
                .unwrap()
                .into_iter()
                .map(|(d, _)| d.to_string())
                .collect();
            on_disk.sort();
            assert_eq!(
                on_disk,
                want,
                "{} grace {grace:?}: unreferenced blobs remain or referenced ones are gone",
                s.label()
            );
            for a in &kept {
                verify_image(&s.http, &s.base, "gc/app", a).await.unwrap();
            }
            eprintln!(
                "{} grace {grace:?}: {} kept, {refused} refused cleanly, {runs} GC runs",
                s.label(),
                kept.len()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_512_mib_blob_streams_through_bounded_memory() {
    const MIB: usize = 1024 * 1024;
    const TOTAL_MIB: u64 = 512;
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::spawn(&dir.path().join("data"), &[]);
    let base = server.base.clone();
    let http = reqwest::Client::new();
    let start_kib = vm_hwm_kib(server.pid());

    let r = http.post(format!("{base}/v2/big/blobs/uploads/")).send().await.unwrap();
    let loc = format!("{base}{}", r.headers()["location"].to_str().unwrap());
    let hasher = Arc::new(Mutex::new(portcullis_oci::Algorithm::Sha256.hasher()));
    let h = hasher.clone();
    let chunks = futures_util::stream::iter(0..TOTAL_MIB).map(move |i| {
        let chunk = bytes(i + 1, MIB);
        h.lock().unwrap().update(&chunk);
        Ok::<_, std::io::Error>(bytes::Bytes::from(chunk))
    });
    let r = http
        .patch(&loc)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let digest = Arc::try_unwrap(hasher).ok().unwrap().into_inner().unwrap().finish();
    let r = http.put(format!("{loc}?digest={digest}")).send().await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let after_push_kib = vm_hwm_kib(server.pid());

    let mut r = http.get(format!("{base}/v2/big/blobs/{digest}")).send().await.unwrap();
    assert_eq!(
        r.headers()["content-length"],
        (TOTAL_MIB * MIB as u64).to_string().as_str()
    );
    let mut back = portcullis_oci::Algorithm::Sha256.hasher();
    let mut n = 0u64;
    while let Some(chunk) = r.chunk().await.unwrap() {
        n += chunk.len() as u64;
        back.update(&chunk);
    }
    assert_eq!(n, TOTAL_MIB * MIB as u64);
    assert_eq!(back.finish(), digest);
    let after_pull_kib = vm_hwm_kib(server.pid());
    eprintln!("server peak RSS: {start_kib} KiB at start, {after_push_kib} KiB after a {TOTAL_MIB} MiB push, {after_pull_kib} KiB after pulling it");
    assert!(
        after_pull_kib < 64 * 1024,
        "peak RSS {after_pull_kib} KiB while moving {TOTAL_MIB} MiB"
    );
    assert!(
        after_pull_kib - start_kib < 32 * 1024,
        "RSS grew by {} KiB",
        after_pull_kib - start_kib
    );
}

use futures_util::StreamExt;

/// GC removes what only a deleted image needed (its scan with findings,
/// its SBOM, its layer's cached facts) and audits the manifests it removes,
/// by the `system` actor like an API delete; a kept image keeps all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_prunes_scan_data_of_deleted_images_and_audits_removals() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let layer =
            |text: &str| common::tar_of(&[("etc/os-release", format!("ID=alpine\nVERSION_ID={text}\n").as_bytes())]);
        let (old, _) = s.push_image("acme/app", "old", b"{\"o\":1}", &[&layer("3.17.0")]).await;
        let (kept, _) = s
            .push_image("acme/app", "kept", b"{\"k\":1}", &[&layer("3.18.0")])
            .await;
        let meta = &s.registry.meta;
        for _ in 0..300 {
            let old_done = meta
                .scan(old.as_str())
                .await
                .unwrap()
                .is_some_and(|r| r.status == portcullis_meta::ScanStatus::Done);
            let kept_done = meta
                .scan(kept.as_str())
                .await
                .unwrap()
                .is_some_and(|r| r.status == portcullis_meta::ScanStatus::Done);
            if old_done && kept_done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(meta.layer_facts_count().await.unwrap(), 2, "{label}");
        assert!(meta.scan_sbom(old.as_str()).await.unwrap().is_some(), "{label}");
        let r = s.http.delete(s.url("/v2/acme/app/manifests/old")).send().await.unwrap();
        assert_eq!(r.status(), 202, "{label}");
        // A hook that hears manifest deletions (its receiver need not answer).
        let hook_url = format!("http://127.0.0.1:{}/hook", common::free_port());
        let (st, hook) = common::call(
            &s,
            reqwest::Method::POST,
            "/api/v1/repositories/acme/app/webhooks",
            serde_json::json!({"url": hook_url, "secret": "0123456789abcdef", "events": ["MANIFEST_DELETE"]}),
        )
        .await;
        assert_eq!(st, 201, "{hook}");

        let zero = common::gc_without_grace();
        let report = portcullis_server::gc::collect_garbage(&s.registry, &zero)
            .await
            .unwrap();
        // The deleted image and the two attestations the registry made of
        // its scan (referrers of nothing now).
        assert_eq!(
            (report.manifests, report.scans, report.sboms, report.layer_facts),
            (3, 1, 1, 1),
            "{label}: {report:?}"
        );
        assert!(meta.scan(old.as_str()).await.unwrap().is_none());
        assert!(meta.scan_sbom(old.as_str()).await.unwrap().is_none());
        assert!(
            meta.scan(kept.as_str()).await.unwrap().is_some(),
            "{label}: the kept image keeps its scan"
        );
        assert!(meta.scan_sbom(kept.as_str()).await.unwrap().is_some());
        assert_eq!(meta.layer_facts_count().await.unwrap(), 1);
        let q = portcullis_meta::AuditQuery {
            action: Some("manifest.delete".into()),
            limit: 10,
            ..Default::default()
        };
        let removed = meta.audit_records(&q).await.unwrap();
        assert_eq!(removed.len(), 3, "{label}: the image and its two attestations");
        assert!(removed.iter().all(|r| r.event.actor == "system"), "{label}");
        let image: Vec<_> = removed
            .iter()
            .filter(|r| r.event.digest.as_deref() == Some(old.as_str()))
            .collect();
        assert_eq!(image.len(), 1, "{label}");
        assert_eq!(meta.verify_audit().await.unwrap().1, None);
        // ... and announced like an API delete.
        let path = format!("/api/v1/webhooks/{}/deliveries", hook["id"].as_str().unwrap());
        let (_, deliveries) = common::call(&s, reqwest::Method::GET, &path, serde_json::Value::Null).await;
        let kinds: Vec<&str> = deliveries["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d["type"].as_str())
            .collect();
        assert_eq!(kinds, ["MANIFEST_DELETE"; 3], "{label}: {deliveries}");
    }
}

/// The C source of an `LD_PRELOAD` shim that logs every `fsync` and
/// `fdatasync` (inode and path of the descriptor) to `$FSYNC_LOG`, then
/// calls the real one.
const FSYNC_SHIM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
static void note(const char *what, int fd) {
    const char *log = getenv("FSYNC_LOG");
    if (!log) return;
    struct stat st;
    if (fstat(fd, &st) != 0) return;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    path[n < 0 ? 0 : n] = 0;
    int out = open(log, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (out < 0) return;
    dprintf(out, "%s %llu %s\n", what, (unsigned long long)st.st_ino, path);
    close(out);
}
int fsync(int fd) {
    note("fsync", fd);
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real(fd);
}
int fdatasync(int fd) {
    note("fdatasync", fd);
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return real(fd);
}
"#;

/// A SIGKILL leaves the page cache, so it can't tell a missing fsync.
/// The real calls can: the server runs with a shim counting fsync per
/// inode, and before a blob push is acknowledged both the blob's file and
/// its directory (the new name) must have been synced. Removing either
/// `sync_all` in `store` fails this test.
#[tokio::test]
async fn an_acknowledged_blob_was_fsynced_with_its_directory() {
    assert!(common::have_tool("cc"), "a C compiler builds the fsync shim");
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("shim.c"), FSYNC_SHIM).unwrap();
    let shim = work.path().join("libfsync.so");
    let built = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&shim)
        .arg(work.path().join("shim.c"))
        .arg("-ldl")
        .status()
        .unwrap();
    assert!(built.success(), "the fsync shim did not build");
    let log = work.path().join("fsync.log");
    let data = work.path().join("data");
    let server = ServerProcess::spawn_env(
        &data,
        &[],
        &[
            ("LD_PRELOAD", shim.to_str().unwrap()),
            ("FSYNC_LOG", log.to_str().unwrap()),
        ],
    );
    let body = bytes(77, 300_000);
    let digest = Digest::sha256_of(&body);
    let r = reqwest::Client::new()
        .post(format!("{}/v2/fsync/app/blobs/uploads/?digest={digest}", server.base))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let blob = data
        .join("blobs")
        .join("sha256")
        .join(&digest.hex()[..2])
        .join(digest.hex());
    let inode = |p: &std::path::Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let synced = std::fs::read_to_string(&log).unwrap_or_default();
    let was_synced = |ino: u64| {
        synced
            .lines()
            .any(|l| l.split(' ').nth(1) == Some(ino.to_string().as_str()))
    };
    assert!(
        was_synced(inode(&blob)),
        "the blob's bytes were acknowledged without an fsync:\n{synced}"
    );
    assert!(
        was_synced(inode(blob.parent().unwrap())),
        "the blob's name (its directory) was acknowledged without an fsync:\n{synced}"
    );
}

/// The orphan-file sweep (`gc.rs`) against pushes of the same bytes: a
/// file left by a crash (no row, an hour old) is swept while a client
/// pushes exactly those bytes. Whichever wins, an acknowledged push's blob
/// is there afterwards, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_orphan_sweep_never_takes_a_blob_pushed_while_it_runs() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let store = portcullis_store::BlobStore::open(s.dir.path()).unwrap();
        let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
        let (mut swept, mut rounds) = (0, 0);
        for i in 0..40u64 {
            let body = bytes(50_000 + i, 4096);
            let digest = Digest::sha256_of(&body);
            let path = store.blob_path(&digest);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &body).unwrap();
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(two_hours_ago)
                .unwrap();
            let push = s
                .http
                .post(s.url(&format!("/v2/sweep/app/blobs/uploads/?digest={digest}")))
                .body(body.clone())
                .send();
            // A grace for rows (the blob just pushed has no manifest yet,
            // so without one it is garbage by right); files an hour old are
            // swept whatever the grace.
            let settings = portcullis_server::GcSettings {
                manifest_grace: Duration::from_secs(60),
                blob_grace: Duration::from_secs(60),
                upload_expiry: Duration::from_secs(3600),
            };
            let gc = portcullis_server::gc::collect_garbage(&s.registry, &settings);
            let (pushed, report) = tokio::join!(push, gc);
            assert_eq!(pushed.unwrap().status(), 201, "{label}");
            swept += report.unwrap().orphan_files;
            rounds += 1;
            let r = s
                .http
                .get(s.url(&format!("/v2/sweep/app/blobs/{digest}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{label}: round {i}: the pushed blob is gone");
            assert_eq!(r.bytes().await.unwrap().as_ref(), body.as_slice(), "{label}: round {i}");
        }
        eprintln!("{label}: the sweep took the old file first in {swept} of {rounds} rounds");
    }
}

//! Scanning inside the registry, on SQLite and PostgreSQL: scan on push,
//! re-matching stored SBOMs when a database is imported (without reading
//! a layer again), the API views, a shared base layer read once, the
//! per-repository switch, "scan now" and multi-arch indexes.

mod common;

use std::time::Duration;

use common::{backends, gzip, tar_of, TestServer};
use portcullis_oci::Digest;
use portcullis_vulndb::{Limits, NoProgress, VulnDb};
use serde_json::{json, Value};

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vulndb/sample.osv.jsonl");

const BASE_STATUS: &str =
    "Package: base-files\nStatus: install ok installed\nVersion: 11.1+deb11u5\nArchitecture: amd64\n";

fn base_layer() -> Vec<u8> {
    gzip(&tar_of(&[
        ("etc/os-release", b"ID=debian\nVERSION_ID=\"11\"\n"),
        ("var/lib/dpkg/status", BASE_STATUS.as_bytes()),
    ]))
}

/// A top layer that installs the X server at a version DSA-5380-1 says is
/// vulnerable (fixed in 2:1.20.11-1+deb11u6), and a marker file so every
/// top layer is a different blob.
fn x_layer(marker: &str) -> Vec<u8> {
    let status = format!(
        "{BASE_STATUS}\nPackage: xserver-xorg-core\nStatus: install ok installed\nVersion: 2:1.20.11-1+deb11u5\nSource: xorg-server\nArchitecture: amd64\n"
    );
    gzip(&tar_of(&[
        ("var/lib/dpkg/status", status.as_bytes()),
        ("etc/marker", marker.as_bytes()),
    ]))
}

async fn get(s: &TestServer, path: &str) -> (u16, Value) {
    let r = s.http.get(s.url(path)).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Polls the scan of `digest` until `done` holds; bounded.
async fn wait(s: &TestServer, repo: &str, digest: &Digest, done: impl Fn(&Value) -> bool) -> Value {
    let path = format!("/api/v1/scans/{digest}?repository={repo}");
    for _ in 0..600 {
        let (status, v) = get(s, &path).await;
        assert_eq!(status, 200, "{v}");
        if v["status"] == "failed" {
            panic!("scan of {digest} failed: {v}");
        }
        if done(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the scan of {digest} did not get there within 30 s");
}

fn is_done(v: &Value) -> bool {
    v["status"] == "done"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_on_push_rematch_on_import_and_the_views() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let base = base_layer();
        let top = x_layer("first");
        let (image, _) = s
            .push_image("acme/app", "1", b"{\"config\":1}", &[base.as_slice(), top.as_slice()])
            .await;
        // Scanned on push; no database yet, so no findings.
        let v = wait(&s, "acme/app", &image, is_done).await;
        assert_eq!(v["database_generation"], Value::Null, "{label}");
        assert_eq!(v["summary"]["unknown"], 0);
        assert_eq!(s.registry.scan_layers_read(), 2);

        // Importing a database re-matches the stored SBOM; no layer is read.
        VulnDb::in_data_dir(s.dir.path())
            .import(&[SAMPLE.into()], false, &Limits::default(), &NoProgress)
            .unwrap();
        let v = wait(&s, "acme/app", &image, |v| !v["database_generation"].is_null()).await;
        assert_eq!(v["summary"]["unknown"], 1, "{label}: {v}");
        assert_eq!(s.registry.scan_layers_read(), 2, "{label}: re-matched without reading");

        // DSA-5380-1 carries no severity. NVD's record of the CVE it fixes,
        // uploaded later in NVD's own API format, rates the finding at the
        // re-match: no layer is read again.
        let nvd = json!({"resultsPerPage": 1, "startIndex": 0, "totalResults": 1, "format": "NVD_CVE",
            "version": "2.0", "timestamp": "2023-04-12T00:00:00.000",
            "vulnerabilities": [{"cve": {"id": "CVE-2023-1393", "published": "2023-03-30T21:15:09.000",
                "lastModified": "2023-04-12T00:00:00.000", "vulnStatus": "Analyzed",
                "metrics": {"cvssMetricV31": [{"source": "nvd@nist.gov", "type": "Primary",
                    "cvssData": {"version": "3.1", "vectorString": "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H",
                        "baseScore": 7.8, "baseSeverity": "HIGH"}}]}}}]});
        let r = s
            .http
            .post(s.url("/api/v1/vulndb?name=nvd-page.json"))
            .body(nvd.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{label}: {}", r.text().await.unwrap());
        let v = wait(&s, "acme/app", &image, |v| v["summary"]["high"] == 1).await;
        assert_eq!(v["summary"]["unknown"], 0, "{label}: {v}");
        assert_eq!(s.registry.scan_layers_read(), 2, "{label}: re-matched without reading");

        let q = "?repository=acme/app";
        let (status, vulns) = get(&s, &format!("/api/v1/scans/{image}/vulnerabilities{q}")).await;
        assert_eq!(status, 200);
        let vulns = vulns["vulnerabilities"].as_array().unwrap().clone();
        assert_eq!(vulns.len(), 1, "{vulns:?}");
        let top_digest = Digest::sha256_of(&top).to_string();
        assert_eq!(vulns[0]["ids"], json!(["DSA-5380-1"]));
        assert_eq!(
            (
                &vulns[0]["severity"],
                &vulns[0]["severity_source"],
                &vulns[0]["cvss_vector"]
            ),
            (
                &json!("High"),
                &json!("nvd"),
                &json!("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H")
            ),
            "{label}"
        );
        assert_eq!(vulns[0]["fixed_version"], "2:1.20.11-1+deb11u6");
        assert_eq!(vulns[0]["layer"], top_digest.as_str(), "the layer that brought it");
        assert_eq!(vulns[0]["path"], "var/lib/dpkg/status");

        let (_, layers) = get(&s, &format!("/api/v1/scans/{image}/layers{q}")).await;
        let view: Vec<(u64, u64)> = layers["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["components"].as_u64().unwrap(),
                    l["vulnerabilities"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(view, [(1, 0), (1, 1)], "{label}: base-files below, the X server on top");

        let (_, components) = get(&s, &format!("/api/v1/scans/{image}/components{q}")).await;
        let names: Vec<(&str, &str)> = components["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].as_str().unwrap(), c["purl"].as_str().unwrap()))
            .collect();
        assert!(names.contains(&(
            "xserver-xorg-core",
            "pkg:deb/debian/xserver-xorg-core@2:1.20.11-1%2Bdeb11u5?arch=amd64&distro=debian-11"
        )));

        // Without `format=`, SPDX; every document is an attachment named
        // after the repository and the digest.
        let short = &image.as_str()["sha256:".len()..][..12];
        for (format, content_type, key, extension) in [
            ("", "application/spdx+json", "spdxVersion", "spdx.json"),
            ("&format=spdx", "application/spdx+json", "spdxVersion", "spdx.json"),
            (
                "&format=cyclonedx",
                "application/vnd.cyclonedx+json; version=1.5",
                "specVersion",
                "cdx.json",
            ),
        ] {
            let r = s
                .http
                .get(s.url(&format!("/api/v1/scans/{image}/sbom{q}{format}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{label}: {format:?}");
            assert_eq!(r.headers()["content-type"], content_type, "{label}: {format:?}");
            assert_eq!(
                r.headers()["content-disposition"],
                format!("attachment; filename=\"acme_app_{short}.{extension}\"").as_str(),
                "{label}: {format:?}"
            );
            let doc: Value = r.json().await.unwrap();
            assert!(doc.get(key).is_some(), "{label}: {format:?}");
        }
        let (status, _) = get(&s, &format!("/api/v1/scans/{image}/sbom{q}&format=xml")).await;
        assert_eq!(status, 400);
        let (status, _) = get(&s, &format!("/api/v1/scans/{image}/layers?repository=acme/other")).await;
        assert_eq!(status, 404, "{label}: the manifest is not in that repository");

        // Fifty images on the same base: the base is read once, ever.
        let mut pushed = Vec::new();
        for i in 0..50 {
            let top = x_layer(&format!("image {i}"));
            let (d, _) = s
                .push_image(
                    "acme/many",
                    &format!("{i}"),
                    format!("{{\"n\":{i}}}").as_bytes(),
                    &[base.as_slice(), top.as_slice()],
                )
                .await;
            pushed.push(d);
        }
        for d in &pushed {
            let v = wait(&s, "acme/many", d, is_done).await;
            assert_eq!(
                v["summary"]["high"], 1,
                "{label}: rated by the NVD source imported above"
            );
        }
        assert_eq!(
            s.registry.scan_layers_read(),
            2 + 50,
            "{label}: one base read, fifty tops"
        );
        assert_eq!(s.registry.meta.layer_facts_count().await.unwrap(), 52);

        // Turned off for a repository: pushes are not scanned until asked.
        let r = s
            .http
            .put(s.url("/api/v1/repositories/acme/quiet"))
            .json(&json!({"scan_on_push": false}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let (quiet, _) = s
            .push_image(
                "acme/quiet",
                "1",
                b"{\"quiet\":1}",
                &[base.as_slice(), x_layer("quiet").as_slice()],
            )
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (_, v) = get(&s, &format!("/api/v1/scans/{quiet}?repository=acme/quiet")).await;
        assert_eq!(v["status"], "not_scanned", "{label}");
        let r = s
            .http
            .post(s.url(&format!("/api/v1/scans/{quiet}?repository=acme/quiet")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let v = wait(&s, "acme/quiet", &quiet, is_done).await;
        assert_eq!(v["summary"]["high"], 1);

        // A multi-arch index: each platform's image is scanned on its own.
        let (arm, arm_manifest) = s
            .push_image("acme/multi", "arm", b"{\"arm\":1}", &[base.as_slice()])
            .await;
        let (amd, amd_manifest) = s
            .push_image("acme/multi", "amd", b"{\"amd\":1}", &[base.as_slice(), top.as_slice()])
            .await;
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd.as_str(), "size": amd_manifest.len(),
                 "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm.as_str(), "size": arm_manifest.len(),
                 "platform": {"os": "linux", "architecture": "arm64"}},
            ]
        }))
        .unwrap();
        let r = s.put_index("acme/multi", "latest", index.clone()).await;
        assert_eq!(r.status(), 201);
        let index_digest = Digest::sha256_of(&index);
        wait(&s, "acme/multi", &amd, is_done).await;
        wait(&s, "acme/multi", &arm, is_done).await;
        let (_, v) = get(&s, &format!("/api/v1/scans/{index_digest}?repository=acme/multi")).await;
        assert_eq!(v["index"], true);
        let per_platform: Vec<(&str, &str, u64)> = v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["platform"].as_str().unwrap(),
                    m["status"].as_str().unwrap(),
                    m["summary"]["high"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            per_platform,
            [("linux/amd64", "done", 1), ("linux/arm64", "done", 0)],
            "{label}"
        );
    }
}

/// A layer that is not a tar, and a bomb past the limit, fail their scan
/// with a reason, and the registry goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_layers_fail_the_scan_not_the_registry() {
    let backend = backends().remove(0);
    let s = TestServer::start(&backend).await;
    let (bad, _) = s
        .push_image(
            "acme/bad",
            "1",
            b"{\"bad\":1}",
            &[b"this is not a tar archive at all, just text".as_slice()],
        )
        .await;
    let path = format!("/api/v1/scans/{bad}?repository=acme/bad");
    let mut last = Value::Null;
    for _ in 0..200 {
        last = get(&s, &path).await.1;
        if last["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last["status"], "failed", "{last}");
    assert!(last["error"].as_str().unwrap().contains("not a readable tar"), "{last}");
    let (status, _) = get(&s, "/v2/acme/bad/tags/list").await;
    assert_eq!(status, 200);
}

/// The registry reading an image's layers four at once stores the SBOM it
/// stores reading them one at a time; and with four scans at once over
/// images that share a base (and one that lists a layer twice), each
/// layer is still read once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layers_read_at_once_merge_as_one_at_a_time_and_once_each() {
    let layers: Vec<Vec<u8>> = common::overlay_layers().iter().map(|t| gzip(t)).collect();
    let refs: Vec<&[u8]> = layers.iter().map(Vec::as_slice).collect();
    for backend in backends() {
        let mut views = Vec::new();
        for layer_workers in [1, 4] {
            let s = TestServer::start_tuned(&backend, portcullis_server::Anonymous::None, |o| {
                o.scan.workers = 4;
                o.scan.layer_workers = layer_workers;
            })
            .await;
            let label = format!("{} with {layer_workers} layer workers", s.label());
            let (image, _) = s.push_image("acme/overlay", "1", b"{\"overlay\":1}", &refs).await;
            wait(&s, "acme/overlay", &image, is_done).await;
            let (_, view) = get(&s, &format!("/api/v1/scans/{image}/components?repository=acme/overlay")).await;
            let got: Vec<(&str, &str, &str)> = view["components"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap(),
                        c["version"].as_str().unwrap(),
                        c["layer"].as_str().unwrap(),
                    )
                })
                .collect();
            let digests: Vec<String> = layers.iter().map(|l| Digest::sha256_of(l).to_string()).collect();
            let want: Vec<(&str, &str, &str)> = common::OVERLAY_COMPONENTS
                .iter()
                .map(|(n, v, l)| (*n, *v, digests[*l].as_str()))
                .collect();
            assert_eq!(got, want, "{label}");
            views.push((s.label(), view));
            assert_eq!(s.registry.scan_layers_read(), 4, "{label}");

            // Six images on that base at once, each with a top of its own,
            // and one listing a new layer below and above its top.
            let mut pushed = Vec::new();
            for i in 0..6 {
                let top = x_layer(&format!("overlay {i}"));
                let (d, _) = s
                    .push_image(
                        "acme/shared",
                        &format!("{i}"),
                        format!("{{\"shared\":{i}}}").as_bytes(),
                        &[refs[0], top.as_slice()],
                    )
                    .await;
                pushed.push(d);
            }
            let twice = base_layer();
            let (d, _) = s
                .push_image(
                    "acme/shared",
                    "twice",
                    b"{\"twice\":1}",
                    &[twice.as_slice(), x_layer("twice").as_slice(), twice.as_slice()],
                )
                .await;
            pushed.push(d);
            for d in &pushed {
                let v = wait(&s, "acme/shared", d, is_done).await;
                assert_eq!(v["status"], "done", "{label}");
            }
            assert_eq!(
                s.registry.scan_layers_read(),
                4 + 6 + 2,
                "{label}: the shared base and the repeated layer read once"
            );
        }
        assert_eq!(views[0].1, views[1].1, "{}", views[0].0);
    }
}

/// A database uploaded through the API is in the scanner's hands moments
/// after the answer, not at the next poll: an image pushed right after is
/// matched against it (README's tutorial uploads, then pushes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_database_is_loaded_at_once() {
    for backend in backends() {
        let s = TestServer::start_tuned(&backend, portcullis_server::Anonymous::None, |o| {
            o.scan.db_poll = Duration::from_secs(3600);
        })
        .await;
        let label = s.label();
        // The watcher's first look (no database yet) has happened.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let r = s
            .http
            .post(s.url("/api/v1/vulndb?name=sample.osv.jsonl"))
            .body(std::fs::read(SAMPLE).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{label}: {}", r.text().await.unwrap());
        let generation = r.json::<Value>().await.unwrap()["generation"].clone();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let v = common::json_of(s.http.get(s.url("/api/v1/vulndb"))).await;
            if v["status"]["loaded_generation"] == generation {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{label}: the scanner did not load the upload (poll is an hour): {v}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

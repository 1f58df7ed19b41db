//! The OCI Distribution API, endpoint by endpoint and error by error, over
//! real HTTP, on SQLite and on PostgreSQL.

mod common;

use common::{backends, image_manifest, TestServer};
use portcullis_oci::{Algorithm, Digest};
use reqwest::{Response, StatusCode};

async fn code(r: Response) -> (StatusCode, String) {
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    (status, body["errors"][0]["code"].as_str().unwrap_or("").to_string())
}

fn header(r: &Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn base_endpoint_announces_the_api() {
    let s = TestServer::start(&common::Backend::Sqlite).await;
    let r = s.http.get(s.url("/v2/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "docker-distribution-api-version"), "registry/2.0");
    assert!(!header(&r, "x-request-id").is_empty());
    for (path, want) in [("/healthz", 200), ("/readyz", 200), ("/v1/", 404), ("/v2/a", 404)] {
        assert_eq!(s.http.get(s.url(path)).send().await.unwrap().status(), want, "{path}");
    }
    let r = s.http.get(s.url("/metrics")).send().await.unwrap();
    let text = r.text().await.unwrap();
    assert!(
        text.contains("portcullis_http_requests_total{route=\"base\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("portcullis_http_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test]
async fn blobs_monolithic_head_get_range_and_isolation() {
    for b in backends() {
        let s = TestServer::start(&b).await;
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let d = s.push_blob("org/a", &data).await;
        let url = s.url(&format!("/v2/org/a/blobs/{d}"));

        let r = s.http.head(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", s.label());
        assert_eq!(header(&r, "content-length"), "100000");
        assert_eq!(header(&r, "docker-content-digest"), d.as_str());

        let r = s.http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap().as_ref(), &data[..]);

        let r = s.http.get(&url).header("range", "bytes=10-19").send().await.unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(header(&r, "content-range"), "bytes 10-19/100000");
        assert_eq!(r.bytes().await.unwrap().as_ref(), &data[10..20]);
        let r = s.http.get(&url).header("range", "bytes=-5").send().await.unwrap();
        assert_eq!(r.bytes().await.unwrap().as_ref(), &data[99_995..]);
        let r = s.http.get(&url).header("range", "bytes=100000-").send().await.unwrap();
        assert_eq!(r.status(), 416);
        assert_eq!(header(&r, "content-range"), "bytes */100000");

        // Invariant 3: known in org/a is not readable through org/b.
        let r = s.http.get(s.url(&format!("/v2/org/b/blobs/{d}"))).send().await.unwrap();
        assert_eq!(code(r).await, (StatusCode::NOT_FOUND, "BLOB_UNKNOWN".into()));
        let r = s
            .http
            .head(s.url(&format!("/v2/org/b/blobs/{d}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);

        // A wrong digest stores nothing, under either name.
        let wrong = Digest::sha256_of(b"something else");
        let r = s
            .http
            .post(s.url(&format!("/v2/org/a/blobs/uploads/?digest={wrong}")))
            .body("abc")
            .send()
            .await
            .unwrap();
        assert_eq!(code(r).await, (StatusCode::BAD_REQUEST, "DIGEST_INVALID".into()));
        let r = s
            .http
            .head(s.url(&format!("/v2/org/a/blobs/{wrong}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let right = Digest::sha256_of(b"abc");
        let r = s
            .http
            .head(s.url(&format!("/v2/org/a/blobs/{right}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        assert!(
            s.registry.store.list_uploads().unwrap().is_empty(),
            "no upload left behind"
        );

        let r = s.http.delete(&url).send().await.unwrap();
        assert_eq!(r.status(), 202);
        let r = s.http.get(&url).send().await.unwrap();
        assert_eq!(code(r).await, (StatusCode::NOT_FOUND, "BLOB_UNKNOWN".into()));
        let r = s.http.delete(&url).send().await.unwrap();
        assert_eq!(code(r).await, (StatusCode::NOT_FOUND, "BLOB_UNKNOWN".into()));
    }
}

#[tokio::test]
async fn chunked_upload_with_ranges_status_and_cancel() {
    for b in backends() {
        let s = TestServer::start(&b).await;
        let r = s.http.post(s.url("/v2/r/blobs/uploads/")).send().await.unwrap();
        assert_eq!(r.status(), 202, "{}", s.label());
        assert_eq!(header(&r, "range"), "0-0");
        assert!(!header(&r, "docker-upload-uuid").is_empty());
        let loc = s.url(&header(&r, "location"));

        let r = s
            .http
            .patch(&loc)
            .header("content-range", "0-4")
            .body("hello")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        assert_eq!(header(&r, "range"), "0-4");
        let loc = s.url(&header(&r, "location"));

        // Out of order: 416 with the current range and where to resume.
        let r = s
            .http
            .patch(&loc)
            .header("content-range", "3-5")
            .body("xyz")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 416);
        assert_eq!(header(&r, "range"), "0-4");
        assert!(header(&r, "location").contains("/v2/r/blobs/uploads/"));
        assert_eq!(code(r).await.1, "BLOB_UPLOAD_INVALID");
        // Content-Range that disagrees with the body's length.
        let r = s
            .http
            .patch(&loc)
            .header("content-range", "5-9")
            .body("ab")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 416);

        let r = s.http.get(&loc).send().await.unwrap();
        assert_eq!(r.status(), 204);
        assert_eq!(header(&r, "range"), "0-4");

        // Streamed PATCH without Content-Range appends.
        let r = s.http.patch(&loc).body(" wor").send().await.unwrap();
        assert_eq!(header(&r, "range"), "0-8");

        // The session belongs to its repository.
        let other = loc.replace("/v2/r/", "/v2/other/");
        assert_eq!(
            code(s.http.get(&other).send().await.unwrap()).await.1,
            "BLOB_UPLOAD_UNKNOWN"
        );

        // Closing PUT without a digest, then with the final chunk.
        assert_eq!(code(s.http.put(&loc).send().await.unwrap()).await.1, "DIGEST_INVALID");
        let d = Digest::sha256_of(b"hello world");
        let r = s
            .http
            .put(format!("{loc}?digest={d}"))
            .header("content-range", "9-10")
            .body("ld")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let r = s.http.get(s.url(&format!("/v2/r/blobs/{d}"))).send().await.unwrap();
        assert_eq!(r.bytes().await.unwrap().as_ref(), b"hello world");
        assert_eq!(
            code(s.http.get(&loc).send().await.unwrap()).await.1,
            "BLOB_UPLOAD_UNKNOWN",
            "closed"
        );

        // POST then PUT with the whole body, and a mismatch that stores nothing.
        let r = s.http.post(s.url("/v2/r/blobs/uploads/")).send().await.unwrap();
        let loc = s.url(&header(&r, "location"));
        let wrong = Digest::sha256_of(b"nope");
        let r = s
            .http
            .put(format!("{loc}?digest={wrong}"))
            .body("data")
            .send()
            .await
            .unwrap();
        assert_eq!(code(r).await, (StatusCode::BAD_REQUEST, "DIGEST_INVALID".into()));
        assert_eq!(
            s.http
                .head(s.url(&format!("/v2/r/blobs/{}", Digest::sha256_of(b"data"))))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );

        // Cancel.
        let r = s.http.post(s.url("/v2/r/blobs/uploads/")).send().await.unwrap();
        let loc = s.url(&header(&r, "location"));
        s.http.patch(&loc).body("partial").send().await.unwrap();
        assert_eq!(s.http.delete(&loc).send().await.unwrap().status(), 204);
        assert_eq!(
            code(s.http.get(&loc).send().await.unwrap()).await.1,
            "BLOB_UPLOAD_UNKNOWN"
        );
        assert_eq!(
            code(s.http.patch(&loc).body("x").send().await.unwrap()).await.1,
            "BLOB_UPLOAD_UNKNOWN"
        );
        let bogus = s.url("/v2/r/blobs/uploads/not-a-uuid");
        assert_eq!(
            code(s.http.get(&bogus).send().await.unwrap()).await.1,
            "BLOB_UPLOAD_UNKNOWN"
        );
        assert!(s.registry.store.list_uploads().unwrap().is_empty());
    }
}

#[tokio::test]
async fn sha512_digests_and_unsupported_algorithms() {
    let s = TestServer::start(&common::Backend::Sqlite).await;
    let d = Digest::of(Algorithm::Sha512, b"five12");
    let r = s
        .http
        .post(s.url(&format!("/v2/r/blobs/uploads/?digest={d}")))
        .body("five12")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = s.http.get(s.url(&format!("/v2/r/blobs/{d}"))).send().await.unwrap();
    assert_eq!(header(&r, "docker-content-digest"), d.as_str());
    assert_eq!(r.text().await.unwrap(), "five12");
    let r = s
        .http
        .post(s.url("/v2/r/blobs/uploads/?digest-algorithm=sha512"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = s
        .http
        .post(s.url("/v2/r/blobs/uploads/?digest-algorithm=md5"))
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, (StatusCode::BAD_REQUEST, "DIGEST_INVALID".into()));
    let md5 = format!("md5:{}", "a".repeat(32));
    let r = s
        .http
        .post(s.url(&format!("/v2/r/blobs/uploads/?digest={md5}")))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, (StatusCode::BAD_REQUEST, "DIGEST_INVALID".into()));
    let r = s.http.get(s.url(&format!("/v2/r/blobs/{md5}"))).send().await.unwrap();
    assert_eq!(code(r).await, (StatusCode::BAD_REQUEST, "DIGEST_INVALID".into()));
}

#[tokio::test]
async fn cross_repository_mount_and_fallback() {
    for b in backends() {
        let s = TestServer::start(&b).await;
        let d = s.push_blob("src/app", b"shared layer").await;
        let r = s
            .http
            .post(s.url(&format!("/v2/dst/app/blobs/uploads/?mount={d}&from=src/app")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", s.label());
        assert_eq!(header(&r, "location"), format!("/v2/dst/app/blobs/{d}"));
        assert_eq!(
            s.http
                .head(s.url(&format!("/v2/dst/app/blobs/{d}")))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );

        // Not in the source: a normal upload session instead.
        let r = s
            .http
            .post(s.url(&format!("/v2/third/blobs/uploads/?mount={d}&from=nowhere")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        assert!(header(&r, "location").starts_with("/v2/third/blobs/uploads/"));
        assert_eq!(
            s.http
                .head(s.url(&format!("/v2/third/blobs/{d}")))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
    }
}

#[tokio::test]
async fn manifests_push_pull_and_validation() {
    for b in backends() {
        let s = TestServer::start(&b).await;
        let (md, body) = s
            .push_image("org/app", "v1", b"{\"config\":1}", &[b"layer-one", b"layer-two"])
            .await;
        for reference in ["v1".to_string(), md.to_string()] {
            let r = s
                .http
                .get(s.url(&format!("/v2/org/app/manifests/{reference}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{}", s.label());
            assert_eq!(header(&r, "content-type"), "application/vnd.oci.image.manifest.v1+json");
            assert_eq!(header(&r, "docker-content-digest"), md.as_str());
            assert_eq!(r.bytes().await.unwrap().as_ref(), &body[..], "stored byte for byte");
            let r = s
                .http
                .head(s.url(&format!("/v2/org/app/manifests/{reference}")))
                .send()
                .await
                .unwrap();
            assert_eq!(header(&r, "content-length"), body.len().to_string());
        }
        // A client that only takes Docker types is not handed an OCI manifest.
        let r = s
            .http
            .get(s.url("/v2/org/app/manifests/v1"))
            .header("accept", "application/vnd.docker.distribution.manifest.v2+json")
            .send()
            .await
            .unwrap();
        assert_eq!(code(r).await, (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN".into()));

        let put = |reference: String, ct: &'static str, body: Vec<u8>| {
            let req = s
                .http
                .put(s.url(&format!("/v2/org/app/manifests/{reference}")))
                .header("content-type", ct);
            async move { req.body(body).send().await.unwrap() }
        };
        let oci = "application/vnd.oci.image.manifest.v1+json";
        let cfg = s.push_blob("org/app", b"cfg").await;
        let missing = Digest::sha256_of(b"never pushed");
        let cases: Vec<(&str, Vec<u8>, &str, StatusCode, &str)> = vec![
            (
                "missing blob",
                image_manifest(&cfg, 3, &[(missing.clone(), 5)]),
                oci,
                StatusCode::BAD_REQUEST,
                "MANIFEST_BLOB_UNKNOWN",
            ),
            (
                "not json",
                b"{not json".to_vec(),
                oci,
                StatusCode::BAD_REQUEST,
                "MANIFEST_INVALID",
            ),
            (
                "schema 1",
                br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#.to_vec(),
                "application/vnd.docker.distribution.manifest.v1+prettyjws",
                StatusCode::BAD_REQUEST,
                "MANIFEST_INVALID",
            ),
            (
                "no config",
                br#"{"schemaVersion":2,"layers":[]}"#.to_vec(),
                oci,
                StatusCode::BAD_REQUEST,
                "MANIFEST_INVALID",
            ),
            (
                "too large",
                vec![b' '; 4 * 1024 * 1024 + 1],
                oci,
                StatusCode::PAYLOAD_TOO_LARGE,
                "MANIFEST_INVALID",
            ),
            (
                "type mismatch",
                image_manifest(&cfg, 3, &[]),
                "application/vnd.docker.distribution.manifest.v2+json",
                StatusCode::BAD_REQUEST,
                "MANIFEST_INVALID",
            ),
        ];
        for (what, body, ct, status, want) in cases {
            let r = put("bad".into(), ct, body).await;
            assert_eq!(code(r).await, (status, want.to_string()), "{what} ({})", s.label());
        }
        let r = s.http.get(s.url("/v2/org/app/manifests/bad")).send().await.unwrap();
        assert_eq!(code(r).await.1, "MANIFEST_UNKNOWN", "rejected pushes leave nothing");

        // By digest: the digest must be the body's.
        let good = image_manifest(&cfg, 3, &[]);
        let r = put(missing.to_string(), oci, good.clone()).await;
        assert_eq!(code(r).await, (StatusCode::BAD_REQUEST, "DIGEST_INVALID".into()));
        let gd = Digest::sha256_of(&good);
        let r = put(format!("{gd}?tag=a&tag=b"), oci, good.clone()).await;
        assert_eq!(r.status(), 201);
        assert_eq!(header(&r, "oci-tag"), "a, b");
        assert_eq!(header(&r, "location"), format!("/v2/org/app/manifests/{gd}"));

        // umoci omits mediaType: the Content-Type header decides.
        let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
        v.as_object_mut().unwrap().remove("mediaType");
        let bare = serde_json::to_vec(&v).unwrap();
        let r = put(
            "bare".into(),
            "application/vnd.docker.distribution.manifest.v2+json",
            bare,
        )
        .await;
        assert_eq!(r.status(), 201);
        let r = s.http.get(s.url("/v2/org/app/manifests/bare")).send().await.unwrap();
        assert_eq!(
            header(&r, "content-type"),
            "application/vnd.docker.distribution.manifest.v2+json"
        );

        // Unknown repository and unknown manifest.
        let r = s.http.get(s.url("/v2/nope/manifests/v1")).send().await.unwrap();
        assert_eq!(code(r).await, (StatusCode::NOT_FOUND, "NAME_UNKNOWN".into()));
        let r = s.http.get(s.url("/v2/org/app/manifests/v9")).send().await.unwrap();
        assert_eq!(code(r).await, (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN".into()));
    }
}

#[tokio::test]
async fn index_children_and_deletes() {
    for b in backends() {
        let s = TestServer::start(&b).await;
        let (amd, amd_body) = s.push_image("multi", "amd64", b"c1", &[b"l1"]).await;
        let (arm, arm_body) = s.push_image("multi", "arm64", b"c2", &[b"l2"]).await;
        let desc = |d: &Digest, n: usize, arch: &str| serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d.as_str(), "size": n, "platform": {"os": "linux", "architecture": arch}});
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [desc(&amd, amd_body.len(), "amd64"), desc(&arm, arm_body.len(), "arm64")]
        }))
        .unwrap();
        let r = s.put_index("multi", "latest", index.clone()).await;
        assert_eq!(r.status(), 201, "{}", s.label());
        let idx = Digest::sha256_of(&index);

        // An index may not name a manifest the repository lacks.
        let stray = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [desc(&Digest::sha256_of(b"ghost"), 10, "s390x")]
        }))
        .unwrap();
        let r = s.put_index("multi", "stray", stray).await;
        assert_eq!(code(r).await, (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN".into()));

        // A child listed by the index cannot go first.
        let r = s
            .http
            .delete(s.url(&format!("/v2/multi/manifests/{amd}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 409);
        // Tag delete leaves the manifest.
        assert_eq!(
            s.http
                .delete(s.url("/v2/multi/manifests/latest"))
                .send()
                .await
                .unwrap()
                .status(),
            202
        );
        assert_eq!(
            s.http
                .get(s.url("/v2/multi/manifests/latest"))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
        assert_eq!(
            s.http
                .get(s.url(&format!("/v2/multi/manifests/{idx}")))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(
            s.http
                .delete(s.url("/v2/multi/manifests/latest"))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
        // Delete by digest removes it and its tags.
        assert_eq!(
            s.http
                .delete(s.url(&format!("/v2/multi/manifests/{idx}")))
                .send()
                .await
                .unwrap()
                .status(),
            202
        );
        assert_eq!(
            s.http
                .delete(s.url(&format!("/v2/multi/manifests/{amd}")))
                .send()
                .await
                .unwrap()
                .status(),
            202
        );
        let r = s.http.get(s.url("/v2/multi/manifests/amd64")).send().await.unwrap();
        assert_eq!(code(r).await.1, "MANIFEST_UNKNOWN");
        let r = s
            .http
            .delete(s.url(&format!("/v2/nowhere/manifests/{amd}")))
            .send()
            .await
            .unwrap();
        assert_eq!(code(r).await, (StatusCode::NOT_FOUND, "NAME_UNKNOWN".into()));
        // A blob the remaining manifest uses cannot be deleted from under it.
        let l2 = Digest::sha256_of(b"l2");
        assert_eq!(
            s.http
                .delete(s.url(&format!("/v2/multi/blobs/{l2}")))
                .send()
                .await
                .unwrap()
                .status(),
            409
        );
        assert_eq!(
            s.http
                .get(s.url(&format!("/v2/multi/blobs/{l2}")))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
}

#[tokio::test]
async fn tag_list_and_catalog_paginate_with_links() {
    for b in backends() {
        let s = TestServer::start(&b).await;
        let (md, body) = s.push_image("paged", "t000", b"c", &[]).await;
        let mut want = vec!["t000".to_string()];
        for i in 1..25 {
            let t = format!("t{i:03}");
            let r = s
                .http
                .put(s.url(&format!("/v2/paged/manifests/{t}")))
                .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            want.push(t);
        }
        let _ = md;
        let mut got = Vec::new();
        let mut next = Some("/v2/paged/tags/list?n=10".to_string());
        let mut pages = 0;
        while let Some(path) = next.take() {
            let r = s.http.get(s.url(&path)).send().await.unwrap();
            assert_eq!(r.status(), 200, "{}", s.label());
            let link = header(&r, "link");
            let v: serde_json::Value = r.json().await.unwrap();
            assert_eq!(v["name"], "paged");
            got.extend(
                v["tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap().to_string()),
            );
            if !link.is_empty() {
                assert!(link.ends_with("; rel=\"next\""), "{link}");
                next = Some(link[1..link.find('>').unwrap()].to_string());
            }
            pages += 1;
        }
        assert_eq!(got, want);
        assert_eq!(pages, 3, "10 + 10 + 5, the last without a Link");

        let r = s.http.get(s.url("/v2/paged/tags/list?n=0")).send().await.unwrap();
        assert!(header(&r, "link").is_empty());
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap()["tags"],
            serde_json::json!([])
        );
        let r = s.http.get(s.url("/v2/paged/tags/list?last=t020")).send().await.unwrap();
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap()["tags"],
            serde_json::json!(["t021", "t022", "t023", "t024"])
        );
        let r = s.http.get(s.url("/v2/paged/tags/list?n=-1")).send().await.unwrap();
        assert_eq!(
            code(r).await,
            (StatusCode::BAD_REQUEST, "PAGINATION_NUMBER_INVALID".into())
        );
        let r = s.http.get(s.url("/v2/unknown/tags/list")).send().await.unwrap();
        assert_eq!(code(r).await, (StatusCode::NOT_FOUND, "NAME_UNKNOWN".into()));

        for repo in ["b/x", "a", "c"] {
            s.push_blob(repo, b"x").await;
        }
        let r = s.http.get(s.url("/v2/_catalog?n=2")).send().await.unwrap();
        assert_eq!(header(&r, "link"), "</v2/_catalog?n=2&last=b%2Fx>; rel=\"next\"");
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap()["repositories"],
            serde_json::json!(["a", "b/x"])
        );
        let r = s.http.get(s.url("/v2/_catalog?n=2&last=b%2Fx")).send().await.unwrap();
        assert!(header(&r, "link").is_empty());
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap()["repositories"],
            serde_json::json!(["c", "paged"])
        );
    }
}

#[tokio::test]
async fn referrers_api_with_subject_and_filter() {
    for b in backends() {
        let s = TestServer::start(&b).await;
        let (subject, subject_body) = s.push_image("signed", "v1", b"c", &[b"l"]).await;
        let empty = s.push_blob("signed", b"{}").await;
        let mut referrer_digests = Vec::new();
        for (artifact_type, note) in [
            ("application/vnd.dev.cosign.artifact.sig.v1+json", "sig"),
            ("application/spdx+json", "sbom"),
        ] {
            let m = serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": artifact_type,
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.as_str(), "size": 2},
                "layers": [],
                "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject.as_str(), "size": subject_body.len()},
                "annotations": {"note": note},
            }))
            .unwrap();
            let d = Digest::sha256_of(&m);
            let r = s
                .http
                .put(s.url(&format!("/v2/signed/manifests/{d}")))
                .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                .body(m)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201, "{}", s.label());
            assert_eq!(header(&r, "oci-subject"), subject.as_str());
            referrer_digests.push(d);
        }
        let r = s
            .http
            .get(s.url(&format!("/v2/signed/referrers/{subject}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "content-type"), "application/vnd.oci.image.index.v1+json");
        assert!(header(&r, "oci-filters-applied").is_empty());
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["schemaVersion"], 2);
        let list = v["manifests"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        for d in list {
            assert!(referrer_digests.iter().any(|r| r.as_str() == d["digest"]));
            assert!(d["annotations"]["note"].is_string());
        }
        let r = s
            .http
            .get(s.url(&format!(
                "/v2/signed/referrers/{subject}?artifactType=application%2Fspdx%2Bjson"
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(header(&r, "oci-filters-applied"), "artifactType");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
        assert_eq!(v["manifests"][0]["artifactType"], "application/spdx+json");
        assert_eq!(v["manifests"][0]["annotations"]["note"], "sbom");

        // Unknown subject: an empty index, never 404. A bad digest: 400.
        let r = s
            .http
            .get(s.url(&format!("/v2/signed/referrers/{}", Digest::sha256_of(b"?"))))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap()["manifests"],
            serde_json::json!([])
        );
        let r = s
            .http
            .get(s.url("/v2/signed/referrers/sha256:123"))
            .send()
            .await
            .unwrap();
        assert_eq!(code(r).await, (StatusCode::BAD_REQUEST, "DIGEST_INVALID".into()));
    }
}

#[tokio::test]
async fn bad_names_and_methods_get_spec_errors() {
    let s = TestServer::start(&common::Backend::Sqlite).await;
    let d = Digest::sha256_of(b"x");
    let cases: Vec<(reqwest::Method, String, StatusCode, &str)> = vec![
        (
            reqwest::Method::GET,
            "/v2/UPPER/tags/list".into(),
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
        ),
        (
            reqwest::Method::GET,
            format!("/v2/a..b/blobs/{d}"),
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
        ),
        // Nothing can be stored under a reference that is neither a tag
        // nor a digest: a read finds nothing (the conformance suite's
        // `.INVALID_MANIFEST_NAME`), a push is refused as invalid.
        (
            reqwest::Method::GET,
            "/v2/a/manifests/.INVALID_MANIFEST_NAME".into(),
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
        ),
        (
            reqwest::Method::DELETE,
            "/v2/a/manifests/-bad".into(),
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
        ),
        (
            reqwest::Method::GET,
            "/v2/a/manifests/sha256:nothex".into(),
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
        ),
        (
            reqwest::Method::PUT,
            "/v2/a/manifests/-bad".into(),
            StatusCode::BAD_REQUEST,
            "TAG_INVALID",
        ),
        (
            reqwest::Method::PUT,
            "/v2/a/manifests/sha256:nothex".into(),
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        ),
        (
            reqwest::Method::GET,
            "/v2/a/blobs/sha256:zz".into(),
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        ),
        (
            reqwest::Method::POST,
            format!("/v2/a/manifests/{d}"),
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
        ),
        (
            reqwest::Method::PUT,
            "/v2/a/tags/list".into(),
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
        ),
        (
            reqwest::Method::POST,
            "/v2/a/blobs/uploads/?mount=sha256:bad&from=b".into(),
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        ),
        (
            reqwest::Method::POST,
            format!("/v2/a/blobs/uploads/?mount={d}&from=B"),
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
        ),
    ];
    for (method, path, status, want) in cases {
        let r = s.http.request(method.clone(), s.url(&path)).send().await.unwrap();
        assert_eq!(code(r).await, (status, want.to_string()), "{method} {path}");
    }
    let r = s
        .http
        .head(s.url("/v2/a/manifests/.INVALID_MANIFEST_NAME"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn moved_and_deleted_tags_are_seen_at_once_despite_the_cache() {
    for b in backends() {
        let s = TestServer::start(&b).await;
        let (first, _) = s.push_image("cached", "v1", b"c1", &[]).await;
        let digest_of_v1 = || async {
            let r = s.http.get(s.url("/v2/cached/manifests/v1")).send().await.unwrap();
            (r.status(), header(&r, "docker-content-digest"))
        };
        assert_eq!(digest_of_v1().await, (StatusCode::OK, first.to_string()));
        assert_eq!(
            digest_of_v1().await,
            (StatusCode::OK, first.to_string()),
            "second read from the cache"
        );
        let (second, _) = s.push_image("cached", "v1", b"c2", &[]).await;
        assert_eq!(
            digest_of_v1().await,
            (StatusCode::OK, second.to_string()),
            "{}: tag move",
            s.label()
        );
        assert_eq!(
            s.http
                .delete(s.url("/v2/cached/manifests/v1"))
                .send()
                .await
                .unwrap()
                .status(),
            202
        );
        assert_eq!(
            digest_of_v1().await.0,
            StatusCode::NOT_FOUND,
            "{}: tag delete",
            s.label()
        );
        let r = s
            .http
            .get(s.url(&format!("/v2/cached/manifests/{second}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            s.http
                .delete(s.url(&format!("/v2/cached/manifests/{second}")))
                .send()
                .await
                .unwrap()
                .status(),
            202
        );
        let r = s
            .http
            .get(s.url(&format!("/v2/cached/manifests/{second}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{}: manifest delete", s.label());
    }
}

/// Blob bodies on plain HTTP/1 go from the file to the socket by
/// `sendfile`: the whole blob and every range arrive exact (across the
/// 4 MiB chunk boundary, on one kept-alive connection and on eight at
/// once), and the zero-copy counter grows by exactly the bytes served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_bodies_are_sent_zero_copy_and_exact() {
    let backend = backends().remove(0);
    let s = TestServer::start(&backend).await;
    let mut data = Vec::with_capacity(5 * 1024 * 1024 + 12_345);
    let mut x: u32 = 0x1234_5678;
    while data.len() < data.capacity() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(5 * 1024 * 1024 + 12_345);
    let d = s.push_blob("zc/app", &data).await;
    let sent = || async {
        let text = common::scrape(&s).await;
        text.lines()
            .find_map(|l| l.strip_prefix("portcullis_blob_bytes_sent_zero_copy_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = sent().await;
    let url = s.url(&format!("/v2/zc/app/blobs/{d}"));
    let n = data.len();
    let mut served = 0u64;
    let full = s.http.get(&url).send().await.unwrap().bytes().await.unwrap();
    assert!(full[..] == data[..], "whole blob");
    served += n as u64;
    let cases: &[(&str, std::ops::Range<usize>)] = &[
        ("bytes=0-0", 0..1),
        ("bytes=262143-262144", 262_143..262_145),
        ("bytes=1000-", 1000..n),
        ("bytes=-100", n - 100..n),
        ("bytes=524288-1048575", 524_288..1_048_576),
        ("bytes=4194303-4194304", 4_194_303..4_194_305),
        ("bytes=4000000-4400000", 4_000_000..4_400_001),
    ];
    for (range, want) in cases {
        let r = s.http.get(&url).header("range", *range).send().await.unwrap();
        assert_eq!(r.status(), 206, "{range}");
        let body = r.bytes().await.unwrap();
        assert!(body[..] == data[want.clone()], "{range}");
        served += want.len() as u64;
    }
    let parallel: Vec<_> = (0..8)
        .map(|_| {
            let (client, url) = (s.http.clone(), url.clone());
            tokio::spawn(async move { client.get(&url).send().await.unwrap().bytes().await.unwrap() })
        })
        .collect();
    for t in parallel {
        assert!(t.await.unwrap()[..] == data[..], "parallel");
        served += n as u64;
    }
    let head = s.http.head(&url).send().await.unwrap();
    assert_eq!(head.headers()["content-length"], n.to_string().as_str());
    assert_eq!(sent().await - before, served, "every byte went by sendfile");
}

//! Every test runs on SQLite and on PostgreSQL (when `PORTCULLIS_TEST_POSTGRES`
//! is set; under `CI=true` it must be). Each gets its own file or schema.

use super::*;

pub(crate) struct TestDb {
    pub meta: Meta,
    _dir: Option<tempfile::TempDir>,
    label: &'static str,
}

pub(crate) async fn backends() -> Vec<TestDb> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("meta.db").display());
    let mut out = vec![TestDb {
        meta: Meta::connect(&url).await.unwrap(),
        _dir: Some(dir),
        label: "sqlite",
    }];
    match std::env::var("PORTCULLIS_TEST_POSTGRES") {
        Ok(pg) if !pg.is_empty() => {
            let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
            let meta = Meta::connect_in_schema(&pg, Some(&schema)).await.unwrap();
            out.push(TestDb {
                meta,
                _dir: None,
                label: "postgres",
            });
        }
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!("CI=true but PORTCULLIS_TEST_POSTGRES is not set"),
        _ => eprintln!("PORTCULLIS_TEST_POSTGRES not set: PostgreSQL half of the test skipped"),
    }
    out
}

fn d(s: &str) -> Digest {
    Digest::sha256_of(s.as_bytes())
}

async fn add_blob(meta: &Meta, repo: &str, name: &str) -> Digest {
    let dg = d(name);
    meta.insert_blob(repo, &dg, name.len() as u64, || async { Ok(()) })
        .await
        .unwrap();
    dg
}

fn manifest<'a>(repo: &'a str, digest: &'a Digest, blobs: Vec<&'a Digest>, tag: Option<&'a str>) -> NewManifest<'a> {
    NewManifest {
        repo,
        digest,
        media_type: "application/vnd.oci.image.manifest.v1+json",
        artifact_type: None,
        subject: None,
        annotations: None,
        content: digest.as_str().as_bytes(),
        blobs,
        children: vec![],
        tags: tag.into_iter().collect(),
    }
}

#[tokio::test]
async fn blobs_are_visible_only_where_linked() {
    for db in backends().await {
        let m = &db.meta;
        let a = add_blob(m, "org/a", "layer").await;
        assert_eq!(m.blob_in_repo("org/a", &a).await.unwrap(), Some(5), "{}", db.label);
        assert_eq!(
            m.blob_in_repo("org/b", &a).await.unwrap(),
            None,
            "{}: invariant 3",
            db.label
        );
        assert_eq!(
            m.mount_blob("org/b", "org/c", &a).await.unwrap(),
            None,
            "{}: not in source",
            db.label
        );
        assert_eq!(
            m.mount_blob("org/b", "org/a", &a).await.unwrap(),
            Some(5),
            "{}",
            db.label
        );
        assert_eq!(m.blob_in_repo("org/b", &a).await.unwrap(), Some(5), "{}", db.label);
        assert!(m.unlink_blob("org/a", &a).await.unwrap());
        assert_eq!(m.blob_in_repo("org/a", &a).await.unwrap(), None, "{}", db.label);
        assert_eq!(m.blob_in_repo("org/b", &a).await.unwrap(), Some(5), "{}", db.label);
    }
}

#[tokio::test]
async fn failed_publish_leaves_no_row() {
    for db in backends().await {
        let dg = d("x");
        let err = db
            .meta
            .insert_blob("r", &dg, 1, || async { Err(std::io::Error::other("disk full")) })
            .await;
        assert!(matches!(err, Err(MetaError::Publish(_))), "{}", db.label);
        assert_eq!(db.meta.blob_in_repo("r", &dg).await.unwrap(), None, "{}", db.label);
        assert!(!db.meta.blob_known(dg.as_str()).await.unwrap(), "{}", db.label);
    }
}

#[tokio::test]
async fn manifests_need_their_blobs_and_children() {
    for db in backends().await {
        let m = &db.meta;
        let layer = add_blob(m, "app", "layer").await;
        let other = add_blob(m, "elsewhere", "other").await;
        let md = d("manifest");
        let err = m
            .put_manifest(manifest("app", &md, vec![&layer, &other], Some("v1")))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, MetaError::BlobUnknown(x) if x == other.as_str()),
            "{}: {err}",
            db.label
        );
        assert!(
            m.get_manifest("app", &Reference::Tag("v1".into()))
                .await
                .unwrap()
                .is_none(),
            "{}",
            db.label
        );

        m.put_manifest(manifest("app", &md, vec![&layer], Some("v1")))
            .await
            .unwrap();
        let got = m
            .get_manifest("app", &Reference::Tag("v1".into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.digest, md.as_str());
        assert_eq!(got.content, md.as_str().as_bytes());

        let idx = d("index");
        let missing = d("missing");
        let mut index = manifest("app", &idx, vec![], Some("multi"));
        index.children = vec![&md, &missing];
        assert!(
            matches!(m.put_manifest(index).await, Err(MetaError::ManifestUnknown(_))),
            "{}",
            db.label
        );
        let mut index = manifest("app", &idx, vec![], Some("multi"));
        index.children = vec![&md];
        m.put_manifest(index).await.unwrap();

        // A listed child cannot be deleted; the index can, then the child.
        assert!(matches!(
            m.delete_manifest("app", &md).await,
            Err(MetaError::ManifestReferenced { .. })
        ));
        assert!(
            m.get_manifest("app", &Reference::Tag("v1".into()))
                .await
                .unwrap()
                .is_some(),
            "refusal rolled back"
        );
        assert!(
            matches!(m.unlink_blob("app", &layer).await, Err(MetaError::BlobReferenced(_))),
            "{}",
            db.label
        );
        assert!(m.delete_manifest("app", &idx).await.unwrap());
        assert!(m.delete_manifest("app", &md).await.unwrap());
        assert!(!m.delete_manifest("app", &md).await.unwrap());
        assert!(
            m.list_tags("app", None, 10).await.unwrap().is_empty(),
            "{}: tags go with the manifest",
            db.label
        );
        assert!(m.unlink_blob("app", &layer).await.unwrap());
    }
}

#[tokio::test]
async fn tags_and_catalog_page_in_bytewise_order() {
    for db in backends().await {
        let m = &db.meta;
        let md = d("m");
        m.put_manifest(manifest("r", &md, vec![], None)).await.unwrap();
        let tags = ["b", "a", "B", "_x", "a-1", "a.1", "A", "1"];
        for t in tags {
            m.put_manifest(manifest("r", &md, vec![], Some(t))).await.unwrap();
        }
        let mut want: Vec<&str> = tags.to_vec();
        want.sort();
        let mut got = Vec::new();
        let mut last: Option<String> = None;
        loop {
            let page = m.list_tags("r", last.as_deref(), 3).await.unwrap();
            if page.is_empty() {
                break;
            }
            last = page.last().cloned();
            got.extend(page);
        }
        assert_eq!(got, want, "{}", db.label);
        for repo in ["z/y", "a", "a/b", "a-b", "A0"] {
            add_blob(m, &repo.to_lowercase(), "x").await;
        }
        let names = m.catalog(None, 100).await.unwrap();
        assert_eq!(names, ["a", "a-b", "a/b", "a0", "r", "z/y"], "{}", db.label);
        assert_eq!(m.catalog(Some("a-b"), 2).await.unwrap(), ["a/b", "a0"], "{}", db.label);
        assert!(m.delete_tag("r", "a").await.unwrap());
        assert!(!m.delete_tag("r", "a").await.unwrap());
    }
}

#[tokio::test]
async fn referrers_filter_by_artifact_type() {
    for db in backends().await {
        let m = &db.meta;
        let subject = d("subject");
        let (sig, sbom) = (d("sig"), d("sbom"));
        for (dg, at) in [
            (&sig, "application/vnd.dev.cosign.simplesigning.v1+json"),
            (&sbom, "application/spdx+json"),
        ] {
            let mut nm = manifest("r", dg, vec![], None);
            nm.subject = Some(&subject);
            nm.artifact_type = Some(at);
            nm.annotations = Some(r#"{"k":"v"}"#.into());
            m.put_manifest(nm).await.unwrap();
        }
        let all = m.referrers("r", &subject, None).await.unwrap();
        assert_eq!(all.len(), 2, "{}", db.label);
        let only = m.referrers("r", &subject, Some("application/spdx+json")).await.unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].digest, sbom.as_str());
        assert_eq!(only[0].annotations.as_deref(), Some(r#"{"k":"v"}"#));
        assert!(m.referrers("other", &subject, None).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn gc_removes_only_what_nothing_uses() {
    for db in backends().await {
        let m = &db.meta;
        let kept = add_blob(m, "r", "kept").await;
        let loose = add_blob(m, "r", "loose").await;
        let tagged = d("tagged");
        let untagged = d("untagged");
        let referrer = d("referrer");
        m.put_manifest(manifest("r", &tagged, vec![&kept], Some("v1")))
            .await
            .unwrap();
        m.put_manifest(manifest("r", &untagged, vec![], None)).await.unwrap();
        let mut r = manifest("r", &referrer, vec![], None);
        r.subject = Some(&tagged);
        m.put_manifest(r).await.unwrap();

        let before = now_ms() - 60_000;
        assert!(
            m.untagged_manifests(before, 100).await.unwrap().is_empty(),
            "{}: grace period",
            db.label
        );
        assert!(
            m.unreferenced_links(before, 100).await.unwrap().is_empty(),
            "{}: grace period",
            db.label
        );

        let future = now_ms() + 60_000;
        let cands = m.untagged_manifests(future, 100).await.unwrap();
        assert_eq!(
            cands,
            vec![("r".to_string(), untagged.to_string())],
            "{}: referrer of a live subject stays",
            db.label
        );
        assert!(m.collect_manifest("r", untagged.as_str(), future).await.unwrap());
        assert!(
            !m.collect_manifest("r", tagged.as_str(), future).await.unwrap(),
            "{}",
            db.label
        );

        let links = m.unreferenced_links(future, 100).await.unwrap();
        assert_eq!(links, vec![("r".to_string(), loose.to_string())], "{}", db.label);
        assert!(!m.collect_link("r", kept.as_str(), future).await.unwrap());
        assert!(m.collect_link("r", loose.as_str(), future).await.unwrap());
        let blobs = m.unlinked_blobs(future, 100).await.unwrap();
        assert_eq!(blobs, vec![loose.to_string()], "{}", db.label);
        let mut removed = false;
        assert!(m
            .collect_blob(loose.as_str(), future, || async {
                removed = true;
                Ok(())
            })
            .await
            .unwrap());
        assert!(removed);
        assert!(!m
            .collect_blob(kept.as_str(), future, || async { Ok(()) })
            .await
            .unwrap());
        assert_eq!(m.blob_in_repo("r", &kept).await.unwrap(), Some(4), "{}", db.label);
    }
}

#[tokio::test]
async fn uploads_belong_to_one_repository() {
    for db in backends().await {
        let m = &db.meta;
        m.create_upload("u1", "r").await.unwrap();
        assert_eq!(m.upload_repo("u1").await.unwrap().as_deref(), Some("r"));
        m.touch_upload("u1").await.unwrap();
        assert_eq!(m.stale_uploads(now_ms() + 1000).await.unwrap(), vec!["u1".to_string()]);
        assert!(m.stale_uploads(now_ms() - 60_000).await.unwrap().is_empty());
        m.delete_upload("u1").await.unwrap();
        assert!(!m.upload_known("u1").await.unwrap(), "{}", db.label);
    }
}

/// Tag and catalog pages are index range scans, so a page costs the same
/// with ten tags or ten million (SQLite's plan; PostgreSQL's primary key
/// index on (repo, name) with C collation serves the same range).
#[tokio::test]
async fn tag_pages_are_index_range_scans() {
    let dir = tempfile::tempdir().unwrap();
    let meta = Meta::connect(&format!("sqlite://{}", dir.path().join("m.db").display()))
        .await
        .unwrap();
    for sql in [
        "EXPLAIN QUERY PLAN SELECT name FROM tags WHERE repo = 'r' AND name > 'a' ORDER BY name LIMIT 100",
        "EXPLAIN QUERY PLAN SELECT name FROM repositories WHERE name > 'a' ORDER BY name LIMIT 100",
    ] {
        let rows = sqlx::query(sql).fetch_all(&meta.pool).await.unwrap();
        let plan: Vec<String> = rows.iter().map(|r| r.try_get::<String, _>(3).unwrap()).collect();
        let plan = plan.join(" | ");
        assert!(plan.contains("USING") && plan.contains("INDEX"), "{sql}: {plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{sql} sorts: {plan}");
    }
}

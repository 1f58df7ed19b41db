//! Every test runs on SQLite and on PostgreSQL (when `PORTCULLIS_TEST_POSTGRES`
//! is set; under `CI=true` it must be). Each gets its own file or schema.

use super::*;

pub(crate) struct TestDb {
    pub meta: Meta,
    _dir: Option<tempfile::TempDir>,
    label: &'static str,
    /// Where it lives: the URL and, on PostgreSQL, the schema.
    url: String,
    schema: Option<String>,
}

impl TestDb {
    /// Closes the database and opens it again, as a restart does: the
    /// migrations and start-up rewrites run again.
    async fn reopen(&mut self) {
        self.meta.close().await;
        self.meta = Meta::connect_in_schema(&self.url, self.schema.as_deref())
            .await
            .unwrap();
    }
}

pub(crate) async fn backends() -> Vec<TestDb> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("meta.db").display());
    let mut out = vec![TestDb {
        meta: Meta::connect(&url).await.unwrap(),
        _dir: Some(dir),
        label: "sqlite",
        url,
        schema: None,
    }];
    match std::env::var("PORTCULLIS_TEST_POSTGRES") {
        Ok(pg) if !pg.is_empty() => {
            let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
            let meta = Meta::connect_in_schema(&pg, Some(&schema)).await.unwrap();
            out.push(TestDb {
                meta,
                _dir: None,
                label: "postgres",
                url: pg,
                schema: Some(schema),
            });
        }
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!("CI=true but PORTCULLIS_TEST_POSTGRES is not set"),
        _ => eprintln!("PORTCULLIS_TEST_POSTGRES not set: PostgreSQL half of the test skipped"),
    }
    out
}

fn ev() -> AuditEvent {
    AuditEvent::ok("test", "test")
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
        assert!(m.unlink_blob("org/a", &a, &ev()).await.unwrap());
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

/// The orphan-file sweep removes a file only under the blob's row lock: a
/// push that holds the row (it has renewed the file and not committed yet)
/// keeps its file, and a file no row names is removed, with no row left.
#[tokio::test]
async fn orphan_files_are_removed_only_under_the_row_lock() {
    for db in backends().await {
        let m = &db.meta;
        let removed = std::sync::atomic::AtomicUsize::new(0);
        let remove = || async {
            removed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        };
        let lone = d("a crash leftover");
        assert!(
            m.collect_orphan_file(lone.as_str(), remove).await.unwrap(),
            "{}",
            db.label
        );
        assert_eq!(removed.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(!m.blob_known(lone.as_str()).await.unwrap(), "the claim is rolled back");

        let pushed = d("pushed while the sweep runs");
        let publishing = tokio::sync::Notify::new();
        let push = m.insert_blob("r", &pushed, 1, || async {
            publishing.notify_one();
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            Ok(())
        });
        let sweep = async {
            publishing.notified().await;
            m.collect_orphan_file(pushed.as_str(), remove).await
        };
        let (pushed_ok, swept) = tokio::join!(push, sweep);
        pushed_ok.unwrap();
        assert!(!swept.unwrap(), "{}: the push's row was committed first", db.label);
        assert_eq!(removed.load(std::sync::atomic::Ordering::SeqCst), 1, "{}", db.label);
        assert!(m.blob_known(pushed.as_str()).await.unwrap());
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
            .put_manifest(manifest("app", &md, vec![&layer, &other], Some("v1")), &ev())
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

        m.put_manifest(manifest("app", &md, vec![&layer], Some("v1")), &ev())
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
            matches!(m.put_manifest(index, &ev()).await, Err(MetaError::ManifestUnknown(_))),
            "{}",
            db.label
        );
        let mut index = manifest("app", &idx, vec![], Some("multi"));
        index.children = vec![&md];
        m.put_manifest(index, &ev()).await.unwrap();

        // A listed child cannot be deleted; the index can, then the child.
        assert!(matches!(
            m.delete_manifest("app", &md, &ev()).await,
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
            matches!(
                m.unlink_blob("app", &layer, &ev()).await,
                Err(MetaError::BlobReferenced(_))
            ),
            "{}",
            db.label
        );
        assert!(m.delete_manifest("app", &idx, &ev()).await.unwrap());
        assert!(m.delete_manifest("app", &md, &ev()).await.unwrap());
        assert!(!m.delete_manifest("app", &md, &ev()).await.unwrap());
        assert!(
            m.list_tags("app", None, 10).await.unwrap().is_empty(),
            "{}: tags go with the manifest",
            db.label
        );
        assert!(m.unlink_blob("app", &layer, &ev()).await.unwrap());
    }
}

#[tokio::test]
async fn tags_and_catalog_page_in_bytewise_order() {
    for db in backends().await {
        let m = &db.meta;
        let md = d("m");
        m.put_manifest(manifest("r", &md, vec![], None), &ev()).await.unwrap();
        let tags = ["b", "a", "B", "_x", "a-1", "a.1", "A", "1"];
        for t in tags {
            m.put_manifest(manifest("r", &md, vec![], Some(t)), &ev())
                .await
                .unwrap();
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
        assert!(m.delete_tag("r", "a", &ev()).await.unwrap());
        assert!(!m.delete_tag("r", "a", &ev()).await.unwrap());
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
            m.put_manifest(nm, &ev()).await.unwrap();
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
        m.put_manifest(manifest("r", &tagged, vec![&kept], Some("v1")), &ev())
            .await
            .unwrap();
        m.put_manifest(manifest("r", &untagged, vec![], None), &ev())
            .await
            .unwrap();
        let mut r = manifest("r", &referrer, vec![], None);
        r.subject = Some(&tagged);
        m.put_manifest(r, &ev()).await.unwrap();

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
        assert!(m
            .collect_manifest("r", untagged.as_str(), future, Vec::new())
            .await
            .unwrap());
        assert!(
            !m.collect_manifest("r", tagged.as_str(), future, Vec::new())
                .await
                .unwrap(),
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
        m.create_upload("u1", "r", "alice").await.unwrap();
        assert_eq!(
            m.upload_session("u1").await.unwrap(),
            Some(("r".to_string(), Some("alice".to_string())))
        );
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

fn user(name: &str) -> Account {
    Account {
        name: name.into(),
        kind: "user".into(),
        password_hash: Some("$argon2id$x".into()),
        admin: false,
        owner: None,
        created_at: 0,
        password_changed_at: None,
    }
}

#[tokio::test]
async fn roles_come_from_direct_and_team_grants() {
    for db in backends().await {
        let m = &db.meta;
        for u in ["alice", "bob", "carol"] {
            m.create_account(&user(u), &ev()).await.unwrap();
        }
        assert!(matches!(
            m.create_account(&user("alice"), &ev()).await,
            Err(MetaError::Conflict(_))
        ));
        m.create_org("acme", "alice", false, &ev()).await.unwrap();
        assert!(m.is_member("acme", "owners", "alice").await.unwrap());
        m.create_team("acme", "ci", &ev()).await.unwrap();
        m.add_member("acme", "ci", "bob", &ev()).await.unwrap();
        assert!(matches!(
            m.add_member("acme", "ci", "nobody", &ev()).await,
            Err(MetaError::Missing(_))
        ));
        let grant = |id: &str, repo: Option<&str>, account: Option<&str>, team: bool, role: &str| Grant {
            id: id.into(),
            namespace: "acme".into(),
            repository: repo.map(str::to_string),
            account: account.map(str::to_string),
            team: team.then(|| ("acme".to_string(), "ci".to_string())),
            role: role.into(),
            created_at: 0,
        };
        m.create_grant(&grant("g1", None, None, true, "write"), &ev())
            .await
            .unwrap();
        m.create_grant(&grant("g2", Some("acme/app"), Some("carol"), false, "read"), &ev())
            .await
            .unwrap();
        let table = [
            ("bob", "acme/app", vec!["write"]),
            ("bob", "acme/other", vec!["write"]),
            ("carol", "acme/app", vec!["read"]),
            ("carol", "acme/other", vec![]),
            ("alice", "acme/app", vec![]),
        ];
        for (who, repo, want) in table {
            assert_eq!(
                m.granted_roles(who, "acme", repo).await.unwrap(),
                want,
                "{who} {repo} {}",
                db.label
            );
        }
        assert_eq!(m.grants("acme").await.unwrap().len(), 2);
        // Leaving the team takes the team's grant away.
        assert!(m.remove_member("acme", "ci", "bob", &ev()).await.unwrap());
        assert!(m.granted_roles("bob", "acme", "acme/app").await.unwrap().is_empty());
        // A grant needs the namespace's account.
        let mut orphan = grant("g3", None, Some("carol"), false, "read");
        orphan.namespace = "nobody".into();
        assert!(matches!(
            m.create_grant(&orphan, &ev()).await,
            Err(MetaError::Missing(_))
        ));
        // Deleting the organization deletes its teams and the grants on it.
        assert_eq!(m.delete_account("acme", &ev()).await.unwrap(), Some(vec![]));
        assert!(m.teams("acme").await.unwrap().is_empty());
        assert!(m.grants("acme").await.unwrap().is_empty(), "{}", db.label);
        assert_eq!(m.delete_account("acme", &ev()).await.unwrap(), None);
    }
}

/// A namespace that holds repositories can't be claimed by creating an
/// organization of its name (only an administrator may), and deleting an
/// account takes its repositories with it, so a later account of the same
/// name inherits nothing.
#[tokio::test]
async fn namespaces_with_repositories_cannot_be_claimed() {
    for db in backends().await {
        let m = &db.meta;
        for u in ["bob", "mallory"] {
            m.create_account(&user(u), &ev()).await.unwrap();
        }
        for repo in ["library/alpine", "bob/private", "bob/other", "bobby/app", "bob-x/app"] {
            m.set_visibility(repo, "private", &ev()).await.unwrap();
        }
        assert!(m.namespace_in_use("library").await.unwrap());
        assert!(!m.namespace_in_use("libr").await.unwrap());
        assert!(matches!(
            m.create_org("library", "mallory", false, &ev()).await,
            Err(MetaError::NamespaceInUse(_))
        ));
        assert!(m.account("library").await.unwrap().is_none(), "nothing half-made");
        m.create_org("fresh", "mallory", false, &ev()).await.unwrap();
        m.create_org("library", "bob", true, &ev()).await.unwrap();
        assert!(m.is_member("library", "owners", "bob").await.unwrap());

        let deleted = m.delete_account("bob", &ev()).await.unwrap();
        assert_eq!(
            deleted,
            Some(vec!["bob/other".to_string(), "bob/private".to_string()]),
            "{}",
            db.label
        );
        assert!(!m.repository_exists("bob/private").await.unwrap());
        assert!(m.repository_exists("bobby/app").await.unwrap(), "neighbours stay");
        assert!(m.repository_exists("bob-x/app").await.unwrap());
        // bob's name is free again, and claims nothing.
        m.create_org("bob", "mallory", false, &ev()).await.unwrap();
        assert!(!m.namespace_in_use("bob").await.unwrap());
    }
}

#[tokio::test]
async fn tokens_are_revocable_and_listed_without_secrets_changing() {
    for db in backends().await {
        let m = &db.meta;
        m.create_account(&user("ci"), &ev()).await.unwrap();
        let tk = StoredToken {
            id: "0123456789abcdef".into(),
            account: "ci".into(),
            name: "gitlab".into(),
            kind: "api".into(),
            secret_hash: "ab".repeat(32),
            scopes: "acme/*:pull,push".into(),
            created_at: 1,
            expires_at: Some(now_ms() + 60_000),
            last_used_at: None,
            revoked_at: None,
        };
        m.create_token(&tk, &ev()).await.unwrap();
        m.touch_token(&tk.id).await.unwrap();
        let got = m.token(&tk.id).await.unwrap().unwrap();
        assert!(got.last_used_at.is_some());
        assert_eq!(got.secret_hash, tk.secret_hash);
        assert!(m.revoke_token(&tk.id, &ev()).await.unwrap());
        assert!(!m.revoke_token(&tk.id, &ev()).await.unwrap(), "{}", db.label);
        assert!(m.token(&tk.id).await.unwrap().unwrap().revoked_at.is_some());
        assert_eq!(m.tokens("ci").await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn audit_chain_detects_edits_and_deletions() {
    for db in backends().await {
        // Concurrent writers must not fork the chain.
        let mut tasks = Vec::new();
        let meta = std::sync::Arc::new(db.meta);
        for i in 0..20 {
            let meta = meta.clone();
            tasks.push(tokio::spawn(async move {
                meta.audit(&[AuditEvent::ok(&format!("u{i}"), "pull").repository("acme/app")])
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let m2 = &*meta;
        m2.create_account(&user("dave"), &AuditEvent::ok("admin", "account.create"))
            .await
            .unwrap();
        assert_eq!(m2.verify_audit().await.unwrap(), (21, None), "{}", db.label);
        let q = AuditQuery {
            action: Some("pull".into()),
            limit: 5,
            ..AuditQuery::default()
        };
        let page = m2.audit_records(&q).await.unwrap();
        assert_eq!(page.len(), 5);
        let next = m2
            .audit_records(&AuditQuery {
                after_seq: Some(page[4].seq),
                limit: 100,
                ..q.clone()
            })
            .await
            .unwrap();
        assert_eq!(next.len(), 15);
        // Newest first, paged back by `before_seq`.
        let newest = m2
            .audit_records(&AuditQuery {
                before_seq: Some(i64::MAX),
                limit: 5,
                ..q.clone()
            })
            .await
            .unwrap();
        let seqs: Vec<i64> = newest.iter().map(|r| r.seq).collect();
        let mut all: Vec<i64> = page.iter().chain(&next).map(|r| r.seq).collect();
        all.reverse();
        assert_eq!(seqs, all[..5], "the five newest pulls, newest first");
        let older = m2
            .audit_records(&AuditQuery {
                before_seq: Some(seqs[4]),
                limit: 100,
                ..q.clone()
            })
            .await
            .unwrap();
        assert_eq!(older.iter().map(|r| r.seq).collect::<Vec<_>>(), all[5..]);

        // Editing a record's content breaks it at that record.
        let original: String = sqlx::query("SELECT actor FROM audit_log WHERE seq = 7")
            .fetch_one(&m2.pool)
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 7")
            .execute(&m2.pool)
            .await
            .unwrap();
        let (_, broken) = m2.verify_audit().await.unwrap();
        assert_eq!(broken.unwrap().seq, 7, "{}", db.label);
        sqlx::query("UPDATE audit_log SET actor = $1 WHERE seq = 7")
            .bind(&original)
            .execute(&m2.pool)
            .await
            .unwrap();
        assert_eq!(m2.verify_audit().await.unwrap(), (21, None), "restored");
        // Deleting a record in the middle.
        sqlx::query("DELETE FROM audit_log WHERE seq = 12")
            .execute(&m2.pool)
            .await
            .unwrap();
        let (_, broken) = m2.verify_audit().await.unwrap();
        assert_eq!(broken.unwrap().seq, 12, "{}", db.label);
        // Deleting the tail is caught by the head.
        sqlx::query("DELETE FROM audit_log WHERE seq >= 7")
            .execute(&m2.pool)
            .await
            .unwrap();
        let (read, broken) = m2.verify_audit().await.unwrap();
        assert_eq!(read, 6);
        assert_eq!(broken.unwrap().seq, 7);
    }
}

/// The scan queue's life cycle, as workers on several replicas see it.
#[tokio::test]
async fn scans_queue_claim_finish_and_rematch() {
    for db in backends().await {
        let m = &db.meta;
        let label = db.label;
        assert!(m.request_scan("sha256:a", false).await.unwrap(), "{label}");
        assert!(
            !m.request_scan("sha256:a", true).await.unwrap(),
            "{label}: already queued"
        );
        assert_eq!(m.queued_scans(10).await.unwrap(), ["sha256:a"]);
        assert!(m.start_scan("sha256:a").await.unwrap());
        assert!(!m.start_scan("sha256:a").await.unwrap(), "{label}: one claim only");
        // A restart puts an interrupted scan back in the queue.
        assert_eq!(m.requeue_interrupted_scans().await.unwrap(), (1, 0));
        assert!(m.start_scan("sha256:a").await.unwrap());
        let outcome = ScanOutcome {
            layers: "[\"sha256:l\"]",
            sbom: b"{}",
            findings: "[]",
            db_generation: Some(3),
            counts: [1, 2, 3, 4, 5],
            events: &|_| Vec::new(),
        };
        m.finish_scan("sha256:a", &outcome).await.unwrap();
        let r = m.scan("sha256:a").await.unwrap().unwrap();
        assert_eq!(
            (r.status.as_str(), r.counts, r.db_generation),
            ("done", [1, 2, 3, 4, 5], Some(3))
        );
        assert!(
            !m.request_scan("sha256:a", false).await.unwrap(),
            "{label}: a push of the same image"
        );
        m.update_findings(4, &[("sha256:a".into(), "[1]".into(), [0, 0, 0, 0, 1])])
            .await
            .unwrap();
        let r = m.scan("sha256:a").await.unwrap().unwrap();
        assert_eq!(
            (r.findings.as_deref(), r.db_generation, r.counts[4]),
            (Some("[1]"), Some(4), 1)
        );
        assert_eq!(
            m.finished_sboms("", 10).await.unwrap(),
            [("sha256:a".to_string(), b"{}".to_vec())]
        );
        assert_eq!(m.scan_sbom("sha256:a").await.unwrap().as_deref(), Some(&b"{}"[..]));
        assert!(m.finished_sboms("sha256:a", 10).await.unwrap().is_empty());
        assert!(m.request_scan("sha256:a", true).await.unwrap(), "{label}: scan now");
        m.start_scan("sha256:a").await.unwrap();
        m.fail_scan("sha256:a", "layer is not a tar", &|_| Vec::new())
            .await
            .unwrap();
        assert_eq!(
            m.scan("sha256:a").await.unwrap().unwrap().error.as_deref(),
            Some("layer is not a tar")
        );
        assert!(
            m.request_scan("sha256:a", false).await.unwrap(),
            "{label}: a failed scan is retried on push"
        );

        // An image whose scan kills the server is scanning at every restart:
        // after MAX_SCAN_ATTEMPTS it fails instead of being requeued, and a
        // push does not queue it again; "scan now" does.
        m.request_scan("sha256:bomb", false).await.unwrap();
        for attempt in 1..=MAX_SCAN_ATTEMPTS {
            assert!(m.start_scan("sha256:bomb").await.unwrap(), "{label}");
            let (requeued, failed) = m.requeue_interrupted_scans().await.unwrap();
            let last = attempt == MAX_SCAN_ATTEMPTS;
            assert_eq!(
                (requeued, failed),
                if last { (0, 1) } else { (1, 0) },
                "{label} {attempt}"
            );
        }
        let r = m.scan("sha256:bomb").await.unwrap().unwrap();
        assert_eq!((r.status.as_str(), r.attempts), ("failed", MAX_SCAN_ATTEMPTS));
        assert!(r.error.unwrap().contains("interrupted 3 times"));
        assert!(!m.request_scan("sha256:bomb", false).await.unwrap(), "{label}");
        assert!(m.request_scan("sha256:bomb", true).await.unwrap(), "{label}");
        assert_eq!(m.scan("sha256:bomb").await.unwrap().unwrap().attempts, 0);

        m.put_layer_facts("sha256:l", "{\"x\":1}").await.unwrap();
        m.put_layer_facts("sha256:l", "{\"x\":2}").await.unwrap();
        assert_eq!(m.layer_facts("sha256:l").await.unwrap().as_deref(), Some("{\"x\":2}"));
        assert_eq!(m.layer_facts_count().await.unwrap(), 1);

        assert!(m.scan_on_push("acme/app").await.unwrap(), "{label}: on by default");
        m.set_scan_on_push("acme/app", false, &ev()).await.unwrap();
        assert!(!m.scan_on_push("acme/app").await.unwrap());
    }
}

/// Database URLs appear in errors with their password masked.
#[tokio::test]
async fn urls_in_errors_hide_their_password() {
    let table = [
        (
            "postgres://app:s3cret@db.example:5432/reg",
            "postgres://app:***@db.example:5432/reg",
        ),
        ("postgres://app@db/reg", "postgres://app@db/reg"),
        ("sqlite:///srv/p.db", "sqlite:///srv/p.db"),
        ("mysql://u:pw@h/d", "mysql://u:***@h/d"),
    ];
    for (url, shown) in table {
        assert_eq!(redact_url(url), shown);
    }
    let e = Meta::connect("mysql://u:hunter22@h/d").await.err().unwrap().to_string();
    assert!(!e.contains("hunter22") && e.contains("***"), "{e}");
    // A URL the driver can't parse: its error must not echo the password.
    let e = Meta::connect("postgres://u:hunter22@db.example:notaport/d")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(!e.contains("hunter22"), "{e}");
}

/// Internal subjects can't be account names.
#[tokio::test]
async fn reserved_names_are_refused() {
    for db in backends().await {
        let m = &db.meta;
        m.create_account(&user("alice"), &ev()).await.unwrap();
        for name in crate::RESERVED_NAMES {
            assert!(matches!(
                m.create_account(&user(name), &ev()).await,
                Err(MetaError::Reserved(_))
            ));
            assert!(matches!(
                m.create_org(name, "alice", true, &ev()).await,
                Err(MetaError::Reserved(_))
            ));
        }
    }
}

/// DESIGN invariant 4: of many concurrent pushes of different manifests to
/// one new immutable tag exactly one wins; the tag then can't be moved or
/// deleted, nor its manifest deleted, nor its repository; the same manifest
/// may be pushed to it again; mutable tags beside it behave as before.
#[tokio::test]
async fn immutable_tags_hold_under_concurrent_pushes() {
    for db in backends().await {
        let m = &db.meta;
        let label = db.label;
        m.create_account(&user("acme"), &ev()).await.unwrap();
        m.set_repository_immutability("acme/build", Some(true), None, &ev())
            .await
            .unwrap();
        let digests: Vec<Digest> = (0..16).map(|i| d(&format!("manifest {i}"))).collect();
        let event = ev();
        let pushes = digests
            .iter()
            .map(|dg| m.put_manifest(manifest("acme/build", dg, vec![], Some("66")), &event));
        let results = futures_util::future::join_all(pushes).await;
        let won: Vec<usize> = (0..results.len()).filter(|i| results[*i].is_ok()).collect();
        assert_eq!(won.len(), 1, "{label}: {results:?}");
        for r in &results {
            if let Err(e) = r {
                assert!(matches!(e, MetaError::TagImmutable { .. }), "{label}: {e}");
                assert!(
                    e.to_string().contains("repository acme/build has immutable tags"),
                    "{e}"
                );
            }
        }
        let winner = &digests[won[0]];
        let stored = m
            .get_manifest("acme/build", &Reference::Tag("66".parse().unwrap()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.digest, winner.as_str(), "{label}");
        // Clients retry: the same manifest again is fine.
        m.put_manifest(manifest("acme/build", winner, vec![], Some("66")), &ev())
            .await
            .unwrap();
        assert!(matches!(
            m.delete_tag("acme/build", "66", &ev()).await,
            Err(MetaError::TagImmutable { .. })
        ));
        assert!(matches!(
            m.delete_manifest("acme/build", winner, &ev()).await,
            Err(MetaError::TagImmutable { .. })
        ));
        assert!(matches!(
            m.delete_repository("acme/build", &ev()).await,
            Err(MetaError::TagImmutable { .. })
        ));
        assert!(matches!(
            m.delete_account("acme", &ev()).await,
            Err(MetaError::TagImmutable { .. })
        ));
        // Garbage collection only takes untagged manifests: not this one.
        assert!(!m
            .collect_manifest("acme/build", winner.as_str(), now_ms() + 1_000, Vec::new())
            .await
            .unwrap());

        // Patterns on the namespace: v* immutable, latest movable.
        m.set_namespace_immutability("acme", &["v*".to_string()], &ev())
            .await
            .unwrap();
        assert_eq!(m.namespace_immutability("acme").await.unwrap(), ["v*"]);
        let (a, b) = (d("release a"), d("release b"));
        for tag in ["v1", "latest"] {
            m.put_manifest(manifest("acme/app", &a, vec![], Some(tag)), &ev())
                .await
                .unwrap();
        }
        let moved = m
            .put_manifest(manifest("acme/app", &b, vec![], Some("v1")), &ev())
            .await;
        assert!(
            matches!(&moved, Err(MetaError::TagImmutable { rule, .. }) if rule.contains("namespace acme")),
            "{label}: {moved:?}"
        );
        assert!(
            m.get_manifest("acme/app", &Reference::Digest(b.clone()))
                .await
                .unwrap()
                .is_none(),
            "nothing half-written"
        );
        m.put_manifest(manifest("acme/app", &b, vec![], Some("latest")), &ev())
            .await
            .unwrap();
        assert!(m.delete_tag("acme/app", "latest", &ev()).await.unwrap());
        // A namespace setting needs the namespace's account.
        assert!(matches!(
            m.set_namespace_immutability("nobody", &[], &ev()).await,
            Err(MetaError::Missing(_))
        ));
        // Turning the rule off frees the tag again.
        m.set_repository_immutability("acme/build", Some(false), None, &ev())
            .await
            .unwrap();
        assert!(m.delete_tag("acme/build", "66", &ev()).await.unwrap(), "{label}");
    }
}

/// A promotion copies links and manifests (an index with its images), tags
/// the target under its immutability rules, and records where the tag came
/// from; evaluations are kept, a repeated identical one once.
#[tokio::test]
async fn promotion_copies_links_and_records_provenance() {
    for db in backends().await {
        let m = &db.meta;
        let label = db.label;
        m.create_account(&user("acme"), &ev()).await.unwrap();
        let layer = add_blob(m, "acme/build", "layer").await;
        let img = d("image");
        m.put_manifest(manifest("acme/build", &img, vec![&layer], None), &ev())
            .await
            .unwrap();
        let idx = d("index");
        let mut index = manifest("acme/build", &idx, vec![], Some("66"));
        index.children = vec![&img];
        m.put_manifest(index, &ev()).await.unwrap();
        let copy = PromotionCopy {
            source_repository: "acme/build",
            source_tag: Some("66"),
            digest: idx.as_str(),
            target_repository: "acme/app",
            target_tag: "66",
            policy_id: "p1",
            copy_referrers: true,
        };
        assert!(m.promote(&copy, &ev()).await.unwrap());
        assert_eq!(m.blob_in_repo("acme/app", &layer).await.unwrap(), Some(5), "{label}");
        let got = m
            .get_manifest("acme/app", &Reference::Tag("66".parse().unwrap()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.digest, idx.as_str());
        assert!(m
            .get_manifest("acme/app", &Reference::Digest(img.clone()))
            .await
            .unwrap()
            .is_some());
        let p = m.provenance("acme/app", "66").await.unwrap().unwrap();
        assert_eq!(
            (
                p.source_repository.as_str(),
                p.source_tag.as_deref(),
                p.policy_id.as_str()
            ),
            ("acme/build", Some("66"), "p1")
        );
        // Again: nothing to do, nothing recorded. To an immutable tag
        // holding something else: refused.
        assert!(!m.promote(&copy, &ev()).await.unwrap(), "{label}");
        m.set_repository_immutability("acme/app", Some(true), None, &ev())
            .await
            .unwrap();
        let other = d("other image");
        m.put_manifest(manifest("acme/build", &other, vec![&layer], None), &ev())
            .await
            .unwrap();
        let refused = m
            .promote(
                &PromotionCopy {
                    digest: other.as_str(),
                    ..copy.clone()
                },
                &ev(),
            )
            .await;
        assert!(
            matches!(refused, Err(MetaError::TagImmutable { .. })),
            "{label}: {refused:?}"
        );
        assert!(
            m.get_manifest("acme/app", &Reference::Digest(other.clone()))
                .await
                .unwrap()
                .is_none(),
            "nothing half-copied"
        );

        let e = EvaluationRecord {
            id: "e1".into(),
            policy_id: "p1".into(),
            repository: "acme/build".into(),
            tag: Some("66".into()),
            digest: idx.to_string(),
            outcome: EvaluationOutcome::Failed,
            target_tag: None,
            detail: "[]".into(),
            at: 1,
        };
        assert!(m.record_evaluation(&e).await.unwrap());
        assert!(!m
            .record_evaluation(&EvaluationRecord {
                id: "e2".into(),
                at: 2,
                ..e.clone()
            })
            .await
            .unwrap());
        assert!(m
            .record_evaluation(&EvaluationRecord {
                id: "e3".into(),
                at: 3,
                outcome: EvaluationOutcome::Promoted,
                ..e.clone()
            })
            .await
            .unwrap());
        let all = m.evaluations(Some("p1"), None, 10).await.unwrap();
        assert_eq!(
            all.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            ["e3", "e1"],
            "{label}"
        );
        assert_eq!(m.evaluations(None, Some(idx.as_str()), 10).await.unwrap().len(), 2);
    }
}

fn hook(id: &str, repository: Option<&str>, namespace: Option<&str>, events: &[&str]) -> Webhook {
    Webhook {
        id: id.into(),
        repository: repository.map(str::to_string),
        namespace: namespace.map(str::to_string),
        url: "http://127.0.0.1:9/hook".into(),
        events: events.iter().map(|e| e.to_string()).collect(),
        secret: "s3cret".into(),
        headers: vec![("Authorization".into(), "Bearer x".into())],
        enabled: true,
        created_by: "acme".into(),
        created_at: 0,
        updated_at: 0,
    }
}

/// Events are written with their change and fanned out to the hooks that
/// want them; each hook gets its events one at a time in commit order; a
/// claimed delivery is nobody else's until its lease ends; attempts are
/// logged; a redelivery is a new series.
#[tokio::test]
async fn outbox_deliveries_in_order_with_exclusive_claims() {
    for db in backends().await {
        let m = &db.meta;
        let label = db.label;
        m.create_account(&user("acme"), &ev()).await.unwrap();
        m.create_webhook(&hook("h-repo", Some("acme/app"), None, &["TAG_PUSH"]), &ev())
            .await
            .unwrap();
        m.create_webhook(&hook("h-ns", None, Some("acme"), &["TAG_PUSH", "MANIFEST_PUSH"]), &ev())
            .await
            .unwrap();
        assert!(matches!(
            m.create_webhook(&hook("h-x", None, Some("nobody"), &["TAG_PUSH"]), &ev())
                .await,
            Err(MetaError::Missing(_))
        ));
        let event = |id: &str, kind: &str| OutboxEvent {
            id: id.into(),
            kind: kind.into(),
            repository: "acme/app".into(),
            payload: format!("{{\"id\":\"{id}\"}}"),
        };
        // Two pushes, each with its events, in the push's own transaction.
        for n in 1..=2 {
            let digest = d(&format!("m{n}"));
            let mut e = ev();
            e.outbox = vec![
                event(&format!("mp{n}"), "MANIFEST_PUSH"),
                event(&format!("tp{n}"), "TAG_PUSH"),
            ];
            m.put_manifest(manifest("acme/app", &digest, vec![], Some("t")), &e)
                .await
                .unwrap();
        }
        // One per hook at a time, oldest first.
        let first = m.claim_deliveries(60_000, 100).await.unwrap();
        let got: Vec<(&str, &str)> = first
            .iter()
            .map(|d| (d.hook_id.as_str(), d.event_id.as_str()))
            .collect();
        assert_eq!(got, [("h-ns", "mp1"), ("h-repo", "tp1")], "{label}");
        assert!(
            m.claim_deliveries(60_000, 100).await.unwrap().is_empty(),
            "{label}: claimed, and blocking their hooks"
        );
        assert_eq!(
            first[0].headers,
            [("Authorization".to_string(), "Bearer x".to_string())]
        );
        // The repo hook's receiver fails: retried later; the namespace's succeeds.
        let at = now_ms();
        let failed = Attempt {
            attempt: 1,
            at,
            status_code: Some(500),
            latency_ms: 3,
            error: None,
            response: Some("no".into()),
        };
        m.finish_attempt(&first[1].id, &failed, AfterAttempt::RetryAt(at + 60_000))
            .await
            .unwrap();
        let ok = Attempt {
            status_code: Some(200),
            ..failed.clone()
        };
        m.finish_attempt(&first[0].id, &ok, AfterAttempt::Delivered)
            .await
            .unwrap();
        let next = m.claim_deliveries(60_000, 100).await.unwrap();
        let got: Vec<&str> = next.iter().map(|d| d.event_id.as_str()).collect();
        assert_eq!(got, ["tp1"], "{label}: the ns hook's next, the repo hook still waits");
        let log = m.deliveries("h-repo", None, 10).await.unwrap();
        assert_eq!(log.len(), 2);
        let tp1 = log.iter().find(|l| l.event_id == "tp1").unwrap();
        assert_eq!((tp1.status.as_str(), tp1.attempts.len()), ("pending", 1), "{label}");
        assert_eq!(tp1.attempts[0].status_code, Some(500));
        let (backlog, _) = m.delivery_backlog().await.unwrap();
        assert_eq!(backlog, 5, "{label}");
        // Redelivering a finished one makes a new pending delivery.
        let again = m.redeliver(&first[0].id, &ev()).await.unwrap().unwrap();
        assert_ne!(again, first[0].id);
        assert_eq!(m.delivery_hook(&again).await.unwrap().as_deref(), Some("h-ns"));
        assert!(m.delete_webhook("h-repo", &ev()).await.unwrap());
        assert!(m.deliveries("h-repo", None, 10).await.unwrap().is_empty());
    }
}

/// What someone with write access to the database but without the audit
/// key can do: edit record 2 and recompute every hash and the head with
/// plain SHA-256.
async fn rewrite_without_key(meta: &Meta) {
    sqlx::query("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2")
        .execute(&meta.pool)
        .await
        .unwrap();
    let rows = sqlx::query(&format!("SELECT {} FROM audit_log ORDER BY seq", audit::COLUMNS))
        .fetch_all(&meta.pool)
        .await
        .unwrap();
    let mut prev = "0".repeat(64);
    for r in &rows {
        let rec = audit::record(r).unwrap();
        let hash = audit::ChainHasher::Plain.hash(&prev, rec.seq, rec.at, &rec.event);
        sqlx::query("UPDATE audit_log SET prev_hash = $1, hash = $2 WHERE seq = $3")
            .bind(&prev)
            .bind(&hash)
            .bind(rec.seq)
            .execute(&meta.pool)
            .await
            .unwrap();
        prev = hash;
    }
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&prev)
        .execute(&meta.pool)
        .await
        .unwrap();
}

/// A pull-audit batch spans several multi-row statements (40 rows each on
/// SQLite, 250 on PostgreSQL, and a remainder): every record lands in
/// order with its own fields, and the chain verifies.
#[tokio::test]
async fn a_batch_of_a_thousand_records_lands_whole_and_in_order() {
    for db in backends().await {
        let events: Vec<AuditEvent> = (0..1001)
            .map(|i| {
                AuditEvent::ok(&format!("u{i}"), "pull")
                    .repository("acme/app")
                    .digest(&format!("sha256:{i:064}"))
            })
            .collect();
        db.meta.audit(&events).await.unwrap();
        assert_eq!(db.meta.verify_audit().await.unwrap(), (1001, None), "{}", db.label);
        let q = AuditQuery {
            limit: 2000,
            ..AuditQuery::default()
        };
        let records = db.meta.audit_records(&q).await.unwrap();
        assert_eq!(records.len(), 1001, "{}", db.label);
        for (i, r) in records.iter().enumerate() {
            assert_eq!(
                (r.seq, &r.event.actor),
                (i as i64 + 1, &format!("u{i}")),
                "{}",
                db.label
            );
            assert_eq!(r.event.digest.as_deref(), Some(format!("sha256:{i:064}").as_str()));
        }
    }
}

#[tokio::test]
async fn a_keyed_chain_cannot_be_rewritten_without_its_key() {
    let events: Vec<AuditEvent> = ["a", "b", "c"].iter().map(|a| AuditEvent::ok(a, "pull")).collect();
    for db in backends().await {
        // Unkeyed, the rewrite goes unnoticed: why the chain needs a key.
        let plain = db.meta;
        plain.audit(&events).await.unwrap();
        let anchor = plain.audit_anchor().await.unwrap();
        assert_eq!(anchor.seq, 3);
        rewrite_without_key(&plain).await;
        assert_eq!(plain.verify_audit().await.unwrap(), (3, None), "{}", db.label);
        // The anchor still catches it: record 3's hash changed.
        let (_, broken) = plain.verify_audit_anchor(&anchor).await.unwrap();
        assert_eq!(broken.map(|b| b.seq), Some(3), "{}", db.label);
    }
    for db in backends().await {
        let mut meta = db.meta;
        assert_eq!(
            meta.audit_key_fits().await.unwrap(),
            None,
            "an empty trail fits any key"
        );
        meta.audit(&events).await.unwrap();
        // Keying moves the intact history under the key, once.
        let key = [7u8; 32];
        assert_eq!(meta.key_audit_trail(&key).await.unwrap(), Ok(3), "{}", db.label);
        assert_eq!(meta.audit_key_fits().await.unwrap(), Some(false), "still unkeyed here");
        meta.set_audit_key(&key);
        assert_eq!(meta.audit_key_fits().await.unwrap(), Some(true), "{}", db.label);
        meta.set_audit_key(&[6u8; 32]);
        assert_eq!(
            meta.audit_key_fits().await.unwrap(),
            Some(false),
            "another key never wrote it"
        );
        meta.set_audit_key(&key);
        meta.audit(&events[..1]).await.unwrap();
        assert_eq!(meta.verify_audit().await.unwrap(), (4, None), "{}", db.label);
        rewrite_without_key(&meta).await;
        let (_, broken) = meta.verify_audit().await.unwrap();
        let broken = broken.expect("caught");
        assert_eq!(broken.seq, 1, "{}", db.label);
        assert!(broken.reason.contains("under the audit key"), "{}", broken.reason);
        // Another key sees a broken chain too.
        meta.set_audit_key(&[8u8; 32]);
        assert!(meta.verify_audit().await.unwrap().1.is_some());
        // A chain already broken is not keyed (that would launder it).
        sqlx::query("UPDATE audit_log SET actor = 'edited' WHERE seq = 3")
            .execute(&meta.pool)
            .await
            .unwrap();
        let refused = meta.key_audit_trail(&[9u8; 32]).await.unwrap();
        assert_eq!(refused.map_err(|b| b.seq), Err(3), "{}", db.label);
    }
}

/// Record hashes cover the same bytes as when they were a `json!` array,
/// so chains written before keep verifying.
#[test]
fn record_hash_input_is_the_json_array_it_always_was() {
    let e = AuditEvent::ok("alice", "pull").repository("acme/app").detail("x\"y");
    let tuple = crate::audit::hash_input("prev", 7, 9, &e);
    let array = serde_json::to_vec(&serde_json::json!([
        "prev",
        7,
        9,
        e.actor,
        e.token_id,
        e.action,
        e.repository,
        e.digest,
        e.address,
        e.result,
        e.detail
    ]))
    .unwrap();
    assert_eq!(tuple, array);
    assert_eq!(
        audit::ChainHasher::Plain.hash("prev", 7, 9, &e),
        portcullis_oci::Digest::sha256_of(&array).hex()
    );
}

/// Two replicas' workers claim at the same moment, on two connections:
/// every scan and every delivery is claimed exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_claims_are_exclusive() {
    for db in backends().await {
        let m = &db.meta;
        let label = db.label;
        let digests: Vec<String> = (0..24).map(|i| format!("sha256:race{i}")).collect();
        for d in &digests {
            assert!(m.request_scan(d, false).await.unwrap());
        }
        for d in &digests {
            let (a, b) = tokio::join!(m.start_scan(d), m.start_scan(d));
            assert!(a.unwrap() ^ b.unwrap(), "{label}: {d} claimed by both or neither");
        }

        m.create_account(&user("acme"), &ev()).await.unwrap();
        for i in 0..12 {
            let h = hook(&format!("h{i}"), Some("acme/app"), None, &["TAG_PUSH"]);
            m.create_webhook(&h, &ev()).await.unwrap();
        }
        let digest = d("raced");
        let mut e = ev();
        e.outbox = vec![OutboxEvent {
            id: "tp".into(),
            kind: "TAG_PUSH".into(),
            repository: "acme/app".into(),
            payload: "{}".into(),
        }];
        m.put_manifest(manifest("acme/app", &digest, vec![], Some("t")), &e)
            .await
            .unwrap();
        let mut claimed: Vec<String> = Vec::new();
        for _ in 0..12 {
            let (a, b) = tokio::join!(m.claim_deliveries(60_000, 1), m.claim_deliveries(60_000, 1));
            claimed.extend(a.unwrap().into_iter().chain(b.unwrap()).map(|d| d.id));
        }
        let mut unique = claimed.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            claimed.len(),
            "{label}: a delivery claimed twice: {claimed:?}"
        );
        assert_eq!(claimed.len(), 12, "{label}: one delivery per hook, each claimed once");
    }
}

/// A pull rule saved before rules carried `saved_at` is stamped at the
/// next start, so item 5's "created after the rule was saved" holds for it.
#[tokio::test]
async fn rules_from_before_saved_at_are_stamped_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("meta.db").display());
    let m = Meta::connect(&url).await.unwrap();
    m.set_repository_pull_rule("acme/app", r#"{"require_signed_by":{"teams":["ci/gitlab"]}}"#, &ev())
        .await
        .unwrap();
    m.set_repository_pull_rule("acme/bad", "{not json", &ev())
        .await
        .unwrap();
    m.close().await;
    let before = now_ms();
    let m = Meta::connect(&url).await.unwrap();
    let (rule, _) = m.pull_rules("acme/app").await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&rule).unwrap();
    assert!(v["saved_at"].as_i64().unwrap() >= before, "{rule}");
    assert_eq!(v["require_signed_by"]["teams"][0], "ci/gitlab");
    let (bad, _) = m.pull_rules("acme/bad").await.unwrap();
    assert_eq!(bad, "{not json", "an unreadable rule is left to refuse everything");
}

/// Stored tag templates are rewritten once, when DTR's variables arrive,
/// so every existing policy yields the tags it yielded before.
#[tokio::test]
async fn stored_tag_templates_are_upgraded_once() {
    for mut db in backends().await {
        let label = db.label;
        db.meta.create_account(&user("acme"), &ev()).await.unwrap();
        let policy = |template: &str| {
            serde_json::json!({"target": "acme/release", "tag_template": template, "enabled": true, "rules": []})
                .to_string()
        };
        // A database from before: the migration (and those after it,
        // undone) not yet applied, an old template stored.
        sqlx::query("DELETE FROM schema_migrations WHERE version >= 14")
            .execute(&db.meta.pool)
            .await
            .unwrap();
        sqlx::query("ALTER TABLE audit_log DROP COLUMN via")
            .execute(&db.meta.pool)
            .await
            .unwrap();
        for table in [
            "proxy_images",
            "proxy_namespaces",
            "replication_push_queue",
            "replication_provenance",
            "replication_runs",
            "replication_rules",
            "upstream_registries",
            "registry_keys",
        ] {
            sqlx::query(&format!("DROP TABLE {table}"))
                .execute(&db.meta.pool)
                .await
                .unwrap();
        }
        sqlx::query(
            "INSERT INTO promotion_policies (id, repository, owner, policy, created_at, updated_at) VALUES ('p1', 'acme/build', 'acme', $1, 0, 0)",
        )
        .bind(policy("release-%d.%t"))
        .execute(&db.meta.pool)
        .await
        .unwrap();
        db.reopen().await;
        let stored = db.meta.policy("p1").await.unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_str(&stored.policy).unwrap();
        assert_eq!(v["tag_template"], "release-%Y%m%d.%H%M%S", "{label}");
        // Applied once: a template saved afterwards with today's %d is kept.
        sqlx::query("UPDATE promotion_policies SET policy = $1 WHERE id = 'p1'")
            .bind(policy("%n-%d"))
            .execute(&db.meta.pool)
            .await
            .unwrap();
        db.reopen().await;
        let v: serde_json::Value = serde_json::from_str(&db.meta.policy("p1").await.unwrap().unwrap().policy).unwrap();
        assert_eq!(v["tag_template"], "%n-%d", "{label}");
    }
}

/// `via` is covered by the record's hash when present, and records written
/// before it existed (no `via`) hash exactly as they did.
#[tokio::test]
async fn audit_via_is_chained_and_old_records_keep_their_hashes() {
    let old = AuditEvent::ok("dana", "token.create");
    assert_eq!(
        crate::audit::hash_input("00", 3, 7, &old),
        br#"["00",3,7,"dana",null,"token.create",null,null,null,"ok",null]"#.to_vec(),
        "the array records have always been hashed over"
    );
    let with_via = old.clone().via(Some("password"));
    assert_eq!(
        crate::audit::hash_input("00", 3, 7, &with_via),
        br#"["00",3,7,"dana",null,"token.create",null,null,null,"ok",null,"password"]"#.to_vec()
    );
    for db in backends().await {
        let m = &db.meta;
        m.audit(&[old.clone(), with_via.clone(), old.clone()]).await.unwrap();
        let trail = m
            .audit_records(&AuditQuery {
                limit: 10,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        let vias: Vec<Option<&str>> = trail.iter().map(|r| r.event.via.as_deref()).collect();
        assert_eq!(vias, [None, Some("password"), None], "{}", db.label);
        assert_eq!(m.verify_audit().await.unwrap(), (3, None), "{}", db.label);
        let seq = trail[1].seq;
        for forged in [Some("token"), None] {
            sqlx::query("UPDATE audit_log SET via = $1 WHERE seq = $2")
                .bind(forged)
                .bind(seq)
                .execute(&m.pool)
                .await
                .unwrap();
            let (_, broken) = m.verify_audit().await.unwrap();
            assert_eq!(broken.map(|b| b.seq), Some(seq), "{}: via {forged:?}", db.label);
        }
    }
}

/// A replication rule is claimed by one run at a time; a claim whose lease
/// ran out is taken over, and the run that held it is recorded as
/// interrupted; a finished run releases the rule and dates its last run.
#[tokio::test]
async fn replication_claims_are_exclusive_and_interrupted_runs_recorded() {
    for db in backends().await {
        let label = db.label;
        let m = &db.meta;
        let registry = UpstreamRegistry {
            name: "hub".into(),
            url: "https://registry.example".into(),
            sealed_password: Some("sealed".into()),
            tls_verify: true,
            created_by: "admin".into(),
            ..UpstreamRegistry::default()
        };
        m.create_upstream_registry(&registry, &ev()).await.unwrap();
        let rule = ReplicationRule {
            id: "r1".into(),
            name: "alpine".into(),
            registry: "hub".into(),
            direction: "pull".into(),
            source: "library/alpine".into(),
            tags: vec!["3.*".into()],
            target: "mirror".into(),
            interval_secs: 60,
            enabled: true,
            created_by: "admin".into(),
            ..ReplicationRule::default()
        };
        m.create_replication_rule(&rule, &ev()).await.unwrap();
        // Due at once (never run), and claimed by one run only.
        assert_eq!(m.due_replication_rules(1_000, 100).await.unwrap().len(), 1, "{label}");
        assert!(
            m.claim_replication_rule("r1", "run1", 1_000, 100).await.unwrap(),
            "{label}"
        );
        assert!(
            !m.claim_replication_rule("r1", "other", 1_050, 100).await.unwrap(),
            "{label}"
        );
        assert!(m.due_replication_rules(1_050, 100).await.unwrap().is_empty(), "{label}");
        let first = ReplicationRun {
            id: "run1".into(),
            rule_id: "r1".into(),
            cause: "manual".into(),
            started_at: 1_000,
            ..ReplicationRun::default()
        };
        m.start_replication_run(&first).await.unwrap();
        // The holder died: its lease runs out, another run takes over.
        assert!(
            m.claim_replication_rule("r1", "run2", 2_000, 100).await.unwrap(),
            "{label}"
        );
        let second = ReplicationRun {
            id: "run2".into(),
            started_at: 2_000,
            ..first.clone()
        };
        m.start_replication_run(&second).await.unwrap();
        // The first run, still going somewhere, can neither renew nor
        // release the rule: it must stop; the second renews it.
        assert!(
            !m.renew_replication_claim("r1", "run1", 2_010).await.unwrap(),
            "{label}"
        );
        m.release_replication_claim("r1", "run1").await.unwrap();
        assert!(m.renew_replication_claim("r1", "run2", 2_020).await.unwrap(), "{label}");
        assert!(
            !m.claim_replication_rule("r1", "run3", 2_050, 100).await.unwrap(),
            "{label}"
        );
        let runs = m.replication_runs("r1", 10).await.unwrap();
        assert_eq!(runs.len(), 2, "{label}");
        let old = runs.iter().find(|r| r.id == "run1").unwrap();
        assert_eq!(old.status, "failed", "{label}");
        assert!(old.error.as_deref().unwrap().starts_with("interrupted"), "{label}");
        let done = ReplicationRun {
            status: "completed".into(),
            copied: "[]".into(),
            skipped: "[]".into(),
            refused: "[]".into(),
            ..second
        };
        m.finish_replication_run(&done, &ev()).await.unwrap();
        let r = m.replication_rule("r1").await.unwrap().unwrap();
        assert!(r.running_since.is_none() && r.last_run_at.is_some(), "{label}");
        // A registry a rule uses cannot be deleted; the rule goes with its runs.
        assert!(m.delete_upstream_registry("hub", &ev()).await.is_err(), "{label}");
        assert!(m.delete_replication_rule("r1", &ev()).await.unwrap(), "{label}");
        assert!(m.replication_runs("r1", 10).await.unwrap().is_empty(), "{label}");
        assert!(m.delete_upstream_registry("hub", &ev()).await.unwrap(), "{label}");
    }
}

/// A `TAG_PUSH` or `PROMOTION` event queues a push for each enabled push
/// rule that selects its tag, in the event's own transaction; a newer
/// event for the same tag replaces the queued one, and a run that sent
/// the older digest does not remove it; a failure is retried later.
#[tokio::test]
async fn push_replication_is_queued_with_its_event() {
    for db in backends().await {
        let label = db.label;
        let m = &db.meta;
        let registry = UpstreamRegistry {
            name: "dr".into(),
            url: "https://dr.example".into(),
            tls_verify: true,
            created_by: "admin".into(),
            ..UpstreamRegistry::default()
        };
        m.create_upstream_registry(&registry, &ev()).await.unwrap();
        let rule = |id: &str, direction: &str, enabled: bool| ReplicationRule {
            id: id.into(),
            name: id.into(),
            registry: "dr".into(),
            direction: direction.into(),
            source: "acme/release".into(),
            tags: vec!["v*".into()],
            target: "site".into(),
            enabled,
            created_by: "admin".into(),
            ..ReplicationRule::default()
        };
        m.create_replication_rule(&rule("out", "push", true), &ev())
            .await
            .unwrap();
        m.create_replication_rule(&rule("off", "push", false), &ev())
            .await
            .unwrap();
        m.create_replication_rule(&rule("in", "pull", true), &ev())
            .await
            .unwrap();
        let event = |kind: &str, repo: &str, tag: &str, digest: &str| {
            let mut e = ev();
            e.outbox = vec![OutboxEvent {
                id: uuid::Uuid::new_v4().to_string(),
                kind: kind.into(),
                repository: repo.into(),
                payload: serde_json::json!({"tag": tag, "digest": digest}).to_string(),
            }];
            e
        };
        let append = |e: AuditEvent| async move {
            let mut tx = m.pool.begin().await.unwrap();
            crate::audit::append(&mut tx, &e, &m.chain).await.unwrap();
            tx.commit().await.unwrap();
        };
        append(event("PROMOTION", "acme/release", "v1", "sha256:1")).await;
        append(event("TAG_PUSH", "acme/release", "latest", "sha256:2")).await; // not a v* tag
        append(event("TAG_PUSH", "acme/other", "v1", "sha256:3")).await; // not the source
        append(event("MANIFEST_PUSH", "acme/release", "v9", "sha256:4")).await; // not a pushing event
        let queued = m.push_jobs("out", 10).await.unwrap();
        assert_eq!(queued.len(), 1, "{label}: {queued:?}");
        assert_eq!((queued[0].tag.as_str(), queued[0].digest.as_str()), ("v1", "sha256:1"));
        assert!(m.push_jobs("off", 10).await.unwrap().is_empty(), "{label}");
        assert!(m.push_jobs("in", 10).await.unwrap().is_empty(), "{label}");
        let now = now_ms();
        let due = m.rules_with_due_pushes(now, 1_000).await.unwrap();
        assert_eq!(
            due.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["out"],
            "{label}"
        );
        let claimed = m.claim_push_jobs("out", "c1", now, 10).await.unwrap();
        assert_eq!((claimed.len(), claimed[0].attempts), (1, 1), "{label}");
        // The tag moves while the run sends the old digest: the new event
        // survives the old one's completion.
        append(event("TAG_PUSH", "acme/release", "v1", "sha256:5")).await;
        m.push_job_done(&claimed[0]).await.unwrap();
        let queued = m.push_jobs("out", 10).await.unwrap();
        assert_eq!(queued.len(), 1, "{label}");
        assert_eq!(
            (queued[0].digest.as_str(), queued[0].attempts),
            ("sha256:5", 0),
            "{label}"
        );
        // A failure waits for its retry time; a success removes it.
        let claimed = m.claim_push_jobs("out", "c2", now_ms(), 10).await.unwrap();
        m.push_job_failed(&claimed[0], now_ms() + 60_000, "remote down")
            .await
            .unwrap();
        assert!(
            m.claim_push_jobs("out", "c3", now_ms(), 10).await.unwrap().is_empty(),
            "{label}"
        );
        assert!(
            m.rules_with_due_pushes(now_ms(), 1_000).await.unwrap().is_empty(),
            "{label}"
        );
        let later = m.claim_push_jobs("out", "c4", now_ms() + 61_000, 10).await.unwrap();
        assert_eq!(later[0].attempts, 2, "{label}");
        assert_eq!(later[0].last_error.as_deref(), Some("remote down"), "{label}");
        m.push_job_done(&later[0]).await.unwrap();
        assert!(m.push_jobs("out", 10).await.unwrap().is_empty(), "{label}");
        // Deleting the rule drops what it had queued.
        append(event("TAG_PUSH", "acme/release", "v2", "sha256:6")).await;
        assert!(m.delete_replication_rule("out", &ev()).await.unwrap(), "{label}");
        assert!(m.push_jobs("out", 10).await.unwrap().is_empty(), "{label}");
    }
}

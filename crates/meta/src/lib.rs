//! The metadata database: which repositories exist, which blobs each may
//! read, manifests and what they reference, tags, and upload sessions.
//!
//! One schema and one set of queries for SQLite (the embedded default) and
//! PostgreSQL (scale-out), through `sqlx::Any`. Every write transaction starts
//! with a write, so SQLite takes its write lock up front instead of failing
//! a lock upgrade under concurrency.

mod audit;
mod browse;
mod gc;
mod identity;
mod immutability;
mod keys;
mod migrations;
mod outbox;
mod promotion;
mod proxy;
mod replication;
mod rows;
mod scans;
mod sessions;
mod webhooks;

pub use audit::{AuditAnchor, AuditEvent, AuditQuery, AuditRecord, ChainBreak};
pub use browse::{DayFindings, RepositorySummary, TagDetail};
pub use identity::{Account, Grant, RepositoryInfo, StoredToken};
pub use immutability::{ImmutabilitySettings, RepositorySettingsChange};
pub use keys::{AccountKey, RegistryKey};
pub use outbox::OutboxEvent;
pub use promotion::{EvaluationOutcome, EvaluationRecord, PromotionCopy, Provenance, StoredPolicy};
pub use proxy::{CachedImage, ProxyNamespace};
pub use replication::{PushJob, ReplicationProvenance, ReplicationRule, ReplicationRun, UpstreamRegistry};
pub use rows::SeverityCounts;
pub use scans::{EventsFor, ScanOutcome, ScanRecord, ScanStatus, MAX_SCAN_ATTEMPTS};
pub use sessions::UiSession;
pub use webhooks::{AfterAttempt, Attempt, DeliveryLog, DueDelivery, Webhook};

use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

use portcullis_oci::{Digest, Reference};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum MetaError {
    #[error("blob {0} is not known in this repository")]
    BlobUnknown(String),
    #[error("manifest {0} is not known in this repository")]
    ManifestUnknown(String),
    #[error("manifest {digest} is listed by index {parent}; delete the index first")]
    ManifestReferenced { digest: String, parent: String },
    #[error("blob {0} is referenced by a manifest in this repository; delete the manifest first")]
    BlobReferenced(String),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    /// Opening the database failed; the message never holds the URL's password.
    #[error("connecting to {url}: {message}")]
    Connect { url: String, message: String },
    #[error("{0:?} is a reserved name")]
    Reserved(String),
    #[error("tag {tag} of {repo} is immutable ({rule})")]
    TagImmutable { repo: String, tag: String, rule: String },
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("publishing blob data failed: {0}")]
    Publish(std::io::Error),
    #[error("{0}: already exists")]
    Conflict(String),
    #[error("{0}: refers to an account, team or repository that does not exist")]
    Missing(String),
    #[error("namespace {0} holds repositories: only a system administrator may create an account of that name")]
    NamespaceInUse(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

pub type Result<T, E = MetaError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Names no account may take: subjects the server uses itself (`anonymous`
/// for callers without credentials; `system` and `portcullis`, the actors of
/// the registry's own audit records, so a record by one is never a person's).
pub const RESERVED_NAMES: &[&str] = &["anonymous", "system", "portcullis"];

/// The password in `scheme://user:password@host/…`, if any.
fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let userinfo = rest.split_once('@')?.0;
    if userinfo.contains('/') {
        return None;
    }
    Some(userinfo.split_once(':')?.1)
}

/// `url` with its password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match url_password(url) {
        Some(p) if !p.is_empty() => url.replacen(&format!(":{p}@"), ":***@", 1),
        _ => url.to_string(),
    }
}

/// Milliseconds since the Unix epoch; the unit of every timestamp column.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A manifest to store, with what it references already extracted.
pub struct NewManifest<'a> {
    pub repo: &'a str,
    pub digest: &'a Digest,
    pub media_type: &'a str,
    pub artifact_type: Option<&'a str>,
    pub subject: Option<&'a Digest>,
    pub annotations: Option<String>,
    pub content: &'a [u8],
    pub blobs: Vec<&'a Digest>,
    pub children: Vec<&'a Digest>,
    /// Tags to point at this manifest, in the same transaction.
    pub tags: Vec<&'a str>,
}

#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub digest: String,
    pub media_type: String,
    pub content: Vec<u8>,
}

/// One entry of the referrers API.
#[derive(Debug, Clone, PartialEq)]
pub struct Referrer {
    pub digest: String,
    pub media_type: String,
    pub size: i64,
    pub artifact_type: Option<String>,
    pub annotations: Option<String>,
}

pub struct Meta {
    pool: AnyPool,
    backend: Backend,
    /// How audit records are hashed: keyed (HMAC) once an audit key is set.
    chain: audit::ChainHasher,
}

impl Meta {
    /// Opens (creating if needed) the database at `url` and brings its schema up to date.
    pub async fn connect(url: &str) -> Result<Meta> {
        Self::connect_in_schema(url, None).await
    }

    /// As [`Meta::connect`], inside one PostgreSQL schema (created if missing),
    /// so tests and tenants can share a database without seeing each other's rows.
    /// Errors name the URL with its password masked.
    pub async fn connect_in_schema(url: &str, schema: Option<&str>) -> Result<Meta> {
        let redacted = redact_url(url);
        let password = url_password(url);
        Self::open(url, schema).await.map_err(|e| match e {
            MetaError::UnsupportedUrl(_) => MetaError::UnsupportedUrl(redacted.clone()),
            other => {
                let mut message = other.to_string();
                if let Some(p) = password.filter(|p| !p.is_empty()) {
                    message = message.replace(p, "***");
                }
                MetaError::Connect {
                    url: redacted.clone(),
                    message,
                }
            }
        })
    }

    async fn open(url: &str, schema: Option<&str>) -> Result<Meta> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(MetaError::UnsupportedUrl(url.to_string()));
        };
        let search_path = schema.map(|s| format!("SET search_path TO \"{}\"", s.replace('"', "")));
        if let Some(sql) = &search_path {
            let admin = AnyPoolOptions::new().max_connections(1).connect(url).await?;
            let create = sql.replace("SET search_path TO", "CREATE SCHEMA IF NOT EXISTS");
            admin.execute(create.as_str()).await?;
            admin.close().await;
        }
        let options = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            .after_connect(move |conn, _| {
                let search_path = search_path.clone();
                Box::pin(async move {
                    match backend {
                        Backend::Sqlite => {
                            // WAL lets readers run beside the one writer; FULL sync makes
                            // an acknowledged commit survive power loss, not just a crash.
                            // The timeout first: switching to WAL takes a lock
                            // that another process may hold.
                            conn.execute("PRAGMA busy_timeout = 30000").await?;
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = FULL").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                        }
                        Backend::Postgres => {
                            if let Some(sql) = &search_path {
                                conn.execute(sql.as_str()).await?;
                            }
                        }
                    }
                    Ok(())
                })
            });
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { "&" } else { "?" })
            }
            _ => url.to_string(),
        };
        let pool = options.connect(&url).await?;
        let meta = Meta {
            pool,
            backend,
            chain: audit::ChainHasher::Plain,
        };
        meta.migrate().await?;
        Ok(meta)
    }

    async fn migrate(&self) -> Result<()> {
        // SQLite: the write lock at BEGIN, waiting out a live server's
        // writes; a deferred transaction that read the schema first could
        // fail to upgrade at once ("database is locked", no wait).
        let mut tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        if self.backend == Backend::Postgres {
            // Replicas starting together must not apply a migration twice.
            tx.execute("SELECT pg_advisory_xact_lock(7401)").await?;
        }
        tx.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .await?;
        // A write before any read, so SQLite takes its write lock now: a
        // transaction that reads first can fail to upgrade when another
        // process writes (the rules stamped below are read, then written).
        tx.execute("UPDATE schema_migrations SET applied_at = applied_at WHERE version < 0")
            .await?;
        let applied: i64 = sqlx::query("SELECT COUNT(*) FROM schema_migrations")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        for (i, migration) in migrations::MIGRATIONS.iter().enumerate().skip(applied as usize) {
            let sql = self.dialect(migration);
            for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                tx.execute(statement).await?;
            }
            if i + 1 == migrations::TEMPLATES_UPGRADED {
                upgrade_tag_templates(&mut tx).await?;
            }
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(i as i64 + 1)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
        }
        stamp_pull_rules(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    fn dialect(&self, sql: &str) -> String {
        let (text_c, bytes) = match self.backend {
            Backend::Sqlite => ("TEXT", "BLOB"),
            Backend::Postgres => ("TEXT COLLATE \"C\"", "BYTEA"),
        };
        sql.replace("{text_c}", text_c).replace("{bytes}", bytes)
    }

    pub async fn ping(&self) -> Result<()> {
        self.pool.execute("SELECT 1").await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await
    }

    // ---- repositories -------------------------------------------------

    pub async fn repository_exists(&self, repo: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM repositories WHERE name = $1")
            .bind(repo)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// One page of repository names after `last`, in bytewise order.
    pub async fn catalog(&self, last: Option<&str>, n: i64) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2")
            .bind(last.unwrap_or(""))
            .bind(n)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    // ---- blobs --------------------------------------------------------

    /// The size of a blob if it is linked to `repo` (DESIGN invariant 3).
    pub async fn blob_in_repo(&self, repo: &str, digest: &Digest) -> Result<Option<u64>> {
        let row = sqlx::query(
            "SELECT b.size FROM repo_blobs l JOIN blobs b ON b.digest = l.digest WHERE l.repo = $1 AND l.digest = $2",
        )
        .bind(repo)
        .bind(digest.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get::<i64, _>(0)).transpose()?.map(|s| s as u64))
    }

    /// Records a newly received blob and links it to `repo`. `publish` moves
    /// the bytes into place; it runs inside the transaction, after the blob
    /// row is locked, so the row commits only once the file is there and a
    /// concurrent garbage collection cannot delete the file under it.
    pub async fn insert_blob<F, Fut>(&self, repo: &str, digest: &Digest, size: u64, publish: F) -> Result<()>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::io::Result<()>>,
    {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO blobs (digest, size, written_at) VALUES ($1, $2, $3)
             ON CONFLICT (digest) DO UPDATE SET written_at = excluded.written_at",
        )
        .bind(digest.as_str())
        .bind(size as i64)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        publish().await.map_err(MetaError::Publish)?;
        ensure_repo(&mut tx, repo, now).await?;
        link(&mut tx, repo, digest.as_str(), now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Cross-repository mount: links an already stored blob into `repo` if
    /// `from` can read it. Returns its size, or `None` when it is not mountable.
    /// Up to `limit` repositories that hold `digest`, by name.
    pub async fn repositories_with_blob(&self, digest: &Digest, limit: i64) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT repo FROM repo_blobs WHERE digest = $1 ORDER BY repo LIMIT $2")
            .bind(digest.as_str())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    pub async fn mount_blob(&self, repo: &str, from: &str, digest: &Digest) -> Result<Option<u64>> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        ensure_repo(&mut tx, repo, now).await?;
        let row = sqlx::query(
            "SELECT b.size FROM repo_blobs l JOIN blobs b ON b.digest = l.digest WHERE l.repo = $1 AND l.digest = $2",
        )
        .bind(from)
        .bind(digest.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let size: i64 = row.try_get(0)?;
        match link(&mut tx, repo, digest.as_str(), now).await {
            Ok(()) => {}
            // The blob was collected between our read and our write.
            Err(MetaError::Db(e)) if is_fk_violation(&e) => return Ok(None),
            Err(e) => return Err(e),
        }
        tx.commit().await?;
        Ok(Some(size as u64))
    }

    /// Removes a blob from `repo`. The bytes stay while another repository
    /// links them; garbage collection removes them after that.
    pub async fn unlink_blob(&self, repo: &str, digest: &Digest, event: &AuditEvent) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let res = sqlx::query("DELETE FROM repo_blobs WHERE repo = $1 AND digest = $2")
            .bind(repo)
            .bind(digest.as_str())
            .execute(&mut *tx)
            .await;
        let deleted = match res {
            Ok(r) => r.rows_affected() > 0,
            Err(e) if is_fk_violation(&e) => return Err(MetaError::BlobReferenced(digest.to_string())),
            Err(e) => return Err(e.into()),
        };
        if deleted {
            audit::append(&mut tx, event, &self.chain).await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    // ---- uploads ------------------------------------------------------

    /// Records an upload session of `repo` opened by the account `owner`.
    pub async fn create_upload(&self, id: &str, repo: &str, owner: &str) -> Result<()> {
        let now = now_ms();
        sqlx::query("INSERT INTO uploads (id, repo, started_at, updated_at, owner) VALUES ($1, $2, $3, $3, $4)")
            .bind(id)
            .bind(repo)
            .bind(now)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The repository an upload session belongs to, and who opened it
    /// (`None` for sessions opened before sessions had owners).
    pub async fn upload_session(&self, id: &str) -> Result<Option<(String, Option<String>)>> {
        let row = sqlx::query("SELECT repo, owner FROM uploads WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    pub async fn touch_upload(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE uploads SET updated_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_upload(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM uploads WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- manifests and tags -------------------------------------------

    /// Stores a manifest (and moves its tags) in one transaction; refused
    /// unless every blob and child manifest it names is in the repository.
    pub async fn put_manifest(&self, m: NewManifest<'_>, event: &AuditEvent) -> Result<()> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        ensure_repo(&mut tx, m.repo, now).await?;
        sqlx::query(
            "INSERT INTO manifests (repo, digest, media_type, artifact_type, subject, annotations, size, content, pushed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (repo, digest) DO UPDATE SET pushed_at = excluded.pushed_at",
        )
        .bind(m.repo)
        .bind(m.digest.as_str())
        .bind(m.media_type)
        .bind(m.artifact_type)
        .bind(m.subject.map(|s| s.as_str()))
        .bind(m.annotations.as_deref())
        .bind(m.content.len() as i64)
        .bind(m.content)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // The references' foreign keys are the check: a blob not linked to the
        // repository, or a child manifest not in it, fails the insert, also
        // when garbage collection removes it concurrently.
        let blobs = "INSERT INTO manifest_blobs (repo, manifest, digest) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
        insert_references(&mut tx, blobs, m.repo, m.digest, &m.blobs, MetaError::BlobUnknown).await?;
        let children = "INSERT INTO manifest_children (repo, parent, child) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
        insert_references(
            &mut tx,
            children,
            m.repo,
            m.digest,
            &m.children,
            MetaError::ManifestUnknown,
        )
        .await?;
        let rules = if m.tags.is_empty() {
            Default::default()
        } else {
            immutability::rules(&mut tx, m.repo).await?
        };
        for tag in &m.tags {
            let (digest, by) = (m.digest.as_str(), event.actor.as_str());
            if !immutability::grow_cosign_tag(&mut tx, &rules, &m, tag, now, by).await? {
                immutability::write_tag(&mut tx, &rules, m.repo, tag, digest, now, by).await?;
            }
        }
        audit::append(&mut tx, event, &self.chain).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_manifest(&self, repo: &str, reference: &Reference) -> Result<Option<StoredManifest>> {
        let row = match reference {
            Reference::Tag(tag) => {
                sqlx::query(
                    "SELECT m.digest, m.media_type, m.content FROM tags t
                     JOIN manifests m ON m.repo = t.repo AND m.digest = t.digest
                     WHERE t.repo = $1 AND t.name = $2",
                )
                .bind(repo)
                .bind(tag.as_str())
                .fetch_optional(&self.pool)
                .await?
            }
            Reference::Digest(d) => {
                sqlx::query("SELECT digest, media_type, content FROM manifests WHERE repo = $1 AND digest = $2")
                    .bind(repo)
                    .bind(d.as_str())
                    .fetch_optional(&self.pool)
                    .await?
            }
        };
        row.map(|r: AnyRow| {
            Ok(StoredManifest {
                digest: r.try_get(0)?,
                media_type: r.try_get(1)?,
                content: r.try_get(2)?,
            })
        })
        .transpose()
    }

    /// Deletes a manifest and every tag that points at it. Refused while an
    /// index in the repository lists it, so no index is left incomplete.
    pub async fn delete_manifest(&self, repo: &str, digest: &Digest, event: &AuditEvent) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        immutability::lock(&mut tx, repo).await?;
        let rules = immutability::rules(&mut tx, repo).await?;
        if !rules.is_empty() {
            let tags = immutability::tags_of(&mut tx, repo, Some(digest.as_str())).await?;
            immutability::refuse_any(&rules, repo, &tags)?;
        }
        sqlx::query("DELETE FROM tags WHERE repo = $1 AND digest = $2")
            .bind(repo)
            .bind(digest.as_str())
            .execute(&mut *tx)
            .await?;
        let parent = sqlx::query("SELECT parent FROM manifest_children WHERE repo = $1 AND child = $2 LIMIT 1")
            .bind(repo)
            .bind(digest.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(p) = parent {
            return Err(MetaError::ManifestReferenced {
                digest: digest.to_string(),
                parent: p.try_get(0)?,
            });
        }
        let res = sqlx::query("DELETE FROM manifests WHERE repo = $1 AND digest = $2")
            .bind(repo)
            .bind(digest.as_str())
            .execute(&mut *tx)
            .await;
        let deleted = match res {
            Ok(r) => r.rows_affected() > 0,
            Err(e) if is_fk_violation(&e) => {
                return Err(MetaError::ManifestReferenced {
                    digest: digest.to_string(),
                    parent: "(concurrent)".into(),
                })
            }
            Err(e) => return Err(e.into()),
        };
        if deleted {
            audit::append(&mut tx, event, &self.chain).await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    pub async fn delete_tag(&self, repo: &str, tag: &str, event: &AuditEvent) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        immutability::lock(&mut tx, repo).await?;
        let rules = immutability::rules(&mut tx, repo).await?;
        if rules.rule_for(tag).is_some() {
            let tags = immutability::tags_of(&mut tx, repo, None).await?;
            if tags.iter().any(|t| t == tag) {
                immutability::refuse_any(&rules, repo, &[tag.to_string()])?;
            }
        }
        let r = sqlx::query("DELETE FROM tags WHERE repo = $1 AND name = $2")
            .bind(repo)
            .bind(tag)
            .execute(&mut *tx)
            .await?;
        let deleted = r.rows_affected() > 0;
        if deleted {
            audit::append(&mut tx, event, &self.chain).await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    /// One page of tags after `last`, in bytewise order, by index range scan.
    pub async fn list_tags(&self, repo: &str, last: Option<&str>, n: i64) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT name FROM tags WHERE repo = $1 AND name > $2 ORDER BY name LIMIT $3")
            .bind(repo)
            .bind(last.unwrap_or(""))
            .bind(n)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Manifests in `repo` whose `subject` is `digest`, optionally of one artifact type.
    pub async fn referrers(&self, repo: &str, digest: &Digest, artifact_type: Option<&str>) -> Result<Vec<Referrer>> {
        let rows = sqlx::query(
            "SELECT digest, media_type, size, artifact_type, annotations FROM manifests
             WHERE repo = $1 AND subject = $2 AND ($3 IS NULL OR artifact_type = $3) ORDER BY digest",
        )
        .bind(repo)
        .bind(digest.as_str())
        .bind(artifact_type)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Referrer {
                    digest: r.try_get(0)?,
                    media_type: r.try_get(1)?,
                    size: r.try_get(2)?,
                    artifact_type: r.try_get(3)?,
                    annotations: r.try_get(4)?,
                })
            })
            .collect()
    }
}

/// Every stored policy's tag template, rewritten for DTR's variables so
/// that it yields the same tags as before (`policy::upgrade_template`). A
/// policy that does not parse is left as it is (it is logged when it runs).
async fn upgrade_tag_templates(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
    rewrite_json_objects(tx, "promotion_policies", "id", "policy", "policy <> ''", |fields| {
        let Some(old) = fields.get("tag_template").and_then(|t| t.as_str()) else {
            return false;
        };
        let new = portcullis_policy::upgrade_template(old);
        let changed = new != old;
        fields.insert("tag_template".into(), new.into());
        changed
    })
    .await
}

/// Pull rules saved before rules carried `saved_at` get the time of this
/// start: a signer created later is then a new holder of a deleted name
/// and is not trusted (`server/src/pull.rs`). A rule that does not parse is
/// left as it is: it refuses every pull until it is saved again.
async fn stamp_pull_rules(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
    let now = now_ms();
    let unstamped = "pull_rule <> '' AND pull_rule NOT LIKE '%\"saved_at\"%'";
    for (table, key) in [("repositories", "name"), ("namespace_settings", "namespace")] {
        rewrite_json_objects(tx, table, key, "pull_rule", unstamped, |fields| {
            fields.insert("saved_at".into(), now.into());
            true
        })
        .await?;
    }
    Ok(())
}

/// Rewrites, in `tx`, the JSON object stored in `column` of each row of
/// `table` that `filter` (SQL) selects, keyed by `key`: `edit` changes it
/// in place and says whether it did. A value that is not a JSON object is
/// left as it is.
async fn rewrite_json_objects(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    table: &str,
    key: &str,
    column: &str,
    filter: &str,
    edit: impl Fn(&mut serde_json::Map<String, serde_json::Value>) -> bool,
) -> Result<()> {
    let rows = sqlx::query(&format!("SELECT {key}, {column} FROM {table} WHERE {filter}"))
        .fetch_all(&mut **tx)
        .await?;
    for r in rows {
        let (id, json): (String, String) = (r.try_get(0)?, r.try_get(1)?);
        let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_str(&json) else {
            continue;
        };
        if edit(&mut fields) {
            sqlx::query(&format!("UPDATE {table} SET {column} = $1 WHERE {key} = $2"))
                .bind(serde_json::Value::Object(fields).to_string())
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

async fn ensure_repo(tx: &mut sqlx::Transaction<'_, sqlx::Any>, repo: &str, now: i64) -> Result<()> {
    sqlx::query("INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(repo)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Records what a manifest references; a foreign-key miss becomes `missing(digest)`.
async fn insert_references(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    sql: &str,
    repo: &str,
    manifest: &Digest,
    references: &[&Digest],
    missing: fn(String) -> MetaError,
) -> Result<()> {
    for r in references {
        let res = sqlx::query(sql)
            .bind(repo)
            .bind(manifest.as_str())
            .bind(r.as_str())
            .execute(&mut **tx)
            .await;
        match res {
            Err(e) if is_fk_violation(&e) => return Err(missing(r.to_string())),
            r => r?,
        };
    }
    Ok(())
}

async fn link(tx: &mut sqlx::Transaction<'_, sqlx::Any>, repo: &str, digest: &str, now: i64) -> Result<()> {
    // Re-linking refreshes `linked_at`: a blob pushed again starts a new grace period.
    sqlx::query(
        "INSERT INTO repo_blobs (repo, digest, linked_at) VALUES ($1, $2, $3)
         ON CONFLICT (repo, digest) DO UPDATE SET linked_at = excluded.linked_at",
    )
    .bind(repo)
    .bind(digest)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn is_fk_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.is_foreign_key_violation() || d.code().is_some_and(|c| c == "23503" || c == "787")
        }
        _ => false,
    }
}

/// A batch that lost to concurrent writers: a foreign key a push just
/// made use of, or PostgreSQL's deadlock detector choosing it.
fn is_lost_race(e: &sqlx::Error) -> bool {
    is_fk_violation(e)
        || matches!(e, sqlx::Error::Database(d) if d.code().is_some_and(|c| c == "40P01" || c == "40001"))
}

#[cfg(test)]
mod tests;

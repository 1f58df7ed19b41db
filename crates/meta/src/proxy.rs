//! Pull-through caches: which namespaces proxy an upstream registry, and
//! the images each has stored, for its size limit.

use sqlx::Row;

use crate::audit::append;
use crate::rows::{t, Value};
use crate::{is_fk_violation, now_ms, AuditEvent, Meta, MetaError, Result};

/// A namespace that serves an upstream registry's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyNamespace {
    pub namespace: String,
    /// The upstream registry's name (`upstream_registries`).
    pub registry: String,
    /// The namespace on the upstream (`library`); empty: its top level.
    pub upstream_namespace: String,
    /// How long a tag's upstream digest is believed before it is asked again.
    pub ttl_secs: i64,
    /// The bytes the cached images may declare together; 0: no limit.
    pub max_bytes: i64,
    /// Anonymous callers may pull (and so fill the cache).
    pub public: bool,
}

/// An image the cache stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedImage {
    pub repo: String,
    pub digest: String,
    pub bytes: i64,
    pub pulled_at: i64,
}

const PROXY_COLUMNS: &str = "namespace, registry, upstream_namespace, ttl_secs, max_bytes, public";

fn proxy_row(r: &sqlx::any::AnyRow) -> Result<ProxyNamespace> {
    Ok(ProxyNamespace {
        namespace: r.try_get(0)?,
        registry: r.try_get(1)?,
        upstream_namespace: r.try_get(2)?,
        ttl_secs: r.try_get(3)?,
        max_bytes: r.try_get(4)?,
        public: r.try_get::<i64, _>(5)? != 0,
    })
}

impl Meta {
    /// Makes `p.namespace` a proxy (or changes its settings). The registry
    /// and the namespace's account must exist ([`MetaError::Missing`]).
    pub async fn set_proxy_namespace(&self, p: &ProxyNamespace, event: &AuditEvent) -> Result<()> {
        let sql = format!(
            "INSERT INTO proxy_namespaces ({PROXY_COLUMNS}, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (namespace) DO UPDATE SET registry = excluded.registry,
               upstream_namespace = excluded.upstream_namespace, ttl_secs = excluded.ttl_secs,
               max_bytes = excluded.max_bytes, public = excluded.public, updated_at = excluded.updated_at"
        );
        let values = vec![
            t(&p.namespace),
            t(&p.registry),
            t(&p.upstream_namespace),
            Value::Int(Some(p.ttl_secs)),
            Value::Int(Some(p.max_bytes)),
            Value::Int(Some(i64::from(p.public))),
            Value::Int(Some(now_ms())),
        ];
        self.write(&[(sql.as_str(), values)], event).await.map(|_| ())
    }

    /// Makes `namespace` an ordinary namespace again (what it cached stays,
    /// as ordinary images). Whether it was a proxy.
    pub async fn clear_proxy_namespace(&self, namespace: &str, event: &AuditEvent) -> Result<bool> {
        let sql = "DELETE FROM proxy_namespaces WHERE namespace = $1";
        self.write_if_changed(&[(sql, vec![t(namespace)])], event).await
    }

    pub async fn proxy_namespace(&self, namespace: &str) -> Result<Option<ProxyNamespace>> {
        let row = sqlx::query(&format!(
            "SELECT {PROXY_COLUMNS} FROM proxy_namespaces WHERE namespace = $1"
        ))
        .bind(namespace)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(proxy_row).transpose()
    }

    /// The namespaces that proxy `registry` (a registry in use can't go).
    pub async fn proxies_of_registry(&self, registry: &str) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT namespace FROM proxy_namespaces WHERE registry = $1 ORDER BY namespace")
            .bind(registry)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Lists an image the cache stored (a manifest of `repo`), with the
    /// bytes its blobs declare. Audited with the import by the caller's
    /// manifest commit; this row is bookkeeping only.
    pub async fn record_cached_image(&self, repo: &str, digest: &str, bytes: i64) -> Result<()> {
        let now = now_ms();
        let r = sqlx::query(
            "INSERT INTO proxy_images (repo, digest, namespace, bytes, cached_at, pulled_at)
             VALUES ($1, $2, $3, $4, $5, $5)
             ON CONFLICT (repo, digest) DO UPDATE SET pulled_at = excluded.pulled_at",
        )
        .bind(repo)
        .bind(digest)
        .bind(crate::rows::namespace_of(repo))
        .bind(bytes)
        .bind(now)
        .execute(&self.pool)
        .await;
        match r {
            // The manifest went meanwhile (evicted, deleted): nothing to list.
            Err(e) if is_fk_violation(&e) => Ok(()),
            other => other.map(|_| ()).map_err(MetaError::from),
        }
    }

    /// Marks a cached image pulled now; whether the cache lists it.
    pub async fn touch_cached_image(&self, repo: &str, digest: &str) -> Result<bool> {
        let r = sqlx::query("UPDATE proxy_images SET pulled_at = $1 WHERE repo = $2 AND digest = $3")
            .bind(now_ms())
            .bind(repo)
            .bind(digest)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// The bytes a namespace's cached images declare together.
    pub async fn proxy_usage(&self, namespace: &str) -> Result<i64> {
        // PostgreSQL sums BIGINTs as NUMERIC: cast back.
        let used: i64 =
            sqlx::query_scalar("SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM proxy_images WHERE namespace = $1")
                .bind(namespace)
                .fetch_one(&self.pool)
                .await?;
        Ok(used)
    }

    /// A namespace's cached images, least recently pulled first.
    pub async fn cached_images_by_pull(&self, namespace: &str, limit: i64) -> Result<Vec<CachedImage>> {
        let rows = sqlx::query(
            "SELECT repo, digest, bytes, pulled_at FROM proxy_images WHERE namespace = $1
             ORDER BY pulled_at, repo, digest LIMIT $2",
        )
        .bind(namespace)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CachedImage {
                    repo: r.try_get(0)?,
                    digest: r.try_get(1)?,
                    bytes: r.try_get(2)?,
                    pulled_at: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Evicts a cached image: its tags and manifest, then (for an index)
    /// each child no other manifest of the repository references, with
    /// one audit record, in one transaction. Its blobs become unreferenced
    /// links, which garbage collection reclaims. Whether it was there.
    pub async fn evict_cached_image(&self, repo: &str, digest: &str, event: &AuditEvent) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        // Immutable tags are kept, cache or not: such an image is not evicted.
        crate::immutability::lock(&mut tx, repo).await?;
        let rules = crate::immutability::rules(&mut tx, repo).await?;
        if !rules.is_empty() {
            let tags = crate::immutability::tags_of(&mut tx, repo, Some(digest)).await?;
            if crate::immutability::refuse_any(&rules, repo, &tags).is_err() {
                return Ok(false);
            }
        }
        let children: Vec<String> =
            sqlx::query_scalar("SELECT child FROM manifest_children WHERE repo = $1 AND parent = $2")
                .bind(repo)
                .bind(digest)
                .fetch_all(&mut *tx)
                .await?;
        sqlx::query("DELETE FROM tags WHERE repo = $1 AND digest = $2")
            .bind(repo)
            .bind(digest)
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query("DELETE FROM manifests WHERE repo = $1 AND digest = $2")
            .bind(repo)
            .bind(digest)
            .execute(&mut *tx)
            .await;
        let deleted = match deleted {
            Ok(r) => r.rows_affected() > 0,
            // Another manifest (an index) references it: kept.
            Err(e) if is_fk_violation(&e) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        if !deleted {
            return Ok(false);
        }
        for child in children {
            // A child still referenced, or tagged, stays.
            sqlx::query(
                "DELETE FROM manifests WHERE repo = $1 AND digest = $2
                   AND NOT EXISTS (SELECT 1 FROM manifest_children WHERE repo = $1 AND child = $2)
                   AND NOT EXISTS (SELECT 1 FROM tags WHERE repo = $1 AND digest = $2)",
            )
            .bind(repo)
            .bind(&child)
            .execute(&mut *tx)
            .await?;
        }
        append(&mut tx, event, &self.chain).await?;
        tx.commit().await?;
        Ok(true)
    }
}

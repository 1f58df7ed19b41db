//! What garbage collection may remove, and the removal itself.
//!
//! Every removal re-checks its condition in the same statement that deletes,
//! and foreign keys refuse a delete that a concurrent push made wrong; so a
//! collection can run while pushes run (DESIGN invariant 5). A candidate
//! that turns out to be in use is simply left for the next run.

use std::future::Future;

use sqlx::Row;

use crate::{is_fk_violation, is_lost_race, AuditEvent, Meta, MetaError, Result};

/// An untagged manifest that no index lists and whose subject (if any) is
/// gone. Referrers (signatures, SBOMs) live as long as what they refer to.
const UNTAGGED_MANIFEST: &str = "m.pushed_at < $1
    AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo = m.repo AND t.digest = m.digest)
    AND NOT EXISTS (SELECT 1 FROM manifest_children c WHERE c.repo = m.repo AND c.child = m.digest)
    AND (m.subject IS NULL OR NOT EXISTS (SELECT 1 FROM manifests s WHERE s.repo = m.repo AND s.digest = m.subject))";

const UNREFERENCED_LINK: &str = "l.linked_at < $1
    AND NOT EXISTS (SELECT 1 FROM manifest_blobs mb WHERE mb.repo = l.repo AND mb.digest = l.digest)";

const UNLINKED_BLOB: &str = "b.written_at < $1
    AND NOT EXISTS (SELECT 1 FROM repo_blobs l WHERE l.digest = b.digest)";

fn pairs(rows: Vec<sqlx::any::AnyRow>) -> Result<Vec<(String, String)>> {
    rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
}

impl Meta {
    pub async fn untagged_manifests(&self, cutoff: i64, limit: i64) -> Result<Vec<(String, String)>> {
        let sql = format!("SELECT m.repo, m.digest FROM manifests m WHERE {UNTAGGED_MANIFEST} LIMIT $2");
        pairs(sqlx::query(&sql).bind(cutoff).bind(limit).fetch_all(&self.pool).await?)
    }

    /// Deletes an untagged manifest if it still is one, with its audit
    /// record (by `system`, like an API delete's) and `outbox` (its webhook
    /// events) in the same transaction.
    pub async fn collect_manifest(
        &self,
        repo: &str,
        digest: &str,
        cutoff: i64,
        outbox: Vec<crate::OutboxEvent>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "DELETE FROM manifests WHERE repo = $2 AND digest = $3 AND EXISTS \
             (SELECT 1 FROM manifests m WHERE m.repo = $2 AND m.digest = $3 AND {UNTAGGED_MANIFEST})"
        );
        let gone = deleted(
            sqlx::query(&sql)
                .bind(cutoff)
                .bind(repo)
                .bind(digest)
                .execute(&mut *tx)
                .await,
        )?;
        if !gone {
            tx.rollback().await?;
            return Ok(false);
        }
        let mut event = AuditEvent::ok("system", "manifest.delete")
            .repository(repo)
            .digest(digest)
            .detail("garbage collection: untagged past its grace");
        event.outbox = outbox;
        crate::audit::append(&mut tx, &event, &self.chain).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Removes what only deleted manifests and blobs needed: scan results,
    /// findings and SBOMs of images no repository holds, and layer facts of
    /// layers no manifest lists, when older than `cutoff`. Returns (scans,
    /// SBOMs, layer facts) removed; at most `limit` of each per call.
    pub async fn prune_scan_data(&self, cutoff: i64, limit: i64) -> Result<(u64, u64, u64)> {
        let scans = sqlx::query(
            "DELETE FROM scans WHERE digest IN (SELECT s.digest FROM scans s WHERE s.requested_at < $1
               AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = s.digest) LIMIT $2)
             AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = scans.digest)",
        )
        .bind(cutoff)
        .bind(limit)
        .execute(&self.pool)
        .await?
        .rows_affected();
        let sboms = sqlx::query(
            "DELETE FROM scan_sboms WHERE digest IN (SELECT b.digest FROM scan_sboms b
               WHERE NOT EXISTS (SELECT 1 FROM scans s WHERE s.digest = b.digest)
                 AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = b.digest) LIMIT $1)
             AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = scan_sboms.digest)",
        )
        .bind(limit)
        .execute(&self.pool)
        .await?
        .rows_affected();
        let facts = sqlx::query(
            "DELETE FROM layer_facts WHERE digest IN (SELECT f.digest FROM layer_facts f WHERE f.read_at < $1
               AND NOT EXISTS (SELECT 1 FROM manifest_blobs mb WHERE mb.digest = f.digest) LIMIT $2)
             AND NOT EXISTS (SELECT 1 FROM manifest_blobs mb WHERE mb.digest = layer_facts.digest)",
        )
        .bind(cutoff)
        .bind(limit)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok((scans, sboms, facts))
    }

    pub async fn unreferenced_links(&self, cutoff: i64, limit: i64) -> Result<Vec<(String, String)>> {
        let sql = format!("SELECT l.repo, l.digest FROM repo_blobs l WHERE {UNREFERENCED_LINK} LIMIT $2");
        pairs(sqlx::query(&sql).bind(cutoff).bind(limit).fetch_all(&self.pool).await?)
    }

    pub async fn collect_link(&self, repo: &str, digest: &str, cutoff: i64) -> Result<bool> {
        self.delete_if("repo_blobs", "l", UNREFERENCED_LINK, repo, digest, cutoff)
            .await
    }

    /// Deletes up to `limit` unreferenced links in one statement (which
    /// re-checks the condition as it deletes); one at a time when a push
    /// racing the batch makes it fail (a foreign key, or a deadlock on
    /// PostgreSQL). Returns how many went.
    pub async fn collect_links(&self, cutoff: i64, limit: i64) -> Result<u64> {
        let sql = format!(
            "DELETE FROM repo_blobs WHERE (repo, digest) IN \
             (SELECT l.repo, l.digest FROM repo_blobs l WHERE {UNREFERENCED_LINK} ORDER BY l.repo, l.digest LIMIT $2{})",
            self.skip_locked()
        );
        match sqlx::query(&sql).bind(cutoff).bind(limit).execute(&self.pool).await {
            Ok(r) => Ok(r.rows_affected()),
            Err(e) if is_lost_race(&e) => {
                let mut removed = 0;
                for (repo, digest) in self.unreferenced_links(cutoff, limit).await? {
                    removed += u64::from(self.collect_link(&repo, &digest, cutoff).await?);
                }
                Ok(removed)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes up to `limit` unlinked blob rows in one transaction and,
    /// while it holds their row locks, their bytes (`remove` per digest);
    /// one at a time when a push racing the batch makes it fail.
    pub async fn collect_blobs<F, Fut>(&self, cutoff: i64, limit: i64, remove: F) -> Result<u64>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = std::io::Result<()>>,
    {
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "DELETE FROM blobs WHERE digest IN (SELECT b.digest FROM blobs b WHERE {UNLINKED_BLOB} ORDER BY b.digest LIMIT $2{}) \
             RETURNING digest",
            self.skip_locked()
        );
        let rows = match sqlx::query(&sql).bind(cutoff).bind(limit).fetch_all(&mut *tx).await {
            Ok(rows) => rows,
            Err(e) if is_lost_race(&e) => {
                tx.rollback().await?;
                let mut removed = 0;
                for digest in self.unlinked_blobs(cutoff, limit).await? {
                    let gone = self.collect_blob(&digest, cutoff, || remove(digest.clone())).await?;
                    removed += u64::from(gone);
                }
                return Ok(removed);
            }
            Err(e) => return Err(e.into()),
        };
        for r in &rows {
            remove(r.try_get(0)?).await.map_err(MetaError::Publish)?;
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    /// On PostgreSQL a batch passes over rows a push holds (it never waits
    /// for one, so it cannot deadlock with it); SQLite has one writer anyway.
    fn skip_locked(&self) -> &'static str {
        match self.backend {
            crate::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            crate::Backend::Sqlite => "",
        }
    }

    /// Deletes the row of `table` keyed by (repo, digest) if `condition`
    /// (written over alias `alias`, with `$1` the cutoff) still holds for it.
    async fn delete_if(
        &self,
        table: &str,
        alias: &str,
        condition: &str,
        repo: &str,
        digest: &str,
        cutoff: i64,
    ) -> Result<bool> {
        let sql = format!(
            "DELETE FROM {table} WHERE repo = $2 AND digest = $3 AND EXISTS \
             (SELECT 1 FROM {table} {alias} WHERE {alias}.repo = $2 AND {alias}.digest = $3 AND {condition})"
        );
        deleted(
            sqlx::query(&sql)
                .bind(cutoff)
                .bind(repo)
                .bind(digest)
                .execute(&self.pool)
                .await,
        )
    }

    pub async fn unlinked_blobs(&self, cutoff: i64, limit: i64) -> Result<Vec<String>> {
        let sql = format!("SELECT b.digest FROM blobs b WHERE {UNLINKED_BLOB} LIMIT $2");
        let rows = sqlx::query(&sql).bind(cutoff).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Deletes a blob row and, while its row lock is held, its bytes
    /// (`remove`): an upload of the same digest waits for this transaction,
    /// then writes its file and row afresh.
    pub async fn collect_blob<F, Fut>(&self, digest: &str, cutoff: i64, remove: F) -> Result<bool>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::io::Result<()>>,
    {
        let mut tx = self.pool.begin().await?;
        let sql = format!("DELETE FROM blobs WHERE digest = $2 AND EXISTS (SELECT 1 FROM blobs b WHERE b.digest = $2 AND {UNLINKED_BLOB})");
        let gone = deleted(sqlx::query(&sql).bind(cutoff).bind(digest).execute(&mut *tx).await)?;
        if !gone {
            tx.rollback().await?;
            return Ok(false);
        }
        remove().await.map_err(MetaError::Publish)?;
        tx.commit().await?;
        Ok(true)
    }

    /// Removes the file of a blob no row names (`remove`) while holding the
    /// row lock a push takes before it publishes (`insert_blob`): a
    /// placeholder row is inserted, and rolled back after the removal. A push
    /// in flight commits its row before that insert goes through (then a row
    /// names the blob and nothing is removed); a later push waits for it,
    /// then publishes its own file. `true`: the file was removed.
    pub async fn collect_orphan_file<F, Fut>(&self, digest: &str, remove: F) -> Result<bool>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::io::Result<()>>,
    {
        let mut tx = self.pool.begin().await?;
        let claimed = sqlx::query(
            "INSERT INTO blobs (digest, size, written_at) VALUES ($1, 0, 0) ON CONFLICT (digest) DO NOTHING",
        )
        .bind(digest)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if claimed {
            remove().await.map_err(MetaError::Publish)?;
        }
        tx.rollback().await?;
        Ok(claimed)
    }

    /// Whether any row names this blob (the orphan-file sweep keeps those).
    pub async fn blob_known(&self, digest: &str) -> Result<bool> {
        Ok(sqlx::query("SELECT 1 FROM blobs WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    /// Upload sessions untouched since `cutoff`.
    pub async fn stale_uploads(&self, cutoff: i64) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM uploads WHERE updated_at < $1")
            .bind(cutoff)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Whether an upload id has a session row (files without one are leftovers).
    pub async fn upload_known(&self, id: &str) -> Result<bool> {
        Ok(self.upload_session(id).await?.is_some())
    }
}

fn deleted(res: std::result::Result<sqlx::any::AnyQueryResult, sqlx::Error>) -> Result<bool> {
    match res {
        Ok(r) => Ok(r.rows_affected() > 0),
        // A push started using it after we chose it: keep it.
        Err(e) if is_fk_violation(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

impl Meta {
    /// Open upload sessions, for the uploads-in-progress gauge.
    pub async fn count_uploads(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) FROM uploads")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }
}

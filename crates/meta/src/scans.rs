//! Scan results and the layer-facts cache. The meta crate stores them as
//! JSON text it does not interpret; the scanner owns their shape.

use sqlx::Row;

use crate::audit::AuditEvent;
use crate::rows::{severity_counts, SeverityCounts};
use crate::{now_ms, Meta, MetaError, Result};

/// How many times an image is scanned before it stays failed: a scan that
/// fails, or is interrupted by the server stopping, is retried at most this
/// often (until someone asks for a scan explicitly).
pub const MAX_SCAN_ATTEMPTS: i64 = 3;

/// Where an image's scan stands; stored as its [`as_str`](Self::as_str)
/// word, which the queries below name in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanStatus {
    /// Waiting for a scanner.
    Queued,
    /// A scanner took it (back to `Queued` if the server stops meanwhile).
    Scanning,
    /// Finished: layers, findings and the SBOM are stored.
    Done,
    /// Gave up, with the error (retried up to [`MAX_SCAN_ATTEMPTS`]).
    Failed,
}

impl ScanStatus {
    const ALL: [ScanStatus; 4] = [
        ScanStatus::Queued,
        ScanStatus::Scanning,
        ScanStatus::Done,
        ScanStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ScanStatus::Queued => "queued",
            ScanStatus::Scanning => "scanning",
            ScanStatus::Done => "done",
            ScanStatus::Failed => "failed",
        }
    }
}

impl std::fmt::Display for ScanStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ScanStatus {
    type Err = MetaError;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| MetaError::Corrupt(format!("scan status {s:?}")))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanRecord {
    pub digest: String,
    pub status: ScanStatus,
    pub error: Option<String>,
    /// JSON: the layer digests in order.
    pub layers: Option<String>,
    /// JSON: the findings.
    pub findings: Option<String>,
    /// The vulnerability database generation the findings came from.
    pub db_generation: Option<i64>,
    pub counts: SeverityCounts,
    pub requested_at: i64,
    pub finished_at: Option<i64>,
    /// Scans started since it was last requested explicitly.
    pub attempts: i64,
}

/// What a finished scan found.
pub struct ScanOutcome<'a> {
    pub layers: &'a str,
    /// The SBOM, encoded by the caller; kept in its own table so that
    /// rewriting findings does not rewrite it.
    pub sbom: &'a [u8],
    pub findings: &'a str,
    pub db_generation: Option<i64>,
    pub counts: SeverityCounts,
    /// Webhook events (`SCAN_COMPLETED`), written with the result.
    pub events: EventsFor<'a>,
}

/// The webhook events of a scan result, given the repositories (and the
/// manifest's media type in each) holding the image: read in the result's
/// own transaction, so the events commit with it or not at all.
pub type EventsFor<'a> = &'a (dyn Fn(&[(String, String)]) -> Vec<crate::OutboxEvent> + Sync);

async fn repositories_holding(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    digest: &str,
) -> Result<Vec<(String, String)>> {
    let rows = sqlx::query("SELECT repo, media_type FROM manifests WHERE digest = $1 ORDER BY repo")
        .bind(digest)
        .fetch_all(&mut **tx)
        .await?;
    rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
}

const COLUMNS: &str = "digest, status, error, layers, findings, db_generation, critical, high, medium, low, unknown, requested_at, finished_at, attempts";

fn record(r: &sqlx::any::AnyRow) -> Result<ScanRecord> {
    Ok(ScanRecord {
        digest: r.try_get(0)?,
        status: r.try_get::<String, _>(1)?.parse()?,
        error: r.try_get(2)?,
        layers: r.try_get(3)?,
        findings: r.try_get(4)?,
        db_generation: r.try_get(5)?,
        counts: severity_counts(r, 6)?,
        requested_at: r.try_get(11)?,
        finished_at: r.try_get(12)?,
        attempts: r.try_get(13)?,
    })
}

impl Meta {
    /// An image manifest by digest, from whichever repository holds it
    /// (scans are per content, not per repository).
    pub async fn manifest_by_digest(&self, digest: &str) -> Result<Option<crate::StoredManifest>> {
        let row = sqlx::query("SELECT digest, media_type, content FROM manifests WHERE digest = $1 LIMIT 1")
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(crate::StoredManifest {
                digest: r.try_get(0)?,
                media_type: r.try_get(1)?,
                content: r.try_get(2)?,
            })
        })
        .transpose()
    }

    pub async fn layer_facts(&self, digest: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT facts FROM layer_facts WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// The repositories holding the manifest `digest`, by name.
    pub async fn repositories_with_manifest(&self, digest: &str) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT repo FROM manifests WHERE digest = $1 ORDER BY repo")
            .bind(digest)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Stores (or, from a newer reader, replaces) a layer's facts.
    pub async fn put_layer_facts(&self, digest: &str, facts: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO layer_facts (digest, facts, read_at) VALUES ($1, $2, $3)
             ON CONFLICT (digest) DO UPDATE SET facts = excluded.facts, read_at = excluded.read_at",
        )
        .bind(digest)
        .bind(facts)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How many layers have cached facts (for tests and metrics).
    pub async fn layer_facts_count(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM layer_facts")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Queues a scan of an image manifest. A queued or running scan is left
    /// alone; a finished one is queued again only when `again` ("scan now",
    /// which also forgets past attempts); a failed one is queued again by a
    /// push only while it has attempts left. Returns whether it is newly queued.
    pub async fn request_scan(&self, digest: &str, again: bool) -> Result<bool> {
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO scans (digest, status, requested_at) VALUES ($1, 'queued', $2) ON CONFLICT (digest) DO NOTHING",
        )
        .bind(digest)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(true);
        }
        let updated = if again {
            sqlx::query(
                "UPDATE scans SET status = 'queued', requested_at = $2, attempts = 0
                 WHERE digest = $1 AND status IN ('done', 'failed')",
            )
            .bind(digest)
            .bind(now)
            .execute(&self.pool)
            .await?
        } else {
            sqlx::query(
                "UPDATE scans SET status = 'queued', requested_at = $2
                 WHERE digest = $1 AND status = 'failed' AND attempts < $3",
            )
            .bind(digest)
            .bind(now)
            .bind(MAX_SCAN_ATTEMPTS)
            .execute(&self.pool)
            .await?
        };
        Ok(updated.rows_affected() == 1)
    }

    /// Claims a queued scan for this worker and counts the attempt; `false`
    /// when another took it.
    pub async fn start_scan(&self, digest: &str) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE scans SET status = 'scanning', attempts = attempts + 1 WHERE digest = $1 AND status = 'queued'",
        )
        .bind(digest)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn finish_scan(&self, digest: &str, o: &ScanOutcome<'_>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO scan_sboms (digest, sbom) VALUES ($1, $2) ON CONFLICT (digest) DO UPDATE SET sbom = excluded.sbom",
        )
        .bind(digest)
        .bind(o.sbom)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE scans SET status = 'done', error = NULL, layers = $2, findings = $3, db_generation = $4,
             critical = $5, high = $6, medium = $7, low = $8, unknown = $9, finished_at = $10 WHERE digest = $1",
        )
        .bind(digest)
        .bind(o.layers)
        .bind(o.findings)
        .bind(o.db_generation)
        .bind(o.counts[0])
        .bind(o.counts[1])
        .bind(o.counts[2])
        .bind(o.counts[3])
        .bind(o.counts[4])
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let events = (o.events)(&repositories_holding(&mut tx, digest).await?);
        crate::outbox::append_events(&mut tx, &events, None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A finished scan's SBOM, as the scanner encoded it.
    pub async fn scan_sbom(&self, digest: &str) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT sbom FROM scan_sboms WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Marks a scan failed, with its webhook events (`SCAN_FAILED`).
    pub async fn fail_scan(&self, digest: &str, error: &str, events: EventsFor<'_>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE scans SET status = 'failed', error = $2, finished_at = $3 WHERE digest = $1")
            .bind(digest)
            .bind(error)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        let events = events(&repositories_holding(&mut tx, digest).await?);
        crate::outbox::append_events(&mut tx, &events, None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// How many scans are in each status (`queued`, `scanning`, `done`,
    /// `failed`): the scanner's queue as an operator sees it.
    pub async fn scan_status_counts(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT status, COUNT(*) FROM scans GROUP BY status ORDER BY status")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    pub async fn scan(&self, digest: &str) -> Result<Option<ScanRecord>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM scans WHERE digest = $1"))
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(record).transpose()
    }

    /// Queued scans, oldest request first.
    pub async fn queued_scans(&self, limit: i64) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT digest FROM scans WHERE status = 'queued' ORDER BY requested_at LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// At start-up: scans a stopped process was running go back in the
    /// queue, unless they have used up their attempts (an image that kills
    /// the scanner must not kill it again on every start): those fail.
    /// Returns (requeued, failed).
    pub async fn requeue_interrupted_scans(&self) -> Result<(u64, u64)> {
        let mut tx = self.pool.begin().await?;
        let failed = sqlx::query(
            "UPDATE scans SET status = 'failed', error = $1, finished_at = $2 WHERE status = 'scanning' AND attempts >= $3",
        )
        .bind(format!(
            "the scan was interrupted {MAX_SCAN_ATTEMPTS} times (the server stopped while scanning this image); \
             not retried until a scan is requested"
        ))
        .bind(now_ms())
        .bind(MAX_SCAN_ATTEMPTS)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let requeued = sqlx::query("UPDATE scans SET status = 'queued' WHERE status = 'scanning'")
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok((requeued, failed))
    }

    /// Finished scans' SBOMs in digest order, after `after`, for re-matching.
    pub async fn finished_sboms(&self, after: &str, limit: i64) -> Result<Vec<(String, Vec<u8>)>> {
        let rows = sqlx::query(
            "SELECT s.digest, b.sbom FROM scans s JOIN scan_sboms b ON b.digest = s.digest
             WHERE s.status = 'done' AND s.digest > $1 ORDER BY s.digest LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// New findings for stored SBOMs, from a newer vulnerability database:
    /// `(digest, findings JSON, counts)` rows written in one transaction
    /// (one commit, not one per image).
    /// Returns the digests whose counts changed (or that had no database
    /// before): only their promotion policies can decide differently now.
    pub async fn update_findings(
        &self,
        db_generation: i64,
        rows: &[(String, String, SeverityCounts)],
    ) -> Result<Vec<String>> {
        // The counts before, read outside the transaction: in SQLite a
        // transaction that reads before it writes can fail to take the
        // write lock under load. A scan finishing meanwhile runs its own
        // promotions, so a stale read here costs nothing.
        let mut changed = Vec::new();
        for (digest, _, counts) in rows {
            let before = sqlx::query(
                "SELECT db_generation, critical, high, medium, low, unknown FROM scans WHERE digest = $1 AND status = 'done'",
            )
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?;
            let Some(before) = before else { continue };
            let had: Option<i64> = before.try_get(0)?;
            let old: SeverityCounts = [
                before.try_get(1)?,
                before.try_get(2)?,
                before.try_get(3)?,
                before.try_get(4)?,
                before.try_get(5)?,
            ];
            if had.is_none() || old != *counts {
                changed.push(digest.clone());
            }
        }
        let mut tx = self.pool.begin().await?;
        for (digest, findings, counts) in rows {
            sqlx::query(
                "UPDATE scans SET findings = $2, db_generation = $3, critical = $4, high = $5, medium = $6, low = $7, unknown = $8
                 WHERE digest = $1 AND status = 'done'",
            )
            .bind(digest)
            .bind(findings)
            .bind(db_generation)
            .bind(counts[0])
            .bind(counts[1])
            .bind(counts[2])
            .bind(counts[3])
            .bind(counts[4])
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Whether pushes to the repository are scanned (on unless turned off).
    pub async fn scan_on_push(&self, repo: &str) -> Result<bool> {
        let row = sqlx::query("SELECT scan_on_push FROM repositories WHERE name = $1")
            .bind(repo)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => r.try_get::<i64, _>(0)? != 0,
            None => true,
        })
    }

    pub async fn set_scan_on_push(&self, repo: &str, on: bool, event: &AuditEvent) -> Result<()> {
        let change = crate::RepositorySettingsChange {
            scan_on_push: Some(on),
            ..crate::RepositorySettingsChange::default()
        };
        self.update_repository_settings(repo, &change, event).await
    }
}

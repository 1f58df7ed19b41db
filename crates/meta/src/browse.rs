//! Reads for people browsing the registry (the web UI and the management
//! API's lists): a page of repositories with their tag counts and worst
//! findings, a page of tags with what is known about each image. Each is
//! one query per page, whatever the repository's size.

use sqlx::Row;

use crate::{Meta, Result, SeverityCounts};

/// A repository as a list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositorySummary {
    pub name: String,
    pub visibility: String,
    /// Tags, not counting cosign's `sha256-<hex>.sig|.att|.sbom` accessories.
    pub tags: i64,
    /// When a tag last moved (ms), if any tag exists.
    pub last_push: Option<i64>,
    /// Tags whose image has a finished scan.
    pub scanned: i64,
    /// Bytes of the blobs linked to the repository (shared blobs counted
    /// in each repository that links them).
    pub size: i64,
    /// The highest count of each severity among tagged, scanned images.
    pub worst: SeverityCounts,
}

/// A tag as the repository page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagDetail {
    pub name: String,
    pub digest: String,
    pub media_type: String,
    pub artifact_type: Option<String>,
    /// The manifest's bytes plus every blob it (or its children) references.
    pub size: i64,
    pub pushed_at: i64,
    pub pushed_by: Option<String>,
    /// `queued`, `scanning`, `done`, `failed`; `None` when never scanned.
    pub scan_status: Option<String>,
    /// Findings were matched against a database (a scan done before any
    /// database was imported has none to count).
    pub scan_matched: bool,
    pub counts: SeverityCounts,
    /// `(source repository, source tag, policy id, at)` when a promotion
    /// put this digest under this tag.
    pub promoted_from: Option<(String, Option<String>, String, i64)>,
    /// A cosign tag-form signature (`sha256-<hex>.sig`) exists.
    pub signature_tag: bool,
    /// Manifests in the repository whose subject is this digest.
    pub referrers: i64,
}

/// The findings of the images pushed to a repository on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayFindings {
    /// UTC midnight of the day (ms).
    pub day: i64,
    /// Images pushed that day with a finished scan.
    pub images: i64,
    /// Their findings per severity, summed.
    pub counts: SeverityCounts,
}

impl Meta {
    /// Summaries of the named repositories, in the order given (unknown
    /// names are left out).
    pub async fn repository_summaries(&self, names: &[String]) -> Result<Vec<RepositorySummary>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT r.name, r.visibility,
                    COUNT(CASE WHEN NOT (LENGTH(t.name) = 75 AND (t.name LIKE 'sha256-%.sig' OR t.name LIKE 'sha256-%.att'))
                                AND NOT (LENGTH(t.name) = 76 AND t.name LIKE 'sha256-%.sbom') THEN t.name END),
                    MAX(t.updated_at),
                    COALESCE(MAX(s.critical), 0), COALESCE(MAX(s.high), 0), COALESCE(MAX(s.medium), 0),
                    COALESCE(MAX(s.low), 0), COALESCE(MAX(s.unknown), 0), COUNT(s.digest),
                    CAST(COALESCE((SELECT SUM(b.size) FROM repo_blobs l CROSS JOIN blobs b
                                   WHERE l.repo = r.name AND b.digest = l.digest), 0) AS BIGINT)
             FROM repositories r
             LEFT JOIN tags t ON t.repo = r.name
             LEFT JOIN scans s ON s.digest = t.digest AND s.status = 'done'
             WHERE r.name IN ({})
             GROUP BY r.name, r.visibility",
            placeholders.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for n in names {
            q = q.bind(n);
        }
        let rows = q.fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(RepositorySummary {
                name: r.try_get(0)?,
                visibility: r.try_get(1)?,
                tags: r.try_get(2)?,
                last_push: r.try_get(3)?,
                worst: crate::rows::severity_counts(&r, 4)?,
                scanned: r.try_get(9)?,
                size: r.try_get(10)?,
            });
        }
        out.sort_by_key(|s| names.iter().position(|n| *n == s.name));
        Ok(out)
    }

    /// One page of `repo`'s tags after `after`, in bytewise order, with
    /// each image's size, scan counts, provenance and signature artifacts.
    pub async fn tag_details(&self, repo: &str, after: Option<&str>, limit: i64) -> Result<Vec<TagDetail>> {
        let rows = sqlx::query(
            "SELECT t.name, t.digest, m.media_type, m.artifact_type, t.updated_at, t.pushed_by,
                    m.size
                    + CAST(COALESCE((SELECT SUM(b.size) FROM manifest_blobs mb JOIN blobs b ON b.digest = mb.digest
                                     WHERE mb.repo = t.repo AND mb.manifest = t.digest), 0) AS BIGINT)
                    + CAST(COALESCE((SELECT SUM(b.size) FROM manifest_children c
                                     CROSS JOIN manifest_blobs mb CROSS JOIN blobs b
                                     WHERE c.repo = t.repo AND c.parent = t.digest
                                       AND mb.repo = c.repo AND mb.manifest = c.child
                                       AND b.digest = mb.digest), 0) AS BIGINT),
                    s.status, s.db_generation, COALESCE(s.critical, 0), COALESCE(s.high, 0), COALESCE(s.medium, 0),
                    COALESCE(s.low, 0), COALESCE(s.unknown, 0),
                    p.source_repository, p.source_tag, p.policy_id, p.at, p.digest,
                    (SELECT COUNT(*) FROM tags st WHERE st.repo = t.repo
                        AND st.name = 'sha256-' || substr(t.digest, 8) || '.sig'),
                    (SELECT COUNT(*) FROM manifests r WHERE r.repo = t.repo AND r.subject = t.digest)
             FROM tags t
             JOIN manifests m ON m.repo = t.repo AND m.digest = t.digest
             LEFT JOIN scans s ON s.digest = t.digest
             LEFT JOIN promotions p ON p.repository = t.repo AND p.tag = t.name
             WHERE t.repo = $1 AND t.name > $2
             ORDER BY t.name LIMIT $3",
        )
        .bind(repo)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let digest: String = r.try_get(1)?;
            let promoted_digest: Option<String> = r.try_get(18)?;
            let promoted_from = match (r.try_get::<Option<String>, _>(14)?, r.try_get::<Option<String>, _>(16)?) {
                (Some(source), Some(policy)) if promoted_digest.as_deref() == Some(digest.as_str()) => {
                    Some((source, r.try_get(15)?, policy, r.try_get::<i64, _>(17)?))
                }
                _ => None,
            };
            let db_generation: Option<i64> = r.try_get(8)?;
            out.push(TagDetail {
                name: r.try_get(0)?,
                media_type: r.try_get(2)?,
                artifact_type: r.try_get(3)?,
                pushed_at: r.try_get(4)?,
                pushed_by: r.try_get(5)?,
                size: r.try_get(6)?,
                scan_status: r.try_get(7)?,
                scan_matched: db_generation.is_some(),
                counts: crate::rows::severity_counts(&r, 9)?,
                promoted_from,
                signature_tag: r.try_get::<i64, _>(19)? > 0,
                referrers: r.try_get(20)?,
                digest,
            });
        }
        Ok(out)
    }

    /// Findings per day of the images pushed to `repo` since `since_ms`
    /// (scanned images only; days without any are left out).
    pub async fn findings_by_day(&self, repo: &str, since_ms: i64) -> Result<Vec<DayFindings>> {
        let rows = sqlx::query(
            "SELECT m.pushed_at / 86400000 AS d, COUNT(s.digest),
                    CAST(COALESCE(SUM(s.critical), 0) AS BIGINT), CAST(COALESCE(SUM(s.high), 0) AS BIGINT),
                    CAST(COALESCE(SUM(s.medium), 0) AS BIGINT), CAST(COALESCE(SUM(s.low), 0) AS BIGINT),
                    CAST(COALESCE(SUM(s.unknown), 0) AS BIGINT)
             FROM manifests m JOIN scans s ON s.digest = m.digest AND s.status = 'done'
             WHERE m.repo = $1 AND m.pushed_at >= $2
             GROUP BY m.pushed_at / 86400000 ORDER BY d",
        )
        .bind(repo)
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DayFindings {
                    day: r.try_get::<i64, _>(0)? * 86_400_000,
                    images: r.try_get(1)?,
                    counts: crate::rows::severity_counts(r, 2)?,
                })
            })
            .collect()
    }

    /// Every current (unrevoked) account key, as (key id, account, PEM):
    /// what a "signed by whom" badge checks signatures against.
    pub async fn current_keys(&self) -> Result<Vec<(String, String, String)>> {
        let rows = sqlx::query("SELECT id, account, pem FROM account_keys WHERE revoked_at IS NULL ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }
}

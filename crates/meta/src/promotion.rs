//! Promotion policies in storage, their evaluations, and the promotion
//! itself: a server-side copy (manifest, child manifests, blob links; no
//! blob bytes) and a tag, with its provenance and audit record, in one
//! transaction. Whether an image passes is the policy crate's business.

use sqlx::Row;

use crate::audit::{append, AuditEvent};
use crate::rows::{t, Value};
use crate::{ensure_repo, immutability, now_ms, Meta, MetaError, Result};

/// A policy as stored: the JSON the API took, and who owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    pub id: String,
    pub repository: String,
    pub owner: String,
    /// `portcullis_policy::PromotionPolicy` as JSON.
    pub policy: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One evaluation of a policy over an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvaluationRecord {
    pub id: String,
    pub policy_id: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: String,
    pub outcome: EvaluationOutcome,
    pub target_tag: Option<String>,
    /// JSON: the rules with their outcomes and facts, or the reason.
    pub detail: String,
    pub at: i64,
}

/// What an evaluation came to; stored and served as its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvaluationOutcome {
    /// Every rule held and the image is in the target.
    Promoted,
    /// Every rule held (a dry run: nothing was copied).
    Passed,
    /// A rule did not hold, or the image's scan failed.
    Failed,
    /// No finished scan (or no database) yet: evaluated again when there is.
    Pending,
    /// The rules held but the target would not take it.
    Refused,
    /// The policy's owner may no longer do what it does.
    Suspended,
}

impl EvaluationOutcome {
    const ALL: [EvaluationOutcome; 6] = [
        EvaluationOutcome::Promoted,
        EvaluationOutcome::Passed,
        EvaluationOutcome::Failed,
        EvaluationOutcome::Pending,
        EvaluationOutcome::Refused,
        EvaluationOutcome::Suspended,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EvaluationOutcome::Promoted => "promoted",
            EvaluationOutcome::Passed => "passed",
            EvaluationOutcome::Failed => "failed",
            EvaluationOutcome::Pending => "pending",
            EvaluationOutcome::Refused => "refused",
            EvaluationOutcome::Suspended => "suspended",
        }
    }
}

impl std::fmt::Display for EvaluationOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EvaluationOutcome {
    type Err = MetaError;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| MetaError::Corrupt(format!("evaluation outcome {s:?}")))
    }
}

/// Where a promoted tag came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    pub digest: String,
    pub source_repository: String,
    pub source_tag: Option<String>,
    pub policy_id: String,
    pub at: i64,
}

/// A promotion to make.
#[derive(Debug, Clone)]
pub struct PromotionCopy<'a> {
    pub source_repository: &'a str,
    pub source_tag: Option<&'a str>,
    pub digest: &'a str,
    pub target_repository: &'a str,
    pub target_tag: &'a str,
    pub policy_id: &'a str,
    /// Also copy what refers to the image: OCI referrers (`subject`) and
    /// cosign's `sha256-<hex>.sig` tag, so it stays verifiable there.
    pub copy_referrers: bool,
}

/// Whether a referrer may travel with a promoted image: a manifest (never
/// an index, whose children the policy did not judge) every layer of which
/// is a signature, attestation or SBOM document, the same test the gate
/// uses to exempt it from judging (`Manifest::kind`).
fn is_evidence(media_type: &str, content: &[u8]) -> bool {
    portcullis_oci::Manifest::parse(content, Some(media_type))
        .is_ok_and(|m| m.kind() == portcullis_oci::ManifestKind::Artifact)
}

const POLICY_COLUMNS: &str = "id, repository, owner, policy, created_at, updated_at";
const EVALUATION_COLUMNS: &str = "id, policy_id, repository, tag, digest, outcome, target_tag, detail, at";

fn policy(r: &sqlx::any::AnyRow) -> Result<StoredPolicy> {
    Ok(StoredPolicy {
        id: r.try_get(0)?,
        repository: r.try_get(1)?,
        owner: r.try_get(2)?,
        policy: r.try_get(3)?,
        created_at: r.try_get(4)?,
        updated_at: r.try_get(5)?,
    })
}

fn evaluation(r: &sqlx::any::AnyRow) -> Result<EvaluationRecord> {
    Ok(EvaluationRecord {
        id: r.try_get(0)?,
        policy_id: r.try_get(1)?,
        repository: r.try_get(2)?,
        tag: r.try_get(3)?,
        digest: r.try_get(4)?,
        outcome: r.try_get::<String, _>(5)?.parse()?,
        target_tag: r.try_get(6)?,
        detail: r.try_get(7)?,
        at: r.try_get(8)?,
    })
}

impl Meta {
    pub async fn create_policy(&self, p: &StoredPolicy, event: &AuditEvent) -> Result<()> {
        let sql = "INSERT INTO promotion_policies (id, repository, owner, policy, created_at, updated_at)
                   VALUES ($1, $2, $3, $4, $5, $5)";
        let values = vec![
            t(&p.id),
            t(&p.repository),
            t(&p.owner),
            t(&p.policy),
            Value::Int(Some(now_ms())),
        ];
        self.write(&[(sql, values)], event).await?;
        Ok(())
    }

    /// Replaces a policy's JSON; `false` when there is no such policy.
    pub async fn update_policy(&self, id: &str, json: &str, event: &AuditEvent) -> Result<bool> {
        let sql = "UPDATE promotion_policies SET policy = $1, updated_at = $2 WHERE id = $3";
        self.write_if_changed(&[(sql, vec![t(json), Value::Int(Some(now_ms())), t(id)])], event)
            .await
    }

    pub async fn delete_policy(&self, id: &str, event: &AuditEvent) -> Result<bool> {
        let sql = "DELETE FROM promotion_policies WHERE id = $1";
        self.write_if_changed(&[(sql, vec![t(id)])], event).await
    }

    pub async fn policy(&self, id: &str) -> Result<Option<StoredPolicy>> {
        let row = sqlx::query(&format!(
            "SELECT {POLICY_COLUMNS} FROM promotion_policies WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(policy).transpose()
    }

    /// The policies of a source repository, oldest first.
    pub async fn policies(&self, repository: &str) -> Result<Vec<StoredPolicy>> {
        let rows = sqlx::query(&format!(
            "SELECT {POLICY_COLUMNS} FROM promotion_policies WHERE repository = $1 ORDER BY created_at, id"
        ))
        .bind(repository)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(policy).collect()
    }

    /// Every policy, for re-evaluation after a database import.
    pub async fn all_policies(&self) -> Result<Vec<StoredPolicy>> {
        let rows = sqlx::query(&format!(
            "SELECT {POLICY_COLUMNS} FROM promotion_policies ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(policy).collect()
    }

    /// The (repository, tag, digest) of every tag that names `digest` in a
    /// repository with a promotion policy, directly or as an index that
    /// reaches it (through nested indexes, 8 levels at most).
    pub async fn policy_tags_of(&self, digest: &str) -> Result<Vec<(String, String, String)>> {
        // The image and every index above it, through nested indexes (as
        // deep as the gate follows them), each looked up once.
        let mut wanted = vec![digest.to_string()];
        let mut frontier = wanted.clone();
        for _ in 0..8 {
            let mut next = Vec::new();
            for child in &frontier {
                let rows = sqlx::query("SELECT DISTINCT parent FROM manifest_children WHERE child = $1")
                    .bind(child)
                    .fetch_all(&self.pool)
                    .await?;
                for r in rows {
                    let parent: String = r.try_get(0)?;
                    if !wanted.contains(&parent) && wanted.len() < 1024 {
                        wanted.push(parent.clone());
                        next.push(parent);
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            frontier = next;
        }
        let mut out = Vec::new();
        for d in &wanted {
            let rows = sqlx::query(
                "SELECT DISTINCT t.repo, t.name, t.digest FROM tags t
                 WHERE t.digest = $1 AND EXISTS (SELECT 1 FROM promotion_policies p WHERE p.repository = t.repo)",
            )
            .bind(d)
            .fetch_all(&self.pool)
            .await?;
            for r in rows {
                out.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Every (tag, digest) of a repository, in tag order (for `apply`).
    pub async fn tagged(&self, repository: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT name, digest FROM tags WHERE repo = $1 ORDER BY name")
            .bind(repository)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// The child manifests an index lists in `repository`.
    pub async fn children(&self, repository: &str, digest: &str) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT child FROM manifest_children WHERE repo = $1 AND parent = $2 ORDER BY child")
            .bind(repository)
            .bind(digest)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Records an evaluation, unless the last one of this policy for this
    /// tag and digest said the same (so a re-run that changes nothing
    /// leaves no new row). Returns whether it was recorded.
    pub async fn record_evaluation(&self, e: &EvaluationRecord) -> Result<bool> {
        let last = sqlx::query(
            "SELECT outcome, detail FROM promotion_evaluations
             WHERE policy_id = $1 AND digest = $2 AND (tag = $3 OR (tag IS NULL AND $3 IS NULL))
             ORDER BY at DESC, id DESC LIMIT 1",
        )
        .bind(&e.policy_id)
        .bind(&e.digest)
        .bind(e.tag.as_deref())
        .fetch_optional(&self.pool)
        .await?;
        if let Some(r) = last {
            let (outcome, detail): (String, String) = (r.try_get(0)?, r.try_get(1)?);
            if outcome == e.outcome.as_str() && detail == e.detail {
                return Ok(false);
            }
        }
        sqlx::query(&format!(
            "INSERT INTO promotion_evaluations ({EVALUATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&e.id)
        .bind(&e.policy_id)
        .bind(&e.repository)
        .bind(e.tag.as_deref())
        .bind(&e.digest)
        .bind(e.outcome.as_str())
        .bind(e.target_tag.as_deref())
        .bind(&e.detail)
        .bind(e.at)
        .execute(&self.pool)
        .await?;
        Ok(true)
    }

    /// Evaluations, newest first, of one policy and/or one image digest.
    pub async fn evaluations(
        &self,
        policy_id: Option<&str>,
        digest: Option<&str>,
        limit: i64,
    ) -> Result<Vec<EvaluationRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {EVALUATION_COLUMNS} FROM promotion_evaluations
             WHERE ($1 IS NULL OR policy_id = $1) AND ($2 IS NULL OR digest = $2)
             ORDER BY at DESC, id DESC LIMIT $3"
        ))
        .bind(policy_id)
        .bind(digest)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(evaluation).collect()
    }

    /// (policy id, tag, digest) of promotions whose signing failed at an
    /// evaluation since `since` (ms), newest first: the candidates for
    /// another signing try.
    pub async fn failed_signings(&self, since: i64, limit: i64) -> Result<Vec<(String, String, String)>> {
        let rows = sqlx::query(
            "SELECT policy_id, tag, digest, MAX(at) FROM promotion_evaluations
             WHERE outcome = 'promoted' AND tag IS NOT NULL AND at >= $1
               AND detail LIKE '%\"state\":\"failed\"%'
             GROUP BY policy_id, tag, digest ORDER BY MAX(at) DESC LIMIT $2",
        )
        .bind(since)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    /// Where a tag came from, if a promotion made it.
    pub async fn provenance(&self, repository: &str, tag: &str) -> Result<Option<Provenance>> {
        let row = sqlx::query(
            "SELECT digest, source_repository, source_tag, policy_id, at FROM promotions
             WHERE repository = $1 AND tag = $2",
        )
        .bind(repository)
        .bind(tag)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Provenance {
                digest: r.try_get(0)?,
                source_repository: r.try_get(1)?,
                source_tag: r.try_get(2)?,
                policy_id: r.try_get(3)?,
                at: r.try_get(4)?,
            })
        })
        .transpose()
    }

    /// Copies an image into the target repository and tags it there, in
    /// one transaction with its provenance and audit record: links to the
    /// blobs, the manifest and (for an index) its child manifests, no blob
    /// bytes. The target's immutable tags are respected; an image whose
    /// parts are gone (a concurrent GC) fails as a missing blob.
    /// Returns `false`, changing nothing, when this policy already promoted
    /// this image to this tag (two triggers racing: one promotion, one
    /// record).
    pub async fn promote(&self, c: &PromotionCopy<'_>, event: &AuditEvent) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        // First, and conditional: of two racing promotions of the same image
        // the second waits for this row (or SQLite's lock) and writes nothing.
        let claimed = sqlx::query(
            "INSERT INTO promotions (repository, tag, digest, source_repository, source_tag, policy_id, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (repository, tag) DO UPDATE SET digest = excluded.digest,
               source_repository = excluded.source_repository, source_tag = excluded.source_tag,
               policy_id = excluded.policy_id, at = excluded.at
             WHERE promotions.digest <> excluded.digest OR promotions.policy_id <> excluded.policy_id",
        )
        .bind(c.target_repository)
        .bind(c.target_tag)
        .bind(c.digest)
        .bind(c.source_repository)
        .bind(c.source_tag)
        .bind(c.policy_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            return Ok(false);
        }
        ensure_repo(&mut tx, c.target_repository, now).await?;
        // The image and what it lists (an index's images, which the policy
        // judged), then, when asked, the signatures, attestations and SBOMs
        // that refer to it: never an index, never anything they list, so
        // nothing the policy did not judge reaches the target.
        let mut order = vec![c.digest.to_string()];
        let mut i = 0;
        while i < order.len() && order.len() < 1024 {
            let rows = sqlx::query("SELECT child FROM manifest_children WHERE repo = $1 AND parent = $2")
                .bind(c.source_repository)
                .bind(&order[i])
                .fetch_all(&mut *tx)
                .await?;
            for r in rows {
                let child: String = r.try_get(0)?;
                if !order.contains(&child) {
                    order.push(child);
                }
            }
            i += 1;
        }
        // cosign's tags over the image: its signatures and attestations.
        let cosign_tags: Vec<String> = c
            .digest
            .split_once(':')
            .map(|(alg, hex)| [format!("{alg}-{hex}.sig"), format!("{alg}-{hex}.att")].to_vec())
            .unwrap_or_default();
        let mut tagged = Vec::new();
        if c.copy_referrers {
            let rows = sqlx::query(
                "SELECT digest, media_type, content FROM manifests WHERE repo = $1 AND subject = $2 ORDER BY digest",
            )
            .bind(c.source_repository)
            .bind(c.digest)
            .fetch_all(&mut *tx)
            .await?;
            for r in rows {
                let (digest, media_type, content): (String, String, Vec<u8>) =
                    (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
                if is_evidence(&media_type, &content) && !order.contains(&digest) {
                    order.push(digest);
                }
            }
            for tag in &cosign_tags {
                let row = sqlx::query(
                    "SELECT m.digest, m.media_type, m.content FROM tags t
                     JOIN manifests m ON m.repo = t.repo AND m.digest = t.digest
                     WHERE t.repo = $1 AND t.name = $2",
                )
                .bind(c.source_repository)
                .bind(tag)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(r) = row {
                    let (digest, media_type, content): (String, String, Vec<u8>) =
                        (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
                    if is_evidence(&media_type, &content) {
                        if !order.contains(&digest) {
                            order.push(digest.clone());
                        }
                        tagged.push((tag, digest));
                    }
                }
            }
        }
        // Children before parents: a parent's rows reference its children.
        for m in order.iter().rev() {
            let copy = [
                "INSERT INTO repo_blobs (repo, digest, linked_at)
                 SELECT $1, mb.digest, $3 FROM manifest_blobs mb WHERE mb.repo = $2 AND mb.manifest = $4
                 ON CONFLICT DO NOTHING",
                "INSERT INTO manifests (repo, digest, media_type, artifact_type, subject, annotations, size, content, pushed_at)
                 SELECT $1, digest, media_type, artifact_type, subject, annotations, size, content, $3
                 FROM manifests WHERE repo = $2 AND digest = $4
                 ON CONFLICT (repo, digest) DO NOTHING",
                "INSERT INTO manifest_blobs (repo, manifest, digest)
                 SELECT $1, manifest, digest FROM manifest_blobs WHERE repo = $2 AND manifest = $4
                 ON CONFLICT DO NOTHING",
                "INSERT INTO manifest_children (repo, parent, child)
                 SELECT $1, parent, child FROM manifest_children WHERE repo = $2 AND parent = $4
                 ON CONFLICT DO NOTHING",
            ];
            for sql in copy {
                let r = sqlx::query(sql)
                    .bind(c.target_repository)
                    .bind(c.source_repository)
                    .bind(now)
                    .bind(m)
                    .execute(&mut *tx)
                    .await;
                match r {
                    Err(e) if crate::is_fk_violation(&e) => return Err(MetaError::BlobUnknown(m.clone())),
                    other => other?,
                };
            }
        }
        let copied = sqlx::query("SELECT 1 FROM manifests WHERE repo = $1 AND digest = $2")
            .bind(c.target_repository)
            .bind(c.digest)
            .fetch_optional(&mut *tx)
            .await?;
        if copied.is_none() {
            return Err(MetaError::ManifestUnknown(c.digest.to_string()));
        }
        let rules = immutability::rules(&mut tx, c.target_repository).await?;
        immutability::write_tag(
            &mut tx,
            &rules,
            c.target_repository,
            c.target_tag,
            c.digest,
            now,
            &event.actor,
        )
        .await?;
        for (tag, digest) in tagged {
            match immutability::write_tag(&mut tx, &rules, c.target_repository, tag, &digest, now, &event.actor).await {
                // The target keeps the signatures and attestations it has
                // under a frozen tag.
                Ok(()) | Err(MetaError::TagImmutable { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        append(&mut tx, event, &self.chain).await?;
        tx.commit().await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::is_evidence;

    const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    const D: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    fn manifest(artifact_type: Option<&str>, config: &str, layers: &[&str]) -> Vec<u8> {
        let layers: Vec<_> = layers
            .iter()
            .map(|t| serde_json::json!({"mediaType": t, "digest": D, "size": 1}))
            .collect();
        let mut m = serde_json::json!({"schemaVersion": 2, "mediaType": MANIFEST,
            "config": {"mediaType": config, "digest": D, "size": 2}, "layers": layers});
        if let Some(t) = artifact_type {
            m["artifactType"] = t.into();
        }
        serde_json::to_vec(&m).unwrap()
    }

    #[test]
    fn only_signatures_attestations_and_sboms_travel() {
        let image_config = "application/vnd.oci.image.config.v1+json";
        let empty = "application/vnd.oci.empty.v1+json";
        let tar = "application/vnd.oci.image.layer.v1.tar+gzip";
        let index = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": INDEX,
            "artifactType": "application/spdx+json",
            "manifests": [{"mediaType": MANIFEST, "digest": D, "size": 1}]}))
        .unwrap();
        let cases: &[(&str, &str, Vec<u8>, bool)] = &[
            (
                "cosign tag-form signature",
                MANIFEST,
                manifest(
                    None,
                    image_config,
                    &["application/vnd.dev.cosign.simplesigning.v1+json"],
                ),
                true,
            ),
            (
                "sigstore bundle referrer",
                MANIFEST,
                manifest(
                    Some("application/vnd.dev.sigstore.bundle.v0.3+json"),
                    empty,
                    &["application/vnd.dev.sigstore.bundle.v0.3+json"],
                ),
                true,
            ),
            (
                "cosign attestation",
                MANIFEST,
                manifest(None, image_config, &["application/vnd.dsse.envelope.v1+json"]),
                true,
            ),
            (
                "SPDX SBOM by artifact type",
                MANIFEST,
                manifest(Some("application/spdx+json"), empty, &[empty]),
                true,
            ),
            (
                "CycloneDX with parameters",
                MANIFEST,
                manifest(None, empty, &["application/vnd.cyclonedx+json; version=1.5"]),
                true,
            ),
            ("an index, whatever it claims", INDEX, index, false),
            (
                "a runnable image",
                MANIFEST,
                manifest(None, image_config, &[tar]),
                false,
            ),
            (
                "an image calling itself an SBOM",
                MANIFEST,
                manifest(Some("application/spdx+json"), image_config, &[tar]),
                false,
            ),
            (
                "an unknown artifact",
                MANIFEST,
                manifest(Some("application/x-anything"), empty, &[empty]),
                false,
            ),
            ("not a manifest", MANIFEST, b"{".to_vec(), false),
        ];
        for (what, media_type, content, want) in cases {
            assert_eq!(is_evidence(media_type, content), *want, "{what}");
        }
    }
}

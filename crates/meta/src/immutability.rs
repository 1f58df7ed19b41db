//! Immutable tags in storage: the settings (a repository's switch and
//! patterns, a namespace's patterns) and the checks that every tag move or
//! delete makes inside its own transaction (DESIGN invariant 4). The rules
//! themselves are the policy crate's [`TagImmutability`].

use portcullis_policy::TagImmutability;
use sqlx::Row;

use crate::audit::{append, AuditEvent};
use crate::rows::namespace_of;
use crate::{now_ms, Meta, MetaError, Result};

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// A repository's or namespace's immutability settings, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImmutabilitySettings {
    pub immutable_tags: bool,
    pub immutable_tag_patterns: Vec<String>,
}

/// The settings of a repository a change gives (`None`: unchanged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepositorySettingsChange {
    pub visibility: Option<String>,
    pub scan_on_push: Option<bool>,
    pub immutable_tags: Option<bool>,
    pub immutable_tag_patterns: Option<Vec<String>>,
    /// The stored JSON (empty clears the rule).
    pub pull_rule: Option<String>,
}

fn patterns_json(list: &[String]) -> String {
    if list.is_empty() {
        String::new()
    } else {
        serde_json::to_string(list).expect("strings serialize")
    }
}

fn patterns_of(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

/// A write first, so SQLite takes its write lock before the checks read
/// (a read-then-write transaction could fail to upgrade under load). It
/// changes nothing, even for a repository that does not exist.
pub(crate) async fn lock(tx: &mut Tx<'_>, repo: &str) -> Result<()> {
    sqlx::query("UPDATE repositories SET created_at = created_at WHERE name = $1")
        .bind(repo)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The rules in force for `repo`, read inside `tx` so the decision and the
/// write it guards commit together.
pub(crate) async fn rules(tx: &mut Tx<'_>, repo: &str) -> Result<TagImmutability> {
    let row = sqlx::query("SELECT immutable_tags, immutable_tag_patterns FROM repositories WHERE name = $1")
        .bind(repo)
        .fetch_optional(&mut **tx)
        .await?;
    let (all, repo_patterns) = match row {
        Some(r) => (r.try_get::<i64, _>(0)? != 0, r.try_get::<String, _>(1)?),
        None => (false, String::new()),
    };
    let namespace = namespace_of(repo);
    let ns = sqlx::query("SELECT immutable_tag_patterns FROM namespace_settings WHERE namespace = $1")
        .bind(namespace)
        .fetch_optional(&mut **tx)
        .await?;
    let ns_patterns: String = ns.map(|r| r.try_get(0)).transpose()?.unwrap_or_default();
    TagImmutability::from_settings(repo, all, &repo_patterns, namespace, &ns_patterns)
        .map_err(|e| MetaError::Corrupt(e.to_string()))
}

/// Points `tag` at `digest`: an immutable tag only if it is new or already
/// names `digest`; the condition is in the statement, so of two racing
/// writers the second sees the first's row (PostgreSQL waits for it) and
/// changes nothing. Re-pushing an immutable tag's own manifest keeps the
/// first push's time and pusher (provenance); the audit trail records the
/// re-push.
pub(crate) async fn write_tag(
    tx: &mut Tx<'_>,
    rules: &TagImmutability,
    repo: &str,
    tag: &str,
    digest: &str,
    now: i64,
    pushed_by: &str,
) -> Result<()> {
    let rule = rules.rule_for(tag);
    let sql = if rule.is_some() {
        "INSERT INTO tags (repo, name, digest, updated_at, pushed_by) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (repo, name) DO UPDATE SET digest = tags.digest
         WHERE tags.digest = excluded.digest"
    } else {
        "INSERT INTO tags (repo, name, digest, updated_at, pushed_by) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (repo, name) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at,
         pushed_by = excluded.pushed_by"
    };
    let written = sqlx::query(sql)
        .bind(repo)
        .bind(tag)
        .bind(digest)
        .bind(now)
        .bind(pushed_by)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    match (written, rule) {
        (0, Some(rule)) => Err(MetaError::TagImmutable {
            repo: repo.to_string(),
            tag: tag.to_string(),
            rule,
        }),
        _ => Ok(()),
    }
}

/// The image digest (`sha256:<hex>`) a cosign tag (`sha256-<hex>.sig`,
/// `.att`, `.sbom`) is about.
fn cosign_subject(tag: &str) -> Option<String> {
    portcullis_oci::cosign_tag_subject(tag).map(|(subject, _)| subject)
}

/// Layers a cosign tag may grow to: signature checks examine the first 32
/// of a form, so more could only push a later signer out of their view.
const MAX_COSIGN_LAYERS: usize = 32;

/// Whether `new`'s layers are `old`'s, in order, followed by new ones, no
/// layer twice and at most [`MAX_COSIGN_LAYERS`]: what is there stays
/// first, so nothing pushed later hides a signature already counted.
fn only_adds_layers(old: &[u8], new: &[u8]) -> bool {
    let layers = |b: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(b)
            .ok()
            .and_then(|v| v["layers"].as_array().cloned())
    };
    match (layers(old), layers(new)) {
        (Some(old), Some(new)) => {
            let distinct = new.iter().enumerate().all(|(i, l)| !new[..i].contains(l));
            new.len() > old.len() && new.len() <= MAX_COSIGN_LAYERS && new.starts_with(&old) && distinct
        }
        _ => false,
    }
}

/// Cosign keeps an image's signatures, attestations and SBOMs under one
/// tag each (`sha256-<hex>.sig`, …) and adds a layer per signer. Under an
/// immutable rule such a tag, naming an image in `repo`, still moves to a
/// manifest that keeps every layer it had and adds some; the move is
/// conditional on the tag not having moved meanwhile, so of two signers
/// racing one wins and the other is refused (and retries), never losing
/// the first's layer. `Ok(false)`: not such a change (the ordinary rules
/// apply).
pub(crate) async fn grow_cosign_tag(
    tx: &mut Tx<'_>,
    rules: &TagImmutability,
    m: &crate::NewManifest<'_>,
    tag: &str,
    now: i64,
    pushed_by: &str,
) -> Result<bool> {
    let (repo, digest, content) = (m.repo, m.digest.as_str(), m.content);
    let (Some(rule), Some(subject)) = (rules.rule_for(tag), cosign_subject(tag)) else {
        return Ok(false);
    };
    let current = sqlx::query(
        "SELECT t.digest, m.content FROM tags t JOIN manifests m ON m.repo = t.repo AND m.digest = t.digest
         WHERE t.repo = $1 AND t.name = $2",
    )
    .bind(repo)
    .bind(tag)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(current) = current else {
        return Ok(false);
    };
    let (old, old_content): (String, Vec<u8>) = (current.try_get(0)?, current.try_get(1)?);
    let subject_here = sqlx::query("SELECT 1 FROM manifests WHERE repo = $1 AND digest = $2")
        .bind(repo)
        .bind(&subject)
        .fetch_optional(&mut **tx)
        .await?
        .is_some();
    // Only signatures, attestations and SBOMs grow this way: never an image
    // slipped under an immutable tag's name.
    let artifact = portcullis_oci::Manifest::parse(content, Some(m.media_type))
        .is_ok_and(|m| m.kind() == portcullis_oci::ManifestKind::Artifact);
    if old == digest || !artifact || !subject_here || !only_adds_layers(&old_content, content) {
        return Ok(false);
    }
    let moved = sqlx::query(
        "UPDATE tags SET digest = $1, updated_at = $2, pushed_by = $3 WHERE repo = $4 AND name = $5 AND digest = $6",
    )
    .bind(digest)
    .bind(now)
    .bind(pushed_by)
    .bind(repo)
    .bind(tag)
    .bind(&old)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if moved == 0 {
        return Err(MetaError::TagImmutable {
            repo: repo.to_string(),
            tag: tag.to_string(),
            rule: format!("{rule}; another signature was added meanwhile: sign again"),
        });
    }
    Ok(true)
}

/// Refuses if any of `tags` (in `repo`) is immutable.
pub(crate) fn refuse_any(rules: &TagImmutability, repo: &str, tags: &[String]) -> Result<()> {
    for tag in tags {
        if let Some(rule) = rules.rule_for(tag) {
            return Err(MetaError::TagImmutable {
                repo: repo.to_string(),
                tag: tag.clone(),
                rule,
            });
        }
    }
    Ok(())
}

/// The tags of `repo` that point at `digest` (every tag when `None`).
pub(crate) async fn tags_of(tx: &mut Tx<'_>, repo: &str, digest: Option<&str>) -> Result<Vec<String>> {
    let rows = sqlx::query("SELECT name FROM tags WHERE repo = $1 AND ($2 IS NULL OR digest = $2)")
        .bind(repo)
        .bind(digest)
        .fetch_all(&mut **tx)
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Refuses to delete repositories (by name) holding an immutable tag.
pub(crate) async fn refuse_repositories(tx: &mut Tx<'_>, repos: &[String]) -> Result<()> {
    for repo in repos {
        let rules = rules(tx, repo).await?;
        if !rules.is_empty() {
            let tags = tags_of(tx, repo, None).await?;
            refuse_any(&rules, repo, &tags)?;
        }
    }
    Ok(())
}

impl Meta {
    /// The rule that makes `tag` of `repo` immutable, if one does: a look
    /// ahead for callers that would otherwise do work a write must refuse
    /// (the write itself checks again, in its transaction).
    pub async fn tag_immutable_by(&self, repo: &str, tag: &str) -> Result<Option<String>> {
        let mut tx = self.pool.begin().await?;
        let found = rules(&mut tx, repo).await?.rule_for(tag);
        tx.rollback().await?;
        Ok(found)
    }

    /// A repository's immutability settings (defaults when it has none).
    pub async fn repository_immutability(&self, repo: &str) -> Result<ImmutabilitySettings> {
        let row = sqlx::query("SELECT immutable_tags, immutable_tag_patterns FROM repositories WHERE name = $1")
            .bind(repo)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => ImmutabilitySettings {
                immutable_tags: r.try_get::<i64, _>(0)? != 0,
                immutable_tag_patterns: patterns_of(&r.try_get::<String, _>(1)?),
            },
            None => ImmutabilitySettings::default(),
        })
    }

    /// Sets a repository's switch and/or patterns (creating the repository,
    /// so CI can prepare it before the first push). Patterns are validated
    /// by the caller with the policy crate.
    pub async fn set_repository_immutability(
        &self,
        repo: &str,
        all: Option<bool>,
        patterns: Option<&[String]>,
        event: &AuditEvent,
    ) -> Result<()> {
        let change = RepositorySettingsChange {
            immutable_tags: all,
            immutable_tag_patterns: patterns.map(<[String]>::to_vec),
            ..RepositorySettingsChange::default()
        };
        self.update_repository_settings(repo, &change, event).await
    }

    /// A namespace's tag patterns (empty when unset).
    pub async fn namespace_immutability(&self, namespace: &str) -> Result<Vec<String>> {
        let row = sqlx::query("SELECT immutable_tag_patterns FROM namespace_settings WHERE namespace = $1")
            .bind(namespace)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .map(|r| r.try_get::<String, _>(0))
            .transpose()?
            .map(|j| patterns_of(&j))
            .unwrap_or_default())
    }

    /// The patterns naming a namespace's promotion-only repositories.
    /// A stored value that does not parse is an error, never "none": the
    /// repositories stay closed to pushes until it is saved again.
    pub async fn namespace_promotion_only(&self, namespace: &str) -> Result<Vec<String>> {
        let row = sqlx::query("SELECT promotion_only FROM namespace_settings WHERE namespace = $1")
            .bind(namespace)
            .fetch_optional(&self.pool)
            .await?;
        match row.map(|r| r.try_get::<String, _>(0)).transpose()? {
            Some(json) if !json.is_empty() => serde_json::from_str(&json)
                .map_err(|e| MetaError::Corrupt(format!("namespace {namespace}'s promotion_only setting: {e}"))),
            _ => Ok(Vec::new()),
        }
    }

    /// Sets which repositories of a namespace are promotion-only.
    pub async fn set_namespace_promotion_only(
        &self,
        namespace: &str,
        patterns: &[String],
        event: &AuditEvent,
    ) -> Result<()> {
        self.set_namespace_setting(namespace, "promotion_only", &patterns_json(patterns), event)
            .await
    }

    /// Sets a namespace's tag patterns; the namespace's account must exist.
    pub async fn set_namespace_immutability(
        &self,
        namespace: &str,
        patterns: &[String],
        event: &AuditEvent,
    ) -> Result<()> {
        self.set_namespace_setting(namespace, "immutable_tag_patterns", &patterns_json(patterns), event)
            .await
    }

    /// One column of a namespace's settings row (made if missing).
    async fn set_namespace_setting(
        &self,
        namespace: &str,
        column: &'static str,
        value: &str,
        event: &AuditEvent,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(&format!(
            "INSERT INTO namespace_settings (namespace, {column}, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (namespace) DO UPDATE SET {column} = excluded.{column}, updated_at = excluded.updated_at"
        ))
        .bind(namespace)
        .bind(value)
        .bind(now_ms())
        .execute(&mut *tx)
        .await;
        match r {
            Err(e) if crate::is_fk_violation(&e) => return Err(MetaError::Missing(event.action.clone())),
            other => other?,
        };
        append(&mut tx, event, &self.chain).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The pull rules (JSON, empty when unset) of a repository and of its
    /// namespace, in one query.
    pub async fn pull_rules(&self, repo: &str) -> Result<(String, String)> {
        let row = sqlx::query(
            "SELECT (SELECT pull_rule FROM repositories WHERE name = $1),
                    (SELECT pull_rule FROM namespace_settings WHERE namespace = $2)",
        )
        .bind(repo)
        .bind(namespace_of(repo))
        .fetch_one(&self.pool)
        .await?;
        Ok((
            row.try_get::<Option<String>, _>(0)?.unwrap_or_default(),
            row.try_get::<Option<String>, _>(1)?.unwrap_or_default(),
        ))
    }

    /// A namespace's own pull rule (JSON, empty when unset).
    pub async fn namespace_pull_rule(&self, namespace: &str) -> Result<String> {
        let rule: Option<Option<String>> =
            sqlx::query_scalar("SELECT pull_rule FROM namespace_settings WHERE namespace = $1")
                .bind(namespace)
                .fetch_optional(&self.pool)
                .await?;
        Ok(rule.flatten().unwrap_or_default())
    }

    /// Sets a repository's pull rule (JSON; empty clears it), creating the
    /// repository if needed.
    pub async fn set_repository_pull_rule(&self, repo: &str, json: &str, event: &AuditEvent) -> Result<()> {
        let change = RepositorySettingsChange {
            pull_rule: Some(json.to_string()),
            ..RepositorySettingsChange::default()
        };
        self.update_repository_settings(repo, &change, event).await
    }

    /// Applies every given setting of a repository in one transaction with
    /// one audit record: a failure leaves none of them applied (never
    /// visibility public with its pull rule not yet saved).
    pub async fn update_repository_settings(
        &self,
        repo: &str,
        change: &RepositorySettingsChange,
        event: &AuditEvent,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        crate::ensure_repo(&mut tx, repo, now_ms()).await?;
        let patterns = change.immutable_tag_patterns.as_deref().map(patterns_json);
        if let Some(v) = &change.visibility {
            sqlx::query("UPDATE repositories SET visibility = $1 WHERE name = $2")
                .bind(v.as_str())
                .bind(repo)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(on) = change.scan_on_push {
            sqlx::query("UPDATE repositories SET scan_on_push = $1 WHERE name = $2")
                .bind(i64::from(on))
                .bind(repo)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(all) = change.immutable_tags {
            sqlx::query("UPDATE repositories SET immutable_tags = $1 WHERE name = $2")
                .bind(i64::from(all))
                .bind(repo)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(p) = patterns {
            sqlx::query("UPDATE repositories SET immutable_tag_patterns = $1 WHERE name = $2")
                .bind(p)
                .bind(repo)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(rule) = &change.pull_rule {
            sqlx::query("UPDATE repositories SET pull_rule = $1 WHERE name = $2")
                .bind(rule.as_str())
                .bind(repo)
                .execute(&mut *tx)
                .await?;
        }
        append(&mut tx, event, &self.chain).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets a namespace's pull rule (JSON; empty clears it).
    pub async fn set_namespace_pull_rule(&self, namespace: &str, json: &str, event: &AuditEvent) -> Result<()> {
        self.set_namespace_setting(namespace, "pull_rule", json, event).await
    }
}

#[cfg(test)]
mod cosign_tag_tests {
    use super::*;

    #[test]
    fn cosign_tags_grow_only_at_the_end() {
        let m = |layers: &[&str]| {
            let layers: Vec<serde_json::Value> = layers.iter().map(|d| serde_json::json!({"digest": d})).collect();
            serde_json::to_vec(&serde_json::json!({ "layers": layers })).unwrap()
        };
        let many: Vec<String> = (0..33).map(|i| format!("l{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let table: &[(&[&str], &[&str], bool)] = &[
            (&["a"], &["a", "b"], true),
            (&["a", "b"], &["a", "b", "c"], true),
            (&["a", "b"], &["b", "a", "c"], false),
            (&["a", "b"], &["c", "a", "b"], false),
            (&["a", "b"], &["a"], false),
            (&["a"], &["a"], false),
            (&["a"], &["a", "b", "b"], false),
            (&["l0"], &many, false),
            (&["l0"], &many[..32], true),
        ];
        for (old, new, want) in table {
            assert_eq!(only_adds_layers(&m(old), &m(new)), *want, "{old:?} -> {new:?}");
        }
        assert_eq!(
            cosign_subject(&format!("sha256-{}.sig", "a".repeat(64))),
            Some(format!("sha256:{}", "a".repeat(64)))
        );
        assert_eq!(
            cosign_subject(&format!("sha256-{}.sig", "A".repeat(64))),
            Some(format!("sha256:{}", "A".repeat(64)))
        );
        assert_eq!(cosign_subject("sha256-abc.sig"), None);
        assert_eq!(cosign_subject(&format!("sha256-{}.tar", "a".repeat(64))), None);
    }
}

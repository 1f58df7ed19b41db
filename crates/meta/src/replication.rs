//! Replication in storage: upstream registries (their passwords sealed by
//! the server before they get here), replication rules, their runs, and
//! the provenance of what a run imported. Every change is audited in its
//! own transaction; a finished run writes its record and its
//! `REPLICATION_*` events with it.

use sqlx::Row;

use crate::audit::AuditEvent;
use crate::rows::{ot, t, Value};
use crate::{now_ms, Meta, Result};

/// An upstream registry as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamRegistry {
    pub name: String,
    /// `https://host[:port]` or `http://host[:port]`.
    pub url: String,
    pub username: Option<String>,
    /// The password, sealed under the server's key-encryption key.
    pub sealed_password: Option<String>,
    /// Certificate authorities (PEM) trusted for this registry.
    pub ca_pem: Option<String>,
    pub tls_verify: bool,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A replication rule as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicationRule {
    pub id: String,
    pub name: String,
    pub registry: String,
    pub direction: String,
    pub source: String,
    pub tags: Vec<String>,
    pub target: String,
    /// PEM public keys an image must be signed by (empty: no requirement).
    pub require_keys: Vec<String>,
    /// Local accounts and teams whose registered keys may sign instead
    /// (empty lists: none).
    pub require_signers: portcullis_policy::SignedBy,
    /// Seconds between scheduled runs; 0 runs only when asked.
    pub interval_secs: i64,
    pub enabled: bool,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub running_since: Option<i64>,
    pub last_run_at: Option<i64>,
}

/// A run of a rule. `copied`, `skipped` and `refused` are JSON lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicationRun {
    pub id: String,
    pub rule_id: String,
    /// `manual`, `schedule` or `event` (a push rule's queued pushes).
    pub cause: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// `running`, `completed` or `failed`.
    pub status: String,
    pub copied: String,
    pub skipped: String,
    pub refused: String,
    pub bytes: i64,
    pub error: Option<String>,
}

/// Where an imported tag came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicationProvenance {
    pub repo: String,
    pub tag: String,
    pub digest: String,
    pub registry: String,
    pub upstream_repository: String,
    pub upstream_tag: String,
    pub upstream_digest: String,
    /// The id of the key whose signature verified, when the rule asked for one.
    pub verified_key: Option<String>,
    pub rule_id: String,
    pub run_id: String,
    pub replicated_at: i64,
}

const REGISTRY_COLUMNS: &str =
    "name, url, username, sealed_password, ca_pem, tls_verify, created_by, created_at, updated_at";

fn registry_row(r: &sqlx::any::AnyRow) -> Result<UpstreamRegistry> {
    Ok(UpstreamRegistry {
        name: r.try_get(0)?,
        url: r.try_get(1)?,
        username: r.try_get(2)?,
        sealed_password: r.try_get(3)?,
        ca_pem: r.try_get(4)?,
        tls_verify: r.try_get::<i64, _>(5)? != 0,
        created_by: r.try_get(6)?,
        created_at: r.try_get(7)?,
        updated_at: r.try_get(8)?,
    })
}

const RULE_COLUMNS: &str =
    "id, name, registry, direction, source, tags, target, require_keys, interval_secs, enabled, \
     created_by, created_at, updated_at, running_since, last_run_at, require_signers";

fn rule_row(r: &sqlx::any::AnyRow) -> Result<ReplicationRule> {
    Ok(ReplicationRule {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        registry: r.try_get(2)?,
        direction: r.try_get(3)?,
        source: r.try_get(4)?,
        tags: serde_json::from_str(&r.try_get::<String, _>(5)?).unwrap_or_default(),
        target: r.try_get(6)?,
        require_keys: serde_json::from_str(&r.try_get::<String, _>(7)?).unwrap_or_default(),
        interval_secs: r.try_get(8)?,
        enabled: r.try_get::<i64, _>(9)? != 0,
        created_by: r.try_get(10)?,
        created_at: r.try_get(11)?,
        updated_at: r.try_get(12)?,
        running_since: r.try_get(13)?,
        last_run_at: r.try_get(14)?,
        require_signers: serde_json::from_str(&r.try_get::<String, _>(15)?).unwrap_or_default(),
    })
}

const RUN_COLUMNS: &str = "id, rule_id, cause, started_at, finished_at, status, copied, skipped, refused, bytes, error";

fn run_row(r: &sqlx::any::AnyRow) -> Result<ReplicationRun> {
    Ok(ReplicationRun {
        id: r.try_get(0)?,
        rule_id: r.try_get(1)?,
        cause: r.try_get(2)?,
        started_at: r.try_get(3)?,
        finished_at: r.try_get(4)?,
        status: r.try_get(5)?,
        copied: r.try_get(6)?,
        skipped: r.try_get(7)?,
        refused: r.try_get(8)?,
        bytes: r.try_get(9)?,
        error: r.try_get(10)?,
    })
}

fn int(v: i64) -> Value {
    Value::Int(Some(v))
}

fn json_list(v: &[String]) -> Value {
    t(serde_json::to_string(v).expect("json"))
}

/// A rule's settings as bound, in column order from `name` to `enabled`.
fn rule_settings(r: &ReplicationRule) -> Vec<Value> {
    vec![
        t(&r.name),
        t(&r.registry),
        t(&r.direction),
        t(&r.source),
        json_list(&r.tags),
        t(&r.target),
        json_list(&r.require_keys),
        int(r.interval_secs),
        int(i64::from(r.enabled)),
        t(signers_json(&r.require_signers)),
    ]
}

/// `''` for no signers, else the JSON of `SignedBy`.
fn signers_json(by: &portcullis_policy::SignedBy) -> String {
    if by.teams.is_empty() && by.accounts.is_empty() {
        String::new()
    } else {
        serde_json::to_string(by).expect("json")
    }
}

impl Meta {
    pub async fn create_upstream_registry(&self, r: &UpstreamRegistry, event: &AuditEvent) -> Result<()> {
        let sql =
            format!("INSERT INTO upstream_registries ({REGISTRY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)");
        let values = vec![
            t(&r.name),
            t(&r.url),
            ot(r.username.as_deref()),
            ot(r.sealed_password.as_deref()),
            ot(r.ca_pem.as_deref()),
            int(i64::from(r.tls_verify)),
            t(&r.created_by),
            int(now_ms()),
        ];
        self.write(&[(sql.as_str(), values)], event).await?;
        Ok(())
    }

    /// Replaces a registry's settings (the caller merged what changed).
    pub async fn update_upstream_registry(&self, r: &UpstreamRegistry, event: &AuditEvent) -> Result<bool> {
        let sql = "UPDATE upstream_registries SET url = $1, username = $2, sealed_password = $3, ca_pem = $4,
                   tls_verify = $5, updated_at = $6 WHERE name = $7";
        let values = vec![
            t(&r.url),
            ot(r.username.as_deref()),
            ot(r.sealed_password.as_deref()),
            ot(r.ca_pem.as_deref()),
            int(i64::from(r.tls_verify)),
            int(now_ms()),
            t(&r.name),
        ];
        self.write_if_changed(&[(sql, values)], event).await
    }

    /// Deletes a registry; a rule that names it makes this a
    /// [`crate::MetaError::Missing`] (a reference would dangle).
    pub async fn delete_upstream_registry(&self, name: &str, event: &AuditEvent) -> Result<bool> {
        let sql = "DELETE FROM upstream_registries WHERE name = $1";
        self.write_if_changed(&[(sql, vec![t(name)])], event).await
    }

    pub async fn upstream_registry(&self, name: &str) -> Result<Option<UpstreamRegistry>> {
        let row = sqlx::query(&format!(
            "SELECT {REGISTRY_COLUMNS} FROM upstream_registries WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(registry_row).transpose()
    }

    pub async fn upstream_registries(&self) -> Result<Vec<UpstreamRegistry>> {
        let rows = sqlx::query(&format!(
            "SELECT {REGISTRY_COLUMNS} FROM upstream_registries ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(registry_row).collect()
    }

    /// The names of the rules that use registry `name`.
    pub async fn rules_of_registry(&self, name: &str) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT name FROM replication_rules WHERE registry = $1 ORDER BY name")
            .bind(name)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    pub async fn create_replication_rule(&self, r: &ReplicationRule, event: &AuditEvent) -> Result<()> {
        let sql = "INSERT INTO replication_rules (id, name, registry, direction, source, tags, target, require_keys,
                   interval_secs, enabled, require_signers, created_by, created_at, updated_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)";
        let mut values = vec![t(&r.id)];
        values.extend(rule_settings(r));
        values.extend([t(&r.created_by), int(now_ms())]);
        self.write(&[(sql, values)], event).await?;
        Ok(())
    }

    pub async fn update_replication_rule(&self, r: &ReplicationRule, event: &AuditEvent) -> Result<bool> {
        let sql = "UPDATE replication_rules SET name = $1, registry = $2, direction = $3, source = $4, tags = $5,
                   target = $6, require_keys = $7, interval_secs = $8, enabled = $9, require_signers = $10,
                   updated_at = $11 WHERE id = $12";
        let mut values = rule_settings(r);
        values.extend([int(now_ms()), t(&r.id)]);
        self.write_if_changed(&[(sql, values)], event).await
    }

    /// Deletes a rule with its runs (the provenance of what it imported stays).
    pub async fn delete_replication_rule(&self, id: &str, event: &AuditEvent) -> Result<bool> {
        let statements: Vec<(&str, Vec<Value>)> = [
            "DELETE FROM replication_push_queue WHERE rule_id = $1",
            "DELETE FROM replication_runs WHERE rule_id = $1",
            "DELETE FROM replication_rules WHERE id = $1",
        ]
        .into_iter()
        .map(|sql| (sql, vec![t(id)]))
        .collect();
        self.write_if_changed(&statements, event).await
    }

    pub async fn replication_rule(&self, id: &str) -> Result<Option<ReplicationRule>> {
        let row = sqlx::query(&format!("SELECT {RULE_COLUMNS} FROM replication_rules WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rule_row).transpose()
    }

    pub async fn replication_rules(&self) -> Result<Vec<ReplicationRule>> {
        let rows = sqlx::query(&format!("SELECT {RULE_COLUMNS} FROM replication_rules ORDER BY name"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rule_row).collect()
    }

    /// Enabled pull rules with an interval whose next run is due at `now`
    /// and that no run holds (or whose holder's lease of `lease_ms` ran out).
    pub async fn due_replication_rules(&self, now: i64, lease_ms: i64) -> Result<Vec<ReplicationRule>> {
        let rows = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM replication_rules
             WHERE enabled <> 0 AND interval_secs > 0
               AND (last_run_at IS NULL OR last_run_at + interval_secs * 1000 <= $1)
               AND (running_since IS NULL OR running_since < $2)
             ORDER BY last_run_at, name"
        ))
        .bind(now)
        .bind(now - lease_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rule_row).collect()
    }

    /// Claims rule `id` for run `run_id` (a conditional update: of two
    /// replicas or two requests, one wins); `false` when a run holds it and
    /// its lease of `lease_ms` has not run out.
    pub async fn claim_replication_rule(&self, id: &str, run_id: &str, now: i64, lease_ms: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE replication_rules SET running_since = $1, claimed_by = $2
             WHERE id = $3 AND (running_since IS NULL OR running_since < $4)",
        )
        .bind(now)
        .bind(run_id)
        .bind(id)
        .bind(now - lease_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Renews run `run_id`'s claim on rule `id` (a long run says it is
    /// alive); `false` when the run no longer holds it (its lease ran out
    /// and another run took the rule): it must stop.
    pub async fn renew_replication_claim(&self, id: &str, run_id: &str, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE replication_rules SET running_since = $1
             WHERE id = $2 AND claimed_by = $3 AND running_since IS NOT NULL",
        )
        .bind(now)
        .bind(id)
        .bind(run_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives up run `run_id`'s claim on rule `id` (a run that did not start).
    pub async fn release_replication_claim(&self, id: &str, run_id: &str) -> Result<()> {
        sqlx::query(
            "UPDATE replication_rules SET running_since = NULL, claimed_by = NULL WHERE id = $1 AND claimed_by = $2",
        )
        .bind(id)
        .bind(run_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Starts a run of a claimed rule. A run of it still unfinished was
    /// interrupted (its claim ran out, or this server restarted): it is
    /// recorded as failed first (and, should it still be going, it finds
    /// its claim gone at its next renewal and stops).
    pub async fn start_replication_run(&self, run: &ReplicationRun) -> Result<()> {
        sqlx::query(
            "UPDATE replication_runs SET status = 'failed', finished_at = $1,
             error = 'interrupted: the server stopped or lost the rule before the run finished'
             WHERE rule_id = $2 AND finished_at IS NULL",
        )
        .bind(run.started_at)
        .bind(&run.rule_id)
        .execute(&self.pool)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO replication_runs ({RUN_COLUMNS}) VALUES ($1, $2, $3, $4, NULL, 'running', '[]', '[]', '[]', 0, NULL)"
        ))
        .bind(&run.id)
        .bind(&run.rule_id)
        .bind(&run.cause)
        .bind(run.started_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Finishes a run: its record, the rule's release, `event` (with its
    /// `REPLICATION_*` events), one transaction.
    pub async fn finish_replication_run(&self, run: &ReplicationRun, event: &AuditEvent) -> Result<()> {
        let now = now_ms();
        let statements: Vec<(&str, Vec<Value>)> = vec![
            (
                "UPDATE replication_runs SET finished_at = $1, status = $2, copied = $3, skipped = $4, refused = $5,
                 bytes = $6, error = $7 WHERE id = $8",
                vec![
                    int(now),
                    t(&run.status),
                    t(&run.copied),
                    t(&run.skipped),
                    t(&run.refused),
                    int(run.bytes),
                    ot(run.error.as_deref()),
                    t(&run.id),
                ],
            ),
            // Released only by the run that holds it (one whose lease ran
            // out does not free the run that took over).
            (
                "UPDATE replication_rules SET running_since = NULL, claimed_by = NULL, last_run_at = $1
                 WHERE id = $2 AND claimed_by = $3",
                vec![int(now), t(&run.rule_id), t(&run.id)],
            ),
        ];
        self.write(&statements, event).await?;
        Ok(())
    }

    /// The latest `limit` runs of a rule, newest first.
    pub async fn replication_runs(&self, rule_id: &str, limit: i64) -> Result<Vec<ReplicationRun>> {
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM replication_runs WHERE rule_id = $1 ORDER BY started_at DESC, id LIMIT $2"
        ))
        .bind(rule_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_row).collect()
    }

    /// Records where a tag came from (the import itself was audited with
    /// the same facts in the manifest's transaction).
    pub async fn record_replication_provenance(&self, p: &ReplicationProvenance) -> Result<()> {
        sqlx::query(
            "INSERT INTO replication_provenance (repo, tag, digest, registry, upstream_repository, upstream_tag,
             upstream_digest, verified_key, rule_id, run_id, replicated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (repo, tag) DO UPDATE SET digest = excluded.digest, registry = excluded.registry,
               upstream_repository = excluded.upstream_repository, upstream_tag = excluded.upstream_tag,
               upstream_digest = excluded.upstream_digest, verified_key = excluded.verified_key,
               rule_id = excluded.rule_id, run_id = excluded.run_id, replicated_at = excluded.replicated_at",
        )
        .bind(&p.repo)
        .bind(&p.tag)
        .bind(&p.digest)
        .bind(&p.registry)
        .bind(&p.upstream_repository)
        .bind(&p.upstream_tag)
        .bind(&p.upstream_digest)
        .bind(p.verified_key.as_deref())
        .bind(&p.rule_id)
        .bind(&p.run_id)
        .bind(p.replicated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn replication_provenance(&self, repo: &str, tag: &str) -> Result<Option<ReplicationProvenance>> {
        let row = sqlx::query(
            "SELECT repo, tag, digest, registry, upstream_repository, upstream_tag, upstream_digest, verified_key,
             rule_id, run_id, replicated_at FROM replication_provenance WHERE repo = $1 AND tag = $2",
        )
        .bind(repo)
        .bind(tag)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(ReplicationProvenance {
                repo: r.try_get(0)?,
                tag: r.try_get(1)?,
                digest: r.try_get(2)?,
                registry: r.try_get(3)?,
                upstream_repository: r.try_get(4)?,
                upstream_tag: r.try_get(5)?,
                upstream_digest: r.try_get(6)?,
                verified_key: r.try_get(7)?,
                rule_id: r.try_get(8)?,
                run_id: r.try_get(9)?,
                replicated_at: r.try_get(10)?,
            })
        })
        .transpose()
    }
}

/// A tag waiting to be pushed by a push rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushJob {
    pub id: String,
    pub rule_id: String,
    pub repo: String,
    pub tag: String,
    /// The digest the event named (the run pushes what the tag names then).
    pub digest: String,
    /// The event's outbox sequence number; a newer event for the tag replaces it.
    pub seq: i64,
    /// Attempts so far, this one included once claimed.
    pub attempts: i64,
    pub created_at: i64,
    pub last_error: Option<String>,
}

const JOB_COLUMNS: &str = "id, rule_id, repo, tag, digest, seq, attempts, created_at, last_error";

fn job_row(r: &sqlx::any::AnyRow) -> Result<PushJob> {
    Ok(PushJob {
        id: r.try_get(0)?,
        rule_id: r.try_get(1)?,
        repo: r.try_get(2)?,
        tag: r.try_get(3)?,
        digest: r.try_get(4)?,
        seq: r.try_get(5)?,
        attempts: r.try_get(6)?,
        created_at: r.try_get(7)?,
        last_error: r.try_get(8)?,
    })
}

/// Event types that queue pushes.
const PUSHING_EVENTS: [&str; 2] = ["TAG_PUSH", "PROMOTION"];

/// Queues, in the caller's transaction (the event's own), a push of each
/// tag a `TAG_PUSH` or `PROMOTION` event names for every enabled push rule
/// that selects it; `seq` is the event's sequence number. A tag already
/// queued for a rule is queued again (due now, attempts reset), so a run
/// that is sending its older digest does not drop it.
pub(crate) async fn queue_pushes(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    events: &[(i64, &crate::OutboxEvent)],
) -> Result<()> {
    let wanted: Vec<(i64, String, String, String)> = events
        .iter()
        .filter(|(_, e)| PUSHING_EVENTS.contains(&e.kind.as_str()))
        .filter_map(|(seq, e)| {
            let p: serde_json::Value = serde_json::from_str(&e.payload).ok()?;
            let tag = p["tag"].as_str()?.to_string();
            let digest = p["digest"].as_str().unwrap_or_default().to_string();
            Some((*seq, e.repository.clone(), tag, digest))
        })
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let rules = sqlx::query(
        "SELECT id, source, tags FROM replication_rules WHERE direction = 'push' AND enabled <> 0 ORDER BY id",
    )
    .fetch_all(&mut **tx)
    .await?;
    let now = now_ms();
    for r in &rules {
        let id: String = r.try_get(0)?;
        let source: String = r.try_get(1)?;
        let tags: Vec<String> = serde_json::from_str(&r.try_get::<String, _>(2)?).unwrap_or_default();
        for (seq, repo, tag, digest) in &wanted {
            if !portcullis_policy::rule_selects(&source, &tags, repo, tag) {
                continue;
            }
            sqlx::query(
                "INSERT INTO replication_push_queue (id, rule_id, repo, tag, digest, seq, attempts, next_at,
                 claim, created_at, last_error) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, NULL, $7, NULL)
                 ON CONFLICT (rule_id, repo, tag) DO UPDATE SET digest = excluded.digest, seq = excluded.seq,
                 attempts = 0, next_at = excluded.next_at, created_at = excluded.created_at, last_error = NULL",
            )
            .bind(uuid::Uuid::new_v4().simple().to_string())
            .bind(&id)
            .bind(repo)
            .bind(tag)
            .bind(digest)
            .bind(*seq)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

impl Meta {
    /// Enabled push rules with a queued push due at `now` and no run
    /// holding them (or a holder whose lease of `lease_ms` ran out).
    pub async fn rules_with_due_pushes(&self, now: i64, lease_ms: i64) -> Result<Vec<ReplicationRule>> {
        let rows = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM replication_rules r
             WHERE r.direction = 'push' AND r.enabled <> 0
               AND (r.running_since IS NULL OR r.running_since < $2)
               AND EXISTS (SELECT 1 FROM replication_push_queue q WHERE q.rule_id = r.id AND q.next_at <= $1)
             ORDER BY r.name"
        ))
        .bind(now)
        .bind(now - lease_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rule_row).collect()
    }

    /// Claims up to `limit` due pushes of a rule its caller holds (the
    /// rule's claim keeps everyone else off them): each counts an attempt
    /// and carries the run's `claim` until it is done or failed.
    pub async fn claim_push_jobs(&self, rule_id: &str, claim: &str, now: i64, limit: i64) -> Result<Vec<PushJob>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE replication_push_queue SET claim = $1, attempts = attempts + 1
             WHERE id IN (SELECT id FROM replication_push_queue WHERE rule_id = $2 AND next_at <= $3
                          ORDER BY seq LIMIT $4)",
        )
        .bind(claim)
        .bind(rule_id)
        .bind(now)
        .bind(limit)
        .execute(&mut *tx)
        .await?;
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM replication_push_queue WHERE rule_id = $1 AND claim = $2 ORDER BY seq"
        ))
        .bind(rule_id)
        .bind(claim)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(job_row).collect()
    }

    /// A push was sent: the job is done, unless a newer event queued the
    /// tag again meanwhile (then it stays, due).
    pub async fn push_job_done(&self, job: &PushJob) -> Result<()> {
        sqlx::query("DELETE FROM replication_push_queue WHERE id = $1 AND seq = $2")
            .bind(&job.id)
            .bind(job.seq)
            .execute(&self.pool)
            .await?;
        sqlx::query("UPDATE replication_push_queue SET claim = NULL WHERE id = $1")
            .bind(&job.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A push failed: tried again at `next_at` (or at once, when a newer
    /// event queued the tag again meanwhile).
    pub async fn push_job_failed(&self, job: &PushJob, next_at: i64, error: &str) -> Result<()> {
        sqlx::query(
            "UPDATE replication_push_queue SET claim = NULL, last_error = $1,
             next_at = CASE WHEN seq = $2 THEN $3 ELSE next_at END WHERE id = $4",
        )
        .bind(error)
        .bind(job.seq)
        .bind(next_at)
        .bind(&job.id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The pushes queued for a rule, oldest first (at most `limit`).
    pub async fn push_jobs(&self, rule_id: &str, limit: i64) -> Result<Vec<PushJob>> {
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM replication_push_queue WHERE rule_id = $1 ORDER BY seq LIMIT $2"
        ))
        .bind(rule_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_row).collect()
    }
}

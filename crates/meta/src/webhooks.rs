//! Webhooks in storage: hooks, the outbox, deliveries and their attempts.
//!
//! An event is written by [`crate::outbox::append_events`] inside the transaction of the
//! change that caused it (DESIGN invariant 7): it takes the next numbers
//! from one head row (a row lock, so numbers follow commit order) and adds
//! one delivery per enabled hook of the repository or its namespace that
//! wants the event's type. Dispatchers claim due deliveries with a
//! conditional update (a replica never takes another's), oldest first and
//! one at a time per hook, so a receiver sees a hook's events in commit
//! order. Secrets are stored as given (HMAC needs them) and never returned.

use sqlx::Row;

use crate::audit::AuditEvent;
use crate::outbox::{append_events, OutboxEvent};
use crate::rows::{ot, t, Value};
use crate::{now_ms, Meta, Result};

/// A hook as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: String,
    /// Exactly one of these two.
    pub repository: Option<String>,
    pub namespace: Option<String>,
    pub url: String,
    /// Event types, JSON list.
    pub events: Vec<String>,
    pub secret: String,
    /// Extra request headers (name → value), write-only like the secret.
    pub headers: Vec<(String, String)>,
    pub enabled: bool,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A delivery claimed for sending, with what to send.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: String,
    pub hook_id: String,
    pub url: String,
    pub secret: String,
    pub headers: Vec<(String, String)>,
    pub kind: String,
    pub event_id: String,
    pub payload: String,
    /// This attempt's number, from 1.
    pub attempt: i64,
    pub created_at: i64,
}

/// One attempt's outcome, as the delivery log keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attempt {
    pub attempt: i64,
    pub at: i64,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub response: Option<String>,
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAttempt {
    Delivered,
    RetryAt(i64),
    GiveUp,
}

/// A delivery with its log, for the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryLog {
    pub id: String,
    pub hook_id: String,
    pub event_seq: i64,
    pub event_id: String,
    pub kind: String,
    pub status: String,
    pub attempts: Vec<Attempt>,
    pub next_at: i64,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

fn headers_json(h: &[(String, String)]) -> String {
    if h.is_empty() {
        String::new()
    } else {
        let map: serde_json::Map<String, serde_json::Value> = h
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        serde_json::Value::Object(map).to_string()
    }
}

fn headers_of(json: &str) -> Vec<(String, String)> {
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json)
        .map(|m| {
            m.into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

const HOOK_COLUMNS: &str =
    "id, repository, namespace, url, events, secret, headers, enabled, created_by, created_at, updated_at";

fn hook(r: &sqlx::any::AnyRow) -> Result<Webhook> {
    Ok(Webhook {
        id: r.try_get(0)?,
        repository: r.try_get(1)?,
        namespace: r.try_get(2)?,
        url: r.try_get(3)?,
        events: serde_json::from_str(&r.try_get::<String, _>(4)?).unwrap_or_default(),
        secret: r.try_get(5)?,
        headers: headers_of(&r.try_get::<String, _>(6)?),
        enabled: r.try_get::<i64, _>(7)? != 0,
        created_by: r.try_get(8)?,
        created_at: r.try_get(9)?,
        updated_at: r.try_get(10)?,
    })
}

impl Meta {
    pub async fn create_webhook(&self, h: &Webhook, event: &AuditEvent) -> Result<()> {
        let sql =
            format!("INSERT INTO webhooks ({HOOK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)");
        let values = vec![
            t(&h.id),
            ot(h.repository.as_deref()),
            ot(h.namespace.as_deref()),
            t(&h.url),
            t(serde_json::to_string(&h.events).expect("json")),
            t(&h.secret),
            t(headers_json(&h.headers)),
            Value::Int(Some(i64::from(h.enabled))),
            t(&h.created_by),
            Value::Int(Some(now_ms())),
        ];
        self.write(&[(sql.as_str(), values)], event).await?;
        Ok(())
    }

    /// Replaces a hook's settings (the caller merged what changed).
    pub async fn update_webhook(&self, h: &Webhook, event: &AuditEvent) -> Result<bool> {
        let sql = "UPDATE webhooks SET url = $1, events = $2, secret = $3, headers = $4, enabled = $5, updated_at = $6
                   WHERE id = $7";
        let values = vec![
            t(&h.url),
            t(serde_json::to_string(&h.events).expect("json")),
            t(&h.secret),
            t(headers_json(&h.headers)),
            Value::Int(Some(i64::from(h.enabled))),
            Value::Int(Some(now_ms())),
            t(&h.id),
        ];
        self.write_if_changed(&[(sql, values)], event).await
    }

    /// Deletes a hook with its deliveries and their log.
    pub async fn delete_webhook(&self, id: &str, event: &AuditEvent) -> Result<bool> {
        let statements: Vec<(&str, Vec<Value>)> = [
            "DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE hook_id = $1)",
            "DELETE FROM deliveries WHERE hook_id = $1",
            "DELETE FROM webhooks WHERE id = $1",
        ]
        .into_iter()
        .map(|sql| (sql, vec![t(id)]))
        .collect();
        self.write_if_changed(&statements, event).await
    }

    pub async fn webhook(&self, id: &str) -> Result<Option<Webhook>> {
        let row = sqlx::query(&format!("SELECT {HOOK_COLUMNS} FROM webhooks WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(hook).transpose()
    }

    /// The hooks of a repository (`namespace` false) or of a namespace.
    pub async fn webhooks(&self, name: &str, namespace: bool) -> Result<Vec<Webhook>> {
        let column = if namespace { "namespace" } else { "repository" };
        let rows = sqlx::query(&format!(
            "SELECT {HOOK_COLUMNS} FROM webhooks WHERE {column} = $1 ORDER BY created_at, id"
        ))
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(hook).collect()
    }

    /// Writes events outside any other change (a test ping), optionally to
    /// one hook only.
    pub async fn emit(&self, events: &[OutboxEvent], only_hook: Option<&str>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        append_events(&mut tx, events, only_hook).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Claims up to `limit` due deliveries for `lease_ms`: for each hook
    /// only its oldest unfinished one (so a hook's events arrive in commit
    /// order), and only if no other dispatcher holds it. A claim whose
    /// lease ran out (its dispatcher died) is taken over.
    pub async fn claim_deliveries(&self, lease_ms: i64, limit: i64) -> Result<Vec<DueDelivery>> {
        let now = now_ms();
        // Most polls find nothing due: a read answers that without taking
        // the database's write lock (on SQLite, the one every push and
        // pull-audit batch needs).
        let due = sqlx::query(
            "SELECT 1 FROM deliveries WHERE (status = 'pending' AND next_at <= $1)
               OR (status = 'delivering' AND claimed_until < $1) LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let claim = uuid::Uuid::new_v4().to_string();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE deliveries SET status = 'delivering', claim = $1, claimed_until = $2, attempts = attempts + 1
             WHERE id IN (
                SELECT d.id FROM deliveries d
                WHERE ((d.status = 'pending' AND d.next_at <= $3)
                       OR (d.status = 'delivering' AND d.claimed_until < $3))
                AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.hook_id = d.hook_id AND e.event_seq < d.event_seq
                                AND e.status IN ('pending', 'delivering'))
                ORDER BY d.event_seq LIMIT $4)
             AND ((status = 'pending' AND next_at <= $3) OR (status = 'delivering' AND claimed_until < $3))",
        )
        .bind(&claim)
        .bind(now + lease_ms)
        .bind(now)
        .bind(limit)
        .execute(&mut *tx)
        .await?;
        let rows = sqlx::query(
            "SELECT d.id, d.hook_id, h.url, h.secret, h.headers, o.kind, o.id, o.payload, d.attempts, d.created_at
             FROM deliveries d JOIN webhooks h ON h.id = d.hook_id JOIN outbox o ON o.seq = d.event_seq
             WHERE d.claim = $1 ORDER BY d.event_seq",
        )
        .bind(&claim)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| {
                Ok(DueDelivery {
                    id: r.try_get(0)?,
                    hook_id: r.try_get(1)?,
                    url: r.try_get(2)?,
                    secret: r.try_get(3)?,
                    headers: headers_of(&r.try_get::<String, _>(4)?),
                    kind: r.try_get(5)?,
                    event_id: r.try_get(6)?,
                    payload: r.try_get(7)?,
                    attempt: r.try_get(8)?,
                    created_at: r.try_get(9)?,
                })
            })
            .collect()
    }

    /// Records an attempt and what follows it.
    pub async fn finish_attempt(&self, delivery: &str, a: &Attempt, then: AfterAttempt) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO delivery_attempts (delivery_id, attempt, at, status_code, latency_ms, error, response)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(delivery)
        .bind(a.attempt)
        .bind(a.at)
        .bind(a.status_code)
        .bind(a.latency_ms)
        .bind(a.error.as_deref())
        .bind(a.response.as_deref())
        .execute(&mut *tx)
        .await?;
        let (status, next_at, finished) = match then {
            AfterAttempt::Delivered => ("delivered", a.at, Some(a.at)),
            AfterAttempt::RetryAt(t) => ("pending", t, None),
            AfterAttempt::GiveUp => ("failed", a.at, Some(a.at)),
        };
        sqlx::query(
            "UPDATE deliveries SET status = $1, next_at = $2, finished_at = $3, claim = NULL, claimed_until = NULL WHERE id = $4",
        )
        .bind(status)
        .bind(next_at)
        .bind(finished)
        .bind(delivery)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A hook's deliveries, newest first, before event number `before`.
    pub async fn deliveries(&self, hook_id: &str, before: Option<i64>, limit: i64) -> Result<Vec<DeliveryLog>> {
        let rows = sqlx::query(
            "SELECT d.id, d.hook_id, d.event_seq, o.id, o.kind, d.status, d.next_at, d.created_at, d.finished_at
             FROM deliveries d JOIN outbox o ON o.seq = d.event_seq
             WHERE d.hook_id = $1 AND ($2 IS NULL OR d.event_seq < $2)
             ORDER BY d.event_seq DESC, d.created_at DESC LIMIT $3",
        )
        .bind(hook_id)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.try_get(0)?;
            let attempts = sqlx::query(
                "SELECT attempt, at, status_code, latency_ms, error, response FROM delivery_attempts
                 WHERE delivery_id = $1 ORDER BY attempt",
            )
            .bind(&id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|a| {
                Ok(Attempt {
                    attempt: a.try_get(0)?,
                    at: a.try_get(1)?,
                    status_code: a.try_get(2)?,
                    latency_ms: a.try_get(3)?,
                    error: a.try_get(4)?,
                    response: a.try_get(5)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
            out.push(DeliveryLog {
                id,
                hook_id: r.try_get(1)?,
                event_seq: r.try_get(2)?,
                event_id: r.try_get(3)?,
                kind: r.try_get(4)?,
                status: r.try_get(5)?,
                attempts,
                next_at: r.try_get(6)?,
                created_at: r.try_get(7)?,
                finished_at: r.try_get(8)?,
            });
        }
        Ok(out)
    }

    /// Queues a delivery of the same event to the same hook again, as a new
    /// attempt series; returns its id, `None` if there is no such delivery.
    pub async fn redeliver(&self, delivery: &str, event: &AuditEvent) -> Result<Option<String>> {
        let id = uuid::Uuid::new_v4().to_string();
        // One INSERT … SELECT: the transaction starts with its write.
        let sql = "INSERT INTO deliveries (id, hook_id, event_seq, status, next_at, created_at)
                   SELECT $1, hook_id, event_seq, 'pending', $2, $2 FROM deliveries WHERE id = $3";
        let values = vec![t(&id), Value::Int(Some(now_ms())), t(delivery)];
        Ok(self.write_if_changed(&[(sql, values)], event).await?.then_some(id))
    }

    /// The hook a delivery belongs to.
    pub async fn delivery_hook(&self, delivery: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT hook_id FROM deliveries WHERE id = $1")
            .bind(delivery)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Deliveries not finished, and the age in ms of the oldest (metrics).
    pub async fn delivery_backlog(&self) -> Result<(i64, i64)> {
        let row = sqlx::query(
            "SELECT COUNT(*), COALESCE(MIN(created_at), 0) FROM deliveries WHERE status IN ('pending', 'delivering')",
        )
        .fetch_one(&self.pool)
        .await?;
        let (n, oldest): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        Ok((n, if n == 0 { 0 } else { now_ms() - oldest }))
    }
}

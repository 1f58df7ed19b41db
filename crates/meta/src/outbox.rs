//! The webhook outbox's writer: events enter it inside the transaction of
//! the change that caused it, with a delivery for each hook that wants
//! them. Below the audit trail (which writes a record's events with it)
//! and the webhooks module (which reads and delivers them). Events that
//! want a push replicated queue it here too (`replication::queue_pushes`).

use sqlx::Row;

use crate::rows::namespace_of;
use crate::{now_ms, Result};

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// An event to deliver: its type (`TAG_PUSH`, …), the repository it is
/// about, and its JSON payload as receivers get it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxEvent {
    pub id: String,
    pub kind: String,
    pub repository: String,
    pub payload: String,
}

/// Writes events to the outbox, in the caller's transaction, with a
/// delivery for every hook that wants each. `only_hook` limits the
/// deliveries to one hook (a test ping).
pub(crate) async fn append_events(tx: &mut Tx<'_>, events: &[OutboxEvent], only_hook: Option<&str>) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let head = sqlx::query("UPDATE outbox_head SET seq = seq + $1 WHERE id = 1 RETURNING seq")
        .bind(events.len() as i64)
        .fetch_one(&mut **tx)
        .await?;
    let last: i64 = head.try_get(0)?;
    let now = now_ms();
    let first = last - events.len() as i64 + 1;
    // Push replication's queue fills in the same transaction: no event
    // that wants a push is committed without it (a test ping wants none).
    if only_hook.is_none() {
        let numbered: Vec<(i64, &OutboxEvent)> =
            events.iter().enumerate().map(|(i, e)| (first + i as i64, e)).collect();
        crate::replication::queue_pushes(tx, &numbered).await?;
    }
    for (i, e) in events.iter().enumerate() {
        let seq = first + i as i64;
        sqlx::query(
            "INSERT INTO outbox (seq, id, kind, repository, payload, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(seq)
        .bind(&e.id)
        .bind(&e.kind)
        .bind(&e.repository)
        .bind(&e.payload)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        let hooks = sqlx::query(
            "SELECT id, events FROM webhooks
             WHERE enabled <> 0 AND (repository = $1 OR namespace = $2) AND ($3 IS NULL OR id = $3)",
        )
        .bind(&e.repository)
        .bind(namespace_of(&e.repository))
        .bind(only_hook)
        .fetch_all(&mut **tx)
        .await?;
        for h in hooks {
            let id: String = h.try_get(0)?;
            let wanted: Vec<String> = serde_json::from_str(&h.try_get::<String, _>(1)?).unwrap_or_default();
            if only_hook.is_none() && !wanted.contains(&e.kind) {
                continue;
            }
            sqlx::query(
                "INSERT INTO deliveries (id, hook_id, event_seq, status, next_at, created_at) VALUES ($1, $2, $3, 'pending', $4, $4)",
            )
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(&id)
            .bind(seq)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

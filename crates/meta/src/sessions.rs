//! Web UI sessions. The browser holds a random id; the row holds only its
//! SHA-256, the account, the CSRF token of the session's forms and when it
//! ends. Expiry is decided by the caller (idle and absolute limits) and
//! stored, so every replica and a restarted server agree.

use sqlx::Row;

use crate::{Meta, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiSession {
    pub account: String,
    pub csrf: String,
    pub created_at: i64,
    pub seen_at: i64,
    pub expires_at: i64,
}

impl Meta {
    pub async fn create_session(&self, id_hash: &str, s: &UiSession) -> Result<()> {
        // Ended sessions go when new ones start: no sweeper needed.
        sqlx::query("DELETE FROM ui_sessions WHERE expires_at <= $1")
            .bind(s.created_at)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO ui_sessions (id_hash, account, csrf, created_at, seen_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id_hash)
        .bind(&s.account)
        .bind(&s.csrf)
        .bind(s.created_at)
        .bind(s.seen_at)
        .bind(s.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The session with this id hash, unless it has ended by `now`.
    pub async fn session(&self, id_hash: &str, now: i64) -> Result<Option<UiSession>> {
        let row = sqlx::query(
            "SELECT account, csrf, created_at, seen_at, expires_at FROM ui_sessions
             WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(UiSession {
                account: r.try_get(0)?,
                csrf: r.try_get(1)?,
                created_at: r.try_get(2)?,
                seen_at: r.try_get(3)?,
                expires_at: r.try_get(4)?,
            })
        })
        .transpose()
    }

    /// Records activity: the session now ends at `expires_at`.
    pub async fn touch_session(&self, id_hash: &str, seen_at: i64, expires_at: i64) -> Result<()> {
        sqlx::query("UPDATE ui_sessions SET seen_at = $1, expires_at = $2 WHERE id_hash = $3")
            .bind(seen_at)
            .bind(expires_at)
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM ui_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }
}

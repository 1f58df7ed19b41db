//! Public keys that belong to accounts. A team's trusted keys are its
//! members' current (unrevoked) keys, read at the moment they are needed,
//! so revoking a key or removing a member takes effect at once.

use sqlx::Row;

use crate::audit::AuditEvent;
use crate::rows::{t, Value};
use crate::{now_ms, Meta, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountKey {
    /// `sha256:<hex>` of the key's DER SubjectPublicKeyInfo.
    pub id: String,
    pub account: String,
    pub pem: String,
    pub name: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

fn key(r: &sqlx::any::AnyRow) -> Result<AccountKey> {
    Ok(AccountKey {
        id: r.try_get(0)?,
        account: r.try_get(1)?,
        pem: r.try_get(2)?,
        name: r.try_get(3)?,
        created_at: r.try_get(4)?,
        revoked_at: r.try_get(5)?,
    })
}

impl Meta {
    pub async fn add_key(&self, k: &AccountKey, event: &AuditEvent) -> Result<()> {
        let sql = "INSERT INTO account_keys (id, account, pem, name, created_at) VALUES ($1, $2, $3, $4, $5)";
        let values = vec![
            t(&k.id),
            t(&k.account),
            t(&k.pem),
            t(&k.name),
            Value::Int(Some(now_ms())),
        ];
        self.write(&[(sql, values)], event).await?;
        Ok(())
    }

    pub async fn keys_of(&self, account: &str) -> Result<Vec<AccountKey>> {
        let rows = sqlx::query(
            "SELECT id, account, pem, name, created_at, revoked_at FROM account_keys WHERE account = $1 ORDER BY created_at, id",
        )
        .bind(account)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key).collect()
    }

    /// Revokes a key of `account`; `false` if it has no such live key.
    pub async fn revoke_key(&self, account: &str, id: &str, event: &AuditEvent) -> Result<bool> {
        let sql = "UPDATE account_keys SET revoked_at = $1 WHERE account = $2 AND id = $3 AND revoked_at IS NULL";
        self.write_if_changed(&[(sql, vec![Value::Int(Some(now_ms())), t(account), t(id)])], event)
            .await
    }

    /// When each signer a rule names was created: `(label, created_at)`
    /// with label `team org/name` or `account name`, `None` when it does
    /// not exist. A signer created after the rule was saved is a new one of
    /// the same name (the rule was refused while it was missing), so the
    /// caller can fail closed on it.
    pub async fn signers_created(&self, teams: &[String], accounts: &[String]) -> Result<Vec<(String, Option<i64>)>> {
        let mut out = Vec::new();
        for team in teams {
            let (org, name) = team.split_once('/').unwrap_or((team.as_str(), ""));
            let row = sqlx::query("SELECT created_at FROM teams WHERE org = $1 AND name = $2")
                .bind(org)
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
            out.push((format!("team {team}"), row.map(|r| r.try_get(0)).transpose()?));
        }
        for account in accounts {
            let row = sqlx::query("SELECT created_at FROM accounts WHERE name = $1")
                .bind(account)
                .fetch_optional(&self.pool)
                .await?;
            out.push((format!("account {account}"), row.map(|r| r.try_get(0)).transpose()?));
        }
        Ok(out)
    }

    /// The current keys of the members of `teams` (`org/team`) and of
    /// `accounts`, as (key id, account, PEM).
    pub async fn trusted_keys(&self, teams: &[String], accounts: &[String]) -> Result<Vec<(String, String, String)>> {
        let mut out: Vec<(String, String, String)> = Vec::new();
        let mut push = |rows: Vec<sqlx::any::AnyRow>| -> Result<()> {
            for r in rows {
                let k: (String, String, String) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
                if !out.iter().any(|o| o.0 == k.0) {
                    out.push(k);
                }
            }
            Ok(())
        };
        for team in teams {
            let Some((org, name)) = team.split_once('/') else {
                continue;
            };
            let rows = sqlx::query(
                "SELECT k.id, k.account, k.pem FROM account_keys k JOIN team_members m ON m.account = k.account
                 WHERE m.org = $1 AND m.team = $2 AND k.revoked_at IS NULL ORDER BY k.id",
            )
            .bind(org)
            .bind(name)
            .fetch_all(&self.pool)
            .await?;
            push(rows)?;
        }
        for account in accounts {
            let rows = sqlx::query(
                "SELECT id, account, pem FROM account_keys WHERE account = $1 AND revoked_at IS NULL ORDER BY id",
            )
            .bind(account)
            .fetch_all(&self.pool)
            .await?;
            push(rows)?;
        }
        Ok(out)
    }

    /// Stores a service account's server-side signing key (sealed by the
    /// caller) and registers its public half, in one transaction.
    pub async fn put_signing_key(&self, public: &AccountKey, sealed: &str, event: &AuditEvent) -> Result<()> {
        let now = Value::Int(Some(now_ms()));
        self.write(
            &[
                (
                    "INSERT INTO signing_keys (account, key_id, sealed, created_at) VALUES ($1, $2, $3, $4)",
                    vec![t(&public.account), t(&public.id), t(sealed), now.clone()],
                ),
                (
                    "INSERT INTO account_keys (id, account, pem, name, created_at) VALUES ($1, $2, $3, $4, $5)",
                    vec![t(&public.id), t(&public.account), t(&public.pem), t(&public.name), now],
                ),
            ],
            event,
        )
        .await?;
        Ok(())
    }

    /// Replaces `account`'s sealed signing key `old` by `new` (the same key
    /// sealed afresh); `false` if the row no longer holds `old`.
    pub async fn reseal_signing_key(&self, account: &str, old: &str, new: &str, event: &AuditEvent) -> Result<bool> {
        let sql = "UPDATE signing_keys SET sealed = $1 WHERE account = $2 AND sealed = $3";
        self.write_if_changed(&[(sql, vec![t(new), t(account), t(old)])], event)
            .await
    }

    /// A service account's signing key: (key id, sealed key).
    pub async fn signing_key(&self, account: &str) -> Result<Option<(String, String)>> {
        let row = sqlx::query("SELECT key_id, sealed FROM signing_keys WHERE account = $1")
            .bind(account)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    /// The registry's attestation keys, oldest first: (id, sealed key,
    /// public PEM, created at).
    pub async fn registry_keys(&self) -> Result<Vec<RegistryKey>> {
        let rows = sqlx::query("SELECT id, sealed, pem, created_at FROM registry_keys ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(RegistryKey {
                    id: r.try_get(0)?,
                    sealed: r.try_get(1)?,
                    pem: r.try_get(2)?,
                    created_at: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Adds a registry attestation key (sealed by the caller); the newest
    /// signs from now on.
    pub async fn add_registry_key(&self, key: &RegistryKey, event: &AuditEvent) -> Result<()> {
        let sql = "INSERT INTO registry_keys (id, sealed, pem, created_at) VALUES ($1, $2, $3, $4)";
        let values = vec![
            t(&key.id),
            t(&key.sealed),
            t(&key.pem),
            Value::Int(Some(key.created_at)),
        ];
        self.write(&[(sql, values)], event).await?;
        Ok(())
    }
}

/// One of the registry's own attestation keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryKey {
    /// `sha256:<hex>` of the public key's DER, as account keys are named.
    pub id: String,
    pub sealed: String,
    pub pem: String,
    pub created_at: i64,
}

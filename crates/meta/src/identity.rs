//! Accounts (users, organizations, service accounts), teams, grants, API
//! tokens and repository settings. Every change is written together with
//! its audit record, in one transaction.

use sqlx::Row;

use crate::audit::{append, AuditEvent};
use crate::rows::{ot, t, Value};
use crate::{is_fk_violation, now_ms, Meta, MetaError, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    /// `user`, `org` or `service`.
    pub kind: String,
    pub password_hash: Option<String>,
    pub admin: bool,
    /// For a service account, the user or organization that owns it.
    pub owner: Option<String>,
    pub created_at: i64,
    /// When its password last changed: tokens issued before then are void.
    pub password_changed_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    pub namespace: String,
    /// `None`: the whole namespace.
    pub repository: Option<String>,
    pub account: Option<String>,
    /// `(organization, team)`.
    pub team: Option<(String, String)>,
    pub role: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    pub id: String,
    pub account: String,
    pub name: String,
    /// `api` (shown once to a person or machine) or `refresh` (OAuth2).
    pub kind: String,
    pub secret_hash: String,
    /// Space-separated `pattern:actions` limits.
    pub scopes: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryInfo {
    pub name: String,
    pub visibility: String,
    pub created_at: i64,
}

const ACCOUNT_COLUMNS: &str = "name, kind, password_hash, admin, owner, created_at, password_changed_at";
const TOKEN_COLUMNS: &str =
    "id, account, name, kind, secret_hash, scopes, created_at, expires_at, last_used_at, revoked_at";

fn account(r: &sqlx::any::AnyRow) -> Result<Account> {
    Ok(Account {
        name: r.try_get(0)?,
        kind: r.try_get(1)?,
        password_hash: r.try_get(2)?,
        admin: r.try_get::<i64, _>(3)? != 0,
        owner: r.try_get(4)?,
        created_at: r.try_get(5)?,
        password_changed_at: r.try_get(6)?,
    })
}

fn token(r: &sqlx::any::AnyRow) -> Result<StoredToken> {
    Ok(StoredToken {
        id: r.try_get(0)?,
        account: r.try_get(1)?,
        name: r.try_get(2)?,
        kind: r.try_get(3)?,
        secret_hash: r.try_get(4)?,
        scopes: r.try_get(5)?,
        created_at: r.try_get(6)?,
        expires_at: r.try_get(7)?,
        last_used_at: r.try_get(8)?,
        revoked_at: r.try_get(9)?,
    })
}

fn reserved(name: &str) -> Result<()> {
    if crate::RESERVED_NAMES.contains(&name) {
        return Err(MetaError::Reserved(name.to_string()));
    }
    Ok(())
}

/// The bounds of the repository names in `namespace`: `ns/` up to `ns0`
/// (`0` follows `/` in byte order), so a range scan of the primary key
/// finds them without LIKE and its escaping.
fn namespace_range(namespace: &str) -> (String, String) {
    (format!("{namespace}/"), format!("{namespace}0"))
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => d.is_unique_violation() || d.code().is_some_and(|c| c == "23505" || c == "1555"),
        _ => false,
    }
}

impl Meta {
    /// Runs `statements` and appends `event` in one transaction; returns the
    /// rows each statement touched. A duplicate key is [`MetaError::Conflict`],
    /// a dangling reference [`MetaError::Missing`].
    pub(crate) async fn write(&self, statements: &[(&str, Vec<Value>)], event: &AuditEvent) -> Result<Vec<u64>> {
        self.write_unless_immutable(statements, event, &[]).await
    }

    /// Runs `statements` and, only if the last one touched a row, appends
    /// `event`, in one transaction: an update or delete of something that
    /// isn't there leaves no record. Returns whether it touched a row.
    pub(crate) async fn write_if_changed(&self, statements: &[(&str, Vec<Value>)], event: &AuditEvent) -> Result<bool> {
        self.run_statements(statements, event, &[], true)
            .await
            .map(|t| t.last().is_some_and(|n| *n > 0))
    }

    /// As [`Meta::write`], refused with [`MetaError::TagImmutable`] when one
    /// of `repos` holds an immutable tag (checked in the same transaction).
    async fn write_unless_immutable(
        &self,
        statements: &[(&str, Vec<Value>)],
        event: &AuditEvent,
        repos: &[String],
    ) -> Result<Vec<u64>> {
        self.run_statements(statements, event, repos, false).await
    }

    async fn run_statements(
        &self,
        statements: &[(&str, Vec<Value>)],
        event: &AuditEvent,
        repos: &[String],
        only_if_changed: bool,
    ) -> Result<Vec<u64>> {
        let mut tx = self.pool.begin().await?;
        if let Some(first) = repos.first() {
            crate::immutability::lock(&mut tx, first).await?;
            crate::immutability::refuse_repositories(&mut tx, repos).await?;
        }
        let mut touched = Vec::with_capacity(statements.len());
        for (sql, values) in statements {
            let mut q = sqlx::query(sql);
            for v in values {
                q = match v {
                    Value::Text(s) => q.bind(s.clone()),
                    Value::Int(i) => q.bind(*i),
                };
            }
            match q.execute(&mut *tx).await {
                Ok(r) => touched.push(r.rows_affected()),
                Err(e) if is_unique_violation(&e) => return Err(MetaError::Conflict(event.action.clone())),
                Err(e) if is_fk_violation(&e) => return Err(MetaError::Missing(event.action.clone())),
                Err(e) => return Err(e.into()),
            }
        }
        if !only_if_changed || touched.last().is_some_and(|n| *n > 0) {
            append(&mut tx, event, &self.chain).await?;
        }
        tx.commit().await?;
        Ok(touched)
    }

    // ---- accounts -----------------------------------------------------

    pub async fn create_account(&self, a: &Account, event: &AuditEvent) -> Result<()> {
        reserved(&a.name)?;
        let sql = "INSERT INTO accounts (name, kind, password_hash, admin, owner, created_at) VALUES ($1, $2, $3, $4, $5, $6)";
        let values = vec![
            t(&a.name),
            t(&a.kind),
            ot(a.password_hash.as_deref()),
            Value::Int(Some(a.admin as i64)),
            ot(a.owner.as_deref()),
            Value::Int(Some(now_ms())),
        ];
        self.write(&[(sql, values)], event).await?;
        Ok(())
    }

    /// An organization with an `owners` team holding `owner`. Unless
    /// `claim` (a system administrator creates it), a name that is already a
    /// namespace holding repositories is refused with
    /// [`MetaError::NamespaceInUse`]: whoever creates the organization would
    /// own them. The check and the insert are one statement.
    pub async fn create_org(&self, name: &str, owner: &str, claim: bool, event: &AuditEvent) -> Result<()> {
        reserved(name)?;
        let now = now_ms();
        let (low, high) = namespace_range(name);
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO accounts (name, kind, admin, created_at) SELECT $1, 'org', 0, $2
             WHERE $3 OR NOT EXISTS (SELECT 1 FROM repositories WHERE name >= $4 AND name < $5)",
        )
        .bind(name)
        .bind(now)
        .bind(claim)
        .bind(&low)
        .bind(&high)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(r) if r.rows_affected() == 0 => return Err(MetaError::NamespaceInUse(name.to_string())),
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(MetaError::Conflict(event.action.clone())),
            Err(e) => return Err(e.into()),
        }
        sqlx::query("INSERT INTO teams (org, name, created_at) VALUES ($1, 'owners', $2)")
            .bind(name)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let member = sqlx::query("INSERT INTO team_members (org, team, account) VALUES ($1, 'owners', $2)")
            .bind(name)
            .bind(owner)
            .execute(&mut *tx)
            .await;
        match member {
            Err(e) if is_fk_violation(&e) => return Err(MetaError::Missing(event.action.clone())),
            other => other?,
        };
        append(&mut tx, event, &self.chain).await?;
        tx.commit().await?;
        Ok(())
    }

    /// One page of the repositories `account` may pull from, after `last`:
    /// public ones, those in its own namespace (a user's), in organizations
    /// whose owners it is among, and those granted to it or its teams (any
    /// role includes pull). `everything`: an administrator, or anonymous
    /// pull allowed everywhere. One query per page, however many
    /// repositories there are; the caller applies a token's limits.
    /// `containing`: only names with this text in them (empty: all).
    pub async fn readable_repositories(
        &self,
        account: Option<&Account>,
        everything: bool,
        last: Option<&str>,
        n: i64,
        containing: &str,
    ) -> Result<Vec<String>> {
        let name = account.map_or("", |a| a.name.as_str());
        let (low, high) = match account {
            Some(a) if a.kind == "user" => namespace_range(&a.name),
            _ => (String::new(), String::new()),
        };
        let rows = sqlx::query(
            "SELECT r.name FROM repositories r
             WHERE r.name > $1 AND ($7 = '' OR r.name LIKE $7 ESCAPE '\\') AND (
                $2 OR r.visibility = 'public'
                OR (r.name >= $3 AND r.name < $4)
                OR EXISTS (SELECT 1 FROM team_members m WHERE m.account = $5 AND m.team = 'owners'
                           AND r.name >= m.org || '/' AND r.name < m.org || '0')
                OR EXISTS (SELECT 1 FROM grants g
                           WHERE (g.repository = r.name
                                  OR (g.repository IS NULL AND r.name >= g.namespace || '/' AND r.name < g.namespace || '0'))
                             AND (g.account = $5 OR EXISTS (SELECT 1 FROM team_members t
                                  WHERE t.org = g.team_org AND t.team = g.team AND t.account = $5))))
             ORDER BY r.name LIMIT $6",
        )
        .bind(last.unwrap_or(""))
        .bind(everything)
        .bind(&low)
        .bind(&high)
        .bind(name)
        .bind(n)
        .bind(crate::rows::name_filter(containing))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Whether any repository lives in `namespace`.
    pub async fn namespace_in_use(&self, namespace: &str) -> Result<bool> {
        let (low, high) = namespace_range(namespace);
        let row = sqlx::query("SELECT 1 FROM repositories WHERE name >= $1 AND name < $2 LIMIT 1")
            .bind(&low)
            .bind(&high)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    pub async fn account(&self, name: &str) -> Result<Option<Account>> {
        let row = sqlx::query(&format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(account).transpose()
    }

    /// Accounts of one kind (`user`, `org`, `service`), optionally owned by `owner`.
    pub async fn accounts(&self, kind: &str, owner: Option<&str>) -> Result<Vec<Account>> {
        let rows = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE kind = $1 AND ($2 IS NULL OR owner = $2) ORDER BY name"
        ))
        .bind(kind)
        .bind(owner)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(account).collect()
    }

    pub async fn any_admin(&self) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM accounts WHERE admin <> 0 LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Sets a user's password, dates the change (registry tokens issued
    /// before it stop working on the management API) and revokes the
    /// user's refresh tokens: whoever held the old password loses the
    /// sessions it made.
    pub async fn set_password(&self, name: &str, hash: &str, event: &AuditEvent) -> Result<bool> {
        let now = Value::Int(Some(now_ms()));
        let touched = self
            .write(
                &[
                    (
                        "UPDATE accounts SET password_hash = $1, password_changed_at = $2 WHERE name = $3 AND kind = 'user'",
                        vec![t(hash), now.clone(), t(name)],
                    ),
                    (
                        "UPDATE api_tokens SET revoked_at = $1 WHERE account = $2 AND kind = 'refresh' AND revoked_at IS NULL",
                        vec![now, t(name)],
                    ),
                ],
                event,
            )
            .await?;
        Ok(touched[0] > 0)
    }

    /// Deletes an account with everything that lives in its namespace: its
    /// repositories (tags, manifests, blob links, uploads, promotion
    /// policies and provenance; blob bytes are left to garbage collection),
    /// the grants on it, its teams, and the
    /// service accounts it owns. Nothing of it is left for a later account
    /// of the same name to inherit. Returns the repositories deleted, or
    /// `None` when there was no such account.
    pub async fn delete_account(&self, name: &str, event: &AuditEvent) -> Result<Option<Vec<String>>> {
        let (low, high) = namespace_range(name);
        let repos = sqlx::query("SELECT name FROM repositories WHERE name >= $1 AND name < $2 ORDER BY name")
            .bind(&low)
            .bind(&high)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<std::result::Result<Vec<String>, _>>()?;
        let mut statements: Vec<(&str, Vec<Value>)> = [
            "DELETE FROM tags WHERE repo >= $1 AND repo < $2",
            "DELETE FROM manifest_children WHERE repo >= $1 AND repo < $2",
            "DELETE FROM manifest_blobs WHERE repo >= $1 AND repo < $2",
            "DELETE FROM manifests WHERE repo >= $1 AND repo < $2",
            "DELETE FROM repo_blobs WHERE repo >= $1 AND repo < $2",
            "DELETE FROM uploads WHERE repo >= $1 AND repo < $2",
            "DELETE FROM promotion_policies WHERE repository >= $1 AND repository < $2",
            "DELETE FROM promotions WHERE repository >= $1 AND repository < $2",
            "DELETE FROM repositories WHERE name >= $1 AND name < $2",
        ]
        .into_iter()
        .map(|sql| (sql, vec![t(&low), t(&high)]))
        .collect();
        statements.push(("DELETE FROM accounts WHERE name = $1", vec![t(name)]));
        let mut event = event.clone();
        if !repos.is_empty() {
            let detail = event.detail.take().map(|d| format!("{d}; ")).unwrap_or_default();
            event.detail = Some(format!("{detail}repositories deleted: {}", repos.join(" ")));
        }
        let touched = self.write_unless_immutable(&statements, &event, &repos).await?;
        Ok((*touched.last().expect("statements") > 0).then_some(repos))
    }

    // ---- teams --------------------------------------------------------

    pub async fn create_team(&self, org: &str, team: &str, event: &AuditEvent) -> Result<()> {
        let sql = "INSERT INTO teams (org, name, created_at) VALUES ($1, $2, $3)";
        self.write(&[(sql, vec![t(org), t(team), Value::Int(Some(now_ms()))])], event)
            .await?;
        Ok(())
    }

    pub async fn delete_team(&self, org: &str, team: &str, event: &AuditEvent) -> Result<bool> {
        let sql = "DELETE FROM teams WHERE org = $1 AND name = $2";
        Ok(self.write(&[(sql, vec![t(org), t(team)])], event).await?[0] > 0)
    }

    /// The teams of `org` with their members, by name.
    pub async fn teams(&self, org: &str) -> Result<Vec<(String, Vec<String>)>> {
        let rows = sqlx::query(
            "SELECT t.name, m.account FROM teams t LEFT JOIN team_members m ON m.org = t.org AND m.team = t.name
             WHERE t.org = $1 ORDER BY t.name, m.account",
        )
        .bind(org)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for r in rows {
            let team: String = r.try_get(0)?;
            let member: Option<String> = r.try_get(1)?;
            if out.last().is_none_or(|(t, _)| *t != team) {
                out.push((team, Vec::new()));
            }
            out.last_mut().expect("pushed").1.extend(member);
        }
        Ok(out)
    }

    pub async fn add_member(&self, org: &str, team: &str, account: &str, event: &AuditEvent) -> Result<()> {
        let sql = "INSERT INTO team_members (org, team, account) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
        self.write(&[(sql, vec![t(org), t(team), t(account)])], event).await?;
        Ok(())
    }

    pub async fn remove_member(&self, org: &str, team: &str, account: &str, event: &AuditEvent) -> Result<bool> {
        let sql = "DELETE FROM team_members WHERE org = $1 AND team = $2 AND account = $3";
        Ok(self.write(&[(sql, vec![t(org), t(team), t(account)])], event).await?[0] > 0)
    }

    pub async fn is_member(&self, org: &str, team: &str, account: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM team_members WHERE org = $1 AND team = $2 AND account = $3")
            .bind(org)
            .bind(team)
            .bind(account)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    // ---- grants -------------------------------------------------------

    /// Roles granted to `account` (directly or through its teams) on the
    /// whole of `namespace` or on `repository` in it.
    pub async fn granted_roles(&self, account: &str, namespace: &str, repository: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT g.role FROM grants g
             WHERE g.namespace = $1 AND (g.repository IS NULL OR g.repository = $2)
               AND (g.account = $3 OR EXISTS (SELECT 1 FROM team_members m
                    WHERE m.org = g.team_org AND m.team = g.team AND m.account = $3))",
        )
        .bind(namespace)
        .bind(repository)
        .bind(account)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    pub async fn create_grant(&self, g: &Grant, event: &AuditEvent) -> Result<()> {
        let sql = "INSERT INTO grants (id, namespace, repository, account, team_org, team, role, created_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        let (org, team) = g.team.clone().unzip();
        let values = vec![
            t(&g.id),
            t(&g.namespace),
            ot(g.repository.as_deref()),
            ot(g.account.as_deref()),
            Value::Text(org),
            Value::Text(team),
            t(&g.role),
            Value::Int(Some(now_ms())),
        ];
        self.write(&[(sql, values)], event).await?;
        Ok(())
    }

    pub async fn grants(&self, namespace: &str) -> Result<Vec<Grant>> {
        let rows = sqlx::query(
            "SELECT id, namespace, repository, account, team_org, team, role, created_at FROM grants
             WHERE namespace = $1 ORDER BY created_at, id",
        )
        .bind(namespace)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(grant).collect()
    }

    pub async fn grant(&self, id: &str) -> Result<Option<Grant>> {
        let row = sqlx::query(
            "SELECT id, namespace, repository, account, team_org, team, role, created_at FROM grants WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(grant).transpose()
    }

    pub async fn delete_grant(&self, id: &str, event: &AuditEvent) -> Result<bool> {
        Ok(self
            .write(&[("DELETE FROM grants WHERE id = $1", vec![t(id)])], event)
            .await?[0]
            > 0)
    }

    // ---- API tokens ---------------------------------------------------

    pub async fn create_token(&self, tk: &StoredToken, event: &AuditEvent) -> Result<()> {
        let sql = "INSERT INTO api_tokens (id, account, name, kind, secret_hash, scopes, created_at, expires_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        let values = vec![
            t(&tk.id),
            t(&tk.account),
            t(&tk.name),
            t(&tk.kind),
            t(&tk.secret_hash),
            t(&tk.scopes),
            Value::Int(Some(tk.created_at)),
            Value::Int(tk.expires_at),
        ];
        self.write(&[(sql, values)], event).await?;
        Ok(())
    }

    pub async fn token(&self, id: &str) -> Result<Option<StoredToken>> {
        let row = sqlx::query(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(token).transpose()
    }

    /// The tokens of `account`: API tokens and the OAuth2 refresh tokens
    /// its logins made, so a user can find and revoke both.
    pub async fn tokens(&self, account: &str) -> Result<Vec<StoredToken>> {
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE account = $1 ORDER BY created_at, id"
        ))
        .bind(account)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token).collect()
    }

    pub async fn revoke_token(&self, id: &str, event: &AuditEvent) -> Result<bool> {
        let sql = "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL";
        Ok(self
            .write(&[(sql, vec![Value::Int(Some(now_ms())), t(id)])], event)
            .await?[0]
            > 0)
    }

    /// Records a token's use. Not audited: the request it served is.
    pub async fn touch_token(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- repository settings ------------------------------------------

    pub async fn repository(&self, name: &str) -> Result<Option<RepositoryInfo>> {
        let row = sqlx::query("SELECT name, visibility, created_at FROM repositories WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(RepositoryInfo {
                name: r.try_get(0)?,
                visibility: r.try_get(1)?,
                created_at: r.try_get(2)?,
            })
        })
        .transpose()
    }

    /// Creates the repository if needed and sets its visibility.
    pub async fn set_visibility(&self, name: &str, visibility: &str, event: &AuditEvent) -> Result<()> {
        let change = crate::RepositorySettingsChange {
            visibility: Some(visibility.to_string()),
            ..crate::RepositorySettingsChange::default()
        };
        self.update_repository_settings(name, &change, event).await
    }

    /// Deletes a repository: tags, manifests, blob links, upload sessions,
    /// the promotion policies whose source it is and the provenance of its
    /// tags, so a repository later made under the same name inherits none
    /// of them. Policies that target it stay: each run checks that their
    /// owner may still push there before it writes anything. Blob bytes are
    /// left to garbage collection. Refused while it holds an immutable tag
    /// (turn the rule off first).
    pub async fn delete_repository(&self, name: &str, event: &AuditEvent) -> Result<bool> {
        let statements: Vec<(&str, Vec<Value>)> = [
            "DELETE FROM tags WHERE repo = $1",
            "DELETE FROM manifest_children WHERE repo = $1",
            "DELETE FROM manifest_blobs WHERE repo = $1",
            "DELETE FROM manifests WHERE repo = $1",
            "DELETE FROM repo_blobs WHERE repo = $1",
            "DELETE FROM uploads WHERE repo = $1",
            "DELETE FROM promotion_policies WHERE repository = $1",
            "DELETE FROM promotions WHERE repository = $1",
            "DELETE FROM repositories WHERE name = $1",
        ]
        .into_iter()
        .map(|sql| (sql, vec![t(name)]))
        .collect();
        let touched = self
            .write_unless_immutable(&statements, event, &[name.to_string()])
            .await?;
        Ok(*touched.last().expect("statements") > 0)
    }
}

fn grant(r: &sqlx::any::AnyRow) -> Result<Grant> {
    let org: Option<String> = r.try_get(4)?;
    let team: Option<String> = r.try_get(5)?;
    Ok(Grant {
        id: r.try_get(0)?,
        namespace: r.try_get(1)?,
        repository: r.try_get(2)?,
        account: r.try_get(3)?,
        team: org.zip(team),
        role: r.try_get(6)?,
        created_at: r.try_get(7)?,
    })
}

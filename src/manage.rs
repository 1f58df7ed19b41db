//! Offline management against the data directory: accounts, tokens, the
//! audit trail and signing keys. Each change is audited as `local:<user>`.

use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::{bail, Context};
use portcullis_auth::{password, TokenScope};
use portcullis_meta::{now_ms, Account, AuditEvent, AuditQuery, Meta};

/// Who ran the command, for the audit trail.
fn local_actor(action: &str) -> AuditEvent {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let mut e = AuditEvent::ok(&format!("local:{user}"), action);
    e.address = Some("local".into());
    e
}

/// On first start: an `admin` with the password from
/// `PORTCULLIS_ADMIN_PASSWORD` (which must pass the same 12-character rule
/// as every password), or a random one written once to
/// `<data>/initial-admin-password` (mode 0600) rather than to the log,
/// which is often shipped elsewhere and kept.
pub async fn ensure_admin(meta: &Meta, data: &std::path::Path) -> anyhow::Result<()> {
    if meta.any_admin().await? {
        return Ok(());
    }
    let (pw, generated) = match std::env::var("PORTCULLIS_ADMIN_PASSWORD") {
        Ok(p) if !p.is_empty() => {
            anyhow::ensure!(
                p.chars().count() >= 12,
                "PORTCULLIS_ADMIN_PASSWORD needs at least 12 characters, like every password"
            );
            (p, false)
        }
        _ => (password::generate(), true),
    };
    let account = Account {
        name: "admin".into(),
        kind: "user".into(),
        password_hash: Some(password::hash(&pw)?),
        admin: true,
        owner: None,
        created_at: now_ms(),
        password_changed_at: None,
    };
    let file = data.join("initial-admin-password");
    if generated {
        write_secret_file(&file, &pw).with_context(|| format!("writing {}", file.display()))?;
    }
    meta.create_account(
        &account,
        &AuditEvent::ok("system", "user.create").detail("admin (first start)"),
    )
    .await
    .context("creating the first administrator (does a non-admin account named admin exist?)")?;
    if generated {
        tracing::warn!(
            user = "admin",
            file = %file.display(),
            "created the first administrator; its password is in this file (mode 0600): log in, change it, delete the file"
        );
    } else {
        tracing::info!(
            user = "admin",
            "created the first administrator from PORTCULLIS_ADMIN_PASSWORD"
        );
    }
    Ok(())
}

/// Writes `secret` to a new file only its owner can read.
fn write_secret_file(path: &std::path::Path, secret: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    writeln!(f, "{secret}")?;
    f.sync_all()
}

/// A password from the first line of standard input, or a generated one.
fn read_password(stdin: bool) -> anyhow::Result<(String, bool)> {
    if !stdin {
        return Ok((password::generate(), true));
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let pw = line.trim_end_matches(['\r', '\n']).to_string();
    if pw.chars().count() < 12 {
        bail!("passwords need at least 12 characters");
    }
    Ok((pw, false))
}

pub async fn user_create(meta: &Meta, name: &str, admin: bool, stdin: bool) -> anyhow::Result<()> {
    portcullis_server::check_account_name(name).map_err(anyhow::Error::msg)?;
    let (pw, generated) = read_password(stdin)?;
    let account = Account {
        name: name.into(),
        kind: "user".into(),
        password_hash: Some(password::hash(&pw)?),
        admin,
        owner: None,
        created_at: now_ms(),
        password_changed_at: None,
    };
    meta.create_account(
        &account,
        &local_actor("user.create").detail(format!("{name} admin={admin}")),
    )
    .await?;
    if generated {
        println!("created {name}; password: {pw}");
    } else {
        println!("created {name}");
    }
    Ok(())
}

pub async fn user_password(meta: &Meta, name: &str, stdin: bool) -> anyhow::Result<()> {
    let (pw, generated) = read_password(stdin)?;
    let changed = meta
        .set_password(name, &password::hash(&pw)?, &local_actor("user.password").detail(name))
        .await?;
    anyhow::ensure!(changed, "no such user: {name}");
    if generated {
        println!("new password for {name}: {pw}");
    }
    Ok(())
}

pub async fn user_list(meta: &Meta) -> anyhow::Result<()> {
    for kind in ["user", "org", "service"] {
        for a in meta.accounts(kind, None).await? {
            println!("{}\t{}{}", a.name, a.kind, if a.admin { "\tadmin" } else { "" });
        }
    }
    Ok(())
}

pub async fn user_delete(meta: &Meta, name: &str) -> anyhow::Result<()> {
    let deleted = meta
        .delete_account(name, &local_actor("user.delete").detail(name))
        .await?;
    let Some(repos) = deleted else {
        anyhow::bail!("no such account: {name}");
    };
    for r in repos {
        eprintln!("deleted repository {r}");
    }
    Ok(())
}

/// `portcullis token …` offline, on the database.
pub async fn token(meta: &Meta, command: crate::remote::TokenCommand) -> anyhow::Result<()> {
    use crate::remote::TokenCommand;
    match command {
        TokenCommand::Create {
            account,
            name,
            scopes,
            days,
        } => token_create(meta, &account, &name, &scopes, days).await,
        TokenCommand::List { account } => {
            let account = account.context("offline, name the account: token list ACCOUNT --data DIR")?;
            token_list(meta, &account).await
        }
        TokenCommand::Revoke { id, account: _ } => token_revoke(meta, &id).await,
    }
}

pub async fn token_create(meta: &Meta, account: &str, name: &str, scopes: &[String], days: u32) -> anyhow::Result<()> {
    anyhow::ensure!(meta.account(account).await?.is_some(), "no such account: {account}");
    anyhow::ensure!((1..=366).contains(&days), "--days must be between 1 and 366");
    let parsed = scopes
        .iter()
        .map(|s| s.parse::<TokenScope>())
        .collect::<Result<Vec<_>, _>>()?;
    anyhow::ensure!(
        !parsed.is_empty(),
        "give at least one --scope, such as acme/*:pull,push"
    );
    let (t, stored) = portcullis_server::access::new_token(account, name, "api", &parsed, i64::from(days) * 86_400_000);
    let ev = local_actor("token.create").detail(format!("{account} {} [{}]", t.id, stored.scopes));
    meta.create_token(&stored, &ev).await?;
    println!("{}", t.reveal());
    Ok(())
}

pub async fn token_list(meta: &Meta, account: &str) -> anyhow::Result<()> {
    for t in meta.tokens(account).await? {
        let state = if t.revoked_at.is_some() { "revoked" } else { "active" };
        println!("{}\t{}\t{}\t{}", t.id, t.name, t.scopes, state);
    }
    Ok(())
}

pub async fn token_revoke(meta: &Meta, id: &str) -> anyhow::Result<()> {
    let revoked = meta.revoke_token(id, &local_actor("token.revoke").detail(id)).await?;
    anyhow::ensure!(revoked, "no active token {id}");
    Ok(())
}

/// Exit status 1 and the first broken record when the chain is broken.
pub async fn audit_verify(meta: &Meta, anchor: Option<&std::path::Path>) -> anyhow::Result<bool> {
    let (read, broken) = match anchor {
        None => meta.verify_audit().await?,
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let anchor: portcullis_meta::AuditAnchor =
                serde_json::from_str(&text).with_context(|| format!("{} is not an anchor", path.display()))?;
            meta.verify_audit_anchor(&anchor).await?
        }
    };
    match broken {
        None => {
            println!("audit trail intact: {read} records");
            Ok(true)
        }
        Some(b) => {
            println!("audit trail BROKEN at record {}: {}", b.seq, b.reason);
            Ok(false)
        }
    }
}

pub async fn audit_export(meta: &Meta, after: i64) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut q = AuditQuery {
        after_seq: Some(after),
        limit: 1000,
        ..AuditQuery::default()
    };
    loop {
        let page = meta.audit_records(&q).await?;
        for r in &page {
            writeln!(out, "{}", portcullis_server::audit_json(r))?;
        }
        match page.last() {
            Some(last) if page.len() == 1000 => q.after_seq = Some(last.seq),
            _ => break,
        }
    }
    out.flush()?;
    Ok(())
}

pub fn key_rotate(dir: &std::path::Path, token_ttl: Duration) -> anyhow::Result<()> {
    // Keep superseded keys for twice a token's lifetime, so every token they
    // signed expires first.
    let (kid, removed) = portcullis_server::keys::rotate(dir, token_ttl * 2)?;
    println!("new signing key {kid}");
    for k in removed {
        println!("removed expired key {k}");
    }
    Ok(())
}

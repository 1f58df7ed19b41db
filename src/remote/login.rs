//! `portcullis login URL` and `portcullis logout [URL]`.

use std::io::{BufRead, Read, Write};

use anyhow::{anyhow, bail, Context};
use clap::Args;
use serde_json::{json, Value};

use super::client::{self, parse_server, Client, Refused};
use super::credentials::{self, token_id, Secret};
use super::Format;

#[derive(Args)]
pub struct LoginArgs {
    /// The server: https://HOST[:PORT], http://HOST[:PORT], or HOST[:PORT]
    /// (https, or plain http with --tls-verify=false).
    url: String,
    /// The account [default: asked].
    #[arg(short, long)]
    username: Option<String>,
    /// The password or an API token (visible to other local users: prefer
    /// --password-stdin or the prompt).
    #[arg(short, long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password (or an API token) from standard input.
    #[arg(long)]
    password_stdin: bool,
    /// `false`: a URL without a scheme is plain http.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    tls_verify: bool,
    /// Keep the password itself instead of an API token made for this login.
    #[arg(long)]
    keep_password: bool,
    /// Days until the token made for this login expires.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=366))]
    token_days: u32,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Args)]
pub struct LogoutArgs {
    /// The server [default: the last one logged in to].
    url: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

fn read_line(prompt: &str) -> anyhow::Result<String> {
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Checks `user`/`secret` with the registry's own login (the token flow
/// that skopeo and docker follow): Ok, [`Refused`] or an error.
async fn check_login(http: &reqwest::Client, base: &str, user: &str, secret: &str) -> anyhow::Result<()> {
    let cannot_reach = |e: reqwest::Error| client::unreachable(base, e, true);
    let r = http.get(format!("{base}/v2/")).send().await.map_err(cannot_reach)?;
    let challenge = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let param = |name: &str| {
        challenge
            .split([',', ' '])
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim_matches('"').to_string())
    };
    let realm = param("realm").ok_or_else(|| {
        anyhow!(
            "{base}/v2/ answered HTTP {} without a token challenge: is this a Portcullis registry?",
            r.status().as_u16()
        )
    })?;
    let mut req = http.get(&realm).basic_auth(user, Some(secret));
    if let Some(service) = param("service") {
        req = req.query(&[("service", service)]);
    }
    let r = req.send().await.map_err(cannot_reach)?;
    let status = r.status();
    if status.is_success() {
        return Ok(());
    }
    let text = r.text().await.unwrap_or_default();
    let message = client::server_message(serde_json::from_str(&text).ok().as_ref(), &text);
    let msg = format!("login to {base} as {user} refused: HTTP {}: {message}", status.as_u16());
    if client::is_refusal(status) {
        Err(Refused(msg).into())
    } else {
        Err(anyhow!(msg))
    }
}

pub async fn login(a: LoginArgs) -> anyhow::Result<()> {
    let (base, host) = parse_server(&a.url, !a.tls_verify)?;
    let user = match a.username {
        Some(u) => u,
        None if a.password_stdin => bail!("--password-stdin needs --username"),
        None => read_line(&format!("Username for {host}: "))?,
    };
    if user.is_empty() || user.contains(':') {
        bail!("give a user name (without ':')");
    }
    let password = match (a.password, a.password_stdin) {
        (Some(p), _) => p,
        (None, true) => {
            let mut all = String::new();
            std::io::stdin()
                .read_to_string(&mut all)
                .context("reading standard input")?;
            all.trim_end_matches(['\r', '\n']).to_string()
        }
        (None, false) => {
            rpassword::prompt_password(format!("Password for {user}@{host}: ")).context("reading the password")?
        }
    };
    if password.is_empty() {
        bail!("an empty password");
    }
    let http = client::http_client()?;
    let given = Secret {
        user: user.clone(),
        secret: password.clone(),
    };
    // An API token is kept as it is; a password is exchanged for a token
    // (revocable, expiring) unless --keep-password.
    let (kept, made, shown) = if given.is_token() || a.keep_password {
        check_login(&http, &base, &user, &password).await?;
        (password, None, json!(null))
    } else {
        let c = Client {
            http: http.clone(),
            base: base.clone(),
            host: host.clone(),
            secret: Some(given),
            format: Format::Text,
        };
        let body = json!({
            "name": login_token_name(),
            "scopes": ["*:pull,push,delete"],
            "expires_in_days": a.token_days,
        });
        match c
            .post(&format!("/api/v1/accounts/{}/tokens", client::seg(&user)), body)
            .await
        {
            Ok(mut t) => {
                let secret = t["token"]
                    .as_str()
                    .ok_or_else(|| anyhow!("the server made a token but did not return it"))?
                    .to_string();
                if let Some(obj) = t.as_object_mut() {
                    obj.remove("token");
                }
                let id = t["id"].as_str().map(String::from);
                (secret, id, t)
            }
            Err(e) if e.downcast_ref::<Refused>().is_some() && e.to_string().contains("HTTP 401") => {
                return Err(Refused(format!(
                    "login to {base} as {user} refused: wrong user name or password"
                ))
                .into())
            }
            Err(e) if e.to_string().starts_with("cannot reach") => return Err(e),
            Err(e) => {
                return Err(e.context("making an API token for this login (--keep-password keeps the password instead)"))
            }
        }
    };
    // A token an earlier login made here is replaced: revoke it.
    if let (Some(old_id), Some(old)) = (credentials::login_token(&host), credentials::lookup(&host)?) {
        if token_id(&old.secret) == Some(old_id.as_str()) && made.as_deref() != Some(old_id.as_str()) {
            let _ = revoke(&http, &base, &host, &old, &old_id).await;
        }
    }
    let path = credentials::store(&host, &user, &kept)?;
    credentials::remember(&host, &base, made.as_deref())?;
    match a.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "server": base, "username": user, "auth_file": path, "token": shown,
            }))?
        ),
        Format::Text => {
            println!("Login Succeeded!");
            match &made {
                Some(id) => eprintln!(
                    "kept an API token ({id}, {} days) for {user}@{host} in {}",
                    a.token_days,
                    path.display()
                ),
                None => eprintln!("kept the credential for {user}@{host} in {}", path.display()),
            }
        }
    }
    Ok(())
}

/// The login token's name: which machine's CLI holds it.
fn login_token_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty());
    match host {
        Some(h) => format!("portcullis login on {h}"),
        None => "portcullis login".into(),
    }
}

async fn revoke(http: &reqwest::Client, base: &str, host: &str, s: &Secret, id: &str) -> anyhow::Result<Value> {
    let c = Client {
        http: http.clone(),
        base: base.to_string(),
        host: host.to_string(),
        secret: Some(s.clone()),
        format: Format::Text,
    };
    c.delete(&format!(
        "/api/v1/accounts/{}/tokens/{}",
        client::seg(&s.user),
        client::seg(id)
    ))
    .await
}

pub async fn logout(a: LogoutArgs) -> anyhow::Result<()> {
    let url = match a.url {
        Some(u) => credentials::remembered_url(&u).unwrap_or(u),
        None => credentials::current_server()?
            .ok_or_else(|| anyhow!("which server? give its URL (no login to default to)"))?,
    };
    let (base, host) = parse_server(&url, false)?;
    let stored = credentials::lookup(&host)?;
    let mut revoked = None;
    if let (Some(s), Some(id)) = (&stored, credentials::login_token(&host)) {
        if token_id(&s.secret) == Some(id.as_str()) {
            match revoke(&client::http_client()?, &base, &host, s, &id).await {
                Ok(_) => revoked = Some(id),
                Err(e) => eprintln!(
                    "warning: could not revoke the login token {id} on {base} ({e:#}); \
                     revoke it with `portcullis token revoke {id} --account {}`",
                    s.user
                ),
            }
        }
    }
    let removed = credentials::remove(&host)?;
    credentials::forget(&host)?;
    if !removed {
        return Err(Refused(format!(
            "not logged in to {host} (no entry in {})",
            credentials::auth_file()?.display()
        ))
        .into());
    }
    match a.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json!({"server": base, "revoked_token": revoked}))?
        ),
        Format::Text => println!("Removed login credentials for {host}"),
    }
    Ok(())
}

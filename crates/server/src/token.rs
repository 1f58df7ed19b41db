//! The Docker token endpoint (`/auth/token`): GET with optional Basic
//! credentials, and the OAuth2 POST form (`grant_type=password` or
//! `refresh_token`) that `docker login` uses. It answers with a short-lived
//! JWT whose `access` claim is exactly the granted part of what was asked.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use base64::Engine;
use portcullis_auth::{password, AccessEntry, Actions, ApiToken, Attempt, RegistryClaims, Scope};
use portcullis_meta::{now_ms, AuditEvent};
use serde_json::json;

use crate::access::{Caller, Principal};
use crate::{header_str, Registry, RegistryError};

/// How long an OAuth2 refresh token lives, from the password login that
/// made it: using it never extends it, and it never makes another.
const REFRESH_TTL_MS: i64 = 30 * 24 * 3600 * 1000;
/// The longest user name read (account names are at most 64 bytes,
/// service accounts `ns+name` at most 129).
pub(crate) const MAX_USERNAME: usize = 256;
/// The longest password or token read.
pub(crate) const MAX_SECRET: usize = 1024;
/// Scopes one token request may ask for (clients ask for a handful).
const MAX_SCOPES: usize = 64;

/// A hash to verify against when the account does not exist, so a missing
/// account takes as long to refuse as a wrong password.
fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| password::hash("portcullis-dummy").expect("argon2 works"))
}

pub(crate) type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

pub(crate) fn peer_ip(peer: &Peer) -> Option<std::net::IpAddr> {
    peer.as_ref().map(|Extension(ConnectInfo(a))| a.ip())
}

struct Request {
    scopes: Vec<String>,
    offline: bool,
    credentials: Credentials,
}

enum Credentials {
    None,
    Password { user: String, secret: String },
    Refresh(String),
}

fn parse_request(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<Request, RegistryError> {
    let pairs: Vec<(String, String)> = if method == Method::POST {
        form_urlencoded::parse(body).into_owned().collect()
    } else {
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect()
    };
    let get = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let mut scopes: Vec<String> = Vec::new();
    for s in pairs
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' '))
        .filter(|s| !s.is_empty())
    {
        if !scopes.iter().any(|x| x == s) {
            if scopes.len() == MAX_SCOPES {
                return Err(RegistryError::Invalid(format!(
                    "at most {MAX_SCOPES} distinct scopes per token request"
                )));
            }
            scopes.push(s.to_string());
        }
    }
    let credentials = match get("grant_type").as_deref() {
        Some("password") => Credentials::Password {
            user: get("username").ok_or_else(|| RegistryError::Invalid("username is required".into()))?,
            secret: get("password").ok_or_else(|| RegistryError::Invalid("password is required".into()))?,
        },
        Some("refresh_token") => Credentials::Refresh(
            get("refresh_token").ok_or_else(|| RegistryError::Invalid("refresh_token is required".into()))?,
        ),
        Some(other) => return Err(RegistryError::Invalid(format!("unsupported grant_type {other:?}"))),
        None => match basic(headers)? {
            Some((user, secret)) => Credentials::Password { user, secret },
            None => Credentials::None,
        },
    };
    let offline = get("offline_token").as_deref() == Some("true") || get("access_type").as_deref() == Some("offline");
    match &credentials {
        Credentials::Password { user, secret } => check_sizes(user, secret)?,
        Credentials::Refresh(t) => check_sizes("", t)?,
        Credentials::None => {}
    }
    Ok(Request {
        scopes,
        offline,
        credentials,
    })
}

/// Refuses credentials longer than any real one, before they are hashed,
/// throttled by or written to the audit trail.
pub(crate) fn check_sizes(user: &str, secret: &str) -> Result<(), RegistryError> {
    if user.len() > MAX_USERNAME {
        return Err(RegistryError::Invalid(format!(
            "user names are at most {MAX_USERNAME} bytes"
        )));
    }
    if secret.len() > MAX_SECRET {
        return Err(RegistryError::Invalid(format!(
            "passwords and tokens are at most {MAX_SECRET} bytes"
        )));
    }
    Ok(())
}

pub(crate) fn basic(headers: &HeaderMap) -> Result<Option<(String, String)>, RegistryError> {
    let Some(v) = header_str(headers, "authorization") else {
        return Ok(None);
    };
    let bad = || RegistryError::Unauthorized("malformed Basic credentials".into());
    let b64 = v.strip_prefix("Basic ").ok_or_else(bad)?;
    // Base64 of the longest name and secret, and a little.
    if b64.len() > (MAX_USERNAME + MAX_SECRET) * 4 / 3 + 8 {
        return Err(RegistryError::Invalid("Basic credentials are too long".into()));
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| bad())?;
    let s = String::from_utf8(raw).map_err(|_| bad())?;
    let (u, p) = s.split_once(':').ok_or_else(bad)?;
    Ok(Some((u.to_string(), p.to_string())))
}

pub(crate) async fn token(
    State(reg): State<Arc<Registry>>,
    peer: Peer,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let addr = reg.access.settings.trusted_proxies.client(peer_ip(&peer), &headers);
    match issue(&reg, addr, &method, &uri, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn issue(
    reg: &Registry,
    addr: Option<String>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, RegistryError> {
    let req = parse_request(method, uri, headers, body)?;
    let principal = match &req.credentials {
        Credentials::None => None,
        Credentials::Password { user, secret } => Some(login(reg, user, secret, addr.clone(), LoginRecord::All).await?),
        Credentials::Refresh(t) => {
            let bad = || RegistryError::Unauthorized("invalid refresh token".into());
            let tk = ApiToken::parse(t).ok_or_else(bad)?;
            let p = reg.api_token_principal(&tk, None).await?;
            if p.scopes.is_some() {
                return Err(bad());
            }
            Some(p)
        }
    };
    let caller = principal.clone().map_or(Caller::Anonymous, Caller::Account);
    let mut access = Vec::new();
    for s in &req.scopes {
        let scope: Scope = s
            .parse()
            .map_err(|e: portcullis_auth::AuthError| RegistryError::Invalid(e.to_string()))?;
        let wanted =
            Actions::parse_list(&scope.actions.join(",")).map_err(|e| RegistryError::Invalid(e.to_string()))?;
        let granted = match scope.kind.as_str() {
            "repository" => reg.permitted(&caller, &scope.name).await?.intersect(wanted),
            // The catalog is filtered per caller; anyone may ask for it.
            "registry" if scope.name == "catalog" => Actions::ALL,
            _ => Actions::NONE,
        };
        // A refused repository scope stays in the token with no actions
        // (the token spec allows it): a mount that challenged for it can
        // see it was asked for and refused, and fall back instead of
        // challenging again.
        if granted.is_empty() {
            // Only a valid repository name (at most 255 bytes): an anonymous
            // caller must not grow tokens with made-up names.
            if scope.kind == "repository" && scope.name.parse::<portcullis_oci::RepositoryName>().is_ok() {
                access.push(AccessEntry {
                    kind: scope.kind.clone(),
                    name: scope.name.clone(),
                    actions: Vec::new(),
                });
            }
            continue;
        }
        let actions = if scope.kind == "registry" || (scope.actions.iter().any(|a| a == "*") && granted == Actions::ALL)
        {
            vec!["*".to_string()]
        } else {
            granted.names()
        };
        access.push(AccessEntry {
            kind: scope.kind.clone(),
            name: scope.name.clone(),
            actions,
        });
    }
    let now = now_ms() / 1000;
    let ttl = reg.access.settings.token_ttl.as_secs() as i64;
    let keys = reg.access.keys();
    let claims = RegistryClaims {
        iss: keys.issuer().to_string(),
        sub: principal
            .as_ref()
            .map_or_else(|| crate::access::ANONYMOUS.into(), |p| p.account.name.clone()),
        aud: reg.access.settings.service.clone(),
        exp: now + ttl,
        nbf: now - 1,
        iat: now,
        jti: ApiToken::generate().id,
        access,
        tid: principal.as_ref().and_then(|p| p.token_id.clone()),
    };
    let jwt = keys.sign(&claims).map_err(|e| RegistryError::Internal(e.to_string()))?;
    let mut body = json!({"token": jwt, "access_token": jwt, "expires_in": ttl});
    // Only a password login makes a refresh token: a refresh token (even
    // one sent as a password) or an API token never makes another.
    if let (true, Some(p), Credentials::Password { .. }) = (req.offline, &principal, &req.credentials) {
        if p.token_id.is_none() {
            body["refresh_token"] = json!(refresh_token(reg, p, addr).await?);
        }
    }
    Ok((
        [("content-type", "application/json"), ("cache-control", "no-store")],
        body.to_string(),
    )
        .into_response())
}

async fn refresh_token(reg: &Registry, p: &Principal, addr: Option<String>) -> Result<String, RegistryError> {
    let (t, stored) = crate::access::new_token(&p.account.name, "oauth2 refresh", "refresh", &[], REFRESH_TTL_MS);
    let mut ev = AuditEvent::ok(&p.account.name, "token.refresh.create").detail(t.id.clone());
    ev.address = addr;
    reg.meta.create_token(&stored, &ev).await?;
    Ok(t.reveal())
}

/// Which of a login's outcomes get a `login` record of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoginRecord {
    /// Every attempt: token issuance, UI sign-in, password changes.
    All,
    /// Failures, a success that reports refused attempts, and the first
    /// success per account and address in `LOGIN_RECORD_EVERY`: a Basic
    /// login per API request, whose later successes the actions' records
    /// carry (`via: password`).
    Occasionally,
}

/// Checks a password or API token for `user`; every failure is audited
/// (a lockout's repeated refusals as one record and a count), and a
/// success as `record` says.
///
/// API tokens are checked first and apart: they are unguessable and cheap
/// to check, so they are throttled only by failed *token* attempts from the
/// address, and someone guessing a CI account's password cannot lock its
/// token out. Passwords are throttled per account and per address, the
/// attempt counted before the slow hash runs, and hashes run a few at a time.
pub(crate) async fn login(
    reg: &Registry,
    user: &str,
    secret: &str,
    addr: Option<String>,
    record: LoginRecord,
) -> Result<Principal, RegistryError> {
    check_sizes(user, secret)?;
    // No account has a reserved name (the registry's own actors among
    // them): a login claiming one is nobody's, and its record must not read
    // as the registry's own.
    let reserved = portcullis_meta::RESERVED_NAMES.contains(&user);
    let mut ev = AuditEvent::ok(if reserved { "anonymous" } else { user }, "login");
    let claimed = reserved.then(|| format!("as the reserved name {user:?}"));
    ev.address = addr.clone();
    let address = addr.as_deref().unwrap_or("?");
    let token = ApiToken::parse(secret);
    let keys: Vec<String> = match &token {
        Some(_) => vec![format!("token-address:{address}")],
        None => vec![format!("account:{user}"), format!("address:{address}")],
    };
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let started = Instant::now();
    let attempt = reg.access.throttle().begin(&key_refs, started);
    if let Attempt::Throttled { wait, first } = attempt {
        if first {
            ev.result = "denied".into();
            let throttled = "throttled; further attempts until the lockout ends are counted, not recorded one by one";
            ev.detail = Some(
                claimed
                    .iter()
                    .map(String::as_str)
                    .chain([throttled])
                    .collect::<Vec<_>>()
                    .join("; "),
            );
            reg.meta.audit(&[ev]).await?;
        }
        return Err(RegistryError::TooManyRequests(wait.as_secs().max(1)));
    }
    let outcome: Result<Principal, &str> = if let Some(tk) = token {
        ev.token_id = Some(tk.id.clone());
        reg.api_token_principal(&tk, Some(user))
            .await
            .map_err(|_| "invalid, expired or revoked token")
    } else {
        let account = reg.meta.account(user).await?.filter(|a| a.kind == "user");
        let hash = account
            .as_ref()
            .and_then(|a| a.password_hash.clone())
            .unwrap_or_else(|| dummy_hash().to_string());
        let pw = secret.to_string();
        let ok = {
            let _permit = reg.access.hashing.acquire().await.expect("never closed");
            tokio::task::spawn_blocking(move || password::verify(&pw, &hash))
                .await
                .unwrap_or(false)
        };
        match (ok, account) {
            (true, Some(account)) => Ok(Principal::full(account, None)),
            _ => Err("wrong user name or password"),
        }
    };
    let refused = {
        let mut t = reg.access.throttle();
        if outcome.is_ok() {
            // The account's count resets; the address only gets this
            // attempt back, so it stays counted for other accounts it guesses.
            if keys.len() == 2 {
                t.succeeded(&keys[0]);
            }
            t.release(keys.last().expect("a key"), started);
        }
        keys.iter().map(|k| t.take_refused(k)).max().unwrap_or(0)
    };
    let mut notes: Vec<String> = claimed.into_iter().collect();
    if refused > 0 {
        notes.push(format!("{refused} attempts refused while throttled before this one"));
    }
    match outcome {
        Ok(p) => {
            let first_lately = || {
                let key = format!("{user}\n{address}");
                // Not refreshed while seen: one record per window, not
                // none for as long as the requests keep coming.
                let seen = reg.access.recent_logins.get(&key).is_some();
                if !seen {
                    reg.access.recent_logins.put(&key, ());
                }
                !seen
            };
            if record == LoginRecord::All || !notes.is_empty() || first_lately() {
                if record == LoginRecord::Occasionally {
                    notes.push(format!(
                        "Basic login on the management API; more from this address within {} minutes are \
                         carried on their actions' records (via: password)",
                        crate::access::LOGIN_RECORD_EVERY.as_secs() / 60
                    ));
                }
                ev.detail = (!notes.is_empty()).then(|| notes.join("; "));
                reg.meta.audit(&[ev]).await?;
            }
            Ok(p)
        }
        Err(why) => {
            notes.insert(usize::from(reserved), why.to_string());
            ev.result = "failed".into();
            ev.detail = Some(notes.join("; "));
            reg.meta.audit(&[ev]).await?;
            Err(RegistryError::Unauthorized(why.into()))
        }
    }
}

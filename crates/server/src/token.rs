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
use portcullis_auth::{password, AccessEntry, Actions, ApiToken, RegistryClaims, Scope};
use portcullis_meta::{now_ms, AuditEvent};
use serde_json::json;

use crate::access::{Caller, Principal};
use crate::{header_str, Registry, RegistryError};

/// How long an OAuth2 refresh token lives.
const REFRESH_TTL_MS: i64 = 30 * 24 * 3600 * 1000;

/// A hash to verify against when the account does not exist, so a missing
/// account takes as long to refuse as a wrong password.
fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| password::hash("portcullis-dummy").expect("argon2 works"))
}

pub(crate) type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

pub(crate) fn peer_ip(peer: &Peer) -> Option<String> {
    peer.as_ref().map(|Extension(ConnectInfo(a))| a.ip().to_string())
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
    let scopes = pairs
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| {
            v.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
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
    Ok(Request {
        scopes,
        offline,
        credentials,
    })
}

fn basic(headers: &HeaderMap) -> Result<Option<(String, String)>, RegistryError> {
    let Some(v) = header_str(headers, "authorization") else {
        return Ok(None);
    };
    let bad = || RegistryError::Unauthorized("malformed Basic credentials".into());
    let b64 = v.strip_prefix("Basic ").ok_or_else(bad)?;
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
    let addr = peer_ip(&peer);
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
        Credentials::Password { user, secret } => Some(login(reg, user, secret, addr.clone()).await?),
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
        if granted.is_empty() {
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
            .map_or_else(|| "anonymous".into(), |p| p.account.name.clone()),
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
    if let (true, Some(p), Credentials::Password { .. }) = (req.offline, &principal, &req.credentials) {
        if p.scopes.is_none() {
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

/// Checks a password or API token for `user`, throttled per account and
/// per address; every attempt is audited.
async fn login(reg: &Registry, user: &str, secret: &str, addr: Option<String>) -> Result<Principal, RegistryError> {
    let keys = [
        format!("account:{user}"),
        format!("address:{}", addr.as_deref().unwrap_or("?")),
    ];
    let mut ev = AuditEvent::ok(user, "login");
    ev.address = addr.clone();
    if let Some(wait) = reg.access.throttled(&keys) {
        ev.result = "denied".into();
        ev.detail = Some("throttled".into());
        reg.meta.audit(&[ev]).await?;
        return Err(RegistryError::TooManyRequests(wait.as_secs().max(1)));
    }
    let outcome: Result<Principal, &str> = if let Some(tk) = ApiToken::parse(secret) {
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
        let ok = tokio::task::spawn_blocking(move || password::verify(&pw, &hash))
            .await
            .unwrap_or(false);
        match (ok, account) {
            (true, Some(account)) => Ok(Principal {
                account,
                token_id: None,
                scopes: None,
            }),
            _ => Err("wrong user name or password"),
        }
    };
    let throttle = || reg.access.throttle.lock().expect("not poisoned");
    match outcome {
        Ok(p) => {
            // Only the account's count resets: one good login must not
            // clear an address that is guessing other accounts.
            throttle().succeeded(&keys[0]);
            reg.meta.audit(&[ev]).await?;
            Ok(p)
        }
        Err(why) => {
            let now = Instant::now();
            for k in &keys {
                throttle().failed(k, now);
            }
            ev.result = "failed".into();
            ev.detail = Some(why.into());
            reg.meta.audit(&[ev]).await?;
            Err(RegistryError::Unauthorized(why.into()))
        }
    }
}

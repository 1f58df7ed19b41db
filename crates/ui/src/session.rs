//! Sign-in, sessions and CSRF.
//!
//! The session cookie holds 32 random bytes; `meta` stores only their
//! SHA-256 with the account, the session's CSRF token and when it ends
//! (idle and absolute limits). The cookie is `HttpOnly`, `SameSite=Lax`,
//! `Path=/ui`, and `Secure` when the server speaks TLS. Every form carries
//! the CSRF token; the sign-in form, which has no session yet, is checked
//! by double submit (a random cookie and the same value in the form).

use std::sync::Arc;

use askama::Template;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use base64::Engine;
use portcullis_meta::UiSession;
use portcullis_server::inproc::{ApiAnswer, OnBehalfOf};
use portcullis_server::{Registry, RegistryError};
use serde::Deserialize;

use crate::{UiError, UiSettings};

const SESSION_COOKIE: &str = "portcullis_session";
const LOGIN_COOKIE: &str = "portcullis_login";
/// Activity is written back at most this often (ms), not on every page.
const TOUCH_EVERY_MS: i64 = 60_000;

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).expect("system randomness");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn id_hash(id: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, id.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn now_ms() -> i64 {
    portcullis_meta::now_ms()
}

/// Constant-time comparison of two tokens.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()))
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn set_cookie(settings: &UiSettings, name: &str, value: &str, max_age_secs: u64) -> String {
    let secure = if settings.secure_cookies { "; Secure" } else { "" };
    format!("{name}={value}; Path=/ui; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}")
}

/// A form or page request that came from another site: a present
/// `Origin` must name this host.
fn cross_origin(headers: &HeaderMap) -> bool {
    let (Some(origin), Some(host)) = (
        headers.get("origin").and_then(|v| v.to_str().ok()),
        headers.get("host").and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
    origin_host != host
}

fn peer(extensions: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    extensions.get::<ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip())
}

/// The signed-in user of a page request.
pub struct SignedIn {
    pub name: String,
    pub admin: bool,
    pub csrf: String,
    pub on_behalf: OnBehalfOf,
    reg: Arc<Registry>,
}

impl FromRequestParts<Arc<Registry>> for SignedIn {
    type Rejection = UiError;
    async fn from_request_parts(parts: &mut Parts, reg: &Arc<Registry>) -> Result<SignedIn, UiError> {
        let next = parts.uri.path_and_query().map_or("/ui/", |p| p.as_str()).to_string();
        let settings = parts
            .extensions
            .get::<Arc<UiSettings>>()
            .cloned()
            .ok_or_else(|| UiError::Internal("UI settings missing".into()))?;
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(UiError::SignIn { next });
        };
        let hash = id_hash(id);
        let now = now_ms();
        let Some(s) = reg.meta.session(&hash, now).await? else {
            return Err(UiError::SignIn { next });
        };
        let Some(account) = reg.meta.account(&s.account).await?.filter(|a| a.kind == "user") else {
            return Err(UiError::SignIn { next });
        };
        if account.password_changed_at.is_some_and(|at| at > s.created_at) {
            reg.meta.delete_session(&hash).await?;
            return Err(UiError::SignIn { next });
        }
        if now - s.seen_at >= TOUCH_EVERY_MS {
            let expires =
                (now + settings.idle.as_millis() as i64).min(s.created_at + settings.absolute.as_millis() as i64);
            reg.meta.touch_session(&hash, now, expires).await?;
        }
        Ok(SignedIn {
            name: account.name.clone(),
            admin: account.admin,
            on_behalf: OnBehalfOf {
                account,
                address: reg.client_address(peer(&parts.extensions), &parts.headers),
            },
            csrf: s.csrf,
            reg: reg.clone(),
        })
    }
}

/// A form's CSRF field.
#[derive(Deserialize)]
pub struct CsrfOnly {
    pub csrf: String,
}

impl SignedIn {
    /// Refuses a form whose token is not this session's.
    pub fn check_csrf(&self, token: &str) -> Result<(), UiError> {
        if same(token, &self.csrf) {
            Ok(())
        } else {
            Err(UiError::Csrf)
        }
    }

    /// Calls the management API as this user; a refusal becomes the page's
    /// error with the API's status and message.
    async fn answer(&self, method: axum::http::Method, path: &str, body: Vec<u8>) -> Result<ApiAnswer, UiError> {
        let answer = self.reg.call_api(&self.on_behalf, method, path, body).await;
        if answer.ok() {
            Ok(answer)
        } else {
            Err(UiError::Api {
                status: answer.status,
                message: answer.message(),
            })
        }
    }

    /// As [`SignedIn::answer`], with a JSON body (`null`: none) and the
    /// JSON reply.
    pub async fn api(
        &self,
        method: axum::http::Method,
        path: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, UiError> {
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        Ok(self.answer(method, path, bytes).await?.body)
    }

    pub async fn get(&self, path: &str) -> Result<serde_json::Value, UiError> {
        self.api(axum::http::Method::GET, path, serde_json::Value::Null).await
    }

    /// The raw answer of a GET (downloads).
    pub async fn download(&self, path: &str) -> Result<ApiAnswer, UiError> {
        self.answer(axum::http::Method::GET, path, Vec::new()).await
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.reg
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    next: String,
    token: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Only a path on this site is a place to go back to after sign-in.
pub(crate) fn local_path(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/ui") && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/ui/".to_string(),
    }
}

fn login_page(settings: &UiSettings, next: &str, error: Option<String>, status: axum::http::StatusCode) -> Response {
    let token = random_token();
    let page = LoginPage {
        next: next.to_string(),
        token: token.clone(),
        error,
    };
    match page.render() {
        Ok(html) => (
            status,
            [("set-cookie", set_cookie(settings, LOGIN_COOKIE, &token, 3600))],
            Html(html),
        )
            .into_response(),
        Err(e) => UiError::from(e).into_response(),
    }
}

pub async fn login_form(Extension(settings): Extension<Arc<UiSettings>>, Query(q): Query<NextQuery>) -> Response {
    login_page(
        &settings,
        &local_path(q.next.as_deref()),
        None,
        axum::http::StatusCode::OK,
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    token: String,
    next: Option<String>,
}

pub async fn login(
    State(reg): State<Arc<Registry>>,
    Extension(settings): Extension<Arc<UiSettings>>,
    connection: Option<Extension<ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Result<Response, UiError> {
    let address = reg.client_address(connection.map(|Extension(ConnectInfo(a))| a.ip()), &headers);
    let next = local_path(f.next.as_deref());
    let double_submit = cookie(&headers, LOGIN_COOKIE).is_some_and(|c| same(c, &f.token));
    if !double_submit || cross_origin(&headers) {
        return Err(UiError::Csrf);
    }
    let name = match reg.password_login(&f.username, &f.password, address).await {
        Ok(name) => name,
        Err(e @ (RegistryError::Unauthorized(_) | RegistryError::TooManyRequests(_) | RegistryError::Invalid(_))) => {
            let status = e.status();
            return Ok(login_page(&settings, &next, Some(e.to_string()), status));
        }
        Err(e) => return Err(UiError::Internal(e.to_string())),
    };
    let id = random_token();
    let now = now_ms();
    let session = UiSession {
        account: name,
        csrf: random_token(),
        created_at: now,
        seen_at: now,
        expires_at: now + settings.idle.as_millis().min(settings.absolute.as_millis()) as i64,
    };
    reg.meta.create_session(&id_hash(&id), &session).await?;
    let max_age = settings.absolute.as_secs();
    let mut response = Redirect::to(&next).into_response();
    let h = response.headers_mut();
    h.append(
        "set-cookie",
        set_cookie(&settings, SESSION_COOKIE, &id, max_age)
            .parse()
            .expect("cookie"),
    );
    h.append(
        "set-cookie",
        set_cookie(&settings, LOGIN_COOKIE, "", 0).parse().expect("cookie"),
    );
    Ok(response)
}

pub async fn logout(
    State(reg): State<Arc<Registry>>,
    Extension(settings): Extension<Arc<UiSettings>>,
    who: SignedIn,
    headers: HeaderMap,
    Form(f): Form<CsrfOnly>,
) -> Result<Response, UiError> {
    who.check_csrf(&f.csrf)?;
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        reg.meta.delete_session(&id_hash(id)).await?;
    }
    let mut ev = portcullis_meta::AuditEvent::ok(&who.name, "logout");
    ev.address = who.on_behalf.address.clone();
    reg.meta.audit(&[ev]).await?;
    Ok((
        [("set-cookie", set_cookie(&settings, SESSION_COOKIE, "", 0))],
        Redirect::to("/ui/login"),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        let table = [
            (None, "/ui/"),
            (Some("/ui/repository?name=a/b"), "/ui/repository?name=a/b"),
            (Some("https://evil.example/"), "/ui/"),
            (Some("//evil.example/ui"), "/ui/"),
            (Some("/ui\\@evil"), "/ui/"),
            (Some("/v2/"), "/ui/"),
        ];
        for (next, want) in table {
            assert_eq!(local_path(next), want, "{next:?}");
        }
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            "cookie",
            "a=1; portcullis_session_x=2; portcullis_session=3".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("3"));
        assert_eq!(cookie(&h, "b"), None);
    }

    #[test]
    fn origins_must_match_the_host() {
        let table = [
            (None, Some("r.example:5000"), false),
            (Some("http://r.example:5000"), Some("r.example:5000"), false),
            (Some("https://evil.example"), Some("r.example:5000"), true),
        ];
        for (origin, host, want) in table {
            let mut h = HeaderMap::new();
            if let Some(o) = origin {
                h.insert("origin", o.parse().unwrap());
            }
            if let Some(v) = host {
                h.insert("host", v.parse().unwrap());
            }
            assert_eq!(cross_origin(&h), want, "{origin:?}");
        }
    }
}

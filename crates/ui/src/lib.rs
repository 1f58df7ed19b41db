//! The web UI, served by `portcullis serve` under `/ui/`.
//!
//! Pages are rendered on the server from templates compiled into the
//! binary (askama) and readable without JavaScript. The UI holds no
//! authority of its own: a session (a cookie naming a row in `meta`) says
//! which user is signed in, and every read and change is a management API
//! call made in-process on that user's behalf ([`Registry::call_api`]), so
//! a page can show and do exactly what the API allows that user, nothing
//! more. Forms carry the session's CSRF token; every response carries a
//! Content Security Policy without inline scripts.

mod error;
mod manage;
mod pages;
mod session;
mod view;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use portcullis_server::Registry;

pub use error::UiError;

/// How long sessions last and how their cookie is marked.
#[derive(Debug, Clone)]
pub struct UiSettings {
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after sign-in, however active.
    pub absolute: Duration,
    /// Mark the cookie `Secure` (the server speaks TLS).
    pub secure_cookies: bool,
}

impl Default for UiSettings {
    fn default() -> UiSettings {
        UiSettings {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 3600),
            secure_cookies: false,
        }
    }
}

/// `(method, path, name)` of every UI route; the authorization matrix test
/// has a row for each.
pub const UI_ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/", "ui_root"),
    ("GET", "/ui", "ui_root_slash"),
    ("GET", "/ui/", "ui_repositories"),
    ("GET", "/ui/login", "ui_login_form"),
    ("POST", "/ui/login", "ui_login"),
    ("POST", "/ui/logout", "ui_logout"),
    ("GET", "/ui/static/{file}", "ui_static"),
    ("GET", "/ui/repository", "ui_repository"),
    ("GET", "/ui/image", "ui_image"),
    ("POST", "/ui/image/scan", "ui_image_scan"),
    ("GET", "/ui/image/sbom", "ui_image_sbom"),
    ("GET", "/ui/policies", "ui_policies"),
    ("POST", "/ui/policies", "ui_policy_save"),
    ("POST", "/ui/policies/dry-run", "ui_policy_dry_run"),
    ("POST", "/ui/policies/apply", "ui_policy_apply"),
    ("POST", "/ui/policies/delete", "ui_policy_delete"),
    ("GET", "/ui/admin/vulndb", "ui_vulndb"),
    ("POST", "/ui/admin/vulndb", "ui_vulndb_upload"),
    ("GET", "/ui/audit", "ui_audit"),
    ("GET", "/ui/repository/settings", "ui_repository_settings"),
    ("GET", "/ui/namespace", "ui_namespace"),
    ("GET", "/ui/account", "ui_account"),
    ("GET", "/ui/webhook", "ui_webhook"),
    ("POST", "/ui/do", "ui_form"),
];

/// The UI's routes, to merge into the registry's application.
pub fn router(settings: UiSettings) -> Router<Arc<Registry>> {
    use pages::*;
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(repositories))
        .route("/ui/login", get(session::login_form).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/static/{file}", get(static_file))
        .route("/ui/repository", get(repository))
        .route("/ui/image", get(image))
        .route("/ui/image/scan", post(image_scan))
        .route("/ui/image/sbom", get(image_sbom))
        .route("/ui/policies", get(policies).post(policy_save))
        .route("/ui/policies/dry-run", post(policy_dry_run))
        .route("/ui/policies/apply", post(policy_apply))
        .route("/ui/policies/delete", post(policy_delete))
        .route("/ui/admin/vulndb", get(vulndb).post(vulndb_upload))
        .route("/ui/audit", get(audit))
        .route("/ui/repository/settings", get(manage::repository_settings))
        .route("/ui/namespace", get(manage::namespace))
        .route("/ui/account", get(manage::account))
        .route("/ui/webhook", get(manage::webhook))
        .route("/ui/do", post(manage::form_action))
        .layer(middleware::from_fn(security_headers))
        .layer(Extension(Arc::new(settings)))
}

/// No inline scripts or styles, nothing from elsewhere, never framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    if !h.contains_key("cache-control") {
        h.insert("cache-control", HeaderValue::from_static("no-store"));
    }
    response
}

const APP_CSS: &str = include_str!("../static/app.css");
const APP_JS: &str = include_str!("../static/app.js");

async fn static_file(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such file").into_response(),
    };
    (
        [("content-type", content_type), ("cache-control", "public, max-age=300")],
        body,
    )
        .into_response()
}

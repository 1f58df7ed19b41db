//! What can go wrong on a page, and how each renders: a sign-in redirect,
//! or an error page with the status and the API's own message.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};

#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// No session, or it ended: sign in, then come back to this path.
    #[error("sign in first")]
    SignIn { next: String },
    /// A form without the session's CSRF token (or from another origin).
    #[error("this form has expired or did not come from this site; reload the page and try again")]
    Csrf,
    /// The management API refused; its status and message are shown as is.
    #[error("{message}")]
    Api { status: StatusCode, message: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<portcullis_meta::MetaError> for UiError {
    fn from(e: portcullis_meta::MetaError) -> UiError {
        UiError::Internal(e.to_string())
    }
}

impl From<askama::Error> for UiError {
    fn from(e: askama::Error) -> UiError {
        UiError::Internal(e.to_string())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: String,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let status = match &self {
            UiError::SignIn { next } => {
                let to = format!("/ui/login?next={}", crate::view::enc(next));
                return Redirect::to(&to).into_response();
            }
            UiError::Csrf => StatusCode::FORBIDDEN,
            UiError::Api { status, .. } => *status,
            UiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            UiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if let UiError::Internal(e) = &self {
            tracing::warn!(error = %e, "web UI");
        }
        let title = match status {
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::UNAUTHORIZED => "Not signed in",
            s if s.is_client_error() => "Cannot do that",
            _ => "Something went wrong",
        };
        let page = ErrorPage {
            status: status.as_u16(),
            title,
            message: self.to_string(),
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, self.to_string()).into_response(),
        }
    }
}

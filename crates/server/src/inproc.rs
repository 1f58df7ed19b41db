//! What the web UI asks of the registry. The UI has no authorization of
//! its own: after its session says which account is signed in, every read
//! and change goes through [`Registry::call_api`], the management API
//! called in-process on that account's behalf, so a page can never show or
//! do more than the API would let that account see or do.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::response::Response;
use axum::Router;

use crate::{Registry, RegistryError};

/// Marks an in-process API request as made by this account. Only code in
/// this process can put it in a request's extensions; nothing a client
/// sends can.
#[derive(Clone, Debug)]
pub struct OnBehalfOf {
    /// The account as the session read and vetted it for this request
    /// (a user, no password change since sign-in).
    pub account: portcullis_meta::Account,
    pub address: Option<String>,
}

/// The management API's routes, built once.
fn api_routes() -> &'static Router<Arc<Registry>> {
    static ROUTES: OnceLock<Router<Arc<Registry>>> = OnceLock::new();
    ROUTES.get_or_init(crate::api::router)
}

/// An API answer: status and the JSON body (`null` when it was not JSON).
#[derive(Debug)]
pub struct ApiAnswer {
    pub status: StatusCode,
    pub body: serde_json::Value,
    /// The raw body (SBOM documents and other downloads).
    pub bytes: bytes::Bytes,
    pub content_type: Option<String>,
    /// A download's `Content-Disposition` (its file name).
    pub content_disposition: Option<String>,
}

impl ApiAnswer {
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The API's own message for a refusal (`errors[0].message`).
    pub fn message(&self) -> String {
        self.body["errors"][0]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("{}", self.status))
    }
}

impl Registry {
    /// Calls the management API as `who`: `path` is `/api/v1/…` with its
    /// query; `body` is JSON (or the raw bytes an endpoint takes).
    pub async fn call_api(self: &Arc<Self>, who: &OnBehalfOf, method: Method, path: &str, body: Vec<u8>) -> ApiAnswer {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .expect("a valid request");
        request.extensions_mut().insert(who.clone());
        let mut router = api_routes().clone().with_state(self.clone());
        let response: Response = match tower_service::Service::call(&mut router, request).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let (parts, body) = response.into_parts();
        let header = |name| crate::header_str(&parts.headers, name).map(str::to_string);
        let (status, content_type, content_disposition) =
            (parts.status, header("content-type"), header("content-disposition"));
        let bytes = axum::body::to_bytes(body, 64 << 20).await.unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        ApiAnswer {
            status,
            body,
            bytes,
            content_type,
            content_disposition,
        }
    }

    /// Checks a user's password as the token endpoint does (throttled,
    /// audited as `login`); returns the account name.
    pub async fn password_login(
        &self,
        user: &str,
        password: &str,
        address: Option<String>,
    ) -> Result<String, RegistryError> {
        if portcullis_auth::ApiToken::parse(password).is_some() {
            // The UI takes passwords only: an API token is for machines.
            return Err(RegistryError::Unauthorized(
                "sign in with your password, not an API token".into(),
            ));
        }
        let principal = crate::token::login(self, user, password, address, crate::token::LoginRecord::All).await?;
        Ok(principal.account.name)
    }

    /// The client's address as the audit trail records it (the
    /// forwarded address when the peer is a trusted proxy).
    pub fn client_address(&self, peer: Option<std::net::IpAddr>, headers: &axum::http::HeaderMap) -> Option<String> {
        self.access.settings.trusted_proxies.client(peer, headers)
    }
}

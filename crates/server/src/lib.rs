//! The HTTP face of Portcullis: the OCI Distribution API (with the Docker
//! Registry v2 behaviour real clients rely on), health and metrics.
//!
//! Handlers are thin: [`route::parse`] turns the path into a typed
//! [`route::Route`], one function per endpoint calls `meta` and `store`, and
//! every failure is a [`RegistryError`] that renders the spec's error body.

mod blobs;
mod cache;
mod error;
pub mod gc;
mod listing;
mod manifests;
mod metrics;
mod ops;
pub mod route;
mod serve;
mod uploads;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use portcullis_meta::Meta;
use portcullis_store::BlobStore;
use tracing::Instrument;

pub use error::RegistryError;
pub use gc::{collect_garbage_logged, GcReport, GcSettings};
pub use metrics::Metrics;
pub use serve::{serve, TlsFiles};

use route::Route;

/// Everything a request handler can reach. Shared, never copied: the truth
/// lives in `meta` and `store`; what is in memory here is cache or counters.
pub struct Registry {
    pub meta: Meta,
    pub store: BlobStore,
    pub metrics: Metrics,
    manifests: cache::ManifestCache,
}

/// Memory the manifest cache may use.
const MANIFEST_CACHE_BYTES: usize = 16 * 1024 * 1024;

impl Registry {
    /// A registry whose manifest reads may be cached for `manifest_cache_ttl`
    /// (zero: every read goes to the database).
    pub fn new(meta: Meta, store: BlobStore, manifest_cache_ttl: std::time::Duration) -> Arc<Registry> {
        let manifests = cache::ManifestCache::new(manifest_cache_ttl, MANIFEST_CACHE_BYTES);
        Arc::new(Registry {
            meta,
            store,
            metrics: Metrics::new(),
            manifests,
        })
    }
}

/// Which endpoint served a response; the metrics middleware labels by it.
#[derive(Clone, Copy)]
struct RouteName(&'static str);

pub fn app(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(dispatch)
        .layer(middleware::from_fn_with_state(registry.clone(), observe))
        .with_state(registry)
}

type Handled = Result<Response, RegistryError>;

async fn dispatch(
    State(reg): State<Arc<Registry>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let route = match route::parse(uri.path()) {
        None => return named("unknown", Err(RegistryError::NotFound)),
        Some(Err(e)) => return named("invalid", Err(e.into())),
        Some(Ok(r)) => r,
    };
    let query = uri.query().unwrap_or("");
    let head = method == Method::HEAD;
    let r = &reg;
    let (name, result): (&'static str, Handled) = match (method, route) {
        (Method::GET | Method::HEAD, Route::Base) => ("base", Ok(Body::from("{}").into_response())),
        (Method::GET | Method::HEAD, Route::Blob(n, d)) => ("blob_get", blobs::get(r, &n, &d, &headers, head).await),
        (Method::DELETE, Route::Blob(n, d)) => ("blob_delete", blobs::delete(r, &n, &d).await),
        (Method::POST, Route::Uploads(n)) => ("upload_start", uploads::start(r, &n, query, body).await),
        (Method::GET, Route::Upload(n, id)) => ("upload_status", uploads::status(r, &n, &id).await),
        (Method::PATCH, Route::Upload(n, id)) => ("upload_patch", uploads::patch(r, &n, &id, &headers, body).await),
        (Method::PUT, Route::Upload(n, id)) => (
            "upload_finish",
            uploads::finish(r, &n, &id, query, &headers, body).await,
        ),
        (Method::DELETE, Route::Upload(n, id)) => ("upload_cancel", uploads::cancel(r, &n, &id).await),
        (Method::GET | Method::HEAD, Route::Manifest(n, rf)) => {
            ("manifest_get", manifests::get(r, &n, &rf, &headers, head).await)
        }
        (Method::PUT, Route::Manifest(n, rf)) => {
            ("manifest_put", manifests::put(r, &n, &rf, query, &headers, body).await)
        }
        (Method::DELETE, Route::Manifest(n, rf)) => ("manifest_delete", manifests::delete(r, &n, &rf).await),
        (Method::GET, Route::Tags(n)) => ("tags_list", listing::tags(r, &n, query).await),
        (Method::GET, Route::Catalog) => ("catalog", listing::catalog(r, query).await),
        (Method::GET, Route::Referrers(n, d)) => ("referrers", listing::referrers(r, &n, &d, query).await),
        (m, _) => (
            "unsupported",
            Err(RegistryError::Unsupported(format!("{m} is not allowed on this route"))),
        ),
    };
    named(name, result)
}

fn named(name: &'static str, result: Handled) -> Response {
    let mut resp = result.unwrap_or_else(IntoResponse::into_response);
    resp.extensions_mut().insert(RouteName(name));
    resp.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    resp
}

/// Request id, structured log line and metrics for every request.
async fn observe(State(reg): State<Arc<Registry>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = req
        .headers()
        .get("x-request-id")
        .filter(|v| v.len() <= 64)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(request_id);
    let span = tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path());
    let mut resp = next.run(req).instrument(span.clone()).await;
    let elapsed = start.elapsed();
    let route = resp.extensions().get::<RouteName>().map_or("other", |r| r.0);
    let status = resp.status().as_u16();
    reg.metrics.observe_request(route, status, elapsed);
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(
                status,
                elapsed_ms = elapsed.as_secs_f64() * 1e3,
                route,
                "request failed"
            );
        } else {
            tracing::debug!(status, elapsed_ms = elapsed.as_secs_f64() * 1e3, route, "request");
        }
    });
    resp
}

/// `201 Created` for content now stored under `digest`, readable at `location`.
fn created(location: &str, digest: &portcullis_oci::Digest) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = axum::http::StatusCode::CREATED;
    let h = resp.headers_mut();
    h.insert(
        "location",
        HeaderValue::from_str(location).expect("paths of valid names and digests are ascii"),
    );
    h.insert(
        "docker-content-digest",
        HeaderValue::from_str(digest.as_str()).expect("digests are ascii"),
    );
    h.insert("content-length", HeaderValue::from(0));
    resp
}

/// A process-unique request id: a random prefix chosen once, then a counter,
/// so naming a request costs no system call.
fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_string());
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The value of query parameter `key`, decoded.
fn query_param(query: &str, key: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Every value of a repeated query parameter (`?tag=a&tag=b`).
fn query_params(query: &str, key: &str) -> Vec<String> {
    form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .collect()
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

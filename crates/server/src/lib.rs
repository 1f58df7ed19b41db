//! The HTTP face of Portcullis: the OCI Distribution API (with the Docker
//! Registry v2 behaviour real clients rely on), health and metrics.
//!
//! Handlers are thin: [`route::parse`] turns the path into a typed
//! [`route::Route`], one function per endpoint calls `meta` and `store`, and
//! every failure is a [`RegistryError`] that renders the spec's error body.

pub mod access;
mod api;
mod blobs;
mod cache;
mod error;
pub mod gc;
pub mod inproc;
pub mod keys;
mod listing;
mod manifests;
mod metrics;
mod ops;
mod promotion;
mod proxy;
mod pull;
mod reach;
mod replication;
pub mod route;
mod vulndb;
pub use vulndb::{PullSettings, UpdateSettings, VulnDbUpload};
mod scanner;
mod serve;
mod signing;
mod token;
mod uploads;
pub mod webhooks;
mod zero_copy;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, on, MethodFilter};
use axum::Router;
use portcullis_meta::{AuditEvent, Meta};
use portcullis_store::BlobStore;
use tracing::Instrument;

pub use access::{check_account_name, AccessSettings, Anonymous, TrustedProxies};
pub use api::audit_json;
pub use error::RegistryError;
pub use gc::{collect_garbage_logged, GcReport, GcSettings};
pub use metrics::Metrics;
pub use scanner::{available_cores, ScanSettings};
pub use serve::{serve, ConnectionLimits, TlsFiles};
pub use webhooks::WebhookSettings;

use access::{Access, Need};
use portcullis_auth::Actions;
use route::Route;

/// Everything a request handler can reach. Shared, never copied: the truth
/// lives in `meta` and `store`; what is in memory here is cache or counters.
pub struct Registry {
    pub meta: Meta,
    pub store: BlobStore,
    pub metrics: Metrics,
    manifests: cache::ManifestCache,
    access: Access,
    pull_audit: Arc<pull::audit::PullAuditQueue>,
    /// Served over HTTPS: token realms say `https`.
    tls: bool,
    scanner: scanner::Scanner,
    /// Keeps the vulnerability database current (`vulndb_update.rs`).
    updater: vulndb::update::Updater,
    /// Or pulls it, signed, from a registry (`vulndb_pull.rs`).
    puller: vulndb::pull::PullSettings,
    /// Pull rules per repository, read at most once per TTL (a cache; a
    /// change made here clears it at once).
    pull_rules: pull::PullRuleCache,
    webhooks: WebhookSettings,
    dispatcher: webhooks::Dispatcher,
    /// Seals server-side signing keys at rest.
    kek: [u8; 32],
    /// Bounds the cosign key files decrypted at once (scrypt's memory).
    key_imports: Arc<tokio::sync::Semaphore>,
    /// Taken by each push's promotions in turn (`promotion/`).
    promoting: tokio::sync::Mutex<()>,
    /// Bounds the replication runs that copy at once (`replication.rs`).
    replication_runs: Arc<tokio::sync::Semaphore>,
    /// Pull-through caches' flights, pending blobs and tag checks (`proxy.rs`).
    proxy: proxy::ProxyState,
    /// Taken while the registry's first attestation key is made or a new
    /// one added (`signing/attestations.rs`), so two never race to be the newest.
    registry_key_creation: tokio::sync::Mutex<()>,
}

/// How a [`Registry`] behaves beyond where its data lives.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// How long manifest reads may be cached (zero: never).
    pub manifest_cache_ttl: std::time::Duration,
    pub access: AccessSettings,
    pub tls: bool,
    pub scan: ScanSettings,
    pub webhooks: WebhookSettings,
    /// The key-encryption key for server-side signing keys; by default
    /// `<key_dir>/signing.kek`, made on first start.
    pub kek: Option<[u8; 32]>,
    /// Run the scanner workers and the webhook dispatcher. `serve` does;
    /// a one-off command (`portcullis gc`) does not, so it neither scans
    /// nor delivers beside the server it runs next to.
    pub background: bool,
}

/// Memory the manifest cache may use.
const MANIFEST_CACHE_BYTES: usize = 16 * 1024 * 1024;

impl Registry {
    /// A registry over `meta` and `store`; loads (or creates) the token
    /// signing keys and starts the writer of pull audit records. Needs a
    /// Tokio runtime.
    pub fn new(meta: Meta, store: BlobStore, options: RegistryOptions) -> std::io::Result<Arc<Registry>> {
        let manifests = cache::ManifestCache::new(options.manifest_cache_ttl, MANIFEST_CACHE_BYTES);
        let kek = match options.kek {
            Some(k) => k,
            None => keys::load_or_create_kek(&options.access.key_dir)?,
        };
        let metrics = Metrics::new();
        let pull_audit = Arc::new(pull::audit::PullAuditQueue::new(
            options.access.pull_audit_queue,
            metrics.pull_audit_depth.clone(),
        ));
        let registry = Arc::new(Registry {
            meta,
            store,
            metrics,
            manifests,
            pull_audit: pull_audit.clone(),
            access: Access::new(options.access, options.manifest_cache_ttl)?,
            tls: options.tls,
            updater: vulndb::update::Updater::new(options.scan.updates.clone()),
            puller: options.scan.pull.clone(),
            scanner: scanner::Scanner::new(options.scan),
            pull_rules: pull::PullRuleCache::new(options.manifest_cache_ttl),
            proxy: proxy::ProxyState::new(options.manifest_cache_ttl),
            dispatcher: webhooks::Dispatcher::new(&options.webhooks),
            webhooks: options.webhooks,
            kek,
            promoting: tokio::sync::Mutex::new(()),
            replication_runs: Arc::new(tokio::sync::Semaphore::new(replication::RUNS_AT_ONCE)),
            registry_key_creation: tokio::sync::Mutex::new(()),
            key_imports: Arc::new(tokio::sync::Semaphore::new(signing::KEY_IMPORTS_AT_ONCE)),
        });
        tokio::spawn(pull::audit::writer(Arc::downgrade(&registry), pull_audit));
        if options.background {
            scanner::Scanner::start(&registry);
            tokio::spawn(webhooks::dispatch(Arc::downgrade(&registry)));
            tokio::spawn(Registry::retry_failed_signings(Arc::downgrade(&registry)));
            tokio::spawn(replication::schedule(Arc::downgrade(&registry)));
            tokio::spawn(replication::push_queue(Arc::downgrade(&registry)));
            tokio::spawn(vulndb::update::run(Arc::downgrade(&registry)));
            if registry.pulls_vulndb() {
                tokio::spawn(vulndb::pull::run(Arc::downgrade(&registry)));
            }
        }
        Ok(registry)
    }

    /// Queues a pull for the audit trail (see `pull_audit`).
    pub(crate) async fn audit_pull(&self, event: AuditEvent) {
        if self.access.settings.audit_pulls {
            self.pull_audit.push(event).await;
        }
    }

    /// The registry's public URL (`public_url`), as clients reach it.
    pub fn public_url(&self) -> &str {
        &self.webhooks.public_url
    }

    /// Writes every queued pull record now (at shutdown, and for tests).
    pub async fn flush_pull_audit(&self) {
        self.pull_audit.drain(self).await;
    }

    /// Forgets cached reads of `repo` (after a change made outside the
    /// registry API, such as a repository deletion).
    pub(crate) fn invalidate(&self, repo: &str) {
        self.manifests.invalidate(repo);
        self.access.forget_repository(repo);
    }
}

/// Every endpoint outside the management API, by name: the OCI
/// Distribution routes, the token endpoint and operations. With
/// [`api::ENDPOINTS`] this is the whole surface; the authorization matrix
/// test has a row for each.
pub const REGISTRY_ENDPOINTS: &[&str] = &[
    "base",
    "catalog",
    "tags_list",
    "manifest_get",
    "manifest_put",
    "manifest_delete",
    "blob_get",
    "blob_delete",
    "upload_start",
    "upload_status",
    "upload_patch",
    "upload_finish",
    "upload_cancel",
    "referrers",
    "token",
    "healthz",
    "readyz",
    "metrics",
];

pub use api::ENDPOINTS as API_ENDPOINTS;

/// The name of the endpoint `method` on `route` reaches, and what it needs.
fn endpoint<'a>(method: &Method, route: &'a Route) -> Option<(&'static str, Need<'a>)> {
    let repo = |n: &'a portcullis_oci::RepositoryName, a| Need::Repository(n.as_str(), a);
    let read = matches!(*method, Method::GET | Method::HEAD);
    Some(match (route, method) {
        (Route::Base, _) if read => ("base", Need::Authenticated),
        (Route::Catalog, &Method::GET) => ("catalog", Need::Authenticated),
        (Route::Tags(n), &Method::GET) => ("tags_list", repo(n, Actions::PULL)),
        (Route::Manifest(n, _), _) if read => ("manifest_get", repo(n, Actions::PULL)),
        (Route::Manifest(n, _), &Method::PUT) => ("manifest_put", repo(n, Actions::PUSH)),
        (Route::Manifest(n, _), &Method::DELETE) => ("manifest_delete", repo(n, Actions::DELETE)),
        (Route::BadReference(n, _), _) if read => ("manifest_get", repo(n, Actions::PULL)),
        (Route::BadReference(n, _), &Method::PUT) => ("manifest_put", repo(n, Actions::PUSH)),
        (Route::BadReference(n, _), &Method::DELETE) => ("manifest_delete", repo(n, Actions::DELETE)),
        (Route::Blob(n, _), _) if read => ("blob_get", repo(n, Actions::PULL)),
        (Route::Blob(n, _), &Method::DELETE) => ("blob_delete", repo(n, Actions::DELETE)),
        (Route::Uploads(n), &Method::POST) => ("upload_start", repo(n, Actions::PUSH)),
        (Route::Upload(n, _), &Method::GET) => ("upload_status", repo(n, Actions::PUSH)),
        (Route::Upload(n, _), &Method::PATCH) => ("upload_patch", repo(n, Actions::PUSH)),
        (Route::Upload(n, _), &Method::PUT) => ("upload_finish", repo(n, Actions::PUSH)),
        (Route::Upload(n, _), &Method::DELETE) => ("upload_cancel", repo(n, Actions::PUSH)),
        (Route::Referrers(n, _), &Method::GET) => ("referrers", repo(n, Actions::PULL)),
        _ => return None,
    })
}

/// Which endpoint served a response; the metrics middleware labels by it.
#[derive(Clone, Copy)]
struct RouteName(&'static str);

pub fn app(registry: Arc<Registry>) -> Router {
    app_with(registry, Router::new())
}

/// The application with `extra` routes beside the registry's (the web UI:
/// a crate of its own that builds on this one).
pub fn app_with(registry: Arc<Registry>, extra: Router<Arc<Registry>>) -> Router {
    Router::new()
        .merge(extra)
        .route(
            "/auth/token",
            on(MethodFilter::GET.or(MethodFilter::POST), token::token),
        )
        .merge(api::router())
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(dispatch)
        .layer(middleware::from_fn_with_state(registry.clone(), observe))
        .with_state(registry)
}

type Handled = Result<Response, RegistryError>;

async fn dispatch(State(reg): State<Arc<Registry>>, peer: token::Peer, request: axum::extract::Request) -> Response {
    let (parts, body) = request.into_parts();
    let axum::http::request::Parts {
        method,
        uri,
        version,
        headers,
        extensions,
        ..
    } = parts;
    // Only a plain HTTP/1 connection carries a slot; h2c on it does not use it.
    let zero_copy = extensions
        .get::<zero_copy::FileSlot>()
        .filter(|_| version <= axum::http::Version::HTTP_11)
        .cloned();
    let route = match route::parse(uri.path()) {
        None => return named("unknown", Err(RegistryError::NotFound)),
        Some(Err(e)) => return named("invalid", Err(e.into())),
        Some(Ok(r)) => r,
    };
    let Some((name, need)) = endpoint(&method, &route) else {
        return named(
            "unsupported",
            Err(RegistryError::Unsupported(format!(
                "{method} is not allowed on this route"
            ))),
        );
    };
    let caller = match reg.authenticate(&headers).await {
        Ok(c) => c,
        Err(e) => return named(name, Err(e)),
    };
    if let Err(e) = reg.authorize(&caller, need).await {
        return named(name, Err(mount_challenge(e, &route, uri.query().unwrap_or(""))));
    }
    let actor = caller.actor(
        reg.access
            .settings
            .trusted_proxies
            .client(token::peer_ip(&peer), &headers),
    );
    let query = uri.query().unwrap_or("");
    let head = method == Method::HEAD;
    // A pull-through cache's namespace: served from its upstream, and closed to pushes.
    let proxy = match route.repository() {
        Some(n) => match reg.proxy_of(n.as_str()).await {
            Ok(p) => p,
            Err(e) => return named(name, Err(e)),
        },
        None => None,
    };
    if let Some(p) = &proxy {
        if let Err(e) = reg.refuse_proxy_write(&caller, &method, &route, p).await {
            return named(name, Err(e));
        }
    }
    let r = &reg;
    let result: Handled = match (method, route) {
        (_, Route::Base) => Ok(Body::from("{}").into_response()),
        (_, Route::Catalog) => listing::catalog(r, &caller, query).await,
        (_, Route::Tags(n)) => listing::tags(r, &n, query).await,
        (m, Route::Manifest(n, rf)) if m == Method::GET || head => {
            let resp = match proxy {
                Some(p) => r.proxy_manifest(p, &caller, &actor, &n, &rf, &headers, head).await,
                None => manifests::get(r, &caller, &n, &rf, &headers, head).await,
            };
            if let (false, Ok(ok)) = (head, &resp) {
                let digest = header_str(ok.headers(), "docker-content-digest").unwrap_or_default();
                reg.audit_pull(actor.event("pull").repository(n.as_str()).digest(digest))
                    .await;
            }
            resp
        }
        (Method::PUT, Route::Manifest(n, rf)) => manifests::put(r, &actor, &n, &rf, query, &headers, body).await,
        (_, Route::Manifest(n, rf)) => manifests::delete(r, &actor, &n, &rf).await,
        (Method::PUT, Route::BadReference(_, e)) => Err(e.into()),
        (_, Route::BadReference(n, e)) => Err(RegistryError::ManifestUnknown(format!("{n}: {e}"))),
        (Method::DELETE, Route::Blob(n, d)) => blobs::delete(r, &actor, &n, &d).await,
        (_, Route::Blob(n, d)) => match proxy {
            Some(p) => r.proxy_blob_get(p, &n, &d, &headers, head, zero_copy.as_ref()).await,
            None => blobs::get(r, &n, &d, &headers, head, zero_copy.as_ref()).await,
        },
        (_, Route::Uploads(n)) => match uploads::mount_source(r, &caller, &n, query).await {
            Ok(from) => uploads::start(r, &n, &actor.name, query, from, body).await,
            Err(e) => Err(e),
        },
        (Method::GET, Route::Upload(n, id)) => uploads::status(r, &n, &actor.name, &id).await,
        (Method::PATCH, Route::Upload(n, id)) => uploads::patch(r, &n, &actor.name, &id, &headers, body).await,
        (Method::PUT, Route::Upload(n, id)) => uploads::finish(r, &n, &actor.name, &id, query, &headers, body).await,
        (_, Route::Upload(n, id)) => uploads::cancel(r, &n, &actor.name, &id).await,
        (_, Route::Referrers(n, d)) => listing::referrers(r, &n, &d, query).await,
    };
    named(name, result)
}

/// A mount's challenge names the source repository's pull scope too (as
/// Distribution's does), so a client that asks for exactly the challenged
/// scopes gets a token that lets the mount succeed.
fn mount_challenge(e: RegistryError, route: &Route, query: &str) -> RegistryError {
    match (e, route, query_param(query, "mount"), query_param(query, "from")) {
        (RegistryError::Challenge { scope, insufficient }, Route::Uploads(_), Some(_), Some(from))
            if from.parse::<portcullis_oci::RepositoryName>().is_ok() =>
        {
            RegistryError::Challenge {
                scope: format!("{scope} repository:{from}:pull"),
                insufficient,
            }
        }
        (e, ..) => e,
    }
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
    let host = req.headers().get("host").cloned();
    let mut resp = next.run(req).instrument(span.clone()).await;
    if let Some(error::NeedsChallenge(scope, insufficient)) = resp.extensions_mut().remove() {
        let host = host.as_ref().and_then(|h| h.to_str().ok());
        let challenge = reg.challenge(host, scope.as_deref(), insufficient);
        resp.headers_mut().insert("www-authenticate", challenge);
    }
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

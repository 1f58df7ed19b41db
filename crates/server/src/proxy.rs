//! Pull-through caches (issue 22): a namespace set up as a proxy of an
//! upstream registry's namespace serves `NS/REPO:TAG` from
//! `UPSTREAM_NS/REPO:TAG` there.
//!
//! - A manifest by tag is served from the cache while the upstream's
//!   digest for the tag was confirmed within `ttl_secs` (a `HEAD`
//!   upstream); an upstream that can't say is answered with the cached
//!   copy and a `Warning: 110` header. A manifest by digest is served from
//!   the cache whenever it is there.
//! - A manifest not cached is fetched (its digest checked), answered at
//!   once with the upstream's bytes, and stored in the background: its
//!   blobs first, then the manifest through [`crate::manifests::commit`],
//!   the push's own path (audit, events, scan on push, promotion). Until
//!   it is stored, the blobs it lists may be asked for: each is downloaded
//!   once per namespace at a time (a flight, keyed by digest), written
//!   into the store's verified upload and streamed to every client asking
//!   for it from the upload file as it grows; a blob whose bytes do not
//!   hash to its digest, or that is longer or shorter than its manifest
//!   declares, is never stored, and the clients reading it get an error.
//! - Pull rules: what a rule can decide without the image (an unreadable
//!   rule, an old vulnerability database, a signer that is gone) refuses
//!   before anything is fetched; otherwise the image is stored first and
//!   the rule judges it there, as it judges any pushed image.
//! - `max_bytes` bounds the bytes the cached images declare together; past
//!   it the least recently pulled images are evicted (their blobs are then
//!   garbage collection's).
//!
//! Nothing here is the truth: flights, pending blobs and tag confirmations
//! are memory, and a restart only means asking the upstream again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::future::{BoxFuture, FutureExt, Shared};
use futures_util::StreamExt;
use portcullis_meta::ProxyNamespace;
use portcullis_oci::{Digest, Manifest, Reference, RepositoryName};
use portcullis_registry_client::{ClientError, FetchedManifest, RegistryClient};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::access::{Actor, Caller, Need, Principal};
use crate::cache::TtlMap;
use crate::route::Route;
use crate::{Handled, Registry, RegistryError};
use axum::http::Method;
use portcullis_auth::Role;

/// A blob is written into its upload in pieces of this size; readers
/// see each piece once it is in the file.
const WRITE_BATCH: usize = 1 << 20;
/// The most a reader sends in one body chunk.
const READ_CHUNK: usize = 256 << 10;
/// A reader waiting this long for the next piece gives up (the upstream's
/// own read timeout is 120 s).
const READER_PATIENCE: Duration = Duration::from_secs(150);
/// How long a handed-out manifest's blobs may be asked for before it is stored.
const PENDING_FOR: Duration = Duration::from_secs(3600);
/// Entries kept in each memory map; past it the oldest are dropped.
const MAX_ENTRIES: usize = 100_000;
/// Nesting of indexes followed (as `reach.rs` bounds it).
const MAX_DEPTH: usize = 8;
/// How long an upstream client (and its token) is reused.
const CLIENT_TTL: Duration = Duration::from_secs(60);
/// Images evicted at most after one store, whatever the limit.
const MAX_EVICTIONS: usize = 1_000;

/// Default `ttl_secs`.
pub(crate) const DEFAULT_TTL_SECS: u64 = 300;
/// The longest `ttl_secs` accepted (a week).
pub(crate) const MAX_TTL_SECS: u64 = 7 * 24 * 3600;

type Completion = Shared<BoxFuture<'static, Result<(), String>>>;

/// The memory of the pull-through caches.
pub(crate) struct ProxyState {
    /// Each namespace's proxy settings (`None`: not a proxy), believed for
    /// the manifest cache's TTL; forgotten at once on a change made here.
    settings: TtlMap<Option<Arc<ProxyNamespace>>>,
    clients: TtlMap<Arc<RegistryClient>>,
    /// Blob downloads running, by `namespace\0digest`.
    flights: Mutex<HashMap<String, Arc<Flight>>>,
    /// Stores of handed-out manifests running, by `repo\0digest\0tag`.
    completions: Mutex<HashMap<String, Completion>>,
    /// Blobs of manifests handed out and not yet stored, by `repo\0digest`:
    /// when put there and the size the manifest declares.
    pending: Mutex<HashMap<String, (Instant, u64)>>,
    /// When a tag's upstream digest was last asked, by `repo\0tag`: the
    /// digest confirmed then, or why the upstream could not say.
    checked: Mutex<HashMap<String, (Instant, Result<String, String>)>>,
}

impl ProxyState {
    pub(crate) fn new(ttl: Duration) -> ProxyState {
        ProxyState {
            settings: TtlMap::new(ttl),
            clients: TtlMap::new(CLIENT_TTL),
            flights: Mutex::default(),
            completions: Mutex::default(),
            pending: Mutex::default(),
            checked: Mutex::default(),
        }
    }

    /// Forgets what is remembered of `namespace`'s settings and clients.
    pub(crate) fn forget(&self, namespace: &str) {
        self.settings.forget(namespace);
        self.clients.clear();
        self.checked.lock().expect("not poisoned").clear();
    }

    fn pending_size(&self, repo: &str, digest: &Digest) -> Option<u64> {
        let pending = self.pending.lock().expect("not poisoned");
        pending
            .get(&format!("{repo}\0{digest}"))
            .filter(|(at, _)| at.elapsed() < PENDING_FOR)
            .map(|(_, size)| *size)
    }

    /// Lets the blobs `manifest` lists be fetched for `repo`.
    fn expect_blobs(&self, repo: &str, manifest: &Manifest) {
        let mut pending = self.pending.lock().expect("not poisoned");
        if pending.len() >= MAX_ENTRIES {
            pending.retain(|_, (at, _)| at.elapsed() < PENDING_FOR);
            if pending.len() >= MAX_ENTRIES {
                pending.clear();
            }
        }
        for d in manifest.config.iter().chain(&manifest.layers) {
            pending.insert(format!("{repo}\0{}", d.digest), (Instant::now(), d.size));
        }
    }

    fn done_with_blobs(&self, repo: &str, manifest: &Manifest) {
        let mut pending = self.pending.lock().expect("not poisoned");
        for d in manifest.config.iter().chain(&manifest.layers) {
            pending.remove(&format!("{repo}\0{}", d.digest));
        }
    }

    /// What the upstream last said of `repo:tag`, if asked within `ttl`.
    fn confirmed(&self, repo: &str, tag: &str, ttl: Duration) -> Option<Result<String, String>> {
        let checked = self.checked.lock().expect("not poisoned");
        checked
            .get(&format!("{repo}\0{tag}"))
            .filter(|(at, _)| at.elapsed() < ttl)
            .map(|(_, said)| said.clone())
    }

    fn confirm(&self, repo: &str, tag: &str, said: Result<String, String>) {
        let mut checked = self.checked.lock().expect("not poisoned");
        if checked.len() >= MAX_ENTRIES {
            checked.clear();
        }
        checked.insert(format!("{repo}\0{tag}"), (Instant::now(), said));
    }
}

/// One blob download: its upload and how far it got.
struct Flight {
    /// The repository the blob is stored in (others of the namespace mount it).
    repo: String,
    declared: u64,
    state: watch::Sender<FlightState>,
}

#[derive(Debug, Clone, Default)]
struct FlightState {
    upload: Option<uuid::Uuid>,
    /// Bytes in the upload file.
    written: u64,
    /// `Ok(size)`: stored; `Err`: why nothing was.
    done: Option<Result<u64, String>>,
}

/// The message a refused push or delete gets.
pub(crate) fn refusal(p: &ProxyNamespace) -> RegistryError {
    let upstream = if p.upstream_namespace.is_empty() {
        format!("registry {}", p.registry)
    } else {
        format!("{} on registry {}", p.upstream_namespace, p.registry)
    };
    RegistryError::Denied(format!(
        "namespace {} is a pull-through cache of {upstream}: it takes no pushes; push to the upstream",
        p.namespace
    ))
}

/// The `Warning` header of a cached copy served without the upstream's word.
fn stale_warning(why: &str) -> HeaderValue {
    let text: String = why
        .chars()
        .map(|c| {
            if c == '"' || c == '\\' || !c.is_ascii() || c.is_ascii_control() {
                '\''
            } else {
                c
            }
        })
        .take(200)
        .collect();
    HeaderValue::from_str(&format!("110 - \"stale: {text}\"")).expect("ascii without quotes")
}

/// Why an upstream could not confirm a tag, for the warning.
fn upstream_failure(e: &ClientError) -> String {
    match e {
        ClientError::Http { .. } => "upstream unreachable".into(),
        ClientError::Status { status, .. } if status.is_server_error() => "upstream unreachable".into(),
        ClientError::Status { status, .. } => format!("upstream answered {}", status.as_u16()),
        _ => "upstream unreachable".into(),
    }
}

/// The bytes a manifest's own blobs declare.
fn declared_bytes(m: &Manifest) -> u64 {
    m.config.iter().chain(&m.layers).map(|d| d.size).sum()
}

impl Registry {
    /// The proxy settings of `repo`'s namespace, `None` when it is no proxy.
    pub(crate) async fn proxy_of(&self, repo: &str) -> Result<Option<Arc<ProxyNamespace>>, RegistryError> {
        let Some((ns, _)) = repo.split_once('/') else {
            return Ok(None);
        };
        if let Some(p) = self.proxy.settings.get(ns) {
            return Ok(p);
        }
        let p = self.meta.proxy_namespace(ns).await?.map(Arc::new);
        self.proxy.settings.put(ns, p.clone());
        Ok(p)
    }

    /// `Err(DENIED)` for a push (a manifest, an upload) into a proxy
    /// namespace, and for a delete there by anyone but its administrators
    /// (who may purge the cache).
    pub(crate) async fn refuse_proxy_write(
        &self,
        caller: &Caller,
        method: &Method,
        route: &Route,
        p: &ProxyNamespace,
    ) -> Result<(), RegistryError> {
        let delete = match (route, method) {
            (Route::Manifest(..) | Route::BadReference(..), &Method::GET | &Method::HEAD) => return Ok(()),
            (Route::Blob(..), &Method::GET | &Method::HEAD) => return Ok(()),
            (Route::Manifest(..) | Route::BadReference(..) | Route::Blob(..), &Method::DELETE) => true,
            _ => false,
        };
        if delete {
            let account = match caller {
                Caller::Account(a) => Some(a.account.clone()),
                Caller::Bearer(c) => self.meta.account(&c.sub).await?,
                Caller::Anonymous => None,
            };
            if let Some(a) = account {
                let admin = Caller::Account(Principal::full(a, None));
                if self
                    .authorize(&admin, Need::Namespace(&p.namespace, Role::Admin))
                    .await
                    .is_ok()
                {
                    return Ok(());
                }
            }
        }
        Err(refusal(p))
    }

    /// Forgets remembered proxy settings of `namespace` (changed here).
    pub(crate) fn forget_proxy(&self, namespace: &str) {
        self.proxy.forget(namespace);
    }

    /// The upstream repository `repo` stands for.
    fn upstream_repository(p: &ProxyNamespace, repo: &str) -> String {
        let rest = repo.split_once('/').map_or(repo, |(_, rest)| rest);
        if p.upstream_namespace.is_empty() {
            rest.to_string()
        } else {
            format!("{}/{rest}", p.upstream_namespace)
        }
    }

    async fn proxy_client(&self, p: &ProxyNamespace, repo: &str) -> Result<Arc<RegistryClient>, RegistryError> {
        let upstream = Self::upstream_repository(p, repo);
        let key = format!("{}\0{upstream}", p.registry);
        if let Some(c) = self.proxy.clients.get(&key) {
            return Ok(c);
        }
        let registry = self
            .meta
            .upstream_registry(&p.registry)
            .await?
            .ok_or_else(|| RegistryError::Internal(format!("registry {} is gone", p.registry)))?;
        let client = Arc::new(
            self.upstream_client(&registry, &upstream)
                .map_err(RegistryError::Internal)?,
        );
        self.proxy.clients.put(&key, client.clone());
        Ok(client)
    }

    /// `GET`/`HEAD /v2/NS/REPO/manifests/REF` in a proxy namespace.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn proxy_manifest(
        self: &Arc<Self>,
        p: Arc<ProxyNamespace>,
        caller: &Caller,
        actor: &Actor,
        name: &RepositoryName,
        reference: &Reference,
        headers: &HeaderMap,
        head: bool,
    ) -> Handled {
        let repo = name.as_str();
        // What a rule decides without the image refuses before the upstream is asked.
        let judged_on_image = self.pull_rule_precheck(caller, repo).await?;
        let local = self.meta.get_manifest(repo, reference).await?;
        let ttl = Duration::from_secs(p.ttl_secs.max(0) as u64);
        let mut stale = None;
        match (reference, &local) {
            (Reference::Digest(_), Some(m)) => {
                return self
                    .serve_cached(caller, name, reference, headers, head, &m.digest, None)
                    .await
            }
            (Reference::Tag(tag), Some(m)) => {
                let said = match self.proxy.confirmed(repo, tag, ttl) {
                    Some(said) => said,
                    None => {
                        let client = self.proxy_client(&p, repo).await?;
                        let said = match client.manifest_head(tag).await {
                            Ok(h) => Ok(h.digest.to_string()),
                            Err(e) => {
                                tracing::info!(repository = %repo, tag = %tag, error = %e, "proxy: the upstream could not confirm a tag; serving the cached copy");
                                Err(upstream_failure(&e))
                            }
                        };
                        self.proxy.confirm(repo, tag, said.clone());
                        said
                    }
                };
                match said {
                    Ok(d) if d == m.digest => {
                        return self
                            .serve_cached(caller, name, reference, headers, head, &m.digest, None)
                            .await
                    }
                    Err(why) => {
                        return self
                            .serve_cached(caller, name, reference, headers, head, &m.digest, Some(why))
                            .await
                    }
                    // Moved upstream: fetched again below.
                    Ok(_) => stale = Some(m.digest.clone()),
                }
            }
            (_, None) => {}
        }
        let client = self.proxy_client(&p, repo).await?;
        let fetched = match client.manifest(&reference.to_string()).await {
            Ok(f) => f,
            Err(e) => {
                // The tag moved but the new manifest can't be had: the old one serves.
                if let Some(old) = stale {
                    let why = upstream_failure(&e);
                    return self
                        .serve_cached(caller, name, reference, headers, head, &old, Some(why))
                        .await;
                }
                return Err(match e.status() {
                    Some(StatusCode::NOT_FOUND) => RegistryError::ManifestUnknown(format!(
                        "manifest {reference} is not in {} on registry {}",
                        Self::upstream_repository(&p, repo),
                        p.registry
                    )),
                    _ => RegistryError::Upstream(format!(
                        "the upstream registry {} did not serve {reference}: {e}",
                        p.registry
                    )),
                });
            }
        };
        let manifest = Manifest::parse(&fetched.bytes, fetched.media_type.as_deref())
            .map_err(|e| RegistryError::Upstream(format!("the upstream's manifest {reference}: {e}")))?;
        let media_type = manifest.media_type.clone();
        if let Reference::Tag(tag) = reference {
            self.proxy.confirm(repo, tag, Ok(fetched.digest.to_string()));
        }
        self.proxy.expect_blobs(repo, &manifest);
        let tag = match reference {
            Reference::Tag(t) => Some(t.to_string()),
            Reference::Digest(_) => None,
        };
        let digest = fetched.digest.clone();
        let bytes = fetched.bytes.clone();
        let completion = self.complete(p.clone(), name.clone(), fetched, tag, actor.clone());
        if judged_on_image {
            // The rule judges the stored image, as it judges a pushed one.
            completion.await.map_err(RegistryError::Upstream)?;
            return crate::manifests::get(self, caller, name, reference, headers, head).await;
        }
        if !crate::manifests::accepts(headers, &media_type) {
            return Err(RegistryError::ManifestUnknown(format!(
                "manifest {reference} is {media_type}, which the request's Accept header does not list"
            )));
        }
        let len = bytes.len();
        let mut resp = Response::new(if head { Body::empty() } else { Body::from(bytes) });
        let h = resp.headers_mut();
        h.insert(
            "content-type",
            HeaderValue::from_str(&media_type).unwrap_or(HeaderValue::from_static("application/json")),
        );
        h.insert("content-length", HeaderValue::from(len));
        h.insert(
            "docker-content-digest",
            HeaderValue::from_str(digest.as_str()).expect("ascii"),
        );
        h.insert("etag", HeaderValue::from_str(&format!("\"{digest}\"")).expect("ascii"));
        Ok(resp)
    }

    /// A cached manifest through the ordinary path (pull rules judge it),
    /// marked pulled; with the warning when the upstream could not confirm it.
    #[allow(clippy::too_many_arguments)]
    async fn serve_cached(
        &self,
        caller: &Caller,
        name: &RepositoryName,
        reference: &Reference,
        headers: &HeaderMap,
        head: bool,
        digest: &str,
        stale: Option<String>,
    ) -> Handled {
        let digest: Digest = digest.parse()?;
        let by_digest = Reference::Digest(digest.clone());
        // A tag that moved meanwhile still serves the digest confirmed.
        let reference = if stale.is_some() { &by_digest } else { reference };
        let mut resp = crate::manifests::get(self, caller, name, reference, headers, head).await?;
        if let Err(e) = self.meta.touch_cached_image(name.as_str(), digest.as_str()).await {
            tracing::warn!(repository = %name, error = %e, "proxy: marking an image pulled failed");
        }
        if let Some(why) = stale {
            resp.headers_mut().insert("warning", stale_warning(&why));
        }
        Ok(resp)
    }

    /// Stores a handed-out manifest in the background (once per
    /// repository, digest and tag at a time); the shared result.
    fn complete(
        self: &Arc<Self>,
        p: Arc<ProxyNamespace>,
        name: RepositoryName,
        fetched: FetchedManifest,
        tag: Option<String>,
        actor: Actor,
    ) -> Completion {
        let key = format!("{name}\0{}\0{}", fetched.digest, tag.as_deref().unwrap_or(""));
        let mut completions = self.proxy.completions.lock().expect("not poisoned");
        if let Some(c) = completions.get(&key) {
            return c.clone();
        }
        let reg = self.clone();
        let k = key.clone();
        let work = async move {
            let result = reg.store_image(&p, &name, fetched, tag, &actor).await;
            reg.proxy.completions.lock().expect("not poisoned").remove(&k);
            if let Err(e) = &result {
                tracing::warn!(repository = %name, error = %e, "proxy: an image was not stored");
            }
            result
        }
        .boxed()
        .shared();
        completions.insert(key, work.clone());
        drop(completions);
        tokio::spawn(work.clone());
        work
    }

    async fn store_image(
        self: &Arc<Self>,
        p: &ProxyNamespace,
        name: &RepositoryName,
        fetched: FetchedManifest,
        tag: Option<String>,
        actor: &Actor,
    ) -> Result<(), String> {
        let client = self.proxy_client(p, name.as_str()).await.map_err(|e| e.to_string())?;
        let digest = fetched.digest.clone();
        let tags: Vec<String> = tag.into_iter().collect();
        let bytes = self.store_manifest(p, name, &client, fetched, tags, actor, 0).await?;
        self.meta
            .record_cached_image(name.as_str(), digest.as_str(), bytes as i64)
            .await
            .map_err(|e| e.to_string())?;
        self.evict_over_limit(p, name.as_str(), digest.as_str()).await;
        Ok(())
    }

    /// Stores a manifest after what it needs (children, blobs); the bytes
    /// the blobs of it and its children declare.
    #[allow(clippy::too_many_arguments)]
    fn store_manifest<'a>(
        self: &'a Arc<Self>,
        p: &'a ProxyNamespace,
        name: &'a RepositoryName,
        client: &'a Arc<RegistryClient>,
        fetched: FetchedManifest,
        tags: Vec<String>,
        actor: &'a Actor,
        depth: usize,
    ) -> BoxFuture<'a, Result<u64, String>> {
        async move {
            if depth > MAX_DEPTH {
                return Err(format!("indexes nested deeper than {MAX_DEPTH}"));
            }
            let repo = name.as_str();
            let manifest = Manifest::parse(&fetched.bytes, fetched.media_type.as_deref())
                .map_err(|e| format!("manifest {}: {e}", fetched.digest))?;
            let mut bytes = declared_bytes(&manifest);
            for child in manifest.required_manifests() {
                let m = client.manifest(child.as_str()).await.map_err(|e| e.to_string())?;
                if let Ok(parsed) = Manifest::parse(&m.bytes, m.media_type.as_deref()) {
                    self.proxy.expect_blobs(repo, &parsed);
                }
                bytes += self
                    .store_manifest(p, name, client, m, Vec::new(), actor, depth + 1)
                    .await?;
            }
            for d in manifest.config.iter().chain(&manifest.layers) {
                self.proxy_blob(p, repo, &d.digest, d.size, client).await?;
            }
            if !tags.is_empty()
                || self
                    .meta
                    .get_manifest(repo, &Reference::Digest(fetched.digest.clone()))
                    .await
                    .map_err(|e| e.to_string())?
                    .is_none()
            {
                let upstream = Self::upstream_repository(p, repo);
                let event = actor
                    .event("proxy.import")
                    .detail(format!("upstream={}/{upstream}@{}", p.registry, fetched.digest));
                let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
                crate::manifests::commit(
                    self,
                    actor,
                    name,
                    &manifest,
                    &fetched.bytes,
                    &fetched.digest,
                    tag_refs,
                    event,
                )
                .await
                .map_err(|e| e.to_string())?;
            }
            self.proxy.done_with_blobs(repo, &manifest);
            Ok(bytes)
        }
        .boxed()
    }

    /// Makes `digest` readable in `repo`: there already, mounted from
    /// another repository of the namespace, or downloaded by the
    /// namespace's one flight for it.
    async fn proxy_blob(
        self: &Arc<Self>,
        p: &ProxyNamespace,
        repo: &str,
        digest: &Digest,
        declared: u64,
        client: &Arc<RegistryClient>,
    ) -> Result<u64, String> {
        if let Some(size) = self.mount_within(p, repo, digest).await.map_err(|e| e.to_string())? {
            return Ok(size);
        }
        let flight = self.flight(p, repo, digest, declared, client);
        let mut rx = flight.state.subscribe();
        let done = loop {
            let done = rx.borrow_and_update().done.clone();
            if let Some(done) = done {
                break done;
            }
            if rx.changed().await.is_err() {
                break Err("the download stopped".into());
            }
        };
        let size = done?;
        if flight.repo != repo {
            self.meta
                .mount_blob(repo, &flight.repo, digest)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(size)
    }

    /// The size of `digest` in `repo` once linked there from another
    /// repository of the same proxy namespace; `None` when none holds it.
    /// Never from outside the namespace: an upstream naming a digest
    /// proves nothing about having its bytes, and a private layer held
    /// elsewhere must not become readable here.
    async fn mount_within(
        &self,
        p: &ProxyNamespace,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<u64>, RegistryError> {
        if let Some(size) = self.meta.blob_in_repo(repo, digest).await? {
            return Ok(Some(size));
        }
        let prefix = format!("{}/", p.namespace);
        for from in self.meta.repositories_with_blob(digest, 64).await? {
            if from.starts_with(&prefix) {
                if let Some(size) = self.meta.mount_blob(repo, &from, digest).await? {
                    return Ok(Some(size));
                }
            }
        }
        Ok(None)
    }

    /// The running download of `digest` in `p`'s namespace, started here
    /// when there is none.
    fn flight(
        self: &Arc<Self>,
        p: &ProxyNamespace,
        repo: &str,
        digest: &Digest,
        declared: u64,
        client: &Arc<RegistryClient>,
    ) -> Arc<Flight> {
        let key = format!("{}\0{digest}", p.namespace);
        let mut flights = self.proxy.flights.lock().expect("not poisoned");
        if let Some(f) = flights.get(&key) {
            return f.clone();
        }
        let flight = Arc::new(Flight {
            repo: repo.to_string(),
            declared,
            state: watch::Sender::new(FlightState::default()),
        });
        flights.insert(key.clone(), flight.clone());
        drop(flights);
        let (reg, f, d, c) = (self.clone(), flight.clone(), digest.clone(), client.clone());
        tokio::spawn(async move {
            let result = reg.download(&f, &d, &c).await;
            if let Err(e) = &result {
                tracing::warn!(repository = %f.repo, digest = %d, error = %e, "proxy: a blob was not stored");
            }
            f.state.send_modify(|s| s.done = Some(result));
            reg.proxy.flights.lock().expect("not poisoned").remove(&key);
        });
        flight
    }

    /// One download into the store's verified upload; the size stored.
    async fn download(&self, f: &Flight, digest: &Digest, client: &RegistryClient) -> Result<u64, String> {
        // Stored by a flight that ended just before this one began.
        if let Some(size) = self
            .meta
            .blob_in_repo(&f.repo, digest)
            .await
            .map_err(|e| e.to_string())?
        {
            return Ok(size);
        }
        let id = self
            .store
            .start_upload(digest.algorithm())
            .await
            .map_err(|e| format!("blob {digest}: {e}"))?;
        f.state.send_modify(|s| s.upload = Some(id));
        let stored = async {
            let mut stream = Box::pin(client.blob_stream(digest).await.map_err(|e| e.to_string())?);
            let mut batch = BytesMut::new();
            let mut written = 0u64;
            loop {
                let next = stream.next().await;
                let end = match next {
                    Some(Ok(chunk)) => {
                        // An upstream that sends more than the manifest
                        // declares is cut off there, before it fills the disk.
                        if written + (batch.len() + chunk.len()) as u64 > f.declared {
                            return Err(format!(
                                "blob {digest}: the upstream sent more than the {} bytes the manifest declares; not stored",
                                f.declared
                            ));
                        }
                        batch.extend_from_slice(&chunk);
                        false
                    }
                    Some(Err(e)) => return Err(format!("blob {digest}: reading the upstream: {e}")),
                    None => true,
                };
                if batch.len() >= WRITE_BATCH || (end && !batch.is_empty()) {
                    let piece = batch.split().freeze();
                    let n = piece.len() as u64;
                    self.store
                        .append(id, None, futures_util::stream::iter([Ok::<Bytes, std::io::Error>(piece)]))
                        .await
                        .map_err(|e| format!("blob {digest}: {e}"))?;
                    written += n;
                    f.state.send_modify(|s| s.written = written);
                }
                if end {
                    break;
                }
            }
            if written != f.declared {
                return Err(format!(
                    "blob {digest}: the upstream sent {written} bytes; the manifest declares {}; not stored",
                    f.declared
                ));
            }
            let verified = self.store.verify_upload(id, digest).await.map_err(|e| match e {
                portcullis_store::StoreError::DigestMismatch { actual, .. } => format!(
                    "blob {digest}: the upstream served bytes that hash to {actual}: digest mismatch, not stored"
                ),
                e => format!("blob {digest}: {e}"),
            })?;
            let size = verified.size;
            self.meta
                .insert_blob(&f.repo, digest, size, || self.store.publish(verified))
                .await
                .map_err(|e| e.to_string())?;
            Ok(size)
        }
        .await;
        if stored.is_err() {
            let _ = self.store.cancel_upload(id).await;
        }
        stored
    }

    /// `GET`/`HEAD /v2/NS/REPO/blobs/DIGEST` in a proxy namespace: a blob
    /// held (or held by another repository of the namespace) is served as
    /// any other; one of a manifest handed out and not yet stored is
    /// streamed from its download.
    pub(crate) async fn proxy_blob_get(
        self: &Arc<Self>,
        p: Arc<ProxyNamespace>,
        name: &RepositoryName,
        digest: &Digest,
        headers: &HeaderMap,
        head: bool,
        zero_copy: Option<&crate::zero_copy::FileSlot>,
    ) -> Handled {
        let repo = name.as_str();
        if self.mount_within(&p, repo, digest).await?.is_some() {
            return crate::blobs::get(self, name, digest, headers, head, zero_copy).await;
        }
        let Some(declared) = self.proxy.pending_size(repo, digest) else {
            return Err(RegistryError::BlobUnknown(format!(
                "blob {digest} is not in repository {name}, nor in a manifest pulled through this cache"
            )));
        };
        if head {
            return Ok(crate::blobs::blob_response(
                StatusCode::OK,
                digest,
                declared,
                Body::empty(),
            ));
        }
        let client = self.proxy_client(&p, repo).await?;
        let flight = self.flight(&p, repo, digest, declared, &client);
        self.metrics.add_bytes_out(declared);
        let reader = Reader {
            reg: self.clone(),
            rx: flight.state.subscribe(),
            _flight: flight,
            digest: digest.clone(),
            file: None,
            pos: 0,
        };
        let body = futures_util::stream::try_unfold(reader, |mut r| async move {
            Ok::<_, std::io::Error>(r.next().await?.map(|b| (b, r)))
        });
        // A range is not honoured while the blob arrives (RFC 9110 allows
        // the whole instead).
        Ok(crate::blobs::blob_response(
            StatusCode::OK,
            digest,
            declared,
            Body::from_stream(body),
        ))
    }

    /// Evicts the least recently pulled images of `p`'s namespace while its
    /// cached images declare more than `max_bytes` (never the one just stored).
    async fn evict_over_limit(&self, p: &ProxyNamespace, just_repo: &str, just_digest: &str) {
        if p.max_bytes <= 0 {
            return;
        }
        let actor = Actor {
            name: "portcullis".into(),
            ..Actor::default()
        };
        for _ in 0..MAX_EVICTIONS {
            let used = match self.meta.proxy_usage(&p.namespace).await {
                Ok(u) => u,
                Err(e) => {
                    tracing::warn!(namespace = %p.namespace, error = %e, "proxy: reading the cache's size failed");
                    return;
                }
            };
            if used <= p.max_bytes {
                return;
            }
            let candidates = match self.meta.cached_images_by_pull(&p.namespace, 16).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(namespace = %p.namespace, error = %e, "proxy: listing cached images failed");
                    return;
                }
            };
            let mut evicted = false;
            for c in candidates
                .iter()
                .filter(|c| !(c.repo == just_repo && c.digest == just_digest))
            {
                let event = actor.event("proxy.evict").repository(&c.repo).digest(&c.digest).detail(format!(
                    "namespace {} holds {used} bytes, over its max_bytes {}; this image ({} bytes) was pulled least recently",
                    p.namespace, p.max_bytes, c.bytes
                ));
                self.manifests.invalidate(&c.repo);
                match self.meta.evict_cached_image(&c.repo, &c.digest, &event).await {
                    Ok(true) => {
                        self.manifests.invalidate(&c.repo);
                        tracing::info!(log = "proxy_evict", repository = %c.repo, digest = %c.digest, bytes = c.bytes, "proxy: evicted");
                        evicted = true;
                        break;
                    }
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::warn!(repository = %c.repo, error = %e, "proxy: an eviction failed");
                        continue;
                    }
                }
            }
            if !evicted {
                return;
            }
        }
    }
}

/// One client's read of a blob as its flight writes it: from the upload
/// file while it grows, or from the stored blob once it is in place.
struct Reader {
    reg: Arc<Registry>,
    rx: watch::Receiver<FlightState>,
    /// Keeps the flight's channel open while this reader lives.
    _flight: Arc<Flight>,
    digest: Digest,
    file: Option<tokio::fs::File>,
    pos: u64,
}

impl Reader {
    async fn next(&mut self) -> std::io::Result<Option<Bytes>> {
        use std::io::{Error, ErrorKind};
        loop {
            let st = self.rx.borrow_and_update().clone();
            if let Some(Err(e)) = &st.done {
                return Err(Error::other(e.clone()));
            }
            if self.file.is_none() {
                if let Some(Ok(_)) = st.done {
                    let (file, _) = self
                        .reg
                        .store
                        .open_blob(&self.digest)
                        .await?
                        .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("blob {} went", self.digest)))?;
                    self.file = Some(file);
                } else if let Some(id) = st.upload {
                    match self.reg.store.open_upload(id).await {
                        Ok(file) => self.file = Some(file),
                        // Published meanwhile: read from the blob once it is done.
                        Err(e) if e.kind() == ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            let end = match st.done {
                Some(Ok(size)) => Some(size),
                _ => None,
            };
            let available = end.unwrap_or(st.written);
            if let Some(file) = self.file.as_mut() {
                if self.pos < available {
                    let want = (available - self.pos).min(READ_CHUNK as u64) as usize;
                    let mut buf = vec![0; want];
                    let n = file.read(&mut buf).await?;
                    if n > 0 {
                        buf.truncate(n);
                        self.pos += n as u64;
                        return Ok(Some(Bytes::from(buf)));
                    }
                    if end.is_some() {
                        return Err(Error::new(
                            ErrorKind::UnexpectedEof,
                            "the stored blob is shorter than its size",
                        ));
                    }
                }
            }
            if end.is_some_and(|size| self.pos >= size) {
                return Ok(None);
            }
            match tokio::time::timeout(READER_PATIENCE, self.rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Error::other("the download stopped")),
                Err(_) => {
                    return Err(Error::new(
                        ErrorKind::TimedOut,
                        "the upstream sent nothing for too long",
                    ))
                }
            }
        }
    }
}

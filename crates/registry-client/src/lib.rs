//! A client for remote registries that speak the OCI distribution API:
//! Distribution's token flow (or Basic), manifests and blobs checked
//! against their digests, pushes of small blobs and manifests, and the
//! referrers API with its tag-schema fallback, and cosign's signatures on
//! what it reads and writes (`cosign.rs`), and in-toto attestations in
//! cosign's two forms (`attest.rs`). `portcullis scan docker://`,
//! `portcullis sign`, `portcullis verify` and the vulnerability database's
//! `db push`/`db pull` (and `serve`'s scheduled pull) share it, so
//! everything that talks to another registry authenticates and checks
//! bytes the same way.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::TryStreamExt;
use portcullis_oci::{media_type, Digest, MAX_MANIFEST_BYTES};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use thiserror::Error;
use tokio::sync::Mutex;

mod attest;
mod cosign;
mod reference;

pub use attest::{AttestationVerdict, VerifiedAttestation, MAX_ATTESTATION_BLOB};
pub use cosign::{SignatureForm, Signed, Verdict, MAX_SIGNATURE_BLOB};
pub use reference::ImageRef;

/// Boxed error of a caller's blob reader (a tar parser, say).
pub type ReaderError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("{0}")]
    Usage(String),
    /// A request that got no answer; `reason` is [`explain`]'s.
    #[error("{method} {url}: {reason}")]
    Http {
        method: Method,
        url: String,
        reason: String,
    },
    #[error("{method} {url}: the registry wants credentials: pass --creds USER:PASSWORD")]
    NeedCredentials { method: Method, url: String },
    #[error("{method} {url}: the registry refused the credentials")]
    Refused { method: Method, url: String },
    #[error("{method} {url}: {status}: {body}")]
    Status {
        method: Method,
        url: String,
        status: StatusCode,
        body: String,
    },
    #[error("{0}")]
    Protocol(String),
    #[error("{context}: {source}")]
    Read { context: String, source: ReaderError },
    /// Bytes that do not hash to the digest they were asked by: altered
    /// on the way or in the registry's storage.
    #[error("{what} arrived with digest {actual}")]
    DigestMismatch { what: String, actual: Digest },
    #[error("{0}")]
    Sign(#[from] portcullis_sign::SignError),
}

/// Why a request got no answer, in one line: the causes of `error`
/// without its URL (the caller names that once), and, when a TLS handshake
/// was answered by something that does not speak TLS (a plain-HTTP
/// registry answers the client's hello with an HTTP error page), the flag
/// that talks plain HTTP.
pub fn explain(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut causes: Vec<String> = Vec::new();
    let mut not_tls = false;
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(e) = next {
        not_tls |= not_tls_answer(e);
        let text = e.to_string();
        if !causes.last().is_some_and(|last| last.ends_with(&text)) {
            causes.push(text);
        }
        next = e.source();
    }
    let causes = causes.join(": ");
    if not_tls {
        format!("the registry does not answer in TLS ({causes}); if it serves plain HTTP, pass --tls-verify=false")
    } else {
        causes
    }
}

/// Whether `e` is rustls refusing what came back to its hello as not TLS.
/// An I/O error (tokio-rustls's nests two) shows its inner error's text but
/// hands out only that error's source, so the inner error is looked at too.
fn not_tls_answer(e: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(inner) = e.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
        return not_tls_answer(inner);
    }
    matches!(
        e.downcast_ref::<rustls::Error>(),
        Some(rustls::Error::InvalidMessage(_))
    )
}

impl ClientError {
    /// A request to `url` that got no answer.
    pub fn http(method: Method, url: String, error: reqwest::Error) -> ClientError {
        ClientError::Http {
            method,
            url,
            reason: explain(error),
        }
    }

    /// The HTTP status the registry answered, when that was the failure.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

type Result<T, E = ClientError> = std::result::Result<T, E>;

/// How to reach a registry.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// `USER:PASSWORD` or `USER:TOKEN`.
    pub creds: Option<String>,
    /// `false` talks plain HTTP, as skopeo's `--tls-verify=false` allows.
    pub tls_verify: bool,
    /// Over HTTPS: certificate authorities (PEM) trusted besides the
    /// system's, for a registry whose certificate a private CA issued.
    pub ca_pem: Option<String>,
    /// Over HTTPS: accept any certificate (a registry configured with
    /// `tls_verify: false` and an `https://` URL). Never the default.
    pub accept_invalid_certs: bool,
}

/// A manifest as the registry served it.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub media_type: Option<String>,
    pub digest: Digest,
}

/// A manifest as a `HEAD` describes it.
#[derive(Debug, Clone)]
pub struct ManifestHead {
    pub digest: Digest,
    pub media_type: Option<String>,
    pub size: u64,
}

/// Every manifest media type this client asks for.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// Whether a registry at `base` may send this client's credentials to the
/// token `realm` it names. A realm on another host is normal (Docker Hub's
/// is), but an https registry's realm must be https too, and a registry
/// that is not itself on a loopback, private or link-local address may not
/// name one that is (a hostile upstream aiming the client at the
/// machine's own network, a cloud metadata service).
fn realm_allowed(base: &str, realm: &str) -> std::result::Result<(), String> {
    let parsed = |u: &str| reqwest::Url::parse(u).map_err(|e| format!("the token realm {realm:?}: {e}"));
    let (base, url) = (parsed(base)?, parsed(realm)?);
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("the token realm {realm} is not http or https"));
    }
    if base.scheme() == "https" && url.scheme() != "https" {
        return Err(format!(
            "the token realm {realm} is plain http for an https registry: credentials are not sent in clear text"
        ));
    }
    if names_internal(&url) && !names_internal(&base) {
        return Err(format!(
            "the token realm {realm} is on an internal address, the registry is not: refused"
        ));
    }
    Ok(())
}

/// Whether `ip` is on the machine's own network: loopback, private,
/// link-local (a cloud metadata service), unspecified; in IPv6 also
/// unique-local, and an IPv4-mapped address is judged as its IPv4 one.
fn is_internal_ip(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(ip) => ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_unspecified(),
        std::net::IpAddr::V6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped() {
                return is_internal_ip(std::net::IpAddr::V4(v4));
            }
            let first = ip.segments()[0];
            ip.is_loopback() || ip.is_unspecified() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Whether a URL names an internal address by itself (an address, or
/// `localhost`); a host name's addresses are judged when it is resolved
/// ([`Vetting`]).
fn names_internal(u: &reqwest::Url) -> bool {
    let Some(host) = u.host_str() else { return true };
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
    {
        Ok(ip) => is_internal_ip(ip),
        Err(_) => host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost"),
    }
}

/// Whether host `name`, resolved to `addrs`, may be connected to for a
/// registry whose own host is `base_host` (its addresses `base_addrs`,
/// asked only when needed): the registry's own name always; any other
/// name (a token realm, a redirect's target) only if none of its
/// addresses is internal, unless the registry itself is internal.
fn vet_resolved(
    name: &str,
    addrs: &[std::net::SocketAddr],
    base_host: &str,
    base_addrs: impl FnOnce() -> Vec<std::net::SocketAddr>,
) -> std::result::Result<(), String> {
    if name.eq_ignore_ascii_case(base_host) {
        return Ok(());
    }
    let Some(bad) = addrs.iter().find(|a| is_internal_ip(a.ip())) else {
        return Ok(());
    };
    if base_addrs().iter().any(|a| is_internal_ip(a.ip())) {
        return Ok(());
    }
    Err(format!(
        "{name} resolves to {}, an internal address, and the registry {base_host} is not internal: refused",
        bad.ip()
    ))
}

/// The client's resolver: every host name it connects to (a token realm,
/// a redirect's target) is judged by [`vet_resolved`] in the same
/// resolution it connects with (no second look-up to rebind).
struct Vetting {
    base_host: String,
}

impl reqwest::dns::Resolve for Vetting {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let base_host = self.base_host.clone();
        Box::pin(async move {
            let name = name.as_str().to_string();
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let base_addrs = if name.eq_ignore_ascii_case(&base_host) || !addrs.iter().any(|a| is_internal_ip(a.ip())) {
                Vec::new()
            } else {
                tokio::net::lookup_host((base_host.as_str(), 0))
                    .await
                    .map(|a| a.collect())
                    .unwrap_or_default()
            };
            vet_resolved(&name, &addrs, &base_host, || base_addrs)
                .map_err(|e| Box::new(io::Error::other(e)) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether the client follows a redirect from `from` to `to` for a
/// registry at `base`: on the same origin, yes; to another origin (a
/// registry's blob storage, Docker Hub's CDN) only over https and not to
/// an internal address named outright (unless the registry is internal;
/// host names are judged when resolved), and never from https to http.
/// reqwest drops the credentials on a redirect to another host.
fn redirect_allowed(base: &reqwest::Url, from: &reqwest::Url, to: &reqwest::Url) -> bool {
    if to.origin() == from.origin() {
        return true;
    }
    to.scheme() == "https" && (!names_internal(to) || names_internal(base))
}

/// Pages of a `_catalog` or tag listing followed at most.
const MAX_LISTING_PAGES: usize = 1000;

pub struct RegistryClient {
    http: reqwest::Client,
    base: String,
    repository: String,
    creds: Option<(String, String)>,
    auth: Mutex<Option<String>>,
}

/// `Bearer realm="…",service="…",scope="repository:a:pull,push"`: values
/// are quoted and may hold commas, so split with the quotes in mind.
fn challenge_params(header: &str) -> (String, Vec<(String, String)>) {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        params.push((key.trim().to_ascii_lowercase(), value));
    }
    (scheme.to_ascii_lowercase(), params)
}

/// A request this client may send again after authenticating.
struct Request<'a> {
    method: Method,
    /// Under `/v2/<repository>/`, or an absolute URL (an upload's `Location`).
    path: &'a str,
    accept: Option<&'a str>,
    content_type: Option<&'a str>,
    body: Option<Body>,
}

/// What a request sends: bytes in memory, or a file read anew for each
/// attempt (a large blob, never held whole).
enum Body {
    Bytes(Bytes),
    File(PathBuf, u64),
}

impl<'a> Request<'a> {
    fn get(path: &'a str) -> Request<'a> {
        Request {
            method: Method::GET,
            path,
            accept: None,
            content_type: None,
            body: None,
        }
    }
}

impl RegistryClient {
    pub fn new(host: &str, repository: &str, access: &Access) -> Result<RegistryClient> {
        let creds = access
            .creds
            .as_deref()
            .map(|c| {
                c.split_once(':')
                    .map(|(u, p)| (u.to_string(), p.to_string()))
                    .ok_or_else(|| ClientError::Usage("--creds must be USER:PASSWORD".into()))
            })
            .transpose()?;
        let scheme = if access.tls_verify { "https" } else { "http" };
        let mut builder = reqwest::Client::builder().user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = access.ca_pem.as_deref().filter(|p| !p.trim().is_empty()) {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| ClientError::Usage(format!("the CA certificates (PEM): {e}")))?;
            if certs.is_empty() {
                return Err(ClientError::Usage(
                    "the CA certificates (PEM) hold no certificate".into(),
                ));
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        if access.accept_invalid_certs {
            builder = builder.danger_accept_invalid_certs(true);
        }
        // A registry that stops answering must not hold a caller (a
        // replication run, a CI verification) forever. The read timeout is
        // per read, so a large blob still flows.
        builder = builder
            .connect_timeout(std::time::Duration::from_secs(15))
            .read_timeout(std::time::Duration::from_secs(120));
        // Where the registry may send this client: redirects and token
        // realms are judged (an upstream aiming a replication run at the
        // machine's own network or a metadata service is refused).
        let base = reqwest::Url::parse(&format!("{scheme}://{host}"))
            .map_err(|e| ClientError::Usage(format!("registry {host}: {e}")))?;
        let base_host = base.host_str().unwrap_or_default().trim_matches(['[', ']']).to_string();
        let redirect_base = base.clone();
        builder = builder
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                let from = attempt.previous().last().cloned();
                let allowed = attempt.previous().len() < 10
                    && from.is_some_and(|from| redirect_allowed(&redirect_base, &from, attempt.url()));
                if allowed {
                    attempt.follow()
                } else {
                    let why = format!("a redirect to {} is not followed", attempt.url());
                    attempt.error(why)
                }
            }))
            .dns_resolver(std::sync::Arc::new(Vetting { base_host }));
        let http = builder
            .build()
            .map_err(|e| ClientError::Usage(format!("HTTP client: {e}")))?;
        Ok(RegistryClient {
            http,
            base: format!("{scheme}://{host}"),
            repository: repository.to_string(),
            creds,
            auth: Mutex::new(None),
        })
    }

    /// A client for `image`'s repository.
    pub fn for_image(image: &ImageRef, access: &Access) -> Result<RegistryClient> {
        RegistryClient::new(&image.host, &image.repository, access)
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else if path.starts_with('/') {
            format!("{}{path}", self.base)
        } else {
            format!("{}/v2/{}/{path}", self.base, self.repository)
        }
    }

    /// Sends `req`, authenticating once when the registry challenges.
    /// Any status other than success is an error.
    async fn send(&self, req: Request<'_>) -> Result<reqwest::Response> {
        let resp = self.send_any(&req).await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(self.status_error(req.method.clone(), req.path, resp).await)
    }

    /// The error for an unwanted status, with the start of the answer's body.
    async fn status_error(&self, method: Method, path: &str, resp: reqwest::Response) -> ClientError {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        ClientError::Status {
            method,
            url: self.url(path),
            status,
            body: body.chars().take(300).collect(),
        }
    }

    /// Like `send`, but hands back any status except 401.
    async fn send_any(&self, req: &Request<'_>) -> Result<reqwest::Response> {
        let url = self.url(req.path);
        for attempt in 0..2 {
            let mut r = self.http.request(req.method.clone(), &url);
            if let Some(a) = req.accept {
                r = r.header(ACCEPT, a);
            }
            if let Some(c) = req.content_type {
                r = r.header(CONTENT_TYPE, c);
            }
            match &req.body {
                Some(Body::Bytes(b)) => r = r.body(b.clone()),
                Some(Body::File(path, len)) => {
                    let file = tokio::fs::File::open(path)
                        .await
                        .map_err(|e| ClientError::Usage(format!("{}: {e}", path.display())))?;
                    let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 << 10);
                    r = r.header(CONTENT_LENGTH, *len).body(reqwest::Body::wrap_stream(stream));
                }
                None => {}
            }
            if let Some(auth) = self.auth.lock().await.clone() {
                r = r.header(AUTHORIZATION, auth);
            }
            let resp = r
                .send()
                .await
                .map_err(|e| ClientError::http(req.method.clone(), url.clone(), e))?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            if attempt == 0 {
                let challenge = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let writes = !matches!(req.method, Method::GET | Method::HEAD);
                let auth = self.authorize(&challenge, writes).await?;
                *self.auth.lock().await = Some(auth);
            }
        }
        let (method, url) = (req.method.clone(), url);
        Err(match self.creds {
            None => ClientError::NeedCredentials { method, url },
            Some(_) => ClientError::Refused { method, url },
        })
    }

    /// The Authorization header value a challenge asks for.
    async fn authorize(&self, challenge: &str, writes: bool) -> Result<String> {
        use base64::Engine;
        let (scheme, params) = challenge_params(challenge);
        let basic = self.creds.as_ref().map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        let need = || ClientError::Usage("the registry wants credentials: pass --creds USER:PASSWORD".into());
        match scheme.as_str() {
            "basic" => basic.ok_or_else(need),
            "bearer" => {
                let get = |k: &str| params.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
                let realm =
                    get("realm").ok_or_else(|| ClientError::Protocol("bearer challenge without a realm".into()))?;
                // The registry names where credentials go: never in clear
                // text from an https registry, never into a private network
                // from a public one.
                realm_allowed(&self.base, realm).map_err(ClientError::Protocol)?;
                // The challenge's own scopes when it names them (a mount's
                // names two), else what this request needs.
                let actions = if writes { "pull,push" } else { "pull" };
                let ours = format!("repository:{}:{actions}", self.repository);
                // A client of no repository (`ping`, `catalog`) asks for none.
                let scopes: Vec<&str> = match get("scope") {
                    Some(s) => s.split(' ').filter(|s| !s.is_empty()).collect(),
                    None if self.repository.is_empty() => Vec::new(),
                    None => vec![ours.as_str()],
                };
                let mut query: Vec<(&str, &str)> = scopes.iter().map(|s| ("scope", *s)).collect();
                if let Some(service) = get("service") {
                    query.push(("service", service));
                }
                let mut req = self.http.get(realm).query(&query);
                if let Some(b) = basic {
                    req = req.header(AUTHORIZATION, b);
                }
                let token_error =
                    |e: reqwest::Error| ClientError::Protocol(format!("token request to {realm}: {}", explain(e)));
                let resp = req.send().await.map_err(token_error)?;
                let status = resp.status();
                if status == StatusCode::UNAUTHORIZED && self.creds.is_some() {
                    return Err(ClientError::Protocol(format!(
                        "the token endpoint {realm} refused the credentials"
                    )));
                }
                if !status.is_success() {
                    return Err(ClientError::Protocol(format!(
                        "the token endpoint {realm} refused: {status}"
                    )));
                }
                let body: serde_json::Value = resp.json().await.map_err(token_error)?;
                let token = body["token"]
                    .as_str()
                    .or(body["access_token"].as_str())
                    .ok_or_else(|| ClientError::Protocol("token response without a token".into()))?;
                Ok(format!("Bearer {token}"))
            }
            _ => Err(ClientError::Protocol(format!(
                "the registry answered 401 without a usable challenge ({challenge:?})"
            ))),
        }
    }

    /// Reads a body up to `max` bytes.
    async fn body(mut resp: reqwest::Response, max: usize, what: &str) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| ClientError::Protocol(format!("{what}: {}", explain(e))))?
        {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > max {
                return Err(ClientError::Protocol(format!("{what} is over {max} bytes")));
            }
        }
        Ok(bytes)
    }

    /// The manifest `reference` (a tag or a digest) names; a digest is checked.
    pub async fn manifest(&self, reference: &str) -> Result<FetchedManifest> {
        let path = format!("manifests/{reference}");
        let resp = self
            .send(Request {
                accept: Some(MANIFEST_ACCEPT),
                ..Request::get(&path)
            })
            .await?;
        let media_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        let bytes = Self::body(resp, MAX_MANIFEST_BYTES, &format!("the manifest {reference}")).await?;
        let digest = match reference.parse::<Digest>() {
            Ok(wanted) => {
                let actual = Digest::of(wanted.algorithm(), &bytes);
                if actual != wanted {
                    return Err(ClientError::DigestMismatch {
                        what: format!("manifest {reference}"),
                        actual,
                    });
                }
                wanted
            }
            Err(_) => Digest::sha256_of(&bytes),
        };
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// What a `HEAD` says of the manifest `reference` names: its digest
    /// (checked against a digest reference), media type and size. A signer
    /// needs no more, and a registry's pull rules may refuse it the body.
    pub async fn manifest_head(&self, reference: &str) -> Result<ManifestHead> {
        let path = format!("manifests/{reference}");
        let resp = self
            .send(Request {
                method: Method::HEAD,
                accept: Some(MANIFEST_ACCEPT),
                ..Request::get(&path)
            })
            .await?;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let digest: Digest = header("docker-content-digest")
            .ok_or_else(|| ClientError::Protocol(format!("the registry named no digest for {reference}")))?
            .parse()
            .map_err(|e| ClientError::Protocol(format!("the digest of {reference}: {e}")))?;
        if let Ok(wanted) = reference.parse::<Digest>() {
            if wanted != digest {
                return Err(ClientError::Protocol(format!("manifest {reference} is named {digest}")));
            }
        }
        Ok(ManifestHead {
            media_type: header("content-type").map(|v| v.split(';').next().unwrap_or(&v).trim().to_string()),
            size: header("content-length")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| ClientError::Protocol(format!("the registry named no size for {reference}")))?,
            digest,
        })
    }

    /// Like `manifest`, with `None` for a manifest the registry does not have.
    pub async fn manifest_if_exists(&self, reference: &str) -> Result<Option<FetchedManifest>> {
        match self.manifest(reference).await {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A small blob's bytes (at most `max`), checked against its digest.
    pub async fn blob(&self, digest: &Digest, max: usize) -> Result<Vec<u8>> {
        let path = format!("blobs/{digest}");
        let resp = self.send(Request::get(&path)).await?;
        let bytes = Self::body(resp, max, &format!("blob {digest}")).await?;
        let actual = Digest::of(digest.algorithm(), &bytes);
        if actual != *digest {
            return Err(ClientError::DigestMismatch {
                what: format!("blob {digest}"),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Streams a blob through `parse` on a blocking thread, checking it
    /// against its digest (all of it, even what `parse` left unread).
    pub async fn read_blob<T, E>(
        &self,
        digest: &str,
        parse: impl FnOnce(&mut dyn Read) -> Result<T, E> + Send + 'static,
    ) -> Result<T>
    where
        T: Send + 'static,
        E: Into<ReaderError>,
    {
        let wanted: Digest = digest
            .parse()
            .map_err(|e| ClientError::Protocol(format!("blob {digest}: {e}")))?;
        let path = format!("blobs/{digest}");
        let resp = self.send(Request::get(&path)).await?;
        let stream = resp.bytes_stream().map_err(io::Error::other);
        let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
        let context = format!("blob {digest}");
        tokio::task::spawn_blocking(move || {
            let mut hashing = Hashing {
                inner: reader,
                hasher: wanted.algorithm().hasher(),
            };
            let read = |source: ReaderError| ClientError::Read {
                context: context.clone(),
                source,
            };
            let parsed = parse(&mut hashing).map_err(|e| read(e.into()))?;
            io::copy(&mut hashing, &mut io::sink()).map_err(|e| read(e.into()))?;
            let actual = hashing.hasher.finish();
            if actual != wanted {
                return Err(ClientError::DigestMismatch { what: context, actual });
            }
            Ok(parsed)
        })
        .await
        .map_err(|e| ClientError::Protocol(format!("reading blob {digest}: {e}")))?
    }

    /// `GET /v2/`, authenticating as the registry asks: `Ok` when the
    /// registry answered and took the credentials (a test of a connection).
    pub async fn ping(&self) -> Result<()> {
        self.send(Request::get("/v2/")).await?;
        Ok(())
    }

    /// Every tag of the repository (`tags/list`, following `Link` pages),
    /// at most `max`.
    pub async fn tags(&self, max: usize) -> Result<Vec<String>> {
        self.listing("tags/list", "tags", max).await
    }

    /// The repository names the registry lists (`/v2/_catalog`, paged), at
    /// most `max`.
    pub async fn catalog(&self, max: usize) -> Result<Vec<String>> {
        self.listing("/v2/_catalog", "repositories", max).await
    }

    /// A paged listing: `first`'s JSON `key` array, then each `Link: <…>;
    /// rel="next"` page, up to `max` names.
    async fn listing(&self, first: &str, key: &str, max: usize) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut path = first.to_string();
        // Pages a listing follows at most: an upstream whose every page
        // links to a new, empty one must not keep a caller forever.
        for _ in 0..MAX_LISTING_PAGES {
            let resp = self.send(Request::get(&path)).await?;
            let next = resp.headers().get("link").and_then(|v| v.to_str().ok()).and_then(|l| {
                l.split_once('<')
                    .and_then(|(_, r)| r.split_once('>'))
                    .map(|(u, _)| u.to_string())
            });
            let body = Self::body(resp, 16 << 20, key).await?;
            let page: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| ClientError::Protocol(format!("the {key} listing: {e}")))?;
            // No name is longer than a repository name or a tag may be.
            for n in page[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str())
                .filter(|n| n.len() <= 255)
            {
                if names.len() == max {
                    return Ok(names);
                }
                names.push(n.to_string());
            }
            match next.map(|n| self.same_origin_path(&n)) {
                Some(Some(n)) if n != path => path = n,
                // A next page on another origin would carry this
                // registry's credentials there: not followed.
                Some(None) => {
                    return Err(ClientError::Protocol(format!(
                        "the {key} listing links to another origin than {}",
                        self.base
                    )))
                }
                _ => return Ok(names),
            }
        }
        Ok(names)
    }

    /// A `Link` target as a path on this registry: a path, or an absolute
    /// URL of this registry's own origin; `None` for anything else.
    fn same_origin_path(&self, link: &str) -> Option<String> {
        if link.starts_with('/') {
            return Some(link.to_string());
        }
        let rest = link.strip_prefix(self.base.as_str())?;
        rest.starts_with('/').then(|| rest.to_string())
    }

    /// A blob's bytes as they arrive, unchecked: the caller must verify
    /// the digest of what it stores (the registry's upload path does).
    pub async fn blob_stream(
        &self,
        digest: &Digest,
    ) -> Result<impl futures_util::Stream<Item = io::Result<Bytes>> + Send + 'static> {
        let path = format!("blobs/{digest}");
        let resp = self.send(Request::get(&path)).await?;
        Ok(resp.bytes_stream().map_err(io::Error::other))
    }

    /// Uploads `bytes` as a blob (unless the repository has it) in one
    /// monolithic PUT; returns its digest.
    pub async fn push_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::sha256_of(bytes);
        self.upload(&digest, Body::Bytes(Bytes::copy_from_slice(bytes))).await?;
        Ok(digest)
    }

    /// Uploads `body`, whose digest is `digest`, unless the repository has it.
    async fn upload(&self, digest: &Digest, body: Body) -> Result<()> {
        let head = format!("blobs/{digest}");
        let exists = self
            .send_any(&Request {
                method: Method::HEAD,
                ..Request::get(&head)
            })
            .await?;
        if exists.status().is_success() {
            return Ok(());
        }
        let start = self
            .send(Request {
                method: Method::POST,
                ..Request::get("blobs/uploads/")
            })
            .await?;
        let location = start
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ClientError::Protocol("upload started without a Location".into()))?;
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{separator}digest={digest}");
        self.send(Request {
            method: Method::PUT,
            content_type: Some("application/octet-stream"),
            body: Some(body),
            ..Request::get(&put)
        })
        .await?;
        Ok(())
    }

    /// Whether the repository has blob `digest` (a `HEAD`).
    pub async fn blob_exists(&self, digest: &Digest) -> Result<bool> {
        let head = format!("blobs/{digest}");
        let resp = self
            .send_any(&Request {
                method: Method::HEAD,
                ..Request::get(&head)
            })
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.status_error(Method::HEAD, &head, resp).await),
        }
    }

    /// Sends the file at `path`, whose digest (`digest`) and size the
    /// caller knows (a blob a registry stored verified), as a blob: mounted
    /// from `mount_from` (a repository of the same registry that has it)
    /// when the registry allows, else streamed from disk in one PUT.
    /// `true` when it was mounted (nothing uploaded).
    pub async fn send_blob_file(
        &self,
        digest: &Digest,
        path: &Path,
        size: u64,
        mount_from: Option<&str>,
    ) -> Result<bool> {
        let start = match mount_from {
            Some(from) => format!("blobs/uploads/?mount={digest}&from={from}"),
            None => "blobs/uploads/".to_string(),
        };
        let started = self
            .send(Request {
                method: Method::POST,
                ..Request::get(&start)
            })
            .await?;
        // 201: mounted. 202: an upload session instead (no mount here).
        if mount_from.is_some() && started.status() == StatusCode::CREATED {
            return Ok(true);
        }
        let location = started
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ClientError::Protocol("upload started without a Location".into()))?;
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{separator}digest={digest}");
        self.send(Request {
            method: Method::PUT,
            content_type: Some("application/octet-stream"),
            body: Some(Body::File(path.to_path_buf(), size)),
            ..Request::get(&put)
        })
        .await?;
        Ok(false)
    }

    /// Uploads a file as a blob (unless the repository has it), streamed
    /// from disk in one PUT; returns its digest and size.
    pub async fn push_blob_file(&self, path: &Path) -> Result<(Digest, u64)> {
        let usage = |e: io::Error| ClientError::Usage(format!("{}: {e}", path.display()));
        let owned = path.to_path_buf();
        let (digest, size) = tokio::task::spawn_blocking(move || -> io::Result<(Digest, u64)> {
            let mut hashing = Hashing {
                inner: std::fs::File::open(&owned)?,
                hasher: portcullis_oci::Algorithm::Sha256.hasher(),
            };
            let size = io::copy(&mut hashing, &mut io::sink())?;
            Ok((hashing.hasher.finish(), size))
        })
        .await
        .map_err(|e| ClientError::Usage(e.to_string()))?
        .map_err(usage)?;
        self.upload(&digest, Body::File(path.to_path_buf(), size)).await?;
        Ok((digest, size))
    }

    /// Stores a manifest under `reference` (a tag, or its own digest).
    pub async fn put_manifest(&self, reference: &str, media_type: &str, bytes: &[u8]) -> Result<Digest> {
        self.put_manifest_answer(reference, media_type, bytes).await?;
        Ok(Digest::sha256_of(bytes))
    }

    async fn put_manifest_answer(&self, reference: &str, media_type: &str, bytes: &[u8]) -> Result<reqwest::Response> {
        let path = format!("manifests/{reference}");
        self.send(Request {
            method: Method::PUT,
            content_type: Some(media_type),
            body: Some(Body::Bytes(Bytes::copy_from_slice(bytes))),
            ..Request::get(&path)
        })
        .await
    }

    /// Stores `manifest` (an OCI image manifest whose `subject` is
    /// `subject`) under its digest and makes it findable as a referrer: a
    /// registry with the referrers API says so with `OCI-Subject`; on one
    /// without it the referrers tag schema's index (`sha256-<hex>`) gets a
    /// descriptor for it, as the distribution spec asks of clients.
    pub async fn put_referrer(&self, manifest: &[u8], subject: &Digest, artifact_type: &str) -> Result<Digest> {
        let digest = Digest::sha256_of(manifest);
        let resp = self
            .put_manifest_answer(digest.as_str(), media_type::OCI_MANIFEST, manifest)
            .await?;
        if resp.headers().contains_key("oci-subject") {
            return Ok(digest);
        }
        let tag = referrers_tag(subject);
        let mut index = match self.manifest_if_exists(&tag).await? {
            Some(m) => serde_json::from_slice(&m.bytes)
                .map_err(|e| ClientError::Protocol(format!("the referrers index {tag}: {e}")))?,
            None => serde_json::json!({"schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": []}),
        };
        let entries = index["manifests"]
            .as_array_mut()
            .ok_or_else(|| ClientError::Protocol(format!("the referrers index {tag} has no manifests")))?;
        if !entries.iter().any(|e| e["digest"] == digest.as_str()) {
            let mut descriptor = serde_json::json!({
                "mediaType": media_type::OCI_MANIFEST,
                "digest": digest.as_str(),
                "size": manifest.len(),
                "artifactType": artifact_type,
            });
            // The manifest's annotations, as the referrers API lists them.
            let annotations = serde_json::from_slice::<serde_json::Value>(manifest)
                .ok()
                .and_then(|m| m.get("annotations").filter(|a| a.is_object()).cloned());
            if let Some(a) = annotations {
                descriptor["annotations"] = a;
            }
            entries.push(descriptor);
            let bytes = serde_json::to_vec(&index).expect("json");
            self.put_manifest(&tag, media_type::OCI_INDEX, &bytes).await?;
        }
        Ok(digest)
    }

    /// The descriptors of manifests whose subject is `digest`, of
    /// `artifact_type` if given: the referrers API, or the referrers tag
    /// schema (`sha256-<hex>`) on a registry without it.
    pub async fn referrers(&self, digest: &Digest, artifact_type: Option<&str>) -> Result<Vec<serde_json::Value>> {
        let mut path = format!("referrers/{digest}");
        if let Some(t) = artifact_type {
            // `+` in a query means a space: media types need it escaped.
            path.push_str(&format!("?artifactType={}", t.replace('+', "%2B")));
        }
        let resp = self
            .send_any(&Request {
                accept: Some(media_type::OCI_INDEX),
                ..Request::get(&path)
            })
            .await?;
        let index = if resp.status() == StatusCode::NOT_FOUND {
            match self.manifest_if_exists(&referrers_tag(digest)).await? {
                Some(m) => m.bytes,
                None => return Ok(Vec::new()),
            }
        } else if resp.status().is_success() {
            Self::body(resp, MAX_MANIFEST_BYTES, &format!("the referrers of {digest}")).await?
        } else {
            return Err(self.status_error(Method::GET, &path, resp).await);
        };
        let index: serde_json::Value = serde_json::from_slice(&index)
            .map_err(|e| ClientError::Protocol(format!("the referrers of {digest}: {e}")))?;
        Ok(index["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| artifact_type.is_none_or(|t| d["artifactType"] == t))
            .cloned()
            .collect())
    }
}

/// The tag the referrers tag schema lists `subject`'s referrers under.
fn referrers_tag(subject: &Digest) -> String {
    format!("{}-{}", subject.algorithm().as_str(), subject.hex())
}

struct Hashing<R> {
    inner: R,
    hasher: portcullis_oci::DigestHasher,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::{challenge_params, realm_allowed, redirect_allowed, vet_resolved};

    /// Host names are judged by their addresses, without a network: a
    /// name that resolves to an internal address is refused for a
    /// registry that is not internal, whatever the name.
    #[test]
    fn names_resolving_inside_are_refused_for_outside_registries() {
        let addr = |s: &str| vec![format!("{s}:0").parse::<std::net::SocketAddr>().unwrap()];
        let public = addr("93.184.216.34");
        let private = addr("10.0.0.7");
        // (name, its addresses, registry host, registry addresses, allowed)
        let table = [
            ("auth.docker.io", &public, "registry-1.docker.io", &public, true),
            (
                "metadata.example",
                &addr("169.254.169.254"),
                "registry.example",
                &public,
                false,
            ),
            ("token.example", &addr("127.0.0.1"), "registry.example", &public, false),
            (
                "token.example",
                &addr("[::ffff:127.0.0.1]"),
                "registry.example",
                &public,
                false,
            ),
            ("token.example", &addr("[fd00::1]"), "registry.example", &public, false),
            ("token.example", &private, "registry.example", &public, false),
            // The registry's own name, and any name for an internal registry.
            ("registry.corp", &private, "registry.corp", &private, true),
            ("auth.corp", &private, "registry.corp", &private, true),
        ];
        for (name, addrs, base, base_addrs, allowed) in table {
            let got = vet_resolved(name, addrs, base, || base_addrs.clone());
            assert_eq!(got.is_ok(), allowed, "{name} for {base}: {got:?}");
        }
    }

    #[test]
    fn redirects_stay_on_the_origin_or_go_out_over_https() {
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        let hub = u("https://registry-1.docker.io");
        let blob = u("https://registry-1.docker.io/v2/library/alpine/blobs/sha256:ab");
        let local = u("http://127.0.0.1:5000");
        // (registry, from, to, followed)
        let table = [
            (&hub, &blob, u("https://registry-1.docker.io/v2/other"), true),
            (&hub, &blob, u("https://production.cloudflare.docker.com/x"), true),
            (&hub, &blob, u("http://production.cloudflare.docker.com/x"), false),
            (&hub, &blob, u("https://169.254.169.254/latest/meta-data"), false),
            (&hub, &blob, u("https://127.0.0.1/x"), false),
            (&hub, &blob, u("https://localhost/x"), false),
            (
                &local,
                &u("http://127.0.0.1:5000/v2/a/blobs/x"),
                u("http://127.0.0.1:5000/b"),
                true,
            ),
            (
                &local,
                &u("http://127.0.0.1:5000/v2/a/blobs/x"),
                u("http://127.0.0.1:6000/b"),
                false,
            ),
            (
                &local,
                &u("http://127.0.0.1:5000/v2/a/blobs/x"),
                u("https://10.0.0.5/b"),
                true,
            ),
        ];
        for (base, from, to, followed) in table {
            assert_eq!(redirect_allowed(base, from, &to), followed, "{from} -> {to}");
        }
    }

    #[test]
    fn credentials_go_only_to_realms_the_registry_may_name() {
        // (registry, realm, allowed)
        let table = [
            ("https://registry-1.docker.io", "https://auth.docker.io/token", true),
            ("https://ghcr.io", "https://ghcr.io/token", true),
            ("http://127.0.0.1:5000", "http://127.0.0.1:5000/auth/token", true),
            ("http://10.0.0.5:5000", "http://10.0.0.5:5001/token", true),
            ("https://registry.example", "http://registry.example/token", false),
            (
                "https://registry.example",
                "https://169.254.169.254/latest/meta-data",
                false,
            ),
            ("https://registry.example", "https://127.0.0.1/token", false),
            ("https://registry.example", "https://localhost/token", false),
            ("https://registry.example", "https://[fd00::1]/token", false),
            ("https://registry.example", "file:///etc/passwd", false),
            ("https://registry.example", "not a url", false),
        ];
        for (base, realm, allowed) in table {
            assert_eq!(realm_allowed(base, realm).is_ok(), allowed, "{base} -> {realm}");
        }
    }

    #[test]
    fn challenges_with_quoted_commas() {
        let (scheme, params) = challenge_params(
            r#"Bearer realm="https://r.example/auth/token",service="portcullis",scope="repository:acme/app:pull,push""#,
        );
        assert_eq!(scheme, "bearer");
        let got: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("realm", "https://r.example/auth/token"),
                ("service", "portcullis"),
                ("scope", "repository:acme/app:pull,push")
            ]
        );
        let (scheme, params) = challenge_params(r#"Basic realm="Registry""#);
        assert_eq!((scheme.as_str(), params[0].1.as_str()), ("basic", "Registry"));
    }
}

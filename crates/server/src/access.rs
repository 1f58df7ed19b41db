//! Who is calling, and what they may do. Every registry route and every
//! management route asks [`Registry::authorize`]; nothing else decides.
//!
//! Callers present nothing (anonymous), a registry JWT from the token
//! endpoint, or an API token as a bearer credential. A JWT carries its
//! grants (`access`), decided at issue time by this same module; everything
//! else is decided live from the grants in the database.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use axum::http::{HeaderMap, HeaderValue};
use portcullis_auth::{Actions, ApiToken, LoginThrottle, RegistryClaims, Role, TokenKeys, TokenScope};
use portcullis_meta::{Account, AuditEvent};

use crate::{header_str, Registry, RegistryError};

/// What anonymous callers may do everywhere (public repositories are
/// always pullable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Anonymous {
    #[default]
    None,
    Pull,
    Push,
}

impl Anonymous {
    fn actions(self) -> Actions {
        match self {
            Anonymous::None => Actions::NONE,
            Anonymous::Pull => Actions::PULL,
            Anonymous::Push => Actions::PULL.union(Actions::PUSH),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AccessSettings {
    pub anonymous: Anonymous,
    /// The `service` of issued tokens (their audience).
    pub service: String,
    /// The token endpoint's public URL; by default derived from the request.
    pub realm: Option<String>,
    pub token_ttl: Duration,
    /// Record pulls in the audit trail.
    pub audit_pulls: bool,
    /// Pull records that may wait for the audit writer before pulls wait.
    pub pull_audit_queue: usize,
    /// Where the token signing keys live.
    pub key_dir: PathBuf,
    /// Proxies whose `X-Forwarded-For` names the real client (for
    /// throttling and the audit trail); nobody else's is believed.
    pub trusted_proxies: TrustedProxies,
    /// Whether the admission webhook admits images of other registries.
    pub admission_foreign_images: bool,
    /// Other names and addresses (`host[:port]`) of this registry, for
    /// admission: images there are judged, never taken as foreign.
    pub registry_aliases: Vec<String>,
    /// The address `serve` listens on: a reference whose host resolves to
    /// it is this registry.
    pub listen: Option<std::net::SocketAddr>,
}

impl AccessSettings {
    pub fn new(key_dir: PathBuf) -> AccessSettings {
        AccessSettings {
            anonymous: Anonymous::None,
            service: "portcullis".into(),
            realm: None,
            token_ttl: Duration::from_secs(300),
            audit_pulls: true,
            pull_audit_queue: 65_536,
            key_dir,
            trusted_proxies: TrustedProxies::default(),
            admission_foreign_images: false,
            registry_aliases: Vec::new(),
            listen: None,
        }
    }
}

/// Networks (`10.0.0.0/8`, `::1`, `192.0.2.7`) of reverse proxies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(std::net::IpAddr, u8)>);

impl std::str::FromStr for TrustedProxies {
    type Err = String;
    /// A comma-separated list of addresses or CIDR networks; empty: none.
    fn from_str(s: &str) -> Result<TrustedProxies, String> {
        let mut out = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (addr, bits) = item.split_once('/').unwrap_or((item, ""));
            let addr: std::net::IpAddr = addr
                .parse()
                .map_err(|_| format!("{item:?} is not an IP address or network"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let bits = if bits.is_empty() {
                max
            } else {
                bits.parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| format!("{item:?}: the prefix length must be 0 to {max}"))?
            };
            out.push((addr, bits));
        }
        Ok(TrustedProxies(out))
    }
}

impl TrustedProxies {
    /// Whether `ip` is in one of the networks.
    pub(crate) fn contains_ip(&self, ip: std::net::IpAddr) -> bool {
        self.contains(ip)
    }

    fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        // An IPv4 peer may arrive as ::ffff:a.b.c.d on a dual-stack socket.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|(net, bits)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*bits)).unwrap_or(0);
                u32::from(*n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(*bits)).unwrap_or(0);
                u128::from(*n) & mask == u128::from(a) & mask
            }
            _ => false,
        })
    }

    /// The client's address: the peer's, unless the peer is a trusted
    /// proxy; then the last `X-Forwarded-For` hop that is not one (what
    /// the first untrusted machine said, which it cannot forge beyond).
    pub fn client(&self, peer: Option<std::net::IpAddr>, headers: &HeaderMap) -> Option<String> {
        let peer = peer?;
        if !self.contains(peer) {
            return Some(peer.to_string());
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in forwarded.iter().rev() {
            match hop.parse::<std::net::IpAddr>() {
                Ok(ip) if self.contains(ip) => continue,
                Ok(ip) => return Some(ip.to_string()),
                Err(_) => break,
            }
        }
        Some(peer.to_string())
    }
}

/// Verified registry tokens remembered at most (a flood of distinct
/// tokens costs a clear, not memory).
const MAX_VERIFIED_TOKENS: usize = 50_000;

/// Runtime state of access control.
pub(crate) struct Access {
    pub settings: AccessSettings,
    keys: RwLock<(Arc<TokenKeys>, Option<SystemTime>)>,
    /// When the key directory was last looked at (ms after `started`): at
    /// most once a second, not on every request that verifies a token.
    keys_checked: AtomicU64,
    started: Instant,
    /// Registry tokens already verified, by their text: the same bytes
    /// verify the same way until they expire, so a client pulling with one
    /// token pays for the signature check once. Cleared when keys change.
    verified_tokens: RwLock<HashMap<Box<str>, RegistryClaims>>,
    /// Whether a repository is public, for anonymous callers: read at most
    /// once per TTL, forgotten when its settings change here.
    public_repos: crate::cache::TtlMap<bool>,
    pub throttle: Mutex<LoginThrottle>,
    /// (account, address) pairs whose Basic login on the management API
    /// was recorded lately: the next ones within `LOGIN_RECORD_EVERY` ride
    /// on their actions' records (`via: password`), so `curl -u` in a loop
    /// leaves one `login` record, not one per request.
    pub(crate) recent_logins: crate::cache::TtlMap<()>,
    /// Password hashes computed at once: each argon2id check takes 19 MiB
    /// and most of a core, so a flood waits here instead of exhausting both.
    pub hashing: tokio::sync::Semaphore,
}

/// How often a Basic login on the management API from one address is
/// recorded in its own right (see `Access::recent_logins`).
pub(crate) const LOGIN_RECORD_EVERY: Duration = Duration::from_secs(15 * 60);

impl Access {
    pub fn new(settings: AccessSettings, public_ttl: Duration) -> std::io::Result<Access> {
        let mtime = crate::keys::dir_mtime(&settings.key_dir);
        let keys = load_keys(&settings)?;
        Ok(Access {
            keys: RwLock::new((Arc::new(keys), mtime)),
            keys_checked: AtomicU64::new(0),
            started: Instant::now(),
            verified_tokens: RwLock::new(HashMap::new()),
            public_repos: crate::cache::TtlMap::new(public_ttl),
            settings,
            throttle: Mutex::new(LoginThrottle::new(5, Duration::from_secs(60))),
            recent_logins: crate::cache::TtlMap::new(LOGIN_RECORD_EVERY),
            hashing: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8),
            ),
        })
    }

    /// The signing keys, re-read when `portcullis key rotate` changed them.
    pub fn keys(&self) -> Arc<TokenKeys> {
        let now_ms = self.started.elapsed().as_millis() as u64;
        let checked = self.keys_checked.load(Ordering::Relaxed);
        if now_ms < checked + 1000
            || self
                .keys_checked
                .compare_exchange(checked, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return self.keys.read().expect("not poisoned").0.clone();
        }
        let now = crate::keys::dir_mtime(&self.settings.key_dir);
        {
            let k = self.keys.read().expect("not poisoned");
            if k.1 == now {
                return k.0.clone();
            }
        }
        match load_keys(&self.settings) {
            Ok(keys) => {
                let keys = Arc::new(keys);
                *self.keys.write().expect("not poisoned") = (keys.clone(), now);
                self.verified_tokens.write().expect("not poisoned").clear();
                keys
            }
            Err(e) => {
                tracing::error!(error = %e, "reloading token keys failed; keeping the loaded ones");
                self.keys.read().expect("not poisoned").0.clone()
            }
        }
    }

    /// The claims of a registry token, verified once and then remembered
    /// until it expires.
    fn verify_token(&self, token: &str) -> Result<RegistryClaims, portcullis_auth::AuthError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if let Some(c) = self.verified_tokens.read().expect("not poisoned").get(token) {
            if c.nbf <= now + 60 && now < c.exp {
                return Ok(c.clone());
            }
        }
        let claims = self.keys().verify(token, &self.settings.service)?;
        let mut cache = self.verified_tokens.write().expect("not poisoned");
        if cache.len() >= MAX_VERIFIED_TOKENS {
            cache.retain(|_, c| now < c.exp);
            if cache.len() >= MAX_VERIFIED_TOKENS {
                cache.clear();
            }
        }
        cache.insert(token.into(), claims.clone());
        Ok(claims)
    }

    /// Forgets what is cached about `repo` (its settings changed here).
    pub(crate) fn forget_repository(&self, repo: &str) {
        self.public_repos.forget(repo);
    }

    pub fn throttle(&self) -> std::sync::MutexGuard<'_, LoginThrottle> {
        self.throttle.lock().expect("not poisoned")
    }
}

fn load_keys(settings: &AccessSettings) -> std::io::Result<TokenKeys> {
    let keys = crate::keys::load_or_create(&settings.key_dir)?;
    TokenKeys::new(&settings.service, &keys).map_err(std::io::Error::other)
}

/// A new API or refresh token for `account`: the secret to show once, and
/// the row that keeps only its hash.
pub fn new_token(
    account: &str,
    name: &str,
    kind: &str,
    scopes: &[TokenScope],
    ttl_ms: i64,
) -> (ApiToken, portcullis_meta::StoredToken) {
    let t = ApiToken::generate();
    let now = portcullis_meta::now_ms();
    let stored = portcullis_meta::StoredToken {
        id: t.id.clone(),
        account: account.to_string(),
        name: name.to_string(),
        kind: kind.to_string(),
        secret_hash: t.secret_hash(),
        scopes: scopes.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "),
        created_at: now,
        expires_at: Some(now + ttl_ms),
        last_used_at: None,
        revoked_at: None,
    };
    (t, stored)
}

/// An account acting, possibly limited by the API token it used.
#[derive(Debug, Clone)]
pub struct Principal {
    pub account: Account,
    pub token_id: Option<String>,
    /// `None`: not limited (a password login).
    pub scopes: Option<Vec<TokenScope>>,
    /// Set when the caller presented a registry token (JWT): the
    /// repositories it was issued for. A registry token is a pull/push
    /// credential that travels with every registry request; it never
    /// authorizes account, token, namespace or system management.
    pub registry_access: Option<Vec<TokenScope>>,
}

impl Principal {
    /// A password login, or an unscoped (refresh) token.
    pub(crate) fn full(account: Account, token_id: Option<String>) -> Principal {
        Principal {
            account,
            token_id,
            scopes: None,
            registry_access: None,
        }
    }

    fn limit(&self, repo: &str, actions: Actions) -> Actions {
        [&self.scopes, &self.registry_access]
            .into_iter()
            .flatten()
            .fold(actions, |a, s| a.intersect(TokenScope::allowed(s, repo)))
    }
    /// Account-wide management needs a password login or an unlimited API
    /// token, never a registry token.
    pub(crate) fn unlimited(&self) -> bool {
        self.registry_access.is_none()
            && self
                .scopes
                .as_ref()
                .is_none_or(|s| s.iter().any(|s| s.pattern == "*" && s.actions == Actions::ALL))
    }
}

/// What a registry token's `access` claim grants, as exact-name scopes.
fn registry_access(claims: &RegistryClaims) -> Vec<TokenScope> {
    claims
        .access
        .iter()
        .filter(|a| a.kind == "repository" && a.name.parse::<portcullis_oci::RepositoryName>().is_ok())
        .map(|a| TokenScope {
            pattern: a.name.clone(),
            actions: Actions::parse_list(&a.actions.join(",")).unwrap_or(Actions::NONE),
        })
        .collect()
}

#[derive(Debug, Clone)]
pub enum Caller {
    Anonymous,
    /// A registry token: its grants are in its claims.
    Bearer(RegistryClaims),
    Account(Principal),
}

/// Who did it, for the audit trail.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub name: String,
    pub token_id: Option<String>,
    pub address: Option<String>,
    /// How a request's login was proved when no `login` record says so
    /// (see `AuditEvent::via`).
    pub via: Option<&'static str>,
}

impl Actor {
    pub fn event(&self, action: &str) -> AuditEvent {
        AuditEvent {
            actor: self.name.clone(),
            token_id: self.token_id.clone(),
            address: self.address.clone(),
            via: self.via.map(str::to_string),
            ..AuditEvent::ok("", action)
        }
    }
}

impl Caller {
    pub fn actor(&self, address: Option<String>) -> Actor {
        let (name, token_id) = match self {
            Caller::Anonymous => (ANONYMOUS.to_string(), None),
            Caller::Bearer(c) => (c.sub.clone(), c.tid.clone()),
            Caller::Account(p) => (p.account.name.clone(), p.token_id.clone()),
        };
        Actor {
            name,
            token_id,
            address,
            via: None,
        }
    }
}

/// What a request needs.
#[derive(Debug, Clone, Copy)]
pub enum Need<'a> {
    /// Anyone, even anonymous (health, token endpoint, catalog: filtered).
    Nothing,
    /// Any authenticated caller.
    Authenticated,
    Repository(&'a str, Actions),
    /// A role on a namespace as a whole (its grants, teams, service accounts).
    Namespace(&'a str, Role),
    /// The account itself, or a system administrator.
    Account(&'a str),
    /// A system administrator.
    System,
}

/// The subject of registry tokens issued to anonymous callers, and so a
/// name no account may take.
pub const ANONYMOUS: &str = "anonymous";

/// The namespace a repository lives in: the part before the first `/`.
/// A name without one lives in no namespace: only administrators and
/// explicit grants reach it.
pub fn namespace_of(repo: &str) -> &str {
    repo.split_once('/').map_or("", |(ns, _)| ns)
}

impl Registry {
    /// Identifies the caller from the `Authorization` header. A credential
    /// that is present but wrong is an error, never anonymous.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, RegistryError> {
        let Some(value) = header_str(headers, "authorization") else {
            return Ok(Caller::Anonymous);
        };
        let Some(bearer) = value.strip_prefix("Bearer ").map(str::trim) else {
            return Err(RegistryError::Unauthorized(
                "use a bearer token from the token endpoint".into(),
            ));
        };
        if let Some(token) = ApiToken::parse(bearer) {
            let p = self.api_token_principal(&token, None).await?;
            // Only API tokens carry scopes; a refresh token is exchanged at
            // the token endpoint, never presented as a bearer.
            if p.scopes.is_none() {
                return Err(RegistryError::Unauthorized(
                    "a refresh token is exchanged at the token endpoint, not sent as a bearer".into(),
                ));
            }
            return Ok(Caller::Account(p));
        }
        let claims = self
            .access
            .verify_token(bearer)
            .map_err(|e| RegistryError::Unauthorized(e.to_string()))?;
        Ok(Caller::Bearer(claims))
    }

    /// The account behind an API token, if the token is live.
    pub(crate) async fn api_token_principal(
        &self,
        token: &ApiToken,
        username: Option<&str>,
    ) -> Result<Principal, RegistryError> {
        let bad = || RegistryError::Unauthorized("invalid, expired or revoked token".into());
        let stored = self.meta.token(&token.id).await?.ok_or_else(bad)?;
        let live = token.matches(&stored.secret_hash)
            && stored.revoked_at.is_none()
            && stored.expires_at.is_none_or(|e| e > portcullis_meta::now_ms())
            && username.is_none_or(|u| u == stored.account);
        if !live {
            return Err(bad());
        }
        let account = self.meta.account(&stored.account).await?.ok_or_else(bad)?;
        // Last use to the minute: a write per request would serialise every
        // CI pull behind the database's single writer.
        if stored
            .last_used_at
            .is_none_or(|t| portcullis_meta::now_ms() - t > 60_000)
        {
            self.meta.touch_token(&stored.id).await?;
        }
        let scopes = parse_scopes(&stored.scopes).map_err(|_| bad())?;
        Ok(Principal {
            account,
            token_id: Some(stored.id),
            scopes: (stored.kind == "api").then_some(scopes),
            registry_access: None,
        })
    }

    /// The live account behind a caller, for management routes.
    pub(crate) async fn principal(&self, caller: &Caller) -> Result<Option<Principal>, RegistryError> {
        match caller {
            Caller::Anonymous => Ok(None),
            Caller::Account(p) => Ok(Some(p.clone())),
            // Anonymous registry tokens name no account.
            Caller::Bearer(c) if c.sub == ANONYMOUS => Ok(None),
            Caller::Bearer(c) => {
                let gone = || RegistryError::Unauthorized(format!("account {} no longer exists", c.sub));
                let account = self.meta.account(&c.sub).await?.ok_or_else(gone)?;
                if account.password_changed_at.is_some_and(|t| c.iat * 1000 < t) {
                    return Err(RegistryError::Unauthorized(
                        "the password changed after this token was issued; log in again".into(),
                    ));
                }
                let scopes = match &c.tid {
                    None => None,
                    Some(tid) => {
                        let t = self.meta.token(tid).await?.filter(|t| t.revoked_at.is_none());
                        let t = t.ok_or_else(|| RegistryError::Unauthorized("token revoked".into()))?;
                        (t.kind == "api")
                            .then(|| parse_scopes(&t.scopes))
                            .transpose()
                            .map_err(|e| RegistryError::Internal(e.to_string()))?
                    }
                };
                Ok(Some(Principal {
                    account,
                    token_id: c.tid.clone(),
                    scopes,
                    registry_access: Some(registry_access(c)),
                }))
            }
        }
    }

    /// What `caller` may do to `repo`.
    pub async fn permitted(&self, caller: &Caller, repo: &str) -> Result<Actions, RegistryError> {
        match caller {
            Caller::Anonymous => self.anonymous_actions(repo).await,
            Caller::Bearer(c) => Ok(c
                .access
                .iter()
                .filter(|a| a.kind == "repository" && a.name == repo)
                .map(|a| Actions::parse_list(&a.actions.join(",")).unwrap_or(Actions::NONE))
                .fold(Actions::NONE, Actions::union)),
            Caller::Account(p) => {
                let full = self.account_actions(&p.account, repo).await?;
                Ok(p.limit(repo, full))
            }
        }
    }

    async fn anonymous_actions(&self, repo: &str) -> Result<Actions, RegistryError> {
        let public = match self.access.public_repos.get(repo) {
            Some(public) => public,
            None => {
                let public = self
                    .meta
                    .repository(repo)
                    .await?
                    .is_some_and(|r| r.visibility == "public");
                self.access.public_repos.put(repo, public);
                public
            }
        };
        // A public pull-through cache: anyone may pull (and so fill it),
        // repositories not yet cached included.
        let public = public || self.proxy_of(repo).await?.is_some_and(|p| p.public);
        let base = if public { Actions::PULL } else { Actions::NONE };
        Ok(base.union(self.access.settings.anonymous.actions()))
    }

    /// An account's own rights on `repo`, before any token limit.
    pub(crate) async fn account_actions(&self, account: &Account, repo: &str) -> Result<Actions, RegistryError> {
        let role = self.namespace_role(account, namespace_of(repo), repo).await?;
        if role == Some(Role::Admin) {
            return Ok(Actions::ALL);
        }
        let anonymous = self.anonymous_actions(repo).await?;
        Ok(anonymous.union(role.map_or(Actions::NONE, Role::actions)))
    }

    /// The highest role `account` holds on `namespace` (for `repo` in it,
    /// or on the namespace as a whole when `repo` is empty).
    pub(crate) async fn namespace_role(
        &self,
        account: &Account,
        namespace: &str,
        repo: &str,
    ) -> Result<Option<Role>, RegistryError> {
        if account.admin {
            return Ok(Some(Role::Admin));
        }
        if !namespace.is_empty() {
            if account.kind == "user" && account.name == namespace {
                return Ok(Some(Role::Admin));
            }
            if self.meta.is_member(namespace, "owners", &account.name).await? {
                return Ok(Some(Role::Admin));
            }
        }
        let roles = self.meta.granted_roles(&account.name, namespace, repo).await?;
        Ok(roles.iter().filter_map(|r| r.parse::<Role>().ok()).max())
    }

    /// The one authorization decision. `Ok` to proceed; otherwise the error
    /// to answer with: 401 (with a challenge) when better credentials could
    /// help, 403 `DENIED` when the caller is known and not allowed.
    pub async fn authorize(&self, caller: &Caller, need: Need<'_>) -> Result<(), RegistryError> {
        let scope = |repo: &str, a: Actions| format!("repository:{repo}:{a}");
        match need {
            Need::Nothing => Ok(()),
            // Even when anonymous pushes are allowed, `/v2/` challenges
            // anonymous callers: clients learn the token realm there, and
            // then send their credentials (or fetch an anonymous token).
            Need::Authenticated => match caller {
                Caller::Anonymous => Err(RegistryError::Unauthorized("authentication required".into())),
                _ => Ok(()),
            },
            Need::Repository(repo, want) => {
                if self.permitted(caller, repo).await?.contains(want) {
                    return Ok(());
                }
                // A push is challenged for pull too, as Distribution does:
                // a client asks for exactly the challenged scope, and a push
                // token that can't pull can't check which blobs are there
                // or mount one without `from`.
                let want = if want.contains(Actions::PUSH) {
                    want.union(Actions::PULL)
                } else {
                    want
                };
                match caller {
                    Caller::Anonymous => Err(RegistryError::Challenge {
                        scope: scope(repo, want),
                        insufficient: false,
                    }),
                    Caller::Bearer(_) => Err(RegistryError::Challenge {
                        scope: scope(repo, want),
                        insufficient: true,
                    }),
                    Caller::Account(_) => Err(RegistryError::Denied(format!(
                        "{want} on {repo} is not granted to this caller"
                    ))),
                }
            }
            Need::Namespace(ns, role) => {
                let p = self.require_principal(caller).await?;
                let held = if p.unlimited() {
                    self.namespace_role(&p.account, ns, "").await?
                } else {
                    None
                };
                if held.is_some_and(|h| h >= role) {
                    Ok(())
                } else {
                    Err(RegistryError::Denied(format!(
                        "{} on namespace {ns} is needed",
                        role.as_str()
                    )))
                }
            }
            Need::Account(name) => {
                let p = self.require_principal(caller).await?;
                if p.unlimited() && (p.account.admin || p.account.name == name) {
                    Ok(())
                } else {
                    Err(RegistryError::Denied(format!(
                        "only {name} or an administrator may do this"
                    )))
                }
            }
            Need::System => {
                let p = self.require_principal(caller).await?;
                if p.unlimited() && p.account.admin {
                    Ok(())
                } else {
                    Err(RegistryError::Denied("only a system administrator may do this".into()))
                }
            }
        }
    }

    async fn require_principal(&self, caller: &Caller) -> Result<Principal, RegistryError> {
        self.principal(caller)
            .await?
            .ok_or_else(|| RegistryError::Unauthorized("authentication required".into()))
    }

    /// `WWW-Authenticate` for a 401: where to get a token, and for what.
    pub(crate) fn challenge(&self, host: Option<&str>, scope: Option<&str>, insufficient: bool) -> HeaderValue {
        let realm = match &self.access.settings.realm {
            Some(r) => r.clone(),
            None => {
                let host = host.unwrap_or("localhost");
                let scheme = if self.tls { "https" } else { "http" };
                format!("{scheme}://{host}/auth/token")
            }
        };
        let mut v = format!(
            "Bearer realm=\"{}\",service=\"{}\"",
            realm.replace('"', ""),
            self.access.settings.service
        );
        if let Some(s) = scope {
            v.push_str(&format!(",scope=\"{s}\""));
        }
        if insufficient {
            v.push_str(",error=\"insufficient_scope\"");
        }
        HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    }
}

pub(crate) fn parse_scopes(s: &str) -> Result<Vec<TokenScope>, portcullis_auth::AuthError> {
    s.split_whitespace().map(str::parse).collect()
}

/// Account, organization and team names: one repository path component,
/// so `acme/app` can name a namespace and a repository in it, and none of
/// [`portcullis_meta::RESERVED_NAMES`] (`anonymous`, and `system` and
/// `portcullis`, the actors of the registry's own audit records). `Err`
/// says why not, for a person.
pub fn check_account_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= 64 && !name.contains('/') && name.parse::<portcullis_oci::RepositoryName>().is_ok();
    if !ok {
        return Err(format!(
            "{name:?} is not a valid name: lowercase letters, digits and . _ - separators"
        ));
    }
    if portcullis_meta::RESERVED_NAMES.contains(&name) {
        return Err(format!("{name:?} is reserved: the registry's own records use it"));
    }
    Ok(())
}

//! Webhooks: the events changes cause (built here, written by `meta` in
//! the change's own transaction), and the dispatcher that delivers them.
//!
//! Delivery is at least once, across restarts: the dispatcher claims due
//! deliveries from the database (a replica never takes another's), POSTs
//! each signed with its hook's secret, and records every attempt. Failures
//! are retried with exponential backoff and jitter until `max_attempts` or
//! `max_age`. Targets on loopback, private, link-local or unspecified
//! addresses are refused (after DNS resolution, at creation and at every
//! delivery; redirects are not followed) unless `webhook_allow` lists them.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use portcullis_meta::{now_ms, AfterAttempt, Attempt, DueDelivery, OutboxEvent};
use serde_json::json;

use crate::access::Actor;
use crate::Registry;

/// Event types, Docker Trusted Registry's names.
pub const EVENT_TYPES: [&str; 8] = [
    "TAG_PUSH",
    "TAG_DELETE",
    "MANIFEST_PUSH",
    "MANIFEST_DELETE",
    "SCAN_COMPLETED",
    "SCAN_FAILED",
    "PROMOTION",
    "IMAGE_SIGNED",
];

/// The version of the payload format (`schemas/webhook-event.v1.json`).
pub const PAYLOAD_VERSION: u32 = 1;

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Destinations allowed although internal: CIDR networks, addresses
    /// or host names.
    pub allow: AllowList,
    pub max_attempts: u32,
    pub max_age: Duration,
    /// The first retry's delay; each next one is three times longer (at
    /// most six hours), ±20% jitter.
    pub retry_base: Duration,
    pub timeout: Duration,
    pub poll: Duration,
    /// The registry's public base URL, for payloads.
    pub public_url: String,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            allow: AllowList::default(),
            max_attempts: 10,
            max_age: Duration::from_secs(2 * 86_400),
            retry_base: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            poll: Duration::from_millis(500),
            public_url: "http://127.0.0.1:5000".into(),
        }
    }
}

/// `webhook_allow`: networks and host names that may be targets although
/// they are internal.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    nets: crate::access::TrustedProxies,
    hosts: Vec<String>,
}

impl std::str::FromStr for AllowList {
    type Err = String;
    fn from_str(s: &str) -> Result<AllowList, String> {
        let (mut nets, mut hosts) = (Vec::new(), Vec::new());
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let ip_like = item.split('/').next().is_some_and(|a| a.parse::<IpAddr>().is_ok());
            if ip_like {
                nets.push(item);
            } else if item.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') {
                hosts.push(item.to_ascii_lowercase());
            } else {
                return Err(format!("{item:?} is not an address, network or host name"));
            }
        }
        Ok(AllowList {
            nets: nets.join(",").parse()?,
            hosts,
        })
    }
}

/// Loopback, private, link-local, unspecified, multicast, broadcast,
/// carrier-grade NAT, unique-local: nothing a webhook should reach unless
/// an administrator says so.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || a.to_ipv4_mapped().is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}

impl AllowList {
    fn allows(&self, host: &str, ip: IpAddr) -> bool {
        !is_internal(ip) || self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) || self.nets.contains_ip(ip)
    }

    /// The addresses `url` may be delivered to, or why it may not be.
    pub async fn vet(&self, url: &reqwest::Url) -> Result<Vec<SocketAddr>, String> {
        if !["http", "https"].contains(&url.scheme()) {
            return Err(format!("{}: only http and https URLs", url.scheme()));
        }
        let host = url.host_str().ok_or("the URL has no host")?.trim_matches(['[', ']']);
        self.vet_host(host, url.port_or_known_default().unwrap_or(80)).await
    }

    /// The addresses `host` resolves to, refused if any is internal and
    /// not allowed.
    async fn vet_host(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| format!("{host} does not resolve: {e}"))?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(format!("{host} does not resolve"));
        }
        if let Some(bad) = addrs.iter().find(|a| !self.allows(host, a.ip())) {
            return Err(format!(
                "{host} resolves to {}, an internal address (list it in webhook_allow to allow it)",
                bad.ip()
            ));
        }
        Ok(addrs)
    }
}

/// The dispatcher's resolver: every connection to a host name goes to
/// addresses vetted in the same resolution (no second look-up to rebind).
struct VettingResolver(AllowList);

impl reqwest::dns::Resolve for VettingResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.0.clone();
        Box::pin(async move {
            let addrs = allow.vet_host(name.as_str(), 0).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Counts per severity as payloads and the API show them.
pub(crate) fn summary_json(counts: &[i64; 5]) -> serde_json::Value {
    json!({"critical": counts[0], "high": counts[1], "medium": counts[2], "low": counts[3], "unknown": counts[4]})
}

/// What an event is about.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct About<'a> {
    pub repository: &'a str,
    pub digest: Option<&'a str>,
    pub tag: Option<&'a str>,
    pub media_type: Option<&'a str>,
}

impl Registry {
    /// An event, with the payload every type shares and `extra` fields of
    /// its own.
    pub(crate) fn event(
        &self,
        kind: &str,
        actor: Option<&Actor>,
        about: About<'_>,
        extra: serde_json::Value,
    ) -> OutboxEvent {
        let About {
            repository,
            digest,
            tag,
            media_type,
        } = about;
        let id = uuid::Uuid::new_v4().to_string();
        let mut payload = json!({
            "version": PAYLOAD_VERSION,
            "type": kind,
            "id": id,
            "created_at": now_ms(),
            "actor": actor.map(|a| json!({"account": a.name, "token_id": a.token_id})),
            "repository": repository,
            "digest": digest,
            "tag": tag,
            "media_type": media_type,
            "registry": self.webhooks.public_url,
        });
        if let (Some(p), Some(extra)) = (payload.as_object_mut(), extra.as_object()) {
            p.extend(extra.clone());
        }
        OutboxEvent {
            id,
            kind: kind.to_string(),
            repository: repository.to_string(),
            payload: payload.to_string(),
        }
    }

    /// A scan event for every repository (`repos`, with the manifest's
    /// media type there) that holds the image; `meta` reads them in the
    /// scan result's own transaction.
    pub(crate) fn scan_events(
        &self,
        repos: &[(String, String)],
        digest: &str,
        kind: &str,
        extra: &serde_json::Value,
    ) -> Vec<OutboxEvent> {
        repos
            .iter()
            .map(|(repo, media_type)| {
                let about = About {
                    repository: repo,
                    digest: Some(digest),
                    tag: None,
                    media_type: Some(media_type),
                };
                self.event(kind, None, about, extra.clone())
            })
            .collect()
    }
}

/// `sha256=<hex>` over `<timestamp>.<delivery>.<event>.<body>`.
pub fn signature(secret: &str, timestamp: i64, delivery: &str, event: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(format!("{timestamp}.{delivery}.{event}.").as_bytes());
    ctx.update(body);
    format!("sha256={}", hex::encode(ctx.sign().as_ref()))
}

/// How long to wait before attempt `n + 1` after `n` failed.
fn backoff(base: Duration, failed: u32) -> Duration {
    let factor = 3u64.saturating_pow(failed.saturating_sub(1).min(20));
    let ms = (base.as_millis() as u64).saturating_mul(factor).min(6 * 3600 * 1000);
    // ±20% jitter, from the clock's nanoseconds (no need for a RNG).
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let jitter = ms / 5;
    Duration::from_millis(ms - jitter + nanos % (2 * jitter + 1))
}

/// The largest response body kept in the delivery log.
const MAX_RESPONSE: usize = 4096;

pub(crate) struct Dispatcher {
    client: reqwest::Client,
    pub wake: tokio::sync::Notify,
}

impl Dispatcher {
    pub(crate) fn new(settings: &WebhookSettings) -> Dispatcher {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .timeout(settings.timeout)
            .user_agent(concat!("portcullis-webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(VettingResolver(settings.allow.clone())))
            .build()
            .expect("an HTTP client");
        Dispatcher {
            client,
            wake: tokio::sync::Notify::new(),
        }
    }
}

/// Claims and delivers due deliveries until the registry is dropped.
pub(crate) async fn dispatch(weak: Weak<Registry>) {
    loop {
        let Some(reg) = weak.upgrade() else { return };
        let lease = (reg.webhooks.timeout.as_millis() as i64) * 3 + 5_000;
        let due = match reg.meta.claim_deliveries(lease, 32).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "claiming webhook deliveries");
                Vec::new()
            }
        };
        let worked = !due.is_empty();
        let sends = due.into_iter().map(|d| deliver(&reg, d));
        futures_util::future::join_all(sends).await;
        if !worked {
            let _ = tokio::time::timeout(reg.webhooks.poll, reg.dispatcher.wake.notified()).await;
        }
    }
}

/// One attempt of one delivery, recorded with what follows it.
async fn deliver(reg: &Arc<Registry>, d: DueDelivery) {
    let started = Instant::now();
    let now = now_ms();
    let timestamp = now / 1000;
    let result = send(reg, &d, timestamp).await;
    let mut attempt = Attempt {
        attempt: d.attempt,
        at: now,
        latency_ms: started.elapsed().as_millis() as i64,
        ..Attempt::default()
    };
    let ok = match result {
        Ok((status, body)) => {
            attempt.status_code = Some(i64::from(status));
            attempt.response = Some(body);
            (200..300).contains(&status)
        }
        Err(e) => {
            attempt.error = Some(e);
            false
        }
    };
    let settings = &reg.webhooks;
    let then = if ok {
        AfterAttempt::Delivered
    } else if d.attempt >= i64::from(settings.max_attempts) || now - d.created_at > settings.max_age.as_millis() as i64
    {
        AfterAttempt::GiveUp
    } else {
        AfterAttempt::RetryAt(now + backoff(settings.retry_base, d.attempt as u32).as_millis() as i64)
    };
    reg.metrics.webhook_delivery(match then {
        AfterAttempt::Delivered => "delivered",
        AfterAttempt::RetryAt(_) => "retry",
        AfterAttempt::GiveUp => "failed",
    });
    if let Err(e) = reg.meta.finish_attempt(&d.id, &attempt, then).await {
        tracing::warn!(delivery = %d.id, error = %e, "recording a webhook attempt");
    }
}

async fn send(reg: &Registry, d: &DueDelivery, timestamp: i64) -> Result<(u16, String), String> {
    let url = reqwest::Url::parse(&d.url).map_err(|e| e.to_string())?;
    // Host names are vetted by the client's resolver as it connects; an
    // address in the URL never reaches a resolver, so it is vetted here.
    let literal = url
        .host_str()
        .map(|h| h.trim_matches(['[', ']']).parse::<IpAddr>().is_ok());
    if literal != Some(false) {
        reg.webhooks.allow.vet(&url).await?;
    }
    let mut req = reg
        .dispatcher
        .client
        .post(url)
        .header("content-type", "application/json")
        .header("x-portcullis-event", &d.kind)
        .header("x-portcullis-delivery", &d.id)
        .header("x-portcullis-timestamp", timestamp.to_string())
        .header(
            "x-portcullis-signature",
            signature(&d.secret, timestamp, &d.id, &d.kind, d.payload.as_bytes()),
        );
    for (k, v) in &d.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = req.body(d.payload.clone()).send().await.map_err(|e| {
        let mut s = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(inner) = source {
            s.push_str(&format!(": {inner}"));
            source = inner.source();
        }
        s
    })?;
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    use futures_util::StreamExt;
    while let Some(Ok(chunk)) = stream.next().await {
        body.extend_from_slice(&chunk[..chunk.len().min(MAX_RESPONSE - body.len())]);
        if body.len() >= MAX_RESPONSE {
            break;
        }
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_table() {
        let table = [
            ("127.0.0.1", true),
            ("10.1.2.3", true),
            ("172.16.0.1", true),
            ("172.32.0.1", false),
            ("192.168.1.1", true),
            ("169.254.169.254", true),
            ("100.64.0.1", true),
            ("0.0.0.0", true),
            ("8.8.8.8", false),
            ("203.0.113.7", false),
            ("::1", true),
            ("::", true),
            ("fd00::1", true),
            ("fe80::1", true),
            ("::ffff:127.0.0.1", true),
            ("2001:4860:4860::8888", false),
        ];
        for (ip, internal) in table {
            assert_eq!(is_internal(ip.parse().unwrap()), internal, "{ip}");
        }
    }

    #[test]
    fn allow_list_and_signatures() {
        let allow: AllowList = "127.0.0.1, 10.0.0.0/8, hooks.internal".parse().unwrap();
        assert!(allow.allows("x", "127.0.0.1".parse().unwrap()));
        assert!(allow.allows("x", "10.9.9.9".parse().unwrap()));
        assert!(!allow.allows("x", "192.168.0.1".parse().unwrap()));
        assert!(allow.allows("hooks.internal", "192.168.0.1".parse().unwrap()));
        assert!("bad host!".parse::<AllowList>().is_err());
        // HMAC-SHA256("key", "1.d.E.body"), as Python's hmac module computes it.
        assert_eq!(
            signature("key", 1, "d", "E", b"body"),
            "sha256=6375a7213a55c2d4e6bab1e178070f5e426b2aa11029b9ab1b1204819379d07c"
        );
    }

    #[test]
    fn backoff_grows_to_about_a_day_over_ten_attempts() {
        let base = Duration::from_secs(30);
        let total: Duration = (1..10).map(|n| backoff(base, n)).sum();
        assert!(
            total > Duration::from_secs(15 * 3600) && total < Duration::from_secs(30 * 3600),
            "{total:?}"
        );
        assert!(backoff(base, 1) <= Duration::from_secs(36));
    }
}

//! Delivery, at least once across restarts: due deliveries are claimed
//! from the database (a replica never takes another's), POSTed signed with
//! the hook's secret, and every attempt is recorded; failures are retried
//! with exponential backoff and jitter.

use std::net::IpAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use portcullis_meta::{now_ms, AfterAttempt, Attempt, DueDelivery};

use super::target::VettingResolver;
use super::{redact_url, scrub_url, WebhookSettings};
use crate::Registry;

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
            // A proxy from HTTP(S)_PROXY would connect to the target itself,
            // past the vetting resolver.
            .no_proxy()
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
    let outcome = match then {
        AfterAttempt::Delivered => "delivered",
        AfterAttempt::RetryAt(_) => "retry",
        AfterAttempt::GiveUp => "failed",
    };
    reg.metrics.webhook_delivery(outcome);
    tracing::info!(
        log = "webhook_delivery",
        hook_id = %d.hook_id,
        delivery = %d.id,
        event_type = %d.kind,
        url = %redact_url(&d.url),
        status = attempt.status_code,
        error = attempt.error.as_deref().map(|e| scrub_url(e, &d.url)),
        latency_ms = attempt.latency_ms,
        attempt = d.attempt,
        outcome,
        "webhook delivery attempt"
    );
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
        // The log is shown to the hook's administrators: no query string.
        let e = e.without_url();
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

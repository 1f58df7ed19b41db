//! Webhooks: the events changes cause (built here, written by `meta` in
//! the change's own transaction), and the dispatcher that delivers them.
//!
//! Delivery is at least once, across restarts: the dispatcher claims due
//! deliveries from the database (a replica never takes another's), POSTs
//! each signed with its hook's secret, and records every attempt. Failures
//! are retried with exponential backoff and jitter until `max_attempts` or
//! `max_age`. Targets on internal addresses ([`is_internal`]) are refused
//! (after DNS resolution, at creation and at every delivery; redirects are
//! not followed, proxies are not used) unless `webhook_allow` lists them.
//! A URL's query string and userinfo are as secret as the hook's secret:
//! everything shows the URL through [`redact_url`].

mod delivery;
mod target;

use std::time::Duration;

use portcullis_meta::{now_ms, OutboxEvent};
use serde_json::json;

use crate::access::Actor;
use crate::Registry;

pub use delivery::signature;
pub(crate) use delivery::{dispatch, Dispatcher};
pub use target::{is_internal, redact_url, scrub_url, AllowList};

/// Event types, Docker Trusted Registry's names.
pub const EVENT_TYPES: [&str; 10] = [
    "TAG_PUSH",
    "TAG_DELETE",
    "MANIFEST_PUSH",
    "MANIFEST_DELETE",
    "SCAN_COMPLETED",
    "SCAN_FAILED",
    "PROMOTION",
    "IMAGE_SIGNED",
    "REPLICATION_COMPLETED",
    "REPLICATION_FAILED",
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

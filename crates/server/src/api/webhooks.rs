//! Webhooks of a repository or a namespace, and their delivery logs. A
//! hook's secret, extra header values, and its URL's query string and
//! userinfo are write-only: no response, log line or audit record shows
//! them (the URL is shown through `redact_url`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use portcullis_auth::{Actions, Role};
use portcullis_meta::{DeliveryLog, Webhook};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::identity::repo_name;
use super::{json_body, reply, to_json, ApiResult, Who};
use crate::access::Need;
use crate::webhooks::{redact_url, scrub_url, About, EVENT_TYPES};
use crate::{Registry, RegistryError};

/// A webhook's fields. The secret, the header values, and the URL's query
/// string and userinfo are write-only.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HookBody {
    /// `http://` or `https://`; internal addresses only where
    /// `webhook_allow` lets them.
    #[schema(example = "https://ci.example.com/hooks/portcullis")]
    url: Option<String>,
    /// Event types: `TAG_PUSH`, `TAG_DELETE`, `MANIFEST_PUSH`,
    /// `MANIFEST_DELETE`, `SCAN_COMPLETED`, `SCAN_FAILED`, `PROMOTION`,
    /// `IMAGE_SIGNED`.
    #[schema(example = json!(["TAG_PUSH"]))]
    events: Option<Vec<String>>,
    /// 16 to 256 bytes: the HMAC key of `X-Portcullis-Signature`.
    secret: Option<String>,
    enabled: Option<bool>,
    /// Extra request headers (not `X-Portcullis-*`, `Content-Type`,
    /// `Host`, `Content-Length`).
    headers: Option<std::collections::BTreeMap<String, String>>,
}

/// A webhook as the API shows it.
#[derive(Serialize, ToSchema)]
pub(crate) struct WebhookView {
    id: String,
    /// Its repository, for a repository's hook.
    repository: Option<String>,
    /// Its namespace, for a namespace's hook.
    namespace: Option<String>,
    /// Redacted: no query string or userinfo.
    url: String,
    events: Vec<String>,
    enabled: bool,
    /// The names of its extra headers (never their values).
    header_names: Vec<String>,
    created_by: String,
    created_at: i64,
    updated_at: i64,
}

/// A delivery of an event to a hook.
#[derive(Serialize, ToSchema)]
pub(crate) struct DeliveryView {
    id: String,
    event_id: String,
    event_seq: i64,
    /// The event type.
    #[serde(rename = "type")]
    kind: String,
    /// `pending`, `delivering`, `delivered` or `failed` (given up).
    status: String,
    /// When the next attempt is due.
    next_at: i64,
    created_at: i64,
    finished_at: Option<i64>,
    attempts: Vec<AttemptView>,
}

/// One attempt of a delivery.
#[derive(Serialize, ToSchema)]
pub(crate) struct AttemptView {
    attempt: i64,
    at: i64,
    /// The HTTP status the target answered.
    status_code: Option<i64>,
    latency_ms: i64,
    /// Why no answer came.
    error: Option<String>,
    /// The start of the answer's body.
    response: Option<String>,
}

/// A page of deliveries.
#[derive(Serialize, ToSchema)]
pub(crate) struct DeliveryPage {
    deliveries: Vec<DeliveryView>,
    /// The `before` of the next page; `null` on the last one.
    next_before: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct EventQueued {
    event_id: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DeliveryQueued {
    /// The new delivery.
    delivery_id: String,
}

fn hook_json(h: &Webhook) -> serde_json::Value {
    to_json(&WebhookView {
        id: h.id.clone(),
        repository: h.repository.clone(),
        namespace: h.namespace.clone(),
        url: redact_url(&h.url),
        events: h.events.clone(),
        enabled: h.enabled,
        header_names: h.headers.iter().map(|(k, _)| k.clone()).collect(),
        created_by: h.created_by.clone(),
        created_at: h.created_at,
        updated_at: h.updated_at,
    })
}

/// A delivery of hook `h`; error texts recorded before reqwest's errors
/// were stripped of the URL are scrubbed of it.
fn delivery_view(h: &Webhook, d: &DeliveryLog) -> DeliveryView {
    DeliveryView {
        id: d.id.clone(),
        event_id: d.event_id.clone(),
        event_seq: d.event_seq,
        kind: d.kind.clone(),
        status: d.status.clone(),
        next_at: d.next_at,
        created_at: d.created_at,
        finished_at: d.finished_at,
        attempts: d
            .attempts
            .iter()
            .map(|a| AttemptView {
                attempt: a.attempt,
                at: a.at,
                status_code: a.status_code,
                latency_ms: a.latency_ms,
                error: a.error.as_deref().map(|e| scrub_url(e, &h.url)),
                response: a.response.clone(),
            })
            .collect(),
    }
}

/// Applies a request to a hook (new or existing), checking every field.
async fn apply(reg: &Registry, h: &mut Webhook, b: HookBody) -> Result<(), RegistryError> {
    // A client that sends back the URL it was shown (GET, change, PUT)
    // keeps the stored one, instead of replacing its token with `…`.
    let shown = redact_url(&h.url);
    let echoed = shown != h.url && b.url.as_deref() == Some(shown.as_str());
    if let Some(url) = b.url.filter(|_| !echoed) {
        // `example.com/hook` would read "relative URL without a base", and
        // `example.com:8080/hook` as the scheme `example.com`.
        if !url.contains("://") {
            return Err(RegistryError::Invalid(format!(
                "url needs a scheme: https://{url} (or http://{url})"
            )));
        }
        let parsed = reqwest::Url::parse(&url).map_err(|e| RegistryError::Invalid(format!("url: {e}")))?;
        reg.webhooks.allow.vet(&parsed).await.map_err(RegistryError::Invalid)?;
        h.url = url;
    }
    if let Some(events) = b.events {
        if events.is_empty() {
            return Err(RegistryError::Invalid("events: name at least one".into()));
        }
        if let Some(bad) = events.iter().find(|e| !EVENT_TYPES.contains(&e.as_str())) {
            return Err(RegistryError::Invalid(format!(
                "unknown event type {bad:?} (one of {})",
                EVENT_TYPES.join(", ")
            )));
        }
        h.events = events;
    }
    if let Some(secret) = b.secret {
        if secret.len() < 16 || secret.len() > 256 {
            return Err(RegistryError::Invalid("the secret is 16 to 256 bytes".into()));
        }
        h.secret = secret;
    }
    if let Some(enabled) = b.enabled {
        h.enabled = enabled;
    }
    if let Some(headers) = b.headers {
        for (k, v) in &headers {
            let name = axum::http::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| RegistryError::Invalid(format!("header {k:?} is not a valid name")))?;
            if name.as_str().starts_with("x-portcullis-")
                || ["content-type", "host", "content-length"].contains(&name.as_str())
            {
                return Err(RegistryError::Invalid(format!("header {k} is set by the registry")));
            }
            axum::http::HeaderValue::from_str(v)
                .map_err(|_| RegistryError::Invalid(format!("header {k} has a value that can't be sent")))?;
        }
        h.headers = headers.into_iter().collect();
    }
    Ok(())
}

/// Who may manage a hook: administrators of its repository or namespace.
async fn hook_need(reg: &Registry, who: &Who, h: &Webhook) -> Result<(), RegistryError> {
    match (&h.repository, &h.namespace) {
        (Some(r), _) => who.need(reg, Need::Repository(r, Actions::ALL)).await,
        (_, Some(ns)) => who.need(reg, Need::Namespace(ns, Role::Admin)).await,
        _ => Err(RegistryError::Internal("a hook without a scope".into())),
    }
}

async fn find(reg: &Registry, who: &Who, id: &str) -> Result<Webhook, RegistryError> {
    let h = reg
        .meta
        .webhook(id)
        .await?
        .ok_or_else(|| RegistryError::Absent(format!("no such webhook: {id}")))?;
    hook_need(reg, who, &h).await?;
    Ok(h)
}

async fn create(
    reg: &Registry,
    who: &Who,
    repository: Option<String>,
    namespace: Option<String>,
    body: &[u8],
) -> ApiResult {
    let b: HookBody = json_body(body)?;
    if b.url.is_none() || b.events.is_none() || b.secret.is_none() {
        return Err(RegistryError::Invalid("a webhook needs url, events and secret".into()));
    }
    let mut h = Webhook {
        id: uuid::Uuid::new_v4().simple().to_string()[..16].to_string(),
        repository,
        namespace,
        url: String::new(),
        events: Vec::new(),
        secret: String::new(),
        headers: Vec::new(),
        enabled: true,
        created_by: who.actor.name.clone(),
        created_at: portcullis_meta::now_ms(),
        updated_at: portcullis_meta::now_ms(),
    };
    apply(reg, &mut h, b).await?;
    let ev = who.actor.event("webhook.create").detail(format!(
        "{} {} events={}",
        h.id,
        redact_url(&h.url),
        h.events.join(",")
    ));
    let ev = match &h.repository {
        Some(r) => ev.repository(r),
        None => ev,
    };
    reg.meta.create_webhook(&h, &ev).await?;
    Ok(reply(StatusCode::CREATED, hook_json(&h)))
}

#[utoipa::path(
    get,
    path = "/api/v1/repositories/{name}/webhooks",
    tag = "webhooks",
    params(super::RepositoryPath),
    responses((status = 200, description = "The repository's own webhooks", body = [WebhookView])),
)]
pub(crate) async fn repository_webhooks(reg: &Registry, who: &Who, name: &str) -> ApiResult {
    let name = repo_name(name)?;
    who.need(reg, Need::Repository(name.as_str(), Actions::ALL)).await?;
    let list: Vec<_> = reg
        .meta
        .webhooks(name.as_str(), false)
        .await?
        .iter()
        .map(hook_json)
        .collect();
    Ok(reply(StatusCode::OK, json!(list)))
}

#[utoipa::path(
    post,
    path = "/api/v1/repositories/{name}/webhooks",
    tag = "webhooks",
    params(super::RepositoryPath),
    request_body(content = HookBody, description = "`url`, `events` and `secret` are required"),
    responses((status = 201, description = "The webhook", body = WebhookView)),
)]
pub(crate) async fn repository_webhook_create(reg: &Registry, who: &Who, name: &str, body: &[u8]) -> ApiResult {
    let name = repo_name(name)?;
    who.need(reg, Need::Repository(name.as_str(), Actions::ALL)).await?;
    create(reg, who, Some(name.to_string()), None, body).await
}

#[utoipa::path(
    get,
    path = "/api/v1/namespaces/{ns}/webhooks",
    tag = "webhooks",
    params(("ns" = String, Path, description = "A namespace: the name of the user or organization that owns it")),
    responses((status = 200, description = "The namespace's webhooks (for every repository in it)", body = [WebhookView])),
)]
pub(crate) async fn namespace_webhooks(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path(ns): Path<String>,
) -> ApiResult {
    who.need(&reg, Need::Namespace(&ns, Role::Admin)).await?;
    let list: Vec<_> = reg.meta.webhooks(&ns, true).await?.iter().map(hook_json).collect();
    Ok(reply(StatusCode::OK, json!(list)))
}

#[utoipa::path(
    post,
    path = "/api/v1/namespaces/{ns}/webhooks",
    tag = "webhooks",
    params(("ns" = String, Path, description = "A namespace: the name of the user or organization that owns it")),
    request_body(content = HookBody, description = "`url`, `events` and `secret` are required"),
    responses((status = 201, description = "The webhook", body = WebhookView)),
)]
pub(crate) async fn namespace_webhook_create(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path(ns): Path<String>,
    body: Bytes,
) -> ApiResult {
    who.need(&reg, Need::Namespace(&ns, Role::Admin)).await?;
    create(&reg, &who, None, Some(ns), &body).await
}

#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "The webhook's id")),
    responses((status = 200, description = "The webhook", body = WebhookView)),
)]
pub(crate) async fn webhook_get(State(reg): State<Arc<Registry>>, who: Who, Path(id): Path<String>) -> ApiResult {
    Ok(reply(StatusCode::OK, hook_json(&find(&reg, &who, &id).await?)))
}

#[utoipa::path(
    put,
    path = "/api/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "The webhook's id")),
    request_body(content = HookBody, description = "The fields to change"),
    responses((status = 200, description = "The webhook now", body = WebhookView)),
)]
pub(crate) async fn webhook_update(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let mut h = find(&reg, &who, &id).await?;
    let b: HookBody = json_body(&body)?;
    apply(&reg, &mut h, b).await?;
    let ev = who.actor.event("webhook.update").detail(format!(
        "{} {} events={} enabled={}",
        h.id,
        redact_url(&h.url),
        h.events.join(","),
        h.enabled
    ));
    reg.meta.update_webhook(&h, &ev).await?;
    Ok(reply(StatusCode::OK, hook_json(&h)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "The webhook's id")),
    responses((status = 204, description = "Deleted")),
)]
pub(crate) async fn webhook_delete(State(reg): State<Arc<Registry>>, who: Who, Path(id): Path<String>) -> ApiResult {
    let h = find(&reg, &who, &id).await?;
    let ev = who
        .actor
        .event("webhook.delete")
        .detail(format!("{} {}", h.id, redact_url(&h.url)));
    reg.meta.delete_webhook(&id, &ev).await?;
    Ok(reply(StatusCode::NO_CONTENT, json!(null)))
}

/// `POST …/test`: a `PING` to this hook only.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{id}/test",
    tag = "webhooks",
    params(("id" = String, Path, description = "The webhook's id")),
    responses((status = 202, description = "A `PING` event queued for this hook only", body = EventQueued)),
)]
pub(crate) async fn webhook_test(State(reg): State<Arc<Registry>>, who: Who, Path(id): Path<String>) -> ApiResult {
    let h = find(&reg, &who, &id).await?;
    let scope = h
        .repository
        .clone()
        .unwrap_or_else(|| format!("{}/", h.namespace.clone().unwrap_or_default()));
    let about = About {
        repository: &scope,
        ..About::default()
    };
    let event = reg.event("PING", Some(&who.actor), about, json!({"hook_id": h.id}));
    let event_id = event.id.clone();
    // A request the registry sends on the caller's word is on the trail.
    let ev = who
        .actor
        .event("webhook.test")
        .detail(format!("{} event {event_id}", h.id));
    reg.meta.audit(&[ev]).await?;
    reg.meta.emit(&[event], Some(&h.id)).await?;
    reg.dispatcher.wake.notify_one();
    Ok(reply(StatusCode::ACCEPTED, to_json(&EventQueued { event_id })))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Page {
    /// Older than this event sequence number (the previous page's `next_before`).
    before: Option<i64>,
    /// Deliveries per page: 1 to 500, default 50.
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{id}/deliveries",
    tag = "webhooks",
    params(("id" = String, Path, description = "The webhook's id"), Page),
    responses((status = 200, description = "A page of deliveries, newest first, each with its attempts", body = DeliveryPage)),
)]
pub(crate) async fn webhook_deliveries(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path(id): Path<String>,
    Query(p): Query<Page>,
) -> ApiResult {
    let h = find(&reg, &who, &id).await?;
    let limit = p.limit.unwrap_or(50).clamp(1, 500);
    let list = reg.meta.deliveries(&id, p.before, limit).await?;
    let next = (list.len() as i64 == limit)
        .then(|| list.last().map(|d| d.event_seq))
        .flatten();
    let page = DeliveryPage {
        deliveries: list.iter().map(|d| delivery_view(&h, d)).collect(),
        next_before: next,
    };
    Ok(reply(StatusCode::OK, to_json(&page)))
}

#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver",
    tag = "webhooks",
    params(("id" = String, Path, description = "The webhook's id"), ("delivery" = String, Path, description = "A delivery of the webhook")),
    responses((status = 202, description = "A new delivery of the same event, queued", body = DeliveryQueued)),
)]
pub(crate) async fn webhook_redeliver(
    State(reg): State<Arc<Registry>>,
    who: Who,
    Path((id, delivery)): Path<(String, String)>,
) -> ApiResult {
    find(&reg, &who, &id).await?;
    if reg.meta.delivery_hook(&delivery).await?.as_deref() != Some(id.as_str()) {
        return Err(RegistryError::Absent(format!("no delivery {delivery} of webhook {id}")));
    }
    let ev = who.actor.event("webhook.redeliver").detail(format!("{id} {delivery}"));
    let new = reg
        .meta
        .redeliver(&delivery, &ev)
        .await?
        .ok_or_else(|| RegistryError::Absent(format!("no delivery {delivery}")))?;
    reg.dispatcher.wake.notify_one();
    Ok(reply(
        StatusCode::ACCEPTED,
        to_json(&DeliveryQueued { delivery_id: new }),
    ))
}

//! `GET/PUT /api/v1/vulndb/sources`: where `serve` updates the
//! vulnerability database from. System administrators only: a source is a
//! URL the server fetches.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{json_body, reply, ApiResult, Who};
use crate::access::Need;
use crate::Registry;

/// Where the database is updated from.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct SourcesView {
    /// The source URLs in force.
    sources: Vec<String>,
    /// `api` (set here) or `configuration` (`vulndb_sources`).
    from: String,
    /// The configuration's list.
    configuration: Vec<String>,
    /// Seconds between scheduled updates.
    interval_seconds: u64,
    /// Sources fetched over plain http, and so on.
    warnings: Vec<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/vulndb/sources",
    tag = "scanning",
    responses((status = 200, description = "The update sources in force and where the list comes from", body = SourcesView)),
)]
pub(crate) async fn vulndb_sources_get(State(reg): State<Arc<Registry>>, who: Who) -> ApiResult {
    who.need(&reg, Need::System).await?;
    Ok(reply(StatusCode::OK, reg.vulndb_sources().await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetSources {
    /// The URLs; `null` returns to the configuration's `vulndb_sources`.
    sources: Option<Vec<String>>,
}

#[utoipa::path(
    put,
    path = "/api/v1/vulndb/sources",
    tag = "scanning",
    request_body = SetSources,
    responses((status = 200, description = "The sources now (an update starts at once)", body = SourcesView)),
)]
pub(crate) async fn vulndb_sources_set(
    State(reg): State<Arc<Registry>>,
    who: Who,
    body: axum::body::Bytes,
) -> ApiResult {
    who.need(&reg, Need::System).await?;
    let body: SetSources = json_body(&body)?;
    Ok(reply(
        StatusCode::OK,
        reg.set_vulndb_sources(&who.actor, body.sources).await?,
    ))
}

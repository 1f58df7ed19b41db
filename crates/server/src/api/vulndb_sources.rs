//! `GET/PUT /api/v1/vulndb/sources`: where `serve` updates the
//! vulnerability database from. System administrators only: a source is a
//! URL the server fetches.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::{json_body, reply, ApiResult, Who};
use crate::access::Need;
use crate::Registry;

pub(crate) async fn vulndb_sources_get(State(reg): State<Arc<Registry>>, who: Who) -> ApiResult {
    who.need(&reg, Need::System).await?;
    Ok(reply(StatusCode::OK, reg.vulndb_sources().await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetSources {
    /// The URLs; `null` returns to the configuration's `vulndb_sources`.
    sources: Option<Vec<String>>,
}

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

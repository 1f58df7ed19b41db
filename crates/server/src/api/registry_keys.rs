//! The registry's own attestation keys: published to anyone (they verify
//! what the registry attests), rotated by a system administrator.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::{reply, to_json, ApiResult, Who};
use crate::access::Need;
use crate::Registry;

/// One of the registry's attestation keys.
#[derive(Serialize, ToSchema)]
pub(crate) struct RegistryKeyView {
    /// `sha256:<hex>` of the key's DER SubjectPublicKeyInfo.
    id: String,
    /// The public key, PEM (what `portcullis verify-attestation --key` takes).
    pem: String,
    created_at: i64,
    /// Whether it signs the registry's attestations now (the newest).
    current: bool,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RegistryKeysView {
    /// Oldest first; every key stays, so older attestations still verify.
    keys: Vec<RegistryKeyView>,
}

fn view(keys: Vec<portcullis_meta::RegistryKey>) -> RegistryKeysView {
    let newest = keys.len().saturating_sub(1);
    RegistryKeysView {
        keys: keys
            .into_iter()
            .enumerate()
            .map(|(i, k)| RegistryKeyView {
                id: k.id,
                pem: k.pem,
                created_at: k.created_at,
                current: i == newest,
            })
            .collect(),
    }
}

/// `GET /api/v1/keys/registry`: the public halves of the keys the registry
/// signs its scan attestations with. No credentials needed.
#[utoipa::path(
    get,
    path = "/api/v1/keys/registry",
    tag = "keys",
    responses((status = 200, description = "Every attestation key, oldest first", body = RegistryKeysView)),
)]
pub(crate) async fn registry_keys_get(State(reg): State<Arc<Registry>>) -> ApiResult {
    Ok(reply(StatusCode::OK, to_json(&view(reg.registry_keys().await?))))
}

/// `POST /api/v1/keys/registry`: a new attestation key, which signs from
/// now on. System administrators only.
#[utoipa::path(
    post,
    path = "/api/v1/keys/registry",
    tag = "keys",
    responses((status = 201, description = "Every attestation key, the new one last", body = RegistryKeysView)),
)]
pub(crate) async fn registry_key_rotate(State(reg): State<Arc<Registry>>, who: Who) -> ApiResult {
    who.need(&reg, Need::System).await?;
    reg.rotate_registry_key(who.actor.event("registry_key.rotate")).await?;
    Ok(reply(StatusCode::CREATED, to_json(&view(reg.registry_keys().await?))))
}

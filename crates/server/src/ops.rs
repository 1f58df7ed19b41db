//! Liveness, readiness and metrics endpoints.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::Registry;

pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when the database answers and the blob directory is there.
pub(crate) async fn readyz(State(reg): State<Arc<Registry>>) -> impl IntoResponse {
    if let Err(e) = reg.meta.ping().await {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}\n"));
    }
    if let Err(e) = tokio::fs::metadata(reg.store.root().join("blobs")).await {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("storage: {e}\n"));
    }
    (StatusCode::OK, "ready\n".to_string())
}

pub(crate) async fn metrics(State(reg): State<Arc<Registry>>) -> impl IntoResponse {
    if let Ok(n) = reg.meta.count_uploads().await {
        reg.metrics.set_uploads_in_progress(n);
    }
    if let Ok((depth, oldest)) = reg.meta.delivery_backlog().await {
        reg.metrics.set_webhook_backlog(depth, oldest);
    }
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        reg.metrics.render(),
    )
}

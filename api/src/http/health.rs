//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::problem::Problem;
use super::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
}

/// The process is up.
async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The process can serve: its database answers.
async fn ready(State(state): State<AppState>) -> Result<Json<Value>, Problem> {
    let head = state.store.head_position().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check failed");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "Not ready",
            "the event store is unreachable",
        )
    })?;
    Ok(Json(json!({
        "status": "ready",
        "backend": state.store.backend_name(),
        "head_position": head,
    })))
}

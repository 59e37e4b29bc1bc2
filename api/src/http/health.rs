//! Liveness and readiness.

use axum::extract::State;
use axum::routing::get;
use axum::Json;
use schemars::JsonSchema;
use serde::Serialize;

use super::openapi::{ApiRouter, Operation};
use super::problem::Problem;
use super::AppState;

pub(super) fn router() -> ApiRouter {
    ApiRouter::new()
        .route(
            Operation::get("/health/live")
                .summary("Liveness: the process is up")
                .tag("health")
                .reply::<Live>(200),
            get(live),
        )
        .route(
            Operation::get("/health/ready")
                .summary("Readiness: the event store answers")
                .tag("health")
                .reply::<Ready>(200)
                .problems(&["not_ready"]),
            get(ready),
        )
}

/// The body of `GET /health/live`.
#[derive(Debug, Serialize, JsonSchema)]
struct Live {
    /// Always `ok`.
    status: &'static str,
}

/// The body of `GET /health/ready`.
#[derive(Debug, Serialize, JsonSchema)]
struct Ready {
    /// Always `ready`.
    status: &'static str,
    /// `postgres` or `sqlite`.
    backend: &'static str,
    /// Global position of the newest event.
    head_position: i64,
}

/// The process is up.
async fn live() -> Json<Live> {
    Json(Live { status: "ok" })
}

/// The process can serve: its database answers.
async fn ready(State(state): State<AppState>) -> Result<Json<Ready>, Problem> {
    let head = state.store.head_position().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check failed");
        super::errors::row::NOT_READY.problem("the event store is unreachable")
    })?;
    Ok(Json(Ready {
        status: "ready",
        backend: state.store.backend_name(),
        head_position: head,
    }))
}

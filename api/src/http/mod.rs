//! The HTTP API. [`app`] builds the router from shared state so tests can drive it
//! in-process with `tower::ServiceExt::oneshot`.

mod health;
pub mod problem;

use axum::Router;
use infra::Store;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
}

/// The API's router.
pub fn app(state: AppState) -> Router {
    Router::new().merge(health::router()).with_state(state)
}

//! The HTTP API. [`app`] builds the router from shared state so tests can drive it
//! in-process with `tower::ServiceExt::oneshot`.

pub mod auth;
mod health;
pub mod problem;
pub mod webhooks;

use axum::Router;
use infra::Store;

pub use auth::AdminTokens;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    /// Bearer tokens accepted on `/admin/*`; none configured = the admin API refuses all.
    pub admin_tokens: AdminTokens,
}

impl AppState {
    /// State over `store`, with no admin token.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            admin_tokens: AdminTokens::default(),
        }
    }

    /// Accepts `tokens` on the admin API.
    pub fn with_admin_tokens(mut self, tokens: AdminTokens) -> Self {
        self.admin_tokens = tokens;
        self
    }
}

/// The API's router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(webhooks::router())
        .with_state(state)
}

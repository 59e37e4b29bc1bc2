//! The HTTP API. [`app`] builds the router from shared state so tests can drive it
//! in-process with `tower::ServiceExt::oneshot`.

pub mod auth;
pub mod command;
pub mod errors;
mod health;
pub mod json;
pub mod openapi;
pub mod principal;
pub mod problem;
pub mod webhooks;

use axum::Router;
pub use openapi::{ApiRouter, Operation};
use infra::command::Commands;
use infra::Store;

pub use auth::{AdminTokens, Auth};

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    /// The command layer every command route runs through.
    pub commands: Commands,
    /// Bearer tokens accepted on `/admin/*`; none configured = the admin API refuses all.
    pub admin_tokens: AdminTokens,
    pub auth: Auth,
}

impl AppState {
    /// State over `store`, with no admin token.
    pub fn new(store: Store) -> Self {
        Self {
            commands: Commands::new(store.clone()),
            store,
            admin_tokens: AdminTokens::default(),
            auth: Auth::default(),
        }
    }

    /// Accepts `tokens` on the admin API.
    pub fn with_admin_tokens(mut self, tokens: AdminTokens) -> Self {
        self.auth.admin_tokens = tokens.clone();
        self.admin_tokens = tokens;
        self
    }

    /// Authenticates with `auth` (JWT keys, issuer, audience and admin tokens).
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.admin_tokens = auth.admin_tokens.clone();
        self.auth = auth;
        self
    }
}

/// The API's router.
pub fn app(state: AppState) -> Router {
    app_with(state, crate::routes::router())
}

/// The API's router with `domain` as the domain routes: tests pass their own routes to
/// exercise the platform (idempotency, problems, OpenAPI) without the real ones.
pub fn app_with(state: AppState, domain: ApiRouter) -> Router {
    ApiRouter::new()
        .merge(health::router())
        .merge(webhooks::router())
        .merge(domain)
        .finish()
        .with_state(state)
}

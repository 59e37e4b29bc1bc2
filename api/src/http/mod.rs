//! The HTTP API. [`app`] builds the router from shared state so tests can drive it
//! in-process with `tower::ServiceExt::oneshot`.

pub mod auth;
pub mod command;
pub mod errors;
mod health;
pub mod idempotency;
pub mod json;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod principal;
pub mod problem;
pub mod server;
pub mod webhooks;

use axum::Router;
use infra::command::Commands;
use infra::Store;
pub use openapi::{ApiRouter, Operation};

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
    /// Rate, body, time and concurrency limits (see [`limits`]).
    pub limits: limits::Limits,
    /// Who may read `/metrics`.
    pub metrics: metrics::MetricsConfig,
    /// How `Idempotency-Key` responses are kept (retention, default 24 h).
    pub idempotency: idempotency::Idempotency,
    /// The search index the search routes query (embedded unless Meilisearch is configured).
    pub search: infra::search::Search,
    /// The live positions of the SQL projections this process runs, which queries wait
    /// on for read-your-writes; `None` (no runner here) makes them poll
    /// `projection_checkpoints` instead.
    pub projections: Option<infra::projection::ProjectionsHandle>,
    /// How long a query waits for its view to reach the position the caller asked for
    /// before answering `504 view_behind` (default 2 s).
    pub consistency_wait: std::time::Duration,
    /// Keys sealing webhook signing secrets at rest; none = stored in clear.
    pub webhook_secret_keys: infra::webhook::SecretKeys,
    /// The saga and secrets the provider callback routes use; none = refused (503).
    pub callbacks: crate::routes::callbacks::Callbacks,
}

impl AppState {
    /// State over `store`, with no admin token.
    pub fn new(store: Store) -> Self {
        Self {
            commands: Commands::new(store.clone()),
            search: std::sync::Arc::new(infra::search::SqlIndex::new(store.clone())),
            store,
            admin_tokens: AdminTokens::default(),
            auth: Auth::default(),
            limits: limits::Limits::default(),
            metrics: metrics::MetricsConfig::default(),
            idempotency: idempotency::Idempotency::default(),
            projections: None,
            consistency_wait: std::time::Duration::from_secs(2),
            webhook_secret_keys: infra::webhook::SecretKeys::default(),
            callbacks: crate::routes::callbacks::Callbacks::default(),
        }
    }

    /// Provider callbacks reach `callbacks`' saga.
    pub fn with_callbacks(mut self, callbacks: crate::routes::callbacks::Callbacks) -> Self {
        self.callbacks = callbacks;
        self
    }

    /// Webhook signing secrets are stored sealed with `keys`.
    pub fn with_webhook_secret_keys(mut self, keys: infra::webhook::SecretKeys) -> Self {
        self.webhook_secret_keys = keys;
        self
    }

    /// Queries wait on `projections` (this process's runner) for read-your-writes.
    pub fn with_projections(mut self, projections: infra::projection::ProjectionsHandle) -> Self {
        self.projections = Some(projections);
        self
    }

    /// Queries wait at most `wait` for their view to reach a requested position.
    pub fn with_consistency_wait(mut self, wait: std::time::Duration) -> Self {
        self.consistency_wait = wait;
        self
    }

    /// Answers search routes from `search` (Meilisearch) instead of the embedded index.
    pub fn with_search(mut self, search: infra::search::Search) -> Self {
        self.search = search;
        self
    }

    /// Honours `Idempotency-Key`s for `retention` (default 24 h).
    pub fn with_idempotency_retention(mut self, retention: std::time::Duration) -> Self {
        self.idempotency = idempotency::Idempotency::new(retention);
        self
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

    /// Applies `limits` (rates, body size, timeout, concurrency).
    pub fn with_limits(mut self, limits: limits::Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets who may read `/metrics`.
    pub fn with_metrics(mut self, metrics: metrics::MetricsConfig) -> Self {
        self.metrics = metrics;
        self
    }

    /// HS256 tokens signed with `secret` and no rate limits: `commerce bench http`
    /// drives thousands of requests per second from one address.
    pub fn for_benchmarks(self, secret: &[u8]) -> Self {
        self.with_auth(Auth::default().with_hs256_secret(secret))
            .with_limits(limits::Limits::without_rate_limits())
    }
}

/// The API's router.
pub fn app(state: AppState) -> Router {
    app_with(state, crate::routes::router())
}

/// The API's router with `domain` as the domain routes: tests pass their own routes to
/// exercise the platform (idempotency, problems, OpenAPI) without the real ones.
pub fn app_with(state: AppState, domain: ApiRouter) -> Router {
    let idempotent = axum::middleware::from_fn_with_state(state.clone(), idempotency::layer);
    ApiRouter::new()
        .merge(health::router())
        .merge(webhooks::router())
        .merge(metrics::router())
        .merge(domain.map_router(|r| r.layer(idempotent)))
        .finish()
        // Innermost first: the body limit extractors read, requests in flight, size and
        // time guard, rate limits (which authenticate once for the whole request), the
        // 401 challenge header, metrics, and the request's tracing span.
        .layer(axum::extract::DefaultBodyLimit::max(
            state.limits.max_body_bytes,
        ))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            state.limits.max_concurrent_requests.max(1),
        ))
        .layer(axum::middleware::from_fn_with_state(
            std::sync::Arc::new(state.limits.clone()),
            limits::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            limits::LimitState {
                app: state.clone(),
                limiters: std::sync::Arc::new(limits::RateLimiters::new(&state.limits)),
            },
            limits::rate_limit,
        ))
        .layer(axum::middleware::from_fn(auth::challenge))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(crate::telemetry::request_span::<axum::body::Body>),
        )
        // Fills `instance` and `trace_id` of every problem answered inside.
        .layer(axum::middleware::from_fn(problem::problem_context))
        .with_state(state)
        // Outermost, so every layer inside sees the request id it derives the
        // correlation id from.
        .layer(axum::middleware::from_fn(crate::telemetry::request_id))
}

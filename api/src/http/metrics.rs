//! Prometheus metrics: `GET /metrics` renders every metric recorded through the
//! `metrics` facade in this process, in the Prometheus text format.
//!
//! | metric | kind | labels | recorded by |
//! |---|---|---|---|
//! | `http_requests_total` | counter | `method`, `route`, `status` | [`track`] |
//! | `http_request_duration_seconds` | histogram | `method`, `route` | [`track`] |
//! | `commerce_idempotent_replays_total` | counter | | [`track`] (`Idempotent-Replayed: true`) |
//! | `commerce_commands_total` | counter | `aggregate`, `outcome` | the command layer |
//! | `commerce_command_conflicts_total` | counter | | the command layer |
//! | `commerce_command_replays_total` | counter | | the command layer |
//! | `commerce_relay_lag_events` | gauge | | `serve` (head − relay checkpoint) |
//! | `commerce_consumer_lag_events` | gauge | `consumer` | `serve` (head − consumer position) |
//! | `commerce_dead_letters_open` | gauge | `consumer` | `serve` (dead letters not resolved or discarded) |
//!
//! `route` is the matched route template (`/carts/{cart_id}`), never the raw path, so
//! the label set stays bounded; unmatched requests count as `unmatched`.
//!
//! Prometheus scrapers are unauthenticated by convention, so `/metrics` is public by
//! default; with `--metrics-public=false` it needs a staff or admin token.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::openapi::{ApiRouter, Operation};
use super::principal::Staff;
use super::AppState;

/// Latency buckets in seconds: from sub-millisecond reads to the request timeout.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Who may read `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Whether `/metrics` answers without a token (the Prometheus convention).
    pub public: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { public: true }
    }
}

/// The process's Prometheus recorder, installed on first use. The `metrics` facade has
/// one global recorder per process, so every router (and every test server) of the
/// process shares it.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("http_request_duration_seconds".into()),
                LATENCY_BUCKETS,
            )
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            // Another recorder was installed first (an embedding program's); this handle
            // then renders only what reaches it, which is nothing.
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        handle
    })
}

/// Counts and times every request by method, matched route and status.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(
        "http_request_duration_seconds",
        "method" => method.clone(),
        "route" => route.clone(),
    )
    .record(started.elapsed().as_secs_f64());
    metrics::counter!(
        "http_requests_total",
        "method" => method,
        "route" => route,
        "status" => status,
    )
    .increment(1);
    if is_replay(response.headers()) {
        metrics::counter!("commerce_idempotent_replays_total").increment(1);
    }
    response
}

fn is_replay(headers: &HeaderMap) -> bool {
    headers
        .get("idempotent-replayed")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// `GET /metrics`. Installs the recorder, so that what is recorded from then on is kept.
pub fn router() -> ApiRouter {
    prometheus();
    ApiRouter::new().route(
        Operation::get("/metrics")
            .summary("Prometheus metrics")
            .description(
                "Every metric of the process in the Prometheus text format \
                 (`text/plain; version=0.0.4`). Public unless the server runs with \
                 `--metrics-public=false`, then staff or admin only.",
            )
            .tag("ops")
            .reply::<String>(200),
        axum::routing::get(render),
    )
}

async fn render(State(state): State<AppState>, request: Request) -> Response {
    if !state.metrics.public {
        let (mut parts, _) = request.into_parts();
        if let Err(problem) =
            <Staff as axum::extract::FromRequestParts<AppState>>::from_request_parts(
                &mut parts, &state,
            )
            .await
        {
            return problem.into_response();
        }
    }
    let body = prometheus().render();
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_are_recognised_by_their_header() {
        let mut headers = HeaderMap::new();
        assert!(!is_replay(&headers));
        headers.insert("idempotent-replayed", "true".parse().unwrap());
        assert!(is_replay(&headers));
        headers.insert("idempotent-replayed", "false".parse().unwrap());
        assert!(!is_replay(&headers));
    }

    #[test]
    fn the_recorder_renders_what_is_recorded() {
        let handle = prometheus();
        metrics::counter!("commerce_metrics_selftest_total").increment(3);
        let text = handle.render();
        assert!(
            text.contains("commerce_metrics_selftest_total 3"),
            "rendered: {text}"
        );
    }
}

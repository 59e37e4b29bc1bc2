//! Logging: `tracing` with an env-filter directive and plain or JSON output.

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber. `filter` uses `RUST_LOG` syntax (`info,sqlx=warn`).
pub fn init(filter: &str, format: LogFormat) -> Result<(), String> {
    let filter =
        EnvFilter::try_new(filter).map_err(|e| format!("invalid log filter `{filter}`: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| format!("cannot install the logger: {e}"))
}

/// The header that names a request, echoed on every response.
pub const REQUEST_ID: &str = "x-request-id";

/// Gives every request an `X-Request-Id` (a new UUID v7 when the client sent neither
/// one nor a `traceparent`) and echoes it on the response, so that the correlation id
/// derived from the headers ([`crate::http::command::correlation_id`]) is the same for
/// the request's span, its logs and the events it appends. With a `traceparent` and no
/// `X-Request-Id`, the echoed id is the trace id.
pub async fn request_id(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::HeaderValue;
    let headers = request.headers();
    let given = headers
        .get(REQUEST_ID)
        .filter(|v| !v.as_bytes().is_empty() && v.len() <= 200)
        .cloned();
    let echoed = match given {
        Some(id) => id,
        None => {
            let id = if headers.contains_key("traceparent") {
                crate::http::command::correlation_id(headers)
            } else {
                uuid::Uuid::now_v7()
            };
            let value = HeaderValue::from_str(&id.to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("invalid"));
            if !request.headers().contains_key("traceparent") {
                request.headers_mut().insert(REQUEST_ID, value.clone());
            }
            value
        }
    };
    let mut response = next.run(request).await;
    response.headers_mut().insert(REQUEST_ID, echoed);
    response
}

/// The span of one HTTP request: every log line written while handling it carries the
/// correlation id (the one stored on the events it appends), the method and the matched
/// route.
pub fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |p| p.as_str());
    tracing::info_span!(
        "request",
        correlation_id = %crate::http::command::correlation_id(request.headers()),
        method = %request.method(),
        route,
    )
}

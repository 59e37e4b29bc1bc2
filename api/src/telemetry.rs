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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    use super::*;

    /// A log sink the test can read.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn router() -> Router {
        Router::new()
            .route(
                "/orders/{id}",
                get(|| async {
                    tracing::info!("handling the request");
                    "ok"
                }),
            )
            .layer(
                tower_http::trace::TraceLayer::new_for_http()
                    .make_span_with(request_span::<axum::body::Body>),
            )
            .layer(axum::middleware::from_fn(request_id))
    }

    #[tokio::test]
    async fn every_log_line_of_a_request_carries_its_correlation_id() {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || sink.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let id = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
        let response = router()
            .oneshot(
                Request::get("/orders/42")
                    .header(REQUEST_ID, id)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.headers()[REQUEST_ID], id);
        let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let line = logs
            .lines()
            .find(|l| l.contains("handling the request"))
            .unwrap_or_else(|| panic!("no handler log line in {logs:?}"));
        assert!(line.contains(&format!("correlation_id={id}")), "{line}");
        assert!(
            line.contains("route=\"/orders/{id}\"") || line.contains("route=/orders/{id}"),
            "{line}"
        );
        assert!(line.contains("method=GET"), "{line}");
    }

    #[tokio::test]
    async fn a_request_without_an_id_is_given_a_new_one() {
        let response = router()
            .oneshot(Request::get("/orders/1").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let id = response.headers()[REQUEST_ID].to_str().unwrap();
        assert!(uuid::Uuid::try_parse(id).is_ok(), "{id}");
    }
}

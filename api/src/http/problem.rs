//! RFC 9457 problem details: every error the API returns is `application/problem+json`
//! with a stable machine-readable `code` (see the table in [`errors`](super::errors)).
//!
//! A handler answers a [`Problem`] without knowing the request; the [`problem_context`]
//! middleware fills `instance` (the request path) and `trace_id` (the request's
//! correlation id) on the way out, and logs internal errors with that trace id.

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, ETAG, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use uuid::Uuid;

/// The media type of every problem response.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem response. Kept small (it is the error type of every extractor and
/// handler): what only some problems carry is boxed.
#[derive(Debug, Clone)]
pub struct Problem {
    pub title: &'static str,
    pub status: StatusCode,
    pub detail: String,
    /// Stable code clients can branch on.
    pub code: &'static str,
    /// With `version_mismatch`: the stream's version now (also sent as `ETag`).
    pub current_version: Option<i64>,
    /// Seconds to wait before retrying, sent as `Retry-After`.
    pub retry_after: Option<u32>,
    context: Option<Box<Context>>,
}

/// The request details and hidden cause of a problem.
#[derive(Debug, Clone, Default)]
struct Context {
    instance: Option<String>,
    trace_id: Option<String>,
    internal: Option<String>,
}

/// The problem as sent.
#[derive(Serialize)]
struct Wire<'a> {
    #[serde(rename = "type")]
    type_uri: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_version: Option<i64>,
}

impl Serialize for Problem {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Wire {
            type_uri: format!("https://commerce.invalid/problems/{}", self.code),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
            instance: self.instance(),
            trace_id: self.trace_id(),
            current_version: self.current_version,
        }
        .serialize(serializer)
    }
}

impl Problem {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        debug_assert!(
            super::errors::row(code).is_some_and(|row| row.status == status.as_u16()),
            "problem `{code}` with status {status} is not a row of the problem table"
        );
        Self {
            title,
            status,
            detail: detail.into(),
            code,
            current_version: None,
            retry_after: None,
            context: None,
        }
    }

    /// Adds the stream's current version (412 answers).
    pub fn with_current_version(mut self, version: i64) -> Self {
        self.current_version = Some(version);
        self
    }

    /// Adds `Retry-After: <seconds>`.
    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Records the hidden cause of an internal error, for the log only.
    pub fn with_internal(mut self, cause: impl Into<String>) -> Self {
        self.context_mut().internal = Some(cause.into());
        self
    }

    /// The request path, once the middleware has seen the problem.
    pub fn instance(&self) -> Option<&str> {
        self.context.as_ref()?.instance.as_deref()
    }

    /// The request's correlation id, once the middleware has seen the problem.
    pub fn trace_id(&self) -> Option<&str> {
        self.context.as_ref()?.trace_id.as_deref()
    }

    /// The hidden cause of an internal error.
    pub fn internal(&self) -> Option<&str> {
        self.context.as_ref()?.internal.as_deref()
    }

    fn context_mut(&mut self) -> &mut Context {
        self.context.get_or_insert_with(Box::default)
    }

    fn body(&self) -> Vec<u8> {
        // A struct of strings and integers always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
            self.body(),
        )
            .into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(version) = self.current_version {
            if let Ok(etag) = HeaderValue::from_str(&format!("\"{version}\"")) {
                headers.insert(ETAG, etag);
            }
        }
        // The middleware finds the problem here to fill in the request's details.
        response.extensions_mut().insert(self);
        response
    }
}

/// What the API knows of the request a problem answers. Inserted by
/// [`problem_context`] (unless an outer layer put one there first); command metadata
/// takes its correlation id from here so that a problem's `trace_id` and the events'
/// correlation id agree.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub correlation_id: Uuid,
    pub path: String,
}

/// Middleware: puts a [`RequestContext`] in the request, and on a problem response sets
/// `instance` and `trace_id` and logs an internal error's cause with its trace id.
pub async fn problem_context(mut request: Request, next: Next) -> Response {
    let context = match request.extensions().get::<RequestContext>() {
        Some(context) => context.clone(),
        None => {
            let context = RequestContext {
                correlation_id: super::command::correlation_id(request.headers()),
                path: request.uri().path().to_owned(),
            };
            request.extensions_mut().insert(context.clone());
            context
        }
    };
    let mut response = next.run(request).await;
    let mut problem = match response.extensions_mut().remove::<Problem>() {
        Some(problem) => problem,
        None if is_stray_error(&response) => stray_problem(&mut response).await,
        None => return response,
    };
    let details = problem.context_mut();
    details.instance.get_or_insert_with(|| context.path.clone());
    details
        .trace_id
        .get_or_insert_with(|| context.correlation_id.to_string());
    if problem.status.is_server_error() {
        tracing::error!(
            trace_id = %context.correlation_id,
            path = %context.path,
            code = problem.code,
            cause = problem.internal().unwrap_or("-"),
            "request failed"
        );
    }
    let headers = response.headers_mut();
    headers.remove(CONTENT_LENGTH);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    *response.body_mut() = Body::from(problem.body());
    response
}

/// An error answered by something other than a [`Problem`] (axum's own rejections, a
/// bare status from a handler or layer).
fn is_stray_error(response: &Response) -> bool {
    let status = response.status();
    (status.is_client_error() || status.is_server_error())
        && response
            .headers()
            .get(CONTENT_TYPE)
            .is_none_or(|t| t.as_bytes() != PROBLEM_JSON.as_bytes())
}

/// The problem standing in for a stray error response; its status becomes the row's.
async fn stray_problem(response: &mut Response) -> Problem {
    /// Error texts longer than this are cut: they only explain a rejection.
    const MAX_TEXT: usize = 4096;
    let body = std::mem::take(response.body_mut());
    let text = axum::body::to_bytes(body, MAX_TEXT)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let original = response.status();
    let row = super::errors::stray_row(original, &text);
    *response.status_mut() = StatusCode::from_u16(row.status).unwrap_or(original);
    if row.status >= 500 {
        row.problem("the request could not be completed")
            .with_internal(format!("{original}: {text}"))
    } else if text.trim().is_empty() {
        row.problem(row.title)
    } else {
        row.problem(text.chars().take(300).collect::<String>())
    }
}

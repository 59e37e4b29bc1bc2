//! What every command route shares: the request's command metadata (principal,
//! `Idempotency-Key`, `If-Match`, correlation id) and the reply
//! `{stream, version, position}` with `ETag: "<version>"`.

use axum::extract::FromRequestParts;
use axum::http::header::{ETAG, IF_MATCH};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use infra::command::{CommandContext, Executed};
use infra::EventMetadata;
use schemars::JsonSchema;
use serde::Serialize;
use uuid::Uuid;

use super::principal::{Caller, Principal};
use super::problem::{Problem, RequestContext};
use super::AppState;

/// Longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The command metadata of a request. Requires an authenticated caller.
#[derive(Debug, Clone)]
pub struct CommandMeta {
    pub principal: Principal,
    pub idempotency_key: Option<String>,
    /// `If-Match: "<version>"`.
    pub if_match: Option<i64>,
    pub correlation_id: Uuid,
    /// Trace context and request id, stored on every event.
    pub extra: EventMetadata,
}

impl CommandMeta {
    /// The command context: command id derived from the caller and `Idempotency-Key`
    /// (fresh without one), owner scope for customers, expected version from `If-Match`.
    pub fn context(&self) -> CommandContext {
        let mut ctx = CommandContext::new(self.principal.actor())
            .with_correlation_id(self.correlation_id)
            .expecting(self.if_match);
        if let Some(key) = &self.idempotency_key {
            ctx = ctx.with_command_id(CommandContext::derived_id(&self.principal.actor(), key));
        }
        if let Some(customer) = self.principal.customer_id() {
            ctx = ctx.owned_by(customer);
        }
        ctx.extra = self.extra.clone();
        ctx
    }

    /// Like [`CommandMeta::context`], for the `n`-th of several commands one request
    /// runs (each needs its own command id under one key).
    pub fn context_for(&self, step: &str) -> CommandContext {
        let mut ctx = self.context();
        if let Some(key) = &self.idempotency_key {
            ctx.command_id =
                CommandContext::derived_id(&self.principal.actor(), &format!("{key}/{step}"));
        }
        ctx
    }
}

/// Parses the `If-Match` header: `"3"`, `W/"3"` or `3`.
pub fn parse_if_match(headers: &HeaderMap) -> Result<Option<i64>, Problem> {
    let Some(value) = headers.get(IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    let text = text.strip_prefix("W/").unwrap_or(text);
    let text = text.trim_matches('"');
    text.parse::<i64>()
        .ok()
        .filter(|v| *v >= 0)
        .map(Some)
        .ok_or_else(|| {
            super::errors::row::INVALID_IF_MATCH
                .problem("If-Match must be a stream version in quotes, e.g. \"3\"")
        })
}

/// Parses `Idempotency-Key`: 1 to 255 visible ASCII characters.
pub fn parse_idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default().trim();
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(super::errors::row::INVALID_IDEMPOTENCY_KEY.problem(format!(
            "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
        )));
    }
    Ok(Some(key.to_string()))
}

/// The correlation id of a request: the trace id of a W3C `traceparent`, else an
/// `X-Request-Id` (a UUID as is, anything else hashed into one), else a new id.
pub fn correlation_id(headers: &HeaderMap) -> Uuid {
    if let Some(trace_id) = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split('-').nth(1))
        .filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|t| Uuid::try_parse(t).ok())
        .filter(|u| !u.is_nil())
    {
        return trace_id;
    }
    if let Some(request_id) = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 200)
    {
        return Uuid::try_parse(request_id)
            .unwrap_or_else(|_| Uuid::new_v5(&Uuid::NAMESPACE_OID, request_id.as_bytes()));
    }
    Uuid::now_v7()
}

impl FromRequestParts<AppState> for CommandMeta {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let Caller(principal) = Caller::from_request_parts(parts, state).await?;
        let headers = &parts.headers;
        let mut extra = EventMetadata::new();
        if let Some(tp) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
            extra.insert("traceparent".into(), tp.chars().take(128).collect());
        }
        let idempotency_key = parse_idempotency_key(headers)?;
        if let Some(key) = &idempotency_key {
            extra.insert("idempotency_key".into(), key.clone());
        }
        Ok(Self {
            if_match: parse_if_match(headers)?,
            // The id problem answers carry as `trace_id`, when the middleware set one.
            correlation_id: parts
                .extensions
                .get::<RequestContext>()
                .map_or_else(|| correlation_id(headers), |c| c.correlation_id),
            idempotency_key,
            principal,
            extra,
        })
    }
}

/// The body of every command reply.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CommandReplyBody {
    /// `<aggregate>/<id>`, e.g. `cart/0193…`.
    pub stream: String,
    /// The stream's version after the command; send it back as `If-Match`.
    pub version: i64,
    /// Global position of the command's last event: pass it as `min_position` to a
    /// query to read your own write.
    pub position: i64,
}

/// A command's reply: `201 Created` or `200 OK`, the body, and `ETag: "<version>"`.
#[derive(Debug, Clone)]
pub struct CommandReply {
    pub status: StatusCode,
    pub body: CommandReplyBody,
}

impl CommandReply {
    /// `201 Created`: the command began a stream.
    pub fn created<E>(done: &Executed<E>) -> Self {
        Self::with_status(StatusCode::CREATED, done)
    }

    /// `200 OK`: the command changed an existing stream.
    pub fn ok<E>(done: &Executed<E>) -> Self {
        Self::with_status(StatusCode::OK, done)
    }

    fn with_status<E>(status: StatusCode, done: &Executed<E>) -> Self {
        Self {
            status,
            body: CommandReplyBody {
                stream: done.stream.to_string(),
                version: done.version,
                position: done.position,
            },
        }
    }
}

impl IntoResponse for CommandReply {
    fn into_response(self) -> Response {
        let etag = HeaderValue::from_str(&format!("\"{}\"", self.body.version))
            .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
        (self.status, [(ETAG, etag)], Json(self.body)).into_response()
    }
}

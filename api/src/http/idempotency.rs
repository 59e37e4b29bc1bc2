//! `Idempotency-Key` on every POST, PUT, PATCH and DELETE of the domain routes.
//!
//! The first response to a key is kept (table `http_idempotency`, scoped by the caller's
//! actor) when it is a success; a retry with the same key and the same request (method,
//! path and query, body) gets that response again byte for byte, with
//! `Idempotent-Replayed: true`; the same key with another request is `422
//! idempotency_key_reused`. Failures are not kept: a retry runs again.
//!
//! Concurrent requests with one key are serialised inside a process, so the later ones
//! replay the first one's response; across processes, the command layer makes them
//! harmless, because it derives the command id from the caller and the key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_TYPE, ETAG, LOCATION};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SubsecRound, Utc};
use infra::{on_db, Store};
use sha2::{Digest, Sha256};

use super::command::parse_idempotency_key;
use super::errors::row;
use super::principal::Principal;
use super::AppState;

/// The header that marks a replayed response.
pub const REPLAYED: &str = "idempotent-replayed";

/// The response headers kept with a response and replayed.
const KEPT_HEADERS: [HeaderName; 3] = [CONTENT_TYPE, ETAG, LOCATION];

/// Requests of this process holding a key, by (scope, key).
type InFlight = Arc<Mutex<HashMap<(String, String), Arc<tokio::sync::Mutex<()>>>>>;

/// How idempotency keys are kept.
#[derive(Debug, Clone)]
pub struct Idempotency {
    /// How long a key is honoured; older ones are ignored and pruned.
    pub retention: Duration,
    in_flight: InFlight,
}

impl Default for Idempotency {
    fn default() -> Self {
        Self::new(Self::DEFAULT_RETENTION)
    }
}

impl Idempotency {
    /// Keys are honoured for a day unless configured otherwise.
    pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

    /// Keys honoured for `retention`.
    pub fn new(retention: Duration) -> Self {
        Self {
            retention,
            in_flight: Arc::default(),
        }
    }

    /// Waits until no other request of this process holds `(scope, key)`, then holds it
    /// until the returned guard is dropped.
    async fn hold(&self, scope: &str, key: &str) -> Held {
        let id = (scope.to_owned(), key.to_owned());
        let lock = {
            let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(id.clone()).or_default().clone()
        };
        let guard = lock.clone().lock_owned().await;
        Held {
            guard: Some(guard),
            lock: Some(lock),
            id,
            map: self.in_flight.clone(),
        }
    }
}

/// A held key; dropping it frees the key and forgets it when nobody else waits.
struct Held {
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    lock: Option<Arc<tokio::sync::Mutex<()>>>,
    id: (String, String),
    map: InFlight,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.guard.take();
        self.lock.take();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        // Waiters clone the entry under this same map lock, so a count of one (the map's
        // own) means nobody waits and the entry can go.
        if map.get(&self.id).is_some_and(|l| Arc::strong_count(l) == 1) {
            map.remove(&self.id);
        }
    }
}

/// A kept response.
struct Kept {
    request_hash: Vec<u8>,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// SHA-256 over method, path and query, and body, each length-prefixed so that no two
/// different requests share an input.
fn request_hash(method: &Method, path_and_query: &str, body: &[u8]) -> Vec<u8> {
    let mut hash = Sha256::new();
    for part in [method.as_str().as_bytes(), path_and_query.as_bytes(), body] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().to_vec()
}

fn now(store: &Store) -> DateTime<Utc> {
    // Both databases keep microseconds; truncating keeps comparisons exact.
    store.clock().now().trunc_subsecs(6)
}

fn cutoff(store: &Store, retention: Duration) -> DateTime<Utc> {
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    now(store)
        .checked_sub_signed(retention)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

async fn find(
    store: &Store,
    scope: &str,
    key: &str,
    retention: Duration,
) -> Result<Option<Kept>, sqlx::Error> {
    let since = cutoff(store, retention);
    let row: Option<(Vec<u8>, i32, String, Vec<u8>)> = on_db!(store.db_read(), pool => {
        sqlx::query_as(
            "SELECT request_hash, status, headers, body FROM http_idempotency \
             WHERE scope = $1 AND key = $2 AND created_at >= $3",
        )
        .bind(scope)
        .bind(key)
        .bind(since)
        .fetch_optional(pool)
        .await?
    });
    Ok(row.map(|(request_hash, status, headers, body)| Kept {
        request_hash,
        status: u16::try_from(status).unwrap_or(500),
        // Written by `keep` below from a list of pairs; unreadable = no headers.
        headers: serde_json::from_str(&headers).unwrap_or_default(),
        body,
    }))
}

async fn keep(
    store: &Store,
    scope: &str,
    key: &str,
    kept: &Kept,
    retention: Duration,
) -> Result<(), sqlx::Error> {
    let headers = serde_json::to_string(&kept.headers).unwrap_or_else(|_| "[]".into());
    let created_at = now(store);
    let expired_before = cutoff(store, retention);
    // A live row for the key stays (the first response wins); an expired one is taken
    // over by the new response.
    on_db!(store.db(), pool => {
        sqlx::query(
            "INSERT INTO http_idempotency \
             (scope, key, request_hash, status, headers, body, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (scope, key) DO UPDATE SET request_hash = excluded.request_hash, \
             status = excluded.status, headers = excluded.headers, body = excluded.body, \
             created_at = excluded.created_at \
             WHERE http_idempotency.created_at < $8",
        )
        .bind(scope)
        .bind(key)
        .bind(&kept.request_hash)
        .bind(i32::from(kept.status))
        .bind(headers)
        .bind(&kept.body)
        .bind(created_at)
        .bind(expired_before)
        .execute(pool)
        .await?;
    });
    Ok(())
}

/// Deletes the kept responses created more than `older_than` ago (by the store's
/// clock). Returns how many were deleted.
pub async fn prune(store: &Store, older_than: Duration) -> Result<u64, sqlx::Error> {
    let before = cutoff(store, older_than);
    let deleted = on_db!(store.db(), pool => {
        sqlx::query("DELETE FROM http_idempotency WHERE created_at < $1")
            .bind(before)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(deleted)
}

fn replay(kept: Kept) -> Response {
    let mut response = Response::new(Body::from(kept.body));
    *response.status_mut() = StatusCode::from_u16(kept.status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    for (name, value) in kept.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            headers.insert(name, value);
        }
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

fn internal(cause: impl std::fmt::Display) -> Response {
    row::INTERNAL_ERROR
        .problem("the request could not be completed")
        .with_internal(format!("idempotency: {cause}"))
        .into_response()
}

/// Middleware for the domain routes (`axum::middleware::from_fn_with_state`).
///
/// Requests without a key, reads, and unauthenticated requests pass through untouched
/// (the handler refuses the latter).
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let unsafe_method = matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if !unsafe_method {
        return next.run(request).await;
    }
    let key = match parse_idempotency_key(request.headers()) {
        Ok(Some(key)) => key,
        Ok(None) => return next.run(request).await,
        Err(problem) => return problem.into_response(),
    };
    // An outer layer may have authenticated the request already.
    let principal = match request.extensions().get::<Principal>() {
        Some(principal) => principal.clone(),
        None => match state.auth.authenticate(request.headers()) {
            Ok(principal) => principal,
            Err(_) => return next.run(request).await,
        },
    };
    let scope = principal.actor();

    // The body is hashed before the handler reads it, under the same limit.
    let limit = state.limits.max_body_bytes;
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, limit).await else {
        return row::PAYLOAD_TOO_LARGE
            .problem(format!("the request body exceeds {limit} bytes"))
            .into_response();
    };
    let path_and_query = parts.uri.path_and_query().map_or("", |p| p.as_str());
    let hash = request_hash(&parts.method, path_and_query, &body);

    let store = &state.store;
    let retention = state.idempotency.retention;
    let _held = state.idempotency.hold(&scope, &key).await;
    match find(store, &scope, &key, retention).await {
        // Counted by the metrics layer from the `Idempotent-Replayed` header.
        Ok(Some(kept)) if kept.request_hash == hash => return replay(kept),
        Ok(Some(_)) => {
            return row::IDEMPOTENCY_KEY_REUSED
                .problem("this Idempotency-Key was used for another request; use a new key")
                .into_response();
        }
        Ok(None) => {}
        Err(e) => return internal(e),
    }

    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    if !response.status().is_success() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let body: Bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(e) => return internal(e),
    };
    let kept = Kept {
        request_hash: hash,
        status: parts.status.as_u16(),
        headers: KEPT_HEADERS
            .iter()
            .filter_map(|name| {
                let value = parts.headers.get(name)?.to_str().ok()?;
                Some((name.as_str().to_owned(), value.to_owned()))
            })
            .collect(),
        body: body.to_vec(),
    };
    if let Err(e) = keep(store, &scope, &key, &kept, retention).await {
        // The command ran; losing the record only means a retry runs it again, which
        // the command layer dedupes by command id.
        tracing::warn!(error = %e, "could not keep the idempotent response");
    }
    Response::from_parts(parts, Body::from(body))
}

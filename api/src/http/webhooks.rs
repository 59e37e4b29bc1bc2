//! The webhook admin API under `/admin/webhooks` (admin token required; see
//! [`auth`](super::auth)). Thin: each route validates its input shape and calls
//! [`infra::webhook::admin`].
//!
//! | route | does |
//! |---|---|
//! | `POST /admin/webhooks` | create; the response carries the secret, the only time it is shown |
//! | `GET /admin/webhooks` | list |
//! | `GET /admin/webhooks/{id}` | one subscription |
//! | `PATCH /admin/webhooks/{id}` | change url, event types, description, secret, `enabled` |
//! | `DELETE /admin/webhooks/{id}` | delete, with its deliveries |
//! | `GET /admin/webhooks/{id}/deliveries` | delivery log, newest first (`status`, `limit`, `before_position`, `before_generation`) |
//! | `GET /admin/webhooks/{id}/deliveries/{delivery_id}` | one delivery with its attempts |
//! | `POST /admin/webhooks/{id}/deliveries/{delivery_id}/redeliver` | send again now |
//! | `POST /admin/webhooks/{id}/replay` | `{ "from_position": N }`: start a job enqueueing every matching event after N; `202` with the job and its `Location` |
//! | `GET /admin/webhooks/{id}/replays` | the subscription's replay jobs, newest first |
//! | `GET /admin/webhooks/{id}/replays/{replay_id}` | one replay job: status, range, progress, deliveries enqueued |
//!
//! Errors are problem+json with the codes `unauthenticated`, `forbidden`,
//! `invalid_webhook`, `invalid_request`, `webhook_not_found`, `delivery_not_found`,
//! `replay_not_found`,
//! `unsupported_media_type`, `payload_too_large` and `internal_error`.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::Json;
use infra::webhook::admin::{self, DeliveryQuery, NewSubscription, SubscriptionUpdate};
use infra::webhook::replay;
use infra::webhook::WebhookError;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::auth::Admin;
use super::openapi::{ApiRouter, Operation};
use super::principal::Role;
use super::problem::Problem;
use super::AppState;

/// Largest request body the admin routes read.
pub const MAX_BODY: usize = 64 * 1024;

pub(super) fn router() -> ApiRouter {
    // The infra webhook types carry no JSON Schema derive yet, so bodies and replies
    // are documented as free-form JSON; the table in the module docs is the contract.
    let op = |op: Operation, summary: &'static str| {
        op.summary(summary)
            .tag("webhooks")
            .roles(&[Role::Admin])
            .path_param("id", "The subscription id (UUID).")
            .path_param("delivery_id", "The delivery id (UUID).")
    };
    ApiRouter::new()
        .route(
            op(Operation::post("/admin/webhooks"), "Create a subscription")
                .body::<Value>()
                .reply::<Value>(201)
                .problems(&["invalid_webhook"]),
            post(create),
        )
        .route(
            op(Operation::get("/admin/webhooks"), "List subscriptions")
                .reply::<Value>(200)
                .problems(&["invalid_request"]),
            get(list),
        )
        .route(
            op(Operation::get("/admin/webhooks/{id}"), "One subscription")
                .reply::<Value>(200)
                .problems(&["webhook_not_found", "invalid_request"]),
            get(show),
        )
        .route(
            op(
                Operation::patch("/admin/webhooks/{id}"),
                "Change a subscription",
            )
            .body::<Value>()
            .reply::<Value>(200)
            .problems(&["webhook_not_found", "invalid_webhook"]),
            patch(update),
        )
        .route(
            op(
                Operation::delete("/admin/webhooks/{id}"),
                "Delete a subscription with its deliveries",
            )
            .reply_empty(204)
            .problems(&["webhook_not_found", "invalid_request"]),
            axum::routing::delete(delete),
        )
        .route(
            op(
                Operation::get("/admin/webhooks/{id}/deliveries"),
                "Delivery log, newest first",
            )
            .query::<DeliveryQueryDoc>()
            .reply::<Value>(200)
            .problems(&["webhook_not_found", "invalid_request"]),
            get(deliveries),
        )
        .route(
            op(
                Operation::get("/admin/webhooks/{id}/deliveries/{delivery_id}"),
                "One delivery with its attempts",
            )
            .reply::<Value>(200)
            .problems(&["webhook_not_found", "delivery_not_found", "invalid_request"]),
            get(delivery),
        )
        .route(
            op(
                Operation::post("/admin/webhooks/{id}/deliveries/{delivery_id}/redeliver"),
                "Send a delivery again now",
            )
            .reply::<Value>(202)
            .problems(&["webhook_not_found", "delivery_not_found", "invalid_request"]),
            post(redeliver),
        )
        .route(
            op(
                Operation::post("/admin/webhooks/{id}/replay"),
                "Start a replay of every matching event after a position",
            )
            .body::<ReplayRequest>()
            .reply::<Value>(202)
            .problems(&["webhook_not_found", "invalid_request"]),
            post(replay),
        )
        .route(
            op(
                Operation::get("/admin/webhooks/{id}/replays"),
                "Replay jobs, newest first",
            )
            .query::<ReplayListQuery>()
            .reply::<Value>(200)
            .problems(&["webhook_not_found", "invalid_request"]),
            get(replays),
        )
        .route(
            op(
                Operation::get("/admin/webhooks/{id}/replays/{replay_id}"),
                "One replay job and its progress",
            )
            .reply::<Value>(200)
            .problems(&["webhook_not_found", "replay_not_found", "invalid_request"]),
            get(replay_job),
        )
        .map_router(|r| r.layer(DefaultBodyLimit::max(MAX_BODY)))
}

/// The query of `GET /admin/webhooks/{id}/deliveries`, for the document: mirrors
/// [`DeliveryQuery`], which lives in `infra` without a schema derive.
#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)] // only its schema is used
struct DeliveryQueryDoc {
    status: Option<DeliveryStatusDoc>,
    /// 1 to 200; 50 when absent.
    limit: Option<u32>,
    /// Continue below this cursor (from the previous page's `next`).
    before_position: Option<i64>,
    before_generation: Option<i64>,
}

/// Where a delivery stands (mirrors `infra::webhook::DeliveryStatus`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // only its schema is used
enum DeliveryStatusDoc {
    Pending,
    Delivered,
    Failed,
}

/// The body of `POST /admin/webhooks/{id}/replay`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    /// Events after this global position are enqueued again.
    from_position: i64,
}

async fn create(
    _: Admin,
    State(state): State<AppState>,
    body: Result<Json<NewSubscription>, JsonRejection>,
) -> Result<Response, Problem> {
    let Json(new) = body.map_err(|r| json_problem(r, "invalid_webhook"))?;
    let created = admin::create(&state.store, &state.webhook_secret_keys, new)
        .await
        .map_err(|e| problem(e, "invalid_webhook"))?;
    let mut body = to_json(&created.subscription)?;
    if let Value::Object(fields) = &mut body {
        fields.insert(
            "secret".into(),
            Value::String(created.secret.expose().to_string()),
        );
    }
    let location = format!("/admin/webhooks/{}", created.subscription.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response())
}

async fn list(_: Admin, State(state): State<AppState>) -> Result<Json<Value>, Problem> {
    let subscriptions = admin::list(&state.store)
        .await
        .map_err(|e| problem(e, "invalid_request"))?;
    Ok(Json(json!({ "webhooks": to_json(&subscriptions)? })))
}

async fn show(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let id = subscription_id(&id)?;
    let subscription = admin::get(&state.store, id)
        .await
        .map_err(|e| problem(e, "invalid_request"))?;
    Ok(Json(to_json(&subscription)?))
}

async fn update(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<SubscriptionUpdate>, JsonRejection>,
) -> Result<Json<Value>, Problem> {
    let id = subscription_id(&id)?;
    let Json(change) = body.map_err(|r| json_problem(r, "invalid_webhook"))?;
    let subscription = admin::update(&state.store, &state.webhook_secret_keys, id, change)
        .await
        .map_err(|e| problem(e, "invalid_webhook"))?;
    Ok(Json(to_json(&subscription)?))
}

async fn delete(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    let id = subscription_id(&id)?;
    admin::delete(&state.store, id)
        .await
        .map_err(|e| problem(e, "invalid_request"))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn deliveries(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<DeliveryQuery>, QueryRejection>,
) -> Result<Json<Value>, Problem> {
    let id = subscription_id(&id)?;
    let Query(query) = query.map_err(|r| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Invalid request",
            r.body_text(),
        )
    })?;
    let page = admin::deliveries(&state.store, id, query)
        .await
        .map_err(|e| problem(e, "invalid_request"))?;
    Ok(Json(to_json(&page)?))
}

async fn delivery(
    _: Admin,
    State(state): State<AppState>,
    Path((id, delivery_id)): Path<(String, String)>,
) -> Result<Json<Value>, Problem> {
    let (id, delivery_id) = (subscription_id(&id)?, delivery_id_of(&delivery_id)?);
    let record = admin::delivery(&state.store, id, delivery_id)
        .await
        .map_err(|e| problem(e, "invalid_request"))?;
    Ok(Json(to_json(&record)?))
}

async fn redeliver(
    _: Admin,
    State(state): State<AppState>,
    Path((id, delivery_id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let (id, delivery_id) = (subscription_id(&id)?, delivery_id_of(&delivery_id)?);
    let record = admin::redeliver(&state.store, id, delivery_id)
        .await
        .map_err(|e| problem(e, "invalid_request"))?;
    Ok((StatusCode::ACCEPTED, Json(to_json(&record)?)))
}

/// Starts a replay job; the dispatcher's replay worker enqueues its deliveries. The
/// answer is the job (`status: running`, or `done` for an empty range) and its URL.
async fn replay(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<ReplayRequest>, JsonRejection>,
) -> Result<Response, Problem> {
    let id = subscription_id(&id)?;
    let Json(request) = body.map_err(|r| json_problem(r, "invalid_request"))?;
    let job = replay::start(&state.store, id, request.from_position)
        .await
        .map_err(|e| problem(e, "invalid_request"))?;
    let location = format!("/admin/webhooks/{id}/replays/{}", job.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(to_json(&job)?),
    )
        .into_response())
}

/// The query of `GET /admin/webhooks/{id}/replays`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ReplayListQuery {
    /// 1 to 200; 50 when absent.
    #[schemars(range(min = 1, max = 200))]
    limit: Option<u32>,
}

async fn replays(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<ReplayListQuery>, QueryRejection>,
) -> Result<Json<Value>, Problem> {
    let id = subscription_id(&id)?;
    let Query(query) = query.map_err(|r| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Invalid request",
            r.body_text(),
        )
    })?;
    let limit = match query.limit {
        None => 50,
        Some(n @ 1..=200) => i64::from(n),
        Some(n) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Invalid request",
                format!("limit must be 1 to 200, not {n}"),
            ))
        }
    };
    let jobs = replay::list(&state.store, id, limit)
        .await
        .map_err(|e| problem(e, "invalid_request"))?;
    Ok(Json(json!({ "replays": to_json(&jobs)? })))
}

async fn replay_job(
    _: Admin,
    State(state): State<AppState>,
    Path((id, replay_id)): Path<(String, String)>,
) -> Result<Json<Value>, Problem> {
    let id = subscription_id(&id)?;
    let replay_id = Uuid::parse_str(&replay_id)
        .map_err(|_| not_found("replay_not_found", "Replay not found", &replay_id))?;
    // An unknown subscription is its own 404, not the replay's.
    admin::get(&state.store, id)
        .await
        .map_err(|e| problem(e, "invalid_request"))?;
    let job = replay::get(&state.store, id, replay_id)
        .await
        .map_err(|e| problem(e, "invalid_request"))?;
    Ok(Json(to_json(&job)?))
}

/// A path segment that is not a UUID names no subscription.
fn subscription_id(text: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(text).map_err(|_| not_found("webhook_not_found", "Webhook not found", text))
}

fn delivery_id_of(text: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(text).map_err(|_| not_found("delivery_not_found", "Delivery not found", text))
}

fn not_found(code: &'static str, title: &'static str, what: &str) -> Problem {
    let what: String = what.chars().take(64).collect();
    Problem::new(
        StatusCode::NOT_FOUND,
        code,
        title,
        format!("no such id: {what}"),
    )
}

/// The problem for an admin operation's error; `invalid_code` names bad input.
fn problem(err: WebhookError, invalid_code: &'static str) -> Problem {
    match err {
        WebhookError::Invalid(detail) => Problem::new(
            StatusCode::BAD_REQUEST,
            invalid_code,
            "Invalid request",
            detail,
        ),
        WebhookError::SubscriptionNotFound(id) => Problem::new(
            StatusCode::NOT_FOUND,
            "webhook_not_found",
            "Webhook not found",
            format!("no webhook subscription {id}"),
        ),
        WebhookError::DeliveryNotFound(id) => Problem::new(
            StatusCode::NOT_FOUND,
            "delivery_not_found",
            "Delivery not found",
            format!("no delivery {id} in this subscription"),
        ),
        WebhookError::ReplayNotFound(id) => Problem::new(
            StatusCode::NOT_FOUND,
            "replay_not_found",
            "Replay not found",
            format!("no replay {id} of this subscription"),
        ),
        other => internal(&other),
    }
}

/// The problem for a JSON body that could not be read.
fn json_problem(rejection: JsonRejection, invalid_code: &'static str) -> Problem {
    match rejection.status() {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported media type",
            "send the body as `content-type: application/json`",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "Payload too large",
            format!("the body exceeds {MAX_BODY} bytes"),
        ),
        _ => Problem::new(
            StatusCode::BAD_REQUEST,
            invalid_code,
            "Invalid request",
            rejection.body_text(),
        ),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Value, Problem> {
    serde_json::to_value(value).map_err(|e| internal(&e))
}

fn internal(err: &dyn std::fmt::Display) -> Problem {
    tracing::error!(error = %err, "webhook admin request failed");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "Internal error",
        "the request could not be completed; see the server log",
    )
}

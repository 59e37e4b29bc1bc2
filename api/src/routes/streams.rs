//! Staff audit routes over the log: a stream's history (`commerce history` over HTTP),
//! and the state of an order as of a position or time for the order route's `as_of`.

use aggregates::order::Order;
use aggregates::EventSourced;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::Json;
use infra::command::Loaded;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::carts::visible;
use crate::http::errors::row;
use crate::http::principal::{Principal, Role, Staff};
use crate::http::problem::Problem;
use crate::http::{ApiRouter, AppState, Operation};
use crate::replay::aggregate::{fold, AggregateKind};
use crate::replay::history::{history, HistoryEntry};
use crate::replay::point::Point;
use crate::replay::state::events_until;
use crate::replay::ReplayError;

/// Most events one page of a history answers.
const MAX_PAGE: usize = 1000;

/// The audit routes.
pub fn router() -> ApiRouter {
    ApiRouter::new().route(
        Operation::get("/admin/streams/{aggregate}/{stream}/events")
            .summary("A stream's history: each event with who, when, why and a one-line summary")
            .description(
                "Payloads are shown in their current schema (older events are upcast). Page \
                 with `after_version`; `next_after_version` is set while more events follow.",
            )
            .tag("audit")
            .roles(&[Role::Staff, Role::Admin])
            .path_param(
                "aggregate",
                "cart, order, payment, stock, shipment, loyalty, product or promotion.",
            )
            .path_param(
                "stream",
                "The stream id: a UUID, a SKU (product, stock), a promotion code or a customer id (loyalty).",
            )
            .query::<HistoryQuery>()
            .reply::<HistoryBody>(200)
            .problems(&["unknown_aggregate", "not_found", "invalid_query"]),
        get(stream_events),
    )
}

/// Query of `GET /admin/streams/{aggregate}/{stream}/events`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Only events after this version (default 0: from the start).
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub after_version: Option<i64>,
    /// Events per page, 1-1000 (default 1000).
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<usize>,
}

/// A page of a stream's history.
#[derive(Debug, Serialize, JsonSchema)]
pub struct HistoryBody {
    /// `aggregate/id` as stored, e.g. `order/0193…`.
    pub stream: String,
    pub events: Vec<HistoryEntry>,
    /// Pass as `after_version` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after_version: Option<i64>,
}

/// The problem a replay error answers over HTTP.
pub(super) fn problem(err: ReplayError) -> Problem {
    match &err {
        ReplayError::UnknownAggregate(_) => row::UNKNOWN_AGGREGATE.problem(err.to_string()),
        ReplayError::NoSuchStream(_) | ReplayError::EmptyRange(_) => {
            row::NOT_FOUND.problem(err.to_string())
        }
        ReplayError::InvalidPoint(_) | ReplayError::InvalidTime(_) => {
            row::INVALID_AS_OF.problem(err.to_string())
        }
        e if e.is_bad_input() => row::INVALID_QUERY.problem(err.to_string()),
        _ => row::INTERNAL_ERROR
            .problem("the log could not be read; see the server log")
            .with_internal(err.to_string()),
    }
}

async fn stream_events(
    _: Staff,
    State(state): State<AppState>,
    Path((aggregate, stream)): Path<(String, String)>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<HistoryBody>, Problem> {
    let Query(query) = query.map_err(|r| row::INVALID_QUERY.problem(r.body_text()))?;
    let after = query.after_version.unwrap_or(0);
    let limit = query.limit.unwrap_or(MAX_PAGE);
    if after < 0 || limit == 0 || limit > MAX_PAGE {
        return Err(row::INVALID_QUERY.problem(format!(
            "after_version must be 0 or more and limit 1-{MAX_PAGE}"
        )));
    }
    let kind = AggregateKind::parse(&aggregate).map_err(problem)?;
    // One more than asked tells whether another page follows.
    let mut events = history(&state.store, &aggregate, &stream, after, limit + 1)
        .await
        .map_err(problem)?;
    let next_after_version = if events.len() > limit {
        events.truncate(limit);
        events.last().map(|e| e.version)
    } else {
        None
    };
    Ok(Json(HistoryBody {
        stream: format!("{}/{stream}", kind.stream_type()),
        events,
        next_after_version,
    }))
}

/// An order as of `as_of` (a position or an RFC 3339 time), for staff only: the stream
/// replayed up to that point through the upcasters. An order that did not exist yet is
/// not found.
pub(super) async fn order_as_of(
    state: &AppState,
    principal: &Principal,
    order_id: Uuid,
    as_of: &str,
) -> Result<Loaded<Order>, Problem> {
    if !principal.is_staff() {
        return Err(row::FORBIDDEN.problem("as_of needs the staff or admin role"));
    }
    let at: Point = as_of.parse().map_err(problem)?;
    let events = events_until(
        &state.store,
        AggregateKind::Order,
        &order_id.to_string(),
        Some(at),
    )
    .await
    .map_err(problem)?;
    let order: Order = fold(&events).map_err(problem)?;
    if !order.exists() || !visible(principal, order.owner()) {
        return Err(row::NOT_FOUND.problem(format!("order {order_id} did not exist at {at}")));
    }
    Ok(Loaded {
        version: events.last().map_or(0, |e| e.version),
        state: order,
    })
}

//! Staff routes to see and steer sagas (docs/sagas.md, "See and steer"), staff and
//! admins only:
//!
//! | route | does |
//! |---|---|
//! | `GET /admin/sagas` | sagas by state and age, oldest in their phase first (`status`, `phase`, `stuck`, `stuck_after`, `limit`, `after`) |
//! | `GET /admin/sagas/{saga_type}/{saga_id}` | one saga: status line, state, timers, and its logged steps with the commands they issued and their outcomes |
//! | `POST /admin/sagas/{saga_type}/{saga_id}/retry` | re-run its failed or stuck step: dead letters retried, due timers released, `?timer=NAME` brought forward (`202`: the workers carry it out) |
//! | `POST /admin/sagas/{saga_type}/{saga_id}/cancel` | cancel the order through the ordinary `CancelOrder` (reason `merchant_requested`); the saga compensates as for any cancellation |

use ::sagas::ProcessManager;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use chrono::{DateTime, Utc};
use infra::saga::admin::{self, RetryError};
use infra::saga::status::{self, Cursor, SagaStatus, StatusFilter};
use infra::saga::steps::{self, CommandOutcome, StepRow};
use infra::saga::store as saga_store;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::input::path_uuid;
use crate::http::command::{CommandMeta, CommandReply, CommandReplyBody};
use crate::http::errors::{self, row};
use crate::http::principal::{Role, Staff};
use crate::http::problem::Problem;
use crate::http::{ApiRouter, AppState, Operation};

const TAG: &str = "sagas";

/// The saga types this engine runs (their ids are order ids).
const SAGA_TYPES: &[&str] = &[::sagas::checkout::CheckoutSaga::NAME];

/// Longest `phase`, `timer` and cursor accepted.
const MAX_TEXT: usize = 200;
/// Longest accepted cursor (hex).
const MAX_CURSOR: usize = 1_000;
/// Largest `stuck_after`: 30 days.
const MAX_STUCK_AFTER_SECS: i64 = 30 * 24 * 3600;

pub fn router() -> ApiRouter {
    let staff = &[Role::Staff, Role::Admin];
    let saga_type = ("saga_type", "The saga type, e.g. `checkout`.");
    let saga_id = ("saga_id", "The saga id: for `checkout`, the order's UUID.");
    ApiRouter::new()
        .route(
            Operation::get("/admin/sagas")
                .summary("Sagas by state and age, oldest in their phase first")
                .description("`stuck=true` keeps sagas that are active, in their phase longer than `stuck_after` seconds (default 900) and not waiting for a timer of theirs due later than that (docs/projections.md, `saga_status`). `after` is the previous page's `next_cursor`.")
                .tag(TAG)
                .roles(staff)
                .query::<ListQuery>()
                .reply::<SagaListBody>(200)
                .problems(&["invalid_query"]),
            get(list),
        )
        .route(
            Operation::get("/admin/sagas/{saga_type}/{saga_id}")
                .summary("One saga: state, timers, and its steps with the commands they issued")
                .tag(TAG)
                .roles(staff)
                .path_param(saga_type.0, saga_type.1)
                .path_param(saga_id.0, saga_id.1)
                .query::<StuckQuery>()
                .reply::<SagaBody>(200)
                .problems(&["invalid_id", "invalid_query", "not_found"]),
            get(show),
        )
        .route(
            Operation::post("/admin/sagas/{saga_type}/{saga_id}/retry")
                .summary("Re-run a saga's failed or stuck step")
                .description("Asks the saga's consumer for another attempt at every dead letter the saga failed on, releases its due timers from a dead worker's claim, and with `timer=NAME` brings that timer forward to now. The workers carry it out (`202`); `retried` is false when there was nothing to retry.")
                .tag(TAG)
                .roles(staff)
                .path_param(saga_type.0, saga_type.1)
                .path_param(saga_id.0, saga_id.1)
                .query::<RetryQuery>()
                .reply::<RetryBody>(202)
                .problems(&["invalid_id", "invalid_query", "not_found"]),
            post(retry),
        )
        .route(
            Operation::post("/admin/sagas/{saga_type}/{saga_id}/cancel")
                .summary("Cancel a saga's order; the saga compensates as usual")
                .description("Issues `CancelOrder` with reason `merchant_requested` on the saga's order: every reservation, redemption and held point is released and the authorization voided (or the capture refunded) by the saga, as for any cancellation.")
                .tag(TAG)
                .roles(staff)
                .command()
                .path_param(saga_type.0, saga_type.1)
                .path_param(saga_id.0, saga_id.1)
                .reply::<CommandReplyBody>(200)
                .problems(&["invalid_id", "not_found"])
                .problems(errors::ORDER_CODES),
            post(cancel),
        )
}

/// Which sagas `GET /admin/sagas` lists.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `active` (the default), `finished` or `all`.
    #[serde(default)]
    pub status: Option<StatusParam>,
    /// Only this phase, e.g. `Paying`.
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub phase: Option<String>,
    /// Only stuck sagas.
    #[serde(default)]
    pub stuck: Option<bool>,
    /// Seconds in one phase after which a saga counts as stuck, 1 to 2592000 (default
    /// 900).
    #[serde(default)]
    #[schemars(range(min = 1, max = 2_592_000))]
    pub stuck_after: Option<i64>,
    /// Sagas per page, 1 to 500 (default 100).
    #[serde(default)]
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<i64>,
    /// Where to continue: `next_cursor` of the previous page.
    #[serde(default)]
    #[schemars(length(max = 1000))]
    pub after: Option<String>,
}

/// A saga's state in listings.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusParam {
    Active,
    Finished,
    All,
}

/// The stuck threshold of `GET /admin/sagas/{saga_type}/{saga_id}`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StuckQuery {
    /// Seconds in one phase after which a saga counts as stuck, 1 to 2592000 (default
    /// 900).
    #[serde(default)]
    #[schemars(range(min = 1, max = 2_592_000))]
    pub stuck_after: Option<i64>,
}

/// What `POST …/retry` should also do.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryQuery {
    /// A timer of the saga to bring forward to now, e.g. `payment-status`.
    #[serde(default)]
    #[schemars(length(min = 1, max = 200))]
    pub timer: Option<String>,
}

/// One saga's status line.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SagaStatusBody {
    pub saga_type: String,
    pub saga_id: String,
    /// `active` or `finished`.
    pub status: String,
    /// The saga's phase, e.g. `Reserving`, `Paying`, `Confirmed`.
    pub phase: Option<String>,
    pub phase_since: DateTime<Utc>,
    pub seconds_in_phase: i64,
    pub stuck: bool,
    pub version: i64,
    pub last_position: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// `event` or `timer`.
    pub last_trigger_kind: Option<String>,
    /// The event type or timer name of the latest step.
    pub last_trigger_name: Option<String>,
    pub last_step_at: Option<DateTime<Utc>>,
    /// The error of the latest failed step.
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub next_timer_due: Option<DateTime<Utc>>,
}

impl From<SagaStatus> for SagaStatusBody {
    fn from(s: SagaStatus) -> Self {
        Self {
            saga_type: s.saga_type,
            saga_id: s.saga_id,
            status: s.status,
            phase: s.phase,
            phase_since: s.phase_since,
            seconds_in_phase: s.seconds_in_phase,
            stuck: s.stuck,
            version: s.version,
            last_position: s.last_position,
            created_at: s.created_at,
            updated_at: s.updated_at,
            last_trigger_kind: s.last_trigger_kind,
            last_trigger_name: s.last_trigger_name,
            last_step_at: s.last_step_at,
            last_error: s.last_error,
            last_error_at: s.last_error_at,
            next_timer_due: s.next_timer_due,
        }
    }
}

/// A page of sagas.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SagaListBody {
    pub sagas: Vec<SagaStatusBody>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A saga timer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TimerBody {
    pub name: String,
    pub due: DateTime<Utc>,
}

/// A command a step issued, with what became of it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StepCommandBody {
    /// The command's name within the step, e.g. `reserve:MUG`.
    pub step: String,
    /// The command, e.g. `ReserveStock`.
    pub command: String,
    pub stream_type: String,
    pub stream_id: String,
    pub command_id: Uuid,
    /// `appended`, `already_done` (a repeated step: nothing appended), `refused` (a
    /// domain rule) or `failed` (could not run; the step runs again).
    pub outcome: String,
    /// The stream's version after it (appended, already done).
    pub version: Option<i64>,
    /// The global position after it (appended, already done).
    pub position: Option<i64>,
    /// The domain rule that refused it, e.g. `Stock.InsufficientStock`.
    pub code: Option<String>,
    /// What the saga made of a refusal: `skip`, `compensate` or `stop`.
    pub then: Option<String>,
    /// The refusal's or failure's message.
    pub error: Option<String>,
}

/// A call to the payment provider or carrier, with its reply.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StepCallBody {
    pub key: Uuid,
    /// `payment` or `carrier`.
    pub party: String,
    pub request: String,
    pub reply: Option<String>,
    pub error: Option<String>,
}

/// A logged step.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StepBody {
    pub id: i64,
    /// The saga version the step stored; absent for a failed step.
    pub saga_version: Option<i64>,
    /// `event` or `timer`.
    pub trigger_kind: String,
    /// The event id or the fired timer's id (command ids derive from it).
    pub trigger_id: Uuid,
    /// The event type or timer name.
    pub trigger_name: String,
    pub trigger_position: Option<i64>,
    pub phase_before: Option<String>,
    pub phase_after: Option<String>,
    /// `stored` or `failed`.
    pub outcome: String,
    pub error: Option<String>,
    pub commands: Vec<StepCommandBody>,
    pub calls: Vec<StepCallBody>,
    pub recorded_at: DateTime<Utc>,
}

impl From<StepRow> for StepBody {
    fn from(s: StepRow) -> Self {
        Self {
            id: s.id,
            saga_version: s.saga_version,
            trigger_kind: s.trigger.kind,
            trigger_id: s.trigger.id,
            trigger_name: s.trigger.name,
            trigger_position: s.trigger.position,
            phase_before: s.phase_before,
            phase_after: s.phase_after,
            outcome: s.outcome,
            error: s.error,
            commands: s
                .commands
                .into_iter()
                .map(|c| {
                    let mut body = StepCommandBody {
                        step: c.step,
                        command: c.command,
                        stream_type: c.stream_type,
                        stream_id: c.stream_id,
                        command_id: c.command_id,
                        outcome: String::new(),
                        version: None,
                        position: None,
                        code: None,
                        then: None,
                        error: None,
                    };
                    match c.outcome {
                        CommandOutcome::Appended { version, position } => {
                            body.outcome = "appended".into();
                            (body.version, body.position) = (Some(version), Some(position));
                        }
                        CommandOutcome::AlreadyDone { version, position } => {
                            body.outcome = "already_done".into();
                            (body.version, body.position) = (Some(version), Some(position));
                        }
                        CommandOutcome::Refused {
                            code,
                            message,
                            then,
                        } => {
                            body.outcome = "refused".into();
                            (body.code, body.error, body.then) =
                                (Some(code), Some(message), Some(then));
                        }
                        CommandOutcome::Failed { error } => {
                            body.outcome = "failed".into();
                            body.error = Some(error);
                        }
                    }
                    body
                })
                .collect(),
            calls: s
                .calls
                .into_iter()
                .map(|c| StepCallBody {
                    key: c.key,
                    party: c.party,
                    request: c.request,
                    reply: c.reply,
                    error: c.error,
                })
                .collect(),
            recorded_at: s.recorded_at,
        }
    }
}

/// One saga in full.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SagaBody {
    #[serde(flatten)]
    pub status: SagaStatusBody,
    /// The saga's state as it stores it.
    pub state: serde_json::Value,
    pub timers: Vec<TimerBody>,
    /// The last logged steps (at most 100), oldest first.
    pub steps: Vec<StepBody>,
}

/// What a retry set in motion.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RetryBody {
    /// Whether anything was set in motion.
    pub retried: bool,
    /// Dead letters of the saga's consumer asked for another attempt.
    pub dead_letters: Vec<i64>,
    /// Timers that fire at the timer worker's next round.
    pub timers: Vec<String>,
}

fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, Problem> {
    query
        .map(|Query(q)| q)
        .map_err(|r| row::INVALID_QUERY.problem(r.body_text()))
}

/// 1 to [`MAX_TEXT`] ASCII letters, digits and `extra` characters: phase and timer
/// names, never anything a database could choke on.
fn name_like(text: &str, extra: &[char]) -> bool {
    (1..=MAX_TEXT).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
}

fn stuck_after(secs: Option<i64>) -> Result<chrono::Duration, Problem> {
    match secs {
        None => Ok(status::DEFAULT_STUCK_AFTER),
        Some(s) if (1..=MAX_STUCK_AFTER_SECS).contains(&s) => Ok(chrono::Duration::seconds(s)),
        Some(_) => Err(row::INVALID_QUERY.problem(format!(
            "`stuck_after` must be 1 to {MAX_STUCK_AFTER_SECS} seconds"
        ))),
    }
}

/// The saga a path names: a known type and, for `checkout`, an order UUID.
fn saga_ref(saga_type: &str, saga_id: &str) -> Result<(&'static str, String), Problem> {
    let Some(known) = SAGA_TYPES.iter().find(|t| **t == saga_type) else {
        return Err(row::NOT_FOUND.problem(format!(
            "no saga type `{}`",
            saga_type.chars().take(80).collect::<String>()
        )));
    };
    Ok((known, path_uuid(saga_id)?.to_string()))
}

fn internal(e: impl std::fmt::Display) -> Problem {
    row::INTERNAL_ERROR.problem(format!("sagas: {e}"))
}

fn unknown(saga_type: &str, saga_id: &str) -> Problem {
    row::NOT_FOUND.problem(format!("no saga {saga_type}/{saga_id}"))
}

async fn list(
    _: Staff,
    State(state): State<AppState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let q = query(q)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=status::MAX_PAGE).contains(&limit) {
        return Err(
            row::INVALID_QUERY.problem(format!("`limit` must be 1 to {}", status::MAX_PAGE))
        );
    }
    if q.phase.as_deref().is_some_and(|p| !name_like(p, &['_'])) {
        return Err(row::INVALID_QUERY.problem("`phase` must be 1 to 200 letters, digits or `_`"));
    }
    let after = match q.after.as_deref() {
        None => None,
        Some(text) => Some(
            (text.len() <= MAX_CURSOR)
                .then(|| Cursor::decode(text))
                .flatten()
                .ok_or_else(|| {
                    row::INVALID_QUERY.problem("`after` is not a cursor this API answered")
                })?,
        ),
    };
    let filter = StatusFilter {
        saga_type: None,
        status: match q.status.unwrap_or(StatusParam::Active) {
            StatusParam::Active => Some("active".into()),
            StatusParam::Finished => Some("finished".into()),
            StatusParam::All => None,
        },
        phase: q.phase,
        stuck_only: q.stuck.unwrap_or(false),
        stuck_after: stuck_after(q.stuck_after)?,
        now: state.store.clock().now(),
        after,
        // One more than the page: whether a next page exists without counting.
        limit: limit + 1,
    };
    let mut sagas = status::list(state.store.db_read(), &filter)
        .await
        .map_err(internal)?;
    let next_cursor = if sagas.len() > limit as usize {
        sagas.truncate(limit as usize);
        sagas.last().map(|s| {
            Cursor {
                phase_since: s.phase_since,
                saga_type: s.saga_type.clone(),
                saga_id: s.saga_id.clone(),
            }
            .encode()
        })
    } else {
        None
    };
    let body = SagaListBody {
        sagas: sagas.into_iter().map(Into::into).collect(),
        next_cursor,
    };
    Ok(Json(body).into_response())
}

async fn show(
    _: Staff,
    State(state): State<AppState>,
    Path((saga_type, saga_id)): Path<(String, String)>,
    q: Result<Query<StuckQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let (saga_type, saga_id) = saga_ref(&saga_type, &saga_id)?;
    let q = query(q)?;
    let stuck_after = stuck_after(q.stuck_after)?;
    let db = state.store.db_read();
    let now = state.store.clock().now();
    let Some(line) = status::get(db, saga_type, &saga_id, now, stuck_after)
        .await
        .map_err(internal)?
    else {
        return Err(unknown(saga_type, &saga_id));
    };
    let row = saga_store::load(db, saga_type, &saga_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| unknown(saga_type, &saga_id))?;
    let timers = saga_store::timers_of(db, saga_type, &saga_id)
        .await
        .map_err(internal)?;
    let steps = steps::steps_of(db, saga_type, &saga_id, steps::KEEP_PER_SAGA)
        .await
        .map_err(internal)?;
    let body = SagaBody {
        status: line.into(),
        state: row.state,
        timers: timers
            .into_iter()
            .map(|t| TimerBody {
                name: t.name,
                due: t.due,
            })
            .collect(),
        steps: steps.into_iter().map(Into::into).collect(),
    };
    Ok(Json(body).into_response())
}

async fn retry(
    _: Staff,
    State(state): State<AppState>,
    Path((saga_type, saga_id)): Path<(String, String)>,
    q: Result<Query<RetryQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let (saga_type, saga_id) = saga_ref(&saga_type, &saga_id)?;
    let q = query(q)?;
    if q.timer
        .as_deref()
        .is_some_and(|t| !name_like(t, &['_', '-', ':', '.']))
    {
        return Err(row::INVALID_QUERY
            .problem("`timer` must be 1 to 200 letters, digits, `_`, `-`, `:` or `.`"));
    }
    exists(&state, saga_type, &saga_id).await?;
    let retried = admin::retry(&state.store, saga_type, &saga_id, q.timer.as_deref())
        .await
        .map_err(|e| match e {
            RetryError::NoSuchTimer(..) => row::NOT_FOUND.problem(e.to_string()),
            other => internal(other),
        })?;
    let body = RetryBody {
        retried: !retried.is_empty(),
        dead_letters: retried.dead_letters,
        timers: retried.timers,
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

async fn cancel(
    _: Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path((saga_type, saga_id)): Path<(String, String)>,
) -> Result<CommandReply, Problem> {
    let (saga_type, saga_id) = saga_ref(&saga_type, &saga_id)?;
    exists(&state, saga_type, &saga_id).await?;
    let command = aggregates::order::OrderCommand::CancelOrder(aggregates::order::CancelOrder {
        reason: aggregates::order::CancellationReason::MerchantRequested,
        at: state.store.clock().now(),
    });
    let done = state
        .commands
        .execute::<aggregates::order::Order>(&meta.context(), &saga_id, command)
        .await?;
    Ok(CommandReply::ok(&done))
}

async fn exists(state: &AppState, saga_type: &str, saga_id: &str) -> Result<(), Problem> {
    saga_store::load(state.store.db(), saga_type, saga_id)
        .await
        .map_err(internal)?
        .map(drop)
        .ok_or_else(|| unknown(saga_type, saga_id))
}

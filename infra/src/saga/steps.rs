//! The saga step log (`saga_steps`): what each step the runner performed did, for the
//! people who look after sagas (`GET /admin/sagas/{type}/{id}`, `commerce sagas show`).
//!
//! A step that was stored is logged in the transaction that saves the saga
//! ([`store::save_step`](super::store::save_step)), so the log never shows a step the
//! state does not contain, nor misses one it does. A step that failed stores nothing; it
//! is logged on its own, with the error, by [`record_failed`]. A step that runs again
//! after a crash (its save was lost) is logged once, when it is stored: its commands show
//! as `already_done` where the first run had appended them.
//!
//! Growth is bounded per saga: every write keeps the last [`KEEP_PER_SAGA`] rows of its
//! saga and deletes older ones (a checkout runs about 20 steps; retries of a failing step
//! are what could pile up).

use chrono::{DateTime, Utc};
use sagas::{Input, Target};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use uuid::Uuid;

use crate::command::CommandError;
use crate::consumer::TxConn;
use crate::store::{Db, StoreError};
use crate::{in_tx, on_conn, on_db};

/// Rows kept per saga.
pub const KEEP_PER_SAGA: i64 = 100;

/// Longest error text stored; longer ones are cut.
const MAX_ERROR: usize = 2_000;

/// What triggered a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    /// `event` or `timer`.
    pub kind: String,
    /// The event id, or the fired timer's derived id.
    pub id: Uuid,
    /// The event type, or the timer's name.
    pub name: String,
    /// The event's global position.
    pub position: Option<i64>,
}

impl Trigger {
    /// The trigger of an event envelope.
    pub fn event(id: Uuid, event_type: &str, position: i64) -> Self {
        Self {
            kind: "event".into(),
            id,
            name: event_type.into(),
            position: Some(position),
        }
    }

    /// The trigger of a fired timer.
    pub fn timer(fired: &sagas::TimerFired) -> Self {
        Self {
            kind: "timer".into(),
            id: fired.id,
            name: fired.name.clone(),
            position: None,
        }
    }
}

/// What became of one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CommandOutcome {
    /// The command appended events: the stream's version and the position after it.
    Appended { version: i64, position: i64 },
    /// The command id had run before (a repeated step): nothing appended.
    AlreadyDone { version: i64, position: i64 },
    /// A domain rule refused it; `then` is what the saga made of it (`skip`,
    /// `compensate`, `stop`).
    Refused {
        code: String,
        message: String,
        then: String,
    },
    /// It could not run (store, contention, lookup): the step fails and runs again.
    Failed { error: String },
}

/// One command a step issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRecord {
    /// The command's name within the step, e.g. `reserve:MUG`.
    pub step: String,
    /// The command, e.g. `ReserveStock`.
    pub command: String,
    pub stream_type: String,
    pub stream_id: String,
    pub command_id: Uuid,
    #[serde(flatten)]
    pub outcome: CommandOutcome,
}

/// One call to the payment provider or carrier, with its reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The call's idempotency key.
    pub key: Uuid,
    /// `payment` or `carrier`.
    pub party: String,
    /// The request, e.g. `Authorize { … }`.
    pub request: String,
    /// The reply, when there was one.
    pub reply: Option<String>,
    /// Why there was none: the provider could not answer.
    pub error: Option<String>,
}

/// What a step did, collected while it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepLog {
    pub commands: Vec<CommandRecord>,
    pub calls: Vec<CallRecord>,
}

impl StepLog {
    /// Records the outcome of `target` issued as `step` with `command_id`.
    pub fn command(
        &mut self,
        step: &str,
        target: &Target,
        command_id: Uuid,
        outcome: CommandOutcome,
    ) {
        let (stream_type, stream_id) = target.stream();
        self.commands.push(CommandRecord {
            step: step.to_string(),
            command: command_name(target),
            stream_type: stream_type.to_string(),
            stream_id: stream_id.to_string(),
            command_id,
            outcome,
        });
    }

    /// Records a call and its reply (or why there was none).
    pub fn call(&mut self, call: &sagas::ports::PortCall, reply: Result<&Input, String>) {
        use sagas::ports::{PortReply, PortRequest};
        let (party, request) = match &call.request {
            PortRequest::Payment(r) => ("payment", format!("{r:?}")),
            PortRequest::Carrier(r) => ("carrier", format!("{r:?}")),
        };
        let (reply, error) = match reply {
            Ok(Input::Reply { reply, .. }) => (
                Some(match reply {
                    PortReply::Payment(r) => format!("{r:?}"),
                    PortReply::Carrier(r) => format!("{r:?}"),
                }),
                None,
            ),
            Ok(_) => (None, None),
            Err(error) => (None, Some(cut(&error))),
        };
        self.calls.push(CallRecord {
            key: call.key,
            party: party.to_string(),
            request,
            reply,
            error,
        });
    }
}

/// The outcome of a dispatched command that ran (appended, or a repeat).
pub fn executed(version: i64, position: i64, replayed: bool) -> CommandOutcome {
    if replayed {
        CommandOutcome::AlreadyDone { version, position }
    } else {
        CommandOutcome::Appended { version, position }
    }
}

/// The outcome of a command that did not run for a reason other than a domain rule.
pub fn failed(error: &CommandError) -> CommandOutcome {
    CommandOutcome::Failed {
        error: cut(&error.to_string()),
    }
}

/// A stable code for a domain refusal: the aggregate and the rule, e.g.
/// `Stock.InsufficientStock` (the variant names, which the API's problem table maps to
/// its own codes).
pub fn domain_code(error: &aggregates::DomainError) -> String {
    let debug = format!("{error:?}");
    let mut parts = debug
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|p| !p.is_empty());
    match (parts.next(), parts.next()) {
        (Some(aggregate), Some(rule)) => format!("{aggregate}.{rule}"),
        (Some(aggregate), None) => aggregate.to_string(),
        _ => "domain".to_string(),
    }
}

/// The command's variant name, e.g. `ReserveStock`.
fn command_name(target: &Target) -> String {
    let debug = match target {
        Target::Order(_, c) => format!("{c:?}"),
        Target::Payment(_, c) => format!("{c:?}"),
        Target::Stock(_, c) => format!("{c:?}"),
        Target::Shipment(_, c) => format!("{c:?}"),
        Target::Loyalty(_, c) => format!("{c:?}"),
        Target::Promotion(_, c) => format!("{c:?}"),
    };
    debug
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .find(|p| !p.is_empty())
        .unwrap_or("command")
        .to_string()
}

pub(super) fn cut(text: &str) -> String {
    if text.len() <= MAX_ERROR {
        return text.to_string();
    }
    let mut end = MAX_ERROR;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The phase a saga's state names: its `phase` field, when it has one (the checkout
/// saga's `Reserving`, `Paying`, …).
pub fn phase_of(state: &serde_json::Value) -> Option<String> {
    state
        .get("phase")
        .and_then(|p| p.as_str())
        .map(str::to_string)
}

/// A step to log: who, what triggered it, the phases, and what it did.
#[derive(Debug, Clone)]
pub struct NewStep<'a> {
    pub saga_type: &'a str,
    pub saga_id: &'a str,
    pub trigger: &'a Trigger,
    pub phase_before: Option<&'a str>,
    pub phase_after: Option<&'a str>,
    pub log: &'a StepLog,
    pub error: Option<&'a str>,
    pub at: DateTime<Utc>,
}

const INSERT: &str = "INSERT INTO saga_steps (saga_type, saga_id, saga_version, trigger_kind, \
     trigger_id, trigger_name, trigger_position, phase_before, phase_after, outcome, error, \
     commands, calls, recorded_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";

const PRUNE: &str = "DELETE FROM saga_steps WHERE saga_type = $1 AND saga_id = $2 AND id <= \
     (SELECT id FROM saga_steps WHERE saga_type = $1 AND saga_id = $2 \
      ORDER BY id DESC LIMIT 1 OFFSET $3)";

fn json(log: &StepLog) -> (String, String) {
    (
        serde_json::to_string(&log.commands).unwrap_or_else(|_| "[]".into()),
        serde_json::to_string(&log.calls).unwrap_or_else(|_| "[]".into()),
    )
}

/// Logs a stored step (saga `version` after it) in the saga's save transaction.
pub(super) async fn record_stored(
    conn: TxConn<'_>,
    step: &NewStep<'_>,
    version: i64,
) -> Result<(), sqlx::Error> {
    let (commands, calls) = json(step.log);
    on_conn!(conn, c => {
        sqlx::query(INSERT)
            .bind(step.saga_type)
            .bind(step.saga_id)
            .bind(Some(version))
            .bind(&step.trigger.kind)
            .bind(step.trigger.id)
            .bind(&step.trigger.name)
            .bind(step.trigger.position)
            .bind(step.phase_before)
            .bind(step.phase_after)
            .bind("stored")
            .bind(step.error)
            .bind(&commands)
            .bind(&calls)
            .bind(step.at)
            .execute(&mut *c)
            .await?;
        sqlx::query(PRUNE)
            .bind(step.saga_type)
            .bind(step.saga_id)
            .bind(KEEP_PER_SAGA)
            .execute(&mut *c)
            .await?;
    });
    Ok(())
}

/// Logs a step that failed (nothing of it was stored), on its own. Best effort: the
/// runner logs a failure to log and goes on, since the step is retried anyway.
pub async fn record_failed(db: Db<'_>, step: &NewStep<'_>) -> Result<(), StoreError> {
    let (commands, calls) = json(step.log);
    let error = step.error.map(cut);
    in_tx!(db, tx => {
        sqlx::query(INSERT)
            .bind(step.saga_type)
            .bind(step.saga_id)
            .bind(None::<i64>)
            .bind(&step.trigger.kind)
            .bind(step.trigger.id)
            .bind(&step.trigger.name)
            .bind(step.trigger.position)
            .bind(step.phase_before)
            .bind(step.phase_after)
            .bind("failed")
            .bind(error.as_deref())
            .bind(&commands)
            .bind(&calls)
            .bind(step.at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(PRUNE)
            .bind(step.saga_type)
            .bind(step.saga_id)
            .bind(KEEP_PER_SAGA)
            .execute(&mut *tx)
            .await?;
    });
    Ok(())
}

/// A logged step, as read back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRow {
    pub id: i64,
    /// The saga version the step stored; `None` for a failed step.
    pub saga_version: Option<i64>,
    pub trigger: Trigger,
    pub phase_before: Option<String>,
    pub phase_after: Option<String>,
    /// `stored` or `failed`.
    pub outcome: String,
    pub error: Option<String>,
    pub commands: Vec<CommandRecord>,
    pub calls: Vec<CallRecord>,
    pub recorded_at: DateTime<Utc>,
}

macro_rules! step_row {
    ($row:expr) => {{
        let row = $row;
        let commands: String = row.try_get("commands")?;
        let calls: String = row.try_get("calls")?;
        StepRow {
            id: row.try_get("id")?,
            saga_version: row.try_get("saga_version")?,
            trigger: Trigger {
                kind: row.try_get("trigger_kind")?,
                id: row.try_get("trigger_id")?,
                name: row.try_get("trigger_name")?,
                position: row.try_get("trigger_position")?,
            },
            phase_before: row.try_get("phase_before")?,
            phase_after: row.try_get("phase_after")?,
            outcome: row.try_get("outcome")?,
            error: row.try_get("error")?,
            commands: serde_json::from_str(&commands)
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            calls: serde_json::from_str(&calls).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            recorded_at: row.try_get("recorded_at")?,
        }
    }};
}

/// The last `limit` logged steps of a saga, oldest first.
pub async fn steps_of(
    db: Db<'_>,
    saga_type: &str,
    saga_id: &str,
    limit: i64,
) -> Result<Vec<StepRow>, StoreError> {
    let sql = "SELECT id, saga_version, trigger_kind, trigger_id, trigger_name, \
               trigger_position, phase_before, phase_after, outcome, error, commands, calls, \
               recorded_at FROM saga_steps WHERE saga_type = $1 AND saga_id = $2 \
               ORDER BY id DESC LIMIT $3";
    let mut steps = on_db!(db, pool => {
        let rows = sqlx::query(sql).bind(saga_type).bind(saga_id).bind(limit).fetch_all(pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(step_row!(row));
        }
        out
    });
    steps.reverse();
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_codes_name_the_aggregate_and_the_rule() {
        let error = aggregates::DomainError::Order(aggregates::order::OrderError::NotADraft);
        assert_eq!(domain_code(&error), "Order.NotADraft");
    }

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        let text = "é".repeat(MAX_ERROR);
        let cut = cut(&text);
        assert!(cut.len() <= MAX_ERROR + '…'.len_utf8());
        assert!(cut.ends_with('…'));
        assert_eq!(super::cut("short"), "short");
    }

    #[test]
    fn the_phase_is_the_states_phase_field() {
        let state = serde_json::json!({"phase": "Paying", "points": 0});
        assert_eq!(phase_of(&state).as_deref(), Some("Paying"));
        assert_eq!(phase_of(&serde_json::json!({})), None);
    }
}

//! Read-your-writes for the query routes.
//!
//! Every command answers the global `position` of its last event. A query given that
//! position (`?min_position=P` or `Consistency-Position: P`) waits until the view it
//! reads has applied the log up to `P`, at most [`AppState::consistency_wait`], so the
//! caller sees its own write; past the wait it answers `504 view_behind` naming the view,
//! where it stands and `P`. A `P` beyond the end of the log is refused at once
//! (`400 position_beyond_log`): no command answered it. Every answer carries `Consistency-Position`: a position the
//! view had reached before its rows were read, which the next query may ask for in turn.
//!
//! The wait follows this process's projection runner when it has one (no polling: the
//! runner publishes each committed batch); without one, or for a projection another
//! process runs, it polls the view's row of `projection_checkpoints`.

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::http::errors::row;
use crate::http::problem::Problem;
use crate::http::AppState;

/// The request and response header of read-your-writes.
pub const CONSISTENCY_POSITION: HeaderName = HeaderName::from_static("consistency-position");

/// How often a query without a runner in its process looks at the checkpoint again.
const POLL_EVERY: Duration = Duration::from_millis(5);

/// The query parameter every view route accepts.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct MinPositionQuery {
    /// Answer only once the view has applied the log up to this global position (the
    /// `position` a command answered); also accepted as the `Consistency-Position`
    /// header. Past the server's wait (2 s by default) the answer is `504 view_behind`.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub min_position: Option<i64>,
}

/// The position a query must see at least: the larger of `?min_position` and the
/// `Consistency-Position` header, 0 when neither is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadAt(pub i64);

impl FromRequestParts<AppState> for ReadAt {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Problem> {
        let query: Result<Query<MinPositionQuery>, QueryRejection> =
            Query::try_from_uri(&parts.uri);
        let Query(query) = query.map_err(|r| row::INVALID_QUERY.problem(r.body_text()))?;
        let from_query = match query.min_position {
            Some(p) if p < 0 => {
                return Err(row::INVALID_QUERY.problem("`min_position` must not be negative"))
            }
            Some(p) => p,
            None => 0,
        };
        let from_header = match parts.headers.get(&CONSISTENCY_POSITION) {
            None => 0,
            Some(value) => parse_header(value)?,
        };
        Ok(ReadAt(from_query.max(from_header)))
    }
}

fn parse_header(value: &HeaderValue) -> Result<i64, Problem> {
    value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<i64>().ok())
        .filter(|p| *p >= 0)
        .ok_or_else(|| {
            row::INVALID_CONSISTENCY_POSITION
                .problem("`Consistency-Position` must be a global position: a non-negative integer")
        })
}

/// Waits until projection `view` has applied the log up to `wanted` (bounded by the
/// state's consistency wait) and answers the position it has reached, to be read
/// before the view's rows so the answer never claims more than they show.
pub async fn reach(state: &AppState, view: &'static str, wanted: i64) -> Result<i64, Problem> {
    let started = Instant::now();
    let reached = wait(state, view, wanted).await;
    if wanted > 0 {
        // How long read-your-writes holds queries up: the view's lag as callers feel it.
        metrics::histogram!("commerce_view_wait_seconds", "view" => view)
            .record(started.elapsed().as_secs_f64());
        if matches!(&reached, Err(p) if p.code == row::VIEW_BEHIND.code) {
            metrics::counter!("commerce_view_behind_total", "view" => view).increment(1);
        }
    }
    reached
}

async fn wait(state: &AppState, view: &'static str, wanted: i64) -> Result<i64, Problem> {
    let deadline = Instant::now() + state.consistency_wait;
    if let Some(handle) = &state.projections {
        let at = handle.position(view);
        // 0 also means "not loaded yet": the checkpoint below knows better.
        if at > 0 && at >= wanted {
            return Ok(at);
        }
    }
    if wanted > 0 {
        written(state, wanted).await?;
    }
    if let Some(handle) = &state.projections {
        if wanted > 0
            && handle
                .wait_for(view, wanted, state.consistency_wait)
                .await
                .is_ok()
        {
            return Ok(handle.position(view).max(wanted));
        }
        // Timed out, or this process does not run `view`: another process may have
        // moved the checkpoint, so the table has the last word.
    }
    loop {
        let at = checkpoint(state, view).await?;
        if at >= wanted {
            return Ok(at);
        }
        if Instant::now() >= deadline {
            return Err(behind(view, at, wanted));
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// The live checkpoint of `view`; 0 before it ever ran.
async fn checkpoint(state: &AppState, view: &str) -> Result<i64, Problem> {
    let sql = "SELECT position FROM projection_checkpoints WHERE name = $1 AND state = 'live'";
    let row: Option<(i64,)> = infra::on_db!(state.store.db_read(), pool => {
        sqlx::query_as(sql).bind(view).fetch_optional(pool).await
    })
    .map_err(internal)?;
    Ok(row.map_or(0, |(p,)| p))
}

/// Refuses a position no command has answered yet: the log ends before it, so no wait
/// could reach it (`400 position_beyond_log`). Positions come from command replies, whose
/// events are committed, so a genuine one is never refused.
pub async fn written(state: &AppState, wanted: i64) -> Result<(), Problem> {
    let last = state.store.last_position().await.map_err(internal)?;
    if wanted > last {
        return Err(row::POSITION_BEYOND_LOG.problem(format!(
            "position {wanted} has not been written: the log ends at position {last}; \
             ask for a position a command answered"
        )));
    }
    Ok(())
}

/// `504 view_behind`, naming the view, where it stands and what was asked.
fn behind(view: &str, at: i64, wanted: i64) -> Problem {
    row::VIEW_BEHIND
        .problem(format!(
            "the view `{view}` is at position {at}, not yet at the requested position {wanted}; retry"
        ))
        .with_retry_after(1)
}

/// `500 internal_error` for a failed view read; the cause goes to the log only.
pub fn internal(err: impl std::fmt::Display) -> Problem {
    row::INTERNAL_ERROR
        .problem("the view could not be read")
        .with_internal(format!("view read: {err}"))
}

/// A view's answer: the body and the `Consistency-Position` it was read at.
pub struct Fresh<T> {
    pub position: i64,
    pub body: T,
}

impl<T: Serialize> IntoResponse for Fresh<T> {
    fn into_response(self) -> Response {
        let mut response = Json(self.body).into_response();
        response
            .headers_mut()
            .insert(CONSISTENCY_POSITION, HeaderValue::from(self.position));
        response
    }
}

/// Parses `--consistency-wait`: `2s`, `250ms`, `0` (answer at once), up to a minute.
pub fn parse_wait(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 2s or 250ms"))?;
    let wait = match unit {
        "ms" => Duration::from_millis(number),
        "" | "s" => Duration::from_secs(number),
        _ => return Err(format!("unknown unit `{unit}` in `{text}`: use ms or s")),
    };
    if wait > Duration::from_secs(60) {
        return Err(format!("`{text}` is longer than a minute"));
    }
    Ok(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_parse_in_milliseconds_or_seconds_up_to_a_minute() {
        assert_eq!(parse_wait("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_wait("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_wait("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_wait("0"), Ok(Duration::ZERO));
        assert!(parse_wait("61s").is_err());
        assert!(parse_wait("1h").is_err());
        assert!(parse_wait("soon").is_err());
    }

    #[test]
    fn a_header_position_is_a_non_negative_integer() {
        assert_eq!(parse_header(&HeaderValue::from_static("42")).ok(), Some(42));
        assert_eq!(parse_header(&HeaderValue::from_static(" 7 ")).ok(), Some(7));
        for bad in ["-1", "x", "1.5", ""] {
            let problem = parse_header(&HeaderValue::from_static(bad)).unwrap_err();
            assert_eq!(problem.code, "invalid_consistency_position", "{bad}");
        }
    }
}

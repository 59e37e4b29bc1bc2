//! One batch of the log applied to some projections ("lanes") in one transaction.

use chrono::{DateTime, Utc};
use projections::{Change, Event, Projection, ViewEvent};

use super::checkpoint::ViewTx;
use super::coalesce::Coalescer;
use super::sql::Target;
use crate::store::RecordedEvent;

/// A projection version being fed: where it stands and which tables it writes.
#[derive(Clone)]
pub(crate) struct Lane {
    pub projection: &'static dyn Projection,
    pub version: i64,
    pub position: i64,
    pub target: Target,
}

/// A stored event decoded once for every lane: `None` when no lane reads its stream
/// type, `Some(Err)` when it cannot be decoded.
pub(crate) type Decoded = Option<Result<ViewEvent, String>>;

/// Decodes the events some lane reads, through the aggregates' own decoding.
pub(crate) fn decode(batch: &[RecordedEvent], lanes: &[Lane]) -> Vec<Decoded> {
    batch
        .iter()
        .map(|e| {
            if !lanes.iter().any(|l| l.projection.reads(&e.stream_type)) {
                return None;
            }
            let payload = match e.payload() {
                Ok(payload) => payload,
                Err(err) => return Some(Err(err.to_string())),
            };
            let version = u32::try_from(e.schema_version).unwrap_or(0);
            match ViewEvent::decode(&e.stream_type, &e.event_type, version, payload) {
                Ok(Some(event)) => Some(Ok(event)),
                Ok(None) => None,
                Err(err) => Some(Err(format!(
                    "{}/{} v{}: {err}",
                    e.stream_type, e.stream_id, e.version
                ))),
            }
        })
        .collect()
}

/// What became of one lane in a batch.
pub(crate) enum LaneResult {
    /// Nothing in the batch was new to it.
    Unchanged,
    /// Applied up to this position.
    Advanced(i64),
    /// Applied up to `applied_to`, then could not decode the event at `position`; the
    /// failure is recorded in the same transaction.
    Stopped {
        applied_to: i64,
        position: i64,
        error: String,
    },
}

/// Why a lane could not go through its batch; the transaction must be rolled back.
pub(crate) enum LaneError {
    /// Its checkpoint moved under it (another runner, or a rebuild's swap).
    Conflict,
    /// Writing the view failed on the event at `position`.
    Event { position: i64, error: sqlx::Error },
    /// The checkpoint itself could not be written.
    Database(sqlx::Error),
}

/// Applies the events of `batch` after the lane's position to its tables and moves its
/// checkpoint, in `tx`. `buf` is scratch space for the changes.
pub(crate) async fn apply_lane(
    tx: &mut ViewTx,
    lane: &Lane,
    batch: &[RecordedEvent],
    decoded: &[Decoded],
    now: DateTime<Utc>,
    buf: &mut Vec<Change>,
) -> Result<LaneResult, LaneError> {
    let Some(last) = batch.last() else {
        return Ok(LaneResult::Unchanged);
    };
    if last.position <= lane.position {
        return Ok(LaneResult::Unchanged);
    }
    let start = batch.partition_point(|e| e.position <= lane.position);
    let reads = |e: &RecordedEvent| lane.projection.reads(&e.stream_type);
    // The first event this lane reads but nobody can decode stops it there.
    let stop =
        (start..batch.len()).find(|&i| reads(&batch[i]) && matches!(decoded[i], Some(Err(_))));
    let end = stop.unwrap_or(batch.len());
    let to = if end > start {
        batch[end - 1].position
    } else {
        lane.position
    };
    if to > lane.position {
        let moved = tx
            .advance(lane.projection.name(), lane.version, lane.position, to, now)
            .await
            .map_err(LaneError::Database)?;
        if !moved {
            return Err(LaneError::Conflict);
        }
    }
    // The whole run of events, coalesced: one statement per row touched.
    let mut rows = Coalescer::default();
    for i in start..end {
        let recorded = &batch[i];
        let Some(Ok(event)) = &decoded[i] else {
            continue;
        };
        if !reads(recorded) {
            continue;
        }
        buf.clear();
        lane.projection.apply(
            &Event {
                stream_id: &recorded.stream_id,
                position: recorded.position,
                recorded_at: recorded.recorded_at,
                event,
            },
            buf,
        );
        for change in buf.drain(..) {
            rows.push(change, recorded.position);
        }
    }
    for pending in rows.into_changes() {
        let table = lane.target.table(pending.change.table);
        tx.apply(&pending.change, &table)
            .await
            .map_err(|error| LaneError::Event {
                position: pending.position,
                error,
            })?;
    }
    match stop {
        None => Ok(LaneResult::Advanced(to)),
        Some(i) => {
            let error = match &decoded[i] {
                Some(Err(e)) => e.clone(),
                _ => String::new(),
            };
            Ok(LaneResult::Stopped {
                applied_to: to,
                position: batch[i].position,
                error,
            })
        }
    }
}

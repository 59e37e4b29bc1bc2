//! `commerce history <aggregate> <id>`: one stream's story, event by event, with who did
//! it, when, in which flow, and a one-line summary. The staff route
//! `GET /admin/streams/{aggregate}/{id}/events` answers the same entries.

use std::io::Write;

use chrono::{DateTime, Utc};
use clap::Args;
use infra::{Store, StreamRef};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::aggregate::{decode, AggregateKind};
use super::format::{or_dash, short_time, Table};
use super::summary::summary;
use super::ReplayError;
use crate::cli::DatabaseArgs;

/// Options of `commerce history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The aggregate: cart, order, payment, stock, shipment, loyalty, product, promotion.
    pub aggregate: String,
    /// The stream id: a UUID (cart, order, payment, shipment), a SKU (product, stock), a
    /// promotion code, or a customer id (loyalty).
    pub id: String,
    /// One JSON object per event instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub db: DatabaseArgs,
}

/// One event of a stream's history.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct HistoryEntry {
    pub version: i64,
    pub position: i64,
    pub event_id: Uuid,
    pub event_type: String,
    /// The schema version stored; `payload` is shown in the current version.
    pub schema_version: i32,
    pub recorded_at: DateTime<Utc>,
    pub actor: Option<String>,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    /// What happened, in one line.
    pub summary: String,
    /// The event's data in its current schema (after upcasting).
    pub payload: Value,
}

/// Events of `aggregate/id` after `after_version`, at most `limit` of them. An unknown
/// aggregate or a stream without events is an error.
pub async fn history(
    store: &Store,
    aggregate: &str,
    id: &str,
    after_version: i64,
    limit: usize,
) -> Result<Vec<HistoryEntry>, ReplayError> {
    let kind = AggregateKind::parse(aggregate)?;
    let stream = StreamRef::new(kind.stream_type(), id);
    let events = store.read_stream(&stream, after_version.max(0)).await?;
    if events.is_empty() && after_version <= 0 {
        return Err(ReplayError::NoSuchStream(stream.to_string()));
    }
    events
        .iter()
        .take(limit)
        .map(|e| {
            let typed = decode(e)?;
            Ok(HistoryEntry {
                version: e.version,
                position: e.position,
                event_id: e.event_id,
                event_type: e.event_type.clone(),
                schema_version: e.schema_version,
                recorded_at: e.recorded_at,
                actor: e.actor.clone(),
                correlation_id: e.correlation_id,
                causation_id: e.causation_id,
                summary: summary(&typed),
                payload: typed.encode().2,
            })
        })
        .collect()
}

/// Prints a history as a table: version, position, time, actor, correlation and
/// causation ids, type and summary.
pub fn write_table(out: &mut impl Write, entries: &[HistoryEntry]) -> std::io::Result<()> {
    let mut table = Table::new(&[
        "V",
        "POSITION",
        "RECORDED",
        "ACTOR",
        "CORRELATION",
        "CAUSATION",
        "EVENT",
        "SUMMARY",
    ]);
    for e in entries {
        table.row(vec![
            e.version.to_string(),
            e.position.to_string(),
            short_time(&e.recorded_at),
            or_dash(e.actor.as_deref()),
            or_dash(e.correlation_id),
            or_dash(e.causation_id),
            e.event_type.clone(),
            e.summary.clone(),
        ]);
    }
    table.write(out)
}

pub async fn run(args: HistoryArgs, out: &mut impl Write) -> Result<(), ReplayError> {
    // Bad input is reported before a database is opened.
    AggregateKind::parse(&args.aggregate)?;
    let store = super::open(&args.db).await?;
    let entries = history(&store, &args.aggregate, &args.id, 0, usize::MAX).await?;
    if args.json {
        for e in &entries {
            serde_json::to_writer(&mut *out, e).map_err(|e| ReplayError::Output(e.to_string()))?;
            writeln!(out)?;
        }
    } else {
        write_table(out, &entries)?;
    }
    Ok(())
}

//! `commerce state` and `commerce diff`: an aggregate as it was at a position or time,
//! replayed from its stream through the upcasters, and what changed between two points.
//! The staff order route's `as_of` parameter uses [`events_until`].

use std::io::Write;

use chrono::{DateTime, Utc};
use clap::Args;
use infra::{RecordedEvent, Store, StreamRef};
use serde::Serialize;
use serde_json::Value;

use super::aggregate::{decode, fold_json, AggregateKind};
use super::diff::{diff, Change};
use super::format::short_time;
use super::point::{parse_point, Point};
use super::summary::summary;
use super::ReplayError;
use crate::cli::DatabaseArgs;

/// Options of `commerce state`.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// The aggregate: cart, order, payment, stock, shipment, loyalty, product, promotion.
    pub aggregate: String,
    /// The stream id.
    pub id: String,
    /// A global position or an RFC 3339 time; the newest state when left out.
    #[arg(long, value_parser = parse_point)]
    pub at: Option<Point>,
    #[command(flatten)]
    pub db: DatabaseArgs,
}

/// Options of `commerce diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    pub aggregate: String,
    pub id: String,
    /// The earlier point: a global position or an RFC 3339 time.
    #[arg(long, value_parser = parse_point)]
    pub from: Point,
    /// The later point; the newest state when left out.
    #[arg(long, value_parser = parse_point)]
    pub to: Option<Point>,
    /// The changes as one JSON document.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub db: DatabaseArgs,
}

/// An aggregate's state after the events up to a point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateAt {
    pub stream: String,
    /// Events folded (0: the stream had not begun).
    pub version: i64,
    /// Position and time of the last event folded.
    pub position: Option<i64>,
    pub recorded_at: Option<DateTime<Utc>>,
    pub state: Value,
}

/// The events of a stream up to `at` (all of them without), and the stream named.
/// A stream without any event is [`ReplayError::NoSuchStream`].
pub async fn events_until(
    store: &Store,
    kind: AggregateKind,
    id: &str,
    at: Option<Point>,
) -> Result<Vec<RecordedEvent>, ReplayError> {
    let stream = StreamRef::new(kind.stream_type(), id);
    let mut events = store.read_stream(&stream, 0).await?;
    if events.is_empty() {
        return Err(ReplayError::NoSuchStream(stream.to_string()));
    }
    if let Some(at) = at {
        // Versions and positions rise together within a stream, so the covered events
        // are a prefix.
        let covered = events.iter().take_while(|e| at.covers(e)).count();
        events.truncate(covered);
    }
    Ok(events)
}

/// The state of `aggregate/id` at `at` (may be version 0, the state before the stream).
pub async fn state_at(
    store: &Store,
    kind: AggregateKind,
    id: &str,
    at: Option<Point>,
) -> Result<StateAt, ReplayError> {
    let events = events_until(store, kind, id, at).await?;
    Ok(StateAt {
        stream: format!("{}/{id}", kind.stream_type()),
        version: events.last().map_or(0, |e| e.version),
        position: events.last().map(|e| e.position),
        recorded_at: events.last().map(|e| e.recorded_at),
        state: fold_json(kind, &events)?,
    })
}

pub async fn run_state(args: StateArgs, out: &mut impl Write) -> Result<(), ReplayError> {
    let kind = AggregateKind::parse(&args.aggregate)?;
    let store = super::open(&args.db).await?;
    let state = state_at(&store, kind, &args.id, args.at).await?;
    if state.version == 0 {
        let at = args.at.map(|a| a.to_string()).unwrap_or_default();
        return Err(ReplayError::EmptyRange(format!(
            "{} has no events at or before {at}",
            state.stream
        )));
    }
    serde_json::to_writer_pretty(&mut *out, &state)
        .map_err(|e| ReplayError::Output(e.to_string()))?;
    writeln!(out)?;
    Ok(())
}

/// What changed in a stream between two points.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateDiff {
    pub stream: String,
    pub from_version: i64,
    pub to_version: i64,
    /// The events between the two points, as `v<version> <type>: <summary>`.
    pub events: Vec<String>,
    pub changes: Vec<Change>,
}

pub async fn state_diff(
    store: &Store,
    kind: AggregateKind,
    id: &str,
    from: Point,
    to: Option<Point>,
) -> Result<StateDiff, ReplayError> {
    if let (Point::Position(a), Some(Point::Position(b))) = (from, to) {
        if b < a {
            return Err(ReplayError::InvalidArgument(format!(
                "--to {b} is before --from {a}"
            )));
        }
    }
    if let (Point::Time(a), Some(Point::Time(b))) = (from, to) {
        if b < a {
            return Err(ReplayError::InvalidArgument(
                "--to is before --from".to_string(),
            ));
        }
    }
    let all = events_until(store, kind, id, to).await?;
    let split = all.iter().take_while(|e| from.covers(e)).count();
    let stream = format!("{}/{id}", kind.stream_type());
    if split == all.len() {
        return Err(ReplayError::EmptyRange(format!(
            "{stream} has no events between {from} and {}",
            to.map_or_else(|| "now".to_string(), |t| t.to_string())
        )));
    }
    let before = fold_json(kind, &all[..split])?;
    let after = fold_json(kind, &all)?;
    let events = all[split..]
        .iter()
        .map(|e| {
            Ok(format!(
                "v{} {} {}: {}",
                e.version,
                short_time(&e.recorded_at),
                e.event_type,
                summary(&decode(e)?)
            ))
        })
        .collect::<Result<_, ReplayError>>()?;
    Ok(StateDiff {
        stream,
        from_version: all[..split].last().map_or(0, |e| e.version),
        to_version: all.last().map_or(0, |e| e.version),
        events,
        changes: diff(&before, &after),
    })
}

pub async fn run_diff(args: DiffArgs, out: &mut impl Write) -> Result<(), ReplayError> {
    let kind = AggregateKind::parse(&args.aggregate)?;
    let store = super::open(&args.db).await?;
    let d = state_diff(&store, kind, &args.id, args.from, args.to).await?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &d)
            .map_err(|e| ReplayError::Output(e.to_string()))?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "{} v{} → v{}", d.stream, d.from_version, d.to_version)?;
    for e in &d.events {
        writeln!(out, "  {e}")?;
    }
    let show = |v: &Option<Value>| v.as_ref().map_or_else(|| "∅".to_string(), Value::to_string);
    for c in &d.changes {
        let mark = match (&c.before, &c.after) {
            (None, _) => '+',
            (_, None) => '-',
            _ => '~',
        };
        writeln!(
            out,
            "{mark} {}: {} → {}",
            c.path,
            show(&c.before),
            show(&c.after)
        )?;
    }
    Ok(())
}

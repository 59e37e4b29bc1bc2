//! `commerce trace <correlation id>`: every event of one business flow, across all
//! aggregates, as a tree: an event hangs under the event that caused it (its causation
//! id), events without a cause in the flow are roots, siblings in log order.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use clap::Args;
use infra::store::ScanFilter;
use infra::{RecordedEvent, Store};
use uuid::Uuid;

use super::aggregate::decode;
use super::format::short_time;
use super::summary::summary;
use super::ReplayError;
use crate::cli::DatabaseArgs;

/// Options of `commerce trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// The correlation id of the flow (a request's id, carried by every event it caused).
    pub correlation_id: String,
    #[command(flatten)]
    pub db: DatabaseArgs,
}

/// One line of a trace: the event and how deep it sits in the causation tree.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceLine {
    pub depth: usize,
    pub event: RecordedEvent,
    pub summary: String,
}

/// The events of one correlation id, depth first by causation, in log order among
/// siblings.
pub async fn trace(store: &Store, correlation_id: Uuid) -> Result<Vec<TraceLine>, ReplayError> {
    let filter = ScanFilter {
        correlation_id: Some(correlation_id),
        ..ScanFilter::default()
    };
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = store.scan(&filter, after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        events.extend(page);
    }
    if events.is_empty() {
        return Err(ReplayError::NoSuchFlow(correlation_id));
    }
    let ids: HashSet<Uuid> = events.iter().map(|e| e.event_id).collect();
    let mut children: HashMap<Option<Uuid>, Vec<usize>> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        let parent = e
            .causation_id
            .filter(|c| ids.contains(c) && *c != e.event_id);
        children.entry(parent).or_default().push(i);
    }
    let mut lines = Vec::with_capacity(events.len());
    let mut stack: Vec<(usize, usize)> = children
        .get(&None)
        .map(|roots| roots.iter().rev().map(|&i| (i, 0)).collect())
        .unwrap_or_default();
    let mut seen = HashSet::new();
    while let Some((i, depth)) = stack.pop() {
        if !seen.insert(i) {
            continue;
        }
        let e = &events[i];
        if let Some(kids) = children.get(&Some(e.event_id)) {
            stack.extend(kids.iter().rev().map(|&k| (k, depth + 1)));
        }
        lines.push(TraceLine {
            depth,
            summary: summary(&decode(e)?),
            event: e.clone(),
        });
    }
    Ok(lines)
}

pub async fn run(args: TraceArgs, out: &mut impl Write) -> Result<(), ReplayError> {
    let id = Uuid::parse_str(args.correlation_id.trim())
        .map_err(|_| ReplayError::InvalidUuid(args.correlation_id.clone()))?;
    let store = super::open(&args.db).await?;
    let lines = trace(&store, id).await?;
    let streams: HashSet<String> = lines
        .iter()
        .map(|l| format!("{}/{}", l.event.stream_type, l.event.stream_id))
        .collect();
    writeln!(
        out,
        "correlation {id}: {} events in {} streams",
        lines.len(),
        streams.len()
    )?;
    for l in &lines {
        let e = &l.event;
        writeln!(
            out,
            "{}{} #{} {}/{} v{} {} by {}: {}",
            "  ".repeat(l.depth + 1),
            short_time(&e.recorded_at),
            e.position,
            e.stream_type,
            e.stream_id,
            e.version,
            e.event_type,
            e.actor.as_deref().unwrap_or("-"),
            l.summary
        )?;
    }
    Ok(())
}

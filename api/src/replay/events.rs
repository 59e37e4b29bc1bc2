//! `commerce events`: the log, or the part of it a filter selects, as a table for a
//! person or JSON lines for a program; `--follow` keeps printing new events as they
//! become readable (it polls the safe head, so it never skips one).

use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Args;
use infra::store::ScanFilter;
use infra::{RecordedEvent, Store};
use uuid::Uuid;

use super::aggregate::{decode, AggregateKind};
use super::format::{or_dash, short_time, write_envelope_json, Table};
use super::point::parse_time_arg;
use super::summary::summary;
use super::ReplayError;
use crate::cli::DatabaseArgs;

/// Options of `commerce events`.
#[derive(Debug, Args, Clone)]
pub struct EventsArgs {
    /// One stream, as AGGREGATE/ID (e.g. `order/0193…`).
    #[arg(long)]
    pub stream: Option<String>,
    /// Only streams of this aggregate.
    #[arg(long)]
    pub aggregate: Option<String>,
    /// Only these event types (repeat or comma-separate).
    #[arg(long = "type", value_delimiter = ',')]
    pub types: Vec<String>,
    /// Only events of this business flow.
    #[arg(long)]
    pub correlation: Option<String>,
    /// Only events by this actor, e.g. `staff:alice` or `saga:checkout`.
    #[arg(long)]
    pub actor: Option<String>,
    /// Recorded at or after this RFC 3339 time.
    #[arg(long, value_parser = parse_time_arg)]
    pub since: Option<DateTime<Utc>>,
    /// Recorded at or before this RFC 3339 time.
    #[arg(long, value_parser = parse_time_arg)]
    pub until: Option<DateTime<Utc>>,
    /// Start after this global position.
    #[arg(long, default_value_t = 0)]
    pub after: i64,
    /// Stop after this many events.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Keep waiting for new events (Ctrl-C stops).
    #[arg(long)]
    pub follow: bool,
    /// One JSON object per line (the export envelope) instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub db: DatabaseArgs,
}

impl EventsArgs {
    /// The scan filter these options describe; bad input is a one-line error.
    pub fn filter(&self) -> Result<ScanFilter, ReplayError> {
        let mut filter = ScanFilter {
            event_types: self.types.iter().map(|t| t.trim().to_string()).collect(),
            actor: self.actor.clone(),
            since: self.since,
            until: self.until,
            ..ScanFilter::default()
        };
        if let Some(a) = &self.aggregate {
            filter.stream_type = Some(AggregateKind::parse(a)?.stream_type().to_string());
        }
        if let Some(s) = &self.stream {
            let (aggregate, id) = s
                .split_once('/')
                .filter(|(a, id)| !a.is_empty() && !id.is_empty())
                .ok_or_else(|| ReplayError::InvalidStream(s.clone()))?;
            let kind = AggregateKind::parse(aggregate)?;
            if filter
                .stream_type
                .as_deref()
                .is_some_and(|t| t != kind.stream_type())
            {
                return Err(ReplayError::InvalidArgument(format!(
                    "--stream {s} is not of --aggregate {}",
                    self.aggregate.as_deref().unwrap_or_default()
                )));
            }
            filter.stream_type = Some(kind.stream_type().to_string());
            filter.stream_id = Some(id.to_string());
        }
        if let Some(c) = &self.correlation {
            filter.correlation_id =
                Some(Uuid::parse_str(c.trim()).map_err(|_| ReplayError::InvalidUuid(c.clone()))?);
        }
        if let (Some(a), Some(b)) = (self.since, self.until) {
            if b < a {
                return Err(ReplayError::InvalidArgument(
                    "--until is before --since".into(),
                ));
            }
        }
        if self.after < 0 {
            return Err(ReplayError::InvalidArgument(
                "--after must be a position (0 or more)".into(),
            ));
        }
        Ok(filter)
    }
}

/// One table row of an event: position, time, stream, version, type, actor, summary.
fn row(e: &RecordedEvent) -> Result<Vec<String>, ReplayError> {
    Ok(vec![
        e.position.to_string(),
        short_time(&e.recorded_at),
        format!("{}/{}", e.stream_type, e.stream_id),
        e.version.to_string(),
        e.event_type.clone(),
        or_dash(e.actor.as_deref()),
        summary(&decode(e)?),
    ])
}

const HEADER: [&str; 7] = [
    "POSITION", "RECORDED", "STREAM", "V", "EVENT", "ACTOR", "SUMMARY",
];

/// Prints the selected events; with `follow`, waits for more until `limit` is reached
/// (or forever). Returns how many were printed.
pub async fn list(
    store: &Store,
    args: &EventsArgs,
    out: &mut impl Write,
) -> Result<u64, ReplayError> {
    let filter = args.filter()?;
    let limit = args.limit.unwrap_or(u64::MAX);
    let mut after = args.after;
    let mut printed = 0u64;
    let mut header_written = false;
    // A page is printed as soon as it is read: a table is aligned per page.
    while printed < limit {
        let want = (limit - printed).min(1000) as i64;
        let page = store.scan(&filter, after, want).await?;
        if page.is_empty() {
            if !args.follow {
                break;
            }
            out.flush()?;
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        after = page.last().map_or(after, |e| e.position);
        printed += page.len() as u64;
        if args.json {
            for e in &page {
                write_envelope_json(out, e)?;
                writeln!(out)?;
            }
        } else {
            let mut table = Table::new(&HEADER);
            for e in &page {
                table.row(row(e)?);
            }
            if header_written {
                let mut text = Vec::new();
                table.write(&mut text)?;
                // Later pages without the header line.
                let text = String::from_utf8_lossy(&text);
                for line in text.lines().skip(1) {
                    writeln!(out, "{line}")?;
                }
            } else {
                table.write(out)?;
                header_written = true;
            }
        }
        out.flush()?;
    }
    Ok(printed)
}

pub async fn run(args: EventsArgs, out: &mut impl Write) -> Result<(), ReplayError> {
    args.filter()?;
    let store = super::open(&args.db).await?;
    let printed = list(&store, &args, out).await?;
    if printed == 0 && !args.json {
        writeln!(out, "no events match")?;
    }
    Ok(())
}

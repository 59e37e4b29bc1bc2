//! `commerce projections`: rebuild a SQL view without downtime, and show where every
//! projection stands (docs/projections.md).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use infra::projection::{rebuild, status, ProjectionStatus, RebuildProgress};
use infra::{Store, StoreConfig};
use serde_json::json;

use crate::cli::{open_store, CliError, DatabaseArgs};

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Rebuild a projection (or `all`) from position 0 into new tables beside the live
    /// ones, catch up to the head, then swap them in atomically. Queries keep answering
    /// from the old tables meanwhile; a running engine carries on on the new ones.
    Rebuild(RebuildArgs),
    /// Each projection's position, lag (events and seconds) and rate.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// The projection: order_summaries, carts, stock_levels, product_catalog,
    /// loyalty_accounts, payments_ledger, sales, returns, or `all`.
    pub name: String,
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Events read and applied per transaction.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub page: i64,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Seconds between the two readings the rate is measured over (0: no rate).
    #[arg(long, default_value_t = 1.0)]
    pub sample: f64,
    /// One JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(command: ProjectionsCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match command {
        ProjectionsCommand::Rebuild(args) => rebuild_command(args, out).await,
        ProjectionsCommand::Status(args) => status_command(args, out).await,
    }
}

fn io(e: std::io::Error) -> CliError {
    CliError::runtime(format!("cannot write: {e}"))
}

async fn rebuild_command(args: RebuildArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let chosen: Vec<_> = if args.name == "all" {
        projections::all().to_vec()
    } else {
        let p = projections::by_name(&args.name).ok_or_else(|| {
            let names: Vec<_> = projections::all().iter().map(|p| p.name()).collect();
            CliError::config(format!(
                "no projection `{}`; one of: {}, all",
                args.name,
                names.join(", ")
            ))
        })?;
        vec![p]
    };
    let store = open_store(&args.db, StoreConfig::default()).await?;
    for projection in chosen {
        let report = rebuild_one(&store, projection, args.page, out).await?;
        writeln!(
            out,
            "{}: version {} live at position {} ({} events in {:.1} s, {:.0} events/s)",
            report.projection,
            report.version,
            report.position,
            report.events,
            report.seconds,
            report.events as f64 / report.seconds.max(1e-9)
        )
        .map_err(io)?;
    }
    Ok(())
}

/// A progress bar with rate and ETA on a terminal; a plain line every few seconds
/// otherwise (logs, CI).
async fn rebuild_one(
    store: &Store,
    projection: &'static dyn projections::Projection,
    page: i64,
    out: &mut dyn Write,
) -> Result<infra::projection::RebuildReport, CliError> {
    let name = projection.name();
    let terminal = std::io::stderr().is_terminal();
    let bar = if terminal {
        let bar = ProgressBar::new(0);
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix} {elapsed_precise} [{bar:40}] {pos}/{len} {per_sec}, eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(name);
        bar
    } else {
        ProgressBar::hidden()
    };
    let started = Instant::now();
    let mut last_line = Instant::now();
    let mut lines = Vec::new();
    let report = rebuild(store, projection, page, |p: &RebuildProgress| {
        bar.set_length(p.head.max(p.position) as u64);
        bar.set_position(p.position as u64);
        if !terminal && last_line.elapsed() >= Duration::from_secs(5) {
            last_line = Instant::now();
            let rate = p.events as f64 / started.elapsed().as_secs_f64().max(1e-9);
            lines.push(format!(
                "{name}: position {} of {} ({rate:.0} events/s)",
                p.position, p.head
            ));
        }
    })
    .await
    .map_err(|e| CliError::runtime(format!("rebuild of {name} failed: {e}")))?;
    bar.finish_and_clear();
    for line in lines {
        writeln!(out, "{line}").map_err(io)?;
    }
    Ok(report)
}

async fn status_command(args: StatusArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let store = open_store(&args.db, StoreConfig::default()).await?;
    let failed = |e: infra::projection::ProjectionError| CliError::runtime(e.to_string());
    let first = status(&store).await.map_err(failed)?;
    let (rows, seconds) = if args.sample > 0.0 {
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(args.sample)).await;
        (
            status(&store).await.map_err(failed)?,
            started.elapsed().as_secs_f64(),
        )
    } else {
        (first.clone(), 0.0)
    };
    let rate = |row: &ProjectionStatus| -> Option<f64> {
        let before = first
            .iter()
            .find(|r| r.name == row.name && r.version == row.version)?;
        (seconds > 0.0).then(|| (row.position - before.position) as f64 / seconds)
    };
    if args.json {
        let items: Vec<_> = rows
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                v["events_per_s"] = json!(rate(r));
                v
            })
            .collect();
        writeln!(out, "{}", serde_json::Value::Array(items)).map_err(io)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<18} {:>3} {:<8} {:>10} {:>10} {:>9} {:>10}  error",
        "projection", "v", "state", "position", "lag", "lag s", "events/s"
    )
    .map_err(io)?;
    for r in &rows {
        let error = match (&r.error, r.failed_position) {
            (Some(e), Some(p)) => format!("stopped at {p}: {e}"),
            (Some(e), None) => e.clone(),
            _ => String::new(),
        };
        writeln!(
            out,
            "{:<18} {:>3} {:<8} {:>10} {:>10} {:>9.1} {:>10}  {error}",
            r.name,
            r.version,
            r.state,
            r.position,
            r.lag_events,
            r.lag_seconds,
            rate(r).map_or("-".to_string(), |x| format!("{x:.0}"))
        )
        .map_err(io)?;
    }
    Ok(())
}

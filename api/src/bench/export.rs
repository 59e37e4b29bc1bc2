//! `commerce bench export`: how fast `commerce export` streams the log to each format,
//! against reading the same range alone (page by page, nothing decoded or written) in
//! the same run, with the peak memory of each phase.
//!
//! The log is appended first through the store (carts with realistic item payloads,
//! 100 events per append, four writers), into a fresh schema or file that is removed
//! afterwards.

use std::time::Instant;

use aggregates::cart::{CartEvent, CartItemAdded};
use aggregates::EventExample;
use clap::Args;
use indicatif::ProgressBar;
use infra::store::ScanFilter;
use infra::{NewEvent, Store, StreamRef};
use serde_json::json;
use uuid::Uuid;

use crate::cli::{DatabaseArgs, DEFAULT_DATABASE_URL};
use crate::replay::export::{export, ExportArgs, Format};

/// Options of `commerce bench export`.
#[derive(Debug, Args)]
pub struct ExportBenchArgs {
    /// Events in the log to export.
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Database to measure on: `postgres://…` or `sqlite:PATH` (a fresh schema or files
    /// next to PATH, removed afterwards).
    #[arg(long, env = "COMMERCE_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Events per page read.
    #[arg(long, default_value_t = 5000)]
    pub batch: i64,
    /// Print only the JSON line.
    #[arg(long)]
    pub json: bool,
}

/// Events per append and streams written at once.
const PER_APPEND: usize = 100;
const WRITERS: usize = 4;

async fn fill(store: &Store, events: usize) -> Result<(), String> {
    let appends = events.div_ceil(PER_APPEND);
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for a in (w..appends).step_by(WRITERS) {
                let n = PER_APPEND.min(events - a * PER_APPEND);
                let correlation = Uuid::now_v7().to_string();
                let batch = (0..n)
                    .map(|i| {
                        let mut added = CartItemAdded::example();
                        added.quantity_added = aggregates::Quantity(1 + (i % 5) as u32);
                        let (event_type, version, payload) = CartEvent::from(added).encode();
                        NewEvent {
                            event_id: Uuid::now_v7(),
                            event_type: event_type.to_string(),
                            schema_version: version as i32,
                            payload,
                            metadata: [
                                ("actor".to_string(), "bench".to_string()),
                                ("correlation_id".to_string(), correlation.clone()),
                            ]
                            .into(),
                        }
                    })
                    .collect();
                let stream = StreamRef::new("cart", Uuid::now_v7().to_string());
                store
                    .append(&stream, 0, batch, None)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Resets the process's peak resident memory (Linux), so each phase reports its own.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

async fn read_only(store: &Store, batch: i64) -> Result<usize, String> {
    let filter = ScanFilter::default();
    let mut after = 0;
    let mut events = 0;
    loop {
        let page = store
            .scan(&filter, after, batch)
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { break };
        after = last.position;
        events += page.len();
    }
    Ok(events)
}

pub async fn export_bench(args: ExportBenchArgs) -> Result<(), String> {
    let run_id = Uuid::now_v7().simple().to_string()[20..].to_string();
    let (store, scratch) = super::relay::fresh_store(&args.database_url, &run_id).await?;
    let dir = std::env::temp_dir().join(format!("commerce-bench-export-{run_id}"));
    let result = async {
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let appended_at = Instant::now();
        fill(&store, args.events).await?;
        let append_s = appended_at.elapsed().as_secs_f64();
        reset_peak_rss();
        let started = Instant::now();
        let read = read_only(&store, args.batch).await?;
        let read_s = started.elapsed().as_secs_f64();
        let read_rss = peak_rss_mib();
        let mut formats = Vec::new();
        for (name, format) in [
            ("ndjson", Format::Ndjson),
            ("csv", Format::Csv),
            ("parquet", Format::Parquet),
        ] {
            let output = dir.join(format!("events.{name}"));
            let export_args = ExportArgs {
                format,
                from: None,
                to: None,
                types: Vec::new(),
                output: Some(output.clone()),
                resume: false,
                batch: args.batch,
                measure: false,
                db: DatabaseArgs {
                    database_url: args.database_url.clone(),
                    database_max_connections: 4,
                },
            };
            reset_peak_rss();
            let started = Instant::now();
            let done = export(
                &store,
                &export_args,
                &mut std::io::sink(),
                &ProgressBar::hidden(),
            )
            .await
            .map_err(|e| e.to_string())?;
            let seconds = started.elapsed().as_secs_f64();
            let bytes = std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
            formats.push((name, done.events, seconds, bytes, peak_rss_mib()));
        }
        Ok::<_, String>((append_s, read, read_s, read_rss, formats))
    }
    .await;
    let backend = store.backend_name();
    let _ = std::fs::remove_dir_all(&dir);
    scratch.remove().await;
    let (append_s, read, read_s, read_rss, formats) = result?;
    let read_rate = read as f64 / read_s.max(1e-9);
    if !args.json {
        println!("backend {backend}: {read} events appended in {append_s:.1} s");
        println!(
            "read the range alone (baseline): {read_s:.2} s, {read_rate:.0} events/s, peak RSS {read_rss:.0} MiB"
        );
        for (name, events, seconds, bytes, rss) in &formats {
            let rate = *events as f64 / seconds.max(1e-9);
            println!(
                "export {name:<7}: {seconds:.2} s, {rate:.0} events/s ({:.2} x read-only), {:.1} MiB written, peak RSS {rss:.0} MiB",
                rate / read_rate.max(1e-9),
                *bytes as f64 / 1_048_576.0
            );
        }
    }
    let cells: Vec<_> = formats
        .iter()
        .map(|(name, events, seconds, bytes, rss)| {
            let rate = *events as f64 / seconds.max(1e-9);
            json!({
                "format": name,
                "events_per_s": rate.round(),
                "ratio_vs_read": (rate / read_rate.max(1e-9) * 100.0).round() / 100.0,
                "bytes": bytes,
                "peak_rss_mib": rss.round(),
            })
        })
        .collect();
    println!(
        "{}",
        json!({
            "bench": "export",
            "backend": backend,
            "events": read,
            "read_only_events_per_s": read_rate.round(),
            "read_only_peak_rss_mib": read_rss.round(),
            "formats": cells,
        })
    );
    Ok(())
}

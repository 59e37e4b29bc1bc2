//! `commerce bench`: throughput figures with baselines measured in the same run, so the
//! ratios hold on a noisy machine. Nothing here is a test; it prints what it measured.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use cqrs_es::persist::{PersistedEventRepository, SerializedEvent};
use cqrs_es::{Aggregate, DomainEvent};
use infra::{Store, StoreConfig, SystemClock};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Executor, PgPool, Postgres, QueryBuilder, Sqlite, SqlitePool};
use uuid::Uuid;

use crate::cli::DEFAULT_DATABASE_URL;

mod checkout;
mod commands;
mod export;
mod http;
mod projections;
mod relay;
mod search;
mod views;
pub use checkout::CheckoutArgs;
pub use commands::CommandsArgs;
pub use export::ExportBenchArgs;
pub use http::HttpArgs;
pub use projections::ProjectionsArgs;
pub use relay::{RelayArgs, DEFAULT_NATS_URL};
pub use search::SearchArgs;
pub use views::ViewsArgs;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Event appends: raw multi-row INSERT vs stock postgres-es vs this store.
    Append(AppendArgs),
    /// Relay: raw pipelined JetStream publishing vs the relay draining a stored backlog.
    Relay(RelayArgs),
    /// Command layer: commands/s on many streams and one hot stream vs raw appends.
    Commands(CommandsArgs),
    /// HTTP API: a mixed read/command load of keep-alive clients vs a trivial route.
    Http(HttpArgs),
    /// SQL views: every view built from position 0 vs reading and decoding the log.
    Projections(ProjectionsArgs),
    /// Search: event -> searchable latency of the embedded index vs the append alone.
    Search(SearchArgs),
    /// Read-your-writes: command then view read at its position vs an immediate read.
    Views(ViewsArgs),
    /// Export: `commerce export` to each format vs reading the same range alone.
    Export(ExportBenchArgs),
    /// Checkout saga: virtual customers from cart to delivered order vs bare appends.
    Checkout(CheckoutArgs),
}

#[derive(Debug, Args)]
pub struct AppendArgs {
    /// Database to measure on: `postgres://…` or `sqlite:PATH`. The benchmark works in a
    /// fresh schema (PostgreSQL) or fresh files next to PATH (SQLite) and removes them.
    #[arg(long, env = "COMMERCE_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Seconds each measurement runs.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Concurrent writers, each on its own stream.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 8, 32, 128])]
    pub writers: Vec<usize>,
    /// Events per command (one append each).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 5])]
    pub events_per_command: Vec<usize>,
    /// PostgreSQL: the store's group-commit calls in flight at once
    /// (`StoreConfig::append_writers`).
    #[arg(long, default_value_t = StoreConfig::default().append_writers)]
    pub append_writers: usize,
    /// PostgreSQL: yields a writer grants its callers before writing a short group
    /// (`StoreConfig::append_gather_yields`).
    #[arg(long, default_value_t = StoreConfig::default().append_gather_yields)]
    pub append_gather_yields: u32,
    /// Print only the JSON line (with every cell), no table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(command: BenchCommand) -> Result<(), String> {
    match command {
        BenchCommand::Append(args) => append(args).await,
        BenchCommand::Relay(args) => relay::relay(args).await,
        BenchCommand::Commands(args) => commands::commands(args).await,
        BenchCommand::Http(args) => http::http(args).await,
        BenchCommand::Projections(args) => projections::projections(args).await,
        BenchCommand::Search(args) => search::search(args).await,
        BenchCommand::Views(args) => views::views(args).await,
        BenchCommand::Export(args) => export::export_bench(args).await,
        BenchCommand::Checkout(args) => checkout::checkout(args).await,
    }
}

/// The aggregate type the benchmark writes as (only its `TYPE` matters).
#[derive(Debug, Default, Serialize, Deserialize)]
struct BenchStream;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum BenchEvent {
    ItemAdded(Value),
}

impl DomainEvent for BenchEvent {
    fn event_type(&self) -> String {
        "ItemAdded".into()
    }
    fn event_version(&self) -> String {
        "1".into()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("benchmark streams take no commands")]
struct NoCommands;

impl Aggregate for BenchStream {
    const TYPE: &'static str = "bench";
    type Command = ();
    type Event = BenchEvent;
    type Error = NoCommands;
    type Services = ();

    async fn handle(
        &mut self,
        _: (),
        _: &(),
        _: &cqrs_es::event_sink::EventSink<Self>,
    ) -> Result<(), NoCommands> {
        Err(NoCommands)
    }

    fn apply(&mut self, _: BenchEvent) {}
}

/// A 300-byte event payload (serialized).
fn payload(seq: usize) -> Value {
    let mut p = json!({
        "sku": format!("SKU-{seq:08}"),
        "quantity": 3,
        "unit_price": {"amount": 1999, "currency": "EUR"},
        "note": "",
    });
    let len = serde_json::to_string(&p).map(|s| s.len()).unwrap_or(0);
    p["note"] = Value::String("x".repeat(300usize.saturating_sub(len)));
    p
}

fn serialized(stream: &str, first_sequence: usize, count: usize) -> Vec<SerializedEvent> {
    (first_sequence..first_sequence + count)
        .map(|seq| SerializedEvent {
            aggregate_id: stream.to_string(),
            sequence: seq,
            aggregate_type: BenchStream::TYPE.to_string(),
            event_type: "ItemAdded".into(),
            event_version: "1".into(),
            payload: json!({ "ItemAdded": payload(seq) }),
            metadata: json!({ "correlation_id": Uuid::now_v7().to_string(), "actor": "bench" }),
        })
        .collect()
}

/// What one measurement found: events per second and the 99th percentile of the time
/// one call took.
#[derive(Debug, Clone, Copy)]
struct Rate {
    events_per_s: f64,
    p99_ms: f64,
}

/// Runs `writers` concurrent loops of `append(writer, next_sequence)` for `seconds`
/// and returns the rate and the calls' p99 latency.
async fn measure<F, Fut>(writers: usize, seconds: f64, append: F) -> Result<Rate, String>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<usize, String>> + Send,
{
    let append = Arc::new(append);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::with_capacity(writers);
    for w in 0..writers {
        let append = append.clone();
        tasks.push(tokio::spawn(async move {
            let mut next = 1;
            let mut written = 0usize;
            let mut took = Vec::new();
            while Instant::now() < deadline {
                let call = Instant::now();
                let n = append(w, next).await?;
                took.push(call.elapsed());
                next += n;
                written += n;
            }
            Ok::<_, String>((written, took))
        }));
    }
    let mut total = 0;
    let mut took = Vec::new();
    for t in tasks {
        let (written, times) = t.await.map_err(|e| e.to_string())??;
        total += written;
        took.extend(times);
    }
    let events_per_s = total as f64 / start.elapsed().as_secs_f64();
    took.sort_unstable();
    let p99 = took
        .get((took.len() * 99 / 100).min(took.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default();
    Ok(Rate {
        events_per_s,
        p99_ms: p99.as_secs_f64() * 1000.0,
    })
}

/// Events per second of this store's `persist`, the path every aggregate command takes.
async fn measure_ours(
    store: &Store,
    writers: usize,
    seconds: f64,
    tag: String,
    epc: usize,
) -> Result<Rate, String> {
    let store = store.clone();
    measure(writers, seconds, move |w, next| {
        let store = store.clone();
        let events = serialized(&format!("{tag}-{w}"), next, epc);
        async move {
            store
                .persist::<BenchStream>(&events, None)
                .await
                .map_err(|e| e.to_string())?;
            Ok(epc)
        }
    })
    .await
}

const RAW_COLUMNS: &str = "(event_id, stream_type, stream_id, version, event_type, \
    schema_version, payload, metadata, recorded_at)";

fn push_raw_rows<'a, DB: sqlx::Database>(
    q: &mut QueryBuilder<'a, DB>,
    stream: &'a str,
    first: usize,
    count: usize,
    json_cast: &'static str,
) where
    Uuid: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    i32: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    chrono::DateTime<chrono::Utc>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    q.push_values(first..first + count, |mut b, seq| {
        b.push_bind(Uuid::now_v7())
            .push_bind(BenchStream::TYPE)
            .push_bind(stream)
            .push_bind(seq as i64)
            .push_bind("ItemAdded")
            .push_bind(1i32)
            .push_bind(payload(seq).to_string())
            .push_unseparated(json_cast)
            .push_bind(json!({"actor": "bench"}).to_string())
            .push_unseparated(json_cast)
            .push_bind(chrono::Utc::now());
    });
}

struct Cell {
    events_per_command: usize,
    writers: usize,
    raw: Rate,
    postgres_es: Option<Rate>,
    ours: Rate,
    /// PostgreSQL: appends per group-commit call during ours' measurement.
    appends_per_call: Option<f64>,
}

/// Appends per group-commit call between two readings of [`Store::append_groups`].
fn group_size(before: Option<(u64, u64)>, after: Option<(u64, u64)>) -> Option<f64> {
    let (calls, appends) = after?;
    let (calls_before, appends_before) = before.unwrap_or_default();
    let calls = calls.checked_sub(calls_before).filter(|c| *c > 0)?;
    Some(appends.saturating_sub(appends_before) as f64 / calls as f64)
}

impl Cell {
    fn json(&self) -> Value {
        json!({
            "events_per_command": self.events_per_command,
            "writers": self.writers,
            "raw_events_per_s": self.raw.events_per_s.round(),
            "postgres_es_events_per_s": self.postgres_es.map(|p| p.events_per_s.round()),
            "ours_events_per_s": self.ours.events_per_s.round(),
            "ratio_vs_raw": round2(self.ours.events_per_s / self.raw.events_per_s),
            "ratio_vs_postgres_es": self
                .postgres_es
                .map(|p| round2(self.ours.events_per_s / p.events_per_s)),
            "raw_p99_ms": round2(self.raw.p99_ms),
            "ours_p99_ms": round2(self.ours.p99_ms),
            "p99_ratio_vs_raw": round2(self.ours.p99_ms / self.raw.p99_ms),
            "ours_appends_per_call": self.appends_per_call.map(|n| (n * 10.0).round() / 10.0),
        })
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

async fn append(args: AppendArgs) -> Result<(), String> {
    let url = args.database_url.clone();
    let max_writers = args.writers.iter().copied().max().unwrap_or(1);
    let run_id = Uuid::now_v7().simple().to_string();
    let cells = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        bench_postgres(&args, &url, max_writers, &run_id).await?
    } else if let Some(path) = url.strip_prefix("sqlite:") {
        bench_sqlite(&args, path, &run_id).await?
    } else {
        return Err(format!("unsupported --database-url `{url}`"));
    };
    let backend = if url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    };
    if !args.json {
        println!(
            "append throughput on {backend}, {} s per measurement, 300-byte payloads, one stream per writer",
            args.seconds
        );
        println!(
            "{:>10} {:>8} {:>14} {:>16} {:>14} {:>9} {:>12}",
            "events/cmd",
            "writers",
            "raw ev/s",
            "postgres-es ev/s",
            "ours ev/s",
            "ours/raw",
            "ours/pg-es"
        );
        for c in &cells {
            println!(
                "{:>10} {:>8} {:>14.0} {:>16} {:>14.0} {:>9.2} {:>12}",
                c.events_per_command,
                c.writers,
                c.raw.events_per_s,
                c.postgres_es
                    .map_or("-".into(), |p| format!("{:.0}", p.events_per_s)),
                c.ours.events_per_s,
                c.ours.events_per_s / c.raw.events_per_s,
                c.postgres_es.map_or("-".into(), |p| format!(
                    "{:.2}",
                    c.ours.events_per_s / p.events_per_s
                )),
            );
        }
        for c in cells.iter().filter(|c| c.writers == 32) {
            println!(
                "p99 append latency, {} events/cmd, 32 writers: raw {:.2} ms, postgres-es {}, ours {:.2} ms ({:.2} x raw)",
                c.events_per_command,
                c.raw.p99_ms,
                c.postgres_es
                    .map_or("-".into(), |p| format!("{:.2} ms", p.p99_ms)),
                c.ours.p99_ms,
                c.ours.p99_ms / c.raw.p99_ms,
            );
            if let Some(n) = c.appends_per_call {
                println!(
                    "group commit, {} events/cmd, 32 writers: {n:.1} appends per call",
                    c.events_per_command
                );
            }
        }
    }
    // The headline cell: 32 writers, 5 events per command (or the largest measured).
    let headline = cells
        .iter()
        .find(|c| c.writers == 32 && c.events_per_command == 5)
        .or_else(|| cells.last())
        .ok_or("nothing measured")?;
    let mut summary = headline.json();
    summary["backend"] = json!(backend);
    summary["seconds_per_measurement"] = json!(args.seconds);
    if args.json {
        summary["cells"] = Value::Array(cells.iter().map(Cell::json).collect());
    }
    println!("{summary}");
    Ok(())
}

async fn bench_postgres(
    args: &AppendArgs,
    url: &str,
    max_writers: usize,
    run_id: &str,
) -> Result<Vec<Cell>, String> {
    let schema = format!("bench_{run_id}");
    let admin = PgPool::connect(url)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", crate::cli::redact(url)))?;
    admin
        .execute(format!("CREATE SCHEMA {schema}").as_str())
        .await
        .map_err(|e| e.to_string())?;
    let result = async {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| e.to_string())?
            .options([("search_path", schema.as_str())]);
        let pool = PgPoolOptions::new()
            // One connection per writer, within the server's default limit of 100 (with
            // room for the store's own work): beyond it writers share connections, as
            // any application's would. The same pool serves all three contenders.
            .max_connections((max_writers as u32 + 4).min(64))
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(options)
            .await
            .map_err(|e| e.to_string())?;
        let config = StoreConfig {
            snapshot_every: 0,
            append_writers: args.append_writers,
            append_gather_yields: args.append_gather_yields,
            ..StoreConfig::default()
        };
        let store = Store::from_pg_pool(pool.clone(), config, Arc::new(SystemClock));
        store.migrate().await.map_err(|e| e.to_string())?;
        pool.execute(
            "CREATE TABLE raw_events (
                position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                event_id uuid NOT NULL, stream_type text NOT NULL, stream_id text NOT NULL,
                version bigint NOT NULL, event_type text NOT NULL, schema_version integer NOT NULL,
                payload json NOT NULL, metadata json NOT NULL, recorded_at timestamptz NOT NULL,
                UNIQUE (stream_type, stream_id, version));
             CREATE TABLE pges_events (
                aggregate_type text NOT NULL, aggregate_id text NOT NULL,
                sequence bigint CHECK (sequence >= 0) NOT NULL,
                event_type text NOT NULL, event_version text NOT NULL,
                payload json NOT NULL, metadata json NOT NULL,
                PRIMARY KEY (aggregate_type, aggregate_id, sequence));
             CREATE TABLE pges_snapshots (
                aggregate_type text NOT NULL, aggregate_id text NOT NULL,
                last_sequence bigint NOT NULL, current_snapshot bigint NOT NULL,
                payload json NOT NULL, PRIMARY KEY (aggregate_type, aggregate_id, last_sequence));",
        )
        .await
        .map_err(|e| e.to_string())?;
        let pges = Arc::new(
            postgres_es::PostgresEventRepository::new(pool.clone())
                .with_tables("pges_events", "pges_snapshots"),
        );

        let mut cells = Vec::new();
        for (round, &epc) in args.events_per_command.iter().enumerate() {
            for &writers in &args.writers {
                let tag = format!("r{round}w{writers}");
                let raw = {
                    let pool = pool.clone();
                    let tag = tag.clone();
                    measure(writers, args.seconds, move |w, next| {
                        let pool = pool.clone();
                        let stream = format!("{tag}-{w}");
                        async move {
                            let mut q: QueryBuilder<Postgres> =
                                QueryBuilder::new(format!("INSERT INTO raw_events {RAW_COLUMNS} "));
                            push_raw_rows(&mut q, &stream, next, epc, "::json");
                            q.build().execute(&pool).await.map_err(|e| e.to_string())?;
                            Ok(epc)
                        }
                    })
                    .await?
                };
                let postgres_es = {
                    let pges = pges.clone();
                    let tag = tag.clone();
                    measure(writers, args.seconds, move |w, next| {
                        let pges = pges.clone();
                        let events = serialized(&format!("{tag}-{w}"), next, epc);
                        async move {
                            pges.persist::<BenchStream>(&events, None)
                                .await
                                .map_err(|e| e.to_string())?;
                            Ok(epc)
                        }
                    })
                    .await?
                };
                let groups_before = store.append_groups();
                let ours = measure_ours(&store, writers, args.seconds, tag, epc).await?;
                let groups = group_size(groups_before, store.append_groups());
                cells.push(Cell {
                    events_per_command: epc,
                    writers,
                    raw,
                    postgres_es: Some(postgres_es),
                    ours,
                    appends_per_call: groups,
                });
            }
        }
        pool.close().await;
        Ok::<_, String>(cells)
    }
    .await;
    let _ = admin
        .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
        .await;
    result
}

async fn bench_sqlite(args: &AppendArgs, path: &str, run_id: &str) -> Result<Vec<Cell>, String> {
    let base = std::path::Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .join(format!("bench-{run_id}"));
    std::fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
    let result = async {
        let ours_url = format!("sqlite:{}", base.join("ours.db").display());
        let config = StoreConfig {
            snapshot_every: 0,
            ..StoreConfig::default()
        };
        let store = Store::connect(&ours_url, config)
            .await
            .map_err(|e| e.to_string())?;
        store.migrate().await.map_err(|e| e.to_string())?;
        // Raw baseline: the same pragmas and, like any SQLite writer, one connection.
        let raw_options = SqliteConnectOptions::new()
            .filename(base.join("raw.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let raw_pool: SqlitePool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(raw_options)
            .await
            .map_err(|e| e.to_string())?;
        raw_pool
            .execute(
                "CREATE TABLE raw_events (
                    position INTEGER PRIMARY KEY AUTOINCREMENT,
                    event_id BLOB NOT NULL, stream_type TEXT NOT NULL, stream_id TEXT NOT NULL,
                    version INTEGER NOT NULL, event_type TEXT NOT NULL,
                    schema_version INTEGER NOT NULL, payload TEXT NOT NULL,
                    metadata TEXT NOT NULL, recorded_at TEXT NOT NULL,
                    UNIQUE (stream_type, stream_id, version))",
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut cells = Vec::new();
        for (round, &epc) in args.events_per_command.iter().enumerate() {
            for &writers in &args.writers {
                let tag = format!("r{round}w{writers}");
                let raw = {
                    let pool = raw_pool.clone();
                    let tag = tag.clone();
                    measure(writers, args.seconds, move |w, next| {
                        let pool = pool.clone();
                        let stream = format!("{tag}-{w}");
                        async move {
                            let mut q: QueryBuilder<Sqlite> =
                                QueryBuilder::new(format!("INSERT INTO raw_events {RAW_COLUMNS} "));
                            push_raw_rows(&mut q, &stream, next, epc, "");
                            q.build().execute(&pool).await.map_err(|e| e.to_string())?;
                            Ok(epc)
                        }
                    })
                    .await?
                };
                let ours = measure_ours(&store, writers, args.seconds, tag, epc).await?;
                cells.push(Cell {
                    events_per_command: epc,
                    writers,
                    raw,
                    postgres_es: None,
                    ours,
                    appends_per_call: None,
                });
            }
        }
        raw_pool.close().await;
        Ok::<_, String>(cells)
    }
    .await;
    let _ = std::fs::remove_dir_all(&base);
    result
}

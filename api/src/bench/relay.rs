//! `commerce bench relay`: how fast the relay moves a stored backlog into JetStream,
//! against pipelined raw publishing of the very same messages in the same run.

use std::future::IntoFuture;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::context::{Context, ContextBuilder, PublishAckFuture};
use async_nats::jetstream::message::PublishMessage;
use clap::Args;
use futures_util::stream::FuturesOrdered;
use futures_util::StreamExt;
use infra::relay::{message, LogReader, Relay, RelayConfig, LOG_BATCH};
use infra::store::{NewEvent, RecordedEvent, StreamRef};
use infra::{Store, StoreConfig, SystemClock};
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, PgPool};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::round2;
use crate::cli::{redact, DEFAULT_DATABASE_URL};

/// Where `--nats-url` points unless told otherwise.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// How long the relay may take to publish the whole backlog before the run fails.
const RELAY_DEADLINE: Duration = Duration::from_secs(600);

#[derive(Debug, Args)]
pub struct RelayArgs {
    /// Database to measure on: `postgres://…` or `sqlite:PATH`. The benchmark works in a
    /// fresh schema (PostgreSQL) or a fresh file next to PATH (SQLite) and removes it.
    #[arg(long, env = "COMMERCE_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// NATS server with JetStream. The benchmark creates two streams and deletes them.
    #[arg(long, env = "COMMERCE_NATS_URL", default_value = DEFAULT_NATS_URL)]
    pub nats_url: String,
    /// Events in the backlog, appended before any timing starts.
    #[arg(long, default_value_t = 50_000)]
    pub events: usize,
    /// Streams the backlog is spread over.
    #[arg(long, default_value_t = 100)]
    pub streams: usize,
    /// Events per append while building the backlog.
    #[arg(long, default_value_t = 50)]
    pub batch: usize,
    /// Publishes awaiting their ack at once, for both measurements (default: the
    /// relay's default).
    #[arg(long, default_value_t = RelayConfig::default().max_in_flight)]
    pub max_in_flight: usize,
    /// Rounds of both measurements, alternating; the medians are reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Print only the JSON line, no table.
    #[arg(long)]
    pub json: bool,
}

/// A database to run on: a fresh schema or file, removed by [`Scratch::remove`].
pub(super) enum Scratch {
    Postgres { admin: PgPool, schema: String },
    Sqlite { dir: std::path::PathBuf },
}

impl Scratch {
    pub(super) async fn remove(self) {
        match self {
            Scratch::Postgres { admin, schema } => {
                let _ = admin
                    .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
                    .await;
                admin.close().await;
            }
            Scratch::Sqlite { dir } => {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }
}

/// Opens a fresh, migrated store for the run. On error nothing is left behind.
pub(super) async fn fresh_store(url: &str, run_id: &str) -> Result<(Store, Scratch), String> {
    let config = StoreConfig {
        snapshot_every: 0,
        ..StoreConfig::default()
    };
    let cannot = |e: &dyn std::fmt::Display| format!("cannot connect to {}: {e}", redact(url));
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let schema = format!("bench_{run_id}");
        // One direct connection first: a pool reports only "timed out" for a refused
        // connection, the direct error names the cause.
        let probe = tokio::time::timeout(Duration::from_secs(15), PgConnection::connect(url))
            .await
            .map_err(|_| cannot(&"timed out after 15 s"))?
            .map_err(|e| cannot(&e))?;
        let _ = probe.close().await;
        let admin = PgPool::connect(url).await.map_err(|e| cannot(&e))?;
        admin
            .execute(format!("CREATE SCHEMA {schema}").as_str())
            .await
            .map_err(|e| e.to_string())?;
        let scratch = Scratch::Postgres {
            admin,
            schema: schema.clone(),
        };
        let store = async {
            let options = PgConnectOptions::from_str(url)
                .map_err(|e| e.to_string())?
                .options([("search_path", schema.as_str())]);
            let pool = PgPoolOptions::new()
                .max_connections(config.max_connections)
                .connect_with(options)
                .await
                .map_err(|e| cannot(&e))?;
            let store = Store::from_pg_pool(pool, config, Arc::new(SystemClock));
            store.migrate().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(store)
        }
        .await;
        match store {
            Ok(store) => Ok((store, scratch)),
            Err(e) => {
                scratch.remove().await;
                Err(e)
            }
        }
    } else if let Some(path) = url.strip_prefix("sqlite:") {
        let dir = std::path::Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."))
            .join(format!("bench-{run_id}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let scratch = Scratch::Sqlite { dir: dir.clone() };
        let store = async {
            let url = format!("sqlite:{}", dir.join("relay.db").display());
            let store = Store::connect(&url, config).await.map_err(|e| cannot(&e))?;
            store.migrate().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(store)
        }
        .await;
        match store {
            Ok(store) => Ok((store, scratch)),
            Err(e) => {
                scratch.remove().await;
                Err(e)
            }
        }
    } else {
        Err(format!(
            "unsupported --database-url `{}`: use sqlite:PATH or postgres://USER@HOST/DB",
            redact(url)
        ))
    }
}

/// A NATS connection, or a one-line reason why not.
async fn connect_nats(url: &str) -> Result<async_nats::Client, String> {
    let connect = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(3))
        .connect(url);
    let client = match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => return Err(format!("cannot connect to NATS at {}: {e}", redact(url))),
        Err(_) => {
            return Err(format!(
                "cannot connect to NATS at {}: timed out after 5 s",
                redact(url)
            ))
        }
    };
    Ok(client)
}

/// The event payload: 300 to 500 bytes of JSON, varying with `seq`.
fn payload(seq: usize) -> Value {
    let mut p = super::payload(seq);
    let extra = (seq * 37) % 201;
    if let Some(Value::String(note)) = p.get_mut("note") {
        note.push_str(&"y".repeat(extra));
    }
    p
}

/// Appends `args.events` events over `args.streams` streams, `args.batch` per append,
/// from a few concurrent writers (each owning its streams).
async fn append_backlog(store: &Store, args: &RelayArgs) -> Result<(), String> {
    const WRITERS: usize = 4;
    let per_stream = args.events / args.streams;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        let streams: Vec<usize> = (w..args.streams).step_by(WRITERS).collect();
        let (events, streams_total, batch) = (args.events, args.streams, args.batch);
        tasks.push(tokio::spawn(async move {
            for s in streams {
                // The first `events % streams` streams take one event more.
                let count = per_stream + usize::from(s < events % streams_total);
                let stream = StreamRef::new("cart", format!("cart-{s:04}"));
                let mut version = 0usize;
                while version < count {
                    let n = batch.min(count - version);
                    let batch_events = (version..version + n)
                        .map(|v| {
                            let seq = s * per_stream + v;
                            NewEvent {
                                event_id: Uuid::now_v7(),
                                event_type: if v % 4 == 3 {
                                    "ItemRemoved"
                                } else {
                                    "ItemAdded"
                                }
                                .into(),
                                schema_version: 1,
                                payload: payload(seq),
                                metadata: [
                                    ("correlation_id".into(), Uuid::now_v7().to_string()),
                                    ("causation_id".into(), Uuid::now_v7().to_string()),
                                    ("actor".into(), "bench".into()),
                                ]
                                .into(),
                            }
                        })
                        .collect();
                    store
                        .append(&stream, version as i64, batch_events, None)
                        .await
                        .map_err(|e| e.to_string())?;
                    version += n;
                }
            }
            Ok::<_, String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Every stored event, in position order.
async fn read_backlog(store: &Store, events: usize) -> Result<Vec<RecordedEvent>, String> {
    let mut all = Vec::with_capacity(events);
    let mut after = 0;
    while all.len() < events {
        let page = store
            .read_all(after, 10_000)
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = page.last() else {
            return Err(format!(
                "the log holds {} events, {events} expected",
                all.len()
            ));
        };
        after = last.position;
        all.extend(page);
    }
    Ok(all)
}

/// A relay configuration private to one round of this run (`role` tells the raw and
/// the relay streams apart).
fn bench_config(run_id: &str, role: &str, round: usize, max_in_flight: usize) -> RelayConfig {
    let id = &run_id[run_id.len() - 12..];
    RelayConfig {
        name: format!("bench-{id}-{round}"),
        stream: format!("BENCH_{}_{id}_{round}", role.to_uppercase()),
        subject_prefix: format!("bench_{id}_{role}{round}"),
        max_in_flight,
        ..RelayConfig::default()
    }
}

/// The number of messages in stream `name`.
async fn stream_messages(jetstream: &Context, name: &str) -> Result<u64, String> {
    // One request: looking the stream up fetches its current state.
    let stream = jetstream
        .get_stream(name)
        .await
        .map_err(|e| format!("JetStream: {e}"))?;
    Ok(stream.cached_info().state.messages)
}

/// Raw pipelined publishing of `messages` to a fresh stream under `config`, at most
/// `config.max_in_flight` acks pending; seconds from the first publish to the last ack.
async fn raw_publish(
    nats: async_nats::Client,
    config: RelayConfig,
    messages: Vec<(String, PublishMessage)>,
) -> Result<f64, String> {
    let count = messages.len() as u64;
    // The context the relay builds for each session.
    let jetstream = ContextBuilder::new()
        .timeout(config.ack_timeout)
        .max_ack_inflight(config.max_in_flight)
        .build(nats);
    jetstream
        .create_or_update_stream(config.stream_config())
        .await
        .map_err(|e| format!("JetStream: cannot create stream {}: {e}", config.stream))?;
    let publish_error = |e: &dyn std::fmt::Display| format!("raw publish: {e}");
    let start = Instant::now();
    let mut in_flight: FuturesOrdered<<PublishAckFuture as IntoFuture>::IntoFuture> =
        FuturesOrdered::new();
    for (subject, message) in messages {
        if in_flight.len() >= config.max_in_flight {
            if let Some(ack) = in_flight.next().await {
                ack.map_err(|e| publish_error(&e))?;
            }
        }
        let ack = jetstream
            .send_publish(subject, message)
            .await
            .map_err(|e| publish_error(&e))?;
        in_flight.push_back(ack.into_future());
    }
    while let Some(ack) = in_flight.next().await {
        ack.map_err(|e| publish_error(&e))?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let stored = stream_messages(&jetstream, &config.stream).await?;
    if stored != count {
        return Err(format!(
            "raw publish: the stream holds {stored} messages, {count} were acknowledged"
        ));
    }
    Ok(seconds)
}

/// Seconds from the relay's start until its (fresh) stream holds `count` messages, and
/// until its stored checkpoint reaches `last_position`.
async fn relay_run(
    store: &Store,
    nats: &async_nats::Client,
    monitor: &Context,
    config: &RelayConfig,
    count: u64,
    last_position: i64,
) -> Result<(f64, f64), String> {
    // A fresh, empty stream, created before timing as for the raw publish.
    monitor
        .create_stream(config.stream_config())
        .await
        .map_err(|e| format!("JetStream: cannot create stream {}: {e}", config.stream))?;
    let relay =
        Relay::new(store.clone(), nats.clone(), config.clone()).map_err(|e| e.to_string())?;
    let (stop, stopped) = oneshot::channel::<()>();
    let start = Instant::now();
    let task = tokio::spawn(relay.run(async {
        let _ = stopped.await;
    }));
    let measured = async {
        let deadline = start + RELAY_DEADLINE;
        let mut published = None;
        let mut pause = Duration::from_millis(20);
        loop {
            if published.is_none() {
                let n = stream_messages(monitor, &config.stream).await?;
                if n >= count {
                    published = Some(start.elapsed().as_secs_f64());
                    pause = Duration::from_millis(2);
                } else if n > 0 {
                    // Each poll costs CPU on both sides, so poll sparsely while far
                    // from the end and finely close to it (the finish is seen within
                    // about a millisecond): wait half the estimated remaining time.
                    let remaining = start.elapsed().as_secs_f64() * (count - n) as f64 / n as f64;
                    pause = Duration::from_secs_f64((remaining / 2.0).clamp(0.001, 0.05));
                }
            }
            if published.is_some() {
                let checkpoint = Relay::checkpoint(store, &config.name)
                    .await
                    .map_err(|e| e.to_string())?;
                if checkpoint >= last_position {
                    let checkpointed = start.elapsed().as_secs_f64();
                    return Ok((published.unwrap_or(checkpointed), checkpointed));
                }
            }
            if task.is_finished() {
                return Err("the relay stopped before publishing the backlog".to_string());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the relay did not publish {count} events within {} s",
                    RELAY_DEADLINE.as_secs()
                ));
            }
            tokio::time::sleep(pause).await;
        }
    }
    .await;
    let _ = stop.send(());
    match tokio::time::timeout(Duration::from_secs(15), task).await {
        Ok(Ok(Err(e))) => return Err(e.to_string()),
        Ok(Err(e)) => return Err(format!("relay task: {e}")),
        _ => {}
    }
    let (published, checkpointed) = measured?;
    let stored = stream_messages(monitor, &config.stream).await?;
    if stored != count {
        return Err(format!(
            "relay: the stream holds {stored} messages, {count} events were stored"
        ));
    }
    Ok((published, checkpointed))
}

/// Reads the whole backlog with the relay's log reader and encodes every message, as
/// the relay does before publishing, without publishing: the relay's own share of the
/// work. Returns the seconds it took.
async fn read_only(store: Store, prefix: String, count: u64) -> Result<f64, String> {
    let start = Instant::now();
    let mut log = LogReader::new(&store);
    let (mut position, mut read) = (0, 0u64);
    loop {
        let batch = log
            .read_encoded(&prefix, position, LOG_BATCH)
            .await
            .map_err(|e| format!("log read: {e}"))?;
        let Some(last) = batch.last() else { break };
        position = last.position;
        read += batch.len() as u64;
        for encoded in batch {
            std::hint::black_box(encoded.into_message());
        }
    }
    if read != count {
        return Err(format!("log read: {read} events, {count} were stored"));
    }
    Ok(start.elapsed().as_secs_f64())
}

/// One round's figures, in seconds.
struct Round {
    raw: f64,
    published: f64,
    checkpointed: f64,
    /// CPU time of this process and of nats-server during the raw and the relay phase.
    raw_cpu: Cpu,
    relay_cpu: Cpu,
    /// The relay's own share: reading and encoding the backlog without publishing it.
    read: f64,
    read_cpu: Cpu,
}

/// CPU seconds (user and system) used by this process and by the local nats-server
/// (when one runs on this machine) between two readings.
#[derive(Clone, Copy)]
struct Cpu {
    process: Option<f64>,
    nats: Option<f64>,
}

impl Cpu {
    fn now(nats_pid: Option<u32>) -> Self {
        Cpu {
            process: cpu_seconds("self"),
            nats: nats_pid.and_then(|pid| cpu_seconds(&pid.to_string())),
        }
    }

    fn since(self, start: Cpu) -> Cpu {
        let delta = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
        Cpu {
            process: delta(self.process, start.process),
            nats: delta(self.nats, start.nats),
        }
    }
}

/// CPU seconds (user + system, all threads) of process `pid` (`self` for this one) from
/// `/proc/<pid>/stat`, in clock ticks of 1/100 s (Linux's fixed `USER_HZ`); `None` where
/// there is no such file.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it start with the state.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, so 11 and 12 from the state.
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The process id of a nats-server running on this machine, if there is one.
fn nats_server_pid() -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            (comm.trim_end() == "nats-server").then_some(pid)
        })
}

/// Microseconds of CPU per event: the median over rounds of `pick`, when every round has it.
fn cpu_per_event(
    rounds: &[Round],
    events: f64,
    pick: impl Fn(&Round) -> Option<f64>,
) -> Option<f64> {
    let values: Option<Vec<f64>> = rounds
        .iter()
        .map(|r| pick(r).map(|s| s * 1e6 / events))
        .collect();
    values.map(median).map(|v| (v * 10.0).round() / 10.0)
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

pub async fn relay(args: RelayArgs) -> Result<(), String> {
    if args.events == 0
        || args.streams == 0
        || args.batch == 0
        || args.max_in_flight == 0
        || args.rounds == 0
    {
        return Err(
            "--events, --streams, --batch, --max-in-flight and --rounds must be at least 1".into(),
        );
    }
    let backend = if args.database_url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    };
    let nats = connect_nats(&args.nats_url).await?;
    // Stream state is read on a connection of its own, not queued behind publishes.
    let monitor = async_nats::jetstream::new(connect_nats(&args.nats_url).await?);
    let nats_pid = nats_server_pid();
    let run_id = Uuid::now_v7().simple().to_string();
    let (store, scratch) = fresh_store(&args.database_url, &run_id).await?;

    let mut rounds = Vec::new();
    let result = async {
        append_backlog(&store, &args).await?;
        let backlog = read_backlog(&store, args.events).await?;
        let last_position = backlog.last().map_or(0, |e| e.position);
        let payload_bytes =
            backlog.iter().map(|e| e.payload_text.len()).sum::<usize>() / backlog.len();
        let count = backlog.len() as u64;
        // Raw and relay alternate, each on fresh streams, so a load change on the
        // machine hits both alike; medians are reported.
        for round in 1..=args.rounds {
            let raw_config = bench_config(&run_id, "raw", round, args.max_in_flight);
            let relay_config = bench_config(&run_id, "relay", round, args.max_in_flight);
            let messages: Vec<_> = backlog
                .iter()
                .map(|e| message::encode(&raw_config.subject_prefix, e.clone()))
                .collect();
            // On a runtime worker, as the relay publishes from one.
            let cpu_start = Cpu::now(nats_pid);
            let raw = tokio::spawn(raw_publish(nats.clone(), raw_config.clone(), messages))
                .await
                .unwrap_or_else(|e| Err(format!("raw publish task: {e}")));
            let raw_cpu = Cpu::now(nats_pid).since(cpu_start);
            let _ = monitor.delete_stream(&raw_config.stream).await;
            let raw = raw?;
            let cpu_start = Cpu::now(nats_pid);
            let relayed =
                relay_run(&store, &nats, &monitor, &relay_config, count, last_position).await;
            let relay_cpu = Cpu::now(nats_pid).since(cpu_start);
            let _ = monitor.delete_stream(&relay_config.stream).await;
            let (published, checkpointed) = relayed?;
            // On a runtime worker, as the relay's reader runs on one.
            let cpu_start = Cpu::now(nats_pid);
            let read = tokio::spawn(read_only(
                store.clone(),
                relay_config.subject_prefix.clone(),
                count,
            ))
            .await
            .unwrap_or_else(|e| Err(format!("log read task: {e}")))?;
            let read_cpu = Cpu::now(nats_pid).since(cpu_start);
            rounds.push(Round {
                raw,
                published,
                checkpointed,
                raw_cpu,
                relay_cpu,
                read,
                read_cpu,
            });
        }
        Ok::<_, String>(payload_bytes)
    }
    .await;

    if let Some(pool) = store.pg_pool() {
        pool.close().await;
    }
    drop(store);
    scratch.remove().await;
    let payload_bytes = result?;

    let n = args.events as f64;
    let raw_per_s = median(rounds.iter().map(|r| n / r.raw).collect());
    let relay_per_s = median(rounds.iter().map(|r| n / r.published).collect());
    let checkpoint_per_s = median(rounds.iter().map(|r| n / r.checkpointed).collect());
    if !args.json {
        println!(
            "relay throughput on {backend}: {} events in {} streams, {payload_bytes}-byte \
             payloads on average, {} acks in flight, {} rounds",
            args.events, args.streams, args.max_in_flight, args.rounds
        );
        println!(
            "{:>6} {:>14} {:>14} {:>10} {:>18} {:>22} {:>22} {:>28}",
            "round",
            "raw ev/s",
            "relay ev/s",
            "relay/raw",
            "checkpoint ev/s",
            "cpu us/ev raw/relay",
            "nats us/ev raw/relay",
            "read only ev/s, cpu us/ev"
        );
        let us = |s: Option<f64>| s.map_or("-".to_string(), |s| format!("{:.1}", s * 1e6 / n));
        for (i, r) in rounds.iter().enumerate() {
            println!(
                "{:>6} {:>14.0} {:>14.0} {:>10.2} {:>18.0} {:>22} {:>22} {:>28}",
                i + 1,
                n / r.raw,
                n / r.published,
                r.raw / r.published,
                n / r.checkpointed,
                format!("{} / {}", us(r.raw_cpu.process), us(r.relay_cpu.process)),
                format!("{} / {}", us(r.raw_cpu.nats), us(r.relay_cpu.nats)),
                format!("{:.0}, {}", n / r.read, us(r.read_cpu.process)),
            );
        }
        println!(
            "{:>6} {:>14.0} {:>14.0} {:>10.2} {:>18.0}",
            "median",
            raw_per_s,
            relay_per_s,
            relay_per_s / raw_per_s,
            checkpoint_per_s
        );
    }
    let summary = json!({
        "backend": backend,
        "events": args.events,
        "streams": args.streams,
        "payload_bytes_avg": payload_bytes,
        "max_in_flight": args.max_in_flight,
        "rounds": args.rounds,
        "raw_publish_per_s": raw_per_s.round(),
        "relay_events_per_s": relay_per_s.round(),
        "relay_checkpoint_events_per_s": checkpoint_per_s.round(),
        "ratio_vs_raw": round2(relay_per_s / raw_per_s),
        "raw_cpu_us_per_event": cpu_per_event(&rounds, n, |r| r.raw_cpu.process),
        "relay_cpu_us_per_event": cpu_per_event(&rounds, n, |r| r.relay_cpu.process),
        "nats_raw_cpu_us_per_event": cpu_per_event(&rounds, n, |r| r.raw_cpu.nats),
        "nats_relay_cpu_us_per_event": cpu_per_event(&rounds, n, |r| r.relay_cpu.nats),
        "read_only_events_per_s": median(rounds.iter().map(|r| n / r.read).collect()).round(),
        "read_only_cpu_us_per_event": cpu_per_event(&rounds, n, |r| r.read_cpu.process),
    });
    println!("{summary}");
    Ok(())
}

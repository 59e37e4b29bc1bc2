//! The append-only event log.
//!
//! One [`Store`] type over two backends chosen by URL: PostgreSQL (`postgres://…`, the
//! distributed deployment) and SQLite (`sqlite:…`, the embedded default). Both give:
//!
//! * per-stream versions, gap-free, with optimistic concurrency ([`StoreError::Conflict`]);
//! * one atomic, single-round-trip append per command;
//! * a global position and a tail ([`Store::read_all`], [`Store::subscribe`]) that never
//!   skips, duplicates or reorders an event, even when transactions commit out of order;
//! * a SHA-256 hash chain per stream, verified by [`Store::verify`];
//! * snapshots every N events and cqrs-es upcasters on load (see [`repository`]).
//!
//! The database itself refuses `UPDATE` and `DELETE` on the log (triggers).

pub mod anchor;
mod hash;
mod pg_group;
mod postgres;
pub mod repository;
mod restore;
mod row;
mod scan;
mod sqlite;
mod tail;
mod verify;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::Value;
use tokio::sync::watch;
use uuid::Uuid;

use crate::clock::{Clock, SystemClock};
pub use hash::{event_hash, HashInput};
pub use scan::ScanFilter;
pub use tail::EventStream;
pub use verify::{VerifyProblem, VerifyReport};

/// Metadata keys with a column of their own.
pub const CORRELATION_ID: &str = "correlation_id";
pub const CAUSATION_ID: &str = "causation_id";
pub const ACTOR: &str = "actor";

/// Free-form metadata of one event (correlation id, causation id, actor, idempotency key,
/// trace context, …). Keys in [`CORRELATION_ID`], [`CAUSATION_ID`] and [`ACTOR`] are
/// also stored in indexed columns.
pub type EventMetadata = BTreeMap<String, String>;

/// The default of [`StoreConfig::max_event_bytes`]: a quarter of NATS' default
/// `max_payload`, leaving room for the CloudEvents headers.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 256 * 1024;

/// Tuning of a [`Store`].
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Take a snapshot every this many events of a stream (0 = never).
    pub snapshot_every: usize,
    /// Rows fetched per tail query.
    pub tail_batch: i64,
    /// How long an idle tail waits for a wake-up before it polls anyway.
    pub idle_poll: Duration,
    /// Largest number of events one append may carry.
    pub max_events_per_append: usize,
    /// Largest event, counted as the bytes of its payload and metadata JSON. An event
    /// must fit in one NATS message (headers included) or the relay could never publish
    /// it, so keep this well under the server's `max_payload` (1 MiB by default); the
    /// relay checks it at start.
    pub max_event_bytes: usize,
    /// Largest append (one command), counted as the sum of its events' bytes.
    pub max_append_bytes: usize,
    /// Connections in the pool.
    pub max_connections: u32,
    /// PostgreSQL: group-commit calls in flight at once (docs/adr/0005-group-commit.md).
    /// Each holds a connection while its group is written.
    pub append_writers: usize,
    /// PostgreSQL: how many times a writer that found fewer appends queued than a full
    /// group lets the callers it just answered run before it writes (each a
    /// `yield_now`, no timer: a lone writer loses microseconds, never a fixed delay).
    pub append_gather_yields: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            snapshot_every: 100,
            tail_batch: 1000,
            idle_poll: Duration::from_millis(250),
            max_events_per_append: 1000,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            max_append_bytes: 4 * 1024 * 1024,
            max_connections: 16,
            append_writers: 2,
            append_gather_yields: 2,
        }
    }
}

/// Names one stream: the aggregate type and the aggregate id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamRef {
    pub stream_type: String,
    pub stream_id: String,
}

impl StreamRef {
    pub fn new(stream_type: impl Into<String>, stream_id: impl Into<String>) -> Self {
        Self {
            stream_type: stream_type.into(),
            stream_id: stream_id.into(),
        }
    }
}

impl std::fmt::Display for StreamRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.stream_type, self.stream_id)
    }
}

/// An event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    /// The event's own data, without the enum tag (the tag is `event_type`).
    pub payload: Value,
    pub metadata: EventMetadata,
}

/// A snapshot written in the same transaction as the events it follows.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotWrite {
    /// The stream version the snapshot state includes.
    pub version: i64,
    pub snapshot_no: i64,
    pub state: Value,
}

/// One append of [`Store::append_all`].
#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub stream: StreamRef,
    /// The version the stream must be at (0 for a new stream).
    pub expected_version: i64,
    pub events: Vec<NewEvent>,
    pub snapshot: Option<SnapshotWrite>,
    /// Recorded with the events, as [`Store::append_command`] does.
    pub command_id: Option<Uuid>,
}

/// A stored snapshot, with what the log says about its stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSnapshot {
    pub version: i64,
    pub snapshot_no: i64,
    pub state: Value,
    /// The stream's newest version in the log.
    pub head_version: i64,
    /// The chain hash of the event at `version`, if that event exists.
    pub version_hash: Option<Vec<u8>>,
}

/// What an append stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub first_position: i64,
    pub last_position: i64,
    /// The stream's version after the append.
    pub version: i64,
}

/// What an earlier command with the same id stored on a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandRecord {
    pub first_version: i64,
    pub version: i64,
    pub first_position: i64,
    pub last_position: i64,
}

impl CommandRecord {
    fn from_row(
        (first_version, version, first_position, last_position): (i64, i64, i64, i64),
    ) -> Self {
        Self {
            first_version,
            version,
            first_position,
            last_position,
        }
    }
}

/// An event as stored in the log, with its full envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub position: i64,
    pub event_id: Uuid,
    pub stream_type: String,
    pub stream_id: String,
    pub version: i64,
    pub event_type: String,
    pub schema_version: i32,
    /// Exactly the JSON text that was appended (and hashed).
    pub payload_text: String,
    pub metadata_text: String,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    pub actor: Option<String>,
    pub recorded_at: DateTime<Utc>,
    pub hash: Vec<u8>,
    pub prev_hash: Option<Vec<u8>>,
}

impl RecordedEvent {
    pub fn payload(&self) -> Result<Value, StoreError> {
        serde_json::from_str(&self.payload_text).map_err(StoreError::Corrupt)
    }

    pub fn metadata(&self) -> Result<EventMetadata, StoreError> {
        serde_json::from_str(&self.metadata_text).map_err(StoreError::Corrupt)
    }

    pub fn stream(&self) -> StreamRef {
        StreamRef::new(&self.stream_type, &self.stream_id)
    }
}

/// Errors of the event store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer appended to the stream first (or the expected version is not the
    /// stream's head). Nothing was stored; reload and retry.
    #[error("stream {stream} is not at version {expected}: a concurrent writer appended first")]
    Conflict { stream: StreamRef, expected: i64 },
    #[error("invalid append: {0}")]
    InvalidAppend(String),
    /// An event or a whole append is larger than the configured bound
    /// ([`StoreConfig::max_event_bytes`], [`StoreConfig::max_append_bytes`]). Nothing
    /// was stored.
    #[error("{what} is {bytes} bytes, above the limit of {limit}")]
    TooLarge {
        what: String,
        bytes: usize,
        limit: usize,
    },
    /// The command id of this append is already recorded on the stream: nothing was
    /// stored; [`Store::command_record`] has the first outcome.
    #[error("this command was already applied to the stream")]
    DuplicateCommand,
    /// Rows of the log carry transaction ids this PostgreSQL cluster has not assigned:
    /// they were restored or copied from another cluster, and the tail would skip them.
    #[error(
        "{count} events from position {first_position} on carry transaction ids from \
         another cluster (a restored backup?); the tail would skip them. Stop every \
         engine on this database and run `commerce migrate --adopt-restored-rows` \
         (see docs/operations.md, \"Restoring from a backup\")"
    )]
    ForeignTxids { count: i64, first_position: i64 },
    #[error("unsupported database URL `{0}`: use postgres://… or sqlite:…")]
    UnsupportedUrl(String),
    #[error("stored data could not be decoded: {0}")]
    Corrupt(#[source] serde_json::Error),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }
}

/// A borrowed connection pool of either backend; see [`Store::db`]. With
/// [`on_db!`](crate::on_db) one sqlx expression (SQL written with `$1`-style parameters,
/// which both backends accept) runs on whichever it is.
#[derive(Debug, Clone, Copy)]
pub enum Db<'a> {
    Postgres(&'a sqlx::PgPool),
    Sqlite(&'a sqlx::SqlitePool),
}

/// Runs the same sqlx expression on whichever pool a [`Db`] holds:
/// `on_db!(store.db(), pool => sqlx::query("…").execute(pool).await)`.
#[macro_export]
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Postgres($pool) => $body,
            $crate::store::Db::Sqlite($pool) => $body,
        }
    };
}

/// Runs `$body` inside a transaction `$tx` on a [`Db`] and commits it (SQLite:
/// `BEGIN IMMEDIATE`, so the write lock is taken up front and the transaction cannot
/// fail later on a lock upgrade). A `?` in the body rolls back.
#[macro_export]
macro_rules! in_tx {
    ($db:expr, $tx:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
            $crate::store::Db::Sqlite(pool) => {
                let mut $tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
        }
    };
}

#[derive(Debug, Clone)]
enum Backend {
    Postgres(sqlx::PgPool),
    Sqlite(sqlite::SqliteBackend),
}

#[derive(Debug)]
struct Inner {
    backend: Backend,
    clock: Arc<dyn Clock>,
    config: StoreConfig,
    /// (stream) -> (version, hash) of the newest event this process has seen. Versions
    /// are immutable once committed, so a cached pair is a permanent fact.
    heads: Mutex<HashMap<StreamKey, (i64, Vec<u8>)>>,
    events_read: AtomicU64,
    /// Newest position appended through this process; wakes local tails.
    appended: watch::Sender<i64>,
    /// Whether the PostgreSQL wake-up notifier task runs.
    notifier: std::sync::OnceLock<()>,
    /// PostgreSQL's group writer, started with the first append.
    pg_group: std::sync::OnceLock<pg_group::Group>,
}

/// The event store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// (stream type, stream id).
type StreamKey = (String, String);

const HEAD_CACHE_LIMIT: usize = 100_000;

impl Store {
    /// Opens the store at `url` (`postgres://…` or `sqlite:path`; the SQLite file and its
    /// folder are created when missing). Does not migrate: call [`Store::migrate`].
    pub async fn connect(url: &str, config: StoreConfig) -> Result<Self, StoreError> {
        Self::connect_with_clock(url, config, Arc::new(SystemClock)).await
    }

    pub async fn connect_with_clock(
        url: &str,
        config: StoreConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(postgres::connect(url, &config).await?)
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite(sqlite::SqliteBackend::connect(url, &config).await?)
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        Ok(Self::from_backend(backend, config, clock))
    }

    /// Wraps an existing PostgreSQL pool (tests use one per schema).
    pub fn from_pg_pool(pool: sqlx::PgPool, config: StoreConfig, clock: Arc<dyn Clock>) -> Self {
        Self::from_backend(Backend::Postgres(pool), config, clock)
    }

    fn from_backend(backend: Backend, config: StoreConfig, clock: Arc<dyn Clock>) -> Self {
        let (appended, _) = watch::channel(0);
        Self {
            inner: Arc::new(Inner {
                backend,
                clock,
                config,
                heads: Mutex::new(HashMap::new()),
                events_read: AtomicU64::new(0),
                appended,
                notifier: std::sync::OnceLock::new(),
                pg_group: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Applies the embedded migrations of this backend. Idempotent.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.inner.backend {
            Backend::Postgres(pool) => postgres::MIGRATOR.run(pool).await?,
            Backend::Sqlite(db) => sqlite::MIGRATOR.run(&db.write).await?,
        }
        Ok(())
    }

    /// `"postgres"` or `"sqlite"`.
    pub fn backend_name(&self) -> &'static str {
        match &self.inner.backend {
            Backend::Postgres(_) => "postgres",
            Backend::Sqlite(_) => "sqlite",
        }
    }

    /// The database for bookkeeping writes next to the log (relay checkpoints, consumer
    /// progress, dead letters): the pool on PostgreSQL, the single writer on SQLite (a
    /// write through a reader connection could fail with `SQLITE_BUSY` mid-transaction).
    pub fn db(&self) -> Db<'_> {
        match &self.inner.backend {
            Backend::Postgres(pool) => Db::Postgres(pool),
            Backend::Sqlite(db) => Db::Sqlite(&db.write),
        }
    }

    /// The database for reads next to the log: the pool on PostgreSQL, the reader
    /// connections on SQLite.
    pub fn db_read(&self) -> Db<'_> {
        match &self.inner.backend {
            Backend::Postgres(pool) => Db::Postgres(pool),
            Backend::Sqlite(db) => Db::Sqlite(&db.read),
        }
    }

    /// The PostgreSQL pool, when this store runs on PostgreSQL.
    pub fn pg_pool(&self) -> Option<&sqlx::PgPool> {
        match &self.inner.backend {
            Backend::Postgres(pool) => Some(pool),
            Backend::Sqlite(_) => None,
        }
    }

    /// The SQLite read pool, when this store runs on SQLite.
    pub fn sqlite_pool(&self) -> Option<&sqlx::SqlitePool> {
        match &self.inner.backend {
            Backend::Sqlite(db) => Some(&db.read),
            Backend::Postgres(_) => None,
        }
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Total events this store handle has read from the database (a load metric).
    pub fn events_read(&self) -> u64 {
        self.inner.events_read.load(Ordering::Relaxed)
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.inner.backend {
            Backend::Postgres(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
            Backend::Sqlite(db) => {
                sqlx::query("SELECT 1").execute(&db.read).await?;
            }
        }
        Ok(())
    }

    /// Appends `events` to `stream`, which must be at `expected_version` (0 for a new
    /// stream). All events are stored, with consecutive versions, or none are.
    pub async fn append(
        &self,
        stream: &StreamRef,
        expected_version: i64,
        events: Vec<NewEvent>,
        snapshot: Option<SnapshotWrite>,
    ) -> Result<AppendOutcome, StoreError> {
        self.append_inner(stream, expected_version, events, snapshot, None)
            .await
    }

    /// [`Store::append`] recording `command_id` on the stream in the same transaction. A
    /// command id already recorded on the stream stores nothing and fails with
    /// [`StoreError::DuplicateCommand`], also when the duplicate commits concurrently.
    pub async fn append_command(
        &self,
        stream: &StreamRef,
        expected_version: i64,
        events: Vec<NewEvent>,
        snapshot: Option<SnapshotWrite>,
        command_id: Uuid,
    ) -> Result<AppendOutcome, StoreError> {
        self.append_inner(stream, expected_version, events, snapshot, Some(command_id))
            .await
    }

    /// What the command `command_id` stored on `stream`, if it did.
    pub async fn command_record(
        &self,
        stream: &StreamRef,
        command_id: Uuid,
    ) -> Result<Option<CommandRecord>, StoreError> {
        match &self.inner.backend {
            Backend::Postgres(pool) => postgres::command_record(pool, stream, command_id).await,
            Backend::Sqlite(db) => db.command_record(stream, command_id).await,
        }
    }

    /// Appends to several streams at once: they are written in one group (one
    /// transaction and commit on either backend), each keeping its own outcome, in the
    /// order given. A conflict or any other refusal fails that append alone and stores
    /// nothing of it. For importers and tools; commands use [`Store::append`], which
    /// gathers concurrent appends by itself.
    pub async fn append_all(
        &self,
        appends: Vec<AppendRequest>,
    ) -> Vec<Result<AppendOutcome, StoreError>> {
        self.append_many(appends).await
    }

    async fn append_inner(
        &self,
        stream: &StreamRef,
        expected_version: i64,
        events: Vec<NewEvent>,
        snapshot: Option<SnapshotWrite>,
        command_id: Option<Uuid>,
    ) -> Result<AppendOutcome, StoreError> {
        let request = AppendRequest {
            stream: stream.clone(),
            expected_version,
            events,
            snapshot,
            command_id,
        };
        self.append_many(vec![request])
            .await
            .pop()
            .unwrap_or_else(|| Err(StoreError::InvalidAppend("no append".into())))
    }

    async fn append_many(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Vec<Result<AppendOutcome, StoreError>> {
        // Microsecond precision is what both databases keep; hash what is stored.
        let recorded_at = self.inner.clock.now().trunc_subsecs(6);
        let mut outcomes: Vec<Option<Result<AppendOutcome, StoreError>>> =
            requests.iter().map(|_| None).collect();
        let mut valid = Vec::with_capacity(requests.len());
        for (i, request) in requests.into_iter().enumerate() {
            let AppendRequest {
                stream,
                expected_version,
                events,
                snapshot,
                command_id,
            } = request;
            match self.prepare_rows(events, expected_version, recorded_at) {
                Ok(rows) => valid.push((
                    i,
                    Append {
                        stream,
                        expected: expected_version,
                        rows,
                        snapshot,
                        command_id,
                    },
                )),
                Err(err) => outcomes[i] = Some(Err(err)),
            }
        }
        let written: Vec<(usize, Result<AppendOutcome, StoreError>)> = match &self.inner.backend {
            Backend::Postgres(pool) => {
                self.inner.notifier.get_or_init(|| {
                    tokio::spawn(postgres::notify_appends(pool.clone(), self.appended_rx()));
                });
                let group = self.inner.pg_group.get_or_init(|| {
                    pg_group::Group::start(
                        pool.clone(),
                        self.inner.config.append_writers,
                        self.inner.config.append_gather_yields,
                    )
                });
                let mut ready = Vec::with_capacity(valid.len());
                // Heads the earlier appends of this group leave, for a later one that
                // continues the same stream.
                let mut leaves: HashMap<StreamKey, (i64, Vec<u8>)> = HashMap::new();
                for (i, append) in valid {
                    let key = (
                        append.stream.stream_type.clone(),
                        append.stream.stream_id.clone(),
                    );
                    let known = leaves
                        .get(&key)
                        .filter(|(version, _)| *version == append.expected)
                        .map(|(_, hash)| hash.clone());
                    let prepared = postgres::prepare(self, pool, append, known).await;
                    match prepared {
                        Ok(p) => {
                            leaves.insert(key, p.leaves());
                            ready.push((i, p));
                        }
                        Err(err) => outcomes[i] = Some(Err(err)),
                    }
                }
                let (slots, prepared): (Vec<usize>, Vec<_>) = ready.into_iter().unzip();
                slots
                    .into_iter()
                    .zip(postgres::write(self, group, prepared).await)
                    .collect()
            }
            Backend::Sqlite(db) => {
                let (slots, appends): (Vec<usize>, Vec<Append>) = valid.into_iter().unzip();
                slots.into_iter().zip(db.append(appends).await).collect()
            }
        };
        for (i, outcome) in written {
            if let Ok(outcome) = &outcome {
                self.inner.appended.send_if_modified(|head| {
                    if outcome.last_position > *head {
                        *head = outcome.last_position;
                        true
                    } else {
                        false
                    }
                });
            }
            outcomes[i] = Some(outcome);
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(StoreError::InvalidAppend("not written".into()))))
            .collect()
    }

    /// Checks one append's shape and bounds and prepares its rows.
    fn prepare_rows(
        &self,
        events: Vec<NewEvent>,
        expected_version: i64,
        recorded_at: DateTime<Utc>,
    ) -> Result<Vec<PreparedEvent>, StoreError> {
        if events.is_empty() {
            return Err(StoreError::InvalidAppend("no events".into()));
        }
        if events.len() > self.inner.config.max_events_per_append {
            return Err(StoreError::InvalidAppend(format!(
                "{} events exceed the limit of {} per append",
                events.len(),
                self.inner.config.max_events_per_append
            )));
        }
        if expected_version < 0 {
            return Err(StoreError::InvalidAppend(
                "expected version must be >= 0".into(),
            ));
        }
        let rows = events
            .into_iter()
            .zip(expected_version + 1..)
            .map(|(event, version)| PreparedEvent::new(event, version, recorded_at))
            .collect::<Result<Vec<_>, _>>()?;
        self.check_sizes(&rows)?;
        Ok(rows)
    }

    /// Refuses an append whose events, one or together, exceed the configured bounds.
    fn check_sizes(&self, rows: &[PreparedEvent]) -> Result<(), StoreError> {
        let config = &self.inner.config;
        let mut total = 0usize;
        for row in rows {
            let bytes = row.size();
            if bytes > config.max_event_bytes {
                return Err(StoreError::TooLarge {
                    what: format!("event {} (version {})", row.event_type, row.version),
                    bytes,
                    limit: config.max_event_bytes,
                });
            }
            total += bytes;
        }
        if total > config.max_append_bytes {
            return Err(StoreError::TooLarge {
                what: format!("an append of {} events", rows.len()),
                bytes: total,
                limit: config.max_append_bytes,
            });
        }
        Ok(())
    }

    /// Events of one stream with a version above `after_version`, in version order.
    pub async fn read_stream(
        &self,
        stream: &StreamRef,
        after_version: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = match &self.inner.backend {
            Backend::Postgres(pool) => postgres::read_stream(pool, stream, after_version).await?,
            Backend::Sqlite(db) => db.read_stream(stream, after_version).await?,
        };
        self.inner
            .events_read
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        if let Some(last) = events.last() {
            self.remember_head(stream, last.version, &last.hash);
        }
        Ok(events)
    }

    /// Up to `limit` events of the whole log after `after_position`, in position order.
    ///
    /// Only events that can no longer be preceded by a later commit are returned, so a
    /// reader that continues from the last position it got never misses an event.
    pub async fn read_all(
        &self,
        after_position: i64,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = match &self.inner.backend {
            Backend::Postgres(pool) => postgres::read_all(pool, after_position, limit).await?,
            Backend::Sqlite(db) => db.read_all(after_position, limit).await?,
        };
        self.inner
            .events_read
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        Ok(events)
    }

    /// PostgreSQL: the group-commit calls this store has made and the appends they
    /// carried (`None` on SQLite, or before the first append).
    pub fn append_groups(&self) -> Option<(u64, u64)> {
        self.inner.pg_group.get().map(|group| group.stats())
    }

    /// The highest position a tail may currently hand out (0 for an empty log).
    pub async fn head_position(&self) -> Result<i64, StoreError> {
        match &self.inner.backend {
            Backend::Postgres(pool) => postgres::head_position(pool).await,
            Backend::Sqlite(db) => db.head_position().await,
        }
    }

    /// The highest position of any committed event (0 for an empty log). Unlike
    /// [`Store::head_position`] it does not wait for older transactions still in flight:
    /// it answers whether a position has been written at all, not whether a tail may
    /// hand it out yet.
    pub async fn last_position(&self) -> Result<i64, StoreError> {
        match &self.inner.backend {
            Backend::Postgres(pool) => postgres::last_position(pool).await,
            // One writer: every committed row is already safe to hand out.
            Backend::Sqlite(db) => db.head_position().await,
        }
    }

    /// Waits until a tail may hand out `position` (read-your-writes), polling, for at most
    /// `timeout`. Returns whether it got there.
    pub async fn wait_for_position(
        &self,
        position: i64,
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.head_position().await? >= position {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The latest snapshot of a stream, if any.
    pub async fn load_snapshot(
        &self,
        stream: &StreamRef,
    ) -> Result<Option<StoredSnapshot>, StoreError> {
        let snapshot = match &self.inner.backend {
            Backend::Postgres(pool) => postgres::load_snapshot(pool, stream).await?,
            Backend::Sqlite(db) => db.load_snapshot(stream).await?,
        };
        if let Some(StoredSnapshot {
            version,
            version_hash: Some(hash),
            ..
        }) = &snapshot
        {
            self.remember_head(stream, *version, hash);
        }
        Ok(snapshot)
    }

    /// Up to `limit` events of one stream type after `after_position`, in position order
    /// (replays of one aggregate type).
    pub async fn read_type(
        &self,
        stream_type: &str,
        after_position: i64,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = match &self.inner.backend {
            Backend::Postgres(pool) => {
                postgres::read_type(pool, stream_type, after_position, limit).await?
            }
            Backend::Sqlite(db) => db.read_type(stream_type, after_position, limit).await?,
        };
        self.inner
            .events_read
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        Ok(events)
    }

    /// A live, never-ending stream of every event after `after_position`, in order.
    pub fn subscribe(&self, after_position: i64) -> EventStream {
        tail::subscribe(self.clone(), after_position)
    }

    fn remember_head(&self, stream: &StreamRef, version: i64, hash: &[u8]) {
        let mut heads = self.inner.heads.lock().unwrap_or_else(|e| e.into_inner());
        if heads.len() >= HEAD_CACHE_LIMIT {
            heads.clear();
        }
        let key = (stream.stream_type.clone(), stream.stream_id.clone());
        match heads.get(&key) {
            Some((known, _)) if *known >= version => {}
            _ => {
                heads.insert(key, (version, hash.to_vec()));
            }
        }
    }

    fn cached_hash(&self, stream: &StreamRef, version: i64) -> Option<Vec<u8>> {
        let heads = self.inner.heads.lock().unwrap_or_else(|e| e.into_inner());
        heads
            .get(&(stream.stream_type.clone(), stream.stream_id.clone()))
            .filter(|(v, _)| *v == version)
            .map(|(_, h)| h.clone())
    }

    fn appended_rx(&self) -> watch::Receiver<i64> {
        self.inner.appended.subscribe()
    }
}

/// One append checked and serialized, on its way to a backend's group writer.
struct Append {
    stream: StreamRef,
    expected: i64,
    rows: Vec<PreparedEvent>,
    snapshot: Option<SnapshotWrite>,
    command_id: Option<Uuid>,
}

/// An event ready for insertion: serialized once, hashed once the previous hash is known.
#[derive(Debug, Clone)]
struct PreparedEvent {
    event_id: Uuid,
    version: i64,
    event_type: String,
    schema_version: i32,
    payload_text: String,
    metadata_text: String,
    correlation_id: Option<Uuid>,
    causation_id: Option<Uuid>,
    actor: Option<String>,
    recorded_at: DateTime<Utc>,
}

impl PreparedEvent {
    /// The bytes the size bounds count: payload and metadata as stored.
    fn size(&self) -> usize {
        self.payload_text.len() + self.metadata_text.len()
    }

    fn new(event: NewEvent, version: i64, recorded_at: DateTime<Utc>) -> Result<Self, StoreError> {
        if event.event_type.is_empty() || event.schema_version < 1 {
            return Err(StoreError::InvalidAppend(
                "event type must be set and schema version >= 1".into(),
            ));
        }
        let parse_id = |key: &str| -> Result<Option<Uuid>, StoreError> {
            event
                .metadata
                .get(key)
                .map(|v| {
                    Uuid::parse_str(v).map_err(|_| {
                        StoreError::InvalidAppend(format!("metadata {key} `{v}` is not a UUID"))
                    })
                })
                .transpose()
        };
        Ok(Self {
            event_id: event.event_id,
            version,
            correlation_id: parse_id(CORRELATION_ID)?,
            causation_id: parse_id(CAUSATION_ID)?,
            actor: event.metadata.get(ACTOR).cloned(),
            payload_text: serde_json::to_string(&event.payload).map_err(StoreError::Corrupt)?,
            metadata_text: serde_json::to_string(&event.metadata).map_err(StoreError::Corrupt)?,
            event_type: event.event_type,
            schema_version: event.schema_version,
            recorded_at,
        })
    }

    fn hash(&self, stream: &StreamRef, prev: Option<&[u8]>) -> [u8; 32] {
        event_hash(
            prev,
            &HashInput {
                event_id: self.event_id,
                stream_type: &stream.stream_type,
                stream_id: &stream.stream_id,
                version: self.version,
                event_type: &self.event_type,
                schema_version: self.schema_version,
                payload: &self.payload_text,
                metadata: &self.metadata_text,
                recorded_at: self.recorded_at,
            },
        )
    }
}

/// Computes the hash chain for `rows`, starting from `prev` (the hash of the event before
/// the first row, `None` for a new stream). Returns (hash, prev_hash) per row.
fn chain(
    stream: &StreamRef,
    rows: &[PreparedEvent],
    mut prev: Option<Vec<u8>>,
) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    rows.iter()
        .map(|row| {
            let hash = row.hash(stream, prev.as_deref()).to_vec();
            let pair = (hash.clone(), prev.take());
            prev = Some(hash);
            pair
        })
        .collect()
}

pub(crate) type SnapshotRow = (i64, i64, String, Option<i64>, Option<Vec<u8>>);

fn snapshot_from_row(
    (version, snapshot_no, text, head, hash): SnapshotRow,
) -> Result<StoredSnapshot, StoreError> {
    Ok(StoredSnapshot {
        version,
        snapshot_no,
        state: serde_json::from_str(&text).map_err(StoreError::Corrupt)?,
        head_version: head.unwrap_or(0),
        version_hash: hash,
    })
}

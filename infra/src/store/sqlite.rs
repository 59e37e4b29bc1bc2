//! SQLite backend (the embedded default). One writer connection, several readers, WAL.
//! SQLite admits one write transaction at a time, so positions commit in order and the
//! tail needs no guard. Appends are group-committed: concurrent appends of the process
//! share one transaction and one fsync (see [`group_writer`]).

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::row::{decode_event, SQLITE_COLUMNS};
use super::{
    chain, Append, AppendOutcome, RecordedEvent, StoreConfig, StoreError, StoredSnapshot, StreamRef,
};

pub(super) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Debug, Clone)]
pub(super) struct SqliteBackend {
    /// Exactly one connection: the single writer.
    pub(super) write: SqlitePool,
    pub(super) read: SqlitePool,
    /// Appends go through the group writer task, which owns their transactions.
    appends: mpsc::UnboundedSender<Vec<AppendJob>>,
}

impl SqliteBackend {
    pub(super) async fn connect(url: &str, config: &StoreConfig) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?;
        let path = options.get_filename().to_path_buf();
        let in_memory = url.contains(":memory:")
            || url.contains("mode=memory")
            || path.to_string_lossy().contains("in-memory");
        if path.as_os_str().is_empty() || in_memory {
            return Err(StoreError::UnsupportedUrl(format!(
                "{url} (an in-memory SQLite database cannot be shared by the writer and readers; use a file)"
            )));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed event survives power loss, not only a process crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(config.max_connections.clamp(1, 8))
            .connect_with(options.read_only(false))
            .await?;
        let (appends, jobs) = mpsc::unbounded_channel();
        tokio::spawn(group_writer(write.clone(), jobs));
        Ok(Self {
            write,
            read,
            appends,
        })
    }

    /// Appends through the group writer: concurrent appends of this process are
    /// written in one transaction (one commit, one fsync), each keeping its own outcome.
    /// Appends given together are always in the same group.
    pub(super) async fn append(
        &self,
        appends: Vec<Append>,
    ) -> Vec<Result<AppendOutcome, StoreError>> {
        let mut jobs = Vec::with_capacity(appends.len());
        let mut replies = Vec::with_capacity(appends.len());
        for append in appends {
            let (reply, outcome) = oneshot::channel();
            jobs.push(AppendJob { append, reply });
            replies.push(outcome);
        }
        if self.appends.send(jobs).is_err() {
            return replies.iter().map(|_| Err(writer_gone())).collect();
        }
        let mut outcomes = Vec::with_capacity(replies.len());
        for outcome in replies {
            outcomes.push(outcome.await.unwrap_or_else(|_| Err(writer_gone())));
        }
        outcomes
    }

    pub(super) async fn read_stream(
        &self,
        stream: &StreamRef,
        after_version: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {SQLITE_COLUMNS} FROM events \
             WHERE stream_type = ? AND stream_id = ? AND version > ? ORDER BY version"
        );
        let rows = sqlx::query(&sql)
            .bind(&stream.stream_type)
            .bind(&stream.stream_id)
            .bind(after_version)
            .fetch_all(&self.read)
            .await?;
        Ok(rows.iter().map(decode_event).collect::<Result<_, _>>()?)
    }

    pub(super) async fn read_all(
        &self,
        after_position: i64,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {SQLITE_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(after_position)
            .bind(limit)
            .fetch_all(&self.read)
            .await?;
        Ok(rows.iter().map(decode_event).collect::<Result<_, _>>()?)
    }

    pub(super) async fn read_type(
        &self,
        stream_type: &str,
        after_position: i64,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {SQLITE_COLUMNS} FROM events \
             WHERE stream_type = ? AND position > ? ORDER BY position LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(stream_type)
            .bind(after_position)
            .bind(limit)
            .fetch_all(&self.read)
            .await?;
        Ok(rows.iter().map(decode_event).collect::<Result<_, _>>()?)
    }

    pub(super) async fn head_position(&self) -> Result<i64, StoreError> {
        let head: Option<i64> = sqlx::query_scalar("SELECT max(position) FROM events")
            .fetch_one(&self.read)
            .await?;
        Ok(head.unwrap_or(0))
    }

    pub(super) async fn load_snapshot(
        &self,
        stream: &StreamRef,
    ) -> Result<Option<StoredSnapshot>, StoreError> {
        let row: Option<super::SnapshotRow> = sqlx::query_as(
            "SELECT s.version, s.snapshot_no, s.payload, \
                    (SELECT max(e.version) FROM events e \
                      WHERE e.stream_type = s.stream_type AND e.stream_id = s.stream_id), \
                    (SELECT e.hash FROM events e WHERE e.stream_type = s.stream_type \
                        AND e.stream_id = s.stream_id AND e.version = s.version) \
               FROM snapshots s WHERE s.stream_type = ? AND s.stream_id = ?",
        )
        .bind(&stream.stream_type)
        .bind(&stream.stream_id)
        .fetch_optional(&self.read)
        .await?;
        row.map(super::snapshot_from_row).transpose()
    }
}

impl SqliteBackend {
    pub(super) async fn command_record(
        &self,
        stream: &StreamRef,
        command_id: uuid::Uuid,
    ) -> Result<Option<super::CommandRecord>, StoreError> {
        let row: Option<(i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT first_version, version, first_position, last_position FROM commands \
              WHERE stream_type = ? AND stream_id = ? AND command_id = ?",
        )
        .bind(&stream.stream_type)
        .bind(&stream.stream_id)
        .bind(command_id)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(super::CommandRecord::from_row))
    }
}

/// Most appends written in one group transaction.
const MAX_GROUP: usize = 256;

/// An append waiting for the group writer, with where its outcome goes.
struct AppendJob {
    append: Append,
    reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
}

fn writer_gone() -> StoreError {
    StoreError::Database(sqlx::Error::PoolClosed)
}

/// Group commit: takes the first waiting append, adds every append already queued
/// behind it (never waiting for company, so a lone writer pays nothing), and writes
/// them in one `BEGIN IMMEDIATE` transaction with one commit. Each append runs in its
/// own savepoint, so a version conflict (or any error) fails that append alone and
/// stores nothing of it; the others commit. Appends whose caller has gone (a cancelled
/// request) are dropped before the group is written: nothing unacknowledged is stored
/// unless it was already being written.
async fn group_writer(pool: SqlitePool, mut jobs: mpsc::UnboundedReceiver<Vec<AppendJob>>) {
    while let Some(first) = jobs.recv().await {
        let mut group = first;
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(more) => group.extend(more),
                Err(_) => break,
            }
        }
        group.retain(|job| !job.reply.is_closed());
        if group.is_empty() {
            continue;
        }
        metrics::histogram!("commerce_append_group_size").record(group.len() as f64);
        write_group(&pool, group).await;
    }
}

async fn write_group(pool: &SqlitePool, group: Vec<AppendJob>) {
    let mut tx = match pool.begin_with("BEGIN IMMEDIATE").await {
        Ok(tx) => tx,
        Err(e) => {
            let message = e.to_string();
            for job in group {
                let _ = job.reply.send(Err(group_failed(&message)));
            }
            return;
        }
    };
    let alone = group.len() == 1;
    let mut done = Vec::with_capacity(group.len());
    for AppendJob { append, reply } in group {
        let outcome = if alone {
            append_in_tx(&mut tx, append).await
        } else {
            in_savepoint(&mut tx, append).await
        };
        done.push((reply, outcome));
    }
    let committed = if alone && done.iter().all(|(_, o)| o.is_err()) {
        tx.rollback().await.map(|_| ())
    } else {
        tx.commit().await
    };
    match committed {
        Ok(()) => {
            for (reply, outcome) in done {
                let _ = reply.send(outcome);
            }
        }
        Err(e) => {
            let message = e.to_string();
            for (reply, outcome) in done {
                let _ = reply.send(outcome.and(Err(group_failed(&message))));
            }
        }
    }
}

/// Runs one append of a group in a savepoint, undone when the append fails.
async fn in_savepoint(
    tx: &mut sqlx::SqliteConnection,
    append: Append,
) -> Result<AppendOutcome, StoreError> {
    sqlx::query("SAVEPOINT append").execute(&mut *tx).await?;
    let outcome = append_in_tx(tx, append).await;
    if outcome.is_err() {
        sqlx::query("ROLLBACK TO append").execute(&mut *tx).await?;
    }
    sqlx::query("RELEASE append").execute(&mut *tx).await?;
    outcome
}

fn group_failed(message: &str) -> StoreError {
    StoreError::Database(sqlx::Error::Protocol(format!(
        "the append's transaction failed: {message}"
    )))
}

/// One append inside the group's transaction (see [`group_writer`]).
async fn append_in_tx(
    tx: &mut sqlx::SqliteConnection,
    append: Append,
) -> Result<AppendOutcome, StoreError> {
    let Append {
        stream,
        expected,
        rows,
        snapshot,
        command_id,
    } = append;
    let stream = &stream;
    let prev = if expected == 0 {
        None
    } else {
        let hash: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT hash FROM events WHERE stream_type = ? AND stream_id = ? AND version = ?",
        )
        .bind(&stream.stream_type)
        .bind(&stream.stream_id)
        .bind(expected)
        .fetch_optional(&mut *tx)
        .await?;
        Some(hash.ok_or_else(|| StoreError::Conflict {
            stream: stream.clone(),
            expected,
        })?)
    };
    let hashes = chain(stream, &rows, prev);
    let last_version = rows.last().map_or(expected, |r| r.version);
    let first_version = rows.first().map_or(expected, |r| r.version);
    let taken_at = rows.first().map(|r| r.recorded_at);
    let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
        "INSERT INTO events (event_id, stream_type, stream_id, version, event_type, \
             schema_version, payload, metadata, correlation_id, causation_id, actor, \
             recorded_at, hash, prev_hash) ",
    );
    insert.push_values(
        rows.into_iter().zip(hashes),
        |mut b, (row, (hash, prev))| {
            b.push_bind(row.event_id)
                .push_bind(&stream.stream_type)
                .push_bind(&stream.stream_id)
                .push_bind(row.version)
                .push_bind(row.event_type)
                .push_bind(row.schema_version)
                .push_bind(row.payload_text)
                .push_bind(row.metadata_text)
                .push_bind(row.correlation_id)
                .push_bind(row.causation_id)
                .push_bind(row.actor)
                .push_bind(row.recorded_at)
                .push_bind(hash)
                .push_bind(prev);
        },
    );
    insert.push(" RETURNING position");
    let positions: Vec<i64> = insert
        .build_query_scalar()
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| map_error(e, stream, expected))?;
    if let Some(s) = snapshot {
        sqlx::query(
                "INSERT INTO snapshots (stream_type, stream_id, version, snapshot_no, payload, taken_at) \
                 VALUES (?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (stream_type, stream_id) DO UPDATE \
                 SET version = excluded.version, snapshot_no = excluded.snapshot_no, \
                     payload = excluded.payload, taken_at = excluded.taken_at",
            )
            .bind(&stream.stream_type)
            .bind(&stream.stream_id)
            .bind(s.version)
            .bind(s.snapshot_no)
            .bind(serde_json::to_string(&s.state).map_err(StoreError::Corrupt)?)
            .bind(taken_at)
            .execute(&mut *tx)
            .await?;
    }
    let outcome = AppendOutcome {
        first_position: positions.iter().copied().min().unwrap_or(0),
        last_position: positions.iter().copied().max().unwrap_or(0),
        version: last_version,
    };
    if let Some(id) = command_id {
        sqlx::query(
            "INSERT INTO commands (stream_type, stream_id, command_id, first_version, \
                 version, first_position, last_position, recorded_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&stream.stream_type)
        .bind(&stream.stream_id)
        .bind(id)
        .bind(first_version)
        .bind(last_version)
        .bind(outcome.first_position)
        .bind(outcome.last_position)
        .bind(taken_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_error(e, stream, expected))?;
    }
    Ok(outcome)
}

fn map_error(err: sqlx::Error, stream: &StreamRef, expected: i64) -> StoreError {
    if let sqlx::Error::Database(db) = &err {
        if db.is_unique_violation() {
            let message = db.message();
            if message.contains("events.version") {
                return StoreError::Conflict {
                    stream: stream.clone(),
                    expected,
                };
            }
            if message.contains("commands.") {
                return StoreError::DuplicateCommand;
            }
            if message.contains("events.event_id") {
                return StoreError::InvalidAppend(
                    "an event id of this append is already in the log".into(),
                );
            }
        }
    }
    StoreError::Database(err)
}

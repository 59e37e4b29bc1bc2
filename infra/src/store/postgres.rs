//! PostgreSQL backend: one `append_events` call per command, a tail guarded by the
//! oldest running transaction id (see the migration for why that is sufficient).

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use super::row::{decode_event, PG_COLUMNS};
use super::{
    chain, AppendOutcome, PreparedEvent, RecordedEvent, SnapshotWrite, Store, StoreConfig,
    StoreError, StoredSnapshot, StreamRef,
};

pub(super) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The channel tails in other processes listen on for appends.
pub(super) const CHANNEL: &str = "commerce_events";

/// Tells tails in other processes that this process appended, from a session of its own:
/// NOTIFY inside the append would serialize the appends' commits. Wake-ups are coalesced
/// (at most one NOTIFY per `NOTIFY_EVERY`) and best effort; tails also poll.
pub(super) async fn notify_appends(pool: PgPool, mut appended: tokio::sync::watch::Receiver<i64>) {
    while appended.changed().await.is_ok() {
        let head = *appended.borrow_and_update();
        if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(head.to_string())
            .execute(&pool)
            .await
        {
            tracing::debug!(error = %e, "append wake-up not sent");
        }
        // Appends in the meantime are announced by the next NOTIFY: one per interval.
        tokio::time::sleep(NOTIFY_EVERY).await;
    }
}

/// The shortest interval between two wake-up notifications from one process.
const NOTIFY_EVERY: std::time::Duration = std::time::Duration::from_millis(10);

pub(super) async fn connect(url: &str, config: &StoreConfig) -> Result<PgPool, StoreError> {
    let options = PgConnectOptions::from_str(url)?.application_name("commerce");
    // One direct attempt first: a pool only reports "timed out" for a refused or
    // misconfigured connection, while the direct error names the cause.
    sqlx::Connection::close(
        <sqlx::PgConnection as sqlx::Connection>::connect_with(&options).await?,
    )
    .await?;
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect_with(options)
        .await?;
    Ok(pool)
}

pub(super) fn map_error(err: sqlx::Error, stream: &StreamRef, expected: i64) -> StoreError {
    if let sqlx::Error::Database(db) = &err {
        match (db.code().as_deref(), db.constraint()) {
            (Some("23505"), Some("events_stream_version_key")) => {
                return StoreError::Conflict {
                    stream: stream.clone(),
                    expected,
                }
            }
            (Some("23505"), Some("events_event_id_key")) => {
                return StoreError::InvalidAppend(format!(
                    "an event id of this append is already in the log ({})",
                    db.message()
                ))
            }
            (Some("23505"), Some("commands_pkey")) => return StoreError::DuplicateCommand,
            (Some("XX001"), _) => return StoreError::InvalidAppend(db.message().to_string()),
            _ => {}
        }
    }
    StoreError::Database(err)
}

pub(super) async fn append(
    store: &Store,
    pool: &PgPool,
    stream: &StreamRef,
    expected: i64,
    rows: Vec<PreparedEvent>,
    snapshot: Option<SnapshotWrite>,
    command_id: Option<uuid::Uuid>,
) -> Result<AppendOutcome, StoreError> {
    let prev = if expected == 0 {
        None
    } else if let Some(hash) = store.cached_hash(stream, expected) {
        Some(hash)
    } else {
        let hash: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT hash FROM events WHERE stream_type = $1 AND stream_id = $2 AND version = $3",
        )
        .bind(&stream.stream_type)
        .bind(&stream.stream_id)
        .bind(expected)
        .fetch_optional(pool)
        .await?;
        Some(hash.ok_or_else(|| StoreError::Conflict {
            stream: stream.clone(),
            expected,
        })?)
    };
    let hashes = chain(stream, &rows, prev);
    let n = rows.len();
    let mut ids = Vec::with_capacity(n);
    let mut versions = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut schema_versions = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    let mut metadata = Vec::with_capacity(n);
    let mut correlation = Vec::with_capacity(n);
    let mut causation = Vec::with_capacity(n);
    let mut actors = Vec::with_capacity(n);
    let mut recorded = Vec::with_capacity(n);
    let mut hash_col = Vec::with_capacity(n);
    let mut prev_col = Vec::with_capacity(n);
    for (row, (hash, prev)) in rows.into_iter().zip(hashes) {
        ids.push(row.event_id);
        versions.push(row.version);
        types.push(row.event_type);
        schema_versions.push(row.schema_version);
        payloads.push(row.payload_text);
        metadata.push(row.metadata_text);
        correlation.push(row.correlation_id);
        causation.push(row.causation_id);
        actors.push(row.actor);
        recorded.push(row.recorded_at);
        hash_col.push(hash);
        prev_col.push(prev);
    }
    let last_version = *versions.last().unwrap_or(&expected);
    let last_hash = hash_col.last().cloned().unwrap_or_default();
    let (snapshot_state, snapshot_version, snapshot_no) = match snapshot {
        Some(s) => (
            Some(serde_json::to_string(&s.state).map_err(StoreError::Corrupt)?),
            Some(s.version),
            Some(s.snapshot_no),
        ),
        None => (None, None, None),
    };
    let sql = if command_id.is_some() {
        "SELECT first_position, last_position FROM append_command(\
         $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
    } else {
        "SELECT first_position, last_position FROM append_events(\
         $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
    };
    let mut query = sqlx::query_as(sql)
        .bind(&stream.stream_type)
        .bind(&stream.stream_id)
        .bind(ids)
        .bind(versions)
        .bind(types)
        .bind(schema_versions)
        .bind(payloads)
        .bind(metadata)
        .bind(correlation)
        .bind(causation)
        .bind(actors)
        .bind(recorded)
        .bind(hash_col)
        .bind(prev_col)
        .bind(snapshot_state)
        .bind(snapshot_version)
        .bind(snapshot_no);
    if let Some(id) = command_id {
        query = query.bind(id);
    }
    let (first_position, last_position): (i64, i64) = query
        .fetch_one(pool)
        .await
        .map_err(|e| map_error(e, stream, expected))?;
    store.remember_head(stream, last_version, &last_hash);
    Ok(AppendOutcome {
        first_position,
        last_position,
        version: last_version,
    })
}

pub(super) async fn read_stream(
    pool: &PgPool,
    stream: &StreamRef,
    after_version: i64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let sql = format!(
        "SELECT {PG_COLUMNS} FROM events \
         WHERE stream_type = $1 AND stream_id = $2 AND version > $3 ORDER BY version"
    );
    let rows = sqlx::query(&sql)
        .bind(&stream.stream_type)
        .bind(&stream.stream_id)
        .bind(after_version)
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(decode_event).collect::<Result<_, _>>()?)
}

pub(super) async fn read_all(
    pool: &PgPool,
    after_position: i64,
    limit: i64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    // Rows of transactions at or above the oldest running xid may still be joined by
    // rows with lower positions; they are left for a later read.
    let sql = format!(
        "SELECT {PG_COLUMNS} FROM events \
         WHERE position > $1 AND txid < pg_snapshot_xmin(pg_current_snapshot()) \
         ORDER BY position LIMIT $2"
    );
    let rows = sqlx::query(&sql)
        .bind(after_position)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(decode_event).collect::<Result<_, _>>()?)
}

pub(super) async fn read_type(
    pool: &PgPool,
    stream_type: &str,
    after_position: i64,
    limit: i64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let sql = format!(
        "SELECT {PG_COLUMNS} FROM events \
         WHERE stream_type = $1 AND position > $2 \
           AND txid < pg_snapshot_xmin(pg_current_snapshot()) \
         ORDER BY position LIMIT $3"
    );
    let rows = sqlx::query(&sql)
        .bind(stream_type)
        .bind(after_position)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(decode_event).collect::<Result<_, _>>()?)
}

pub(super) async fn head_position(pool: &PgPool) -> Result<i64, StoreError> {
    // Safe rows form a prefix of the log, so the newest safe row is found by walking
    // back from the end past the (short) unsafe suffix.
    let head: Option<i64> = sqlx::query_scalar(
        "SELECT position FROM events \
         WHERE txid < pg_snapshot_xmin(pg_current_snapshot()) \
         ORDER BY position DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    Ok(head.unwrap_or(0))
}

pub(super) async fn last_position(pool: &PgPool) -> Result<i64, StoreError> {
    let last: Option<i64> =
        sqlx::query_scalar("SELECT position FROM events ORDER BY position DESC LIMIT 1")
            .fetch_optional(pool)
            .await?;
    Ok(last.unwrap_or(0))
}

pub(super) async fn load_snapshot(
    pool: &PgPool,
    stream: &StreamRef,
) -> Result<Option<StoredSnapshot>, StoreError> {
    let row: Option<super::SnapshotRow> = sqlx::query_as(
        "SELECT s.version, s.snapshot_no, s.payload::text, \
                (SELECT max(e.version) FROM events e \
                  WHERE e.stream_type = s.stream_type AND e.stream_id = s.stream_id), \
                (SELECT e.hash FROM events e WHERE e.stream_type = s.stream_type \
                    AND e.stream_id = s.stream_id AND e.version = s.version) \
           FROM snapshots s WHERE s.stream_type = $1 AND s.stream_id = $2",
    )
    .bind(&stream.stream_type)
    .bind(&stream.stream_id)
    .fetch_optional(pool)
    .await?;
    row.map(super::snapshot_from_row).transpose()
}

pub(super) async fn command_record(
    pool: &PgPool,
    stream: &StreamRef,
    command_id: uuid::Uuid,
) -> Result<Option<super::CommandRecord>, StoreError> {
    let row: Option<(i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT first_version, version, first_position, last_position FROM commands \
          WHERE stream_type = $1 AND stream_id = $2 AND command_id = $3",
    )
    .bind(&stream.stream_type)
    .bind(&stream.stream_id)
    .bind(command_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(super::CommandRecord::from_row))
}

//! PostgreSQL backend: appends group-committed through `append_batch` (see
//! [`pg_group`](super::pg_group)), a tail guarded by the oldest running transaction id
//! (see the migrations for why that is sufficient).

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use super::pg_group::{BatchItem, Group};
use super::row::{decode_event, PG_COLUMNS};
use super::{
    chain, Append, AppendOutcome, RecordedEvent, Store, StoreConfig, StoreError, StoredSnapshot,
    StreamRef,
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

/// The hash the first event of an append to `stream` at `expected` continues from: the
/// cached head, or the stored event at `expected`. A missing one is a conflict.
async fn prev_hash(
    store: &Store,
    pool: &PgPool,
    stream: &StreamRef,
    expected: i64,
) -> Result<Option<Vec<u8>>, StoreError> {
    if expected == 0 {
        return Ok(None);
    }
    if let Some(hash) = store.cached_hash(stream, expected) {
        return Ok(Some(hash));
    }
    let hash: Option<Vec<u8>> = sqlx::query_scalar(
        "SELECT hash FROM events WHERE stream_type = $1 AND stream_id = $2 AND version = $3",
    )
    .bind(&stream.stream_type)
    .bind(&stream.stream_id)
    .bind(expected)
    .fetch_optional(pool)
    .await?;
    Ok(Some(hash.ok_or_else(|| StoreError::Conflict {
        stream: stream.clone(),
        expected,
    })?))
}

/// One append ready for the group writer, with the head it leaves on success.
pub(super) struct Prepared {
    item: BatchItem,
    last_version: i64,
    last_hash: Vec<u8>,
}

impl Prepared {
    /// The stream's version and head hash once this append is stored.
    pub(super) fn leaves(&self) -> (i64, Vec<u8>) {
        (self.last_version, self.last_hash.clone())
    }
}

/// Hashes an append's events (after the head it continues from: `known_prev`, when an
/// earlier append of the same group leaves it, else the cache or the log) and
/// serializes it for the group writer.
pub(super) async fn prepare(
    store: &Store,
    pool: &PgPool,
    append: Append,
    known_prev: Option<Vec<u8>>,
) -> Result<Prepared, StoreError> {
    let Append {
        stream,
        expected,
        rows,
        snapshot,
        command_id,
    } = append;
    let stream = &stream;
    let prev = match known_prev {
        Some(hash) => Some(hash),
        None => prev_hash(store, pool, stream, expected).await?,
    };
    let hashes = chain(stream, &rows, prev);
    let last_version = rows.last().map_or(expected, |r| r.version);
    let last_hash = hashes.last().map(|(h, _)| h.clone()).unwrap_or_default();
    let item = BatchItem::new(
        stream,
        expected,
        rows,
        hashes,
        snapshot.as_ref(),
        command_id,
    )?;
    Ok(Prepared {
        item,
        last_version,
        last_hash,
    })
}

/// Writes prepared appends through the group writer, together when there are several,
/// and answers each one's outcome in order.
pub(super) async fn write(
    store: &Store,
    group: &Group,
    prepared: Vec<Prepared>,
) -> Vec<Result<AppendOutcome, StoreError>> {
    let mut heads = Vec::with_capacity(prepared.len());
    let mut items = Vec::with_capacity(prepared.len());
    for p in prepared {
        heads.push((p.item.stream.clone(), p.last_version, p.last_hash));
        items.push(p.item);
    }
    let stored = group.write(items).await;
    stored
        .into_iter()
        .zip(heads)
        .map(|(outcome, (stream, version, hash))| {
            let (first_position, last_position) = outcome?;
            store.remember_head(&stream, version, &hash);
            Ok(AppendOutcome {
                first_position,
                last_position,
                version,
            })
        })
        .collect()
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

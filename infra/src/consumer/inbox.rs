//! An inbox for handlers whose effect is a transaction in *another* database.
//!
//! The runtime settles an event in the store's database; an effect committed elsewhere
//! cannot join that transaction, so a crash between the two delivers the event again.
//! The handler makes that harmless by entering the event in an inbox kept in the
//! effect's own database, in the effect's transaction, and skipping the effect when the
//! event is there already:
//!
//! ```text
//! async fn handle(&self, _tx: &mut Tx<'_>, envelope: &Envelope) -> Result<(), HandlerError> {
//!     let mut tx = self.warehouse.begin().await?;           // the other database
//!     if inbox::enter(TxConn::Postgres(&mut tx), self.name(), envelope).await? {
//!         sqlx::query("INSERT INTO shipments_to_pick …").execute(&mut *tx).await?;
//!     }
//!     tx.commit().await?;                                    // effect + inbox, or neither
//!     Ok(())
//! }
//! ```
//!
//! Create the table once with [`create_table`] (or the same DDL in that database's own
//! migrations). Rows are keyed by (consumer, event id); prune them by `position` once
//! the consumer's position (`consumers.position` in the store) is past it.

use super::TxConn;
use crate::feed::Envelope;
use crate::on_conn;

const POSTGRES_TABLE: &str = "CREATE TABLE IF NOT EXISTS consumer_effect_inbox ( \
     consumer TEXT NOT NULL, event_id UUID NOT NULL, position BIGINT NOT NULL, \
     PRIMARY KEY (consumer, event_id))";

const SQLITE_TABLE: &str = "CREATE TABLE IF NOT EXISTS consumer_effect_inbox ( \
     consumer TEXT NOT NULL, event_id BLOB NOT NULL, position INTEGER NOT NULL, \
     PRIMARY KEY (consumer, event_id))";

const ENTER: &str = "INSERT INTO consumer_effect_inbox (consumer, event_id, position) \
     VALUES ($1, $2, $3) ON CONFLICT (consumer, event_id) DO NOTHING";

/// Creates the inbox table (`consumer_effect_inbox`) in the effect's database if it is
/// missing.
pub async fn create_table(conn: TxConn<'_>) -> Result<(), sqlx::Error> {
    match conn {
        TxConn::Postgres(c) => {
            sqlx::query(POSTGRES_TABLE).execute(c).await?;
        }
        TxConn::Sqlite(c) => {
            sqlx::query(SQLITE_TABLE).execute(c).await?;
        }
    }
    Ok(())
}

/// Enters `envelope` in `consumer`'s inbox on `conn` (the effect's open transaction).
/// Returns `true` the first time, `false` when the event was entered before: the effect
/// is then already stored and must be skipped. Two runners entering the same event at
/// once are serialised by the primary key: the second waits for the first's transaction
/// and then gets `false` (or a conflict error on SQLite's busy lock, which is retried).
pub async fn enter(
    conn: TxConn<'_>,
    consumer: &str,
    envelope: &Envelope,
) -> Result<bool, sqlx::Error> {
    let rows = on_conn!(conn, c => sqlx::query(ENTER)
        .bind(consumer)
        .bind(envelope.event_id)
        .bind(envelope.position)
        .execute(c)
        .await?
        .rows_affected());
    Ok(rows == 1)
}

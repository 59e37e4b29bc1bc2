//! The transaction a handler's effect and the runtime's settle share.

use sqlx::{PgConnection, Postgres, Sqlite, SqliteConnection, Transaction};

use crate::store::Db;

/// The transaction in which the runtime settles an event, lent to the handler first.
///
/// It is opened lazily: a handler whose effect lives in the store's database calls
/// [`Tx::conn`] and writes through it; the runtime then settles the event (progress,
/// inbox, failure count) in the same transaction and commits once, so the effect and
/// the settle are both stored or both absent. A handler that never calls
/// [`Tx::conn`] (its effect is elsewhere) costs no transaction until the settle.
///
/// Whatever goes wrong before the commit rolls the effect back with the settle: a
/// handler error, a failed settle, a handler timeout (its future is dropped while the
/// runtime still owns the transaction, so its effect cannot land later, after the next
/// event's), or a crash of the process.
///
/// While the transaction is open the handler must not write through the store's pools
/// (`store.db()`): on SQLite the transaction holds the single writer connection, so such
/// a write would wait for itself.
pub struct Tx<'a> {
    db: Db<'a>,
    open: Option<Open>,
}

enum Open {
    Postgres(Transaction<'static, Postgres>),
    Sqlite(Transaction<'static, Sqlite>),
}

/// The open transaction's connection, of either backend. Run one sqlx expression on it
/// with [`on_conn!`](crate::on_conn), as [`on_db!`](crate::on_db) does for pools.
pub enum TxConn<'t> {
    Postgres(&'t mut PgConnection),
    Sqlite(&'t mut SqliteConnection),
}

/// Runs the same sqlx expression on whichever connection a [`TxConn`] holds:
/// `on_conn!(tx.conn().await?, conn => sqlx::query("…").execute(conn).await)?`.
/// SQL uses `$1`-style parameters, which both backends accept.
#[macro_export]
macro_rules! on_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::consumer::TxConn::Postgres($c) => $body,
            $crate::consumer::TxConn::Sqlite($c) => $body,
        }
    };
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("open", &self.open.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a> Tx<'a> {
    /// A transaction on `db`, not begun yet.
    pub(super) fn new(db: Db<'a>) -> Self {
        Self { db, open: None }
    }

    /// The transaction's connection, beginning the transaction on first use (on SQLite
    /// with `BEGIN IMMEDIATE`, so it cannot fail later on a lock upgrade).
    pub async fn conn(&mut self) -> Result<TxConn<'_>, sqlx::Error> {
        let open = match self.open.take() {
            Some(open) => open,
            None => match self.db {
                Db::Postgres(pool) => Open::Postgres(pool.begin().await?),
                Db::Sqlite(pool) => Open::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            },
        };
        let open = self.open.insert(open);
        Ok(match open {
            Open::Postgres(tx) => TxConn::Postgres(tx),
            Open::Sqlite(tx) => TxConn::Sqlite(tx),
        })
    }

    /// Whether the handler (or the runtime) has begun the transaction.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Commits what was written (nothing to do when the transaction was never begun).
    pub(super) async fn commit(self) -> Result<(), sqlx::Error> {
        match self.open {
            Some(Open::Postgres(tx)) => tx.commit().await,
            Some(Open::Sqlite(tx)) => tx.commit().await,
            None => Ok(()),
        }
    }
}

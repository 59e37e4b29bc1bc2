//! One active runner per consumer name on the in-process feed.
//!
//! Several `serve` processes on one PostgreSQL database each start every in-process
//! consumer; only the holder of the consumer's lease reads the log and handles events,
//! the others wait to take over.
//!
//! * **PostgreSQL**: a session advisory lock on a connection of its own, detached from
//!   the pool, as the [relay](crate::relay)'s leadership does (its lease is private to the
//!   relay and keyed for relays, so consumers keep their own, under another key class).
//!   The lock lives exactly as long as that connection: when the holder dies the server
//!   releases it and a waiting runner, polling `pg_try_advisory_lock`, takes over. The
//!   holder pings the connection on every maintenance tick and stops when it breaks, and
//!   every settle checks, inside its transaction, that the lock connection still holds
//!   the lock (`FENCE`), so a runner that lost its lease cannot settle anything more.
//! * **SQLite** (embedded, one process per database file): a process-local guard keyed
//!   by database file and consumer name.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use sqlx::{Connection, PgConnection};

use super::ConsumerError;
use crate::store::Store;

/// Consumer names (per SQLite file) whose guard is held in this process.
static LOCAL_LEASES: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Two 32-bit keys: a class for consumers, and the name within the current schema
/// (tests run many schemas in one database, each with its own consumers).
const TRY_LOCK: &str = "SELECT pg_try_advisory_lock(hashtext('commerce.consumer'), \
                        hashtext(current_schema() || '/' || $1))";

/// Whether backend `$1` (the lease connection) still holds the lease of consumer `$2`
/// (matched by key, so a recycled backend id holding some other lock does not count).
pub(super) const FENCE: &str = "SELECT EXISTS (SELECT 1 FROM pg_locks \
     WHERE locktype = 'advisory' AND pid = $1 AND granted AND objsubid = 2 \
     AND classid = hashtext('commerce.consumer')::oid \
     AND objid = hashtext(current_schema() || '/' || $2)::oid)";

/// Held by the one runner allowed to handle a consumer's events. Dropping it gives the
/// lease up (on PostgreSQL by closing the lock connection).
pub(super) enum Lease {
    Postgres { conn: PgConnection, pid: i32 },
    Sqlite { _guard: LocalGuard },
}

pub(super) struct LocalGuard {
    key: String,
}

impl Drop for LocalGuard {
    fn drop(&mut self) {
        let mut held = LOCAL_LEASES.lock().unwrap_or_else(|e| e.into_inner());
        held.remove(&self.key);
    }
}

impl Lease {
    /// Waits until this runner may handle `name`'s events, polling every `retry`.
    pub(super) async fn acquire(
        store: &Store,
        name: &str,
        retry: Duration,
    ) -> Result<Self, ConsumerError> {
        if let Some(pool) = store.pg_pool() {
            // A dedicated connection: a pooled one would go back to the pool still
            // holding the lock when the lease is dropped.
            let mut conn = pool.acquire().await?.detach();
            let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut conn)
                .await?;
            loop {
                let got: bool = sqlx::query_scalar(TRY_LOCK)
                    .bind(name)
                    .fetch_one(&mut conn)
                    .await?;
                if got {
                    tracing::info!(consumer = name, "consumer lease acquired");
                    return Ok(Lease::Postgres { conn, pid });
                }
                tokio::time::sleep(retry).await;
            }
        }
        let pool = store
            .sqlite_pool()
            .ok_or_else(|| ConsumerError::Config("store has no known backend".into()))?;
        let key = format!(
            "{}\0{name}",
            pool.connect_options().get_filename().display()
        );
        loop {
            let taken = {
                let mut held = LOCAL_LEASES.lock().unwrap_or_else(|e| e.into_inner());
                held.insert(key.clone())
            };
            if taken {
                return Ok(Lease::Sqlite {
                    _guard: LocalGuard { key },
                });
            }
            tokio::time::sleep(retry).await;
        }
    }

    /// The lock connection's backend id, for [`FENCE`] (PostgreSQL only).
    pub(super) fn fence(&self) -> Option<i32> {
        match self {
            Lease::Postgres { pid, .. } => Some(*pid),
            Lease::Sqlite { .. } => None,
        }
    }

    /// Fails when the lease may have been lost (the lock connection broke).
    pub(super) async fn check(&mut self, name: &str) -> Result<(), ConsumerError> {
        match self {
            Lease::Postgres { conn, .. } => conn
                .ping()
                .await
                .map_err(|_| ConsumerError::LeaseLost(name.to_string())),
            Lease::Sqlite { .. } => Ok(()),
        }
    }

    /// Gives the lease up at once (the server releases the lock with the connection).
    pub(super) async fn release(self) {
        if let Lease::Postgres { conn, .. } = self {
            let _ = conn.close().await;
        }
    }
}

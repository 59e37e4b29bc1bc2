//! Leadership: exactly one relay of a given name publishes at a time, and the
//! checkpoint it keeps.
//!
//! * **PostgreSQL** (several processes): a session advisory lock held on a connection of
//!   its own, detached from the pool. The lock lives exactly as long as that connection,
//!   so when the holder dies (crash, abort, network loss) the server releases it and a
//!   standby, polling `pg_try_advisory_lock`, takes over. The leader writes its
//!   checkpoint through the same connection, and pings it while idle, so it notices a
//!   lost lock within one tick and stops publishing.
//!
//!   Under a network partition neither side may wait on TCP's defaults (hours):
//!   every statement on the lock connection must answer within [`LEASE_DEADLINE`] or
//!   the leader gives leadership up and stops publishing; and the server probes the
//!   connection with TCP keepalives ([`KEEPALIVE_SQL`]), so it drops a vanished
//!   leader's backend, releasing the lock, after about [`SERVER_RELEASE`]. The leader
//!   stops first: a standby can never publish while the old leader still does. This
//!   needs a session-level connection to PostgreSQL itself (directly, or a pooler in
//!   session mode): a transaction-mode pooler would hand the advisory lock's session
//!   to someone else.
//! * **SQLite** (embedded, one process): a process-local guard keyed by database file
//!   and relay name. SQLite has no session locks and the embedded deployment runs one
//!   process per database file, so this is enough; two *processes* on one SQLite file
//!   would each publish (JetStream still de-duplicates within its window).

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use sqlx::{Connection, PgConnection, SqlitePool};

use super::RelayError;
use crate::store::Store;

/// Relay names (per SQLite file) whose guard is currently held in this process.
static LOCAL_LEASES: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Held by the one relay allowed to publish. Dropping it gives leadership up.
pub(super) enum Lease {
    Postgres {
        conn: PgConnection,
        name: String,
    },
    Sqlite {
        pool: SqlitePool,
        name: String,
        _guard: LocalGuard,
        clock: std::sync::Arc<dyn crate::clock::Clock>,
    },
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

/// Longest a statement on the lock connection may take before the leader assumes the
/// lease lost and stops publishing.
pub(super) const LEASE_DEADLINE: Duration = Duration::from_secs(2);

/// Server-side keepalives on the lock connection: idle seconds before the first probe,
/// seconds between probes, probes lost before the server drops the connection.
const KEEPALIVE: (u64, u64, u64) = (5, 2, 3);

/// Set on the lock connection when it is taken.
const KEEPALIVE_SQL: &str = "SELECT set_config('tcp_keepalives_idle', '5', false), \
                                    set_config('tcp_keepalives_interval', '2', false), \
                                    set_config('tcp_keepalives_count', '3', false)";

/// Roughly when the server releases a vanished leader's lock.
pub(super) const SERVER_RELEASE: Duration =
    Duration::from_secs(KEEPALIVE.0 + KEEPALIVE.1 * KEEPALIVE.2);

// The leader must give up (deadline plus one idle tick of at most a second) well before
// the server can hand the lock to a standby.
const _: () = assert!(LEASE_DEADLINE.as_secs() + 1 < SERVER_RELEASE.as_secs());

/// Runs one statement of the lock connection within [`LEASE_DEADLINE`].
macro_rules! within_deadline {
    ($what:expr, $statement:expr $(,)?) => {{
        match tokio::time::timeout(LEASE_DEADLINE, $statement).await {
            Ok(result) => result.map_err(RelayError::from),
            Err(_) => Err(RelayError::LeaseUnresponsive($what)),
        }
    }};
}

/// Two 32-bit keys: a fixed class for relays, and the relay name within the current
/// schema (tests run many schemas in one database; each has its own relays).
const TRY_LOCK: &str = "SELECT pg_try_advisory_lock(hashtext('commerce.relay'), \
                        hashtext(current_schema() || '/' || $1))";

impl Lease {
    /// Waits until this process may publish as `name`, polling every `retry`.
    pub(super) async fn acquire(
        store: &Store,
        name: &str,
        retry: Duration,
    ) -> Result<Self, RelayError> {
        if let Some(pool) = store.pg_pool() {
            // A dedicated connection: a pooled one would go back to the pool still
            // holding the lock when this lease is dropped.
            let mut conn = pool.acquire().await?.detach();
            within_deadline!(
                "keepalive settings",
                sqlx::query(KEEPALIVE_SQL).execute(&mut conn),
            )?;
            loop {
                let got: bool = within_deadline!(
                    "lock attempt",
                    sqlx::query_scalar(TRY_LOCK).bind(name).fetch_one(&mut conn),
                )?;
                if got {
                    tracing::info!(relay = name, "relay lock acquired");
                    return Ok(Lease::Postgres {
                        conn,
                        name: name.to_string(),
                    });
                }
                tokio::time::sleep(retry).await;
            }
        }
        let pool = store
            .sqlite_pool()
            .ok_or_else(|| RelayError::Config("store has no known backend".into()))?
            .clone();
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
                    pool,
                    name: name.to_string(),
                    _guard: LocalGuard { key },
                    clock: store.clock().clone(),
                });
            }
            tokio::time::sleep(retry).await;
        }
    }

    /// The stored checkpoint (0 when this relay never stored one).
    pub(super) async fn load(&mut self) -> Result<i64, RelayError> {
        let position: Option<i64> = match self {
            Lease::Postgres { conn, name } => within_deadline!(
                "checkpoint load",
                sqlx::query_scalar("SELECT position FROM relay_checkpoints WHERE name = $1")
                    .bind(&*name)
                    .fetch_optional(conn),
            )?,
            Lease::Sqlite { pool, name, .. } => {
                sqlx::query_scalar("SELECT position FROM relay_checkpoints WHERE name = ?")
                    .bind(&*name)
                    .fetch_optional(&*pool)
                    .await?
            }
        };
        Ok(position.unwrap_or(0))
    }

    /// Moves the checkpoint forward to `position` (never back).
    pub(super) async fn store(&mut self, position: i64) -> Result<(), RelayError> {
        match self {
            Lease::Postgres { conn, name } => {
                within_deadline!(
                    "checkpoint store",
                    sqlx::query(
                        "INSERT INTO relay_checkpoints (name, position, updated_at) \
                         VALUES ($1, $2, now()) \
                         ON CONFLICT (name) DO UPDATE \
                         SET position = GREATEST(relay_checkpoints.position, EXCLUDED.position), \
                             updated_at = EXCLUDED.updated_at",
                    )
                    .bind(&*name)
                    .bind(position)
                    .execute(conn),
                )?;
            }
            Lease::Sqlite {
                pool, name, clock, ..
            } => {
                sqlx::query(
                    "INSERT INTO relay_checkpoints (name, position, updated_at) VALUES (?, ?, ?) \
                     ON CONFLICT (name) DO UPDATE \
                     SET position = max(relay_checkpoints.position, excluded.position), \
                         updated_at = excluded.updated_at",
                )
                .bind(&*name)
                .bind(position)
                .bind(clock.now().to_rfc3339())
                .execute(&*pool)
                .await?;
            }
        }
        Ok(())
    }

    /// Fails when leadership may have been lost (the lock connection broke).
    pub(super) async fn check(&mut self) -> Result<(), RelayError> {
        match self {
            Lease::Postgres { conn, .. } => within_deadline!("ping", conn.ping())?,
            Lease::Sqlite { .. } => {}
        }
        Ok(())
    }
}

/// A checkpoint store under way: it holds the lease and hands it back when done.
type Storing = Pin<Box<dyn Future<Output = (Lease, Result<(), RelayError>)> + Send>>;

/// Keeps a session's checkpoint through its lease, storing in the background of
/// publishing: one store at a time, each of a position the caller knows acknowledged.
pub(super) struct Checkpointer {
    /// The lease while no store runs.
    lease: Option<Lease>,
    storing: Option<Storing>,
    /// The newest position known to be stored.
    stored: i64,
    /// The position of the newest store started (`stored` once it completes).
    requested: i64,
}

impl Checkpointer {
    /// Takes over `lease` and loads the stored checkpoint.
    pub(super) async fn new(mut lease: Lease) -> Result<Self, RelayError> {
        let stored = lease.load().await?;
        Ok(Self {
            lease: Some(lease),
            storing: None,
            stored,
            requested: stored,
        })
    }

    /// The newest position known to be stored.
    pub(super) fn stored(&self) -> i64 {
        self.stored
    }

    pub(super) fn is_storing(&self) -> bool {
        self.storing.is_some()
    }

    /// Starts storing `position` in the background, unless a store is already under
    /// way or `position` is not past the newest one started. Returns whether it started.
    pub(super) fn start(&mut self, position: i64) -> bool {
        if position <= self.requested {
            return false;
        }
        let Some(mut lease) = self.lease.take() else {
            return false;
        };
        self.requested = position;
        self.storing = Some(Box::pin(async move {
            let result = lease.store(position).await;
            (lease, result)
        }));
        true
    }

    /// Completes with the stored position when the store under way does; pending
    /// forever when none is. Cancel-safe: dropping it leaves the store running.
    pub(super) async fn completed(&mut self) -> Result<i64, RelayError> {
        let Some(storing) = self.storing.as_mut() else {
            return std::future::pending().await;
        };
        let (lease, result) = storing.await;
        self.storing = None;
        self.lease = Some(lease);
        result?;
        self.stored = self.requested;
        Ok(self.stored)
    }

    /// Waits for the store under way, then stores `position` if it is past it.
    pub(super) async fn flush(&mut self, position: i64) -> Result<(), RelayError> {
        if self.storing.is_some() {
            self.completed().await?;
        }
        if position > self.stored {
            if let Some(lease) = self.lease.as_mut() {
                lease.store(position).await?;
                self.stored = position;
                self.requested = position;
            }
        }
        Ok(())
    }

    /// Fails when leadership may have been lost. While a store is under way it proves
    /// the lock connection itself, so there is nothing to check.
    pub(super) async fn check(&mut self) -> Result<(), RelayError> {
        match self.lease.as_mut() {
            Some(lease) => lease.check().await,
            None => Ok(()),
        }
    }
}

/// The checkpoint of relay `name`, read without taking leadership (0 if none).
pub(super) async fn read_checkpoint(store: &Store, name: &str) -> Result<i64, RelayError> {
    let position: Option<i64> = if let Some(pool) = store.pg_pool() {
        sqlx::query_scalar("SELECT position FROM relay_checkpoints WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?
    } else if let Some(pool) = store.sqlite_pool() {
        sqlx::query_scalar("SELECT position FROM relay_checkpoints WHERE name = ?")
            .bind(name)
            .fetch_optional(pool)
            .await?
    } else {
        None
    };
    Ok(position.unwrap_or(0))
}

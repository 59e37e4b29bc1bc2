//! The relay: the only path by which events leave the log for NATS JetStream.
//!
//! A [`Relay`] follows the store's global log from its checkpoint and publishes every
//! event, in position order, to one JetStream stream (format: [`message`]). Guarantees:
//!
//! * **Nothing is lost.** The checkpoint (table `relay_checkpoints`) only moves past a
//!   contiguous prefix of events whose publish JetStream has acknowledged, so a relay
//!   killed at any moment resumes from a position at or before the first event that may
//!   be missing.
//! * **Nothing is stored twice** as long as a re-send follows the original within the
//!   stream's duplicate window: `Nats-Msg-Id` is the event id, and JetStream drops a
//!   message whose id it has seen within the window. Keep the window longer than the
//!   longest plausible crash-to-restart time.
//! * **Order.** Publishes are pipelined on one connection, which preserves their order,
//!   and every restart re-sends from the checkpoint in order; the first copy of each
//!   event to arrive is the one stored, so the stream is in position order. Known
//!   exception: if a message in the middle of a pipeline is lost or rejected while later
//!   ones are stored (JetStream refusing one message, or a NATS reconnect dropping what
//!   was in the socket), the failed ack restarts the session from the checkpoint and the
//!   lost event lands late, after higher positions. Nothing is lost, but consumers must
//!   be idempotent by event id rather than skip "positions below the highest seen".
//!   (Closing this would take `Nats-Expected-Last-Msg-Id` chaining; not done yet.)
//! * **One publisher.** Exactly one relay per name publishes at a time; others wait as
//!   standbys and take over when it dies. On PostgreSQL the leader holds a session
//!   advisory lock on a connection of its own (released by the server when that
//!   connection dies; standbys poll `pg_try_advisory_lock`), writes its checkpoint
//!   through that connection and pings it while idle, so a deposed leader stops within
//!   one tick (two if a checkpoint store hangs rather than fails). On SQLite (embedded:
//!   one process per database file) a process-local guard per file and name is enough;
//!   two *processes* on one SQLite file would both publish, and only the duplicate
//!   window would keep the stream clean.
//!
//! Throughput: a reader task reads the log and encodes events ahead of the publisher into
//! a bounded buffer ([`RelayConfig::read_ahead`]). Behind on a backlog it reads the log
//! itself with a lean query (only the columns a message needs, decoded straight into the
//! message, the next batch read while this one is handed out; [`LogReader`]); caught
//! up, it follows the store's gap-safe tail, which waits for appends. The publisher
//! takes the next chunk as soon as one is ready and keeps up to
//! [`RelayConfig::max_in_flight`] publishes awaiting their ack; checkpoint stores run
//! alongside publishing, one at a time, and never for longer than one tick unchecked.
//! None of this changes what is published or in which order: one task publishes, in
//! position order, and the checkpoint only ever names an acknowledged position.
//!
//! Transient failures (NATS or database down, stream missing, publish timeouts) never
//! end [`Relay::run`]: the current session is dropped, leadership given up, and a new
//! session starts after [`RelayConfig::retry_backoff`].

mod lease;
mod log;
pub mod message;
mod reader;

pub use log::LogReader;
pub use reader::LOG_BATCH;

use std::collections::VecDeque;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::time::Duration;

use async_nats::jetstream::context::{ContextBuilder, PublishAckFuture};
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::watch;

use crate::store::{Store, StoreError};
use lease::{Checkpointer, Lease};
use reader::Outgoing;

/// Settings of one relay. Every field has a working default.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Names the checkpoint row and the leadership lock: relays with the same name on the
    /// same store are one logical relay (a leader and standbys).
    pub name: String,
    /// The JetStream stream, created or updated at the start of every session.
    pub stream: String,
    /// Subject prefix: events go to `<prefix>.<stream_type>.<event_type>` and the stream
    /// captures `<prefix>.>`. Tests use a unique one each.
    pub subject_prefix: String,
    /// Stream replicas (1 on a single server; 3 on a cluster).
    pub replicas: usize,
    /// How long the stream keeps messages; zero keeps them forever.
    pub max_age: Duration,
    /// JetStream's de-duplication window (see the module docs for why it matters).
    pub duplicate_window: Duration,
    /// Largest number of publishes awaiting their ack at once.
    pub max_in_flight: usize,
    /// Events read from the log and encoded ahead of the publisher (the read-ahead
    /// buffer), so a log read never stalls publishing.
    pub read_ahead: usize,
    /// Store the checkpoint after this many acks...
    pub checkpoint_every: usize,
    /// ...or this long after the last store, whichever comes first.
    pub checkpoint_interval: Duration,
    /// How long one publish may wait for its ack before the session restarts.
    pub ack_timeout: Duration,
    /// How often a standby retries the leadership lock.
    pub lock_retry: Duration,
    /// Pause before a new session after a failed one.
    pub retry_backoff: Duration,
    /// Pause before retrying an [unpublishable](RelayError::Unpublishable) event: only a
    /// change of the server's configuration helps, so retry rarely and loudly.
    pub stalled_retry: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            name: "jetstream".into(),
            stream: "COMMERCE".into(),
            subject_prefix: message::NAMESPACE.into(),
            replicas: 1,
            max_age: Duration::ZERO,
            duplicate_window: Duration::from_secs(120),
            max_in_flight: 256,
            read_ahead: 2048,
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_millis(100),
            ack_timeout: Duration::from_secs(10),
            lock_retry: Duration::from_millis(500),
            retry_backoff: Duration::from_secs(1),
            stalled_retry: Duration::from_secs(30),
        }
    }
}

impl RelayConfig {
    /// The JetStream stream configuration a relay with this config creates or updates.
    pub fn stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.stream.clone(),
            subjects: vec![format!("{}.>", self.subject_prefix)],
            storage: StorageType::File,
            retention: RetentionPolicy::Limits,
            discard: DiscardPolicy::Old,
            num_replicas: self.replicas,
            max_age: self.max_age,
            duplicate_window: self.duplicate_window,
            description: Some("commerce events, CloudEvents 1.0 binary mode".into()),
            ..Default::default()
        }
    }

    fn validate(&self) -> Result<(), RelayError> {
        let bad = |what: &str| Err(RelayError::Config(what.to_string()));
        if self.name.is_empty() {
            return bad("relay name must not be empty");
        }
        if self.stream.is_empty() || self.stream.contains(['.', ' ', '*', '>', '/', '\\']) {
            return bad("stream name must be non-empty without `.`, ` `, `*`, `>`, `/`, `\\`");
        }
        if self.subject_prefix.is_empty()
            || self.subject_prefix.contains(['*', '>', ' '])
            || self.subject_prefix.split('.').any(str::is_empty)
        {
            return bad("subject prefix must be dot-separated non-empty tokens without wildcards");
        }
        if self.max_in_flight == 0
            || self.read_ahead == 0
            || self.checkpoint_every == 0
            || self.replicas == 0
        {
            return bad(
                "max_in_flight, read_ahead, checkpoint_every and replicas must be at least 1",
            );
        }
        if self.checkpoint_interval.is_zero() || self.ack_timeout.is_zero() {
            return bad("checkpoint_interval and ack_timeout must be positive");
        }
        if !self.max_age.is_zero() && self.duplicate_window > self.max_age {
            return bad("duplicate_window must not exceed max_age");
        }
        Ok(())
    }
}

/// Errors of a relay session. Only [`RelayError::Config`] ends [`Relay::run`]; the rest
/// are logged and retried.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("invalid relay configuration: {0}")]
    Config(String),
    #[error("event store: {0}")]
    Store(#[from] StoreError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("NATS JetStream: {0}")]
    Nats(#[source] async_nats::Error),
    #[error("the log tail ended")]
    TailEnded,
    /// A statement on the leadership connection did not answer in time: leadership may
    /// be lost, so the session stops publishing (see the lease's deadline).
    #[error("the relay's lock connection did not answer in time ({0}); giving leadership up")]
    LeaseUnresponsive(&'static str),
    /// An event is larger than the NATS server accepts, so no retry can publish it and
    /// everything after it waits. Raising the server's `max_payload` unblocks the relay
    /// (it retries by itself); the store's [`max_event_bytes`] keeps new events from
    /// getting there.
    ///
    /// [`max_event_bytes`]: crate::StoreConfig::max_event_bytes
    #[error(
        "the event at position {position} is a {size}-byte message, above the NATS server's \
         max_payload of {max_payload}: the relay is stalled until max_payload is raised"
    )]
    Unpublishable {
        position: i64,
        size: usize,
        max_payload: usize,
    },
}

impl RelayError {
    fn nats(err: impl Into<async_nats::Error>) -> Self {
        RelayError::Nats(err.into())
    }
}

/// Publishes the global log to JetStream. See the module docs for the guarantees.
pub struct Relay {
    store: Store,
    nats: async_nats::Client,
    config: RelayConfig,
    stalled: watch::Sender<Option<Stall>>,
}

/// Why a relay publishes nothing: an event the NATS server will never accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    /// The event every later one waits behind.
    pub position: i64,
    /// Its message size.
    pub size: usize,
    /// The server's limit when it was refused.
    pub max_payload: usize,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("store", &self.store.backend_name())
            .field("config", &self.config)
            .finish()
    }
}

/// Room for an event's headers besides its metadata (ids, type, source, subject, time,
/// positions): what [`Relay::check_payload_limit`] adds to the store's event limit.
pub const HEADER_ALLOWANCE: usize = 8 * 1024;

/// The gauge naming the position a relay is stalled at (0 while it is not).
pub const STALLED_GAUGE: &str = "commerce_relay_stalled_position";

/// A publish awaiting its ack (its event's position is kept alongside, in order).
type AckFuture = <PublishAckFuture as IntoFuture>::IntoFuture;

/// How a session ended without error.
enum SessionEnd {
    Shutdown,
}

impl Relay {
    /// A relay over `store`, publishing through `nats`. Fails only on an invalid config.
    pub fn new(
        store: Store,
        nats: async_nats::Client,
        config: RelayConfig,
    ) -> Result<Self, RelayError> {
        config.validate()?;
        Ok(Self {
            store,
            nats,
            config,
            stalled: watch::channel(None).0,
        })
    }

    /// Whether the relay is stalled on an unpublishable event, as it changes: `Some`
    /// from the moment it is refused until it has been published. Readiness checks and
    /// dashboards read this (and the [`STALLED_GAUGE`] metric).
    pub fn stalls(&self) -> watch::Receiver<Option<Stall>> {
        self.stalled.subscribe()
    }

    /// Runs until `shutdown` completes, then waits (up to the ack timeout) for the acks
    /// in flight, stores the checkpoint and returns `Ok`.
    ///
    /// The future may also simply be dropped or aborted at any point: nothing is lost,
    /// the next run (here or in a standby) re-sends from the last stored checkpoint and
    /// JetStream drops the duplicates. Dropping it closes the leadership connection, so
    /// a standby on PostgreSQL takes over within [`RelayConfig::lock_retry`].
    pub async fn run<F>(self, shutdown: F) -> Result<(), RelayError>
    where
        F: Future<Output = ()> + Send,
    {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            match self.session(&mut shutdown).await {
                Ok(SessionEnd::Shutdown) => return Ok(()),
                Err(RelayError::Config(msg)) => return Err(RelayError::Config(msg)),
                Err(
                    err @ RelayError::Unpublishable {
                        position,
                        size,
                        max_payload,
                    },
                ) => {
                    self.stalled.send_replace(Some(Stall {
                        position,
                        size,
                        max_payload,
                    }));
                    // Alert, do not loop quietly: an error in the log and a gauge
                    // naming the position every event behind it waits for.
                    metrics::gauge!(STALLED_GAUGE, "relay" => self.config.name.clone())
                        .set(position as f64);
                    tracing::error!(relay = %self.config.name, error = %err, "relay stalled");
                    tokio::select! {
                        _ = shutdown.as_mut() => return Ok(()),
                        _ = tokio::time::sleep(self.config.stalled_retry) => {}
                    }
                }
                Err(err) => {
                    tracing::warn!(relay = %self.config.name, error = %err, "relay session failed; retrying");
                    tokio::select! {
                        _ = shutdown.as_mut() => return Ok(()),
                        _ = tokio::time::sleep(self.config.retry_backoff) => {}
                    }
                }
            }
        }
    }

    /// Checks that every event the store accepts fits in one message of the connected
    /// NATS server: [`StoreConfig::max_event_bytes`](crate::StoreConfig::max_event_bytes)
    /// plus room for the headers must not exceed the server's `max_payload`.
    pub fn check_payload_limit(&self) -> Result<(), RelayError> {
        let max_payload = self.nats.server_info().max_payload;
        let needed = self.store.config().max_event_bytes + HEADER_ALLOWANCE;
        if needed > max_payload {
            return Err(RelayError::Config(format!(
                "events of up to {} bytes are accepted (max event bytes) but the NATS server's \
                 max_payload is {max_payload}: lower the event limit below {} or raise \
                 max_payload in the server's configuration",
                self.store.config().max_event_bytes,
                max_payload.saturating_sub(HEADER_ALLOWANCE),
            )));
        }
        Ok(())
    }

    /// The stored checkpoint of relay `name` on `store`: every event at or below it has
    /// been acknowledged by JetStream (0 when the relay never stored one).
    pub async fn checkpoint(store: &Store, name: &str) -> Result<i64, RelayError> {
        lease::read_checkpoint(store, name).await
    }

    /// The JetStream stream configuration this relay creates or updates.
    pub fn stream_config(&self) -> stream::Config {
        self.config.stream_config()
    }

    /// One leadership term: lock, ensure the stream, publish from the checkpoint.
    async fn session<F>(&self, shutdown: &mut Pin<&mut F>) -> Result<SessionEnd, RelayError>
    where
        F: Future<Output = ()> + Send,
    {
        let config = &self.config;
        let lease = tokio::select! {
            _ = shutdown.as_mut() => return Ok(SessionEnd::Shutdown),
            lease = Lease::acquire(&self.store, &config.name, config.lock_retry) => lease?,
        };
        // A fresh context per session: its ack semaphore must not hold permits of
        // publishes abandoned by a failed session, or this one could wait forever.
        let jetstream = ContextBuilder::new()
            .timeout(config.ack_timeout)
            .max_ack_inflight(config.max_in_flight)
            .build(self.nats.clone());
        jetstream
            .create_or_update_stream(self.stream_config())
            .await
            .map_err(RelayError::nats)?;

        let mut checkpoint = Checkpointer::new(lease).await?;
        let mut acked = checkpoint.stored();
        // Acks since the newest checkpoint store was started.
        let mut unstored = 0usize;
        tracing::info!(relay = %config.name, checkpoint = acked, "relay publishing");
        // Read per session: a reconnect may have brought a server with another limit.
        let max_payload = self.nats.server_info().max_payload;
        // Dropping `_reader` (any end of this session) stops the read-ahead task.
        let (mut outgoing, _reader) = reader::spawn(
            self.store.clone(),
            acked,
            config.name.clone(),
            config.subject_prefix.clone(),
            config.read_ahead,
        );
        // Encoded events taken from the reader, in position order, not yet published.
        let mut ready = Vec::new().into_iter();
        // Publishes awaiting their ack, and their events' positions, both in order.
        let mut in_flight: FuturesOrdered<AckFuture> = FuturesOrdered::new();
        let mut positions: VecDeque<i64> = VecDeque::new();
        let mut tick = tokio::time::interval(config.checkpoint_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        loop {
            // Publish what is at hand, up to the in-flight limit, taking the next chunk
            // as soon as one is ready: with acks coming back all the time the select
            // below would otherwise handle acks first and let the pipeline drain.
            while in_flight.len() < config.max_in_flight {
                let next = match ready.next() {
                    Some(next) => Some(next),
                    None => match outgoing.try_recv() {
                        Ok(chunk) => {
                            ready = chunk.into_iter();
                            ready.next()
                        }
                        // Empty or closed: the select below waits or reports it.
                        Err(_) => None,
                    },
                };
                let Some(Outgoing {
                    position,
                    subject,
                    message,
                    size,
                }) = next
                else {
                    break;
                };
                if size > max_payload {
                    // Keep what was published before it, so the stall sits exactly at
                    // this event and the retries re-send nothing.
                    while let Some(result) = in_flight.next().await {
                        result.map_err(RelayError::nats)?;
                        acked = positions.pop_front().expect("one position per publish");
                    }
                    checkpoint.flush(acked).await?;
                    return Err(RelayError::Unpublishable {
                        position,
                        size,
                        max_payload,
                    });
                }
                let ack = jetstream
                    .send_publish(subject, message)
                    .await
                    .map_err(RelayError::nats)?;
                in_flight.push_back(ack.into_future());
                positions.push_back(position);
            }
            tokio::select! {
                biased;
                _ = shutdown.as_mut() => {
                    // Graceful stop: keep what is already acknowledged, so a restart
                    // re-sends as little as possible.
                    let drain = async {
                        while let Some(result) = in_flight.next().await {
                            match (result, positions.pop_front()) {
                                (Ok(_), Some(position)) => acked = position,
                                _ => break,
                            }
                        }
                    };
                    let _ = tokio::time::timeout(config.ack_timeout, drain).await;
                    // The shutdown future has completed and must not be polled again,
                    // so a failed store ends the run too; nothing is lost, the next run
                    // re-sends from the checkpoint stored before.
                    if let Err(err) = checkpoint.flush(acked).await {
                        tracing::warn!(relay = %config.name, error = %err, "final checkpoint not stored");
                    }
                    return Ok(SessionEnd::Shutdown);
                }
                // Checkpoint stores run alongside publishing, one at a time.
                result = checkpoint.completed(), if checkpoint.is_storing() => {
                    result?;
                    if unstored >= config.checkpoint_every && checkpoint.start(acked) {
                        unstored = 0;
                    }
                }
                // Acks come back in publish order, so each one extends the acknowledged
                // prefix by exactly one event. Every ack already in is taken at once.
                Some(first) = in_flight.next(), if !in_flight.is_empty() => {
                    let mut next = Some(first);
                    while let Some(result) = next {
                        result.map_err(RelayError::nats)?;
                        acked = positions.pop_front().expect("one position per publish");
                        unstored += 1;
                        next = in_flight.next().now_or_never().flatten();
                    }
                    let stall_passed = self.stalled.borrow().is_some_and(|s| acked >= s.position);
                    if stall_passed {
                        metrics::gauge!(STALLED_GAUGE, "relay" => config.name.clone()).set(0.0);
                        self.stalled.send_replace(None);
                    }
                    if unstored >= config.checkpoint_every && checkpoint.start(acked) {
                        unstored = 0;
                    }
                }
                chunk = outgoing.recv(), if ready.as_slice().is_empty() => {
                    let Some(chunk) = chunk else {
                        return Err(RelayError::TailEnded);
                    };
                    ready = chunk.into_iter();
                }
                _ = tick.tick() => {
                    // A store overlaps publishing for one tick at most: one still under
                    // way now is waited for, so a lock connection that hangs rather
                    // than fails stops publishing here.
                    let proven = checkpoint.is_storing();
                    if proven {
                        checkpoint.completed().await?;
                    }
                    if checkpoint.start(acked) {
                        unstored = 0;
                    } else if !proven {
                        // Idle: still prove the lock connection is alive, so a deposed
                        // leader stops before it publishes again.
                        checkpoint.check().await?;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_is_valid_and_bad_ones_are_refused() {
        assert!(RelayConfig::default().validate().is_ok());
        let bad = [
            RelayConfig {
                stream: "a.b".into(),
                ..RelayConfig::default()
            },
            RelayConfig {
                subject_prefix: "x.>".into(),
                ..RelayConfig::default()
            },
            RelayConfig {
                subject_prefix: "x..y".into(),
                ..RelayConfig::default()
            },
            RelayConfig {
                max_in_flight: 0,
                ..RelayConfig::default()
            },
            RelayConfig {
                max_age: Duration::from_secs(60),
                duplicate_window: Duration::from_secs(120),
                ..RelayConfig::default()
            },
        ];
        for config in bad {
            assert!(
                matches!(config.validate(), Err(RelayError::Config(_))),
                "{config:?}"
            );
        }
    }
}

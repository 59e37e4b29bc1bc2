//! The command layer: the one way any caller (HTTP routes, sagas, `commerce seed`) runs a
//! domain command.
//!
//! [`Commands::execute`] loads the aggregate (cached state, or snapshot + tail), checks
//! the caller may act on it, runs the pure `decide`, appends the events with the command
//! id and answers `{stream, version, position, events}`.
//!
//! * **Idempotent by command id.** The id is recorded with the events in the same
//!   transaction. A command whose id is already recorded on its stream appends nothing
//!   and answers the first outcome (`replayed: true`), also when the duplicate runs
//!   concurrently: the store refuses the second record and the layer reads the first.
//! * **Conflicts.** With an expected version (`If-Match`) a different stream version is
//!   [`CommandError::VersionMismatch`]. Without one, a concurrent append elsewhere makes
//!   the layer read the events appended since its state and decide again on the result,
//!   at most [`MAX_ATTEMPTS`] times, pausing a random, growing while between attempts so
//!   two processes on one hot stream take turns instead of one starving.
//! * **Hot streams.** Commands on one stream in one process queue on a per-stream lock
//!   and decide on the cached state, so they never conflict with each other and never
//!   reload; another process's append costs reading only the events it appended.
//! * **Reads.** [`Commands::load`] answers from the cache after reading the events
//!   appended since (usually none), so lookups see other processes' changes.
//! * Every event carries correlation id, causation id, actor and command id.

mod cache;
mod context;
pub mod facts;

use std::sync::Arc;

use aggregates::{DecodeError, DomainError, EventSourced};
use serde_json::Value;
use uuid::Uuid;

use crate::store::{NewEvent, RecordedEvent, SnapshotWrite, StoredSnapshot};
use crate::{Store, StoreError, StreamRef};
use cache::{Cached, StateCache};
pub use context::CommandContext;
pub use facts::{LookupError, ShippingOption};

/// How many times a command is decided again after another process appended first.
pub const MAX_ATTEMPTS: usize = 8;

/// Metadata key of the command id on every event the command appended.
pub const COMMAND_ID: &str = "command_id";

/// What a command did.
#[derive(Debug, Clone)]
pub struct Executed<E> {
    pub stream: StreamRef,
    /// The stream's version after the command.
    pub version: i64,
    /// Global position of the command's last event (of the stream's last event when the
    /// command changed nothing). A query that waits for it sees the command's effect.
    pub position: i64,
    /// The events the command appended, typed.
    pub events: Vec<E>,
    /// The command id had run before: this is its first outcome; nothing was appended.
    pub replayed: bool,
}

/// Why a command did not run.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A domain rule refused the command. Nothing was stored.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// An outside fact the command needs is missing (unknown SKU, coupon, …).
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// The stream does not exist for this caller: missing, or owned by someone else.
    #[error("{stream} not found")]
    NotFound { stream: StreamRef },
    /// The caller expected another version (`If-Match`).
    #[error("{stream} is at version {current}, not {expected}")]
    VersionMismatch {
        stream: StreamRef,
        expected: i64,
        current: i64,
    },
    /// Other writers kept appending first; the command was decided `attempts` times.
    #[error("{stream} is busy: {attempts} attempts lost to concurrent writers")]
    Contention { stream: StreamRef, attempts: usize },
    /// A stored event could not be read back as a typed event.
    #[error("{stream}: {source}")]
    Decode {
        stream: StreamRef,
        #[source]
        source: DecodeError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Loaded aggregate state with its stream version.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    pub state: A,
    pub version: i64,
}

/// The command layer. Cheap to clone; share one per process.
#[derive(Debug, Clone)]
pub struct Commands {
    store: Store,
    cache: Arc<StateCache>,
}

impl Commands {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            cache: Arc::new(StateCache::default()),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs `command` on stream `id` of aggregate `A`. See the module docs.
    pub async fn execute<A>(
        &self,
        ctx: &CommandContext,
        id: &str,
        command: A::Command,
    ) -> Result<Executed<A::Event>, CommandError>
    where
        A: EventSourced,
        A::Command: Clone,
        A::Error: Into<DomainError>,
    {
        let stream = StreamRef::new(A::STREAM_TYPE, id);
        let slot = self.cache.slot(&stream);
        let mut slot = slot.lock().await;
        let labels = [("aggregate", A::STREAM_TYPE)];
        // `fresh`: `known` was read from the log during this command, so a version
        // mismatch with it is the caller's, not the cache's.
        let mut known: Option<Cached<A>> = slot.get::<A>();
        let mut fresh = false;
        for attempt in 1..=MAX_ATTEMPTS {
            let current: Cached<A> = match known.take() {
                Some(cached) => cached,
                None => {
                    fresh = true;
                    let loaded = self.load_fresh::<A>(&stream).await?;
                    slot.put(loaded.clone());
                    loaded
                }
            };
            if let Some(expected) = ctx.expected_version {
                if expected != current.version {
                    if !fresh {
                        // The cache may be behind another process: check the log.
                        let caught_up = self.catch_up(&stream, current).await?;
                        slot.put(caught_up.clone());
                        known = Some(caught_up);
                        fresh = true;
                        continue;
                    }
                    if let Some(done) = self.replay::<A>(&stream, ctx).await? {
                        return Ok(done);
                    }
                    return Err(CommandError::VersionMismatch {
                        stream,
                        expected,
                        current: current.version,
                    });
                }
            }
            if let Some(owner) = ctx.owner {
                if current.state.exists() && current.state.owner() != Some(owner) {
                    return Err(CommandError::NotFound { stream });
                }
            }
            let events = match current.state.decide(command.clone()) {
                Ok(events) => events,
                Err(_) if !fresh => {
                    // Refused on cached state: another process (or command layer) may
                    // have moved the stream on. Decide again on the log's head.
                    let caught_up = self.catch_up(&stream, current).await?;
                    slot.put(caught_up.clone());
                    known = Some(caught_up);
                    fresh = true;
                    continue;
                }
                Err(err) => {
                    // A retry of a command that already ran is refused by the state it
                    // made (e.g. "already open"): answer with its first outcome instead.
                    if let Some(done) = self.replay::<A>(&stream, ctx).await? {
                        return Ok(done);
                    }
                    metrics::counter!("commerce_commands_total", "aggregate" => A::STREAM_TYPE, "outcome" => "refused").increment(1);
                    return Err(CommandError::Domain(err.into()));
                }
            };
            if events.is_empty() {
                if let Some(done) = self.replay::<A>(&stream, ctx).await? {
                    return Ok(done);
                }
                let position = self.stream_position(&stream, current.version).await?;
                metrics::counter!("commerce_commands_total", "aggregate" => A::STREAM_TYPE, "outcome" => "unchanged").increment(1);
                return Ok(Executed {
                    stream,
                    version: current.version,
                    position,
                    events,
                    replayed: false,
                });
            }
            let mut state = current.state.clone();
            for event in &events {
                state.evolve(event);
            }
            let new_version = current.version + events.len() as i64;
            let snapshot = self.snapshot_due(current.version, new_version, &state);
            let rows = events
                .iter()
                .map(|event| self.new_event::<A>(ctx, event))
                .collect();
            match self
                .store
                .append_command(&stream, current.version, rows, snapshot, ctx.command_id)
                .await
            {
                Ok(outcome) => {
                    slot.put(Cached {
                        state,
                        version: outcome.version,
                    });
                    metrics::counter!("commerce_commands_total", "aggregate" => A::STREAM_TYPE, "outcome" => "applied").increment(1);
                    return Ok(Executed {
                        stream,
                        version: outcome.version,
                        position: outcome.last_position,
                        events,
                        replayed: false,
                    });
                }
                Err(StoreError::DuplicateCommand) => {
                    // Both backends check the version before the command id, so the
                    // cached state (already in the slot) was the log's head: keep it.
                    if let Some(done) = self.replay::<A>(&stream, ctx).await? {
                        return Ok(done);
                    }
                    // Recorded, then not found: only if the record was removed meanwhile.
                    slot.clear();
                    return Err(CommandError::Store(StoreError::DuplicateCommand));
                }
                Err(StoreError::Conflict { .. }) => {
                    metrics::counter!("commerce_command_conflicts_total", &labels).increment(1);
                    tracing::debug!(%stream, attempt, "append conflict; deciding again on fresh state");
                    // Another process is appending to this stream too. Waiting a random
                    // while that grows with each loss lets its queued commands through
                    // instead of losing to each of them in turn.
                    if attempt > 1 {
                        let ceiling = 250u64 << attempt.min(8);
                        let pause = rand::random_range(0..=ceiling);
                        tokio::time::sleep(std::time::Duration::from_micros(pause)).await;
                    }
                    // Only the events appended since are read, not the whole stream.
                    let caught_up = self.catch_up(&stream, current).await?;
                    slot.put(caught_up.clone());
                    known = Some(caught_up);
                    fresh = true;
                    continue;
                }
                Err(other) => {
                    slot.clear();
                    return Err(other.into());
                }
            }
        }
        metrics::counter!("commerce_commands_total", "aggregate" => A::STREAM_TYPE, "outcome" => "contention").increment(1);
        Err(CommandError::Contention {
            stream,
            attempts: MAX_ATTEMPTS,
        })
    }

    /// `cached` brought up to the head of the log by folding the events after it.
    async fn catch_up<A: EventSourced>(
        &self,
        stream: &StreamRef,
        mut cached: Cached<A>,
    ) -> Result<Cached<A>, CommandError> {
        for recorded in self.store.read_stream(stream, cached.version).await? {
            let event = decode::<A>(stream, &recorded)?;
            cached.state.evolve(&event);
            cached.version = recorded.version;
        }
        Ok(cached)
    }

    /// The current state of stream `id`, or `None` when the stream has not begun.
    ///
    /// A stream this process has cached costs one read of the events appended after the
    /// cached version (usually none), so a change made by another process is always seen.
    pub async fn load<A>(&self, id: &str) -> Result<Option<Loaded<A>>, CommandError>
    where
        A: EventSourced,
    {
        let stream = StreamRef::new(A::STREAM_TYPE, id);
        let slot = self.cache.slot(&stream);
        // The slot's lock is held only to copy and to store state, not across the read of
        // the log: concurrent reads of one stream (a popular product) do not queue behind
        // each other or behind a command's commit.
        let cached = slot.lock().await.get::<A>();
        let current = match cached {
            Some(cached) => {
                let cached_version = cached.version;
                let caught_up = self.catch_up(&stream, cached).await?;
                if caught_up.version != cached_version {
                    slot.lock().await.put_if_newer(caught_up.clone());
                }
                caught_up
            }
            None => {
                let loaded = self.load_fresh::<A>(&stream).await?;
                slot.lock().await.put_if_newer(loaded.clone());
                loaded
            }
        };
        Ok(current.state.exists().then_some(Loaded {
            state: current.state,
            version: current.version,
        }))
    }

    /// Snapshot (when valid) plus the events after it, decoded through the aggregate's
    /// own decoding.
    async fn load_fresh<A: EventSourced>(
        &self,
        stream: &StreamRef,
    ) -> Result<Cached<A>, CommandError> {
        let mut state = A::default();
        let mut version = 0;
        if let Some(StoredSnapshot {
            version: at,
            state: json,
            head_version,
            ..
        }) = self.store.load_snapshot(stream).await?
        {
            // A snapshot of an older state shape, or ahead of the log, is skipped.
            if at <= head_version {
                if let Ok(s) = serde_json::from_value::<A>(json) {
                    state = s;
                    version = at;
                }
            }
        }
        for recorded in self.store.read_stream(stream, version).await? {
            let event = decode::<A>(stream, &recorded)?;
            state.evolve(&event);
            version = recorded.version;
        }
        Ok(Cached { state, version })
    }

    /// The first outcome of `ctx.command_id` on `stream`, if it ran before.
    async fn replay<A: EventSourced>(
        &self,
        stream: &StreamRef,
        ctx: &CommandContext,
    ) -> Result<Option<Executed<A::Event>>, CommandError> {
        let Some(record) = self.store.command_record(stream, ctx.command_id).await? else {
            return Ok(None);
        };
        let events = self
            .store
            .read_stream(stream, record.first_version - 1)
            .await?
            .into_iter()
            .take_while(|e| e.version <= record.version)
            .map(|e| decode::<A>(stream, &e))
            .collect::<Result<Vec<_>, _>>()?;
        metrics::counter!("commerce_command_replays_total", "aggregate" => A::STREAM_TYPE)
            .increment(1);
        Ok(Some(Executed {
            stream: stream.clone(),
            version: record.version,
            position: record.last_position,
            events,
            replayed: true,
        }))
    }

    /// The position of the event at `version` of `stream` (0 for an empty stream).
    async fn stream_position(&self, stream: &StreamRef, version: i64) -> Result<i64, StoreError> {
        if version == 0 {
            return Ok(0);
        }
        let events = self.store.read_stream(stream, version - 1).await?;
        Ok(events.first().map_or(0, |e| e.position))
    }

    fn snapshot_due<A: EventSourced>(
        &self,
        before: i64,
        after: i64,
        state: &A,
    ) -> Option<SnapshotWrite> {
        let every = self.store.config().snapshot_every as i64;
        if every == 0 || before / every == after / every {
            return None;
        }
        Some(SnapshotWrite {
            version: after,
            snapshot_no: after / every,
            state: serde_json::to_value(state).ok()?,
        })
    }

    fn new_event<A: EventSourced>(&self, ctx: &CommandContext, event: &A::Event) -> NewEvent {
        let (event_type, schema_version, payload) = A::encode(event);
        NewEvent {
            event_id: new_event_id(self.store.clock().now()),
            event_type: event_type.to_string(),
            schema_version: schema_version as i32,
            payload,
            metadata: ctx.metadata(),
        }
    }
}

/// A stored event of aggregate `A` as a typed event.
pub fn decode<A: EventSourced>(
    stream: &StreamRef,
    recorded: &RecordedEvent,
) -> Result<A::Event, CommandError> {
    let payload: Value = recorded.payload()?;
    A::decode(
        &recorded.event_type,
        u32::try_from(recorded.schema_version).unwrap_or(0),
        payload,
    )
    .map_err(|source| CommandError::Decode {
        stream: stream.clone(),
        source,
    })
}

/// A UUID v7 at the store clock's time, so ids sort like the log.
pub fn new_event_id(now: chrono::DateTime<chrono::Utc>) -> Uuid {
    let ts = uuid::Timestamp::from_unix(
        uuid::NoContext,
        now.timestamp().max(0) as u64,
        now.timestamp_subsec_nanos(),
    );
    Uuid::new_v7(ts)
}

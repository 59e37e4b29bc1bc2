//! Adapters between the pure domain and the outside world.
//!
//! * [`store`]: the append-only event log on PostgreSQL or SQLite, with a gap-safe
//!   global tail, hash chain, snapshots and the cqrs-es repository implementation.
//! * [`relay`]: publishes the log to NATS JetStream as CloudEvents, exactly once.
//! * [`feed`]: the ordered, acknowledged event source consumers are written against
//!   (in process or from JetStream).
//! * [`clock`]: the injectable source of time.

pub mod clock;
pub mod command;
pub mod consumer;
pub mod feed;
pub mod projection;
pub mod relay;
pub mod saga;
pub mod search;
pub mod store;
pub mod webhook;

pub use clock::{Clock, ManualClock, SystemClock};
pub use store::{
    AppendOutcome, AppendRequest, CommandRecord, EventMetadata, NewEvent, RecordedEvent, Store,
    StoreConfig, StoreError, StreamRef,
};

//! The feed: how consumers (sagas, projections, integration subscribers) receive events.
//!
//! Consumer code is written once against [`Feed`] and runs on either implementation:
//!
//! * [`LocalFeed`] (embedded deployment): the store's own tail, in process. Nothing to
//!   acknowledge; the consumer's stored checkpoint is the only state.
//! * [`JetStreamFeed`] (distributed deployment): a durable JetStream pull consumer per
//!   subscriber, fed by the [relay](crate::relay), with explicit acks, redelivery with
//!   backoff and a delivery limit.
//!
//! # Contract for consumers
//!
//! * Open the feed *after* the position the consumer has stored with its effects.
//! * Apply each [`Delivery`], store the effect together with its position (or event id),
//!   then [`Feed::ack`] it.
//! * Be idempotent by position / event id: after a crash, or when an ack is lost, an
//!   envelope is delivered again ([`Delivery::attempt`] > 1 on JetStream). Positions are
//!   increasing except for such redeliveries (and, on JetStream, the rare late event the
//!   [relay](crate::relay) documents), so dedupe by id, not by "position below the
//!   highest seen".
//! * While a delivery takes long, call [`Delivery::in_progress`] every
//!   [`Delivery::keep_alive`], so the feed does not hand it to another consumer.

mod jetstream;
mod local;

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::store::{EventMetadata, StoreError};
pub use jetstream::{JetStreamFeed, JetStreamFeedConfig};
pub use local::LocalFeed;

/// One event as consumers see it: the store's envelope with the payload parsed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Envelope {
    /// Global position in the log.
    pub position: i64,
    pub event_id: Uuid,
    pub stream_type: String,
    pub stream_id: String,
    /// Version of the event within its stream.
    pub version: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: Value,
    pub metadata: EventMetadata,
    pub recorded_at: DateTime<Utc>,
}

/// An envelope handed out by a feed, to be acknowledged with [`Feed::ack`] once its
/// effect is stored.
#[derive(Debug)]
pub struct Delivery {
    pub envelope: Envelope,
    /// 1 on first delivery; higher when the feed delivers it again.
    pub attempt: u64,
    receipt: Receipt,
    /// How often to tell the feed the delivery is still being worked on, when the feed
    /// redelivers unacknowledged messages after a while (JetStream's ack wait).
    keep_alive: Option<Duration>,
}

impl Delivery {
    /// How often a consumer working on this delivery should call
    /// [`Delivery::in_progress`]; `None` when the feed never redelivers on its own.
    pub fn keep_alive(&self) -> Option<Duration> {
        self.keep_alive
    }

    /// Whether this delivery comes from a feed that hands events out once each, in log
    /// position order (the local feed), so a consumer's stored position is its resume
    /// point; JetStream deliveries are tracked by their acks instead.
    pub fn in_log_order(&self) -> bool {
        matches!(self.receipt, Receipt::Local)
    }

    /// Tells the feed this delivery is still being worked on, so it is not handed to
    /// another consumer meanwhile (JetStream: "in progress" resets the ack wait).
    pub async fn in_progress(&self) -> Result<(), FeedError> {
        match &self.receipt {
            Receipt::JetStream(message) => message
                .ack_with(async_nats::jetstream::AckKind::Progress)
                .await
                .map_err(FeedError::Nats),
            Receipt::Local => Ok(()),
        }
    }
}

#[derive(Debug)]
enum Receipt {
    Local,
    JetStream(Box<async_nats::jetstream::Message>),
}

/// Errors of a feed. After an error, [`Feed::next`] may be called again: the feed
/// resumes where it was (an unacknowledged JetStream message comes back after its ack
/// wait).
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("event store: {0}")]
    Store(#[from] StoreError),
    #[error("NATS JetStream: {0}")]
    Nats(#[source] async_nats::Error),
    /// A message that is not a well-formed event of this system. JetStream is told to
    /// drop it (`Term`); the consumer logs it and goes on.
    #[error("malformed message at stream sequence {sequence}: {reason}")]
    Malformed { sequence: u64, reason: String },
    #[error("the feed ended")]
    Ended,
}

impl FeedError {
    fn nats(err: impl Into<async_nats::Error>) -> Self {
        FeedError::Nats(err.into())
    }
}

/// An ordered source of events with acknowledgement. See the module docs for the
/// consumer contract.
pub trait Feed: Send {
    /// The next delivery, waiting as long as it takes for one.
    fn next(&mut self) -> impl Future<Output = Result<Delivery, FeedError>> + Send;

    /// Acknowledges `delivery`: its effect is stored and it must not come again.
    fn ack(&mut self, delivery: &Delivery) -> impl Future<Output = Result<(), FeedError>> + Send;

    /// Hands `delivery` back unhandled, to be delivered again after `delay` while the
    /// feed goes on with others. Returns `false` when this feed cannot redeliver (the
    /// local feed): the caller must then retry it in place.
    fn release(
        &mut self,
        delivery: &Delivery,
        delay: Duration,
    ) -> impl Future<Output = Result<bool, FeedError>> + Send;
}

//! The in-process feed over the store's tail.

use std::time::Duration;

use futures_util::StreamExt;

use super::{Delivery, Envelope, Feed, FeedError, Receipt};
use crate::store::{EventStream, RecordedEvent, Store, StoreError};

/// A [`Feed`] over [`Store::subscribe`]: gap-free, in position order, never redelivers
/// within one instance. Acks are no-ops: the consumer's own stored position is the
/// checkpoint, and a new `LocalFeed` opened after it resumes there.
pub struct LocalFeed {
    events: EventStream,
}

impl std::fmt::Debug for LocalFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalFeed").finish_non_exhaustive()
    }
}

impl LocalFeed {
    /// Every event after `after_position`, then live events as they commit.
    pub fn new(store: &Store, after_position: i64) -> Self {
        Self {
            events: store.subscribe(after_position),
        }
    }
}

impl Envelope {
    /// The consumer's view of a stored event.
    pub fn from_recorded(event: RecordedEvent) -> Result<Self, StoreError> {
        Ok(Self {
            payload: event.payload()?,
            metadata: event.metadata()?,
            position: event.position,
            event_id: event.event_id,
            stream_type: event.stream_type,
            stream_id: event.stream_id,
            version: event.version,
            event_type: event.event_type,
            schema_version: event.schema_version,
            recorded_at: event.recorded_at,
        })
    }
}

impl Feed for LocalFeed {
    async fn next(&mut self) -> Result<Delivery, FeedError> {
        match self.events.next().await {
            Some(Ok(event)) => Ok(Delivery {
                envelope: Envelope::from_recorded(event)?,
                attempt: 1,
                receipt: Receipt::Local,
                keep_alive: None,
            }),
            Some(Err(err)) => Err(err.into()),
            None => Err(FeedError::Ended),
        }
    }

    async fn ack(&mut self, _delivery: &Delivery) -> Result<(), FeedError> {
        Ok(())
    }

    async fn release(&mut self, _delivery: &Delivery, _delay: Duration) -> Result<bool, FeedError> {
        Ok(false)
    }
}

//! Per-stream slots: a lock that queues one process's commands on a stream, and the
//! stream's state as of its last command, so a hot stream is decided on cached state and
//! never reloaded while this process is its only writer.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Mutex as AsyncMutex;

use crate::StreamRef;

/// Slots kept before the cache starts over (an in-flight command keeps its own slot).
const CAPACITY: usize = 50_000;

/// State of aggregate `A` at a stream version.
#[derive(Debug, Clone)]
pub(super) struct Cached<A> {
    pub state: A,
    pub version: i64,
}

/// The cached state of one stream, of whichever aggregate type the stream holds.
#[derive(Default)]
pub(super) struct Slot {
    value: Option<Box<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("cached", &self.value.is_some())
            .finish()
    }
}

impl Slot {
    pub fn get<A: Clone + Send + Sync + 'static>(&self) -> Option<Cached<A>> {
        self.value
            .as_ref()
            .and_then(|v| v.downcast_ref::<Cached<A>>())
            .cloned()
    }

    pub fn put<A: Send + Sync + 'static>(&mut self, cached: Cached<A>) {
        self.value = Some(Box::new(cached));
    }

    /// Stores `cached` unless the slot already holds a state at least as new: the state
    /// at a version is a fact, so a newer one may replace an older one, never the reverse.
    pub fn put_if_newer<A: Clone + Send + Sync + 'static>(&mut self, cached: Cached<A>) {
        let held = self
            .value
            .as_ref()
            .and_then(|v| v.downcast_ref::<Cached<A>>())
            .map(|held| held.version);
        if held.is_none_or(|version| version < cached.version) {
            self.put(cached);
        }
    }

    pub fn clear(&mut self) {
        self.value = None;
    }
}

#[derive(Debug, Default)]
pub(super) struct StateCache {
    slots: Mutex<HashMap<StreamRef, Arc<AsyncMutex<Slot>>>>,
}

impl StateCache {
    /// The slot of `stream`, created empty when missing.
    pub fn slot(&self, stream: &StreamRef) -> Arc<AsyncMutex<Slot>> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get(stream) {
            return slot.clone();
        }
        if slots.len() >= CAPACITY {
            // Dropping a slot in use is harmless: its holder finishes; a new holder of
            // a new slot for the same stream at worst meets an append conflict.
            slots.retain(|_, slot| Arc::strong_count(slot) > 1);
            if slots.len() >= CAPACITY {
                slots.clear();
            }
        }
        slots.entry(stream.clone()).or_default().clone()
    }
}

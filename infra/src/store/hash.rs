//! The per-stream hash chain: `hash = SHA-256(prev_hash ‖ fields)`, each field
//! length-prefixed so that no two different events share an encoding.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The hashed content of one event.
#[derive(Debug, Clone, Copy)]
pub struct HashInput<'a> {
    pub event_id: Uuid,
    pub stream_type: &'a str,
    pub stream_id: &'a str,
    pub version: i64,
    pub event_type: &'a str,
    pub schema_version: i32,
    /// The payload JSON text exactly as stored.
    pub payload: &'a str,
    /// The metadata JSON text exactly as stored.
    pub metadata: &'a str,
    pub recorded_at: DateTime<Utc>,
}

/// The chain hash of one event. `prev` is the previous event's hash in the same stream,
/// `None` for the first event (hashed as 32 zero bytes).
pub fn event_hash(prev: Option<&[u8]>, input: &HashInput<'_>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"commerce-event-v1");
    h.update(prev.unwrap_or(&[0u8; 32]));
    let field = |h: &mut Sha256, bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(&mut h, input.event_id.as_bytes());
    field(&mut h, input.stream_type.as_bytes());
    field(&mut h, input.stream_id.as_bytes());
    field(&mut h, &input.version.to_be_bytes());
    field(&mut h, input.event_type.as_bytes());
    field(&mut h, &input.schema_version.to_be_bytes());
    field(&mut h, input.payload.as_bytes());
    field(&mut h, input.metadata.as_bytes());
    field(&mut h, &input.recorded_at.timestamp_micros().to_be_bytes());
    h.finalize().into()
}

impl super::RecordedEvent {
    /// The hash this event's content and stored previous hash give: equal to
    /// [`hash`](super::RecordedEvent::hash) unless the row was changed behind the store.
    pub fn recomputed_hash(&self) -> [u8; 32] {
        event_hash(
            self.prev_hash.as_deref(),
            &HashInput {
                event_id: self.event_id,
                stream_type: &self.stream_type,
                stream_id: &self.stream_id,
                version: self.version,
                event_type: &self.event_type,
                schema_version: self.schema_version,
                payload: &self.payload_text,
                metadata: &self.metadata_text,
                recorded_at: self.recorded_at,
            },
        )
    }
}

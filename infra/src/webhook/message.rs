//! The body of a delivery, in the Standard Webhooks payload shape.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::feed::Envelope;
use crate::store::EventMetadata;

/// The JSON object POSTed for one event:
/// `{ "type": "<stream_type>.<event_type>", "timestamp": …, "data": { … } }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookMessage {
    /// `<stream_type>.<event_type>`, e.g. `order.OrderPlaced`: what filters match.
    #[serde(rename = "type")]
    pub kind: String,
    /// When the event was recorded (RFC 3339, UTC).
    pub timestamp: DateTime<Utc>,
    pub data: WebhookEvent,
}

/// The event envelope inside a [`WebhookMessage`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookEvent {
    /// The event id; also the `webhook-id` header.
    pub id: Uuid,
    /// Global position in the log.
    pub position: i64,
    pub stream_type: String,
    pub stream_id: String,
    /// Version of the event within its stream.
    pub version: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: Value,
    pub metadata: EventMetadata,
}

impl WebhookMessage {
    /// The message for one event.
    pub fn from_envelope(envelope: Envelope) -> Self {
        Self {
            kind: format!("{}.{}", envelope.stream_type, envelope.event_type),
            timestamp: envelope.recorded_at,
            data: WebhookEvent {
                id: envelope.event_id,
                position: envelope.position,
                stream_type: envelope.stream_type,
                stream_id: envelope.stream_id,
                version: envelope.version,
                event_type: envelope.event_type,
                schema_version: envelope.schema_version,
                payload: envelope.payload,
                metadata: envelope.metadata,
            },
        }
    }
}

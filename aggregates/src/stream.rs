//! How an aggregate meets the event log: its stream type, the one path from a stored
//! event (type, schema version, payload) to a typed event, and who owns a stream.
//!
//! Every reader of the log (the command layer, projections, sagas, replay tools) decodes
//! through [`EventSourced::decode`], so an old event shape is upcast in one place and
//! every event ever written still loads, whether it came from the store, the in-process
//! feed or JetStream.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::{CustomerId, Decider};

/// Turns the payload of `event_type` at schema version `from_version` into the payload of
/// version `from_version + 1`. Upcasters are pure and chained until the current version.
#[derive(Debug, Clone, Copy)]
pub struct Upcaster {
    pub event_type: &'static str,
    pub from_version: u32,
    pub upcast: fn(Value) -> Result<Value, String>,
}

/// The upcasters of one event enum; empty until an event type gets a new shape.
pub trait Upcasters {
    const UPCASTERS: &'static [Upcaster] = &[];
}

/// Why a stored event could not become a typed event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{stream_type} has no event type `{event_type}`")]
    UnknownType {
        stream_type: &'static str,
        event_type: String,
    },
    #[error("{event_type} v{version} is newer than this build knows (v{current})")]
    FutureVersion {
        event_type: String,
        version: u32,
        current: u32,
    },
    #[error("no upcaster takes {event_type} from v{version}")]
    MissingUpcaster { event_type: String, version: u32 },
    #[error("upcasting {event_type} from v{version} failed: {reason}")]
    Upcast {
        event_type: String,
        version: u32,
        reason: String,
    },
    #[error("{event_type} v{version} payload does not match its schema: {reason}")]
    Payload {
        event_type: String,
        version: u32,
        reason: String,
    },
}

/// Decodes one stored event of an enum declared with [`domain_events!`](crate::domain_events):
/// upcasts the payload to the current version of its type, then deserializes it.
pub fn decode_event<E: DeserializeOwned + Upcasters>(
    stream_type: &'static str,
    types: &[(&'static str, u32)],
    event_type: &str,
    schema_version: u32,
    mut payload: Value,
) -> Result<E, DecodeError> {
    let current = types
        .iter()
        .find(|(name, _)| *name == event_type)
        .map(|(_, v)| *v)
        .ok_or_else(|| DecodeError::UnknownType {
            stream_type,
            event_type: event_type.to_string(),
        })?;
    if schema_version > current {
        return Err(DecodeError::FutureVersion {
            event_type: event_type.to_string(),
            version: schema_version,
            current,
        });
    }
    let mut version = schema_version;
    while version < current {
        let upcaster = E::UPCASTERS
            .iter()
            .find(|u| u.event_type == event_type && u.from_version == version)
            .ok_or_else(|| DecodeError::MissingUpcaster {
                event_type: event_type.to_string(),
                version,
            })?;
        payload = (upcaster.upcast)(payload).map_err(|reason| DecodeError::Upcast {
            event_type: event_type.to_string(),
            version,
            reason,
        })?;
        version += 1;
    }
    let mut tagged = Map::with_capacity(1);
    tagged.insert(event_type.to_string(), payload);
    serde_json::from_value(Value::Object(tagged)).map_err(|e| DecodeError::Payload {
        event_type: event_type.to_string(),
        version: schema_version,
        reason: e.to_string(),
    })
}

/// An aggregate as the log sees it. Implemented for every aggregate by
/// [`impl_aggregate!`](crate::impl_aggregate).
pub trait EventSourced:
    Decider<
        Event: Clone + std::fmt::Debug + Send + Sync + 'static,
        Command: Send + 'static,
        Error: Send + 'static,
    > + Clone
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The stored stream type, e.g. `cart`. Never changes.
    const STREAM_TYPE: &'static str;

    /// The stored event (type, schema version, payload) as a typed event, through the
    /// upcasters of this aggregate.
    fn decode(
        event_type: &str,
        schema_version: u32,
        payload: Value,
    ) -> Result<Self::Event, DecodeError>;

    /// The event as stored: its type, current schema version and payload (untagged).
    fn encode(event: &Self::Event) -> (&'static str, u32, Value);

    /// Whether the stream has begun (its creating command succeeded).
    fn exists(&self) -> bool;

    /// The customer this stream belongs to, for streams customers may act on.
    fn owner(&self) -> Option<CustomerId> {
        None
    }
}

/// The payload of an externally tagged event value: `{"Tag": {...}}` → `{...}`.
pub fn untagged(value: Value) -> Value {
    match value {
        Value::Object(map) if map.len() == 1 => map
            .into_iter()
            .next()
            .map(|(_, v)| v)
            .unwrap_or(Value::Null),
        other => other,
    }
}

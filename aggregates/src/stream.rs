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

/// The upcaster path with a stored older-version fixture. The eight aggregates have no
/// upcasters yet (every event type is at v1), so this module declares its own event enum
/// at v2 with an upcaster from v1 and decodes a stored v1 payload
/// (`tests/fixtures/parcel_weighed.v1.json`), as a store written by an older build holds
/// it. It lives in the crate rather than in `tests/` because `impl_aggregate!` implements
/// [`Upcasters`] for `<State as Decider>::Event`, and coherence in a downstream crate cannot
/// rule out that such a projection is the downstream event type.
#[cfg(test)]
mod tests {
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};
    use serde_json::{json, Value};

    use super::{decode_event, untagged, DecodeError, Upcaster};
    use crate::EventExample;

    const STREAM_TYPE: &str = "parcel";

    /// v2 of `ParcelWeighed`: v1 called the weight `weight_grams`; v2 renames it `grams`
    /// and adds the `scale` that weighed the parcel, which v1 events did not record.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct ParcelWeighed {
        parcel: String,
        grams: u32,
        scale: String,
    }

    impl EventExample for ParcelWeighed {
        fn example() -> Self {
            Self {
                parcel: "PARCEL-1".into(),
                grams: 500,
                scale: "dock-1".into(),
            }
        }
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct ParcelLabelled {
        parcel: String,
        label: String,
    }

    impl EventExample for ParcelLabelled {
        fn example() -> Self {
            Self {
                parcel: "PARCEL-1".into(),
                label: "LBL-1".into(),
            }
        }
    }

    /// `ParcelStored` is at v3 but only the v2 → v3 upcaster exists: a v1 event of it has
    /// no path to the current shape.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    struct ParcelStored {
        parcel: String,
        shelf: String,
    }

    impl EventExample for ParcelStored {
        fn example() -> Self {
            Self {
                parcel: "PARCEL-1".into(),
                shelf: "A-1".into(),
            }
        }
    }

    crate::domain_events! {
        upcasters: PARCEL_UPCASTERS;
        // Stored event names carry their aggregate's name, as the real ones do.
        #[allow(clippy::enum_variant_names)]
        enum ParcelEvent {
            ParcelWeighed(ParcelWeighed) = 2,
            ParcelLabelled(ParcelLabelled),
            ParcelStored(ParcelStored) = 3,
        }
    }

    /// v1 `{parcel, weight_grams}` → v2 `{parcel, grams, scale}`; v1 events were all weighed
    /// on the one scale the warehouse had then.
    fn parcel_weighed_v1_to_v2(mut payload: Value) -> Result<Value, String> {
        let map = payload
            .as_object_mut()
            .ok_or_else(|| "payload is not an object".to_string())?;
        let grams = map
            .remove("weight_grams")
            .ok_or_else(|| "v1 payload has no weight_grams".to_string())?;
        map.insert("grams".into(), grams);
        map.insert("scale".into(), json!("legacy"));
        Ok(payload)
    }

    fn parcel_stored_v2_to_v3(payload: Value) -> Result<Value, String> {
        Ok(payload)
    }

    const PARCEL_UPCASTERS: &[Upcaster] = &[
        Upcaster {
            event_type: "ParcelWeighed",
            from_version: 1,
            upcast: parcel_weighed_v1_to_v2,
        },
        Upcaster {
            event_type: "ParcelStored",
            from_version: 2,
            upcast: parcel_stored_v2_to_v3,
        },
    ];

    fn decode(event_type: &str, version: u32, payload: Value) -> Result<ParcelEvent, DecodeError> {
        ParcelEvent::decode(STREAM_TYPE, event_type, version, payload)
    }

    fn v1_fixture() -> Value {
        serde_json::from_str(include_str!("../tests/fixtures/parcel_weighed.v1.json"))
            .expect("fixture is JSON")
    }

    #[test]
    fn a_stored_v1_event_is_upcast_to_the_current_typed_event() {
        let event = decode("ParcelWeighed", 1, v1_fixture()).expect("v1 decodes");
        assert_eq!(
            event,
            ParcelEvent::ParcelWeighed(ParcelWeighed {
                parcel: "PARCEL-7".into(),
                grams: 1250,
                scale: "legacy".into(),
            })
        );
        // Re-encoding writes the current shape and version, never the old one.
        let (event_type, version, payload) = event.encode();
        assert_eq!((event_type, version), ("ParcelWeighed", 2));
        assert_eq!(
            payload,
            json!({"parcel": "PARCEL-7", "grams": 1250, "scale": "legacy"})
        );
    }

    #[test]
    fn a_current_version_event_is_not_upcast() {
        let stored = json!({"parcel": "PARCEL-8", "grams": 10, "scale": "dock-2"});
        let event = decode("ParcelWeighed", 2, stored.clone()).unwrap();
        assert_eq!(event.encode().2, stored);
        // The generic path is the same one the enum's `decode` takes.
        let direct: ParcelEvent =
            decode_event(STREAM_TYPE, ParcelEvent::TYPES, "ParcelWeighed", 2, stored).unwrap();
        assert_eq!(direct, event);
    }

    #[test]
    fn a_v1_payload_claimed_as_v2_is_a_payload_error() {
        // Upcasting is driven by the stored version, not by guessing from the shape.
        let err = decode("ParcelWeighed", 2, v1_fixture()).unwrap_err();
        assert!(
            matches!(&err, DecodeError::Payload { event_type, version: 2, .. } if event_type == "ParcelWeighed"),
            "{err:?}"
        );
    }

    #[test]
    fn an_unknown_event_type_is_refused() {
        let err = decode("ParcelLost", 1, json!({})).unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnknownType {
                stream_type: STREAM_TYPE,
                event_type: "ParcelLost".into(),
            }
        );
    }

    #[test]
    fn a_version_from_a_newer_build_is_refused() {
        let err = decode("ParcelWeighed", 3, json!({})).unwrap_err();
        assert_eq!(
            err,
            DecodeError::FutureVersion {
                event_type: "ParcelWeighed".into(),
                version: 3,
                current: 2,
            }
        );
    }

    #[test]
    fn a_gap_in_the_upcaster_chain_is_refused() {
        let err = decode("ParcelStored", 1, json!({"parcel": "P", "shelf": "B-2"})).unwrap_err();
        assert_eq!(
            err,
            DecodeError::MissingUpcaster {
                event_type: "ParcelStored".into(),
                version: 1,
            }
        );
        // From v2 the chain is complete.
        let ok = decode("ParcelStored", 2, json!({"parcel": "P", "shelf": "B-2"})).unwrap();
        assert_eq!(
            ok,
            ParcelEvent::ParcelStored(ParcelStored {
                parcel: "P".into(),
                shelf: "B-2".into(),
            })
        );
    }

    #[test]
    fn an_upcaster_failure_names_the_event_and_version() {
        let err = decode("ParcelWeighed", 1, json!({"parcel": "P"})).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Upcast {
                event_type: "ParcelWeighed".into(),
                version: 1,
                reason: "v1 payload has no weight_grams".into(),
            }
        );
    }

    #[test]
    fn a_malformed_payload_is_refused() {
        for payload in [
            json!({"parcel": "P"}),
            json!({"parcel": 7, "label": "L"}),
            json!({"parcel": "P", "label": "L", "extra": true}),
            json!("ParcelLabelled"),
        ] {
            let err = decode("ParcelLabelled", 1, payload.clone()).unwrap_err();
            assert!(
                matches!(&err, DecodeError::Payload { event_type, version: 1, .. } if event_type == "ParcelLabelled"),
                "{payload}: {err:?}"
            );
        }
    }

    #[test]
    fn the_declared_versions_are_the_ones_encoded_and_catalogued() {
        assert_eq!(
            ParcelEvent::TYPES,
            &[
                ("ParcelWeighed", 2),
                ("ParcelLabelled", 1),
                ("ParcelStored", 3)
            ]
        );
        let catalogue = ParcelEvent::catalogue(STREAM_TYPE);
        let paths: Vec<String> = catalogue.iter().map(|e| e.relative_path()).collect();
        assert_eq!(
            paths,
            [
                "parcel/ParcelWeighed.v2.json",
                "parcel/ParcelLabelled.v1.json",
                "parcel/ParcelStored.v3.json"
            ]
        );
        // An externally tagged value and the stored (untagged) payload agree.
        let event = ParcelEvent::from(ParcelLabelled::example());
        let tagged = serde_json::to_value(&event).unwrap();
        assert_eq!(untagged(tagged), event.encode().2);
    }
}

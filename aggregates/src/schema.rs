//! The event catalogue: one JSON Schema (2020-12) and one example per event type and
//! version, written to `schemas/events/<aggregate>/<EventName>.v<N>.json`.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{json, Value};

use crate::EventExample;

/// The published contract of one event type at one schema version.
#[derive(Debug, Clone)]
pub struct EventSchema {
    pub aggregate: &'static str,
    pub event_type: &'static str,
    pub version: u32,
    /// The JSON Schema of the payload, with an `examples` entry.
    pub schema: Value,
}

impl EventSchema {
    pub fn of<P: JsonSchema + Serialize + EventExample>(
        aggregate: &'static str,
        event_type: &'static str,
        version: u32,
    ) -> Self {
        let mut schema = schemars::schema_for!(P).to_value();
        let example = serde_json::to_value(P::example()).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut schema {
            map.insert(
                "$id".into(),
                json!(format!(
                    "https://commerce.invalid/schemas/events/{aggregate}/{event_type}.v{version}.json"
                )),
            );
            map.insert("title".into(), json!(event_type));
            map.insert("x-aggregate".into(), json!(aggregate));
            map.insert("x-event-type".into(), json!(event_type));
            map.insert("x-schema-version".into(), json!(version));
            map.insert("examples".into(), json!([example]));
        }
        Self {
            aggregate,
            event_type,
            version,
            schema,
        }
    }

    /// Path relative to `schemas/events/`.
    pub fn relative_path(&self) -> String {
        format!(
            "{}/{}.v{}.json",
            self.aggregate, self.event_type, self.version
        )
    }

    /// The example payload embedded in the schema.
    pub fn example(&self) -> &Value {
        &self.schema["examples"][0]
    }
}

/// Every event type of every aggregate.
pub fn catalogue() -> Vec<EventSchema> {
    let mut all = Vec::new();
    all.extend(crate::product::catalogue());
    all.extend(crate::cart::catalogue());
    all.extend(crate::order::catalogue());
    all.extend(crate::payment::catalogue());
    all.extend(crate::stock::catalogue());
    all.extend(crate::shipment::catalogue());
    all.extend(crate::loyalty::catalogue());
    all.extend(crate::promotion::catalogue());
    all
}

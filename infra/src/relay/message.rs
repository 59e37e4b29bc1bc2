//! The wire format: one CloudEvents 1.0 event per NATS message, in binary content mode
//! (attributes in `ce-*` headers, the event data as the body).
//!
//! | header | value |
//! |---|---|
//! | `ce-specversion` | `1.0` |
//! | `ce-id` | event id (UUID v7); also `Nats-Msg-Id`, the JetStream de-duplication key |
//! | `ce-source` | `/commerce/<stream_type>/<stream_id>` |
//! | `ce-type` | `commerce.<stream_type>.<event_type>.v<schema_version>` |
//! | `ce-subject` | stream id |
//! | `ce-time` | recorded-at time, RFC 3339 with microseconds, UTC |
//! | `ce-position` | global position in the log (strictly increasing along the stream) |
//! | `ce-streamversion` | version of the event within its stream |
//! | `ce-correlationid`, `ce-causationid` | when the event has them |
//! | `content-type` | `application/json` |
//! | `commerce-metadata` | the event's whole metadata object as compact JSON |
//!
//! The body is the stored payload text byte for byte (the bytes the hash chain covers),
//! so integrators can validate it against `schemas/events/`. The NATS subject is
//! `<prefix>.<stream_type>.<event_type>`; characters that are not allowed in a subject
//! token are replaced by `_` there only, the headers carry the exact names.

use async_nats::jetstream::message::PublishMessage as Publish;
use async_nats::HeaderMap;
use chrono::SecondsFormat;

use crate::store::RecordedEvent;

/// `ce-specversion`.
pub const SPECVERSION: &str = "ce-specversion";
/// `ce-id`.
pub const ID: &str = "ce-id";
/// `ce-source`.
pub const SOURCE: &str = "ce-source";
/// `ce-type`.
pub const TYPE: &str = "ce-type";
/// `ce-subject`.
pub const SUBJECT: &str = "ce-subject";
/// `ce-time`.
pub const TIME: &str = "ce-time";
/// `ce-position` (extension attribute).
pub const POSITION: &str = "ce-position";
/// `ce-streamversion` (extension attribute).
pub const STREAM_VERSION: &str = "ce-streamversion";
/// `ce-correlationid` (extension attribute).
pub const CORRELATION_ID: &str = "ce-correlationid";
/// `ce-causationid` (extension attribute).
pub const CAUSATION_ID: &str = "ce-causationid";
/// `content-type`.
pub const CONTENT_TYPE: &str = "content-type";
/// The event's metadata object (not a CloudEvents attribute: it is JSON, not a string).
pub const METADATA: &str = "commerce-metadata";
/// The JetStream de-duplication header (as async-nats' `header::NATS_MESSAGE_ID`).
pub const MSG_ID: &str = "Nats-Msg-Id";

/// The `ce-source` prefix and `ce-type` namespace. Fixed, unlike the subject prefix: the
/// type names are the integration contract, the subject prefix is deployment plumbing.
pub const NAMESPACE: &str = "commerce";

/// The NATS subject of `event` under `prefix`.
pub fn subject(prefix: &str, stream_type: &str, event_type: &str) -> String {
    format!(
        "{prefix}.{}.{}",
        subject_token(stream_type),
        subject_token(event_type)
    )
}

fn subject_token(name: &str) -> String {
    let token: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if token.is_empty() {
        "_".to_string()
    } else {
        token
    }
}

/// `ce-source` of an event.
pub fn source(stream_type: &str, stream_id: &str) -> String {
    format!("/{NAMESPACE}/{stream_type}/{stream_id}")
}

/// `ce-type` of an event.
pub fn cloud_event_type(stream_type: &str, event_type: &str, schema_version: i32) -> String {
    format!("{NAMESPACE}.{stream_type}.{event_type}.v{schema_version}")
}

/// Header values may not contain line breaks (they would end the header block); the
/// store does not forbid them in ids, so they are escaped rather than sent raw.
fn header_safe(value: &str) -> String {
    value.replace('\r', "\\r").replace('\n', "\\n")
}

/// Builds the subject and message of one event, exactly as the relay publishes it.
pub fn encode(prefix: &str, event: &RecordedEvent) -> (String, Publish) {
    let mut headers = HeaderMap::new();
    let id = event.event_id.to_string();
    headers.insert(SPECVERSION, "1.0");
    headers.insert(ID, id.as_str());
    headers.insert(
        SOURCE,
        header_safe(&source(&event.stream_type, &event.stream_id)),
    );
    headers.insert(
        TYPE,
        header_safe(&cloud_event_type(
            &event.stream_type,
            &event.event_type,
            event.schema_version,
        )),
    );
    headers.insert(SUBJECT, header_safe(&event.stream_id));
    headers.insert(
        TIME,
        event
            .recorded_at
            .to_rfc3339_opts(SecondsFormat::Micros, true),
    );
    headers.insert(POSITION, event.position.to_string());
    headers.insert(STREAM_VERSION, event.version.to_string());
    if let Some(id) = event.correlation_id {
        headers.insert(CORRELATION_ID, id.to_string());
    }
    if let Some(id) = event.causation_id {
        headers.insert(CAUSATION_ID, id.to_string());
    }
    headers.insert(CONTENT_TYPE, "application/json");
    // serde_json's compact output escapes control characters inside strings, so the
    // stored metadata text holds no raw line break; escape anyway for safety.
    headers.insert(METADATA, header_safe(&event.metadata_text));
    headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
    let message = Publish::build()
        .headers(headers)
        .payload(event.payload_text.clone().into());
    (
        subject(prefix, &event.stream_type, &event.event_type),
        message,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_tokens_are_sanitized_only_in_the_subject() {
        assert_eq!(
            subject("commerce", "order", "OrderPlaced"),
            "commerce.order.OrderPlaced"
        );
        assert_eq!(subject("p", "a.b", "c d*>"), "p.a_b.c_d__");
        assert_eq!(
            cloud_event_type("a.b", "X", 2),
            "commerce.a.b.X.v2",
            "the type keeps the exact names"
        );
    }
}

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
use async_nats::{HeaderMap, HeaderName};
use chrono::{DateTime, SecondsFormat, Utc};

use crate::feed::Envelope;
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
/// The JetStream de-duplication header (async-nats' `header::NATS_MESSAGE_ID`).
pub const MSG_ID: &str = "Nats-Msg-Id";

/// The `ce-source` prefix and `ce-type` namespace. Fixed, unlike the subject prefix: the
/// type names are the integration contract, the subject prefix is deployment plumbing.
pub const NAMESPACE: &str = "commerce";

/// The NATS subject of `event` under `prefix`.
pub fn subject(prefix: &str, stream_type: &str, event_type: &str) -> String {
    let mut subject =
        String::with_capacity(prefix.len() + stream_type.len() + event_type.len() + 2);
    subject.push_str(prefix);
    for token in [stream_type, event_type] {
        subject.push('.');
        push_subject_token(&mut subject, token);
    }
    subject
}

fn push_subject_token(subject: &mut String, name: &str) {
    if name.is_empty() {
        subject.push('_');
    }
    subject.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            c
        } else {
            '_'
        }
    }));
}

/// `ce-source` of an event.
pub fn source(stream_type: &str, stream_id: &str) -> String {
    // Built by hand rather than with `format!`: this runs once per published event.
    let mut source =
        String::with_capacity(NAMESPACE.len() + stream_type.len() + stream_id.len() + 3);
    for part in ["/", NAMESPACE, "/", stream_type, "/", stream_id] {
        source.push_str(part);
    }
    source
}

/// `ce-type` of an event.
pub fn cloud_event_type(stream_type: &str, event_type: &str, schema_version: i32) -> String {
    let version = schema_version.to_string();
    let mut name = String::with_capacity(
        NAMESPACE.len() + stream_type.len() + event_type.len() + version.len() + 4,
    );
    for part in [NAMESPACE, ".", stream_type, ".", event_type, ".v", &version] {
        name.push_str(part);
    }
    name
}

/// Makes `value` safe as a NATS header value, reversibly ([`header_text`] undoes it).
///
/// A header value must not hold a line break (it would end the header block), and the
/// NATS client trims whitespace from both ends of every value it reads. The store forbids
/// neither in ids, so `%`, every control character (C0, DEL, C1) and whitespace at either
/// end are written as `%XX` per UTF-8 byte; everything else passes unchanged, so ordinary
/// ids read the same on the wire. Readers must decode with [`header_text`].
pub fn header_safe(value: String) -> String {
    if plainly_safe(&value) {
        return value;
    }
    let last = value.chars().count().saturating_sub(1);
    let needs = |(i, c): (usize, char)| {
        c == '%' || c.is_control() || ((i == 0 || i == last) && c.is_whitespace())
    };
    if !value.chars().enumerate().any(needs) {
        return value;
    }
    let mut out = String::with_capacity(value.len() + 8);
    let mut buf = [0u8; 4];
    for (i, c) in value.chars().enumerate() {
        if needs((i, c)) {
            for byte in c.encode_utf8(&mut buf).bytes() {
                out.push('%');
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0x0f)]));
            }
        } else {
            out.push(c);
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Whether [`header_safe`] leaves `value` unchanged, decided on bytes for the common
/// case of ASCII text (`false` for any non-ASCII text, which takes the full check): no
/// `%`, no control character, no space at either end (the other ASCII whitespace
/// characters are controls).
fn plainly_safe(value: &str) -> bool {
    let bytes = value.as_bytes();
    value.is_ascii()
        && !bytes.iter().any(|&b| b == b'%' || b < 0x20 || b == 0x7f)
        && bytes.first() != Some(&b' ')
        && bytes.last() != Some(&b' ')
}

/// A header value that [`header_safe`] escaped cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed escape in header value: {0}")]
pub struct EscapeError(&'static str);

/// The original text of a header value written by [`header_safe`].
///
/// Every `%` on the wire starts an escape (a literal `%` is itself escaped), so a `%` not
/// followed by two hex digits, or escapes that are not UTF-8, are errors rather than
/// guesses.
pub fn header_text(value: &str) -> Result<String, EscapeError> {
    if !value.contains('%') {
        return Ok(value.to_string());
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: u8| char::from(b).to_digit(16);
            let byte = bytes
                .get(i + 1..i + 3)
                .and_then(|pair| Some(hex(pair[0])? * 16 + hex(pair[1])?))
                .and_then(|b| u8::try_from(b).ok())
                .ok_or(EscapeError("`%` not followed by two hex digits"))?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| EscapeError("escaped bytes are not UTF-8"))
}

// Header names, built once (a name from a `&str` is an allocation per message).
const H_SPECVERSION: HeaderName = HeaderName::from_static(SPECVERSION);
const H_ID: HeaderName = HeaderName::from_static(ID);
const H_SOURCE: HeaderName = HeaderName::from_static(SOURCE);
const H_TYPE: HeaderName = HeaderName::from_static(TYPE);
const H_SUBJECT: HeaderName = HeaderName::from_static(SUBJECT);
const H_TIME: HeaderName = HeaderName::from_static(TIME);
const H_POSITION: HeaderName = HeaderName::from_static(POSITION);
const H_STREAM_VERSION: HeaderName = HeaderName::from_static(STREAM_VERSION);
const H_CORRELATION_ID: HeaderName = HeaderName::from_static(CORRELATION_ID);
const H_CAUSATION_ID: HeaderName = HeaderName::from_static(CAUSATION_ID);
const H_CONTENT_TYPE: HeaderName = HeaderName::from_static(CONTENT_TYPE);
const H_METADATA: HeaderName = HeaderName::from_static(METADATA);

/// Builds the subject and message of one event, exactly as the relay publishes it.
/// Takes the event by value: its payload and metadata texts move into the message.
pub fn encode(prefix: &str, event: RecordedEvent) -> (String, Publish) {
    encode_event(prefix, event).into_message()
}

/// [`encode`], in parts: what the relay publishes for `event`.
pub fn encode_event(prefix: &str, event: RecordedEvent) -> Encoded {
    encode_fields(
        prefix,
        Fields {
            position: event.position,
            event_id: event.event_id,
            stream_type: &event.stream_type,
            stream_id: &event.stream_id,
            version: event.version,
            event_type: &event.event_type,
            schema_version: event.schema_version,
            payload: event.payload_text,
            metadata: event.metadata_text,
            correlation_id: event.correlation_id,
            causation_id: event.causation_id,
            recorded_at: event.recorded_at,
        },
    )
}

/// One event's message before it is handed to async-nats: comparable, unlike
/// [`Publish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The event's position in the log.
    pub position: i64,
    /// The NATS subject.
    pub subject: String,
    pub headers: HeaderMap,
    /// The body: the stored payload text.
    pub payload: String,
}

impl Encoded {
    /// The message's size as the NATS server counts it against its `max_payload`
    /// (header block and body).
    pub fn size(&self) -> usize {
        header_block_len(&self.headers) + self.payload.len()
    }

    /// The subject and the message to publish.
    pub fn into_message(self) -> (String, Publish) {
        let message = Publish::build()
            .headers(self.headers)
            .payload(self.payload.into());
        (self.subject, message)
    }
}

/// Bytes of the header block NATS sends before the body: `NATS/1.0\r\n`, one
/// `Name: value\r\n` per value, and a closing `\r\n`.
fn header_block_len(headers: &HeaderMap) -> usize {
    let lines: usize = headers
        .iter()
        .map(|(name, values)| {
            let name: &[u8] = name.as_ref();
            values
                .iter()
                .map(|value| {
                    let value: &[u8] = value.as_ref();
                    name.len() + 2 + value.len() + 2
                })
                .sum::<usize>()
        })
        .sum();
    "NATS/1.0\r\n".len() + lines + 2
}

/// What the wire format takes from an event: everything but the actor (it is in the
/// metadata) and the hash chain. The names borrow from wherever the event was read.
pub(super) struct Fields<'a> {
    pub(super) position: i64,
    pub(super) event_id: uuid::Uuid,
    pub(super) stream_type: &'a str,
    pub(super) stream_id: &'a str,
    pub(super) version: i64,
    pub(super) event_type: &'a str,
    pub(super) schema_version: i32,
    pub(super) payload: String,
    pub(super) metadata: String,
    pub(super) correlation_id: Option<uuid::Uuid>,
    pub(super) causation_id: Option<uuid::Uuid>,
    pub(super) recorded_at: DateTime<Utc>,
}

/// The subject, headers and body of one event's message.
pub(super) fn encode_fields(prefix: &str, event: Fields<'_>) -> Encoded {
    let subject = subject(prefix, event.stream_type, event.event_type);
    let id = event
        .event_id
        .hyphenated()
        .encode_lower(&mut uuid::Uuid::encode_buffer())
        .to_owned();
    let mut headers = HeaderMap::new();
    headers.insert(H_SPECVERSION, "1.0");
    headers.insert(async_nats::header::NATS_MESSAGE_ID, id.clone());
    headers.insert(H_ID, id);
    headers.insert(
        H_SOURCE,
        header_safe(source(event.stream_type, event.stream_id)),
    );
    headers.insert(
        H_TYPE,
        header_safe(cloud_event_type(
            event.stream_type,
            event.event_type,
            event.schema_version,
        )),
    );
    headers.insert(H_SUBJECT, header_safe(event.stream_id.to_owned()));
    headers.insert(H_TIME, rfc3339_micros(&event.recorded_at));
    headers.insert(H_POSITION, event.position.to_string());
    headers.insert(H_STREAM_VERSION, event.version.to_string());
    if let Some(id) = event.correlation_id {
        headers.insert(H_CORRELATION_ID, id.to_string());
    }
    if let Some(id) = event.causation_id {
        headers.insert(H_CAUSATION_ID, id.to_string());
    }
    headers.insert(H_CONTENT_TYPE, "application/json");
    // serde_json's compact output escapes control characters inside strings, so the
    // stored metadata text holds no raw line break; escape anyway for safety.
    headers.insert(H_METADATA, header_safe(event.metadata));
    Encoded {
        position: event.position,
        subject,
        headers,
        payload: event.payload,
    }
}

/// `time` as RFC 3339 in UTC with microseconds (`2026-12-02T04:27:09.123456Z`), exactly
/// as chrono's `to_rfc3339_opts(SecondsFormat::Micros, true)` writes it, without
/// chrono's formatting machinery for the years 0 to 9999 (chrono writes the others and
/// leap seconds).
pub fn rfc3339_micros(time: &DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    let year = time.year();
    let nanos = time.nanosecond();
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return time.to_rfc3339_opts(SecondsFormat::Micros, true);
    }
    let mut out = [0u8; 27];
    let mut put = |at: usize, value: u32, digits: usize| {
        let mut value = value;
        for i in (at..at + digits).rev() {
            out[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, year as u32, 4);
    put(5, time.month(), 2);
    put(8, time.day(), 2);
    put(11, time.hour(), 2);
    put(14, time.minute(), 2);
    put(17, time.second(), 2);
    put(20, nanos / 1_000, 6);
    for (at, sep) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
    ] {
        out[at] = sep;
    }
    out[26] = b'Z';
    String::from_utf8(out.to_vec()).expect("ASCII digits and separators")
}

/// A message that is not an event as [`encode`] writes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{header}: {reason}")]
pub struct DecodeError {
    /// The header (or `body`) at fault.
    pub header: &'static str,
    pub reason: String,
}

impl DecodeError {
    fn new(header: &'static str, reason: impl std::fmt::Display) -> Self {
        Self {
            header,
            reason: reason.to_string(),
        }
    }
}

/// Rebuilds the envelope of an event from a message [`encode`] built: the reverse of the
/// wire format, escapes included. Every reader of relayed messages goes through here, so
/// the stream id a consumer sees is the one in the log.
pub fn decode(headers: &HeaderMap, payload: &[u8]) -> Result<Envelope, DecodeError> {
    let raw = |name: &'static str| {
        headers
            .get(name)
            .map(|v| v.as_str())
            .ok_or_else(|| DecodeError::new(name, "missing"))
    };
    let text = |name: &'static str| {
        raw(name).and_then(|v| header_text(v).map_err(|e| DecodeError::new(name, e)))
    };
    let stream_id = text(SUBJECT)?;
    let source = text(SOURCE)?;
    let stream_type = source
        .strip_prefix(&format!("/{NAMESPACE}/"))
        .and_then(|rest| rest.strip_suffix(&format!("/{stream_id}")))
        .ok_or_else(|| DecodeError::new(SOURCE, "does not name the stream"))?
        .to_string();
    let type_text = text(TYPE)?;
    let (event_type, schema_version) = type_text
        .strip_prefix(&format!("{NAMESPACE}.{stream_type}."))
        .and_then(|rest| rest.rsplit_once(".v"))
        .ok_or_else(|| DecodeError::new(TYPE, "not <namespace>.<stream>.<event>.v<n>"))?;
    Ok(Envelope {
        position: raw(POSITION)?
            .parse()
            .map_err(|e| DecodeError::new(POSITION, e))?,
        event_id: raw(ID)?.parse().map_err(|e| DecodeError::new(ID, e))?,
        version: raw(STREAM_VERSION)?
            .parse()
            .map_err(|e| DecodeError::new(STREAM_VERSION, e))?,
        schema_version: schema_version
            .parse()
            .map_err(|e| DecodeError::new(TYPE, e))?,
        event_type: event_type.to_string(),
        recorded_at: DateTime::parse_from_rfc3339(raw(TIME)?)
            .map_err(|e| DecodeError::new(TIME, e))?
            .with_timezone(&Utc),
        metadata: serde_json::from_str(&text(METADATA)?)
            .map_err(|e| DecodeError::new(METADATA, e))?,
        payload: serde_json::from_slice(payload).map_err(|e| DecodeError::new("body", e))?,
        stream_type,
        stream_id,
    })
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
        assert_eq!(subject("p", "", "X"), "p._.X");
        assert_eq!(source("cart", "c-1"), "/commerce/cart/c-1");
        assert_eq!(
            cloud_event_type("a.b", "X", 2),
            "commerce.a.b.X.v2",
            "the type keeps the exact names"
        );
    }

    #[test]
    fn encode_builds_every_header() {
        let event = RecordedEvent {
            position: 42,
            event_id: uuid::Uuid::now_v7(),
            stream_type: "cart".into(),
            stream_id: "c-1\nx".into(),
            version: 7,
            event_type: "ItemAdded".into(),
            schema_version: 2,
            payload_text: r#"{"sku":"A"}"#.into(),
            metadata_text: r#"{"actor":"me"}"#.into(),
            correlation_id: Some(uuid::Uuid::now_v7()),
            causation_id: None,
            actor: Some("me".into()),
            recorded_at: chrono::Utc::now(),
            hash: vec![0; 32],
            prev_hash: None,
        };
        let id = event.event_id.to_string();
        let correlation = event.correlation_id.map(|u| u.to_string());
        let Encoded {
            subject,
            headers,
            payload,
            ..
        } = encode_event("p", event);
        assert_eq!(subject, "p.cart.ItemAdded");
        assert_eq!(payload, r#"{"sku":"A"}"#);
        let header = |name: &str| headers.get(name).map(|v| v.as_str().to_string());
        assert_eq!(header(ID).as_deref(), Some(id.as_str()));
        // A standard name: looked up as such, not as a custom `&str` name.
        let msg_id = headers.get(async_nats::header::NATS_MESSAGE_ID);
        assert_eq!(msg_id.map(|v| v.as_str()), Some(id.as_str()));
        assert_eq!(header(SPECVERSION).as_deref(), Some("1.0"));
        assert_eq!(header(SOURCE).as_deref(), Some("/commerce/cart/c-1%0Ax"));
        assert_eq!(header(TYPE).as_deref(), Some("commerce.cart.ItemAdded.v2"));
        assert_eq!(
            header(SUBJECT).as_deref(),
            Some("c-1%0Ax"),
            "line breaks escaped"
        );
        assert_eq!(header(POSITION).as_deref(), Some("42"));
        assert_eq!(header(STREAM_VERSION).as_deref(), Some("7"));
        assert_eq!(header(CORRELATION_ID), correlation);
        assert_eq!(header(CAUSATION_ID), None);
        assert_eq!(header(CONTENT_TYPE).as_deref(), Some("application/json"));
        assert_eq!(header(METADATA).as_deref(), Some(r#"{"actor":"me"}"#));
        assert!(header(TIME).is_some());
        assert_eq!(headers.len(), 12);
    }

    /// Every ASCII character, the C1 controls, a few Unicode whitespace characters and
    /// some non-ASCII text, alone, at either end and in the middle of an id.
    fn awkward_ids() -> Vec<String> {
        let mut chars: Vec<char> = (0u8..=0x7f).map(char::from).collect();
        chars.extend((0x80u32..=0x9f).filter_map(char::from_u32));
        chars.extend(['\u{a0}', '\u{2028}', '\u{3000}', '\u{feff}', 'é', '☃']);
        let mut ids = Vec::new();
        for c in chars {
            ids.push(c.to_string());
            ids.push(format!("{c}id"));
            ids.push(format!("id{c}"));
            ids.push(format!("i{c}d"));
            ids.push(format!("{c}{c}"));
        }
        ids.extend(["%", "%25", "%0A", "a%zz", " spaced out ", "\\n", ""].map(String::from));
        ids
    }

    #[test]
    fn header_escaping_round_trips_every_character() {
        for id in awkward_ids() {
            let wire = header_safe(id.clone());
            assert!(
                !wire.chars().any(char::is_control),
                "{id:?} -> {wire:?} holds a control character"
            );
            assert_eq!(
                wire.trim(),
                wire,
                "{id:?} -> {wire:?} would lose whitespace to the reader's trim"
            );
            assert_eq!(header_text(&wire).as_deref(), Ok(id.as_str()), "{wire:?}");
        }
        // Ordinary ids are unchanged on the wire.
        assert_eq!(header_safe("order 42/é".into()), "order 42/é");
    }

    #[test]
    fn times_are_written_as_chrono_writes_them() {
        use chrono::TimeZone;
        let mut times = vec![
            Utc::now(),
            Utc.timestamp_opt(0, 0).unwrap(),
            Utc.timestamp_opt(-62_167_219_200, 5_000).unwrap(), // 0000-01-01
            Utc.timestamp_opt(253_402_300_799, 999_999_999).unwrap(), // 9999-12-31
            Utc.timestamp_opt(253_402_300_800, 0).unwrap(),     // 10000-01-01
            Utc.timestamp_opt(-62_167_219_201, 0).unwrap(),     // year -1
            Utc.timestamp_opt(1_483_228_799, 1_500_000_000).unwrap(), // leap second
        ];
        // A spread of instants over the years 1 to 9999 and every sub-second digit.
        let mut seconds: i64 = -62_135_596_800;
        let mut nanos: u32 = 1;
        while seconds < 253_402_300_799 {
            times.push(Utc.timestamp_opt(seconds, nanos).unwrap());
            seconds += 86_400 * 367 + 3_661 * 7 + 13;
            nanos = ((u64::from(nanos) * 7 + 123_457) % 1_000_000_000) as u32;
        }
        for time in times {
            assert_eq!(
                rfc3339_micros(&time),
                time.to_rfc3339_opts(SecondsFormat::Micros, true),
                "{time:?}"
            );
        }
    }

    #[test]
    fn the_byte_check_agrees_with_the_full_escape() {
        let mut values = awkward_ids();
        values.extend(
            [
                r#"{"actor":"me","n":1}"#,
                "/commerce/cart/c-1",
                "a b",
                " a",
                "a ",
                "\u{b}x",
            ]
            .map(String::from),
        );
        for value in values {
            if plainly_safe(&value) {
                let last = value.chars().count().saturating_sub(1);
                assert!(
                    !value.chars().enumerate().any(|(i, c)| c == '%'
                        || c.is_control()
                        || ((i == 0 || i == last) && c.is_whitespace())),
                    "{value:?} passed the byte check but needs escaping"
                );
            }
        }
    }

    #[test]
    fn malformed_escapes_are_refused() {
        for bad in ["%", "%4", "a%G0", "%FF", "%C3"] {
            assert!(header_text(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn decode_reverses_encode_for_awkward_stream_ids() {
        for id in awkward_ids() {
            let event = RecordedEvent {
                position: 9,
                event_id: uuid::Uuid::now_v7(),
                stream_type: "cart".into(),
                stream_id: id.clone(),
                version: 3,
                event_type: "ItemAdded".into(),
                schema_version: 2,
                payload_text: r#"{"sku":"A"}"#.into(),
                metadata_text: r#"{"actor":"me"}"#.into(),
                correlation_id: None,
                causation_id: None,
                actor: Some("me".into()),
                recorded_at: chrono::Utc::now(),
                hash: vec![0; 32],
                prev_hash: None,
            };
            let event_id = event.event_id;
            let Encoded {
                headers, payload, ..
            } = encode_event("p", event);
            let envelope = decode(&headers, payload.as_bytes()).unwrap();
            assert_eq!(envelope.stream_id, id);
            assert_eq!(envelope.stream_type, "cart");
            assert_eq!(envelope.event_type, "ItemAdded");
            assert_eq!(envelope.schema_version, 2);
            assert_eq!(envelope.event_id, event_id);
            assert_eq!((envelope.position, envelope.version), (9, 3));
        }
    }
}

//! The JetStream dead-letter stream: every event a consumer gives up on is also
//! published there, for alerting and for integrators who watch failures. The database
//! (`dead_letters`) stays the record operators act on (`commerce dlq`); this stream is
//! its announcement.

use std::time::Duration;

use async_nats::jetstream::{self, context::Context, stream};
use async_nats::HeaderMap;
use chrono::SecondsFormat;

use super::ConsumerError;
use crate::feed::Envelope;
use crate::relay::message as ce;

/// `commerce-dlq-consumer`: the subscriber that gave up.
pub const CONSUMER: &str = "commerce-dlq-consumer";
/// `commerce-dlq-error`: the handler's last error (at most 2 KiB).
pub const ERROR: &str = "commerce-dlq-error";
/// `commerce-dlq-attempts`: failed attempts before it was given up.
pub const ATTEMPTS: &str = "commerce-dlq-attempts";

const MAX_ERROR_BYTES: usize = 2048;

/// Where dead letters are announced: a JetStream stream capturing
/// `<subject_prefix>.<consumer>.<stream_type>.<event_type>`.
#[derive(Debug, Clone)]
pub struct DeadLetterStream {
    context: Context,
    subject_prefix: String,
}

impl DeadLetterStream {
    /// Creates or updates stream `name` (file storage, messages kept for `max_age`, zero
    /// = forever) capturing `<subject_prefix>.>`.
    pub async fn ensure(
        nats: async_nats::Client,
        name: &str,
        subject_prefix: &str,
        max_age: Duration,
    ) -> Result<Self, ConsumerError> {
        let context = jetstream::new(nats);
        context
            .create_or_update_stream(stream::Config {
                name: name.to_string(),
                subjects: vec![format!("{subject_prefix}.>")],
                storage: stream::StorageType::File,
                max_age,
                description: Some("events consumers gave up on, with the error".into()),
                ..Default::default()
            })
            .await
            .map_err(|e| ConsumerError::Nats(e.into()))?;
        Ok(Self {
            context,
            subject_prefix: subject_prefix.to_string(),
        })
    }

    /// Announces one dead letter and waits for JetStream's ack. The message id makes a
    /// repeated announcement of the same failure a duplicate JetStream drops.
    pub(super) async fn publish(
        &self,
        consumer: &str,
        envelope: &Envelope,
        attempts: i32,
        error: &str,
    ) -> Result<(), ConsumerError> {
        let mut headers = HeaderMap::new();
        headers.insert(ce::SPECVERSION, "1.0");
        headers.insert(ce::ID, envelope.event_id.to_string());
        headers.insert(
            ce::SOURCE,
            ce::header_safe(ce::source(&envelope.stream_type, &envelope.stream_id)),
        );
        headers.insert(
            ce::TYPE,
            ce::header_safe(ce::cloud_event_type(
                &envelope.stream_type,
                &envelope.event_type,
                envelope.schema_version,
            )),
        );
        headers.insert(ce::SUBJECT, ce::header_safe(envelope.stream_id.clone()));
        headers.insert(
            ce::TIME,
            envelope
                .recorded_at
                .to_rfc3339_opts(SecondsFormat::Micros, true),
        );
        headers.insert(ce::POSITION, envelope.position.to_string());
        headers.insert(ce::STREAM_VERSION, envelope.version.to_string());
        headers.insert(ce::CONTENT_TYPE, "application/json");
        headers.insert(CONSUMER, consumer);
        headers.insert(
            ERROR,
            ce::header_safe(truncate(error, MAX_ERROR_BYTES).to_string()),
        );
        headers.insert(ATTEMPTS, attempts.to_string());
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("{consumer}:{}:{attempts}", envelope.event_id),
        );
        let body = serde_json::to_vec(envelope).map_err(ConsumerError::Encode)?;
        let subject = format!(
            "{}.{}",
            self.subject_prefix,
            ce::subject(consumer, &envelope.stream_type, &envelope.event_type)
        );
        self.context
            .publish_with_headers(subject, headers, body.into())
            .await
            .map_err(|e| ConsumerError::Nats(e.into()))?
            .await
            .map_err(|e| ConsumerError::Nats(e.into()))?;
        Ok(())
    }
}

/// The longest prefix of `text` of at most `max` bytes on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn errors_are_cut_on_character_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("äbc", 1), "");
        assert_eq!(truncate("äbc", 2), "ä");
    }
}

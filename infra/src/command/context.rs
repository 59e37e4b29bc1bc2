//! Who runs a command, why, and under which id.

use aggregates::CustomerId;
use uuid::Uuid;

use crate::store::{EventMetadata, ACTOR, CAUSATION_ID, CORRELATION_ID};

use super::COMMAND_ID;

/// The request context of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandContext {
    /// Idempotency: a command id seen before on the stream appends nothing and answers
    /// the first outcome. From the client's `Idempotency-Key`, or derived by a saga from
    /// the event that triggered it ([`CommandContext::derived_id`]).
    pub command_id: Uuid,
    /// The business flow this command belongs to (a request's `traceparent` trace id or
    /// `X-Request-Id`, or the triggering event's correlation id).
    pub correlation_id: Uuid,
    /// The event that caused this command, for commands issued by sagas.
    pub causation_id: Option<Uuid>,
    /// Who asked: `customer:<id>`, `staff:<sub>`, `admin:<sub>`, `service:<sub>`,
    /// `saga:<name>`, `seed`.
    pub actor: String,
    /// `Some(customer)`: the caller may act only on streams that customer owns; any
    /// other stream is reported as not found.
    pub owner: Option<CustomerId>,
    /// `If-Match`: the stream must be at exactly this version.
    pub expected_version: Option<i64>,
    /// More metadata stored on every event (trace context, idempotency key, …).
    pub extra: EventMetadata,
}

impl CommandContext {
    /// A context with a fresh command id, correlated to nothing else.
    pub fn new(actor: impl Into<String>) -> Self {
        let id = Uuid::now_v7();
        Self {
            command_id: id,
            correlation_id: id,
            causation_id: None,
            actor: actor.into(),
            owner: None,
            expected_version: None,
            extra: EventMetadata::new(),
        }
    }

    pub fn with_command_id(mut self, id: Uuid) -> Self {
        self.command_id = id;
        self
    }

    pub fn with_correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = id;
        self
    }

    pub fn caused_by(mut self, event_id: Uuid) -> Self {
        self.causation_id = Some(event_id);
        self
    }

    pub fn owned_by(mut self, customer: CustomerId) -> Self {
        self.owner = Some(customer);
        self
    }

    pub fn expecting(mut self, version: Option<i64>) -> Self {
        self.expected_version = version;
        self
    }

    /// A command id that is the same every time for the same `(scope, key)`: a saga
    /// step uses the triggering event id and the step's name, a client its subject and
    /// `Idempotency-Key`, `commerce seed` the item it seeds.
    pub fn derived_id(scope: &str, key: &str) -> Uuid {
        let name = format!("{scope}\u{1f}{key}");
        Uuid::new_v5(&COMMAND_NAMESPACE, name.as_bytes())
    }

    /// The metadata stored on each event of the command.
    pub fn metadata(&self) -> EventMetadata {
        let mut meta = self.extra.clone();
        meta.insert(CORRELATION_ID.into(), self.correlation_id.to_string());
        if let Some(cause) = self.causation_id {
            meta.insert(CAUSATION_ID.into(), cause.to_string());
        }
        meta.insert(ACTOR.into(), self.actor.clone());
        meta.insert(COMMAND_ID.into(), self.command_id.to_string());
        meta
    }
}

/// Namespace of derived command ids (UUID v5).
const COMMAND_NAMESPACE: Uuid = Uuid::from_u128(0x6b1f_3c52_9a0e_4d7b_8e21_5c4f_0a9d_77e3);

//! What a consumer implements: one [`Handler`] per subscriber.

use std::future::Future;

use super::Tx;
use crate::feed::Envelope;

/// Whether a handler needs the events of one stream (one aggregate) in their log order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ordering {
    /// Events of one stream are handled strictly in order: a later event never overtakes
    /// an earlier one that failed; while the earlier one is retried or dead-lettered,
    /// the later ones are parked. The default.
    PerStream,
    /// Events are independent: a failing event does not hold back any other.
    Unordered,
}

/// A subscriber: projections, sagas, webhook fan-out, integrations.
///
/// The runtime calls [`Handler::handle`] once per event the handler [wants](Handler::wants)
/// and settles and acknowledges the event only after it returns `Ok`. Where the effect is
/// stored decides what "once" means:
///
/// * **In the store's database** (read models, saga state, outboxes): write it through
///   the lent transaction, `tx.conn().await?`. The runtime settles the event in that same
///   transaction and commits once, so the effect happens exactly once: a crash, a
///   timeout or a failed settle rolls it back together with the settle, and a redelivery
///   of a settled event never reaches the handler.
/// * **Elsewhere** (another database, an HTTP call, a message): ignore `tx`. A crash
///   between the effect and the settle delivers the event again, so the effect must be
///   idempotent by [`Envelope::event_id`]. When the effect is a transaction in another
///   database, record the event in that database's [inbox](super::inbox) inside the
///   effect's transaction and skip the effect when it is there already.
///
/// The handler's future may be dropped (timeout, shutdown): anything it wrote through
/// `tx` is then rolled back; anything it did elsewhere may have happened.
pub trait Handler: Send + Sync + 'static {
    /// The subscriber's stable name: its durable consumer, its progress and its dead
    /// letters are stored under it. `[A-Za-z0-9_-]`, at most 64 characters.
    fn name(&self) -> &str;

    /// See [`Ordering`]. Defaults to [`Ordering::PerStream`].
    fn ordering(&self) -> Ordering {
        Ordering::PerStream
    }

    /// Whether this handler acts on `envelope` at all. Events it does not want are
    /// acknowledged (and, for ordered handlers, counted as done) without a call.
    fn wants(&self, envelope: &Envelope) -> bool {
        let _ = envelope;
        true
    }

    /// The lane of `envelope`: when the runtime handles several deliveries at once
    /// ([`ConsumerConfig::concurrency`](super::ConsumerConfig::concurrency)), two
    /// deliveries with the same lane never run at the same time, and the later one waits
    /// for the earlier one in arrival order (as the events of one stream do for an
    /// ordered handler). `None` (the default): no lane beyond the stream's. A saga returns
    /// its saga id, so two steps of one saga never race for its row. A handler that
    /// wraps another must pass this on (as [`Handler::ordering`] and [`Handler::wants`]):
    /// the default would quietly drop the inner handler's lanes.
    fn lane(&self, envelope: &Envelope) -> Option<String> {
        let _ = envelope;
        None
    }

    /// Applies one event, writing an effect in the store's database through `tx` (see
    /// the trait docs). `Err` rolls `tx` back and is retried with backoff; a
    /// [permanent](HandlerError::permanent) error, or too many failures, sends the event
    /// to the dead letters.
    fn handle(
        &self,
        tx: &mut Tx<'_>,
        envelope: &Envelope,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Why a handler could not apply an event. The text is kept with the dead letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    pub message: String,
    /// Retrying cannot help (e.g. the event breaks an invariant of the read model):
    /// dead-letter at once.
    pub permanent: bool,
}

impl HandlerError {
    /// A failure worth retrying (a database or network error, a timeout).
    pub fn retry(message: impl std::fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            permanent: false,
        }
    }

    /// A failure no retry can fix.
    pub fn permanent(message: impl std::fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            permanent: true,
        }
    }
}

/// A database error is worth retrying (a lost connection, a serialization failure); so
/// handlers can use `?` on their queries.
impl From<sqlx::Error> for HandlerError {
    fn from(err: sqlx::Error) -> Self {
        Self::retry(err)
    }
}

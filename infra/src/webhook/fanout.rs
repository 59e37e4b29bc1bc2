//! The fan-out subscriber: one pending delivery per matching subscription and event.

use crate::consumer::{Handler, HandlerError, Tx};
use crate::feed::Envelope;
use crate::store::Store;

use super::db::{insert_deliveries, now, on_db, parse_filter, NewDelivery};
use super::{WebhookError, FANOUT_NAME};

/// The consumer [`Handler`] named `webhooks`: for every event, inserts a pending delivery
/// for each active subscription whose filter matches and that was created before the
/// event (its `start_position` is below the event's position).
///
/// Idempotent: handling the same event again inserts nothing new (deliveries are unique
/// per subscription, event and generation). Events of one stream must be handled in
/// order (the default [`Ordering::PerStream`](crate::consumer::Ordering)), so that the
/// deliveries of a stream exist before later ones are sent. Subscriptions that are
/// disabled when an event is handled do not get it; [replay](super::admin::replay)
/// catches them up.
#[derive(Debug, Clone)]
pub struct WebhookFanout {
    store: Store,
}

impl WebhookFanout {
    /// A fan-out writing to `store`'s database.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Enqueues `envelope` for its subscriptions; returns how many deliveries were new.
    pub async fn fan_out(&self, envelope: &Envelope) -> Result<u64, WebhookError> {
        let active: Vec<(uuid::Uuid, String)> = on_db!(self.store.db(), pool => {
            sqlx::query_as(
                "SELECT id, event_types FROM webhook_subscriptions \
                 WHERE status = 'active' AND start_position < $1",
            )
            .bind(envelope.position)
            .fetch_all(pool)
            .await?
        });
        let mut rows = Vec::new();
        for (subscription_id, filter) in active {
            // Filters are validated when written; one unreadable filter must not hold
            // back the other subscriptions.
            let filter = match parse_filter(&filter) {
                Ok(filter) => filter,
                Err(e) => {
                    tracing::error!(subscription = %subscription_id, error = %e, "webhook subscription skipped");
                    continue;
                }
            };
            if filter.matches(&envelope.stream_type, &envelope.event_type) {
                rows.push(NewDelivery {
                    subscription_id,
                    generation: 0,
                    event_id: envelope.event_id,
                    position: envelope.position,
                    stream_type: envelope.stream_type.clone(),
                    stream_id: envelope.stream_id.clone(),
                    event_type: envelope.event_type.clone(),
                });
            }
        }
        if rows.is_empty() {
            return Ok(0);
        }
        insert_deliveries(self.store.db(), &rows, now(&self.store)).await
    }
}

impl Handler for WebhookFanout {
    fn name(&self) -> &str {
        FANOUT_NAME
    }

    /// Writes through the store's pool, not `tx`: the deliveries are idempotent per
    /// event, and the shared insert also serves replays outside any consumer.
    async fn handle(&self, _tx: &mut Tx<'_>, envelope: &Envelope) -> Result<(), HandlerError> {
        self.fan_out(envelope)
            .await
            .map(|_| ())
            .map_err(HandlerError::retry)
    }
}

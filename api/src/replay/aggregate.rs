//! The eight aggregates as the replay tools name them, and the one way they turn stored
//! rows into typed events and state: [`EventSourced::decode`] (upcasters included) and
//! [`Decider::evolve`], exactly as the command layer loads a stream.

use aggregates::cart::{Cart, CartEvent};
use aggregates::loyalty::{LoyaltyAccount, LoyaltyEvent};
use aggregates::order::{Order, OrderEvent};
use aggregates::payment::{Payment, PaymentEvent};
use aggregates::product::{Product, ProductEvent};
use aggregates::promotion::{Promotion, PromotionEvent};
use aggregates::shipment::{Shipment, ShipmentEvent};
use aggregates::stock::{Stock, StockEvent};
use aggregates::EventSourced;
use infra::RecordedEvent;
use serde_json::Value;

use super::ReplayError;

/// One of the eight event-sourced aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggregateKind {
    Cart,
    Order,
    Payment,
    Stock,
    Shipment,
    Loyalty,
    Product,
    Promotion,
}

impl AggregateKind {
    pub const ALL: [AggregateKind; 8] = [
        AggregateKind::Cart,
        AggregateKind::Order,
        AggregateKind::Payment,
        AggregateKind::Stock,
        AggregateKind::Shipment,
        AggregateKind::Loyalty,
        AggregateKind::Product,
        AggregateKind::Promotion,
    ];

    /// The stored stream type.
    pub fn stream_type(self) -> &'static str {
        match self {
            AggregateKind::Cart => Cart::STREAM_TYPE,
            AggregateKind::Order => Order::STREAM_TYPE,
            AggregateKind::Payment => Payment::STREAM_TYPE,
            AggregateKind::Stock => Stock::STREAM_TYPE,
            AggregateKind::Shipment => Shipment::STREAM_TYPE,
            AggregateKind::Loyalty => LoyaltyAccount::STREAM_TYPE,
            AggregateKind::Product => Product::STREAM_TYPE,
            AggregateKind::Promotion => Promotion::STREAM_TYPE,
        }
    }

    /// The aggregate of a stored stream type.
    pub fn of_stream_type(stream_type: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.stream_type() == stream_type)
    }

    /// Accepts the stream type (`loyalty_account`) and the short name (`loyalty`), in any
    /// case, singular or plural (`orders`).
    pub fn parse(name: &str) -> Result<Self, ReplayError> {
        let lower = name.trim().to_ascii_lowercase();
        let singular = lower.strip_suffix('s').unwrap_or(&lower);
        Self::ALL
            .into_iter()
            .find(|k| {
                let t = k.stream_type();
                t == lower || t == singular || k.short_name() == lower || k.short_name() == singular
            })
            .ok_or_else(|| ReplayError::UnknownAggregate(name.to_string()))
    }

    fn short_name(self) -> &'static str {
        match self {
            AggregateKind::Loyalty => "loyalty",
            other => other.stream_type(),
        }
    }

    /// Every stream type, for messages.
    pub fn names() -> String {
        Self::ALL
            .iter()
            .map(|k| k.stream_type())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A decoded event of any aggregate.
// Events are decoded and dropped one at a time; boxing the large variants would only
// add an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum AnyEvent {
    Cart(CartEvent),
    Order(OrderEvent),
    Payment(PaymentEvent),
    Stock(StockEvent),
    Shipment(ShipmentEvent),
    Loyalty(LoyaltyEvent),
    Product(ProductEvent),
    Promotion(PromotionEvent),
}

impl AnyEvent {
    /// The event as the current build stores it: type, current schema version and
    /// payload (an upcast event shows its current shape).
    pub fn encode(&self) -> (&'static str, u32, Value) {
        match self {
            AnyEvent::Cart(e) => e.encode(),
            AnyEvent::Order(e) => e.encode(),
            AnyEvent::Payment(e) => e.encode(),
            AnyEvent::Stock(e) => e.encode(),
            AnyEvent::Shipment(e) => e.encode(),
            AnyEvent::Loyalty(e) => e.encode(),
            AnyEvent::Product(e) => e.encode(),
            AnyEvent::Promotion(e) => e.encode(),
        }
    }
}

/// The typed event of one stored row, upcast to its current schema version.
fn decode_as<A: EventSourced>(e: &RecordedEvent) -> Result<A::Event, ReplayError> {
    let fail = |reason: String| ReplayError::Decode {
        position: e.position,
        stream: format!("{}/{}", e.stream_type, e.stream_id),
        version: e.version,
        reason,
    };
    let payload = e.payload().map_err(|err| fail(err.to_string()))?;
    let schema_version = u32::try_from(e.schema_version)
        .map_err(|_| fail(format!("schema version {}", e.schema_version)))?;
    A::decode(&e.event_type, schema_version, payload).map_err(|err| fail(err.to_string()))
}

/// Decodes any stored event through its aggregate's upcasters.
pub fn decode(e: &RecordedEvent) -> Result<AnyEvent, ReplayError> {
    let kind =
        AggregateKind::of_stream_type(&e.stream_type).ok_or_else(|| ReplayError::Decode {
            position: e.position,
            stream: format!("{}/{}", e.stream_type, e.stream_id),
            version: e.version,
            reason: format!("no aggregate has the stream type `{}`", e.stream_type),
        })?;
    Ok(match kind {
        AggregateKind::Cart => AnyEvent::Cart(decode_as::<Cart>(e)?),
        AggregateKind::Order => AnyEvent::Order(decode_as::<Order>(e)?),
        AggregateKind::Payment => AnyEvent::Payment(decode_as::<Payment>(e)?),
        AggregateKind::Stock => AnyEvent::Stock(decode_as::<Stock>(e)?),
        AggregateKind::Shipment => AnyEvent::Shipment(decode_as::<Shipment>(e)?),
        AggregateKind::Loyalty => AnyEvent::Loyalty(decode_as::<LoyaltyAccount>(e)?),
        AggregateKind::Product => AnyEvent::Product(decode_as::<Product>(e)?),
        AggregateKind::Promotion => AnyEvent::Promotion(decode_as::<Promotion>(e)?),
    })
}

/// Folds events of one stream into its aggregate's state, as the command layer would.
pub fn fold<A: EventSourced>(events: &[RecordedEvent]) -> Result<A, ReplayError> {
    let mut state = A::default();
    for e in events {
        let event = decode_as::<A>(e)?;
        state.evolve(&event);
    }
    Ok(state)
}

/// The state of `kind` after `events`, as JSON (the aggregate's own serialization).
pub fn fold_json(kind: AggregateKind, events: &[RecordedEvent]) -> Result<Value, ReplayError> {
    fn json<A: EventSourced>(events: &[RecordedEvent]) -> Result<Value, ReplayError> {
        let state = fold::<A>(events)?;
        serde_json::to_value(&state).map_err(|e| ReplayError::Output(e.to_string()))
    }
    match kind {
        AggregateKind::Cart => json::<Cart>(events),
        AggregateKind::Order => json::<Order>(events),
        AggregateKind::Payment => json::<Payment>(events),
        AggregateKind::Stock => json::<Stock>(events),
        AggregateKind::Shipment => json::<Shipment>(events),
        AggregateKind::Loyalty => json::<LoyaltyAccount>(events),
        AggregateKind::Product => json::<Product>(events),
        AggregateKind::Promotion => json::<Promotion>(events),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_in_their_common_spellings() {
        assert_eq!(AggregateKind::parse("order").unwrap(), AggregateKind::Order);
        assert_eq!(
            AggregateKind::parse("Orders").unwrap(),
            AggregateKind::Order
        );
        assert_eq!(
            AggregateKind::parse("loyalty").unwrap(),
            AggregateKind::Loyalty
        );
        assert_eq!(
            AggregateKind::parse("loyalty_account").unwrap(),
            AggregateKind::Loyalty
        );
        let err = AggregateKind::parse("invoice").unwrap_err();
        assert!(err.is_bad_input());
        assert!(
            err.to_string().contains("unknown aggregate `invoice`"),
            "{err}"
        );
        for kind in AggregateKind::ALL {
            assert_eq!(
                AggregateKind::of_stream_type(kind.stream_type()),
                Some(kind)
            );
        }
    }
}

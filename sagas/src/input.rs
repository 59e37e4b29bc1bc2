//! What a saga reacts to: events from the log, fired timers, and replies of outside
//! parties.

use aggregates::cart::CartEvent;
use aggregates::loyalty::LoyaltyEvent;
use aggregates::order::OrderEvent;
use aggregates::payment::PaymentEvent;
use aggregates::shipment::ShipmentEvent;
use aggregates::stock::StockEvent;
use aggregates::{DecodeError, EventSourced};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::ports::{PortReply, PortRequest};
use crate::saga::derive_id;

/// A typed event of an aggregate the sagas listen to.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum DomainEvent {
    Cart(CartEvent),
    Order(OrderEvent),
    Payment(PaymentEvent),
    Stock(StockEvent),
    Shipment(ShipmentEvent),
    Loyalty(LoyaltyEvent),
}

impl DomainEvent {
    /// Decodes a stored event through its aggregate's upcasters; `None` for stream types
    /// no saga listens to.
    pub fn decode(
        stream_type: &str,
        event_type: &str,
        schema_version: u32,
        payload: serde_json::Value,
    ) -> Option<Result<Self, DecodeError>> {
        use aggregates::loyalty::LoyaltyAccount;
        use aggregates::stock::Stock;
        use aggregates::{cart::Cart, order::Order, payment::Payment, shipment::Shipment};
        Some(match stream_type {
            Cart::STREAM_TYPE => Cart::decode(event_type, schema_version, payload).map(Self::Cart),
            Order::STREAM_TYPE => {
                Order::decode(event_type, schema_version, payload).map(Self::Order)
            }
            Payment::STREAM_TYPE => {
                Payment::decode(event_type, schema_version, payload).map(Self::Payment)
            }
            Stock::STREAM_TYPE => {
                Stock::decode(event_type, schema_version, payload).map(Self::Stock)
            }
            Shipment::STREAM_TYPE => {
                Shipment::decode(event_type, schema_version, payload).map(Self::Shipment)
            }
            LoyaltyAccount::STREAM_TYPE => {
                LoyaltyAccount::decode(event_type, schema_version, payload).map(Self::Loyalty)
            }
            _ => return None,
        })
    }
}

/// An event with where it sits in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub event_id: Uuid,
    /// Global position in the log.
    pub position: i64,
    pub stream_id: String,
    pub event: DomainEvent,
}

/// A timer whose due time has passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerFired {
    pub name: String,
    pub due: DateTime<Utc>,
    /// Derived from the saga, name and due time, so firing the same timer twice (a worker
    /// crashed after the step) triggers the same command ids.
    pub id: Uuid,
}

impl TimerFired {
    pub fn new(saga_id: &str, name: impl Into<String>, due: DateTime<Utc>) -> Self {
        let name = name.into();
        let basis = crate::saga::entity_id("timer", saga_id);
        let id = derive_id(basis, &format!("{name}@{}", due.timestamp_micros()));
        Self { name, due, id }
    }
}

/// One input of a saga step.
// Inputs are handled one at a time and moved, never stored in bulk.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Event(Envelope),
    Timer(TimerFired),
    /// The answer to a call the saga made; `key` is the call's idempotency key.
    Reply {
        key: Uuid,
        request: PortRequest,
        reply: PortReply,
    },
}

impl Input {
    /// The id command ids of this step are derived from.
    pub fn trigger_id(&self) -> Uuid {
        match self {
            Input::Event(e) => e.event_id,
            Input::Timer(t) => t.id,
            Input::Reply { key, .. } => *key,
        }
    }
}

macro_rules! from_events {
    ($($variant:ident($event:ty)),*) => {$(
        impl From<$event> for DomainEvent {
            fn from(event: $event) -> Self {
                Self::$variant(event)
            }
        }
    )*};
}

from_events!(
    Cart(CartEvent),
    Order(OrderEvent),
    Payment(PaymentEvent),
    Stock(StockEvent),
    Shipment(ShipmentEvent),
    Loyalty(LoyaltyEvent)
);

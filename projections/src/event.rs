//! The typed events SQL views read, decoded once per stored event for every projection.

use aggregates::cart::{Cart, CartEvent};
use aggregates::loyalty::{LoyaltyAccount, LoyaltyEvent};
use aggregates::order::{Order, OrderEvent};
use aggregates::payment::{Payment, PaymentEvent};
use aggregates::product::{Product, ProductEvent};
use aggregates::shipment::{Shipment, ShipmentEvent};
use aggregates::stock::{Stock, StockEvent};
use aggregates::{DecodeError, EventSourced};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// A stored event of an aggregate some view reads, as its typed event. Events are not
/// boxed: one lives per log entry in a batch, briefly.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ViewEvent {
    Cart(CartEvent),
    Order(OrderEvent),
    Payment(PaymentEvent),
    Shipment(ShipmentEvent),
    Stock(StockEvent),
    Product(ProductEvent),
    Loyalty(LoyaltyEvent),
}

impl ViewEvent {
    /// The typed event of a stored one, through the aggregate's own decoding (upcasters
    /// included), or `None` for stream types no view reads (promotions).
    pub fn decode(
        stream_type: &str,
        event_type: &str,
        schema_version: u32,
        payload: Value,
    ) -> Result<Option<Self>, DecodeError> {
        Ok(Some(match stream_type {
            Cart::STREAM_TYPE => Self::Cart(Cart::decode(event_type, schema_version, payload)?),
            Order::STREAM_TYPE => Self::Order(Order::decode(event_type, schema_version, payload)?),
            Payment::STREAM_TYPE => {
                Self::Payment(Payment::decode(event_type, schema_version, payload)?)
            }
            Shipment::STREAM_TYPE => {
                Self::Shipment(Shipment::decode(event_type, schema_version, payload)?)
            }
            Stock::STREAM_TYPE => Self::Stock(Stock::decode(event_type, schema_version, payload)?),
            Product::STREAM_TYPE => {
                Self::Product(Product::decode(event_type, schema_version, payload)?)
            }
            LoyaltyAccount::STREAM_TYPE => {
                Self::Loyalty(LoyaltyAccount::decode(event_type, schema_version, payload)?)
            }
            _ => return Ok(None),
        }))
    }
}

/// One event as a fold sees it: the typed event with the envelope facts events do not
/// repeat (the stream id names the cart, order, SKU or customer the event belongs to).
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    pub stream_id: &'a str,
    pub position: i64,
    pub recorded_at: DateTime<Utc>,
    pub event: &'a ViewEvent,
}

//! Search documents: product, price and stock events folded into one `products` document
//! per SKU, and order events into one `orders` document per order (for staff).
//!
//! The fold is pure: [`SearchEvent::decode`] reads a stored event through its aggregate's
//! own decoding (upcasters included), [`SearchEvent::key`] names the document it touches
//! and [`ProductDocument::apply`] / [`OrderDocument::apply`] fold it into the document's
//! current state. Documents are always whole: an event such as "a line was removed" cannot
//! be expressed as a partial update of a search engine's document, so the indexer folds
//! into the stored document and sends the result (see `infra::search`).
//!
//! Applying an event twice leaves a document as it was after the first time: every field
//! an event touches is set to a value the event carries, never incremented.

use std::collections::BTreeMap;

use aggregates::order::{Order, OrderEvent};
use aggregates::product::{Product, ProductEvent};
use aggregates::stock::{Stock, StockEvent, StockLevels};
use aggregates::{DecodeError, EventSourced};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The name of the product index.
pub const PRODUCTS: &str = "products";
/// The name of the staff order index.
pub const ORDERS: &str = "orders";

/// An event the search projection reads, already decoded to its typed form.
// Order events are the large ones (`OrderPlaced` carries lines and addresses); events are
// folded one at a time, so boxing would only add an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum SearchEvent {
    Product(ProductEvent),
    Stock(StockEvent),
    Order(OrderEvent),
}

/// The document an event touches: a product by SKU, an order by id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DocumentKey {
    Product(String),
    Order(String),
}

impl SearchEvent {
    /// The typed event of a stored one, or `None` for stream types search does not read.
    pub fn decode(
        stream_type: &str,
        event_type: &str,
        schema_version: u32,
        payload: Value,
    ) -> Result<Option<Self>, DecodeError> {
        Ok(Some(match stream_type {
            Product::STREAM_TYPE => {
                SearchEvent::Product(Product::decode(event_type, schema_version, payload)?)
            }
            Stock::STREAM_TYPE => {
                SearchEvent::Stock(Stock::decode(event_type, schema_version, payload)?)
            }
            Order::STREAM_TYPE => {
                SearchEvent::Order(Order::decode(event_type, schema_version, payload)?)
            }
            _ => return Ok(None),
        }))
    }

    /// Whether a stream type carries events search reads (to skip decoding the rest).
    pub fn reads(stream_type: &str) -> bool {
        matches!(
            stream_type,
            Product::STREAM_TYPE | Stock::STREAM_TYPE | Order::STREAM_TYPE
        )
    }

    /// The document this event changes. Products and stock are streams per SKU, orders
    /// per order id, so the stream id names the document.
    pub fn key(&self, stream_id: &str) -> DocumentKey {
        match self {
            SearchEvent::Product(_) | SearchEvent::Stock(_) => {
                DocumentKey::Product(stream_id.to_string())
            }
            SearchEvent::Order(_) => DocumentKey::Order(stream_id.to_string()),
        }
    }
}

/// One product as search sees it. A document exists as soon as any event names its SKU;
/// it is `active` only between its creation and its discontinuation, and searches only
/// return active products (stock may be received before the catalogue entry exists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductDocument {
    pub sku: String,
    pub name: String,
    pub description: String,
    pub brand: String,
    pub category: String,
    pub active: bool,
    /// Price per currency code, in minor units.
    pub prices: BTreeMap<String, i64>,
    /// Units that can be sold now over all warehouses (on hand − reserved − backordered).
    pub available: i64,
    pub in_stock: bool,
    /// Warehouses holding at least one available unit, by code.
    pub warehouses: Vec<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl ProductDocument {
    /// The empty document of a SKU no event has described yet.
    pub fn new(sku: impl Into<String>) -> Self {
        Self {
            sku: sku.into(),
            name: String::new(),
            description: String::new(),
            brand: String::new(),
            category: String::new(),
            active: false,
            prices: BTreeMap::new(),
            available: 0,
            in_stock: false,
            warehouses: Vec::new(),
            created_at: None,
            updated_at: None,
        }
    }

    /// Folds one event in. Returns whether the document changed (events that do not
    /// concern search, such as a new low-stock threshold, leave it untouched).
    pub fn apply(&mut self, event: &SearchEvent) -> bool {
        let before = self.clone();
        match event {
            SearchEvent::Product(e) => self.apply_product(e),
            SearchEvent::Stock(e) => self.apply_stock(e),
            SearchEvent::Order(_) => {}
        }
        *self != before
    }

    fn apply_product(&mut self, event: &ProductEvent) {
        match event {
            ProductEvent::ProductCreated(e) => {
                self.sku = e.sku.as_str().to_string();
                self.name = e.name.clone();
                self.description = e.description.clone();
                self.brand = e.brand.clone();
                self.category = e.category.clone();
                self.active = true;
                self.prices = e
                    .prices
                    .iter()
                    .map(|(currency, money)| (currency.to_string(), money.amount))
                    .collect();
                self.created_at = Some(e.at);
                self.updated_at = Some(e.at);
            }
            ProductEvent::ProductDetailsChanged(e) => {
                self.name = e.name.clone();
                self.description = e.description.clone();
                self.brand = e.brand.clone();
                self.category = e.category.clone();
                self.updated_at = Some(e.at);
            }
            ProductEvent::ProductPriceChanged(e) => {
                self.prices
                    .insert(e.price.currency.to_string(), e.price.amount);
                self.updated_at = Some(e.at);
            }
            ProductEvent::ProductDiscontinued(e) => {
                self.active = false;
                self.updated_at = Some(e.at);
            }
        }
    }

    fn apply_stock(&mut self, event: &StockEvent) {
        let (levels, at) = match event {
            StockEvent::StockReceived(e) => (&e.levels, e.at),
            StockEvent::StockAdjusted(e) => (&e.levels, e.at),
            StockEvent::StockReserved(e) => (&e.levels, e.at),
            StockEvent::StockReservationReleased(e) => (&e.levels, e.at),
            StockEvent::StockReservationChanged(e) => (&e.levels, e.at),
            StockEvent::StockReservationCommitted(e) => (&e.levels, e.at),
            StockEvent::StockReservationExpired(e) => (&e.levels, e.at),
            StockEvent::StockBackorderFilled(e) => (&e.levels, e.at),
            StockEvent::LowStockThresholdCrossed(e) => (&e.levels, e.at),
            StockEvent::StockBackorderLimitSet(_) | StockEvent::LowStockThresholdSet(_) => return,
        };
        self.set_levels(levels);
        self.updated_at = Some(self.updated_at.map_or(at, |u| u.max(at)));
    }

    fn set_levels(&mut self, levels: &StockLevels) {
        self.available = levels.available;
        self.in_stock = levels.available > 0;
        self.warehouses = levels
            .warehouses
            .iter()
            .filter(|(_, level)| level.available.0 > 0)
            .map(|(warehouse, _)| warehouse.0.clone())
            .collect();
    }
}

/// Where an order stands, as staff search for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderSearchStatus {
    Draft,
    Placed,
    Confirmed,
    PartiallyShipped,
    Shipped,
    Delivered,
    ReturnRequested,
    Returned,
    Cancelled,
    Completed,
}

impl OrderSearchStatus {
    /// The stable name used in documents and filters.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderSearchStatus::Draft => "draft",
            OrderSearchStatus::Placed => "placed",
            OrderSearchStatus::Confirmed => "confirmed",
            OrderSearchStatus::PartiallyShipped => "partially_shipped",
            OrderSearchStatus::Shipped => "shipped",
            OrderSearchStatus::Delivered => "delivered",
            OrderSearchStatus::ReturnRequested => "return_requested",
            OrderSearchStatus::Returned => "returned",
            OrderSearchStatus::Cancelled => "cancelled",
            OrderSearchStatus::Completed => "completed",
        }
    }
}

/// One order as staff search for it. No order event carries an e-mail address, so the
/// customer is searchable by id and by the name on the shipping address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderDocument {
    pub order_id: String,
    pub customer_id: String,
    pub customer_name: String,
    pub status: Option<OrderSearchStatus>,
    /// SKUs of the order's current lines, sorted.
    pub skus: Vec<String>,
    pub currency: String,
    pub grand_total: i64,
    pub placed_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl OrderDocument {
    pub fn new(order_id: impl Into<String>) -> Self {
        Self {
            order_id: order_id.into(),
            customer_id: String::new(),
            customer_name: String::new(),
            status: None,
            skus: Vec::new(),
            currency: String::new(),
            grand_total: 0,
            placed_at: None,
            updated_at: None,
        }
    }

    /// Folds one event in; returns whether the document changed.
    pub fn apply(&mut self, event: &SearchEvent) -> bool {
        let SearchEvent::Order(event) = event else {
            return false;
        };
        let before = self.clone();
        self.apply_order(event);
        *self != before
    }

    fn set_skus<'a>(&mut self, skus: impl Iterator<Item = &'a aggregates::Sku>) {
        let mut skus: Vec<String> = skus.map(|s| s.as_str().to_string()).collect();
        skus.sort();
        skus.dedup();
        self.skus = skus;
    }

    fn apply_order(&mut self, event: &OrderEvent) {
        use OrderSearchStatus as S;
        let at = match event {
            OrderEvent::OrderPlaced(e) => {
                self.customer_id = e.customer_id.to_string();
                self.customer_name = e.shipping_address.name.clone();
                self.status = Some(if e.draft { S::Draft } else { S::Placed });
                self.set_skus(e.lines.iter().map(|l| &l.sku));
                self.currency = e.totals.currency.to_string();
                self.grand_total = e.totals.grand_total.amount;
                self.placed_at = Some(e.at);
                e.at
            }
            OrderEvent::OrderLineAdded(e) => {
                let mut skus = self.skus.clone();
                skus.push(e.line.sku.as_str().to_string());
                skus.sort();
                skus.dedup();
                self.skus = skus;
                self.grand_total = e.totals.grand_total.amount;
                e.at
            }
            OrderEvent::OrderDraftFinalised(e) => {
                self.status = Some(S::Placed);
                self.set_skus(e.lines.iter().map(|l| &l.sku));
                self.grand_total = e.totals.grand_total.amount;
                e.at
            }
            OrderEvent::OrderConfirmed(e) => {
                self.status = Some(S::Confirmed);
                e.at
            }
            OrderEvent::OrderLineQuantityChanged(e) => {
                self.grand_total = e.totals.grand_total.amount;
                e.at
            }
            OrderEvent::OrderLineRemoved(e) => {
                self.skus.retain(|s| s != e.sku.as_str());
                self.grand_total = e.totals.grand_total.amount;
                e.at
            }
            OrderEvent::OrderShippingAddressChanged(e) => {
                self.customer_name = e.address.name.clone();
                self.grand_total = e.totals.grand_total.amount;
                e.at
            }
            OrderEvent::OrderCancelled(e) => {
                self.status = Some(S::Cancelled);
                e.at
            }
            OrderEvent::OrderShipmentRecorded(e) => {
                self.status = Some(if e.fully_shipped {
                    S::Shipped
                } else {
                    S::PartiallyShipped
                });
                e.at
            }
            OrderEvent::OrderShipmentDelivered(e) => e.at,
            OrderEvent::OrderShipmentReturnedToSender(e) => e.at,
            OrderEvent::OrderDelivered(e) => {
                self.status = Some(S::Delivered);
                e.at
            }
            OrderEvent::OrderReturnRequested(e) => {
                self.status = Some(S::ReturnRequested);
                e.at
            }
            OrderEvent::OrderReturnApproved(e) => e.at,
            OrderEvent::OrderReturnRejected(e) => {
                self.status = Some(S::Delivered);
                e.at
            }
            OrderEvent::OrderReturnReceived(e) => {
                self.status = Some(S::Returned);
                e.at
            }
            OrderEvent::OrderPaymentCaptured(e) => e.at,
            OrderEvent::OrderRefundRecorded(e) => e.at,
            OrderEvent::OrderExchangeRequested(e) => e.at,
            OrderEvent::OrderCompleted(e) => {
                self.status = Some(S::Completed);
                e.at
            }
        };
        self.updated_at = Some(self.updated_at.map_or(at, |u| u.max(at)));
    }
}

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Currency, EventExample, Money, ProductId, Sku};

crate::domain_events! {
    /// Events of the product aggregate.
    pub enum ProductEvent {
        ProductCreated(ProductCreated),
        ProductDetailsChanged(ProductDetailsChanged),
        ProductPriceChanged(ProductPriceChanged),
        ProductDiscontinued(ProductDiscontinued),
    }
}

/// A product entered the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProductCreated {
    pub product_id: ProductId,
    pub sku: Sku,
    pub name: String,
    pub description: String,
    pub category: String,
    pub brand: String,
    pub attributes: BTreeMap<String, String>,
    /// One price per currency; every amount is positive.
    pub prices: BTreeMap<Currency, Money>,
    pub at: DateTime<Utc>,
}

/// Descriptive fields changed; the event carries the full new values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProductDetailsChanged {
    pub name: String,
    pub description: String,
    pub category: String,
    pub brand: String,
    pub attributes: BTreeMap<String, String>,
    pub at: DateTime<Utc>,
}

/// The price in one currency was set (added or replaced).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProductPriceChanged {
    pub sku: Sku,
    pub previous: Option<Money>,
    pub price: Money,
    pub at: DateTime<Utc>,
}

/// The product can no longer be priced or sold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProductDiscontinued {
    pub sku: Sku,
    pub at: DateTime<Utc>,
}

pub(crate) fn example_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 9, 30, 0).unwrap()
}

fn example_sku() -> Sku {
    Sku::parse("TSHIRT-RED-M").unwrap()
}

impl EventExample for ProductCreated {
    fn example() -> Self {
        Self {
            product_id: ProductId(uuid::Uuid::from_u128(
                0x0192_0000_0000_7000_8000_0000_0000_0001,
            )),
            sku: example_sku(),
            name: "Red T-shirt".into(),
            description: "Organic cotton, regular fit".into(),
            category: "apparel/t-shirts".into(),
            brand: "Northwind".into(),
            attributes: BTreeMap::from([
                ("colour".into(), "red".into()),
                ("size".into(), "M".into()),
            ]),
            prices: BTreeMap::from([(Currency::EUR, Money::new(1999, Currency::EUR))]),
            at: example_time(),
        }
    }
}

impl EventExample for ProductDetailsChanged {
    fn example() -> Self {
        let created = ProductCreated::example();
        Self {
            name: "Red T-shirt (organic)".into(),
            description: created.description,
            category: created.category,
            brand: created.brand,
            attributes: created.attributes,
            at: example_time(),
        }
    }
}

impl EventExample for ProductPriceChanged {
    fn example() -> Self {
        Self {
            sku: example_sku(),
            previous: Some(Money::new(1999, Currency::EUR)),
            price: Money::new(1799, Currency::EUR),
            at: example_time(),
        }
    }
}

impl EventExample for ProductDiscontinued {
    fn example() -> Self {
        Self {
            sku: example_sku(),
            at: example_time(),
        }
    }
}

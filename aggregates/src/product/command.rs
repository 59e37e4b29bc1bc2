use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Currency, Money, ProductId, Sku};

/// Commands of the product aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProductCommand {
    CreateProduct(CreateProduct),
    ChangeDetails(ChangeDetails),
    ChangePrice(ChangePrice),
    DiscontinueProduct { at: DateTime<Utc> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateProduct {
    pub product_id: ProductId,
    pub sku: Sku,
    pub name: String,
    pub description: String,
    pub category: String,
    pub brand: String,
    pub attributes: BTreeMap<String, String>,
    pub prices: BTreeMap<Currency, Money>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeDetails {
    pub name: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub brand: Option<String>,
    pub attributes: Option<BTreeMap<String, String>>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangePrice {
    pub price: Money,
    pub at: DateTime<Utc>,
}

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Currency, Money, ProductId, Sku};

/// State of one catalogue product, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Product {
    pub id: Option<ProductId>,
    pub sku: Option<Sku>,
    pub name: String,
    pub description: String,
    /// Catalogue category path; carts use it for promotion targeting.
    pub category: String,
    pub brand: String,
    pub attributes: BTreeMap<String, String>,
    pub prices: BTreeMap<Currency, Money>,
    pub discontinued: bool,
}

impl Product {
    pub fn exists(&self) -> bool {
        self.id.is_some()
    }

    /// The selling price in `currency`, if the product can be sold in it.
    pub fn price_in(&self, currency: Currency) -> Option<Money> {
        if self.discontinued {
            None
        } else {
            self.prices.get(&currency).copied()
        }
    }
}

//! What a search asks and what it answers, the same for every backend.

use std::collections::BTreeMap;

use serde::Serialize;

pub use projections::search::{OrderDocument as OrderHit, ProductDocument as ProductHit};

/// A product search. Empty `q` matches every active product; each list filter matches
/// any of its values; filters combine with AND.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductQuery {
    pub q: String,
    pub categories: Vec<String>,
    pub brands: Vec<String>,
    /// The currency price filters and price sorts read (ISO code, upper case).
    pub currency: String,
    /// Inclusive bounds in minor units of `currency`; a product without a price in that
    /// currency does not match a price filter.
    pub price_min: Option<i64>,
    pub price_max: Option<i64>,
    pub in_stock: Option<bool>,
    /// Only products with available units in this warehouse.
    pub warehouse: Option<String>,
    pub sort: ProductSort,
    /// 1-based.
    pub page: u32,
    pub limit: u32,
    /// Whether to count hits per category and brand.
    pub facets: bool,
}

impl Default for ProductQuery {
    fn default() -> Self {
        Self {
            q: String::new(),
            categories: Vec::new(),
            brands: Vec::new(),
            currency: "EUR".into(),
            price_min: None,
            price_max: None,
            in_stock: None,
            warehouse: None,
            sort: ProductSort::Relevance,
            page: 1,
            limit: 20,
            facets: false,
        }
    }
}

/// The order of product hits. Ties (and `Relevance` without a query) fall back to SKU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProductSort {
    #[default]
    Relevance,
    PriceAsc,
    PriceDesc,
    NewestFirst,
    OldestFirst,
}

impl ProductSort {
    /// The names the API accepts: `relevance`, `price:asc`, `price:desc`,
    /// `created_at:desc`, `created_at:asc`.
    pub const NAMES: [&'static str; 5] = [
        "relevance",
        "price:asc",
        "price:desc",
        "created_at:desc",
        "created_at:asc",
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "relevance" => ProductSort::Relevance,
            "price:asc" => ProductSort::PriceAsc,
            "price:desc" => ProductSort::PriceDesc,
            "created_at:desc" => ProductSort::NewestFirst,
            "created_at:asc" => ProductSort::OldestFirst,
            _ => return None,
        })
    }
}

/// A staff search over orders, newest placed first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderQuery {
    pub q: String,
    pub status: Option<String>,
    pub customer_id: Option<String>,
    pub page: u32,
    pub limit: u32,
}

impl Default for OrderQuery {
    fn default() -> Self {
        Self {
            q: String::new(),
            status: None,
            customer_id: None,
            page: 1,
            limit: 20,
        }
    }
}

/// Hit counts per value of a facet (`category`, `brand`).
pub type Facets = BTreeMap<String, BTreeMap<String, u64>>;

/// One page of hits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchPage<T> {
    pub hits: Vec<T>,
    /// Every match, not only this page.
    pub total: u64,
    pub page: u32,
    pub limit: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facets: Option<Facets>,
}

/// An autocomplete answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suggestion {
    pub sku: String,
    pub name: String,
}

/// The words of a query as every backend matches them: letters and digits, lower case,
/// anything else a separator (so `tshirt-red` is the two words `tshirt` and `red`, as
/// the indexes tokenize SKUs). At most 16 words.
pub fn words(q: &str) -> Vec<String> {
    q.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(16)
        .map(str::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_on_anything_but_letters_and_digits() {
        assert_eq!(words("  T-Shirt  rot\"*  "), ["t", "shirt", "rot"]);
        assert_eq!(words("ÄPFEL 42"), ["äpfel", "42"]);
        assert!(words("-- * ").is_empty());
    }

    #[test]
    fn sort_names_round_trip() {
        for name in ProductSort::NAMES {
            assert!(ProductSort::parse(name).is_some(), "{name}");
        }
        assert_eq!(ProductSort::parse("price"), None);
    }
}

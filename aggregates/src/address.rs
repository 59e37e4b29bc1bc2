//! Postal addresses, shared by carts, orders, payments (fraud checks) and shipments.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An ISO 3166-1 alpha-2 country code, e.g. `DE`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct CountryCode(#[schemars(regex(pattern = r"^[A-Z]{2}$"))] pub String);

impl CountryCode {
    /// Parses an upper-case two-letter code.
    pub fn parse(code: &str) -> Option<Self> {
        (code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()))
            .then(|| Self(code.to_string()))
    }
}

/// A postal address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Address {
    pub name: String,
    pub line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    /// State, province or tax region within the country (e.g. `CA`, `BY`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub country: CountryCode,
}

impl Address {
    /// The tax region key `CC` or `CC-REGION`, used to look up tax rates.
    pub fn tax_region(&self) -> String {
        match &self.region {
            Some(region) => format!("{}-{}", self.country.0, region),
            None => self.country.0.clone(),
        }
    }

    /// An address used in examples and tests.
    pub fn example() -> Self {
        Self {
            name: "Ada Lovelace".into(),
            line1: "Unter den Linden 1".into(),
            line2: None,
            city: "Berlin".into(),
            postal_code: "10117".into(),
            region: Some("BE".into()),
            country: CountryCode("DE".into()),
        }
    }
}

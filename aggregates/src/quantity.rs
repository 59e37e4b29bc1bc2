//! Quantities and stock-keeping units.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

/// A count of units. Never negative; arithmetic is checked by the aggregates.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct Quantity(pub u32);

impl Quantity {
    pub const ZERO: Quantity = Quantity(0);

    pub const fn new(n: u32) -> Self {
        Self(n)
    }
    pub const fn get(self) -> u32 {
        self.0
    }
    pub fn checked_add(self, other: Quantity) -> Option<Quantity> {
        self.0.checked_add(other.0).map(Quantity)
    }
    pub fn checked_sub(self, other: Quantity) -> Option<Quantity> {
        self.0.checked_sub(other.0).map(Quantity)
    }
    pub fn saturating_sub(self, other: Quantity) -> Quantity {
        Quantity(self.0.saturating_sub(other.0))
    }
}

impl fmt::Debug for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Errors of [`Sku::parse`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a SKU: 1-64 characters of A-Z, a-z, 0-9, '-', '_' or '.'")]
pub struct InvalidSku(pub String);

/// A stock-keeping unit code: 1-64 characters of `[A-Za-z0-9._-]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(transparent)]
#[schemars(transparent)]
pub struct Sku(
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z0-9._-]+$"))] String,
);

impl Sku {
    pub const MAX_LEN: usize = 64;

    pub fn parse(code: impl Into<String>) -> Result<Self, InvalidSku> {
        let code = code.into();
        let valid = !code.is_empty()
            && code.len() <= Self::MAX_LEN
            && code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if valid {
            Ok(Self(code))
        } else {
            Err(InvalidSku(code))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Sku {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Sku::parse(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sku({})", self.0)
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus_are_validated_on_parse_and_on_deserialize() {
        assert!(Sku::parse("TSHIRT-RED_M.1").is_ok());
        assert!(Sku::parse("").is_err());
        assert!(Sku::parse("has space").is_err());
        assert!(Sku::parse("x".repeat(65)).is_err());
        assert!(serde_json::from_str::<Sku>("\"bad sku\"").is_err());
    }
}

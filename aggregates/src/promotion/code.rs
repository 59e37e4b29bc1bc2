use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

/// Why a text is not a coupon code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a coupon code: 1-32 characters of A-Z, 0-9, '-' or '_' after trimming")]
pub struct InvalidPromotionCode(pub String);

/// A coupon code in normal form: trimmed, upper-case, 1-32 characters of `[A-Z0-9_-]`.
///
/// Customers type codes in any case and with stray spaces; normalising once at the edge
/// makes `summer10`, ` SUMMER10 ` and `Summer10` the same coupon everywhere.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(transparent)]
#[schemars(transparent)]
pub struct PromotionCode(
    #[schemars(length(min = 1, max = 32), regex(pattern = r"^[A-Z0-9_-]+$"))] String,
);

impl PromotionCode {
    pub const MAX_LEN: usize = 32;

    /// Normalises (trim, upper-case) and validates a code.
    pub fn parse(raw: &str) -> Result<Self, InvalidPromotionCode> {
        let code = raw.trim().to_ascii_uppercase();
        let valid = !code.is_empty()
            && code.len() <= Self::MAX_LEN
            && code
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'));
        if valid {
            Ok(Self(code))
        } else {
            Err(InvalidPromotionCode(raw.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for PromotionCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        PromotionCode::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for PromotionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PromotionCode({})", self.0)
    }
}

impl fmt::Display for PromotionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

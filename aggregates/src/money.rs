//! Money: integer minor units plus an ISO 4217 currency. Never floats.
//!
//! Arithmetic across currencies is an error, as is overflow. Percentages are expressed in
//! basis points (1/100 of a percent) and rounded half-to-even in exactly one place:
//! [`Money::percent_of`].

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Errors of money arithmetic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("cannot combine {left} with {right}")]
    CurrencyMismatch { left: Currency, right: Currency },
    #[error("amount out of range")]
    Overflow,
    #[error("`{0}` is not an ISO 4217 currency code (three upper-case letters)")]
    InvalidCurrency(String),
}

/// An ISO 4217 alphabetic currency code, e.g. `EUR`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    pub const EUR: Currency = Currency(*b"EUR");
    pub const USD: Currency = Currency(*b"USD");
    pub const GBP: Currency = Currency(*b"GBP");

    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        if bytes.len() == 3 && bytes.iter().all(u8::is_ascii_uppercase) {
            Ok(Currency([bytes[0], bytes[1], bytes[2]]))
        } else {
            Err(MoneyError::InvalidCurrency(s.to_string()))
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Currency {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Currency".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[A-Z]{3}$",
            "description": "ISO 4217 alphabetic currency code"
        })
    }
}

/// An amount of money in minor units (cents for EUR/USD) of one currency.
///
/// Amounts are signed so that differences (an order edit that lowers the total) can be
/// represented; aggregates reject negative amounts where a rule forbids them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Money {
    /// Minor units, e.g. 1999 for 19.99 EUR.
    pub amount: i64,
    pub currency: Currency,
}

impl Money {
    pub const fn new(amount: i64, currency: Currency) -> Self {
        Self { amount, currency }
    }

    pub const fn zero(currency: Currency) -> Self {
        Self::new(0, currency)
    }

    pub fn is_zero(&self) -> bool {
        self.amount == 0
    }

    pub fn is_negative(&self) -> bool {
        self.amount < 0
    }

    pub fn is_positive(&self) -> bool {
        self.amount > 0
    }

    fn same_currency(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            })
        }
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(&other)?;
        let amount = self
            .amount
            .checked_add(other.amount)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(amount, self.currency))
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(&other)?;
        let amount = self
            .amount
            .checked_sub(other.amount)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(amount, self.currency))
    }

    /// `self × n`, e.g. unit price times quantity.
    pub fn times(self, n: u32) -> Result<Money, MoneyError> {
        let amount = self
            .amount
            .checked_mul(i64::from(n))
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(amount, self.currency))
    }

    /// `basis_points / 10 000` of this amount, rounded half to even.
    ///
    /// This is the single place where the engine rounds money: percentage discounts,
    /// tax rates and proportional refunds all go through it.
    pub fn percent_of(self, basis_points: u32) -> Result<Money, MoneyError> {
        let num = i128::from(self.amount) * i128::from(basis_points);
        let amount = div_round_half_even(num, 10_000);
        i64::try_from(amount)
            .map(|amount| Money::new(amount, self.currency))
            .map_err(|_| MoneyError::Overflow)
    }

    /// `self × numerator / denominator`, rounded half to even (proportional shares).
    pub fn share(self, numerator: i64, denominator: i64) -> Result<Money, MoneyError> {
        if denominator == 0 {
            return Err(MoneyError::Overflow);
        }
        let num = i128::from(self.amount) * i128::from(numerator);
        let amount = div_round_half_even(num, i128::from(denominator));
        i64::try_from(amount)
            .map(|amount| Money::new(amount, self.currency))
            .map_err(|_| MoneyError::Overflow)
    }

    pub fn min(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(&other)?;
        Ok(if self.amount <= other.amount {
            self
        } else {
            other
        })
    }

    /// Sum of amounts that must all be in `currency`.
    pub fn sum<I: IntoIterator<Item = Money>>(
        currency: Currency,
        items: I,
    ) -> Result<Money, MoneyError> {
        items
            .into_iter()
            .try_fold(Money::zero(currency), Money::checked_add)
    }
}

/// Integer division rounding half to even ("banker's rounding"); `den` must be non-zero.
fn div_round_half_even(num: i128, den: i128) -> i128 {
    let (num, den) = if den < 0 { (-num, -den) } else { (num, den) };
    let q = num.div_euclid(den);
    let r = num.rem_euclid(den);
    match (2 * r).cmp(&den) {
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => {
            if q % 2 == 0 {
                q
            } else {
                q + 1
            }
        }
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} (minor units)", self.amount, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(a: i64) -> Money {
        Money::new(a, Currency::EUR)
    }

    #[test]
    fn adding_across_currencies_is_an_error() {
        let err = eur(1)
            .checked_add(Money::new(1, Currency::USD))
            .unwrap_err();
        assert!(matches!(err, MoneyError::CurrencyMismatch { .. }));
    }

    #[test]
    fn percentages_round_half_to_even() {
        // 10% of 25 = 2.5 -> 2; 10% of 35 = 3.5 -> 4; 10% of 26 = 2.6 -> 3
        assert_eq!(eur(25).percent_of(1000).unwrap(), eur(2));
        assert_eq!(eur(35).percent_of(1000).unwrap(), eur(4));
        assert_eq!(eur(26).percent_of(1000).unwrap(), eur(3));
        assert_eq!(eur(-25).percent_of(1000).unwrap(), eur(-2));
    }

    #[test]
    fn shares_round_half_to_even() {
        assert_eq!(eur(100).share(1, 3).unwrap(), eur(33));
        assert_eq!(eur(5).share(1, 2).unwrap(), eur(2));
        assert_eq!(eur(7).share(1, 2).unwrap(), eur(4));
    }

    #[test]
    fn overflow_is_an_error() {
        assert_eq!(eur(i64::MAX).checked_add(eur(1)), Err(MoneyError::Overflow));
        assert_eq!(eur(i64::MAX).times(2), Err(MoneyError::Overflow));
    }

    #[test]
    fn currency_codes_are_validated() {
        assert!("eur".parse::<Currency>().is_err());
        assert!("EURO".parse::<Currency>().is_err());
        assert_eq!("EUR".parse::<Currency>().unwrap(), Currency::EUR);
        let json = serde_json::to_string(&eur(5)).unwrap();
        assert_eq!(json, r#"{"amount":5,"currency":"EUR"}"#);
        assert!(serde_json::from_str::<Money>(r#"{"amount":5,"currency":"eu"}"#).is_err());
    }
}

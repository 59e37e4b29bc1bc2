//! Outside facts commands need, looked up before deciding (the aggregates stay pure):
//! catalogue prices and names, promotion terms by code, and the shop's settings (tax
//! rates, shipping methods, the money value of loyalty points).
//!
//! Stream ids the lookups rely on: a product's stream id is its SKU, a promotion's is its
//! normalised code, a stock stream's is its SKU, a loyalty account's is its customer id.

use std::collections::BTreeMap;

use aggregates::cart::{ShippingMethod, TaxRates};
use aggregates::product::Product;
use aggregates::promotion::{Promotion, PromotionCode, PromotionTerms};
use aggregates::{Currency, Money, Sku};
use serde::{Deserialize, Serialize};

use super::{CommandError, Commands};
use crate::store::Db;
use crate::{in_tx, on_db, Store, StoreError};

/// A fact a command needs is missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("no product with SKU {0}")]
    UnknownProduct(Sku),
    #[error("{sku} is not sold in {currency}")]
    NotSoldIn { sku: Sku, currency: Currency },
    #[error("no promotion with code {0}")]
    UnknownCoupon(String),
    #[error("promotion {0} has ended")]
    CouponDeactivated(String),
    #[error("no shipping method `{0}`")]
    UnknownShippingMethod(String),
    #[error("shipping method `{code}` has no price in {currency}")]
    NoShippingPrice { code: String, currency: Currency },
    #[error("loyalty points cannot be redeemed in {0}")]
    NoPointValue(Currency),
    #[error("setting `{name}` is malformed: {reason}")]
    BadSetting { name: &'static str, reason: String },
}

/// A shipping option the shop offers, priced per currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingOption {
    pub code: String,
    pub name: String,
    pub prices: BTreeMap<Currency, Money>,
}

/// The settings documents, by name.
pub mod setting {
    /// `{"DE": 1900, "US-CA": 725}`: basis points by tax region or country.
    pub const TAX_RATES: &str = "tax_rates";
    /// `[{"code": "standard", "name": "Standard", "prices": {"EUR": {...}}}]`.
    pub const SHIPPING_METHODS: &str = "shipping_methods";
    /// `{"EUR": {"amount": 1, "currency": "EUR"}}`: the value of one point.
    pub const POINT_VALUES: &str = "loyalty_point_values";
}

impl Commands {
    /// The live product with SKU `sku`.
    pub async fn product(&self, sku: &Sku) -> Result<Product, CommandError> {
        match self.load::<Product>(sku.as_str()).await? {
            Some(p) => Ok(p.state),
            None => Err(LookupError::UnknownProduct(sku.clone()).into()),
        }
    }

    /// The product's name, category and price in `currency`, as a cart line needs them.
    pub async fn catalogue_line(
        &self,
        sku: &Sku,
        currency: Currency,
    ) -> Result<(Product, Money), CommandError> {
        let product = self.product(sku).await?;
        let price = product
            .price_in(currency)
            .ok_or_else(|| LookupError::NotSoldIn {
                sku: sku.clone(),
                currency,
            })?;
        Ok((product, price))
    }

    /// The promotion with `code` and its terms.
    pub async fn coupon(&self, code: &str) -> Result<(Promotion, PromotionTerms), CommandError> {
        let normalised =
            PromotionCode::parse(code).map_err(|_| LookupError::UnknownCoupon(code.to_string()))?;
        let promotion = self
            .load::<Promotion>(normalised.as_str())
            .await?
            .ok_or_else(|| LookupError::UnknownCoupon(code.to_string()))?
            .state;
        if promotion.deactivated {
            return Err(LookupError::CouponDeactivated(code.to_string()).into());
        }
        let terms = promotion
            .terms
            .clone()
            .ok_or_else(|| LookupError::UnknownCoupon(code.to_string()))?;
        Ok((promotion, terms))
    }

    /// Tax rates by region (empty until an admin sets them).
    pub async fn tax_rates(&self) -> Result<TaxRates, CommandError> {
        Ok(read_setting(&self.store, setting::TAX_RATES)
            .await?
            .unwrap_or_default())
    }

    /// Every shipping option the shop offers.
    pub async fn shipping_options(&self) -> Result<Vec<ShippingOption>, CommandError> {
        Ok(read_setting(&self.store, setting::SHIPPING_METHODS)
            .await?
            .unwrap_or_default())
    }

    /// Shipping method `code` priced in `currency`.
    pub async fn shipping_method(
        &self,
        code: &str,
        currency: Currency,
    ) -> Result<ShippingMethod, CommandError> {
        let option = self
            .shipping_options()
            .await?
            .into_iter()
            .find(|o| o.code == code)
            .ok_or_else(|| LookupError::UnknownShippingMethod(code.to_string()))?;
        let price =
            option
                .prices
                .get(&currency)
                .copied()
                .ok_or_else(|| LookupError::NoShippingPrice {
                    code: code.to_string(),
                    currency,
                })?;
        Ok(ShippingMethod {
            code: option.code,
            price,
        })
    }

    /// The money value of `points` loyalty points in `currency`.
    pub async fn points_value(
        &self,
        points: u64,
        currency: Currency,
    ) -> Result<Money, CommandError> {
        let values: BTreeMap<Currency, Money> = read_setting(&self.store, setting::POINT_VALUES)
            .await?
            .unwrap_or_default();
        let one = values
            .get(&currency)
            .copied()
            .ok_or(LookupError::NoPointValue(currency))?;
        let amount = i64::try_from(points)
            .ok()
            .and_then(|p| p.checked_mul(one.amount))
            .ok_or(LookupError::NoPointValue(currency))?;
        Ok(Money::new(amount, currency))
    }
}

/// Reads settings document `name`, if set.
pub async fn read_setting<T: serde::de::DeserializeOwned>(
    store: &Store,
    name: &'static str,
) -> Result<Option<T>, CommandError> {
    let text: Option<String> = on_db!(store.db_read(), pool => {
        let sql = match store.db_read() {
            Db::Postgres(_) => "SELECT value::text FROM settings WHERE name = $1",
            Db::Sqlite(_) => "SELECT value FROM settings WHERE name = $1",
        };
        sqlx::query_scalar(sql).bind(name).fetch_optional(pool).await
    })
    .map_err(StoreError::from)?;
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| {
            CommandError::Lookup(LookupError::BadSetting {
                name,
                reason: e.to_string(),
            })
        })
    })
    .transpose()
}

/// Replaces settings document `name`.
pub async fn write_setting<T: Serialize>(
    store: &Store,
    name: &'static str,
    value: &T,
) -> Result<(), StoreError> {
    let text = serde_json::to_string(value).map_err(StoreError::Corrupt)?;
    let now = store.clock().now();
    let sql = match store.db() {
        Db::Postgres(_) => {
            "INSERT INTO settings (name, value, updated_at) VALUES ($1, $2::json, $3) \
             ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at"
        }
        Db::Sqlite(_) => {
            "INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
        }
    };
    in_tx!(store.db(), tx => {
        sqlx::query(sql).bind(name).bind(&text).bind(now).execute(&mut *tx).await?;
    });
    Ok(())
}

//! Shop settings: tax rates, shipping methods, the money value of loyalty points and
//! the warehouse list. Admins write them; staff (and, for shipping methods, anyone)
//! read them.
//!
//! Settings are small configuration documents, not event-sourced: each `PUT` replaces
//! one document in the `settings` table, and commands read the current document when
//! they run (a cart's shipping price, an order's tax). Nothing replays them, so they
//! carry no stream version and no `ETag`.

use std::collections::BTreeMap;

use aggregates::cart::TaxRates;
use aggregates::{Currency, Money, WarehouseId};
use axum::extract::State;
use axum::Json;
use infra::command::facts::{read_setting, setting, write_setting};
use infra::command::{CommandError, ShippingOption};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::catalogue::{amount_in, check_text, MAX_NAME};
use super::input::invalid_body;
use crate::http::errors::row;
use crate::http::json::ApiJson;
use crate::http::openapi::{ApiRouter, Operation};
use crate::http::principal::{AdminRole, Role, Staff};
use crate::http::problem::Problem;
use crate::http::AppState;

/// Settings document of the shop's warehouses. Lives here, not beside the command
/// layer's documents, because only the API's stock and shipment routes read it.
pub const WAREHOUSES: &str = "warehouses";

/// Most tax regions in the tax-rate document.
pub const MAX_TAX_REGIONS: usize = 500;
/// Highest tax rate in basis points (100 %).
pub const MAX_TAX_RATE: u32 = 10_000;
/// Most shipping methods.
pub const MAX_SHIPPING_METHODS: usize = 50;
/// Longest shipping-method code.
pub const MAX_CODE: usize = 32;
/// Most warehouses.
pub const MAX_WAREHOUSES: usize = 100;
/// Most currencies in one price list.
pub const MAX_CURRENCIES: usize = 20;

const TAG: &str = "settings";
const ADMIN: &[Role] = &[Role::Admin];
const STAFF: &[Role] = &[Role::Staff, Role::Admin];

/// Tax rates in basis points by tax region: a country (`DE`) or a country and region
/// (`US-CA`); an address without a rate for its region falls back to its country.
pub type TaxRatesBody = BTreeMap<String, u32>;

/// Value of one loyalty point in minor units, per currency: `{"EUR": 1}`.
pub type PointValuesBody = BTreeMap<Currency, i64>;

/// One shipping method the shop offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShippingMethodBody {
    /// Stable code carts refer to, e.g. `standard`: 1-32 of `a-z 0-9 - _`.
    #[schemars(length(min = 1, max = 32), regex(pattern = r"^[a-z0-9_-]+$"))]
    pub code: String,
    /// What a storefront shows.
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
    /// Price per currency in minor units, e.g. `{"EUR": 499}`.
    pub prices: BTreeMap<Currency, i64>,
}

/// One of the shop's warehouses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WarehouseBody {
    /// Warehouse code stock and shipments name, e.g. `BER-1`.
    #[schemars(length(min = 1, max = 32), regex(pattern = r"^[A-Za-z0-9._-]+$"))]
    pub code: String,
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
}

/// The settings routes.
pub fn router() -> ApiRouter {
    ApiRouter::new()
        .route(
            Operation::put("/admin/settings/tax-rates")
                .summary("Replace the tax rates")
                .description("Basis points by tax region: `{\"DE\": 1900, \"US-CA\": 725}`.")
                .tag(TAG)
                .roles(ADMIN)
                .body::<TaxRatesBody>()
                .reply::<TaxRatesBody>(200)
                .problems(&["invalid_body"]),
            axum::routing::put(put_tax_rates),
        )
        .route(
            Operation::get("/settings/tax-rates")
                .summary("Read the tax rates")
                .tag(TAG)
                .roles(STAFF)
                .reply::<TaxRatesBody>(200),
            axum::routing::get(get_tax_rates),
        )
        .route(
            Operation::put("/admin/settings/shipping-methods")
                .summary("Replace the shipping methods")
                .tag(TAG)
                .roles(ADMIN)
                .body::<Vec<ShippingMethodBody>>()
                .reply::<Vec<ShippingMethodBody>>(200)
                .problems(&["invalid_body"]),
            axum::routing::put(put_shipping_methods),
        )
        .route(
            Operation::get("/settings/shipping-methods")
                .summary("List the shipping methods")
                .description("Public: what a storefront offers at checkout.")
                .tag(TAG)
                .reply::<Vec<ShippingMethodBody>>(200),
            axum::routing::get(get_shipping_methods),
        )
        .route(
            Operation::put("/admin/settings/loyalty-point-values")
                .summary("Replace the value of a loyalty point")
                .description("Minor units per point, by currency: `{\"EUR\": 1}`.")
                .tag(TAG)
                .roles(ADMIN)
                .body::<PointValuesBody>()
                .reply::<PointValuesBody>(200)
                .problems(&["invalid_body"]),
            axum::routing::put(put_point_values),
        )
        .route(
            Operation::get("/settings/loyalty-point-values")
                .summary("Read the value of a loyalty point")
                .tag(TAG)
                .roles(STAFF)
                .reply::<PointValuesBody>(200),
            axum::routing::get(get_point_values),
        )
        .route(
            Operation::put("/admin/settings/warehouses")
                .summary("Replace the warehouse list")
                .description(
                    "Once any warehouse is listed, stock receipts and shipments naming \
                     another warehouse are refused (`unknown_warehouse`).",
                )
                .tag(TAG)
                .roles(ADMIN)
                .body::<Vec<WarehouseBody>>()
                .reply::<Vec<WarehouseBody>>(200)
                .problems(&["invalid_body"]),
            axum::routing::put(put_warehouses),
        )
        .route(
            Operation::get("/settings/warehouses")
                .summary("List the warehouses")
                .tag(TAG)
                .roles(STAFF)
                .reply::<Vec<WarehouseBody>>(200),
            axum::routing::get(get_warehouses),
        )
}

async fn put_tax_rates(
    AdminRole(_): AdminRole,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<TaxRatesBody>,
) -> Result<Json<TaxRatesBody>, Problem> {
    if body.len() > MAX_TAX_REGIONS {
        return Err(invalid_body(format!(
            "at most {MAX_TAX_REGIONS} tax regions"
        )));
    }
    for (region, rate) in &body {
        if !is_tax_region(region) {
            return Err(invalid_body(format!(
                "`{region}` is not a tax region: a country code (`DE`) or country and region (`US-CA`)"
            )));
        }
        if *rate > MAX_TAX_RATE {
            return Err(invalid_body(format!(
                "the rate of {region} is {rate} basis points; at most {MAX_TAX_RATE}"
            )));
        }
    }
    let rates: TaxRates = body;
    store(&state, setting::TAX_RATES, &rates).await?;
    Ok(Json(rates))
}

async fn get_tax_rates(
    Staff(_): Staff,
    State(state): State<AppState>,
) -> Result<Json<TaxRatesBody>, Problem> {
    Ok(Json(state.commands.tax_rates().await?))
}

async fn put_shipping_methods(
    AdminRole(_): AdminRole,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Vec<ShippingMethodBody>>,
) -> Result<Json<Vec<ShippingMethodBody>>, Problem> {
    if body.len() > MAX_SHIPPING_METHODS {
        return Err(invalid_body(format!(
            "at most {MAX_SHIPPING_METHODS} shipping methods"
        )));
    }
    let mut options = Vec::with_capacity(body.len());
    for method in &body {
        let valid_code = !method.code.is_empty()
            && method.code.len() <= MAX_CODE
            && method
                .code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'));
        if !valid_code {
            return Err(invalid_body(format!(
                "shipping method code `{}` must be 1 to {MAX_CODE} of a-z, 0-9, '-' or '_'",
                method.code
            )));
        }
        if options
            .iter()
            .any(|o: &ShippingOption| o.code == method.code)
        {
            return Err(invalid_body(format!(
                "shipping method code `{}` appears twice",
                method.code
            )));
        }
        check_text("name", &method.name, 1, MAX_NAME)?;
        options.push(ShippingOption {
            code: method.code.clone(),
            name: method.name.clone(),
            prices: price_list(&method.prices, "shipping price")?,
        });
    }
    store(&state, setting::SHIPPING_METHODS, &options).await?;
    Ok(Json(body))
}

async fn get_shipping_methods(
    State(state): State<AppState>,
) -> Result<Json<Vec<ShippingMethodBody>>, Problem> {
    let options = state.commands.shipping_options().await?;
    Ok(Json(
        options
            .into_iter()
            .map(|o| ShippingMethodBody {
                code: o.code,
                name: o.name,
                prices: o.prices.into_iter().map(|(c, m)| (c, m.amount)).collect(),
            })
            .collect(),
    ))
}

async fn put_point_values(
    AdminRole(_): AdminRole,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PointValuesBody>,
) -> Result<Json<PointValuesBody>, Problem> {
    let values = price_list(&body, "point value")?;
    store(&state, setting::POINT_VALUES, &values).await?;
    Ok(Json(body))
}

async fn get_point_values(
    Staff(_): Staff,
    State(state): State<AppState>,
) -> Result<Json<PointValuesBody>, Problem> {
    let values: BTreeMap<Currency, Money> = read_setting(&state.store, setting::POINT_VALUES)
        .await?
        .unwrap_or_default();
    Ok(Json(
        values.into_iter().map(|(c, m)| (c, m.amount)).collect(),
    ))
}

async fn put_warehouses(
    AdminRole(_): AdminRole,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Vec<WarehouseBody>>,
) -> Result<Json<Vec<WarehouseBody>>, Problem> {
    if body.len() > MAX_WAREHOUSES {
        return Err(invalid_body(format!("at most {MAX_WAREHOUSES} warehouses")));
    }
    for (i, warehouse) in body.iter().enumerate() {
        check_warehouse_code(&warehouse.code)?;
        check_text("name", &warehouse.name, 1, MAX_NAME)?;
        if body[..i].iter().any(|w| w.code == warehouse.code) {
            return Err(invalid_body(format!(
                "warehouse `{}` appears twice",
                warehouse.code
            )));
        }
    }
    store(&state, WAREHOUSES, &body).await?;
    Ok(Json(body))
}

async fn get_warehouses(
    Staff(_): Staff,
    State(state): State<AppState>,
) -> Result<Json<Vec<WarehouseBody>>, Problem> {
    Ok(Json(warehouses(&state).await?))
}

/// The configured warehouses (empty until an admin lists them).
pub(super) async fn warehouses(state: &AppState) -> Result<Vec<WarehouseBody>, Problem> {
    Ok(read_setting(&state.store, WAREHOUSES)
        .await?
        .unwrap_or_default())
}

/// `warehouse` as a [`WarehouseId`]: a well-formed code, and one of the configured
/// warehouses once any is configured (`422 unknown_warehouse` otherwise). Before any is
/// configured every well-formed code is accepted, so a new shop works out of the box.
pub(super) async fn known_warehouse(
    state: &AppState,
    warehouse: &str,
) -> Result<WarehouseId, Problem> {
    check_warehouse_code(warehouse)?;
    let configured = warehouses(state).await?;
    if !configured.is_empty() && !configured.iter().any(|w| w.code == warehouse) {
        return Err(row::UNKNOWN_WAREHOUSE
            .problem(format!("`{warehouse}` is not one of the shop's warehouses")));
    }
    Ok(WarehouseId::new(warehouse))
}

fn check_warehouse_code(code: &str) -> Result<(), Problem> {
    let valid = !code.is_empty()
        && code.len() <= MAX_CODE
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(invalid_body(format!(
            "warehouse code `{}` must be 1 to {MAX_CODE} of A-Z, a-z, 0-9, '-', '_' or '.'",
            code.chars().take(80).collect::<String>()
        )))
    }
}

/// `CC` or `CC-REGION` (region: 1 to 16 of A-Z, 0-9), as [`aggregates::Address::tax_region`]
/// spells it.
fn is_tax_region(key: &str) -> bool {
    let (country, region) = match key.split_once('-') {
        Some((c, r)) => (c, Some(r)),
        None => (key, None),
    };
    aggregates::CountryCode::parse(country).is_some()
        && region.is_none_or(|r| {
            (1..=16).contains(&r.len())
                && r.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        })
}

/// Positive bounded amounts per currency, as money.
fn price_list(
    prices: &BTreeMap<Currency, i64>,
    what: &str,
) -> Result<BTreeMap<Currency, Money>, Problem> {
    if prices.is_empty() || prices.len() > MAX_CURRENCIES {
        return Err(invalid_body(format!(
            "a {what} list needs 1 to {MAX_CURRENCIES} currencies"
        )));
    }
    let mut money = BTreeMap::new();
    for (currency, amount) in prices {
        if *amount <= 0 {
            return Err(invalid_body(format!(
                "the {what} in {currency} must be greater than zero, got {amount}"
            )));
        }
        money.insert(*currency, amount_in(*amount, *currency)?);
    }
    Ok(money)
}

async fn store<T: Serialize>(
    state: &AppState,
    name: &'static str,
    value: &T,
) -> Result<(), Problem> {
    write_setting(&state.store, name, value)
        .await
        .map_err(|e| Problem::from(CommandError::from(e)))
}
